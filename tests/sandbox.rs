//! Escape attempts from user code, run as pipelines through the real
//! binaries: each asserts that the host, pachd and the next datum are
//! untouched.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pach_e2e::Pachd;
use serde_json::Value;

/// Creates a pipeline from `spec`, flushes `input`'s master and returns the
/// pipeline's latest job.
fn run_pipeline(p: &Pachd, name: &str, input: &str, spec: &str) -> Value {
    let path = p.dir.path().join(format!("{name}.json"));
    std::fs::write(&path, spec).unwrap();
    p.ok(&["create", "pipeline", "-f", path.to_str().unwrap()]);
    p.ok(&["flush", "commit", &format!("{input}@master")]);
    p.raw(&["list", "job", "-p", name]).remove(0)
}

/// A spec running `script` through sh for each top-level file of `repo`.
fn spec(name: &str, repo: &str, script: &str, env: &[(&str, String)]) -> String {
    let env: serde_json::Map<String, Value> = env
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
        .collect();
    serde_json::json!({
        "pipeline": {"name": name},
        "transform": {"cmd": ["sh"], "stdin": [script], "env": env},
        "datum_timeout": "60s",
        "parallelism_spec": {"constant": 1},
        "input": {"pfs": {"repo": repo, "glob": "/*"}}
    })
    .to_string()
}

/// The files of a repo's master and their contents.
fn outputs(p: &Pachd, repo: &str) -> Vec<(String, String)> {
    p.raw(&["list", "file", &format!("{repo}@master:/")])
        .iter()
        .map(|f| {
            let path = f["file"]["path"].as_str().unwrap().to_string();
            let body = p.ok(&["get", "file", &format!("{repo}@master:{path}")]);
            (path, body)
        })
        .collect()
}

/// A host directory anyone may write, holding a file anyone may write, under
/// `parent`: only a read-only mount keeps user code out.
struct HostDir(PathBuf);

