//! A put session's memory stays bounded whatever the file size.
//!
//! This is its own test binary because it installs a counting global
//! allocator and must not share the process with other tests.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use futures::stream::{self, BoxStream};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use pach_storage::ContentStore;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Accepts and forgets every upload, taking `delay` for each; finds nothing.
#[derive(Debug)]
struct NullStore {
    delay: std::time::Duration,
}

impl fmt::Display for NullStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NullStore")
    }
}

fn not_found(location: &Path) -> object_store::Error {
    object_store::Error::NotFound {
        path: location.to_string(),
        source: "null store".into(),
    }
}

#[async_trait]
impl ObjectStore for NullStore {
    async fn put_opts(
        &self,
        _: &Path,
        _: PutPayload,
        _: PutOptions,
    ) -> object_store::Result<PutResult> {
        tokio::time::sleep(self.delay).await;
        Ok(PutResult {
            e_tag: None,
            version: None,
            extensions: Default::default(),
        })
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        _: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(not_found(location))
    }

    async fn get_opts(&self, location: &Path, _: GetOptions) -> object_store::Result<GetResult> {
        Err(not_found(location))
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        locations
    }

    fn list(&self, _: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        Box::pin(stream::empty())
    }

    async fn list_with_delimiter(&self, _: Option<&Path>) -> object_store::Result<ListResult> {
        Ok(ListResult {
            common_prefixes: vec![],
            objects: vec![],
            extensions: Default::default(),
        })
    }

    async fn copy_opts(&self, _: &Path, to: &Path, _: CopyOptions) -> object_store::Result<()> {
        Err(not_found(to))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_file_streams_through_bounded_memory() {
    // A fast store, and one slow enough that uploads pile up to the in-flight limits.
    for delay_ms in [0, 20] {
        let store = NullStore {
            delay: std::time::Duration::from_millis(delay_ms),
        };
        let peak = peak_session_memory(ContentStore::new(Arc::new(store), Path::default())).await;
        assert!(
            peak < 32 << 20,
            "session peaked at {} MiB with {delay_ms} ms uploads",
            peak >> 20
        );
        println!(
            "session peak with {delay_ms} ms uploads: {:.1} MiB",
            peak as f64 / (1 << 20) as f64
        );
    }
}

/// Bytes allocated at the worst moment of ingesting a big file and many small ones.
async fn peak_session_memory(content: ContentStore) -> usize {
    let mut piece = vec![0u8; 1 << 20];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let baseline = CURRENT.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);

    let mut session = content.session();
    session.begin_file("/huge".into(), None);
    // 192 MiB of incompressible data plus many small files, never held whole.
    for _ in 0..192 {
        for word in piece.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        session.write(&piece).await.unwrap();
    }
    let entry = session.end_file().await.unwrap();
    for i in 0..2000u32 {
        session
            .put_bytes(
                format!("/small/{i}"),
                None,
                &piece[i as usize * 100..][..9000],
            )
            .await
            .unwrap();
    }
    session.finish().await.unwrap();

    assert_eq!(entry.size, 192 << 20);
    PEAK.load(Ordering::Relaxed) - baseline
}
