//! The filesystem `pachctl mount` serves: the root lists the repos, each
//! repo's directory shows one commit's files.
//!
//! Which commit: the one `-c repo@commit` names, or the head of the branch it
//! names (`master` by default), resolved when the repo is first looked at and
//! kept for the life of the mount, as Pachyderm 1.9 does, so that a reader
//! sees one consistent commit. Reads fetch from pachd by offset (GetFile
//! with an offset and a size) in blocks of 2 MiB, and while a reader goes
//! forward the next blocks are fetched in the background, so that pachd
//! streams while the reader reads; listings are ListFile calls.
//!
//! Writes (with `--write` only): a repo mounted on a branch gets a commit
//! started on that branch at its first write (or, if the branch's head is
//! already open, writes go into that commit); a repo mounted on an open
//! commit writes into it. A file opened for writing is kept in an unnamed
//! local file and put whole into the commit at each close (`flush`), so
//! that a reader after close sees it. Commits this mount started are
//! finished when it is unmounted ([`Filesystem::close`]); commits it found
//! open are left open. PFS has no empty directories: `mkdir` makes a
//! directory that exists in this mount until a file is written into it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, LockOwner, OpenAccMode,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use pach_api::pfs;

use super::remote::{Block, Remote, local};

/// How long the kernel may keep an answer (names and attributes).
const TTL: Duration = Duration::from_secs(1);
/// Reads fetch files from pachd in blocks of this size...
const BLOCK: u64 = 2 << 20;
/// ...and, while a reader goes forward, this many blocks ahead of it.
const AHEAD: u64 = 3;

/// What a repo's directory shows, as the command line asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Branch(String),
    Commit(String),
}

/// What a repo's directory shows, once resolved.
#[derive(Debug, Clone)]
struct View {
    /// The commit read; None while the branch has no commit.
    commit: Option<String>,
    /// Whether `commit` is open (writes may go into it).
    open: bool,
}

/// A commit this mount started, to finish at unmount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub repo: String,
    pub branch: String,
    pub commit: String,
}

/// An open file or directory.
enum Open {
    Dir(Vec<(INodeNo, FileType, String)>),
    Read {
        at: Location,
        size: u64,
        /// The blocks fetched or being fetched, by index: those of the last
        /// read, the one before and the ones ahead.
        blocks: BTreeMap<u64, Arc<Block>>,
    },
    Write {
        at: Location,
        copy: File,
        dirty: bool,
    },
}

/// A file of a commit.
#[derive(Debug, Clone)]
struct Location {
    /// The path in the mount ("repo/dir/file"), the key of `writing`.
    key: String,
    repo: String,
    commit: String,
    /// The path in the commit ("/dir/file").
    path: String,
}

#[derive(Default)]
struct State {
    /// The paths the kernel holds (from a lookup until it forgets them).
    paths: HashMap<INodeNo, String>,
    inodes: HashMap<String, INodeNo>,
    /// How many lookups of each the kernel has not forgotten yet.
    lookups: HashMap<INodeNo, u64>,
    next_inode: u64,
    views: HashMap<String, View>,
    open: HashMap<FileHandle, Open>,
    next_handle: u64,
    /// Directories made by mkdir that PFS does not have (yet).
    local_dirs: HashSet<String>,
    /// Files open for writing: how many handles, and their current size.
    writing: HashMap<String, (u32, u64)>,
    started: Vec<Started>,
}

struct Shared {
    remote: Remote,
    sources: HashMap<String, Source>,
    write: bool,
    debug: bool,
    uid: u32,
    gid: u32,
    mounted_at: SystemTime,
    state: Mutex<State>,
    /// Held while a repo's first write starts its commit, so that two
    /// writers do not start two.
    starting: Mutex<()>,
}

/// The mounted filesystem; [`Filesystem::handle`] keeps a way to close it
/// after the session ends.
pub struct Filesystem(Arc<Shared>);

