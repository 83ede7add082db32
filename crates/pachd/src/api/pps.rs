//! `pps.API`, Pachyderm 1.9's pipeline service: translates its typed
//! messages to and from `pach_pps` (pipelines, jobs, datums, logs). A
//! pipeline spec arrives as a typed `CreatePipelineRequest`; it goes through
//! protobuf's JSON (field names as in the .proto file) into the spec parser
//! of `pach_pps::spec`, so that both ways in (this and spec files) meet the
//! same defaults and validation.
//!
//! Small additions Pachyderm 1.9's clients do not see: `RestartDatum` (of
//! a finished job) and `RunPipeline` name the job they start in the
//! response metadata key [`JOB_HEADER`] (1.9 answers both with an empty
//! message), and `RestartDatum` of a running job names the datums it
//! restarted in [`DATUMS_HEADER`]; pachctl prints them.

use std::collections::HashMap;
use std::pin::Pin;

use futures::{Stream, StreamExt};
use pach_api::json::FieldNames;
use pach_api::{pfs, pps};
use pach_pfs::CommitName;
use pach_pps::logs::{LogMessage, LogsRequest};
use pach_pps::records::{
    DatumRecord, DatumState, JobRecord, JobState, PipelineRecord, PipelineState, ProcessStats,
};
use pach_pps::spec::{self, Input, PipelineSpec};
use pach_pps::stats::StatsDatum;
use pach_pps::{JobFilter, Pps, PpsError, Restarted};
use pps::api_server::Api;
use tonic::{Request, Response, Status};

use super::status::status;

/// The response metadata key naming the job a call started.
pub(crate) const JOB_HEADER: &str = "pach-job";
/// The response metadata key naming the datums `RestartDatum` restarted in
/// a running job (comma-separated).
pub(crate) const DATUMS_HEADER: &str = "pach-datums";

/// How old an unreferenced object must be for `GarbageCollect` to delete it
/// (pachctl garbage-collect's default): uploads in flight are younger.
const GC_GRACE: std::time::Duration = std::time::Duration::from_secs(600);

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

pub(crate) struct PpsService {
    pub pps: Pps,
    /// Who may call what (`authz`).
    pub(crate) authz: super::authz::Authz,
}

fn stream_of<T: Send + 'static>(items: Vec<T>) -> ResponseStream<T> {
    Box::pin(futures::stream::iter(items.into_iter().map(Ok)))
}

pub(crate) fn pps_status(e: PpsError) -> Status {
    status(e)
}

pub(crate) fn invalid(message: impl Into<String>) -> Status {
    Status::invalid_argument(super::status::safe_message(&message.into()))
}

// ---- from the wire ----

fn pipeline_name(p: Option<pps::Pipeline>, what: &str) -> Result<String, Status> {
    match p {
        Some(p) if !p.name.is_empty() => Ok(p.name),
        _ => Err(invalid(format!("{what} needs a pipeline name"))),
    }
}

fn job_id(j: Option<pps::Job>, what: &str) -> Result<String, Status> {
    match j {
        Some(j) if !j.id.is_empty() => Ok(j.id),
        _ => Err(invalid(format!("{what} needs a job id"))),
    }
}

/// (repo, commit id or branch) of a commit on the wire.
fn commit_ref(c: &pfs::Commit, what: &str) -> Result<(String, String), Status> {
    let repo = c.repo.as_ref().map(|r| r.name.clone()).unwrap_or_default();
    if repo.is_empty() || c.id.is_empty() {
        return Err(invalid(format!(
            "{what} needs a repo and a commit id or branch"
        )));
    }
    Ok((repo, c.id.clone()))
}

/// The spec a `CreatePipelineRequest` describes, with `update` and
/// `reprocess` (request flags, not spec fields).
fn spec_of(r: pps::CreatePipelineRequest) -> Result<(PipelineSpec, bool, bool), Status> {
    let (json, update, reprocess) = spec_json(r)?;
    let spec = spec::parse_value(json).map_err(pps_status)?;
    Ok((spec, update, reprocess))
}

/// The JSON of a spec (proto field names, as specs are written), with the
/// request's `update` and `reprocess` flags.
pub(crate) fn spec_json(
    mut r: pps::CreatePipelineRequest,
) -> Result<(serde_json::Value, bool, bool), Status> {
    if r.tf_job.is_some() {
        return Err(invalid(
            "tf_job pipelines run TensorFlow jobs through Kubeflow on Kubernetes, which this cluster does not have; use transform.cmd",
        ));
    }
    if r.spec_commit.is_some() {
        return Err(invalid(
            "spec_commit names a commit of Pachyderm's spec repo, which this cluster does not keep; send the spec itself",
        ));
    }
    let (update, reprocess) = (r.update, r.reprocess);
    r.update = false;
    r.reprocess = false;
    let json = pach_api::json::to_json(&r, FieldNames::Proto)
        .map_err(|e| Status::internal(format!("encoding the spec: {e}")))?;
    Ok((json, update, reprocess))
}

// ---- to the wire ----

/// The response metadata key carrying each warning about a created
/// pipeline's spec (`spec::warnings`), which pachctl prints.
pub(crate) const WARNING_HEADER: &str = "pach-warning";

pub(crate) fn with_warnings<T>(mut r: Response<T>, warnings: &[String]) -> Response<T> {
    for w in warnings {
        if let Ok(v) = w.parse() {
            r.metadata_mut().append(WARNING_HEADER, v);
        }
    }
    r
}

