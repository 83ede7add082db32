//! Access control as Pachyderm 1.9 defines it, kept in the metadata store:
//! the enterprise state (any activation code activates: nothing is paid),
//! activation with an initial admin, tokens and one-time passwords, repo ACLs
//! (NONE < READER < WRITER < OWNER for users, robots, pipelines and groups),
//! cluster admins, groups, and the auth configuration.
//!
//! Invariants:
//! - no token or one-time password is ever stored: a record holds the BLAKE3
//!   hash of its secret, is found by that hash (its key) and compared to the
//!   presented secret's hash in constant time;
//! - auth is active exactly while `auth/activation` exists; deactivation
//!   removes every auth record but the enterprise state, in one transaction;
//! - there is always at least one admin while auth is active;
//! - a one-time password is consumed by the transaction that creates the
//!   session token it buys, so it is used at most once;
//! - every change is one guarded transaction, retried on conflict.
//!
//! The crate knows nothing of gRPC, repos' contents or the CLI: the caller
//! checks that a repo exists before giving it an ACL.

/// Runs `$body` (an async block's body that reads and returns a guarded
/// transaction and a value, or an error that ends the call) until its
/// transaction commits.
macro_rules! guarded {
    ($auth:expr, $body:block) => {{
        let mut outcome = Err(crate::AuthError::Contention);
        for _ in 0..crate::MAX_ATTEMPTS {
            let attempt: crate::Result<(pach_meta::Txn, _)> = async $body.await;
            let (txn, value) = attempt?;
            if $auth.commit(txn).await?.is_some() {
                outcome = Ok(value);
                break;
            }
        }
        outcome
    }};
}

mod acl;
mod cache;
mod config;
mod enterprise;
mod error;
mod records;
mod tokens;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use pach_meta::{KeyValue, MetaStore, Revision, Txn};
use serde::{Serialize, de::DeserializeOwned};

pub use cache::MAX_AGE;
pub use config::{AuthConfig, IdProvider, IdProviderKind, SamlServiceOptions};
pub use enterprise::EnterpriseRecord;
pub use error::{AuthError, ErrorKind, Result};
pub use records::{EXTRACTED, PREFIX, Scope, TokenSource};
pub use tokens::{Otp, TokenInfo, WhoAmI};

/// Subject prefixes Pachyderm 1.9 knows.
pub const GITHUB_PREFIX: &str = "github:";
pub const ROBOT_PREFIX: &str = "robot:";
pub const PIPELINE_PREFIX: &str = "pipeline:";
/// Our prefix for groups named in ACLs (see `docs/auth.md`).
pub const GROUP_PREFIX: &str = "group:";

/// A session's lifetime when nothing shorter is asked: 30 days, as 1.9.
pub const DEFAULT_SESSION_TTL_SECS: i64 = 30 * 24 * 60 * 60;
/// A one-time password's lifetime when none is asked: 5 minutes, as 1.9.
pub const DEFAULT_OTP_TTL_SECS: i64 = 5 * 60;

/// How often a guarded transaction is tried before giving up.
const MAX_ATTEMPTS: usize = 64;

/// A caller whose token checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    pub is_admin: bool,
    /// The caller's token expires at this Unix time (`None`: never).
    pub expires: Option<i64>,
    /// The caller's groups (group names, as `SetGroupsForUser` gives them).
    pub groups: Vec<String>,
}

/// The access-control state of one cluster, over its metadata store, with
/// what every call's check reads kept in memory (`cache`). One per process:
/// clones share the cache and its watch.
#[derive(Clone)]
pub struct Auth {
    meta: Arc<dyn MetaStore>,
    cache: Arc<cache::Cache>,
}

impl Auth {
    /// Access control over `meta`; starts the watch that keeps its cache
    /// (on the current tokio runtime).
    pub fn new(meta: Arc<dyn MetaStore>) -> Self {
        let cache = cache::Cache::start(meta.clone());
        Self { meta, cache }
    }

