//! Multipart uploads: create, upload part (and upload part copy), list
//! parts, complete, abort, list uploads — over PFS's uploads in parts
//! ([`pach_pfs::uploads`]): parts are stored content that no commit names
//! until the upload completes, and completing writes the parts' chunks as
//! one file, by reference (no byte is copied, whatever the object's size).
//!
//! S3's rules hold: parts are numbered 1 to 10,000, a completion lists them
//! in ascending order with the ETags the uploads returned, and every part
//! but the last is at least 5 MiB.
//!
//! Checksums ([`crate::checksum`]): an upload started with
//! `x-amz-checksum-algorithm` computes that checksum of every part (and
//! checks it against the one sent), keeps it in the part's record, and its
//! object gets the COMPOSITE or FULL_OBJECT checksum of them, checked
//! against the completion's. Parts of an upload without one keep the
//! checksum they were sent with (verified), which the object does not get.

use axum::body::Body;
use axum::response::Response;
use futures::StreamExt;
use pach_pfs::attrs::MAX_ATTRS_BYTES;
use pach_pfs::uploads::MAX_PART_NUMBER;
use pach_pfs::{PartRecord, UploadRecord, WriteView};
use pach_storage::FileEntry;

use crate::bucket::{Bucket, key_path};
use crate::buckets::{encoding, owner};
use crate::checksum::{self, Algorithm, Announced, Checksum, ChecksumType};
use crate::conditional::{WriteConditions, current_object};
use crate::error::{Result, S3Error};
use crate::metadata::ObjectMetadata;
use crate::objects::{copy_checksum, copy_source_entry, object_metadata};
use crate::request::{Req, set_header, xml_response};
use crate::time::iso8601;
use crate::xml::Xml;
use crate::{Gateway, body};

/// S3's smallest part, but for the last one.
const MIN_PART: u64 = 5 * 1024 * 1024;
const MAX_LIST: usize = 1000;

fn part_etag(hash: &pach_storage::ContentHash) -> String {
    format!("\"{}\"", hash.to_hex())
}

/// The upload named by the request, which must be into this bucket's
/// branch and key.
async fn upload_of(gw: &Gateway, req: &Req, b: &Bucket) -> Result<UploadRecord> {
    let id = req.param("uploadId").unwrap_or("");
    let no_upload = || S3Error::NoSuchUpload {
        upload: id.to_string(),
    };
    let branch = b.branch()?;
    let path = key_path(req.key_name()).map_err(|_| no_upload())?;
    b.check_exists(&gw.pfs).await?;
    let upload = gw
        .pfs
        .inspect_upload(&b.repo, id)
        .await
        .map_err(|e| S3Error::from_pfs(e, &b.name, req.key_name()))?;
    if upload.branch != branch || upload.path != path {
        return Err(no_upload());
    }
    Ok(upload)
}

pub(crate) async fn create(gw: &Gateway, req: &Req) -> Result<Response> {
    let b = Bucket::parse(req.bucket_name())?;
    let key = req.key_name();
    let path = key_path(key)?;
    crate::objects::check_write_headers(req)?;
    if WriteConditions::of(req).is_some() {
        return Err(S3Error::InvalidArgument(
            "If-Match and If-None-Match are conditions of CompleteMultipartUpload, not of CreateMultipartUpload; send them when completing the upload".into(),
        ));
    }
    let upload_checksum = match checksum::algorithm_header(
        &req.headers,
        "x-amz-checksum-algorithm",
    )? {
        Some(a) => Some((
            a,
            checksum::upload_type(a, req.header("x-amz-checksum-type"))?,
        )),
        None if req.header("x-amz-checksum-type").is_some() => {
            return Err(S3Error::InvalidRequest(
                "x-amz-checksum-type is given with x-amz-checksum-algorithm, the algorithm of the parts' checksums".into(),
            ));
        }
        None => None,
    };
    let metadata = ObjectMetadata::of(&req.headers)?
        .unwrap_or_default()
        .with_upload_checksum(upload_checksum)
        .kept();
    let branch = b.branch()?;
    gw.pfs
        .check_writable(&b.repo, branch)
        .await
        .map_err(|e| S3Error::from_pfs(e, &b.name, key))?;
    let upload = gw
        .pfs
        .start_upload(&b.repo, branch, &path, metadata.map(|m| m.to_attrs()))
        .await
        .map_err(|e| S3Error::from_pfs(e, &b.name, key))?;
    let mut x = Xml::new("InitiateMultipartUploadResult");
    x.elem("Bucket", &b.name)
        .elem("Key", key)
        .elem("UploadId", &upload.id);
    let mut r = xml_response(x.finish("InitiateMultipartUploadResult"));
    if let Some((algorithm, kind)) = upload_checksum {
        set_header(&mut r, "x-amz-checksum-algorithm", algorithm.name());
        set_header(&mut r, "x-amz-checksum-type", kind.name());
    }
    Ok(r)
}

