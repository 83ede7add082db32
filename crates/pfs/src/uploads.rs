//! Uploads in parts (what S3 calls multipart uploads): a file whose content
//! arrives as numbered parts, in any order and over any length of time, and
//! becomes one write to its branch when the upload is completed.
//!
//! Until then the parts are held outside every commit: each part's content
//! is stored like any file's, a change set naming it is stored beside
//! (`changes/<hash>`), and a part record names that change set. Nothing in a
//! repo refers to them, so readers never see a partial file. Completing an
//! upload writes the concatenation of the chosen parts as one file, by
//! reference (no byte is copied), then removes the upload's records;
//! aborting removes them (the content is left to garbage collection, which
//! keeps whatever a part record names).
//!
//! Keys: `pfs/uploads/<repo>/<upload id>` and
//! `pfs/upload-parts/<repo>/<upload id>/<part number, 5 digits>`.
//!
//! Invariants: a part record is written only after its content and change
//! set are stored; a part is recorded only while its upload's record exists
//! (the transaction compares it), so an abort or a completion never leaves
//! parts behind; every write here is a client write (paused with the
//! cluster's writes, kept off pipelines' output branches). Completion is two
//! transactions: the file's write, then the removal of the records; after a
//! crash between them the upload is still listed, and completing it again
//! writes the same file again.
//!
//! A completed upload is remembered for a day
//! (`pfs/completed-uploads/<repo>/<upload id>`, written with the removal of
//! its records), so that completing it again answers as the first
//! completion did, as S3 does; older ones are dropped at the next
//! completion into the repo, and all of them with the repo.

use pach_storage::{Change, ChunkRef, ContentHash, FileEntry};
use serde::{Deserialize, Serialize};

use std::future::Future;

use crate::WriteView;
use crate::error::{PfsError, Result};
use crate::guard::Action;
use crate::names::{file_path, validate_branch_name};
use crate::records::{encode, load, load_all};
use crate::{MAX_ATTEMPTS, Pfs, new_commit_id, now_ns};

pub const UPLOADS: &str = "pfs/uploads/";
pub const UPLOAD_PARTS: &str = "pfs/upload-parts/";
pub const COMPLETED_UPLOADS: &str = "pfs/completed-uploads/";
/// How long a completed upload is remembered.
pub const COMPLETED_KEPT_NS: i64 = 24 * 3600 * 1_000_000_000;
/// Part numbers run from 1 to this (S3's limit).
pub const MAX_PART_NUMBER: u32 = 10_000;

pub fn upload_key(repo: &str, id: &str) -> String {
    format!("{UPLOADS}{repo}/{id}")
}
pub fn repo_uploads_prefix(repo: &str) -> String {
    format!("{UPLOADS}{repo}/")
}
pub fn parts_prefix(repo: &str, id: &str) -> String {
    format!("{UPLOAD_PARTS}{repo}/{id}/")
}
pub fn repo_parts_prefix(repo: &str) -> String {
    format!("{UPLOAD_PARTS}{repo}/")
}
pub fn completed_key(repo: &str, id: &str) -> String {
    format!("{COMPLETED_UPLOADS}{repo}/{id}")
}
pub fn repo_completed_prefix(repo: &str) -> String {
    format!("{COMPLETED_UPLOADS}{repo}/")
}
fn part_key(repo: &str, id: &str, number: u32) -> String {
    format!("{}{number:05}", parts_prefix(repo, id))
}

/// An upload in progress: the file it will write, on which branch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UploadRecord {
    pub id: String,
    pub repo: String,
    pub branch: String,
    /// The file's path in the repo (`/a/b`).
    pub path: String,
    pub started_ns: i64,
    /// The attributes the file is written with ([`crate::attrs`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attrs: Option<serde_json::Value>,
}

/// An upload that was completed: where its file went, and its content.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CompletedUpload {
    pub id: String,
    pub repo: String,
    pub branch: String,
    pub path: String,
    /// The content hash of the file it wrote.
    pub hash: ContentHash,
    pub completed_ns: i64,
}

/// One stored part of an upload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartRecord {
    pub number: u32,
    /// The stored change set holding the part's file entry.
    pub changes: ContentHash,
    pub size: u64,
    /// The content hash of the part's bytes (as a file's hash).
    pub hash: ContentHash,
    pub stored_ns: i64,
    /// What the client keeps with the part (the S3 gateway: its checksum),
    /// given when it was stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attrs: Option<serde_json::Value>,
}

