//! Pipelines: create, update, list, inspect, stop, start, delete. A pipeline
//! owns an output repo of its name whose output branch has the input branches
//! as provenance, so every new input commit opens an output commit (PFS does
//! that atomically with the input commit); the controller turns each open
//! output commit into a job.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use pach_meta::{KeyValue, Txn};
use pach_pfs::records::{decode, encode, load};
use pach_pfs::{BranchName, Pfs, PfsError, PipelineOutput, PipelineOutputs};
use pach_storage::UrlPolicy;

use crate::error::{PpsError, Result};
use crate::records::*;
use crate::spec::{self, PipelineSpec};

/// How many times a guarded transaction is retried on conflict.
const MAX_ATTEMPTS: usize = 100;

/// Serves the S3 gateway, as the pipeline named, on a listener a sandbox
/// handed over; the task ends when aborted.
pub type ServeGateway =
    dyn Fn(&str, std::net::TcpListener) -> tokio::task::JoinHandle<()> + Send + Sync;

/// The S3 gateway as pipelines' user code reaches it: inside its own
/// sandbox, on `127.0.0.1:port` of the sandbox's loopback, where pachd
/// serves the gateway on a socket the sandbox hands over
/// (`pach_worker::gateway`), and nothing else of the host.
#[derive(Clone)]
pub struct SandboxGateway {
    /// `http`, or `https` when pachd serves TLS.
    pub scheme: &'static str,
    /// The port in each sandbox: the gateway's own port on the host, so
    /// that `S3_ENDPOINT` reads the same inside and out.
    pub port: u16,
    pub serve: Arc<ServeGateway>,
}

/// The gateway's port in a sandbox: `port`, unless a service listens there
/// (`service_port`), then the next one (the one before, for 65535).
fn sandbox_port(port: u16, service_port: Option<u16>) -> u16 {
    match service_port {
        Some(s) if s == port => port.checked_add(1).unwrap_or(port - 1),
        _ => port,
    }
}

#[derive(Clone)]
pub struct Pps {
    pub(crate) pfs: Pfs,
    /// Where datums are materialised while they run.
    pub(crate) scratch: PathBuf,
    /// The S3 gateway user code reaches in its sandbox (`S3_ENDPOINT`).
    pub(crate) s3_gateway: Option<SandboxGateway>,
    /// What the URLs of specs and egress may name (they come from clients).
    pub(crate) urls: Arc<UrlPolicy>,
    /// The network datums get unless their pipeline needs another.
    pub(crate) datum_network: pach_worker::Network,
    /// The address services are published on when their spec names none.
    pub(crate) service_host: String,
    /// How often git inputs are fetched (zero: on push events only).
    pub(crate) git_poll: std::time::Duration,
    /// pachd's webhook endpoint, when it serves one.
    pub(crate) githook_url: Option<String>,
    /// One fetch at a time per git repository (`git`).
    pub(crate) git_locks: crate::git::GitLocks,
    /// Whether a pipeline may still read its inputs and write its output
    /// (`None`: no access control; every job may).
    pub(crate) job_access: Option<Arc<dyn JobAccess>>,
}

/// A pipeline's access as itself: provided by the layer that keeps access
/// control (pachd), which gives a pipeline what its jobs need before the
/// pipeline is written (by a client, an import or an update: its first job
/// may start as soon as it exists), and is asked when a job starts and
/// again before its output is written.
pub trait JobAccess: Send + Sync + 'static {
    /// Gives `pipeline` what its jobs need: READER on each of `inputs`
    /// (repos), WRITER on its output repo.
    fn grant<'a>(
        &'a self,
        pipeline: &'a str,
        inputs: &'a [String],
    ) -> futures::future::BoxFuture<'a, Result<()>>;
    /// `None` when `pipeline` may read each of `inputs` (repos) and write
    /// its output repo; otherwise why not, which the job fails with.
    fn refusal<'a>(
        &'a self,
        pipeline: &'a str,
        inputs: &'a [String],
    ) -> futures::future::BoxFuture<'a, Result<Option<String>>>;
}

