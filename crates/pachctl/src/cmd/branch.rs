//! `create/list/inspect/delete branch`.

use std::io::Write;

use clap::Args;
use pach_api as api;

use crate::client::{connect, status};
use crate::output::{self, Format, Table};
use crate::refs;

#[derive(Debug, Args)]
pub struct CreateBranch {
    /// REPO@BRANCH
    pub branch: String,
    /// The commit the branch points to (REPO's commit id or branch, with ancestry).
    #[arg(long)]
    pub head: Option<String>,
    /// Upstream branches (REPO@BRANCH), repeatable or comma-separated.
    #[arg(short, long, value_delimiter = ',')]
    pub provenance: Vec<String>,
}

fn branch_ref(arg: &str) -> anyhow::Result<(String, String)> {
    let r = refs::parse_no_path(arg)?;
    if r.commit.is_empty() {
        anyhow::bail!("'{arg}' names no branch; use REPO@BRANCH");
    }
    Ok((r.repo, r.commit))
}

pub async fn create(a: CreateBranch) -> anyhow::Result<()> {
    let (repo, name) = branch_ref(&a.branch)?;
    let provenance = a
        .provenance
        .iter()
        .map(|p| branch_ref(p).map(|(repo, name)| api::BranchRef { repo, name }))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut c = connect().await?;
    c.old_pfs
        .create_branch(api::CreateBranchRequest {
            repo,
            name,
            head: a.head.unwrap_or_default(),
            provenance,
        })
        .await
        .map_err(status)?;
    Ok(())
}

pub async fn list(repo: &str, format: &Format) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let branches = c
        .old_pfs
        .list_branch(api::RepoRequest { name: repo.into() })
        .await
        .map_err(status)?
        .into_inner()
        .branches;
    let mut out = super::stdout();
    if format.is_human() {
        let mut t = Table::new(&["BRANCH", "HEAD"]);
        for b in &branches {
            t.row(vec![
                b.name.clone(),
                if b.head.is_empty() {
                    "-".into()
                } else {
                    b.head.clone()
                },
            ]);
        }
        t.print(&mut out)?;
    } else {
        format.print(
            &mut out,
            &branches.iter().map(output::branch_json).collect::<Vec<_>>(),
        )?;
    }
    super::finish(out)
}

pub async fn inspect(arg: &str, format: &Format) -> anyhow::Result<()> {
    let (repo, name) = branch_ref(arg)?;
    let mut c = connect().await?;
    let b = c
        .old_pfs
        .inspect_branch(api::BranchRef { repo, name })
        .await
        .map_err(status)?
        .into_inner();
    let mut out = super::stdout();
    if format.is_human() {
        writeln!(out, "Name: {}@{}", b.repo, b.name)?;
        writeln!(
            out,
            "Head Commit: {}",
            if b.head.is_empty() { "-" } else { &b.head }
        )?;
        if !b.provenance.is_empty() {
            let p: Vec<String> = b
                .provenance
                .iter()
                .map(|p| format!("{}@{}", p.repo, p.name))
                .collect();
            writeln!(out, "Provenance: {}", p.join(", "))?;
        }
        if !b.subvenance.is_empty() {
            let s: Vec<String> = b
                .subvenance
                .iter()
                .map(|p| format!("{}@{}", p.repo, p.name))
                .collect();
            writeln!(out, "Subvenance: {}", s.join(", "))?;
        }
    } else {
        format.print(&mut out, &[output::branch_json(&b)])?;
    }
    super::finish(out)
}

pub async fn delete(arg: &str, force: bool) -> anyhow::Result<()> {
    let (repo, name) = branch_ref(arg)?;
    let mut c = connect().await?;
    c.old_pfs
        .delete_branch(api::DeleteBranchRequest { repo, name, force })
        .await
        .map_err(status)?;
    Ok(())
}
