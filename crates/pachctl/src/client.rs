//! The connection to pachd, and turning gRPC failures into messages that say
//! what went wrong and what to do.
//!
//! Connecting asks pachd for its version with a deadline, so that a server
//! that accepts connections but never answers (or answers something that is
//! not gRPC) is reported at once instead of hanging, and HTTP/2 keep-alive
//! pings notice a pachd that stops answering in the middle of a long call.
//! Every call carries the active transaction and auth token, as Pachyderm's
//! clients send them (gRPC metadata).

use std::time::Duration;

use pach_api::{admin, auth, debug, enterprise, pachrs, pfs, pps, transaction, versionpb};
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::config::Config;

const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// How long pachd may take to answer the first call.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The gRPC metadata every call carries.
#[derive(Clone, Default)]
pub struct CallMetadata {
    /// The transaction requests are added to instead of running at once.
    pub transaction: Option<String>,
    pub token: Option<String>,
}

impl Interceptor for CallMetadata {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let pairs = [
            (pach_api::TRANSACTION_KEY, &self.transaction),
            (pach_api::AUTH_TOKEN_KEY, &self.token),
        ];
        for (key, value) in pairs {
            if let Some(v) = value {
                let v = MetadataValue::try_from(v.as_str()).map_err(|_| {
                    tonic::Status::invalid_argument(format!("{key} is not a valid header value"))
                })?;
                req.metadata_mut().insert(key, v);
            }
        }
        Ok(req)
    }
}

pub type Conn = InterceptedService<Channel, CallMetadata>;

// Fields unused until every command has moved to Pachyderm's services.
#[allow(dead_code)]
pub struct Client {
    pub pfs: pfs::api_client::ApiClient<Conn>,
    pub pps: pps::api_client::ApiClient<Conn>,
    pub admin: admin::api_client::ApiClient<Conn>,
    pub transaction: transaction::api_client::ApiClient<Conn>,
    pub version: versionpb::api_client::ApiClient<Conn>,
    pub debug: debug::debug_client::DebugClient<Conn>,
    pub auth: auth::api_client::ApiClient<Conn>,
    pub enterprise: enterprise::api_client::ApiClient<Conn>,
    pub extension: pachrs::v1::extension_client::ExtensionClient<Conn>,
    /// Secrets and later releases' spec inputs.
    pub pps_ext: pachrs::v1::pipeline_extension_client::PipelineExtensionClient<Conn>,
    /// The pachd version learnt while connecting.
    pub server_version: versionpb::Version,
    // The retired API, until every command has moved.
    pub old_pfs: pach_api::pfs_client::PfsClient<Channel>,
    pub old_admin: pach_api::admin_client::AdminClient<Channel>,
}

pub async fn connect() -> anyhow::Result<Client> {
    let config = Config::load()?;
    let (address, source) = config.target();
    let hint = format!(
        "Start it with 'pachd', or point pachctl elsewhere with 'pachctl config update context {} \
         --pachd-address=HOST:PORT' or PACHD_ADDRESS=HOST:PORT",
        config.v2.active_context
    );
    connect_to(&address, &source, &hint, CallMetadata::default()).await
}

/// Connects to the pachd at `address`; `source` says where the address came
/// from and `hint` how to change it, for the error message.
pub async fn connect_to(
    address: &str,
    source: &str,
    hint: &str,
    metadata: CallMetadata,
) -> anyhow::Result<Client> {
    let unreachable = |reason: String| {
        anyhow::anyhow!("cannot reach pachd at {address} ({source}): {reason}. {hint}")
    };
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| unreachable(format!("invalid address ({e})")))?
        .connect_timeout(Duration::from_secs(3))
        .initial_stream_window_size(Some(16 * 1024 * 1024))
        .initial_connection_window_size(Some(32 * 1024 * 1024))
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| unreachable(innermost(&e)))?;
    let conn = InterceptedService::new(channel.clone(), metadata);
    let mut version = versionpb::api_client::ApiClient::new(conn.clone());
    let server_version = match tokio::time::timeout(HANDSHAKE, version.get_version(())).await {
        Err(_) => {
            return Err(unreachable(format!(
                "it accepted the connection but did not answer within {} s",
                HANDSHAKE.as_secs()
            )));
        }
        Ok(Err(s)) if is_not_grpc(&s) => {
            return Err(unreachable(format!(
                "the server there is not a pachd (it does not speak pachd's gRPC API: {})",
                s.message()
            )));
        }
        Ok(Err(s)) => return Err(unreachable(s.message().to_string())),
        Ok(Ok(v)) => v.into_inner(),
    };
    macro_rules! limits {
        ($client:expr) => {
            $client
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE)
        };
    }
    Ok(Client {
        pfs: limits!(pfs::api_client::ApiClient::new(conn.clone())),
        pps: limits!(pps::api_client::ApiClient::new(conn.clone())),
        admin: limits!(admin::api_client::ApiClient::new(conn.clone())),
        transaction: limits!(transaction::api_client::ApiClient::new(conn.clone())),
        version,
        debug: limits!(debug::debug_client::DebugClient::new(conn.clone())),
        auth: auth::api_client::ApiClient::new(conn.clone()),
        enterprise: enterprise::api_client::ApiClient::new(conn.clone()),
        extension: limits!(pachrs::v1::extension_client::ExtensionClient::new(
            conn.clone()
        )),
        pps_ext: pachrs::v1::pipeline_extension_client::PipelineExtensionClient::new(conn),
        server_version,
        old_pfs: limits!(pach_api::pfs_client::PfsClient::new(channel.clone())),
        old_admin: pach_api::admin_client::AdminClient::new(channel),
    })
}

/// The message of the innermost cause of an error (the one that says why).
fn innermost(e: &dyn std::error::Error) -> String {
    let mut reason = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        reason = s.to_string();
        source = s.source();
    }
    reason
}

/// Whether a failed first call means the peer does not speak gRPC at all.
fn is_not_grpc(s: &tonic::Status) -> bool {
    let m = s.message();
    s.code() == tonic::Code::Unimplemented && m.contains("versionpb")
        || m.contains("protocol error")
        || m.contains("invalid content-type")
        || m.contains("HTTP status")
        || m.contains("frame with invalid size")
}

/// The server's message for a failed call (pachd writes the way out into it),
/// with control characters escaped so that a name cannot drive the terminal.
pub fn status(s: tonic::Status) -> anyhow::Error {
    let message = escape(s.message());
    if s.code() == tonic::Code::Unavailable && s.message().contains("transport") {
        return anyhow::anyhow!("lost the connection to pachd: {message}");
    }
    anyhow::anyhow!("{message}")
}

/// `s` with control characters (but newlines) escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() && c != '\n' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
