//! Request bodies: object content streamed into content storage as it
//! arrives (never buffered whole: a 5 GiB part goes through in chunks), with
//! the aws-chunked framing that streaming signers and checksum trailers use
//! removed, the announced lengths checked, `Content-MD5` and additional
//! checksums ([`crate::checksum`], from a header or a trailer) verified; and
//! small XML documents read whole under a size limit.

use axum::body::Body;
use axum::http::HeaderMap;
use bytes::{Buf, Bytes, BytesMut};
use futures::StreamExt;
use md5::{Digest, Md5};
use pach_storage::{FileEntry, PutSession};

use crate::checksum::Announced;
use crate::error::{Result, S3Error};
use crate::sigv4::{BodyHash, ChunkSigner, Payload, chunk_context};

/// Request documents (XML) are small; this bounds what is read of them.
const MAX_DOCUMENT: usize = 2 * 1024 * 1024;

/// Whether the body is aws-chunked (streaming signature or trailers): a
/// streaming `x-amz-content-sha256`, or `Content-Encoding: aws-chunked`
/// with the decoded length. A Content-Encoding naming aws-chunked alone
/// does not make a body chunked (S3 serves the object without it).
fn is_aws_chunked(headers: &HeaderMap) -> bool {
    let sha = headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    sha.starts_with("STREAMING-")
        || (headers.contains_key("x-amz-decoded-content-length")
            && headers
                .get(axum::http::header::CONTENT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|e| e.trim() == "aws-chunked")))
}

fn header_u64(headers: &HeaderMap, name: &str) -> Result<Option<u64>> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| S3Error::InvalidArgument(format!("{name} is not a number"))),
    }
}

/// The MD5 the client announced, if any.
fn content_md5(headers: &HeaderMap) -> Result<Option<[u8; 16]>> {
    let Some(v) = headers.get("content-md5") else {
        return Ok(None);
    };
    let decoded = v
        .to_str()
        .ok()
        .and_then(|s| base64_decode(s.trim()))
        .ok_or(S3Error::InvalidDigest)?;
    let digest: [u8; 16] = decoded.try_into().map_err(|_| S3Error::InvalidDigest)?;
    Ok(Some(digest))
}

/// A stored body: its file entry (valid once the session is finished) and
/// its checksum (base64), when one was announced.
pub(crate) struct Stored {
    pub(crate) entry: FileEntry,
    pub(crate) checksum: Option<String>,
}

/// Streams the body of a PUT into `session` as the open file, and ends the
/// file. `payload` is what the request's signature says of the body: it is
/// checked as the body arrives (each signed chunk) and at its end (the
/// signed SHA-256). `checksum`, the checksum announced, is computed as the
/// body arrives and compared at its end (BadDigest: the caller writes
/// nothing).
pub(crate) async fn store_body(
    headers: &HeaderMap,
    payload: Payload,
    body: Body,
    session: &mut PutSession,
    (path, previous): (String, Option<FileEntry>),
    checksum: Option<&Announced>,
) -> Result<Stored> {
    let chunked = is_aws_chunked(headers);
    let expected = if chunked {
        header_u64(headers, "x-amz-decoded-content-length")?
    } else {
        header_u64(headers, "content-length")?
    };
    let want_md5 = content_md5(headers)?;
    let mut md5 = want_md5.map(|_| Md5::new());
    let mut hasher = checksum.map(Announced::hasher);
    let (mut decoder, mut body_hash) = decoding(chunked, payload)?;
    let mut received: u64 = 0;
    session.begin_file(path, previous);
    let mut stream = body.into_data_stream();
    while let Some(frame) = stream.next().await {
        let frame = frame.map_err(|e| S3Error::IncompleteBody(e.to_string()))?;
        let pieces = match &mut decoder {
            Some(d) => d.push(frame)?,
            None => vec![frame],
        };
        for piece in pieces {
            received += piece.len() as u64;
            if let Some(m) = &mut md5 {
                m.update(&piece);
            }
            if let Some(h) = &mut hasher {
                h.update(&piece);
            }
            if let Some(h) = &mut body_hash {
                h.update(&piece);
            }
            session.write(&piece).await?;
        }
    }
    if let Some(d) = &decoder {
        d.finish()?;
    }
    if let Some(expected) = expected
        && expected != received
    {
        return Err(S3Error::IncompleteBody(format!(
            "{received} bytes received, {expected} announced"
        )));
    }
    if let Some(h) = body_hash {
        h.check()?;
    }
    if let (Some(want), Some(m)) = (want_md5, md5) {
        let got: [u8; 16] = m.finalize().into();
        if got != want {
            return Err(S3Error::BadDigest);
        }
    }
    let checksum = match (checksum, hasher) {
        (Some(announced), Some(h)) => {
            let computed = h.finish();
            let trailed = decoder
                .as_ref()
                .and_then(|d| d.trailer(announced.algorithm.header()));
            announced.check(&computed, trailed)?;
            Some(computed)
        }
        _ => None,
    };
    Ok(Stored {
        entry: session.end_file().await?,
        checksum,
    })
}

