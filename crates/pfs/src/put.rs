//! The put-file protocol: files arrive one after another (each from bytes
//! sent, or from a URL pachd fetches), their content is stored as it
//! arrives, and only once every file of the call is stored is the record
//! that names them written: one commit on a branch, or one staged change
//! set in an open commit.
//!
//! Pachyderm 1.9's semantics: a file is the concatenation of its puts, so a
//! put appends unless it gives an overwrite index N (keep the first N
//! pieces, then append; 0 replaces the file). Only a replaced file is
//! deduplicated against its previous version (an append has nothing to
//! compare with).
//!
//! A split put ([`PutFiles::start_split`], Pachyderm 1.9's `put file
//! --split`) makes a directory of files named by their 16-hex-digit index,
//! numbered on from the directory's last file; each file is its header's
//! piece (if any), its records' piece and its footer's piece, the header and
//! footer stored once and shared by reference (1.9 keeps them once on the
//! directory and serves them with every file: the same bytes).
//!
//! Invariant: nothing a [`PutFiles`] stores is named by a record before
//! [`PutFiles::finish`] has seen every upload succeed; dropping it instead
//! leaves only unreferenced objects for garbage collection.

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use pach_storage::{Change, IndexReader, PutSession};

use crate::Pfs;
use crate::error::{PfsError, Result};
use crate::names::file_path;
use crate::split::{SplitOptions, Splitter};

/// One put-file call in progress. See the module docs.
pub struct PutFiles {
    pfs: Pfs,
    repo: String,
    reference: String,
    /// What the target holds now, to deduplicate replaced files against.
    base: Option<IndexReader>,
    session: PutSession,
    changes: Vec<Change>,
    /// The file being received: its overwrite index, if any.
    open: Option<Option<u64>>,
    /// The split put being received, if the file is one.
    split: Option<SplitPut>,
    /// The next index of each directory a split put wrote this call.
    split_next: std::collections::HashMap<String, u64>,
    bytes: u64,
}

/// A split put in progress: where its files go and what they share.
struct SplitPut {
    dir: String,
    next: u64,
    splitter: Splitter,
    /// The header's stored piece, once the first file needed it.
    header: Option<pach_storage::FileEntry>,
    /// The files written so far (the footer is appended to each at the end).
    paths: Vec<String>,
}

/// The name of a split put's `index`th file, as 1.9 names them.
fn split_name(dir: &str, index: u64) -> String {
    format!("{}/{index:016x}", dir.trim_end_matches('/'))
}

/// What a finished put-file call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutSummary {
    /// The commit holding the files (None when the call put nothing).
    pub commit: Option<String>,
    pub files: u64,
    pub bytes: u64,
}

impl Pfs {
    /// Starts a put-file call into `reference` (a branch, new or not, or an
    /// open commit), refusing at once a target no write could land in.
    pub async fn put_files(&self, repo: &str, reference: &str) -> Result<PutFiles> {
        self.check_writable(repo, reference).await?;
        let base = self.write_base(repo, reference).await?;
        Ok(PutFiles {
            pfs: self.clone(),
            repo: repo.into(),
            reference: reference.into(),
            base,
            session: self.content.session(),
            changes: Vec::new(),
            open: None,
            split: None,
            split_next: Default::default(),
            bytes: 0,
        })
    }
}

impl PutFiles {
    /// Starts the next file at `path`; its bytes follow with [`PutFiles::write`].
    /// `overwrite_index`: None appends, Some(n) keeps the first n pieces.
    pub async fn start_file(&mut self, path: &str, overwrite_index: Option<u64>) -> Result<()> {
        self.end_file().await?;
        let path = file_path(path)?;
        let previous = match (&self.base, overwrite_index) {
            (Some(base), Some(0)) => base.get(&path).await?,
            _ => None,
        };
        self.session.begin_file(path, previous);
        self.open = Some(overwrite_index);
        Ok(())
    }

    /// Starts a split put into the directory `path`: the bytes that follow
    /// ([`PutFiles::write`]) are cut into files by records. With
    /// `overwrite`, what the directory held is deleted first.
    pub async fn start_split(
        &mut self,
        path: &str,
        options: SplitOptions,
        overwrite: bool,
    ) -> Result<()> {
        self.end_file().await?;
        let dir = file_path(path)?;
        let next = if overwrite {
            self.changes.push(Change::Delete(dir.clone()));
            0
        } else {
            match self.split_next.get(&dir) {
                Some(&next) => next,
                None => self.split_start_index(&dir).await?,
            }
        };
        self.split = Some(SplitPut {
            dir,
            next,
            splitter: Splitter::new(options),
            header: None,
            paths: Vec::new(),
        });
        Ok(())
    }

    /// The index after the last file of `dir` in the target, as 1.9 numbers
    /// on; a directory holding other files cannot be split into.
    async fn split_start_index(&self, dir: &str) -> Result<u64> {
        let Some(base) = &self.base else {
            return Ok(0);
        };
        if base.get(dir).await?.is_some() {
            return Err(PfsError::FailedPrecondition(format!(
                "cannot split into '{dir}': it is a file; put the split into a directory path"
            )));
        }
        let below = format!("{}/", dir.trim_end_matches('/'));
        let end = format!("{}0", dir.trim_end_matches('/'));
        let mut entries = base.range(&below, Some(&end));
        let mut last = None;
        while let Some(entry) = entries.try_next().await? {
            last = Some(entry.path);
        }
        let Some(last) = last else {
            return Ok(0);
        };
        let child = last[below.len()..].split('/').next().unwrap_or_default();
        match u64::from_str_radix(child, 16) {
            Ok(index) if child.len() == 16 => Ok(index + 1),
            _ => Err(PfsError::FailedPrecondition(format!(
                "cannot split into '{dir}': it holds '{child}', which no split put wrote \
                 (split files are named by a 16-digit hex index); split into another directory, \
                 or add --overwrite to replace what it holds"
            ))),
        }
    }

