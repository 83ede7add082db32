//! Garbage collection: returns the space of objects nothing refers to any
//! more (after repos, commits, pipelines or jobs are deleted).
//!
//! Live objects are those named by commit indexes, staged writes, datum
//! outputs, the datum cache and logs. Because uploads deduplicate against
//! objects already in the bucket, an old unreferenced object can become
//! referenced again while a collection runs; so a collection pauses clients'
//! writes for its duration, refuses to run while commits are open (a job or
//! a client is writing), marks, lists the candidates, marks again, and only
//! deletes candidates that are still dead and older than the grace period.
//!
//! A collection sees the records of one cluster only, so it refuses to run
//! on a bucket that does not name this cluster as its owner (checked before
//! it starts and again right before it deletes anything).

use std::time::{Duration, SystemTime};

use pach_pfs::records::{StagingRecord, load_all};
use pach_pfs::{CommitRecord, Pfs};
use pach_pps::records::{CACHE, CacheRecord, DATUMS, DatumRecord};
use pach_storage::{LiveObjects, SweepReport};

use crate::error::{AdminError, Result};
use crate::extract::cluster_id;
use pach_pfs::writes::{set_writes, writes_state};

/// Collects garbage; objects younger than `grace` are always kept.
pub async fn garbage_collect(pfs: &Pfs, grace: Duration) -> Result<SweepReport> {
    let meta = pfs.meta();
    check_owner(pfs).await?;
    let before = writes_state(&**meta).await?;
    if !before.paused {
        set_writes(&**meta, true, "garbage collection").await?;
    }
    let result = collect(pfs, grace).await;
    if !before.paused {
        set_writes(&**meta, false, "").await?;
    }
    result
}

async fn collect(pfs: &Pfs, grace: Duration) -> Result<SweepReport> {
    let older_than = SystemTime::now() - grace;
    let open: Vec<CommitRecord> = commits(pfs)
        .await?
        .into_iter()
        .filter(|c| !c.is_finished())
        .collect();
    if let Some(c) = open.first() {
        return Err(AdminError::Busy(format!(
            "{} commit(s) are open (first: {}@{}); wait for running jobs (`pachctl list job`) and finish open commits, then collect",
            open.len(),
            c.repo,
            c.id
        )));
    }
    let first = mark(pfs).await?;
    // Marking again catches anything referenced while the first pass ran;
    // an object must be dead in both to go.
    let second = mark(pfs).await?;
    let mut live = first;
    live.extend(second);
    check_owner(pfs).await?;
    Ok(pfs.content().sweep(&live, older_than).await?)
}

/// Refuses unless the bucket names this cluster as its owner.
async fn check_owner(pfs: &Pfs) -> Result<()> {
    let cluster = cluster_id(&**pfs.meta())
        .await?
        .ok_or_else(|| AdminError::NoClusterRecord {
            problem: "the metadata store has no cluster record (cluster/info)".into(),
        })?;
    match pfs.content().bucket_owner().await? {
        Some(owner) if owner == cluster => Ok(()),
        Some(owner) => Err(AdminError::NotOwner { owner, cluster }),
        None => Err(AdminError::Unowned { cluster }),
    }
}

async fn commits(pfs: &Pfs) -> Result<Vec<CommitRecord>> {
    Ok(
        load_all::<CommitRecord>(&**pfs.meta(), pach_pfs::records::COMMITS)
            .await?
            .into_iter()
            .map(|(c, _)| c)
            .collect(),
    )
}

async fn mark(pfs: &Pfs) -> Result<LiveObjects> {
    let content = pfs.content();
    let meta = pfs.meta();
    let mut live = LiveObjects::default();
    for c in commits(pfs).await? {
        for s in [&c.index, &c.base].into_iter().flatten() {
            content.mark_index(&mut live, &s.root).await?;
        }
    }
    for (s, _) in load_all::<StagingRecord>(&**meta, pach_pfs::records::STAGING).await? {
        content.mark_changes(&mut live, &s.changes).await?;
    }
    for (d, _) in load_all::<DatumRecord>(&**meta, DATUMS).await? {
        if let Some(o) = &d.outputs {
            content.mark_changes(&mut live, o).await?;
        }
        if let Some(log) = &d.log {
            live.keep_relative(content, log);
        }
    }
    for (c, _) in load_all::<CacheRecord>(&**meta, CACHE).await? {
        content.mark_changes(&mut live, &c.outputs).await?;
        for e in c.entries.iter().flatten() {
            content.mark_entry(&mut live, e);
        }
    }
    Ok(live)
}
