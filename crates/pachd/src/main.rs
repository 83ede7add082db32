//! `pachd`: the server. Configuration and wiring only: it opens the metadata
//! store and the bucket, checks the store's format version, starts the pipeline
//! controller and serves the gRPC API until SIGTERM or SIGINT.

mod api;
mod cluster;
mod config;
mod githook;
mod logs;
mod profile;
mod s3auth;
mod urls;

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use pach_pfs::Pfs;
use pach_storage::ContentStore;

use crate::config::Config;

fn main() {
    // The same executable is the agent inside each datum sandbox; it must
    // take over before any thread starts.
    pach_worker::agent::run_if_invoked();
    limit_malloc_arenas();
    serve_main();
}

/// glibc gives threads that allocate at once arenas of their own (up to
/// eight per core) and keeps in each what is freed there: streaming a large
/// file through the runtime's threads held twice the memory it used (a
/// 3 GiB get peaked at 90-100 MiB instead of 45-50). Two arenas keep the
/// peak there without slowing the stream; set before any thread starts.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable of the allocator; no thread of
    // this process allocates concurrently yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Log lines kept in memory for `debug dump`.
const RECENT_LOG_LINES: usize = 2000;

#[tokio::main]
async fn serve_main() {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let config = Config::parse();
    let recent = logs::RecentLogs::new(RECENT_LOG_LINES);
    // stderr shows what --log-level (or PACHD_LOG) asks for; the ring of
    // recent lines keeps info and above whatever that is, so a dump of a
    // quiet pachd still shows what it did.
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(
                    tracing_subscriber::EnvFilter::try_from_env("PACHD_LOG")
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level)),
                ),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(recent.clone())
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        )
        .init();
    if let Err(e) = run(config, recent).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(config: Config, recent: logs::RecentLogs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    // Every flag is checked, and the address taken, before anything is
    // created: a bad command line leaves no data directory behind.
    let data_dir = config.data_dir();
    let metadata = config.metadata(&data_dir)?;
    if config.command.is_some() && matches!(metadata, config::Metadata::Embedded(_)) {
        anyhow::bail!(
            "a worker shares its cluster's metadata store, and the embedded store belongs to one pachd: \
             start the cluster's pachd and its workers with the same --metadata etcd://HOST:PORT and --storage URL"
        );
    }
    let storage_url = config.storage_url(&data_dir)?;
    let mut own_data = vec![data_dir.clone()];
    own_data.extend(pach_storage::local_dir(&storage_url));
    let url_policy = urls::client_policy(&config.allow_file_url, own_data)?;
    // The certificate is read (and checked against its key) before anything
    // is created, like every other flag; workers serve nothing.
    let tls = match config.command {
        Some(config::Role::Worker { .. }) => None,
        None => tls_certificate(&config)?,
    };
    let socket = match config.command {
        Some(config::Role::Worker { .. }) => None,
        None => Some(reserve_address(
            &config.address,
            &config.listen_addresses()?,
        )?),
    };

    let operator = pach_storage::UrlPolicy::operator();
    let (store, prefix) = pach_storage::open_url(&storage_url, &operator)
        .with_context(|| format!("cannot open the object store '{storage_url}' (--storage)"))?;
    pach_storage::check_store(&storage_url, &operator, &*store, &prefix)
        .await
        .with_context(|| {
            format!("the object store '{storage_url}' cannot be used; check --storage")
        })?;
    std::fs::create_dir_all(&data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}; choose another with --data-dir",
            data_dir.display()
        )
    })?;
    let (meta, meta_name): (Arc<dyn pach_meta::MetaStore>, String) = match metadata {
        config::Metadata::Embedded(path) => (
            Arc::new(pach_meta::RedbStore::open_with_cache(
                &path,
                Some(config.metadata_cache_mib << 20),
            )?),
            path.display().to_string(),
        ),
        config::Metadata::Etcd { endpoints, prefix } => (
            Arc::new(
                pach_meta::EtcdStore::connect_waiting(
                    &endpoints,
                    &prefix,
                    config.metadata_connect_timeout,
                )
                .await
                .with_context(|| {
                    format!(
                        "cannot open the etcd metadata store {} (--metadata); check that etcd \
                         runs there, or wait longer with --metadata-connect-timeout",
                        endpoints.join(",")
                    )
                })?,
            ),
            format!("etcd {} prefix '{prefix}'", endpoints.join(",")),
        ),
    };
    let cluster = cluster::open(&*meta).await?;
    tracing::info!(cluster_id = %cluster.id, metadata = %api::redact_url(&meta_name), storage = %api::redact_url(&storage_url), "opened cluster");
    let content = ContentStore::new(store, prefix);
    let take_over = config.take_over_bucket && config.command.is_none();
    cluster::own_bucket(&cluster, &*meta, &content, &storage_url, take_over).await?;
    let pfs = Pfs::new(meta, content);
    // Datums are materialised here while they run; leftovers of a crash go.
    let scratch = scratch_dir(&data_dir, config.command.is_some());
    let _ = std::fs::remove_dir_all(&scratch);
    urls::set_policy(url_policy.clone());
    // Datums reach neither the metadata store nor this pachd's API.
    let mut refused = metadata_ports(&config, &data_dir);
    if let Some(socket) = &socket {
        refused.push(socket.local_addr()?.port());
    }
    let pps = pach_pps::Pps::new(pfs, scratch)
        .with_url_policy(url_policy)
        .with_datum_network(datum_network(config.datum_network, &refused))
        // Services are published where pachd listens.
        .with_service_host(
            config
                .listen_addresses()?
                .first()
                .map_or_else(|| "127.0.0.1".into(), |a| a.ip().to_string()),
        );
    let shutdown = shutdown_signal();
    // One cache of who may do what, for every check this process makes.
    let auth = pach_auth::Auth::new(pps.pfs().meta().clone());
    if let Some(config::Role::Worker { slots }) = config.command {
        // User code on this worker reaches the gateway in its sandbox, served
        // by this process (plain HTTP: a worker loads no certificate, and
        // the connections never leave this host's kernel).
        let pps = match configured_s3_port(&config) {
            Some(port) => {
                let gateway = sandbox_gateway(&pps, auth.clone(), None, port);
                pps.with_s3_gateway(gateway)
            }
            None => pps,
        };
        // Scripts wait for this line on stdout to know the worker is up.
        println!("pachd worker running {} datum(s) at once", slots.max(1));
        tokio::select! {
            _ = pps.run_worker(slots.max(1)) => {}
            _ = shutdown => {}
        }
        return Ok(());
    }
    let pps = pps.with_git_poll(config.git_poll_interval);
    let pps = pps.with_job_access(api::job_access(auth.clone()));
    let (pps, gateway) = start_s3gateway(&config, pps, auth.clone(), tls.as_ref()).await?;
    let pps = start_githook(&config, pps, tls.as_ref()).await?;
    tokio::spawn(pps.clone().run_controller());
    if config.worker_slots > 0 {
        tokio::spawn(pps.clone().run_worker(config.worker_slots));
    }
    let Some(socket) = socket else {
        anyhow::bail!(
            "no address was reserved for the API (a bug: the worker role returned above)"
        );
    };
    let listener = socket
        .listen(1024)
        .with_context(|| format!("cannot listen on {} (--address)", config.address))?;
    let local = listener.local_addr()?;
    let incoming = pach_tls::incoming::Incoming::new(
        listener,
        tls.as_ref().map(|c| c.server_config(&[b"h2"])),
        Arc::new(grpc_refusal),
    )?;
    match &tls {
        Some(c) => {
            tracing::info!(address = %local, cert = %c.files().cert.display(), "pachd listening (gRPC over TLS)")
        }
        None => tracing::info!(address = %local, "pachd listening"),
    }
    // Scripts wait for this line on stdout to know the server is ready.
    println!("pachd listening on {local}");
    api::serve(
        api::Server {
            pps,
            auth,
            spool: data_dir.join("spool"),
            cluster,
            diagnostics: api::Diagnostics {
                logs: recent,
                config: config.shown(&data_dir, &meta_name, &storage_url),
                started,
            },
        },
        incoming,
        shutdown,
    )
    .await?;
    if let Some(g) = gateway {
        let _ = g.await;
    }
    tracing::info!("pachd stopped");
    Ok(())
}

