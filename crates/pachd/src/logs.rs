//! The last lines pachd logged, kept in memory for `debug dump`: a tracing
//! writer that appends each formatted event to a ring of bounded size, so a
//! dump shows what pachd did lately without access to its stderr.
//!
//! Invariant: the ring holds at most [`RecentLogs::capacity`] lines of at
//! most [`MAX_LINE`] bytes each, whatever pachd logs.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// A longer line is cut (a log line may echo a large input).
pub const MAX_LINE: usize = 4096;

/// The ring of recent log lines; cheap to clone (shared).
#[derive(Clone)]
pub struct RecentLogs {
    lines: Arc<Mutex<VecDeque<String>>>,
    capacity: usize,
}

impl RecentLogs {
    pub fn new(capacity: usize) -> Self {
        Self {
            lines: Arc::new(Mutex::new(VecDeque::with_capacity(capacity))),
            capacity,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn push(&self, text: &str) {
        // A poisoned lock only means a writer panicked mid-push; the ring
        // is still a valid ring.
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        for line in text.lines().filter(|l| !l.is_empty()) {
            if self.capacity == 0 {
                return;
            }
            if lines.len() == self.capacity {
                lines.pop_front();
            }
            lines.push_back(cut(line));
        }
    }

    /// The lines kept, oldest first.
    pub fn snapshot(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines.iter().cloned().collect()
    }
}

fn cut(line: &str) -> String {
    if line.len() <= MAX_LINE {
        return line.to_string();
    }
    let mut end = MAX_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} … ({} more bytes cut)", &line[..end], line.len() - end)
}

/// One event's formatted text, added to the ring when the formatter is done
/// with it (tracing's fmt layer writes one event through one writer).
pub struct EventWriter {
    logs: RecentLogs,
    buf: Vec<u8>,
}

impl Write for EventWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        self.logs.push(&String::from_utf8_lossy(&self.buf));
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RecentLogs {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter {
            logs: self.clone(),
            buf: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_cut_to_size() {
        let logs = RecentLogs::new(3);
        for i in 0..5 {
            let mut w = tracing_subscriber::fmt::MakeWriter::make_writer(&logs);
            writeln!(w, "line {i}").unwrap();
        }
        assert_eq!(logs.snapshot(), ["line 2", "line 3", "line 4"]);
        logs.push(&"é".repeat(MAX_LINE));
        let last = logs.snapshot().pop().unwrap();
        assert!(last.len() < MAX_LINE + 40, "{}", last.len());
        assert!(last.ends_with("bytes cut)"), "{last}");
    }

    #[test]
    fn events_reach_the_ring_through_a_subscriber() {
        use tracing_subscriber::layer::SubscriberExt;
        let logs = RecentLogs::new(10);
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(logs.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(repo = "images", "something happened");
        });
        let lines = logs.snapshot();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("something happened"), "{lines:?}");
        assert!(lines[0].contains("repo=\"images\""), "{lines:?}");
    }
}
