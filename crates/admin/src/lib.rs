//! Cluster administration: `extract` writes a cluster (its metadata records
//! and, unless asked not to, its bucket's objects) as one self-checking
//! stream; `restore` validates a whole stream before it changes anything and
//! then applies it. The format is documented in `docs/extract-format.md`.
//!
//! Invariants: a stream that does not validate (unknown version, bad
//! checksum, truncation, dangling references, missing objects, name clashes)
//! changes nothing; restoring the same stream twice is harmless; memory stays
//! bounded by the largest single object, whatever the stream's size: records
//! stream through a page at a time from a consistent metadata snapshot, and
//! every set of keys (commits sorted parent first, the objects and commits a
//! validation checks references against, key lists) is sorted on disk
//! (`spill`) and walked in order, never held in memory.

mod error;
mod extract;
mod gc;
pub mod pachyderm;
mod restore;
mod spill;
pub mod stream;
#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;
mod verify;

pub use error::{AdminError, Result};
pub use extract::{Checkpoint, extract};
pub use gc::garbage_collect;
pub use restore::{restore, restore_any, restore_any_with};
pub use verify::verify;
// The write pause lives with the writes it guards, in PFS.
pub use pach_pfs::writes::{WRITES_KEY, WritesState};

/// Pauses (or resumes) clients' writes: see [`pach_pfs::writes`].
pub async fn set_writes(
    meta: &dyn pach_meta::MetaStore,
    paused: bool,
    reason: &str,
) -> Result<WritesState> {
    Ok(pach_pfs::writes::set_writes(meta, paused, reason).await?)
}

/// Whether clients' writes are paused: see [`pach_pfs::writes`].
pub async fn writes_state(meta: &dyn pach_meta::MetaStore) -> Result<WritesState> {
    Ok(pach_pfs::writes::writes_state(meta).await?)
}

/// What a stream held (or a restore applied).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub records: u64,
    pub objects: u64,
    pub object_bytes: u64,
}
