//! Turning a URL into an object store and the path it names: one function,
//! [`open_url`], with one set of rules for every caller, and the checks a
//! server runs on its own bucket before it serves ([`check_store`]).
//!
//! The rules: `s3://bucket/path`, `az://container/path`, `gs://bucket/path`
//! name the bucket and the path inside it, with endpoints and credentials
//! from the usual environment variables (`AWS_*`, `AZURE_*`, `GOOGLE_*`);
//! `http(s)://host/path` names the host and the path on it;
//! `file:///abs/path` (and, where the [`UrlPolicy`] accepts them, plain
//! filesystem paths) names a local path. The returned path is where the URL
//! points inside the returned store: the object for a single object, the
//! key prefix for a bucket.
//!
//! Who gave the URL matters for local paths: the operator's own URLs (a
//! server's storage flag) may name any directory, while URLs that clients
//! send (extract or restore targets, files to fetch, egress, specs) open the
//! server's filesystem on their behalf, so a [`UrlPolicy`] confines them to
//! directories the operator allowed and keeps them out of the server's own
//! data. *Invariant:* a client's `file://` store is rooted at the allowed
//! directory that holds the path (after resolving `..` and symbolic links),
//! so no key of it reaches outside that directory.

use std::path::{Component, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore};

use crate::StorageError;

/// Which local paths and pseudo-stores a URL may name, by who gave it.
#[derive(Debug, Clone)]
pub struct UrlPolicy {
    /// `None`: any local path (the operator's own URL). `Some(dirs)`: only
    /// paths inside one of these directories.
    file_roots: Option<Vec<PathBuf>>,
    /// Never a path inside these, whatever `file_roots` says.
    forbidden: Vec<PathBuf>,
    /// Whether `memory://` (a store that lives as long as its handle) and
    /// plain paths without a scheme are accepted.
    operator: bool,
    /// How the operator allows a directory, appended to refusals.
    how_to_allow: String,
}

impl Default for UrlPolicy {
    /// A client's URLs with no local directory allowed.
    fn default() -> Self {
        UrlPolicy::clients(Vec::new(), Vec::new(), "")
    }
}

impl UrlPolicy {
    /// The operator's own URLs (a server's storage location, tools): every
    /// scheme, plain paths, and any local directory.
    pub fn operator() -> UrlPolicy {
        UrlPolicy {
            file_roots: None,
            forbidden: Vec::new(),
            operator: true,
            how_to_allow: String::new(),
        }
    }

    /// URLs that clients send: `file://` only inside `allowed` and never
    /// inside `forbidden` (the server's own data); no `memory://`, no plain
    /// paths. `how_to_allow` tells the reader of a refusal how the operator
    /// allows a directory.
    pub fn clients(
        allowed: Vec<PathBuf>,
        forbidden: Vec<PathBuf>,
        how_to_allow: impl Into<String>,
    ) -> UrlPolicy {
        UrlPolicy {
            file_roots: Some(allowed),
            forbidden,
            operator: false,
            how_to_allow: how_to_allow.into(),
        }
    }

    fn refuse(&self, url: &str, reason: String) -> StorageError {
        let reason = if self.how_to_allow.is_empty() {
            reason
        } else {
            format!("{reason}; {}", self.how_to_allow)
        };
        StorageError::UrlRefused {
            url: url.to_string(),
            reason,
        }
    }

