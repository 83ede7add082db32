//! Pachyderm 1.x pipeline specs: the fields, parsing from JSON (one or several
//! concatenated objects) or YAML (one or several documents), Pachyderm's
//! defaults, and validation. Unknown fields are refused by name rather than
//! ignored, so a typo never silently changes what a pipeline does. Fields that
//! only mean something on Kubernetes are accepted, recorded and named in the
//! pipeline's [`warnings`]; fields whose feature this cluster lacks are
//! refused by [`validate`] with the reason. `docs/pipeline-spec.md` lists
//! every field and what it does here.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{PpsError, Result};
use crate::glob::Glob;

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Integers as numbers or as decimal strings: protobuf's JSON mapping writes
/// 64-bit integers as strings (`"datum_tries": "3"`), and Pachyderm reads
/// specs through it, so both spellings are the same spec.
mod int {
    use serde::Deserialize;
    use serde::de::{Deserializer, Error};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        Number(serde_json::Number),
        Text(String),
    }

    fn parse<T: std::str::FromStr, E: Error>(v: Int) -> Result<T, E> {
        let text = match v {
            Int::Number(n) => n.to_string(),
            Int::Text(t) => t,
        };
        text.trim().parse::<T>().map_err(|_| {
            E::custom(format!(
                "invalid value '{text}': expected an integer (a number or a string of digits)"
            ))
        })
    }

    pub fn de<'de, D: Deserializer<'de>, T: std::str::FromStr>(d: D) -> Result<T, D::Error> {
        parse(Int::deserialize(d)?)
    }

    pub fn de_opt<'de, D: Deserializer<'de>, T: std::str::FromStr>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        Option::<Int>::deserialize(d)?.map(parse).transpose()
    }

    pub fn de_vec<'de, D: Deserializer<'de>, T: std::str::FromStr>(
        d: D,
    ) -> Result<Vec<T>, D::Error> {
        Vec::<Int>::deserialize(d)?.into_iter().map(parse).collect()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineRef {
    pub name: String,
    /// Pachyderm 2.x projects: only the default project exists here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<ProjectRef>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectRef {
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    pub pipeline: PipelineRef,
    #[serde(default, skip_serializing_if = "is_default")]
    pub description: String,
    #[serde(default)]
    pub transform: Transform,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Input>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism_spec: Option<ParallelismSpec>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "int::de_opt"
    )]
    pub datum_tries: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datum_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub output_branch: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub standby: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Egress>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub salt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_requests: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_limits: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sidecar_resource_limits: Option<Resources>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub cache_size: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub enable_stats: bool,
    #[serde(
        default,
        skip_serializing_if = "is_default",
        deserialize_with = "int::de"
    )]
    pub max_queue_size: i64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub reprocess: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling_spec: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub pod_spec: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub pod_patch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spout: Option<Spout>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_spec: Option<ChunkSpec>,
    /// Pachyderm 1.9's hashtree sharding on Kubernetes: recorded only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashtree_spec: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub s3_out: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pub reprocess_spec: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub autoscaling: bool,
}

/// A long-running pipeline reachable on a port (Pachyderm's `service`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    #[serde(default, skip_serializing_if = "is_default")]
    pub internal_port: i32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub external_port: i32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub ip: String,
    #[serde(default, skip_serializing_if = "is_default", rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A pipeline whose user code runs on and writes tar streams to the named
/// pipe `/pfs/out`, each one commit of its output branch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spout {
    /// Each file of a tar stream replaces the file of that path, rather
    /// than being appended to it.
    #[serde(default, skip_serializing_if = "is_default")]
    pub overwrite: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
    /// The top-level directory of the output that is the spout's own state:
    /// always replaced, and given back to user code at `/pfs/<marker>` when
    /// it starts again (`marker` when empty, as Pachyderm 1.9).
    #[serde(default, skip_serializing_if = "is_default")]
    pub marker: String,
}

impl Spout {
    pub fn marker(&self) -> &str {
        if self.marker.is_empty() {
            "marker"
        } else {
            &self.marker
        }
    }
}

/// How a job's datums are shared out: `number` datums per task, or tasks of
/// about `size_bytes` of input each.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkSpec {
    #[serde(
        default,
        skip_serializing_if = "is_default",
        deserialize_with = "int::de"
    )]
    pub number: i64,
    #[serde(
        default,
        skip_serializing_if = "is_default",
        deserialize_with = "int::de"
    )]
    pub size_bytes: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transform {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stdin: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub image: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub working_dir: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "int::de_vec"
    )]
    pub accept_return_code: Vec<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub err_cmd: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub err_stdin: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub user: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub debug: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pub dockerfile: String,
}

/// A secret (`pachctl create secret`) given to user code: one key of it as
/// the environment variable `env_var`, or every key as a file under
/// `mount_path`. Only the secret's name is part of the spec, never a value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub key: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub mount_path: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub env_var: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParallelismSpec {
    #[serde(
        default,
        skip_serializing_if = "is_default",
        deserialize_with = "int::de"
    )]
    pub constant: u64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub coefficient: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Egress {
    #[serde(rename = "URL", default)]
    pub url: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "is_default")]
    pub memory: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub cpu: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub disk: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pfs: Option<PfsInput>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cross: Vec<Input>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub union: Vec<Input>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub join: Vec<Input>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group: Vec<Input>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<CronInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitInput>,
}

/// Pachyderm 1.9's git input: a branch of a git repository, fetched on a
/// webhook's push event or by polling; each new head becomes a commit of
/// the input's repo (`name`) holding the checked-out tree (`git`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitInput {
    #[serde(default, skip_serializing_if = "is_default")]
    pub name: String,
    /// `url` on the wire; 1.9's documentation writes `URL`.
    #[serde(default, alias = "URL", skip_serializing_if = "is_default")]
    pub url: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub branch: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub commit: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PfsInput {
    #[serde(default, skip_serializing_if = "is_default")]
    pub name: String,
    /// Pachyderm 2.x projects: only the default project exists here.
    #[serde(default, skip_serializing_if = "is_default")]
    pub project: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub repo: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub branch: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub commit: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub glob: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub join_on: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub outer_join: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pub group_by: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub lazy: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pub empty_files: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pub s3: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronInput {
    #[serde(default, skip_serializing_if = "is_default")]
    pub name: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub spec: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub repo: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub commit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub overwrite: bool,
}

impl CronInput {
    /// When the schedule starts (`start`), if given.
    pub fn start_time(&self) -> Option<std::time::SystemTime> {
        humantime::parse_rfc3339_weak(self.start.as_deref()?).ok()
    }
}

impl PipelineSpec {
    /// The repos of its pfs inputs, sorted, once each: what the pipeline
    /// reads as `pipeline:NAME` when auth is active.
    pub fn pfs_input_repos(&self) -> Vec<String> {
        let mut repos: Vec<String> = self
            .input
            .as_ref()
            .map(Input::walk)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.pfs.as_ref().map(|p| p.repo.clone()))
            .collect();
        repos.sort();
        repos.dedup();
        repos
    }

    /// Tries per datum before it counts as failed (Pachyderm's default: 3).
    pub fn datum_tries(&self) -> u64 {
        self.datum_tries.filter(|t| *t > 0).unwrap_or(3)
    }
    pub fn datum_timeout(&self) -> Option<Duration> {
        self.datum_timeout
            .as_deref()
            .and_then(|d| parse_duration(d).ok())
    }
    pub fn job_timeout(&self) -> Option<Duration> {
        self.job_timeout
            .as_deref()
            .and_then(|d| parse_duration(d).ok())
    }
    /// Datums run at once: `constant`, else `coefficient` × cores, else 1.
    pub fn parallelism(&self) -> usize {
        let Some(p) = &self.parallelism_spec else {
            return 1;
        };
        if p.constant > 0 {
            return p.constant as usize;
        }
        if p.coefficient > 0.0 {
            let cores = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1);
            return ((p.coefficient * cores as f64).ceil() as usize).max(1);
        }
        1
    }
}

