//! Jobs: one per open output commit. A job resolves its input commits from
//! the output commit's provenance, plans datums from the glob patterns, hands
//! them to workers as tasks (`tasks`, `worker`; `parallelism_spec` at a time),
//! and merges every datum's output into the output commit. A datum reuses the
//! outputs of one already processed with the same inputs and salt; the others
//! run in the sandbox. Two datums writing the same path fail the job rather
//! than one silently winning.
//!
//! Invariants: the output commit receives all outputs in one write and is then
//! finished, so a reader never sees part of a job; datum outputs are stored
//! before any record names them, so a crash at any point only costs re-running
//! datums.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use pach_meta::Txn;
use pach_pfs::records::{encode, load, load_all};
use pach_pfs::{CommitName, CommitRecord, PfsError};
use pach_storage::{Change, ContentHash, EncodedChanges, FileEntry, PutSession};
use pach_worker::{Command, InputMount, ReadAhead, Sandbox, SandboxSession};

use crate::datum::{self, Datum, InputFile};
use crate::error::{PpsError, Result};
use crate::pipeline::Pps;
use crate::records::*;
use crate::secrets::ResolvedSecrets;
use crate::spec::Input;

/// Which jobs [`Pps::list_jobs`] returns (Pachyderm's `ListJobRequest`).
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub pipeline: Option<String>,
    /// Only jobs computed from every one of these (repo, commit or branch).
    pub input_commits: Vec<(String, String)>,
    /// Only the job of this output commit (repo, commit or branch).
    pub output_commit: Option<(String, String)>,
    /// Jobs of this many earlier versions of their pipeline too (all when
    /// negative); 0: only jobs of the current version.
    pub history: i64,
}

/// One leaf input of a pipeline (pfs or cron), as the job sees it.
#[derive(Debug, Clone)]
pub(crate) struct LeafInput {
    pub name: String,
    pub repo: String,
    pub branch: String,
}

