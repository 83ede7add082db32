//! The worker: claims tasks of any running job (see `tasks`), runs their
//! datums in the sandbox and records the results. Every pachd runs one with
//! `--worker-slots` tasks at a time (0: none), and `pachd worker` runs one
//! alone, on any host that reaches the metadata store and the bucket.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use pach_meta::Txn;
use pach_pfs::records::{encode, load, load_all};
use pach_storage::{Change, FileEntry, PutSession};
use pach_worker::{ReadAhead, Sandbox};
use tokio::task::JoinSet;

use crate::datum::Datum;
use crate::error::Result;
use crate::job::{DatumIo, DatumOutcome, JobContext};
use crate::pipeline::Pps;
use crate::records::*;
use crate::tasks::{LEASE, RENEW, RESTART_WAIT, TaskOutputs, now_ms, result_object};

/// Datum records written per metadata transaction (each may bring a cache
/// record: two operations, well under etcd's 1024).
const RECORD_BATCH: usize = 250;

/// How many datums ahead of the running one a worker reads inputs for.
const READ_AHEAD_DATUMS: usize = 8;

/// A task this worker holds, with the revisions that guard its claim.
struct Claim {
    task: TaskRecord,
    task_rev: u64,
    slot_rev: u64,
}

impl Claim {
    fn key(&self) -> String {
        task_key(&self.task.job, self.task.index)
    }
    fn slot_key(&self) -> String {
        slot_key(&self.task.job, self.task.slot)
    }
}

impl Pps {
    /// The sandbox user code runs in here.
    pub(crate) fn detect_sandbox(&self) -> std::result::Result<Sandbox, pach_worker::WorkerError> {
        // pachd keeps its scratch directory in its data directory, which
        // user code must not see (other pipelines' data, the metadata).
        let hidden = [self.scratch.clone()]
            .into_iter()
            .chain(self.scratch.parent().map(std::path::Path::to_path_buf));
        Ok(Sandbox::detect()?.hiding(hidden))
    }

    /// Runs tasks, `slots` at a time, until the process ends.
    pub async fn run_worker(self, slots: usize) {
        let sandbox = match self.detect_sandbox() {
            Ok(s) => Ok(Arc::new(s)),
            Err(e) => {
                tracing::error!("{e}; datums fail until this is fixed and the worker restarted");
                Err(e.to_string())
            }
        };
        let me = uuid::Uuid::new_v4().simple().to_string();
        tracing::info!(worker = %me, slots, "worker ready");
        let mut events = match self.pfs.meta().watch(TASKS).await {
            Ok(w) => w,
            Err(e) => {
                tracing::error!("worker cannot watch the metadata store: {e}");
                futures::stream::pending().boxed()
            }
        };
        let mut contexts: HashMap<String, Arc<JobContext>> = HashMap::new();
        let mut running: JoinSet<()> = JoinSet::new();
        loop {
            while running.len() < slots {
                match self.claim(&me).await {
                    Ok(Some(claim)) => {
                        let ctx = match contexts.get(&claim.task.job) {
                            Some(c) => Some(c.clone()),
                            None => match self.job_context(&claim.task.job, &sandbox).await {
                                Ok(Some(c)) => {
                                    contexts.insert(claim.task.job.clone(), c.clone());
                                    Some(c)
                                }
                                Ok(None) => None,
                                Err(e) => {
                                    tracing::warn!(job = %claim.task.job, "worker: {e}");
                                    None
                                }
                            },
                        };
                        // Without a context the job is over; its runner
                        // clears the task, and the claim just runs out.
                        let Some(ctx) = ctx else { break };
                        let this = self.clone();
                        running.spawn(async move {
                            let (job, index) = (claim.task.job.clone(), claim.task.index);
                            if let Err(e) = this.run_task(claim, ctx).await {
                                tracing::warn!(job = %job, task = index, "worker: {e}");
                            }
                        });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!("worker: {e}");
                        break;
                    }
                }
            }
            // Forget jobs whose tasks are gone once nothing of theirs runs.
            if let Ok(tasks) = self.pfs.meta().list(TASKS, None, 0).await {
                contexts.retain(|job, ctx| {
                    let prefix = tasks_prefix(job);
                    let live = Arc::strong_count(ctx) > 1
                        || tasks.iter().any(|kv| kv.key.starts_with(&prefix));
                    if !live {
                        let _ = std::fs::remove_dir_all(self.scratch.join(job));
                    }
                    live
                });
            }
            tokio::select! {
                _ = events.next() => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = tokio::time::sleep(RENEW) => {}
            }
        }
    }