pub(crate) fn timestamp(ns: i64) -> Option<prost_types::Timestamp> {
    (ns > 0).then(|| prost_types::Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: ns.rem_euclid(1_000_000_000) as i32,
    })
}

fn duration_ns(ns: u64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: (ns / 1_000_000_000) as i64,
        nanos: (ns % 1_000_000_000) as i32,
    })
}

fn duration_of(text: &Option<String>) -> Option<prost_types::Duration> {
    let d = spec::parse_duration(text.as_deref()?).ok()?;
    duration_ns(d.as_nanos() as u64)
}

/// A part of the spec (kept as its JSON, or typed with the same field
/// names) as its message.
fn message_of<M: prost::Message + prost::Name + Default, T: serde::Serialize>(
    v: &Option<T>,
) -> Option<M> {
    pach_api::json::from_json(serde_json::to_value(v.as_ref()?).ok()?).ok()
}

fn commit(repo: &str, id: &str) -> pfs::Commit {
    pfs::Commit {
        repo: Some(pfs::Repo { name: repo.into() }),
        id: id.into(),
    }
}

fn commit_of(c: &CommitName) -> pfs::Commit {
    commit(&c.repo, &c.id)
}

fn process_stats(s: &ProcessStats) -> pps::ProcessStats {
    pps::ProcessStats {
        download_time: duration_ns(s.download_ns),
        process_time: duration_ns(s.process_ns),
        upload_time: duration_ns(s.upload_ns),
        download_bytes: s.download_bytes,
        upload_bytes: s.upload_bytes,
    }
}

fn transform(t: &spec::Transform) -> pps::Transform {
    pps::Transform {
        image: t.image.clone(),
        cmd: t.cmd.clone(),
        err_cmd: t.err_cmd.clone(),
        env: t.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        secrets: t
            .secrets
            .iter()
            .map(|s| pps::Secret {
                name: s.name.clone(),
                key: s.key.clone(),
                mount_path: s.mount_path.clone(),
                env_var: s.env_var.clone(),
            })
            .collect(),
        image_pull_secrets: t.image_pull_secrets.clone(),
        stdin: t.stdin.clone(),
        err_stdin: t.err_stdin.clone(),
        accept_return_code: t.accept_return_code.clone(),
        debug: t.debug,
        user: t.user.clone(),
        working_dir: t.working_dir.clone(),
        dockerfile: t.dockerfile.clone(),
    }
}

/// The input tree on the wire; `commits` fills in the commit each pfs input
/// was read at (a job's). A `group` input (a later Pachyderm's) has no form
/// in 1.9's messages and is sent empty.
fn input(i: &Input, commits: &[CommitName]) -> pps::Input {
    let many = |list: &[Input]| list.iter().map(|c| input(c, commits)).collect();
    pps::Input {
        pfs: i.pfs.as_ref().map(|p| pps::PfsInput {
            name: p.name.clone(),
            repo: p.repo.clone(),
            branch: p.branch.clone(),
            commit: commits
                .iter()
                .find(|c| c.repo == p.repo)
                .map(|c| c.id.clone())
                .unwrap_or_else(|| p.commit.clone()),
            glob: p.glob.clone(),
            join_on: p.join_on.clone(),
            lazy: p.lazy,
            empty_files: p.empty_files,
        }),
        join: many(&i.join),
        cross: many(&i.cross),
        union: many(&i.union),
        cron: i.cron.as_ref().map(|c| pps::CronInput {
            name: c.name.clone(),
            repo: c.repo.clone(),
            commit: commits
                .iter()
                .find(|x| x.repo == c.repo)
                .map(|x| x.id.clone())
                .unwrap_or_default(),
            spec: c.spec.clone(),
            overwrite: c.overwrite,
            start: c
                .start
                .as_deref()
                .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .and_then(|d| timestamp(d.as_nanos() as i64)),
        }),
        git: i.git.as_ref().map(|g| pps::GitInput {
            name: g.name.clone(),
            url: g.url.clone(),
            branch: g.branch.clone(),
            commit: commits
                .iter()
                .find(|x| x.repo == g.name)
                .map(|x| x.id.clone())
                .unwrap_or_default(),
        }),
    }
}

fn resources(r: &Option<spec::Resources>) -> Option<pps::ResourceSpec> {
    r.as_ref().map(|r| pps::ResourceSpec {
        cpu: r.cpu as f32,
        memory: r.memory.clone(),
        gpu: message_of(&r.gpu),
        disk: r.disk.clone(),
    })
}

fn job_state(s: JobState) -> pps::JobState {
    match s {
        JobState::Starting => pps::JobState::JobStarting,
        JobState::Running => pps::JobState::JobRunning,
        JobState::Success => pps::JobState::JobSuccess,
        JobState::Failure => pps::JobState::JobFailure,
        JobState::Killed => pps::JobState::JobKilled,
    }
}

fn datum_state(s: DatumState) -> pps::DatumState {
    match s {
        DatumState::Success => pps::DatumState::Success,
        DatumState::Skipped => pps::DatumState::Skipped,
        DatumState::Failed => pps::DatumState::Failed,
        DatumState::Recovered => pps::DatumState::Recovered,
    }
}

