//! The extract stream format, version 1.1 (see `docs/extract-format.md`):
//!
//! ```text
//! frame   = kind:u8  length:u32le  payload[length]
//! stream  = header  object*  record*  keys?  trailer
//! header  = 'H' JSON {"format": "pachyderm-rs extract", "version": "1.2", "objects": bool, "created": RFC 3339,
//!                     "producer": version, "cluster_id": id, "checkpoint": token, "since": token or absent}
//! object  = 'O' key_len:u32le key bytes        (a bucket object, key relative to the cluster prefix)
//! record  = 'R' key_len:u32le key value        (a metadata record, value as stored)
//! keys    = 'K' newline-separated keys         (only in a `since` stream: every record key at the checkpoint)
//! trailer = 'T' JSON {"records": n, "objects": n, "object_bytes": n, "checksum": BLAKE3 hex of every byte before the trailer}
//! ```
//!
//! Objects come before the records that refer to them, and records in
//! dependency order (repos, commits parent first, branches, pipelines, jobs,
//! datums), so a reader can act on a stream in one pass.
//!
//! Neither side holds more than one frame in memory, except the key list,
//! which neither side holds at all: it is the one frame whose size grows with
//! the cluster (every record key), so [`Writer::begin_keys`] announces its
//! length and takes it in pieces, and [`Reader::next_key`] hands it out key
//! by key. It is therefore allowed up to the format's limit (4 GiB, some
//! 60 million keys) rather than [`MAX_FRAME`].

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::Summary;
use crate::error::{AdminError, Result, io};

pub const FORMAT: &str = "pachyderm-rs extract";
/// The version this build writes and the newest it reads.
pub const VERSION: &str = "1.2";
/// Largest frame accepted (an object is at most a few MiB), but for the key
/// list, which is read key by key.
const MAX_FRAME: u32 = 256 << 20;
/// Longest key accepted in a key list (keys are names and ids, far shorter).
const MAX_KEY: usize = 1 << 20;
/// Bytes of a key list read at a time.
const KEYS_CHUNK: usize = if cfg!(test) { 7 } else { 64 << 10 };

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: String,
    pub objects: bool,
    pub created: String,
    /// The pachd release that wrote the stream.
    #[serde(default)]
    pub producer: String,
    #[serde(default)]
    pub cluster_id: String,
    /// Where this snapshot stands; `extract --since` takes it back.
    #[serde(default)]
    pub checkpoint: String,
    /// For a stream of changes only: the checkpoint it starts from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    #[serde(flatten)]
    pub summary: Summary,
    pub checksum: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Header(Header),
    Object {
        key: String,
        data: Vec<u8>,
    },
    Record {
        key: String,
        value: Vec<u8>,
    },
    /// The start of the key list: every record key of the snapshot (a `since`
    /// stream's deletions are the target's keys missing from it). Its keys
    /// follow from [`Reader::next_key`]; `next` skips those not read.
    Keys,
    Trailer(Trailer),
}

/// Writes frames and keeps the checksum and counts for the trailer.
pub struct Writer<W> {
    out: W,
    hasher: blake3::Hasher,
    summary: Summary,
    /// Bytes of the key list announced but not written yet.
    keys_left: u64,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub async fn new(out: W, header: Header) -> Result<Self> {
        let mut w = Writer {
            out,
            hasher: blake3::Hasher::new(),
            summary: Summary::default(),
            keys_left: 0,
        };
        let json = serde_json::to_vec(&header).unwrap_or_default();
        w.frame(b'H', &[&json]).await?;
        Ok(w)
    }

    pub async fn object(&mut self, key: &str, data: &[u8]) -> Result<()> {
        self.summary.objects += 1;
        self.summary.object_bytes += data.len() as u64;
        let len = (key.len() as u32).to_le_bytes();
        self.frame(b'O', &[&len, key.as_bytes(), data]).await
    }

    pub async fn record(&mut self, key: &str, value: &[u8]) -> Result<()> {
        self.summary.records += 1;
        let len = (key.len() as u32).to_le_bytes();
        self.frame(b'R', &[&len, key.as_bytes(), value]).await
    }

    /// The key list in one piece (newline-separated keys).
    pub async fn keys(&mut self, keys: &[String]) -> Result<()> {
        let joined = keys.join("\n");
        self.begin_keys(joined.len() as u64).await?;
        self.keys_part(joined.as_bytes()).await
    }

    /// Starts the key list frame, whose payload (`len` bytes: the keys,
    /// separated by newlines) follows through [`Writer::keys_part`].
    pub async fn begin_keys(&mut self, len: u64) -> Result<()> {
        let Ok(len32) = u32::try_from(len) else {
            return Err(AdminError::KeyListTooLarge { bytes: len });
        };
        self.head(b'K', len32).await?;
        self.keys_left = len;
        Ok(())
    }

