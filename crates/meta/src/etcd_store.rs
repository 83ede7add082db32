//! The metadata trait on etcd: the same key layout as the embedded store,
//! guarded transactions as etcd transactions (a guard is a compare on the
//! key's `mod_revision`, 0 meaning absent, exactly etcd's own model), and
//! watches as etcd watches started at the revision after the call.
//!
//! etcd limits what one transaction may hold (`--max-txn-ops`, 128 by
//! default) and its request size (1.5 MiB by default): records stay small,
//! and pachd's batches stay within a few hundred operations, so run etcd with
//! `--max-txn-ops 1024` (see README).
//!
//! A server may start before its etcd: [`EtcdStore::connect_waiting`] tries
//! again for a bounded time, saying what it waits for.

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, EventType, GetOptions, SortOrder, SortTarget,
    Txn as EtcdTxn, TxnOp, WatchOptions,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};

use crate::{Event, KeyValue, MetaError, MetaStore, Op, Result, Revision, Snapshot, Txn};

/// How long one attempt of [`EtcdStore::connect_waiting`] may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often [`EtcdStore::connect_waiting`] says it is still waiting.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// A metadata store on an etcd cluster. Cheap to clone.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    /// Prepended to every key (several clusters can share one etcd).
    prefix: String,
}

fn backend(e: etcd_client::Error) -> MetaError {
    MetaError::Backend(format!("etcd: {e}"))
}

/// The first key after every key starting with `prefix` (etcd's range end).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // the whole key space
}

impl EtcdStore {
    /// Connects to `endpoints` (e.g. `http://127.0.0.1:2379`); every key gets
    /// `prefix` in front.
    pub async fn connect(endpoints: &[String], prefix: &str) -> Result<EtcdStore> {
        let client = Client::connect(endpoints, None)
            .await
            .map_err(|e| MetaError::Open {
                path: endpoints.join(","),
                message: format!("cannot connect to etcd: {e}"),
            })?;
        let store = EtcdStore {
            client,
            prefix: prefix.to_string(),
        };
        // Fail now, with the address, rather than at the first request.
        store.revision().await.map_err(|e| MetaError::Open {
            path: endpoints.join(","),
            message: e.to_string(),
        })?;
        Ok(store)
    }