/// The certificate every port serves when TLS is on (reloaded when its
/// files change), or `None`.
fn tls_certificate(config: &Config) -> anyhow::Result<Option<Arc<pach_tls::cert::ReloadingCert>>> {
    let Some(files) = config.tls_files()? else {
        return Ok(None);
    };
    let cert = pach_tls::cert::ReloadingCert::new(files).map_err(|e| {
        anyhow::anyhow!(
            "cannot serve TLS: {e}. Fix the file, or name others with --tls-cert FILE --tls-key FILE"
        )
    })?;
    Ok(Some(Arc::new(cert)))
}

/// What the gRPC port answers a client that connected without TLS.
fn grpc_refusal(authority: &str) -> String {
    format!(
        "{}: connect with grpcs://{authority} (pachctl: PACHD_ADDRESS=grpcs://{authority}, or \
         `pachctl config update context --pachd-address grpcs://{authority} --server-cas CA.pem`; \
         python-pachyderm: Client(host, port, tls=True, root_certs=CA_PEM))",
        pach_tls::PLAINTEXT_ON_TLS_PORT
    )
}

/// What the S3 gateway answers a client that connected without TLS.
fn s3_refusal(authority: &str) -> String {
    format!(
        "pachd's S3 gateway serves HTTPS on this port, and this client connected over plain HTTP: \
         use https://{authority} (e.g. aws --endpoint-url https://{authority}, with --ca-bundle CA.pem \
         when its certificate is signed by a private CA)"
    )
}

