//! `pachctl mount DIR` and `pachctl unmount [DIR | -a]`: PFS as a local
//! directory through FUSE (the filesystem itself is `fs`, its calls to
//! pachd `remote`).
//!
//! The mount is a direct mount(2) of `/dev/fuse` (root, or CAP_SYS_ADMIN),
//! falling back to a `fusermount3` binary where one is installed. Its
//! source is `pfs://ADDRESS`, which is how `unmount -a` and `unmount DIR`
//! tell PFS mounts from the others in the mount table. The command blocks
//! while the filesystem is mounted; an unmount from elsewhere or SIGINT,
//! SIGTERM or SIGHUP here ends it, and the commits it started are finished
//! before it exits.

mod fs;
mod remote;

use std::collections::HashMap;
use std::ffi::CString;
use std::io::{BufRead, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

use crate::client::connect;
use crate::config::Config;
use crate::refs;
use fs::{Filesystem, Source};
use remote::Remote;

#[derive(Debug, Args)]
pub struct Mount {
    /// The directory to mount PFS on (existing and empty).
    pub mount_point: PathBuf,
    /// Which commit to show for a repo, as REPO@BRANCH or REPO@COMMIT
    /// (repeatable); other repos show their master branch's head.
    #[arg(short, long = "commits", value_name = "REPO@COMMIT")]
    pub commits: Vec<String>,
    /// Print each filesystem call and its answer on stderr.
    #[arg(short, long)]
    pub debug: bool,
    /// Allow writes: a repo's first write starts a commit on its branch,
    /// finished at unmount (a repo mounted on an open commit writes into it).
    #[arg(short, long)]
    pub write: bool,
}

#[derive(Debug, Args)]
pub struct Unmount {
    /// The mount point to unmount.
    pub mount_point: Option<PathBuf>,
    /// Unmount every PFS mount (asks first).
    #[arg(short, long)]
    pub all: bool,
}

/// `-c repo@commit` arguments, as a repo → branch-or-commit map.
fn parse_commits(args: &[String]) -> anyhow::Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for arg in args {
        let r = refs::parse_no_path(arg)?;
        if r.commit.is_empty() {
            bail!("malformed input {arg}, must be of the form repo@commit (or repo@branch)");
        }
        if out.contains_key(&r.repo) {
            bail!(
                "repo '{}' is given twice with -c; give one commit per repo",
                r.repo
            );
        }
        out.insert(r.repo, r.commit);
    }
    Ok(out)
}

/// A `-c` source, checked against pachd: a branch stays a branch (its head
/// is read when the mount first looks at the repo), anything else must name
/// a commit.
async fn check_source(
    c: &mut crate::client::Client,
    repo: &str,
    name: &str,
) -> anyhow::Result<Source> {
    use pach_api::pfs;
    let exists = c
        .pfs
        .inspect_repo(pfs::InspectRepoRequest {
            repo: Some(refs::repo(repo)),
        })
        .await;
    if let Err(s) = exists {
        if s.code() == tonic::Code::NotFound {
            bail!("repo '{repo}' does not exist; `pachctl list repo` shows the repos");
        }
        return Err(crate::client::status(s));
    }
    let branch = c
        .pfs
        .inspect_branch(pfs::InspectBranchRequest {
            branch: Some(pfs::Branch {
                repo: Some(refs::repo(repo)),
                name: name.to_string(),
            }),
        })
        .await;
    if branch.is_ok() {
        return Ok(Source::Branch(name.to_string()));
    }
    match c
        .pfs
        .inspect_commit(pfs::InspectCommitRequest {
            commit: Some(refs::commit(repo, name)),
            block_state: 0,
        })
        .await
    {
        Ok(info) => Ok(Source::Commit(
            info.into_inner().commit.map(|c| c.id).unwrap_or_default(),
        )),
        Err(s) if s.code() == tonic::Code::NotFound => bail!(
            "'{name}' is neither a branch nor a commit of repo '{repo}'; `pachctl list branch \
             {repo}` and `pachctl list commit {repo}` show them"
        ),
        Err(s) => Err(crate::client::status(s)),
    }
}

