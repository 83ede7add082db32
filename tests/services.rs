//! Services through the real binaries: user code serving a port over the
//! current inputs in the bubblewrap sandbox, reached on the host port pachd
//! publishes, started again on each new input commit, stopped by `stop
//! pipeline`.

use std::time::{Duration, Instant};

use pach_e2e::{Pachd, http_get, reserve_port};

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The body of a GET, when the service answers with 200.
fn body(port: u16, path: &str) -> Option<String> {
    let r = http_get(port, path)?;
    if !r.starts_with("HTTP/1.0 200") && !r.starts_with("HTTP/1.1 200") {
        return None;
    }
    r.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

#[test]
fn service_serves_current_inputs_and_follows_new_commits() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "site"]);
    p.ok_stdin(
        &["put", "file", "site@master:/index.html"],
        b"version one\n",
    );
    let external = reserve_port();
    let port = external.port;
    // Pachyderm's service examples run a web server over /pfs/<input>.
    let spec = serde_json::json!({
        "pipeline": {"name": "web"},
        "transform": {"cmd": ["python3", "-m", "http.server", "8000", "--bind", "127.0.0.1", "--directory", "/pfs/site"]},
        "input": {"pfs": {"repo": "site", "glob": "/"}},
        "service": {"internal_port": 8000, "external_port": port}
    });
    let f = p.dir.path().join("web.json");
    std::fs::write(&f, spec.to_string()).unwrap();
    drop(external);
    p.ok(&["create", "pipeline", "-f", f.to_str().unwrap()]);
    wait_for("the service", 60, || {
        body(port, "/index.html").as_deref() == Some("version one\n")
    });
    // inspect pipeline says where it is published.
    let info = &p.raw(&["inspect", "pipeline", "web"])[0];
    assert_eq!(info["service"]["ip"], "127.0.0.1", "{info}");
    assert_eq!(info["service"]["external_port"], port, "{info}");
    assert_eq!(info["service"]["internal_port"], 8000, "{info}");
    // No jobs: a service runs on rather than per commit.
    assert!(p.raw(&["list", "job", "-p", "web"]).is_empty());

    // A new input commit: user code starts again over it.
    p.ok_stdin(
        &["put", "file", "site@master:/index.html", "-o"],
        b"version two\n",
    );
    wait_for("the new input", 60, || {
        body(port, "/index.html").as_deref() == Some("version two\n")
    });

    // Stopped: nothing answers; started again: it serves again.
    p.ok(&["stop", "pipeline", "web"]);
    wait_for("the service to stop", 30, || http_get(port, "/").is_none());
    p.ok(&["start", "pipeline", "web"]);
    wait_for("the service again", 60, || {
        body(port, "/index.html").as_deref() == Some("version two\n")
    });
    p.ok(&["delete", "pipeline", "web"]);
    wait_for("the service to end with its pipeline", 30, || {
        http_get(port, "/").is_none()
    });
}

/// The sandbox still reaches nothing of the host: pachd's API port is not
/// open to a service's user code, which sees only its own loopback.
#[test]
fn service_user_code_cannot_reach_pachd() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "in"]);
    let external = reserve_port();
    let port = external.port;
    let pachd_port = p.address.rsplit(':').next().unwrap().to_string();
    let script = format!(
        "import http.server, socket\n\
         s = socket.socket()\n\
         s.settimeout(1)\n\
         reached = s.connect_ex(('127.0.0.1', {pachd_port})) == 0\n\
         class H(http.server.BaseHTTPRequestHandler):\n\
         \x20   def do_GET(self):\n\
         \x20       self.send_response(200); self.end_headers()\n\
         \x20       self.wfile.write(b'reached' if reached else b'refused')\n\
         http.server.HTTPServer(('127.0.0.1', 9000), H).serve_forever()\n"
    );
    let spec = serde_json::json!({
        "pipeline": {"name": "probe"},
        "transform": {"cmd": ["python3", "-c", script]},
        "input": {"pfs": {"repo": "in", "glob": "/"}},
        "service": {"internal_port": 9000, "external_port": port}
    });
    let f = p.dir.path().join("probe.json");
    std::fs::write(&f, spec.to_string()).unwrap();
    drop(external);
    p.ok(&["create", "pipeline", "-f", f.to_str().unwrap()]);
    wait_for("the probe", 60, || body(port, "/").is_some());
    assert_eq!(body(port, "/").as_deref(), Some("refused"));
}

#[test]
fn service_specs_are_checked() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "in"]);
    for (service, extra, needle) in [
        (r#"{"internal_port": 8000}"#, "", "service.external_port"),
        (
            r#"{"internal_port": 0, "external_port": 30001}"#,
            "",
            "service.internal_port",
        ),
        (
            r#"{"internal_port": 1, "external_port": 2, "type": "Headless"}"#,
            "",
            "service type Headless",
        ),
        (
            r#"{"internal_port": 1, "external_port": 2}"#,
            r#", "parallelism_spec": {"constant": 2}"#,
            "parallelism of 1",
        ),
    ] {
        let spec = format!(
            r#"{{"pipeline": {{"name": "s"}}, "transform": {{"cmd": ["true"]}},
                "input": {{"pfs": {{"repo": "in", "glob": "/"}}}}, "service": {service}{extra}}}"#
        );
        let f = p.dir.path().join("s.json");
        std::fs::write(&f, spec).unwrap();
        let e = p.fails(&["create", "pipeline", "-f", f.to_str().unwrap()]);
        assert!(e.contains(needle), "{service} => {e}");
    }
}

