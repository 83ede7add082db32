//! Spouts: a pipeline whose user code runs on, bringing data in from outside
//! and writing tar streams to the named pipe `/pfs/out`; each archive
//! becomes one finished commit of the output branch (Pachyderm 1.9's
//! spouts). With `overwrite` a file of the archive replaces the file of its
//! path, else it is appended to it, as 1.9's `PutFile` appends. Files under
//! the marker directory (`spout.marker`, `marker` by default) always replace
//! theirs, and the output branch's marker directory is given back to user
//! code at `/pfs/<marker>` whenever it starts, so a spout resumes where it
//! stopped.
//!
//! The leading controller keeps one runner per running spout. User code that
//! exits or dies is started again after a pause that doubles up to a minute
//! (back to a second once a run lasted a minute). Stopping, updating or
//! deleting the pipeline ends the run: the sandbox is killed with everything
//! in it, and an archive not yet complete is dropped (its files were never
//! visible). Invariant: an archive's files reach the branch in one commit or
//! not at all. A spout with `spout.service` also serves a port, published
//! on the host as a service's (`service`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use pach_storage::Change;
use pach_worker::spout::{self, TarEvent};
use pach_worker::{Command, SandboxSession};
use tokio::sync::mpsc;

use crate::error::{PpsError, Result};
use crate::pipeline::Pps;
use crate::records::{PipelineRecord, PipelineState};
use crate::runlog::LogTail;

/// The first pause before user code that ended is started again.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often a run checks that its pipeline is unchanged and running.
const CHECK: Duration = Duration::from_millis(250);
/// At most this many waiting archives are written in one transaction.
const MAX_BATCH: usize = 256;