/// The metadata an upload's object is written with.
fn upload_metadata(upload: &UploadRecord) -> Result<ObjectMetadata> {
    match upload.attrs.clone() {
        Some(attrs) => ObjectMetadata::from_attrs(attrs),
        None => Ok(ObjectMetadata::default()),
    }
}

/// The checksum kept with a part, if any.
fn part_checksum(part: &PartRecord) -> Result<Option<Checksum>> {
    part.attrs
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| S3Error::Internal(format!("unreadable part checksum: {e}")))
}

pub(crate) fn part_number(req: &Req) -> Result<u32> {
    let raw = req.param("partNumber").unwrap_or("");
    raw.parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| {
            S3Error::InvalidArgument(format!(
                "part number '{raw}' must be an integer between 1 and {MAX_PART_NUMBER}"
            ))
        })
}

pub(crate) async fn upload_part(gw: &Gateway, req: &Req, body: Body) -> Result<Response> {
    let b = Bucket::parse(req.bucket_name())?;
    let number = part_number(req)?;
    let upload = upload_of(gw, req, &b).await?;
    gw.pfs
        .check_upload_writable(&upload)
        .await
        .map_err(|e| S3Error::from_pfs(e, &b.name, req.key_name()))?;
    let algorithm = upload_metadata(&upload)?.upload_checksum().map(|(a, _)| a);
    let copy = req.header("x-amz-copy-source").is_some();
    let (entry, checksum) = if copy {
        copy_part(gw, req, &upload, algorithm).await?
    } else {
        // The checksum sent, which must be of the upload's algorithm if it
        // has one; that algorithm's, computed, when none is sent.
        let announced = match (Announced::of(&req.headers)?, algorithm) {
            (Some(a), Some(want)) if a.algorithm != want => {
                return Err(S3Error::InvalidRequest(format!(
                    "the upload was started with the checksum algorithm {}; its parts carry {}, not {}",
                    want.name(),
                    want.header(),
                    a.algorithm.header()
                )));
            }
            (Some(a), _) => Some(a),
            (None, Some(algorithm)) => Some(Announced {
                algorithm,
                value: None,
                trailer: false,
            }),
            (None, None) => None,
        };
        let mut session = gw.pfs.content().session();
        let stored = body::store_body(
            &req.headers,
            req.take_payload(),
            body,
            &mut session,
            (upload.path.clone(), None),
            announced.as_ref(),
        )
        .await?;
        session.finish().await?;
        let checksum = announced
            .zip(stored.checksum)
            .map(|(a, value)| (a.algorithm, value));
        (stored.entry, checksum)
    };
    let checksum = checksum.map(|(algorithm, value)| Checksum {
        algorithm,
        value,
        kind: ChecksumType::FullObject,
    });
    let attrs = checksum
        .as_ref()
        .map(|c| serde_json::to_value(c).unwrap_or_default());
    let part = gw
        .pfs
        .put_upload_part(&upload, number, entry, attrs)
        .await
        .map_err(|e| S3Error::from_pfs(e, &b.name, req.key_name()))?;
    let tag = part_etag(&part.hash);
    if copy {
        let mut x = Xml::new("CopyPartResult");
        x.elem("LastModified", &iso8601(part.stored_ns))
            .elem("ETag", &tag);
        if let Some(c) = &checksum {
            x.elem(c.algorithm.element(), &c.value);
        }
        return Ok(xml_response(x.finish("CopyPartResult")));
    }
    let mut r = crate::request::empty(axum::http::StatusCode::OK);
    set_header(&mut r, "etag", &tag);
    if let Some(c) = &checksum {
        set_header(&mut r, c.algorithm.header(), &c.value);
    }
    Ok(r)
}

