//! The one typed configuration of pachd: flags, each also readable from the
//! environment, with defaults that work on a laptop.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Pachyderm 1.9's S3 gateway port, on loopback like pachd's own default.
pub const DEFAULT_S3GATEWAY_ADDRESS: &str = "localhost:30600";

/// Pachyderm 1.9's githook node port (30000 + 999), on loopback like
/// pachd's own default.
pub const DEFAULT_GITHOOK_ADDRESS: &str = "localhost:30999";

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

    /// Address to serve the gRPC API on: HOST:PORT, or :PORT for every
    /// interface (0.0.0.0:PORT).
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

    /// Address to serve git inputs' webhook on (HOST:PORT, :PORT for every
    /// interface; empty: no webhook): POST /v1/handle/push with a push
    /// event (GitHub's JSON) fetches the git inputs on that repository and
    /// branch at once. When the default address is taken, pachd goes on
    /// without it (polling still fetches).
    #[arg(
        long = "githook-address",
        env = "PACHD_GITHOOK_ADDRESS",
        default_value = DEFAULT_GITHOOK_ADDRESS
    )]
    pub githook_address: String,

    /// The secret of the git host's webhook: when set, a push event must be
    /// signed with it (GitHub's X-Hub-Signature-256, Gitea's
    /// X-Gitea-Signature: HMAC-SHA256 of the body), others are refused.
    /// Prefer the environment, which `ps` does not show.
    #[arg(
        long = "githook-secret",
        env = "PACHD_GITHOOK_SECRET",
        hide_env_values = true
    )]
    pub githook_secret: Option<String>,

    /// How often pachd fetches the branch of each git input (e.g. 30s, 5m;
    /// 0s: never, only on webhook push events). Local repositories have no
    /// webhooks: polling is how their pushes arrive.
    #[arg(
        long = "git-poll-interval",
        env = "PACHD_GIT_POLL_INTERVAL",
        default_value = "1m",
        value_parser = humantime::parse_duration
    )]
    pub git_poll_interval: Duration,

    /// Object store URL for content: a path, file:///path, s3://bucket[/prefix],
    /// az://container or gs://bucket. Default: <data-dir>/objects.
    /// S3 endpoint, region and credentials come from the AWS_* environment
    /// variables; the bucket must answer when pachd starts.
    #[arg(long, env = "PACHD_STORAGE", global = true)]
    pub storage: Option<String>,

    /// A directory where the file:// URLs that clients send may read and
    /// write (extract/restore --url, put file from a URL, pipeline egress
    /// and spec URLs). Repeatable; in the environment, directories separated
    /// by ':'. None by default, and never inside the data directory or a
    /// local --storage directory.
    #[arg(
        long = "allow-file-url",
        value_name = "DIR",
        env = "PACHD_ALLOW_FILE_URL",
        value_delimiter = ':',
        global = true
    )]
    pub allow_file_url: Vec<PathBuf>,

    /// Metadata store: empty for the embedded store (<data-dir>/meta.redb), or
    /// etcd://HOST:PORT[,HOST:PORT...][/PREFIX] for an etcd cluster (run etcd
    /// with --max-txn-ops 1024). Several pachd on one etcd prefix and one
    /// bucket serve the same cluster.
    #[arg(long, env = "PACHD_METADATA", global = true)]
    pub metadata: Option<String>,

    /// How long to wait for an etcd metadata store that does not answer
    /// yet (pachd may start before its etcd) before giving up.
    #[arg(
        long,
        env = "PACHD_METADATA_CONNECT_TIMEOUT",
        default_value = "60s",
        value_parser = humantime::parse_duration,
        global = true
    )]
    pub metadata_connect_timeout: Duration,

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

    /// The network user code gets. loopback: none beyond its sandbox's own
    /// loopback (the default: user code cannot reach pachd, the metadata
    /// store or anything else). outbound: outbound connections through
    /// slirp4netns (e.g. `pip install` in a build pipeline), never to the
    /// host's loopback nor to pachd's or the metadata store's ports; needs
    /// slirp4netns and nftables.
    #[arg(
        long,
        env = "PACHD_DATUM_NETWORK",
        value_enum,
        default_value_t = DatumNetwork::Loopback,
        global = true
    )]
    pub datum_network: DatumNetwork,

    /// The certificate (PEM, the server's first, then its chain) pachd serves
    /// gRPC and the S3 gateway with over TLS, on their usual ports; needs
    /// --tls-key. Default: tls.crt in --tls-dir, when it is there. The files
    /// are read again when they change (a renewal needs no restart).
    #[arg(long, env = "PACHD_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "PACHD_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// Where Pachyderm's deployments mount pachd's certificate: when
    /// tls.crt and tls.key are there (and no --tls-cert is given), pachd
    /// serves TLS with them.
    #[arg(
        long,
        env = "PACHD_TLS_DIR",
        value_name = "DIR",
        default_value = DEFAULT_TLS_DIR
    )]
    pub tls_dir: PathBuf,

    #[command(subcommand)]
    pub command: Option<Role>,
}

