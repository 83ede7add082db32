//! The gRPC admin service: version, extract and restore. The stream itself
//! is `pach_admin`'s; this only moves its bytes over gRPC or to a URL.

use std::path::PathBuf;

use futures::StreamExt;
use object_store::ObjectStoreExt;
use pach_admin::{AdminError, Summary};
use pach_api as api;
use pach_api::admin_server::Admin;
use pach_pfs::Pfs;
use tokio::io::AsyncReadExt;
use tonic::{Request, Response, Status, Streaming};

use crate::service::Stream_;
use crate::urls::open_url;

pub struct AdminService {
    pub pfs: Pfs,
    /// Where restore keeps a stream while it validates it.
    pub spool: PathBuf,
}

fn status(e: AdminError) -> Status {
    match e {
        AdminError::Clash { .. } => Status::already_exists(e.to_string()),
        AdminError::Busy(_) | AdminError::NotOwner { .. } | AdminError::Unowned { .. } => {
            Status::failed_precondition(e.to_string())
        }
        AdminError::Io { .. }
        | AdminError::Meta(_)
        | AdminError::Storage(_)
        | AdminError::Pfs(_)
        | AdminError::ObjectStore(_) => Status::internal(e.to_string()),
        _ => Status::invalid_argument(e.to_string()),
    }
}

fn summary(s: Summary, checkpoint: String) -> api::StreamSummary {
    api::StreamSummary {
        records: s.records,
        objects: s.objects,
        object_bytes: s.object_bytes,
        checkpoint,
    }
}

/// An `AsyncWrite` into the object a URL names (multipart for large streams).
fn url_writer(url: &str) -> Result<object_store::buffered::BufWriter, Status> {
    let (store, path) = open_url(url)?;
    Ok(object_store::buffered::BufWriter::new(store, path))
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn version(&self, _: Request<api::Empty>) -> Result<Response<api::VersionInfo>, Status> {
        let parse = |s: &str| s.parse::<u32>().unwrap_or(0);
        Ok(Response::new(api::VersionInfo {
            major: parse(env!("CARGO_PKG_VERSION_MAJOR")),
            minor: parse(env!("CARGO_PKG_VERSION_MINOR")),
            micro: parse(env!("CARGO_PKG_VERSION_PATCH")),
            additional: String::new(),
        }))
    }

    type ExtractStream = Stream_<api::ExtractReply>;

    async fn extract(
        &self,
        r: Request<api::ExtractRequest>,
    ) -> Result<Response<Self::ExtractStream>, Status> {
        let r = r.into_inner();
        let objects = !r.no_objects;
        let since = match r.since.as_str() {
            "" => None,
            s => Some(s.parse::<pach_admin::Checkpoint>().map_err(status)?),
        };
        if !r.url.is_empty() {
            let w = url_writer(&r.url)?;
            let (s, checkpoint) = pach_admin::extract(&self.pfs, objects, since, w)
                .await
                .map_err(status)?;
            let last = api::ExtractReply {
                data: vec![],
                summary: Some(summary(s, checkpoint.to_string())),
            };
            return Ok(Response::new(Box::pin(futures::stream::iter([Ok(last)]))));
        }
        let (writer, mut reader) = tokio::io::duplex(1 << 20);
        let pfs = self.pfs.clone();
        let task =
            tokio::spawn(async move { pach_admin::extract(&pfs, objects, since, writer).await });
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1 << 20];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        let chunk = api::ExtractReply {
                            data: buf[..n].to_vec(),
                            summary: None,
                        };
                        if tx.send(Ok(chunk)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                        return;
                    }
                }
            }
            let last = match task.await {
                Ok(Ok((s, checkpoint))) => Ok(api::ExtractReply {
                    data: vec![],
                    summary: Some(summary(s, checkpoint.to_string())),
                }),
                Ok(Err(e)) => Err(status(e)),
                Err(e) => Err(Status::internal(e.to_string())),
            };
            let _ = tx.send(last).await;
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn restore(
        &self,
        r: Request<Streaming<api::RestoreRequest>>,
    ) -> Result<Response<api::StreamSummary>, Status> {
        let reader = incoming_stream(r.into_inner()).await?;
        let s = pach_admin::restore(&self.pfs, &self.spool, reader)
            .await
            .map_err(status)?;
        Ok(Response::new(summary(s, String::new())))
    }

    async fn set_writes(
        &self,
        r: Request<api::SetWritesRequest>,
    ) -> Result<Response<api::WritesState>, Status> {
        let r = r.into_inner();
        let s = pach_admin::set_writes(&**self.pfs.meta(), r.paused, &r.reason)
            .await
            .map_err(status)?;
        Ok(Response::new(api::WritesState {
            paused: s.paused,
            since: s.since,
            reason: s.reason,
        }))
    }

    async fn garbage_collect(
        &self,
        r: Request<api::GarbageCollectRequest>,
    ) -> Result<Response<api::GarbageCollectReport>, Status> {
        let grace = std::time::Duration::from_secs(r.into_inner().grace_seconds);
        let report = pach_admin::garbage_collect(&self.pfs, grace)
            .await
            .map_err(status)?;
        Ok(Response::new(api::GarbageCollectReport {
            deleted: report.deleted,
            deleted_bytes: report.deleted_bytes,
            kept: report.kept,
        }))
    }

    async fn verify(
        &self,
        r: Request<Streaming<api::RestoreRequest>>,
    ) -> Result<Response<api::VerifyReport>, Status> {
        let reader = incoming_stream(r.into_inner()).await?;
        let differences = pach_admin::verify(&self.pfs, reader)
            .await
            .map_err(status)?;
        Ok(Response::new(api::VerifyReport { differences }))
    }
}

type ByteReader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// The stream a client sends: its bytes, or the object at the URL named in
/// the first message.
async fn incoming_stream(
    mut incoming: Streaming<api::RestoreRequest>,
) -> Result<ByteReader, Status> {
    let first = incoming.next().await.transpose()?.unwrap_or_default();
    if !first.url.is_empty() {
        let (store, path) = open_url(&first.url)?;
        let got = store.get(&path).await.map_err(|e| {
            Status::failed_precondition(format!("cannot read '{}': {e}", first.url))
        })?;
        let body = got.into_stream().map(|c| c.map_err(std::io::Error::other));
        return Ok(Box::new(tokio_util::io::StreamReader::new(body)));
    }
    let rest = incoming.map(|m| {
        m.map(|m| bytes::Bytes::from(m.data))
            .map_err(|e| std::io::Error::other(e.to_string()))
    });
    let body = futures::stream::iter([Ok(bytes::Bytes::from(first.data))]).chain(rest);
    Ok(Box::new(tokio_util::io::StreamReader::new(body)))
}