/// UploadPartCopy: the whole source by reference, or a byte range of it
/// (`x-amz-copy-source-range`) read and stored again; with the checksum
/// of `algorithm` of the part (the source's full-object one when it has
/// it, otherwise computed from the bytes).
async fn copy_part(
    gw: &Gateway,
    req: &Req,
    upload: &UploadRecord,
    algorithm: Option<Algorithm>,
) -> Result<(FileEntry, Option<(Algorithm, String)>)> {
    let (src, src_key, source) = copy_source_entry(gw, req).await?;
    let Some(range) = req.header("x-amz-copy-source-range") else {
        let checksum = match algorithm {
            None => None,
            Some(a) => {
                let kept =
                    object_metadata(gw, &src, &src_key, (&source.path, &source.hash)).await?;
                Some((a, copy_checksum(gw, &source, kept.checksum(), a).await?))
            }
        };
        let entry = FileEntry {
            path: upload.path.clone(),
            ..source
        };
        return Ok((entry, checksum));
    };
    let invalid = || {
        S3Error::InvalidArgument(format!(
            "x-amz-copy-source-range '{range}' must be bytes=FIRST-LAST within the source's {} bytes",
            source.size
        ))
    };
    let (first, last) = range
        .trim()
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| Some((a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?)))
        .ok_or_else(invalid)?;
    if first > last {
        return Err(invalid());
    }
    if last >= source.size {
        return Err(S3Error::InvalidRange { size: source.size });
    }
    let mut session = gw.pfs.content().session();
    session.begin_file(upload.path.clone(), None);
    let mut hasher = algorithm.map(Algorithm::hasher);
    let mut bytes = gw
        .pfs
        .content()
        .read_file(&source, first, Some(last - first + 1));
    while let Some(chunk) = bytes.next().await {
        let chunk = chunk?;
        if let Some(h) = &mut hasher {
            h.update(&chunk);
        }
        session.write(&chunk).await?;
    }
    let entry = session.end_file().await?;
    session.finish().await?;
    Ok((entry, algorithm.zip(hasher.map(|h| h.finish()))))
}

