//! The bubblewrap sandbox user code runs in. The host's top-level directories
//! are mounted read-only (so the tools a pipeline calls are the host's), `/tmp`
//! is private, `/pfs` holds the datum's inputs read-only and `/pfs/out`
//! writable. The sandbox has its own PID namespace and dies with its parent,
//! so a timeout or a stopped job leaves no process behind.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::{Result, WorkerError};

/// Logs kept per run; beyond this only the tail is kept.
const MAX_LOG: usize = 8 << 20;

/// What to run for a datum.
#[derive(Debug, Clone, Default)]
pub struct Command {
    pub cmd: Vec<String>,
    /// Lines fed to the command's standard input.
    pub stdin: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Directory inside the sandbox to start in ("/" when empty).
    pub working_dir: String,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The exit code; None when killed by a signal or the timeout.
    pub code: Option<i32>,
    pub timed_out: bool,
}

#[derive(Debug, Clone)]
pub struct Sandbox {
    bwrap: PathBuf,
    /// `--ro-bind`/`--symlink` arguments recreating the host's top level.
    host_args: Vec<String>,
}

impl Sandbox {
    /// Finds bubblewrap and records the host's top-level layout.
    pub fn detect() -> Result<Sandbox> {
        let bwrap = find_on_path("bwrap").ok_or(WorkerError::NoBubblewrap)?;
        let mut host_args = Vec::new();
        let entries = std::fs::read_dir("/").map_err(crate::io("cannot list", "/"))?;
        let mut names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for name in names {
            let Some(name) = name.to_str().map(str::to_string) else {
                continue;
            };
            // Provided by bubblewrap itself or by us.
            if matches!(name.as_str(), "proc" | "dev" | "tmp" | "pfs" | "sys") {
                continue;
            }
            let host = format!("/{name}");
            let meta = match std::fs::symlink_metadata(&host) {
                Ok(m) => m,
                Err(_) => continue,
            };
            if meta.file_type().is_symlink() {
                if let Ok(target) = std::fs::read_link(&host) {
                    host_args.extend([
                        "--symlink".into(),
                        target.to_string_lossy().into_owned(),
                        host.clone(),
                    ]);
                }
            } else if meta.is_dir() {
                host_args.extend(["--ro-bind".into(), host.clone(), host]);
            }
        }
        Ok(Sandbox { bwrap, host_args })
    }

    /// Runs `command` with `<dir>/pfs` at `/pfs`; its standard output and
    /// error, interleaved by line, are appended to `log`.
    pub async fn run(&self, dir: &Path, command: &Command, log: &mut Vec<u8>) -> Result<Outcome> {
        let program = command.cmd.first().cloned().unwrap_or_default();
        let pfs = dir.join("pfs");
        let mut bwrap = tokio::process::Command::new(&self.bwrap);
        bwrap
            .args(["--die-with-parent", "--unshare-pid", "--tmpfs", "/"])
            .args(&self.host_args)
            .args(["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"])
            .arg("--ro-bind")
            .arg(&pfs)
            .arg("/pfs")
            .arg("--bind")
            .arg(pfs.join("out"))
            .arg("/pfs/out")
            .arg("--chdir")
            .arg(if command.working_dir.is_empty() {
                "/"
            } else {
                command.working_dir.as_str()
            })
            .arg("--")
            .args(&command.cmd)
            .env_clear()
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env("HOME", "/tmp")
            .env("LANG", "C.UTF-8")
            .envs(command.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = bwrap.spawn().map_err(|source| WorkerError::Spawn {
            program: program.clone(),
            source,
        })?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        if let Some(out) = child.stdout.take() {
            tokio::spawn(forward_lines(out, tx.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward_lines(err, tx.clone()));
        }
        drop(tx);
        if let Some(mut stdin) = child.stdin.take() {
            let mut text = command.stdin.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            // A command that does not read its input closes the pipe early; that is fine.
            tokio::spawn(async move {
                let _ = stdin.write_all(text.as_bytes()).await;
            });
        }
        let collect_logs = async {
            let mut buf = Vec::new();
            while let Some(line) = rx.recv().await {
                buf.extend_from_slice(&line);
                if buf.len() > MAX_LOG {
                    let cut = buf.len() - MAX_LOG / 2;
                    buf.drain(..cut);
                }
            }
            buf
        };
        let wait = async {
            match command.timeout {
                Some(t) => match tokio::time::timeout(t, child.wait()).await {
                    Ok(status) => status.map(|s| (s.code(), false)),
                    Err(_) => {
                        let _ = child.start_kill();
                        child.wait().await.map(|_| (None, true))
                    }
                },
                None => child.wait().await.map(|s| (s.code(), false)),
            }
        };
        let (status, logs) = tokio::join!(wait, collect_logs);
        log.extend_from_slice(&logs);
        let (code, timed_out) = status.map_err(|source| WorkerError::Spawn { program, source })?;
        Ok(Outcome { code, timed_out })
    }
}

async fn forward_lines(stream: impl AsyncRead + Unpin, tx: mpsc::UnboundedSender<Vec<u8>>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if tx.send(line).is_err() {
                    return;
                }
            }
        }
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}
