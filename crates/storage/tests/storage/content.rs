//! Writing and reading file content: round trips, streaming, dedup, corruption.

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use pach_storage::{ChunkLocation, ContentHash, ContentStore, LOOSE_MIN, StorageError, file_hash};

use crate::support::*;

#[tokio::test]
async fn round_trips_on_every_backend() {
    let sizes = [
        0,
        1,
        100,
        LOOSE_MIN - 1,
        LOOSE_MIN,
        LOOSE_MIN + 1,
        3 * 1024 * 1024 + 17,
    ];
    for backend in Backend::all() {
        let (_, content) = counted(&backend);
        for (i, &size) in sizes.iter().enumerate() {
            for data in [random_bytes(size, i as u64), text_bytes(size)] {
                let entry = put_file(&content, "/f", None, &data).await;
                assert_eq!(
                    entry.size,
                    data.len() as u64,
                    "{} size {size}",
                    backend.name()
                );
                assert_eq!(
                    read_all(&content, &entry, 0, None).await,
                    data,
                    "{} size {size}",
                    backend.name()
                );
                if size == 0 {
                    assert!(entry.chunks.is_empty());
                    assert_eq!(entry.hash, ContentHash::of(b""));
                }
                if entry.chunks.len() == 1 {
                    assert_eq!(entry.hash, ContentHash::of(&data));
                }
                assert_eq!(entry.hash, file_hash(entry.chunks.iter().map(|c| &c.hash)));
            }
        }
    }
}

#[tokio::test]
async fn chunk_placement_follows_size() {
    let content = ContentStore::new(Backend::Memory.store(), Path::default());
    let tiny = put_file(&content, "/tiny", None, b"hello").await;
    assert!(matches!(tiny.chunks[0].loc, ChunkLocation::Packed { .. }));
    let exact = put_file(&content, "/exact", None, &random_bytes(LOOSE_MIN, 1)).await;
    assert_eq!(exact.chunks.len(), 1);
    assert_eq!(exact.chunks[0].loc, ChunkLocation::Loose);
    let big = put_file(&content, "/big", None, &random_bytes(5 << 20, 2)).await;
    assert!(big.chunks.len() > 3);
    assert!(
        big.chunks
            .iter()
            .all(|c| c.len as usize <= pach_storage::chunking::MAX_CHUNK)
    );
}

#[tokio::test]
async fn partial_reads() {
    for backend in Backend::all() {
        let (_, content) = counted(&backend);
        let data = random_bytes(4 << 20, 9);
        let entry = put_file(&content, "/f", None, &data).await;
        for (offset, len) in [
            (0u64, Some(1u64)),
            (1, Some(10)),
            (1_000_000, Some(2_000_000)),
            (3 << 20, None),
            (4 << 20, None),
            (5 << 20, Some(3)),
        ] {
            let start = (offset as usize).min(data.len());
            let end = len
                .map_or(data.len(), |l| (offset + l) as usize)
                .min(data.len());
            assert_eq!(
                read_all(&content, &entry, offset, len).await,
                &data[start..end],
                "{offset} {len:?}"
            );
        }
    }
}

#[tokio::test]
async fn small_writes_stream_to_the_same_chunks() {
    let content = ContentStore::new(Backend::Memory.store(), Path::default());
    let data = random_bytes(12 << 20, 4);
    let whole = put_file(&content, "/f", None, &data).await;
    let mut session = content.session();
    session.begin_file("/f".into(), None);
    for piece in data.chunks(4096 + 3) {
        session.write(piece).await.unwrap();
    }
    let streamed = session.end_file().await.unwrap();
    session.finish().await.unwrap();
    assert_eq!(streamed, whole);
    assert_eq!(read_all(&content, &streamed, 0, None).await, data);
}

#[tokio::test]
async fn many_files_in_one_session() {
    for backend in Backend::all() {
        let (counting, content) = counted(&backend);
        let mut session = content.session();
        let mut entries = Vec::new();
        for i in 0..300 {
            let data = text_bytes(100 + i * 97);
            let mut body = format!("file {i}\n").into_bytes();
            body.extend_from_slice(&data);
            let entry = session
                .put_bytes(format!("/dir/{i}"), None, &body)
                .await
                .unwrap();
            entries.push((entry, body));
        }
        session.finish().await.unwrap();
        let log = counting.take();
        // All of them fit in one pack.
        assert_eq!(
            matching(&log, Op::Put, "/packs/").count(),
            1,
            "{}",
            backend.name()
        );
        for (entry, body) in &entries {
            assert_eq!(&read_all(&content, entry, 0, None).await, body);
        }
    }
}

