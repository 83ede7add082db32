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

use crate::config::{Config, SERVER_CAS_ENV, Target};

const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// How long pachd may take to accept the connection and answer the first
/// call, unless the command says otherwise (`version --timeout`).
pub const HANDSHAKE: Duration = Duration::from_secs(10);
/// A pachd that does not answer a keep-alive ping within this long, twice
/// in a row at most, is taken for gone (a stopped or vanished host).
const KEEP_ALIVE: Duration = Duration::from_secs(10);

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

pub struct Client {
    pub pfs: pfs::api_client::ApiClient<Conn>,
    pub pps: pps::api_client::ApiClient<Conn>,
    pub admin: admin::api_client::ApiClient<Conn>,
    pub transaction: transaction::api_client::ApiClient<Conn>,
    pub debug: debug::debug_client::DebugClient<Conn>,
    pub extension: pachrs::v1::extension_client::ExtensionClient<Conn>,
    pub auth: auth::api_client::ApiClient<Conn>,
    pub enterprise: enterprise::api_client::ApiClient<Conn>,
    /// The pachd version learnt while connecting.
    pub server_version: versionpb::Version,
}

/// `-v/--verbose`: say on stderr which pachd pachctl connects to, and how.
static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_verbose(on: bool) {
    VERBOSE.store(on, std::sync::atomic::Ordering::Relaxed);
}

fn verbose(line: impl FnOnce() -> String) {
    if VERBOSE.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("pachctl: {}", escape(&line()));
    }
}

pub async fn connect() -> anyhow::Result<Client> {
    connect_within(Some(HANDSHAKE)).await
}

/// Connects to the configured pachd, waiting at most `patience` for it to
/// accept and answer (`None`: forever).
pub async fn connect_within(patience: Option<Duration>) -> anyhow::Result<Client> {
    connect_with(CallMetadata::default(), patience).await
}

/// Connects to the configured pachd, every call carrying `metadata` (and
/// the active context's session token unless `metadata` names one).
pub async fn connect_with(
    mut metadata: CallMetadata,
    patience: Option<Duration>,
) -> anyhow::Result<Client> {
    let config = Config::load()?;
    let target = config.target()?;
    if metadata.token.is_none() {
        metadata.token = config.session_token();
    }
    connect_to(&target, metadata, patience).await
}

