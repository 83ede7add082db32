//! Verification of AWS request signatures, as S3 computes them: Signature
//! Version 4 (header and presigned query, payload hashes, and the chained
//! chunk signatures of `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` bodies) and
//! Signature Version 2 (header and presigned query).
//!
//! A signature is recomputed from the request as it came over the wire and
//! the secret key, and compared in constant time. Clients differ in how
//! they encode a path before signing it (botocore signs the path exactly as
//! sent, others re-encode it strictly), so both forms of the path are
//! tried; both are made from the same request, so neither lets anything
//! unsigned through.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use ring::digest::{Context, SHA256, digest};
use ring::hmac;

use crate::auth::{Wire, parse_v4_header};
use crate::error::S3Error;

/// How far a signed request's date may be from the server's clock.
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
/// The longest a presigned V4 URL may be valid (seven days).
const MAX_EXPIRES: u64 = 7 * 24 * 3600;
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
const STREAMING_SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
const STREAMING_SIGNED_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
/// SHA-256 of nothing, hex.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The subresources a V2 signature covers (S3's list).
const V2_SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "cors",
    "defaultObjectAcl",
    "delete",
    "lifecycle",
    "location",
    "logging",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "select",
    "select-type",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// What a verified signature says of the body still to come.
pub(crate) enum Payload {
    /// Nothing: unsigned, or signatures are not verified.
    Unchecked,
    /// The body's SHA-256 must be this (`x-amz-content-sha256`).
    Sha256([u8; 32]),
    /// An aws-chunked body whose every chunk is signed.
    Chunked(Box<ChunkSigner>),
}

/// Verifies the chained signatures of an aws-chunked body: each chunk's
/// signature covers its data and the previous chunk's signature, starting
/// from the request's own ("seed") signature.
pub(crate) struct ChunkSigner {
    key: hmac::Key,
    amz_date: String,
    scope: String,
    previous: String,
}

impl ChunkSigner {
    /// Checks the signature of the next chunk, whose data hashes to
    /// `data_sha256`.
    pub(crate) fn verify_chunk(
        &mut self,
        data_sha256: &[u8],
        signature: &str,
    ) -> Result<(), S3Error> {
        let to_sign = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256}\n{}",
            self.amz_date,
            self.scope,
            self.previous,
            hex::encode(data_sha256)
        );
        let expected = hex::encode(hmac::sign(&self.key, to_sign.as_bytes()));
        if !constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
            return Err(S3Error::SignatureDoesNotMatch(
                "a chunk's signature of the aws-chunked body does not match its data".into(),
            ));
        }
        self.previous = expected;
        Ok(())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// S3's URI encoding: every byte but `A-Za-z0-9-_.~` is `%XX`.
