//! The importer against Pachyderm's own 1.7 extract (`sort.metadata`, from
//! Pachyderm's migration tests) and against damaged copies of it, on a real
//! redb store and an in-memory bucket. Pipelines are created but not run
//! here (no controller); `tests/backup.rs` runs them through the binaries.

use std::sync::Arc;

use futures::StreamExt;
use pach_meta::RedbStore;
use pach_pfs::Pfs;
use pach_pps::Pps;
use pach_storage::ContentStore;

use crate::{AdminError, restore_any};

/// Pachyderm's own 1.7 extract (see its README).
const SORT_METADATA: &[u8] = include_bytes!("../../../../tests/golden/pachyderm-1.7/sort.metadata");

struct Cluster {
    pps: Pps,
    dir: tempfile::TempDir,
}

fn cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let meta = RedbStore::open(&dir.path().join("meta.redb")).unwrap();
    let bucket = Arc::new(object_store::memory::InMemory::new());
    let content = ContentStore::new(bucket, object_store::path::Path::from(""));
    let pfs = Pfs::new(Arc::new(meta), content);
    let pps = Pps::new(pfs, dir.path().join("scratch"));
    Cluster { pps, dir }
}

/// What sort.sh writes to file `i`: the two-digit numbers ending in `i`.
fn input_file(i: u32) -> Vec<u8> {
    (0..10)
        .map(|j| format!("{j}{i}\n"))
        .collect::<String>()
        .into_bytes()
}

async fn read(pfs: &Pfs, repo: &str, reference: &str, path: &str) -> Vec<u8> {
    let (commit, _) = pfs.resolve_commit(repo, reference).await.unwrap();
    let index = pfs.content().open_index(commit.index_root()).await.unwrap();
    let entry = index
        .get(path)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{repo}@{reference}:{path} missing"));
    let mut out = Vec::new();
    let mut s = pfs.content().read_file(&entry, 0, None);
    while let Some(b) = s.next().await {
        out.extend_from_slice(&b.unwrap());
    }
    out
}

#[tokio::test]
async fn sort_metadata_restores_inputs_and_pipelines() {
    let _serial = crate::testkit::serial().await;
    let stream = SORT_METADATA.to_vec();
    let c = cluster();
    let spool = c.dir.path().join("spool");
    let summary = restore_any(&c.pps, &spool, &stream[..]).await.unwrap();
    assert_eq!(summary.objects, 154);
    let pfs = c.pps.pfs();
    let mut repos: Vec<String> = pfs
        .list_repo()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.record.name)
        .collect();
    repos.sort();
    assert_eq!(repos, ["copy", "left", "right", "sort"]);
    for repo in ["left", "right"] {
        let commits = pfs
            .list_commit(repo, None, Some("master"), 0, false)
            .await
            .unwrap();
        assert_eq!(commits.len(), 3, "{repo}");
        let head = pfs.inspect_branch(repo, "master").await.unwrap();
        assert_eq!(head.record.head.as_deref(), Some(commits[0].id.as_str()));
    }
    // Every file of every input head holds what sort.sh wrote.
    for (repo, range) in [("left", 0..5), ("right", 5..10)] {
        let head = pfs.inspect_branch(repo, "master").await.unwrap();
        let head = head.record.head.unwrap();
        let (commit, _) = pfs.resolve_commit(repo, &head).await.unwrap();
        let index = pfs.content().open_index(commit.index_root()).await.unwrap();
        let mut paths = Vec::new();
        let mut all = index.range("", None);
        while let Some(e) = all.next().await {
            paths.push(e.unwrap().path);
        }
        assert!(!paths.is_empty(), "{repo}");
        for p in paths {
            let i: u32 = p.trim_start_matches('/').parse().unwrap();
            assert!(range.contains(&i), "{repo} holds {p}");
            assert_eq!(
                read(pfs, repo, &head, &p).await,
                input_file(i),
                "{repo}:{p}"
            );
        }
    }
    let pipelines = c.pps.list_pipeline().await.unwrap();
    let names: Vec<&str> = pipelines.iter().map(|p| p.name()).collect();
    assert_eq!(names.len(), 2);
    // Restoring it again changes nothing: everything it creates exists.
    let before = state(&c.pps).await;
    restore_any(&c.pps, &spool, &stream[..]).await.unwrap();
    assert_eq!(state(&c.pps).await, before);
}

