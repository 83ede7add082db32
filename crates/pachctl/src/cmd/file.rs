//! `put/get/list/glob/diff/inspect/delete/copy file`, through `pfs.API`.
//!
//! As in Pachyderm 1.9, `put file` appends to existing files unless
//! `-o/--overwrite` is given, and every file of one `put file` lands in one
//! commit (one PutFile stream: a message naming a file, then its bytes).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use pach_api::pfs;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::client::{Conn, connect, status};
use crate::output::{self, Format};
use crate::refs::{self, check_no_parent};

/// Size of the data frames of a put file stream.
const FRAME: usize = 1 << 20;

#[derive(Debug, Args)]
pub struct PutFile {
    /// REPO@BRANCH[:/PATH] (or REPO@COMMIT of an open commit)
    pub target: String,
    /// A file, a directory (with -r), a URL (http, https, s3, gs, az), or - for stdin. Repeatable.
    #[arg(short = 'f', long = "file")]
    pub files: Vec<String>,
    /// Put directories recursively (and every object under a bucket URL).
    #[arg(short, long)]
    pub recursive: bool,
    /// Overwrite the existing content of the files instead of appending to it.
    #[arg(short, long)]
    pub overwrite: bool,
    /// How many files to read ahead concurrently.
    #[arg(short, long, default_value_t = 10)]
    pub parallelism: usize,
    /// A file listing sources (paths or URLs), one per line: a path, a URL
    /// (http, https, s3, gs, az), or - to read the list from stdin.
    #[arg(short, long)]
    pub input_file: Option<String>,
    /// Split the input into files by records: line, json, sql or csv. The
    /// files are named by their index (16 hex digits) in the directory given.
    #[arg(long, value_parser = ["line", "json", "sql", "csv"])]
    pub split: Option<String>,
    /// With --split: the most records per file (the last file may hold fewer).
    #[arg(long, default_value_t = 0)]
    pub target_file_datums: u64,
    /// With --split: a file ends with the record that makes it this many bytes or more.
    #[arg(long, default_value_t = 0)]
    pub target_file_bytes: u64,
    /// With --split: how many records at the start make the header that
    /// every file begins with.
    #[arg(long, default_value_t = 0)]
    pub header_records: u64,
    /// Deprecated, as in Pachyderm 1.9: every put file makes (or writes into) one commit anyway.
    #[arg(short, long)]
    pub commit: bool,
}

#[derive(Debug, Args)]
pub struct GetFile {
    /// REPO@BRANCH:/PATH
    pub file: String,
    /// Write to this path instead of stdout (required with -r).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Get a directory recursively.
    #[arg(short, long)]
    pub recursive: bool,
    /// Pachyderm 1.9's number of files downloaded at once. A directory
    /// comes here in one ordered stream, faster than 1.9's parallel
    /// downloads (bench/get.sh), so the value is checked and needs no tuning.
    #[arg(short, long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub parallelism: u32,
}

#[derive(Debug, Args)]
pub struct ListFile {
    /// REPO@BRANCH[:/PATH] (the path may be a glob pattern)
    pub dir: String,
    /// Revision history of the files: none, all, or how many versions.
    #[arg(long, default_value = "none")]
    pub history: String,
    #[command(flatten)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct DiffFile {
    /// REPO@COMMIT[:PATH]
    pub new: String,
    /// REPO@COMMIT[:PATH] (default: the new commit's parent, same path)
    pub old: Option<String>,
    /// Do not descend into subdirectories.
    #[arg(short, long)]
    pub shallow: bool,
    /// Show only the names of the changed files (+ new version, - old one),
    /// not their content's differences.
    #[arg(long)]
    pub name_only: bool,
    /// The program that compares each old file with its new version (a
    /// command line; the two files are added to it). Default: `git diff
    /// --no-index` if git is installed, else `diff`.
    #[arg(long)]
    pub diff_command: Option<String>,
    /// Print directly, not through a pager.
    #[arg(long)]
    pub no_pager: bool,
    #[command(flatten)]
    pub format: Format,
}

/// Pachyderm's `--history`: none (0), all (-1) or a number of versions.
fn parse_history(history: &str) -> anyhow::Result<i64> {
    match history {
        "none" => Ok(0),
        "all" => Ok(-1),
        n => match n.parse::<i64>() {
            Ok(n) if n >= -1 => Ok(n),
            _ => bail!("invalid --history '{n}': use none, all, or a number of versions"),
        },
    }
}

/// One file to send: where its content comes from and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Local(PathBuf),
    Stdin,
    Url(String),
}

