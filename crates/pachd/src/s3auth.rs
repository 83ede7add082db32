//! Who the S3 gateway serves while auth is active: the access key is a
//! pachd token (as in Pachyderm 1.9, where both keys are the token), and
//! only admins are served, since the gateway's `Authorizer` sees who asks
//! but not which repo a request touches, and a scope that cannot be checked
//! is not granted. Without auth every request is served, as before.

use pach_auth::Auth;
use pach_s3gateway::{Authorizer, Credentials, S3Error};

pub(crate) struct TokenAuthorizer {
    pub(crate) auth: Auth,
}

#[async_trait::async_trait]
impl Authorizer for TokenAuthorizer {
    async fn authorize(&self, credentials: &Credentials) -> Result<(), S3Error> {
        let active = self
            .auth
            .is_active()
            .await
            .map_err(|e| S3Error::Internal(e.to_string()))?;
        if !active {
            return Ok(());
        }
        let caller = self
            .auth
            .caller(credentials.access_key.as_deref())
            .await
            .map_err(|e| {
                S3Error::AccessDenied(format!(
                    "{e}: with auth active, the access key is a pachd token \
                     (`pachctl auth get-auth-token`)"
                ))
            })?;
        if caller.is_admin {
            Ok(())
        } else {
            Err(S3Error::AccessDenied(format!(
                "{} is not authorized to perform this operation; must be an admin to use the S3 \
                 gateway while auth is active",
                caller.subject
            )))
        }
    }
}
