//! Writes a datum's input files where user code expects them. A `lazy` input
//! file is a named pipe instead, fed from storage only when user code opens
//! it, as Pachyderm does for lazy inputs: a datum that reads a few of many
//! large files fetches only those (and, as in Pachyderm, each can be read once).

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use pach_storage::{ContentHash, ContentStore, FileEntry, StorageError};
use tokio::io::AsyncWriteExt;

use crate::{Result, io};

/// One input file of a datum: mounted at `/pfs/<input>/<entry.path>`.
#[derive(Debug, Clone)]
pub struct InputMount {
    pub input: String,
    pub entry: FileEntry,
    /// `empty_files`: the file exists but holds no bytes.
    pub empty: bool,
    /// `lazy`: a named pipe fed on first open.
    pub lazy: bool,
}

/// The lazy files of a materialised datum; [`Materialised::release`] ends
/// their feeders once user code is done.
#[derive(Debug, Default)]
pub struct Materialised {
    fifos: Vec<PathBuf>,
    feeders: Vec<tokio::task::JoinHandle<()>>,
}

impl Materialised {
    /// Stops feeding lazy files nobody opened (or finished reading).
    pub async fn release(self) {
        for fifo in &self.fifos {
            // Opening the read end lets a feeder blocked in open() go on; it
            // then fails on the closed pipe and ends.
            let _ = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(fifo);
        }
        for f in self.feeders {
            f.abort();
            let _ = f.await;
        }
    }
}

fn make_fifo(path: &Path) -> std::io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("a path with a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated path; mkfifo only reads it.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o644) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Writes a file's content into its named pipe once a reader opens it.
fn feed(content: ContentStore, entry: FileEntry, fifo: PathBuf) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let path = fifo.clone();
        let opened = tokio::task::spawn_blocking(move || {
            std::fs::OpenOptions::new().write(true).open(&path)
        })
        .await;
        let Ok(Ok(file)) = opened else { return };
        let mut file = tokio::fs::File::from_std(file);
        let mut bytes = content.read_file(&entry, 0, None);
        while let Some(Ok(chunk)) = bytes.next().await {
            if file.write_all(&chunk).await.is_err() {
                return; // the reader went away
            }
        }
        let _ = file.flush().await;
    })
}

/// Input files read ahead of the datums that need them, so that a datum's
/// inputs arrive while the datum before it runs instead of one object-store
/// round trip after another. Only small files are read ahead, and at most
/// [`READ_AHEAD_BYTES`] at a time; the others stream in when materialised.
#[derive(Debug, Default)]
pub struct ReadAhead {
    pending: HashMap<
        ContentHash,
        (
            u64,
            tokio::task::JoinHandle<std::result::Result<Bytes, StorageError>>,
        ),
    >,
    bytes: u64,
}

/// Files larger than this are not read ahead.
pub const READ_AHEAD_FILE: u64 = 1 << 20;
/// Bytes read ahead at most.
pub const READ_AHEAD_BYTES: u64 = 64 << 20;

impl ReadAhead {
    /// Starts reading `entry` unless it is large, already coming, or the
    /// budget is spent. False when the budget is spent.
    pub fn want(&mut self, content: &ContentStore, entry: &FileEntry) -> bool {
        if entry.size > READ_AHEAD_FILE || self.pending.contains_key(&entry.hash) {
            return true;
        }
        if self.bytes + entry.size > READ_AHEAD_BYTES {
            return false;
        }
        let content = content.clone();
        let e = entry.clone();
        let read = tokio::spawn(async move {
            let parts: Vec<Bytes> = content.read_file(&e, 0, None).try_collect().await?;
            Ok(parts.concat().into())
        });
        self.bytes += entry.size;
        self.pending.insert(entry.hash, (entry.size, read));
        true
    }

    /// How many files are read ahead.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The content of a file read ahead, if it was.
    async fn take(
        &mut self,
        hash: &ContentHash,
    ) -> Option<std::result::Result<Bytes, StorageError>> {
        let (size, read) = self.pending.remove(hash)?;
        self.bytes -= size;
        // A read task that died (None) means: read the file again.
        read.await.ok()
    }
}

/// Creates `<dir>/pfs/out`, a directory per input name (present even when the
/// datum holds no file of it) and every input file under `<dir>/pfs/<input>/`.
/// Files in `ahead` are taken from it rather than read again.
pub async fn materialise(
    content: &ContentStore,
    dir: &Path,
    inputs: &[String],
    mounts: &[InputMount],
    ahead: &mut ReadAhead,
) -> Result<Materialised> {
    let mut lazy = Materialised::default();
    let pfs = dir.join("pfs");
    for d in std::iter::once("out").chain(inputs.iter().map(String::as_str)) {
        let d = pfs.join(d);
        tokio::fs::create_dir_all(&d)
            .await
            .map_err(io("cannot create", &d))?;
    }
    for m in mounts {
        let rel = m.entry.path.trim_start_matches('/');
        let target = pfs.join(&m.input).join(rel);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(io("cannot create", parent))?;
        }
        if m.lazy && !m.empty {
            make_fifo(&target).map_err(io("cannot create", &target))?;
            lazy.feeders
                .push(feed(content.clone(), m.entry.clone(), target.clone()));
            lazy.fifos.push(target);
            continue;
        }
        let mut file = tokio::fs::File::create(&target)
            .await
            .map_err(io("cannot create", &target))?;
        if !m.empty
            && let Some(bytes) = ahead.take(&m.entry.hash).await
        {
            file.write_all(&bytes?)
                .await
                .map_err(io("cannot write", &target))?;
        } else if !m.empty {
            let mut bytes = content.read_file(&m.entry, 0, None);
            while let Some(chunk) = bytes.next().await {
                file.write_all(&chunk?)
                    .await
                    .map_err(io("cannot write", &target))?;
            }
        }
        file.flush().await.map_err(io("cannot write", &target))?;
    }
    Ok(lazy)
}
