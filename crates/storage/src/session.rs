//! Writing file content: [`PutSession`].
//!
//! A session turns byte streams into [`FileEntry`]s. Each file is cut into
//! content-defined chunks as bytes arrive, and its SHA-512 is computed as
//! they pass (Pachyderm names a piece by it; beyond a piece's first MiBs on
//! a thread of its own, [`crate::digest`]); a file longer than
//! [`PIECE_MAX`] becomes several pieces, each chunked on its own. Every
//! chunk is hashed on the caller's task and then either
//!
//! * reused: the file's previous version (or an earlier file of this
//!   session) already stored a chunk with that hash, so nothing is written;
//! * stored loose (raw length >= [`LOOSE_MIN`]): compressed and uploaded in a
//!   background task as its own object, after a HEAD shows it is not there yet;
//! * packed (smaller): its blob is appended to the current pack buffer, which
//!   is uploaded when it reaches [`PACK_TARGET`] and at [`PutSession::finish`].
//!
//! Pack names: `end_file` must return chunk references before the pack they
//! live in is complete, so a pack cannot be named after its content. A pack is
//! named when it is started, by BLAKE3 over the process id, the wall clock in
//! nanoseconds, a process-wide counter and the standard library's per-process
//! random hasher keys. That is unique without a random-number dependency, and
//! a pack's bytes are never rewritten under its name. Corruption inside a pack
//! is still caught: every chunk is verified against its own hash on read.
//!
//! Invariant: entries returned by `end_file` may refer to objects still being
//! uploaded; they become valid only once `finish` has returned `Ok`. Dropping
//! a session without `finish` aborts its uploads (what was already stored
//! stays, unreferenced, for garbage collection).

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use object_store::ObjectStore;

use crate::StorageError;
use crate::chunker::Chunker;
use crate::codec::ChunkEncoder;
use crate::digest::PieceDigest;
use crate::hash::{ContentHash, file_hash};
use crate::layout::Layout;
use crate::model::{ChunkLocation, ChunkRef, FileEntry, PIECE_MAX, Piece};
use crate::upload::Uploader;

/// Chunks at least this long are stored as their own object.
pub const LOOSE_MIN: usize = 64 * 1024;
/// A pack is uploaded once its buffer reaches this size.
pub const PACK_TARGET: usize = 8 * 1024 * 1024;
/// Bound on the session's memory of recently stored chunks (for dedup within a session).
const RECENT_LIMIT: usize = 65_536;

/// Streams files into the content store. See the module docs.
pub struct PutSession {
    chunker: Chunker,
    sink: ChunkSink,
    open: Option<OpenFile>,
    /// Bytes after which a file's piece ends and the next one starts.
    piece_limit: u64,
}

struct OpenFile {
    path: String,
    previous: Option<FileEntry>,
    /// The previous version's chunks by hash: these need no upload at all.
    reusable: HashMap<ContentHash, ChunkRef>,
    chunks: Vec<ChunkRef>,
    /// Pieces ended so far.
    pieces: Vec<Piece>,
    /// The piece being written: its length so far and its digest state.
    piece_len: u64,
    digest: PieceDigest,
}

/// Where chunks go once cut and hashed.
struct ChunkSink {
    layout: Layout,
    uploads: Uploader,
    encoder: ChunkEncoder,
    pack: Option<PackBuilder>,
    packed_recently: HashMap<ContentHash, ChunkRef>,
    loose_recently: HashSet<ContentHash>,
}

struct PackBuilder {
    id: ContentHash,
    buf: Vec<u8>,
}

