//! JSON views of pipelines, jobs and datums shaped like Pachyderm's
//! `PipelineInfo`, `JobInfo` and `DatumInfo`, for `--raw` output and scripts
//! (`jq -r '.pipeline.name'`). Times are RFC 3339.

use serde_json::{Value, json};

use crate::records::*;

fn time(ns: i64) -> Value {
    if ns <= 0 {
        return Value::Null;
    }
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns as u64);
    Value::String(humantime::format_rfc3339_seconds(t).to_string())
}

pub fn pipeline_info(p: &PipelineRecord, last_job: Option<&JobRecord>) -> Value {
    let spec = serde_json::to_value(&p.spec).unwrap_or(Value::Null);
    let mut v = match &spec {
        Value::Object(m) => Value::Object(m.clone()),
        _ => json!({}),
    };
    let state = match p.state {
        PipelineState::Running => "PIPELINE_RUNNING",
        PipelineState::Paused => "PIPELINE_PAUSED",
    };
    if let Value::Object(m) = &mut v {
        m.insert("version".into(), json!(p.version));
        m.insert("state".into(), json!(state));
        m.insert("stopped".into(), json!(p.state == PipelineState::Paused));
        m.insert("created_at".into(), time(p.created_ns));
        m.insert("updated_at".into(), time(p.updated_ns));
        m.insert("salt".into(), json!(p.salt));
        m.insert("output_branch".into(), json!(p.spec.output_branch));
        m.insert(
            "last_job_state".into(),
            last_job.map(|j| json!(j.state)).unwrap_or(Value::Null),
        );
        m.insert("spec".into(), spec);
    }
    v
}

pub fn job_info(j: &JobRecord) -> Value {
    json!({
        "job": {"id": j.id},
        "pipeline": {"name": j.pipeline},
        "pipeline_version": j.pipeline_version,
        "output_commit": {"repo": {"name": j.output_commit.repo}, "id": j.output_commit.id},
        "input_commits": j.input_commits.iter().map(|c| json!({"repo": {"name": c.repo}, "id": c.id})).collect::<Vec<_>>(),
        "state": j.state,
        "reason": j.reason,
        "started": time(j.started_ns),
        "finished": j.finished_ns.map(time).unwrap_or(Value::Null),
        "data_total": j.counts.total,
        "data_processed": j.counts.processed,
        "data_skipped": j.counts.skipped,
        "data_failed": j.counts.failed,
        "data_recovered": j.counts.recovered,
    })
}

pub fn datum_info(d: &DatumRecord) -> Value {
    let data: Vec<Value> = d
        .inputs
        .iter()
        .flat_map(|i| {
            i.files.iter().map(move |f| {
                json!({
                    "file": {"repo": {"name": i.repo}, "input": i.name, "path": f.path},
                    "hash": f.hash,
                    "size_bytes": f.size,
                })
            })
        })
        .collect();
    json!({
        "datum": {"id": d.id, "job": {"id": d.job}},
        "state": d.state,
        "reason": d.reason,
        "data": data,
        "inputs": d.inputs.iter().map(|i| json!({"name": i.name, "repo": i.repo, "glob_path": i.glob_path})).collect::<Vec<_>>(),
        "output_files": d.output_files,
        "tries": d.tries,
        "started": time(d.started_ns),
        "finished": time(d.finished_ns),
    })
}
