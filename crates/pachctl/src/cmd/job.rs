//! `list/inspect/wait/flush/stop/delete job`, `list/inspect/restart datum`
//! and `logs`, on Pachyderm 1.9's `pps.API`. `--raw` prints Pachyderm's
//! messages with the field names of its .proto files, as its pachctl does.

use std::io::Write;

use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use pach_api::json::FieldNames;
use pach_api::{pfs, pps};

use super::pipeline::{history, job_state_word, ns};
use crate::client::{connect, status};
use crate::output::{self, Format, Raw, Table, message_json};

#[derive(Debug, Args)]
pub struct ListJob {
    /// Only the jobs of this pipeline.
    #[arg(short, long)]
    pub pipeline: Option<String>,
    /// Only jobs computed from this input commit (REPO@BRANCH or REPO@COMMIT;
    /// repeat for several, or separate them with commas).
    #[arg(short, long = "input", value_delimiter = ',')]
    pub inputs: Vec<String>,
    /// Only the job with this output commit (REPO@BRANCH or REPO@COMMIT).
    #[arg(short, long)]
    pub output: Option<String>,
    /// Jobs of earlier pipeline versions too: a number of versions, "all"
    /// or "none".
    #[arg(long, default_value = "none")]
    pub history: String,
    /// Print directly, not through a pager.
    #[arg(long)]
    pub no_pager: bool,
    #[command(flatten)]
    pub format: Raw,
}

#[derive(Debug, Args)]
pub struct FlushJob {
    /// The commits (REPO@BRANCH or REPO@COMMIT) whose downstream jobs to wait for.
    #[arg(required = true)]
    pub commits: Vec<String>,
    /// Only jobs of this pipeline (repeat for several).
    #[arg(short, long = "pipeline")]
    pub pipelines: Vec<String>,
    #[command(flatten)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ListDatum {
    pub job: String,
    /// Datums per page (0: all in one).
    #[arg(long = "pageSize", default_value_t = 0)]
    pub page_size: i64,
    /// The page to print, from 0.
    #[arg(long, default_value_t = 0)]
    pub page: i64,
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
    /// Logs of this datum (its id).
    #[arg(long)]
    pub datum: Option<String>,
    /// Only datums with these input files (comma-separated paths or hashes).
    #[arg(long, default_value = "")]
    pub inputs: String,
    /// The lines of the jobs' runner instead of user code's.
    #[arg(long)]
    pub master: bool,
    /// Keep printing logs as datums finish.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(short, long, default_value_t = 0)]
    pub tail: i64,
    /// Print each message as JSON, with its pipeline, job and datum, and
    /// pachd's own lines about each datum.
    #[arg(long)]
    pub raw: bool,
}

/// `REPO@BRANCH` or `REPO@COMMIT` as a commit on the wire.
fn commit_arg(arg: &str) -> anyhow::Result<pfs::Commit> {
    let r = crate::refs::parse(arg)?;
    if !r.path.is_empty() {
        anyhow::bail!("'{arg}' names a file; use REPO@BRANCH or REPO@COMMIT");
    }
    Ok(pfs::Commit {
        repo: Some(pfs::Repo {
            name: r.repo.clone(),
        }),
        id: r.commit_or_master(),
    })
}

fn duration(j: &pps::JobInfo) -> String {
    let start = ns(&j.started);
    if start == 0 {
        return "-".into();
    }
    let end = match ns(&j.finished) {
        0 => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0),
        e => e,
    };
    let secs = ((end - start).max(0) as f64) / 1e9;
    if secs < 60.0 {
        format!("{secs:.1} seconds")
    } else {
        humantime::format_duration(std::time::Duration::from_secs(secs as u64)).to_string()
    }
}

fn progress(j: &pps::JobInfo) -> String {
    if j.data_recovered != 0 {
        format!(
            "{} + {} + {} / {}",
            j.data_processed, j.data_skipped, j.data_recovered, j.data_total
        )
    } else {
        format!(
            "{} + {} / {}",
            j.data_processed, j.data_skipped, j.data_total
        )
    }
}

fn stats_bytes(j: &pps::JobInfo) -> (String, String) {
    let s = j.stats.unwrap_or_default();
    (
        output::bytes(s.download_bytes),
        output::bytes(s.upload_bytes),
    )
}

fn print_jobs(jobs: &[pps::JobInfo], format: &Format) -> anyhow::Result<()> {
    let mut out = super::stdout();
    write_jobs(&mut out, jobs, format)?;
    super::finish(out)
}

