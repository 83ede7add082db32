//! How pachd starts: it waits (for a bounded time) for an etcd that is not
//! up yet, reads its address and storage flags before it creates anything,
//! refuses storage that cannot keep the cluster, and confines the file://
//! URLs clients send to the directories the operator allows.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pach_e2e::{Etcd, EtcdPorts, Pachd, bin, reserve_port};

/// What a pachd that was expected to stop by itself did.
struct Exit {
    /// `None` when it was still running at the deadline (and was killed).
    success: Option<bool>,
    stderr: String,
    took: Duration,
}

/// Runs pachd with `args` (plus a fresh `--data-dir DATA` when `data` is
/// given) for at most `deadline`, without the AWS variables of the test's
/// environment plus `env`.
fn run_pachd(args: &[&str], env: &[(String, String)], deadline: Duration) -> Exit {
    let mut cmd = Command::new(bin("pachd"));
    cmd.args(args)
        .env("PACHD_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("PACHD_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn pachd");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let success = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status.success());
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = started.elapsed();
    Exit {
        success,
        stderr: reader.join().unwrap_or_default(),
        took,
    }
}

/// Asserts that pachd refused to start, quickly, saying all of `needles`.
fn refused(exit: &Exit, needles: &[&str]) {
    assert_eq!(
        exit.success,
        Some(false),
        "pachd should have refused to start (ran {:?}):\n{}",
        exit.took,
        exit.stderr
    );
    for needle in needles {
        assert!(
            exit.stderr.contains(needle),
            "{needle:?} missing from:\n{}",
            exit.stderr
        );
    }
}

/// Kubernetes starts pods in any order: a pachd whose etcd comes up 2 s
/// after it waits for it, says so, and then serves.
#[test]
fn pachd_waits_for_an_etcd_that_starts_later() {
    let ports = EtcdPorts::reserve();
    let address = ports.address();
    let metadata = format!("etcd://{address}/late");
    let started = Instant::now();
    let etcd = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        Etcd::start_on(ports)
    });
    let p = Pachd::start_with(&["--metadata", &metadata]);
    assert!(started.elapsed() >= Duration::from_secs(2));
    let _etcd = etcd.join().expect("etcd started");
    p.ok(&["create", "repo", "late"]);
    assert_eq!(p.raw(&["list", "repo"]).len(), 1);
    let log = p.stderr();
    assert!(
        log.contains(&format!("waiting for etcd at http://{address}")) && log.contains("so far"),
        "{log}"
    );
}

/// With nothing ever listening, pachd gives up after the bound it was
/// given, with the endpoint, the bound and the way out.
#[test]
fn pachd_gives_up_on_an_etcd_that_never_comes() {
    let nobody = reserve_port();
    let endpoint = format!("127.0.0.1:{}", nobody.port);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let exit = run_pachd(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--metadata",
            &format!("etcd://{endpoint}"),
            "--metadata-connect-timeout",
            "3s",
            "--address",
            "127.0.0.1:0",
        ],
        &[],
        Duration::from_secs(30),
    );
    refused(
        &exit,
        &[
            &endpoint,
            "did not answer within 3s",
            "--metadata-connect-timeout",
            "waiting for etcd",
        ],
    );
    assert!(
        exit.took >= Duration::from_secs(3) && exit.took < Duration::from_secs(8),
        "{:?}",
        exit.took
    );
}

/// The first line of a pachd that keeps running, and the process.
fn start_serving(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(bin("pachd"))
        .args(args)
        .env("PACHD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn pachd");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("pachd {args:?} did not start"));
    (child, line)
}

/// The README's own `--address :30650`: every interface.
#[test]
fn a_port_alone_listens_on_every_interface() {
    let port = reserve_port();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, line) = start_serving(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--address",
        &format!(":{}", port.port),
    ]);
    assert_eq!(line, format!("pachd listening on 0.0.0.0:{}", port.port));
    let out = Command::new(bin("pachctl"))
        .args(["create", "repo", "everywhere"])
        .env("PACH_CONFIG", dir.path().join("config.json"))
        .env("PACHD_ADDRESS", format!("127.0.0.1:{}", port.port))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// An address that cannot be used is named, with the way out, and nothing