    /// The next piece of the key list started by [`Writer::begin_keys`].
    pub async fn keys_part(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.len() as u64 > self.keys_left {
            return Err(unfinished("the key list is longer than announced"));
        }
        self.keys_left -= bytes.len() as u64;
        self.hasher.update(bytes);
        self.out
            .write_all(bytes)
            .await
            .map_err(io("writing the stream"))
    }

    /// Writes the trailer and flushes; returns what was written.
    pub async fn finish(mut self) -> Result<Summary> {
        if self.keys_left != 0 {
            return Err(unfinished("the key list is shorter than announced"));
        }
        let trailer = Trailer {
            summary: self.summary.clone(),
            checksum: self.hasher.finalize().to_hex().to_string(),
        };
        let json = serde_json::to_vec(&trailer).unwrap_or_default();
        let mut head = vec![b'T'];
        head.extend_from_slice(&(json.len() as u32).to_le_bytes());
        self.out
            .write_all(&head)
            .await
            .map_err(io("writing the stream"))?;
        self.out
            .write_all(&json)
            .await
            .map_err(io("writing the stream"))?;
        self.out.flush().await.map_err(io("writing the stream"))?;
        self.out
            .shutdown()
            .await
            .map_err(io("closing the stream"))?;
        Ok(self.summary)
    }

    async fn frame(&mut self, kind: u8, parts: &[&[u8]]) -> Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.head(kind, len as u32).await?;
        for p in parts {
            self.hasher.update(p);
            self.out
                .write_all(p)
                .await
                .map_err(io("writing the stream"))?;
        }
        Ok(())
    }

    async fn head(&mut self, kind: u8, len: u32) -> Result<()> {
        if self.keys_left != 0 {
            return Err(unfinished("the key list is shorter than announced"));
        }
        let mut head = [kind, 0, 0, 0, 0];
        head[1..].copy_from_slice(&len.to_le_bytes());
        self.hasher.update(&head);
        self.out
            .write_all(&head)
            .await
            .map_err(io("writing the stream"))
    }
}

/// A writer used out of order (a bug of its caller, not of a stream).
fn unfinished(what: &str) -> AdminError {
    AdminError::Io {
        what: "writing the stream".into(),
        source: std::io::Error::other(what.to_string()),
    }
}

/// Reads frames, checking the checksum and counts against the trailer.
pub struct Reader<R> {
    input: R,
    hasher: blake3::Hasher,
    seen: Summary,
    done: bool,
    /// Bytes of the current key list not read from the input yet.
    keys_left: u64,
    /// Key list bytes read but not handed out yet (`keys_buf[keys_pos..]`).
    keys_buf: Vec<u8>,
    keys_pos: usize,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// Reads and checks the header.
    pub async fn open(input: R) -> Result<(Self, Header)> {
        let mut r = Reader {
            input,
            hasher: blake3::Hasher::new(),
            seen: Summary::default(),
            done: false,
            keys_left: 0,
            keys_buf: Vec::new(),
            keys_pos: 0,
        };
        let header = match r.next().await? {
            Some(Frame::Header(h)) => h,
            _ => {
                return Err(AdminError::NotAStream(
                    "it does not start with a header".into(),
                ));
            }
        };
        if header.format != FORMAT {
            return Err(AdminError::NotAStream(format!(
                "format '{}'",
                header.format
            )));
        }
        let major = |v: &str| v.split('.').next().and_then(|m| m.parse::<u32>().ok());
        match (major(&header.version), major(VERSION)) {
            (Some(found), Some(ours)) if found <= ours => {}
            _ => {
                return Err(AdminError::UnknownVersion {
                    found: header.version.clone(),
                    supported: VERSION.into(),
                });
            }
        }
        Ok((r, header))
    }

