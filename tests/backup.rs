//! extract / restore between two real pachd processes, as the migration guide
//! runs them: with objects, and with `--no-objects` over a copied bucket.

use std::path::Path;
use std::process::Stdio;

use pach_e2e::Pachd;

/// A small cluster: two repos with history, a branch, a pipeline with a job.
fn populate(p: &Pachd) {
    p.ok(&["create", "repo", "images", "--description", "raw"]);
    p.ok_stdin(&["put", "file", "images@master:/a.txt"], b"alpha\n");
    p.ok_stdin(&["put", "file", "images@master:/b.txt"], b"beta\n");
    p.ok(&["create", "branch", "images@keep", "--head", "master^"]);
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    p.ok_stdin(&["put", "file", "images@master:/big.bin"], &big);
    let spec = p.dir.path().join("upper.json");
    std::fs::write(
        &spec,
        r#"{"pipeline": {"name": "upper"}, "transform": {"cmd": ["sh", "-c", "tr a-z A-Z < $images > /pfs/out/$(basename $images)"]},
            "input": {"pfs": {"repo": "images", "glob": "/*.txt"}}}"#,
    )
    .unwrap();
    p.ok(&["create", "pipeline", "-f", spec.to_str().unwrap()]);
    p.ok(&["flush", "commit", "images@master"]);
}

/// Everything a user would compare between two clusters.
fn snapshot(p: &Pachd) -> Vec<String> {
    let mut out = Vec::new();
    for r in p.raw(&["list", "repo"]) {
        let name = r["repo"]["name"].as_str().unwrap().to_string();
        out.push(format!("repo {name} {}", r["description"]));
        for b in p.raw(&["list", "branch", &name]) {
            out.push(format!(
                "branch {name}@{} head {}",
                b["branch"]["name"], b["head"]["id"]
            ));
        }
        for c in p.raw(&["list", "commit", &name]) {
            // Pachyderm's JSON leaves empty lists out.
            let prov: Vec<String> = c["provenance"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| x["commit"]["id"].as_str().unwrap().to_string())
                .collect();
            out.push(format!(
                "commit {name}@{} parent {} prov {prov:?}",
                c["commit"]["id"], c["parentCommit"]
            ));
            let id = c["commit"]["id"].as_str().unwrap();
            for f in p.raw(&["list", "file", &format!("{name}@{id}:/")]) {
                let path = f["file"]["path"].as_str().unwrap();
                if f["fileType"] == "FILE" {
                    let bytes = p.ok_bytes(&["get", "file", &format!("{name}@{id}:{path}")]);
                    out.push(format!(
                        "file {name}@{id}:{path} {} {}",
                        bytes.len(),
                        blake(&bytes)
                    ));
                }
            }
        }
    }
    for pl in p.raw(&["list", "pipeline"]) {
        out.push(format!(
            "pipeline {} {} {}",
            pl["pipeline"]["name"], pl["transform"], pl["input"]
        ));
    }
    out
}