/// A pipeline as Pachyderm 1.9 shows it; `jobs` are its jobs, newest first.
/// A pipeline as `inspect pipeline` shows it; `githook` is pachd's webhook
/// URL, shown for pipelines with git inputs (1.9's "pending" when pachd
/// serves none).
fn pipeline_info(
    p: &PipelineRecord,
    jobs: &[&JobRecord],
    githook: Option<&str>,
) -> pps::PipelineInfo {
    let s = &p.spec;
    let running = jobs.iter().any(|j| !j.state.is_terminal());
    let state = match p.state {
        PipelineState::Paused => pps::PipelineState::PipelinePaused,
        // A standby pipeline sleeps while it has nothing to do.
        PipelineState::Running if s.standby && !running => pps::PipelineState::PipelineStandby,
        PipelineState::Running => pps::PipelineState::PipelineRunning,
    };
    let mut job_counts: HashMap<i32, i32> = HashMap::new();
    for j in jobs {
        *job_counts.entry(job_state(j.state) as i32).or_default() += 1;
    }
    pps::PipelineInfo {
        id: String::new(),
        pipeline: Some(pps::Pipeline {
            name: p.name().to_string(),
        }),
        version: p.version,
        transform: Some(transform(&s.transform)),
        tf_job: None,
        parallelism_spec: s.parallelism_spec.as_ref().map(|x| pps::ParallelismSpec {
            constant: x.constant,
            coefficient: x.coefficient,
        }),
        hashtree_spec: message_of(&s.hashtree_spec),
        egress: s
            .egress
            .as_ref()
            .map(|e| pps::Egress { url: e.url.clone() }),
        created_at: timestamp(p.created_ns),
        state: state as i32,
        stopped: p.state == PipelineState::Paused,
        // The failures of git inputs' fetches, filled in by the caller.
        recent_error: String::new(),
        job_counts,
        last_job_state: jobs.first().map(|j| job_state(j.state) as i32).unwrap_or(0),
        output_branch: s.output_branch.clone(),
        resource_requests: resources(&s.resource_requests),
        resource_limits: resources(&s.resource_limits),
        input: s.input.as_ref().map(|i| input(i, &[])),
        description: s.description.clone(),
        cache_size: s.cache_size.clone(),
        enable_stats: s.enable_stats,
        salt: p.salt.clone(),
        // What the spec asks that this cluster does not do (1.9 has none).
        reason: spec::warnings(s).join("; "),
        max_queue_size: s.max_queue_size,
        service: message_of(&s.service),
        spout: message_of(&s.spout),
        chunk_spec: message_of(&s.chunk_spec),
        datum_timeout: duration_of(&s.datum_timeout),
        job_timeout: duration_of(&s.job_timeout),
        githook_url: match s.input.as_ref().map(pach_pps::git::git_inputs) {
            Some(g) if !g.is_empty() => githook.unwrap_or("pending").to_string(),
            _ => String::new(),
        },
        spec_commit: None,
        standby: s.standby,
        datum_tries: s.datum_tries() as i64,
        scheduling_spec: message_of(&s.scheduling_spec),
        pod_spec: s.pod_spec.clone(),
        pod_patch: s.pod_patch.clone(),
    }
}

/// The request that creates the pipeline as it is (Pachyderm's
/// `PipelineReqFromInfo`): what `admin.API` extracts.
pub(crate) fn pipeline_request(p: &PipelineRecord) -> pps::CreatePipelineRequest {
    let i = pipeline_info(p, &[], None);
    pps::CreatePipelineRequest {
        pipeline: i.pipeline,
        tf_job: None,
        transform: i.transform,
        parallelism_spec: i.parallelism_spec,
        hashtree_spec: i.hashtree_spec,
        egress: i.egress,
        update: false,
        output_branch: i.output_branch,
        resource_requests: i.resource_requests,
        resource_limits: i.resource_limits,
        input: i.input,
        description: i.description,
        cache_size: i.cache_size,
        enable_stats: i.enable_stats,
        reprocess: false,
        max_queue_size: i.max_queue_size,
        service: i.service,
        spout: i.spout,
        chunk_spec: i.chunk_spec,
        datum_timeout: i.datum_timeout,
        job_timeout: i.job_timeout,
        salt: i.salt,
        standby: i.standby,
        datum_tries: i.datum_tries,
        scheduling_spec: i.scheduling_spec,
        pod_spec: i.pod_spec,
        pod_patch: i.pod_patch,
        spec_commit: None,
    }
}

/// The request that records the job as it is: what `admin.API` extracts.
pub(crate) fn job_request(j: &JobRecord) -> pps::CreateJobRequest {
    let i = job_info(j, None);
    pps::CreateJobRequest {
        pipeline: i.pipeline,
        output_commit: i.output_commit,
        restart: 0,
        data_processed: i.data_processed,
        data_skipped: i.data_skipped,
        data_total: i.data_total,
        data_failed: i.data_failed,
        data_recovered: i.data_recovered,
        stats: i.stats,
        stats_commit: i.stats_commit,
        state: i.state,
        reason: i.reason,
        started: i.started,
        finished: i.finished,
    }
}

