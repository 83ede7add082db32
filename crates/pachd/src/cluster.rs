//! The cluster record: identity and the metadata format version. A store of a
//! newer or unknown major version is refused (it was written by a newer pachd);
//! an older minor version is upgraded in place, one step at a time, by
//! [`UPGRADES`].
//!
//! The bucket belongs to one cluster ([`own_bucket`]): a second cluster on
//! it would have its objects deleted by the first one's garbage collection,
//! and delete the first one's with its own.
//!
//! Formats: 1.0, the first. 1.1 adds the task and slot records through which
//! workers claim datums (`pps/tasks/`, `pps/slots/`); a 1.0 pachd would run
//! datums itself beside 1.1 workers, so it must not open a 1.1 store. 1.2
//! lets an index root carry an overlay of entries (`RootV2`, see
//! `pach_storage`'s index module), which a 1.1 pachd cannot read, and adds
//! the S3 gateway's records (`pfs/file-attrs/`, `pfs/completed-uploads/`),
//! which a 1.1 pachd would neither keep right nor delete with their repo.

use anyhow::bail;
use pach_meta::{MetaStore, Txn};
use pach_storage::ContentStore;
use serde::{Deserialize, Serialize};

/// The metadata format this pachd reads and writes.
pub const FORMAT_MAJOR: u32 = 1;
pub const FORMAT_MINOR: u32 = 2;

/// One in-place upgrade: from a minor version to the next, as the
/// transaction operations it needs beyond recording the new version.
type Upgrade = fn(Txn) -> Txn;

/// `UPGRADES[m]` upgrades minor version `m` to `m + 1`.
const UPGRADES: [Upgrade; FORMAT_MINOR as usize] = [
    // 1.0 -> 1.1: task and slot records are new keys; a 1.0 store has none,
    // so only the version changes.
    |txn| txn,
    // 1.1 -> 1.2: roots with an overlay are new objects, written from now on;
    // the roots already stored stay valid.
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

/// Makes sure this cluster owns the bucket before anything is written to it.
/// A bucket no cluster has claimed is claimed (a new bucket, or the bucket of
/// a cluster started before buckets were claimed) — unless this cluster is
/// new and the bucket already holds objects, which then likely belong to
/// another cluster. A bucket another cluster owns is refused, unless
/// `take_over`: the way a migration takes over a copy of the old cluster's
/// bucket.
pub async fn own_bucket(
    info: &ClusterInfo,
    meta: &dyn MetaStore,
    content: &ContentStore,
    storage: &str,
    take_over: bool,
) -> anyhow::Result<()> {
    let owner = content.bucket_owner().await?;
    match owner {
        Some(owner) if owner == info.id => return Ok(()),
        Some(owner) if !take_over => bail!(
            "the bucket {storage} belongs to cluster {owner}, and this pachd's metadata store is cluster {}. \
             Two clusters on one bucket delete each other's objects when they collect garbage. \
             Give this cluster its own bucket (--storage) or cluster {owner}'s metadata store (--metadata); \
             if the bucket is a copy made for a migration and cluster {owner} no longer uses it, \
             start pachd once with --take-over-bucket",
            info.id
        ),
        Some(owner) => {
            tracing::warn!(previous_owner = %owner, cluster_id = %info.id, storage, "taking over the bucket");
        }
        None => {
            let new_cluster = meta
                .list(pach_pfs::records::REPOS, None, 1)
                .await?
                .is_empty();
            if new_cluster && !take_over && content.holds_objects().await? {
                bail!(
                    "the bucket {storage} holds objects but names no owning cluster, and this cluster ({}) is new: \
                     the objects likely belong to another cluster, whose garbage collection would delete this one's. \
                     Give this cluster its own bucket (--storage); if the bucket is a copy made for a migration \
                     and its cluster no longer uses it, start pachd once with --take-over-bucket",
                    info.id
                );
            }
        }
    }
    content.set_bucket_owner(&info.id).await?;
    Ok(())
}
