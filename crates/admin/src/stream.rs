//! The extract stream format, version 1.0 (see `docs/extract-format.md`):
//!
//! ```text
//! frame   = kind:u8  length:u32le  payload[length]
//! stream  = header  object*  record*  keys?  trailer
//! header  = 'H' JSON {"format": "pachyderm-rs extract", "version": "1.0", "objects": bool, "created": RFC 3339,
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

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::Summary;
use crate::error::{AdminError, Result, io};

pub const FORMAT: &str = "pachyderm-rs extract";
/// The version this build writes and the newest it reads.
pub const VERSION: &str = "1.0";
/// Largest frame accepted (an object is at most a few MiB).
const MAX_FRAME: u32 = 256 << 20;

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
    /// Every record key of the snapshot (a `since` stream's deletions are the
    /// target's keys missing from it).
    Keys(Vec<String>),
    Trailer(Trailer),
}

/// Writes frames and keeps the checksum and counts for the trailer.
pub struct Writer<W> {
    out: W,
    hasher: blake3::Hasher,
    summary: Summary,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub async fn new(out: W, header: Header) -> Result<Self> {
        let mut w = Writer {
            out,
            hasher: blake3::Hasher::new(),
            summary: Summary::default(),
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

    pub async fn keys(&mut self, keys: &[String]) -> Result<()> {
        let joined = keys.join("\n");
        self.frame(b'K', &[joined.as_bytes()]).await
    }

    /// Writes the trailer and flushes; returns what was written.
    pub async fn finish(mut self) -> Result<Summary> {
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
        let mut head = vec![kind];
        head.extend_from_slice(&(len as u32).to_le_bytes());
        self.hasher.update(&head);
        self.out
            .write_all(&head)
            .await
            .map_err(io("writing the stream"))?;
        for p in parts {
            self.hasher.update(p);
            self.out
                .write_all(p)
                .await
                .map_err(io("writing the stream"))?;
        }
        Ok(())
    }
}

/// Reads frames, checking the checksum and counts against the trailer.
pub struct Reader<R> {
    input: R,
    hasher: blake3::Hasher,
    seen: Summary,
    done: bool,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// Reads and checks the header.
    pub async fn open(input: R) -> Result<(Self, Header)> {
        let mut r = Reader {
            input,
            hasher: blake3::Hasher::new(),
            seen: Summary::default(),
            done: false,
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
            b'K' => {
                let text = String::from_utf8(payload)
                    .map_err(|_| AdminError::Corrupt("a key list that is not UTF-8".into()))?;
                Ok(Some(Frame::Keys(
                    text.split('\n')
                        .filter(|k| !k.is_empty())
                        .map(str::to_string)
                        .collect(),
                )))
            }
            other => Err(AdminError::Corrupt(format!(
                "unknown frame kind {other:#04x}"
            ))),
        }
    }
}