/// What remains of a mount after its session: its started commits.
pub struct Closing(Arc<Shared>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in one FUSE thread must not make every later call panic too.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// "repo/dir/file" → ("repo", "/dir/file"); the repo alone → ("repo", "/").
fn split(key: &str) -> (&str, String) {
    match key.split_once('/') {
        Some((repo, rest)) => (repo, format!("/{rest}")),
        None => (key, "/".to_string()),
    }
}

fn parent_of(key: &str) -> &str {
    key.rsplit_once('/').map_or("", |(p, _)| p)
}

fn base_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, b)| b)
}

fn kind_of(f: &pfs::FileInfo) -> FileType {
    if f.file_type == pfs::FileType::Dir as i32 {
        FileType::Directory
    } else {
        FileType::RegularFile
    }
}

impl Filesystem {
    pub fn new(remote: Remote, sources: HashMap<String, Source>, write: bool, debug: bool) -> Self {
        let mut state = State {
            next_inode: 2,
            next_handle: 1,
            ..State::default()
        };
        state.paths.insert(INodeNo::ROOT, String::new());
        state.inodes.insert(String::new(), INodeNo::ROOT);
        // SAFETY: getuid and getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Filesystem(Arc::new(Shared {
            remote,
            sources,
            write,
            debug,
            uid,
            gid,
            mounted_at: SystemTime::now(),
            state: Mutex::new(state),
            starting: Mutex::new(()),
        }))
    }

    pub fn handle(&self) -> Closing {
        Closing(self.0.clone())
    }
}

impl Closing {
    /// Puts the files still open for writing (a session ended under its
    /// writers), then finishes the commits the mount started. Returns them,
    /// each with the error of its finish if it failed.
    pub fn close(self) -> Vec<(Started, Result<(), tonic::Status>)> {
        let fs = &self.0;
        let pending: Vec<FileHandle> = lock(&fs.state).open.keys().copied().collect();
        for fh in pending {
            // Errors are printed by the put itself.
            let _ = fs.write_back(fh);
        }
        let started = std::mem::take(&mut lock(&fs.state).started);
        started
            .into_iter()
            .map(|s| {
                let r = fs.remote.finish_commit(&s.repo, &s.commit);
                (s, r)
            })
            .collect()
    }
}

impl Shared {
    fn trace(&self, what: impl FnOnce() -> String) {
        if self.debug {
            eprintln!("pachctl mount: {}", what());
        }
    }

    /// The inode of `key`; with `entry`, one more reference the kernel
    /// holds (an entry is sent), counted in the same step so that a forget
    /// of an earlier reference cannot drop the path in between.
    fn inode(&self, key: &str, entry: bool) -> INodeNo {
        let mut s = lock(&self.state);
        let i = match s.inodes.get(key) {
            Some(i) => *i,
            None => {
                let i = INodeNo(s.next_inode);
                s.next_inode += 1;
                s.inodes.insert(key.to_string(), i);
                s.paths.insert(i, key.to_string());
                i
            }
        };
        if entry {
            *s.lookups.entry(i).or_default() += 1;
        }
        i
    }

    /// The kernel drops `n` references; at none the path is forgotten, so
    /// that the table holds what the kernel holds, not every path seen.
    fn forget(&self, ino: INodeNo, n: u64) {
        let mut s = lock(&self.state);
        let left = match s.lookups.get_mut(&ino) {
            Some(count) => {
                *count = count.saturating_sub(n);
                *count
            }
            None => 0,
        };
        if left == 0 && ino != INodeNo::ROOT {
            s.lookups.remove(&ino);
            if let Some(key) = s.paths.remove(&ino) {
                s.inodes.remove(&key);
                drop(s);
                self.trace(|| format!("forgot {key}"));
            }
        }
    }

    /// The inode number a listing shows: the kernel's if it holds the path,
    /// else one derived from the path (a listing creates no reference).
    fn listed_inode(&self, key: &str) -> INodeNo {
        if let Some(i) = lock(&self.state).inodes.get(key) {
            return *i;
        }
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        // Above every number `inode` hands out.
        INodeNo(hash | 1 << 63)
    }

    fn path(&self, ino: INodeNo) -> Result<String, Errno> {
        lock(&self.state)
            .paths
            .get(&ino)
            .cloned()
            .ok_or(Errno::ENOENT)
    }

