//! A transaction of many operations over a store: an [`Overlay`] is itself a
//! [`MetaStore`] whose reads see the base store plus the overlay's own
//! writes, and whose transactions only buffer their writes. The code that
//! runs against it (PFS's operations, each one guarded transaction of its
//! own) does not know; at the end [`Overlay::commit_to_base`] commits every
//! buffered write in ONE guarded transaction of the base store that also
//! requires every key read from the base to be unchanged. So a batch of
//! operations applies atomically or not at all, and a concurrent writer that
//! changed anything the batch read makes the commit fail (the caller runs
//! the batch again on the new state).
//!
//! Invariants: a key's revision inside the overlay is either the base's (for
//! keys not written here) or a synthetic one from a range no base reaches
//! (for keys written here), so a guard can never confuse the two; keys under
//! a prefix deleted here stay hidden unless written again afterwards.
//! Watches and snapshots are not offered inside an overlay.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::{KeyValue, MetaError, MetaStore, Op, Result, Revision, Snapshot, Txn};

/// Revisions of keys written inside an overlay start here.
const SYNTHETIC: Revision = 1 << 62;

pub struct Overlay {
    base: Arc<dyn MetaStore>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Keys read from the base and the revision seen (0: absent).
    reads: BTreeMap<String, Revision>,
    /// Buffered writes: the value, or `None` for a deletion, with its revision.
    writes: BTreeMap<String, (Option<Vec<u8>>, Revision)>,
    /// Prefixes deleted here, in order; base keys below them are hidden.
    deleted_prefixes: Vec<String>,
    next: Revision,
}

impl State {
    fn hidden(&self, key: &str) -> bool {
        self.deleted_prefixes.iter().any(|p| key.starts_with(p))
    }
}

