//! Pachyderm's extract framing: a snappy framing-format stream whose
//! decompressed bytes are `admin.Op` messages, each after its length as an
//! 8-byte little-endian integer (Pachyderm's `pbutil` writer). The whole
//! framing has no header of its own and no trailer: what can be checked is
//! every snappy chunk's CRC-32C, every length, and that the stream ends
//! exactly at an op's end.

use std::io::Read;

use pach_api::admin;
use prost::Message;

use crate::error::{AdminError, Result};

/// The snappy framing format's stream identifier chunk, with which every
/// Pachyderm extract file begins (`pachctl extract > f`, `--url`).
pub const SNAPPY_MAGIC: &[u8] = b"\xff\x06\x00\x00sNaPpY";

/// Whether `prefix` (a stream's first bytes) begins a Pachyderm extract.
pub fn is_pachyderm_stream(prefix: &[u8]) -> bool {
    prefix.starts_with(SNAPPY_MAGIC)
}

/// The largest op accepted. Pachyderm writes objects and blocks in pieces of
/// at most half its gRPC message limit (20 MiB), and every other op is far
/// smaller; a length beyond this is damage, not data.
pub const MAX_OP_BYTES: u64 = 64 << 20;

/// Counts the bytes read from the file, so that errors can say where.
struct Counting<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// Reads the ops of one Pachyderm extract file, in order.
pub struct OpReader<R: Read> {
    decoder: snap::read::FrameDecoder<Counting<R>>,
    /// Ops read so far.
    ops: u64,
    /// Decompressed bytes read so far.
    offset: u64,
    buf: Vec<u8>,
}

/// Where an op was in its stream, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpPosition {
    /// 1 for the stream's first op.
    pub number: u64,
    /// Offset of the op's length in the decompressed stream.
    pub offset: u64,
}

impl std::fmt::Display for OpPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "op {} (at byte {} of the decompressed stream)",
            self.number, self.offset
        )
    }
}

impl<R: Read> OpReader<R> {
    pub fn new(file: R) -> Self {
        OpReader {
            decoder: snap::read::FrameDecoder::new(Counting {
                inner: file,
                read: 0,
            }),
            ops: 0,
            offset: 0,
            buf: Vec::new(),
        }
    }

    /// The next op and where it was; `None` at the stream's clean end.
    pub fn next_op(&mut self) -> Result<Option<(OpPosition, admin::Op)>> {
        let at = OpPosition {
            number: self.ops + 1,
            offset: self.offset,
        };
        let mut len = [0u8; 8];
        let got = self.fill(&mut len, at, "its length")?;
        if got == 0 {
            return Ok(None);
        }
        if got < len.len() {
            return Err(self.truncated(at, "inside its length"));
        }
        let declared = i64::from_le_bytes(len);
        let size = u64::try_from(declared).ok().filter(|n| *n <= MAX_OP_BYTES);
        let Some(size) = size else {
            return Err(AdminError::Corrupt(format!(
                "{at} declares a length of {declared} bytes (at most {MAX_OP_BYTES} is possible), around byte {} of the file",
                self.file_offset()
            )));
        };
        self.buf.resize(size as usize, 0);
        let mut buf = std::mem::take(&mut self.buf);
        let got = self.fill(&mut buf, at, "its message")?;
        if got < buf.len() {
            self.buf = buf;
            return Err(self.truncated(at, &format!("after {got} of its {size} bytes")));
        }
        let op = admin::Op::decode(&buf[..]).map_err(|e| {
            AdminError::Corrupt(format!(
                "{at} is not an admin.Op message ({e}), around byte {} of the file",
                self.file_offset()
            ))
        });
        self.buf = buf;
        self.ops += 1;
        Ok(Some((at, op?)))
    }

    /// Ops read so far.
    pub fn ops(&self) -> u64 {
        self.ops
    }

    fn file_offset(&self) -> u64 {
        self.decoder.get_ref().read
    }

