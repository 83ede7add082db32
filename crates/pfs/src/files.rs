//! Files of a commit, as Pachyderm 1.9 presents them: inspect, list (with
//! history), walk, glob, diff, read, delete and copy.
//!
//! The index holds files only; directories are implicit (a directory exists
//! while a file exists below it). A directory's size is the sum of its
//! files', and its hash is BLAKE3 over its files' relative paths and hashes,
//! so two directories with the same files have the same hash wherever they
//! are. Orders are Pachyderm's: listings by child name, walks and globs by
//! full path (so a directory comes before its files, and `/a/b` before
//! `/a/b.txt`). Directory listings stream: a directory's files are
//! contiguous in the sorted index, so each child is complete once its run of
//! entries has passed, and only children whose place is not settled yet are
//! held back (see [`Children`]).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use globset::{GlobBuilder, GlobMatcher};
use pach_storage::{Change, ContentHash, FileEntry, IndexReader, Piece, PieceHasher};
use tokio::sync::mpsc;

use crate::error::{PfsError, Result};
use crate::names::{file_path, normalize_path};
use crate::records::CommitRecord;
use crate::{Pfs, items};

/// A file or directory of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The absolute, normalised path (`/` for the root).
    pub path: String,
    pub is_dir: bool,
    pub size_bytes: u64,
    /// Files: the content hash; directories: the hash of what is below.
    pub hash: ContentHash,
    /// Files: the pieces the file was put in (Pachyderm's objects).
    pub pieces: Vec<Piece>,
    /// Directories, when asked for: the names of the direct children.
    pub children: Vec<String>,
}

impl FileInfo {
    fn file(e: &FileEntry) -> Self {
        Self {
            path: e.path.clone(),
            is_dir: false,
            size_bytes: e.size,
            hash: e.hash,
            pieces: e.pieces().into_owned(),
            children: Vec::new(),
        }
    }
}

/// What a client writes into a commit (content already stored).
pub type FileWrite = Change;

/// The sizes, hash and children of a directory, summed as its files pass by.
struct DirSummary {
    size: u64,
    hasher: blake3::Hasher,
    children: BTreeSet<String>,
}

impl DirSummary {
    fn new() -> Self {
        DirSummary {
            size: 0,
            hasher: blake3::Hasher::new(),
            children: BTreeSet::new(),
        }
    }

    /// Adds the file `e` found at `rel` below the directory (`rel` = `a/b.txt`).
    fn add(&mut self, rel: &str, e: &FileEntry, full: bool) {
        self.size += e.size;
        self.hasher.update(rel.as_bytes());
        self.hasher.update(&[0]);
        self.hasher.update(&e.hash.0);
        if full {
            let child = rel.split('/').next().unwrap_or(rel);
            if !self.children.contains(child) {
                self.children.insert(child.to_string());
            }
        }
    }

    fn info(self, path: String) -> FileInfo {
        FileInfo {
            path,
            is_dir: true,
            size_bytes: self.size,
            hash: ContentHash(*self.hasher.finalize().as_bytes()),
            pieces: Vec::new(),
            children: self.children.into_iter().collect(),
        }
    }
}

/// The key range `[start, end)` holding every path strictly below `dir`.
fn below(dir: &str) -> (String, String) {
    if dir == "/" {
        ("/".to_string(), "0".to_string())
    } else {
        // '0' is the byte after '/', so "dir0" bounds every "dir/...".
        (format!("{dir}/"), format!("{dir}0"))
    }
}

/// The deepest directory of a glob pattern that holds every match: the
/// literal part before the first glob character, up to its last `/`.
fn glob_base(pattern: &str) -> &str {
    let literal = &pattern[..pattern
        .find(['*', '?', '[', '{', '\\'])
        .unwrap_or(pattern.len())];
    match literal.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &literal[..i],
    }
}

/// `dir` joined with `name`.
fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The file or directory at `path` of an index, if anything is there.
async fn node(index: &IndexReader, path: &str, full: bool) -> Result<Option<FileInfo>> {
    if path != "/"
        && let Some(e) = index.get(path).await?
    {
        return Ok(Some(FileInfo::file(&e)));
    }
    let (start, end) = below(path);
    let mut summary = DirSummary::new();
    let mut any = false;
    let mut entries = index.range(&start, Some(&end));
    while let Some(e) = entries.next().await {
        let e = e?;
        summary.add(&e.path[start.len()..], &e, full);
        any = true;
    }
    // The root always exists, empty or not.
    Ok((any || path == "/").then(|| summary.info(path.to_string())))
}

