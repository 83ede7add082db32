//! TLS for pachd's ports and for pachctl's connections, on rustls.
//!
//! - [`cert`]: a certificate and its key read from PEM files, with errors that
//!   name the file, and [`cert::ReloadingCert`], which serves the files'
//!   current contents: it looks at them again at most once a second, during
//!   a handshake, and keeps serving the last good pair when the new one does
//!   not load (a renewal half written, a key that does not match yet).
//! - [`incoming`]: the connections a port accepts. With TLS on, a client that
//!   starts with anything but a TLS handshake is answered, in its own
//!   protocol (gRPC, HTTP/2 or HTTP/1), with a message that says the port
//!   serves TLS and what to connect with, instead of a dropped connection.
//!   Handshakes run beside the accept loop, so a slow client delays no one.
//! - [`client`]: the client side: roots from PEM (a CA file, a context's
//!   `server_cas`) or the system's, and a handshake whose failures say why
//!   (not TLS at all, an untrusted issuer, a name the certificate lacks).
//!
//! Invariants: one crypto provider (aws-lc-rs, the one the dependency tree
//! already has); a failed handshake or a plaintext client never stops a
//! port from accepting; a certificate that does not load is never served.

pub mod cert;
pub mod client;
pub mod incoming;

use std::path::PathBuf;

/// How pachd's gRPC port begins its answer to a client that connected
/// without TLS, so that pachctl can tell this case from others.
pub const PLAINTEXT_ON_TLS_PORT: &str =
    "pachd serves gRPC over TLS on this port, and this client connected without TLS";

/// The first byte of every TLS connection: a handshake record.
pub const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// What went wrong loading a certificate, a key or trusted roots. Each
/// variant names the file (or setting) and the way out.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the server's certificate (and its chain) in PEM",
        path.display()
    )]
    NoCertificate { path: PathBuf },
    #[error(
        "{} holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY); give the key of the certificate in PEM",
        path.display()
    )]
    NoKey { path: PathBuf },
    #[error("{} is not valid PEM ({detail})", path.display())]
    BadPem { path: PathBuf, detail: String },
    #[error("the private key in {} cannot be used ({detail}); use an RSA, ECDSA (P-256/P-384) or Ed25519 key", path.display())]
    UnsupportedKey { path: PathBuf, detail: String },
    #[error(
        "the private key {} does not belong to the certificate {}: give the key the certificate was issued for",
        key.display(), cert.display()
    )]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("the certificate {} cannot be parsed ({detail})", path.display())]
    BadCertificate { path: PathBuf, detail: String },
    #[error(
        "{source_name} holds no usable CA certificate ({detail}); give the PEM certificate of the CA that signed pachd's certificate"
    )]
    BadRoots { source_name: String, detail: String },
    #[error(
        "no trusted root certificates: the system has none ({detail}); give the CA that signed pachd's certificate"
    )]
    NoSystemRoots { detail: String },
}

/// The crypto provider every config here is built with.
pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}
