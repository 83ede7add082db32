//! Stores what user code wrote to `/pfs/out`. Symlinks are followed the way
//! they resolve inside the sandbox, one path component at a time and never
//! on the host: a target is a path of the sandbox's view (absolute, or
//! relative to the link's directory, `..` stopping at `/`), and only the
//! sandbox's `/pfs` maps onto the host (`<dir>/pfs`). A link that leaves
//! `/pfs` at any step, or ends anywhere but under `/pfs/<input>` or
//! `/pfs/out`, fails the datum with an error naming the link and its target.
//! A link that lands on an input file yields that input's entry by reference
//! — no bytes are read or stored, and with `empty_files` (where the sandbox
//! only holds empty placeholders) the output still carries the input's real
//! content, as Pachyderm's shuffle pipelines expect.
//!
//! Every process of the datum is gone when this runs (see `agent`), so the
//! tree cannot change while it is walked.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

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
    let names: Vec<String> = inputs.keys().cloned().collect();
    let (mut files, linked) = tokio::task::spawn_blocking(move || walk(&pfs, &names))
        .await
        .map_err(|e| WorkerError::Io {
            what: "cannot list outputs",
            path: dir.join("pfs/out"),
            source: std::io::Error::other(e),
        })??;
    let by_reference = linked.into_iter().filter_map(|(path, target)| {
        inputs.get(&target).map(|entry| FileEntry {
            path,
            ..entry.clone()
        })
    });
    files.sort();
    let mut out = Vec::with_capacity(files.len());
    let mut buf = vec![0u8; 1 << 20];
    for (path, host) in files {
        let mut f = tokio::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&host)
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

/// Output files found: (output path, host file) to store, and (output path,
/// sandbox path of an input file) to take by reference.
type Found = (Vec<(String, PathBuf)>, Vec<(String, String)>);

