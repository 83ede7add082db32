//! Tasks: how a job's datums reach workers, wherever they run.
//!
//! The job's runner (in the pachd that leads the controller) splits the
//! planned datums into tasks, writes each task's datum list to the bucket and
//! publishes the tasks as records. Workers — the pachd's own, and `pachd
//! worker` processes on other hosts — claim a task together with one of the
//! job's `parallelism` slots in one guarded transaction, run its datums, and
//! renew the claim every [`RENEW`] in the same transaction that records the
//! datums finished so far. A worker that dies stops renewing; after [`LEASE`]
//! any worker claims the task again and reuses the datums already recorded,
//! so a datum is never lost and a finished one is not run again. A done task
//! names a bucket object with its datums' outputs, which the runner merges
//! into the output commit once every task is done.
//!
//! Clocks of the hosts are assumed to agree to well under a lease.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use object_store::ObjectStoreExt;
use pach_meta::Txn;
use pach_pfs::records::{encode, load_all};
use pach_storage::FileEntry;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::datum::Datum;
use crate::error::{PpsError, Result};
use crate::job::{RunEnd, job_reason_if_killed};
use crate::pipeline::Pps;
use crate::records::*;
use crate::spec::ChunkSpec;

/// How long a claim lasts without renewal.
pub(crate) const LEASE: Duration = Duration::from_secs(5);
/// How often a worker renews its claims.
pub(crate) const RENEW: Duration = Duration::from_secs(1);
/// How long `restart datum` waits for the workers running a job's tasks to
/// answer (they look for requests at each renewal).
pub(crate) const RESTART_WAIT: Duration = Duration::from_secs(4);
/// Tasks per slot: enough to even out slow and fast datums between workers.
const TASKS_PER_SLOT: usize = 4;
/// Tasks are published in one transaction; etcd allows 1024 operations.
const MAX_TASKS: usize = 512;

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Where the datums are cut into tasks: indexes from 0 to `datums.len()`,
/// increasing. As Pachyderm's `chunk_spec` asks (`number` datums per task,
/// or about `size_bytes` of input per task), else even shares, a few per
/// slot; never more than [`MAX_TASKS`] tasks (shares grow instead).
fn share_bounds(datums: &[Datum], parallelism: usize, chunks: Option<&ChunkSpec>) -> Vec<usize> {
    let n = datums.len();
    let even = |count: usize| -> Vec<usize> {
        // Sizes differ by one datum at most.
        let count = count.clamp(1, MAX_TASKS.min(n.max(1)));
        (0..=count).map(|i| i * n / count).collect()
    };
    match chunks {
        Some(c) if c.number > 0 => even(n.div_ceil(c.number as usize)),
        Some(c) if c.size_bytes > 0 => {
            let target = c.size_bytes as u64;
            let total: u64 = datums.iter().map(datum_bytes).sum();
            if total.div_ceil(target) > MAX_TASKS as u64 {
                return even(MAX_TASKS);
            }
            let mut bounds = vec![0];
            let mut filled = 0u64;
            for (i, d) in datums.iter().enumerate() {
                filled += datum_bytes(d);
                if filled >= target && i + 1 < n {
                    bounds.push(i + 1);
                    filled = 0;
                }
            }
            bounds.push(n);
            bounds
        }
        _ => even(n.min(parallelism * TASKS_PER_SLOT)),
    }
}

fn datum_bytes(d: &Datum) -> u64 {
    d.inputs.iter().flat_map(|i| &i.files).map(|f| f.size).sum()
}

/// The bucket object of a task's datums.
fn plan_object(job: &str, index: u32) -> String {
    format!("tasks/{job}/{index:06}.plan")
}

/// The bucket object of a done task's outputs.
pub(crate) fn result_object(job: &str, index: u32) -> String {
    format!("tasks/{job}/{index:06}.out")
}