/// How a body is decoded and checked: the aws-chunked decoder (verifying
/// chunk signatures when they were signed), or the SHA-256 to compare.
fn decoding(chunked: bool, payload: Payload) -> Result<(Option<ChunkedDecoder>, Option<BodyHash>)> {
    Ok(match (chunked, payload) {
        (true, Payload::Chunked(signer)) => (Some(ChunkedDecoder::signed(signer)), None),
        (true, Payload::Unchecked) => (Some(ChunkedDecoder::default()), None),
        (false, Payload::Sha256(want)) => (None, Some(BodyHash::new(want))),
        (false, Payload::Unchecked) => (None, None),
        (true, Payload::Sha256(_)) | (false, Payload::Chunked(_)) => {
            return Err(S3Error::InvalidRequest(
                "x-amz-content-sha256 and Content-Encoding disagree on whether the body is aws-chunked".into(),
            ));
        }
    })
}

/// Reads a small request document whole (aws-chunked framing removed),
/// verifying the checksum sent with it when `body_checksum` (not for
/// CompleteMultipartUpload, where `x-amz-checksum-*` are the object's).
pub(crate) async fn read_document(
    headers: &HeaderMap,
    payload: Payload,
    body: Body,
    body_checksum: bool,
) -> Result<Bytes> {
    let announced = match body_checksum {
        true => Announced::of(headers)?,
        false => None,
    };
    let (mut decoder, mut body_hash) = decoding(is_aws_chunked(headers), payload)?;
    let mut out = BytesMut::new();
    let mut stream = body.into_data_stream();
    while let Some(frame) = stream.next().await {
        let frame = frame.map_err(|e| S3Error::IncompleteBody(e.to_string()))?;
        let pieces = match &mut decoder {
            Some(d) => d.push(frame)?,
            None => vec![frame],
        };
        for p in pieces {
            if let Some(h) = &mut body_hash {
                h.update(&p);
            }
            out.extend_from_slice(&p);
        }
        if out.len() > MAX_DOCUMENT {
            return Err(S3Error::MalformedXml {
                reason: format!("the document is larger than {MAX_DOCUMENT} bytes"),
            });
        }
    }
    if let Some(d) = &decoder {
        d.finish()?;
    }
    if let Some(h) = body_hash {
        h.check()?;
    }
    if let Some(want) = content_md5(headers)? {
        let got: [u8; 16] = Md5::digest(&out).into();
        if got != want {
            return Err(S3Error::BadDigest);
        }
    }
    if let Some(a) = announced {
        let trailed = decoder
            .as_ref()
            .and_then(|d| d.trailer(a.algorithm.header()));
        a.check(&a.algorithm.of(&out), trailed)?;
    }
    Ok(out.freeze())
}

/// Removes aws-chunked framing: `<hex size>[;chunk-signature=..]\r\n<data>\r\n`
/// repeated, a zero-size chunk, then optional trailer lines and `\r\n`.
/// Data is passed on as slices of the input, without copying. A signed
/// body's chunk signatures are verified as each chunk ends; trailers (the
/// checksums some clients send) are kept, to be compared with the body's.
#[derive(Default)]
struct ChunkedDecoder {
    pending: BytesMut,
    state: ChunkState,
    signed: Option<SignedChunks>,
    /// The trailer lines, name (lower case) and value.
    trailers: Vec<(String, String)>,
}

/// The state of chunk signature verification.
struct SignedChunks {
    signer: Box<ChunkSigner>,
    /// SHA-256 of the current chunk's data so far.
    hash: ring::digest::Context,
    /// The current chunk's signature, from its header line.
    signature: String,
}

#[derive(Default, Debug, PartialEq, Eq)]
enum ChunkState {
    /// Expecting a chunk header line.
    #[default]
    Header,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// Expecting the `\r\n` after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailer,
    Done,
}

/// Chunk header lines are short; a longer one is not aws-chunked.
const MAX_LINE: usize = 4096;

