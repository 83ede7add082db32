//! Finding a piece by its name: Pachyderm 1.9 named each put's bytes (an
//! object) by their hash, and `InspectFile` lists a file's pieces by their
//! SHA-512 the same way; `get object HASH` reads such a piece. Nothing keeps
//! a map from names to pieces, so the finished commits' indexes are walked
//! (each index once) until a file holding the piece turns up.

use futures::TryStreamExt;
use pach_storage::Sha512;

use crate::Pfs;
use crate::error::{PfsError, Result};
use crate::records::*;

/// Where a piece is: the bytes `offset..offset + size` of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectLocation {
    pub repo: String,
    pub commit: String,
    pub path: String,
    pub offset: u64,
    pub size: u64,
}

impl Pfs {
    /// A file holding the piece whose SHA-512 is `hash` (hex), if any.
    pub async fn find_object(&self, hash: &str) -> Result<Option<ObjectLocation>> {
        let wanted: Sha512 = hash.parse().map_err(|_| {
            PfsError::InvalidArgument(format!(
                "'{hash}' is not an object hash: 128 hex digits, as `inspect file` lists them"
            ))
        })?;
        let commits = load_all::<CommitRecord>(&*self.meta, COMMITS).await?;
        let mut seen = std::collections::HashSet::new();
        for (c, _) in &commits {
            let Some(index) = &c.index else {
                continue;
            };
            if !seen.insert(index.root) {
                continue;
            }
            let reader = self.content.open_index(Some(&index.root)).await?;
            let mut entries = reader.range("", None);
            while let Some(entry) = entries.try_next().await? {
                let mut offset = 0;
                for piece in &entry.pieces {
                    if piece.sha512.as_ref() == Some(&wanted) {
                        return Ok(Some(ObjectLocation {
                            repo: c.repo.clone(),
                            commit: c.id.clone(),
                            path: entry.path.clone(),
                            offset,
                            size: piece.len,
                        }));
                    }
                    offset += piece.len;
                }
            }
        }
        Ok(None)
    }
}
