//! The consistency check: every record refers only to things that exist.
//! Branch heads, parents and provenance must name existing commits, every
//! commit's repo must exist; every finished commit's index, with every
//! shard, pack and chunk it refers to, must be present and intact in the
//! bucket; staged change sets must be present.
//!
//! `fix` repairs the records that name what is gone where that loses no
//! data (Pachyderm 1.9's `fsck --fix` likewise repaired records only: it
//! made up the commits that records named):
//! - a commit whose repo record is gone: the repo record is made again, so
//!   its commits and branches are reachable again;
//! - a branch head naming a missing commit: the head moves to the newest
//!   commit of the branch that exists (the branch is empty without one);
//! - a parent naming a missing commit: the commit starts its chain (its
//!   content is whole without its parent; only the history link is gone);
//! - provenance naming a missing commit: that entry is dropped.
//!
//! Missing or damaged objects and staged change sets cannot be fixed: the
//! bytes are gone, and only a backup brings them back.

use std::collections::{HashMap, HashSet};

use pach_meta::Txn;

use crate::Pfs;
use crate::error::Result;
use crate::records::*;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    pub commits_checked: u64,
    pub indexes_checked: u64,
    /// Problems found (and, with `fix`, left: those no fix exists for).
    pub problems: Vec<String>,
    /// With `fix`: what was repaired.
    pub fixed: Vec<String>,
}

/// Said of a problem `fix` leaves, with why.
const OBJECTS_UNFIXABLE: &str = "not fixable: the bytes are gone; `pachctl restore` of a backup \
                                 brings them back";
const STAGED_UNFIXABLE: &str = "not fixable: the staged bytes are gone; delete the open commit \
                                (`pachctl delete commit`) and put its files again";

impl Pfs {
    /// Checks every record and object; repairs nothing.
    pub async fn fsck(&self) -> Result<FsckReport> {
        self.check(false).await
    }

    /// Checks, and repairs what can be repaired without losing data (see
    /// the module's documentation); the rest stays in `problems`.
    pub async fn fsck_fix(&self) -> Result<FsckReport> {
        self.check(true).await
    }

