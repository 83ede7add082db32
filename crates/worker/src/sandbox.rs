//! The bubblewrap sandbox user code runs in. The host's top-level directories
//! are mounted read-only (so the tools a pipeline calls are the host's), `/tmp`
//! is private, `/pfs` holds the datum's inputs read-only and `/pfs/out`
//! writable. The sandbox has its own PID namespace and dies with its parent.
//! Tool directories on PATH inside home directories (pyenv's shims) are
//! writable, their writes discarded, as a container's layer would be.
//!
//! Starting a sandbox costs several milliseconds, more than many datums take,
//! so a [`SandboxSession`] keeps one sandbox alive across datums, like
//! Pachyderm's worker container: a small shell loop inside it runs each
//! datum's script on request and reports the exit code. Between datums the
//! slot directory behind `/pfs` is emptied and refilled in place (the bind
//! mounts follow the directories, so they must never be replaced). A datum
//! that times out takes its whole sandbox down, leaving no process behind;
//! the next datum gets a fresh one.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::{Result, WorkerError, io};

/// Logs kept per run; beyond this only the tail is kept.
const MAX_LOG: u64 = 8 << 20;

/// Runs requests until its input closes: each line names a script to run
/// with its output going to the log; the exit code is reported on stdout.
const AGENT: &str = r#"while read -r req; do
  sh /.pach/run.sh </.pach/stdin >/.pach/log 2>&1
  echo "exit $?"
done"#;

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
    /// The exit code (128 + N when killed by signal N); None on timeout.
    pub code: Option<i32>,
    pub timed_out: bool,
}

#[derive(Debug, Clone)]
pub struct Sandbox {
    bwrap: PathBuf,
    /// `--ro-bind`/`--symlink` arguments recreating the host's top level.
    host_args: Vec<String>,
    /// `--ro-bind` arguments of the directories given with [`Sandbox::with_files`].
    file_args: Vec<String>,
}

/// Files user code finds in a directory of its own (a secret's keys under
/// the secret's `mount_path`), read-only.
#[derive(Clone)]
pub struct FileMount {
    /// Absolute directory inside the sandbox.
    pub path: String,
    /// File name -> content.
    pub files: Vec<(String, Vec<u8>)>,
}

impl Sandbox {
    /// Finds bubblewrap and records the host's top-level layout.
    pub fn detect() -> Result<Sandbox> {
        let bwrap = find_on_path("bwrap").ok_or(WorkerError::NoBubblewrap)?;
        let mut host_args = Vec::new();
        let entries = std::fs::read_dir("/").map_err(io("cannot list", "/"))?;
        let mut names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for name in names {
            let Some(name) = name.to_str().map(str::to_string) else {
                continue;
            };
            // Provided by bubblewrap itself or by us.
            if matches!(
                name.as_str(),
                "proc" | "dev" | "tmp" | "pfs" | "sys" | ".pach"
            ) {
                continue;
            }
            let host = format!("/{name}");
            let Ok(meta) = std::fs::symlink_metadata(&host) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                if let Ok(target) = std::fs::read_link(&host) {
                    host_args.extend([
                        "--symlink".into(),
                        target.to_string_lossy().into_owned(),
                        host.clone(),
                    ]);
                }
            } else if meta.is_dir() || meta.is_file() {
                // Files too: a pipeline's image may keep its script at the
                // root (`python3 /edges.py`); installed there on the host, it
                // is where the spec expects it.
                host_args.extend(["--ro-bind".into(), host.clone(), host]);
            }
        }
        if let Some(path) = std::env::var_os("PATH") {
            host_args.extend(writable_tool_dirs(&path));
        }
        Ok(Sandbox {
            bwrap,
            host_args,
            file_args: Vec::new(),
        })
    }

    /// This sandbox with `mounts` added: their files are written under
    /// `dir` on the host (readable by the owner only) and appear read-only
    /// at each mount's path. A path inside a host directory that the sandbox
    /// shows read-only (like `/etc/x`) must already exist on the host.
    pub fn with_files(&self, dir: &Path, mounts: &[FileMount]) -> Result<Sandbox> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mut out = self.clone();
        for (i, m) in mounts.iter().enumerate() {
            let target = Path::new(&m.path);
            let top = target.components().nth(1).map(|c| c.as_os_str().to_owned());
            let shadowed = top.is_some_and(|t| {
                let top = format!("/{}", t.to_string_lossy());
                self.host_args
                    .windows(2)
                    .any(|w| w[0] == "--ro-bind" && w[1] == top)
                    && target != Path::new(&top)
            });
            if shadowed && !target.is_dir() {
                return Err(WorkerError::MountPath {
                    path: m.path.clone(),
                });
            }
            let host = dir.join(format!("mount-{i}"));
            let _ = std::fs::remove_dir_all(&host);
            std::fs::create_dir_all(&host).map_err(io("cannot create", &host))?;
            std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o700))
                .map_err(io("cannot protect", &host))?;
            for (name, bytes) in &m.files {
                if name.is_empty() || name == "." || name == ".." || name.contains('/') {
                    return Err(WorkerError::Io {
                        what: "refusing the file name",
                        path: name.into(),
                        source: std::io::Error::other("a mounted file needs a plain name"),
                    });
                }
                let file = host.join(name);
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o400)
                    .open(&file)
                    .map_err(io("cannot create", &file))?;
                std::io::Write::write_all(&mut f, bytes).map_err(io("cannot write", &file))?;
            }
            out.file_args.extend([
                "--ro-bind".into(),
                host.to_string_lossy().into_owned(),
                m.path.clone(),
            ]);
        }
        Ok(out)
    }

    /// Starts a sandbox over the slot directory `slot`: `slot/pfs` appears at
    /// `/pfs` (with `slot/pfs/out` writable) and `slot/ctl` holds the run
    /// requests and logs.
    pub async fn start(&self, slot: &Path) -> Result<SandboxSession> {
        let pfs = slot.join("pfs");
        let ctl = slot.join("ctl");
        for d in [pfs.join("out"), ctl.clone()] {
            tokio::fs::create_dir_all(&d)
                .await
                .map_err(io("cannot create", &d))?;
        }
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
            .arg("--bind")
            .arg(&ctl)
            .arg("/.pach")
            .args(&self.file_args)
            .args(["--", "sh", "-c", AGENT])
            .env_clear()
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env("HOME", "/tmp")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = bwrap.spawn().map_err(|source| WorkerError::Spawn {
            program: "bwrap".into(),
            source,
        })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().map(|s| BufReader::new(s).lines());
        Ok(SandboxSession {
            child,
            stdin,
            stdout,
            slot: slot.to_path_buf(),
        })
    }
}

