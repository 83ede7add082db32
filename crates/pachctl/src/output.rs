//! Output: human tables by default, `--raw` (one compact JSON object per
//! line) and `-o json|yaml` on every list/inspect command but `list job`
//! (whose `-o` is 1.9's output commit); `--full-timestamps`; the pager. The
//! JSON objects have the shape of Pachyderm's (`.repo.name`, `.commit.id`,
//! `.file.path`...), so scripts written against Pachyderm keep working.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use serde_json::Value;

#[derive(Debug, Clone, Args, Default)]
pub struct Format {
    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    pub raw: bool,
    /// Output format: json or yaml (implies raw output).
    #[arg(short = 'o', long = "output", value_parser = ["json", "yaml"])]
    pub output: Option<String>,
}

impl Format {
    pub fn is_human(&self) -> bool {
        !self.raw && self.output.is_none()
    }

    /// Prints objects in the chosen machine format.
    pub fn print(&self, out: &mut impl Write, objects: &[Value]) -> anyhow::Result<()> {
        match self.output.as_deref() {
            Some("yaml") => {
                for (i, o) in objects.iter().enumerate() {
                    if i > 0 {
                        writeln!(out, "---")?;
                    }
                    write!(out, "{}", serde_yaml_ng::to_string(o)?)?;
                }
            }
            Some(_) => {
                for o in objects {
                    writeln!(out, "{}", serde_json::to_string_pretty(o)?)?;
                }
            }
            None => {
                for o in objects {
                    writeln!(out, "{}", serde_json::to_string(o)?)?;
                }
            }
        }
        Ok(())
    }
}

/// Whether times print in full (`--full-timestamps`) instead of "3 minutes ago".
static FULL_TIMESTAMPS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `--full-timestamps`, given anywhere on the command line.
pub fn set_full_timestamps(full: bool) {
    FULL_TIMESTAMPS.store(full, std::sync::atomic::Ordering::Relaxed);
}

/// `--no-color`: no colour in what pachctl runs for its output (`diff file`).
static NO_COLOR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_no_color(on: bool) {
    NO_COLOR.store(on, std::sync::atomic::Ordering::Relaxed);
}

pub fn no_color() -> bool {
    NO_COLOR.load(std::sync::atomic::Ordering::Relaxed)
}

/// The `--raw` switch alone, for the commands where Pachyderm 1.9's `-o`
/// means something else (`list job -o REPO@COMMIT`).
#[derive(Debug, Clone, Args, Default)]
pub struct Raw {
    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    pub raw: bool,
}

impl From<Raw> for Format {
    fn from(r: Raw) -> Self {
        Format {
            raw: r.raw,
            output: None,
        }
    }
}

/// Writes output through a pager when stdout is a terminal, as Pachyderm
/// 1.9 does for `list job` and `diff file`: `$PAGER` (a shell command line;
/// `less` when unset, with `LESS=FRX` unless set, so that a short output
/// just prints). `--no-pager`, or output to a pipe or file, writes directly.
pub fn paged(
    no_pager: bool,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if no_pager || !std::io::stdout().is_terminal() {
        let mut out = crate::cmd::stdout();
        write(&mut out)?;
        return crate::cmd::finish(out);
    }
    let mut text = Vec::new();
    write(&mut text)?;
    let pager = std::env::var("PAGER")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "less".into());
    let mut command = std::process::Command::new("sh");
    command
        .args(["-c", &pager])
        .stdin(std::process::Stdio::piped());
    if std::env::var_os("LESS").is_none() {
        command.env("LESS", "FRX");
    }
    let Ok(mut child) = command.spawn() else {
        // No pager to be had: print as is.
        let mut out = crate::cmd::stdout();
        out.write_all(&text)?;
        return crate::cmd::finish(out);
    };
    if let Some(mut stdin) = child.stdin.take() {
        // The reader may quit early (`q` in less): not an error.
        let _ = stdin.write_all(&text);
    }
    child.wait()?;
    Ok(())
}

/// Pachyderm's byte sizes: `0B`, `512B`, `1.953KiB`, `12.5MiB` (4 significant digits).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        return format!("{n}B");
    }
    let digits = if v >= 1000.0 {
        0
    } else if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", UNITS[unit])
}

fn system_time(ns: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64)
}