/// Starts the S3 gateway when configured, and tells pipelines' user code
/// where it is (`S3_ENDPOINT`). A default address already taken (another
/// pachd on this host) leaves pachd without a gateway; an address given
/// explicitly must be served. With TLS on it serves HTTPS with pachd's
/// certificate.
async fn start_s3gateway(
    config: &Config,
    pps: pach_pps::Pps,
    auth: pach_auth::Auth,
    tls: Option<&Arc<pach_tls::cert::ReloadingCert>>,
) -> anyhow::Result<(pach_pps::Pps, Option<tokio::task::JoinHandle<()>>)> {
    let address = config.s3gateway_address.trim();
    if address.is_empty() {
        return Ok((pps, None));
    }
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(l) => l,
        Err(e) if address == config::DEFAULT_S3GATEWAY_ADDRESS => {
            tracing::warn!(
                %address,
                "S3 gateway not started on the host: cannot listen on {address} ({e}); choose another with --s3gateway-address HOST:PORT (pipelines' user code still reaches it in its sandbox)"
            );
            let port = configured_s3_port(config).unwrap_or(DEFAULT_S3_PORT);
            let gateway = sandbox_gateway(&pps, auth, tls, port);
            return Ok((pps.with_s3_gateway(gateway), None));
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!("cannot serve the S3 gateway on {address}; choose another with --s3gateway-address HOST:PORT, or '' for none")
            });
        }
    };
    let local = listener.local_addr()?;
    tracing::info!(address = %local, "S3 gateway listening");
    let host = if local.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), local.port())
    } else {
        local
    };
    let sandboxes = sandbox_gateway(&pps, auth.clone(), tls, host.port());
    let pps = pps.with_s3_gateway(sandboxes);
    let authorizer = s3auth::TokenAuthorizer { auth };
    let gateway = pach_s3gateway::Gateway::new(pps.pfs().clone(), Arc::new(authorizer));
    let incoming = pach_tls::incoming::Incoming::new(
        listener,
        tls.map(|c| c.server_config(&[b"h2", b"http/1.1"])),
        Arc::new(s3_refusal),
    )?;
    let handle = tokio::spawn(async move {
        if let Err(e) = gateway
            .serve(HttpIncoming(incoming), shutdown_signal())
            .await
        {
            tracing::error!("the S3 gateway stopped: {e}");
        }
    });
    Ok((pps, Some(handle)))
}

/// Pachyderm 1.9's S3 gateway port.
const DEFAULT_S3_PORT: u16 = 30600;

