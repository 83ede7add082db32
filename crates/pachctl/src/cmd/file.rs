//! `put/get/list/glob/diff/inspect/delete/copy file`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use pach_api as api;
use pach_api::put_file_request::{FileStart, Header, Msg};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::client::{connect, status};
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
    /// Put directories recursively.
    #[arg(short, long)]
    pub recursive: bool,
    /// Append to existing files instead of replacing them.
    #[arg(short, long)]
    pub append: bool,
    /// Replace existing files (the default; accepted for compatibility).
    #[arg(short, long)]
    pub overwrite: bool,
    /// How many files to read ahead concurrently.
    #[arg(short, long, default_value_t = 10)]
    pub parallelism: usize,
    /// A file listing sources (paths or URLs), one per line.
    #[arg(short, long)]
    pub input_file: Option<PathBuf>,
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
}

#[derive(Debug, Args)]
pub struct ListFile {
    /// REPO@BRANCH[:/PATH]
    pub dir: String,
    #[command(flatten)]
    pub format: Format,
}

/// One file to send: where its content comes from and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Local(PathBuf),
    Stdin,
    Url(String),
}

/// Maps the sources of `put file` onto repo paths.
pub fn plan(
    dest: &str,
    sources: &[String],
    recursive: bool,
) -> anyhow::Result<Vec<(Source, String)>> {
    let join = |dir: &str, name: &str| {
        if dir.is_empty() || dir == "/" {
            format!("/{name}")
        } else {
            format!("{}/{name}", dir.trim_end_matches('/'))
        }
    };
    let many = sources.len() > 1;
    let mut out = Vec::new();
    for s in sources {
        if s == "-" {
            if dest.is_empty() || dest.ends_with('/') {
                bail!("put file from stdin needs a file path: REPO@BRANCH:/PATH");
            }
            out.push((Source::Stdin, dest.to_string()));
        } else if let Some(local) = s.strip_prefix("file://") {
            out.extend(plan_local(dest, Path::new(local), recursive, many, &join)?);
        } else if s.contains("://") {
            let name = s
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or("file")
                .to_string();
            let path = if dest.is_empty() || dest.ends_with('/') || many {
                join(dest, &name)
            } else {
                dest.to_string()
            };
            out.push((Source::Url(s.clone()), path));
        } else {
            out.extend(plan_local(dest, Path::new(s), recursive, many, &join)?);
        }
    }
    Ok(out)
}

