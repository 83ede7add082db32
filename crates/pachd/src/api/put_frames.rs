//! PutFile's large content messages, split while they arrive.
//!
//! gRPC hands a server a message only once all of it has arrived, so a
//! client that sends a file in large messages (python-pachyderm sends 20 MiB
//! each) leaves pachd idle while each one crosses the connection, and the
//! last one is stored only after the client has finished sending. This layer
//! rewrites the request body of `pfs.API/PutFile` below gRPC's framing: a
//! large message that holds nothing but content (`PutFileRequest.value`, the
//! form of every message after a file's first) is passed on as several
//! content-only messages of about [`PIECE`] bytes each, as soon as each
//! piece's bytes are in. Content-only messages append to the file being put,
//! so the split changes nothing a client can see; any other message (one
//! naming a file, with options, compressed, or small) is passed on unchanged.
//! No byte of content is copied: a piece is the received buffers themselves,
//! behind a new message head.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame};
use tonic::Status;

/// The method whose request body is rewritten.
const PUT_FILE: &str = "/pfs.API/PutFile";
/// Messages larger than this are split (pachctl's 1 MiB messages are not).
const SPLIT_ABOVE: usize = 2 * 1024 * 1024;
/// The content a split message carries, at least (the last of a message
/// carries what is left).
const PIECE: usize = 1024 * 1024;
/// `PutFileRequest.value`: field 3, length-delimited.
const VALUE_TAG: u8 = (3 << 3) | 2;
/// A gRPC message head: a compression flag and a big-endian length.
const HEAD: usize = 5;
/// The longest varint.
const MAX_VARINT: usize = 10;

/// Applies [`SplitContent`] to PutFile's requests.
#[derive(Clone, Copy, Default)]
pub(crate) struct SplitPutFileLayer;

impl<S> tower_layer::Layer<S> for SplitPutFileLayer {
    type Service = SplitPutFile<S>;

    fn layer(&self, inner: S) -> SplitPutFile<S> {
        SplitPutFile { inner }
    }
}

#[derive(Clone)]
pub(crate) struct SplitPutFile<S> {
    inner: S,
}

impl<S> tower_service::Service<http::Request<tonic::body::Body>> for SplitPutFile<S>
where
    S: tower_service::Service<http::Request<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> S::Future {
        if request.uri().path() != PUT_FILE {
            return self.inner.call(request);
        }
        let (parts, body) = request.into_parts();
        let body = tonic::body::Body::new(SplitContent::new(body));
        self.inner.call(http::Request::from_parts(parts, body))
    }
}

/// Where the reader is in the stream of gRPC messages.
enum State {
    /// Reading a message's head (`have` of its [`HEAD`] bytes so far).
    Head { head: [u8; HEAD], have: usize },
    /// Reading the start of a large message, to tell whether it holds
    /// content only: its head, and what has arrived of it so far.
    Peek { head: [u8; HEAD], start: Vec<u8> },
    /// Passing on a message unchanged: `left` bytes of it to go.
    Pass { left: usize },
    /// Splitting a content-only message: `left` bytes of content to go.
    Content { left: usize },
}

/// A PutFile request body with its large content-only messages split.
pub(crate) struct SplitContent<B> {
    inner: Pin<Box<B>>,
    state: State,
    /// Content received but not yet passed on (less than a piece).
    pending: Vec<Bytes>,
    pending_len: usize,
    /// Frames ready to be passed on.
    out: VecDeque<Bytes>,
    /// The inner body has ended (or failed; its error was passed on).
    done: bool,
}

impl<B> SplitContent<B> {
    pub(crate) fn new(inner: B) -> Self {
        SplitContent {
            inner: Box::pin(inner),
            state: State::Head {
                head: [0; HEAD],
                have: 0,
            },
            pending: Vec::new(),
            pending_len: 0,
            out: VecDeque::new(),
            done: false,
        }
    }