impl Overlay {
    pub fn new(base: Arc<dyn MetaStore>) -> Self {
        Overlay {
            base,
            state: Mutex::new(State {
                next: SYNTHETIC,
                ..State::default()
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves buffered writes of a batch
        // that is being abandoned anyway; reading them is harmless.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key as this overlay sees it, reading (and remembering) the base
    /// when the overlay has not written it.
    async fn view(&self, key: &str) -> Result<Option<KeyValue>> {
        {
            let st = self.state();
            if let Some((value, rev)) = st.writes.get(key) {
                return Ok(value.as_ref().map(|v| KeyValue {
                    key: key.to_string(),
                    value: v.clone(),
                    mod_revision: *rev,
                }));
            }
            if st.hidden(key) {
                return Ok(None);
            }
        }
        let kv = self.base.get(key).await?;
        let mut st = self.state();
        st.reads
            .entry(key.to_string())
            .or_insert(kv.as_ref().map_or(0, |kv| kv.mod_revision));
        Ok(kv)
    }

    /// Commits every buffered write to the base in one transaction, guarded
    /// by every base read. `Ok(false)`: something read changed meanwhile and
    /// nothing was written.
    pub async fn commit_to_base(&self) -> Result<bool> {
        let txn = {
            let st = self.state();
            let mut txn = Txn::new();
            for (key, rev) in &st.reads {
                txn = txn.expect(key.clone(), *rev);
            }
            for prefix in &st.deleted_prefixes {
                txn = txn.delete_prefix(prefix.clone());
            }
            for (key, (value, _)) in &st.writes {
                txn = match value {
                    Some(v) => txn.put(key.clone(), v.clone()),
                    None => txn.delete(key.clone()),
                };
            }
            txn
        };
        if txn.ops.is_empty() {
            return Ok(true);
        }
        Ok(self.base.commit(txn).await?.is_some())
    }
}

#[async_trait]
impl MetaStore for Overlay {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.view(key).await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<KeyValue>> {
        // Every base key under the prefix (remembered as read), then the
        // overlay's writes on top, then the window asked for.
        let mut merged: BTreeMap<String, KeyValue> = BTreeMap::new();
        let mut after = start_after.map(str::to_string);
        loop {
            let page = self.base.list(prefix, after.as_deref(), 1024).await?;
            let done = page.len() < 1024;
            after = page.last().map(|kv| kv.key.clone());
            let mut st = self.state();
            for kv in page {
                st.reads.entry(kv.key.clone()).or_insert(kv.mod_revision);
                if !st.hidden(&kv.key) && !st.writes.contains_key(&kv.key) {
                    merged.insert(kv.key.clone(), kv);
                }
            }
            if done {
                break;
            }
        }
        let st = self.state();
        for (key, (value, rev)) in st.writes.range(prefix.to_string()..) {
            if !key.starts_with(prefix) {
                break;
            }
            if start_after.is_some_and(|a| key.as_str() <= a) {
                continue;
            }
            if let Some(v) = value {
                merged.insert(
                    key.clone(),
                    KeyValue {
                        key: key.clone(),
                        value: v.clone(),
                        mod_revision: *rev,
                    },
                );
            }
        }
        let all = merged.into_values();
        Ok(if limit == 0 {
            all.collect()
        } else {
            all.take(limit).collect()
        })
    }

    async fn commit(&self, txn: Txn) -> Result<Option<Revision>> {
        for c in &txn.compares {
            let current = self.view(&c.key).await?.map_or(0, |kv| kv.mod_revision);
            if current != c.mod_revision {
                return Ok(None);
            }
        }
        let mut st = self.state();
        st.next += 1;
        let rev = st.next;
        for op in txn.ops {
            match op {
                Op::Put { key, value } => {
                    st.writes.insert(key, (Some(value), rev));
                }
                Op::Delete { key } => {
                    st.writes.insert(key, (None, rev));
                }
                Op::DeletePrefix { prefix } => {
                    st.writes.retain(|k, _| !k.starts_with(&prefix));
                    st.deleted_prefixes.push(prefix);
                }
            }
        }
        Ok(Some(rev))
    }

    async fn watch(&self, _prefix: &str) -> Result<BoxStream<'static, Result<crate::Event>>> {
        Err(MetaError::Backend(
            "waiting for changes is not possible inside a transaction".into(),
        ))
    }

    async fn revision(&self) -> Result<Revision> {
        self.base.revision().await
    }

    async fn snapshot(&self) -> Result<Box<dyn Snapshot>> {
        Err(MetaError::Backend(
            "a snapshot is not possible inside a transaction".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RedbStore;

    fn base() -> (tempfile::TempDir, Arc<dyn MetaStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("m.redb")).unwrap();
        (dir, Arc::new(store))
    }

    #[tokio::test]
    async fn writes_are_invisible_until_committed_then_land_together() {
        let (_d, base) = base();
        base.commit(Txn::new().put("a/1", b"x".to_vec()))
            .await
            .unwrap();
        let o = Overlay::new(base.clone());
        let a1 = o.get("a/1").await.unwrap().unwrap();
        assert!(
            o.commit(
                Txn::new()
                    .expect("a/1", a1.mod_revision)
                    .put("a/1", b"y".to_vec())
            )
            .await
            .unwrap()
            .is_some()
        );
        o.commit(Txn::new().expect("a/2", 0).put("a/2", b"z".to_vec()))
            .await
            .unwrap()
            .unwrap();
        // A stale guard inside the overlay fails like it would on the base.
        assert!(
            o.commit(
                Txn::new()
                    .expect("a/1", a1.mod_revision)
                    .put("a/1", b"w".to_vec())
            )
            .await
            .unwrap()
            .is_none()
        );
        let seen: Vec<_> = o.list("a/", None, 0).await.unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].value, b"y");
        assert_eq!(base.get("a/1").await.unwrap().unwrap().value, b"x");
        assert!(base.get("a/2").await.unwrap().is_none());
        assert!(o.commit_to_base().await.unwrap());
        assert_eq!(base.get("a/1").await.unwrap().unwrap().value, b"y");
        assert_eq!(base.get("a/2").await.unwrap().unwrap().value, b"z");
    }

    #[tokio::test]
    async fn a_concurrent_change_to_something_read_fails_the_whole_batch() {
        let (_d, base) = base();
        base.commit(Txn::new().put("k", b"1".to_vec()))
            .await
            .unwrap();
        let o = Overlay::new(base.clone());
        o.get("k").await.unwrap();
        o.commit(Txn::new().put("other", b"v".to_vec()))
            .await
            .unwrap();
        base.commit(Txn::new().put("k", b"2".to_vec()))
            .await
            .unwrap();
        assert!(!o.commit_to_base().await.unwrap());
        assert!(base.get("other").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn deleted_prefixes_hide_base_keys_but_not_later_writes() {
        let (_d, base) = base();
        base.commit(
            Txn::new()
                .put("p/a", b"1".to_vec())
                .put("p/b", b"2".to_vec()),
        )
        .await
        .unwrap();
        let o = Overlay::new(base.clone());
        o.commit(Txn::new().delete_prefix("p/")).await.unwrap();
        assert!(o.get("p/a").await.unwrap().is_none());
        o.commit(Txn::new().put("p/c", b"3".to_vec()))
            .await
            .unwrap();
        let keys: Vec<_> = o
            .list("p/", None, 0)
            .await
            .unwrap()
            .into_iter()
            .map(|kv| kv.key)
            .collect();
        assert_eq!(keys, ["p/c"]);
        assert!(o.commit_to_base().await.unwrap());
        let keys: Vec<_> = base
            .list("p/", None, 0)
            .await
            .unwrap()
            .into_iter()
            .map(|kv| kv.key)
            .collect();
        assert_eq!(keys, ["p/c"]);
    }
}
