//! Per-commit file indexes: a root object listing shards, and shard objects
//! holding [`FileEntry`]s sorted by path.
//!
//! Both are content-addressed metadata objects (`index/<hash>`, see
//! [`crate::codec`]), so an index is immutable and two commits with equal
//! subtrees share shards. The root keeps, per shard, its first and last path
//! and its totals, which is what lets a writer reuse untouched shards
//! without reading them and a reader find the shards a lookup needs.
//!
//! Invariants: shards are in path order, their `[first, last]` ranges do not
//! overlap, no shard is empty, and the root's totals are the sums of its
//! shards' totals.

mod read;
mod write;

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use crate::StorageError;
use crate::codec::decode_object;
use crate::hash::ContentHash;
use crate::layout::Layout;
use crate::model::FileEntry;
use crate::task::run_spawned;

pub use read::IndexReader;
pub(crate) use write::{ShardLimits, write_index};

/// The root of an index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RootNode {
    pub(crate) files: u64,
    pub(crate) bytes: u64,
    pub(crate) shards: Vec<ShardInfo>,
}

/// What an index root records about one of its shards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// Path of the shard's first entry.
    pub first: String,
    /// Path of the shard's last entry.
    pub last: String,
    /// Number of entries.
    pub files: u64,
    /// Total size of the entries' files.
    pub bytes: u64,
    /// Name of the shard object (`index/<hash>`).
    pub hash: ContentHash,
}

/// An index object as decoded. The variant tag guards against a shard's
/// hash being passed where a root is expected (and vice versa).
#[derive(Deserialize)]
enum IndexNode {
    Root(RootNode),
    Shard(Vec<FileEntry>),
}

/// An index object to encode; same layout as [`IndexNode`], without copying entries.
#[derive(Serialize)]
enum IndexNodeOut<'a> {
    Root(&'a RootNode),
    Shard(&'a [FileEntry]),
}

pub(crate) async fn load_root(
    store: &dyn ObjectStore,
    layout: &Layout,
    hash: &ContentHash,
) -> Result<RootNode, StorageError> {
    let key = layout.index(hash);
    let stored = get_object(store, &key).await?;
    match decode_object(&key, &stored, hash)? {
        IndexNode::Root(root) => Ok(root),
        IndexNode::Shard(_) => Err(StorageError::corrupt(
            &key,
            "is an index shard, not an index root",
        )),
    }
}

pub(crate) async fn load_shard(
    store: &dyn ObjectStore,
    layout: &Layout,
    hash: &ContentHash,
) -> Result<Vec<FileEntry>, StorageError> {
    let key = layout.index(hash);
    let stored = get_object(store, &key).await?;
    match decode_object(&key, &stored, hash)? {
        IndexNode::Shard(entries) => Ok(entries),
        IndexNode::Root(_) => Err(StorageError::corrupt(
            &key,
            "is an index root, not an index shard",
        )),
    }
}

/// Loads a shard in its own task, so decoding runs beside the consumer.
pub(crate) async fn load_shard_spawned(
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    hash: ContentHash,
) -> Result<Vec<FileEntry>, StorageError> {
    run_spawned(async move { load_shard(&*store, &layout, &hash).await }).await
}

pub(crate) async fn get_object(store: &dyn ObjectStore, key: &Path) -> Result<Bytes, StorageError> {
    let result = store
        .get(key)
        .await
        .map_err(|err| StorageError::store("get", key, err))?;
    result
        .bytes()
        .await
        .map_err(|err| StorageError::store("get", key, err))
}