pub(crate) async fn list_parts(gw: &Gateway, req: &Req) -> Result<Response> {
    let b = Bucket::parse(req.bucket_name())?;
    let upload = upload_of(gw, req, &b).await?;
    let marker: u32 = match req.param("part-number-marker") {
        None | Some("") => 0,
        Some(m) => m.parse().map_err(|_| {
            S3Error::InvalidArgument(format!("part-number-marker '{m}' is not a number"))
        })?,
    };
    let max = match req.param("max-parts") {
        None => MAX_LIST,
        Some(m) => m
            .parse::<usize>()
            .map_err(|_| S3Error::InvalidArgument(format!("max-parts '{m}' is not a number")))?
            .min(MAX_LIST),
    };
    let parts = gw
        .pfs
        .upload_parts(&upload)
        .await
        .map_err(|e| S3Error::from_pfs(e, &b.name, req.key_name()))?;
    let upload_checksum = upload_metadata(&upload)?.upload_checksum();
    let after: Vec<&PartRecord> = parts.iter().filter(|p| p.number > marker).collect();
    let shown = &after[..after.len().min(max)];
    let truncated = after.len() > shown.len();
    let mut x = Xml::new("ListPartsResult");
    x.elem("Bucket", &b.name)
        .elem("Key", req.key_name())
        .elem("UploadId", &upload.id);
    owner(&mut x, "Initiator");
    owner(&mut x, "Owner");
    x.elem("StorageClass", "STANDARD")
        .elem("PartNumberMarker", &marker.to_string());
    if let Some(last) = shown.last() {
        x.elem("NextPartNumberMarker", &last.number.to_string());
    }
    x.elem("MaxParts", &max.to_string())
        .elem("IsTruncated", if truncated { "true" } else { "false" });
    if let Some((algorithm, kind)) = upload_checksum {
        x.elem("ChecksumAlgorithm", algorithm.name())
            .elem("ChecksumType", kind.name());
    }
    for p in shown {
        x.open("Part")
            .elem("PartNumber", &p.number.to_string())
            .elem("LastModified", &iso8601(p.stored_ns))
            .elem("ETag", &part_etag(&p.hash))
            .elem("Size", &p.size.to_string());
        if let Some(c) = part_checksum(p)? {
            x.elem(c.algorithm.element(), &c.value);
        }
        x.close("Part");
    }
    Ok(xml_response(x.finish("ListPartsResult")))
}