/// Whether a path may be a glob pattern (Pachyderm lists by glob).
fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '[', '{', '\\'])
}

/// The children of one directory in name order, streamed: a child is
/// emitted once it is complete (a directory when its run of entries has
/// passed) and no later entry can bring a child that sorts before it. That
/// can only be a directory whose name is a prefix of it followed by a byte
/// below `/` (`b` before `b.txt`, whose entries `b/...` come after
/// `b.txt`), so a child waits only until the entries have passed that
/// directory's range.
struct Children {
    /// Held children by name; directories not complete yet have no info.
    held: BTreeMap<String, Held>,
    /// The directory child whose entries are passing.
    open: Option<(String, DirSummary)>,
    dir: String,
    full: bool,
}

enum Held {
    Ready(FileInfo),
    Open,
}

impl Children {
    fn new(dir: String, full: bool) -> Self {
        Children {
            held: BTreeMap::new(),
            open: None,
            dir,
            full,
        }
    }

    /// Takes the entry whose path below the directory is `rel`; returns what
    /// can be emitted now, in order.
    fn push(&mut self, rel: &str, e: &FileEntry) -> Vec<FileInfo> {
        match rel.split_once('/') {
            Some((child, rest)) => match &mut self.open {
                Some((name, summary)) if name == child => summary.add(rest, e, self.full),
                _ => {
                    self.close_open();
                    let mut summary = DirSummary::new();
                    summary.add(rest, e, self.full);
                    self.held.insert(child.to_string(), Held::Open);
                    self.open = Some((child.to_string(), summary));
                }
            },
            None => {
                self.close_open();
                let mut info = FileInfo::file(e);
                info.path = join(&self.dir, rel);
                self.held.insert(rel.to_string(), Held::Ready(info));
            }
        }
        self.release(Some(rel))
    }

    fn close_open(&mut self) {
        if let Some((name, summary)) = self.open.take() {
            let info = summary.info(join(&self.dir, &name));
            self.held.insert(name, Held::Ready(info));
        }
    }

    /// Emits the held children no later entry can precede (all at the end).
    fn release(&mut self, current: Option<&str>) -> Vec<FileInfo> {
        let mut out = Vec::new();
        while let Some(entry) = self.held.first_entry() {
            let settled = match current {
                None => true,
                Some(current) => settled(entry.key(), current),
            };
            if !settled || matches!(entry.get(), Held::Open) {
                break;
            }
            if let Held::Ready(info) = entry.remove() {
                out.push(info);
            }
        }
        out
    }

    fn finish(mut self) -> Vec<FileInfo> {
        self.close_open();
        self.release(None)
    }
}

/// Whether no entry after `current` can bring a child sorting before `name`.
fn settled(name: &str, current: &str) -> bool {
    match name.find(|c: char| c < '/') {
        None => true,
        // The earliest such prefix has the range that ends last: settled once
        // `current >= prefix + "0"` (compared without building the string).
        Some(i) => {
            let bound = name.as_bytes()[..i].iter().copied().chain([b'0']);
            current.bytes().cmp(bound) != std::cmp::Ordering::Less
        }
    }
}

/// A compiled Pachyderm glob pattern.
struct Glob {
    matcher: GlobMatcher,
    /// Only a pattern that is the root itself (`/`, `.`, empty) matches the
    /// root: `/*` does not, as in Pachyderm.
    root: bool,
}

impl Glob {
    fn new(pattern: &str) -> Result<Glob> {
        let normalized = pachyderm_glob(pattern);
        let matcher = GlobBuilder::new(&normalized)
            .literal_separator(true)
            .build()
            .map_err(|e| {
                PfsError::InvalidArgument(format!("invalid glob pattern '{pattern}': {e}"))
            })?
            .compile_matcher();
        let root = normalize_path(pattern).is_ok_and(|p| p == "/");
        Ok(Glob { matcher, root })
    }

