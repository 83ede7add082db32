//! The service and bucket operations: ListBuckets, CreateBucket,
//! DeleteBucket, HeadBucket, GetBucketLocation, GetBucketVersioning, and
//! the listings (ListObjects v1 and v2, ListObjectVersions).
//!
//! Listings walk the commit's file index in key order from the first key
//! they can return (after the marker, at the prefix): a page costs the
//! shards it touches, not the bucket's size. A run of keys folded into one
//! common prefix is skipped by seeking past it once it is long, so a
//! delimiter listing of a few directories holding millions of files stays
//! cheap.
//!
//! Versions: a branch bucket is presented as unversioned (S3's "never
//! enabled"): each key has one version, `null`, its current content. That
//! is what S3 clients can rely on, since old versions cannot be deleted one
//! by one (commits are immutable); the history itself is read through
//! `COMMIT.REPO` buckets, or GetObject with a commit id as `versionId`.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use futures::StreamExt;
use pach_pfs::PfsError;
use pach_storage::{FileEntry, IndexReader};

use crate::auth::Access;
use crate::bucket::{Bucket, Target};
use crate::error::{Result, S3Error};
use crate::request::{Req, empty, set_header, xml_response};
use crate::time::iso8601;
use crate::xml::Xml;
use crate::{Gateway, LOCATION, body};

/// The owner every bucket and object is reported with (there are no users
/// without auth), as Pachyderm 1.9's gateway reported it.
pub(crate) const OWNER_ID: &str = "00000000000000000000000000000000";
const OWNER_NAME: &str = "pachyderm";

/// S3's page size limit for listings.
const MAX_KEYS: usize = 1000;
/// Keys in one common prefix scanned before the listing seeks past it.
const SCAN_BEFORE_SEEK: usize = 256;

pub(crate) fn owner(x: &mut Xml, tag: &str) {
    owner_fields(x.open(tag)).close(tag);
}

/// The owner's `ID` and `DisplayName`, inside an element the caller opened.
pub(crate) fn owner_fields(x: &mut Xml) -> &mut Xml {
    x.elem("ID", OWNER_ID).elem("DisplayName", OWNER_NAME)
}

fn pfs_err(b: &Bucket) -> impl Fn(PfsError) -> S3Error + '_ {
    move |e| S3Error::from_pfs(e, &b.name, "")
}

pub(crate) async fn list_buckets(gw: &Gateway, req: &Req) -> Result<Response> {
    let prefix = req.param("prefix").unwrap_or("");
    let max = match req.param("max-buckets") {
        None => usize::MAX,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| {
                S3Error::InvalidArgument(format!(
                    "max-buckets '{v}' is not an integer between 1 and 10000"
                ))
            })?,
    };
    let after = req
        .param("continuation-token")
        .filter(|t| !t.is_empty())
        .map(unhex_token)
        .transpose()?;
    let repos = gw
        .pfs
        .list_repo()
        .await
        .map_err(|e| S3Error::from_pfs(e, "", ""))?;
    // Only the repos the caller may read are shown.
    let mut readable = Vec::with_capacity(repos.len());
    for r in &repos {
        if gw.allow(req, Access::Read(&r.record.name)).await.is_ok() {
            readable.push(r);
        }
    }
    let mut buckets: Vec<(String, i64)> = readable
        .iter()
        .flat_map(|r| {
            r.branches
                .iter()
                .map(|b| (format!("{b}.{}", r.record.name), r.record.created_ns))
        })
        .collect();
    buckets.sort();
    buckets.retain(|(name, _)| {
        name.starts_with(prefix) && after.as_ref().is_none_or(|a| name.as_str() > a.as_str())
    });
    let truncated = buckets.len() > max;
    buckets.truncate(max);
    let mut x = Xml::new("ListAllMyBucketsResult");
    owner(&mut x, "Owner");
    x.open("Buckets");
    for (name, created) in &buckets {
        x.open("Bucket")
            .elem("Name", name)
            .elem("CreationDate", &iso8601(*created))
            .close("Bucket");
    }
    x.close("Buckets");
    if truncated && let Some((last, _)) = buckets.last() {
        x.elem("ContinuationToken", &hex_token(last));
    }
    if req.has("prefix") {
        x.elem("Prefix", prefix);
    }
    Ok(xml_response(x.finish("ListAllMyBucketsResult")))
}

