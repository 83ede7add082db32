//! Spouts through the real binaries: long-running user code in the
//! bubblewrap sandbox writing tar streams to the named pipe `/pfs/out`, each
//! archive one commit; `overwrite` and the marker as Pachyderm 1.9 has them;
//! restarts when user code dies; `stop pipeline` and `start pipeline`.

use std::time::{Duration, Instant};

use pach_e2e::Pachd;

fn spec_file(p: &Pachd, name: &str, text: &str) -> String {
    let path = p.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn commits(p: &Pachd, repo: &str) -> usize {
    p.raw(&["list", "commit", repo]).len()
}

/// Pachyderm 1.9's own spout marker test, as a spec: each archive appends a
/// line to the marker file (one more `x`), which the spout reads back from
/// `/pfs/marker` when it starts; other files are appended to.
const MARKER_SPOUT: &str = r#"{
  "pipeline": {"name": "ticker"},
  "transform": {
    "cmd": ["/bin/sh"],
    "stdin": [
      "cd /tmp",
      "cp /pfs/marker/test ./test 2>/dev/null || true",
      "while [ : ]",
      "do",
      "sleep 0.2",
      "echo $(tail -1 test 2>/dev/null)x >> test",
      "mkdir -p marker",
      "cp test marker/test",
      "echo tick > log",
      "tar -cf /pfs/out ./marker/test* log",
      "done"
    ]
  },
  "spout": {}
}"#;

#[test]
fn spout_commits_each_archive_and_resumes_from_its_marker() {
    let p = Pachd::start();
    let f = spec_file(&p, "ticker.json", MARKER_SPOUT);
    p.ok(&["create", "pipeline", "-f", &f]);
    wait_for("three spout commits", 60, || commits(&p, "ticker") >= 3);
    let info = &p.raw(&["inspect", "pipeline", "ticker"])[0];
    assert!(info["spout"].is_object(), "{info}");
    assert_eq!(info["reason"], serde_json::Value::Null, "{info}");
    assert!(p.ok(&["list", "pipeline"]).contains("ticker"));
    assert!(p.ok(&["inspect", "pipeline", "ticker"]).contains("ticker"));

    // Each commit holds one more tick: `log` is appended to (no overwrite),
    // the marker file replaced.
    let head = &p.raw(&["inspect", "commit", "ticker@master"])[0];
    let n = commits(&p, "ticker");
    let log = p.ok(&["get", "file", "ticker@master:/log"]);
    let marker = p.ok(&["get", "file", "ticker@master:/marker/test"]);
    assert!(log.lines().all(|l| l == "tick"), "{log}");
    assert!(log.lines().count() >= 3, "{log}");
    let lines: Vec<&str> = marker.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(*l, "x".repeat(i + 1), "{marker}");
    }
    assert!(head["finished"].is_string(), "{head}");
    assert!(n >= 3);

    // Stopped: no more commits.
    p.ok(&["stop", "pipeline", "ticker"]);
    std::thread::sleep(Duration::from_secs(1));
    let stopped_at = commits(&p, "ticker");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        commits(&p, "ticker"),
        stopped_at,
        "a stopped spout committed"
    );

    // Started again: it goes on from its marker (never back to one `x`).
    p.ok(&["start", "pipeline", "ticker"]);
    wait_for("commits after the restart", 60, || {
        commits(&p, "ticker") >= stopped_at + 2
    });
    let marker = p.ok(&["get", "file", "ticker@master:/marker/test"]);
    let lines: Vec<&str> = marker.lines().collect();
    assert!(lines.len() > 3, "{marker}");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(
            *l,
            "x".repeat(i + 1),
            "the marker did not carry over: {marker}"
        );
    }

    // Deleted: its user code ends with it.
    p.ok(&["delete", "pipeline", "ticker"]);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !p.ok(&["list", "repo"]).contains("ticker"),
        "the output repo outlived the pipeline"
    );
}

