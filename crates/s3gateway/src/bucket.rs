//! Buckets as Pachyderm 1.9's gateway maps them: `BRANCH.REPO` is a branch
//! of a repo, a bare `REPO` its `master` branch, and `COMMIT.REPO` (a commit
//! id) one commit, read-only. Objects are the files of the branch's head
//! commit (or of the commit).

use pach_pfs::names::{is_commit_id, validate_branch_name, validate_name};
use pach_pfs::{CommitRecord, Pfs};
use pach_storage::IndexReader;

use crate::error::{Result, S3Error};

/// What a bucket name points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Branch(String),
    Commit(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bucket {
    /// The name as the client gave it.
    pub name: String,
    pub repo: String,
    pub target: Target,
}

impl Bucket {
    pub(crate) fn parse(name: &str) -> Result<Bucket> {
        let invalid = |reason: String| S3Error::InvalidBucketName {
            bucket: name.to_string(),
            reason,
        };
        let (first, repo) = match name.split_once('.') {
            Some((first, repo)) => (Some(first), repo),
            None => (None, name),
        };
        validate_name("repo", repo).map_err(|e| {
            invalid(format!(
                "{e}; a bucket is BRANCH.REPO, COMMIT.REPO or REPO (its master branch)"
            ))
        })?;
        let target = match first {
            None => Target::Branch("master".into()),
            Some(c) if is_commit_id(c) => Target::Commit(c.into()),
            Some(b) => {
                validate_branch_name(b).map_err(|e| {
                    invalid(format!(
                        "{e}; a bucket is BRANCH.REPO, COMMIT.REPO or REPO (its master branch)"
                    ))
                })?;
                Target::Branch(b.into())
            }
        };
        Ok(Bucket {
            name: name.into(),
            repo: repo.into(),
            target,
        })
    }

    /// The branch this bucket writes to; refused for a commit's bucket.
    pub(crate) fn branch(&self) -> Result<&str> {
        match &self.target {
            Target::Branch(b) => Ok(b),
            Target::Commit(c) => Err(S3Error::ReadOnlyBucket {
                bucket: self.name.clone(),
                repo: self.repo.clone(),
                commit: c.clone(),
            }),
        }
    }

    fn pfs_error(&self, e: pach_pfs::PfsError) -> S3Error {
        S3Error::from_pfs(e, &self.name, "")
    }

    /// The commit whose files are this bucket's objects, with its index;
    /// None for a branch without commits. NoSuchBucket when the repo, the
    /// branch or the commit does not exist.
    pub(crate) async fn contents(&self, pfs: &Pfs) -> Result<Option<(CommitRecord, IndexReader)>> {
        match &self.target {
            Target::Branch(b) => pfs
                .branch_head(&self.repo, b)
                .await
                .map_err(|e| self.pfs_error(e)),
            Target::Commit(c) => pfs
                .open_commit(&self.repo, c)
                .await
                .map(Some)
                .map_err(|e| self.pfs_error(e)),
        }
    }

    /// Whether the bucket exists (NoSuchBucket if not).
    pub(crate) async fn check_exists(&self, pfs: &Pfs) -> Result<()> {
        match &self.target {
            Target::Branch(b) => pfs
                .inspect_branch(&self.repo, b)
                .await
                .map(|_| ())
                .map_err(|e| self.pfs_error(e)),
            Target::Commit(c) => pfs
                .inspect_commit(&self.repo, c, false)
                .await
                .map(|_| ())
                .map_err(|e| self.pfs_error(e)),
        }
    }
}

/// The repo path of an object key (`a/b` is `/a/b`); keys that cannot be a
/// file path (empty, `.` or `..` segments, a trailing `/`, control
/// characters) are refused, never silently normalised into another key.
pub(crate) fn key_path(key: &str) -> Result<String> {
    if key.len() > 1024 {
        return Err(S3Error::KeyTooLong { len: key.len() });
    }
    let refuse = |reason: &str| S3Error::InvalidFilePath {
        key: key.to_string(),
        reason: reason.to_string(),
    };
    if key.is_empty() {
        return Err(refuse("it is empty"));
    }
    let path = pach_pfs::names::file_path(key).map_err(|e| match e {
        pach_pfs::PfsError::InvalidPath { reason, .. } => refuse(&reason),
        other => refuse(&other.to_string()),
    })?;
    if path.len() != key.len() + 1 || &path[1..] != key {
        return Err(refuse(
            "a repo path has no empty, '.' or '..' segments and no leading or trailing '/'",
        ));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        let b = Bucket::parse("dev.images").unwrap();
        assert_eq!(
            (b.repo.as_str(), &b.target),
            ("images", &Target::Branch("dev".into()))
        );
        let b = Bucket::parse("images").unwrap();
        assert_eq!(b.target, Target::Branch("master".into()));
        let id = "0123456789abcdef0123456789abcdef";
        let b = Bucket::parse(&format!("{id}.images")).unwrap();
        assert_eq!(b.target, Target::Commit(id.into()));
        assert!(b.branch().is_err());
        for bad in ["", "a.b.c", ".images", "dev.", "a b", "x.y/z"] {
            assert!(Bucket::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_map_to_paths_one_to_one() {
        assert_eq!(key_path("a/b.csv").unwrap(), "/a/b.csv");
        assert_eq!(key_path("a b/ü").unwrap(), "/a b/ü");
        for bad in ["", "/a", "a/", "a//b", "a/./b", "a/../b", ".", "a\nb"] {
            assert!(key_path(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            key_path(&"k".repeat(1025)),
            Err(S3Error::KeyTooLong { len: 1025 })
        ));
    }
}