impl PutSession {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, layout: Layout) -> Self {
        PutSession {
            chunker: Chunker::new(),
            sink: ChunkSink {
                layout,
                uploads: Uploader::new(store),
                encoder: ChunkEncoder::new(),
                pack: None,
                packed_recently: HashMap::new(),
                loose_recently: HashSet::new(),
            },
            open: None,
            piece_limit: PIECE_MAX,
        }
    }

    /// Ends pieces after `limit` bytes instead of [`PIECE_MAX`] (tests).
    #[cfg(test)]
    pub(crate) fn with_piece_limit(mut self, limit: u64) -> Self {
        self.piece_limit = limit.max(1);
        self
    }

    /// Starts a file. `previous` is the file's entry in the parent commit, if
    /// any: chunks it already has are not stored again, and if the new
    /// content turns out identical the previous chunks are returned as is.
    ///
    /// A file still open from an earlier `begin_file` is abandoned.
    pub fn begin_file(&mut self, path: String, previous: Option<FileEntry>) {
        if let Some(abandoned) = &self.open {
            tracing::warn!(path = %abandoned.path, "abandoning file that was never ended");
        }
        self.chunker.reset();
        let reusable = previous
            .iter()
            .flat_map(|entry| entry.chunks.iter())
            .map(|chunk| (chunk.hash, chunk.clone()))
            .collect();
        self.open = Some(OpenFile {
            path,
            previous,
            reusable,
            chunks: Vec::new(),
            pieces: Vec::new(),
            piece_len: 0,
            digest: PieceDigest::default(),
        });
    }

    /// Adds bytes to the open file.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        let file = self
            .open
            .as_mut()
            .ok_or_else(|| misuse("write called without begin_file"))?;
        let mut rest = data;
        while !rest.is_empty() {
            // A full piece ends only when more bytes come, so a file of
            // exactly the limit stays one piece.
            let room = self.piece_limit - file.piece_len;
            if room == 0 {
                end_piece(&mut self.chunker, &mut self.sink, file).await?;
                continue;
            }
            let part = &rest[..rest.len().min(usize::try_from(room).unwrap_or(usize::MAX))];
            let taken = self.chunker.push(part);
            file.digest.update(&part[..taken]).await?;
            file.piece_len += taken as u64;
            rest = &rest[taken..];
            while let Some(range) = self.chunker.next_ready() {
                let bytes = self.chunker.bytes(range);
                self.sink.store(file, bytes, ContentHash::of(bytes)).await?;
            }
        }
        Ok(())
    }

    /// Ends the open file and returns its entry (valid once `finish` succeeds).
    pub async fn end_file(&mut self) -> Result<FileEntry, StorageError> {
        let mut file = self
            .open
            .take()
            .ok_or_else(|| misuse("end_file called without begin_file"))?;
        let mut tail = Vec::new();
        while let Some(range) = self.chunker.next_final() {
            let hash = ContentHash::of(self.chunker.bytes(range.clone()));
            tail.push((range, hash));
        }
        let last = Piece {
            len: file.piece_len,
            sha512: Some(std::mem::take(&mut file.digest).finish().await?),
        };
        file.pieces.push(last);
        if let Some(unchanged) = unchanged_entry(&file, &tail) {
            self.chunker.reset();
            return Ok(unchanged);
        }
        for (range, hash) in tail {
            self.sink
                .store(&mut file, self.chunker.bytes(range), hash)
                .await?;
        }
        self.chunker.reset();
        Ok(FileEntry::from_pieces(file.path, file.chunks, file.pieces))
    }

    /// Stores a whole file held in memory: `begin_file`, `write`, `end_file`.
    pub async fn put_bytes(
        &mut self,
        path: String,
        previous: Option<FileEntry>,
        data: &[u8],
    ) -> Result<FileEntry, StorageError> {
        self.begin_file(path, previous);
        self.write(data).await?;
        self.end_file().await
    }

    /// Uploads the last pack and waits for every upload of the session.
    ///
    /// Only after this returns `Ok` may metadata refer to the entries.
    pub async fn finish(mut self) -> Result<(), StorageError> {
        let unfinished = self.open.take().map(|file| file.path);
        self.flush().await?;
        match unfinished {
            Some(path) => Err(StorageError::UnfinishedFile { path }),
            None => Ok(()),
        }
    }

    /// Uploads the pack being filled and waits for every upload so far; the
    /// session goes on. Only after this returns `Ok` may metadata refer to
    /// the entries ended before it. Lets many small outputs (of many datums)
    /// share packs and uploads.
    pub async fn flush(&mut self) -> Result<(), StorageError> {
        self.sink.flush_pack().await?;
        self.sink.uploads.finish().await
    }
}