/// Walks `/pfs/out` as the sandbox sees it. `inputs` are the sandbox paths
/// of the input files.
fn walk(pfs: &Path, inputs: &[String]) -> Result<Found> {
    let inputs: std::collections::HashSet<&str> = inputs.iter().map(String::as_str).collect();
    let mut files = Vec::new();
    let mut linked = Vec::new();
    let out = vec!["pfs".to_string(), "out".to_string()];
    let top =
        std::fs::metadata(host_path(pfs, &out)).map_err(io("cannot list", pfs.join("out")))?;
    // (sandbox path of a directory, its output path, the directories it is in)
    let mut stack = vec![(out, String::new(), vec![(top.dev(), top.ino())])];
    while let Some((dir, out_path, ancestors)) = stack.pop() {
        let host_dir = host_path(pfs, &dir);
        let entries = std::fs::read_dir(&host_dir).map_err(io("cannot list", &host_dir))?;
        for e in entries {
            let e = e.map_err(io("cannot list", &host_dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let path = format!("{out_path}/{name}");
            let (resolved, meta) = resolve(pfs, &dir, &name, &path)?;
            let sandbox = format!("/{}", resolved.join("/"));
            // A link to an input file (a lazy one being a named pipe) is
            // that input's entry, whatever it is on disk.
            if inputs.contains(sandbox.as_str()) {
                linked.push((path, sandbox));
            } else if meta.is_dir() {
                let id = (meta.dev(), meta.ino());
                if ancestors.contains(&id) {
                    return Err(WorkerError::LinkLoop { path });
                }
                let mut inner = ancestors.clone();
                inner.push(id);
                stack.push((resolved, path, inner));
            } else if meta.is_file() {
                files.push((path, host_path(pfs, &resolved)));
            }
        }
    }
    Ok((files, linked))
}

/// The host path of a sandbox path under `/pfs` (components from `pfs` on).
fn host_path(pfs: &Path, sandbox: &[String]) -> PathBuf {
    let mut p = pfs.to_path_buf();
    p.extend(sandbox.iter().skip(1));
    p
}

/// Resolves the entry `name` of the sandbox directory `dir` (itself free of
/// links) to a sandbox path free of links, following each link inside the
/// sandbox's view; returns it with the metadata of what it names.
fn resolve(
    pfs: &Path,
    dir: &[String],
    name: &str,
    out_path: &str,
) -> Result<(Vec<String>, std::fs::Metadata)> {
    let mut done: Vec<String> = dir.to_vec();
    let mut todo: VecDeque<String> = VecDeque::from([name.to_string()]);
    let mut first_target: Option<String> = None;
    let outside = |target: &Option<String>| WorkerError::LinkOutsidePfs {
        path: out_path.to_string(),
        target: target.clone().unwrap_or_default(),
    };
    let mut links = 0;
    let mut last = None;
    while let Some(c) = todo.pop_front() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                done.pop();
                last = None;
                continue;
            }
            _ => done.push(c),
        }
        // Only /pfs maps onto the host; anything else is the host's own.
        if done[0] != "pfs" {
            return Err(outside(&first_target));
        }
        if done.len() == 1 {
            last = None;
            continue;
        }
        let host = host_path(pfs, &done);
        let meta = std::fs::symlink_metadata(&host).map_err(io("cannot read output", &host))?;
        if !meta.file_type().is_symlink() {
            last = Some(meta);
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(WorkerError::LinkOutsidePfs {
                path: out_path.to_string(),
                target: format!("(a chain of more than {MAX_LINKS} links)"),
            });
        }
        let target = std::fs::read_link(&host).map_err(io("cannot read link", &host))?;
        first_target.get_or_insert_with(|| target.to_string_lossy().into_owned());
        done.pop();
        if target.is_absolute() {
            done.clear();
        }
        let parts = target.components().filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".to_string()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        });
        for (i, p) in parts.enumerate() {
            todo.insert(i, p);
        }
    }
    // Under /pfs/<input> or /pfs/out, not /pfs itself nor the root.
    match last {
        Some(meta) if done.len() >= 2 => Ok((done, meta)),
        _ => Err(outside(&first_target)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let pfs = d.path().join("pfs");
        std::fs::create_dir_all(pfs.join("in/sub")).unwrap();
        std::fs::create_dir_all(pfs.join("out")).unwrap();
        std::fs::write(pfs.join("in/sub/a.txt"), b"a").unwrap();
        d
    }

    fn link(d: &tempfile::TempDir, at: &str, target: &str) {
        std::os::unix::fs::symlink(target, d.path().join("pfs/out").join(at)).unwrap();
    }

    fn walk_out(d: &tempfile::TempDir) -> Result<Found> {
        walk(&d.path().join("pfs"), &["/pfs/in/sub/a.txt".to_string()])
    }

    #[test]
    fn links_into_inputs_resolve_in_the_sandbox_view() {
        let d = tree();
        link(&d, "abs", "/pfs/in/sub/a.txt");
        link(&d, "rel", "../in/sub/a.txt");
        link(&d, "dotted", "/pfs/out/../in/./sub/../sub/a.txt");
        link(&d, "dir", "/pfs/in");
        link(&d, "chain", "abs");
        std::fs::write(d.path().join("pfs/out/own.txt"), b"x").unwrap();
        link(&d, "to-own", "own.txt");
        let (mut files, mut linked) = walk_out(&d).unwrap();
        files.sort();
        linked.sort();
        let names: Vec<&str> = linked.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            ["/abs", "/chain", "/dir/sub/a.txt", "/dotted", "/rel"]
        );
        assert!(linked.iter().all(|(_, t)| t == "/pfs/in/sub/a.txt"));
        let files: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(files, ["/own.txt", "/to-own"]);
    }

    #[test]
    fn links_leaving_pfs_are_refused_without_touching_the_host() {
        // A file beside the datum directory stands for the host's files.
        let d = tree();
        std::fs::write(d.path().join("secret"), b"host").unwrap();
        let host = d.path().join("secret");
        let deep = format!("/pfs/in/../../../../../../..{}", host.display());
        for target in [
            deep.as_str(),
            "/pfs/../secret",
            "../../secret",
            "/etc/hostname",
            "/pfs",
            "/",
            "/pfs/out/../..",
        ] {
            let d = tree();
            std::fs::write(d.path().join("secret"), b"host").unwrap();
            link(&d, "x", target);
            let err = walk_out(&d).unwrap_err();
            match &err {
                WorkerError::LinkOutsidePfs { path, target: t } => {
                    assert_eq!(path, "/x");
                    assert_eq!(t, target);
                }
                other => panic!("{target}: {other}"),
            }
            assert!(err.to_string().contains(target), "{err}");
        }
        // Through a directory link that leaves /pfs: refused at that step,
        // even though the path as written stays under /pfs/out.
        let d = tree();
        std::fs::write(d.path().join("secret"), b"host").unwrap();
        link(&d, "up", &d.path().display().to_string());
        link(&d, "y", "/pfs/out/up/secret");
        assert!(matches!(
            walk_out(&d).unwrap_err(),
            WorkerError::LinkOutsidePfs { .. }
        ));
    }

    #[test]
    fn loops_are_refused() {
        let d = tree();
        link(&d, "self", "/pfs/out");
        assert!(matches!(
            walk_out(&d).unwrap_err(),
            WorkerError::LinkLoop { .. }
        ));
        let d = tree();
        link(&d, "a", "b");
        link(&d, "b", "a");
        assert!(matches!(
            walk_out(&d).unwrap_err(),
            WorkerError::LinkOutsidePfs { .. }
        ));
    }
}