    /// Stores one file of the split put in progress.
    async fn put_split_file(&mut self, body: Vec<u8>) -> Result<()> {
        let Some(split) = self.split.as_mut() else {
            return Ok(());
        };
        let path = split_name(&split.dir, split.next);
        split.next += 1;
        let header = split.splitter.header();
        if split.header.is_none() && !header.is_empty() {
            split.header = Some(self.session.put_bytes(path.clone(), None, &header).await?);
        }
        let entry = self.session.put_bytes(path.clone(), None, &body).await?;
        match &split.header {
            Some(h) => {
                let mut h = h.clone();
                h.path = path.clone();
                self.changes.push(Change::Put(h));
                self.changes.push(Change::Append(entry));
            }
            None => self.changes.push(Change::Put(entry)),
        }
        split.paths.push(path);
        Ok(())
    }

    /// Ends the split put in progress: its last files, then its footer.
    async fn end_split(&mut self) -> Result<()> {
        let Some(split) = self.split.as_mut() else {
            return Ok(());
        };
        let bodies = split.splitter.finish()?;
        for body in bodies {
            self.put_split_file(body).await?;
        }
        let Some(split) = self.split.take() else {
            return Ok(());
        };
        let footer = split.splitter.footer();
        if let (false, Some(first)) = (footer.is_empty(), split.paths.first()) {
            let entry = self.session.put_bytes(first.clone(), None, footer).await?;
            for path in &split.paths {
                let mut e = entry.clone();
                e.path = path.clone();
                self.changes.push(Change::Append(e));
            }
        }
        self.split_next.insert(split.dir, split.next);
        Ok(())
    }

    /// Adds bytes to the file being received.
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        if let Some(split) = self.split.as_mut() {
            self.bytes += data.len() as u64;
            let bodies = split.splitter.push(data)?;
            for body in bodies {
                self.put_split_file(body).await?;
            }
            return Ok(());
        }
        if self.open.is_none() {
            return Err(PfsError::InvalidArgument(
                "file content arrived before the file it belongs to; the first message of a \
                 put file stream must name the file"
                    .into(),
            ));
        }
        self.bytes += data.len() as u64;
        Ok(self.session.write(data).await?)
    }

    /// Puts the content at `url` as the file `path`; with `recursive`, every
    /// object under a bucket URL, each at `path` joined with its key below the URL.
    /// The caller opens the URL (`store`, and `object` in it) under its policy.
    pub async fn put_url(
        &mut self,
        path: &str,
        url: &str,
        (store, object): (&dyn ObjectStore, &Path),
        recursive: bool,
        overwrite_index: Option<u64>,
    ) -> Result<()> {
        self.end_file().await?;
        let unreadable = |reason: String| {
            PfsError::FailedPrecondition(format!(
                "cannot read '{url}': {reason}; check the URL and that pachd can reach it (credentials come from pachd's AWS_*, AZURE_* and GOOGLE_* environment)"
            ))
        };
        if !recursive {
            return self
                .put_object(store, object, path, overwrite_index, url)
                .await;
        }
        let keys: Vec<object_store::path::Path> = store
            .list(Some(object))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| unreadable(e.to_string()))?;
        if keys.is_empty() {
            return Err(unreadable("no objects under it".into()));
        }
        let prefix = object.as_ref().len();
        for key in keys {
            let rel = key.as_ref()[prefix..].trim_start_matches('/').to_string();
            let target = format!("{}/{rel}", path.trim_end_matches('/'));
            self.put_object(store, &key, &target, overwrite_index, url)
                .await?;
        }
        Ok(())
    }

    async fn put_object(
        &mut self,
        store: &dyn object_store::ObjectStore,
        key: &object_store::path::Path,
        path: &str,
        overwrite_index: Option<u64>,
        url: &str,
    ) -> Result<()> {
        let got = store.get(key).await.map_err(|e| {
            PfsError::FailedPrecondition(format!(
                "cannot read '{url}' ({key}): {e}; check the URL and that pachd can reach it"
            ))
        })?;
        self.start_file(path, overwrite_index).await?;
        let mut body = got.into_stream();
        while let Some(chunk) = body.try_next().await.map_err(|e| {
            PfsError::FailedPrecondition(format!(
                "reading '{url}' ({key}) failed midway: {e}; retry the put"
            ))
        })? {
            self.write(&chunk).await?;
        }
        self.end_file().await
    }

    async fn end_file(&mut self) -> Result<()> {
        self.end_split().await?;
        let Some(overwrite_index) = self.open.take() else {
            return Ok(());
        };
        let entry = self.session.end_file().await?;
        self.changes.push(match overwrite_index {
            None => Change::Append(entry),
            Some(0) => Change::Put(entry),
            Some(index) => Change::ReplaceFrom { index, entry },
        });
        Ok(())
    }

    /// Stores what is left, then writes the record naming the files.
    pub async fn finish(mut self) -> Result<PutSummary> {
        self.end_file().await?;
        // Content is durable before any record refers to it.
        self.session.finish().await?;
        let files = self.changes.len() as u64;
        if self.changes.is_empty() {
            return Ok(PutSummary {
                commit: None,
                files: 0,
                bytes: self.bytes,
            });
        }
        let commit = self
            .pfs
            .write_changes(&self.repo, &self.reference, self.changes)
            .await?;
        Ok(PutSummary {
            commit: Some(commit),
            files,
            bytes: self.bytes,
        })
    }
}
