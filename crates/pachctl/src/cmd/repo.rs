//! `create/update/list/inspect/delete repo`, through `pfs.API`.

use std::io::Write;

use clap::Args;
use pach_api::pfs;

use crate::client::{connect, status};
use crate::output::{self, Format, Table};
use crate::refs;

#[derive(Debug, Args)]
pub struct CreateRepo {
    pub repo: String,
    /// A description of the repo.
    #[arg(short, long, default_value = "")]
    pub description: String,
}

#[derive(Debug, Args)]
pub struct DeleteRepo {
    pub repo: Option<String>,
    /// Remove the repo regardless of errors (even if other repos' branches
    /// have it in their provenance); use with care.
    #[arg(short, long)]
    pub force: bool,
    /// Delete every repo.
    #[arg(long)]
    pub all: bool,
}

pub async fn create(a: CreateRepo, update: bool) -> anyhow::Result<()> {
    let (mut c, transaction) = super::transaction::connect_joining().await?;
    c.pfs
        .create_repo(pfs::CreateRepoRequest {
            repo: Some(refs::repo(&a.repo)),
            description: a.description,
            update,
        })
        .await
        .map_err(status)?;
    super::transaction::added(&transaction);
    Ok(())
}

fn print(repos: &[pfs::RepoInfo], format: &Format, detailed: bool) -> anyhow::Result<()> {
    let mut out = super::stdout();
    if !format.is_human() {
        format.print(&mut out, &output::pfs_json(repos)?)?;
        return super::finish(out);
    }
    let name = |r: &pfs::RepoInfo| r.repo.as_ref().map(|r| r.name.clone()).unwrap_or_default();
    let created = |r: &pfs::RepoInfo| output::ago(output::timestamp_ns(r.created.as_ref()));
    if detailed {
        for r in repos {
            writeln!(out, "Name: {}", name(r))?;
            if !r.description.is_empty() {
                writeln!(out, "Description: {}", r.description)?;
            }
            writeln!(out, "Created: {}", created(r))?;
            writeln!(
                out,
                "Size of HEAD on master: {}",
                output::bytes(r.size_bytes)
            )?;
        }
    } else {
        let mut t = Table::new(&["NAME", "CREATED", "SIZE (MASTER)", "DESCRIPTION"]);
        for r in repos {
            t.row(vec![
                name(r),
                created(r),
                output::bytes(r.size_bytes),
                r.description.clone(),
            ]);
        }
        t.print(&mut out)?;
    }
    super::finish(out)
}

pub async fn list(format: &Format) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let repos = c
        .pfs
        .list_repo(pfs::ListRepoRequest {})
        .await
        .map_err(status)?
        .into_inner()
        .repo_info;
    print(&repos, format, false)
}

pub async fn inspect(repo: &str, format: &Format) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let r = c
        .pfs
        .inspect_repo(pfs::InspectRepoRequest {
            repo: Some(refs::repo(repo)),
        })
        .await
        .map_err(status)?
        .into_inner();
    print(&[r], format, true)
}

pub async fn delete(a: DeleteRepo) -> anyhow::Result<()> {
    let repo = match (&a.repo, a.all) {
        (Some(_), true) => anyhow::bail!("give either a repo name or --all, not both"),
        (None, false) => anyhow::bail!("give the repo to delete, or --all to delete every repo"),
        (r, _) => r.as_deref().map(refs::repo),
    };
    let (mut c, transaction) = super::transaction::connect_joining().await?;
    c.pfs
        .delete_repo(pfs::DeleteRepoRequest {
            repo,
            force: a.force,
            all: a.all,
        })
        .await
        .map_err(status)?;
    super::transaction::added(&transaction);
    Ok(())
}