    /// Claims a pending task (or one whose worker stopped renewing) with a
    /// free slot of its job, in one guarded transaction.
    async fn claim(&self, me: &str) -> Result<Option<Claim>> {
        let meta = self.pfs.meta();
        let now = now_ms();
        let mut slots_of: HashMap<String, HashMap<u32, (SlotRecord, u64)>> = HashMap::new();
        for (task, rev) in load_all::<TaskRecord>(&**meta, TASKS).await? {
            let open = task.state == TaskState::Pending
                || (task.state == TaskState::Claimed && task.expires_ms < now);
            if !open {
                continue;
            }
            if !slots_of.contains_key(&task.job) {
                let held = self.slots(&task.job).await?;
                slots_of.insert(task.job.clone(), held);
            }
            let held = &slots_of[&task.job];
            let free = (0..task.parallelism.max(1)).find_map(|k| match held.get(&k) {
                None => Some((k, 0)),
                Some((s, rev)) if s.expires_ms < now => Some((k, *rev)),
                Some(_) => None,
            });
            let Some((slot, slot_rev)) = free else {
                continue;
            };
            let expires_ms = now + LEASE.as_millis() as u64;
            let mut claimed = task.clone();
            claimed.state = TaskState::Claimed;
            claimed.worker = me.to_string();
            claimed.slot = slot;
            claimed.expires_ms = expires_ms;
            claimed.claims += 1;
            let seat = SlotRecord {
                worker: me.to_string(),
                task: task.index,
                expires_ms,
            };
            let tkey = task_key(&task.job, task.index);
            let skey = slot_key(&task.job, slot);
            let txn = Txn::new()
                .expect(&tkey, rev)
                .expect(&skey, slot_rev)
                .put(&tkey, encode(&claimed))
                .put(&skey, encode(&seat));
            if let Some(rev) = meta.commit(txn).await? {
                if claimed.claims > 1 {
                    tracing::info!(job = %task.job, task = task.index, previous = %task.worker, "task claimed again after its worker stopped");
                }
                return Ok(Some(Claim {
                    task: claimed,
                    task_rev: rev,
                    slot_rev: rev,
                }));
            }
            // Someone else was faster: look again.
            slots_of.remove(&task.job);
        }
        Ok(None)
    }

    /// The job's held slots by number, with their revisions.
    async fn slots(&self, job: &str) -> Result<HashMap<u32, (SlotRecord, u64)>> {
        let prefix = slots_prefix(job);
        let mut held = HashMap::new();
        for kv in self.pfs.meta().list(&prefix, None, 0).await? {
            let Some(k) = kv.key[prefix.len()..].parse::<u32>().ok() else {
                continue;
            };
            let slot: SlotRecord = pach_pfs::records::decode(&kv)?;
            held.insert(k, (slot, kv.mod_revision));
        }
        Ok(held)
    }

    /// What the worker needs to run a job's datums; `None` once the job is over.
    async fn job_context(
        &self,
        job_id: &str,
        sandbox: &std::result::Result<Arc<Sandbox>, String>,
    ) -> Result<Option<Arc<JobContext>>> {
        let meta = self.pfs.meta();
        let Some((job, _)) = load::<JobRecord>(&**meta, &job_key(job_id)).await? else {
            return Ok(None);
        };
        if job.state.is_terminal() {
            return Ok(None);
        }
        // The spec the job was planned with, even after an update.
        let pipeline = match self
            .pipeline_at(&job.pipeline, job.pipeline_version)
            .await?
        {
            Some(p) => p,
            None => self.inspect_pipeline(&job.pipeline).await?,
        };
        let commit = self
            .pfs
            .inspect_commit(&job.output_commit.repo, &job.output_commit.id, false)
            .await?;
        let inputs = self.load_inputs(&pipeline, &commit).await?;
        // A pipeline whose secrets cannot reach its sandbox fails its datums
        // with the reason, rather than leaving them unclaimable.
        let prepared = match self.resolve_secrets(&pipeline.spec).await {
            Ok(secrets) => match sandbox {
                Ok(s) if !secrets.mounts.is_empty() => {
                    let dir = self.scratch.join(job_id).join("secrets");
                    s.with_files(&dir, &secrets.mounts)
                        .map(|with| (secrets, Ok(Arc::new(with))))
                        .map_err(|e| format!("transform.secrets: {e}"))
                }
                other => Ok((secrets, other.clone())),
            },
            Err(e) => Err(format!("transform.secrets: {e}")),
        };
        let (secrets, sandbox) = match prepared {
            Ok(prepared) => prepared,
            Err(reason) => (Default::default(), Err(reason)),
        };
        let (memory, file_size) = crate::spec::enforced_limits(&pipeline.spec);
        let sandbox = sandbox.map(|s| {
            let s = (*s).clone().with_limits(memory, file_size);
            Arc::new(self.sandbox_with_gateway(s, pipeline.name(), None))
        });
        let ctx = JobContext::new(
            pipeline,
            job_id.to_string(),
            inputs.entries,
            sandbox,
            secrets,
        );
        Ok(Some(Arc::new(ctx)))
    }

