//! `start/finish/list/inspect/delete/wait/flush/subscribe commit`, through `pfs.API`.

use std::io::Write;

use clap::Args;
use futures::StreamExt;
use pach_api::pfs;

use crate::client::{connect, status};
use crate::output::{self, Format, Table};
use crate::refs;

#[derive(Debug, Args)]
pub struct StartCommit {
    /// REPO@BRANCH (REPO alone: a commit on no branch)
    pub branch: String,
    /// The parent of the new commit (instead of the branch's head).
    #[arg(short, long)]
    pub parent: Option<String>,
    /// A description of the commit.
    #[arg(short, long, alias = "description")]
    pub message: Option<String>,
}

#[derive(Debug, Args)]
pub struct FinishCommit {
    /// REPO@COMMIT (or REPO@BRANCH: its open head)
    pub commit: String,
    /// A description of the commit (replaces the one given at start).
    #[arg(short, long, alias = "description")]
    pub message: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListCommit {
    /// REPO or REPO@BRANCH (the branch's history)
    pub repo: String,
    /// List only the commits since this commit (on the branch given).
    #[arg(short, long)]
    pub from: Option<String>,
    /// List only this many commits; 0 lists all.
    #[arg(short = 'n', long, default_value_t = 0)]
    pub number: u64,
    #[command(flatten)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct InspectCommit {
    /// REPO@COMMIT
    pub commit: String,
    /// Wait until the commit is finished.
    #[arg(short, long)]
    pub block: bool,
    #[command(flatten)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct FlushCommit {
    /// REPO@COMMIT, one or more
    #[arg(required = true)]
    pub commits: Vec<String>,
    /// Wait only for commits leading to these repos.
    #[arg(short, long)]
    pub repos: Vec<String>,
    #[command(flatten)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct SubscribeCommit {
    /// REPO@BRANCH
    pub branch: String,
    /// Only the commits created after this one.
    #[arg(long)]
    pub from: Option<String>,
    /// Only the commits created from now on.
    #[arg(long)]
    pub new: bool,
    /// Only the output commits of this pipeline's current version.
    #[arg(long)]
    pub pipeline: Option<String>,
    #[command(flatten)]
    pub format: Format,
}

fn commit_ref(arg: &str) -> anyhow::Result<pfs::Commit> {
    let r = refs::parse(arg)?;
    if r.commit.is_empty() {
        anyhow::bail!("'{arg}' names no commit; use REPO@COMMIT or REPO@BRANCH");
    }
    Ok(r.commit())
}

fn table() -> Table {
    Table::new(&[
        "REPO",
        "BRANCH",
        "COMMIT",
        "FINISHED",
        "SIZE",
        "ORIGIN",
        "DESCRIPTION",
    ])
}

fn repo_of(c: &pfs::CommitInfo) -> &str {
    c.commit
        .as_ref()
        .and_then(|c| c.repo.as_ref())
        .map(|r| r.name.as_str())
        .unwrap_or_default()
}

fn id_of(c: &pfs::CommitInfo) -> &str {
    c.commit.as_ref().map(|c| c.id.as_str()).unwrap_or_default()
}

fn origin(c: &pfs::CommitInfo) -> &'static str {
    let kind = c.origin.as_ref().map(|o| o.kind).unwrap_or_default();
    pfs::OriginKind::try_from(kind)
        .map(|k| k.as_str_name())
        .unwrap_or("USER")
}

fn row(t: &mut Table, c: &pfs::CommitInfo) {
    let finished = output::timestamp_ns(c.finished.as_ref());
    t.row(vec![
        repo_of(c).to_string(),
        c.branch
            .as_ref()
            .map(|b| b.name.clone())
            .unwrap_or_else(|| "-".into()),
        id_of(c).to_string(),
        if finished == 0 {
            "-".into()
        } else {
            output::ago(finished)
        },
        output::bytes(c.size_bytes),
        origin(c).to_string(),
        c.description.clone(),
    ]);
}

fn print_list(commits: &[pfs::CommitInfo], format: &Format) -> anyhow::Result<()> {
    let mut out = super::stdout();
    if format.is_human() {
        let mut t = table();
        for c in commits {
            row(&mut t, c);
        }
        t.print(&mut out)?;
    } else {
        format.print(&mut out, &output::pfs_json(commits)?)?;
    }
    super::finish(out)
}

