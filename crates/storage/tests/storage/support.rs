//! Test helpers: an object store wrapper that records every request, data
//! generators, and small conveniences over the public API.

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use pach_storage::{ContentStore, FileEntry};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put,
    Get,
    Head,
}

#[derive(Clone, Debug)]
pub struct Request {
    pub op: Op,
    pub key: String,
    pub bytes: u64,
}

/// Passes everything to an inner store and remembers puts, gets and heads.
#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    log: Mutex<Vec<Request>>,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(CountingStore {
            inner,
            log: Mutex::new(Vec::new()),
        })
    }

    fn record(&self, op: Op, key: &Path, bytes: u64) {
        self.log.lock().unwrap().push(Request {
            op,
            key: key.to_string(),
            bytes,
        });
    }

    pub fn take(&self) -> Vec<Request> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

/// Requests of kind `op` whose key contains `part`.
pub fn matching<'a>(
    log: &'a [Request],
    op: Op,
    part: &'a str,
) -> impl Iterator<Item = &'a Request> + 'a {
    log.iter()
        .filter(move |r| r.op == op && r.key.contains(part))
}

impl fmt::Display for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.record(Op::Put, location, payload.content_length() as u64);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.record(Op::Put, location, 0);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let op = if options.head { Op::Head } else { Op::Get };
        self.record(op, location, 0);
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// The two kinds of backend every content test runs against.
pub enum Backend {
    Memory,
    Local(tempfile::TempDir),
}

impl Backend {
    pub fn all() -> Vec<Backend> {
        vec![
            Backend::Memory,
            Backend::Local(tempfile::tempdir().unwrap()),
        ]
    }

    pub fn store(&self) -> Arc<dyn ObjectStore> {
        match self {
            Backend::Memory => Arc::new(InMemory::new()),
            Backend::Local(dir) => Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap()),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Local(_) => "local",
        }
    }
}

/// A counting store over `backend` and a content store using it under prefix "cluster".
pub fn counted(backend: &Backend) -> (Arc<CountingStore>, ContentStore) {
    let counting = CountingStore::new(backend.store());
    let content = ContentStore::new(counting.clone(), Path::from("cluster"));
    (counting, content)
}

/// Deterministic incompressible bytes.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Deterministic compressible bytes.
pub fn text_bytes(len: usize) -> Vec<u8> {
    let line = b"the quick brown fox jumps over the lazy dog 0123456789\n";
    line.iter().copied().cycle().take(len).collect()
}

pub async fn put_file(
    content: &ContentStore,
    path: &str,
    previous: Option<FileEntry>,
    data: &[u8],
) -> FileEntry {
    let mut session = content.session();
    let entry = session
        .put_bytes(path.to_string(), previous, data)
        .await
        .unwrap();
    session.finish().await.unwrap();
    entry
}

pub async fn read_all(
    content: &ContentStore,
    entry: &FileEntry,
    offset: u64,
    len: Option<u64>,
) -> Vec<u8> {
    let pieces: Vec<Bytes> = content
        .read_file(entry, offset, len)
        .try_collect()
        .await
        .unwrap();
    pieces.concat()
}
