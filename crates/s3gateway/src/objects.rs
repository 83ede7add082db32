//! Object operations: GetObject and HeadObject (ranges, conditions),
//! PutObject, CopyObject, DeleteObject and DeleteObjects.
//!
//! A PUT replaces the file at the key (`Change::Put`); its content is
//! streamed into content storage and deduplicated against the file it
//! replaces. Copies are by reference: the destination names the source's
//! chunks, no byte is read. S3 keys and repo paths map one to one: `a` and
//! `a/b` may both exist, so deleting `a` must not delete `a/b` (a PFS delete
//! takes a path's subtree with it; the subtree is put back in the same
//! write).
//!
//! What a write would silently drop is refused instead: ACLs beyond the
//! owner's, encryption, tagging, object lock, storage classes. Object
//! metadata is kept as a PFS file attribute ([`crate::metadata`]);
//! conditional writes and deletes are checked as they land
//! ([`crate::conditional`]).

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use futures::StreamExt;
use pach_pfs::names::is_commit_id;
use pach_pfs::{AttrsWrite, CommitRecord, PfsError};
use pach_storage::{Change, ContentHash, FileEntry, IndexReader};

use crate::bucket::{Bucket, Target, key_path};
use crate::buckets::{check_acl_headers, etag};
use crate::checksum::{self, Algorithm, Announced, Checksum, ChecksumType};
use crate::conditional::{DeleteConditions, WriteConditions, current_object};
use crate::error::{Result, S3Error};
use crate::metadata::ObjectMetadata;
use crate::request::{Req, empty, set_header, xml_response};
use crate::time::{http_date, iso8601, parse_http_date, whole_seconds};
use crate::xml::Xml;
use crate::{Gateway, body};

/// Most keys one DeleteObjects request may name (S3's limit).
const MAX_DELETE: usize = 1000;

fn no_such_key(b: &Bucket, key: &str) -> S3Error {
    S3Error::NoSuchKey {
        bucket: b.name.clone(),
        key: key.to_string(),
    }
}

/// The commit an object is read from and its file entry: the bucket's
/// commit, or for `version` a commit id, the file in that commit.
pub(crate) async fn find_object(
    gw: &Gateway,
    b: &Bucket,
    key: &str,
    version: Option<&str>,
) -> Result<(CommitRecord, FileEntry)> {
    // A key that cannot be a path names no object; one with control
    // characters is refused as S3 refuses it.
    let path = key_path(key).map_err(|_| {
        if key.chars().any(char::is_control) {
            S3Error::InvalidUri
        } else {
            no_such_key(b, key)
        }
    })?;
    let (commit, index) = match version {
        None | Some("null") => b.contents(&gw.pfs).await?,
        Some(v) if is_commit_id(v) => {
            b.check_exists(&gw.pfs).await?;
            let no_version = || S3Error::NoSuchVersion {
                key: key.to_string(),
                version: v.to_string(),
            };
            let (commit, index) = gw.pfs.open_commit(&b.repo, v).await.map_err(|e| match e {
                PfsError::CommitNotFound { .. } => no_version(),
                e => S3Error::from_pfs(e, &b.name, key),
            })?;
            // As in Pachyderm 1.9: a branch bucket's versions are the
            // commits of that branch.
            let belongs = match &b.target {
                Target::Branch(br) => commit.branch.as_deref() == Some(br.as_str()),
                Target::Commit(c) => *c == commit.id,
            };
            if !belongs {
                return Err(no_version());
            }
            Some((commit, index))
        }
        Some(v) => {
            return Err(S3Error::InvalidArgument(format!(
                "version id '{v}' is invalid; a version is 'null' or a commit id"
            )));
        }
    }
    .ok_or_else(|| no_such_key(b, key))?;
    let entry = index.get(&path).await?.ok_or_else(|| no_such_key(b, key))?;
    Ok((commit, entry))
}

fn modified_ns(commit: &CommitRecord) -> i64 {
    commit.finished_ns.unwrap_or(commit.started_ns)
}

