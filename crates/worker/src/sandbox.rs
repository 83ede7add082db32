//! The bubblewrap sandbox user code runs in. The host's top-level directories
//! are mounted read-only (so the tools a pipeline calls are the host's),
//! pachd's own data directory is hidden, `/tmp` is private, `/pfs` holds the
//! datum's inputs read-only and `/pfs/out` writable. The sandbox has its own
//! mount, PID, IPC and network namespaces (see [`Network`]) and dies with
//! its parent.
//! Tool directories on PATH inside home directories (pyenv's shims) are
//! writable, their writes discarded, as a container's layer would be.
//!
//! Starting a sandbox costs several milliseconds, more than many datums take,
//! so a [`SandboxSession`] keeps one sandbox alive across datums, like
//! Pachyderm's worker container: an agent inside it (see `agent`) runs each
//! datum's script on request, in user and PID namespaces of the datum's own,
//! and reports the exit code once every process of the datum is gone.
//! Between datums the slot directory behind `/pfs` is emptied and refilled in
//! place (the bind mounts follow the directories, so they must never be
//! replaced). A datum that times out takes its whole sandbox down, leaving no
//! process behind; the next datum gets a fresh one.
//!
//! Who user code is on the host: when pachd runs as root, bubblewrap runs
//! with root's privileges to build the sandbox, and user code runs as uid/gid
//! 65534 ("nobody"), which its own user namespace shows as root. Otherwise
//! bubblewrap builds the sandbox in a user namespace of pachd's user, and
//! user code runs as that user, again shown as root. Either way user code
//! holds no capability over the sandbox's mounts or network, so read-only
//! mounts stay read-only, and at most [`DEFAULT_MAX_PROCESSES`] processes
//! per datum.
//!
//! The slot directory (`slot`): `pfs/` (mounted at `/pfs`), `ctl/` (the run
//! script and stdin, read-only at `/.pach`), `log/` (the datum's output, at
//! `/.pach/log`), `sandbox.log` (bubblewrap's and slirp4netns's diagnostics).

use std::os::fd::AsRawFd;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::agent::{AGENT_NAME, AgentArgs};
use crate::gateway::{self, Gateway};
use crate::network::{self, Network, Slirp};
use crate::{Result, WorkerError, io};

/// Logs kept per run; beyond this only the tail is kept.
pub const MAX_LOG: u64 = 8 << 20;

/// How many processes (threads included) a datum may have at once: enough
/// for parallel tools, few enough that a fork bomb leaves the host usable.
pub const DEFAULT_MAX_PROCESSES: u64 = 1024;

/// The host uid/gid user code runs as when pachd is root.
const NOBODY: u32 = 65534;

