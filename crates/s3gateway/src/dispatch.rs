//! Which operation a request is: S3 tells them apart by method, by whether
//! the path names a bucket or an object, and by subresource query
//! parameters (`?uploads`, `?location`, `?acl`...). Subresources of
//! features the gateway does not implement answer `NotImplemented`, so that
//! a client never takes a plain listing or write for the feature it asked.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;

use crate::auth::{Access, Wire};
use crate::bucket::Bucket;
use crate::error::{Result, S3Error};
use crate::request::{Req, error_response, set_header};
use crate::{Gateway, acl, auth, buckets, multipart, objects};

/// Bucket subresources of features not implemented (policies, lifecycle,
/// tagging, CORS, website, logging, replication, encryption, object
/// lock...).
const BUCKET_FEATURES: &[&str] = &[
    "policy",
    "policyStatus",
    "lifecycle",
    "tagging",
    "cors",
    "website",
    "logging",
    "notification",
    "replication",
    "encryption",
    "object-lock",
    "ownershipControls",
    "publicAccessBlock",
    "requestPayment",
    "accelerate",
    "analytics",
    "inventory",
    "metrics",
    "intelligent-tiering",
];

/// Object subresources of features not implemented.
const OBJECT_FEATURES: &[&str] = &[
    "tagging",
    "retention",
    "legal-hold",
    "torrent",
    "restore",
    "select",
];

pub(crate) async fn handle(State(gw): State<Gateway>, request: Request) -> Response {
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    let (parts, body) = request.into_parts();
    let head = parts.method == Method::HEAD;
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let method = parts.method.to_string();
    let mut response = match Req::parse(parts.method, &path, parts.uri.query(), parts.headers) {
        Err(e) => error_response(&request_id, &path, head, &e),
        Ok(req) => {
            let resource = req.resource();
            let wire = RawRequest {
                method,
                path: path.clone(),
                query: raw_query,
            };
            match route(&gw, req, &wire, body).await {
                Ok(r) => r,
                Err(e) => error_response(&request_id, &resource, head, &e),
            }
        }
    };
    set_header(&mut response, "x-amz-request-id", &request_id);
    set_header(&mut response, "server", "Pachyderm");
    response
}

/// What signatures are computed over: the request line as sent.
struct RawRequest {
    method: String,
    path: String,
    query: String,
}

async fn route(gw: &Gateway, mut req: Req, raw: &RawRequest, body: Body) -> Result<Response> {
    let wire = Wire {
        method: &raw.method,
        path: &raw.path,
        query: &raw.query,
        headers: &req.headers,
    };
    let authenticated =
        auth::authenticate(&gw.auth, &wire, &req.query, std::time::SystemTime::now()).await?;
    req.authenticated(authenticated.caller, authenticated.payload);
    expected_owner(&req)?;
    // What the request does to its bucket's repo (CreateBucket and
    // DeleteBucket ask for themselves: whether they create or delete the
    // repo depends on what exists). A bucket name that names no repo is
    // refused by the handler before anything is read.
    if let Some(name) = &req.bucket
        && let Ok(b) = Bucket::parse(name)
    {
        let reads = req.method == Method::GET || req.method == Method::HEAD;
        let create = req.key.is_none() && req.method == Method::PUT;
        if reads {
            gw.allow(&req, Access::Read(&b.repo)).await?;
        } else if !create {
            gw.allow(&req, Access::Write(&b.repo)).await?;
        }
    }
    match (&req.bucket, &req.key) {
        (None, _) => match req.method {
            Method::GET | Method::HEAD => buckets::list_buckets(gw, &req).await,
            _ => Err(S3Error::MethodNotAllowed),
        },
        (Some(_), None) => bucket_operation(gw, req, body).await,
        (Some(_), Some(_)) => object_operation(gw, req, body).await,
    }
}

/// A client that names the account it expects to own the bucket (or a
/// copy's source bucket) is refused when another one does, as S3 refuses
/// it, instead of the check passing unseen. Every bucket here has the one
/// owner that listings name.
fn expected_owner(req: &Req) -> Result<()> {
    for header in [
        "x-amz-expected-bucket-owner",
        "x-amz-source-expected-bucket-owner",
    ] {
        if let Some(expected) = req.header(header)
            && expected != buckets::OWNER_ID
        {
            return Err(S3Error::AccessDenied(format!(
                "{header} is '{expected}', but the bucket's owner is '{}'",
                buckets::OWNER_ID
            )));
        }
    }
    Ok(())
}

