//! The gRPC API pachd serves on its one port: Pachyderm 1.9's services
//! (`pfs.API`, `pps.API`, `admin.API`, `transaction.API`, `versionpb.API`,
//! `auth.API`, `enterprise.API`, `debug.Debug`, `health.Health`) and our
//! extension services (`pachrs.v1.Extension`, and `pachrs.v1.PipelineExtension`
//! for secrets and later releases' spec inputs). One file per service; each
//! only translates between the wire and the domain crates, and every error
//! reaches clients through `status`.

mod auth;
mod enterprise;
mod health;
mod pipelines;
mod pps;
pub(crate) mod status;
mod version;

use std::path::PathBuf;

use pach_pps::Pps;

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
    use pach_api::{auth as auth_pb, enterprise as enterprise_pb, health as health_pb, versionpb};
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let pfs = server.pps.pfs().clone();
    tonic::transport::Server::builder()
        .initial_stream_window_size(Some(WINDOW))
        .initial_connection_window_size(Some(WINDOW * 2))
        .tcp_nodelay(true)
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
        .add_service(limits!(pach_api::pps::api_server::ApiServer::new(
            pps::PpsService {
                pps: server.pps.clone()
            }
        )))
        .add_service(
            pach_api::pachrs::v1::pipeline_extension_server::PipelineExtensionServer::new(
                pipelines::PipelineExtensionService {
                    pps: server.pps.clone(),
                },
            ),
        )
        // The retired API of earlier releases, until pachctl has moved.
        .add_service(limits!(pach_api::pfs_server::PfsServer::new(
            crate::service::PfsService { pfs: pfs.clone() }
        )))
        .add_service(limits!(pach_api::admin_server::AdminServer::new(
            crate::admin_service::AdminService {
                pfs,
                spool: server.spool.clone()
            }
        )))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}
