//! One module per noun: each turns parsed arguments into API calls and prints
//! the answer.

pub mod admin;
pub mod auth;
pub mod branch;
pub mod commit;
pub mod debug;
pub mod enterprise;
pub mod file;
pub mod job;
pub mod misc;
pub mod pipeline;
pub mod repo;
pub mod secret;
pub mod transaction;

use std::io::Write;

/// Stdout, buffered; a closed pipe (`| head`) ends the output quietly.
pub fn stdout() -> std::io::BufWriter<std::io::StdoutLock<'static>> {
    std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock())
}

/// Flushes stdout, treating a closed pipe as success.
pub fn finish(mut out: impl Write) -> anyhow::Result<()> {
    match out.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

pub fn broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
