//! Writes planned from what their target holds: conditional writes (S3's
//! `If-Match` / `If-None-Match` on a PUT, conditional deletes) and deletes
//! that must see the files they keep.
//!
//! The plan reads the target (the branch's head, or the open commit the
//! write goes into) and returns the changes to make; the write's one
//! metadata transaction then compares the record the plan read (the
//! branch's, or the open commit's, which every staged write rewrites). If
//! another write landed in between, nothing is written and the plan is made
//! again from the new contents. So of two writers whose plans hold only
//! against the same contents, exactly one writes: the other's plan is made
//! again, sees the first's write, and refuses.

use std::future::Future;

use pach_storage::{Change, IndexReader};

use crate::attrs::AttrsWrite;
use crate::commit::WriteTarget;
use crate::error::{PfsError, Result};
use crate::records::CommitRecord;
use crate::{MAX_ATTEMPTS, Pfs};

/// What a plan sees of its target: the commit the write builds on (the
/// branch's head, or the open commit it goes into; None for a branch
/// without commits) and, on demand, that commit's files.
pub struct WriteView {
    pfs: Pfs,
    commit: Option<CommitRecord>,
}

impl WriteView {
    /// The commit the write builds on or goes into.
    pub fn commit(&self) -> Option<&CommitRecord> {
        self.commit.as_ref()
    }

    /// That commit's files as they are now (an open commit's with its
    /// staged writes); None for a branch without commits.
    pub async fn index(&self) -> Result<Option<IndexReader>> {
        match &self.commit {
            Some(c) => Ok(Some(self.pfs.commit_index(c).await?)),
            None => Ok(None),
        }
    }
}

impl Pfs {
    /// Writes to `repo@reference` (a branch or an open commit) the changes
    /// `plan` makes from the target's current contents, atomically with
    /// what the plan saw (see the module docs), and `attrs` (file
    /// attributes, [`crate::attrs`]) in the same transaction. The plan returns the
    /// changes and an outcome of its own; with no changes nothing is
    /// written. Returns the commit written to (None when nothing was) and
    /// the outcome of the plan that held.
    pub async fn write_planned<T, F, Fut>(
        &self,
        repo: &str,
        reference: &str,
        attrs: &[AttrsWrite],
        mut plan: F,
    ) -> Result<(Option<String>, T)>
    where
        F: FnMut(WriteView) -> Fut,
        Fut: Future<Output = Result<(Vec<Change>, T)>>,
    {
        self.repo_record(repo).await?;
        let records = attrs
            .iter()
            .map(|a| a.record(repo))
            .collect::<Result<Vec<_>>>()?;
        for _ in 0..MAX_ATTEMPTS {
            let target = self.write_target(repo, reference).await?;
            let commit = match &target {
                WriteTarget::Open(c, _) => Some(c.clone()),
                WriteTarget::Branch((branch, _, _)) => {
                    match branch.as_ref().and_then(|b| b.head.as_ref()) {
                        Some(head) => Some(
                            self.commit_record(repo, head)
                                .await?
                                .ok_or_else(|| PfsError::CommitNotFound {
                                    repo: repo.into(),
                                    commit: head.clone(),
                                })?
                                .0,
                        ),
                        None => None,
                    }
                }
            };
            let view = WriteView {
                pfs: self.clone(),
                commit,
            };
            let (changes, outcome) = plan(view).await?;
            if changes.is_empty() {
                return Ok((None, outcome));
            }
            let written = match target {
                WriteTarget::Open(commit, rev) => {
                    let key = self.content.write_changes(&changes).await?;
                    self.stage(commit, rev, key, changes.len() as u64, &records)
                        .await?
                }
                WriteTarget::Branch(branch) => {
                    self.auto_commit(repo, branch, &changes, "", &records)
                        .await?
                }
            };
            if let Some(id) = written {
                return Ok((Some(id), outcome));
            }
        }
        Err(PfsError::Contention {
            what: format!("{repo}@{reference}"),
        })
    }
}
