//! The metadata store: the small, consistent records of a cluster (repos, commits,
//! branches, pipelines, jobs) behind one small trait.
//!
//! The trait is shaped after etcd's key-value API because etcd is the store of
//! cluster mode: ordered string keys, values of a few kilobytes at most, atomic
//! multi-key transactions guarded by per-key modification revisions, and watches on
//! a key prefix. The embedded implementation ([`RedbStore`]) keeps exactly the same
//! semantics in one local file, so the layers above never know which one they use.
//!
//! Invariants every implementation keeps:
//! - every successful transaction gets a new, strictly larger store revision, and
//!   every key it writes records that revision as its `mod_revision`;
//! - a transaction applies all of its operations or none, and only if every
//!   comparison holds at the moment it commits;
//! - a watcher sees the events of every transaction committed after the watch
//!   started, in revision order;
//! - a [`Snapshot`] shows every key exactly as it was at its revision, however
//!   long it is read and whatever is committed meanwhile.

pub mod conformance;
mod etcd_store;
mod overlay;
mod redb_store;

pub use etcd_store::EtcdStore;
pub use overlay::Overlay;
pub use redb_store::RedbStore;

use async_trait::async_trait;
use futures::stream::BoxStream;

/// A store revision; 0 means "never written".
pub type Revision = u64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the transaction that last wrote this key.
    pub mod_revision: Revision,
}

/// A guard of a transaction: the key's modification revision must equal the
/// given one (0 = the key must not exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    pub key: String,
    pub mod_revision: Revision,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
    },
    Delete {
        key: String,
    },
    /// Deletes every key that starts with the prefix.
    DeletePrefix {
        prefix: String,
    },
}

/// An atomic, guarded set of writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub ops: Vec<Op>,
}

impl Txn {
    pub fn new() -> Self {
        Self::default()
    }
    /// Requires `key` to be unchanged since it was read at `mod_revision`
    /// (0: requires it to be absent).
    pub fn expect(mut self, key: impl Into<String>, mod_revision: Revision) -> Self {
        self.compares.push(Compare {
            key: key.into(),
            mod_revision,
        });
        self
    }
    pub fn put(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.ops.push(Op::Put {
            key: key.into(),
            value: value.into(),
        });
        self
    }
    pub fn delete(mut self, key: impl Into<String>) -> Self {
        self.ops.push(Op::Delete { key: key.into() });
        self
    }
    pub fn delete_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.ops.push(Op::DeletePrefix {
            prefix: prefix.into(),
        });
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Put(KeyValue),
    Delete { key: String, mod_revision: Revision },
}

impl Event {
    pub fn key(&self) -> &str {
        match self {
            Event::Put(kv) => &kv.key,
            Event::Delete { key, .. } => key,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata store at {path}: {message}")]
    Open { path: String, message: String },
    /// A networked store (etcd) did not answer for as long as the caller
    /// was willing to wait for it.
    #[error(
        "etcd at {endpoints} did not answer within {}s (last attempt: {problem})",
        waited.as_secs()
    )]
    Unreachable {
        endpoints: String,
        waited: std::time::Duration,
        problem: String,
    },
    #[error("metadata store error: {0}")]
    Backend(String),
    #[error(
        "a watcher fell behind by {0} events and was dropped; it must re-read the state and watch again"
    )]
    WatchLagged(u64),
}

pub type Result<T> = std::result::Result<T, MetaError>;

/// The metadata store trait. Keep it small: a method only one backend can offer
/// does not belong here.
#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;
    /// Keys starting with `prefix`, in key order, strictly after `start_after` when
    /// given, at most `limit` of them (0 = no limit).
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<KeyValue>>;
    /// Commits the transaction if every comparison holds. Returns the new store
    /// revision, or `None` when a comparison failed (nothing was written).
    async fn commit(&self, txn: Txn) -> Result<Option<Revision>>;
    /// Events on keys starting with `prefix`, for every transaction committed after
    /// this call returns.
    async fn watch(&self, prefix: &str) -> Result<BoxStream<'static, Result<Event>>>;
    /// The store's current revision.
    async fn revision(&self) -> Result<Revision>;
    /// A read-only view of every key as of the current revision, to be read
    /// page by page while writers go on (extract reads a whole cluster this
    /// way without holding it in memory or retrying). etcd reads at the
    /// revision (until a compaction passes it); redb keeps a read transaction.
    async fn snapshot(&self) -> Result<Box<dyn Snapshot>>;
}

/// A consistent view of a store at one revision (see [`MetaStore::snapshot`]).
#[async_trait]
pub trait Snapshot: Send + Sync {
    /// The store revision the view shows: every key's `mod_revision` is at
    /// most this, and no transaction after it is visible.
    fn revision(&self) -> Revision;
    /// As [`MetaStore::list`], as of [`Snapshot::revision`].
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<KeyValue>>;
}