/// "3 seconds ago", "About a minute ago", "2 hours ago", like Pachyderm's tables.
///
/// With `--full-timestamps`, the time itself in RFC 3339 (UTC, to the
/// nanosecond); Pachyderm 1.9 prints protobuf's debug form there
/// (`seconds:1575000000 nanos:5`), which no reader wants.
pub fn ago(ns: i64) -> String {
    if ns <= 0 {
        return "-".into();
    }
    if FULL_TIMESTAMPS.load(std::sync::atomic::Ordering::Relaxed) {
        return humantime::format_rfc3339_nanos(system_time(ns)).to_string();
    }
    let secs = SystemTime::now()
        .duration_since(system_time(ns))
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let plural = |n: u64, unit: &str| {
        if n == 1 {
            format!("1 {unit} ago")
        } else {
            format!("{n} {unit}s ago")
        }
    };
    match secs {
        0 => "Less than a second ago".into(),
        1..=59 => plural(secs, "second"),
        60..=119 => "About a minute ago".into(),
        120..=3599 => plural(secs / 60, "minute"),
        3600..=7199 => "About an hour ago".into(),
        7200..=172_799 => plural(secs / 3600, "hour"),
        _ => plural(secs / 86_400, "day"),
    }
}

/// Nanoseconds since the epoch of a protobuf timestamp (0 when absent).
pub fn timestamp_ns(t: Option<&prost_types::Timestamp>) -> i64 {
    t.map(|t| {
        t.seconds
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(t.nanos))
    })
    .unwrap_or(0)
}

/// A table with aligned columns (tabwriter-like: column width + 3 spaces).
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
    pub fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for r in &self.rows {
            let mut line = String::new();
            for (c, cell) in r.iter().enumerate() {
                line.push_str(cell);
                if c + 1 < r.len() {
                    line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 3));
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// A message as Pachyderm's pachctl prints it with `--raw`: PFS objects with
/// protobuf's default (lowerCamelCase) JSON names, PPS objects with the
/// names of the .proto file ([`FieldNames::Proto`]).
pub fn message_json<M: prost::Message + prost::Name>(
    msg: &M,
    names: pach_api::json::FieldNames,
) -> anyhow::Result<Value> {
    Ok(pach_api::json::to_json(msg, names)?)
}

/// PFS messages as Pachyderm 1.9's pachctl prints them (`sizeBytes`, ...).
pub fn pfs_json<M: prost::Message + prost::Name>(msgs: &[M]) -> anyhow::Result<Vec<Value>> {
    msgs.iter()
        .map(|m| message_json(m, pach_api::json::FieldNames::Camel))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_pachyderm() {
        assert_eq!(bytes(0), "0B");
        assert_eq!(bytes(1023), "1023B");
        assert_eq!(bytes(1024), "1KiB");
        assert_eq!(bytes(2000), "1.953KiB");
        assert_eq!(bytes(3 << 20), "3MiB");
        assert_eq!(bytes(12_900_000), "12.3MiB");
    }

    #[test]
    fn relative_times() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        assert_eq!(ago(now - 5_000_000_000), "5 seconds ago");
        assert_eq!(ago(now - 90_000_000_000), "About a minute ago");
        assert_eq!(ago(now - 3 * 3_600_000_000_000), "3 hours ago");
        assert_eq!(ago(0), "-");
    }

    #[test]
    fn pfs_objects_print_with_1_9_names() {
        use pach_api::pfs;
        let f = pfs::FileInfo {
            file: Some(pfs::File {
                commit: None,
                path: "/a".into(),
            }),
            file_type: pfs::FileType::Dir as i32,
            size_bytes: 3,
            ..Default::default()
        };
        let j = &pfs_json(&[f]).unwrap()[0];
        assert_eq!(j["file"]["path"], "/a");
        assert_eq!(j["fileType"], "DIR");
        assert_eq!(
            j["sizeBytes"], "3",
            "64-bit integers are strings, as jsonpb prints them"
        );
        let t = prost_types::Timestamp {
            seconds: 2,
            nanos: 5,
        };
        assert_eq!(timestamp_ns(Some(&t)), 2_000_000_005);
        assert_eq!(timestamp_ns(None), 0);
    }

    #[test]
    fn table_aligns() {
        let mut t = Table::new(&["NAME", "SIZE"]);
        t.row(vec!["a-long-name".into(), "1B".into()]);
        let mut out = Vec::new();
        t.print(&mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0].find("SIZE"), lines[1].find("1B"));
    }
}
