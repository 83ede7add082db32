//! A server's certificate and key, read from PEM files, and reloaded when
//! the files change.
//!
//! [`ReloadingCert`] is rustls's certificate resolver for every port of a
//! pachd: during a handshake, at most once a second, it compares the files'
//! identity (inode, size, modification time; after symbolic links, so a
//! Kubernetes secret's swapped `..data` link counts) with what it loaded.
//! A change is loaded; a change that does not load (a renewal written one
//! file at a time) is logged once and the previous pair goes on being
//! served until the files load again. Nothing is watched in the
//! background: an idle pachd reads nothing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::TlsError;

/// How often, at most, the files are looked at again.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Where a server's certificate (with its chain) and private key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Reads both files and checks that the key belongs to the certificate.
pub fn load(files: &CertFiles) -> Result<CertifiedKey, TlsError> {
    let read = |what, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            what,
            path: path.to_path_buf(),
            source,
        })
    };
    let cert_pem = read("the TLS certificate", &files.cert)?;
    let key_pem = read("the TLS private key", &files.key)?;
    let chain = certificates(&cert_pem, &files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: files.key.clone(),
        },
        e => TlsError::BadPem {
            path: files.key.clone(),
            detail: e.to_string(),
        },
    })?;
    let signing = crate::provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::UnsupportedKey {
            path: files.key.clone(),
            detail: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::Mismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
            })
        }
        Err(e) => Err(TlsError::BadCertificate {
            path: files.cert.clone(),
            detail: e.to_string(),
        }),
    }
}

/// Every certificate of a PEM file, in order; at least one.
pub fn certificates(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

/// What identifies a file's contents without reading them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    device: u64,
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        inode: m.ino(),
        device: m.dev(),
        len: m.len(),
        modified: m.modified().ok(),
    })
}

fn stamps(files: &CertFiles) -> (Option<Stamp>, Option<Stamp>) {
    (stamp(&files.cert), stamp(&files.key))
}

#[derive(Debug)]
struct State {
    served: Arc<CertifiedKey>,
    /// The files' stamps when last read, whether or not they loaded.
    seen: (Option<Stamp>, Option<Stamp>),
    checked: Instant,
}

/// The certificate resolver of every TLS port of one pachd: the files'
/// current pair, looked at again at most once a second.
#[derive(Debug)]
pub struct ReloadingCert {
    files: CertFiles,
    state: Mutex<State>,
}

impl ReloadingCert {
    /// Loads the pair once; an error here is an error at start.
    pub fn new(files: CertFiles) -> Result<ReloadingCert, TlsError> {
        let seen = stamps(&files);
        let served = Arc::new(load(&files)?);
        Ok(ReloadingCert {
            files,
            state: Mutex::new(State {
                served,
                seen,
                checked: Instant::now(),
            }),
        })
    }

    pub fn files(&self) -> &CertFiles {
        &self.files
    }