/// A job as Pachyderm 1.9 shows it; `p` is the pipeline version it ran.
fn job_info(j: &JobRecord, p: Option<&PipelineRecord>) -> pps::JobInfo {
    let mut info = pps::JobInfo {
        job: Some(pps::Job { id: j.id.clone() }),
        pipeline: Some(pps::Pipeline {
            name: j.pipeline.clone(),
        }),
        pipeline_version: j.pipeline_version,
        started: timestamp(j.started_ns),
        finished: j.finished_ns.and_then(timestamp),
        output_commit: Some(commit_of(&j.output_commit)),
        state: job_state(j.state) as i32,
        reason: j.reason.clone(),
        output_repo: Some(pfs::Repo {
            name: j.output_commit.repo.clone(),
        }),
        data_processed: j.counts.processed as i64,
        data_skipped: j.counts.skipped as i64,
        data_failed: j.counts.failed as i64,
        data_recovered: j.counts.recovered as i64,
        data_total: j.counts.total as i64,
        stats: Some(process_stats(&j.stats)),
        stats_commit: j.stats_commit.as_ref().map(commit_of),
        ..Default::default()
    };
    if let Some(p) = p {
        let s = &p.spec;
        info.transform = Some(transform(&s.transform));
        info.parallelism_spec = s.parallelism_spec.as_ref().map(|x| pps::ParallelismSpec {
            constant: x.constant,
            coefficient: x.coefficient,
        });
        info.egress = s
            .egress
            .as_ref()
            .map(|e| pps::Egress { url: e.url.clone() });
        info.service = message_of(&s.service);
        info.spout = message_of(&s.spout);
        info.output_branch = s.output_branch.clone();
        info.resource_requests = resources(&s.resource_requests);
        info.resource_limits = resources(&s.resource_limits);
        info.input = s.input.as_ref().map(|i| input(i, &j.input_commits));
        info.enable_stats = s.enable_stats;
        info.salt = p.salt.clone();
        info.chunk_spec = message_of(&s.chunk_spec);
        info.datum_timeout = duration_of(&s.datum_timeout);
        info.job_timeout = duration_of(&s.job_timeout);
        info.datum_tries = s.datum_tries() as i64;
        info.scheduling_spec = message_of(&s.scheduling_spec);
        info.pod_spec = s.pod_spec.clone();
        info.pod_patch = s.pod_patch.clone();
    }
    info
}

fn file_info(repo: &str, commit_id: &str, path: &str, size: u64, hash_hex: &str) -> pfs::FileInfo {
    pfs::FileInfo {
        file: Some(pfs::File {
            commit: Some(commit(repo, commit_id)),
            path: path.to_string(),
        }),
        file_type: pfs::FileType::File as i32,
        size_bytes: size,
        hash: hex::decode(hash_hex).unwrap_or_default(),
        ..Default::default()
    }
}

/// A datum from its record; with the job's stats, as the stats commit has it.
fn datum_info(j: &JobRecord, d: &DatumRecord, stats: Option<&StatsDatum>) -> pps::DatumInfo {
    let commit_of_repo = |repo: &str| {
        j.input_commits
            .iter()
            .find(|c| c.repo == repo)
            .map(|c| c.id.clone())
            .unwrap_or_default()
    };
    let data = d
        .inputs
        .iter()
        .flat_map(|i| {
            let id = commit_of_repo(&i.repo);
            i.files
                .iter()
                .map(move |f| file_info(&i.repo, &id, &f.path, f.size, &f.hash))
        })
        .collect();
    let (state, process) = match stats {
        Some(s) => (datum_state(s.state), s.stats),
        None => (datum_state(d.state), d.stats),
    };
    pps::DatumInfo {
        datum: Some(pps::Datum {
            id: d.id.clone(),
            job: Some(pps::Job { id: j.id.clone() }),
        }),
        state: state as i32,
        stats: Some(process_stats(&process)),
        pfs_state: stats.map(|s| pfs::File {
            commit: Some(commit_of(&s.commit)),
            path: s.pfs_path.clone(),
        }),
        data,
    }
}

fn log_message(m: LogMessage) -> pps::LogMessage {
    pps::LogMessage {
        pipeline_name: m.pipeline,
        job_id: m.job,
        worker_id: m.worker,
        datum_id: m.datum,
        master: m.master,
        data: m
            .data
            .into_iter()
            .map(|f| pps::InputFile {
                path: f.path,
                hash: f.hash,
            })
            .collect(),
        user: m.user,
        ts: timestamp(m.ts_ns),
        message: m.message,
    }
}

impl PpsService {
    /// The records of `name`'s versions (current first), by version.
    async fn versions(&self, name: &str) -> Result<HashMap<u64, PipelineRecord>, Status> {
        Ok(self
            .pps
            .pipeline_history(name, -1)
            .await
            .map_err(pps_status)?
            .into_iter()
            .map(|p| (p.version, p))
            .collect())
    }

    /// JobInfos of `jobs`, each with the spec of the version that ran it.
    async fn job_infos(&self, jobs: &[JobRecord]) -> Result<Vec<pps::JobInfo>, Status> {
        let mut specs: HashMap<String, HashMap<u64, PipelineRecord>> = HashMap::new();
        let mut out = Vec::with_capacity(jobs.len());
        for j in jobs {
            if !specs.contains_key(&j.pipeline) {
                let versions = match self.versions(&j.pipeline).await {
                    Ok(v) => v,
                    // A job whose pipeline is gone keeps its own fields.
                    Err(s) if s.code() == tonic::Code::NotFound => HashMap::new(),
                    Err(s) => return Err(s),
                };
                specs.insert(j.pipeline.clone(), versions);
            }
            let p = specs
                .get(&j.pipeline)
                .and_then(|v| v.get(&j.pipeline_version));
            out.push(job_info(j, p));
        }
        Ok(out)
    }

