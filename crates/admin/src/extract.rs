//! Writing a cluster as an extract stream.

use futures::StreamExt;
use object_store::ObjectStoreExt;
use pach_meta::MetaStore;
use pach_pfs::{CommitRecord, Pfs};
use tokio::io::AsyncWrite;

use crate::Summary;
use crate::error::{AdminError, Result};
use crate::stream::{FORMAT, Header, VERSION, Writer};
use std::time::{Duration, UNIX_EPOCH};

/// Metadata prefixes in the order a restore can apply them: a record comes
/// after the records it refers to.
pub(crate) const RECORD_ORDER: &[&str] = &[
    "pfs/repos/",
    "pfs/commits/",
    "pfs/branches/",
    "pfs/staging/",
    "pps/pipelines/",
    "pps/jobs/",
    "pps/datums/",
    "pps/cache/",
];

const PAGE: usize = 1000;

/// How many times extract re-reads the records when writes moved the store's
/// revision while it read them.
const SNAPSHOT_ATTEMPTS: usize = 50;

/// A point in a cluster's history: the metadata revision and the time of a
/// snapshot. Printed by every extract; `extract --since` takes it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub revision: u64,
    pub unix_seconds: u64,
}

impl std::fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "r{}-t{}", self.revision, self.unix_seconds)
    }
}

impl std::str::FromStr for Checkpoint {
    type Err = AdminError;
    fn from_str(s: &str) -> Result<Checkpoint> {
        let bad = || {
            AdminError::NotAStream(format!(
                "'{s}' is not a checkpoint; use the one an earlier extract printed (like r1234-t1795600000)"
            ))
        };
        let (r, t) = s
            .strip_prefix('r')
            .and_then(|x| x.split_once("-t"))
            .ok_or_else(bad)?;
        Ok(Checkpoint {
            revision: r.parse().map_err(|_| bad())?,
            unix_seconds: t.parse().map_err(|_| bad())?,
        })
    }
}

/// Clock skew tolerated between pachd and the object store when choosing
/// the objects of a `since` stream.
const SKEW: Duration = Duration::from_secs(5);

/// Writes every metadata record of the cluster and, with `objects`, every
/// object of its bucket, as one stream. The records are a consistent snapshot
/// (read while the store's revision did not move), taken before the objects
/// are listed, so every object they name is in the stream even while loaders
/// and pipelines keep writing. With `since`, only what changed after that
/// checkpoint is written (records written later, objects stored later, and
/// the full key list so that a restore also applies deletions).
pub async fn extract<W: AsyncWrite + Unpin>(
    pfs: &Pfs,
    objects: bool,
    since: Option<Checkpoint>,
    out: W,
) -> Result<(Summary, Checkpoint)> {
    let meta = pfs.meta();
    let (records, revision) = snapshot(&**meta).await?;
    let now = std::time::SystemTime::now();
    let checkpoint = Checkpoint {
        revision,
        unix_seconds: now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let cluster_id = meta
        .get("cluster/info")
        .await?
        .and_then(|kv| serde_json::from_slice::<serde_json::Value>(&kv.value).ok())
        .and_then(|v| v["id"].as_str().map(str::to_string))
        .unwrap_or_default();
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
        let newer_than = since.map(|c| UNIX_EPOCH + Duration::from_secs(c.unix_seconds) - SKEW);
        // Reads overlap (object stores reward concurrency); writes keep order.
        let mut objects = store
            .list(Some(&prefix))
            .filter(|meta| {
                let keep = match (meta, newer_than) {
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
    let keys: Vec<String> = match since {
        Some(_) => records.iter().map(|kv| kv.key.clone()).collect(),
        None => vec![],
    };
    for kv in records {
        if since.is_none_or(|c| kv.mod_revision > c.revision) {
            w.record(&kv.key, &kv.value).await?;
        }
    }
    if since.is_some() {
        w.keys(&keys).await?;
    }
    Ok((w.finish().await?, checkpoint))
}

/// Every record in stream order, as of one moment. The store's revision
/// also moves for keys outside the stream (the controller lease is renewed
/// every second), so when it moved during the read, the extracted records
/// are read again: unchanged keys and modification revisions mean no record
/// of the stream changed in between, and the first read is a snapshot.
async fn snapshot(meta: &dyn MetaStore) -> Result<(Vec<pach_meta::KeyValue>, u64)> {
    for _ in 0..SNAPSHOT_ATTEMPTS {
        let start = meta.revision().await?;
        let first = read_records(meta).await?;
        if meta.revision().await? == start {
            return Ok((first, start));
        }
        let again = read_records(meta).await?;
        let same = first.len() == again.len()
            && first
                .iter()
                .zip(&again)
                .all(|(a, b)| a.key == b.key && a.mod_revision == b.mod_revision);
        if same {
            // A checkpoint at `start` may make a later `--since` carry a few
            // records again (harmless), never miss one.
            return Ok((first, start));
        }
    }
    Err(AdminError::Busy(format!(
        "the cluster changed during each of {SNAPSHOT_ATTEMPTS} attempts to read a consistent snapshot; \
         pause writes (`pachctl pause writes`) or stop pipelines, then extract again"
    )))
}

/// The stream's records in stream order (commits parent first).
async fn read_records(meta: &dyn MetaStore) -> Result<Vec<pach_meta::KeyValue>> {
    let mut out = Vec::new();
    for prefix in RECORD_ORDER {
        let mut kvs = all(meta, prefix).await?;
        if *prefix == "pfs/commits/" {
            // Parents before children: a parent always started first.
            let mut keyed = Vec::with_capacity(kvs.len());
            for kv in kvs {
                let c: CommitRecord = serde_json::from_slice(&kv.value).map_err(|e| {
                    AdminError::Corrupt(format!("record {} is unreadable: {e}", kv.key))
                })?;
                keyed.push((c.started_ns, kv));
            }
            keyed.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.key.cmp(&b.1.key)));
            kvs = keyed.into_iter().map(|(_, kv)| kv).collect();
        }
        out.extend(kvs);
    }
    Ok(out)
}

pub(crate) async fn all(meta: &dyn MetaStore, prefix: &str) -> Result<Vec<pach_meta::KeyValue>> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = meta.list(prefix, after.as_deref(), PAGE).await?;
        let n = page.len();
        after = page.last().map(|kv| kv.key.clone());
        out.extend(page);
        if n < PAGE {
            return Ok(out);
        }
    }
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
