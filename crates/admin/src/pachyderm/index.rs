//! The import's names on disk: what the stream says about objects it does
//! not send as bytes (1.9's objects that are ranges of blocks), the objects
//! a `--no-objects` extract lacks, and where the Pachyderm bucket holds
//! them. They grow with the stream, so they live in a redb file of the
//! import's scratch directory, with a small page cache, rather than in
//! memory. (Objects whose bytes the stream sends need no entry: their file
//! in the scratch directory is the record.)

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, Durability, ReadableDatabase, TableDefinition};

use super::bucket::BucketRange;
use super::ops::ContentRef;
use crate::error::{AdminError, Result};

/// Key: a kind byte, then the name; value: the kind's encoding.
const NAMES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("names");
/// Entries written per redb transaction; until then they wait in memory.
const BATCH: usize = 4096;
const CACHE_BYTES: usize = 8 << 20;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
enum Kind {
    /// An object that is a range of a block, or another object.
    Ref = b'r',
    /// A name the commits need and the stream lacks.
    Missing = b'm',
    /// Where the Pachyderm bucket holds a missing name.
    Bucket = b'b',
}

pub(super) struct NameIndex {
    db: Database,
    /// Entries not yet written to `db` (at most [`BATCH`]).
    pending: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
    missing: AtomicU64,
}

fn failed(e: impl std::fmt::Display) -> AdminError {
    AdminError::Io {
        what: "the import's index of names in its scratch directory".into(),
        source: std::io::Error::other(e.to_string()),
    }
}

fn key(kind: Kind, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 1);
    k.push(kind as u8);
    k.extend_from_slice(name.as_bytes());
    k
}