    /// Reads `data`, queueing what is ready to pass on.
    fn read(&mut self, mut data: Bytes) {
        while !data.is_empty() {
            match &mut self.state {
                State::Head { head, have } => {
                    let n = (HEAD - *have).min(data.len());
                    head[*have..*have + n].copy_from_slice(&data[..n]);
                    *have += n;
                    data.advance(n);
                    if *have < HEAD {
                        continue;
                    }
                    let head = *head;
                    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
                    if head[0] == 0 && len > SPLIT_ABOVE {
                        self.state = State::Peek {
                            head,
                            start: Vec::with_capacity(1 + MAX_VARINT),
                        };
                    } else {
                        self.out.push_back(Bytes::copy_from_slice(&head));
                        self.state = State::Pass { left: len };
                        self.message_done_if_empty();
                    }
                }
                State::Peek { head, start } => {
                    let n = (1 + MAX_VARINT - start.len()).min(data.len());
                    start.extend_from_slice(&data[..n]);
                    data.advance(n);
                    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
                    match content_only(start, len) {
                        Peeked::NeedMore => {}
                        Peeked::Content { field_head } => {
                            let rest = Bytes::copy_from_slice(&start[field_head..]);
                            self.state = State::Content {
                                left: len - field_head,
                            };
                            self.content(rest);
                        }
                        Peeked::Other => {
                            let (head, start) = (*head, std::mem::take(start));
                            self.out.push_back(Bytes::copy_from_slice(&head));
                            self.state = State::Pass {
                                left: len - start.len(),
                            };
                            self.out.push_back(start.into());
                        }
                    }
                }
                State::Pass { left } => {
                    let n = (*left).min(data.len());
                    *left -= n;
                    self.out.push_back(data.split_to(n));
                    self.message_done_if_empty();
                }
                State::Content { left } => {
                    let n = (*left).min(data.len());
                    let piece = data.split_to(n);
                    self.content(piece);
                }
            }
        }
    }

    /// Takes `piece` of the content being split; passes on a message once a
    /// piece's worth is in, or the content has ended.
    fn content(&mut self, piece: Bytes) {
        let State::Content { left } = &mut self.state else {
            unreachable!("content outside a content-only message");
        };
        *left -= piece.len();
        let ended = *left == 0;
        self.pending_len += piece.len();
        if !piece.is_empty() {
            self.pending.push(piece);
        }
        if self.pending_len >= PIECE || (ended && self.pending_len > 0) {
            self.out.push_back(content_head(self.pending_len));
            self.out.extend(self.pending.drain(..));
            self.pending_len = 0;
        }
        if ended {
            self.state = State::Head {
                head: [0; HEAD],
                have: 0,
            };
        }
    }

    fn message_done_if_empty(&mut self) {
        if let State::Pass { left: 0 } = self.state {
            self.state = State::Head {
                head: [0; HEAD],
                have: 0,
            };
        }
    }

    /// Whether the stream stopped between messages.
    fn at_boundary(&self) -> bool {
        matches!(self.state, State::Head { have: 0, .. })
    }
}

enum Peeked {
    NeedMore,
    /// The message is `value` alone; its content starts after `field_head`
    /// bytes (the tag and the length).
    Content {
        field_head: usize,
    },
    Other,
}

/// Whether a message of `len` bytes starting with `start` holds only
/// `PutFileRequest.value`.
fn content_only(start: &[u8], len: usize) -> Peeked {
    let Some(&tag) = start.first() else {
        return Peeked::NeedMore;
    };
    if tag != VALUE_TAG {
        return Peeked::Other;
    }
    let mut value_len: u64 = 0;
    for (i, &b) in start[1..].iter().enumerate().take(MAX_VARINT) {
        value_len |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let field_head = 2 + i;
            return if value_len == (len - field_head) as u64 {
                Peeked::Content { field_head }
            } else {
                Peeked::Other
            };
        }
    }
    if start.len() > MAX_VARINT {
        Peeked::Other
    } else {
        Peeked::NeedMore
    }
}

/// The head of a content-only message carrying `n` bytes of content: gRPC's
/// message head, then `value`'s tag and length.
fn content_head(n: usize) -> Bytes {
    use prost::encoding::{encode_varint, encoded_len_varint};
    let field_head = 1 + encoded_len_varint(n as u64);
    let mut head = Vec::with_capacity(HEAD + field_head);
    head.push(0);
    head.extend_from_slice(&((field_head + n) as u32).to_be_bytes());
    head.push(VALUE_TAG);
    encode_varint(n as u64, &mut head);
    head.into()
}

