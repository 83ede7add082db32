//! The output of spouts' and services' user code, which runs on with no job
//! or datum to keep it in: the runner reads it while it is written (every
//! [`POLL`]) and keeps the last lines, at most [`KEPT_BYTES`] of them, in
//! one record per pipeline (`pps/runlogs/<pipeline>`), which `logs
//! --pipeline` reads and follows, with the runner's own lines about it (it
//! exited, it is started again) for `logs --master`. Any pachd serves them, whichever one runs
//! the user code, and they outlive its restarts (Pachyderm 1.9 shows the
//! live container's output only); deleting the pipeline deletes them.
//!
//! Invariant: a record is written only while its pipeline's record exists
//! (both in one guarded transaction), so a deleted pipeline leaves none.

use std::path::PathBuf;
use std::time::Duration;

use pach_meta::Txn;
use pach_pfs::records::{encode, load};
use serde::{Deserialize, Serialize};

use crate::error::{PpsError, Result};
use crate::pipeline::Pps;
use crate::records::{PipelineRecord, pipeline_key, runlog_key};

/// How often the runner reads what user code wrote.
const POLL: Duration = Duration::from_millis(500);
/// How much of a pipeline's output is kept: its last lines up to this size.
const KEPT_BYTES: usize = 256 << 10;
/// A longer line is cut (the record holds whole lines only).
const MAX_LINE: usize = 16 << 10;
/// Attempts of a write that conflicts with another.
const ATTEMPTS: usize = 20;

/// The last lines user code of a spout or a service printed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunLogRecord {
    pub lines: Vec<RunLine>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunLine {
    /// When the runner read it; strictly increasing within a record.
    pub ts_ns: i64,
    pub message: String,
    /// Said by the runner (user code exited, is started again), not by
    /// user code: what `logs --master` prints.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub master: bool,
}

impl RunLogRecord {
    /// Appends `lines`, stamped now (after the last line), and drops the
    /// oldest lines beyond [`KEPT_BYTES`].
    fn append(&mut self, lines: Vec<String>, now_ns: i64, master: bool) {
        let first_ts = now_ns.max(self.lines.last().map_or(0, |l| l.ts_ns + 1));
        for (ts_ns, message) in (first_ts..).zip(lines) {
            self.lines.push(RunLine {
                ts_ns,
                message,
                master,
            });
        }
        let mut size: usize = self.lines.iter().map(|l| l.message.len()).sum();
        let mut first = 0;
        while size > KEPT_BYTES && first < self.lines.len() {
            size -= self.lines[first].message.len();
            first += 1;
        }
        self.lines.drain(..first);
    }
}

/// Reads a running command's log file into lines, as it grows.
pub(crate) struct LogTail {
    file: PathBuf,
    /// Bytes of the file read so far.
    offset: u64,
    /// The start of a line not ended yet.
    partial: Vec<u8>,
}

impl LogTail {
    /// Follows `file`, a `SandboxSession::log_file`.
    pub(crate) fn new(file: PathBuf) -> Self {
        LogTail {
            file,
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// The lines ended in `bytes` (read after what came before).
    fn lines_of(&mut self, bytes: &[u8]) -> Vec<String> {
        self.partial.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            lines.push(line_text(&line[..end]));
        }
        if self.partial.len() > MAX_LINE {
            lines.push(line_text(&std::mem::take(&mut self.partial)));
        }
        lines
    }

    /// The lines written since the last call.
    async fn poll(&mut self) -> Vec<String> {
        match pach_worker::read_running_log(&self.file, self.offset).await {
            Ok(bytes) => {
                self.offset += bytes.len() as u64;
                self.lines_of(&bytes)
            }
            Err(_) => Vec::new(),
        }
    }

    /// The last lines, once the run is over: from `log`, the whole output
    /// the run returned when it has it (the file is gone then), else from
    /// the file; with the unended last line.
    async fn finish(&mut self, log: Option<&[u8]>) -> Vec<String> {
        let mut lines = match log {
            // A log of MAX_LOG bytes may be a tail that starts elsewhere
            // than the file did: the lines past the last poll are lost then.
            Some(log) if (log.len() as u64) < pach_worker::MAX_LOG => {
                let rest = log.get(self.offset as usize..).unwrap_or_default();
                self.offset += rest.len() as u64;
                self.lines_of(rest)
            }
            Some(_) => Vec::new(),
            None => self.poll().await,
        };
        if !self.partial.is_empty() {
            lines.push(line_text(&std::mem::take(&mut self.partial)));
        }
        lines
    }
}

fn line_text(bytes: &[u8]) -> String {
    let bytes = &bytes[..bytes.len().min(MAX_LINE)];
    String::from_utf8_lossy(bytes)
        .trim_end_matches('\r')
        .to_string()
}

impl Pps {
    /// Keeps what user code of `p` writes to `tail`'s file in its record,
    /// every [`POLL`]; runs until dropped.
    pub(crate) async fn keep_user_log(&self, p: &PipelineRecord, tail: &mut LogTail) {
        loop {
            tokio::time::sleep(POLL).await;
            let lines = tail.poll().await;
            self.append_run_log(p.name(), lines, false).await;
        }
    }

