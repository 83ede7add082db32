//! Cluster mode: metadata in a real etcd, objects in a shared bucket, several
//! pachd processes serving one cluster.

use pach_e2e::{Etcd, Pachd, Worker};

#[test]
fn two_pachd_on_one_etcd_and_bucket_serve_one_cluster() {
    let etcd = Etcd::start();
    let bucket = tempfile::tempdir().unwrap();
    let metadata = format!("etcd://{}/prod", etcd.address);
    let storage = format!("file://{}", bucket.path().display());
    let args = ["--metadata", &metadata, "--storage", &storage];
    let a = Pachd::start_with(&args);
    let b = Pachd::start_with(&args);

    a.ok(&["create", "repo", "shared"]);
    a.ok_stdin(&["put", "file", "shared@master:/hello.txt"], b"from a\n");
    // Read through the other pachd at once.
    assert_eq!(
        b.ok(&["get", "file", "shared@master:/hello.txt"]),
        "from a\n"
    );
    b.ok_stdin(&["put", "file", "shared@master:/second.txt"], b"from b\n");
    let files = a.raw(&["list", "file", "shared@master:/"]);
    assert_eq!(files.len(), 2);
    assert_eq!(
        a.raw(&["list", "commit", "shared"]).len(),
        b.raw(&["list", "commit", "shared"]).len()
    );
    // Concurrent writers through both land in serial commits.
    let writers: Vec<_> = (0..6)
        .map(|i| {
            let p = if i % 2 == 0 { &a } else { &b };
            let mut cmd = p.pachctl_cmd(&[
                "put",
                "file",
                &format!("shared@master:/c{i}"),
                "-f",
                "/etc/hostname",
            ]);
            cmd.spawn().unwrap()
        })
        .collect();
    for mut w in writers {
        assert!(w.wait().unwrap().success());
    }
    assert_eq!(b.raw(&["list", "commit", "shared"]).len(), 8);
    b.ok(&["fsck"]);

    // Another prefix of the same etcd is another cluster.
    let other = Pachd::start_with(&["--metadata", &format!("etcd://{}/staging", etcd.address)]);
    assert!(other.raw(&["list", "repo"]).is_empty());
}

#[test]
fn extract_from_embedded_restores_into_etcd_and_back() {
    let embedded = Pachd::start();
    embedded.ok(&["create", "repo", "data", "--description", "moving"]);
    embedded.ok_stdin(&["put", "file", "data@master:/a"], b"a\n");
    embedded.ok_stdin(&["put", "file", "data@master:/b"], b"b\n");
    let stream = embedded.dir.path().join("full.stream");
    let out = embedded
        .pachctl_cmd(&["extract"])
        .stdout(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(&stream, &out.stdout).unwrap();

    let etcd = Etcd::start();
    let bucket = tempfile::tempdir().unwrap();
    let clustered = Pachd::start_with(&[
        "--metadata",
        &format!("etcd://{}", etcd.address),
        "--storage",
        &format!("file://{}", bucket.path().display()),
    ]);
    let restored = clustered
        .pachctl_cmd(&["restore"])
        .stdin(std::fs::File::open(&stream).unwrap())
        .output()
        .unwrap();
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    clustered.ok(&["verify", "--from", &embedded.address]);
    assert_eq!(clustered.ok(&["get", "file", "data@master^:/a"]), "a\n");

    // And back into a fresh embedded cluster.
    let back_stream = clustered.dir.path().join("back.stream");
    let out = clustered
        .pachctl_cmd(&["extract"])
        .stdout(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(&back_stream, &out.stdout).unwrap();
    let back = Pachd::start();
    let r = back
        .pachctl_cmd(&["restore"])
        .stdin(std::fs::File::open(&back_stream).unwrap())
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    back.ok(&["verify", "--from", &embedded.address]);
}

#[test]
fn unreachable_etcd_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(pach_e2e::bin("pachd"))
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "--metadata",
            "etcd://127.0.0.1:1",
            "--metadata-connect-timeout",
            "1s",
            "--address",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("127.0.0.1:1") && err.contains("--metadata"),
        "{err}"
    );
}

