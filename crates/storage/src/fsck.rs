//! Consistency checks of an index against the object store.
//!
//! [`check_index`] reads the root and every shard (which verifies them, as
//! they are content-addressed) and then checks that every loose chunk and
//! every pack they refer to exists, and that each pack is long enough for
//! the blobs referenced inside it. [`check_index_deep`] additionally reads
//! and verifies every distinct chunk. Each problem is one line naming the
//! object key and a file that needs it; a store that fails (rather than
//! answering "missing" or serving bad bytes) makes the whole check fail.

use std::collections::BTreeMap;

use futures::stream::{self, StreamExt};
use object_store::{ObjectStore, ObjectStoreExt};

use crate::StorageError;
use crate::fetch::{chunk_object, fetch_chunk};
use crate::hash::ContentHash;
use crate::index::{load_root, load_shard};
use crate::layout::Layout;
use crate::model::{ChunkLocation, ChunkRef};

const CONCURRENCY: usize = 16;

/// A chunk's identity for the deep check: its hash and, if packed, where in which pack.
type ChunkPlace = (ContentHash, Option<(ContentHash, u64)>);

/// What the shards refer to, each with the first file that needs it.
#[derive(Default)]
struct References {
    loose: BTreeMap<ContentHash, String>,
    /// Pack id -> (bytes the references need, first file).
    packs: BTreeMap<ContentHash, (u64, String)>,
    /// Every distinct chunk, for the deep check.
    chunks: BTreeMap<ChunkPlace, (ChunkRef, String)>,
}

pub(crate) async fn check_index(
    store: &dyn ObjectStore,
    layout: &Layout,
    root: &ContentHash,
    deep: bool,
) -> Result<Vec<String>, StorageError> {
    let mut problems = Vec::new();
    let refs = collect_references(store, layout, root, deep, &mut problems).await?;
    check_loose(store, layout, &refs, &mut problems).await?;
    check_packs(store, layout, &refs, &mut problems).await?;
    if deep {
        check_content(store, layout, &refs, &mut problems).await?;
    }
    problems.sort();
    problems.dedup();
    Ok(problems)
}

/// Turns "missing" and "corrupt" into a problem line; other errors abort the check.
fn problem(err: StorageError, what: &str, problems: &mut Vec<String>) -> Result<(), StorageError> {
    match err {
        StorageError::NotFound { key } => problems.push(format!("missing {what} {key}")),
        StorageError::Corrupt { key, reason } => {
            problems.push(format!("corrupt {what} {key}: {reason}"))
        }
        StorageError::InvalidEntry { path, reason } => {
            problems.push(format!("inconsistent entry {path}: {reason}"))
        }
        other => return Err(other),
    }
    Ok(())
}

async fn collect_references(
    store: &dyn ObjectStore,
    layout: &Layout,
    root: &ContentHash,
    deep: bool,
    problems: &mut Vec<String>,
) -> Result<References, StorageError> {
    let mut refs = References::default();
    let root = match load_root(store, layout, root).await {
        Ok(root) => root,
        Err(err) => {
            problem(err, "index root", problems)?;
            return Ok(refs);
        }
    };
    for entry in &root.overlay {
        if let Err(err) = entry.check() {
            problem(err, "entry", problems)?;
        }
        for chunk in &entry.chunks {
            refs.note(chunk, &entry.path, deep);
        }
    }
    for shard in &root.shards {
        let entries = match load_shard(store, layout, &shard.hash).await {
            Ok(entries) => entries,
            Err(err) => {
                let first = &shard.first;
                problem(
                    err,
                    &format!("index shard (files {first} .. {})", shard.last),
                    problems,
                )?;
                continue;
            }
        };
        for entry in &entries {
            if let Err(err) = entry.check() {
                problem(err, "entry", problems)?;
            }
            for chunk in &entry.chunks {
                refs.note(chunk, &entry.path, deep);
            }
        }
    }
    Ok(refs)
}

