//! Parsing of `repo`, `repo@branch`, `repo@commit^`, `repo@branch:/path`. The
//! commit part is passed to pachd as typed: pachd resolves branches, ids and
//! ancestry.

use anyhow::bail;
use pach_api::pfs;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    pub repo: String,
    /// Branch, commit id, with optional ancestry; empty when not given.
    pub commit: String,
    /// The path as typed, normalised to start with `/`; empty when not given.
    pub path: String,
}

pub fn parse(arg: &str) -> anyhow::Result<FileRef> {
    let form = "use REPO, REPO@BRANCH, REPO@COMMIT, REPO@BRANCH^ or REPO@BRANCH:/PATH";
    let (repo, rest) = match arg.split_once('@') {
        Some((r, rest)) => (r, Some(rest)),
        None => (arg, None),
    };
    if repo.is_empty() {
        bail!("'{arg}' names no repo; {form}");
    }
    if repo.contains(':') {
        bail!("'{arg}' has a path but no branch or commit; {form}");
    }
    let (commit, path) = match rest {
        None => (String::new(), String::new()),
        Some(rest) => {
            let (c, p) = match rest.split_once(':') {
                Some((c, p)) => (c, Some(p)),
                None => (rest, None),
            };
            if c.is_empty() {
                bail!("'{arg}' has an empty branch or commit after '@'; {form}");
            }
            (c.to_string(), p.map(normalize).unwrap_or_default())
        }
    };
    Ok(FileRef {
        repo: repo.to_string(),
        commit,
        path,
    })
}

/// Like [`parse`], for arguments that name a branch or commit only: a path
/// is refused rather than dropped (`create branch r@x:y` must not create `x`).
pub fn parse_no_path(arg: &str) -> anyhow::Result<FileRef> {
    let r = parse(arg)?;
    if !r.path.is_empty() {
        bail!(
            "'{arg}' has a path ('{}') where none is expected; use REPO@BRANCH or REPO@COMMIT",
            r.path
        );
    }
    Ok(r)
}

fn normalize(p: &str) -> String {
    if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    }
}

/// The commit part, defaulting to `master` as Pachyderm does.
impl FileRef {
    pub fn commit_or_master(&self) -> String {
        if self.commit.is_empty() {
            "master".to_string()
        } else {
            self.commit.clone()
        }
    }
    pub fn repo(&self) -> pfs::Repo {
        repo(&self.repo)
    }
    /// The commit (or branch) named, `master` when none was given.
    pub fn commit(&self) -> pfs::Commit {
        commit(&self.repo, &self.commit_or_master())
    }
    /// The branch named (the commit part read as a branch name).
    pub fn branch(&self) -> pfs::Branch {
        pfs::Branch {
            repo: Some(self.repo()),
            name: self.commit_or_master(),
        }
    }
    /// The file named, `/` when no path was given.
    pub fn file(&self) -> pfs::File {
        pfs::File {
            commit: Some(self.commit()),
            path: if self.path.is_empty() {
                "/".into()
            } else {
                self.path.clone()
            },
        }
    }
}

pub fn repo(name: &str) -> pfs::Repo {
    pfs::Repo { name: name.into() }
}

pub fn commit(repo_name: &str, id: &str) -> pfs::Commit {
    pfs::Commit {
        repo: Some(repo(repo_name)),
        id: id.into(),
    }
}

/// Refuses `..` components before anything is sent.
pub fn check_no_parent(path: &str) -> anyhow::Result<()> {
    if path.split('/').any(|c| c == "..") {
        bail!(
            "the path '{path}' contains '..'; repo paths are given from the repo root, e.g. /dir/file"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let r = parse("images").unwrap();
        assert_eq!(
            (r.repo.as_str(), r.commit.as_str(), r.path.as_str()),
            ("images", "", "")
        );
        let r = parse("images@master^:/a/b.png").unwrap();
        assert_eq!(
            (r.repo.as_str(), r.commit.as_str(), r.path.as_str()),
            ("images", "master^", "/a/b.png")
        );
        let r = parse("images@master~2:rel.txt").unwrap();
        assert_eq!(
            (r.commit.as_str(), r.path.as_str()),
            ("master~2", "/rel.txt")
        );
        let r = parse("images@0123abc").unwrap();
        assert_eq!(r.commit, "0123abc");
        assert_eq!(parse("images").unwrap().commit_or_master(), "master");
        for bad in ["", "@master", "images@", "images@:/x", "images:/x"] {
            assert!(parse(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(parse_no_path("r1@x:y").is_err());
        assert_eq!(parse_no_path("r1@x").unwrap().commit, "x");
        assert!(check_no_parent("/a/../b").is_err());
        assert!(check_no_parent("/a/..b").is_ok());
    }
}
