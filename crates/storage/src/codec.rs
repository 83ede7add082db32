//! Byte formats of stored objects.
//!
//! A chunk blob is one header byte followed by the payload: [`RAW`] means the
//! payload is the chunk itself, [`ZSTD`] means it is a zstd (level 1) frame of
//! it. We keep the raw form whenever zstd does not make the blob smaller, so
//! random data costs no decompression on read. A decoded chunk is always
//! checked against the BLAKE3 hash its reference carries.
//!
//! Metadata objects (index roots and shards, staged change lists) are
//! postcard, zstd-compressed, and named by the BLAKE3 of the stored bytes, so
//! verifying the name verifies the content before any decoding happens.

use std::cell::RefCell;

use bytes::Bytes;
use object_store::PutPayload;
use object_store::path::Path;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StorageError;
use crate::chunker::MAX_CHUNK;
use crate::hash::ContentHash;

/// Header byte: payload is the raw chunk.
pub(crate) const RAW: u8 = 0;
/// Header byte: payload is a zstd frame of the chunk.
pub(crate) const ZSTD: u8 = 1;

const CHUNK_LEVEL: i32 = 1;
const METADATA_LEVEL: i32 = 3;

/// Reusable compression state: zstd contexts are costly to create per chunk.
pub(crate) struct ChunkEncoder {
    compressor: Option<zstd::bulk::Compressor<'static>>,
    scratch: Vec<u8>,
}

impl ChunkEncoder {
    pub(crate) fn new() -> Self {
        // A missing compressor only costs compression, never correctness.
        ChunkEncoder {
            compressor: zstd::bulk::Compressor::new(CHUNK_LEVEL).ok(),
            scratch: Vec::new(),
        }
    }

    /// Appends the blob for `raw` to `out` and returns the blob's length.
    pub(crate) fn encode_into(&mut self, raw: &[u8], out: &mut Vec<u8>) -> usize {
        let start = out.len();
        match self.try_compress(raw) {
            Some(payload) => {
                out.push(ZSTD);
                out.extend_from_slice(payload);
            }
            None => {
                out.push(RAW);
                out.extend_from_slice(raw);
            }
        }
        out.len() - start
    }

    /// The zstd frame of `raw` if it is strictly smaller than `raw`.
    fn try_compress(&mut self, raw: &[u8]) -> Option<&[u8]> {
        let compressor = self.compressor.as_mut()?;
        // Capping the output below the input makes zstd give up early on
        // incompressible data instead of producing a useless larger frame.
        let limit = raw.len().checked_sub(1).filter(|&n| n > 0)?;
        self.scratch.clear();
        self.scratch.reserve(limit);
        let mut window = std::mem::take(&mut self.scratch);
        let result = compressor.compress_to_buffer(raw, &mut window);
        self.scratch = window;
        match result {
            Ok(n) if n < raw.len() => Some(&self.scratch[..n]),
            _ => None,
        }
    }
}

thread_local! {
    static THREAD_ENCODER: RefCell<ChunkEncoder> = RefCell::new(ChunkEncoder::new());
}

/// The blob for `raw` as an upload payload, using this thread's encoder.
///
/// A chunk that stays raw is not copied: the payload is the header byte
/// followed by `raw` itself.
pub(crate) fn chunk_payload(raw: Bytes) -> PutPayload {
    let compressed = THREAD_ENCODER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut encoder) => encoder.compressed_blob(&raw),
        // Only reachable through re-entrancy, which we never do; stay correct anyway.
        Err(_) => ChunkEncoder::new().compressed_blob(&raw),
    });
    match compressed {
        Some(blob) => blob.into(),
        None => PutPayload::from_iter([Bytes::from_static(&[RAW]), raw]),
    }
}

impl ChunkEncoder {
    /// The whole `ZSTD` blob for `raw`, if compression pays.
    fn compressed_blob(&mut self, raw: &[u8]) -> Option<Vec<u8>> {
        let payload = self.try_compress(raw)?;
        let mut blob = Vec::with_capacity(payload.len() + 1);
        blob.push(ZSTD);
        blob.extend_from_slice(payload);
        Some(blob)
    }
}

/// Decodes a chunk blob read from `key` and checks it against `hash` and `len`.
pub(crate) fn decode_chunk(
    key: &Path,
    blob: Bytes,
    hash: &ContentHash,
    len: u32,
) -> Result<Bytes, StorageError> {
    if len as usize > MAX_CHUNK {
        // No chunk is ever cut this large; refuse before sizing a buffer by it.
        return Err(StorageError::corrupt(
            key,
            format!("chunk {hash} claims {len} bytes, more than any chunk"),
        ));
    }
    let Some((&header, payload)) = blob.split_first() else {
        return Err(StorageError::corrupt(key, "empty chunk blob"));
    };
    let raw = match header {
        RAW => blob.slice(1..),
        ZSTD => zstd::bulk::decompress(payload, len as usize)
            .map(Bytes::from)
            .map_err(|err| {
                StorageError::corrupt(key, format!("chunk {hash} does not decompress: {err}"))
            })?,
        other => {
            return Err(StorageError::corrupt(
                key,
                format!("chunk {hash} has unknown header byte {other}"),
            ));
        }
    };
    if raw.len() != len as usize {
        return Err(StorageError::corrupt(
            key,
            format!("chunk {hash} has {} bytes, expected {len}", raw.len()),
        ));
    }
    let actual = ContentHash::of(&raw);
    if actual != *hash {
        return Err(StorageError::corrupt(
            key,
            format!("chunk {hash} hashes to {actual}"),
        ));
    }
    Ok(raw)
}

