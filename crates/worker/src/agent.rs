//! The agent: the one long-lived process inside a slot's sandbox. It runs
//! each datum's script on request, every datum in namespaces of its own, and
//! reports the exit code once every process the datum started is gone.
//!
//! Per datum it forks a process that enters a new user namespace and a new
//! PID namespace. The user namespace maps uid/gid 0 to the sandbox's host
//! uid/gid (65534, "nobody", when pachd runs as root; pachd's own ids
//! otherwise), so user code sees itself as root while holding no capability
//! over anything of the host: the mount, network and IPC namespaces belong to
//! the sandbox, not to it, and mounts it copies are locked. Its capability
//! bounding set is cut to Docker's default set and `RLIMIT_NPROC` caps how
//! many processes the datum may have at once (counted per user namespace, so
//! per datum). The first process of the PID namespace is a small reaper here;
//! when the datum's command exits the reaper exits with its status, and the
//! kernel kills whatever else the datum left behind before the agent can see
//! the reaper gone. So no process of a datum outlives it.
//!
//! Before anything else it hands the S3 gateway's listening socket over to
//! pachd when asked to (`crate::gateway`).
//!
//! Protocol (the agent's stdin/stdout): `ready` once set up (or `error: …`
//! and exit); then each `run` line runs `/.pach/run.sh` with `/.pach/stdin`
//! as its input and its output in `/.pach/log/log`, and is answered by
//! `exit N` (128 + signal when killed by one) or `error: …`.
//!
//! Invariants: single-threaded; between fork and exec a child only makes
//! system calls on data prepared before the fork.

use std::ffi::{CString, OsString};
use std::io::{BufRead, Write};

/// The file name the sandbox gives the agent's executable; a binary started
/// under this name runs the agent (see [`run_if_invoked`]).
pub const AGENT_NAME: &str = "pach-sandbox-agent";

/// Where the agent finds the datum's script, input and log, inside the sandbox.
const RUN_SCRIPT: &str = "/.pach/run.sh";
const STDIN_FILE: &str = "/.pach/stdin";
const LOG_FILE: &str = "/.pach/log/log";

/// Capabilities user code keeps inside its own user namespace: Docker's
/// default set, which Pachyderm's user containers get. They act only on
/// what that namespace owns (its files in `/pfs/out`, its processes).
const KEPT_CAPS: &[u32] = &[
    0,  // CHOWN
    1,  // DAC_OVERRIDE
    3,  // FOWNER
    4,  // FSETID
    5,  // KILL
    6,  // SETGID
    7,  // SETUID
    8,  // SETPCAP
    10, // NET_BIND_SERVICE
    13, // NET_RAW
    18, // SYS_CHROOT
    27, // MKNOD
    29, // AUDIT_WRITE
    31, // SETFCAP
];

/// What the agent is started with (its command-line arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AgentArgs {
    /// The ids that uid/gid 0 of each datum's user namespace map to, as the
    /// agent's own namespace sees them.
    pub uid: u32,
    pub gid: u32,
    /// RLIMIT_NPROC of each datum.
    pub max_processes: u64,
    /// TCP ports refused on the outbound interface, with the `nft` to refuse
    /// them with (empty: no firewall, as without outbound network).
    pub refused_ports: Vec<u16>,
    pub nft: Option<String>,
    /// A service's port inside the sandbox, which connections to
    /// [`SERVICE_SOCKET`] are forwarded to.
    pub forward: Option<u16>,
    /// RLIMIT_AS (bytes of address space) of each process of a datum.
    pub memory: Option<u64>,
    /// RLIMIT_FSIZE (bytes) of each file a datum writes.
    pub file_size: Option<u64>,
    /// The port on the sandbox's loopback where pachd serves the S3 gateway
    /// on a socket the agent hands over (`crate::gateway`).
    pub gateway: Option<u16>,
}

/// The Unix socket a service's connections come in through, inside the
/// sandbox (the slot's `log/service.sock` on the host). A socket file
/// crosses network namespaces: pachd connects to it from the host, and a
/// process of the agent inside the sandbox's network namespace connects on
/// to the service's port on the sandbox's loopback. Nothing goes the other
/// way: user code reaches no port of the host through it.
pub const SERVICE_SOCKET: &str = "/.pach/log/service.sock";

