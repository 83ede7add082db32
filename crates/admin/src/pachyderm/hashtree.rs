//! The file trees of Pachyderm's commits, as each version serialises them,
//! read into the list of files a commit holds and where each file's bytes
//! are.
//!
//! - 1.7: one `hashtree_1_7.HashTreeProto` message: a map from clean paths
//!   (the root is "", others start with "/") to nodes; a directory names its
//!   children, a file lists the objects whose concatenation it is.
//! - 1.8 and 1.9: a sequence of length-prefixed records (8-byte
//!   little-endian lengths, as ops are framed), in one of two layouts:
//!   * the bolt-database dump (`Serialize` of a tree, and what 1.9 writes
//!     when it converts a 1.7 tree): per bucket, a `hashtree.BucketHeader`
//!     record, then key and value records, then the one-byte key `*`; the
//!     `fs` bucket holds the nodes, the `changed` bucket is bookkeeping;
//!   * the merged layout (finished commits and `Trees` shards in 1.9): key
//!     and value records, no headers.
//!
//!   Keys are paths with every `/` written as a NUL byte; the root is a
//!   single NUL. Values are `hashtree.NodeProto`; a file lists objects, or
//!   block ranges (1.9), whose concatenation it is.
//!
//! Only files matter to the importer: directories exist here by the files
//! under them (an empty directory of Pachyderm does not survive the move).

use pach_api::{hashtree, hashtree_1_7};
use prost::Message;

use super::ops::ContentRef;

/// One file of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// Absolute, clean: "/dir/file".
    pub path: String,
    /// The pieces whose concatenation is the file.
    pub content: Vec<ContentRef>,
}

/// Why a tree did not parse (the caller says which tree).
pub type TreeError = String;