    async fn list_jobs(&self, r: pps::ListJobRequest) -> Result<Vec<pps::JobInfo>, Status> {
        let mut filter = JobFilter {
            pipeline: r.pipeline.map(|p| p.name).filter(|n| !n.is_empty()),
            history: r.history,
            ..Default::default()
        };
        for c in &r.input_commit {
            filter.input_commits.push(commit_ref(c, "an input commit")?);
        }
        if let Some(c) = &r.output_commit {
            filter.output_commit = Some(commit_ref(c, "the output commit")?);
        }
        let jobs = self.pps.list_jobs(&filter).await.map_err(pps_status)?;
        self.job_infos(&jobs).await
    }

    async fn datums(&self, r: pps::ListDatumRequest) -> Result<pps::ListDatumResponse, Status> {
        let job = job_id(r.job, "list datum")?;
        let j = self
            .pps
            .inspect_job(&job, false)
            .await
            .map_err(pps_status)?;
        let mut datums = self.pps.list_datum(&job).await.map_err(pps_status)?;
        // Failed first, as Pachyderm sorts them; then by id, for stable pages.
        datums.sort_by(|a, b| {
            (datum_state(a.state) as i32, &a.id).cmp(&(datum_state(b.state) as i32, &b.id))
        });
        let mut out = pps::ListDatumResponse::default();
        if r.page_size < 0 || r.page < 0 {
            return Err(invalid("page and page_size cannot be negative"));
        }
        if r.page_size > 0 {
            let size = r.page_size as usize;
            out.page = r.page;
            out.total_pages = datums.len().div_ceil(size) as i64;
            let start = (r.page as usize).saturating_mul(size).min(datums.len());
            let end = start.saturating_add(size).min(datums.len());
            datums = datums[start..end].to_vec();
        }
        for d in &datums {
            out.datum_infos.push(datum_info(&j, d, None));
        }
        Ok(out)
    }

    async fn pipeline_jobs(&self) -> Result<HashMap<String, Vec<JobRecord>>, Status> {
        let mut by_pipeline: HashMap<String, Vec<JobRecord>> = HashMap::new();
        for j in self.pps.list_job(None).await.map_err(pps_status)? {
            by_pipeline.entry(j.pipeline.clone()).or_default().push(j);
        }
        Ok(by_pipeline)
    }
}

fn with_job<T>(mut response: Response<T>, job: Option<String>) -> Response<T> {
    if let Some(id) = job
        && let Ok(v) = tonic::metadata::MetadataValue::try_from(id.as_str())
    {
        response.metadata_mut().insert(JOB_HEADER, v);
    }
    response
}

#[tonic::async_trait]
impl Api for PpsService {
    async fn create_job(
        &self,
        r: Request<pps::CreateJobRequest>,
    ) -> Result<Response<pps::Job>, Status> {
        self.authz.check(&r).await?;
        Err(Status::unimplemented(
            "jobs start by themselves when a pipeline's inputs get new commits; `pachctl run pipeline NAME` starts one now",
        ))
    }

    async fn inspect_job(
        &self,
        r: Request<pps::InspectJobRequest>,
    ) -> Result<Response<pps::JobInfo>, Status> {
        self.authz.check(&r).await?;
        let r = r.into_inner();
        let id = match (&r.job, &r.output_commit) {
            (Some(_), Some(_)) => {
                return Err(invalid("set either a job or an output commit, not both"));
            }
            (Some(j), None) => job_id(Some(j.clone()), "inspect job")?,
            (None, Some(c)) => {
                let (repo, reference) = commit_ref(c, "the output commit")?;
                self.pps
                    .job_of_output(&repo, &reference)
                    .await
                    .map_err(pps_status)?
                    .id
            }
            (None, None) => return Err(invalid("must specify either a Job or an OutputCommit")),
        };
        let j = self
            .pps
            .inspect_job(&id, r.block_state)
            .await
            .map_err(pps_status)?;
        let mut infos = self.job_infos(&[j]).await?;
        Ok(Response::new(infos.remove(0)))
    }

    async fn list_job(
        &self,
        r: Request<pps::ListJobRequest>,
    ) -> Result<Response<pps::JobInfos>, Status> {
        self.authz.check(&r).await?;
        let job_info = self.list_jobs(r.into_inner()).await?;
        Ok(Response::new(pps::JobInfos { job_info }))
    }

    type ListJobStreamStream = ResponseStream<pps::JobInfo>;

    async fn list_job_stream(
        &self,
        r: Request<pps::ListJobRequest>,
    ) -> Result<Response<Self::ListJobStreamStream>, Status> {
        self.authz.check(&r).await?;
        Ok(Response::new(stream_of(
            self.list_jobs(r.into_inner()).await?,
        )))
    }

    type FlushJobStream = ResponseStream<pps::JobInfo>;

    async fn flush_job(
        &self,
        r: Request<pps::FlushJobRequest>,
    ) -> Result<Response<Self::FlushJobStream>, Status> {
        self.authz.check(&r).await?;
        let r = r.into_inner();
        if r.commits.is_empty() {
            return Err(invalid("flush job needs at least one commit"));
        }
        let mut commits = Vec::new();
        for c in &r.commits {
            commits.push(commit_ref(c, "flush job")?);
        }
        let to: Vec<String> = r.to_pipelines.into_iter().map(|p| p.name).collect();
        let jobs = self
            .pps
            .flush_job(&commits, &to)
            .await
            .map_err(pps_status)?;
        Ok(Response::new(stream_of(self.job_infos(&jobs).await?)))
    }

