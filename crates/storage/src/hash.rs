//! Content hashes: the names of chunks, files, packs and index objects.
//!
//! A [`ContentHash`] is 32 bytes of BLAKE3. It prints and parses as 64
//! lowercase hex digits. In human-readable serde formats (JSON, YAML) it is a
//! hex string; in binary formats (postcard, used for our own objects) it is the
//! 32 raw bytes, which halves the size of file indexes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::StorageError;

/// A BLAKE3 digest identifying content.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// The BLAKE3 hash of `data`.
    pub fn of(data: &[u8]) -> Self {
        ContentHash(*blake3::hash(data).as_bytes())
    }

    /// Lowercase hex form, as used in object keys.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// The hash of a file made of chunks with these hashes.
///
/// One chunk: that chunk's hash, so a small file's hash is the hash of its
/// bytes. Otherwise BLAKE3 over the concatenated chunk hashes, which lets an
/// append compute the new file hash from chunk hashes alone.
pub fn file_hash<'a>(chunk_hashes: impl IntoIterator<Item = &'a ContentHash>) -> ContentHash {
    let mut iter = chunk_hashes.into_iter();
    let Some(first) = iter.next() else {
        return ContentHash::of(&[]);
    };
    let Some(second) = iter.next() else {
        return *first;
    };
    let mut hasher = blake3::Hasher::new();
    hasher.update(&first.0);
    hasher.update(&second.0);
    for hash in iter {
        hasher.update(&hash.0);
    }
    ContentHash(*hasher.finalize().as_bytes())
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        // Cannot fail: the buffer is exactly twice the input length.
        let _ = hex::encode_to_slice(self.0, &mut buf);
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for ContentHash {
    type Err = StorageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|err| StorageError::InvalidHash {
            input: s.to_string(),
            reason: err.to_string(),
        })?;
        Ok(ContentHash(out))
    }
}

impl Serialize for ContentHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for ContentHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(deserializer).map(ContentHash)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let hash = ContentHash::of(b"hello");
        let text = hash.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text, hash.to_hex());
        assert_eq!(format!("{hash:?}"), text);
        assert_eq!(text.parse::<ContentHash>().ok(), Some(hash));
        assert!("zz".parse::<ContentHash>().is_err());
        assert!(text[..62].parse::<ContentHash>().is_err());
    }

    #[test]
    fn binary_serde_is_raw_bytes() {
        let hash = ContentHash::of(b"x");
        let bytes = postcard::to_allocvec(&hash).unwrap();
        assert_eq!(bytes.len(), 32);
        assert_eq!(postcard::from_bytes::<ContentHash>(&bytes).unwrap(), hash);
    }

    #[test]
    fn human_readable_serde_is_hex() {
        let hash = ContentHash::of(b"x");
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(json, format!("\"{hash}\""));
        assert_eq!(serde_json::from_str::<ContentHash>(&json).unwrap(), hash);
        assert!(serde_json::from_str::<ContentHash>("\"abc\"").is_err());
    }

    #[test]
    fn file_hash_rules() {
        let a = ContentHash::of(b"a");
        let b = ContentHash::of(b"b");
        assert_eq!(file_hash([]), ContentHash::of(b""));
        assert_eq!(file_hash([&a]), a);
        let mut concat = a.0.to_vec();
        concat.extend_from_slice(&b.0);
        assert_eq!(file_hash([&a, &b]), ContentHash::of(&concat));
    }
}
