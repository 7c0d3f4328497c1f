//! The `Store` trait every backend implements, and the values it speaks in.
//!
//! The model is etcd's: one store-wide revision that every write increments, per-key create/mod
//! revisions, watches that start at a revision and never skip one silently, and leases whose expiry
//! deletes the keys attached to them (watchers see the deletes).

use async_trait::async_trait;
use std::fmt;

/// A store-wide revision. Every write (put, delete, lease expiry) gets the next one.
pub type Revision = u64;

/// A lease handle, as etcd numbers them.
pub type LeaseId = i64;

/// One stored key with its value and bookkeeping revisions.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the write that created this key (since its last delete).
    pub create_revision: Revision,
    /// Revision of the last write to this key.
    pub mod_revision: Revision,
    /// Number of writes since creation, starting at 1.
    pub version: u64,
    /// The lease the key is attached to, if any.
    pub lease: Option<LeaseId>,
}

impl fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValue")
            .field("key", &self.key)
            .field("value", &String::from_utf8_lossy(&self.value))
            .field("create_revision", &self.create_revision)
            .field("mod_revision", &self.mod_revision)
            .field("version", &self.version)
            .field("lease", &self.lease)
            .finish()
    }
}

/// A snapshot of every key under a prefix, and the store revision it reflects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    pub items: Vec<KeyValue>,
    pub revision: Revision,
}

/// What a watcher receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key was created or updated; `kv.mod_revision` is the event's revision.
    Put(KeyValue),
    /// A key was deleted (explicitly, or because its lease expired) at `revision`.
    Delete { key: String, revision: Revision },
    /// The watcher cannot be given every event after the last one it saw: the history it needs
    /// was compacted away. The consumer must list again and watch from the listing's revision + 1.
    /// No event follows on this watcher.
    Relist { compact_revision: Revision },
}

impl WatchEvent {
    /// The revision of the change, or `None` for [`WatchEvent::Relist`].
    pub fn revision(&self) -> Option<Revision> {
        match self {
            WatchEvent::Put(kv) => Some(kv.mod_revision),
            WatchEvent::Delete { revision, .. } => Some(*revision),
            WatchEvent::Relist { .. } => None,
        }
    }

    /// The key the event is about, or `None` for [`WatchEvent::Relist`].
    pub fn key(&self) -> Option<&str> {
        match self {
            WatchEvent::Put(kv) => Some(&kv.key),
            WatchEvent::Delete { key, .. } => Some(key),
            WatchEvent::Relist { .. } => None,
        }
    }
}

/// A live watch: events in revision order. `next` returns `None` once the watch has ended
/// (after a [`WatchEvent::Relist`], or when the store is gone).
pub struct Watch {
    pub(crate) inner: Box<dyn WatchSource>,
}

impl Watch {
    pub async fn next(&mut self) -> Option<Result<WatchEvent, StoreError>> {
        self.inner.next().await
    }
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Watch")
    }
}

#[async_trait]
pub(crate) trait WatchSource: Send {
    async fn next(&mut self) -> Option<Result<WatchEvent, StoreError>>;
}

/// One condition of a transaction: the key's mod revision must be `mod_revision` (0: the key
/// must not exist).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    pub key: String,
    pub mod_revision: Revision,
}

/// One write of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOp {
    Put { key: String, value: Vec<u8>, lease: Option<LeaseId> },
    Delete { key: String },
}

/// Several keys checked and written atomically, at one revision: all of it or none of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub ops: Vec<TxnOp>,
}

impl Txn {
    pub fn new() -> Txn {
        Txn::default()
    }

    /// Requires `key` to be at `mod_revision` (0: absent).
    pub fn compare(mut self, key: impl Into<String>, mod_revision: Revision) -> Txn {
        self.compares.push(Compare { key: key.into(), mod_revision });
        self
    }

    pub fn put(mut self, key: impl Into<String>, value: Vec<u8>) -> Txn {
        self.ops.push(TxnOp::Put { key: key.into(), value, lease: None });
        self
    }

    pub fn delete(mut self, key: impl Into<String>) -> Txn {
        self.ops.push(TxnOp::Delete { key: key.into() });
        self
    }
}

/// The most operations one transaction may hold (etcd's default `--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 128;

