//! `debug.Debug`: what someone diagnosing a pachd needs from it. `Dump` is a
//! text document of pachd's version, configuration, cluster record,
//! repos, pipelines and jobs, and its recent log lines (Pachyderm 1.9's dump
//! is text too: its goroutines); `Profile` a CPU profile in pprof's format;
//! `Binary` the running executable, so that a profile can be symbolised.
//!
//! Invariant: a dump holds no secret: URLs lose their user, password and
//! query (where object stores carry keys and signatures), pipeline specs
//! (whose environment may hold credentials) are not included, nor is
//! pachd's environment.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use pach_api::debug::{self, debug_server::Debug};
use pach_pfs::ErrorKind;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use super::ReplyStream;
use super::status::{status, status_of};
use crate::cluster::ClusterInfo;
use crate::logs::RecentLogs;
use crate::profile::ProfileError;

/// Bytes per reply message: well under the 4 MiB that gRPC clients accept
/// by default.
const CHUNK: usize = 1 << 20;
/// Pachyderm's CPU profile lasts a minute unless asked otherwise.
const DEFAULT_PROFILE: Duration = Duration::from_secs(60);
/// A longer profile is refused (it holds the process-wide sampler).
const MAX_PROFILE: Duration = Duration::from_secs(3600);
/// Jobs listed one by one in a dump (newest first); older ones are counted.
const DUMP_JOBS: usize = 50;

/// What a dump tells beyond the cluster's records.
#[derive(Clone)]
pub struct Diagnostics {
    pub logs: RecentLogs,
    /// pachd's settings, secrets already removed (see [`redact_url`]).
    pub config: Vec<(&'static str, String)>,
    pub started: Instant,
}

pub(crate) struct DebugService {
    pub(crate) pps: pach_pps::Pps,
    pub(crate) cluster: ClusterInfo,
    pub(crate) diagnostics: Diagnostics,
    /// Who may call what (`authz`).
    pub(crate) authz: super::authz::Authz,
}

/// `url` without user, password and query: what may be shown to anyone.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = match authority.rsplit_once('@') {
        Some((_, host)) => format!("<redacted>@{host}"),
        None => authority.to_string(),
    };
    format!("{scheme}://{host}{path}")
}

/// Replies carrying `bytes` in chunks.
fn chunks(bytes: Vec<u8>) -> ReplyStream<Vec<u8>> {
    let replies: Vec<_> = bytes.chunks(CHUNK).map(|c| Ok(c.to_vec())).collect();
    Box::pin(futures::stream::iter(replies))
}

impl DebugService {
    async fn dump(&self) -> Result<String, Status> {
        let mut d = String::new();
        let v = super::version::version();
        let up = self.diagnostics.started.elapsed();
        let _ = writeln!(
            d,
            "== pachd {}.{}.{}{} ==\n\npid {}, up {}\n",
            v.major,
            v.minor,
            v.micro,
            v.additional,
            std::process::id(),
            humantime::format_duration(Duration::from_secs(up.as_secs()))
        );
        let _ = writeln!(d, "== configuration ==\n");
        for (key, value) in &self.diagnostics.config {
            let _ = writeln!(d, "{key}: {value}");
        }
        let pfs = self.pps.pfs();
        let meta = &**pfs.meta();
        let _ = writeln!(d, "\n== cluster ==\n");
        let _ = writeln!(d, "id: {}", self.cluster.id);
        let _ = writeln!(
            d,
            "metadata format: {}.{}",
            crate::cluster::FORMAT_MAJOR,
            crate::cluster::FORMAT_MINOR
        );
        let writes = pach_admin::writes_state(meta).await.map_err(status)?;
        if writes.paused {
            let _ = writeln!(
                d,
                "writes: paused since {} ({})",
                writes.since, writes.reason
            );
        } else {
            let _ = writeln!(d, "writes: accepted");
        }
        match pach_pps::leader::current(meta).await.map_err(status)? {
            Some((holder, expires_ms)) => {
                let _ = writeln!(
                    d,
                    "controller lease: {holder}, until {}",
                    unix_ms(expires_ms)
                );
            }
            None => {
                let _ = writeln!(d, "controller lease: never taken");
            }
        }
        let _ = writeln!(d, "\n== repos ==\n");
        for r in pfs.list_repo().await.map_err(status)? {
            let _ = writeln!(
                d,
                "{}  branches: {}  size of master: {} bytes",
                r.record.name,
                r.branches.join(","),
                r.size_bytes
            );
        }
        let _ = writeln!(d, "\n== pipelines ==\n");
        for p in self.pps.list_pipeline().await.map_err(status)? {
            let _ = writeln!(d, "{}  version {}  {:?}", p.name(), p.version, p.state);
        }
        let jobs = self.pps.list_job(None).await.map_err(status)?;
        let _ = writeln!(d, "\n== jobs ({}) ==\n", jobs.len());
        let mut by_state = std::collections::BTreeMap::<String, usize>::new();
        for j in &jobs {
            *by_state.entry(format!("{:?}", j.state)).or_default() += 1;
        }
        for (state, n) in &by_state {
            let _ = writeln!(d, "{state}: {n}");
        }
        if !jobs.is_empty() {
            let _ = writeln!(d);
        }
        for j in jobs.iter().take(DUMP_JOBS) {
            let _ = writeln!(
                d,
                "{}  {}  {:?}  datums processed {} skipped {} failed {}{}",
                j.id,
                j.pipeline,
                j.state,
                j.counts.processed,
                j.counts.skipped,
                j.counts.failed,
                if j.reason.is_empty() {
                    String::new()
                } else {
                    format!("  reason: {}", j.reason)
                }
            );
        }
        let logs = self.diagnostics.logs.snapshot();
        let _ = writeln!(
            d,
            "\n== recent logs (last {} of at most {} lines) ==\n",
            logs.len(),
            self.diagnostics.logs.capacity()
        );
        for line in logs {
            let _ = writeln!(d, "{line}");
        }
        Ok(d)
    }
}