fn plan_local(
    dest: &str,
    local: &Path,
    recursive: bool,
    many: bool,
    join: &dyn Fn(&str, &str) -> String,
) -> anyhow::Result<Vec<(Source, String)>> {
    let meta =
        std::fs::metadata(local).with_context(|| format!("cannot read '{}'", local.display()))?;
    let name = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if meta.is_dir() {
        if !recursive {
            bail!(
                "'{}' is a directory; add -r to put it recursively",
                local.display()
            );
        }
        let base = if dest.is_empty() {
            "/".to_string()
        } else {
            dest.to_string()
        };
        let mut files = Vec::new();
        walk(local, local, &mut files)?;
        return Ok(files
            .into_iter()
            .map(|(p, rel)| {
                let path = join(&base, &rel);
                (Source::Local(p), path)
            })
            .collect());
    }
    let path = if dest.is_empty() || dest.ends_with('/') || many {
        join(dest, &name)
    } else {
        dest.to_string()
    };
    Ok(vec![(Source::Local(local.to_path_buf()), path)])
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
    if a.append && a.overwrite {
        bail!("--append and --overwrite contradict each other; choose one");
    }
    let target = refs::parse(&a.target)?;
    if target.commit.is_empty() {
        bail!("'{}' names no branch; use REPO@BRANCH:/PATH", a.target);
    }
    check_no_parent(&target.path)?;
    let mut sources = a.files.clone();
    if let Some(list) = &a.input_file {
        let text = std::fs::read_to_string(list)
            .with_context(|| format!("cannot read '{}'", list.display()))?;
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
    for (_, path) in &plan {
        check_no_parent(path)?;
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
    let (tx, rx) = mpsc::channel::<api::PutFileRequest>(16);
    let header = api::PutFileRequest {
        msg: Some(Msg::Header(Header {
            commit: Some(target.commit_ref()),
        })),
    };
    let append = a.append;
    let parallelism = a.parallelism.max(1);
    let bar2 = bar.clone();
    let sender =
        tokio::spawn(async move { send_files(tx, header, plan, append, parallelism, bar2).await });
    let call = client
        .old_pfs
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

async fn send_files(
    tx: mpsc::Sender<api::PutFileRequest>,
    header: api::PutFileRequest,
    plan: Vec<(Source, String)>,
    append: bool,
    parallelism: usize,
    bar: Option<ProgressBar>,
) -> anyhow::Result<()> {
    let msg = |m: Msg| api::PutFileRequest { msg: Some(m) };
    if tx.send(header).await.is_err() {
        return Ok(());
    }
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
        let url = match &data {
            Loaded::Stream(Source::Url(u)) => u.clone(),
            _ => String::new(),
        };
        if tx
            .send(msg(Msg::File(FileStart {
                path,
                append,
                url,
                delete: false,
            })))
            .await
            .is_err()
        {
            return Ok(());
        }
        match data {
            Loaded::Whole(bytes) => {
                let n = bytes.len() as u64;
                if !bytes.is_empty() && tx.send(msg(Msg::Data(bytes))).await.is_err() {
                    return Ok(());
                }
                if let Some(b) = &bar {
                    b.inc(n);
                }
            }
            Loaded::Stream(Source::Url(_)) => {}
            Loaded::Stream(Source::Stdin) => stream_reader(&tx, tokio::io::stdin(), &bar).await?,
            Loaded::Stream(Source::Local(p)) => {
                let f = tokio::fs::File::open(&p)
                    .await
                    .with_context(|| format!("cannot read '{}'", p.display()))?;
                stream_reader(&tx, f, &bar).await?;
            }
        }
    }
    Ok(())
}

async fn stream_reader(
    tx: &mpsc::Sender<api::PutFileRequest>,
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
            .send(api::PutFileRequest {
                msg: Some(Msg::Data(buf)),
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
    pfs: &mut pach_api::pfs_client::PfsClient<tonic::transport::Channel>,
    file: api::FileRef,
    out: &mut dyn Write,
    bar: &Option<ProgressBar>,
) -> anyhow::Result<()> {
    let mut stream = pfs
        .get_file(api::GetFileRequest {
            file: Some(file),
            offset: 0,
            length: 0,
        })
        .await
        .map_err(status)?
        .into_inner();
    while let Some(part) = stream.try_next().await.map_err(status)? {
        out.write_all(&part.data)?;
        if let Some(b) = bar {
            b.inc(part.data.len() as u64);
        }
    }
    Ok(())
}

/// Writes through a temporary file in the same directory, renamed into place
/// only when complete: an error never leaves a half-written output.
async fn write_atomically(
    dest: &Path,
    fill: impl AsyncFnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let dir = dest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create '{}'", dir.display()))?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.pachctl-partial"));
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write '{}'", tmp.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
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

pub async fn get(a: GetFile) -> anyhow::Result<()> {
    let r = refs::parse(&a.file)?;
    if r.commit.is_empty() {
        bail!(
            "'{}' names no branch or commit; use REPO@BRANCH:/PATH",
            a.file
        );
    }
    let mut c = connect().await?;
    let info = c
        .old_pfs
        .inspect_file(r.file_ref())
        .await
        .map_err(status)?
        .into_inner();
    if info.is_dir && !a.recursive {
        bail!(
            "'{}' is a directory; add -r (with -o DIR) to get it recursively",
            info.path
        );
    }
    let bar = progress(info.size_bytes);
    if !a.recursive {
        match &a.output {
            Some(dest) => {
                let pfs = &mut c.old_pfs;
                let bar = &bar;
                write_atomically(dest, async move |w| {
                    get_one(pfs, r.file_ref(), w, bar).await
                })
                .await?;
            }
            None => {
                let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
                match get_one(&mut c.old_pfs, r.file_ref(), &mut out, &bar).await {
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
        let mut list = c
            .old_pfs
            .list_file(api::ListFileRequest {
                file: Some(r.file_ref()),
                recursive: true,
            })
            .await
            .map_err(status)?
            .into_inner();
        let base = info.path.trim_end_matches('/').to_string();
        let mut files = Vec::new();
        while let Some(batch) = list.try_next().await.map_err(status)? {
            files.extend(batch.files);
        }
        for f in files {
            let rel = f
                .path
                .strip_prefix(&base)
                .unwrap_or(&f.path)
                .trim_start_matches('/')
                .to_string();
            check_no_parent(&rel)?;
            let target = if rel.is_empty() {
                dest.clone()
            } else {
                dest.join(&rel)
            };
            let file = api::FileRef {
                commit: Some(r.commit_ref()),
                path: f.path.clone(),
            };
            let pfs = &mut c.old_pfs;
            let bar = &bar;
            write_atomically(&target, async move |w| get_one(pfs, file, w, bar).await).await?;
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(())
}

fn print_infos(
    out: &mut impl Write,
    files: &[api::FileInfo],
    format: &Format,
    header: &mut bool,
) -> anyhow::Result<()> {
    if format.is_human() {
        if *header {
            writeln!(out, "{:<40} {:<4} SIZE", "NAME", "TYPE")?;
            *header = false;
        }
        for f in files {
            writeln!(
                out,
                "{:<40} {:<4} {}",
                f.path,
                if f.is_dir { "dir" } else { "file" },
                output::bytes(f.size_bytes)
            )?;
        }
        Ok(())
    } else {
        format.print(
            out,
            &files.iter().map(output::file_json).collect::<Vec<_>>(),
        )
    }
}

pub async fn list(a: ListFile) -> anyhow::Result<()> {
    let r = refs::parse(&a.dir)?;
    let mut c = connect().await?;
    let mut stream = c
        .old_pfs
        .list_file(api::ListFileRequest {
            file: Some(r.file_ref()),
            recursive: false,
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut out = super::stdout();
    let mut header = true;
    while let Some(batch) = stream.try_next().await.map_err(status)? {
        match print_infos(&mut out, &batch.files, &a.format, &mut header) {
            Err(e) if super::broken_pipe(&e) => return Ok(()),
            other => other?,
        }
    }
    if header && a.format.is_human() {
        print_infos(&mut out, &[], &a.format, &mut header)?;
    }
    super::finish(out)
}

pub async fn glob(arg: &str, format: &Format) -> anyhow::Result<()> {
    let r = refs::parse(arg)?;
    let mut c = connect().await?;
    let mut stream = c
        .old_pfs
        .glob_file(api::GlobFileRequest {
            commit: Some(r.commit_ref()),
            pattern: r.path.clone(),
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut out = super::stdout();
    let mut header = true;
    while let Some(batch) = stream.try_next().await.map_err(status)? {
        print_infos(&mut out, &batch.files, format, &mut header)?;
    }
    if header && format.is_human() {
        print_infos(&mut out, &[], format, &mut header)?;
    }
    super::finish(out)
}

pub async fn inspect(arg: &str, format: &Format) -> anyhow::Result<()> {
    let r = refs::parse(arg)?;
    let mut c = connect().await?;
    let f = c
        .old_pfs
        .inspect_file(r.file_ref())
        .await
        .map_err(status)?
        .into_inner();
    let mut out = super::stdout();
    if format.is_human() {
        writeln!(out, "Path: {}", f.path)?;
        writeln!(out, "Type: {}", if f.is_dir { "dir" } else { "file" })?;
        writeln!(out, "Size: {}", output::bytes(f.size_bytes))?;
        if !f.hash.is_empty() {
            writeln!(out, "Hash: {}", f.hash)?;
        }
    } else {
        format.print(&mut out, &[output::file_json(&f)])?;
    }
    super::finish(out)
}

pub async fn diff(new: &str, old: Option<&str>, format: &Format) -> anyhow::Result<()> {
    let n = refs::parse(new)?;
    let o = old.map(refs::parse).transpose()?;
    let mut c = connect().await?;
    let mut stream = c
        .old_pfs
        .diff_file(api::DiffFileRequest {
            new_file: Some(n.file_ref()),
            old_file: o.map(|o| o.file_ref()),
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut out = super::stdout();
    while let Some(batch) = stream.try_next().await.map_err(status)? {
        for d in batch.diffs {
            if format.is_human() {
                let (mark, f) = match d.change.as_str() {
                    "added" => ("+", d.new_file),
                    "deleted" => ("-", d.old_file),
                    _ => ("~", d.new_file),
                };
                let f = f.unwrap_or_default();
                writeln!(out, "{mark} {}\t{}", f.path, output::bytes(f.size_bytes))?;
            } else {
                let j = serde_json::json!({
                    "change": d.change,
                    "new_file": d.new_file.as_ref().map(output::file_json),
                    "old_file": d.old_file.as_ref().map(output::file_json),
                });
                format.print(&mut out, &[j])?;
            }
        }
    }
    super::finish(out)
}

pub async fn delete(arg: &str) -> anyhow::Result<()> {
    let r = refs::parse(arg)?;
    if r.commit.is_empty() || r.path.is_empty() {
        bail!("'{arg}' needs a branch and a path: REPO@BRANCH:/PATH");
    }
    check_no_parent(&r.path)?;
    let mut c = connect().await?;
    c.old_pfs.delete_file(r.file_ref()).await.map_err(status)?;
    Ok(())
}

pub async fn copy(src: &str, dst: &str, append: bool) -> anyhow::Result<()> {
    let s = refs::parse(src)?;
    let d = refs::parse(dst)?;
    if d.commit.is_empty() || d.path.is_empty() {
        bail!("'{dst}' needs a branch and a path: REPO@BRANCH:/PATH");
    }
    check_no_parent(&d.path)?;
    let mut c = connect().await?;
    c.old_pfs
        .copy_file(api::CopyFileRequest {
            src: Some(s.file_ref()),
            dst: Some(d.file_ref()),
            append,
        })
        .await
        .map_err(status)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            paths("", std::slice::from_ref(&root_s), true),
            ["/a.txt", "/sub/b.txt"]
        );
        assert!(
            plan("/dst", std::slice::from_ref(&root_s), false).is_err(),
            "a directory needs -r"
        );
        let file = root.join("a.txt").to_str().unwrap().to_string();
        assert_eq!(paths("", std::slice::from_ref(&file), false), ["/a.txt"]);
        assert_eq!(
            paths("/x/", std::slice::from_ref(&file), false),
            ["/x/a.txt"]
        );
        assert_eq!(
            paths("/renamed", std::slice::from_ref(&file), false),
            ["/renamed"]
        );
        assert_eq!(
            paths("", &["http://h/p/data.csv".to_string()], false),
            ["/data.csv"]
        );
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
