//! Writing a cluster as an extract stream.

use futures::StreamExt;
use object_store::ObjectStoreExt;
use pach_meta::MetaStore;
use pach_pfs::{CommitRecord, Pfs};
use tokio::io::AsyncWrite;

use crate::Summary;
use crate::error::{AdminError, Result};
use crate::stream::Writer;

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

/// Writes every metadata record of the cluster and, with `objects`, every
/// object of its bucket, as one stream. The records are a consistent snapshot
/// (read while the store's revision did not move), taken before the objects
/// are listed, so every object they name is in the stream even while loaders
/// and pipelines keep writing.
pub async fn extract<W: AsyncWrite + Unpin>(pfs: &Pfs, objects: bool, out: W) -> Result<Summary> {
    let records = snapshot(&**pfs.meta()).await?;
    let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let mut w = Writer::new(out, objects, created).await?;
    if objects {
        let content = pfs.content();
        let store = content.object_store();
        let prefix = content.prefix().clone();
        // Reads overlap (object stores reward concurrency); writes keep order.
        let mut objects = store
            .list(Some(&prefix))
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
    for kv in records {
        w.record(&kv.key, &kv.value).await?;
    }
    w.finish().await
}

/// Every record in stream order, read at one revision of the store.
async fn snapshot(meta: &dyn MetaStore) -> Result<Vec<pach_meta::KeyValue>> {
    for _ in 0..SNAPSHOT_ATTEMPTS {
        let start = meta.revision().await?;
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
        if meta.revision().await? == start {
            return Ok(out);
        }
    }
    Err(AdminError::Busy(format!(
        "the cluster changed during each of {SNAPSHOT_ATTEMPTS} attempts to read a consistent snapshot; \
         pause writes (`pachctl pause writes`) or stop pipelines, then extract again"
    )))
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
