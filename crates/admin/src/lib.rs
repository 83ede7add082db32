//! Cluster administration: `extract` writes a cluster (its metadata records
//! and, unless asked not to, its bucket's objects) as one self-checking
//! stream; `restore` validates a whole stream before it changes anything and
//! then applies it. The format is documented in `docs/extract-format.md`.
//!
//! Invariants: a stream that does not validate (unknown version, bad
//! checksum, truncation, dangling references, missing objects, name clashes)
//! changes nothing; restoring the same stream twice is harmless; memory stays
//! bounded by the largest single object, whatever the stream's size.

mod error;
mod extract;
mod gc;
mod restore;
pub mod stream;
mod verify;
mod writes;

pub use error::{AdminError, Result};
pub use extract::{Checkpoint, extract};
pub use gc::garbage_collect;
pub use restore::restore;
pub use verify::verify;
pub use writes::{WRITES_KEY, WritesState, set_writes, writes_state};

/// What a stream held (or a restore applied).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub records: u64,
    pub objects: u64,
    pub object_bytes: u64,
}
