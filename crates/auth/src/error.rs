//! The errors of access control, with Pachyderm 1.9's messages where clients
//! match on them ("not authorized to perform this operation", "the auth
//! service is not activated", ...), and the way out where 1.9 gives none.

use crate::records::Scope;

/// How a client should see an error (pachd maps each kind onto one gRPC code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Auth is not active (1.9: UNIMPLEMENTED, which clients recognise).
    NotActivated,
    /// No token, or one that is unknown, expired or revoked.
    Unauthenticated,
    /// A valid caller without the scope or the admin role needed.
    PermissionDenied,
    InvalidArgument,
    FailedPrecondition,
    /// Too many concurrent writers: try again.
    Aborted,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the auth service is not activated")]
    NotActivated,
    #[error(
        "Pachyderm Enterprise is not active in this cluster, and the Pachyderm auth API is an \
         Enterprise-level feature (any code activates it here: `pachctl enterprise activate CODE`)"
    )]
    EnterpriseNotActive,
    #[error("already activated (`pachctl auth deactivate` as an admin first)")]
    AlreadyActivated,
    #[error(
        "auth is active: deactivate it first (`pachctl auth deactivate` as an admin), then \
         Pachyderm Enterprise"
    )]
    AuthStillActive,
    #[error("no authentication token (try logging in)")]
    NotSignedIn,
    #[error("provided auth token is corrupted or has expired (try logging in again)")]
    BadToken,
    #[error("otp is invalid or has expired")]
    BadOtp,
    #[error("{}", not_authorized(subject, repo.as_deref(), *required, admin_op.as_deref()))]
    NotAuthorized {
        subject: String,
        repo: Option<String>,
        required: Option<Scope>,
        admin_op: Option<String>,
    },
    #[error(
        "invalid principal \"{subject}\" ({problem}); must start with one of \"pipeline:\", \
         \"github:\", \"robot:\" or \"group:\", or have no \":\""
    )]
    InvalidSubject { subject: String, problem: String },
    #[error(
        "GitHub authentication needs github.com, which this cluster does not reach: use a robot \
         (`pachctl auth activate --initial-admin robot:NAME`, then `pachctl auth get-auth-token \
         USER` as an admin) or a one-time password (`pachctl auth login -o`)"
    )]
    GitHubUnavailable,
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("provided TTL ({request}) is shorter than token's existing TTL ({existing})")]
    TooShortTtl { request: i64, existing: i64 },
    #[error(
        "invalid request: cannot remove all cluster administrators while auth is active, to \
         avoid unfixable cluster states (add another admin first)"
    )]
    LastAdmin,
    #[error(
        "expected config version {expected}, but live config has version {live} (get the \
         configuration again and edit that)"
    )]
    ConfigVersion { expected: i64, live: i64 },
    #[error("the auth records changed too often under this call; try again")]
    Contention,
    #[error("auth record {key} is unreadable: {problem}")]
    Corrupt { key: String, problem: String },
    #[error(transparent)]
    Meta(#[from] pach_meta::MetaError),
}

pub type Result<T> = std::result::Result<T, AuthError>;

impl AuthError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            AuthError::NotActivated => ErrorKind::NotActivated,
            AuthError::NotSignedIn | AuthError::BadToken | AuthError::BadOtp => {
                ErrorKind::Unauthenticated
            }
            AuthError::NotAuthorized { .. } => ErrorKind::PermissionDenied,
            AuthError::InvalidSubject { .. }
            | AuthError::InvalidRequest(_)
            | AuthError::TooShortTtl { .. }
            | AuthError::LastAdmin => ErrorKind::InvalidArgument,
            AuthError::EnterpriseNotActive
            | AuthError::AlreadyActivated
            | AuthError::AuthStillActive
            | AuthError::GitHubUnavailable
            | AuthError::ConfigVersion { .. } => ErrorKind::FailedPrecondition,
            AuthError::Contention => ErrorKind::Aborted,
            AuthError::Corrupt { .. } | AuthError::Meta(_) => ErrorKind::Internal,
        }
    }

    /// A refusal for `subject` needing `required` on `repo`.
    pub fn needs(subject: &str, repo: &str, required: Scope) -> Self {
        AuthError::NotAuthorized {
            subject: subject.into(),
            repo: Some(repo.into()),
            required: Some(required),
            admin_op: None,
        }
    }

    /// A refusal for `subject` calling the admin-only `op`.
    pub fn admin_only(subject: &str, op: &str) -> Self {
        AuthError::NotAuthorized {
            subject: subject.into(),
            repo: None,
            required: None,
            admin_op: Some(op.into()),
        }
    }
}

/// Pachyderm 1.9's wording (its dashboard and clients match the middle part).
fn not_authorized(
    subject: &str,
    repo: Option<&str>,
    required: Option<Scope>,
    admin_op: Option<&str>,
) -> String {
    let mut msg = format!("{subject} is not authorized to perform this operation");
    if let Some(repo) = repo {
        msg.push_str(&format!(" on the repo {repo}"));
    }
    if let Some(required) = required {
        msg.push_str(&format!(
            ", must have at least {} access",
            required.as_str()
        ));
    }
    if let Some(op) = admin_op {
        msg.push_str(&format!("; must be an admin to call {op}"));
    }
    msg
}
