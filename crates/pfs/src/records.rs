//! The records PFS keeps in the metadata store and their keys. Records are small
//! JSON documents; file indexes live in the bucket and records only name their
//! roots. Key layout (the same in every metadata backend):
//!
//! - `pfs/repos/<repo>`
//! - `pfs/branches/<repo>/<branch>`
//! - `pfs/commits/<repo>/<commit id>`
//! - `pfs/staging/<repo>/<commit id>/<order>`: a change set written to an open commit
//! - `pfs/uploads/<repo>/<upload id>` and `pfs/upload-parts/<repo>/<upload id>/<n>`:
//!   uploads in parts ([`crate::uploads`]), and
//!   `pfs/completed-uploads/<repo>/<upload id>`: those completed in the last day
//! - `pfs/file-attrs/<repo>/<content hash><path>`: attributes kept with a
//!   file's content at a path ([`crate::attrs`])

use pach_meta::{KeyValue, MetaStore};
use pach_storage::{ContentHash, IndexSummary};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{PfsError, Result};

pub const REPOS: &str = "pfs/repos/";
pub const BRANCHES: &str = "pfs/branches/";
pub const COMMITS: &str = "pfs/commits/";
pub const STAGING: &str = "pfs/staging/";

pub fn repo_key(repo: &str) -> String {
    format!("{REPOS}{repo}")
}
pub fn branch_key(repo: &str, branch: &str) -> String {
    format!("{BRANCHES}{repo}/{branch}")
}
pub fn branches_prefix(repo: &str) -> String {
    format!("{BRANCHES}{repo}/")
}
pub fn commit_key(repo: &str, id: &str) -> String {
    format!("{COMMITS}{repo}/{id}")
}
pub fn commits_prefix(repo: &str) -> String {
    format!("{COMMITS}{repo}/")
}
pub fn staging_prefix(repo: &str, id: &str) -> String {
    format!("{STAGING}{repo}/{id}/")
}
pub fn repo_staging_prefix(repo: &str) -> String {
    format!("{STAGING}{repo}/")
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RepoRecord {
    pub name: String,
    pub description: String,
    pub created_ns: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BranchName {
    pub repo: String,
    pub name: String,
}

impl std::fmt::Display for BranchName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.repo, self.name)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BranchRecord {
    pub repo: String,
    pub name: String,
    pub head: Option<String>,
    #[serde(default)]
    pub provenance: Vec<BranchName>,
    /// When the branch was created (0 for branches of releases that did not
    /// record it); branches are listed newest first, as Pachyderm lists them.
    #[serde(default)]
    pub created_ns: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommitName {
    pub repo: String,
    pub id: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum Origin {
    /// Started or written by a user.
    User,
    /// Created because an upstream branch got a new commit (provenance).
    Auto,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::User => "USER",
            Origin::Auto => "AUTO",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CommitRecord {
    pub repo: String,
    pub id: String,
    pub branch: Option<String>,
    pub parent: Option<String>,
    pub started_ns: i64,
    pub finished_ns: Option<i64>,
    pub description: String,
    #[serde(default)]
    pub provenance: Vec<CommitName>,
    pub origin: Origin,
    /// The index the commit started from (its parent's), for open commits.
    pub base: Option<IndexSummary>,
    /// The commit's complete file index, once finished.
    pub index: Option<IndexSummary>,
    /// Bumped by every write into the open commit, so that finishing it conflicts
    /// with a concurrent write instead of losing it.
    #[serde(default)]
    pub writes: u64,
}

impl CommitRecord {
    pub fn is_finished(&self) -> bool {
        self.finished_ns.is_some()
    }
    /// The index that reads of this commit start from.
    pub fn index_root(&self) -> Option<&ContentHash> {
        self.index.as_ref().or(self.base.as_ref()).map(|s| &s.root)
    }
    pub fn size_bytes(&self) -> u64 {
        self.index
            .as_ref()
            .or(self.base.as_ref())
            .map(|s| s.bytes)
            .unwrap_or(0)
    }
    pub fn file_count(&self) -> u64 {
        self.index
            .as_ref()
            .or(self.base.as_ref())
            .map(|s| s.files)
            .unwrap_or(0)
    }
}

/// A change set written into an open commit, in the bucket at `changes`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StagingRecord {
    pub changes: ContentHash,
    pub count: u64,
}

pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail.
    serde_json::to_vec(record).unwrap_or_default()
}

pub fn decode<T: DeserializeOwned>(kv: &KeyValue) -> Result<T> {
    serde_json::from_slice(&kv.value).map_err(|e| PfsError::Corrupt {
        key: kv.key.clone(),
        reason: e.to_string(),
    })
}

/// Reads and decodes one record, with its modification revision.
pub async fn load<T: DeserializeOwned>(
    meta: &dyn MetaStore,
    key: &str,
) -> Result<Option<(T, u64)>> {
    match meta.get(key).await? {
        Some(kv) => Ok(Some((decode(&kv)?, kv.mod_revision))),
        None => Ok(None),
    }
}

/// Reads and decodes every record under a prefix, paging through the store.
pub async fn load_all<T: DeserializeOwned>(
    meta: &dyn MetaStore,
    prefix: &str,
) -> Result<Vec<(T, u64)>> {
    const PAGE: usize = 1000;
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = meta.list(prefix, after.as_deref(), PAGE).await?;
        let last = page.last().map(|kv| kv.key.clone());
        for kv in &page {
            out.push((decode(kv)?, kv.mod_revision));
        }
        if page.len() < PAGE {
            return Ok(out);
        }
        after = last;
    }
}