    /// Where a local path may be opened: the directory to root the store at
    /// (`/` for the operator) and the path inside it.
    fn confine(&self, url: &str, path: &std::path::Path) -> Result<(PathBuf, Path), StorageError> {
        let resolved = resolve(path).map_err(|reason| StorageError::InvalidUrl {
            url: url.to_string(),
            reason,
        })?;
        for dir in &self.forbidden {
            if let Ok(dir) = resolve(dir)
                && resolved.starts_with(&dir)
            {
                return Err(self.refuse(
                    url,
                    format!(
                        "{} is inside the server's own data directory {}, whose files only the \
                         server may write (a directory allowed for URLs never opens it)",
                        resolved.display(),
                        dir.display()
                    ),
                ));
            }
        }
        let root = match &self.file_roots {
            None => PathBuf::from("/"),
            Some(roots) => {
                let found = roots
                    .iter()
                    .filter_map(|r| resolve(r).ok())
                    .find(|r| resolved.starts_with(r));
                match found {
                    Some(root) => root,
                    None if roots.is_empty() => {
                        return Err(self.refuse(
                            url,
                            "file:// URLs open the server's filesystem, and no directory is \
                             allowed for them"
                                .into(),
                        ));
                    }
                    None => {
                        let allowed: Vec<String> =
                            roots.iter().map(|r| r.display().to_string()).collect();
                        return Err(self.refuse(
                            url,
                            format!(
                                "{} is outside the directories allowed for file:// URLs ({})",
                                resolved.display(),
                                allowed.join(", ")
                            ),
                        ));
                    }
                }
            }
        };
        let inside = resolved.strip_prefix(&root).unwrap_or(&resolved);
        let key = Path::from_iter(inside.components().filter_map(|c| match c {
            Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
            _ => None,
        }));
        Ok((root, key))
    }
}

/// `path` made absolute with `..` and symbolic links resolved: the longest
/// existing ancestor canonicalised, the rest appended (it does not exist,
/// so it holds no links).
fn resolve(path: &std::path::Path) -> Result<PathBuf, String> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| format!("cannot resolve a relative path: {e}"))?
            .join(path)
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(canonical) = existing.canonicalize() {
            let mut out = canonical;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return Ok(out);
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            // `..` that cannot be resolved against anything existing.
            _ => return Err(format!("cannot resolve {}", absolute.display())),
        }
    }
}

/// Opens the object store a URL names; returns it and the path the URL names
/// inside it (an object, or a key prefix for a bucket).
///
/// Accepted: `s3://bucket[/path]` (and `s3a://`), `az://container[/path]`
/// (and `azure://`, `abfs(s)://`, `adl://`), `gs://bucket[/path]`,
/// `http(s)://host[/path]`, `file:///abs/path`, and where `policy` is the
/// operator's, `memory://` and plain filesystem paths.
pub fn open_url(
    url: &str,
    policy: &UrlPolicy,
) -> Result<(Arc<dyn ObjectStore>, Path), StorageError> {
    if url.trim().is_empty() {
        return Err(StorageError::InvalidUrl {
            url: url.to_string(),
            reason: "empty URL".into(),
        });
    }
    let Some((scheme, _)) = url.split_once("://") else {
        if !policy.operator {
            return Err(policy.refuse(
                url,
                "a plain path is not a URL; name a local file as file:///abs/path".into(),
            ));
        }
        return open_local(url, policy, std::path::Path::new(url));
    };
    let scheme = scheme.to_ascii_lowercase();
    let parsed = url::Url::parse(url).map_err(|e| StorageError::InvalidUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    let path_in_url = || {
        Path::from_url_path(parsed.path()).map_err(|e| StorageError::InvalidUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })
    };
    let opened = |store: Result<Arc<dyn ObjectStore>, object_store::Error>| {
        store.map_err(|source| StorageError::OpenStore {
            url: url.to_string(),
            source,
        })
    };
    match scheme.as_str() {
        "memory" if policy.operator => Ok((Arc::new(InMemory::new()), Path::default())),
        "memory" => Err(policy.refuse(
            url,
            "memory:// names a store that lives only inside the server for one call".into(),
        )),
        "file" => {
            // file:///abs/path, or file://localhost/abs/path.
            let local = parsed
                .to_file_path()
                .map_err(|()| StorageError::InvalidUrl {
                    url: url.to_string(),
                    reason: "a file URL needs an absolute path: file:///abs/path".into(),
                })?;
            open_local(url, policy, &local)
        }
        "s3" | "s3a" => {
            let mut builder = AmazonS3Builder::from_env().with_url(url);
            if std::env::var_os("AWS_VIRTUAL_HOSTED_STYLE_REQUEST").is_none() {
                // Path-style works with MinIO, Garage and other S3-compatible endpoints.
                builder = builder.with_virtual_hosted_style_request(false);
            }
            let store = opened(builder.build().map(|s| Arc::new(s) as _))?;
            Ok((store, path_in_url()?))
        }
        "az" | "azure" | "abfs" | "abfss" | "adl" => {
            let builder = MicrosoftAzureBuilder::from_env().with_url(url);
            let store = opened(builder.build().map(|s| Arc::new(s) as _))?;
            Ok((store, path_in_url()?))
        }
        "gs" => {
            let builder = GoogleCloudStorageBuilder::from_env().with_url(url);
            let store = opened(builder.build().map(|s| Arc::new(s) as _))?;
            Ok((store, path_in_url()?))
        }
        "http" | "https" => {
            let origin = parsed.origin().ascii_serialization();
            // Whoever wrote http:// chose plain HTTP (object_store refuses
            // it by default).
            let options = ClientOptions::new().with_allow_http(scheme == "http");
            let builder = HttpBuilder::new()
                .with_url(origin)
                .with_client_options(options);
            let store = opened(builder.build().map(|s| Arc::new(s) as _))?;
            Ok((store, path_in_url()?))
        }
        _ => Err(StorageError::UnsupportedScheme {
            url: url.to_string(),
        }),
    }
}