/// Whether an `If-Match`-style header (a list of ETags, or `*`) matches.
pub(crate) fn etag_matches(header: &str, tag: &str) -> bool {
    let bare = tag.trim_matches('"');
    header.split(',').any(|t| {
        let t = t.trim();
        let t = t.strip_prefix("W/").unwrap_or(t);
        t == "*" || t.trim_matches('"') == bare
    })
}

/// The HTTP preconditions of a read (RFC 7232's order): `Err` with
/// PreconditionFailed or NotModified when they say not to serve it.
/// `copy` reads the `x-amz-copy-source-if-*` variants, where S3 answers
/// every failed condition with PreconditionFailed.
fn check_conditions(req: &Req, tag: &str, modified_ns: i64, copy: bool) -> Result<()> {
    let name = |n: &str| {
        if copy {
            format!("x-amz-copy-source-{n}")
        } else {
            n.to_string()
        }
    };
    let modified = whole_seconds(modified_ns);
    let if_match = req.header(&name("if-match"));
    if let Some(m) = if_match {
        if !etag_matches(m, tag) {
            return Err(S3Error::PreconditionFailed);
        }
    } else if let Some(d) = req
        .header(&name("if-unmodified-since"))
        .and_then(parse_http_date)
        && modified > d
    {
        return Err(S3Error::PreconditionFailed);
    }
    let not_modified = if copy {
        S3Error::PreconditionFailed
    } else {
        S3Error::NotModified
    };
    if let Some(m) = req.header(&name("if-none-match")) {
        if etag_matches(m, tag) {
            return Err(not_modified);
        }
    } else if let Some(d) = req
        .header(&name("if-modified-since"))
        .and_then(parse_http_date)
        && modified <= d
        && if_match.is_none()
    {
        return Err(not_modified);
    }
    Ok(())
}

/// The byte range a `Range` header asks of an object of `size` bytes:
/// None for the whole object (no header, several ranges, or a header that
/// does not parse, which HTTP says to ignore); InvalidRange when it cannot
/// be satisfied.
fn byte_range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let unsatisfiable = S3Error::InvalidRange { size };
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 || size == 0 {
            return Err(unsatisfiable);
        }
        return Ok(Some((size.saturating_sub(n), size - 1)));
    }
    let Ok(start) = a.parse::<u64>() else {
        return Ok(None);
    };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e,
            _ => return Ok(None),
        }
    };
    if start >= size {
        return Err(unsatisfiable);
    }
    Ok(Some((start, end.min(size - 1))))
}

