//! The errors of extract and restore; each names what is wrong and what to do.

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("not an extract stream: {0}")]
    NotAStream(String),
    #[error(
        "the stream's format version {found} is newer than this pachd reads ({supported}); restore it with a newer pachd"
    )]
    UnknownVersion { found: String, supported: String },
    #[error("the stream is truncated: {0}; extract it again")]
    Truncated(String),
    #[error("the stream is corrupt: {0}; extract it again")]
    Corrupt(String),
    #[error("the stream refers to {what} that it does not hold: {detail}")]
    Dangling { what: String, detail: String },
    #[error(
        "{count} object(s) the stream's commits need are missing from the bucket (first: {first}); with --no-objects the bucket must be copied to the target first"
    )]
    MissingObjects { count: usize, first: String },
    #[error(
        "{what} already exists in this cluster with different content; delete it first or restore into another cluster"
    )]
    Clash { what: String },
    #[error(
        "{count} object(s) the stream's commits need are not in it (first: {first}): a Pachyderm extract taken with --no-objects needs the cluster's bucket (`pachctl restore --pachyderm-bucket URL`), or extract again without --no-objects"
    )]
    ObjectsNotInStream { count: usize, first: String },
    #[error(
        "{count} object(s) the stream's commits need are neither in it nor in the Pachyderm bucket given (first: {first}); clone the whole bucket of the cluster the extract came from, and give its storage root (the folder holding object/, block/ and index/)"
    )]
    MissingInBucket { count: usize, first: String },
    #[error("{what} cannot be restored into this cluster: {reason}")]
    Unconvertible { what: String, reason: String },
    #[error("{0}")]
    Busy(String),
    #[error(
        "the bucket belongs to cluster {owner}, not to this cluster ({cluster}): a garbage collection here would delete the objects cluster {owner}'s records name; collect garbage from cluster {owner}'s pachd, or give this cluster its own bucket"
    )]
    NotOwner { owner: String, cluster: String },
    #[error(
        "{problem}; restart pachd on this metadata store, which writes it, or restore the cluster from a backup"
    )]
    NoClusterRecord { problem: String },
    #[error(
        "the bucket names no owning cluster, so this cluster ({cluster}) cannot tell whether another cluster's records name its objects; restart pachd, which claims the bucket for its cluster, then collect"
    )]
    Unowned { cluster: String },
    #[error(
        "checkpoint {checkpoint} {reason}; use a checkpoint printed by an extract of this cluster ({cluster}), or take a full extract"
    )]
    ForeignCheckpoint {
        checkpoint: String,
        cluster: String,
        reason: String,
    },
    #[error(
        "the key list of this stream of changes would take {bytes} bytes, more than a stream holds (4 GiB); take a full extract instead"
    )]
    KeyListTooLarge { bytes: u64 },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Meta(#[from] pach_meta::MetaError),
    #[error(transparent)]
    Storage(#[from] pach_storage::StorageError),
    #[error(transparent)]
    Pfs(#[from] pach_pfs::PfsError),
    #[error(transparent)]
    Pps(#[from] pach_pps::PpsError),
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
}

impl AdminError {
    /// How clients should see the error (the server maps kinds to statuses).
    pub fn kind(&self) -> pach_pfs::ErrorKind {
        use AdminError::*;
        use pach_pfs::ErrorKind;
        match self {
            NotAStream(_)
            | UnknownVersion { .. }
            | Truncated(_)
            | Corrupt(_)
            | Dangling { .. }
            | KeyListTooLarge { .. }
            | ForeignCheckpoint { .. }
            | ObjectsNotInStream { .. }
            | Unconvertible { .. } => ErrorKind::InvalidArgument,
            MissingObjects { .. }
            | MissingInBucket { .. }
            | Busy(_)
            | NotOwner { .. }
            | Unowned { .. } => ErrorKind::FailedPrecondition,
            NoClusterRecord { .. } => ErrorKind::Internal,
            Clash { .. } => ErrorKind::AlreadyExists,
            Pfs(e) => e.kind(),
            Pps(e) => e.kind(),
            Io { .. } | Meta(_) | Storage(_) | ObjectStore(_) => ErrorKind::Internal,
        }
    }
}

pub type Result<T> = std::result::Result<T, AdminError>;

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> AdminError {
    let what = what.into();
    move |source| AdminError::Io { what, source }
}
