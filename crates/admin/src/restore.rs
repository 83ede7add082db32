//! Restoring an extract stream. The stream is spooled to a file, read once
//! to validate everything (checksum, counts, version, references, objects,
//! name clashes) and, only if all of it holds, read again to apply it:
//! objects first, then records in the stream's (dependency) order.

use std::collections::HashSet;
use std::path::Path;

use futures::StreamExt;
use object_store::ObjectStoreExt;
use pach_meta::Txn;
use pach_pfs::{BranchRecord, CommitRecord, Pfs};
use tokio::io::{AsyncRead, AsyncWriteExt, BufReader};

use crate::Summary;
use crate::error::{AdminError, Result, io};
use crate::extract::{RECORD_ORDER, relative};
use crate::stream::{Frame, Reader};

/// Records written per metadata transaction.
const BATCH: usize = 256;
/// Object writes in flight during a restore.
const PARALLEL_PUTS: usize = 16;

/// Validates the whole stream from `input`, then applies it. `spool_dir`
/// holds the stream while it is read twice. Records identical to the
/// target's are skipped, so restoring a stream again changes nothing.
pub async fn restore<R: AsyncRead + Unpin>(
    pfs: &Pfs,
    spool_dir: &Path,
    mut input: R,
) -> Result<Summary> {
    tokio::fs::create_dir_all(spool_dir)
        .await
        .map_err(io(format!("creating {}", spool_dir.display())))?;
    let spool = spool_dir.join(format!(
        "restore-{}-{}.stream",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let result = async {
        let file = tokio::fs::File::create(&spool)
            .await
            .map_err(io("creating the spool file"))?;
        let mut file = tokio::io::BufWriter::with_capacity(4 << 20, file);
        let mut input = BufReader::with_capacity(4 << 20, &mut input);
        tokio::io::copy_buf(&mut input, &mut file)
            .await
            .map_err(io("receiving the stream"))?;
        file.flush().await.map_err(io("writing the spool file"))?;
        drop(file);
        let summary = validate(pfs, &spool).await?;
        apply(pfs, &spool).await?;
        Ok(summary)
    }
    .await;
    let _ = tokio::fs::remove_file(&spool).await;
    result
}

async fn validate(pfs: &Pfs, spool: &Path) -> Result<Summary> {
    let file = tokio::fs::File::open(spool)
        .await
        .map_err(io("reading the spool file"))?;
    let (mut r, header) = Reader::open(BufReader::with_capacity(1 << 20, file)).await?;
    let meta = pfs.meta();
    let content = pfs.content();
    let prefix = content.prefix().as_ref().to_string();
    let mut objects: HashSet<String> = HashSet::new();
    let mut commits: HashSet<(String, String)> = HashSet::new();
    // (what needs it, repo, parent id)
    let mut parents: Vec<(String, String, String)> = Vec::new();
    let mut heads: Vec<(String, String, String)> = Vec::new();
    let mut roots: Vec<(String, String)> = Vec::new();
    let mut summary = Summary::default();
    let since = header.since.is_some();
    let mut keys: Option<HashSet<String>> = None;
    while let Some(frame) = r.next().await? {
        match frame {
            Frame::Header(_) | Frame::Trailer(_) => {
                return Err(AdminError::Corrupt("a second header in the stream".into()));
            }
            Frame::Keys(k) => keys = Some(k.into_iter().collect()),
            Frame::Object { key, data } => {
                summary.objects += 1;
                summary.object_bytes += data.len() as u64;
                objects.insert(key);
            }
            Frame::Record { key, value } => {
                summary.records += 1;
                if !RECORD_ORDER.iter().any(|p| key.starts_with(p)) {
                    return Err(AdminError::Corrupt(format!(
                        "unexpected record key '{key}'"
                    )));
                }
                let parse_err = |e: serde_json::Error| {
                    AdminError::Corrupt(format!("record {key} is unreadable: {e}"))
                };
                if key.starts_with("pfs/commits/") {
                    let c: CommitRecord = serde_json::from_slice(&value).map_err(parse_err)?;
                    if let Some(p) = &c.parent {
                        parents.push((
                            format!("commit {}@{}", c.repo, c.id),
                            c.repo.clone(),
                            p.clone(),
                        ));
                    }
                    for s in [&c.base, &c.index].into_iter().flatten() {
                        let k = relative(&prefix, content.index_key(&s.root).as_ref());
                        roots.push((format!("commit {}@{}", c.repo, c.id), k));
                    }
                    commits.insert((c.repo, c.id));
                } else if key.starts_with("pfs/branches/") {
                    let b: BranchRecord = serde_json::from_slice(&value).map_err(parse_err)?;
                    if let Some(h) = b.head {
                        heads.push((format!("branch {}@{}", b.repo, b.name), b.repo, h));
                    }
                } else {
                    serde_json::from_slice::<serde_json::Value>(&value).map_err(parse_err)?;
                }
                // A stream of changes updates records; a full one may not.
                if !since
                    && let Some(existing) = meta.get(&key).await?
                    && existing.value != value
                {
                    return Err(AdminError::Clash {
                        what: describe(&key),
                    });
                }
            }
        }
    }
    if since && keys.is_none() {
        return Err(AdminError::Corrupt(
            "a stream of changes without its key list".into(),
        ));
    }
    for (what, repo, id) in parents.iter().chain(&heads) {
        let key = pach_pfs::records::commit_key(repo, id);
        // A stream of changes may refer to commits the target already holds
        // (and keeps: they are in the stream's key list).
        let in_target = since
            && keys.as_ref().is_some_and(|k| k.contains(&key))
            && meta.get(&key).await?.is_some();
        if !in_target && !commits.contains(&(repo.clone(), id.clone())) {
            return Err(AdminError::Dangling {
                what: format!("commit {repo}@{id}"),
                detail: format!("{what} points to it"),
            });
        }
    }
    let mut missing = Vec::new();
    for (what, key) in &roots {
        if objects.contains(key) {
            continue;
        }
        if header.objects && !since {
            return Err(AdminError::Dangling {
                what: format!("object {key}"),
                detail: format!("{what} needs it"),
            });
        }
        let path = object_store::path::Path::from(join(&prefix, key));
        match content.object_store().head(&path).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => missing.push(key.clone()),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(first) = missing.first() {
        return Err(AdminError::MissingObjects {
            count: missing.len(),
            first: first.clone(),
        });
    }
    Ok(summary)
}

async fn apply(pfs: &Pfs, spool: &Path) -> Result<()> {
    let file = tokio::fs::File::open(spool)
        .await
        .map_err(io("reading the spool file"))?;
    let (mut r, header) = Reader::open(BufReader::with_capacity(1 << 20, file)).await?;
    let since = header.since.is_some();
    let meta = pfs.meta();
    let content = pfs.content();
    let prefix = content.prefix().as_ref().to_string();
    let mut txn = Txn::new();
    let mut pending = 0;
    // Objects are written concurrently (order among them does not matter);
    // all of them land before the first record is written.
    let mut puts = futures::stream::FuturesUnordered::new();
    while let Some(frame) = r.next().await? {
        match frame {
            Frame::Object { key, data } => {
                let path = object_store::path::Path::from(join(&prefix, &key));
                let store = content.object_store().clone();
                puts.push(async move { store.put(&path, data.into()).await.map(|_| ()) });
                if puts.len() >= PARALLEL_PUTS
                    && let Some(done) = puts.next().await
                {
                    done?;
                }
            }
            Frame::Record { key, value } => {
                while let Some(done) = puts.next().await {
                    done?;
                }
                let existing = meta.get(&key).await?;
                if existing.as_ref().is_some_and(|kv| kv.value == value) {
                    continue;
                }
                // A full stream only adds (validation refused clashes); a
                // stream of changes replaces what the record was.
                let rev = if since {
                    existing.map_or(0, |kv| kv.mod_revision)
                } else {
                    0
                };
                txn = txn.expect(&key, rev).put(&key, value);
                pending += 1;
                if pending >= BATCH {
                    commit(&**meta, std::mem::take(&mut txn)).await?;
                    pending = 0;
                }
            }
            Frame::Keys(keys) => {
                // Records deleted at the source since the checkpoint.
                let keep: HashSet<String> = keys.into_iter().collect();
                for prefix in RECORD_ORDER {
                    for kv in crate::extract::all(&**meta, prefix).await? {
                        if !keep.contains(&kv.key) {
                            txn = txn.expect(&kv.key, kv.mod_revision).delete(&kv.key);
                            pending += 1;
                            if pending >= BATCH {
                                commit(&**meta, std::mem::take(&mut txn)).await?;
                                pending = 0;
                            }
                        }
                    }
                }
            }
            Frame::Header(_) | Frame::Trailer(_) => {}
        }
    }
    while let Some(done) = puts.next().await {
        done?;
    }
    if pending > 0 {
        commit(&**meta, txn).await?;
    }
    Ok(())
}

async fn commit(meta: &dyn pach_meta::MetaStore, txn: Txn) -> Result<()> {
    if meta.commit(txn).await?.is_none() {
        return Err(AdminError::Clash {
            what: "a record written while the restore ran".into(),
        });
    }
    Ok(())
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}/{key}")
    }
}

/// "repo 'images'" for `pfs/repos/images`, and so on.
pub(crate) fn describe(key: &str) -> String {
    let kinds = [
        ("pfs/repos/", "repo"),
        ("pfs/commits/", "commit"),
        ("pfs/branches/", "branch"),
        ("pps/pipelines/", "pipeline"),
        ("pps/jobs/", "job"),
    ];
    for (p, kind) in kinds {
        if let Some(rest) = key.strip_prefix(p) {
            return format!("{kind} '{}'", rest.replacen('/', "@", 1));
        }
    }
    format!("record '{key}'")
}
