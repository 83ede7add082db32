//! Versioned data through the real CLI, as a Pachyderm 1.x user types it.

use pach_e2e::{Pachd, check_field_names};

#[test]
fn version_table_and_config() {
    let p = Pachd::start();
    let out = p.ok(&["version"]);
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("COMPONENT") && header.contains("VERSION"),
        "{out}"
    );
    assert!(out.lines().any(|l| l.starts_with("pachctl ")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("pachd ")), "{out}");

    assert_eq!(p.ok(&["config", "get", "active-context"]).trim(), "local");
    p.ok(&[
        "config",
        "update",
        "context",
        "local",
        "--pachd-address=127.0.0.1:1",
    ]);
    let ctx: serde_json::Value =
        serde_json::from_str(&p.ok(&["config", "get", "context", "local"])).unwrap();
    assert_eq!(ctx["pachd_address"], "127.0.0.1:1");
    let listed = p.ok(&["config", "list", "context"]);
    assert!(listed.contains("local"), "{listed}");
}

#[test]
fn repos_commits_branches_and_files() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "images", "--description", "raw pictures"]);
    let repos = p.raw(&["list", "repo"]);
    assert_eq!(repos.len(), 1);
    assert_eq!(repos[0]["repo"]["name"], "images");
    assert_eq!(repos[0]["description"], "raw pictures");
    p.ok(&["update", "repo", "images", "--description", "new"]);
    assert_eq!(
        p.raw(&["inspect", "repo", "images"])[0]["description"],
        "new"
    );

    // stdin, -f file, -r directory: each a commit.
    p.ok_stdin(&["put", "file", "images@master:/hello.txt"], b"hello\n");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tree/sub")).unwrap();
    std::fs::write(dir.path().join("tree/a.csv"), "1,2\n").unwrap();
    std::fs::write(dir.path().join("tree/sub/b.csv"), "3,4\n").unwrap();
    std::fs::write(dir.path().join("single.bin"), vec![7u8; 3 << 20]).unwrap();
    let single = dir.path().join("single.bin");
    p.ok(&[
        "put",
        "file",
        "images@master:/single.bin",
        "-f",
        single.to_str().unwrap(),
    ]);
    let tree = dir.path().join("tree");
    p.ok(&[
        "put",
        "file",
        "images@master:/data",
        "-r",
        "-f",
        tree.to_str().unwrap(),
    ]);

    assert_eq!(
        p.ok(&["get", "file", "images@master:/hello.txt"]),
        "hello\n"
    );
    assert_eq!(
        p.ok(&["get", "file", "images@master:/data/sub/b.csv"]),
        "3,4\n"
    );
    let commits = p.raw(&["list", "commit", "images@master"]);
    assert_eq!(commits.len(), 3, "three puts, three commits");
    // Ancestry: master^ lacks the tree, master~2 lacks the big file too.
    assert!(
        !p.run(&["get", "file", "images@master^:/data/a.csv"])
            .status
            .success()
    );
    assert!(
        p.run(&["get", "file", "images@master~2:/hello.txt"])
            .status
            .success()
    );
    assert!(
        !p.run(&["inspect", "file", "images@master~2:/single.bin"])
            .status
            .success()
    );
    assert_eq!(
        p.raw(&["list", "commit", "images@master", "-n", "1"]).len(),
        1
    );

    let files = p.raw(&["list", "file", "images@master:/"]);
    let names: Vec<&str> = files
        .iter()
        .map(|f| f["file"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/data", "/hello.txt", "/single.bin"]);
    assert_eq!(files[0]["fileType"], "DIR");
    assert_eq!(files[0]["sizeBytes"], "8");
    let table = p.ok(&["list", "file", "images@master"]);
    assert!(table.lines().next().unwrap().contains("NAME"), "{table}");

    let globbed = p.raw(&["glob", "file", "images@master:/data/**.csv"]);
    assert_eq!(globbed.len(), 2, "{globbed:?}");
    let info = p.raw(&["inspect", "file", "images@master:/single.bin"]);
    assert_eq!(info[0]["sizeBytes"], (3 << 20).to_string());

    // get -o writes a file; get -r a directory.
    let out = dir.path().join("out.bin");
    p.ok(&[
        "get",
        "file",
        "images@master:/single.bin",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&out).unwrap(), vec![7u8; 3 << 20]);
    let outdir = dir.path().join("restored");
    p.ok(&[
        "get",
        "file",
        "images@master:/data",
        "-r",
        "-o",
        outdir.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(outdir.join("sub/b.csv")).unwrap(),
        "3,4\n"
    );

    // Pachyderm 1.9: put appends, -o overwrites; delete, copy, diff.
    p.ok_stdin(&["put", "file", "images@master:/hello.txt"], b"again\n");
    assert_eq!(
        p.ok(&["get", "file", "images@master:/hello.txt"]),
        "hello\nagain\n"
    );
    p.ok_stdin(
        &["put", "file", "images@master:/hello.txt", "-o"],
        b"over\n",
    );
    assert_eq!(p.ok(&["get", "file", "images@master:/hello.txt"]), "over\n");
    p.ok(&["delete", "file", "images@master:/data/sub"]);
    assert!(
        !p.run(&["get", "file", "images@master:/data/sub/b.csv"])
            .status
            .success()
    );
    p.ok(&["create", "repo", "copies"]);
    p.ok(&["copy", "file", "images@master:/data", "copies@master:/d"]);
    assert_eq!(p.ok(&["get", "file", "copies@master:/d/a.csv"]), "1,2\n");
    let diff = p.ok(&[
        "diff",
        "file",
        "images@master",
        "images@master~1",
        "--name-only",
    ]);
    assert!(diff.contains("/data/sub/b.csv"), "{diff}");

    // Branches.
    let head = commits[0]["commit"]["id"].as_str().unwrap().to_string();
    p.ok(&["create", "branch", "images@dev", "--head", &head]);
    let branches = p.raw(&["list", "branch", "images"]);
    assert_eq!(branches.len(), 2);
    assert_eq!(
        p.raw(&["inspect", "branch", "images@dev"])[0]["head"]["id"],
        head.as_str()
    );
    p.ok(&["delete", "branch", "images@dev"]);
    assert_eq!(p.raw(&["list", "branch", "images"]).len(), 1);

    // Open commits: writes collect until finish.
    let id = p
        .ok(&["start", "commit", "images@master"])
        .trim()
        .to_string();
    p.ok_stdin(&["put", "file", &format!("images@{id}:/staged")], b"s");
    p.ok_stdin(&["put", "file", "images@master:/staged2"], b"t");
    assert!(p.raw(&["inspect", "commit", &format!("images@{id}")])[0]["finished"].is_null());
    p.ok(&["finish", "commit", &format!("images@{id}")]);
    assert_eq!(p.ok(&["get", "file", "images@master:/staged2"]), "t");
    assert!(p.raw(&["inspect", "commit", "images@master"])[0]["finished"].is_string());

    // Deleting a commit moves the branch back.
    p.ok(&["delete", "commit", &format!("images@{id}")]);
    assert!(
        !p.run(&["get", "file", "images@master:/staged"])
            .status
            .success()
    );

    p.ok(&["delete", "repo", "copies"]);
    p.ok(&["delete", "repo", "--all"]);
    assert!(p.raw(&["list", "repo"]).is_empty());
    assert!(p.ok(&["fsck"]).contains("no problems"));
}

#[test]
fn provenance_and_flush() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "in"]);
    p.ok(&["create", "repo", "out"]);
    p.ok(&[
        "create",
        "branch",
        "out@master",
        "--provenance",
        "in@master",
    ]);
    p.ok_stdin(&["put", "file", "in@master:/x"], b"x");
    let out = p.raw(&["inspect", "commit", "out@master"]);
    assert!(
        out[0]["finished"].is_null(),
        "a downstream commit waits to be computed"
    );
    let in_head = p.raw(&["inspect", "commit", "in@master"])[0]["commit"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut flush = p
        .pachctl_cmd(&["flush", "commit", &format!("in@{in_head}"), "--raw"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        flush.try_wait().unwrap().is_none(),
        "flush must wait for out@master"
    );
    p.ok(&["finish", "commit", "out@master"]);
    let status = flush.wait().unwrap();
    assert!(status.success());
}

#[test]
fn bad_input_gets_clear_errors_and_changes_nothing() {
    let p = Pachd::start();
    let e = p.fails(&["create", "repo", "bad/name"]);
    assert!(e.contains("bad/name") && e.contains("letters"), "{e}");
    let e = p.fails(&["list", "commit", "nope"]);
    assert!(e.contains("repo nope not found"), "{e}");
    p.ok(&["create", "repo", "r"]);
    let e = p.fails(&["create", "repo", "r"]);
    assert!(e.contains("already exists"), "{e}");
    let e = p.fails(&["inspect", "branch", "r@nope"]);
    assert!(e.contains("nope"), "{e}");
    p.ok_stdin(&["put", "file", "r@master:/a"], b"a");
    let id = p.raw(&["inspect", "commit", "r@master"])[0]["commit"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = p
        .pachctl_cmd(&["put", "file", &format!("r@{id}:/b")])
        .stdin(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("finished"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = p.fails(&["put", "file", "r@master:/../x", "-f", "/etc/hostname"]);
    assert!(e.contains(".."), "{e}");
    let e = p.fails(&["get", "file", "r@master:/missing"]);
    assert!(e.contains("/missing"), "{e}");
    let e = p.fails(&["inspect", "commit", "r@0123456789abcdef0123456789abcdef"]);
    assert!(e.contains("not found"), "{e}");
    assert_eq!(
        p.raw(&["list", "commit", "r"]).len(),
        1,
        "failed writes made no commit"
    );

    let down = Pachd::start();
    let address = down.address.clone();
    drop(down);
    let out = p
        .pachctl_cmd(&["list", "repo"])
        .env("PACHD_ADDRESS", &address)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains(&address) && e.contains("pachd-address"), "{e}");
}

#[test]
fn put_from_url_many_files_and_output_formats() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "web"]);
    // A real HTTP server on loopback serves the file pachd fetches.
    let served = tempfile::tempdir().unwrap();
    std::fs::write(served.path().join("data.csv"), "a,b\n1,2\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut http = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(served.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 http.server");
    let url = format!("http://127.0.0.1:{port}/data.csv");
    let mut fetched = false;
    for _ in 0..50 {
        if p.run(&["put", "file", "web@master", "-f", &url])
            .status
            .success()
        {
            fetched = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = http.kill();
    let _ = http.wait();
    assert!(fetched, "put file from {url} failed");
    assert_eq!(p.ok(&["get", "file", "web@master:/data.csv"]), "a,b\n1,2\n");

    // Many files with read-ahead land in one commit, in order.
    let dir = tempfile::tempdir().unwrap();
    for i in 0..300 {
        std::fs::write(dir.path().join(format!("f{i:03}")), format!("{i}")).unwrap();
    }
    p.ok(&[
        "put",
        "file",
        "web@master:/many",
        "-r",
        "-p",
        "8",
        "-f",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(p.raw(&["list", "commit", "web@master"]).len(), 2);
    let listed = p.raw(&["list", "file", "web@master:/many"]);
    assert_eq!(listed.len(), 300);
    assert_eq!(p.ok(&["get", "file", "web@master:/many/f123"]), "123");

    let yaml = p.ok(&["inspect", "repo", "web", "-o", "yaml"]);
    assert!(yaml.contains("name: web"), "{yaml}");
    let json: serde_json::Value =
        serde_json::from_str(&p.ok(&["inspect", "commit", "web@master", "-o", "json"])).unwrap();
    assert_eq!(json["commit"]["repo"]["name"], "web");
    let completion = p.ok(&["completion", "bash"]);
    assert!(completion.contains("pachctl"), "bash completion script");
}

#[test]
fn subscribe_prints_commits_as_they_finish() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "s"]);
    p.ok_stdin(&["put", "file", "s@master:/1"], b"1");
    let mut sub = p
        .pachctl_cmd(&["subscribe", "commit", "s@master", "--raw"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = sub.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let first = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("existing commit");
    p.ok_stdin(&["put", "file", "s@master:/2"], b"2");
    let second = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("new commit");
    let _ = sub.kill();
    let _ = sub.wait();
    let ids: Vec<String> = [first, second]
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["commit"]["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let history: Vec<String> = p
        .raw(&["list", "commit", "s@master"])
        .iter()
        .rev()
        .map(|c| c["commit"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, history);
}

/// The field names of Pachyderm 1.9's PFS messages as its pachctl prints them
/// with `--raw` (protobuf JSON, lowerCamelCase), from 1.9's pfs.proto.
const REPO_INFO: &[&str] = &[
    "repo",
    "created",
    "sizeBytes",
    "description",
    "branches",
    "authInfo",
];
const COMMIT_INFO: &[&str] = &[
    "commit",
    "branch",
    "origin",
    "description",
    "parentCommit",
    "childCommits",
    "started",
    "finished",
    "sizeBytes",
    "provenance",
    "readyProvenance",
    "subvenance",
    "tree",
    "trees",
    "datums",
    "subvenantCommitsSuccess",
    "subvenantCommitsFailure",
    "subvenantCommitsTotal",
];
const BRANCH_INFO: &[&str] = &[
    "branch",
    "head",
    "provenance",
    "subvenance",
    "directProvenance",
    "name",
];
const FILE_INFO: &[&str] = &[
    "file",
    "fileType",
    "sizeBytes",
    "committed",
    "children",
    "objects",
    "blockRefs",
    "hash",
];

#[test]
fn raw_output_uses_pachyderm_1_9_field_names() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "in", "-d", "inputs"]);
    p.ok(&["create", "repo", "out"]);
    p.ok(&["create", "branch", "out@master", "-p", "in@master"]);
    p.ok_stdin(&["put", "file", "in@master:/dir/a.txt"], b"DATA");
    let repo = &p.raw(&["inspect", "repo", "in"])[0];
    check_field_names(
        "repo",
        repo,
        REPO_INFO,
        &["repo", "created", "sizeBytes", "description", "branches"],
    );
    // Fields at their default (an empty repo's size) are left out, as jsonpb does.
    for r in p.raw(&["list", "repo"]) {
        check_field_names("repo", &r, REPO_INFO, &["repo", "created", "branches"]);
    }
    let head = &p.raw(&["inspect", "commit", "in@master"])[0];
    check_field_names(
        "commit",
        head,
        COMMIT_INFO,
        &[
            "commit",
            "branch",
            "origin",
            "started",
            "finished",
            "sizeBytes",
            "subvenance",
        ],
    );
    assert_eq!(
        head["sizeBytes"], "4",
        "uint64 prints as a string, as jsonpb does"
    );
    assert_eq!(head["commit"]["id"].as_str().unwrap().len(), 32);
    let downstream = &p.raw(&["list", "commit", "out@master"])[0];
    check_field_names("commit", downstream, COMMIT_INFO, &["commit", "provenance"]);
    assert_eq!(downstream["origin"]["kind"], "AUTO");
    for args in [
        &["inspect", "branch", "out@master"][..],
        &["list", "branch", "out"],
    ] {
        for b in p.raw(args) {
            check_field_names(
                "branch",
                &b,
                BRANCH_INFO,
                &["branch", "head", "provenance", "directProvenance", "name"],
            );
        }
    }
    let file = &p.raw(&["inspect", "file", "in@master:/dir/a.txt"])[0];
    check_field_names(
        "file",
        file,
        FILE_INFO,
        &[
            "file",
            "fileType",
            "sizeBytes",
            "committed",
            "objects",
            "hash",
        ],
    );
    assert_eq!(
        file["objects"][0]["hash"],
        "4ba7d4149c32f5ccc6e54190beef0f503d1e637249baa9e4b123f5aa5c89506f\
         299c10a7e32ab1e4bae30ed32df848f87d9b03a640320b0ca758c5ee56cb2db4",
        "objects are named by the SHA-512 of their bytes"
    );
    for args in [
        &["list", "file", "in@master:/dir"][..],
        &["glob", "file", "in@master:/*"],
        &["inspect", "file", "in@master:/dir"],
    ] {
        for f in p.raw(args) {
            check_field_names("file", &f, FILE_INFO, &["file", "fileType", "sizeBytes"]);
        }
    }
}

#[test]
fn put_file_appends_unless_overwriting_as_in_pachyderm_1_9() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "r"]);
    p.ok_stdin(&["put", "file", "r@master:/log"], b"one\n");
    p.ok_stdin(&["put", "file", "r@master:/log"], b"two\n");
    assert_eq!(p.ok(&["get", "file", "r@master:/log"]), "one\ntwo\n");
    let pieces = &p.raw(&["inspect", "file", "r@master:/log"])[0]["objects"];
    assert_eq!(
        pieces.as_array().map(Vec::len),
        Some(2),
        "one object per put"
    );
    p.ok_stdin(&["put", "file", "r@master:/log", "--overwrite"], b"three\n");
    assert_eq!(p.ok(&["get", "file", "r@master:/log"]), "three\n");
    // Within one open commit too: each put adds a piece.
    let id = p.ok(&["start", "commit", "r@master"]).trim().to_string();
    for line in ["a\n", "b\n"] {
        p.ok_stdin(&["put", "file", &format!("r@{id}:/log")], line.as_bytes());
    }
    p.ok(&["finish", "commit", &format!("r@{id}")]);
    assert_eq!(p.ok(&["get", "file", "r@master:/log"]), "three\na\nb\n");
    // A directory put twice appends every file; -o replaces them.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x"), "x").unwrap();
    let src = dir.path().to_str().unwrap();
    p.ok(&["put", "file", "r@master:/d", "-r", "-f", src]);
    p.ok(&["put", "file", "r@master:/d", "-r", "-f", src]);
    assert_eq!(p.ok(&["get", "file", "r@master:/d/x"]), "xx");
    p.ok(&["put", "file", "r@master:/d", "-r", "-o", "-f", src]);
    assert_eq!(p.ok(&["get", "file", "r@master:/d/x"]), "x");
    // Copy appends too, unless -o.
    p.ok(&["copy", "file", "r@master:/d/x", "r@master:/log"]);
    assert_eq!(p.ok(&["get", "file", "r@master:/log"]), "three\na\nb\nx");
    p.ok(&["copy", "file", "r@master:/d/x", "r@master:/log", "-o"]);
    assert_eq!(p.ok(&["get", "file", "r@master:/log"]), "x");
    // History: each version of the file, newest first.
    let history = p.raw(&["list", "file", "r@master:/log", "--history", "all"]);
    assert!(history.len() >= 3, "{history:?}");
    // Walk-like listings: diff with names.
    let diff = p.ok(&["diff", "file", "r@master:/log", "--name-only"]);
    assert!(
        diff.lines()
            .any(|l| l.starts_with('+') && l.contains("/log"))
            && diff
                .lines()
                .any(|l| l.starts_with('-') && l.contains("/log")),
        "{diff}"
    );
}

