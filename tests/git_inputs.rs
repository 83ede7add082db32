//! Git inputs through the real binaries: a local git repository served by a
//! real `git daemon` on loopback (or read through a file:// URL), pushes
//! arriving by polling and by the webhook, and the refusals of bad URLs and
//! branches.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pach_e2e::{Pachd, Port, reserve_port};
use serde_json::Value;

/// Runs git in `dir`, panicking with what it said when it fails.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A working repository whose pushes go to `<root>/served.git`, a bare
/// repository that `git daemon` serves.
struct Source {
    root: tempfile::TempDir,
}

impl Source {
    fn new() -> Source {
        let root = tempfile::tempdir().unwrap();
        let work = root.path().join("work");
        std::fs::create_dir(&work).unwrap();
        git(&work, &["init", "--quiet", "--initial-branch=master"]);
        std::fs::create_dir(work.join("dir")).unwrap();
        std::fs::write(work.join("dir/a.txt"), "a\n").unwrap();
        let s = Source { root };
        s.commit("hello.txt", "one\n");
        git(
            s.root.path(),
            &["clone", "--quiet", "--bare", "work", "served.git"],
        );
        s
    }

    fn work(&self) -> PathBuf {
        self.root.path().join("work")
    }

    /// Commits `file` with `text` in the working repository; its sha.
    fn commit(&self, file: &str, text: &str) -> String {
        std::fs::write(self.work().join(file), text).unwrap();
        git(&self.work(), &["add", "-A"]);
        git(&self.work(), &["commit", "--quiet", "-m", file]);
        git(&self.work(), &["rev-parse", "HEAD"])
    }

    /// Commits and pushes to the served repository; the new head's sha.
    fn push(&self, file: &str, text: &str) -> String {
        let sha = self.commit(file, text);
        git(
            &self.work(),
            &["push", "--quiet", "../served.git", "master"],
        );
        sha
    }

    fn file_url(&self) -> String {
        format!("file://{}/served.git", self.root.path().display())
    }
}

/// `git daemon` serving a directory on a reserved loopback port.
struct Daemon {
    child: Child,
    port: Port,
}