/// Everything in the cluster, for comparing before and after a refusal.
async fn state(pps: &Pps) -> Vec<(String, Vec<u8>)> {
    let meta = pps.pfs().meta();
    meta.list("", None, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|kv| (kv.key, kv.value))
        .collect()
}

#[tokio::test]
async fn damaged_copies_are_refused_and_change_nothing() {
    let _serial = crate::testkit::serial().await;
    let stream = SORT_METADATA.to_vec();
    let c = cluster();
    let spool = c.dir.path().join("spool");
    let before = state(&c.pps).await;
    // Truncated at many places: inside the objects, the tags, the last ops.
    for cut in [
        20,
        1000,
        stream.len() / 2,
        stream.len() - 300,
        stream.len() - 1,
    ] {
        let err = restore_any(&c.pps, &spool, &stream[..cut])
            .await
            .unwrap_err();
        assert!(
            matches!(err, AdminError::Truncated(_) | AdminError::Corrupt(_)),
            "cut at {cut}: {err}"
        );
        assert_eq!(state(&c.pps).await, before, "cut at {cut}");
    }
    // One byte flipped, anywhere after the stream identifier.
    for at in [
        10,
        11,
        500,
        stream.len() / 3,
        stream.len() - 100,
        stream.len() - 1,
    ] {
        let mut bad = stream.clone();
        bad[at] ^= 0x40;
        let err = restore_any(&c.pps, &spool, &bad[..]).await.unwrap_err();
        assert!(
            matches!(err, AdminError::Truncated(_) | AdminError::Corrupt(_)),
            "flip at {at}: {err}"
        );
        let text = err.to_string();
        assert!(text.contains("byte"), "flip at {at} names no place: {text}");
        assert_eq!(state(&c.pps).await, before, "flip at {at}");
    }
}

/// Every input commit with its files' bytes, for comparing two clusters.
async fn inputs(pfs: &Pfs) -> Vec<String> {
    let mut out = Vec::new();
    for repo in ["left", "right"] {
        let head = pfs
            .inspect_branch(repo, "master")
            .await
            .unwrap()
            .record
            .head;
        out.push(format!("{repo}@master -> {head:?}"));
        for c in pfs.list_commit(repo, None, None, 0, false).await.unwrap() {
            out.push(format!("{repo}@{} parent {:?}", c.id, c.parent));
            let index = pfs.content().open_index(c.index_root()).await.unwrap();
            let mut all = index.range("", None);
            while let Some(e) = all.next().await {
                let e = e.unwrap();
                let bytes = read(pfs, repo, &c.id, &e.path).await;
                out.push(format!(
                    "  {} {:?} {:?}",
                    e.path,
                    String::from_utf8(bytes),
                    e.pieces
                ));
            }
        }
    }
    out
}

/// A cluster extracted as Pachyderm 1.9 extracts (Op1_9: blocks, objects,
/// 1.9 trees, repos, commits, branches) imports into another cluster with
/// the same commit ids, history and bytes, pieces included.
#[tokio::test]
async fn an_op1_9_extract_of_this_cluster_imports_identically() {
    let _serial = crate::testkit::serial().await;
    let a = cluster();
    restore_any(&a.pps, &a.dir.path().join("spool"), SORT_METADATA)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let pfs = a.pps.pfs().clone();
    let extracting = tokio::spawn(async move { super::extract(&pfs, false, &tx).await });
    let mut writer = super::frames::OpWriter::new(Vec::new());
    let mut kinds = Vec::new();
    while let Some(op) = rx.recv().await {
        let op = op.unwrap();
        let o = op.op1_9.as_ref().unwrap();
        let kind = if o.block.is_some() {
            "block"
        } else if o.create_object.is_some() {
            "object"
        } else if o.repo.is_some() {
            "repo"
        } else if o.commit.is_some() {
            "commit"
        } else {
            "branch"
        };
        if kinds.last() != Some(&kind) {
            kinds.push(kind);
        }
        writer.write(&op).unwrap();
    }
    assert!(extracting.await.unwrap().unwrap());
    let stream = writer.finish().unwrap();
    assert!(kinds.ends_with(&["repo", "commit", "branch"]), "{kinds:?}");
    let b = cluster();
    restore_any(&b.pps, &b.dir.path().join("spool"), &stream[..])
        .await
        .unwrap();
    assert_eq!(inputs(a.pps.pfs()).await, inputs(b.pps.pfs()).await);
}