impl References {
    fn note(&mut self, chunk: &ChunkRef, path: &str, deep: bool) {
        let place = match &chunk.loc {
            ChunkLocation::Loose => {
                self.loose
                    .entry(chunk.hash)
                    .or_insert_with(|| path.to_string());
                None
            }
            ChunkLocation::Packed {
                pack,
                offset,
                stored_len,
            } => {
                let end = offset + u64::from(*stored_len);
                let needed = self
                    .packs
                    .entry(*pack)
                    .or_insert_with(|| (0, path.to_string()));
                needed.0 = needed.0.max(end);
                Some((*pack, *offset))
            }
        };
        if deep {
            self.chunks
                .entry((chunk.hash, place))
                .or_insert_with(|| (chunk.clone(), path.to_string()));
        }
    }
}

async fn check_loose(
    store: &dyn ObjectStore,
    layout: &Layout,
    refs: &References,
    problems: &mut Vec<String>,
) -> Result<(), StorageError> {
    // Owned items: a closure over borrowed pairs makes the future not provably
    // Send (higher-ranked lifetimes), and servers must run this on a runtime.
    let items: Vec<(ContentHash, String)> =
        refs.loose.iter().map(|(h, p)| (*h, p.clone())).collect();
    let mut results = stream::iter(items)
        .map(|(hash, path)| async move {
            let hash = &hash;
            let key = layout.chunk(hash);
            (store.head(&key).await, key, path)
        })
        .buffer_unordered(CONCURRENCY);
    while let Some((result, key, path)) = results.next().await {
        match result {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => {
                problems.push(format!("missing loose chunk {key} (used by {path})"))
            }
            Err(err) => return Err(StorageError::store("head", &key, err)),
        }
    }
    Ok(())
}

async fn check_packs(
    store: &dyn ObjectStore,
    layout: &Layout,
    refs: &References,
    problems: &mut Vec<String>,
) -> Result<(), StorageError> {
    let items: Vec<(ContentHash, (u64, String))> =
        refs.packs.iter().map(|(h, n)| (*h, n.clone())).collect();
    let mut results = stream::iter(items)
        .map(|(id, needed)| async move {
            let key = layout.pack(&id);
            (store.head(&key).await, key, needed)
        })
        .buffer_unordered(CONCURRENCY);
    while let Some((result, key, (needed, path))) = results.next().await {
        match result {
            Ok(meta) if meta.size < needed => problems.push(format!(
                "truncated pack {key}: {} bytes, but references need {needed} (used by {path})",
                meta.size
            )),
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => {
                problems.push(format!("missing pack {key} (used by {path})"))
            }
            Err(err) => return Err(StorageError::store("head", &key, err)),
        }
    }
    Ok(())
}

/// Reads every distinct chunk; only verdicts are kept, never the data.
async fn check_content(
    store: &dyn ObjectStore,
    layout: &Layout,
    refs: &References,
    problems: &mut Vec<String>,
) -> Result<(), StorageError> {
    let items: Vec<(ChunkRef, String)> = refs.chunks.values().cloned().collect();
    let mut results = stream::iter(items)
        .map(|(chunk, path)| async move {
            (
                fetch_chunk(store, layout, &chunk).await.map(drop),
                chunk,
                path,
            )
        })
        .buffer_unordered(CONCURRENCY);
    while let Some((result, chunk, path)) = results.next().await {
        match result {
            // Missing objects were reported by the existence checks already.
            Ok(()) | Err(StorageError::NotFound { .. }) => {}
            Err(StorageError::Corrupt { key, reason }) => {
                problems.push(format!(
                    "corrupt chunk {} in {key}: {reason} (used by {path})",
                    chunk.hash
                ));
            }
            Err(err) => {
                let key = chunk_object(layout, &chunk);
                problems.push(format!(
                    "unreadable chunk {} in {key}: {err} (used by {path})",
                    chunk.hash
                ));
            }
        }
    }
    Ok(())
}
