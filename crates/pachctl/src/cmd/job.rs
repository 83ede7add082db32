//! `list/inspect/wait/stop/delete job`, `list/inspect/restart datum`, `logs`.

use std::io::Write;

use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use pach_api as api;
use serde_json::Value;

use super::pipeline::ns;
use crate::client::{connect, status};
use crate::output::{self, Format, Table};

#[derive(Debug, Args)]
pub struct ListJob {
    /// Only the jobs of this pipeline.
    #[arg(short, long)]
    pub pipeline: Option<String>,
    #[command(flatten)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct Logs {
    /// Logs of this pipeline's jobs.
    #[arg(short, long)]
    pub pipeline: Option<String>,
    /// Logs of this job.
    #[arg(short, long)]
    pub job: Option<String>,
    /// Logs of this datum (with --job).
    #[arg(long)]
    pub datum: Option<String>,
    /// Keep printing logs as datums finish.
    #[arg(short, long)]
    pub follow: bool,
    /// Print each line as JSON with its pipeline, job and datum.
    #[arg(long)]
    pub raw: bool,
}

fn parse(items: Vec<String>) -> anyhow::Result<Vec<Value>> {
    items
        .iter()
        .map(|s| serde_json::from_str(s).context("pachd sent malformed JSON"))
        .collect()
}

fn duration(j: &Value) -> String {
    let start = ns(&j["started"]);
    let end = match ns(&j["finished"]) {
        0 => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0),
        e => e,
    };
    if start == 0 {
        return "-".into();
    }
    let secs = ((end - start).max(0) as f64) / 1e9;
    if secs < 60.0 {
        format!("{secs:.1} seconds")
    } else {
        humantime::format_duration(std::time::Duration::from_secs(secs as u64)).to_string()
    }
}

fn state(j: &Value) -> String {
    j["state"]
        .as_str()
        .map(|s| s.trim_start_matches("JOB_").to_ascii_lowercase())
        .unwrap_or_default()
}

pub async fn list(a: ListJob) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let items = c
        .old_pps
        .list_job(api::ListJobRequest {
            pipeline: a.pipeline.unwrap_or_default(),
        })
        .await
        .map_err(status)?
        .into_inner()
        .items;
    let jobs = parse(items)?;
    let mut out = super::stdout();
    if a.format.is_human() {
        let mut t = Table::new(&["ID", "PIPELINE", "STARTED", "DURATION", "PROGRESS", "STATE"]);
        for j in &jobs {
            t.row(vec![
                j["job"]["id"].as_str().unwrap_or("").into(),
                j["pipeline"]["name"].as_str().unwrap_or("").into(),
                output::ago(ns(&j["started"])),
                duration(j),
                format!(
                    "{} + {} / {}",
                    j["data_processed"], j["data_skipped"], j["data_total"]
                ),
                state(j),
            ]);
        }
        t.print(&mut out)?;
    } else {
        a.format.print(&mut out, &jobs)?;
    }
    super::finish(out)
}

pub async fn inspect(job: &str, wait: bool, format: &Format) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let j = c
        .old_pps
        .inspect_job(api::JobRequest {
            job: job.into(),
            wait,
        })
        .await
        .map_err(status)?
        .into_inner()
        .json;
    let j: Value = serde_json::from_str(&j)?;
    let mut out = super::stdout();
    if format.is_human() {
        writeln!(out, "ID: {}", j["job"]["id"].as_str().unwrap_or(""))?;
        writeln!(
            out,
            "Pipeline: {}",
            j["pipeline"]["name"].as_str().unwrap_or("")
        )?;
        writeln!(out, "Started: {}", output::ago(ns(&j["started"])))?;
        writeln!(out, "Duration: {}", duration(&j))?;
        writeln!(out, "State: {}", state(&j))?;
        if let Some(r) = j["reason"].as_str().filter(|r| !r.is_empty()) {
            writeln!(out, "Reason: {r}")?;
        }
        writeln!(out, "Processed: {}", j["data_processed"])?;
        writeln!(out, "Skipped: {}", j["data_skipped"])?;
        writeln!(out, "Recovered: {}", j["data_recovered"])?;
        writeln!(out, "Failed: {}", j["data_failed"])?;
        writeln!(out, "Total: {}", j["data_total"])?;
        for i in j["input_commits"].as_array().into_iter().flatten() {
            writeln!(
                out,
                "Input commit: {}@{}",
                i["repo"]["name"].as_str().unwrap_or(""),
                i["id"].as_str().unwrap_or("")
            )?;
        }
        writeln!(
            out,
            "Output commit: {}@{}",
            j["output_commit"]["repo"]["name"].as_str().unwrap_or(""),
            j["output_commit"]["id"].as_str().unwrap_or("")
        )?;
    } else {
        format.print(&mut out, &[j])?;
    }
    super::finish(out)
}

