//! Paths by which a bad input or a mistaken command used to lose data, each
//! shut and shown shut through the real binaries: two clusters on one bucket,
//! branch names that shadow commits or drop what was typed, clients writing
//! into pipelines' outputs, pipeline deletions that left dangling records,
//! checkpoints of other clusters, and a write pause that a write in flight
//! could slip past.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pach_e2e::{Pachd, bin};

/// Starts pachd expecting it to refuse: returns what it printed on stderr.
fn pachd_refuses(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin("pachd"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--address")
        .arg("127.0.0.1:0")
        .args(args)
        .env("PACHD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            assert!(!status.success(), "pachd {args:?} should have refused");
            return String::from_utf8_lossy(&out.stderr).into_owned();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "pachd {args:?} started instead of refusing: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The checkpoint an extract prints (on stderr).
fn checkpoint(p: &Pachd) -> String {
    let out = p
        .pachctl_cmd(&["extract", "--no-objects"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("checkpoint: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no checkpoint printed: {stderr}"))
        .to_string()
}

/// A cluster's id, as its checkpoints name it (`r<rev>-t<time>-c<id>`).
fn cluster_id(p: &Pachd) -> String {
    let c = checkpoint(p);
    c.split_once("-c")
        .map(|(_, id)| id.to_string())
        .unwrap_or_else(|| panic!("checkpoint {c} names no cluster"))
}

fn copy_dir(from: &Path, to: &Path) {
    assert!(
        Command::new("cp")
            .arg("-r")
            .arg(from)
            .arg(to)
            .status()
            .unwrap()
            .success()
    );
}

fn spec(p: &Pachd, name: &str, input: &str) -> String {
    let path = p.dir.path().join(format!("{name}.json"));
    std::fs::write(
        &path,
        format!(
            r#"{{"pipeline": {{"name": "{name}"}},
                "transform": {{"cmd": ["sh", "-c", "cp -r /pfs/{input}/* /pfs/out/"]}},
                "input": {{"pfs": {{"repo": "{input}", "glob": "/"}}}}}}"#
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

fn head(p: &Pachd, reference: &str) -> String {
    p.raw(&["inspect", "commit", reference])[0]["commit"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A second cluster (its own metadata) on a bucket that a first one uses
/// started fine, and its `garbage-collect --grace 0s` deleted every object
/// of the first. Now the bucket names its owner: another cluster is refused
/// at start, naming both clusters and the way out; a cluster taking the
/// bucket over explicitly makes the first one's collection refuse instead of
/// deleting what the new owner's records name. (Pachyderm 1.9 has no such
/// guard: two clusters on one bucket lose data there.)
#[test]
fn a_bucket_serves_one_cluster() {
    let bucket_dir = tempfile::tempdir().unwrap();
    let bucket = bucket_dir.path().join("bucket");
    let storage = format!("file://{}", bucket.display());
    let a = Pachd::start_with(&["--storage", &storage]);
    a.ok(&["create", "repo", "data"]);
    a.ok_stdin(&["put", "file", "data@master:/a.txt"], b"precious\n");

    // Another cluster on the same bucket is refused, naming both.
    let err = pachd_refuses(&["--storage", &storage]);
    let a_id = cluster_id(&a);
    assert!(
        err.contains(&a_id) && err.contains("--take-over-bucket") && err.contains("cluster"),
        "{err}"
    );
    let other_id = err
        .split("metadata store is cluster ")
        .nth(1)
        .and_then(|r| r.get(..32))
        .unwrap_or_else(|| panic!("the refusal names no second cluster: {err}"));
    assert_ne!(other_id, a_id);

    // A bucket from before buckets were claimed (no owner object) with
    // objects in it is not claimed by a new cluster either.
    let unclaimed = bucket_dir.path().join("unclaimed");
    copy_dir(&bucket, &unclaimed);
    std::fs::remove_file(unclaimed.join("cluster-owner")).unwrap();
    let err = pachd_refuses(&["--storage", &format!("file://{}", unclaimed.display())]);
    assert!(err.contains("--take-over-bucket"), "{err}");

    // Taken over by mistake while the first cluster still runs: the first
    // cluster's collection refuses rather than delete the new owner's data.
    let b = Pachd::start_with(&["--take-over-bucket", "--storage", &storage]);
    b.ok(&["create", "repo", "data2"]);
    b.ok_stdin(&["put", "file", "data2@master:/b.txt"], b"new owner\n");
    let err = a.fails(&["garbage-collect", "--grace", "0s"]);
    assert!(
        err.contains(&a_id) && err.contains(&cluster_id(&b)),
        "{err}"
    );
    assert_eq!(a.ok(&["get", "file", "data@master:/a.txt"]), "precious\n");
    b.ok(&["fsck"]);
}

/// The migration guide's steps 4-5 with the ownership check: a new pachd on
/// a copy of the old bucket is refused until started with
/// `--take-over-bucket`; then the restore works, and both clusters collect
/// garbage on their own buckets without touching each other's.
#[test]
fn a_migration_takes_over_the_copied_bucket() {
    let a = Pachd::start();
    a.ok(&["create", "repo", "images"]);
    a.ok_stdin(&["put", "file", "images@master:/a.txt"], b"alpha\n");
    let stream = a.dir.path().join("meta.stream");
    let out = a
        .pachctl_cmd(&["extract", "--no-objects"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(&stream, &out.stdout).unwrap();
    let copy = tempfile::tempdir().unwrap();
    let bucket = copy.path().join("bucket");
    copy_dir(&a.data_dir().join("objects"), &bucket);
    let storage = format!("file://{}", bucket.display());

    let err = pachd_refuses(&["--storage", &storage]);
    assert!(err.contains("--take-over-bucket"), "{err}");
    let b = Pachd::start_with(&["--take-over-bucket", "--storage", &storage]);
    let out = b
        .pachctl_cmd(&["restore"])
        .stdin(std::fs::File::open(&stream).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    b.ok(&["garbage-collect", "--grace", "0s"]);
    a.ok(&["garbage-collect", "--grace", "0s"]);
    assert_eq!(b.ok(&["get", "file", "images@master:/a.txt"]), "alpha\n");
    assert_eq!(a.ok(&["get", "file", "images@master:/a.txt"]), "alpha\n");
    // Restarted, the new cluster owns its bucket without the flag.
    let mut b = b;
    b.stop();
    b.args.retain(|a| a != "--take-over-bucket");
    b.launch();
    assert_eq!(b.ok(&["get", "file", "images@master:/a.txt"]), "alpha\n");
}

/// A branch named like a commit id shadowed the commit, and `delete commit
/// r1@<id>` then deleted the branch's head instead. Such names are refused,
/// and a reference of that form names the commit. (Pachyderm 1.9 reads any
/// UUID-shaped reference as a commit id, so such a branch could never be
/// reached by name there; refusing the name says so at once.)
#[test]
fn branch_names_cannot_shadow_commits() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "r1"]);
    p.ok_stdin(&["put", "file", "r1@master:/a"], b"first\n");
    let first = head(&p, "r1@master");
    p.ok_stdin(&["put", "file", "r1@master:/b"], b"second\n");
    let err = p.fails(&[
        "create",
        "branch",
        &format!("r1@{first}"),
        "--head",
        "master",
    ]);
    assert!(err.contains("commit id") && err.contains(&first), "{err}");
    let err = p.fails(&["start", "commit", &format!("r1@{}", "ab".repeat(16))]);
    assert!(err.contains("commit id"), "{err}");
    let branches: Vec<String> = p
        .raw(&["list", "branch", "r1"])
        .iter()
        .map(|b| b["branch"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(branches, ["master"]);
    p.ok(&["delete", "commit", &format!("r1@{first}")]);
    let left: Vec<String> = p
        .raw(&["list", "commit", "r1"])
        .iter()
        .map(|c| c["commit"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left.len(), 1);
    assert_ne!(left[0], first);
    assert_eq!(p.ok(&["get", "file", "r1@master:/b"]), "second\n");
}

/// `create branch r1@x:y --head master` created `x` and dropped `:y`. A path
/// where none is expected is refused, and so is a branch name with a
/// character outside Pachyderm's set (letters, digits, `_`, `-`: 1.9's
/// ancestry.ValidateName), whoever sends it.
#[test]
fn branch_names_are_taken_whole_or_refused() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "r1"]);
    p.ok_stdin(&["put", "file", "r1@master:/a"], b"a\n");
    let err = p.fails(&["create", "branch", "r1@x:y", "--head", "master"]);
    assert!(err.contains("x:y") || err.contains(":y"), "{err}");
    let err = p.fails(&["start", "commit", "r1@x:y"]);
    assert!(err.contains("path"), "{err}");
    let err = p.fails(&["create", "branch", "r1@x.y", "--head", "master"]);
    assert!(err.contains("x.y"), "{err}");
    let branches = p.raw(&["list", "branch", "r1"]);
    assert_eq!(branches.len(), 1, "{branches:?}");
    assert_eq!(p.raw(&["list", "commit", "r1"]).len(), 1);
}

/// Users could `put file` / `start commit` on a pipeline's output branch
/// (the next job then adopted the user's open commit), and `delete repo` of
/// an output repo was accepted while the pipeline stayed "running" and never
/// ran again. The output is the pipeline's: every client write to it is
/// refused naming the pipeline and `delete pipeline`, and the pipeline goes
/// on. (Pachyderm 1.9 likewise refuses starting a commit on an output
/// branch: "cannot start a commit on an output branch".) The guard comes
/// from the pipeline records, so it holds after a restore too.
#[test]
fn pipeline_outputs_belong_to_their_pipeline() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "in"]);
    p.ok_stdin(&["put", "file", "in@master:/a"], b"a\n");
    p.ok(&["create", "pipeline", "-f", &spec(&p, "copy", "in")]);
    p.ok(&["flush", "commit", "in@master"]);
    let before = p.raw(&["list", "commit", "copy"]).len();
    let output_head = head(&p, "copy@master");

    let refused = |p: &Pachd, args: &[&str]| {
        let out = p.pachctl_cmd(args).stdin(Stdio::piped()).output().unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("pipeline 'copy'") && err.contains("pachctl delete pipeline copy"),
            "{args:?}: {err}"
        );
    };
    for args in [
        &["put", "file", "copy@master:/mine"][..],
        &["start", "commit", "copy@master"],
        &["delete", "repo", "copy"],
        &["delete", "repo", "copy", "--force"],
        &["delete", "branch", "copy@master"],
        &["create", "branch", "copy@master", "--head", "master"],
        &["delete", "file", "copy@master:/a"],
        &["delete", "commit", &format!("copy@{output_head}")],
        &["copy", "file", "in@master:/a", "copy@master:/b"],
    ] {
        refused(&p, args);
    }
    let err = p.fails(&["delete", "repo", "--all"]);
    assert!(err.contains("delete pipeline --all"), "{err}");
    assert_eq!(p.raw(&["list", "repo"]).len(), 2);
    assert_eq!(p.raw(&["list", "commit", "copy"]).len(), before);

    // The pipeline goes on running on new input.
    p.ok_stdin(&["put", "file", "in@master:/b"], b"b\n");
    p.ok(&["flush", "commit", "in@master"]);
    assert_eq!(p.ok(&["get", "file", "copy@master:/b"]), "b\n");
    // Other branches of the output repo are the users'.
    p.ok(&["create", "branch", "copy@review", "--head", "master"]);

    // Restored elsewhere, the output is still the pipeline's.
    let stream = p.dir.path().join("full.stream");
    let out = p
        .pachctl_cmd(&["extract"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    std::fs::write(&stream, &out.stdout).unwrap();
    let q = Pachd::start();
    let out = q
        .pachctl_cmd(&["restore"])
        .stdin(std::fs::File::open(&stream).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success());
    refused(&q, &["put", "file", "copy@master:/mine"]);
    refused(&q, &["delete", "repo", "copy"]);

    // `delete pipeline` is the way.
    p.ok(&["delete", "pipeline", "copy"]);
    assert_eq!(p.raw(&["list", "repo"]).len(), 1);
    p.ok(&["fsck"]);
}

/// Deleting a pipeline that another one reads (`--force`) left the reader's
/// commits naming commits that were gone: `fsck` reported them and extract
/// carried them along. Now what depended on the deleted output loses that
/// provenance, every remaining record is consistent, and the result
/// extracts and restores. A branch outside the pipelines that has the
/// output in its provenance makes an unforced deletion refuse, changing
/// nothing.
#[test]
fn deleting_a_pipeline_leaves_consistent_records() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "in"]);
    p.ok_stdin(&["put", "file", "in@master:/x"], b"x\n");
    p.ok(&["create", "pipeline", "-f", &spec(&p, "first", "in")]);
    p.ok(&["create", "pipeline", "-f", &spec(&p, "second", "first")]);
    p.ok(&["flush", "commit", "in@master"]);
    assert_eq!(p.ok(&["get", "file", "second@master:/x"]), "x\n");

    p.ok(&["create", "repo", "mine"]);
    p.ok(&[
        "create",
        "branch",
        "mine@master",
        "--provenance",
        "second@master",
    ]);
    let err = p.fails(&["delete", "pipeline", "second"]);
    assert!(
        err.contains("mine@master") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(p.raw(&["list", "pipeline"]).len(), 2);
    assert_eq!(p.ok(&["get", "file", "second@master:/x"]), "x\n");
    p.ok(&["delete", "repo", "mine", "--force"]);

    let err = p.fails(&["delete", "pipeline", "first"]);
    assert!(err.contains("second"), "{err}");
    p.ok(&["delete", "pipeline", "first", "--force"]);
    let fsck = p.ok(&["fsck"]);
    assert!(fsck.contains("no problems"), "{fsck}");
    let out = p
        .pachctl_cmd(&["extract"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success());
    let q = Pachd::start();
    let restored = q
        .pachctl_cmd(&["restore"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(&out.stdout)?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let fsck = q.ok(&["fsck"]);
    assert!(fsck.contains("no problems"), "{fsck}");
    q.ok(&["verify", "--from", &p.address]);
    assert_eq!(q.ok(&["get", "file", "second@master:/x"]), "x\n");
}

/// `extract --since` a checkpoint newer than the cluster, or printed by
/// another cluster, wrote an empty stream and succeeded, so a replay
/// silently replayed nothing. Both are refused, naming the checkpoint and
/// the cluster.
#[test]
fn extract_since_refuses_checkpoints_of_other_clusters() {
    let a = Pachd::start();
    a.ok(&["create", "repo", "data"]);
    let b = Pachd::start();
    b.ok(&["create", "repo", "data"]);
    let theirs = checkpoint(&b);
    let err = a.fails(&["extract", "--since", &theirs]);
    let a_id = cluster_id(&a);
    assert!(err.contains(&theirs) && err.contains(&a_id), "{err}");

    // One from the future of this cluster (or an old-style one, without a
    // cluster id, from a busier cluster) is newer than the cluster.
    let ours = checkpoint(&a);
    let (rev, rest) = ours[1..].split_once('-').unwrap();
    let future = format!("r{}-{rest}", rev.parse::<u64>().unwrap() + 1000);
    let err = a.fails(&["extract", "--since", &future]);
    assert!(err.contains(&future) && err.contains("newer"), "{err}");
    let old_style = future.split("-c").next().unwrap();
    let err = a.fails(&["extract", "--since", old_style]);
    assert!(err.contains("newer"), "{err}");
    // The cluster's own checkpoint works.
    a.ok(&["extract", "--since", &ours]);
}

/// The write pause was a check made when a request arrived, so a `put file`
/// already streaming when `pause writes` landed committed after the pause
/// (under a garbage collection, say). The pause is now a guard inside the
/// write's metadata transaction: such a write is refused with the retryable
/// error, and the pipelines' own writes go on while writes are paused.
#[test]
fn a_write_in_flight_does_not_slip_past_a_pause() {
    let p = Pachd::start();
    p.ok(&["create", "repo", "in"]);
    p.ok_stdin(&["put", "file", "in@master:/a"], b"a\n");
    p.ok(&["create", "pipeline", "-f", &spec(&p, "copy", "in")]);
    p.ok(&["flush", "commit", "in@master"]);
    let commits = p.raw(&["list", "commit", "in"]).len();

    let mut put = p
        .pachctl_cmd(&["put", "file", "in@master:/late"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = put.stdin.take().unwrap();
    stdin.write_all(&vec![7u8; 1 << 20]).unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    p.ok(&["pause", "writes", "--reason", "collecting"]);
    stdin.write_all(&vec![8u8; 1 << 20]).unwrap();
    drop(stdin);
    let out = put.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a put in flight committed after the pause"
    );
    assert!(err.contains("paused") && err.contains("retry"), "{err}");
    assert_eq!(p.raw(&["list", "commit", "in"]).len(), commits);

    // Pipelines are not paused: a job queued before the pause finishes.
    p.ok(&["stop", "pipeline", "copy"]);
    p.ok(&["resume", "writes"]);
    p.ok_stdin(&["put", "file", "in@master:/b"], b"b\n");
    p.ok(&["pause", "writes"]);
    p.ok(&["start", "pipeline", "copy"]);
    p.ok(&["flush", "commit", "in@master"]);
    assert_eq!(p.ok(&["get", "file", "copy@master:/b"]), "b\n");
    p.ok(&["resume", "writes"]);
    p.ok_stdin(&["put", "file", "in@master:/late"], b"late\n");
}

/// `fsck --fix` repairs records that name what is gone, losing nothing:
/// a repo record lost from under its commits, a branch head naming a
/// missing commit, a dangling parent. What it cannot fix (missing objects)
/// it says, with why.
#[test]
fn fsck_fix_repairs_dangling_records_without_losing_data() {
    let mut p = Pachd::start();
    p.ok(&["create", "repo", "kept"]);
    p.ok_stdin(&["put", "file", "kept@master:/one"], b"first\n");
    p.ok_stdin(&["put", "file", "kept@master:/two"], b"second\n");
    p.ok(&["create", "repo", "lost"]);
    p.ok_stdin(&["put", "file", "lost@master:/a"], b"still here\n");
    p.ok(&["create", "branch", "kept@side", "--head", "master"]);
    p.ok_stdin(&["put", "file", "kept@side:/three"], b"third\n");
    assert!(p.ok(&["fsck"]).contains("no problems found"));
    let id = |c: &str| {
        p.raw(&["inspect", "commit", c])[0]["commit"]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (head, side_head) = (id("kept@master"), id("kept@side"));

    // Damage the metadata store as a crash or a hand edit could.
    p.stop();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use pach_meta::MetaStore;
        let store = pach_meta::RedbStore::open(&p.data_dir().join("meta.redb")).unwrap();
        let get = |key: &'static str| {
            let store = &store;
            async move {
                let kv = store.get(key).await.unwrap().unwrap();
                serde_json::from_slice::<serde_json::Value>(&kv.value).unwrap()
            }
        };
        let mut side = get("pfs/branches/kept/side").await;
        side["head"] = "0123456789abcdef0123456789abcdef".into();
        let commit = format!("pfs/commits/kept/{head}");
        let kv = store.get(&commit).await.unwrap().unwrap();
        let mut record: serde_json::Value = serde_json::from_slice(&kv.value).unwrap();
        record["parent"] = "fedcba9876543210fedcba9876543210".into();
        let txn = pach_meta::Txn::new()
            .delete("pfs/repos/lost")
            .put("pfs/branches/kept/side", serde_json::to_vec(&side).unwrap())
            .put(commit, serde_json::to_vec(&record).unwrap());
        store.commit(txn).await.unwrap().unwrap();
    });
    p.launch();

    let out = p.run(&["fsck"]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{said}");
    for needle in [
        "commit lost@",
        "repo does not exist",
        "branch kept@side: head 0123456789abcdef0123456789abcdef does not exist",
        "parent fedcba9876543210fedcba9876543210 does not exist",
        "fsck --fix",
    ] {
        assert!(said.contains(needle), "{needle:?} not in {said}");
    }

    let out = p.run(&["fsck", "--fix"]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{said}");
    assert_eq!(said.matches("fixed: ").count(), 3, "{said}");
    assert!(said.contains("made it again"), "{said}");
    assert!(
        said.contains(&format!("the head is now {side_head}, its newest commit")),
        "{said}"
    );
    assert!(p.ok(&["fsck"]).contains("no problems found"));

    // Nothing was lost: every file reads back, from every branch.
    for (file, want) in [
        ("kept@master:/one", "first\n"),
        ("kept@master:/two", "second\n"),
        ("kept@side:/two", "second\n"),
        ("kept@side:/three", "third\n"),
        ("lost@master:/a", "still here\n"),
    ] {
        assert_eq!(p.ok(&["get", "file", file]), want, "{file}");
    }
    assert!(p.ok(&["list", "repo"]).contains("lost"));

    // A missing object is reported, with why --fix cannot help.
    let packs = p.data_dir().join("objects").join("packs");
    assert!(
        packs.is_dir(),
        "small files are packed under {}",
        packs.display()
    );
    std::fs::remove_dir_all(&packs).unwrap();
    let out = p.run(&["fsck", "--fix"]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("not fixable: the bytes are gone") && said.contains("pachctl restore"),
        "{said}"
    );
    assert!(!said.contains("fixed: "), "{said}");
}
