//! pachctl against servers that misbehave, and output that goes nowhere:
//! it never hangs on a server that does not answer (silent, stopped, or not
//! a pachd at all), ends quietly when its output is closed, and what it
//! prints cannot drive the terminal nor flood it.

use std::io::{Read, Write};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use pach_e2e::{Pachd, bin};

/// pachctl with its config in `dir`, talking to `address`.
fn pachctl_at(dir: &std::path::Path, address: &str, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = Command::new(bin("pachctl"))
        .args(args)
        .env("PACH_CONFIG", dir.join("config.json"))
        .env("PACHD_ADDRESS", address)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run pachctl");
    (out, started.elapsed())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

#[test]
fn a_server_that_accepts_and_never_answers_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    // Never accepted: the kernel completes TCP handshakes from the backlog.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap().to_string();
    let (out, took) = pachctl_at(dir.path(), &address, &["list", "repo"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot reach pachd at {address}"))
            && err.contains("did not answer within 10s"),
        "{err}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    drop(silent);
}

#[test]
fn a_stopped_pachd_is_reported_before_and_during_a_call() {
    let p = Pachd::start();
    // During a call: a CPU profile answers only at its end, so the
    // connection is silent; keep-alive pings find pachd gone.
    let mut call = p
        .pachctl_cmd(&["debug", "profile", "cpu", "--duration", "5m"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    signal(p.pid(), "STOP");
    let started = Instant::now();
    // Before a call: the handshake has a deadline.
    let (out, took) = pachctl_at(p.dir.path(), &p.address, &["list", "repo"]);
    let before = stderr(&out);
    let status = loop {
        if let Some(status) = call.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(60) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let during_took = started.elapsed();
    if status.is_none() {
        let _ = call.kill();
    }
    let mut during = String::new();
    if let Some(mut e) = call.stderr.take() {
        let _ = e.read_to_string(&mut during);
    }
    let _ = call.wait();
    signal(p.pid(), "CONT");
    assert!(!out.status.success());
    assert!(before.contains("did not answer within 10s"), "{before}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let status = status.expect("pachctl still waits for a stopped pachd after 60 s");
    assert!(!status.success());
    assert!(
        during.contains("lost the connection to pachd"),
        "after {during_took:?}: {during}"
    );
}

#[test]
fn a_server_that_is_not_a_pachd_is_named_so() {
    let dir = tempfile::tempdir().unwrap();
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = http.local_addr().unwrap().to_string();
    // A plain HTTP/1 server: reads a request, answers 400 and closes.
    std::thread::spawn(move || {
        for conn in http.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\nConnection: close\r\n\r\nbad request",
            );
        }
    });
    // Several times: how the closed connection reaches the gRPC client
    // depends on timing, and every way must be named the same.
    for _ in 0..10 {
        let (out, took) = pachctl_at(dir.path(), &address, &["list", "repo"]);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains("is not a pachd"), "{err}");
        assert!(took < Duration::from_secs(10), "took {took:?}");
    }
}

#[test]
fn closed_output_ends_pachctl_quietly() {
    let p = Pachd::start();
    let src = p.dir.path().join("many");
    std::fs::create_dir(&src).unwrap();
    for i in 0..3000 {
        std::fs::write(src.join(format!("file-with-a-longish-name-{i:05}")), b"x").unwrap();
    }
    p.ok(&["create", "repo", "r"]);
    p.ok(&[
        "put",
        "file",
        "-r",
        "r@master:/",
        "-f",
        src.to_str().unwrap(),
    ]);
    // stdout and stderr both the pipe that `head` closes after 300 bytes;
    // the listing is far longer than a pipe's buffer.
    let script = format!(
        "'{}' glob file 'r@master:/**' 2>&1 | head -c 300 >/dev/null; echo ${{PIPESTATUS[0]}}",
        bin("pachctl").display()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("PACH_CONFIG", p.dir.path().join("config.json"))
        .env("PACHD_ADDRESS", &p.address)
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        status,
        "0",
        "pachctl's exit status; its stderr: {}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains("panicked"),
        "pachctl panicked: {}",
        stderr(&out)
    );
}

#[test]
fn error_messages_are_cut_and_escaped() {
    let p = Pachd::start();
    let long = "x".repeat(100_000);
    let out = p.run(&["create", "repo", &long]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.len() < 5000, "{} bytes of error", err.len());
    assert!(
        err.contains("invalid repo name") && err.contains("more bytes cut"),
        "{}",
        &err[..err.len().min(300)]
    );

    // A status made outside pachd's one mapping (here: a URL pachd refuses,
    // echoed whole) is cut and escaped on its way out all the same.
    let url = format!("\u{1b}[2J{long}");
    let out = p.run(&["extract", "--url", &url]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.len() < 5000, "{} bytes of error", err.len());
    assert!(
        err.contains("URL refused") && err.contains("more bytes cut") && !err.contains('\u{1b}'),
        "{}",
        &err[..err.len().min(300)]
    );
    assert!(
        !out.stderr.contains(&0x1b),
        "a raw ESC reached the terminal"
    );

    let out = p.run(&["create", "repo", "a\u{1b}[31mb"]);
    assert!(!out.status.success());
    assert!(
        !out.stderr.contains(&0x1b),
        "a raw ESC reached the terminal: {:?}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("a\\u{1b}[31mb"), "{}", stderr(&out));
}
