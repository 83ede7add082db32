//! S3's additional checksums: CRC32, CRC32C, CRC64NVME, SHA1 and SHA256 of
//! an object's content, sent by the client (`x-amz-checksum-<alg>`, as a
//! header or an aws-chunked trailer), computed as the body streams in,
//! refused when they differ (BadDigest, nothing written), and kept with the
//! object's metadata ([`crate::metadata`]) to be returned on reads that ask
//! for them (`x-amz-checksum-mode: ENABLED`).
//!
//! A multipart upload started with an algorithm keeps each part's checksum;
//! its object's checksum is either COMPOSITE (the checksum of the parts'
//! binary checksums, base64, with `-<parts>`) or FULL_OBJECT (the CRC of the
//! whole content, combined from the parts' CRCs without reading them).

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crc_fast::CrcAlgorithm;
use serde::{Deserialize, Serialize};

use crate::error::{Result, S3Error};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum Algorithm {
    Crc32,
    Crc32c,
    Crc64nvme,
    Sha1,
    Sha256,
}

pub(crate) const ALGORITHMS: [Algorithm; 5] = [
    Algorithm::Crc32,
    Algorithm::Crc32c,
    Algorithm::Crc64nvme,
    Algorithm::Sha1,
    Algorithm::Sha256,
];

impl Algorithm {
    /// S3's name of the algorithm (`CRC32`...).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc64nvme => "CRC64NVME",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
        }
    }

    /// The header (and trailer) carrying a checksum of this algorithm.
    pub(crate) fn header(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "x-amz-checksum-crc32",
            Algorithm::Crc32c => "x-amz-checksum-crc32c",
            Algorithm::Crc64nvme => "x-amz-checksum-crc64nvme",
            Algorithm::Sha1 => "x-amz-checksum-sha1",
            Algorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// The XML element carrying a checksum of this algorithm.
    pub(crate) fn element(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "ChecksumCRC32",
            Algorithm::Crc32c => "ChecksumCRC32C",
            Algorithm::Crc64nvme => "ChecksumCRC64NVME",
            Algorithm::Sha1 => "ChecksumSHA1",
            Algorithm::Sha256 => "ChecksumSHA256",
        }
    }

    /// The algorithm S3 names `name` (any case).
    pub(crate) fn parse(name: &str) -> Option<Algorithm> {
        ALGORITHMS
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name.trim()))
    }

    fn crc(self) -> Option<CrcAlgorithm> {
        match self {
            Algorithm::Crc32 => Some(CrcAlgorithm::Crc32IsoHdlc),
            Algorithm::Crc32c => Some(CrcAlgorithm::Crc32Iscsi),
            Algorithm::Crc64nvme => Some(CrcAlgorithm::Crc64Nvme),
            Algorithm::Sha1 | Algorithm::Sha256 => None,
        }
    }

    /// The checksum's length in bytes.
    fn len(self) -> usize {
        match self {
            Algorithm::Crc32 | Algorithm::Crc32c => 4,
            Algorithm::Crc64nvme => 8,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
        }
    }

    /// A hasher computing this checksum over a stream.
    pub(crate) fn hasher(self) -> Hasher {
        match (self.crc(), self) {
            (Some(crc), _) => Hasher::Crc(self, crc_fast::Digest::new(crc)),
            (None, Algorithm::Sha1) => Hasher::Sha(ring::digest::Context::new(
                &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            )),
            (None, _) => Hasher::Sha(ring::digest::Context::new(&ring::digest::SHA256)),
        }
    }

    /// The checksum of `data` (base64).
    pub(crate) fn of(self, data: &[u8]) -> String {
        let mut h = self.hasher();
        h.update(data);
        h.finish()
    }

    /// The big-endian bytes of a CRC of this algorithm.
    fn crc_bytes(self, crc: u64) -> Vec<u8> {
        crc.to_be_bytes()[8 - self.len()..].to_vec()
    }
}

/// A checksum being computed over a body as it streams.
pub(crate) enum Hasher {
    Crc(Algorithm, crc_fast::Digest),
    Sha(ring::digest::Context),
}

impl Hasher {
    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc(_, d) => d.update(data),
            Hasher::Sha(c) => c.update(data),
        }
    }

    /// The checksum, base64.
    pub(crate) fn finish(self) -> String {
        match self {
            Hasher::Crc(a, d) => STANDARD.encode(a.crc_bytes(d.finalize())),
            Hasher::Sha(c) => STANDARD.encode(c.finish().as_ref()),
        }
    }
}

/// How a multipart object's checksum is made of its parts' (S3's
/// `x-amz-checksum-type`); an object written whole is FULL_OBJECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum ChecksumType {
    Composite,
    FullObject,
}

impl ChecksumType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ChecksumType::Composite => "COMPOSITE",
            ChecksumType::FullObject => "FULL_OBJECT",
        }
    }
}

