//! Extracting this cluster as Pachyderm 1.9 extracts (Op1_9 ops), for
//! Pachyderm's clients (`admin.API/Extract`, python-pachyderm's `extract`)
//! and for `pachctl extract --format pachyderm` to come.
//!
//! What is written, in Pachyderm's order: blocks, then objects made of
//! them (`create_object`), then repos, commits (oldest first, each naming
//! its tree object), branches; the server appends pipelines and jobs (their
//! requests are the API's to shape). Each piece of a file (one put) becomes
//! one object, named by its SHA-512 as Pachyderm names objects, stored as a
//! block of its own of the same name; each commit's file list becomes a
//! tree in 1.9's merged layout (`hashtree`), stored the same way. Node
//! hashes in the trees are left empty: Pachyderm's restore does not read
//! them, and this cluster's importer does not either.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::StreamExt;
use pach_api::{admin, hashtree, pfs};
use pach_pfs::{CommitRecord, Pfs};
use pach_storage::{FileEntry, PieceHasher, Sha512};
use prost::Message;
use tokio::sync::mpsc;

use crate::error::Result;

/// The most bytes of a block in one op: half of Pachyderm's 20 MiB gRPC
/// message limit, as its extract writes them.
const BLOCK_PIECE: usize = 10 << 20;

type Sink = mpsc::Sender<Result<admin::Op>>;

fn op(o: admin::Op19) -> admin::Op {
    admin::Op {
        op1_9: Some(o),
        ..Default::default()
    }
}

/// Sends one op; false when the receiver is gone (the client went away).
async fn send(tx: &Sink, o: admin::Op19) -> bool {
    tx.send(Ok(op(o))).await.is_ok()
}

