//! Azure Blob storage: content in a real Azure Blob service (Azurite, started
//! by the tests) through `az://container/prefix`, and extract / restore
//! through `az://` URLs, with the standard `AZURE_*` variables.

use std::process::{Command, Stdio};

use pach_e2e::{Azurite, Pachd, bin};

/// Deterministic incompressible bytes, so chunks keep their size in the bucket.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn azure_blob_storage_and_az_extract_urls() {
    let azurite = Azurite::start();
    azurite.create_container("pach");
    let env = azurite.env();
    let a = Pachd::start_with_env(&["--storage", "az://pach/cluster-a"], &env);
    a.ok(&["create", "repo", "data"]);
    // Several MiB: loose chunks of ~256 KiB; the small files go into a pack.
    let big = noise(6 * 1024 * 1024 + 123, 7);
    a.ok_stdin(&["put", "file", "data@master:/big.bin"], &big);
    a.ok_stdin(&["put", "file", "data@master:/small.txt"], b"small\n");
    a.ok_stdin(&["put", "file", "data@master:/dir/nested.txt"], b"nested\n");
    assert_eq!(a.ok_bytes(&["get", "file", "data@master:/big.bin"]), big);
    assert_eq!(a.ok(&["get", "file", "data@master:/small.txt"]), "small\n");
    assert_eq!(
        a.ok(&["get", "file", "data@master:/dir/nested.txt"]),
        "nested\n"
    );
    a.ok(&["fsck"]);

    // The objects are in Azurite, under the prefix, as its own listing shows.
    let blobs = azurite.list_blobs("pach", "");
    assert!(
        blobs.iter().all(|(name, _)| name.starts_with("cluster-a/")),
        "{blobs:?}"
    );
    let under = |kind: &str| -> Vec<&(String, u64)> {
        blobs
            .iter()
            .filter(|(name, _)| name.starts_with(&format!("cluster-a/{kind}/")))
            .collect()
    };
    let chunks = under("chunks");
    assert!(chunks.len() >= 6, "{chunks:?}");
    let chunk_bytes: u64 = chunks.iter().map(|(_, size)| size).sum();
    assert!(
        chunk_bytes >= big.len() as u64,
        "{chunk_bytes} bytes of chunks hold a file of {}",
        big.len()
    );
    assert!(!under("packs").is_empty(), "{blobs:?}");
    assert!(!under("index").is_empty(), "{blobs:?}");

    // The migration guide's `extract --url` / `restore --url`, in Azure.
    a.ok(&["extract", "--url", "az://pach/backups/full.stream"]);
    let streams = azurite.list_blobs("pach", "backups/");
    assert_eq!(streams.len(), 1, "{streams:?}");
    assert_eq!(streams[0].0, "backups/full.stream");
    assert!(streams[0].1 > big.len() as u64, "{streams:?}");
    let b = Pachd::start_with_env(&[], &env); // embedded storage
    b.ok(&["restore", "--url", "az://pach/backups/full.stream"]);
    b.ok(&["verify", "--from", &a.address]);
    assert_eq!(b.ok_bytes(&["get", "file", "data@master:/big.bin"]), big);
    assert_eq!(b.ok(&["get", "file", "data@master:/small.txt"]), "small\n");
    assert_eq!(
        b.ok(&["get", "file", "data@master:/dir/nested.txt"]),
        "nested\n"
    );
    b.ok(&["fsck"]);
    // A URL that names nothing is a clear error.
    let err = b.fails(&["restore", "--url", "az://pach/backups/missing.stream"]);
    assert!(err.contains("missing.stream"), "{err}");
}

/// object_store creates no containers: writing into one that does not exist
/// says so, names it, and says how to get out.
#[test]
fn a_missing_container_is_a_clear_error() {
    let azurite = Azurite::start();
    let dir = tempfile::tempdir().unwrap();
    // pachd claims the container for its cluster before it serves: a
    // missing container stops it there, named, with the way out.
    let out = Command::new(bin("pachd"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args([
            "--address",
            "127.0.0.1:0",
            "--storage",
            "az://missing-container/x",
        ])
        .envs(azurite.env().iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .expect("run pachd");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "pachd started: {err}");
    assert!(
        err.contains("missing-container") && err.contains("does not exist"),
        "{err}"
    );
    assert!(err.contains("create it"), "{err}");
    assert!(!err.contains("is missing from the object store"), "{err}");
}
