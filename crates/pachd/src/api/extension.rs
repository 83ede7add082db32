//! `pachrs.v1.Extension`: what pachd offers beyond Pachyderm 1.9's API. The
//! extract stream, restore, verify, the write pause and garbage collection
//! are `pach_admin`'s, the consistency check `pach_pfs`'s, the controller
//! lease and the task records `pach_pps`'s; this only moves their bytes and
//! figures over gRPC (or to and from a URL that pachd reads and writes
//! itself).
//!
//! Verification streams both ways: the stream compared comes in as it is
//! read (from the client, a URL or another pachd's extract), and the
//! differences go out in batches as they are found, so that two clusters of
//! any size can be compared.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use object_store::ObjectStoreExt;
use pach_admin::Summary;
use pach_admin::pachyderm::bucket::PachydermBucket;
use pach_api::pachrs::v1::{self as pb, extension_server::Extension};
use pach_pfs::{ErrorKind, Pfs};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use super::ReplyStream;
use super::status::{status, status_of};
use crate::cluster::ClusterInfo;

pub(crate) struct ExtensionService {
    pub(crate) pfs: Pfs,
    /// Where restore keeps a stream while it validates it.
    pub(crate) spool: PathBuf,
    pub(crate) cluster: ClusterInfo,
    pub(crate) pipelines: super::pipelines::PipelineExtension,
    /// Who may call what (`authz`).
    pub(crate) authz: super::authz::Authz,
}

/// Bytes of stream per reply message.
const CHUNK: usize = 1 << 20;
/// Differences per reply message at most (and at most about this many bytes).
const DIFFERENCES_PER_REPLY: usize = 4096;
const DIFFERENCE_BYTES_PER_REPLY: usize = 1 << 20;
/// How long another pachd may take to connect and start its extract.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);

fn summary(s: Summary, checkpoint: String) -> pb::StreamSummary {
    pb::StreamSummary {
        records: s.records,
        objects: s.objects,
        object_bytes: s.object_bytes,
        checkpoint,
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> Status {
    status_of(ErrorKind::Internal, &format!("{what}: {e}"))
}

/// An `AsyncWrite` into the object a URL names (multipart for large streams).
fn url_writer(url: &str) -> Result<object_store::buffered::BufWriter, Status> {
    let (store, path) = crate::urls::open_url(url)?;
    Ok(object_store::buffered::BufWriter::new(store, path))
}

pub(super) type ByteReader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// The object a restore's URL names, read as it streams in.
pub(super) async fn url_reader(url: &str) -> Result<ByteReader, Status> {
    let (store, path) = crate::urls::open_url(url)?;
    let got = store.get(&path).await.map_err(|e| {
        status_of(
            ErrorKind::FailedPrecondition,
            &format!("cannot read '{url}': {e}"),
        )
    })?;
    let body = got.into_stream().map(|c| c.map_err(std::io::Error::other));
    Ok(Box::new(tokio_util::io::StreamReader::new(body)))
}

/// The stream a client sends: its bytes, or the object at the URL named in
/// the first message.
async fn incoming_stream(incoming: Streaming<pb::RestoreRequest>) -> Result<ByteReader, Status> {
    Ok(incoming_stream_with(incoming).await?.0)
}

/// [`incoming_stream`], and the Pachyderm bucket the first message names.
async fn incoming_stream_with(
    mut incoming: Streaming<pb::RestoreRequest>,
) -> Result<(ByteReader, Option<PachydermBucket>), Status> {
    let first = incoming.next().await.transpose()?.unwrap_or_default();
    let bucket = if first.pachyderm_bucket.is_empty() {
        None
    } else {
        let (store, root) = crate::urls::open_url(&first.pachyderm_bucket)?;
        Some(PachydermBucket { store, root })
    };
    Ok((incoming_body(first, incoming).await?, bucket))
}

async fn incoming_body(
    first: pb::RestoreRequest,
    incoming: Streaming<pb::RestoreRequest>,
) -> Result<ByteReader, Status> {
    if !first.url.is_empty() {
        return url_reader(&first.url).await;
    }
    let rest = incoming.map(|m| {
        m.map(|m| bytes::Bytes::from(m.data))
            .map_err(|e| std::io::Error::other(e.message().to_string()))
    });
    let body = futures::stream::iter([Ok(bytes::Bytes::from(first.data))]).chain(rest);
    Ok(Box::new(tokio_util::io::StreamReader::new(body)))
}

/// The extract stream of another pachd (records only), read as it arrives.
async fn peer_stream(address: &str) -> Result<ByteReader, Status> {
    let unreachable = |reason: String| {
        status_of(
            ErrorKind::Unavailable,
            &format!(
                "cannot reach the pachd at {address} to compare with: {reason}; check the address (HOST:PORT, as this pachd reaches it)"
            ),
        )
    };
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| unreachable(format!("invalid address ({e})")))?
        .connect_timeout(PEER_TIMEOUT)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(20))
        .tcp_nodelay(true);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| unreachable(innermost(&e)))?;
    let mut peer = pb::extension_client::ExtensionClient::new(channel)
        .max_decoding_message_size(super::MAX_MESSAGE);
    let request = pb::ExtractRequest {
        no_objects: true,
        ..Default::default()
    };
    let replies = match tokio::time::timeout(PEER_TIMEOUT, peer.extract(request)).await {
        Err(_) => {
            return Err(unreachable(format!(
                "it did not answer within {} s",
                PEER_TIMEOUT.as_secs()
            )));
        }
        Ok(Err(s)) => return Err(unreachable(s.message().to_string())),
        Ok(Ok(r)) => r.into_inner(),
    };
    // The stream's trailer makes a truncated stream an error of the
    // comparison; a failed call says so in its own words.
    let address = address.to_string();
    let body = replies.map(move |m| {
        m.map(|m| bytes::Bytes::from(m.data)).map_err(|s| {
            std::io::Error::other(format!(
                "the extract of the pachd at {address} failed: {}",
                s.message()
            ))
        })
    });
    Ok(Box::new(tokio_util::io::StreamReader::new(body)))
}