impl Pps {
    /// The pipeline layer over `pfs`; its [`Pps::pfs`] knows pipelines'
    /// outputs, so that clients writing through it are kept off them.
    pub fn new(pfs: Pfs, scratch: PathBuf) -> Self {
        let pfs = pfs.with_pipeline_outputs(Arc::new(OutputRecords));
        Self {
            pfs,
            scratch,
            urls: Arc::new(UrlPolicy::default()),
            datum_network: pach_worker::Network::Loopback,
            s3_gateway: None,
            service_host: "127.0.0.1".into(),
            git_poll: std::time::Duration::from_secs(60),
            githook_url: None,
            git_locks: Arc::default(),
            job_access: None,
        }
    }

    /// Checks every job's access through `access` (see [`JobAccess`]).
    pub fn with_job_access(mut self, access: Arc<dyn JobAccess>) -> Self {
        self.job_access = Some(access);
        self
    }

    /// Publishes services on `host` (pachd's own listening address) when
    /// their spec names no `service.ip`.
    pub fn with_service_host(mut self, host: String) -> Self {
        self.service_host = host;
        self
    }

    /// Serves the S3 gateway inside every sandbox of user code, and tells
    /// user code where it is (`S3_ENDPOINT`, a URL).
    pub fn with_s3_gateway(mut self, gateway: SandboxGateway) -> Self {
        self.s3_gateway = Some(gateway);
        self
    }

    /// The gateway's port in a sandbox whose service (if any) listens on
    /// `service_port`: the gateway's own port, unless the service took it.
    fn gateway_port(&self, service_port: Option<u16>) -> Option<u16> {
        Some(sandbox_port(self.s3_gateway.as_ref()?.port, service_port))
    }

    /// `sandbox` with the S3 gateway inside, served as the pipeline
    /// `pipeline` (unchanged when pachd serves no gateway).
    pub(crate) fn sandbox_with_gateway(
        &self,
        sandbox: pach_worker::Sandbox,
        pipeline: &str,
        service_port: Option<u16>,
    ) -> pach_worker::Sandbox {
        let (Some(g), Some(port)) = (&self.s3_gateway, self.gateway_port(service_port)) else {
            return sandbox;
        };
        let (serve, pipeline) = (g.serve.clone(), pipeline.to_string());
        sandbox.with_gateway(pach_worker::Gateway {
            port,
            serve: Arc::new(move |listener| serve(&pipeline, listener)),
        })
    }

    /// `S3_ENDPOINT` for user code in a sandbox made by [`Pps::sandbox_with_gateway`].
    pub(crate) fn s3_endpoint(&self, service_port: Option<u16>) -> Option<(String, String)> {
        let g = self.s3_gateway.as_ref()?;
        let port = self.gateway_port(service_port)?;
        Some((
            "S3_ENDPOINT".into(),
            format!("{}://127.0.0.1:{port}", g.scheme),
        ))
    }

    /// The same, opening the URLs of specs and egress under `policy`
    /// (default: no local directory).
    pub fn with_url_policy(mut self, policy: UrlPolicy) -> Self {
        self.urls = Arc::new(policy);
        self
    }

    /// Sets the network datums get (loopback only unless said otherwise).
    pub fn with_datum_network(mut self, network: pach_worker::Network) -> Self {
        self.datum_network = network;
        self
    }

    /// The network a pipeline's datums get: the cluster's setting for every
    /// pipeline for now (services and spouts will ask for outbound).
    pub(crate) fn datum_network(&self, _pipeline: &PipelineRecord) -> &pach_worker::Network {
        &self.datum_network
    }

    pub fn pfs(&self) -> &Pfs {
        &self.pfs
    }

