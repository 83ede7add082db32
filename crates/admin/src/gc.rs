//! Garbage collection: returns the space of objects nothing refers to any
//! more (after repos, commits, pipelines or jobs are deleted).
//!
//! Live objects are those named by commit indexes, staged writes, the parts
//! of uploads in progress (S3 multipart uploads), datum outputs, the datum
//! cache and logs. Because uploads deduplicate against
//! objects already in the bucket, an old unreferenced object can become
//! referenced again while a collection runs; so a collection pauses clients'
//! writes for its duration, refuses to run while commits are open (a job or
//! a client is writing), marks, lists the candidates, marks again, and only
//! deletes candidates that are still dead and older than the grace period.
//!
//! Memory does not grow with the cluster: records are read a page at a time
//! from metadata snapshots; what they name (index roots, change sets, object
//! keys) goes to sets sorted on disk (`spill`); each distinct root, then
//! each distinct shard and change set, is read once, in hash order, adding
//! the objects it names; the bucket's listing is sorted on disk too, and the
//! sweep walks it beside the live keys (a merge join).
//!
//! A collection sees the records of one cluster only, so it refuses to run
//! on a bucket that does not name this cluster as its owner (checked before
//! it starts and again right before it deletes anything).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use pach_pfs::records::{COMMITS, STAGING, StagingRecord};
use pach_pfs::uploads::{PartRecord, UPLOAD_PARTS};
use pach_pfs::writes::{set_writes, writes_state};
use pach_pfs::{CommitRecord, Pfs};
use pach_pps::records::{CACHE, CacheRecord, DATUMS, DatumRecord};
use pach_storage::{ContentHash, SweepReport};
use serde::de::DeserializeOwned;

use crate::error::{AdminError, Result};
use crate::extract::{Pages, cluster_id};
use crate::spill::{Merge, Scratch, Sorted, Sorter};

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
    refuse_open_commits(pfs).await?;
    let scratch = Scratch::new_in(&std::env::temp_dir()).await?;
    let mut marks = Marks {
        roots: scratch.sorter(),
        changes: scratch.sorter(),
        live: scratch.sorter(),
    };
    mark_records(pfs, &mut marks).await?;
    let candidates = list(pfs, &scratch).await?;
    // Marking again catches anything referenced while the first pass and
    // the listing ran; an object must be dead in both to go.
    mark_records(pfs, &mut marks).await?;
    let live = resolve(pfs, &scratch, marks).await?;
    check_owner(pfs).await?;
    let content = pfs.content();
    let mut report = SweepReport::default();
    let mut live = live.cursor().await?;
    let mut candidates = candidates.read().await?;
    while let Some(object) = candidates.next().await? {
        let (size, modified) = object.value().split_at(8);
        let size = u64::from_le_bytes(size.try_into().unwrap_or_default());
        let modified = UNIX_EPOCH
            + Duration::from_nanos(u64::from_le_bytes(modified.try_into().unwrap_or_default()));
        if live.contains(object.key()).await? || modified >= older_than {
            report.kept += 1;
            continue;
        }
        content
            .delete_object(&object_store::path::Path::from(utf8(object.key())?))
            .await?;
        report.deleted += 1;
        report.deleted_bytes += size;
    }
    Ok(report)
}

/// What records name, sorted on disk: index roots and change sets (their
/// hashes, to be walked once each), and object keys named directly.
struct Marks {
    roots: Sorter,
    changes: Sorter,
    live: Sorter,
}

/// Refuses while commits are open: a job or a client is writing, and what
/// it uploaded is named by no record yet.
async fn refuse_open_commits(pfs: &Pfs) -> Result<()> {
    let snapshot = pfs.meta().snapshot().await?;
    let mut pages = Pages::new(&*snapshot, COMMITS);
    let mut open = 0usize;
    let mut first: Option<CommitRecord> = None;
    while let Some(page) = pages.next().await? {
        for kv in page {
            let c: CommitRecord = decode(&kv)?;
            if !c.is_finished() {
                open += 1;
                first.get_or_insert(c);
            }
        }
    }
    if let Some(c) = first {
        return Err(AdminError::Busy(format!(
            "{open} commit(s) are open (first: {}@{}); wait for running jobs (`pachctl list job`) and finish open commits, then collect",
            c.repo, c.id
        )));
    }
    Ok(())
}

fn decode<T: DeserializeOwned>(kv: &pach_meta::KeyValue) -> Result<T> {
    serde_json::from_slice(&kv.value)
        .map_err(|e| AdminError::Corrupt(format!("record {} is unreadable: {e}", kv.key)))
}

