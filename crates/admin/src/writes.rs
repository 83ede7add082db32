//! Pausing external writes for maintenance (an extract, a bucket copy): while
//! paused, clients' writes are refused with a retryable error before any byte
//! is accepted, so loaders retry later and nothing is half-written. Pipelines
//! keep running. The state is a metadata record, so every pachd of a cluster
//! sees the same.

use pach_meta::{MetaStore, Txn};
use serde::{Deserialize, Serialize};

use crate::error::Result;

pub const WRITES_KEY: &str = "cluster/writes";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WritesState {
    pub paused: bool,
    /// RFC 3339 time the pause began.
    pub since: String,
    pub reason: String,
}

impl WritesState {
    /// The message clients get while writes are paused.
    pub fn refusal(&self) -> String {
        let reason = if self.reason.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.reason)
        };
        format!(
            "writes to this cluster are paused since {}{reason}; retry later (an operator lifts the pause with `pachctl resume writes`)",
            self.since
        )
    }
}

pub async fn writes_state(meta: &dyn MetaStore) -> Result<WritesState> {
    Ok(match meta.get(WRITES_KEY).await? {
        Some(kv) => serde_json::from_slice(&kv.value).unwrap_or_default(),
        None => WritesState::default(),
    })
}

pub async fn set_writes(meta: &dyn MetaStore, paused: bool, reason: &str) -> Result<WritesState> {
    let state = WritesState {
        paused,
        since: if paused {
            humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
        } else {
            String::new()
        },
        reason: reason.to_string(),
    };
    let value = serde_json::to_vec(&state).unwrap_or_default();
    meta.commit(Txn::new().put(WRITES_KEY, value)).await?;
    Ok(state)
}
