//! What pachd tells about itself through pachctl: `debug dump` (state and
//! recent logs, never secrets), `debug profile cpu` (pprof's format),
//! `debug binary`, `inspect cluster` and `version` with its `--timeout`.

use pach_e2e::Pachd;

#[test]
fn dump_shows_state_and_recent_logs_but_no_secrets() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "images"]);
    let spec = p.dir.path().join("spec.json");
    std::fs::write(
        &spec,
        r#"{"pipeline": {"name": "edges"},
            "transform": {"cmd": ["true"], "env": {"API_TOKEN": "s3cr3t-value"}},
            "input": {"pfs": {"repo": "images", "glob": "/*"}}}"#,
    )
    .unwrap();
    p.ok(&["create", "pipeline", "-f", spec.to_str().unwrap()]);
    let id = p.ok(&["inspect", "cluster"]);
    let id = id.trim();
    assert_eq!(id.len(), 32, "a cluster id: {id:?}");
    let dump = p.ok(&["debug", "dump"]);
    for expected in [
        "== pachd 1.9.12",
        &format!("id: {id}"),
        "images",
        "edges",
        "== recent logs",
        "pachd listening",
    ] {
        assert!(
            dump.contains(expected),
            "{expected:?} missing from:\n{dump}"
        );
    }
    assert!(
        !dump.contains("s3cr3t-value"),
        "the dump shows a pipeline's secret:\n{dump}"
    );
    // The id is the cluster's, not the process's.
    let mut p = p;
    p.stop();
    p.launch();
    assert_eq!(p.ok(&["inspect", "cluster"]).trim(), id);
}

#[test]
fn cpu_profile_and_binary_are_written_to_files() {
    let p = Pachd::start();
    let profile = p.dir.path().join("cpu.pb");
    let started = std::time::Instant::now();
    p.ok(&[
        "debug",
        "profile",
        "cpu",
        "--duration",
        "1s",
        "-o",
        profile.to_str().unwrap(),
    ]);
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    let bytes = std::fs::read(&profile).unwrap();
    // A profile.proto message names its sample types in its string table.
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("cpu") && text.contains("nanoseconds"),
        "not a CPU profile: {bytes:?}"
    );
    let err = p.fails(&["debug", "profile", "heap"]);
    assert!(err.contains("profile 'heap' is not available"), "{err}");
    let err = p.fails(&["debug", "profile", "cpu", "--duration", "soon"]);
    assert!(err.contains("--duration 'soon'"), "{err}");

    let binary = p.dir.path().join("pachd.bin");
    p.ok(&["debug", "binary", "-o", binary.to_str().unwrap()]);
    let running = std::fs::read(pach_e2e::bin("pachd")).unwrap();
    assert!(
        std::fs::read(&binary).unwrap() == running,
        "debug binary is not the running pachd"
    );
    // To stdout too, as Pachyderm's pachctl writes it.
    assert!(p.ok_bytes(&["debug", "binary"]) == running);
}

#[test]
fn version_prints_both_and_honours_its_timeout() {
    let p = Pachd::start();
    let out = p.ok(&["version", "--timeout", "5s"]);
    assert!(out.contains("pachctl") && out.contains("pachd"), "{out}");
    let out = p.ok(&["version", "--timeout", "0s"]);
    assert!(out.contains("pachd"), "{out}");
    let err = p.fails(&["version", "--timeout", "soon"]);
    assert!(err.contains("--timeout 'soon'"), "{err}");

    // A listener that accepts and never answers: the timeout given holds.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap().to_string();
    let started = std::time::Instant::now();
    let out = p
        .pachctl_cmd(&["version", "--timeout", "1s"])
        .env("PACHD_ADDRESS", &address)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did not answer within 1s"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let out = p
        .pachctl_cmd(&["version", "--client-only"])
        .env("PACHD_ADDRESS", &address)
        .output()
        .unwrap();
    assert!(out.status.success());
    drop(silent);
}