    /// Whether auth is active (every call must then carry a token). While
    /// the watch runs this is one atomic load.
    pub async fn is_active(&self) -> Result<bool> {
        match self.cache.active() {
            Some(active) => Ok(active),
            None => Ok(self.meta.get(records::ACTIVATION).await?.is_some()),
        }
    }

    /// Records under `auth/` were written around this crate (a restore):
    /// what the cache holds is dropped before the caller goes on.
    pub fn changed_elsewhere(&self) {
        self.cache.forget_everything();
    }

    /// Commits an auth transaction; what it touched leaves the cache before
    /// this returns (on an error, whose outcome is unknown, everything does).
    async fn commit(&self, txn: Txn) -> Result<Option<Revision>> {
        let ops = txn.ops.clone();
        match self.meta.commit(txn).await {
            Ok(Some(rev)) => {
                self.cache.wrote(&ops);
                Ok(Some(rev))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.cache.forget_everything();
                Err(e.into())
            }
        }
    }

    /// The record under `key` as the checks of calls read it: from the
    /// cache when kept there. `keep_absent`: whether "no record" is kept.
    async fn cached<T>(&self, key: &str, keep_absent: bool) -> Result<Option<Arc<T>>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        self.cache
            .get_or_load(key, keep_absent, async {
                Ok(self.load::<T>(key).await?.map(|(v, _)| v))
            })
            .await
    }

    async fn require_active(&self) -> Result<()> {
        if self.is_active().await? {
            Ok(())
        } else {
            Err(AuthError::NotActivated)
        }
    }

    async fn load<T: DeserializeOwned>(&self, key: &str) -> Result<Option<(T, u64)>> {
        match self.meta.get(key).await? {
            Some(kv) => Ok(Some((decode(&kv)?, kv.mod_revision))),
            None => Ok(None),
        }
    }

    async fn list<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<(String, T)>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.meta.list(prefix, after.as_deref(), 1000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            for kv in &page {
                out.push((kv.key[prefix.len()..].to_string(), decode(kv)?));
            }
        }
        Ok(out)
    }
}

fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    // Our records are maps of strings and numbers: they always serialise.
    serde_json::to_vec(record).unwrap_or_else(|e| unreachable!("auth record encodes: {e}"))
}

fn decode<T: DeserializeOwned>(kv: &KeyValue) -> Result<T> {
    serde_json::from_slice(&kv.value).map_err(|e| AuthError::Corrupt {
        key: kv.key.clone(),
        problem: e.to_string(),
    })
}

/// The current Unix time in seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `subject` in Pachyderm's canonical form: no prefix means a GitHub user
/// (taken as named: GitHub cannot be asked here); `robot:`, `pipeline:`,
/// `github:` and our `group:` are kept; anything else is refused.
pub fn canonical_subject(subject: &str) -> Result<String> {
    if subject.is_empty() {
        return Err(AuthError::InvalidSubject {
            subject: subject.into(),
            problem: "it is empty".into(),
        });
    }
    let Some(colon) = subject.find(':') else {
        return Ok(format!("{GITHUB_PREFIX}{subject}"));
    };
    let (prefix, name) = subject.split_at(colon + 1);
    if name.is_empty() {
        return Err(AuthError::InvalidSubject {
            subject: subject.into(),
            problem: "nothing follows the prefix".into(),
        });
    }
    match prefix {
        GITHUB_PREFIX if name.contains(':') => Err(AuthError::InvalidSubject {
            subject: subject.into(),
            problem: "a GitHub user's name has no ':'".into(),
        }),
        GITHUB_PREFIX | ROBOT_PREFIX | PIPELINE_PREFIX | GROUP_PREFIX => Ok(subject.to_string()),
        _ => Err(AuthError::InvalidSubject {
            subject: subject.into(),
            problem: format!("unrecognized prefix {prefix}"),
        }),
    }
}

#[cfg(test)]
mod tests;