/// An object's (or a part's) checksum as kept and returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Checksum {
    pub(crate) algorithm: Algorithm,
    /// Base64, with `-<parts>` for a composite checksum.
    pub(crate) value: String,
    #[serde(rename = "type")]
    pub(crate) kind: ChecksumType,
}

/// The checksum a PUT or UploadPart announces: its algorithm, and the
/// value to hold the body to (from a header, or from the aws-chunked
/// trailer named by `x-amz-trailer`, known once the body has ended). One
/// with neither is computed only (a part of an upload started with an
/// algorithm, sent without a checksum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Announced {
    pub(crate) algorithm: Algorithm,
    pub(crate) value: Option<String>,
    pub(crate) trailer: bool,
}

/// The algorithm a request names in `header`, if any; an unknown one is
/// refused.
pub(crate) fn algorithm_header(headers: &HeaderMap, header: &str) -> Result<Option<Algorithm>> {
    let Some(v) = headers.get(header) else {
        return Ok(None);
    };
    let name = v.to_str().unwrap_or("");
    Algorithm::parse(name).map(Some).ok_or_else(|| {
        S3Error::InvalidRequest(format!(
            "{header} '{name}' is not a checksum algorithm; use CRC32, CRC32C, CRC64NVME, SHA1 or SHA256"
        ))
    })
}

impl Announced {
    /// The checksum a write's headers announce, if any. Refused: two
    /// checksums, an algorithm named with no checksum sent, or named
    /// differently from the checksum sent.
    pub(crate) fn of(headers: &HeaderMap) -> Result<Option<Announced>> {
        if let Some(other) = headers.keys().map(|h| h.as_str()).find(|h| {
            h.starts_with("x-amz-checksum-")
                && !matches!(
                    *h,
                    "x-amz-checksum-mode" | "x-amz-checksum-algorithm" | "x-amz-checksum-type"
                )
                && !ALGORITHMS.iter().any(|a| a.header() == *h)
        }) {
            return Err(S3Error::InvalidRequest(format!(
                "the checksum {other} is not supported; send x-amz-checksum-crc32, -crc32c, -crc64nvme, -sha1 or -sha256"
            )));
        }
        let sent: Vec<Algorithm> = ALGORITHMS
            .into_iter()
            .filter(|a| headers.contains_key(a.header()))
            .collect();
        let trailer = headers
            .get("x-amz-trailer")
            .and_then(|v| v.to_str().ok())
            .map(|t| t.trim().to_ascii_lowercase());
        let trailed = match &trailer {
            Some(t) if t.starts_with("x-amz-checksum-") => Some(
                ALGORITHMS
                    .into_iter()
                    .find(|a| a.header() == t)
                    .ok_or_else(|| {
                        S3Error::InvalidRequest(format!(
                            "x-amz-trailer '{t}' names no checksum algorithm; use x-amz-checksum-crc32, -crc32c, -crc64nvme, -sha1 or -sha256"
                        ))
                    })?,
            ),
            _ => None,
        };
        if sent.len() + usize::from(trailed.is_some()) > 1 {
            return Err(S3Error::InvalidRequest(
                "expecting a single x-amz-checksum- header (or trailer): a write carries one checksum".into(),
            ));
        }
        let named = match algorithm_header(headers, "x-amz-sdk-checksum-algorithm")? {
            Some(a) => Some(a),
            None => algorithm_header(headers, "x-amz-checksum-algorithm")?,
        };
        let announced = match (sent.first(), trailed) {
            (Some(&algorithm), _) => Announced {
                algorithm,
                value: headers
                    .get(algorithm.header())
                    .map(|v| v.to_str().unwrap_or("").trim().to_string()),
                trailer: false,
            },
            (None, Some(algorithm)) => Announced {
                algorithm,
                value: None,
                trailer: true,
            },
            (None, None) => {
                return match named {
                    Some(a) => Err(S3Error::InvalidRequest(format!(
                        "the checksum algorithm {} is named, but no {} header or trailer was sent",
                        a.name(),
                        a.header()
                    ))),
                    None => Ok(None),
                };
            }
        };
        if let Some(named) = named
            && named != announced.algorithm
        {
            return Err(S3Error::InvalidRequest(format!(
                "the checksum algorithm named is {}, but the checksum sent is {}",
                named.name(),
                announced.algorithm.header()
            )));
        }
        Ok(Some(announced))
    }

    /// The hasher computing this checksum over the body.
    pub(crate) fn hasher(&self) -> Hasher {
        self.algorithm.hasher()
    }