#[tokio::test]
async fn identical_large_content_stores_no_new_chunks() {
    for backend in Backend::all() {
        let (counting, content) = counted(&backend);
        let data = random_bytes(6 << 20, 5);
        let first = put_file(&content, "/a", None, &data).await;
        let loose = first
            .chunks
            .iter()
            .filter(|c| c.loc == ChunkLocation::Loose)
            .count();
        assert_eq!(
            matching(&counting.take(), Op::Put, "/chunks/").count(),
            loose
        );

        // Without `previous`: a HEAD per chunk finds it, no upload.
        let again = put_file(&content, "/b", None, &data).await;
        let log = counting.take();
        assert_eq!(
            matching(&log, Op::Put, "/chunks/").count(),
            0,
            "{}",
            backend.name()
        );
        assert_eq!(matching(&log, Op::Head, "/chunks/").count(), loose);
        assert_eq!(again.hash, first.hash);

        // With `previous`: not even a HEAD.
        let third = put_file(&content, "/a", Some(first.clone()), &data).await;
        let log = counting.take();
        assert!(log.iter().all(|r| r.op != Op::Put), "{log:?}");
        assert_eq!(matching(&log, Op::Head, "/chunks/").count(), 0);
        assert_eq!(third, first);
    }
}

#[tokio::test]
async fn unchanged_small_file_with_previous_adds_no_pack_bytes() {
    for backend in Backend::all() {
        let (counting, content) = counted(&backend);
        let first = put_file(&content, "/small", None, b"small file body").await;
        counting.take();
        let mut session = content.session();
        let renamed = session
            .put_bytes("/moved".into(), Some(first.clone()), b"small file body")
            .await
            .unwrap();
        session.finish().await.unwrap();
        assert!(counting.take().is_empty(), "{}", backend.name());
        assert_eq!(renamed.path, "/moved");
        assert_eq!(renamed.chunks, first.chunks);
        assert_eq!(renamed.hash, first.hash);
        assert_eq!(
            read_all(&content, &renamed, 0, None).await,
            b"small file body"
        );

        // Changed content does get stored.
        let changed = put_file(&content, "/small", Some(first.clone()), b"small file body!").await;
        assert_eq!(matching(&counting.take(), Op::Put, "/packs/").count(), 1);
        assert_ne!(changed.hash, first.hash);
    }
}

#[tokio::test]
async fn small_edit_of_large_file_stores_little() {
    for backend in Backend::all() {
        let (counting, content) = counted(&backend);
        let size = 20 << 20;
        let mut data = random_bytes(size, 6);
        let first = put_file(&content, "/big", None, &data).await;
        counting.take();
        // Overwrite 1% in place, in the middle.
        let edit = random_bytes(size / 100, 7);
        data[size / 2..size / 2 + edit.len()].copy_from_slice(&edit);
        let second = put_file(&content, "/big", Some(first.clone()), &data).await;
        let written: u64 = counting
            .take()
            .iter()
            .filter(|r| r.op == Op::Put)
            .map(|r| r.bytes)
            .sum();
        assert!(
            written < size as u64 / 10,
            "{} wrote {written} bytes",
            backend.name()
        );
        assert_eq!(read_all(&content, &second, 0, None).await, data);
    }
}

#[tokio::test]
async fn corrupted_chunk_is_detected_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::Local(dir);
    let store = backend.store();
    let content = ContentStore::new(store.clone(), Path::default());
    let data = random_bytes(300_000, 8);
    let entry = put_file(&content, "/f", None, &data).await;
    let chunk = &entry.chunks[0];
    assert_eq!(chunk.loc, ChunkLocation::Loose);
    let key = content.chunk_key(&chunk.hash);
    let mut blob = store
        .get(&key)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    blob[1000] ^= 1;
    store.put(&key, blob.into()).await.unwrap();
    let err = content
        .read_file(&entry, 0, None)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StorageError::Corrupt { key: k, .. } if *k == key.to_string()),
        "{err}"
    );
    assert!(err.to_string().contains(key.as_ref()));
}

#[tokio::test]
async fn corrupted_pack_and_missing_objects_are_named() {
    let store = Backend::Memory.store();
    let content = ContentStore::new(store.clone(), Path::from("p"));
    let entry = put_file(&content, "/f", None, &text_bytes(5000)).await;
    let ChunkLocation::Packed { pack, .. } = entry.chunks[0].loc else {
        panic!("not packed")
    };
    let key = content.pack_key(&pack);
    let mut blob = store
        .get(&key)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let last = blob.len() - 1;
    blob[last] ^= 0x55;
    store.put(&key, blob.into()).await.unwrap();
    let err = content
        .read_file(&entry, 0, None)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(err.to_string().contains(key.as_ref()), "{err}");

    store.delete(&key).await.unwrap();
    let err = content
        .read_file(&entry, 0, None)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StorageError::NotFound { key: k } if *k == key.to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn session_misuse_is_an_error() {
    let content = ContentStore::new(Backend::Memory.store(), Path::default());
    let mut session = content.session();
    assert!(matches!(
        session.write(b"x").await,
        Err(StorageError::SessionMisuse(_))
    ));
    assert!(matches!(
        session.end_file().await,
        Err(StorageError::SessionMisuse(_))
    ));
    session.begin_file("/open".into(), None);
    session.write(b"x").await.unwrap();
    assert!(
        matches!(session.finish().await, Err(StorageError::UnfinishedFile { path }) if path == "/open")
    );
}

#[tokio::test]
async fn session_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let content = ContentStore::new(Backend::Memory.store(), Path::default());
    let mut session = content.session();
    session.begin_file("/f".into(), None);
    let write = session.write(b"abc");
    assert_send(&write);
    write.await.unwrap();
    let end = session.end_file();
    assert_send(&end);
    end.await.unwrap();
    let finish = session.finish();
    assert_send(&finish);
    finish.await.unwrap();
    assert_send(&content.read_file(
        &pach_storage::FileEntry::from_chunks("/x".into(), vec![]),
        0,
        None,
    ));
    let reader = content.open_index(None).await.unwrap();
    assert_send(&reader.get("/x"));
    assert_send(&content.write_index(None, vec![]));
}