/// Pachyderm 1.9's mount point of the `pachd-tls-cert` secret, and the
/// names of its two files.
pub const DEFAULT_TLS_DIR: &str = "/pachd-tls-cert";
pub const TLS_CERT_FILE: &str = "tls.crt";
pub const TLS_KEY_FILE: &str = "tls.key";

/// `--datum-network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DatumNetwork {
    Loopback,
    Outbound,
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

    /// The storage URL, refused when it cannot keep the cluster's objects.
    pub fn storage_url(&self, data_dir: &std::path::Path) -> anyhow::Result<String> {
        let url = match &self.storage {
            Some(s) => s.clone(),
            None => data_dir.join("objects").display().to_string(),
        };
        if url.to_ascii_lowercase().starts_with("memory:") {
            anyhow::bail!(
                "--storage {url} keeps objects in pachd's memory only: every file would be lost \
                 when pachd stops, while the metadata store keeps the records that name them. \
                 Use a directory (--storage /path or file:///path) or a bucket (s3://, az://, gs://)"
            );
        }
        Ok(url)
    }

    /// The certificate and key to serve TLS with, if any: --tls-cert and
    /// --tls-key, else tls.crt and tls.key of --tls-dir when they are there.
    /// Half a pair is refused, naming what is missing.
    pub fn tls_files(&self) -> anyhow::Result<Option<pach_tls::cert::CertFiles>> {
        use pach_tls::cert::CertFiles;
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(CertFiles {
                cert: cert.clone(),
                key: key.clone(),
            })),
            (Some(cert), None) => anyhow::bail!(
                "--tls-cert {} needs --tls-key FILE: the certificate's private key",
                cert.display()
            ),
            (None, Some(key)) => anyhow::bail!(
                "--tls-key {} needs --tls-cert FILE: the certificate of that key",
                key.display()
            ),
            (None, None) => {
                let cert = self.tls_dir.join(TLS_CERT_FILE);
                let key = self.tls_dir.join(TLS_KEY_FILE);
                match (cert.exists(), key.exists()) {
                    (true, true) => Ok(Some(CertFiles { cert, key })),
                    (false, false) => Ok(None),
                    (present, _) => {
                        let (there, missing) = if present {
                            (&cert, &key)
                        } else {
                            (&key, &cert)
                        };
                        anyhow::bail!(
                            "{} is there but {} is not: TLS needs both (--tls-dir {}). \
                             Add the missing file, remove the other to serve without TLS, \
                             or name the files with --tls-cert and --tls-key",
                            there.display(),
                            missing.display(),
                            self.tls_dir.display()
                        )
                    }
                }
            }
        }
    }

    /// The addresses `--address` names, in the order to try them.
    pub fn listen_addresses(&self) -> anyhow::Result<Vec<SocketAddr>> {
        parse_address(&self.address)
    }
}

/// `HOST:PORT`, `[IPV6]:PORT` or `:PORT` (every interface), optionally
/// after `grpc://`, as socket addresses; host names are resolved.
pub fn parse_address(address: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let way_out = "use --address HOST:PORT (e.g. localhost:30650), or :PORT for every interface";
    let plain = address.strip_prefix("grpc://").unwrap_or(address);
    let Some((host, port)) = plain.rsplit_once(':') else {
        anyhow::bail!("--address '{address}' has no port; {way_out}");
    };
    let port: u16 = port.parse().map_err(|_| {
        anyhow::anyhow!("--address '{address}': '{port}' is not a port number (0-65535); {way_out}")
    })?;
    if host.is_empty() {
        return Ok(vec![SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port,
        )]);
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if bare.contains([':', '[', ']', '/', ' ']) {
        anyhow::bail!(
            "--address '{address}': '{host}' is not a host name or IP address; {way_out}"
        );
    }
    let resolved: Vec<SocketAddr> = (bare, port)
        .to_socket_addrs()
        .map_err(|e| {
            anyhow::anyhow!("--address '{address}': cannot resolve '{host}' ({e}); {way_out}")
        })?
        .collect();
    if resolved.is_empty() {
        anyhow::bail!("--address '{address}': '{host}' resolves to no address; {way_out}");
    }
    Ok(resolved)
}

