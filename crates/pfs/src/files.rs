//! Files of a commit: listing (directories are implicit: a directory exists
//! while a file exists below it), glob, inspect, read, diff, delete and copy.
//! Directory listings stream: a directory's files are contiguous in the sorted
//! index, so each child directory's size is summed as its entries pass by.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use globset::GlobBuilder;
use pach_storage::{Change, ContentHash, FileEntry, IndexReader};
use tokio::sync::mpsc;

use crate::Pfs;
use crate::error::{PfsError, Result};
use crate::names::{file_path, normalize_path};
use crate::records::CommitRecord;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub path: String,
    pub is_dir: bool,
    pub size_bytes: u64,
    /// None for directories.
    pub hash: Option<ContentHash>,
}

impl FileInfo {
    fn file(e: &FileEntry) -> Self {
        Self {
            path: e.path.clone(),
            is_dir: false,
            size_bytes: e.size,
            hash: Some(e.hash),
        }
    }
    fn dir(path: String, size_bytes: u64) -> Self {
        Self {
            path,
            is_dir: true,
            size_bytes,
            hash: None,
        }
    }
}

/// One difference between two commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileDiff {
    Added(FileInfo),
    Deleted(FileInfo),
    Modified { new: FileInfo, old: FileInfo },
}

/// What a client writes into a commit (content already stored).
pub type FileWrite = Change;

/// The key range `[start, end)` holding every path strictly below `dir`.
fn below(dir: &str) -> (String, String) {
    if dir == "/" {
        ("/".to_string(), "0".to_string())
    } else {
        // '0' is the byte after '/', so "dir0" bounds every "dir/...".
        (format!("{dir}/"), format!("{dir}0"))
    }
}