    fn attr(&self, ino: INodeNo, kind: FileType, size: u64, writable: bool) -> FileAttr {
        let dir = kind == FileType::Directory;
        let perm = match (dir, writable) {
            (true, true) => 0o755,
            (true, false) => 0o555,
            (false, true) => 0o644,
            (false, false) => 0o444,
        };
        FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: self.mounted_at,
            mtime: self.mounted_at,
            ctime: self.mounted_at,
            crtime: self.mounted_at,
            kind,
            perm,
            nlink: if dir { 2 } else { 1 },
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 1 << 20,
            flags: 0,
        }
    }

    /// The commit a repo's directory shows, resolved at first use.
    fn view(&self, repo: &str) -> Result<View, Errno> {
        if let Some(v) = lock(&self.state).views.get(repo) {
            return Ok(v.clone());
        }
        let source = self
            .sources
            .get(repo)
            .cloned()
            .unwrap_or_else(|| Source::Branch("master".into()));
        let view = match source {
            Source::Branch(b) => match self.remote.branch_head(repo, &b)? {
                None => View {
                    commit: None,
                    open: false,
                },
                Some(head) => {
                    let (_, open) = self.remote.commit(repo, &head)?;
                    View {
                        commit: Some(head),
                        open,
                    }
                }
            },
            Source::Commit(c) => {
                let (id, open) = self.remote.commit(repo, &c)?;
                View {
                    commit: Some(id),
                    open,
                }
            }
        };
        Ok(lock(&self.state)
            .views
            .entry(repo.to_string())
            .or_insert(view)
            .clone())
    }

    /// Whether writes to `repo` are possible at all (before any is made).
    fn may_write(&self, repo: &str) -> bool {
        self.write
            && match self.sources.get(repo) {
                Some(Source::Commit(_)) => self.view(repo).is_ok_and(|v| v.open),
                _ => true,
            }
    }

    /// The open commit writes to `repo` go into, started on first use.
    fn writable(&self, repo: &str) -> Result<String, Errno> {
        if !self.write {
            return Err(Errno::EROFS);
        }
        let _one = lock(&self.starting);
        let view = self.view(repo)?;
        if view.open
            && let Some(c) = view.commit
        {
            return Ok(c);
        }
        let branch = match self.sources.get(repo) {
            Some(Source::Commit(_)) => return Err(Errno::EROFS),
            Some(Source::Branch(b)) => b.clone(),
            None => "master".to_string(),
        };
        let commit = self.remote.start_commit(repo, &branch)?;
        self.trace(|| format!("started commit {repo}@{commit} on branch {branch}"));
        let mut s = lock(&self.state);
        s.views.insert(
            repo.to_string(),
            View {
                commit: Some(commit.clone()),
                open: true,
            },
        );
        s.started.push(Started {
            repo: repo.to_string(),
            branch,
            commit: commit.clone(),
        });
        Ok(commit)
    }

    /// The kind and size of what is at `key`.
    fn stat(&self, key: &str) -> Result<(FileType, u64), Errno> {
        if key.is_empty() {
            return Ok((FileType::Directory, 0));
        }
        {
            let s = lock(&self.state);
            if let Some((_, size)) = s.writing.get(key) {
                return Ok((FileType::RegularFile, *size));
            }
            if s.local_dirs.contains(key) {
                return Ok((FileType::Directory, 0));
            }
        }
        let (repo, path) = split(key);
        if path == "/" {
            return if self.remote.repo_exists(repo)? {
                Ok((FileType::Directory, 0))
            } else {
                Err(Errno::ENOENT)
            };
        }
        let Some(commit) = self.view(repo)?.commit else {
            return Err(Errno::ENOENT);
        };
        let f = self
            .remote
            .inspect_file(repo, &commit, &path)?
            .ok_or(Errno::ENOENT)?;
        Ok((kind_of(&f), f.size_bytes))
    }

    /// The attributes of `key`; with `entry`, for an entry sent to the
    /// kernel (see [`Shared::inode`]).
    fn entry_attr(&self, key: &str, entry: bool) -> Result<FileAttr, Errno> {
        let (kind, size) = self.stat(key)?;
        let ino = self.inode(key, entry);
        let writable = !key.is_empty() && self.may_write(split(key).0);
        Ok(self.attr(ino, kind, size, writable))
    }

    fn children(&self, key: &str) -> Result<Vec<(INodeNo, FileType, String)>, Errno> {
        let mut names: Vec<(FileType, String)> = Vec::new();
        if key.is_empty() {
            for repo in self.remote.list_repos()? {
                names.push((FileType::Directory, repo));
            }
        } else {
            let (repo, path) = split(key);
            if let Some(commit) = self.view(repo)?.commit {
                match self.remote.list_file(repo, &commit, &path) {
                    Ok(files) => names.extend(files.iter().map(|f| {
                        (
                            kind_of(f),
                            base_name(&f.file.as_ref().map(|f| f.path.clone()).unwrap_or_default())
                                .to_string(),
                        )
                    })),
                    // A directory made here is not in PFS yet.
                    Err(e) if e == Errno::ENOENT && lock(&self.state).local_dirs.contains(key) => {}
                    Err(e) => return Err(e),
                }
            }
            let s = lock(&self.state);
            let local = s
                .local_dirs
                .iter()
                .filter(|d| parent_of(d) == key)
                .map(|d| (FileType::Directory, base_name(d).to_string()));
            let written = s
                .writing
                .keys()
                .filter(|f| parent_of(f) == key)
                .map(|f| (FileType::RegularFile, base_name(f).to_string()));
            let extra: Vec<_> = local.chain(written).collect();
            drop(s);
            for (kind, name) in extra {
                if !names.iter().any(|(_, n)| *n == name) {
                    names.push((kind, name));
                }
            }
        }
        let parent = self.listed_inode(parent_of(key));
        let mut out = vec![
            (self.listed_inode(key), FileType::Directory, ".".to_string()),
            (parent, FileType::Directory, "..".to_string()),
        ];
        for (kind, name) in names {
            out.push((self.listed_inode(&join(key, &name)), kind, name));
        }
        Ok(out)
    }

    fn add_handle(&self, open: Open) -> FileHandle {
        let mut s = lock(&self.state);
        let fh = FileHandle(s.next_handle);
        s.next_handle += 1;
        if let Open::Write { at, copy, .. } = &open {
            let size = copy.metadata().map(|m| m.len()).unwrap_or(0);
            let entry = s.writing.entry(at.key.clone()).or_insert((0, size));
            entry.0 += 1;
        }
        s.open.insert(fh, open);
        fh
    }

    /// A file of `key` opened for writing: its local copy, empty with
    /// `truncate`, or holding the file's content.
    fn open_write(&self, key: &str, truncate: bool, create: bool) -> Result<FileHandle, Errno> {
        let (repo, path) = split(key);
        if path == "/" {
            return Err(Errno::EISDIR);
        }
        let commit = self.writable(repo)?;
        let copy = tempfile::tempfile().map_err(|e| local(key, &e))?;
        let exists = !create
            && self
                .remote
                .inspect_file(repo, &commit, &path)?
                .is_some_and(|f| kind_of(&f) == FileType::RegularFile);
        if exists && !truncate {
            // Another handle may hold newer bytes than pachd: put them first.
            self.write_back_key(key)?;
            self.remote.download(repo, &commit, &path, &copy)?;
        }
        Ok(self.add_handle(Open::Write {
            at: Location {
                key: key.to_string(),
                repo: repo.to_string(),
                commit,
                path,
            },
            copy,
            dirty: !exists || truncate,
        }))
    }

    /// Puts the local copy of every dirty handle of `key`.
    fn write_back_key(&self, key: &str) -> Result<(), Errno> {
        let handles: Vec<FileHandle> = lock(&self.state)
            .open
            .iter()
            .filter(|(_, o)| matches!(o, Open::Write { at, dirty: true, .. } if at.key == key))
            .map(|(fh, _)| *fh)
            .collect();
        for fh in handles {
            self.write_back(fh)?;
        }
        Ok(())
    }

    /// Puts a written file into its commit, if it changed since the last put.
    fn write_back(&self, fh: FileHandle) -> Result<(), Errno> {
        let (at, copy) = {
            let s = lock(&self.state);
            match s.open.get(&fh) {
                Some(Open::Write {
                    at,
                    copy,
                    dirty: true,
                }) => (
                    at.clone(),
                    copy.try_clone().map_err(|e| local(&at.key, &e))?,
                ),
                _ => return Ok(()),
            }
        };
        let len = copy.metadata().map_err(|e| local(&at.key, &e))?.len();
        self.remote
            .upload(&at.repo, &at.commit, &at.path, &copy, len)?;
        self.trace(|| format!("put {}@{}:{} ({len} bytes)", at.repo, at.commit, at.path));
        if let Some(Open::Write { dirty, .. }) = lock(&self.state).open.get_mut(&fh) {
            *dirty = false;
        }
        Ok(())
    }

    fn read(&self, fh: FileHandle, offset: u64, size: u64) -> Result<Vec<u8>, Errno> {
        let fetch = {
            let mut s = lock(&self.state);
            match s.open.get_mut(&fh) {
                Some(Open::Write { copy, at, .. }) => {
                    let mut buf = vec![0u8; size as usize];
                    let mut got = 0;
                    while got < buf.len() {
                        match copy.read_at(&mut buf[got..], offset + got as u64) {
                            Ok(0) => break,
                            Ok(n) => got += n,
                            Err(e) => return Err(local(&at.key, &e)),
                        }
                    }
                    buf.truncate(got);
                    return Ok(buf);
                }
                Some(Open::Read {
                    at,
                    size: file_size,
                    blocks,
                }) => {
                    let end = (offset + size).min(*file_size);
                    if offset >= end {
                        return Ok(Vec::new());
                    }
                    let first = offset / BLOCK;
                    let last = (end - 1) / BLOCK;
                    // The kernel reads ahead with several requests at once,
                    // which come in any order: a reader goes forward when
                    // the block before its read is here.
                    let forward = first == 0 || blocks.contains_key(&(first - 1));
                    let until = if forward {
                        (last + AHEAD).min((*file_size - 1) / BLOCK)
                    } else {
                        last
                    };
                    blocks.retain(|k, _| *k + 1 >= first && *k <= until);
                    let mut start = Vec::new();
                    for k in first..=until {
                        blocks.entry(k).or_insert_with(|| {
                            let b = Arc::new(Block::default());
                            start.push((k, b.clone()));
                            b
                        });
                    }
                    let needed: Vec<(u64, Arc<Block>)> =
                        (first..=last).map(|k| (k, blocks[&k].clone())).collect();
                    (at.clone(), start, needed, end)
                }
                _ => return Err(Errno::EBADF),
            }
        };
        let (at, start, needed, end) = fetch;
        let remote_at = (at.repo.as_str(), at.commit.as_str(), at.path.as_str());
        for (k, block) in start {
            self.trace(|| format!("fetching {}:{} block {k}", at.repo, at.path));
            self.remote.fetch(remote_at, k * BLOCK, BLOCK, block);
        }
        let mut answer = Vec::with_capacity((end - offset) as usize);
        for (k, block) in needed {
            let bytes = match block.wait() {
                Ok(b) => b,
                Err(e) => {
                    // The next read asks pachd again.
                    if let Some(Open::Read { blocks, .. }) = lock(&self.state).open.get_mut(&fh) {
                        blocks.retain(|_, b| !Arc::ptr_eq(b, &block));
                    }
                    return Err(e);
                }
            };
            let block_start = k * BLOCK;
            let from = (offset.max(block_start) - block_start) as usize;
            let to = ((end - block_start) as usize).min(bytes.len());
            if from < to {
                answer.extend_from_slice(&bytes[from..to]);
            }
        }
        Ok(answer)
    }

    fn write(&self, fh: FileHandle, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        let mut s = lock(&self.state);
        let key = match s.open.get_mut(&fh) {
            Some(Open::Write { at, copy, dirty }) => {
                copy.write_all_at(data, offset)
                    .map_err(|e| local(&at.key, &e))?;
                *dirty = true;
                at.key.clone()
            }
            Some(_) => return Err(Errno::EBADF),
            None => return Err(Errno::EBADF),
        };
        if let Some((_, size)) = s.writing.get_mut(&key) {
            *size = (*size).max(offset + data.len() as u64);
        }
        Ok(data.len() as u32)
    }

    fn release(&self, fh: FileHandle) -> Result<(), Errno> {
        let put = self.write_back(fh);
        let mut s = lock(&self.state);
        if let Some(Open::Write { at, .. }) = s.open.remove(&fh) {
            if let Some((n, _)) = s.writing.get_mut(&at.key) {
                *n -= 1;
                if *n == 0 {
                    s.writing.remove(&at.key);
                }
            }
            // A file put into a directory made here: PFS has it now.
            let mut dir = parent_of(&at.key).to_string();
            while !dir.is_empty() {
                s.local_dirs.remove(&dir);
                dir = parent_of(&dir).to_string();
            }
        }
        put
    }

    fn truncate(&self, key: &str, fh: Option<FileHandle>, len: u64) -> Result<(), Errno> {
        let handle = match fh {
            Some(fh) if matches!(lock(&self.state).open.get(&fh), Some(Open::Write { .. })) => fh,
            // Without a handle of ours: open one, truncate, put, close.
            _ => {
                let fh = self.open_write(key, len == 0, false)?;
                self.truncate(key, Some(fh), len)?;
                return self.release(fh);
            }
        };
        let mut s = lock(&self.state);
        if let Some(Open::Write { copy, dirty, at }) = s.open.get_mut(&handle) {
            copy.set_len(len).map_err(|e| local(&at.key, &e))?;
            *dirty = true;
        }
        if let Some((_, size)) = s.writing.get_mut(key) {
            *size = len;
        }
        Ok(())
    }

    fn remove(&self, key: &str, dir: bool) -> Result<(), Errno> {
        let (repo, path) = split(key);
        if path == "/" {
            return Err(Errno::EPERM);
        }
        let commit = self.writable(repo)?;
        let in_pfs = self.remote.inspect_file(repo, &commit, &path)?;
        let local_dir = lock(&self.state).local_dirs.contains(key);
        match (&in_pfs, dir) {
            (None, _) if !local_dir => return Err(Errno::ENOENT),
            (None, false) => return Err(Errno::EISDIR),
            (None, true) => {
                let mut s = lock(&self.state);
                if s.local_dirs.iter().any(|d| parent_of(d) == key)
                    || s.writing.keys().any(|f| parent_of(f) == key)
                {
                    return Err(Errno::ENOTEMPTY);
                }
                s.local_dirs.remove(key);
                return Ok(());
            }
            // A PFS directory always holds a file.
            (Some(f), true) if kind_of(f) == FileType::Directory => return Err(Errno::ENOTEMPTY),
            (Some(_), true) => return Err(Errno::ENOTDIR),
            (Some(f), false) if kind_of(f) == FileType::Directory => return Err(Errno::EISDIR),
            (Some(_), false) => {}
        }
        self.remote.delete_file(repo, &commit, &path)?;
        self.trace(|| format!("deleted {repo}@{commit}:{path}"));
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), Errno> {
        let (repo, from_path) = split(from);
        let (to_repo, to_path) = split(to);
        if repo != to_repo {
            return Err(Errno::EXDEV);
        }
        if from_path == "/" || to_path == "/" {
            return Err(Errno::EPERM);
        }
        let commit = self.writable(repo)?;
        self.write_back_key(from)?;
        let local_dir = lock(&self.state).local_dirs.contains(from);
        if let Some(f) = self.remote.inspect_file(repo, &commit, &from_path)? {
            if kind_of(&f) == FileType::Directory
                && self.remote.inspect_file(repo, &commit, &to_path)?.is_some()
            {
                return Err(Errno::ENOTEMPTY);
            }
            self.remote.copy_file(repo, &commit, &from_path, &to_path)?;
            self.remote.delete_file(repo, &commit, &from_path)?;
        } else if !local_dir {
            return Err(Errno::ENOENT);
        }
        let mut s = lock(&self.state);
        // Everything at or below `from` is now at `to`: names made here and
        // the inodes the kernel holds.
        let moved = |k: &str| -> Option<String> {
            if k == from {
                Some(to.to_string())
            } else {
                k.strip_prefix(from)
                    .filter(|rest| rest.starts_with('/'))
                    .map(|rest| format!("{to}{rest}"))
            }
        };
        s.local_dirs = s
            .local_dirs
            .iter()
            .map(|d| moved(d).unwrap_or_else(|| d.clone()))
            .collect();
        let renamed: Vec<(INodeNo, String)> = s
            .paths
            .iter()
            .filter_map(|(i, k)| moved(k).map(|k| (*i, k)))
            .collect();
        for (i, k) in renamed {
            if let Some(old) = s.paths.insert(i, k.clone()) {
                s.inodes.remove(&old);
            }
            s.inodes.insert(k, i);
        }
        self.trace(|| format!("renamed {from} to {to}"));
        Ok(())
    }
}