/// Ends the piece being written: its last chunks are cut and stored, and
/// the next piece starts chunking afresh.
async fn end_piece(
    chunker: &mut Chunker,
    sink: &mut ChunkSink,
    file: &mut OpenFile,
) -> Result<(), StorageError> {
    while let Some(range) = chunker.next_final() {
        let bytes = chunker.bytes(range);
        sink.store(file, bytes, ContentHash::of(bytes)).await?;
    }
    chunker.reset();
    file.pieces.push(Piece {
        len: file.piece_len,
        sha512: Some(std::mem::take(&mut file.digest).finish().await?),
    });
    file.piece_len = 0;
    Ok(())
}

/// The previous entry (under the new path) if the file's content did not
/// change; its chunks are reused, its pieces are the new ones.
fn unchanged_entry(
    file: &OpenFile,
    tail: &[(std::ops::Range<usize>, ContentHash)],
) -> Option<FileEntry> {
    let previous = file.previous.as_ref()?;
    let size: u64 = file.chunks.iter().map(|c| u64::from(c.len)).sum::<u64>()
        + tail
            .iter()
            .map(|(range, _)| range.len() as u64)
            .sum::<u64>();
    if size != previous.size {
        return None;
    }
    let hash = file_hash(
        file.chunks
            .iter()
            .map(|c| &c.hash)
            .chain(tail.iter().map(|(_, h)| h)),
    );
    if hash != previous.hash {
        return None;
    }
    let entry = FileEntry::from_pieces(
        file.path.clone(),
        previous.chunks.clone(),
        file.pieces.clone(),
    );
    // Equal chunk hashes give equal chunk boundaries, so the new pieces fit
    // the previous chunks; checked all the same, as a wrong entry would be
    // stored for good.
    entry.check().ok().map(|()| entry)
}

impl ChunkSink {
    /// Records the chunk `data` (with hash `hash`) as the next chunk of `file`.
    async fn store(
        &mut self,
        file: &mut OpenFile,
        data: &[u8],
        hash: ContentHash,
    ) -> Result<(), StorageError> {
        let len = chunk_len(data, &file.path)?;
        let chunk = match file.reusable.get(&hash) {
            Some(known) if known.len == len => known.clone(),
            _ if data.len() >= LOOSE_MIN => self.store_loose(data, hash, len).await?,
            _ => self.store_packed(data, hash, len).await?,
        };
        file.chunks.push(chunk);
        Ok(())
    }

    async fn store_loose(
        &mut self,
        data: &[u8],
        hash: ContentHash,
        len: u32,
    ) -> Result<ChunkRef, StorageError> {
        if self.loose_recently.len() >= RECENT_LIMIT {
            self.loose_recently.clear();
        }
        if self.loose_recently.insert(hash) {
            let key = self.layout.chunk(&hash);
            self.uploads
                .put_chunk_if_absent(key, Bytes::copy_from_slice(data))
                .await?;
        }
        Ok(ChunkRef {
            hash,
            len,
            loc: ChunkLocation::Loose,
        })
    }

    async fn store_packed(
        &mut self,
        data: &[u8],
        hash: ContentHash,
        len: u32,
    ) -> Result<ChunkRef, StorageError> {
        if let Some(known) = self.packed_recently.get(&hash) {
            return Ok(known.clone());
        }
        let pack = self.pack.get_or_insert_with(PackBuilder::new);
        let offset = pack.buf.len() as u64;
        let stored = self.encoder.encode_into(data, &mut pack.buf);
        // A packed blob is at most LOOSE_MIN bytes plus the header, so this cannot truncate.
        let stored_len =
            u32::try_from(stored).map_err(|_| misuse("packed chunk blob too large"))?;
        let chunk = ChunkRef {
            hash,
            len,
            loc: ChunkLocation::Packed {
                pack: pack.id,
                offset,
                stored_len,
            },
        };
        let full = pack.buf.len() >= PACK_TARGET;
        if self.packed_recently.len() >= RECENT_LIMIT {
            self.packed_recently.clear();
        }
        self.packed_recently.insert(hash, chunk.clone());
        if full {
            self.flush_pack().await?;
        }
        Ok(chunk)
    }

