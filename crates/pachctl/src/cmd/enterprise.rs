//! `pachctl enterprise ...`: Pachyderm 1.9's enterprise commands. Nothing
//! here is paid: any activation code activates (auth needs the state).

use anyhow::Context;
use clap::Subcommand;
use pach_api::enterprise as pb;

use crate::client::{connect, status};

#[derive(Debug, Subcommand)]
pub enum EnterpriseCmd {
    /// Activate the enterprise features with an activation code (any code).
    Activate {
        activation_code: String,
        /// When the activation ends (RFC 3339, e.g. 2030-01-01T00:00:00Z);
        /// for tests of expiry.
        #[arg(long)]
        expires: Option<String>,
    },
    /// Print whether the enterprise features are active.
    GetState,
    /// Deactivate the enterprise features (auth must be deactivated first).
    Deactivate,
}

fn expiry(info: Option<pb::TokenInfo>) -> String {
    match info.and_then(|i| i.expires) {
        Some(t) => {
            let when =
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.seconds.max(0) as u64);
            humantime::format_rfc3339_seconds(when).to_string()
        }
        None => "never".to_string(),
    }
}

pub async fn run(cmd: EnterpriseCmd) -> anyhow::Result<()> {
    let mut c = connect().await?;
    match cmd {
        EnterpriseCmd::Activate {
            activation_code,
            expires,
        } => {
            let expires = match expires {
                Some(e) => {
                    let t = humantime::parse_rfc3339_weak(&e).with_context(|| {
                        format!("could not parse the timestamp \"{e}\" (RFC 3339, e.g. 2030-01-01T00:00:00Z)")
                    })?;
                    let secs = t
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0);
                    Some(prost_types::Timestamp {
                        seconds: secs as i64,
                        nanos: 0,
                    })
                }
                None => None,
            };
            let resp = c
                .enterprise
                .activate(pb::ActivateRequest {
                    activation_code,
                    expires,
                })
                .await
                .map_err(status)?
                .into_inner();
            println!(
                "Activation succeeded. Your Pachyderm Enterprise token expires {}",
                expiry(resp.info)
            );
        }
        EnterpriseCmd::GetState => {
            let resp = c
                .enterprise
                .get_state(pb::GetStateRequest {})
                .await
                .map_err(status)?
                .into_inner();
            if resp.state == pb::State::None as i32 {
                println!("No Pachyderm Enterprise token was found");
            } else {
                let state = pb::State::try_from(resp.state).map_or("UNKNOWN", |s| s.as_str_name());
                println!(
                    "Pachyderm Enterprise token state: {state}\nExpiration: {}",
                    expiry(resp.info)
                );
            }
        }
        EnterpriseCmd::Deactivate => {
            c.enterprise
                .deactivate(pb::DeactivateRequest {})
                .await
                .map_err(status)?;
        }
    }
    Ok(())
}
