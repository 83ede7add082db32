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
//! The root's overlay is consulted first by `get` and merged into `range`'s
//! stream (its entry wins over a shard's at the same path).

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures::stream::{self, BoxStream, Stream, StreamExt, TryStreamExt};
use object_store::ObjectStore;

use super::{NodeCache, RootNode, ShardInfo, cached_root, cached_shard, load_shard_spawned};
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
            Some(hash) => cached_root(&*store, &layout, &nodes, hash).await?,
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

    /// The entries the root keeps over its shards, in path order (for inspection).
    pub fn overlay(&self) -> &[FileEntry] {
        &self.inner.root.overlay
    }

    /// The entry at exactly `path`, if any.
    pub async fn get(&self, path: &str) -> Result<Option<FileEntry>, StorageError> {
        if let Some(entry) = self.inner.root.overlay_entry(path) {
            return Ok(Some(entry.clone()));
        }
        let Some(idx) = self.inner.root.shard_holding(path) else {
            return Ok(None);
        };
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
        let overlay = &self.inner.root.overlay;
        let from = overlay.partition_point(|e| e.path.as_str() < start);
        let to = end.map_or(overlay.len(), |end| {
            overlay.partition_point(|e| e.path.as_str() < end)
        });
        let overlay: VecDeque<FileEntry> = overlay[from..to.max(from)].to_vec().into();
        let inner = Arc::clone(&self.inner);
        let start = start.to_string();
        let end = end.map(str::to_string);
        let shards = stream::iter(wanted)
            .map(move |i| {
                let hash = inner.root.shards[i].hash;
                load_shard_spawned(Arc::clone(&inner.store), inner.layout.clone(), hash)
            })
            .buffered(PREFETCH)
            .map_ok(move |entries| stream::iter(within(entries, &start, end.as_deref()).map(Ok)))
            .try_flatten();
        if overlay.is_empty() {
            return shards.boxed();
        }
        with_overlay(shards, overlay)
    }

    async fn shard_for_get(&self, idx: usize) -> Result<Arc<Vec<FileEntry>>, StorageError> {
        if let Some(entries) = self.cached(idx) {
            return Ok(entries);
        }
        let hash = self.inner.root.shards[idx].hash;
        let entries = cached_shard(
            &*self.inner.store,
            &self.inner.layout,
            &self.inner.nodes,
            &hash,
        )
        .await?;
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

/// Merges the overlay's entries (sorted, in the listed range) into the
/// shards' stream: the overlay's entry replaces a shard entry at its path.
/// The stream ends after its first error.
fn with_overlay(
    shards: impl Stream<Item = Result<FileEntry, StorageError>> + Send + 'static,
    overlay: VecDeque<FileEntry>,
) -> BoxStream<'static, Result<FileEntry, StorageError>> {
    struct State<S> {
        shards: Option<S>,
        next: Option<FileEntry>,
        overlay: VecDeque<FileEntry>,
    }
    let state = State {
        shards: Some(Box::pin(shards)),
        next: None,
        overlay,
    };
    stream::unfold(state, |mut state| async move {
        if state.next.is_none()
            && let Some(shards) = state.shards.as_mut()
        {
            match shards.next().await {
                Some(Ok(entry)) => state.next = Some(entry),
                Some(Err(err)) => {
                    state.shards = None;
                    state.overlay.clear();
                    return Some((Err(err), state));
                }
                None => state.shards = None,
            }
        }
        let order = match (&state.next, state.overlay.front()) {
            (_, None) => Ordering::Greater,
            (None, Some(_)) => Ordering::Less,
            (Some(next), Some(first)) => first.path.cmp(&next.path),
        };
        if order == Ordering::Equal {
            // The overlay's entry replaces the shard's.
            state.next = None;
        }
        let from_overlay = order != Ordering::Greater;
        let entry = if from_overlay {
            state.overlay.pop_front()
        } else {
            state.next.take()
        }?;
        Some((Ok(entry), state))
    })
    .boxed()
}
