//! extract → restore → verify between clusters of a real redb store and an
//! in-memory bucket, with the tiny spill buffers of test builds, so that
//! every path of the on-disk sorting runs; and the proof that memory does
//! not grow with the cluster.

use std::path::Path;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use pach_meta::{MetaStore, RedbStore, Txn};
use pach_pfs::{BranchRecord, CommitRecord, Origin, Pfs, RepoRecord};
use pach_storage::{ContentHash, ContentStore, IndexSummary};
use tokio::io::BufReader;

use crate::stream::{Frame, Reader};
use crate::testkit;
use crate::{AdminError, Checkpoint, extract, restore, verify};

struct Cluster {
    pfs: Pfs,
    dir: tempfile::TempDir,
}

/// A cluster on `bucket`, its store's page cache kept small (the store's
/// cache is not what the memory test measures).
fn cluster(bucket: Arc<dyn ObjectStore>) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let meta = RedbStore::open_with_cache(&dir.path().join("meta.redb"), Some(256 << 10)).unwrap();
    let content = ContentStore::new(bucket, object_store::path::Path::from(""));
    Cluster {
        pfs: Pfs::new(Arc::new(meta), content),
        dir,
    }
}

fn commit_id(repo: &str, i: usize) -> String {
    // Ids in another order than the commits' start times, as real ids are.
    format!(
        "{:032x}",
        (i as u128 * 0x9E37_79B9_7F4A_7C15) ^ repo.len() as u128
    )
}

/// `repo` with `n` finished commits in a chain on master (each commit's
/// index root an object of the bucket), and a branch `old` at the first.
async fn add_repo(c: &Cluster, repo: &str, n: usize, started: i64) {
    let meta = c.pfs.meta();
    let content = c.pfs.content();
    let mut txn = Txn::new().put(
        pach_pfs::records::repo_key(repo),
        json(&RepoRecord {
            name: repo.into(),
            description: "test".into(),
            created_ns: started,
        }),
    );
    let mut parent: Option<String> = None;
    for i in 0..n {
        let id = commit_id(repo, i);
        let root = ContentHash::of(format!("{repo} {i}").as_bytes());
        content
            .object_store()
            .put(
                &content.index_key(&root),
                format!("index {i}").into_bytes().into(),
            )
            .await
            .unwrap();
        let record = CommitRecord {
            repo: repo.into(),
            id: id.clone(),
            branch: Some("master".into()),
            parent: parent.clone(),
            started_ns: started + i as i64,
            finished_ns: Some(started + i as i64),
            description: String::new(),
            provenance: vec![],
            origin: Origin::User,
            base: None,
            index: Some(IndexSummary {
                root,
                files: 1,
                bytes: 1,
            }),
            writes: 0,
        };
        txn = txn.put(pach_pfs::records::commit_key(repo, &id), json(&record));
        parent = Some(id);
        if (i + 1).is_multiple_of(5000) {
            meta.commit(std::mem::take(&mut txn))
                .await
                .unwrap()
                .unwrap();
        }
    }
    for (name, head) in [("master", parent), ("old", Some(commit_id(repo, 0)))] {
        let b = BranchRecord {
            repo: repo.into(),
            name: name.into(),
            head,
            provenance: vec![],
            created_ns: 0,
        };
        txn = txn.put(pach_pfs::records::branch_key(repo, name), json(&b));
    }
    meta.commit(txn).await.unwrap().unwrap();
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

async fn extract_to(
    c: &Cluster,
    objects: bool,
    since: Option<Checkpoint>,
    path: &Path,
) -> Checkpoint {
    let out = tokio::fs::File::create(path).await.unwrap();
    extract(&c.pfs, objects, since, out).await.unwrap().1
}

async fn restore_from(c: &Cluster, path: &Path) -> crate::Result<crate::Summary> {
    let input = tokio::fs::File::open(path).await.unwrap();
    restore(&c.pfs, &c.dir.path().join("spool"), input).await
}

async fn verify_against(c: &Cluster, path: &Path) -> Vec<String> {
    let input = tokio::fs::File::open(path).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let collect = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(d) = rx.recv().await {
            all.push(d);
        }
        all
    });
    let count = verify(&c.pfs, input, &tx).await.unwrap();
    drop(tx);
    let all = collect.await.unwrap();
    assert_eq!(
        count,
        all.len() as u64,
        "the count returned is the count sent"
    );
    all
}