pub(crate) async fn complete(gw: &Gateway, req: &Req, body: Body) -> Result<Response> {
    let b = Bucket::parse(req.bucket_name())?;
    let key = req.key_name();
    let conditions = WriteConditions::of(req);
    let upload = match upload_of(gw, req, &b).await {
        Ok(upload) => upload,
        Err(e @ S3Error::NoSuchUpload { .. }) => {
            // Completed already (within the day PFS remembers it): the
            // answer the completion gave, as S3 answers.
            let id = req.param("uploadId").unwrap_or("");
            let done = gw
                .pfs
                .completed_upload(&b.repo, id)
                .await
                .map_err(|e| S3Error::from_pfs(e, &b.name, key))?;
            return match done {
                Some(d) if d.branch == b.branch()? && key_path(key).is_ok_and(|p| p == d.path) => {
                    let kept = object_metadata(gw, &b, key, (&d.path, &d.hash)).await?;
                    Ok(completion_result(&b, key, &d.hash, kept.checksum()))
                }
                _ => Err(e),
            };
        }
        Err(e) => return Err(e),
    };
    let doc = body::read_document(&req.headers, req.take_payload(), body, false).await?;
    // Each part listed: its number, ETag and checksums.
    let mut listed: Vec<(Option<u32>, Option<String>)> = Vec::new();
    let mut listed_checksums: Vec<Vec<(Algorithm, String)>> = Vec::new();
    for (path, text) in crate::xml::read_elements(&doc)? {
        if let Some(element) = path.strip_prefix("CompleteMultipartUpload/Part/Checksum")
            && let Some(c) = listed_checksums.last_mut()
        {
            let algorithm = Algorithm::parse(element).ok_or_else(|| S3Error::MalformedXml {
                reason: format!("Checksum{element} is not a checksum of CRC32, CRC32C, CRC64NVME, SHA1 or SHA256"),
            })?;
            c.push((algorithm, text.trim().to_string()));
            continue;
        }
        match path.as_str() {
            "CompleteMultipartUpload/Part" => {
                listed.push((None, None));
                listed_checksums.push(Vec::new());
            }
            "CompleteMultipartUpload/Part/PartNumber" => {
                if let Some(p) = listed.last_mut() {
                    p.0 = Some(text.trim().parse().map_err(|_| S3Error::MalformedXml {
                        reason: format!("part number '{text}' is not a number"),
                    })?);
                }
            }
            "CompleteMultipartUpload/Part/ETag" => {
                if let Some(p) = listed.last_mut() {
                    p.1 = Some(text);
                }
            }
            _ => {}
        }
    }
    if listed.is_empty() {
        return Err(S3Error::MalformedXml {
            reason: "a completion lists at least one part".into(),
        });
    }
    let stored = gw
        .pfs
        .upload_parts(&upload)
        .await
        .map_err(|e| S3Error::from_pfs(e, &b.name, key))?;
    // A part number listed twice in a row (a client that sent a part again
    // while the first upload of it was still running, and kept both
    // answers) counts once, by its last entry, as in Ceph.
    let superseded =
        |i: usize| listed[i].0.is_some() && listed.get(i + 1).is_some_and(|n| n.0 == listed[i].0);
    let mut chosen: Vec<PartRecord> = Vec::with_capacity(listed.len());
    for (i, (number, tag)) in listed.iter().enumerate() {
        let number = number.ok_or_else(|| S3Error::MalformedXml {
            reason: "a Part without a PartNumber".into(),
        })?;
        if superseded(i) {
            continue;
        }
        if chosen.last().is_some_and(|p| p.number >= number) {
            return Err(S3Error::InvalidPartOrder);
        }
        let part = stored
            .iter()
            .find(|p| p.number == number)
            .ok_or(S3Error::InvalidPart { part: number })?;
        if let Some(tag) = tag
            && tag.trim().trim_matches('"') != part.hash.to_hex()
        {
            return Err(S3Error::InvalidPart { part: number });
        }
        if i + 1 < listed.len() && part.size < MIN_PART {
            return Err(S3Error::EntityTooSmall {
                part: number,
                size: part.size,
            });
        }
        // A checksum listed is the one the part was stored with.
        let kept = part_checksum(part)?;
        for (algorithm, value) in &listed_checksums[i] {
            if kept
                .as_ref()
                .is_none_or(|k| k.algorithm != *algorithm || k.value != *value)
            {
                return Err(S3Error::InvalidPart { part: number });
            }
        }
        chosen.push(part.clone());
    }
    // The metadata given when the upload started, the parts' sizes, and
    // the object's checksum from the parts' when the upload has an
    // algorithm (checked against the one sent with the completion).
    let metadata = upload_metadata(&upload)?;
    let mut part_checksums = Vec::new();
    let checksum = match metadata.upload_checksum() {
        None => None,
        Some((algorithm, kind)) => {
            let mut parts = Vec::with_capacity(chosen.len());
            for p in &chosen {
                let c = part_checksum(p)?
                    .filter(|c| c.algorithm == algorithm)
                    .ok_or_else(|| {
                        S3Error::InvalidRequest(format!(
                            "part {} has no {} checksum; upload it again",
                            p.number,
                            algorithm.name()
                        ))
                    })?;
                parts.push((c.value, p.size));
            }
            let value = checksum::combine(algorithm, kind, &parts).ok_or_else(|| {
                S3Error::Internal("a part's kept checksum is not of its algorithm".into())
            })?;
            part_checksums = parts.into_iter().map(|(v, _)| v).collect();
            Some(Checksum {
                algorithm,
                value,
                kind,
            })
        }
    };
    check_completion_checksum(req, checksum.as_ref())?;
    // The conditions, if any, are checked against what the key holds when
    // the file is written (see crate::conditional).
    let conditions = &conditions;
    let path = &upload.path;
    let bucket = &b.name;
    let check = |view: WriteView| async move {
        let Some(c) = conditions else {
            return Ok(Ok(()));
        };
        let current = current_object(&view, path).await?;
        Ok(c.check(current.as_ref().map(|(e, _)| e), bucket, key))
    };
    let sizes = chosen.iter().map(|p| p.size).collect();
    let attrs = object_attrs(metadata, sizes, part_checksums, checksum.clone());
    let (_, entry) = gw
        .pfs
        .complete_upload_if(&upload, &chosen, Some(attrs), check)
        .await
        .map_err(|e| match conditions {
            Some(_) => S3Error::from_pfs_conditional(e, &b.name, key),
            None => S3Error::from_pfs(e, &b.name, key),
        })??;
    Ok(completion_result(&b, key, &entry.hash, checksum.as_ref()))
}