fn print_one(c: &pfs::CommitInfo, format: &Format) -> anyhow::Result<()> {
    let mut out = super::stdout();
    if !format.is_human() {
        format.print(&mut out, &output::pfs_json(std::slice::from_ref(c))?)?;
        return super::finish(out);
    }
    writeln!(out, "Commit: {}@{}", repo_of(c), id_of(c))?;
    if let Some(b) = &c.branch {
        writeln!(out, "Original Branch: {}", b.name)?;
    }
    if !c.description.is_empty() {
        writeln!(out, "Description: {}", c.description)?;
    }
    if let Some(p) = &c.parent_commit {
        writeln!(out, "Parent: {}", p.id)?;
    }
    writeln!(out, "Origin: {}", origin(c))?;
    writeln!(
        out,
        "Started: {}",
        output::ago(output::timestamp_ns(c.started.as_ref()))
    )?;
    if c.finished.is_some() {
        writeln!(
            out,
            "Finished: {}",
            output::ago(output::timestamp_ns(c.finished.as_ref()))
        )?;
    }
    writeln!(out, "Size: {}", output::bytes(c.size_bytes))?;
    if !c.provenance.is_empty() {
        let p: Vec<String> = c
            .provenance
            .iter()
            .filter_map(|p| p.commit.as_ref())
            .map(|p| {
                format!(
                    "{}@{}",
                    p.repo.as_ref().map(|r| r.name.as_str()).unwrap_or_default(),
                    p.id
                )
            })
            .collect();
        writeln!(out, "Provenance: {}", p.join(", "))?;
    }
    super::finish(out)
}

pub async fn start(a: StartCommit) -> anyhow::Result<()> {
    let r = refs::parse_no_path(&a.branch)?;
    let (mut c, transaction) = super::transaction::connect_joining().await?;
    let commit = c
        .pfs
        .start_commit(pfs::StartCommitRequest {
            parent: Some(refs::commit(
                &r.repo,
                a.parent.as_deref().unwrap_or_default(),
            )),
            description: a.message.unwrap_or_default(),
            branch: r.commit,
            provenance: Vec::new(),
        })
        .await
        .map_err(status)?
        .into_inner();
    super::transaction::added(&transaction);
    println!("{}", commit.id);
    Ok(())
}

pub async fn finish(a: FinishCommit) -> anyhow::Result<()> {
    let commit = commit_ref(&a.commit)?;
    let (mut c, transaction) = super::transaction::connect_joining().await?;
    c.pfs
        .finish_commit(pfs::FinishCommitRequest {
            commit: Some(commit),
            description: a.message.unwrap_or_default(),
            ..Default::default()
        })
        .await
        .map_err(status)?;
    super::transaction::added(&transaction);
    Ok(())
}