    /// Keeps the last lines of a run that ended (`log`: its whole output,
    /// when the run returned it).
    pub(crate) async fn finish_user_log(
        &self,
        p: &PipelineRecord,
        tail: &mut LogTail,
        log: Option<&[u8]>,
    ) {
        let lines = tail.finish(log).await;
        self.append_run_log(p.name(), lines, false).await;
    }

    /// Keeps a line of the runner's about `name`'s user code.
    pub(crate) async fn note_run(&self, name: &str, message: String) {
        self.append_run_log(name, vec![message], true).await;
    }

    /// Appends `lines` to the record of `name`; a failure is logged, never
    /// stops user code.
    async fn append_run_log(&self, name: &str, lines: Vec<String>, master: bool) {
        if lines.is_empty() {
            return;
        }
        if let Err(e) = self.try_append_run_log(name, lines, master).await {
            tracing::warn!(pipeline = %name, "cannot keep user code's output: {e}");
        }
    }

    async fn try_append_run_log(&self, name: &str, lines: Vec<String>, master: bool) -> Result<()> {
        let meta = self.pfs.meta();
        for _ in 0..ATTEMPTS {
            let Some((_, pipeline_rev)) =
                load::<PipelineRecord>(&**meta, &pipeline_key(name)).await?
            else {
                return Ok(());
            };
            let (mut record, rev) = load::<RunLogRecord>(&**meta, &runlog_key(name))
                .await?
                .unwrap_or_default();
            record.append(lines.clone(), crate::now_ns(), master);
            let txn = Txn::new()
                .expect(pipeline_key(name), pipeline_rev)
                .expect(runlog_key(name), rev)
                .put(runlog_key(name), encode(&record));
            if meta.commit(txn).await?.is_some() {
                return Ok(());
            }
        }
        Err(PpsError::FailedPrecondition(format!(
            "the log record of pipeline '{name}' kept changing"
        )))
    }

    /// The kept lines of `name`'s user code (none when it has none).
    pub(crate) async fn run_log(&self, name: &str) -> Result<Vec<RunLine>> {
        Ok(load::<RunLogRecord>(&**self.pfs.meta(), &runlog_key(name))
            .await?
            .map(|(r, _)| r.lines)
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_where_they_end() {
        let mut t = LogTail::new(PathBuf::from("/nonexistent"));
        assert_eq!(t.lines_of(b"one\ntw"), ["one"]);
        assert_eq!(t.lines_of(b"o\r\n\nthree"), ["two", ""]);
        assert_eq!(t.partial, b"three");
        let long = vec![b'x'; MAX_LINE + 1];
        assert_eq!(t.lines_of(&long)[0].len(), MAX_LINE);
        assert!(t.partial.is_empty());
    }

    #[tokio::test]
    async fn the_end_of_a_run_comes_from_its_whole_output() {
        let mut t = LogTail::new(PathBuf::from("/nonexistent"));
        // "one\ntw" was read: "tw" waits for its end.
        t.offset = 6;
        t.partial = b"tw".to_vec();
        assert_eq!(t.finish(Some(b"one\ntwo\nthree")).await, ["two", "three"]);
    }

    #[test]
    fn records_keep_the_last_lines_in_order() {
        let mut r = RunLogRecord::default();
        r.append(vec!["a".into(), "b".into()], 100, false);
        r.append(vec!["c".into()], 50, true);
        assert!(r.lines[2].master && !r.lines[1].master);
        let ts: Vec<i64> = r.lines.iter().map(|l| l.ts_ns).collect();
        assert_eq!(ts, [100, 101, 102]);
        let big = "x".repeat(KEPT_BYTES / 2);
        r.append(vec![big.clone(), big.clone(), big], 200, false);
        assert_eq!(r.lines.len(), 2);
        assert!(r.lines.iter().all(|l| l.message.len() == KEPT_BYTES / 2));
    }
}
