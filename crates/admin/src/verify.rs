//! Comparing a cluster with an extract stream (of itself at another time, or
//! of another cluster): every metadata record, and so every commit's file
//! index root — which names every file's content hash — is compared.
//!
//! Memory does not grow with the stream: records are compared as they come,
//! and the stream's keys are sorted on disk (in the system's temporary
//! directory) to find the cluster's records the stream lacks by walking both
//! in key order. Only the differences found are kept.

use pach_pfs::{CommitRecord, Pfs};
use tokio::io::{AsyncRead, BufReader};

use crate::error::Result;
use crate::extract::{Pages, prefixes_in_key_order};
use crate::spill::Scratch;
use crate::stream::{Frame, Reader};

/// The differences between this cluster and the stream, one line each
/// (empty when they hold the same repos, commits, files, branches and
/// pipelines). Job and datum bookkeeping is compared too.
pub async fn verify<R: AsyncRead + Unpin>(pfs: &Pfs, input: R) -> Result<Vec<String>> {
    let (mut r, _) = Reader::open(BufReader::with_capacity(1 << 20, input)).await?;
    let meta = pfs.meta();
    let scratch = Scratch::new_in(&std::env::temp_dir()).await?;
    let mut seen = scratch.sorter();
    let mut diffs = Vec::new();
    while let Some(frame) = r.next().await? {
        let Frame::Record { key, value } = frame else {
            continue;
        };
        seen.push(key.as_bytes(), b"").await?;
        match meta.get(&key).await? {
            None => diffs.push(format!(
                "only in the stream: {}",
                crate::restore::describe(&key)
            )),
            Some(kv) if kv.value != value => diffs.push(differs(&key, &value, &kv.value)),
            Some(_) => {}
        }
    }
    let seen = seen.finish().await?;
    let mut seen = seen.cursor().await?;
    let snapshot = meta.snapshot().await?;
    for prefix in prefixes_in_key_order() {
        let mut pages = Pages::new(&*snapshot, prefix);
        while let Some(page) = pages.next().await? {
            for kv in page {
                if !seen.contains(kv.key.as_bytes()).await? {
                    diffs.push(format!(
                        "only in this cluster: {}",
                        crate::restore::describe(&kv.key)
                    ));
                }
            }
        }
    }
    Ok(diffs)
}

fn differs(key: &str, stream: &[u8], ours: &[u8]) -> String {
    let what = crate::restore::describe(key);
    if key.starts_with("pfs/commits/") {
        let parse = |b: &[u8]| serde_json::from_slice::<CommitRecord>(b).ok();
        if let (Some(a), Some(b)) = (parse(stream), parse(ours)) {
            let root = |c: &CommitRecord| {
                c.index
                    .as_ref()
                    .map(|i| i.root.to_hex())
                    .unwrap_or_default()
            };
            if root(&a) != root(&b) {
                return format!(
                    "differs: {what}: its files differ (file index {} in the stream, {} here)",
                    short(&root(&a)),
                    short(&root(&b))
                );
            }
        }
    }
    format!("differs: {what}")
}

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}