/// The port of `--s3gateway-address` (`None` when the gateway is off).
fn configured_s3_port(config: &Config) -> Option<u16> {
    let address = config.s3gateway_address.trim();
    if address.is_empty() {
        return None;
    }
    Some(
        address
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p != 0)
            .unwrap_or(DEFAULT_S3_PORT),
    )
}

/// The S3 gateway inside pipelines' sandboxes (`docs/s3gateway.md`): on
/// `port` of each sandbox's loopback, with pachd's certificate when TLS is
/// on, answering as the pipeline whose sandbox it is.
fn sandbox_gateway(
    pps: &pach_pps::Pps,
    auth: pach_auth::Auth,
    tls: Option<&Arc<pach_tls::cert::ReloadingCert>>,
    port: u16,
) -> pach_pps::SandboxGateway {
    let pfs = pps.pfs().clone();
    let tls = tls.map(|c| c.server_config(&[b"h2", b"http/1.1"]));
    let scheme = if tls.is_some() { "https" } else { "http" };
    let serve = move |pipeline: &str, listener: std::net::TcpListener| {
        let authorizer = s3auth::PipelineAuthorizer {
            auth: auth.clone(),
            subject: format!("pipeline:{pipeline}"),
        };
        let gateway = pach_s3gateway::Gateway::new(pfs.clone(), Arc::new(authorizer));
        let (tls, pipeline) = (tls.clone(), pipeline.to_string());
        tokio::spawn(async move {
            let incoming = tokio::net::TcpListener::from_std(listener)
                .and_then(|l| pach_tls::incoming::Incoming::new(l, tls, Arc::new(s3_refusal)));
            let result = match incoming {
                Ok(incoming) => {
                    gateway
                        .serve(HttpIncoming(incoming), std::future::pending())
                        .await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::warn!(%pipeline, "the S3 gateway in the pipeline's sandbox stopped: {e}");
            }
        })
    };
    pach_pps::SandboxGateway {
        scheme,
        port,
        serve: Arc::new(serve),
    }
}

/// Starts the webhook endpoint of git inputs when configured, and tells
/// pipelines its URL (`githook_url`). As for the S3 gateway: the default
/// address taken leaves pachd without one, an explicit one must be served.
async fn start_githook(
    config: &Config,
    pps: pach_pps::Pps,
    tls: Option<&Arc<pach_tls::cert::ReloadingCert>>,
) -> anyhow::Result<pach_pps::Pps> {
    let address = config.githook_address.trim();
    if address.is_empty() {
        return Ok(pps);
    }
    let addrs = config::parse_address(address).map_err(|e| {
        anyhow::anyhow!(
            "--githook-address: {}",
            e.to_string().replace("--address", "--githook-address")
        )
    })?;
    let listener = match tokio::net::TcpListener::bind(&addrs[..]).await {
        Ok(l) => l,
        Err(e) if address == config::DEFAULT_GITHOOK_ADDRESS => {
            tracing::warn!(
                %address,
                "git webhook not started: cannot listen on {address} ({e}); git inputs are fetched by polling only; choose another address with --githook-address HOST:PORT"
            );
            return Ok(pps);
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!("cannot serve the git webhook on {address}; choose another with --githook-address HOST:PORT, or '' for none")
            });
        }
    };
    let local = listener.local_addr()?;
    // Shown to users, who give it to their git host: a name others reach
    // when pachd listens on every interface.
    let host = if local.ip().is_unspecified() {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into())
    } else if local.is_ipv6() {
        format!("[{}]", local.ip())
    } else {
        local.ip().to_string()
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{host}:{}{}", local.port(), githook::HOOK_PATH);
    tracing::info!(address = %local, %url, "git webhook listening");
    let pps = pps.with_githook_url(url);
    let router = githook::router(pps.clone(), config.githook_secret.as_deref());
    let incoming = pach_tls::incoming::Incoming::new(
        listener,
        tls.map(|c| c.server_config(&[b"http/1.1"])),
        Arc::new(githook_refusal),
    )?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(HttpIncoming(incoming), router)
            .with_graceful_shutdown(shutdown_signal())
            .await
        {
            tracing::error!("the git webhook stopped: {e}");
        }
    });
    Ok(pps)
}