#[tokio::test]
async fn staged_changes_round_trip() {
    use pach_storage::Change;
    let content = ContentStore::new(Backend::Memory.store(), Path::from("x"));
    let entry = put_file(&content, "/a", None, b"a").await;
    let changes = vec![
        Change::Put(entry.clone()),
        Change::Append(entry),
        Change::Delete("/dir".into()),
    ];
    let key = content.write_changes(&changes).await.unwrap();
    assert_eq!(content.read_changes(&key).await.unwrap(), changes);
    let missing = ContentHash::of(b"nothing");
    assert!(
        content
            .read_changes(&missing)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

/// `offset`..`offset + len` of `entries` read as one, checking that no item
/// spans two files (`ends`: where each file ends in the concatenation).
async fn read_concatenated(
    content: &ContentStore,
    entries: &[pach_storage::FileEntry],
    ends: &[u64],
    offset: u64,
    len: Option<u64>,
) -> Vec<u8> {
    let items: Vec<_> = content
        .read_files(entries, offset, len)
        .try_collect()
        .await
        .unwrap();
    let mut pos = offset;
    for item in &items {
        let next_end = ends.iter().find(|&&e| e > pos).copied().unwrap();
        assert!(pos + item.len() as u64 <= next_end, "an item spans files");
        pos += item.len() as u64;
    }
    items.concat()
}

#[tokio::test]
async fn several_files_read_as_one_concatenation_with_ranges_across_them() {
    let store = Backend::Memory.store();
    let content = ContentStore::new(store, Path::from("p"));
    let datas = [
        random_bytes(3000, 1),
        Vec::new(),
        text_bytes(LOOSE_MIN + 5),
        random_bytes(2 * 1024 * 1024 + 3, 2),
        random_bytes(7, 3),
    ];
    let mut entries = Vec::new();
    let mut ends = Vec::new();
    let mut at = 0u64;
    for (i, d) in datas.iter().enumerate() {
        entries.push(put_file(&content, &format!("/f{i}"), None, d).await);
        at += d.len() as u64;
        ends.push(at);
    }
    let all = datas.concat();
    let read =
        |offset: u64, len: Option<u64>| read_concatenated(&content, &entries, &ends, offset, len);
    assert_eq!(read(0, None).await, all);
    assert_eq!(read(2990, Some(20)).await, all[2990..3010]);
    let mid = 3000 + LOOSE_MIN;
    assert_eq!(read(mid as u64, Some(10_000)).await, all[mid..mid + 10_000]);
    assert_eq!(read(all.len() as u64 - 9, None).await, all[all.len() - 9..]);
    assert!(read(all.len() as u64, None).await.is_empty());
    assert!(read(5, Some(0)).await.is_empty());
}

#[tokio::test]
async fn neighbouring_small_files_are_read_with_one_request_per_pack_run() {
    let backend = Backend::Memory;
    let (counting, content) = counted(&backend);
    let mut session = content.session();
    let mut entries = Vec::new();
    let mut datas = Vec::new();
    for i in 0..200u64 {
        let data = random_bytes(500 + (i as usize * 7) % 900, i);
        entries.push(
            session
                .put_bytes(format!("/d/f{i:03}"), None, &data)
                .await
                .unwrap(),
        );
        datas.push(data);
    }
    session.finish().await.unwrap();
    let ChunkLocation::Packed { pack, .. } = entries[0].chunks[0].loc else {
        panic!("small files are packed")
    };
    counting.take();
    let read: Vec<_> = content
        .read_files(&entries, 0, None)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(read.concat(), datas.concat());
    let log = counting.take();
    assert_eq!(
        matching(&log, Op::Get, "packs").count(),
        1,
        "one range request for 200 neighbours: {log:?}"
    );

    // A pack cut short is an error naming it, not a crash.
    let key = content.pack_key(&pack);
    let store = counting.clone();
    let blob = store.get(&key).await.unwrap().bytes().await.unwrap();
    store
        .put(&key, blob.slice(..blob.len() / 2).into())
        .await
        .unwrap();
    let err = content
        .read_files(&entries, 0, None)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(err.to_string().contains(key.as_ref()), "{err}");
}