fn unix_ms(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn profile_status(e: ProfileError) -> Status {
    let kind = match e {
        ProfileError::Busy => ErrorKind::FailedPrecondition,
        ProfileError::Sampler(_) => ErrorKind::Internal,
    };
    status_of(kind, &e.to_string())
}

#[tonic::async_trait]
impl Debug for DebugService {
    type DumpStream = ReplyStream<Vec<u8>>;

    async fn dump(
        &self,
        r: Request<debug::DumpRequest>,
    ) -> Result<Response<Self::DumpStream>, Status> {
        self.authz
            .require(r.metadata(), super::authz::Need::Admin("Dump"))
            .await?;
        let text = DebugService::dump(self).await?;
        Ok(Response::new(chunks(text.into_bytes())))
    }

    type ProfileStream = ReplyStream<Vec<u8>>;

    async fn profile(
        &self,
        r: Request<debug::ProfileRequest>,
    ) -> Result<Response<Self::ProfileStream>, Status> {
        self.authz
            .require(r.metadata(), super::authz::Need::Admin("Profile"))
            .await?;
        let r = r.into_inner();
        if r.profile != "cpu" {
            return Err(status_of(
                ErrorKind::InvalidArgument,
                &format!(
                    "profile '{}' is not available from this pachd; ask for 'cpu'",
                    r.profile
                ),
            ));
        }
        let duration = match r.duration {
            None => DEFAULT_PROFILE,
            Some(d) => Duration::try_from(d).map_err(|_| {
                status_of(
                    ErrorKind::InvalidArgument,
                    "the profile's duration is negative; ask for a positive one, e.g. 30s",
                )
            })?,
        };
        if duration > MAX_PROFILE {
            return Err(status_of(
                ErrorKind::InvalidArgument,
                &format!(
                    "a CPU profile lasts at most {}; ask for a shorter duration",
                    humantime::format_duration(MAX_PROFILE)
                ),
            ));
        }
        let bytes = tokio::task::spawn_blocking(move || crate::profile::cpu(duration))
            .await
            .map_err(|e| status_of(ErrorKind::Internal, &format!("the profiler stopped: {e}")))?
            .map_err(profile_status)?;
        Ok(Response::new(chunks(bytes)))
    }

    type BinaryStream = ReplyStream<Vec<u8>>;

    async fn binary(
        &self,
        r: Request<debug::BinaryRequest>,
    ) -> Result<Response<Self::BinaryStream>, Status> {
        self.authz
            .require(r.metadata(), super::authz::Need::Admin("Binary"))
            .await?;
        // /proc/self/exe is the running executable even if its file was
        // replaced or deleted since pachd started.
        let path = std::path::PathBuf::from("/proc/self/exe");
        let path = if path.exists() {
            path
        } else {
            std::env::current_exe().map_err(|e| {
                status_of(
                    ErrorKind::Internal,
                    &format!("cannot find pachd's executable: {e}"),
                )
            })?
        };
        let mut file = tokio::fs::File::open(&path).await.map_err(|e| {
            status_of(
                ErrorKind::Internal,
                &format!("cannot open pachd's executable {}: {e}", path.display()),
            )
        })?;
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                let mut buf = vec![0u8; CHUNK];
                let reply = match file.read(&mut buf).await {
                    Ok(0) => return,
                    Ok(n) => {
                        buf.truncate(n);
                        Ok(buf)
                    }
                    Err(e) => Err(status_of(
                        ErrorKind::Internal,
                        &format!("reading pachd's executable: {e}"),
                    )),
                };
                let failed = reply.is_err();
                if tx.send(reply).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_secrets() {
        assert_eq!(
            redact_url("s3://key:secret@bucket/prefix?token=x"),
            "s3://<redacted>@bucket/prefix"
        );
        assert_eq!(
            redact_url("az://container/p?sv=2020&sig=abc"),
            "az://container/p"
        );
        assert_eq!(
            redact_url("etcd://10.0.0.1:2379/prod"),
            "etcd://10.0.0.1:2379/prod"
        );
        assert_eq!(
            redact_url("/var/lib/pachd/objects"),
            "/var/lib/pachd/objects"
        );
        assert_eq!(redact_url("http://u:p@h:1"), "http://<redacted>@h:1");
    }
}
