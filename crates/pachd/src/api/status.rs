//! The one mapping from errors to gRPC statuses. Every library error type has
//! a `kind()` with no catch-all arm, so a new variant must be given its kind
//! where it is declared; here each kind gets its code, once. Messages are made
//! safe to show: control characters are escaped (a name cannot drive the
//! user's terminal) and long messages are cut (a message that echoes a large
//! input still fits in a response's headers).
//!
//! [`SafeStatusLayer`] applies the same to every status pachd sends, also
//! those made elsewhere (by tonic itself, or a service that built its own):
//! it rewrites the `grpc-message` of response headers and trailers.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use pach_pfs::ErrorKind;
use tonic::{Code, Status};

/// The longest message a status carries, in bytes.
pub(crate) const MAX_MESSAGE: usize = 4096;

/// An error that knows how clients should see it.
pub(crate) trait ApiError: std::fmt::Display {
    fn kind(&self) -> ErrorKind;
}

impl ApiError for pach_pfs::PfsError {
    fn kind(&self) -> ErrorKind {
        pach_pfs::PfsError::kind(self)
    }
}

impl ApiError for pach_admin::AdminError {
    fn kind(&self) -> ErrorKind {
        pach_admin::AdminError::kind(self)
    }
}

impl ApiError for pach_pps::PpsError {
    fn kind(&self) -> ErrorKind {
        pach_pps::PpsError::kind(self)
    }
}

/// The status for an error.
pub(crate) fn status<E: ApiError>(e: E) -> Status {
    status_of(e.kind(), &e.to_string())
}

/// The status for an error of `kind` with `message`.
pub(crate) fn status_of(kind: ErrorKind, message: &str) -> Status {
    let code = match kind {
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Internal => Code::Internal,
    };
    let message = safe_message(message);
    if code == Code::Internal {
        tracing::error!(error = %message, "internal error");
    }
    Status::new(code, message)
}

/// `message` with control characters escaped and cut to at most
/// [`MAX_MESSAGE`] bytes. A safe message is returned unchanged.
pub(crate) fn safe_message(message: &str) -> String {
    // Room for the note saying how much was cut.
    const KEEP: usize = MAX_MESSAGE - 64;
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE));
    for c in message.chars() {
        if c.is_control() && c != '\n' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if out.len() <= MAX_MESSAGE {
        return out;
    }
    let mut end = KEEP;
    while !out.is_char_boundary(end) {
        end -= 1;
    }
    let cut = out.len() - end;
    out.truncate(end);
    out.push_str(&format!(" … ({cut} more bytes cut)"));
    out
}

/// Makes the status message of a response's headers or trailers safe.
fn make_safe(headers: &mut HeaderMap) {
    let Some(value) = headers.get("grpc-message") else {
        return;
    };
    let message = percent_decode(value.as_bytes());
    let safe = safe_message(&message);
    if safe == message {
        return;
    }
    if let Ok(v) = http::HeaderValue::from_bytes(percent_encode(&safe).as_bytes()) {
        headers.insert("grpc-message", v);
    }
}

/// gRPC's percent-decoding of `grpc-message` (invalid UTF-8 replaced).
fn percent_decode(encoded: &[u8]) -> String {
    let mut out = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while i < encoded.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if encoded[i] == b'%'
            && let (Some(&a), Some(&b)) = (encoded.get(i + 1), encoded.get(i + 2))
            && let (Some(a), Some(b)) = (hex(a), hex(b))
        {
            out.push((a * 16 + b) as u8);
            i += 3;
            continue;
        }
        out.push(encoded[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// gRPC's percent-encoding of `grpc-message`: every byte outside printable
/// ASCII, and `%`.
fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for &b in message.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The layer that passes every response of the server through [`make_safe`].
#[derive(Clone, Copy, Default)]
pub(crate) struct SafeStatusLayer;

impl<S> tower_layer::Layer<S> for SafeStatusLayer {
    type Service = SafeStatus<S>;

    fn layer(&self, inner: S) -> SafeStatus<S> {
        SafeStatus { inner }
    }
}

#[derive(Clone)]
pub(crate) struct SafeStatus<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, Req, B> tower_service::Service<Req> for SafeStatus<S>
where
    S: tower_service::Service<Req, Response = http::Response<B>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let response = self.inner.call(request);
        Box::pin(async move {
            let (mut parts, body) = response.await?.into_parts();
            // A call that fails at once carries its status in the headers.
            make_safe(&mut parts.headers);
            let body = tonic::body::Body::new(SafeTrailers {
                inner: Box::pin(body),
            });
            Ok(http::Response::from_parts(parts, body))
        })
    }
}

/// A response body whose trailers (where a streamed call's status is) go
/// through [`make_safe`].
struct SafeTrailers<B> {
    inner: Pin<Box<B>>,
}

impl<B: http_body::Body<Data = Bytes>> http_body::Body for SafeTrailers<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, B::Error>>> {
        let polled = self.inner.as_mut().poll_frame(cx);
        if let Poll::Ready(Some(Ok(mut frame))) = polled {
            if let Some(trailers) = frame.trailers_mut() {
                make_safe(trailers);
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            safe_message("repo '\u{1b}[31mx' not found"),
            "repo '\\u{1b}[31mx' not found"
        );
        assert_eq!(safe_message("a\nb\tc"), "a\nb\\tc");
    }

    #[test]
    fn long_messages_are_cut() {
        let long = "x".repeat(100_000);
        let cut = safe_message(&long);
        assert!(cut.len() <= MAX_MESSAGE, "{}", cut.len());
        assert!(
            cut.ends_with("(95968 more bytes cut)"),
            "{}",
            &cut[cut.len() - 40..]
        );
        // Safe messages pass unchanged, so making one safe twice is harmless.
        assert_eq!(safe_message(&cut), cut);
        let wide = "é".repeat(10_000);
        let cut = safe_message(&wide);
        assert!(cut.len() <= MAX_MESSAGE && cut.starts_with("éé"));
    }

    #[test]
    fn headers_and_trailers_are_made_safe() {
        let long = format!("repo '{}' not found", "\u{1b}".repeat(20_000));
        let mut headers = HeaderMap::new();
        headers.insert(
            "grpc-message",
            http::HeaderValue::from_str(&percent_encode(&long)).unwrap(),
        );
        make_safe(&mut headers);
        let sent = headers["grpc-message"].as_bytes();
        assert!(sent.len() <= MAX_MESSAGE, "{}", sent.len());
        let message = percent_decode(sent);
        assert!(message.starts_with("repo '\\u{1b}"), "{message}");
        assert!(!message.contains('\u{1b}'));
        // A safe message is left as it was sent.
        let mut headers = HeaderMap::new();
        headers.insert(
            "grpc-message",
            http::HeaderValue::from_static("caf%C3%A9 100%25"),
        );
        make_safe(&mut headers);
        assert_eq!(headers["grpc-message"], "caf%C3%A9 100%25");
        assert_eq!(percent_decode(b"caf%C3%A9 100%25"), "café 100%");
    }
}