    async fn delete_job(&self, r: Request<pps::DeleteJobRequest>) -> Result<Response<()>, Status> {
        self.authz.check(&r).await?;
        let id = job_id(r.into_inner().job, "delete job")?;
        self.pps.delete_job(&id).await.map_err(pps_status)?;
        Ok(Response::new(()))
    }

    async fn stop_job(&self, r: Request<pps::StopJobRequest>) -> Result<Response<()>, Status> {
        self.authz.check(&r).await?;
        let id = job_id(r.into_inner().job, "stop job")?;
        self.pps.stop_job(&id).await.map_err(pps_status)?;
        Ok(Response::new(()))
    }

    async fn inspect_datum(
        &self,
        r: Request<pps::InspectDatumRequest>,
    ) -> Result<Response<pps::DatumInfo>, Status> {
        self.authz.check(&r).await?;
        let d = r
            .into_inner()
            .datum
            .ok_or_else(|| invalid("inspect datum needs a datum (its id and its job)"))?;
        let job = job_id(d.job, "inspect datum")?;
        if d.id.is_empty() {
            return Err(invalid("inspect datum needs a datum id"));
        }
        let j = self
            .pps
            .inspect_job(&job, false)
            .await
            .map_err(pps_status)?;
        let record = self
            .pps
            .inspect_datum(&job, &d.id)
            .await
            .map_err(pps_status)?;
        let stats = self.pps.stats_datum(&j, &d.id).await.map_err(pps_status)?;
        Ok(Response::new(datum_info(&j, &record, stats.as_ref())))
    }

    async fn list_datum(
        &self,
        r: Request<pps::ListDatumRequest>,
    ) -> Result<Response<pps::ListDatumResponse>, Status> {
        self.authz.check(&r).await?;
        Ok(Response::new(self.datums(r.into_inner()).await?))
    }

    type ListDatumStreamStream = ResponseStream<pps::ListDatumStreamResponse>;

    async fn list_datum_stream(
        &self,
        r: Request<pps::ListDatumRequest>,
    ) -> Result<Response<Self::ListDatumStreamStream>, Status> {
        self.authz.check(&r).await?;
        let list = self.datums(r.into_inner()).await?;
        let (page, total_pages) = (list.page, list.total_pages);
        let items = list
            .datum_infos
            .into_iter()
            .enumerate()
            .map(|(i, d)| pps::ListDatumStreamResponse {
                datum_info: Some(d),
                // The paging figures ride on the first message, as in 1.9.
                total_pages: if i == 0 { total_pages } else { 0 },
                page: if i == 0 { page } else { 0 },
            })
            .collect();
        Ok(Response::new(stream_of(items)))
    }

    async fn restart_datum(
        &self,
        r: Request<pps::RestartDatumRequest>,
    ) -> Result<Response<()>, Status> {
        self.authz.check(&r).await?;
        let r = r.into_inner();
        let id = job_id(r.job, "restart datum")?;
        let restarted = self
            .pps
            .restart_datum(&id, &r.data_filters)
            .await
            .map_err(pps_status)?;
        Ok(match restarted {
            Restarted::NewJob(job) => with_job(Response::new(()), Some(job)),
            Restarted::Nothing => Response::new(()),
            Restarted::Running(datums) => {
                let mut response = Response::new(());
                if let Ok(v) = tonic::metadata::MetadataValue::try_from(datums.join(",")) {
                    response.metadata_mut().insert(DATUMS_HEADER, v);
                }
                response
            }
        })
    }

    async fn create_pipeline(
        &self,
        r: Request<pps::CreatePipelineRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = self.authz.check(&r).await?;
        let (spec, update, reprocess) = spec_of(r.into_inner())?;
        let name = spec.pipeline.name.clone();
        let warnings = spec::warnings(&spec);
        self.authz
            .create_pipeline(&caller, &name, update, async {
                self.pps
                    .create_pipeline(spec, update, reprocess)
                    .await
                    .map_err(pps_status)
            })
            .await?;
        Ok(with_warnings(Response::new(()), &warnings))
    }

    async fn inspect_pipeline(
        &self,
        r: Request<pps::InspectPipelineRequest>,
    ) -> Result<Response<pps::PipelineInfo>, Status> {
        self.authz.check(&r).await?;
        let name = pipeline_name(r.into_inner().pipeline, "inspect pipeline")?;
        let p = self.pps.inspect_pipeline(&name).await.map_err(pps_status)?;
        let jobs = self.pps.list_job(Some(&name)).await.map_err(pps_status)?;
        let jobs: Vec<&JobRecord> = jobs.iter().collect();
        let mut info = pipeline_info(&p, &jobs, self.pps.githook_url());
        info.recent_error = self.pps.git_errors(&name).await.map_err(pps_status)?;
        Ok(Response::new(info))
    }