fn open_local(
    url: &str,
    policy: &UrlPolicy,
    path: &std::path::Path,
) -> Result<(Arc<dyn ObjectStore>, Path), StorageError> {
    let (root, key) = policy.confine(url, path)?;
    let store =
        LocalFileSystem::new_with_prefix(&root).map_err(|source| StorageError::OpenStore {
            url: url.to_string(),
            source,
        })?;
    Ok((Arc::new(crate::local::LocalFiles(store)), key))
}

/// How long a bucket may take to answer the start-up check when credentials
/// are configured (object_store retries failed requests for minutes).
const BUCKET_PATIENCE: Duration = Duration::from_secs(30);
/// How long the start-up check waits for credentials from the EC2 instance
/// metadata service, the one source left when no variable names any (it
/// answers in milliseconds where it exists).
const INSTANCE_METADATA_PATIENCE: Duration = Duration::from_secs(5);

/// The AWS variables through which object_store finds credentials, by
/// source; the first source whose variables are all set is used.
const AWS_CREDENTIAL_SOURCES: [&[&str]; 4] = [
    &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
    &["AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"],
    &["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"],
    &[
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    ],
];

/// Whether the environment names S3 credentials (or unsigned requests).
fn aws_credentials_configured(env: impl Fn(&str) -> Option<String>) -> bool {
    env("AWS_SKIP_SIGNATURE").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || AWS_CREDENTIAL_SOURCES.iter().any(|vars| {
            vars.iter()
                .all(|v| env(v).is_some_and(|value| !value.is_empty()))
        })
}

/// Checks, before a server serves, that the store a storage URL names can be
/// used: a local directory exists (it is created) and is writable; an S3
/// bucket has credentials and answers a listing of the prefix. Other stores
/// are checked by their first request.
pub async fn check_store(
    url: &str,
    policy: &UrlPolicy,
    store: &dyn ObjectStore,
    prefix: &Path,
) -> Result<(), StorageError> {
    let scheme = url
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    match scheme.as_str() {
        "" | "file" => {
            let (root, key) = policy.confine(url, &local_path(url)?)?;
            let mut dir = root;
            dir.extend(key.parts().map(|p| p.as_ref().to_string()));
            check_local_dir(&dir)
        }
        "s3" | "s3a" => {
            let configured = aws_credentials_configured(|v| std::env::var(v).ok());
            let patience = if configured {
                BUCKET_PATIENCE
            } else {
                INSTANCE_METADATA_PATIENCE
            };
            let listed = tokio::time::timeout(patience, store.list_with_delimiter(Some(prefix)));
            let problem = match listed.await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {}s", patience.as_secs()),
            };
            if configured {
                Err(StorageError::BucketUnreachable {
                    url: url.to_string(),
                    problem,
                })
            } else {
                Err(StorageError::NoCredentials {
                    url: url.to_string(),
                    problem,
                    profile: std::env::var("AWS_PROFILE").ok(),
                })
            }
        }
        _ => Ok(()),
    }
}

