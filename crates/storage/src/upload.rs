//! Background uploads with bounded concurrency and bounded memory.
//!
//! A session hands finished blobs (or raw chunks still to be compressed) to
//! an [`Uploader`], which runs each as a spawned task so hashing of the next
//! chunk overlaps with compression and I/O of the previous ones. At most
//! [`MAX_TASKS`] tasks and [`MAX_BYTES`] bytes are in flight; submitting more
//! waits for earlier tasks, which is the back-pressure that keeps a session's
//! memory bounded whatever the file size. The first failure is reported by the
//! next call and the uploader refuses work afterwards.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::task::JoinSet;

use crate::StorageError;
use crate::codec::chunk_payload;

const MAX_TASKS: usize = 8;
const MAX_BYTES: usize = 16 * 1024 * 1024;

pub(crate) struct Uploader {
    store: Arc<dyn ObjectStore>,
    tasks: JoinSet<Result<usize, StorageError>>,
    in_flight: usize,
    /// Set once a task failed; its error has been returned to the caller.
    failed: Option<String>,
}

impl Uploader {
    pub(crate) fn new(store: Arc<dyn ObjectStore>) -> Self {
        Uploader {
            store,
            tasks: JoinSet::new(),
            in_flight: 0,
            failed: None,
        }
    }

    /// Uploads `blob` at `key` as is.
    pub(crate) async fn put_blob(&mut self, key: Path, blob: Vec<u8>) -> Result<(), StorageError> {
        let size = blob.len();
        self.make_room(size).await?;
        let store = Arc::clone(&self.store);
        self.tasks.spawn(async move {
            put(&*store, &key, blob.into()).await?;
            Ok(size)
        });
        self.in_flight += size;
        Ok(())
    }

    /// Uploads the chunk `raw` at `key` unless an object is already there.
    ///
    /// Compression happens in the task, off the caller's path.
    pub(crate) async fn put_chunk_if_absent(
        &mut self,
        key: Path,
        raw: Bytes,
    ) -> Result<(), StorageError> {
        // While compressing, the task holds the raw chunk and its blob.
        let size = 2 * raw.len();
        self.make_room(size).await?;
        let store = Arc::clone(&self.store);
        self.tasks.spawn(async move {
            if exists(&*store, &key).await? {
                return Ok(size);
            }
            put(&*store, &key, chunk_payload(raw)).await?;
            Ok(size)
        });
        self.in_flight += size;
        Ok(())
    }

    /// Waits for every upload so far; returns the first error.
    pub(crate) async fn finish(&mut self) -> Result<(), StorageError> {
        self.check_failed()?;
        let mut first = None;
        while let Some(joined) = self.tasks.join_next().await {
            if let Err(err) = flatten(joined) {
                first.get_or_insert(err);
            }
        }
        self.in_flight = 0;
        match first {
            Some(err) => {
                self.failed = Some(err.to_string());
                Err(err)
            }
            None => Ok(()),
        }
    }