/// Durations as Pachyderm writes them ("30s", "1m30s", "2h"), and as
/// protobuf's JSON mapping does (seconds with a fraction: "1.5s").
pub fn parse_duration(s: &str) -> std::result::Result<Duration, humantime::DurationError> {
    let s = s.trim();
    if let Some(secs) = s.strip_suffix('s')
        && let Ok(secs) = secs.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Ok(Duration::from_secs_f64(secs));
    }
    humantime::parse_duration(s)
}

/// One spec given as a JSON value (as the API receives it), with defaults
/// applied and validated.
pub fn parse_value(value: serde_json::Value) -> Result<PipelineSpec> {
    let mut spec: PipelineSpec =
        serde_json::from_value(value).map_err(|e| PpsError::InvalidSpec(e.to_string()))?;
    normalize(&mut spec);
    validate(&spec)?;
    Ok(spec)
}

/// Largest spec file accepted, in bytes. Pachyderm's specs are a few
/// kilobytes; the bound keeps parsing time small whatever a client sends.
pub const MAX_SPEC_BYTES: usize = 1 << 20;

/// Deepest nesting accepted (as [`nesting_exceeds`] counts it: close to the
/// number of nested maps and lists). Pachyderm's inputs nest a few levels
/// (`input` / `cross` / a list / `pfs`); YAML parsers take time quadratic in
/// the depth of what they parse.
pub const MAX_SPEC_DEPTH: usize = 64;

/// Refuses, before any parser sees it, a spec larger than
/// [`MAX_SPEC_BYTES`] or nested deeper than [`MAX_SPEC_DEPTH`].
pub fn check_spec_bounds(text: &str) -> Result<()> {
    if text.len() > MAX_SPEC_BYTES {
        return Err(PpsError::InvalidSpec(format!(
            "the spec file is {} bytes, more than the limit of {MAX_SPEC_BYTES} bytes (1 MiB); \
             a pipeline spec is a few kilobytes: check that the file is the spec, or split it",
            text.len()
        )));
    }
    if let Some(line) = nesting_exceeds(text, MAX_SPEC_DEPTH) {
        return Err(PpsError::InvalidSpec(format!(
            "the spec nests maps and lists more than {MAX_SPEC_DEPTH} levels deep (at line \
             {line}), the limit; pipeline specs need a few levels (input, cross, pfs): check \
             the input section"
        )));
    }
    Ok(())
}

/// The line at which the nesting of the JSON or YAML `text` passes `limit`,
/// found by one pass over the bytes, without parsing.
///
/// It follows block collections by the columns of their indicators (`- `,
/// `? `, `key: `; a list may sit at its parent key's column) and flow
/// collections (`[`, `{`) outside quoted scalars and comments, and skips the
/// text of block scalars (`|`, `>`) and of plain scalars continued on more
/// indented lines. For what a YAML parser accepts, the count is the depth of
/// nested maps and lists, or above it (a few odd forms count a level twice).
pub fn nesting_exceeds(text: &str, limit: usize) -> Option<usize> {
    let mut scan = NestingScan::default();
    for (n, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line).as_bytes();
        scan.line(line);
        if scan.deepest > limit {
            return Some(n + 1);
        }
    }
    None
}

/// One open block collection: a map or a list whose indicators sit at `col`.
struct BlockLevel {
    col: usize,
    map: bool,
    /// A map whose current value is a list at the map's own column
    /// (`key:` then `- item` below it): one more level.
    list_value: bool,
}

/// The state of [`nesting_exceeds`] between lines.
#[derive(Default)]
struct NestingScan {
    levels: Vec<BlockLevel>,
    /// The block depth `levels` makes.
    depth: usize,
    /// The deepest nesting seen so far.
    deepest: usize,
    /// Open flow collections, and the block depth they started at.
    flow_depth: usize,
    flow_base: usize,
    /// In a flow collection: the next non-blank byte starts a node (so a
    /// quote there opens a quoted scalar rather than being plain text).
    node_start: bool,
    /// Inside a quoted scalar that goes on to the next line.
    quote: Option<u8>,
    /// Lines of scalar text follow: those indented at least `.0` (and, once
    /// known, at least the first one's indentation `.1`).
    text_below: Option<(usize, Option<usize>)>,
}

