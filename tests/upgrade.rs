//! A data directory written by an older pachd opens in this one: an older
//! minor metadata format is upgraded in place, and everything it held reads
//! back as it was written.
//!
//! `golden/store-1.0/` was written by the pachd of format 1.0: a repo
//! `images` with two commits (`a.txt`, then `big.txt`, 405,264 bytes, enough
//! for chunks and packs), a branch `dev` at master's head, and a pipeline
//! `count` (`wc -c` of each file) with its finished job. Never change it: add
//! a new golden store for every new format instead.

use std::path::Path;

use pach_e2e::Pachd;

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// SHA-256 of the `big.txt` the 1.0 pachd was given.
const BIG_TXT_SHA256: &str = "f673e82b8f342017c79a8d1e6c9fbf4f819f783540d739a6ebda452a2549d184";

fn sha256(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_format_1_0_store_is_upgraded_in_place() {
    let mut p = Pachd::start();
    p.stop();
    let data = p.data_dir();
    std::fs::remove_dir_all(&data).unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/store-1.0"),
        &data,
    );
    let log = p.dir.path().join("pachd.log");
    p.log = Some(log.clone());
    p.env.push(("PACHD_LOG".into(), "info".into()));
    p.launch();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("upgraded the metadata store in place from format 1.0 to 1.1")
            && text.contains("upgraded the metadata store in place from format 1.1 to 1.2"),
        "{text}"
    );

    // Everything the 1.0 pachd wrote, as it wrote it.
    let commits: Vec<String> = p
        .raw(&["list", "commit", "images"])
        .iter()
        .map(|c| c["commit"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        commits,
        [
            "9c17254a66f54c5f9579e345a0e18557",
            "09bc6e8ecf1b41649366d576858b5cb0"
        ]
    );
    let branches = p.ok(&["list", "branch", "images"]);
    assert!(branches.contains("dev"), "{branches}");
    assert_eq!(p.ok(&["get", "file", "images@dev:/a.txt"]), "hello\n");
    let big = p.ok_bytes(&["get", "file", "images@master:/big.txt"]);
    assert_eq!(big.len(), 405_264);
    assert_eq!(sha256(&big), BIG_TXT_SHA256, "big.txt changed");
    // Files 1.0 wrote are one piece whose SHA-512 was not recorded:
    // inspect computes it from the content.
    let hello = &p.raw(&["inspect", "file", "images@dev:/a.txt"])[0];
    assert_eq!(
        hello["objects"][0]["hash"],
        "e7c22b994c59d9cf2b48e549b1e24666636045930d3da7c1acb299d1c3b7f931\
         f94aae41edda2c2b207a36e10f8bcb8d45223e54878f5b316e7ce3b6bc019629",
        "the SHA-512 of hello\\n"
    );
    let jobs = p.raw(&["list", "job", "-p", "count"]);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["job"]["id"], "87f4626e54ed4a8a9c0a87a9a841b15e");
    assert_eq!(jobs[0]["state"], "JOB_SUCCESS");
    assert_eq!(
        p.ok(&["get", "file", "count@master:/a.txt.count"]),
        "6 /pfs/images/a.txt\n"
    );
    let fsck = p.ok(&["fsck"]);
    assert!(!fsck.to_lowercase().contains("missing"), "{fsck}");

    // The pipeline goes on with new data, reusing the datums 1.0 processed.
    p.ok_stdin(&["put", "file", "images@master:/c.txt"], b"abc\n");
    p.ok(&["flush", "commit", "images@master"]);
    assert_eq!(
        p.ok(&["get", "file", "count@master:/c.txt.count"]),
        "4 /pfs/images/c.txt\n"
    );
    let latest = &p.raw(&["list", "job", "-p", "count"])[0];
    assert_eq!(latest["data_skipped"], "2", "{latest}");
    assert_eq!(latest["data_processed"], "1", "{latest}");

    // The store now says 1.2, and a restart does not upgrade again.
    p.stop();
    p.launch();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("upgraded the metadata store").count(),
        2,
        "{text}"
    );
    p.stop();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let info = rt.block_on(async {
        use pach_meta::MetaStore;
        let store = pach_meta::RedbStore::open(&data.join("meta.redb")).unwrap();
        let kv = store.get("cluster/info").await.unwrap().unwrap();
        serde_json::from_slice::<serde_json::Value>(&kv.value).unwrap()
    });
    assert_eq!(info["format_major"], 1);
    assert_eq!(info["format_minor"], 2);
}
