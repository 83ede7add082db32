//! `pachctl auth ...`: Pachyderm 1.9's auth commands and flags. The session
//! token lives in the active context's `session_token` (as 1.9 keeps it);
//! the config file is written readable by its owner only. GitHub cannot be
//! reached from a cluster here: `activate` takes a robot as first admin and
//! `login` takes a one-time password (`-o`).

use std::io::{BufRead, Read};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use pach_api::auth as pb;
use pach_api::json::FieldNames;

use crate::client::{CallMetadata, Client, connect, connect_with, status};
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum AuthCmd {
    /// Activate access control, with a robot (`--initial-admin robot:NAME`)
    /// as the first cluster admin; its token is printed once.
    Activate {
        /// The first cluster admin: a robot user, robot:NAME. pachctl then
        /// acts as it (its token is also saved in the active context).
        #[arg(long = "initial-admin", default_value = "")]
        initial_admin: String,
    },
    /// Delete all ACLs, tokens, and admins, and deactivate access control
    /// (asks for confirmation on stdin).
    Deactivate,
    /// Log in with a one-time password (`pachctl auth get-otp` gives one).
    Login {
        /// Read a one-time password from stdin (the only way here: GitHub
        /// cannot be reached).
        #[arg(short = 'o', long = "one-time-password")]
        one_time_password: bool,
    },
    /// Log out by deleting the session token of the active context.
    Logout,
    /// Print your identity.
    Whoami,
    /// Check whether you have at least the scope (none|reader|writer|owner)
    /// on a repo: prints true or false.
    Check { scope: String, repo: String },
    /// Print a repo's ACL, or the scope USER has on REPO (`get [USER] REPO`).
    #[command(override_usage = "pachctl auth get [USERNAME] REPO")]
    Get {
        #[arg(num_args = 1..=2, required = true, value_names = ["USERNAME", "REPO"])]
        args: Vec<String>,
    },
    /// Set the scope (none|reader|writer|owner) USERNAME has on REPO.
    Set {
        username: String,
        scope: String,
        repo: String,
    },
    /// List the cluster admins.
    ListAdmins,
    /// Add and remove cluster admins.
    ModifyAdmins {
        /// Comma-separated users to make admins.
        #[arg(long, value_delimiter = ',')]
        add: Vec<String>,
        /// Comma-separated users to stop being admins.
        #[arg(long, value_delimiter = ',')]
        remove: Vec<String>,
    },
    /// Get a token for USERNAME (admins), or for yourself.
    GetAuthToken(GetAuthToken),
    /// Read a token from stdin and save it in the active context.
    UseAuthToken,
    /// Get a one-time password for USERNAME (admins), or for yourself.
    GetOtp {
        username: Option<String>,
        /// Its lifetime (e.g. 30s, 1h2m3s); default 5 minutes.
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Print the auth configuration.
    GetConfig {
        /// json or yaml.
        #[arg(short = 'o', long = "output-format", default_value = "json")]
        output_format: String,
    },
    /// Set the auth configuration from a JSON or YAML file (- for stdin).
    SetConfig {
        #[arg(short = 'f', long = "file", default_value = "-")]
        file: String,
    },
}

#[derive(Debug, Args)]
pub struct GetAuthToken {
    pub username: Option<String>,
    /// Print only the token (for `use-auth-token`).
    #[arg(short, long)]
    pub quiet: bool,
    /// Its lifetime (e.g. 30s, 1h2m3s); at most the caller's own unless an
    /// admin asks.
    #[arg(long)]
    pub ttl: Option<String>,
}

fn seconds(ttl: &Option<String>) -> anyhow::Result<i64> {
    match ttl {
        None => Ok(0),
        Some(t) => {
            let d = humantime::parse_duration(t)
                .with_context(|| format!("could not parse duration \"{t}\" (e.g. 30s, 1h2m3s)"))?;
            Ok(d.as_secs() as i64)
        }
    }
}

fn scope(s: &str) -> anyhow::Result<pb::Scope> {
    match s.to_ascii_lowercase().as_str() {
        "none" => Ok(pb::Scope::None),
        "reader" => Ok(pb::Scope::Reader),
        "writer" => Ok(pb::Scope::Writer),
        "owner" => Ok(pb::Scope::Owner),
        _ => bail!("unrecognized scope: {s} (one of none, reader, writer, owner)"),
    }
}

fn scope_name(s: i32) -> &'static str {
    pb::Scope::try_from(s).map_or("UNKNOWN", |s| s.as_str_name())
}