    /// Answers the `restart datum` requests on the task's job that it has
    /// not answered yet, about its running datum (`id`, `inputs`): whether
    /// that datum matches every filter of a request (1.9's rule), in which
    /// case it is restarted (returns true).
    async fn answer_restarts(
        &self,
        task: &TaskRecord,
        id: &str,
        inputs: &[crate::datum::DatumInput],
        answered: &mut HashSet<String>,
    ) -> Result<bool> {
        let meta = &**self.pfs.meta();
        let prefix = restarts_prefix(&task.job);
        let requests = meta.list(&prefix, None, 0).await?;
        let mut restart = false;
        let mut txn = Txn::new();
        let mut wrote = false;
        for kv in &requests {
            let request_id = kv.key[prefix.len()..].to_string();
            if answered.contains(&request_id) {
                continue;
            }
            let r: RestartRequest = pach_pfs::records::decode(kv)?;
            answered.insert(request_id.clone());
            // One its maker left behind (pachd stopped while waiting).
            if now_ms().saturating_sub(r.created_ms) > RESTART_WAIT.as_millis() as u64 {
                continue;
            }
            let matched = r
                .filters
                .iter()
                .all(|f| crate::logs::names_datum(id, inputs, f));
            restart |= matched;
            wrote = true;
            txn = txn.put(
                restart_answer_key(&task.job, &request_id, task.index),
                encode(&RestartAnswer {
                    restarted: matched.then(|| id.to_string()),
                }),
            );
        }
        if wrote {
            meta.commit(txn).await?;
        }
        Ok(restart)
    }

