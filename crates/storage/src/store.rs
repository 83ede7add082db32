//! [`ContentStore`]: the entry point tying sessions, indexes, reads, staged
//! objects and checks to one object store and key prefix.
//!
//! It holds no state besides the store handle and the prefix, so clones are
//! cheap and everything it does is safe to run concurrently: all objects are
//! immutable and named by content (or a unique id), and writers never replace
//! an object with different bytes.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::StorageError;
use crate::codec::{decode_object, encode_object};
use crate::fetch;
use crate::fsck;
use crate::hash::ContentHash;
use crate::index::{self, EntryV1, IndexReader, ShardLimits, get_object};
use crate::layout::Layout;
use crate::model::{Change, FileEntry, IndexSummary};
use crate::session::PutSession;
use crate::upload::put;

/// A change set named by [`ContentStore::encode_changes`], not stored yet.
#[derive(Debug, Clone)]
pub struct EncodedChanges {
    pub hash: ContentHash,
    stored: Vec<u8>,
}

/// Change sets stored at once by [`ContentStore::store_changes`].
const CHANGES_IN_FLIGHT: usize = 16;

/// Content storage over an object store. Cheap to clone.
#[derive(Clone)]
pub struct ContentStore {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    shard_limits: ShardLimits,
    /// Decoded index roots and shards, shared by every reader.
    nodes: Arc<crate::index::NodeCache>,
}

/// A staged change list as stored; the variant doubles as a format version
/// (never reorder or remove variants): `Changes` is format 1, whose entries
/// have no pieces; `ChangesV2` carries pieces and `ReplaceFrom`.
#[derive(Serialize, Deserialize)]
enum ChangeList {
    Changes(Vec<ChangeV1>),
    ChangesV2(Vec<Change>),
}

