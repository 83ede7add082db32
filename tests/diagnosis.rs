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

/// A stand-in for an analysis tool on PATH: records its arguments and
/// whether the files it was given exist and are not empty.
fn recording_tool(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let record = dir.join(format!("{name}.args"));
    let script = dir.join(name);
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" > {rec}\nfor f in \"$@\"; do case \"$f\" in tool|pprof) ;; *) test -s \"$f\" || exit 3;; esac; done\n",
            rec = record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    record
}

#[test]
fn pprof_fetches_profile_and_binary_and_opens_them() {
    let p = Pachd::start();
    let tools = p.dir.path().join("tools");
    std::fs::create_dir(&tools).unwrap();
    let (profile, binary) = (p.dir.path().join("cpu.pb"), p.dir.path().join("pachd.bin"));
    let args = [
        "debug",
        "pprof",
        "cpu",
        "-d",
        "1s",
        "--profile-file",
        profile.to_str().unwrap(),
        "--binary-file",
        binary.to_str().unwrap(),
    ];
    let run = |path: &std::path::Path| p.pachctl_cmd(&args).env("PATH", path).output().unwrap();

    // Neither Go nor pprof: the files are written, and the error says how
    // to open them.
    let out = run(&tools);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("neither `go` nor `pprof` is on PATH")
            && err.contains(&format!("pprof {} {}", binary.display(), profile.display())),
        "{err}"
    );
    let running = std::fs::read(pach_e2e::bin("pachd")).unwrap();
    assert!(
        std::fs::read(&binary).unwrap() == running,
        "not pachd's binary"
    );
    let text = String::from_utf8_lossy(&std::fs::read(&profile).unwrap()).into_owned();
    assert!(
        text.contains("cpu") && text.contains("nanoseconds"),
        "not a CPU profile"
    );

    // A standalone pprof gets the binary, then the profile; Go's own is
    // preferred when Go is there, as in 1.9.
    std::fs::remove_file(&profile).unwrap();
    let files = format!("{} {}", binary.display(), profile.display());
    for (tool, expected) in [
        ("pprof", files.clone()),
        ("go", format!("tool pprof {files}")),
    ] {
        let record = recording_tool(&tools, tool);
        let out = run(&tools);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read_to_string(&record).unwrap().trim(), expected);
    }

    // The 1.8 name, and a profile that does not exist.
    let err = p.fails(&["debug-pprof", "heap"]);
    assert!(err.contains("profile 'heap' is not available"), "{err}");
}
