//! Output: human tables by default, `--raw` (one compact JSON object per line)
//! and `-o json|yaml` on every list/inspect command. The JSON objects have the
//! shape of Pachyderm's (`.repo.name`, `.commit.id`, `.file.path`...), so
//! scripts written against Pachyderm keep working.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use pach_api as api;
use serde_json::{Value, json};

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
pub fn ago(ns: i64) -> String {
    if ns <= 0 {
        return "-".into();
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

pub fn rfc3339(ns: i64) -> Value {
    if ns <= 0 {
        Value::Null
    } else {
        Value::String(humantime::format_rfc3339_nanos(system_time(ns)).to_string())
    }
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

pub fn repo_json(r: &api::RepoInfo) -> Value {
    json!({
        "repo": {"name": r.name},
        "created": rfc3339(r.created_ns),
        "size_bytes": r.size_bytes,
        "description": r.description,
        "branches": r.branches.iter().map(|b| json!({"repo": {"name": r.name}, "name": b})).collect::<Vec<_>>(),
    })
}

fn commit_obj(repo: &str, id: &str) -> Value {
    json!({"repo": {"name": repo}, "id": id})
}

pub fn commit_json(c: &api::CommitInfo) -> Value {
    json!({
        "commit": commit_obj(&c.repo, &c.id),
        "branch": if c.branch.is_empty() { Value::Null } else { json!({"repo": {"name": c.repo}, "name": c.branch}) },
        "parent_commit": if c.parent.is_empty() { Value::Null } else { commit_obj(&c.repo, &c.parent) },
        "child_commits": c.children.iter().map(|id| commit_obj(&c.repo, id)).collect::<Vec<_>>(),
        "started": rfc3339(c.started_ns),
        "finished": rfc3339(c.finished_ns),
        "size_bytes": c.size_bytes,
        "description": c.description,
        "provenance": c.provenance.iter().map(|p| json!({"commit": commit_obj(&p.repo, &p.id)})).collect::<Vec<_>>(),
        "origin": {"kind": c.origin},
    })
}

pub fn branch_json(b: &api::BranchInfo) -> Value {
    let name = |r: &api::BranchRef| json!({"repo": {"name": r.repo}, "name": r.name});
    json!({
        "branch": {"repo": {"name": b.repo}, "name": b.name},
        "head": if b.head.is_empty() { Value::Null } else { commit_obj(&b.repo, &b.head) },
        "provenance": b.provenance.iter().map(name).collect::<Vec<_>>(),
        "subvenance": b.subvenance.iter().map(name).collect::<Vec<_>>(),
    })
}

pub fn file_json(f: &api::FileInfo) -> Value {
    json!({
        "file": {"commit": commit_obj(&f.repo, &f.commit), "path": f.path},
        "file_type": if f.is_dir { "DIR" } else { "FILE" },
        "size_bytes": f.size_bytes,
        "hash": f.hash,
    })
}

/// A message as Pachyderm's pachctl prints it with `--raw`: PFS objects with
/// protobuf's default (lowerCamelCase) JSON names, PPS objects with the
/// names of the .proto file ([`FieldNames::Proto`]).
#[allow(dead_code)]
pub fn message_json<M: prost::Message + prost::Name>(
    msg: &M,
    names: pach_api::json::FieldNames,
) -> anyhow::Result<Value> {
    Ok(pach_api::json::to_json(msg, names)?)
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
    fn json_shapes() {
        let r = api::RepoInfo {
            name: "images".into(),
            created_ns: 1,
            ..Default::default()
        };
        assert_eq!(repo_json(&r)["repo"]["name"], "images");
        let c = api::CommitInfo {
            repo: "r".into(),
            id: "abc".into(),
            finished_ns: 0,
            ..Default::default()
        };
        let j = commit_json(&c);
        assert_eq!(j["commit"]["id"], "abc");
        assert!(j["finished"].is_null());
        assert!(j["parent_commit"].is_null());
        let f = api::FileInfo {
            path: "/a".into(),
            is_dir: true,
            ..Default::default()
        };
        assert_eq!(file_json(&f)["file_type"], "DIR");
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