    /// Compares the body's checksum with the announced one (`trailed`:
    /// the trailer's value, when it came as one): BadDigest when they
    /// differ or when the trailer announced never came.
    pub(crate) fn check(&self, computed: &str, trailed: Option<&str>) -> Result<()> {
        let header = self.algorithm.header();
        let want = match (&self.value, self.trailer) {
            (Some(v), _) => v.as_str(),
            (None, true) => trailed.ok_or_else(|| {
                S3Error::ChecksumMismatch(format!(
                    "the body ended without the {header} trailer that x-amz-trailer announced; nothing was written"
                ))
            })?,
            (None, false) => return Ok(()),
        };
        if want != computed {
            return Err(S3Error::ChecksumMismatch(format!(
                "the {header} you specified did not match the calculated checksum ({computed}); nothing was written"
            )));
        }
        Ok(())
    }
}

/// A multipart object's checksum from its parts' (base64 values and
/// sizes, in order): composite, or for a CRC the full object's CRC.
/// None when a part's value is not base64 of the algorithm's length.
pub(crate) fn combine(
    algorithm: Algorithm,
    kind: ChecksumType,
    parts: &[(String, u64)],
) -> Option<String> {
    let mut binary = Vec::with_capacity(parts.len());
    for (value, _) in parts {
        let bytes = STANDARD.decode(value).ok()?;
        if bytes.len() != algorithm.len() {
            return None;
        }
        binary.push(bytes);
    }
    match (kind, algorithm.crc()) {
        (ChecksumType::FullObject, Some(crc)) => {
            let mut whole: Option<u64> = None;
            for (bytes, (_, size)) in binary.iter().zip(parts) {
                let mut be = [0u8; 8];
                be[8 - bytes.len()..].copy_from_slice(bytes);
                let part = u64::from_be_bytes(be);
                whole = Some(match whole {
                    None => part,
                    Some(w) => crc_fast::checksum_combine(crc, w, part, *size),
                });
            }
            Some(STANDARD.encode(algorithm.crc_bytes(whole.unwrap_or(0))))
        }
        _ => Some(format!(
            "{}-{}",
            algorithm.of(&binary.concat()),
            parts.len()
        )),
    }
}

