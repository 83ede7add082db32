//! Importing a Pachyderm extract into this cluster.
//!
//! Two passes over the spooled stream, as our own restore:
//!
//! 1. **Validate** (nothing in the cluster changes): every op is read and
//!    checked; object and block bytes go to files of a scratch directory
//!    (named by their SHA-512, which is how Pachyderm names an object, or by
//!    the block's name), every other op to an ops file in stream order.
//!    Then every commit's tree is read and every piece of content it names
//!    must be in the stream; every parent, branch head and pipeline input
//!    must be something the stream creates or the cluster holds; every
//!    pipeline's spec must convert. What the cluster already holds (a repo,
//!    a pipeline, a commit of the same id) is kept, as Pachyderm's restore
//!    keeps it, so restoring twice is harmless.
//! 2. **Apply**, from the ops file. A 1.7 or 1.8 extract carries no
//!    outputs: the input repos are created, then the pipelines (which create
//!    their output repos and branches, as Pachyderm's `CreatePipeline`
//!    does), then the input repos' commits in stream order (parents first)
//!    with their ids, then their branches; every input commit starts its
//!    pipelines' jobs, so outputs are recomputed in history order, as in
//!    Pachyderm's own restore of a 1.7 extract. A 1.9 extract carries its
//!    outputs: every repo, every commit (outputs too, with their provenance),
//!    every branch with its provenance, then the pipelines, which adopt
//!    their output repos without running again. Each commit's files are
//!    stored as ordinary content, one piece per Pachyderm object, before the
//!    commit names them.
//!
//! Jobs of a 1.9 extract are recorded as they ended, after their pipelines;
//! tags name Pachyderm's datum caches, which this cluster keeps its own way:
//! checked, not kept (`docs/pachyderm-restore.md`).
//!
//! Memory: object and block bytes stream through the scratch directory,
//! where each object's file is its record; the names that grow with the
//! stream's objects (1.9's objects that are ranges of blocks, the objects a
//! `--no-objects` extract lacks, where the bucket holds them) are kept in a
//! redb file there (`index`). What stays in memory: the names of repos,
//! commits and blocks (a few hundred bytes each) and the file lists of two
//! trees at a time (a commit's and its parent's, one entry per file).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use object_store::ObjectStoreExt;
use pach_api::admin;
use pach_pfs::{BranchName, ErrorKind};
use pach_pps::Pps;
use pach_pps::spec::PipelineSpec;
use pach_storage::{Change, PieceHasher};
use prost::Message;

use super::bucket::{BucketRange, PachydermBucket};
use super::frames::{OpPosition, OpReader};
use super::hashtree::{self, TreeFile};
use super::index::NameIndex;
use super::ops::{BranchOp, CommitOp, ContentRef, JobOp, Op, OpVersion};
use super::spec;
use crate::Summary;
use crate::error::{AdminError, Result, io};

/// The repo where Pachyderm 1.9 keeps pipeline specs; its extracts name it
/// and this cluster keeps specs in its pipeline records instead.
const SPEC_REPO: &str = "spec";
/// Bytes read from the scratch files at a time.
const READ_BUFFER: usize = 1 << 20;

/// Imports the Pachyderm extract in `spool` (a file: the whole stream as
/// the client sent it) into the cluster of `pps`. `scratch` holds the
/// stream's objects while it is validated and applied.
pub async fn import(pps: &Pps, scratch: &Path, spool: &Path) -> Result<Summary> {
    import_with(pps, scratch, spool, None).await
}

/// [`import`], reading the objects a `--no-objects` extract lacks from the
/// Pachyderm cluster's own bucket.
pub async fn import_with(
    pps: &Pps,
    scratch: &Path,
    spool: &Path,
    bucket: Option<&PachydermBucket>,
) -> Result<Summary> {
    tokio::fs::create_dir_all(scratch)
        .await
        .map_err(io(format!("creating {}", scratch.display())))?;
    let work = tempfile::Builder::new()
        .prefix("pachyderm-import-")
        .tempdir_in(scratch)
        .map_err(io("creating the import's scratch directory"))?;
    let dir = work.path().to_path_buf();
    let spool = spool.to_path_buf();
    let scan = tokio::task::spawn_blocking(move || scan(&spool, &dir))
        .await
        .map_err(|e| AdminError::Io {
            what: "reading the stream".into(),
            source: std::io::Error::other(e),
        })??;
    let dir = work.path().to_path_buf();
    let mut scan = scan;
    if let Some(b) = bucket {
        fetch_trees(&mut scan, &dir, b).await?;
    }
    let plan = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || check_trees(scan, &dir)
    })
    .await
    .map_err(|e| AdminError::Io {
        what: "reading the stream's trees".into(),
        source: std::io::Error::other(e),
    })??;
    let mut plan = plan;
    find_missing(&mut plan, bucket).await?;
    check_target(pps, &mut plan).await?;
    apply(pps, &plan, &dir).await?;
    Ok(plan.summary.clone())
}

/// What the first pass found.
struct Scan {
    version: Option<OpVersion>,
    summary: Summary,
    /// (1.9) objects that are block ranges, and later what is missing.
    /// (An object whose bytes the stream holds is its file in `objects/`.)
    names: NameIndex,
    /// Block name → its size, bytes in `blocks/`.
    blocks: HashMap<String, u64>,
    /// The ops file: every op but objects' and blocks' bytes.
    ops: PathBuf,
}

/// Writes one op to the ops file: its position, then its message.
fn put_op(out: &mut impl Write, at: OpPosition, op: &admin::Op) -> std::io::Result<()> {
    let bytes = op.encode_to_vec();
    out.write_all(&at.number.to_le_bytes())?;
    out.write_all(&at.offset.to_le_bytes())?;
    out.write_all(&(bytes.len() as u64).to_le_bytes())?;
    out.write_all(&bytes)
}

/// Reads the ops file back.
struct OpsFile {
    r: BufReader<std::fs::File>,
}

