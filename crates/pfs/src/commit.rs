//! Commits: resolution of references (`id`, `branch`, `branch^`, `branch~2`),
//! start / finish, writes (auto commits on branches, staged writes into open
//! commits), provenance propagation to downstream branches, listing, waiting,
//! subscribing, flushing and deletion.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use pach_meta::Txn;
use pach_storage::{Change, IndexReader, IndexSummary};
use tokio::sync::mpsc;

use crate::error::{PfsError, Result};
use crate::guard::Action;
use crate::names::{is_commit_id, validate_branch_name};
use crate::records::*;
use crate::{MAX_ATTEMPTS, Pfs, new_commit_id, now_ns};

/// How far a commit must have come before it is returned (Pachyderm's
/// `CommitState`, the `block_state` of InspectCommit and the `state` of
/// SubscribeCommit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitState {
    /// Started: returned at once.
    #[default]
    Started,
    /// Every commit in its provenance is finished.
    Ready,
    /// Finished.
    Finished,
}

/// A commit started downstream because an upstream head moved.
#[derive(Debug, Clone)]
pub(crate) struct Downstream {
    pub branch: BranchRecord,
    pub branch_rev: u64,
    pub commit: CommitRecord,
}

/// Adds the records of planned downstream commits to a transaction.
pub(crate) fn add_downstream(mut txn: Txn, downstream: &[Downstream]) -> Txn {
    for d in downstream {
        let bkey = branch_key(&d.branch.repo, &d.branch.name);
        let ckey = commit_key(&d.commit.repo, &d.commit.id);
        txn = txn
            .expect(&bkey, d.branch_rev)
            .put(bkey, encode(&d.branch))
            .expect(&ckey, 0)
            .put(ckey, encode(&d.commit));
    }
    txn
}

/// Splits `master~2^` into (`master`, 3).
fn split_ancestry(reference: &str) -> Result<(&str, usize)> {
    let cut = reference.find(['^', '~']).unwrap_or(reference.len());
    let (base, mut rest) = reference.split_at(cut);
    let mut depth = 0usize;
    while !rest.is_empty() {
        let bad = || {
            PfsError::InvalidArgument(format!(
                "invalid commit reference '{reference}': use BRANCH, COMMIT, BRANCH^ (parent) or BRANCH~N (N-th ancestor)"
            ))
        };
        if let Some(r) = rest.strip_prefix('^') {
            depth += 1;
            rest = r;
        } else if let Some(r) = rest.strip_prefix('~') {
            let digits = r.chars().take_while(|c| c.is_ascii_digit()).count();
            let n = if digits == 0 {
                1
            } else {
                r[..digits].parse::<usize>().map_err(|_| bad())?
            };
            depth += n;
            rest = &r[digits..];
        } else {
            return Err(bad());
        }
    }
    if base.is_empty() {
        return Err(PfsError::InvalidArgument(format!(
            "invalid commit reference '{reference}': a branch or commit id must come first"
        )));
    }
    Ok((base, depth))
}

impl Pfs {
    pub(crate) async fn commit_record(
        &self,
        repo: &str,
        id: &str,
    ) -> Result<Option<(CommitRecord, u64)>> {
        load::<CommitRecord>(&*self.meta, &commit_key(repo, id)).await
    }

    /// Resolves a commit reference within a repo.
    pub async fn resolve_commit(&self, repo: &str, reference: &str) -> Result<(CommitRecord, u64)> {
        self.repo_record(repo).await?;
        let (base, depth) = split_ancestry(reference)?;
        let not_found = || PfsError::CommitNotFound {
            repo: repo.into(),
            commit: reference.into(),
        };
        // A reference of the form of a commit id names that commit, as in
        // Pachyderm 1.x, even if a branch of that name exists (one created
        // before such names were refused).
        let commit_named = is_commit_id(base) && self.commit_record(repo, base).await?.is_some();
        let branch = match commit_named {
            true => None,
            false => self.branch_record(repo, base).await?,
        };
        let mut id = match branch {
            Some((b, _)) => b.head.ok_or_else(|| PfsError::NoHead {
                repo: repo.into(),
                branch: base.into(),
            })?,
            None => base.to_string(),
        };
        for _ in 0..depth {
            let (c, _) = self.commit_record(repo, &id).await?.ok_or_else(not_found)?;
            id = c.parent.ok_or_else(not_found)?;
        }
        self.commit_record(repo, &id).await?.ok_or_else(not_found)
    }

    /// Plans the open commits that `start` branches (and everything downstream of
    /// them) get when upstream heads move. `heads` overrides branch heads with
    /// commits being created in the same transaction.
    pub(crate) async fn plan_downstream(
        &self,
        branches: &[(BranchRecord, u64)],
        heads: HashMap<BranchName, String>,
        start: Vec<BranchName>,
    ) -> Result<Vec<Downstream>> {
        self.plan_downstream_with(branches, heads, start, false)
            .await
    }

