//! The sandbox with real bubblewrap: datums, their inputs and outputs, and
//! what user code must not be able to do.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::memory::InMemory;
use pach_storage::ContentStore;
use pach_worker::*;

fn sandbox() -> Sandbox {
    Sandbox::with_agent(std::path::Path::new(env!(
        "CARGO_BIN_EXE_pach-sandbox-agent"
    )))
    .expect("bubblewrap is installed (scripts/prereqs.sh)")
}

fn store() -> ContentStore {
    ContentStore::new(
        Arc::new(InMemory::new()),
        object_store::path::Path::from("t"),
    )
}

/// Collects a datum's outputs in a session of its own, stored at once.
async fn collect_all(
    content: &pach_storage::ContentStore,
    dir: &std::path::Path,
    inputs: &std::collections::HashMap<String, pach_storage::FileEntry>,
) -> pach_worker::Result<Vec<pach_storage::FileEntry>> {
    let mut session = content.session();
    let out = collect(&mut session, dir, inputs).await?;
    session.finish().await?;
    Ok(out)
}

async fn read_all(content: &ContentStore, e: &pach_storage::FileEntry) -> Vec<u8> {
    let parts: Vec<_> = content.read_file(e, 0, None).try_collect().await.unwrap();
    parts.concat()
}

fn sh(script: &str) -> Command {
    Command {
        cmd: vec!["sh".into()],
        stdin: vec![script.into()],
        ..Default::default()
    }
}

