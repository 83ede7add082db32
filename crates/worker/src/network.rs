//! The network a datum sees. Every sandbox has a network namespace of its
//! own. With [`Network::Loopback`] (the default) it holds only a loopback
//! interface: user code reaches nothing outside its sandbox, pachd's API and
//! the metadata store included. With [`Network::Outbound`], slirp4netns
//! gives the namespace a tap interface whose connections it makes from the
//! host on the sandbox's behalf, with the host's loopback unreachable
//! (`--disable-host-loopback`); the agent then refuses TCP through that
//! interface to the ports named (pachd's, the metadata store's), which user
//! code cannot undo since the namespace is not its own.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::{Result, WorkerError};

/// The interface slirp4netns adds to the sandbox.
pub(crate) const TAP: &str = "tap0";

/// The DNS forwarder slirp4netns serves on its network.
pub(crate) const RESOLV_CONF: &str = "nameserver 10.0.2.3\n";

/// How long slirp4netns may take to set the network up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// What a datum's network reaches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Network {
    /// Loopback only: nothing outside the sandbox.
    #[default]
    Loopback,
    /// Outbound connections (e.g. `pip install` from a package index),
    /// except to the host's loopback and, on any address, to TCP `refused_ports`.
    Outbound { refused_ports: Vec<u16> },
}

/// A running slirp4netns; it exits when this is dropped.
#[derive(Debug)]
pub(crate) struct Slirp {
    child: tokio::process::Child,
    /// slirp4netns exits once this, the write end of its `--exit-fd`, closes.
    _exit: OwnedFd,
}

impl Slirp {
    /// Connects the network namespace of `pid` to the host through
    /// slirp4netns; `userns` names the user namespace that owns it when
    /// pachd is not root (the sandbox's), to be joined first.
    pub(crate) async fn start(slirp: &Path, pid: u32, userns: bool, log: &Path) -> Result<Slirp> {
        let (ready_r, ready_w) = pipe()?;
        let (exit_r, exit_w) = pipe()?;
        let mut cmd = tokio::process::Command::new(slirp);
        cmd.args([
            "--configure",
            "--mtu=65520",
            "--disable-host-loopback",
            "--enable-sandbox",
            "--enable-seccomp",
            "--ready-fd=3",
            "--exit-fd=4",
        ]);
        if userns {
            cmd.arg(format!("--userns-path=/proc/{pid}/ns/user"));
        }
        cmd.arg("--netns-type=path")
            .arg(format!("/proc/{pid}/ns/net"))
            .arg(TAP)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(log)?)
            .kill_on_drop(true);
        let (r, w) = (ready_w.as_raw_fd(), exit_r.as_raw_fd());
        // SAFETY: dup2 is async-signal-safe; both sources are at least 10
        // (see `pipe`), so neither is overwritten before it is copied.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| WorkerError::Spawn {
            program: slirp.display().to_string(),
            source,
        })?;
        // Our copies go, so that the ready pipe ends when slirp4netns does.
        drop(ready_w);
        drop(exit_r);
        let mut s = Slirp {
            child,
            _exit: exit_w,
        };
        let ready = tokio::time::timeout(READY_TIMEOUT, read_all(ready_r)).await;
        match ready {
            Ok(Ok(bytes)) if bytes.starts_with(b"1") => Ok(s),
            _ => {
                let _ = s.child.start_kill();
                let _ = s.child.wait().await;
                Err(WorkerError::Network(format!(
                    "slirp4netns did not connect the sandbox: {}",
                    tail(log)
                )))
            }
        }
    }
}

/// A pipe whose ends are close-on-exec descriptors numbered 10 or more.
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds: [RawFd; 2] = [0; 2];
    let io = |e| WorkerError::Io {
        what: "cannot create a pipe",
        path: PathBuf::new(),
        source: e,
    };
    // SAFETY: pipe2 writes two descriptors, owned below.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io(std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created and are owned here.
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let high = |fd: OwnedFd| -> Result<OwnedFd> {
        // SAFETY: duplicates an owned descriptor; the copy is owned below.
        let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
        if n < 0 {
            return Err(io(std::io::Error::last_os_error()));
        }
        // SAFETY: `n` was just created.
        Ok(unsafe { OwnedFd::from_raw_fd(n) })
    };
    Ok((high(a)?, high(b)?))
}

/// Reads a pipe to its end.
pub(crate) async fn read_all(fd: OwnedFd) -> std::io::Result<Vec<u8>> {
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut f = std::fs::File::from(fd);
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(buf)
    })
    .await
    .map_err(std::io::Error::other)?
}

pub(crate) fn log_file(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(crate::io("cannot create", path))
}

/// The last lines of a diagnostics file, for an error message.
pub(crate) fn tail(path: &Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    if lines.is_empty() {
        "(it said nothing)".into()
    } else {
        lines.into_iter().rev().collect::<Vec<_>>().join("; ")
    }
}
