//! The bucket of the Pachyderm 1.x cluster an extract came from, read in
//! its own layout, for an extract taken with `--no-objects` (the migration
//! guide's step 3: the bucket is cloned while the metadata is extracted).
//!
//! Layout (Pachyderm 1.7–1.9's object store, under its storage root):
//! `object/<hash>` holds a `pfs.BlockRef` naming the byte range of a block
//! that holds the object; `block/<name>` holds a block's bytes; objects
//! compacted into an index are found in `index/<first two characters of
//! the hash>`, a `pfs.ObjectIndex` (object hash → block range).

use std::collections::HashMap;
use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use pach_api::pfs;
use prost::Message;

use crate::error::{AdminError, Result};

/// A Pachyderm bucket: a store and the storage root inside it (the
/// prefix under which `object/`, `block/` and `index/` are).
#[derive(Clone)]
pub struct PachydermBucket {
    pub store: Arc<dyn ObjectStore>,
    pub root: Path,
}

/// Where an object's bytes are in the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketRange {
    pub block: Path,
    pub lower: u64,
    pub upper: u64,
}

impl PachydermBucket {
    fn path(&self, dir: &str, name: &str) -> Path {
        self.root.clone().join(dir).join(name)
    }

    async fn get_proto<M: Message + Default>(&self, path: &Path) -> Result<Option<M>> {
        match self.store.get(path).await {
            Ok(got) => {
                let bytes = got.bytes().await?;
                M::decode(bytes).map(Some).map_err(|e| {
                    AdminError::Corrupt(format!("the bucket's {path} is unreadable: {e}"))
                })
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Where object `hash` is: its own record, else its prefix's index.
    /// `indexes` keeps the indexes read so far.
    pub async fn find_object(
        &self,
        hash: &str,
        indexes: &mut HashMap<String, pfs::ObjectIndex>,
    ) -> Result<Option<BucketRange>> {
        let mut found: Option<pfs::BlockRef> = self.get_proto(&self.path("object", hash)).await?;
        if found.is_none() && hash.len() >= 2 {
            let prefix = hash[..2].to_string();
            if !indexes.contains_key(&prefix) {
                let index = self
                    .get_proto::<pfs::ObjectIndex>(&self.path("index", &prefix))
                    .await?
                    .unwrap_or_default();
                indexes.insert(prefix.clone(), index);
            }
            found = indexes
                .get(&prefix)
                .and_then(|i| i.objects.get(hash).cloned());
        }
        let Some(r) = found else { return Ok(None) };
        let block = r.block.map(|b| b.hash).unwrap_or_default();
        let (lower, upper) = r.range.map(|r| (r.lower, r.upper)).unwrap_or((0, 0));
        self.find_block(&block, lower, upper).await
    }

    /// Bytes `lower..upper` of block `name`, if the block has them
    /// (`upper` 0 with `lower` 0: the whole block).
    pub async fn find_block(
        &self,
        name: &str,
        lower: u64,
        upper: u64,
    ) -> Result<Option<BucketRange>> {
        if name.is_empty() || name.contains('/') || upper < lower {
            return Ok(None);
        }
        let block = self.path("block", name);
        let size = match self.store.head(&block).await {
            Ok(meta) => meta.size,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let upper = if lower == 0 && upper == 0 {
            size
        } else {
            upper
        };
        if upper > size {
            return Ok(None);
        }
        Ok(Some(BucketRange {
            block,
            lower,
            upper,
        }))
    }

    /// The bytes of a range, whole (trees).
    pub async fn read(&self, r: &BucketRange) -> Result<bytes::Bytes> {
        if r.upper == r.lower {
            return Ok(bytes::Bytes::new());
        }
        Ok(self.store.get_range(&r.block, r.lower..r.upper).await?)
    }
}
