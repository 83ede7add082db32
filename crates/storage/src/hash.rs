//! Content hashes: the names of chunks, files, packs and index objects, and
//! the SHA-512 digests of file pieces.
//!
//! A [`ContentHash`] is 32 bytes of BLAKE3. It prints and parses as 64
//! lowercase hex digits. In human-readable serde formats (JSON, YAML) it is a
//! hex string; in binary formats (postcard, used for our own objects) it is the
//! 32 raw bytes, which halves the size of file indexes.
//!
//! A [`Sha512`] is what Pachyderm 1.9 names an object by: its clients see the
//! SHA-512 of each piece of a file (128 hex digits). It is computed while the
//! piece is ingested ([`PieceHasher`]) and serialised like a [`ContentHash`]:
//! hex in JSON, raw bytes in postcard.

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

/// The SHA-512 digest of a piece of a file, as Pachyderm's object hashes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Sha512(pub [u8; 64]);

impl Sha512 {
    /// The SHA-512 of `data`.
    pub fn of(data: &[u8]) -> Self {
        let mut hasher = PieceHasher::new();
        hasher.update(data);
        hasher.finish()
    }

    /// Lowercase hex form (128 digits), as Pachyderm prints object hashes.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Incremental SHA-512 over the bytes of one piece (ring's implementation:
/// it uses the CPU's vector units, which keeps ingest near disk speed).
pub struct PieceHasher(ring::digest::Context);

impl PieceHasher {
    pub fn new() -> Self {
        PieceHasher(ring::digest::Context::new(&ring::digest::SHA512))
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finish(self) -> Sha512 {
        let digest = self.0.finish();
        let mut out = [0u8; 64];
        // SHA-512 digests are always 64 bytes.
        out.copy_from_slice(digest.as_ref());
        Sha512(out)
    }
}

impl Default for PieceHasher {
    fn default() -> Self {
        PieceHasher::new()
    }
}

impl fmt::Display for Sha512 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha512 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Sha512 {
    type Err = StorageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 64];
        hex::decode_to_slice(s, &mut out).map_err(|err| StorageError::InvalidHash {
            input: s.to_string(),
            reason: err.to_string(),
        })?;
        Ok(Sha512(out))
    }
}

impl Serialize for Sha512 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Sha512 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            deserializer.deserialize_bytes(DigestBytes)
        }
    }
}

/// Reads the 64 raw bytes of a [`Sha512`] from a binary format.
struct DigestBytes;

impl<'de> serde::de::Visitor<'de> for DigestBytes {
    type Value = Sha512;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("64 bytes of SHA-512")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Sha512, E> {
        let bytes: [u8; 64] = v
            .try_into()
            .map_err(|_| E::invalid_length(v.len(), &self))?;
        Ok(Sha512(bytes))
    }
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
    fn sha512_matches_known_digest_and_round_trips() {
        // The digest python-pachyderm's tests expect for an object holding b"DATA".
        let d = Sha512::of(b"DATA");
        assert_eq!(
            d.to_hex(),
            "4ba7d4149c32f5ccc6e54190beef0f503d1e637249baa9e4b123f5aa5c89506f\
             299c10a7e32ab1e4bae30ed32df848f87d9b03a640320b0ca758c5ee56cb2db4"
        );
        let mut incremental = PieceHasher::new();
        incremental.update(b"DA");
        incremental.update(b"TA");
        assert_eq!(incremental.finish(), d);
        assert_eq!(d.to_string().parse::<Sha512>().ok(), Some(d.clone()));
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Sha512>(&json).unwrap(), d);
        let bin = postcard::to_allocvec(&d).unwrap();
        assert_eq!(bin.len(), 65, "a length byte and the 64 digest bytes");
        assert_eq!(postcard::from_bytes::<Sha512>(&bin).unwrap(), d);
        assert!(postcard::from_bytes::<Sha512>(&[3, 1, 2, 3]).is_err());
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
