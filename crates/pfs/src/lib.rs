//! Versioned data (PFS): repos, branches, commits, files and provenance.
//!
//! Records live in the metadata store ([`pach_meta::MetaStore`]); file content and
//! per-commit file indexes live in the bucket ([`pach_storage::ContentStore`]).
//! Invariants:
//! - content and indexes are written to the bucket before any record refers to
//!   them, so a crash leaves at worst unreferenced objects, never a dangling record;
//! - every change to records is one guarded transaction (optimistic concurrency,
//!   retried on conflict), so concurrent writers each land in their own commit;
//! - a finished commit never changes; its index is a complete snapshot.

pub mod attrs;
pub mod branch;
mod commit;
pub mod error;
mod files;
mod fsck;
pub mod guard;
mod items;
pub mod names;
mod objects;
mod planned;
mod put;
pub mod records;
pub mod repo;
pub mod split;
pub mod uploads;
pub mod writes;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use pach_meta::MetaStore;
use pach_storage::ContentStore;

pub use attrs::AttrsWrite;
pub use commit::CommitState;
pub use error::{ErrorKind, PfsError, Result};
pub use files::{FileDiff, FileInfo, FileWrite};
pub use fsck::FsckReport;
pub use guard::{PipelineOutput, PipelineOutputs, Writer};
pub use objects::ObjectLocation;
pub use planned::WriteView;
pub use put::{PutFiles, PutSummary};
pub use records::{BranchName, BranchRecord, CommitName, CommitRecord, Origin, RepoRecord};
pub use uploads::{CompletedUpload, PartRecord, UploadRecord};

/// How many times a guarded transaction is retried on conflict before giving up.
const MAX_ATTEMPTS: usize = 1000;

#[derive(Clone)]
pub struct Pfs {
    meta: Arc<dyn MetaStore>,
    content: ContentStore,
    /// Who this handle writes as ([`guard`]): a client unless made with
    /// [`Pfs::for_pipeline`].
    writer: Writer,
    /// How pipelines' output repos are recognised; installed by the pipeline
    /// layer ([`Pfs::with_pipeline_outputs`]).
    outputs: Option<Arc<dyn PipelineOutputs>>,
}

impl Pfs {
    /// A handle writing as a client, knowing no pipelines yet.
    pub fn new(meta: Arc<dyn MetaStore>, content: ContentStore) -> Self {
        Self {
            meta,
            content,
            writer: Writer::Client,
            outputs: None,
        }
    }

    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    pub fn meta(&self) -> &Arc<dyn MetaStore> {
        &self.meta
    }
}

pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

pub(crate) fn new_commit_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests;
