//! Branches: named pointers to head commits, with branch provenance. Creating a
//! branch with provenance, or changing it, starts a commit downstream so that a
//! pipeline (or a user) can compute it from the upstream heads.

use std::collections::{BTreeSet, HashMap};

use crate::commit::add_downstream;
use crate::error::{PfsError, Result};
use crate::guard::Action;
use crate::names::validate_branch_name;
use crate::records::*;
use crate::{MAX_ATTEMPTS, Pfs, now_ns};

/// A branch with its full provenance (every branch upstream of it, not only
/// the direct ones its record names) and subvenance (every branch downstream
/// of it), as Pachyderm's BranchInfo reports them.
#[derive(Debug, Clone)]
pub struct BranchInfo {
    pub record: BranchRecord,
    pub provenance: Vec<BranchName>,
    pub subvenance: Vec<BranchName>,
}

impl BranchInfo {
    /// The branch's info computed from every branch of the cluster.
    fn of(record: &BranchRecord, all: &[BranchRecord]) -> Self {
        let me = BranchName {
            repo: record.repo.clone(),
            name: record.name.clone(),
        };
        let upstream_of = |b: &BranchName| -> Vec<BranchName> {
            all.iter()
                .find(|r| r.repo == b.repo && r.name == b.name)
                .map(|r| r.provenance.clone())
                .unwrap_or_default()
        };
        let downstream_of = |b: &BranchName| -> Vec<BranchName> {
            all.iter()
                .filter(|r| r.provenance.contains(b))
                .map(|r| BranchName {
                    repo: r.repo.clone(),
                    name: r.name.clone(),
                })
                .collect()
        };
        BranchInfo {
            provenance: closure(&me, record.provenance.clone(), upstream_of),
            subvenance: closure(&me, downstream_of(&me), downstream_of),
            record: record.clone(),
        }
    }
}

/// Every branch reachable from `start` through `next`, sorted, without `me`.
fn closure(
    me: &BranchName,
    start: Vec<BranchName>,
    next: impl Fn(&BranchName) -> Vec<BranchName>,
) -> Vec<BranchName> {
    let mut seen = BTreeSet::new();
    let mut stack = start;
    while let Some(b) = stack.pop() {
        if b != *me && seen.insert(b.clone()) {
            stack.extend(next(&b));
        }
    }
    seen.into_iter().collect()
}

impl Pfs {
    pub(crate) async fn branch_records(&self, repo: &str) -> Result<Vec<BranchRecord>> {
        Ok(
            load_all::<BranchRecord>(&*self.meta, &branches_prefix(repo))
                .await?
                .into_iter()
                .map(|(b, _)| b)
                .collect(),
        )
    }

    pub(crate) async fn all_branches(&self) -> Result<Vec<BranchRecord>> {
        Ok(load_all::<BranchRecord>(&*self.meta, BRANCHES)
            .await?
            .into_iter()
            .map(|(b, _)| b)
            .collect())
    }

    pub(crate) async fn all_branches_with_rev(&self) -> Result<Vec<(BranchRecord, u64)>> {
        load_all::<BranchRecord>(&*self.meta, BRANCHES).await
    }

    pub(crate) async fn branch_record(
        &self,
        repo: &str,
        name: &str,
    ) -> Result<Option<(BranchRecord, u64)>> {
        load::<BranchRecord>(&*self.meta, &branch_key(repo, name)).await
    }

    pub async fn inspect_branch(&self, repo: &str, name: &str) -> Result<BranchInfo> {
        self.repo_record(repo).await?;
        let record = self
            .branch_record(repo, name)
            .await?
            .map(|(b, _)| b)
            .ok_or_else(|| PfsError::BranchNotFound {
                repo: repo.into(),
                branch: name.into(),
            })?;
        let all = self.all_branches().await?;
        Ok(BranchInfo::of(&record, &all))
    }

    /// The branches of a repo, newest first (as Pachyderm lists them); those
    /// of releases that did not record creation times come last, by name.
    pub async fn list_branch(&self, repo: &str) -> Result<Vec<BranchInfo>> {
        self.repo_record(repo).await?;
        let all = self.all_branches().await?;
        let mut out: Vec<BranchInfo> = all
            .iter()
            .filter(|b| b.repo == repo)
            .map(|b| BranchInfo::of(b, &all))
            .collect();
        out.sort_by(|a, b| {
            b.record
                .created_ns
                .cmp(&a.record.created_ns)
                .then(a.record.name.cmp(&b.record.name))
        });
        Ok(out)
    }

