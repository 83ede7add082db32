//! The items a file read is streamed in: as large as [`ITEM_MAX`] allows, so
//! that a client pays its per-message cost once per couple of MiB rather than
//! once per chunk, and never spanning two pieces, so that a client sees the
//! pieces a file was put in (python-pachyderm's `get_file` yields them).

use bytes::Bytes;
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
/// than that passes whole, and so does one that ends a piece on its own.
///
/// A regrouped item is gathered into a buffer of its own, so that the
/// caller can take it as a `Vec` without copying it again (gRPC's message
/// type for content).
pub fn regroup(
    items: BoxStream<'static, Result<Bytes>>,
    pieces: Vec<u64>,
) -> BoxStream<'static, Result<Bytes>> {
    struct State {
        items: BoxStream<'static, Result<Bytes>>,
        pieces: std::vec::IntoIter<u64>,
        /// Bytes of the current piece not yet taken in.
        left: u64,
        held: Vec<u8>,
        /// An item that did not fit in `held`, for the next round.
        next: Option<Bytes>,
        done: bool,
    }
    fn take(held: &mut Vec<u8>) -> Bytes {
        Bytes::from(std::mem::take(held))
    }
    let state = State {
        items,
        pieces: pieces.into_iter(),
        left: 0,
        held: Vec::new(),
        next: None,
        done: false,
    };
    stream::unfold(state, |mut s| async move {
        loop {
            if s.done {
                return None;
            }
            if s.left == 0 {
                if !s.held.is_empty() {
                    return Some((Ok(take(&mut s.held)), s));
                }
                s.left = s.pieces.next().unwrap_or(u64::MAX);
            }
            let next = match s.next.take() {
                Some(item) => Some(Ok(item)),
                None => s.items.next().await,
            };
            match next {
                Some(Ok(item)) => {
                    if !s.held.is_empty() && s.held.len() + item.len() > ITEM_MAX {
                        s.next = Some(item);
                        return Some((Ok(take(&mut s.held)), s));
                    }
                    let n = item.len() as u64;
                    s.left = s.left.saturating_sub(n);
                    if s.held.is_empty() {
                        if s.left == 0 || item.len() >= ITEM_MAX {
                            return Some((Ok(item), s));
                        }
                        let rest = usize::try_from(s.left).unwrap_or(usize::MAX);
                        s.held
                            .reserve_exact(ITEM_MAX.min(item.len().saturating_add(rest)));
                    }
                    s.held.extend_from_slice(&item);
                }
                Some(Err(e)) => {
                    s.done = true;
                    return Some((Err(e), s));
                }
                None => {
                    s.done = true;
                    if !s.held.is_empty() {
                        return Some((Ok(take(&mut s.held)), s));
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
        // An item never grows past the limit: a chunk that would not fit
        // starts the next one.
        let chunks = vec![700 * K; 5];
        assert_eq!(
            regrouped(&chunks, &[3500 * K as u64]).await,
            [1400 * K, 1400 * K, 700 * K]
        );
        // Nothing in, nothing out.
        assert!(regrouped(&[], &[]).await.is_empty());
    }

    /// A gathered item owns its buffer: taking it as a `Vec` (as gRPC's
    /// content messages are) copies nothing.
    #[tokio::test]
    async fn gathered_items_become_vecs_without_a_copy() {
        let items: Vec<Result<Bytes>> = vec![
            Ok(Bytes::from(vec![1u8; 1000])),
            Ok(Bytes::from(vec![2u8; 1000])),
        ];
        let mut out = regroup(stream::iter(items).boxed(), vec![2000]);
        let item = out.next().await.unwrap().unwrap();
        assert_eq!(item.len(), 2000);
        let at = item.as_ptr();
        let v = Vec::from(item);
        assert_eq!(v.as_ptr(), at, "the item was copied");
        assert!(out.next().await.is_none());
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
