//! Logs of pipelines, jobs and datums, as Pachyderm 1.9's `GetLogs` serves
//! them: log messages tagged with their pipeline, job, datum and input
//! files, marked `user` when user code wrote them and `master` when the
//! job's runner did.
//!
//! Nothing is written for a log line while a datum runs beyond what user
//! code prints (one bucket object per datum that ran, as before); the lines
//! saying when a datum started and how it ended are made from its record
//! when logs are read, and the runner's few lines per job live in the job
//! record. So logs cost datums nothing more than their own output. Spouts'
//! and services' user code, which runs outside jobs, has its lines kept in
//! a record of its pipeline (`runlog`), sent after its jobs' (it has none).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use base64::Engine;
use futures::stream::BoxStream;
use serde_json::{Value, json};

use crate::datum::DatumInput;
use crate::error::{PpsError, Result};
use crate::pipeline::Pps;
use crate::records::{DatumRecord, DatumState, JobRecord};

/// An input file a log line is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    pub path: String,
    /// The file's content hash (raw bytes).
    pub hash: Vec<u8>,
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogMessage {
    pub pipeline: String,
    pub job: String,
    pub worker: String,
    pub datum: String,
    /// Written by the job's runner (not about one datum).
    pub master: bool,
    pub data: Vec<LogFile>,
    /// Written by user code (otherwise by pachd about the datum).
    pub user: bool,
    pub ts_ns: i64,
    pub message: String,
}

impl LogMessage {
    /// The line as Pachyderm writes it into a stats commit's `logs` files:
    /// protobuf's JSON of `pps.LogMessage` (default values left out).
    pub fn to_json_line(&self) -> String {
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        for (k, v) in [
            ("pipelineName", &self.pipeline),
            ("jobId", &self.job),
            ("workerId", &self.worker),
            ("datumId", &self.datum),
        ] {
            if !v.is_empty() {
                put(k, json!(v));
            }
        }
        if self.master {
            put("master", json!(true));
        }
        if !self.data.is_empty() {
            let data: Vec<Value> = self
                .data
                .iter()
                .map(|f| {
                    json!({
                        "path": f.path,
                        "hash": base64::engine::general_purpose::STANDARD.encode(&f.hash),
                    })
                })
                .collect();
            put("data", Value::Array(data));
        }
        if self.user {
            put("user", json!(true));
        }
        put("ts", json!(crate::stats::rfc3339(self.ts_ns)));
        if !self.message.is_empty() {
            put("message", json!(self.message));
        }
        Value::Object(m).to_string()
    }
}

/// Which logs to read (Pachyderm's `GetLogsRequest`).
#[derive(Debug, Clone, Default)]
pub struct LogsRequest {
    pub pipeline: Option<String>,
    pub job: Option<String>,
    pub datum: Option<String>,
    /// Only datums matching one of these (an input path or hash, or the
    /// datum id); all when empty.
    pub data_filters: Vec<String>,
    /// The runners' lines instead of the datums'.
    pub master: bool,
    /// Keep sending lines as they come (until the job ends, for a job).
    pub follow: bool,
    /// Only the last `tail` lines of what is there already (0: all).
    pub tail: u64,
}

/// Whether `filter` names datum `d`: its id, or the path (with or without
/// the leading '/') or hash (hex, or base64 as 1.9 also takes) of one of its
/// input files.
pub(crate) fn datum_matches(d: &DatumRecord, filter: &str) -> bool {
    names_datum(&d.id, &d.inputs, filter)
}

/// [`datum_matches`] for a datum's id and inputs.
pub(crate) fn names_datum(id: &str, inputs: &[DatumInput], filter: &str) -> bool {
    if id == filter {
        return true;
    }
    let path = if filter.starts_with('/') {
        filter.to_string()
    } else {
        format!("/{filter}")
    };
    inputs.iter().flat_map(|i| &i.files).any(|f| {
        f.path == path
            || f.hash == filter
            || hex::decode(&f.hash)
                .is_ok_and(|h| base64::engine::general_purpose::STANDARD.encode(h) == filter)
    })
}

fn datum_files(d: &DatumRecord) -> Vec<LogFile> {
    d.inputs
        .iter()
        .flat_map(|i| &i.files)
        .map(|f| LogFile {
            path: f.path.clone(),
            hash: hex::decode(&f.hash).unwrap_or_default(),
        })
        .collect()
}