#[tokio::test]
async fn datum_runs_in_sandbox_with_inputs_and_links() {
    let content = store();
    let mut s = content.session();
    let entry = s
        .put_bytes("/dir/a.txt".into(), None, b"hello input\n")
        .await
        .unwrap();
    s.finish().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mounts = vec![
        InputMount {
            input: "in".into(),
            entry: entry.clone(),
            empty: false,
            lazy: false,
        },
        InputMount {
            input: "hollow".into(),
            entry: entry.clone(),
            empty: true,
            lazy: false,
        },
    ];
    let sandbox = sandbox();
    let mut session = sandbox.start(dir.path(), &Network::Loopback).await.unwrap();
    // The input is read ahead; materialising takes it from there.
    let mut ahead = ReadAhead::default();
    assert!(ahead.want(&content, &entry));
    assert_eq!(ahead.len(), 1);
    materialise(
        &content,
        session.dir(),
        &["in".into(), "hollow".into(), "none".into()],
        &mounts,
        &mut ahead,
    )
    .await
    .unwrap();
    assert!(ahead.is_empty(), "the read-ahead copy was used");
    let mut cmd = sh(concat!(
        "set -e\n",
        "cat /pfs/in/dir/a.txt > /pfs/out/copy.txt\n",
        "mkdir -p /pfs/out/sub && ln -s /pfs/in/dir/a.txt /pfs/out/sub/link.txt\n",
        "ln -s ../hollow/dir/a.txt /pfs/out/hollow-link\n",
        "test -d /pfs/none\n",
        "printf '%s' \"$(wc -c < /pfs/hollow/dir/a.txt)\" > /pfs/out/hollow-size\n",
        "echo \"$GREETING\" > /pfs/out/env.txt\n",
        "pwd > /pfs/out/pwd.txt\n",
        "if touch /pfs/in/x 2>/dev/null; then echo inputs-writable; exit 9; fi\n",
        "echo to-stderr >&2\n",
    ));
    cmd.env = vec![("GREETING".into(), "hi".into())];
    cmd.working_dir = "/usr".into();
    let mut log = Vec::new();
    let outcome = session.run(&cmd, &mut log).await.unwrap();
    let linked: std::collections::HashMap<String, pach_storage::FileEntry> = [
        ("/pfs/in/dir/a.txt".to_string(), entry.clone()),
        ("/pfs/hollow/dir/a.txt".to_string(), entry.clone()),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        outcome,
        Outcome {
            code: Some(0),
            timed_out: false
        },
        "log: {}",
        String::from_utf8_lossy(&log)
    );
    assert!(String::from_utf8_lossy(&log).contains("to-stderr"));
    let out = collect_all(&content, dir.path(), &linked).await.unwrap();
    let paths: Vec<_> = out.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/copy.txt",
            "/env.txt",
            "/hollow-link",
            "/hollow-size",
            "/pwd.txt",
            "/sub/link.txt"
        ]
    );
    assert_eq!(read_all(&content, &out[0]).await, b"hello input\n");
    assert_eq!(read_all(&content, &out[1]).await, b"hi\n");
    // A link to an empty_files placeholder still carries the input's bytes.
    assert_eq!(read_all(&content, &out[2]).await, b"hello input\n");
    assert_eq!(read_all(&content, &out[3]).await, b"0");
    assert_eq!(read_all(&content, &out[4]).await, b"/usr\n");
    // The link yields the input's entry by reference.
    assert_eq!(out[5].hash, entry.hash);
    assert_eq!(out[5].chunks, entry.chunks);
    // Nothing leaked onto the host outside the datum directory.
    assert!(!std::path::Path::new("/pfs").exists());

    // The next datum in the same sandbox starts from an empty /pfs.
    session.reset().await.unwrap();
    materialise(
        &content,
        session.dir(),
        &["other".into()],
        &[],
        &mut ReadAhead::default(),
    )
    .await
    .unwrap();
    let mut log = Vec::new();
    let clean = sh(
        "test ! -e /pfs/in && test -d /pfs/other && test -z \"$(ls -A /pfs/out)\" && test -z \"$GREETING\" && pwd",
    );
    let outcome = session.run(&clean, &mut log).await.unwrap();
    assert_eq!(outcome.code, Some(0), "{}", String::from_utf8_lossy(&log));
    assert_eq!(log, b"/\n");
    assert!(
        collect_all(&content, session.dir(), &Default::default())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn exit_codes_timeouts_and_links_outside_pfs() {
    let content = store();
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox();
    let mut session = sandbox.start(dir.path(), &Network::Loopback).await.unwrap();
    let mut log = Vec::new();
    let failed = session.run(&sh("exit 3"), &mut log).await.unwrap();
    assert_eq!(failed.code, Some(3));
    assert!(session.is_alive());

    let mut slow = sh("echo started; sleep 30");
    slow.timeout = Some(Duration::from_millis(500));
    let started = std::time::Instant::now();
    let t = session.run(&slow, &mut log).await.unwrap();
    assert!(t.timed_out && t.code.is_none());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(String::from_utf8_lossy(&log).contains("started"));
    // A timeout takes the sandbox down with everything in it.
    assert!(!session.is_alive());
    assert!(session.run(&sh("true"), &mut log).await.is_err());

    let mut session = sandbox.start(dir.path(), &Network::Loopback).await.unwrap();
    session.reset().await.unwrap();
    let ok = session
        .run(&sh("ln -s /etc/hostname /pfs/out/h"), &mut log)
        .await
        .unwrap();
    assert_eq!(ok.code, Some(0));
    let err = collect_all(&content, session.dir(), &Default::default())
        .await
        .unwrap_err();
    assert!(matches!(err, WorkerError::LinkOutsidePfs { .. }), "{err}");
}

#[tokio::test]
async fn lazy_inputs_are_fed_only_when_read() {
    let content = store();
    let mut s = content.session();
    let read = s
        .put_bytes("/big/read.bin".into(), None, &vec![7u8; 3 << 20])
        .await
        .unwrap();
    let unread = s
        .put_bytes("/big/unread.bin".into(), None, b"never opened")
        .await
        .unwrap();
    s.finish().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox();
    let mut session = sandbox.start(dir.path(), &Network::Loopback).await.unwrap();
    let mounts: Vec<InputMount> = [read.clone(), unread.clone()]
        .into_iter()
        .map(|entry| InputMount {
            input: "in".into(),
            entry,
            empty: false,
            lazy: true,
        })
        .collect();
    let lazy = materialise(
        &content,
        session.dir(),
        &["in".into()],
        &mounts,
        &mut ReadAhead::default(),
    )
    .await
    .unwrap();
    let mut log = Vec::new();
    let cmd = sh(
        "test -p /pfs/in/big/read.bin && cat /pfs/in/big/read.bin > /pfs/out/copy && ln -s /pfs/in/big/unread.bin /pfs/out/linked",
    );
    let outcome = session.run(&cmd, &mut log).await.unwrap();
    assert_eq!(outcome.code, Some(0), "{}", String::from_utf8_lossy(&log));
    // Nobody opened unread.bin: releasing must not hang.
    tokio::time::timeout(Duration::from_secs(10), lazy.release())
        .await
        .expect("release hung");
    let linked: std::collections::HashMap<String, pach_storage::FileEntry> = mounts
        .iter()
        .map(|m| (format!("/pfs/in{}", m.entry.path), m.entry.clone()))
        .collect();
    let out = collect_all(&content, session.dir(), &linked).await.unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].path, "/copy");
    assert_eq!(out[0].hash, read.hash);
    assert_eq!(out[1].path, "/linked");
    assert_eq!(out[1].hash, unread.hash);
}

/// Runs `script` as one datum in a fresh sandbox; returns its exit code and log.
async fn run_one(sandbox: &Sandbox, dir: &std::path::Path, script: &str) -> (Option<i32>, String) {
    let mut session = sandbox.start(dir, &Network::Loopback).await.unwrap();
    session.reset().await.unwrap();
    let mut log = Vec::new();
    let mut cmd = sh(script);
    cmd.timeout = Some(Duration::from_secs(60));
    let outcome = session.run(&cmd, &mut log).await.unwrap();
    (outcome.code, String::from_utf8_lossy(&log).into_owned())
}

/// A directory anyone may write, under a host directory the sandbox mounts
/// read-only: only the mount keeps user code from writing there.
fn host_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::Builder::new()
        .prefix("pach-worker-test-")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let f = d.path().join("f");
    std::fs::write(&f, b"host\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
    d
}

