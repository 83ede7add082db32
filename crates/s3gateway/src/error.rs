//! The gateway's errors, each with the S3 error code and HTTP status that
//! S3 clients act on, given in one place ([`S3Error::code`], no catch-all
//! arm), and how versioned data's errors become them ([`S3Error::from_pfs`]).

use axum::http::StatusCode;
use pach_pfs::PfsError;

#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error(
        "bucket '{bucket}' does not exist; buckets are BRANCH.REPO (or REPO for its master branch): `aws s3 ls` lists them, `aws s3 mb s3://BRANCH.REPO` creates one"
    )]
    NoSuchBucket { bucket: String },
    #[error("key '{key}' does not exist in bucket '{bucket}'")]
    NoSuchKey { bucket: String, key: String },
    #[error(
        "version '{version}' of key '{key}' does not exist; a version is a commit id of the bucket's repo, or 'null'"
    )]
    NoSuchVersion { key: String, version: String },
    #[error("upload '{upload}' does not exist; it was completed or aborted, or never started")]
    NoSuchUpload { upload: String },
    #[error("invalid bucket name '{bucket}': {reason}")]
    InvalidBucketName { bucket: String, reason: String },
    #[error("bucket '{bucket}' already exists")]
    BucketAlreadyOwnedByYou { bucket: String },
    #[error(
        "bucket '{bucket}' already exists and you may not write to it (its repo's owner can grant it: `pachctl auth set USER writer REPO`); pick another name"
    )]
    BucketAlreadyExists { bucket: String },
    #[error(
        "bucket '{bucket}' is not empty; delete its objects first (`aws s3 rm --recursive s3://{bucket}`)"
    )]
    BucketNotEmpty { bucket: String },
    #[error("the range is not satisfiable: the object is {size} bytes long")]
    InvalidRange { size: u64 },
    #[error("at least one of the preconditions you gave did not hold")]
    PreconditionFailed,
    #[error(
        "another write to '{key}' landed while this conditional one was being made; read the object again and retry"
    )]
    ConditionalRequestConflict { key: String },
    #[error(
        "the user metadata (x-amz-meta-* names and values) is {size} bytes; at most 2048 are kept"
    )]
    MetadataTooLarge { size: usize },
    #[error("not modified")]
    NotModified,
    #[error(
        "key '{key}' cannot be a file path in a repo: {reason}; use keys without empty, '.' or '..' segments and without a trailing '/'"
    )]
    InvalidFilePath { key: String, reason: String },
    #[error("the key is {len} bytes long; keys are at most 1024 bytes")]
    KeyTooLong { len: usize },
    /// A read of a key holding control characters: S3's answer, in S3's
    /// words (clients match them); the error's `Resource` names the key.
    #[error("Couldn't parse the specified URI.")]
    InvalidUri,
    #[error("{what} is not implemented by Pachyderm's S3 gateway")]
    NotImplemented { what: String },
    #[error(
        "bucket '{bucket}' names commit {commit} of repo '{repo}', which is read-only; write to a branch bucket, BRANCH.{repo}"
    )]
    ReadOnlyBucket {
        bucket: String,
        repo: String,
        commit: String,
    },
    #[error("{0}")]
    WriteToOutputBranch(String),
    #[error("the XML you provided was not well-formed or did not validate: {reason}")]
    MalformedXml { reason: String },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error(
        "part {part} was not uploaded, or its ETag does not match; `ListParts` shows the parts"
    )]
    InvalidPart { part: u32 },
    #[error("the object has {count} part(s); part {part} is not one of them")]
    NoSuchPart { part: u32, count: usize },
    #[error("the parts must be listed in ascending order of part number")]
    InvalidPartOrder,
    #[error(
        "part {part} is {size} bytes; every part but the last must be at least 5 MiB (5242880 bytes)"
    )]
    EntityTooSmall { part: u32, size: u64 },
    #[error("the Content-MD5 you gave is not the MD5 of the body")]
    BadDigest,
    #[error("{0}")]
    ChecksumMismatch(String),
    #[error("the Content-MD5 you gave is not a base64 MD5 digest")]
    InvalidDigest,
    #[error("the body ended before the length it announced ({0})")]
    IncompleteBody(String),
    #[error("a Content-Length is required")]
    MissingContentLength,
    #[error("the method is not allowed on this resource")]
    MethodNotAllowed,
    #[error("{0}")]
    SlowDown(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error(
        "the access key '{key}' is not known; with auth active, the access key and the secret key are both your pachd token"
    )]
    InvalidAccessKeyId { key: String },
    #[error("{0}")]
    SignatureDoesNotMatch(String),
    #[error(
        "the difference between the request's time and the server's is too large (more than 15 minutes); check the client's clock"
    )]
    RequestTimeTooSkewed,
    #[error("the authorization header is malformed: {0}")]
    AuthorizationHeaderMalformed(String),
    #[error("{0}")]
    AuthorizationQueryParametersError(String),
    #[error("the body's SHA-256 is not the x-amz-content-sha256 that was signed")]
    XAmzContentSha256Mismatch,
    #[error("internal error: {0}")]
    Internal(String),
}

