//! The cluster record: identity and the metadata format version. A store of a
//! newer or unknown major version is refused (it was written by a newer pachd);
//! an older minor version is upgraded in place, one step at a time, by
//! [`UPGRADES`].
//!
//! Formats: 1.0, the first. 1.1 adds the task and slot records through which
//! workers claim datums (`pps/tasks/`, `pps/slots/`); a 1.0 pachd would run
//! datums itself beside 1.1 workers, so it must not open a 1.1 store.

use anyhow::bail;
use pach_meta::{MetaStore, Txn};
use serde::{Deserialize, Serialize};

/// The metadata format this pachd reads and writes.
pub const FORMAT_MAJOR: u32 = 1;
pub const FORMAT_MINOR: u32 = 1;

/// One in-place upgrade: from a minor version to the next, as the
/// transaction operations it needs beyond recording the new version.
type Upgrade = fn(Txn) -> Txn;

/// `UPGRADES[m]` upgrades minor version `m` to `m + 1`.
const UPGRADES: [Upgrade; FORMAT_MINOR as usize] = [
    // 1.0 -> 1.1: task and slot records are new keys; a 1.0 store has none,
    // so only the version changes.
    |txn| txn,
];
const CLUSTER_KEY: &str = "cluster/info";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub id: String,
    pub format_major: u32,
    pub format_minor: u32,
}

pub async fn open(meta: &dyn MetaStore) -> anyhow::Result<ClusterInfo> {
    loop {
        match meta.get(CLUSTER_KEY).await? {
            Some(kv) => {
                let info: ClusterInfo = serde_json::from_slice(&kv.value).map_err(|e| {
                    anyhow::anyhow!(
                        "the cluster record is unreadable ({e}); restore the cluster from a backup"
                    )
                })?;
                if info.format_major != FORMAT_MAJOR {
                    bail!(
                        "this metadata store has format version {}.{}, but this pachd reads format {FORMAT_MAJOR}.x. \
                         Run the pachd release that wrote it and migrate: `pachctl extract > backup` there, \
                         then start this pachd on an empty data directory and `pachctl restore < backup`",
                        info.format_major,
                        info.format_minor
                    );
                }
                if info.format_minor > FORMAT_MINOR {
                    bail!(
                        "this metadata store has format version {}.{}, newer than this pachd ({FORMAT_MAJOR}.{FORMAT_MINOR}); \
                         upgrade pachd to a release that reads it",
                        info.format_major,
                        info.format_minor
                    );
                }
                if info.format_minor < FORMAT_MINOR {
                    let upgraded = ClusterInfo {
                        format_minor: info.format_minor + 1,
                        ..info.clone()
                    };
                    let txn = UPGRADES[info.format_minor as usize](
                        Txn::new()
                            .expect(CLUSTER_KEY, kv.mod_revision)
                            .put(CLUSTER_KEY, serde_json::to_vec(&upgraded)?),
                    );
                    if meta.commit(txn).await?.is_some() {
                        tracing::info!(
                            "upgraded the metadata store in place from format {}.{} to {}.{}",
                            info.format_major,
                            info.format_minor,
                            upgraded.format_major,
                            upgraded.format_minor
                        );
                    }
                    continue;
                }
                return Ok(info);
            }
            None => {
                let info = ClusterInfo {
                    id: uuid::Uuid::new_v4().simple().to_string(),
                    format_major: FORMAT_MAJOR,
                    format_minor: FORMAT_MINOR,
                };
                let txn = Txn::new()
                    .expect(CLUSTER_KEY, 0)
                    .put(CLUSTER_KEY, serde_json::to_vec(&info)?);
                if meta.commit(txn).await?.is_some() {
                    return Ok(info);
                }
            }
        }
    }
}