    /// [`Pfs::plan_downstream`]; with `keep_computed`, a branch whose head
    /// was already computed from exactly the upstream heads (its provenance
    /// is the planned one) keeps its head and gets no new commit — a branch
    /// given its provenance after its commits were restored.
    pub(crate) async fn plan_downstream_with(
        &self,
        branches: &[(BranchRecord, u64)],
        mut heads: HashMap<BranchName, String>,
        start: Vec<BranchName>,
        keep_computed: bool,
    ) -> Result<Vec<Downstream>> {
        let name_of = |b: &BranchRecord| BranchName {
            repo: b.repo.clone(),
            name: b.name.clone(),
        };
        // Everything downstream of the start set.
        let mut affected: BTreeSet<BranchName> = start.into_iter().collect();
        loop {
            let before = affected.len();
            for (b, _) in branches {
                if b.provenance.iter().any(|p| affected.contains(p)) {
                    affected.insert(name_of(b));
                }
            }
            if affected.len() == before {
                break;
            }
        }
        // Provenance order: a branch after every affected branch it depends on.
        let mut order = Vec::new();
        let mut done: HashSet<BranchName> = HashSet::new();
        while order.len() < affected.len() {
            let ready: Vec<BranchName> = affected
                .iter()
                .filter(|b| !done.contains(*b))
                .filter(|b| {
                    let rec = branches.iter().find(|(r, _)| name_of(r) == **b);
                    rec.map(|(r, _)| {
                        r.provenance
                            .iter()
                            .all(|p| !affected.contains(p) || done.contains(p))
                    })
                    .unwrap_or(true)
                })
                .cloned()
                .collect();
            if ready.is_empty() {
                return Err(PfsError::FailedPrecondition(
                    "branch provenance has a cycle".into(),
                ));
            }
            for b in ready {
                done.insert(b.clone());
                order.push(b);
            }
        }
        let mut created: HashMap<String, CommitRecord> = HashMap::new();
        let mut out = Vec::new();
        for name in order {
            let Some((record, rev)) = branches.iter().find(|(r, _)| name_of(r) == name) else {
                continue;
            };
            let mut provenance = BTreeSet::new();
            for p in &record.provenance {
                let head = heads.get(p).cloned().or_else(|| {
                    branches
                        .iter()
                        .find(|(r, _)| name_of(r) == *p)
                        .and_then(|(r, _)| r.head.clone())
                });
                let Some(head) = head else { continue };
                let upstream = match created.get(&head) {
                    Some(c) => Some(c.clone()),
                    None => self.commit_record(&p.repo, &head).await?.map(|(c, _)| c),
                };
                provenance.insert(CommitName {
                    repo: p.repo.clone(),
                    id: head,
                });
                if let Some(up) = upstream {
                    provenance.extend(up.provenance.iter().cloned());
                }
            }
            if provenance.is_empty() {
                continue;
            }
            let parent = match &record.head {
                Some(h) => self.commit_record(&record.repo, h).await?.map(|(c, _)| c),
                None => None,
            };
            if keep_computed
                && let Some(p) = &parent
                && p.provenance.iter().cloned().collect::<BTreeSet<_>>() == provenance
            {
                continue;
            }
            let commit = CommitRecord {
                repo: record.repo.clone(),
                id: new_commit_id(),
                branch: Some(record.name.clone()),
                parent: parent.as_ref().map(|p| p.id.clone()),
                started_ns: now_ns(),
                finished_ns: None,
                description: String::new(),
                provenance: provenance.into_iter().collect(),
                origin: Origin::Auto,
                base: parent
                    .as_ref()
                    .and_then(|p| p.index.clone().or_else(|| p.base.clone())),
                index: None,
                writes: 0,
            };
            let mut branch = record.clone();
            branch.head = Some(commit.id.clone());
            heads.insert(name.clone(), commit.id.clone());
            created.insert(commit.id.clone(), commit.clone());
            out.push(Downstream {
                branch,
                branch_rev: *rev,
                commit,
            });
        }
        Ok(out)
    }

    pub(crate) fn direct_subvenance(
        branches: &[(BranchRecord, u64)],
        of: &BranchName,
    ) -> Vec<BranchName> {
        branches
            .iter()
            .filter(|(b, _)| b.provenance.contains(of))
            .map(|(b, _)| BranchName {
                repo: b.repo.clone(),
                name: b.name.clone(),
            })
            .collect()
    }

    /// Starts an open commit on `branch` (created if missing). `parent`, when
    /// given, is a commit reference that becomes the parent instead of the head.
    pub async fn start_commit(
        &self,
        repo: &str,
        branch: Option<&str>,
        parent: Option<&str>,
        description: &str,
    ) -> Result<CommitRecord> {
        self.start_commit_with_id(None, repo, branch, parent, description, &[])
            .await
    }

    /// [`Pfs::start_commit`] with extra provenance: commits (`(repo, reference)`)
    /// the new commit records as computed from, besides its branch's upstream heads.
    /// An extra commit on one of those upstream branches stands in for its head
    /// (a commit is computed from one commit of a branch): Pachyderm's `run
    /// pipeline` on older inputs.
    pub async fn start_commit_with(
        &self,
        repo: &str,
        branch: Option<&str>,
        parent: Option<&str>,
        description: &str,
        extra_provenance: &[(String, String)],
    ) -> Result<CommitRecord> {
        self.start_commit_with_id(None, repo, branch, parent, description, extra_provenance)
            .await
    }

    /// [`Pfs::start_commit_with`] with the id the commit gets, when it was
    /// chosen earlier (a transaction runs its requests once to answer them
    /// and again when it is finished, and its commits keep the ids first given).
    pub async fn start_commit_with_id(
        &self,
        id: Option<&str>,
        repo: &str,
        branch: Option<&str>,
        parent: Option<&str>,
        description: &str,
        extra_provenance: &[(String, String)],
    ) -> Result<CommitRecord> {
        self.start_commit_from(
            id,
            repo,
            branch,
            parent,
            description,
            extra_provenance,
            Origin::User,
        )
        .await
    }

