//! The embedded metadata store: one redb file, etcd's semantics.
//!
//! Each value is stored with the revision of the transaction that wrote it (8 bytes,
//! little endian, in front of the value bytes). The store revision lives in a
//! separate table and grows by one per committed transaction. Writers are
//! serialised by a mutex that is also held while the transaction's events are
//! broadcast, so watchers receive events in revision order.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::{Event, KeyValue, MetaError, MetaStore, Op, Result, Revision, Snapshot, Txn};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const SYS: TableDefinition<&str, u64> = TableDefinition::new("sys");
const REVISION_KEY: &str = "revision";
const WATCH_BUFFER: usize = 16 * 1024;

pub struct RedbStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    writer: Mutex<()>,
    events: broadcast::Sender<Arc<Vec<Event>>>,
}

fn backend(e: impl std::fmt::Display) -> MetaError {
    MetaError::Backend(e.to_string())
}

fn encode(rev: Revision, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&rev.to_le_bytes());
    out.extend_from_slice(value);
    out
}

fn decode(key: &str, raw: &[u8]) -> Result<KeyValue> {
    if raw.len() < 8 {
        return Err(MetaError::Backend(format!("record '{key}' is truncated")));
    }
    let (rev, value) = raw.split_at(8);
    let mut rev_bytes = [0u8; 8];
    rev_bytes.copy_from_slice(rev);
    Ok(KeyValue {
        key: key.to_string(),
        value: value.to_vec(),
        mod_revision: u64::from_le_bytes(rev_bytes),
    })
}

impl RedbStore {
    /// Opens (or creates) the store file at `path`, with redb's default page
    /// cache (at most 1 GiB of the file's pages in memory).
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_cache(path, None)
    }

    /// Opens (or creates) the store file at `path`, caching at most
    /// `cache_bytes` of its pages in memory (redb's default when None). The
    /// cache is the one part of the store's memory that grows with the
    /// records read, up to this bound.
    pub fn open_with_cache(path: &Path, cache_bytes: Option<usize>) -> Result<Self> {
        let open_err = |e: &dyn std::fmt::Display| MetaError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| open_err(&e))?;
        }
        let mut builder = Database::builder();
        if let Some(bytes) = cache_bytes {
            builder.set_cache_size(bytes);
        }
        let db = builder.create(path).map_err(|e| {
            let hint = if e.to_string().contains("lock") || e.to_string().contains("already open") {
                " (is another pachd using this data directory?)"
            } else {
                ""
            };
            MetaError::Open {
                path: path.display().to_string(),
                message: format!("{e}{hint}"),
            }
        })?;
        let txn = db.begin_write().map_err(|e| open_err(&e))?;
        {
            txn.open_table(KV).map_err(|e| open_err(&e))?;
            txn.open_table(SYS).map_err(|e| open_err(&e))?;
        }
        txn.commit().map_err(|e| open_err(&e))?;
        let (events, _) = broadcast::channel(WATCH_BUFFER);
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                writer: Mutex::new(()),
                events,
            }),
        })
    }
}

impl Inner {
    fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(KV).map_err(backend)?;
        match table.get(key).map_err(backend)? {
            Some(v) => Ok(Some(decode(key, v.value())?)),
            None => Ok(None),
        }
    }

    fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<Vec<KeyValue>> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(KV).map_err(backend)?;
        list_in(&table, prefix, start_after, limit)
    }

    /// A read transaction kept open: redb's readers see the database as of
    /// their start, whatever commits later (pages they use are not reused
    /// until they end, so a long snapshot only delays space reuse).
    fn snapshot(&self) -> Result<RedbSnapshot> {
        let txn = self.db.begin_read().map_err(backend)?;
        let revision = txn
            .open_table(SYS)
            .map_err(backend)?
            .get(REVISION_KEY)
            .map_err(backend)?
            .map(|v| v.value())
            .unwrap_or(0);
        let table = txn.open_table(KV).map_err(backend)?;
        Ok(RedbSnapshot {
            table: Arc::new(table),
            revision,
        })
    }

    fn commit(&self, txn: Txn) -> Result<Option<Revision>> {
        let _guard = self
            .writer
            .lock()
            .map_err(|_| backend("writer lock poisoned"))?;
        let wtxn = self.db.begin_write().map_err(backend)?;
        let mut events = Vec::new();
        let rev;
        {
            let mut table = wtxn.open_table(KV).map_err(backend)?;
            for cmp in &txn.compares {
                let current = match table.get(cmp.key.as_str()).map_err(backend)? {
                    Some(v) => decode(&cmp.key, v.value())?.mod_revision,
                    None => 0,
                };
                if current != cmp.mod_revision {
                    return Ok(None);
                }
            }
            let mut sys = wtxn.open_table(SYS).map_err(backend)?;
            let previous = sys.get(REVISION_KEY).map_err(backend)?.map(|v| v.value());
            rev = previous.unwrap_or(0) + 1;
            sys.insert(REVISION_KEY, rev).map_err(backend)?;
            for op in txn.ops {
                match op {
                    Op::Put { key, value } => {
                        table
                            .insert(key.as_str(), encode(rev, &value).as_slice())
                            .map_err(backend)?;
                        events.push(Event::Put(KeyValue {
                            key,
                            value,
                            mod_revision: rev,
                        }));
                    }
                    Op::Delete { key } => {
                        if table.remove(key.as_str()).map_err(backend)?.is_some() {
                            events.push(Event::Delete {
                                key,
                                mod_revision: rev,
                            });
                        }
                    }
                    Op::DeletePrefix { prefix } => {
                        let mut doomed = Vec::new();
                        for item in table.range(prefix.as_str()..).map_err(backend)? {
                            let (k, _) = item.map_err(backend)?;
                            if !k.value().starts_with(prefix.as_str()) {
                                break;
                            }
                            doomed.push(k.value().to_string());
                        }
                        for key in doomed {
                            table.remove(key.as_str()).map_err(backend)?;
                            events.push(Event::Delete {
                                key,
                                mod_revision: rev,
                            });
                        }
                    }
                }
            }
        }
        wtxn.commit().map_err(backend)?;
        if !events.is_empty() {
            // No receiver is not an error: nobody is watching.
            let _ = self.events.send(Arc::new(events));
        }
        Ok(Some(rev))
    }

    fn revision(&self) -> Result<Revision> {
        let txn = self.db.begin_read().map_err(backend)?;
        let sys = txn.open_table(SYS).map_err(backend)?;
        Ok(sys
            .get(REVISION_KEY)
            .map_err(backend)?
            .map(|v| v.value())
            .unwrap_or(0))
    }
}

