//! The `stats` branch of a pipeline with `enable_stats`, laid out as
//! Pachyderm 1.9's workers lay it out. When a job ends, one commit on the
//! output repo's `stats` branch describes every datum of the job in a
//! directory named by the datum's id:
//!
//! - `job:<id>`: an empty file naming the job that ran the datum (another
//!   job's id: this job reused that job's output);
//! - `index`: the datum's position among the job's datums (by id);
//! - `stats`: where its time went, as protobuf JSON of `pps.ProcessStats`;
//! - `logs`: its log lines, one `pps.LogMessage` JSON object per line;
//! - `failure`: why it failed, when it did;
//! - `pfs/<input>/…`: the input files it saw, and `pfs/out/…` what it wrote.
//!
//! Files are shared with the inputs and outputs by reference: only the
//! small `index`, `stats`, `logs` and `failure` files are new bytes.
//! `inspect datum` reads a stats pipeline's datums from here.

use futures::StreamExt;
use pach_pfs::CommitName;
use pach_pfs::records::load_all;
use pach_storage::{Change, FileEntry};
use serde_json::{Value, json};

use crate::error::{PpsError, Result};
use crate::pipeline::Pps;
use crate::records::*;

/// The branch of the output repo stats go to, as Pachyderm names it.
pub const STATS_BRANCH: &str = "stats";

/// A time as RFC 3339 with nanoseconds, as protobuf's JSON writes them.
pub(crate) fn rfc3339(ns: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64);
    humantime::format_rfc3339_nanos(t).to_string()
}

/// A duration as protobuf's JSON writes it ("1.000340s").
fn duration(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let frac = ns % 1_000_000_000;
    if frac == 0 {
        format!("{secs}s")
    } else {
        let f = format!("{frac:09}");
        format!("{secs}.{}s", f.trim_end_matches('0'))
    }
}

fn parse_duration(v: &Value) -> u64 {
    v.as_str()
        .and_then(|s| crate::spec::parse_duration(s).ok())
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// `ProcessStats` as protobuf's JSON (the `stats` file of a datum).
pub fn stats_json(s: &ProcessStats) -> Value {
    json!({
        "downloadTime": duration(s.download_ns),
        "processTime": duration(s.process_ns),
        "uploadTime": duration(s.upload_ns),
        "downloadBytes": s.download_bytes.to_string(),
        "uploadBytes": s.upload_bytes.to_string(),
    })
}

fn stats_from_json(v: &Value) -> ProcessStats {
    let int = |k: &str| {
        v[k].as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| v[k].as_u64())
            .unwrap_or(0)
    };
    ProcessStats {
        download_ns: parse_duration(&v["downloadTime"]),
        process_ns: parse_duration(&v["processTime"]),
        upload_ns: parse_duration(&v["uploadTime"]),
        download_bytes: int("downloadBytes"),
        upload_bytes: int("uploadBytes"),
    }
}

/// An input file of a datum, as its stats commit holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsInput {
    pub input: String,
    /// The file's path in its repo.
    pub path: String,
    pub size: u64,
    pub hash: pach_storage::ContentHash,
}

/// A datum as its job's stats commit describes it.
#[derive(Debug, Clone)]
pub struct StatsDatum {
    pub state: DatumState,
    pub stats: ProcessStats,
    /// The input files it saw.
    pub inputs: Vec<StatsInput>,
    /// The stats commit, and the datum's `pfs` directory in it.
    pub commit: CommitName,
    pub pfs_path: String,
}

