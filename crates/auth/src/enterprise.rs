//! The enterprise state. Pachyderm 1.9 sells auth behind an activation code
//! that its license server checks; here nothing is paid, so any non-empty
//! code activates, and the call exists for the clients that make it.

use pach_meta::Txn;
use serde::{Deserialize, Serialize};

use crate::records::{ACTIVATION, ENTERPRISE};
use crate::{Auth, AuthError, Result, encode, now};

/// An activation, as `GetState` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnterpriseRecord {
    pub activation_code: String,
    pub activated_at: i64,
    /// Unix time after which the state reads EXPIRED (`None`: never).
    pub expires: Option<i64>,
}

impl EnterpriseRecord {
    pub fn is_active(&self) -> bool {
        self.expires.is_none_or(|e| e > now())
    }
}

impl Auth {
    /// The activation, if any (active or expired).
    pub async fn enterprise(&self) -> Result<Option<EnterpriseRecord>> {
        Ok(self.load(ENTERPRISE).await?.map(|(r, _)| r))
    }

    /// Activates enterprise features with `code` (any non-empty code), until
    /// `expires` when given (1.9 uses that for tests of expiry).
    pub async fn activate_enterprise(
        &self,
        code: &str,
        expires: Option<i64>,
    ) -> Result<EnterpriseRecord> {
        if code.trim().is_empty() {
            return Err(AuthError::InvalidRequest(
                "the activation code is empty (any code activates: nothing is paid here)".into(),
            ));
        }
        let record = EnterpriseRecord {
            activation_code: code.to_string(),
            activated_at: now(),
            expires,
        };
        self.commit(Txn::new().put(ENTERPRISE, encode(&record)))
            .await?;
        Ok(record)
    }

    /// Deactivates enterprise features; refused while auth is active, since
    /// auth would then be left without the state it was activated under.
    pub async fn deactivate_enterprise(&self) -> Result<()> {
        guarded!(self, {
            let activation = self.meta.get(ACTIVATION).await?;
            if activation.is_some() {
                return Err(AuthError::AuthStillActive);
            }
            Ok((Txn::new().expect(ACTIVATION, 0).delete(ENTERPRISE), ()))
        })
    }

    pub(crate) async fn require_enterprise(&self) -> Result<()> {
        match self.enterprise().await? {
            Some(r) if r.is_active() => Ok(()),
            _ => Err(AuthError::EnterpriseNotActive),
        }
    }
}