#[test]
fn transactions_apply_their_writes_together_or_not_at_all() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "a"]);
    let started = p.ok(&["start", "transaction"]);
    let id = started
        .trim()
        .strip_prefix("Started new transaction: ")
        .unwrap_or_else(|| panic!("{started}"))
        .to_string();
    // Writes join the active transaction: answered now, applied at finish.
    let out = p.run(&["create", "repo", "b"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("Added to transaction: {id}")),
        "{out:?}"
    );
    p.ok(&["create", "branch", "a@dev"]);
    let commit = p.ok(&["start", "commit", "a@master"]).trim().to_string();
    assert_eq!(commit.len(), 32, "{commit}");
    let repos = |p: &Pachd| -> Vec<String> {
        p.raw(&["list", "repo"])
            .iter()
            .map(|r| r["repo"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(repos(&p), ["a"]);
    assert!(
        p.fails(&["inspect", "commit", &format!("a@{commit}")])
            .contains("not found")
    );
    let listed = p.raw(&["list", "transaction"]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["requests"].as_array().unwrap().len(), 3);
    assert!(
        p.ok(&["finish", "transaction"])
            .contains(&format!("Completed transaction with 3 requests: {id}"))
    );
    let mut now = repos(&p);
    now.sort();
    assert_eq!(now, ["a", "b"]);
    p.ok(&["inspect", "branch", "a@dev"]);
    // The commit got the id it was answered with.
    p.ok(&["inspect", "commit", &format!("a@{commit}")]);
    assert!(p.raw(&["list", "transaction"]).is_empty());

    // A request the transaction cannot run is refused when it joins, and
    // leaves the transaction as it was; a deleted transaction applies nothing.
    p.ok(&["start", "transaction"]);
    p.ok(&["create", "repo", "c"]);
    let err = p.fails(&["create", "repo", "c"]);
    assert!(err.contains("already exists"), "{err}");
    let listed = p.raw(&["list", "transaction"]);
    assert_eq!(listed[0]["requests"].as_array().unwrap().len(), 1);
    p.ok(&["delete", "transaction"]);
    assert_eq!(repos(&p).len(), 2);
    // Without an active transaction, writes run at once again.
    p.ok(&["create", "repo", "d"]);
    assert_eq!(repos(&p).len(), 3);
}

/// Every file below `root`, as (relative path, bytes), in path order.
fn tree_of(root: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            } else {
                let rel = e
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                out.push((rel, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn get_file_r_reproduces_a_tree_in_one_read() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "t"]);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    // Names with glob characters, a file sorting before a directory of the
    // same stem ("b.txt" < "b/"), an empty file, a file of several chunks,
    // and the same directory name elsewhere.
    for (rel, data) in [
        ("d*[x]{y}?/a", b"glob chars".to_vec()),
        ("d*[x]{y}?/b.txt", b"T".to_vec()),
        ("d*[x]{y}?/b/x", b"X".to_vec()),
        ("d*[x]{y}?/empty", Vec::new()),
        (
            "d*[x]{y}?/big",
            (0..3_000_000u32).map(|i| (i % 251) as u8).collect(),
        ),
        ("other/d*[x]{y}?/not-this", b"elsewhere".to_vec()),
        ("dz/neither", b"sibling".to_vec()),
    ] {
        let path = src.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
    }
    p.ok(&[
        "put",
        "file",
        "t@master:/",
        "-r",
        "-f",
        src.to_str().unwrap(),
    ]);
    // Appended pieces come back as one file.
    p.ok_stdin(&["put", "file", "t@master:/d*[x]{y}?/a"], b" and more");

    let out = dir.path().join("out");
    p.ok(&[
        "get",
        "file",
        "t@master:/d*[x]{y}?",
        "-r",
        "-o",
        out.to_str().unwrap(),
    ]);
    let mut want = tree_of(&src.join("d*[x]{y}?"));
    want[0].1.extend_from_slice(b" and more");
    assert_eq!(want[0].0, "a");
    assert_eq!(tree_of(&out), want);

    // get file of a glob: the matching files one after another, as in 1.9.
    assert_eq!(
        p.ok_bytes(&["get", "file", "t@master:/d*/{b.txt,a}"]),
        b"glob chars and moreT".to_vec()
    );
    assert_eq!(p.ok(&["get", "file", "t@master:/dz/*"]), "sibling");

    // The whole repo.
    let all = dir.path().join("all");
    p.ok(&[
        "get",
        "file",
        "t@master:/",
        "-r",
        "-o",
        all.to_str().unwrap(),
    ]);
    let mut want = tree_of(&src);
    let a = want.iter_mut().find(|(p, _)| p == "d*[x]{y}?/a").unwrap();
    a.1.extend_from_slice(b" and more");
    // Exactly the tree: no temporary file is left behind either.
    assert_eq!(tree_of(&all), want);
}

#[test]
fn get_file_o_writes_into_pipes_and_through_links_without_replacing_them() {
    use std::os::unix::fs::FileTypeExt;
    let p = Pachd::start();
    p.ok(&["create", "repo", "r"]);
    p.ok_stdin(&["put", "file", "r@master:/f"], b"CONTENT");
    let dir = tempfile::tempdir().unwrap();

    // A named pipe (as /dev/null or /dev/stdout would be): written into.
    let fifo = dir.path().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    p.ok(&["get", "file", "r@master:/f", "-o", fifo.to_str().unwrap()]);
    // Checked first: a replaced pipe would leave the reader waiting.
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo(),
        "the pipe was replaced by a file"
    );
    assert_eq!(reader.join().unwrap(), b"CONTENT");

    // A symbolic link: the file it points to gets the content, the link stays.
    let target = dir.path().join("target");
    std::fs::write(&target, b"old").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    p.ok(&["get", "file", "r@master:/f", "-o", link.to_str().unwrap()]);
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), b"CONTENT");

    // A directory is refused, and kept.
    let err = p.fails(&[
        "get",
        "file",
        "r@master:/f",
        "-o",
        dir.path().to_str().unwrap(),
    ]);
    assert!(err.contains("is a directory"), "{err}");
    assert!(target.exists());
}