    fn truncated(&self, at: OpPosition, where_: &str) -> AdminError {
        AdminError::Truncated(format!(
            "the stream ends {where_} of {at}, at byte {} of the file",
            self.file_offset()
        ))
    }

    /// Reads until `buf` is full or the stream ends; returns the bytes read.
    fn fill(&mut self, buf: &mut [u8], at: OpPosition, what: &str) -> Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.decoder.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => {
                    got += n;
                    self.offset += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(
                        self.truncated(at, &format!("inside a snappy chunk, reading {what}"))
                    );
                }
                Err(e) => {
                    return Err(AdminError::Corrupt(format!(
                        "the snappy framing is damaged around byte {} of the file, reading {what} of {at}: {e}",
                        self.file_offset()
                    )));
                }
            }
        }
        Ok(got)
    }
}

/// Writes ops as Pachyderm's extract does: each after its 8-byte
/// little-endian length, the whole snappy-framed.
pub struct OpWriter<W: std::io::Write> {
    encoder: snap::write::FrameEncoder<W>,
}

impl<W: std::io::Write> OpWriter<W> {
    pub fn new(out: W) -> Self {
        OpWriter {
            encoder: snap::write::FrameEncoder::new(out),
        }
    }

    pub fn write(&mut self, op: &admin::Op) -> std::io::Result<()> {
        use std::io::Write;
        let bytes = op.encode_to_vec();
        self.encoder
            .write_all(&(bytes.len() as i64).to_le_bytes())?;
        self.encoder.write_all(&bytes)
    }

    /// Flushes the last chunk and returns the output.
    pub fn finish(self) -> std::io::Result<W> {
        self.encoder.into_inner().map_err(|e| e.into_error())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SORT_METADATA: &[u8] =
        include_bytes!("../../../../tests/golden/pachyderm-1.7/sort.metadata");

    /// Reads every op; the count read, or the error.
    fn read_all(bytes: &[u8]) -> Result<u64> {
        let mut r = OpReader::new(bytes);
        while r.next_op()?.is_some() {}
        Ok(r.ops())
    }

    #[test]
    fn the_fixture_holds_360_ops() {
        assert_eq!(read_all(SORT_METADATA).unwrap(), 360);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever the bytes after the stream identifier, the reader
        /// answers ops or an error, never a panic or an endless loop.
        #[test]
        fn arbitrary_streams_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let mut bytes = SNAPPY_MAGIC.to_vec();
            bytes.extend_from_slice(&tail);
            let _ = read_all(&bytes);
        }

        /// A copy of Pachyderm's extract with one byte changed anywhere past
        /// the stream identifier is refused (every snappy chunk is
        /// checksummed), with the place named.
        #[test]
        fn any_flipped_byte_of_the_fixture_is_refused(at in SNAPPY_MAGIC.len()..SORT_METADATA.len(), bit in 0u8..8) {
            let mut bytes = SORT_METADATA.to_vec();
            bytes[at] ^= 1 << bit;
            let err = read_all(&bytes);
            prop_assert!(err.is_err(), "flip at {at} bit {bit} was read whole");
            let text = err.unwrap_err().to_string();
            prop_assert!(text.contains("byte"), "{text}");
        }

        /// Any cut that is not at the end is reported as a truncation or as
        /// damage, unless it falls between two chunks and two ops.
        #[test]
        fn cut_copies_of_the_fixture_never_panic(len in 0..SORT_METADATA.len()) {
            match read_all(&SORT_METADATA[..len]) {
                Ok(n) => prop_assert!(n < 360),
                Err(AdminError::Truncated(_) | AdminError::Corrupt(_)) => {}
                Err(e) => prop_assert!(false, "unexpected error {e}"),
            }
        }

        #[test]
        fn arbitrary_trees_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = crate::pachyderm::hashtree::parse_1_7(&bytes);
            let _ = crate::pachyderm::hashtree::parse_1_9(&bytes);
        }
    }
}
