//! Comparing a cluster with an extract stream (of itself at another time, or
//! of another cluster): every metadata record, and so every commit's file
//! index root — which names every file's content hash — is compared.
//!
//! Memory does not grow with the stream nor with the differences: records are
//! compared as they come, the stream's keys are sorted on disk (in the
//! system's temporary directory) to find the cluster's records the stream
//! lacks by walking both in key order, and each difference goes to the caller
//! as soon as it is found (two clusters that share nothing differ by every
//! record, so a list of them would grow with the cluster).

use pach_pfs::{CommitRecord, Pfs};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc::Sender;

use crate::error::Result;
use crate::extract::{Pages, prefixes_in_key_order};
use crate::spill::Scratch;
use crate::stream::{Frame, Reader};

/// Sends the differences between this cluster and the stream to
/// `differences`, one line each (none when they hold the same repos,
/// commits, files, branches and pipelines; job and datum bookkeeping is
/// compared too), and returns how many it sent. Stops early, without error,
/// when the receiver is gone (nobody is left to tell).
pub async fn verify<R: AsyncRead + Unpin>(
    pfs: &Pfs,
    input: R,
    differences: &Sender<String>,
) -> Result<u64> {
    let mut input = BufReader::with_capacity(1 << 20, input);
    // A Pachyderm extract has none of our records to compare: say so
    // rather than call it corrupt.
    if crate::pachyderm::frames::is_pachyderm_stream(
        input
            .fill_buf()
            .await
            .map_err(crate::error::io("reading the stream"))?,
    ) {
        return Err(crate::AdminError::NotAStream(
            "it is a Pachyderm extract, which verify does not read; restore it (`pachctl restore`) into a cluster and verify against that cluster".into(),
        ));
    }
    let (mut r, _) = Reader::open(input).await?;
    let meta = pfs.meta();
    let scratch = Scratch::new_in(&std::env::temp_dir()).await?;
    let mut seen = scratch.sorter();
    let mut diffs = Found {
        to: differences,
        count: 0,
    };
    while let Some(frame) = r.next().await? {
        let Frame::Record { key, value } = frame else {
            continue;
        };
        seen.push(key.as_bytes(), b"").await?;
        let found = match meta.get(&key).await? {
            None => format!("only in the stream: {}", crate::restore::describe(&key)),
            Some(kv) if kv.value != value => differs(&key, &value, &kv.value),
            Some(_) => continue,
        };
        if !diffs.send(found).await {
            return Ok(diffs.count);
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
                    let found = format!(
                        "only in this cluster: {}",
                        crate::restore::describe(&kv.key)
                    );
                    if !diffs.send(found).await {
                        return Ok(diffs.count);
                    }
                }
            }
        }
    }
    Ok(diffs.count)
}

/// The differences sent so far.
struct Found<'a> {
    to: &'a Sender<String>,
    count: u64,
}

impl Found<'_> {
    /// Sends one difference; false when the receiver is gone.
    async fn send(&mut self, difference: String) -> bool {
        self.count += 1;
        self.to.send(difference).await.is_ok()
    }
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