fn blank_byte(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// The index after the quote closing a scalar opened by `quote`, searching
/// from `from`; `None` when it goes on past the line.
fn close_quote(line: &[u8], from: usize, quote: u8) -> Option<usize> {
    let mut p = from;
    while p < line.len() {
        match line[p] {
            b'\\' if quote == b'"' => p += 2,
            b'\'' if quote == b'\'' && line.get(p + 1) == Some(&b'\'') => p += 2,
            b if b == quote => return Some(p + 1),
            _ => p += 1,
        }
    }
    None
}

impl NestingScan {
    fn seen(&mut self, depth: usize) {
        self.deepest = self.deepest.max(depth);
    }

    /// A block entry (`-`: a list's, else a map's) at `col`; `line_start`
    /// when it is the first thing on its line (so it may continue a
    /// collection at the same column).
    fn entry(&mut self, col: usize, map: bool, line_start: bool) {
        if line_start && let Some(top) = self.levels.last_mut().filter(|l| l.col == col) {
            match (top.map, map) {
                (true, false) if !top.list_value => {
                    top.list_value = true;
                    self.depth += 1;
                }
                (true, true) if top.list_value => {
                    top.list_value = false;
                    self.depth -= 1;
                }
                (false, true) => {
                    // A map where a list was: the list ended.
                    self.levels.pop();
                    self.depth -= 1;
                    self.levels.push(BlockLevel {
                        col,
                        map,
                        list_value: false,
                    });
                    self.depth += 1;
                }
                _ => {}
            }
        } else {
            self.levels.push(BlockLevel {
                col,
                map,
                list_value: false,
            });
            self.depth += 1;
        }
        self.seen(self.depth);
    }

    /// Scans one line.
    fn line(&mut self, line: &[u8]) {
        let indent = line.iter().take_while(|&&b| b == b' ').count();
        let blank = line[indent..].iter().all(|&b| blank_byte(b));
        if let Some(quote) = self.quote {
            if let Some(end) = close_quote(line, 0, quote) {
                self.quote = None;
                self.scan(line, end, indent, false);
            }
            return;
        }
        if let Some((min, content)) = self.text_below {
            if blank {
                return;
            }
            match content {
                None if indent >= min => {
                    self.text_below = Some((min, Some(indent)));
                    return;
                }
                Some(c) if indent >= c => return,
                _ => self.text_below = None,
            }
        }
        if self.flow_depth > 0 {
            return self.scan(line, 0, indent, false);
        }
        if blank || line[indent] == b'#' || line[0] == b'%' {
            return;
        }
        let marker = line.starts_with(b"---") || line.starts_with(b"...");
        if marker && line.get(3).is_none_or(|&b| blank_byte(b)) {
            self.levels.clear();
            self.depth = 0;
            return self.scan(line, 3, 0, false);
        }
        while self.levels.last().is_some_and(|l| l.col > indent) {
            if let Some(l) = self.levels.pop() {
                self.depth -= 1 + usize::from(l.list_value);
            }
        }
        self.scan(line, indent, indent, true);
    }

    /// Scans `line` from `pos`, the innermost block node starting at column
    /// `node_col`; `line_start` while nothing before `pos` was a node.
    fn scan(&mut self, line: &[u8], mut pos: usize, mut node_col: usize, mut line_start: bool) {
        let len = line.len();
        while pos < len {
            let c = line[pos];
            if self.flow_depth > 0 {
                match c {
                    b'[' | b'{' => {
                        self.flow_depth += 1;
                        self.node_start = true;
                        self.seen(self.flow_base + self.flow_depth);
                    }
                    b']' | b'}' => {
                        self.flow_depth -= 1;
                        self.node_start = false;
                    }
                    b',' | b':' | b'?' => self.node_start = true,
                    b'"' | b'\'' if self.node_start => match close_quote(line, pos + 1, c) {
                        Some(end) => {
                            self.node_start = false;
                            pos = end;
                            continue;
                        }
                        None => {
                            self.quote = Some(c);
                            return;
                        }
                    },
                    b'#' if pos == 0 || blank_byte(line[pos - 1]) => return,
                    b' ' | b'\t' => {}
                    _ => self.node_start = false,
                }
                pos += 1;
                continue;
            }
            let then_blank = line.get(pos + 1).is_none_or(|&b| blank_byte(b));
            match c {
                b' ' | b'\t' => pos += 1,
                b'#' => return,
                b'-' | b'?' if then_blank => {
                    self.entry(pos, c == b'?', line_start);
                    line_start = false;
                    node_col = pos;
                    pos += 1;
                }
                b':' if then_blank => {
                    line_start = false;
                    pos += 1;
                }
                b'[' | b'{' => {
                    line_start = false;
                    self.flow_base = self.depth;
                    self.flow_depth = 1;
                    self.node_start = true;
                    self.seen(self.depth + 1);
                    pos += 1;
                }
                b'|' | b'>' => {
                    self.text_below = Some((node_col + 1, None));
                    return;
                }
                b'&' | b'!' | b'*' => {
                    // Anchors, tags and aliases end at a blank or a flow indicator.
                    pos += 1;
                    while pos < len && !blank_byte(line[pos]) && !b"[]{},".contains(&line[pos]) {
                        pos += 1;
                    }
                }
                _ => {
                    // A scalar: a key when `: ` follows, else a value (which
                    // more indented lines may continue).
                    let start = pos;
                    let mut p = pos;
                    if c == b'"' || c == b'\'' {
                        match close_quote(line, pos + 1, c) {
                            Some(end) => p = end,
                            None => {
                                self.quote = Some(c);
                                return;
                            }
                        }
                    }
                    let colon = loop {
                        if p >= len {
                            break None;
                        }
                        let b = line[p];
                        if b == b':' && line.get(p + 1).is_none_or(|&b| blank_byte(b)) {
                            break Some(p);
                        }
                        if b == b'#' && p > 0 && blank_byte(line[p - 1]) {
                            break None;
                        }
                        p += 1;
                    };
                    let Some(colon) = colon else {
                        self.text_below = Some((node_col + 1, Some(node_col + 1)));
                        return;
                    };
                    self.entry(start, true, line_start);
                    line_start = false;
                    node_col = start;
                    pos = colon + 1;
                }
            }
        }
    }
}

/// Parses one or several specs (JSON objects one after another, or YAML
/// documents separated by `---`), applies defaults and validates each.
/// Specs beyond [`MAX_SPEC_BYTES`] or [`MAX_SPEC_DEPTH`] are refused first.
pub fn parse_specs(text: &str) -> Result<Vec<PipelineSpec>> {
    check_spec_bounds(text)?;
    let trimmed = text.trim_start();
    let mut specs = Vec::new();
    if trimmed.starts_with('{') {
        for (i, item) in serde_json::Deserializer::from_str(trimmed)
            .into_iter::<PipelineSpec>()
            .enumerate()
        {
            specs.push(item.map_err(|e| PpsError::InvalidSpec(format!("spec #{}: {e}", i + 1)))?);
        }
    } else {
        for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let value = serde_yaml_ng::Value::deserialize(doc)
                .map_err(|e| PpsError::InvalidSpec(format!("spec #{}: {e}", i + 1)))?;
            if value.is_null() {
                continue;
            }
            let spec: PipelineSpec = serde_yaml_ng::from_value(value)
                .map_err(|e| PpsError::InvalidSpec(format!("spec #{}: {e}", i + 1)))?;
            specs.push(spec);
        }
    }
    if specs.is_empty() {
        return Err(PpsError::InvalidSpec(
            "no pipeline spec found; a spec is a JSON object or YAML document with at least `pipeline.name`, `transform.cmd` and `input`".into(),
        ));
    }
    for s in &mut specs {
        normalize(s);
        validate(s)?;
    }
    Ok(specs)
}

