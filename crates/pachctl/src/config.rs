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
    /// The transaction that transactional commands join (`start transaction`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub active_transaction: String,
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
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &p).with_context(|| format!("cannot write {}", p.display()))?;
        Ok(())
    }

    /// The address to dial and a description of where it came from.
    pub fn target(&self) -> (String, String) {
        if let Ok(addr) = std::env::var("PACHD_ADDRESS")
            && !addr.is_empty()
        {
            return (strip_scheme(&addr), "PACHD_ADDRESS".to_string());
        }
        let name = &self.v2.active_context;
        let addr = self
            .v2
            .contexts
            .get(name)
            .map(|c| c.pachd_address.clone())
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| DEFAULT_ADDRESS.to_string());
        (strip_scheme(&addr), format!("context '{name}'"))
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

fn strip_scheme(addr: &str) -> String {
    addr.trim_start_matches("grpc://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pachyderm_shape_and_keeps_unknown_fields() {
        let text = r#"{"user_id":"u","v2":{"active_context":"prod","contexts":{"prod":{"pachd_address":"grpc://10.0.0.1:650","cluster_name":"c"}},"metrics":true}}"#;
        let c: Config = serde_json::from_str(text).unwrap();
        assert_eq!(c.v2.active_context, "prod");
        assert_eq!(c.v2.contexts["prod"].other["cluster_name"], "c");
        let back: Config = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert_eq!(strip_scheme("grpc://10.0.0.1:650"), "10.0.0.1:650");
    }
}