pub(crate) async fn get_object(gw: &Gateway, req: &Req, head: bool) -> Result<Response> {
    let b = Bucket::parse(req.bucket_name())?;
    let key = req.key_name();
    let part = match req.param("partNumber") {
        None => None,
        Some(_) if req.header("range").is_some() => {
            return Err(S3Error::InvalidRequest(
                "a request gives a Range or a partNumber, not both".into(),
            ));
        }
        Some(_) => Some(crate::multipart::part_number(req)?),
    };
    // No object is stored encrypted: encryption parameters apply to none.
    if let Some(h) = req
        .headers
        .keys()
        .find(|h| h.as_str().starts_with("x-amz-server-side-encryption"))
    {
        return Err(S3Error::InvalidArgument(format!(
            "the {h} header does not apply: objects are not stored with server-side encryption"
        )));
    }
    let version = req.param("versionId");
    let (commit, entry) = find_object(gw, &b, key, version).await?;
    let tag = etag(&entry);
    let modified = modified_ns(&commit);
    let last_modified = http_date(modified);
    if let Err(e) = check_conditions(req, &tag, modified, false) {
        if matches!(e, S3Error::NotModified) {
            let mut r = empty(StatusCode::NOT_MODIFIED);
            set_header(&mut r, "etag", &tag);
            set_header(&mut r, "last-modified", &last_modified);
            return Ok(r);
        }
        return Err(e);
    }
    let metadata = object_metadata(gw, &b, key, (&entry.path, &entry.hash)).await?;
    let (range, parts_count) = match part {
        Some(n) => {
            let (range, count) = metadata.part_range(n, entry.size)?;
            // An empty object's one part has no bytes to range over.
            ((entry.size > 0).then_some(range), Some(count))
        }
        None => (byte_range(req.header("range"), entry.size)?, None),
    };
    let (offset, len) = match range {
        Some((start, end)) => (start, end - start + 1),
        None => (0, entry.size),
    };
    let body = if head || len == 0 {
        Body::empty()
    } else {
        let stream = gw
            .pfs
            .content()
            .read_file(&entry, offset, Some(len))
            .map(|r| r.map_err(std::io::Error::other));
        Body::from_stream(stream)
    };
    let mut r = Response::new(body);
    if let Some((start, end)) = range {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        set_header(
            &mut r,
            "content-range",
            &format!("bytes {start}-{end}/{}", entry.size),
        );
    }
    set_header(&mut r, "content-length", &len.to_string());
    set_header(&mut r, "etag", &tag);
    set_header(&mut r, "last-modified", &last_modified);
    set_header(&mut r, "accept-ranges", "bytes");
    if let Some(v) = version.filter(|v| *v != "null") {
        set_header(&mut r, "x-amz-version-id", v);
    }
    metadata.apply(&mut r);
    if let Some(count) = parts_count.and(metadata.parts_count()) {
        set_header(&mut r, "x-amz-mp-parts-count", &count.to_string());
    }
    // The checksum, when asked for, of what is served: the object's, or
    // the part's; a byte range has none.
    if checksum_mode(req)? {
        let checksum = match (part, req.header("range")) {
            (Some(n), _) => metadata.part_checksum(n),
            (None, None) => metadata.checksum().cloned(),
            (None, Some(_)) => None,
        };
        if let Some(c) = checksum {
            ObjectMetadata::apply_checksum(&c, &mut r);
        }
    }
    // What a presigned URL asks for overrides what is kept.
    for (param, name) in [
        ("response-content-type", "content-type"),
        ("response-content-language", "content-language"),
        ("response-expires", "expires"),
        ("response-cache-control", "cache-control"),
        ("response-content-disposition", "content-disposition"),
        ("response-content-encoding", "content-encoding"),
    ] {
        if let Some(v) = req.param(param) {
            set_header(&mut r, name, v);
        }
    }
    Ok(r)
}

/// The attributes GetObjectAttributes returns.
const OBJECT_ATTRIBUTES: [&str; 5] = [
    "ETag",
    "Checksum",
    "ObjectParts",
    "StorageClass",
    "ObjectSize",
];

