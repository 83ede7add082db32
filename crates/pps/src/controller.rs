//! The controller: watches pipelines and output commits and runs, for every
//! running pipeline, the jobs of its open output commits one after another,
//! oldest first (pipelines run concurrently). Cron inputs get a ticker that
//! writes a timestamp file into the pipeline's tick repo on schedule; git
//! inputs a poller that fetches their branch (`git`); spouts
//! get a runner that keeps their user code running (`spout`).
//!
//! With several pachd on one metadata store, only the holder of the
//! controller lease (`leader`) schedules; the others stand by and take over
//! when its lease runs out. Everything the controller acts on is in the
//! metadata store, so after a restart or a takeover it resumes where it
//! stopped: an open output commit is a job still to run, its published tasks
//! stay valid, and datums already processed are reused.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use pach_pfs::CommitRecord;

use crate::cron::Schedule;
use crate::error::Result;
use crate::pipeline::Pps;
use crate::records::{PIPELINES, PipelineState};

impl Pps {
    /// Runs the controller until the process ends.
    pub async fn run_controller(self) {
        let active: Arc<Mutex<HashSet<String>>> = Arc::default();
        let tickers: Arc<Mutex<HashSet<String>>> = Arc::default();
        let spouts: Arc<Mutex<HashSet<String>>> = Arc::default();
        let mut events = match (
            self.pfs.meta().watch("pfs/commits/").await,
            self.pfs.meta().watch(PIPELINES).await,
        ) {
            (Ok(a), Ok(b)) => futures::stream::select(a, b).boxed(),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!("controller cannot watch the metadata store: {e}");
                futures::stream::pending().boxed()
            }
        };
        let me = uuid::Uuid::new_v4().simple().to_string();
        let mut leading = false;
        loop {
            match crate::leader::lead(&**self.pfs.meta(), &me).await {
                Ok(now) => {
                    if now != leading {
                        tracing::info!(controller = %me, "pipeline controller {}", if now { "leads" } else { "stands by" });
                    }
                    leading = now;
                }
                Err(e) => {
                    tracing::warn!("controller lease: {e}");
                    leading = false;
                }
            }
            if leading && let Err(e) = self.schedule(&me, &active, &tickers, &spouts).await {
                tracing::warn!("controller: {e}");
            }
            // Any change wakes us; the timeout covers a lagging watcher.
            let _ = tokio::time::timeout(Duration::from_secs(1), events.next()).await;
        }
    }

    async fn schedule(
        &self,
        me: &str,
        active: &Arc<Mutex<HashSet<String>>>,
        tickers: &Arc<Mutex<HashSet<String>>>,
        spouts: &Arc<Mutex<HashSet<String>>>,
    ) -> Result<()> {
        for p in self.list_pipeline_records().await? {
            if p.state != PipelineState::Running {
                continue;
            }
            let name = p.name().to_string();
            if p.spec.spout.is_some() || p.spec.service.is_some() {
                // No jobs: user code runs on (`spout`, `service`).
                if spouts
                    .lock()
                    .map(|mut s| s.insert(name.clone()))
                    .unwrap_or(false)
                {
                    let (this, spouts, me) = (self.clone(), spouts.clone(), me.to_string());
                    tokio::spawn(async move {
                        if let Err(e) = this.run_spout(&me, &name).await {
                            tracing::warn!(pipeline = %name, "spout: {e}");
                        }
                        if let Ok(mut s) = spouts.lock() {
                            s.remove(&name);
                        }
                    });
                }
                continue;
            }
            if let Some(input) = &p.spec.input {
                for c in crate::cron::cron_inputs(input) {
                    let id = format!("{name}/{}", c.name);
                    if tickers
                        .lock()
                        .map(|mut t| t.insert(id.clone()))
                        .unwrap_or(false)
                    {
                        let this = self.clone();
                        let tickers = tickers.clone();
                        let c = c.clone();
                        let pipeline = name.clone();
                        let me = me.to_string();
                        tokio::spawn(async move {
                            if let Err(e) = this.run_ticker(&me, &pipeline, &c).await {
                                tracing::warn!(pipeline = %pipeline, "cron input '{}': {e}", c.name);
                            }
                            if let Ok(mut t) = tickers.lock() {
                                t.remove(&id);
                            }
                        });
                    }
                }
                for g in crate::git::git_inputs(input) {
                    let id = format!("{name}/git/{}", g.name);
                    if tickers
                        .lock()
                        .map(|mut t| t.insert(id.clone()))
                        .unwrap_or(false)
                    {
                        let (this, tickers, g) = (self.clone(), tickers.clone(), g.clone());
                        let (pipeline, me) = (name.clone(), me.to_string());
                        tokio::spawn(async move {
                            if let Err(e) = this.run_git_poller(&me, &pipeline, &g).await {
                                tracing::warn!(pipeline = %pipeline, "git input '{}': {e}", g.name);
                            }
                            if let Ok(mut t) = tickers.lock() {
                                t.remove(&id);
                            }
                        });
                    }
                }
            }
            if self
                .next_open_commit(&p.spec.pipeline.name, &p.spec.output_branch)
                .await?
                .is_none()
            {
                continue;
            }
            if !active
                .lock()
                .map(|mut a| a.insert(name.clone()))
                .unwrap_or(false)
            {
                continue;
            }
            let this = self.clone();
            let active = active.clone();
            tokio::spawn(async move {
                if let Err(e) = this.drain_pipeline(&name).await {
                    tracing::warn!(pipeline = %name, "job runner: {e}");
                }
                if let Ok(mut a) = active.lock() {
                    a.remove(&name);
                }
            });
        }
        Ok(())
    }

    /// Runs the pipeline's pending jobs until none is left or it is stopped.
    async fn drain_pipeline(&self, name: &str) -> Result<()> {
        loop {
            let p = self.inspect_pipeline(name).await?;
            if p.state != PipelineState::Running {
                return Ok(());
            }
            let Some(commit) = self.next_open_commit(name, &p.spec.output_branch).await? else {
                return Ok(());
            };
            self.run_job(&p, commit).await?;
        }
    }

    /// The oldest open commit of the output branch. Open output commits
    /// chain from the branch head through their parents, so this walks back
    /// from the head over the pending ones only, not the branch's history.
    async fn next_open_commit(&self, repo: &str, branch: &str) -> Result<Option<CommitRecord>> {
        let head = match self.pfs.inspect_branch(repo, branch).await {
            Ok(b) => b.record.head,
            Err(pach_pfs::PfsError::RepoNotFound { .. })
            | Err(pach_pfs::PfsError::BranchNotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(head) = head else { return Ok(None) };
        let mut oldest = self.pfs.inspect_commit(repo, &head, false).await?;
        if oldest.is_finished() {
            return Ok(None);
        }
        while let Some(parent) = oldest.parent.clone() {
            let p = self.pfs.inspect_commit(repo, &parent, false).await?;
            if p.is_finished() {
                break;
            }
            oldest = p;
        }
        Ok(Some(oldest))
    }

    /// Writes a tick file into the cron repo on schedule while the pipeline
    /// runs. With `overwrite`, each tick replaces the previous files.
    async fn run_ticker(
        &self,
        me: &str,
        pipeline: &str,
        cron: &crate::spec::CronInput,
    ) -> Result<()> {
        let schedule = Schedule::parse(&cron.spec)?;
        // As Pachyderm 1.9: the schedule goes on from the last tick, else
        // from `start`, else from now; ticks missed meanwhile are made up.
        let mut latest = match self.last_tick(&cron.repo).await? {
            Some(t) => t,
            None => cron.start_time().unwrap_or_else(SystemTime::now),
        };
        loop {
            let next = schedule.next_after(latest);
            if let Ok(wait) = next.duration_since(SystemTime::now()) {
                tokio::time::sleep(wait).await;
            }
            let p = match self.inspect_pipeline(pipeline).await {
                Ok(p) => p,
                Err(crate::PpsError::PipelineNotFound(_)) => return Ok(()),
                Err(e) => return Err(e),
            };
            // Only the leading controller ticks (another one took over if not).
            if p.state != PipelineState::Running
                || !crate::leader::lead(&**self.pfs.meta(), me).await?
            {
                return Ok(());
            }
            self.tick_at(pipeline, cron, next).await?;
            latest = next;
        }
    }

    /// The time of the newest tick in a cron repo (tick files are named by
    /// their RFC 3339 time, so the last name is the newest).
    async fn last_tick(&self, repo: &str) -> Result<Option<SystemTime>> {
        let files = match self.pfs.list_file(repo, "master", "/", false).await {
            Ok((_, files)) => files,
            Err(pach_pfs::PfsError::RepoNotFound { .. })
            | Err(pach_pfs::PfsError::BranchNotFound { .. }) => return Ok(None),
            Err(e) if e.kind() == pach_pfs::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let files: Vec<_> = files.collect().await;
        let mut last = None;
        for f in files {
            let f = f?;
            if let Ok(t) = humantime::parse_rfc3339_weak(f.path.trim_start_matches('/')) {
                last = last.max(Some(t));
            }
        }
        Ok(last)
    }

    /// Writes one tick: an empty file named by the time into the cron repo
    /// (replacing the previous ticks with `overwrite`), in one commit.
    /// Puts a tick into the cron input's repo, written as `pipeline` (whose
    /// cron repo it is).
    pub(crate) async fn tick(&self, pipeline: &str, cron: &crate::spec::CronInput) -> Result<()> {
        self.tick_at(pipeline, cron, SystemTime::now()).await
    }

    /// [`Pps::tick`] with the file named by `at`.
    async fn tick_at(
        &self,
        pipeline: &str,
        cron: &crate::spec::CronInput,
        at: SystemTime,
    ) -> Result<()> {
        let stamp = humantime::format_rfc3339_seconds(at).to_string();
        let mut session = self.pfs.content().session();
        let entry = session.put_bytes(format!("/{stamp}"), None, b"").await?;
        session.finish().await?;
        let mut changes = Vec::new();
        if cron.overwrite {
            changes.push(pach_storage::Change::Delete("/".into()));
        }
        changes.push(pach_storage::Change::Put(entry));
        self.pfs
            .for_pipeline(pipeline)
            .write_changes(&cron.repo, "master", changes)
            .await?;
        Ok(())
    }
}