impl HostDir {
    fn new(parent: &str) -> HostDir {
        let d = Path::new(parent).join(format!("pach-sandbox-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        let f = d.join("f");
        std::fs::write(&f, b"host\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
        HostDir(d)
    }
}

impl Drop for HostDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn remounting_host_directories_read_write_fails() {
    let dirs: Vec<HostDir> = ["/srv", "/etc", "/usr/local", "/root"]
        .into_iter()
        .filter(|d| Path::new(d).is_dir())
        .map(HostDir::new)
        .collect();
    let p = Pachd::start();
    p.ok(&["create", "repo", "in"]);
    p.ok_stdin(&["put", "file", "in@master:/one"], b"1\n");
    p.ok_stdin(&["put", "file", "in@master:/two"], b"2\n");
    let mut script = String::from("echo \"uid $(id -u)\" > /pfs/out/$(basename $in)\n");
    for d in &dirs {
        let d = d.0.display();
        let parent = Path::new(&d.to_string())
            .parent()
            .unwrap()
            .display()
            .to_string();
        script.push_str(&format!(
            "mount -o remount,rw,bind {parent} 2>/dev/null && echo remounted {parent} >> /pfs/out/$(basename $in)\n\
             mount -o remount,rw,bind {d} 2>/dev/null && echo remounted {d} >> /pfs/out/$(basename $in)\n\
             echo escaped > {d}/f 2>/dev/null && echo wrote {d} >> /pfs/out/$(basename $in)\n\
             unshare -Urm sh -c 'mount -o remount,rw,bind {d} && echo escaped > {d}/f' 2>/dev/null && echo nested {d} >> /pfs/out/$(basename $in)\n"
        ));
    }
    script.push_str("true\n");
    let job = run_pipeline(&p, "remount", "in", &spec("remount", "in", &script, &[]));
    assert_eq!(job["state"], "JOB_SUCCESS", "{job}");
    let out = outputs(&p, "remount");
    assert_eq!(out.len(), 2, "{out:?}");
    for (path, body) in &out {
        // User code still sees itself as root, as in Pachyderm.
        assert_eq!(body, "uid 0\n", "{path}: the attempt got somewhere");
    }
    for d in &dirs {
        assert_eq!(
            std::fs::read(d.0.join("f")).unwrap(),
            b"host\n",
            "{} was written",
            d.0.display()
        );
    }
}

#[test]
fn links_out_of_pfs_fail_the_datum_and_read_nothing_from_the_host() {
    let secret = HostDir::new("/tmp");
    std::fs::write(secret.0.join("f"), b"host secret\n").unwrap();
    // Enough `..` to reach / from wherever pachd keeps the datum's files.
    let target = format!("/pfs/in{}{}/f", "/..".repeat(40), secret.0.display());
    let p = Pachd::start();
    p.ok(&["create", "repo", "in"]);
    p.ok_stdin(&["put", "file", "in@master:/a"], b"a\n");
    let job = run_pipeline(
        &p,
        "dotdot",
        "in",
        &spec(
            "dotdot",
            "in",
            &format!("ln -s {target} /pfs/out/leak"),
            &[],
        ),
    );
    assert_eq!(job["state"], "JOB_FAILURE", "{job}");
    let reason = job["reason"].as_str().unwrap();
    assert!(
        reason.contains("'/leak'") && reason.contains(&target),
        "the reason names the link and its target: {reason}"
    );
    assert!(p.raw(&["list", "file", "dotdot@master:/"]).is_empty());

    // Through a link to a host directory: the path as written stays under
    // /pfs/out, but its second step leaves /pfs.
    let job = run_pipeline(
        &p,
        "hop",
        "in",
        &spec(
            "hop",
            "in",
            &format!(
                "ln -s {} /pfs/out/d && ln -s /pfs/out/d/f /pfs/out/leak",
                secret.0.display()
            ),
            &[],
        ),
    );
    assert_eq!(job["state"], "JOB_FAILURE", "{job}");
    assert!(p.raw(&["list", "file", "hop@master:/"]).is_empty());

    // Links into the inputs keep working.
    let job = run_pipeline(
        &p,
        "fine",
        "in",
        &spec("fine", "in", "ln -s $in /pfs/out/$(basename $in)", &[]),
    );
    assert_eq!(job["state"], "JOB_SUCCESS", "{job}");
    assert_eq!(outputs(&p, "fine"), [("/a".to_string(), "a\n".to_string())]);
}

fn port_of(address: &str) -> u16 {
    address.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn datums_cannot_reach_pachd_by_default() {
    let p = Pachd::start();
    let port = port_of(&p.address);
    let repos_before = p.raw(&["list", "repo"]).len();
    p.ok(&["create", "repo", "in"]);
    p.ok_stdin(&["put", "file", "in@master:/a"], b"a\n");
    // The real pachctl, as user code would bring its own client.
    let pachctl = pach_e2e::bin("pachctl");
    let script = format!(
        "if bash -c 'echo > /dev/tcp/127.0.0.1/{port}' 2>/dev/null; then echo connected >> /pfs/out/result; fi\n\
         if PACHD_ADDRESS=127.0.0.1:{port} PACH_CONFIG=/tmp/c.json timeout 20 {pachctl} create repo hacked 2>/dev/null; then echo created >> /pfs/out/result; fi\n\
         echo done >> /pfs/out/result",
        pachctl = pachctl.display()
    );
    let job = run_pipeline(&p, "reach", "in", &spec("reach", "in", &script, &[]));
    assert_eq!(job["state"], "JOB_SUCCESS", "{job}");
    assert_eq!(
        outputs(&p, "reach"),
        [("/result".to_string(), "done\n".to_string())]
    );
    let repos: Vec<String> = p
        .raw(&["list", "repo"])
        .iter()
        .map(|r| r["repo"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(repos.len(), repos_before + 2, "{repos:?}");
    assert!(!repos.contains(&"hacked".to_string()), "{repos:?}");
}

/// This host's first global IPv4 address, if it has one.
fn host_ipv4() -> Option<String> {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let addr = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)?;
    Some(addr.split('/').next()?.to_string())
}

#[test]
fn outbound_datums_reach_the_network_but_not_pachd() {
    // Outbound traffic is tested against a listener on this host's own
    // non-loopback address: no other network exists here.
    let Some(ip) = host_ipv4() else {
        eprintln!(
            "skipped: this host has no non-loopback IPv4 address for a datum to reach through slirp4netns"
        );
        return;
    };
    for tool in ["slirp4netns", "nft"] {
        let found = std::process::Command::new("sh")
            .args([
                "-c",
                &format!("command -v {tool} || test -x /usr/sbin/{tool}"),
            ])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(found, "{tool} is missing: scripts/prereqs.sh installs it");
    }
    let listener = std::net::TcpListener::bind((ip.as_str(), 0)).unwrap();
    let listen_port = listener.local_addr().unwrap().port();
    // A loopback-only listener: the host's loopback must stay unreachable.
    let local = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    local.set_nonblocking(true).unwrap();
    let local_port = local.local_addr().unwrap().port();
    let accepted = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut got = String::new();
        let _ = s.read_to_string(&mut got);
        got
    });

    // pachd on every address, so that only the sandbox's rule keeps user
    // code from its port on the host's other addresses.
    let mut p = Pachd::start_with(&["--datum-network", "outbound"]);
    p.stop();
    let port = port_of(&p.address);
    p.address = format!("0.0.0.0:{port}");
    p.launch();
    p.ok(&["create", "repo", "in"]);
    p.ok_stdin(&["put", "file", "in@master:/a"], b"a\n");
    let script = "\
        if bash -c 'echo hello > /dev/tcp/$HOST_IP/$LISTEN_PORT'; then echo reached-listener >> /pfs/out/result; fi\n\
        if bash -c 'echo > /dev/tcp/$HOST_IP/$PACHD_PORT' 2>/dev/null; then echo reached-pachd >> /pfs/out/result; fi\n\
        if bash -c 'echo > /dev/tcp/10.0.2.2/$LOCAL_PORT' 2>/dev/null; then echo reached-host-loopback >> /pfs/out/result; fi\n\
        echo done >> /pfs/out/result";
    let env = [
        ("HOST_IP", ip.clone()),
        ("LISTEN_PORT", listen_port.to_string()),
        ("PACHD_PORT", port.to_string()),
        ("LOCAL_PORT", local_port.to_string()),
    ];
    let job = run_pipeline(&p, "net", "in", &spec("net", "in", script, &env));
    assert_eq!(job["state"], "JOB_SUCCESS", "{job}");
    assert_eq!(
        outputs(&p, "net"),
        [(
            "/result".to_string(),
            "reached-listener\ndone\n".to_string()
        )]
    );
    assert_eq!(accepted.join().unwrap(), "hello\n");
    assert!(local.accept().is_err(), "the host's loopback was reached");
}

#[test]
fn processes_left_behind_die_with_their_datum() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "in"]);
    for f in ["a", "b", "c"] {
        p.ok_stdin(&["put", "file", &format!("in@master:/{f}")], f.as_bytes());
    }
    // Each datum leaves writers behind that start once it is over (after
    // 0.7 s; a datum takes 0.5 s), so they would write into the next
    // datums' /pfs/out, were they still alive.
    let script = "(sleep 0.7; while true; do echo leak > /pfs/out/leak; sleep 0.1; done) >/dev/null 2>&1 &\n\
                  setsid sh -c 'sleep 0.7; while true; do echo leak > /pfs/out/leak2; sleep 0.1; done' >/dev/null 2>&1 &\n\
                  cp $in /pfs/out/\n\
                  sleep 0.5";
    let job = run_pipeline(&p, "leaky", "in", &spec("leaky", "in", script, &[]));
    assert_eq!(job["state"], "JOB_SUCCESS", "{job}");
    let out: Vec<String> = outputs(&p, "leaky").into_iter().map(|(p, _)| p).collect();
    assert_eq!(out, ["/a", "/b", "/c"]);
    // And none of the writers is still running on the host.
    assert_eq!(user_processes(&p), 0);
}