impl OpsFile {
    fn open(path: &Path) -> Result<Self> {
        let f = std::fs::File::open(path).map_err(io("reading the import's ops file"))?;
        Ok(OpsFile {
            r: BufReader::new(f),
        })
    }

    /// The next op that concerns this cluster (see [`without_spec_repo`]).
    fn next(&mut self) -> Result<Option<(OpPosition, Op)>> {
        loop {
            let Some((at, version, op)) = self.next_any()? else {
                return Ok(None);
            };
            if let Some(op) = without_spec_repo(version, op) {
                return Ok(Some((at, op)));
            }
        }
    }

    fn next_any(&mut self) -> Result<Option<(OpPosition, OpVersion, Op)>> {
        let mut head = [0u8; 24];
        match self.r.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(io("reading the import's ops file")(e)),
        }
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&head[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        let at = OpPosition {
            number: word(0),
            offset: word(1),
        };
        let mut bytes = vec![0u8; word(2) as usize];
        self.r
            .read_exact(&mut bytes)
            .map_err(io("reading the import's ops file"))?;
        let op = admin::Op::decode(&bytes[..])
            .map_err(|e| AdminError::Corrupt(format!("{at} cannot be read again: {e}")))?;
        let (version, op) = Op::from_wire(at, op)?;
        Ok(Some((at, version, op)))
    }
}

/// A 1.9 op without what names Pachyderm's `spec` repo, which this cluster
/// does not keep (pipeline specs live in pipeline records): its repo, its
/// commits and branches are no ops here, and provenance forgets it.
fn without_spec_repo(version: OpVersion, op: Op) -> Option<Op> {
    if version != OpVersion::V1_9 {
        return Some(op);
    }
    match op {
        Op::Repo { name, .. } if name == SPEC_REPO => None,
        Op::Commit(c) if c.repo == SPEC_REPO => None,
        Op::Branch(b) if b.repo == SPEC_REPO => None,
        Op::Commit(mut c) => {
            c.provenance.retain(|(repo, _)| repo != SPEC_REPO);
            Some(Op::Commit(c))
        }
        Op::Branch(mut b) => {
            b.provenance.retain(|(repo, _)| repo != SPEC_REPO);
            Some(Op::Branch(b))
        }
        other => Some(other),
    }
}

/// An object or block being received, piece by piece.
struct Receiving {
    started: OpPosition,
    file: BufWriter<std::fs::File>,
    temp: PathBuf,
    hasher: PieceHasher,
    len: u64,
    /// The block's name (blocks are named by the stream, objects by their bytes).
    block: Option<String>,
}

fn receiving(dir: &Path, at: OpPosition, block: Option<String>) -> Result<Receiving> {
    let temp = dir.join(format!("receiving-{}", at.number));
    let file = std::fs::File::create(&temp).map_err(io("writing an object to scratch"))?;
    Ok(Receiving {
        started: at,
        file: BufWriter::with_capacity(READ_BUFFER, file),
        temp,
        hasher: PieceHasher::new(),
        len: 0,
        block,
    })
}

fn scan(spool: &Path, dir: &Path) -> Result<Scan> {
    for sub in ["objects", "blocks"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(io("creating the scratch directory"))?;
    }
    let file = std::fs::File::open(spool).map_err(io("reading the spool file"))?;
    let mut reader = OpReader::new(BufReader::with_capacity(READ_BUFFER, file));
    let ops_path = dir.join("ops");
    let mut ops = BufWriter::new(
        std::fs::File::create(&ops_path).map_err(io("writing the import's ops file"))?,
    );
    let mut scan = Scan {
        version: None,
        summary: Summary::default(),
        names: NameIndex::create(dir)?,
        blocks: HashMap::new(),
        ops: ops_path,
    };
    let mut open: Option<Receiving> = None;
    while let Some((at, wire)) = reader.next_op()? {
        let kept = wire.clone();
        let (version, op) = Op::from_wire(at, wire)?;
        match scan.version {
            None => scan.version = Some(version),
            Some(v) if v != version => {
                return Err(AdminError::Corrupt(format!(
                    "{at} is a {version} op in a stream of {v} ops; Pachyderm never mixes versions in one extract"
                )));
            }
            Some(_) => {}
        }
        match op {
            Op::ObjectValue(value) => {
                if open.as_ref().is_some_and(|r| r.block.is_some()) {
                    return Err(unended(&open, at));
                }
                let r = match &mut open {
                    Some(r) => r,
                    None => open.insert(receiving(dir, at, None)?),
                };
                if value.is_empty() {
                    let r = open.take().expect("an object being received");
                    finish_object(&mut scan, dir, r)?;
                } else {
                    receive(r, &value)?;
                }
            }
            Op::BlockValue { block, value } => {
                match (&open, &block) {
                    (Some(r), _) if r.block.is_none() => return Err(unended(&open, at)),
                    // Pachyderm 1.9 names the block in every op of it.
                    (Some(r), Some(name)) if r.block.as_deref() != Some(name.as_str()) => {
                        return Err(unended(&open, at));
                    }
                    (None, None) => {
                        return Err(AdminError::Corrupt(format!(
                            "{at} continues a block, but no block was started"
                        )));
                    }
                    (None, Some(name)) => {
                        check_block_name(at, name)?;
                        if scan.blocks.contains_key(name) {
                            return Err(AdminError::Corrupt(format!(
                                "{at} sends block {name} a second time"
                            )));
                        }
                        open = Some(receiving(dir, at, Some(name.clone()))?);
                    }
                    (Some(_), _) => {}
                }
                let r = open.as_mut().expect("a block being received");
                if value.is_empty() {
                    let r = open.take().expect("a block being received");
                    finish_block(&mut scan, dir, r)?;
                } else {
                    receive(r, &value)?;
                }
            }
            other => {
                if open.is_some() {
                    return Err(unended(&open, at));
                }
                match &other {
                    Op::Tag { object, .. } => {
                        check_object_name(at, object)?;
                        if !object_file(dir, object).exists()
                            && scan.names.object_ref(object)?.is_none()
                        {
                            return Err(AdminError::Dangling {
                                what: format!("object {object}"),
                                detail: format!("{at} tags it"),
                            });
                        }
                    }
                    Op::CreateObject { object, content } => {
                        check_object_name(at, object)?;
                        if let ContentRef::Block { hash, upper, .. } = content {
                            check_block_name(at, hash)?;
                            match scan.blocks.get(hash) {
                                Some(size) if upper <= size => {}
                                Some(size) => {
                                    return Err(AdminError::Corrupt(format!(
                                        "{at} makes object {object} of bytes up to {upper} of block {hash}, which has {size}"
                                    )));
                                }
                                // A --no-objects extract names no blocks; the
                                // commits' check says what is missing.
                                None => {}
                            }
                        }
                        scan.names.insert_ref(object, content)?;
                    }
                    _ => {}
                }
                put_op(&mut ops, at, &kept).map_err(io("writing the import's ops file"))?;
            }
        }
    }
    if let Some(r) = open {
        return Err(AdminError::Truncated(format!(
            "the stream ends inside the {} that starts at {}",
            if r.block.is_some() { "block" } else { "object" },
            r.started
        )));
    }
    if reader.ops() == 0 {
        return Err(AdminError::NotAStream(
            "the snappy stream holds no ops; is it a Pachyderm extract?".into(),
        ));
    }
    ops.flush().map_err(io("writing the import's ops file"))?;
    Ok(scan)
}

