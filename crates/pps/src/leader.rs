//! Leadership of the pipeline controller when several pachd share one
//! metadata store: a lease record (`pps/leader`) naming the holder and when
//! its lease ends, taken and renewed with guarded transactions. Only the
//! holder schedules jobs; when it dies, its lease runs out and another pachd
//! takes over within [`LEASE`]. Works on every metadata backend (the lease is
//! an ordinary record), assuming pachd clocks agree to well under a lease.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pach_meta::{MetaStore, Txn};
use pach_pfs::records::{encode, load};
use serde::{Deserialize, Serialize};

use crate::error::Result;

pub const LEADER_KEY: &str = "pps/leader";
/// How long a lease lasts without renewal.
pub const LEASE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Lease {
    holder: String,
    expires_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Takes or renews the lease for `me`; true while `me` leads.
pub async fn lead(meta: &dyn MetaStore, me: &str) -> Result<bool> {
    let now = now_ms();
    let current = load::<Lease>(meta, LEADER_KEY).await?;
    let rev = match &current {
        Some((l, _)) if l.holder != me && l.expires_ms > now => return Ok(false),
        Some((_, rev)) => *rev,
        None => 0,
    };
    let lease = Lease {
        holder: me.to_string(),
        expires_ms: now + LEASE.as_millis() as u64,
    };
    let txn = Txn::new()
        .expect(LEADER_KEY, rev)
        .put(LEADER_KEY, encode(&lease));
    Ok(meta.commit(txn).await?.is_some())
}

/// The pachd holding the lease, and when its lease ends (milliseconds since
/// the epoch); `None` when no pachd has ever led. An expired lease is
/// returned as it is: the caller compares with its clock.
pub async fn current(meta: &dyn MetaStore) -> Result<Option<(String, u64)>> {
    Ok(load::<Lease>(meta, LEADER_KEY)
        .await?
        .map(|(l, _)| (l.holder, l.expires_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leader_at_a_time_and_takeover_after_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let meta = pach_meta::RedbStore::open(&dir.path().join("m.redb")).unwrap();
        assert_eq!(current(&meta).await.unwrap(), None);
        assert!(lead(&meta, "a").await.unwrap());
        assert!(!lead(&meta, "b").await.unwrap());
        assert_eq!(current(&meta).await.unwrap().unwrap().0, "a");
        assert!(lead(&meta, "a").await.unwrap(), "the holder renews");
        // Expire a's lease by hand: b takes over, a no longer leads.
        let expired = Lease {
            holder: "a".into(),
            expires_ms: 1,
        };
        meta.commit(Txn::new().put(LEADER_KEY, encode(&expired)))
            .await
            .unwrap();
        assert!(lead(&meta, "b").await.unwrap());
        assert!(!lead(&meta, "a").await.unwrap());
    }
}