/// Saves `token` as the active context's session token.
fn save_token(token: &str) -> anyhow::Result<()> {
    let mut config = Config::load()?;
    config.active_mut().session_token = token.to_string();
    config.save()
}

fn read_line(prompt: &str) -> anyhow::Result<String> {
    eprintln!("{prompt}");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read stdin")?;
    Ok(line.trim().to_string())
}

async fn client() -> anyhow::Result<Client> {
    connect().await
}

/// A connection carrying no token, whatever the context holds: an old
/// session (of another cluster, perhaps) must not ride along.
async fn tokenless_client() -> anyhow::Result<crate::client::Client> {
    connect_with(
        CallMetadata {
            token: Some(String::new()),
            ..Default::default()
        },
        Some(crate::client::HANDSHAKE),
    )
    .await
}

pub async fn run(cmd: AuthCmd) -> anyhow::Result<()> {
    match cmd {
        AuthCmd::Activate { initial_admin } => {
            if !initial_admin.starts_with("robot:") {
                bail!(
                    "the first admin must be a robot here (GitHub cannot be reached): \
                     pachctl auth activate --initial-admin robot:NAME"
                );
            }
            let mut c = tokenless_client().await?;
            let resp = c
                .auth
                .activate(pb::ActivateRequest {
                    subject: initial_admin.clone(),
                    github_token: String::new(),
                })
                .await
                .map_err(|s| anyhow::anyhow!("error activating Pachyderm auth: {}", status(s)))?
                .into_inner();
            save_token(&resp.pach_token)?;
            println!(
                "WARNING: DO NOT LOSE THE ROBOT TOKEN BELOW WITHOUT ADDING OTHER ADMINS.\n\
                 IF YOU DO, YOU WILL BE PERMANENTLY LOCKED OUT OF YOUR CLUSTER!"
            );
            println!(
                "Pachyderm token for \"{initial_admin}\":\n{}",
                resp.pach_token
            );
        }
        AuthCmd::Deactivate => {
            let answer = read_line(
                "Are you sure you want to delete ALL auth information (ACLs, tokens, and \
                 admins) in this cluster, and expose ALL data? yN",
            )?;
            if !answer.starts_with(['y', 'Y']) {
                bail!("operation aborted");
            }
            client()
                .await?
                .auth
                .deactivate(pb::DeactivateRequest {})
                .await
                .map_err(status)?;
        }
        AuthCmd::Login { one_time_password } => {
            if !one_time_password {
                bail!(
                    "GitHub login needs github.com, which this cluster does not reach: log in \
                     with a one-time password (`pachctl auth get-otp USER` as an admin, then \
                     `pachctl auth login -o`), or `pachctl auth use-auth-token`"
                );
            }
            let code = read_line("Please enter your Pachyderm One-Time Password:")?;
            let mut c = tokenless_client().await?;
            let resp = c
                .auth
                .authenticate(pb::AuthenticateRequest {
                    one_time_password: code,
                    github_token: String::new(),
                })
                .await
                .map_err(|s| {
                    anyhow::anyhow!("error authenticating with Pachyderm cluster: {}", status(s))
                })?
                .into_inner();
            save_token(&resp.pach_token)?;
        }
        AuthCmd::Logout => save_token("")?,
        AuthCmd::Whoami => {
            let me = client()
                .await?
                .auth
                .who_am_i(pb::WhoAmIRequest {})
                .await
                .map_err(status)?
                .into_inner();
            println!("You are \"{}\"", me.username);
            if me.ttl > 0 {
                let until =
                    std::time::SystemTime::now() + std::time::Duration::from_secs(me.ttl as u64);
                println!(
                    "session expires: {}",
                    humantime::format_rfc3339_seconds(until)
                );
            }
            if me.is_admin {
                println!("You are an administrator of this Pachyderm cluster");
            }
        }
        AuthCmd::Check { scope: s, repo } => {
            let scope = scope(&s)?;
            let resp = client()
                .await?
                .auth
                .authorize(pb::AuthorizeRequest {
                    repo,
                    scope: scope as i32,
                })
                .await
                .map_err(status)?
                .into_inner();
            println!("{}", resp.authorized);
        }
        AuthCmd::Get { args } => {
            let mut c = client().await?;
            if let [repo] = args.as_slice() {
                let acl = c
                    .auth
                    .get_acl(pb::GetAclRequest { repo: repo.clone() })
                    .await
                    .map_err(status)?
                    .into_inner();
                for e in acl.entries.iter().chain(&acl.robot_entries) {
                    println!("{}: {}", e.username, scope_name(e.scope));
                }
            } else {
                let resp = c
                    .auth
                    .get_scope(pb::GetScopeRequest {
                        username: args[0].clone(),
                        repos: vec![args[1].clone()],
                    })
                    .await
                    .map_err(status)?
                    .into_inner();
                let s = resp.scopes.first().copied().unwrap_or_default();
                println!("{}", scope_name(s));
            }
        }
        AuthCmd::Set {
            username,
            scope: s,
            repo,
        } => {
            let scope = scope(&s)?;
            client()
                .await?
                .auth
                .set_scope(pb::SetScopeRequest {
                    username,
                    repo,
                    scope: scope as i32,
                })
                .await
                .map_err(status)?;
        }
        AuthCmd::ListAdmins => {
            let resp = client()
                .await?
                .auth
                .get_admins(pb::GetAdminsRequest {})
                .await
                .map_err(status)?
                .into_inner();
            for a in resp.admins {
                println!("{a}");
            }
        }
        AuthCmd::ModifyAdmins { add, remove } => {
            client()
                .await?
                .auth
                .modify_admins(pb::ModifyAdminsRequest { add, remove })
                .await
                .map_err(status)?;
        }
        AuthCmd::GetAuthToken(a) => {
            let resp = client()
                .await?
                .auth
                .get_auth_token(pb::GetAuthTokenRequest {
                    subject: a.username.unwrap_or_default(),
                    ttl: seconds(&a.ttl)?,
                })
                .await
                .map_err(status)?
                .into_inner();
            if a.quiet {
                println!("{}", resp.token);
            } else {
                println!(
                    "New credentials:\n  Subject: {}\n  Token: {}",
                    resp.subject, resp.token
                );
            }
        }
        AuthCmd::UseAuthToken => {
            let token = read_line("Please paste your Pachyderm auth token:")?;
            if token.is_empty() {
                bail!("no token on stdin (`pachctl auth get-auth-token -q` prints one)");
            }
            save_token(&token)?;
        }
        AuthCmd::GetOtp { username, ttl } => {
            let resp = client()
                .await?
                .auth
                .get_one_time_password(pb::GetOneTimePasswordRequest {
                    subject: username.unwrap_or_default(),
                    ttl: seconds(&ttl)?,
                })
                .await
                .map_err(status)?
                .into_inner();
            println!("{}", resp.code);
        }
        AuthCmd::GetConfig { output_format } => {
            let resp = client()
                .await?
                .auth
                .get_configuration(pb::GetConfigurationRequest {})
                .await
                .map_err(status)?
                .into_inner();
            let Some(config) = resp.configuration else {
                println!("no auth config set");
                return Ok(());
            };
            let json = pach_api::json::to_json(&config, FieldNames::Proto)?;
            match output_format.to_ascii_lowercase().as_str() {
                "json" => println!("{}", serde_json::to_string_pretty(&json)?),
                "yaml" => print!("{}", serde_yaml_ng::to_string(&json)?),
                other => bail!("unknown output format \"{other}\" (json or yaml)"),
            }
        }
        AuthCmd::SetConfig { file } => {
            let mut text = String::new();
            if file == "-" {
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("could not read config from stdin")?;
            } else {
                text = std::fs::read_to_string(&file)
                    .with_context(|| format!("could not read config from \"{file}\""))?;
            }
            // YAML is a superset of JSON: one parser takes both.
            let value: serde_json::Value =
                serde_yaml_ng::from_str(&text).context("could not parse config (JSON or YAML)")?;
            let config: pb::AuthConfig = pach_api::json::from_json(value)
                .context("could not parse config: not an auth configuration")?;
            client()
                .await?
                .auth
                .set_configuration(pb::SetConfigurationRequest {
                    configuration: Some(config),
                })
                .await
                .map_err(status)?;
        }
    }
    Ok(())
}