/// How many processes of user code (uid 65534 on the host, as pachd runs
/// as root here) descend from `p`'s pachd.
fn user_processes(p: &Pachd) -> usize {
    let data_dir = p.data_dir().display().to_string();
    let mut parent = std::collections::HashMap::new();
    let mut uid = std::collections::HashMap::new();
    let mut pachd = None;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u32>().ok())
        };
        if let (Some(pp), Some(u)) = (field("PPid:"), field("Uid:")) {
            parent.insert(pid, pp);
            uid.insert(pid, u);
        }
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.contains(&data_dir) && cmdline.contains("pachd") {
            pachd = Some(pid);
        }
    }
    let pachd = pachd.expect("pachd's process");
    let descends = |mut pid: u32| {
        for _ in 0..64 {
            match parent.get(&pid) {
                Some(&pp) if pp == pachd => return true,
                Some(&pp) if pp > 1 => pid = pp,
                _ => return false,
            }
        }
        false
    };
    uid.iter()
        .filter(|(pid, u)| **u == 65534 && descends(**pid))
        .count()
}

#[test]
fn a_fork_bomb_is_contained() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "in"]);
    p.ok_stdin(&["put", "file", "in@master:/bomb"], b"bomb");
    p.ok_stdin(&["put", "file", "in@master:/calm"], b"calm");
    // A classic bomb, bounded: the datum ends after 4 s, and with it every
    // process of the bomb.
    let script = "if grep -q bomb $in; then timeout 4 bash -c ':(){ :|:& };:; sleep 4' >/dev/null 2>&1; fi\n\
                  cp $in /pfs/out/";
    let path = p.dir.path().join("bomb.json");
    std::fs::write(&path, spec("bomb", "in", script, &[])).unwrap();
    p.ok(&["create", "pipeline", "-f", path.to_str().unwrap()]);
    // While it runs, pachd answers and the bomb stays under its limit.
    let started = Instant::now();
    let mut most = 0;
    while started.elapsed() < Duration::from_secs(6) {
        most = most.max(user_processes(&p));
        let asked = Instant::now();
        p.ok(&["list", "repo"]);
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "pachd took {:?} to answer",
            asked.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    p.ok(&["flush", "commit", "in@master"]);
    eprintln!("fork bomb: at most {most} processes of user code at once");
    // A scan of /proc while the bomb churns counts some processes that
    // were gone before others began: a little over the limit at worst.
    let limit = pach_worker::DEFAULT_MAX_PROCESSES as usize;
    assert!(
        (100..=limit + limit / 4).contains(&most),
        "{most} processes of user code at once"
    );
    let job = p.raw(&["list", "job", "-p", "bomb"]).remove(0);
    // The bomb's datum may fail or succeed; the other one runs as usual.
    let out: Vec<String> = outputs(&p, "bomb").into_iter().map(|(p, _)| p).collect();
    assert!(
        out.contains(&"/calm".to_string()) || job["data_failed"] == 1,
        "{job}"
    );
    let datums = p.raw(&["list", "datum", job["job"]["id"].as_str().unwrap()]);
    assert!(
        datums.iter().any(|d| d["state"] == "SUCCESS"),
        "the calm datum ran: {datums:?}"
    );
    assert_eq!(user_processes(&p), 0, "the bomb outlived its datum");
    p.ok(&["list", "repo"]);
}
