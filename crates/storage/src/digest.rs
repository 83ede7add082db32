//! A piece's SHA-512, computed beside the put instead of in its path.
//!
//! SHA-512 is the slowest step of storing bytes (about 0.7 GB/s a core,
//! where chunking and BLAKE3 together run at several), and a piece's digest
//! is sequential: it cannot be split across chunks. So [`PieceDigest`]
//! hashes a piece's first [`INLINE_MAX`] bytes on the caller's task (a
//! small file pays no hand-over) and hands the rest, in order, to a
//! blocking thread of its own, which hashes while the caller cuts, hashes
//! and stores chunks. At most [`IN_FLIGHT`] parts wait for that thread;
//! a caller that gets further ahead waits for it, so memory stays bounded.

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::StorageError;
use crate::hash::{PieceHasher, Sha512};

/// Bytes of a piece hashed on the caller's task before hashing moves to a
/// thread of its own.
pub(crate) const INLINE_MAX: u64 = 4 * 1024 * 1024;
/// Parts (of up to 2 MiB, what the chunker takes at once) waiting for the
/// hashing thread, at most.
const IN_FLIGHT: usize = 8;

/// The SHA-512 of one piece, fed in order. See the module docs.
// One per open file, never in a collection: the inline hasher's size is
// kept in place rather than boxed for every small file.
#[allow(clippy::large_enum_variant)]
pub(crate) enum PieceDigest {
    Inline {
        hasher: PieceHasher,
        len: u64,
    },
    Beside {
        parts: mpsc::Sender<Bytes>,
        hashing: JoinHandle<Sha512>,
    },
}

impl Default for PieceDigest {
    fn default() -> Self {
        PieceDigest::Inline {
            hasher: PieceHasher::new(),
            len: 0,
        }
    }
}

impl PieceDigest {
    /// Adds the piece's next bytes.
    pub(crate) async fn update(&mut self, data: &[u8]) -> Result<(), StorageError> {
        match self {
            PieceDigest::Inline { hasher, len } => {
                hasher.update(data);
                *len += data.len() as u64;
                if *len >= INLINE_MAX {
                    let mut hasher = std::mem::take(hasher);
                    let (parts, mut rx) = mpsc::channel::<Bytes>(IN_FLIGHT);
                    let hashing = tokio::task::spawn_blocking(move || {
                        while let Some(part) = rx.blocking_recv() {
                            hasher.update(&part);
                        }
                        hasher.finish()
                    });
                    *self = PieceDigest::Beside { parts, hashing };
                }
                Ok(())
            }
            PieceDigest::Beside { parts, .. } => parts
                .send(Bytes::copy_from_slice(data))
                .await
                .map_err(|_| hashing_stopped()),
        }
    }

    /// The digest of every byte given.
    pub(crate) async fn finish(self) -> Result<Sha512, StorageError> {
        match self {
            PieceDigest::Inline { hasher, .. } => Ok(hasher.finish()),
            PieceDigest::Beside { parts, hashing } => {
                drop(parts);
                hashing.await.map_err(|_| hashing_stopped())
            }
        }
    }
}

fn hashing_stopped() -> StorageError {
    StorageError::Task("the thread computing a piece's SHA-512 stopped".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn digest_in_parts(data: &[u8], part: usize) -> Sha512 {
        let mut d = PieceDigest::default();
        for p in data.chunks(part) {
            d.update(p).await.unwrap();
        }
        d.finish().await.unwrap()
    }

    #[tokio::test]
    async fn the_digest_is_the_same_inline_and_beside() {
        let data: Vec<u8> = (0..(INLINE_MAX as usize) * 3 + 12_345)
            .map(|i| (i % 251) as u8)
            .collect();
        let whole = Sha512::of(&data);
        // Parts that cross the hand-over anywhere; a piece under the limit
        // stays inline.
        for part in [1 << 20, 2 << 20, 999_983, data.len()] {
            assert_eq!(digest_in_parts(&data, part).await, whole, "part {part}");
        }
        let small = &data[..1000];
        let mut d = PieceDigest::default();
        d.update(small).await.unwrap();
        assert!(matches!(d, PieceDigest::Inline { .. }));
        assert_eq!(d.finish().await.unwrap(), Sha512::of(small));
        assert_eq!(
            PieceDigest::default().finish().await.unwrap(),
            Sha512::of(b"")
        );
    }
}