/// GetObjectAttributes (`GET ?attributes`): the attributes named in
/// `x-amz-object-attributes` of the object (or `versionId`); a multipart
/// object's parts a page at a time (`x-amz-max-parts`,
/// `x-amz-part-number-marker`), with their checksums when its upload had
/// an algorithm.
pub(crate) async fn get_object_attributes(gw: &Gateway, req: &Req) -> Result<Response> {
    let b = Bucket::parse(req.bucket_name())?;
    let key = req.key_name();
    let named: Vec<&str> = req
        .header("x-amz-object-attributes")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    if named.is_empty() {
        return Err(S3Error::InvalidArgument(format!(
            "x-amz-object-attributes names no attribute; name some of {}",
            OBJECT_ATTRIBUTES.join(", ")
        )));
    }
    if let Some(a) = named.iter().find(|a| !OBJECT_ATTRIBUTES.contains(a)) {
        return Err(S3Error::InvalidArgument(format!(
            "x-amz-object-attributes names '{a}', which is not one of {}",
            OBJECT_ATTRIBUTES.join(", ")
        )));
    }
    let number = |name: &str, default: u32| -> Result<u32> {
        match req.header(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| S3Error::InvalidArgument(format!("{name} '{v}' is not a number"))),
        }
    };
    let max = number("x-amz-max-parts", 1000)?.min(1000);
    let marker = number("x-amz-part-number-marker", 0)?;
    let version = req.param("versionId");
    let (commit, entry) = find_object(gw, &b, key, version).await?;
    let metadata = object_metadata(gw, &b, key, (&entry.path, &entry.hash)).await?;
    let wants = |a: &str| named.contains(&a);
    let mut x = Xml::new("GetObjectAttributesResponse");
    if wants("ETag") {
        x.elem("ETag", etag(&entry).trim_matches('"'));
    }
    if let (true, Some(c)) = (wants("Checksum"), metadata.checksum()) {
        x.open("Checksum")
            .elem(c.algorithm.element(), &c.value)
            .elem("ChecksumType", c.kind.name())
            .close("Checksum");
    }
    let (sizes, checksums) = metadata.parts();
    if wants("ObjectParts") && !sizes.is_empty() {
        let after = sizes.iter().enumerate().skip(marker as usize);
        let shown: Vec<(usize, &u64)> = after.clone().take(max as usize).collect();
        let truncated = after.count() > shown.len();
        x.open("ObjectParts")
            .elem("PartsCount", &sizes.len().to_string())
            .elem("PartNumberMarker", &marker.to_string());
        if let Some((last, _)) = shown.last() {
            x.elem("NextPartNumberMarker", &(last + 1).to_string());
        }
        x.elem("MaxParts", &max.to_string())
            .elem("IsTruncated", if truncated { "true" } else { "false" });
        for (i, size) in shown {
            x.open("Part")
                .elem("PartNumber", &(i + 1).to_string())
                .elem("Size", &size.to_string());
            if let (Some(c), Some(value)) = (metadata.checksum(), checksums.get(i)) {
                x.elem(c.algorithm.element(), value);
            }
            x.close("Part");
        }
        x.close("ObjectParts");
    }
    if wants("StorageClass") {
        x.elem("StorageClass", "STANDARD");
    }
    if wants("ObjectSize") {
        x.elem("ObjectSize", &entry.size.to_string());
    }
    let mut r = xml_response(x.finish("GetObjectAttributesResponse"));
    set_header(&mut r, "last-modified", &http_date(modified_ns(&commit)));
    if let Some(v) = version.filter(|v| *v != "null") {
        set_header(&mut r, "x-amz-version-id", v);
    }
    Ok(r)
}

/// The metadata kept with the object's content at its key.
pub(crate) async fn object_metadata(
    gw: &Gateway,
    b: &Bucket,
    key: &str,
    (path, hash): (&str, &ContentHash),
) -> Result<ObjectMetadata> {
    match gw.pfs.file_attrs(&b.repo, path, hash).await {
        Ok(Some(attrs)) => ObjectMetadata::from_attrs(attrs),
        Ok(None) => Ok(ObjectMetadata::default()),
        Err(e) => Err(S3Error::from_pfs(e, &b.name, key)),
    }
}

/// Whether a read asks for the object's checksum
/// (`x-amz-checksum-mode: ENABLED`).
fn checksum_mode(req: &Req) -> Result<bool> {
    match req.header("x-amz-checksum-mode") {
        None => Ok(false),
        Some(m) if m.trim().eq_ignore_ascii_case("ENABLED") => Ok(true),
        Some(m) => Err(S3Error::InvalidArgument(format!(
            "x-amz-checksum-mode '{m}' is not ENABLED (the one mode there is)"
        ))),
    }
}

/// Refuses request headers whose meaning the gateway cannot keep.
pub(crate) fn check_write_headers(req: &Req) -> Result<()> {
    check_acl_headers(req)?;
    let refuse = |what: &str| {
        Err(S3Error::NotImplemented {
            what: what.to_string(),
        })
    };
    for h in req.headers.keys() {
        let h = h.as_str();
        if h.starts_with("x-amz-server-side-encryption") {
            return refuse("server-side encryption");
        }
        if h.starts_with("x-amz-object-lock") {
            return refuse("object lock");
        }
        match h {
            "x-amz-tagging" => return refuse("object tagging"),
            "x-amz-website-redirect-location" => return refuse("website redirects"),
            _ => {}
        }
    }
    if let Some(class) = req.header("x-amz-storage-class")
        && class != "STANDARD"
    {
        return refuse(&format!("the storage class '{class}'"));
    }
    Ok(())
}

