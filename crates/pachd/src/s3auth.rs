//! The S3 gateway's `Authorizer` over pachd's auth. Without auth every
//! request is served, whatever its credentials, as Pachyderm 1.9 does.
//! With auth active, the access key and the secret key are both a pachd
//! token (as in 1.9): the signature is verified with the token as the
//! secret, and each repo a request touches needs the scope a gRPC call
//! doing the same would (READER to read, WRITER to write, OWNER to delete;
//! any signed-in user may create a repo, and becomes its OWNER). Inside a
//! pipeline's sandbox the caller is the pipeline itself
//! ([`PipelineAuthorizer`]).

use pach_auth::{Auth, AuthError, Scope};
use pach_s3gateway::{Access, Authorizer, Caller, S3Error};

pub(crate) struct TokenAuthorizer {
    pub(crate) auth: Auth,
}

fn internal(e: AuthError) -> S3Error {
    S3Error::Internal(e.to_string())
}

#[async_trait::async_trait]
impl Authorizer for TokenAuthorizer {
    async fn verifies_signatures(&self) -> Result<bool, S3Error> {
        self.auth.is_active().await.map_err(internal)
    }

    async fn secret_key(&self, access_key: &str) -> Result<Option<String>, S3Error> {
        match self.auth.caller(Some(access_key)).await {
            Ok(_) => Ok(Some(access_key.to_string())),
            Err(e) if e.kind() == pach_auth::ErrorKind::Unauthenticated => Ok(None),
            Err(e) => Err(internal(e)),
        }
    }

    async fn allow(&self, caller: &Caller, access: Access<'_>) -> Result<(), S3Error> {
        if !self.auth.is_active().await.map_err(internal)? {
            return Ok(());
        }
        let who = self
            .auth
            .caller(caller.access_key.as_deref())
            .await
            .map_err(|e| {
                S3Error::AccessDenied(format!(
                    "{e}: with auth active, the access key and the secret key are both a pachd \
                     token (`pachctl auth get-auth-token`)"
                ))
            })?;
        allow_as(&self.auth, &who, access).await
    }
}

/// The gateway a pipeline's user code reaches inside its sandbox
/// (`pach_worker::gateway`): whoever connects there is that pipeline's user
/// code, since nothing else can reach the sandbox's loopback. So requests
/// need no credentials (any are accepted, unchecked) and, with auth active,
/// act as the subject `pipeline:NAME` with its ACL entries: READER of its
/// inputs and WRITER of its output repo, as pachd grants them when the
/// pipeline is created.
pub(crate) struct PipelineAuthorizer {
    pub(crate) auth: Auth,
    /// `pipeline:NAME`.
    pub(crate) subject: String,
}

#[async_trait::async_trait]
impl Authorizer for PipelineAuthorizer {
    async fn verifies_signatures(&self) -> Result<bool, S3Error> {
        Ok(false)
    }

    async fn secret_key(&self, _access_key: &str) -> Result<Option<String>, S3Error> {
        Ok(None)
    }

    async fn allow(&self, _caller: &Caller, access: Access<'_>) -> Result<(), S3Error> {
        if !self.auth.is_active().await.map_err(internal)? {
            return Ok(());
        }
        let who = pach_auth::Caller {
            subject: self.subject.clone(),
            is_admin: false,
            expires: None,
            groups: Vec::new(),
        };
        allow_as(&self.auth, &who, access).await
    }
}

/// Whether `who` may do `access`, with auth active.
async fn allow_as(auth: &Auth, who: &pach_auth::Caller, access: Access<'_>) -> Result<(), S3Error> {
    let (repo, scope) = match access {
        Access::Read(repo) => (repo, Scope::Reader),
        Access::Write(repo) => (repo, Scope::Writer),
        Access::DeleteRepo(repo) => (repo, Scope::Owner),
        Access::CreateRepo(repo) => {
            // What an earlier repo of this name left behind goes first.
            auth.forget_repo(repo).await.map_err(internal)?;
            return auth
                .grant(repo, &who.subject, Scope::Owner)
                .await
                .map_err(internal);
        }
    };
    auth.check(who, repo, scope)
        .await
        .map_err(|e| match e.kind() {
            pach_auth::ErrorKind::PermissionDenied => S3Error::AccessDenied(e.to_string()),
            _ => internal(e),
        })
}