fn blake(b: &[u8]) -> String {
    // A cheap, dependency-free fingerprint is enough to compare bytes here.
    let mut h: u64 = 0xcbf29ce484222325;
    for x in b {
        h = (h ^ *x as u64).wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

fn extract_to(p: &Pachd, args: &[&str], file: &Path) {
    let out = p
        .pachctl_cmd(&[&["extract"], args].concat())
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(file, &out.stdout).unwrap();
}

fn restore_from(p: &Pachd, file: &Path) -> std::process::Output {
    p.pachctl_cmd(&["restore"])
        .stdin(std::fs::File::open(file).unwrap())
        .output()
        .unwrap()
}

#[test]
fn full_extract_restores_into_an_empty_cluster_identically() {
    // A directory the operator allows for file:// URLs (see below).
    let urls = tempfile::tempdir().unwrap();
    let allow = ["--allow-file-url", urls.path().to_str().unwrap()];
    let a = Pachd::start_with(&allow);
    populate(&a);
    let stream = a.dir.path().join("backup.stream");
    extract_to(&a, &[], &stream);

    let b = Pachd::start();
    let out = restore_from(&b, &stream);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(snapshot(&a), snapshot(&b));
    assert!(!b.ok(&["fsck"]).to_lowercase().contains("missing"));
    // Restoring the same stream again changes nothing.
    let again = restore_from(&b, &stream);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(snapshot(&a), snapshot(&b));
    // verify finds no difference, against the stream or the source cluster.
    let out = b
        .pachctl_cmd(&["verify"])
        .stdin(std::fs::File::open(&stream).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    b.ok(&["verify", "--from", &a.address]);
    // The restored pipeline runs on new data.
    b.ok_stdin(&["put", "file", "images@master:/c.txt"], b"gamma\n");
    b.ok(&["flush", "commit", "images@master"]);
    assert_eq!(b.ok(&["get", "file", "upper@master:/c.txt"]), "GAMMA\n");
    assert_eq!(b.ok(&["get", "file", "upper@master:/a.txt"]), "ALPHA\n");
    // Now the clusters differ, and verify says where.
    let out = b.run(&["verify", "--from", &a.address]);
    assert!(!out.status.success());
    let diffs = String::from_utf8_lossy(&out.stdout);
    assert!(diffs.contains("differs: branch 'images@master'"), "{diffs}");
    assert!(
        diffs.contains("only in this cluster: commit 'images@"),
        "{diffs}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("difference(s)"));

    // Through a URL that pachd reads and writes itself.
    let url = format!("file://{}", urls.path().join("via-url.stream").display());
    a.ok(&["extract", "--url", &url]);
    let c = Pachd::start_with(&allow);
    c.ok(&["restore", "--url", &url]);
    assert_eq!(snapshot(&a), snapshot(&c));
}

#[test]
fn no_objects_extract_restores_over_a_copied_bucket() {
    let a = Pachd::start();
    populate(&a);
    let stream = a.dir.path().join("meta.stream");
    extract_to(&a, &["--no-objects"], &stream);
    let objects = a.data_dir().join("objects");

    // Into an empty bucket it is refused, and nothing changes.
    let empty = Pachd::start();
    let out = restore_from(&empty, &stream);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing from the bucket") && err.contains("--no-objects"),
        "{err}"
    );
    assert!(empty.raw(&["list", "repo"]).is_empty());

    // With the bucket copied, as step 3 of the migration guide does.
    let copy = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(&objects)
        .arg(copy.path().join("bucket"))
        .status()
        .unwrap();
    assert!(status.success());
    let storage = format!("file://{}", copy.path().join("bucket").display());
    let b = Pachd::start_with(&["--take-over-bucket", "--storage", &storage]);
    let out = restore_from(&b, &stream);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(snapshot(&a), snapshot(&b));
}

#[test]
fn bad_streams_are_refused_before_any_change() {
    let a = Pachd::start();
    populate(&a);
    let stream = a.dir.path().join("good.stream");
    extract_to(&a, &[], &stream);
    let good = std::fs::read(&stream).unwrap();

    let b = Pachd::start();
    b.ok(&["create", "repo", "other"]);
    let before = snapshot(&b);
    let bad = |name: &str, bytes: &[u8], needle: &str| {
        let f = b.dir.path().join(name);
        std::fs::write(&f, bytes).unwrap();
        let out = restore_from(&b, &f);
        assert!(!out.status.success(), "{name} was accepted");
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(err.contains(needle), "{name}: {err}");
        assert_eq!(snapshot(&b), before, "{name} changed the cluster");
    };
    bad("truncated", &good[..good.len() - 40], "truncated");
    bad("cut-in-frame", &good[..good.len() / 2], "truncated");
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    bad("flipped", &flipped, "stream");
    let needle = br#""version":"1."#;
    let at = good
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("version in header");
    let mut newer = good.clone();
    newer[at + 11] = b'9';
    bad("newer", &newer, "newer than this pachd");
    bad("garbage", b"definitely not a stream", "stream");

    // A repo of the same name with other content is a clash.
    let c = Pachd::start();
    c.ok(&["create", "repo", "images", "--description", "mine"]);
    let before_c = snapshot(&c);
    let out = restore_from(&c, &stream);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("repo 'images' already exists"), "{err}");
    assert_eq!(snapshot(&c), before_c);

    // The good stream restores next to existing repos.
    let out = restore_from(&b, &stream);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let repos: Vec<String> = b
        .raw(&["list", "repo"])
        .iter()
        .map(|r| r["repo"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        repos.contains(&"other".to_string()) && repos.contains(&"images".to_string()),
        "{repos:?}"
    );
}

/// A fresh pachd with tests/golden/extract-VERSION.stream restored into it.
fn restored_golden(version: &str) -> Pachd {
    let golden =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("golden/extract-{version}.stream"));
    let p = Pachd::start();
    let out = restore_from(&p, &golden);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p
}

/// The ids of a repo's commits, newest first.
fn commit_ids(p: &Pachd, repo: &str) -> Vec<String> {
    p.raw(&["list", "commit", repo])
        .iter()
        .map(|c| c["commit"]["id"].as_str().unwrap().to_string())
        .collect()
}

/// Every released stream format keeps restoring: the golden streams in
/// tests/golden were written by the release that introduced their format.
#[test]
fn golden_streams_keep_restoring() {
    let p = restored_golden("1.0");
    let repo = &p.raw(&["inspect", "repo", "golden"])[0];
    assert_eq!(repo["description"], "golden stream 1.0");
    assert_eq!(
        commit_ids(&p, "golden"),
        [
            "e6c7dc1f0b2a4afcb7f95a29d901f00b",
            "563f327a22ca491084ad9fcc5ad635e9",
            "6f35bf237a39436f85c41d8e8824126e"
        ]
    );
    assert_eq!(
        p.ok(&["get", "file", "golden@master:/a.txt"]),
        "golden a, second version\n"
    );
    assert_eq!(
        p.ok(&["get", "file", "golden@master^:/a.txt"]),
        "golden a\n"
    );
    assert_eq!(
        p.ok(&["get", "file", "golden@master:/dir/b.txt"]),
        "golden b\n"
    );
    assert_eq!(
        p.ok(&["get", "file", "golden-upper@master:/a.txt"]),
        "GOLDEN A, SECOND VERSION\n"
    );
    assert_eq!(
        p.raw(&["list", "pipeline"])[0]["pipeline"]["name"],
        "golden-upper"
    );
    assert!(!p.ok(&["fsck"]).to_lowercase().contains("missing"));
}

/// The golden 1.1 stream (written by the release that introduced 1.1: auth
/// active, `robot:reader` a READER of `golden`) restores with who may do
/// what: its tokens, stored hashed, still log in; the reader reads and may
/// not write.
#[test]
fn golden_stream_1_1_keeps_its_access_control() {
    // The tokens the 1.1 cluster issued (a throwaway cluster's).
    const ADMIN: &str = "5875ae4f148f4902bef233af775f75c6";
    const READER: &str = "aeb76cceecc34a44a6ec2493d57bd02d";
    let p = restored_golden("1.1");
    let refused = p.fails(&["list", "repo"]);
    assert!(refused.to_lowercase().contains("auth"), "{refused}");
    p.ok_stdin(&["auth", "use-auth-token"], ADMIN.as_bytes());
    assert!(p.ok(&["auth", "whoami"]).contains("robot:golden-admin"));
    assert_eq!(
        p.raw(&["inspect", "repo", "golden"])[0]["description"],
        "golden stream 1.1"
    );
    assert_eq!(
        commit_ids(&p, "golden"),
        [
            "30004e6490294806b9c18f2eba075bfd",
            "491914127c6140c185c6c201b5e122f3",
            "cfe0bf14114b479292707d076e7a25a6"
        ]
    );
    assert!(
        p.ok(&["auth", "get", "golden"])
            .contains("robot:reader: READER")
    );

    p.ok_stdin(&["auth", "use-auth-token"], READER.as_bytes());
    assert_eq!(
        p.ok(&["get", "file", "golden@master:/a.txt"]),
        "golden a, second version\n"
    );
    assert_eq!(
        p.ok(&["get", "file", "golden@master:/dir/b.txt"]),
        "golden b\n"
    );
    let c = p.dir.path().join("c.txt");
    std::fs::write(&c, "c\n").unwrap();
    let denied = p.fails(&[
        "put",
        "file",
        "golden@master:/c.txt",
        "-f",
        c.to_str().unwrap(),
    ]);
    assert!(denied.contains("golden"), "{denied}");
}

#[test]
fn paused_writes_are_refused_retryably_and_resume() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "raw"]);
    p.ok_stdin(&["put", "file", "raw@master:/a"], b"a\n");
    p.ok(&["pause", "writes", "--reason", "migrating"]);
    let commits = p.raw(&["list", "commit", "raw"]).len();
    for args in [
        vec!["put", "file", "raw@master:/b"],
        vec!["create", "repo", "late"],
        vec!["start", "commit", "raw@master"],
        vec!["delete", "file", "raw@master:/a"],
    ] {
        let out = p.pachctl_cmd(&args).stdin(Stdio::piped()).output().unwrap();
        assert!(!out.status.success(), "{args:?} was accepted while paused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("paused") && err.contains("migrating") && err.contains("retry"),
            "{err}"
        );
    }
    assert_eq!(p.raw(&["list", "commit", "raw"]).len(), commits);
    assert_eq!(p.raw(&["list", "repo"]).len(), 1);
    // Reads and extracts go on while paused.
    assert_eq!(p.ok(&["get", "file", "raw@master:/a"]), "a\n");
    extract_to(&p, &["--no-objects"], &p.dir.path().join("paused.stream"));
    p.ok(&["resume", "writes"]);
    p.ok_stdin(&["put", "file", "raw@master:/b"], b"b\n");
    assert_eq!(p.raw(&["list", "commit", "raw"]).len(), commits + 1);
}

