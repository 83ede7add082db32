//! The metadata vocabulary shared with the rest of the system: file entries,
//! chunk references, changes and index summaries.
//!
//! Invariants of a well-formed [`FileEntry`]: `size` is the sum of its chunks'
//! `len`, and `hash` is [`file_hash`] of its chunk hashes. Entries built by
//! this crate always satisfy both; [`FileEntry::check`] verifies them for
//! entries that came from elsewhere.

use serde::{Deserialize, Serialize};

use crate::StorageError;
use crate::hash::{ContentHash, file_hash};

/// One file as recorded in an index: where its bytes live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub hash: ContentHash,
    pub chunks: Vec<ChunkRef>,
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
    /// Append the entry's chunks to the file at its path, creating it if absent.
    Append(FileEntry),
    /// Remove the file at this path and every file below `path + "/"`; `"/"` removes all.
    Delete(String),
}

impl Change {
    /// The path this change is about.
    pub fn path(&self) -> &str {
        match self {
            Change::Put(entry) | Change::Append(entry) => &entry.path,
            Change::Delete(path) => path,
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
    /// An entry for `path` made of `chunks`, with size and hash derived from them.
    pub fn from_chunks(path: String, chunks: Vec<ChunkRef>) -> Self {
        let size = chunks.iter().map(|c| u64::from(c.len)).sum();
        let hash = file_hash(chunks.iter().map(|c| &c.hash));
        FileEntry {
            path,
            size,
            hash,
            chunks,
        }
    }

    /// This entry followed by `tail`'s chunks; the hash is recomputed from chunk hashes.
    pub fn appended(mut self, tail: &FileEntry) -> Self {
        self.chunks.extend(tail.chunks.iter().cloned());
        self.size += tail.size;
        self.hash = file_hash(self.chunks.iter().map(|c| &c.hash));
        self
    }

    /// Checks the invariants that reading relies on.
    pub fn check(&self) -> Result<(), StorageError> {
        let total: u64 = self.chunks.iter().map(|c| u64::from(c.len)).sum();
        if total != self.size {
            return Err(StorageError::InvalidEntry {
                path: self.path.clone(),
                reason: format!("size is {} but its chunks hold {total} bytes", self.size),
            });
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

    #[test]
    fn append_recomputes_size_and_hash() {
        let a = FileEntry::from_chunks("/f".into(), vec![chunk(b"abc")]);
        let b = FileEntry::from_chunks("/f".into(), vec![chunk(b"de")]);
        let joined = a.clone().appended(&b);
        assert_eq!(joined.size, 5);
        assert_eq!(
            joined,
            FileEntry::from_chunks("/f".into(), vec![chunk(b"abc"), chunk(b"de")])
        );
        assert_eq!(a.hash, ContentHash::of(b"abc"));
        joined.check().unwrap();
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
