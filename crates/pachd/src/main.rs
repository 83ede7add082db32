//! `pachd`: the server. Configuration and wiring only: it opens the metadata
//! store and the bucket, checks the store's format version, starts the pipeline
//! controller and serves the gRPC API until SIGTERM or SIGINT.

mod admin_service;
mod cluster;
mod config;
mod pps_service;
mod service;

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use pach_pfs::Pfs;
use pach_storage::ContentStore;

use crate::config::Config;

#[tokio::main]
async fn main() {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PACHD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(config).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let data_dir = config.data_dir();
    std::fs::create_dir_all(&data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}; choose another with --data-dir",
            data_dir.display()
        )
    })?;
    let metadata = config.metadata(&data_dir)?;
    if config.command.is_some() && matches!(metadata, config::Metadata::Embedded(_)) {
        anyhow::bail!(
            "a worker shares its cluster's metadata store, and the embedded store belongs to one pachd: \
             start the cluster's pachd and its workers with the same --metadata etcd://HOST:PORT and --storage URL"
        );
    }
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
                pach_meta::EtcdStore::connect(&endpoints, &prefix)
                    .await
                    .with_context(|| {
                        format!(
                            "cannot open the etcd metadata store {} (--metadata)",
                            endpoints.join(",")
                        )
                    })?,
            ),
            format!("etcd {} prefix '{prefix}'", endpoints.join(",")),
        ),
    };
    let storage_url = config.storage_url(&data_dir);
    let (store, prefix) = pach_storage::open_object_store(&storage_url)
        .with_context(|| format!("cannot open the object store '{storage_url}' (--storage)"))?;
    let cluster = cluster::open(&*meta).await?;
    tracing::info!(cluster_id = %cluster.id, metadata = %meta_name, storage = %storage_url, "opened cluster");
    let content = ContentStore::new(store, prefix);
    let take_over = config.take_over_bucket && config.command.is_none();
    cluster::own_bucket(&cluster, &*meta, &content, &storage_url, take_over).await?;
    let pfs = Pfs::new(meta, content);
    // Datums are materialised here while they run; leftovers of a crash go.
    let scratch = scratch_dir(&data_dir, config.command.is_some());
    let _ = std::fs::remove_dir_all(&scratch);
    let pps = pach_pps::Pps::new(pfs, scratch);
    if let Some(config::Role::Worker { slots }) = config.command {
        // Scripts wait for this line on stdout to know the worker is up.
        println!("pachd worker running {} datum(s) at once", slots.max(1));
        tokio::select! {
            _ = pps.run_worker(slots.max(1)) => {}
            _ = shutdown_signal() => {}
        }
        return Ok(());
    }
    let (pps, gateway) = start_s3gateway(&config, pps).await?;
    tokio::spawn(pps.clone().run_controller());
    if config.worker_slots > 0 {
        tokio::spawn(pps.clone().run_worker(config.worker_slots));
    }
    let listener = bind(&config.address).await?;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, "pachd listening");
    // Scripts wait for this line on stdout to know the server is ready.
    println!("pachd listening on {local}");
    service::serve(pps, data_dir.join("spool"), listener, shutdown_signal()).await?;
    if let Some(g) = gateway {
        let _ = g.await;
    }
    tracing::info!("pachd stopped");
    Ok(())
}

/// Starts the S3 gateway when configured, and tells pipelines' user code
/// where it is (`S3_ENDPOINT`). A default address already taken (another
/// pachd on this host) leaves pachd without a gateway; an address given
/// explicitly must be served.
async fn start_s3gateway(
    config: &Config,
    pps: pach_pps::Pps,
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
                "S3 gateway not started: cannot listen on {address} ({e}); choose another with --s3gateway-address HOST:PORT"
            );
            return Ok((pps, None));
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
    let pps = pps.with_s3_endpoint(format!("http://{host}"));
    let gateway =
        pach_s3gateway::Gateway::new(pps.pfs().clone(), Arc::new(pach_s3gateway::AllowAll));
    let handle = tokio::spawn(async move {
        if let Err(e) = gateway.serve(listener, shutdown_signal()).await {
            tracing::error!("the S3 gateway stopped: {e}");
        }
    });
    Ok((pps, Some(handle)))
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

async fn bind(address: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let address = address.strip_prefix("grpc://").unwrap_or(address);
    tokio::net::TcpListener::bind(address).await.with_context(|| {
        format!("cannot listen on {address}; is another pachd running? Choose another with --address HOST:PORT")
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}