/// The bucket a write goes to: its branch, and its current contents.
async fn write_target(gw: &Gateway, b: &Bucket) -> Result<(String, Option<IndexReader>)> {
    let branch = b.branch()?.to_string();
    let base = gw
        .pfs
        .branch_head(&b.repo, &branch)
        .await
        .map_err(|e| S3Error::from_pfs(e, &b.name, ""))?;
    // Refuse before any content is received where the write would be.
    gw.pfs
        .check_writable(&b.repo, &branch)
        .await
        .map_err(|e| S3Error::from_pfs(e, &b.name, ""))?;
    Ok((branch, base.map(|(_, index)| index)))
}

pub(crate) async fn put_object(gw: &Gateway, req: &Req, body: Body) -> Result<Response> {
    let b = Bucket::parse(req.bucket_name())?;
    let key = req.key_name();
    let path = key_path(key)?;
    check_write_headers(req)?;
    let metadata = ObjectMetadata::of(&req.headers)?;
    let announced = Announced::of(&req.headers)?;
    let (branch, base) = write_target(gw, &b).await?;
    let previous = match &base {
        Some(index) => index.get(&path).await?,
        None => None,
    };
    let mut session = gw.pfs.content().session();
    let stored = body::store_body(
        &req.headers,
        req.take_payload(),
        body,
        &mut session,
        (path, previous),
        announced.as_ref(),
    )
    .await?;
    // Content is durable before any record names it.
    session.finish().await?;
    let entry = stored.entry;
    let tag = etag(&entry);
    let checksum = announced.zip(stored.checksum).map(|(a, value)| Checksum {
        algorithm: a.algorithm,
        value,
        kind: ChecksumType::FullObject,
    });
    let attrs = metadata
        .unwrap_or_default()
        .with_checksum(checksum.clone())
        .kept()
        .map(|m| m.to_attrs());
    write_object(gw, req, (&b, &branch, key), entry, attrs).await?;
    let mut r = empty(StatusCode::OK);
    set_header(&mut r, "etag", &tag);
    if let Some(c) = &checksum {
        ObjectMetadata::apply_checksum(c, &mut r);
    }
    Ok(r)
}

/// Writes `entry` as the object at `key` of the bucket's branch, with its
/// metadata (`attrs`; None: none, removing what the same content had at
/// the key), on the request's conditions (`If-Match`, `If-None-Match`)
/// when it has some, checked against what the key holds when the write
/// lands (see [`crate::conditional`]).
async fn write_object(
    gw: &Gateway,
    req: &Req,
    (b, branch, key): (&Bucket, &str, &str),
    entry: FileEntry,
    attrs: Option<serde_json::Value>,
) -> Result<()> {
    let conditions = WriteConditions::of(req);
    let attrs = [AttrsWrite {
        path: entry.path.clone(),
        hash: entry.hash,
        attrs,
    }];
    let conditions = &conditions;
    let (_, outcome) = gw
        .pfs
        .write_planned(&b.repo, branch, &attrs, |view| {
            let entry = entry.clone();
            async move {
                if let Some(c) = conditions {
                    let current = current_object(&view, &entry.path).await?;
                    if let Err(refusal) = c.check(current.as_ref().map(|(e, _)| e), &b.name, key) {
                        return Ok((vec![], Err(refusal)));
                    }
                }
                Ok((vec![Change::Put(entry)], Ok(())))
            }
        })
        .await
        .map_err(|e| match conditions {
            Some(_) => S3Error::from_pfs_conditional(e, &b.name, key),
            None => S3Error::from_pfs(e, &b.name, key),
        })?;
    outcome
}

/// The changes that delete exactly the file at `path`: PFS deletes a path
/// with its subtree, so files below `path/` (S3 keys `key/...`, which
/// are other objects) are put back in the same write.
async fn delete_changes(index: &IndexReader, path: &str) -> pach_pfs::Result<Vec<Change>> {
    let mut changes = vec![Change::Delete(path.to_string())];
    let mut below = index.range(&format!("{path}/"), Some(&format!("{path}0")));
    while let Some(e) = below.next().await {
        changes.push(Change::Put(e?));
    }
    Ok(changes)
}

