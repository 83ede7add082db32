//! File attributes: a small JSON document a client keeps with a file's
//! content at a path (the S3 gateway's object metadata: Content-Type,
//! `x-amz-meta-*`...), outside the file index, which keeps content only.
//!
//! A record is keyed by repo, the file's content hash and its path
//! (`pfs/file-attrs/<repo>/<hash><path>`), so attributes follow that content
//! at that path: a later commit that does not touch the file keeps them,
//! older commits holding the same content show them too, and a write of
//! other content at the path (by any client) leaves the new content without
//! them. Records are written in the transaction of the write they describe
//! ([`Pfs::write_planned`]), removed with the repo, and carried by extracts.

use pach_storage::ContentHash;
use serde_json::Value;

use crate::Pfs;
use crate::error::{PfsError, Result};

pub const FILE_ATTRS: &str = "pfs/file-attrs/";

/// The largest attributes document, serialised.
pub const MAX_ATTRS_BYTES: usize = 8 * 1024;

pub fn file_attrs_key(repo: &str, path: &str, hash: &ContentHash) -> String {
    format!("{FILE_ATTRS}{repo}/{}{path}", hash.to_hex())
}

pub fn repo_attrs_prefix(repo: &str) -> String {
    format!("{FILE_ATTRS}{repo}/")
}

/// The attributes a write sets for the content it writes at `path`:
/// `Some` replaces them, `None` removes them.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrsWrite {
    pub path: String,
    pub hash: ContentHash,
    pub attrs: Option<Value>,
}

impl AttrsWrite {
    /// The record operation: its key and, unless it removes, its value.
    pub(crate) fn record(&self, repo: &str) -> Result<(String, Option<Vec<u8>>)> {
        let key = file_attrs_key(repo, &self.path, &self.hash);
        let Some(attrs) = &self.attrs else {
            return Ok((key, None));
        };
        let value = serde_json::to_vec(attrs).map_err(|e| {
            PfsError::InvalidArgument(format!("the attributes of '{}': {e}", self.path))
        })?;
        if value.len() > MAX_ATTRS_BYTES {
            return Err(PfsError::InvalidArgument(format!(
                "the attributes of '{}' are {} bytes; at most {MAX_ATTRS_BYTES} are kept",
                self.path,
                value.len()
            )));
        }
        Ok((key, Some(value)))
    }
}

impl Pfs {
    /// The attributes kept with `hash`'s content at `path` of `repo`.
    pub async fn file_attrs(
        &self,
        repo: &str,
        path: &str,
        hash: &ContentHash,
    ) -> Result<Option<Value>> {
        let key = file_attrs_key(repo, path, hash);
        match self.meta.get(&key).await? {
            Some(kv) => Ok(Some(serde_json::from_slice(&kv.value).map_err(|e| {
                PfsError::Corrupt {
                    key,
                    reason: e.to_string(),
                }
            })?)),
            None => Ok(None),
        }
    }
}
