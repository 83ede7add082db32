//! Content storage for versioned data over any `object_store` backend.
//!
//! This crate owns the bytes: it cuts files into content-defined chunks,
//! names everything by BLAKE3 hash, compresses, packs small chunks together,
//! and records per-commit file indexes. It knows nothing about repos,
//! commits, gRPC or the CLI; callers keep index roots and change-list keys in
//! their own metadata.
//!
//! Invariants across the crate: every stored object is immutable once
//! written and is named by its content hash (packs: by a unique id), so
//! concurrent writers never conflict and readers verify what they get; and
//! metadata may refer to a session's entries only after
//! [`PutSession::finish`] succeeded.

mod changes;
mod chunker;
mod codec;
mod digest;
mod error;
mod fetch;
mod fsck;
mod gc;
mod hash;
mod index;
mod layout;
mod local;
mod model;
mod open;
mod session;
mod store;
mod task;
mod upload;

pub use error::StorageError;
pub use gc::{StoredObject, SweepReport};
pub use hash::{ContentHash, PieceHasher, Sha512, file_hash};
pub use index::{IndexReader, ShardInfo};
pub use model::{
    Change, ChunkLocation, ChunkRef, FileEntry, IndexSummary, PIECE_MAX, Piece, PieceSpan,
    validate_path,
};
pub use open::{UrlPolicy, check_store, local_dir, open_url};
pub use session::{LOOSE_MIN, PACK_TARGET, PutSession};
pub use store::{ContentStore, EncodedChanges};

/// Chunking parameters (FastCDC 2020), exposed for tests and tools.
pub mod chunking {
    pub use crate::chunker::{AVG_CHUNK, MAX_CHUNK, MIN_CHUNK};
}
