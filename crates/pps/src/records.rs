//! The records pipelines keep in the metadata store. Key layout (the same in
//! every metadata backend):
//!
//! - `pps/pipelines/<pipeline>`: the spec, its version, state and salt;
//! - `pps/pipelines/<pipeline>/<version>`: the record as it was before each
//!   update (`list pipeline --history`);
//! - `pps/jobs/<job id>`: one per output commit (the job id is the output
//!   commit's id, so a job and its commit are found from each other);
//! - `pps/datums/<job id>/<datum id>`: what each datum of a job did;
//! - `pps/cache/<pipeline>/<key>`: outputs of datums that succeeded, keyed by
//!   the datum's inputs and the pipeline's salt, for incremental processing;
//! - `pps/tasks/<job id>/<n>`: a running job's datums, in shares that workers
//!   claim (gone when the job ends);
//! - `pps/slots/<job id>/<k>`: the job's `parallelism` seats; a worker holds
//!   one while it runs a task of the job;
//! - `pps/secrets/<name>`: secrets given to user code. Left out of extracts,
//!   as Pachyderm leaves them out (it keeps them in Kubernetes).
//!
//! Datum outputs and logs, and the datum lists and outputs of tasks, live in
//! the bucket; records only name them.

use pach_pfs::CommitName;
use pach_storage::{ContentHash, FileEntry};
use serde::{Deserialize, Serialize};

use crate::datum::DatumInput;
use crate::spec::PipelineSpec;

pub const PIPELINES: &str = "pps/pipelines/";
pub const JOBS: &str = "pps/jobs/";
pub const DATUMS: &str = "pps/datums/";
pub const CACHE: &str = "pps/cache/";
pub const TASKS: &str = "pps/tasks/";
pub const SLOTS: &str = "pps/slots/";
pub const SECRETS: &str = "pps/secrets/";
/// Spouts' and services' user code's output (`runlog`).
pub const RUNLOGS: &str = "pps/runlogs/";
/// The last failed fetch of each git input, while it keeps failing.
pub const GIT_ERRORS: &str = "pps/git-errors/";
/// `restart datum` requests on running jobs, and the answers of the workers
/// running the jobs' tasks.
pub const RESTARTS: &str = "pps/restarts/";
pub const RESTART_ANSWERS: &str = "pps/restart-answers/";

