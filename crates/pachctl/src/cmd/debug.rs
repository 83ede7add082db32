//! `debug dump`, `debug profile cpu` and `debug binary`: what pachd tells
//! about itself for diagnosis (`debug.Debug`), written to stdout or a file;
//! `debug pprof`, both of the last two opened in pprof.

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
    /// Take a profile of pachd and fetch its binary (to files), then open
    /// both in pprof: `go tool pprof`, or a standalone `pprof`.
    Pprof(Pprof),
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

#[derive(Debug, Args)]
pub struct Pprof {
    /// The profile to take: cpu.
    pub profile: String,
    /// How long to sample the CPU, e.g. 30s or 1m.
    #[arg(short, long, default_value = "1m")]
    pub duration: String,
    /// The file to write the profile to.
    #[arg(long, default_value = "profile")]
    pub profile_file: PathBuf,
    /// The file to write pachd's binary to.
    #[arg(long, default_value = "binary")]
    pub binary_file: PathBuf,
}

/// `--duration` as the request carries it; only the CPU profile exists.
fn profile_request(profile: &str, duration: &str) -> anyhow::Result<pb::ProfileRequest> {
    let parsed = humantime::parse_duration(duration)
        .with_context(|| format!("--duration '{duration}' is not a duration like 30s or 1m"))?;
    if profile != "cpu" {
        anyhow::bail!(
            "profile '{profile}' is not available; `pachctl debug profile cpu` takes a CPU profile"
        );
    }
    Ok(pb::ProfileRequest {
        profile: profile.to_string(),
        duration: Some(prost_types::Duration::try_from(parsed).context("--duration is too long")?),
    })
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
            let request = profile_request(&p.profile, &p.duration)?;
            refuse_terminal(&p.output, "the profile")?;
            let mut c = connect().await?;
            let replies = c.debug.profile(request).await.map_err(status)?;
            write_out(replies.into_inner(), &p.output, true).await
        }
        DebugVerb::Binary(o) => {
            refuse_terminal(&o, "pachd's binary")?;
            let mut c = connect().await?;
            let replies = c.debug.binary(pb::BinaryRequest {}).await.map_err(status)?;
            write_out(replies.into_inner(), &o, true).await
        }
        DebugVerb::Pprof(p) => pprof(p).await,
    }
}

/// Fetches the profile and the binary at once, then hands both to pprof
/// (as 1.9's `debug pprof` does with `go tool pprof`), which takes over the
/// terminal. Without Go or pprof the files stay, and the error says how to
/// open them elsewhere.
async fn pprof(p: Pprof) -> anyhow::Result<()> {
    let request = profile_request(&p.profile, &p.duration)?;
    let c = connect().await?;
    eprintln!(
        "Downloading the {} profile (this takes {}) and pachd's binary...",
        p.profile, p.duration
    );
    let to_file = async |replies: Result<tonic::Response<_>, tonic::Status>, path: &PathBuf| {
        let output = Output {
            output: Some(path.clone()),
        };
        write_out(replies.map_err(status)?.into_inner(), &output, true).await
    };
    let (mut for_profile, mut for_binary) = (c.debug.clone(), c.debug);
    tokio::try_join!(
        async { to_file(for_profile.profile(request).await, &p.profile_file).await },
        async {
            to_file(
                for_binary.binary(pb::BinaryRequest {}).await,
                &p.binary_file,
            )
            .await
        },
    )?;
    let (binary, profile) = (&p.binary_file, &p.profile_file);
    let (program, args): (_, &[&std::ffi::OsStr]) = if on_path("go") {
        (
            "go",
            &[
                "tool".as_ref(),
                "pprof".as_ref(),
                binary.as_ref(),
                profile.as_ref(),
            ],
        )
    } else if on_path("pprof") {
        ("pprof", &[binary.as_ref(), profile.as_ref()])
    } else {
        anyhow::bail!(
            "the profile is in {} and pachd's binary in {}, but neither `go` nor `pprof` is on PATH to open them: \
             install Go and run `go tool pprof {} {}`, or pprof (`go install github.com/google/pprof@latest`)",
            profile.display(),
            binary.display(),
            binary.display(),
            profile.display()
        );
    };
    let exit = std::process::Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("cannot run {program}"))?;
    if !exit.success() {
        anyhow::bail!("{program} ended with {exit}");
    }
    Ok(())
}

/// Whether `program` is an executable file in one of PATH's directories.
fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
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
