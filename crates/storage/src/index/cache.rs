//! Decoded index nodes, shared by every reader of a store. Nodes are named
//! by the hash of their content, so a cached node is never stale; the cache
//! only saves fetching, verifying and decoding it again (what a read of one
//! small file costs most). Bounded by node count, least recently used out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::RootNode;
use crate::hash::ContentHash;
use crate::model::FileEntry;

/// Index roots kept (a root lists its shards: small).
const ROOTS: usize = 256;
/// Shards kept (at most 4,096 entries each by default: a few MiB together).
const SHARDS: usize = 32;

#[derive(Default)]
pub(crate) struct NodeCache {
    roots: Mutex<Lru<Arc<RootNode>>>,
    shards: Mutex<Lru<Arc<Vec<FileEntry>>>>,
}

impl NodeCache {
    pub(crate) fn root(&self, hash: &ContentHash) -> Option<Arc<RootNode>> {
        self.roots.lock().ok()?.get(hash)
    }

    pub(crate) fn keep_root(&self, hash: ContentHash, root: Arc<RootNode>) {
        if let Ok(mut roots) = self.roots.lock() {
            roots.put(hash, root, ROOTS);
        }
    }

    pub(crate) fn shard(&self, hash: &ContentHash) -> Option<Arc<Vec<FileEntry>>> {
        self.shards.lock().ok()?.get(hash)
    }

    pub(crate) fn keep_shard(&self, hash: ContentHash, shard: Arc<Vec<FileEntry>>) {
        if let Ok(mut shards) = self.shards.lock() {
            shards.put(hash, shard, SHARDS);
        }
    }
}

/// A small least-recently-used map: eviction scans it, which at these sizes
/// costs less than one node decode.
struct Lru<V> {
    entries: HashMap<ContentHash, (V, u64)>,
    clock: u64,
}

impl<V> Default for Lru<V> {
    fn default() -> Self {
        Lru {
            entries: HashMap::new(),
            clock: 0,
        }
    }
}

impl<V: Clone> Lru<V> {
    fn get(&mut self, key: &ContentHash) -> Option<V> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(key).map(|(v, used)| {
            *used = clock;
            v.clone()
        })
    }

    fn put(&mut self, key: ContentHash, value: V, capacity: usize) {
        self.clock += 1;
        if !self.entries.contains_key(&key) && self.entries.len() >= capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.entries.remove(&k);
            }
        }
        self.entries.insert(key, (value, self.clock));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_goes_first() {
        let h = |b: u8| ContentHash([b; 32]);
        let mut lru = Lru::default();
        lru.put(h(1), 1, 2);
        lru.put(h(2), 2, 2);
        assert_eq!(lru.get(&h(1)), Some(1));
        lru.put(h(3), 3, 2);
        assert_eq!(lru.get(&h(2)), None);
        assert_eq!(lru.get(&h(1)), Some(1));
        assert_eq!(lru.get(&h(3)), Some(3));
        assert_eq!(lru.entries.len(), 2);
    }
}
