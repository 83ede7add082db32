//! What the check of every call reads, kept in memory: whether auth is
//! active (one atomic, the only thing a call reads while auth is off), the
//! records of presented tokens, the admins, repo ACLs and subjects' groups.
//!
//! The cache is kept true by a watch on `auth/` (every change, from this
//! pachd, another replica on the same etcd, or a restore, arrives as an
//! event and drops what it touches), and by this process's own writes,
//! which drop what they touched before the write call returns. Invariants:
//! - nothing is kept while the watch is not running (before it starts, after
//!   it fails, until it is started again): every lookup then reads the store;
//! - a value read from the store is kept only if no change was seen while it
//!   was being read (the generation did not move), so a late read never
//!   overwrites a newer invalidation;
//! - nothing is kept longer than [`MAX_AGE`]: everything is dropped that
//!   often and the activation state read again, which bounds how long a
//!   change made elsewhere can go unseen even if a watch stalls without
//!   failing;
//! - a token's expiry is checked on each use, not when it was cached.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use pach_meta::{Event, MetaStore, Op};

use crate::Result;
use crate::records::{ACTIVATION, ADMINS, PREFIX};

/// The longest any cached value is used; also the longest a change made
/// through another pachd can go unseen here when its watch event is late.
pub const MAX_AGE: Duration = Duration::from_secs(1);
/// Past this many cached records everything is dropped (garbage tokens or
/// repo names cannot grow the cache without bound).
const MAX_ENTRIES: usize = 100_000;
/// How long to wait before watching again after a watch failed.
const RETRY: Duration = Duration::from_millis(200);

const UNKNOWN: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;

type Value = Arc<dyn Any + Send + Sync>;

pub(crate) struct Cache {
    /// Whether auth is active as far as the watch knows (`UNKNOWN`: read
    /// the store). Written only with `entries` locked.
    active: AtomicU8,
    entries: Mutex<Entries>,
    /// Dropped with the cache, which ends its watcher.
    _stop: tokio::sync::oneshot::Sender<()>,
}

#[derive(Default)]
struct Entries {
    /// The watch runs: values may be kept.
    live: bool,
    /// Moves on every change seen; a read started at another generation is
    /// not kept.
    generation: u64,
    /// By metadata key (the admins' set under `auth/admins/` itself);
    /// `None`: no record.
    values: HashMap<String, Option<Value>>,
}

impl Entries {
    /// Drops everything `changed` (a key, or a prefix when `prefix`) may
    /// have changed.
    fn forget(&mut self, changed: &str, prefix: bool) {
        self.generation += 1;
        if prefix {
            self.values
                .retain(|k, _| !k.starts_with(changed) && !changed.starts_with(k.as_str()));
        } else {
            self.values.remove(changed);
            if changed.starts_with(ADMINS) {
                self.values.remove(ADMINS);
            }
        }
    }

    fn forget_all(&mut self) {
        self.generation += 1;
        self.values.clear();
    }
}