impl Config {
    /// The settings in force, as `debug dump` shows them: URLs without
    /// their credentials, nothing from the environment but what is named.
    pub fn shown(
        &self,
        data_dir: &std::path::Path,
        metadata: &str,
        storage_url: &str,
    ) -> Vec<(&'static str, String)> {
        let redact = crate::api::redact_url;
        vec![
            ("address", self.address.clone()),
            ("data dir", data_dir.display().to_string()),
            ("metadata", redact(metadata)),
            ("storage", redact(storage_url)),
            ("metadata cache", format!("{} MiB", self.metadata_cache_mib)),
            ("worker slots", self.worker_slots.to_string()),
            ("githook address", self.githook_address.clone()),
            (
                "githook secret",
                if self.githook_secret.is_some() {
                    "set"
                } else {
                    "none"
                }
                .to_string(),
            ),
            (
                "git poll interval",
                humantime::format_duration(self.git_poll_interval).to_string(),
            ),
            ("log level", self.log_level.clone()),
            (
                "tls",
                match self.tls_files() {
                    Ok(Some(f)) => {
                        format!("certificate {}, key {}", f.cert.display(), f.key.display())
                    }
                    _ => "off".to_string(),
                },
            ),
        ]
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
            githook_address: String::new(),
            githook_secret: None,
            git_poll_interval: Duration::from_secs(60),
            storage: None,
            allow_file_url: Vec::new(),
            metadata: m.map(str::to_string),
            metadata_connect_timeout: Duration::from_secs(60),
            log_level: String::new(),
            metadata_cache_mib: 0,
            worker_slots: 0,
            take_over_bucket: false,
            datum_network: DatumNetwork::Loopback,
            tls_cert: None,
            tls_key: None,
            tls_dir: PathBuf::from(DEFAULT_TLS_DIR),
            command: None,
        }
    }

    #[test]
    fn tls_files_from_flags_or_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(None);
        c.tls_dir = dir.path().to_path_buf();
        assert_eq!(c.tls_files().unwrap(), None);
        std::fs::write(dir.path().join("tls.crt"), "x").unwrap();
        let err = c.tls_files().unwrap_err().to_string();
        assert!(err.contains("tls.key is not"), "{err}");
        std::fs::write(dir.path().join("tls.key"), "x").unwrap();
        let files = c.tls_files().unwrap().unwrap();
        assert_eq!(files.cert, dir.path().join("tls.crt"));
        assert_eq!(files.key, dir.path().join("tls.key"));
        // Flags win over the directory.
        c.tls_cert = Some("/a.crt".into());
        let err = c.tls_files().unwrap_err().to_string();
        assert!(err.contains("needs --tls-key"), "{err}");
        c.tls_key = Some("/a.key".into());
        assert_eq!(
            c.tls_files().unwrap().unwrap().cert,
            PathBuf::from("/a.crt")
        );
    }

    #[test]
    fn addresses() {
        let one = |a: &str| parse_address(a).unwrap();
        assert_eq!(one(":30650"), vec!["0.0.0.0:30650".parse().unwrap()]);
        assert_eq!(one("grpc://:1"), vec!["0.0.0.0:1".parse().unwrap()]);
        assert_eq!(one("127.0.0.1:0"), vec!["127.0.0.1:0".parse().unwrap()]);
        assert_eq!(one("[::1]:30650"), vec!["[::1]:30650".parse().unwrap()]);
        assert_eq!(one("0.0.0.0:30650"), vec!["0.0.0.0:30650".parse().unwrap()]);
        assert!(one("localhost:30650").iter().all(|a| a.ip().is_loopback()));
        for (bad, needle) in [
            ("30650", "has no port"),
            ("localhost", "has no port"),
            ("localhost:http", "not a port number"),
            (":99999", "not a port number"),
            ("a b:1", "not a host name"),
            ("no-such-host.invalid:1", "cannot resolve"),
        ] {
            let err = parse_address(bad).unwrap_err().to_string();
            assert!(err.contains(needle) && err.contains(bad), "{bad}: {err}");
            assert!(!err.contains("another pachd"), "{bad}: {err}");
        }
    }

    #[test]
    fn memory_storage_is_refused() {
        let mut c = config(None);
        c.storage = Some("memory://".into());
        let err = c.storage_url(std::path::Path::new("/d")).unwrap_err();
        assert!(err.to_string().contains("lost when pachd stops"), "{err}");
        c.storage = None;
        assert_eq!(
            c.storage_url(std::path::Path::new("/d")).unwrap(),
            "/d/objects"
        );
    }

    #[test]
    fn allowed_directories_from_flags_and_environment() {
        let c = Config::try_parse_from([
            "pachd",
            "--allow-file-url",
            "/a",
            "--allow-file-url",
            "/b:/c",
        ])
        .unwrap();
        assert_eq!(
            c.allow_file_url,
            [PathBuf::from("/a"), "/b".into(), "/c".into()]
        );
        let c = Config::try_parse_from(["pachd", "--metadata-connect-timeout", "1m30s"]).unwrap();
        assert_eq!(c.metadata_connect_timeout, Duration::from_secs(90));
        assert!(Config::try_parse_from(["pachd", "--metadata-connect-timeout", "soon"]).is_err());
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

    #[test]
    fn datum_network_defaults_to_loopback() {
        let parse = |args: &[&str]| Config::try_parse_from([&["pachd"], args].concat());
        assert_eq!(parse(&[]).unwrap().datum_network, DatumNetwork::Loopback);
        assert_eq!(
            parse(&["--datum-network", "outbound"])
                .unwrap()
                .datum_network,
            DatumNetwork::Outbound
        );
        assert_eq!(
            parse(&["worker", "--datum-network", "outbound"])
                .unwrap()
                .datum_network,
            DatumNetwork::Outbound
        );
        assert!(parse(&["--datum-network", "everywhere"]).is_err());
    }
}
