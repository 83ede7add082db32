//! The connections a port accepts, over TLS or not.
//!
//! [`Incoming::new`] runs the accept loop in a task of its own and hands
//! out ready connections. With TLS on, each connection's first byte decides:
//! a TLS handshake record goes through the handshake (in a task of its own,
//! bounded in time); anything else is a client that did not use TLS, and
//! gets an answer in its own protocol ([`refuse_plaintext`]) with the
//! port's message, then the connection is closed. Neither a failed
//! handshake nor a refused client reaches the server that consumes the
//! connections, and neither stops the accept loop.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// How long a client may take to start and finish its TLS handshake, and
/// how long a refused plaintext client is served its explanation.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// What a port tells a client that connected without TLS: given what the
/// client asked for (`Host`/`:authority`, or the port's own address when it
/// sent none), the message.
pub type Refusal = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// One accepted connection, ready for the server's protocol.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        }
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.tcp().local_addr().ok()
    }

    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.tcp().peer_addr().ok()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The ready connections of one port: a stream, as servers consume them.
pub struct Incoming {
    ready: mpsc::Receiver<Conn>,
    local: SocketAddr,
}

impl Incoming {
    /// Starts accepting on `listener`: plain connections when `tls` is
    /// `None`, else TLS ones, plaintext clients being told `refusal`.
    /// Every accepted connection gets TCP_NODELAY (small replies must not
    /// wait for the client's delayed ACK).
    pub fn new(
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        refusal: Refusal,
    ) -> io::Result<Incoming> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        tokio::spawn(accept_loop(listener, acceptor, refusal, tx));
        Ok(Incoming { ready, local })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The next ready connection; `None` once the accept loop has ended.
    pub async fn accept(&mut self) -> Option<Conn> {
        self.ready.recv().await
    }
}

impl futures_core::Stream for Incoming {
    type Item = io::Result<Conn>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().ready.poll_recv(cx).map(|c| c.map(Ok))
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    refusal: Refusal,
    ready: mpsc::Sender<Conn>,
) {
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    loop {
        let accepted = tokio::select! {
            _ = ready.closed() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors, or a connection reset before it was
                // accepted: the port stays open; try again shortly.
                tracing::warn!(address = %local, "accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Some(acceptor) = acceptor.clone() else {
            if ready.send(Conn::Plain(stream)).await.is_err() {
                return;
            }
            continue;
        };
        let ready = ready.clone();
        let refusal = refusal.clone();
        let local = local.clone();
        tokio::spawn(async move {
            let handshake = async {
                let mut first = [0u8; 1];
                match stream.peek(&mut first).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
                if first[0] != crate::TLS_HANDSHAKE_RECORD {
                    tracing::debug!(%peer, "a client connected without TLS; telling it to use TLS");
                    refuse_plaintext(stream, &local, &refusal).await;
                    return None;
                }
                match acceptor.accept(stream).await {
                    Ok(tls) => Some(tls),
                    Err(e) => {
                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                        None
                    }
                }
            };
            if let Ok(Some(tls)) = tokio::time::timeout(HANDSHAKE, handshake).await {
                let _ = ready.send(Conn::Tls(Box::new(tls))).await;
            }
        });
    }
}

/// Answers a client that spoke plaintext to a TLS port, in its protocol: a
/// gRPC error (UNAVAILABLE, with the message) to gRPC calls, a 400 with
/// the message as text to any other HTTP request; then closes.
pub async fn refuse_plaintext(stream: TcpStream, local: &str, refusal: &Refusal) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let local = local.to_string();
    let refusal = refusal.clone();
    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let authority = req
            .uri()
            .authority()
            .map(|a| a.to_string())
            .or_else(|| {
                req.headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| local.clone());
        let message = refusal(&authority);
        let grpc = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|c| c.to_str().ok())
            .is_some_and(|c| c.starts_with("application/grpc"));
        std::future::ready(Ok::<_, std::convert::Infallible>(if grpc {
            grpc_error(&message)
        } else {
            http_error(&message)
        }))
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(HANDSHAKE, conn).await;
}

type Body = http_body_util::Full<Bytes>;

/// A gRPC "trailers-only" error response.
fn grpc_error(message: &str) -> http::Response<Body> {
    let mut response = http::Response::new(Body::default());
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    // 14: UNAVAILABLE — this connection cannot serve the call.
    headers.insert("grpc-status", http::HeaderValue::from_static("14"));
    if let Ok(v) = http::HeaderValue::from_str(&grpc_percent_encode(message)) {
        headers.insert("grpc-message", v);
    }
    response
}

fn http_error(message: &str) -> http::Response<Body> {
    let mut response = http::Response::new(Body::new(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = http::StatusCode::BAD_REQUEST;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    response
}

/// gRPC's encoding of `grpc-message`: bytes outside printable ASCII, and
/// `%`, as `%XX`.
fn grpc_percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_messages_are_percent_encoded() {
        assert_eq!(grpc_percent_encode("a b%c\né"), "a b%25c%0A%C3%A9");
    }
}
