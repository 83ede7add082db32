//! Restoring an extract stream. The stream is spooled to a file, read once
//! to validate everything (checksum, counts, version, references, objects,
//! name clashes) and, only if all of it holds, read again to apply it:
//! objects first, then records in the stream's (dependency) order.
//!
//! Memory does not grow with the stream: the sets a validation checks
//! references against (the stream's objects and commits, its key list) and
//! the references themselves are sorted on disk next to the spool
//! ([`crate::spill`]), then checked by walking them side by side; the target's
//! records are compared and written a page or a batch at a time.

use std::path::Path;

use futures::StreamExt;
use object_store::ObjectStoreExt;
use pach_meta::Txn;
use pach_pfs::{BranchRecord, CommitRecord, Pfs};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::Summary;
use crate::error::{AdminError, Result, io};
use crate::extract::{Pages, RECORD_ORDER, prefixes_in_key_order, relative};
use crate::spill::{Scratch, Sorted};
use crate::stream::{Frame, Reader};

/// Records written per metadata transaction.
const BATCH: usize = 256;
/// Object writes in flight during a restore.
const PARALLEL_PUTS: usize = 16;
/// Buffers of the copy into the spool file, and of its reading (constant
/// memory; 1 MiB and 256 KiB made a restore with objects 40% slower). Small
/// in tests, so that the tests' streams fill them as large streams do.
const SPOOL_BUFFER: usize = if cfg!(test) { 64 << 10 } else { 4 << 20 };
const READ_BUFFER: usize = if cfg!(test) { 16 << 10 } else { 1 << 20 };

/// Validates the whole stream from `input`, then applies it. `spool_dir`
/// holds the stream while it is read twice, and the sorted sets of its
/// validation. Records identical to the target's are skipped, so restoring a
/// stream again changes nothing.
pub async fn restore<R: AsyncRead + Unpin>(
    pfs: &Pfs,
    spool_dir: &Path,
    input: R,
) -> Result<Summary> {
    let spool = spool_input(spool_dir, input).await?;
    let result = restore_spooled(pfs, spool_dir, &spool).await;
    let _ = tokio::fs::remove_file(&spool).await;
    result
}

/// Restores either format, told apart by its first bytes: our own stream,
/// or a Pachyderm extract (snappy-framed `admin.Op`s, imported by
/// [`crate::pachyderm::import`], which creates pipelines through `pps`).
pub async fn restore_any<R: AsyncRead + Unpin>(
    pps: &pach_pps::Pps,
    spool_dir: &Path,
    input: R,
) -> Result<Summary> {
    restore_any_with(pps, spool_dir, input, None).await
}

/// [`restore_any`]; a Pachyderm extract's missing objects are read from
/// `bucket`, the Pachyderm cluster's own (`--no-objects` extracts).
pub async fn restore_any_with<R: AsyncRead + Unpin>(
    pps: &pach_pps::Pps,
    spool_dir: &Path,
    input: R,
    bucket: Option<&crate::pachyderm::bucket::PachydermBucket>,
) -> Result<Summary> {
    let spool = spool_input(spool_dir, input).await?;
    let result = async {
        let mut prefix = Vec::new();
        tokio::fs::File::open(&spool)
            .await
            .map_err(io("reading the spool file"))?
            .take(crate::pachyderm::frames::SNAPPY_MAGIC.len() as u64)
            .read_to_end(&mut prefix)
            .await
            .map_err(io("reading the spool file"))?;
        if crate::pachyderm::frames::is_pachyderm_stream(&prefix) {
            crate::pachyderm::import_with(pps, spool_dir, &spool, bucket).await
        } else {
            restore_spooled(pps.pfs(), spool_dir, &spool).await
        }
    }
    .await;
    let _ = tokio::fs::remove_file(&spool).await;
    result
}

/// Copies the input into a new spool file under `spool_dir`.
pub(crate) async fn spool_input<R: AsyncRead + Unpin>(
    spool_dir: &Path,
    mut input: R,
) -> Result<std::path::PathBuf> {
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
    let copied = async {
        let file = tokio::fs::File::create(&spool)
            .await
            .map_err(io("creating the spool file"))?;
        let mut file = tokio::io::BufWriter::with_capacity(SPOOL_BUFFER, file);
        let mut input = BufReader::with_capacity(SPOOL_BUFFER, &mut input);
        tokio::io::copy_buf(&mut input, &mut file)
            .await
            .map_err(io("receiving the stream"))?;
        file.flush().await.map_err(io("writing the spool file"))?;
        Ok(())
    }
    .await;
    match copied {
        Ok(()) => Ok(spool),
        Err(e) => {
            let _ = tokio::fs::remove_file(&spool).await;
            Err(e)
        }
    }
}

