//! Protobuf's JSON mapping of every message of the API, with the field names
//! either as Pachyderm's Go JSON marshaler prints them by default
//! (lowerCamelCase: what Pachyderm 1.9's `pachctl` prints for PFS objects with
//! `--raw`) or as they are written in the .proto files (snake_case: what it
//! prints for PPS objects, and how pipeline specs are written). 64-bit
//! integers are strings, enums are names, timestamps RFC 3339, durations
//! `"1.5s"`, and fields at their default value are left out, as Pachyderm
//! prints them.
//!
//! Reading accepts both spellings of every field and refuses unknown ones.
//! The names come from the descriptor set compiled into this crate, so a
//! message and its JSON can never disagree.

use std::sync::LazyLock;

use prost::{Message, Name};
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions,
};

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    // The bytes are the descriptor set protoc wrote when this crate was built.
    DescriptorPool::decode(DESCRIPTORS).expect("the compiled-in descriptor set decodes")
});

/// Which spelling of field names to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldNames {
    /// lowerCamelCase (`sizeBytes`), protobuf's default JSON names.
    Camel,
    /// As declared in the .proto file (`size_bytes`).
    Proto,
}

#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("no message type {0} in the API")]
    UnknownType(String),
    #[error("{0}")]
    Invalid(String),
}

fn descriptor<M: Name>() -> Result<MessageDescriptor, JsonError> {
    let name = M::full_name();
    POOL.get_message_by_name(&name)
        .ok_or(JsonError::UnknownType(name))
}

/// The JSON form of `msg`.
pub fn to_json<M: Message + Name>(
    msg: &M,
    names: FieldNames,
) -> Result<serde_json::Value, JsonError> {
    let desc = descriptor::<M>()?;
    let dynamic = DynamicMessage::decode(desc, msg.encode_to_vec().as_slice())
        .map_err(|e| JsonError::Invalid(e.to_string()))?;
    let options = SerializeOptions::new()
        .use_proto_field_name(names == FieldNames::Proto)
        .skip_default_fields(true)
        .stringify_64_bit_integers(true);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| JsonError::Invalid(e.to_string()))
}

/// The message a JSON value describes; either spelling of field names is
/// accepted, unknown fields are refused by name.
pub fn from_json<M: Message + Name + Default>(value: serde_json::Value) -> Result<M, JsonError> {
    let desc = descriptor::<M>()?;
    let dynamic = DynamicMessage::deserialize_with_options(desc, value, &DeserializeOptions::new())
        .map_err(|e| JsonError::Invalid(e.to_string()))?;
    dynamic
        .transcode_to::<M>()
        .map_err(|e| JsonError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{pfs, pps};

    #[test]
    fn pfs_objects_print_camel_case_and_64_bit_integers_as_strings() {
        let info = pfs::RepoInfo {
            repo: Some(pfs::Repo {
                name: "images".into(),
            }),
            size_bytes: 42,
            ..Default::default()
        };
        let json = to_json(&info, FieldNames::Camel).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"repo": {"name": "images"}, "sizeBytes": "42"})
        );
    }

    #[test]
    fn pipeline_specs_read_in_either_spelling_and_refuse_unknown_fields() {
        let spec = serde_json::json!({
            "pipeline": {"name": "edges"},
            "transform": {"cmd": ["python3", "/edges.py"], "image": "pachyderm/opencv"},
            "parallelism_spec": {"constant": 2},
            "datumTries": "3",
            "input": {"pfs": {"repo": "images", "glob": "/*"}}
        });
        let req: pps::CreatePipelineRequest = from_json(spec).unwrap();
        assert_eq!(req.pipeline.unwrap().name, "edges");
        assert_eq!(req.parallelism_spec.unwrap().constant, 2);
        assert_eq!(req.datum_tries, 3);
        let back = to_json(
            &pps::CreatePipelineRequest {
                datum_tries: 3,
                ..Default::default()
            },
            FieldNames::Proto,
        )
        .unwrap();
        assert_eq!(back, serde_json::json!({"datum_tries": "3"}));

        let err = from_json::<pps::CreatePipelineRequest>(serde_json::json!({"pipelin": {}}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("pipelin"), "{err}");
    }

    #[test]
    fn enums_and_timestamps_print_as_pachyderm_does() {
        let info = pps::JobInfo {
            state: pps::JobState::JobSuccess as i32,
            started: Some(prost_types::Timestamp {
                seconds: 1_577_836_800,
                nanos: 500_000_000,
            }),
            ..Default::default()
        };
        let json = to_json(&info, FieldNames::Proto).unwrap();
        assert_eq!(json["state"], "JOB_SUCCESS");
        assert_eq!(json["started"], "2020-01-01T00:00:00.500Z");
    }
}
