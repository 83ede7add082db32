//! Transactions, as Pachyderm 1.9's pachctl has them: `start transaction`
//! makes a transaction the active one of the current context; while one is
//! active, create/delete repo, start/finish/delete commit and create/delete
//! branch join it instead of running; `finish transaction` runs them all at
//! once (atomically), `stop transaction` leaves it open but inactive,
//! `resume transaction` makes it active again, `delete transaction` drops it.

use clap::Args;
use pach_api::json::FieldNames;
use pach_api::transaction as pb;

use crate::client::{CallMetadata, Client, connect, status};
use crate::config::Config;
use crate::output::{Format, Table, ago, message_json};

#[derive(Debug, Args)]
pub struct Optional {
    /// The transaction (default: the active one).
    pub transaction: Option<String>,
}

fn active() -> anyhow::Result<Option<String>> {
    let mut config = Config::load()?;
    Ok(Some(config.active_mut().active_transaction.clone()).filter(|t| !t.is_empty()))
}

fn require_active() -> anyhow::Result<String> {
    active()?.ok_or_else(|| {
        anyhow::anyhow!("no active transaction; `pachctl start transaction` starts one")
    })
}

fn set_active(id: Option<&str>) -> anyhow::Result<()> {
    let mut config = Config::load()?;
    config.active_mut().active_transaction = id.unwrap_or_default().to_string();
    config.save()
}

/// Connects so that the repo, commit and branch writes of a command join
/// the active transaction (Pachyderm 1.9's pachctl does the same): they are
/// checked and answered now, and applied when the transaction finishes.
/// Returns the transaction joined, if any, for [`added`].
pub async fn connect_joining() -> anyhow::Result<(Client, Option<String>)> {
    let transaction = active()?;
    let metadata = CallMetadata {
        transaction: transaction.clone(),
        ..Default::default()
    };
    let c = crate::client::connect_with(metadata, Some(crate::client::HANDSHAKE)).await?;
    Ok((c, transaction))
}

/// Says on stderr that a command joined `transaction`, as 1.9's pachctl does.
pub fn added(transaction: &Option<String>) {
    if let Some(t) = transaction {
        eprintln!("Added to transaction: {t}");
    }
}

fn txn(id: String) -> Option<pb::Transaction> {
    Some(pb::Transaction { id })
}

pub async fn start() -> anyhow::Result<()> {
    let mut c = connect().await?;
    let t = c
        .transaction
        .start_transaction(pb::StartTransactionRequest {})
        .await
        .map_err(status)?
        .into_inner();
    set_active(Some(&t.id))?;
    println!("Started new transaction: {}", t.id);
    Ok(())
}

pub async fn stop() -> anyhow::Result<()> {
    let id = require_active()?;
    set_active(None)?;
    println!("Cleared active transaction: {id}");
    Ok(())
}

pub async fn finish(a: Optional) -> anyhow::Result<()> {
    let active = active()?;
    let id = match a.transaction {
        Some(t) => t,
        None => require_active()?,
    };
    let mut c = connect().await?;
    let info = c
        .transaction
        .finish_transaction(pb::FinishTransactionRequest {
            transaction: txn(id.clone()),
        })
        .await
        .map_err(status)?
        .into_inner();
    if active.as_deref() == Some(id.as_str()) {
        set_active(None)?;
    }
    println!(
        "Completed transaction with {} requests: {id}",
        info.responses.len()
    );
    Ok(())
}

pub async fn delete(a: Optional) -> anyhow::Result<()> {
    let active = active()?;
    let id = match a.transaction {
        Some(t) => t,
        None => require_active()?,
    };
    let mut c = connect().await?;
    c.transaction
        .delete_transaction(pb::DeleteTransactionRequest {
            transaction: txn(id.clone()),
        })
        .await
        .map_err(status)?;
    if active.as_deref() == Some(id.as_str()) {
        set_active(None)?;
    }
    Ok(())
}

pub async fn resume(id: String) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let info = c
        .transaction
        .inspect_transaction(pb::InspectTransactionRequest {
            transaction: txn(id.clone()),
        })
        .await
        .map_err(status)?
        .into_inner();
    set_active(Some(&id))?;
    println!(
        "Resuming existing transaction with {} requests: {id}",
        info.requests.len()
    );
    Ok(())
}