/// The message of the innermost cause of an error (the one that says why).
fn innermost(e: &dyn std::error::Error) -> String {
    let mut reason = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        reason = s.to_string();
        source = s.source();
    }
    reason
}

/// Compares this cluster with `input`, replying with the differences in
/// batches as they are found and a summary last.
fn verify_replies(pfs: Pfs, input: ByteReader) -> ReplyStream<pb::VerifyReply> {
    let (found_tx, mut found) = mpsc::channel::<String>(DIFFERENCES_PER_REPLY);
    let task = tokio::spawn(async move { pach_admin::verify(&pfs, input, &found_tx).await });
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        while let Some(first) = found.recv().await {
            let mut bytes = first.len();
            let mut batch = vec![pb::Difference { description: first }];
            while batch.len() < DIFFERENCES_PER_REPLY && bytes < DIFFERENCE_BYTES_PER_REPLY {
                let Ok(d) = found.try_recv() else { break };
                bytes += d.len();
                batch.push(pb::Difference { description: d });
            }
            let reply = pb::VerifyReply {
                differences: batch,
                summary: None,
            };
            if tx.send(Ok(reply)).await.is_err() {
                // The client left: stop comparing.
                task.abort();
                return;
            }
        }
        let last = match task.await {
            Ok(Ok(count)) => Ok(pb::VerifyReply {
                differences: vec![],
                summary: Some(pb::VerifySummary { differences: count }),
            }),
            Ok(Err(e)) => Err(status(e)),
            Err(e) => Err(internal("the comparison stopped", e)),
        };
        let _ = tx.send(last).await;
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

fn unix_ns(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX / 1_000_000) * 1_000_000
}

#[tonic::async_trait]
impl Extension for ExtensionService {
    type ExtractStream = ReplyStream<pb::ExtractReply>;

