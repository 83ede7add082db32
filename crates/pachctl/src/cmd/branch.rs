//! `create/list/inspect/delete branch`, through `pfs.API`.

use std::io::Write;

use clap::Args;
use pach_api::pfs;

use crate::client::{connect, status};
use crate::output::{self, Format, Table};
use crate::refs;

#[derive(Debug, Args)]
pub struct CreateBranch {
    /// REPO@BRANCH
    pub branch: String,
    /// The head of the branch: a commit id or branch of the same repo, with
    /// ancestry (`master^`).
    #[arg(long)]
    pub head: Option<String>,
    /// Upstream branches (REPO@BRANCH), repeatable or comma-separated.
    #[arg(short, long, value_delimiter = ',')]
    pub provenance: Vec<String>,
}

fn branch_ref(arg: &str) -> anyhow::Result<refs::FileRef> {
    let r = refs::parse_no_path(arg)?;
    if r.commit.is_empty() {
        anyhow::bail!("'{arg}' names no branch; use REPO@BRANCH");
    }
    Ok(r)
}

pub async fn create(a: CreateBranch) -> anyhow::Result<()> {
    let b = branch_ref(&a.branch)?;
    let provenance = a
        .provenance
        .iter()
        .map(|p| branch_ref(p).map(|r| r.branch()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (mut c, transaction) = super::transaction::connect_joining().await?;
    c.pfs
        .create_branch(pfs::CreateBranchRequest {
            head: a.head.map(|h| refs::commit(&b.repo, &h)),
            s_branch: String::new(),
            branch: Some(b.branch()),
            provenance,
        })
        .await
        .map_err(status)?;
    super::transaction::added(&transaction);
    Ok(())
}

fn name(b: Option<&pfs::Branch>) -> String {
    b.map(|b| {
        format!(
            "{}@{}",
            b.repo.as_ref().map(|r| r.name.as_str()).unwrap_or_default(),
            b.name
        )
    })
    .unwrap_or_default()
}

pub async fn list(repo: &str, format: &Format) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let branches = c
        .pfs
        .list_branch(pfs::ListBranchRequest {
            repo: Some(refs::repo(repo)),
            reverse: false,
        })
        .await
        .map_err(status)?
        .into_inner()
        .branch_info;
    let mut out = super::stdout();
    if format.is_human() {
        let mut t = Table::new(&["BRANCH", "HEAD"]);
        for b in &branches {
            t.row(vec![
                b.branch
                    .as_ref()
                    .map(|b| b.name.clone())
                    .unwrap_or_default(),
                b.head
                    .as_ref()
                    .map(|h| h.id.clone())
                    .unwrap_or_else(|| "-".into()),
            ]);
        }
        t.print(&mut out)?;
    } else {
        format.print(&mut out, &output::pfs_json(&branches)?)?;
    }
    super::finish(out)
}

pub async fn inspect(arg: &str, format: &Format) -> anyhow::Result<()> {
    let r = branch_ref(arg)?;
    let mut c = connect().await?;
    let b = c
        .pfs
        .inspect_branch(pfs::InspectBranchRequest {
            branch: Some(r.branch()),
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut out = super::stdout();
    if format.is_human() {
        writeln!(out, "Name: {}", name(b.branch.as_ref()))?;
        writeln!(
            out,
            "Head Commit: {}",
            b.head.as_ref().map(|h| h.id.as_str()).unwrap_or("-")
        )?;
        for (label, list) in [("Provenance", &b.provenance), ("Subvenance", &b.subvenance)] {
            if !list.is_empty() {
                let names: Vec<String> = list.iter().map(|p| name(Some(p))).collect();
                writeln!(out, "{label}: {}", names.join(", "))?;
            }
        }
    } else {
        format.print(&mut out, &output::pfs_json(&[b])?)?;
    }
    super::finish(out)
}

pub async fn delete(arg: &str, force: bool) -> anyhow::Result<()> {
    let r = branch_ref(arg)?;
    let (mut c, transaction) = super::transaction::connect_joining().await?;
    c.pfs
        .delete_branch(pfs::DeleteBranchRequest {
            branch: Some(r.branch()),
            force,
        })
        .await
        .map_err(status)?;
    super::transaction::added(&transaction);
    Ok(())
}