impl Pps {
    /// Runs the spout `name` while it is running, unchanged, and this pachd
    /// leads the controller (`me`).
    pub(crate) async fn run_spout(&self, me: &str, name: &str) -> Result<()> {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let p = match self.inspect_pipeline(name).await {
                Ok(p) => p,
                Err(PpsError::PipelineNotFound(_)) => return Ok(()),
                Err(e) => return Err(e),
            };
            if p.state != PipelineState::Running
                || (p.spec.spout.is_none() && p.spec.service.is_none())
                || !crate::leader::lead(&**self.pfs.meta(), me).await?
            {
                return Ok(());
            }
            let started = Instant::now();
            let once = if p.spec.service.is_some() {
                self.service_once(&p).await
            } else {
                self.spout_once(&p).await
            };
            let said = match once {
                Ok(Ended::Changed) => return Ok(()),
                Ok(Ended::Exited(code, log)) => {
                    let said = format!(
                        "{} user code exited with code {code}; starting it again in {backoff:?}",
                        kind(&p)
                    );
                    tracing::warn!(pipeline = %name, "{said}: {}", tail(&log));
                    said
                }
                Err(e) => {
                    let said = format!("{}: {e}; starting it again in {backoff:?}", kind(&p));
                    tracing::warn!(pipeline = %name, "{said}");
                    said
                }
            };
            self.note_run(name, said).await;
            if started.elapsed() > MAX_BACKOFF {
                backoff = FIRST_BACKOFF;
            }
            // The pause ends early when the pipeline changes.
            let deadline = Instant::now() + backoff;
            while Instant::now() < deadline {
                tokio::time::sleep(CHECK).await;
                if self.spout_changed(&p).await {
                    break;
                }
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Whether the pipeline `p` was stopped, updated or deleted.
    pub(crate) async fn spout_changed(&self, p: &PipelineRecord) -> bool {
        match self.inspect_pipeline(p.name()).await {
            Ok(now) => now.version != p.version || now.state != PipelineState::Running,
            Err(PpsError::PipelineNotFound(_)) => true,
            // A passing failure of the store does not stop user code.
            Err(_) => false,
        }
    }

    /// One run of the spout's user code, with its pipe read into commits.
    async fn spout_once(&self, p: &PipelineRecord) -> Result<Ended> {
        let name = p.name().to_string();
        let slot = self.scratch.join("spouts").join(&name);
        let _ = tokio::fs::remove_dir_all(&slot).await;
        let fifo = spout::make_out_fifo(&slot).map_err(failed)?;
        let marker = p.spec.spout.as_ref().map(|s| s.marker().to_string());
        let marker = marker.as_deref().unwrap_or("marker");
        self.restore_marker(p, marker, &slot.join("pfs").join(marker))
            .await?;
        let secrets = self.resolve_secrets(&p.spec).await?;
        let (memory, file_size) = crate::spec::enforced_limits(&p.spec);
        let mut sandbox = self
            .detect_sandbox()
            .map_err(failed)?
            .with_limits(memory, file_size);
        // A spout serving a port (`spout.service`): published as a
        // service's is (`service`).
        let service = p.spec.spout.as_ref().and_then(|s| s.service.as_ref());
        let (internal, published) = match service {
            Some(service) => {
                let internal = u16::try_from(service.internal_port).map_err(failed)?;
                sandbox = sandbox.with_service_port(internal);
                (Some(internal), Some(self.publish(&name, service).await?))
            }
            None => (None, None),
        };
        let mut sandbox = self.sandbox_with_gateway(sandbox, &name, internal);
        if !secrets.mounts.is_empty() {
            sandbox = sandbox
                .with_files(&slot.join("secrets"), &secrets.mounts)
                .map_err(failed)?;
        }
        let mut session = sandbox
            .start(&slot, self.datum_network(p))
            .await
            .map_err(failed)?;

        // The pipe, read on a thread of its own into events.
        let stop = Arc::new(AtomicBool::new(false));
        let (send, events) = mpsc::channel::<TarEvent>(64);
        let reader = {
            let (fifo, stop) = (fifo.clone(), stop.clone());
            tokio::task::spawn_blocking(move || {
                spout::read_archives(&fifo, &stop, |e| send.blocking_send(e).is_ok())
            })
        };
        let t = &p.spec.transform;
        let mut env: Vec<(String, String)> =
            t.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        env.push(("PPS_PIPELINE_NAME".into(), name.clone()));
        env.extend(self.s3_endpoint(internal));
        env.extend(secrets.env.iter().cloned());
        let command = Command {
            cmd: t.cmd.clone(),
            stdin: t.stdin.clone(),
            env,
            working_dir: t.working_dir.clone(),
            timeout: None,
        };
        let mut commits = {
            let (this, p, marker) = (self.clone(), p.clone(), marker.to_string());
            tokio::spawn(async move { this.commit_archives(&p, &marker, events).await })
        };
        let socket = session.service_socket();
        let carry_in = async move {
            match published {
                Some(listener) => crate::service::accept(listener, socket).await,
                None => std::future::pending().await,
            }
        };
        let mut log = LogTail::new(session.log_file());
        let mut committed = false;
        let ended = tokio::select! {
            () = carry_in => Ok(Ended::Changed),
            () = self.keep_user_log(p, &mut log) => Ok(Ended::Changed),
            r = run(&mut session, &command) => r,
            r = &mut commits => {
                // Only a failed write ends the commits before the run.
                committed = true;
                flatten(r).map(|()| Ended::Changed)
            }
            () = self.await_change(p) => Ok(Ended::Changed),
        };
        // Everything of this run ends here: user code with its sandbox, then
        // the reader once the pipe is drained; archives it completed are
        // still committed.
        self.finish_user_log(p, &mut log, whole_output(&ended))
            .await;
        drop(session);
        stop.store(true, Ordering::SeqCst);
        if let Ok(Err(e)) = reader.await {
            tracing::debug!(pipeline = %name, "spout pipe: {e}");
        }
        if !committed && let Err(e) = flatten(commits.await) {
            tracing::warn!(pipeline = %name, "spout: {e}");
        }
        ended
    }

    pub(crate) async fn await_change(&self, p: &PipelineRecord) {
        while !self.spout_changed(p).await {
            tokio::time::sleep(CHECK).await;
        }
    }

    /// Writes each complete archive of `events` as one commit of the output
    /// branch, in order. Archives that complete while earlier ones are being
    /// written wait, and are then written together: their content flushed
    /// once and their commits (still one per archive) made durable in one
    /// metadata transaction. Returns when the reader is gone.
    async fn commit_archives(
        &self,
        p: &PipelineRecord,
        marker: &str,
        mut events: mpsc::Receiver<TarEvent>,
    ) -> Result<()> {
        let name = p.name();
        let overwrite = p.spec.spout.as_ref().is_some_and(|s| s.overwrite);
        let marker_dir = format!("/{marker}");
        let mut session = self.pfs.content().session();
        // The archive being read, and the complete ones not yet written.
        let mut changes: Vec<Change> = Vec::new();
        let mut complete: Vec<Vec<Change>> = Vec::new();
        let mut open: Option<String> = None;
        loop {
            // Waits only when no complete archive is waiting to be written.
            let event = if complete.len() >= MAX_BATCH {
                None
            } else if complete.is_empty() {
                match events.recv().await {
                    Some(e) => Some(e),
                    None => break,
                }
            } else {
                events.try_recv().ok()
            };
            let Some(event) = event else {
                session.flush().await?;
                // The spout writes as `pipeline:NAME`, as jobs do.
                if let Some(reason) = self.job_refusal(p).await? {
                    return Err(PpsError::FailedPrecondition(reason));
                }
                self.pfs
                    .for_pipeline(name)
                    .write_commits(name, &p.spec.output_branch, std::mem::take(&mut complete))
                    .await?;
                continue;
            };
            match event {
                TarEvent::File(path) => {
                    if let Some(done) = open.take() {
                        changes.push(change(
                            session.end_file().await?,
                            &done,
                            overwrite,
                            &marker_dir,
                        ));
                    }
                    session.begin_file(path.clone(), None);
                    open = Some(path);
                }
                TarEvent::Data(bytes) => session.write(&bytes).await?,
                TarEvent::End => {
                    if let Some(done) = open.take() {
                        changes.push(change(
                            session.end_file().await?,
                            &done,
                            overwrite,
                            &marker_dir,
                        ));
                    }
                    complete.push(std::mem::take(&mut changes));
                }
                TarEvent::Truncated => {
                    tracing::warn!(pipeline = %name, "spout: user code closed /pfs/out in the middle of a file; that archive is dropped");
                    if open.take().is_some() {
                        session.end_file().await?;
                    }
                    changes.clear();
                }
                TarEvent::Skipped { name: entry, why } => {
                    tracing::warn!(pipeline = %name, "spout: '{entry}' of an archive is left out: {why}");
                }
            }
        }
        session.finish().await?;
        Ok(())
    }

    /// Writes the output branch's marker directory under `dir` (nothing when
    /// the branch has none).
    async fn restore_marker(
        &self,
        p: &PipelineRecord,
        marker: &str,
        dir: &std::path::Path,
    ) -> Result<()> {
        self.write_tree(p.name(), &p.spec.output_branch, &format!("/{marker}"), dir)
            .await
    }

    /// Writes the files at and below `path` of `repo@reference` under `dir`
    /// (nothing when there are none).
    pub(crate) async fn write_tree(
        &self,
        name: &str,
        reference: &str,
        path: &str,
        dir: &std::path::Path,
    ) -> Result<()> {
        let files = match self.pfs.walk_file(name, reference, path).await {
            Ok((_, files)) => files,
            Err(e) if e.kind() == pach_pfs::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let prefix = path.trim_end_matches('/');
        for f in files.into_iter().filter(|f| !f.is_dir) {
            let rel = f.path.strip_prefix(prefix).unwrap_or(&f.path);
            let target = dir.join(rel.trim_start_matches('/'));
            if let Some(parent) = target.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| failed(format!("cannot create {}: {e}", parent.display())))?;
            }
            let mut content = Vec::new();
            let mut stream = self.pfs.get_file(name, reference, &f.path, 0, None).await?;
            while let Some(bytes) = stream.next().await {
                content.extend_from_slice(&bytes?);
            }
            tokio::fs::write(&target, content)
                .await
                .map_err(|e| failed(format!("cannot write {}: {e}", target.display())))?;
        }
        Ok(())
    }
}

fn kind(p: &PipelineRecord) -> &'static str {
    if p.spec.service.is_some() {
        "service"
    } else {
        "spout"
    }
}