fn write_jobs(out: &mut dyn Write, jobs: &[pps::JobInfo], format: &Format) -> anyhow::Result<()> {
    let mut out = out;
    if format.is_human() {
        let mut t = Table::new(&[
            "ID", "PIPELINE", "STARTED", "DURATION", "RESTART", "PROGRESS", "DL", "UL", "STATE",
        ]);
        for j in jobs {
            let (dl, ul) = stats_bytes(j);
            let mut state = job_state_word(j.state);
            if j.state == pps::JobState::JobFailure as i32 && !j.reason.is_empty() {
                state = format!("{state}: {}", j.reason.lines().next().unwrap_or(""));
            }
            t.row(vec![
                j.job.as_ref().map(|j| j.id.clone()).unwrap_or_default(),
                j.pipeline
                    .as_ref()
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
                output::ago(ns(&j.started)),
                duration(j),
                j.restart.to_string(),
                progress(j),
                dl,
                ul,
                state,
            ]);
        }
        t.print(&mut out)?;
    } else {
        let objects = jobs
            .iter()
            .map(|j| message_json(j, FieldNames::Proto))
            .collect::<anyhow::Result<Vec<_>>>()?;
        format.print(&mut out, &objects)?;
    }
    Ok(())
}

pub async fn list(a: ListJob) -> anyhow::Result<()> {
    let history = history(&a.history)?;
    let input_commit = a
        .inputs
        .iter()
        .map(|i| commit_arg(i))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut c = connect().await?;
    let mut stream = c
        .pps
        .list_job_stream(pps::ListJobRequest {
            pipeline: a.pipeline.map(|name| pps::Pipeline { name }),
            input_commit,
            output_commit: a.output.as_deref().map(commit_arg).transpose()?,
            history,
            full: true,
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut jobs = Vec::new();
    while let Some(j) = stream.next().await {
        jobs.push(j.map_err(status)?);
    }
    let format = Format::from(a.format);
    output::paged(a.no_pager, |out| write_jobs(out, &jobs, &format))
}

pub async fn flush(a: FlushJob) -> anyhow::Result<()> {
    let commits = a
        .commits
        .iter()
        .map(|c| commit_arg(c))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut c = connect().await?;
    let mut stream = c
        .pps
        .flush_job(pps::FlushJobRequest {
            commits,
            to_pipelines: a
                .pipelines
                .into_iter()
                .map(|name| pps::Pipeline { name })
                .collect(),
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut jobs = Vec::new();
    while let Some(j) = stream.next().await {
        jobs.push(j.map_err(status)?);
    }
    print_jobs(&jobs, &a.format)
}

pub async fn inspect(job: &str, wait: bool, format: &Format) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let j = c
        .pps
        .inspect_job(pps::InspectJobRequest {
            job: Some(pps::Job { id: job.into() }),
            output_commit: None,
            block_state: wait,
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut out = super::stdout();
    if !format.is_human() {
        format.print(&mut out, &[message_json(&j, FieldNames::Proto)?])?;
        return super::finish(out);
    }
    let stats = j.stats.unwrap_or_default();
    let dur = |d: &Option<prost_types::Duration>| {
        d.map(|d| {
            humantime::format_duration(std::time::Duration::new(
                d.seconds.max(0) as u64,
                d.nanos.max(0) as u32,
            ))
            .to_string()
        })
        .unwrap_or_else(|| "-".into())
    };
    writeln!(
        out,
        "ID: {}",
        j.job.as_ref().map(|j| j.id.as_str()).unwrap_or("")
    )?;
    writeln!(
        out,
        "Pipeline: {}",
        j.pipeline.as_ref().map(|p| p.name.as_str()).unwrap_or("")
    )?;
    writeln!(out, "Started: {}", output::ago(ns(&j.started)))?;
    writeln!(out, "Duration: {}", duration(&j))?;
    writeln!(out, "State: {}", job_state_word(j.state))?;
    writeln!(out, "Reason: {}", j.reason)?;
    writeln!(out, "Processed: {}", j.data_processed)?;
    writeln!(out, "Failed: {}", j.data_failed)?;
    writeln!(out, "Skipped: {}", j.data_skipped)?;
    writeln!(out, "Recovered: {}", j.data_recovered)?;
    writeln!(out, "Total: {}", j.data_total)?;
    writeln!(
        out,
        "Data Downloaded: {}",
        output::bytes(stats.download_bytes)
    )?;
    writeln!(out, "Data Uploaded: {}", output::bytes(stats.upload_bytes))?;
    writeln!(out, "Download Time: {}", dur(&stats.download_time))?;
    writeln!(out, "Process Time: {}", dur(&stats.process_time))?;
    writeln!(out, "Upload Time: {}", dur(&stats.upload_time))?;
    if let Some(i) = &j.input {
        let v = message_json(i, FieldNames::Proto)?;
        writeln!(out, "Input:\n{}", serde_json::to_string_pretty(&v)?)?;
    }
    if let Some(c) = &j.output_commit {
        writeln!(
            out,
            "Output Commit: {}@{}",
            c.repo.as_ref().map(|r| r.name.as_str()).unwrap_or(""),
            c.id
        )?;
    }
    if let Some(c) = &j.stats_commit {
        writeln!(out, "Stats Commit: {}", c.id)?;
    }
    if let Some(e) = &j.egress {
        writeln!(out, "Egress: {}", e.url)?;
    }
    super::finish(out)
}

pub async fn stop(job: &str) -> anyhow::Result<()> {
    let mut c = connect().await?;
    c.pps
        .stop_job(pps::StopJobRequest {
            job: Some(pps::Job { id: job.into() }),
        })
        .await
        .map_err(status)?;
    Ok(())
}

pub async fn delete(job: &str) -> anyhow::Result<()> {
    let mut c = connect().await?;
    c.pps
        .delete_job(pps::DeleteJobRequest {
            job: Some(pps::Job { id: job.into() }),
        })
        .await
        .map_err(status)?;
    Ok(())
}

fn datum_state_word(s: i32) -> String {
    pps::DatumState::try_from(s)
        .map(|s| s.as_str_name().to_ascii_lowercase())
        .unwrap_or_else(|_| "-".into())
}

fn total_time(s: &Option<pps::ProcessStats>) -> f64 {
    let secs = |d: &Option<prost_types::Duration>| {
        d.map(|d| d.seconds as f64 + f64::from(d.nanos) / 1e9)
            .unwrap_or(0.0)
    };
    s.as_ref()
        .map(|s| secs(&s.download_time) + secs(&s.process_time) + secs(&s.upload_time))
        .unwrap_or(0.0)
}

fn file_name(f: &pfs::FileInfo) -> (String, String, String) {
    let file = f.file.clone().unwrap_or_default();
    let commit = file.commit.unwrap_or_default();
    (
        commit.repo.map(|r| r.name).unwrap_or_default(),
        commit.id,
        file.path,
    )
}

pub async fn list_datum(a: ListDatum) -> anyhow::Result<()> {
    if a.page_size < 0 || a.page < 0 {
        anyhow::bail!("--pageSize and --page must be zero or positive");
    }
    let mut c = connect().await?;
    let mut stream = c
        .pps
        .list_datum_stream(pps::ListDatumRequest {
            job: Some(pps::Job { id: a.job.clone() }),
            page_size: a.page_size,
            page: a.page,
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut datums = Vec::new();
    while let Some(d) = stream.next().await {
        if let Some(d) = d.map_err(status)?.datum_info {
            datums.push(d);
        }
    }
    let mut out = super::stdout();
    if a.format.is_human() {
        let mut t = Table::new(&["ID", "FILES", "STATUS", "TIME"]);
        for d in &datums {
            let files: Vec<String> = d
                .data
                .iter()
                .map(|f| {
                    let (repo, _, path) = file_name(f);
                    format!("{repo}@:{path}")
                })
                .collect();
            t.row(vec![
                d.datum.as_ref().map(|d| d.id.clone()).unwrap_or_default(),
                files.join(", "),
                datum_state_word(d.state),
                format!("{:.3}s", total_time(&d.stats)),
            ]);
        }
        t.print(&mut out)?;
    } else {
        let objects = datums
            .iter()
            .map(|d| message_json(d, FieldNames::Proto))
            .collect::<anyhow::Result<Vec<_>>>()?;
        a.format.print(&mut out, &objects)?;
    }
    super::finish(out)
}

pub async fn inspect_datum(job: &str, datum: &str, format: &Format) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let d = c
        .pps
        .inspect_datum(pps::InspectDatumRequest {
            datum: Some(pps::Datum {
                id: datum.into(),
                job: Some(pps::Job { id: job.into() }),
            }),
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut out = super::stdout();
    if !format.is_human() {
        format.print(&mut out, &[message_json(&d, FieldNames::Proto)?])?;
        return super::finish(out);
    }
    let s = d.stats.unwrap_or_default();
    writeln!(
        out,
        "ID: {}",
        d.datum.as_ref().map(|d| d.id.as_str()).unwrap_or("")
    )?;
    writeln!(
        out,
        "Job ID: {}",
        d.datum
            .as_ref()
            .and_then(|d| d.job.as_ref())
            .map(|j| j.id.as_str())
            .unwrap_or("")
    )?;
    writeln!(out, "State: {}", datum_state_word(d.state))?;
    writeln!(out, "Data Downloaded: {}", output::bytes(s.download_bytes))?;
    writeln!(out, "Data Uploaded: {}", output::bytes(s.upload_bytes))?;
    writeln!(out, "Total Time: {:.3}s", total_time(&d.stats))?;
    if let Some(f) = &d.pfs_state {
        let commit = f.commit.clone().unwrap_or_default();
        writeln!(out, "PFS State:")?;
        let mut t = Table::new(&["  REPO", "COMMIT", "PATH"]);
        t.row(vec![
            format!("  {}", commit.repo.map(|r| r.name).unwrap_or_default()),
            commit.id,
            f.path.clone(),
        ]);
        t.print(&mut out)?;
    }
    writeln!(out, "Inputs:")?;
    let mut t = Table::new(&["  REPO", "COMMIT", "PATH", "SIZE"]);
    for f in &d.data {
        let (repo, commit, path) = file_name(f);
        t.row(vec![
            format!("  {repo}"),
            commit,
            path,
            output::bytes(f.size_bytes),
        ]);
    }
    t.print(&mut out)?;
    super::finish(out)
}

/// Restarts datums of a job: `filters` are datum ids or input file paths
/// or hashes, comma-separated (Pachyderm's form). A running job's matching
/// datums are killed and run again in place (named on stderr); a finished
/// job's failed ones by a new job, whose id is printed.
pub async fn restart_datum(job: &str, filters: &str) -> anyhow::Result<()> {
    let data_filters: Vec<String> = filters
        .split(',')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect();
    let mut c = connect().await?;
    let r = c
        .pps
        .restart_datum(pps::RestartDatumRequest {
            job: Some(pps::Job { id: job.into() }),
            data_filters,
        })
        .await
        .map_err(status)?;
    let header = |k: &str| r.metadata().get(k).and_then(|v| v.to_str().ok());
    if let Some(id) = header("pach-job") {
        // A finished job: the new job running its failed datums again.
        println!("{id}");
    } else if let Some(datums) = header("pach-datums") {
        eprintln!("restarted datum {datums} of job {job}");
    } else {
        eprintln!("job {job} has finished with no failed datum: nothing to restart");
    }
    Ok(())
}

pub async fn logs(a: Logs) -> anyhow::Result<()> {
    if a.pipeline.is_none() && a.job.is_none() {
        anyhow::bail!("name a pipeline (--pipeline NAME) or a job (--job ID)");
    }
    if a.tail < 0 {
        anyhow::bail!("--tail must be zero or positive");
    }
    let data_filters: Vec<String> = a
        .inputs
        .split(',')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect();
    let mut c = connect().await?;
    let mut lines = c
        .pps
        .get_logs(pps::GetLogsRequest {
            pipeline: a.pipeline.map(|name| pps::Pipeline { name }),
            job: a.job.clone().map(|id| pps::Job { id }),
            data_filters,
            datum: a.datum.map(|id| pps::Datum {
                id,
                job: a.job.map(|id| pps::Job { id }),
            }),
            master: a.master,
            follow: a.follow,
            tail: a.tail,
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut out = super::stdout();
    while let Some(line) = lines.next().await {
        let l = line.map_err(status)?;
        // As Pachyderm's pachctl: user code's lines (or, with --master,
        // the runner's); --raw shows everything.
        let written = if a.raw {
            writeln!(out, "{}", message_json(&l, FieldNames::Proto)?)
        } else if l.user || (a.master && l.master) {
            writeln!(out, "{}", l.message)
        } else {
            Ok(())
        };
        if let Err(e) = written {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e).context("writing the logs");
        }
        if a.follow {
            out.flush().ok();
        }
    }
    super::finish(out)
}
