//! Activation, deactivation, tokens and one-time passwords.
//!
//! A token is 128 random bits (a UUID v4 without dashes, 1.9's shape); a
//! one-time password the same behind `otp/`. Only their BLAKE3 hashes are
//! stored, as keys and inside the records, where they are compared in
//! constant time (`blake3::Hash`'s equality is).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use pach_meta::Txn;

use crate::records::{
    ACTIVATION, ADMINS, AclRecord, ActivationRecord, CLEARED_ON_DEACTIVATE, OtpRecord, Scope,
    SetRecord, TokenRecord, TokenSource, acl_key, admin_key, members_key, otp_key, token_key,
};
use crate::{
    Auth, AuthError, Caller, DEFAULT_OTP_TTL_SECS, DEFAULT_SESSION_TTL_SECS, GITHUB_PREFIX,
    ROBOT_PREFIX, Result, canonical_subject, encode, now,
};

/// A session shorter than this cannot be handed on (1.9's bound).
const MIN_SESSION_SECS: i64 = 10;

/// What `WhoAmI` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoAmI {
    pub username: String,
    pub is_admin: bool,
    /// Seconds left on the caller's token; -1 when it never expires (1.9).
    pub ttl: i64,
}

/// A token just made: the only time its secret exists outside its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub subject: String,
    pub token: String,
}

/// A one-time password just made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Otp {
    pub code: String,
    /// Unix time after which it is refused.
    pub expires: i64,
}

fn hash(secret: &str) -> blake3::Hash {
    blake3::hash(secret.as_bytes())
}

/// Whether a stored hash is the hash of the presented secret, in constant time.
fn same_hash(stored: &str, presented: &blake3::Hash) -> bool {
    blake3::Hash::from_hex(stored).is_ok_and(|h| h == *presented)
}

fn new_secret() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn expiry(ttl_secs: i64) -> Option<i64> {
    (ttl_secs > 0).then(|| now() + ttl_secs)
}

impl Auth {
    /// Activates auth with `subject` (a `robot:NAME`) as its first admin,
    /// and returns that admin's token, which never expires (as 1.9).
    /// `grants` (repo, subject, scope) are in the ACLs from the same
    /// transaction on: the access of the pipelines already there, whose
    /// jobs are checked from then on.
    pub async fn activate(
        &self,
        subject: &str,
        grants: &[(String, String, Scope)],
    ) -> Result<TokenInfo> {
        self.require_enterprise().await?;
        if self.is_active().await? {
            return Err(AuthError::AlreadyActivated);
        }
        let subject = if subject.is_empty() {
            return Err(AuthError::GitHubUnavailable);
        } else {
            canonical_subject(subject)?
        };
        if subject.starts_with(GITHUB_PREFIX) {
            return Err(AuthError::GitHubUnavailable);
        }
        if !subject.starts_with(ROBOT_PREFIX) {
            return Err(AuthError::InvalidRequest(format!(
                "invalid subject in request (must be a GitHub user or robot): \"{subject}\""
            )));
        }
        let token = new_secret();
        let record = TokenRecord {
            hash: hash(&token).to_hex().to_string(),
            subject: subject.clone(),
            source: TokenSource::Authenticate,
            expires: None,
        };
        let activation = ActivationRecord {};
        guarded!(self, {
            if self.meta.get(ACTIVATION).await?.is_some() {
                return Err(AuthError::AlreadyActivated);
            }
            let mut txn = Txn::new()
                .expect(ACTIVATION, 0)
                .put(ACTIVATION, encode(&activation))
                .put(admin_key(&subject), b"{}".to_vec())
                .put(token_key(&record.hash), encode(&record));
            let mut acls: BTreeMap<&str, (AclRecord, u64)> = BTreeMap::new();
            for (repo, who, scope) in grants {
                if !acls.contains_key(repo.as_str()) {
                    let kept = self.load(&acl_key(repo)).await?.unwrap_or_default();
                    acls.insert(repo, kept);
                }
                if let Some((acl, _)) = acls.get_mut(repo.as_str()) {
                    let entry = acl.entries.entry(who.clone()).or_insert(Scope::None);
                    *entry = (*entry).max(*scope);
                }
            }
            for (repo, (acl, rev)) in acls {
                let key = acl_key(repo);
                txn = txn.expect(&key, rev).put(&key, encode(&acl));
            }
            Ok((
                txn,
                TokenInfo {
                    subject: subject.clone(),
                    token: token.clone(),
                },
            ))
        })
    }

    /// Deactivates auth: every ACL, token, password, admin, group and the
    /// configuration go, in one transaction. Admins only.
    pub async fn deactivate(&self, caller: &Caller) -> Result<()> {
        self.require_active().await?;
        require_admin(caller, "DeactivateAuth")?;
        let mut txn = Txn::new().delete(ACTIVATION);
        for prefix in CLEARED_ON_DEACTIVATE {
            txn = txn.delete_prefix(prefix);
        }
        self.commit(txn).await?;
        Ok(())
    }