/// Reads a 1.7 tree.
pub fn parse_1_7(bytes: &[u8]) -> Result<Vec<TreeFile>, TreeError> {
    let tree = hashtree_1_7::HashTreeProto::decode(bytes)
        .map_err(|e| format!("not a 1.7 hashtree message: {e}"))?;
    let mut files = Vec::new();
    // Walk from the root through the children each directory names, as
    // Pachyderm's own conversion does: a node nothing reaches is not part of
    // the tree.
    let mut pending = vec![String::new()];
    let mut visited = 0usize;
    while let Some(path) = pending.pop() {
        visited += 1;
        if visited > tree.fs.len() {
            return Err("its directories name more nodes than it holds (a cycle)".into());
        }
        let node = tree
            .fs
            .get(&path)
            .ok_or_else(|| format!("a directory names '{path}', which the tree lacks"))?;
        match (&node.file_node, &node.dir_node) {
            (Some(f), _) => {
                if path.is_empty() {
                    return Err("its root is a file".into());
                }
                files.push(TreeFile {
                    path,
                    content: f
                        .objects
                        .iter()
                        .map(|o| ContentRef::Object(o.hash.clone()))
                        .collect(),
                });
            }
            (None, Some(d)) => {
                for child in d.children.iter().rev() {
                    pending.push(join_child(&path, child)?);
                }
            }
            (None, None) if path.is_empty() && tree.fs.len() == 1 => {}
            (None, None) => return Err(format!("node '{path}' is neither a file nor a directory")),
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn join_child(dir: &str, child: &str) -> Result<String, TreeError> {
    if child.is_empty() || child.contains('/') || child == "." || child == ".." {
        return Err(format!(
            "directory '{dir}/' names a child '{child}', which is not a name"
        ));
    }
    Ok(format!("{dir}/{child}"))
}

/// Reads a 1.8 or 1.9 tree, in either of its layouts.
pub fn parse_1_9(bytes: &[u8]) -> Result<Vec<TreeFile>, TreeError> {
    let mut records = Records { bytes, at: 0 };
    let mut files = Vec::new();
    let first = records.peek()?;
    let dump = first.is_some_and(|r| {
        hashtree::BucketHeader::decode(r).is_ok_and(|h| h.bucket == "fs" || h.bucket == "changed")
            && r.first() == Some(&0x0a)
    });
    if dump {
        while let Some(header) = records.next()? {
            let header = hashtree::BucketHeader::decode(header)
                .map_err(|e| format!("a bucket header is unreadable: {e}"))?;
            loop {
                let key = records
                    .next()?
                    .ok_or_else(|| format!("bucket '{}' is not ended", header.bucket))?;
                if key == b"*" {
                    break;
                }
                let value = records
                    .next()?
                    .ok_or_else(|| "a key has no value".to_string())?;
                if header.bucket == "fs" {
                    node(key, value, &mut files)?;
                }
            }
        }
    } else {
        while let Some(key) = records.next()? {
            let value = records
                .next()?
                .ok_or_else(|| "a key has no value".to_string())?;
            node(key, value, &mut files)?;
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    if files.windows(2).any(|w| w[0].path == w[1].path) {
        return Err("it holds a path twice".into());
    }
    Ok(files)
}

fn node(key: &[u8], value: &[u8], files: &mut Vec<TreeFile>) -> Result<(), TreeError> {
    let path = if key == [0] {
        String::new()
    } else {
        let decoded: Vec<u8> = key
            .iter()
            .map(|b| if *b == 0 { b'/' } else { *b })
            .collect();
        String::from_utf8(decoded).map_err(|_| "a path is not UTF-8".to_string())?
    };
    let n = hashtree::NodeProto::decode(value)
        .map_err(|e| format!("the node of '{path}' is unreadable: {e}"))?;
    if let Some(f) = n.file_node {
        if path.is_empty() || !path.starts_with('/') || path.ends_with('/') || path.contains("//") {
            return Err(format!(
                "a file has the path '{path}', which is not a clean path"
            ));
        }
        let mut content: Vec<ContentRef> = f
            .objects
            .into_iter()
            .map(|o| ContentRef::Object(o.hash))
            .collect();
        for r in f.block_refs {
            let hash = r.block.map(|b| b.hash).unwrap_or_default();
            let (lower, upper) = r.range.map(|r| (r.lower, r.upper)).unwrap_or((0, 0));
            if hash.is_empty() || upper < lower {
                return Err(format!("file '{path}' names a block range that is not one"));
            }
            content.push(ContentRef::Block { hash, lower, upper });
        }
        files.push(TreeFile { path, content });
    }
    Ok(())
}

/// Length-prefixed records (Pachyderm's `pbutil` framing) over a buffer.
struct Records<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Records<'a> {
    fn peek(&self) -> Result<Option<&'a [u8]>, TreeError> {
        Records {
            bytes: self.bytes,
            at: self.at,
        }
        .next()
    }

    fn next(&mut self) -> Result<Option<&'a [u8]>, TreeError> {
        let rest = &self.bytes[self.at..];
        if rest.is_empty() {
            return Ok(None);
        }
        let Some(len) = rest.get(..8) else {
            return Err(format!(
                "it ends inside a record's length, at byte {}",
                self.at
            ));
        };
        let mut l = [0u8; 8];
        l.copy_from_slice(len);
        let n = i64::from_le_bytes(l);
        let body = usize::try_from(n)
            .ok()
            .and_then(|n| rest.get(8..8 + n))
            .ok_or_else(|| {
                format!(
                    "a record at byte {} declares {n} bytes, past the tree's end",
                    self.at
                )
            })?;
        self.at += 8 + body.len();
        Ok(Some(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as i64).to_le_bytes());
        out.extend_from_slice(bytes);
    }

    fn file_node(objects: &[&str]) -> Vec<u8> {
        hashtree::NodeProto {
            name: String::new(),
            file_node: Some(hashtree::FileNodeProto {
                objects: objects
                    .iter()
                    .map(|h| pach_api::pfs::Object {
                        hash: h.to_string(),
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn dir_node() -> Vec<u8> {
        hashtree::NodeProto {
            dir_node: Some(hashtree::DirectoryNodeProto::default()),
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn both_layouts_of_1_9_trees_read_the_same_files() {
        let mut merged = Vec::new();
        record(&mut merged, b"\0");
        record(&mut merged, &dir_node());
        record(&mut merged, b"\0a");
        record(&mut merged, &dir_node());
        record(&mut merged, b"\0a\0x");
        record(&mut merged, &file_node(&["o1", "o2"]));
        let mut dump = Vec::new();
        let header = |b: &str| hashtree::BucketHeader { bucket: b.into() }.encode_to_vec();
        record(&mut dump, &header("fs"));
        let mut records = Records {
            bytes: &merged,
            at: 0,
        };
        while let Some(r) = records.next().unwrap() {
            record(&mut dump, r);
        }
        record(&mut dump, b"*");
        record(&mut dump, &header("changed"));
        record(&mut dump, b"\0a");
        record(&mut dump, &[1]);
        record(&mut dump, b"*");
        let want = vec![TreeFile {
            path: "/a/x".into(),
            content: vec![
                ContentRef::Object("o1".into()),
                ContentRef::Object("o2".into()),
            ],
        }];
        assert_eq!(parse_1_9(&merged).unwrap(), want);
        assert_eq!(parse_1_9(&dump).unwrap(), want);
        // Cut anywhere inside, a tree is refused.
        for cut in [3, 9, merged.len() - 1] {
            assert!(parse_1_9(&merged[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_1_7_tree_is_walked_from_its_root() {
        let mut fs = std::collections::HashMap::new();
        let dir = |children: &[&str]| hashtree_1_7::NodeProto {
            dir_node: Some(hashtree_1_7::DirectoryNodeProto {
                children: children.iter().map(|c| c.to_string()).collect(),
                ..Default::default()
            }),
            ..Default::default()
        };
        fs.insert(String::new(), dir(&["d", "f"]));
        fs.insert("/d".into(), dir(&["g"]));
        let file = |h: &str| hashtree_1_7::NodeProto {
            file_node: Some(hashtree_1_7::FileNodeProto {
                objects: vec![pach_api::pfs_1_7::Object { hash: h.into() }],
            }),
            ..Default::default()
        };
        fs.insert("/f".into(), file("h1"));
        fs.insert("/d/g".into(), file("h2"));
        fs.insert("/stray".into(), file("h3"));
        let bytes = hashtree_1_7::HashTreeProto {
            version: 1,
            fs: fs.clone(),
        }
        .encode_to_vec();
        let files = parse_1_7(&bytes).unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["/d/g", "/f"]);
        fs.remove("/d/g");
        let bytes = hashtree_1_7::HashTreeProto { version: 1, fs }.encode_to_vec();
        let err = parse_1_7(&bytes).unwrap_err();
        assert!(err.contains("/d/g"), "{err}");
    }
}
