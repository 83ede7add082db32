//! The consistency check: every record refers only to things that exist.
//! Branch heads, parents and provenance must name existing commits; every
//! finished commit's index, with every shard, pack and chunk it refers to, must
//! be present and intact in the bucket; staged change sets must be present.

use crate::Pfs;
use crate::error::Result;
use crate::records::*;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    pub commits_checked: u64,
    pub indexes_checked: u64,
    pub problems: Vec<String>,
}

impl Pfs {
    pub async fn fsck(&self) -> Result<FsckReport> {
        let mut report = FsckReport::default();
        let commits = load_all::<CommitRecord>(&*self.meta, COMMITS).await?;
        let exists =
            |repo: &str, id: &str| commits.iter().any(|(c, _)| c.repo == repo && c.id == id);
        let mut checked_roots = std::collections::HashSet::new();
        for (c, _) in &commits {
            report.commits_checked += 1;
            if let Some(p) = &c.parent
                && !exists(&c.repo, p)
            {
                report.problems.push(format!(
                    "commit {}@{}: parent {p} does not exist",
                    c.repo, c.id
                ));
            }
            for p in &c.provenance {
                if !exists(&p.repo, &p.id) {
                    report.problems.push(format!(
                        "commit {}@{}: provenance {}@{} does not exist",
                        c.repo, c.id, p.repo, p.id
                    ));
                }
            }
            for summary in [&c.index, &c.base].into_iter().flatten() {
                if checked_roots.insert(summary.root) {
                    report.indexes_checked += 1;
                    for problem in self.content.check_index(&summary.root).await? {
                        report
                            .problems
                            .push(format!("commit {}@{}: {problem}", c.repo, c.id));
                    }
                }
            }
        }
        for (s, _) in load_all::<StagingRecord>(&*self.meta, STAGING).await? {
            if let Err(e) = self.content.read_changes(&s.changes).await {
                report
                    .problems
                    .push(format!("staged change set {}: {e}", s.changes));
            }
        }
        for (b, _) in load_all::<BranchRecord>(&*self.meta, BRANCHES).await? {
            if let Some(h) = &b.head
                && !exists(&b.repo, h)
            {
                report.problems.push(format!(
                    "branch {}@{}: head {h} does not exist",
                    b.repo, b.name
                ));
            }
        }
        let repos = load_all::<RepoRecord>(&*self.meta, REPOS).await?;
        for (c, _) in &commits {
            if !repos.iter().any(|(r, _)| r.name == c.repo) {
                report
                    .problems
                    .push(format!("commit {}@{}: repo does not exist", c.repo, c.id));
            }
        }
        Ok(report)
    }
}
