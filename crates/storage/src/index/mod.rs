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
//!
//! Format versions: the variant tag of an index object is also its format.
//! `Shard` (format 1) holds entries without pieces; `ShardV2` (format 2)
//! holds entries with their pieces. Writers always write the newest; readers
//! read every format forever (a format-1 entry reads as one piece of unknown
//! digest), so data written by any earlier release stays readable in place.

mod cache;
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
use crate::model::{ChunkRef, FileEntry};
use crate::task::run_spawned;

pub(crate) use cache::NodeCache;
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
/// hash being passed where a root is expected (and vice versa), and names
/// the format (see the module docs): never reorder or remove variants.
#[derive(Deserialize)]
enum IndexNode {
    Root(RootNode),
    Shard(Vec<EntryV1>),
    ShardV2(Vec<FileEntry>),
}

/// An index object to encode; same layout as [`IndexNode`], without copying entries.
#[derive(Serialize)]
pub(crate) enum IndexNodeOut<'a> {
    Root(&'a RootNode),
    /// Only written by tests, to prove format 1 stays readable.
    #[cfg_attr(not(test), allow(dead_code))]
    Shard(&'a [EntryV1]),
    ShardV2(&'a [FileEntry]),
}

/// A file entry as format 1 stored it: no pieces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EntryV1 {
    pub(crate) path: String,
    pub(crate) size: u64,
    pub(crate) hash: ContentHash,
    pub(crate) chunks: Vec<ChunkRef>,
}

impl From<EntryV1> for FileEntry {
    fn from(e: EntryV1) -> Self {
        FileEntry {
            path: e.path,
            size: e.size,
            hash: e.hash,
            chunks: e.chunks,
            pieces: Vec::new(),
        }
    }
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
        IndexNode::Shard(_) | IndexNode::ShardV2(_) => Err(StorageError::corrupt(
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
        IndexNode::Shard(entries) => Ok(entries.into_iter().map(FileEntry::from).collect()),
        IndexNode::ShardV2(entries) => Ok(entries),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode_object;
    use crate::hash::Sha512;
    use crate::model::{ChunkLocation, Piece};
    use crate::store::ContentStore;
    use object_store::memory::InMemory;

    fn chunk(data: &[u8]) -> ChunkRef {
        ChunkRef {
            hash: ContentHash::of(data),
            len: data.len() as u32,
            loc: ChunkLocation::Loose,
        }
    }

    #[tokio::test]
    async fn format_1_shards_read_as_single_pieces_of_unknown_digest() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let content = ContentStore::new(Arc::clone(&store), Path::default());
        let old = EntryV1 {
            path: "/old".into(),
            size: 3,
            hash: ContentHash::of(b"abc"),
            chunks: vec![chunk(b"abc")],
        };
        let (shard_hash, shard) = encode_object(
            "index shard",
            &IndexNodeOut::Shard(std::slice::from_ref(&old)),
        )
        .unwrap();
        crate::upload::put(&*store, &content.index_key(&shard_hash), shard.into())
            .await
            .unwrap();
        let root = RootNode {
            files: 1,
            bytes: 3,
            shards: vec![ShardInfo {
                first: "/old".into(),
                last: "/old".into(),
                files: 1,
                bytes: 3,
                hash: shard_hash,
            }],
        };
        let (root_hash, stored) = encode_object("index root", &IndexNodeOut::Root(&root)).unwrap();
        crate::upload::put(&*store, &content.index_key(&root_hash), stored.into())
            .await
            .unwrap();

        let reader = content.open_index(Some(&root_hash)).await.unwrap();
        let entry = reader.get("/old").await.unwrap().unwrap();
        assert_eq!(entry, FileEntry::from(old.clone()));
        assert_eq!(
            entry.pieces().as_ref(),
            [Piece {
                len: 3,
                sha512: None
            }]
        );

        // Appending to it in a new index keeps the old piece and adds the new one.
        let tail = FileEntry::from_pieces(
            "/old".into(),
            vec![chunk(b"de")],
            vec![Piece {
                len: 2,
                sha512: Some(Sha512::of(b"de")),
            }],
        );
        let next = content
            .write_index(Some(&root_hash), vec![crate::Change::Append(tail)])
            .await
            .unwrap();
        let reader = content.open_index(Some(&next.root)).await.unwrap();
        let entry = reader.get("/old").await.unwrap().unwrap();
        assert_eq!(entry.size, 5);
        assert_eq!(entry.pieces.len(), 2);
        assert_eq!(entry.pieces[0].sha512, None);
        assert_eq!(entry.pieces[1].sha512, Some(Sha512::of(b"de")));
    }
}
