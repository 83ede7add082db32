//! The errors of versioned data. Each variant carries what the user needs to act
//! (the repo, the commit, the path) and its message names the way out.
//!
//! Messages start with Pachyderm 1.9's own words ("repo X not found",
//! "commit X not found in repo R", "file P not found in repo R at commit C",
//! "commit X in repo R has already finished", "the branch "B" has no head"):
//! Pachyderm's clients recognise errors by matching those phrases, so they
//! come first and our way out follows after a semicolon.

use pach_meta::MetaError;
use pach_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum PfsError {
    #[error("invalid {kind} name '{name}': {reason}")]
    InvalidName {
        kind: &'static str,
        name: String,
        reason: String,
    },
    #[error("invalid path '{path}': {reason}")]
    InvalidPath { path: String, reason: String },
    #[error(
        "repo {repo} not found; `pachctl list repo` shows the repos, `pachctl create repo {repo}` creates it"
    )]
    RepoNotFound { repo: String },
    #[error(
        "repo {repo} already exists; use `pachctl update repo {repo}` to change its description"
    )]
    RepoExists { repo: String },
    #[error(
        "branch {branch} not found in repo {repo}; `pachctl list branch {repo}` shows its branches"
    )]
    BranchNotFound { repo: String, branch: String },
    #[error(
        "commit {commit} not found in repo {repo}; `pachctl list commit {repo}` shows its commits"
    )]
    CommitNotFound { repo: String, commit: String },
    #[error(
        "the branch \"{branch}\" has no head (create one with 'start commit'); `pachctl start commit {repo}@{branch}` or a `put file` gives it one"
    )]
    NoHead { repo: String, branch: String },
    #[error(
        "commit {commit} in repo {repo} has already finished; write to the branch to get a new commit, or `pachctl start commit {repo}@BRANCH`"
    )]
    CommitFinished { repo: String, commit: String },
    #[error(
        "commit {repo}/{commit} was deleted while waiting for it; `pachctl list commit {repo}` shows the commits left"
    )]
    CommitDeleted { repo: String, commit: String },
    #[error(
        "{repo}@{branch} already has an open commit {commit}; finish it with `pachctl finish commit {repo}@{commit}` first"
    )]
    CommitOpen {
        repo: String,
        branch: String,
        commit: String,
    },
    #[error(
        "file {path} not found in repo {repo} at commit {commit}; `pachctl list file {repo}@{commit}` shows its files"
    )]
    FileNotFound {
        repo: String,
        commit: String,
        path: String,
    },
    #[error("'{path}' in {repo}@{commit} is a directory; use -r to read a directory")]
    IsDirectory {
        repo: String,
        commit: String,
        path: String,
    },
    #[error(
        "upload {upload} into repo '{repo}' not found; it was completed or aborted, or never started"
    )]
    UploadNotFound { repo: String, upload: String },
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{}", .0.refusal())]
    WritesPaused(crate::writes::WritesState),
    #[error(
        "cannot {action} {}: it is the output {} of pipeline '{pipeline}', which only the pipeline writes; write to the pipeline's inputs instead, or `pachctl delete pipeline {pipeline}` to remove the pipeline with its output repo",
        match branch { Some(b) => format!("{repo}@{b}"), None => format!("repo '{repo}'") },
        if branch.is_some() { "branch" } else { "repo" }
    )]
    PipelineOutput {
        action: &'static str,
        repo: String,
        branch: Option<String>,
        pipeline: String,
    },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("the metadata record '{key}' is unreadable ({reason}); run `pachctl fsck`")]
    Corrupt { key: String, reason: String },
    #[error("too much contention on {what}; retry the operation")]
    Contention { what: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// How an error should be reported to clients (maps onto gRPC status codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    InvalidArgument,
    FailedPrecondition,
    Unavailable,
    Internal,
}

impl PfsError {
    pub fn kind(&self) -> ErrorKind {
        use PfsError::*;
        match self {
            InvalidName { .. } | InvalidPath { .. } | InvalidArgument(_) | IsDirectory { .. } => {
                ErrorKind::InvalidArgument
            }
            RepoNotFound { .. }
            | BranchNotFound { .. }
            | CommitNotFound { .. }
            | FileNotFound { .. }
            | UploadNotFound { .. }
            | NoHead { .. }
            | CommitDeleted { .. } => ErrorKind::NotFound,
            RepoExists { .. } => ErrorKind::AlreadyExists,
            CommitFinished { .. }
            | CommitOpen { .. }
            | FailedPrecondition(_)
            | PipelineOutput { .. } => ErrorKind::FailedPrecondition,
            Contention { .. } | WritesPaused(_) => ErrorKind::Unavailable,
            Corrupt { .. } | Storage(_) | Meta(_) => ErrorKind::Internal,
        }
    }
}

pub type Result<T> = std::result::Result<T, PfsError>;