/// Fills Pachyderm's defaults: output branch `master`, pfs input name = repo,
/// input branch `master`, cron tick repo `<pipeline>_<cron name>`.
pub fn normalize(spec: &mut PipelineSpec) {
    if spec.output_branch.is_empty() {
        spec.output_branch = "master".into();
    }
    fn walk(i: &mut Input, pipeline: &str) {
        if let Some(p) = &mut i.pfs {
            if p.name.is_empty() {
                p.name = p.repo.clone();
            }
            if p.branch.is_empty() {
                p.branch = "master".into();
            }
        }
        if let Some(c) = &mut i.cron
            && c.repo.is_empty()
            && !c.name.is_empty()
        {
            c.repo = format!("{pipeline}_{}", c.name);
        }
        if let Some(g) = &mut i.git {
            if g.branch.is_empty() {
                g.branch = "master".into();
            }
            if g.name.is_empty() {
                g.name = crate::git::name_from_url(&g.url);
            }
        }
        for c in i
            .cross
            .iter_mut()
            .chain(i.union.iter_mut())
            .chain(i.join.iter_mut())
            .chain(i.group.iter_mut())
        {
            walk(c, pipeline);
        }
    }
    let name = spec.pipeline.name.clone();
    if let Some(i) = &mut spec.input {
        walk(i, &name);
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 63
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Checks a normalized spec; every error names the pipeline and the field.
pub fn validate(spec: &PipelineSpec) -> Result<()> {
    let name = &spec.pipeline.name;
    let err = |field: &str, why: String| {
        PpsError::InvalidSpec(format!("pipeline '{name}': {field}: {why}"))
    };
    if !valid_name(name) {
        return Err(PpsError::InvalidSpec(format!(
            "pipeline.name '{name}': a name is 1 to 63 letters, digits, '_' or '-'"
        )));
    }
    if let Some(p) = &spec.pipeline.project
        && !matches!(p.name.as_str(), "" | "default")
    {
        return Err(err(
            "pipeline.project",
            format!(
                "project '{}' does not exist; only the default project is supported",
                p.name
            ),
        ));
    }
    if spec.transform.cmd.is_empty() {
        return Err(err(
            "transform.cmd",
            "is required (the command user code runs)".into(),
        ));
    }
    validate_kinds(spec, &err)?;
    match &spec.input {
        Some(input) => {
            let mut names = Vec::new();
            validate_input(input, "input", None, &mut names, &err)?;
            names.sort();
            if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
                return Err(err(
                    "input",
                    format!(
                        "two inputs are named '{}'; give one a distinct `name`",
                        w[0]
                    ),
                ));
            }
        }
        // A spout brings its own data in.
        None if spec.spout.is_some() => {}
        None => {
            return Err(err(
                "input",
                "is required (the repos the pipeline reads)".into(),
            ));
        }
    }
    for (field, v) in [
        ("datum_timeout", &spec.datum_timeout),
        ("job_timeout", &spec.job_timeout),
    ] {
        if let Some(d) = v {
            parse_duration(d).map_err(|e| {
                err(
                    field,
                    format!("'{d}' is not a duration like \"30s\" or \"1h5m\" ({e})"),
                )
            })?;
        }
    }
    if let Some(p) = &spec.parallelism_spec
        && (p.coefficient < 0.0 || !p.coefficient.is_finite())
    {
        return Err(err(
            "parallelism_spec.coefficient",
            "must be a number >= 0".into(),
        ));
    }
    if let Some(e) = &spec.egress
        && e.url.is_empty()
    {
        return Err(err("egress.URL", "is required when egress is set".into()));
    }
    validate_fields(spec, &err)
}

/// What kind of pipeline the spec is (batch, spout, service), refusing the
/// kinds and combinations this cluster does not run.
fn validate_kinds(spec: &PipelineSpec, err: &dyn Fn(&str, String) -> PpsError) -> Result<()> {
    if let Some(service) = &spec.service {
        validate_service("service", service, err)?;
        if let Some(p) = &spec.parallelism_spec
            && (p.constant > 1 || p.coefficient > 0.0)
        {
            // As Pachyderm 1.9.
            return Err(err(
                "parallelism_spec",
                "services can only be run with a constant parallelism of 1".into(),
            ));
        }
        if spec.spout.is_some() {
            return Err(err(
                "service",
                "a pipeline is a spout or a service, not both; a spout serving a port sets \
                 `spout.service`"
                    .into(),
            ));
        }
    }
    if let Some(spout) = &spec.spout {
        if let Some(service) = &spout.service {
            validate_service("spout.service", service, err)?;
        }
        if spec.input.is_some() {
            return Err(err(
                "input",
                "a spout takes no input: its user code brings the data in through /pfs/out; \
                 remove `input`, or `spout` for a pipeline that reads repos"
                    .into(),
            ));
        }
        if spec.enable_stats {
            // As Pachyderm 1.9.
            return Err(err(
                "enable_stats",
                "spouts are not allowed to have a stats branch; remove `enable_stats`".into(),
            ));
        }
        let marker = spout.marker();
        if !valid_name(marker) && marker != "." {
            return Err(err(
                "spout.marker",
                format!("'{marker}' is not a directory name (letters, digits, '_' or '-')"),
            ));
        }
    }
    Ok(())
}

/// A service's ports and type (`field`: where it is in the spec).
fn validate_service(
    field: &str,
    service: &Service,
    err: &dyn Fn(&str, String) -> PpsError,
) -> Result<()> {
    for (name, port) in [
        ("internal_port", service.internal_port),
        ("external_port", service.external_port),
    ] {
        if !(1..=65535).contains(&port) {
            return Err(err(
                &format!("{field}.{name}"),
                format!("{port} is not a TCP port (1 to 65535); a service needs both ports"),
            ));
        }
    }
    if !matches!(
        service.kind.as_str(),
        "" | "NodePort" | "ClusterIP" | "LoadBalancer"
    ) {
        // As Pachyderm 1.9.
        return Err(err(
            &format!("{field}.type"),
            format!("the service type {} is not allowed", service.kind),
        ));
    }
    Ok(())
}

/// The fields besides the input and the kind of pipeline.
fn validate_fields(spec: &PipelineSpec, err: &dyn Fn(&str, String) -> PpsError) -> Result<()> {
    for (i, s) in spec.transform.secrets.iter().enumerate() {
        validate_secret(s, &format!("transform.secrets[{i}]"), err)?;
    }
    if let Some(p) = &spec.parallelism_spec
        && p.constant != 0
        && p.coefficient != 0.0
    {
        // As Pachyderm 1.9.
        return Err(err(
            "parallelism_spec",
            "contradictory parallelism strategies: set at most one of constant and coefficient"
                .into(),
        ));
    }
    if let Some(h) = &spec.hashtree_spec {
        let constant = h.get("constant").and_then(|c| match c {
            serde_json::Value::Number(n) => n.as_i64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        });
        if constant.is_none_or(|c| c <= 0) {
            return Err(err(
                "hashtree_spec.constant",
                "must be a number > 0 (as in Pachyderm 1.9)".into(),
            ));
        }
    }
    if !spec.cache_size.is_empty() {
        parse_quantity(&spec.cache_size).map_err(|e| err("cache_size", e))?;
    }
    for (field, text) in [("pod_spec", &spec.pod_spec), ("pod_patch", &spec.pod_patch)] {
        if !text.is_empty() && serde_json::from_str::<serde_json::Value>(text).is_err() {
            return Err(err(field, "is not valid JSON".into()));
        }
    }
    if let Some(c) = &spec.chunk_spec
        && (c.number < 0 || c.size_bytes < 0)
    {
        return Err(err(
            "chunk_spec",
            "number and size_bytes must be >= 0".into(),
        ));
    }
    if spec.max_queue_size < 0 {
        return Err(err("max_queue_size", "must be >= 0".into()));
    }
    for (field, r) in [
        ("resource_requests", &spec.resource_requests),
        ("resource_limits", &spec.resource_limits),
        ("sidecar_resource_limits", &spec.sidecar_resource_limits),
    ] {
        let Some(r) = r else { continue };
        for (what, text) in [("memory", &r.memory), ("disk", &r.disk)] {
            if !text.is_empty() {
                parse_quantity(text).map_err(|e| err(&format!("{field}.{what}"), e))?;
            }
        }
        if r.cpu < 0.0 || !r.cpu.is_finite() {
            return Err(err(&format!("{field}.cpu"), "must be a number >= 0".into()));
        }
        let gpus = r.gpu.as_ref().and_then(|g| match g.get("number")? {
            serde_json::Value::Number(n) => n.as_i64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        });
        if gpus.is_some_and(|n| n > 0) {
            let why = if std::path::Path::new("/dev/nvidia0").exists() {
                "user code cannot be given a GPU: the sandbox does not pass GPU devices in"
            } else {
                "this host has no GPU (no /dev/nvidia0)"
            };
            return Err(err(
                &format!("{field}.gpu"),
                format!("{why}; remove `gpu` to run on the CPU"),
            ));
        }
    }
    if spec.s3_out {
        return Err(err(
            "s3_out",
            "user code writing its output through an S3 sidecar is not supported by this \
             cluster; write files to /pfs/out"
                .into(),
        ));
    }
    if !matches!(spec.reprocess_spec.as_str(), "" | "until_success") {
        return Err(err(
            "reprocess_spec",
            format!(
                "'{}' is not supported: datums that succeeded are never run again here \
                 (\"until_success\"); use `update pipeline --reprocess` to run them all",
                spec.reprocess_spec
            ),
        ));
    }
    Ok(())
}

/// The limits of `resource_limits` user code runs under: bytes of address
/// space per process (`memory`), bytes per file written (`disk`).
pub fn enforced_limits(spec: &PipelineSpec) -> (Option<u64>, Option<u64>) {
    let Some(r) = &spec.resource_limits else {
        return (None, None);
    };
    let bytes = |q: &str| {
        (!q.is_empty())
            .then(|| parse_quantity(q).ok())
            .flatten()
            .map(|b| b.ceil() as u64)
    };
    (bytes(&r.memory), bytes(&r.disk))
}

/// A Kubernetes quantity ("1.5G", "512Mi", "100m", "2e3"): its value (bytes
/// for memory and disk).
pub fn parse_quantity(text: &str) -> std::result::Result<f64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(t.len());
    let (number, suffix) = t.split_at(split);
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" | "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => f64::NAN,
    };
    match number.parse::<f64>() {
        Ok(n) if n >= 0.0 && n.is_finite() && factor.is_finite() => Ok(n * factor),
        _ => Err(format!(
            "'{text}' is not a quantity like \"512Mi\", \"1.5G\" or \"100M\""
        )),
    }
}

