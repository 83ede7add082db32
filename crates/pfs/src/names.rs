//! Validation of user-chosen names and file paths. Everything a user types is
//! checked here before it reaches a key or an index, so keys never contain `/`
//! where a name is expected and paths never escape the repo.

use crate::error::{PfsError, Result};

/// Repo and branch names: Pachyderm's rule (letters, digits, `_`, `-`), plus `.`
/// inside branch names is refused too so that ancestry syntax stays unambiguous.
pub fn validate_name(kind: &'static str, name: &str) -> Result<()> {
    let invalid = |reason: &str| {
        Err(PfsError::InvalidName {
            kind,
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > 63 {
        return invalid("it is longer than 63 characters");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return invalid(&format!(
            "'{c}' is not allowed; use letters, digits, '_' and '-'"
        ));
    }
    Ok(())
}

/// Whether `s` has the form of a commit id: 32 lowercase hex digits (a UUID
/// v4 without dashes, as [`crate::new_commit_id`] makes them and as
/// Pachyderm 1.x made them).
pub fn is_commit_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Branch names: [`validate_name`], and not of the form of a commit id — a
/// reference `repo@<id>` must mean one thing, and a branch of that name
/// would shadow the commit (a `delete commit` would delete another one).
pub fn validate_branch_name(name: &str) -> Result<()> {
    validate_name("branch", name)?;
    if is_commit_id(name) {
        return Err(PfsError::InvalidName {
            kind: "branch",
            name: name.to_string(),
            reason: "it has the form of a commit id (32 hex digits), so `REPO@NAME` would be ambiguous; choose a name that is not 32 hex digits".into(),
        });
    }
    Ok(())
}

/// Normalises a file path to the index form `/a/b`: a leading `/`, no trailing
/// `/`, no empty or `.` components. `..` is refused: a path must not escape.
/// The root is `/`.
pub fn normalize_path(path: &str) -> Result<String> {
    let mut out = String::with_capacity(path.len() + 1);
    for part in path.split('/') {
        match part {
            "" | "." => continue,
            ".." => {
                return Err(PfsError::InvalidPath {
                    path: path.to_string(),
                    reason: "'..' is not allowed in repo paths; give the path from the repo root"
                        .into(),
                });
            }
            p => {
                if p.chars().any(|c| c.is_control()) {
                    return Err(PfsError::InvalidPath {
                        path: path.escape_debug().to_string(),
                        reason: "control characters are not allowed".into(),
                    });
                }
                out.push('/');
                out.push_str(p);
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// A file path to write to: like [`normalize_path`] but the root is refused.
pub fn file_path(path: &str) -> Result<String> {
    let p = normalize_path(path)?;
    if p == "/" {
        return Err(PfsError::InvalidPath {
            path: path.to_string(),
            reason: "a file needs a name; give a path such as /data.csv".into(),
        });
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("repo", "images_2-b").is_ok());
        for bad in ["", "a/b", "a b", "a.b", "a:b", "x:/y", "ü", &"x".repeat(64)] {
            assert!(
                validate_name("repo", bad).is_err(),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn branch_names_are_not_commit_ids() {
        let id = crate::new_commit_id();
        assert!(is_commit_id(&id), "{id}");
        assert!(validate_branch_name(&id).is_err());
        assert!(validate_branch_name("x:y").is_err());
        // Close to an id but not one: fine.
        for ok in [
            &id[..31],
            &id.to_uppercase(),
            "master",
            &format!("{}g", &id[..31]),
        ] {
            assert!(validate_branch_name(ok).is_ok(), "{ok:?} must be accepted");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(normalize_path("a//b/./c/").unwrap(), "/a/b/c");
        assert_eq!(normalize_path("/").unwrap(), "/");
        assert_eq!(normalize_path("").unwrap(), "/");
        assert!(normalize_path("/a/../b").is_err());
        assert!(file_path("/").is_err());
        assert_eq!(file_path("x.txt").unwrap(), "/x.txt");
    }
}