pub async fn stop(job: &str) -> anyhow::Result<()> {
    let mut c = connect().await?;
    c.old_pps
        .stop_job(api::JobRequest {
            job: job.into(),
            wait: false,
        })
        .await
        .map_err(status)?;
    Ok(())
}

pub async fn delete(job: &str) -> anyhow::Result<()> {
    let mut c = connect().await?;
    c.old_pps
        .delete_job(api::JobRequest {
            job: job.into(),
            wait: false,
        })
        .await
        .map_err(status)?;
    Ok(())
}

pub async fn list_datum(job: &str, format: &Format) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let items = c
        .old_pps
        .list_datum(api::JobRequest {
            job: job.into(),
            wait: false,
        })
        .await
        .map_err(status)?
        .into_inner()
        .items;
    let datums = parse(items)?;
    let mut out = super::stdout();
    if format.is_human() {
        let mut t = Table::new(&["ID", "FILES", "STATUS", "TIME"]);
        for d in &datums {
            let files: Vec<String> = d["data"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| {
                    format!(
                        "{}@:{}",
                        f["file"]["repo"]["name"].as_str().unwrap_or(""),
                        f["file"]["path"].as_str().unwrap_or("")
                    )
                })
                .collect();
            let secs = (ns(&d["finished"]) - ns(&d["started"])).max(0) as f64 / 1e9;
            t.row(vec![
                d["datum"]["id"].as_str().unwrap_or("").into(),
                files.join(", "),
                d["state"].as_str().unwrap_or("").to_ascii_lowercase(),
                format!("{secs:.3}s"),
            ]);
        }
        t.print(&mut out)?;
    } else {
        format.print(&mut out, &datums)?;
    }
    super::finish(out)
}

pub async fn inspect_datum(job: &str, datum: &str, format: &Format) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let d = c
        .old_pps
        .inspect_datum(api::DatumRequest {
            job: job.into(),
            datum: datum.into(),
        })
        .await
        .map_err(status)?
        .into_inner()
        .json;
    let d: Value = serde_json::from_str(&d)?;
    let mut out = super::stdout();
    if format.is_human() {
        writeln!(out, "ID: {}", d["datum"]["id"].as_str().unwrap_or(""))?;
        writeln!(
            out,
            "Job ID: {}",
            d["datum"]["job"]["id"].as_str().unwrap_or("")
        )?;
        writeln!(out, "State: {}", d["state"].as_str().unwrap_or(""))?;
        if let Some(r) = d["reason"].as_str().filter(|r| !r.is_empty()) {
            writeln!(out, "Reason: {r}")?;
        }
        writeln!(out, "Tries: {}", d["tries"])?;
        writeln!(out, "Output files: {}", d["output_files"])?;
        let mut t = Table::new(&["REPO", "PATH", "SIZE"]);
        for f in d["data"].as_array().into_iter().flatten() {
            t.row(vec![
                f["file"]["repo"]["name"].as_str().unwrap_or("").into(),
                f["file"]["path"].as_str().unwrap_or("").into(),
                output::bytes(f["size_bytes"].as_u64().unwrap_or(0)),
            ]);
        }
        t.print(&mut out)?;
    } else {
        format.print(&mut out, &[d])?;
    }
    super::finish(out)
}

pub async fn restart_datum(job: &str, datum: &str) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let r = c
        .old_pps
        .restart_datum(api::DatumRequest {
            job: job.into(),
            datum: datum.into(),
        })
        .await
        .map_err(status)?
        .into_inner()
        .json;
    let v: Value = serde_json::from_str(&r)?;
    println!("{}", v["job"]["id"].as_str().unwrap_or(""));
    Ok(())
}

pub async fn logs(a: Logs) -> anyhow::Result<()> {
    if a.pipeline.is_none() && a.job.is_none() {
        anyhow::bail!("name a pipeline (--pipeline NAME) or a job (--job ID)");
    }
    if a.datum.is_some() && a.job.is_none() {
        anyhow::bail!("--datum needs --job: datum ids are per job");
    }
    let mut c = connect().await?;
    let mut lines = c
        .old_pps
        .get_logs(api::GetLogsRequest {
            pipeline: a.pipeline.unwrap_or_default(),
            job: a.job.unwrap_or_default(),
            datum: a.datum.unwrap_or_default(),
            follow: a.follow,
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut out = super::stdout();
    while let Some(line) = lines.next().await {
        let l = line.map_err(status)?;
        let written = if a.raw {
            writeln!(
                out,
                "{}",
                serde_json::json!({"pipelineName": l.pipeline, "jobId": l.job, "datumId": l.datum, "message": l.message})
            )
        } else {
            writeln!(out, "{}", l.message)
        };
        if let Err(e) = written {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e.into());
        }
        if a.follow {
            out.flush().ok();
        }
    }
    super::finish(out)
}
