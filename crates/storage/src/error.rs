//! The one error type of this crate.
//!
//! Every variant that concerns stored data names the object key (or the
//! file path) involved, because the person reading the message needs to
//! know *which* object is missing or damaged, not just that something is.

use std::path::PathBuf;

/// Everything that can go wrong while storing or reading content.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The URL given to [`crate::open_url`] uses a scheme we do not know.
    #[error(
        "unsupported object store URL {url:?}: use s3://bucket[/path], az://container[/path], \
         gs://bucket[/path], http://host[/path], https://host[/path] or file:///abs/path"
    )]
    UnsupportedScheme { url: String },

    /// The URL has a known scheme but cannot be used as given. (The URL
    /// comes last: a long one is cut from messages, the reason must stay.)
    #[error("invalid URL ({reason}): {url:?}")]
    InvalidUrl { url: String, reason: String },

    /// The URL is well formed, but the [`crate::UrlPolicy`] it was given
    /// under does not let it name that place.
    #[error("URL refused ({reason}): {url:?}")]
    UrlRefused { url: String, reason: String },

    /// The object store client could not be configured.
    #[error("cannot open object store {url:?}: {source}")]
    OpenStore {
        url: String,
        #[source]
        source: object_store::Error,
    },

    /// The directory of a local store could not be created. (The I/O error
    /// is part of the message, not a source, so that it is printed once.)
    #[error("cannot create local store directory {}: {cause}", dir.display())]
    CreateDir { dir: PathBuf, cause: std::io::Error },

    /// A local store's directory is a file.
    #[error("{} is a file, not a directory", path.display())]
    NotADirectory { path: PathBuf },

    /// A local store's directory takes no new file.
    #[error("cannot write into the local store directory {}: {cause}", dir.display())]
    NotWritable { dir: PathBuf, cause: std::io::Error },

    /// No credentials for an S3 bucket: no variable names any, and the EC2
    /// instance metadata service (the last source object_store tries) gave none.
    #[error(
        "no S3 credentials for {url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
         (with AWS_SESSION_TOKEN for temporary ones), or AWS_WEB_IDENTITY_TOKEN_FILE and \
         AWS_ROLE_ARN for web identity; none is set, and no EC2 instance profile answered \
         ({problem}){}",
        match profile {
            Some(p) => format!(
                ". AWS_PROFILE={p} is set, but profiles are not read: export the profile's keys \
                 (`aws configure export-credentials --profile {p} --format env`)"
            ),
            None => String::new(),
        }
    )]
    NoCredentials {
        url: String,
        problem: String,
        profile: Option<String>,
    },

    /// An S3 bucket with credentials did not answer a listing.
    #[error(
        "the bucket of {url} does not answer ({problem}); check that the bucket exists, \
         the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), AWS_REGION, and for \
         S3-compatible servers AWS_ENDPOINT (with AWS_ALLOW_HTTP=true for http://)"
    )]
    BucketUnreachable { url: String, problem: String },

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