async fn restore_spooled(pfs: &Pfs, spool_dir: &Path, spool: &Path) -> Result<Summary> {
    let scratch = Scratch::new_in(spool_dir).await?;
    let validated = validate(pfs, spool, &scratch).await?;
    apply(pfs, spool, validated.keys.as_ref()).await?;
    Ok(validated.summary)
}

/// What a validation found: the stream's counts and, for a stream of
/// changes, its key list sorted (for the deletions of `apply`).
pub(crate) struct Validated {
    pub summary: Summary,
    pub keys: Option<Sorted>,
}

/// The on-disk sets of one validation. Entries are a key and, for
/// references, what refers (for the error message).
struct Sets {
    objects: crate::spill::Sorter,
    commits: crate::spill::Sorter,
    /// Commit keys named as parents and branch heads → who names them.
    commit_refs: crate::spill::Sorter,
    /// Object keys named as index roots → which commit names them.
    roots: crate::spill::Sorter,
}

pub(crate) async fn validate(pfs: &Pfs, spool: &Path, scratch: &Scratch) -> Result<Validated> {
    let file = tokio::fs::File::open(spool)
        .await
        .map_err(io("reading the spool file"))?;
    let (mut r, header) = Reader::open(BufReader::with_capacity(READ_BUFFER, file)).await?;
    let meta = pfs.meta();
    let content = pfs.content();
    let prefix = content.prefix().as_ref().to_string();
    let mut sets = Sets {
        objects: scratch.sorter(),
        commits: scratch.sorter(),
        commit_refs: scratch.sorter(),
        roots: scratch.sorter(),
    };
    let mut summary = Summary::default();
    let since = header.since.is_some();
    let mut keys: Option<Sorted> = None;
    while let Some(frame) = r.next().await? {
        match frame {
            Frame::Header(_) | Frame::Trailer(_) => {
                return Err(AdminError::Corrupt("a second header in the stream".into()));
            }
            Frame::Keys => {
                if keys.is_some() {
                    return Err(AdminError::Corrupt(
                        "a second key list in the stream".into(),
                    ));
                }
                let mut sorter = scratch.sorter();
                while let Some(key) = r.next_key().await? {
                    sorter.push(key.as_bytes(), b"").await?;
                }
                keys = Some(sorter.finish().await?);
            }
            Frame::Object { key, data } => {
                summary.objects += 1;
                summary.object_bytes += data.len() as u64;
                sets.objects.push(key.as_bytes(), b"").await?;
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
                    let what = format!("commit {}@{}", c.repo, c.id);
                    if let Some(p) = &c.parent {
                        let parent = pach_pfs::records::commit_key(&c.repo, p);
                        sets.commit_refs
                            .push(parent.as_bytes(), what.as_bytes())
                            .await?;
                    }
                    for s in [&c.base, &c.index].into_iter().flatten() {
                        let k = relative(&prefix, content.index_key(&s.root).as_ref());
                        sets.roots.push(k.as_bytes(), what.as_bytes()).await?;
                    }
                    let own = pach_pfs::records::commit_key(&c.repo, &c.id);
                    sets.commits.push(own.as_bytes(), b"").await?;
                } else if key.starts_with("pfs/branches/") {
                    let b: BranchRecord = serde_json::from_slice(&value).map_err(parse_err)?;
                    if let Some(h) = b.head {
                        let head = pach_pfs::records::commit_key(&b.repo, &h);
                        let what = format!("branch {}@{}", b.repo, b.name);
                        sets.commit_refs
                            .push(head.as_bytes(), what.as_bytes())
                            .await?;
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
    check_commit_refs(
        pfs,
        &sets.commits.finish().await?,
        &sets.commit_refs.finish().await?,
        keys.as_ref().filter(|_| since),
    )
    .await?;
    check_roots(
        pfs,
        &sets.objects.finish().await?,
        &sets.roots.finish().await?,
        header.objects && !since,
    )
    .await?;
    Ok(Validated { summary, keys })
}

/// Every parent and branch head is a commit of the stream — or, in a stream
/// of changes (`keys` given), a commit the target holds and keeps (it is in
/// the stream's key list). A merge join of the sorted references with the
/// sorted commits (and key list).
async fn check_commit_refs(
    pfs: &Pfs,
    commits: &Sorted,
    refs: &Sorted,
    keys: Option<&Sorted>,
) -> Result<()> {
    let meta = pfs.meta();
    let mut commits = commits.cursor().await?;
    let mut keys = match keys {
        Some(k) => Some(k.cursor().await?),
        None => None,
    };
    let mut refs = refs.read().await?;
    while let Some(r) = refs.next().await? {
        if commits.contains(r.key()).await? {
            continue;
        }
        let key = String::from_utf8_lossy(r.key()).to_string();
        let in_target = match &mut keys {
            Some(keys) => keys.contains(r.key()).await? && meta.get(&key).await?.is_some(),
            None => false,
        };
        if !in_target {
            let commit = key
                .strip_prefix("pfs/commits/")
                .unwrap_or(&key)
                .replacen('/', "@", 1);
            return Err(AdminError::Dangling {
                what: format!("commit {commit}"),
                detail: format!("{} points to it", String::from_utf8_lossy(r.value())),
            });
        }
    }
    Ok(())
}

/// Every commit's file index root is an object of the stream, or — when the
/// stream does not carry every object (`--no-objects`, or a stream of
/// changes) — an object already in the target's bucket. A merge join of the
/// sorted roots with the sorted objects; each missing object is looked up
/// in the bucket once, however many commits name it.
async fn check_roots(
    pfs: &Pfs,
    objects: &Sorted,
    roots: &Sorted,
    all_in_stream: bool,
) -> Result<()> {
    let content = pfs.content();
    let prefix = content.prefix().as_ref().to_string();
    let mut objects = objects.cursor().await?;
    let mut roots = roots.read().await?;
    let mut missing = 0usize;
    let mut first_missing: Option<String> = None;
    let mut previous: Option<Vec<u8>> = None;
    while let Some(root) = roots.next().await? {
        if previous.as_deref() == Some(root.key()) {
            continue;
        }
        previous = Some(root.key().to_vec());
        if objects.contains(root.key()).await? {
            continue;
        }
        let key = String::from_utf8_lossy(root.key()).to_string();
        if all_in_stream {
            return Err(AdminError::Dangling {
                what: format!("object {key}"),
                detail: format!("{} needs it", String::from_utf8_lossy(root.value())),
            });
        }
        let path = object_store::path::Path::from(join(&prefix, &key));
        match content.object_store().head(&path).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => {
                missing += 1;
                first_missing.get_or_insert(key);
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(first) = first_missing {
        return Err(AdminError::MissingObjects {
            count: missing,
            first,
        });
    }
    Ok(())
}

async fn apply(pfs: &Pfs, spool: &Path, keys: Option<&Sorted>) -> Result<()> {
    let file = tokio::fs::File::open(spool)
        .await
        .map_err(io("reading the spool file"))?;
    let (mut r, header) = Reader::open(BufReader::with_capacity(READ_BUFFER, file)).await?;
    let since = header.since.is_some();
    let meta = pfs.meta();
    let content = pfs.content();
    let prefix = content.prefix().as_ref().to_string();
    let owner = content.owner_key();
    let mut txn = Txn::new();
    let mut pending = 0;
    // Objects are written concurrently (order among them does not matter);
    // all of them land before the first record is written.
    let mut puts = futures::stream::FuturesUnordered::new();
    while let Some(frame) = r.next().await? {
        match frame {
            Frame::Object { key, data } => {
                let path = object_store::path::Path::from(join(&prefix, &key));
                if path == owner {
                    // Which cluster owns this bucket is not the stream's to
                    // say (extracts leave it out; this guards other streams).
                    continue;
                }
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
            Frame::Keys => {
                // Records deleted at the source since the checkpoint: the
                // target's keys missing from the (sorted) key list, found by
                // walking both in key order. The list's own keys are skipped
                // by the reader: validation sorted them already.
                let Some(keys) = keys else {
                    continue;
                };
                let mut keep = keys.cursor().await?;
                let snapshot = meta.snapshot().await?;
                for prefix in prefixes_in_key_order() {
                    let mut pages = Pages::new(&*snapshot, prefix);
                    while let Some(page) = pages.next().await? {
                        for kv in page {
                            if keep.contains(kv.key.as_bytes()).await? {
                                continue;
                            }
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
    if key == pach_auth::EXTRACTED[1] {
        return "an auth configuration (this cluster has its own: `pachctl auth set-config` \
                it after the restore instead)"
            .into();
    }
    let kinds = [
        ("pfs/repos/", "repo"),
        ("pfs/commits/", "commit"),
        ("pfs/branches/", "branch"),
        ("pps/pipelines/", "pipeline"),
        ("pps/jobs/", "job"),
        ("auth/acls/", "the ACL of repo"),
        ("auth/admins/", "admin"),
        ("auth/tokens/", "token (hash)"),
        ("auth/members/", "the groups of"),
        ("auth/groups/", "group"),
    ];
    for (p, kind) in kinds {
        if let Some(rest) = key.strip_prefix(p) {
            return format!("{kind} '{}'", rest.replacen('/', "@", 1));
        }
    }
    format!("record '{key}'")
}