    /// Like [`EtcdStore::connect`], for a process that may start before its
    /// etcd (as Kubernetes starts pods in any order): tries again until the
    /// store answers or `patience` has passed, logging what it waits for.
    pub async fn connect_waiting(
        endpoints: &[String],
        prefix: &str,
        patience: Duration,
    ) -> Result<EtcdStore> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(100);
        let mut logged: Option<Instant> = None;
        loop {
            // A connection to an address that drops packets hangs rather
            // than fails: every attempt has a bound of its own.
            let remaining = patience.saturating_sub(started.elapsed());
            let bound = ATTEMPT_TIMEOUT
                .min(remaining)
                .max(Duration::from_millis(100));
            let problem = match tokio::time::timeout(bound, Self::connect(endpoints, prefix)).await
            {
                Ok(Ok(store)) => {
                    if logged.is_some() {
                        tracing::warn!(
                            "etcd at {} answered after {:.1}s",
                            endpoints.join(","),
                            started.elapsed().as_secs_f64()
                        );
                    }
                    return Ok(store);
                }
                // The endpoints are named once, around this.
                Ok(Err(MetaError::Open { message, .. })) => message,
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {:.1}s", bound.as_secs_f64()),
            };
            let waited = started.elapsed();
            if waited >= patience {
                return Err(MetaError::Unreachable {
                    endpoints: endpoints.join(","),
                    waited: patience,
                    problem,
                });
            }
            if logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
                tracing::warn!(
                    "waiting for etcd at {} ({:.1}s so far, giving up after {}s): {problem}",
                    endpoints.join(","),
                    waited.as_secs_f64(),
                    patience.as_secs()
                );
                logged = Some(Instant::now());
            }
            tokio::time::sleep(pause.min(patience - waited)).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// A page of keys, as of `revision` when given (else the latest).
    async fn list_at(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<Vec<KeyValue>> {
        let full_prefix = self.full(prefix);
        let start = match start_after {
            // The smallest key after `start_after`.
            Some(after) => format!("{}\0", self.full(after)),
            None => full_prefix.clone(),
        };
        let mut options = GetOptions::new()
            .with_range(prefix_end(full_prefix.as_bytes()))
            .with_sort(SortTarget::Key, SortOrder::Ascend);
        if limit > 0 {
            options = options.with_limit(limit as i64);
        }
        if let Some(r) = revision {
            options = options.with_revision(r as i64);
        }
        let resp = self
            .client
            .kv_client()
            .get(start, Some(options))
            .await
            .map_err(|e| match revision {
                Some(r) if e.to_string().contains("compacted") => MetaError::Backend(format!(
                    "etcd compacted revision {r} while it was being read; read again (a \
                     snapshot lasts until etcd's next compaction)"
                )),
                _ => backend(e),
            })?;
        resp.kvs().iter().map(|kv| self.kv(kv)).collect()
    }

    fn kv(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue> {
        let key = kv
            .key_str()
            .map_err(backend)?
            .strip_prefix(&self.prefix)
            .unwrap_or_default()
            .to_string();
        Ok(KeyValue {
            key,
            value: kv.value().to_vec(),
            mod_revision: kv.mod_revision() as Revision,
        })
    }
}

#[async_trait]
impl MetaStore for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let resp = self
            .client
            .kv_client()
            .get(self.full(key), None)
            .await
            .map_err(backend)?;
        resp.kvs().first().map(|kv| self.kv(kv)).transpose()
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<KeyValue>> {
        self.list_at(prefix, start_after, limit, None).await
    }

    async fn commit(&self, txn: Txn) -> Result<Option<Revision>> {
        let compares: Vec<Compare> = txn
            .compares
            .iter()
            .map(|c| {
                Compare::mod_revision(self.full(&c.key), CompareOp::Equal, c.mod_revision as i64)
            })
            .collect();
        let ops: Vec<TxnOp> = txn
            .ops
            .iter()
            .map(|op| match op {
                Op::Put { key, value } => TxnOp::put(self.full(key), value.clone(), None),
                Op::Delete { key } => TxnOp::delete(self.full(key), None),
                Op::DeletePrefix { prefix } => {
                    TxnOp::delete(self.full(prefix), Some(DeleteOptions::new().with_prefix()))
                }
            })
            .collect();
        let resp = self
            .client
            .kv_client()
            .txn(EtcdTxn::new().when(compares).and_then(ops))
            .await
            .map_err(backend)?;
        if !resp.succeeded() {
            return Ok(None);
        }
        let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        Ok(Some(revision as Revision))
    }

    async fn watch(&self, prefix: &str) -> Result<BoxStream<'static, Result<Event>>> {
        let from = self.revision().await? + 1;
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(from as i64);
        let mut stream = self
            .client
            .watch_client()
            .watch(self.full(prefix), Some(options))
            .await
            .map_err(backend)?;
        let (tx, rx) = mpsc::channel(256);
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let msg = match stream.message().await {
                    Ok(Some(m)) => m,
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(Err(backend(e))).await;
                        return;
                    }
                };
                if msg.canceled() {
                    let _ = tx
                        .send(Err(MetaError::Backend("etcd cancelled the watch".into())))
                        .await;
                    return;
                }
                for ev in msg.events() {
                    let Some(kv) = ev.kv() else { continue };
                    let item = match ev.event_type() {
                        EventType::Put => this.kv(kv).map(Event::Put),
                        EventType::Delete => this.kv(kv).map(|kv| Event::Delete {
                            key: kv.key,
                            mod_revision: kv.mod_revision,
                        }),
                    };
                    if tx.send(item).await.is_err() {
                        return; // the watcher was dropped
                    }
                }
            }
        });
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx).boxed())
    }

    async fn revision(&self) -> Result<Revision> {
        // Any key does: only the response header's revision matters (etcd
        // refuses an empty key).
        let key = if self.prefix.is_empty() {
            "\0".to_string()
        } else {
            self.prefix.clone()
        };
        let resp = self
            .client
            .kv_client()
            .get(key, Some(GetOptions::new().with_count_only()))
            .await
            .map_err(backend)?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0) as Revision)
    }

    async fn snapshot(&self) -> Result<Box<dyn Snapshot>> {
        // etcd keeps every revision until a compaction: reading at this one
        // is the snapshot.
        Ok(Box::new(EtcdSnapshot {
            revision: self.revision().await?,
            store: self.clone(),
        }))
    }
}

/// [`MetaStore::snapshot`] on etcd: range reads at a fixed revision.
struct EtcdSnapshot {
    store: EtcdStore,
    revision: Revision,
}

#[async_trait]
impl Snapshot for EtcdSnapshot {
    fn revision(&self) -> Revision {
        self.revision
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<KeyValue>> {
        self.store
            .list_at(prefix, start_after, limit, Some(self.revision))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An address that accepts connections (the kernel does, for a
    /// listener) and never answers: every attempt hangs, and the wait still
    /// ends at its bound, with the endpoint named.
    #[tokio::test]
    async fn waiting_for_a_silent_etcd_is_bounded() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", silent.local_addr().unwrap());
        let started = std::time::Instant::now();
        let err =
            EtcdStore::connect_waiting(std::slice::from_ref(&endpoint), "", Duration::from_secs(2))
                .await
                .err()
                .expect("nothing answers");
        assert!(matches!(err, MetaError::Unreachable { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&endpoint) && text.contains("within 2s"),
            "{text}"
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(4),
            "{took:?}"
        );
    }

    #[test]
    fn range_ends() {
        assert_eq!(prefix_end(b"a/"), b"a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b""), b"\0");
    }
}
