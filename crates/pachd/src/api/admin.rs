//! `admin.API`: the cluster's identity, and restore and extract in
//! Pachyderm's `Op` format, as Pachyderm 1.9 serves them to its clients
//! (python-pachyderm's `restore`, `extract_pipeline`).
//!
//! A restore's ops (or the stream at the URL its first request names) are
//! written to a spool file in Pachyderm's file framing and imported whole
//! by `pach_admin::pachyderm::import`: validated first, so that a stream
//! that does not validate changes nothing.

use std::io::Write;
use std::path::PathBuf;

use futures::StreamExt;
use pach_admin::pachyderm::frames::OpWriter;
use pach_api::admin::{self, api_server::Api};
use pach_pfs::ErrorKind;
use pach_pps::Pps;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use super::ReplyStream;
use super::status::{status, status_of};
use crate::cluster::ClusterInfo;

pub(crate) struct AdminService {
    pub(crate) cluster: ClusterInfo,
    pub(crate) pps: Pps,
    /// Where a restore keeps its stream while it validates it.
    pub(crate) spool: PathBuf,
    /// Who may call what (`authz`).
    pub(crate) authz: super::authz::Authz,
}

fn internal(what: &str, e: impl std::fmt::Display) -> Status {
    status_of(ErrorKind::Internal, &format!("{what}: {e}"))
}

type OpSink = mpsc::Sender<pach_admin::Result<admin::Op>>;