/// How a run of a spout's or a service's user code ended.
pub(crate) enum Ended {
    /// The pipeline was stopped, updated or deleted (or, for a service, an
    /// input changed).
    Changed,
    /// User code exited (by itself, or killed), with its output.
    Exited(i32, Vec<u8>),
}

/// User code's whole output, when the run ended by its exit.
pub(crate) fn whole_output(ended: &Result<Ended>) -> Option<&[u8]> {
    match ended {
        Ok(Ended::Exited(_, log)) => Some(log),
        _ => None,
    }
}

pub(crate) async fn run(session: &mut SandboxSession, command: &Command) -> Result<Ended> {
    let mut log = Vec::new();
    let outcome = session.run(command, &mut log).await.map_err(failed)?;
    Ok(Ended::Exited(outcome.code.unwrap_or(-1), log))
}

/// The change a file of an archive makes: marker files and, with
/// `overwrite`, every file replace theirs; others are appended to.
fn change(entry: pach_storage::FileEntry, path: &str, overwrite: bool, marker_dir: &str) -> Change {
    let in_marker = path == marker_dir || path.starts_with(&format!("{marker_dir}/"));
    if overwrite || in_marker {
        Change::Put(entry)
    } else {
        Change::Append(entry)
    }
}

fn flatten(r: std::result::Result<Result<()>, tokio::task::JoinError>) -> Result<()> {
    r.map_err(failed)?
}

pub(crate) fn failed(e: impl std::fmt::Display) -> PpsError {
    PpsError::FailedPrecondition(e.to_string())
}

/// The last lines of user code's output, for a log line.
fn tail(log: &[u8]) -> String {
    let text = String::from_utf8_lossy(log);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}