    async fn extract(
        &self,
        r: Request<pb::ExtractRequest>,
    ) -> Result<Response<Self::ExtractStream>, Status> {
        self.authz
            .require(r.metadata(), super::authz::Need::Admin("Extract"))
            .await?;
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
            let last = pb::ExtractReply {
                data: vec![],
                summary: Some(summary(s, checkpoint.to_string())),
            };
            return Ok(Response::new(Box::pin(futures::stream::iter([Ok(last)]))));
        }
        let (writer, mut reader) = tokio::io::duplex(CHUNK);
        let pfs = self.pfs.clone();
        let task =
            tokio::spawn(async move { pach_admin::extract(&pfs, objects, since, writer).await });
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(async move {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        let chunk = pb::ExtractReply {
                            data: buf[..n].to_vec(),
                            summary: None,
                        };
                        if tx.send(Ok(chunk)).await.is_err() {
                            task.abort();
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(internal("reading the extract", e))).await;
                        return;
                    }
                }
            }
            let last = match task.await {
                Ok(Ok((s, checkpoint))) => Ok(pb::ExtractReply {
                    data: vec![],
                    summary: Some(summary(s, checkpoint.to_string())),
                }),
                Ok(Err(e)) => Err(status(e)),
                Err(e) => Err(internal("the extract stopped", e)),
            };
            let _ = tx.send(last).await;
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn restore(
        &self,
        r: Request<Streaming<pb::RestoreRequest>>,
    ) -> Result<Response<pb::StreamSummary>, Status> {
        self.authz
            .require(r.metadata(), super::authz::Need::Admin("Restore"))
            .await?;
        let (reader, bucket) = incoming_stream_with(r.into_inner()).await?;
        let restored =
            pach_admin::restore_any_with(&self.pipelines.pps, &self.spool, reader, bucket.as_ref())
                .await;
        // A restore writes access control around `pach_auth`.
        self.authz.auth.changed_elsewhere();
        let s = restored.map_err(status)?;
        Ok(Response::new(summary(s, String::new())))
    }

    type VerifyStream = ReplyStream<pb::VerifyReply>;

    async fn verify(
        &self,
        r: Request<Streaming<pb::RestoreRequest>>,
    ) -> Result<Response<Self::VerifyStream>, Status> {
        self.authz
            .require(r.metadata(), super::authz::Need::Admin("Verify"))
            .await?;
        let reader = incoming_stream(r.into_inner()).await?;
        Ok(Response::new(verify_replies(self.pfs.clone(), reader)))
    }

    type VerifyFromStream = ReplyStream<pb::VerifyReply>;

    async fn verify_from(
        &self,
        r: Request<pb::VerifyFromRequest>,
    ) -> Result<Response<Self::VerifyFromStream>, Status> {
        self.authz
            .require(r.metadata(), super::authz::Need::Admin("VerifyFrom"))
            .await?;
        let address = r.into_inner().address;
        if address.is_empty() {
            return Err(status_of(
                ErrorKind::InvalidArgument,
                "no pachd to compare with: name one as HOST:PORT",
            ));
        }
        let reader = peer_stream(&address).await?;
        Ok(Response::new(verify_replies(self.pfs.clone(), reader)))
    }

    async fn set_writes(
        &self,
        r: Request<pb::SetWritesRequest>,
    ) -> Result<Response<pb::WritesState>, Status> {
        self.authz
            .require(r.metadata(), super::authz::Need::Admin("SetWrites"))
            .await?;
        let r = r.into_inner();
        let s = pach_admin::set_writes(&**self.pfs.meta(), r.paused, &r.reason)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::WritesState {
            paused: s.paused,
            since: s.since,
            reason: s.reason,
        }))
    }

    async fn fsck(&self, r: Request<()>) -> Result<Response<pb::FsckReport>, Status> {
        self.authz
            .require(r.metadata(), super::authz::Need::Admin("Fsck"))
            .await?;
        let report = self.pfs.fsck().await.map_err(status)?;
        Ok(Response::new(pb::FsckReport {
            commits_checked: report.commits_checked,
            objects_checked: report.indexes_checked,
            problems: report.problems,
        }))
    }

    async fn garbage_collect(
        &self,
        r: Request<pb::GarbageCollectRequest>,
    ) -> Result<Response<pb::GarbageCollectReport>, Status> {
        self.authz
            .require(r.metadata(), super::authz::Need::Admin("GarbageCollect"))
            .await?;
        let grace = Duration::from_secs(r.into_inner().grace_seconds);
        let report = pach_admin::garbage_collect(&self.pfs, grace)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GarbageCollectReport {
            deleted: report.deleted,
            deleted_bytes: report.deleted_bytes,
            kept: report.kept,
        }))
    }

    async fn find_object(
        &self,
        r: Request<pb::FindObjectRequest>,
    ) -> Result<Response<pb::ObjectLocation>, Status> {
        let metadata = r.metadata().clone();
        self.authz
            .require(&metadata, super::authz::Need::Signed)
            .await?;
        let hash = r.into_inner().hash;
        let found = self.pfs.find_object(&hash).await.map_err(status)?;
        let l = found.ok_or_else(|| {
            Status::not_found(format!(
                "object {hash} not found: no file of a finished commit holds it; \
                 `pachctl inspect file` lists a file's objects"
            ))
        })?;
        // Where it was found is told only to who may read that repo.
        self.authz
            .require(
                &metadata,
                super::authz::Need::Repos(vec![(l.repo.clone(), pach_auth::Scope::Reader)]),
            )
            .await?;
        Ok(Response::new(pb::ObjectLocation {
            repo: l.repo,
            commit: l.commit,
            path: l.path,
            offset: l.offset,
            size: l.size,
        }))
    }

    async fn inspect_cluster_state(
        &self,
        r: Request<()>,
    ) -> Result<Response<pb::ClusterState>, Status> {
        self.authz
            .require(r.metadata(), super::authz::Need::Signed)
            .await?;
        let meta = &**self.pfs.meta();
        let leader = pach_pps::leader::current(meta).await.map_err(status)?;
        let tasks = pach_pfs::records::load_all::<pach_pps::records::TaskRecord>(
            meta,
            pach_pps::records::TASKS,
        )
        .await
        .map_err(status)?;
        let workers = tasks
            .into_iter()
            .filter(|(t, _)| t.state == pach_pps::records::TaskState::Claimed)
            .map(|(t, _)| pb::WorkerState {
                id: t.worker,
                job: t.job,
                task: u64::from(t.index),
                lease_expires_ns: unix_ns(t.expires_ms),
            })
            .collect();
        let (leader, leader_lease_expires_ns) = match leader {
            Some((holder, expires_ms)) => (holder, unix_ns(expires_ms)),
            None => (String::new(), 0),
        };
        Ok(Response::new(pb::ClusterState {
            cluster_id: self.cluster.id.clone(),
            leader,
            leader_lease_expires_ns,
            workers,
            metadata_format: format!(
                "{}.{}",
                crate::cluster::FORMAT_MAJOR,
                crate::cluster::FORMAT_MINOR
            ),
        }))
    }

    async fn create_secret(
        &self,
        r: Request<pb::CreateSecretRequest>,
    ) -> Result<Response<()>, Status> {
        self.authz
            .require(r.metadata(), super::authz::Need::Admin("CreateSecret"))
            .await?;
        self.pipelines.create_secret(r).await
    }

    async fn inspect_secret(
        &self,
        r: Request<pb::SecretRequest>,
    ) -> Result<Response<pb::SecretInfo>, Status> {
        self.authz
            .require(r.metadata(), super::authz::Need::Admin("InspectSecret"))
            .await?;
        self.pipelines.inspect_secret(r).await
    }

    async fn list_secret(&self, r: Request<()>) -> Result<Response<pb::SecretInfos>, Status> {
        self.authz
            .require(r.metadata(), super::authz::Need::Admin("ListSecret"))
            .await?;
        self.pipelines.list_secret(r).await
    }

    async fn delete_secret(&self, r: Request<pb::SecretRequest>) -> Result<Response<()>, Status> {
        self.authz
            .require(r.metadata(), super::authz::Need::Admin("DeleteSecret"))
            .await?;
        self.pipelines.delete_secret(r).await
    }

    async fn create_extended_pipeline(
        &self,
        r: Request<pb::CreateExtendedPipelineRequest>,
    ) -> Result<Response<()>, Status> {
        // Checked by the pipeline extension once the spec is parsed.
        self.pipelines.create_extended_pipeline(r).await
    }
}
