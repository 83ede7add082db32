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
    bytes: u64,
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

    /// Adds bytes to the file being received.
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
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
