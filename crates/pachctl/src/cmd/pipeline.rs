//! `create/update/list/inspect/stop/start/delete/run pipeline`, `run cron`
//! and `delete all`, on Pachyderm 1.9's `pps.API`. Spec files (JSON or YAML,
//! one or several pipelines) are read here and sent typed, one pipeline at a
//! time as Pachyderm's pachctl does; specs using what later Pachyderm
//! releases added to inputs (group, group_by, outer_join, project) go through
//! our pipeline extension service, which carries those fields.

use std::io::{Read, Write};

use anyhow::{Context, bail};
use clap::Args;
use pach_api::json::FieldNames;
use pach_api::pachrs::v1 as ext;
use pach_api::{pfs, pps};
use serde_json::Value;

use crate::client::{Client, connect, status};
use crate::output::{self, Format, Table, message_json};

#[derive(Debug, Args)]
pub struct CreatePipeline {
    /// The spec file (JSON or YAML, one or several pipelines): a path, a URL
    /// (http(s), s3, gs, az, file) or - for stdin.
    #[arg(short = 'f', long = "file", default_value = "-")]
    pub file: String,
    #[command(flatten)]
    pub images: ImageFlags,
}

/// Pachyderm 1.9's flags for building and pushing the pipeline's Docker
/// image first: refused, since pachd runs user code from the host's
/// userland, never from images it would build or push.
#[derive(Debug, Args, Default)]
pub struct ImageFlags {
    /// Build and push the local Docker image first (refused here).
    #[arg(short = 'b', long)]
    pub build: bool,
    /// Push the local Docker image first (refused here).
    #[arg(short = 'p', long)]
    pub push_images: bool,
    /// The registry to push images to (refused here).
    #[arg(short = 'r', long)]
    pub registry: Option<String>,
    /// The user to push images as (refused here).
    #[arg(short = 'u', long)]
    pub username: Option<String>,
}

impl ImageFlags {
    fn refuse(&self) -> anyhow::Result<()> {
        let given = [
            (self.build, "--build"),
            (self.push_images, "--push-images"),
            (self.registry.is_some(), "--registry"),
            (self.username.is_some(), "--username"),
        ];
        if let Some((_, flag)) = given.iter().find(|(on, _)| *on) {
            bail!(
                "{flag} is not supported: pachd builds and pushes no Docker images (user code \
                 runs in a sandbox over the host's userland, not in containers); build and push \
                 the image yourself if another cluster needs it, and drop {flag}"
            );
        }
        Ok(())
    }
}

#[derive(Debug, Args)]
pub struct UpdatePipeline {
    #[command(flatten)]
    pub create: CreatePipeline,
    /// Reprocess every datum with the new spec, not only new ones.
    #[arg(long)]
    pub reprocess: bool,
}

#[derive(Debug, Args)]
pub struct Selection {
    /// The pipeline(s).
    pub pipelines: Vec<String>,
    /// Every pipeline (in DAG order).
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct DeletePipeline {
    #[command(flatten)]
    pub selection: Selection,
    /// Delete even if other pipelines read from it.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ListPipeline {
    /// Only this pipeline.
    pub pipeline: Option<String>,
    /// Earlier versions too: a number of versions, "all" or "none".
    #[arg(long, default_value = "none")]
    pub history: String,
    /// Print each pipeline as a spec that `create pipeline` takes.
    #[arg(short, long)]
    pub spec: bool,
    #[command(flatten)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct RunPipeline {
    pub pipeline: String,
    /// Input commits to run on, as REPO@BRANCH=COMMIT or REPO@BRANCH (its
    /// head) or REPO@COMMIT; inputs not named use their branch's head.
    pub provenance: Vec<String>,
    /// Run again on the input commits of this job.
    #[arg(long)]
    pub job: Option<String>,
}

/// `--history` as Pachyderm reads it: "none" (0), "all" (-1) or a count.
pub fn history(s: &str) -> anyhow::Result<i64> {
    match s {
        "none" => Ok(0),
        "all" => Ok(-1),
        n => n.parse::<i64>().ok().filter(|n| *n >= -1).with_context(|| {
            format!("--history '{s}': use a number of versions, \"all\" or \"none\"")
        }),
    }
}

fn is_url(s: &str) -> bool {
    [
        "http://", "https://", "s3://", "gs://", "az://", "azure://", "file://",
    ]
    .iter()
    .any(|p| s.starts_with(p))
}

async fn read_spec(file: &str) -> anyhow::Result<String> {
    if let Some(path) = file.strip_prefix("file://") {
        return std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the spec file '{path}'"));
    }
    if is_url(file) {
        use object_store::ObjectStoreExt;
        // The user's own URL, read with the user's credentials: no confinement.
        let (store, path) = pach_storage::open_url(file, &pach_storage::UrlPolicy::operator())
            .with_context(|| format!("cannot open '{file}'"))?;
        let bytes = store
            .get(&path)
            .await
            .with_context(|| format!("cannot read '{file}'"))?
            .bytes()
            .await
            .with_context(|| format!("cannot read '{file}'"))?;
        return String::from_utf8(bytes.to_vec())
            .with_context(|| format!("'{file}' is not a UTF-8 text spec"));
    }
    if file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the spec from stdin")?;
        return Ok(s);
    }
    std::fs::read_to_string(file).with_context(|| format!("cannot read the spec file '{file}'"))
}

