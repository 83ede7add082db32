//! The gRPC services: decode requests, call PFS, encode responses. No domain
//! logic lives here; errors map onto the status codes clients act on.

use std::pin::Pin;

use futures::{Stream, StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use pach_api as api;
use pach_api::pfs_server::Pfs as PfsApi;
use pach_pfs::{BranchName, CommitRecord, FileInfo, Pfs, PfsError, names};
use pach_storage::{Change, IndexReader, PutSession};
use tonic::{Request, Response, Status, Streaming};

pub(crate) type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Entries per ListFile/GlobFile response message.
const FILE_BATCH: usize = 2048;

pub fn status(e: PfsError) -> Status {
    crate::api::status::status(e)
}

fn commit_info(c: &CommitRecord) -> api::CommitInfo {
    api::CommitInfo {
        repo: c.repo.clone(),
        id: c.id.clone(),
        branch: c.branch.clone().unwrap_or_default(),
        parent: c.parent.clone().unwrap_or_default(),
        children: vec![],
        started_ns: c.started_ns,
        finished_ns: c.finished_ns.unwrap_or(0),
        size_bytes: c.size_bytes(),
        description: c.description.clone(),
        provenance: c
            .provenance
            .iter()
            .map(|p| api::CommitRef {
                repo: p.repo.clone(),
                id: p.id.clone(),
            })
            .collect(),
        origin: c.origin.as_str().to_string(),
        file_count: c.file_count(),
    }
}

fn file_info(f: &FileInfo, repo: &str, commit: &str) -> api::FileInfo {
    api::FileInfo {
        path: f.path.clone(),
        is_dir: f.is_dir,
        size_bytes: f.size_bytes,
        hash: if f.is_dir {
            String::new()
        } else {
            f.hash.to_string()
        },
        commit: commit.to_string(),
        repo: repo.to_string(),
    }
}

fn commit_ref(r: Option<api::CommitRef>) -> Result<api::CommitRef, Status> {
    let r = r.ok_or_else(|| {
        Status::invalid_argument("a commit (REPO@BRANCH or REPO@COMMIT) is required")
    })?;
    if r.repo.is_empty() {
        return Err(Status::invalid_argument(
            "the repo name is empty; use REPO@BRANCH",
        ));
    }
    if r.id.is_empty() {
        return Ok(api::CommitRef {
            repo: r.repo,
            id: "master".into(),
        });
    }
    Ok(r)
}

fn file_ref(r: Option<api::FileRef>) -> Result<(api::CommitRef, String), Status> {
    let r = r.ok_or_else(|| Status::invalid_argument("a file (REPO@BRANCH:/PATH) is required"))?;
    Ok((commit_ref(r.commit)?, r.path))
}

fn stream_of<T: Send + 'static>(items: Vec<T>) -> Stream_<T> {
    futures::stream::iter(items.into_iter().map(Ok)).boxed()
}

pub(crate) struct PfsService {
    pub(crate) pfs: Pfs,
}