fn check_mount_point(dir: &Path) -> anyhow::Result<()> {
    let shown = dir.display();
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("mount point '{shown}' does not exist; create it with `mkdir -p {shown}`")
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => bail!(
            "mount point '{shown}' is a mount whose server is gone; \
             `pachctl unmount {shown}` removes it"
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot use mount point '{shown}'")),
    };
    if !meta.is_dir() {
        bail!("mount point '{shown}' is not a directory; give an empty directory");
    }
    if mounts()?.iter().any(|m| same_dir(&m.dir, dir)) {
        bail!("'{shown}' is already a PFS mount; `pachctl unmount {shown}` unmounts it");
    }
    let mut entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read mount point '{shown}'"))?;
    if entries.next().is_some() {
        bail!(
            "mount point '{shown}' is not empty; mount on an empty directory \
             (a mount would hide its files)"
        );
    }
    Ok(())
}

fn check_fuse_device() -> anyhow::Result<()> {
    if !Path::new("/dev/fuse").exists() {
        bail!(
            "FUSE is not available here: /dev/fuse is missing; load the module with \
             `modprobe fuse` (in a container, give it the device: --device /dev/fuse)"
        );
    }
    Ok(())
}

/// Why a mount failed, with the way out.
fn mount_error(dir: &Path, e: std::io::Error) -> anyhow::Error {
    let shown = dir.display();
    if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::EPERM) {
        return anyhow::anyhow!(
            "cannot mount on '{shown}': this process may not mount(2) a FUSE filesystem (that \
             needs root or CAP_SYS_ADMIN) and no fusermount3 is installed to do it instead; run \
             as root or install fuse3 ({e})"
        );
    }
    anyhow::anyhow!("cannot mount on '{shown}': {e}")
}

pub async fn mount(a: Mount) -> anyhow::Result<()> {
    let requested = parse_commits(&a.commits)?;
    check_mount_point(&a.mount_point)?;
    let address = Config::load()?.target()?.address;
    let mut c = connect().await?;
    let mut sources = HashMap::new();
    for (repo, name) in requested {
        sources.insert(repo.clone(), check_source(&mut c, &repo, &name).await?);
    }
    check_fuse_device()?;
    let remote = Remote::new(c.pfs.clone(), tokio::runtime::Handle::current());
    let filesystem = Filesystem::new(remote, sources, a.write, a.debug);
    let closing = filesystem.handle();
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName(format!("pfs://{address}")),
        fuser::MountOption::Subtype("pfs".into()),
        fuser::MountOption::NoExec,
        fuser::MountOption::NoAtime,
        if a.write {
            fuser::MountOption::RW
        } else {
            fuser::MountOption::RO
        },
    ];
    // Calls wait on pachd: several threads keep one slow read from
    // holding up the others.
    config.n_threads = Some(4);
    let dir = a.mount_point.clone();
    let session =
        tokio::task::spawn_blocking(move || fuser::Session::new(filesystem, &dir, &config))
            .await?
            .map_err(|e| mount_error(&a.mount_point, e))?;
    eprintln!(
        "PFS at {address} is mounted on {}{}; `pachctl unmount {}` unmounts it",
        a.mount_point.display(),
        if a.write { " (writable)" } else { "" },
        a.mount_point.display()
    );
    let mut serving = tokio::task::spawn_blocking(move || session.run());
    let ended = tokio::select! {
        r = &mut serving => r,
        signal = stop_signal() => {
            signal?;
            // Lazily if busy: the session ends when the last file closes.
            if let Err(e) = unmount_dir(&a.mount_point, false) {
                eprintln!("{e:#}; detaching it instead");
                unmount_dir(&a.mount_point, true)?;
            }
            serving.await
        }
    };
    if let Err(e) = ended? {
        eprintln!("pachctl mount: the FUSE session ended with an error: {e}");
    }
    let closed = tokio::task::spawn_blocking(move || closing.close()).await?;
    let mut failed = false;
    for (s, r) in closed {
        match r {
            Ok(()) => eprintln!(
                "finished commit {}@{} (branch {})",
                s.repo, s.commit, s.branch
            ),
            Err(e) => {
                failed = true;
                eprintln!(
                    "error: cannot finish commit {}@{} (branch {}): {}; finish it with \
                     `pachctl finish commit {}@{}`",
                    s.repo,
                    s.commit,
                    s.branch,
                    crate::client::escape(e.message()),
                    s.repo,
                    s.commit
                );
            }
        }
    }
    if failed {
        bail!("some commits started by the mount are still open");
    }
    Ok(())
}

async fn stop_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
        _ = hup.recv() => {}
    }
    Ok(())
}

/// A PFS mount of the mount table.
struct PfsMount {
    dir: PathBuf,
}