async fn records(meta: &dyn MetaStore) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for prefix in crate::extract::RECORD_ORDER {
        for kv in meta.list(prefix, None, 0).await.unwrap() {
            out.push((kv.key, kv.value));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extract_restores_parents_first_through_on_disk_sorting() {
    let _serial = testkit::serial().await;
    let bucket: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let a = cluster(bucket.clone());
    // Far more records than a test build's sort buffer holds.
    add_repo(&a, "images", 1500, 1_000_000).await;
    add_repo(&a, "labels", 300, 500_000).await;
    let stream = a.dir.path().join("full.stream");
    extract_to(&a, true, None, &stream).await;

    // Commits come parent first, and every record once.
    let (mut r, _) = Reader::open(BufReader::new(
        tokio::fs::File::open(&stream).await.unwrap(),
    ))
    .await
    .unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut n = 0;
    while let Some(f) = r.next().await.unwrap() {
        if let Frame::Record { key, value } = f {
            if key.starts_with("pfs/commits/") {
                let c: CommitRecord = serde_json::from_slice(&value).unwrap();
                if let Some(p) = &c.parent {
                    assert!(seen.contains(p), "{key} before its parent");
                }
                seen.insert(c.id);
            }
            n += 1;
        }
    }
    assert_eq!(n, records(&**a.pfs.meta()).await.len());

    let b = cluster(Arc::new(object_store::memory::InMemory::new()));
    let s = restore_from(&b, &stream).await.unwrap();
    assert_eq!(s.records as usize, n);
    assert_eq!(s.objects, 1800);
    assert_eq!(
        records(&**a.pfs.meta()).await,
        records(&**b.pfs.meta()).await
    );
    assert!(verify_against(&b, &stream).await.is_empty());
    // Again: nothing changes.
    let rev = b.pfs.meta().revision().await.unwrap();
    restore_from(&b, &stream).await.unwrap();
    assert_eq!(b.pfs.meta().revision().await.unwrap(), rev);

    // verify names what differs, both ways.
    b.pfs
        .meta()
        .commit(
            Txn::new()
                .delete(pach_pfs::records::branch_key("images", "old"))
                .put(pach_pfs::records::repo_key("extra"), b"{}".to_vec()),
        )
        .await
        .unwrap()
        .unwrap();
    let diffs = verify_against(&b, &stream).await;
    assert_eq!(
        diffs,
        [
            "only in the stream: branch 'images@old'",
            "only in this cluster: repo 'extra'"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_changes_replays_changes_and_deletions() {
    let _serial = testkit::serial().await;
    let bucket: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let a = cluster(bucket.clone());
    add_repo(&a, "images", 400, 1_000_000).await;
    add_repo(&a, "gone", 50, 500_000).await;
    let base = a.dir.path().join("base.stream");
    let checkpoint = extract_to(&a, false, None, &base).await;
    // Over the same bucket, as after copying it.
    let b = cluster(bucket.clone());
    restore_from(&b, &base).await.unwrap();

    add_repo(&a, "later", 100, 2_000_000).await;
    let mut txn = Txn::new()
        .delete_prefix("pfs/commits/gone/")
        .delete_prefix("pfs/branches/gone/");
    txn = txn.delete(pach_pfs::records::repo_key("gone"));
    a.pfs.meta().commit(txn).await.unwrap().unwrap();
    let since = a.dir.path().join("since.stream");
    extract_to(&a, true, Some(checkpoint), &since).await;
    assert!(std::fs::metadata(&since).unwrap().len() < std::fs::metadata(&base).unwrap().len());
    restore_from(&b, &since).await.unwrap();
    assert_eq!(
        records(&**a.pfs.meta()).await,
        records(&**b.pfs.meta()).await
    );
    let now = a.dir.path().join("now.stream");
    extract_to(&a, false, None, &now).await;
    assert!(verify_against(&b, &now).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dangling_references_and_missing_objects_are_refused() {
    let _serial = testkit::serial().await;
    let bucket: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let a = cluster(bucket.clone());
    add_repo(&a, "images", 300, 1_000_000).await;
    // A parent the stream lacks.
    a.pfs
        .meta()
        .commit(Txn::new().delete(pach_pfs::records::commit_key(
            "images",
            &commit_id("images", 7),
        )))
        .await
        .unwrap()
        .unwrap();
    let stream = a.dir.path().join("dangling.stream");
    extract_to(&a, true, None, &stream).await;
    let b = cluster(Arc::new(object_store::memory::InMemory::new()));
    match restore_from(&b, &stream).await {
        Err(AdminError::Dangling { what, detail }) => {
            assert_eq!(what, format!("commit images@{}", commit_id("images", 7)));
            assert_eq!(
                detail,
                format!("commit images@{} points to it", commit_id("images", 8))
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(records(&**b.pfs.meta()).await.is_empty());

    // Without objects, into an empty bucket: every root is missing, each
    // counted once.
    let c = cluster(Arc::new(object_store::memory::InMemory::new()));
    add_repo(&c, "x", 40, 0).await;
    let stream = c.dir.path().join("meta.stream");
    extract_to(&c, false, None, &stream).await;
    let d = cluster(Arc::new(object_store::memory::InMemory::new()));
    match restore_from(&d, &stream).await {
        Err(AdminError::MissingObjects { count, .. }) => assert_eq!(count, 40),
        other => panic!("{other:?}"),
    }
    assert!(records(&**d.pfs.meta()).await.is_empty());
}

#[tokio::test]
async fn the_key_list_streams_key_by_key() {
    let _serial = testkit::serial().await;
    let header = crate::stream::Header {
        format: crate::stream::FORMAT.into(),
        version: crate::stream::VERSION.into(),
        objects: false,
        created: String::new(),
        producer: String::new(),
        cluster_id: String::new(),
        checkpoint: String::new(),
        since: Some("r1-t1".into()),
    };
    let keys: Vec<String> = (0..50)
        .map(|i| format!("pfs/repos/{}", "k".repeat(i)))
        .collect();
    let mut bytes = Vec::new();
    let mut w = crate::stream::Writer::new(&mut bytes, header.clone())
        .await
        .unwrap();
    w.record("pfs/repos/a", b"{}").await.unwrap();
    w.keys(&keys).await.unwrap();
    w.finish().await.unwrap();
    let read = |skip: bool| {
        let bytes = bytes.clone();
        async move {
            let (mut r, _) = Reader::open(&bytes[..]).await?;
            let mut got = Vec::new();
            while let Some(f) = r.next().await? {
                if f == Frame::Keys && !skip {
                    while let Some(k) = r.next_key().await? {
                        got.push(k);
                    }
                }
            }
            Ok::<_, AdminError>(got)
        }
    };
    assert_eq!(read(false).await.unwrap(), keys);
    // Unread keys are skipped, and still checksummed.
    assert!(read(true).await.unwrap().is_empty());
    let mut flipped = bytes.clone();
    let at = flipped.len() - 200;
    flipped[at] ^= 1;
    let (mut r, _) = Reader::open(&flipped[..]).await.unwrap();
    let mut result = Ok(());
    while let Some(f) = r.next().await.transpose() {
        if let Err(e) = f {
            result = Err(e);
            break;
        }
    }
    assert!(matches!(result, Err(AdminError::Corrupt(_))), "{result:?}");
    // A stream cut inside the list is truncated.
    let cut = &bytes[..bytes.len() - 300];
    let (mut r, _) = Reader::open(cut).await.unwrap();
    let mut err = None;
    loop {
        match r.next().await {
            Ok(Some(Frame::Keys)) => while let Ok(Some(_)) = r.next_key().await {},
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    assert!(matches!(err, Some(AdminError::Truncated(_))), "{err:?}");
    // A writer announcing more than it writes is refused.
    let mut w = crate::stream::Writer::new(Vec::new(), header)
        .await
        .unwrap();
    w.begin_keys(10).await.unwrap();
    w.keys_part(b"pfs/").await.unwrap();
    assert!(w.keys_part(b"repos/abc").await.is_err());
    assert!(w.finish().await.is_err());
}

/// The heap a full extract, a restore and a verify need at their peak, above
/// what was allocated before, for a cluster of `commits` commits (and as many
/// objects).
async fn peak_heap(commits: usize) -> ([usize; 3], u64) {
    // A bucket on disk: the in-memory one lists all its objects at once.
    let dir = tempfile::tempdir().unwrap();
    let bucket: Arc<dyn ObjectStore> =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let a = cluster(bucket.clone());
    add_repo(&a, "images", commits, 1_000_000).await;
    // The target shares the bucket (restoring rewrites each object).
    let b = cluster(bucket);
    let stream = a.dir.path().join("full.stream");
    let before = testkit::reset_peak();
    extract_to(&a, true, None, &stream).await;
    let extract = testkit::peak() - before;
    let before = testkit::reset_peak();
    restore_from(&b, &stream).await.unwrap();
    let restore = testkit::peak() - before;
    let before = testkit::reset_peak();
    assert!(verify_against(&b, &stream).await.is_empty());
    let verify = testkit::peak() - before;
    (
        [extract, restore, verify],
        std::fs::metadata(&stream).unwrap().len(),
    )
}

/// Memory does not grow with the cluster: ten times the commits, objects and
/// records take the same peak heap (within a slack far below what the
/// larger cluster's records, keys or object names would take in memory), so
/// any set or snapshot held in memory — of records, commits, references,
/// object keys or key lists, in extract, restore or verify — fails this test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_does_not_grow_with_the_cluster() {
    let _serial = testkit::serial().await;
    let (small, small_stream) = peak_heap(2_000).await;
    let (large, large_stream) = peak_heap(20_000).await;
    eprintln!(
        "peak heap (extract, restore, verify): {small:?} bytes for {small_stream} stream bytes, {large:?} bytes for {large_stream}"
    );
    // What the 18,000 more commits would take as a set of their keys alone
    // (~60 bytes each, plus a String and a hash slot) — and a snapshot of
    // their records would take ten times that.
    const SLACK: usize = 512 << 10;
    assert!(large_stream > small_stream * 9);
    for (i, what) in ["extract", "restore", "verify"].iter().enumerate() {
        assert!(
            large[i] <= small[i] + SLACK,
            "the peak heap of {what} grew from {} to {} bytes for 10x the records",
            small[i],
            large[i]
        );
    }
}

/// A cluster whose metadata names it (as pachd's cluster record does) and
/// whose bucket names it as the owner.
async fn owned_cluster(bucket: Arc<dyn ObjectStore>, id: &str) -> Cluster {
    let c = cluster(bucket);
    let info = format!(r#"{{"id":"{id}","format_major":1,"format_minor":1}}"#);
    c.pfs
        .meta()
        .commit(Txn::new().put("cluster/info", info.into_bytes()))
        .await
        .unwrap();
    c.pfs.content().set_bucket_owner(id).await.unwrap();
    c
}

async fn put_file(pfs: &Pfs, repo: &str, path: &str, data: &[u8]) {
    let mut session = pfs.content().session();
    let entry = session
        .put_bytes(path.to_string(), None, data)
        .await
        .unwrap();
    session.finish().await.unwrap();
    pfs.write_changes(repo, "master", vec![pach_storage::Change::Put(entry)])
        .await
        .unwrap();
}

/// Garbage collection deletes what no record names, keeps what records
/// name, and refuses a bucket that names another cluster as its owner.
#[tokio::test]
async fn garbage_collection_keeps_what_records_name_on_an_owned_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let bucket: Arc<dyn ObjectStore> =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let id = "0123456789abcdef0123456789abcdef";
    let c = owned_cluster(bucket.clone(), id).await;
    let pfs = &c.pfs;
    for repo in ["keep", "doomed"] {
        pfs.create_repo(repo, "", false).await.unwrap();
        for i in 0..20 {
            let data = format!("{repo} {i} {}", "x".repeat(i * 997));
            put_file(pfs, repo, &format!("/f{i}"), data.as_bytes()).await;
        }
    }
    let grace = std::time::Duration::ZERO;
    let nothing = crate::garbage_collect(pfs, grace).await.unwrap();
    assert_eq!(nothing.deleted, 0, "{nothing:?}");
    pfs.delete_repo("doomed", true).await.unwrap();

    // Another cluster's bucket: refused, nothing deleted.
    pfs.content()
        .set_bucket_owner("someone else")
        .await
        .unwrap();
    assert!(matches!(
        crate::garbage_collect(pfs, grace).await,
        Err(AdminError::NotOwner { .. })
    ));
    pfs.content().set_bucket_owner(id).await.unwrap();

    let report = crate::garbage_collect(pfs, grace).await.unwrap();
    assert!(report.deleted > 0 && report.kept > 0, "{report:?}");
    assert_eq!(
        pfs.content().bucket_owner().await.unwrap().as_deref(),
        Some(id)
    );
    assert!(pfs.fsck().await.unwrap().problems.is_empty());
    let again = crate::garbage_collect(pfs, grace).await.unwrap();
    assert_eq!(again.deleted, 0, "{again:?}");
}

/// The parts of an upload in progress are named by no commit, only by
/// their part records: a collection keeps them, and the upload completes.
#[tokio::test]
async fn garbage_collection_keeps_the_parts_of_uploads_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let bucket: Arc<dyn ObjectStore> =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let c = owned_cluster(bucket.clone(), "0123456789abcdef0123456789abcdef").await;
    let pfs = &c.pfs;
    pfs.create_repo("up", "", false).await.unwrap();
    pfs.create_branch("up", "master", None, None).await.unwrap();
    let upload = pfs
        .start_upload("up", "master", "/big", None)
        .await
        .unwrap();
    let mut parts = Vec::new();
    for (n, data) in [(1u32, vec![1u8; 300_000]), (2, vec![2u8; 5_000])] {
        let mut session = pfs.content().session();
        let entry = session
            .put_bytes("/big".to_string(), None, &data)
            .await
            .unwrap();
        session.finish().await.unwrap();
        parts.push(pfs.put_upload_part(&upload, n, entry, None).await.unwrap());
    }
    let report = crate::garbage_collect(pfs, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report.deleted, 0, "{report:?}");
    pfs.complete_upload(&upload, &parts).await.unwrap();
    let got: Vec<bytes::Bytes> = futures::TryStreamExt::try_collect(
        pfs.get_file("up", "master", "/big", 0, None).await.unwrap(),
    )
    .await
    .unwrap();
    let got = got.concat();
    assert_eq!(got.len(), 305_000);
    assert!(got[..300_000].iter().all(|b| *b == 1) && got[300_000..].iter().all(|b| *b == 2));
}

/// The heap a garbage collection needs at its peak over a cluster of
/// `commits` commits, each with an index of its own (root and shard).
async fn gc_peak_heap(commits: usize) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let bucket: Arc<dyn ObjectStore> =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let c = owned_cluster(bucket, "0123456789abcdef0123456789abcdef").await;
    let content = c.pfs.content();
    let meta = c.pfs.meta();
    let mut txn = Txn::new().put(
        pach_pfs::records::repo_key("r"),
        json(&RepoRecord {
            name: "r".into(),
            description: String::new(),
            created_ns: 1,
        }),
    );
    for i in 0..commits {
        // A file of one loose chunk that the bucket does not hold: marking
        // names it without reading it.
        let chunk = pach_storage::ChunkRef {
            hash: ContentHash::of(format!("chunk {i}").as_bytes()),
            len: 1,
            loc: pach_storage::ChunkLocation::Loose,
        };
        let entry = pach_storage::FileEntry::from_chunks(format!("/f{i}"), vec![chunk]);
        let index = content
            .write_index(None, vec![pach_storage::Change::Put(entry)])
            .await
            .unwrap();
        let id = commit_id("r", i);
        let record = CommitRecord {
            repo: "r".into(),
            id: id.clone(),
            branch: None,
            parent: None,
            started_ns: i as i64,
            finished_ns: Some(i as i64),
            description: String::new(),
            provenance: vec![],
            origin: Origin::User,
            base: None,
            index: Some(index),
            writes: 0,
        };
        txn = txn.put(pach_pfs::records::commit_key("r", &id), json(&record));
        if (i + 1).is_multiple_of(5000) {
            meta.commit(std::mem::take(&mut txn))
                .await
                .unwrap()
                .unwrap();
        }
    }
    meta.commit(txn).await.unwrap().unwrap();
    let before = testkit::reset_peak();
    let report = crate::garbage_collect(&c.pfs, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report.deleted, 0, "{report:?}");
    assert_eq!(report.kept, 2 * commits as u64, "{report:?}");
    testkit::peak() - before
}

/// A collection's memory does not grow with the cluster: ten times the
/// commits, indexes and live keys take the same peak heap (a set of the
/// larger cluster's live keys alone would take megabytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_memory_does_not_grow_with_the_cluster() {
    let _serial = testkit::serial().await;
    let small = gc_peak_heap(1_000).await;
    let large = gc_peak_heap(10_000).await;
    eprintln!(
        "peak heap of garbage collection: {small} bytes for 1,000 commits, {large} for 10,000"
    );
    const SLACK: usize = 512 << 10;
    assert!(
        large <= small + SLACK,
        "the peak heap of a collection grew from {small} to {large} bytes for 10x the commits"
    );
}

/// Attributes kept with files' content (the S3 gateway's object metadata)
/// travel with an extract.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_attributes_travel_with_an_extract() {
    let _serial = testkit::serial().await;
    let a = cluster(Arc::new(object_store::memory::InMemory::new()));
    a.pfs.create_repo("r", "", false).await.unwrap();
    let mut session = a.pfs.content().session();
    let entry = session
        .put_bytes("/f".to_string(), None, b"data")
        .await
        .unwrap();
    session.finish().await.unwrap();
    // As the S3 gateway writes them: headers, and the content's checksum.
    let attrs = serde_json::json!({
        "headers": {"content-type": "text/csv"},
        "checksum": {"algorithm": "CRC32", "value": "rfPzYw==", "type": "FULL_OBJECT"},
    });
    let write = [pach_pfs::AttrsWrite {
        path: "/f".into(),
        hash: entry.hash,
        attrs: Some(attrs.clone()),
    }];
    a.pfs
        .write_planned("r", "master", &write, |_| {
            let entry = entry.clone();
            async move { Ok((vec![pach_storage::Change::Put(entry)], ())) }
        })
        .await
        .unwrap();
    let stream = a.dir.path().join("attrs.stream");
    extract_to(&a, true, None, &stream).await;
    let b = cluster(Arc::new(object_store::memory::InMemory::new()));
    restore_from(&b, &stream).await.unwrap();
    assert_eq!(
        b.pfs.file_attrs("r", "/f", &entry.hash).await.unwrap(),
        Some(attrs)
    );
    assert!(verify_against(&b, &stream).await.is_empty());
}
