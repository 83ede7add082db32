//! `create/update/list/inspect/stop/start/delete pipeline`.

use std::io::{Read, Write};

use anyhow::Context;
use clap::Args;
use pach_api as api;
use serde_json::Value;

use crate::client::{connect, status};
use crate::output::{self, Format, Table};

#[derive(Debug, Args)]
pub struct CreatePipeline {
    /// The spec file (JSON or YAML, one or several pipelines): a path, a URL
    /// (http(s), s3, gs, az) or - for stdin.
    #[arg(short = 'f', long = "file")]
    pub file: String,
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
    #[arg(long)]
    pub force: bool,
}

fn is_url(s: &str) -> bool {
    [
        "http://", "https://", "s3://", "gs://", "az://", "azure://", "file://",
    ]
    .iter()
    .any(|p| s.starts_with(p))
}

pub async fn create(a: CreatePipeline, update: bool, reprocess: bool) -> anyhow::Result<()> {
    let (spec, spec_url) = if is_url(&a.file) {
        (String::new(), a.file.clone())
    } else if a.file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the spec from stdin")?;
        (s, String::new())
    } else {
        let s = std::fs::read_to_string(&a.file)
            .with_context(|| format!("cannot read the spec file '{}'", a.file))?;
        (s, String::new())
    };
    let mut c = connect().await?;
    c.old_pps
        .create_pipeline(api::CreatePipelineRequest {
            spec,
            update,
            reprocess,
            spec_url,
        })
        .await
        .map_err(status)?;
    Ok(())
}

fn parse(items: Vec<String>) -> anyhow::Result<Vec<Value>> {
    items
        .iter()
        .map(|s| serde_json::from_str(s).context("pachd sent malformed JSON"))
        .collect()
}

/// Nanoseconds since the epoch of an RFC 3339 time in a JSON view.
pub fn ns(v: &Value) -> i64 {
    v.as_str()
        .and_then(|s| humantime::parse_rfc3339(s).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Pachyderm's one-line form of an input: `images:/*`, `(a:/* ⨯ b:/)`.
fn input_summary(v: &Value) -> String {
    if let Some(p) = v.get("pfs") {
        let repo = p["repo"].as_str().unwrap_or("");
        return format!("{repo}:{}", p["glob"].as_str().unwrap_or(""));
    }
    if let Some(c) = v.get("cron") {
        return format!(
            "{}:{}",
            c["name"].as_str().unwrap_or(""),
            c["spec"].as_str().unwrap_or("")
        );
    }
    for (key, op) in [
        ("cross", " ⨯ "),
        ("union", " ∪ "),
        ("join", " ⋈ "),
        ("group", " ∪ "),
    ] {
        if let Some(list) = v.get(key).and_then(Value::as_array) {
            let parts: Vec<String> = list.iter().map(input_summary).collect();
            return format!("({})", parts.join(op));
        }
    }
    String::new()
}

fn state_word(s: &Value, prefix: &str) -> String {
    s.as_str()
        .map(|s| s.trim_start_matches(prefix).to_ascii_lowercase())
        .unwrap_or_else(|| "-".into())
}

pub async fn list(format: &Format) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let items = c
        .old_pps
        .list_pipeline(api::Empty {})
        .await
        .map_err(status)?
        .into_inner()
        .items;
    let pipelines = parse(items)?;
    let mut out = super::stdout();
    if format.is_human() {
        let mut t = Table::new(&[
            "NAME",
            "VERSION",
            "INPUT",
            "CREATED",
            "STATE / LAST JOB",
            "DESCRIPTION",
        ]);
        for p in &pipelines {
            t.row(vec![
                p["pipeline"]["name"].as_str().unwrap_or("").into(),
                p["version"].to_string(),
                input_summary(&p["input"]),
                output::ago(ns(&p["created_at"])),
                format!(
                    "{} / {}",
                    state_word(&p["state"], "PIPELINE_"),
                    state_word(&p["last_job_state"], "JOB_")
                ),
                p["description"].as_str().unwrap_or("").into(),
            ]);
        }
        t.print(&mut out)?;
    } else {
        format.print(&mut out, &pipelines)?;
    }
    super::finish(out)
}

pub async fn inspect(name: &str, format: &Format) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let j = c
        .old_pps
        .inspect_pipeline(api::InspectPipelineRequest { name: name.into() })
        .await
        .map_err(status)?
        .into_inner()
        .json;
    let p: Value = serde_json::from_str(&j)?;
    let mut out = super::stdout();
    if format.is_human() {
        writeln!(
            out,
            "Name: {}",
            p["pipeline"]["name"].as_str().unwrap_or("")
        )?;
        if let Some(d) = p["description"].as_str() {
            writeln!(out, "Description: {d}")?;
        }
        writeln!(out, "Created: {}", output::ago(ns(&p["created_at"])))?;
        writeln!(out, "State: {}", state_word(&p["state"], "PIPELINE_"))?;
        writeln!(out, "Stopped: {}", p["stopped"])?;
        writeln!(out, "Version: {}", p["version"])?;
        writeln!(
            out,
            "Last job: {}",
            state_word(&p["last_job_state"], "JOB_")
        )?;
        writeln!(
            out,
            "Output Branch: {}",
            p["output_branch"].as_str().unwrap_or("")
        )?;
        writeln!(
            out,
            "Input:\n{}",
            serde_json::to_string_pretty(&p["input"])?
        )?;
        writeln!(
            out,
            "Transform:\n{}",
            serde_json::to_string_pretty(&p["transform"])?
        )?;
    } else {
        format.print(&mut out, &[p])?;
    }
    super::finish(out)
}

pub async fn set_state(s: Selection, run: bool) -> anyhow::Result<()> {
    if s.pipelines.is_empty() && !s.all {
        anyhow::bail!(
            "name the pipeline(s) to {}, or use --all",
            if run { "start" } else { "stop" }
        );
    }
    let mut c = connect().await?;
    let req = api::PipelineSelection {
        names: s.pipelines,
        all: s.all,
        force: false,
    };
    if run {
        c.old_pps.start_pipeline(req).await.map_err(status)?;
    } else {
        c.old_pps.stop_pipeline(req).await.map_err(status)?;
    }
    Ok(())
}

pub async fn delete(a: DeletePipeline) -> anyhow::Result<()> {
    if a.selection.pipelines.is_empty() && !a.selection.all {
        anyhow::bail!("name the pipeline(s) to delete, or use --all");
    }
    let mut c = connect().await?;
    c.old_pps
        .delete_pipeline(api::PipelineSelection {
            names: a.selection.pipelines,
            all: a.selection.all,
            force: a.force,
        })
        .await
        .map_err(status)?;
    Ok(())
}
