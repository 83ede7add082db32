//! The records of access control and their keys, all under `auth/`:
//! `auth/enterprise`, `auth/activation`, `auth/config`, `auth/admins/<subject>`,
//! `auth/tokens/<hash>`, `auth/otps/<hash>`, `auth/acls/<repo>`,
//! `auth/members/<subject>` (a subject's groups) and `auth/groups/<group>`
//! (a group's members). Values are JSON. A `<hash>` is the hex BLAKE3 hash
//! of a secret; the secret itself is never written.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub const PREFIX: &str = "auth/";
pub(crate) const ENTERPRISE: &str = "auth/enterprise";
pub(crate) const ACTIVATION: &str = "auth/activation";
pub(crate) const CONFIG: &str = "auth/config";
pub(crate) const ADMINS: &str = "auth/admins/";
pub(crate) const TOKENS: &str = "auth/tokens/";
pub(crate) const OTPS: &str = "auth/otps/";
pub(crate) const ACLS: &str = "auth/acls/";
pub(crate) const MEMBERS: &str = "auth/members/";
pub(crate) const GROUPS: &str = "auth/groups/";

/// The records an extract carries, in the order a restore applies them:
/// who may do what moves with the data. One-time passwords (minutes of
/// life) and the enterprise state (each cluster's own) stay behind.
pub const EXTRACTED: [&str; 7] = [ACTIVATION, CONFIG, ADMINS, TOKENS, ACLS, MEMBERS, GROUPS];

/// Every prefix deactivation clears (the enterprise state stays).
pub(crate) const CLEARED_ON_DEACTIVATE: [&str; 7] =
    [ADMINS, TOKENS, OTPS, ACLS, MEMBERS, GROUPS, CONFIG];

pub(crate) fn admin_key(subject: &str) -> String {
    format!("{ADMINS}{subject}")
}
pub(crate) fn token_key(hash: &str) -> String {
    format!("{TOKENS}{hash}")
}
pub(crate) fn otp_key(hash: &str) -> String {
    format!("{OTPS}{hash}")
}
pub(crate) fn acl_key(repo: &str) -> String {
    format!("{ACLS}{repo}")
}
pub(crate) fn members_key(subject: &str) -> String {
    format!("{MEMBERS}{subject}")
}
pub(crate) fn group_key(group: &str) -> String {
    format!("{GROUPS}{group}")
}

/// A subject's access to a repo; each scope includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Scope {
    None,
    Reader,
    Writer,
    Owner,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::None => "NONE",
            Scope::Reader => "READER",
            Scope::Writer => "WRITER",
            Scope::Owner => "OWNER",
        }
    }

    /// Parses a scope as pachctl takes it (any case).
    pub fn parse(s: &str) -> Option<Scope> {
        match s.to_ascii_uppercase().as_str() {
            "NONE" => Some(Scope::None),
            "READER" => Some(Scope::Reader),
            "WRITER" => Some(Scope::Writer),
            "OWNER" => Some(Scope::Owner),
            _ => None,
        }
    }
}

/// How a token was made (1.9's `TokenInfo.TokenSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// Activation or authentication (a session).
    Authenticate,
    /// `GetAuthToken`.
    GetToken,
}

/// Auth is active. Empty, so that two clusters' records are the same and a
/// restore of one's extract merges into the other (see `docs/auth.md`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ActivationRecord {}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TokenRecord {
    /// The token's hash again, compared in constant time with the presented
    /// token's hash (the key only finds the record).
    pub hash: String,
    pub subject: String,
    pub source: TokenSource,
    /// Unix time after which the token is refused (`None`: never).
    pub expires: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OtpRecord {
    pub hash: String,
    pub subject: String,
    /// The password is refused after this Unix time.
    pub expires: i64,
    /// The session it buys ends at this Unix time.
    pub session_expires: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct AclRecord {
    pub entries: BTreeMap<String, Scope>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct SetRecord {
    pub names: BTreeSet<String>,
}