/// Canned ACLs that promise nothing a cluster without users breaks; any
/// other ACL is refused rather than silently not applied.
pub(crate) fn check_acl_headers(req: &Req) -> Result<()> {
    if let Some(acl) = req.header("x-amz-acl")
        && !matches!(acl, "private" | "bucket-owner-full-control")
    {
        return Err(S3Error::NotImplemented {
            what: format!("the canned ACL '{acl}'"),
        });
    }
    if let Some(grant) = req
        .headers
        .keys()
        .find(|h| h.as_str().starts_with("x-amz-grant-"))
    {
        return Err(S3Error::NotImplemented {
            what: format!("ACL grants ({grant})"),
        });
    }
    Ok(())
}

pub(crate) async fn create_bucket(gw: &Gateway, req: &Req, body: Body) -> Result<Response> {
    let b = Bucket::parse(req.bucket_name())?;
    let Target::Branch(branch) = &b.target else {
        return Err(S3Error::InvalidBucketName {
            bucket: b.name.clone(),
            reason:
                "it names a commit, and commits are made by writing to a branch; create BRANCH.REPO"
                    .into(),
        });
    };
    check_acl_headers(req)?;
    if req
        .header("x-amz-bucket-object-lock-enabled")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Err(S3Error::NotImplemented {
            what: "object lock".into(),
        });
    }
    let doc = body::read_document(&req.headers, req.take_payload(), body, true).await?;
    if !doc.iter().all(u8::is_ascii_whitespace) {
        // The location constraint is accepted whatever it says: a cluster
        // has one location.
        crate::xml::read_elements(&doc)?;
    }
    let repo_exists = match gw.pfs.inspect_repo(&b.repo).await {
        Ok(_) => true,
        Err(PfsError::RepoNotFound { .. }) => false,
        Err(e) => return Err(pfs_err(&b)(e)),
    };
    if repo_exists {
        if let Err(denied) = gw.allow(req, Access::Write(&b.repo)).await {
            // Bucket names are shared by every user, as in S3: one that
            // exists and is not the caller's to write is taken.
            if req.caller.verified && gw.pfs.inspect_branch(&b.repo, branch).await.is_ok() {
                return Err(S3Error::BucketAlreadyExists {
                    bucket: b.name.clone(),
                });
            }
            return Err(denied);
        }
    } else {
        gw.allow(req, Access::CreateRepo(&b.repo)).await?;
    }
    let exists = repo_exists && gw.pfs.inspect_branch(&b.repo, branch).await.is_ok();
    if !exists && let Some(problem) = s3_naming_problem(&b.name) {
        return Err(S3Error::InvalidBucketName {
            bucket: b.name.clone(),
            reason: format!(
                "{problem}. The gateway only creates buckets under S3's naming rules (3 to 63 \
                 lowercase letters, digits, '.' and '-', starting and ending with a letter or \
                 digit), so that every S3 client can address them; other Pachyderm names are \
                 served once they exist: create them with `pachctl create repo` / `pachctl \
                 create branch`"
            ),
        });
    }
    let exists = match gw.pfs.create_repo(&b.repo, "", false).await {
        Ok(()) => false,
        Err(PfsError::RepoExists { .. }) => gw.pfs.inspect_branch(&b.repo, branch).await.is_ok(),
        Err(e) => return Err(pfs_err(&b)(e)),
    };
    // Creating a bucket that exists succeeds and changes nothing, as in S3's
    // us-east-1 (there is one owner without auth).
    if !exists {
        gw.pfs
            .create_branch(&b.repo, branch, None, None)
            .await
            .map_err(pfs_err(&b))?;
    }
    let mut r = empty(StatusCode::OK);
    set_header(&mut r, "location", &format!("/{}", b.name));
    Ok(r)
}