impl Cache {
    /// A cache over `meta`, with the task that watches `auth/` for it.
    pub(crate) fn start(meta: Arc<dyn MetaStore>) -> Arc<Cache> {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let cache = Arc::new(Cache {
            active: AtomicU8::new(UNKNOWN),
            entries: Mutex::new(Entries::default()),
            _stop: stop,
        });
        tokio::spawn(watch(Arc::downgrade(&cache), meta, stopped));
        cache
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // A panic while holding the lock leaves nothing half-done that a
        // later caller could trust: every change is one map operation.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether auth is active, when known without reading the store.
    pub(crate) fn active(&self) -> Option<bool> {
        match self.active.load(Ordering::Acquire) {
            OFF => Some(false),
            ON => Some(true),
            _ => None,
        }
    }

    /// The value kept under `key`, or `load`'s (kept if nothing changed
    /// meanwhile). `keep_absent`: whether "no record" is kept too.
    pub(crate) async fn get_or_load<T, F>(
        &self,
        key: &str,
        keep_absent: bool,
        load: F,
    ) -> Result<Option<Arc<T>>>
    where
        T: Send + Sync + 'static,
        F: Future<Output = Result<Option<T>>>,
    {
        let generation = {
            let entries = self.lock();
            if let Some(kept) = entries.values.get(key) {
                match kept {
                    None => return Ok(None),
                    Some(v) => {
                        if let Ok(v) = Arc::clone(v).downcast::<T>() {
                            return Ok(Some(v));
                        }
                        // A key is always read as the same type; never here.
                        debug_assert!(false, "cached {key} read as another type");
                    }
                }
            }
            entries.generation
        };
        let loaded = load.await?.map(Arc::new);
        if loaded.is_some() || keep_absent {
            let mut entries = self.lock();
            if entries.live && entries.generation == generation {
                if entries.values.len() >= MAX_ENTRIES {
                    entries.forget_all();
                    return Ok(loaded);
                }
                let kept = loaded.clone().map(|v| v as Value);
                entries.values.insert(key.to_string(), kept);
            }
        }
        Ok(loaded)
    }

    /// This process wrote `ops`: drops what they touched, before the write
    /// call returns.
    pub(crate) fn wrote(&self, ops: &[Op]) {
        let mut entries = self.lock();
        for op in ops {
            match op {
                Op::Put { key, .. } => {
                    entries.forget(key, false);
                    if key == ACTIVATION && entries.live {
                        self.active.store(ON, Ordering::Release);
                    }
                }
                Op::Delete { key } => {
                    entries.forget(key, false);
                    if key == ACTIVATION && entries.live {
                        self.active.store(OFF, Ordering::Release);
                    }
                }
                Op::DeletePrefix { prefix } => {
                    entries.forget(prefix, true);
                    if ACTIVATION.starts_with(prefix.as_str()) && entries.live {
                        self.active.store(OFF, Ordering::Release);
                    }
                }
            }
        }
    }

    /// Drops everything and forgets the activation state until it is read
    /// again (a write this process made around the cache, e.g. a restore).
    pub(crate) fn forget_everything(&self) {
        let mut entries = self.lock();
        entries.forget_all();
        self.active.store(UNKNOWN, Ordering::Release);
    }

    fn apply(&self, event: &Event) {
        let mut entries = self.lock();
        entries.forget(event.key(), false);
        if event.key() == ACTIVATION {
            let state = if matches!(event, Event::Put(_)) {
                ON
            } else {
                OFF
            };
            self.active.store(state, Ordering::Release);
        }
    }

    fn set_live(&self, live: bool) {
        let mut entries = self.lock();
        entries.live = live;
        entries.forget_all();
        self.active.store(UNKNOWN, Ordering::Release);
    }

    /// Drops every value and reads the activation state again.
    async fn refresh(&self, meta: &dyn MetaStore) {
        let generation = {
            let mut entries = self.lock();
            // A read in flight began before this: not kept either.
            entries.forget_all();
            entries.generation
        };
        let read = meta.get(ACTIVATION).await;
        let entries = self.lock();
        if entries.live && entries.generation == generation {
            let state = match read {
                Ok(Some(_)) => ON,
                Ok(None) => OFF,
                Err(_) => UNKNOWN,
            };
            self.active.store(state, Ordering::Release);
        }
    }
}

/// The cache's watcher: applies every event under `auth/`, refreshes every
/// [`MAX_AGE`], and while no watch runs keeps the cache empty and tries
/// again. Ends when the cache is dropped.
async fn watch(
    cache: std::sync::Weak<Cache>,
    meta: Arc<dyn MetaStore>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        let events = tokio::select! {
            _ = &mut stopped => return,
            events = meta.watch(PREFIX) => events,
        };
        let mut events = match events {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(
                    "auth cache: cannot watch {PREFIX} ({e}); reading the store on every call until it can"
                );
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tokio::time::sleep(RETRY) => continue,
                }
            }
        };
        // Every change from here on arrives as an event: values may be kept.
        match cache.upgrade() {
            Some(c) => {
                c.set_live(true);
                c.refresh(meta.as_ref()).await;
            }
            None => return,
        }
        let mut tick = tokio::time::interval(MAX_AGE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                event = events.next() => {
                    let Some(c) = cache.upgrade() else { return };
                    match event {
                        Some(Ok(event)) => c.apply(&event),
                        failed => {
                            c.set_live(false);
                            match failed {
                                Some(Err(e)) => tracing::warn!("auth cache: the watch of {PREFIX} failed ({e}); watching again"),
                                _ => tracing::warn!("auth cache: the watch of {PREFIX} ended; watching again"),
                            }
                            break;
                        }
                    }
                }
                _ = tick.tick() => {
                    let Some(c) = cache.upgrade() else { return };
                    c.refresh(meta.as_ref()).await;
                }
            }
        }
    }
}

#[cfg(test)]
impl Cache {
    /// Waits (a bounded time) until the watch runs.
    pub(crate) async fn wait_live(&self) {
        for _ in 0..500 {
            if self.lock().live && self.active().is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("the auth cache's watch did not start");
    }

    pub(crate) fn kept(&self) -> usize {
        self.lock().values.len()
    }
}