impl AgentArgs {
    pub(crate) fn to_args(&self) -> Vec<String> {
        let mut a = vec![
            self.uid.to_string(),
            self.gid.to_string(),
            self.max_processes.to_string(),
        ];
        if let Some(port) = self.forward {
            a.push(format!("forward={port}"));
        }
        if let Some(bytes) = self.memory {
            a.push(format!("memory={bytes}"));
        }
        if let Some(bytes) = self.file_size {
            a.push(format!("file-size={bytes}"));
        }
        if let Some(port) = self.gateway {
            a.push(format!("gateway={port}"));
        }
        if let Some(nft) = &self.nft {
            let ports: Vec<String> = self.refused_ports.iter().map(u16::to_string).collect();
            a.push(nft.clone());
            a.push(ports.join(","));
        }
        a
    }

    fn parse(args: &[String]) -> Result<AgentArgs, String> {
        let (mut forward, mut memory, mut file_size, mut gateway) = (None, None, None, None);
        let mut rest = Vec::new();
        let bytes = |v: &str| v.parse::<u64>().map_err(|_| format!("bad size '{v}'"));
        for a in args {
            if let Some(p) = a.strip_prefix("forward=") {
                forward = Some(p.parse().map_err(|_| format!("bad port '{p}'"))?);
            } else if let Some(v) = a.strip_prefix("memory=") {
                memory = Some(bytes(v)?);
            } else if let Some(v) = a.strip_prefix("file-size=") {
                file_size = Some(bytes(v)?);
            } else if let Some(p) = a.strip_prefix("gateway=") {
                gateway = Some(p.parse().map_err(|_| format!("bad port '{p}'"))?);
            } else {
                rest.push(a.clone());
            }
        }
        let args = &rest;
        let num = |i: usize, what: &str| -> Result<u64, String> {
            args.get(i)
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| format!("argument {} ({what}) is missing or not a number", i + 1))
        };
        let id = |i: usize, what: &str| -> Result<u32, String> {
            u32::try_from(num(i, what)?).map_err(|_| format!("{what} is out of range"))
        };
        let (nft, refused_ports) = match (args.get(3), args.get(4)) {
            (Some(nft), Some(ports)) => {
                let ports = ports
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| p.parse::<u16>().map_err(|_| format!("bad port '{p}'")))
                    .collect::<Result<Vec<u16>, String>>()?;
                (Some(nft.clone()), ports)
            }
            _ => (None, vec![]),
        };
        Ok(AgentArgs {
            uid: id(0, "uid")?,
            gid: id(1, "gid")?,
            max_processes: num(2, "max processes")?,
            refused_ports,
            nft,
            forward,
            memory,
            file_size,
            gateway,
        })
    }
}

/// Runs the agent and exits if this process was started as the agent (its
/// program name is [`AGENT_NAME`]); returns otherwise. A binary that lets
/// [`crate::Sandbox::detect`] use its own executable as the agent calls this
/// first thing in `main`, before starting any thread.
pub fn run_if_invoked() {
    let mut args = std::env::args_os();
    let invoked = args
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n == AGENT_NAME))
        .unwrap_or(false);
    if invoked {
        main_with(args.collect());
    }
}

/// The agent's `main`: runs it with this process's arguments, then exits.
pub fn main() -> ! {
    main_with(std::env::args_os().skip(1).collect())
}

fn main_with(args: Vec<OsString>) -> ! {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let code = match AgentArgs::parse(&args).and_then(|a| serve(&a)) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(std::io::stdout(), "error: {e}");
            let _ = std::io::stdout().flush();
            1
        }
    };
    std::process::exit(code)
}