fn bucket_bytes(p: &Pachd) -> u64 {
    fn walk(d: &Path) -> u64 {
        std::fs::read_dir(d)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| match e.metadata() {
                        Ok(m) if m.is_dir() => walk(&e.path()),
                        Ok(m) => m.len(),
                        Err(_) => 0,
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(&p.data_dir().join("objects"))
}

#[test]
fn garbage_collection_returns_space_after_deletes() {
    let p = Pachd::start();
    populate(&p);
    p.ok(&["create", "repo", "doomed"]);
    // Incompressible bytes (xorshift), so that their chunks take real space.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise: Vec<u8> = (0..8_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    p.ok_stdin(&["put", "file", "doomed@master:/noise.bin"], &noise);
    let before_snapshot = snapshot(&p);

    // Nothing is garbage yet: a collection keeps everything.
    p.ok(&["garbage-collect", "--grace", "0s"]);
    assert_eq!(snapshot(&p), before_snapshot);
    // Refused while a commit is open.
    p.ok(&["start", "commit", "images@scratch"]);
    let err = p.fails(&["garbage-collect", "--grace", "0s"]);
    assert!(err.contains("open"), "{err}");
    p.ok(&["finish", "commit", "images@scratch"]);
    let full = bucket_bytes(&p);

    p.ok(&["delete", "repo", "doomed"]);
    // Within the grace period nothing goes.
    p.ok(&["garbage-collect", "--grace", "1h"]);
    assert_eq!(bucket_bytes(&p), full);

    p.ok(&["garbage-collect", "--grace", "0s"]);
    let after = bucket_bytes(&p);
    assert!(
        after + 7_500_000 < full,
        "bucket went from {full} to {after} bytes only"
    );
    // What remains is intact and writes are accepted again.
    let fsck = p.ok(&["fsck"]);
    assert!(!fsck.to_lowercase().contains("missing"), "{fsck}");
    assert_eq!(p.ok(&["get", "file", "upper@master:/a.txt"]), "ALPHA\n");
    assert_eq!(
        p.ok_bytes(&["get", "file", "images@master:/big.bin"]).len(),
        3_000_000
    );
    p.ok_stdin(&["put", "file", "images@master:/after-gc.txt"], b"ok\n");
}

#[test]
fn online_extract_is_a_consistent_snapshot() {
    let a = Pachd::start();
    populate(&a);
    // A loader keeps writing (and the pipeline keeps running) during extracts.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loader = {
        let stop = stop.clone();
        let address = a.address.clone();
        let config = a.dir.path().join("config.json");
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let ok = std::process::Command::new(pach_e2e::bin("pachctl"))
                    .args([
                        "put",
                        "file",
                        &format!("images@master:/load-{n}.txt"),
                        "-f",
                        "/etc/hostname",
                    ])
                    .env("PACHD_ADDRESS", &address)
                    .env("PACH_CONFIG", &config)
                    .status()
                    .unwrap()
                    .success();
                assert!(ok, "a loader write failed during extract");
                n += 1;
            }
            n
        })
    };
    for i in 0..3 {
        let stream = a.dir.path().join(format!("online-{i}.stream"));
        extract_to(&a, &[], &stream);
        let b = Pachd::start();
        let out = restore_from(&b, &stream);
        assert!(
            out.status.success(),
            "snapshot {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        b.ok(&["fsck"]);
        assert_eq!(b.ok(&["get", "file", "images@master:/a.txt"]), "alpha\n");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = loader.join().unwrap();
    assert!(writes > 0);
}

/// Step 6 of the migration guide in one command: after restoring a
/// `--no-objects` extract over a copy of the bucket, `extract --since` the
/// printed checkpoint brings the new cluster up to date with everything the
/// old one did meanwhile (new data, pipeline output, deletions).
#[test]
fn extract_since_a_checkpoint_replays_what_changed() {
    let a = Pachd::start();
    populate(&a);
    let out = a
        .pachctl_cmd(&["extract", "--no-objects"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success());
    let base = a.dir.path().join("base.stream");
    std::fs::write(&base, &out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let checkpoint = stderr
        .lines()
        .find_map(|l| l.strip_prefix("checkpoint: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no checkpoint printed: {stderr}"))
        .to_string();
    let copy = tempfile::tempdir().unwrap();
    let bucket = copy.path().join("bucket");
    assert!(
        std::process::Command::new("cp")
            .arg("-r")
            .arg(a.data_dir().join("objects"))
            .arg(&bucket)
            .status()
            .unwrap()
            .success()
    );
    let b = Pachd::start_with(&[
        "--take-over-bucket",
        "--storage",
        &format!("file://{}", bucket.display()),
    ]);
    assert!(restore_from(&b, &base).status.success());

    // The old cluster goes on: new data (and so pipeline output), a new
    // repo, a deleted branch.
    a.ok_stdin(&["put", "file", "images@master:/c.txt"], b"gamma\n");
    a.ok(&["flush", "commit", "images@master"]);
    a.ok(&["create", "repo", "later"]);
    a.ok_stdin(&["put", "file", "later@master:/x"], b"x\n");
    a.ok(&["delete", "branch", "images@keep"]);
    let err = b.run(&["verify", "--from", &a.address]);
    assert!(
        !err.status.success(),
        "the clusters should differ before the replay"
    );

    let inc = a.dir.path().join("since.stream");
    extract_to(&a, &["--since", &checkpoint], &inc);
    assert!(std::fs::metadata(&inc).unwrap().len() < std::fs::metadata(&base).unwrap().len() * 4);
    let out = restore_from(&b, &inc);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    b.ok(&["verify", "--from", &a.address]);
    assert_eq!(snapshot(&a), snapshot(&b));
    assert_eq!(b.ok(&["get", "file", "upper@master:/c.txt"]), "GAMMA\n");
    // A bad checkpoint is refused with the way out.
    let err = a.fails(&["extract", "--since", "yesterday"]);
    assert!(err.contains("checkpoint"), "{err}");
}

/// A store written by a newer pachd is refused with the way out; the store
/// is left as it was.
#[test]
fn pachd_refuses_stores_of_newer_formats() {
    for (major, minor, needle) in [(2, 0, "pachctl extract"), (1, 7, "newer than this pachd")] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let record = format!(r#"{{"id":"future","format_major":{major},"format_minor":{minor}}}"#);
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            use pach_meta::MetaStore;
            let store = pach_meta::RedbStore::open(&data.join("meta.redb")).unwrap();
            let txn = pach_meta::Txn::new().put("cluster/info", record.clone().into_bytes());
            store.commit(txn).await.unwrap().unwrap();
        });
        let out = std::process::Command::new(pach_e2e::bin("pachd"))
            .arg("--data-dir")
            .arg(&data)
            .args(["--address", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "pachd opened a {major}.{minor} store"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{major}.{minor}")) && err.contains(needle),
            "{err}"
        );
        rt.block_on(async {
            use pach_meta::MetaStore;
            let store = pach_meta::RedbStore::open(&data.join("meta.redb")).unwrap();
            let kv = store.get("cluster/info").await.unwrap().unwrap();
            assert_eq!(kv.value, record.as_bytes());
        });
    }
}

/// Runs `pachctl ARGS` under a pseudo-terminal (`script`), its stdin and
/// stdout redirected as given in `shell_redirects`; returns what the terminal
/// showed.
fn on_a_terminal(p: &Pachd, args: &str, shell_redirects: &str) -> String {
    let line = format!(
        "{} {args} {shell_redirects}",
        pach_e2e::bin("pachctl").display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("PACH_CONFIG", p.dir.path().join("config.json"))
        .env("PACHD_ADDRESS", &p.address)
        .output()
        .expect("script (util-linux) runs a command on a pseudo-terminal");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{shown}");
    shown
}

/// On a terminal, extract and restore show how many bytes went by.
#[test]
fn extract_and_restore_show_progress_on_a_terminal() {
    let a = Pachd::start();
    populate(&a);
    let stream = a.dir.path().join("tty.stream");
    let shown = on_a_terminal(&a, "extract", &format!("> {}", stream.display()));
    assert!(shown.contains("extracting"), "{shown}");
    assert!(shown.contains("extracted"), "{shown}");
    let b = Pachd::start();
    let shown = on_a_terminal(&b, "restore", &format!("< {}", stream.display()));
    assert!(shown.contains("restoring: sent"), "{shown}");
    assert!(shown.contains("restored"), "{shown}");
    assert_eq!(snapshot(&a), snapshot(&b));
}

/// Grows a stopped cluster's history cheaply: `count` more commits on
/// `repo@master`, each a copy of the branch head's record (same files) with
/// the previous one as parent, written straight into its metadata store in
/// one transaction.
fn grow_history(data: &Path, repo: &str, count: usize) {
    use pach_meta::MetaStore;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = pach_meta::RedbStore::open(&data.join("meta.redb")).unwrap();
        let branch_key = format!("pfs/branches/{repo}/master");
        let branch = store.get(&branch_key).await.unwrap().expect("the branch");
        let mut branch: serde_json::Value = serde_json::from_slice(&branch.value).unwrap();
        let head = branch["head"].as_str().unwrap().to_string();
        let record = store
            .get(&format!("pfs/commits/{repo}/{head}"))
            .await
            .unwrap()
            .expect("the head commit");
        let record: serde_json::Value = serde_json::from_slice(&record.value).unwrap();
        let mut txn = pach_meta::Txn::new();
        let mut parent = head;
        for i in 0..count {
            let id = format!("{:032x}", 0x00c0_ffee_0000_0000_u64 + i as u64);
            let mut c = record.clone();
            c["id"] = id.clone().into();
            c["parent"] = parent.clone().into();
            txn = txn.put(
                format!("pfs/commits/{repo}/{id}"),
                serde_json::to_vec(&c).unwrap(),
            );
            parent = id;
        }
        branch["head"] = parent.into();
        txn = txn.put(branch_key, serde_json::to_vec(&branch).unwrap());
        assert!(store.commit(txn).await.unwrap().is_some());
    });
}

#[test]
fn verify_from_another_cluster_streams_any_number_of_differences() {
    // Enough that the differences alone (about 80 bytes each) outgrow the
    // 4 MiB a gRPC message holds by default, had they been one reply.
    const COMMITS: usize = 60_000;
    let mut a = Pachd::start();
    a.ok(&["create", "repo", "history"]);
    a.ok_stdin(&["put", "file", "history@master:/f"], b"content\n");
    a.stop();
    grow_history(&a.data_dir(), "history", COMMITS);
    a.launch();
    // The grown history is a real one: pachd serves it.
    let listed = a.ok(&["list", "commit", "history@master"]);
    assert!(
        listed.lines().count() > COMMITS,
        "{} lines",
        listed.lines().count()
    );
    // A cluster compared with itself: the whole stream, no differences.
    a.ok(&["verify", "--from", &a.address]);
    // An empty cluster lacks every record of the other: each difference is
    // printed, however many there are.
    let b = Pachd::start();
    let out = b.run(&["verify", "--from", &a.address]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let missing = stdout
        .lines()
        .filter(|l| l.starts_with("only in the stream: commit 'history@"))
        .count();
    assert_eq!(
        missing,
        COMMITS + 1,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("difference(s)"), "{stderr}");
    // The same, from a stream on stdin rather than another pachd.
    let stream = a.dir.path().join("history.stream");
    extract_to(&a, &["--no-objects"], &stream);
    let out = b
        .pachctl_cmd(&["verify"])
        .stdin(std::fs::File::open(&stream).unwrap())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let from_stdin = String::from_utf8_lossy(&out.stdout);
    assert_eq!(from_stdin, stdout, "the same differences either way");
}

/// What Pachyderm's sort.sh put into input file `/i`: the two-digit numbers
/// ending in `i`, one a line (tests/golden/pachyderm-1.7/README.md).
fn sort_sh_file(i: u32) -> String {
    (0..10).map(|j| format!("{j}{i}\n")).collect()
}

/// Pachyderm's own 1.7 extract, restored with `pachctl restore` and no flag,
/// passes the assertions of Pachyderm's TestMigrateFrom1_7 (1.9.x): the
/// pipelines run again on every restored input commit, in history order,
/// with their stats branches.
#[test]
fn pachyderm_1_7_extract_restores_and_its_pipelines_run_again() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/pachyderm-1.7/sort.metadata");
    let p = Pachd::start();
    let out = restore_from(&p, &golden);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Wait for the last imported commit to be processed.
    let flushed = p.raw(&["flush", "commit", "left@master"]);
    assert!(flushed.len() >= 3, "{flushed:?}");
    // Inputs.
    assert_eq!(p.raw(&["list", "commit", "left@master"]).len(), 3);
    assert_eq!(p.raw(&["list", "commit", "right@master"]).len(), 3);
    for (repo, range) in [("left", 0..5), ("right", 5..10)] {
        let files = p.raw(&["list", "file", &format!("{repo}@master:/")]);
        assert!(!files.is_empty(), "{repo}");
        for f in files {
            let path = f["file"]["path"].as_str().unwrap();
            let i: u32 = path.trim_start_matches('/').parse().unwrap();
            assert!(range.contains(&i), "{repo} holds {path}");
            let got = p.ok(&["get", "file", &format!("{repo}@master:{path}")]);
            assert_eq!(got, sort_sh_file(i), "{repo}:{path}");
        }
    }
    // Outputs.
    let mut repos: Vec<String> = p
        .raw(&["list", "repo"])
        .iter()
        .map(|r| r["repo"]["name"].as_str().unwrap().to_string())
        .collect();
    repos.sort();
    assert_eq!(repos, ["copy", "left", "right", "sort"]);
    let nums = p.ok(&["get", "file", "sort@master:/nums"]);
    let distinct: std::collections::BTreeSet<&str> = nums.lines().collect();
    let inputs: Vec<u32> = p
        .raw(&["list", "file", "left@master:/"])
        .iter()
        .chain(p.raw(&["list", "file", "right@master:/"]).iter())
        .map(|f| f["file"]["path"].as_str().unwrap()[1..].parse().unwrap())
        .collect();
    // Every number of every input file, sorted.
    assert_eq!(distinct.len(), inputs.len() * 10, "{nums}");
    assert_eq!(inputs.len(), 10, "the inputs' heads hold all ten files");
    assert_eq!(distinct.len(), 100);
    let sorted: Vec<u32> = nums.lines().map(|l| l.parse().unwrap()).collect();
    assert!(sorted.windows(2).all(|w| w[0] <= w[1]), "{nums}");
    assert_eq!(p.raw(&["list", "commit", "sort@stats"]).len(), 6);
}

/// A truncated copy of Pachyderm's extract, and copies with one byte
/// flipped, are refused with the place named, and the cluster is unchanged.
#[test]
fn damaged_pachyderm_extracts_are_refused_and_change_nothing() {
    let golden = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/pachyderm-1.7/sort.metadata"),
    )
    .unwrap();
    let p = Pachd::start();
    p.ok(&["create", "repo", "existing"]);
    p.ok_stdin(&["put", "file", "existing@master:/f"], b"kept\n");
    let before = snapshot(&p);
    let bad = p.dir.path().join("bad.metadata");
    let mut flipped = golden.clone();
    flipped[golden.len() / 2] ^= 0x01;
    for (what, bytes) in [
        ("truncated", golden[..golden.len() - 1000].to_vec()),
        ("one byte flipped", flipped),
    ] {
        std::fs::write(&bad, &bytes).unwrap();
        let out = restore_from(&p, &bad);
        assert!(!out.status.success(), "{what} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            (err.contains("truncated") || err.contains("corrupt")) && err.contains("byte"),
            "{what}: {err}"
        );
        assert_eq!(snapshot(&p), before, "{what}");
    }
    // verify reads only this pachd's own stream, and says so.
    let out = p
        .pachctl_cmd(&["verify"])
        .stdin(
            std::fs::File::open(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/pachyderm-1.7/sort.metadata"),
            )
            .unwrap(),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Pachyderm extract"), "{err}");
}

/// `pachctl extract --format pachyderm` writes Pachyderm 1.9's format;
/// `pachctl restore` reads it back into another cluster identically: commit
/// ids, history, provenance, branches, bytes and pipelines.
#[test]
fn pachyderm_format_extract_restores_into_another_cluster() {
    let a = Pachd::start();
    populate(&a);
    let file = a.dir.path().join("pachyderm.metadata");
    extract_to(&a, &["--format", "pachyderm"], &file);
    let bytes = std::fs::read(&file).unwrap();
    assert!(
        bytes.starts_with(b"\xff\x06\x00\x00sNaPpY"),
        "not snappy-framed"
    );

    let b = Pachd::start();
    let out = restore_from(&b, &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    b.ok(&["flush", "commit", "images@master"]);
    // Everything, outputs included: their commits keep their ids and
    // provenance, and the pipeline adopts them instead of running again.
    assert_eq!(snapshot(&a), snapshot(&b));
    for f in ["a.txt", "b.txt"] {
        assert_eq!(
            a.ok(&["get", "file", &format!("upper@master:/{f}")]),
            b.ok(&["get", "file", &format!("upper@master:/{f}")])
        );
    }
    // Pachyderm's format has no checkpoints.
    let err = a.fails(&["extract", "--format", "pachyderm", "--since", "r1-t1-cx"]);
    assert!(err.contains("--since"), "{err}");
}

/// Extracts `a` in Pachyderm's format and restores it into a new cluster.
fn through_pachyderm_format(a: &Pachd) -> Pachd {
    let file = a.dir.path().join("pachyderm.metadata");
    extract_to(a, &["--format", "pachyderm"], &file);
    let b = Pachd::start();
    let out = restore_from(&b, &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    b
}

fn create_pipeline(p: &Pachd, spec: &str) {
    let file = p.dir.path().join("spec.json");
    std::fs::write(&file, spec).unwrap();
    p.ok(&["create", "pipeline", "-f", file.to_str().unwrap()]);
}

/// Pachyderm's TestExtractRestoreHeadlessBranches: a branch with no head
/// comes back.
#[test]
fn pachyderm_format_keeps_headless_branches() {
    let a = Pachd::start();
    a.ok(&["create", "repo", "data"]);
    a.ok(&["create", "branch", "data@headless"]);
    let b = through_pachyderm_format(&a);
    let branches = b.raw(&["list", "branch", "data"]);
    assert_eq!(branches.len(), 1, "{branches:?}");
    assert_eq!(branches[0]["branch"]["name"], "headless");
    assert!(branches[0]["head"].is_null(), "{branches:?}");
    assert!(!b.ok(&["fsck"]).to_lowercase().contains("missing"));
}

/// Pachyderm's TestExtractRestoreStats: after a restore, the pipeline with
/// stats has run again, and a flush of its input returns its output and
/// stats commits.
#[test]
fn pachyderm_format_restores_stats_pipelines() {
    let a = Pachd::start();
    a.ok(&["create", "repo", "data"]);
    a.ok_stdin(&["put", "file", "data@master:/file"], b"file");
    create_pipeline(
        &a,
        r#"{"pipeline": {"name": "stats"}, "enable_stats": true,
            "transform": {"cmd": ["bash"], "stdin": ["echo foo", "cp /pfs/data/* /pfs/out/"]},
            "input": {"pfs": {"repo": "data", "glob": "/*"}}}"#,
    );
    a.ok(&["flush", "commit", "data@master"]);
    let b = through_pachyderm_format(&a);
    let flushed = b.raw(&["flush", "commit", "data@master"]);
    assert_eq!(flushed.len(), 2, "{flushed:?}");
    assert_eq!(b.ok(&["get", "file", "stats@master:/file"]), "file");
    assert_eq!(b.raw(&["list", "commit", "stats@stats"]).len(), 1);
}

/// Pachyderm's TestExtractRestoreDeferredProcessing: a pipeline writing to
/// a `staging` branch, another reading its `master`, inputs moved to
/// `master` by hand; after a restore the same moves keep working.
#[test]
fn pachyderm_format_restores_deferred_processing() {
    let a = Pachd::start();
    a.ok(&["create", "repo", "data"]);
    create_pipeline(
        &a,
        r#"{"pipeline": {"name": "first"}, "output_branch": "staging",
            "transform": {"cmd": ["bash"], "stdin": ["cp /pfs/data/* /pfs/out/"]},
            "input": {"pfs": {"repo": "data", "glob": "/*"}}}"#,
    );
    create_pipeline(
        &a,
        r#"{"pipeline": {"name": "second"},
            "transform": {"cmd": ["bash"], "stdin": ["cp /pfs/first/* /pfs/out/"]},
            "input": {"pfs": {"repo": "first", "glob": "/*"}}}"#,
    );
    let step = |p: &Pachd, file: &str| {
        p.ok_stdin(&["put", "file", &format!("data@staging:/{file}")], b"file");
        p.ok(&["create", "branch", "data@master", "--head", "staging"]);
        p.ok(&["flush", "commit", "data@master"]);
        p.ok(&["create", "branch", "first@master", "--head", "staging"]);
        p.ok(&["flush", "commit", "data@master"]);
    };
    step(&a, "file");
    let b = through_pachyderm_format(&a);
    assert!(!b.ok(&["fsck"]).to_lowercase().contains("missing"));
    step(&b, "file2");
    b.ok(&["flush", "commit", "first@master"]);
    assert_eq!(b.ok(&["get", "file", "second@master:/file2"]), "file");
    assert_eq!(b.ok(&["get", "file", "second@master:/file"]), "file");
}

