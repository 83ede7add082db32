//! The one typed configuration of pachd: flags, each also readable from the
//! environment, with defaults that work on a laptop.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Pachyderm 1.9's S3 gateway port, on loopback like pachd's own default.
pub const DEFAULT_S3GATEWAY_ADDRESS: &str = "localhost:30600";

#[derive(Debug, Parser)]
#[command(
    name = "pachd",
    version,
    about = "The pachd server: versioned data and pipelines"
)]
pub struct Config {
    /// Directory holding the embedded metadata store and, unless --storage says
    /// otherwise, the objects. Default: $XDG_DATA_HOME/pachd or ~/.local/share/pachd.
    #[arg(long, env = "PACHD_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    /// Address to serve the gRPC API on (HOST:PORT).
    #[arg(long, env = "PACHD_ADDRESS", default_value = "localhost:30650")]
    pub address: String,

    /// Address to serve the S3 gateway on (HOST:PORT; empty: no gateway).
    /// Buckets are BRANCH.REPO, objects the files of the branch's head. When
    /// the default address is taken, pachd goes on without the gateway.
    #[arg(
        long = "s3gateway-address",
        env = "PACHD_S3GATEWAY_ADDRESS",
        default_value = DEFAULT_S3GATEWAY_ADDRESS
    )]
    pub s3gateway_address: String,

    /// Object store URL for content: a path, file:///path, s3://bucket[/prefix],
    /// az://container, gs://bucket or memory://. Default: <data-dir>/objects.
    /// S3 endpoint, region and credentials come from the AWS_* environment variables.
    #[arg(long, env = "PACHD_STORAGE", global = true)]
    pub storage: Option<String>,

    /// Metadata store: empty for the embedded store (<data-dir>/meta.redb), or
    /// etcd://HOST:PORT[,HOST:PORT...][/PREFIX] for an etcd cluster (run etcd
    /// with --max-txn-ops 1024). Several pachd on one etcd prefix and one
    /// bucket serve the same cluster.
    #[arg(long, env = "PACHD_METADATA", global = true)]
    pub metadata: Option<String>,

    /// Memory the embedded metadata store may use to cache its pages, in MiB
    /// (the one part of pachd's memory that grows with the cluster's size).
    #[arg(
        long,
        env = "PACHD_METADATA_CACHE_MIB",
        default_value_t = 128,
        global = true
    )]
    pub metadata_cache_mib: usize,

    /// Log filter (error, warn, info, debug, trace; or tracing directives).
    /// PACHD_LOG overrides it.
    #[arg(long, default_value = "info", global = true)]
    pub log_level: String,

    /// How many datums this pachd runs at once, across all jobs. 0: none —
    /// `pachd worker` processes run them (a job still runs at most its
    /// parallelism_spec datums at once, wherever they run).
    #[arg(long, env = "PACHD_WORKER_SLOTS", default_value_t = 16)]
    pub worker_slots: usize,

    /// Make this cluster the owner of a bucket that another cluster owns:
    /// for a copy of an old cluster's bucket that this cluster restores into
    /// (a migration). Never for a bucket the other cluster still uses: each
    /// cluster's garbage collection would delete the other's objects.
    /// Workers ignore it: they never take a bucket over.
    #[arg(long, env = "PACHD_TAKE_OVER_BUCKET")]
    pub take_over_bucket: bool,

    #[command(subcommand)]
    pub command: Option<Role>,
}

#[derive(Debug, Subcommand)]
pub enum Role {
    /// Run datums of the cluster's jobs, claimed through the metadata store,
    /// without serving the API. Give it the cluster's --metadata (etcd) and
    /// --storage; run as many as the pipelines' parallelism_spec asks for, on
    /// any hosts.
    Worker {
        /// How many datums this worker runs at once.
        #[arg(long, env = "PACHD_WORKER_SLOTS", default_value_t = 1)]
        slots: usize,
    },
}

impl Config {
    pub fn data_dir(&self) -> PathBuf {
        if let Some(d) = &self.data_dir {
            return d.clone();
        }
        let base = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("pachd")
    }

    pub fn storage_url(&self, data_dir: &std::path::Path) -> String {
        match &self.storage {
            Some(s) => s.clone(),
            None => data_dir.join("objects").display().to_string(),
        }
    }
}

/// Where the metadata lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metadata {
    Embedded(PathBuf),
    Etcd {
        endpoints: Vec<String>,
        prefix: String,
    },
}

impl Config {
    pub fn metadata(&self, data_dir: &std::path::Path) -> anyhow::Result<Metadata> {
        let Some(url) = self.metadata.as_deref().filter(|m| !m.is_empty()) else {
            return Ok(Metadata::Embedded(data_dir.join("meta.redb")));
        };
        let Some(rest) = url.strip_prefix("etcd://") else {
            anyhow::bail!(
                "--metadata '{url}' is not understood: use etcd://HOST:PORT[,HOST:PORT][/PREFIX], or leave it out for the embedded store"
            );
        };
        let (hosts, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let endpoints: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| format!("http://{h}"))
            .collect();
        if endpoints.is_empty() {
            anyhow::bail!("--metadata '{url}' names no etcd endpoint: use etcd://HOST:PORT");
        }
        let prefix = if prefix.is_empty() || prefix.ends_with('/') {
            prefix.to_string()
        } else {
            format!("{prefix}/")
        };
        Ok(Metadata::Etcd { endpoints, prefix })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(m: Option<&str>) -> Config {
        Config {
            data_dir: None,
            address: String::new(),
            s3gateway_address: String::new(),
            storage: None,
            metadata: m.map(str::to_string),
            log_level: String::new(),
            metadata_cache_mib: 0,
            worker_slots: 0,
            take_over_bucket: false,
            command: None,
        }
    }

    #[test]
    fn metadata_urls() {
        let d = std::path::Path::new("/d");
        assert_eq!(
            config(None).metadata(d).unwrap(),
            Metadata::Embedded(d.join("meta.redb"))
        );
        assert_eq!(
            config(Some("etcd://a:1,b:2/prod")).metadata(d).unwrap(),
            Metadata::Etcd {
                endpoints: vec!["http://a:1".into(), "http://b:2".into()],
                prefix: "prod/".into()
            }
        );
        assert!(config(Some("redis://x")).metadata(d).is_err());
        assert!(config(Some("etcd://")).metadata(d).is_err());
    }
}