impl Pfs {
    /// Starts an upload of the file at `path` on `repo@branch` (the branch
    /// must exist), to be written with `attrs` ([`crate::attrs`]). Refused,
    /// before any content is sent, where a write would be refused.
    pub async fn start_upload(
        &self,
        repo: &str,
        branch: &str,
        path: &str,
        attrs: Option<serde_json::Value>,
    ) -> Result<UploadRecord> {
        let path = file_path(path)?;
        validate_branch_name(branch)?;
        self.repo_record(repo).await?;
        if self.branch_record(repo, branch).await?.is_none() {
            return Err(PfsError::BranchNotFound {
                repo: repo.into(),
                branch: branch.into(),
            });
        }
        let upload = UploadRecord {
            id: new_commit_id(),
            repo: repo.into(),
            branch: branch.into(),
            path,
            started_ns: now_ns(),
            attrs,
        };
        // Refuse attributes that could not be kept before any part is sent.
        crate::AttrsWrite {
            path: upload.path.clone(),
            hash: ContentHash::of(b""),
            attrs: upload.attrs.clone(),
        }
        .record(repo)?;
        let key = upload_key(repo, &upload.id);
        for _ in 0..MAX_ATTEMPTS {
            let txn = self.write_txn().await?;
            let txn = self
                .guard_output(txn, repo, Some(branch), Action::Write)
                .await?
                .expect(&key, 0)
                .put(&key, encode(&upload));
            if self.meta.commit(txn).await?.is_some() {
                return Ok(upload);
            }
        }
        Err(PfsError::Contention {
            what: format!("uploads of repo '{repo}'"),
        })
    }

    /// The upload `id` of `repo`, with its record's revision.
    async fn upload_record(&self, repo: &str, id: &str) -> Result<(UploadRecord, u64)> {
        load::<UploadRecord>(&*self.meta, &upload_key(repo, id))
            .await?
            .ok_or_else(|| PfsError::UploadNotFound {
                repo: repo.into(),
                upload: id.into(),
            })
    }

    /// The upload `id` of `repo`.
    pub async fn inspect_upload(&self, repo: &str, id: &str) -> Result<UploadRecord> {
        Ok(self.upload_record(repo, id).await?.0)
    }

    /// The uploads in progress into `repo`, by path, then oldest first.
    pub async fn list_uploads(&self, repo: &str) -> Result<Vec<UploadRecord>> {
        self.repo_record(repo).await?;
        let mut out: Vec<UploadRecord> =
            load_all::<UploadRecord>(&*self.meta, &repo_uploads_prefix(repo))
                .await?
                .into_iter()
                .map(|(u, _)| u)
                .collect();
        out.sort_by(|a, b| {
            a.path
                .cmp(&b.path)
                .then(a.started_ns.cmp(&b.started_ns))
                .then(a.id.cmp(&b.id))
        });
        Ok(out)
    }

    /// Checks, before a part's content is received, that the upload exists
    /// and that a write to its branch would be accepted.
    pub async fn check_upload_writable(&self, upload: &UploadRecord) -> Result<()> {
        self.upload_record(&upload.repo, &upload.id).await?;
        self.check_writable(&upload.repo, &upload.branch).await
    }

    /// Records `entry` (content already stored) as part `number` of the
    /// upload, replacing an earlier part of that number.
    pub async fn put_upload_part(
        &self,
        upload: &UploadRecord,
        number: u32,
        entry: FileEntry,
        attrs: Option<serde_json::Value>,
    ) -> Result<PartRecord> {
        check_part_number(number)?;
        let part = PartRecord {
            number,
            changes: ContentHash([0; 32]),
            size: entry.size,
            hash: entry.hash,
            stored_ns: now_ns(),
            attrs,
        };
        let changes = self.content.write_changes(&[Change::Put(entry)]).await?;
        let part = PartRecord { changes, ..part };
        let ukey = upload_key(&upload.repo, &upload.id);
        let pkey = part_key(&upload.repo, &upload.id, number);
        for _ in 0..MAX_ATTEMPTS {
            let (_, rev) = self.upload_record(&upload.repo, &upload.id).await?;
            let txn = self.write_txn().await?;
            let txn = self
                .guard_output(txn, &upload.repo, Some(&upload.branch), Action::Write)
                .await?
                .expect(&ukey, rev)
                .put(&pkey, encode(&part));
            if self.meta.commit(txn).await?.is_some() {
                return Ok(part);
            }
        }
        Err(PfsError::Contention {
            what: format!("upload {} of repo '{}'", upload.id, upload.repo),
        })
    }

    /// The parts of an upload, by number.
    pub async fn upload_parts(&self, upload: &UploadRecord) -> Result<Vec<PartRecord>> {
        let prefix = parts_prefix(&upload.repo, &upload.id);
        let mut out: Vec<PartRecord> = load_all::<PartRecord>(&*self.meta, &prefix)
            .await?
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        out.sort_by_key(|p| p.number);
        Ok(out)
    }

    /// The stored file entry of a part.
    pub async fn upload_part_entry(&self, part: &PartRecord) -> Result<FileEntry> {
        let changes = self.content.read_changes(&part.changes).await?;
        match changes.into_iter().next() {
            Some(Change::Put(entry)) => Ok(entry),
            _ => Err(PfsError::Corrupt {
                key: format!("changes/{}", part.changes),
                reason: format!("part {} does not hold one file entry", part.number),
            }),
        }
    }