/// How long a new sandbox may take to be ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// The host's top-level directories mounted in the sandbox.
    host_dirs: Vec<String>,
    /// The executable run as the agent.
    agent: PathBuf,
    /// Host directories covered by an empty tmpfs in the sandbox.
    hidden: Vec<PathBuf>,
    max_processes: u64,
    /// Whether pachd is root (bubblewrap then runs privileged, user code as
    /// nobody), or not (bubblewrap makes a user namespace).
    privileged: bool,
    /// `--ro-bind` arguments of the directories given with [`Sandbox::with_files`].
    file_args: Vec<String>,
    /// A service's port in the sandbox, reached through the slot's
    /// `log/service.sock` ([`Sandbox::with_service_port`]).
    forward: Option<u16>,
    /// Per-process address space and per-file size of user code
    /// ([`Sandbox::with_limits`]).
    memory: Option<u64>,
    file_size: Option<u64>,
    /// The S3 gateway on the sandbox's loopback ([`Sandbox::with_gateway`]).
    gateway: Option<Gateway>,
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
    /// Finds bubblewrap and records the host's top-level layout. The agent is
    /// this process's own executable, which must call
    /// [`crate::agent::run_if_invoked`] first thing in `main`.
    pub fn detect() -> Result<Sandbox> {
        let exe = std::env::current_exe().map_err(io("cannot find this executable", ""))?;
        Self::with_agent(&exe)
    }

    /// As [`Sandbox::detect`], with `agent` (an executable that runs
    /// [`crate::agent::main`]) as the agent.
    pub fn with_agent(agent: &Path) -> Result<Sandbox> {
        let bwrap = find_on_path("bwrap").ok_or(WorkerError::NoBubblewrap)?;
        let mut host_args = Vec::new();
        let mut host_dirs = Vec::new();
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
                if meta.is_dir() {
                    host_dirs.push(name);
                }
            }
        }
        // SAFETY: geteuid only reads this process's credentials.
        let privileged = unsafe { libc::geteuid() } == 0;
        if privileged {
            // Inputs are written with pachd's umask and read as nobody.
            if let Some(umask) = umask().filter(|m| m & 0o005 != 0) {
                return Err(WorkerError::Umask(umask));
            }
            host_args.extend(reexpose_path_dirs());
        }
        if let Some(path) = std::env::var_os("PATH") {
            host_args.extend(writable_tool_dirs(&path));
        }
        Ok(Sandbox {
            bwrap,
            host_args,
            host_dirs,
            agent: agent.to_path_buf(),
            hidden: Vec::new(),
            max_processes: DEFAULT_MAX_PROCESSES,
            privileged,
            file_args: Vec::new(),
            forward: None,
            memory: None,
            file_size: None,
            gateway: None,
        })
    }

    /// Hides these host directories (pachd's data directory) from user code.
    pub fn hiding(mut self, dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        for d in dirs {
            let Ok(d) = std::fs::canonicalize(&d) else {
                continue;
            };
            // Only what the sandbox shows at all: the host's /tmp is not there.
            let top = d.components().nth(1).and_then(|c| match c {
                Component::Normal(n) => n.to_str().map(str::to_string),
                _ => None,
            });
            if top.is_some_and(|t| self.host_dirs.contains(&t)) && !self.hidden.contains(&d) {
                self.hidden.push(d);
            }
        }
        self
    }

    /// This sandbox with connections to the slot's `log/service.sock`
    /// (see [`SandboxSession::service_socket`]) forwarded to `port` on the
    /// sandbox's own loopback, where a service's user code listens.
    pub fn with_service_port(mut self, port: u16) -> Self {
        self.forward = Some(port);
        self
    }

    /// This sandbox with pachd's S3 gateway reachable by user code at
    /// `127.0.0.1:PORT` of the sandbox's own loopback, served by
    /// `gateway.serve` on the socket the agent hands over (see
    /// [`crate::gateway`]).
    pub fn with_gateway(mut self, gateway: Gateway) -> Self {
        self.gateway = Some(gateway);
        self
    }

    /// This sandbox with user code's processes limited to `memory` bytes
    /// of address space each (RLIMIT_AS) and its files to `file_size` bytes
    /// each (RLIMIT_FSIZE): what a host without a writable cgroup allows.
    pub fn with_limits(mut self, memory: Option<u64>, file_size: Option<u64>) -> Self {
        self.memory = memory;
        self.file_size = file_size;
        self
    }

    /// How many processes a datum may have at once.
    pub fn with_max_processes(mut self, n: u64) -> Self {
        self.max_processes = n.max(1);
        self
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
    /// `/pfs` (with `slot/pfs/out` writable, a directory unless a named pipe
    /// is there already), with `network`.
    pub async fn start(&self, slot: &Path, network: &Network) -> Result<SandboxSession> {
        let pfs = slot.join("pfs");
        let ctl = slot.join("ctl");
        let logs = slot.join("log");
        for d in [pfs.join("out"), ctl.join("log"), logs.clone()] {
            // A spout's /pfs/out is a named pipe (`spout::make_out_fifo`).
            if crate::spout::is_fifo(&d) {
                continue;
            }
            tokio::fs::create_dir_all(&d)
                .await
                .map_err(io("cannot create", &d))?;
        }
        // Mount points for the agent and the resolver configuration.
        let agent_at = ctl.join(AGENT_NAME);
        tokio::fs::write(&agent_at, b"")
            .await
            .map_err(io("cannot create", &agent_at))?;
        let (uid, gid) = if self.privileged {
            // User code (nobody) owns /pfs/out; the rest stays root's.
            let out = pfs.join("out");
            std::os::unix::fs::chown(&out, Some(NOBODY), Some(NOBODY))
                .map_err(io("cannot hand over", &out))?;
            (NOBODY, NOBODY)
        } else {
            (0, 0)
        };
        let diagnostics = slot.join("sandbox.log");
        let outbound = match network {
            Network::Loopback => None,
            Network::Outbound { refused_ports } => Some(refused_ports.clone()),
        };
        let (slirp, nft) = match &outbound {
            None => (None, None),
            Some(_) => (
                Some(find_on_path("slirp4netns").ok_or(WorkerError::NoSlirp)?),
                Some(find_on_path("nft").ok_or(WorkerError::NoNft)?),
            ),
        };
        let agent = AgentArgs {
            uid,
            gid,
            max_processes: self.max_processes,
            refused_ports: outbound.clone().unwrap_or_default(),
            nft: nft
                .filter(|_| outbound.as_ref().is_some_and(|p| !p.is_empty()))
                .map(|p| p.display().to_string()),
            forward: self.forward,
            memory: self.memory,
            file_size: self.file_size,
            gateway: self.gateway.as_ref().map(|g| g.port),
        };

        let mut bwrap = tokio::process::Command::new(&self.bwrap);
        bwrap.args([
            "--die-with-parent",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-net",
            "--unshare-uts",
        ]);
        if !self.privileged {
            // The agent writes each datum's id maps (mapping uid 0 takes
            // CAP_SETFCAP too) and, for outbound network, the firewall:
            // capabilities inside the sandbox's user namespace only.
            bwrap.args(["--unshare-user", "--uid", "0", "--gid", "0"]);
            for cap in ["CAP_SETUID", "CAP_SETGID", "CAP_SETFCAP"] {
                bwrap.args(["--cap-add", cap]);
            }
            if agent.nft.is_some() {
                bwrap.args(["--cap-add", "CAP_NET_ADMIN"]);
            }
        }
        bwrap.args(["--tmpfs", "/"]).args(&self.host_args);
        for d in &self.hidden {
            bwrap.arg("--tmpfs").arg(d);
        }
        bwrap
            .args(["--dev", "/dev", "--proc", "/proc"])
            .args(["--perms", "1777", "--tmpfs", "/tmp"])
            .arg("--ro-bind")
            .arg(&pfs)
            .arg("/pfs")
            .arg("--bind")
            .arg(pfs.join("out"))
            .arg("/pfs/out")
            .arg("--ro-bind")
            .arg(&ctl)
            .arg("/.pach")
            .arg("--bind")
            .arg(&logs)
            .arg("/.pach/log")
            .arg("--ro-bind")
            .arg(&self.agent)
            .arg(format!("/.pach/{AGENT_NAME}"));
        if outbound.is_some() {
            let resolv = slot.join("resolv.conf");
            tokio::fs::write(&resolv, network::RESOLV_CONF)
                .await
                .map_err(io("cannot write", &resolv))?;
            if std::fs::symlink_metadata("/etc/resolv.conf").is_ok_and(|m| m.is_file()) {
                bwrap.arg("--ro-bind").arg(&resolv).arg("/etc/resolv.conf");
            }
        }
        // bubblewrap tells the sandbox's PID, which slirp4netns joins.
        let info = match outbound {
            Some(_) => {
                let (r, w) = network::pipe()?;
                bwrap.args(["--info-fd", "3"]);
                let fd = w.as_raw_fd();
                // SAFETY: dup2 is async-signal-safe; `fd` is at least 10.
                unsafe {
                    bwrap.pre_exec(move || {
                        if libc::dup2(fd, 3) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                Some((r, w))
            }
            None => None,
        };
        // The socket pair the agent hands the gateway's listener over on:
        // its end becomes the agent's GATEWAY_FD.
        let channel = match &self.gateway {
            Some(_) => {
                let (ours, theirs) = gateway::channel()?;
                let fd = theirs.as_raw_fd();
                // SAFETY: dup2 is async-signal-safe; `fd` is at least 10.
                unsafe {
                    bwrap.pre_exec(move || {
                        if libc::dup2(fd, gateway::GATEWAY_FD) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                Some((ours, theirs))
            }
            None => None,
        };
        bwrap
            .args(&self.file_args)
            .arg("--")
            .arg(format!("/.pach/{AGENT_NAME}"))
            .args(agent.to_args())
            .env_clear()
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env("HOME", "/tmp")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(network::log_file(&diagnostics)?)
            .kill_on_drop(true);
        let mut child = bwrap.spawn().map_err(|source| WorkerError::Spawn {
            program: "bwrap".into(),
            source,
        })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().map(|s| BufReader::new(s).lines());
        let channel = channel.map(|(ours, _theirs)| ours);
        let mut session = SandboxSession {
            child,
            stdin,
            stdout,
            slot: slot.to_path_buf(),
            slirp: None,
            gateway: None,
        };
        let ready = tokio::time::timeout(START_TIMEOUT, async {
            if let (Some((r, w)), Some(slirp)) = (info, slirp) {
                drop(w);
                let info = network::read_all(r).await.unwrap_or_default();
                let pid = child_pid(&info).ok_or_else(|| {
                    WorkerError::Network(format!(
                        "bubblewrap did not say where the sandbox runs: {}",
                        network::tail(&diagnostics)
                    ))
                })?;
                session.slirp =
                    Some(Slirp::start(&slirp, pid, !self.privileged, &diagnostics).await?);
            }
            let line = match session.stdout.as_mut() {
                Some(out) => out.next_line().await.ok().flatten(),
                None => None,
            };
            match line.as_deref() {
                Some("ready") => {
                    if let (Some(ours), Some(g)) = (&channel, &self.gateway) {
                        let listener = gateway::receive(ours)?;
                        session.gateway = Some((g.serve)(listener));
                    }
                    Ok(())
                }
                Some(other) => Err(WorkerError::Agent(
                    other.strip_prefix("error: ").unwrap_or(other).to_string(),
                )),
                None => Err(session.died()),
            }
        })
        .await;
        match ready {
            Ok(Ok(())) => Ok(session),
            Ok(Err(e)) => {
                session.kill().await;
                Err(e)
            }
            Err(_) => {
                session.kill().await;
                Err(WorkerError::Agent(format!(
                    "the sandbox was not ready within {} s: {}",
                    START_TIMEOUT.as_secs(),
                    network::tail(&diagnostics)
                )))
            }
        }
    }
}

/// This process's umask, from /proc (reading it with umask(2) would change it).
fn umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let v = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(v.trim(), 8).ok()
}

/// Arguments that let user code running as nobody reach the tools on PATH
/// (e.g. an interpreter under root's home): a directory on the way to a
/// PATH directory that others may not traverse (`/root`, mode 0700) becomes
/// a tmpfs holding read-only binds of its entries, each keeping its own
/// permissions. Only the list of that directory's names is revealed; its
/// sockets and other special files are left out.
fn reexpose_path_dirs() -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = Vec::new();
    for entry in std::env::split_paths(&path) {
        let Ok(entry) = std::fs::canonicalize(&entry) else {
            continue;
        };
        for a in entry
            .ancestors()
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .skip(1)
        {
            let closed = std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 == 0);
            if closed && !dirs.iter().any(|d| d == a) {
                dirs.push(a.to_path_buf());
            }
        }
    }
    // Outer directories first: each is re-created before what is inside it.
    dirs.sort_by_key(|d| d.components().count());
    let mut args = Vec::new();
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        args.extend(["--tmpfs".to_string(), d.display().to_string()]);
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path().display().to_string();
            match e.file_type() {
                Ok(t) if t.is_symlink() => {
                    if let Ok(target) = std::fs::read_link(e.path()) {
                        args.extend(["--symlink".into(), target.display().to_string(), p]);
                    }
                }
                Ok(t) if t.is_dir() || t.is_file() => {
                    args.extend(["--ro-bind".into(), p.clone(), p]);
                }
                _ => {}
            }
        }
    }
    args
}

/// `"child-pid": N` from bubblewrap's --info-fd JSON.
fn child_pid(info: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(info).ok()?;
    let rest = &text[text.find("\"child-pid\"")? + "\"child-pid\"".len()..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A running sandbox that runs datums one at a time.
pub struct SandboxSession {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<Lines<BufReader<ChildStdout>>>,
    slot: PathBuf,
    slirp: Option<Slirp>,
    /// pachd serving the S3 gateway on the sandbox's socket: it ends with
    /// the sandbox.
    gateway: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for SandboxSession {
    fn drop(&mut self) {
        if let Some(g) = self.gateway.take() {
            g.abort();
        }
    }
}

impl SandboxSession {
    /// Where a sandbox started [`Sandbox::with_service_port`] takes the
    /// connections it forwards to its service, on the host.
    pub fn service_socket(&self) -> PathBuf {
        self.slot.join("log").join("service.sock")
    }

    /// Where the running command's output goes while it runs, on the host:
    /// read it with [`read_running_log`], never by opening the path.
    pub fn log_file(&self) -> PathBuf {
        self.slot.join("log").join("log")
    }

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
    /// are appended to `log`. When this returns, no process the command
    /// started is left. After a timeout the session is dead (the sandbox was
    /// killed with everything in it): start a new one.
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
        let logs = self.slot.join("log");
        let reply = match command.timeout {
            Some(t) => match tokio::time::timeout(t, request).await {
                Ok(r) => r,
                Err(_) => {
                    self.kill().await;
                    read_log(&logs, log).await;
                    return Ok(Outcome {
                        code: None,
                        timed_out: true,
                    });
                }
            },
            None => request.await,
        };
        read_log(&logs, log).await;
        let reply = match reply {
            Some(r) => r,
            None => return Err(self.died()),
        };
        if let Some(e) = reply.strip_prefix("error: ") {
            return Err(WorkerError::Agent(e.to_string()));
        }
        match reply
            .strip_prefix("exit ")
            .and_then(|c| c.trim().parse::<i32>().ok())
        {
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
        self.slirp = None;
        if let Some(g) = self.gateway.take() {
            g.abort();
        }
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    fn died(&mut self) -> WorkerError {
        self.stdin = None;
        WorkerError::Agent(format!(
            "the sandbox exited unexpectedly (is bubblewrap able to create namespaces here?): {}",
            network::tail(&self.slot.join("sandbox.log"))
        ))
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
        // Writable by whoever user code runs as (nobody under a privileged pachd).
        args.extend([
            "--perms".to_string(),
            "1777".to_string(),
            "--tmpfs".to_string(),
            dir.to_string_lossy().into_owned(),
        ]);
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

/// Appends the datum's log (its tail past [`MAX_LOG`]) to `log`, then
/// removes it. The log directory is writable from the sandbox, so only a
/// regular file is read, and never through a link.
async fn read_log(dir: &Path, log: &mut Vec<u8>) {
    let p = dir.join("log");
    let read = {
        let p = p.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
            use std::io::{Read, Seek};
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(&p)?;
            let meta = f.metadata()?;
            if !meta.is_file() {
                return Ok(Vec::new());
            }
            if meta.len() > MAX_LOG {
                f.seek(std::io::SeekFrom::Start(meta.len() - MAX_LOG))?;
            }
            let mut buf = Vec::new();
            f.take(MAX_LOG).read_to_end(&mut buf)?;
            Ok(buf)
        })
        .await
    };
    if let Ok(Ok(bytes)) = read {
        log.extend_from_slice(&bytes);
    }
    let _ = tokio::fs::remove_file(&p).await;
}

/// What the running command wrote to `log` (a [`SandboxSession::log_file`])
/// from byte `offset` on, at most [`MAX_LOG`] bytes; nothing when there is
/// no such file yet. The log directory is writable from the sandbox, so
/// only a regular file is read, and never through a link.
pub async fn read_running_log(log: &Path, offset: u64) -> std::io::Result<Vec<u8>> {
    let log = log.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Seek};
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&log)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let meta = f.metadata()?;
        if !meta.is_file() || meta.len() <= offset {
            return Ok(Vec::new());
        }
        f.seek(std::io::SeekFrom::Start(offset))?;
        let mut buf = Vec::new();
        f.take(MAX_LOG).read_to_end(&mut buf)?;
        Ok(buf)
    })
    .await
    .map_err(std::io::Error::other)?
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
                std::fs::remove_dir_all(&path).or_else(|_| {
                    // User code running as pachd's own user may have taken
                    // its directories' permissions away (chmod 000).
                    open_up(&path);
                    std::fs::remove_dir_all(&path)
                })
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(io("cannot clear", &path))?;
        }
    }
    Ok(())
}

/// Gives the owner full access to `dir` and the directories below it
/// (never following links), so that they can be removed.
fn open_up(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                open_up(&e.path());
            }
        }
    }
}

pub(crate) fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_pid_from_bubblewrap_info() {
        let info = br#"{
    "child-pid": 5602,
    "ipc-namespace": 4026532178
}"#;
        assert_eq!(child_pid(info), Some(5602));
        assert_eq!(child_pid(b"{}"), None);
        assert_eq!(child_pid(b"{\"child-pid\": \"x\"}"), None);
    }
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
        assert_eq!(args[..4], ["--perms", "1777", "--tmpfs", b]);
        let rest = args[4..].join(" ");
        assert!(rest.contains(&format!("--ro-bind {pip} {pip}")), "{rest}");
        assert!(rest.contains(&format!("--symlink pip {pip3}")), "{rest}");
        assert!(
            !args.iter().any(|a| a == "/usr/bin"),
            "system directories stay read-only"
        );
    }
}
