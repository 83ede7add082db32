//! Conditional writes and deletes: `If-Match` / `If-None-Match` on
//! PutObject, CopyObject and CompleteMultipartUpload; `If-Match`,
//! `x-amz-if-match-last-modified-time` and `x-amz-if-match-size` on
//! DeleteObject, and their `ETag`, `LastModifiedTime` and `Size` in a
//! DeleteObjects entry.
//!
//! A condition is checked against what the key holds when the write lands,
//! not before: the write is planned from the branch's current head (or the
//! open commit it goes into) and made in the transaction that compares it
//! ([`pach_pfs::Pfs::write_planned`]), so two conditional writers cannot
//! both succeed where only one of them could.

use pach_pfs::WriteView;
use pach_storage::FileEntry;

use crate::buckets::etag;
use crate::error::{Result, S3Error};
use crate::objects::etag_matches;
use crate::request::Req;
use crate::time::{parse_http_date, parse_iso8601, whole_seconds};

/// The object at `path` in the write's target, with its Last-Modified
/// (the time of the commit it is read from), if there is one.
pub(crate) async fn current_object(
    view: &WriteView,
    path: &str,
) -> pach_pfs::Result<Option<(FileEntry, i64)>> {
    let (Some(commit), Some(index)) = (view.commit(), view.index().await?) else {
        return Ok(None);
    };
    let modified = commit.finished_ns.unwrap_or(commit.started_ns);
    Ok(index.get(path).await?.map(|e| (e, modified)))
}

/// `If-Match` / `If-None-Match` of a write (ETag lists, or `*`).
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteConditions {
    if_match: Option<String>,
    if_none_match: Option<String>,
}

impl WriteConditions {
    /// The request's conditions; None when it has none.
    pub(crate) fn of(req: &Req) -> Option<WriteConditions> {
        let c = WriteConditions {
            if_match: req.header("if-match").map(str::to_string),
            if_none_match: req.header("if-none-match").map(str::to_string),
        };
        (c.if_match.is_some() || c.if_none_match.is_some()).then_some(c)
    }

    /// Whether they hold of what the key holds: NoSuchKey for `If-Match`
    /// on a key with no object (as S3 answers), PreconditionFailed when an
    /// ETag does not match (or `If-None-Match` does).
    pub(crate) fn check(&self, current: Option<&FileEntry>, bucket: &str, key: &str) -> Result<()> {
        if let Some(m) = &self.if_match {
            let Some(entry) = current else {
                return Err(S3Error::NoSuchKey {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                });
            };
            if !etag_matches(m, &etag(entry)) {
                return Err(S3Error::PreconditionFailed);
            }
        }
        if let (Some(m), Some(entry)) = (&self.if_none_match, current)
            && etag_matches(m, &etag(entry))
        {
            return Err(S3Error::PreconditionFailed);
        }
        Ok(())
    }
}

/// The conditions of a delete: the object's ETag, Last-Modified (to the
/// second) and size must be those given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DeleteConditions {
    pub etag: Option<String>,
    pub modified_secs: Option<u64>,
    pub size: Option<u64>,
}

impl DeleteConditions {
    /// DeleteObject's headers; None when it has none.
    pub(crate) fn of(req: &Req) -> Result<Option<DeleteConditions>> {
        let modified_secs = match req.header("x-amz-if-match-last-modified-time") {
            None => None,
            Some(t) => Some(parse_time(t).ok_or_else(|| {
                S3Error::InvalidArgument(format!(
                    "x-amz-if-match-last-modified-time '{t}' is not an HTTP date or an ISO 8601 time"
                ))
            })?),
        };
        let size = match req.header("x-amz-if-match-size") {
            None => None,
            Some(s) => Some(s.trim().parse::<u64>().map_err(|_| {
                S3Error::InvalidArgument(format!(
                    "x-amz-if-match-size '{s}' is not a size in bytes"
                ))
            })?),
        };
        let c = DeleteConditions {
            etag: req.header("if-match").map(str::to_string),
            modified_secs,
            size,
        };
        Ok((c != DeleteConditions::default()).then_some(c))
    }