    /// [`Pfs::start_commit_with_id`] recording the commit's origin: a
    /// restore rebuilds a pipeline's output commits as [`Origin::Auto`], as
    /// they were made.
    #[allow(clippy::too_many_arguments)]
    pub async fn start_commit_from(
        &self,
        id: Option<&str>,
        repo: &str,
        branch: Option<&str>,
        parent: Option<&str>,
        description: &str,
        extra_provenance: &[(String, String)],
        origin: Origin,
    ) -> Result<CommitRecord> {
        self.repo_record(repo).await?;
        let mut extra = Vec::new();
        for (r, reference) in extra_provenance {
            let (c, _) = self.resolve_commit(r, reference).await?;
            extra.push(c);
        }
        if let Some(b) = branch {
            validate_branch_name(b)?;
            // Early, so that the refusal is what a client reads (the
            // transaction checks again).
            self.guard_output(self.write_txn().await?, repo, Some(b), Action::StartCommit)
                .await?;
        }
        let explicit_parent = match parent {
            Some(p) if !p.is_empty() => Some(self.resolve_commit(repo, p).await?.0),
            _ => None,
        };
        for _ in 0..MAX_ATTEMPTS {
            let branches = self.all_branches_with_rev().await?;
            let existing =
                branch.and_then(|b| branches.iter().find(|(r, _)| r.repo == repo && r.name == b));
            let head = match (&explicit_parent, existing.and_then(|(b, _)| b.head.clone())) {
                (Some(p), _) => Some(p.clone()),
                (None, Some(h)) => self.commit_record(repo, &h).await?.map(|(c, _)| c),
                (None, None) => None,
            };
            if let (Some(h), Some(b), None) = (&head, branch, &explicit_parent)
                && !h.is_finished()
            {
                return Err(PfsError::CommitOpen {
                    repo: repo.into(),
                    branch: b.into(),
                    commit: h.id.clone(),
                });
            }
            let (branch_record, branch_rev) = match (branch, existing) {
                (Some(_), Some((b, r))) => (Some(b.clone()), *r),
                (Some(b), None) => (
                    Some(BranchRecord {
                        repo: repo.into(),
                        name: b.into(),
                        head: None,
                        provenance: vec![],
                        created_ns: now_ns(),
                    }),
                    0,
                ),
                (None, _) => (None, 0),
            };
            let mut provenance = Vec::new();
            let stands_in = |p: &BranchName| {
                extra
                    .iter()
                    .any(|c| c.repo == p.repo && c.branch.as_deref() == Some(p.name.as_str()))
            };
            if let Some(b) = &branch_record {
                for p in &b.provenance {
                    if !stands_in(p)
                        && let Some((pb, _)) = branches
                            .iter()
                            .find(|(r, _)| r.repo == p.repo && r.name == p.name)
                        && let Some(h) = &pb.head
                    {
                        provenance.push(CommitName {
                            repo: p.repo.clone(),
                            id: h.clone(),
                        });
                    }
                }
            }
            for c in &extra {
                let p = CommitName {
                    repo: c.repo.clone(),
                    id: c.id.clone(),
                };
                if !provenance.contains(&p) {
                    provenance.push(p);
                }
            }
            let commit = CommitRecord {
                repo: repo.into(),
                id: id.map_or_else(new_commit_id, str::to_string),
                branch: branch.map(str::to_string),
                parent: head.as_ref().map(|h| h.id.clone()),
                started_ns: now_ns(),
                finished_ns: None,
                description: description.into(),
                provenance,
                origin,
                base: head
                    .as_ref()
                    .and_then(|h| h.index.clone().or_else(|| h.base.clone())),
                index: None,
                writes: 0,
            };
            let ckey = commit_key(repo, &commit.id);
            let mut txn = self.write_txn().await?;
            if let Some(b) = branch {
                txn = self
                    .guard_output(txn, repo, Some(b), Action::StartCommit)
                    .await?;
            }
            txn = txn.expect(&ckey, 0).put(&ckey, encode(&commit));
            if let Some(mut b) = branch_record {
                let me = BranchName {
                    repo: b.repo.clone(),
                    name: b.name.clone(),
                };
                b.head = Some(commit.id.clone());
                let key = branch_key(repo, &b.name);
                txn = txn.expect(&key, branch_rev).put(&key, encode(&b));
                let heads = HashMap::from([(me.clone(), commit.id.clone())]);
                let downstream = self
                    .plan_downstream(&branches, heads, Self::direct_subvenance(&branches, &me))
                    .await?;
                txn = add_downstream(txn, &downstream);
            }
            if self.meta.commit(txn).await?.is_some() {
                return Ok(commit);
            }
        }
        Err(PfsError::Contention {
            what: format!("repo '{repo}'"),
        })
    }

    /// Applies file changes to `reference`: an open commit gets them staged; a
    /// branch whose head is finished (or that has no head) gets a new finished
    /// commit holding exactly these changes. Content must already be stored.
    /// Returns the id of the commit that holds the changes.
    pub async fn write_changes(
        &self,
        repo: &str,
        reference: &str,
        changes: Vec<Change>,
    ) -> Result<String> {
        self.repo_record(repo).await?;
        let mut staged_changes = None;
        for _ in 0..MAX_ATTEMPTS {
            let target = self.write_target(repo, reference).await?;
            let outcome = match target {
                WriteTarget::Open(commit, rev) => {
                    let key = match &staged_changes {
                        Some(k) => *k,
                        None => {
                            let k = self.content.write_changes(&changes).await?;
                            staged_changes = Some(k);
                            k
                        }
                    };
                    self.stage(commit, rev, key, changes.len() as u64, &[])
                        .await?
                }
                WriteTarget::Branch(branch) => {
                    self.auto_commit(repo, branch, &changes, "", &[]).await?
                }
            };
            if let Some(id) = outcome {
                return Ok(id);
            }
        }
        Err(PfsError::Contention {
            what: format!("{repo}@{reference}"),
        })
    }

