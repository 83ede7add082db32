//! Writing a cluster as an extract stream.

use std::time::{Duration, UNIX_EPOCH};

use futures::StreamExt;
use object_store::ObjectStoreExt;
use pach_meta::Snapshot;
use pach_pfs::{CommitRecord, Pfs};
use tokio::io::AsyncWrite;

use crate::Summary;
use crate::error::{AdminError, Result};
use crate::spill::{Entry, Scratch, Sorted};
use crate::stream::{FORMAT, Header, VERSION, Writer};

/// Metadata prefixes in the order a restore can apply them: a record comes
/// after the records it refers to.
pub(crate) const RECORD_ORDER: &[&str] = &[
    "pfs/repos/",
    "pfs/commits/",
    "pfs/branches/",
    "pfs/staging/",
    // Attributes kept with files' content (format 1.2): the S3 gateway's
    // object metadata.
    pach_pfs::attrs::FILE_ATTRS,
    "pps/pipelines/",
    "pps/jobs/",
    "pps/datums/",
    "pps/cache/",
    // Access control (format 1.1): ACLs, admins, groups, token hashes, the
    // auth configuration and whether auth is active.
    pach_auth::EXTRACTED[0],
    pach_auth::EXTRACTED[1],
    pach_auth::EXTRACTED[2],
    pach_auth::EXTRACTED[3],
    pach_auth::EXTRACTED[4],
    pach_auth::EXTRACTED[5],
    pach_auth::EXTRACTED[6],
];

const COMMITS: &str = "pfs/commits/";
/// The cluster record (kept by pachd): the cluster's id and format.
const CLUSTER_KEY: &str = "cluster/info";

/// Records read from the metadata store at a time.
const PAGE: usize = 1000;

/// A point in a cluster's history: the metadata revision and the time of a
/// snapshot, and the cluster's id. Printed by every extract; `extract
/// --since` takes it back, and refuses one of another cluster (revisions of
/// different metadata stores have nothing in common).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub revision: u64,
    pub unix_seconds: u64,
    /// The cluster id (32 hex digits) when the checkpoint names it; older
    /// checkpoints do not.
    pub cluster: Option<u128>,
}

