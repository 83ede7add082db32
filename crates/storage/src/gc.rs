//! Garbage collection support: which objects a set of index roots, change
//! sets and file entries keep alive (mark), and deleting every other object
//! older than a grace period (sweep). The grace period protects uploads in
//! flight: their objects are written before any record refers to them. A pack
//! stays while any chunk in it is live (packs are not rewritten).

use std::collections::HashSet;
use std::time::SystemTime;

use futures::StreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use crate::StorageError;
use crate::hash::ContentHash;
use crate::index::{load_root, load_shard};
use crate::model::{ChunkLocation, FileEntry};
use crate::store::ContentStore;

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub deleted: u64,
    pub deleted_bytes: u64,
    pub kept: u64,
}

/// The set of live object keys, built by marking.
#[derive(Debug, Default)]
pub struct LiveObjects {
    keys: HashSet<Path>,
}

impl LiveObjects {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Adds every key another marking found.
    pub fn extend(&mut self, other: LiveObjects) {
        self.keys.extend(other.keys);
    }

    /// Keeps an object by its key relative to the store's prefix (e.g. a log).
    pub fn keep_relative(&mut self, store: &ContentStore, key: &str) {
        let mut path = store.prefix().clone();
        for part in key.split('/').filter(|p| !p.is_empty()) {
            path = path.join(part);
        }
        self.keys.insert(path);
    }
}

impl ContentStore {
    /// Marks an index root, its shards and every chunk or pack they name.
    pub async fn mark_index(
        &self,
        live: &mut LiveObjects,
        root: &ContentHash,
    ) -> Result<(), StorageError> {
        let key = self.index_key(root);
        if !live.keys.insert(key) {
            return Ok(()); // already marked: commits share roots
        }
        let store = self.object_store();
        let layout_root = load_root(&**store, self.layout(), root).await?;
        for shard in &layout_root.shards {
            if !live.keys.insert(self.index_key(&shard.hash)) {
                continue; // consecutive commits share most shards
            }
            for entry in load_shard(&**store, self.layout(), &shard.hash).await? {
                self.mark_entry(live, &entry);
            }
        }
        Ok(())
    }

    /// Marks a change set and the chunks of the files it puts.
    pub async fn mark_changes(
        &self,
        live: &mut LiveObjects,
        changes: &ContentHash,
    ) -> Result<(), StorageError> {
        if !live.keys.insert(self.changes_key(changes)) {
            return Ok(());
        }
        for change in self.read_changes(changes).await? {
            if let Some(e) = change.entry() {
                self.mark_entry(live, e);
            }
        }
        Ok(())
    }

    /// Marks the chunks (or packs) of one file.
    pub fn mark_entry(&self, live: &mut LiveObjects, entry: &FileEntry) {
        for chunk in &entry.chunks {
            let key = match &chunk.loc {
                ChunkLocation::Loose => self.chunk_key(&chunk.hash),
                ChunkLocation::Packed { pack, .. } => self.pack_key(pack),
            };
            live.keys.insert(key);
        }
    }

    /// Deletes every object under the store's prefix that is not live and
    /// was last modified before `older_than`.
    pub async fn sweep(
        &self,
        live: &LiveObjects,
        older_than: SystemTime,
    ) -> Result<SweepReport, StorageError> {
        let store = self.object_store();
        let mut report = SweepReport::default();
        let mut doomed = Vec::new();
        let mut listing = store.list(Some(self.prefix()));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|source| StorageError::ObjectStore {
                op: "list",
                key: self.prefix().to_string(),
                source,
            })?;
            let modified: SystemTime = meta.last_modified.into();
            if live.keys.contains(&meta.location) || modified >= older_than {
                report.kept += 1;
            } else {
                doomed.push((meta.location, meta.size));
            }
        }
        for (key, size) in doomed {
            match store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    report.deleted += 1;
                    report.deleted_bytes += size;
                }
                Err(source) => {
                    return Err(StorageError::ObjectStore {
                        op: "delete",
                        key: key.to_string(),
                        source,
                    });
                }
            }
        }
        Ok(report)
    }
}