/// The cluster as Pachyderm 1.9's extract writes it: content, repos,
/// commits and branches (`pach_admin::pachyderm::extract`), then each
/// pipeline (inputs before the pipelines that read them) with its jobs.
async fn extract_ops(
    pps: &Pps,
    no_objects: bool,
    no_repos: bool,
    no_pipelines: bool,
    tx: &OpSink,
) -> pach_admin::Result<()> {
    if !no_repos && !pach_admin::pachyderm::extract(pps.pfs(), no_objects, tx).await? {
        return Ok(());
    }
    if no_pipelines {
        return Ok(());
    }
    let mut pending = pps.list_pipeline().await?;
    let mut ordered = Vec::new();
    while !pending.is_empty() {
        let names: Vec<String> = pending.iter().map(|p| p.name().to_string()).collect();
        let (ready, waiting): (Vec<_>, Vec<_>) = pending.into_iter().partition(|p| {
            let inputs = p.spec.input.as_ref().map(pach_pps::spec::input_repos);
            inputs
                .unwrap_or_default()
                .iter()
                .all(|(repo, _)| repo == p.name() || !names.contains(repo))
        });
        if ready.is_empty() {
            // A cycle cannot be created; keep the rest in name order.
            ordered.extend(waiting);
            break;
        }
        ordered.extend(ready);
        pending = waiting;
    }
    for p in &ordered {
        let op = admin::Op19 {
            pipeline: Some(super::pps::pipeline_request(p)),
            ..Default::default()
        };
        if tx.send(Ok(op19(op))).await.is_err() {
            return Ok(());
        }
        for j in pps.list_job(Some(p.name())).await? {
            let op = admin::Op19 {
                job: Some(super::pps::job_request(&j)),
                ..Default::default()
            };
            if tx.send(Ok(op19(op))).await.is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

fn op19(o: admin::Op19) -> admin::Op {
    admin::Op {
        op1_9: Some(o),
        ..Default::default()
    }
}

/// Writes ops to the object a URL names, as Pachyderm's file extract: the
/// ops framed in a spool file first (a failed extract writes nothing),
/// then uploaded.
async fn write_to_url(
    url: &str,
    spool: &std::path::Path,
    mut ops: impl futures::Stream<Item = Result<admin::Op, Status>> + Unpin,
) -> Result<(), Status> {
    let (store, path) = crate::urls::open_url(url)?;
    tokio::fs::create_dir_all(spool)
        .await
        .map_err(|e| internal("creating the spool directory", e))?;
    let file = tempfile::Builder::new()
        .prefix("extract-ops-")
        .tempfile_in(spool)
        .map_err(|e| internal("creating the spool file", e))?;
    let out = file
        .reopen()
        .map_err(|e| internal("opening the spool file", e))?;
    let mut writer = OpWriter::new(std::io::BufWriter::new(out));
    while let Some(op) = ops.next().await {
        writer
            .write(&op?)
            .map_err(|e| internal("writing the spool file", e))?;
    }
    writer
        .finish()
        .and_then(|mut w| w.flush())
        .map_err(|e| internal("writing the spool file", e))?;
    let mut reader = tokio::fs::File::open(file.path())
        .await
        .map_err(|e| internal("reading the spool file", e))?;
    let mut upload = object_store::buffered::BufWriter::new(store, path);
    tokio::io::copy(&mut reader, &mut upload)
        .await
        .map_err(|e| internal(&format!("writing '{url}'"), e))?;
    tokio::io::AsyncWriteExt::shutdown(&mut upload)
        .await
        .map_err(|e| internal(&format!("writing '{url}'"), e))?;
    Ok(())
}

#[tonic::async_trait]
impl Api for AdminService {
    type ExtractStream = ReplyStream<admin::Op>;

    async fn extract(
        &self,
        r: Request<admin::ExtractRequest>,
    ) -> Result<Response<Self::ExtractStream>, Status> {
        self.authz.check(&r).await?;
        let r = r.into_inner();
        let (tx, rx) = mpsc::channel::<pach_admin::Result<admin::Op>>(16);
        let pps = self.pps.clone();
        let (no_objects, no_repos, no_pipelines) = (r.no_objects, r.no_repos, r.no_pipelines);
        tokio::spawn(async move {
            let done = extract_ops(&pps, no_objects, no_repos, no_pipelines, &tx).await;
            if let Err(e) = done {
                let _ = tx.send(Err(e)).await;
            }
        });
        let ops = tokio_stream::wrappers::ReceiverStream::new(rx).map(|o| o.map_err(status));
        if r.url.is_empty() {
            return Ok(Response::new(Box::pin(ops)));
        }
        // To the URL, framed as Pachyderm's file extract; the reply is empty.
        write_to_url(&r.url, &self.spool, ops).await?;
        Ok(Response::new(Box::pin(futures::stream::empty())))
    }

    async fn extract_pipeline(
        &self,
        r: Request<admin::ExtractPipelineRequest>,
    ) -> Result<Response<admin::Op>, Status> {
        self.authz.check(&r).await?;
        let name = r
            .into_inner()
            .pipeline
            .map(|p| p.name)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                status_of(
                    ErrorKind::InvalidArgument,
                    "extract pipeline needs a pipeline name; `pachctl list pipeline` shows them",
                )
            })?;
        let p = self.pps.inspect_pipeline(&name).await.map_err(status)?;
        Ok(Response::new(admin::Op {
            op1_9: Some(admin::Op19 {
                pipeline: Some(super::pps::pipeline_request(&p)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn restore(
        &self,
        r: Request<Streaming<admin::RestoreRequest>>,
    ) -> Result<Response<()>, Status> {
        self.authz
            .require(r.metadata(), super::authz::Need::Admin("Restore"))
            .await?;
        let mut incoming = r.into_inner();
        tokio::fs::create_dir_all(&self.spool)
            .await
            .map_err(|e| internal("creating the spool directory", e))?;
        let first = incoming.next().await.transpose()?;
        let Some(first) = first else {
            // No ops: nothing to restore, as Pachyderm answers.
            return Ok(Response::new(()));
        };
        if !first.url.is_empty() {
            let reader = super::extension::url_reader(&first.url).await?;
            let restored = pach_admin::restore_any(&self.pps, &self.spool, reader).await;
            // A restore writes access control around `pach_auth`.
            self.authz.auth.changed_elsewhere();
            restored.map_err(status)?;
            return Ok(Response::new(()));
        }
        // The ops as Pachyderm's file framing, in a spool file.
        let spool = tempfile::Builder::new()
            .prefix("restore-ops-")
            .tempfile_in(&self.spool)
            .map_err(|e| internal("creating the spool file", e))?;
        let file = spool
            .reopen()
            .map_err(|e| internal("opening the spool file", e))?;
        let mut writer = OpWriter::new(std::io::BufWriter::new(file));
        let mut next = Some(first);
        let mut number = 0u64;
        while let Some(req) = next {
            number += 1;
            if !req.url.is_empty() {
                return Err(status_of(
                    ErrorKind::InvalidArgument,
                    &format!(
                        "restore request {number} names a URL; only the first request of a restore may (the stream is then read from it)"
                    ),
                ));
            }
            let op = req.op.ok_or_else(|| {
                status_of(
                    ErrorKind::InvalidArgument,
                    &format!("restore request {number} carries no op"),
                )
            })?;
            writer
                .write(&op)
                .map_err(|e| internal("writing the spool file", e))?;
            next = incoming.next().await.transpose()?;
        }
        writer
            .finish()
            .and_then(|mut w| w.flush())
            .map_err(|e| internal("writing the spool file", e))?;
        let imported = pach_admin::pachyderm::import(&self.pps, &self.spool, spool.path()).await;
        self.authz.auth.changed_elsewhere();
        imported.map_err(status)?;
        Ok(Response::new(()))
    }

    async fn inspect_cluster(
        &self,
        r: Request<()>,
    ) -> Result<Response<admin::ClusterInfo>, Status> {
        self.authz
            .require(r.metadata(), super::authz::Need::Signed)
            .await?;
        Ok(Response::new(admin::ClusterInfo {
            id: self.cluster.id.clone(),
        }))
    }
}
