//! The PFS calls the mounted filesystem makes, each one gRPC call to pachd
//! run to completion on the command's runtime from a FUSE thread. Failures
//! come back as errno values, with pachd's message printed on stderr, so
//! that a program that gets EIO from the mount can be explained.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex};

use fuser::Errno;
use futures::TryStreamExt;
use pach_api::pfs;
use tokio::runtime::Handle;

use crate::client::Conn;
use crate::refs;

/// The frame size of a put: the content of a file being written back is
/// sent in messages of at most this many bytes.
const FRAME: usize = 1 << 20;

/// pachd, seen from FUSE threads.
#[derive(Clone)]
pub struct Remote {
    pfs: pfs::api_client::ApiClient<Conn>,
    runtime: Handle,
}

/// A piece of a file fetched in the background, waited for by the reads
/// that need it.
#[derive(Default)]
pub struct Block {
    bytes: Mutex<Option<Result<Arc<Vec<u8>>, Errno>>>,
    ready: Condvar,
}

impl Block {
    /// Its bytes, once fetched.
    pub fn wait(&self) -> Result<Arc<Vec<u8>>, Errno> {
        let mut bytes = lock(&self.bytes);
        loop {
            if let Some(r) = &*bytes {
                return r.clone();
            }
            bytes = self
                .ready
                .wait(bytes)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A failed call: the errno the kernel gets, after the message is printed.
fn failed(what: &str, s: tonic::Status) -> Errno {
    match s.code() {
        tonic::Code::NotFound => Errno::ENOENT,
        _ => {
            eprintln!(
                "pachctl mount: {what}: {}",
                crate::client::escape(s.message())
            );
            Errno::EIO
        }
    }
}

fn file(repo: &str, commit: &str, path: &str) -> pfs::File {
    pfs::File {
        commit: Some(refs::commit(repo, commit)),
        path: path.to_string(),
    }
}

impl Remote {
    pub fn new(pfs: pfs::api_client::ApiClient<Conn>, runtime: Handle) -> Remote {
        Remote { pfs, runtime }
    }

    fn run<T>(&self, call: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(call)
    }

    pub fn list_repos(&self) -> Result<Vec<String>, Errno> {
        let mut c = self.pfs.clone();
        self.run(async move {
            let repos = c
                .list_repo(pfs::ListRepoRequest {})
                .await
                .map_err(|s| failed("list repos", s))?
                .into_inner();
            Ok(repos
                .repo_info
                .into_iter()
                .filter_map(|r| r.repo.map(|r| r.name))
                .collect())
        })
    }

    pub fn repo_exists(&self, repo: &str) -> Result<bool, Errno> {
        let mut c = self.pfs.clone();
        self.run(async move {
            match c
                .inspect_repo(pfs::InspectRepoRequest {
                    repo: Some(refs::repo(repo)),
                })
                .await
            {
                Ok(_) => Ok(true),
                Err(s) if s.code() == tonic::Code::NotFound => Ok(false),
                Err(s) => Err(failed(&format!("inspect repo {repo}"), s)),
            }
        })
    }

    /// The branch's head, `Ok(None)` for a branch with no commit or no
    /// branch at all (its directory is empty until a write starts it).
    pub fn branch_head(&self, repo: &str, branch: &str) -> Result<Option<String>, Errno> {
        let mut c = self.pfs.clone();
        self.run(async move {
            match c
                .inspect_branch(pfs::InspectBranchRequest {
                    branch: Some(pfs::Branch {
                        repo: Some(refs::repo(repo)),
                        name: branch.to_string(),
                    }),
                })
                .await
            {
                Ok(b) => Ok(b.into_inner().head.map(|h| h.id)),
                Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
                Err(s) => Err(failed(&format!("inspect branch {repo}@{branch}"), s)),
            }
        })
    }

    /// A commit's id and whether it is still open.
    pub fn commit(&self, repo: &str, commit: &str) -> Result<(String, bool), Errno> {
        let mut c = self.pfs.clone();
        self.run(async move {
            let info = c
                .inspect_commit(pfs::InspectCommitRequest {
                    commit: Some(refs::commit(repo, commit)),
                    block_state: 0,
                })
                .await
                .map_err(|s| failed(&format!("inspect commit {repo}@{commit}"), s))?
                .into_inner();
            let id = info.commit.map(|c| c.id).unwrap_or_default();
            Ok((id, info.finished.is_none()))
        })
    }

    pub fn start_commit(&self, repo: &str, branch: &str) -> Result<String, Errno> {
        let mut c = self.pfs.clone();
        self.run(async move {
            let commit = c
                .start_commit(pfs::StartCommitRequest {
                    parent: Some(refs::commit(repo, "")),
                    branch: branch.to_string(),
                    ..Default::default()
                })
                .await
                .map_err(|s| failed(&format!("start a commit on {repo}@{branch}"), s))?
                .into_inner();
            Ok(commit.id)
        })
    }

    pub fn finish_commit(&self, repo: &str, commit: &str) -> Result<(), tonic::Status> {
        let mut c = self.pfs.clone();
        self.run(async move {
            c.finish_commit(pfs::FinishCommitRequest {
                commit: Some(refs::commit(repo, commit)),
                ..Default::default()
            })
            .await
            .map(|_| ())
        })
    }

    /// The file or directory at `path`: `Ok(None)` when there is none.
    pub fn inspect_file(
        &self,
        repo: &str,
        commit: &str,
        path: &str,
    ) -> Result<Option<pfs::FileInfo>, Errno> {
        let mut c = self.pfs.clone();
        self.run(async move {
            match c
                .inspect_file(pfs::InspectFileRequest {
                    file: Some(file(repo, commit, path)),
                })
                .await
            {
                Ok(f) => Ok(Some(f.into_inner())),
                Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
                Err(s) => Err(failed(&format!("inspect {repo}@{commit}:{path}"), s)),
            }
        })
    }

    /// A directory's children.
    pub fn list_file(
        &self,
        repo: &str,
        commit: &str,
        path: &str,
    ) -> Result<Vec<pfs::FileInfo>, Errno> {
        let mut c = self.pfs.clone();
        self.run(async move {
            let what = format!("list {repo}@{commit}:{path}");
            let stream = c
                .list_file_stream(pfs::ListFileRequest {
                    file: Some(file(repo, commit, path)),
                    full: false,
                    history: 0,
                })
                .await
                .map_err(|s| failed(&what, s))?
                .into_inner();
            stream.try_collect().await.map_err(|s| failed(&what, s))
        })
    }

    /// Fetches `size` bytes from `offset` in the background into `block`.
    pub fn fetch(&self, at: (&str, &str, &str), offset: u64, size: u64, block: Arc<Block>) {
        let call = self.read_call(at, offset, size);
        self.runtime.spawn(async move {
            let result = call.await.map(Arc::new);
            *lock(&block.bytes) = Some(result);
            block.ready.notify_all();
        });
    }

    fn read_call(
        &self,
        (repo, commit, path): (&str, &str, &str),
        offset: u64,
        size: u64,
    ) -> impl std::future::Future<Output = Result<Vec<u8>, Errno>> + Send + 'static {
        let mut c = self.pfs.clone();
        let what = format!("read {repo}@{commit}:{path}");
        let request = pfs::GetFileRequest {
            file: Some(file(repo, commit, path)),
            offset_bytes: offset as i64,
            size_bytes: size as i64,
        };
        async move {
            let mut stream = c
                .get_file(request)
                .await
                .map_err(|s| failed(&what, s))?
                .into_inner();
            let mut out = Vec::with_capacity(size as usize);
            while let Some(part) = stream.try_next().await.map_err(|s| failed(&what, s))? {
                out.extend_from_slice(&part);
            }
            Ok(out)
        }
    }

    /// The whole file, written into `into` from its start.
    pub fn download(
        &self,
        repo: &str,
        commit: &str,
        path: &str,
        into: &File,
    ) -> Result<u64, Errno> {
        let mut c = self.pfs.clone();
        self.run(async move {
            let what = format!("read {repo}@{commit}:{path}");
            let mut stream = c
                .get_file(pfs::GetFileRequest {
                    file: Some(file(repo, commit, path)),
                    offset_bytes: 0,
                    size_bytes: 0,
                })
                .await
                .map_err(|s| failed(&what, s))?
                .into_inner();
            let mut at = 0u64;
            while let Some(part) = stream.try_next().await.map_err(|s| failed(&what, s))? {
                into.write_all_at(&part, at).map_err(|e| local(&what, &e))?;
                at += part.len() as u64;
            }
            Ok(at)
        })
    }

    /// Replaces the file at `path` of the open `commit` with the first
    /// `len` bytes of `from`.
    pub fn upload(
        &self,
        repo: &str,
        commit: &str,
        path: &str,
        from: &File,
        len: u64,
    ) -> Result<(), Errno> {
        let what = format!("write {repo}@{commit}:{path}");
        let from = from.try_clone().map_err(|e| local(&what, &e))?;
        // A read error of the local copy ends the stream early; it is
        // reported instead of the put's own (cancelled) result.
        let read_error: Arc<Mutex<Option<std::io::Error>>> = Arc::default();
        let first = pfs::PutFileRequest {
            file: Some(file(repo, commit, path)),
            overwrite_index: Some(pfs::OverwriteIndex { index: 0 }),
            ..Default::default()
        };
        let frames = len.div_ceil(FRAME as u64);
        let errors = read_error.clone();
        let rest = (0..frames).map_while(move |i| {
            let at = i * FRAME as u64;
            let mut buf = vec![0u8; (len - at).min(FRAME as u64) as usize];
            match from.read_exact_at(&mut buf, at) {
                Ok(()) => Some(pfs::PutFileRequest {
                    value: buf.into(),
                    ..Default::default()
                }),
                Err(e) => {
                    *lock(&errors) = Some(e);
                    None
                }
            }
        });
        let requests = futures::stream::iter(std::iter::once(first).chain(rest));
        let mut c = self.pfs.clone();
        let result = self.run(async move { c.put_file(requests).await });
        if let Some(e) = lock(&read_error).take() {
            return Err(local(&what, &e));
        }
        result.map(|_| ()).map_err(|s| failed(&what, s))
    }

    pub fn delete_file(&self, repo: &str, commit: &str, path: &str) -> Result<(), Errno> {
        let mut c = self.pfs.clone();
        self.run(async move {
            c.delete_file(pfs::DeleteFileRequest {
                file: Some(file(repo, commit, path)),
            })
            .await
            .map(|_| ())
            .map_err(|s| failed(&format!("delete {repo}@{commit}:{path}"), s))
        })
    }

    /// Copies `from` to `to` within one open commit (by reference), replacing
    /// what `to` held.
    pub fn copy_file(&self, repo: &str, commit: &str, from: &str, to: &str) -> Result<(), Errno> {
        let mut c = self.pfs.clone();
        self.run(async move {
            c.copy_file(pfs::CopyFileRequest {
                src: Some(file(repo, commit, from)),
                dst: Some(file(repo, commit, to)),
                overwrite: true,
            })
            .await
            .map(|_| ())
            .map_err(|s| failed(&format!("copy {repo}@{commit}:{from} to {to}"), s))
        })
    }
}

/// A failure of the local copy of a file being written.
pub fn local(what: &str, e: &std::io::Error) -> Errno {
    eprintln!("pachctl mount: {what}: local copy: {e}");
    Errno::EIO
}