/// (no data directory, no metadata file) is created.
#[test]
fn a_bad_address_is_named_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (address, needle) in [
        ("30650", "has no port"),
        ("localhost:http", "not a port number"),
        ("no-such-host.invalid:30650", "cannot resolve"),
        ("192.0.2.1:30650", "not an address of this host"),
    ] {
        let exit = run_pachd(
            &["--data-dir", data.to_str().unwrap(), "--address", address],
            &[],
            Duration::from_secs(20),
        );
        refused(&exit, &[address, needle, "--address"]);
        assert!(!exit.stderr.contains("another pachd"), "{}", exit.stderr);
        assert!(!data.exists(), "{address}: the data directory was created");
    }

    // In use: said so, with the way out, and still nothing created.
    let port = reserve_port();
    let _taken = std::net::TcpListener::bind(("127.0.0.1", port.port)).unwrap();
    let address = format!("127.0.0.1:{}", port.port);
    let exit = run_pachd(
        &["--data-dir", data.to_str().unwrap(), "--address", &address],
        &[],
        Duration::from_secs(20),
    );
    refused(&exit, &[&address, "is in use", "--address HOST:PORT"]);
    assert!(!data.exists(), "the data directory was created");
}

/// memory:// storage lost every file at restart while the metadata kept
/// naming them: refused, before anything is created.
#[test]
fn memory_storage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let exit = run_pachd(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--storage",
            "memory://",
            "--address",
            "127.0.0.1:0",
        ],
        &[],
        Duration::from_secs(20),
    );
    refused(&exit, &["--storage memory://", "lost when pachd stops"]);
    assert!(!data.exists());
}

/// S3 without credentials fails at start, naming the variables to set, not
/// at the first write with the instance metadata service's error.
#[test]
fn s3_storage_without_credentials_fails_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = [
        "--data-dir",
        data.to_str().unwrap(),
        "--storage",
        "s3://bkt/cluster",
        "--address",
        "127.0.0.1:0",
    ];
    let exit = run_pachd(&args, &[], Duration::from_secs(30));
    refused(
        &exit,
        &[
            "s3://bkt/cluster",
            "--storage",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ],
    );
    assert!(exit.took < Duration::from_secs(15), "{:?}", exit.took);
    let profile = [("AWS_PROFILE".to_string(), "prod".to_string())];
    let exit = run_pachd(&args, &profile, Duration::from_secs(30));
    refused(
        &exit,
        &["AWS_PROFILE=prod is set, but profiles are not read"],
    );
}

/// With credentials, the bucket must answer at start.
#[test]
fn s3_storage_whose_bucket_does_not_answer_fails_at_start() {
    let garage = pach_e2e::Garage::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let exit = run_pachd(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--storage",
            "s3://no-such-bucket/cluster",
            "--address",
            "127.0.0.1:0",
        ],
        &garage.env(),
        Duration::from_secs(60),
    );
    refused(
        &exit,
        &[
            "s3://no-such-bucket/cluster",
            "does not answer",
            "--storage",
        ],
    );
    // The bucket that exists is fine.
    let p = Pachd::start_with_env(&["--storage", "s3://bkt/cluster"], &garage.env());
    p.ok(&["create", "repo", "fine"]);
}

/// A storage directory that cannot be one says so and points at --storage.
#[test]
fn an_unusable_storage_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let below = file.join("objects");
    // Root may write anywhere, but not into /proc.
    for (storage, needle) in [
        (file.display().to_string(), "is a file, not a directory"),
        (below.display().to_string(), "cannot create"),
        (format!("file://{}", below.display()), "cannot create"),
        ("/proc/1".to_string(), "cannot write"),
    ] {
        let data = dir.path().join("data");
        let exit = run_pachd(
            &[
                "--data-dir",
                data.to_str().unwrap(),
                "--storage",
                &storage,
                "--address",
                "127.0.0.1:0",
            ],
            &[],
            Duration::from_secs(20),
        );
        refused(&exit, &[&storage, needle, "check --storage"]);
    }
}