    /// The next object or record; None after a valid trailer.
    pub async fn next(&mut self) -> Result<Option<Frame>> {
        if self.done {
            return Ok(None);
        }
        while self.next_key().await?.is_some() {}
        let mut head = [0u8; 5];
        if let Err(e) = self.input.read_exact(&mut head).await {
            return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                AdminError::Truncated("it ends before its trailer".into())
            } else {
                io("reading the stream")(e)
            });
        }
        let kind = head[0];
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
        if kind == b'K' {
            self.hasher.update(&head);
            self.keys_left = u64::from(len);
            return Ok(Some(Frame::Keys));
        }
        if len > MAX_FRAME {
            return Err(AdminError::Corrupt(format!("a frame claims {len} bytes")));
        }
        let mut payload = vec![0u8; len as usize];
        self.input.read_exact(&mut payload).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                AdminError::Truncated("it ends inside a frame".into())
            } else {
                io("reading the stream")(e)
            }
        })?;
        if kind == b'T' {
            let trailer: Trailer = serde_json::from_slice(&payload)
                .map_err(|e| AdminError::Corrupt(format!("unreadable trailer: {e}")))?;
            let checksum = self.hasher.finalize().to_hex().to_string();
            if checksum != trailer.checksum {
                return Err(AdminError::Corrupt(format!(
                    "checksum {checksum} does not match the trailer's {}",
                    trailer.checksum
                )));
            }
            if trailer.summary != self.seen {
                return Err(AdminError::Corrupt(format!(
                    "the trailer counts {:?} but the stream holds {:?}",
                    trailer.summary, self.seen
                )));
            }
            let mut rest = [0u8; 1];
            if self
                .input
                .read(&mut rest)
                .await
                .map_err(io("reading the stream"))?
                != 0
            {
                return Err(AdminError::Corrupt("bytes follow the trailer".into()));
            }
            self.done = true;
            return Ok(None);
        }
        self.hasher.update(&head);
        self.hasher.update(&payload);
        let keyed = |payload: Vec<u8>| -> Result<(String, Vec<u8>)> {
            if payload.len() < 4 {
                return Err(AdminError::Corrupt("a frame too short for its key".into()));
            }
            let klen =
                u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]) as usize;
            if payload.len() < 4 + klen {
                return Err(AdminError::Corrupt("a key longer than its frame".into()));
            }
            let key = String::from_utf8(payload[4..4 + klen].to_vec())
                .map_err(|_| AdminError::Corrupt("a key that is not UTF-8".into()))?;
            Ok((key, payload[4 + klen..].to_vec()))
        };
        match kind {
            b'H' => {
                let h: Header = serde_json::from_slice(&payload)
                    .map_err(|e| AdminError::NotAStream(format!("unreadable header: {e}")))?;
                Ok(Some(Frame::Header(h)))
            }
            b'O' => {
                let (key, data) = keyed(payload)?;
                self.seen.objects += 1;
                self.seen.object_bytes += data.len() as u64;
                Ok(Some(Frame::Object { key, data }))
            }
            b'R' => {
                let (key, value) = keyed(payload)?;
                self.seen.records += 1;
                Ok(Some(Frame::Record { key, value }))
            }
            other => Err(AdminError::Corrupt(format!(
                "unknown frame kind {other:#04x}"
            ))),
        }
    }

    /// The next key of the key list whose [`Frame::Keys`] `next` returned;
    /// None at its end. Reads the list a chunk at a time, so that a list of
    /// millions of keys never is in memory.
    pub async fn next_key(&mut self) -> Result<Option<String>> {
        loop {
            let pending = &self.keys_buf[self.keys_pos..];
            let end = match pending.iter().position(|b| *b == b'\n') {
                Some(i) => Some((i, i + 1)),
                // The last key has no newline after it.
                None if self.keys_left == 0 && !pending.is_empty() => {
                    Some((pending.len(), pending.len()))
                }
                None if self.keys_left == 0 => {
                    self.keys_buf = Vec::new();
                    self.keys_pos = 0;
                    return Ok(None);
                }
                None => None,
            };
            if let Some((len, used)) = end {
                let key = &pending[..len];
                let key = (!key.is_empty())
                    .then(|| {
                        std::str::from_utf8(key)
                            .map(str::to_string)
                            .map_err(|_| AdminError::Corrupt("a key list that is not UTF-8".into()))
                    })
                    .transpose()?;
                self.keys_pos += used;
                match key {
                    Some(key) => return Ok(Some(key)),
                    None => continue,
                }
            }
            if pending.len() > MAX_KEY {
                return Err(AdminError::Corrupt(format!(
                    "a key list entry longer than {MAX_KEY} bytes"
                )));
            }
            // Keep the partial key, read the next chunk after it.
            self.keys_buf.drain(..self.keys_pos);
            self.keys_pos = 0;
            let n = self.keys_left.min(KEYS_CHUNK as u64) as usize;
            let start = self.keys_buf.len();
            self.keys_buf.resize(start + n, 0);
            self.input
                .read_exact(&mut self.keys_buf[start..])
                .await
                .map_err(|e| {
                    if e.kind() == std::io::ErrorKind::UnexpectedEof {
                        AdminError::Truncated("it ends inside a frame".into())
                    } else {
                        io("reading the stream")(e)
                    }
                })?;
            self.hasher.update(&self.keys_buf[start..]);
            self.keys_left -= n as u64;
        }
    }
}