pub fn pipeline_key(name: &str) -> String {
    format!("{PIPELINES}{name}")
}
/// The record of `name` before its update to `version + 1`.
pub fn pipeline_version_key(name: &str, version: u64) -> String {
    format!("{PIPELINES}{name}/{version:010}")
}
pub fn pipeline_versions_prefix(name: &str) -> String {
    format!("{PIPELINES}{name}/")
}
pub fn runlog_key(pipeline: &str) -> String {
    format!("{RUNLOGS}{pipeline}")
}
pub fn git_errors_prefix(pipeline: &str) -> String {
    format!("{GIT_ERRORS}{pipeline}/")
}
pub fn git_error_key(pipeline: &str, input: &str) -> String {
    format!("{GIT_ERRORS}{pipeline}/{input}")
}
pub fn secret_key(name: &str) -> String {
    format!("{SECRETS}{name}")
}
pub fn job_key(id: &str) -> String {
    format!("{JOBS}{id}")
}
pub fn datums_prefix(job: &str) -> String {
    format!("{DATUMS}{job}/")
}
pub fn datum_key(job: &str, datum: &str) -> String {
    format!("{DATUMS}{job}/{datum}")
}
pub fn cache_prefix(pipeline: &str) -> String {
    format!("{CACHE}{pipeline}/")
}
pub fn cache_key(pipeline: &str, key: &str) -> String {
    format!("{CACHE}{pipeline}/{key}")
}
pub fn tasks_prefix(job: &str) -> String {
    format!("{TASKS}{job}/")
}
pub fn task_key(job: &str, index: u32) -> String {
    format!("{TASKS}{job}/{index:06}")
}
pub fn restarts_prefix(job: &str) -> String {
    format!("{RESTARTS}{job}/")
}
pub fn restart_key(job: &str, request: &str) -> String {
    format!("{RESTARTS}{job}/{request}")
}
pub fn restart_answers_job_prefix(job: &str) -> String {
    format!("{RESTART_ANSWERS}{job}/")
}
pub fn restart_answers_prefix(job: &str, request: &str) -> String {
    format!("{RESTART_ANSWERS}{job}/{request}/")
}
pub fn restart_answer_key(job: &str, request: &str, task: u32) -> String {
    format!("{RESTART_ANSWERS}{job}/{request}/{task:06}")
}
pub fn slots_prefix(job: &str) -> String {
    format!("{SLOTS}{job}/")
}
pub fn slot_key(job: &str, slot: u32) -> String {
    format!("{SLOTS}{job}/{slot:04}")
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum PipelineState {
    #[serde(rename = "PIPELINE_RUNNING")]
    Running,
    #[serde(rename = "PIPELINE_PAUSED")]
    Paused,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PipelineRecord {
    pub spec: PipelineSpec,
    pub version: u64,
    pub state: PipelineState,
    /// Part of every datum's cache key: a new salt (`--reprocess`) reruns all.
    pub salt: String,
    pub created_ns: i64,
    pub updated_ns: i64,
}

impl PipelineRecord {
    pub fn name(&self) -> &str {
        &self.spec.pipeline.name
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum JobState {
    #[serde(rename = "JOB_STARTING")]
    Starting,
    #[serde(rename = "JOB_RUNNING")]
    Running,
    #[serde(rename = "JOB_SUCCESS")]
    Success,
    #[serde(rename = "JOB_FAILURE")]
    Failure,
    #[serde(rename = "JOB_KILLED")]
    Killed,
}

impl JobState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Success | JobState::Failure | JobState::Killed
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Starting => "starting",
            JobState::Running => "running",
            JobState::Success => "success",
            JobState::Failure => "failure",
            JobState::Killed => "killed",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DatumCounts {
    pub total: u64,
    pub processed: u64,
    pub skipped: u64,
    pub failed: u64,
    pub recovered: u64,
}

/// Where a datum's time went and how many bytes it moved (Pachyderm's
/// `ProcessStats`); a job's are the sums over the datums it ran.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcessStats {
    /// Writing the datum's inputs into its sandbox.
    pub download_ns: u64,
    /// Running user code.
    pub process_ns: u64,
    /// Storing what user code left in `/pfs/out`.
    pub upload_ns: u64,
    pub download_bytes: u64,
    pub upload_bytes: u64,
}

impl ProcessStats {
    pub fn add(&mut self, o: &ProcessStats) {
        self.download_ns += o.download_ns;
        self.process_ns += o.process_ns;
        self.upload_ns += o.upload_ns;
        self.download_bytes += o.download_bytes;
        self.upload_bytes += o.upload_bytes;
    }
}

/// A line the job's runner logged (Pachyderm's "master" logs).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobLogLine {
    pub ts_ns: i64,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobRecord {
    pub id: String,
    pub pipeline: String,
    pub pipeline_version: u64,
    pub output_commit: CommitName,
    pub input_commits: Vec<CommitName>,
    pub state: JobState,
    pub reason: String,
    pub started_ns: i64,
    pub finished_ns: Option<i64>,
    pub counts: DatumCounts,
    /// Sums over the datums this job ran (reused ones cost nothing).
    #[serde(default)]
    pub stats: ProcessStats,
    /// With `enable_stats`: the commit of the output repo's `stats` branch
    /// that describes every datum of the job, once the job has ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats_commit: Option<CommitName>,
    /// What the runner did, a few lines per job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<JobLogLine>,
}

impl JobRecord {
    pub(crate) fn note(&mut self, message: impl Into<String>) {
        self.log.push(JobLogLine {
            ts_ns: crate::now_ns(),
            message: message.into(),
        });
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum DatumState {
    #[serde(rename = "SUCCESS")]
    Success,
    #[serde(rename = "SKIPPED")]
    Skipped,
    #[serde(rename = "FAILED")]
    Failed,
    #[serde(rename = "RECOVERED")]
    Recovered,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatumRecord {
    pub id: String,
    pub job: String,
    pub state: DatumState,
    pub inputs: Vec<DatumInput>,
    /// The change set (in the bucket) holding the datum's output files.
    pub outputs: Option<ContentHash>,
    pub output_files: u64,
    pub tries: u64,
    pub started_ns: i64,
    pub finished_ns: i64,
    /// The bucket object holding the datum's logs, when it ran.
    pub log: Option<String>,
    pub reason: String,
    #[serde(default)]
    pub stats: ProcessStats,
    /// For a reused datum: the job that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_job: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CacheRecord {
    /// The change set holding the datum's output files.
    pub outputs: ContentHash,
    /// The same entries, kept inline when they are small, so that reusing the
    /// datum costs no bucket read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<Vec<FileEntry>>,
    pub job: String,
    pub datum: String,
}

/// Output entries of a datum kept inline in its cache record up to this size.
pub const INLINE_OUTPUTS: usize = 2048;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum TaskState {
    /// Waiting for a worker (or its worker's lease ran out).
    Pending,
    /// A worker runs it and renews its lease.
    Claimed,
    /// Every datum ended; `result` names the outputs.
    Done,
}

/// A `restart datum` request on a running job: the workers running its
/// tasks kill the user code of a running datum whose inputs match every
/// filter and run it again, and answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RestartRequest {
    pub filters: Vec<String>,
    /// When it was made (milliseconds since the epoch): workers ignore a
    /// request its maker left behind.
    pub created_ms: u64,
}

/// A worker's answer to a [`RestartRequest`], for one task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RestartAnswer {
    /// The datum it restarted, if its running datum matched.
    pub restarted: Option<String>,
}

/// A share of a job's datums. The datums themselves are in the bucket
/// (`plan`), so the record stays small whatever the datums hold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskRecord {
    pub job: String,
    pub pipeline: String,
    pub index: u32,
    /// The job's parallelism: how many of its tasks may run at once.
    pub parallelism: u32,
    /// Bucket object holding the task's datums.
    pub plan: String,
    pub datums: u64,
    pub state: TaskState,
    #[serde(default)]
    pub worker: String,
    #[serde(default)]
    pub slot: u32,
    /// When the worker's lease ends (milliseconds since the epoch).
    #[serde(default)]
    pub expires_ms: u64,
    /// How many workers have claimed it (more than one: it was retried).
    #[serde(default)]
    pub claims: u32,
    /// Datums ended so far, by outcome.
    #[serde(default)]
    pub counts: DatumCounts,
    /// Sums of the stats of the datums run so far.
    #[serde(default)]
    pub stats: ProcessStats,
    /// The first datum that failed, and why.
    #[serde(default)]
    pub failure: Option<(String, String)>,
    /// Bucket object holding the outputs of every datum, once done.
    #[serde(default)]
    pub result: Option<String>,
}

/// A secret: named values user code receives (as environment variables or
/// files, per `transform.secrets`). Values are hex-encoded bytes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SecretRecord {
    pub name: String,
    /// Kubernetes' secret type, kept as given (`Opaque` by default).
    #[serde(default)]
    pub kind: String,
    pub data: std::collections::BTreeMap<String, String>,
    pub created_ns: i64,
}

/// One of a job's `parallelism` seats, held by the worker running a task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SlotRecord {
    pub worker: String,
    pub task: u32,
    pub expires_ms: u64,
}