/// The attributes of a completed upload's object: its metadata, parts'
/// sizes and checksum, and its parts' checksums while the record can hold
/// them (about 170 SHA-256 ones); past that, without them.
fn object_attrs(
    metadata: ObjectMetadata,
    sizes: Vec<u64>,
    part_checksums: Vec<String>,
    checksum: Option<Checksum>,
) -> serde_json::Value {
    let attrs = metadata
        .clone()
        .with_parts(sizes.clone(), part_checksums, checksum.clone())
        .to_attrs();
    if serde_json::to_vec(&attrs).map_or(0, |v| v.len()) <= MAX_ATTRS_BYTES {
        return attrs;
    }
    metadata.with_parts(sizes, vec![], checksum).to_attrs()
}

/// The checksum a completion sends (`x-amz-checksum-<alg>`, and
/// `x-amz-checksum-type`) must be the object's: BadDigest otherwise, and
/// nothing is written.
fn check_completion_checksum(req: &Req, checksum: Option<&Checksum>) -> Result<()> {
    if let (Some(t), Some(c)) = (req.header("x-amz-checksum-type"), checksum)
        && !t.trim().eq_ignore_ascii_case(c.kind.name())
    {
        return Err(S3Error::InvalidRequest(format!(
            "x-amz-checksum-type '{t}' is not the upload's, {}",
            c.kind.name()
        )));
    }
    for algorithm in checksum::ALGORITHMS {
        let Some(sent) = req.header(algorithm.header()) else {
            continue;
        };
        match checksum {
            Some(c) if c.algorithm == algorithm && c.value == sent.trim() => {}
            Some(c) if c.algorithm == algorithm => {
                return Err(S3Error::ChecksumMismatch(format!(
                    "the {} you specified did not match the object's checksum ({}); nothing was written",
                    algorithm.header(),
                    c.value
                )));
            }
            _ => {
                return Err(S3Error::ChecksumMismatch(format!(
                    "the {} you specified is not the checksum of the upload, which was started {}; nothing was written",
                    algorithm.header(),
                    match checksum {
                        Some(c) => format!("with {}", c.algorithm.name()),
                        None => "without x-amz-checksum-algorithm".into(),
                    }
                )));
            }
        }
    }
    Ok(())
}

fn completion_result(
    b: &Bucket,
    key: &str,
    hash: &pach_storage::ContentHash,
    checksum: Option<&Checksum>,
) -> Response {
    let mut x = Xml::new("CompleteMultipartUploadResult");
    x.elem("Location", &format!("/{}/{key}", b.name))
        .elem("Bucket", &b.name)
        .elem("Key", key)
        .elem("ETag", &part_etag(hash));
    if let Some(c) = checksum {
        x.elem(c.algorithm.element(), &c.value)
            .elem("ChecksumType", c.kind.name());
    }
    xml_response(x.finish("CompleteMultipartUploadResult"))
}

pub(crate) async fn abort(gw: &Gateway, req: &Req) -> Result<Response> {
    let b = Bucket::parse(req.bucket_name())?;
    let upload = upload_of(gw, req, &b).await?;
    gw.pfs
        .abort_upload(&upload.repo, &upload.id)
        .await
        .map_err(|e| S3Error::from_pfs(e, &b.name, req.key_name()))?;
    Ok(crate::dispatch::no_content())
}