    /// Creates or updates a branch. `head`: a commit reference in the same repo
    /// (None keeps the current head). `provenance`: replaces the branch's provenance
    /// when `Some`.
    pub async fn create_branch(
        &self,
        repo: &str,
        name: &str,
        head: Option<&str>,
        provenance: Option<Vec<BranchName>>,
    ) -> Result<()> {
        validate_branch_name(name)?;
        self.repo_record(repo).await?;
        let head_id = match head {
            Some(h) if !h.is_empty() => Some(self.resolve_commit(repo, h).await?.0.id),
            _ => None,
        };
        if let Some(prov) = &provenance {
            for p in prov {
                self.repo_record(&p.repo).await?;
                if p.repo == repo {
                    return Err(PfsError::InvalidArgument(format!(
                        "branch {repo}@{name} cannot have provenance on its own repo ({p})"
                    )));
                }
                if self.branch_record(&p.repo, &p.name).await?.is_none() {
                    // Pachyderm creates missing provenance branches empty.
                    Box::pin(self.create_branch(&p.repo, &p.name, None, None)).await?;
                }
            }
        }
        for _ in 0..MAX_ATTEMPTS {
            let branches = self.all_branches_with_rev().await?;
            let key = branch_key(repo, name);
            let existing = branches
                .iter()
                .find(|(b, _)| b.repo == repo && b.name == name);
            let rev = existing.map(|(_, r)| *r).unwrap_or(0);
            let mut record = existing.map(|(b, _)| b.clone()).unwrap_or(BranchRecord {
                repo: repo.into(),
                name: name.into(),
                head: None,
                provenance: vec![],
                created_ns: now_ns(),
            });
            let head_moved = head_id.is_some() && record.head != head_id;
            if head_id.is_some() {
                record.head = head_id.clone();
            }
            let provenance_changed = match &provenance {
                Some(p) => {
                    let new: BTreeSet<_> = p.iter().cloned().collect();
                    let old: BTreeSet<_> = record.provenance.iter().cloned().collect();
                    record.provenance = new.iter().cloned().collect();
                    new != old
                }
                None => false,
            };
            if provenance_changed {
                check_acyclic(&branches, &record)?;
            }
            let mut downstream = Vec::new();
            // Every branch as it will be, this one with its new record.
            let mut all: Vec<(BranchRecord, u64)> = branches
                .iter()
                .filter(|(b, _)| !(b.repo == repo && b.name == name))
                .cloned()
                .collect();
            all.push((record.clone(), rev));
            let me = BranchName {
                repo: repo.into(),
                name: name.into(),
            };
            if provenance_changed && !record.provenance.is_empty() {
                // Compute this branch from the current upstream heads.
                // A head already computed from these upstream heads (its
                // commits restored before the provenance) is kept.
                downstream = self
                    .plan_downstream_with(&all, HashMap::new(), vec![me], true)
                    .await?;
            } else if head_moved && let Some(head) = &head_id {
                // As in Pachyderm 1.9, a head moved by hand is a new commit
                // for what is computed from the branch: its subvenance
                // starts output commits, as a commit on it would.
                let below = Self::direct_subvenance(&all, &me);
                if !below.is_empty() {
                    let heads = HashMap::from([(me, head.clone())]);
                    downstream = self.plan_downstream(&all, heads, below).await?;
                }
            }
            let txn = self.write_txn().await?;
            let txn = self
                .guard_output(txn, repo, Some(name), Action::MoveBranch)
                .await?;
            let txn = if downstream
                .iter()
                .any(|d| d.branch.repo == repo && d.branch.name == name)
            {
                add_downstream(txn, &downstream)
            } else {
                add_downstream(
                    txn.expect(&key, rev).put(&key, encode(&record)),
                    &downstream,
                )
            };
            if self.meta.commit(txn).await?.is_some() {
                return Ok(());
            }
        }
        Err(PfsError::Contention {
            what: format!("branch {repo}@{name}"),
        })
    }

    /// Deletes a branch (its commits stay). Refused while other branches
    /// have it in their provenance, unless `force`, which takes it out of
    /// their provenance so that no record names a branch that is gone.
    pub async fn delete_branch(&self, repo: &str, name: &str, force: bool) -> Result<()> {
        self.repo_record(repo).await?;
        let key = branch_key(repo, name);
        for _ in 0..MAX_ATTEMPTS {
            let branches = self.all_branches_with_rev().await?;
            let Some((_, rev)) = branches
                .iter()
                .find(|(b, _)| b.repo == repo && b.name == name)
            else {
                return Err(PfsError::BranchNotFound {
                    repo: repo.into(),
                    branch: name.into(),
                });
            };
            let me = BranchName {
                repo: repo.into(),
                name: name.into(),
            };
            let dependents: Vec<&(BranchRecord, u64)> = branches
                .iter()
                .filter(|(b, _)| b.provenance.contains(&me))
                .collect();
            if !dependents.is_empty() && !force {
                let names: Vec<String> = dependents
                    .iter()
                    .map(|(b, _)| format!("{}@{}", b.repo, b.name))
                    .collect();
                return Err(PfsError::FailedPrecondition(format!(
                    "branch {repo}@{name} is in the provenance of {}; delete those first or use --force",
                    names.join(", ")
                )));
            }
            let txn = self.write_txn().await?;
            let mut txn = self
                .guard_output(txn, repo, Some(name), Action::DeleteBranch)
                .await?
                .expect(&key, *rev)
                .delete(&key);
            for (b, brev) in dependents {
                let mut b = b.clone();
                b.provenance.retain(|p| *p != me);
                let bkey = branch_key(&b.repo, &b.name);
                txn = txn.expect(&bkey, *brev).put(bkey, encode(&b));
            }
            if self.meta.commit(txn).await?.is_some() {
                return Ok(());
            }
        }
        Err(PfsError::Contention {
            what: format!("branch {repo}@{name}"),
        })
    }
}

/// Refuses a provenance graph with a cycle through `changed`.
fn check_acyclic(branches: &[(BranchRecord, u64)], changed: &BranchRecord) -> Result<()> {
    let me = BranchName {
        repo: changed.repo.clone(),
        name: changed.name.clone(),
    };
    let provenance_of = |b: &BranchName| -> Vec<BranchName> {
        if *b == me {
            return changed.provenance.clone();
        }
        branches
            .iter()
            .find(|(r, _)| r.repo == b.repo && r.name == b.name)
            .map(|(r, _)| r.provenance.clone())
            .unwrap_or_default()
    };
    let mut stack = changed.provenance.clone();
    let mut seen = BTreeSet::new();
    while let Some(b) = stack.pop() {
        if b == me {
            return Err(PfsError::InvalidArgument(format!(
                "provenance of {me} would form a cycle (it reaches itself)"
            )));
        }
        if seen.insert(b.clone()) {
            stack.extend(provenance_of(&b));
        }
    }
    Ok(())
}