#[tokio::test]
async fn user_code_is_root_only_in_its_own_namespace() {
    let host = host_dir();
    let d = host.path().display();
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        r#"
echo "uid $(id -u) gid $(id -g)"
grep CapBnd /proc/self/status
mount -o remount,rw,bind {d} && echo remounted
echo escaped > {d}/f && echo wrote
mount -o remount,rw,bind /etc && echo remounted-etc
unshare -Urm sh -c 'mount -o remount,rw,bind {d} && echo escaped > {d}/f && echo wrote-nested'
true
"#
    );
    let (code, log) = run_one(&sandbox(), dir.path(), &script).await;
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("uid 0 gid 0"),
        "user code sees itself as root: {log}"
    );
    assert!(!log.contains("remounted"), "{log}");
    assert!(!log.contains("wrote"), "{log}");
    // No CAP_SYS_ADMIN (bit 21) in its bounding set.
    let bounding = log
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("CapBnd line");
    assert_eq!(bounding & (1 << 21), 0, "{log}");
    assert_eq!(std::fs::read(host.path().join("f")).unwrap(), b"host\n");
}

/// Host processes whose command line holds `marker`.
fn host_processes(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline"))
            && String::from_utf8_lossy(&cmdline).contains(marker)
        {
            found.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

#[tokio::test]
async fn processes_end_with_their_datum() {
    let dir = tempfile::tempdir().unwrap();
    let mut session = sandbox()
        .start(dir.path(), &Network::Loopback)
        .await
        .unwrap();
    let mut log = Vec::new();
    let leaker = sh(
        "sh -c 'sleep 1; echo leak > /pfs/out/leak' pach-leak-marker-1 &\nsetsid sh -c 'sleep 1; echo leak > /pfs/out/leak2' pach-leak-marker-1 &\necho started",
    );
    let outcome = session.run(&leaker, &mut log).await.unwrap();
    assert_eq!(outcome.code, Some(0), "{}", String::from_utf8_lossy(&log));
    assert_eq!(
        host_processes("pach-leak-marker-1"),
        Vec::<String>::new(),
        "background processes outlived their datum"
    );
    session.reset().await.unwrap();
    let next = sh("sleep 2; ls -A /pfs/out; n=$(ls -A /pfs/out | wc -l); echo $n > /pfs/out/count");
    let outcome = session.run(&next, &mut log).await.unwrap();
    assert_eq!(outcome.code, Some(0), "{}", String::from_utf8_lossy(&log));
    let count = std::fs::read_to_string(dir.path().join("pfs/out/count")).unwrap();
    assert_eq!(count.trim(), "0", "{}", String::from_utf8_lossy(&log));
    assert!(!dir.path().join("pfs/out/leak").exists());
}

#[tokio::test]
async fn datums_have_a_process_limit() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox().with_max_processes(64);
    // bash, to wait and count without forking once the limit is reached.
    let script = r#"exec bash -s <<'EOS'
mkfifo /tmp/wait && exec 3<>/tmp/wait
sh -c 'for i in $(seq 200); do sleep 30 & done' pach-limit-marker 2>/dev/null &
read -t 2 -u 3 x
set -- /proc/[0-9]*
echo "alive $#"
EOS
"#;
    let (code, log) = run_one(&sandbox, dir.path(), script).await;
    assert_eq!(code, Some(0), "{log}");
    // The slot's /proc shows the datum's processes (and the agent's few).
    let alive: usize = log
        .lines()
        .find_map(|l| l.strip_prefix("alive "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{log}"));
    assert!((30..=64 + 4).contains(&alive), "{alive} processes: {log}");
    assert_eq!(host_processes("pach-limit-marker"), Vec::<String>::new());
}

#[tokio::test]
async fn the_network_is_loopback_only_by_default() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "if bash -c 'echo hi > /dev/tcp/127.0.0.1/{port}'; then echo connected; fi; ip -o link | cut -d: -f2"
    );
    let (code, log) = run_one(&sandbox(), dir.path(), &script).await;
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains("connected"), "{log}");
    assert_eq!(log.lines().last().map(str::trim), Some("lo"), "{log}");
    assert!(
        listener.accept().is_err(),
        "the host's loopback was reached"
    );
}

#[tokio::test]
async fn the_next_datum_starts_clean_whatever_user_code_did_to_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut session = sandbox()
        .start(dir.path(), &Network::Loopback)
        .await
        .unwrap();
    let mut log = Vec::new();
    let locked =
        sh("mkdir -p /pfs/out/a/b && echo x > /pfs/out/a/b/f && chmod 000 /pfs/out/a/b /pfs/out/a");
    let outcome = session.run(&locked, &mut log).await.unwrap();
    assert_eq!(outcome.code, Some(0), "{}", String::from_utf8_lossy(&log));
    session.reset().await.unwrap();
    let empty = sh("test -z \"$(ls -A /pfs/out)\"");
    let outcome = session.run(&empty, &mut log).await.unwrap();
    assert_eq!(outcome.code, Some(0), "{}", String::from_utf8_lossy(&log));
}
