//! Turning a storage URL into an object store and a key prefix.
//!
//! Bucket URLs (`s3://bucket/some/prefix`) keep everything of the cluster
//! under the URL's path; local stores are rooted at the directory itself and
//! HTTP stores at the URL, so their prefix is empty. Cloud credentials and
//! endpoints come from the usual environment variables (`AWS_*`, `AZURE_*`,
//! `GOOGLE_*`) through the builders' `from_env`.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;

use crate::StorageError;

/// Opens the object store named by `url`; returns it and the key prefix to use.
///
/// Accepted: `memory://`, `file:///abs/path`, a plain filesystem path,
/// `s3://bucket[/prefix]`, `az://container[/prefix]`, `gs://bucket[/prefix]`,
/// `http(s)://host[/path]`.
pub fn open_object_store(url: &str) -> Result<(Arc<dyn ObjectStore>, Path), StorageError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return open_local(url, PathBuf::from(url));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "memory" => Ok((Arc::new(InMemory::new()), Path::default())),
        "file" => open_file_url(url, rest),
        "s3" | "s3a" => {
            let mut builder = AmazonS3Builder::from_env().with_url(url);
            if std::env::var_os("AWS_VIRTUAL_HOSTED_STYLE_REQUEST").is_none() {
                // Path-style works with MinIO and other S3-compatible endpoints.
                builder = builder.with_virtual_hosted_style_request(false);
            }
            let store = builder.build().map_err(|source| open_error(url, source))?;
            Ok((Arc::new(store), bucket_prefix(url, rest)?))
        }
        "az" | "azure" | "abfs" | "abfss" | "adl" => {
            let store = MicrosoftAzureBuilder::from_env()
                .with_url(url)
                .build()
                .map_err(|source| open_error(url, source))?;
            Ok((Arc::new(store), bucket_prefix(url, rest)?))
        }
        "gs" => {
            let store = GoogleCloudStorageBuilder::from_env()
                .with_url(url)
                .build()
                .map_err(|source| open_error(url, source))?;
            Ok((Arc::new(store), bucket_prefix(url, rest)?))
        }
        "http" | "https" => {
            let store = HttpBuilder::new()
                .with_url(url)
                .build()
                .map_err(|source| open_error(url, source))?;
            Ok((Arc::new(store), Path::default()))
        }
        _ => Err(StorageError::UnsupportedScheme {
            url: url.to_string(),
        }),
    }
}

/// Opens the object a URL names, to read it (or, for a bucket URL, the
/// objects under it): returns the store and the object's path in it.
///
/// Accepted: `http(s)://host/path`, `s3://bucket/key`, `gs://bucket/key`,
/// `az://container/key`, `file:///abs/path`. Settings and credentials come
/// from the standard `AWS_*`, `AZURE_*` and `GOOGLE_*` environment
/// variables; a plain `http://` URL is allowed since the user named it.
pub fn open_object_url(url: &str) -> Result<(Box<dyn ObjectStore>, Path), StorageError> {
    let parsed = url::Url::parse(url).map_err(|err| StorageError::InvalidUrl {
        url: url.to_string(),
        reason: err.to_string(),
    })?;
    let mut options: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| {
            ["AWS_", "AZURE_", "GOOGLE_"]
                .iter()
                .any(|p| k.starts_with(p))
        })
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    if parsed.scheme() == "http" {
        options.push(("allow_http".into(), "true".into()));
    }
    object_store::parse_url_opts(&parsed, options).map_err(|source| open_error(url, source))
}

fn open_file_url(url: &str, rest: &str) -> Result<(Arc<dyn ObjectStore>, Path), StorageError> {
    // file:///abs/path has an empty host; file://localhost/abs/path is also accepted.
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    if !path.starts_with('/') {
        return Err(StorageError::InvalidUrl {
            url: url.to_string(),
            reason: "a file URL needs an absolute path: file:///abs/path".into(),
        });
    }
    open_local(url, PathBuf::from(path))
}

fn open_local(url: &str, dir: PathBuf) -> Result<(Arc<dyn ObjectStore>, Path), StorageError> {
    if url.is_empty() {
        return Err(StorageError::InvalidUrl {
            url: String::new(),
            reason: "empty storage location".into(),
        });
    }
    std::fs::create_dir_all(&dir).map_err(|source| StorageError::CreateDir {
        dir: dir.clone(),
        source,
    })?;
    let store = LocalFileSystem::new_with_prefix(&dir).map_err(|source| open_error(url, source))?;
    Ok((Arc::new(store), Path::default()))
}

/// The path part of `scheme://bucket/path`, as a key prefix.
fn bucket_prefix(url: &str, rest: &str) -> Result<Path, StorageError> {
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let path = rest
        .split_once('/')
        .map(|(_, path)| path)
        .unwrap_or_default();
    Path::from_url_path(path).map_err(|err| StorageError::InvalidUrl {
        url: url.to_string(),
        reason: err.to_string(),
    })
}

fn open_error(url: &str, source: object_store::Error) -> StorageError {
    StorageError::OpenStore {
        url: url.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_prefixes() {
        assert_eq!(bucket_prefix("u", "bucket").unwrap(), Path::default());
        assert_eq!(bucket_prefix("u", "bucket/").unwrap(), Path::default());
        assert_eq!(bucket_prefix("u", "bucket/a/b").unwrap(), Path::from("a/b"));
        assert_eq!(
            bucket_prefix("u", "bucket/a/b/?x=1").unwrap(),
            Path::from("a/b")
        );
    }

    #[test]
    fn unsupported_scheme_lists_supported_ones() {
        let err = open_object_store("ftp://host/x").err().unwrap();
        let text = err.to_string();
        for scheme in [
            "memory://",
            "file://",
            "s3://",
            "az://",
            "gs://",
            "https://",
        ] {
            assert!(text.contains(scheme), "{text}");
        }
    }

    #[test]
    fn memory_and_local() {
        let (_, prefix) = open_object_store("memory://").unwrap();
        assert_eq!(prefix, Path::default());
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        let (_, prefix) = open_object_store(&format!("file://{}", nested.display())).unwrap();
        assert_eq!(prefix, Path::default());
        assert!(nested.is_dir());
        let plain = dir.path().join("plain");
        open_object_store(plain.to_str().unwrap()).unwrap();
        assert!(plain.is_dir());
        assert!(open_object_store("file://relative/x").is_err());
    }

    #[test]
    fn s3_prefix_comes_from_the_path() {
        let (_, prefix) = open_object_store("s3://bucket/cluster/one").unwrap();
        assert_eq!(prefix, Path::from("cluster/one"));
    }
}