pub async fn list(a: ListCommit) -> anyhow::Result<()> {
    let r = refs::parse(&a.repo)?;
    if a.from.is_some() && r.commit.is_empty() {
        anyhow::bail!(
            "--from lists the commits of a branch since a commit; name the branch: {}@BRANCH",
            r.repo
        );
    }
    let mut c = connect().await?;
    let mut stream = c
        .pfs
        .list_commit_stream(pfs::ListCommitRequest {
            repo: Some(r.repo()),
            from: a.from.map(|f| refs::commit(&r.repo, &f)),
            to: (!r.commit.is_empty()).then(|| r.commit()),
            number: a.number,
            reverse: false,
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut commits = Vec::new();
    while let Some(ci) = stream.next().await {
        commits.push(ci.map_err(status)?);
    }
    print_list(&commits, &a.format)
}

async fn inspect_state(arg: &str, state: pfs::CommitState) -> anyhow::Result<pfs::CommitInfo> {
    let commit = commit_ref(arg)?;
    let mut c = connect().await?;
    Ok(c.pfs
        .inspect_commit(pfs::InspectCommitRequest {
            commit: Some(commit),
            block_state: state as i32,
        })
        .await
        .map_err(status)?
        .into_inner())
}

pub async fn inspect(a: InspectCommit) -> anyhow::Result<()> {
    let state = if a.block {
        pfs::CommitState::Finished
    } else {
        pfs::CommitState::Started
    };
    print_one(&inspect_state(&a.commit, state).await?, &a.format)
}

pub async fn wait(arg: &str, format: &Format) -> anyhow::Result<()> {
    print_one(
        &inspect_state(arg, pfs::CommitState::Finished).await?,
        format,
    )
}

pub async fn delete(arg: &str) -> anyhow::Result<()> {
    let commit = commit_ref(arg)?;
    let (mut c, transaction) = super::transaction::connect_joining().await?;
    c.pfs
        .delete_commit(pfs::DeleteCommitRequest {
            commit: Some(commit),
        })
        .await
        .map_err(status)?;
    super::transaction::added(&transaction);
    Ok(())
}

pub async fn flush(a: FlushCommit) -> anyhow::Result<()> {
    let commits = a
        .commits
        .iter()
        .map(|s| commit_ref(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut c = connect().await?;
    let mut stream = c
        .pfs
        .flush_commit(pfs::FlushCommitRequest {
            commits,
            to_repos: a.repos.iter().map(|r| refs::repo(r)).collect(),
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut out = Vec::new();
    while let Some(ci) = stream.next().await {
        out.push(ci.map_err(status)?);
    }
    print_list(&out, &a.format)
}

pub async fn subscribe(a: SubscribeCommit) -> anyhow::Result<()> {
    if a.new && a.from.is_some() {
        anyhow::bail!("--new and --from cannot be used together");
    }
    let r = refs::parse(&a.branch)?;
    let branch = r.commit_or_master();
    // --new: the commits after the branch's current head, as 1.9's pachctl does.
    let from = if a.new {
        Some(branch.clone())
    } else {
        a.from.clone()
    };
    let mut c = connect().await?;
    let pipeline = match a.pipeline {
        Some(name) => Some(current_version(&mut c, name).await?),
        None => None,
    };
    let pipeline = pipeline.as_ref();
    if a.new {
        let head = c
            .pfs
            .inspect_branch(pfs::InspectBranchRequest {
                branch: Some(r.branch()),
            })
            .await
            .map_err(status)?
            .into_inner()
            .head;
        if head.is_none() {
            return subscribe_from(&mut c, &r, &branch, None, pipeline, &a.format).await;
        }
    }
    subscribe_from(&mut c, &r, &branch, from, pipeline, &a.format).await
}

/// A pipeline's name and current version.
async fn current_version(
    c: &mut crate::client::Client,
    name: String,
) -> anyhow::Result<(String, u64)> {
    let info = c
        .pps
        .inspect_pipeline(pach_api::pps::InspectPipelineRequest {
            pipeline: Some(pach_api::pps::Pipeline { name: name.clone() }),
        })
        .await
        .map_err(status)?
        .into_inner();
    Ok((name, info.version))
}

/// Whether `ci` is an output commit of the pipeline's version (1.9 tells
/// by the pipeline's spec commit in its provenance; here its job says).
/// The job is recorded just after its output commit starts: it is waited
/// for, a little.
async fn made_by(
    c: &mut crate::client::Client,
    ci: &pfs::CommitInfo,
    (name, version): &(String, u64),
) -> anyhow::Result<bool> {
    // A pipeline's output commits are computed from input commits.
    if ci.provenance.is_empty() {
        return Ok(false);
    }
    for _ in 0..100 {
        let jobs = c
            .pps
            .list_job(pach_api::pps::ListJobRequest {
                pipeline: Some(pach_api::pps::Pipeline { name: name.clone() }),
                output_commit: ci.commit.clone(),
                history: -1,
                ..Default::default()
            })
            .await
            .map_err(status)?
            .into_inner()
            .job_info;
        if let Some(job) = jobs.first() {
            return Ok(job.pipeline_version == *version);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(false)
}

async fn subscribe_from(
    c: &mut crate::client::Client,
    r: &refs::FileRef,
    branch: &str,
    from: Option<String>,
    pipeline: Option<&(String, u64)>,
    format: &Format,
) -> anyhow::Result<()> {
    let mut stream = c
        .pfs
        .subscribe_commit(pfs::SubscribeCommitRequest {
            repo: Some(r.repo()),
            branch: branch.to_string(),
            prov: None,
            from: from.map(|f| refs::commit(&r.repo, &f)),
            state: pfs::CommitState::Started as i32,
        })
        .await
        .map_err(status)?
        .into_inner();
    while let Some(ci) = stream.next().await {
        let ci = ci.map_err(status)?;
        if let Some(p) = pipeline
            && !made_by(c, &ci, p).await?
        {
            continue;
        }
        let mut out = std::io::stdout().lock();
        let written = if format.is_human() {
            let branch = ci.branch.as_ref().map(|b| b.name.as_str()).unwrap_or("-");
            writeln!(out, "{}@{}\t{}", repo_of(&ci), id_of(&ci), branch)
        } else {
            output::pfs_json(std::slice::from_ref(&ci))
                .and_then(|j| format.print(&mut out, &j))
                .map_err(std::io::Error::other)
        };
        if written.and_then(|_| out.flush()).is_err() {
            return Ok(());
        }
    }
    Ok(())
}
