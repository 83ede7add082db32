//! Repos: create, inspect, list, update and delete (with everything of
//! theirs: branches, commits, staged writes, uploads in parts).

use crate::error::{PfsError, Result};
use crate::guard::Action;
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
            let txn = self.write_txn().await?;
            if self
                .meta
                .commit(txn.expect(&key, rev).put(&key, encode(&record)))
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

    /// Deletes a repo with its branches, commits and staged writes. Refused
    /// while another repo's branch has provenance on it, unless `force`; and
    /// for a pipeline's output repo, unless the pipeline deletes it.
    pub async fn delete_repo(&self, name: &str, force: bool) -> Result<()> {
        for _ in 0..MAX_ATTEMPTS {
            let rev = load::<RepoRecord>(&*self.meta, &repo_key(name))
                .await?
                .map(|(_, rev)| rev)
                .ok_or_else(|| PfsError::RepoNotFound { repo: name.into() })?;
            let txn = self.write_txn().await?;
            let mut txn = self
                .guard_output(txn, name, None, Action::DeleteRepo)
                .await?;
            let mut dependents = Vec::new();
            for (b, brev) in self.all_branches_with_rev().await? {
                if b.repo != name && b.provenance.iter().any(|p| p.repo == name) {
                    dependents.push((b, brev));
                }
            }
            if !dependents.is_empty() && !force {
                let names: Vec<String> = dependents
                    .iter()
                    .map(|(b, _)| format!("{}@{}", b.repo, b.name))
                    .collect();
                return Err(PfsError::FailedPrecondition(format!(
                    "repo '{name}' is in the provenance of {}; delete those first or use --force",
                    names.join(", ")
                )));
            }
            // Forced: the dependents lose their provenance on this repo, and
            // other repos' commits their provenance on its commits, so that
            // no record is left naming a branch or commit that is gone.
            for (mut b, brev) in dependents {
                b.provenance.retain(|p| p.repo != name);
                let key = branch_key(&b.repo, &b.name);
                txn = txn.expect(&key, brev).put(key, encode(&b));
            }
            for (mut c, crev) in load_all::<CommitRecord>(&*self.meta, COMMITS).await? {
                if c.repo != name && c.provenance.iter().any(|p| p.repo == name) {
                    c.provenance.retain(|p| p.repo != name);
                    let key = commit_key(&c.repo, &c.id);
                    txn = txn.expect(&key, crev).put(key, encode(&c));
                }
            }
            let txn = txn
                .expect(repo_key(name), rev)
                .delete(repo_key(name))
                .delete_prefix(branches_prefix(name))
                .delete_prefix(commits_prefix(name))
                .delete_prefix(repo_staging_prefix(name))
                .delete_prefix(crate::uploads::repo_uploads_prefix(name))
                .delete_prefix(crate::uploads::repo_parts_prefix(name))
                .delete_prefix(crate::uploads::repo_completed_prefix(name))
                .delete_prefix(crate::attrs::repo_attrs_prefix(name));
            if self.meta.commit(txn).await?.is_some() {
                return Ok(());
            }
        }
        Err(PfsError::Contention {
            what: format!("repo '{name}'"),
        })
    }

    /// Deletes every repo. Refused, before anything is deleted, while
    /// pipelines own output repos (unless a pipeline asks, which it never
    /// does): `delete pipeline --all` goes first.
    pub async fn delete_all_repos(&self) -> Result<()> {
        let repos = self.list_repo().await?;
        let mut pipelines = Vec::new();
        for info in &repos {
            if let Some((Some(o), _, _)) = self.output_of(&info.record.name).await? {
                pipelines.push(o.pipeline);
            }
        }
        if !pipelines.is_empty() {
            return Err(PfsError::FailedPrecondition(format!(
                "deleting every repo would delete the output repos of pipelines {}; `pachctl delete pipeline --all` deletes the pipelines with their output repos first",
                pipelines.join(", ")
            )));
        }
        for info in repos {
            self.delete_repo(&info.record.name, true).await?;
        }
        Ok(())
    }
}
