//! Throughput checks. Ignored by default (they only mean something in
//! release builds); run with
//! `cargo test -p pach-storage --release --test storage perf -- --ignored --nocapture`.

use std::time::Instant;

use futures::StreamExt;
use object_store::path::Path;
use pach_storage::{Change, ContentStore};

use crate::index::fake_entry;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn ingest_small_and_large_files_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    ingest(&Backend::Local(dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn ingest_small_and_large_files_in_memory() {
    ingest(&Backend::Memory).await;
}

/// 4,000 small text files and 4 x 48 MiB of random data through one session.
async fn ingest(backend: &Backend) {
    let content = ContentStore::new(backend.store(), Path::default());
    let smalls: Vec<Vec<u8>> = (0..4000)
        .map(|i| text_bytes(9000 + (i * 37) % 2000))
        .collect();
    let larges: Vec<Vec<u8>> = (0..4).map(|i| random_bytes(48 << 20, i)).collect();
    let total: usize = smalls.iter().chain(&larges).map(Vec::len).sum();
    let started = Instant::now();
    let mut session = content.session();
    for (i, data) in smalls.iter().enumerate() {
        session
            .put_bytes(format!("/small/{i:05}"), None, data)
            .await
            .unwrap();
    }
    for (i, data) in larges.iter().enumerate() {
        session.begin_file(format!("/large/{i}"), None);
        for piece in data.chunks(1 << 20) {
            session.write(piece).await.unwrap();
        }
        session.end_file().await.unwrap();
    }
    session.finish().await.unwrap();
    let elapsed = started.elapsed();
    println!(
        "{}: ingested {} MB in {elapsed:?} ({:.0} MB/s)",
        backend.name(),
        total / 1_000_000,
        total as f64 / 1e6 / elapsed.as_secs_f64()
    );
    if !cfg!(debug_assertions) {
        assert!(elapsed.as_secs_f64() < 1.0, "ingest took {elapsed:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn list_a_million_files() {
    let content = ContentStore::new(Backend::Memory.store(), Path::default());
    let puts = (0..1_000_000u64)
        .map(|i| Change::Put(fake_entry(&format!("/dir{:02}/file-{i:08}", i % 50), i)))
        .collect();
    let started = Instant::now();
    let summary = content.write_index(None, puts).await.unwrap();
    println!("wrote 1M-entry index in {:?}", started.elapsed());
    let reader = content.open_index(Some(&summary.root)).await.unwrap();
    let started = Instant::now();
    let mut stream = reader.range("", None);
    stream.next().await.unwrap().unwrap();
    let first = started.elapsed();
    let mut count = 1;
    while let Some(entry) = stream.next().await {
        entry.unwrap();
        count += 1;
    }
    let elapsed = started.elapsed();
    assert_eq!(count, 1_000_000);
    if !cfg!(debug_assertions) {
        assert!(first.as_millis() < 100, "first entry after {first:?}");
        assert!(elapsed.as_secs_f64() < 1.0, "listing took {elapsed:?}");
    }
    println!(
        "first entry after {first:?}; listed {count} in {elapsed:?} ({:.0} entries/s)",
        count as f64 / elapsed.as_secs_f64()
    );
    let started = Instant::now();
    for i in (0..1_000_000u64).step_by(10_007) {
        assert!(
            reader
                .get(&format!("/dir{:02}/file-{i:08}", i % 50))
                .await
                .unwrap()
                .is_some()
        );
    }
    println!("100 random gets in {:?}", started.elapsed());
}
