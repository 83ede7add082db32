//! `version`, `config ...`, `fsck` and `completion`.

use std::io::{Read, Write};

use anyhow::bail;
use clap::Subcommand;

use crate::client::{connect, status};
use crate::config::{Config, Context};
use crate::output::{Format, Table};

#[derive(Debug, Subcommand)]
pub enum ConfigVerb {
    /// Print a setting.
    #[command(subcommand)]
    Get(ConfigGet),
    /// Change a setting.
    #[command(subcommand)]
    Set(ConfigSet),
    /// Change fields of a context.
    #[command(subcommand)]
    Update(ConfigUpdate),
    /// List contexts.
    #[command(subcommand)]
    List(ConfigList),
    /// Delete a context.
    #[command(subcommand)]
    Delete(ConfigDelete),
}

#[derive(Debug, Subcommand)]
pub enum ConfigGet {
    /// Print the name of the active context.
    ActiveContext,
    /// Print a context as JSON.
    Context { name: String },
    /// Print whether metrics are enabled (true or false).
    Metrics,
}

#[derive(Debug, Subcommand)]
pub enum ConfigSet {
    /// Make a context the active one.
    ActiveContext { name: String },
    /// Create or replace a context from JSON on stdin, e.g.
    /// {"pachd_address":"localhost:30650"}, or from a Kubernetes context (-k).
    Context {
        name: String,
        /// Replace an existing context.
        #[arg(long)]
        overwrite: bool,
        /// Import this Kubernetes context's cluster, user and namespace (from
        /// $KUBECONFIG or ~/.kube/config) instead of reading stdin.
        #[arg(short = 'k', long)]
        kubernetes: Option<String>,
    },
    /// Set whether metrics are enabled: true or false (kept in the config;
    /// pachctl and pachd send no usage metrics either way).
    Metrics {
        #[arg(value_parser = ["true", "false"])]
        enabled: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigUpdate {
    /// Change a context (the active one when NAME is omitted); created if missing.
    Context {
        name: Option<String>,
        /// The pachd address: HOST:PORT or grpc://HOST:PORT, grpcs://HOST:PORT for TLS.
        #[arg(long)]
        pachd_address: Option<String>,
        /// A PEM file of the CA certificates pachd's TLS certificate must be
        /// signed by, kept in the context (as base64, Pachyderm's
        /// `server_cas`); '' removes them (the system's roots are trusted).
        #[arg(long, value_name = "FILE")]
        server_cas: Option<std::path::PathBuf>,
        /// The Kubernetes cluster name of the deployment.
        #[arg(long)]
        cluster_name: Option<String>,
        /// The Kubernetes user (auth info) of the deployment.
        #[arg(long)]
        auth_info: Option<String>,
        /// The Kubernetes namespace pachd is deployed in.
        #[arg(long)]
        namespace: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigList {
    /// List contexts; `*` marks the active one.
    Context,
}

#[derive(Debug, Subcommand)]
pub enum ConfigDelete {
    /// Delete a context.
    Context { name: String },
}

/// `--timeout`: "default" (pachctl's usual patience), 0s (forever) or a
/// duration.
fn version_timeout(flag: &str) -> anyhow::Result<Option<std::time::Duration>> {
    if flag == "default" {
        return Ok(Some(crate::client::HANDSHAKE));
    }
    let d = humantime::parse_duration(flag).map_err(|e| {
        anyhow::anyhow!(
            "--timeout '{flag}' is not a duration ({e}); give one like 5s or 1m, or 0s to wait forever"
        )
    })?;
    Ok((!d.is_zero()).then_some(d))
}

pub async fn version(client_only: bool, timeout: &str, format: &Format) -> anyhow::Result<()> {
    let patience = version_timeout(timeout)?;
    // Both name the Pachyderm release whose API they speak, then ours.
    let (major, minor, micro) = pach_api::PACHYDERM_VERSION;
    let ours = format!(
        "{major}.{minor}.{micro}+pachyderm-rs.{}",
        env!("CARGO_PKG_VERSION")
    );
    let pachd = if client_only {
        None
    } else {
        let v = crate::client::connect_within(patience)
            .await?
            .server_version;
        Some(format!(
            "{}.{}.{}{}",
            v.major, v.minor, v.micro, v.additional
        ))
    };
    let mut out = super::stdout();
    if format.is_human() {
        let mut t = Table::new(&["COMPONENT", "VERSION"]);
        t.row(vec!["pachctl".into(), ours]);
        if let Some(p) = pachd {
            t.row(vec!["pachd".into(), p]);
        }
        t.print(&mut out)?;
    } else {
        let mut j = serde_json::json!({ "pachctl": ours });
        if let Some(p) = pachd {
            j["pachd"] = serde_json::Value::String(p);
        }
        format.print(&mut out, &[j])?;
    }
    super::finish(out)
}

pub fn config(verb: ConfigVerb) -> anyhow::Result<()> {
    let mut config = Config::load()?;
    match verb {
        ConfigVerb::Get(ConfigGet::ActiveContext) => println!("{}", config.v2.active_context),
        ConfigVerb::Get(ConfigGet::Context { name }) => {
            println!("{}", serde_json::to_string_pretty(config.context(&name)?)?)
        }
        ConfigVerb::Set(ConfigSet::ActiveContext { name }) => {
            config.context(&name)?;
            config.v2.active_context = name;
            config.save()?;
        }
        ConfigVerb::Get(ConfigGet::Metrics) => println!("{}", config.v2.metrics),
        ConfigVerb::Set(ConfigSet::Metrics { enabled }) => {
            config.v2.metrics = enabled == "true";
            config.save()?;
        }
        ConfigVerb::Set(ConfigSet::Context {
            name,
            overwrite,
            kubernetes: Some(kube),
        }) => {
            if config.v2.contexts.contains_key(&name) && !overwrite {
                bail!("context '{name}' already exists; add --overwrite to replace it");
            }
            let ctx = kube_context(&kube)?;
            config.v2.contexts.insert(name, ctx);
            config.save()?;
        }
        ConfigVerb::Set(ConfigSet::Context {
            name, overwrite, ..
        }) => {
            if config.v2.contexts.contains_key(&name) && !overwrite {
                bail!("context '{name}' already exists; add --overwrite to replace it");
            }
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            let ctx: Context = serde_json::from_str(&text).map_err(|e| {
                anyhow::anyhow!("stdin is not a context in JSON ({e}); e.g. {{\"pachd_address\":\"localhost:30650\"}}")
            })?;
            config.v2.contexts.insert(name, ctx);
            config.save()?;
        }
        ConfigVerb::Update(ConfigUpdate::Context {
            name,
            pachd_address,
            server_cas,
            cluster_name,
            auth_info,
            namespace,
        }) => {
            let name = name.unwrap_or_else(|| config.v2.active_context.clone());
            let ctx = config.v2.contexts.entry(name).or_default();
            if let Some(addr) = pachd_address {
                if addr.is_empty() || !addr.contains(':') {
                    bail!(
                        "--pachd-address '{addr}' is not HOST:PORT (or grpc://HOST:PORT, grpcs://HOST:PORT)"
                    );
                }
                ctx.pachd_address = addr;
            }
            if let Some(file) = server_cas {
                ctx.server_cas = server_cas_of(&file)?;
            }
            for (value, field) in [
                (cluster_name, &mut ctx.cluster_name),
                (auth_info, &mut ctx.auth_info),
                (namespace, &mut ctx.namespace),
            ] {
                if let Some(v) = value {
                    *field = v;
                }
            }
            config.save()?;
        }
        ConfigVerb::List(ConfigList::Context) => {
            let mut t = Table::new(&["ACTIVE", "NAME"]);
            for name in config.v2.contexts.keys() {
                let active = if *name == config.v2.active_context {
                    "*"
                } else {
                    ""
                };
                t.row(vec![active.into(), name.clone()]);
            }
            let mut out = super::stdout();
            t.print(&mut out)?;
            super::finish(out)?;
        }
        ConfigVerb::Delete(ConfigDelete::Context { name }) => {
            if config.v2.contexts.remove(&name).is_none() {
                bail!(
                    "context '{name}' does not exist; `pachctl config list context` shows the contexts"
                );
            }
            if config.v2.active_context == name {
                bail!(
                    "context '{name}' is active; `pachctl config set active-context OTHER` first"
                );
            }
            config.save()?;
        }
    }
    Ok(())
}

/// A context imported from the Kubernetes context `name` of the kubeconfig
/// files ($KUBECONFIG, a `:`-separated list, or ~/.kube/config), as 1.9's
/// `config set context -k`: its cluster, user and namespace.
fn kube_context(name: &str) -> anyhow::Result<Context> {
    #[derive(serde::Deserialize)]
    struct KubeConfig {
        #[serde(default)]
        contexts: Vec<Named>,
    }
    #[derive(serde::Deserialize)]
    struct Named {
        name: String,
        #[serde(default)]
        context: KubeContext,
    }
    #[derive(serde::Deserialize, Default)]
    struct KubeContext {
        #[serde(default)]
        cluster: String,
        #[serde(default)]
        user: String,
        #[serde(default)]
        namespace: String,
    }
    let files: Vec<std::path::PathBuf> = match std::env::var_os("KUBECONFIG") {
        Some(list) if !list.is_empty() => std::env::split_paths(&list).collect(),
        _ => vec![
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".kube/config"),
        ],
    };
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let kube: KubeConfig = serde_yaml_ng::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is not a kubeconfig ({e})", file.display()))?;
        if let Some(c) = kube.contexts.into_iter().find(|c| c.name == name) {
            return Ok(Context {
                source: "IMPORTED".into(),
                cluster_name: c.context.cluster,
                auth_info: c.context.user,
                namespace: c.context.namespace,
                ..Context::default()
            });
        }
    }
    let searched: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    bail!(
        "kubernetes context does not exist: {name} (looked in {}); `kubectl config get-contexts` lists them",
        searched.join(", ")
    )
}

/// A context's `server_cas` from a PEM file: the file's certificates,
/// checked, base64-encoded; empty for an empty path.
fn server_cas_of(file: &std::path::Path) -> anyhow::Result<String> {
    use base64::Engine;
    if file.as_os_str().is_empty() {
        return Ok(String::new());
    }
    let pem = std::fs::read(file).map_err(|e| {
        anyhow::anyhow!(
            "--server-cas: cannot read {} ({e}); give a PEM file of the CA that signed pachd's certificate",
            file.display()
        )
    })?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&pem);
    let roots = pach_tls::client::Roots::Pem {
        pem,
        source: file.display().to_string(),
    };
    pach_tls::client::client_config(&roots).map_err(|e| anyhow::anyhow!("--server-cas: {e}"))?;
    Ok(encoded)
}

/// `fsck [--fix]` through pfs.API's Fsck: one line per problem (and per
/// repair) on stderr.
pub async fn fsck(fix: bool) -> anyhow::Result<()> {
    use futures::TryStreamExt;
    let mut c = connect().await?;
    let mut stream = c
        .pfs
        .fsck(pach_api::pfs::FsckRequest { fix })
        .await
        .map_err(status)?
        .into_inner();
    let (mut problems, mut fixed) = (0usize, 0usize);
    let mut err = std::io::stderr().lock();
    while let Some(r) = stream.try_next().await.map_err(status)? {
        if !r.error.is_empty() {
            problems += 1;
            writeln!(err, "{}", crate::client::escape(&r.error))?;
        }
        if !r.fix.is_empty() {
            fixed += 1;
            writeln!(err, "fixed: {}", crate::client::escape(&r.fix))?;
        }
    }
    match (problems, fixed) {
        (0, 0) => println!("no problems found"),
        (0, n) => println!("{n} problems fixed; no problems left"),
        (n, _) if fix => bail!(
            "{n} problems left that --fix cannot repair (each line says why); missing or \
             damaged objects come back only from a backup (`pachctl restore`)"
        ),
        (n, _) => bail!(
            "{n} problems found; `pachctl fsck --fix` repairs records naming what is gone, \
             and `pachctl restore` of a backup brings missing objects back"
        ),
    }
    Ok(())
}

/// Prints the completion script of `shell`, or with `install` writes it
/// there, as 1.9's `completion --install --path`.
pub fn completion<C: clap::CommandFactory>(
    shell: &str,
    install: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let shell = match shell {
        "zsh" => clap_complete::Shell::Zsh,
        "fish" => clap_complete::Shell::Fish,
        _ => clap_complete::Shell::Bash,
    };
    let Some(path) = install else {
        let mut out = super::stdout();
        clap_complete::generate(shell, &mut C::command(), "pachctl", &mut out);
        return super::finish(out);
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut C::command(), "pachctl", &mut script);
    if let Err(e) = std::fs::write(path, script) {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
            "; rerun this command with sudo, or give a --path you may write"
        } else {
            "; give a --path in a directory that exists"
        };
        bail!(
            "cannot install completions in '{}': {e}{hint}",
            path.display()
        );
    }
    println!(
        "Bash completions installed in {}, you must restart bash to enable completions.",
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_timeouts() {
        use std::time::Duration;
        assert_eq!(
            version_timeout("default").unwrap(),
            Some(crate::client::HANDSHAKE)
        );
        assert_eq!(version_timeout("0s").unwrap(), None);
        assert_eq!(
            version_timeout("1m30s").unwrap(),
            Some(Duration::from_secs(90))
        );
        let e = version_timeout("soon").unwrap_err().to_string();
        assert!(e.contains("--timeout 'soon'"), "{e}");
    }
}
