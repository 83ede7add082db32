//! Who a request comes from and what it may do.
//!
//! Every request is put to the [`Authorizer`] before anything else happens,
//! in two steps:
//!
//! 1. **Authentication.** The credentials an S3 client presents (Signature
//!    V4 or V2, in the `Authorization` header or in a presigned URL's
//!    query) are parsed. When [`Authorizer::verifies_signatures`] says so,
//!    the signature is verified against the secret the authorizer gives for
//!    the access key ([`Authorizer::secret_key`]), as S3 does: the request's
//!    canonical form, its date (15 minutes of clock skew, or a presigned
//!    URL's expiry) and its payload (`x-amz-content-sha256`, or each chunk's
//!    signature of an `aws-chunked` body, checked as the body streams in).
//!    Otherwise any credentials, or none, are accepted, as Pachyderm 1.9
//!    does without auth ([`AllowAll`]).
//! 2. **Authorization.** [`Authorizer::allow`] is asked whether the caller
//!    may [`Access`] each repo the request reads or writes (a copy reads
//!    its source's repo and writes its destination's; ListBuckets shows the
//!    repos the caller may read).
//!
//! With Pachyderm's auth active, the access key and the secret key are both
//! the caller's pachd token: `secret_key` returns the key itself when it is
//! a valid token, and `allow` checks the token's scopes on the repo.

use std::sync::Arc;
use std::time::SystemTime;

use axum::http::HeaderMap;

use crate::error::S3Error;
use crate::sigv4::{self, Payload};

/// How a request is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// No credentials at all.
    Anonymous,
    /// AWS Signature Version 4 (`AWS4-HMAC-SHA256`, header or query).
    V4 {
        /// `<date>/<region>/<service>/aws4_request`.
        scope: String,
        signed_headers: Vec<String>,
        signature: String,
        presigned: bool,
    },
    /// AWS Signature Version 2 (`AWS key:signature`, header or query).
    V2 { signature: String, presigned: bool },
    /// An `Authorization` header of a form the gateway does not know.
    Unparsed(String),
}

/// The credentials a request presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key (with auth, a pachd token); None when anonymous.
    pub access_key: Option<String>,
    pub signature: Signature,
}

/// Who is asking, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The access key whose signature was verified (or, when signatures are
    /// not verified, the one the request claims); None when anonymous.
    pub access_key: Option<String>,
    /// Whether the signature was verified against the key's secret.
    pub verified: bool,
}

