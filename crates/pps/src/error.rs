//! The errors of pipelines. Messages name the field, pipeline, job or datum at
//! fault and the command that helps.

use pach_meta::MetaError;
use pach_pfs::{ErrorKind, PfsError};
use pach_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum PpsError {
    /// A spec that does not parse or does not validate. The message names the
    /// field (e.g. `input.pfs.glob`) and, when known, the pipeline.
    #[error("invalid pipeline spec: {0}")]
    InvalidSpec(String),
    #[error("pipeline '{0}' not found; `pachctl list pipeline` shows the pipelines")]
    PipelineNotFound(String),
    #[error("pipeline '{0}' already exists; `pachctl update pipeline -f SPEC` changes it")]
    PipelineExists(String),
    #[error("job '{0}' not found; `pachctl list job` shows the jobs")]
    JobNotFound(String),
    #[error("datum '{datum}' not found in job {job}; `pachctl list datum {job}` shows its datums")]
    DatumNotFound { job: String, datum: String },
    #[error("secret '{0}' not found; `pachctl list secret` shows the secrets")]
    SecretNotFound(String),
    #[error("secret '{0}' already exists; delete it first to replace it")]
    SecretExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error(transparent)]
    Pfs(#[from] PfsError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Meta(#[from] MetaError),
}

impl PpsError {
    pub fn kind(&self) -> ErrorKind {
        use PpsError::*;
        match self {
            InvalidSpec(_) | InvalidArgument(_) => ErrorKind::InvalidArgument,
            PipelineNotFound(_) | JobNotFound(_) | DatumNotFound { .. } | SecretNotFound(_) => {
                ErrorKind::NotFound
            }
            PipelineExists(_) | SecretExists(_) => ErrorKind::AlreadyExists,
            FailedPrecondition(_) => ErrorKind::FailedPrecondition,
            Pfs(e) => e.kind(),
            Storage(_) | Meta(_) => ErrorKind::Internal,
        }
    }
}

pub type Result<T> = std::result::Result<T, PpsError>;