    /// Creates (or, with `update`, updates) one pipeline from a parsed spec
    /// (`spec::parse_value`), checked against the cluster first.
    pub async fn create_pipeline(
        &self,
        mut spec: PipelineSpec,
        update: bool,
        reprocess: bool,
    ) -> Result<()> {
        // Where the service is published, for `inspect pipeline` to say.
        let spout_service = spec.spout.as_mut().and_then(|s| s.service.as_mut());
        if let Some(service) = spec.service.as_mut().or(spout_service)
            && service.ip.is_empty()
        {
            service.ip = self.service_host.clone();
        }
        self.check_specs(std::slice::from_ref(&spec), update, false)
            .await?;
        if let Some(input) = &spec.input {
            self.check_git_inputs(input).await?;
        }
        let name = spec.pipeline.name.clone();
        let warnings = spec::warnings(&spec);
        self.put_pipeline(spec, update, reprocess, false).await?;
        for w in warnings {
            tracing::warn!(pipeline = %name, "{w}");
        }
        Ok(())
    }

    /// Creates a pipeline over an output repo that a restore filled first
    /// (its commits, and its output branch with its provenance): the repo is
    /// adopted, and no output commit is started for inputs its head was
    /// already computed from. As [`Pps::create_pipeline`] otherwise.
    pub async fn restore_pipeline(&self, spec: PipelineSpec) -> Result<()> {
        self.check_specs(std::slice::from_ref(&spec), false, true)
            .await?;
        self.put_pipeline(spec, false, false, true).await
    }

    /// The checks of a spec that depend on no other pipeline or repo (its
    /// secrets exist, its egress URL is one this cluster may open): what a
    /// restore checks before it creates the repos the pipeline reads.
    pub async fn check_spec_alone(&self, spec: &PipelineSpec) -> Result<()> {
        self.check_secrets(spec).await?;
        if let Some(egress) = &spec.egress {
            pach_storage::open_url(&egress.url, &self.urls).map_err(|e| {
                PpsError::InvalidSpec(format!(
                    "pipeline '{}': egress.URL: {e}",
                    spec.pipeline.name
                ))
            })?;
        }
        Ok(())
    }

    async fn check_specs(
        &self,
        specs: &[PipelineSpec],
        update: bool,
        adopt_output: bool,
    ) -> Result<()> {
        let existing: BTreeMap<String, PipelineRecord> = self
            .list_pipeline_records()
            .await?
            .into_iter()
            .map(|p| (p.name().to_string(), p))
            .collect();
        let mut repos: BTreeSet<String> = self
            .pfs
            .list_repo()
            .await?
            .into_iter()
            .map(|r| r.record.name)
            .collect();
        let mut graph: HashMap<String, Vec<String>> = existing
            .values()
            .map(|p| (p.name().to_string(), input_repo_names(&p.spec)))
            .collect();
        let mut seen = BTreeSet::new();
        for s in specs {
            let name = &s.pipeline.name;
            if !seen.insert(name.clone()) {
                return Err(PpsError::InvalidSpec(format!(
                    "pipeline '{name}' appears twice in the spec file"
                )));
            }
            self.check_secrets(s).await?;
            match (existing.get(name), update) {
                (Some(_), false) => return Err(PpsError::PipelineExists(name.clone())),
                // As Pachyderm 1.9: the stats branch, once there, stays.
                (Some(old), true) if old.spec.enable_stats && !s.enable_stats => {
                    return Err(PpsError::InvalidSpec(format!(
                        "pipeline '{name}': enable_stats: stats cannot be disabled once enabled; keep \"enable_stats\": true"
                    )));
                }
                (None, _) if repos.contains(name) && !adopt_output => {
                    return Err(PpsError::InvalidSpec(format!(
                        "pipeline '{name}': its output repo '{name}' already exists as a plain repo; delete it or choose another pipeline name"
                    )));
                }
                _ => {}
            }
            if let Some(input) = &s.input {
                for (repo, _) in spec::input_repos(input) {
                    let is_cron = made_repos(s).contains(&repo);
                    if repo == *name {
                        return Err(PpsError::InvalidSpec(format!(
                            "pipeline '{name}': input repo '{repo}' is the pipeline's own output repo (a cycle)"
                        )));
                    }
                    if !is_cron && !repos.contains(&repo) {
                        return Err(PpsError::InvalidSpec(format!(
                            "pipeline '{name}': input repo '{repo}' does not exist; create it with `pachctl create repo {repo}` first"
                        )));
                    }
                }
            }
            if let Some(egress) = &s.egress {
                // Refused now rather than at the end of the first job.
                pach_storage::open_url(&egress.url, &self.urls).map_err(|e| {
                    PpsError::InvalidSpec(format!("pipeline '{name}': egress.URL: {e}"))
                })?;
            }
            repos.insert(name.clone());
            repos.extend(made_repos(s));
            graph.insert(name.clone(), input_repo_names(s));
        }
        if let Some(cycle) = find_cycle(&graph) {
            return Err(PpsError::InvalidSpec(format!(
                "pipelines form a cycle: {}",
                cycle.join(" -> ")
            )));
        }
        Ok(())
    }