    /// The pair to serve now, reloaded first when the files changed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let Ok(mut state) = self.state.lock() else {
            // A panic while reloading: serve nothing rather than guess.
            return self.poisoned();
        };
        if state.checked.elapsed() >= CHECK_EVERY {
            state.checked = Instant::now();
            let now = stamps(&self.files);
            if now != state.seen {
                state.seen = now;
                match load(&self.files) {
                    Ok(pair) => {
                        state.served = Arc::new(pair);
                        tracing::info!(
                            cert = %self.files.cert.display(),
                            key = %self.files.key.display(),
                            "TLS certificate reloaded"
                        );
                    }
                    Err(e) => tracing::warn!(
                        "the TLS certificate files changed but do not load ({e}); \
                         still serving the previous certificate"
                    ),
                }
            }
        }
        state.served.clone()
    }

    fn poisoned(&self) -> Arc<CertifiedKey> {
        match self.state.lock() {
            Ok(s) => s.served.clone(),
            Err(p) => p.into_inner().served.clone(),
        }
    }

    /// A rustls server configuration on this resolver, offering `alpn`.
    pub fn server_config(self: &Arc<Self>, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
        let builder = rustls::ServerConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions();
        // The provider is ours and offers the default versions.
        let Ok(builder) = builder else {
            unreachable!("ring supports rustls's default protocol versions")
        };
        let mut config = builder
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A self-signed certificate for `name` and its key, by the openssl CLI.
    pub(crate) fn self_signed(dir: &Path, stem: &str, name: &str) -> CertFiles {
        let files = CertFiles {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        };
        let status = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "1", "-subj", &format!("/CN={name}")])
            .arg("-addext")
            .arg(format!("subjectAltName=DNS:{name},IP:127.0.0.1"))
            .arg("-keyout")
            .arg(&files.key)
            .arg("-out")
            .arg(&files.cert)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("the openssl command is needed by these tests");
        assert!(status.success());
        files
    }

    /// A CA (its PEM certificate's path) and a certificate for `name`
    /// signed by it, by the openssl CLI.
    pub(crate) fn ca_signed(dir: &Path, name: &str) -> (CertFiles, PathBuf) {
        let run = |args: &[&str]| {
            let status = std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .stderr(std::process::Stdio::null())
                .status()
                .expect("the openssl command is needed by these tests");
            assert!(status.success(), "openssl {args:?}");
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        run(&[
            &["req", "-x509"][..],
            &ec,
            &["-days", "1", "-subj", "/CN=test-ca"],
            &["-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat());
        run(&[
            &["req"][..],
            &ec,
            &["-subj", &format!("/CN={name}")],
            &["-keyout", "leaf.key", "-out", "leaf.csr"],
        ]
        .concat());
        std::fs::write(dir.join("ext"), format!("subjectAltName=DNS:{name}\n")).unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext",
            "-out",
            "leaf.crt",
        ]);
        let files = CertFiles {
            cert: dir.join("leaf.crt"),
            key: dir.join("leaf.key"),
        };
        (files, dir.join("ca.pem"))
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = self_signed(dir.path(), "a", "localhost");
        let b = self_signed(dir.path(), "b", "localhost");
        assert!(load(&a).is_ok());

        let missing = CertFiles {
            cert: dir.path().join("nope.crt"),
            key: a.key.clone(),
        };
        let e = load(&missing).unwrap_err().to_string();
        assert!(e.contains("nope.crt") && e.contains("certificate"), "{e}");

        let mismatched = CertFiles {
            cert: a.cert.clone(),
            key: b.key.clone(),
        };
        let e = load(&mismatched).unwrap_err().to_string();
        assert!(e.contains("does not belong") && e.contains("b.key"), "{e}");

        let swapped = CertFiles {
            cert: a.key.clone(),
            key: a.cert.clone(),
        };
        let e = load(&swapped).unwrap_err().to_string();
        assert!(
            e.contains("a.key") && e.contains("no PEM certificate"),
            "{e}"
        );

        std::fs::write(dir.path().join("empty"), "").unwrap();
        let no_key = CertFiles {
            cert: a.cert.clone(),
            key: dir.path().join("empty"),
        };
        let e = load(&no_key).unwrap_err().to_string();
        assert!(e.contains("no PEM private key"), "{e}");
    }

    #[test]
    fn reloads_a_changed_pair_and_keeps_the_last_good_one() {
        let dir = tempfile::tempdir().unwrap();
        let live = self_signed(dir.path(), "live", "localhost");
        let first = std::fs::read(&live.cert).unwrap();
        let resolver = ReloadingCert::new(live.clone()).unwrap();
        let served = |r: &ReloadingCert| r.current().cert[0].as_ref().to_vec();
        let first_der = served(&resolver);

        // A half-written renewal (new certificate, old key) is not served.
        let next = self_signed(dir.path(), "next", "localhost");
        std::fs::copy(&next.cert, &live.cert).unwrap();
        std::thread::sleep(CHECK_EVERY + Duration::from_millis(50));
        assert_eq!(served(&resolver), first_der);

        // The key arrives: the new pair is served.
        std::fs::copy(&next.key, &live.key).unwrap();
        std::thread::sleep(CHECK_EVERY + Duration::from_millis(50));
        let second_der = served(&resolver);
        assert_ne!(second_der, first_der);
        assert_ne!(std::fs::read(&live.cert).unwrap(), first);
    }
}