impl Pps {
    /// Writes the stats commit of an ended job; returns it.
    pub(crate) async fn write_stats(
        &self,
        pipeline: &PipelineRecord,
        job: &JobRecord,
        output: &pach_pfs::CommitRecord,
    ) -> Result<CommitName> {
        let content = self.pfs.content().clone();
        let mut datums: Vec<DatumRecord> =
            load_all::<DatumRecord>(&**self.pfs.meta(), &datums_prefix(&job.id))
                .await?
                .into_iter()
                .map(|(d, _)| d)
                .collect();
        datums.sort_by(|a, b| a.id.cmp(&b.id));
        let inputs = self.load_inputs(pipeline, output).await?.entries;
        let mut session = content.session();
        let mut changes = vec![Change::Delete("/".into())];
        for (index, d) in datums.iter().enumerate() {
            let dir = format!("/{}", d.id);
            let ran_in = d.source_job.clone().unwrap_or_else(|| job.id.clone());
            let mut small: Vec<(String, Vec<u8>)> = vec![
                (format!("{dir}/job:{ran_in}"), Vec::new()),
                (format!("{dir}/index"), index.to_string().into_bytes()),
                (
                    format!("{dir}/stats"),
                    stats_json(&d.stats).to_string().into_bytes(),
                ),
            ];
            if d.state != DatumState::Skipped {
                let output = self.datum_logs(d).await?;
                let mut logs = String::new();
                for l in crate::logs::datum_lines(job, d, &output) {
                    logs.push_str(&l.to_json_line());
                    logs.push('\n');
                }
                small.push((format!("{dir}/logs"), logs.into_bytes()));
            }
            if d.state == DatumState::Failed {
                small.push((format!("{dir}/failure"), d.reason.clone().into_bytes()));
            }
            for (path, bytes) in small {
                let entry = session.put_bytes(path, None, &bytes).await?;
                changes.push(Change::Put(entry));
            }
            for i in &d.inputs {
                let Some((_, entries)) = inputs.get(&i.name) else {
                    continue;
                };
                for f in &i.files {
                    if let Some(e) = entries.get(&f.path) {
                        changes.push(Change::Put(FileEntry {
                            path: format!("{dir}/pfs/{}{}", i.name, e.path),
                            ..e.clone()
                        }));
                    }
                }
            }
            if let Some(outputs) = &d.outputs {
                for c in content.read_changes(outputs).await? {
                    if let Change::Put(e) = c {
                        changes.push(Change::Put(FileEntry {
                            path: format!("{dir}/pfs/out{}", e.path),
                            ..e
                        }));
                    }
                }
            }
        }
        session.finish().await?;
        // As in Pachyderm 1.9, a stats commit is computed from the job's
        // inputs: it carries the output commit's provenance, so that a flush
        // of an input commit waits for it too.
        let pfs = self.pfs.for_pipeline(&job.pipeline);
        let provenance: Vec<(String, String)> = output
            .provenance
            .iter()
            .map(|c| (c.repo.clone(), c.id.clone()))
            .collect();
        let stats = pfs
            .start_commit_with(&job.pipeline, Some(STATS_BRANCH), None, "", &provenance)
            .await?;
        let id = stats.id;
        pfs.write_changes(&job.pipeline, &id, changes).await?;
        pfs.finish_commit(&job.pipeline, &id, None).await?;
        Ok(CommitName {
            repo: job.pipeline.clone(),
            id,
        })
    }

    /// A datum of a job with a stats commit, read from that commit; None
    /// when the job has none (stats off, or the job has not ended).
    pub async fn stats_datum(&self, job: &JobRecord, datum: &str) -> Result<Option<StatsDatum>> {
        let Some(commit) = &job.stats_commit else {
            return Ok(None);
        };
        let (_, index) = self.pfs.open_commit(&commit.repo, &commit.id).await?;
        let dir = format!("/{datum}/");
        let end = format!("/{datum}0");
        let mut entries = index.range(&dir, Some(&end));
        let mut state = DatumState::Success;
        let mut found = false;
        let mut stats = ProcessStats::default();
        let mut inputs = Vec::new();
        let pfs = format!("{dir}pfs/");
        while let Some(e) = entries.next().await {
            let e = e.map_err(pach_pfs::PfsError::from)?;
            found = true;
            let rel = &e.path[dir.len()..];
            if let Some(ran_in) = rel.strip_prefix("job:") {
                if ran_in != job.id {
                    state = DatumState::Skipped;
                }
            } else if rel == "failure" {
                state = DatumState::Failed;
            } else if rel == "stats" {
                let bytes = self.read_small(&e).await?;
                stats = stats_from_json(&serde_json::from_slice(&bytes).unwrap_or(Value::Null));
            } else if let Some(rest) = e.path.strip_prefix(&pfs)
                && let Some((input, path)) = rest.split_once('/')
                && input != "out"
            {
                inputs.push(StatsInput {
                    input: input.to_string(),
                    path: format!("/{path}"),
                    size: e.size,
                    hash: e.hash,
                });
            }
        }
        if !found {
            return Err(PpsError::DatumNotFound {
                job: job.id.clone(),
                datum: datum.to_string(),
            });
        }
        Ok(Some(StatsDatum {
            state,
            stats,
            inputs,
            commit: commit.clone(),
            pfs_path: format!("/{datum}/pfs"),
        }))
    }

    async fn read_small(&self, e: &FileEntry) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut s = self.pfs.content().read_file(e, 0, None);
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_stats_round_trip_as_protobuf_json() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(1_500_000_000), "1.5s");
        assert_eq!(duration(340_000), "0.00034s");
        let s = ProcessStats {
            download_ns: 1_000_340_000,
            process_ns: 2_000_000_000,
            upload_ns: 7,
            download_bytes: 4,
            upload_bytes: 1 << 40,
        };
        let v = stats_json(&s);
        assert_eq!(v["downloadTime"], "1.00034s");
        assert_eq!(v["uploadBytes"], "1099511627776");
        assert_eq!(stats_from_json(&v), s);
    }
}
