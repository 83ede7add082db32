//! Contexts: which pachd to talk to. Pachyderm's config file shape
//! (`~/.pachyderm/config.json`, `v2.active_context`, `v2.contexts.NAME`), with
//! `PACH_CONFIG` overriding the file and `PACHD_ADDRESS` overriding the context
//! for one shell. A missing file behaves as context `local` on localhost:30650.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

pub const DEFAULT_CONTEXT: &str = "local";
pub const DEFAULT_ADDRESS: &str = "localhost:30650";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Context {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pachd_address: String,
    /// The CA certificates (PEM, base64-encoded, as Pachyderm's config keeps
    /// them) that pachd's certificate must be signed by; also turns TLS on
    /// for an address without a scheme.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_cas: String,
    /// The transaction that transactional commands join (`start transaction`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub active_transaction: String,
    /// The token every call carries while auth is active (`auth login`,
    /// `auth use-auth-token`); the file is kept readable by its owner only.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub session_token: String,
    /// Where the context came from: "IMPORTED" from a Kubernetes context
    /// (`config set context -k`), as Pachyderm marks it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// The Kubernetes cluster, user and namespace of the deployment (kept for
    /// Kubernetes tooling; pachctl itself connects to `pachd_address`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth_info: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct V2 {
    #[serde(default)]
    pub active_context: String,
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
    #[serde(default)]
    pub metrics: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Config {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_id: String,
    #[serde(default)]
    pub v2: V2,
}

pub fn path() -> PathBuf {
    if let Some(p) = std::env::var_os("PACH_CONFIG") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".pachyderm").join("config.json")
}

impl Config {
    pub fn load() -> anyhow::Result<Self> {
        let p = path();
        let mut config = match std::fs::read(&p) {
            Ok(bytes) => serde_json::from_slice::<Config>(&bytes).with_context(|| {
                format!(
                    "the pachctl config {} is not valid JSON; fix or remove it",
                    p.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read the pachctl config {}", p.display()));
            }
        };
        if config.v2.active_context.is_empty() {
            config.v2.active_context = DEFAULT_CONTEXT.to_string();
        }
        config
            .v2
            .contexts
            .entry(DEFAULT_CONTEXT.to_string())
            .or_insert_with(|| Context {
                pachd_address: DEFAULT_ADDRESS.to_string(),
                ..Context::default()
            });
        Ok(config)
    }

    pub fn save(&self) -> anyhow::Result<()> {
        let p = path();
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let tmp = p.with_extension("json.tmp");
        write_private(&tmp, &serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &p).with_context(|| format!("cannot write {}", p.display()))?;
        Ok(())
    }

    /// The active context's session token, if it has one.
    pub fn session_token(&self) -> Option<String> {
        self.v2
            .contexts
            .get(&self.v2.active_context)
            .map(|c| c.session_token.clone())
            .filter(|t| !t.is_empty())
    }

    /// The pachd to dial: its address (PACHD_ADDRESS, else the active
    /// context's), whether over TLS, and the roots its certificate must
    /// chain to.
    pub fn target(&self) -> anyhow::Result<Target> {
        let name = &self.v2.active_context;
        let context = self.v2.contexts.get(name);
        let (raw, source) = match std::env::var("PACHD_ADDRESS") {
            Ok(addr) if !addr.is_empty() => (addr, "PACHD_ADDRESS".to_string()),
            _ => (
                context
                    .map(|c| c.pachd_address.clone())
                    .filter(|a| !a.is_empty())
                    .unwrap_or_else(|| DEFAULT_ADDRESS.to_string()),
                format!("context '{name}'"),
            ),
        };
        let roots = match std::env::var_os(SERVER_CAS_ENV).filter(|v| !v.is_empty()) {
            Some(file) => {
                let file = PathBuf::from(file);
                let pem = std::fs::read(&file).with_context(|| {
                    format!(
                        "cannot read {} ({SERVER_CAS_ENV}); give a PEM file of the CA that signed pachd's certificate",
                        file.display()
                    )
                })?;
                Some(pach_tls::client::Roots::Pem {
                    pem,
                    source: format!("{} ({SERVER_CAS_ENV})", file.display()),
                })
            }
            None => match context
                .map(|c| c.server_cas.as_str())
                .filter(|c| !c.is_empty())
            {
                Some(b64) => {
                    use base64::Engine;
                    let pem = base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "server_cas of context '{name}' is not base64 ({e}); set it again with \
                                 `pachctl config update context {name} --server-cas CA.pem`"
                            )
                        })?;
                    Some(pach_tls::client::Roots::Pem {
                        pem,
                        source: format!("server_cas of context '{name}'"),
                    })
                }
                None => None,
            },
        };
        let (tls, address) = split_scheme(&raw).map_err(|scheme| {
            anyhow::anyhow!(
                "pachd address '{raw}' ({source}) has the scheme '{scheme}': use grpc://HOST:PORT, \
                 or grpcs://HOST:PORT for TLS"
            )
        })?;
        let tls = match tls {
            Some(tls) => tls,
            // No scheme: TLS when CAs are given for it.
            None => roots.is_some(),
        };
        Ok(Target {
            address: with_default_port(&address),
            source,
            context: name.clone(),
            tls: tls.then(|| roots.unwrap_or(pach_tls::client::Roots::System)),
        })
    }

    /// The active context, to change it (then [`Config::save`]).
    pub fn active_mut(&mut self) -> &mut Context {
        self.v2
            .contexts
            .entry(self.v2.active_context.clone())
            .or_default()
    }

    pub fn context(&self, name: &str) -> anyhow::Result<&Context> {
        match self.v2.contexts.get(name) {
            Some(c) => Ok(c),
            None => bail!(
                "context '{name}' does not exist; `pachctl config list context` shows the contexts"
            ),
        }
    }
}

