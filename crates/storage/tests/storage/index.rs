//! File indexes: merging changes, shard reuse, lookups and range listing.

use futures::TryStreamExt;
use object_store::path::Path;
use pach_storage::{
    Change, ChunkLocation, ChunkRef, ContentHash, ContentStore, FileEntry, IndexReader,
};

use crate::support::*;

/// An entry with made-up content: indexes never look at the bytes.
pub fn fake_entry(path: &str, seed: u64) -> FileEntry {
    let chunk = ChunkRef {
        hash: ContentHash::of(&seed.to_le_bytes()),
        len: (seed % 1000) as u32 + 1,
        loc: ChunkLocation::Loose,
    };
    FileEntry::from_chunks(path.to_string(), vec![chunk])
}

async fn paths(reader: &IndexReader, start: &str, end: Option<&str>) -> Vec<String> {
    let entries: Vec<FileEntry> = reader.range(start, end).try_collect().await.unwrap();
    entries.into_iter().map(|e| e.path).collect()
}

#[tokio::test]
async fn empty_index_has_a_root() {
    let content = ContentStore::new(Backend::Memory.store(), Path::default());
    let summary = content.write_index(None, vec![]).await.unwrap();
    assert_eq!((summary.files, summary.bytes), (0, 0));
    let reader = content.open_index(Some(&summary.root)).await.unwrap();
    assert_eq!(reader.files(), 0);
    assert_eq!(reader.root(), Some(summary.root));
    assert!(paths(&reader, "", None).await.is_empty());
    let none = content.open_index(None).await.unwrap();
    assert_eq!((none.files(), none.bytes(), none.root()), (0, 0, None));
    assert_eq!(none.get("/x").await.unwrap(), None);
}

#[tokio::test]
async fn appends_extend_files_and_read_back() {
    let content = ContentStore::new(Backend::Memory.store(), Path::default());
    let head = put_file(&content, "/log", None, b"first line\n").await;
    let tail = put_file(&content, "/log", None, b"second line\n").await;
    let v1 = content
        .write_index(None, vec![Change::Put(head.clone())])
        .await
        .unwrap();
    let v2 = content
        .write_index(Some(&v1.root), vec![Change::Append(tail.clone())])
        .await
        .unwrap();
    let reader = content.open_index(Some(&v2.root)).await.unwrap();
    let log = reader.get("/log").await.unwrap().unwrap();
    assert_eq!(log.size, head.size + tail.size);
    assert_eq!(log.chunks.len(), 2);
    assert_eq!(log.hash, pach_storage::file_hash([&head.hash, &tail.hash]));
    assert_eq!(
        read_all(&content, &log, 0, None).await,
        b"first line\nsecond line\n"
    );
    // Append to a missing file creates it.
    let v3 = content
        .write_index(
            Some(&v2.root),
            vec![Change::Append(FileEntry {
                path: "/new".into(),
                ..tail.clone()
            })],
        )
        .await
        .unwrap();
    let reader = content.open_index(Some(&v3.root)).await.unwrap();
    assert_eq!(
        reader.get("/new").await.unwrap().unwrap().chunks,
        tail.chunks
    );
    assert_eq!(v3.bytes, log.size + tail.size);
}

#[tokio::test]
async fn deleting_directories() {
    let content =
        ContentStore::new(Backend::Memory.store(), Path::default()).with_shard_capacity(4);
    let all = [
        "/a", "/a.txt", "/a/b/c", "/a/x", "/a/y", "/ab", "/b", "/b/a",
    ];
    let puts = all
        .iter()
        .enumerate()
        .map(|(i, p)| Change::Put(fake_entry(p, i as u64)))
        .collect();
    let base = content.write_index(None, puts).await.unwrap();
    assert_eq!(base.files, all.len() as u64);

    let after = content
        .write_index(Some(&base.root), vec![Change::Delete("/a".into())])
        .await
        .unwrap();
    let reader = content.open_index(Some(&after.root)).await.unwrap();
    assert_eq!(
        paths(&reader, "", None).await,
        ["/a.txt", "/ab", "/b", "/b/a"]
    );
    assert_eq!(after.files, 4);

    let sub = content
        .write_index(
            Some(&base.root),
            vec![Change::Delete("/a/b".into()), Change::Delete("/b".into())],
        )
        .await
        .unwrap();
    let reader = content.open_index(Some(&sub.root)).await.unwrap();
    assert_eq!(
        paths(&reader, "", None).await,
        ["/a", "/a.txt", "/a/x", "/a/y", "/ab"]
    );

    let none = content
        .write_index(Some(&base.root), vec![Change::Delete("/".into())])
        .await
        .unwrap();
    assert_eq!(none.files, 0);
    let again = content
        .write_index(
            Some(&base.root),
            vec![Change::Delete("/".into()), Change::Put(fake_entry("/z", 1))],
        )
        .await
        .unwrap();
    let reader = content.open_index(Some(&again.root)).await.unwrap();
    assert_eq!(paths(&reader, "", None).await, ["/z"]);
}