/// A running sandbox that runs datums one at a time.
pub struct SandboxSession {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<Lines<BufReader<ChildStdout>>>,
    slot: PathBuf,
}

impl SandboxSession {
    /// The slot directory: inputs go under `dir()/pfs/<input>/`.
    pub fn dir(&self) -> &Path {
        &self.slot
    }

    /// Empties `/pfs` for the next datum, keeping the mounted directories.
    pub async fn reset(&self) -> Result<()> {
        let slot = self.slot.clone();
        tokio::task::spawn_blocking(move || clear_slot(&slot))
            .await
            .map_err(|e| WorkerError::Io {
                what: "cannot clear",
                path: PathBuf::new(),
                source: std::io::Error::other(e),
            })?
    }

    /// Runs `command`; its standard output and error, interleaved as written,
    /// are appended to `log`. After a timeout the session is dead (the
    /// sandbox was killed with everything in it): start a new one.
    pub async fn run(&mut self, command: &Command, log: &mut Vec<u8>) -> Result<Outcome> {
        let ctl = self.slot.join("ctl");
        let script = script(command);
        let mut stdin = command.stdin.join("\n");
        if !stdin.is_empty() {
            stdin.push('\n');
        }
        for (name, body) in [("run.sh", script.as_str()), ("stdin", stdin.as_str())] {
            let p = ctl.join(name);
            tokio::fs::write(&p, body)
                .await
                .map_err(io("cannot write", &p))?;
        }
        let (Some(input), Some(output)) = (self.stdin.as_mut(), self.stdout.as_mut()) else {
            return Err(self.died());
        };
        let request = async {
            input.write_all(b"run\n").await.ok()?;
            input.flush().await.ok()?;
            output.next_line().await.ok()?
        };
        let reply = match command.timeout {
            Some(t) => match tokio::time::timeout(t, request).await {
                Ok(r) => r,
                Err(_) => {
                    self.kill().await;
                    read_log(&ctl, log).await;
                    return Ok(Outcome {
                        code: None,
                        timed_out: true,
                    });
                }
            },
            None => request.await,
        };
        read_log(&ctl, log).await;
        let code = reply
            .as_deref()
            .and_then(|l| l.strip_prefix("exit "))
            .and_then(|c| c.trim().parse::<i32>().ok());
        match code {
            Some(code) => Ok(Outcome {
                code: Some(code),
                timed_out: false,
            }),
            None => Err(self.died()),
        }
    }

    pub fn is_alive(&mut self) -> bool {
        self.stdin.is_some() && matches!(self.child.try_wait(), Ok(None))
    }