pub(crate) fn leaf_inputs(input: Option<&Input>) -> Vec<LeafInput> {
    let all = input.map(Input::walk).unwrap_or_default();
    all.into_iter()
        .filter_map(|i| match (&i.pfs, &i.cron, &i.git) {
            (Some(p), _, _) => Some(LeafInput {
                name: p.name.clone(),
                repo: p.repo.clone(),
                branch: p.branch.clone(),
            }),
            (None, Some(c), _) => Some(LeafInput {
                name: c.name.clone(),
                repo: c.repo.clone(),
                branch: "master".into(),
            }),
            (None, None, Some(g)) => Some(LeafInput {
                name: g.name.clone(),
                repo: g.name.clone(),
                branch: g.branch.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Input name -> (commit id, path -> entry).
pub(crate) type InputEntries = HashMap<String, (String, HashMap<String, FileEntry>)>;

/// The input commits of a job, read once.
pub(crate) struct JobInputs {
    pub entries: InputEntries,
    /// Input name -> its files, for planning.
    pub files: HashMap<String, Vec<InputFile>>,
    pub commits: Vec<CommitName>,
}

/// What a worker needs to run a job's datums.
pub(crate) struct JobContext {
    pub pipeline: PipelineRecord,
    pub job_id: String,
    pub inputs: InputEntries,
    pub input_names: Vec<String>,
    /// The sandbox (with the pipeline's secrets), or why the job's datums
    /// cannot run here (they fail with it).
    pub sandbox: std::result::Result<Arc<Sandbox>, String>,
    /// The pipeline's secrets (files already given to `sandbox`).
    pub secrets: ResolvedSecrets,
    /// Idle sandboxes of this job on this worker.
    pub sessions: std::sync::Mutex<Vec<SandboxSession>>,
    /// Numbers the slot directories of new sandboxes.
    pub slots: std::sync::atomic::AtomicUsize,
}

impl JobContext {
    /// The stored files a datum mounts, except lazy and empty ones (which
    /// are not read when materialised).
    pub fn read_files<'a>(&'a self, d: &'a Datum) -> impl Iterator<Item = &'a FileEntry> + 'a {
        d.inputs
            .iter()
            .filter(|i| !i.lazy && !i.empty_files)
            .flat_map(move |i| {
                let entries = self.inputs.get(&i.name).map(|(_, e)| e);
                i.files
                    .iter()
                    .filter_map(move |f| entries.and_then(|e| e.get(&f.path)))
            })
    }

    pub fn new(
        pipeline: PipelineRecord,
        job_id: String,
        inputs: InputEntries,
        sandbox: std::result::Result<Arc<Sandbox>, String>,
        secrets: ResolvedSecrets,
    ) -> Self {
        let input_names = leaf_inputs(pipeline.spec.input.as_ref())
            .into_iter()
            .map(|l| l.name)
            .collect();
        JobContext {
            pipeline,
            job_id,
            inputs,
            input_names,
            sandbox,
            secrets,
            sessions: std::sync::Mutex::new(Vec::new()),
            slots: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

/// The storage side of a worker's run through a task's datums: one upload
/// session for their outputs (small outputs share packs) and the inputs read
/// ahead of the datums that need them.
pub(crate) struct DatumIo {
    pub out: PutSession,
    pub ahead: ReadAhead,
    /// Cache lookups done while reading ahead (datum id -> outputs of an
    /// identical datum): a datum that will be reused needs no input read.
    pub looked_up: HashMap<String, Option<CacheRecord>>,
    /// Changes when `restart datum` asks for the running datum to be run
    /// again: its user code is killed and it starts over.
    pub restart: tokio::sync::watch::Receiver<u32>,
}

/// What one datum produced.
pub(crate) struct DatumOutcome {
    pub record: DatumRecord,
    pub outputs: Vec<FileEntry>,
    pub cache: Option<(String, CacheRecord)>,
    /// The change set `record.outputs` names, to store before the record.
    pub changes: Option<EncodedChanges>,
}

impl Pps {
    /// Jobs, newest first; only `pipeline`'s when given.
    /// Records a job restored from an extract, whose output commit is
    /// already there, finished; a record of that id already there is kept.
    pub async fn restore_job(&self, job: JobRecord) -> Result<()> {
        let key = job_key(&job.id);
        if load::<JobRecord>(&**self.pfs.meta(), &key).await?.is_some() {
            return Ok(());
        }
        // A record written meanwhile (the same id) is as good as ours.
        self.pfs
            .meta()
            .commit(Txn::new().expect(&key, 0).put(&key, encode(&job)))
            .await?;
        Ok(())
    }

    pub async fn list_job(&self, pipeline: Option<&str>) -> Result<Vec<JobRecord>> {
        if let Some(p) = pipeline {
            self.inspect_pipeline(p).await?;
        }
        let mut jobs: Vec<JobRecord> = load_all::<JobRecord>(&**self.pfs.meta(), JOBS)
            .await?
            .into_iter()
            .map(|(j, _)| j)
            .filter(|j| pipeline.is_none_or(|p| j.pipeline == p))
            .collect();
        jobs.sort_by_key(|j| std::cmp::Reverse(j.started_ns));
        Ok(jobs)
    }

    pub async fn inspect_job(&self, id: &str, wait: bool) -> Result<JobRecord> {
        let key = job_key(id);
        let mut watch = self.pfs.meta().watch(&key).await?;
        loop {
            let job = match load::<JobRecord>(&**self.pfs.meta(), &key).await? {
                Some((job, _)) => job,
                // A job's record appears when the controller picks up its
                // output commit, a moment after the commit opens (as right
                // after `run pipeline` or `restart datum`): one waiting for
                // the job waits for that too.
                None if wait && self.pending_output(id).await? => {
                    let _ = tokio::time::timeout(Duration::from_secs(2), watch.next()).await;
                    continue;
                }
                None => return Err(PpsError::JobNotFound(id.into())),
            };
            if !wait || job.state.is_terminal() {
                return Ok(job);
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), watch.next()).await;
        }
    }

    /// Whether `id` is an open output commit of a pipeline, whose job is
    /// about to start.
    async fn pending_output(&self, id: &str) -> Result<bool> {
        for p in self.list_pipeline_records().await? {
            if let Some((c, _)) = load::<CommitRecord>(
                &**self.pfs.meta(),
                &pach_pfs::records::commit_key(p.name(), id),
            )
            .await?
            {
                return Ok(!c.is_finished());
            }
        }
        Ok(false)
    }

    /// Marks a job killed; its running datums are stopped and its output
    /// commit finished without output. A job that has ended is refused (as
    /// Pachyderm refuses to finish its finished output commit again).
    pub async fn stop_job(&self, id: &str) -> Result<()> {
        if let Some(state) = self.kill_job(id).await? {
            return Err(PpsError::FailedPrecondition(format!(
                "job {id} has already ended ({}); there is nothing to stop",
                state.as_str()
            )));
        }
        Ok(())
    }

    /// Marks a running job killed; returns the state of a job that had
    /// already ended instead.
    async fn kill_job(&self, id: &str) -> Result<Option<JobState>> {
        let key = job_key(id);
        loop {
            let (mut job, rev) = load::<JobRecord>(&**self.pfs.meta(), &key)
                .await?
                .ok_or_else(|| PpsError::JobNotFound(id.into()))?;
            if job.state.is_terminal() {
                return Ok(Some(job.state));
            }
            job.state = JobState::Killed;
            job.reason = "stopped by the user".into();
            let txn = Txn::new().expect(&key, rev).put(&key, encode(&job));
            if self.pfs.meta().commit(txn).await?.is_some() {
                return Ok(None);
            }
        }
    }

    /// Deletes a job's records (stopping it first); its output commit stays.
    pub async fn delete_job(&self, id: &str) -> Result<()> {
        self.kill_job(id).await?;
        let txn = Txn::new()
            .delete(job_key(id))
            .delete_prefix(datums_prefix(id));
        self.pfs.meta().commit(txn).await?;
        Ok(())
    }

    pub async fn list_datum(&self, job: &str) -> Result<Vec<DatumRecord>> {
        self.inspect_job(job, false).await?;
        Ok(
            load_all::<DatumRecord>(&**self.pfs.meta(), &datums_prefix(job))
                .await?
                .into_iter()
                .map(|(d, _)| d)
                .collect(),
        )
    }

    pub async fn inspect_datum(&self, job: &str, datum: &str) -> Result<DatumRecord> {
        self.inspect_job(job, false).await?;
        load::<DatumRecord>(&**self.pfs.meta(), &datum_key(job, datum))
            .await?
            .map(|(d, _)| d)
            .ok_or_else(|| PpsError::DatumNotFound {
                job: job.into(),
                datum: datum.into(),
            })
    }

    /// `restart datum`. On a running job, as Pachyderm 1.9: the datums being
    /// processed whose inputs match every filter (a datum id, or an input
    /// file's path or hash; no filter matches all) have their user code
    /// killed and run again in the same job, and the answer names them; when
    /// none is being processed, 1.9's error. On a finished job (where 1.9
    /// only errs), its failed datums matching any filter are run again by a
    /// new job on the pipeline's current inputs, reusing the datums that
    /// succeeded; without a filter and with no failed datum, nothing is done.
    pub async fn restart_datum(&self, job: &str, filters: &[String]) -> Result<Restarted> {
        let j = self.inspect_job(job, false).await?;
        if !j.state.is_terminal() {
            return self
                .restart_running(job, filters)
                .await
                .map(Restarted::Running);
        }
        let datums = self.list_datum(job).await?;
        let failed = datums
            .iter()
            .filter(|d| matches!(d.state, DatumState::Failed | DatumState::Recovered))
            .any(|d| {
                filters.is_empty() || filters.iter().any(|f| crate::logs::datum_matches(d, f))
            });
        if !failed && filters.is_empty() {
            return Ok(Restarted::Nothing);
        }
        if !failed {
            return Err(PpsError::FailedPrecondition(format!(
                "job {job} has finished ({}) and no failed datum of it matches {filters:?}; \
                 a finished job's failed datums are run again by a new job, a running \
                 job's datums in place (`pachctl list datum {job}` shows its datums)",
                j.state.as_str()
            )));
        }
        let p = self.inspect_pipeline(&j.pipeline).await?;
        match self
            .pfs
            .for_pipeline(&j.pipeline)
            .start_commit(&j.pipeline, Some(&p.spec.output_branch), None, "")
            .await
        {
            Ok(c) => Ok(Restarted::NewJob(c.id)),
            Err(PfsError::CommitOpen { commit, .. }) => Ok(Restarted::NewJob(commit)),
            Err(e) => Err(e.into()),
        }
    }

    /// Asks the workers running the job's tasks to restart their running
    /// datum if it matches `filters`; returns the datums restarted.
    async fn restart_running(&self, job: &str, filters: &[String]) -> Result<Vec<String>> {
        let meta = &**self.pfs.meta();
        let now = crate::tasks::now_ms();
        let running: std::collections::HashSet<u32> =
            load_all::<TaskRecord>(meta, &tasks_prefix(job))
                .await?
                .into_iter()
                .map(|(t, _)| t)
                .filter(|t| t.state == TaskState::Claimed && t.expires_ms > now)
                .map(|t| t.index)
                .collect();
        let not_found = || {
            PpsError::FailedPrecondition(format!(
                "datum matching filter {filters:?} could not be found for jobID {job}: \
                 no datum being processed now has inputs matching every filter \
                 (`pachctl list datum {job}` shows the job's datums)"
            ))
        };
        if running.is_empty() {
            return Err(not_found());
        }
        let request = uuid::Uuid::new_v4().simple().to_string();
        meta.commit(Txn::new().put(
            restart_key(job, &request),
            encode(&RestartRequest {
                filters: filters.to_vec(),
                created_ms: now,
            }),
        ))
        .await?;
        let answers_prefix = restart_answers_prefix(job, &request);
        let deadline = tokio::time::Instant::now() + crate::tasks::RESTART_WAIT;
        let answered = loop {
            let answers = meta.list(&answers_prefix, None, 0).await?;
            let all = running.iter().all(|i| {
                let key = restart_answer_key(job, &request, *i);
                answers.iter().any(|kv| kv.key == key)
            });
            if all || tokio::time::Instant::now() >= deadline {
                break answers;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        meta.commit(
            Txn::new()
                .delete(restart_key(job, &request))
                .delete_prefix(answers_prefix),
        )
        .await?;
        let mut restarted = Vec::new();
        for kv in &answered {
            let a: RestartAnswer = pach_pfs::records::decode(kv)?;
            restarted.extend(a.restarted);
        }
        if restarted.is_empty() {
            return Err(not_found());
        }
        Ok(restarted)
    }

    /// Jobs as Pachyderm's `ListJob` selects them, newest first.
    pub async fn list_jobs(&self, f: &JobFilter) -> Result<Vec<JobRecord>> {
        let mut wanted_inputs = Vec::new();
        for (repo, reference) in &f.input_commits {
            let (c, _) = self.pfs.resolve_commit(repo, reference).await?;
            wanted_inputs.push(CommitName {
                repo: c.repo,
                id: c.id,
            });
        }
        let output = match &f.output_commit {
            Some((repo, reference)) => Some(self.pfs.resolve_commit(repo, reference).await?.0.id),
            None => None,
        };
        let current: HashMap<String, u64> = match &f.pipeline {
            Some(p) => [(p.clone(), self.inspect_pipeline(p).await?.version)].into(),
            None => self
                .list_pipeline_records()
                .await?
                .into_iter()
                .map(|p| (p.name().to_string(), p.version))
                .collect(),
        };
        let jobs = match &output {
            Some(id) => match load::<JobRecord>(&**self.pfs.meta(), &job_key(id)).await? {
                Some((j, _)) => vec![j],
                None => vec![],
            },
            None => self.list_job(f.pipeline.as_deref()).await?,
        };
        Ok(jobs
            .into_iter()
            .filter(|j| f.pipeline.as_ref().is_none_or(|p| *p == j.pipeline))
            .filter(|j| wanted_inputs.iter().all(|c| j.input_commits.contains(c)))
            .filter(|j| {
                // Jobs of the pipeline's current version, and of `history`
                // earlier ones (all with a negative history).
                let Some(v) = current.get(&j.pipeline) else {
                    return false;
                };
                f.history < 0 || j.pipeline_version + f.history as u64 >= *v
            })
            .collect())
    }

    /// The job whose output commit is `reference` in `repo`.
    pub async fn job_of_output(&self, repo: &str, reference: &str) -> Result<JobRecord> {
        let (c, _) = self.pfs.resolve_commit(repo, reference).await?;
        match load::<JobRecord>(&**self.pfs.meta(), &job_key(&c.id)).await? {
            Some((j, _)) => Ok(j),
            None => Err(PpsError::JobNotFound(format!(
                "with output commit {repo}@{}",
                c.id
            ))),
        }
    }

    /// Waits for every job downstream of `commits` (in `to_pipelines` only,
    /// when given) to end, and returns them.
    pub async fn flush_job(
        &self,
        commits: &[(String, String)],
        to_pipelines: &[String],
    ) -> Result<Vec<JobRecord>> {
        let mut out = Vec::new();
        for c in self.pfs.flush_commit(commits, to_pipelines).await? {
            // Commits of other repos, or of a pipeline's stats branch, are
            // no job's output.
            match load::<JobRecord>(&**self.pfs.meta(), &job_key(&c.id)).await? {
                Some((j, _)) if j.output_commit.repo == c.repo => {
                    out.push(self.inspect_job(&j.id, true).await?);
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The logs of a datum that ran (empty for reused datums).
    pub async fn datum_logs(&self, d: &DatumRecord) -> Result<Vec<u8>> {
        let Some(key) = &d.log else {
            return Ok(Vec::new());
        };
        let content = self.pfs.content();
        let path = content.prefix().clone().join(key.as_str());
        let failed = |source| pach_storage::StorageError::ObjectStore {
            op: "get",
            key: key.clone(),
            source,
        };
        match content.object_store().get(&path).await {
            Ok(r) => Ok(r.bytes().await.map_err(failed)?.to_vec()),
            Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(failed(e).into()),
        }
    }

    /// Runs the job of an open output commit to the end: plans its datums,
    /// publishes them as tasks for the workers and merges their outputs.
    pub(crate) async fn run_job(
        &self,
        current: &PipelineRecord,
        commit: CommitRecord,
    ) -> Result<()> {
        let meta = self.pfs.meta().clone();
        let key = job_key(&commit.id);
        let output = CommitName {
            repo: commit.repo.clone(),
            id: commit.id.clone(),
        };
        let mut job = match load::<JobRecord>(&*meta, &key).await? {
            Some((j, _)) if j.state.is_terminal() => {
                // Decided before a restart; only the commit is left to finish.
                self.clear_tasks(&j.id).await?;
                self.finish_output(&commit).await?;
                return Ok(());
            }
            Some((j, _)) => j,
            None => {
                let pipeline = current;
                let mut j = JobRecord {
                    id: commit.id.clone(),
                    pipeline: pipeline.name().to_string(),
                    pipeline_version: pipeline.version,
                    output_commit: output,
                    input_commits: vec![],
                    state: JobState::Starting,
                    reason: String::new(),
                    started_ns: crate::now_ns(),
                    finished_ns: None,
                    counts: DatumCounts::default(),
                    stats: ProcessStats::default(),
                    stats_commit: None,
                    log: Vec::new(),
                };
                // Known from the output commit's provenance at once, so
                // that jobs are found by input commit before they run.
                for leaf in leaf_inputs(pipeline.spec.input.as_ref()) {
                    if let Some(id) = self.input_commit(&commit, &leaf).await? {
                        j.input_commits.push(CommitName {
                            repo: leaf.repo,
                            id,
                        });
                    }
                }
                j.note(format!(
                    "creating new job {} for output commit {}@{} (pipeline version {})",
                    j.id, commit.repo, commit.id, pipeline.version
                ));
                j
            }
        };
        // A job runs with the spec it started with, even when the pipeline
        // was updated since (its tasks were planned with that spec).
        let started_with = match self
            .pipeline_at(&job.pipeline, job.pipeline_version)
            .await?
        {
            Some(p) if p.version != current.version => Some(p),
            Some(_) => None,
            None => {
                job.pipeline_version = current.version;
                None
            }
        };
        let pipeline = started_with.as_ref().unwrap_or(current);
        self.save_job(&job).await?;
        // The pipeline acts as itself: it reads its inputs and writes its
        // output only while their owners let it.
        if let Some(reason) = self.job_refusal(pipeline).await? {
            return self
                .end_job(pipeline, job, &commit, JobState::Failure, reason, None)
                .await;
        }
        let JobInputs {
            files,
            commits: input_commits,
            ..
        } = self.load_inputs(pipeline, &commit).await?;
        job.input_commits = input_commits;
        let datums = match &pipeline.spec.input {
            Some(i) => datum::plan(i, &files),
            None => Ok(vec![]),
        };
        let datums = match datums {
            Ok(d) => d,
            Err(e) => {
                return self
                    .end_job(
                        pipeline,
                        job,
                        &commit,
                        JobState::Failure,
                        e.to_string(),
                        None,
                    )
                    .await;
            }
        };
        job.state = JobState::Running;
        job.counts = DatumCounts {
            total: datums.len() as u64,
            ..Default::default()
        };
        job.note(format!(
            "running {} datum(s), {} at a time",
            datums.len(),
            pipeline.spec.parallelism()
        ));
        self.save_job(&job).await?;
        tracing::debug!(job = %job.id, datums = datums.len(), "job planned");
        self.publish_tasks(
            &job,
            pipeline.spec.parallelism(),
            pipeline.spec.chunk_spec.as_ref(),
            datums,
        )
        .await?;
        tracing::debug!(job = %job.id, "tasks published");
        let run = self.await_tasks(&mut job);
        let outcome = match pipeline.spec.job_timeout() {
            Some(t) => match tokio::time::timeout(t, run).await {
                Ok(r) => r,
                Err(_) => Ok(RunEnd::Failed(format!(
                    "job timed out after {}",
                    humantime::format_duration(t)
                ))),
            },
            None => run.await,
        };
        // Workers still on a task of this job stop at their next renewal.
        self.clear_tasks(&job.id).await?;
        let outcome = outcome?;
        match outcome {
            RunEnd::Killed => {
                let reason = job_reason(&*meta, &job.id).await;
                self.end_job(pipeline, job, &commit, JobState::Killed, reason, None)
                    .await
            }
            RunEnd::Failed(reason) => {
                self.end_job(pipeline, job, &commit, JobState::Failure, reason, None)
                    .await
            }
            RunEnd::Done(mut outputs) => {
                // As in Pachyderm 1.9, files several datums wrote at one
                // path are one file: their contents one after another, in
                // datum-id order (word_count's reduce relies on it).
                outputs.sort_by(|a, b| a.0.cmp(&b.0));
                let mut by_path: BTreeMap<String, (String, FileEntry)> = BTreeMap::new();
                for (datum, entries) in outputs {
                    for e in entries {
                        let merged = match by_path.remove(&e.path) {
                            Some((first, earlier)) => (first, earlier.appended(&e)),
                            None => (datum.clone(), e),
                        };
                        by_path.insert(merged.1.path.clone(), merged);
                    }
                }
                // A file cannot also be a directory: one datum's `/x` and
                // another's `/x/y` fail the job, naming both.
                for (path, (datum, _)) in &by_path {
                    let below = format!("{path}/");
                    if let Some((inner, (other, _))) = by_path.range(below.clone()..).next()
                        && inner.starts_with(&below)
                    {
                        let reason = format!(
                            "datum {datum} wrote the file '{path}' and datum {other} wrote \
                             '{inner}' inside it as a directory; a path cannot be both"
                        );
                        return self
                            .end_job(pipeline, job, &commit, JobState::Failure, reason, None)
                            .await;
                    }
                }
                let entries: Vec<FileEntry> = by_path.into_values().map(|(_, e)| e).collect();
                // Access taken away while the job ran: nothing is written.
                if let Some(reason) = self.job_refusal(pipeline).await? {
                    return self
                        .end_job(pipeline, job, &commit, JobState::Failure, reason, None)
                        .await;
                }
                if let Some(egress) = &pipeline.spec.egress
                    && let Err(e) = self.egress(&egress.url, &entries).await
                {
                    let reason = format!("egress to '{}' failed: {e}", egress.url);
                    return self
                        .end_job(pipeline, job, &commit, JobState::Failure, reason, None)
                        .await;
                }
                let mut changes = vec![Change::Delete("/".into())];
                changes.extend(entries.into_iter().map(Change::Put));
                self.end_job(
                    pipeline,
                    job,
                    &commit,
                    JobState::Success,
                    String::new(),
                    Some(changes),
                )
                .await
            }
        }
    }

    /// Why `pipeline` may not run a job (or a spout write) now: no access
    /// to an input or its output, when access is checked.
    pub(crate) async fn job_refusal(&self, pipeline: &PipelineRecord) -> Result<Option<String>> {
        let Some(access) = &self.job_access else {
            return Ok(None);
        };
        let inputs = pipeline.spec.pfs_input_repos();
        access.refusal(pipeline.name(), &inputs).await
    }

    /// Copies a job's output files to the pipeline's egress URL (any object
    /// store URL: s3://, az://, gs://, file:// where the URL policy allows),
    /// streaming each file.
    async fn egress(&self, url: &str, entries: &[FileEntry]) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        let (store, prefix) = pach_storage::open_url(url, &self.urls)?;
        let content = self.pfs.content();
        for e in entries {
            let mut target = prefix.clone();
            for part in e.path.split('/').filter(|p| !p.is_empty()) {
                target = target.join(part);
            }
            let failed = |source: std::io::Error| {
                PpsError::FailedPrecondition(format!("writing '{}': {source}", e.path))
            };
            let mut w = object_store::buffered::BufWriter::new(store.clone(), target);
            let mut bytes = content.read_file(e, 0, None);
            while let Some(chunk) = bytes.next().await {
                w.write_all(&chunk?).await.map_err(failed)?;
            }
            w.shutdown().await.map_err(failed)?;
        }
        Ok(())
    }

    pub(crate) async fn save_job(&self, job: &JobRecord) -> Result<()> {
        let key = job_key(&job.id);
        // A stop from the user wins over the runner's progress updates.
        if let Some((current, _)) = load::<JobRecord>(&**self.pfs.meta(), &key).await?
            && current.state == JobState::Killed
            && job.state != JobState::Killed
        {
            return Ok(());
        }
        self.pfs
            .meta()
            .commit(Txn::new().put(&key, encode(job)))
            .await?;
        Ok(())
    }

    async fn end_job(
        &self,
        pipeline: &PipelineRecord,
        mut job: JobRecord,
        commit: &CommitRecord,
        state: JobState,
        reason: String,
        changes: Option<Vec<Change>>,
    ) -> Result<()> {
        // Order matters for restarts: the output is staged into the commit,
        // then the job's end recorded, then the commit finished. A crash in
        // between leaves a finished job with an open commit, which the
        // controller finishes (with the staged output) when it comes back.
        if let Some(changes) = changes {
            self.pfs
                .for_pipeline(&job.pipeline)
                .write_changes(&commit.repo, &commit.id, changes)
                .await?;
        }
        job.state = state;
        job.reason = reason;
        if pipeline.spec.enable_stats {
            // Stats describe the datums whatever the job's outcome, as the
            // job's datum records do.
            job.stats_commit = Some(self.write_stats(pipeline, &job, commit).await?);
        }
        job.finished_ns = Some(crate::now_ns());
        job.note(if job.reason.is_empty() {
            format!("job ended: {}", job.state.as_str())
        } else {
            format!("job ended: {}: {}", job.state.as_str(), job.reason)
        });
        let key = job_key(&job.id);
        // A job deleted while it ran stays deleted.
        if let Some((_, rev)) = load::<JobRecord>(&**self.pfs.meta(), &key).await? {
            self.pfs
                .meta()
                .commit(Txn::new().expect(&key, rev).put(&key, encode(&job)))
                .await?;
        }
        self.finish_output(commit).await?;
        tracing::info!(job = %job.id, pipeline = %job.pipeline, state = job.state.as_str(), reason = %job.reason, "job ended");
        Ok(())
    }

    /// Finishes the output commit with what was staged into it: the job's
    /// output, or nothing (a failed or killed job keeps its parent's files).
    async fn finish_output(&self, commit: &CommitRecord) -> Result<()> {
        // An output repo has its pipeline's name.
        let pfs = self.pfs.for_pipeline(&commit.repo);
        match pfs.finish_commit(&commit.repo, &commit.id, None).await {
            Ok(_) | Err(PfsError::CommitFinished { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads the input commits of an output commit: each leaf input's files.
    pub(crate) async fn load_inputs(
        &self,
        pipeline: &PipelineRecord,
        commit: &CommitRecord,
    ) -> Result<JobInputs> {
        let mut out = JobInputs {
            entries: HashMap::new(),
            files: HashMap::new(),
            commits: Vec::new(),
        };
        for leaf in leaf_inputs(pipeline.spec.input.as_ref()) {
            let Some(id) = self.input_commit(commit, &leaf).await? else {
                out.entries
                    .insert(leaf.name.clone(), (String::new(), HashMap::new()));
                continue;
            };
            self.pfs.inspect_commit(&leaf.repo, &id, true).await?;
            let (_, index) = self.pfs.open_commit(&leaf.repo, &id).await?;
            let entries: Vec<FileEntry> = index
                .range("/", None)
                .try_collect()
                .await
                .map_err(PfsError::from)?;
            out.files.insert(
                leaf.name.clone(),
                entries
                    .iter()
                    .map(|e| InputFile {
                        path: e.path.clone(),
                        hash: e.hash.to_hex(),
                        size: e.size,
                    })
                    .collect(),
            );
            out.commits.push(CommitName {
                repo: leaf.repo.clone(),
                id: id.clone(),
            });
            out.entries.insert(
                leaf.name.clone(),
                (
                    id,
                    entries.into_iter().map(|e| (e.path.clone(), e)).collect(),
                ),
            );
        }
        Ok(out)
    }

    /// The commit of `leaf` that the output commit was opened for.
    async fn input_commit(
        &self,
        commit: &CommitRecord,
        leaf: &LeafInput,
    ) -> Result<Option<String>> {
        let of_repo: Vec<_> = commit
            .provenance
            .iter()
            .filter(|p| p.repo == leaf.repo)
            .collect();
        for p in &of_repo {
            let c = self.pfs.inspect_commit(&p.repo, &p.id, false).await?;
            if c.branch.as_deref() == Some(leaf.branch.as_str()) {
                return Ok(Some(c.id));
            }
        }
        // A head moved onto the input branch by hand (`create branch
        // data@master --head staging`) is a commit made on another branch:
        // the one commit of the repo is the input's.
        Ok(match of_repo.as_slice() {
            [only] => Some(only.id.clone()),
            _ => None,
        })
    }

    /// The outputs of a datum identical to `d` (same inputs, same pipeline
    /// salt) processed before, if any.
    pub(crate) async fn cached(&self, ctx: &JobContext, d: &Datum) -> Result<Option<CacheRecord>> {
        let key = cache_key(ctx.pipeline.name(), &cache_id(&ctx.pipeline.salt, &d.id));
        Ok(load::<CacheRecord>(&**self.pfs.meta(), &key)
            .await?
            .map(|(c, _)| c))
    }

    /// Runs one datum (or reuses the outputs of an identical one). Its output
    /// files go through `io.out`, which the caller flushes, and its change
    /// set comes back encoded, which the caller stores, before recording it.
    pub(crate) async fn process_datum(
        &self,
        ctx: &JobContext,
        d: Datum,
        io: &mut DatumIo,
    ) -> Result<DatumOutcome> {
        let content = self.pfs.content().clone();
        let started = crate::now_ns();
        let key = cache_id(&ctx.pipeline.salt, &d.id);
        let cached = match io.looked_up.remove(&d.id) {
            Some(c) => c,
            None => self.cached(ctx, &d).await?,
        };
        if let Some(c) = cached {
            let outputs: Vec<FileEntry> = match c.entries {
                Some(entries) => entries,
                None => content
                    .read_changes(&c.outputs)
                    .await?
                    .into_iter()
                    .filter_map(|ch| match ch {
                        Change::Put(e) => Some(e),
                        _ => None,
                    })
                    .collect(),
            };
            return Ok(DatumOutcome {
                record: DatumRecord {
                    id: d.id.clone(),
                    job: ctx.job_id.clone(),
                    state: DatumState::Skipped,
                    inputs: d.inputs,
                    outputs: Some(c.outputs),
                    output_files: outputs.len() as u64,
                    tries: 0,
                    started_ns: started,
                    finished_ns: crate::now_ns(),
                    log: None,
                    reason: String::new(),
                    stats: ProcessStats::default(),
                    source_job: Some(c.job),
                },
                outputs,
                cache: None,
                changes: None,
            });
        }
        let mut log = Vec::new();
        let DatumRun {
            state,
            entries,
            tries,
            reason,
            stats,
        } = match &ctx.sandbox {
            Err(why) => DatumRun {
                state: DatumState::Failed,
                entries: vec![],
                tries: 0,
                reason: why.clone(),
                stats: ProcessStats::default(),
            },
            Ok(sandbox) => self.run_datum(ctx, &d, sandbox, &mut log, io).await?,
        };
        let log_key = if log.is_empty() {
            None
        } else {
            let k = format!("logs/{}/{}", ctx.job_id, d.id);
            let path = content.prefix().clone().join(k.as_str());
            content
                .object_store()
                .put(&path, log.into())
                .await
                .map_err(|source| pach_storage::StorageError::ObjectStore {
                    op: "put",
                    key: k.clone(),
                    source,
                })?;
            Some(k)
        };
        let (outputs, cache, changes) = if state == DatumState::Success {
            let changes: Vec<Change> = entries.iter().cloned().map(Change::Put).collect();
            let encoded = pach_storage::ContentStore::encode_changes(&changes)?;
            let hash: ContentHash = encoded.hash;
            (
                Some(hash),
                Some((
                    key,
                    CacheRecord {
                        outputs: hash,
                        entries: (serde_json::to_vec(&entries).map_or(usize::MAX, |v| v.len())
                            <= INLINE_OUTPUTS)
                            .then(|| entries.clone()),
                        job: ctx.job_id.clone(),
                        datum: d.id.clone(),
                    },
                )),
                Some(encoded),
            )
        } else {
            (None, None, None)
        };
        Ok(DatumOutcome {
            record: DatumRecord {
                id: d.id.clone(),
                job: ctx.job_id.clone(),
                state,
                inputs: d.inputs,
                outputs,
                output_files: entries.len() as u64,
                tries,
                started_ns: started,
                finished_ns: crate::now_ns(),
                log: log_key,
                reason,
                stats,
                source_job: None,
            },
            outputs: entries,
            cache,
            changes,
        })
    }

    /// Materialises and runs a datum, retrying up to `datum_tries` times, then
    /// `err_cmd` if it still fails.
    async fn run_datum(
        &self,
        ctx: &JobContext,
        d: &Datum,
        sandbox: &Sandbox,
        log: &mut Vec<u8>,
        io: &mut DatumIo,
    ) -> Result<DatumRun> {
        let spec = &ctx.pipeline.spec;
        let t = &spec.transform;
        let mut mounts = Vec::new();
        let mut env: Vec<(String, String)> =
            t.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        env.extend([
            ("PACH_JOB_ID".to_string(), ctx.job_id.clone()),
            ("PACH_OUTPUT_COMMIT_ID".to_string(), ctx.job_id.clone()),
            (
                "PPS_PIPELINE_NAME".to_string(),
                ctx.pipeline.name().to_string(),
            ),
            ("PACH_DATUM_ID".to_string(), d.id.clone()),
        ]);
        env.extend(self.s3_endpoint(None));
        env.extend(ctx.secrets.env.iter().cloned());
        for i in &d.inputs {
            let (commit, entries) = ctx.inputs.get(&i.name).ok_or_else(|| {
                PpsError::FailedPrecondition(format!("datum input '{}' has no commit", i.name))
            })?;
            for f in &i.files {
                let entry = entries.get(&f.path).cloned().ok_or_else(|| {
                    PpsError::FailedPrecondition(format!(
                        "file '{}' vanished from input '{}'",
                        f.path, i.name
                    ))
                })?;
                mounts.push(InputMount {
                    input: i.name.clone(),
                    entry,
                    empty: i.empty_files,
                    lazy: i.lazy,
                });
            }
            let glob_path = if i.glob_path == "/" {
                String::new()
            } else {
                i.glob_path.clone()
            };
            env.push((i.name.clone(), format!("/pfs/{}{}", i.name, glob_path)));
            env.push((format!("{}_COMMIT", i.name), commit.clone()));
        }
        let linked: HashMap<String, FileEntry> = mounts
            .iter()
            .map(|m| (format!("/pfs/{}{}", m.input, m.entry.path), m.entry.clone()))
            .collect();
        let command = Command {
            cmd: t.cmd.clone(),
            stdin: t.stdin.clone(),
            env: env.clone(),
            working_dir: t.working_dir.clone(),
            timeout: spec.datum_timeout(),
        };
        let tries = spec.datum_tries().max(1);
        let mut reason = String::new();
        let mut attempt = 0;
        let mut stats = ProcessStats {
            download_bytes: mounts
                .iter()
                .filter(|m| !m.empty)
                .map(|m| m.entry.size)
                .sum(),
            ..Default::default()
        };
        let mut session: Option<SandboxSession> =
            ctx.sessions.lock().ok().and_then(|mut s| s.pop());
        let mut restart = io.restart.clone();
        restart.mark_unchanged();
        let result = loop {
            attempt += 1;
            let step = async {
                let (outcome, s) = self
                    .run_fresh(
                        ctx,
                        sandbox,
                        &mut session,
                        &mounts,
                        &command,
                        log,
                        io,
                        &mut stats,
                    )
                    .await?;
                let ok = outcome.code == Some(0)
                    || outcome
                        .code
                        .is_some_and(|c| t.accept_return_code.contains(&(c as i64)));
                if !ok {
                    return Ok(Err(match (outcome.timed_out, outcome.code) {
                        (true, _) => format!(
                            "timed out after {}",
                            humantime::format_duration(command.timeout.unwrap_or_default())
                        ),
                        (false, Some(c)) => format!("exit code {c}"),
                        (false, None) => "killed by a signal".to_string(),
                    }));
                }
                let upload = std::time::Instant::now();
                let entries = pach_worker::collect(&mut io.out, s.dir(), &linked).await?;
                stats.upload_ns += upload.elapsed().as_nanos() as u64;
                stats.upload_bytes = entries.iter().map(|e| e.size).sum();
                Ok(Ok(entries))
            };
            let restarted = async {
                // A closed channel: no restart can come.
                if restart.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            let step: std::result::Result<
                std::result::Result<Vec<FileEntry>, String>,
                pach_worker::WorkerError,
            > = tokio::select! {
                s = step => s,
                () = restarted => {
                    // Killing the sandbox kills the user code; the datum
                    // starts over in a new one. As asked, not failed: the
                    // try does not count against datum_tries.
                    // What the killed run printed stays in the datum's log.
                    if let Some(s) = &session
                        && let Ok(printed) = pach_worker::read_running_log(&s.log_file(), 0).await
                    {
                        log.extend_from_slice(&printed);
                    }
                    session = None;
                    log.extend_from_slice(
                        format!("datum try {attempt} of {tries} restarted: restart datum asked for it\n")
                            .as_bytes(),
                    );
                    attempt -= 1;
                    continue;
                }
            };
            match step {
                Ok(Ok(entries)) => break Some(entries),
                Ok(Err(r)) => reason = r,
                Err(e) => reason = e.to_string(),
            }
            log.extend_from_slice(
                format!("datum try {attempt} of {tries} failed: {reason}\n").as_bytes(),
            );
            if attempt >= tries {
                break None;
            }
        };
        let (state, entries, reason) = match result {
            Some(entries) => (DatumState::Success, entries, String::new()),
            None if !t.err_cmd.is_empty() => {
                let err = Command {
                    cmd: t.err_cmd.clone(),
                    stdin: t.err_stdin.clone(),
                    env,
                    working_dir: t.working_dir.clone(),
                    timeout: spec.datum_timeout(),
                };
                // err_cmd sees the failed datum's /pfs, freshly written (lazy
                // files can be read once).
                let recovered = self
                    .run_fresh(
                        ctx,
                        sandbox,
                        &mut session,
                        &mounts,
                        &err,
                        log,
                        io,
                        &mut stats,
                    )
                    .await
                    .map(|(outcome, _)| outcome);
                match recovered {
                    Ok(o) if o.code == Some(0) => (DatumState::Recovered, vec![], reason),
                    _ => (DatumState::Failed, vec![], reason),
                }
            }
            None => (DatumState::Failed, vec![], reason),
        };
        if let Some(mut s) = session
            && s.is_alive()
            && let Ok(mut pool) = ctx.sessions.lock()
        {
            pool.push(s);
        }
        Ok(DatumRun {
            state,
            entries,
            tries: attempt,
            reason,
            stats,
        })
    }

    /// Runs `command` on the datum's inputs, freshly written into this
    /// slot's sandbox (started again if it died); returns the outcome and
    /// the sandbox, whose `/pfs/out` holds what the command wrote.
    #[allow(clippy::too_many_arguments)]
    async fn run_fresh<'s>(
        &self,
        ctx: &JobContext,
        sandbox: &Sandbox,
        session: &'s mut Option<SandboxSession>,
        mounts: &[InputMount],
        command: &Command,
        log: &mut Vec<u8>,
        io: &mut DatumIo,
        stats: &mut ProcessStats,
    ) -> std::result::Result<(pach_worker::Outcome, &'s mut SandboxSession), pach_worker::WorkerError>
    {
        if !session.as_mut().is_some_and(|s| s.is_alive()) {
            *session = Some(self.new_session(ctx, sandbox).await?);
        }
        let s = session
            .as_mut()
            .ok_or(pach_worker::WorkerError::NoBubblewrap)?;
        let download = std::time::Instant::now();
        s.reset().await?;
        let lazy = pach_worker::materialise(
            self.pfs.content(),
            s.dir(),
            &ctx.input_names,
            mounts,
            &mut io.ahead,
        )
        .await?;
        stats.download_ns += download.elapsed().as_nanos() as u64;
        let process = std::time::Instant::now();
        let outcome = s.run(command, log).await;
        stats.process_ns += process.elapsed().as_nanos() as u64;
        lazy.release().await;
        Ok((outcome?, s))
    }

    /// A new sandbox for this job, in its own slot directory.
    async fn new_session(
        &self,
        ctx: &JobContext,
        sandbox: &Sandbox,
    ) -> std::result::Result<SandboxSession, pach_worker::WorkerError> {
        let n = ctx.slots.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let slot = self.scratch.join(&ctx.job_id).join(format!("slot-{n}"));
        let _ = tokio::fs::remove_dir_all(&slot).await;
        sandbox
            .start(&slot, self.datum_network(&ctx.pipeline))
            .await
    }
}

/// What `restart datum` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Restarted {
    /// These datums of the running job are being run again.
    Running(Vec<String>),
    /// This new job runs the finished job's failed datums again.
    NewJob(String),
    /// A finished job asked to restart without a filter had no failed datum:
    /// nothing to run again (python-pachyderm's `restart_datum(job)` expects
    /// success there).
    Nothing,
}

/// How a datum that ran ended.
pub(crate) struct DatumRun {
    state: DatumState,
    entries: Vec<FileEntry>,
    tries: u64,
    reason: String,
    stats: ProcessStats,
}

pub(crate) enum RunEnd {
    Done(Vec<(String, Vec<FileEntry>)>),
    Failed(String),
    Killed,
}

/// The cache key of a datum: its inputs (the datum id) under the pipeline's salt.
fn cache_id(salt: &str, datum: &str) -> String {
    let mut h = blake3::Hasher::new();
    h.update(salt.as_bytes());
    h.update(&[0]);
    h.update(datum.as_bytes());
    h.finalize().to_hex().to_string()
}

pub(crate) async fn job_reason_if_killed(
    meta: &dyn pach_meta::MetaStore,
    id: &str,
) -> Option<String> {
    match load::<JobRecord>(meta, &job_key(id)).await {
        Ok(Some((j, _))) if j.state == JobState::Killed => Some(j.reason),
        Ok(None) => Some("job deleted".into()),
        _ => None,
    }
}

async fn job_reason(meta: &dyn pach_meta::MetaStore, id: &str) -> String {
    job_reason_if_killed(meta, id)
        .await
        .unwrap_or_else(|| "stopped".into())
}