/// The specs of a file: JSON objects one after another, or YAML documents.
fn documents(text: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    if text.trim_start().starts_with('{') {
        for (i, v) in serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .enumerate()
        {
            out.push(v.with_context(|| format!("spec #{} is not valid JSON", i + 1))?);
        }
    } else {
        use serde::Deserialize;
        for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let v = Value::deserialize(doc)
                .with_context(|| format!("spec #{} is not valid YAML", i + 1))?;
            if !v.is_null() {
                out.push(v);
            }
        }
    }
    if out.is_empty() {
        bail!(
            "no pipeline spec found; a spec is a JSON object or YAML document with at least `pipeline.name`, `transform.cmd` and `input`"
        );
    }
    Ok(out)
}

/// Whether a spec uses input fields that Pachyderm 1.9's request lacks.
fn uses_later_fields(spec: &Value) -> bool {
    fn input(v: &Value) -> bool {
        let Some(m) = v.as_object() else {
            return false;
        };
        if m.contains_key("group") {
            return true;
        }
        if let Some(p) = m.get("pfs").and_then(Value::as_object)
            && [
                "outer_join",
                "outerJoin",
                "group_by",
                "groupBy",
                "s3",
                "project",
            ]
            .iter()
            .any(|k| p.contains_key(*k))
        {
            return true;
        }
        ["cross", "union", "join", "group"]
            .iter()
            .filter_map(|k| m.get(*k).and_then(Value::as_array))
            .flatten()
            .any(input)
    }
    spec["pipeline"].get("project").is_some() || input(&spec["input"])
}

/// One pipeline to create, as it goes on the wire.
enum Request {
    Pachyderm(Box<pps::CreatePipelineRequest>),
    Extended(Box<ext::CreateExtendedPipelineRequest>),
}

fn request_of(mut spec: Value, update: bool, reprocess: bool) -> anyhow::Result<Request> {
    if !spec.is_object() {
        bail!("a spec is a JSON object or YAML mapping");
    }
    if let Some(input) = spec.get_mut("input") {
        git_url_as_written(input);
    }
    if !uses_later_fields(&spec) {
        let mut r: pps::CreatePipelineRequest = pach_api::json::from_json(spec)?;
        r.update = update;
        r.reprocess = reprocess;
        return Ok(Request::Pachyderm(Box::new(r)));
    }
    let project = match spec["pipeline"]
        .as_object_mut()
        .and_then(|p| p.remove("project"))
    {
        Some(p) => p["name"].as_str().unwrap_or_default().to_string(),
        None => String::new(),
    };
    let input = match spec.as_object_mut().and_then(|m| m.remove("input")) {
        Some(i) => Some(
            pach_api::json::from_json::<ext::ExtendedInput>(i)
                .map_err(|e| anyhow::anyhow!("input: {e}"))?,
        ),
        None => None,
    };
    let mut r: pps::CreatePipelineRequest = pach_api::json::from_json(spec)?;
    r.update = update;
    r.reprocess = reprocess;
    Ok(Request::Extended(Box::new(
        ext::CreateExtendedPipelineRequest {
            request: Some(r),
            input,
            project,
        },
    )))
}