/// Connects to the pachd `target` names; `patience` is how long pachd may
/// take to accept and answer (`None`: forever).
pub async fn connect_to(
    target: &Target,
    metadata: CallMetadata,
    patience: Option<Duration>,
) -> anyhow::Result<Client> {
    let Target {
        address,
        source,
        context,
        tls,
    } = target;
    let hint = format!(
        "Start it with 'pachd', or point pachctl elsewhere with 'pachctl config update context {context} \
         --pachd-address=HOST:PORT' or PACHD_ADDRESS=HOST:PORT"
    );
    let unreachable = |reason: String| {
        anyhow::anyhow!("cannot reach pachd at {address} ({source}): {reason}. {hint}")
    };
    let tls_config = match tls {
        Some(roots) => Some(pach_tls::client::client_config(roots).map_err(|e| {
            anyhow::anyhow!(
                "cannot connect to pachd at {address} ({source}) over TLS: {e}; give it with \
                 {SERVER_CAS_ENV}=CA.pem or `pachctl config update context {context} --server-cas CA.pem`"
            )
        })?),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    verbose(|| {
        format!(
            "connecting to pachd at {address} ({source}, context '{context}'), {}",
            if tls.is_some() {
                "over TLS"
            } else {
                "in plaintext"
            }
        )
    });
    let started = std::time::Instant::now();
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))
        .map_err(|e| unreachable(format!("invalid address ({e})")))?
        .initial_stream_window_size(Some(16 * 1024 * 1024))
        .initial_connection_window_size(Some(32 * 1024 * 1024))
        // get file's data in 256 KiB frames rather than 16 KiB ones: a
        // sixteenth of the writes and flushes in pachd, and over TLS one
        // record per 16 KiB instead of two (each frame's 9-byte head would
        // spill into a record of its own).
        .max_frame_size(256 * 1024)
        .http2_keep_alive_interval(KEEP_ALIVE)
        .keep_alive_timeout(KEEP_ALIVE)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    if let Some(limit) = patience {
        endpoint = endpoint.connect_timeout(limit);
    }
    // The whole handshake (TCP, HTTP/2 settings, the version call) within
    // `patience`: a server that accepts and then stays silent — a stopped
    // pachd still completes TCP handshakes from its listen backlog — fails
    // here with a message instead of hanging.
    let slow = || {
        unreachable(format!(
            "it accepted the connection but did not answer within {}",
            humantime::format_duration(patience.unwrap_or_default())
        ))
    };
    let handshake = async {
        let connector = pach_tls::client::Connector::new(tls_config);
        let channel = match endpoint.connect_with_connector(connector).await {
            Ok(c) => c,
            Err(e) => {
                if let Some(h) = handshake_error(&e) {
                    return Err(tls_failure(target, h));
                }
                if tls.is_none() && is_tls_server(address).await {
                    return Err(plaintext_on_tls(target));
                }
                return Err(unreachable(why_not(address, innermost(&e)).await));
            }
        };
        let conn = InterceptedService::new(channel, metadata);
        let mut version = versionpb::api_client::ApiClient::new(conn.clone());
        let answer = version.get_version(()).await;
        Ok::<_, anyhow::Error>((conn, answer))
    };
    let (conn, answer) = match patience {
        Some(limit) => tokio::time::timeout(limit, handshake)
            .await
            .map_err(|_| slow())??,
        None => handshake.await?,
    };
    let server_version = match answer {
        Err(s) if s.message().starts_with(pach_tls::PLAINTEXT_ON_TLS_PORT) => {
            return Err(plaintext_on_tls(target));
        }
        Err(s) if is_not_grpc(&s) => {
            return Err(unreachable(format!(
                "the server there is not a pachd (it does not speak pachd's gRPC API: {})",
                escape(s.message())
            )));
        }
        Err(s) => {
            if tls.is_none() && is_tls_server(address).await {
                return Err(plaintext_on_tls(target));
            }
            return Err(unreachable(why_not(address, escape(s.message())).await));
        }
        Ok(v) => v.into_inner(),
    };
    verbose(|| {
        format!(
            "connected to pachd {}.{}.{}{} in {:.1?}",
            server_version.major,
            server_version.minor,
            server_version.micro,
            server_version.additional,
            started.elapsed()
        )
    });
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
        debug: limits!(debug::debug_client::DebugClient::new(conn.clone())),
        extension: limits!(pachrs::v1::extension_client::ExtensionClient::new(
            conn.clone()
        )),
        auth: auth::api_client::ApiClient::new(conn.clone()),
        enterprise: enterprise::api_client::ApiClient::new(conn.clone()),
        server_version,
    })
}

/// Why a handshake failed: `reason`, unless the server turns out to speak
/// HTTP/1 (a web server on pachd's port closes the connection in ways that
/// reach the gRPC client as a mere "operation was canceled").
async fn why_not(address: &str, reason: String) -> String {
    if reason.contains("refused") {
        return reason;
    }
    match tokio::time::timeout(Duration::from_secs(2), http1_status_line(address)).await {
        Ok(Some(line)) => format!(
            "the server there is not a pachd: it speaks HTTP/1, not pachd's gRPC API (it answered '{}')",
            escape(&line)
        ),
        _ => reason,
    }
}