impl ChunkedDecoder {
    fn signed(signer: Box<ChunkSigner>) -> ChunkedDecoder {
        ChunkedDecoder {
            signed: Some(SignedChunks {
                signer,
                hash: chunk_context(),
                signature: String::new(),
            }),
            ..ChunkedDecoder::default()
        }
    }

    /// The current chunk has ended: its signature must hold.
    fn chunk_ended(&mut self) -> Result<()> {
        if let Some(s) = &mut self.signed {
            let hash = std::mem::replace(&mut s.hash, chunk_context()).finish();
            s.signer.verify_chunk(hash.as_ref(), &s.signature)?;
        }
        Ok(())
    }

    fn push(&mut self, input: Bytes) -> Result<Vec<Bytes>> {
        let bad = |why: &str| S3Error::IncompleteBody(format!("malformed aws-chunked body: {why}"));
        let mut out = Vec::new();
        let mut input = input;
        loop {
            match self.state {
                ChunkState::Data(left) => {
                    // Data straight from the input when nothing is pending.
                    let piece = if !self.pending.is_empty() {
                        let n = (left as usize).min(self.pending.len());
                        self.pending.split_to(n).freeze()
                    } else if input.is_empty() {
                        return Ok(out);
                    } else {
                        let n = (left as usize).min(input.len());
                        input.split_to(n)
                    };
                    if let Some(s) = &mut self.signed {
                        s.hash.update(&piece);
                    }
                    self.state = next_data(left - piece.len() as u64);
                    out.push(piece);
                    if self.state == ChunkState::DataEnd {
                        self.chunk_ended()?;
                    }
                }
                ChunkState::Done => {
                    if !input.is_empty() || !self.pending.is_empty() {
                        return Err(bad("bytes after the final chunk"));
                    }
                    return Ok(out);
                }
                _ => {
                    if !input.is_empty() {
                        self.pending.extend_from_slice(&input);
                        input = Bytes::new();
                    }
                    let Some(end) = self.pending.windows(2).position(|w| w == b"\r\n") else {
                        if self.pending.len() > MAX_LINE {
                            return Err(bad("a line is too long"));
                        }
                        return Ok(out);
                    };
                    let line = self.pending.split_to(end);
                    self.pending.advance(2);
                    let line = std::str::from_utf8(&line).map_err(|_| bad("a line is not text"))?;
                    self.state = match self.state {
                        ChunkState::Header => {
                            let mut fields = line.split(';');
                            let size = fields.next().unwrap_or("").trim();
                            let size = u64::from_str_radix(size, 16)
                                .map_err(|_| bad("a chunk size is not hexadecimal"))?;
                            if let Some(s) = &mut self.signed {
                                s.signature = fields
                                    .find_map(|f| f.trim().strip_prefix("chunk-signature="))
                                    .ok_or_else(|| {
                                        S3Error::SignatureDoesNotMatch(
                                            "a chunk of the signed aws-chunked body has no chunk-signature".into(),
                                        )
                                    })?
                                    .to_string();
                            }
                            if size == 0 {
                                self.chunk_ended()?;
                                ChunkState::Trailer
                            } else {
                                ChunkState::Data(size)
                            }
                        }
                        ChunkState::DataEnd => {
                            if !line.is_empty() {
                                return Err(bad("a chunk is longer than its size"));
                            }
                            ChunkState::Header
                        }
                        _ => {
                            if line.is_empty() {
                                ChunkState::Done
                            } else {
                                if let Some((name, value)) = line.split_once(':') {
                                    self.trailers.push((
                                        name.trim().to_ascii_lowercase(),
                                        value.trim().to_string(),
                                    ));
                                }
                                ChunkState::Trailer
                            }
                        }
                    };
                }
            }
        }
    }

    /// The value of the trailer `name` (lower case), if it came.
    fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn finish(&self) -> Result<()> {
        match self.state {
            // Some clients end after the zero chunk without the final CRLF.
            ChunkState::Done | ChunkState::Trailer if self.pending.is_empty() => Ok(()),
            _ => Err(S3Error::IncompleteBody(
                "the aws-chunked body ended inside a chunk".into(),
            )),
        }
    }
}

fn next_data(left: u64) -> ChunkState {
    if left == 0 {
        ChunkState::DataEnd
    } else {
        ChunkState::Data(left)
    }
}