impl std::fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "r{}-t{}", self.revision, self.unix_seconds)?;
        if let Some(c) = self.cluster {
            write!(f, "-c{c:032x}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Checkpoint {
    type Err = AdminError;
    fn from_str(s: &str) -> Result<Checkpoint> {
        let bad = || {
            AdminError::NotAStream(format!(
                "'{s}' is not a checkpoint; use the one an earlier extract printed (like r1234-t1795600000-c0123456789abcdef0123456789abcdef)"
            ))
        };
        let (r, rest) = s
            .strip_prefix('r')
            .and_then(|x| x.split_once("-t"))
            .ok_or_else(bad)?;
        let (t, cluster) = match rest.split_once("-c") {
            Some((t, c)) => (t, Some(parse_cluster_id(c).ok_or_else(bad)?)),
            None => (rest, None),
        };
        Ok(Checkpoint {
            revision: r.parse().map_err(|_| bad())?,
            unix_seconds: t.parse().map_err(|_| bad())?,
            cluster,
        })
    }
}

/// A cluster id as a number, when it has the form pachd gives them (32 hex
/// digits).
fn parse_cluster_id(id: &str) -> Option<u128> {
    if id.len() != 32 {
        return None;
    }
    u128::from_str_radix(id, 16).ok()
}

/// Refuses a `since` checkpoint that does not come from this cluster's past:
/// one naming another cluster, or one newer than the cluster (which would
/// yield an empty stream that restores "successfully" and changes nothing).
fn check_since(since: &Checkpoint, revision: u64, cluster_id: &str) -> Result<()> {
    let refuse = |reason: String| AdminError::ForeignCheckpoint {
        checkpoint: since.to_string(),
        cluster: cluster_id.to_string(),
        reason,
    };
    if let (Some(theirs), Some(ours)) = (since.cluster, parse_cluster_id(cluster_id))
        && theirs != ours
    {
        return Err(refuse(format!(
            "was printed by an extract of cluster {theirs:032x}, not of this one"
        )));
    }
    if since.revision > revision {
        return Err(refuse(format!(
            "is newer than this cluster, whose metadata is at revision {revision}: it comes from another cluster"
        )));
    }
    Ok(())
}

/// Clock skew tolerated between pachd and the object store when choosing
/// the objects of a `since` stream.
const SKEW: Duration = Duration::from_secs(5);

/// Writes every metadata record of the cluster and, with `objects`, every
/// object of its bucket, as one stream. The records are a consistent snapshot
/// (the metadata store's view at one revision, [`pach_meta::Snapshot`]),
/// taken before the objects are listed, so every object they name is in the
/// stream even while loaders and pipelines keep writing. With `since`, only
/// what changed after that checkpoint is written (records written later,
/// objects stored later, and the full key list so that a restore also
/// applies deletions).
///
/// Memory does not grow with the cluster: records go from the snapshot to
/// the stream a page at a time, and the commits — the one kind written out
/// of key order, parents first — are sorted on disk ([`crate::spill`], in the
/// system's temporary directory) rather than in memory. The key list of a
/// stream of changes is written key by key from a second pass over the
/// snapshot.
pub async fn extract<W: AsyncWrite + Unpin>(
    pfs: &Pfs,
    objects: bool,
    since: Option<Checkpoint>,
    out: W,
) -> Result<(Summary, Checkpoint)> {
    let meta = pfs.meta();
    let snapshot = meta.snapshot().await?;
    let cluster_id = cluster_id(&**meta).await?.unwrap_or_default();
    if let Some(since) = &since {
        check_since(since, snapshot.revision(), &cluster_id)?;
    }
    let scratch = Scratch::new_in(&std::env::temp_dir()).await?;
    let commits = sort_commits(&*snapshot, &scratch).await?;
    let now = std::time::SystemTime::now();
    let checkpoint = Checkpoint {
        // A later `extract --since` this checkpoint carries every record
        // written after the snapshot, and none before.
        revision: snapshot.revision(),
        unix_seconds: now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        cluster: parse_cluster_id(&cluster_id),
    };
    let header = Header {
        format: FORMAT.into(),
        version: VERSION.into(),
        objects,
        created: humantime::format_rfc3339_seconds(now).to_string(),
        producer: env!("CARGO_PKG_VERSION").into(),
        cluster_id,
        checkpoint: checkpoint.to_string(),
        since: since.map(|c| c.to_string()),
    };
    let mut w = Writer::new(out, header).await?;
    if objects {
        let content = pfs.content();
        let store = content.object_store();
        let prefix = content.prefix().clone();
        // The bucket's owner object names the cluster that owns this bucket,
        // not content: a restore must not carry it into another bucket.
        let owner = content.owner_key();
        let newer_than = since.map(|c| UNIX_EPOCH + Duration::from_secs(c.unix_seconds) - SKEW);
        // Reads overlap (object stores reward concurrency); writes keep order.
        let mut objects = store
            .list(Some(&prefix))
            .filter(|meta| {
                let keep = match (meta, newer_than) {
                    (Ok(m), _)
                        if m.location == owner
                            || transient(prefix.as_ref(), m.location.as_ref()) =>
                    {
                        false
                    }
                    (Ok(m), Some(t)) => std::time::SystemTime::from(m.last_modified) >= t,
                    _ => true,
                };
                std::future::ready(keep)
            })
            .map(|meta| {
                let store = store.clone();
                async move {
                    let meta = meta?;
                    let data = store.get(&meta.location).await?.bytes().await?;
                    Ok::<_, object_store::Error>((meta.location, data))
                }
            })
            .buffered(16);
        while let Some(item) = objects.next().await {
            let (location, data) = item?;
            let key = relative(prefix.as_ref(), location.as_ref());
            w.object(&key, &data).await?;
        }
    }
    // The key list's length goes before it: count it on the way.
    let mut key_list_len: u64 = 0;
    for prefix in RECORD_ORDER {
        if *prefix == COMMITS {
            let mut sorted = commits.read().await?;
            while let Some(entry) = sorted.next().await? {
                let key = commit_entry_key(&entry)?;
                let (rev, value) = entry.value().split_at(8);
                let rev = u64::from_le_bytes(rev.try_into().unwrap_or_default());
                key_list_len += separator(key_list_len) + key.len() as u64;
                if since.is_none_or(|c| rev > c.revision) {
                    w.record(key, value).await?;
                }
            }
            continue;
        }
        let mut pages = Pages::new(&*snapshot, prefix);
        while let Some(page) = pages.next().await? {
            for kv in page {
                key_list_len += separator(key_list_len) + kv.key.len() as u64;
                if since.is_none_or(|c| kv.mod_revision > c.revision) {
                    w.record(&kv.key, &kv.value).await?;
                }
            }
        }
    }
    if since.is_some() {
        w.begin_keys(key_list_len).await?;
        let mut first = true;
        for prefix in RECORD_ORDER {
            let mut pages = Pages::new(&*snapshot, prefix);
            while let Some(page) = pages.next().await? {
                for kv in page {
                    if !first {
                        w.keys_part(b"\n").await?;
                    }
                    first = false;
                    w.keys_part(kv.key.as_bytes()).await?;
                }
            }
        }
    }
    Ok((w.finish().await?, checkpoint))
}

/// The id of this cluster, from its cluster record (written by pachd when it
/// first opens the metadata store); None in a store no pachd opened.
pub(crate) async fn cluster_id(meta: &dyn pach_meta::MetaStore) -> Result<Option<String>> {
    let Some(kv) = meta.get(CLUSTER_KEY).await? else {
        return Ok(None);
    };
    serde_json::from_slice::<serde_json::Value>(&kv.value)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_string))
        .map(Some)
        .ok_or_else(|| AdminError::NoClusterRecord {
            problem: format!("the cluster record {CLUSTER_KEY} is unreadable"),
        })
}