/// The status line an HTTP/1 server answers HTTP/2's connection preface
/// with; `None` for anything else (an HTTP/2 server answers with a
/// SETTINGS frame).
async fn http1_status_line(address: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(address).await.ok()?;
    conn.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .ok()?;
    let mut buf = vec![0u8; 256];
    let mut got = 0;
    while got < buf.len() {
        match conn.read(&mut buf[got..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
        if buf[..got].contains(&b'\n') {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf[..got]);
    let line = text.lines().next()?.trim();
    line.starts_with("HTTP/1").then(|| line.to_string())
}

/// The TLS handshake failure somewhere in a connection error's chain.
fn handshake_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a pach_tls::client::HandshakeError> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(h) = e.downcast_ref::<pach_tls::client::HandshakeError>() {
            return Some(h);
        }
        next = e.source();
    }
    None
}

/// Whether the server pachctl reached without TLS (and that did not speak
/// gRPC there) answers TLS: Pachyderm's own pachd, say, which drops
/// plaintext clients without a word.
async fn is_tls_server(address: &str) -> bool {
    tokio::time::timeout(
        Duration::from_secs(2),
        pach_tls::client::speaks_tls(address),
    )
    .await
    .unwrap_or(false)
}

/// The error of a plaintext connection to pachd's TLS port.
fn plaintext_on_tls(target: &Target) -> anyhow::Error {
    let Target {
        address,
        source,
        context,
        ..
    } = target;
    anyhow::anyhow!(
        "pachd at {address} ({source}) serves gRPC over TLS, and pachctl connected without TLS: \
         use grpcs://{address} (PACHD_ADDRESS=grpcs://{address}, or `pachctl config update \
         context {context} --pachd-address grpcs://{address} --server-cas CA.pem`)"
    )
}

/// What a failed TLS handshake means for the user, and what to change.
fn tls_failure(target: &Target, e: &pach_tls::client::HandshakeError) -> anyhow::Error {
    use pach_tls::client::HandshakeError;
    let Target {
        address,
        source,
        context,
        tls,
    } = target;
    let trusted = tls.as_ref().map(|r| r.source()).unwrap_or_default();
    let way_out = match e {
        HandshakeError::NotTls => format!(
            "pachd there serves gRPC without TLS: use grpc://{address} (PACHD_ADDRESS=grpc://{address}, \
             or `pachctl config update context {context} --pachd-address grpc://{address}`), \
             or start pachd with --tls-cert FILE --tls-key FILE"
        ),
        HandshakeError::Untrusted { .. } => format!(
            "pachctl trusts {trusted}; give the CA that signed pachd's certificate with \
             {SERVER_CAS_ENV}=CA.pem or `pachctl config update context {context} --server-cas CA.pem`"
        ),
        HandshakeError::WrongName { name, .. } => format!(
            "connect with a host name the certificate names, or give pachd a certificate for '{name}'"
        ),
        HandshakeError::Expired { .. } => {
            "renew pachd's certificate (pachd reloads it when its files change), or check this host's clock"
                .to_string()
        }
        HandshakeError::BadName { .. } | HandshakeError::Other(_) => {
            "check that pachd serves TLS there and that the address is right".to_string()
        }
    };
    anyhow::anyhow!("cannot connect to pachd at {address} ({source}) over TLS: {e}. {way_out}")
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
    if is_lost_connection(&s) {
        return anyhow::anyhow!(
            "lost the connection to pachd ({message}): it stopped answering or went away; \
             check that it runs, then run the command again"
        );
    }
    anyhow::anyhow!("{message}")
}

/// Whether a failed call failed for the connection, not for pachd's answer.
/// (pachd's own retryable refusals are Unavailable too, with words of
/// their own.) A keep-alive ping that went unanswered arrives as
/// "http2 error".
fn is_lost_connection(s: &tonic::Status) -> bool {
    const TRANSPORT: [&str; 7] = [
        "transport error",
        "http2 error",
        "connection error",
        "connection reset",
        "connection closed",
        "broken pipe",
        "error trying to connect",
    ];
    let m = s.message().to_ascii_lowercase();
    matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Unknown)
        && TRANSPORT.iter().any(|t| m.contains(t))
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
