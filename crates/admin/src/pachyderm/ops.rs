//! The ops of every version (Op1_7, Op1_8, Op1_9) in one shape. Each
//! version's messages carry the same facts under its own packages; the
//! importer reads only this shape, so a version's quirks stay here.

use pach_api::json::{FieldNames, to_json};
use pach_api::{admin, pfs, pfs_1_7, pfs_1_8};

use super::frames::OpPosition;
use crate::error::{AdminError, Result};

/// Which Pachyderm release wrote an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpVersion {
    V1_7,
    V1_8,
    V1_9,
}

impl std::fmt::Display for OpVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OpVersion::V1_7 => "1.7",
            OpVersion::V1_8 => "1.8",
            OpVersion::V1_9 => "1.9",
        })
    }
}

/// A file's content as a tree names it: a whole object, or a byte range of
/// a block (1.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentRef {
    Object(String),
    Block {
        hash: String,
        lower: u64,
        upper: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOp {
    pub repo: String,
    pub id: String,
    /// Empty: the repo's first commit.
    pub parent: String,
    /// The branch the commit was built on (empty: none).
    pub branch: String,
    /// The commit's tree object(s): one tree, or (1.9) the shards of one.
    pub trees: Vec<String>,
    /// (repo, commit id) of the commits this one was computed from.
    pub provenance: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchOp {
    pub repo: String,
    pub name: String,
    /// Empty: a branch without a head.
    pub head: String,
    /// (repo, branch) of the branches this one is computed from.
    pub provenance: Vec<(String, String)>,
}

/// (1.9) What a job's record says (`CreateJobRequest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOp {
    pub pipeline: String,
    /// (repo, commit id); the job's id is its output commit's.
    pub output_commit: Option<(String, String)>,
    pub stats_commit: Option<(String, String)>,
    /// `pps.JobState`'s number.
    pub state: i32,
    pub reason: String,
    pub started_ns: i64,
    pub finished_ns: i64,
    /// processed, skipped, total, failed, recovered.
    pub data: [i64; 5],
}

#[derive(Debug, Clone, PartialEq)]
pub struct PipelineOp {
    pub name: String,
    /// The request as protobuf's JSON (proto field names) of its version.
    pub request: serde_json::Value,
    pub version: OpVersion,
}

/// One op, whatever its version.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// A piece of an object's bytes; an empty piece ends the object.
    ObjectValue(Vec<u8>),
    Tag {
        object: String,
        tags: Vec<String>,
    },
    /// (1.9) An object that is a byte range of a block.
    CreateObject {
        object: String,
        content: ContentRef,
    },
    /// (1.9) A piece of a block's bytes: the first names the block, an empty
    /// one ends it.
    BlockValue {
        block: Option<String>,
        value: Vec<u8>,
    },
    Repo {
        name: String,
        description: String,
    },
    Commit(CommitOp),
    Branch(BranchOp),
    Pipeline(PipelineOp),
    /// (1.9) A job's record.
    Job(JobOp),
}

impl Op {
    /// The op a wire message carries, and its version.
    pub fn from_wire(at: OpPosition, op: admin::Op) -> Result<(OpVersion, Op)> {
        let empty = || {
            AdminError::Corrupt(format!(
                "{at} carries no operation (an Op of its version with no field set)"
            ))
        };
        match (op.op1_7, op.op1_8, op.op1_9) {
            (Some(o), None, None) => Ok((OpVersion::V1_7, from_1_7(at, o)?.ok_or_else(empty)?)),
            (None, Some(o), None) => Ok((OpVersion::V1_8, from_1_8(at, o)?.ok_or_else(empty)?)),
            (None, None, Some(o)) => Ok((OpVersion::V1_9, from_1_9(at, o)?.ok_or_else(empty)?)),
            (None, None, None) => Err(AdminError::UnknownVersion {
                found: format!(
                    "of {at} (it carries none of Op1_7, Op1_8, Op1_9: a newer Pachyderm wrote it)"
                ),
                supported: "Pachyderm 1.7, 1.8 and 1.9 ops".into(),
            }),
            _ => Err(AdminError::Corrupt(format!(
                "{at} carries ops of several versions at once"
            ))),
        }
    }
}

