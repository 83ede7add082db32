//! Pipelines of each version's `CreatePipelineRequest`, as this cluster's
//! specs. Each version's request is read as protobuf's JSON (proto field
//! names, the form specs are written in), brought to 1.9's fields the way
//! Pachyderm's own converters do, and parsed by the spec parser every other
//! pipeline goes through.

use pach_pps::spec::{self, PipelineSpec};
use serde_json::Value;

use super::ops::{OpVersion, PipelineOp};

/// The spec of a pipeline op, or why it cannot be one.
pub fn convert(op: &PipelineOp) -> Result<PipelineSpec, String> {
    let mut v = op.request.clone();
    let Value::Object(m) = &mut v else {
        return Err("the request is not a message".into());
    };
    // Request flags, not spec fields.
    m.remove("update");
    m.remove("reprocess");
    // 1.9 extracts name the commit of Pachyderm's spec repo that holds the
    // spec; the spec itself is in the request, and this cluster keeps no
    // spec repo.
    m.remove("spec_commit");
    if op.version == OpVersion::V1_7 {
        // As Pachyderm's 1.7 converter: the salt is not kept (no old datum
        // is reused) and `incremental` is gone from 1.8 on.
        m.remove("salt");
        m.remove("incremental");
        for key in ["resource_requests", "resource_limits"] {
            if let Some(Value::Object(r)) = m.get_mut(key) {
                gpu_1_7(r);
            }
        }
    }
    if matches!(op.version, OpVersion::V1_7 | OpVersion::V1_8)
        && let Some(input) = m.get_mut("input")
    {
        // 1.8 still reads `atom` (before `pfs`), as its converter does.
        atom_to_pfs(input);
    }
    spec::parse_value(v).map_err(|e| e.to_string())
}

/// 1.7's `gpu: N` is 1.8's `gpu: {type, number}`, of the type Pachyderm's
/// converter assumes.
fn gpu_1_7(r: &mut serde_json::Map<String, Value>) {
    if let Some(n) = r.remove("gpu")
        && n.as_i64().is_some_and(|n| n != 0)
    {
        r.insert(
            "gpu".into(),
            serde_json::json!({"type": "nvidia.com/gpu", "number": n}),
        );
    }
}

fn atom_to_pfs(input: &mut Value) {
    let Value::Object(m) = input else { return };
    if let Some(atom) = m.remove("atom") {
        m.insert("pfs".into(), atom);
    }
    for key in ["cross", "union"] {
        if let Some(Value::Array(children)) = m.get_mut(key) {
            children.iter_mut().for_each(atom_to_pfs);
        }
    }
}