/// Errors of every backend. Each names the key, revision or lease it is about.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    #[error("key {key:?} already exists")]
    AlreadyExists { key: String },
    #[error("key {key:?} not found")]
    NotFound { key: String },
    #[error("revision conflict on {key:?}: expected mod revision {expected}, found {actual}")]
    Conflict {
        key: String,
        expected: Revision,
        /// The key's current mod revision (0: the key does not exist).
        actual: Revision,
    },
    #[error("revision {requested} has been compacted (oldest kept: {compact_revision})")]
    Compacted { requested: Revision, compact_revision: Revision },
    #[error("revision {requested} is in the future (current revision {current})")]
    FutureRevision { requested: Revision, current: Revision },
    #[error("lease {0} not found (expired or revoked)")]
    LeaseNotFound(LeaseId),
    #[error("invalid lease TTL {0}s: must be between 1 and 9000000000")]
    InvalidTtl(i64),
    #[error("transaction too large: {0} operations (at most {MAX_TXN_OPS})")]
    TxnTooLarge(usize),
    #[error("invalid store address {dsn:?}: {reason}")]
    InvalidDsn { dsn: String, reason: String },
    #[error("store backend error: {0}")]
    Backend(String),
}

impl StoreError {
    pub(crate) fn backend(e: impl fmt::Display) -> Self {
        StoreError::Backend(e.to_string())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The NB store. All backends behave the same; `tests/conformance.rs` holds them to it.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The key's current value, if any.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Creates or replaces the key. Returns the revision of the write.
    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision>;

    /// Creates the key only if it does not exist ([`StoreError::AlreadyExists`] otherwise).
    async fn create(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision>;

    /// Replaces the key only if its mod revision is `expected` (compare-and-swap);
    /// [`StoreError::Conflict`] otherwise, including when the key does not exist.
    /// The key keeps its lease.
    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision>;

    /// Deletes the key. Returns the revision of the delete, or `None` if there was no such key
    /// (nothing is written then).
    async fn delete(&self, key: &str) -> Result<Option<Revision>>;

    /// Deletes the key only if its mod revision is `expected`; [`StoreError::Conflict`] otherwise.
    async fn delete_if(&self, key: &str, expected: Revision) -> Result<Revision>;

    /// Checks every compare and, if all hold, applies every op at one new revision (deleting an
    /// absent key is a no-op). The first compare that fails is reported as [`StoreError::Conflict`]
    /// and nothing is written. Returns the revision of the writes (the current one if none).
    async fn txn(&self, txn: Txn) -> Result<Revision>;

    /// Every key under `prefix`, sorted by key, and the revision the snapshot reflects.
    async fn list(&self, prefix: &str) -> Result<Listing>;

    /// A page of [`Store::list`]: the first `limit` keys (0: no limit) under `prefix` that sort
    /// strictly after `start_after` (from the first key when `None`), in key order, at one
    /// revision. The backends read about `limit` keys, however many the prefix holds; this
    /// default (for wrappers) lists the whole prefix.
    async fn list_from(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<Listing> {
        let mut listing = self.list(prefix).await?;
        listing.items.retain(|kv| start_after.is_none_or(|after| kv.key.as_str() > after));
        if limit > 0 {
            listing.items.truncate(limit);
        }
        Ok(listing)
    }

    /// The page before a key: the last `limit` keys (0: no limit) under `prefix` that sort
    /// strictly before `end_before` (up to the last key when `None`), in key order, at one
    /// revision. Reads about `limit` keys, like [`Store::list_from`].
    async fn list_before(&self, prefix: &str, end_before: Option<&str>, limit: usize) -> Result<Listing> {
        let mut listing = self.list(prefix).await?;
        listing.items.retain(|kv| end_before.is_none_or(|before| kv.key.as_str() < before));
        if limit > 0 && listing.items.len() > limit {
            listing.items.drain(..listing.items.len() - limit);
        }
        Ok(listing)
    }

    /// The current value of each key (`None`: absent), in the order asked: one request per
    /// [`MAX_TXN_OPS`] keys on etcd, one read on the local store. Each batch is one snapshot;
    /// the whole is not (a key may change between batches). This default gets them one by one.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<KeyValue>>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(key).await?);
        }
        Ok(out)
    }

    /// Events for keys under `prefix` with revision >= `from`, in revision order, then live ones.
    /// `from == 0` means "from now on". If history before `from` is compacted, the first event is
    /// [`WatchEvent::Relist`].
    async fn watch(&self, prefix: &str, from: Revision) -> Result<Watch>;

    /// The store's current revision.
    async fn revision(&self) -> Result<Revision>;

    /// Forgets history before `revision` (watches from earlier revisions get a relist).
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// Grants a lease that expires `ttl_secs` seconds from now unless kept alive.
    async fn grant_lease(&self, ttl_secs: i64) -> Result<LeaseId>;

    /// Restarts the lease's TTL. [`StoreError::LeaseNotFound`] if it already expired.
    async fn keep_alive(&self, lease: LeaseId) -> Result<()>;

    /// Ends the lease now, deleting its keys.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<()>;
}

/// Refuses transactions no backend can take in one piece.
pub(crate) fn check_txn_size(txn: &Txn) -> Result<()> {
    let n = txn.compares.len().max(txn.ops.len());
    if n > MAX_TXN_OPS {
        return Err(StoreError::TxnTooLarge(n));
    }
    Ok(())
}
