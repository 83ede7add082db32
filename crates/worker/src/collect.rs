//! Stores what user code wrote to `/pfs/out`. Symlinks are followed the way
//! they resolve inside the sandbox: an absolute `/pfs/...` target is read from
//! the datum directory. A link that lands on an input file yields that input's
//! entry by reference — no bytes are read or stored, and with `empty_files`
//! (where the sandbox only holds empty placeholders) the output still carries
//! the input's real content, as Pachyderm's shuffle pipelines expect.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use pach_storage::{FileEntry, PutSession};
use tokio::io::AsyncReadExt;

use crate::{Result, WorkerError, io};

/// How many links are followed before a path is declared a loop.
const MAX_LINKS: usize = 40;

/// Stores every file below `<dir>/pfs/out` through `session` and returns
/// their entries, with paths relative to `/pfs/out` ("/a/b.txt"), sorted by
/// path. `inputs` maps the sandbox path of each mounted input file
/// (`/pfs/<input>/<path>`) to its entry. The entries may be named in records
/// once the session is flushed (one session can serve many datums, so their
/// small outputs share packs).
pub async fn collect(
    session: &mut PutSession,
    dir: &Path,
    inputs: &HashMap<String, FileEntry>,
) -> Result<Vec<FileEntry>> {
    let pfs = dir.join("pfs");
    let mut files = Vec::new();
    let mut by_reference = Vec::new();
    let mut stack = vec![(pfs.join("out"), String::new())];
    while let Some((host_dir, out_path)) = stack.pop() {
        let mut entries = tokio::fs::read_dir(&host_dir)
            .await
            .map_err(io("cannot list", &host_dir))?;
        while let Some(e) = entries
            .next_entry()
            .await
            .map_err(io("cannot list", &host_dir))?
        {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = format!("{out_path}/{name}");
            let host = resolve(&pfs, e.path(), &path).await?;
            // A link to an input file (a lazy one being a named pipe) is
            // that input's entry, whatever it is on disk.
            let linked = host
                .strip_prefix(&pfs)
                .ok()
                .filter(|rel| !rel.starts_with("out"))
                .and_then(|rel| inputs.get(&format!("/pfs/{}", rel.to_string_lossy())));
            if let Some(entry) = linked {
                by_reference.push(FileEntry {
                    path,
                    ..entry.clone()
                });
                continue;
            }
            let meta = tokio::fs::metadata(&host)
                .await
                .map_err(io("cannot read output", &host))?;
            if meta.is_dir() {
                stack.push((host, path));
            } else if meta.is_file() {
                files.push((path, host));
            }
        }
    }
    files.sort();
    let mut out = Vec::with_capacity(files.len());
    let mut buf = vec![0u8; 1 << 20];
    for (path, host) in files {
        let mut f = tokio::fs::File::open(&host)
            .await
            .map_err(io("cannot read output", &host))?;
        session.begin_file(path, None);
        loop {
            let n = f
                .read(&mut buf)
                .await
                .map_err(io("cannot read output", &host))?;
            if n == 0 {
                break;
            }
            session.write(&buf[..n]).await?;
        }
        out.push(session.end_file().await?);
    }
    out.extend(by_reference);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Follows symlinks as the sandbox would see them: `/pfs/...` maps to
/// `<pfs>/...`; anything else absolute is outside what a datum may output.
async fn resolve(pfs: &Path, mut host: PathBuf, out_path: &str) -> Result<PathBuf> {
    for _ in 0..MAX_LINKS {
        let meta = tokio::fs::symlink_metadata(&host)
            .await
            .map_err(io("cannot read output", &host))?;
        if !meta.file_type().is_symlink() {
            return Ok(host);
        }
        let target = tokio::fs::read_link(&host)
            .await
            .map_err(io("cannot read link", &host))?;
        host = if let Ok(rest) = target.strip_prefix("/pfs") {
            pfs.join(rest)
        } else if target.is_absolute() {
            return Err(WorkerError::LinkOutsidePfs {
                path: out_path.to_string(),
                target: target.to_string_lossy().into_owned(),
            });
        } else {
            let joined = lexical(&host.parent().unwrap_or(pfs).join(&target));
            if !joined.starts_with(pfs) {
                return Err(WorkerError::LinkOutsidePfs {
                    path: out_path.to_string(),
                    target: target.to_string_lossy().into_owned(),
                });
            }
            joined
        };
    }
    Err(WorkerError::LinkOutsidePfs {
        path: out_path.to_string(),
        target: "(a chain of more than 40 links)".into(),
    })
}

/// `a/b/../c` -> `a/c`, without touching the filesystem (links are resolved
/// one at a time by the caller).
fn lexical(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}
