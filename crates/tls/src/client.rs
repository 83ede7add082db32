//! The client side: which roots to trust, and a handshake whose failures
//! say why.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::TlsError;

/// Where a client's trusted roots come from.
#[derive(Debug, Clone)]
pub enum Roots {
    /// PEM certificates, and where they came from (for messages).
    Pem { pem: Vec<u8>, source: String },
    /// The system's trusted roots.
    System,
}

impl Roots {
    /// Where these roots come from, in words.
    pub fn source(&self) -> String {
        match self {
            Roots::Pem { source, .. } => source.clone(),
            Roots::System => "the system's trusted roots".to_string(),
        }
    }
}

/// A client configuration trusting `roots`, offering HTTP/2 (gRPC's ALPN).
pub fn client_config(roots: &Roots) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut store = rustls::RootCertStore::empty();
    match roots {
        Roots::Pem { pem, source } => {
            let certs =
                crate::cert::certificates(pem, std::path::Path::new(source)).map_err(|e| {
                    TlsError::BadRoots {
                        source_name: source.clone(),
                        detail: match e {
                            TlsError::NoCertificate { .. } => {
                                "no -----BEGIN CERTIFICATE-----".into()
                            }
                            e => e.to_string(),
                        },
                    }
                })?;
            for c in certs {
                store.add(c).map_err(|e| TlsError::BadRoots {
                    source_name: source.clone(),
                    detail: e.to_string(),
                })?;
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let detail = found
                    .errors
                    .first()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "no certificates found".into());
                return Err(TlsError::NoSystemRoots { detail });
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions();
    let Ok(builder) = builder else {
        unreachable!("ring supports rustls's default protocol versions")
    };
    let mut config = builder.with_root_certificates(store).with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Why a TLS handshake with a server failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The server answered the handshake with something that is not TLS:
    /// it serves plaintext on that port.
    #[error(
        "the server does not speak TLS on this port (it answered the TLS handshake in plaintext)"
    )]
    NotTls,
    #[error("the server's certificate is not signed by a trusted CA ({detail})")]
    Untrusted { detail: String },
    #[error("the server's certificate is not valid for '{name}' ({detail})")]
    WrongName { name: String, detail: String },
    #[error("the server's certificate has expired or is not valid yet ({detail})")]
    Expired { detail: String },
    #[error("'{name}' cannot be checked against a certificate: {detail}")]
    BadName { name: String, detail: String },
    #[error("the TLS handshake failed: {0}")]
    Other(String),
}

/// Completes a TLS handshake over `tcp` with the server `host` (a DNS name
/// or an IP address, as the certificate must name it).
pub async fn handshake(
    tcp: TcpStream,
    config: Arc<rustls::ClientConfig>,
    host: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, HandshakeError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let name = ServerName::try_from(bare.to_string()).map_err(|e| HandshakeError::BadName {
        name: host.to_string(),
        detail: e.to_string(),
    })?;
    let connector = tokio_rustls::TlsConnector::from(config);
    connector.connect(name, tcp).await.map_err(|e| why(e, host))
}

fn why(e: std::io::Error, host: &str) -> HandshakeError {
    use rustls::{CertificateError, Error, InvalidMessage};
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<Error>()) else {
        return HandshakeError::Other(e.to_string());
    };
    match tls {
        Error::InvalidMessage(InvalidMessage::InvalidContentType)
        | Error::InvalidMessage(InvalidMessage::UnknownProtocolVersion)
        | Error::InvalidMessage(InvalidMessage::MessageTooLarge) => HandshakeError::NotTls,
        Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                HandshakeError::Untrusted {
                    detail: tls.to_string(),
                }
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                HandshakeError::WrongName {
                    name: host.to_string(),
                    detail: tls.to_string(),
                }
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => HandshakeError::Expired {
                detail: tls.to_string(),
            },
            _ => HandshakeError::Other(tls.to_string()),
        },
        other => HandshakeError::Other(other.to_string()),
    }
}

/// A connection a [`Connector`] made.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Connects HTTP/2 clients (tonic's `Endpoint::connect_with_connector`) to
/// a URI's authority: over TLS with `tls`, else in plaintext; TCP_NODELAY
/// either way. A failed handshake is a [`HandshakeError`] in the error's
/// chain.
#[derive(Clone)]
pub struct Connector {
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Connector {
    pub fn new(tls: Option<Arc<rustls::ClientConfig>>) -> Connector {
        Connector { tls }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<http::Uri> for Connector {
    type Response = hyper_util::rt::TokioIo<Box<dyn Io>>;
    type Error = BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, BoxError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let (Some(authority), Some(host)) = (uri.authority(), uri.host()) else {
                return Err(format!("'{uri}' names no host").into());
            };
            let address = match authority.port() {
                Some(_) => authority.as_str().to_string(),
                None => format!("{authority}:{}", if tls.is_some() { 443 } else { 80 }),
            };
            let tcp = TcpStream::connect(&address).await?;
            let _ = tcp.set_nodelay(true);
            let io: Box<dyn Io> = match tls {
                Some(config) => Box::new(handshake(tcp, config, host).await?),
                None => Box::new(tcp),
            };
            Ok(hyper_util::rt::TokioIo::new(io))
        })
    }
}

/// Whether the server at `address` (HOST:PORT) answers a TLS handshake,
/// whatever its certificate: how a client that connected without TLS
/// learns that it should have used it, from any TLS server.
pub async fn speaks_tls(address: &str) -> bool {
    let host = address
        .rsplit_once(':')
        .map(|(h, _)| h)
        .filter(|h| !h.is_empty())
        .unwrap_or("localhost");
    let Ok(tcp) = TcpStream::connect(address).await else {
        return false;
    };
    // No roots: any certificate fails to verify, which is enough to know
    // that a TLS server sent one.
    let Ok(builder) = rustls::ClientConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()
    else {
        return false;
    };
    let mut config = builder
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    match handshake(tcp, Arc::new(config), host).await {
        Ok(_)
        | Err(HandshakeError::Untrusted { .. })
        | Err(HandshakeError::WrongName { .. })
        | Err(HandshakeError::Expired { .. }) => true,
        Err(HandshakeError::NotTls | HandshakeError::BadName { .. } | HandshakeError::Other(_)) => {
            false
        }
    }
}