    /// Sets a condition of a DeleteObjects entry from its element
    /// (`ETag`, `LastModifiedTime` or `Size`).
    pub(crate) fn set(&mut self, element: &str, text: &str) -> Result<()> {
        let invalid = |what: &str| S3Error::MalformedXml {
            reason: format!("{element} '{text}' is not {what}"),
        };
        match element {
            "ETag" => self.etag = Some(text.to_string()),
            "LastModifiedTime" => {
                self.modified_secs = Some(parse_time(text).ok_or_else(|| invalid("a time"))?)
            }
            "Size" => {
                self.size = Some(
                    text.trim()
                        .parse()
                        .map_err(|_| invalid("a size in bytes"))?,
                )
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether they hold of the object (its entry and Last-Modified):
    /// PreconditionFailed when one does not.
    pub(crate) fn check(&self, entry: &FileEntry, modified_ns: i64) -> Result<()> {
        let holds = self
            .etag
            .as_ref()
            .is_none_or(|m| etag_matches(m, &etag(entry)))
            && self
                .modified_secs
                .is_none_or(|s| s == whole_seconds(modified_ns))
            && self.size.is_none_or(|s| s == entry.size);
        if holds {
            Ok(())
        } else {
            Err(S3Error::PreconditionFailed)
        }
    }
}

/// An HTTP date or an ISO 8601 time, in seconds since the epoch.
fn parse_time(s: &str) -> Option<u64> {
    parse_http_date(s).or_else(|| parse_iso8601(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(content: &[u8]) -> FileEntry {
        FileEntry {
            size: content.len() as u64,
            hash: pach_storage::ContentHash::of(content),
            ..FileEntry::from_chunks("/k".into(), vec![])
        }
    }

    #[test]
    fn write_conditions() {
        let e = entry(b"abc");
        let tag = etag(&e);
        let c = |m: Option<&str>, n: Option<&str>| WriteConditions {
            if_match: m.map(str::to_string),
            if_none_match: n.map(str::to_string),
        };
        assert!(c(Some(&tag), None).check(Some(&e), "b", "k").is_ok());
        assert!(c(Some("*"), None).check(Some(&e), "b", "k").is_ok());
        assert!(matches!(
            c(Some("\"other\""), None).check(Some(&e), "b", "k"),
            Err(S3Error::PreconditionFailed)
        ));
        assert!(matches!(
            c(Some("*"), None).check(None, "b", "k"),
            Err(S3Error::NoSuchKey { .. })
        ));
        assert!(c(None, Some("*")).check(None, "b", "k").is_ok());
        assert!(matches!(
            c(None, Some("*")).check(Some(&e), "b", "k"),
            Err(S3Error::PreconditionFailed)
        ));
        assert!(matches!(
            c(None, Some(&tag)).check(Some(&e), "b", "k"),
            Err(S3Error::PreconditionFailed)
        ));
        assert!(c(None, Some("\"other\"")).check(Some(&e), "b", "k").is_ok());
    }

    #[test]
    fn delete_conditions() {
        let e = entry(b"abc");
        let ns = 1_709_210_096_789_000_000;
        let mut c = DeleteConditions::default();
        c.set("ETag", &etag(&e)).unwrap();
        c.set("LastModifiedTime", "2024-02-29T12:34:56.000Z")
            .unwrap();
        c.set("Size", "3").unwrap();
        assert!(c.check(&e, ns).is_ok());
        for (element, text) in [
            ("ETag", "\"other\""),
            ("LastModifiedTime", "2015-01-01T00:00:00Z"),
            ("Size", "4"),
        ] {
            let mut c = c.clone();
            c.set(element, text).unwrap();
            assert!(
                matches!(c.check(&e, ns), Err(S3Error::PreconditionFailed)),
                "{element}"
            );
        }
        assert!(DeleteConditions::default().set("Size", "big").is_err());
        assert!(
            DeleteConditions::default()
                .set("LastModifiedTime", "soon")
                .is_err()
        );
    }
}