/// Writes the cluster's repos, commits and branches (and, unless
/// `no_objects`, their content) as Op1_9 ops to `tx`. Returns false when
/// the receiver went away.
pub async fn extract(pfs: &Pfs, no_objects: bool, tx: &Sink) -> Result<bool> {
    // Newest first, as listed; written oldest first (as Pachyderm does), so
    // that the restored repos list in the same order.
    let repos = pfs.list_repo().await?;
    let mut commits: Vec<CommitRecord> = Vec::new();
    for r in &repos {
        // Open commits too, as Pachyderm lists them: built finished on
        // restore, with what they started from.
        commits.extend(pfs.list_commit(&r.record.name, None, None, 0, true).await?);
    }
    // Oldest first, so that parents and provenance come before the commits
    // that name them.
    commits.sort_by_key(|c| (c.started_ns, c.provenance.len()));
    let mut sent: HashSet<Sha512> = HashSet::new();
    let mut trees: HashMap<(String, String), String> = HashMap::new();
    for c in &commits {
        let entries = commit_files(pfs, c).await?;
        let mut objects_of: Vec<(String, Vec<String>, u64)> = Vec::new();
        for e in &entries {
            let mut names = Vec::new();
            for span in e.piece_spans() {
                let digest = match span.piece.sha512 {
                    Some(d) => d,
                    None => digest_of(pfs, e, span.offset, span.piece.len).await?,
                };
                let name = digest.to_hex();
                names.push(name.clone());
                if !no_objects && sent.insert(digest) {
                    if !send_block(pfs, tx, &name, Some((e, span.offset, span.piece.len)), &[])
                        .await?
                    {
                        return Ok(false);
                    }
                    if !send(tx, create_object(&name, span.piece.len)).await {
                        return Ok(false);
                    }
                }
            }
            objects_of.push((e.path.clone(), names, e.size));
        }
        let tree = tree_bytes(&objects_of);
        let digest = Sha512::of(&tree);
        let name = digest.to_hex();
        if !no_objects && sent.insert(digest) {
            if !send_block(pfs, tx, &name, None, &tree).await? {
                return Ok(false);
            }
            if !send(tx, create_object(&name, tree.len() as u64)).await {
                return Ok(false);
            }
        }
        trees.insert((c.repo.clone(), c.id.clone()), name);
    }
    for r in repos.iter().rev() {
        let o = admin::Op19 {
            repo: Some(pfs::CreateRepoRequest {
                repo: Some(pfs::Repo {
                    name: r.record.name.clone(),
                }),
                description: r.record.description.clone(),
                update: false,
            }),
            ..Default::default()
        };
        if !send(tx, o).await {
            return Ok(false);
        }
    }
    for c in &commits {
        let commit = |repo: &str, id: &str| pfs::Commit {
            repo: Some(pfs::Repo { name: repo.into() }),
            id: id.into(),
        };
        let tree = trees.get(&(c.repo.clone(), c.id.clone())).cloned();
        let o = admin::Op19 {
            commit: Some(pfs::BuildCommitRequest {
                parent: Some(commit(&c.repo, c.parent.as_deref().unwrap_or(""))),
                branch: String::new(),
                provenance: c
                    .provenance
                    .iter()
                    .map(|p| pfs::CommitProvenance {
                        commit: Some(commit(&p.repo, &p.id)),
                        branch: None,
                    })
                    .collect(),
                tree: tree.map(|hash| pfs::Object { hash }),
                trees: Vec::new(),
                datums: None,
                id: c.id.clone(),
                size_bytes: c.size_bytes(),
            }),
            ..Default::default()
        };
        if !send(tx, o).await {
            return Ok(false);
        }
    }
    for r in &repos {
        for b in pfs.list_branch(&r.record.name).await? {
            let branch = |repo: &str, name: &str| pfs::Branch {
                repo: Some(pfs::Repo { name: repo.into() }),
                name: name.into(),
            };
            let o = admin::Op19 {
                branch: Some(pfs::CreateBranchRequest {
                    head: b.record.head.as_ref().map(|h| pfs::Commit {
                        repo: Some(pfs::Repo {
                            name: b.record.repo.clone(),
                        }),
                        id: h.clone(),
                    }),
                    s_branch: String::new(),
                    branch: Some(branch(&b.record.repo, &b.record.name)),
                    provenance: b
                        .record
                        .provenance
                        .iter()
                        .map(|p| branch(&p.repo, &p.name))
                        .collect(),
                }),
                ..Default::default()
            };
            if !send(tx, o).await {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

fn create_object(name: &str, len: u64) -> admin::Op19 {
    admin::Op19 {
        create_object: Some(pfs::CreateObjectRequest {
            object: Some(pfs::Object { hash: name.into() }),
            block_ref: Some(pfs::BlockRef {
                block: Some(pfs::Block { hash: name.into() }),
                range: Some(pfs::ByteRange {
                    lower: 0,
                    upper: len,
                }),
            }),
        }),
        ..Default::default()
    }
}

async fn commit_files(pfs: &Pfs, c: &CommitRecord) -> Result<Vec<FileEntry>> {
    let index = pfs.content().open_index(c.index_root()).await?;
    let mut out = Vec::new();
    let mut all = index.range("", None);
    while let Some(e) = all.next().await {
        out.push(e?);
    }
    Ok(out)
}

/// The SHA-512 of a piece recorded before pieces had digests.
async fn digest_of(pfs: &Pfs, e: &FileEntry, offset: u64, len: u64) -> Result<Sha512> {
    let mut h = PieceHasher::new();
    let mut s = pfs.content().read_file(e, offset, Some(len));
    while let Some(b) = s.next().await {
        h.update(&b?);
    }
    Ok(h.finish())
}

/// Sends one block as Pachyderm's extract does: every op names the block,
/// its bytes in pieces, then an op with no bytes ends it. The bytes are a
/// file's piece (streamed from storage) or `bytes`.
async fn send_block(
    pfs: &Pfs,
    tx: &Sink,
    name: &str,
    piece: Option<(&FileEntry, u64, u64)>,
    bytes: &[u8],
) -> Result<bool> {
    let block = || Some(pfs::Block { hash: name.into() });
    let value_op = |value: Vec<u8>| admin::Op19 {
        block: Some(pfs::PutBlockRequest {
            block: block(),
            value,
        }),
        ..Default::default()
    };
    match piece {
        Some((e, offset, len)) => {
            let mut s = pfs.content().read_file(e, offset, Some(len));
            let mut buf: Vec<u8> = Vec::new();
            while let Some(b) = s.next().await {
                buf.extend_from_slice(&b?);
                while buf.len() >= BLOCK_PIECE {
                    let rest = buf.split_off(BLOCK_PIECE);
                    if !send(tx, value_op(std::mem::replace(&mut buf, rest))).await {
                        return Ok(false);
                    }
                }
            }
            if !buf.is_empty() && !send(tx, value_op(buf)).await {
                return Ok(false);
            }
        }
        None => {
            for part in bytes.chunks(BLOCK_PIECE) {
                if !send(tx, value_op(part.to_vec())).await {
                    return Ok(false);
                }
            }
        }
    }
    Ok(send(tx, value_op(Vec::new())).await)
}

/// A commit's files as a 1.9 tree in the merged layout: every directory
/// and file in path order, keys with `/` as NUL, the root as one NUL.
pub(crate) fn tree_bytes(files: &[(String, Vec<String>, u64)]) -> Vec<u8> {
    // Directories and their children, sizes summed upwards.
    let mut dirs: BTreeMap<String, (Vec<String>, u64)> = BTreeMap::new();
    dirs.insert(String::new(), (Vec::new(), 0));
    for (path, _, size) in files {
        let mut parent = String::new();
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let entry = dirs.entry(parent.clone()).or_default();
            entry.1 += size;
            if entry.0.last().map(String::as_str) != Some(part)
                && !entry.0.iter().any(|c| c == part)
            {
                entry.0.push(part.to_string());
            }
            if i + 1 < parts.len() {
                parent = format!("{parent}/{part}");
            }
        }
    }
    let mut nodes: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let key = |path: &str| -> Vec<u8> {
        if path.is_empty() {
            vec![0]
        } else {
            path.bytes()
                .map(|b| if b == b'/' { 0 } else { b })
                .collect()
        }
    };
    let name_of = |path: &str| path.rsplit('/').next().unwrap_or("").to_string();
    for (path, (mut children, size)) in dirs {
        children.sort();
        let node = hashtree::NodeProto {
            name: name_of(&path),
            hash: Vec::new(),
            subtree_size: size as i64,
            file_node: None,
            dir_node: Some(hashtree::DirectoryNodeProto {
                children,
                shared: None,
            }),
        };
        nodes.insert(key(&path), node.encode_to_vec());
    }
    for (path, objects, size) in files {
        let node = hashtree::NodeProto {
            name: name_of(path),
            hash: Vec::new(),
            subtree_size: *size as i64,
            file_node: Some(hashtree::FileNodeProto {
                objects: objects
                    .iter()
                    .map(|h| pfs::Object { hash: h.clone() })
                    .collect(),
                block_refs: Vec::new(),
                has_header_footer: false,
            }),
            dir_node: None,
        };
        nodes.insert(key(path), node.encode_to_vec());
    }
    let mut out = Vec::new();
    for (k, v) in nodes {
        for record in [&k, &v] {
            out.extend_from_slice(&(record.len() as i64).to_le_bytes());
            out.extend_from_slice(record);
        }
    }
    out
}