/// A spout serving a port (Pachyderm 1.9's `spout.service`): each request
/// on the published port becomes an archive on `/pfs/out`, so a commit of
/// the spout's repo; what user code prints is in `logs --pipeline`.
#[test]
fn spout_serves_a_port_and_commits_what_it_receives() {
    let p = Pachd::start();
    let external = reserve_port();
    let port = external.port;
    let script = r#"
import http.server, io, tarfile
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        name = self.path.strip('/')
        data = ('from ' + name).encode()
        with open('/pfs/out', 'wb') as out:
            with tarfile.open(fileobj=out, mode='w|') as tar:
                info = tarfile.TarInfo(name=name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        print('received', name, flush=True)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'committed ' + name.encode())
    def log_message(self, *args):
        pass
print('spout listening', flush=True)
http.server.HTTPServer(('127.0.0.1', 8000), H).serve_forever()
"#;
    let spec = serde_json::json!({
        "pipeline": {"name": "inbox"},
        "transform": {"cmd": ["python3", "-c", script]},
        "spout": {"service": {"internal_port": 8000, "external_port": port}}
    });
    let f = p.dir.path().join("inbox.json");
    std::fs::write(&f, spec.to_string()).unwrap();
    drop(external);
    p.ok(&["create", "pipeline", "-f", f.to_str().unwrap()]);
    wait_for("the spout's port", 60, || {
        body(port, "/first").as_deref() == Some("committed first")
    });
    assert_eq!(body(port, "/second").as_deref(), Some("committed second"));
    wait_for("the commits", 30, || {
        p.run(&["get", "file", "inbox@master:/second"])
            .status
            .success()
    });
    assert_eq!(p.ok(&["get", "file", "inbox@master:/first"]), "from first");
    assert_eq!(
        p.ok(&["get", "file", "inbox@master:/second"]),
        "from second"
    );
    let info = &p.raw(&["inspect", "pipeline", "inbox"])[0];
    assert_eq!(info["spout"]["service"]["external_port"], port, "{info}");
    assert_eq!(info["spout"]["service"]["ip"], "127.0.0.1", "{info}");

    // What user code printed, while it still runs.
    wait_for("the spout's logs", 30, || {
        let logs = p.ok(&["logs", "--pipeline", "inbox"]);
        logs.contains("spout listening") && logs.contains("received second")
    });
    let logs = p.ok(&["logs", "--pipeline", "inbox"]);
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(
        lines,
        ["spout listening", "received first", "received second"],
        "{logs}"
    );
    assert_eq!(
        p.ok(&["logs", "--pipeline", "inbox", "--tail", "1"]).trim(),
        "received second"
    );
    // Followed: a line printed later comes as it is printed.
    let mut follower = p
        .pachctl_cmd(&["logs", "--pipeline", "inbox", "-f", "--tail", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (lines, followed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let next = || followed.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(next(), "received second");
    assert_eq!(body(port, "/third").as_deref(), Some("committed third"));
    assert_eq!(next(), "received third");
    follower.kill().unwrap();
    follower.wait().unwrap();

    p.ok(&["stop", "pipeline", "inbox"]);
    wait_for("the spout to stop", 30, || http_get(port, "/x").is_none());
}

/// A service's user code's output is in `logs --pipeline` while it runs.
#[test]
fn service_logs_are_in_logs_pipeline() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "in"]);
    let external = reserve_port();
    let port = external.port;
    let script = "import http.server\n\
                  print('serving the input', flush=True)\n\
                  http.server.HTTPServer(('127.0.0.1', 8000), http.server.SimpleHTTPRequestHandler).serve_forever()\n";
    let spec = serde_json::json!({
        "pipeline": {"name": "web"},
        "transform": {"cmd": ["python3", "-c", script], "working_dir": "/pfs/in"},
        "input": {"pfs": {"repo": "in", "glob": "/"}},
        "service": {"internal_port": 8000, "external_port": port}
    });
    let f = p.dir.path().join("web.json");
    std::fs::write(&f, spec.to_string()).unwrap();
    drop(external);
    p.ok(&["create", "pipeline", "-f", f.to_str().unwrap()]);
    wait_for("the service", 60, || body(port, "/").is_some());
    wait_for("the service's logs", 30, || {
        p.ok(&["logs", "--pipeline", "web"])
            .contains("serving the input")
    });
    // A GET shows up in the log (http.server writes each request to stderr).
    assert!(body(port, "/").is_some());
    wait_for("the request in the logs", 30, || {
        p.ok(&["logs", "--pipeline", "web"])
            .contains("\"GET / HTTP/1.")
    });
}