/// Pachyderm's 1.7 extract sent as ops over `admin.API/Restore`, one
/// message per op as python-pachyderm's `restore` sends them, gives the same
/// cluster as `pachctl restore` of the file.
#[test]
fn pachyderm_ops_over_admin_api_restore_the_same_cluster() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/pachyderm-1.7/sort.metadata");
    let by_file = Pachd::start();
    let out = restore_from(&by_file, &golden);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let by_ops = Pachd::start();
    let mut reader = pach_admin::pachyderm::frames::OpReader::new(std::io::BufReader::new(
        std::fs::File::open(&golden).unwrap(),
    ));
    let mut requests = Vec::new();
    while let Some((_, op)) = reader.next_op().unwrap() {
        requests.push(pach_api::admin::RestoreRequest {
            op: Some(op),
            url: String::new(),
        });
    }
    assert_eq!(requests.len(), 360);
    let address = format!("http://{}", by_ops.address);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let mut admin = pach_api::admin::api_client::ApiClient::connect(address)
                .await
                .unwrap();
            admin.restore(tokio_stream::iter(requests)).await.unwrap();
        });
    for p in [&by_file, &by_ops] {
        p.ok(&["flush", "commit", "left@master"]);
        p.ok(&["flush", "commit", "right@master"]);
    }
    let inputs = |p: &Pachd| -> Vec<String> {
        snapshot(p)
            .into_iter()
            .filter(|l| l.contains("left") || l.contains("right"))
            .filter(|l| !l.starts_with("commit copy") && !l.starts_with("commit sort"))
            .filter(|l| !l.starts_with("file copy") && !l.starts_with("file sort"))
            .collect()
    };
    assert_eq!(inputs(&by_file), inputs(&by_ops));
    assert_eq!(
        by_file.ok(&["get", "file", "sort@master:/nums"]),
        by_ops.ok(&["get", "file", "sort@master:/nums"])
    );
    assert_eq!(by_ops.raw(&["list", "commit", "sort@stats"]).len(), 6);

    // And through URLs pachd reads and writes: restore --url of Pachyderm's
    // file, extract --format pachyderm --url.
    let urls = tempfile::tempdir().unwrap();
    let allow = ["--allow-file-url", urls.path().to_str().unwrap()];
    std::fs::copy(&golden, urls.path().join("sort.metadata")).unwrap();
    let c = Pachd::start_with(&allow);
    let url = format!("file://{}", urls.path().join("sort.metadata").display());
    c.ok(&["restore", "--url", &url]);
    c.ok(&["flush", "commit", "left@master"]);
    assert_eq!(c.raw(&["list", "commit", "left@master"]).len(), 3);
    let out_url = format!("file://{}", urls.path().join("out.metadata").display());
    c.ok(&["extract", "--format", "pachyderm", "--url", &out_url]);
    let written = std::fs::read(urls.path().join("out.metadata")).unwrap();
    assert!(written.starts_with(b"\xff\x06\x00\x00sNaPpY"));
    let d = Pachd::start();
    let out = restore_from(&d, &urls.path().join("out.metadata"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(d.raw(&["list", "commit", "left@master"]).len(), 3);
}

/// Pachyderm's TestExtractRestorePipelineUpdate: a pipeline updated to read
/// another input; after a restore its output commits keep their ids, their
/// provenance and their origin, and it runs on new input.
#[test]
fn pachyderm_format_keeps_outputs_of_updated_pipelines() {
    let a = Pachd::start();
    a.ok(&["create", "repo", "in1"]);
    let spec = |input: &str| {
        format!(
            r#"{{"pipeline": {{"name": "out"}}, "parallelism_spec": {{"constant": 1}},
                "transform": {{"cmd": ["bash"], "stdin": ["cp /pfs/{input}/* /pfs/out/"]}},
                "input": {{"pfs": {{"repo": "{input}", "glob": "/*"}}}}}}"#
        )
    };
    create_pipeline(&a, &spec("in1"));
    a.ok_stdin(&["put", "file", "in1@master:/file"], b"file");
    a.ok(&["flush", "commit", "in1@master"]);
    a.ok(&["create", "repo", "in2"]);
    let file = a.dir.path().join("update.json");
    std::fs::write(&file, spec("in2")).unwrap();
    a.ok(&["update", "pipeline", "-f", file.to_str().unwrap()]);
    a.ok_stdin(&["put", "file", "in2@master:/file"], b"file");
    a.ok(&["flush", "commit", "in2@master"]);
    let outputs = |p: &Pachd| -> Vec<String> {
        p.raw(&["list", "commit", "out"])
            .iter()
            .map(|c| {
                let mut prov: Vec<String> = c["provenance"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| format!("{}@{}", x["commit"]["repo"]["name"], x["commit"]["id"]))
                    .collect();
                prov.sort();
                // Made by their inputs, there and here (origin AUTO).
                format!("{} {} {prov:?}", c["commit"]["id"], c["origin"]["kind"])
            })
            .collect()
    };
    let before = outputs(&a);
    assert!(before.len() >= 2, "{before:?}");
    assert!(before.iter().all(|o| o.contains("\"AUTO\"")), "{before:?}");
    let b = through_pachyderm_format(&a);
    assert_eq!(outputs(&b), before);
    // The jobs that made them, as they ended.
    let jobs = |p: &Pachd| -> Vec<String> {
        p.raw(&["list", "job"])
            .iter()
            .map(|j| {
                format!(
                    "{} {} {}",
                    j["job"]["id"], j["pipeline"]["name"], j["state"]
                )
            })
            .collect()
    };
    // (A restored pipeline starts again at version 1, as Pachyderm's
    // restore creates it, with all its jobs; `list job` shows the current
    // version's, so here every job and there only the updated pipeline's.)
    let (in_a, in_b) = (jobs(&a), jobs(&b));
    assert!(in_a.iter().all(|j| in_b.contains(j)), "{in_a:?} {in_b:?}");
    assert_eq!(in_b.len(), before.len(), "{in_b:?}");
    assert!(!b.ok(&["fsck"]).to_lowercase().contains("missing"));
    b.ok_stdin(&["put", "file", "in2@master:/more"], b"more");
    b.ok(&["flush", "commit", "in2@master"]);
    assert_eq!(b.ok(&["get", "file", "out@master:/more"]), "more");
}