/// The newline before a key of the key list, but the first.
fn separator(len_so_far: u64) -> u64 {
    u64::from(len_so_far > 0)
}

/// The snapshot's commits, parents before children, sorted on disk: a parent
/// always started before its children, so the order is (start time, key).
/// Entries are `started_ns (order-preserving big-endian) key` →
/// `mod_revision (u64 LE) value`.
async fn sort_commits(snapshot: &dyn Snapshot, scratch: &Scratch) -> Result<Sorted> {
    let mut sorter = scratch.sorter();
    let mut pages = Pages::new(snapshot, COMMITS);
    let mut sort_key = Vec::new();
    let mut payload = Vec::new();
    while let Some(page) = pages.next().await? {
        for kv in page {
            let c: CommitRecord = serde_json::from_slice(&kv.value).map_err(|e| {
                AdminError::Corrupt(format!("record {} is unreadable: {e}", kv.key))
            })?;
            sort_key.clear();
            sort_key.extend_from_slice(&((c.started_ns as u64) ^ (1 << 63)).to_be_bytes());
            sort_key.extend_from_slice(kv.key.as_bytes());
            payload.clear();
            payload.extend_from_slice(&kv.mod_revision.to_le_bytes());
            payload.extend_from_slice(&kv.value);
            sorter.push(&sort_key, &payload).await?;
        }
    }
    sorter.finish().await
}

/// The record key of an entry of [`sort_commits`].
fn commit_entry_key(entry: &Entry) -> Result<&str> {
    entry
        .key()
        .get(8..)
        .and_then(|k| std::str::from_utf8(k).ok())
        .filter(|_| entry.value().len() >= 8)
        .ok_or_else(|| AdminError::Io {
            what: "reading sorted commits back".into(),
            source: std::io::Error::other("a malformed entry"),
        })
}

/// A prefix of a snapshot, a page at a time.
pub(crate) struct Pages<'a> {
    snapshot: &'a dyn Snapshot,
    prefix: &'a str,
    after: Option<String>,
    done: bool,
}

impl<'a> Pages<'a> {
    pub(crate) fn new(snapshot: &'a dyn Snapshot, prefix: &'a str) -> Self {
        Pages {
            snapshot,
            prefix,
            after: None,
            done: false,
        }
    }

    pub(crate) async fn next(&mut self) -> Result<Option<Vec<pach_meta::KeyValue>>> {
        if self.done {
            return Ok(None);
        }
        let page = self
            .snapshot
            .list(self.prefix, self.after.as_deref(), PAGE)
            .await?;
        self.done = page.len() < PAGE;
        self.after = page.last().map(|kv| kv.key.clone());
        if page.is_empty() {
            return Ok(None);
        }
        Ok(Some(page))
    }
}

/// [`RECORD_ORDER`] sorted, so that the target's keys listed prefix by
/// prefix come in one ascending sequence, as a merge join with a sorted key
/// set needs.
pub(crate) fn prefixes_in_key_order() -> Vec<&'static str> {
    let mut p = RECORD_ORDER.to_vec();
    p.sort_unstable();
    p
}

/// Objects of running jobs' tasks: deleted when their job ends (possibly
/// while extract lists them), named by no extracted record, and written
/// again by a job that resumes after a restore.
fn transient(prefix: &str, key: &str) -> bool {
    relative(prefix, key).starts_with("tasks/")
}

/// `key` without the cluster's prefix.
pub(crate) fn relative(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        return key.to_string();
    }
    key.strip_prefix(prefix)
        .map(|k| k.trim_start_matches('/').to_string())
        .unwrap_or_else(|| key.to_string())
}