impl Daemon {
    fn start(base: &Path) -> Daemon {
        let port = reserve_port();
        let child = Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--port={}", port.port))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start git daemon");
        let d = Daemon { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !Command::new("git")
            .args(["ls-remote", &d.url()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
        {
            assert!(Instant::now() < deadline, "git daemon did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    fn url(&self) -> String {
        format!("git://127.0.0.1:{}/served.git", self.port.port)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spec(p: &Pachd, name: &str, git_input: &str) -> String {
    let text = format!(
        r#"{{"pipeline": {{"name": "{name}"}},
            "transform": {{"cmd": ["sh", "-c",
              "cp /pfs/served/hello.txt /pfs/out/hello; cd /pfs/served && find . | sort > /pfs/out/tree"]}},
            "input": {{"git": {git_input}}}}}"#
    );
    let path = p.dir.path().join(format!("{name}.json"));
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn successful_jobs(p: &Pachd, pipeline: &str) -> usize {
    p.raw(&["list", "job", "-p", pipeline])
        .iter()
        .filter(|j| j["state"] == "JOB_SUCCESS")
        .count()
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn repos(p: &Pachd) -> Vec<String> {
    p.raw(&["list", "repo"])
        .iter()
        .map(|r| r["repo"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// One HTTP/1.1 POST on loopback: (status code, body).
fn post(port: u16, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the webhook");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let code = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (code, body.to_string())
}

/// GitHub's push event, with the fields git inputs read.
fn push_event(url: &str, branch: &str) -> String {
    serde_json::json!({
        "ref": format!("refs/heads/{branch}"),
        "after": "0000000000000000000000000000000000000000",
        "repository": {"name": "served", "clone_url": url, "private": false}
    })
    .to_string()
}

#[test]
fn polling_turns_each_push_into_a_job_on_the_checked_out_tree() {
    let src = Source::new();
    let daemon = Daemon::start(src.root.path());
    let mut p = Pachd::start_with(&["--git-poll-interval", "1s"]);
    // No name: 1.9's, from the URL ("served"); no branch: master.
    let f = spec(&p, "tree", &format!(r#"{{"URL": "{}"}}"#, daemon.url()));
    p.ok(&["create", "pipeline", "-f", &f]);
    assert!(repos(&p).contains(&"served".to_string()));
    wait_for("the first job", 60, || successful_jobs(&p, "tree") == 1);
    assert_eq!(p.ok(&["get", "file", "tree@master:/hello"]), "one\n");
    // The checked-out tree, as 1.9's clone but without .git.
    assert_eq!(
        p.ok(&["get", "file", "tree@master:/tree"]),
        ".\n./dir\n./dir/a.txt\n./hello.txt\n"
    );
    let first = git(&src.work(), &["rev-parse", "HEAD"]);
    let commit = p.raw(&["inspect", "commit", "served@master"]);
    let description = commit[0]["description"].as_str().unwrap_or_default();
    assert!(description.contains(&first), "{commit:?}");

    // A push becomes a second input commit and a second job.
    // Only what changed is written: a file changed, one deleted, one added.
    std::fs::remove_file(src.work().join("dir/a.txt")).unwrap();
    std::fs::write(src.work().join("new.txt"), "new\n").unwrap();
    let pushed = Instant::now();
    let second = src.push("hello.txt", "two\n");
    wait_for("the second job", 60, || successful_jobs(&p, "tree") == 2);
    eprintln!(
        "push to finished job, polling every 1s: {:?}",
        pushed.elapsed()
    );
    assert_eq!(p.ok(&["get", "file", "tree@master:/hello"]), "two\n");
    assert_eq!(
        p.ok(&["get", "file", "tree@master:/tree"]),
        ".\n./hello.txt\n./new.txt\n"
    );
    let commits = p.raw(&["list", "commit", "served@master"]);
    assert_eq!(commits.len(), 2, "{commits:?}");
    assert!(
        commits[0]["description"]
            .as_str()
            .unwrap_or_default()
            .contains(&second)
    );
    // Polls of an unchanged branch commit nothing.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(p.raw(&["list", "commit", "served@master"]).len(), 2);
    assert_eq!(successful_jobs(&p, "tree"), 2);

    // Without a webhook, inspect says where 1.9 did: pending.
    let info = p.ok(&["inspect", "pipeline", "tree"]);
    assert!(info.contains("Githook URL: pending"), "{info}");
    // The input on the wire, as 1.9 sends it.
    let raw = p.raw(&["inspect", "pipeline", "tree"]);
    let g = &raw[0]["input"]["git"];
    assert_eq!(g["name"], "served");
    assert_eq!(g["branch"], "master");
    assert_eq!(g["url"], Value::String(daemon.url()));

    // As in 1.9, the input's repo outlives its pipeline; a pipeline made
    // again over it commits no second copy of the same head.
    p.ok(&["delete", "pipeline", "tree"]);
    assert!(repos(&p).contains(&"served".to_string()));
    p.ok(&["create", "pipeline", "-f", &f]);
    wait_for("the new pipeline's job", 60, || {
        successful_jobs(&p, "tree") == 1
    });
    assert_eq!(p.ok(&["get", "file", "tree@master:/hello"]), "two\n");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(p.raw(&["list", "commit", "served@master"]).len(), 2);

    // A push while pachd is down arrives after it starts again (its
    // scratch, the bare repository with it, is gone: the whole tree).
    p.stop();
    std::fs::remove_file(src.work().join("new.txt")).unwrap();
    let third = src.push("hello.txt", "three\n");
    p.launch();
    wait_for("the job after the restart", 60, || {
        successful_jobs(&p, "tree") == 2
    });
    assert_eq!(p.ok(&["get", "file", "tree@master:/hello"]), "three\n");
    assert_eq!(
        p.ok(&["get", "file", "tree@master:/tree"]),
        ".\n./hello.txt\n"
    );
    let commits = p.raw(&["list", "commit", "served@master"]);
    assert_eq!(commits.len(), 3, "{commits:?}");
    assert!(
        commits[0]["description"]
            .as_str()
            .unwrap_or_default()
            .contains(&third)
    );
}

#[test]
fn the_webhook_fetches_at_once() {
    let src = Source::new();
    let daemon = Daemon::start(src.root.path());
    let hook = reserve_port();
    let address = format!("127.0.0.1:{}", hook.port);
    // No polling: only the webhook fetches.
    let p = Pachd::start_with(&["--githook-address", &address, "--git-poll-interval", "0s"]);
    let f = spec(
        &p,
        "hooked",
        &format!(
            r#"{{"url": "{}", "name": "served", "branch": "master"}}"#,
            daemon.url()
        ),
    );
    p.ok(&["create", "pipeline", "-f", &f]);
    let hook_url = format!("http://{address}/v1/handle/push");
    let info = p.ok(&["inspect", "pipeline", "hooked"]);
    assert!(info.contains(&format!("Githook URL: {hook_url}")), "{info}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(p.raw(&["list", "commit", "served@master"]).is_empty());

    // GitHub's first delivery is a ping.
    let (code, body) = post(
        hook.port,
        "/v1/handle/push",
        &[("X-GitHub-Event", "ping")],
        "{}",
    );
    assert_eq!((code, body.as_str()), (200, "pong\n"));

    let sha = git(&src.work(), &["rev-parse", "HEAD"]);
    let start = Instant::now();
    let (code, body) = post(
        hook.port,
        "/v1/handle/push",
        &[("X-GitHub-Event", "push")],
        &push_event(&daemon.url(), "master"),
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains(&format!("served@master: committed {sha}")),
        "{body}"
    );
    eprintln!("webhook to input commit: {:?}", start.elapsed());
    wait_for("the first job", 60, || successful_jobs(&p, "hooked") == 1);
    assert_eq!(p.ok(&["get", "file", "hooked@master:/hello"]), "one\n");

    // A second push, a second delivery, a second job; the same delivery
    // again commits nothing.
    let second = src.push("hello.txt", "two\n");
    let event = push_event(&daemon.url(), "master");
    let (code, body) = post(hook.port, "/v1/handle/push", &[], &event);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(&format!("committed {second}")), "{body}");
    let (code, body) = post(hook.port, "/v1/handle/push", &[], &event);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(&format!("already at {second}")), "{body}");
    wait_for("the second job", 60, || successful_jobs(&p, "hooked") == 2);
    assert_eq!(p.ok(&["get", "file", "hooked@master:/hello"]), "two\n");
    assert_eq!(p.raw(&["list", "commit", "served@master"]).len(), 2);

    // Events no input watches, and what is not a push event.
    let (code, body) = post(
        hook.port,
        "/v1/handle/push",
        &[],
        &push_event(&daemon.url(), "other"),
    );
    assert_eq!(code, 404, "{body}");
    assert!(
        body.contains("no running pipeline has a git input"),
        "{body}"
    );
    let (code, body) = post(hook.port, "/v1/handle/push", &[], "not json");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("push event"), "{body}");
    let (code, body) = post(
        hook.port,
        "/v1/handle/push",
        &[("X-GitHub-Event", "issues")],
        "{}",
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("ignored"), "{body}");
    assert_eq!(p.raw(&["list", "commit", "served@master"]).len(), 2);
}

#[test]
fn bad_urls_and_branches_are_refused_and_create_nothing() {
    let src = Source::new();
    let allowed = src.root.path().to_str().unwrap().to_string();
    let p = Pachd::start_with(&["--git-poll-interval", "1s", "--allow-file-url", &allowed]);
    let unused = reserve_port();
    for (input, needle) in [
        (
            format!(r#"{{"url": "git://127.0.0.1:{}/served.git"}}"#, unused.port),
            "input.git.URL 'git://127.0.0.1",
        ),
        (
            format!(r#"{{"url": "{}", "branch": "nope"}}"#, src.file_url()),
            "has no branch 'nope'",
        ),
        (
            r#"{"url": "file:///etc/served.git"}"#.to_string(),
            "--allow-file-url",
        ),
        (
            r#"{"url": "/srv/served.git"}"#.to_string(),
            "file:///path/to/repo",
        ),
    ] {
        let f = spec(&p, "bad", &input);
        let err = p.fails(&["create", "pipeline", "-f", &f]);
        assert!(err.contains(needle), "{input}: {err}");
        assert!(!repos(&p).contains(&"served".to_string()), "{input}");
        assert!(
            p.fails(&["inspect", "pipeline", "bad"])
                .contains("not found")
        );
    }
    // A host without git: the refusal says so and how to get it.
    let no_git = Pachd::start_with_env(
        &["--allow-file-url", &allowed],
        &[("PATH".to_string(), "/nonexistent".to_string())],
    );
    let f = spec(
        &no_git,
        "local",
        &format!(r#"{{"url": "{}"}}"#, src.file_url()),
    );
    let err = no_git.fails(&["create", "pipeline", "-f", &f]);
    assert!(
        err.contains("git is not installed on pachd's host"),
        "{err}"
    );
    assert!(err.contains("install git"), "{err}");
    assert!(!repos(&no_git).contains(&"served".to_string()));

    // A file:// URL inside an allowed directory works like any remote; a
    // commit in the spec is ignored as in 1.9, and said.
    let f = spec(
        &p,
        "local",
        &format!(r#"{{"url": "{}", "commit": "abc"}}"#, src.file_url()),
    );
    let out = p
        .pachctl_cmd(&["create", "pipeline", "-f", &f])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: pipeline 'local': input.git.commit of 'served': ignored"),
        "{stderr}"
    );
    wait_for("the first job", 60, || successful_jobs(&p, "local") == 1);
    assert_eq!(p.ok(&["get", "file", "local@master:/hello"]), "one\n");
    // A branch deleted later: polls fail with the reason in pachd's log,
    // and commit nothing.
    git(
        src.root.path().join("served.git").as_path(),
        &["branch", "-m", "master", "main"],
    );
    wait_for("the failed poll's warning", 30, || {
        p.stderr().contains("has no branch 'master' any more")
    });
    assert_eq!(p.raw(&["list", "commit", "served@master"]).len(), 1);
    // inspect pipeline says so too (1.9's recent_error), until a fetch works.
    let info = p.ok(&["inspect", "pipeline", "local"]);
    assert!(
        info.contains("Recent Error: ") && info.contains("has no branch 'master' any more"),
        "{info}"
    );
    let raw = p.raw(&["inspect", "pipeline", "local"]);
    assert!(
        raw[0]["recent_error"]
            .as_str()
            .unwrap_or_default()
            .contains("no branch"),
        "{raw:?}"
    );
    git(
        src.root.path().join("served.git").as_path(),
        &["branch", "-m", "main", "master"],
    );
    wait_for("the error to clear", 30, || {
        p.raw(&["inspect", "pipeline", "local"])[0]["recent_error"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    });
    assert_eq!(p.raw(&["list", "commit", "served@master"]).len(), 1);
}

/// HMAC-SHA256 of `body` with `secret`, hex, as a git host signs (computed
/// by openssl, not by pachd's code).
fn hmac_hex(secret: &str, body: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", secret, "-r"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run openssl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_webhook_secret_refuses_unsigned_events() {
    let src = Source::new();
    let daemon = Daemon::start(src.root.path());
    let hook = reserve_port();
    let address = format!("127.0.0.1:{}", hook.port);
    let p = Pachd::start_with_env(
        &["--githook-address", &address, "--git-poll-interval", "0s"],
        &[("PACHD_GITHOOK_SECRET".to_string(), "s3cr3t".to_string())],
    );
    let f = spec(&p, "signed", &format!(r#"{{"url": "{}"}}"#, daemon.url()));
    p.ok(&["create", "pipeline", "-f", &f]);
    let event = push_event(&daemon.url(), "master");
    for (headers, needle) in [
        (vec![], "not signed"),
        (
            vec![(
                "X-Hub-Signature-256",
                format!("sha256={}", hmac_hex("wrong", &event)),
            )],
            "does not match",
        ),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, body) = post(hook.port, "/v1/handle/push", &headers, &event);
        assert_eq!(code, 401, "{body}");
        assert!(
            body.contains(needle) && body.contains("--githook-secret"),
            "{body}"
        );
    }
    assert!(p.raw(&["list", "commit", "served@master"]).is_empty());
    let signature = format!("sha256={}", hmac_hex("s3cr3t", &event));
    let (code, body) = post(
        hook.port,
        "/v1/handle/push",
        &[("X-Hub-Signature-256", &signature)],
        &event,
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("committed"), "{body}");
    wait_for("the job", 60, || successful_jobs(&p, "signed") == 1);
}

/// Two pachd of one cluster (etcd, one bucket): the leader polls, the other
/// takes the webhook's events, and each push is committed once.
#[test]
fn two_pachd_commit_each_push_once() {
    let src = Source::new();
    let daemon = Daemon::start(src.root.path());
    let etcd = pach_e2e::Etcd::start();
    let bucket = tempfile::tempdir().unwrap();
    let metadata = format!("etcd://{}/git", etcd.address);
    let storage = format!("file://{}", bucket.path().display());
    let (hook_a, hook_b) = (reserve_port(), reserve_port());
    let start = |hook: &Port| {
        let address = format!("127.0.0.1:{}", hook.port);
        Pachd::start_with(&[
            "--metadata",
            &metadata,
            "--storage",
            &storage,
            "--githook-address",
            &address,
            "--git-poll-interval",
            "1s",
        ])
    };
    let a = start(&hook_a);
    let b = start(&hook_b);
    let f = spec(&a, "pair", &format!(r#"{{"url": "{}"}}"#, daemon.url()));
    a.ok(&["create", "pipeline", "-f", &f]);
    wait_for("the first job", 60, || successful_jobs(&a, "pair") == 1);
    for (i, text) in ["two\n", "three\n"].iter().enumerate() {
        let sha = src.push("hello.txt", text);
        // Both endpoints at once, while the leader polls too.
        let event = push_event(&daemon.url(), "master");
        let (pa, pb) = (hook_a.port, hook_b.port);
        let (ea, eb) = (event.clone(), event);
        let ta = std::thread::spawn(move || post(pa, "/v1/handle/push", &[], &ea));
        let tb = std::thread::spawn(move || post(pb, "/v1/handle/push", &[], &eb));
        for (code, body) in [ta.join().unwrap(), tb.join().unwrap()] {
            assert_eq!(code, 200, "{body}");
            assert!(body.contains(&sha), "{body}");
        }
        wait_for("the job", 60, || successful_jobs(&b, "pair") == i + 2);
        assert_eq!(b.ok(&["get", "file", "pair@master:/hello"]), *text);
        let commits = b.raw(&["list", "commit", "served@master"]);
        assert_eq!(commits.len(), i + 2, "{commits:?}");
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(successful_jobs(&a, "pair"), 3);
}