/// Maps the sources of `put file` onto repo paths, as Pachyderm 1.9's
/// pachctl does: without a destination path a source keeps the path it was
/// named by (`-f data/a.txt` is `/data/a.txt`, `-r -f ID1234` puts
/// `/ID1234/...`, a URL its URL path); one source with a path goes to that
/// path (below it with `-r`, or as `PATH/NAME` when PATH ends with `/`);
/// several sources with a path go below it, each by the path it was named by.
pub fn plan(
    dest: &str,
    sources: &[String],
    recursive: bool,
) -> anyhow::Result<Vec<(Source, String)>> {
    let many = sources.len() > 1;
    let mut out = Vec::new();
    for s in sources {
        if s == "-" {
            if dest.is_empty() || dest.ends_with('/') {
                bail!("put file from stdin needs a file path: REPO@BRANCH:/PATH");
            }
            out.push((Source::Stdin, dest.to_string()));
            continue;
        }
        let (source, named_by) = match s.strip_prefix("file://") {
            Some(local) => (None, local.to_string()),
            None => match s.split_once("://") {
                // The URL's path: after the host, before any query.
                Some((_, rest)) => {
                    let path = rest.find('/').map_or("", |i| &rest[i..]);
                    let path = path.split(['?', '#']).next().unwrap_or("");
                    (Some(Source::Url(s.clone())), path.to_string())
                }
                None => (None, s.clone()),
            },
        };
        let name = named_by
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("");
        let is_dir = source.is_none() && Path::new(&named_by).is_dir();
        let target = if dest.is_empty() || many {
            repo_path(dest, &named_by)
        } else if dest.ends_with('/') && !is_dir {
            repo_path(dest, name)
        } else {
            repo_path(dest, "")
        };
        match source {
            Some(_) if target == "/" => {
                bail!("'{s}' names no file; give a path: REPO@BRANCH:/PATH")
            }
            Some(url) => out.push((url, target)),
            None => out.extend(plan_local(&target, Path::new(&named_by), recursive)?),
        }
    }
    Ok(out)
}

/// `prefix` joined with `path` as a repo path: `.` and empty components
/// dropped, `..` taking one back, and what climbs above the top (`../x`)
/// kept below it, as Pachyderm 1.9 trims leading `../`.
fn repo_path(prefix: &str, path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in prefix.split('/').chain(path.split('/')) {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

fn plan_local(
    target: &str,
    local: &Path,
    recursive: bool,
) -> anyhow::Result<Vec<(Source, String)>> {
    let meta =
        std::fs::metadata(local).with_context(|| format!("cannot read '{}'", local.display()))?;
    if meta.is_dir() {
        if !recursive {
            bail!(
                "'{}' is a directory; add -r to put it recursively",
                local.display()
            );
        }
        let mut files = Vec::new();
        walk(local, local, &mut files)?;
        return Ok(files
            .into_iter()
            .map(|(p, rel)| (Source::Local(p), repo_path(target, &rel)))
            .collect());
    }
    if target == "/" {
        bail!(
            "'{}' would be put at the repo's root; name a file path: REPO@BRANCH:/PATH",
            local.display()
        );
    }
    Ok(vec![(
        Source::Local(local.to_path_buf()),
        target.to_string(),
    )])
}

/// Regular files below `dir` (following symlinks to files), sorted, with their
/// paths relative to `root` joined by `/`.
fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, String)>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read directory '{}'", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            walk(root, &p, out)?;
        } else if meta.is_file() {
            let rel = p.strip_prefix(root).unwrap_or(&p);
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push((p, rel.join("/")));
        }
    }
    Ok(())
}

