//! S3's ACL calls (`?acl` on a bucket or an object).
//!
//! Without auth every caller is the one owner: any credentials are taken,
//! as in Pachyderm 1.9, and listings name that owner. So a bucket's or an
//! object's ACL is the owner's full control, which GetBucketAcl and
//! GetObjectAcl answer, and setting it to what it already is (the canned
//! `private` or `bucket-owner-full-control`) succeeds and changes nothing.
//! Any other ACL answers NotImplemented, as on CreateBucket and PutObject.
//!
//! With auth active, who may do what is Pachyderm's per-repo ACL (`pachctl
//! auth get|set`), which S3's single-owner model cannot show whole; the
//! calls answer NotImplemented and say where to look, rather than give a
//! view that leaves readers and writers out.

use axum::body::Body;
use axum::response::Response;

use crate::Gateway;
use crate::bucket::Bucket;
use crate::buckets::{check_acl_headers, owner, owner_fields};
use crate::error::{Result, S3Error};
use crate::request::{Req, empty, xml_response};
use crate::xml::Xml;

/// The largest ACL document read (to tell an empty body from one).
const MAX_POLICY: usize = 64 * 1024;

/// GetBucketAcl and GetObjectAcl.
pub(crate) async fn get_acl(gw: &Gateway, req: &Req) -> Result<Response> {
    only_without_auth(gw, req).await?;
    target_exists(gw, req).await?;
    let mut x = Xml::new("AccessControlPolicy");
    owner(&mut x, "Owner");
    owner_fields(x.open("AccessControlList").open("Grant").open(
        r#"Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser""#,
    ))
    .close("Grantee")
    .elem("Permission", "FULL_CONTROL")
    .close("Grant")
    .close("AccessControlList");
    Ok(xml_response(x.finish("AccessControlPolicy")))
}

/// PutBucketAcl and PutObjectAcl: the owner's full control, given as a
/// canned ACL, is kept (it is what every bucket and object has).
pub(crate) async fn put_acl(gw: &Gateway, req: &Req, body: Body) -> Result<Response> {
    only_without_auth(gw, req).await?;
    check_acl_headers(req)?;
    let document = axum::body::to_bytes(body, MAX_POLICY)
        .await
        .map_err(|e| S3Error::InvalidRequest(format!("the ACL document could not be read: {e}")))?;
    if !document.is_empty() {
        return Err(S3Error::NotImplemented {
            what: "ACLs given as an AccessControlPolicy document (only the canned \
                   'private' and 'bucket-owner-full-control', as x-amz-acl, are kept)"
                .into(),
        });
    }
    if req.header("x-amz-acl").is_none() {
        return Err(S3Error::InvalidRequest(
            "the request gives no ACL; send x-amz-acl: private".into(),
        ));
    }
    target_exists(gw, req).await?;
    Ok(empty(axum::http::StatusCode::OK))
}

async fn only_without_auth(gw: &Gateway, req: &Req) -> Result<()> {
    if gw.auth.verifies_signatures().await? {
        let repo = Bucket::parse(req.bucket_name())
            .map(|b| b.repo)
            .unwrap_or_default();
        return Err(S3Error::NotImplemented {
            what: format!(
                "reading or setting S3 ACLs while auth is active (a repo's access is its \
                 Pachyderm ACL: `pachctl auth get {repo}` shows it and `pachctl auth set` \
                 changes it)"
            ),
        });
    }
    Ok(())
}

/// The bucket, and the object when the request names one, exist.
async fn target_exists(gw: &Gateway, req: &Req) -> Result<()> {
    let b = Bucket::parse(req.bucket_name())?;
    match &req.key {
        None => b.check_exists(&gw.pfs).await,
        Some(key) => crate::objects::find_object(gw, &b, key, req.param("versionId"))
            .await
            .map(|_| ()),
    }
}