fn serve(args: &AgentArgs) -> Result<(), String> {
    // The gateway's socket goes to pachd first: the descriptor it goes
    // through is closed with the others just below.
    if let Some(port) = args.gateway {
        crate::gateway::hand_over(port)?;
    }
    // Descriptors bubblewrap or pachd left open must not reach user code.
    // SAFETY: closes descriptors above stderr, none of which this process uses.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    // Supplementary groups would follow user code into its namespace (root's
    // group 0 among them); only a privileged agent can drop them.
    // SAFETY: setgroups with a zero-length list reads no memory.
    unsafe { libc::setgroups(0, std::ptr::null()) };
    if let Some(nft) = &args.nft {
        firewall(nft, &args.refused_ports)?;
    }
    if let Some(port) = args.forward {
        start_forwarder(port)?;
    }
    let prepared = Prepared::new()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim() != "run" {
            continue;
        }
        let reply = match run_datum(args, &prepared) {
            Ok(code) => format!("exit {code}"),
            Err(e) => format!("error: {e}"),
        };
        if writeln!(out, "{reply}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
    Ok(())
}

/// Forks the process that forwards connections to [`SERVICE_SOCKET`] to
/// `port` on the sandbox's loopback (a process of its own, so the agent
/// stays single-threaded). It ends with the sandbox.
fn start_forwarder(port: u16) -> Result<(), String> {
    let _ = std::fs::remove_file(SERVICE_SOCKET);
    let listener = std::os::unix::net::UnixListener::bind(SERVICE_SOCKET)
        .map_err(|e| format!("cannot listen on {SERVICE_SOCKET}: {e}"))?;
    // SAFETY: the agent is single-threaded here; the child only runs the
    // forwarding loop below and exits.
    match unsafe { libc::fork() } {
        -1 => Err(os_error("cannot start the service's forwarder")),
        0 => {
            // Not the agent's protocol: away from its stdin and stdout.
            if let Ok(null) = std::fs::File::open("/dev/null") {
                use std::os::fd::AsRawFd;
                // SAFETY: replaces this process's own stdin and stdout.
                unsafe {
                    libc::dup2(null.as_raw_fd(), 0);
                    libc::dup2(libc::STDERR_FILENO, 1);
                }
            }
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                std::thread::spawn(move || forward(conn, port));
            }
            std::process::exit(0)
        }
        _ => Ok(()),
    }
}

/// Copies between one incoming connection and the service, both ways.
fn forward(conn: std::os::unix::net::UnixStream, port: u16) {
    let Ok(service) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let (Ok(mut conn_r), Ok(mut service_w)) = (conn.try_clone(), service.try_clone()) else {
        return;
    };
    let upstream = std::thread::spawn(move || {
        let _ = std::io::copy(&mut conn_r, &mut service_w);
        let _ = service_w.shutdown(std::net::Shutdown::Write);
    });
    let (mut service_r, mut conn_w) = (service, conn);
    let _ = std::io::copy(&mut service_r, &mut conn_w);
    let _ = conn_w.shutdown(std::net::Shutdown::Write);
    let _ = upstream.join();
}

