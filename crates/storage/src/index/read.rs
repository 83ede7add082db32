//! Reading an index: point lookups and ordered range listing.
//!
//! A reader holds the decoded root and nothing else; shards are loaded on
//! demand. `range` loads only the shards overlapping the requested range,
//! each in its own task, with [`PREFETCH`] shards decoding ahead of the
//! consumer, so the first entry arrives after one shard load and long
//! listings use both cores. `get` keeps the most recently used shard, since
//! callers often look up neighbouring paths one after another, and roots and
//! the shards `get` loads are kept in the store's [`NodeCache`], shared by
//! every reader (a request per small file opens a reader each time).

use std::sync::{Arc, Mutex};

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::ObjectStore;

use super::{NodeCache, RootNode, ShardInfo, load_root, load_shard, load_shard_spawned};
use crate::StorageError;
use crate::hash::ContentHash;
use crate::layout::Layout;
use crate::model::FileEntry;

const PREFETCH: usize = 2;

/// A read-only view of one index. Cheap to clone.
#[derive(Clone)]
pub struct IndexReader {
    inner: Arc<ReaderInner>,
}

struct ReaderInner {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    root_hash: Option<ContentHash>,
    root: Arc<RootNode>,
    nodes: Arc<NodeCache>,
    /// The shard `get` used last, by position in `root.shards`.
    recent: Mutex<Option<(usize, Arc<Vec<FileEntry>>)>>,
}

impl IndexReader {
    pub(crate) async fn open(
        store: Arc<dyn ObjectStore>,
        layout: Layout,
        root: Option<&ContentHash>,
        nodes: Arc<NodeCache>,
    ) -> Result<Self, StorageError> {
        let node = match root {
            Some(hash) => match nodes.root(hash) {
                Some(node) => node,
                None => {
                    let node = Arc::new(load_root(&*store, &layout, hash).await?);
                    nodes.keep_root(*hash, Arc::clone(&node));
                    node
                }
            },
            None => Arc::new(RootNode::default()),
        };
        Ok(IndexReader {
            inner: Arc::new(ReaderInner {
                store,
                layout,
                root_hash: root.copied(),
                root: node,
                nodes,
                recent: Mutex::new(None),
            }),
        })
    }

    /// Number of files in the index.
    pub fn files(&self) -> u64 {
        self.inner.root.files
    }

    /// Total size of the files in the index.
    pub fn bytes(&self) -> u64 {
        self.inner.root.bytes
    }

    /// The root this reader was opened on (None for the empty index).
    pub fn root(&self) -> Option<ContentHash> {
        self.inner.root_hash
    }

    /// The shards of this index, in path order (for inspection and garbage collection).
    pub fn shards(&self) -> &[ShardInfo] {
        &self.inner.root.shards
    }

    /// The entry at exactly `path`, if any.
    pub async fn get(&self, path: &str) -> Result<Option<FileEntry>, StorageError> {
        let shards = &self.inner.root.shards;
        let idx = shards.partition_point(|s| s.last.as_str() < path);
        match shards.get(idx) {
            Some(shard) if shard.first.as_str() <= path => {}
            _ => return Ok(None),
        }
        let entries = self.shard_for_get(idx).await?;
        Ok(entries
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .ok()
            .map(|i| entries[i].clone()))
    }

    /// Entries with `start <= path < end` (`end` None = to the end), in path order.
    pub fn range(
        &self,
        start: &str,
        end: Option<&str>,
    ) -> BoxStream<'static, Result<FileEntry, StorageError>> {
        let shards = &self.inner.root.shards;
        let first = shards.partition_point(|s| s.last.as_str() < start);
        let wanted: Vec<usize> = (first..shards.len())
            .take_while(|&i| end.is_none_or(|end| shards[i].first.as_str() < end))
            .collect();
        let inner = Arc::clone(&self.inner);
        let start = start.to_string();
        let end = end.map(str::to_string);
        stream::iter(wanted)
            .map(move |i| {
                let hash = inner.root.shards[i].hash;
                load_shard_spawned(Arc::clone(&inner.store), inner.layout.clone(), hash)
            })
            .buffered(PREFETCH)
            .map_ok(move |entries| stream::iter(within(entries, &start, end.as_deref()).map(Ok)))
            .try_flatten()
            .boxed()
    }

    async fn shard_for_get(&self, idx: usize) -> Result<Arc<Vec<FileEntry>>, StorageError> {
        if let Some(entries) = self.cached(idx) {
            return Ok(entries);
        }
        let hash = self.inner.root.shards[idx].hash;
        let entries = match self.inner.nodes.shard(&hash) {
            Some(entries) => entries,
            None => {
                let entries =
                    Arc::new(load_shard(&*self.inner.store, &self.inner.layout, &hash).await?);
                self.inner.nodes.keep_shard(hash, Arc::clone(&entries));
                entries
            }
        };
        if let Ok(mut recent) = self.inner.recent.lock() {
            *recent = Some((idx, Arc::clone(&entries)));
        }
        Ok(entries)
    }

    fn cached(&self, idx: usize) -> Option<Arc<Vec<FileEntry>>> {
        let recent = self.inner.recent.lock().ok()?;
        match &*recent {
            Some((cached, entries)) if *cached == idx => Some(Arc::clone(entries)),
            _ => None,
        }
    }
}

/// The entries of a sorted shard that fall in `[start, end)`.
fn within(
    entries: Vec<FileEntry>,
    start: &str,
    end: Option<&str>,
) -> impl Iterator<Item = FileEntry> + use<> {
    let from = entries.partition_point(|e| e.path.as_str() < start);
    let to = match end {
        Some(end) => entries.partition_point(|e| e.path.as_str() < end),
        None => entries.len(),
    };
    entries.into_iter().take(to.max(from)).skip(from)
}