    async fn list_pipeline(
        &self,
        r: Request<pps::ListPipelineRequest>,
    ) -> Result<Response<pps::PipelineInfos>, Status> {
        self.authz.check(&r).await?;
        let r = r.into_inner();
        let names: Vec<String> = match r.pipeline.map(|p| p.name).filter(|n| !n.is_empty()) {
            Some(n) => vec![n],
            None => self
                .pps
                .list_pipeline()
                .await
                .map_err(pps_status)?
                .iter()
                .map(|p| p.name().to_string())
                .collect(),
        };
        let jobs = self.pipeline_jobs().await?;
        let mut pipeline_info_list = Vec::new();
        for name in names {
            let versions = self
                .pps
                .pipeline_history(&name, r.history)
                .await
                .map_err(pps_status)?;
            let mine: Vec<&JobRecord> = jobs
                .get(&name)
                .map(|v| v.iter().collect())
                .unwrap_or_default();
            let recent_error = self.pps.git_errors(&name).await.map_err(pps_status)?;
            for p in &versions {
                let of_version: Vec<&JobRecord> = mine
                    .iter()
                    .copied()
                    .filter(|j| p.version == versions[0].version || j.pipeline_version == p.version)
                    .collect();
                let mut info = pipeline_info(p, &of_version, self.pps.githook_url());
                if p.version == versions[0].version {
                    info.recent_error = recent_error.clone();
                }
                pipeline_info_list.push(info);
            }
        }
        Ok(Response::new(pps::PipelineInfos {
            pipeline_info: pipeline_info_list,
        }))
    }

    async fn delete_pipeline(
        &self,
        r: Request<pps::DeletePipelineRequest>,
    ) -> Result<Response<()>, Status> {
        self.authz.check(&r).await?;
        let r = r.into_inner();
        let names = if r.all {
            Vec::new()
        } else {
            vec![pipeline_name(r.pipeline, "delete pipeline (or set all)")?]
        };
        self.pps
            .delete_pipelines(&names, r.all, r.force)
            .await
            .map_err(pps_status)?;
        Ok(Response::new(()))
    }

    async fn start_pipeline(
        &self,
        r: Request<pps::StartPipelineRequest>,
    ) -> Result<Response<()>, Status> {
        self.authz.check(&r).await?;
        let name = pipeline_name(r.into_inner().pipeline, "start pipeline")?;
        self.pps
            .set_pipeline_state(&[name], false, true)
            .await
            .map_err(pps_status)?;
        Ok(Response::new(()))
    }

    async fn stop_pipeline(
        &self,
        r: Request<pps::StopPipelineRequest>,
    ) -> Result<Response<()>, Status> {
        self.authz.check(&r).await?;
        let name = pipeline_name(r.into_inner().pipeline, "stop pipeline")?;
        self.pps
            .set_pipeline_state(&[name], false, false)
            .await
            .map_err(pps_status)?;
        Ok(Response::new(()))
    }

    async fn run_pipeline(
        &self,
        r: Request<pps::RunPipelineRequest>,
    ) -> Result<Response<()>, Status> {
        self.authz.check(&r).await?;
        let r = r.into_inner();
        let name = pipeline_name(r.pipeline, "run pipeline")?;
        let mut provenance = Vec::new();
        for p in &r.provenance {
            let (repo, reference) = match (&p.commit, &p.branch) {
                (Some(c), _) if !c.id.is_empty() => commit_ref(c, "a provenance commit")?,
                (_, Some(b)) => (
                    b.repo.as_ref().map(|r| r.name.clone()).unwrap_or_default(),
                    b.name.clone(),
                ),
                _ => return Err(invalid("a provenance entry needs a commit or a branch")),
            };
            let (c, _) = self
                .pps
                .pfs()
                .resolve_commit(&repo, &reference)
                .await
                .map_err(status)?;
            provenance.push(CommitName {
                repo: c.repo,
                id: c.id,
            });
        }
        if !r.job_id.is_empty() {
            // Run again on the inputs of that job.
            let j = self
                .pps
                .inspect_job(&r.job_id, false)
                .await
                .map_err(pps_status)?;
            for c in j.input_commits {
                if !provenance.iter().any(|p| p.repo == c.repo) {
                    provenance.push(c);
                }
            }
        }
        let job = self
            .pps
            .run_pipeline(&name, &provenance)
            .await
            .map_err(pps_status)?;
        Ok(with_job(Response::new(()), Some(job)))
    }

    async fn run_cron(&self, r: Request<pps::RunCronRequest>) -> Result<Response<()>, Status> {
        self.authz.check(&r).await?;
        let name = pipeline_name(r.into_inner().pipeline, "run cron")?;
        self.pps.run_cron(&name).await.map_err(pps_status)?;
        Ok(Response::new(()))
    }

    async fn delete_all(&self, r: Request<()>) -> Result<Response<()>, Status> {
        self.authz
            .require(r.metadata(), super::authz::Need::Admin("DeleteAll"))
            .await?;
        self.pps.delete_all_pipelines().await.map_err(pps_status)?;
        Ok(Response::new(()))
    }

    type GetLogsStream = ResponseStream<pps::LogMessage>;

    async fn get_logs(
        &self,
        r: Request<pps::GetLogsRequest>,
    ) -> Result<Response<Self::GetLogsStream>, Status> {
        self.authz.check(&r).await?;
        let r = r.into_inner();
        if r.tail < 0 {
            return Err(invalid("tail cannot be negative"));
        }
        let datum = r.datum.map(|d| d.id).filter(|d| !d.is_empty());
        let job = r.job.map(|j| j.id).filter(|j| !j.is_empty());
        let request = LogsRequest {
            pipeline: r.pipeline.map(|p| p.name).filter(|n| !n.is_empty()),
            job,
            datum,
            data_filters: r.data_filters,
            master: r.master,
            follow: r.follow,
            tail: r.tail as u64,
        };
        let lines = self.pps.logs(request).await.map_err(pps_status)?;
        Ok(Response::new(Box::pin(
            lines.map(|l| l.map(log_message).map_err(pps_status)),
        )))
    }

