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
    cluster_on(None)
}

/// A cluster whose bucket is a directory (`Some`) or in memory.
fn cluster_on(bucket_dir: Option<&std::path::Path>) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let meta = RedbStore::open(&dir.path().join("meta.redb")).unwrap();
    let bucket: Arc<dyn object_store::ObjectStore> = match bucket_dir {
        Some(d) => Arc::new(object_store::local::LocalFileSystem::new_with_prefix(d).unwrap()),
        None => Arc::new(object_store::memory::InMemory::new()),
    };
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

fn op18(o: pach_api::admin::Op18) -> pach_api::admin::Op {
    pach_api::admin::Op {
        op1_8: Some(o),
        ..Default::default()
    }
}

fn record(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as i64).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// A 1.8 extract: objects as PutObject runs, a tree in the bolt-dump
/// layout, an `atom` input in its pipeline.
fn stream_1_8() -> Vec<u8> {
    stream_1_8_with(None)
}

/// [`stream_1_8`], its pipeline with an egress URL.
fn stream_1_8_with(egress: Option<&str>) -> Vec<u8> {
    use pach_api::{hashtree, pfs_1_8, pps_1_8};
    use prost::Message;
    let hello = b"hello\n".to_vec();
    let hello_name = pach_storage::Sha512::of(&hello).to_hex();
    let file = hashtree::NodeProto {
        name: "a.txt".into(),
        subtree_size: 6,
        file_node: Some(hashtree::FileNodeProto {
            objects: vec![pach_api::pfs::Object {
                hash: hello_name.clone(),
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let root = hashtree::NodeProto {
        dir_node: Some(hashtree::DirectoryNodeProto {
            children: vec!["a.txt".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut tree = Vec::new();
    record(
        &mut tree,
        &hashtree::BucketHeader {
            bucket: "fs".into(),
        }
        .encode_to_vec(),
    );
    record(&mut tree, b"\0");
    record(&mut tree, &root.encode_to_vec());
    record(&mut tree, b"\0a.txt");
    record(&mut tree, &file.encode_to_vec());
    record(&mut tree, b"*");
    record(
        &mut tree,
        &hashtree::BucketHeader {
            bucket: "changed".into(),
        }
        .encode_to_vec(),
    );
    record(&mut tree, b"*");
    let tree_name = pach_storage::Sha512::of(&tree).to_hex();
    let object = |value: Vec<u8>| pach_api::admin::Op18 {
        object: Some(pfs_1_8::PutObjectRequest {
            value,
            ..Default::default()
        }),
        ..Default::default()
    };
    let repo = |name: &str| Some(pfs_1_8::Repo { name: name.into() });
    let id = "0123456789abcdef0123456789abcdef";
    let ops = vec![
        object(hello[..3].to_vec()),
        object(hello[3..].to_vec()),
        object(vec![]),
        object(tree),
        object(vec![]),
        pach_api::admin::Op18 {
            repo: Some(pfs_1_8::CreateRepoRequest {
                repo: repo("images"),
                ..Default::default()
            }),
            ..Default::default()
        },
        pach_api::admin::Op18 {
            pipeline: Some(pps_1_8::CreatePipelineRequest {
                pipeline: Some(pps_1_8::Pipeline {
                    name: "copy".into(),
                }),
                transform: Some(pps_1_8::Transform {
                    cmd: vec!["sh".into()],
                    stdin: vec!["cp /pfs/images/* /pfs/out/".into()],
                    ..Default::default()
                }),
                input: Some(pps_1_8::Input {
                    atom: Some(pps_1_8::AtomInput {
                        repo: "images".into(),
                        glob: "/*".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                salt: "kept".into(),
                egress: egress.map(|url| pps_1_8::Egress { url: url.into() }),
                ..Default::default()
            }),
            ..Default::default()
        },
        pach_api::admin::Op18 {
            commit: Some(pfs_1_8::BuildCommitRequest {
                parent: Some(pfs_1_8::Commit {
                    repo: repo("images"),
                    id: String::new(),
                }),
                branch: "master".into(),
                tree: Some(pfs_1_8::Object { hash: tree_name }),
                id: id.into(),
                ..Default::default()
            }),
            ..Default::default()
        },
        pach_api::admin::Op18 {
            branch: Some(pfs_1_8::CreateBranchRequest {
                head: Some(pfs_1_8::Commit {
                    repo: repo("images"),
                    id: id.into(),
                }),
                branch: Some(pfs_1_8::Branch {
                    repo: repo("images"),
                    name: "master".into(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    let mut w = super::frames::OpWriter::new(Vec::new());
    for o in ops {
        w.write(&op18(o)).unwrap();
    }
    w.finish().unwrap()
}

#[tokio::test]
async fn a_1_8_extract_imports_with_its_bolt_dump_trees_and_atom_inputs() {
    let _serial = crate::testkit::serial().await;
    let c = cluster();
    let spool = c.dir.path().join("spool");
    restore_any(&c.pps, &spool, &stream_1_8()[..])
        .await
        .unwrap();
    let pfs = c.pps.pfs();
    let id = "0123456789abcdef0123456789abcdef";
    assert_eq!(read(pfs, "images", id, "/a.txt").await, b"hello\n");
    let head = pfs.inspect_branch("images", "master").await.unwrap();
    assert_eq!(head.record.head.as_deref(), Some(id));
    let p = c.pps.inspect_pipeline("copy").await.unwrap();
    let inputs = p.spec.input.as_ref().map(pach_pps::spec::input_repos);
    assert_eq!(inputs.unwrap()[0].0, "images");
}

#[tokio::test]
async fn unknown_and_mixed_versions_are_refused_before_any_change() {
    let _serial = crate::testkit::serial().await;
    let c = cluster();
    let spool = c.dir.path().join("spool");
    let before = state(&c.pps).await;
    // An op of a newer Pachyderm: none of the fields this pachd knows.
    let mut w = super::frames::OpWriter::new(Vec::new());
    w.write(&pach_api::admin::Op::default()).unwrap();
    let err = restore_any(&c.pps, &spool, &w.finish().unwrap()[..])
        .await
        .unwrap_err();
    assert!(matches!(err, AdminError::UnknownVersion { .. }), "{err}");
    assert!(err.to_string().contains("op 1"), "{err}");
    // A 1.7 stream with a 1.8 op in it.
    let mut mixed = SORT_METADATA.to_vec();
    let mut w = super::frames::OpWriter::new(Vec::new());
    w.write(&op18(pach_api::admin::Op18 {
        repo: Some(pach_api::pfs_1_8::CreateRepoRequest {
            repo: Some(pach_api::pfs_1_8::Repo { name: "x".into() }),
            ..Default::default()
        }),
        ..Default::default()
    }))
    .unwrap();
    // Snappy streams concatenate: the second one's identifier is skipped.
    mixed.extend_from_slice(&w.finish().unwrap());
    let err = restore_any(&c.pps, &spool, &mixed[..]).await.unwrap_err();
    assert!(err.to_string().contains("op 361"), "{err}");
    assert_eq!(state(&c.pps).await, before);
}

/// A stream that would build commits in the output repo of one of the
/// cluster's pipelines is refused before anything changes (only the
/// pipeline writes there).
#[tokio::test]
async fn commits_into_a_pipelines_output_repo_are_refused_first() {
    let _serial = crate::testkit::serial().await;
    let c = cluster();
    let spool = c.dir.path().join("spool");
    // The cluster has a pipeline named 'images' (over an input 'src').
    c.pps.pfs().create_repo("src", "", false).await.unwrap();
    let spec = pach_pps::spec::parse_value(serde_json::json!({
        "pipeline": {"name": "images"},
        "transform": {"cmd": ["true"]},
        "input": {"pfs": {"repo": "src", "glob": "/*"}}
    }))
    .unwrap();
    c.pps.create_pipeline(spec, false, false).await.unwrap();
    let before = state(&c.pps).await;
    let err = restore_any(&c.pps, &spool, &stream_1_8()[..])
        .await
        .unwrap_err();
    assert!(matches!(err, AdminError::Clash { .. }), "{err}");
    assert!(err.to_string().contains("pipeline 'images'"), "{err}");
    assert_eq!(state(&c.pps).await, before);
}

/// A pipeline that this cluster would refuse to create (an egress URL its
/// policy does not allow) is refused before anything changes.
#[tokio::test]
async fn pipelines_the_cluster_would_refuse_are_refused_first() {
    let _serial = crate::testkit::serial().await;
    let c = cluster();
    let spool = c.dir.path().join("spool");
    let before = state(&c.pps).await;
    let err = restore_any(&c.pps, &spool, &stream_1_8_with(Some("file:///etc/x"))[..])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("egress"), "{err}");
    assert_eq!(state(&c.pps).await, before);
}

#[test]
fn a_commit_is_written_as_the_changes_from_its_parent() {
    use super::ops::ContentRef::Object;
    let f = |path: &str, o: &str| super::hashtree::TreeFile {
        path: path.into(),
        content: vec![Object(o.into())],
    };
    let old = vec![f("/a", "1"), f("/b", "2"), f("/c", "3"), f("/e", "5")];
    let new = vec![f("/a", "1"), f("/b", "9"), f("/d", "4")];
    let (deletes, changed) = super::import::changed_files(&old, &new);
    assert_eq!(
        deletes,
        [
            pach_storage::Change::Delete("/c".into()),
            pach_storage::Change::Delete("/e".into())
        ]
    );
    let paths: Vec<&str> = changed.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["/b", "/d"]);
}

/// A generated 1.9 extract: one repo, `commits` commits each adding
/// `per_commit` small files (every tree the whole snapshot, as Pachyderm
/// writes them).
fn generated_1_9(commits: usize, per_commit: usize) -> Vec<u8> {
    generated_1_9_with(commits, per_commit, false)
}

/// [`generated_1_9`]; with `spec_repo`, Pachyderm 1.9's `spec` repo too, with
/// a commit that every data commit names in its provenance.
fn generated_1_9_with(commits: usize, per_commit: usize, spec_repo: bool) -> Vec<u8> {
    use pach_api::{admin, pfs};
    let op = |o: admin::Op19| admin::Op {
        op1_9: Some(o),
        ..Default::default()
    };
    let object = |value: Vec<u8>| {
        op(admin::Op19 {
            object: Some(pfs::PutObjectRequest {
                value,
                ..Default::default()
            }),
            ..Default::default()
        })
    };
    let mut w = super::frames::OpWriter::new(Vec::new());
    let mut files: Vec<(String, Vec<String>, u64)> = Vec::new();
    let mut ids = Vec::new();
    let mut trees = Vec::new();
    for k in 0..commits {
        for i in k * per_commit..(k + 1) * per_commit {
            let bytes = format!("file {i}\n").into_bytes();
            let name = pach_storage::Sha512::of(&bytes).to_hex();
            files.push((
                format!("/d{}/f{i}", i % 100),
                vec![name],
                bytes.len() as u64,
            ));
            w.write(&object(bytes)).unwrap();
            w.write(&object(Vec::new())).unwrap();
        }
        files.sort();
        let tree = super::tree_bytes(&files);
        trees.push(pach_storage::Sha512::of(&tree).to_hex());
        w.write(&object(tree)).unwrap();
        w.write(&object(Vec::new())).unwrap();
        ids.push(format!("{:032x}", k + 1));
    }
    let repo = || {
        Some(pfs::Repo {
            name: "data".into(),
        })
    };
    let spec_commit = pfs::Commit {
        repo: Some(pfs::Repo {
            name: "spec".into(),
        }),
        id: "f".repeat(32),
    };
    if spec_repo {
        w.write(&op(admin::Op19 {
            repo: Some(pfs::CreateRepoRequest {
                repo: spec_commit.repo.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .unwrap();
        w.write(&op(admin::Op19 {
            commit: Some(pfs::BuildCommitRequest {
                parent: Some(pfs::Commit {
                    repo: spec_commit.repo.clone(),
                    id: String::new(),
                }),
                // Its tree is not in the stream: the spec repo is skipped whole.
                tree: Some(pfs::Object {
                    hash: "0".repeat(128),
                }),
                id: spec_commit.id.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .unwrap();
    }
    w.write(&op(admin::Op19 {
        repo: Some(pfs::CreateRepoRequest {
            repo: repo(),
            ..Default::default()
        }),
        ..Default::default()
    }))
    .unwrap();
    for k in 0..commits {
        w.write(&op(admin::Op19 {
            commit: Some(pfs::BuildCommitRequest {
                parent: Some(pfs::Commit {
                    repo: repo(),
                    id: if k == 0 {
                        String::new()
                    } else {
                        ids[k - 1].clone()
                    },
                }),
                tree: Some(pfs::Object {
                    hash: trees[k].clone(),
                }),
                id: ids[k].clone(),
                provenance: if spec_repo {
                    vec![pfs::CommitProvenance {
                        commit: Some(spec_commit.clone()),
                        branch: None,
                    }]
                } else {
                    vec![]
                },
                ..Default::default()
            }),
            ..Default::default()
        }))
        .unwrap();
    }
    w.write(&op(admin::Op19 {
        branch: Some(pfs::CreateBranchRequest {
            head: Some(pfs::Commit {
                repo: repo(),
                id: ids[commits - 1].clone(),
            }),
            branch: Some(pfs::Branch {
                repo: repo(),
                name: "master".into(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }))
    .unwrap();
    w.finish().unwrap()
}

/// How fast a generated 1.9 extract imports, and the most memory it takes
/// (`IMPORT_COMMITS`, `IMPORT_FILES_PER_COMMIT`; run with `--ignored
/// --nocapture`).
#[tokio::test]
#[ignore]
async fn import_throughput() {
    let _serial = crate::testkit::serial().await;
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (commits, per) = (
        env("IMPORT_COMMITS", 100),
        env("IMPORT_FILES_PER_COMMIT", 100),
    );
    let stream = generated_1_9(commits, per);
    // The bucket on disk: an in-memory one would count the cluster's bytes.
    let bucket = tempfile::tempdir().unwrap();
    let c = cluster_on(Some(bucket.path()));
    let spool = c.dir.path().join("spool");
    let base = crate::testkit::reset_peak();
    let started = std::time::Instant::now();
    restore_any(&c.pps, &spool, &stream[..]).await.unwrap();
    let took = started.elapsed();
    let peak = crate::testkit::peak().saturating_sub(base);
    let head = c.pps.pfs().inspect_branch("data", "master").await.unwrap();
    let (last, _) = c
        .pps
        .pfs()
        .resolve_commit("data", head.record.head.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(last.file_count(), (commits * per) as u64);
    println!(
        "imported {} files in {commits} commits ({} bytes of stream) in {:.2} s: {:.0} files/s, peak heap {:.1} MiB",
        commits * per,
        stream.len(),
        took.as_secs_f64(),
        (commits * per) as f64 / took.as_secs_f64(),
        peak as f64 / (1 << 20) as f64
    );
}

#[tokio::test]
async fn a_generated_1_9_history_imports_commit_by_commit() {
    let _serial = crate::testkit::serial().await;
    let c = cluster();
    let spool = c.dir.path().join("spool");
    restore_any(&c.pps, &spool, &generated_1_9(5, 7)[..])
        .await
        .unwrap();
    let pfs = c.pps.pfs();
    let commits = pfs
        .list_commit("data", None, Some("master"), 0, false)
        .await
        .unwrap();
    assert_eq!(commits.len(), 5);
    // Newest first: the k-th from the end holds (k+1)*7 files.
    for (i, commit) in commits.iter().enumerate() {
        assert_eq!(commit.file_count(), ((5 - i) * 7) as u64, "{}", commit.id);
    }
    assert_eq!(read(pfs, "data", "master", "/d34/f34").await, b"file 34\n");
}

/// Pachyderm 1.9's `spec` repo, its commits and the provenance naming them
/// are left out: specs live in pipeline records here.
#[tokio::test]
async fn the_spec_repo_of_a_1_9_extract_is_left_out() {
    let _serial = crate::testkit::serial().await;
    let c = cluster();
    let spool = c.dir.path().join("spool");
    restore_any(&c.pps, &spool, &generated_1_9_with(2, 3, true)[..])
        .await
        .unwrap();
    let pfs = c.pps.pfs();
    let repos: Vec<String> = pfs
        .list_repo()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.record.name)
        .collect();
    assert_eq!(repos, ["data"]);
    let (head, _) = pfs.resolve_commit("data", "master").await.unwrap();
    assert!(head.provenance.is_empty(), "{:?}", head.provenance);
}

/// A `--no-objects` 1.9 extract (no object ops) and the Pachyderm bucket it
/// came with, in 1.x's layout: objects found by their own record or through
/// their prefix's index, bytes read from blocks.
#[tokio::test]
async fn a_no_objects_extract_reads_the_pachyderm_bucket() {
    use pach_api::pfs;
    use prost::Message;
    let _serial = crate::testkit::serial().await;
    let full = generated_1_9(3, 4);
    // Split the stream: its objects go to a bucket, the rest stays.
    let bucket_dir = tempfile::tempdir().unwrap();
    let root = bucket_dir.path().join("pach");
    for d in ["object", "block", "index"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let mut r = super::frames::OpReader::new(&full[..]);
    let mut w = super::frames::OpWriter::new(Vec::new());
    let mut value = Vec::new();
    let mut index = std::collections::HashMap::<String, pfs::ObjectIndex>::new();
    let mut n = 0;
    while let Some((_, op)) = r.next_op().unwrap() {
        match op.op1_9.as_ref().and_then(|o| o.object.as_ref()) {
            Some(o) if !o.value.is_empty() => value.extend_from_slice(&o.value),
            Some(_) => {
                let hash = pach_storage::Sha512::of(&value).to_hex();
                // Two objects per block, the second after the first.
                let block = format!("block{}", n / 2);
                let path = root.join("block").join(&block);
                let mut bytes = std::fs::read(&path).unwrap_or_default();
                let lower = bytes.len() as u64;
                bytes.extend_from_slice(&value);
                std::fs::write(&path, &bytes).unwrap();
                let r = pfs::BlockRef {
                    block: Some(pfs::Block { hash: block }),
                    range: Some(pfs::ByteRange {
                        lower,
                        upper: bytes.len() as u64,
                    }),
                };
                if n % 3 == 0 {
                    // Compacted into its prefix's index.
                    index
                        .entry(hash[..2].to_string())
                        .or_default()
                        .objects
                        .insert(hash, r);
                } else {
                    std::fs::write(root.join("object").join(&hash), r.encode_to_vec()).unwrap();
                }
                value.clear();
                n += 1;
            }
            None => w.write(&op).unwrap(),
        }
    }
    for (prefix, i) in index {
        std::fs::write(root.join("index").join(prefix), i.encode_to_vec()).unwrap();
    }
    let stream = w.finish().unwrap();
    let store: Arc<dyn object_store::ObjectStore> =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(bucket_dir.path()).unwrap());
    let bucket = super::bucket::PachydermBucket {
        store,
        root: object_store::path::Path::from("pach"),
    };
    let c = cluster();
    let spool = c.dir.path().join("spool");
    let before = state(&c.pps).await;
    // Without the bucket: refused, naming the way out.
    let err = restore_any(&c.pps, &spool, &stream[..]).await.unwrap_err();
    assert!(err.to_string().contains("--pachyderm-bucket"), "{err}");
    // With a bucket that lacks a block: refused, nothing changed.
    let lost = root.join("block").join("block1");
    let kept = std::fs::read(&lost).unwrap();
    std::fs::remove_file(&lost).unwrap();
    let err = crate::restore_any_with(&c.pps, &spool, &stream[..], Some(&bucket))
        .await
        .unwrap_err();
    assert!(matches!(err, AdminError::MissingInBucket { .. }), "{err}");
    assert_eq!(state(&c.pps).await, before);
    std::fs::write(&lost, kept).unwrap();
    // With it whole: the same cluster as from the full stream.
    crate::restore_any_with(&c.pps, &spool, &stream[..], Some(&bucket))
        .await
        .unwrap();
    let d = cluster();
    restore_any(&d.pps, &d.dir.path().join("spool"), &full[..])
        .await
        .unwrap();
    let files = |pfs: &Pfs| {
        let pfs = pfs.clone();
        async move {
            let mut out = Vec::new();
            for commit in pfs.list_commit("data", None, None, 0, false).await.unwrap() {
                let index = pfs.content().open_index(commit.index_root()).await.unwrap();
                let mut all = index.range("", None);
                while let Some(e) = all.next().await {
                    let e = e.unwrap();
                    let bytes = read(&pfs, "data", &commit.id, &e.path).await;
                    out.push(format!("{} {} {:?}", commit.id, e.path, bytes));
                }
            }
            out
        }
    };
    assert_eq!(files(c.pps.pfs()).await, files(d.pps.pfs()).await);
}
