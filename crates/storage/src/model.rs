//! The metadata vocabulary shared with the rest of the system: file entries,
//! their pieces, chunk references, changes and index summaries.
//!
//! A file is the concatenation of its pieces, as in Pachyderm 1.9 where a
//! file is the list of objects its puts wrote: every `put file` adds one
//! piece (or several, one per [`PIECE_MAX`] bytes), and clients see them
//! (python-pachyderm's `get_file` yields a file piece by piece, InspectFile
//! lists one object per piece, named by its SHA-512).
//!
//! Invariants of a well-formed [`FileEntry`]: `size` is the sum of its chunks'
//! `len`; `hash` is [`file_hash`] of its chunk hashes; when `pieces` is not
//! empty, their lengths add up to `size` and every piece starts and ends on a
//! chunk boundary (each put is chunked on its own), so a piece is a run of
//! whole chunks. An empty `pieces` is the form of entries written before
//! pieces were recorded: the whole file is one piece whose digest is
//! unknown. Entries built by this crate always satisfy these;
//! [`FileEntry::check`] verifies them for entries that came from elsewhere.

use std::borrow::Cow;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::StorageError;
use crate::hash::{ContentHash, Sha512, file_hash};

/// The largest piece one put makes, as Pachyderm 1.9's object size
/// (`pfs.ChunkSize`): a larger put becomes several pieces.
pub const PIECE_MAX: u64 = 512 * 1024 * 1024;

/// One file as recorded in an index: where its bytes live, and the pieces
/// they were put in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub hash: ContentHash,
    pub chunks: Vec<ChunkRef>,
    /// The pieces in order; empty = one piece of unknown digest (see the module docs).
    #[serde(default)]
    pub pieces: Vec<Piece>,
}

/// One piece of a file: the bytes of one put.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    /// Length in bytes.
    pub len: u64,
    /// SHA-512 of the piece's bytes; None when the piece predates digests.
    pub sha512: Option<Sha512>,
}

/// A piece located in its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PieceSpan {
    /// Byte offset of the piece in the file.
    pub offset: u64,
    /// The file's chunks that hold the piece.
    pub chunks: Range<usize>,
    pub piece: Piece,
}

/// One content-defined chunk of a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// BLAKE3 of the raw (uncompressed) chunk bytes.
    pub hash: ContentHash,
    /// Raw length in bytes.
    pub len: u32,
    pub loc: ChunkLocation,
}

/// Where a chunk's stored blob is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkLocation {
    /// Its own object at `chunks/<aa>/<hash>`.
    Loose,
    /// `stored_len` bytes at `offset` inside the pack object `packs/<pack>`.
    Packed {
        pack: ContentHash,
        offset: u64,
        stored_len: u32,
    },
}

/// One modification of a file tree, applied in order by `write_index`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Create or replace the file at the entry's path.
    Put(FileEntry),
    /// Append the entry's pieces to the file at its path, creating it if absent.
    Append(FileEntry),
    /// Remove the file at this path and every file below `path + "/"`; `"/"` removes all.
    Delete(String),
    /// Keep the first `index` pieces of the file at the entry's path, then
    /// append the entry's pieces (Pachyderm's `overwrite_index`): 0 replaces
    /// the file, an index past its last piece appends.
    ReplaceFrom { index: u64, entry: FileEntry },
}

impl Change {
    /// The path this change is about.
    pub fn path(&self) -> &str {
        match self {
            Change::Put(entry) | Change::Append(entry) | Change::ReplaceFrom { entry, .. } => {
                &entry.path
            }
            Change::Delete(path) => path,
        }
    }

    /// The file entry this change writes, if it writes one.
    pub fn entry(&self) -> Option<&FileEntry> {
        match self {
            Change::Put(entry) | Change::Append(entry) | Change::ReplaceFrom { entry, .. } => {
                Some(entry)
            }
            Change::Delete(_) => None,
        }
    }
}

/// What `write_index` produced: the root to remember and the totals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexSummary {
    pub root: ContentHash,
    pub files: u64,
    pub bytes: u64,
}

impl FileEntry {
    /// An entry for `path` made of `chunks`, with size and hash derived from
    /// them: one piece whose digest is unknown.
    pub fn from_chunks(path: String, chunks: Vec<ChunkRef>) -> Self {
        let size = chunks.iter().map(|c| u64::from(c.len)).sum();
        let hash = file_hash(chunks.iter().map(|c| &c.hash));
        FileEntry {
            path,
            size,
            hash,
            chunks,
            pieces: Vec::new(),
        }
    }