    async fn kill(&mut self) {
        self.stdin = None;
        self.stdout = None;
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    fn died(&mut self) -> WorkerError {
        self.stdin = None;
        WorkerError::Spawn {
            program: "the sandbox".into(),
            source: std::io::Error::other(
                "it exited unexpectedly; is bubblewrap able to create namespaces here?",
            ),
        }
    }
}

/// Arguments making the PATH directories kept in home directories (where
/// per-user tool managers such as pyenv keep their shims) writable in the
/// sandbox, with writes discarded when it ends: a tmpfs over the directory
/// holding read-only binds of its entries. Such tools write next to
/// themselves (pyenv rehashes its shims after every `pip install`, and fails
/// the install when it cannot), which a container's writable layer allows
/// and a read-only view of the host does not. System directories stay
/// read-only.
fn writable_tool_dirs(path: &std::ffi::OsStr) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut args = Vec::new();
    for dir in std::env::split_paths(path) {
        let in_home = dir.starts_with("/root") || dir.starts_with("/home");
        if !in_home || !dir.is_dir() || !seen.insert(dir.clone()) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut binds = Vec::new();
        for e in entries.flatten() {
            let p = e.path();
            let Some(p_str) = p.to_str().map(str::to_string) else {
                continue;
            };
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(target) = std::fs::read_link(&p) {
                        binds.extend([
                            "--symlink".to_string(),
                            target.to_string_lossy().into_owned(),
                            p_str,
                        ]);
                    }
                }
                Ok(_) => binds.extend(["--ro-bind".to_string(), p_str.clone(), p_str]),
                Err(_) => {}
            }
        }
        args.extend(["--tmpfs".to_string(), dir.to_string_lossy().into_owned()]);
        args.extend(binds);
    }
    args
}

/// The shell script running one datum: its environment, working directory
/// and command, each word quoted.
fn script(c: &Command) -> String {
    let mut s = String::new();
    for (k, v) in &c.env {
        if k.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') && !k.is_empty() {
            s.push_str(&format!("export {k}={}\n", quote(v)));
        }
    }
    let wd = if c.working_dir.is_empty() {
        "/"
    } else {
        c.working_dir.as_str()
    };
    s.push_str(&format!("cd {} || exit 126\n", quote(wd)));
    s.push_str("exec");
    for w in &c.cmd {
        s.push(' ');
        s.push_str(&quote(w));
    }
    s.push('\n');
    s
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

async fn read_log(ctl: &Path, log: &mut Vec<u8>) {
    let p = ctl.join("log");
    let Ok(mut f) = tokio::fs::File::open(&p).await else {
        return;
    };
    let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
    if len > MAX_LOG {
        use tokio::io::AsyncSeekExt;
        let _ = f.seek(std::io::SeekFrom::Start(len - MAX_LOG)).await;
    }
    use tokio::io::AsyncReadExt;
    let _ = f.read_to_end(log).await;
    let _ = tokio::fs::remove_file(&p).await;
}

/// Removes everything below `slot/pfs` except the (emptied) `out` directory.
fn clear_slot(slot: &Path) -> Result<()> {
    let pfs = slot.join("pfs");
    for dir in [&pfs, &pfs.join("out")] {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io("cannot list", dir)(e)),
        };
        for e in entries.flatten() {
            let path = e.path();
            if dir == &pfs && e.file_name() == "out" {
                continue;
            }
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            let removed = if is_dir {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(io("cannot clear", &path))?;
        }
    }
    Ok(())
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod path_tests {
    use super::*;

    #[test]
    fn tool_dirs_in_home_directories_become_writable_views() {
        let Ok(home) = tempfile::Builder::new()
            .prefix("pach-tools-")
            .tempdir_in("/root")
        else {
            // Not root here: no home directory to try it in.
            return;
        };
        let bin = home.path().join("shims");
        std::fs::create_dir(&bin).unwrap();
        std::fs::write(bin.join("pip"), b"#!/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("pip", bin.join("pip3")).unwrap();
        let path = std::env::join_paths([bin.as_path(), Path::new("/usr/bin")]).unwrap();
        let args = writable_tool_dirs(&path);
        let b = bin.to_str().unwrap();
        let pip = format!("{b}/pip");
        let pip3 = format!("{b}/pip3");
        assert_eq!(args[..2], ["--tmpfs".to_string(), b.to_string()]);
        let rest = args[2..].join(" ");
        assert!(rest.contains(&format!("--ro-bind {pip} {pip}")), "{rest}");
        assert!(rest.contains(&format!("--symlink pip {pip3}")), "{rest}");
        assert!(
            !args.iter().any(|a| a == "/usr/bin"),
            "system directories stay read-only"
        );
    }
}