/// What a version id in a delete means: the current object, or a refusal.
fn check_delete_version(key: &str, version: Option<&str>) -> Result<()> {
    match version {
        None | Some("") | Some("null") => Ok(()),
        Some(v) if is_commit_id(v) => Err(S3Error::NotImplemented {
            what: format!(
                "deleting version {v} of '{key}': commits are immutable, a past version stays in the history"
            ),
        }),
        Some(v) => Err(S3Error::NoSuchVersion {
            key: key.to_string(),
            version: v.to_string(),
        }),
    }
}

pub(crate) async fn delete_object(gw: &Gateway, req: &Req) -> Result<Response> {
    let b = Bucket::parse(req.bucket_name())?;
    let key = req.key_name();
    check_delete_version(key, req.param("versionId"))?;
    let conditions = DeleteConditions::of(req)?;
    let branch = b.branch()?.to_string();
    b.check_exists(&gw.pfs).await?;
    // Deleting what does not exist succeeds, as in S3, and writes nothing.
    let Ok(path) = key_path(key) else {
        return Ok(crate::dispatch::no_content());
    };
    let conditions = &conditions;
    let path = &path;
    // Planned from the branch as the delete lands: the condition, and the
    // files below the key that the delete keeps, are those it replaces.
    let (_, outcome) = gw
        .pfs
        .write_planned(&b.repo, &branch, &[], |view| async move {
            let Some((entry, modified)) = current_object(&view, path).await? else {
                return Ok((vec![], Ok(())));
            };
            if let Some(c) = conditions
                && let Err(refusal) = c.check(&entry, modified)
            {
                return Ok((vec![], Err(refusal)));
            }
            let index = view.index().await?;
            let changes = match &index {
                Some(index) => delete_changes(index, path).await?,
                None => vec![],
            };
            Ok((changes, Ok(())))
        })
        .await
        .map_err(|e| match conditions {
            Some(_) => S3Error::from_pfs_conditional(e, &b.name, key),
            None => S3Error::from_pfs(e, &b.name, key),
        })?;
    outcome?;
    Ok(crate::dispatch::no_content())
}