impl PfsService {
    /// Refuses a client's write while writes are paused (retryable: UNAVAILABLE).
    async fn writable(&self) -> Result<(), Status> {
        let state = pach_admin::writes_state(&**self.pfs.meta())
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        if state.paused {
            return Err(Status::unavailable(state.refusal()));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl PfsApi for PfsService {
    async fn create_repo(
        &self,
        req: Request<api::CreateRepoRequest>,
    ) -> Result<Response<api::Empty>, Status> {
        self.writable().await?;
        let r = req.into_inner();
        self.pfs
            .create_repo(&r.name, &r.description, r.update)
            .await
            .map_err(status)?;
        Ok(Response::new(api::Empty {}))
    }

    async fn inspect_repo(
        &self,
        req: Request<api::RepoRequest>,
    ) -> Result<Response<api::RepoInfo>, Status> {
        let info = self
            .pfs
            .inspect_repo(&req.into_inner().name)
            .await
            .map_err(status)?;
        Ok(Response::new(repo_info(info)))
    }

    async fn list_repo(&self, _: Request<api::Empty>) -> Result<Response<api::RepoInfos>, Status> {
        let repos = self.pfs.list_repo().await.map_err(status)?;
        Ok(Response::new(api::RepoInfos {
            repos: repos.into_iter().map(repo_info).collect(),
        }))
    }

    async fn delete_repo(
        &self,
        req: Request<api::DeleteRepoRequest>,
    ) -> Result<Response<api::Empty>, Status> {
        self.writable().await?;
        let r = req.into_inner();
        if r.all {
            self.pfs.delete_all_repos().await.map_err(status)?;
        } else {
            self.pfs
                .delete_repo(&r.name, r.force)
                .await
                .map_err(status)?;
        }
        Ok(Response::new(api::Empty {}))
    }

    async fn start_commit(
        &self,
        req: Request<api::StartCommitRequest>,
    ) -> Result<Response<api::CommitInfo>, Status> {
        self.writable().await?;
        let r = req.into_inner();
        let branch = Some(r.branch.as_str()).filter(|b| !b.is_empty());
        let parent = Some(r.parent.as_str()).filter(|p| !p.is_empty());
        if branch.is_none() && parent.is_none() {
            return Err(Status::invalid_argument(
                "start commit needs a branch (REPO@BRANCH) or a parent (-p COMMIT)",
            ));
        }
        let c = self
            .pfs
            .start_commit(&r.repo, branch, parent, &r.description)
            .await
            .map_err(status)?;
        Ok(Response::new(commit_info(&c)))
    }

    async fn finish_commit(
        &self,
        req: Request<api::FinishCommitRequest>,
    ) -> Result<Response<api::CommitInfo>, Status> {
        self.writable().await?;
        let r = req.into_inner();
        let c = commit_ref(r.commit)?;
        let done = self
            .pfs
            .finish_commit(&c.repo, &c.id, Some(&r.description))
            .await
            .map_err(status)?;
        Ok(Response::new(commit_info(&done)))
    }

    async fn inspect_commit(
        &self,
        req: Request<api::InspectCommitRequest>,
    ) -> Result<Response<api::CommitInfo>, Status> {
        let r = req.into_inner();
        let c = commit_ref(r.commit)?;
        let record = self
            .pfs
            .inspect_commit(&c.repo, &c.id, r.wait)
            .await
            .map_err(status)?;
        let mut info = commit_info(&record);
        info.children = self
            .pfs
            .commit_children(&record.repo, &record.id)
            .await
            .map_err(status)?;
        Ok(Response::new(info))
    }

    type ListCommitStream = Stream_<api::CommitInfo>;
    async fn list_commit(
        &self,
        req: Request<api::ListCommitRequest>,
    ) -> Result<Response<Self::ListCommitStream>, Status> {
        let r = req.into_inner();
        let from = Some(r.branch_or_commit.as_str()).filter(|s| !s.is_empty());
        let commits = self
            .pfs
            .list_commit(&r.repo, None, from, r.number as usize, false)
            .await
            .map_err(status)?;
        Ok(Response::new(stream_of(
            commits.iter().map(commit_info).collect(),
        )))
    }

    async fn delete_commit(
        &self,
        req: Request<api::CommitRef>,
    ) -> Result<Response<api::Empty>, Status> {
        self.writable().await?;
        let c = commit_ref(Some(req.into_inner()))?;
        self.pfs
            .delete_commit(&c.repo, &c.id)
            .await
            .map_err(status)?;
        Ok(Response::new(api::Empty {}))
    }

    type SubscribeCommitStream = Stream_<api::CommitInfo>;
    async fn subscribe_commit(
        &self,
        req: Request<api::SubscribeCommitRequest>,
    ) -> Result<Response<Self::SubscribeCommitStream>, Status> {
        let r = req.into_inner();
        let branch = if r.branch.is_empty() {
            "master".to_string()
        } else {
            r.branch
        };
        let stream = self
            .pfs
            .subscribe_commit(
                &r.repo,
                &branch,
                None,
                if r.new_only {
                    pach_pfs::CommitState::Finished
                } else {
                    pach_pfs::CommitState::Started
                },
            )
            .await
            .map_err(status)?;
        Ok(Response::new(
            stream
                .map(|c| c.map(|c| commit_info(&c)).map_err(status))
                .boxed(),
        ))
    }

    type FlushCommitStream = Stream_<api::CommitInfo>;
    async fn flush_commit(
        &self,
        req: Request<api::FlushCommitRequest>,
    ) -> Result<Response<Self::FlushCommitStream>, Status> {
        let r = req.into_inner();
        let commits: Vec<(String, String)> =
            r.commits.into_iter().map(|c| (c.repo, c.id)).collect();
        let flushed = self
            .pfs
            .flush_commit(&commits, &r.to_repos)
            .await
            .map_err(status)?;
        Ok(Response::new(stream_of(
            flushed.iter().map(commit_info).collect(),
        )))
    }

    async fn create_branch(
        &self,
        req: Request<api::CreateBranchRequest>,
    ) -> Result<Response<api::Empty>, Status> {
        self.writable().await?;
        let r = req.into_inner();
        let head = Some(r.head.as_str()).filter(|h| !h.is_empty());
        let provenance = if r.provenance.is_empty() {
            None
        } else {
            Some(
                r.provenance
                    .into_iter()
                    .map(|b| BranchName {
                        repo: b.repo,
                        name: b.name,
                    })
                    .collect(),
            )
        };
        self.pfs
            .create_branch(&r.repo, &r.name, head, provenance)
            .await
            .map_err(status)?;
        Ok(Response::new(api::Empty {}))
    }

    async fn inspect_branch(
        &self,
        req: Request<api::BranchRef>,
    ) -> Result<Response<api::BranchInfo>, Status> {
        let r = req.into_inner();
        let info = self
            .pfs
            .inspect_branch(&r.repo, &r.name)
            .await
            .map_err(status)?;
        Ok(Response::new(branch_info(info)))
    }

    async fn list_branch(
        &self,
        req: Request<api::RepoRequest>,
    ) -> Result<Response<api::BranchInfos>, Status> {
        let infos = self
            .pfs
            .list_branch(&req.into_inner().name)
            .await
            .map_err(status)?;
        Ok(Response::new(api::BranchInfos {
            branches: infos.into_iter().map(branch_info).collect(),
        }))
    }

    async fn delete_branch(
        &self,
        req: Request<api::DeleteBranchRequest>,
    ) -> Result<Response<api::Empty>, Status> {
        self.writable().await?;
        let r = req.into_inner();
        self.pfs
            .delete_branch(&r.repo, &r.name, r.force)
            .await
            .map_err(status)?;
        Ok(Response::new(api::Empty {}))
    }

    async fn put_file(
        &self,
        req: Request<Streaming<api::PutFileRequest>>,
    ) -> Result<Response<api::PutFileResponse>, Status> {
        self.writable().await?;
        let mut stream = req.into_inner();
        let target = match stream.message().await?.and_then(|m| m.msg) {
            Some(api::put_file_request::Msg::Header(h)) => commit_ref(h.commit)?,
            _ => {
                return Err(Status::invalid_argument(
                    "a put file stream must start with its header",
                ));
            }
        };
        // Validate the target before receiving any content.
        self.pfs.inspect_repo(&target.repo).await.map_err(status)?;
        let base = self
            .pfs
            .write_base(&target.repo, &target.id)
            .await
            .map_err(status)?;
        let mut upload = Upload {
            session: self.pfs.content().session(),
            base,
            changes: vec![],
            open: None,
            bytes: 0,
        };
        while let Some(msg) = stream.message().await? {
            match msg.msg {
                Some(api::put_file_request::Msg::File(f)) => upload.start(f).await?,
                Some(api::put_file_request::Msg::Data(d)) => upload.data(&d).await?,
                Some(api::put_file_request::Msg::Header(_)) | None => {
                    return Err(Status::invalid_argument(
                        "unexpected message in a put file stream",
                    ));
                }
            }
        }
        upload.close_file().await?;
        let Upload {
            session,
            changes,
            bytes,
            ..
        } = upload;
        if changes.is_empty() {
            return Err(Status::invalid_argument("put file received no files"));
        }
        // Content is durable before any record refers to it.
        session.finish().await.map_err(|e| status(e.into()))?;
        let files = changes.len() as u64;
        let commit = self
            .pfs
            .write_changes(&target.repo, &target.id, changes)
            .await
            .map_err(status)?;
        Ok(Response::new(api::PutFileResponse {
            commit,
            files,
            bytes,
        }))
    }

    type GetFileStream = Stream_<api::GetFileResponse>;
    async fn get_file(
        &self,
        req: Request<api::GetFileRequest>,
    ) -> Result<Response<Self::GetFileStream>, Status> {
        let r = req.into_inner();
        let (c, path) = file_ref(r.file)?;
        let len = if r.length == 0 { None } else { Some(r.length) };
        let stream = self
            .pfs
            .get_file(&c.repo, &c.id, &path, r.offset, len)
            .await
            .map_err(status)?;
        Ok(Response::new(
            stream
                .map(|b| {
                    b.map(|data| api::GetFileResponse {
                        data: data.to_vec(),
                    })
                    .map_err(status)
                })
                .boxed(),
        ))
    }

    async fn inspect_file(
        &self,
        req: Request<api::FileRef>,
    ) -> Result<Response<api::FileInfo>, Status> {
        let (c, path) = file_ref(Some(req.into_inner()))?;
        let (commit, info) = self
            .pfs
            .inspect_file(&c.repo, &c.id, &path)
            .await
            .map_err(status)?;
        Ok(Response::new(file_info(&info, &c.repo, &commit.id)))
    }

    type ListFileStream = Stream_<api::FileInfos>;
    async fn list_file(
        &self,
        req: Request<api::ListFileRequest>,
    ) -> Result<Response<Self::ListFileStream>, Status> {
        let r = req.into_inner();
        let (c, path) = file_ref(r.file)?;
        let (commit, files) = self
            .pfs
            .list_file(&c.repo, &c.id, &path, r.recursive)
            .await
            .map_err(status)?;
        let (repo, id) = (c.repo, commit.id);
        let batches = files.ready_chunks(FILE_BATCH).map(move |batch| {
            let files = batch
                .into_iter()
                .map(|f| f.map(|f| file_info(&f, &repo, &id)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(status)?;
            Ok(api::FileInfos { files })
        });
        Ok(Response::new(batches.boxed()))
    }

    type GlobFileStream = Stream_<api::FileInfos>;
    async fn glob_file(
        &self,
        req: Request<api::GlobFileRequest>,
    ) -> Result<Response<Self::GlobFileStream>, Status> {
        let r = req.into_inner();
        let c = commit_ref(r.commit)?;
        let (commit, files) = self
            .pfs
            .glob_file(&c.repo, &c.id, &r.pattern)
            .await
            .map_err(status)?;
        let infos: Vec<api::FileInfo> = files
            .iter()
            .map(|f| file_info(f, &c.repo, &commit.id))
            .collect();
        let batches: Vec<api::FileInfos> = infos
            .chunks(FILE_BATCH)
            .map(|b| api::FileInfos { files: b.to_vec() })
            .collect();
        Ok(Response::new(stream_of(batches)))
    }

    type DiffFileStream = Stream_<api::FileDiffs>;
    async fn diff_file(
        &self,
        req: Request<api::DiffFileRequest>,
    ) -> Result<Response<Self::DiffFileStream>, Status> {
        let r = req.into_inner();
        let (new_c, new_path) = file_ref(r.new_file)?;
        let old = match r.old_file {
            Some(f) if f.commit.is_some() => Some(file_ref(Some(f))?),
            _ => None,
        };
        let diff = self
            .pfs
            .diff_file(
                (&new_c.repo, &new_c.id, &new_path),
                old.as_ref()
                    .map(|(c, p)| (c.repo.as_str(), c.id.as_str(), p.as_str())),
                false,
            )
            .await
            .map_err(status)?;
        let (nr, or) = (
            new_c.repo.clone(),
            old.as_ref()
                .map(|(c, _)| c.repo.clone())
                .unwrap_or(new_c.repo),
        );
        let mut diffs: Vec<api::FileDiff> = diff
            .new_files
            .iter()
            .map(|f| api::FileDiff {
                change: "added".into(),
                new_file: Some(file_info(f, &nr, "")),
                old_file: None,
            })
            .collect();
        diffs.extend(diff.old_files.iter().map(|f| api::FileDiff {
            change: "deleted".into(),
            new_file: None,
            old_file: Some(file_info(f, &or, "")),
        }));
        let batches: Vec<api::FileDiffs> = diffs
            .chunks(FILE_BATCH)
            .map(|b| api::FileDiffs { diffs: b.to_vec() })
            .collect();
        Ok(Response::new(stream_of(batches)))
    }

    async fn delete_file(
        &self,
        req: Request<api::FileRef>,
    ) -> Result<Response<api::PutFileResponse>, Status> {
        self.writable().await?;
        let (c, path) = file_ref(Some(req.into_inner()))?;
        let commit = self
            .pfs
            .delete_file(&c.repo, &c.id, &path)
            .await
            .map_err(status)?;
        Ok(Response::new(api::PutFileResponse {
            commit,
            files: 1,
            bytes: 0,
        }))
    }

    async fn copy_file(
        &self,
        req: Request<api::CopyFileRequest>,
    ) -> Result<Response<api::PutFileResponse>, Status> {
        self.writable().await?;
        let r = req.into_inner();
        let (sc, sp) = file_ref(r.src)?;
        let (dc, dp) = file_ref(r.dst)?;
        let commit = self
            .pfs
            .copy_file((&sc.repo, &sc.id, &sp), (&dc.repo, &dc.id, &dp), r.append)
            .await
            .map_err(status)?;
        Ok(Response::new(api::PutFileResponse {
            commit,
            files: 0,
            bytes: 0,
        }))
    }

    async fn fsck(&self, _: Request<api::Empty>) -> Result<Response<api::FsckResponse>, Status> {
        let report = self.pfs.fsck().await.map_err(status)?;
        Ok(Response::new(api::FsckResponse {
            commits_checked: report.commits_checked,
            objects_checked: report.indexes_checked,
            problems: report.problems,
        }))
    }
}

fn repo_info(info: pach_pfs::repo::RepoInfo) -> api::RepoInfo {
    api::RepoInfo {
        name: info.record.name,
        description: info.record.description,
        created_ns: info.record.created_ns,
        size_bytes: info.size_bytes,
        branches: info.branches,
    }
}

fn branch_info(info: pach_pfs::branch::BranchInfo) -> api::BranchInfo {
    let to_ref = |b: &BranchName| api::BranchRef {
        repo: b.repo.clone(),
        name: b.name.clone(),
    };
    api::BranchInfo {
        repo: info.record.repo.clone(),
        name: info.record.name.clone(),
        head: info.record.head.clone().unwrap_or_default(),
        provenance: info.record.provenance.iter().map(to_ref).collect(),
        subvenance: info.subvenance.iter().map(to_ref).collect(),
    }
}

/// The state of one put file stream: the file being received, and the changes
/// of the files already received.
struct Upload {
    session: PutSession,
    base: Option<IndexReader>,
    changes: Vec<Change>,
    /// The file being received, and whether it appends.
    open: Option<bool>,
    bytes: u64,
}

impl Upload {
    async fn close_file(&mut self) -> Result<(), Status> {
        if let Some(append) = self.open.take() {
            let entry = self
                .session
                .end_file()
                .await
                .map_err(|e| status(e.into()))?;
            self.changes.push(if append {
                Change::Append(entry)
            } else {
                Change::Put(entry)
            });
        }
        Ok(())
    }

    async fn start(&mut self, f: api::put_file_request::FileStart) -> Result<(), Status> {
        self.close_file().await?;
        if f.delete {
            self.changes.push(Change::Delete(
                names::normalize_path(&f.path).map_err(status)?,
            ));
            return Ok(());
        }
        let path = names::file_path(&f.path).map_err(status)?;
        let previous = match (&self.base, f.append) {
            (Some(base), false) => base.get(&path).await.map_err(|e| status(e.into()))?,
            _ => None,
        };
        self.session.begin_file(path, previous);
        self.open = Some(f.append);
        if !f.url.is_empty() {
            self.fetch_url(&f.url).await?;
        }
        Ok(())
    }

    async fn data(&mut self, data: &[u8]) -> Result<(), Status> {
        if self.open.is_none() {
            return Err(Status::invalid_argument(
                "file data arrived before its file header",
            ));
        }
        self.bytes += data.len() as u64;
        self.session.write(data).await.map_err(|e| status(e.into()))
    }

    /// Streams the content of a URL (http(s), s3, gs, az, file) into the open file.
    async fn fetch_url(&mut self, url: &str) -> Result<(), Status> {
        let (store, path) = open_url(url)?;
        let got = store
            .get(&path)
            .await
            .map_err(|e| Status::failed_precondition(format!("cannot read '{url}': {e}")))?;
        let mut body = got.into_stream();
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| Status::unavailable(format!("reading '{url}': {e}")))?
        {
            self.data(&chunk).await?;
        }
        Ok(())
    }
}

/// The object store and path a URL names (http(s), s3, gs, az, file), with
/// settings and credentials from the standard AWS_*, AZURE_* and GOOGLE_*
/// environment variables.
pub(crate) fn open_url(
    url: &str,
) -> Result<(Box<dyn object_store::ObjectStore>, object_store::path::Path), Status> {
    let parsed = url::Url::parse(url)
        .map_err(|e| Status::invalid_argument(format!("invalid URL '{url}': {e}")))?;
    let mut options: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| {
            ["AWS_", "AZURE_", "GOOGLE_"]
                .iter()
                .any(|p| k.starts_with(p))
        })
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    if parsed.scheme() == "http" {
        // The user named a plain-http URL: allow it (object_store refuses by default).
        options.push(("allow_http".into(), "true".into()));
    }
    object_store::parse_url_opts(&parsed, options)
        .map_err(|e| Status::invalid_argument(format!("cannot read '{url}': {e}")))
}