/// Pachyderm 1.9's documentation writes a git input's URL as `URL`, its
/// messages as `url`: both are taken (1.9's own pachctl refused `URL`).
fn git_url_as_written(input: &mut Value) {
    let Some(m) = input.as_object_mut() else {
        return;
    };
    if let Some(g) = m.get_mut("git").and_then(Value::as_object_mut)
        && !g.contains_key("url")
        && let Some(url) = g.remove("URL")
    {
        g.insert("url".into(), url);
    }
    for k in ["cross", "union", "join", "group"] {
        if let Some(list) = m.get_mut(k).and_then(Value::as_array_mut) {
            list.iter_mut().for_each(git_url_as_written);
        }
    }
}

fn spec_name(v: &Value) -> String {
    v["pipeline"]["name"].as_str().unwrap_or("").to_string()
}

pub async fn create(a: CreatePipeline, update: bool, reprocess: bool) -> anyhow::Result<()> {
    a.images.refuse()?;
    let text = read_spec(&a.file).await?;
    // Every spec of the file is read before any is sent.
    let mut requests = Vec::new();
    for (i, spec) in documents(&text)?.into_iter().enumerate() {
        let name = spec_name(&spec);
        let r = request_of(spec, update, reprocess)
            .with_context(|| format!("invalid pipeline spec #{} ('{name}')", i + 1))?;
        requests.push((name, r));
    }
    let mut c = connect().await?;
    let verb = if update { "updated" } else { "created" };
    let mut done: Vec<String> = Vec::new();
    for (name, r) in requests {
        let sent = match r {
            Request::Pachyderm(r) => c.pps.create_pipeline(*r).await.map(|r| warn(&name, &r)),
            Request::Extended(r) => c
                .extension
                .create_extended_pipeline(*r)
                .await
                .map(|r| warn(&name, &r)),
        };
        sent.map_err(status).with_context(|| {
            if done.is_empty() {
                format!("pipeline '{name}' was not {verb}")
            } else {
                format!(
                    "pipeline '{name}' was not {verb} (pipelines {verb} before it: {})",
                    done.join(", ")
                )
            }
        })?;
        done.push(name);
    }
    Ok(())
}

/// Nanoseconds since the epoch of a timestamp (0 when unset).
pub fn ns(t: &Option<prost_types::Timestamp>) -> i64 {
    t.as_ref()
        .map(|t| t.seconds * 1_000_000_000 + i64::from(t.nanos))
        .unwrap_or(0)
}

/// Pachyderm's one-line form of an input: `images:/*`, `(a:/* ⨯ b:/)`.
pub fn input_summary(i: Option<&pps::Input>) -> String {
    let Some(i) = i else {
        return "none".into();
    };
    if let Some(p) = &i.pfs {
        return format!("{}:{}", p.repo, p.glob);
    }
    if let Some(c) = &i.cron {
        return format!("{}:{}", c.name, c.spec);
    }
    if let Some(g) = &i.git {
        return format!("{}:{}", g.name, g.branch);
    }
    for (list, op) in [(&i.cross, " ⨯ "), (&i.union, " ∪ "), (&i.join, " ⋈ ")] {
        if !list.is_empty() {
            let parts: Vec<String> = list.iter().map(|c| input_summary(Some(c))).collect();
            return format!("({})", parts.join(op));
        }
    }
    String::new()
}

