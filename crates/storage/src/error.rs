//! The one error type of this crate.
//!
//! Every variant that concerns stored data names the object key (or the
//! file path) involved, because the person reading the message needs to
//! know *which* object is missing or damaged, not just that something is.

use std::path::PathBuf;

/// Everything that can go wrong while storing or reading content.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The URL given to [`crate::open_object_store`] uses a scheme we do not know.
    #[error(
        "unsupported object store URL {url:?}: use memory://, file:///abs/path, a plain \
         filesystem path, s3://bucket[/prefix], az://container[/prefix], gs://bucket[/prefix], \
         http://host[/path] or https://host[/path]"
    )]
    UnsupportedScheme { url: String },

    /// The URL has a known scheme but cannot be used as given.
    #[error("invalid object store URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// The object store client could not be configured.
    #[error("cannot open object store {url:?}: {source}")]
    OpenStore {
        url: String,
        #[source]
        source: object_store::Error,
    },

    /// The directory of a local store could not be created.
    #[error("cannot create local store directory {}: {source}", dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A write found no bucket or container to write into: object stores
    /// answer "not found" to a put only when the bucket itself is missing
    /// (object_store creates neither buckets nor Azure containers).
    #[error(
        "cannot write {key}: the bucket or container of {store} does not exist; create it \
         (Azure: `az storage container create --name CONTAINER`, S3: `aws s3 mb s3://BUCKET`, \
         GCS: `gcloud storage buckets create gs://BUCKET`) or point the storage URL at one that exists"
    )]
    MissingContainer { key: String, store: String },

    /// An object that metadata refers to does not exist.
    #[error("object {key} is missing from the object store")]
    NotFound { key: String },

    /// The object store failed an operation on an object.
    #[error("object store {op} of {key} failed: {source}")]
    ObjectStore {
        op: &'static str,
        key: String,
        #[source]
        source: object_store::Error,
    },

    /// An object exists but its bytes are not what its name or reference promises.
    #[error("object {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },

    /// A file entry contradicts itself (its chunk lengths do not add up, ...).
    #[error("file entry {path} is inconsistent: {reason}")]
    InvalidEntry { path: String, reason: String },

    /// A hex string is not a 32-byte content hash.
    #[error("invalid content hash {input:?}: {reason}")]
    InvalidHash { input: String, reason: String },

    /// A path in a change is not absolute and normalised.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },

    /// Encoding metadata failed (a bug or an impossible value, not bad data).
    #[error("cannot encode {what}: {reason}")]
    Encode { what: &'static str, reason: String },

    /// A [`crate::PutSession`] method was called out of order.
    #[error("put session misuse: {0}")]
    SessionMisuse(String),

    /// `finish` was called while a file was still open.
    #[error("put session finished while file {path} was still open (end_file was not called)")]
    UnfinishedFile { path: String },

    /// An earlier upload of this session failed; its error was already returned.
    #[error("put session is unusable because an earlier upload failed: {0}")]
    SessionFailed(String),

    /// A background task panicked or was cancelled.
    #[error("background storage task failed: {0}")]
    Task(String),
}

impl StorageError {
    /// Wraps an object store error, turning "not found" into [`StorageError::NotFound`]
    /// so callers can tell a missing object from a failing store.
    pub(crate) fn store(
        op: &'static str,
        key: &object_store::path::Path,
        source: object_store::Error,
    ) -> Self {
        match source {
            object_store::Error::NotFound { .. } => StorageError::NotFound {
                key: key.to_string(),
            },
            source => StorageError::ObjectStore {
                op,
                key: key.to_string(),
                source,
            },
        }
    }

    pub(crate) fn corrupt(key: &object_store::path::Path, reason: impl Into<String>) -> Self {
        StorageError::Corrupt {
            key: key.to_string(),
            reason: reason.into(),
        }
    }

    /// True when the error means "the object is not there" (as opposed to unreadable).
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::NotFound { .. })
    }
}

impl From<tokio::task::JoinError> for StorageError {
    fn from(err: tokio::task::JoinError) -> Self {
        StorageError::Task(err.to_string())
    }
}