fn not_implemented(req: &Req, features: &[&str], of: &str) -> Result<()> {
    if let Some(f) = features.iter().find(|f| req.has(f)) {
        return Err(S3Error::NotImplemented {
            what: format!("the {of} subresource '?{f}'"),
        });
    }
    Ok(())
}

async fn bucket_operation(gw: &Gateway, req: Req, body: Body) -> Result<Response> {
    if req.has("acl") {
        return acl_operation(gw, req, body).await;
    }
    not_implemented(&req, BUCKET_FEATURES, "bucket")?;
    match req.method {
        Method::GET if req.has("location") => buckets::location(gw, &req).await,
        Method::GET if req.has("versioning") => buckets::versioning(gw, &req).await,
        Method::GET if req.has("uploads") => multipart::list_uploads(gw, &req).await,
        Method::GET if req.has("versions") => buckets::list_versions(gw, &req).await,
        Method::GET if req.param("list-type") == Some("2") => {
            buckets::list_objects(gw, &req, true).await
        }
        Method::GET => buckets::list_objects(gw, &req, false).await,
        Method::HEAD => buckets::head_bucket(gw, &req).await,
        Method::PUT if req.has("versioning") => Err(S3Error::NotImplemented {
            what: "changing a bucket's versioning (a branch keeps every commit; old versions are read as COMMIT.REPO buckets)".into(),
        }),
        Method::PUT => buckets::create_bucket(gw, &req, body).await,
        Method::DELETE => buckets::delete_bucket(gw, &req).await,
        Method::POST if req.has("delete") => objects::delete_objects(gw, &req, body).await,
        Method::POST => Err(S3Error::NotImplemented {
            what: "uploading with a browser form (POST object)".into(),
        }),
        _ => Err(S3Error::MethodNotAllowed),
    }
}

async fn object_operation(gw: &Gateway, req: Req, body: Body) -> Result<Response> {
    if req.has("acl") {
        return acl_operation(gw, req, body).await;
    }
    not_implemented(&req, OBJECT_FEATURES, "object")?;
    let copy = req.header("x-amz-copy-source").is_some();
    match req.method {
        Method::GET if req.has("uploadId") => multipart::list_parts(gw, &req).await,
        Method::GET if req.has("attributes") => objects::get_object_attributes(gw, &req).await,
        Method::GET => objects::get_object(gw, &req, false).await,
        Method::HEAD => objects::get_object(gw, &req, true).await,
        Method::PUT if req.has("uploadId") || req.has("partNumber") => {
            multipart::upload_part(gw, &req, body).await
        }
        Method::PUT if copy => objects::copy_object(gw, &req).await,
        Method::PUT => objects::put_object(gw, &req, body).await,
        Method::DELETE if req.has("uploadId") => multipart::abort(gw, &req).await,
        Method::DELETE => objects::delete_object(gw, &req).await,
        Method::POST if req.has("uploads") => multipart::create(gw, &req).await,
        Method::POST if req.has("uploadId") => multipart::complete(gw, &req, body).await,
        Method::POST => Err(S3Error::NotImplemented {
            what: "this POST operation on objects".into(),
        }),
        Method::OPTIONS => Err(S3Error::NotImplemented {
            what: "CORS".into(),
        }),
        _ => Err(S3Error::MethodNotAllowed),
    }
}

/// `?acl` on a bucket or an object.
async fn acl_operation(gw: &Gateway, req: Req, body: Body) -> Result<Response> {
    match req.method {
        Method::GET | Method::HEAD => acl::get_acl(gw, &req).await,
        Method::PUT => acl::put_acl(gw, &req, body).await,
        _ => Err(S3Error::MethodNotAllowed),
    }
}

/// A response with no body and this status.
pub(crate) fn no_content() -> Response {
    crate::request::empty(StatusCode::NO_CONTENT)
}