/// The fields of `spec` that this cluster records but cannot act on (they
/// configure Kubernetes or Pachyderm's containers), each named with what
/// happens instead. Said when the pipeline is created and in its `reason`.
pub fn warnings(spec: &PipelineSpec) -> Vec<String> {
    let mut out = Vec::new();
    let mut warn = |field: &str, why: &str| out.push(format!("{field}: {why}"));
    let t = &spec.transform;
    if !t.image.is_empty() {
        warn(
            "transform.image",
            "not pulled; user code runs with this host's tools in a sandbox (docs/sandbox.md)",
        );
    }
    if !t.image_pull_secrets.is_empty() {
        warn("transform.image_pull_secrets", "unused: no image is pulled");
    }
    if !t.user.is_empty() {
        warn(
            "transform.user",
            "ignored; user code runs as root of its own user namespace (docs/sandbox.md)",
        );
    }
    if !t.dockerfile.is_empty() {
        warn("transform.dockerfile", "unused: no image is built");
    }
    if t.debug {
        warn(
            "transform.debug",
            "ignored; pachd's log level is set with RUST_LOG",
        );
    }
    if spec.hashtree_spec.is_some() {
        warn(
            "hashtree_spec",
            "ignored; a commit's file index is sharded by content, not by hashtree pods",
        );
    }
    if !spec.cache_size.is_empty() {
        warn(
            "cache_size",
            "ignored; there is no sidecar, and pachd's index cache is shared",
        );
    }
    if spec.max_queue_size > 0 {
        warn(
            "max_queue_size",
            "ignored; a worker runs one datum at a time and reads the next ones ahead",
        );
    }
    if spec.scheduling_spec.is_some() {
        warn(
            "scheduling_spec",
            "ignored; there are no Kubernetes nodes to choose",
        );
    }
    if !spec.pod_spec.is_empty() {
        warn("pod_spec", "ignored; workers are not Kubernetes pods");
    }
    if !spec.pod_patch.is_empty() {
        warn("pod_patch", "ignored; workers are not Kubernetes pods");
    }
    if spec
        .service
        .as_ref()
        .is_some_and(|s| !s.annotations.is_empty())
    {
        warn(
            "service.annotations",
            "recorded only; there is no Kubernetes service to annotate",
        );
    }
    if spec
        .spout
        .as_ref()
        .and_then(|s| s.service.as_ref())
        .is_some_and(|s| !s.annotations.is_empty())
    {
        warn(
            "spout.service.annotations",
            "recorded only; there is no Kubernetes service to annotate",
        );
    }
    if spec.sidecar_resource_limits.is_some() {
        warn("sidecar_resource_limits", "ignored; there is no sidecar");
    }
    if spec.metadata.is_some() {
        warn(
            "metadata",
            "recorded only; there are no Kubernetes objects to annotate",
        );
    }
    if spec.autoscaling {
        warn(
            "autoscaling",
            "always so here: workers run only while a job has datums",
        );
    }
    if let Some(r) = &spec.resource_requests
        && (!r.memory.is_empty() || r.cpu > 0.0 || !r.disk.is_empty())
    {
        warn(
            "resource_requests",
            "ignored; they place workers on Kubernetes nodes (resource_limits are enforced)",
        );
    }
    if let Some(r) = &spec.resource_limits {
        if r.cpu > 0.0 {
            warn(
                "resource_limits.cpu",
                "not enforced: this host gives pachd no writable cgroup v2 to share CPU with",
            );
        }
        if !r.memory.is_empty() {
            warn(
                "resource_limits.memory",
                "enforced as each process's address space (RLIMIT_AS), which counts memory \
                 mapped but not used too",
            );
        }
        if !r.disk.is_empty() {
            warn(
                "resource_limits.disk",
                "enforced on each file user code writes (RLIMIT_FSIZE), not on their total",
            );
        }
    }
    if let Some(input) = &spec.input {
        for i in input.walk() {
            if let Some(p) = &i.pfs
                && !p.commit.is_empty()
            {
                warn(
                    &format!("input.pfs.commit of '{}'", p.name),
                    "ignored, as in Pachyderm 1.9: each job reads the commit of the branch it runs for",
                );
            }
            if let Some(c) = &i.cron
                && !c.commit.is_empty()
            {
                warn(
                    &format!("input.cron.commit of '{}'", c.name),
                    "ignored, as in Pachyderm 1.9: each job reads the tick it runs for",
                );
            }
            if let Some(g) = &i.git
                && !g.commit.is_empty()
            {
                warn(
                    &format!("input.git.commit of '{}'", g.name),
                    "ignored, as in Pachyderm 1.9: each job reads the checked-out tree it runs for",
                );
            }
        }
    }
    out
}

/// A secret reference names an existing-looking secret and says how user
/// code gets it: one key as an environment variable, or all keys as files.
fn validate_secret(
    s: &SecretRef,
    path: &str,
    err: &dyn Fn(&str, String) -> PpsError,
) -> Result<()> {
    if !valid_secret_name(&s.name) {
        return Err(err(
            &format!("{path}.name"),
            format!(
                "'{}' is not a secret name (1 to 253 lowercase letters, digits, '-' or '.')",
                s.name
            ),
        ));
    }
    match (s.env_var.is_empty(), s.mount_path.is_empty()) {
        (false, false) | (true, true) => Err(err(
            path,
            "set either env_var (with key) or mount_path".into(),
        )),
        (false, true) => {
            let ident = s
                .env_var
                .chars()
                .next()
                .is_some_and(|c| !c.is_ascii_digit())
                && s.env_var
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ident {
                return Err(err(
                    &format!("{path}.env_var"),
                    format!(
                        "'{}' is not an environment variable name (letters, digits and '_', not starting with a digit)",
                        s.env_var
                    ),
                ));
            }
            if s.key.is_empty() {
                return Err(err(
                    &format!("{path}.key"),
                    "is required with env_var (the key of the secret to put in it)".into(),
                ));
            }
            Ok(())
        }
        (true, false) => {
            let p = &s.mount_path;
            let clean = p.starts_with('/')
                && p.len() > 1
                && p[1..]
                    .split('/')
                    .all(|c| !c.is_empty() && c != "." && c != "..");
            if !clean {
                return Err(err(
                    &format!("{path}.mount_path"),
                    format!("'{p}' is not an absolute directory path like /secrets/db"),
                ));
            }
            if p == "/pfs" || p.starts_with("/pfs/") || p == "/tmp" || p.starts_with("/tmp/") {
                return Err(err(
                    &format!("{path}.mount_path"),
                    format!(
                        "'{p}' is inside /pfs or /tmp, which hold the datum; choose another directory"
                    ),
                ));
            }
            Ok(())
        }
    }
}

