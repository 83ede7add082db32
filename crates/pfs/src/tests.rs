//! PFS behaviour over a real redb store and an in-memory bucket.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use pach_meta::RedbStore;
use pach_storage::{Change, ContentStore};

use crate::*;

struct Fixture {
    pfs: Pfs,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(RedbStore::open(&dir.path().join("meta.redb")).unwrap());
    let store = Arc::new(object_store::memory::InMemory::new());
    let content = ContentStore::new(store, object_store::path::Path::from(""));
    Fixture {
        pfs: Pfs::new(meta, content),
        _dir: dir,
    }
}

async fn put(pfs: &Pfs, repo: &str, reference: &str, files: &[(&str, &[u8])]) -> Result<String> {
    let mut session = pfs.content().session();
    let mut changes = Vec::new();
    for (path, data) in files {
        session.begin_file(names::file_path(path)?, None);
        session.write(data).await?;
        changes.push(Change::Put(session.end_file().await?));
    }
    session.finish().await?;
    pfs.write_changes(repo, reference, changes).await
}

async fn read(pfs: &Pfs, repo: &str, reference: &str, path: &str) -> Result<Vec<u8>> {
    let chunks: Vec<bytes::Bytes> = pfs
        .get_file(repo, reference, path, 0, None)
        .await?
        .try_collect()
        .await?;
    Ok(chunks.concat())
}

async fn listing(pfs: &Pfs, repo: &str, reference: &str, path: &str) -> Vec<(String, bool, u64)> {
    let (_, s) = pfs.list_file(repo, reference, path, false).await.unwrap();
    let v: Vec<FileInfo> = s.try_collect().await.unwrap();
    v.into_iter()
        .map(|f| (f.path, f.is_dir, f.size_bytes))
        .collect()
}

