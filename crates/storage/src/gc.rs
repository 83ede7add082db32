//! Garbage collection support: the objects that index roots, index shards,
//! change sets and file entries name (for the caller's marking), listing the
//! bucket's objects, and deleting those found dead (the caller joins the
//! two). The grace period protects uploads in flight: their objects are
//! written before any record refers to them. A pack stays while any chunk in
//! it is live (packs are not rewritten).
//!
//! Nothing here holds a set of keys: a marking can be as large as the
//! bucket, so the caller keeps its sets sorted on disk and asks about each
//! root, shard and change set once.
//!
//! A sweep deletes whatever no record of *one* cluster names, so a bucket
//! (prefix) must serve one cluster only. The bucket says which: its owner
//! object (`<prefix>/cluster-owner`) names the owning cluster's id. It is
//! written when a cluster first starts on the bucket, checked by every start
//! and every collection, and never swept, extracted or restored.

use std::time::SystemTime;

use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use crate::StorageError;
use crate::hash::ContentHash;
use crate::index::{load_root, load_shard};
use crate::model::{Change, ChunkLocation, FileEntry};
use crate::store::ContentStore;

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub deleted: u64,
    pub deleted_bytes: u64,
    pub kept: u64,
}

/// An object of the bucket, as a sweep sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub key: Path,
    pub size: u64,
    pub modified: SystemTime,
}

/// The owner object's key under the store's prefix.
const OWNER: &str = "cluster-owner";

/// The owner object's content: `cluster: <id>` (text, for people looking
/// into the bucket).
fn owner_line(cluster_id: &str) -> String {
    format!("cluster: {cluster_id}\n")
}

impl ContentStore {
    /// The key of the object naming the cluster that owns this bucket.
    pub fn owner_key(&self) -> Path {
        self.prefix().clone().join(OWNER)
    }

    /// The id of the cluster that owns this bucket (prefix), or None when no
    /// cluster has claimed it yet.
    pub async fn bucket_owner(&self) -> Result<Option<String>, StorageError> {
        let key = self.owner_key();
        let failed = |source| StorageError::ObjectStore {
            op: "get",
            key: key.to_string(),
            source,
        };
        let bytes = match self.object_store().get(&key).await {
            Ok(r) => r.bytes().await.map_err(failed)?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(failed(e)),
        };
        let text = String::from_utf8_lossy(&bytes);
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("cluster:"))
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty());
        match id {
            Some(id) => Ok(Some(id)),
            None => Err(StorageError::Corrupt {
                key: key.to_string(),
                reason: "the bucket's owner object names no cluster".into(),
            }),
        }
    }

    /// Records `cluster_id` as the owner of this bucket (prefix).
    pub async fn set_bucket_owner(&self, cluster_id: &str) -> Result<(), StorageError> {
        let key = self.owner_key();
        crate::upload::put(
            &**self.object_store(),
            &key,
            owner_line(cluster_id).into_bytes().into(),
        )
        .await
    }

    /// Whether the bucket (prefix) holds any object besides its owner object.
    pub async fn holds_objects(&self) -> Result<bool, StorageError> {
        let owner = self.owner_key();
        let mut listing = self.object_store().list(Some(self.prefix()));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|source| match source {
                // A missing prefix lists nothing; only a missing bucket or
                // container fails the listing this way.
                source if crate::upload::names_missing_container(&source) => {
                    StorageError::MissingContainer {
                        key: self.prefix().to_string(),
                        store: self.object_store().to_string(),
                    }
                }
                source => StorageError::ObjectStore {
                    op: "list",
                    key: self.prefix().to_string(),
                    source,
                },
            })?;
            if meta.location != owner {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The shards of an index root, and the entries of its overlay.
    pub async fn index_parts(
        &self,
        root: &ContentHash,
    ) -> Result<(Vec<ContentHash>, Vec<FileEntry>), StorageError> {
        let root = load_root(&**self.object_store(), self.layout(), root).await?;
        Ok((root.shards.iter().map(|s| s.hash).collect(), root.overlay))
    }

    /// The files an index shard lists.
    pub async fn shard_entries(&self, shard: &ContentHash) -> Result<Vec<FileEntry>, StorageError> {
        load_shard(&**self.object_store(), self.layout(), shard).await
    }

    /// The files a change set puts or appends.
    pub async fn changes_entries(
        &self,
        changes: &ContentHash,
    ) -> Result<Vec<FileEntry>, StorageError> {
        Ok(self
            .read_changes(changes)
            .await?
            .into_iter()
            .filter_map(|c| match c {
                Change::Put(e) | Change::Append(e) | Change::ReplaceFrom { entry: e, .. } => {
                    Some(e)
                }
                Change::Delete(_) => None,
            })
            .collect())
    }

    /// The objects holding a file's content: its loose chunks and the packs
    /// of its packed chunks (repeated when chunks share a pack).
    pub fn entry_objects<'a>(&'a self, entry: &'a FileEntry) -> impl Iterator<Item = Path> + 'a {
        entry.chunks.iter().map(|chunk| match &chunk.loc {
            ChunkLocation::Loose => self.chunk_key(&chunk.hash),
            ChunkLocation::Packed { pack, .. } => self.pack_key(pack),
        })
    }

    /// An object's key from its key relative to the store's prefix (e.g. a
    /// datum's log as its record names it).
    pub fn relative_key(&self, key: &str) -> Path {
        let mut path = self.prefix().clone();
        for part in key.split('/').filter(|p| !p.is_empty()) {
            path = path.join(part);
        }
        path
    }

    /// Every object under the store's prefix but the owner object, in the
    /// store's listing order (not necessarily sorted).
    pub fn list_objects(&self) -> BoxStream<'_, Result<StoredObject, StorageError>> {
        let owner = self.owner_key();
        self.object_store()
            .list(Some(self.prefix()))
            .filter_map(move |meta| {
                let item = match meta {
                    Ok(m) if m.location == owner => None,
                    Ok(m) => Some(Ok(StoredObject {
                        key: m.location,
                        size: m.size,
                        modified: m.last_modified.into(),
                    })),
                    Err(source) => Some(Err(StorageError::ObjectStore {
                        op: "list",
                        key: self.prefix().to_string(),
                        source,
                    })),
                };
                std::future::ready(item)
            })
            .boxed()
    }

    /// Deletes one object a sweep found dead (never the owner object).
    /// Already gone counts as deleted.
    pub async fn delete_object(&self, key: &Path) -> Result<(), StorageError> {
        if *key == self.owner_key() {
            return Ok(());
        }
        match self.object_store().delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(StorageError::ObjectStore {
                op: "delete",
                key: key.to_string(),
                source,
            }),
        }
    }
}
