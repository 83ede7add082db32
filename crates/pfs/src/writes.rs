//! Pausing clients' writes for maintenance (an extract, a bucket copy, a
//! garbage collection). The state is one metadata record, `cluster/writes`,
//! so every pachd of a cluster sees the same; and every client write
//! transaction of PFS compares that record (see [`crate::guard`]), so a pause
//! is atomic with respect to writes in flight: a write either commits before
//! the pause (and the pause's author sees it) or is refused after it with the
//! retryable [`crate::ErrorKind::Unavailable`]. Pipelines' own writes are not
//! paused: jobs and cron ticks go on.

use pach_meta::{MetaStore, Revision, Txn};
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

/// The writes state and the revision it was read at (0: never set, which is
/// "not paused").
pub(crate) async fn load_writes(meta: &dyn MetaStore) -> Result<(WritesState, Revision)> {
    match meta.get(WRITES_KEY).await? {
        Some(kv) => Ok((crate::records::decode(&kv)?, kv.mod_revision)),
        None => Ok((WritesState::default(), 0)),
    }
}

pub async fn writes_state(meta: &dyn MetaStore) -> Result<WritesState> {
    Ok(load_writes(meta).await?.0)
}

/// Pauses (or resumes) clients' writes. Once this returns, no client write
/// transaction that read the previous state can commit.
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
    meta.commit(Txn::new().put(WRITES_KEY, crate::records::encode(&state)))
        .await?;
    Ok(state)
}