impl S3Error {
    /// S3's error code and the HTTP status it comes with.
    pub fn code(&self) -> (&'static str, StatusCode) {
        use S3Error::*;
        match self {
            NoSuchBucket { .. } => ("NoSuchBucket", StatusCode::NOT_FOUND),
            NoSuchKey { .. } => ("NoSuchKey", StatusCode::NOT_FOUND),
            NoSuchVersion { .. } => ("NoSuchVersion", StatusCode::NOT_FOUND),
            NoSuchUpload { .. } => ("NoSuchUpload", StatusCode::NOT_FOUND),
            InvalidBucketName { .. } => ("InvalidBucketName", StatusCode::BAD_REQUEST),
            BucketAlreadyOwnedByYou { .. } => ("BucketAlreadyOwnedByYou", StatusCode::CONFLICT),
            BucketAlreadyExists { .. } => ("BucketAlreadyExists", StatusCode::CONFLICT),
            BucketNotEmpty { .. } => ("BucketNotEmpty", StatusCode::CONFLICT),
            InvalidRange { .. } => ("InvalidRange", StatusCode::RANGE_NOT_SATISFIABLE),
            PreconditionFailed => ("PreconditionFailed", StatusCode::PRECONDITION_FAILED),
            ConditionalRequestConflict { .. } => {
                ("ConditionalRequestConflict", StatusCode::CONFLICT)
            }
            MetadataTooLarge { .. } => ("MetadataTooLarge", StatusCode::BAD_REQUEST),
            NotModified => ("NotModified", StatusCode::NOT_MODIFIED),
            InvalidFilePath { .. } => ("InvalidFilePath", StatusCode::BAD_REQUEST),
            KeyTooLong { .. } => ("KeyTooLongError", StatusCode::BAD_REQUEST),
            InvalidUri => ("InvalidURI", StatusCode::BAD_REQUEST),
            NotImplemented { .. } => ("NotImplemented", StatusCode::NOT_IMPLEMENTED),
            ReadOnlyBucket { .. } => ("AccessDenied", StatusCode::FORBIDDEN),
            WriteToOutputBranch(_) => ("WriteToOutputBranch", StatusCode::BAD_REQUEST),
            MalformedXml { .. } => ("MalformedXML", StatusCode::BAD_REQUEST),
            InvalidArgument(_) => ("InvalidArgument", StatusCode::BAD_REQUEST),
            InvalidRequest(_) => ("InvalidRequest", StatusCode::BAD_REQUEST),
            InvalidPart { .. } => ("InvalidPart", StatusCode::BAD_REQUEST),
            InvalidPartOrder => ("InvalidPartOrder", StatusCode::BAD_REQUEST),
            NoSuchPart { .. } => ("InvalidPart", StatusCode::BAD_REQUEST),
            EntityTooSmall { .. } => ("EntityTooSmall", StatusCode::BAD_REQUEST),
            BadDigest | ChecksumMismatch(_) => ("BadDigest", StatusCode::BAD_REQUEST),
            InvalidDigest => ("InvalidDigest", StatusCode::BAD_REQUEST),
            IncompleteBody(_) => ("IncompleteBody", StatusCode::BAD_REQUEST),
            MissingContentLength => ("MissingContentLength", StatusCode::LENGTH_REQUIRED),
            MethodNotAllowed => ("MethodNotAllowed", StatusCode::METHOD_NOT_ALLOWED),
            SlowDown(_) => ("SlowDown", StatusCode::SERVICE_UNAVAILABLE),
            AccessDenied(_) => ("AccessDenied", StatusCode::FORBIDDEN),
            InvalidAccessKeyId { .. } => ("InvalidAccessKeyId", StatusCode::FORBIDDEN),
            SignatureDoesNotMatch(_) => ("SignatureDoesNotMatch", StatusCode::FORBIDDEN),
            RequestTimeTooSkewed => ("RequestTimeTooSkewed", StatusCode::FORBIDDEN),
            AuthorizationHeaderMalformed(_) => {
                ("AuthorizationHeaderMalformed", StatusCode::BAD_REQUEST)
            }
            AuthorizationQueryParametersError(_) => {
                ("AuthorizationQueryParametersError", StatusCode::BAD_REQUEST)
            }
            XAmzContentSha256Mismatch => ("XAmzContentSHA256Mismatch", StatusCode::BAD_REQUEST),
            Internal(_) => ("InternalError", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    /// [`S3Error::from_pfs`] for a conditional write: a write that could
    /// not land for other writes landing meanwhile is S3's conflict.
    pub(crate) fn from_pfs_conditional(e: PfsError, bucket: &str, key: &str) -> S3Error {
        match e {
            PfsError::Contention { .. } => S3Error::ConditionalRequestConflict { key: key.into() },
            e => S3Error::from_pfs(e, bucket, key),
        }
    }

    /// What an error of versioned data means to an S3 client of `bucket`
    /// (and `key`, for errors about files).
    pub(crate) fn from_pfs(e: PfsError, bucket: &str, key: &str) -> S3Error {
        use PfsError::*;
        match e {
            RepoNotFound { .. }
            | BranchNotFound { .. }
            | CommitNotFound { .. }
            | CommitDeleted { .. } => S3Error::NoSuchBucket {
                bucket: bucket.into(),
            },
            // A branch with no commit yet holds no object.
            FileNotFound { .. } | IsDirectory { .. } | NoHead { .. } => S3Error::NoSuchKey {
                bucket: bucket.into(),
                key: key.into(),
            },
            UploadNotFound { upload, .. } => S3Error::NoSuchUpload { upload },
            InvalidName { .. } => S3Error::InvalidBucketName {
                bucket: bucket.into(),
                reason: e.to_string(),
            },
            InvalidPath { reason, .. } => S3Error::InvalidFilePath {
                key: key.into(),
                reason,
            },
            RepoExists { .. } => S3Error::BucketAlreadyOwnedByYou {
                bucket: bucket.into(),
            },
            PipelineOutput { .. } => S3Error::WriteToOutputBranch(e.to_string()),
            WritesPaused(_) | Contention { .. } => S3Error::SlowDown(e.to_string()),
            InvalidArgument(m) => S3Error::InvalidArgument(m),
            CommitFinished { .. } | CommitOpen { .. } | FailedPrecondition(_) => {
                S3Error::InvalidRequest(e.to_string())
            }
            Corrupt { .. } | Storage(_) | Meta(_) => S3Error::Internal(e.to_string()),
        }
    }
}

impl From<pach_storage::StorageError> for S3Error {
    fn from(e: pach_storage::StorageError) -> Self {
        S3Error::Internal(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, S3Error>;
