//! Who a request comes from: the credentials an S3 client presents
//! (Signature V4 or V2, in the `Authorization` header or in a presigned
//! URL's query), and the [`Authorizer`] the gateway asks before it serves
//! anything.
//!
//! Without auth (the only mode so far) every request is served, whatever
//! its credentials, as in Pachyderm 1.9: [`AllowAll`]. An authorizer that
//! checks tokens gets everything a signature check needs — the access key,
//! the signature and what it signs — through [`Credentials`]; the gateway
//! itself never looks at a secret. Credentials that cannot be parsed are
//! passed on as [`Signature::Unparsed`] rather than refused, so that the
//! policy stays the authorizer's.

use axum::http::HeaderMap;

use crate::error::S3Error;

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

/// Decides whether a request with these credentials is served. With auth
/// active, an implementation verifies the signature against the token
/// named by the access key (`S3Error::AccessDenied` and the like refuse).
#[async_trait::async_trait]
pub trait Authorizer: Send + Sync + 'static {
    async fn authorize(&self, credentials: &Credentials) -> Result<(), S3Error>;
}

/// Serves every request: a cluster without auth.
pub struct AllowAll;

#[async_trait::async_trait]
impl Authorizer for AllowAll {
    async fn authorize(&self, _credentials: &Credentials) -> Result<(), S3Error> {
        Ok(())
    }
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

fn parse_header(header: &str) -> Credentials {
    let unparsed = || Credentials {
        access_key: None,
        signature: Signature::Unparsed(header.to_string()),
    };
    if let Some(rest) = header.strip_prefix("AWS4-HMAC-SHA256") {
        let mut credential = None;
        let mut signed_headers = Vec::new();
        let mut signature = String::new();
        for part in rest.split(',') {
            let Some((k, v)) = part.trim().split_once('=') else {
                continue;
            };
            match k.trim() {
                "Credential" => credential = Some(v.trim().to_string()),
                "SignedHeaders" => {
                    signed_headers = v.trim().split(';').map(str::to_string).collect()
                }
                "Signature" => signature = v.trim().to_string(),
                _ => {}
            }
        }
        let Some(credential) = credential else {
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