/// What the webhook port answers a client that connected without TLS.
fn githook_refusal(authority: &str) -> String {
    format!(
        "pachd's git webhook serves HTTPS on this port, and this client connected over plain \
         HTTP: use https://{authority}{} as the webhook's URL",
        githook::HOOK_PATH
    )
}

/// The connections of pachd's HTTP ports (the S3 gateway, the git
/// webhook), as axum takes them.
struct HttpIncoming(pach_tls::incoming::Incoming);

impl pach_s3gateway::Listener for HttpIncoming {
    type Io = pach_tls::incoming::Conn;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.0.accept().await {
            Some(conn) => {
                let peer = conn.remote_addr().unwrap_or(self.0.local_addr());
                (conn, peer)
            }
            // The accept loop ended: pachd is stopping.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.0.local_addr())
    }
}

fn datum_network(setting: config::DatumNetwork, refused: &[u16]) -> pach_worker::Network {
    match setting {
        config::DatumNetwork::Loopback => pach_worker::Network::Loopback,
        config::DatumNetwork::Outbound => pach_worker::Network::Outbound {
            refused_ports: refused.to_vec(),
        },
    }
}

/// The ports of the etcd endpoints (none for the embedded store).
fn metadata_ports(config: &Config, data_dir: &std::path::Path) -> Vec<u16> {
    match config.metadata(data_dir) {
        Ok(config::Metadata::Etcd { endpoints, .. }) => endpoints
            .iter()
            .filter_map(|e| e.rsplit(':').next()?.trim_end_matches('/').parse().ok())
            .collect(),
        _ => Vec::new(),
    }
}

/// Where this process materialises datums: `scratch` for pachd, and for a
/// worker `worker-scratch-<pid>`, so that workers sharing a data directory
/// (and the pachd of that host) never clear each other's datums. Directories
/// of workers that are gone are removed.
fn scratch_dir(data_dir: &std::path::Path, worker: bool) -> std::path::PathBuf {
    if !worker {
        return data_dir.join("scratch");
    }
    if let Ok(entries) = std::fs::read_dir(data_dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("worker-scratch-")
                && !std::path::Path::new("/proc").join(pid).exists()
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    data_dir.join(format!("worker-scratch-{}", std::process::id()))
}

/// Binds (without listening yet) the first of `addresses` that can be
/// bound: the address is pachd's from now on, while clients and readiness
/// probes are refused until the API serves.
fn reserve_address(
    address: &str,
    addresses: &[std::net::SocketAddr],
) -> anyhow::Result<tokio::net::TcpSocket> {
    let mut failure = None;
    for &addr in addresses {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }?;
        // A restarted pachd takes its address back at once, whatever
        // connections of its previous run linger.
        socket.set_reuseaddr(true)?;
        match socket.bind(addr) {
            Ok(()) => return Ok(socket),
            Err(e) => failure = Some((addr, e)),
        }
    }
    let Some((addr, e)) = failure else {
        anyhow::bail!("--address '{address}' names no address to listen on");
    };
    let why = match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "{addr} is in use: another pachd (or another program) listens there; \
             stop it, or choose another address with --address HOST:PORT"
        ),
        std::io::ErrorKind::AddrNotAvailable => format!(
            "{addr} is not an address of this host; use one of its addresses, \
             or --address :PORT for every interface"
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            "listening on {addr} needs privileges (ports below 1024); choose a port above 1023"
        ),
        _ => {
            format!("cannot listen on {addr}: {e}; choose another address with --address HOST:PORT")
        }
    };
    anyhow::bail!("--address '{address}': {why}")
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is
/// called, not when the future is first polled: a signal sent right after
/// the ready line (scripts and tests send one) would otherwise meet the
/// default action, which kills pachd without a clean shutdown.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (term, interrupt) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let term = async {
                match term {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let interrupt = async {
                match interrupt {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            };
            tokio::select! {
                _ = term => {},
                _ = interrupt => {},
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    }
}
