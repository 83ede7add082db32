//! `start/finish/list/inspect/delete/wait/flush/subscribe commit`.

use std::io::Write;

use clap::Args;
use futures::StreamExt;
use pach_api as api;

use crate::client::{connect, status};
use crate::output::{self, Format, Table};
use crate::refs;

#[derive(Debug, Args)]
pub struct StartCommit {
    /// REPO@BRANCH
    pub branch: String,
    /// The parent commit (instead of the branch head).
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
    /// Show at most this many commits.
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
    /// Only wait for commits in these repos.
    #[arg(short, long)]
    pub repos: Vec<String>,
    #[command(flatten)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct SubscribeCommit {
    /// REPO@BRANCH
    pub branch: String,
    /// Only commits finished from now on.
    #[arg(long)]
    pub new: bool,
    #[command(flatten)]
    pub format: Format,
}

fn commit_ref(arg: &str) -> anyhow::Result<api::CommitRef> {
    let r = refs::parse(arg)?;
    if r.commit.is_empty() {
        anyhow::bail!("'{arg}' names no commit; use REPO@COMMIT or REPO@BRANCH");
    }
    Ok(r.commit_ref())
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

fn row(t: &mut Table, c: &api::CommitInfo) {
    t.row(vec![
        c.repo.clone(),
        if c.branch.is_empty() {
            "-".into()
        } else {
            c.branch.clone()
        },
        c.id.clone(),
        if c.finished_ns == 0 {
            "-".into()
        } else {
            output::ago(c.finished_ns)
        },
        output::bytes(c.size_bytes),
        c.origin.clone(),
        c.description.clone(),
    ]);
}

fn print_list(commits: &[api::CommitInfo], format: &Format) -> anyhow::Result<()> {
    let mut out = super::stdout();
    if format.is_human() {
        let mut t = table();
        for c in commits {
            row(&mut t, c);
        }
        t.print(&mut out)?;
    } else {
        format.print(
            &mut out,
            &commits.iter().map(output::commit_json).collect::<Vec<_>>(),
        )?;
    }
    super::finish(out)
}

fn print_one(c: &api::CommitInfo, format: &Format) -> anyhow::Result<()> {
    let mut out = super::stdout();
    if format.is_human() {
        writeln!(out, "Commit: {}@{}", c.repo, c.id)?;
        if !c.branch.is_empty() {
            writeln!(out, "Original Branch: {}", c.branch)?;
        }
        if !c.description.is_empty() {
            writeln!(out, "Description: {}", c.description)?;
        }
        if !c.parent.is_empty() {
            writeln!(out, "Parent: {}", c.parent)?;
        }
        writeln!(out, "Origin: {}", c.origin)?;
        writeln!(out, "Started: {}", output::ago(c.started_ns))?;
        if c.finished_ns != 0 {
            writeln!(out, "Finished: {}", output::ago(c.finished_ns))?;
        }
        writeln!(out, "Size: {}", output::bytes(c.size_bytes))?;
        if !c.provenance.is_empty() {
            let p: Vec<String> = c
                .provenance
                .iter()
                .map(|p| format!("{}@{}", p.repo, p.id))
                .collect();
            writeln!(out, "Provenance: {}", p.join(", "))?;
        }
    } else {
        format.print(&mut out, &[output::commit_json(c)])?;
    }
    super::finish(out)
}

pub async fn start(a: StartCommit) -> anyhow::Result<()> {
    let r = refs::parse_no_path(&a.branch)?;
    let mut c = connect().await?;
    let info = c
        .old_pfs
        .start_commit(api::StartCommitRequest {
            repo: r.repo,
            branch: r.commit,
            parent: a.parent.unwrap_or_default(),
            description: a.message.unwrap_or_default(),
        })
        .await
        .map_err(status)?
        .into_inner();
    println!("{}", info.id);
    Ok(())
}

pub async fn finish(a: FinishCommit) -> anyhow::Result<()> {
    let commit = commit_ref(&a.commit)?;
    let mut c = connect().await?;
    c.old_pfs
        .finish_commit(api::FinishCommitRequest {
            commit: Some(commit),
            description: a.message.unwrap_or_default(),
        })
        .await
        .map_err(status)?;
    Ok(())
}

pub async fn list(a: ListCommit) -> anyhow::Result<()> {
    let r = refs::parse(&a.repo)?;
    let mut c = connect().await?;
    let mut stream = c
        .old_pfs
        .list_commit(api::ListCommitRequest {
            repo: r.repo,
            branch_or_commit: r.commit,
            number: a.number,
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

pub async fn inspect(a: InspectCommit) -> anyhow::Result<()> {
    let commit = commit_ref(&a.commit)?;
    let mut c = connect().await?;
    let info = c
        .old_pfs
        .inspect_commit(api::InspectCommitRequest {
            commit: Some(commit),
            wait: a.block,
        })
        .await
        .map_err(status)?
        .into_inner();
    print_one(&info, &a.format)
}

pub async fn wait(arg: &str, format: &Format) -> anyhow::Result<()> {
    inspect(InspectCommit {
        commit: arg.to_string(),
        block: true,
        format: format.clone(),
    })
    .await
}

pub async fn delete(arg: &str) -> anyhow::Result<()> {
    let commit = commit_ref(arg)?;
    let mut c = connect().await?;
    c.old_pfs.delete_commit(commit).await.map_err(status)?;
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
        .old_pfs
        .flush_commit(api::FlushCommitRequest {
            commits,
            to_repos: a.repos,
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
    let r = refs::parse(&a.branch)?;
    let mut c = connect().await?;
    let mut stream = c
        .old_pfs
        .subscribe_commit(api::SubscribeCommitRequest {
            repo: r.repo.clone(),
            branch: r.commit_or_master(),
            new_only: a.new,
        })
        .await
        .map_err(status)?
        .into_inner();
    while let Some(ci) = stream.next().await {
        let ci = ci.map_err(status)?;
        let mut out = std::io::stdout().lock();
        let written = if a.format.is_human() {
            writeln!(out, "{}@{}\t{}", ci.repo, ci.id, ci.branch)
        } else {
            a.format
                .print(&mut out, &[output::commit_json(&ci)])
                .map_err(std::io::Error::other)
        };
        if written.and_then(|_| out.flush()).is_err() {
            return Ok(());
        }
    }
    Ok(())
}