/// What a request does to a repo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access<'a> {
    /// Reads the repo's files, branches or commits (GET, HEAD, listings,
    /// the source of a copy).
    Read(&'a str),
    /// Writes files or branches of an existing repo.
    Write(&'a str),
    /// Creates the repo (CreateBucket of a repo that does not exist).
    CreateRepo(&'a str),
    /// Deletes the repo (DeleteBucket of its last branch).
    DeleteRepo(&'a str),
}

/// The gateway's questions to auth. Implementations must be cheap to call:
/// `allow` is asked once per repo a request touches, and once per repo for
/// ListBuckets.
#[async_trait::async_trait]
pub trait Authorizer: Send + Sync + 'static {
    /// Whether signatures are verified (asked once per request: auth can be
    /// activated while the gateway runs). When false, every request is
    /// taken with the credentials it claims (as Pachyderm 1.9 without auth)
    /// and [`secret_key`](Self::secret_key) is never called.
    async fn verifies_signatures(&self) -> Result<bool, S3Error>;

    /// The secret key of `access_key`, which the request's signature must
    /// have been made with; `Ok(None)` when the key is unknown (the request
    /// is refused with `InvalidAccessKeyId`).
    async fn secret_key(&self, access_key: &str) -> Result<Option<String>, S3Error>;

    /// Whether `caller` may do `access`: `Err` (normally
    /// [`S3Error::AccessDenied`]) refuses the request.
    async fn allow(&self, caller: &Caller, access: Access<'_>) -> Result<(), S3Error>;
}

/// Serves every request, whatever its credentials: a cluster without auth.
pub struct AllowAll;

#[async_trait::async_trait]
impl Authorizer for AllowAll {
    async fn verifies_signatures(&self) -> Result<bool, S3Error> {
        Ok(false)
    }

    async fn secret_key(&self, _access_key: &str) -> Result<Option<String>, S3Error> {
        Ok(None)
    }

    async fn allow(&self, _caller: &Caller, _access: Access<'_>) -> Result<(), S3Error> {
        Ok(())
    }
}

/// What authentication established about a request.
pub(crate) struct Authenticated {
    pub caller: Caller,
    /// How the body is to be checked as it arrives.
    pub payload: Payload,
}

/// The raw request as it came over the wire: what signatures are made over.
pub(crate) struct Wire<'a> {
    pub method: &'a str,
    /// The path as sent (percent-encoded).
    pub path: &'a str,
    /// The query as sent (percent-encoded), without `?`.
    pub query: &'a str,
    pub headers: &'a HeaderMap,
}

/// Authenticates a request: with an authorizer that verifies signatures,
/// the request must be anonymous or correctly signed by a known key.
pub(crate) async fn authenticate(
    auth: &Arc<dyn Authorizer>,
    wire: &Wire<'_>,
    query: &[(String, String)],
    now: SystemTime,
) -> Result<Authenticated, S3Error> {
    let credentials = credentials(wire.headers, query);
    if !auth.verifies_signatures().await? {
        return Ok(Authenticated {
            caller: Caller {
                access_key: credentials.access_key,
                verified: false,
            },
            payload: Payload::Unchecked,
        });
    }
    let Credentials {
        access_key,
        signature,
    } = credentials;
    let (v4, presigned) = match signature {
        Signature::Anonymous => {
            return Ok(Authenticated {
                caller: Caller {
                    access_key: None,
                    verified: false,
                },
                payload: Payload::Unchecked,
            });
        }
        Signature::Unparsed(h) => {
            return Err(S3Error::AuthorizationHeaderMalformed(format!(
                "the Authorization header '{}' is neither AWS4-HMAC-SHA256 nor AWS (signature V2)",
                h.chars().take(40).collect::<String>()
            )));
        }
        Signature::V4 { presigned, .. } => (true, presigned),
        Signature::V2 { presigned, .. } => (false, presigned),
    };
    let access_key = access_key.filter(|k| !k.is_empty()).ok_or_else(|| {
        S3Error::AuthorizationHeaderMalformed("the credentials name no access key".into())
    })?;
    let secret =
        auth.secret_key(&access_key)
            .await?
            .ok_or_else(|| S3Error::InvalidAccessKeyId {
                key: access_key.clone(),
            })?;
    let payload = if v4 {
        sigv4::verify_v4(wire, query, &secret, presigned, now)?
    } else {
        sigv4::verify_v2(wire, query, &secret, presigned, now)?;
        Payload::Unchecked
    };
    Ok(Authenticated {
        caller: Caller {
            access_key: Some(access_key),
            verified: true,
        },
        payload,
    })
}

/// The credentials of a request, from its headers and decoded query.
pub(crate) fn credentials(headers: &HeaderMap, query: &[(String, String)]) -> Credentials {
    let q = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    if let Some(header) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return parse_header(header.trim());
    }
    if q("X-Amz-Algorithm").is_some() {
        let credential = q("X-Amz-Credential").unwrap_or_default();
        let (key, scope) = credential.split_once('/').unwrap_or((&credential, ""));
        return Credentials {
            access_key: Some(key.to_string()),
            signature: Signature::V4 {
                scope: scope.to_string(),
                signed_headers: q("X-Amz-SignedHeaders")
                    .unwrap_or_default()
                    .split(';')
                    .map(str::to_string)
                    .collect(),
                signature: q("X-Amz-Signature").unwrap_or_default(),
                presigned: true,
            },
        };
    }
    if let Some(key) = q("AWSAccessKeyId") {
        return Credentials {
            access_key: Some(key),
            signature: Signature::V2 {
                signature: q("Signature").unwrap_or_default(),
                presigned: true,
            },
        };
    }
    Credentials {
        access_key: None,
        signature: Signature::Anonymous,
    }
}

/// The parts of a V4 `Authorization` header: credential, signed headers,
/// signature.
pub(crate) fn parse_v4_header(header: &str) -> Option<(String, Vec<String>, String)> {
    let rest = header.strip_prefix("AWS4-HMAC-SHA256")?;
    let mut credential = None;
    let mut signed_headers = Vec::new();
    let mut signature = String::new();
    for part in rest.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        match k.trim() {
            "Credential" => credential = Some(v.trim().to_string()),
            "SignedHeaders" => signed_headers = v.trim().split(';').map(str::to_string).collect(),
            "Signature" => signature = v.trim().to_string(),
            _ => {}
        }
    }
    Some((credential?, signed_headers, signature))
}

