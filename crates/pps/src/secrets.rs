//! Secrets: named values that user code receives through its pipeline's
//! `transform.secrets` (one key as an environment variable, or every key as
//! a file under a directory). Pachyderm 1.9 reads them from Kubernetes; here
//! they are records of their own in the metadata store (`pps/secrets/`).
//!
//! Invariants: a value leaves pachd only into the sandbox of a datum whose
//! pipeline names its secret; inspecting a secret or a pipeline shows names
//! and keys, never values; extracts leave secrets out (as Pachyderm's do),
//! so a restored cluster needs its secrets created again. A secret a
//! pipeline uses cannot be deleted, so a job never meets a missing secret.

use std::collections::BTreeMap;

use pach_meta::Txn;
use pach_pfs::records::{encode, load, load_all};
use pach_worker::FileMount;

use crate::error::{PpsError, Result};
use crate::pipeline::Pps;
use crate::records::{SECRETS, SecretRecord, secret_key};
use crate::spec::{PipelineSpec, valid_secret_name};

/// The most bytes a secret's values may hold together. Records stay small
/// (the metadata store holds kilobytes, not files); credentials fit easily.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// What can be shown of a secret: everything but its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretInfo {
    pub name: String,
    pub kind: String,
    pub keys: Vec<String>,
    pub created_ns: i64,
}

/// A pipeline's secrets, ready for its sandbox. No `Debug`: values must not
/// reach a log line by accident.
#[derive(Clone, Default)]
pub(crate) struct ResolvedSecrets {
    pub env: Vec<(String, String)>,
    pub mounts: Vec<FileMount>,
}

fn info(r: &SecretRecord) -> SecretInfo {
    SecretInfo {
        name: r.name.clone(),
        kind: r.kind.clone(),
        keys: r.data.keys().cloned().collect(),
        created_ns: r.created_ns,
    }
}