/// Encodes a metadata object; returns its name (hash of the stored bytes) and bytes.
pub(crate) fn encode_object<T: Serialize>(
    what: &'static str,
    value: &T,
) -> Result<(ContentHash, Vec<u8>), StorageError> {
    let plain = postcard::to_allocvec(value).map_err(|err| StorageError::Encode {
        what,
        reason: err.to_string(),
    })?;
    let stored =
        zstd::bulk::compress(&plain, METADATA_LEVEL).map_err(|err| StorageError::Encode {
            what,
            reason: err.to_string(),
        })?;
    Ok((ContentHash::of(&stored), stored))
}

/// Decodes a metadata object read from `key`, which must be named `expected`.
pub(crate) fn decode_object<T: DeserializeOwned>(
    key: &Path,
    stored: &[u8],
    expected: &ContentHash,
) -> Result<T, StorageError> {
    let actual = ContentHash::of(stored);
    if actual != *expected {
        return Err(StorageError::corrupt(
            key,
            format!("content hashes to {actual}"),
        ));
    }
    let plain = zstd::stream::decode_all(stored)
        .map_err(|err| StorageError::corrupt(key, format!("does not decompress: {err}")))?;
    postcard::from_bytes(&plain)
        .map_err(|err| StorageError::corrupt(key, format!("does not decode: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored blob for `raw`, as an upload would write it.
    fn encode_chunk(raw: &[u8]) -> Bytes {
        Bytes::from(chunk_payload(Bytes::copy_from_slice(raw)))
    }

    fn pseudo_random(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn compressible_chunks_are_compressed() {
        let raw = vec![7u8; 100_000];
        let blob = encode_chunk(&raw);
        assert_eq!(blob[0], ZSTD);
        assert!(blob.len() < 1000);
        let key = Path::from("k");
        let back =
            decode_chunk(&key, blob.clone(), &ContentHash::of(&raw), raw.len() as u32).unwrap();
        assert_eq!(&back[..], &raw[..]);
    }

    #[test]
    fn random_chunks_stay_raw() {
        let raw = pseudo_random(70_000);
        let blob = encode_chunk(&raw);
        assert_eq!(blob[0], RAW);
        assert_eq!(blob.len(), raw.len() + 1);
        let key = Path::from("k");
        decode_chunk(&key, blob.clone(), &ContentHash::of(&raw), raw.len() as u32).unwrap();
    }

    #[test]
    fn pack_encoding_matches_upload_encoding() {
        let mut encoder = ChunkEncoder::new();
        for raw in [text_like(3000), pseudo_random(3000)] {
            let mut out = vec![42];
            let n = encoder.encode_into(&raw, &mut out);
            assert_eq!(n, out.len() - 1);
            assert_eq!(&out[1..], &encode_chunk(&raw)[..]);
        }
    }

    fn text_like(len: usize) -> Vec<u8> {
        b"abcabcabd".iter().copied().cycle().take(len).collect()
    }

    #[test]
    fn tiny_chunks_round_trip() {
        let key = Path::from("k");
        for raw in [&b""[..], b"a", b"ab"] {
            let blob = encode_chunk(raw);
            let back =
                decode_chunk(&key, blob.clone(), &ContentHash::of(raw), raw.len() as u32).unwrap();
            assert_eq!(&back[..], raw);
        }
    }

    #[test]
    fn damage_is_reported_with_the_key() {
        let raw = vec![1u8; 5000];
        let mut blob = encode_chunk(&raw).to_vec();
        let last = blob.len() - 1;
        blob[last] ^= 0xff;
        let blob = Bytes::from(blob);
        let key = Path::from("packs/abc");
        let err = decode_chunk(&key, blob.clone(), &ContentHash::of(&raw), 5000).unwrap_err();
        assert!(err.to_string().contains("packs/abc"), "{err}");
        let err = decode_chunk(
            &key,
            Bytes::from_static(&[9, 1, 2]),
            &ContentHash::of(&raw),
            5000,
        )
        .unwrap_err();
        assert!(matches!(err, StorageError::Corrupt { .. }));
        let err = decode_chunk(&key, blob, &ContentHash::of(&raw), u32::MAX).unwrap_err();
        assert!(err.to_string().contains("more than any chunk"), "{err}");
    }

    #[test]
    fn metadata_objects_verify_their_name() {
        let value = vec!["a".to_string(), "b".to_string()];
        let (hash, stored) = encode_object("test", &value).unwrap();
        let key = Path::from("index/x");
        let back: Vec<String> = decode_object(&key, &stored, &hash).unwrap();
        assert_eq!(back, value);
        let other = ContentHash::of(b"other");
        assert!(decode_object::<Vec<String>>(&key, &stored, &other).is_err());
    }
}