/// Keys of `table` starting with `prefix`, as [`MetaStore::list`] pages them.
fn list_in(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
    start_after: Option<&str>,
    limit: usize,
) -> Result<Vec<KeyValue>> {
    let start = match start_after {
        Some(s) if s >= prefix => s,
        _ => prefix,
    };
    let mut out = Vec::new();
    for item in table.range(start..).map_err(backend)? {
        let (k, v) = item.map_err(backend)?;
        let key = k.value();
        if !key.starts_with(prefix) {
            break;
        }
        if start_after == Some(key) {
            continue;
        }
        out.push(decode(key, v.value())?);
        if limit != 0 && out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// [`MetaStore::snapshot`] on redb: the KV table of one read transaction.
struct RedbSnapshot {
    table: Arc<ReadOnlyTable<&'static str, &'static [u8]>>,
    revision: Revision,
}

#[async_trait]
impl Snapshot for RedbSnapshot {
    fn revision(&self) -> Revision {
        self.revision
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<KeyValue>> {
        let table = self.table.clone();
        let (prefix, start_after) = (prefix.to_string(), start_after.map(str::to_string));
        tokio::task::spawn_blocking(move || {
            list_in(&*table, &prefix, start_after.as_deref(), limit)
        })
        .await
        .map_err(|e| backend(format!("metadata task failed: {e}")))?
    }
}

async fn blocking<T: Send + 'static>(
    inner: &Arc<Inner>,
    f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
) -> Result<T> {
    let inner = inner.clone();
    tokio::task::spawn_blocking(move || f(&inner))
        .await
        .map_err(|e| backend(format!("metadata task failed: {e}")))?
}

#[async_trait]
impl MetaStore for RedbStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        // Reads are short and never block on writers (MVCC), so they run inline.
        self.inner.get(key)
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<KeyValue>> {
        let (prefix, start_after) = (prefix.to_string(), start_after.map(str::to_string));
        blocking(&self.inner, move |i| {
            i.list(&prefix, start_after.as_deref(), limit)
        })
        .await
    }

    async fn commit(&self, txn: Txn) -> Result<Option<Revision>> {
        blocking(&self.inner, move |i| i.commit(txn)).await
    }

    async fn watch(&self, prefix: &str) -> Result<BoxStream<'static, Result<Event>>> {
        let prefix = prefix.to_string();
        let rx = self.inner.events.subscribe();
        let stream = BroadcastStream::new(rx).flat_map(move |batch| {
            let items: Vec<Result<Event>> = match batch {
                Ok(events) => events
                    .iter()
                    .filter(|e| e.key().starts_with(prefix.as_str()))
                    .cloned()
                    .map(Ok)
                    .collect(),
                Err(BroadcastStreamRecvError::Lagged(n)) => vec![Err(MetaError::WatchLagged(n))],
            };
            futures::stream::iter(items)
        });
        Ok(stream.boxed())
    }

    async fn revision(&self) -> Result<Revision> {
        self.inner.revision()
    }

    async fn snapshot(&self) -> Result<Box<dyn Snapshot>> {
        Ok(Box::new(self.inner.snapshot()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("meta.redb")).unwrap();
        crate::conformance::run_all(&store).await;
    }

    #[tokio::test]
    async fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        {
            let store = RedbStore::open(&path).unwrap();
            store
                .commit(Txn::new().put("a", b"1".to_vec()))
                .await
                .unwrap();
            store
                .commit(Txn::new().put("b", b"2".to_vec()))
                .await
                .unwrap();
        }
        let store = RedbStore::open(&path).unwrap();
        assert_eq!(store.revision().await.unwrap(), 2);
        let a = store.get("a").await.unwrap().unwrap();
        assert_eq!((a.value.as_slice(), a.mod_revision), (b"1".as_slice(), 1));
    }
}