fn unended(open: &Option<Receiving>, at: OpPosition) -> AdminError {
    let (kind, started) = open
        .as_ref()
        .map(|r| {
            (
                if r.block.is_some() { "block" } else { "object" },
                r.started,
            )
        })
        .unwrap_or(("object", at));
    AdminError::Corrupt(format!(
        "the {kind} that starts at {started} is not ended (by an empty piece) before {at}"
    ))
}

fn receive(r: &mut Receiving, value: &[u8]) -> Result<()> {
    r.hasher.update(value);
    r.len += value.len() as u64;
    r.file
        .write_all(value)
        .map_err(io("writing an object to scratch"))
}

fn finish_object(scan: &mut Scan, dir: &Path, r: Receiving) -> Result<()> {
    let hash = r.hasher.finish().to_hex();
    let mut file = r.file;
    file.flush().map_err(io("writing an object to scratch"))?;
    drop(file);
    let path = object_file(dir, &hash);
    if path.exists() {
        // Sent twice: the same bytes, since its name is their hash.
        std::fs::remove_file(&r.temp).map_err(io("writing an object to scratch"))?;
        return Ok(());
    }
    std::fs::rename(&r.temp, path).map_err(io("writing an object to scratch"))?;
    scan.summary.objects += 1;
    scan.summary.object_bytes += r.len;
    Ok(())
}

fn finish_block(scan: &mut Scan, dir: &Path, r: Receiving) -> Result<()> {
    let name = r.block.clone().unwrap_or_default();
    let mut file = r.file;
    file.flush().map_err(io("writing a block to scratch"))?;
    drop(file);
    std::fs::rename(&r.temp, dir.join("blocks").join(&name))
        .map_err(io("writing a block to scratch"))?;
    scan.blocks.insert(name, r.len);
    scan.summary.objects += 1;
    scan.summary.object_bytes += r.len;
    Ok(())
}

/// Whether `hash` has the form of an object's name (so that it can name a
/// file of the scratch directory).
fn is_object_name(hash: &str) -> bool {
    hash.len() == 128 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Where the bytes of an object the stream holds are; `hash` must be an
/// object's name ([`is_object_name`]).
fn object_file(dir: &Path, hash: &str) -> PathBuf {
    dir.join("objects").join(hash)
}

/// Objects are named by their SHA-512 in hex (128 digits).
fn check_object_name(at: OpPosition, hash: &str) -> Result<()> {
    if hash.len() == 128 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Ok(());
    }
    Err(AdminError::Corrupt(format!(
        "{at} names an object '{hash}', which is not a Pachyderm object name (128 hex digits)"
    )))
}

/// Blocks are named by a URL-safe base64 hash, or a UUID.
fn check_block_name(at: OpPosition, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='));
    if ok {
        return Ok(());
    }
    Err(AdminError::Corrupt(format!(
        "{at} names a block '{name}', which is not a Pachyderm block name"
    )))
}

/// What the stream creates, checked: the second half of validation.
struct Plan {
    version: OpVersion,
    summary: Summary,
    ops: PathBuf,
    names: NameIndex,
    blocks: HashMap<String, u64>,
    /// Repos whose commits and branches are built: those the stream creates
    /// that no pipeline outputs to — or, when `keep_outputs`, all it creates.
    input_repos: BTreeSet<String>,
    /// Whether the stream's outputs are kept (1.9) rather than recomputed.
    keep_outputs: bool,
    /// Each commit's tree object(s), so that a commit is written as the
    /// changes from its parent.
    trees: HashMap<(String, String), Vec<String>>,
    /// Where the Pachyderm bucket holds what the stream lacks (its names
    /// and their places are in `names`).
    bucket: Option<PachydermBucket>,
    /// Pipelines in stream order, converted.
    pipelines: Vec<(String, PipelineSpec)>,
    /// What the stream names and does not create: the cluster must hold it.
    external: External,
    /// The branch of each commit built on none: the branch whose head it is
    /// or descends to (master first), as Pachyderm's 1.7 extract assigns them.
    commit_branches: HashMap<(String, String), String>,
}

/// Each commit's branch, walking every branch from its head through the
/// parents: `master` wins over other branches, otherwise the first branch
/// in stream order that reaches the commit.
fn commit_branches(
    parents: &HashMap<(String, String), String>,
    heads: &[(String, String, String)],
) -> HashMap<(String, String), String> {
    let mut out: HashMap<(String, String), String> = HashMap::new();
    let masters = heads.iter().filter(|(_, b, _)| b == "master");
    let others = heads.iter().filter(|(_, b, _)| b != "master");
    for (repo, branch, head) in masters.chain(others) {
        let mut at = head.clone();
        while !at.is_empty() {
            let key = (repo.clone(), at.clone());
            let Some(parent) = parents.get(&key) else {
                break;
            };
            if out.contains_key(&key) {
                break;
            }
            out.insert(key, branch.clone());
            at = parent.clone();
        }
    }
    out
}