/// A datum's lines: when it started, what user code printed (`output`),
/// and how it ended.
pub(crate) fn datum_lines(job: &JobRecord, d: &DatumRecord, output: &[u8]) -> Vec<LogMessage> {
    let base = LogMessage {
        pipeline: job.pipeline.clone(),
        job: job.id.clone(),
        datum: d.id.clone(),
        data: datum_files(d),
        ..Default::default()
    };
    let line = |ts_ns: i64, user: bool, message: String| LogMessage {
        ts_ns,
        user,
        message,
        ..base.clone()
    };
    if d.state == DatumState::Skipped {
        let from = d.source_job.as_deref().unwrap_or("an earlier job");
        return vec![line(
            d.started_ns,
            false,
            format!("skipping datum: its inputs were processed by job {from}"),
        )];
    }
    let mut out = vec![line(d.started_ns, false, "started processing datum".into())];
    for l in String::from_utf8_lossy(output).lines() {
        out.push(line(d.started_ns, !is_runner_line(l), l.to_string()));
    }
    let end = match d.state {
        DatumState::Success => "finished processing datum".to_string(),
        DatumState::Recovered => format!(
            "failed processing datum ({}); err_cmd recovered it",
            d.reason
        ),
        DatumState::Failed => format!("failed processing datum: {}", d.reason),
        DatumState::Skipped => String::new(),
    };
    out.push(line(d.finished_ns, false, end));
    out
}

/// Whether a line of a datum's log is one the runner wrote between tries
/// ("datum try 1 of 3 failed: exit code 2", or "... restarted: ..." after
/// `restart datum`) rather than user code.
fn is_runner_line(l: &str) -> bool {
    let Some(rest) = l.strip_prefix("datum try ") else {
        return false;
    };
    let mut words = rest.splitn(4, ' ');
    matches!(
        (words.next(), words.next(), words.next(), words.next()),
        (Some(n), Some("of"), Some(m), Some(tail))
            if n.parse::<u64>().is_ok()
                && m.parse::<u64>().is_ok()
                && (tail.starts_with("failed: ") || tail.starts_with("restarted: "))
    )
}

/// The runner's lines of a job.
pub(crate) fn master_lines(job: &JobRecord) -> Vec<LogMessage> {
    job.log
        .iter()
        .map(|l| LogMessage {
            pipeline: job.pipeline.clone(),
            job: job.id.clone(),
            master: true,
            ts_ns: l.ts_ns,
            message: l.message.clone(),
            ..Default::default()
        })
        .collect()
}

impl Pps {
    /// The log lines `r` asks for, oldest job first; with `follow`, the
    /// stream stays open and sends lines as datums and jobs end.
    pub async fn logs(&self, r: LogsRequest) -> Result<BoxStream<'static, Result<LogMessage>>> {
        if r.pipeline.is_none() && r.job.is_none() {
            return Err(PpsError::InvalidArgument(
                "name a pipeline (--pipeline NAME) or a job (--job ID) to read logs of".into(),
            ));
        }
        if let Some(p) = &r.pipeline {
            self.inspect_pipeline(p).await?;
        }
        if let Some(j) = &r.job {
            let job = self.inspect_job(j, false).await?;
            if let Some(p) = &r.pipeline
                && *p != job.pipeline
            {
                return Err(PpsError::InvalidArgument(format!(
                    "job {j} belongs to pipeline '{}', not '{p}'",
                    job.pipeline
                )));
            }
        }
        let pps = self.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            if let Err(e) = pps.send_logs(&r, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })))
    }

    async fn send_logs(
        &self,
        r: &LogsRequest,
        tx: &tokio::sync::mpsc::Sender<Result<LogMessage>>,
    ) -> Result<()> {
        // What was sent: datums by (job, datum), runner lines by (job, count).
        let mut sent: HashSet<(String, String)> = HashSet::new();
        let mut master_sent: HashMap<String, usize> = HashMap::new();
        // Spouts' and services' user code's lines (`runlog`) up to this time.
        let mut run_sent: i64 = i64::MIN;
        let run_lines = match &r.pipeline {
            Some(p) if r.job.is_none() && r.datum.is_none() && r.data_filters.is_empty() => {
                Some(p.clone())
            }
            _ => None,
        };
        let mut first = true;
        loop {
            let mut jobs = match &r.job {
                Some(j) => vec![self.inspect_job(j, false).await?],
                None => match self.list_job(r.pipeline.as_deref()).await {
                    Ok(j) => j,
                    // The pipeline went away while we followed it.
                    Err(PpsError::PipelineNotFound(_)) if !first => return Ok(()),
                    Err(e) => return Err(e),
                },
            };
            jobs.reverse();
            let mut batch: Vec<LogMessage> = Vec::new();
            let mut all_done = true;
            for job in &jobs {
                all_done &= job.state.is_terminal();
                if r.master {
                    let lines = master_lines(job);
                    let from = master_sent.get(&job.id).copied().unwrap_or(0);
                    if lines.len() > from {
                        batch.extend(lines[from..].iter().cloned());
                        master_sent.insert(job.id.clone(), lines.len());
                    }
                    continue;
                }
                let mut datums = match self.list_datum(&job.id).await {
                    Ok(d) => d,
                    // Deleted meanwhile.
                    Err(PpsError::JobNotFound(_)) => continue,
                    Err(e) => return Err(e),
                };
                datums.sort_by_key(|d| d.started_ns);
                for d in datums {
                    if r.datum.as_ref().is_some_and(|want| *want != d.id) {
                        continue;
                    }
                    if !r.data_filters.is_empty()
                        && !r.data_filters.iter().any(|f| datum_matches(&d, f))
                    {
                        continue;
                    }
                    if !sent.insert((job.id.clone(), d.id.clone())) {
                        continue;
                    }
                    let output = self.datum_logs(&d).await?;
                    batch.extend(datum_lines(job, &d, &output));
                }
            }
            if let Some(pipeline) = &run_lines {
                for line in self.run_log(pipeline).await? {
                    if line.ts_ns > run_sent && line.master == r.master {
                        run_sent = line.ts_ns;
                        batch.push(LogMessage {
                            pipeline: pipeline.clone(),
                            user: !line.master,
                            master: line.master,
                            ts_ns: line.ts_ns,
                            message: line.message,
                            ..Default::default()
                        });
                    }
                }
            }
            if first && r.tail > 0 {
                batch.drain(..tail_start(&batch, r.tail, r.master));
            }
            first = false;
            for line in batch {
                if tx.send(Ok(line)).await.is_err() {
                    return Ok(());
                }
            }
            let job_done = r.job.is_some() && all_done;
            if !r.follow || job_done {
                return Ok(());
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = tx.closed() => return Ok(()),
            }
        }
    }
}

