//! Starts real `pachd` processes on loopback and runs the real `pachctl`
//! against them, each test with its own data directory, port and config file.
//! The binaries come from the same target directory as the test executable
//! (`cargo build --bins` first; the README's test command does).
//!
//! Servers (pachd, etcd, Garage, Azurite) listen on ports that [`reserve_port`]
//! hands out: below the kernel's ephemeral range (so no outgoing connection
//! and no "port 0" listener takes one), each held by a lock file for as long
//! as the server runs (so parallel tests, in this process or another, never
//! get the same one). A port some other program took anyway is seen when the
//! server says "address already in use", and the server starts again on
//! fresh ports. A server counts as started when it answers as itself (etcd's
//! and Garage's health endpoints, Azurite's blob service, pachd's ready
//! line), not when something accepts connections on its port.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>
    exe.parent()
        .and_then(Path::parent)
        .expect("target profile dir")
        .to_path_buf()
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --bins` first",
        p.display()
    );
    p
}

pub struct Pachd {
    child: Option<Child>,
    pub address: String,
    port: Port,
    pub dir: tempfile::TempDir,
    /// Extra pachd arguments (e.g. `--storage URL`).
    pub args: Vec<String>,
    /// Extra pachd environment (e.g. S3 credentials, or PACHD_LOG).
    pub env: Vec<(String, String)>,
    /// Where pachd's log goes (the test's stderr when `None`).
    pub log: Option<PathBuf>,
    /// The stderr of the running pachd.
    stderr: Stderr,
}

/// A loopback port reserved for one server: no other [`reserve_port`], in
/// any process, hands it out while this value lives.
pub struct Port {
    pub port: u16,
    _lock: std::fs::File,
}

/// The first port of the kernel's ephemeral range: ports from there up are
/// what the kernel gives outgoing connections and port-0 listeners.
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// A free loopback port, held (by a lock file) until the [`Port`] is dropped.
pub fn reserve_port() -> Port {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20_000;
    let high = u32::from(ephemeral_start()).max(LOW + 1_000);
    let span = high - LOW;
    // Processes start at different places, so they rarely try the same ports.
    let seed = std::process::id().wrapping_mul(7919)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
    let locks = std::env::temp_dir().join("pach-e2e-ports");
    std::fs::create_dir_all(&locks).expect("create the port lock directory");
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + seed.wrapping_add(n) % span) as u16;
        let Ok(lock) = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(locks.join(port.to_string()))
        else {
            continue;
        };
        if lock.try_lock().is_err() {
            continue; // another test holds it
        }
        // Free on every interface, so `:PORT` (0.0.0.0) may use it too.
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return Port { port, _lock: lock };
        }
    }
    panic!("no free port between {LOW} and {high}");
}

/// One HTTP/1.1 GET on a loopback port: the whole response, or `None` when
/// nothing answers within a second or two.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    Some(String::from_utf8_lossy(&response).into_owned())
}

/// What a server that exited while starting said about its ports.
fn address_in_use(log: &str) -> bool {
    let log = log.to_ascii_lowercase();
    log.contains("address already in use")
        || log.contains("eaddrinuse")
        || log.contains("is in use")
}

/// How many times a server is started on fresh ports when its own were taken.
const START_ATTEMPTS: usize = 5;

/// The stderr of a child process: forwarded line by line (to a file, or to
/// the test's stderr, captured with the test's output), and kept (its first
/// 64 KiB) to explain a failed start.
#[derive(Clone, Default)]
pub struct Stderr(Arc<Mutex<String>>);

impl Stderr {
    fn follow(child: &mut Child, file: Option<&Path>) -> Stderr {
        let kept = Stderr::default();
        let Some(stderr) = child.stderr.take() else {
            return kept;
        };
        let mut out = file.map(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("open the log file")
        });
        let text = kept.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                match &mut out {
                    Some(f) => {
                        let _ = writeln!(f, "{line}");
                    }
                    None => eprintln!("{line}"),
                }
                if let Ok(mut t) = text.lock()
                    && t.len() < 64 * 1024
                {
                    t.push_str(&line);
                    t.push('\n');
                }
            }
        });
        kept
    }

    /// Everything kept so far (waiting briefly for the forwarding to end).
    pub fn text(&self) -> String {
        std::thread::sleep(Duration::from_millis(100));
        self.0.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

impl Pachd {
    /// A new cluster in a fresh data directory.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A new cluster started with extra pachd arguments.
    pub fn start_with(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    /// A new cluster started with extra pachd arguments and environment.
    pub fn start_with_env(args: &[&str], env: &[(String, String)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = reserve_port();
        let mut p = Pachd {
            child: None,
            address: format!("127.0.0.1:{}", port.port),
            port,
            dir,
            args: args.iter().map(|a| a.to_string()).collect(),
            env: env.to_vec(),
            log: None,
            stderr: Stderr::default(),
        };
        for _ in 1..START_ATTEMPTS {
            match p.try_launch() {
                Ok(()) => return p,
                // A program outside these tests took the port: another one.
                Err(stderr) if address_in_use(&stderr) => {
                    p.port = reserve_port();
                    p.address = format!("127.0.0.1:{}", p.port.port);
                }
                Err(stderr) => panic!("pachd did not start:\n{stderr}"),
            }
        }
        p.launch();
        p
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// (Re)starts pachd on the same data directory and address.
    pub fn launch(&mut self) {
        if let Err(stderr) = self.try_launch() {
            panic!("pachd did not start on {}:\n{stderr}", self.address);
        }
    }

    /// Starts pachd; on failure, returns what it printed on stderr.
    fn try_launch(&mut self) -> Result<(), String> {
        let mut child = Command::new(bin("pachd"))
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--address")
            .arg(&self.address)
            // No S3 gateway unless a test asks for one: the default port
            // is one for all the pachds of a run.
            .args(
                (!self
                    .args
                    .iter()
                    .any(|a| a.starts_with("--s3gateway-address")))
                .then_some(["--s3gateway-address", ""])
                .into_iter()
                .flatten(),
            )
            // Nor a git webhook: its default port is one for all too.
            .args(
                (!self.args.iter().any(|a| a.starts_with("--githook-address")))
                    .then_some(["--githook-address", ""])
                    .into_iter()
                    .flatten(),
            )
            .args(&self.args)
            .env("PACHD_LOG", "warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pachd");
        let stderr = Stderr::follow(&mut child, self.log.as_deref());
        match first_line(&mut child, "pachd") {
            Some(line) if line.contains("listening") => {
                self.child = Some(child);
                self.stderr = stderr;
                Ok(())
            }
            Some(line) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "unexpected first line from pachd: {line}\n{}",
                    stderr.text()
                )
            }
            None => {
                let _ = child.wait();
                Err(stderr.text())
            }
        }
    }

    /// What the running pachd printed on stderr so far (its first 64 KiB).
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// SIGTERM and wait: a clean shutdown.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(status)) = c.try_wait() {
                    assert!(status.success(), "pachd exited with {status} on SIGTERM");
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "pachd did not stop within 20 s of SIGTERM"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The process id of the running pachd (0 when stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// SIGKILL: a crash.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn pachctl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("pachctl"));
        cmd.args(args)
            .env("PACH_CONFIG", self.dir.path().join("config.json"))
            .env("PACHD_ADDRESS", &self.address)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs pachctl and returns its output, whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.pachctl_cmd(args).output().expect("run pachctl")
    }

    /// Runs pachctl, requires success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "pachctl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs pachctl with `input` on stdin; requires success.
    pub fn ok_stdin(&self, args: &[&str], input: &[u8]) -> String {
        use std::io::Write;
        let mut child = self
            .pachctl_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pachctl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
        let out = child.wait_with_output().expect("pachctl output");
        assert!(
            out.status.success(),
            "pachctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs pachctl with the file at `input` on stdin; requires success,
    /// returns stdout.
    pub fn ok_from_file(&self, args: &[&str], input: impl AsRef<std::path::Path>) -> String {
        let input = input.as_ref();
        let out = self
            .pachctl_cmd(args)
            .stdin(std::fs::File::open(input).unwrap_or_else(|e| panic!("open {input:?}: {e}")))
            .output()
            .expect("run pachctl");
        assert!(
            out.status.success(),
            "pachctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs pachctl, requires success, returns stdout as bytes.
    pub fn ok_bytes(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "pachctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Runs pachctl, requires failure, returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "pachctl {args:?} should have failed but printed {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// The JSON objects `--raw` prints, one per line.
    pub fn raw(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut args = args.to_vec();
        args.push("--raw");
        self.ok(&args)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
            .collect()
    }
}

impl Drop for Pachd {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A `pachd worker` process: runs datums of the cluster it shares a
/// metadata store and a bucket with.
pub struct Worker {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
}

impl Worker {
    /// Starts a worker with the cluster's flags (`--metadata`, `--storage`)
    /// and environment, running `slots` datums at once.
    pub fn start(cluster_args: &[&str], env: &[(String, String)], slots: usize) -> Worker {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().to_path_buf();
        Self::start_in(&data_dir, dir, cluster_args, env, slots)
    }

    /// Like [`Worker::start`], in a data directory other workers may share.
    pub fn start_shared(
        data_dir: &Path,
        cluster_args: &[&str],
        env: &[(String, String)],
        slots: usize,
    ) -> Worker {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(data_dir, dir, cluster_args, env, slots)
    }

    fn start_in(
        data_dir: &Path,
        dir: tempfile::TempDir,
        cluster_args: &[&str],
        env: &[(String, String)],
        slots: usize,
    ) -> Worker {
        let mut child = Command::new(bin("pachd"))
            .arg("worker")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--slots")
            .arg(slots.to_string())
            .args(cluster_args)
            .env("PACHD_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pachd worker");
        let stderr = Stderr::follow(&mut child, None);
        let line = first_line(&mut child, "pachd worker")
            .unwrap_or_else(|| panic!("pachd worker did not start:\n{}", stderr.text()));
        assert!(
            line.contains("worker running"),
            "unexpected first line from the worker: {line}"
        );
        Worker {
            child: Some(child),
            dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// SIGKILL: the worker dies mid-datum.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The first line a starting process prints on stdout (its "ready" line),
/// or `None` when it exits without one; the rest of its stdout is drained in
/// the background.
fn first_line(child: &mut Child, what: &str) -> Option<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(line) => Some(line),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => None,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} did not report ready within 30 s")
        }
    }
}

/// Waits (up to `patience`) until `ready` says the server answers, or the
/// server exits; on exit, returns its log.
fn wait_ready(
    child: &mut Child,
    what: &str,
    log: &Path,
    patience: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + patience;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            return Err(format!("{what} exited with {status}:\n{log}"));
        }
        if ready() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} did not answer within {patience:?}:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a server with fresh ports each time the previous ones turned out
/// to be taken.
fn start_retrying<T>(what: &str, mut start: impl FnMut() -> Result<T, String>) -> T {
    let mut last = String::new();
    for _ in 0..START_ATTEMPTS {
        match start() {
            Ok(server) => return server,
            Err(log) if address_in_use(&log) => last = log,
            Err(log) => panic!("{log}"),
        }
    }
    panic!("{what} found its ports taken {START_ATTEMPTS} times:\n{last}")
}

/// A real etcd on loopback ports of its own, stopped (by PID) when dropped.
pub struct Etcd {
    child: Child,
    /// `HOST:PORT` of its client endpoint.
    pub address: String,
    _ports: EtcdPorts,
    _dir: tempfile::TempDir,
}

/// The ports of an etcd, reserved before it starts (a test may point pachd
/// at an etcd that is not there yet).
pub struct EtcdPorts {
    client: Port,
    peer: Port,
    metrics: Port,
}

impl EtcdPorts {
    pub fn reserve() -> EtcdPorts {
        EtcdPorts {
            client: reserve_port(),
            peer: reserve_port(),
            metrics: reserve_port(),
        }
    }

    /// `HOST:PORT` of the client endpoint.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.client.port)
    }
}

impl Etcd {
    pub fn start() -> Etcd {
        start_retrying("etcd", || Etcd::try_start(EtcdPorts::reserve()))
    }

    /// Starts etcd on ports reserved earlier.
    pub fn start_on(ports: EtcdPorts) -> Etcd {
        Etcd::try_start(ports).unwrap_or_else(|log| panic!("{log}"))
    }

    fn try_start(ports: EtcdPorts) -> Result<Etcd, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("http://{}", ports.address());
        let peer_url = format!("http://127.0.0.1:{}", ports.peer.port);
        let log_path = dir.path().join("etcd.log");
        let log = std::fs::File::create(&log_path).expect("etcd log");
        let mut child = Command::new("etcd")
            .args(["--name", "t", "--data-dir"])
            .arg(dir.path().join("etcd"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("t={peer_url}")])
            .args([
                "--listen-metrics-urls",
                &format!("http://127.0.0.1:{}", ports.metrics.port),
            ])
            .args(["--max-txn-ops", "1024"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd is not installed: scripts/prereqs.sh installs it");
        // Healthy on its client URL: it has a leader and serves requests
        // (an open port alone may still reset the first connections).
        let client = ports.client.port;
        wait_ready(
            &mut child,
            "etcd",
            &log_path,
            Duration::from_secs(20),
            || http_get(client, "/health").is_some_and(|r| r.contains(r#""health":"true""#)),
        )?;
        Ok(Etcd {
            child,
            address: ports.address(),
            _ports: ports,
            _dir: dir,
        })
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real S3 server (Garage) on loopback with one bucket, `bkt`, stopped (by
/// PID) when dropped. `env()` gives the standard AWS variables that reach it.
pub struct Garage {
    child: Child,
    pub endpoint: String,
    key_id: String,
    secret: String,
    _ports: [Port; 3],
    _dir: tempfile::TempDir,
}

impl Garage {
    pub fn start() -> Garage {
        start_retrying("garage", Garage::try_start)
    }

    fn try_start() -> Result<Garage, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports = [reserve_port(), reserve_port(), reserve_port()];
        let (rpc, s3, admin) = (ports[0].port, ports[1].port, ports[2].port);
        let hex = |n: usize, seed: u64| -> String {
            (0..n)
                .map(|i| {
                    format!(
                        "{:x}",
                        (seed.wrapping_mul(31).wrapping_add(i as u64 * 7919)) % 16
                    )
                })
                .collect()
        };
        let key_id = format!("GK{}", hex(24, 3));
        let secret = hex(64, 5);
        let config = format!(
            r#"metadata_dir = "{d}/meta"
data_dir = "{d}/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{rpc_secret}"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "{token}"
"#,
            d = dir.path().display(),
            rpc_secret = hex(64, 11),
            token = hex(32, 13),
        );
        let config_path = dir.path().join("garage.toml");
        std::fs::write(&config_path, config).expect("write garage.toml");
        let garage = std::env::var("HOME")
            .map(|h| PathBuf::from(h).join(".cargo/bin/garage"))
            .ok()
            .filter(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("garage"));
        let log_path = dir.path().join("garage.log");
        let log = std::fs::File::create(&log_path).expect("garage log");
        let mut child = Command::new(garage)
            .arg("-c")
            .arg(&config_path)
            .args(["server", "--single-node", "--default-bucket"])
            .env("GARAGE_DEFAULT_ACCESS_KEY", &key_id)
            .env("GARAGE_DEFAULT_SECRET_KEY", &secret)
            .env("GARAGE_DEFAULT_BUCKET", "bkt")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("garage is not installed: scripts/test-tools.sh installs it");
        // Its admin API says when the node is operational; its S3 API must
        // answer as an S3 server.
        wait_ready(
            &mut child,
            "garage",
            &log_path,
            Duration::from_secs(30),
            || {
                http_get(admin, "/health").is_some_and(|r| r.starts_with("HTTP/1.1 200"))
                    && http_get(s3, "/bkt").is_some_and(|r| r.contains("<Error>"))
            },
        )?;
        Ok(Garage {
            child,
            endpoint: format!("http://127.0.0.1:{s3}"),
            key_id,
            secret,
            _ports: ports,
            _dir: dir,
        })
    }

    /// The AWS environment variables that point S3 clients at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", self.key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.as_str()),
            ("AWS_REGION", "garage"),
            ("AWS_ENDPOINT", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Azurite's well-known development account and key (published by Microsoft;
/// they open nothing but a local emulator).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Signs one Blob service request with the account's Shared Key and prints the
/// response's status line then its body. Azure containers are created out of
/// band (object_store has no call for it and there is no `az` here); node is
/// there because Azurite runs on it, and its `crypto` module does the HMAC.
/// Arguments: PORT ACCOUNT KEY METHOD PATH [QUERY].
const AZURE_REQUEST_JS: &str = r#"
const crypto = require('crypto'), http = require('http');
const [port, account, key, method, path, query] = process.argv.slice(1);
const params = [...new URLSearchParams(query || '')].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
const date = new Date().toUTCString(), version = '2021-08-06';
const resource = `/${account}${path}` + params.map(([k, v]) => `\n${k.toLowerCase()}:${v}`).join('');
const toSign = [method, '', '', '', '', '', '', '', '', '', '', '',
  `x-ms-date:${date}\nx-ms-version:${version}`, resource].join('\n');
const sig = crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(toSign, 'utf8').digest('base64');
const req = http.request({
  host: '127.0.0.1', port, method,
  path: path + (params.length ? '?' + new URLSearchParams(params).toString() : ''),
  headers: { 'x-ms-date': date, 'x-ms-version': version,
    authorization: `SharedKey ${account}:${sig}`, 'content-length': 0 },
}, (res) => {
  const body = [];
  res.on('data', (d) => body.push(d));
  res.on('end', () => process.stdout.write(`${res.statusCode}\n${Buffer.concat(body)}`));
});
req.on('error', (e) => { console.error(e.message); process.exit(1); });
req.end();
"#;

/// A real Azure Blob service (Azurite, Microsoft's emulator) on a loopback
/// port of its own, with its data in a temporary directory, stopped (by PID)
/// when dropped. `env()` gives the `AZURE_*` variables that point object_store
/// (and so pachd's `az://container/prefix` URLs) at it.
pub struct Azurite {
    child: Child,
    pub port: u16,
    _port: Port,
    _dir: tempfile::TempDir,
}