    /// Runs a claimed task's datums one after another, renewing the claim and
    /// recording finished datums every [`RENEW`]. Stops as soon as the claim
    /// is lost (the job ended, or the lease ran out and another worker took
    /// the task): the running datum is killed with its sandbox.
    async fn run_task(&self, mut claim: Claim, ctx: Arc<JobContext>) -> Result<()> {
        let plan: Vec<Datum> = self.get_json(&claim.task.plan).await?;
        tracing::debug!(job = %claim.task.job, task = claim.task.index, datums = plan.len(), "task started");
        let retried = claim.task.claims > 1;
        // Every datum of the plan is counted again below (reused or run):
        // counts an earlier worker saved may include datums it never recorded.
        claim.task.counts = DatumCounts::default();
        claim.task.stats = ProcessStats::default();
        claim.task.failure = None;
        let mut batch: Vec<DatumOutcome> = Vec::new();
        let mut outputs: TaskOutputs = Vec::new();
        // One upload session for the task (small outputs of many datums
        // share packs, stored when the datums are recorded), and the inputs
        // of the next datums read while one runs.
        let content = self.pfs.content().clone();
        let mut io = DatumIo {
            out: content.session(),
            ahead: ReadAhead::default(),
            looked_up: HashMap::new(),
            restart: tokio::sync::watch::channel(0).1,
        };
        let mut next_read = 0;
        // `restart datum` requests this task answered already.
        let mut answered: HashSet<String> = HashSet::new();
        let mut recorded = tokio::time::Instant::now();
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + RENEW, RENEW);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for (i, d) in plan.iter().cloned().enumerate() {
            if retried && let Some(outcome) = self.recorded_outcome(&ctx, &d).await? {
                io.looked_up.remove(&d.id);
                count(&mut claim.task, &outcome.record);
                outputs.push((outcome.record.id, outcome.outputs));
                continue;
            }
            next_read = next_read.max(i);
            while next_read < plan.len() && next_read <= i + READ_AHEAD_DATUMS {
                let ahead = &plan[next_read];
                if !io.looked_up.contains_key(&ahead.id) {
                    let hit = self.cached(&ctx, ahead).await?;
                    io.looked_up.insert(ahead.id.clone(), hit);
                }
                let reused = matches!(io.looked_up.get(&ahead.id), Some(Some(_)));
                if !reused && !ctx.read_files(ahead).all(|e| io.ahead.want(&content, e)) {
                    break;
                }
                next_read += 1;
            }
            let outcome = {
                let (restart, restarts) = tokio::sync::watch::channel(0u32);
                io.restart = restarts;
                let (id, inputs) = (d.id.clone(), d.inputs.clone());
                let run = self.process_datum(&ctx, d, &mut io);
                tokio::pin!(run);
                loop {
                    tokio::select! {
                        o = &mut run => break o?,
                        // A long datum: keep the claim alive meanwhile, and
                        // answer `restart datum` requests about it.
                        _ = tick.tick() => {
                            if !self.renew(&mut claim, &mut Vec::new(), &mut outputs, false).await? {
                                return Ok(());
                            }
                            if self.answer_restarts(&claim.task, &id, &inputs, &mut answered).await? {
                                restart.send_modify(|n| *n += 1);
                            }
                        }
                    }
                }
            };
            count(&mut claim.task, &outcome.record);
            batch.push(outcome);
            if batch.len() >= RECORD_BATCH || recorded.elapsed() >= RENEW {
                if !self
                    .record(&mut io.out, &mut claim, &mut batch, &mut outputs, false)
                    .await?
                {
                    return Ok(());
                }
                recorded = tokio::time::Instant::now();
                tick.reset();
            }
        }
        // Every output is stored before the result object names it, and the
        // result object before the task record does.
        io.out.flush().await?;
        let mut all = outputs;
        all.extend(
            batch
                .iter()
                .map(|o| (o.record.id.clone(), o.outputs.clone())),
        );
        let key = result_object(&claim.task.job, claim.task.index);
        self.put_json(&key, &all).await?;
        tracing::debug!(job = %claim.task.job, task = claim.task.index, "task done");
        claim.task.result = Some(key);
        let mut rest = Vec::new();
        self.record(&mut io.out, &mut claim, &mut batch, &mut rest, true)
            .await?;
        Ok(())
    }

    /// Stores the outputs of the datums in `batch`, then records them and
    /// renews the claim (see [`Pps::renew`]).
    async fn record(
        &self,
        out: &mut PutSession,
        claim: &mut Claim,
        batch: &mut Vec<DatumOutcome>,
        outputs: &mut TaskOutputs,
        done: bool,
    ) -> Result<bool> {
        out.flush().await?;
        let sets = batch.iter_mut().filter_map(|o| o.changes.take()).collect();
        self.pfs.content().store_changes(sets).await?;
        self.renew(claim, batch, outputs, done).await
    }

    /// A datum this task's previous worker already recorded, as an outcome.
    async fn recorded_outcome(&self, ctx: &JobContext, d: &Datum) -> Result<Option<DatumOutcome>> {
        let key = datum_key(&ctx.job_id, &d.id);
        let Some((record, _)) = load::<DatumRecord>(&**self.pfs.meta(), &key).await? else {
            return Ok(None);
        };
        let outputs: Vec<FileEntry> = match &record.outputs {
            Some(hash) => self
                .pfs
                .content()
                .read_changes(hash)
                .await?
                .into_iter()
                .filter_map(|c| match c {
                    Change::Put(e) => Some(e),
                    _ => None,
                })
                .collect(),
            None => Vec::new(),
        };
        Ok(Some(DatumOutcome {
            record,
            outputs,
            cache: None,
            changes: None,
        }))
    }

    /// Records the finished datums of `batch` and renews the claim (or, with
    /// `done`, marks the task done and frees its slot) in one guarded
    /// transaction. False when the claim was lost: nothing was written.
    async fn renew(
        &self,
        claim: &mut Claim,
        batch: &mut Vec<DatumOutcome>,
        outputs: &mut TaskOutputs,
        done: bool,
    ) -> Result<bool> {
        let (tkey, skey) = (claim.key(), claim.slot_key());
        let mut task = claim.task.clone();
        task.expires_ms = now_ms() + LEASE.as_millis() as u64;
        if done {
            task.state = TaskState::Done;
        }
        let mut txn = Txn::new()
            .expect(&tkey, claim.task_rev)
            .expect(&skey, claim.slot_rev)
            .put(&tkey, encode(&task));
        txn = if done {
            txn.delete(&skey)
        } else {
            txn.put(
                &skey,
                encode(&SlotRecord {
                    worker: task.worker.clone(),
                    task: task.index,
                    expires_ms: task.expires_ms,
                }),
            )
        };
        for o in batch.iter() {
            txn = txn.put(datum_key(&task.job, &o.record.id), encode(&o.record));
            if let Some((key, c)) = &o.cache {
                txn = txn.put(cache_key(&task.pipeline, key), encode(c));
            }
        }
        let Some(rev) = self.pfs.meta().commit(txn).await? else {
            tracing::info!(job = %task.job, task = task.index, "claim lost; stopping the task");
            return Ok(false);
        };
        outputs.extend(batch.drain(..).map(|o| (o.record.id, o.outputs)));
        claim.task = task;
        claim.task_rev = rev;
        claim.slot_rev = rev;
        Ok(true)
    }
}