pub(crate) async fn delete_objects(gw: &Gateway, req: &Req, body: Body) -> Result<Response> {
    let b = Bucket::parse(req.bucket_name())?;
    let doc = body::read_document(&req.headers, req.take_payload(), body, true).await?;
    let elements = crate::xml::read_elements(&doc)?;
    let mut quiet = false;
    // Key, version, and the object's conditions.
    let mut objects: Vec<(String, Option<String>, DeleteConditions)> = Vec::new();
    for (path, text) in elements {
        match path.as_str() {
            "Delete/Quiet" => quiet = text.trim().eq_ignore_ascii_case("true"),
            "Delete/Object" => objects.push((String::new(), None, DeleteConditions::default())),
            "Delete/Object/Key" => match objects.last_mut() {
                Some(o) => o.0 = text,
                None => {
                    return Err(S3Error::MalformedXml {
                        reason: "a Key outside an Object".into(),
                    });
                }
            },
            "Delete/Object/VersionId" => {
                if let Some(o) = objects.last_mut() {
                    o.1 = Some(text);
                }
            }
            p => {
                if let (Some(element), Some(o)) =
                    (p.strip_prefix("Delete/Object/"), objects.last_mut())
                {
                    o.2.set(element, &text)?;
                }
            }
        }
    }
    if objects.is_empty() || objects.len() > MAX_DELETE {
        return Err(S3Error::MalformedXml {
            reason: format!(
                "a Delete names 1 to {MAX_DELETE} objects; this one names {}",
                objects.len()
            ),
        });
    }
    let branch = b.branch()?.to_string();
    b.check_exists(&gw.pfs).await?;
    let objects = &objects;
    // One write for all the objects, planned from the branch as it lands.
    let plan = |view: pach_pfs::WriteView| async move {
        let index = view.index().await?;
        let modified = view
            .commit()
            .map_or(0, |c| c.finished_ns.unwrap_or(c.started_ns));
        let mut changes = Vec::new();
        let mut deleted = Vec::new();
        let mut errors: Vec<(String, &'static str, String)> = Vec::new();
        for (key, version, conditions) in objects {
            if let Err(e) = check_delete_version(key, version.as_deref()) {
                errors.push((key.clone(), e.code().0, e.to_string()));
                continue;
            }
            if let (Some(index), Ok(path)) = (&index, key_path(key))
                && let Some(entry) = index.get(&path).await?
            {
                if let Err(e) = conditions.check(&entry, modified) {
                    errors.push((key.clone(), e.code().0, e.to_string()));
                    continue;
                }
                changes.extend(delete_changes(index, &path).await?);
            }
            deleted.push((key.clone(), version.clone()));
        }
        Ok((changes, (deleted, errors)))
    };
    let conditional = objects.iter().any(|o| o.2 != DeleteConditions::default());
    let (_, (deleted, errors)) = gw
        .pfs
        .write_planned(&b.repo, &branch, &[], plan)
        .await
        .map_err(|e| match conditional {
            true => S3Error::from_pfs_conditional(e, &b.name, ""),
            false => S3Error::from_pfs(e, &b.name, ""),
        })?;
    let mut x = Xml::new("DeleteResult");
    if !quiet {
        for (key, version) in &deleted {
            x.open("Deleted").elem("Key", key);
            if let Some(v) = version {
                x.elem("VersionId", v);
            }
            x.close("Deleted");
        }
    }
    for (key, code, message) in &errors {
        x.open("Error")
            .elem("Key", key)
            .elem("Code", code)
            .elem("Message", message)
            .close("Error");
    }
    Ok(xml_response(x.finish("DeleteResult")))
}

/// The bucket, key and version of an `x-amz-copy-source` header:
/// `[/]bucket/key[?versionId=v]`, percent-encoded.
fn copy_source(header: &str) -> Result<(String, String, Option<String>)> {
    let (path, query) = header.split_once('?').unwrap_or((header, ""));
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| S3Error::InvalidArgument("x-amz-copy-source is not UTF-8".into()))?;
    let trimmed = decoded.strip_prefix('/').unwrap_or(&decoded);
    let (bucket, key) = trimmed.split_once('/').ok_or_else(|| {
        S3Error::InvalidArgument(format!("x-amz-copy-source '{header}' must be BUCKET/KEY"))
    })?;
    let version = query
        .split('&')
        .find_map(|p| p.strip_prefix("versionId="))
        .map(str::to_string);
    Ok((bucket.to_string(), key.to_string(), version))
}

/// The source of a copy, with its conditions checked.
pub(crate) async fn copy_source_entry(
    gw: &Gateway,
    req: &Req,
) -> Result<(Bucket, String, FileEntry)> {
    let header = req.header("x-amz-copy-source").unwrap_or("");
    let (bucket, key, version) = copy_source(header)?;
    let src = Bucket::parse(&bucket)?;
    gw.allow(req, crate::auth::Access::Read(&src.repo)).await?;
    let (commit, entry) = find_object(gw, &src, &key, version.as_deref()).await?;
    check_conditions(req, &etag(&entry), modified_ns(&commit), true)?;
    Ok((src, key, entry))
}

/// The checksum of `algorithm` of a copy's source (`entry`, kept with
/// checksum `kept`): the kept one when it is that algorithm's full-object
/// checksum, or computed by reading the source.
pub(crate) async fn copy_checksum(
    gw: &Gateway,
    entry: &FileEntry,
    kept: Option<&Checksum>,
    algorithm: Algorithm,
) -> Result<String> {
    if let Some(c) = kept
        && c.algorithm == algorithm
        && c.kind == ChecksumType::FullObject
    {
        return Ok(c.value.clone());
    }
    let mut h = algorithm.hasher();
    let mut bytes = gw.pfs.content().read_file(entry, 0, None);
    while let Some(chunk) = bytes.next().await {
        h.update(&chunk?);
    }
    Ok(h.finish())
}