impl Azurite {
    /// Starts Azurite; fails (never skips) when scripts/test-tools.sh has not
    /// installed it.
    pub fn start() -> Azurite {
        start_retrying("azurite", Azurite::try_start)
    }

    fn try_start() -> Result<Azurite, String> {
        let program = azurite_program();
        let dir = tempfile::tempdir().expect("tempdir");
        let reserved = reserve_port();
        let port = reserved.port;
        let log_path = dir.path().join("azurite.log");
        let log = std::fs::File::create(&log_path).expect("azurite log");
        let mut child = Command::new(&program)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(dir.path().join("data"))
            // Azurite is pinned (node 20) and refuses service versions newer
            // than it knows; object_store raises its version for some calls
            // and with its own upgrades. Not --loose: unsupported headers
            // should fail here as they would in Azure.
            .args(["--skipApiVersionCheck", "--disableTelemetry"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("azurite log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        // Its blob service answers, as itself.
        wait_ready(
            &mut child,
            "azurite",
            &log_path,
            Duration::from_secs(30),
            || {
                http_get(port, &format!("/{AZURITE_ACCOUNT}?comp=list"))
                    .is_some_and(|r| r.to_ascii_lowercase().contains("azurite"))
            },
        )?;
        Ok(Azurite {
            child,
            port,
            _port: reserved,
            _dir: dir,
        })
    }

    /// The environment that reaches this Azurite: object_store's emulator
    /// mode, its blob endpoint, and the development account spelled out.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AZURE_STORAGE_USE_EMULATOR", "true".to_string()),
            (
                "AZURITE_BLOB_STORAGE_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT.to_string()),
            ("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Creates a container (object_store writes into existing ones only).
    pub fn create_container(&self, container: &str) {
        let (status, body) = self.request("PUT", container, "restype=container");
        assert_eq!(status, 201, "creating container {container}: {body}");
    }

    /// Every blob of `container` whose name starts with `prefix`, with its
    /// size, as the Blob service's own listing reports them.
    pub fn list_blobs(&self, container: &str, prefix: &str) -> Vec<(String, u64)> {
        let query = format!("restype=container&comp=list&prefix={prefix}");
        let (status, body) = self.request("GET", container, &query);
        assert_eq!(status, 200, "listing container {container}: {body}");
        // One page holds 5000 blobs; more would need the NextMarker loop.
        assert!(
            xml_values(&body, "NextMarker").iter().all(|m| m.is_empty()),
            "listing of {container} has more than one page"
        );
        let names = xml_values(&body, "Name");
        let sizes = xml_values(&body, "Content-Length");
        assert_eq!(names.len(), sizes.len(), "unexpected listing: {body}");
        names
            .into_iter()
            .zip(sizes)
            .map(|(name, size)| {
                let size = size.parse().expect("blob size");
                (name, size)
            })
            .collect()
    }

    /// One Shared Key signed request on a container; returns status and body.
    fn request(&self, method: &str, container: &str, query: &str) -> (u16, String) {
        let out = Command::new("node")
            .arg("-e")
            .arg(AZURE_REQUEST_JS)
            .arg(self.port.to_string())
            .args([AZURITE_ACCOUNT, AZURITE_KEY, method])
            .arg(format!("/{AZURITE_ACCOUNT}/{container}"))
            .arg(query)
            .output()
            .expect("node (which Azurite runs on) is not on PATH");
        assert!(
            out.status.success(),
            "{method} /{container}?{query} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (status, body) = text.split_once('\n').unwrap_or((&text, ""));
        let status = status.parse().expect("HTTP status");
        (status, body.to_string())
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `azurite-blob` as scripts/test-tools.sh installs it, or on PATH.
fn azurite_program() -> PathBuf {
    let installed = std::env::var("HOME")
        .map(|h| {
            PathBuf::from(h).join(".cache/pach-test-tools/azurite/node_modules/.bin/azurite-blob")
        })
        .ok()
        .filter(|p| p.exists());
    let on_path = || {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("azurite-blob"))
                .find(|p| p.exists())
        })
    };
    installed.or_else(on_path).unwrap_or_else(|| {
        panic!(
            "Azurite is not installed: run scripts/test-tools.sh \
             (it installs azurite into ~/.cache/pach-test-tools/azurite with npm)"
        )
    })
}

/// The text of every `<tag>…</tag>` in `xml`, in order (flat listings only).
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut values = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        rest = &rest[start + open.len()..];
        let end = rest.find(&close).unwrap_or(rest.len());
        values.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    values
}

/// Checks a message printed with `--raw`: every key of `object` is a field
/// name of Pachyderm 1.9's message (`names`), and `required` are present.
pub fn check_field_names(
    what: &str,
    object: &serde_json::Value,
    names: &[&str],
    required: &[&str],
) {
    let map = object
        .as_object()
        .unwrap_or_else(|| panic!("{what}: {object}"));
    for key in map.keys() {
        assert!(
            names.contains(&key.as_str()),
            "{what}: '{key}' is not a field of Pachyderm 1.9's message: {object}"
        );
    }
    for key in required {
        assert!(map.contains_key(*key), "{what}: '{key}' missing: {object}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ports handed out at once, from several threads, are distinct, free
    /// and outside the range the kernel hands out by itself (the old way,
    /// binding port 0 and releasing it, gave ephemeral ports that the next
    /// caller or an outgoing connection could get again).
    #[test]
    fn reserved_ports_are_distinct_and_not_ephemeral() {
        let threads: Vec<_> = (0..8)
            .map(|_| std::thread::spawn(|| (0..25).map(|_| reserve_port()).collect::<Vec<_>>()))
            .collect();
        let held: Vec<Port> = threads
            .into_iter()
            .flat_map(|t| t.join().expect("reserving thread"))
            .collect();
        let mut ports: Vec<u16> = held.iter().map(|p| p.port).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), held.len(), "a port was handed out twice");
        assert!(ports.iter().all(|&p| p < ephemeral_start()), "{ports:?}");
        // Another process's reservation sees these as taken: the lock is
        // held on the file, not in this process's memory.
        let lock = std::env::temp_dir()
            .join("pach-e2e-ports")
            .join(ports[0].to_string());
        let other = std::fs::OpenOptions::new().write(true).open(lock).unwrap();
        assert!(other.try_lock().is_err());
        drop(held);
        assert!(other.try_lock().is_ok());
    }
}
