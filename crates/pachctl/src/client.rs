//! The connection to pachd, and turning gRPC failures into messages that say
//! what went wrong and what to do.

use std::time::Duration;

use pach_api::admin_client::AdminClient;
use pach_api::pfs_client::PfsClient;
use pach_api::pps_client::PpsClient;
use tonic::transport::{Channel, Endpoint};

use crate::config::Config;

pub struct Client {
    pub pfs: PfsClient<Channel>,
    pub admin: AdminClient<Channel>,
    pub pps: PpsClient<Channel>,
}

const MAX_MESSAGE: usize = 64 * 1024 * 1024;

pub async fn connect() -> anyhow::Result<Client> {
    let config = Config::load()?;
    let (address, source) = config.target();
    let hint = format!(
        "Start it with 'pachd', or point pachctl elsewhere with 'pachctl config update context {} \
         --pachd-address=HOST:PORT' or PACHD_ADDRESS=HOST:PORT",
        config.v2.active_context
    );
    connect_to(&address, &source, &hint).await
}

/// Connects to the pachd at `address`; `source` says where the address came
/// from and `hint` how to change it, for the error message.
pub async fn connect_to(address: &str, source: &str, hint: &str) -> anyhow::Result<Client> {
    let unreachable = |reason: String| {
        anyhow::anyhow!("cannot reach pachd at {address} ({source}): {reason}. {hint}")
    };
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| unreachable(format!("invalid address ({e})")))?
        .connect_timeout(Duration::from_secs(3))
        .initial_stream_window_size(Some(16 * 1024 * 1024))
        .initial_connection_window_size(Some(32 * 1024 * 1024))
        .tcp_nodelay(true);
    let channel = endpoint.connect().await.map_err(|e| {
        let mut reason = e.to_string();
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
        while let Some(s) = source {
            reason = s.to_string();
            source = s.source();
        }
        unreachable(reason)
    })?;
    Ok(Client {
        pfs: PfsClient::new(channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE),
        admin: AdminClient::new(channel.clone()),
        pps: PpsClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE),
    })
}

/// The server's message for a failed call (pachd writes the way out into it).
pub fn status(s: tonic::Status) -> anyhow::Error {
    if s.code() == tonic::Code::Unavailable && s.message().contains("transport") {
        return anyhow::anyhow!("lost the connection to pachd: {}", s.message());
    }
    anyhow::anyhow!("{}", s.message())
}
