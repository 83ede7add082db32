//! The gRPC API pachd serves on its one port: Pachyderm 1.9's services
//! (`pfs.API`, `pps.API`, `admin.API`, `transaction.API`, `versionpb.API`,
//! `auth.API`, `enterprise.API`, `debug.Debug`, `health.Health`) and our
//! extension services (`pachrs.v1.Extension`, and `pachrs.v1.PipelineExtension`
//! for secrets and later releases' spec inputs). One file per service; each
//! only translates between the wire and the domain crates, and every error
//! reaches clients through `status`.

mod admin;
mod auth;
mod debug;
mod enterprise;
mod extension;
mod health;
mod pfs;
mod pipelines;
mod pps;
pub(crate) mod status;
mod transaction;
mod version;

use std::path::PathBuf;
use std::pin::Pin;

use futures::Stream;
use pach_pps::Pps;
use tonic::Status;

pub use self::debug::{Diagnostics, redact_url};
use crate::cluster::ClusterInfo;

/// The replies of a server-streaming method.
pub(crate) type ReplyStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Largest message accepted or sent (a put file data frame is at most a few MiB).
pub(crate) const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// HTTP/2 flow-control window per stream: put/get stream hundreds of MB,
/// and the 64 KiB default makes throughput wait on window updates.
const WINDOW: u32 = 16 * 1024 * 1024;

/// What the services need from the running pachd.
#[derive(Clone)]
pub struct Server {
    pub pps: Pps,
    /// Where restore keeps a stream while it validates it.
    pub spool: PathBuf,
    pub cluster: ClusterInfo,
    pub diagnostics: Diagnostics,
}

macro_rules! limits {
    ($server:expr) => {
        $server
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    };
}

pub async fn serve(
    server: Server,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use pach_api::{
        admin as admin_pb, auth as auth_pb, debug as debug_pb, enterprise as enterprise_pb,
        health as health_pb, pachrs, pfs as pfs_pb, transaction as txn_pb, versionpb,
    };
    // TCP_NODELAY on every accepted connection: without it each small
    // reply waits for the client's delayed ACK (about 40 ms a call). The
    // builder's `tcp_nodelay` applies only to listeners tonic binds itself.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let pfs = server.pps.pfs().clone();
    tonic::transport::Server::builder()
        .initial_stream_window_size(Some(WINDOW))
        .initial_connection_window_size(Some(WINDOW * 2))
        .tcp_nodelay(true)
        .layer(status::SafeStatusLayer)
        .add_service(versionpb::api_server::ApiServer::new(
            version::VersionService,
        ))
        .add_service(health_pb::health_server::HealthServer::new(
            health::HealthService,
        ))
        .add_service(auth_pb::api_server::ApiServer::new(auth::AuthService))
        .add_service(enterprise_pb::api_server::ApiServer::new(
            enterprise::EnterpriseService,
        ))
        .add_service(limits!(txn_pb::api_server::ApiServer::new(
            transaction::TransactionService { pfs: pfs.clone() }
        )))
        .add_service(limits!(admin_pb::api_server::ApiServer::new(
            admin::AdminService {
                cluster: server.cluster.clone(),
                pps: server.pps.clone(),
                spool: server.spool.clone(),
            }
        )))
        .add_service(debug_pb::debug_server::DebugServer::new(
            debug::DebugService {
                pps: server.pps.clone(),
                cluster: server.cluster.clone(),
                diagnostics: server.diagnostics.clone(),
            },
        ))
        .add_service(limits!(pachrs::v1::extension_server::ExtensionServer::new(
            extension::ExtensionService {
                pfs: pfs.clone(),
                spool: server.spool.clone(),
                cluster: server.cluster.clone(),
                pipelines: pipelines::PipelineExtension {
                    pps: server.pps.clone(),
                },
            }
        )))
        .add_service(limits!(pfs_pb::api_server::ApiServer::new(
            pfs::PfsService {
                pfs: pfs.clone(),
                transactions: transaction::TransactionService { pfs: pfs.clone() },
            }
        )))
        .add_service(limits!(pach_api::pps::api_server::ApiServer::new(
            pps::PpsService {
                pps: server.pps.clone()
            }
        )))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}