/// An answer with attributes, as `--debug` prints it.
fn shown(r: &Result<FileAttr, Errno>) -> String {
    match r {
        Ok(a) => format!("inode {} {:?} {} bytes", a.ino, a.kind, a.size),
        Err(e) => format!("{e:?}"),
    }
}

fn result_empty(r: Result<(), Errno>, reply: ReplyEmpty) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

fn name_of(name: &OsStr) -> Result<&str, Errno> {
    // PFS paths are UTF-8.
    name.to_str().ok_or(Errno::EINVAL)
}

impl fuser::Filesystem for Filesystem {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let fs = &self.0;
        let r = (|| {
            let key = join(&fs.path(parent)?, name_of(name)?);
            fs.entry_attr(&key, true)
        })();
        fs.trace(|| format!("lookup {parent} {name:?}: {}", shown(&r)));
        match r {
            Ok(attr) => {
                reply.entry(&TTL, &attr, Generation(0));
            }
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.0.forget(ino, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let fs = &self.0;
        match fs.path(ino).and_then(|k| fs.entry_attr(&k, false)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let fs = &self.0;
        let r = (|| {
            let key = fs.path(ino)?;
            // PFS files have no owner or mode to change; times are accepted
            // (`touch`), since a file's time is its commit's.
            if mode.is_some() || uid.is_some() || gid.is_some() {
                return Err(Errno::EPERM);
            }
            if let Some(len) = size {
                fs.truncate(&key, fh, len)?;
            }
            fs.entry_attr(&key, false)
        })();
        fs.trace(|| format!("setattr {ino} size {size:?}: {}", shown(&r)));
        match r {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let fs = &self.0;
        let r = (|| {
            let parent = fs.path(parent)?;
            if parent.is_empty() {
                // Repos are made with `pachctl create repo`.
                return Err(Errno::EPERM);
            }
            let key = join(&parent, name_of(name)?);
            match fs.stat(&key) {
                Ok(_) => return Err(Errno::EEXIST),
                Err(e) if e == Errno::ENOENT => {}
                Err(e) => return Err(e),
            }
            fs.writable(split(&key).0)?;
            lock(&fs.state).local_dirs.insert(key.clone());
            fs.entry_attr(&key, true)
        })();
        fs.trace(|| format!("mkdir {parent} {name:?}: {}", shown(&r)));
        match r {
            Ok(attr) => {
                reply.entry(&TTL, &attr, Generation(0));
            }
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let fs = &self.0;
        let r = (|| fs.remove(&join(&fs.path(parent)?, name_of(name)?), false))();
        fs.trace(|| format!("unlink {parent} {name:?}: {r:?}"));
        result_empty(r, reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let fs = &self.0;
        let r = (|| fs.remove(&join(&fs.path(parent)?, name_of(name)?), true))();
        fs.trace(|| format!("rmdir {parent} {name:?}: {r:?}"));
        result_empty(r, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let fs = &self.0;
        let r = (|| {
            if !flags.is_empty() {
                return Err(Errno::EINVAL);
            }
            let from = join(&fs.path(parent)?, name_of(name)?);
            let to = join(&fs.path(newparent)?, name_of(newname)?);
            fs.rename(&from, &to)
        })();
        fs.trace(|| format!("rename {parent} {name:?} to {newparent} {newname:?}: {r:?}"));
        result_empty(r, reply);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let fs = &self.0;
        let r = (|| {
            let key = fs.path(ino)?;
            if flags.acc_mode() != OpenAccMode::O_RDONLY {
                let truncate = flags.0 & libc::O_TRUNC != 0;
                return Ok((fs.open_write(&key, truncate, false)?, FopenFlags::empty()));
            }
            let (kind, size) = fs.stat(&key)?;
            if kind == FileType::Directory {
                return Err(Errno::EISDIR);
            }
            let (repo, path) = split(&key);
            let view = fs.view(repo)?;
            let commit = view.commit.ok_or(Errno::ENOENT)?;
            let fh = fs.add_handle(Open::Read {
                at: Location {
                    key: key.clone(),
                    repo: repo.to_string(),
                    commit,
                    path,
                },
                size,
                blocks: BTreeMap::new(),
            });
            // A finished commit never changes: the kernel may keep its pages.
            let keep = if view.open {
                FopenFlags::empty()
            } else {
                FopenFlags::FOPEN_KEEP_CACHE
            };
            Ok((fh, keep))
        })();
        fs.trace(|| format!("open {ino} {flags:?}: {r:?}"));
        match r {
            Ok((fh, flags)) => reply.opened(fh, flags),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let fs = &self.0;
        let r = (|| {
            let parent = fs.path(parent)?;
            if parent.is_empty() {
                return Err(Errno::EPERM);
            }
            let key = join(&parent, name_of(name)?);
            let fh = fs.open_write(&key, true, true)?;
            Ok((fh, fs.entry_attr(&key, true)?))
        })();
        fs.trace(|| {
            format!(
                "create {parent} {name:?}: {}",
                shown(&r.as_ref().map(|(_, a)| *a).map_err(|e| *e))
            )
        });
        match r {
            Ok((fh, attr)) => {
                reply.created(&TTL, &attr, Generation(0), fh, FopenFlags::empty());
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.0.read(fh, offset, u64::from(size)) {
            Ok(bytes) => reply.data(&bytes),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.0.write(fh, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let r = self.0.write_back(fh);
        self.0.trace(|| format!("flush {ino}: {r:?}"));
        result_empty(r, reply);
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        result_empty(self.0.write_back(fh), reply);
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let r = self.0.release(fh);
        self.0.trace(|| format!("release {ino}: {r:?}"));
        result_empty(r, reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let fs = &self.0;
        let r = fs.path(ino).and_then(|k| {
            match fs.stat(&k)? {
                (FileType::Directory, _) => {}
                _ => return Err(Errno::ENOTDIR),
            }
            fs.children(&k)
        });
        fs.trace(|| format!("opendir {ino}: {:?}", r.as_ref().map(Vec::len)));
        match r {
            Ok(entries) => reply.opened(fs.add_handle(Open::Dir(entries)), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let s = lock(&self.0.state);
        let Some(Open::Dir(entries)) = s.open.get(&fh) else {
            reply.error(Errno::EBADF);
            return;
        };
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(*ino, i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        lock(&self.0.state).open.remove(&fh);
        reply.ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_repo_and_commit_paths() {
        assert_eq!(split("images"), ("images", "/".to_string()));
        assert_eq!(split("images/a/b.txt"), ("images", "/a/b.txt".to_string()));
        assert_eq!(join("", "images"), "images");
        assert_eq!(join("images/a", "b.txt"), "images/a/b.txt");
        assert_eq!(parent_of("images/a/b.txt"), "images/a");
        assert_eq!(parent_of("images"), "");
        assert_eq!(base_name("/a/b.txt"), "b.txt");
    }
}
