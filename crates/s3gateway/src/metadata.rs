//! Object metadata: `Content-Type`, `Cache-Control`, `Expires`,
//! `Content-Encoding`, `Content-Disposition`, `Content-Language` and user
//! metadata (`x-amz-meta-*`) given on PutObject, CreateMultipartUpload and
//! CopyObject (`x-amz-metadata-directive: REPLACE`), returned by GetObject
//! and HeadObject.
//!
//! They are kept as PFS file attributes ([`pach_pfs::attrs`]): a record
//! keyed by the object's path and content hash, written in the transaction
//! of the write, so metadata follows that content at that key (a commit
//! that does not touch the object keeps it; other content written at the
//! key, by any client, has none). An object without a record is served as
//! before: `application/octet-stream`, no other header.
//!
//! The object's additional checksum ([`crate::checksum`]) is kept in the
//! same record, with its parts' checksums for a multipart upload that
//! had an algorithm; so is the algorithm of an upload in progress. Records
//! written before checksums were kept decode as objects without one.
//!
//! Header values are kept byte for byte (a value that is not UTF-8, such as
//! a Latin-1 `é`, comes back as it was sent): each byte is kept as the
//! character of that code point.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::checksum::{Algorithm, Checksum, ChecksumType};
use crate::error::{Result, S3Error};
use crate::request::set_header;

/// S3's limit on user metadata: the names (without `x-amz-meta-`) and
/// values, in bytes.
pub(crate) const MAX_USER_METADATA: usize = 2048;

/// The content type of an object without one.
pub(crate) const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// The standard headers kept, by their name.
const STANDARD: [&str; 6] = [
    "content-type",
    "cache-control",
    "expires",
    "content-encoding",
    "content-disposition",
    "content-language",
];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ObjectMetadata {
    /// The standard headers given, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, String>,
    /// User metadata, by name without `x-amz-meta-` (lower case).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    user: BTreeMap<String, String>,
    /// The sizes of a multipart upload's parts, in order (GetObject by
    /// `partNumber`); empty for an object written whole. Kept in runs of
    /// equal sizes ([`part_sizes`]), so that 10,000 parts fit the record.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "part_sizes")]
    parts: Vec<u64>,
    /// The object's checksum, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checksum: Option<Checksum>,
    /// The checksums of the parts (base64, in the order of `parts`), when
    /// the upload had an algorithm.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    part_checksums: Vec<String>,
    /// An upload in progress: the algorithm and type it was started with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upload_checksum: Option<(Algorithm, ChecksumType)>,
}

/// Part sizes as kept: a list whose items are a size, or `[size, count]`
/// for a run of `count` parts of that size (records written before runs
/// hold sizes only, which read the same).
mod part_sizes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Up to this many parts the sizes are written as a plain list, which
    /// the release before runs reads too (and which fits the record).
    pub(super) const PLAIN_UP_TO: usize = 512;

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Item {
        One(u64),
        Run(u64, u64),
    }

    pub(super) fn serialize<S: Serializer>(sizes: &[u64], s: S) -> Result<S::Ok, S::Error> {
        if sizes.len() <= PLAIN_UP_TO {
            return sizes.serialize(s);
        }
        let mut items: Vec<Item> = Vec::new();
        for &size in sizes {
            match items.last_mut() {
                Some(Item::Run(last, count)) if *last == size => *count += 1,
                Some(Item::One(last)) if *last == size => {
                    *items.last_mut().expect("an item") = Item::Run(size, 2)
                }
                _ => items.push(Item::One(size)),
            }
        }
        items.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        let items = Vec::<Item>::deserialize(d)?;
        let mut sizes = Vec::new();
        for item in items {
            match item {
                Item::One(size) => sizes.push(size),
                Item::Run(size, count) => {
                    if sizes.len() as u64 + count > u64::from(pach_pfs::uploads::MAX_PART_NUMBER) {
                        return Err(serde::de::Error::custom("more parts than an upload has"));
                    }
                    sizes.extend(std::iter::repeat_n(size, count as usize));
                }
            }
        }
        Ok(sizes)
    }
}

/// A header value's bytes as a string of their code points.
fn from_bytes(v: &HeaderValue) -> String {
    v.as_bytes().iter().map(|&b| char::from(b)).collect()
}