fn progress(total: u64) -> Option<ProgressBar> {
    if total <= 1 << 20 || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{bytes}/{total_bytes} [{bar:40}] {bytes_per_sec} ETA {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}

/// What the reader task hands to the sender: a small file read whole, or a
/// large one to stream.
enum Loaded {
    Whole(Vec<u8>),
    Stream(Source),
}

pub async fn put(a: PutFile) -> anyhow::Result<()> {
    let split = split_of(&a)?;
    if a.commit {
        eprintln!("flag --commit / -c is deprecated; every put file makes one commit without it");
    }
    let target = refs::parse(&a.target)?;
    if target.commit.is_empty() {
        bail!("'{}' names no branch; use REPO@BRANCH:/PATH", a.target);
    }
    check_no_parent(&target.path)?;
    let mut sources = a.files.clone();
    if let Some(list) = &a.input_file {
        let text = read_source_list(list).await?;
        sources.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
    }
    if sources.is_empty() {
        sources.push("-".into());
    }
    let plan = plan(&target.path, &sources, a.recursive)?;
    for (source, path) in &plan {
        check_no_parent(path)?;
        if let (Some(_), Source::Url(url)) = (split, source) {
            bail!(
                "--split cannot split '{url}': pachd reads URLs whole; get the data first, then \
                 put it from a file or stdin with --split"
            );
        }
    }
    let total: u64 = plan
        .iter()
        .map(|(s, _)| match s {
            Source::Local(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum();
    let bar = progress(total);
    let mut client = connect().await?;
    let (tx, rx) = mpsc::channel::<pfs::PutFileRequest>(16);
    let put = Put {
        commit: target.commit(),
        overwrite: a.overwrite,
        recursive: a.recursive,
        split,
    };
    let parallelism = a.parallelism.max(1);
    let bar2 = bar.clone();
    let sender = tokio::spawn(async move { send_files(tx, put, plan, parallelism, bar2).await });
    let call = client
        .pfs
        .put_file(tokio_stream::wrappers::ReceiverStream::new(rx));
    let result = call.await;
    let sent = sender
        .await
        .map_err(|e| anyhow::anyhow!("reader task failed: {e}"))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    // A local read error explains a cancelled stream better than the server does.
    sent?;
    result.map_err(status)?;
    Ok(())
}

/// What every file of one `put file` shares.
struct Put {
    commit: pfs::Commit,
    overwrite: bool,
    recursive: bool,
    split: Option<Split>,
}

/// `--split` and its limits, as PutFileRequest carries them.
#[derive(Debug, Clone, Copy)]
struct Split {
    delimiter: pfs::Delimiter,
    target_file_datums: i64,
    target_file_bytes: i64,
    header_records: i64,
}

/// Checks the split flags together, as 1.9's pachd does.
fn split_of(a: &PutFile) -> anyhow::Result<Option<Split>> {
    let limits = [
        ("--target-file-datums", a.target_file_datums),
        ("--target-file-bytes", a.target_file_bytes),
        ("--header-records", a.header_records),
    ];
    let Some(split) = &a.split else {
        if let Some((flag, _)) = limits.iter().find(|(_, v)| *v != 0) {
            bail!("{flag} needs --split (line, json, sql or csv) to say how records end");
        }
        return Ok(None);
    };
    let delimiter = match split.as_str() {
        "line" => pfs::Delimiter::Line,
        "json" => pfs::Delimiter::Json,
        "sql" => pfs::Delimiter::Sql,
        _ => pfs::Delimiter::Csv,
    };
    let int = |(flag, v): (&str, u64)| {
        i64::try_from(v).map_err(|_| anyhow::anyhow!("{flag} {v} is too large"))
    };
    Ok(Some(Split {
        delimiter,
        target_file_datums: int(limits[0])?,
        target_file_bytes: int(limits[1])?,
        header_records: int(limits[2])?,
    }))
}

/// `-i`: the list of sources, from a file, a URL or stdin (-).
async fn read_source_list(list: &str) -> anyhow::Result<String> {
    if list == "-" {
        return std::io::read_to_string(std::io::stdin())
            .context("cannot read the list of sources from stdin");
    }
    if let Some(path) = list.strip_prefix("file://") {
        return std::fs::read_to_string(path).with_context(|| format!("cannot read '{path}'"));
    }
    if list.contains("://") {
        use object_store::ObjectStoreExt;
        // The user's own URL, read with the user's credentials.
        let (store, path) = pach_storage::open_url(list, &pach_storage::UrlPolicy::operator())
            .with_context(|| format!("cannot open '{list}'"))?;
        let bytes = store
            .get(&path)
            .await
            .with_context(|| format!("cannot read '{list}'"))?
            .bytes()
            .await
            .with_context(|| format!("cannot read '{list}'"))?;
        return String::from_utf8(bytes.to_vec())
            .with_context(|| format!("'{list}' is not a UTF-8 list of sources"));
    }
    std::fs::read_to_string(list).with_context(|| format!("cannot read '{list}'"))
}

impl Put {
    /// The message that starts the file at `path`.
    fn start(&self, path: String) -> pfs::PutFileRequest {
        pfs::PutFileRequest {
            file: Some(pfs::File {
                commit: Some(self.commit.clone()),
                path,
            }),
            overwrite_index: self.overwrite.then_some(pfs::OverwriteIndex { index: 0 }),
            delimiter: self.split.map_or(0, |s| s.delimiter as i32),
            target_file_datums: self.split.map_or(0, |s| s.target_file_datums),
            target_file_bytes: self.split.map_or(0, |s| s.target_file_bytes),
            header_records: self.split.map_or(0, |s| s.header_records),
            ..Default::default()
        }
    }
}

async fn send_files(
    tx: mpsc::Sender<pfs::PutFileRequest>,
    put: Put,
    plan: Vec<(Source, String)>,
    parallelism: usize,
    bar: Option<ProgressBar>,
) -> anyhow::Result<()> {
    // Small local files are read ahead concurrently; order is kept.
    let mut loaded = futures::stream::iter(plan.into_iter().map(|(source, path)| async move {
        let data = match &source {
            Source::Local(p) => {
                let size = tokio::fs::metadata(p)
                    .await
                    .with_context(|| format!("cannot read '{}'", p.display()))?
                    .len();
                if size as usize <= FRAME {
                    Loaded::Whole(
                        tokio::fs::read(p)
                            .await
                            .with_context(|| format!("cannot read '{}'", p.display()))?,
                    )
                } else {
                    Loaded::Stream(source)
                }
            }
            _ => Loaded::Stream(source),
        };
        Ok::<_, anyhow::Error>((data, path))
    }))
    .buffered(parallelism);
    while let Some(item) = loaded.next().await {
        let (data, path) = item?;
        let mut first = put.start(path);
        match data {
            Loaded::Whole(bytes) => {
                let n = bytes.len() as u64;
                first.value = bytes.into();
                if tx.send(first).await.is_err() {
                    return Ok(());
                }
                if let Some(b) = &bar {
                    b.inc(n);
                }
            }
            Loaded::Stream(Source::Url(url)) => {
                first.url = url;
                first.recursive = put.recursive;
                if tx.send(first).await.is_err() {
                    return Ok(());
                }
            }
            Loaded::Stream(Source::Stdin) => {
                if tx.send(first).await.is_err() {
                    return Ok(());
                }
                stream_reader(&tx, tokio::io::stdin(), &bar).await?
            }
            Loaded::Stream(Source::Local(p)) => {
                let f = tokio::fs::File::open(&p)
                    .await
                    .with_context(|| format!("cannot read '{}'", p.display()))?;
                if tx.send(first).await.is_err() {
                    return Ok(());
                }
                stream_reader(&tx, f, &bar).await?;
            }
        }
    }
    Ok(())
}

async fn stream_reader(
    tx: &mpsc::Sender<pfs::PutFileRequest>,
    mut r: impl tokio::io::AsyncRead + Unpin,
    bar: &Option<ProgressBar>,
) -> anyhow::Result<()> {
    loop {
        let mut buf = Vec::with_capacity(FRAME);
        while buf.len() < FRAME {
            let n = (&mut r)
                .take((FRAME - buf.len()) as u64)
                .read_to_end(&mut buf)
                .await?;
            if n == 0 {
                break;
            }
        }
        if buf.is_empty() {
            return Ok(());
        }
        let n = buf.len() as u64;
        let full = buf.len() == FRAME;
        if tx
            .send(pfs::PutFileRequest {
                value: buf.into(),
                ..Default::default()
            })
            .await
            .is_err()
        {
            return Ok(());
        }
        if let Some(b) = bar {
            b.inc(n);
        }
        if !full {
            return Ok(());
        }
    }
}

async fn get_one(
    pfs_client: &mut pfs::api_client::ApiClient<Conn>,
    file: pfs::File,
    out: &mut dyn Write,
    bar: &Option<ProgressBar>,
) -> anyhow::Result<()> {
    let mut stream = pfs_client
        .get_file(pfs::GetFileRequest {
            file: Some(file),
            offset_bytes: 0,
            size_bytes: 0,
        })
        .await
        .map_err(status)?
        .into_inner();
    while let Some(part) = stream.try_next().await.map_err(status)? {
        out.write_all(&part)?;
        if let Some(b) = bar {
            b.inc(part.len() as u64);
        }
    }
    Ok(())
}

/// How much of a file `get file` buffers before writing it out.
const WRITE_BUFFER: usize = 1 << 20;

/// The directory `dest` goes into.
fn parent_dir(dest: &Path) -> &Path {
    dest.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create '{}'", dir.display()))
}

/// Writes through a temporary file in the same directory (which must
/// exist), renamed into place only when complete: an error never leaves a
/// half-written output. A destination that is not a regular file (a device
/// such as `/dev/null`, a pipe) is written into, never replaced; a symbolic
/// link is followed, so the file it points to is replaced, not the link.
async fn write_atomically(
    dest: &Path,
    buffer: usize,
    fill: impl AsyncFnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let cannot = || format!("cannot write '{}'", dest.display());
    let resolved;
    let dest = match std::fs::metadata(dest) {
        Ok(m) if m.is_dir() => bail!(
            "'{}' is a directory; give -o a file name (or add -r to get a directory)",
            dest.display()
        ),
        Ok(m) if !m.is_file() => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(dest)
                .with_context(cannot)?;
            let mut w = std::io::BufWriter::with_capacity(buffer, file);
            fill(&mut w).await?;
            return w.flush().with_context(cannot);
        }
        Ok(_) if std::fs::symlink_metadata(dest).is_ok_and(|m| m.is_symlink()) => {
            resolved = std::fs::canonicalize(dest).with_context(cannot)?;
            &resolved
        }
        _ => dest,
    };
    let dir = parent_dir(dest);
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.pachctl-partial"));
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write '{}'", tmp.display()))?;
    let mut w = std::io::BufWriter::with_capacity(buffer, file);
    let result = fill(&mut w)
        .await
        .and_then(|_| w.flush().map_err(Into::into));
    match result {
        Ok(()) => std::fs::rename(&tmp, dest)
            .with_context(|| format!("cannot write '{}'", dest.display())),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn is_dir(f: &pfs::FileInfo) -> bool {
    f.file_type == pfs::FileType::Dir as i32
}

fn path_of(f: &pfs::FileInfo) -> &str {
    f.file.as_ref().map(|f| f.path.as_str()).unwrap_or_default()
}

async fn inspect_info(
    c: &mut crate::client::Client,
    file: pfs::File,
) -> anyhow::Result<pfs::FileInfo> {
    Ok(c.pfs
        .inspect_file(pfs::InspectFileRequest { file: Some(file) })
        .await
        .map_err(status)?
        .into_inner())
}

/// `get file -r`: every file at and below `info`'s path, written below
/// `dest`. The commit is resolved once, so that the listing and the reads
/// see the same commit even if the branch moves meanwhile; a directory is
/// read in one call (a glob for everything below it, the files coming one
/// after another in path order) and cut into files by the listed sizes.
async fn get_tree(
    c: &mut crate::client::Client,
    r: &refs::FileRef,
    info: &pfs::FileInfo,
    dest: &Path,
    bar: &Option<ProgressBar>,
) -> anyhow::Result<()> {
    let commit = c
        .pfs
        .inspect_commit(pfs::InspectCommitRequest {
            commit: Some(r.commit()),
            block_state: pfs::CommitState::Started as i32,
        })
        .await
        .map_err(status)?
        .into_inner()
        .commit;
    let at = |path: String| pfs::File {
        commit: commit.clone(),
        path,
    };
    if !is_dir(info) {
        let pfs_client = &mut c.pfs;
        let file = at(path_of(info).to_string());
        create_dir(parent_dir(dest))?;
        return write_atomically(dest, WRITE_BUFFER, async move |w| {
            get_one(pfs_client, file, w, bar).await
        })
        .await;
    }
    let base = format!("/{}", path_of(info).trim_matches('/'));
    let mut walk = c
        .pfs
        .walk_file(pfs::WalkFileRequest {
            file: Some(at(base.clone())),
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut files = Vec::new();
    while let Some(f) = walk.try_next().await.map_err(status)? {
        if is_dir(&f) {
            continue;
        }
        let path = path_of(&f).to_string();
        let rel = path
            .strip_prefix(&base)
            .unwrap_or(&path)
            .trim_start_matches('/')
            .to_string();
        check_no_parent(&rel)?;
        files.push((path, f.size_bytes, dest.join(rel)));
    }
    // Each directory once, not once per file.
    create_dir(dest)?;
    let mut created: Option<&Path> = None;
    for (_, _, target) in &files {
        let dir = parent_dir(target);
        if created != Some(dir) {
            create_dir(dir)?;
            created = Some(dir);
        }
    }
    if files.is_empty() {
        return Ok(());
    }
    let pattern = format!("{}/**", glob_escape(base.trim_end_matches('/')));
    let stream = c
        .pfs
        .get_file(pfs::GetFileRequest {
            file: Some(at(pattern)),
            offset_bytes: 0,
            size_bytes: 0,
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut concatenation = Concatenation {
        stream,
        held: Vec::new(),
        at: 0,
    };
    for (path, size, target) in files {
        let from = &mut concatenation;
        // Small files need no buffer of their own: their bytes arrive whole.
        let buffer = WRITE_BUFFER.min(usize::try_from(size).unwrap_or(WRITE_BUFFER));
        write_atomically(&target, buffer, async move |w| {
            from.copy(size, w, bar, &path).await
        })
        .await?;
    }
    concatenation.finish().await
}

/// `path` with every glob character escaped, so that a pattern built on it
/// matches that path only.
fn glob_escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for ch in path.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '{' | '}' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// Several files' bytes arriving one after another on one GetFile stream.
struct Concatenation {
    stream: tonic::Streaming<Vec<u8>>,
    held: Vec<u8>,
    at: usize,
}

impl Concatenation {
    /// Writes the next `size` bytes, those of `path`, to `out`.
    async fn copy(
        &mut self,
        mut size: u64,
        out: &mut dyn Write,
        bar: &Option<ProgressBar>,
        path: &str,
    ) -> anyhow::Result<()> {
        while size > 0 {
            if self.at == self.held.len() {
                match self.stream.try_next().await.map_err(status)? {
                    Some(next) => {
                        self.held = next;
                        self.at = 0;
                    }
                    None => bail!(
                        "pachd's stream ended {size} bytes short of '{path}'; \
                         the file was not written, run the command again"
                    ),
                }
                continue;
            }
            let n = (self.held.len() - self.at).min(usize::try_from(size).unwrap_or(usize::MAX));
            out.write_all(&self.held[self.at..self.at + n])?;
            if let Some(b) = bar {
                b.inc(n as u64);
            }
            self.at += n;
            size -= n as u64;
        }
        Ok(())
    }

    /// Checks that nothing follows the last file.
    async fn finish(mut self) -> anyhow::Result<()> {
        let mut extra = (self.held.len() - self.at) as u64;
        while let Some(next) = self.stream.try_next().await.map_err(status)? {
            extra += next.len() as u64;
        }
        if extra > 0 {
            bail!("pachd sent {extra} bytes more than the files it listed; run the command again");
        }
        Ok(())
    }
}

pub async fn get(a: GetFile) -> anyhow::Result<()> {
    let r = refs::parse(&a.file)?;
    if r.commit.is_empty() {
        bail!(
            "'{}' names no branch or commit; use REPO@BRANCH:/PATH",
            a.file
        );
    }
    let mut c = connect().await?;
    let info = match inspect_info(&mut c, r.file()).await {
        Ok(info) => info,
        // A glob reads the files it matches one after another, as in 1.9.
        Err(_) if !a.recursive && r.path.contains(['*', '?', '[', '{']) => pfs::FileInfo::default(),
        Err(e) => return Err(e),
    };
    if is_dir(&info) && !a.recursive {
        bail!(
            "'{}' is a directory; add -r (with -o DIR) to get it recursively",
            path_of(&info)
        );
    }
    let bar = progress(info.size_bytes);
    if !a.recursive {
        match &a.output {
            Some(dest) => {
                create_dir(parent_dir(dest))?;
                let pfs_client = &mut c.pfs;
                let bar = &bar;
                write_atomically(dest, WRITE_BUFFER, async move |w| {
                    get_one(pfs_client, r.file(), w, bar).await
                })
                .await?;
            }
            None => {
                let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
                match get_one(&mut c.pfs, r.file(), &mut out, &bar).await {
                    Err(e) if super::broken_pipe(&e) => {}
                    other => other?,
                }
                super::finish(out)?;
            }
        }
    } else {
        let Some(dest) = &a.output else {
            bail!("get file -r needs -o DIR to write the directory to")
        };
        get_tree(&mut c, &r, &info, dest, &bar).await?;
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(())
}

fn print_infos(
    out: &mut impl Write,
    files: &[pfs::FileInfo],
    format: &Format,
    header: &mut bool,
    with_commit: bool,
) -> anyhow::Result<()> {
    if !format.is_human() {
        return format.print(out, &output::pfs_json(files)?);
    }
    if *header {
        if with_commit {
            writeln!(
                out,
                "{:<32} {:<40} {:<4} {:<22} SIZE",
                "COMMIT", "NAME", "TYPE", "COMMITTED"
            )?;
        } else {
            writeln!(out, "{:<40} {:<4} SIZE", "NAME", "TYPE")?;
        }
        *header = false;
    }
    for f in files {
        let kind = if is_dir(f) { "dir" } else { "file" };
        if with_commit {
            let commit = f
                .file
                .as_ref()
                .and_then(|f| f.commit.as_ref())
                .map(|c| c.id.as_str())
                .unwrap_or_default();
            let committed = output::timestamp_ns(f.committed.as_ref());
            writeln!(
                out,
                "{commit:<32} {:<40} {kind:<4} {:<22} {}",
                path_of(f),
                if committed == 0 {
                    "-".to_string()
                } else {
                    output::ago(committed)
                },
                output::bytes(f.size_bytes)
            )?;
        } else {
            writeln!(
                out,
                "{:<40} {kind:<4} {}",
                path_of(f),
                output::bytes(f.size_bytes)
            )?;
        }
    }
    Ok(())
}

/// Prints a stream of file infos as it arrives.
async fn print_stream(
    mut stream: tonic::Streaming<pfs::FileInfo>,
    format: &Format,
    with_commit: bool,
) -> anyhow::Result<()> {
    let mut out = super::stdout();
    let mut header = true;
    let mut batch = Vec::new();
    loop {
        let next = stream.try_next().await.map_err(status)?;
        let done = next.is_none();
        batch.extend(next);
        // Print in batches: one JSON encoding call per file costs little, a
        // flush per file would not.
        if done || batch.len() >= 1024 {
            match print_infos(&mut out, &batch, format, &mut header, with_commit) {
                Err(e) if super::broken_pipe(&e) => return Ok(()),
                other => other?,
            }
            batch.clear();
        }
        if done {
            break;
        }
    }
    if header && format.is_human() {
        print_infos(&mut out, &[], format, &mut header, with_commit)?;
    }
    super::finish(out)
}

pub async fn list(a: ListFile) -> anyhow::Result<()> {
    let r = refs::parse(&a.dir)?;
    let history = parse_history(&a.history)?;
    let mut c = connect().await?;
    let stream = c
        .pfs
        .list_file_stream(pfs::ListFileRequest {
            file: Some(r.file()),
            full: false,
            history,
        })
        .await
        .map_err(status)?
        .into_inner();
    print_stream(stream, &a.format, history != 0).await
}

pub async fn glob(arg: &str, format: &Format) -> anyhow::Result<()> {
    let r = refs::parse(arg)?;
    let mut c = connect().await?;
    let stream = c
        .pfs
        .glob_file_stream(pfs::GlobFileRequest {
            commit: Some(r.commit()),
            pattern: r.path.clone(),
        })
        .await
        .map_err(status)?
        .into_inner();
    print_stream(stream, format, false).await
}

pub async fn inspect(arg: &str, format: &Format) -> anyhow::Result<()> {
    let r = refs::parse(arg)?;
    let mut c = connect().await?;
    let f = inspect_info(&mut c, r.file()).await?;
    let mut out = super::stdout();
    if format.is_human() {
        writeln!(out, "Path: {}", path_of(&f))?;
        writeln!(out, "Type: {}", if is_dir(&f) { "dir" } else { "file" })?;
        writeln!(out, "Size: {}", output::bytes(f.size_bytes))?;
        if !f.children.is_empty() {
            writeln!(out, "Children: {}", f.children.join(" "))?;
        }
        if !f.objects.is_empty() {
            let objects: Vec<&str> = f
                .objects
                .iter()
                .map(|o| {
                    if o.hash.is_empty() {
                        "-"
                    } else {
                        o.hash.as_str()
                    }
                })
                .collect();
            writeln!(out, "Objects: {}", objects.join(" "))?;
        }
    } else {
        format.print(&mut out, &output::pfs_json(&[f])?)?;
    }
    super::finish(out)
}

pub async fn diff(a: DiffFile) -> anyhow::Result<()> {
    let n = refs::parse(&a.new)?;
    let o = a.old.as_deref().map(refs::parse).transpose()?;
    let mut c = connect().await?;
    let d = c
        .pfs
        .diff_file(pfs::DiffFileRequest {
            new_file: Some(n.file()),
            old_file: o.map(|o| o.file()),
            shallow: a.shallow,
        })
        .await
        .map_err(status)?
        .into_inner();
    if !a.format.is_human() {
        let mut out = super::stdout();
        a.format.print(&mut out, &output::pfs_json(&[d])?)?;
        return super::finish(out);
    }
    if a.name_only {
        return output::paged(a.no_pager, |out| {
            let mut t = output::Table::new(&["OP", "NAME", "TYPE", "SIZE"]);
            for (mark, f) in pairs(&d.new_files, &d.old_files)
                .into_iter()
                .flat_map(|(new, old)| [("+", new), ("-", old)])
                .filter_map(|(mark, f)| Some((mark, f?)))
            {
                let kind = if is_dir(f) { "dir" } else { "file" };
                t.row(vec![
                    mark.into(),
                    path_of(f).into(),
                    kind.into(),
                    output::bytes(f.size_bytes),
                ]);
            }
            let mut out = out;
            Ok(t.print(&mut out)?)
        });
    }
    let command = diff_command(a.diff_command.as_deref())?;
    let scratch =
        tempfile::tempdir().context("cannot create a directory for the files to compare")?;
    let mut text = Vec::new();
    for (new, old) in pairs(&d.new_files, &d.old_files) {
        if new.is_some_and(is_dir) || old.is_some_and(is_dir) {
            continue;
        }
        let mut sides = Vec::new();
        for (side, f) in [("old", old), ("new", new)] {
            let Some(f) = f else {
                sides.push("/dev/null".to_string());
                continue;
            };
            let rel = format!("{side}/{}", path_of(f).trim_start_matches('/'));
            check_no_parent(&rel)?;
            let dest = scratch.path().join(&rel);
            create_dir(parent_dir(&dest))?;
            let file = f.file.clone().unwrap_or_default();
            let pfs_client = &mut c.pfs;
            write_atomically(&dest, WRITE_BUFFER, async move |w| {
                get_one(pfs_client, file, w, &None).await
            })
            .await?;
            sides.push(rel);
        }
        let ran = std::process::Command::new(&command[0])
            .args(&command[1..])
            .args(&sides)
            .current_dir(scratch.path())
            .output()
            .with_context(|| format!("cannot run the diff command '{}'", command.join(" ")))?;
        // Exit status 1 means "the files differ".
        if !ran.status.success() && ran.status.code() != Some(1) {
            bail!(
                "the diff command '{}' failed ({}): {}",
                command.join(" "),
                ran.status,
                String::from_utf8_lossy(&ran.stderr).trim()
            );
        }
        text.extend_from_slice(&ran.stdout);
    }
    output::paged(a.no_pager, |out| Ok(out.write_all(&text)?))
}

/// The files of a diff side by side in path order, as 1.9 walks them: a
/// path in both lists is a changed file, in one only an added or deleted one.
fn pairs<'a>(
    new: &'a [pfs::FileInfo],
    old: &'a [pfs::FileInfo],
) -> Vec<(Option<&'a pfs::FileInfo>, Option<&'a pfs::FileInfo>)> {
    let (mut n, mut o) = (new.iter().peekable(), old.iter().peekable());
    let mut out = Vec::new();
    loop {
        let pair = match (n.peek(), o.peek()) {
            (None, None) => return out,
            (Some(a), Some(b)) if path_of(a) == path_of(b) => (n.next(), o.next()),
            (Some(a), Some(b)) if path_of(a) > path_of(b) => (None, o.next()),
            (Some(_), _) => (n.next(), None),
            (None, Some(_)) => (None, o.next()),
        };
        out.push(pair);
    }
}

/// `--diff-command` split into words, or 1.9's default: git's diff (in
/// colour on a terminal, unless --no-color) when git is installed, else `diff`.
fn diff_command(given: Option<&str>) -> anyhow::Result<Vec<String>> {
    if let Some(cmd) = given {
        let words: Vec<String> = cmd.split_whitespace().map(str::to_string).collect();
        if words.is_empty() {
            bail!("--diff-command is empty; give a program, e.g. --diff-command 'diff -u'");
        }
        return Ok(words);
    }
    let git = std::process::Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !git {
        return Ok(vec!["diff".into()]);
    }
    let colour = if std::io::stdout().is_terminal() && !output::no_color() {
        "color.ui=always"
    } else {
        "color.ui=never"
    };
    Ok(["git", "-c", colour, "--no-pager", "diff", "--no-index"]
        .map(str::to_string)
        .to_vec())
}

/// `get object HASH`: the bytes of a file's piece named by its SHA-512
/// (Pachyderm 1.9's object hash, as `inspect file` lists them).
pub async fn get_object(hash: &str) -> anyhow::Result<()> {
    let mut c = connect().await?;
    let at = c
        .extension
        .find_object(pach_api::pachrs::v1::FindObjectRequest { hash: hash.into() })
        .await
        .map_err(status)?
        .into_inner();
    let offset = i64::try_from(at.offset).context("the object's offset is out of range")?;
    let size = i64::try_from(at.size).context("the object's size is out of range")?;
    if size == 0 {
        return Ok(());
    }
    let mut stream = c
        .pfs
        .get_file(pfs::GetFileRequest {
            file: Some(pfs::File {
                commit: Some(refs::commit(&at.repo, &at.commit)),
                path: at.path,
            }),
            offset_bytes: offset,
            size_bytes: size,
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut out = super::stdout();
    while let Some(part) = stream.try_next().await.map_err(status)? {
        match out.write_all(&part) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            r => r?,
        }
    }
    super::finish(out)
}

/// `get tag`: 1.9's workers tagged datum outputs; pachd keeps them as datum
/// records of the job instead.
pub fn get_tag(tag: &str) -> anyhow::Result<()> {
    bail!(
        "get tag {tag} is not supported: tags named Pachyderm 1.9 workers' datum outputs, which \
         pachd keeps in the job's output commit; read them with `pachctl get file \
         PIPELINE@COMMIT:/PATH` (`pachctl inspect datum JOB DATUM` names a datum's files)"
    )
}

pub async fn delete(arg: &str) -> anyhow::Result<()> {
    let r = refs::parse(arg)?;
    if r.commit.is_empty() || r.path.is_empty() {
        bail!("'{arg}' needs a branch and a path: REPO@BRANCH:/PATH");
    }
    check_no_parent(&r.path)?;
    let mut c = connect().await?;
    c.pfs
        .delete_file(pfs::DeleteFileRequest {
            file: Some(r.file()),
        })
        .await
        .map_err(status)?;
    Ok(())
}

pub async fn copy(src: &str, dst: &str, overwrite: bool) -> anyhow::Result<()> {
    let s = refs::parse(src)?;
    let d = refs::parse(dst)?;
    if d.commit.is_empty() || d.path.is_empty() {
        bail!("'{dst}' needs a branch and a path: REPO@BRANCH:/PATH");
    }
    check_no_parent(&d.path)?;
    let mut c = connect().await?;
    c.pfs
        .copy_file(pfs::CopyFileRequest {
            src: Some(s.file()),
            dst: Some(d.file()),
            overwrite,
        })
        .await
        .map_err(status)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_flag_like_pachyderm() {
        assert_eq!(parse_history("none").unwrap(), 0);
        assert_eq!(parse_history("all").unwrap(), -1);
        assert_eq!(parse_history("3").unwrap(), 3);
        assert!(parse_history("-2").is_err());
        assert!(parse_history("some").is_err());
    }

    #[test]
    fn put_plans_paths_like_pachyderm() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a.txt"), "a").unwrap();
        std::fs::write(root.join("sub/b.txt"), "b").unwrap();
        let root_s = root.to_str().unwrap().to_string();
        let paths = |dest: &str, src: &[String], r: bool| -> Vec<String> {
            plan(dest, src, r)
                .unwrap()
                .into_iter()
                .map(|(_, p)| p)
                .collect()
        };
        assert_eq!(
            paths("/dst", std::slice::from_ref(&root_s), true),
            ["/dst/a.txt", "/dst/sub/b.txt"]
        );
        assert_eq!(
            paths("/", std::slice::from_ref(&root_s), true),
            ["/a.txt", "/sub/b.txt"]
        );
        // Without a path, a source keeps the path it was named by.
        assert_eq!(
            paths("", std::slice::from_ref(&root_s), true),
            [format!("{root_s}/a.txt"), format!("{root_s}/sub/b.txt")]
        );
        assert!(
            plan("/dst", std::slice::from_ref(&root_s), false).is_err(),
            "a directory needs -r"
        );
        let file = root.join("a.txt").to_str().unwrap().to_string();
        assert_eq!(
            paths("", std::slice::from_ref(&file), false),
            std::slice::from_ref(&file)
        );
        assert_eq!(
            paths("/x/", std::slice::from_ref(&file), false),
            ["/x/a.txt"]
        );
        assert_eq!(
            paths("/renamed", std::slice::from_ref(&file), false),
            ["/renamed"]
        );
        let two = [
            file.clone(),
            root.join("sub/b.txt").to_str().unwrap().to_string(),
        ];
        assert_eq!(
            paths("/in", &two, false),
            [format!("/in{file}"), format!("/in{root_s}/sub/b.txt")]
        );
        assert_eq!(
            paths("", &["http://h/p/data.csv".to_string()], false),
            ["/p/data.csv"]
        );
        assert_eq!(repo_path("", "../../a/./b//c"), "/a/b/c");
        assert_eq!(repo_path("/d/", "x/../y"), "/d/y");
        assert!(
            plan("", &["-".to_string()], false).is_err(),
            "stdin needs a path"
        );
        assert_eq!(
            plan("/in", &["-".to_string()], false).unwrap()[0].0,
            Source::Stdin
        );
    }
}