    fn is_match(&self, path: &str) -> bool {
        if path == "/" {
            self.root
        } else {
            self.matcher.is_match(path)
        }
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
            Err(PfsError::CommitNotFound { .. }) | Err(PfsError::NoHead { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lists `path` as Pachyderm's ListFile: a file lists itself, a
    /// directory its children (or, with `recursive`, every file below it).
    /// A glob pattern lists each match that way (a matching directory's
    /// children that match the pattern themselves are listed as matches).
    /// With `full`, directories carry their children's names.
    pub async fn list_file(
        &self,
        repo: &str,
        reference: &str,
        path: &str,
        recursive: bool,
    ) -> Result<(CommitRecord, BoxStream<'static, Result<FileInfo>>)> {
        self.list_file_full(repo, reference, path, recursive, false)
            .await
    }

    /// [`Pfs::list_file`], choosing whether directories carry their children.
    pub async fn list_file_full(
        &self,
        repo: &str,
        reference: &str,
        path: &str,
        recursive: bool,
        full: bool,
    ) -> Result<(CommitRecord, BoxStream<'static, Result<FileInfo>>)> {
        let (commit, index) = self.open_commit(repo, reference).await?;
        if is_glob(path) {
            let glob = Glob::new(path)?;
            let matches = glob_index(&index, &glob, full).await?;
            let mut out = Vec::new();
            for m in matches {
                if !m.is_dir {
                    out.push(Ok(m));
                    continue;
                }
                let children: Vec<FileInfo> = list_dir(index.clone(), &m.path, recursive, full)
                    .try_collect()
                    .await?;
                out.extend(
                    children
                        .into_iter()
                        .filter(|c| !glob.is_match(&c.path))
                        .map(Ok),
                );
            }
            return Ok((commit, futures::stream::iter(out).boxed()));
        }
        let path = normalize_path(path)?;
        if path != "/"
            && let Some(e) = index.get(&path).await?
        {
            let one = futures::stream::iter([Ok(FileInfo::file(&e))]).boxed();
            return Ok((commit, one));
        }
        let (start, end) = below(&path);
        if path != "/" && index.range(&start, Some(&end)).next().await.is_none() {
            return Err(PfsError::FileNotFound {
                repo: repo.into(),
                commit: commit.id,
                path,
            });
        }
        Ok((commit, list_dir(index, &path, recursive, full)))
    }

    /// The versions of the files `path` lists, as Pachyderm's ListFile with
    /// `history`: following the commit's ancestry, each file as it was
    /// before each change of its content (the oldest commit of each run of
    /// equal content), up to `history` versions per file (-1: all).
    pub async fn list_file_history(
        &self,
        repo: &str,
        reference: &str,
        path: &str,
        history: i64,
    ) -> Result<Vec<(CommitRecord, FileInfo)>> {
        let (commit, listed) = self.list_file(repo, reference, path, false).await?;
        let listed: Vec<FileInfo> = listed.try_collect().await?;
        let mut out = Vec::new();
        for f in listed {
            out.extend(self.file_history(commit.clone(), &f.path, history).await?);
        }
        Ok(out)
    }

    async fn file_history(
        &self,
        mut commit: CommitRecord,
        path: &str,
        mut history: i64,
    ) -> Result<Vec<(CommitRecord, FileInfo)>> {
        let mut out = Vec::new();
        let mut previous: Option<(CommitRecord, FileInfo)> = None;
        loop {
            let index = self.commit_index(&commit).await?;
            let Some(current) = node(&index, path, false).await? else {
                out.extend(previous);
                return Ok(out);
            };
            if let Some((pc, pf)) = previous.take()
                && pf.hash != current.hash
            {
                out.push((pc, pf));
                if history > 0 {
                    history -= 1;
                    if history == 0 {
                        return Ok(out);
                    }
                }
            }
            let parent = commit.parent.clone();
            previous = Some((commit.clone(), current));
            match parent {
                Some(p) => match self.commit_record(&commit.repo, &p).await? {
                    Some((pc, _)) => commit = pc,
                    None => {
                        out.extend(previous);
                        return Ok(out);
                    }
                },
                None => {
                    out.extend(previous);
                    return Ok(out);
                }
            }
        }
    }

    /// Every file and directory at and below `path`, in path order (a
    /// directory before what is in it), as Pachyderm's WalkFile.
    pub async fn walk_file(
        &self,
        repo: &str,
        reference: &str,
        path: &str,
    ) -> Result<(CommitRecord, Vec<FileInfo>)> {
        let path = normalize_path(path)?;
        let (commit, index) = self.open_commit(repo, reference).await?;
        if path != "/"
            && let Some(e) = index.get(&path).await?
        {
            return Ok((commit, vec![FileInfo::file(&e)]));
        }
        let (start, end) = below(&path);
        let mut dirs: BTreeMap<String, DirSummary> = BTreeMap::new();
        let mut files = Vec::new();
        let mut entries = index.range(&start, Some(&end));
        while let Some(e) = entries.next().await {
            let e = e?;
            add_to_dirs(&mut dirs, &path, &e, false);
            files.push(FileInfo::file(&e));
        }
        if files.is_empty() && path != "/" {
            return Err(PfsError::FileNotFound {
                repo: repo.into(),
                commit: commit.id,
                path,
            });
        }
        if dirs.is_empty() {
            // An empty commit still has its root.
            dirs.insert(path.clone(), DirSummary::new());
        }
        let mut out: Vec<FileInfo> = dirs.into_iter().map(|(d, s)| s.info(d)).collect();
        out.extend(files);
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((commit, out))
    }

    /// Files and directories whose path matches a glob pattern (`*` stays within
    /// one path component, `**` crosses them), in path order.
    pub async fn glob_file(
        &self,
        repo: &str,
        reference: &str,
        pattern: &str,
    ) -> Result<(CommitRecord, Vec<FileInfo>)> {
        let glob = Glob::new(pattern)?;
        let (commit, index) = self.open_commit(repo, reference).await?;
        Ok((commit, glob_index(&index, &glob, false).await?))
    }

    /// The file or directory at `path` (directories with their children's
    /// names). The digests of pieces written before digests were recorded
    /// are computed here, by reading them.
    pub async fn inspect_file(
        &self,
        repo: &str,
        reference: &str,
        path: &str,
    ) -> Result<(CommitRecord, FileInfo)> {
        let path = normalize_path(path)?;
        let (commit, index) = self.open_commit(repo, reference).await?;
        if path != "/"
            && let Some(e) = index.get(&path).await?
        {
            let mut info = FileInfo::file(&e);
            if info.pieces.iter().any(|p| p.sha512.is_none()) {
                info.pieces = self.piece_digests(&e).await?;
            }
            return Ok((commit, info));
        }
        match node(&index, &path, true).await? {
            Some(info) => Ok((commit, info)),
            None => Err(PfsError::FileNotFound {
                repo: repo.into(),
                commit: commit.id,
                path,
            }),
        }
    }

    /// The pieces of `e` with every digest known, reading the pieces whose
    /// digest was not recorded.
    async fn piece_digests(&self, e: &FileEntry) -> Result<Vec<Piece>> {
        let mut out = Vec::new();
        for span in e.piece_spans() {
            let mut piece = span.piece;
            if piece.sha512.is_none() {
                let mut hasher = PieceHasher::new();
                let mut bytes = self.content.read_file(e, span.offset, Some(piece.len));
                while let Some(b) = bytes.try_next().await? {
                    hasher.update(&b);
                }
                piece.sha512 = Some(hasher.finish());
            }
            out.push(piece);
        }
        Ok(out)
    }

    /// The bytes of one file, `offset`..`offset + len` (None = to the end),
    /// in items of up to [`items::ITEM_MAX`] bytes. No item spans two
    /// pieces, so a reader can tell the pieces apart. A
    /// glob pattern that names no file reads, as in Pachyderm 1.9, every
    /// file it matches one after another in path order, the range applying
    /// to the concatenation.
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
            Some(e) => Ok(items::regroup(
                self.content
                    .read_file(&e, offset, len)
                    .map_err(PfsError::from)
                    .boxed(),
                items::piece_lengths(std::slice::from_ref(&e), offset, len),
            )),
            None if is_glob(&path) => {
                let glob = Glob::new(&path)?;
                let (start, end) = below(glob_base(&path));
                let mut entries = Vec::new();
                let mut range = index.range(&start, Some(&end));
                while let Some(e) = range.next().await {
                    let e = e?;
                    if glob.is_match(&e.path) {
                        entries.push(e);
                    }
                }
                if entries.is_empty() {
                    return Err(PfsError::FileNotFound {
                        repo: repo.into(),
                        commit: commit.id,
                        path,
                    });
                }
                Ok(items::regroup(
                    self.content
                        .read_files(&entries, offset, len)
                        .map_err(PfsError::from)
                        .boxed(),
                    items::piece_lengths(&entries, offset, len),
                ))
            }
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

    /// What differs between `new` and `old` (`(repo, reference, path)`; the
    /// old side defaults to the new commit's parent, same path), as
    /// Pachyderm's DiffFile: the files (and, at the depth where the walk
    /// stops, directories) whose content differs, new versions in the first
    /// list and old ones in the second. `shallow` stops at the path's
    /// direct children. Paths are reported below the paths as given.
    pub async fn diff_file(
        &self,
        new: (&str, &str, &str),
        old: Option<(&str, &str, &str)>,
        shallow: bool,
    ) -> Result<FileDiff> {
        let (new_repo, new_ref, new_path) = new;
        let (new_commit, new_index) = self.open_commit(new_repo, new_ref).await?;
        let (old_commit, old_index, old_path) = match old {
            Some((r, c, p)) => {
                let (commit, index) = self.open_commit(r, c).await?;
                (Some(commit), Some(index), p.to_string())
            }
            None => match &new_commit.parent {
                Some(p) => {
                    let (commit, index) = self.open_commit(new_repo, p).await?;
                    (Some(commit), Some(index), new_path.to_string())
                }
                None => (None, None, new_path.to_string()),
            },
        };
        let new_tree = Tree::collect(&new_index, &normalize_path(new_path)?).await?;
        let old_tree = match &old_index {
            Some(index) => Tree::collect(index, &normalize_path(&old_path)?).await?,
            None => Tree::default(),
        };
        let mut diff = FileDiff {
            new_commit,
            old_commit,
            new_files: Vec::new(),
            old_files: Vec::new(),
        };
        let depth = if shallow { 1 } else { -1 };
        diff_nodes(
            &new_tree,
            &old_tree,
            "",
            (new_path, &old_path),
            depth,
            &mut diff,
        );
        Ok(diff)
    }

    /// Deletes a file or directory (`/`: everything), as Pachyderm's
    /// DeleteFile: the path may be a glob pattern (every match is deleted),
    /// and deleting what is not there changes nothing in the files (on a
    /// branch it still makes a commit, as in Pachyderm).
    pub async fn delete_file(&self, repo: &str, reference: &str, path: &str) -> Result<String> {
        self.check_writable(repo, reference).await?;
        let mut changes = Vec::new();
        if is_glob(path) {
            let glob = Glob::new(path)?;
            if let Some(index) = self.write_base(repo, reference).await? {
                let matches = glob_index(&index, &glob, false).await?;
                // A match below an earlier matched directory goes with it.
                let mut deleted: Vec<String> = Vec::new();
                for m in matches {
                    let covered = deleted
                        .iter()
                        .any(|d| d == "/" || m.path.starts_with(&format!("{d}/")));
                    if !covered {
                        deleted.push(m.path);
                    }
                }
                changes.extend(deleted.into_iter().map(Change::Delete));
            }
        } else {
            changes.push(Change::Delete(normalize_path(path)?));
        }
        self.write_changes(repo, reference, changes).await
    }

    /// Copies a file or directory between commits by reference to the same
    /// content (no bytes are copied), as Pachyderm's CopyFile: the copied
    /// pieces are appended to what is at the destination, unless
    /// `overwrite`, which first deletes the destination.
    pub async fn copy_file(
        &self,
        src: (&str, &str, &str),
        dst: (&str, &str, &str),
        overwrite: bool,
    ) -> Result<String> {
        let (src_repo, src_ref, src_path) = src;
        let (dst_repo, dst_ref, dst_path) = dst;
        let src_path = normalize_path(src_path)?;
        let dst_path = file_path(dst_path)?;
        self.check_writable(dst_repo, dst_ref).await?;
        let (commit, index) = self.open_commit(src_repo, src_ref).await?;
        let mut changes = Vec::new();
        if overwrite {
            changes.push(Change::Delete(dst_path.clone()));
        }
        if src_path != "/"
            && let Some(e) = index.get(&src_path).await?
        {
            changes.push(Change::Append(FileEntry {
                path: dst_path.clone(),
                ..e
            }));
        } else {
            let (start, end) = below(&src_path);
            let mut entries = index.range(&start, Some(&end));
            while let Some(e) = entries.next().await {
                let e = e?;
                let path = format!("{dst_path}{}", &e.path[start.len() - 1..]);
                changes.push(Change::Append(FileEntry { path, ..e }));
            }
        }
        if changes.len() == usize::from(overwrite) {
            return Err(PfsError::FileNotFound {
                repo: src_repo.into(),
                commit: commit.id,
                path: src_path,
            });
        }
        self.write_changes(dst_repo, dst_ref, changes).await
    }
}

/// The children of `dir` (every file below it with `recursive`), streamed in
/// name order.
fn list_dir(
    index: IndexReader,
    dir: &str,
    recursive: bool,
    full: bool,
) -> BoxStream<'static, Result<FileInfo>> {
    let (start, end) = below(dir);
    let entries = index.range(&start, Some(&end)).map_err(PfsError::from);
    if recursive {
        return entries.map_ok(|e| FileInfo::file(&e)).boxed();
    }
    let (tx, rx) = mpsc::channel::<Result<FileInfo>>(1024);
    let dir = dir.to_string();
    tokio::spawn(async move {
        let mut entries = std::pin::pin!(entries);
        let mut children = Children::new(dir, full);
        while let Some(item) = entries.next().await {
            let ready = match item {
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                Ok(e) => children.push(&e.path[start.len()..], &e),
            };
            for info in ready {
                if tx.send(Ok(info)).await.is_err() {
                    return;
                }
            }
        }
        for info in children.finish() {
            if tx.send(Ok(info)).await.is_err() {
                return;
            }
        }
    });
    receiver_stream(rx)
}

/// Adds `e` to the summaries of its directories below `top` (`top` included).
fn add_to_dirs(dirs: &mut BTreeMap<String, DirSummary>, top: &str, e: &FileEntry, full: bool) {
    let mut cut = if top == "/" { 0 } else { top.len() };
    loop {
        let dir = if cut == 0 { "/" } else { &e.path[..cut] };
        let rel = &e.path[cut + 1..];
        dirs.entry(dir.to_string())
            .or_insert_with(DirSummary::new)
            .add(rel, e, full);
        match rel.find('/') {
            Some(i) => cut += 1 + i,
            None => break,
        }
    }
}

/// Every file and directory of `index` matching `glob`, in path order.
async fn glob_index(index: &IndexReader, glob: &Glob, full: bool) -> Result<Vec<FileInfo>> {
    let mut dirs: BTreeMap<String, DirSummary> = BTreeMap::new();
    let mut files = Vec::new();
    let root_matches = glob.is_match("/");
    let mut entries = index.range("/", None);
    while let Some(e) = entries.next().await {
        let e = e?;
        if glob.is_match(&e.path) {
            files.push(FileInfo::file(&e));
        }
        if root_matches {
            dirs.entry("/".to_string())
                .or_insert_with(DirSummary::new)
                .add(&e.path[1..], &e, full);
        }
        let mut cut = 0;
        while let Some(i) = e.path[cut + 1..].find('/') {
            cut += 1 + i;
            let dir = &e.path[..cut];
            if let Some(summary) = dirs.get_mut(dir) {
                summary.add(&e.path[cut + 1..], &e, full);
            } else if glob.is_match(dir) {
                let mut summary = DirSummary::new();
                summary.add(&e.path[cut + 1..], &e, full);
                dirs.insert(dir.to_string(), summary);
            }
        }
    }
    if root_matches && !dirs.contains_key("/") {
        dirs.insert("/".to_string(), DirSummary::new());
    }
    let mut out: Vec<FileInfo> = dirs.into_iter().map(|(d, s)| s.info(d)).collect();
    out.extend(files);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// What DiffFile found.
#[derive(Debug, Clone)]
pub struct FileDiff {
    pub new_commit: CommitRecord,
    /// None when the new commit has no parent to compare with.
    pub old_commit: Option<CommitRecord>,
    pub new_files: Vec<FileInfo>,
    pub old_files: Vec<FileInfo>,
}

/// The files at and below a path, by path relative to it ("" = the path
/// itself when it is a file, "/a/b" below it).
#[derive(Default)]
struct Tree {
    files: BTreeMap<String, FileEntry>,
}

impl Tree {
    async fn collect(index: &IndexReader, path: &str) -> Result<Tree> {
        let mut files = BTreeMap::new();
        if path != "/"
            && let Some(e) = index.get(path).await?
        {
            files.insert(String::new(), e);
            return Ok(Tree { files });
        }
        let (start, end) = below(path);
        let mut entries = index.range(&start, Some(&end));
        while let Some(e) = entries.next().await {
            let e = e?;
            files.insert(e.path[start.len() - 1..].to_string(), e);
        }
        Ok(Tree { files })
    }

    /// The node at `rel`: a file, a directory (its summary and children), or nothing.
    fn node(&self, rel: &str) -> Option<(FileInfo, BTreeSet<String>)> {
        if let Some(e) = self.files.get(rel) {
            return Some((FileInfo::file(e), BTreeSet::new()));
        }
        let prefix = format!("{rel}/");
        let mut summary = DirSummary::new();
        let mut children = BTreeSet::new();
        for (path, e) in self
            .files
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
        {
            let below = &path[prefix.len()..];
            summary.add(below, e, false);
            children.insert(below.split('/').next().unwrap_or(below).to_string());
        }
        if children.is_empty() {
            return None;
        }
        Some((summary.info(String::new()), children))
    }
}

/// The path reported for `rel` below the path a client gave.
fn shown(given: &str, rel: &str) -> String {
    if rel.is_empty() {
        return given.to_string();
    }
    let base = given.trim_end_matches('/');
    format!("{base}{rel}")
}

/// Pachyderm's recursive diff of two trees at `rel` (depth -1: unbounded).
fn diff_nodes(
    new: &Tree,
    old: &Tree,
    rel: &str,
    given: (&str, &str),
    depth: i64,
    out: &mut FileDiff,
) {
    let n = new.node(rel);
    let o = old.node(rel);
    match (&n, &o) {
        (None, None) => return,
        (Some((a, _)), Some((b, _))) if a.hash == b.hash && a.is_dir == b.is_dir => return,
        _ => {}
    }
    let mut children = BTreeSet::new();
    for (side, node, given_path) in [(true, n, given.0), (false, o, given.1)] {
        let Some((mut info, kids)) = node else {
            continue;
        };
        if !info.is_dir || depth == 0 {
            info.path = shown(given_path, rel);
            if side {
                out.new_files.push(info);
            } else {
                out.old_files.push(info);
            }
        } else {
            children.extend(kids);
        }
    }
    if depth == 0 {
        return;
    }
    let next = if depth > 0 { depth - 1 } else { depth };
    for child in children {
        diff_nodes(new, old, &format!("{rel}/{child}"), given, next, out);
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

fn receiver_stream<T: Send + 'static>(mut rx: mpsc::Receiver<T>) -> BoxStream<'static, T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_glob_is_searched_below_its_literal_directory() {
        assert_eq!(glob_base("/d/**"), "/d");
        assert_eq!(glob_base("/d/e/*.csv"), "/d/e");
        assert_eq!(glob_base("/d*"), "/");
        assert_eq!(glob_base("/*"), "/");
        assert_eq!(glob_base("/a/b\\*/c"), "/a");
        assert!(is_glob("/a/{b,c}") && is_glob("/a?") && !is_glob("/a/b.txt"));
    }

    #[test]
    fn a_child_waits_only_for_directories_that_sort_before_it() {
        assert!(settled("plain", "plain"));
        // "b" (a directory, entries "b/...") sorts before "b.txt".
        assert!(!settled("b.txt", "b.txt"));
        assert!(!settled("b.txt", "b/x"));
        assert!(settled("b.txt", "c"));
        assert!(settled("b.txt", "b0"));
    }

    fn entry(path: &str, size: u32) -> FileEntry {
        let data = vec![1u8; size as usize];
        FileEntry::from_chunks(
            path.into(),
            vec![pach_storage::ChunkRef {
                hash: ContentHash::of(&data),
                len: size,
                loc: pach_storage::ChunkLocation::Loose,
            }],
        )
    }

    #[test]
    fn children_come_in_name_order_with_directory_sizes() {
        let mut children = Children::new("/d".into(), true);
        let mut out = Vec::new();
        for (rel, size) in [("b.txt", 1), ("b/x", 2), ("b/y/z", 3), ("c", 4)] {
            out.extend(children.push(rel, &entry(&format!("/d/{rel}"), size)));
        }
        out.extend(children.finish());
        let names: Vec<(&str, bool, u64)> = out
            .iter()
            .map(|f| (f.path.as_str(), f.is_dir, f.size_bytes))
            .collect();
        assert_eq!(
            names,
            [
                ("/d/b", true, 5),
                ("/d/b.txt", false, 1),
                ("/d/c", false, 4)
            ]
        );
        assert_eq!(out[0].children, ["x", "y"]);
    }
}