fn count(task: &mut TaskRecord, d: &DatumRecord) {
    task.stats.add(&d.stats);
    match d.state {
        DatumState::Success => task.counts.processed += 1,
        DatumState::Skipped => task.counts.skipped += 1,
        DatumState::Recovered => task.counts.recovered += 1,
        DatumState::Failed => {
            task.counts.failed += 1;
            task.failure
                .get_or_insert_with(|| (d.id.clone(), d.reason.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datum::Datum;

    fn pps(dir: &std::path::Path) -> Pps {
        let meta = Arc::new(pach_meta::RedbStore::open(&dir.join("m.redb")).unwrap());
        let store = Arc::new(object_store::memory::InMemory::new());
        let content = pach_storage::ContentStore::new(store, object_store::path::Path::from(""));
        Pps::new(pach_pfs::Pfs::new(meta, content), dir.join("scratch"))
    }

    fn job(id: &str) -> JobRecord {
        JobRecord {
            id: id.into(),
            pipeline: "p".into(),
            pipeline_version: 1,
            output_commit: pach_pfs::CommitName {
                repo: "p".into(),
                id: id.into(),
            },
            input_commits: vec![],
            state: JobState::Running,
            reason: String::new(),
            started_ns: 0,
            finished_ns: None,
            counts: DatumCounts::default(),
            stats: ProcessStats::default(),
            stats_commit: None,
            log: Vec::new(),
        }
    }

    fn datums(n: usize) -> Vec<Datum> {
        (0..n)
            .map(|i| Datum {
                id: format!("d{i}"),
                inputs: vec![],
            })
            .collect()
    }

    /// Sets a task's and its slot's leases to have run out.
    async fn expire(p: &Pps, job: &str, index: u32) {
        let meta = p.pfs.meta();
        let key = task_key(job, index);
        let (mut t, _) = load::<TaskRecord>(&**meta, &key).await.unwrap().unwrap();
        t.expires_ms = 1;
        let skey = slot_key(job, t.slot);
        let (mut s, _) = load::<SlotRecord>(&**meta, &skey).await.unwrap().unwrap();
        s.expires_ms = 1;
        meta.commit(Txn::new().put(&key, encode(&t)).put(&skey, encode(&s)))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn claims_respect_parallelism_and_expired_claims_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let p = pps(dir.path());
        p.publish_tasks(&job("j"), 2, None, datums(20))
            .await
            .unwrap();
        let tasks = load_all::<TaskRecord>(&**p.pfs.meta(), TASKS)
            .await
            .unwrap();
        assert_eq!(tasks.len(), 8, "four tasks per slot");
        assert_eq!(tasks.iter().map(|(t, _)| t.datums).sum::<u64>(), 20);
        // Publishing again (a restarted runner) keeps the tasks as they are.
        p.publish_tasks(&job("j"), 2, None, datums(20))
            .await
            .unwrap();
        assert_eq!(
            load_all::<TaskRecord>(&**p.pfs.meta(), TASKS)
                .await
                .unwrap()
                .len(),
            8
        );

        let a = p.claim("a").await.unwrap().expect("a free slot");
        let b = p.claim("b").await.unwrap().expect("the second slot");
        assert_ne!(a.task.slot, b.task.slot);
        assert_ne!(a.task.index, b.task.index);
        assert!(p.claim("c").await.unwrap().is_none(), "parallelism 2");

        // a stops renewing: c takes its task (and slot) over.
        expire(&p, "j", a.task.index).await;
        let c = p.claim("c").await.unwrap().expect("the expired claim");
        assert_eq!(c.task.index, a.task.index);
        assert_eq!(c.task.claims, 2);
        // a's next renewal fails, and writes nothing.
        let mut a = a;
        assert!(
            !p.renew(&mut a, &mut vec![], &mut vec![], false)
                .await
                .unwrap()
        );

        // Finishing frees the slot for the next task.
        let mut b = b;
        assert!(
            p.renew(&mut b, &mut vec![], &mut vec![], true)
                .await
                .unwrap()
        );
        let d = p.claim("d").await.unwrap().expect("b's slot is free");
        assert_eq!(d.task.slot, b.task.slot);

        p.clear_tasks("j").await.unwrap();
        assert!(
            load_all::<TaskRecord>(&**p.pfs.meta(), TASKS)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(p.claim("e").await.unwrap().is_none());
    }
}