/// Outputs of a task: each datum's id and output files.
pub(crate) type TaskOutputs = Vec<(String, Vec<FileEntry>)>;

impl Pps {
    /// Publishes a job's datums as tasks, unless an earlier runner of the
    /// same job (before a restart or a takeover) already did: the plan is
    /// deterministic, so its tasks and their progress stay valid.
    pub(crate) async fn publish_tasks(
        &self,
        job: &JobRecord,
        parallelism: usize,
        chunks: Option<&ChunkSpec>,
        datums: Vec<Datum>,
    ) -> Result<()> {
        let meta = self.pfs.meta();
        if !meta.list(&tasks_prefix(&job.id), None, 1).await?.is_empty() || datums.is_empty() {
            return Ok(());
        }
        let parallelism = parallelism.max(1);
        let bounds = share_bounds(&datums, parallelism, chunks);
        let mut txn = Txn::new();
        for (index, w) in bounds.windows(2).enumerate() {
            let share = &datums[w[0]..w[1]];
            let index = index as u32;
            let plan = plan_object(&job.id, index);
            self.put_json(&plan, &share).await?;
            let task = TaskRecord {
                job: job.id.clone(),
                pipeline: job.pipeline.clone(),
                index,
                parallelism: parallelism as u32,
                plan,
                datums: share.len() as u64,
                state: TaskState::Pending,
                worker: String::new(),
                slot: 0,
                expires_ms: 0,
                claims: 0,
                counts: DatumCounts::default(),
                stats: ProcessStats::default(),
                failure: None,
                result: None,
            };
            let key = task_key(&job.id, index);
            txn = txn.expect(&key, 0).put(key, encode(&task));
        }
        meta.commit(txn).await?;
        Ok(())
    }

    /// Waits until every task of the job is done, keeping the job's counts
    /// current, and merges their outputs. Ends early when the job is stopped
    /// or deleted.
    pub(crate) async fn await_tasks(&self, job: &mut JobRecord) -> Result<RunEnd> {
        let meta = self.pfs.meta().clone();
        let prefix = tasks_prefix(&job.id);
        let mut changes = meta.watch(&prefix).await?;
        loop {
            if job_reason_if_killed(&*meta, &job.id).await.is_some() {
                return Ok(RunEnd::Killed);
            }
            let tasks = load_all::<TaskRecord>(&*meta, &prefix).await?;
            let mut counts = DatumCounts {
                total: job.counts.total,
                ..Default::default()
            };
            let mut stats = ProcessStats::default();
            for (t, _) in &tasks {
                stats.add(&t.stats);
                counts.processed += t.counts.processed;
                counts.skipped += t.counts.skipped;
                counts.failed += t.counts.failed;
                counts.recovered += t.counts.recovered;
            }
            if counts != job.counts || stats != job.stats {
                job.counts = counts;
                job.stats = stats;
                self.save_job(job).await?;
            }
            if tasks.iter().all(|(t, _)| t.state == TaskState::Done) {
                let failure = tasks.iter().find_map(|(t, _)| t.failure.clone());
                if let Some((datum, reason)) = failure {
                    return Ok(RunEnd::Failed(format!(
                        "{} of {} datums failed; first: datum {datum}: {reason}; `pachctl logs --job {} --datum {datum}` shows its logs",
                        job.counts.failed, job.counts.total, job.id
                    )));
                }
                let mut outputs = Vec::new();
                for (t, _) in &tasks {
                    let key = t.result.clone().unwrap_or_default();
                    outputs.extend(self.get_json::<TaskOutputs>(&key).await?);
                }
                return Ok(RunEnd::Done(outputs));
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), changes.next()).await;
        }
    }

    /// Removes a job's tasks, slots and their bucket objects. Workers still
    /// running one of them lose their claim at the next renewal and stop.
    pub(crate) async fn clear_tasks(&self, job: &str) -> Result<()> {
        self.pfs
            .meta()
            .commit(
                Txn::new()
                    .delete_prefix(tasks_prefix(job))
                    .delete_prefix(slots_prefix(job))
                    .delete_prefix(restarts_prefix(job))
                    .delete_prefix(restart_answers_job_prefix(job)),
            )
            .await?;
        let content = self.pfs.content();
        let prefix = content.prefix().clone().join("tasks").join(job);
        let objects: Vec<_> = content
            .object_store()
            .list(Some(&prefix))
            .filter_map(|m| async move { m.ok().map(|m| m.location) })
            .collect()
            .await;
        for path in objects {
            let _ = content.object_store().delete(&path).await;
        }
        Ok(())
    }

    pub(crate) async fn put_json<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        let content = self.pfs.content();
        let bytes = serde_json::to_vec(value)
            .map_err(|e| PpsError::FailedPrecondition(format!("encoding '{key}': {e}")))?;
        content
            .object_store()
            .put(&content.prefix().clone().join_path(key), bytes.into())
            .await
            .map_err(|source| pach_storage::StorageError::ObjectStore {
                op: "put",
                key: key.to_string(),
                source,
            })?;
        Ok(())
    }

    pub(crate) async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        let content = self.pfs.content();
        let failed = |source| pach_storage::StorageError::ObjectStore {
            op: "get",
            key: key.to_string(),
            source,
        };
        let bytes = content
            .object_store()
            .get(&content.prefix().clone().join_path(key))
            .await
            .map_err(failed)?
            .bytes()
            .await
            .map_err(failed)?;
        serde_json::from_slice(&bytes).map_err(|e| {
            PpsError::FailedPrecondition(format!("task object '{key}' is unreadable: {e}"))
        })
    }
}