/// Repos and commits a stream names without creating them, each with who
/// names it first (for the error when the cluster lacks it too).
#[derive(Default)]
struct External {
    repos: BTreeMap<String, String>,
    commits: BTreeMap<(String, String), String>,
}

impl Plan {
    fn is_output(&self, repo: &str) -> bool {
        self.pipelines.iter().any(|(n, _)| n == repo)
    }
}

fn check_trees(scan: Scan, dir: &Path) -> Result<Plan> {
    let version = scan.version.unwrap_or(OpVersion::V1_9);
    let mut plan = Plan {
        version,
        summary: scan.summary,
        ops: scan.ops,
        names: scan.names,
        blocks: scan.blocks,
        input_repos: BTreeSet::new(),
        keep_outputs: false,
        trees: HashMap::new(),
        bucket: None,
        pipelines: Vec::new(),
        external: External::default(),
        commit_branches: HashMap::new(),
    };
    let mut repos: BTreeMap<String, OpPosition> = BTreeMap::new();
    let mut commits: HashSet<(String, String)> = HashSet::new();
    // The files of the commit checked last: its child's pieces are checked
    // only where they differ.
    let mut last: Option<LastTree> = None;
    // For commits built on no branch (1.9 writes none): their parents, and
    // the branches' heads, to find each commit's branch.
    let mut parents: HashMap<(String, String), String> = HashMap::new();
    let mut heads: Vec<(String, String, String)> = Vec::new();
    let mut ops = OpsFile::open(&plan.ops)?;
    while let Some((at, op)) = ops.next()? {
        match op {
            Op::Repo { name, .. } => {
                valid_name(at, "repo", &name)?;
                if let Some(first) = repos.insert(name.clone(), at) {
                    return Err(AdminError::Corrupt(format!(
                        "{at} creates repo '{name}', which {first} created already"
                    )));
                }
                plan.summary.records += 1;
            }
            Op::Pipeline(p) => {
                let what = format!("pipeline '{}' ({at})", p.name);
                let spec = spec::convert(&p).map_err(|reason| AdminError::Unconvertible {
                    what: what.clone(),
                    reason,
                })?;
                let inputs = spec.input.as_ref().map(pach_pps::spec::input_repos);
                for (repo, _) in inputs.unwrap_or_default() {
                    if !repos.contains_key(&repo) {
                        plan.external
                            .repos
                            .entry(repo)
                            .or_insert_with(|| format!("{what} reads it"));
                    }
                }
                if plan.pipelines.iter().any(|(n, _)| *n == p.name) {
                    return Err(AdminError::Corrupt(format!("{what} is created twice")));
                }
                // A pipeline's output repo: a 1.7 or 1.8 extract does not
                // create it, a 1.9 one does (before its pipeline).
                repos.entry(p.name.clone()).or_insert(at);
                plan.pipelines.push((p.name.clone(), spec));
                plan.summary.records += 1;
            }
            Op::Commit(c) => {
                let mut external = std::mem::take(&mut plan.external);
                let checked = check_commit(
                    &plan,
                    dir,
                    at,
                    &c,
                    (&repos, &commits),
                    &mut last,
                    &mut external,
                );
                plan.external = external;
                checked?;
                commits.insert((c.repo.clone(), c.id.clone()));
                plan.trees
                    .insert((c.repo.clone(), c.id.clone()), c.trees.clone());
                if c.branch.is_empty() {
                    parents.insert((c.repo.clone(), c.id.clone()), c.parent.clone());
                }
                plan.summary.records += 1;
            }
            Op::Branch(b) => {
                check_branch(at, &b, &repos, &commits, &mut plan.external)?;
                heads.push((b.repo.clone(), b.name.clone(), b.head.clone()));
                plan.summary.records += 1;
            }
            Op::Job(j) => {
                if j.output_commit.is_none() {
                    return Err(AdminError::Corrupt(format!(
                        "{at}: a job of pipeline '{}' without its output commit",
                        j.pipeline
                    )));
                }
                for (repo, id) in j.output_commit.iter().chain(&j.stats_commit) {
                    if !commits.contains(&(repo.clone(), id.clone())) {
                        return Err(AdminError::Dangling {
                            what: format!("commit {repo}@{id}"),
                            detail: format!(
                                "the job of pipeline '{}' at {at} names it",
                                j.pipeline
                            ),
                        });
                    }
                }
            }
            // Tags were checked as they came.
            Op::Tag { .. } | Op::CreateObject { .. } => {}
            Op::ObjectValue(_) | Op::BlockValue { .. } => {}
        }
    }
    // A 1.9 extract carries its outputs (commits, branches with
    // provenance): they are kept, and its pipelines adopt their repos.
    plan.keep_outputs = version == OpVersion::V1_9;
    plan.input_repos = repos
        .keys()
        .filter(|r| plan.keep_outputs || !plan.is_output(r))
        .cloned()
        .collect();
    plan.commit_branches = commit_branches(&parents, &heads);
    Ok(plan)
}

fn valid_name(at: OpPosition, kind: &'static str, name: &str) -> Result<()> {
    pach_pfs::names::validate_name(kind, name).map_err(|e| AdminError::Unconvertible {
        what: format!("{kind} '{name}' ({at})"),
        reason: e.to_string(),
    })
}