/// The metadata store's conformance suite, the same one the embedded store
/// passes, against the real etcd.
#[test]
fn etcd_passes_the_metadata_conformance_suite() {
    use pach_meta::MetaStore;
    let etcd = Etcd::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let endpoint = vec![format!("http://{}", etcd.address)];
        let store = pach_meta::EtcdStore::connect(&endpoint, "suite/")
            .await
            .unwrap();
        pach_meta::conformance::run_all(&store).await;
        // Keys of another prefix are another cluster's.
        let other = pach_meta::EtcdStore::connect(&endpoint, "other/")
            .await
            .unwrap();
        assert!(other.get("t1/a").await.unwrap().is_none());
        assert!(other.list("", None, 0).await.unwrap().is_empty());
    });
}

/// The pipeline controller is led by one pachd at a time; when the leader
/// dies, another takes over within seconds and jobs go on.
#[test]
fn killing_the_leading_pachd_hands_pipelines_over() {
    let etcd = Etcd::start();
    let bucket = tempfile::tempdir().unwrap();
    let metadata = format!("etcd://{}/ha", etcd.address);
    let storage = format!("file://{}", bucket.path().display());
    let args = ["--metadata", &metadata, "--storage", &storage];
    let mut a = Pachd::start_with(&args);
    a.ok(&["create", "repo", "in"]);
    let spec = a.dir.path().join("copy.json");
    std::fs::write(
        &spec,
        r#"{"pipeline": {"name": "copy"}, "transform": {"cmd": ["sh", "-c", "cp $in /pfs/out/"]},
            "input": {"pfs": {"repo": "in", "glob": "/*"}}}"#,
    )
    .unwrap();
    a.ok(&["create", "pipeline", "-f", spec.to_str().unwrap()]);
    a.ok_stdin(&["put", "file", "in@master:/one"], b"1\n");
    a.ok(&["flush", "commit", "in@master"]); // a leads: it is alone
    assert_eq!(a.ok(&["get", "file", "copy@master:/one"]), "1\n");

    let b = Pachd::start_with(&args);
    a.kill9();
    b.ok_stdin(&["put", "file", "in@master:/two"], b"2\n");
    let started = std::time::Instant::now();
    let flushed = std::process::Command::new("timeout")
        .arg("60")
        .arg(pach_e2e::bin("pachctl"))
        .args(["flush", "commit", "in@master"])
        .env("PACH_CONFIG", b.dir.path().join("config.json"))
        .env("PACHD_ADDRESS", &b.address)
        .status()
        .unwrap();
    assert!(flushed.success(), "no pachd took the pipelines over");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(b.ok(&["get", "file", "copy@master:/two"]), "2\n");
    assert_eq!(b.ok(&["get", "file", "copy@master:/one"]), "1\n");
    let jobs = b.raw(&["list", "job", "-p", "copy"]);
    assert!(jobs.iter().all(|j| j["state"] == "JOB_SUCCESS"), "{jobs:?}");
}

