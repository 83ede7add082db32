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
use object_store::ObjectStoreExt;
use pach_admin::pachyderm::frames::OpWriter;
use pach_api::admin::{self, api_server::Api};
use pach_pfs::ErrorKind;
use pach_pps::Pps;
use tonic::{Request, Response, Status, Streaming};

use super::ReplyStream;
use super::status::{status, status_of, unimplemented};
use crate::cluster::ClusterInfo;

pub(crate) struct AdminService {
    pub(crate) cluster: ClusterInfo,
    pub(crate) pps: Pps,
    /// Where a restore keeps its stream while it validates it.
    pub(crate) spool: PathBuf,
}

fn internal(what: &str, e: impl std::fmt::Display) -> Status {
    status_of(ErrorKind::Internal, &format!("{what}: {e}"))
}

#[tonic::async_trait]
impl Api for AdminService {
    type ExtractStream = ReplyStream<admin::Op>;

    async fn extract(
        &self,
        _: Request<admin::ExtractRequest>,
    ) -> Result<Response<Self::ExtractStream>, Status> {
        Err(unimplemented(
            "admin.API/Extract in Pachyderm's op format is not supported by this pachd yet; \
             `pachctl extract > backup` and `pachctl restore < backup` move a whole cluster \
             in this pachd's own self-checking stream",
        ))
    }

    async fn extract_pipeline(
        &self,
        r: Request<admin::ExtractPipelineRequest>,
    ) -> Result<Response<admin::Op>, Status> {
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
            let (store, path) = crate::urls::open_url(&first.url)?;
            let got = store.get(&path).await.map_err(|e| {
                status_of(
                    ErrorKind::FailedPrecondition,
                    &format!("cannot read '{}': {e}", first.url),
                )
            })?;
            let body = got.into_stream().map(|c| c.map_err(std::io::Error::other));
            let reader = tokio_util::io::StreamReader::new(body);
            pach_admin::restore_any(&self.pps, &self.spool, reader)
                .await
                .map_err(status)?;
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
        pach_admin::pachyderm::import(&self.pps, &self.spool, spool.path())
            .await
            .map_err(status)?;
        Ok(Response::new(()))
    }

    async fn inspect_cluster(
        &self,
        _: Request<()>,
    ) -> Result<Response<admin::ClusterInfo>, Status> {
        Ok(Response::new(admin::ClusterInfo {
            id: self.cluster.id.clone(),
        }))
    }
}