    /// Writes the concatenation of `parts` (in the order given, each as
    /// recorded) as the upload's file on its branch, then removes the
    /// upload. Returns the commit that holds the file, and its entry.
    pub async fn complete_upload(
        &self,
        upload: &UploadRecord,
        parts: &[PartRecord],
    ) -> Result<(String, FileEntry)> {
        let unconditional = |_: WriteView| async { Ok(Ok::<(), std::convert::Infallible>(())) };
        let attrs = upload.attrs.clone();
        match self
            .complete_upload_if(upload, parts, attrs, unconditional)
            .await?
        {
            Ok(done) => Ok(done),
            Err(never) => match never {},
        }
    }

    /// [`Pfs::complete_upload`], with the file's attributes `attrs` (those
    /// the upload started with, or others), on a condition: `check` is
    /// asked what the branch holds when the file is written
    /// ([`Pfs::write_planned`]), and when it refuses (`Err(refusal)`)
    /// nothing is written and the upload stays, to be completed again or
    /// aborted.
    pub async fn complete_upload_if<E, F, Fut>(
        &self,
        upload: &UploadRecord,
        parts: &[PartRecord],
        attrs: Option<serde_json::Value>,
        mut check: F,
    ) -> Result<std::result::Result<(String, FileEntry), E>>
    where
        F: FnMut(WriteView) -> Fut,
        Fut: Future<Output = Result<std::result::Result<(), E>>>,
    {
        self.upload_record(&upload.repo, &upload.id).await?;
        let mut chunks: Vec<ChunkRef> = Vec::new();
        for part in parts {
            chunks.extend(self.upload_part_entry(part).await?.chunks);
        }
        // One hash over all chunks: appending part by part would rehash the
        // growing list each time.
        let entry = FileEntry::from_chunks(upload.path.clone(), chunks);
        let attrs = [crate::AttrsWrite {
            path: entry.path.clone(),
            hash: entry.hash,
            attrs,
        }];
        let (commit, outcome) = self
            .write_planned(&upload.repo, &upload.branch, &attrs, |view| {
                let checked = check(view);
                let entry = entry.clone();
                async move {
                    Ok(match checked.await? {
                        Ok(()) => (vec![Change::Put(entry)], Ok(())),
                        Err(refusal) => (vec![], Err(refusal)),
                    })
                }
            })
            .await?;
        if let Err(refusal) = outcome {
            return Ok(Err(refusal));
        }
        // A plan with a change always writes it, or fails.
        let commit = commit.ok_or_else(|| PfsError::Corrupt {
            key: upload_key(&upload.repo, &upload.id),
            reason: "its completion wrote no commit".into(),
        })?;
        let completed = CompletedUpload {
            id: upload.id.clone(),
            repo: upload.repo.clone(),
            branch: upload.branch.clone(),
            path: upload.path.clone(),
            hash: entry.hash,
            completed_ns: now_ns(),
        };
        self.remove_upload(upload, Some(&completed)).await?;
        Ok(Ok((commit, entry)))
    }

    /// Aborts an upload: its records go; its stored parts are left to
    /// garbage collection.
    pub async fn abort_upload(&self, repo: &str, id: &str) -> Result<()> {
        let (upload, _) = self.upload_record(repo, id).await?;
        self.remove_upload(&upload, None).await
    }

    /// The upload `id` of `repo` if it was completed within the last day.
    pub async fn completed_upload(&self, repo: &str, id: &str) -> Result<Option<CompletedUpload>> {
        Ok(
            load::<CompletedUpload>(&*self.meta, &completed_key(repo, id))
                .await?
                .map(|(c, _)| c),
        )
    }

    /// Removes an upload's records; for a completion, remembers it (and
    /// forgets the repo's completions older than a day).
    async fn remove_upload(
        &self,
        upload: &UploadRecord,
        completed: Option<&CompletedUpload>,
    ) -> Result<()> {
        let ukey = upload_key(&upload.repo, &upload.id);
        let stale = match completed {
            Some(c) => load_all::<CompletedUpload>(&*self.meta, &repo_completed_prefix(&c.repo))
                .await?
                .into_iter()
                .filter(|(old, _)| old.completed_ns < c.completed_ns - COMPLETED_KEPT_NS)
                .map(|(old, _)| completed_key(&old.repo, &old.id))
                .collect(),
            None => Vec::new(),
        };
        for _ in 0..MAX_ATTEMPTS {
            let (_, rev) = self.upload_record(&upload.repo, &upload.id).await?;
            let mut txn = self
                .write_txn()
                .await?
                .expect(&ukey, rev)
                .delete(&ukey)
                .delete_prefix(parts_prefix(&upload.repo, &upload.id));
            if let Some(c) = completed {
                txn = txn.put(completed_key(&c.repo, &c.id), encode(c));
                for key in &stale {
                    txn = txn.delete(key);
                }
            }
            if self.meta.commit(txn).await?.is_some() {
                return Ok(());
            }
        }
        Err(PfsError::Contention {
            what: format!("upload {} of repo '{}'", upload.id, upload.repo),
        })
    }
}

fn check_part_number(number: u32) -> Result<()> {
    if (1..=MAX_PART_NUMBER).contains(&number) {
        Ok(())
    } else {
        Err(PfsError::InvalidArgument(format!(
            "part number {number} is out of range; parts are numbered 1 to {MAX_PART_NUMBER}"
        )))
    }
}