    async fn garbage_collect(
        &self,
        r: Request<pps::GarbageCollectRequest>,
    ) -> Result<Response<pps::GarbageCollectResponse>, Status> {
        self.authz.check(&r).await?;
        pach_admin::garbage_collect(self.pps.pfs(), GC_GRACE)
            .await
            .map_err(status)?;
        Ok(Response::new(pps::GarbageCollectResponse {}))
    }

    async fn activate_auth(
        &self,
        r: Request<pps::ActivateAuthRequest>,
    ) -> Result<Response<pps::ActivateAuthResponse>, Status> {
        // 1.9's auth.Activate calls this to give existing pipelines their
        // ACLs; here auth.Activate needs no help, so it only answers.
        self.authz.signed(r.metadata()).await?;
        self.authz.check(&r).await?;
        Ok(Response::new(pps::ActivateAuthResponse {}))
    }

    async fn update_job_state(
        &self,
        r: Request<pps::UpdateJobStateRequest>,
    ) -> Result<Response<()>, Status> {
        self.authz.check(&r).await?;
        Err(Status::unimplemented(
            "job states are kept by pachd itself; `pachctl stop job ID` stops a job",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_specs_meet_the_spec_parser() {
        let req: pps::CreatePipelineRequest = pach_api::json::from_json(serde_json::json!({
            "pipeline": {"name": "edges"},
            "transform": {"cmd": ["python3", "/edges.py"], "image": "pachyderm/opencv",
                          "accept_return_code": ["3"],
                          "secrets": [{"name": "db", "env_var": "PASSWORD", "key": "pw"}]},
            "parallelism_spec": {"constant": "2"},
            "datum_tries": "5",
            "datum_timeout": "90s",
            "enable_stats": true,
            "update": true,
            "reprocess": true,
            "input": {"cross": [{"pfs": {"repo": "images", "glob": "/*"}},
                                {"cron": {"name": "tick", "spec": "@every 10s", "start": "2020-01-01T00:00:00Z"}}]}
        }))
        .unwrap();
        let (spec, update, reprocess) = spec_of(req).unwrap();
        assert!(update && reprocess);
        assert_eq!(spec.pipeline.name, "edges");
        assert_eq!(spec.parallelism(), 2);
        assert_eq!(spec.datum_tries(), 5);
        assert_eq!(spec.transform.accept_return_code, [3]);
        assert_eq!(spec.transform.secrets[0].env_var, "PASSWORD");
        assert_eq!(
            spec.datum_timeout(),
            Some(std::time::Duration::from_secs(90))
        );
        assert!(spec.enable_stats);
        // Defaults come from the one spec parser.
        let cross = &spec.input.as_ref().unwrap().cross;
        assert_eq!(cross[0].pfs.as_ref().unwrap().branch, "master");
        assert_eq!(cross[1].cron.as_ref().unwrap().repo, "edges_tick");

        // Validation is the spec parser's: it names the field.
        let bad: pps::CreatePipelineRequest = pach_api::json::from_json(serde_json::json!({
            "pipeline": {"name": "p"}, "transform": {"cmd": ["sh"]},
            "input": {"pfs": {"repo": "r"}}
        }))
        .unwrap();
        let err = spec_of(bad).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(
            err.message().contains("input.pfs.glob"),
            "{}",
            err.message()
        );

        let tf = pps::CreatePipelineRequest {
            tf_job: Some(pps::TfJob::default()),
            ..Default::default()
        };
        assert!(spec_of(tf).unwrap_err().message().contains("Kubeflow"));
    }

    #[test]
    fn pipelines_print_as_pachyderm_prints_them() {
        let spec = spec::parse_value(serde_json::json!({
            "pipeline": {"name": "wc"},
            "transform": {"cmd": ["sh"], "image": "alpine"},
            "parallelism_spec": {"constant": 2},
            "datum_timeout": "1m30s",
            "input": {"cross": [{"pfs": {"repo": "docs", "glob": "/*"}}, {"pfs": {"repo": "dict", "glob": "/"}}]}
        }))
        .unwrap();
        let p = PipelineRecord {
            spec,
            version: 3,
            state: PipelineState::Paused,
            salt: "s".into(),
            created_ns: 1_577_836_800_000_000_000,
            updated_ns: 0,
        };
        let json =
            pach_api::json::to_json(&pipeline_info(&p, &[], None), FieldNames::Proto).unwrap();
        assert_eq!(json["pipeline"]["name"], "wc");
        assert_eq!(json["input"]["cross"][0]["pfs"]["repo"], "docs");
        assert_eq!(json["parallelism_spec"]["constant"], "2");
        assert_eq!(json["state"], "PIPELINE_PAUSED");
        assert_eq!(json["stopped"], true);
        assert_eq!(json["version"], "3");
        assert_eq!(json["datum_timeout"], "90s");
        assert_eq!(json["created_at"], "2020-01-01T00:00:00Z");
        assert_eq!(json["transform"]["image"], "alpine");
    }
}