/// The index of `batch` from which its last `tail` lines of the kind asked
/// for begin: runner lines with `master`, else user code's lines (the lines
/// pachd adds about each datum, which only `--raw` shows, come along but do
/// not count, so `--tail N` prints N lines).
fn tail_start(batch: &[LogMessage], tail: u64, master: bool) -> usize {
    let mut counted = 0;
    for (i, line) in batch.iter().enumerate().rev() {
        if (master && line.master) || (!master && line.user) {
            counted += 1;
            if counted == tail {
                return i;
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datum::{DatumInput, InputFile};
    use crate::records::JobState;

    fn datum(state: DatumState) -> DatumRecord {
        DatumRecord {
            id: "d1".into(),
            job: "j1".into(),
            state,
            inputs: vec![DatumInput {
                name: "in".into(),
                repo: "in".into(),
                branch: "master".into(),
                glob_path: "/a".into(),
                files: vec![InputFile {
                    path: "/a".into(),
                    hash: "00ff".into(),
                    size: 1,
                }],
                lazy: false,
                empty_files: false,
            }],
            outputs: None,
            output_files: 0,
            tries: 2,
            started_ns: 1_000_000_000,
            finished_ns: 2_000_000_000,
            log: None,
            reason: "exit code 3".into(),
            stats: Default::default(),
            source_job: None,
        }
    }

    #[test]
    fn datum_lines_frame_user_output_with_the_runners_own() {
        let job = JobRecord {
            id: "j1".into(),
            pipeline: "p".into(),
            pipeline_version: 1,
            output_commit: pach_pfs::CommitName {
                repo: "p".into(),
                id: "j1".into(),
            },
            input_commits: vec![],
            state: JobState::Failure,
            reason: String::new(),
            started_ns: 0,
            finished_ns: None,
            counts: Default::default(),
            stats: Default::default(),
            stats_commit: None,
            log: vec![],
        };
        let d = datum(DatumState::Failed);
        let lines = datum_lines(
            &job,
            &d,
            b"hello\ndatum try 1 of 2 failed: exit code 3\ndatum try one\n",
        );
        let shown: Vec<(bool, &str)> = lines.iter().map(|l| (l.user, l.message.as_str())).collect();
        assert_eq!(
            shown,
            [
                (false, "started processing datum"),
                (true, "hello"),
                (false, "datum try 1 of 2 failed: exit code 3"),
                (true, "datum try one"),
                (false, "failed processing datum: exit code 3"),
            ]
        );
        assert_eq!(lines[4].ts_ns, 2_000_000_000);
        assert_eq!(lines[1].data[0].hash, [0, 255]);
        let json: serde_json::Value = serde_json::from_str(&lines[1].to_json_line()).unwrap();
        assert_eq!(json["pipelineName"], "p");
        assert_eq!(json["user"], true);
        assert_eq!(json["data"][0]["hash"], "AP8=");
        assert_eq!(json["ts"], "1970-01-01T00:00:01.000000000Z");
        assert!(datum_matches(&d, "a") && datum_matches(&d, "/a") && datum_matches(&d, "d1"));
        assert!(datum_matches(&d, "00ff") && !datum_matches(&d, "/b"));
        let skipped = datum_lines(&job, &datum(DatumState::Skipped), b"");
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].message.starts_with("skipping datum"));
    }
}
