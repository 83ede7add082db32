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
//! A root may also carry an overlay: whole entries, sorted by path, that take
//! precedence over the shards' entries at the same paths. A write that only
//! puts or appends to a few paths (a spout's message, an auto-commit of one
//! file) adds them to the overlay and writes the root alone, instead of
//! rewriting the shard each path falls in; once the overlay would pass
//! [`OVERLAY_UNITS`], or a write deletes anything, the write folds the
//! overlay into the shards. So a commit's cost stays bounded by its own
//! change, not by the size of the directory it writes into.
//!
//! Format versions: the variant tag of an index object is also its format.
//! `Shard` (format 1) holds entries without pieces; `ShardV2` (format 2)
//! holds entries with their pieces; `Root` is a root without an overlay and
//! `RootV2` one with an overlay (written only when the overlay is not empty,
//! so an index without one keeps the encoding, and the hash, it always had).
//! Writers write the newest shard format; readers read every format forever
//! (a format-1 entry reads as one piece of unknown digest), so data written
//! by any earlier release stays readable in place.

mod cache;
mod read;
mod write;

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use crate::StorageError;
use crate::codec::{decode_object, encode_object};
use crate::hash::ContentHash;
use crate::layout::Layout;
use crate::model::{ChunkRef, FileEntry};
use crate::task::run_spawned;

pub(crate) use cache::NodeCache;
pub use read::IndexReader;
pub(crate) use write::{ShardLimits, write_index};

/// An overlay (see the module docs) is folded into the shards once its
/// entries would weigh more than this many shard units (~64 KiB encoded).
pub(crate) const OVERLAY_UNITS: usize = 256;

/// The root of an index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RootNode {
    /// Files and bytes of the whole index: the shards as the overlay changes them.
    pub(crate) files: u64,
    pub(crate) bytes: u64,
    pub(crate) shards: Vec<ShardInfo>,
    /// Entries that replace or add to the shards' entries, sorted by path.
    pub(crate) overlay: Vec<FileEntry>,
}

impl RootNode {
    /// The overlay's entry at exactly `path`.
    pub(crate) fn overlay_entry(&self, path: &str) -> Option<&FileEntry> {
        self.overlay
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.overlay[i])
    }

    /// The position of the shard whose `[first, last]` range holds `path`.
    pub(crate) fn shard_holding(&self, path: &str) -> Option<usize> {
        let idx = self.shards.partition_point(|s| s.last.as_str() < path);
        self.shards
            .get(idx)
            .is_some_and(|shard| shard.first.as_str() <= path)
            .then_some(idx)
    }

    /// The object to store for this root: format 1 while it has no overlay.
    pub(crate) fn encode(&self) -> Result<(ContentHash, Vec<u8>), StorageError> {
        if self.overlay.is_empty() {
            let v1 = RootV1Out {
                files: self.files,
                bytes: self.bytes,
                shards: &self.shards,
            };
            encode_object("index root", &IndexNodeOut::Root(&v1))
        } else {
            encode_object("index root", &IndexNodeOut::RootV2(self))
        }
    }
}

/// A root as format 1 stores it: no overlay.
#[derive(Deserialize)]
struct RootV1 {
    files: u64,
    bytes: u64,
    shards: Vec<ShardInfo>,
}

/// [`RootV1`] to encode, borrowing the shard list.
#[derive(Serialize)]
pub(crate) struct RootV1Out<'a> {
    files: u64,
    bytes: u64,
    shards: &'a [ShardInfo],
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
    Root(RootV1),
    Shard(Vec<EntryV1>),
    ShardV2(Vec<FileEntry>),
    RootV2(RootNode),
}

/// An index object to encode; same layout as [`IndexNode`], without copying entries.
#[derive(Serialize)]
pub(crate) enum IndexNodeOut<'a> {
    Root(&'a RootV1Out<'a>),
    /// Only written by tests, to prove format 1 stays readable.
    #[cfg_attr(not(test), allow(dead_code))]
    Shard(&'a [EntryV1]),
    ShardV2(&'a [FileEntry]),
    RootV2(&'a RootNode),
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
        IndexNode::Root(RootV1 {
            files,
            bytes,
            shards,
        }) => Ok(RootNode {
            files,
            bytes,
            shards,
            overlay: Vec::new(),
        }),
        IndexNode::RootV2(root) => Ok(root),
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
        IndexNode::Root(_) | IndexNode::RootV2(_) => Err(StorageError::corrupt(
            &key,
            "is an index root, not an index shard",
        )),
    }
}

/// A root, from the shared node cache or loaded into it.
pub(crate) async fn cached_root(
    store: &dyn ObjectStore,
    layout: &Layout,
    nodes: &NodeCache,
    hash: &ContentHash,
) -> Result<Arc<RootNode>, StorageError> {
    if let Some(root) = nodes.root(hash) {
        return Ok(root);
    }
    let root = Arc::new(load_root(store, layout, hash).await?);
    nodes.keep_root(*hash, Arc::clone(&root));
    Ok(root)
}

/// A shard, from the shared node cache or loaded into it.
pub(crate) async fn cached_shard(
    store: &dyn ObjectStore,
    layout: &Layout,
    nodes: &NodeCache,
    hash: &ContentHash,
) -> Result<Arc<Vec<FileEntry>>, StorageError> {
    if let Some(entries) = nodes.shard(hash) {
        return Ok(entries);
    }
    let entries = Arc::new(load_shard(store, layout, hash).await?);
    nodes.keep_shard(*hash, Arc::clone(&entries));
    Ok(entries)
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
            overlay: Vec::new(),
        };
        let (root_hash, stored) = root.encode().unwrap();
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

    /// An index without overlay keeps format 1's root (and so the hashes
    /// earlier releases wrote); one with an overlay is a `RootV2` that loads
    /// back whole.
    #[tokio::test]
    async fn roots_keep_format_1_until_they_carry_an_overlay() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let content = ContentStore::new(Arc::clone(&store), Path::default());
        let layout = Layout::new(Path::default());
        let entry =
            |path: &str, data: &[u8]| FileEntry::from_chunks(path.to_string(), vec![chunk(data)]);
        let base = content
            .write_index(None, vec![crate::Change::Put(entry("/a", b"a"))])
            .await
            .unwrap();
        let key = layout.index(&base.root);
        let stored = get_object(&*store, &key).await.unwrap();
        assert!(matches!(
            decode_object::<IndexNode>(&key, &stored, &base.root).unwrap(),
            IndexNode::Root(_)
        ));

        let next = content
            .write_index(
                Some(&base.root),
                vec![crate::Change::Put(entry("/b", b"bb"))],
            )
            .await
            .unwrap();
        let key = layout.index(&next.root);
        let stored = get_object(&*store, &key).await.unwrap();
        let IndexNode::RootV2(root) = decode_object(&key, &stored, &next.root).unwrap() else {
            panic!("a root with an overlay is format 2");
        };
        assert_eq!((root.files, root.bytes), (2, 3));
        assert_eq!(root.overlay, vec![entry("/b", b"bb")]);
        assert_eq!(load_root(&*store, &layout, &next.root).await.unwrap(), root);
    }
}