impl NameIndex {
    pub(super) fn create(dir: &Path) -> Result<Self> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(dir.join("names.redb"))
            .map_err(failed)?;
        let txn = db.begin_write().map_err(failed)?;
        txn.open_table(NAMES).map_err(failed)?;
        txn.commit().map_err(failed)?;
        Ok(Self {
            db,
            pending: Mutex::new(BTreeMap::new()),
            missing: AtomicU64::new(0),
        })
    }

    fn get(&self, kind: Kind, name: &str) -> Result<Option<Vec<u8>>> {
        let k = key(kind, name);
        if let Some(v) = self.pending().get(&k) {
            return Ok(Some(v.clone()));
        }
        let txn = self.db.begin_read().map_err(failed)?;
        let table = txn.open_table(NAMES).map_err(failed)?;
        Ok(table
            .get(k.as_slice())
            .map_err(failed)?
            .map(|v| v.value().to_vec()))
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the name was new.
    fn put(&self, kind: Kind, name: &str, value: Vec<u8>) -> Result<bool> {
        let new = self.get(kind, name)?.is_none();
        let full = {
            let mut pending = self.pending();
            pending.insert(key(kind, name), value);
            pending.len() >= BATCH
        };
        if full {
            self.flush()?;
        }
        Ok(new)
    }

    fn flush(&self) -> Result<()> {
        let pending = std::mem::take(&mut *self.pending());
        if pending.is_empty() {
            return Ok(());
        }
        let mut txn = self.db.begin_write().map_err(failed)?;
        // Scratch: nothing survives a crash of the import anyway.
        txn.set_durability(Durability::None).map_err(failed)?;
        {
            let mut table = txn.open_table(NAMES).map_err(failed)?;
            for (k, v) in pending {
                table.insert(k.as_slice(), v.as_slice()).map_err(failed)?;
            }
        }
        txn.commit().map_err(failed)
    }

    pub(super) fn insert_ref(&self, object: &str, to: &ContentRef) -> Result<()> {
        let value = match to {
            ContentRef::Object(hash) => [b"o", hash.as_bytes()].concat(),
            ContentRef::Block { hash, lower, upper } => [
                &[b'b'][..],
                &lower.to_le_bytes(),
                &upper.to_le_bytes(),
                hash.as_bytes(),
            ]
            .concat(),
        };
        self.put(Kind::Ref, object, value).map(drop)
    }

    pub(super) fn object_ref(&self, object: &str) -> Result<Option<ContentRef>> {
        let Some(v) = self.get(Kind::Ref, object)? else {
            return Ok(None);
        };
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(failed);
        Ok(Some(match v.split_first() {
            Some((b'o', hash)) => ContentRef::Object(text(hash)?),
            Some((b'b', rest)) if rest.len() >= 16 => ContentRef::Block {
                lower: u64::from_le_bytes(rest[..8].try_into().expect("8 bytes")),
                upper: u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes")),
                hash: text(&rest[16..])?,
            },
            _ => return Err(failed(format!("a damaged entry for object {object}"))),
        }))
    }

    pub(super) fn add_missing(&self, name: &str) -> Result<()> {
        if self.put(Kind::Missing, name, Vec::new())? {
            self.missing.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    pub(super) fn missing_count(&self) -> u64 {
        self.missing.load(Ordering::Relaxed)
    }

    /// Up to `n` missing names after `after`, in name order.
    pub(super) fn missing_after(&self, after: Option<&str>, n: usize) -> Result<Vec<String>> {
        self.flush()?;
        let start = match after {
            Some(a) => {
                let mut k = key(Kind::Missing, a);
                k.push(0);
                k
            }
            None => vec![Kind::Missing as u8],
        };
        let end = vec![Kind::Missing as u8 + 1];
        let txn = self.db.begin_read().map_err(failed)?;
        let table = txn.open_table(NAMES).map_err(failed)?;
        let mut out = Vec::new();
        for entry in table
            .range(start.as_slice()..end.as_slice())
            .map_err(failed)?
            .take(n)
        {
            let (k, _) = entry.map_err(failed)?;
            out.push(String::from_utf8(k.value()[1..].to_vec()).map_err(failed)?);
        }
        Ok(out)
    }

    pub(super) fn insert_bucket(&self, name: &str, r: &BucketRange) -> Result<()> {
        let value = [
            &r.lower.to_le_bytes()[..],
            &r.upper.to_le_bytes(),
            r.block.as_ref().as_bytes(),
        ]
        .concat();
        self.put(Kind::Bucket, name, value).map(drop)
    }

    pub(super) fn bucket(&self, name: &str) -> Result<Option<BucketRange>> {
        let Some(v) = self.get(Kind::Bucket, name)? else {
            return Ok(None);
        };
        if v.len() < 16 {
            return Err(failed(format!("a damaged entry for {name}")));
        }
        let block = String::from_utf8(v[16..].to_vec()).map_err(failed)?;
        Ok(Some(BucketRange {
            block: block.into(),
            lower: u64::from_le_bytes(v[..8].try_into().expect("8 bytes")),
            upper: u64::from_le_bytes(v[8..16].try_into().expect("8 bytes")),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_survive_batches_and_keep_their_kinds_apart() {
        let dir = tempfile::tempdir().unwrap();
        let index = NameIndex::create(dir.path()).unwrap();
        let n = BATCH * 2 + 10;
        for i in 0..n {
            let name = format!("{i:0128x}");
            let to = if i % 2 == 0 {
                ContentRef::Object(format!("{:0128x}", i + 1))
            } else {
                ContentRef::Block {
                    hash: format!("block{i}"),
                    lower: i as u64,
                    upper: i as u64 * 3,
                }
            };
            index.insert_ref(&name, &to).unwrap();
            index.add_missing(&name).unwrap();
            index.add_missing(&name).unwrap();
        }
        assert_eq!(index.missing_count(), n as u64);
        for i in [0, 1, BATCH - 1, BATCH, n - 1] {
            let name = format!("{i:0128x}");
            let got = index.object_ref(&name).unwrap().unwrap();
            match got {
                ContentRef::Object(h) => assert_eq!(h, format!("{:0128x}", i + 1)),
                ContentRef::Block { hash, lower, upper } => {
                    assert_eq!(
                        (hash, lower, upper),
                        (format!("block{i}"), i as u64, i as u64 * 3)
                    );
                }
            }
            assert!(index.bucket(&name).unwrap().is_none());
        }
        assert!(index.object_ref("nothing").unwrap().is_none());
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = index.missing_after(after.as_deref(), 1000).unwrap();
            let Some(last) = page.last().cloned() else {
                break;
            };
            seen.extend(page);
            after = Some(last);
        }
        assert_eq!(seen.len(), n);
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
        let r = BucketRange {
            block: "pach/block/abc".into(),
            lower: 5,
            upper: 9,
        };
        index.insert_bucket(&seen[3], &r).unwrap();
        let back = index.bucket(&seen[3]).unwrap().unwrap();
        assert_eq!((back.block, back.lower, back.upper), (r.block, 5, 9));
    }
}