    async fn make_room(&mut self, size: usize) -> Result<(), StorageError> {
        self.check_failed()?;
        while !self.tasks.is_empty()
            && (self.tasks.len() >= MAX_TASKS || self.in_flight + size > MAX_BYTES)
        {
            let Some(joined) = self.tasks.join_next().await else {
                break;
            };
            match flatten(joined) {
                Ok(done) => self.in_flight = self.in_flight.saturating_sub(done),
                Err(err) => {
                    self.failed = Some(err.to_string());
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    fn check_failed(&self) -> Result<(), StorageError> {
        match &self.failed {
            Some(reason) => Err(StorageError::SessionFailed(reason.clone())),
            None => Ok(()),
        }
    }
}

fn flatten(
    joined: Result<Result<usize, StorageError>, tokio::task::JoinError>,
) -> Result<usize, StorageError> {
    joined?
}

pub(crate) async fn put(
    store: &dyn ObjectStore,
    key: &Path,
    payload: PutPayload,
) -> Result<(), StorageError> {
    match store.put(key, payload).await {
        Ok(_) => Ok(()),
        // "Not found" on a write means the bucket or container is missing, not the object.
        Err(object_store::Error::NotFound { .. }) => Err(StorageError::MissingContainer {
            key: key.to_string(),
            store: store.to_string(),
        }),
        Err(err) => Err(StorageError::store("put", key, err)),
    }
}

/// Whether a listing failed because its bucket or container does not exist.
/// object_store reports Azure's `ContainerNotFound` and S3's `NoSuchBucket`
/// on listings as generic errors, so the service's code is looked for.
pub(crate) fn names_missing_container(err: &object_store::Error) -> bool {
    match err {
        object_store::Error::NotFound { .. } => true,
        other => {
            let text = other.to_string();
            text.contains("ContainerNotFound") || text.contains("NoSuchBucket")
        }
    }
}

/// Whether `key` exists; "not found" is an answer, not an error.
pub(crate) async fn exists(store: &dyn ObjectStore, key: &Path) -> Result<bool, StorageError> {
    match store.head(key).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(err) => Err(StorageError::store("head", key, err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use async_trait::async_trait;
    use futures::stream::BoxStream;
    use object_store::memory::InMemory;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
        PutMultipartOptions, PutOptions, PutResult,
    };

    /// Answers every write as Azure and S3 do when the container is missing.
    #[derive(Debug, Default)]
    struct NoContainer(InMemory);

    impl std::fmt::Display for NoContainer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(
                f,
                "MicrosoftAzure {{ account: dev, container: missing-container }}"
            )
        }
    }

    fn missing(location: &Path) -> object_store::Error {
        object_store::Error::NotFound {
            path: location.to_string(),
            source: "ContainerNotFound".into(),
        }
    }

    #[async_trait]
    impl ObjectStore for NoContainer {
        async fn put_opts(
            &self,
            location: &Path,
            _: PutPayload,
            _: PutOptions,
        ) -> object_store::Result<PutResult> {
            Err(missing(location))
        }

        async fn put_multipart_opts(
            &self,
            location: &Path,
            _: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            Err(missing(location))
        }

        async fn get_opts(
            &self,
            location: &Path,
            options: GetOptions,
        ) -> object_store::Result<GetResult> {
            self.0.get_opts(location, options).await
        }

        fn delete_stream(
            &self,
            locations: BoxStream<'static, object_store::Result<Path>>,
        ) -> BoxStream<'static, object_store::Result<Path>> {
            self.0.delete_stream(locations)
        }

        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.0.list(prefix)
        }

        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<ListResult> {
            self.0.list_with_delimiter(prefix).await
        }

        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: CopyOptions,
        ) -> object_store::Result<()> {
            self.0.copy_opts(from, to, options).await
        }
    }

    #[tokio::test]
    async fn a_put_into_a_missing_container_names_the_container() {
        let key = Path::from("x/chunks/ab/abcd");
        let err = put(
            &NoContainer::default(),
            &key,
            Bytes::from_static(b"x").into(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, StorageError::MissingContainer { .. }),
            "{err:?}"
        );
        assert!(!err.is_not_found());
        let text = err.to_string();
        for part in [
            "x/chunks/ab/abcd",
            "missing-container",
            "does not exist",
            "create it",
        ] {
            assert!(text.contains(part), "{text}");
        }
    }

    #[tokio::test]
    async fn uploads_into_a_missing_container_fail_with_that_error() {
        let mut uploader = Uploader::new(Arc::new(NoContainer::default()));
        uploader
            .put_chunk_if_absent(Path::from("x/chunks/ab/abcd"), Bytes::from_static(b"data"))
            .await
            .unwrap();
        let err = uploader.finish().await.unwrap_err();
        assert!(
            matches!(err, StorageError::MissingContainer { .. }),
            "{err:?}"
        );
    }
}