/// Adds what the records name (from one metadata snapshot) to `marks`:
/// commit indexes, staged writes, the parts of uploads in progress, datum
/// outputs and logs, the datum cache.
async fn mark_records(pfs: &Pfs, marks: &mut Marks) -> Result<()> {
    let content = pfs.content();
    let snapshot = pfs.meta().snapshot().await?;
    for prefix in [COMMITS, STAGING, UPLOAD_PARTS, DATUMS, CACHE] {
        let mut pages = Pages::new(&*snapshot, prefix);
        while let Some(page) = pages.next().await? {
            for kv in page {
                match prefix {
                    COMMITS => {
                        let c: CommitRecord = decode(&kv)?;
                        for s in [&c.index, &c.base].into_iter().flatten() {
                            marks.roots.push(&s.root.0, b"").await?;
                        }
                    }
                    STAGING => {
                        let s: StagingRecord = decode(&kv)?;
                        marks.changes.push(&s.changes.0, b"").await?;
                    }
                    UPLOAD_PARTS => {
                        let p: PartRecord = decode(&kv)?;
                        marks.changes.push(&p.changes.0, b"").await?;
                    }
                    DATUMS => {
                        let d: DatumRecord = decode(&kv)?;
                        if let Some(o) = &d.outputs {
                            marks.changes.push(&o.0, b"").await?;
                        }
                        if let Some(log) = &d.log {
                            let key = content.relative_key(log);
                            marks.live.push(key.as_ref().as_bytes(), b"").await?;
                        }
                    }
                    _ => {
                        let c: CacheRecord = decode(&kv)?;
                        marks.changes.push(&c.outputs.0, b"").await?;
                        for e in c.entries.iter().flatten() {
                            for key in content.entry_objects(e) {
                                marks.live.push(key.as_ref().as_bytes(), b"").await?;
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Every live object key: what the records named directly, and the objects
/// of each index root, shard and change set they named, each read once
/// (consecutive commits share most shards).
async fn resolve(pfs: &Pfs, scratch: &Scratch, marks: Marks) -> Result<Sorted> {
    let content = pfs.content();
    let Marks {
        roots,
        changes,
        mut live,
    } = marks;
    let mut shards = scratch.sorter();
    let roots = roots.finish().await?;
    let mut roots = Unique(roots.read().await?, None);
    while let Some(root) = roots.next().await? {
        live.push(content.index_key(&root).as_ref().as_bytes(), b"")
            .await?;
        let (root_shards, overlay) = content.index_parts(&root).await?;
        for shard in root_shards {
            shards.push(&shard.0, b"").await?;
        }
        for e in overlay {
            for key in content.entry_objects(&e) {
                live.push(key.as_ref().as_bytes(), b"").await?;
            }
        }
    }
    let shards = shards.finish().await?;
    let mut shards = Unique(shards.read().await?, None);
    while let Some(shard) = shards.next().await? {
        live.push(content.index_key(&shard).as_ref().as_bytes(), b"")
            .await?;
        for e in content.shard_entries(&shard).await? {
            for key in content.entry_objects(&e) {
                live.push(key.as_ref().as_bytes(), b"").await?;
            }
        }
    }
    let changes = changes.finish().await?;
    let mut changes = Unique(changes.read().await?, None);
    while let Some(set) = changes.next().await? {
        live.push(content.changes_key(&set).as_ref().as_bytes(), b"")
            .await?;
        for e in content.changes_entries(&set).await? {
            for key in content.entry_objects(&e) {
                live.push(key.as_ref().as_bytes(), b"").await?;
            }
        }
    }
    live.finish().await
}

/// The distinct hashes of a sorted set of hashes.
struct Unique(Merge, Option<ContentHash>);

impl Unique {
    async fn next(&mut self) -> Result<Option<ContentHash>> {
        while let Some(entry) = self.0.next().await? {
            let hash = ContentHash(entry.key().try_into().map_err(|_| AdminError::Io {
                what: "reading sorted hashes back".into(),
                source: std::io::Error::other("an entry that is not a hash"),
            })?);
            if self.1 != Some(hash) {
                self.1 = Some(hash);
                return Ok(Some(hash));
            }
        }
        Ok(None)
    }
}

fn utf8(key: &[u8]) -> Result<&str> {
    std::str::from_utf8(key).map_err(|_| AdminError::Io {
        what: "reading the sorted object listing back".into(),
        source: std::io::Error::other("an object key that is not UTF-8"),
    })
}

/// The bucket's objects (but its owner object), sorted on disk by key, each
/// with its size and modification time (nanoseconds since the epoch), both
/// little-endian u64.
async fn list(pfs: &Pfs, scratch: &Scratch) -> Result<Sorted> {
    let mut sorter = scratch.sorter();
    let mut listing = pfs.content().list_objects();
    let mut payload = [0u8; 16];
    while let Some(object) = listing.next().await {
        let object = object?;
        let modified = object
            .modified
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        payload[..8].copy_from_slice(&object.size.to_le_bytes());
        payload[8..].copy_from_slice(&modified.to_le_bytes());
        sorter
            .push(object.key.as_ref().as_bytes(), &payload)
            .await?;
    }
    sorter.finish().await
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