/// Refuses TCP connections to `ports` through the outbound interface: the
/// sandbox's network namespace is the agent's, and user code holds no
/// capability over it, so it cannot lift the rule.
fn firewall(nft: &str, ports: &[u16]) -> Result<(), String> {
    if ports.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    let rules = format!(
        "table inet pach_sandbox {{\n  chain output {{\n    type filter hook output priority 0; policy accept;\n    oifname \"{}\" tcp dport {{ {} }} reject with tcp reset\n  }}\n}}\n",
        crate::network::TAP,
        list.join(", ")
    );
    let mut child = std::process::Command::new(nft)
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {nft} to refuse pachd's ports: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(rules.as_bytes())
            .map_err(|e| format!("cannot feed {nft}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{nft} failed: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{nft} could not refuse pachd's ports ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Everything a datum's processes need between fork and exec, built once.
struct Prepared {
    /// The highest capability number the kernel knows.
    last_cap: u32,
    sh: CString,
    argv0: CString,
    script: CString,
    stdin: CString,
    log: CString,
}

impl Prepared {
    fn new() -> Result<Prepared, String> {
        let c = |s: &str| CString::new(s).map_err(|e| e.to_string());
        Ok(Prepared {
            last_cap: last_cap(),
            sh: c("/bin/sh")?,
            argv0: c("sh")?,
            script: c(RUN_SCRIPT)?,
            stdin: c(STDIN_FILE)?,
            log: c(LOG_FILE)?,
        })
    }
}

/// Closes its descriptors when dropped.
struct Fds(Vec<libc::c_int>);

impl Drop for Fds {
    fn drop(&mut self) {
        for fd in &self.0 {
            // SAFETY: each descriptor is owned here and closed once.
            unsafe { libc::close(*fd) };
        }
    }
}

fn os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// Runs one datum; returns its exit code once all its processes are gone.
fn run_datum(args: &AgentArgs, p: &Prepared) -> Result<i32, String> {
    // A fresh log: removed first so that nothing user code left at its
    // path (a link, a pipe) is opened in its place.
    // SAFETY: the path is a valid NUL-terminated string.
    unsafe { libc::unlink(p.log.as_ptr()) };
    let mut fds = Fds(vec![]);
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: as above; the descriptor is owned by `fds`.
    let log = unsafe { libc::open(p.log.as_ptr(), flags, 0o644) };
    if log < 0 {
        return Err(os_error("cannot create the datum's log"));
    }
    fds.0.push(log);
    // SAFETY: as above.
    let input = unsafe { libc::open(p.stdin.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if input < 0 {
        return Err(os_error("cannot open the datum's stdin"));
    }
    fds.0.push(input);
    // Two pipes: the child says when its namespaces exist, the agent says
    // when their id maps are written.
    let mut up = [0; 2];
    let mut mapped = [0; 2];
    // SAFETY: pipe2 writes two descriptors into each array.
    if unsafe { libc::pipe2(up.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(os_error("pipe"));
    }
    fds.0.extend(up);
    // SAFETY: as above.
    if unsafe { libc::pipe2(mapped.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(os_error("pipe"));
    }
    fds.0.extend(mapped);
    let limit = libc::rlimit {
        rlim_cur: args.max_processes,
        rlim_max: args.max_processes,
    };
    let rlimit = |v: Option<u64>| {
        let v = v.unwrap_or(libc::RLIM_INFINITY);
        libc::rlimit {
            rlim_cur: v,
            rlim_max: v,
        }
    };
    // RLIMIT_NPROC, and resource_limits.memory and .disk (docs/sandbox.md).
    let limits = [
        (libc::RLIMIT_NPROC, limit),
        (libc::RLIMIT_AS, rlimit(args.memory)),
        (libc::RLIMIT_FSIZE, rlimit(args.file_size)),
    ];
    // SAFETY: fork in a single-threaded process; the child runs only
    // `datum_child`, which makes system calls on prepared data and exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(os_error("fork"));
    }
    if pid == 0 {
        // SAFETY: see `datum_child`.
        unsafe {
            // The agent's ends: a read on `mapped` must see the end of
            // the pipe when the agent closes its write end.
            libc::close(up[0]);
            libc::close(mapped[1]);
            datum_child(p, up[1], mapped[0], input, log, &limits)
        }
    }
    // SAFETY: closing our copies of the child's pipe ends, owned here.
    unsafe {
        libc::close(up[1]);
        libc::close(mapped[0]);
    }
    fds.0.retain(|fd| *fd != up[1] && *fd != mapped[0]);
    let result = map_ids(pid, args, up[0], mapped[1]);
    // SAFETY: closing the write end lets a child still waiting on it go on
    // (to fail, when the maps were not written).
    unsafe { libc::close(mapped[1]) };
    fds.0.retain(|fd| *fd != mapped[1]);
    let status = wait(pid)?;
    result?;
    Ok(status)
}

/// Waits for the child to have its namespaces, then writes its id maps.
fn map_ids(
    pid: libc::pid_t,
    args: &AgentArgs,
    up: libc::c_int,
    go: libc::c_int,
) -> Result<(), String> {
    let mut b = [0u8; 1];
    // SAFETY: reads one byte into `b`.
    let n = unsafe { libc::read(up, b.as_mut_ptr().cast(), 1) };
    if n != 1 {
        return Err("the datum's process died before it had its namespaces".into());
    }
    for (file, id) in [("uid_map", args.uid), ("gid_map", args.gid)] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, format!("0 {id} 1\n"))
            .map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    // SAFETY: writes one byte from `b`.
    if unsafe { libc::write(go, b.as_ptr().cast(), 1) } != 1 {
        return Err(os_error("cannot start the datum"));
    }
    Ok(())
}

fn wait(pid: libc::pid_t) -> Result<i32, String> {
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child; writes its status.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(code(status));
        }
        if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(os_error("waitpid"));
        }
    }
}

fn code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

/// The datum's first process: enters new user and PID namespaces, becomes
/// root of the former (once the agent has mapped it), cuts its capabilities
/// and process count, then starts the reaper (PID 1 of the datum).
///
/// # Safety
/// Called in a freshly forked child; makes only async-signal-safe calls and
/// never returns.
unsafe fn datum_child(
    p: &Prepared,
    up: libc::c_int,
    go: libc::c_int,
    input: libc::c_int,
    log: libc::c_int,
    limits: &[(libc::__rlimit_resource_t, libc::rlimit)],
) -> ! {
    unsafe {
        // Dies with the agent.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWPID) != 0 {
            fail(log, b"cannot create the datum's namespaces\n");
        }
        let b = [1u8];
        libc::write(up, b.as_ptr().cast(), 1);
        let mut r = [0u8];
        if libc::read(go, r.as_mut_ptr().cast(), 1) != 1 {
            fail(log, b"the datum's user namespace was not mapped\n");
        }
        if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
            fail(log, b"cannot become root of the datum's user namespace\n");
        }
        // Fails without effect where the agent already dropped them.
        libc::setgroups(0, std::ptr::null());
        for cap in 0..=p.last_cap {
            if !KEPT_CAPS.contains(&cap) {
                libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0);
            }
        }
        for (resource, limit) in limits {
            if libc::setrlimit(*resource, limit) != 0 {
                fail(
                    log,
                    b"cannot limit the datum's processes, memory or files\n",
                );
            }
        }
        let reaper = libc::fork();
        if reaper < 0 {
            fail(log, b"cannot start the datum\n");
        }
        if reaper == 0 {
            reap(p, input, log);
        }
        // The reaper's end is the datum's end: every process left in its
        // PID namespace is killed before this wait returns.
        let mut status = 0;
        loop {
            let r = libc::waitpid(reaper, &mut status, 0);
            if r == reaper {
                libc::_exit(code(status));
            }
            if r < 0 && *libc::__errno_location() != libc::EINTR {
                libc::_exit(255);
            }
        }
    }
}