    /// Writes each change set as its own finished commit of `branch`, in
    /// order, each the parent of the next — as many [`Pfs::write_changes`]
    /// would, but with one metadata transaction (one durable write) for all
    /// of them, so a writer with many small commits waiting (a spout) pays
    /// the store's flush once. When the branch's head is open (the sets are
    /// staged into it, one by one) or other branches depend on it (each
    /// commit gets downstream commits of its own), the sets are written one
    /// by one. Content must already be stored. Returns the commits' ids.
    pub async fn write_commits(
        &self,
        repo: &str,
        branch: &str,
        sets: Vec<Vec<Change>>,
    ) -> Result<Vec<String>> {
        if sets.len() > 1 {
            self.repo_record(repo).await?;
            let slices: Vec<&[Change]> = sets.iter().map(Vec::as_slice).collect();
            for _ in 0..MAX_ATTEMPTS {
                let WriteTarget::Branch(target) = self.write_target(repo, branch).await? else {
                    break;
                };
                match self.auto_commits(repo, target, &slices, "", &[]).await? {
                    Batch::Written(ids) => return Ok(ids),
                    Batch::Downstream => break,
                    Batch::Raced => {}
                }
            }
        }
        let mut ids = Vec::with_capacity(sets.len());
        for changes in sets {
            ids.push(self.write_changes(repo, branch, changes).await?);
        }
        Ok(ids)
    }

    pub(crate) async fn write_target(&self, repo: &str, reference: &str) -> Result<WriteTarget> {
        // As in `resolve_commit`: the form of a commit id names a commit.
        let branch = match is_commit_id(reference) {
            true => None,
            false => self.branch_record(repo, reference).await?,
        };
        if let Some((b, rev)) = branch {
            if let Some(h) = &b.head
                && let Some((c, crev)) = self.commit_record(repo, h).await?
                && !c.is_finished()
            {
                return Ok(WriteTarget::Open(c, crev));
            }
            return Ok(WriteTarget::Branch((Some(b), rev, reference.to_string())));
        }
        if let Some((c, rev)) = self.commit_record(repo, reference).await? {
            if c.is_finished() {
                return Err(PfsError::CommitFinished {
                    repo: repo.into(),
                    commit: c.id,
                });
            }
            return Ok(WriteTarget::Open(c, rev));
        }
        if reference.contains(['^', '~']) {
            let (c, _) = self.resolve_commit(repo, reference).await?;
            return Err(PfsError::CommitFinished {
                repo: repo.into(),
                commit: c.id,
            });
        }
        validate_branch_name(reference)?;
        Ok(WriteTarget::Branch((None, 0, reference.to_string())))
    }

    pub(crate) async fn stage(
        &self,
        mut commit: CommitRecord,
        rev: u64,
        changes: pach_storage::ContentHash,
        count: u64,
        records: &[RecordOp],
    ) -> Result<Option<String>> {
        let order = format!("{:020}-{}", now_ns(), new_commit_id());
        let skey = format!("{}{}", staging_prefix(&commit.repo, &commit.id), order);
        commit.writes += 1;
        let ckey = commit_key(&commit.repo, &commit.id);
        let txn = self.write_txn().await?;
        let txn = match &commit.branch {
            Some(b) => {
                self.guard_output(txn, &commit.repo, Some(b), Action::Write)
                    .await?
            }
            None => txn,
        };
        let txn = txn
            .expect(&ckey, rev)
            .put(skey, encode(&StagingRecord { changes, count }))
            .put(&ckey, encode(&commit));
        let txn = with_records(txn, records);
        Ok(self.meta.commit(txn).await?.map(|_| commit.id))
    }

    /// Writes `changes` as one new finished commit on `branch` (created if
    /// missing) with `description`, only while the branch's head is still
    /// `head` (`None`: the branch has no head or does not exist yet). The
    /// head is compared in the transaction that writes the commit, so of two
    /// writers that read the same head only one adds a commit; the other
    /// gets `Ok(None)`. An open commit at the head is refused: the new
    /// commit would land in it instead of after it.
    pub async fn write_commit_after(
        &self,
        repo: &str,
        branch: &str,
        head: Option<&str>,
        changes: Vec<Change>,
        description: &str,
    ) -> Result<Option<String>> {
        self.repo_record(repo).await?;
        validate_branch_name(branch)?;
        for _ in 0..MAX_ATTEMPTS {
            let found = self.branch_record(repo, branch).await?;
            let current = found.as_ref().and_then(|(b, _)| b.head.clone());
            if current.as_deref() != head {
                return Ok(None);
            }
            if let Some(h) = &current
                && let Some((c, _)) = self.commit_record(repo, h).await?
                && !c.is_finished()
            {
                return Err(PfsError::FailedPrecondition(format!(
                    "{repo}@{branch} has an open commit {h}; finish it (`pachctl finish commit {repo}@{h}`) or delete it first"
                )));
            }
            let (record, rev) = match found {
                Some((b, rev)) => (Some(b), rev),
                None => (None, 0),
            };
            let target = (record, rev, branch.to_string());
            if let Some(id) = self
                .auto_commit(repo, target, &changes, description, &[])
                .await?
            {
                return Ok(Some(id));
            }
        }
        Err(PfsError::Contention {
            what: format!("{repo}@{branch}"),
        })
    }