/// `Path::join` for a key of several components.
trait JoinPath {
    fn join_path(self, key: &str) -> object_store::path::Path;
}

impl JoinPath for object_store::path::Path {
    fn join_path(self, key: &str) -> object_store::path::Path {
        key.split('/')
            .filter(|p| !p.is_empty())
            .fold(self, |p, part| p.join(part))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datum::{DatumInput, InputFile};

    fn datums(sizes: &[u64]) -> Vec<Datum> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, size)| Datum {
                id: format!("d{i}"),
                inputs: vec![DatumInput {
                    name: "in".into(),
                    repo: "in".into(),
                    branch: "master".into(),
                    glob_path: format!("/{i}"),
                    files: vec![InputFile {
                        path: format!("/{i}"),
                        hash: String::new(),
                        size: *size,
                    }],
                    lazy: false,
                    empty_files: false,
                }],
            })
            .collect()
    }

    #[test]
    fn chunk_spec_cuts_tasks() {
        let ten = datums(&[1; 10]);
        // Default: a few even shares per slot.
        assert_eq!(share_bounds(&ten, 2, None), [0, 1, 2, 3, 5, 6, 7, 8, 10]);
        // number: that many datums per task, the last one shorter.
        let three = ChunkSpec {
            number: 3,
            size_bytes: 0,
        };
        assert_eq!(share_bounds(&ten, 1, Some(&three)).len(), 5);
        let one = ChunkSpec {
            number: 1,
            size_bytes: 0,
        };
        assert_eq!(
            share_bounds(&ten, 1, Some(&one)),
            (0..=10).collect::<Vec<_>>()
        );
        // size_bytes: datums gathered until their inputs reach the size.
        let sized = datums(&[5, 5, 10, 1, 1, 1, 20]);
        let ten_bytes = ChunkSpec {
            number: 0,
            size_bytes: 10,
        };
        assert_eq!(share_bounds(&sized, 1, Some(&ten_bytes)), [0, 2, 3, 7]);
        // Never more than MAX_TASKS tasks.
        let many = datums(&vec![1; MAX_TASKS * 3]);
        assert_eq!(share_bounds(&many, 1, Some(&one)).len(), MAX_TASKS + 1);
    }
}