/// Kubernetes' secret names (DNS subdomains), which Pachyderm's secrets are.
pub fn valid_secret_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && n.starts_with(|c: char| c.is_ascii_alphanumeric())
        && n.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn validate_input(
    input: &Input,
    path: &str,
    parent: Option<&str>,
    names: &mut Vec<String>,
    err: &dyn Fn(&str, String) -> PpsError,
) -> Result<()> {
    let set = [
        input.git.is_some(),
        input.pfs.is_some(),
        !input.cross.is_empty(),
        !input.union.is_empty(),
        !input.join.is_empty(),
        !input.group.is_empty(),
        input.cron.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set != 1 {
        return Err(err(
            path,
            format!(
                "exactly one of pfs, cross, union, join, group, cron or git must be set ({set} are)"
            ),
        ));
    }
    if let Some(g) = &input.git {
        let f = |x: &str| format!("{path}.git.{x}");
        crate::git::check_url(&g.url).map_err(|e| err(&f("URL"), e))?;
        if !valid_name(&g.name) || g.name == "out" {
            return Err(err(
                &f("name"),
                format!(
                    "'{}' is not a valid input name (it names the input's repo too); give \"name\" explicitly",
                    g.name
                ),
            ));
        }
        pach_pfs::names::validate_branch_name(&g.branch)
            .map_err(|e| err(&f("branch"), format!("'{}': {e}", g.branch)))?;
        if matches!(parent, Some("join") | Some("group")) {
            return Err(err(
                path,
                "a git input cannot be part of a join or group".into(),
            ));
        }
        names.push(g.name.clone());
    }
    if let Some(p) = &input.pfs {
        let f = |x: &str| format!("{path}.pfs.{x}");
        if p.s3 {
            return Err(err(
                &f("s3"),
                "inputs served to user code through an S3 sidecar are not supported by this \
                 cluster; read the files under /pfs, or from the S3 gateway at $S3_ENDPOINT"
                    .into(),
            ));
        }
        if p.repo.is_empty() {
            return Err(err(&f("repo"), "is required".into()));
        }
        if !valid_name(&p.repo) {
            return Err(err(
                &f("repo"),
                format!("'{}' is not a valid repo name", p.repo),
            ));
        }
        if !matches!(p.project.as_str(), "" | "default") {
            return Err(err(
                &f("project"),
                format!(
                    "project '{}' does not exist; only the default project is supported",
                    p.project
                ),
            ));
        }
        if p.glob.is_empty() {
            return Err(err(
                &f("glob"),
                "is required (\"/\" for the whole repo, \"/*\" for each top-level entry)".into(),
            ));
        }
        Glob::new(&p.glob).map_err(|e| err(&f("glob"), format!("'{}': {e}", p.glob)))?;
        if p.name == "out" {
            return Err(err(&f("name"), "'out' is reserved for /pfs/out".into()));
        }
        if !valid_name(&p.name) {
            return Err(err(
                &f("name"),
                format!("'{}' is not a valid input name", p.name),
            ));
        }
        match parent {
            Some("join") if p.join_on.is_empty() => {
                return Err(err(
                    &f("join_on"),
                    "is required inside a join (e.g. \"$1\")".into(),
                ));
            }
            Some("group") if p.group_by.is_empty() => {
                return Err(err(
                    &f("group_by"),
                    "is required inside a group (e.g. \"$1\")".into(),
                ));
            }
            _ => {}
        }
        if !p.join_on.is_empty() && parent != Some("join") {
            return Err(err(
                &f("join_on"),
                "is only meaningful inside a join input".into(),
            ));
        }
        if p.outer_join && parent != Some("join") {
            return Err(err(
                &f("outer_join"),
                "is only meaningful inside a join input".into(),
            ));
        }
        if !p.group_by.is_empty() && parent != Some("group") {
            return Err(err(
                &f("group_by"),
                "is only meaningful inside a group input".into(),
            ));
        }
        names.push(p.name.clone());
    }
    if let Some(c) = &input.cron {
        let f = |x: &str| format!("{path}.cron.{x}");
        if !valid_name(&c.name) || c.name == "out" {
            return Err(err(
                &f("name"),
                format!("'{}' is not a valid input name", c.name),
            ));
        }
        crate::cron::Schedule::parse(&c.spec).map_err(|e| err(&f("spec"), e.to_string()))?;
        if let Some(s) = &c.start {
            humantime::parse_rfc3339_weak(s)
                .map_err(|e| err(&f("start"), format!("'{s}' is not an RFC 3339 time ({e})")))?;
        }
        if matches!(parent, Some("join") | Some("group")) {
            return Err(err(
                path,
                "a cron input cannot be part of a join or group".into(),
            ));
        }
        names.push(c.name.clone());
    }
    for (kind, children) in [
        ("cross", &input.cross),
        ("union", &input.union),
        ("join", &input.join),
        ("group", &input.group),
    ] {
        for (i, c) in children.iter().enumerate() {
            if matches!(kind, "join" | "group") && c.pfs.is_none() {
                return Err(err(
                    &format!("{path}.{kind}[{i}]"),
                    format!("every input of a {kind} must be a pfs input"),
                ));
            }
            validate_input(c, &format!("{path}.{kind}[{i}]"), Some(kind), names, err)?;
        }
    }
    Ok(())
}

/// Every repo and branch the input reads (pfs and cron inputs), in tree
/// order, without repeats.
pub fn input_repos(input: &Input) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for i in input.walk() {
        let found = match (&i.pfs, &i.cron, &i.git) {
            (Some(p), _, _) => Some((p.repo.clone(), p.branch.clone())),
            (None, Some(c), _) => Some((c.repo.clone(), String::new())),
            (None, None, Some(g)) => Some((g.name.clone(), g.branch.clone())),
            _ => None,
        };
        if let Some((repo, branch)) = found {
            let branch = if branch.is_empty() {
                "master".into()
            } else {
                branch
            };
            if !out.iter().any(|(r, b)| *r == repo && *b == branch) {
                out.push((repo, branch));
            }
        }
    }
    out
}

impl Input {
    /// The sub-inputs of a cross, union, join or group.
    pub fn children(&self) -> impl Iterator<Item = &Input> {
        self.cross
            .iter()
            .chain(&self.union)
            .chain(&self.join)
            .chain(&self.group)
    }

