//! Repos: create, inspect, list, update and delete.

use pach_meta::Txn;

use crate::error::{PfsError, Result};
use crate::names::validate_name;
use crate::records::*;
use crate::{MAX_ATTEMPTS, Pfs, now_ns};

/// A repo with what listing it shows.
#[derive(Debug, Clone)]
pub struct RepoInfo {
    pub record: RepoRecord,
    pub branches: Vec<String>,
    /// Size of the head of `master` (Pachyderm's "size of HEAD on master").
    pub size_bytes: u64,
}

impl Pfs {
    pub async fn create_repo(&self, name: &str, description: &str, update: bool) -> Result<()> {
        validate_name("repo", name)?;
        let key = repo_key(name);
        for _ in 0..MAX_ATTEMPTS {
            let existing = load::<RepoRecord>(&*self.meta, &key).await?;
            let (record, rev) = match (existing, update) {
                (Some(_), false) => return Err(PfsError::RepoExists { repo: name.into() }),
                (Some((mut r, rev)), true) => {
                    r.description = description.to_string();
                    (r, rev)
                }
                (None, _) => (
                    RepoRecord {
                        name: name.into(),
                        description: description.into(),
                        created_ns: now_ns(),
                    },
                    0,
                ),
            };
            if self
                .meta
                .commit(Txn::new().expect(&key, rev).put(&key, encode(&record)))
                .await?
                .is_some()
            {
                return Ok(());
            }
        }
        Err(PfsError::Contention {
            what: format!("repo '{name}'"),
        })
    }

    pub(crate) async fn repo_record(&self, name: &str) -> Result<RepoRecord> {
        load::<RepoRecord>(&*self.meta, &repo_key(name))
            .await?
            .map(|(r, _)| r)
            .ok_or_else(|| PfsError::RepoNotFound { repo: name.into() })
    }

    pub async fn inspect_repo(&self, name: &str) -> Result<RepoInfo> {
        let record = self.repo_record(name).await?;
        self.repo_info(record).await
    }

    async fn repo_info(&self, record: RepoRecord) -> Result<RepoInfo> {
        let branches = self.branch_records(&record.name).await?;
        let mut size_bytes = 0;
        if let Some(head) = branches
            .iter()
            .find(|b| b.name == "master")
            .and_then(|b| b.head.clone())
            && let Some((c, _)) =
                load::<CommitRecord>(&*self.meta, &commit_key(&record.name, &head)).await?
        {
            size_bytes = c.size_bytes();
        }
        Ok(RepoInfo {
            branches: branches.into_iter().map(|b| b.name).collect(),
            size_bytes,
            record,
        })
    }

    /// Every repo, newest first (as Pachyderm lists them).
    pub async fn list_repo(&self) -> Result<Vec<RepoInfo>> {
        let mut out = Vec::new();
        for (record, _) in load_all::<RepoRecord>(&*self.meta, REPOS).await? {
            out.push(self.repo_info(record).await?);
        }
        out.sort_by(|a, b| {
            b.record
                .created_ns
                .cmp(&a.record.created_ns)
                .then(a.record.name.cmp(&b.record.name))
        });
        Ok(out)
    }

    /// Deletes a repo with its branches, commits and staged writes. Refused while
    /// another repo's branch has provenance on it, unless `force`.
    pub async fn delete_repo(&self, name: &str, force: bool) -> Result<()> {
        self.repo_record(name).await?;
        if !force {
            let dependents: Vec<String> = self
                .all_branches()
                .await?
                .into_iter()
                .filter(|b| b.repo != name && b.provenance.iter().any(|p| p.repo == name))
                .map(|b| format!("{}@{}", b.repo, b.name))
                .collect();
            if !dependents.is_empty() {
                return Err(PfsError::FailedPrecondition(format!(
                    "repo '{name}' is in the provenance of {}; delete those first or use --force",
                    dependents.join(", ")
                )));
            }
        }
        let txn = Txn::new()
            .delete(repo_key(name))
            .delete_prefix(branches_prefix(name))
            .delete_prefix(commits_prefix(name))
            .delete_prefix(repo_staging_prefix(name));
        self.meta.commit(txn).await?;
        Ok(())
    }

    pub async fn delete_all_repos(&self) -> Result<()> {
        for info in self.list_repo().await? {
            self.delete_repo(&info.record.name, true).await?;
        }
        Ok(())
    }
}