pub fn job_state_word(s: i32) -> String {
    pps::JobState::try_from(s)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("JOB_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| "-".into())
}

fn pipeline_state_word(s: i32) -> String {
    pps::PipelineState::try_from(s)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("PIPELINE_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| "-".into())
}

/// A pipeline as `create pipeline` takes it back (`list pipeline --spec`).
fn spec_of(p: &pps::PipelineInfo) -> anyhow::Result<Value> {
    let r = pps::CreatePipelineRequest {
        pipeline: p.pipeline.clone(),
        transform: p.transform.clone(),
        parallelism_spec: p.parallelism_spec,
        hashtree_spec: p.hashtree_spec,
        egress: p.egress.clone(),
        output_branch: p.output_branch.clone(),
        resource_requests: p.resource_requests.clone(),
        resource_limits: p.resource_limits.clone(),
        input: p.input.clone(),
        description: p.description.clone(),
        cache_size: p.cache_size.clone(),
        enable_stats: p.enable_stats,
        max_queue_size: p.max_queue_size,
        service: p.service.clone(),
        spout: p.spout.clone(),
        chunk_spec: p.chunk_spec,
        datum_timeout: p.datum_timeout,
        job_timeout: p.job_timeout,
        salt: p.salt.clone(),
        standby: p.standby,
        datum_tries: p.datum_tries,
        scheduling_spec: p.scheduling_spec.clone(),
        pod_spec: p.pod_spec.clone(),
        pod_patch: p.pod_patch.clone(),
        ..Default::default()
    };
    message_json(&r, FieldNames::Proto)
}

pub async fn list(a: ListPipeline) -> anyhow::Result<()> {
    let history = history(&a.history)?;
    let mut c = connect().await?;
    let infos = c
        .pps
        .list_pipeline(pps::ListPipelineRequest {
            pipeline: a.pipeline.map(|name| pps::Pipeline { name }),
            history,
        })
        .await
        .map_err(status)?
        .into_inner()
        .pipeline_info;
    let mut out = super::stdout();
    if a.spec {
        let specs = infos
            .iter()
            .map(spec_of)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let format = if a.format.is_human() {
            Format {
                raw: true,
                output: None,
            }
        } else {
            a.format
        };
        format.print(&mut out, &specs)?;
    } else if a.format.is_human() {
        let mut t = Table::new(&[
            "NAME",
            "VERSION",
            "INPUT",
            "CREATED",
            "STATE / LAST JOB",
            "DESCRIPTION",
        ]);
        for p in &infos {
            t.row(vec![
                p.pipeline
                    .as_ref()
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
                p.version.to_string(),
                input_summary(p.input.as_ref()),
                output::ago(ns(&p.created_at)),
                format!(
                    "{} / {}",
                    pipeline_state_word(p.state),
                    job_state_word(p.last_job_state)
                ),
                p.description.clone(),
            ]);
        }
        t.print(&mut out)?;
    } else {
        let objects = infos
            .iter()
            .map(|p| message_json(p, FieldNames::Proto))
            .collect::<anyhow::Result<Vec<_>>>()?;
        a.format.print(&mut out, &objects)?;
    }
    super::finish(out)
}

fn duration_text(d: &Option<prost_types::Duration>) -> String {
    match d {
        Some(d) => humantime::format_duration(std::time::Duration::new(
            d.seconds.max(0) as u64,
            d.nanos.max(0) as u32,
        ))
        .to_string(),
        None => "-".into(),
    }
}

pub async fn inspect(name: &str, format: &Format) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let p = c
        .pps
        .inspect_pipeline(pps::InspectPipelineRequest {
            pipeline: Some(pps::Pipeline { name: name.into() }),
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut out = super::stdout();
    if !format.is_human() {
        format.print(&mut out, &[message_json(&p, FieldNames::Proto)?])?;
        return super::finish(out);
    }
    let json = |m: &Option<serde_json::Value>| {
        m.as_ref()
            .and_then(|v| serde_json::to_string_pretty(v).ok())
            .unwrap_or_default()
    };
    let input = p
        .input
        .as_ref()
        .map(|i| message_json(i, FieldNames::Proto))
        .transpose()?;
    let transform = p
        .transform
        .as_ref()
        .map(|t| message_json(t, FieldNames::Proto))
        .transpose()?;
    writeln!(
        out,
        "Name: {}",
        p.pipeline.as_ref().map(|p| p.name.as_str()).unwrap_or("")
    )?;
    if !p.description.is_empty() {
        writeln!(out, "Description: {}", p.description)?;
    }
    writeln!(out, "Created: {}", output::ago(ns(&p.created_at)))?;
    writeln!(out, "State: {}", pipeline_state_word(p.state))?;
    writeln!(out, "Stopped: {}", p.stopped)?;
    writeln!(out, "Reason: {}", p.reason)?;
    writeln!(out, "Version: {}", p.version)?;
    writeln!(out, "Last job: {}", job_state_word(p.last_job_state))?;
    if let Some(ps) = &p.parallelism_spec {
        writeln!(
            out,
            "Parallelism Spec: constant:{} coefficient:{}",
            ps.constant, ps.coefficient
        )?;
    }
    writeln!(out, "Datum Timeout: {}", duration_text(&p.datum_timeout))?;
    writeln!(out, "Job Timeout: {}", duration_text(&p.job_timeout))?;
    writeln!(out, "Input:\n{}", json(&input))?;
    if !p.githook_url.is_empty() {
        writeln!(out, "Githook URL: {}", p.githook_url)?;
    }
    writeln!(out, "Output Branch: {}", p.output_branch)?;
    writeln!(out, "Transform:\n{}", json(&transform))?;
    if let Some(e) = &p.egress {
        writeln!(out, "Egress: {}", e.url)?;
    }
    if !p.recent_error.is_empty() {
        writeln!(out, "Recent Error: {}", p.recent_error)?;
    }
    if p.enable_stats {
        writeln!(
            out,
            "Stats: enabled (branch stats of repo {})",
            p.pipeline.as_ref().map(|p| p.name.as_str()).unwrap_or("")
        )?;
    }
    let mut counts = String::new();
    for s in [
        pps::JobState::JobStarting,
        pps::JobState::JobRunning,
        pps::JobState::JobFailure,
        pps::JobState::JobSuccess,
    ] {
        let n = p.job_counts.get(&(s as i32)).copied().unwrap_or(0);
        counts.push_str(&format!("{}: {n}   ", job_state_word(s as i32)));
    }
    writeln!(out, "Job Counts:\n{}", counts.trim_end())?;
    super::finish(out)
}

pub async fn set_state(s: Selection, run: bool) -> anyhow::Result<()> {
    if s.pipelines.is_empty() && !s.all {
        bail!(
            "name the pipeline(s) to {}, or use --all",
            if run { "start" } else { "stop" }
        );
    }
    if !s.pipelines.is_empty() && s.all {
        bail!("name pipelines or use --all, not both");
    }
    let mut c = connect().await?;
    let mut names = s.pipelines;
    if s.all {
        // Upstream first to start, downstream first to stop.
        names = c
            .pps
            .list_pipeline(pps::ListPipelineRequest::default())
            .await
            .map_err(status)?
            .into_inner()
            .pipeline_info
            .into_iter()
            .filter_map(|p| p.pipeline.map(|p| p.name))
            .collect();
        if !run {
            names.reverse();
        }
    }
    for name in names {
        let pipeline = Some(pps::Pipeline { name: name.clone() });
        let done = if run {
            c.pps
                .start_pipeline(pps::StartPipelineRequest { pipeline })
                .await
        } else {
            c.pps
                .stop_pipeline(pps::StopPipelineRequest { pipeline })
                .await
        };
        done.map_err(status)
            .with_context(|| format!("pipeline '{name}'"))?;
    }
    Ok(())
}

pub async fn delete(a: DeletePipeline) -> anyhow::Result<()> {
    let s = a.selection;
    if s.pipelines.is_empty() && !s.all {
        bail!("name the pipeline(s) to delete, or use --all");
    }
    if !s.pipelines.is_empty() && s.all {
        bail!("name pipelines or use --all, not both");
    }
    let mut c = connect().await?;
    if s.all {
        c.pps
            .delete_pipeline(pps::DeletePipelineRequest {
                pipeline: None,
                all: true,
                force: a.force,
            })
            .await
            .map_err(status)?;
        return Ok(());
    }
    for name in s.pipelines {
        c.pps
            .delete_pipeline(pps::DeletePipelineRequest {
                pipeline: Some(pps::Pipeline { name: name.clone() }),
                all: false,
                force: a.force,
            })
            .await
            .map_err(status)
            .with_context(|| format!("pipeline '{name}' was not deleted"))?;
    }
    Ok(())
}

/// `REPO@BRANCH=COMMIT`, `REPO@BRANCH` or `REPO@COMMIT` as provenance.
fn provenance(arg: &str) -> anyhow::Result<pfs::CommitProvenance> {
    let (repo, rest) = arg
        .split_once('@')
        .filter(|(r, rest)| !r.is_empty() && !rest.is_empty())
        .with_context(|| format!("'{arg}': use REPO@BRANCH=COMMIT, REPO@BRANCH or REPO@COMMIT"))?;
    let repo_msg = || Some(pfs::Repo { name: repo.into() });
    Ok(match rest.split_once('=') {
        Some((branch, commit)) => pfs::CommitProvenance {
            commit: Some(pfs::Commit {
                repo: repo_msg(),
                id: commit.into(),
            }),
            branch: Some(pfs::Branch {
                repo: repo_msg(),
                name: branch.into(),
            }),
        },
        None => pfs::CommitProvenance {
            commit: Some(pfs::Commit {
                repo: repo_msg(),
                id: rest.into(),
            }),
            branch: None,
        },
    })
}

/// Prints what pachd says it does not do of a pipeline's spec.
fn warn<T>(name: &str, r: &tonic::Response<T>) {
    for w in r.metadata().get_all("pach-warning") {
        if let Ok(w) = w.to_str() {
            eprintln!("warning: pipeline '{name}': {w}");
        }
    }
}

/// The job a call started, which pachd names in the response metadata.
fn started_job<T>(r: &tonic::Response<T>) -> Option<String> {
    r.metadata()
        .get("pach-job")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

pub async fn run(a: RunPipeline) -> anyhow::Result<()> {
    let provenance = a
        .provenance
        .iter()
        .map(|p| provenance(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut c = connect().await?;
    let r = c
        .pps
        .run_pipeline(pps::RunPipelineRequest {
            pipeline: Some(pps::Pipeline {
                name: a.pipeline.clone(),
            }),
            provenance,
            job_id: a.job.unwrap_or_default(),
        })
        .await
        .map_err(status)?;
    if let Some(job) = started_job(&r) {
        println!("{job}");
    }
    Ok(())
}

pub async fn run_cron(name: &str) -> anyhow::Result<()> {
    let mut c = connect().await?;
    c.pps
        .run_cron(pps::RunCronRequest {
            pipeline: Some(pps::Pipeline { name: name.into() }),
        })
        .await
        .map_err(status)?;
    Ok(())
}

/// `delete all`: every pipeline, then every repo (Pachyderm's order: PPS's
/// `DeleteAll`, then PFS's). Secrets stay, as Kubernetes keeps them.
pub async fn delete_all() -> anyhow::Result<()> {
    let mut c = connect().await?;
    c.pps.delete_all(()).await.map_err(status)?;
    delete_all_repos(&mut c).await
}

async fn delete_all_repos(c: &mut Client) -> anyhow::Result<()> {
    c.pfs.delete_all(()).await.map_err(status)?;
    Ok(())
}

#[derive(Debug, Args)]
pub struct ExtractPipeline {
    pub pipeline: String,
    /// Output format: json (the default) or yaml.
    #[arg(short, long, value_parser = ["json", "yaml"], default_value = "json")]
    pub output: String,
}

#[derive(Debug, Args)]
pub struct EditPipeline {
    pub pipeline: String,
    /// Reprocess every datum with the edited spec, not only new ones.
    #[arg(long)]
    pub reprocess: bool,
    /// The editor to run (a shell command line; default: $EDITOR, then vim).
    #[arg(long)]
    pub editor: Option<String>,
    /// The format to edit the spec in: json (the default) or yaml.
    #[arg(short, long, value_parser = ["json", "yaml"], default_value = "json")]
    pub output: String,
}

/// The spec pachd keeps for a pipeline (what `create pipeline` was given),
/// as Pachyderm 1.9's `extract pipeline` prints it.
async fn extracted(c: &mut Client, name: &str, format: &str) -> anyhow::Result<String> {
    let op = c
        .admin
        .extract_pipeline(pach_api::admin::ExtractPipelineRequest {
            pipeline: Some(pps::Pipeline { name: name.into() }),
        })
        .await
        .map_err(status)?
        .into_inner();
    let request = op
        .op1_9
        .and_then(|op| op.pipeline)
        .with_context(|| format!("pachd returned no spec for pipeline '{name}'"))?;
    let spec = message_json(&request, FieldNames::Proto)?;
    Ok(if format == "yaml" {
        serde_yaml_ng::to_string(&spec)?
    } else {
        format!("{}\n", serde_json::to_string_pretty(&spec)?)
    })
}

pub async fn extract(a: ExtractPipeline) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let text = extracted(&mut c, &a.pipeline, &a.output).await?;
    let mut out = super::stdout();
    out.write_all(text.as_bytes())?;
    super::finish(out)
}

/// `edit pipeline`: the spec in an editor, then `update pipeline` with what
/// was saved, unless nothing changed.
pub async fn edit(a: EditPipeline) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let before = extracted(&mut c, &a.pipeline, &a.output).await?;
    let file = tempfile::Builder::new()
        .prefix(&format!("{}-", a.pipeline))
        .suffix(&format!(".{}", a.output))
        .tempfile()
        .context("cannot create a temporary file for the spec")?;
    std::fs::write(file.path(), &before).context("cannot write the spec to edit")?;
    let editor = a
        .editor
        .or_else(|| std::env::var("EDITOR").ok())
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "vim".into());
    // A command line, so that EDITOR="code --wait" works.
    let ran = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(file.path())
        .status()
        .with_context(|| format!("cannot run the editor '{editor}'"))?;
    if !ran.success() {
        bail!("the editor '{editor}' failed ({ran}); the pipeline was not updated");
    }
    let after = std::fs::read_to_string(file.path()).context("cannot read the edited spec")?;
    if documents(&after)? == documents(&before)? {
        println!("Pipeline unchanged, no update will be performed.");
        return Ok(());
    }
    let spec = CreatePipeline {
        file: file.path().to_string_lossy().into_owned(),
        images: ImageFlags::default(),
    };
    create(spec, true, a.reprocess).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_go_typed_and_later_inputs_go_extended() {
        let docs = documents(
            "pipeline: {name: a}\ntransform: {cmd: [sh]}\nparallelism_spec: {constant: 2}\ninput: {pfs: {repo: r, glob: /*}}\n---\npipeline: {name: b, project: {name: default}}\ntransform: {cmd: [sh]}\ninput:\n  group:\n  - pfs: {repo: r, glob: \"/(*)\", group_by: \"$1\"}\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        match request_of(docs[0].clone(), true, false).unwrap() {
            Request::Pachyderm(r) => {
                assert!(r.update);
                assert_eq!(r.parallelism_spec.unwrap().constant, 2);
                assert_eq!(r.input.unwrap().pfs.unwrap().glob, "/*");
            }
            Request::Extended(_) => panic!("a 1.9 spec goes typed"),
        }
        match request_of(docs[1].clone(), false, false).unwrap() {
            Request::Extended(r) => {
                assert_eq!(r.project, "default");
                assert_eq!(r.request.unwrap().pipeline.unwrap().name, "b");
                let group = &r.input.unwrap().group;
                assert_eq!(group[0].pfs.as_ref().unwrap().group_by, "$1");
            }
            Request::Pachyderm(_) => panic!("group inputs need the extension"),
        }
        let err = request_of(
            serde_json::json!({"pipeline": {"name": "x"}, "transfrom": {}}),
            false,
            false,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("transfrom"), "{err}");
        let err = documents("  \n").unwrap_err().to_string();
        assert!(err.contains("no pipeline spec"), "{err}");
    }

    #[test]
    fn history_and_provenance_arguments() {
        assert_eq!(history("none").unwrap(), 0);
        assert_eq!(history("all").unwrap(), -1);
        assert_eq!(history("3").unwrap(), 3);
        assert!(history("some").is_err());
        let p = provenance("images@master=abc").unwrap();
        assert_eq!(p.commit.unwrap().id, "abc");
        assert_eq!(p.branch.unwrap().name, "master");
        let p = provenance("images@abc").unwrap();
        assert!(p.branch.is_none());
        assert!(provenance("images").is_err());
    }
}
