//! Runs user code for one datum, the way Pachyderm's worker does, on the host:
//!
//! 1. [`materialise`] writes the datum's input files under `<dir>/pfs/<input>/…`
//!    at their repo paths, and an empty `<dir>/pfs/out`;
//! 2. [`SandboxSession::run`] runs `transform.cmd` (fed `transform.stdin`)
//!    inside a bubblewrap sandbox that sees the host's userland read-only, a
//!    private `/tmp`, and `<dir>/pfs` mounted at `/pfs`; one sandbox serves
//!    many datums in turn, each in user and PID namespaces of its own (see
//!    [`agent`]);
//! 3. [`collect`] stores everything user code left in `/pfs/out` (following
//!    symlinks into `/pfs/<input>`, as Pachyderm's examples rely on, resolved
//!    as the sandbox sees them) and returns the file entries.
//!
//! Invariants: nothing outside `<dir>` is written on the host, and nothing on
//! the host outside `<dir>/pfs` is read into an output; user code holds no
//! capability over the host; no process of a datum outlives it; output
//! entries are returned only once their content is stored.

pub mod agent;
mod collect;
pub mod gateway;
mod materialise;
mod network;
mod sandbox;
pub mod spout;

pub use collect::collect;
pub use gateway::{Gateway, ServeListener};
pub use materialise::{InputMount, Materialised, ReadAhead, materialise};
pub use network::Network;
pub use sandbox::{
    Command, DEFAULT_MAX_PROCESSES, FileMount, MAX_LOG, Outcome, Sandbox, SandboxSession,
    read_running_log,
};

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
        "slirp4netns was not found on PATH; datums with outbound network need it: install it with `apt-get install slirp4netns`, or run pachd with --datum-network loopback"
    )]
    NoSlirp,
    #[error(
        "nft was not found on PATH; datums with outbound network need it to refuse pachd's ports: install it with `apt-get install nftables`, or run pachd with --datum-network loopback"
    )]
    NoNft,
    #[error(
        "pachd's umask {0:04o} keeps user code, which runs as uid 65534 when pachd is root, from reading its inputs: start pachd with umask 022"
    )]
    Umask(u32),
    #[error("cannot give the sandbox outbound network: {0}")]
    Network(String),
    #[error("the sandbox's agent: {0}")]
    Agent(String),
    #[error(
        "output '{path}' is a symlink to '{target}', which resolves outside /pfs/<input> and /pfs/out; only links into the datum's inputs and outputs are followed"
    )]
    LinkOutsidePfs { path: String, target: String },
    #[error(
        "output '{path}' leads back to a directory it is in (through links); outputs must be a tree"
    )]
    LinkLoop { path: String },
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