    /// The caller holding `token`: refused without one, or with one that is
    /// unknown, revoked or expired.
    pub async fn caller(&self, token: Option<&str>) -> Result<Caller> {
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::NotSignedIn)?;
        let presented = hash(token);
        let hex = presented.to_hex();
        // An unknown token is not kept: made-up tokens cannot fill the cache.
        let Some(record) = self.cached::<TokenRecord>(&token_key(&hex), false).await? else {
            return Err(AuthError::BadToken);
        };
        if !same_hash(&record.hash, &presented) || record.expires.is_some_and(|e| e <= now()) {
            return Err(AuthError::BadToken);
        }
        let mut caller = self.as_subject(&record.subject).await?;
        caller.expires = record.expires;
        Ok(caller)
    }

    /// `subject` as a caller without a token (a pipeline acting as
    /// `pipeline:NAME`): its groups, and whether it or one of them is an
    /// admin.
    pub async fn as_subject(&self, subject: &str) -> Result<Caller> {
        let groups = self.groups_of(subject).await?;
        let admins = self.admin_set().await?;
        let is_admin = admins.contains(subject) || groups.iter().any(|g| admins.contains(g));
        Ok(Caller {
            subject: subject.to_string(),
            is_admin,
            expires: None,
            groups,
        })
    }

    pub(crate) async fn groups_of(&self, subject: &str) -> Result<Vec<String>> {
        Ok(self
            .cached::<SetRecord>(&members_key(subject), true)
            .await?
            .map(|r| r.names.iter().cloned().collect())
            .unwrap_or_default())
    }

    /// The cluster admins, as the checks of calls read them.
    pub(crate) async fn admin_set(&self) -> Result<Arc<BTreeSet<String>>> {
        let set = self
            .cache
            .get_or_load(ADMINS, true, async {
                let admins = self.meta.list(ADMINS, None, 0).await?;
                Ok(Some(
                    admins
                        .into_iter()
                        .map(|kv| kv.key[ADMINS.len()..].to_string())
                        .collect::<BTreeSet<String>>(),
                ))
            })
            .await?;
        Ok(set.unwrap_or_default())
    }

    pub fn who_am_i(&self, caller: &Caller) -> WhoAmI {
        WhoAmI {
            username: caller.subject.clone(),
            is_admin: caller.is_admin,
            ttl: remaining(caller.expires).unwrap_or(-1),
        }
    }

    /// A token for `subject` (the caller when empty) living `ttl` seconds.
    /// Admins may name anyone and ask for a token that never expires
    /// (`ttl` 0, as 1.9.x); others get tokens for themselves that end no
    /// later than their own.
    pub async fn get_auth_token(
        &self,
        caller: &Caller,
        subject: &str,
        ttl: i64,
    ) -> Result<TokenInfo> {
        self.require_active().await?;
        if ttl < 0 {
            return Err(AuthError::InvalidRequest(
                "GetAuthTokenRequest.TTL must be >= 0".into(),
            ));
        }
        let subject = target_subject(caller, subject, "GetAuthToken on behalf of another user")?;
        let expires = if caller.is_admin {
            expiry(ttl)
        } else {
            match (remaining(caller.expires), ttl) {
                (Some(left), t) if t <= 0 || t > left => Some(now() + left),
                (_, t) => expiry(t),
            }
        };
        let token = new_secret();
        let record = TokenRecord {
            hash: hash(&token).to_hex().to_string(),
            subject: subject.clone(),
            source: TokenSource::GetToken,
            expires,
        };
        self.commit(Txn::new().put(token_key(&record.hash), encode(&record)))
            .await?;
        Ok(TokenInfo { subject, token })
    }

    /// Gives `token` `ttl` more seconds from now (admins only; at most 30
    /// days; never shorter than what it has left). A token that never
    /// expires is left as it is.
    pub async fn extend_auth_token(&self, caller: &Caller, token: &str, ttl: i64) -> Result<()> {
        self.require_active().await?;
        if ttl <= 0 {
            return Err(AuthError::InvalidRequest(
                "ExtendAuthTokenRequest.TTL must be > 0".into(),
            ));
        }
        require_admin(caller, "ExtendAuthToken")?;
        if ttl > DEFAULT_SESSION_TTL_SECS {
            return Err(AuthError::InvalidRequest(format!(
                "can only extend tokens by at most {DEFAULT_SESSION_TTL_SECS} seconds"
            )));
        }
        let presented = hash(token);
        let key = token_key(&presented.to_hex());
        guarded!(self, {
            let Some((mut record, rev)) = self.load::<TokenRecord>(&key).await? else {
                return Err(AuthError::BadToken);
            };
            if !same_hash(&record.hash, &presented) {
                return Err(AuthError::BadToken);
            }
            let Some(existing) = remaining(record.expires) else {
                return Ok((Txn::new(), ()));
            };
            if existing == 0 {
                return Err(AuthError::BadToken);
            }
            if ttl < existing {
                return Err(AuthError::TooShortTtl {
                    request: ttl,
                    existing,
                });
            }
            record.expires = expiry(ttl);
            Ok((Txn::new().expect(&key, rev).put(&key, encode(&record)), ()))
        })
    }

    /// Revokes `token` (one's own, or anyone's for admins). An unknown token
    /// is already revoked.
    pub async fn revoke_auth_token(&self, caller: &Caller, token: &str) -> Result<()> {
        self.require_active().await?;
        let presented = hash(token);
        let key = token_key(&presented.to_hex());
        guarded!(self, {
            let Some((record, rev)) = self.load::<TokenRecord>(&key).await? else {
                return Ok((Txn::new(), ()));
            };
            if !same_hash(&record.hash, &presented) {
                return Ok((Txn::new(), ()));
            }
            if !caller.is_admin && record.subject != caller.subject {
                return Err(AuthError::admin_only(
                    &caller.subject,
                    "RevokeAuthToken on another user's token",
                ));
            }
            Ok((Txn::new().expect(&key, rev).delete(&key), ()))
        })
    }

    /// A one-time password for `subject` (the caller when empty; others for
    /// admins only), valid `ttl` seconds (5 minutes when 0). The session it
    /// buys ends when the caller's own does (non-admins) or in 30 days.
    pub async fn get_one_time_password(
        &self,
        caller: &Caller,
        subject: &str,
        ttl: i64,
    ) -> Result<Otp> {
        self.require_active().await?;
        let subject = target_subject(
            caller,
            subject,
            "GetOneTimePassword on behalf of another user",
        )?;
        let mut session = DEFAULT_SESSION_TTL_SECS;
        if !caller.is_admin {
            if let Some(left) = remaining(caller.expires) {
                session = session.min(left);
            }
            if session <= MIN_SESSION_SECS {
                return Err(AuthError::InvalidRequest(
                    "session expires too soon to get a one-time password (log in again)".into(),
                ));
            }
        }
        let mut ttl = if ttl <= 0 {
            DEFAULT_OTP_TTL_SECS
        } else {
            ttl.min(DEFAULT_SESSION_TTL_SECS)
        };
        if ttl >= session {
            ttl = session - 1;
        }
        let code = format!("otp/{}", new_secret());
        let record = OtpRecord {
            hash: hash(&code).to_hex().to_string(),
            subject,
            expires: now() + ttl,
            session_expires: now() + session - 1,
        };
        self.commit(Txn::new().put(otp_key(&record.hash), encode(&record)))
            .await?;
        Ok(Otp {
            code,
            expires: record.expires,
        })
    }

    /// Trades a one-time password for a session token; the password is
    /// consumed in the same transaction, so it works once.
    pub async fn authenticate_otp(&self, code: &str) -> Result<TokenInfo> {
        self.require_active().await?;
        let presented = hash(code);
        let key = otp_key(&presented.to_hex());
        guarded!(self, {
            let Some((otp, rev)) = self.load::<OtpRecord>(&key).await? else {
                return Err(AuthError::BadOtp);
            };
            let t = now();
            if !same_hash(&otp.hash, &presented)
                || otp.expires <= t
                || otp.session_expires - t < MIN_SESSION_SECS
            {
                return Err(AuthError::BadOtp);
            }
            let token = new_secret();
            let record = TokenRecord {
                hash: hash(&token).to_hex().to_string(),
                subject: otp.subject.clone(),
                source: TokenSource::Authenticate,
                expires: Some(otp.session_expires),
            };
            let txn = Txn::new()
                .expect(&key, rev)
                .delete(&key)
                .put(token_key(&record.hash), encode(&record));
            Ok((
                txn,
                TokenInfo {
                    subject: otp.subject,
                    token,
                },
            ))
        })
    }
}

/// Seconds left before `expires` (`None`: never expires; 0 once past).
fn remaining(expires: Option<i64>) -> Option<i64> {
    expires.map(|e| (e - now()).max(0))
}

pub(crate) fn require_admin(caller: &Caller, op: &str) -> Result<()> {
    if caller.is_admin {
        Ok(())
    } else {
        Err(AuthError::admin_only(&caller.subject, op))
    }
}

/// The subject a token or password is for: the caller's own when empty;
/// someone else's only for admins.
fn target_subject(caller: &Caller, subject: &str, op: &str) -> Result<String> {
    if subject.is_empty() {
        return Ok(caller.subject.clone());
    }
    let subject = canonical_subject(subject)?;
    if subject != caller.subject && !caller.is_admin {
        return Err(AuthError::admin_only(&caller.subject, op));
    }
    Ok(subject)
}