/// The checksum type of a multipart upload started with `algorithm` and
/// `x-amz-checksum-type` `named`: S3's default (COMPOSITE, FULL_OBJECT for
/// CRC64NVME, which has no composite form), or the one named if the
/// algorithm has it (SHA1 and SHA256 have no full-object form).
pub(crate) fn upload_type(algorithm: Algorithm, named: Option<&str>) -> Result<ChecksumType> {
    let kind = match named.map(str::trim) {
        None => match algorithm {
            Algorithm::Crc64nvme => ChecksumType::FullObject,
            _ => ChecksumType::Composite,
        },
        Some(t) if t.eq_ignore_ascii_case("COMPOSITE") => ChecksumType::Composite,
        Some(t) if t.eq_ignore_ascii_case("FULL_OBJECT") => ChecksumType::FullObject,
        Some(t) => {
            return Err(S3Error::InvalidRequest(format!(
                "x-amz-checksum-type '{t}' is not COMPOSITE or FULL_OBJECT"
            )));
        }
    };
    match (kind, algorithm.crc()) {
        (ChecksumType::FullObject, None) => Err(S3Error::InvalidRequest(format!(
            "the checksum type FULL_OBJECT is not supported with {}; use COMPOSITE, or a CRC algorithm",
            algorithm.name()
        ))),
        (ChecksumType::Composite, _) if algorithm == Algorithm::Crc64nvme => {
            Err(S3Error::InvalidRequest(
                "the checksum type COMPOSITE is not supported with CRC64NVME; use FULL_OBJECT"
                    .into(),
            ))
        }
        _ => Ok(kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repeated(b: u8, n: usize) -> Vec<u8> {
        vec![b; n]
    }

    /// The values of ceph's s3-tests: 1 KiB of `A`, and parts of 5 MiB
    /// of `A`, `B` and `C`.
    #[test]
    fn known_values() {
        let a = repeated(b'A', 1024);
        assert_eq!(
            Algorithm::Sha256.of(&a),
            "arcu6553sHVAiX4MjW0j7I7vD4w6R+Gz9Ok0Q9lTa+0="
        );
        assert_eq!(Algorithm::Crc64nvme.of(&a), "Qeh8oXvGiSo=");
        let mb5 = 5 * 1024 * 1024;
        let parts: Vec<Vec<u8>> = [b'A', b'B', b'C']
            .iter()
            .map(|&b| repeated(b, mb5))
            .collect();
        for (alg, kind, values, whole) in [
            (
                Algorithm::Crc32,
                ChecksumType::FullObject,
                ["JRTCyQ==", "QoZTGg==", "YAgjqw=="],
                "WgDhBQ==",
            ),
            (
                Algorithm::Crc32c,
                ChecksumType::FullObject,
                ["MDaLrw==", "TH4EZg==", "Z7mBIQ=="],
                "xU+Krw==",
            ),
            (
                Algorithm::Crc64nvme,
                ChecksumType::FullObject,
                ["L/E4WYn8v98=", "xW1l19VobYM=", "cK5MnNaWrW4="],
                "i+6LR0y3eFo=",
            ),
            (
                Algorithm::Sha1,
                ChecksumType::Composite,
                [
                    "iIaTCGbm+vdVjNqIMF2S0T7ibMk=",
                    "LS/TJ32bAVKEwRu+sE3X7awh/lk=",
                    "6DDwovUaHwrKNXDMzOGbuvj9kxI=",
                ],
                "sizjvY4eud3MrcHdZM3cQ/ol39o=-3",
            ),
            (
                Algorithm::Sha256,
                ChecksumType::Composite,
                [
                    "275VF5loJr1YYawit0XSHREhkFXYkkPKGuoK0x9VKxI=",
                    "mrHwOfjTL5Zwfj74F05HOQGLdUb7E5szdCbxgUSq6NM=",
                    "Vw7oB/nKQ5xWb3hNgbyfkvDiivl+U+/Dft48nfJfDow=",
                ],
                "uWBwpe1dxI4Vw8Gf0X9ynOdw/SS6VBzfWm9giiv1sf4=-3",
            ),
        ] {
            for (part, value) in parts.iter().zip(values) {
                assert_eq!(alg.of(part), value, "{alg:?}");
            }
            let listed: Vec<(String, u64)> =
                values.iter().map(|v| (v.to_string(), mb5 as u64)).collect();
            assert_eq!(combine(alg, kind, &listed).unwrap(), whole, "{alg:?}");
            if kind == ChecksumType::FullObject {
                assert_eq!(alg.of(&parts.concat()), whole, "{alg:?}");
            }
        }
        assert_eq!(
            combine(
                Algorithm::Crc32,
                ChecksumType::FullObject,
                &[("AAA".into(), 1)]
            ),
            None
        );
    }

    #[test]
    fn streamed_in_pieces() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for alg in ALGORITHMS {
            let mut h = alg.hasher();
            for piece in data.chunks(777) {
                h.update(piece);
            }
            assert_eq!(h.finish(), alg.of(&data), "{alg:?}");
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(
                axum::http::HeaderName::try_from(*n).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn announced() {
        let a = Announced::of(&headers(&[
            ("x-amz-sdk-checksum-algorithm", "sha256"),
            ("x-amz-checksum-sha256", "abc="),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(a.algorithm, Algorithm::Sha256);
        assert!(a.check("abc=", None).is_ok());
        assert!(matches!(
            a.check("abd=", None),
            Err(S3Error::ChecksumMismatch(_))
        ));
        let t = Announced::of(&headers(&[("x-amz-trailer", "x-amz-checksum-crc32c")]))
            .unwrap()
            .unwrap();
        assert_eq!(t.value, None);
        assert!(t.check("x", Some("x")).is_ok());
        assert!(t.check("x", None).is_err());
        let computed = Announced {
            algorithm: Algorithm::Crc32,
            value: None,
            trailer: false,
        };
        assert!(computed.check("x", None).is_ok());
        assert_eq!(Announced::of(&headers(&[])).unwrap(), None);
        for bad in [
            &[("x-amz-checksum-crc32", "a"), ("x-amz-checksum-sha1", "b")][..],
            &[("x-amz-sdk-checksum-algorithm", "SHA1")],
            &[
                ("x-amz-sdk-checksum-algorithm", "MD5"),
                ("x-amz-checksum-sha1", "b"),
            ],
            &[
                ("x-amz-sdk-checksum-algorithm", "CRC32"),
                ("x-amz-checksum-sha1", "b"),
            ],
            &[("x-amz-trailer", "x-amz-checksum-md5")],
            &[("x-amz-checksum-xxhash64", "AAAA")],
        ] {
            assert!(
                matches!(
                    Announced::of(&headers(bad)),
                    Err(S3Error::InvalidRequest(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn upload_types() {
        use ChecksumType::*;
        assert_eq!(upload_type(Algorithm::Sha256, None).unwrap(), Composite);
        assert_eq!(upload_type(Algorithm::Crc64nvme, None).unwrap(), FullObject);
        assert_eq!(
            upload_type(Algorithm::Crc32, Some("FULL_OBJECT")).unwrap(),
            FullObject
        );
        assert_eq!(
            upload_type(Algorithm::Crc32c, Some("COMPOSITE")).unwrap(),
            Composite
        );
        assert!(upload_type(Algorithm::Sha1, Some("FULL_OBJECT")).is_err());
        assert!(upload_type(Algorithm::Crc64nvme, Some("COMPOSITE")).is_err());
        assert!(upload_type(Algorithm::Crc32, Some("BOTH")).is_err());
    }
}