impl Pfs {
    /// The commit and its file index.
    pub async fn open_commit(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<(CommitRecord, IndexReader)> {
        let (commit, _) = self.resolve_commit(repo, reference).await?;
        let index = self.commit_index(&commit).await?;
        Ok((commit, index))
    }

    /// What readers of a branch see: its head commit and that commit's file
    /// index, or None while the branch has no commit. Unlike a commit
    /// reference, a missing branch is [`PfsError::BranchNotFound`].
    pub async fn branch_head(
        &self,
        repo: &str,
        branch: &str,
    ) -> Result<Option<(CommitRecord, IndexReader)>> {
        self.repo_record(repo).await?;
        let (record, _) =
            self.branch_record(repo, branch)
                .await?
                .ok_or_else(|| PfsError::BranchNotFound {
                    repo: repo.into(),
                    branch: branch.into(),
                })?;
        let Some(head) = record.head else {
            return Ok(None);
        };
        let (commit, _) =
            self.commit_record(repo, &head)
                .await?
                .ok_or_else(|| PfsError::CommitNotFound {
                    repo: repo.into(),
                    commit: head.clone(),
                })?;
        let index = self.commit_index(&commit).await?;
        Ok(Some((commit, index)))
    }

    /// The index the next write to `reference` builds on, to deduplicate
    /// re-written files against. None when the target has no files yet.
    /// Asked before a write's content is received, it refuses a write that
    /// would be refused anyway ([`Pfs::check_writable`]), so that a client
    /// does not send its content for nothing.
    pub async fn write_base(&self, repo: &str, reference: &str) -> Result<Option<IndexReader>> {
        self.check_writable(repo, reference).await?;
        match self.resolve_commit(repo, reference).await {
            Ok((c, _)) => Ok(Some(self.commit_index(&c).await?)),
            Err(PfsError::CommitNotFound { .. }) | Err(PfsError::FailedPrecondition(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lists `path`: a file lists itself, a directory its children (or, with
    /// `recursive`, every file below it).
    pub async fn list_file(
        &self,
        repo: &str,
        reference: &str,
        path: &str,
        recursive: bool,
    ) -> Result<(CommitRecord, BoxStream<'static, Result<FileInfo>>)> {
        let path = normalize_path(path)?;
        let (commit, index) = self.open_commit(repo, reference).await?;
        if path != "/"
            && let Some(e) = index.get(&path).await?
        {
            let one = futures::stream::iter([Ok(FileInfo::file(&e))]).boxed();
            return Ok((commit, one));
        }
        let (start, end) = below(&path);
        let mut entries = index.range(&start, Some(&end)).peekable();
        if path != "/" && std::pin::Pin::new(&mut entries).peek().await.is_none() {
            return Err(PfsError::FileNotFound {
                repo: repo.into(),
                commit: commit.id,
                path,
            });
        }
        let entries = entries.map_err(PfsError::from);
        if recursive {
            return Ok((commit, entries.map_ok(|e| FileInfo::file(&e)).boxed()));
        }
        let (tx, rx) = mpsc::channel::<Result<FileInfo>>(1024);
        tokio::spawn(async move {
            let mut entries = std::pin::pin!(entries);
            let mut open_dir: Option<(String, u64)> = None;
            while let Some(item) = entries.next().await {
                let out = match item {
                    Err(e) => Some(Err(e)),
                    Ok(e) => {
                        let rest = &e.path[start.len()..];
                        match rest.find('/') {
                            Some(i) => {
                                let child = &e.path[..start.len() + i];
                                match &mut open_dir {
                                    Some((d, size)) if d == child => {
                                        *size += e.size;
                                        None
                                    }
                                    _ => open_dir
                                        .replace((child.to_string(), e.size))
                                        .map(|(d, s)| Ok(FileInfo::dir(d, s))),
                                }
                            }
                            None => {
                                if let Some((d, s)) = open_dir.take()
                                    && tx.send(Ok(FileInfo::dir(d, s))).await.is_err()
                                {
                                    return;
                                }
                                Some(Ok(FileInfo::file(&e)))
                            }
                        }
                    }
                };
                if let Some(out) = out
                    && tx.send(out).await.is_err()
                {
                    return;
                }
            }
            if let Some((d, s)) = open_dir {
                let _ = tx.send(Ok(FileInfo::dir(d, s))).await;
            }
        });
        Ok((commit, receiver_stream(rx)))
    }

    /// Files and directories whose path matches a glob pattern (`*` stays within
    /// one path component, `**` crosses them), in path order.
    pub async fn glob_file(
        &self,
        repo: &str,
        reference: &str,
        pattern: &str,
    ) -> Result<(CommitRecord, Vec<FileInfo>)> {
        let normalized = pachyderm_glob(pattern);
        let glob = GlobBuilder::new(&normalized)
            .literal_separator(true)
            .build()
            .map_err(|e| {
                PfsError::InvalidArgument(format!("invalid glob pattern '{pattern}': {e}"))
            })?
            .compile_matcher();
        let (commit, index) = self.open_commit(repo, reference).await?;
        let mut dirs: BTreeMap<String, u64> = BTreeMap::new();
        let mut files = Vec::new();
        let mut entries = index.range("/", None);
        while let Some(e) = entries.next().await {
            let e = e?;
            if glob.is_match(&e.path) {
                files.push(FileInfo::file(&e));
            }
            let mut cut = 0;
            while let Some(i) = e.path[cut + 1..].find('/') {
                cut += 1 + i;
                let dir = &e.path[..cut];
                if let Some(size) = dirs.get_mut(dir) {
                    *size += e.size;
                } else if glob.is_match(dir) {
                    dirs.insert(dir.to_string(), e.size);
                }
            }
        }
        let mut out: Vec<FileInfo> = dirs.into_iter().map(|(d, s)| FileInfo::dir(d, s)).collect();
        out.extend(files);
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((commit, out))
    }

    pub async fn inspect_file(
        &self,
        repo: &str,
        reference: &str,
        path: &str,
    ) -> Result<(CommitRecord, FileInfo)> {
        let path = normalize_path(path)?;
        let (commit, index) = self.open_commit(repo, reference).await?;
        if path == "/" {
            return Ok((commit, FileInfo::dir(path, index.bytes())));
        }
        if let Some(e) = index.get(&path).await? {
            return Ok((commit, FileInfo::file(&e)));
        }
        let (start, end) = below(&path);
        let mut size = 0;
        let mut any = false;
        let mut entries = index.range(&start, Some(&end));
        while let Some(e) = entries.next().await {
            size += e?.size;
            any = true;
        }
        if !any {
            return Err(PfsError::FileNotFound {
                repo: repo.into(),
                commit: commit.id,
                path,
            });
        }
        Ok((commit, FileInfo::dir(path, size)))
    }

    /// The bytes of one file, `offset`..`offset + len` (None = to the end).
    pub async fn get_file(
        &self,
        repo: &str,
        reference: &str,
        path: &str,
        offset: u64,
        len: Option<u64>,
    ) -> Result<BoxStream<'static, Result<Bytes>>> {
        let path = normalize_path(path)?;
        let (commit, index) = self.open_commit(repo, reference).await?;
        match index.get(&path).await? {
            Some(e) => Ok(self
                .content
                .read_file(&e, offset, len)
                .map_err(PfsError::from)
                .boxed()),
            None => {
                let (start, end) = below(&path);
                let is_dir = path == "/" || index.range(&start, Some(&end)).next().await.is_some();
                if is_dir {
                    Err(PfsError::IsDirectory {
                        repo: repo.into(),
                        commit: commit.id,
                        path,
                    })
                } else {
                    Err(PfsError::FileNotFound {
                        repo: repo.into(),
                        commit: commit.id,
                        path,
                    })
                }
            }
        }
    }

    /// Files that differ between two commits below `path` (the old side defaults
    /// to the new commit's parent, same path).
    pub async fn diff_file(
        &self,
        new: (&str, &str, &str),
        old: Option<(&str, &str, &str)>,
    ) -> Result<Vec<FileDiff>> {
        let (new_repo, new_ref, new_path) = new;
        let (new_commit, new_index) = self.open_commit(new_repo, new_ref).await?;
        let new_path = normalize_path(new_path)?;
        let (old_index, old_path) = match old {
            Some((r, c, p)) => (Some(self.open_commit(r, c).await?.1), normalize_path(p)?),
            None => match &new_commit.parent {
                Some(p) => (
                    Some(self.open_commit(new_repo, p).await?.1),
                    new_path.clone(),
                ),
                None => (None, new_path.clone()),
            },
        };
        let collect = |index: IndexReader, path: String| async move {
            let mut out: BTreeMap<String, FileEntry> = BTreeMap::new();
            if let Some(e) = index.get(&path).await? {
                out.insert(String::new(), e);
            }
            let (start, end) = below(&path);
            let mut entries = index.range(&start, Some(&end));
            while let Some(e) = entries.next().await {
                let e = e?;
                let rel = e.path[start.len() - 1..].to_string();
                out.insert(rel, e);
            }
            Ok::<_, PfsError>(out)
        };
        let new_files = collect(new_index, new_path).await?;
        let old_files = match old_index {
            Some(i) => collect(i, old_path).await?,
            None => BTreeMap::new(),
        };
        let mut diffs = Vec::new();
        for (rel, n) in &new_files {
            match old_files.get(rel) {
                None => diffs.push(FileDiff::Added(FileInfo::file(n))),
                Some(o) if o.hash != n.hash || o.size != n.size => diffs.push(FileDiff::Modified {
                    new: FileInfo::file(n),
                    old: FileInfo::file(o),
                }),
                Some(_) => {}
            }
        }
        for (rel, o) in &old_files {
            if !new_files.contains_key(rel) {
                diffs.push(FileDiff::Deleted(FileInfo::file(o)));
            }
        }
        diffs.sort_by(|a, b| diff_path(a).cmp(diff_path(b)));
        Ok(diffs)
    }

    /// Deletes a file or directory; refused when nothing is there.
    pub async fn delete_file(&self, repo: &str, reference: &str, path: &str) -> Result<String> {
        let path = file_path(path)?;
        self.inspect_file(repo, reference, &path).await?;
        self.write_changes(repo, reference, vec![Change::Delete(path)])
            .await
    }

    /// Copies a file or directory between commits by reference to the same
    /// content (no bytes are copied).
    pub async fn copy_file(
        &self,
        src: (&str, &str, &str),
        dst: (&str, &str, &str),
        append: bool,
    ) -> Result<String> {
        let (src_repo, src_ref, src_path) = src;
        let (dst_repo, dst_ref, dst_path) = dst;
        let src_path = normalize_path(src_path)?;
        let dst_path = file_path(dst_path)?;
        let (commit, index) = self.open_commit(src_repo, src_ref).await?;
        let mut changes = Vec::new();
        let wrap = |e: FileEntry| {
            if append {
                Change::Append(e)
            } else {
                Change::Put(e)
            }
        };
        if let Some(e) = index.get(&src_path).await? {
            changes.push(wrap(FileEntry {
                path: dst_path.clone(),
                ..e
            }));
        } else {
            let (start, end) = below(&src_path);
            let mut entries = index.range(&start, Some(&end));
            while let Some(e) = entries.next().await {
                let e = e?;
                let path = format!("{dst_path}{}", &e.path[start.len() - 1..]);
                changes.push(wrap(FileEntry { path, ..e }));
            }
        }
        if changes.is_empty() {
            return Err(PfsError::FileNotFound {
                repo: src_repo.into(),
                commit: commit.id,
                path: src_path,
            });
        }
        self.write_changes(dst_repo, dst_ref, changes).await
    }
}

/// Pachyderm's globs treat `**` anywhere as "any characters, `/` included"
/// (`/data/**.csv` matches `/data/x/y.csv`); globset only gives `**` that
/// meaning as a whole path component, so `**` inside a component is rewritten
/// into the component forms with the same matches.
fn pachyderm_glob(pattern: &str) -> String {
    let p = if pattern.starts_with('/') {
        pattern.to_string()
    } else {
        format!("/{pattern}")
    };
    let mut out = String::with_capacity(p.len() + 8);
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '*' && chars.get(i + 1) == Some(&'*') {
            let before_sep = i == 0 || chars[i - 1] == '/';
            let after_sep = i + 2 >= chars.len() || chars[i + 2] == '/';
            if !before_sep {
                out.push_str("*/");
            }
            out.push_str("**");
            if !after_sep {
                out.push_str("/*");
            }
            i += 2;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn diff_path(d: &FileDiff) -> &str {
    match d {
        FileDiff::Added(f) | FileDiff::Deleted(f) => &f.path,
        FileDiff::Modified { new, .. } => &new.path,
    }
}

fn receiver_stream<T: Send + 'static>(mut rx: mpsc::Receiver<T>) -> BoxStream<'static, T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}