#[derive(Serialize)]
enum ChangeListOut<'a> {
    /// Only written by tests, to prove format 1 stays readable.
    #[cfg_attr(not(test), allow(dead_code))]
    Changes(&'a [ChangeV1]),
    ChangesV2(&'a [Change]),
}

/// A change as format 1 stored it.
#[derive(Serialize, Deserialize)]
enum ChangeV1 {
    Put(EntryV1),
    Append(EntryV1),
    Delete(String),
}

impl From<ChangeV1> for Change {
    fn from(c: ChangeV1) -> Self {
        match c {
            ChangeV1::Put(e) => Change::Put(e.into()),
            ChangeV1::Append(e) => Change::Append(e.into()),
            ChangeV1::Delete(path) => Change::Delete(path),
        }
    }
}

impl ContentStore {
    /// Content storage in `store`, with every key under `prefix`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path) -> Self {
        ContentStore {
            inner: Arc::new(Inner {
                store,
                layout: Layout::new(prefix),
                shard_limits: ShardLimits::default(),
                nodes: Default::default(),
            }),
        }
    }

    /// The same store, writing index shards of up to `entries` entries (default 4,096).
    ///
    /// Only affects indexes written from now on; any shard size reads fine.
    /// Small values are useful to exercise multi-shard behaviour in tests.
    pub fn with_shard_capacity(&self, entries: usize) -> Self {
        ContentStore {
            inner: Arc::new(Inner {
                store: Arc::clone(&self.inner.store),
                layout: self.inner.layout.clone(),
                shard_limits: ShardLimits::with_capacity(entries),
                nodes: Arc::clone(&self.inner.nodes),
            }),
        }
    }

    /// The underlying object store (for garbage collection and export).
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    /// The key prefix everything of this store lives under.
    pub fn prefix(&self) -> &Path {
        self.inner.layout.prefix()
    }

    /// Key of the loose chunk object with this hash.
    pub fn chunk_key(&self, hash: &ContentHash) -> Path {
        self.inner.layout.chunk(hash)
    }

    /// Key of the pack object with this id.
    pub fn pack_key(&self, id: &ContentHash) -> Path {
        self.inner.layout.pack(id)
    }

    /// Key of the index root or shard object with this hash.
    pub fn index_key(&self, hash: &ContentHash) -> Path {
        self.inner.layout.index(hash)
    }

    /// Key of the staged change list with this hash.
    pub fn changes_key(&self, hash: &ContentHash) -> Path {
        self.inner.layout.changes(hash)
    }

    /// Starts writing files.
    pub fn session(&self) -> PutSession {
        PutSession::new(Arc::clone(&self.inner.store), self.inner.layout.clone())
    }

    /// Writes the index that results from applying `changes` (in order) to `base`.
    pub async fn write_index(
        &self,
        base: Option<&ContentHash>,
        changes: Vec<Change>,
    ) -> Result<IndexSummary, StorageError> {
        index::write_index(
            &self.inner.store,
            &self.inner.layout,
            self.inner.shard_limits,
            &self.inner.nodes,
            base,
            changes,
        )
        .await
    }

    /// Opens an index for reading; `None` is the empty index.
    pub async fn open_index(
        &self,
        root: Option<&ContentHash>,
    ) -> Result<IndexReader, StorageError> {
        IndexReader::open(
            Arc::clone(&self.inner.store),
            self.inner.layout.clone(),
            root,
            Arc::clone(&self.inner.nodes),
        )
        .await
    }

    /// The bytes `[offset, offset + len)` of a file (`len` None = to the end), verified.
    ///
    /// The range is clipped to the file: reading past the end yields nothing.
    /// A missing object or one whose bytes do not match their hash ends the
    /// stream with an error naming the object key.
    pub fn read_file(
        &self,
        entry: &FileEntry,
        offset: u64,
        len: Option<u64>,
    ) -> BoxStream<'static, Result<Bytes, StorageError>> {
        self.read_files(std::slice::from_ref(entry), offset, len)
    }

    /// The bytes of several files one after another, `offset`..`offset +
    /// len` of the concatenation, with reads of the next files in flight
    /// while the first are consumed.
    pub fn read_files(
        &self,
        entries: &[FileEntry],
        offset: u64,
        len: Option<u64>,
    ) -> BoxStream<'static, Result<Bytes, StorageError>> {
        fetch::read_files(
            Arc::clone(&self.inner.store),
            self.inner.layout.clone(),
            entries,
            offset,
            len,
        )
    }

    /// Stores the pending changes of an open commit; returns the object's name.
    pub async fn write_changes(&self, changes: &[Change]) -> Result<ContentHash, StorageError> {
        let encoded = Self::encode_changes(changes)?;
        let hash = encoded.hash;
        self.store_changes(vec![encoded]).await?;
        Ok(hash)
    }

    /// Names a change set without storing it yet, so that many can be
    /// stored at once with [`ContentStore::store_changes`] — which must
    /// happen before any record names them.
    pub fn encode_changes(changes: &[Change]) -> Result<EncodedChanges, StorageError> {
        let (hash, stored) = encode_object("staged changes", &ChangeListOut::ChangesV2(changes))?;
        Ok(EncodedChanges { hash, stored })
    }

    /// Stores encoded change sets, several uploads at a time.
    pub async fn store_changes(&self, sets: Vec<EncodedChanges>) -> Result<(), StorageError> {
        futures::stream::iter(sets.into_iter().map(|set| async move {
            put(
                &*self.inner.store,
                &self.inner.layout.changes(&set.hash),
                set.stored.into(),
            )
            .await
        }))
        .buffer_unordered(CHANGES_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
        Ok(())
    }

    /// Reads back changes stored by [`ContentStore::write_changes`].
    pub async fn read_changes(&self, key: &ContentHash) -> Result<Vec<Change>, StorageError> {
        let path = self.inner.layout.changes(key);
        let stored = get_object(&*self.inner.store, &path).await?;
        Ok(match decode_object(&path, &stored, key)? {
            ChangeList::Changes(changes) => changes.into_iter().map(Change::from).collect(),
            ChangeList::ChangesV2(changes) => changes,
        })
    }

    /// Checks that the index and every object it refers to exist (fsck).
    ///
    /// Returns one line per missing or corrupt shard, pack or loose chunk;
    /// empty means consistent. Chunk contents are not read; see
    /// [`ContentStore::check_index_deep`].
    pub async fn check_index(&self, root: &ContentHash) -> Result<Vec<String>, StorageError> {
        fsck::check_index(&*self.inner.store, &self.inner.layout, root, false).await
    }

    /// Like [`ContentStore::check_index`], and also reads and verifies every chunk.
    pub async fn check_index_deep(&self, root: &ContentHash) -> Result<Vec<String>, StorageError> {
        fsck::check_index(&*self.inner.store, &self.inner.layout, root, true).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChunkLocation, ChunkRef};
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn format_1_change_lists_stay_readable() {
        let content = ContentStore::new(Arc::new(InMemory::new()), Path::default());
        let old = EntryV1 {
            path: "/a".into(),
            size: 1,
            hash: ContentHash::of(b"x"),
            chunks: vec![ChunkRef {
                hash: ContentHash::of(b"x"),
                len: 1,
                loc: ChunkLocation::Loose,
            }],
        };
        let v1 = [
            ChangeV1::Put(old.clone()),
            ChangeV1::Append(old.clone()),
            ChangeV1::Delete("/b".into()),
        ];
        let (hash, stored) = encode_object("staged changes", &ChangeListOut::Changes(&v1)).unwrap();
        put(
            &*content.inner.store,
            &content.changes_key(&hash),
            stored.into(),
        )
        .await
        .unwrap();
        let read = content.read_changes(&hash).await.unwrap();
        assert_eq!(
            read,
            [
                Change::Put(old.clone().into()),
                Change::Append(old.into()),
                Change::Delete("/b".into()),
            ]
        );
        // What is written now reads back as written, ReplaceFrom included.
        let now = vec![Change::ReplaceFrom {
            index: 2,
            entry: read[0].entry().cloned().unwrap(),
        }];
        let hash = content.write_changes(&now).await.unwrap();
        assert_eq!(content.read_changes(&hash).await.unwrap(), now);
    }
}