pub(crate) async fn list_uploads(gw: &Gateway, req: &Req) -> Result<Response> {
    let b = Bucket::parse(req.bucket_name())?;
    let branch = b.branch()?.to_string();
    b.check_exists(&gw.pfs).await?;
    let prefix = req.param("prefix").unwrap_or("");
    let delimiter = req.param("delimiter").unwrap_or("");
    let key_marker = req.param("key-marker").unwrap_or("");
    let id_marker = req.param("upload-id-marker").unwrap_or("");
    let max = match req.param("max-uploads") {
        None => MAX_LIST,
        Some(m) => m
            .parse::<usize>()
            .map_err(|_| S3Error::InvalidArgument(format!("max-uploads '{m}' is not a number")))?
            .min(MAX_LIST),
    };
    let enc = encoding(req)?;
    let show = |s: &str| enc.map_or_else(|| s.to_string(), |f| f(s));
    let uploads = gw
        .pfs
        .list_uploads(&b.repo)
        .await
        .map_err(|e| S3Error::from_pfs(e, &b.name, ""))?;
    let mut shown: Vec<&UploadRecord> = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut truncated = false;
    for u in uploads.iter().filter(|u| u.branch == branch) {
        let key = &u.path[1..];
        if !key.starts_with(prefix) {
            continue;
        }
        let past_marker = key > key_marker
            || (!id_marker.is_empty() && key == key_marker && u.id.as_str() > id_marker);
        if !key_marker.is_empty() && !past_marker {
            continue;
        }
        let common = match delimiter {
            "" => None,
            d => key[prefix.len()..]
                .find(d)
                .map(|i| key[..prefix.len() + i + d.len()].to_string()),
        };
        if let Some(c) = &common
            && prefixes.last() == Some(c)
        {
            continue;
        }
        if shown.len() + prefixes.len() == max {
            truncated = true;
            break;
        }
        match common {
            Some(c) => prefixes.push(c),
            None => shown.push(u),
        }
    }
    let mut x = Xml::new("ListMultipartUploadsResult");
    x.elem("Bucket", &b.name)
        .elem("KeyMarker", &show(key_marker))
        .elem("UploadIdMarker", id_marker);
    if let Some(last) = shown.last() {
        x.elem("NextKeyMarker", &show(&last.path[1..]))
            .elem("NextUploadIdMarker", &last.id);
    }
    x.elem("Prefix", &show(prefix));
    if !delimiter.is_empty() {
        x.elem("Delimiter", &show(delimiter));
    }
    if let Some(e) = req.param("encoding-type") {
        x.elem("EncodingType", e);
    }
    x.elem("MaxUploads", &max.to_string())
        .elem("IsTruncated", if truncated { "true" } else { "false" });
    for u in shown {
        x.open("Upload")
            .elem("Key", &show(&u.path[1..]))
            .elem("UploadId", &u.id);
        owner(&mut x, "Initiator");
        owner(&mut x, "Owner");
        x.elem("StorageClass", "STANDARD")
            .elem("Initiated", &iso8601(u.started_ns))
            .close("Upload");
    }
    for p in prefixes {
        x.open("CommonPrefixes")
            .elem("Prefix", &show(&p))
            .close("CommonPrefixes");
    }
    Ok(xml_response(x.finish("ListMultipartUploadsResult")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many parts' checksums do not fit the record: the object keeps its
    /// own, and its parts' sizes.
    #[test]
    fn part_checksums_while_they_fit() {
        let sha = |i: usize| Algorithm::Sha256.of(&i.to_be_bytes());
        let whole = Checksum {
            algorithm: Algorithm::Sha256,
            value: "w-2".into(),
            kind: ChecksumType::Composite,
        };
        let few = object_attrs(
            ObjectMetadata::default(),
            vec![5, 1],
            vec![sha(0), sha(1)],
            Some(whole.clone()),
        );
        let few = ObjectMetadata::from_attrs(few).unwrap();
        assert_eq!(few.part_checksum(2).unwrap().value, sha(1));
        let n = 1000;
        let many = object_attrs(
            ObjectMetadata::default(),
            vec![5; n],
            (0..n).map(sha).collect(),
            Some(whole.clone()),
        );
        let many = ObjectMetadata::from_attrs(many).unwrap();
        assert_eq!(many.checksum(), Some(&whole));
        assert_eq!(many.parts_count(), Some(n));
        assert_eq!(many.part_checksum(2), None);
    }
}