impl<B> Body for SplitContent<B>
where
    B: Body<Data = Bytes, Error = Status>,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        loop {
            if let Some(data) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => this.read(data),
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    if !this.at_boundary() {
                        // Content already passed on is followed by an
                        // error, so the put stops and commits nothing.
                        return Poll::Ready(Some(Err(Status::invalid_argument(
                            "the put file stream ended inside a message; nothing was \
                             committed; send the file again",
                        ))));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.out.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use prost::Message;

    /// A body delivering `chunks` as its frames.
    fn body(chunks: Vec<Bytes>) -> impl Body<Data = Bytes, Error = Status> {
        let frames = chunks.into_iter().map(|c| Ok(Frame::data(c)));
        http_body_util::StreamBody::new(futures::stream::iter(frames))
    }

    fn framed(msg: &pach_api::pfs::PutFileRequest) -> Vec<u8> {
        let bytes = msg.encode_to_vec();
        let mut out = vec![0];
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&bytes);
        out
    }

    /// Decodes a stream of gRPC messages.
    fn messages(mut data: &[u8]) -> Vec<pach_api::pfs::PutFileRequest> {
        let mut out = Vec::new();
        while !data.is_empty() {
            assert_eq!(data[0], 0);
            let len = u32::from_be_bytes(data[1..5].try_into().unwrap()) as usize;
            out.push(pach_api::pfs::PutFileRequest::decode(&data[5..5 + len]).unwrap());
            data = &data[5 + len..];
        }
        out
    }

    async fn split(stream: &[u8], chunk: usize) -> Result<Vec<u8>, Status> {
        let chunks = stream
            .chunks(chunk)
            .map(Bytes::copy_from_slice)
            .collect::<Vec<_>>();
        let collected = SplitContent::new(body(chunks)).collect().await?;
        Ok(collected.to_bytes().to_vec())
    }

    fn content(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
    }

    #[tokio::test]
    async fn large_content_messages_are_split_and_others_pass_unchanged() {
        let first = pach_api::pfs::PutFileRequest {
            file: Some(pach_api::pfs::File {
                path: "/big".into(),
                ..Default::default()
            }),
            value: content(3 * 1024 * 1024, 1).into(),
            delimiter: 1,
            ..Default::default()
        };
        let second = pach_api::pfs::PutFileRequest {
            value: content(5 * 1024 * 1024 + 7, 2).into(),
            ..Default::default()
        };
        let small = pach_api::pfs::PutFileRequest {
            value: content(1000, 3).into(),
            ..Default::default()
        };
        let empty = pach_api::pfs::PutFileRequest::default();
        let mut stream = Vec::new();
        for m in [&first, &second, &small, &empty] {
            stream.extend(framed(m));
        }
        // Frame sizes that cut heads, tags and lengths at every offset.
        for chunk in [1, 3, 7, 16 * 1024, 256 * 1024, stream.len()] {
            let out = messages(&split(&stream, chunk).await.unwrap());
            // The file's first message (it names the file) is unchanged.
            assert_eq!(out[0], first, "chunk {chunk}");
            // The content-only message became pieces of at least PIECE bytes
            // (but for the last), unless it arrived whole.
            let pieces = &out[1..out.len() - 2];
            let arrived_whole = chunk == stream.len();
            assert!(
                pieces.len() >= 5 || arrived_whole,
                "chunk {chunk}: {} pieces",
                pieces.len()
            );
            for p in pieces {
                assert!(p.file.is_none() && p.delimiter == 0);
                assert!(p.value.len() >= PIECE || std::ptr::eq(p, pieces.last().unwrap()));
            }
            let joined: Vec<u8> = pieces.iter().flat_map(|p| p.value.to_vec()).collect();
            assert_eq!(joined, second.value, "chunk {chunk}");
            assert_eq!(out[out.len() - 2], small);
            assert_eq!(out[out.len() - 1], empty);
        }
    }

    #[tokio::test]
    async fn a_large_message_with_more_than_content_passes_unchanged() {
        // Content first, then a field: not content alone.
        let late_file = pach_api::pfs::PutFileRequest {
            value: content(3 * 1024 * 1024, 4).into(),
            overwrite_index: Some(pach_api::pfs::OverwriteIndex { index: 0 }),
            ..Default::default()
        };
        let stream = framed(&late_file);
        let out = split(&stream, 64 * 1024).await.unwrap();
        assert_eq!(out, stream);
        // A compressed message is not read at all.
        let mut compressed = stream.clone();
        compressed[0] = 1;
        assert_eq!(split(&compressed, 64 * 1024).await.unwrap(), compressed);
    }

    #[tokio::test]
    async fn a_stream_cut_inside_a_message_fails() {
        let msg = pach_api::pfs::PutFileRequest {
            value: content(4 * 1024 * 1024, 5).into(),
            ..Default::default()
        };
        let stream = framed(&msg);
        let err = split(&stream[..stream.len() - 10], 256 * 1024)
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("nothing was committed"), "{err}");
        // Cut inside a message's head.
        let err = split(&stream[..3], 1).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }
}