    /// An entry made of `chunks` holding exactly `pieces`, in order.
    pub fn from_pieces(path: String, chunks: Vec<ChunkRef>, pieces: Vec<Piece>) -> Self {
        let mut entry = FileEntry::from_chunks(path, chunks);
        entry.set_pieces(pieces);
        entry
    }

    /// The file's pieces; an entry from before pieces were recorded is one
    /// piece of unknown digest.
    pub fn pieces(&self) -> Cow<'_, [Piece]> {
        if self.pieces.is_empty() {
            Cow::Owned(vec![Piece {
                len: self.size,
                sha512: None,
            }])
        } else {
            Cow::Borrowed(&self.pieces)
        }
    }

    /// Every piece with its offset and the chunks holding it.
    pub fn piece_spans(&self) -> Vec<PieceSpan> {
        let mut out = Vec::new();
        let mut chunk = 0;
        let mut offset = 0u64;
        for piece in self.pieces().iter() {
            let first = chunk;
            let mut covered = 0u64;
            while covered < piece.len && chunk < self.chunks.len() {
                covered += u64::from(self.chunks[chunk].len);
                chunk += 1;
            }
            out.push(PieceSpan {
                offset,
                chunks: first..chunk,
                piece: piece.clone(),
            });
            offset += piece.len;
        }
        out
    }

    /// Stores `pieces`, in the compact form when they say nothing more than
    /// "one piece of unknown digest".
    fn set_pieces(&mut self, pieces: Vec<Piece>) {
        let unknown_whole = pieces.len() == 1 && pieces[0].sha512.is_none();
        self.pieces = if unknown_whole { Vec::new() } else { pieces };
    }

    /// This entry followed by `tail`'s pieces; the hash is recomputed from chunk hashes.
    pub fn appended(self, tail: &FileEntry) -> Self {
        self.replaced_from(None, tail)
    }

    /// The first `keep` pieces of this entry (all of them for None or a
    /// `keep` past the last piece) followed by `tail`'s pieces: Pachyderm's
    /// put with `overwrite_index`.
    pub fn replaced_from(self, keep: Option<u64>, tail: &FileEntry) -> Self {
        let spans = self.piece_spans();
        let kept = keep.map_or(spans.len(), |k| usize::try_from(k).unwrap_or(usize::MAX));
        let kept = kept.min(spans.len());
        let chunk_end = spans
            .get(kept)
            .map_or(self.chunks.len(), |s| s.chunks.start);
        let mut chunks = self.chunks;
        chunks.truncate(chunk_end);
        chunks.extend(tail.chunks.iter().cloned());
        let mut pieces: Vec<Piece> = spans.into_iter().take(kept).map(|s| s.piece).collect();
        pieces.extend(tail.pieces().iter().cloned());
        let mut entry = FileEntry::from_chunks(self.path, chunks);
        entry.set_pieces(pieces);
        entry
    }

    /// Checks the invariants that reading relies on.
    pub fn check(&self) -> Result<(), StorageError> {
        let invalid = |reason: String| {
            Err(StorageError::InvalidEntry {
                path: self.path.clone(),
                reason,
            })
        };
        let total: u64 = self.chunks.iter().map(|c| u64::from(c.len)).sum();
        if total != self.size {
            return invalid(format!(
                "size is {} but its chunks hold {total} bytes",
                self.size
            ));
        }
        if self.pieces.is_empty() {
            return Ok(());
        }
        let pieces: u64 = self.pieces.iter().map(|p| p.len).sum();
        if pieces != self.size {
            return invalid(format!(
                "size is {} but its pieces hold {pieces} bytes",
                self.size
            ));
        }
        // Every piece boundary must be a chunk boundary.
        let mut boundaries = self.chunks.iter().scan(0u64, |at, c| {
            *at += u64::from(c.len);
            Some(*at)
        });
        let mut next = 0u64;
        let mut at = 0u64;
        for piece in &self.pieces {
            at += piece.len;
            while next < at {
                match boundaries.next() {
                    Some(b) => next = b,
                    None => break,
                }
            }
            if next != at {
                return invalid(format!("a piece ends at byte {at}, inside a chunk"));
            }
        }
        Ok(())
    }
}