    async fn flush_pack(&mut self) -> Result<(), StorageError> {
        let Some(pack) = self.pack.take() else {
            return Ok(());
        };
        let key = self.layout.pack(&pack.id);
        tracing::debug!(%key, bytes = pack.buf.len(), "uploading pack");
        self.uploads.put_blob(key, pack.buf).await
    }
}

impl PackBuilder {
    fn new() -> Self {
        // Room for one more maximal packed blob past the target, so the buffer never reallocates.
        PackBuilder {
            id: new_pack_id(),
            buf: Vec::with_capacity(PACK_TARGET + LOOSE_MIN + 64),
        }
    }
}

fn new_pack_id() -> ContentHash {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"pach-storage pack id v1");
    hasher.update(&std::process::id().to_le_bytes());
    hasher.update(&nanos.to_le_bytes());
    hasher.update(&count.to_le_bytes());
    hasher.update(&RandomState::new().hash_one(count).to_le_bytes());
    ContentHash(*hasher.finalize().as_bytes())
}

fn chunk_len(data: &[u8], path: &str) -> Result<u32, StorageError> {
    u32::try_from(data.len()).map_err(|_| StorageError::InvalidEntry {
        path: path.to_string(),
        reason: format!("chunk of {} bytes exceeds the chunk size limit", data.len()),
    })
}

fn misuse(what: &str) -> StorageError {
    StorageError::SessionMisuse(what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_ids_are_unique() {
        let ids: HashSet<ContentHash> = (0..1000).map(|_| new_pack_id()).collect();
        assert_eq!(ids.len(), 1000);
    }

    use crate::hash::Sha512;
    use crate::store::ContentStore;
    use futures::TryStreamExt;
    use object_store::memory::InMemory;

    fn store() -> ContentStore {
        ContentStore::new(
            Arc::new(InMemory::new()),
            object_store::path::Path::default(),
        )
    }

    #[tokio::test]
    async fn a_put_is_one_piece_named_by_its_sha512() {
        let content = store();
        let mut session = content.session();
        session.begin_file("/f".into(), None);
        session.write(b"DA").await.unwrap();
        session.write(b"TA").await.unwrap();
        let entry = session.end_file().await.unwrap();
        let empty = session.put_bytes("/e".into(), None, b"").await.unwrap();
        session.finish().await.unwrap();
        assert_eq!(
            entry.pieces,
            [Piece {
                len: 4,
                sha512: Some(Sha512::of(b"DATA"))
            }]
        );
        assert_eq!(
            empty.pieces,
            [Piece {
                len: 0,
                sha512: Some(Sha512::of(b""))
            }]
        );
        entry.check().unwrap();
    }

    #[tokio::test]
    async fn long_puts_become_several_pieces_on_chunk_boundaries() {
        let content = store();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for (limit, pieces) in [(100_000u64, 3usize), (300_000, 1), (299_999, 2)] {
            let mut session = content.session().with_piece_limit(limit);
            session.begin_file("/big".into(), None);
            for part in data.chunks(33_333) {
                session.write(part).await.unwrap();
            }
            let entry = session.end_file().await.unwrap();
            session.finish().await.unwrap();
            entry.check().unwrap();
            assert_eq!(entry.pieces.len(), pieces, "limit {limit}");
            let mut at = 0usize;
            for p in &entry.pieces {
                let end = at + p.len as usize;
                assert_eq!(p.sha512, Some(Sha512::of(&data[at..end])));
                at = end;
            }
            let back: Vec<bytes::Bytes> = content
                .read_file(&entry, 0, None)
                .try_collect()
                .await
                .unwrap();
            assert_eq!(back.concat(), data);
        }
    }

    #[tokio::test]
    async fn rewriting_unchanged_content_reuses_chunks_with_new_pieces() {
        let content = store();
        let data = vec![5u8; 200_000];
        let mut session = content.session();
        let first = session.put_bytes("/f".into(), None, &data).await.unwrap();
        let again = session
            .put_bytes("/g".into(), Some(first.clone()), &data)
            .await
            .unwrap();
        session.finish().await.unwrap();
        assert_eq!(again.chunks, first.chunks);
        assert_eq!(again.pieces, first.pieces);
        assert_eq!(again.path, "/g");
    }

    #[test]
    fn session_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<PutSession>();
    }
}
