//! Reading file content back: [`read_files`] and single-chunk fetches.
//!
//! A read is planned up front from the entries' chunk lengths (only chunks
//! overlapping the requested range are touched), then each chunk is fetched,
//! verified against its BLAKE3 hash and decompressed in its own task, with a
//! window of chunks in flight ahead of the consumer: about
//! [`PREFETCH_BYTES`] of them, at least [`MIN_PREFETCH`] and at most
//! [`MAX_PREFETCH`] chunks. Memory stays bounded by that window (chunks are at
//! most 1 MiB), whatever the size or number of files; many small files keep
//! many reads in flight, so reading a directory does not wait on each one.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::StorageError;
use crate::codec::decode_chunk;
use crate::index::get_object;
use crate::layout::Layout;
use crate::model::{ChunkLocation, ChunkRef, FileEntry};
use crate::task::run_spawned;

const PREFETCH_BYTES: u64 = 4 << 20;
const MIN_PREFETCH: usize = 4;
const MAX_PREFETCH: usize = 64;

/// One chunk to fetch and the part of it the reader wants.
struct Piece {
    chunk: ChunkRef,
    keep: Range<usize>,
}

/// The bytes of `entries` one after another, `offset`..`offset + len` of
/// that concatenation (None = to the end). No item spans two chunks, so no
/// item spans two files.
pub(crate) fn read_files(
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    entries: &[FileEntry],
    offset: u64,
    len: Option<u64>,
) -> BoxStream<'static, Result<Bytes, StorageError>> {
    if let Some(err) = entries.iter().find_map(|e| e.check().err()) {
        return stream::once(async move { Err(err) }).boxed();
    }
    let end = len.map_or(u64::MAX, |len| offset.saturating_add(len));
    let mut pieces = Vec::new();
    let mut start = 0u64;
    for e in entries {
        if start >= end {
            break;
        }
        let from = offset.saturating_sub(start);
        if from < e.size {
            pieces.extend(plan(e, from, Some(end - start - from)));
        }
        start += e.size;
    }
    let bytes: u64 = pieces.iter().map(|p| p.keep.len() as u64).sum();
    let runs = runs(pieces);
    let window = match runs.len() as u64 {
        0 => MIN_PREFETCH,
        n => (PREFETCH_BYTES / (bytes / n).max(1)).clamp(MIN_PREFETCH as u64, MAX_PREFETCH as u64)
            as usize,
    };
    stream::iter(runs)
        .map(move |run| {
            let store = Arc::clone(&store);
            let layout = layout.clone();
            run_spawned(async move { fetch_run(&*store, &layout, run).await })
        })
        .buffered(window)
        .map_ok(|parts| stream::iter(parts.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
}

/// Chunks fetched with one request: a single chunk, or neighbours in one
/// pack (small files put together sit side by side there), read as one
/// range and cut apart.
type Run = Vec<Piece>;

/// How far apart two chunks of a pack may lie and still share a request,
/// and how long one such request may get.
const RUN_GAP: u64 = 64 << 10;
const RUN_MAX: u64 = 4 << 20;

/// `pieces` grouped into runs, in order.
fn runs(pieces: Vec<Piece>) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for piece in pieces {
        if let Some(run) = out.last_mut()
            && joins(run, &piece)
        {
            run.push(piece);
        } else {
            out.push(vec![piece]);
        }
    }
    out
}

/// Whether `next` can be read in the same request as `run`.
fn joins(run: &Run, next: &Piece) -> bool {
    let (first, last) = (&run[0], &run[run.len() - 1]);
    match (&first.chunk.loc, &last.chunk.loc, &next.chunk.loc) {
        (
            ChunkLocation::Packed { offset: start, .. },
            ChunkLocation::Packed {
                pack,
                offset,
                stored_len,
            },
            ChunkLocation::Packed {
                pack: next_pack,
                offset: next_offset,
                stored_len: next_len,
            },
        ) => {
            let end = offset + u64::from(*stored_len);
            pack == next_pack
                && *next_offset >= end
                && next_offset - end <= RUN_GAP
                && next_offset + u64::from(*next_len) - start <= RUN_MAX
        }
        _ => false,
    }
}