    async fn put_pipeline(
        &self,
        spec: PipelineSpec,
        update: bool,
        reprocess: bool,
        adopt_output: bool,
    ) -> Result<()> {
        let name = spec.pipeline.name.clone();
        let key = pipeline_key(&name);
        let now = crate::now_ns();
        let existing = load::<PipelineRecord>(&**self.pfs.meta(), &key).await?;
        if let Some(access) = &self.job_access {
            access.grant(&name, &spec.pfs_input_repos()).await?;
        }
        // The pipeline's own writes: never paused, and the only ones allowed
        // on its output branch.
        let pfs = self.pfs.for_pipeline(&name);
        for (repo, what) in made_repos_described(&spec) {
            match pfs
                .create_repo(&repo, &format!("{what} for pipeline {name}."), false)
                .await
            {
                Ok(()) | Err(PfsError::RepoExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if existing.is_none() {
            match pfs
                .create_repo(&name, &format!("Output repo for pipeline {name}."), false)
                .await
            {
                Ok(()) => {}
                Err(PfsError::RepoExists { .. }) if adopt_output => {}
                Err(e) => return Err(e.into()),
            }
        }
        let (record, rev) = match existing.clone() {
            Some((old, rev)) if update => {
                let salt = if reprocess || !spec.salt.is_empty() && spec.salt != old.spec.salt {
                    new_salt(&spec)
                } else {
                    old.salt.clone()
                };
                (
                    PipelineRecord {
                        spec: spec.clone(),
                        version: old.version + 1,
                        state: old.state,
                        salt,
                        created_ns: old.created_ns,
                        updated_ns: now,
                    },
                    rev,
                )
            }
            Some(_) => return Err(PpsError::PipelineExists(name)),
            None => (
                PipelineRecord {
                    salt: new_salt(&spec),
                    spec: spec.clone(),
                    version: 1,
                    state: PipelineState::Running,
                    created_ns: now,
                    updated_ns: now,
                },
                0,
            ),
        };
        let mut txn = Txn::new().expect(&key, rev).put(&key, encode(&record));
        if let Some((old, _)) = &existing {
            // The version being replaced, for `list pipeline --history`.
            txn = txn.put(pipeline_version_key(&name, old.version), encode(old));
        }
        if self.pfs.meta().commit(txn).await?.is_none() {
            return Err(PpsError::FailedPrecondition(format!(
                "pipeline '{name}' was changed concurrently; retry"
            )));
        }
        // Provenance last: it opens the first output commit from the current
        // input heads, which the controller picks up with the record in place.
        // A service follows its inputs itself and has no jobs (`service`).
        let provenance: Vec<BranchName> = spec
            .input
            .as_ref()
            .filter(|_| spec.service.is_none())
            .map(spec::input_repos)
            .unwrap_or_default()
            .into_iter()
            .map(|(repo, name)| BranchName { repo, name })
            .collect();
        let branch = &spec.output_branch;
        let had_branch = self
            .pfs
            .list_branch(&name)
            .await?
            .iter()
            .any(|b| &b.record.name == branch);
        let same_provenance = had_branch
            && self
                .pfs
                .inspect_branch(&name, branch)
                .await?
                .record
                .provenance
                .iter()
                .cloned()
                .collect::<BTreeSet<_>>()
                == provenance.iter().cloned().collect::<BTreeSet<_>>();
        pfs.create_branch(&name, branch, None, Some(provenance.clone()))
            .await?;
        if update && same_provenance && !provenance.is_empty() {
            // Pachyderm runs an updated pipeline on the current inputs.
            match pfs.start_commit(&name, Some(branch), None, "").await {
                Ok(_) | Err(PfsError::CommitOpen { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The current record of every pipeline (not their earlier versions).
    pub(crate) async fn list_pipeline_records(&self) -> Result<Vec<PipelineRecord>> {
        Ok(self
            .pipeline_keys(PIPELINES)
            .await?
            .into_iter()
            .filter(|(key, _)| !key[PIPELINES.len()..].contains('/'))
            .map(|(_, p)| p)
            .collect())
    }

    async fn pipeline_keys(&self, prefix: &str) -> Result<Vec<(String, PipelineRecord)>> {
        const PAGE: usize = 1000;
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.pfs.meta().list(prefix, after.as_deref(), PAGE).await?;
            for kv in &page {
                out.push((kv.key.clone(), decode::<PipelineRecord>(kv)?));
            }
            match page.last() {
                Some(last) if page.len() == PAGE => after = Some(last.key.clone()),
                _ => return Ok(out),
            }
        }
    }

    /// The record of version `version` of a pipeline (current or earlier);
    /// None when that version is not kept (updated before versions were).
    pub(crate) async fn pipeline_at(
        &self,
        name: &str,
        version: u64,
    ) -> Result<Option<PipelineRecord>> {
        let current = self.inspect_pipeline(name).await?;
        if current.version == version {
            return Ok(Some(current));
        }
        Ok(
            load::<PipelineRecord>(&**self.pfs.meta(), &pipeline_version_key(name, version))
                .await?
                .map(|(p, _)| p),
        )
    }

    /// A pipeline's current record and, newest first, up to `history` of
    /// its earlier versions (all of them when negative), as Pachyderm's
    /// `history` counts them.
    pub async fn pipeline_history(&self, name: &str, history: i64) -> Result<Vec<PipelineRecord>> {
        let current = self.inspect_pipeline(name).await?;
        let mut out = vec![current];
        if history != 0 {
            let mut older: Vec<PipelineRecord> = self
                .pipeline_keys(&pipeline_versions_prefix(name))
                .await?
                .into_iter()
                .map(|(_, p)| p)
                .collect();
            older.sort_by_key(|p| std::cmp::Reverse(p.version));
            let keep = if history < 0 {
                older.len()
            } else {
                history as usize
            };
            out.extend(older.into_iter().take(keep));
        }
        Ok(out)
    }

    pub async fn inspect_pipeline(&self, name: &str) -> Result<PipelineRecord> {
        load::<PipelineRecord>(&**self.pfs.meta(), &pipeline_key(name))
            .await?
            .map(|(p, _)| p)
            .ok_or_else(|| PpsError::PipelineNotFound(name.into()))
    }

    /// Every pipeline, upstream before downstream.
    pub async fn list_pipeline(&self) -> Result<Vec<PipelineRecord>> {
        let records = self.list_pipeline_records().await?;
        Ok(dag_order(records))
    }

    /// Stops (pauses) or starts pipelines: all of them in DAG order (stop:
    /// downstream first; start: upstream first), or the named ones.
    pub async fn set_pipeline_state(
        &self,
        names: &[String],
        all: bool,
        run: bool,
    ) -> Result<Vec<String>> {
        let mut targets: Vec<String> = if all {
            self.list_pipeline()
                .await?
                .iter()
                .map(|p| p.name().to_string())
                .collect()
        } else {
            for n in names {
                self.inspect_pipeline(n).await?;
            }
            names.to_vec()
        };
        if all && !run {
            targets.reverse();
        }
        let state = if run {
            PipelineState::Running
        } else {
            PipelineState::Paused
        };
        for name in &targets {
            self.update_pipeline_record(name, |p| {
                p.state = state;
            })
            .await?;
        }
        Ok(targets)
    }

    pub(crate) async fn update_pipeline_record(
        &self,
        name: &str,
        change: impl Fn(&mut PipelineRecord),
    ) -> Result<PipelineRecord> {
        let key = pipeline_key(name);
        for _ in 0..MAX_ATTEMPTS {
            let (mut p, rev) = load::<PipelineRecord>(&**self.pfs.meta(), &key)
                .await?
                .ok_or_else(|| PpsError::PipelineNotFound(name.into()))?;
            change(&mut p);
            p.updated_ns = crate::now_ns();
            let txn = Txn::new().expect(&key, rev).put(&key, encode(&p));
            if self.pfs.meta().commit(txn).await?.is_some() {
                return Ok(p);
            }
        }
        Err(PpsError::FailedPrecondition(format!(
            "pipeline '{name}' is being changed concurrently; retry"
        )))
    }

    /// Deletes pipelines with their jobs, datum records, cache and output
    /// repos, downstream first. A pipeline that another one reads from is
    /// refused unless `force` (and so is one whose output repo is in the
    /// provenance of another branch); forced, what depended on it loses its
    /// provenance on it, so that every remaining record is consistent.
    pub async fn delete_pipelines(
        &self,
        names: &[String],
        all: bool,
        force: bool,
    ) -> Result<Vec<String>> {
        let records = self.list_pipeline().await?;
        if !all {
            for n in names {
                self.inspect_pipeline(n).await?;
            }
        }
        // Downstream first (the reverse of DAG order), so that a pipeline's
        // readers among the targets are gone before it.
        let targets: Vec<String> = records
            .iter()
            .rev()
            .map(|p| p.name().to_string())
            .filter(|n| all || names.contains(n))
            .collect();
        if !force {
            for t in &targets {
                let readers: Vec<&str> = records
                    .iter()
                    .filter(|p| !targets.contains(&p.name().to_string()))
                    .filter(|p| input_repo_names(&p.spec).contains(t))
                    .map(|p| p.name())
                    .collect();
                if !readers.is_empty() {
                    return Err(PpsError::FailedPrecondition(format!(
                        "pipeline '{t}' is an input of {}; delete those first or use --force",
                        readers.join(", ")
                    )));
                }
            }
        }
        for t in &targets {
            let record = self.inspect_pipeline(t).await?;
            let pfs = self.pfs.for_pipeline(t);
            // The output repo first: PFS refuses it (and nothing changes)
            // while a branch outside the pipeline depends on it, unless
            // forced. The records go after it, so that a crash in between
            // leaves a pipeline whose deletion can be repeated.
            match pfs.delete_repo(t, force).await {
                Ok(()) | Err(PfsError::RepoNotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            let jobs = self.list_job(Some(t)).await?;
            let mut txn = Txn::new()
                .delete(pipeline_key(t))
                .delete(runlog_key(t))
                .delete_prefix(pipeline_versions_prefix(t))
                .delete_prefix(git_errors_prefix(t))
                .delete_prefix(cache_prefix(t));
            for j in &jobs {
                txn = txn
                    .delete(job_key(&j.id))
                    .delete_prefix(datums_prefix(&j.id))
                    .delete_prefix(tasks_prefix(&j.id))
                    .delete_prefix(slots_prefix(&j.id))
                    .delete_prefix(restarts_prefix(&j.id))
                    .delete_prefix(restart_answers_job_prefix(&j.id));
            }
            self.pfs.meta().commit(txn).await?;
            // Tick repos go with their pipeline; a git input's repo stays, as
            // in 1.9 (it may be a repo that was there before the pipeline).
            let ticks = made_repos_described(&record.spec)
                .into_iter()
                .filter(|(_, what)| *what == TICK_REPO)
                .map(|(r, _)| r);
            for repo in ticks {
                match pfs.delete_repo(&repo, false).await {
                    // A tick repo that another branch still reads stays.
                    Ok(())
                    | Err(PfsError::RepoNotFound { .. })
                    | Err(PfsError::FailedPrecondition(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(targets)
    }
}

/// Tells PFS which repos are pipelines' outputs: a pipeline's output repo
/// has its name, and its record names the output branch.
struct OutputRecords;

impl PipelineOutputs for OutputRecords {
    fn record_key(&self, repo: &str) -> String {
        pipeline_key(repo)
    }

    fn output(&self, record: &KeyValue) -> pach_pfs::Result<PipelineOutput> {
        let p: PipelineRecord = decode(record)?;
        Ok(PipelineOutput {
            pipeline: p.name().to_string(),
            branch: p.spec.output_branch.clone(),
        })
    }
}

/// The repos a pipeline reads (pfs and cron inputs).
pub(crate) fn input_repo_names(spec: &PipelineSpec) -> Vec<String> {
    spec.input
        .as_ref()
        .map(spec::input_repos)
        .unwrap_or_default()
        .into_iter()
        .map(|(r, _)| r)
        .collect()
}

/// The repos a pipeline makes for its inputs: its cron inputs' tick repos
/// and its git inputs' repos.
pub(crate) fn made_repos(spec: &PipelineSpec) -> Vec<String> {
    made_repos_described(spec)
        .into_iter()
        .map(|(r, _)| r)
        .collect()
}

const TICK_REPO: &str = "Cron tick repo";

/// [`made_repos`] with what each is, for its description.
fn made_repos_described(spec: &PipelineSpec) -> Vec<(String, &'static str)> {
    let all = spec
        .input
        .as_ref()
        .map(spec::Input::walk)
        .unwrap_or_default();
    all.into_iter()
        .filter_map(|i| match (&i.cron, &i.git) {
            (Some(c), _) => Some((c.repo.clone(), TICK_REPO)),
            (None, Some(g)) => Some((g.name.clone(), "Git input repo")),
            _ => None,
        })
        .collect()
}

fn new_salt(spec: &PipelineSpec) -> String {
    if spec.salt.is_empty() {
        uuid::Uuid::new_v4().simple().to_string()
    } else {
        spec.salt.clone()
    }
}

/// A cycle among pipelines (pipeline -> the pipelines it reads), if any.
fn find_cycle(graph: &HashMap<String, Vec<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &HashMap<String, Vec<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if graph.contains_key(next)
                && let Some(c) = visit(next, graph, path, done)
            {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    let mut names: Vec<&String> = graph.keys().collect();
    names.sort();
    for n in names {
        if let Some(c) = visit(n, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

/// Pipelines sorted so that each comes after the pipelines it reads from.
fn dag_order(mut records: Vec<PipelineRecord>) -> Vec<PipelineRecord> {
    records.sort_by(|a, b| a.name().cmp(b.name()));
    let names: BTreeSet<String> = records.iter().map(|p| p.name().to_string()).collect();
    let mut placed = BTreeSet::new();
    let mut out = Vec::with_capacity(records.len());
    while !records.is_empty() {
        let before = records.len();
        let mut rest = Vec::new();
        for p in records {
            let ready = input_repo_names(&p.spec)
                .iter()
                .all(|r| !names.contains(r) || placed.contains(r));
            if ready {
                placed.insert(p.name().to_string());
                out.push(p);
            } else {
                rest.push(p);
            }
        }
        records = rest;
        if records.len() == before {
            // A cycle cannot be created; keep whatever is left in name order.
            out.append(&mut records);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_makes_way_for_a_service_on_its_port() {
        assert_eq!(sandbox_port(30600, None), 30600);
        assert_eq!(sandbox_port(30600, Some(8000)), 30600);
        assert_eq!(sandbox_port(30600, Some(30600)), 30601);
        assert_eq!(sandbox_port(65535, Some(65535)), 65534);
    }

    #[test]
    fn cycles_are_found() {
        let g: HashMap<String, Vec<String>> = [
            ("a".to_string(), vec!["raw".to_string()]),
            ("b".to_string(), vec!["a".to_string(), "c".to_string()]),
            ("c".to_string(), vec!["b".to_string()]),
        ]
        .into_iter()
        .collect();
        let cycle = find_cycle(&g).unwrap();
        assert_eq!(cycle.first(), cycle.last());
        assert!(cycle.contains(&"b".to_string()) && cycle.contains(&"c".to_string()));
        let acyclic: HashMap<String, Vec<String>> = [
            ("a".to_string(), vec!["raw".to_string()]),
            ("b".to_string(), vec!["a".to_string()]),
        ]
        .into_iter()
        .collect();
        assert!(find_cycle(&acyclic).is_none());
    }
}