    pub(crate) async fn auto_commit(
        &self,
        repo: &str,
        target: BranchTarget,
        changes: &[Change],
        description: &str,
        records: &[RecordOp],
    ) -> Result<Option<String>> {
        Ok(
            match self
                .auto_commits(repo, target, &[changes], description, records)
                .await?
            {
                Batch::Written(mut ids) => ids.pop(),
                Batch::Raced | Batch::Downstream => None,
            },
        )
    }

    /// Writes each change set in `sets`, in order, as a new finished commit
    /// on the branch (created if missing), each the parent of the next, in
    /// one metadata transaction: all of them or none, for one durable write.
    /// Downstream commits are planned for a single set only; several sets
    /// on a branch others depend on give [`Batch::Downstream`] (each commit
    /// must get downstream commits of its own), having written nothing.
    async fn auto_commits(
        &self,
        repo: &str,
        (branch, branch_rev, name): BranchTarget,
        sets: &[&[Change]],
        description: &str,
        records: &[RecordOp],
    ) -> Result<Batch> {
        // Guards first: a refused write costs no index write.
        let txn = self.write_txn().await?;
        let mut txn = self
            .guard_output(txn, repo, Some(&name), Action::Write)
            .await?;
        let branches = self.all_branches_with_rev().await?;
        let me = BranchName {
            repo: repo.into(),
            name: name.clone(),
        };
        let subvenance = Self::direct_subvenance(&branches, &me);
        if sets.len() > 1 && !subvenance.is_empty() {
            return Ok(Batch::Downstream);
        }
        let mut parent = match branch.as_ref().and_then(|b| b.head.clone()) {
            Some(h) => self.commit_record(repo, &h).await?.map(|(c, _)| c),
            None => None,
        };
        let mut branch = branch.unwrap_or(BranchRecord {
            repo: repo.into(),
            name: name.clone(),
            head: None,
            provenance: vec![],
            created_ns: now_ns(),
        });
        let mut provenance = Vec::new();
        for p in &branch.provenance {
            if let Some((pb, _)) = branches
                .iter()
                .find(|(r, _)| r.repo == p.repo && r.name == p.name)
                && let Some(h) = &pb.head
            {
                provenance.push(CommitName {
                    repo: p.repo.clone(),
                    id: h.clone(),
                });
            }
        }
        let mut ids = Vec::with_capacity(sets.len());
        let mut last_ns = 0;
        for changes in sets {
            let base = parent
                .as_ref()
                .and_then(|p| p.index.as_ref().map(|i| i.root));
            let index = self
                .content
                .write_index(base.as_ref(), changes.to_vec())
                .await?;
            // Commits of one batch keep their order in time as well.
            let now = now_ns().max(last_ns + 1);
            last_ns = now;
            let commit = CommitRecord {
                repo: repo.into(),
                id: new_commit_id(),
                branch: Some(name.clone()),
                parent: parent.as_ref().map(|p| p.id.clone()),
                started_ns: now,
                finished_ns: Some(now),
                description: description.to_string(),
                provenance: provenance.clone(),
                origin: Origin::User,
                base: parent.as_ref().and_then(|p| p.index.clone()),
                index: Some(index),
                writes: 1,
            };
            let ckey = commit_key(repo, &commit.id);
            txn = txn.expect(&ckey, 0).put(&ckey, encode(&commit));
            ids.push(commit.id.clone());
            parent = Some(commit);
        }
        branch.head = ids.last().cloned();
        let bkey = branch_key(repo, &name);
        txn = txn.expect(&bkey, branch_rev).put(&bkey, encode(&branch));
        if let Some(head) = &branch.head {
            let heads = HashMap::from([(me, head.clone())]);
            let downstream = self.plan_downstream(&branches, heads, subvenance).await?;
            txn = add_downstream(txn, &downstream);
        }
        let txn = with_records(txn, records);
        Ok(match self.meta.commit(txn).await? {
            Some(_) => Batch::Written(ids),
            None => Batch::Raced,
        })
    }

    /// The changes staged into an open commit, in the order they were written.
    async fn staged_changes(&self, commit: &CommitRecord) -> Result<Vec<Change>> {
        let mut changes = Vec::new();
        for (s, _) in
            load_all::<StagingRecord>(&*self.meta, &staging_prefix(&commit.repo, &commit.id))
                .await?
        {
            changes.extend(self.content.read_changes(&s.changes).await?);
        }
        Ok(changes)
    }

    /// The file index of a commit; for an open commit, its base with the staged
    /// changes applied.
    pub(crate) async fn commit_index(&self, commit: &CommitRecord) -> Result<IndexReader> {
        if let Some(i) = &commit.index {
            return Ok(self.content.open_index(Some(&i.root)).await?);
        }
        let base = commit.base.as_ref().map(|b| b.root);
        let changes = self.staged_changes(commit).await?;
        if changes.is_empty() {
            return Ok(self.content.open_index(base.as_ref()).await?);
        }
        let summary = self.content.write_index(base.as_ref(), changes).await?;
        Ok(self.content.open_index(Some(&summary.root)).await?)
    }

    pub async fn finish_commit(
        &self,
        repo: &str,
        reference: &str,
        description: Option<&str>,
    ) -> Result<CommitRecord> {
        self.finish_commit_with(repo, reference, description, false)
            .await
    }

