//! Running pipelines on demand (Pachyderm 1.9's `run pipeline` and `run
//! cron`) and deleting every pipeline at once (`delete all`).
//!
//! `run pipeline` opens a new output commit, which the controller turns into
//! a job like any other: on the inputs' current heads, or on the input
//! commits the caller names (to compute an output from older data again).
//! `run cron` writes a tick into each of the pipeline's cron repos now,
//! which starts a job through provenance as a scheduled tick does.

use pach_pfs::{CommitName, PfsError};

use crate::error::{PpsError, Result};
use crate::pipeline::Pps;
use crate::spec::{self, CronInput};

impl Pps {
    /// Starts a job of `name` now. `provenance`: input commits (repo and
    /// commit or branch) to compute from, instead of their branches' heads;
    /// inputs not named use their heads. Returns the new job's id.
    pub async fn run_pipeline(&self, name: &str, provenance: &[CommitName]) -> Result<String> {
        let p = self.inspect_pipeline(name).await?;
        let inputs = p
            .spec
            .input
            .as_ref()
            .map(spec::input_repos)
            .unwrap_or_default();
        let branch = self.pfs.inspect_branch(name, &p.spec.output_branch).await?;
        if branch.record.head.is_none() {
            return Err(PpsError::FailedPrecondition(format!(
                "pipeline '{name}' has no output yet: new input commits start its jobs by themselves; run pipeline reruns it on existing data"
            )));
        }
        let mut chosen: Vec<(String, String)> = Vec::new();
        for c in provenance {
            let commit = self.pfs.inspect_commit(&c.repo, &c.id, false).await?;
            let on = commit.branch.clone().unwrap_or_default();
            let known = inputs
                .iter()
                .any(|(repo, b)| *repo == commit.repo && *b == on);
            if !known {
                return Err(PpsError::InvalidArgument(format!(
                    "commit {}@{} (branch '{on}') is not on an input branch of pipeline '{name}'; its inputs are {}",
                    commit.repo,
                    commit.id,
                    inputs
                        .iter()
                        .map(|(r, b)| format!("{r}@{b}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            if !commit.is_finished() {
                return Err(PpsError::FailedPrecondition(format!(
                    "commit {}@{} is still open; finish it first",
                    commit.repo, commit.id
                )));
            }
            chosen.push((commit.repo, commit.id));
        }
        // Inputs not chosen use their branch's head, through the output
        // branch's provenance.
        let commit = match self
            .pfs
            .for_pipeline(name)
            .start_commit_with(name, Some(&p.spec.output_branch), None, "", &chosen)
            .await
        {
            Ok(c) => c,
            Err(PfsError::CommitOpen { commit, .. }) => {
                return Err(PpsError::FailedPrecondition(format!(
                    "pipeline '{name}' has a job pending or running (output commit {commit}); wait for it (`pachctl wait job {commit}`) before running the pipeline again"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(commit.id)
    }

    /// Ticks every cron input of `name` now.
    pub async fn run_cron(&self, name: &str) -> Result<()> {
        let p = self.inspect_pipeline(name).await?;
        let crons: Vec<CronInput> = p
            .spec
            .input
            .as_ref()
            .map(|i| crate::cron::cron_inputs(i).into_iter().cloned().collect())
            .unwrap_or_default();
        if crons.is_empty() {
            return Err(PpsError::FailedPrecondition(format!(
                "pipeline must have a cron input; pipeline '{name}' has none"
            )));
        }
        for c in &crons {
            self.tick(name, c).await?;
        }
        Ok(())
    }

    /// Deletes every pipeline (downstream first), whoever reads from them:
    /// Pachyderm 1.9's `DeleteAll` of PPS. Repos are left to PFS.
    pub async fn delete_all_pipelines(&self) -> Result<Vec<String>> {
        self.delete_pipelines(&[], true, true).await
    }
}
