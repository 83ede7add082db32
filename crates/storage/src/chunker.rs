//! Incremental content-defined chunking (FastCDC 2020).
//!
//! Bytes are pushed in arbitrary pieces; a cut point is only taken once at
//! least [`MAX_CHUNK`] bytes are buffered past the previous cut, because
//! FastCDC never looks further than that, so every cut taken early is the
//! same one it would take on the whole file. The rest waits for
//! [`Chunker::next_final`] at the end of the file. The buffer never grows
//! beyond [`BUFFER_CAPACITY`], whatever the file size.

use std::ops::Range;

use fastcdc::v2020::{Normalization, cut, select_masks};

pub const MIN_CHUNK: usize = 64 * 1024;
pub const AVG_CHUNK: usize = 256 * 1024;
pub const MAX_CHUNK: usize = 1024 * 1024;
const BUFFER_CAPACITY: usize = 2 * MAX_CHUNK;

pub(crate) struct Chunker {
    buf: Vec<u8>,
    /// Start of the bytes not yet handed out as a chunk.
    pos: usize,
    mask_s: u64,
    mask_l: u64,
}

impl Chunker {
    pub(crate) fn new() -> Self {
        let (mask_s, mask_l) = select_masks(AVG_CHUNK, Normalization::Level1);
        Chunker {
            buf: Vec::new(),
            pos: 0,
            mask_s,
            mask_l,
        }
    }

    /// Forgets everything buffered (a new file starts).
    pub(crate) fn reset(&mut self) {
        self.buf.clear();
        self.pos = 0;
    }

    /// Copies as much of `data` as fits and returns how many bytes it took.
    pub(crate) fn push(&mut self, data: &[u8]) -> usize {
        if self.pos > 0 && self.buf.len() + data.len() > BUFFER_CAPACITY {
            self.compact();
        }
        if self.buf.capacity() < BUFFER_CAPACITY
            && self.buf.len() + data.len() > self.buf.capacity()
        {
            // Reserve the full capacity once rather than letting Vec double past it.
            self.buf.reserve_exact(BUFFER_CAPACITY - self.buf.len());
        }
        let take = data.len().min(BUFFER_CAPACITY - self.buf.len());
        self.buf.extend_from_slice(&data[..take]);
        take
    }

    /// The next chunk whose cut point can no longer move, if any.
    pub(crate) fn next_ready(&mut self) -> Option<Range<usize>> {
        if self.buf.len() - self.pos < MAX_CHUNK {
            return None;
        }
        self.take_cut()
    }

    /// The next chunk of what is left at end of file, if anything is.
    pub(crate) fn next_final(&mut self) -> Option<Range<usize>> {
        if self.pos == self.buf.len() {
            return None;
        }
        self.take_cut()
    }

    /// The bytes of a range returned by `next_ready` / `next_final`.
    pub(crate) fn bytes(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    fn take_cut(&mut self) -> Option<Range<usize>> {
        let rest = &self.buf[self.pos..];
        let (_, len) = cut(
            rest,
            MIN_CHUNK,
            AVG_CHUNK,
            MAX_CHUNK,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
        );
        // FastCDC returns 0 only for empty input, which both callers exclude.
        let len = len.max(1).min(rest.len());
        let range = self.pos..self.pos + len;
        self.pos += len;
        Some(range)
    }

    fn compact(&mut self) {
        self.buf.copy_within(self.pos.., 0);
        self.buf.truncate(self.buf.len() - self.pos);
        self.pos = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn chunk_all(data: &[u8], piece: usize) -> Vec<Vec<u8>> {
        let mut chunker = Chunker::new();
        let mut out = Vec::new();
        for mut part in data.chunks(piece.max(1)) {
            while !part.is_empty() {
                let n = chunker.push(part);
                part = &part[n..];
                while let Some(r) = chunker.next_ready() {
                    out.push(chunker.bytes(r).to_vec());
                }
            }
        }
        while let Some(r) = chunker.next_final() {
            out.push(chunker.bytes(r).to_vec());
        }
        out
    }

    #[test]
    fn incremental_cuts_match_whole_buffer_cuts() {
        let data = pseudo_random(9 * MAX_CHUNK + 12345, 7);
        let whole: Vec<Vec<u8>> =
            fastcdc::v2020::FastCDC::new(&data, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)
                .map(|c| data[c.offset..c.offset + c.length].to_vec())
                .collect();
        for piece in [1000, 65_536, 3 * MAX_CHUNK, data.len()] {
            assert_eq!(chunk_all(&data, piece), whole, "piece size {piece}");
        }
    }

    #[test]
    fn sizes_stay_within_bounds() {
        let data = pseudo_random(6 * MAX_CHUNK, 3);
        let chunks = chunk_all(&data, 100_000);
        assert_eq!(chunks.concat(), data);
        let (last, body) = chunks.split_last().unwrap();
        assert!(
            body.iter()
                .all(|c| c.len() >= MIN_CHUNK && c.len() <= MAX_CHUNK)
        );
        assert!(last.len() <= MAX_CHUNK);
    }

    #[test]
    fn empty_and_zero_data() {
        assert!(chunk_all(&[], 10).is_empty());
        let zeros = vec![0u8; 3 * MAX_CHUNK + 5];
        let chunks = chunk_all(&zeros, 4096);
        assert_eq!(chunks.len(), 4);
        assert_eq!(chunks.concat(), zeros);
    }
}
