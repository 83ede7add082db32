//! Restarts, crashes and concurrent writers against the real binaries.

use std::io::Write;
use std::process::Stdio;

use pach_e2e::Pachd;

#[test]
fn restart_keeps_everything() {
    let mut p = Pachd::start();
    p.ok(&["create", "repo", "r"]);
    p.ok_stdin(&["put", "file", "r@master:/a"], b"persisted");
    p.ok_stdin(&["put", "file", "r@master:/a"], b" twice");
    p.stop();
    p.launch();
    // Puts append (Pachyderm 1.9), and the pieces survive a restart.
    assert_eq!(p.ok(&["get", "file", "r@master:/a"]), "persisted twice");
    let objects = &p.raw(&["inspect", "file", "r@master:/a"])[0]["objects"];
    assert_eq!(objects.as_array().map(Vec::len), Some(2));
    assert_eq!(p.raw(&["list", "commit", "r"]).len(), 2);
}

#[test]
fn concurrent_puts_to_one_branch_all_land_in_serial_commits() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "r"]);
    let children: Vec<_> = (0..8)
        .map(|i| {
            let mut c = p
                .pachctl_cmd(&["put", "file", &format!("r@master:/f{i}")])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            c.stdin
                .take()
                .unwrap()
                .write_all(format!("{i}").as_bytes())
                .unwrap();
            c
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let commits = p.raw(&["list", "commit", "r@master"]);
    assert_eq!(commits.len(), 8);
    assert_eq!(
        p.raw(&["list", "file", "r@master"]).len(),
        8,
        "every write landed"
    );
}

#[test]
fn kill_during_large_put_leaves_no_partial_commit() {
    let mut p = Pachd::start();
    p.ok(&["create", "repo", "r"]);
    p.ok_stdin(&["put", "file", "r@master:/small"], b"before");
    let mut put = p
        .pachctl_cmd(&["put", "file", "r@master:/big"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = put.stdin.take().unwrap();
    // Stream 64 MiB, then crash pachd while the upload is still open.
    let block: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for _ in 0..64 {
        if stdin.write_all(&block).is_err() {
            break;
        }
    }
    p.kill9();
    drop(stdin);
    let _ = put.wait();
    p.launch();
    let commits = p.raw(&["list", "commit", "r"]);
    assert_eq!(commits.len(), 1, "the interrupted put must not be visible");
    assert!(
        !p.run(&["inspect", "file", "r@master:/big"])
            .status
            .success()
    );
    assert_eq!(p.ok(&["get", "file", "r@master:/small"]), "before");
    let fsck = p.ok(&["fsck"]);
    assert!(fsck.contains("no problems"), "{fsck}");
}