const STRICT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
const STRICT_PATH: &AsciiSet = &STRICT.remove(b'/');

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn query_value<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Seconds since the epoch of an ISO 8601 basic time, `20130524T000000Z`.
pub(crate) fn parse_amz_date(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn check_skew(request_secs: u64, now: SystemTime) -> Result<(), S3Error> {
    let now = secs(now);
    if now.abs_diff(request_secs) > MAX_SKEW.as_secs() {
        return Err(S3Error::RequestTimeTooSkewed);
    }
    Ok(())
}

/// The canonical query string of a V4 signature: every parameter (but the
/// signature itself) strictly encoded, sorted by name then value.
fn canonical_query(query: &[(String, String)], presigned: bool) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| !(presigned && k == "X-Amz-Signature"))
        .map(|(k, v)| {
            (
                utf8_percent_encode(k, STRICT).to_string(),
                utf8_percent_encode(v, STRICT).to_string(),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn canonical_headers(headers: &HeaderMap, signed: &[String]) -> String {
    let mut out = String::new();
    for name in signed {
        let values: Vec<String> = headers
            .get_all(name.as_str())
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out
}

/// The paths a client may have signed: as sent, and strictly re-encoded.
fn candidate_paths(raw: &str) -> Vec<String> {
    let mut paths = vec![raw.to_string()];
    if let Ok(decoded) = percent_decode_str(raw).decode_utf8() {
        let strict = utf8_percent_encode(&decoded, STRICT_PATH).to_string();
        if strict != raw {
            paths.push(strict);
        }
    }
    paths
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let step = |key: &[u8], data: &str| {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
    };
    let k_date = step(format!("AWS4{secret}").as_bytes(), date);
    let k_region = step(k_date.as_ref(), region);
    let k_service = step(k_region.as_ref(), service);
    let k_signing = step(k_service.as_ref(), "aws4_request");
    hmac::Key::new(hmac::HMAC_SHA256, k_signing.as_ref())
}

/// Verifies a Signature V4 request (header or presigned); returns what the
/// signature says of the body.
pub(crate) fn verify_v4(
    wire: &Wire<'_>,
    query: &[(String, String)],
    secret: &str,
    presigned: bool,
    now: SystemTime,
) -> Result<Payload, S3Error> {
    let malformed = |why: &str| S3Error::AuthorizationHeaderMalformed(why.to_string());
    let (credential, signed_headers, signature, amz_date, payload) = if presigned {
        let get = |name: &str| {
            query_value(query, name).ok_or_else(|| {
                S3Error::AuthorizationQueryParametersError(format!(
                    "a presigned URL needs the query parameter {name}"
                ))
            })
        };
        if get("X-Amz-Algorithm")? != "AWS4-HMAC-SHA256" {
            return Err(S3Error::AuthorizationQueryParametersError(
                "X-Amz-Algorithm must be AWS4-HMAC-SHA256".into(),
            ));
        }
        let date = get("X-Amz-Date")?.to_string();
        let expires: u64 = get("X-Amz-Expires")?.parse().map_err(|_| {
            S3Error::AuthorizationQueryParametersError(
                "X-Amz-Expires must be a number of seconds".into(),
            )
        })?;
        if expires > MAX_EXPIRES {
            return Err(S3Error::AuthorizationQueryParametersError(format!(
                "X-Amz-Expires must be at most {MAX_EXPIRES} seconds (seven days)"
            )));
        }
        let start = parse_amz_date(&date).ok_or_else(|| {
            S3Error::AuthorizationQueryParametersError(format!(
                "X-Amz-Date '{date}' is not a time like 20130524T000000Z"
            ))
        })?;
        let now_secs = secs(now);
        if now_secs + MAX_SKEW.as_secs() < start {
            return Err(S3Error::AccessDenied(
                "the presigned URL is not valid yet (its X-Amz-Date is in the future)".into(),
            ));
        }
        if now_secs > start + expires {
            return Err(S3Error::AccessDenied(
                "the presigned URL has expired".into(),
            ));
        }
        let signed: Vec<String> = get("X-Amz-SignedHeaders")?
            .split(';')
            .map(str::to_string)
            .collect();
        let payload = query_value(query, "X-Amz-Content-Sha256")
            .unwrap_or(UNSIGNED_PAYLOAD)
            .to_string();
        (
            get("X-Amz-Credential")?.to_string(),
            signed,
            get("X-Amz-Signature")?.to_string(),
            date,
            payload,
        )
    } else {
        let header = header_text(wire.headers, "authorization").unwrap_or("");
        let (credential, signed, signature) =
            parse_v4_header(header).ok_or_else(|| malformed("the header has no Credential"))?;
        let date = match header_text(wire.headers, "x-amz-date") {
            Some(d) => d.to_string(),
            None => {
                let d = header_text(wire.headers, "date")
                    .and_then(crate::time::parse_http_date)
                    .ok_or_else(|| {
                        S3Error::AccessDenied(
                            "a signed request needs an x-amz-date or Date header".into(),
                        )
                    })?;
                crate::time::amz_date(d)
            }
        };
        let t = parse_amz_date(&date).ok_or_else(|| {
            S3Error::AccessDenied(format!(
                "x-amz-date '{date}' is not a time like 20130524T000000Z"
            ))
        })?;
        check_skew(t, now)?;
        let payload = header_text(wire.headers, "x-amz-content-sha256")
            .ok_or_else(|| {
                S3Error::InvalidRequest(
                    "a request signed with Signature V4 needs the x-amz-content-sha256 header"
                        .into(),
                )
            })?
            .to_string();
        (credential, signed, signature, date, payload)
    };
    // Credential = KEY/DATE/REGION/SERVICE/aws4_request.
    let parts: Vec<&str> = credential.split('/').collect();
    let [_, date, region, service, "aws4_request"] = parts[..] else {
        return Err(malformed(
            "the Credential must be ACCESS_KEY/DATE/REGION/SERVICE/aws4_request",
        ));
    };
    if !amz_date.starts_with(date) {
        return Err(malformed(
            "the Credential's date is not the day of the request's date",
        ));
    }
    if !signed_headers.iter().any(|h| h == "host") {
        return Err(malformed("the signed headers must include host"));
    }
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let key = signing_key(secret, date, region, service);
    let query_part = canonical_query(query, presigned);
    let headers_part = canonical_headers(wire.headers, &signed_headers);
    let signed_list = signed_headers.join(";");
    let mut matched = false;
    for path in candidate_paths(wire.path) {
        let canonical = format!(
            "{}\n{path}\n{query_part}\n{headers_part}\n{signed_list}\n{payload}",
            wire.method
        );
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(digest(&SHA256, canonical.as_bytes()))
        );
        let expected = hex::encode(hmac::sign(&key, to_sign.as_bytes()));
        if constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
            matched = true;
            break;
        }
    }
    if !matched {
        return Err(S3Error::SignatureDoesNotMatch(
            "the request signature we calculated does not match the signature you provided; check your key and signing method".into(),
        ));
    }
    Ok(match payload.as_str() {
        UNSIGNED_PAYLOAD | STREAMING_UNSIGNED_TRAILER => Payload::Unchecked,
        STREAMING_SIGNED | STREAMING_SIGNED_TRAILER => Payload::Chunked(Box::new(ChunkSigner {
            key,
            amz_date,
            scope,
            previous: signature,
        })),
        hash => {
            let bytes = hex::decode(hash)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok());
            match bytes {
                Some(b) => Payload::Sha256(b),
                None => {
                    return Err(S3Error::InvalidArgument(format!(
                        "x-amz-content-sha256 '{hash}' is neither a SHA-256 in hex nor UNSIGNED-PAYLOAD nor a STREAMING- mode"
                    )));
                }
            }
        }
    })
}

/// Verifies a Signature V2 request (header or presigned).
pub(crate) fn verify_v2(
    wire: &Wire<'_>,
    query: &[(String, String)],
    secret: &str,
    presigned: bool,
    now: SystemTime,
) -> Result<(), S3Error> {
    let header = |name: &str| header_text(wire.headers, name).unwrap_or("").trim();
    let (signature, dates) = if presigned {
        let expires = query_value(query, "Expires").unwrap_or("");
        let at: u64 = expires.parse().map_err(|_| {
            S3Error::AccessDenied("a presigned URL needs Expires, in seconds since 1970".into())
        })?;
        if secs(now) > at {
            return Err(S3Error::AccessDenied(
                "the presigned URL has expired".into(),
            ));
        }
        (
            query_value(query, "Signature").unwrap_or("").to_string(),
            vec![expires.to_string()],
        )
    } else {
        let auth = header("authorization");
        let signature = auth.rsplit_once(':').map(|(_, s)| s).unwrap_or("");
        let amz_date = header_text(wire.headers, "x-amz-date");
        let date = header_text(wire.headers, "date");
        let when = amz_date
            .or(date)
            .and_then(crate::time::parse_http_date)
            .ok_or_else(|| {
                S3Error::AccessDenied(
                    "AWS authentication requires a valid Date or x-amz-date header".into(),
                )
            })?;
        check_skew(when, now)?;
        // With x-amz-date, S3 takes the Date line as empty; clients that
        // send both sign the Date header's value.
        let mut dates = vec![date.unwrap_or("").trim().to_string()];
        if amz_date.is_some() && date.is_some() {
            dates.push(String::new());
        }
        (signature.to_string(), dates)
    };
    let mut amz: Vec<(String, String)> = Vec::new();
    for name in wire.headers.keys() {
        let n = name.as_str();
        if n.starts_with("x-amz-") {
            let values: Vec<String> = wire
                .headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
                .collect();
            amz.push((n.to_string(), values.join(",")));
        }
    }
    amz.sort();
    let amz_lines: String = amz.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let mut sub: Vec<(String, Option<String>)> = wire
        .query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = match p.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (p, None),
            };
            V2_SUBRESOURCES.contains(&k).then(|| {
                (
                    k.to_string(),
                    v.map(|v| percent_decode_str(v).decode_utf8_lossy().into_owned()),
                )
            })
        })
        .collect();
    sub.sort_by(|a, b| a.0.cmp(&b.0));
    let subresources: String = if sub.is_empty() {
        String::new()
    } else {
        let joined: Vec<String> = sub
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => k.clone(),
            })
            .collect();
        format!("?{}", joined.join("&"))
    };
    // A request to a bucket itself, `/BUCKET`, is signed as `/BUCKET/` by
    // clients that build the resource from the bucket (botocore, as S3's own
    // virtual-host form writes it), and as sent by others.
    let mut paths = vec![wire.path.to_string()];
    if wire.path.len() > 1 && !wire.path[1..].contains('/') {
        paths.push(format!("{}/", wire.path));
    }
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    for date in &dates {
        for path in &paths {
            let to_sign = format!(
                "{}\n{}\n{}\n{date}\n{amz_lines}{path}{subresources}",
                wire.method,
                header("content-md5"),
                header("content-type"),
            );
            let expected = base64::engine::general_purpose::STANDARD
                .encode(hmac::sign(&key, to_sign.as_bytes()).as_ref());
            if constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
                return Ok(());
            }
        }
    }
    Err(S3Error::SignatureDoesNotMatch(
        "the request signature we calculated does not match the signature you provided; check your key and signing method".into(),
    ))
}

