//! The local-directory object store, reading without zeroing first.
//!
//! object_store's `LocalFileSystem` reads a range into a buffer it fills
//! with zeros before reading over them: a `memset` of every byte read, 7%
//! of pachd's CPU while it serves a large file. [`LocalFiles`] keeps
//! `LocalFileSystem` for everything (opening, conditions, ranges checked
//! against the file's size, writes, listings) and only reads the opened
//! file's range itself, into a buffer that the read fills.

use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

#[derive(Debug)]
pub(crate) struct LocalFiles(pub(crate) LocalFileSystem);

impl fmt::Display for LocalFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// `range` of `file`, or an error naming `path` if the file is shorter.
fn read_range(mut file: std::fs::File, path: &std::path::Path, range: Range<u64>) -> Result<Bytes> {
    let failed = |source: std::io::Error| object_store::Error::Generic {
        store: "LocalFileSystem",
        source: format!(
            "cannot read {}..{} of {}: {source}",
            range.start,
            range.end,
            path.display()
        )
        .into(),
    };
    let len = range.end - range.start;
    let mut buf = Vec::with_capacity(len as usize);
    file.seek(SeekFrom::Start(range.start)).map_err(failed)?;
    file.take(len).read_to_end(&mut buf).map_err(failed)?;
    if buf.len() as u64 != len {
        return Err(failed(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("the file ended after {} bytes", buf.len()),
        )));
    }
    Ok(buf.into())
}

#[async_trait]
impl ObjectStore for LocalFiles {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.0.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.0.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let mut result = self.0.get_opts(location, options).await?;
        let payload = std::mem::replace(
            &mut result.payload,
            GetResultPayload::Stream(stream::empty().boxed()),
        );
        result.payload = match payload {
            GetResultPayload::File(file, path) => {
                let range = result.range.clone();
                let bytes = tokio::task::spawn_blocking(move || read_range(file, &path, range))
                    .await
                    .map_err(|e| object_store::Error::Generic {
                        store: "LocalFileSystem",
                        source: e.into(),
                    })??;
                GetResultPayload::Stream(stream::once(async move { Ok(bytes) }).boxed())
            }
            other => other,
        };
        Ok(result)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.0.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.0.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.0.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.0.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.0.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.0.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.0.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::{GetRange, ObjectStoreExt};

    use super::*;

    #[tokio::test]
    async fn reads_whole_files_and_ranges_as_local_file_system_does() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFiles(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let key = Path::from("a/b");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        store.put(&key, data.clone().into()).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap().bytes().await.unwrap(), data);
        assert_eq!(
            store.get_range(&key, 10..70_000).await.unwrap(),
            data[10..70_000]
        );
        let tail = GetOptions {
            range: Some(GetRange::Suffix(5)),
            ..Default::default()
        };
        let got = store.get_opts(&key, tail).await.unwrap();
        assert_eq!(got.range, 99_995..100_000);
        assert_eq!(got.bytes().await.unwrap(), data[99_995..]);
        // Whatever LocalFileSystem answers (a range past the end, a start
        // past the end, a missing object), so does LocalFiles.
        let plain = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        for range in [99_000..100_001, 100_001..100_002, 0..0] {
            let ours = store.get_range(&key, range.clone()).await;
            let theirs = plain.get_range(&key, range.clone()).await;
            match (ours, theirs) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{range:?}"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{range:?}"),
                (a, b) => panic!("{range:?}: {a:?} against {b:?}"),
            }
        }
        assert!(matches!(
            store.get(&Path::from("nope")).await,
            Err(object_store::Error::NotFound { .. })
        ));
    }

    #[test]
    fn a_file_shorter_than_its_range_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"short").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let err = read_range(file, &path, 2..10).unwrap_err().to_string();
        assert!(err.contains("ended after 3 bytes"), "{err}");
    }
}