    /// Finishes an open commit; with `empty`, it is finished with no files
    /// at all (what was written into it and what it started from are
    /// dropped), as Pachyderm's `FinishCommit` with `empty`.
    pub async fn finish_commit_with(
        &self,
        repo: &str,
        reference: &str,
        description: Option<&str>,
        empty: bool,
    ) -> Result<CommitRecord> {
        for _ in 0..MAX_ATTEMPTS {
            let (mut commit, rev) = self.resolve_commit(repo, reference).await?;
            if commit.is_finished() {
                return Err(PfsError::CommitFinished {
                    repo: repo.into(),
                    commit: commit.id,
                });
            }
            // Guards first: a refused finish costs no index write.
            let txn = self.write_txn().await?;
            let txn = match &commit.branch {
                Some(b) => {
                    self.guard_output(txn, repo, Some(b), Action::FinishCommit)
                        .await?
                }
                None => txn,
            };
            let index: IndexSummary = if empty {
                self.content.write_index(None, Vec::new()).await?
            } else {
                let changes = self.staged_changes(&commit).await?;
                let base = commit.base.as_ref().map(|b| b.root);
                self.content.write_index(base.as_ref(), changes).await?
            };
            commit.index = Some(index);
            commit.finished_ns = Some(now_ns());
            if let Some(d) = description.filter(|d| !d.is_empty()) {
                commit.description = d.to_string();
            }
            let ckey = commit_key(repo, &commit.id);
            let txn = txn
                .expect(&ckey, rev)
                .put(&ckey, encode(&commit))
                .delete_prefix(staging_prefix(repo, &commit.id));
            if self.meta.commit(txn).await?.is_some() {
                return Ok(commit);
            }
        }
        Err(PfsError::Contention {
            what: format!("{repo}@{reference}"),
        })
    }

    /// The commit. With `wait`, blocks until it is finished.
    pub async fn inspect_commit(
        &self,
        repo: &str,
        reference: &str,
        wait: bool,
    ) -> Result<CommitRecord> {
        let state = if wait {
            CommitState::Finished
        } else {
            CommitState::Started
        };
        self.inspect_commit_state(repo, reference, state).await
    }

    /// The commit once it has reached `state` (Pachyderm's `block_state`):
    /// started (at once), ready (every commit in its provenance finished)
    /// or finished.
    pub async fn inspect_commit_state(
        &self,
        repo: &str,
        reference: &str,
        state: CommitState,
    ) -> Result<CommitRecord> {
        let (commit, _) = self.resolve_commit(repo, reference).await?;
        self.wait_state(commit, state).await
    }

    async fn wait_state(&self, commit: CommitRecord, state: CommitState) -> Result<CommitRecord> {
        match state {
            CommitState::Started => Ok(commit),
            CommitState::Ready => {
                for p in &commit.provenance {
                    if let Some((c, _)) = self.commit_record(&p.repo, &p.id).await? {
                        Box::pin(self.wait_finished(c)).await?;
                    }
                }
                Ok(commit)
            }
            CommitState::Finished if commit.is_finished() => Ok(commit),
            CommitState::Finished => self.wait_finished(commit).await,
        }
    }

    async fn wait_finished(&self, commit: CommitRecord) -> Result<CommitRecord> {
        let key = commit_key(&commit.repo, &commit.id);
        let mut watch = self.meta.watch(&key).await?;
        loop {
            match self.commit_record(&commit.repo, &commit.id).await? {
                Some((c, _)) if c.is_finished() => return Ok(c),
                Some(_) => {}
                None => {
                    return Err(PfsError::CommitDeleted {
                        repo: commit.repo.clone(),
                        commit: commit.id.clone(),
                    });
                }
            }
            // Wake on any change of the record; the periodic re-read covers a
            // watcher that lagged.
            let _ = tokio::time::timeout(Duration::from_secs(5), watch.next()).await;
        }
    }

    /// Commits of a repo, as Pachyderm's `ListCommit`: with `to`, the
    /// ancestry of `to` (newest first) back to, not including, `from`; with
    /// neither, every commit of the repo newest first (`reverse`: oldest
    /// first). `number` 0 = all.
    pub async fn list_commit(
        &self,
        repo: &str,
        from: Option<&str>,
        to: Option<&str>,
        number: usize,
        reverse: bool,
    ) -> Result<Vec<CommitRecord>> {
        self.repo_record(repo).await?;
        let limit = if number == 0 { usize::MAX } else { number };
        let from = match from.filter(|f| !f.is_empty()) {
            Some(f) => Some(self.resolve_commit(repo, f).await?.0.id),
            None => None,
        };
        let to = to.filter(|t| !t.is_empty());
        let mut out = Vec::new();
        match (to, from) {
            (None, Some(_)) => {
                return Err(PfsError::InvalidArgument(
                    "listing commits from a commit needs a commit or branch to list up to \
                     (`to`, the REPO@BRANCH of `pachctl list commit`)"
                        .into(),
                ));
            }
            (Some(_), _) if reverse => {
                return Err(PfsError::InvalidArgument(
                    "commits listed along a branch cannot be reversed; list the whole repo to reverse"
                        .into(),
                ));
            }
            (Some(t), from) => {
                let mut c = match self.resolve_commit(repo, t).await {
                    Ok((c, _)) => c,
                    // A branch with no head has no history: nothing to list.
                    Err(PfsError::NoHead { .. }) => return Ok(out),
                    Err(e) => return Err(e),
                };
                loop {
                    if from.as_deref() == Some(c.id.as_str()) || out.len() >= limit {
                        break;
                    }
                    let parent = c.parent.clone();
                    out.push(c);
                    match parent {
                        Some(p) => match self.commit_record(repo, &p).await? {
                            Some((pc, _)) => c = pc,
                            None => break,
                        },
                        None => break,
                    }
                }
            }
            (None, None) => {
                out = load_all::<CommitRecord>(&*self.meta, &commits_prefix(repo))
                    .await?
                    .into_iter()
                    .map(|(c, _)| c)
                    .collect();
                // Newest first; among commits started at once (a commit and
                // the downstream commits it started), dependents first.
                out.sort_by(|a, b| {
                    b.started_ns
                        .cmp(&a.started_ns)
                        .then(b.provenance.len().cmp(&a.provenance.len()))
                        .then(a.id.cmp(&b.id))
                });
                if reverse {
                    out.reverse();
                }
                out.truncate(limit);
            }
        }
        Ok(out)
    }