/// PID 1 of the datum: runs the script, reaps orphans meanwhile, and exits
/// with the script's status, which ends the PID namespace.
///
/// # Safety
/// As for [`datum_child`].
unsafe fn reap(p: &Prepared, input: libc::c_int, log: libc::c_int) -> ! {
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        let child = libc::fork();
        if child < 0 {
            fail(log, b"cannot start the datum's command\n");
        }
        if child == 0 {
            libc::dup2(input, 0);
            libc::dup2(log, 1);
            libc::dup2(log, 2);
            let argv = [p.argv0.as_ptr(), p.script.as_ptr(), std::ptr::null()];
            libc::execv(p.sh.as_ptr(), argv.as_ptr());
            fail(2, b"cannot run /bin/sh in the sandbox\n");
        }
        let mut status = 0;
        loop {
            let r = libc::waitpid(-1, &mut status, 0);
            if r == child {
                libc::_exit(code(status));
            }
            if r < 0 && *libc::__errno_location() == libc::ECHILD {
                libc::_exit(255);
            }
        }
    }
}

/// The highest capability number this kernel knows (its bounding set's).
fn last_cap() -> u32 {
    // CAP_CHECKPOINT_RESTORE (40) is the last as of Linux 5.9; probing
    // stops at the first number the kernel refuses.
    let mut cap = 0u32;
    // SAFETY: PR_CAPBSET_READ only reads the calling thread's bounding set.
    while cap < 64 && unsafe { libc::prctl(libc::PR_CAPBSET_READ, (cap + 1) as libc::c_ulong) } >= 0
    {
        cap += 1;
    }
    cap
}

/// Writes `msg` to `fd` and exits with 126, in a forked child.
///
/// # Safety
/// Async-signal-safe: write and _exit only.
unsafe fn fail(fd: libc::c_int, msg: &[u8]) -> ! {
    unsafe {
        libc::write(fd, msg.as_ptr().cast(), msg.len());
        libc::_exit(126)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn arguments_round_trip() {
        let a = AgentArgs {
            uid: 65534,
            gid: 65534,
            max_processes: 1024,
            refused_ports: vec![30650, 2379],
            nft: Some("/usr/sbin/nft".into()),
            forward: Some(8080),
            memory: Some(1 << 30),
            file_size: Some(1 << 20),
            gateway: Some(30600),
        };
        assert_eq!(AgentArgs::parse(&a.to_args()).unwrap(), a);
        let b = AgentArgs {
            refused_ports: vec![],
            nft: None,
            forward: None,
            memory: None,
            file_size: None,
            gateway: None,
            ..a
        };
        assert_eq!(AgentArgs::parse(&b.to_args()).unwrap(), b);
        assert!(AgentArgs::parse(&os(&["x", "0", "1"])).is_err());
        assert!(AgentArgs::parse(&os(&["0", "0", "1", "/nft", "70000"])).is_err());
    }
}