fn missing(at: OpPosition, what: &str) -> AdminError {
    AdminError::Corrupt(format!("{at} lacks {what}"))
}

fn json_of<M: prost::Message + prost::Name>(at: OpPosition, m: &M) -> Result<serde_json::Value> {
    to_json(m, FieldNames::Proto)
        .map_err(|e| AdminError::Corrupt(format!("{at}: its pipeline cannot be read: {e}")))
}

// The three versions' messages differ in package only for most fields; these
// macros read the shared shapes.
macro_rules! repo_name {
    ($r:expr) => {
        $r.as_ref().map(|r| r.name.clone()).unwrap_or_default()
    };
}
macro_rules! commit_of {
    ($c:expr) => {
        $c.as_ref()
            .map(|c| (repo_name!(c.repo), c.id.clone()))
            .unwrap_or_default()
    };
}
macro_rules! branch_of {
    ($b:expr) => {
        $b.as_ref()
            .map(|b| (repo_name!(b.repo), b.name.clone()))
            .unwrap_or_default()
    };
}

macro_rules! common_ops {
    ($at:expr, $o:expr) => {{
        let at = $at;
        let o = $o;
        if let Some(obj) = o.object {
            return Ok(Some(Op::ObjectValue(obj.value)));
        }
        if let Some(t) = o.tag {
            let object = t
                .object
                .map(|x| x.hash)
                .ok_or_else(|| missing(at, "the object it tags"))?;
            return Ok(Some(Op::Tag {
                object,
                tags: t.tags.into_iter().map(|t| t.name).collect(),
            }));
        }
        if let Some(r) = o.repo {
            let name = repo_name!(r.repo);
            return Ok(Some(Op::Repo {
                name,
                description: r.description,
            }));
        }
        if let Some(b) = o.branch {
            let (head_repo, head) = commit_of!(b.head);
            let (mut repo, mut name) = branch_of!(b.branch);
            if repo.is_empty() && name.is_empty() {
                // Older writers named the branch by its head's repo and `s_branch`.
                repo = head_repo;
                name = b.s_branch;
            }
            return Ok(Some(Op::Branch(BranchOp {
                repo,
                name,
                head,
                provenance: b.provenance.iter().map(|p| branch_of!(Some(p))).collect(),
            })));
        }
    }};
}

fn from_1_7(at: OpPosition, o: admin::Op17) -> Result<Option<Op>> {
    let pipeline = o.pipeline.clone();
    let commit = o.commit.clone();
    common_ops!(at, o);
    if let Some(c) = commit {
        return Ok(Some(Op::Commit(commit_1_7(c))));
    }
    if let Some(p) = pipeline {
        let name = p
            .pipeline
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_default();
        return Ok(Some(Op::Pipeline(PipelineOp {
            name,
            request: json_of(at, &p)?,
            version: OpVersion::V1_7,
        })));
    }
    Ok(None)
}

fn commit_1_7(c: pfs_1_7::BuildCommitRequest) -> CommitOp {
    let (repo, parent) = commit_of!(c.parent);
    CommitOp {
        repo,
        id: c.id,
        parent,
        branch: c.branch,
        trees: c.tree.into_iter().map(|t| t.hash).collect(),
        provenance: c.provenance.iter().map(|p| commit_of!(Some(p))).collect(),
    }
}