/// Content in a real S3 bucket (Garage), and extract / restore through
/// `s3://` URLs, with the standard AWS environment variables: a cluster moves
/// into etcd + S3 and back to the embedded default.
#[test]
fn s3_bucket_storage_and_s3_extract_urls() {
    let garage = pach_e2e::Garage::start();
    let env = garage.env();
    let a = Pachd::start_with_env(&["--storage", "s3://bkt/cluster-a"], &env);
    a.ok(&["create", "repo", "data"]);
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    a.ok_stdin(&["put", "file", "data@master:/big.bin"], &big);
    a.ok_stdin(&["put", "file", "data@master:/small.txt"], b"small\n");
    assert_eq!(a.ok_bytes(&["get", "file", "data@master:/big.bin"]), big);
    a.ok(&["fsck"]);

    // The migration guide's `extract --url s3://...` / `restore --url s3://...`.
    a.ok(&["extract", "--url", "s3://bkt/backups/full.stream"]);
    let b = Pachd::start_with_env(&[], &env);
    b.ok(&["restore", "--url", "s3://bkt/backups/full.stream"]);
    b.ok(&["verify", "--from", &a.address]);
    assert_eq!(b.ok(&["get", "file", "data@master:/small.txt"]), "small\n");
    // A URL that names nothing is a clear error.
    let err = b.fails(&["restore", "--url", "s3://bkt/backups/missing.stream"]);
    assert!(err.contains("missing.stream"), "{err}");

    // Into a cluster on etcd + S3, and from there back to the embedded default.
    let etcd = Etcd::start();
    let metadata = format!("etcd://{}/moved", etcd.address);
    let c = Pachd::start_with_env(
        &["--metadata", &metadata, "--storage", "s3://bkt/cluster-c"],
        &env,
    );
    c.ok(&["restore", "--url", "s3://bkt/backups/full.stream"]);
    c.ok(&["verify", "--from", &a.address]);
    assert_eq!(c.ok_bytes(&["get", "file", "data@master:/big.bin"]), big);
    c.ok(&["fsck"]);
    c.ok(&["extract", "--url", "s3://bkt/backups/back.stream"]);
    let d = Pachd::start_with_env(&[], &env);
    d.ok(&["restore", "--url", "s3://bkt/backups/back.stream"]);
    d.ok(&["verify", "--from", &c.address]);
    assert_eq!(d.ok_bytes(&["get", "file", "data@master:/big.bin"]), big);
}

/// The tasks of running jobs, as the metadata store holds them.
fn tasks(rt: &tokio::runtime::Runtime, etcd: &Etcd, prefix: &str) -> Vec<serde_json::Value> {
    use pach_meta::MetaStore;
    rt.block_on(async {
        let endpoint = vec![format!("http://{}", etcd.address)];
        let store = pach_meta::EtcdStore::connect(&endpoint, prefix)
            .await
            .unwrap();
        store
            .list("pps/tasks/", None, 0)
            .await
            .unwrap()
            .iter()
            .map(|kv| serde_json::from_slice(&kv.value).unwrap())
            .collect()
    })
}

/// A running etcd, a bucket directory, and the flags of a cluster on them
/// (`--metadata`, `--storage`), shared by its pachd and its workers.
fn worker_cluster(prefix: &str) -> (Etcd, tempfile::TempDir, Vec<String>) {
    let etcd = Etcd::start();
    let bucket = tempfile::tempdir().unwrap();
    let args = vec![
        "--metadata".to_string(),
        format!("etcd://{}/{prefix}", etcd.address),
        "--storage".to_string(),
        format!("file://{}", bucket.path().display()),
    ];
    (etcd, bucket, args)
}