/// Kubernetes' rule for the keys of a secret (they become file names).
fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k != "."
        && k != ".."
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Pps {
    /// Creates a secret; an existing one of the same name is refused.
    pub async fn create_secret(
        &self,
        name: &str,
        kind: &str,
        data: BTreeMap<String, Vec<u8>>,
    ) -> Result<()> {
        if !valid_secret_name(name) {
            return Err(PpsError::InvalidArgument(format!(
                "'{name}' is not a secret name: 1 to 253 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit"
            )));
        }
        if let Some(bad) = data.keys().find(|k| !valid_key(k)) {
            return Err(PpsError::InvalidArgument(format!(
                "secret '{name}': key '{bad}' is not valid: letters, digits, '-', '_' or '.'"
            )));
        }
        let size: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > MAX_SECRET_BYTES {
            return Err(PpsError::InvalidArgument(format!(
                "secret '{name}' holds {size} bytes; a secret holds at most {MAX_SECRET_BYTES} (keep large files in a repo)"
            )));
        }
        let record = SecretRecord {
            name: name.to_string(),
            kind: if kind.is_empty() {
                "Opaque".into()
            } else {
                kind.to_string()
            },
            data: data.into_iter().map(|(k, v)| (k, hex::encode(v))).collect(),
            created_ns: crate::now_ns(),
        };
        let key = secret_key(name);
        let txn = Txn::new().expect(&key, 0).put(&key, encode(&record));
        if self.pfs.meta().commit(txn).await?.is_none() {
            return Err(PpsError::SecretExists(name.to_string()));
        }
        Ok(())
    }

    pub async fn inspect_secret(&self, name: &str) -> Result<SecretInfo> {
        Ok(info(&self.secret_record(name).await?))
    }

    pub async fn list_secret(&self) -> Result<Vec<SecretInfo>> {
        Ok(load_all::<SecretRecord>(&**self.pfs.meta(), SECRETS)
            .await?
            .iter()
            .map(|(r, _)| info(r))
            .collect())
    }

    /// Deletes a secret no pipeline uses.
    pub async fn delete_secret(&self, name: &str) -> Result<()> {
        let (_, rev) = load::<SecretRecord>(&**self.pfs.meta(), &secret_key(name))
            .await?
            .ok_or_else(|| PpsError::SecretNotFound(name.to_string()))?;
        let users: Vec<String> = self
            .list_pipeline_records()
            .await?
            .iter()
            .filter(|p| p.spec.transform.secrets.iter().any(|s| s.name == name))
            .map(|p| p.name().to_string())
            .collect();
        if !users.is_empty() {
            return Err(PpsError::FailedPrecondition(format!(
                "secret '{name}' is used by pipeline(s) {}; update or delete them first",
                users.join(", ")
            )));
        }
        let key = secret_key(name);
        if self
            .pfs
            .meta()
            .commit(Txn::new().expect(&key, rev).delete(&key))
            .await?
            .is_none()
        {
            return Err(PpsError::FailedPrecondition(format!(
                "secret '{name}' changed while it was being deleted; retry"
            )));
        }
        Ok(())
    }

    async fn secret_record(&self, name: &str) -> Result<SecretRecord> {
        load::<SecretRecord>(&**self.pfs.meta(), &secret_key(name))
            .await?
            .map(|(r, _)| r)
            .ok_or_else(|| PpsError::SecretNotFound(name.to_string()))
    }

    /// Checks that every secret a spec names exists with the keys it asks for.
    pub(crate) async fn check_secrets(&self, spec: &PipelineSpec) -> Result<()> {
        for (i, s) in spec.transform.secrets.iter().enumerate() {
            let record = match self.secret_record(&s.name).await {
                Err(PpsError::SecretNotFound(_)) => {
                    return Err(PpsError::InvalidSpec(format!(
                        "pipeline '{}': transform.secrets[{i}].name: secret '{}' does not exist; create it with `pachctl create secret -f SECRET.json`",
                        spec.pipeline.name, s.name
                    )));
                }
                r => r?,
            };
            if !s.key.is_empty() && !record.data.contains_key(&s.key) {
                return Err(PpsError::InvalidSpec(format!(
                    "pipeline '{}': transform.secrets[{i}].key: secret '{}' has no key '{}' (it has: {})",
                    spec.pipeline.name,
                    s.name,
                    s.key,
                    record.data.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        Ok(())
    }

    /// The values a pipeline's user code receives.
    pub(crate) async fn resolve_secrets(&self, spec: &PipelineSpec) -> Result<ResolvedSecrets> {
        let mut out = ResolvedSecrets::default();
        for s in &spec.transform.secrets {
            let record = self.secret_record(&s.name).await?;
            let decoded = |k: &str, v: &str| {
                hex::decode(v).map_err(|_| {
                    PpsError::FailedPrecondition(format!(
                        "secret '{}' key '{k}' is damaged in the metadata store; create the secret again",
                        s.name
                    ))
                })
            };
            if !s.env_var.is_empty() {
                let v = record.data.get(&s.key).ok_or_else(|| {
                    PpsError::FailedPrecondition(format!(
                        "secret '{}' has no key '{}' any more; `pachctl inspect secret {}` shows its keys",
                        s.name, s.key, s.name
                    ))
                })?;
                let bytes = decoded(&s.key, v)?;
                out.env.push((
                    s.env_var.clone(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                ));
            } else {
                let mut files = Vec::new();
                for (k, v) in &record.data {
                    files.push((k.clone(), decoded(k, v)?));
                }
                out.mounts.push(FileMount {
                    path: s.mount_path.clone(),
                    files,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_plain_file_names() {
        assert!(valid_key("password"));
        assert!(valid_key(".dockerconfigjson"));
        assert!(valid_key("tls.crt"));
        assert!(!valid_key(".."));
        assert!(!valid_key("a/b"));
        assert!(!valid_key(""));
    }
}
