//! `create/update/list/inspect/delete repo`.

use clap::Args;
use pach_api as api;

use crate::client::{connect, status};
use crate::output::{self, Format, Table};

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
    /// Delete even if other repos' branches have it in their provenance.
    #[arg(short, long)]
    pub force: bool,
    /// Delete every repo.
    #[arg(long)]
    pub all: bool,
}

pub async fn create(a: CreateRepo, update: bool) -> anyhow::Result<()> {
    let mut c = connect().await?;
    c.old_pfs
        .create_repo(api::CreateRepoRequest {
            name: a.repo,
            description: a.description,
            update,
        })
        .await
        .map_err(status)?;
    Ok(())
}

pub async fn list(format: &Format) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let repos = c
        .old_pfs
        .list_repo(api::Empty {})
        .await
        .map_err(status)?
        .into_inner()
        .repos;
    let mut out = super::stdout();
    if format.is_human() {
        let mut t = Table::new(&["NAME", "CREATED", "SIZE (MASTER)", "DESCRIPTION"]);
        for r in &repos {
            t.row(vec![
                r.name.clone(),
                output::ago(r.created_ns),
                output::bytes(r.size_bytes),
                r.description.clone(),
            ]);
        }
        t.print(&mut out)?;
    } else {
        format.print(
            &mut out,
            &repos.iter().map(output::repo_json).collect::<Vec<_>>(),
        )?;
    }
    super::finish(out)
}

pub async fn inspect(repo: &str, format: &Format) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let r = c
        .old_pfs
        .inspect_repo(api::RepoRequest { name: repo.into() })
        .await
        .map_err(status)?
        .into_inner();
    let mut out = super::stdout();
    if format.is_human() {
        use std::io::Write;
        writeln!(out, "Name: {}", r.name)?;
        if !r.description.is_empty() {
            writeln!(out, "Description: {}", r.description)?;
        }
        writeln!(out, "Created: {}", output::ago(r.created_ns))?;
        writeln!(
            out,
            "Size of HEAD on master: {}",
            output::bytes(r.size_bytes)
        )?;
    } else {
        format.print(&mut out, &[output::repo_json(&r)])?;
    }
    super::finish(out)
}

pub async fn delete(a: DeleteRepo) -> anyhow::Result<()> {
    let name = match (&a.repo, a.all) {
        (Some(_), true) => anyhow::bail!("give either a repo name or --all, not both"),
        (None, false) => anyhow::bail!("give the repo to delete, or --all to delete every repo"),
        (r, _) => r.clone().unwrap_or_default(),
    };
    let mut c = connect().await?;
    c.old_pfs
        .delete_repo(api::DeleteRepoRequest {
            name,
            force: a.force,
            all: a.all,
        })
        .await
        .map_err(status)?;
    Ok(())
}