/// SHA-256 of a body as it streams in, checked against what was signed.
pub(crate) struct BodyHash {
    context: Context,
    want: [u8; 32],
}

impl BodyHash {
    pub(crate) fn new(want: [u8; 32]) -> BodyHash {
        BodyHash {
            context: Context::new(&SHA256),
            want,
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        self.context.update(data);
    }

    pub(crate) fn check(self) -> Result<(), S3Error> {
        if self.context.finish().as_ref() != self.want {
            return Err(S3Error::XAmzContentSha256Mismatch);
        }
        Ok(())
    }
}

/// SHA-256 of one chunk's data, for [`ChunkSigner::verify_chunk`].
pub(crate) fn chunk_context() -> Context {
    Context::new(&SHA256)
}

#[cfg(test)]
mod tests {
    //! AWS's published examples of Signature V4 for S3 ("Examples of
    //! signature calculations", "Signature calculations for the
    //! Authorization header: transferring payload in multiple chunks") and
    //! of Signature V2 ("Signing and authenticating REST requests").
    use super::*;
    use axum::http::HeaderValue;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const CREDENTIAL: &str = "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request";

    fn at(s: &str) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(parse_amz_date(s).unwrap())
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn decoded(query: &str) -> Vec<(String, String)> {
        query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                let d = |s: &str| percent_decode_str(s).decode_utf8().unwrap().into_owned();
                (d(k), d(v))
            })
            .collect()
    }

    fn v4_header(signed: &str, signature: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential={CREDENTIAL},SignedHeaders={signed},Signature={signature}"
        )
    }

    fn check_v4(method: &str, path: &str, query: &str, h: &HeaderMap) -> Result<Payload, S3Error> {
        let wire = Wire {
            method,
            path,
            query,
            headers: h,
        };
        verify_v4(
            &wire,
            &decoded(query),
            SECRET,
            false,
            at("20130524T000000Z"),
        )
    }

    #[test]
    fn aws_example_get_object_with_range() {
        let sig = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
        let h = headers(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
            (
                "authorization",
                &v4_header("host;range;x-amz-content-sha256;x-amz-date", sig),
            ),
        ]);
        assert!(matches!(
            check_v4("GET", "/test.txt", "", &h),
            Ok(Payload::Sha256(_))
        ));
        // Another secret, or another range, does not verify.
        let wire = Wire {
            method: "GET",
            path: "/test.txt",
            query: "",
            headers: &h,
        };
        assert!(matches!(
            verify_v4(&wire, &[], "wrong", false, at("20130524T000000Z")),
            Err(S3Error::SignatureDoesNotMatch(_))
        ));
        let mut other = h.clone();
        other.insert("range", HeaderValue::from_static("bytes=0-10"));
        assert!(matches!(
            check_v4("GET", "/test.txt", "", &other),
            Err(S3Error::SignatureDoesNotMatch(_))
        ));
        // A day later, the clock skew refuses it.
        assert!(matches!(
            verify_v4(&wire, &[], SECRET, false, at("20130525T000000Z")),
            Err(S3Error::RequestTimeTooSkewed)
        ));
    }

    #[test]
    fn aws_example_put_object() {
        let sig = "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd";
        let body_hash = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
        let h = headers(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-content-sha256", body_hash),
            (
                "authorization",
                &v4_header(
                    "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
                    sig,
                ),
            ),
        ]);
        let Ok(Payload::Sha256(want)) = check_v4("PUT", "/test%24file.text", "", &h) else {
            panic!("the example does not verify");
        };
        let mut body = BodyHash::new(want);
        body.update(b"Welcome to Amazon S3.");
        body.check().unwrap();
        let mut body = BodyHash::new(want);
        body.update(b"Welcome to Amazon S3!");
        assert!(matches!(
            body.check(),
            Err(S3Error::XAmzContentSha256Mismatch)
        ));
    }

    #[test]
    fn aws_example_get_with_query() {
        let lifecycle = "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543";
        let list = "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7";
        for (query, sig) in [("lifecycle", lifecycle), ("max-keys=2&prefix=J", list)] {
            let h = headers(&[
                ("host", "examplebucket.s3.amazonaws.com"),
                ("x-amz-date", "20130524T000000Z"),
                ("x-amz-content-sha256", EMPTY_SHA256),
                (
                    "authorization",
                    &v4_header("host;x-amz-content-sha256;x-amz-date", sig),
                ),
            ]);
            assert!(check_v4("GET", "/", query, &h).is_ok(), "{query}");
        }
    }

    #[test]
    fn aws_example_presigned_url() {
        let query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
        let h = headers(&[("host", "examplebucket.s3.amazonaws.com")]);
        let wire = Wire {
            method: "GET",
            path: "/test.txt",
            query,
            headers: &h,
        };
        let q = decoded(query);
        assert!(matches!(
            verify_v4(&wire, &q, SECRET, true, at("20130524T120000Z")),
            Ok(Payload::Unchecked)
        ));
        assert!(matches!(
            verify_v4(&wire, &q, SECRET, true, at("20130525T000001Z")),
            Err(S3Error::AccessDenied(_))
        ));
        let wire = Wire {
            path: "/other.txt",
            ..wire
        };
        assert!(matches!(
            verify_v4(&wire, &q, SECRET, true, at("20130524T120000Z")),
            Err(S3Error::SignatureDoesNotMatch(_))
        ));
    }

    #[test]
    fn aws_example_chunked_upload() {
        let seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
        let h = headers(&[
            ("host", "s3.amazonaws.com"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-content-sha256", STREAMING_SIGNED),
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "66560"),
            ("content-length", "66824"),
            (
                "authorization",
                &v4_header(
                    "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class",
                    seed,
                ),
            ),
        ]);
        let Ok(Payload::Chunked(mut signer)) =
            check_v4("PUT", "/examplebucket/chunkObject.txt", "", &h)
        else {
            panic!("the seed signature does not verify");
        };
        let hash = |n: usize| digest(&SHA256, &vec![b'a'; n]).as_ref().to_vec();
        let mut corrupt = ChunkSigner {
            key: signing_key(SECRET, "20130524", "us-east-1", "s3"),
            amz_date: signer.amz_date.clone(),
            scope: signer.scope.clone(),
            previous: seed.into(),
        };
        signer
            .verify_chunk(
                &hash(65536),
                "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
            )
            .unwrap();
        signer
            .verify_chunk(
                &hash(1024),
                "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
            )
            .unwrap();
        signer
            .verify_chunk(
                &hash(0),
                "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
            )
            .unwrap();
        // A chunk of other data does not verify.
        assert!(
            corrupt
                .verify_chunk(
                    &hash(65535),
                    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
                )
                .is_err()
        );
    }

    #[test]
    fn aws_example_v2_get_object() {
        // GET /photos/puppy.jpg of bucket johnsmith, path-style.
        let h = headers(&[
            ("host", "s3.amazonaws.com"),
            ("date", "Tue, 27 Mar 2007 19:36:42 +0000"),
            (
                "authorization",
                "AWS AKIAIOSFODNN7EXAMPLE:bWq2s1WEIj+Ydj0vQ697zp+IXMU=",
            ),
        ]);
        let wire = Wire {
            method: "GET",
            path: "/johnsmith/photos/puppy.jpg",
            query: "",
            headers: &h,
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_175_024_202);
        verify_v2(&wire, &[], SECRET, false, now).unwrap();
        assert!(matches!(
            verify_v2(&wire, &[], "wrong", false, now),
            Err(S3Error::SignatureDoesNotMatch(_))
        ));
        assert!(matches!(
            verify_v2(&wire, &[], SECRET, false, now + Duration::from_secs(3600)),
            Err(S3Error::RequestTimeTooSkewed)
        ));
    }

    #[test]
    fn aws_example_v2_list_signed_as_bucket_root() {
        // AWS's "List" example signs the resource `/johnsmith/`; sent
        // path-style, the request's path is `/johnsmith` (as botocore sends
        // it) or `/johnsmith/`, and both verify.
        let h = headers(&[
            ("host", "s3.amazonaws.com"),
            ("date", "Tue, 27 Mar 2007 19:42:41 +0000"),
            (
                "authorization",
                "AWS AKIAIOSFODNN7EXAMPLE:htDYFYduRNen8P9ZfE/s9SuKy0U=",
            ),
        ]);
        let now = UNIX_EPOCH + Duration::from_secs(1_175_024_561);
        for path in ["/johnsmith", "/johnsmith/"] {
            let wire = Wire {
                method: "GET",
                path,
                query: "prefix=photos&max-keys=50&marker=puppy",
                headers: &h,
            };
            verify_v2(&wire, &[], SECRET, false, now).unwrap();
        }
        // A key's path is signed as it is.
        let wire = Wire {
            method: "GET",
            path: "/johnsmith/x",
            query: "",
            headers: &h,
        };
        assert!(matches!(
            verify_v2(&wire, &[], SECRET, false, now),
            Err(S3Error::SignatureDoesNotMatch(_))
        ));
    }

    #[test]
    fn amz_dates() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20130524T000000Z"), Some(1_369_353_600));
        for bad in [
            "2013-05-24",
            "20130524T000000",
            "20131324T000000Z",
            "2013052xT000000Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }
}