pub async fn inspect(a: Optional, format: &Format) -> anyhow::Result<()> {
    let id = match a.transaction {
        Some(t) => t,
        None => require_active()?,
    };
    let mut c = connect().await?;
    let info = c
        .transaction
        .inspect_transaction(pb::InspectTransactionRequest {
            transaction: txn(id),
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut out = super::stdout();
    if !format.is_human() {
        format.print(&mut out, &[message_json(&info, FieldNames::Camel)?])?;
        return super::finish(out);
    }
    use std::io::Write;
    let id = info
        .transaction
        .as_ref()
        .map(|t| t.id.as_str())
        .unwrap_or("");
    writeln!(out, "ID: {id}")?;
    writeln!(out, "Started: {}", started(&info))?;
    writeln!(out, "Requests:")?;
    for (i, r) in info.requests.iter().enumerate() {
        writeln!(out, "  {}", describe(r, info.responses.get(i)))?;
    }
    super::finish(out)
}

pub async fn list(format: &Format) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let infos = c
        .transaction
        .list_transaction(pb::ListTransactionRequest {})
        .await
        .map_err(status)?
        .into_inner()
        .transaction_info;
    let mut out = super::stdout();
    if !format.is_human() {
        let objects = infos
            .iter()
            .map(|i| message_json(i, FieldNames::Camel))
            .collect::<anyhow::Result<Vec<_>>>()?;
        format.print(&mut out, &objects)?;
        return super::finish(out);
    }
    let mut t = Table::new(&["TRANSACTION", "STARTED", "OPS"]);
    for info in &infos {
        t.row(vec![
            info.transaction
                .as_ref()
                .map(|t| t.id.clone())
                .unwrap_or_default(),
            started(info),
            info.requests.len().to_string(),
        ]);
    }
    t.print(&mut out)?;
    super::finish(out)
}

fn started(info: &pb::TransactionInfo) -> String {
    info.started
        .map(|t| ago(t.seconds * 1_000_000_000 + i64::from(t.nanos)))
        .unwrap_or_default()
}

/// A request as the pachctl command that makes it.
fn describe(r: &pb::TransactionRequest, response: Option<&pb::TransactionResponse>) -> String {
    let repo =
        |r: &Option<pach_api::pfs::Repo>| r.as_ref().map(|r| r.name.clone()).unwrap_or_default();
    let commit = |c: &Option<pach_api::pfs::Commit>| {
        c.as_ref()
            .map(|c| format!("{}@{}", repo(&c.repo), c.id))
            .unwrap_or_default()
    };
    if let Some(x) = &r.create_repo {
        let verb = if x.update { "update" } else { "create" };
        return format!("{verb} repo {}", repo(&x.repo));
    }
    if let Some(x) = &r.delete_repo {
        let force = if x.force { " --force" } else { "" };
        if x.all {
            return format!("delete repo --all{force}");
        }
        return format!("delete repo {}{force}", repo(&x.repo));
    }
    if let Some(x) = &r.start_commit {
        let id = response
            .and_then(|r| r.commit.as_ref())
            .map(|c| c.id.clone())
            .unwrap_or_else(|| "unknown".into());
        let on = x
            .parent
            .as_ref()
            .map(|p| format!("{}@{}", repo(&p.repo), x.branch))
            .unwrap_or_default();
        return format!("start commit {on} ({id})");
    }
    if let Some(x) = &r.finish_commit {
        return format!("finish commit {}", commit(&x.commit));
    }
    if let Some(x) = &r.delete_commit {
        return format!("delete commit {}", commit(&x.commit));
    }
    if let Some(x) = &r.create_branch {
        let b = x
            .branch
            .as_ref()
            .map(|b| format!("{}@{}", repo(&b.repo), b.name))
            .unwrap_or_default();
        let head = x
            .head
            .as_ref()
            .map(|h| format!(" --head {}", h.id))
            .unwrap_or_default();
        return format!("create branch {b}{head}");
    }
    if let Some(x) = &r.delete_branch {
        let b = x
            .branch
            .as_ref()
            .map(|b| format!("{}@{}", repo(&b.repo), b.name))
            .unwrap_or_default();
        return format!("delete branch {b}");
    }
    if r.delete_all.is_some() {
        return "delete all".into();
    }
    if r.update_job_state.is_some() {
        return "update job state".into();
    }
    "(empty request)".into()
}