/// Why S3 would refuse `name` for a new bucket (its general-purpose bucket
/// rules), or None.
fn s3_naming_problem(name: &str) -> Option<String> {
    if !(3..=63).contains(&name.len()) {
        return Some(format!("it is {} characters long", name.len()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-')))
    {
        return Some(format!("{c:?} is not allowed"));
    }
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !edge(name.chars().next()) || !edge(name.chars().last()) {
        return Some("it must start and end with a letter or a digit".into());
    }
    if let Some(pair) = ["..", ".-", "-."].into_iter().find(|p| name.contains(p)) {
        return Some(format!("it contains {pair:?}"));
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Some("it is formatted as an IP address".into());
    }
    None
}

/// Deletes an empty bucket: its branch, and its repo with it when that was
/// the repo's last branch (as Pachyderm 1.9's gateway does). Uploads in
/// progress into the bucket are aborted.
pub(crate) async fn delete_bucket(gw: &Gateway, req: &Req) -> Result<Response> {
    let b = Bucket::parse(req.bucket_name())?;
    let branch = b.branch()?.to_string();
    if let Some((_, index)) = b.contents(&gw.pfs).await?
        && index.files() > 0
    {
        return Err(S3Error::BucketNotEmpty { bucket: b.name });
    }
    let repo = gw.pfs.inspect_repo(&b.repo).await.map_err(pfs_err(&b))?;
    if repo.branches.iter().all(|other| *other == branch) {
        gw.allow(req, Access::DeleteRepo(&b.repo)).await?;
    }
    for u in gw.pfs.list_uploads(&b.repo).await.map_err(pfs_err(&b))? {
        if u.branch == branch {
            match gw.pfs.abort_upload(&b.repo, &u.id).await {
                Ok(()) | Err(PfsError::UploadNotFound { .. }) => {}
                Err(e) => return Err(pfs_err(&b)(e)),
            }
        }
    }
    gw.pfs
        .delete_branch(&b.repo, &branch, false)
        .await
        .map_err(pfs_err(&b))?;
    let repo = gw.pfs.inspect_repo(&b.repo).await.map_err(pfs_err(&b))?;
    if repo.branches.is_empty() {
        match gw.pfs.delete_repo(&b.repo, false).await {
            Ok(()) | Err(PfsError::RepoNotFound { .. }) => {}
            Err(e) => return Err(pfs_err(&b)(e)),
        }
    }
    Ok(crate::dispatch::no_content())
}

pub(crate) async fn head_bucket(gw: &Gateway, req: &Req) -> Result<Response> {
    let b = Bucket::parse(req.bucket_name())?;
    b.check_exists(&gw.pfs).await?;
    Ok(empty(StatusCode::OK))
}

pub(crate) async fn location(gw: &Gateway, req: &Req) -> Result<Response> {
    let b = Bucket::parse(req.bucket_name())?;
    b.check_exists(&gw.pfs).await?;
    let mut doc = String::from(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    doc.push_str(&format!(
        r#"<LocationConstraint xmlns="{}">{LOCATION}</LocationConstraint>"#,
        crate::xml::NAMESPACE
    ));
    Ok(xml_response(doc))
}

pub(crate) async fn versioning(gw: &Gateway, req: &Req) -> Result<Response> {
    let b = Bucket::parse(req.bucket_name())?;
    b.check_exists(&gw.pfs).await?;
    Ok(xml_response(
        Xml::new("VersioningConfiguration").finish("VersioningConfiguration"),
    ))
}

/// One page of a listing.
pub(crate) struct Page {
    pub objects: Vec<FileEntry>,
    pub prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix returned.
    pub last: Option<String>,
}

/// The smallest string above every string that starts with `s`, if any.
fn successor(s: &str) -> Option<String> {
    let mut chars: Vec<char> = s.chars().collect();
    while let Some(c) = chars.pop() {
        let mut next = c as u32 + 1;
        if (0xD800..0xE000).contains(&next) {
            next = 0xE000;
        }
        if let Some(n) = char::from_u32(next) {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Up to `max` keys and common prefixes of `index` after `after`, that
/// start with `prefix`, keys folded at the first `delimiter` after the
/// prefix.
/// One page of a bucket's listing, with when its objects were last
/// modified (the commit's time; 0 for a branch with no commit yet).
async fn bucket_page(
    gw: &Gateway,
    b: &Bucket,
    prefix: &str,
    delimiter: &str,
    after: Option<&str>,
    max: usize,
) -> Result<(i64, Page)> {
    Ok(match b.contents(&gw.pfs).await? {
        Some((commit, index)) => (
            commit.finished_ns.unwrap_or(commit.started_ns),
            list_page(&index, prefix, delimiter, after, max).await?,
        ),
        None => (
            0,
            Page {
                objects: vec![],
                prefixes: vec![],
                truncated: false,
                last: None,
            },
        ),
    })
}

pub(crate) async fn list_page(
    index: &IndexReader,
    prefix: &str,
    delimiter: &str,
    after: Option<&str>,
    max: usize,
) -> Result<Page> {
    let mut page = Page {
        objects: Vec::new(),
        prefixes: Vec::new(),
        truncated: false,
        last: None,
    };
    if max == 0 {
        return Ok(page);
    }
    // Paths hold no NUL, so `after` + NUL is the first path past `after`.
    let start = match after {
        Some(a) if a >= prefix => format!("/{a}\0"),
        _ => format!("/{prefix}"),
    };
    let mut entries = index.range(&start, None);
    let mut folded: Option<(String, usize)> = None;
    let mut count = 0;
    while let Some(entry) = entries.next().await {
        let entry = entry?;
        let key = &entry.path[1..];
        if !key.starts_with(prefix) {
            break;
        }
        let common = match delimiter {
            "" => None,
            d => key[prefix.len()..]
                .find(d)
                .map(|i| key[..prefix.len() + i + d.len()].to_string()),
        };
        let Some(common) = common else {
            if count == max {
                page.truncated = true;
                break;
            }
            page.objects.push(entry.clone());
            page.last = Some(key.to_string());
            count += 1;
            continue;
        };
        if let Some((seen, run)) = &mut folded
            && *seen == common
        {
            *run += 1;
            if *run >= SCAN_BEFORE_SEEK
                && let Some(next) = successor(&common)
            {
                entries = index.range(&format!("/{next}"), None);
                *run = 0;
            }
            continue;
        }
        // A common prefix at or before the marker was returned already.
        let returned = after.is_some_and(|a| common.as_str() <= a);
        if !returned {
            if count == max {
                page.truncated = true;
                break;
            }
            page.prefixes.push(common.clone());
            page.last = Some(common.clone());
            count += 1;
        }
        folded = Some((common, 0));
    }
    Ok(page)
}

fn max_keys(req: &Req, name: &str) -> Result<usize> {
    match req.param(name) {
        None => Ok(MAX_KEYS),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| (n as usize).min(MAX_KEYS))
            .ok_or_else(|| {
                S3Error::InvalidArgument(format!("{name} '{v}' is not a non-negative integer"))
            }),
    }
}

/// S3's `encoding-type=url`: keys percent-encoded (but `/`).
pub(crate) fn url_encode(s: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(s, KEEP).to_string()
}

/// How a listing shows keys: as they are, or encoded.
pub(crate) type KeyEncoding = Option<fn(&str) -> String>;

pub(crate) fn encoding(req: &Req) -> Result<KeyEncoding> {
    match req.param("encoding-type") {
        None => Ok(None),
        Some(e) if e.eq_ignore_ascii_case("url") => Ok(Some(url_encode)),
        Some(e) => Err(S3Error::InvalidArgument(format!(
            "encoding-type '{e}' is not supported; use 'url'"
        ))),
    }
}

fn hex_token(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex_token(t: &str) -> Result<String> {
    let bad = || {
        S3Error::InvalidArgument(format!(
            "continuation-token '{t}' is not one this gateway gave"
        ))
    };
    if !t.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Option<Vec<u8>> = (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(t.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes.ok_or_else(bad)?).map_err(|_| bad())
}

/// The ETag of a file: its content hash, quoted.
pub(crate) fn etag(entry: &FileEntry) -> String {
    format!("\"{}\"", entry.hash.to_hex())
}

pub(crate) async fn list_objects(gw: &Gateway, req: &Req, v2: bool) -> Result<Response> {
    let b = Bucket::parse(req.bucket_name())?;
    let prefix = req.param("prefix").unwrap_or("");
    let delimiter = req.param("delimiter").unwrap_or("");
    let max = max_keys(req, "max-keys")?;
    let enc = encoding(req)?;
    let show = |s: &str| enc.map_or_else(|| s.to_string(), |f| f(s));
    let token = if v2 {
        req.param("continuation-token")
            .map(unhex_token)
            .transpose()?
    } else {
        None
    };
    let start_after = if v2 { req.param("start-after") } else { None };
    let marker = if v2 { None } else { req.param("marker") };
    let after = token
        .as_deref()
        .or(start_after)
        .or(marker)
        .filter(|a| !a.is_empty());
    // Ceph's extension: an unordered listing cannot fold keys into common
    // prefixes. Ours is always ordered, which is a valid unordered one.
    if req.param("allow-unordered") == Some("true") && !delimiter.is_empty() {
        return Err(S3Error::InvalidArgument(
            "allow-unordered cannot be combined with a delimiter".into(),
        ));
    }
    let (modified, page) = bucket_page(gw, &b, prefix, delimiter, after, max).await?;
    let root = "ListBucketResult";
    let mut x = Xml::new(root);
    // S3 encodes the prefix it echoes in V2 listings only (clients decode
    // it only there).
    x.elem("Name", &b.name)
        .elem(
            "Prefix",
            &if v2 { show(prefix) } else { prefix.to_string() },
        )
        .elem("MaxKeys", &max.to_string());
    if !delimiter.is_empty() {
        x.elem("Delimiter", &show(delimiter));
    }
    if let Some(e) = req.param("encoding-type") {
        x.elem("EncodingType", e);
    }
    x.elem("IsTruncated", if page.truncated { "true" } else { "false" });
    if v2 {
        x.elem(
            "KeyCount",
            &(page.objects.len() + page.prefixes.len()).to_string(),
        );
        if let Some(t) = req.param("continuation-token") {
            x.elem("ContinuationToken", t);
        }
        if let Some(s) = start_after {
            x.elem("StartAfter", &show(s));
        }
        if page.truncated
            && let Some(last) = &page.last
        {
            x.elem("NextContinuationToken", &hex_token(last));
        }
    } else {
        x.elem("Marker", &show(marker.unwrap_or("")));
        if page.truncated
            && let Some(last) = &page.last
        {
            x.elem("NextMarker", &show(last));
        }
    }
    let fetch_owner = !v2 || req.param("fetch-owner") == Some("true");
    let last_modified = iso8601(modified);
    for e in &page.objects {
        x.open("Contents")
            .elem("Key", &show(&e.path[1..]))
            .elem("LastModified", &last_modified)
            .elem("ETag", &etag(e))
            .elem("Size", &e.size.to_string())
            .elem("StorageClass", "STANDARD");
        if fetch_owner {
            owner(&mut x, "Owner");
        }
        x.close("Contents");
    }
    for p in &page.prefixes {
        x.open("CommonPrefixes")
            .elem("Prefix", &show(p))
            .close("CommonPrefixes");
    }
    Ok(xml_response(x.finish(root)))
}

/// ListObjectVersions of an unversioned bucket: every current object, with
/// version `null`.
pub(crate) async fn list_versions(gw: &Gateway, req: &Req) -> Result<Response> {
    let b = Bucket::parse(req.bucket_name())?;
    let prefix = req.param("prefix").unwrap_or("");
    let delimiter = req.param("delimiter").unwrap_or("");
    let max = max_keys(req, "max-keys")?;
    let enc = encoding(req)?;
    let show = |s: &str| enc.map_or_else(|| s.to_string(), |f| f(s));
    let key_marker = req.param("key-marker").filter(|m| !m.is_empty());
    let (modified, page) = bucket_page(gw, &b, prefix, delimiter, key_marker, max).await?;
    let root = "ListVersionsResult";
    let mut x = Xml::new(root);
    x.elem("Name", &b.name)
        .elem("Prefix", &show(prefix))
        .elem("KeyMarker", &show(key_marker.unwrap_or("")))
        .elem(
            "VersionIdMarker",
            req.param("version-id-marker").unwrap_or(""),
        )
        .elem("MaxKeys", &max.to_string());
    if !delimiter.is_empty() {
        x.elem("Delimiter", &show(delimiter));
    }
    if let Some(e) = req.param("encoding-type") {
        x.elem("EncodingType", e);
    }
    x.elem("IsTruncated", if page.truncated { "true" } else { "false" });
    if page.truncated
        && let Some(last) = &page.last
    {
        x.elem("NextKeyMarker", &show(last))
            .elem("NextVersionIdMarker", "null");
    }
    let last_modified = iso8601(modified);
    for e in &page.objects {
        x.open("Version")
            .elem("Key", &show(&e.path[1..]))
            .elem("VersionId", "null")
            .elem("IsLatest", "true")
            .elem("LastModified", &last_modified)
            .elem("ETag", &etag(e))
            .elem("Size", &e.size.to_string())
            .elem("StorageClass", "STANDARD");
        owner(&mut x, "Owner");
        x.close("Version");
    }
    for p in &page.prefixes {
        x.open("CommonPrefixes")
            .elem("Prefix", &show(p))
            .close("CommonPrefixes");
    }
    Ok(xml_response(x.finish(root)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_buckets_follow_s3_naming_rules() {
        for good in ["abc", "master.images", "dev-2.raw-data", &"a".repeat(63)] {
            assert_eq!(s3_naming_problem(good), None, "{good:?}");
        }
        for bad in [
            "a",
            "aa",
            &"a".repeat(64),
            "foo_bar",
            "Images",
            "_abc",
            "foo-",
            "foo..bar",
            "foo.-bar",
            "foo-.bar",
            "192.168.5.123",
        ] {
            assert!(s3_naming_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn successors_bound_every_extension() {
        assert_eq!(successor("a/").as_deref(), Some("a0"));
        assert_eq!(successor("ab").as_deref(), Some("ac"));
        assert_eq!(successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(successor("\u{10FFFF}"), None);
    }

    #[test]
    fn tokens_round_trip() {
        for s in ["", "a/b c", "ü/€"] {
            assert_eq!(unhex_token(&hex_token(s)).unwrap(), s);
        }
        assert!(unhex_token("zz").is_err());
        assert!(unhex_token("abc").is_err());
    }

    #[test]
    fn url_encoding_keeps_slashes() {
        assert_eq!(url_encode("a b/c+d%"), "a%20b/c%2Bd%25");
    }
}
