//! `debug dump`, `debug profile cpu` and `debug binary`: what pachd tells
//! about itself for diagnosis (`debug.Debug`), written to stdout or a file.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use futures::StreamExt;
use pach_api::debug as pb;

use crate::client::{connect, status};

#[derive(Debug, Subcommand)]
pub enum DebugVerb {
    /// Print pachd's state: version, configuration, cluster, repos,
    /// pipelines, jobs and its recent log lines.
    Dump(Output),
    /// Take a profile of pachd (only `cpu`), in pprof's format.
    Profile(Profile),
    /// Write the binary pachd is running (to read a profile with).
    Binary(Output),
}

#[derive(Debug, Args)]
pub struct Output {
    /// Write to this file instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct Profile {
    /// The profile to take: cpu.
    pub profile: String,
    /// How long to sample the CPU, e.g. 30s or 1m.
    #[arg(short, long, default_value = "1m")]
    pub duration: String,
    #[command(flatten)]
    pub output: Output,
}

pub async fn run(verb: DebugVerb) -> anyhow::Result<()> {
    match verb {
        DebugVerb::Dump(o) => {
            let mut c = connect().await?;
            let replies = c
                .debug
                .dump(pb::DumpRequest::default())
                .await
                .map_err(status)?;
            write_out(replies.into_inner(), &o, false).await
        }
        DebugVerb::Profile(p) => {
            let duration = humantime::parse_duration(&p.duration).with_context(|| {
                format!(
                    "--duration '{}' is not a duration like 30s or 1m",
                    p.duration
                )
            })?;
            if p.profile != "cpu" {
                anyhow::bail!(
                    "profile '{}' is not available; `pachctl debug profile cpu` takes a CPU profile",
                    p.profile
                );
            }
            refuse_terminal(&p.output, "the profile")?;
            let mut c = connect().await?;
            let duration =
                prost_types::Duration::try_from(duration).context("--duration is too long")?;
            let replies = c
                .debug
                .profile(pb::ProfileRequest {
                    profile: p.profile,
                    duration: Some(duration),
                })
                .await
                .map_err(status)?;
            write_out(replies.into_inner(), &p.output, true).await
        }
        DebugVerb::Binary(o) => {
            refuse_terminal(&o, "pachd's binary")?;
            let mut c = connect().await?;
            let replies = c.debug.binary(pb::BinaryRequest {}).await.map_err(status)?;
            write_out(replies.into_inner(), &o, true).await
        }
    }
}

/// Binary output to a terminal would garble it: ask for a redirect.
fn refuse_terminal(o: &Output, what: &str) -> anyhow::Result<()> {
    if o.output.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        anyhow::bail!("{what} is binary: redirect stdout to a file or use -o FILE");
    }
    Ok(())
}

/// Writes the replies' bytes to the output; a file is written whole or
/// not at all (under a temporary name until the stream has ended).
async fn write_out(
    mut replies: tonic::Streaming<Vec<u8>>,
    o: &Output,
    binary: bool,
) -> anyhow::Result<()> {
    match &o.output {
        None if binary => {
            let mut out = super::stdout();
            while let Some(chunk) = replies.next().await {
                out.write_all(&chunk.map_err(status)?)?;
            }
            super::finish(out)
        }
        None => {
            // Text for a terminal: whole, so that no character is split
            // between two replies, and escaped, so that nothing in it (a
            // logged name) drives the terminal.
            let mut text = Vec::new();
            while let Some(chunk) = replies.next().await {
                text.extend(chunk.map_err(status)?);
            }
            let mut out = super::stdout();
            out.write_all(crate::client::escape(&String::from_utf8_lossy(&text)).as_bytes())?;
            super::finish(out)
        }
        Some(path) => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let mut tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("cannot write in {}", dir.display()))?;
            while let Some(chunk) = replies.next().await {
                let chunk = chunk.map_err(status)?;
                tmp.write_all(&chunk)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            tmp.persist(path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(())
        }
    }
}