#[tokio::test]
async fn put_get_list_and_ancestry() {
    let f = fixture();
    let pfs = &f.pfs;
    pfs.create_repo("images", "pics", false).await.unwrap();
    assert!(matches!(
        pfs.create_repo("images", "", false).await,
        Err(PfsError::RepoExists { .. })
    ));
    let c1 = put(
        pfs,
        "images",
        "master",
        &[("/a.txt", b"one"), ("/d/x", b"12345")],
    )
    .await
    .unwrap();
    let c2 = put(pfs, "images", "master", &[("/a.txt", b"two!")])
        .await
        .unwrap();
    assert_ne!(c1, c2);
    assert_eq!(
        read(pfs, "images", "master", "/a.txt").await.unwrap(),
        b"two!"
    );
    assert_eq!(
        read(pfs, "images", "master^", "/a.txt").await.unwrap(),
        b"one"
    );
    assert_eq!(
        read(pfs, "images", "master~1", "a.txt").await.unwrap(),
        b"one"
    );
    assert_eq!(read(pfs, "images", &c1, "/a.txt").await.unwrap(), b"one");
    assert!(matches!(
        pfs.resolve_commit("images", "master~2").await,
        Err(PfsError::CommitNotFound { .. })
    ));
    assert_eq!(
        listing(pfs, "images", "master", "/").await,
        vec![("/a.txt".into(), false, 4), ("/d".into(), true, 5)]
    );
    assert_eq!(
        listing(pfs, "images", "master", "/d").await,
        vec![("/d/x".into(), false, 5)]
    );
    assert!(matches!(
        pfs.list_file("images", "master", "/nope", false).await,
        Err(PfsError::FileNotFound { .. })
    ));
    assert!(matches!(
        read(pfs, "images", "master", "/d").await,
        Err(PfsError::IsDirectory { .. })
    ));
    let commits = pfs
        .list_commit("images", None, Some("master"), 0, false)
        .await
        .unwrap();
    assert_eq!(
        commits.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        vec![c2.clone(), c1.clone()]
    );
    assert_eq!(commits[0].size_bytes(), 9);
    let repos = pfs.list_repo().await.unwrap();
    assert_eq!(repos[0].size_bytes, 9);
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let f = fixture();
    let pfs = &f.pfs;
    assert!(matches!(
        pfs.create_repo("bad/name", "", false).await,
        Err(PfsError::InvalidName { .. })
    ));
    assert!(matches!(
        put(pfs, "missing", "master", &[("/a", b"x")]).await,
        Err(PfsError::RepoNotFound { .. })
    ));
    pfs.create_repo("r", "", false).await.unwrap();
    assert!(matches!(
        put(pfs, "r", "master", &[("/../etc", b"x")]).await,
        Err(PfsError::InvalidPath { .. })
    ));
    let c = put(pfs, "r", "master", &[("/a", b"x")]).await.unwrap();
    // A finished commit refuses writes.
    assert!(matches!(
        put(pfs, "r", &c, &[("/b", b"y")]).await,
        Err(PfsError::CommitFinished { .. })
    ));
    assert_eq!(
        pfs.list_commit("r", None, None, 0, false)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(matches!(
        pfs.inspect_branch("r", "nope").await,
        Err(PfsError::BranchNotFound { .. })
    ));
}

#[tokio::test]
async fn open_commits_stage_writes_until_finished() {
    let f = fixture();
    let pfs = &f.pfs;
    pfs.create_repo("r", "", false).await.unwrap();
    put(pfs, "r", "master", &[("/keep", b"k"), ("/old", b"o")])
        .await
        .unwrap();
    let open = pfs
        .start_commit("r", Some("master"), None, "batch")
        .await
        .unwrap();
    assert!(matches!(
        pfs.start_commit("r", Some("master"), None, "").await,
        Err(PfsError::CommitOpen { .. })
    ));
    // Writes to the branch go into the open commit.
    let id = put(pfs, "r", "master", &[("/new", b"n")]).await.unwrap();
    assert_eq!(id, open.id);
    put(pfs, "r", &open.id, &[("/new2", b"m")]).await.unwrap();
    pfs.delete_file("r", &open.id, "/old").await.unwrap();
    assert_eq!(read(pfs, "r", &open.id, "/new").await.unwrap(), b"n");
    let finished = pfs.finish_commit("r", "master", None).await.unwrap();
    assert!(finished.is_finished());
    assert_eq!(finished.file_count(), 3);
    let files: Vec<String> = listing(pfs, "r", "master", "/")
        .await
        .into_iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(files, ["/keep", "/new", "/new2"]);
    assert!(matches!(
        pfs.finish_commit("r", &open.id, None).await,
        Err(PfsError::CommitFinished { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_each_land_in_serial_commits() {
    let f = fixture();
    pfs_concurrency(&f.pfs).await;
}

async fn pfs_concurrency(pfs: &Pfs) {
    pfs.create_repo("r", "", false).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let pfs = pfs.clone();
            tokio::spawn(async move {
                let path = format!("/f{i}");
                put(
                    &pfs,
                    "r",
                    "master",
                    &[(path.as_str(), format!("{i}").as_bytes())],
                )
                .await
                .unwrap()
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let commits = pfs
        .list_commit("r", None, Some("master"), 0, false)
        .await
        .unwrap();
    assert_eq!(commits.len(), 8, "one commit per writer, chained");
    assert_eq!(
        listing(pfs, "r", "master", "/").await.len(),
        8,
        "no write lost"
    );
}

/// Repos `input` (with `/a` on master) and `output`, whose master has
/// `input@master` as provenance.
async fn input_feeding_output(pfs: &Pfs) {
    pfs.create_repo("input", "", false).await.unwrap();
    pfs.create_repo("output", "", false).await.unwrap();
    put(pfs, "input", "master", &[("/a", b"1")]).await.unwrap();
    let prov = vec![BranchName {
        repo: "input".into(),
        name: "master".into(),
    }];
    pfs.create_branch("output", "master", None, Some(prov))
        .await
        .unwrap();
}

#[tokio::test]
async fn provenance_starts_downstream_commits_and_flush_waits() {
    let f = fixture();
    let pfs = &f.pfs;
    input_feeding_output(pfs).await;
    assert!(
        pfs.create_branch(
            "input",
            "master",
            None,
            Some(vec![BranchName {
                repo: "output".into(),
                name: "master".into()
            }])
        )
        .await
        .is_err(),
        "cycle refused"
    );
    let first = pfs.inspect_commit("output", "master", false).await.unwrap();
    assert!(!first.is_finished());
    pfs.finish_commit("output", "master", None).await.unwrap();
    let c = put(pfs, "input", "master", &[("/b", b"2")]).await.unwrap();
    let out = pfs.inspect_commit("output", "master", false).await.unwrap();
    assert_eq!(out.origin, Origin::Auto);
    assert!(out.provenance.contains(&CommitName {
        repo: "input".into(),
        id: c.clone()
    }));
    let flusher = {
        let pfs = pfs.clone();
        let c = c.clone();
        tokio::spawn(async move { pfs.flush_commit(&[("input".into(), c)], &[]).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        !flusher.is_finished(),
        "flush waits for the downstream commit"
    );
    pfs.finish_commit("output", &out.id, None).await.unwrap();
    let flushed = flusher.await.unwrap().unwrap();
    assert_eq!(flushed.len(), 1);
    assert_eq!(flushed[0].id, out.id);
    // Deleting the input commit deletes what was computed from it.
    pfs.delete_commit("input", &c).await.unwrap();
    assert!(pfs.resolve_commit("output", &out.id).await.is_err());
    assert_ne!(
        pfs.inspect_branch("input", "master")
            .await
            .unwrap()
            .record
            .head,
        Some(c)
    );
    assert!(pfs.fsck().await.unwrap().problems.is_empty());
}

#[tokio::test]
async fn glob_diff_copy() {
    let f = fixture();
    let pfs = &f.pfs;
    pfs.create_repo("r", "", false).await.unwrap();
    put(
        pfs,
        "r",
        "master",
        &[
            ("/a/1.csv", b"1"),
            ("/a/2.txt", b"22"),
            ("/b/3.csv", b"333"),
        ],
    )
    .await
    .unwrap();
    let (_, g) = pfs.glob_file("r", "master", "/*/*.csv").await.unwrap();
    assert_eq!(
        g.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        ["/a/1.csv", "/b/3.csv"]
    );
    let (_, g) = pfs.glob_file("r", "master", "/*").await.unwrap();
    assert_eq!(
        g.iter()
            .map(|f| (f.path.as_str(), f.size_bytes))
            .collect::<Vec<_>>(),
        [("/a", 3), ("/b", 3)]
    );
    assert!(pfs.glob_file("r", "master", "/[").await.is_err());
    let (_, g) = pfs.glob_file("r", "master", "/**.csv").await.unwrap();
    assert_eq!(
        g.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        ["/a/1.csv", "/b/3.csv"]
    );
    let (_, g) = pfs.glob_file("r", "master", "/**").await.unwrap();
    assert_eq!(g.len(), 5, "every file and directory");
    put(
        pfs,
        "r",
        "master",
        &[("/a/1.csv", b"changed"), ("/c", b"new")],
    )
    .await
    .unwrap();
    pfs.delete_file("r", "master", "/b").await.unwrap();
    let diff = pfs
        .diff_file(("r", "master", "/"), Some(("r", "master~2", "/")), false)
        .await
        .unwrap();
    let paths = |files: &[FileInfo]| files.iter().map(|f| f.path.clone()).collect::<Vec<_>>();
    assert_eq!(paths(&diff.new_files), ["/a/1.csv", "/c"]);
    assert_eq!(paths(&diff.old_files), ["/a/1.csv", "/b/3.csv"]);
    // Shallow: the root's children that differ, directories whole.
    let diff = pfs
        .diff_file(("r", "master", "/"), Some(("r", "master~2", "/")), true)
        .await
        .unwrap();
    assert_eq!(paths(&diff.new_files), ["/a", "/c"]);
    assert_eq!(paths(&diff.old_files), ["/a", "/b"]);
    assert!(diff.new_files[0].is_dir);
    // A file against its parent's version, reported under the path as given.
    let diff = pfs
        .diff_file(("r", "master^", "a/1.csv"), None, false)
        .await
        .unwrap();
    assert_eq!(paths(&diff.new_files), ["a/1.csv"]);
    assert_eq!(paths(&diff.old_files), ["a/1.csv"]);
    pfs.create_repo("dst", "", false).await.unwrap();
    pfs.copy_file(("r", "master", "/a"), ("dst", "master", "/copied"), false)
        .await
        .unwrap();
    assert_eq!(
        read(pfs, "dst", "master", "/copied/2.txt").await.unwrap(),
        b"22"
    );
}

#[tokio::test]
async fn fsck_finds_missing_objects() {
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(RedbStore::open(&dir.path().join("meta.redb")).unwrap());
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let pfs = Pfs::new(
        meta,
        ContentStore::new(store.clone(), object_store::path::Path::from("")),
    );
    pfs.create_repo("r", "", false).await.unwrap();
    put(&pfs, "r", "master", &[("/a", b"hello")]).await.unwrap();
    assert!(pfs.fsck().await.unwrap().problems.is_empty());
    let keys: Vec<_> = store
        .list(None)
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .unwrap();
    let pack = keys
        .iter()
        .find(|k| k.as_ref().starts_with("packs/"))
        .expect("small file packed");
    store.delete(pack).await.unwrap();
    let report = pfs.fsck().await.unwrap();
    assert!(
        !report.problems.is_empty(),
        "a missing pack must be reported"
    );
}

/// A stand-in for the pipeline layer: `out` is the output repo of pipeline
/// `out`, with output branch `master`, while the record `test/pipelines/out`
/// exists.
struct TestOutputs;

impl guard::PipelineOutputs for TestOutputs {
    fn record_key(&self, repo: &str) -> String {
        format!("test/pipelines/{repo}")
    }
    fn output(&self, record: &pach_meta::KeyValue) -> Result<PipelineOutput> {
        Ok(PipelineOutput {
            pipeline: String::from_utf8_lossy(&record.value).into_owned(),
            branch: "master".into(),
        })
    }
}

#[tokio::test]
async fn pipeline_outputs_are_written_by_their_pipeline_only() {
    let f = fixture();
    let pfs = f.pfs.clone().with_pipeline_outputs(Arc::new(TestOutputs));
    let owner = pfs.for_pipeline("out");
    pfs.create_repo("in", "", false).await.unwrap();
    owner.create_repo("out", "", false).await.unwrap();
    let in_head = put(&pfs, "in", "master", &[("/a", b"a")]).await.unwrap();
    pfs.meta()
        .commit(pach_meta::Txn::new().put("test/pipelines/out", b"out".to_vec()))
        .await
        .unwrap();
    let prov = vec![BranchName {
        repo: "in".into(),
        name: "master".into(),
    }];
    owner
        .create_branch("out", "master", None, Some(prov.clone()))
        .await
        .unwrap();
    let open = owner.inspect_commit("out", "master", false).await.unwrap();
    let refused = |r: Result<()>| {
        assert!(
            matches!(&r, Err(PfsError::PipelineOutput { pipeline, .. }) if pipeline == "out"),
            "{r:?}"
        )
    };
    refused(put(&pfs, "out", "master", &[("/x", b"x")]).await.map(drop));
    refused(put(&pfs, "out", &open.id, &[("/x", b"x")]).await.map(drop));
    refused(
        pfs.start_commit("out", Some("master"), None, "")
            .await
            .map(drop),
    );
    refused(pfs.finish_commit("out", "master", None).await.map(drop));
    refused(pfs.create_branch("out", "master", None, Some(vec![])).await);
    refused(pfs.delete_branch("out", "master", true).await);
    refused(pfs.delete_repo("out", true).await);
    assert!(pfs.delete_all_repos().await.is_err());
    assert_eq!(pfs.list_repo().await.unwrap().len(), 2);
    // Another pipeline is refused too; the owner writes.
    refused(
        pfs.for_pipeline("other")
            .finish_commit("out", "master", None)
            .await
            .map(drop),
    );
    owner.finish_commit("out", "master", None).await.unwrap();
    let done = pfs.inspect_commit("out", "master", false).await.unwrap();
    refused(pfs.delete_commit("out", &done.id).await);
    // Other branches of the repo, and the input, are the clients'.
    pfs.create_branch("out", "review", Some("master"), None)
        .await
        .unwrap();
    assert_eq!(
        pfs.inspect_commit("in", "master", false).await.unwrap().id,
        in_head
    );
    // Deleting an input commit takes the output commits computed from it.
    pfs.delete_commit("in", &in_head).await.unwrap();
    assert!(pfs.fsck().await.unwrap().problems.is_empty());
    owner.delete_repo("out", true).await.unwrap();
}

#[tokio::test]
async fn a_pause_refuses_clients_but_not_pipelines() {
    let f = fixture();
    let pfs = &f.pfs;
    pfs.create_repo("r", "", false).await.unwrap();
    writes::set_writes(&**pfs.meta(), true, "test")
        .await
        .unwrap();
    let paused = |r: Result<String>| {
        assert!(
            matches!(&r, Err(e) if e.kind() == ErrorKind::Unavailable),
            "{r:?}"
        )
    };
    paused(put(pfs, "r", "master", &[("/a", b"a")]).await);
    paused(pfs.create_repo("s", "", false).await.map(|_| String::new()));
    paused(pfs.delete_repo("r", false).await.map(|_| String::new()));
    paused(
        pfs.check_writable("r", "master")
            .await
            .map(|_| String::new()),
    );
    put(&pfs.for_pipeline("p"), "r", "master", &[("/a", b"a")])
        .await
        .unwrap();
    writes::set_writes(&**pfs.meta(), false, "").await.unwrap();
    put(pfs, "r", "master", &[("/b", b"b")]).await.unwrap();
}

/// A client's write transaction compares the writes record: one prepared
/// before a pause cannot commit after it.
#[tokio::test]
async fn a_write_prepared_before_a_pause_does_not_commit_after_it() {
    let f = fixture();
    let pfs = &f.pfs;
    let txn = pfs.write_txn().await.unwrap().put("probe", b"x".to_vec());
    writes::set_writes(&**pfs.meta(), true, "").await.unwrap();
    assert_eq!(pfs.meta().commit(txn).await.unwrap(), None);
}

#[tokio::test]
async fn forced_deletions_leave_no_dangling_provenance() {
    let f = fixture();
    let pfs = &f.pfs;
    for r in ["a", "b", "c"] {
        pfs.create_repo(r, "", false).await.unwrap();
    }
    let up = |repo: &str| {
        Some(vec![BranchName {
            repo: repo.into(),
            name: "master".into(),
        }])
    };
    pfs.create_branch("b", "master", None, up("a"))
        .await
        .unwrap();
    pfs.create_branch("c", "master", None, up("b"))
        .await
        .unwrap();
    put(pfs, "a", "master", &[("/x", b"x")]).await.unwrap();
    pfs.finish_commit("b", "master", None).await.unwrap();
    pfs.finish_commit("c", "master", None).await.unwrap();
    assert!(matches!(
        pfs.delete_repo("b", false).await,
        Err(PfsError::FailedPrecondition(_))
    ));
    pfs.delete_repo("b", true).await.unwrap();
    let report = pfs.fsck().await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let c = pfs.inspect_branch("c", "master").await.unwrap();
    assert!(c.record.provenance.is_empty());
    pfs.delete_branch("a", "master", true).await.unwrap();
    assert!(pfs.fsck().await.unwrap().problems.is_empty());
}

#[tokio::test]
async fn references_of_the_form_of_a_commit_id_name_commits() {
    let f = fixture();
    let pfs = &f.pfs;
    pfs.create_repo("r", "", false).await.unwrap();
    let first = put(pfs, "r", "master", &[("/a", b"1")]).await.unwrap();
    put(pfs, "r", "master", &[("/a", b"2")]).await.unwrap();
    assert!(matches!(
        pfs.create_branch("r", &first, Some("master"), None).await,
        Err(PfsError::InvalidName { .. })
    ));
    // A branch of that name written before such names were refused does
    // not shadow the commit.
    let head = pfs.inspect_commit("r", "master", false).await.unwrap().id;
    let shadow = BranchRecord {
        repo: "r".into(),
        name: first.clone(),
        head: Some(head),
        provenance: vec![],
        created_ns: 0,
    };
    pfs.meta()
        .commit(
            pach_meta::Txn::new().put(records::branch_key("r", &first), records::encode(&shadow)),
        )
        .await
        .unwrap();
    assert_eq!(pfs.resolve_commit("r", &first).await.unwrap().0.id, first);
    assert_eq!(read(pfs, "r", &first, "/a").await.unwrap(), b"1");
}

/// An upload in parts: invisible until completed, then one file made of
/// the chosen parts in order; parts are refused once the upload is gone.
#[tokio::test]
async fn uploads_in_parts_complete_into_one_write() {
    let f = fixture();
    let pfs = &f.pfs;
    pfs.create_repo("r", "", false).await.unwrap();
    assert!(matches!(
        pfs.start_upload("r", "master", "/f", None).await,
        Err(PfsError::BranchNotFound { .. })
    ));
    pfs.create_branch("r", "master", None, None).await.unwrap();
    let upload = pfs.start_upload("r", "master", "/f", None).await.unwrap();
    let store = |data: &'static [u8]| async move {
        let mut session = pfs.content().session();
        let e = session.put_bytes("/f".into(), None, data).await.unwrap();
        session.finish().await.unwrap();
        e
    };
    let p3 = pfs
        .put_upload_part(&upload, 3, store(b"three").await, None)
        .await
        .unwrap();
    let p1 = pfs
        .put_upload_part(&upload, 1, store(b"one-").await, None)
        .await
        .unwrap();
    // A part uploaded again replaces the earlier one.
    let p1 = {
        let again = pfs
            .put_upload_part(&upload, 1, store(b"ONE-").await, None)
            .await
            .unwrap();
        assert_ne!(again.hash, p1.hash);
        again
    };
    assert!(
        pfs.put_upload_part(&upload, 0, store(b"x").await, None)
            .await
            .is_err()
    );
    let parts = pfs.upload_parts(&upload).await.unwrap();
    assert_eq!(parts.iter().map(|p| p.number).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(
        pfs.list_uploads("r").await.unwrap(),
        std::slice::from_ref(&upload)
    );
    // Nothing is visible before completion.
    assert!(pfs.branch_head("r", "master").await.unwrap().is_none());
    let (_, entry) = pfs.complete_upload(&upload, &[p1, p3]).await.unwrap();
    let done = pfs
        .completed_upload("r", &upload.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((done.path.as_str(), done.hash), ("/f", entry.hash));
    assert_eq!(entry.size, 9);
    assert_eq!(read(pfs, "r", "master", "/f").await.unwrap(), b"ONE-three");
    assert!(pfs.list_uploads("r").await.unwrap().is_empty());
    assert!(matches!(
        pfs.put_upload_part(&upload, 2, store(b"late").await, None)
            .await,
        Err(PfsError::UploadNotFound { .. })
    ));
    // Aborting removes an upload; deleting the repo removes its uploads.
    let u2 = pfs.start_upload("r", "master", "/g", None).await.unwrap();
    pfs.abort_upload("r", &u2.id).await.unwrap();
    assert_eq!(pfs.completed_upload("r", &u2.id).await.unwrap(), None);
    assert!(matches!(
        pfs.abort_upload("r", &u2.id).await,
        Err(PfsError::UploadNotFound { .. })
    ));
    let u3 = pfs.start_upload("r", "master", "/h", None).await.unwrap();
    pfs.put_upload_part(&u3, 1, store(b"h").await, None)
        .await
        .unwrap();
    pfs.delete_repo("r", false).await.unwrap();
    for prefix in [
        crate::uploads::UPLOAD_PARTS,
        crate::uploads::COMPLETED_UPLOADS,
    ] {
        assert!(pfs.meta().list(prefix, None, 10).await.unwrap().is_empty());
    }
}

/// Puts `data` at `path` through the put-file protocol with an overwrite index.
async fn put_at(
    pfs: &Pfs,
    repo: &str,
    reference: &str,
    path: &str,
    data: &[u8],
    overwrite_index: Option<u64>,
) -> Result<PutSummary> {
    let mut put = pfs.put_files(repo, reference).await?;
    put.start_file(path, overwrite_index).await?;
    put.write(data).await?;
    put.finish().await
}

async fn pieces(pfs: &Pfs, repo: &str, reference: &str, path: &str) -> Vec<Vec<u8>> {
    let chunks: Vec<bytes::Bytes> = pfs
        .get_file(repo, reference, path, 0, None)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    chunks.into_iter().map(|b| b.to_vec()).collect()
}

#[tokio::test]
async fn puts_append_and_overwrite_index_keeps_leading_pieces() {
    let f = fixture();
    let pfs = &f.pfs;
    pfs.create_repo("r", "", false).await.unwrap();
    let c = pfs
        .start_commit("r", Some("mybranch"), None, "")
        .await
        .unwrap();
    for _ in 0..5 {
        put_at(pfs, "r", &c.id, "/file.dat", b"DATA", None)
            .await
            .unwrap();
    }
    pfs.finish_commit("r", &c.id, None).await.unwrap();
    assert_eq!(
        read(pfs, "r", "mybranch", "/file.dat").await.unwrap(),
        b"DATA".repeat(5)
    );
    let c = pfs
        .start_commit("r", Some("mybranch"), None, "")
        .await
        .unwrap();
    put_at(pfs, "r", &c.id, "file.dat", b"FOO", Some(2))
        .await
        .unwrap();
    pfs.finish_commit("r", &c.id, None).await.unwrap();
    assert_eq!(
        pieces(pfs, "r", &c.id, "file.dat").await,
        [b"DATA".to_vec(), b"DATA".to_vec(), b"FOO".to_vec()]
    );
    let (_, info) = pfs.inspect_file("r", &c.id, "/file.dat").await.unwrap();
    assert_eq!(info.size_bytes, 11);
    let digests: Vec<String> = info
        .pieces
        .iter()
        .map(|p| p.sha512.clone().unwrap().to_hex())
        .collect();
    assert_eq!(digests[0], pach_storage::Sha512::of(b"DATA").to_hex());
    assert_eq!(digests[2], pach_storage::Sha512::of(b"FOO").to_hex());
    // Overwrite index 0 replaces; a one-off put on the branch is one commit.
    let done = put_at(pfs, "r", "mybranch", "/file.dat", b"new", Some(0))
        .await
        .unwrap();
    assert_eq!(done.files, 1);
    assert_eq!(
        read(pfs, "r", "mybranch", "/file.dat").await.unwrap(),
        b"new"
    );
    // A finished commit named by id is refused before any content is read.
    assert!(matches!(
        pfs.put_files("r", &c.id).await,
        Err(PfsError::CommitFinished { .. })
    ));
    // Content before a file is refused; an empty call puts nothing.
    let mut put = pfs.put_files("r", "mybranch").await.unwrap();
    assert!(matches!(
        put.write(b"x").await,
        Err(PfsError::InvalidArgument(_))
    ));
    let empty = pfs.put_files("r", "mybranch").await.unwrap();
    assert_eq!(empty.finish().await.unwrap().commit, None);
}

#[tokio::test]
async fn legacy_entries_get_their_digest_computed_on_inspect() {
    let f = fixture();
    let pfs = &f.pfs;
    pfs.create_repo("r", "", false).await.unwrap();
    let mut session = pfs.content().session();
    let mut entry = session
        .put_bytes("/old".into(), None, b"DATA")
        .await
        .unwrap();
    session.finish().await.unwrap();
    // As written by a release that did not record pieces.
    entry.pieces.clear();
    pfs.write_changes("r", "master", vec![Change::Put(entry)])
        .await
        .unwrap();
    let (_, info) = pfs.inspect_file("r", "master", "/old").await.unwrap();
    assert_eq!(
        info.pieces,
        [pach_storage::Piece {
            len: 4,
            sha512: Some(pach_storage::Sha512::of(b"DATA"))
        }]
    );
    // Listings report what is recorded, unknown included, without reading content.
    let (_, listed) = pfs.list_file("r", "master", "/", false).await.unwrap();
    let listed: Vec<FileInfo> = listed.try_collect().await.unwrap();
    assert_eq!(listed[0].pieces[0].sha512, None);
}

#[tokio::test]
async fn branches_list_newest_first_and_commits_by_range() {
    let f = fixture();
    let pfs = &f.pfs;
    pfs.create_repo("r", "", false).await.unwrap();
    let c1 = put(pfs, "r", "master", &[("/a", b"1")]).await.unwrap();
    let c2 = put(pfs, "r", "master", &[("/a", b"2")]).await.unwrap();
    let c3 = put(pfs, "r", "develop", &[("/b", b"3")]).await.unwrap();
    let names: Vec<String> = pfs
        .list_branch("r")
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.record.name)
        .collect();
    assert_eq!(names, ["develop", "master"]);
    let ids = |v: Vec<CommitRecord>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(
        ids(pfs.list_commit("r", None, None, 0, false).await.unwrap()),
        [c3.clone(), c2.clone(), c1.clone()]
    );
    assert_eq!(
        ids(pfs.list_commit("r", None, None, 2, true).await.unwrap()),
        [c1.clone(), c2.clone()]
    );
    assert_eq!(
        ids(pfs
            .list_commit("r", Some(&c1), Some("master"), 0, false)
            .await
            .unwrap()),
        std::slice::from_ref(&c2)
    );
    assert!(
        pfs.list_commit("r", Some(&c1), None, 0, false)
            .await
            .is_err()
    );
    assert!(
        pfs.list_commit("r", None, Some("master"), 0, true)
            .await
            .is_err()
    );
    pfs.create_branch("r", "empty", None, None).await.unwrap();
    assert!(
        pfs.list_commit("r", None, Some("empty"), 0, false)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        pfs.inspect_commit("r", "empty", false).await,
        Err(PfsError::NoHead { .. })
    ));
}

#[tokio::test]
async fn subscribe_yields_commits_as_they_start() {
    let f = fixture();
    let pfs = &f.pfs;
    pfs.create_repo("r", "", false).await.unwrap();
    let first = put(pfs, "r", "master", &[("/a", b"1")]).await.unwrap();
    let mut all = pfs
        .subscribe_commit("r", "master", None, CommitState::Started)
        .await
        .unwrap();
    let mut after = pfs
        .subscribe_commit("r", "master", Some(&first), CommitState::Started)
        .await
        .unwrap();
    let mut finished = pfs
        .subscribe_commit("r", "master", Some(&first), CommitState::Finished)
        .await
        .unwrap();
    assert_eq!(all.try_next().await.unwrap().unwrap().id, first);
    let open = pfs
        .start_commit("r", Some("master"), None, "")
        .await
        .unwrap();
    assert_eq!(all.try_next().await.unwrap().unwrap().id, open.id);
    assert_eq!(after.try_next().await.unwrap().unwrap().id, open.id);
    pfs.finish_commit("r", &open.id, None).await.unwrap();
    let done = finished.try_next().await.unwrap().unwrap();
    assert_eq!(done.id, open.id);
    assert!(done.is_finished());
}

#[tokio::test]
async fn walk_history_copy_and_empty_finish() {
    let f = fixture();
    let pfs = &f.pfs;
    pfs.create_repo("r", "", false).await.unwrap();
    put(
        pfs,
        "r",
        "master",
        &[
            ("/file1.dat", b"DATA"),
            ("/a/file2.dat", b"DATA"),
            ("/a/b/file3.dat", b"DATA"),
            ("/a/b.txt", b"x"),
        ],
    )
    .await
    .unwrap();
    let (_, walked) = pfs.walk_file("r", "master", "/a").await.unwrap();
    let paths: Vec<&str> = walked.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/a", "/a/b", "/a/b.txt", "/a/b/file3.dat", "/a/file2.dat"]
    );
    assert_eq!(walked[0].size_bytes, 9);
    let (_, root) = pfs.walk_file("r", "master", "/").await.unwrap();
    assert_eq!(root[0].path, "/");

    put_at(pfs, "r", "master", "/file1.dat", b"MORE", None)
        .await
        .unwrap();
    put(pfs, "r", "master", &[("/other", b"o")]).await.unwrap();
    let history = pfs
        .list_file_history("r", "master", "/file1.dat", -1)
        .await
        .unwrap();
    let sizes: Vec<u64> = history.iter().map(|(_, f)| f.size_bytes).collect();
    assert_eq!(sizes, [8, 4], "one version per change of content");

    // Copy appends to the destination unless overwriting.
    pfs.copy_file(
        ("r", "master", "/file1.dat"),
        ("r", "master", "/a/file2.dat"),
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        read(pfs, "r", "master", "/a/file2.dat").await.unwrap(),
        b"DATADATAMORE"
    );
    pfs.copy_file(
        ("r", "master", "/other"),
        ("r", "master", "/a/file2.dat"),
        true,
    )
    .await
    .unwrap();
    assert_eq!(
        read(pfs, "r", "master", "/a/file2.dat").await.unwrap(),
        b"o"
    );

    let c = pfs
        .start_commit("r", Some("master"), None, "")
        .await
        .unwrap();
    put_at(pfs, "r", &c.id, "/dropped", b"x", None)
        .await
        .unwrap();
    let done = pfs
        .finish_commit_with("r", &c.id, None, true)
        .await
        .unwrap();
    assert_eq!(done.file_count(), 0, "an empty finish keeps no files");
}

#[tokio::test]
async fn delete_file_takes_globs_and_missing_paths() {
    let f = fixture();
    let pfs = &f.pfs;
    pfs.create_repo("r", "", false).await.unwrap();
    put(
        pfs,
        "r",
        "master",
        &[
            ("/a.csv", b"1"),
            ("/b.csv", b"2"),
            ("/d/c.csv", b"3"),
            ("/k", b"4"),
        ],
    )
    .await
    .unwrap();
    pfs.delete_file("r", "master", "/*.csv").await.unwrap();
    assert_eq!(
        listing(pfs, "r", "master", "/").await,
        vec![("/d".into(), true, 1), ("/k".into(), false, 1)]
    );
    // Nothing there: no error, nothing changes but a new commit.
    let c = pfs.start_commit("r", None, None, "").await.unwrap();
    pfs.delete_file("r", &c.id, "/missing").await.unwrap();
    pfs.delete_file("r", "master", "/").await.unwrap();
    assert!(listing(pfs, "r", "master", "/").await.is_empty());
}

#[tokio::test]
async fn flush_waits_for_commits_with_every_given_commit_in_provenance() {
    let f = fixture();
    let pfs = &f.pfs;
    for r in ["in1", "in2", "out"] {
        pfs.create_repo(r, "", false).await.unwrap();
    }
    let in1 = put(pfs, "in1", "master", &[("/a", b"1")]).await.unwrap();
    let in2 = put(pfs, "in2", "master", &[("/a", b"2")]).await.unwrap();
    pfs.create_branch(
        "out",
        "master",
        None,
        Some(vec![
            BranchName {
                repo: "in1".into(),
                name: "master".into(),
            },
            BranchName {
                repo: "in2".into(),
                name: "master".into(),
            },
        ]),
    )
    .await
    .unwrap();
    let out = pfs.inspect_commit("out", "master", false).await.unwrap();
    assert!(!out.is_finished());
    let waiter = {
        let pfs = pfs.clone();
        let (in1, in2) = (in1.clone(), in2.clone());
        tokio::spawn(async move {
            pfs.flush_commit(&[("in1".into(), in1), ("in2".into(), in2)], &[])
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!waiter.is_finished());
    pfs.finish_commit("out", &out.id, None).await.unwrap();
    let flushed = waiter.await.unwrap();
    assert_eq!(flushed.len(), 1);
    assert_eq!(flushed[0].id, out.id);
    // A commit no downstream commit has in its provenance flushes at once.
    let lone = put(pfs, "in1", "other", &[("/x", b"x")]).await.unwrap();
    assert!(
        pfs.flush_commit(&[("in1".into(), lone)], &[])
            .await
            .unwrap()
            .is_empty()
    );
}

type Opened = (
    std::sync::Arc<dyn object_store::ObjectStore>,
    object_store::path::Path,
);

fn to((store, object): &Opened) -> (&dyn object_store::ObjectStore, &object_store::path::Path) {
    (&**store, object)
}

#[tokio::test]
async fn puts_from_urls_one_object_or_every_object_under_a_prefix() {
    let f = fixture();
    let pfs = &f.pfs;
    pfs.create_repo("r", "", false).await.unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("tree/sub")).unwrap();
    std::fs::write(src.path().join("tree/a.txt"), b"A").unwrap();
    std::fs::write(src.path().join("tree/sub/b.txt"), b"B").unwrap();
    let url = |rel: &str| format!("file://{}/{rel}", src.path().display());
    let policy = pach_storage::UrlPolicy::clients(vec![src.path().to_path_buf()], vec![], "");
    let open = |u: &str| pach_storage::open_url(u, &policy).unwrap();
    let mut put = pfs.put_files("r", "master").await.unwrap();
    put.put_url(
        "/one",
        &url("tree/a.txt"),
        to(&open(&url("tree/a.txt"))),
        false,
        None,
    )
    .await
    .unwrap();
    put.put_url("/copy", &url("tree"), to(&open(&url("tree"))), true, None)
        .await
        .unwrap();
    let done = put.finish().await.unwrap();
    assert_eq!(done.files, 3);
    assert_eq!(read(pfs, "r", "master", "/one").await.unwrap(), b"A");
    assert_eq!(read(pfs, "r", "master", "/copy/a.txt").await.unwrap(), b"A");
    assert_eq!(
        read(pfs, "r", "master", "/copy/sub/b.txt").await.unwrap(),
        b"B"
    );
    // A URL that cannot be read fails the call and writes nothing.
    let mut put = pfs.put_files("r", "master").await.unwrap();
    let err = put
        .put_url(
            "/x",
            &url("tree/missing"),
            to(&open(&url("tree/missing"))),
            false,
            None,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    assert_eq!(
        pfs.list_commit("r", None, None, 0, false)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn get_file_of_a_glob_reads_the_matching_files_in_path_order() {
    let f = fixture();
    let pfs = &f.pfs;
    pfs.create_repo("r", "", false).await.unwrap();
    put(
        pfs,
        "r",
        "master",
        &[
            ("/d/b/x", b"X"),
            ("/d/b.txt", b"T"),
            ("/d/a*", b"star"),
            ("/e/1", b"E"),
        ],
    )
    .await
    .unwrap();
    // '.' sorts before '/', so "/d/b.txt" comes before "/d/b/x".
    assert_eq!(read(pfs, "r", "master", "/d/**").await.unwrap(), b"starTX");
    assert_eq!(read(pfs, "r", "master", "/*/*").await.unwrap(), b"starTE");
    // A path that names a file is that file, glob characters or not; an
    // escaped pattern matches the name only.
    assert_eq!(read(pfs, "r", "master", "/d/a*").await.unwrap(), b"star");
    assert_eq!(read(pfs, "r", "master", "/d/a\\*").await.unwrap(), b"star");
    // The range applies to the concatenation.
    let part: Vec<bytes::Bytes> = pfs
        .get_file("r", "master", "/d/**", 3, Some(2))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(part.concat(), b"rT");
    let err = read(pfs, "r", "master", "/nothing/*").await.unwrap_err();
    assert!(matches!(err, PfsError::FileNotFound { .. }), "{err}");
}

/// A commit written only while the branch's head is the one read: of two
/// writers that read the same head, one commits and the other is told.
#[tokio::test]
async fn write_commit_after_compares_the_head() {
    let f = fixture();
    let pfs = &f.pfs;
    pfs.create_repo("src", "", false).await.unwrap();
    let mut session = pfs.content().session();
    session.begin_file("/a".into(), None);
    session.write(b"one").await.unwrap();
    let entry = session.end_file().await.unwrap();
    session.finish().await.unwrap();
    let changes = vec![Change::Delete("/".into()), Change::Put(entry)];
    let first = pfs
        .write_commit_after("src", "master", None, changes.clone(), "git commit 1")
        .await
        .unwrap()
        .expect("the branch had no head");
    let c = pfs.inspect_commit("src", &first, false).await.unwrap();
    assert_eq!(c.description, "git commit 1");
    assert!(c.is_finished());
    assert_eq!(read(pfs, "src", "master", "/a").await.unwrap(), b"one");
    // A second writer that read no head: nothing written.
    assert_eq!(
        pfs.write_commit_after("src", "master", None, changes.clone(), "x")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        pfs.list_commit("src", None, None, 0, false)
            .await
            .unwrap()
            .len(),
        1
    );
    // After the head it read: a child of it.
    let second = pfs
        .write_commit_after(
            "src",
            "master",
            Some(&first),
            changes.clone(),
            "git commit 2",
        )
        .await
        .unwrap()
        .unwrap();
    let c = pfs.inspect_commit("src", &second, false).await.unwrap();
    assert_eq!(c.parent.as_deref(), Some(first.as_str()));
    // An open commit at the head is refused, naming it.
    let open = pfs
        .start_commit("src", Some("master"), None, "")
        .await
        .unwrap();
    let err = pfs
        .write_commit_after("src", "master", Some(&open.id), changes, "y")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("open commit"), "{err}");
}

/// Stores `files` and returns their changes (appended to their paths).
async fn appends(pfs: &Pfs, files: &[(&str, &[u8])]) -> Vec<Change> {
    let mut session = pfs.content().session();
    let mut changes = Vec::new();
    for (path, data) in files {
        let entry = session
            .put_bytes((*path).to_string(), None, data)
            .await
            .unwrap();
        changes.push(Change::Append(entry));
    }
    session.finish().await.unwrap();
    changes
}

#[tokio::test]
async fn write_commits_makes_a_commit_per_set_in_one_transaction() {
    let f = fixture();
    let pfs = &f.pfs;
    pfs.create_repo("out", "", false).await.unwrap();
    let first = put(pfs, "out", "master", &[("/log", b"a")]).await.unwrap();
    let sets = vec![
        appends(pfs, &[("/log", b"b")]).await,
        appends(pfs, &[("/log", b"c"), ("/m/1", b"x")]).await,
        appends(pfs, &[("/log", b"d")]).await,
    ];
    let before = pfs.meta().revision().await.unwrap();
    let ids = pfs.write_commits("out", "master", sets).await.unwrap();
    assert_eq!(pfs.meta().revision().await.unwrap(), before + 1);
    assert_eq!(ids.len(), 3);
    // Each set is its own finished commit, the parent of the next.
    let mut parent = first;
    for (id, log) in ids.iter().zip(["ab", "abc", "abcd"]) {
        let c = pfs.inspect_commit("out", id, false).await.unwrap();
        assert!(c.is_finished());
        assert_eq!(c.parent.as_deref(), Some(parent.as_str()));
        assert_eq!(read(pfs, "out", id, "/log").await.unwrap(), log.as_bytes());
        parent = id.clone();
    }
    assert!(read(pfs, "out", &ids[0], "/m/1").await.is_err());
    assert_eq!(read(pfs, "out", "master", "/m/1").await.unwrap(), b"x");
    assert_eq!(
        pfs.inspect_commit("out", "master", false).await.unwrap().id,
        ids[2]
    );
}

#[tokio::test]
async fn write_commits_on_a_branch_others_depend_on_gives_each_commit_its_downstream() {
    let f = fixture();
    let pfs = &f.pfs;
    input_feeding_output(pfs).await;
    pfs.finish_commit("output", "master", None).await.unwrap();
    let sets = vec![
        appends(pfs, &[("/b", b"2")]).await,
        appends(pfs, &[("/c", b"3")]).await,
    ];
    let ids = pfs.write_commits("input", "master", sets).await.unwrap();
    // Every input commit has an output commit of its own.
    let outputs = pfs
        .list_commit("output", None, None, 0, false)
        .await
        .unwrap();
    for id in &ids {
        assert!(
            outputs.iter().any(|o| o.provenance.contains(&CommitName {
                repo: "input".into(),
                id: id.clone()
            })),
            "no output commit for {id}"
        );
    }
}

/// A plan that writes `path` only while it is absent (S3's
/// `If-None-Match: *`): `true` when it wrote.
async fn put_if_absent(pfs: &Pfs, reference: &str, path: &str, data: &[u8]) -> Result<bool> {
    let mut session = pfs.content().session();
    session.begin_file(path.to_string(), None);
    session.write(data).await?;
    let entry = session.end_file().await?;
    session.finish().await?;
    let (_, wrote) = pfs
        .write_planned("r", reference, &[], |view| {
            let entry = entry.clone();
            async move {
                let exists = match view.index().await? {
                    Some(index) => index.get(&entry.path).await?.is_some(),
                    None => false,
                };
                Ok(match exists {
                    true => (vec![], false),
                    false => (vec![Change::Put(entry)], true),
                })
            }
        })
        .await?;
    Ok(wrote)
}

/// 16 writers put `[i]` at `path` of master if nothing is there; asserts
/// that exactly one wins and returns what it wrote.
async fn race_to_put(pfs: &Pfs, path: &'static str) -> Vec<u8> {
    let racers: Vec<_> = (0..16u8)
        .map(|i| {
            let pfs = pfs.clone();
            tokio::spawn(async move { put_if_absent(&pfs, "master", path, &[i]).await.unwrap() })
        })
        .collect();
    let mut won = Vec::new();
    for (i, r) in racers.into_iter().enumerate() {
        if r.await.unwrap() {
            won.push(i as u8);
        }
    }
    assert_eq!(won.len(), 1, "exactly one writer wins: {won:?}");
    won
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn planned_writes_racing_on_one_condition_have_one_winner() {
    let f = fixture();
    let pfs = &f.pfs;
    pfs.create_repo("r", "", false).await.unwrap();
    put(pfs, "r", "master", &[("/other", b"o")]).await.unwrap();
    let commits = |pfs: Pfs| async move {
        pfs.list_commit("r", None, Some("master"), 0, false)
            .await
            .unwrap()
            .len()
    };
    let before = commits(pfs.clone()).await;
    // On the branch: each write would be a new commit.
    let won = race_to_put(pfs, "/k").await;
    assert_eq!(read(pfs, "r", "master", "/k").await.unwrap(), won);
    // The losers wrote no commit, not even an empty one.
    assert_eq!(commits(pfs.clone()).await, before + 1);

    // Into an open commit: each write would be staged into it.
    let open = pfs
        .start_commit("r", Some("master"), None, "")
        .await
        .unwrap();
    let won = race_to_put(pfs, "/j").await;
    let (commit, _) = pfs.resolve_commit("r", &open.id).await.unwrap();
    assert_eq!(commit.writes, 1, "one write staged into the open commit");
    pfs.finish_commit("r", &open.id, None).await.unwrap();
    assert_eq!(read(pfs, "r", "master", "/j").await.unwrap(), won);
    assert!(!put_if_absent(pfs, "master", "/j", b"late").await.unwrap());
}
