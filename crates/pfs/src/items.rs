//! The items a file read is streamed in: as large as [`ITEM_MAX`] allows, so
//! that a client pays its per-message cost once per couple of MiB rather than
//! once per chunk, and never spanning two pieces, so that a client sees the
//! pieces a file was put in (python-pachyderm's `get_file` yields them).

use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream, StreamExt};
use pach_storage::FileEntry;

use crate::error::Result;

/// The largest item: well under the 4 MiB that gRPC clients accept per
/// message by default.
pub const ITEM_MAX: usize = 2 << 20;

/// The lengths of the pieces of `entries` read one after another, clipped to
/// `offset`..`offset + len` of that concatenation; empty pieces left out.
pub fn piece_lengths(entries: &[FileEntry], offset: u64, len: Option<u64>) -> Vec<u64> {
    let end = len.map_or(u64::MAX, |len| offset.saturating_add(len));
    let mut out = Vec::new();
    let mut at = 0u64;
    for e in entries {
        for span in e.piece_spans() {
            let (from, to) = (at + span.offset, at + span.offset + span.piece.len);
            let (from, to) = (from.max(offset), to.min(end));
            if from < to {
                out.push(to - from);
            }
        }
        at += e.size;
    }
    out
}

/// `items` (each within one piece) regrouped into items of at most
/// [`ITEM_MAX`] bytes that end where pieces end. An item from `items` larger
/// than that passes whole.
pub fn regroup(
    items: BoxStream<'static, Result<Bytes>>,
    pieces: Vec<u64>,
) -> BoxStream<'static, Result<Bytes>> {
    struct State {
        items: BoxStream<'static, Result<Bytes>>,
        pieces: std::vec::IntoIter<u64>,
        /// Bytes of the current piece not yet taken in.
        left: u64,
        held: BytesMut,
        done: bool,
    }
    let state = State {
        items,
        pieces: pieces.into_iter(),
        left: 0,
        held: BytesMut::new(),
        done: false,
    };
    stream::unfold(state, |mut s| async move {
        loop {
            if s.done {
                return None;
            }
            if s.left == 0 {
                if !s.held.is_empty() {
                    return Some((Ok(s.held.split().freeze()), s));
                }
                s.left = s.pieces.next().unwrap_or(u64::MAX);
            }
            match s.items.next().await {
                Some(Ok(item)) => {
                    let n = item.len() as u64;
                    s.left = s.left.saturating_sub(n);
                    if s.held.is_empty() && (s.left == 0 || item.len() >= ITEM_MAX) {
                        return Some((Ok(item), s));
                    }
                    s.held.extend_from_slice(&item);
                    if s.held.len() >= ITEM_MAX {
                        return Some((Ok(s.held.split().freeze()), s));
                    }
                }
                Some(Err(e)) => {
                    s.done = true;
                    return Some((Err(e), s));
                }
                None => {
                    s.done = true;
                    if !s.held.is_empty() {
                        return Some((Ok(s.held.split().freeze()), s));
                    }
                    return None;
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn regrouped(items: &[usize], pieces: &[u64]) -> Vec<usize> {
        let mut byte = 0u8;
        let items: Vec<Result<Bytes>> = items
            .iter()
            .map(|&n| {
                byte = byte.wrapping_add(1);
                Ok(Bytes::from(vec![byte; n]))
            })
            .collect();
        let total: usize = items.iter().map(|i| i.as_ref().unwrap().len()).sum();
        let all: Vec<u8> = items
            .iter()
            .flat_map(|i| i.as_ref().unwrap().to_vec())
            .collect();
        let out: Vec<Bytes> = regroup(stream::iter(items).boxed(), pieces.to_vec())
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(out.concat(), all, "bytes change");
        assert_eq!(out.iter().map(|b| b.len()).sum::<usize>(), total);
        out.iter().map(|b| b.len()).collect()
    }

    #[tokio::test]
    async fn items_grow_to_the_limit_and_stop_at_piece_ends() {
        const K: usize = 1 << 10;
        // Two pieces of 3 chunks each: one item per piece.
        assert_eq!(
            regrouped(&[100, 200, 300, 10, 20, 30], &[600, 60]).await,
            [600, 60]
        );
        // A piece longer than the limit is cut at the limit.
        let chunks = vec![512 * K; 10];
        assert_eq!(
            regrouped(&chunks, &[5 * 1024 * K as u64]).await,
            [ITEM_MAX, ITEM_MAX, 1024 * K]
        );
        // A chunk as large as the limit passes as it is.
        assert_eq!(
            regrouped(&[ITEM_MAX + 1, 5], &[ITEM_MAX as u64 + 6]).await,
            [ITEM_MAX + 1, 5]
        );
        // Nothing in, nothing out.
        assert!(regrouped(&[], &[]).await.is_empty());
    }

    #[test]
    fn piece_lengths_clip_to_the_range() {
        use pach_storage::{ChunkLocation, ChunkRef, ContentHash};
        let entry = |len: u32| {
            FileEntry::from_chunks(
                "/f".into(),
                vec![ChunkRef {
                    hash: ContentHash([0; 32]),
                    len,
                    loc: ChunkLocation::Loose,
                }],
            )
        };
        let entries = [entry(10), entry(0), entry(5)];
        assert_eq!(piece_lengths(&entries, 0, None), [10, 5]);
        assert_eq!(piece_lengths(&entries, 8, Some(4)), [2, 2]);
        assert_eq!(piece_lengths(&entries, 15, None), Vec::<u64>::new());
    }
}