/// The migration guide's procedure from a Pachyderm cluster: an extract
/// taken with `--no-objects`, and the cluster's bucket cloned in its own
/// layout (`object/<hash>` block references, `block/<name>` bytes). Here
/// both come from a pachd's Pachyderm-format extract, split the way a 1.9
/// cluster keeps them.
#[test]
fn pachyderm_no_objects_extract_restores_with_its_bucket() {
    let a = Pachd::start();
    populate(&a);
    let full = a.dir.path().join("full.metadata");
    extract_to(&a, &["--format", "pachyderm"], &full);
    let buckets = tempfile::tempdir().unwrap();
    let root = buckets.path().join("bucket/pach");
    for d in ["object", "block"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let mut reader = pach_admin::pachyderm::frames::OpReader::new(std::io::BufReader::new(
        std::fs::File::open(&full).unwrap(),
    ));
    let mut meta = pach_admin::pachyderm::frames::OpWriter::new(Vec::new());
    while let Some((_, op)) = reader.next_op().unwrap() {
        let o = op.op1_9.clone().unwrap_or_default();
        if let Some(b) = o.block {
            use std::io::Write;
            let name = b.block.unwrap().hash;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(root.join("block").join(name))
                .unwrap();
            f.write_all(&b.value).unwrap();
        } else if let Some(c) = o.create_object {
            let hash = c.object.unwrap().hash;
            let bytes = prost::Message::encode_to_vec(&c.block_ref.unwrap());
            std::fs::write(root.join("object").join(hash), bytes).unwrap();
        } else {
            meta.write(&op).unwrap();
        }
    }
    let stream = a.dir.path().join("meta.metadata");
    std::fs::write(&stream, meta.finish().unwrap()).unwrap();

    let allow = ["--allow-file-url", buckets.path().to_str().unwrap()];
    let b = Pachd::start_with(&allow);
    // Without the bucket: refused, saying what to give.
    let out = restore_from(&b, &stream);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--pachyderm-bucket"), "{err}");
    assert!(b.raw(&["list", "repo"]).is_empty());
    // With it.
    let url = format!("file://{}", root.display());
    let out = b
        .pachctl_cmd(&["restore", "--pachyderm-bucket", &url])
        .stdin(std::fs::File::open(&stream).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(snapshot(&a), snapshot(&b));
}