/// The header value of a string [`from_bytes`] made.
fn to_value(s: &str) -> Option<HeaderValue> {
    let bytes: Option<Vec<u8>> = s.chars().map(|c| u8::try_from(c).ok()).collect();
    HeaderValue::from_bytes(&bytes?).ok()
}

impl ObjectMetadata {
    /// The metadata a write's headers give; None when they give none to
    /// keep (the default content type alone is not kept).
    /// MetadataTooLarge past S3's 2 KiB of user metadata.
    pub(crate) fn of(headers: &HeaderMap) -> Result<Option<ObjectMetadata>> {
        let mut m = ObjectMetadata::default();
        for name in STANDARD {
            let Some(v) = headers.get(name) else {
                continue;
            };
            let mut value = from_bytes(v);
            // aws-chunked is how the body was sent, not what it is: it is
            // taken out of the list (which is kept as given otherwise).
            if name == "content-encoding" && value.split(',').any(|e| e.trim() == "aws-chunked") {
                value = value
                    .split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty() && *e != "aws-chunked")
                    .collect::<Vec<_>>()
                    .join(", ");
                if value.is_empty() {
                    continue;
                }
            }
            if name == "content-type" && value == DEFAULT_CONTENT_TYPE {
                continue;
            }
            m.headers.insert(name.to_string(), value);
        }
        let mut size = 0;
        for (name, v) in headers {
            if let Some(user) = name.as_str().strip_prefix("x-amz-meta-") {
                let value = from_bytes(v);
                size += user.len() + v.as_bytes().len();
                m.user.insert(user.to_string(), value);
            }
        }
        if size > MAX_USER_METADATA {
            return Err(S3Error::MetadataTooLarge { size });
        }
        Ok((m != ObjectMetadata::default()).then_some(m))
    }

    /// The same metadata, for an object made of parts of these sizes (and
    /// these checksums), with this checksum.
    pub(crate) fn with_parts(
        self,
        parts: Vec<u64>,
        part_checksums: Vec<String>,
        checksum: Option<Checksum>,
    ) -> ObjectMetadata {
        ObjectMetadata {
            parts,
            part_checksums,
            checksum,
            upload_checksum: None,
            ..self
        }
    }

    /// The same metadata, with this checksum of the whole content.
    pub(crate) fn with_checksum(self, checksum: Option<Checksum>) -> ObjectMetadata {
        ObjectMetadata { checksum, ..self }
    }

    /// The same metadata, for an upload started with this checksum
    /// algorithm and type.
    pub(crate) fn with_upload_checksum(self, c: Option<(Algorithm, ChecksumType)>) -> Self {
        ObjectMetadata {
            upload_checksum: c,
            ..self
        }
    }

    /// The algorithm and type an upload in progress was started with.
    pub(crate) fn upload_checksum(&self) -> Option<(Algorithm, ChecksumType)> {
        self.upload_checksum
    }

    /// The object's checksum.
    pub(crate) fn checksum(&self) -> Option<&Checksum> {
        self.checksum.as_ref()
    }

    /// The checksum of part `number` (from 1): the part's own for a
    /// multipart object whose upload had an algorithm (with the object's
    /// type), the object's for the one part of an object written whole.
    pub(crate) fn part_checksum(&self, number: u32) -> Option<Checksum> {
        let c = self.checksum.as_ref()?;
        if self.parts.is_empty() {
            return (number == 1).then(|| c.clone());
        }
        let value = self.part_checksums.get(number as usize - 1)?;
        Some(Checksum {
            value: value.clone(),
            ..c.clone()
        })
    }

    /// The sizes of the parts and their checksums (empty when the upload
    /// had no algorithm), for a multipart object; empty for one written
    /// whole.
    pub(crate) fn parts(&self) -> (&[u64], &[String]) {
        (&self.parts, &self.part_checksums)
    }

    /// The metadata of a copy of this object: one part, so a composite
    /// checksum (of parts the copy does not have) is not kept.
    pub(crate) fn for_copy(self) -> ObjectMetadata {
        let checksum = self.checksum.filter(|c| c.kind == ChecksumType::FullObject);
        ObjectMetadata {
            parts: vec![],
            part_checksums: vec![],
            upload_checksum: None,
            checksum,
            ..self
        }
    }

    /// The metadata, or None when there is none to keep.
    pub(crate) fn kept(self) -> Option<ObjectMetadata> {
        (self != ObjectMetadata::default()).then_some(self)
    }

    /// The byte range (first, last) of part `number` (from 1) and the
    /// number of parts, for an object of `size` bytes: an object written
    /// whole is one part. NoSuchPart past the last part.
    pub(crate) fn part_range(&self, number: u32, size: u64) -> Result<((u64, u64), usize)> {
        let sizes = match self.parts.as_slice() {
            [] => vec![size],
            parts => parts.to_vec(),
        };
        let index = number as usize - 1;
        let Some(&len) = sizes.get(index) else {
            return Err(S3Error::NoSuchPart {
                part: number,
                count: sizes.len(),
            });
        };
        let first: u64 = sizes[..index].iter().sum();
        Ok(((first, (first + len).saturating_sub(1)), sizes.len()))
    }

    /// How many parts the object was uploaded in, if it was.
    pub(crate) fn parts_count(&self) -> Option<usize> {
        (!self.parts.is_empty()).then_some(self.parts.len())
    }

    /// The PFS attributes document.
    pub(crate) fn to_attrs(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The metadata of a PFS attributes document; a document this gateway
    /// did not write is an internal error.
    pub(crate) fn from_attrs(attrs: serde_json::Value) -> Result<ObjectMetadata> {
        serde_json::from_value(attrs)
            .map_err(|e| S3Error::Internal(format!("unreadable object metadata: {e}")))
    }

    /// Sets the headers of a checksum: `x-amz-checksum-<alg>` and
    /// `x-amz-checksum-type`.
    pub(crate) fn apply_checksum(c: &Checksum, r: &mut Response) {
        set_header(r, c.algorithm.header(), &c.value);
        set_header(r, "x-amz-checksum-type", c.kind.name());
    }

    /// Sets the response's headers: the content type (the default when none
    /// was given), the other standard headers and user metadata given.
    pub(crate) fn apply(&self, r: &mut Response) {
        let h = r.headers_mut();
        h.insert(
            "content-type",
            HeaderValue::from_static(DEFAULT_CONTENT_TYPE),
        );
        let user = self
            .user
            .iter()
            .map(|(n, v)| (format!("x-amz-meta-{n}"), v));
        let standard = self.headers.iter().map(|(n, v)| (n.clone(), v));
        for (name, value) in standard.chain(user) {
            if let (Ok(name), Some(value)) = (HeaderName::try_from(name), to_value(value)) {
                h.insert(name, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(
                HeaderName::try_from(*n).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn kept_and_served_byte_for_byte() {
        let h = headers(&[
            ("content-type", b"text/csv"),
            ("cache-control", b"max-age=60"),
            ("content-encoding", b"aws-chunked, deflate,gzip"),
            ("x-amz-meta-owner", b"Hello World\xe9"),
            ("x-amz-meta-empty", b""),
            ("x-amz-content-sha256", b"UNSIGNED-PAYLOAD"),
        ]);
        let m = ObjectMetadata::of(&h).unwrap().unwrap();
        let m = ObjectMetadata::from_attrs(m.to_attrs()).unwrap();
        let mut r = Response::new(axum::body::Body::empty());
        m.apply(&mut r);
        let got = r.headers();
        assert_eq!(got["content-type"], "text/csv");
        assert_eq!(got["cache-control"], "max-age=60");
        assert_eq!(got["content-encoding"], "deflate, gzip");
        assert_eq!(got["x-amz-meta-owner"].as_bytes(), b"Hello World\xe9");
        assert_eq!(got["x-amz-meta-empty"], "");
        assert!(got.get("x-amz-content-sha256").is_none());
    }

    #[test]
    fn parts() {
        let whole = ObjectMetadata::default();
        assert_eq!(whole.part_range(1, 10).unwrap(), ((0, 9), 1));
        assert!(matches!(
            whole.part_range(2, 10),
            Err(S3Error::NoSuchPart { part: 2, count: 1 })
        ));
        let m =
            ObjectMetadata::from_attrs(whole.with_parts(vec![5, 5, 2], vec![], None).to_attrs())
                .unwrap();
        assert_eq!(m.part_range(1, 12).unwrap(), ((0, 4), 3));
        assert_eq!(m.part_range(3, 12).unwrap(), ((10, 11), 3));
        assert!(m.part_range(4, 12).is_err());
        assert_eq!(m.parts_count(), Some(3));
    }

    /// 10,000 parts of equal size fit the record; records of sizes only
    /// (written before runs, or of up to 512 parts) read the same.
    #[test]
    fn many_parts() {
        let mut sizes = vec![5 << 20; 9_999];
        sizes.push(7);
        let m = ObjectMetadata::default().with_parts(sizes.clone(), vec![], None);
        let attrs = m.to_attrs();
        assert_eq!(attrs["parts"], serde_json::json!([[5 << 20, 9_999], 7]));
        assert_eq!(ObjectMetadata::from_attrs(attrs).unwrap().parts, sizes);
        let old = serde_json::json!({"parts": [5, 5, 2]});
        assert_eq!(ObjectMetadata::from_attrs(old).unwrap().parts, [5, 5, 2]);
        // Up to 512 parts, a plain list, as the release before runs reads.
        let m = ObjectMetadata::default().with_parts(vec![5, 5, 2], vec![], None);
        assert_eq!(m.to_attrs()["parts"], serde_json::json!([5, 5, 2]));
        let m = ObjectMetadata::default().with_parts(vec![5; 512], vec![], None);
        assert_eq!(m.to_attrs()["parts"], serde_json::json!(vec![5; 512]));
        let m = ObjectMetadata::default().with_parts(vec![5; 513], vec![], None);
        assert_eq!(m.to_attrs()["parts"], serde_json::json!([[5, 513]]));
        let too_many = serde_json::json!({"parts": [[1, 10_001]]});
        assert!(ObjectMetadata::from_attrs(too_many).is_err());
    }

    /// Checksums are kept with the rest; a record written before them
    /// decodes as an object without one.
    #[test]
    fn checksums() {
        let old = serde_json::json!({"headers": {"content-type": "text/csv"}, "parts": [5, 2]});
        let m = ObjectMetadata::from_attrs(old).unwrap();
        assert_eq!(m.checksum(), None);
        assert_eq!(m.part_checksum(1), None);
        let sha = |v: &str, kind| Checksum {
            algorithm: Algorithm::Sha256,
            value: v.into(),
            kind,
        };
        let whole =
            ObjectMetadata::default().with_checksum(Some(sha("w", ChecksumType::FullObject)));
        let whole = ObjectMetadata::from_attrs(whole.to_attrs()).unwrap();
        assert_eq!(whole.part_checksum(1).unwrap().value, "w");
        assert_eq!(whole.part_checksum(2), None);
        let parts = m.with_parts(
            vec![5, 2],
            vec!["a".into(), "b".into()],
            Some(sha("c-2", ChecksumType::Composite)),
        );
        let parts = ObjectMetadata::from_attrs(parts.to_attrs()).unwrap();
        assert_eq!(parts.checksum().unwrap().value, "c-2");
        assert_eq!(parts.part_checksum(2).unwrap().value, "b");
        assert_eq!(
            parts.part_checksum(2).unwrap().kind,
            ChecksumType::Composite
        );
        assert_eq!(parts.part_checksum(3), None);
        // A copy is one part: a composite checksum does not describe it.
        let copy = parts.for_copy();
        assert_eq!(copy.checksum(), None);
        assert_eq!(copy.parts_count(), None);
        assert_eq!(whole.clone().for_copy(), whole);
    }

    #[test]
    fn nothing_to_keep_and_too_much() {
        let h = headers(&[
            ("content-type", b"application/octet-stream"),
            ("content-encoding", b"aws-chunked"),
        ]);
        assert_eq!(ObjectMetadata::of(&h).unwrap(), None);
        let big = vec![b'x'; 2046];
        let h = headers(&[("x-amz-meta-big", &big)]);
        assert!(matches!(
            ObjectMetadata::of(&h),
            Err(S3Error::MetadataTooLarge { size: 2049 })
        ));
    }
}
