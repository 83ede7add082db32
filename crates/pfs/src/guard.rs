//! Who may write what. Every write of PFS is made by a [`Writer`]: a client
//! (pachctl, an API call: the default of a [`Pfs`]) or a pipeline's own
//! machinery (its jobs, its cron ticks, creating and deleting it:
//! [`Pfs::for_pipeline`]). The guards of a write are checked inside its one
//! metadata transaction, as compares, so that they hold atomically:
//!
//! - a client's write compares the writes-state record ([`crate::writes`]):
//!   refused while writes are paused, and a pause that lands while the write
//!   is in flight makes its transaction fail and the retry refuse;
//! - a pipeline's output branch, and its output repo, belong to the pipeline:
//!   a client cannot write to the branch, start or finish or delete its
//!   commits, move or delete it, nor delete the repo (the way out is `delete
//!   pipeline`). The client's transaction compares the pipeline's record, so a
//!   pipeline created meanwhile makes it retry and refuse.
//!
//! PFS does not know pipelines (the pipeline layer depends on PFS, not the
//! reverse): the pipeline layer tells it which record makes a repo an output
//! repo, and which branch that record names, through [`PipelineOutputs`].

use std::sync::Arc;

use pach_meta::{KeyValue, MetaStore, Txn};

use crate::Pfs;
use crate::commit::WriteTarget;
use crate::error::{PfsError, Result};
use crate::writes::{WRITES_KEY, load_writes};

/// Who makes a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writer {
    /// A client: paused with the cluster's writes; kept off pipelines' outputs.
    Client,
    /// The named pipeline's own machinery: never paused; the only writer of
    /// its output branch.
    Pipeline(String),
}

/// A pipeline's output: the repo is the pipeline's, and the branch its output
/// branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineOutput {
    pub pipeline: String,
    pub branch: String,
}

/// How PFS recognises the output repos of pipelines, provided by the
/// pipeline layer.
pub trait PipelineOutputs: Send + Sync + 'static {
    /// The metadata key of the record that, when present, makes `repo` the
    /// output repo of a pipeline.
    fn record_key(&self, repo: &str) -> String;
    /// The pipeline and output branch that record names.
    fn output(&self, record: &KeyValue) -> Result<PipelineOutput>;
}

/// What a write does, for the message that refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Write,
    StartCommit,
    FinishCommit,
    DeleteCommit,
    MoveBranch,
    DeleteBranch,
    DeleteRepo,
}

impl Action {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Action::Write => "write to",
            Action::StartCommit => "start a commit on",
            Action::FinishCommit => "finish a commit of",
            Action::DeleteCommit => "delete a commit of",
            Action::MoveBranch => "create or move",
            Action::DeleteBranch => "delete",
            Action::DeleteRepo => "delete",
        }
    }
}

impl Pfs {
    /// This handle, writing as the named pipeline: for the pipeline layer's
    /// own writes (jobs' output commits, cron ticks, creating and deleting
    /// the pipeline's repos and branches).
    pub fn for_pipeline(&self, pipeline: &str) -> Pfs {
        Pfs {
            writer: Writer::Pipeline(pipeline.to_string()),
            ..self.clone()
        }
    }

    /// This handle over another metadata store (a transaction's overlay of
    /// this one), writing as the same writer and knowing the same pipelines.
    pub fn with_meta(&self, meta: Arc<dyn MetaStore>) -> Pfs {
        Pfs {
            meta,
            ..self.clone()
        }
    }

    /// This handle, knowing pipelines' outputs through `outputs`.
    pub fn with_pipeline_outputs(mut self, outputs: Arc<dyn PipelineOutputs>) -> Pfs {
        self.outputs = Some(outputs);
        self
    }

    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// The transaction a write starts from: for a client, refused while
    /// writes are paused, and comparing the writes-state record otherwise.
    pub(crate) async fn write_txn(&self) -> Result<Txn> {
        match self.writer {
            Writer::Pipeline(_) => Ok(Txn::new()),
            Writer::Client => {
                let (state, revision) = load_writes(&*self.meta).await?;
                if state.paused {
                    return Err(PfsError::WritesPaused(state));
                }
                Ok(Txn::new().expect(WRITES_KEY, revision))
            }
        }
    }

    /// The pipeline whose output repo `repo` is, if any, with the key and
    /// revision of the record that says so (0: no such record).
    pub(crate) async fn output_of(
        &self,
        repo: &str,
    ) -> Result<Option<(Option<PipelineOutput>, String, u64)>> {
        let Some(outputs) = &self.outputs else {
            return Ok(None);
        };
        let key = outputs.record_key(repo);
        Ok(Some(match self.meta.get(&key).await? {
            Some(kv) => (Some(outputs.output(&kv)?), key, kv.mod_revision),
            None => (None, key, 0),
        }))
    }

    /// Refuses `action` on `repo@branch` (on the repo itself when `branch`
    /// is None) when it belongs to a pipeline other than this writer; a
    /// client's transaction also compares the pipeline's record.
    pub(crate) async fn guard_output(
        &self,
        txn: Txn,
        repo: &str,
        branch: Option<&str>,
        action: Action,
    ) -> Result<Txn> {
        let Some((owner, key, revision)) = self.output_of(repo).await? else {
            return Ok(txn);
        };
        if let Some(o) = owner
            && branch.is_none_or(|b| b == o.branch)
            && self.writer != Writer::Pipeline(o.pipeline.clone())
        {
            return Err(PfsError::PipelineOutput {
                action: action.describe(),
                repo: repo.to_string(),
                branch: branch.map(str::to_string),
                pipeline: o.pipeline,
            });
        }
        Ok(match self.writer {
            Writer::Client => txn.expect(key, revision),
            Writer::Pipeline(_) => txn,
        })
    }

    /// Refuses early, before a client sends any content, a write to
    /// `repo@reference` that could not land: a missing repo, a finished
    /// commit named by id, an ancestry reference or an invalid branch name,
    /// writes paused, or a pipeline's output branch. A branch (existing or
    /// new) or an open commit is fine.
    pub async fn check_writable(&self, repo: &str, reference: &str) -> Result<()> {
        self.repo_record(repo).await?;
        self.write_txn().await?;
        let branch = match self.write_target(repo, reference).await? {
            WriteTarget::Open(commit, _) => commit.branch,
            WriteTarget::Branch((_, _, name)) => Some(name),
        };
        self.guard_output(Txn::new(), repo, branch.as_deref(), Action::Write)
            .await?;
        Ok(())
    }
}