#[tokio::test]
async fn invalid_paths_are_refused() {
    let content = ContentStore::new(Backend::Memory.store(), Path::default());
    for bad in ["relative", "/trailing/", "/a//b", "/"] {
        let result = content
            .write_index(None, vec![Change::Put(fake_entry(bad, 1))])
            .await;
        assert!(
            matches!(result, Err(pach_storage::StorageError::InvalidPath { .. })),
            "{bad}"
        );
    }
}

fn numbered(i: usize) -> String {
    format!("/data/{:03}/file-{i:06}", i % 1000)
}

async fn big_index(content: &ContentStore, count: usize) -> pach_storage::IndexSummary {
    let puts = (0..count)
        .map(|i| Change::Put(fake_entry(&numbered(i), i as u64)))
        .collect();
    content.write_index(None, puts).await.unwrap()
}

#[tokio::test]
async fn a_small_change_writes_only_a_root_and_a_large_one_rewrites_the_shards_it_touches() {
    for backend in Backend::all() {
        let (counting, content) = counted(&backend);
        let base = big_index(&content, 20_000).await;
        assert_eq!(base.files, 20_000);
        let shards = content
            .open_index(Some(&base.root))
            .await
            .unwrap()
            .shards()
            .len();
        assert!(shards >= 5, "{shards} shards");
        counting.take();

        // Replace one file and insert one new file next to it.
        let changes = vec![
            Change::Put(fake_entry(&numbered(12_345), 99)),
            Change::Put(fake_entry(&format!("{}-b", numbered(12_345)), 7)),
        ];
        let next = content
            .write_index(Some(&base.root), changes)
            .await
            .unwrap();
        let log = counting.take();
        let gets = matching(&log, Op::Get, "/index/").count();
        let puts = matching(&log, Op::Put, "/index/").count();
        assert_eq!(
            (gets, puts),
            (1, 1),
            "{}: the shard holding the replaced file read, a root with both in its overlay written: {log:?}",
            backend.name()
        );
        assert_eq!(next.files, 20_001);

        let reader = content.open_index(Some(&next.root)).await.unwrap();
        assert_eq!(reader.shards().len(), shards);
        assert_eq!(reader.overlay().len(), 2);
        assert_eq!(
            reader.get(&numbered(12_345)).await.unwrap(),
            Some(fake_entry(&numbered(12_345), 99))
        );
        let all = paths(&reader, "", None).await;
        assert_eq!(all.len(), 20_001);
        assert!(all.windows(2).all(|w| w[0] < w[1]));

        // Too much for the overlay: it is folded into the shards with the
        // new change, and only the shards they land in are rewritten.
        let many = (0..300)
            .map(|k| Change::Put(fake_entry(&format!("{}-{k:03}", numbered(12_345)), k)))
            .collect();
        let last = content.write_index(Some(&next.root), many).await.unwrap();
        let log = counting.take();
        let puts = matching(&log, Op::Put, "/index/").count();
        assert!(
            puts <= 3,
            "{}: one or two shards and the root: {log:?}",
            backend.name()
        );
        assert_eq!(last.files, 20_301);
        let reader = content.open_index(Some(&last.root)).await.unwrap();
        assert!(reader.overlay().is_empty());
        assert_eq!(reader.shards().iter().map(|s| s.files).sum::<u64>(), 20_301);
        assert_eq!(
            reader.get(&numbered(12_345)).await.unwrap(),
            Some(fake_entry(&numbered(12_345), 99))
        );
        let all = paths(&reader, "", None).await;
        assert_eq!(all.len(), 20_301);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
    }
}

#[tokio::test]
async fn deleting_a_whole_directory_drops_shards_unread() {
    let (counting, content) = counted(&Backend::Memory);
    let puts = (0..10_000)
        .map(|i| {
            Change::Put(fake_entry(
                &format!("/{}/{i:05}", if i < 5000 { "left" } else { "right" }),
                i,
            ))
        })
        .collect();
    let base = content.write_index(None, puts).await.unwrap();
    counting.take();
    let next = content
        .write_index(Some(&base.root), vec![Change::Delete("/right".into())])
        .await
        .unwrap();
    assert_eq!(next.files, 5000);
    let log = counting.take();
    // The root, plus at most the one shard straddling /left and /right.
    assert!(matching(&log, Op::Get, "/index/").count() <= 2, "{log:?}");
}