/// Datums run on `pachd worker` processes (here sharing a data directory,
/// as several workers of one host may) that claim them through etcd, at most
/// parallelism_spec at once; a worker killed in the middle of a datum has its
/// task claimed again by another worker, and the job's output is complete.
#[test]
fn workers_claim_datums_and_a_killed_worker_is_retried() {
    let (etcd, _bucket, args) = worker_cluster("workers");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server_args = args.clone();
    server_args.extend(["--worker-slots", "0"]);
    let p = Pachd::start_with(&server_args);
    let rt = tokio::runtime::Runtime::new().unwrap();
    p.ok(&["create", "repo", "in"]);
    for i in 0..6 {
        p.ok_stdin(
            &["put", "file", &format!("in@master:/{i}")],
            format!("{i}\n").as_bytes(),
        );
    }
    let spec = p.dir.path().join("pair.json");
    std::fs::write(
        &spec,
        r#"{"pipeline": {"name": "pair"}, "parallelism_spec": {"constant": 2},
            "transform": {"cmd": ["sh", "-c", "sleep 1; cp $in /pfs/out/"]},
            "input": {"pfs": {"repo": "in", "glob": "/*"}}}"#,
    )
    .unwrap();
    // Workers of one host may share a data directory.
    let shared = tempfile::tempdir().unwrap();
    let workers: Vec<Worker> = (0..3)
        .map(|_| Worker::start_shared(shared.path(), &args, &[], 1))
        .collect();
    p.ok(&["create", "pipeline", "-f", spec.to_str().unwrap()]);
    // Three workers, parallelism 2: never more than two tasks at once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut most = 0;
    loop {
        let claimed = tasks(&rt, &etcd, "workers/")
            .iter()
            .filter(|t| t["state"] == "Claimed")
            .count();
        most = most.max(claimed);
        let jobs = p.raw(&["list", "job", "-p", "pair"]);
        if jobs.first().is_some_and(|j| j["state"] == "JOB_SUCCESS") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{jobs:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(most, 2, "parallelism_spec 2 runs two datums at once");
    for i in 0..6 {
        assert_eq!(
            p.ok(&["get", "file", &format!("pair@master:/{i}")]),
            format!("{i}\n")
        );
    }
    drop(workers);

    // One worker dies in the middle of a datum; another takes its task over.
    p.ok(&["create", "repo", "slow_in"]);
    p.ok_stdin(&["put", "file", "slow_in@master:/a"], b"a\n");
    let spec = p.dir.path().join("slow.json");
    std::fs::write(
        &spec,
        r#"{"pipeline": {"name": "slow"},
            "transform": {"cmd": ["sh", "-c", "sleep 3; cp $slow_in /pfs/out/"]},
            "input": {"pfs": {"repo": "slow_in", "glob": "/*"}}}"#,
    )
    .unwrap();
    let mut first = Worker::start(&args, &[], 1);
    p.ok(&["create", "pipeline", "-f", spec.to_str().unwrap()]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !tasks(&rt, &etcd, "workers/")
        .iter()
        .any(|t| t["state"] == "Claimed" && t["pipeline"] == "slow")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no worker claimed the task"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    first.kill9();
    let _second = Worker::start(&args, &[], 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !tasks(&rt, &etcd, "workers/")
        .iter()
        .any(|t| t["pipeline"] == "slow" && t["claims"] == 2)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the task was not claimed again"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    p.ok(&["flush", "commit", "slow_in@master"]);
    let j = &p.raw(&["list", "job", "-p", "slow"])[0];
    assert_eq!(j["state"], "JOB_SUCCESS", "{j}");
    assert_eq!(j["data_processed"], "1", "{j}");
    assert_eq!(p.ok(&["get", "file", "slow@master:/a"]), "a\n");
    assert!(
        tasks(&rt, &etcd, "workers/").is_empty(),
        "tasks end with their job"
    );
}

/// A worker needs the cluster's shared metadata store.
#[test]
fn a_worker_on_the_embedded_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(pach_e2e::bin("pachd"))
        .args(["worker", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--metadata etcd://"), "{err}");
}

/// The leading pachd dies in the middle of a job whose datums run on a
/// worker: the other pachd takes the job over with the tasks it had
/// published, and the job ends once, complete, with each datum counted once.
#[test]
fn a_job_survives_its_leader_dying_while_workers_run_it() {
    let (_etcd, _bucket, args) = worker_cluster("takeover");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server_args = args.clone();
    server_args.extend(["--worker-slots", "0"]);
    let mut a = Pachd::start_with(&server_args);
    let _worker = Worker::start(&args, &[], 1);
    a.ok(&["create", "repo", "in"]);
    for i in 0..6 {
        a.ok_stdin(
            &["put", "file", &format!("in@master:/{i}")],
            format!("{i}\n").as_bytes(),
        );
    }
    let spec = a.dir.path().join("steady.json");
    std::fs::write(
        &spec,
        r#"{"pipeline": {"name": "steady"},
            "transform": {"cmd": ["sh", "-c", "sleep 1; cp $in /pfs/out/"]},
            "input": {"pfs": {"repo": "in", "glob": "/*"}}}"#,
    )
    .unwrap();
    a.ok(&["create", "pipeline", "-f", spec.to_str().unwrap()]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let processed = |p: &Pachd| {
        p.raw(&["list", "job", "-p", "steady"])
            .first()
            // 64-bit counts are strings in protobuf's JSON.
            .and_then(|j| {
                j["data_processed"]
                    .as_str()
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .unwrap_or(0)
    };
    while processed(&a) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the job did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let b = Pachd::start_with(&server_args);
    a.kill9();
    b.ok(&["flush", "commit", "in@master"]);
    let jobs = b.raw(&["list", "job", "-p", "steady"]);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["state"], "JOB_SUCCESS", "{jobs:?}");
    assert_eq!(jobs[0]["data_processed"], "6", "{jobs:?}");
    assert_eq!(jobs[0]["data_total"], "6", "{jobs:?}");
    for i in 0..6 {
        assert_eq!(
            b.ok(&["get", "file", &format!("steady@master:/{i}")]),
            format!("{i}\n")
        );
    }
}

/// A job runs with the spec it started with. Its pipeline is updated (an
/// input dropped) after the job's datums were handed out but before any
/// worker claimed them; the worker still runs them with the job's spec, and
/// the next job uses the new one.
#[test]
fn a_job_keeps_its_spec_when_its_pipeline_is_updated_while_it_waits() {
    let (_etcd, _bucket, args) = worker_cluster("versions");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server_args = args.clone();
    server_args.extend(["--worker-slots", "0"]);
    let p = Pachd::start_with(&server_args);
    p.ok(&["create", "repo", "a"]);
    p.ok(&["create", "repo", "b"]);
    p.ok_stdin(&["put", "file", "a@master:/x"], b"A\n");
    p.ok_stdin(&["put", "file", "b@master:/y"], b"B\n");
    let spec = |name: &str, text: &str| {
        let f = p.dir.path().join(name);
        std::fs::write(&f, text).unwrap();
        f.to_str().unwrap().to_string()
    };
    let v1 = spec(
        "v1.json",
        r#"{"pipeline": {"name": "mix"},
            "transform": {"cmd": ["sh", "-c", "cat /pfs/a/x /pfs/b/y > /pfs/out/both"]},
            "input": {"cross": [{"pfs": {"repo": "a", "glob": "/"}}, {"pfs": {"repo": "b", "glob": "/"}}]}}"#,
    );
    p.ok(&["create", "pipeline", "-f", &v1]);
    // No worker yet: the job waits with its datums handed out.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let id = loop {
        let jobs = p.raw(&["list", "job", "-p", "mix"]);
        if let Some(j) = jobs.first().filter(|j| j["state"] == "JOB_RUNNING") {
            break j["job"]["id"].as_str().unwrap().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "{jobs:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let v2 = spec(
        "v2.json",
        r#"{"pipeline": {"name": "mix"},
            "transform": {"cmd": ["sh", "-c", "cp /pfs/a/x /pfs/out/a-only"]},
            "input": {"pfs": {"repo": "a", "glob": "/"}}}"#,
    );
    p.ok(&["update", "pipeline", "-f", &v2]);
    let _worker = Worker::start(&args, &[], 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let j = &p.raw(&["inspect", "job", &id])[0];
        if j["state"] == "JOB_SUCCESS" {
            assert_eq!(j["pipeline_version"], "1", "{j}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{j}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(p.ok(&["get", "file", &format!("mix@{id}:/both")]), "A\nB\n");
    p.ok(&["flush", "commit", "a@master"]);
    assert_eq!(p.ok(&["get", "file", "mix@master:/a-only"]), "A\n");
    let jobs = p.raw(&["list", "job", "-p", "mix"]);
    assert_eq!(
        jobs.len(),
        1,
        "only the new version's jobs by default: {jobs:?}"
    );
    assert_eq!(jobs[0]["pipeline_version"], "2");
    assert_eq!(
        p.raw(&["list", "job", "-p", "mix", "--history", "all"])
            .len(),
        2
    );
}

/// User code running on a `pachd worker` reaches the S3 gateway in its
/// sandbox, served by that worker (on the gateway's default port, the
/// worker being given no other).
#[test]
fn user_code_on_a_worker_reads_through_the_gateway() {
    let (_etcd, _bucket, args) = worker_cluster("s3worker");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server_args = args.clone();
    server_args.extend(["--worker-slots", "0"]);
    let p = Pachd::start_with(&server_args);
    let _worker = Worker::start(&args, &[], 1);
    p.ok(&["create", "repo", "in"]);
    p.ok_stdin(&["put", "file", "in@master:/x"], b"through the worker");
    let spec = p.dir.path().join("fetch.json");
    std::fs::write(
        &spec,
        r#"{"pipeline": {"name": "fetch"},
            "transform": {"cmd": ["sh", "-c", "echo \"$S3_ENDPOINT\" > /pfs/out/endpoint; curl -sf \"$S3_ENDPOINT/$in_COMMIT.in/x\" > /pfs/out/x"]},
            "input": {"pfs": {"repo": "in", "glob": "/"}}}"#,
    )
    .unwrap();
    p.ok(&["create", "pipeline", "-f", spec.to_str().unwrap()]);
    p.ok(&["flush", "commit", "in@master"]);
    assert_eq!(
        p.ok(&["get", "file", "fetch@master:/endpoint"]),
        "http://127.0.0.1:30600\n"
    );
    assert_eq!(
        p.ok(&["get", "file", "fetch@master:/x"]),
        "through the worker"
    );
}

/// `restart datum` reaches the `pachd worker` process running the datum:
/// of two datums blocked on two workers, only the one named is killed and
/// run again, in the same job.
#[test]
fn restart_datum_reaches_the_worker_running_it() {
    let (_etcd, _bucket, args) = worker_cluster("restart");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server_args = args.clone();
    server_args.extend(["--worker-slots", "0"]);
    let p = Pachd::start_with(&server_args);
    let marker = std::path::Path::new("/var/tmp").join(format!(
        "pach-e2e-cluster-restart-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    p.ok(&["create", "repo", "in"]);
    p.ok_stdin(&["put", "file", "in@master:/a"], b"a\n");
    p.ok_stdin(&["put", "file", "in@master:/b"], b"b\n");
    let spec = p.dir.path().join("blocks.json");
    std::fs::write(
        &spec,
        format!(
            r#"{{"pipeline": {{"name": "blocks"}}, "parallelism_spec": {{"constant": 2}},
                "transform": {{"cmd": ["sh", "-c", "echo started on $in; while ! test -e {m}; do sleep 0.1; done; cp $in /pfs/out/"]}},
                "datum_tries": 1,
                "input": {{"pfs": {{"repo": "in", "glob": "/*"}}}}}}"#,
            m = marker.display()
        ),
    )
    .unwrap();
    let workers: Vec<Worker> = (0..2).map(|_| Worker::start(&args, &[], 1)).collect();
    p.ok(&["create", "pipeline", "-f", spec.to_str().unwrap()]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let id = loop {
        if let Some(j) = p.raw(&["list", "job", "-p", "blocks"]).first() {
            break j["job"]["id"].as_str().unwrap().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no job started");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    std::thread::sleep(std::time::Duration::from_secs(3));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = p.run(&["restart", "datum", &id, "a"]);
        if out.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    std::fs::write(&marker, b"").unwrap();
    let done = &p.raw(&["wait", "job", &id])[0];
    let _ = std::fs::remove_file(&marker);
    assert_eq!(done["state"], "JOB_SUCCESS", "{done}");
    assert_eq!(done["data_processed"], "2", "{done}");
    let logs = p.ok(&["logs", "--job", &id]);
    assert_eq!(logs.matches("started on /pfs/in/a").count(), 2, "{logs}");
    assert_eq!(logs.matches("started on /pfs/in/b").count(), 1, "{logs}");
    assert_eq!(p.ok(&["get", "file", "blocks@master:/a"]), "a\n");
    assert_eq!(p.ok(&["get", "file", "blocks@master:/b"]), "b\n");
    drop(workers);
}