/// The PFS mounts (FUSE mounts whose source is `pfs://...`), from
/// /proc/self/mountinfo.
fn mounts() -> anyhow::Result<Vec<PfsMount>> {
    let table = std::fs::read_to_string("/proc/self/mountinfo")
        .context("cannot read the mount table (/proc/self/mountinfo)")?;
    Ok(table.lines().filter_map(pfs_mount).collect())
}

/// One line of mountinfo: `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS
/// [FIELDS...] - FSTYPE SOURCE SUPEROPTIONS`.
fn pfs_mount(line: &str) -> Option<PfsMount> {
    let (left, right) = line.split_once(" - ")?;
    let dir = left.split(' ').nth(4)?;
    let mut right = right.split(' ');
    let fstype = right.next()?;
    let source = right.next()?;
    (fstype.starts_with("fuse") && source.starts_with("pfs://")).then(|| PfsMount {
        dir: PathBuf::from(unescape(dir)),
    })
}

/// The kernel writes space, tab, newline and backslash in octal (`\040`).
fn unescape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(n) = s
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(n);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn same_dir(a: &Path, b: &Path) -> bool {
    let abs = |p: &Path| {
        std::path::absolute(p)
            .ok()
            .map(|p| p.components().collect::<PathBuf>())
    };
    // canonicalize would stat the mount (and hang on a dead one).
    abs(a).is_some() && abs(a) == abs(b)
}

fn unmount_dir(dir: &Path, lazy: bool) -> anyhow::Result<()> {
    let shown = dir.display();
    let c = CString::new(dir.as_os_str().as_bytes())
        .with_context(|| format!("'{shown}' is not a path"))?;
    let flags = if lazy { libc::MNT_DETACH } else { 0 };
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EBUSY) => bail!(
            "'{shown}' is busy: a process has a file or its working directory there; close \
             it, or let `pachctl mount` be stopped with Ctrl-C, which detaches the mount"
        ),
        Some(libc::EPERM) => {
            bail!(
                "cannot unmount '{shown}': not permitted (unmounting needs root or CAP_SYS_ADMIN)"
            )
        }
        Some(libc::EINVAL) => bail!("'{shown}' is not a mount point"),
        Some(libc::ENOENT) => bail!("'{shown}' does not exist"),
        _ => Err(e).with_context(|| format!("cannot unmount '{shown}'")),
    }
}

pub fn unmount(a: Unmount) -> anyhow::Result<()> {
    match (a.mount_point, a.all) {
        (Some(_), true) => bail!("give a mount point or --all, not both"),
        (None, false) => bail!(
            "give the mount point to unmount, or --all for every PFS mount (`mount | grep pfs://` \
             lists them)"
        ),
        (Some(dir), false) => {
            if !mounts()?.iter().any(|m| same_dir(&m.dir, &dir)) {
                bail!(
                    "'{}' is not a PFS mount; `mount | grep pfs://` lists them (other \
                     filesystems are unmounted with umount)",
                    dir.display()
                );
            }
            unmount_dir(&dir, false)
        }
        (None, true) => {
            let all = mounts()?;
            if all.is_empty() {
                println!("No mounts found.");
                return Ok(());
            }
            println!("Unmount the following filesystems? yN");
            for m in &all {
                println!("{}", m.dir.display());
            }
            std::io::stdout().flush()?;
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer)?;
            if !answer.trim_start().starts_with(['y', 'Y']) {
                return Ok(());
            }
            for m in &all {
                unmount_dir(&m.dir, false)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pfs_mounts_are_found_in_mountinfo() {
        let line = "36 35 0:40 / /mnt/my\\040pfs rw,nosuid,nodev - fuse pfs://127.0.0.1:30650 \
                    rw,user_id=0,group_id=0";
        assert_eq!(
            pfs_mount(line).map(|m| m.dir),
            Some(PathBuf::from("/mnt/my pfs"))
        );
        let other = "25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw";
        assert!(pfs_mount(other).is_none());
        let sshfs = "40 25 0:50 / /mnt/s rw - fuse.sshfs host:/ rw";
        assert!(pfs_mount(sshfs).is_none());
    }

    #[test]
    fn commits_are_repo_at_commit() {
        let c = parse_commits(&["images@v1".into(), "labels@0123abcd".into()]).unwrap();
        assert_eq!(c["images"], "v1");
        let e = parse_commits(&["images".into()]).unwrap_err().to_string();
        assert!(e.contains("repo@commit"), "{e}");
        let e = parse_commits(&["a@x".into(), "a@y".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("twice"), "{e}");
    }
}