fn parse_header(header: &str) -> Credentials {
    let unparsed = || Credentials {
        access_key: None,
        signature: Signature::Unparsed(header.to_string()),
    };
    if header.starts_with("AWS4-HMAC-SHA256") {
        let Some((credential, signed_headers, signature)) = parse_v4_header(header) else {
            return unparsed();
        };
        let (key, scope) = credential.split_once('/').unwrap_or((&credential, ""));
        return Credentials {
            access_key: Some(key.to_string()),
            signature: Signature::V4 {
                scope: scope.to_string(),
                signed_headers,
                signature,
                presigned: false,
            },
        };
    }
    if let Some(rest) = header.strip_prefix("AWS ")
        && let Some((key, signature)) = rest.trim().rsplit_once(':')
    {
        return Credentials {
            access_key: Some(key.to_string()),
            signature: Signature::V2 {
                signature: signature.to_string(),
                presigned: false,
            },
        };
    }
    unparsed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_header(v: &str) -> Credentials {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_str(v).unwrap());
        credentials(&h, &[])
    }

    #[test]
    fn parses_v4_and_v2_headers() {
        let c = with_header(
            "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=abcd",
        );
        assert_eq!(c.access_key.as_deref(), Some("AKID"));
        assert_eq!(
            c.signature,
            Signature::V4 {
                scope: "20240101/us-east-1/s3/aws4_request".into(),
                signed_headers: vec!["host".into(), "x-amz-date".into()],
                signature: "abcd".into(),
                presigned: false
            }
        );
        let c = with_header("AWS AKID:c2ln");
        assert_eq!(c.access_key.as_deref(), Some("AKID"));
        assert!(matches!(
            c.signature,
            Signature::V2 {
                presigned: false,
                ..
            }
        ));
        let c = with_header("Bearer x");
        assert_eq!(c.access_key, None);
        assert!(matches!(c.signature, Signature::Unparsed(_)));
    }

    #[test]
    fn parses_presigned_queries() {
        let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let c = credentials(
            &HeaderMap::new(),
            &q(&[
                ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
                ("X-Amz-Credential", "K/20240101/r/s3/aws4_request"),
                ("X-Amz-Signature", "s"),
            ]),
        );
        assert_eq!(c.access_key.as_deref(), Some("K"));
        assert!(matches!(
            c.signature,
            Signature::V4 {
                presigned: true,
                ..
            }
        ));
        let c = credentials(
            &HeaderMap::new(),
            &q(&[("AWSAccessKeyId", "K"), ("Signature", "s")]),
        );
        assert!(matches!(
            c.signature,
            Signature::V2 {
                presigned: true,
                ..
            }
        ));
        let c = credentials(&HeaderMap::new(), &[]);
        assert_eq!(c.signature, Signature::Anonymous);
    }
}