    async fn check(&self, fix: bool) -> Result<FsckReport> {
        let mut report = FsckReport::default();
        let commits = load_all::<CommitRecord>(&*self.meta, COMMITS).await?;
        let ids: HashSet<(&str, &str)> = commits
            .iter()
            .map(|(c, _)| (c.repo.as_str(), c.id.as_str()))
            .collect();
        let exists = |repo: &str, id: &str| ids.contains(&(repo, id));
        let mut checked_roots = HashSet::new();
        for (c, rev) in &commits {
            report.commits_checked += 1;
            let name = format!("commit {}@{}", c.repo, c.id);
            let mut repaired = c.clone();
            let mut fixes = Vec::new();
            if let Some(p) = &c.parent
                && !exists(&c.repo, p)
            {
                let problem = format!("{name}: parent {p} does not exist");
                if fix {
                    repaired.parent = None;
                    fixes.push(format!(
                        "{problem}; the commit now starts its chain (its content is whole)"
                    ));
                } else {
                    report.problems.push(problem);
                }
            }
            for p in &c.provenance {
                if !exists(&p.repo, &p.id) {
                    let problem = format!("{name}: provenance {}@{} does not exist", p.repo, p.id);
                    if fix {
                        fixes.push(format!("{problem}; dropped from its provenance"));
                    } else {
                        report.problems.push(problem);
                    }
                }
            }
            if !fixes.is_empty() {
                repaired.provenance.retain(|p| exists(&p.repo, &p.id));
                let txn = Txn::new()
                    .expect(commit_key(&c.repo, &c.id), *rev)
                    .put(commit_key(&c.repo, &c.id), encode(&repaired));
                self.apply_fix(&mut report, txn, fixes, &name).await?;
            }
            for summary in [&c.index, &c.base].into_iter().flatten() {
                if checked_roots.insert(summary.root) {
                    report.indexes_checked += 1;
                    for problem in self.content.check_index(&summary.root).await? {
                        report.problems.push(unfixable(
                            fix,
                            format!("{name}: {problem}"),
                            OBJECTS_UNFIXABLE,
                        ));
                    }
                }
            }
        }
        for (s, _) in load_all::<StagingRecord>(&*self.meta, STAGING).await? {
            if let Err(e) = self.content.read_changes(&s.changes).await {
                report.problems.push(unfixable(
                    fix,
                    format!("staged change set {}: {e}", s.changes),
                    STAGED_UNFIXABLE,
                ));
            }
        }
        for (b, rev) in load_all::<BranchRecord>(&*self.meta, BRANCHES).await? {
            let Some(h) = &b.head else { continue };
            if exists(&b.repo, h) {
                continue;
            }
            let problem = format!("branch {}@{}: head {h} does not exist", b.repo, b.name);
            if !fix {
                report.problems.push(problem);
                continue;
            }
            let newest = commits
                .iter()
                .map(|(c, _)| c)
                .filter(|c| c.repo == b.repo && c.branch.as_deref() == Some(b.name.as_str()))
                .max_by_key(|c| c.started_ns);
            let mut repaired = b.clone();
            repaired.head = newest.map(|c| c.id.clone());
            let done = match newest {
                Some(c) => format!("{problem}; the head is now {}, its newest commit", c.id),
                None => format!("{problem}; no commit of it is left, so it is now empty"),
            };
            let key = branch_key(&b.repo, &b.name);
            let txn = Txn::new().expect(&key, rev).put(&key, encode(&repaired));
            let name = format!("branch {}@{}", b.repo, b.name);
            self.apply_fix(&mut report, txn, vec![done], &name).await?;
        }
        let repos: HashSet<String> = load_all::<RepoRecord>(&*self.meta, REPOS)
            .await?
            .into_iter()
            .map(|(r, _)| r.name)
            .collect();
        let mut orphans: HashMap<&str, Vec<&CommitRecord>> = HashMap::new();
        for (c, _) in &commits {
            if !repos.contains(&c.repo) {
                orphans.entry(c.repo.as_str()).or_default().push(c);
            }
        }
        let mut orphans: Vec<_> = orphans.into_iter().collect();
        orphans.sort_by_key(|(repo, _)| *repo);
        for (repo, of_repo) in orphans {
            let problems = of_repo
                .iter()
                .map(|c| format!("commit {repo}@{}: repo does not exist", c.id));
            if !fix {
                report.problems.extend(problems);
                continue;
            }
            let record = RepoRecord {
                name: repo.to_string(),
                description: String::new(),
                created_ns: of_repo.iter().map(|c| c.started_ns).min().unwrap_or(0),
            };
            // Created only if still missing: a repo made meanwhile stays.
            let txn = Txn::new()
                .expect(repo_key(repo), 0)
                .put(repo_key(repo), encode(&record));
            let done = format!(
                "repo {repo} did not exist but commits name it ({}); made it again",
                of_repo.len()
            );
            self.apply_fix(&mut report, txn, vec![done], &format!("repo {repo}"))
                .await?;
        }
        Ok(report)
    }

    /// Commits one repair, guarded by the revisions it was decided on: a
    /// record changed meanwhile is left for the next run.
    async fn apply_fix(
        &self,
        report: &mut FsckReport,
        txn: Txn,
        fixes: Vec<String>,
        what: &str,
    ) -> Result<()> {
        if self.meta.commit(txn).await?.is_some() {
            report.fixed.extend(fixes);
        } else {
            report.problems.push(format!(
                "{what} changed while fsck ran and was left as it is; run `pachctl fsck --fix` again"
            ));
        }
        Ok(())
    }
}

fn unfixable(fix: bool, problem: String, why: &str) -> String {
    if fix {
        format!("{problem} ({why})")
    } else {
        problem
    }
}
