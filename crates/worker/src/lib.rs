//! Runs user code for one datum, the way Pachyderm's worker does, on the host:
//!
//! 1. [`materialise`] writes the datum's input files under `<dir>/pfs/<input>/…`
//!    at their repo paths, and an empty `<dir>/pfs/out`;
//! 2. [`SandboxSession::run`] runs `transform.cmd` (fed `transform.stdin`)
//!    inside a bubblewrap sandbox that sees the host's userland read-only, a
//!    private `/tmp`, and `<dir>/pfs` mounted at `/pfs`; one sandbox serves
//!    many datums in turn;
//! 3. [`collect`] stores everything user code left in `/pfs/out` (following
//!    symlinks into `/pfs/<input>`, as Pachyderm's examples rely on) and
//!    returns the file entries.
//!
//! Invariants: nothing outside `<dir>` is written on the host; output entries
//! are returned only once their content is stored.

mod collect;
mod materialise;
mod sandbox;

pub use collect::collect;
pub use materialise::{InputMount, Materialised, ReadAhead, materialise};
pub use sandbox::{Command, FileMount, Outcome, Sandbox, SandboxSession};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(
        "bubblewrap (bwrap) was not found on PATH; pipelines run user code in it: install it with `apt-get install bubblewrap`"
    )]
    NoBubblewrap,
    #[error("cannot start '{program}' in the sandbox: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{what} '{path}': {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "output '{path}' is a symlink to '{target}', outside /pfs; only links into /pfs/<input> are followed"
    )]
    LinkOutsidePfs { path: String, target: String },
    #[error(
        "cannot mount files at '{path}': the sandbox shows that host directory read-only and '{path}' does not exist in it; choose a mount_path whose first directory does not exist on the host, like /secrets/NAME"
    )]
    MountPath { path: String },
    #[error(transparent)]
    Storage(#[from] pach_storage::StorageError),
}

pub type Result<T> = std::result::Result<T, WorkerError>;

fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> WorkerError {
    let path = path.into();
    move |source| WorkerError::Io { what, path, source }
}

#[cfg(test)]
mod tests;