fn bytes_of(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `pachctl extract --url file://<data dir>/meta.redb` once overwrote
/// pachd's metadata store. Clients' file:// URLs are confined to the
/// directories the operator allows, and never reach pachd's own data.
#[test]
fn file_urls_of_clients_are_confined() {
    // Allowed: the temporary directory, which holds the data directory too.
    let allowed = std::env::temp_dir().canonicalize().unwrap();
    let bucket = tempfile::tempdir().unwrap();
    let storage = format!("file://{}", bucket.path().display());
    let allow = ["--allow-file-url", allowed.to_str().unwrap()];
    let mut args = allow.to_vec();
    args.extend(["--storage", &storage]);
    let mut p = Pachd::start_with(&args);
    p.ok(&["create", "repo", "data"]);
    p.ok_stdin(&["put", "file", "data@master:/a"], b"a\n");
    let meta = p.data_dir().join("meta.redb");
    let size = bytes_of(&meta).len();

    // Into the data directory: refused, and the store is untouched.
    let err = p.fails(&["extract", "--url", &format!("file://{}", meta.display())]);
    assert!(
        err.contains("data directory") && err.contains("--allow-file-url"),
        "{err}"
    );
    // Through `..` it is the same place.
    let sneaky = format!("file://{}/../data/meta.redb", p.data_dir().display());
    assert!(
        p.fails(&["extract", "--url", &sneaky])
            .contains("data directory")
    );
    // Nor into the local bucket.
    let chunk = format!("file://{}/chunks/x", bucket.path().display());
    assert!(
        p.fails(&["extract", "--url", &chunk])
            .contains("data directory")
    );
    assert!(!bucket.path().join("chunks/x").exists());
    // The store is pachd's own still (pachd itself writes to it meanwhile:
    // the controller's lease): same size, and it opens again.
    assert_eq!(bytes_of(&meta).len(), size, "meta.redb was rewritten");
    p.stop();
    p.launch();
    assert_eq!(p.ok(&["get", "file", "data@master:/a"]), "a\n");

    // Inside the allowed directory: extract and restore URLs work.
    let out = tempfile::tempdir().unwrap();
    let stream = out.path().join("backup.stream");
    p.ok(&["extract", "--url", &format!("file://{}", stream.display())]);
    assert!(stream.exists());
    let q = Pachd::start_with(&allow);
    q.ok(&["restore", "--url", &format!("file://{}", stream.display())]);
    assert_eq!(q.ok(&["get", "file", "data@master:/a"]), "a\n");
    let spec = out.path().join("copy.json");
    std::fs::write(
        &spec,
        r#"{"pipeline": {"name": "copy"}, "transform": {"cmd": ["sh", "-c", "cp $data /pfs/out/"]},
            "input": {"pfs": {"repo": "data", "glob": "/*"}}}"#,
    )
    .unwrap();
    q.ok(&[
        "create",
        "pipeline",
        "-f",
        &format!("file://{}", spec.display()),
    ]);

    // A pachd that allows one directory refuses the rest, by default all.
    let narrow = tempfile::tempdir().unwrap();
    let r = Pachd::start_with(&["--allow-file-url", narrow.path().to_str().unwrap()]);
    let outside = out.path().join("outside.stream");
    let err = r.fails(&["extract", "--url", &format!("file://{}", outside.display())]);
    assert!(
        err.contains("outside the directories allowed") && err.contains("--allow-file-url"),
        "{err}"
    );
    assert!(!outside.exists());
    // (Spec files are read by pachctl itself, as Pachyderm's pachctl does:
    // they are the user's own files, not pachd's to open.)
    let inside = narrow.path().join("ok.stream");
    r.ok(&["extract", "--url", &format!("file://{}", inside.display())]);
    assert!(inside.exists());
    let none = Pachd::start();
    let err = none.fails(&["restore", "--url", &format!("file://{}", stream.display())]);
    assert!(
        err.contains("no directory is allowed") && err.contains("--allow-file-url"),
        "{err}"
    );
    // Egress too, refused when the pipeline is created.
    none.ok(&["create", "repo", "data"]);
    let egress = out.path().join("egress.json");
    std::fs::write(
        &egress,
        format!(
            r#"{{"pipeline": {{"name": "out"}}, "transform": {{"cmd": ["true"]}},
                "egress": {{"URL": "file://{}/egress"}},
                "input": {{"pfs": {{"repo": "data", "glob": "/*"}}}}}}"#,
            out.path().display()
        ),
    )
    .unwrap();
    let err = none.fails(&["create", "pipeline", "-f", egress.to_str().unwrap()]);
    assert!(
        err.contains("egress.URL") && err.contains("--allow-file-url"),
        "{err}"
    );
}

/// An allowed directory must exist, and lie outside pachd's own data.
#[test]
fn allowed_directories_are_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let missing = dir.path().join("missing");
    let exit = run_pachd(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--allow-file-url",
            missing.to_str().unwrap(),
            "--address",
            "127.0.0.1:0",
        ],
        &[],
        Duration::from_secs(20),
    );
    refused(&exit, &["--allow-file-url", "not an existing directory"]);
    std::fs::create_dir_all(data.join("sub")).unwrap();
    let exit = run_pachd(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--address",
            "127.0.0.1:0",
        ],
        &[(
            "PACHD_ALLOW_FILE_URL".to_string(),
            format!("{}:{}", dir.path().display(), data.join("sub").display()),
        )],
        Duration::from_secs(20),
    );
    refused(&exit, &["--allow-file-url", "inside pachd's own data"]);
}

/// Scripts (and these tests) stop pachd as soon as it says it is ready:
/// SIGTERM right after the ready line is a clean shutdown, never the signal's
/// default action.
#[test]
fn sigterm_right_after_the_ready_line_stops_pachd_cleanly() {
    for _ in 0..20 {
        let mut p = Pachd::start();
        p.stop(); // asserts a successful exit
    }
}