    /// Every input of the tree, depth first, this one first.
    pub fn walk(&self) -> Vec<&Input> {
        let mut out = vec![self];
        for c in self.children() {
            out.extend(c.walk());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EDGES: &str = r#"{"pipeline":{"name":"edges"},"description":"A pipeline that performs image edge detection by using the OpenCV library.","transform":{"cmd":["python3","/edges.py"],"image":"pachyderm/opencv"},"input":{"pfs":{"repo":"images","glob":"/*"}}}"#;
    const MONTAGE: &str = r#"{
  "pipeline": {"name": "montage"},
  "description": "A pipeline that combines images from the `images` and `edges` repositories into a montage.",
  "input": {"cross": [{"pfs": {"glob": "/", "repo": "images"}}, {"pfs": {"glob": "/", "repo": "edges"}}]},
  "transform": {
    "cmd": ["sh"],
    "image": "v4tech/imagemagick",
    "stdin": ["montage -shadow -background SkyBlue -geometry 300x300+2+2 $(find -L /pfs/images /pfs/edges -type f | sort) /pfs/out/montage.png"]
  }
}"#;

    fn one(text: &str) -> PipelineSpec {
        let mut v = parse_specs(text).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    fn invalid(text: &str) -> String {
        match parse_specs(text) {
            Err(PpsError::InvalidSpec(m)) => m,
            other => panic!("expected an invalid spec, got {other:?}"),
        }
    }

    #[test]
    fn pachyderm_examples_parse_with_defaults() {
        let e = one(EDGES);
        assert_eq!(e.pipeline.name, "edges");
        assert_eq!(e.transform.cmd, ["python3", "/edges.py"]);
        assert_eq!(e.output_branch, "master");
        let pfs = e.input.as_ref().unwrap().pfs.as_ref().unwrap();
        assert_eq!(
            (pfs.name.as_str(), pfs.branch.as_str()),
            ("images", "master")
        );
        assert_eq!(e.datum_tries(), 3);
        assert_eq!(e.parallelism(), 1);
        let m = one(MONTAGE);
        assert_eq!(m.input.as_ref().unwrap().cross.len(), 2);
        assert_eq!(
            input_repos(m.input.as_ref().unwrap()),
            [
                ("images".to_string(), "master".to_string()),
                ("edges".to_string(), "master".to_string())
            ]
        );
        // Re-serialised specs parse back to the same thing.
        let again = one(&serde_json::to_string(&m).unwrap());
        assert_eq!(again, m);
    }

    #[test]
    fn several_specs_per_file_in_json_and_yaml() {
        let both = parse_specs(&format!("{EDGES}\n{MONTAGE}")).unwrap();
        assert_eq!(both.len(), 2);
        let yaml = "pipeline: {name: a}\ntransform: {cmd: [sh]}\ninput: {pfs: {repo: r, glob: /*}}\n---\npipeline: {name: b}\ntransform: {cmd: [sh]}\ninput: {cron: {name: tick, spec: \"@every 10s\"}}\n";
        let v = parse_specs(yaml).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[1].input.as_ref().unwrap().cron.as_ref().unwrap().repo,
            "b_tick"
        );
        assert!(invalid("  \n").contains("no pipeline spec"));
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_named() {
        let m = invalid(&EDGES.replace("\"transform\"", "\"transfrom\""));
        assert!(m.contains("transfrom"), "{m}");
        let m = invalid(&EDGES.replace("\"glob\"", "\"glog\""));
        assert!(m.contains("glog"), "{m}");
        let m = invalid(
            r#"{"pipeline":{"name":"x"},"transform":{"cmd":"sh"},"input":{"pfs":{"repo":"r","glob":"/"}}}"#,
        );
        assert!(m.contains("invalid type"), "{m}");
        let m = invalid(
            "pipeline: {name: x}\ntransform: {cmd: [sh], bogus: 1}\ninput: {pfs: {repo: r, glob: /}}\n",
        );
        assert!(m.contains("bogus"), "{m}");
    }

    #[test]
    fn validation_names_the_field() {
        let base = |input: &str| {
            format!(r#"{{"pipeline":{{"name":"p"}},"transform":{{"cmd":["sh"]}},"input":{input}}}"#)
        };
        let cases = [
            (base(r#"{"pfs":{"repo":"r","glob":"/[a"}}"#), "input.pfs.glob"),
            (base(r#"{"pfs":{"repo":"r"}}"#), "input.pfs.glob"),
            (base(r#"{"pfs":{"glob":"/"}}"#), "input.pfs.repo"),
            (base(r#"{"pfs":{"repo":"r","glob":"/"},"cross":[{"pfs":{"repo":"s","glob":"/"}}]}"#), "exactly one"),
            (base(r#"{}"#), "exactly one"),
            (base(r#"{"cross":[{"pfs":{"repo":"r","glob":"/"}},{"pfs":{"repo":"r","glob":"/*"}}]}"#), "two inputs are named 'r'"),
            (base(r#"{"join":[{"pfs":{"repo":"a","glob":"/(*)"}},{"pfs":{"repo":"b","glob":"/(*)","join_on":"$1"}}]}"#), "input.join[0].pfs.join_on"),
            (base(r#"{"pfs":{"repo":"a","glob":"/(*)","join_on":"$1"}}"#), "only meaningful inside a join"),
            (base(r#"{"group":[{"pfs":{"repo":"a","glob":"/(*)"}}]}"#), "group_by"),
            (base(r#"{"pfs":{"repo":"a","glob":"/","name":"out"}}"#), "reserved"),
            (base(r#"{"cron":{"name":"t","spec":"every day"}}"#), "input.cron.spec"),
            (r#"{"pipeline":{"name":"bad name"},"transform":{"cmd":["sh"]},"input":{"pfs":{"repo":"r","glob":"/"}}}"#.to_string(), "pipeline.name"),
            (r#"{"pipeline":{"name":"p"},"transform":{},"input":{"pfs":{"repo":"r","glob":"/"}}}"#.to_string(), "transform.cmd"),
            (r#"{"pipeline":{"name":"p"},"transform":{"cmd":["sh"]}}"#.to_string(), "input"),
            (r#"{"pipeline":{"name":"p"},"transform":{"cmd":["sh"]},"datum_timeout":"soon","input":{"pfs":{"repo":"r","glob":"/"}}}"#.to_string(), "datum_timeout"),
            (r#"{"pipeline":{"name":"p"},"transform":{"cmd":["sh"]},"egress":{},"input":{"pfs":{"repo":"r","glob":"/"}}}"#.to_string(), "egress.URL"),
        ];
        for (spec, needle) in cases {
            let m = invalid(&spec);
            assert!(m.contains(needle), "{spec}\n=> {m}");
        }
    }

    #[test]
    fn integers_as_strings_and_protobuf_durations_are_the_same_spec() {
        let a = one(
            r#"{"pipeline":{"name":"p"},"transform":{"cmd":["sh"],"accept_return_code":[1,"2"]},"datum_tries":"4","max_queue_size":"7","parallelism_spec":{"constant":"3"},"datum_timeout":"1.5s","input":{"pfs":{"repo":"r","glob":"/"}}}"#,
        );
        assert_eq!(a.datum_tries(), 4);
        assert_eq!(a.max_queue_size, 7);
        assert_eq!(a.parallelism(), 3);
        assert_eq!(a.transform.accept_return_code, [1, 2]);
        assert_eq!(a.datum_timeout(), Some(Duration::from_millis(1500)));
        let m = invalid(
            r#"{"pipeline":{"name":"p"},"transform":{"cmd":["sh"]},"datum_tries":"many","input":{"pfs":{"repo":"r","glob":"/"}}}"#,
        );
        assert!(m.contains("'many'") && m.contains("integer"), "{m}");
    }

    #[test]
    fn secrets_say_how_user_code_gets_them() {
        let with = |secret: &str| {
            format!(
                r#"{{"pipeline":{{"name":"p"}},"transform":{{"cmd":["sh"],"secrets":[{secret}]}},"input":{{"pfs":{{"repo":"r","glob":"/"}}}}}}"#
            )
        };
        let s = one(&with(r#"{"name":"db","env_var":"PW","key":"password"}"#));
        assert_eq!(s.transform.secrets[0].key, "password");
        one(&with(r#"{"name":"tls.certs","mount_path":"/secrets/tls"}"#));
        for (secret, needle) in [
            (r#"{"name":"db"}"#, "either env_var"),
            (
                r#"{"name":"db","env_var":"PW","mount_path":"/s"}"#,
                "either env_var",
            ),
            (r#"{"name":"db","env_var":"PW"}"#, "secrets[0].key"),
            (
                r#"{"name":"db","env_var":"1PW","key":"k"}"#,
                "secrets[0].env_var",
            ),
            (
                r#"{"name":"Bad_Name","env_var":"PW","key":"k"}"#,
                "secrets[0].name",
            ),
            (r#"{"name":"db","mount_path":"secrets"}"#, "absolute"),
            (r#"{"name":"db","mount_path":"/pfs/x"}"#, "inside /pfs"),
            (r#"{"name":"db","mount_path":"/a/../etc"}"#, "absolute"),
            (r#"{"name":"db","value":"x"}"#, "unknown field `value`"),
        ] {
            let m = invalid(&with(secret));
            assert!(m.contains(needle), "{secret} => {m}");
        }
    }

    #[test]
    fn durations_tries_and_parallelism() {
        let s = one(
            r#"{"pipeline":{"name":"p"},"transform":{"cmd":["sh"]},"datum_tries":1,"datum_timeout":"1m30s","job_timeout":"2h","parallelism_spec":{"constant":4},"input":{"pfs":{"repo":"r","glob":"/"}}}"#,
        );
        assert_eq!(s.datum_tries(), 1);
        assert_eq!(s.datum_timeout(), Some(Duration::from_secs(90)));
        assert_eq!(s.job_timeout(), Some(Duration::from_secs(7200)));
        assert_eq!(s.parallelism(), 4);
    }

    #[test]
    fn every_field_works_warns_or_is_refused() {
        let with = |extra: &str| {
            format!(
                r#"{{"pipeline":{{"name":"p"}},"transform":{{"cmd":["sh"]}},"input":{{"pfs":{{"repo":"r","glob":"/"}}}}{extra}}}"#
            )
        };
        // Refused, each naming the field and the way out.
        for (extra, needle) in [
            (
                r#","service":{"internal_port":8000}"#,
                "service.external_port",
            ),
            (r#","spout":{}"#, "a spout takes no input"),
            (r#","s3_out":true"#, "s3_out"),
            (r#","reprocess_spec":"every_job""#, "reprocess_spec"),
            (
                r#","parallelism_spec":{"constant":1,"coefficient":1}"#,
                "contradictory",
            ),
            (
                r#","hashtree_spec":{"constant":0}"#,
                "hashtree_spec.constant",
            ),
            (r#","cache_size":"lots""#, "cache_size"),
            (r#","pod_spec":"{not json""#, "pod_spec"),
            (r#","chunk_spec":{"number":-1}"#, "chunk_spec"),
            (
                r#","resource_limits":{"memory":"1Q"}"#,
                "resource_limits.memory",
            ),
            (
                r#","resource_limits":{"gpu":{"type":"nvidia.com/gpu","number":1}}"#,
                "resource_limits.gpu",
            ),
        ] {
            let m = invalid(&with(extra));
            assert!(m.contains(needle), "{extra} => {m}");
        }
        // Git inputs: 1.9's defaults (branch master, name from the URL), the
        // documentation's "URL" spelling, and clear refusals.
        let git = |g: &str| {
            format!(
                r#"{{"pipeline":{{"name":"p"}},"transform":{{"cmd":["sh"]}},"input":{{"git":{g}}}}}"#
            )
        };
        let s = one(&git(r#"{"URL":"https://github.com/x/my-code.git"}"#));
        let g = s.input.as_ref().unwrap().git.clone().unwrap();
        assert_eq!((g.name.as_str(), g.branch.as_str()), ("my-code", "master"));
        let s = one(&git(
            r#"{"url":"file:///srv/r.git","name":"src","branch":"dev"}"#,
        ));
        let g = s.input.as_ref().unwrap().git.clone().unwrap();
        assert_eq!((g.name.as_str(), g.branch.as_str()), ("src", "dev"));
        for (g, needle) in [
            (r#"{"url":""}"#, "input.git.URL"),
            (r#"{"url":"ext::sh -c touch% /tmp/x"}"#, "input.git.URL"),
            (r#"{"url":"/srv/r.git"}"#, "file://"),
            (
                r#"{"url":"https://h/r.git","name":"out"}"#,
                "input.git.name",
            ),
            (
                r#"{"url":"https://h/r.git","branch":"a b"}"#,
                "input.git.branch",
            ),
        ] {
            let m = invalid(&git(g));
            assert!(m.contains(needle), "{g} => {m}");
        }
        let spout = r#"{"pipeline":{"name":"p"},"transform":{"cmd":["sh"]},"spout":{"overwrite":true},"enable_stats":true}"#;
        assert!(invalid(spout).contains("stats branch"));
        let spout = r#"{"pipeline":{"name":"p"},"transform":{"cmd":["sh"]},"spout":{"service":{"internal_port":1}}}"#;
        assert!(invalid(spout).contains("spout.service.external_port"));
        // A spout serving a port.
        let s = one(
            r#"{"pipeline":{"name":"p"},"transform":{"cmd":["sh"]},"spout":{"service":{"internal_port":1,"external_port":2}}}"#,
        );
        assert_eq!(s.spout.unwrap().service.unwrap().external_port, 2);
        // A spout needs no input.
        let s = one(
            r#"{"pipeline":{"name":"p"},"transform":{"cmd":["sh"]},"spout":{"overwrite":true}}"#,
        );
        assert!(s.spout.as_ref().unwrap().overwrite);
        assert_eq!(s.spout.as_ref().unwrap().marker(), "marker");
        // Accepted with a warning naming each Kubernetes-only field.
        let s = one(&with(
            r#","cache_size":"64M","max_queue_size":"2","scheduling_spec":{"node_selector":{"a":"b"}},"pod_spec":"{}","pod_patch":"[]","hashtree_spec":{"constant":"2"},"resource_requests":{"memory":"1Gi","cpu":0.5}"#,
        ));
        let w = warnings(&s).join("\n");
        for field in [
            "cache_size",
            "max_queue_size",
            "scheduling_spec",
            "pod_spec",
            "pod_patch",
            "hashtree_spec",
            "resource_requests",
        ] {
            assert!(w.contains(&format!("{field}: ")), "{field} not in {w}");
        }
        assert!(
            warnings(&one(EDGES))
                .iter()
                .any(|w| w.starts_with("transform.image"))
        );
        assert!(warnings(&one(&with(""))).is_empty());
        // Chunks and cron starts as the proto's JSON writes them.
        let s = one(&with(r#","chunk_spec":{"number":"2","size_bytes":"1000"}"#));
        assert_eq!(
            s.chunk_spec.as_ref().map(|c| (c.number, c.size_bytes)),
            Some((2, 1000))
        );
        assert_eq!(parse_quantity("1.5Gi").unwrap(), 1.5 * 1024f64.powi(3));
        assert_eq!(parse_quantity("100M").unwrap(), 1e8);
        assert_eq!(parse_quantity("2e3").unwrap(), 2000.0);
    }

    /// The nesting that once held pachd's CPU: 50,000 levels in each of the
    /// forms YAML and JSON allow, refused before parsing. (Parsed, the YAML
    /// ones inside a spec took 7 to 60 s in a debug build, growing with the
    /// square of the depth; the parser's own recursion limit only stops it
    /// after that.)
    #[test]
    fn deeply_nested_specs_are_refused_fast() {
        const DEEP: usize = 50_000;
        let forms = [
            (
                "flow lists",
                format!("{}{}", "[".repeat(DEEP), "]".repeat(DEEP)),
            ),
            (
                "flow maps",
                format!("{}1{}", "{a: ".repeat(DEEP), "}".repeat(DEEP)),
            ),
            ("block lists", format!("{}x\n", "- ".repeat(DEEP))),
            (
                "json",
                format!("{}1{}", "{\"a\":".repeat(DEEP), "}".repeat(DEEP)),
            ),
            (
                "description",
                format!(
                    "pipeline: {{name: p}}\ndescription: {}{}\n",
                    "[".repeat(DEEP),
                    "]".repeat(DEEP)
                ),
            ),
            (
                "spec input",
                format!(
                    "pipeline: {{name: p}}\ntransform: {{cmd: [sh]}}\ninput: {}{{pfs: {{repo: r, glob: /}}}}{}\n",
                    "{cross: [".repeat(DEEP),
                    "]}".repeat(DEEP)
                ),
            ),
        ];
        for (form, text) in forms {
            let started = std::time::Instant::now();
            let m = invalid(&text);
            assert!(m.contains("more than 64 levels"), "{form}: {m}");
            assert!(
                started.elapsed() < Duration::from_millis(500),
                "{form}: {:?}",
                started.elapsed()
            );
        }
        // Indentation alone, as deep as fits in the size limit.
        let mut text = String::new();
        for level in 0..1000 {
            text.push_str(&" ".repeat(level));
            text.push_str("a:\n");
        }
        assert!(invalid(&text).contains("64 levels"));
        let big = format!("description: {}\n", "x".repeat(MAX_SPEC_BYTES));
        assert!(invalid(&big).contains("1 MiB"));
    }

    /// The count is the real depth of what serializers write, in JSON
    /// (compact and pretty) and YAML.
    #[test]
    fn nesting_estimate_bounds_the_real_depth() {
        fn real_depth(v: &serde_json::Value) -> usize {
            match v {
                serde_json::Value::Array(items) => {
                    1 + items.iter().map(real_depth).max().unwrap_or(0)
                }
                serde_json::Value::Object(m) => 1 + m.values().map(real_depth).max().unwrap_or(0),
                _ => 0,
            }
        }
        for levels in 1..40 {
            let mut value = serde_json::json!("leaf");
            for level in 0..levels {
                value = if level % 2 == 0 {
                    serde_json::json!({ "k": value, "other": [1, 2] })
                } else {
                    serde_json::json!([0, value])
                };
            }
            let depth = real_depth(&value);
            let texts = [
                serde_json::to_string(&value).unwrap(),
                serde_json::to_string_pretty(&value).unwrap(),
                serde_yaml_ng::to_string(&value).unwrap(),
            ];
            for text in texts {
                assert!(
                    nesting_exceeds(&text, depth - 1).is_some(),
                    "depth {depth} not seen in:\n{text}"
                );
                assert!(
                    nesting_exceeds(&text, depth).is_none(),
                    "depth {depth} counted beyond:\n{text}"
                );
            }
        }
    }

    /// What looks like nesting inside scalars, quotes, comments and block
    /// text is text.
    #[test]
    fn brackets_in_text_are_not_nesting() {
        let noise = "[[[[{{{{".repeat(20);
        let text = format!(
            "# {noise}\npipeline:\n  name: p # {noise}\ndescription: it's a [[[[ pipeline\n  continued {noise}\n\
             transform:\n  cmd: [sh, '{noise}', \"{noise}\"]\n  stdin:\n  - |\n    awk '{noise}'\n\n    {noise}\n\
             input:\n  pfs: {{repo: r, glob: \"/*\"}}\n"
        );
        let s = one(&text);
        assert_eq!(s.transform.cmd[1], noise);
        assert!(s.transform.stdin[0].contains(&noise));
    }
}
