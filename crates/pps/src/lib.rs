//! Pipelines (PPS): Pachyderm pipeline specs, datum planning from glob
//! patterns, the records of pipelines, jobs and datums, and the controller
//! that turns every new input commit into a job whose datums run in the
//! sandbox (`pach-worker`), incrementally and with provenance.

mod controller;
pub mod cron;
pub mod datum;
pub mod error;
pub mod git;
pub mod glob;
mod job;
pub mod leader;
pub mod logs;
mod pipeline;
pub mod records;
mod run;
pub mod runlog;
pub mod secrets;
mod service;
pub mod spec;
mod spout;
pub mod stats;
mod tasks;
mod worker;

pub use error::{PpsError, Result};
pub use job::{JobFilter, Restarted};
pub use pipeline::{JobAccess, Pps, SandboxGateway, ServeGateway};

pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