/// The environment variable naming a PEM file of the CAs to trust.
pub const SERVER_CAS_ENV: &str = "PACHD_SERVER_CAS";

/// Where pachctl connects.
#[derive(Debug, Clone)]
pub struct Target {
    /// HOST:PORT.
    pub address: String,
    /// Where the address came from, for messages.
    pub source: String,
    /// The active context's name, for messages.
    pub context: String,
    /// `Some` for TLS: the roots pachd's certificate must chain to.
    pub tls: Option<pach_tls::client::Roots>,
}

/// HOST:PORT, with Pachyderm's port (30650) when `address` names none,
/// whether over TLS or not.
fn with_default_port(address: &str) -> String {
    let has_port = address.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
    });
    if has_port {
        address.to_string()
    } else {
        format!("{address}:30650")
    }
}

/// An address's scheme (`Some(true)` for TLS, `None` without a scheme) and
/// HOST:PORT; `Err` with the scheme when it is not one of gRPC's.
fn split_scheme(addr: &str) -> Result<(Option<bool>, String), String> {
    let trimmed = addr.trim().trim_end_matches('/');
    let (tls, rest) = match trimmed.split_once("://") {
        None => (None, trimmed),
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "grpc" | "http" => (Some(false), rest),
            "grpcs" | "https" => (Some(true), rest),
            _ => return Err(scheme.to_string()),
        },
    };
    Ok((tls, rest.to_string()))
}

/// Writes `bytes` to a new file at `path` readable and writable by its owner
/// only (0600): the config may hold a session token.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pachyderm_shape_and_keeps_unknown_fields() {
        let text = r#"{"user_id":"u","v2":{"active_context":"prod","contexts":{"prod":{"pachd_address":"grpc://10.0.0.1:650","cluster_name":"c","session_token":"t","port_forwarders":{"pachd":30650}}},"metrics":true}}"#;
        let c: Config = serde_json::from_str(text).unwrap();
        assert_eq!(c.v2.active_context, "prod");
        assert_eq!(c.v2.contexts["prod"].cluster_name, "c");
        assert_eq!(c.v2.contexts["prod"].session_token, "t");
        assert_eq!(
            c.v2.contexts["prod"].other["port_forwarders"]["pachd"],
            30650
        );
        let back: Config = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert_eq!(
            split_scheme("grpc://10.0.0.1:650"),
            Ok((Some(false), "10.0.0.1:650".to_string()))
        );
        assert_eq!(
            split_scheme("grpcs://h:1/"),
            Ok((Some(true), "h:1".to_string()))
        );
        assert_eq!(split_scheme("h:1"), Ok((None, "h:1".to_string())));
        assert_eq!(split_scheme("unix:///s"), Err("unix".to_string()));
        assert_eq!(
            with_default_port("pachd.example.com"),
            "pachd.example.com:30650"
        );
        assert_eq!(with_default_port("h:650"), "h:650");
        assert_eq!(with_default_port("[::1]"), "[::1]:30650");
        assert_eq!(with_default_port("[::1]:1"), "[::1]:1");
    }

    #[test]
    fn server_cas_is_pachyderms_field() {
        let text = r#"{"v2":{"active_context":"a","contexts":{"a":{"pachd_address":"grpcs://h:1","server_cas":"QUJD"}}}}"#;
        let c: Config = serde_json::from_str(text).unwrap();
        assert_eq!(c.v2.contexts["a"].server_cas, "QUJD");
        assert!(!c.v2.contexts["a"].other.contains_key("server_cas"));
    }
}