/// The local directory a plain path or `file://` URL names; `None` for
/// other URLs.
pub fn local_dir(url: &str) -> Option<PathBuf> {
    match url.split_once("://") {
        None => Some(PathBuf::from(url)),
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("file") => local_path(url).ok(),
        Some(_) => None,
    }
}

/// The local path of a plain path or `file://` URL.
fn local_path(url: &str) -> Result<PathBuf, StorageError> {
    if !url.contains("://") {
        return Ok(PathBuf::from(url));
    }
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.to_file_path().ok())
        .ok_or_else(|| StorageError::InvalidUrl {
            url: url.to_string(),
            reason: "a file URL needs an absolute path: file:///abs/path".into(),
        })
}

/// A local store's directory exists (created if missing) and takes a file.
fn check_local_dir(dir: &std::path::Path) -> Result<(), StorageError> {
    if dir.exists() && !dir.is_dir() {
        return Err(StorageError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    std::fs::create_dir_all(dir).map_err(|cause| StorageError::CreateDir {
        dir: dir.to_path_buf(),
        cause,
    })?;
    let probe = dir.join(format!(".write-check-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|cause| StorageError::NotWritable {
            dir: dir.to_path_buf(),
            cause,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::{ObjectStoreExt, PutPayload};

    fn refused(url: &str, policy: &UrlPolicy) -> String {
        match open_url(url, policy) {
            Err(e @ StorageError::UrlRefused { .. }) => e.to_string(),
            Err(e) => panic!("{url}: expected a refusal, got {e}"),
            Ok(_) => panic!("{url}: expected a refusal, but it opened"),
        }
    }

    #[test]
    fn bucket_urls_name_the_path_inside_the_bucket() {
        let op = UrlPolicy::operator();
        let (_, prefix) = open_url("s3://bucket/cluster/one", &op).unwrap();
        assert_eq!(prefix, Path::from("cluster/one"));
        let (_, prefix) = open_url("s3://bucket", &op).unwrap();
        assert_eq!(prefix, Path::default());
        let (_, prefix) = open_url("s3://bucket/a/b/", &op).unwrap();
        assert_eq!(prefix, Path::from("a/b"));
        let (_, prefix) = open_url("s3://bucket/a%20b/c?x=1", &op).unwrap();
        assert_eq!(prefix, Path::from("a b/c"));
        // The same rules for clients' URLs.
        let (_, path) = open_url("s3://bucket/backups/full.stream", &UrlPolicy::default()).unwrap();
        assert_eq!(path, Path::from("backups/full.stream"));
        let (_, path) = open_url("http://127.0.0.1:1/dir/data.csv", &UrlPolicy::default()).unwrap();
        assert_eq!(path, Path::from("dir/data.csv"));
    }

    #[test]
    fn unsupported_scheme_lists_supported_ones() {
        let err = open_url("ftp://host/x", &UrlPolicy::operator())
            .err()
            .unwrap();
        let text = err.to_string();
        for scheme in ["file://", "s3://", "az://", "gs://", "https://"] {
            assert!(text.contains(scheme), "{text}");
        }
    }

    #[tokio::test]
    async fn operator_paths_are_anywhere_and_keep_their_place_on_disk() {
        let op = UrlPolicy::operator();
        let (_, prefix) = open_url("memory://", &op).unwrap();
        assert_eq!(prefix, Path::default());
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        for url in [
            format!("file://{}", nested.display()),
            nested.display().to_string(),
        ] {
            let (store, prefix) = open_url(&url, &op).unwrap();
            store
                .put(&prefix.clone().join("k"), PutPayload::from_static(b"v"))
                .await
                .unwrap();
            assert_eq!(std::fs::read(nested.join("k")).unwrap(), b"v");
        }
        assert!(open_url("file://relative/x", &op).is_err());
    }

    #[tokio::test]
    async fn client_file_urls_stay_inside_allowed_directories() {
        let base = tempfile::tempdir().unwrap();
        let allowed = base.path().join("allowed");
        let data = base.path().join("allowed/data");
        let outside = base.path().join("outside");
        for d in [&allowed, &data, &outside] {
            std::fs::create_dir_all(d).unwrap();
        }
        let policy = UrlPolicy::clients(vec![allowed.clone()], vec![data.clone()], "HINT");

        // Inside: the store is rooted at the allowed directory.
        let url = format!("file://{}/out/backup", allowed.display());
        let (store, path) = open_url(&url, &policy).unwrap();
        assert_eq!(path, Path::from("out/backup"));
        store
            .put(&path, PutPayload::from_static(b"x"))
            .await
            .unwrap();
        assert_eq!(std::fs::read(allowed.join("out/backup")).unwrap(), b"x");

        // Outside, through `..`, through a link, or into the data directory.
        let err = refused(&format!("file://{}/x", outside.display()), &policy);
        assert!(
            err.contains("outside the directories allowed") && err.contains("HINT"),
            "{err}"
        );
        refused(
            &format!("file://{}/../outside/x", allowed.display()),
            &policy,
        );
        std::os::unix::fs::symlink(&outside, allowed.join("link")).unwrap();
        refused(&format!("file://{}/link/x", allowed.display()), &policy);
        let err = refused(&format!("file://{}/meta.redb", data.display()), &policy);
        assert!(err.contains("own data directory"), "{err}");
        std::os::unix::fs::symlink(&data, allowed.join("data-link")).unwrap();
        refused(
            &format!("file://{}/data-link/meta.redb", allowed.display()),
            &policy,
        );

        // Nothing allowed by default; no memory:// and no plain paths.
        let err = refused(&url, &UrlPolicy::default());
        assert!(err.contains("no directory is allowed"), "{err}");
        refused("memory://", &policy);
        refused(allowed.join("x").to_str().unwrap(), &policy);
    }

    #[tokio::test]
    async fn a_storage_directory_that_cannot_be_used_is_named() {
        async fn check(path: PathBuf) -> Result<(), StorageError> {
            let op = UrlPolicy::operator();
            let url = path.display().to_string();
            let (store, prefix) = open_url(&url, &op)?;
            check_store(&url, &op, &*store, &prefix).await
        }
        let dir = tempfile::tempdir().unwrap();
        check(dir.path().join("new/objects")).await.unwrap();
        assert!(dir.path().join("new/objects").is_dir());
        let file = dir.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let err = check(file.clone()).await.unwrap_err();
        assert!(matches!(err, StorageError::NotADirectory { .. }), "{err}");
        let err = check(file.join("below")).await.unwrap_err();
        assert!(matches!(err, StorageError::CreateDir { .. }), "{err}");
        // Root writes anywhere; /proc refuses even root.
        let err = check(PathBuf::from("/proc/1")).await.unwrap_err();
        assert!(matches!(err, StorageError::NotWritable { .. }), "{err}");
    }

    #[test]
    fn credential_sources() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(!aws_credentials_configured(env(&[])));
        assert!(!aws_credentials_configured(env(&[(
            "AWS_ACCESS_KEY_ID",
            "a"
        )])));
        assert!(!aws_credentials_configured(env(&[("AWS_PROFILE", "p")])));
        assert!(aws_credentials_configured(env(&[
            ("AWS_ACCESS_KEY_ID", "a"),
            ("AWS_SECRET_ACCESS_KEY", "b")
        ])));
        assert!(aws_credentials_configured(env(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
            ("AWS_ROLE_ARN", "arn")
        ])));
    }
}
