//! The gRPC API pachd serves on its one port: Pachyderm 1.9's services
//! (`pfs.API`, `pps.API`, `admin.API`, `transaction.API`, `versionpb.API`,
//! `auth.API`, `enterprise.API`, `debug.Debug`, `health.Health`) and our
//! extension services (`pachrs.v1.Extension`, and `pachrs.v1.PipelineExtension`
//! for secrets and later releases' spec inputs). One file per service; each
//! only translates between the wire and the domain crates, and every error
//! reaches clients through `status`.

mod admin;
mod auth;
mod authz;
mod debug;
mod enterprise;
mod extension;
mod health;
mod pfs;
mod pipelines;
mod pps;
mod put_frames;
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
/// Largest HTTP/2 frame a client may send (put file's data): with the
/// 16 KiB default every frame is a write and a flush of its own, and over
/// TLS two records (16 KiB, then the frame's 9-byte head spilling over);
/// 256 KiB frames cut both sixteenfold and hold another stream back for at
/// most a quarter MiB.
pub(crate) const MAX_FRAME: u32 = 256 * 1024;

/// What the services need from the running pachd.
#[derive(Clone)]
pub struct Server {
    pub pps: Pps,
    /// Where restore keeps a stream while it validates it.
    pub spool: PathBuf,
    pub cluster: ClusterInfo,
    pub diagnostics: Diagnostics,
    /// Access control (one per process: its cache and watch are shared).
    pub auth: pach_auth::Auth,
}

/// How PPS asks whether a pipeline's job may read its inputs and write its
/// output (`authz` decides).
pub fn job_access(auth: pach_auth::Auth) -> std::sync::Arc<dyn pach_pps::JobAccess> {
    std::sync::Arc::new(authz::JobAccess { auth })
}

macro_rules! limits {
    ($server:expr) => {
        $server
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    };
}

/// Serves the API on `incoming`'s connections (TLS or not, each with
/// TCP_NODELAY: without it each small reply waits for the client's delayed
/// ACK, about 40 ms a call) until `shutdown` completes.
pub async fn serve(
    server: Server,
    incoming: pach_tls::incoming::Incoming,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use pach_api::{
        admin as admin_pb, auth as auth_pb, debug as debug_pb, enterprise as enterprise_pb,
        health as health_pb, pachrs, pfs as pfs_pb, transaction as txn_pb, versionpb,
    };
    use tokio_stream::StreamExt;
    let incoming = incoming.map(|conn| conn.map(GrpcConn));
    let pfs = server.pps.pfs().clone();
    let authz = authz::Authz::new(server.pps.clone(), server.auth.clone());
    tonic::transport::Server::builder()
        .initial_stream_window_size(Some(WINDOW))
        .initial_connection_window_size(Some(WINDOW * 2))
        .max_frame_size(Some(MAX_FRAME))
        .layer(status::SafeStatusLayer)
        .layer(put_frames::SplitPutFileLayer)
        .add_service(versionpb::api_server::ApiServer::new(
            version::VersionService,
        ))
        .add_service(health_pb::health_server::HealthServer::new(
            health::HealthService,
        ))
        .add_service(auth_pb::api_server::ApiServer::new(auth::AuthService {
            authz: authz.clone(),
            pfs: pfs.clone(),
        }))
        .add_service(enterprise_pb::api_server::ApiServer::new(
            enterprise::EnterpriseService {
                authz: authz.clone(),
            },
        ))
        .add_service(limits!(txn_pb::api_server::ApiServer::new(
            transaction::TransactionService {
                pfs: pfs.clone(),
                authz: authz.clone()
            }
        )))
        .add_service(limits!(admin_pb::api_server::ApiServer::new(
            admin::AdminService {
                cluster: server.cluster.clone(),
                pps: server.pps.clone(),
                spool: server.spool.clone(),
                authz: authz.clone(),
            }
        )))
        .add_service(debug_pb::debug_server::DebugServer::new(
            debug::DebugService {
                pps: server.pps.clone(),
                cluster: server.cluster.clone(),
                diagnostics: server.diagnostics.clone(),
                authz: authz.clone(),
            },
        ))
        .add_service(limits!(pachrs::v1::extension_server::ExtensionServer::new(
            extension::ExtensionService {
                pfs: pfs.clone(),
                spool: server.spool.clone(),
                cluster: server.cluster.clone(),
                pipelines: pipelines::PipelineExtension {
                    pps: server.pps.clone(),
                    authz: authz.clone(),
                },
                authz: authz.clone(),
            }
        )))
        .add_service(limits!(pfs_pb::api_server::ApiServer::new(
            pfs::PfsService {
                pfs: pfs.clone(),
                transactions: transaction::TransactionService {
                    pfs: pfs.clone(),
                    authz: authz.clone()
                },
                authz: authz.clone(),
            }
        )))
        .add_service(limits!(pach_api::pps::api_server::ApiServer::new(
            pps::PpsService {
                pps: server.pps.clone(),
                authz: authz.clone(),
            }
        )))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// One connection of the API, as tonic serves it: its addresses are the
/// requests' `remote_addr`.
struct GrpcConn(pach_tls::incoming::Conn);

impl tonic::transport::server::Connected for GrpcConn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        tonic::transport::server::TcpConnectInfo {
            local_addr: self.0.local_addr(),
            remote_addr: self.0.remote_addr(),
        }
    }
}

impl tokio::io::AsyncRead for GrpcConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for GrpcConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