fn from_1_8(at: OpPosition, o: admin::Op18) -> Result<Option<Op>> {
    let pipeline = o.pipeline.clone();
    let commit = o.commit.clone();
    common_ops!(at, o);
    if let Some(c) = commit {
        return Ok(Some(Op::Commit(commit_1_8(c))));
    }
    if let Some(p) = pipeline {
        let name = p
            .pipeline
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_default();
        return Ok(Some(Op::Pipeline(PipelineOp {
            name,
            request: json_of(at, &p)?,
            version: OpVersion::V1_8,
        })));
    }
    Ok(None)
}

fn commit_1_8(c: pfs_1_8::BuildCommitRequest) -> CommitOp {
    let (repo, parent) = commit_of!(c.parent);
    CommitOp {
        repo,
        id: c.id,
        parent,
        branch: c.branch,
        trees: c.tree.into_iter().map(|t| t.hash).collect(),
        provenance: c.provenance.iter().map(|p| commit_of!(Some(p))).collect(),
    }
}

fn from_1_9(at: OpPosition, o: admin::Op19) -> Result<Option<Op>> {
    let pipeline = o.pipeline.clone();
    let commit = o.commit.clone();
    let create_object = o.create_object.clone();
    let block = o.block.clone();
    let job = o.job.clone();
    common_ops!(at, o);
    if let Some(c) = create_object {
        let object = c
            .object
            .map(|o| o.hash)
            .ok_or_else(|| missing(at, "its object"))?;
        let r = c
            .block_ref
            .ok_or_else(|| missing(at, "its block reference"))?;
        return Ok(Some(Op::CreateObject {
            object,
            content: block_ref(at, r)?,
        }));
    }
    if let Some(b) = block {
        return Ok(Some(Op::BlockValue {
            block: b.block.map(|b| b.hash),
            value: b.value,
        }));
    }
    if let Some(c) = commit {
        return Ok(Some(Op::Commit(commit_1_9(c))));
    }
    if let Some(p) = pipeline {
        let name = p
            .pipeline
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_default();
        return Ok(Some(Op::Pipeline(PipelineOp {
            name,
            request: json_of(at, &p)?,
            version: OpVersion::V1_9,
        })));
    }
    if let Some(j) = job {
        let ns = |t: Option<prost_types::Timestamp>| {
            t.map(|t| t.seconds * 1_000_000_000 + i64::from(t.nanos))
                .unwrap_or(0)
        };
        return Ok(Some(Op::Job(JobOp {
            pipeline: j.pipeline.map(|p| p.name).unwrap_or_default(),
            output_commit: j.output_commit.as_ref().map(|c| commit_of!(Some(c))),
            stats_commit: j.stats_commit.as_ref().map(|c| commit_of!(Some(c))),
            state: j.state,
            reason: j.reason,
            started_ns: ns(j.started),
            finished_ns: ns(j.finished),
            data: [
                j.data_processed,
                j.data_skipped,
                j.data_total,
                j.data_failed,
                j.data_recovered,
            ],
        })));
    }
    Ok(None)
}

pub(crate) fn block_ref(at: OpPosition, r: pfs::BlockRef) -> Result<ContentRef> {
    let hash = r
        .block
        .map(|b| b.hash)
        .ok_or_else(|| missing(at, "its block"))?;
    let (lower, upper) = r.range.map(|r| (r.lower, r.upper)).unwrap_or((0, 0));
    if upper < lower {
        return Err(AdminError::Corrupt(format!(
            "{at} names bytes {lower}..{upper} of block {hash}, an empty range turned around"
        )));
    }
    Ok(ContentRef::Block { hash, lower, upper })
}

fn commit_1_9(c: pfs::BuildCommitRequest) -> CommitOp {
    let (repo, parent) = commit_of!(c.parent);
    let mut trees: Vec<String> = c.tree.into_iter().map(|t| t.hash).collect();
    trees.extend(c.trees.into_iter().map(|t| t.hash));
    CommitOp {
        repo,
        id: c.id,
        parent,
        branch: c.branch,
        trees,
        provenance: c.provenance.iter().map(|p| commit_of!(p.commit)).collect(),
    }
}