    /// The commits that have `commit` in their provenance (in every repo).
    pub async fn commit_subvenance(&self, repo: &str, id: &str) -> Result<Vec<CommitName>> {
        let me = CommitName {
            repo: repo.into(),
            id: id.into(),
        };
        let mut out: Vec<CommitName> = load_all::<CommitRecord>(&*self.meta, COMMITS)
            .await?
            .into_iter()
            .map(|(c, _)| c)
            .filter(|c| c.provenance.contains(&me))
            .map(|c| CommitName {
                repo: c.repo,
                id: c.id,
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Ids of the commits whose parent is `id`.
    pub async fn commit_children(&self, repo: &str, id: &str) -> Result<Vec<String>> {
        Ok(load_all::<CommitRecord>(&*self.meta, &commits_prefix(repo))
            .await?
            .into_iter()
            .filter(|(c, _)| c.parent.as_deref() == Some(id))
            .map(|(c, _)| c.id)
            .collect())
    }

    /// Deletes a commit and every commit downstream of it (with it in their
    /// provenance). Children are re-parented onto its parent (indexes are full
    /// snapshots, so they keep their files); branch heads on a deleted commit
    /// move to its parent.
    pub async fn delete_commit(&self, repo: &str, reference: &str) -> Result<()> {
        for _ in 0..MAX_ATTEMPTS {
            let (target, _) = self.resolve_commit(repo, reference).await?;
            let target_name = CommitName {
                repo: repo.into(),
                id: target.id.clone(),
            };
            let all = load_all::<CommitRecord>(&*self.meta, COMMITS).await?;
            let doomed: Vec<&(CommitRecord, u64)> = all
                .iter()
                .filter(|(c, _)| {
                    c.id == target.id && c.repo == repo || c.provenance.contains(&target_name)
                })
                .collect();
            let doomed_ids: HashMap<(String, String), Option<String>> = doomed
                .iter()
                .map(|(c, _)| ((c.repo.clone(), c.id.clone()), c.parent.clone()))
                .collect();
            // Follow a chain of deleted parents to the first surviving ancestor.
            let surviving = |repo: &str, mut id: Option<String>| {
                while let Some(i) = id.clone() {
                    match doomed_ids.get(&(repo.to_string(), i)) {
                        Some(p) => id = p.clone(),
                        None => break,
                    }
                }
                id
            };
            let mut txn = self.write_txn().await?;
            if let Some(b) = &target.branch {
                txn = self
                    .guard_output(txn, repo, Some(b), Action::DeleteCommit)
                    .await?;
            }
            for (c, rev) in &doomed {
                let key = commit_key(&c.repo, &c.id);
                txn = txn
                    .expect(&key, *rev)
                    .delete(key)
                    .delete_prefix(staging_prefix(&c.repo, &c.id));
            }
            for (c, rev) in &all {
                if doomed_ids.contains_key(&(c.repo.clone(), c.id.clone())) {
                    continue;
                }
                if let Some(p) = &c.parent
                    && doomed_ids.contains_key(&(c.repo.clone(), p.clone()))
                {
                    let mut moved = c.clone();
                    moved.parent = surviving(&c.repo, Some(p.clone()));
                    let key = commit_key(&c.repo, &c.id);
                    txn = txn.expect(&key, *rev).put(key, encode(&moved));
                }
            }
            for (b, rev) in self.all_branches_with_rev().await? {
                if let Some(h) = &b.head
                    && doomed_ids.contains_key(&(b.repo.clone(), h.clone()))
                {
                    let mut moved = b.clone();
                    moved.head = surviving(&b.repo, Some(h.clone()));
                    let key = branch_key(&b.repo, &b.name);
                    txn = txn.expect(&key, rev).put(key, encode(&moved));
                }
            }
            if self.meta.commit(txn).await?.is_some() {
                return Ok(());
            }
        }
        Err(PfsError::Contention {
            what: format!("{repo}@{reference}"),
        })
    }

    /// The commits created on a branch, oldest first, then every commit
    /// created on it from now on, each once it has reached `state`, as
    /// Pachyderm's `SubscribeCommit`. With `from`, only the commits created
    /// after that one.
    pub async fn subscribe_commit(
        &self,
        repo: &str,
        branch: &str,
        from: Option<&str>,
        state: CommitState,
    ) -> Result<BoxStream<'static, Result<CommitRecord>>> {
        self.repo_record(repo).await?;
        let from = match from.filter(|f| !f.is_empty()) {
            Some(f) => Some(self.resolve_commit(repo, f).await?.0),
            None => None,
        };
        let mut watch = self.meta.watch(&commits_prefix(repo)).await?;
        let mut seen = HashSet::new();
        let mut initial: Vec<CommitRecord> =
            load_all::<CommitRecord>(&*self.meta, &commits_prefix(repo))
                .await?
                .into_iter()
                .map(|(c, _)| c)
                .filter(|c| c.branch.as_deref() == Some(branch))
                .collect();
        initial.sort_by(|a, b| a.started_ns.cmp(&b.started_ns).then(a.id.cmp(&b.id)));
        if let Some(f) = &from {
            // Commits up to and including `from` were seen by the caller.
            let cut = initial
                .iter()
                .position(|c| c.id == f.id)
                .map(|i| i + 1)
                .unwrap_or_else(|| initial.partition_point(|c| c.started_ns <= f.started_ns));
            for c in initial.drain(..cut) {
                seen.insert(c.id);
            }
            seen.insert(f.id.clone());
        }
        let (tx, rx) = mpsc::channel(64);
        let branch = branch.to_string();
        let pfs = self.clone();
        tokio::spawn(async move {
            // A subscriber that went away ends the task even while it waits
            // (for a commit to finish, or for the next commit).
            let send = async |c: CommitRecord| {
                let item = tokio::select! {
                    _ = tx.closed() => return false,
                    item = pfs.wait_state(c, state) => item,
                };
                tx.send(item).await.is_ok()
            };
            for c in initial {
                seen.insert(c.id.clone());
                if !send(c).await {
                    return;
                }
            }
            loop {
                let event = tokio::select! {
                    _ = tx.closed() => return,
                    event = watch.next() => match event {
                        Some(event) => event,
                        None => return,
                    },
                };
                let c = match event {
                    Ok(pach_meta::Event::Put(kv)) => match decode::<CommitRecord>(&kv) {
                        Ok(c) if c.branch.as_deref() == Some(branch.as_str()) => c,
                        Ok(_) => continue,
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    },
                    Ok(_) => continue,
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                };
                if !seen.insert(c.id.clone()) {
                    continue;
                }
                if !send(c).await {
                    return;
                }
            }
        });
        Ok(tokio_stream_from(rx))
    }

    /// Waits for every commit that has all of `commits` in its provenance
    /// (in `to_repos` only, when not empty) to finish, and returns them; then
    /// waits for `commits` themselves to finish, as Pachyderm's `FlushCommit`.
    pub async fn flush_commit(
        &self,
        commits: &[(String, String)],
        to_repos: &[String],
    ) -> Result<Vec<CommitRecord>> {
        if commits.is_empty() {
            return Err(PfsError::InvalidArgument(
                "flush commit needs at least one commit (REPO@COMMIT)".into(),
            ));
        }
        let mut targets = Vec::new();
        for (repo, reference) in commits {
            let (c, _) = self.resolve_commit(repo, reference).await?;
            targets.push(c);
        }
        let names: Vec<CommitName> = targets
            .iter()
            .map(|c| CommitName {
                repo: c.repo.clone(),
                id: c.id.clone(),
            })
            .collect();
        // Commits made while the flush waits count too (a job's stats
        // commit is made before its output commit finishes): look again
        // until a look finds nothing new.
        let mut seen: HashSet<CommitName> = HashSet::new();
        let mut out = Vec::new();
        loop {
            let mut downstream: Vec<CommitRecord> = load_all::<CommitRecord>(&*self.meta, COMMITS)
                .await?
                .into_iter()
                .map(|(c, _)| c)
                .filter(|c| names.iter().all(|n| c.provenance.contains(n)))
                .filter(|c| to_repos.is_empty() || to_repos.contains(&c.repo))
                .filter(|c| {
                    seen.insert(CommitName {
                        repo: c.repo.clone(),
                        id: c.id.clone(),
                    })
                })
                .collect();
            if downstream.is_empty() {
                break;
            }
            // Upstream repos' commits first, as they finish first.
            downstream.sort_by_key(|c| c.provenance.len());
            for c in downstream {
                match self.wait_finished(c).await {
                    Ok(done) => out.push(done),
                    Err(PfsError::CommitDeleted { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        out.sort_by_key(|c| c.provenance.len());
        for c in targets {
            match self.wait_finished(c).await {
                Ok(_) | Err(PfsError::CommitDeleted { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

fn tokio_stream_from<T: Send + 'static>(mut rx: mpsc::Receiver<T>) -> BoxStream<'static, T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

pub(crate) type BranchTarget = (Option<BranchRecord>, u64, String);

/// A record a write sets (`Some` value) or removes (`None`) in its
/// transaction, besides the commit's own.
pub(crate) type RecordOp = (String, Option<Vec<u8>>);

fn with_records(mut txn: Txn, records: &[RecordOp]) -> Txn {
    for (key, value) in records {
        txn = match value {
            Some(v) => txn.put(key, v.clone()),
            None => txn.delete(key),
        };
    }
    txn
}

pub(crate) enum WriteTarget {
    Open(CommitRecord, u64),
    Branch(BranchTarget),
}

/// How [`Pfs::auto_commits`] ended.
enum Batch {
    /// The commits, in order.
    Written(Vec<String>),
    /// The branch moved meanwhile: nothing was written; read it again.
    Raced,
    /// Several commits on a branch others depend on: nothing was written.
    Downstream,
}

#[cfg(test)]
mod tests {
    use super::split_ancestry;

    #[test]
    fn ancestry() {
        assert_eq!(split_ancestry("master").unwrap(), ("master", 0));
        assert_eq!(split_ancestry("master^").unwrap(), ("master", 1));
        assert_eq!(split_ancestry("master^^").unwrap(), ("master", 2));
        assert_eq!(split_ancestry("master~3").unwrap(), ("master", 3));
        assert_eq!(split_ancestry("abc~2^").unwrap(), ("abc", 3));
        assert!(split_ancestry("^").is_err());
        assert!(split_ancestry("master~x").is_err());
    }
}
