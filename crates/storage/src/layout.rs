//! Where each kind of object lives under the cluster's key prefix.
//!
//! All names are derived from content hashes (or, for packs, a unique id), so
//! an object is never rewritten with different bytes under the same key:
//! uploads are idempotent and readers never see a half-replaced object.
//!
//! ```text
//! <prefix>/chunks/<first 2 hex>/<hex>   loose chunk blob
//! <prefix>/packs/<hex>                  pack of small chunk blobs
//! <prefix>/index/<hex>                  index root or shard
//! <prefix>/changes/<hex>                change list staged into an open commit
//! ```

use object_store::path::Path;

use crate::hash::ContentHash;

#[derive(Clone, Debug)]
pub(crate) struct Layout {
    prefix: Path,
}

impl Layout {
    pub(crate) fn new(prefix: Path) -> Self {
        Layout { prefix }
    }

    pub(crate) fn prefix(&self) -> &Path {
        &self.prefix
    }

    pub(crate) fn chunk(&self, hash: &ContentHash) -> Path {
        let hex = hash.to_hex();
        self.prefix
            .clone()
            .join("chunks")
            .join(&hex[..2])
            .join(hex.as_str())
    }

    pub(crate) fn pack(&self, id: &ContentHash) -> Path {
        self.prefix.clone().join("packs").join(id.to_hex().as_str())
    }

    pub(crate) fn index(&self, hash: &ContentHash) -> Path {
        self.prefix
            .clone()
            .join("index")
            .join(hash.to_hex().as_str())
    }

    pub(crate) fn changes(&self, hash: &ContentHash) -> Path {
        self.prefix
            .clone()
            .join("changes")
            .join(hash.to_hex().as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sit_under_the_prefix() {
        let hash = ContentHash([0xab; 32]);
        let hex = hash.to_hex();
        let layout = Layout::new(Path::from("cluster/one"));
        assert_eq!(
            layout.chunk(&hash).as_ref(),
            format!("cluster/one/chunks/ab/{hex}")
        );
        assert_eq!(
            layout.pack(&hash).as_ref(),
            format!("cluster/one/packs/{hex}")
        );
        assert_eq!(
            layout.index(&hash).as_ref(),
            format!("cluster/one/index/{hex}")
        );
        let bare = Layout::new(Path::default());
        assert_eq!(bare.changes(&hash).as_ref(), format!("changes/{hex}"));
    }
}
