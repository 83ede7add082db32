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