/// User code as Pachyderm's examples/spouts write it (Python's tarfile into
/// the pipe, a message per archive), with `overwrite`; user code that exits
/// is started again.
#[test]
fn python_spout_overwrites_and_is_restarted_when_it_exits() {
    let p = Pachd::start();
    let script = r#"
import io, os, tarfile
def send(name, body):
    with open('/pfs/out', 'wb') as out:
        with tarfile.open(fileobj=out, mode='w|', encoding='utf-8') as tar:
            data = body.encode()
            info = tarfile.TarInfo(name=name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
run = os.urandom(8).hex()
for i in range(3):
    send('latest', 'message %d of run %s\n' % (i, run))
    send('messages/%s-%d' % (run, i), 'body\n')
raise SystemExit(1)
"#;
    let spec = serde_json::json!({
        "pipeline": {"name": "queue"},
        "transform": {"cmd": ["python3", "-c", script]},
        "spout": {"overwrite": true}
    });
    let f = spec_file(&p, "queue.json", &spec.to_string());
    p.ok(&["create", "pipeline", "-f", &f]);
    // Six archives a run; a second run after the exit.
    wait_for("two runs of the spout", 60, || commits(&p, "queue") >= 12);
    let latest = p.ok(&["get", "file", "queue@master:/latest"]);
    assert_eq!(latest.lines().count(), 1, "overwrite appended: {latest}");
    let messages = p.raw(&["list", "file", "queue@master:/messages"]);
    let runs: std::collections::BTreeSet<String> = messages
        .iter()
        .filter_map(|m| m["file"]["path"].as_str())
        .map(|path| {
            path.rsplit('/')
                .next()
                .unwrap_or("")
                .split('-')
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert!(
        runs.len() >= 2,
        "user code was not started again: {messages:?}"
    );
    assert!(p.stderr().contains("spout user code exited with code 1"));
    // The runner's lines about user code are in `logs --master`.
    let master = p.ok(&["logs", "--pipeline", "queue", "--master"]);
    assert!(
        master.contains("spout user code exited with code 1; starting it again in 1s"),
        "{master}"
    );
    assert!(
        !p.ok(&["logs", "--pipeline", "queue"]).contains("exited"),
        "the runner's lines are not user code's"
    );
}

#[test]
fn spouts_are_refused_with_inputs_or_stats() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "in"]);
    for (spec, needle) in [
        (
            r#"{"pipeline": {"name": "s"}, "transform": {"cmd": ["true"]}, "spout": {},
                "input": {"pfs": {"repo": "in", "glob": "/"}}}"#,
            "a spout takes no input",
        ),
        (
            r#"{"pipeline": {"name": "s"}, "transform": {"cmd": ["true"]}, "spout": {}, "enable_stats": true}"#,
            "stats branch",
        ),
        (
            r#"{"pipeline": {"name": "s"}, "transform": {"cmd": ["true"]}, "spout": {"service": {"internal_port": 80}}}"#,
            "spout.service",
        ),
    ] {
        let f = spec_file(&p, "s.json", spec);
        let e = p.fails(&["create", "pipeline", "-f", &f]);
        assert!(e.contains(needle), "{e}");
    }
}

/// A writer that opens and closes the pipe for every message, as fast as it
/// can (as Pachyderm's examples do), loses none: the pipe is never closed
/// under it (in Pachyderm 1.9 such a writer meets EPIPE and must retry).
#[test]
fn fast_writers_lose_no_archive() {
    let p = Pachd::start();
    let script = r#"
import io, tarfile, time
for i in range(500):
    with open('/pfs/out', 'wb') as out:
        with tarfile.open(fileobj=out, mode='w|') as tar:
            info = tarfile.TarInfo(name='m/%04d' % i)
            info.size = 2
            tar.addfile(info, io.BytesIO(b'x\n'))
time.sleep(3600)
"#;
    let spec = serde_json::json!({
        "pipeline": {"name": "fast"},
        "transform": {"cmd": ["python3", "-c", script]},
        "spout": {}
    });
    let f = spec_file(&p, "fast.json", &spec.to_string());
    p.ok(&["create", "pipeline", "-f", &f]);
    wait_for("500 commits", 120, || commits(&p, "fast") >= 500);
    assert_eq!(p.raw(&["list", "file", "fast@master:/m"]).len(), 500);
    assert_eq!(commits(&p, "fast"), 500);
    assert!(!p.stderr().contains("exited with code"), "{}", p.stderr());
}