/// Rejects paths that are not absolute and normalised (`/a/b.txt`).
///
/// `allow_root` admits `"/"` itself, which only `Delete` may name.
pub fn validate_path(path: &str, allow_root: bool) -> Result<(), StorageError> {
    let fail = |reason: &str| {
        Err(StorageError::InvalidPath {
            path: path.to_string(),
            reason: reason.to_string(),
        })
    };
    if path == "/" {
        return if allow_root {
            Ok(())
        } else {
            fail("the root is not a file")
        };
    }
    let Some(rest) = path.strip_prefix('/') else {
        return fail("must start with '/'");
    };
    if path.contains('\0') {
        return fail("must not contain NUL");
    }
    for part in rest.split('/') {
        match part {
            "" => return fail("must not contain empty components or end with '/'"),
            "." | ".." => return fail("must not contain '.' or '..' components"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(data: &[u8]) -> ChunkRef {
        ChunkRef {
            hash: ContentHash::of(data),
            len: data.len() as u32,
            loc: ChunkLocation::Loose,
        }
    }

    /// An entry of one piece per part, each part one chunk, digests known.
    fn put(parts: &[&[u8]]) -> FileEntry {
        FileEntry::from_pieces(
            "/f".into(),
            parts.iter().map(|p| chunk(p)).collect(),
            parts
                .iter()
                .map(|p| Piece {
                    len: p.len() as u64,
                    sha512: Some(Sha512::of(p)),
                })
                .collect(),
        )
    }

    #[test]
    fn append_recomputes_size_and_hash() {
        let a = FileEntry::from_chunks("/f".into(), vec![chunk(b"abc")]);
        let b = FileEntry::from_chunks("/f".into(), vec![chunk(b"de")]);
        let joined = a.clone().appended(&b);
        assert_eq!(joined.size, 5);
        let whole = FileEntry::from_chunks("/f".into(), vec![chunk(b"abc"), chunk(b"de")]);
        assert_eq!((joined.hash, &joined.chunks), (whole.hash, &whole.chunks));
        assert_eq!(joined.pieces().len(), 2, "each part stays a piece");
        assert_eq!(a.hash, ContentHash::of(b"abc"));
        joined.check().unwrap();
    }

    #[test]
    fn legacy_entries_are_one_piece_of_unknown_digest() {
        let e = FileEntry::from_chunks("/f".into(), vec![chunk(b"abc"), chunk(b"de")]);
        assert!(e.pieces.is_empty());
        assert_eq!(
            e.pieces().as_ref(),
            [Piece {
                len: 5,
                sha512: None
            }]
        );
        let spans = e.piece_spans();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].chunks, 0..2);
    }

    #[test]
    fn replace_from_keeps_leading_pieces_then_appends() {
        let five = put(&[&b"DATA"[..]; 5]);
        let foo = put(&[b"FOO"]);
        let r = five.clone().replaced_from(Some(2), &foo);
        r.check().unwrap();
        assert_eq!(r, put(&[b"DATA", b"DATA", b"FOO"]));
        assert_eq!(five.clone().replaced_from(Some(0), &foo), foo);
        assert_eq!(
            five.clone().replaced_from(Some(99), &foo),
            five.clone().appended(&foo)
        );
        // A legacy base is one piece: index 1 keeps it whole.
        let legacy = FileEntry::from_chunks("/f".into(), vec![chunk(b"ab"), chunk(b"cd")]);
        let kept = legacy.clone().replaced_from(Some(1), &foo);
        assert_eq!(kept.size, 7);
        assert_eq!(kept.pieces().len(), 2);
        assert_eq!(kept.pieces()[0].sha512, None);
        kept.check().unwrap();
    }

    #[test]
    fn check_detects_pieces_that_split_a_chunk_or_miscount() {
        let mut e = put(&[b"abc", b"de"]);
        e.pieces[0].len = 2;
        e.pieces[1].len = 3;
        let err = e.check().unwrap_err().to_string();
        assert!(err.contains("inside a chunk"), "{err}");
        let mut e = put(&[b"abc"]);
        e.pieces[0].len = 4;
        let err = e.check().unwrap_err().to_string();
        assert!(err.contains("pieces hold 4 bytes"), "{err}");
    }

    #[test]
    fn check_detects_size_mismatch() {
        let mut e = FileEntry::from_chunks("/f".into(), vec![chunk(b"abc")]);
        e.size = 4;
        assert!(matches!(e.check(), Err(StorageError::InvalidEntry { path, .. }) if path == "/f"));
    }

    #[test]
    fn paths() {
        for ok in ["/a", "/a/b.txt", "/a b/c"] {
            validate_path(ok, false).unwrap();
        }
        validate_path("/", true).unwrap();
        for bad in ["", "a", "/", "/a/", "//a", "/a//b", "/a/./b", "/..", "/a\0"] {
            assert!(validate_path(bad, false).is_err(), "{bad:?}");
        }
    }
}
