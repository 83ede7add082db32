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
//! Invariants: one crypto provider (ring, which the dependency tree already
//! has, and whose random numbers come from the OS at no start-up cost); a failed handshake or a plaintext client never stops a
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

/// The crypto provider every config here is built with: ring, its cipher
/// suites in the order of [`preferred_suites`].
pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    preferred_suites(&mut provider.cipher_suites, has_aes_instructions());
    std::sync::Arc::new(provider)
}

/// Orders `suites` as Go's crypto/tls (Pachyderm 1.9's clients and server)
/// and BoringSSL do: on a CPU with AES instructions, AES-128-GCM first (a
/// third faster than AES-256-GCM: 10 rounds, not 14) and ChaCha20-Poly1305
/// last; without them ChaCha20-Poly1305 first, as AES in software is slow.
/// The order only matters where this side chooses: a client's offer, since
/// the server takes the client's preference. Within TLS 1.3 and TLS 1.2
/// alike; a stable sort, so the rest keeps ring's order.
fn preferred_suites(suites: &mut [rustls::SupportedCipherSuite], aes: bool) {
    use rustls::CipherSuite as S;
    let rank = |suite: &rustls::SupportedCipherSuite| {
        let tls13 = matches!(suite, rustls::SupportedCipherSuite::Tls13(_));
        let cipher = match suite.suite() {
            S::TLS13_AES_128_GCM_SHA256
            | S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 0,
            S::TLS13_AES_256_GCM_SHA384
            | S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
            | S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => 1,
            _ => 2,
        };
        let cipher = if aes { cipher } else { (cipher + 1) % 3 };
        (!tls13, cipher)
    };
    suites.sort_by_key(rank);
}

/// Whether this CPU encrypts AES (and multiplies for GHASH) in hardware.
fn has_aes_instructions() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::CipherSuite as S;
    use std::sync::Arc;

    fn order(aes: bool) -> Vec<S> {
        let mut suites = rustls::crypto::ring::default_provider().cipher_suites;
        preferred_suites(&mut suites, aes);
        suites.iter().map(|s| s.suite()).collect()
    }

    #[test]
    fn aes_128_first_with_aes_instructions() {
        let o = order(true);
        assert_eq!(
            &o[..3],
            [
                S::TLS13_AES_128_GCM_SHA256,
                S::TLS13_AES_256_GCM_SHA384,
                S::TLS13_CHACHA20_POLY1305_SHA256
            ]
        );
        assert_eq!(o[3], S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256);
        assert_eq!(
            o.len(),
            rustls::crypto::ring::default_provider().cipher_suites.len()
        );
    }

    /// pachctl's configuration against pachd's: TLS 1.3 with AES-128-GCM
    /// on a CPU with AES instructions (ChaCha20-Poly1305 without).
    #[tokio::test]
    async fn our_client_and_server_agree_on_the_preferred_suite() {
        let dir = tempfile::tempdir().unwrap();
        let (files, ca) = cert::tests::ca_signed(dir.path(), "localhost");
        let server =
            Arc::new(cert::ReloadingCert::new(files).unwrap()).server_config(&[b"h2".as_slice()]);
        let roots = client::Roots::Pem {
            pem: std::fs::read(&ca).unwrap(),
            source: ca.display().to_string(),
        };
        let client = client::client_config(&roots).unwrap();
        let (a, b) = tokio::io::duplex(64 * 1024);
        let accept = tokio_rustls::TlsAcceptor::from(server).accept(b);
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let connect = tokio_rustls::TlsConnector::from(client).connect(name, a);
        let (accepted, connected) = tokio::join!(accept, connect);
        connected.unwrap();
        let (_, conn) = accepted.unwrap().into_inner();
        let expected = if has_aes_instructions() {
            S::TLS13_AES_128_GCM_SHA256
        } else {
            S::TLS13_CHACHA20_POLY1305_SHA256
        };
        assert_eq!(
            conn.negotiated_cipher_suite().map(|s| s.suite()),
            Some(expected)
        );
        assert_eq!(
            conn.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
    }

    #[test]
    fn chacha_first_without_them() {
        let o = order(false);
        assert_eq!(
            &o[..3],
            [
                S::TLS13_CHACHA20_POLY1305_SHA256,
                S::TLS13_AES_128_GCM_SHA256,
                S::TLS13_AES_256_GCM_SHA384
            ]
        );
        assert_eq!(o[3], S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256);
    }
}