/// The wanted bytes of each piece of a run.
async fn fetch_run(
    store: &dyn ObjectStore,
    layout: &Layout,
    run: Run,
) -> Result<Vec<Bytes>, StorageError> {
    if let [piece] = &run[..] {
        let raw = fetch_chunk(store, layout, &piece.chunk).await?;
        return Ok(vec![raw.slice(piece.keep.clone())]);
    }
    let at = |p: &Piece| match p.chunk.loc {
        ChunkLocation::Packed {
            offset, stored_len, ..
        } => (offset, u64::from(stored_len)),
        ChunkLocation::Loose => unreachable!("runs of several chunks are packed"),
    };
    let start = at(&run[0]).0;
    let (last_offset, last_len) = at(&run[run.len() - 1]);
    let key = chunk_object(layout, &run[0].chunk);
    let blob = store
        .get_range(&key, start..last_offset + last_len)
        .await
        .map_err(|err| StorageError::store("get_range", &key, err))?;
    let want = last_offset + last_len - start;
    if blob.len() as u64 != want {
        return Err(StorageError::corrupt(
            &key,
            format!(
                "bytes {start}..{} hold {} bytes, not {want} (a truncated pack)",
                start + want,
                blob.len()
            ),
        ));
    }
    run.into_iter()
        .map(|piece| {
            let (offset, len) = at(&piece);
            let from = (offset - start) as usize;
            let stored = blob.slice(from..from + len as usize);
            let raw = decode_chunk(&key, stored, &piece.chunk.hash, piece.chunk.len)?;
            Ok(raw.slice(piece.keep))
        })
        .collect()
}

/// The chunks overlapping `[offset, offset + len)`, clipped to that range.
fn plan(entry: &FileEntry, offset: u64, len: Option<u64>) -> Vec<Piece> {
    let end = len.map_or(entry.size, |len| offset.saturating_add(len).min(entry.size));
    let mut pieces = Vec::new();
    if offset >= end {
        return pieces;
    }
    let mut chunk_start = 0u64;
    for chunk in &entry.chunks {
        let chunk_end = chunk_start + u64::from(chunk.len);
        if chunk_end > offset && chunk_start < end {
            // Both bounds lie within the chunk, so they fit in usize.
            let from = (offset.max(chunk_start) - chunk_start) as usize;
            let to = (end.min(chunk_end) - chunk_start) as usize;
            pieces.push(Piece {
                chunk: chunk.clone(),
                keep: from..to,
            });
        }
        if chunk_end >= end {
            break;
        }
        chunk_start = chunk_end;
    }
    pieces
}

/// The key of the object holding a chunk's blob.
pub(crate) fn chunk_object(layout: &Layout, chunk: &ChunkRef) -> Path {
    match &chunk.loc {
        ChunkLocation::Loose => layout.chunk(&chunk.hash),
        ChunkLocation::Packed { pack, .. } => layout.pack(pack),
    }
}

/// Fetches, decompresses and verifies one chunk.
pub(crate) async fn fetch_chunk(
    store: &dyn ObjectStore,
    layout: &Layout,
    chunk: &ChunkRef,
) -> Result<Bytes, StorageError> {
    let key = chunk_object(layout, chunk);
    let blob = match &chunk.loc {
        ChunkLocation::Loose => get_object(store, &key).await?,
        ChunkLocation::Packed {
            offset, stored_len, ..
        } => {
            let range = *offset..offset + u64::from(*stored_len);
            store
                .get_range(&key, range)
                .await
                .map_err(|err| StorageError::store("get_range", &key, err))?
        }
    };
    decode_chunk(&key, blob, &chunk.hash, chunk.len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::ContentHash;

    fn entry(lens: &[u32]) -> FileEntry {
        let chunks = lens
            .iter()
            .enumerate()
            .map(|(i, &len)| ChunkRef {
                hash: ContentHash([i as u8; 32]),
                len,
                loc: ChunkLocation::Loose,
            })
            .collect();
        FileEntry::from_chunks("/f".into(), chunks)
    }

    fn spans(pieces: &[Piece]) -> Vec<(u8, Range<usize>)> {
        pieces
            .iter()
            .map(|p| (p.chunk.hash.0[0], p.keep.clone()))
            .collect()
    }

    #[test]
    fn plans_touch_only_overlapping_chunks() {
        let e = entry(&[10, 10, 10]);
        assert_eq!(
            spans(&plan(&e, 0, None)),
            vec![(0, 0..10), (1, 0..10), (2, 0..10)]
        );
        assert_eq!(spans(&plan(&e, 5, Some(10))), vec![(0, 5..10), (1, 0..5)]);
        assert_eq!(spans(&plan(&e, 10, Some(10))), vec![(1, 0..10)]);
        assert_eq!(spans(&plan(&e, 25, None)), vec![(2, 5..10)]);
        assert!(plan(&e, 30, None).is_empty());
        assert!(plan(&e, 99, Some(5)).is_empty());
        assert!(plan(&e, 3, Some(0)).is_empty());
        assert_eq!(spans(&plan(&e, 29, Some(u64::MAX))), vec![(2, 9..10)]);
    }
}
