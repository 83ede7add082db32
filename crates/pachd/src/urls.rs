//! The URLs clients send — extract and restore targets, files to fetch, spec
//! URLs — open stores through `pach_storage::open_url` under one policy: the
//! operator's `--allow-file-url` directories for `file://`, never pachd's
//! data directory or local bucket. The policy is set once at start, before
//! the API serves, and only read afterwards; until it is set, no local
//! directory is allowed.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use object_store::ObjectStore;
use pach_storage::{StorageError, UrlPolicy};
use tonic::Status;

static POLICY: OnceLock<UrlPolicy> = OnceLock::new();

/// How the operator allows a directory; ends every refusal.
const HOW_TO_ALLOW: &str = "pachd opens file:// URLs of clients only inside directories given \
     with --allow-file-url DIR (repeatable; env PACHD_ALLOW_FILE_URL=DIR1:DIR2), and never inside \
     its data directory";

/// The policy for clients' URLs: `allowed` directories (each must exist,
/// and lie outside pachd's own data), `own_data` out of bounds.
pub fn client_policy(allowed: &[PathBuf], own_data: Vec<PathBuf>) -> anyhow::Result<UrlPolicy> {
    for dir in allowed {
        if !dir.is_dir() {
            anyhow::bail!(
                "--allow-file-url {}: not an existing directory; create it or leave it out",
                dir.display()
            );
        }
        let canonical = dir.canonicalize()?;
        for own in &own_data {
            if let Ok(own) = own.canonicalize()
                && canonical.starts_with(&own)
            {
                anyhow::bail!(
                    "--allow-file-url {}: inside pachd's own data {} (its metadata and objects), \
                     which client URLs may never open; allow a directory outside it",
                    dir.display(),
                    own.display()
                );
            }
        }
    }
    Ok(UrlPolicy::clients(allowed.to_vec(), own_data, HOW_TO_ALLOW))
}

/// Sets the policy of clients' URLs (once, at start).
pub fn set_policy(policy: UrlPolicy) {
    if POLICY.set(policy).is_err() {
        tracing::error!("the URL policy was set twice; the first one stays");
    }
}

/// Opens the store a client's URL names, and the path inside it.
pub(crate) fn open_url(
    url: &str,
) -> Result<(Arc<dyn ObjectStore>, object_store::path::Path), Status> {
    let policy = POLICY.get_or_init(UrlPolicy::default);
    pach_storage::open_url(url, policy).map_err(|e| match e {
        StorageError::UrlRefused { .. } => Status::permission_denied(e.to_string()),
        e => Status::invalid_argument(e.to_string()),
    })
}
