//! The one mapping from errors to gRPC statuses. Every library error type has
//! a `kind()` with no catch-all arm, so a new variant must be given its kind
//! where it is declared; here each kind gets its code, once. Messages are made
//! safe to show: control characters are escaped (a name cannot drive the
//! user's terminal) and long messages are cut (a message that echoes a large
//! input still fits in a response's headers).

use pach_pfs::ErrorKind;
use tonic::{Code, Status};

/// The longest message a status carries, in bytes.
pub(crate) const MAX_MESSAGE: usize = 4096;

/// An error that knows how clients should see it.
pub(crate) trait ApiError: std::fmt::Display {
    fn kind(&self) -> ErrorKind;
}

impl ApiError for pach_pfs::PfsError {
    fn kind(&self) -> ErrorKind {
        pach_pfs::PfsError::kind(self)
    }
}

impl ApiError for pach_admin::AdminError {
    fn kind(&self) -> ErrorKind {
        pach_admin::AdminError::kind(self)
    }
}

impl ApiError for pach_pps::PpsError {
    fn kind(&self) -> ErrorKind {
        pach_pps::PpsError::kind(self)
    }
}

/// The status for an error.
pub(crate) fn status<E: ApiError>(e: E) -> Status {
    status_of(e.kind(), &e.to_string())
}

/// The status for an error of `kind` with `message`.
pub(crate) fn status_of(kind: ErrorKind, message: &str) -> Status {
    let code = match kind {
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Internal => Code::Internal,
    };
    let message = safe_message(message);
    if code == Code::Internal {
        tracing::error!(error = %message, "internal error");
    }
    Status::new(code, message)
}

/// The status for a method this pachd does not serve (the code clients
/// expect from a server that lacks a method); `message` names the way out.
pub(crate) fn unimplemented(message: &str) -> Status {
    Status::unimplemented(safe_message(message))
}

/// `message` with control characters escaped and cut to [`MAX_MESSAGE`] bytes.
pub(crate) fn safe_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE));
    for (i, c) in message.char_indices() {
        if out.len() >= MAX_MESSAGE {
            out.push_str(&format!(" … ({} more bytes cut)", message.len() - i));
            break;
        }
        if c.is_control() && c != '\n' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            safe_message("repo '\u{1b}[31mx' not found"),
            "repo '\\u{1b}[31mx' not found"
        );
        assert_eq!(safe_message("a\nb\tc"), "a\nb\\tc");
    }

    #[test]
    fn long_messages_are_cut() {
        let long = "x".repeat(100_000);
        let cut = safe_message(&long);
        assert!(cut.len() < MAX_MESSAGE + 64, "{}", cut.len());
        assert!(
            cut.ends_with("(95904 more bytes cut)"),
            "{}",
            &cut[cut.len() - 40..]
        );
    }
}