fn check_commit(
    plan: &Plan,
    dir: &Path,
    at: OpPosition,
    c: &CommitOp,
    (repos, commits): (&BTreeMap<String, OpPosition>, &HashSet<(String, String)>),
    last: &mut Option<LastTree>,
    external: &mut External,
) -> Result<()> {
    let what = format!("commit {}@{} ({at})", c.repo, c.id);
    if !repos.contains_key(&c.repo) {
        external
            .repos
            .entry(c.repo.clone())
            .or_insert_with(|| format!("{what} is in it"));
    }
    if !pach_pfs::names::is_commit_id(&c.id) {
        return Err(AdminError::Unconvertible {
            what,
            reason: "its id is not 32 lowercase hex digits, the form of Pachyderm's (and this cluster's) commit ids".into(),
        });
    }
    if commits.contains(&(c.repo.clone(), c.id.clone())) {
        return Err(AdminError::Corrupt(format!("{what} is built twice")));
    }
    if !c.parent.is_empty() && !commits.contains(&(c.repo.clone(), c.parent.clone())) {
        external
            .commits
            .entry((c.repo.clone(), c.parent.clone()))
            .or_insert_with(|| format!("{what} names it as its parent"));
    }
    if !c.branch.is_empty() {
        pach_pfs::names::validate_branch_name(&c.branch).map_err(|e| {
            AdminError::Unconvertible {
                what: what.clone(),
                reason: e.to_string(),
            }
        })?;
    }
    for (repo, id) in &c.provenance {
        if !commits.contains(&(repo.clone(), id.clone())) {
            external
                .commits
                .entry((repo.clone(), id.clone()))
                .or_insert_with(|| format!("{what} names it in its provenance"));
        }
    }
    let mut files = Vec::new();
    for tree in &c.trees {
        match read_tree(plan, dir, tree) {
            Ok(Some(got)) => files.extend(got),
            Ok(None) => plan.names.add_missing(tree)?,
            Err(reason) => {
                return Err(AdminError::Corrupt(format!(
                    "the tree of {what} (object {tree}) does not parse: {reason}"
                )));
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    // What the parent's tree holds was checked with the parent.
    let changed = match last.take() {
        Some(l) if l.repo == c.repo && l.id == c.parent => changed_files(&l.files, &files).1,
        _ => files.clone(),
    };
    for f in &changed {
        for piece in &f.content {
            match resolve_in(plan, dir, piece) {
                Resolved::Missing(name) => plan.names.add_missing(&name)?,
                Resolved::Bad(reason) => {
                    return Err(AdminError::Corrupt(format!(
                        "file '{}' of {what}: {reason}",
                        f.path
                    )));
                }
                Resolved::Found { .. } | Resolved::Bucket(_) => {}
            }
        }
    }
    *last = Some(LastTree {
        repo: c.repo.clone(),
        id: c.id.clone(),
        files,
    });
    Ok(())
}

/// A commit's files, kept to compare its child's with: streams list a
/// repo's commits parent first, so most commits' parents are the commit
/// just before them.
struct LastTree {
    repo: String,
    id: String,
    files: Vec<TreeFile>,
}

fn check_branch(
    at: OpPosition,
    b: &BranchOp,
    repos: &BTreeMap<String, OpPosition>,
    commits: &HashSet<(String, String)>,
    external: &mut External,
) -> Result<()> {
    let what = format!("branch {}@{} ({at})", b.repo, b.name);
    if !repos.contains_key(&b.repo) {
        external
            .repos
            .entry(b.repo.clone())
            .or_insert_with(|| format!("{what} is in it"));
    }
    pach_pfs::names::validate_branch_name(&b.name).map_err(|e| AdminError::Unconvertible {
        what: what.clone(),
        reason: e.to_string(),
    })?;
    if !b.head.is_empty() && !commits.contains(&(b.repo.clone(), b.head.clone())) {
        external
            .commits
            .entry((b.repo.clone(), b.head.clone()))
            .or_insert_with(|| format!("{what} points to it"));
    }
    for (repo, _) in &b.provenance {
        if !repos.contains_key(repo) {
            external
                .repos
                .entry(repo.clone())
                .or_insert_with(|| format!("{what} names a branch of it in its provenance"));
        }
    }
    Ok(())
}

/// Where a piece of content's bytes are: a file of the scratch directory
/// and a range of it.
enum Resolved {
    Found {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
    /// In the Pachyderm cluster's bucket.
    Bucket(BucketRange),
    /// Named, but not in the stream (a `--no-objects` extract).
    Missing(String),
    Bad(String),
}

fn resolve_in(plan: &Plan, dir: &Path, piece: &ContentRef) -> Resolved {
    match piece {
        ContentRef::Object(hash) => {
            if !is_object_name(hash) {
                return Resolved::Bad(format!("'{hash}' is not a Pachyderm object name"));
            }
            let path = object_file(dir, hash);
            if let Ok(m) = std::fs::metadata(&path) {
                return Resolved::Found {
                    path,
                    offset: 0,
                    len: m.len(),
                };
            }
            match plan.names.bucket(hash) {
                Ok(Some(r)) => return Resolved::Bucket(r),
                Ok(None) => {}
                Err(e) => return Resolved::Bad(e.to_string()),
            }
            match plan.names.object_ref(hash) {
                Ok(Some(r @ ContentRef::Block { .. })) => resolve_in(plan, dir, &r),
                Ok(Some(ContentRef::Object(_))) => {
                    Resolved::Bad(format!("object {hash} refers to an object"))
                }
                Ok(None) => Resolved::Missing(hash.clone()),
                Err(e) => Resolved::Bad(e.to_string()),
            }
        }
        ContentRef::Block { hash, lower, upper } if !plan.blocks.contains_key(hash) => {
            match plan.names.bucket(hash) {
                Err(e) => Resolved::Bad(e.to_string()),
                Ok(Some(r)) if r.lower + upper <= r.upper => Resolved::Bucket(BucketRange {
                    block: r.block.clone(),
                    lower: r.lower + lower,
                    upper: r.lower + upper,
                }),
                Ok(Some(r)) => Resolved::Bad(format!(
                    "bytes {lower}..{upper} of block {hash} are named, and it has {}",
                    r.upper - r.lower
                )),
                Ok(None) => Resolved::Missing(hash.clone()),
            }
        }
        ContentRef::Block { hash, lower, upper } => match plan.blocks.get(hash) {
            Some(size) if upper <= size => Resolved::Found {
                path: dir.join("blocks").join(hash),
                offset: *lower,
                len: upper - lower,
            },
            Some(size) => Resolved::Bad(format!(
                "bytes {lower}..{upper} of block {hash} are named, and it has {size}"
            )),
            None => Resolved::Missing(hash.clone()),
        },
    }
}

/// The files of one tree object; `None` when the stream lacks its bytes.
fn read_tree(
    plan: &Plan,
    dir: &Path,
    tree: &str,
) -> std::result::Result<Option<Vec<TreeFile>>, String> {
    let (path, offset, len) = match resolve_in(plan, dir, &ContentRef::Object(tree.to_string())) {
        Resolved::Found { path, offset, len } => (path, offset, len),
        Resolved::Missing(_) | Resolved::Bucket(_) => return Ok(None),
        Resolved::Bad(reason) => return Err(reason),
    };
    let mut f = std::fs::File::open(&path).map_err(|e| format!("reading it from scratch: {e}"))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| format!("reading it from scratch: {e}"))?;
    let mut bytes = Vec::new();
    f.take(len)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("reading it from scratch: {e}"))?;
    match plan.version {
        OpVersion::V1_7 => hashtree::parse_1_7(&bytes).map(Some),
        OpVersion::V1_8 | OpVersion::V1_9 => hashtree::parse_1_9(&bytes).map(Some),
    }
}

/// What the cluster already holds is kept, as Pachyderm's restore keeps it
/// (it ignores "already exists"): a repo, a pipeline, a commit of the same
/// id. What cannot be kept is refused before anything changes: a pipeline
/// whose output repo exists as a repo of no pipeline.
async fn check_target(pps: &Pps, plan: &mut Plan) -> Result<()> {
    let pfs = pps.pfs();
    for (repo, detail) in &plan.external.repos {
        if !exists(
            pfs.inspect_repo(repo)
                .await
                .map_err(pach_pps::PpsError::from),
        )? {
            return Err(AdminError::Dangling {
                what: format!("repo '{repo}'"),
                detail: format!("{detail}, and neither the stream nor this cluster has it"),
            });
        }
        // A repo of the cluster that no pipeline writes takes the stream's
        // commits and branches, as one of the stream's input repos.
        if !plan.is_output(repo) && !exists(pps.inspect_pipeline(repo).await)? {
            plan.input_repos.insert(repo.clone());
        }
    }
    for ((repo, id), detail) in &plan.external.commits {
        let found = pfs.resolve_commit(repo, id).await;
        if !exists(found.map_err(pach_pps::PpsError::from))? {
            return Err(AdminError::Dangling {
                what: format!("commit {repo}@{id}"),
                detail: format!("{detail}, and neither the stream nor this cluster has it"),
            });
        }
    }
    for (name, spec) in &plan.pipelines {
        if exists(pps.inspect_pipeline(name).await)? {
            continue;
        }
        pps.check_spec_alone(spec).await?;
        if exists(
            pfs.inspect_repo(name)
                .await
                .map_err(pach_pps::PpsError::from),
        )? {
            return Err(AdminError::Clash {
                what: format!(
                    "repo '{name}' (the output repo of the stream's pipeline '{name}', which this cluster does not have)"
                ),
            });
        }
    }
    // Only a pipeline writes its output repo: a commit the stream would
    // build in the output repo of one of this cluster's pipelines (one it
    // does not hold already) would be refused half-way.
    let mut owned = BTreeSet::new();
    for repo in &plan.input_repos {
        if exists(pps.inspect_pipeline(repo).await)? {
            owned.insert(repo.clone());
        }
    }
    if !owned.is_empty() {
        let mut ops = OpsFile::open(&plan.ops)?;
        while let Some((at, op)) = ops.next()? {
            let Op::Commit(c) = op else { continue };
            if !owned.contains(&c.repo) {
                continue;
            }
            let found = pfs.resolve_commit(&c.repo, &c.id).await;
            if !exists(found.map_err(pach_pps::PpsError::from))? {
                return Err(AdminError::Clash {
                    what: format!(
                        "repo '{}' (the output repo of this cluster's pipeline '{}', in which {at} builds commit {})",
                        c.repo, c.repo, c.id
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Whether a lookup found its object (not found is an answer, not an error).
fn exists<T>(r: std::result::Result<T, pach_pps::PpsError>) -> Result<bool> {
    match r {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn apply(pps: &Pps, plan: &Plan, dir: &Path) -> Result<()> {
    let pfs = pps.pfs();
    // Repos first, in stream order.
    let mut ops = OpsFile::open(&plan.ops)?;
    while let Some((_, op)) = ops.next()? {
        if let Op::Repo { name, description } = op
            && plan.input_repos.contains(&name)
            && !exists(
                pfs.inspect_repo(&name)
                    .await
                    .map_err(pach_pps::PpsError::from),
            )?
        {
            pfs.create_repo(&name, &description, false).await?;
        }
    }
    if !plan.keep_outputs {
        // Pipelines before the inputs' commits: each commit starts its jobs.
        create_pipelines(pps, plan, false).await?;
    }
    let mut ops = OpsFile::open(&plan.ops)?;
    let mut last = None;
    while let Some((at, op)) = ops.next()? {
        match op {
            Op::Commit(c) if plan.input_repos.contains(&c.repo) => {
                apply_commit(pps, plan, dir, at, &c, &mut last).await?;
            }
            Op::Branch(b) if plan.input_repos.contains(&b.repo) => {
                apply_branch(pps, &b).await?;
            }
            _ => {}
        }
    }
    if plan.keep_outputs {
        // After their outputs: each adopts its repo and output branch.
        create_pipelines(pps, plan, true).await?;
        let mut ops = OpsFile::open(&plan.ops)?;
        while let Some((_, op)) = ops.next()? {
            if let Op::Job(j) = op
                && plan.is_output(&j.pipeline)
            {
                restore_job(pps, &j).await?;
            }
        }
    }
    Ok(())
}

/// A job of a 1.9 extract as this cluster records it. A job that had not
/// ended when the extract was taken is recorded killed: its output commit
/// was built finished, with what it had started from.
async fn restore_job(pps: &Pps, j: &JobOp) -> Result<()> {
    use pach_pps::records::{DatumCounts, JobRecord, JobState};
    let Some((repo, id)) = j.output_commit.clone() else {
        return Ok(());
    };
    let (output, _) = pps.pfs().resolve_commit(&repo, &id).await?;
    let pipeline = pps.inspect_pipeline(&j.pipeline).await?;
    // pps.JobState: STARTING 0, RUNNING 1, FAILURE 2, SUCCESS 3, KILLED 4,
    // MERGING 5.
    let (state, reason) = match j.state {
        2 => (JobState::Failure, j.reason.clone()),
        3 => (JobState::Success, j.reason.clone()),
        4 => (JobState::Killed, j.reason.clone()),
        _ => (
            JobState::Killed,
            "it was running when the extract this cluster was restored from was taken".into(),
        ),
    };
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let record = JobRecord {
        id: id.clone(),
        pipeline: j.pipeline.clone(),
        pipeline_version: pipeline.version,
        output_commit: pach_pfs::CommitName { repo, id },
        input_commits: output.provenance.clone(),
        state,
        reason,
        started_ns: j.started_ns,
        finished_ns: Some(if j.finished_ns > 0 {
            j.finished_ns
        } else {
            output.finished_ns.unwrap_or(j.started_ns)
        }),
        counts: DatumCounts {
            processed: count(j.data[0]),
            skipped: count(j.data[1]),
            total: count(j.data[2]),
            failed: count(j.data[3]),
            recovered: count(j.data[4]),
        },
        stats: Default::default(),
        stats_commit: j
            .stats_commit
            .clone()
            .map(|(repo, id)| pach_pfs::CommitName { repo, id }),
        log: Vec::new(),
    };
    pps.restore_job(record).await?;
    Ok(())
}

async fn create_pipelines(pps: &Pps, plan: &Plan, adopt: bool) -> Result<()> {
    for (name, spec) in &plan.pipelines {
        if exists(pps.inspect_pipeline(name).await)? {
            continue;
        }
        if adopt {
            pps.restore_pipeline(spec.clone()).await?;
        } else {
            pps.create_pipeline(spec.clone(), false, false).await?;
        }
    }
    Ok(())
}

/// Streams a range of the Pachyderm bucket into the file being written.
async fn copy_from_bucket(
    plan: &Plan,
    r: &BucketRange,
    session: &mut pach_storage::PutSession,
) -> Result<()> {
    let Some(bucket) = &plan.bucket else {
        return Err(AdminError::Corrupt(
            "content in a bucket that is not given".into(),
        ));
    };
    let mut at = r.lower;
    while at < r.upper {
        let end = r.upper.min(at + READ_BUFFER as u64);
        let bytes = bucket.store.get_range(&r.block, at..end).await?;
        if bytes.is_empty() {
            return Err(AdminError::Corrupt(format!(
                "the bucket's {} ends before byte {end}",
                r.block
            )));
        }
        session.write(&bytes).await?;
        at += bytes.len() as u64;
    }
    Ok(())
}

/// The commits' trees that the stream lacks, from the bucket into the
/// scratch directory (each checked against its name, its SHA-512), so that
/// validation reads them as if the stream held them.
async fn fetch_trees(scan: &mut Scan, dir: &Path, bucket: &PachydermBucket) -> Result<()> {
    let mut indexes = HashMap::new();
    let mut ops = OpsFile::open(&scan.ops)?;
    while let Some((at, op)) = ops.next()? {
        let Op::Commit(c) = op else { continue };
        for tree in &c.trees {
            check_object_name(at, tree)?;
            if object_file(dir, tree).exists() || scan.names.object_ref(tree)?.is_some() {
                continue;
            }
            let Some(range) = bucket.find_object(tree, &mut indexes).await? else {
                continue;
            };
            let bytes = bucket.read(&range).await?;
            if pach_storage::Sha512::of(&bytes).to_hex() != *tree {
                return Err(AdminError::Corrupt(format!(
                    "the tree of commit {}@{} ({at}) read from the bucket ({}) is not object {tree}: its bytes do not match its name",
                    c.repo, c.id, range.block
                )));
            }
            std::fs::write(object_file(dir, tree), &bytes)
                .map_err(io("writing a tree to scratch"))?;
        }
    }
    Ok(())
}

/// Everything the commits need that the stream lacks must be in the
/// bucket; without one, or if it lacks some, the restore is refused.
async fn find_missing(plan: &mut Plan, bucket: Option<&PachydermBucket>) -> Result<()> {
    let count = plan.names.missing_count();
    if count == 0 {
        return Ok(());
    }
    let Some(bucket) = bucket else {
        let first = plan.names.missing_after(None, 1)?;
        return Err(AdminError::ObjectsNotInStream {
            count: count as usize,
            first: first.into_iter().next().unwrap_or_default(),
        });
    };
    let mut indexes = HashMap::new();
    let mut lacking = 0;
    let mut first_lacking = None;
    let mut after: Option<String> = None;
    loop {
        let page = plan.names.missing_after(after.as_deref(), 1000)?;
        let Some(last) = page.last().cloned() else {
            break;
        };
        for name in page {
            let found = if name.len() == 128 {
                bucket.find_object(&name, &mut indexes).await?
            } else {
                bucket.find_block(&name, 0, 0).await?
            };
            match found {
                Some(r) => plan.names.insert_bucket(&name, &r)?,
                None => {
                    lacking += 1;
                    first_lacking.get_or_insert(name);
                }
            }
        }
        after = Some(last);
    }
    if let Some(first) = first_lacking {
        return Err(AdminError::MissingInBucket {
            count: lacking,
            first,
        });
    }
    plan.bucket = Some(bucket.clone());
    Ok(())
}

/// The files of a commit's tree(s), in path order.
fn commit_files(
    plan: &Plan,
    dir: &Path,
    at: OpPosition,
    repo: &str,
    id: &str,
    trees: &[String],
) -> Result<Vec<TreeFile>> {
    let mut files = Vec::new();
    for tree in trees {
        let got = read_tree(plan, dir, tree).map_err(|reason| {
            AdminError::Corrupt(format!("the tree of commit {repo}@{id} ({at}): {reason}"))
        })?;
        files.extend(got.unwrap_or_default());
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// What turns `old` (a parent's files) into `new`: deletions of the paths
/// that are gone, and the files that are new or whose content changed.
pub(super) fn changed_files(old: &[TreeFile], new: &[TreeFile]) -> (Vec<Change>, Vec<TreeFile>) {
    let mut deletes = Vec::new();
    let mut changed = Vec::new();
    let mut old = old.iter().peekable();
    for f in new {
        while let Some(o) = old.next_if(|o| o.path < f.path) {
            deletes.push(Change::Delete(o.path.clone()));
        }
        match old.next_if(|o| o.path == f.path) {
            Some(o) if o.content == f.content => {}
            _ => changed.push(f.clone()),
        }
    }
    deletes.extend(old.map(|o| Change::Delete(o.path.clone())));
    (deletes, changed)
}

async fn apply_commit(
    pps: &Pps,
    plan: &Plan,
    dir: &Path,
    at: OpPosition,
    c: &CommitOp,
    last: &mut Option<LastTree>,
) -> Result<()> {
    let pfs = pps.pfs();
    let found = pfs.resolve_commit(&c.repo, &c.id).await;
    if exists(found.map_err(pach_pps::PpsError::from))? {
        // Restored before: a commit's content never changes.
        return Ok(());
    }
    let files = commit_files(plan, dir, at, &c.repo, &c.id, &c.trees)?;
    // Against its parent's tree when the stream holds it: only what changed
    // is stored and written (a commit starts from its parent's files).
    let parent_trees = (!c.parent.is_empty())
        .then(|| plan.trees.get(&(c.repo.clone(), c.parent.clone())))
        .flatten();
    let (mut changes, changed) = match (last.take(), parent_trees) {
        (Some(l), _) if l.repo == c.repo && l.id == c.parent => changed_files(&l.files, &files),
        (_, Some(trees)) => {
            let old = commit_files(plan, dir, at, &c.repo, &c.parent, trees)?;
            changed_files(&old, &files)
        }
        (_, None) => (vec![Change::Delete("/".into())], files.clone()),
    };
    let mut session = pfs.content().session();
    for f in changed {
        if f.content.is_empty() {
            let e = session.put_bytes(f.path.clone(), None, b"").await?;
            changes.push(Change::Put(e));
            continue;
        }
        for (i, piece) in f.content.iter().enumerate() {
            let (path, offset, len) = match resolve_in(plan, dir, piece) {
                Resolved::Found { path, offset, len } => (path, offset, len),
                Resolved::Bucket(r) => {
                    session.begin_file(f.path.clone(), None);
                    copy_from_bucket(plan, &r, &mut session).await?;
                    let entry = session.end_file().await?;
                    changes.push(if i == 0 {
                        Change::Put(entry)
                    } else {
                        Change::Append(entry)
                    });
                    continue;
                }
                _ => {
                    return Err(AdminError::Corrupt(format!(
                        "file '{}' of commit {}@{} ({at}) lost its content after validation",
                        f.path, c.repo, c.id
                    )));
                }
            };
            session.begin_file(f.path.clone(), None);
            let (mut at, end) = (offset, offset + len);
            while at < end {
                let want = (end - at).min(READ_BUFFER as u64);
                session.write(&read_scratch(&path, at, want).await?).await?;
                at += want;
            }
            let entry = session.end_file().await?;
            changes.push(if i == 0 {
                Change::Put(entry)
            } else {
                Change::Append(entry)
            });
        }
    }
    session.finish().await?;
    let derived = plan.commit_branches.get(&(c.repo.clone(), c.id.clone()));
    let branch = match (c.branch.as_str(), derived) {
        ("", Some(b)) => Some(b.as_str()),
        ("", None) => None,
        (b, _) => Some(b),
    };
    let parent = (!c.parent.is_empty()).then_some(c.parent.as_str());
    let provenance: Vec<(String, String)> = c.provenance.clone();
    // A pipeline's output commit was made by its input commits (its
    // provenance), not by a user; 1.9's ops do not say so, its repo does.
    let origin = if plan.is_output(&c.repo) && !provenance.is_empty() {
        pach_pfs::records::Origin::Auto
    } else {
        pach_pfs::records::Origin::User
    };
    pfs.start_commit_from(
        Some(&c.id),
        &c.repo,
        branch,
        parent,
        "",
        &provenance,
        origin,
    )
    .await?;
    pfs.write_changes(&c.repo, &c.id, changes).await?;
    pfs.finish_commit(&c.repo, &c.id, None).await?;
    *last = Some(LastTree {
        repo: c.repo.clone(),
        id: c.id.clone(),
        files,
    });
    Ok(())
}

/// `len` bytes at `offset` of a scratch file, in one blocking task (most
/// pieces are small files: one task each, not one per system call).
async fn read_scratch(path: &Path, offset: u64, len: u64) -> Result<Vec<u8>> {
    let path = path.to_path_buf();
    let read = tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::open(&path)?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0; usize::try_from(len).map_err(std::io::Error::other)?];
        f.read_exact(&mut buf)?;
        Ok(buf)
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r);
    read.map_err(io("reading an object from scratch"))
}

async fn apply_branch(pps: &Pps, b: &BranchOp) -> Result<()> {
    let pfs = pps.pfs();
    let provenance: Vec<BranchName> = b
        .provenance
        .iter()
        .map(|(repo, name)| BranchName {
            repo: repo.clone(),
            name: name.clone(),
        })
        .collect();
    if let Ok(existing) = pfs.inspect_branch(&b.repo, &b.name).await {
        let head = existing.record.head.clone().unwrap_or_default();
        if head == b.head && existing.record.provenance == provenance {
            return Ok(());
        }
    }
    let head = (!b.head.is_empty()).then_some(b.head.as_str());
    pfs.create_branch(&b.repo, &b.name, head, Some(provenance))
        .await?;
    Ok(())
}