/// Standard base64 with padding (what Content-MD5 carries).
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(body: &[u8], piece: usize) -> Result<Vec<u8>> {
        let mut d = ChunkedDecoder::default();
        let mut out = Vec::new();
        for p in body.chunks(piece) {
            for b in d.push(Bytes::copy_from_slice(p))? {
                out.extend_from_slice(&b);
            }
        }
        d.finish()?;
        Ok(out)
    }

    #[test]
    fn decodes_aws_chunked_bodies_split_anywhere() {
        let body = b"5;chunk-signature=abc\r\nhello\r\n6;chunk-signature=def\r\n world\r\n0;chunk-signature=0\r\nx-amz-checksum-crc32:AAAA\r\n\r\n";
        for piece in [1, 2, 3, 7, 1000] {
            assert_eq!(
                decode_in_pieces(body, piece).unwrap(),
                b"hello world",
                "{piece}"
            );
        }
        let mut d = ChunkedDecoder::default();
        d.push(Bytes::copy_from_slice(body)).unwrap();
        assert_eq!(d.trailer("x-amz-checksum-crc32"), Some("AAAA"));
        assert_eq!(d.trailer("x-amz-checksum-sha1"), None);
        let unsigned = b"3\r\nabc\r\n0\r\n\r\n";
        assert_eq!(decode_in_pieces(unsigned, 1).unwrap(), b"abc");
    }

    /// AWS's published chunked upload (66560 bytes of `a` in chunks of
    /// 65536, 1024 and 0), its chunk signatures verified as the body is
    /// decoded in pieces of any size; a changed byte is refused.
    #[test]
    fn verifies_the_chunk_signatures_of_aws_example() {
        use crate::auth::Wire;
        use std::time::{Duration, UNIX_EPOCH};
        let signed = "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class";
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("host", "s3.amazonaws.com".to_string()),
            ("x-amz-date", "20130524T000000Z".into()),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY".into()),
            (
                "x-amz-content-sha256",
                "STREAMING-AWS4-HMAC-SHA256-PAYLOAD".into(),
            ),
            ("content-encoding", "aws-chunked".into()),
            ("x-amz-decoded-content-length", "66560".into()),
            ("content-length", "66824".into()),
            (
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders={signed},Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
                ),
            ),
        ] {
            h.insert(k, v.parse().unwrap());
        }
        let signer = || {
            let wire = Wire {
                method: "PUT",
                path: "/examplebucket/chunkObject.txt",
                query: "",
                headers: &h,
            };
            match crate::sigv4::verify_v4(
                &wire,
                &[],
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                false,
                UNIX_EPOCH + Duration::from_secs(1_369_353_600),
            ) {
                Ok(Payload::Chunked(s)) => s,
                _ => panic!("the example's seed signature does not verify"),
            }
        };
        let mut body = Vec::new();
        for (size, sig) in [
            (
                65536,
                "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
            ),
            (
                1024,
                "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
            ),
            (
                0,
                "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
            ),
        ] {
            body.extend_from_slice(format!("{size:x};chunk-signature={sig}\r\n").as_bytes());
            body.extend(std::iter::repeat_n(b'a', size));
            body.extend_from_slice(b"\r\n");
        }
        assert_eq!(body.len(), 66824);
        let decode = |body: &[u8], piece: usize| -> Result<usize> {
            let mut d = ChunkedDecoder::signed(signer());
            let mut n = 0;
            for p in body.chunks(piece) {
                n += d
                    .push(Bytes::copy_from_slice(p))?
                    .iter()
                    .map(|b| b.len())
                    .sum::<usize>();
            }
            d.finish()?;
            Ok(n)
        };
        for piece in [1000, 7, 65536, 100_000] {
            assert_eq!(decode(&body, piece).unwrap(), 66560, "{piece}");
        }
        let mut corrupt = body.clone();
        corrupt[66000] = b'b';
        assert!(matches!(
            decode(&corrupt, 4096),
            Err(S3Error::SignatureDoesNotMatch(_))
        ));
        // Signed chunks without signatures are refused too.
        assert!(decode(b"3\r\nabc\r\n0\r\n\r\n", 100).is_err());
    }

    #[test]
    fn refuses_broken_framing() {
        for bad in [
            &b"zz\r\nabc\r\n0\r\n\r\n"[..],
            b"3\r\nabcd\r\n0\r\n\r\n",
            b"5\r\nabc",
            b"3\r\nabc\r\n0\r\n\r\nextra",
        ] {
            assert!(
                decode_in_pieces(bad, 2).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn base64() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("a*b").is_none());
    }
}