#[tokio::test]
async fn shards_stay_bounded_under_repeated_inserts_and_deletes() {
    let content =
        ContentStore::new(Backend::Memory.store(), Path::default()).with_shard_capacity(16);
    let mut root = None;
    for round in 0..20u64 {
        let mut changes: Vec<Change> = (0..40)
            .map(|i| Change::Put(fake_entry(&format!("/f/{:04}", i * 20 + round), round)))
            .collect();
        if round % 3 == 2 {
            changes.push(Change::Delete("/f".into()));
        }
        let summary = content.write_index(root.as_ref(), changes).await.unwrap();
        root = Some(summary.root);
    }
    let reader = content.open_index(root.as_ref()).await.unwrap();
    assert_shard_sizes(&reader, 16);
}

/// Every shard holds at most `capacity` entries and, but for the last, at least a quarter of that.
fn assert_shard_sizes(reader: &IndexReader, capacity: u64) {
    let shards = reader.shards();
    let sizes: Vec<u64> = shards.iter().map(|s| s.files).collect();
    assert!(sizes.iter().all(|&n| n >= 1 && n <= capacity), "{sizes:?}");
    assert!(
        sizes[..sizes.len().saturating_sub(1)]
            .iter()
            .all(|&n| n >= capacity / 4),
        "{sizes:?}"
    );
    // Overlay entries replace shard entries or add to them.
    let in_shards = sizes.iter().sum::<u64>();
    let files = reader.files();
    assert!(
        in_shards <= files && files - in_shards <= reader.overlay().len() as u64,
        "{in_shards} in shards, {files} files"
    );
    assert!(shards.windows(2).all(|w| w[0].last < w[1].first));
}

#[tokio::test]
async fn a_shard_left_tiny_absorbs_its_successor() {
    let content =
        ContentStore::new(Backend::Memory.store(), Path::default()).with_shard_capacity(16);
    let name = |i: usize| format!("/f/{i:03}");
    let base = content
        .write_index(
            None,
            (0..60)
                .map(|i| Change::Put(fake_entry(&name(i), i as u64)))
                .collect(),
        )
        .await
        .unwrap();
    let reader = content.open_index(Some(&base.root)).await.unwrap();
    assert_eq!(
        reader.shards().iter().map(|s| s.files).collect::<Vec<_>>(),
        [12; 5]
    );
    let third = &reader.shards()[2];
    assert_eq!(
        (third.first.as_str(), third.last.as_str()),
        ("/f/024", "/f/035")
    );

    let next = content
        .write_index(
            Some(&base.root),
            (24..34).map(|i| Change::Delete(name(i))).collect(),
        )
        .await
        .unwrap();
    let reader = content.open_index(Some(&next.root)).await.unwrap();
    assert_eq!(
        reader.shards().iter().map(|s| s.files).collect::<Vec<_>>(),
        [12, 12, 14, 12]
    );
    assert_shard_sizes(&reader, 16);
}

#[tokio::test]
async fn range_and_get() {
    let content =
        ContentStore::new(Backend::Memory.store(), Path::default()).with_shard_capacity(8);
    let all: Vec<String> = (0..200).map(|i| format!("/d{}/f{i:03}", i % 4)).collect();
    let summary = content
        .write_index(
            None,
            all.iter()
                .enumerate()
                .map(|(i, p)| Change::Put(fake_entry(p, i as u64)))
                .collect(),
        )
        .await
        .unwrap();
    let mut sorted = all.clone();
    sorted.sort();
    let reader = content.open_index(Some(&summary.root)).await.unwrap();
    assert!(reader.shards().len() > 10);
    assert_eq!(paths(&reader, "", None).await, sorted);
    let under_d2: Vec<String> = sorted
        .iter()
        .filter(|p| p.starts_with("/d2/"))
        .cloned()
        .collect();
    assert_eq!(paths(&reader, "/d2/", Some("/d20")).await, under_d2);
    assert_eq!(
        paths(&reader, "/d1/f101", Some("/d1/f113")).await,
        ["/d1/f101", "/d1/f105", "/d1/f109"]
    );
    assert!(paths(&reader, "/z", None).await.is_empty());
    assert!(paths(&reader, "/d1", Some("/d1")).await.is_empty());
    for (i, path) in all.iter().enumerate() {
        assert_eq!(
            reader.get(path).await.unwrap(),
            Some(fake_entry(path, i as u64))
        );
    }
    assert_eq!(reader.get("/d1").await.unwrap(), None);
    assert_eq!(reader.get("/d1/f000").await.unwrap(), None);
    assert_eq!(reader.get("/zzz").await.unwrap(), None);
}
