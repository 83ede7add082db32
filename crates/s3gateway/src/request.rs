//! One S3 request as the handlers see it (bucket, key, decoded query,
//! headers, request id), and the shapes of responses: XML documents and S3's
//! XML errors.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use percent_encoding::percent_decode_str;

use crate::auth::Caller;
use crate::error::{Result, S3Error};
use crate::sigv4::Payload;
use crate::xml::Xml;

pub(crate) struct Req {
    pub method: Method,
    /// The bucket of a path-style request (`/bucket/...`), decoded.
    pub bucket: Option<String>,
    /// The key (`/bucket/key`), decoded; None for bucket requests.
    pub key: Option<String>,
    /// Query parameters in order, decoded (a flag like `?uploads` has "").
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    /// Who sent it, once authenticated.
    pub caller: Caller,
    /// What the signature says of the body; taken by the one reader of
    /// the body.
    payload: std::sync::Mutex<Payload>,
}

fn decode(s: &str) -> Result<String> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| S3Error::InvalidArgument(format!("'{s}' does not decode to UTF-8 text")))
}

impl Req {
    pub(crate) fn parse(
        method: Method,
        path: &str,
        query: Option<&str>,
        headers: HeaderMap,
    ) -> Result<Req> {
        let rest = path.strip_prefix('/').unwrap_or(path);
        let (bucket, key) = match rest.split_once('/') {
            Some((b, k)) => (b, if k.is_empty() { None } else { Some(k) }),
            None => (rest, None),
        };
        let bucket = if bucket.is_empty() {
            None
        } else {
            Some(decode(bucket)?)
        };
        let key = key.map(decode).transpose()?;
        let mut params = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            params.push((decode(k)?, decode(v)?));
        }
        Ok(Req {
            method,
            bucket,
            key,
            query: params,
            headers,
            caller: Caller {
                access_key: None,
                verified: false,
            },
            payload: std::sync::Mutex::new(Payload::Unchecked),
        })
    }

    /// Records what authentication established.
    pub(crate) fn authenticated(&mut self, caller: Caller, payload: Payload) {
        self.caller = caller;
        self.payload = std::sync::Mutex::new(payload);
    }

    /// How the body is to be checked (once: the body is read once).
    pub(crate) fn take_payload(&self) -> Payload {
        let mut p = self.payload.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *p, Payload::Unchecked)
    }

    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.query.iter().any(|(k, _)| k == name)
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The path of the resource, for error documents.
    pub(crate) fn resource(&self) -> String {
        match (&self.bucket, &self.key) {
            (Some(b), Some(k)) => format!("/{b}/{k}"),
            (Some(b), None) => format!("/{b}"),
            _ => "/".into(),
        }
    }

    /// The bucket name (requests that reach bucket handlers have one).
    pub(crate) fn bucket_name(&self) -> &str {
        self.bucket.as_deref().unwrap_or("")
    }

    pub(crate) fn key_name(&self) -> &str {
        self.key.as_deref().unwrap_or("")
    }
}

/// A 200 response carrying an XML document.
pub(crate) fn xml_response(doc: String) -> Response {
    let mut r = Response::new(Body::from(doc));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    r
}

pub(crate) fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

/// S3's error document for `err` (no body for HEAD requests, whose
/// responses cannot carry one).
pub(crate) fn error_response(req_id: &str, resource: &str, head: bool, err: &S3Error) -> Response {
    let (code, status) = err.code();
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::warn!(code, %err, resource, "S3 request failed");
    } else {
        tracing::debug!(code, %err, resource, "S3 request refused");
    }
    let mut r = if head || status == StatusCode::NOT_MODIFIED {
        Response::new(Body::empty())
    } else {
        let mut x = Xml::error();
        x.elem("Code", code)
            .elem("Message", &err.to_string())
            .elem("Resource", resource)
            .elem("RequestId", req_id);
        let mut r = Response::new(Body::from(x.finish("Error")));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        r
    };
    *r.status_mut() = status;
    if let S3Error::InvalidRange { size } = err
        && let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}"))
    {
        r.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    r
}

/// A header value from text the gateway made (ETags, dates, numbers are
/// always valid header values; anything else is dropped).
pub(crate) fn set_header(r: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}