pub(crate) async fn copy_object(gw: &Gateway, req: &Req) -> Result<Response> {
    let b = Bucket::parse(req.bucket_name())?;
    let key = req.key_name();
    let path = key_path(key)?;
    check_write_headers(req)?;
    let replace = match req.header("x-amz-metadata-directive") {
        None => false,
        Some(d) if d.eq_ignore_ascii_case("COPY") => false,
        Some(d) if d.eq_ignore_ascii_case("REPLACE") => true,
        Some(d) => {
            return Err(S3Error::InvalidArgument(format!(
                "x-amz-metadata-directive '{d}' is not COPY or REPLACE"
            )));
        }
    };
    if req.header("x-amz-tagging-directive").is_some() {
        return Err(S3Error::NotImplemented {
            what: "object tagging".into(),
        });
    }
    let (src, src_key, entry) = copy_source_entry(gw, req).await?;
    let (branch, _) = write_target(gw, &b).await?;
    // COPY keeps the source's metadata; REPLACE takes the request's. The
    // content's checksum is the source's either way, or the one of the
    // algorithm asked for (`x-amz-checksum-algorithm`). A copy is one part,
    // whatever the source was uploaded in.
    let source = object_metadata(gw, &src, &src_key, (&entry.path, &entry.hash))
        .await?
        .for_copy();
    let checksum = match checksum::algorithm_header(&req.headers, "x-amz-checksum-algorithm")? {
        Some(a) => Some(Checksum {
            algorithm: a,
            value: copy_checksum(gw, &entry, source.checksum(), a).await?,
            kind: ChecksumType::FullObject,
        }),
        None => source.checksum().cloned(),
    };
    let metadata = match replace {
        true => ObjectMetadata::of(&req.headers)?.unwrap_or_default(),
        false => source,
    }
    .with_checksum(checksum.clone());
    let attrs = metadata.kept().map(|m| m.to_attrs());
    if src.repo == b.repo && src.target == b.target && src_key == key && !replace {
        return Err(S3Error::InvalidRequest(
            "this copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes".into(),
        ));
    }
    let tag = etag(&entry);
    write_object(
        gw,
        req,
        (&b, &branch, key),
        FileEntry { path, ..entry },
        attrs,
    )
    .await?;
    let mut x = Xml::new("CopyObjectResult");
    x.elem("LastModified", &iso8601(now_ns()))
        .elem("ETag", &tag);
    if let Some(c) = &checksum {
        x.elem(c.algorithm.element(), &c.value)
            .elem("ChecksumType", c.kind.name());
    }
    Ok(xml_response(x.finish("CopyObjectResult")))
}

pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = |h: &str, size| byte_range(Some(h), size);
        assert_eq!(r("bytes=0-9", 100).unwrap(), Some((0, 9)));
        assert_eq!(r("bytes=90-200", 100).unwrap(), Some((90, 99)));
        assert_eq!(r("bytes=10-", 100).unwrap(), Some((10, 99)));
        assert_eq!(r("bytes=-10", 100).unwrap(), Some((90, 99)));
        assert_eq!(r("bytes=-200", 100).unwrap(), Some((0, 99)));
        assert!(matches!(
            r("bytes=100-", 100),
            Err(S3Error::InvalidRange { size: 100 })
        ));
        assert!(r("bytes=0-", 0).is_err());
        assert!(r("bytes=-0", 10).is_err());
        // Unparsable or multiple ranges: the whole object.
        assert_eq!(r("bytes=9-1", 100).unwrap(), None);
        assert_eq!(r("bytes=0-1,5-6", 100).unwrap(), None);
        assert_eq!(r("items=0-1", 100).unwrap(), None);
        assert_eq!(byte_range(None, 100).unwrap(), None);
    }

    #[test]
    fn etag_lists() {
        assert!(etag_matches("\"abc\"", "\"abc\""));
        assert!(etag_matches("abc", "\"abc\""));
        assert!(etag_matches("\"x\", W/\"abc\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(!etag_matches("\"abd\"", "\"abc\""));
    }

    #[test]
    fn copy_sources() {
        assert_eq!(
            copy_source("/b.r/a%20b/c?versionId=v1").unwrap(),
            ("b.r".into(), "a b/c".into(), Some("v1".into()))
        );
        assert_eq!(copy_source("r/k").unwrap(), ("r".into(), "k".into(), None));
        assert!(copy_source("nokey").is_err());
    }
}
