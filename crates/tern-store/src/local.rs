//! The in-process store engine behind the `redb` (durable file) and `memory` backends.
//!
//! One redb database holds the keys, a change log keyed by revision (so a watch can start at any
//! revision still kept, like etcd's MVCC history), the leases and the store revision. Writes are
//! serialized; each is one redb transaction committed with fsync (file backend) before it is
//! acknowledged and then published to live watchers in revision order. Leases are emulated: their
//! TTLs are durable, their deadlines live in memory and restart at open, as etcd's do.

use crate::store::{
    check_txn_size, KeyValue, LeaseId, Listing, Result, Revision, Store, StoreError, Txn, TxnOp, Watch,
    WatchEvent, WatchSource,
};
use async_trait::async_trait;
use redb::{
    backends::InMemoryBackend, Database, MultimapTableDefinition, ReadableDatabase, ReadableTable,
    TableDefinition,
};
use std::collections::{HashMap, VecDeque};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::sync::{mpsc, Notify};
use tokio::time::{Duration, Instant};

/// A stored key: (create_revision, mod_revision, version, lease (0: none), value).
type KvRow = (u64, u64, u64, i64, &'static [u8]);
/// One logged change: (is_put, key, value, create_revision, version, lease).
type LogRow = (bool, &'static str, &'static [u8], u64, u64, i64);

const KV: TableDefinition<&str, KvRow> = TableDefinition::new("kv");
/// (revision, index within the revision) -> the change
const LOG: TableDefinition<(u64, u32), LogRow> = TableDefinition::new("log");
/// "revision", "compact_revision", "next_lease" -> number
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// lease -> TTL in seconds
const LEASES: TableDefinition<i64, i64> = TableDefinition::new("leases");
/// lease -> the keys attached to it
const LEASE_KEYS: MultimapTableDefinition<i64, &str> = MultimapTableDefinition::new("lease_keys");

/// Events a live watcher may have queued before it counts as lagging and must catch up from the log.
const WATCH_QUEUE: usize = 1024;
/// How many revisions of history the store keeps by default before compacting older ones.
pub const DEFAULT_HISTORY: u64 = 100_000;
/// The largest TTL etcd accepts; the same bound here.
const MAX_TTL: i64 = 9_000_000_000;

/// The `memory` and `redb` backends: see the module documentation.
#[derive(Clone)]
pub struct LocalStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    /// Where the data lives, for messages ("memory" for the in-memory backend).
    location: String,
    durable: bool,
    writer: Mutex<Writer>,
    hub: Mutex<Hub>,
    leases: Mutex<HashMap<LeaseId, LeaseTimer>>,
    /// Wakes the lease expiry task (which holds only this, so dropping the store closes the file).
    lease_changed: Arc<Notify>,
}

struct Writer {
    /// Keep this many revisions of history; 0 keeps everything.
    history: u64,
    writes_since_compaction: u64,
}

#[derive(Clone, Copy)]
struct LeaseTimer {
    ttl: i64,
    deadline: Instant,
}

/// Live watchers, fed after each commit, in revision order.
struct Hub {
    last_published: Revision,
    subscribers: Vec<Subscriber>,
}

struct Subscriber {
    prefix: String,
    tx: mpsc::Sender<Vec<WatchEvent>>,
    lagged: Arc<AtomicBool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves nothing half-written in redb (the transaction
    // is dropped uncommitted), so the data behind a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// === impl LocalStore ===

impl LocalStore {
    /// Opens (creating if needed) a durable store in the redb file at `path`.
    /// Must be called inside a tokio runtime (lease expiry runs as a task).
    pub fn open_redb(path: impl AsRef<Path>) -> Result<LocalStore> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Backend(format!("cannot create directory {}: {e}", dir.display()))
            })?;
        }
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Backend(format!(
                "redb file {} is open in another process (a running tern server or controller?): \
                 use that process, or stop it first",
                path.display()
            )),
            e => StoreError::Backend(format!("cannot open redb file {}: {e}", path.display())),
        })?;
        Self::from_db(db, display_path(path), true, DEFAULT_HISTORY)
    }

    /// A fresh, empty in-memory store (nothing survives the process).
    pub fn memory() -> Result<LocalStore> {
        let db =
            Database::builder().create_with_backend(InMemoryBackend::new()).map_err(StoreError::backend)?;
        Self::from_db(db, "memory".into(), false, DEFAULT_HISTORY)
    }

    /// Sets how many revisions of history are kept (0: all). Older history is compacted away as
    /// writes go on; watchers asking for it get a relist.
    pub fn with_history(self, revisions: u64) -> Self {
        lock(&self.inner.writer).history = revisions;
        self
    }

    fn from_db(db: Database, location: String, durable: bool, history: u64) -> Result<LocalStore> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            StoreError::Backend("the local store must be opened inside a tokio runtime".into())
        })?;
        // Create the tables and read the revision and the leases.
        let (revision, leases) = {
            let txn = db.begin_write().map_err(StoreError::backend)?;
            let revision;
            let mut leases = HashMap::new();
            {
                txn.open_table(KV).map_err(StoreError::backend)?;
                txn.open_table(LOG).map_err(StoreError::backend)?;
                txn.open_multimap_table(LEASE_KEYS).map_err(StoreError::backend)?;
                let mut meta = txn.open_table(META).map_err(StoreError::backend)?;
                let stored = meta.get("revision").map_err(StoreError::backend)?.map(|r| r.value());
                revision = match stored {
                    Some(r) => r,
                    None => {
                        // Like etcd, an empty store is at revision 1.
                        meta.insert("revision", 1).map_err(StoreError::backend)?;
                        1
                    }
                };
                let table = txn.open_table(LEASES).map_err(StoreError::backend)?;
                let now = Instant::now();
                for entry in table.iter().map_err(StoreError::backend)? {
                    let (id, ttl) = entry.map_err(StoreError::backend)?;
                    let ttl = ttl.value();
                    leases.insert(id.value(), LeaseTimer { ttl, deadline: now + secs(ttl) });
                }
            }
            txn.commit().map_err(StoreError::backend)?;
            (revision, leases)
        };
        let inner = Arc::new(Inner {
            db,
            location,
            durable,
            writer: Mutex::new(Writer { history, writes_since_compaction: 0 }),
            hub: Mutex::new(Hub { last_published: revision, subscribers: Vec::new() }),
            leases: Mutex::new(leases),
            lease_changed: Arc::new(Notify::new()),
        });
        runtime.spawn(expire_leases(Arc::downgrade(&inner)));
        Ok(LocalStore { inner })
    }

    /// Runs one write transaction off the async executor when it will fsync.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteTxn<'_>) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        if inner.durable {
            tokio::task::spawn_blocking(move || inner.write(f))
                .await
                .map_err(|e| StoreError::Backend(format!("write task failed: {e}")))?
        } else {
            inner.write(f)
        }
    }
}

fn display_path(path: &Path) -> String {
    std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path)).display().to_string()
}

fn secs(ttl: i64) -> Duration {
    Duration::from_secs(ttl.max(0) as u64)
}

// === impl Inner: the write path ===

/// One write transaction: reads and writes keys, collecting the events of the new revision.
struct WriteTxn<'a> {
    kv: redb::Table<'a, &'static str, KvRow>,
    lease_keys: redb::MultimapTable<'a, i64, &'static str>,
    leases: redb::Table<'a, i64, i64>,
    meta: redb::Table<'a, &'static str, u64>,
    /// The revision this transaction writes at, if it writes anything.
    revision: Revision,
    events: Vec<WatchEvent>,
    /// Leases created or ended by this transaction, applied to the timers after commit.
    lease_changes: Vec<(LeaseId, Option<i64>)>,
}

/// What a put does with the key's lease.
enum LeaseChoice {
    Set(Option<LeaseId>),
    Keep,
}

impl WriteTxn<'_> {
    fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.kv.get(key).map_err(StoreError::backend)?.map(|v| {
            let (create_revision, mod_revision, version, lease, value) = v.value();
            KeyValue {
                key: key.to_owned(),
                value: value.to_vec(),
                create_revision,
                mod_revision,
                version,
                lease: (lease != 0).then_some(lease),
            }
        }))
    }

    fn mod_revision(&self, key: &str) -> Result<Revision> {
        Ok(self.get(key)?.map_or(0, |kv| kv.mod_revision))
    }

    fn put(&mut self, key: &str, value: Vec<u8>, lease: LeaseChoice) -> Result<Revision> {
        let old = self.get(key)?;
        let old_lease = old.as_ref().and_then(|kv| kv.lease);
        let lease = match lease {
            LeaseChoice::Keep => old_lease,
            LeaseChoice::Set(l) => l,
        };
        if let Some(l) = lease {
            if self.leases.get(l).map_err(StoreError::backend)?.is_none() {
                return Err(StoreError::LeaseNotFound(l));
            }
        }
        if old_lease != lease {
            if let Some(l) = old_lease {
                self.lease_keys.remove(l, key).map_err(StoreError::backend)?;
            }
            if let Some(l) = lease {
                self.lease_keys.insert(l, key).map_err(StoreError::backend)?;
            }
        }
        let (create_revision, version) = match &old {
            Some(kv) => (kv.create_revision, kv.version + 1),
            None => (self.revision, 1),
        };
        let kv = KeyValue {
            key: key.to_owned(),
            value,
            create_revision,
            mod_revision: self.revision,
            version,
            lease,
        };
        self.kv
            .insert(key, (create_revision, self.revision, version, lease.unwrap_or(0), kv.value.as_slice()))
            .map_err(StoreError::backend)?;
        self.events.push(WatchEvent::Put(kv));
        Ok(self.revision)
    }

    fn delete(&mut self, key: &str) -> Result<Option<Revision>> {
        let Some(old) = self.get(key)? else {
            return Ok(None);
        };
        self.kv.remove(key).map_err(StoreError::backend)?;
        if let Some(l) = old.lease {
            self.lease_keys.remove(l, key).map_err(StoreError::backend)?;
        }
        self.events.push(WatchEvent::Delete { key: key.to_owned(), revision: self.revision });
        Ok(Some(self.revision))
    }

    fn grant_lease(&mut self, ttl: i64) -> Result<LeaseId> {
        let next = self.meta.get("next_lease").map_err(StoreError::backend)?.map_or(1, |v| v.value());
        let id = LeaseId::try_from(next).map_err(StoreError::backend)?;
        self.meta.insert("next_lease", next + 1).map_err(StoreError::backend)?;
        self.leases.insert(id, ttl).map_err(StoreError::backend)?;
        self.lease_changes.push((id, Some(ttl)));
        Ok(id)
    }

    /// Ends the lease and deletes its keys (one revision for all of them, as etcd does).
    fn revoke_lease(&mut self, id: LeaseId) -> Result<()> {
        if self.leases.remove(id).map_err(StoreError::backend)?.is_none() {
            return Err(StoreError::LeaseNotFound(id));
        }
        let mut keys = Vec::new();
        for k in self.lease_keys.remove_all(id).map_err(StoreError::backend)? {
            keys.push(k.map_err(StoreError::backend)?.value().to_owned());
        }
        keys.sort();
        for key in keys {
            // The key's lease association is already gone; delete the key itself.
            if self.kv.remove(key.as_str()).map_err(StoreError::backend)?.is_some() {
                self.events.push(WatchEvent::Delete { key, revision: self.revision });
            }
        }
        self.lease_changes.push((id, None));
        Ok(())
    }
}

impl Inner {
    fn write<T>(&self, f: impl FnOnce(&mut WriteTxn<'_>) -> Result<T>) -> Result<T> {
        let mut writer = lock(&self.writer);
        let txn = self.db.begin_write().map_err(StoreError::backend)?;
        let (result, revision, events, lease_changes) = {
            let meta = txn.open_table(META).map_err(StoreError::backend)?;
            let current = meta.get("revision").map_err(StoreError::backend)?.map_or(1, |v| v.value());
            let mut t = WriteTxn {
                kv: txn.open_table(KV).map_err(StoreError::backend)?,
                lease_keys: txn.open_multimap_table(LEASE_KEYS).map_err(StoreError::backend)?,
                leases: txn.open_table(LEASES).map_err(StoreError::backend)?,
                meta,
                revision: current + 1,
                events: Vec::new(),
                lease_changes: Vec::new(),
            };
            // An error drops the transaction uncommitted: the store is unchanged.
            let result = f(&mut t)?;
            if !t.events.is_empty() {
                t.meta.insert("revision", t.revision).map_err(StoreError::backend)?;
                let mut log = txn.open_table(LOG).map_err(StoreError::backend)?;
                for (i, ev) in t.events.iter().enumerate() {
                    let i = i as u32;
                    match ev {
                        WatchEvent::Put(kv) => log.insert(
                            (t.revision, i),
                            (
                                true,
                                kv.key.as_str(),
                                kv.value.as_slice(),
                                kv.create_revision,
                                kv.version,
                                kv.lease.unwrap_or(0),
                            ),
                        ),
                        WatchEvent::Delete { key, .. } => {
                            log.insert((t.revision, i), (false, key.as_str(), &[][..], 0, 0, 0))
                        }
                        WatchEvent::Relist { .. } => unreachable!("a write never logs a relist"),
                    }
                    .map_err(StoreError::backend)?;
                }
            }
            (result, t.revision, t.events, t.lease_changes)
        };
        if events.is_empty() && lease_changes.is_empty() {
            return Ok(result); // nothing written: drop the transaction
        }
        txn.commit().map_err(StoreError::backend)?;

        if !lease_changes.is_empty() {
            let mut leases = lock(&self.leases);
            let now = Instant::now();
            for (id, ttl) in lease_changes {
                match ttl {
                    Some(ttl) => leases.insert(id, LeaseTimer { ttl, deadline: now + secs(ttl) }),
                    None => leases.remove(&id),
                };
            }
            self.lease_changed.notify_one();
        }
        if !events.is_empty() {
            lock(&self.hub).publish(revision, events);
            writer.writes_since_compaction += 1;
            if writer.history > 0 && writer.writes_since_compaction >= 1024 {
                writer.writes_since_compaction = 0;
                let keep_from = revision.saturating_sub(writer.history);
                if keep_from > 1 {
                    if let Err(e) = self.compact_locked(keep_from) {
                        tracing::warn!(store = %self.location, error = %e, "automatic compaction failed");
                    }
                }
            }
        }
        Ok(result)
    }

    /// Drops history before `revision`. Called with the writer lock held.
    fn compact_locked(&self, revision: Revision) -> Result<()> {
        let txn = self.db.begin_write().map_err(StoreError::backend)?;
        {
            let mut meta = txn.open_table(META).map_err(StoreError::backend)?;
            let current = meta.get("revision").map_err(StoreError::backend)?.map_or(1, |v| v.value());
            let compacted =
                meta.get("compact_revision").map_err(StoreError::backend)?.map_or(0, |v| v.value());
            if revision > current {
                return Err(StoreError::FutureRevision { requested: revision, current });
            }
            if revision <= compacted {
                return Err(StoreError::Compacted { requested: revision, compact_revision: compacted });
            }
            let mut log = txn.open_table(LOG).map_err(StoreError::backend)?;
            log.retain_in((0, 0)..(revision, 0), |_, _| false).map_err(StoreError::backend)?;
            meta.insert("compact_revision", revision).map_err(StoreError::backend)?;
        }
        txn.commit().map_err(StoreError::backend)
    }

    /// Registers a live watcher and returns it with the logged events it must replay first.
    fn subscribe(self: &Arc<Self>, prefix: &str, from: Revision) -> Result<LocalWatch> {
        let (tx, rx) = mpsc::channel(WATCH_QUEUE);
        let lagged = Arc::new(AtomicBool::new(false));
        let current = {
            let mut hub = lock(&self.hub);
            let current = hub.last_published;
            if from > current + 1 {
                return Err(StoreError::FutureRevision { requested: from, current });
            }
            hub.subscribers.push(Subscriber { prefix: prefix.to_owned(), tx, lagged: lagged.clone() });
            current
        };
        let from = if from == 0 { current + 1 } else { from };
        let mut watch = LocalWatch {
            store: Arc::downgrade(self),
            prefix: prefix.to_owned(),
            backlog: VecDeque::new(),
            rx,
            lagged,
            next: from,
            done: false,
        };
        // Everything up to `current` comes from the log; later events arrive on the channel.
        if from <= current {
            match self.history(prefix, from, current)? {
                Ok(events) => watch.backlog.extend(events),
                Err(compact_revision) => {
                    watch.backlog.push_back(WatchEvent::Relist { compact_revision });
                    watch.done = true;
                }
            }
        }
        Ok(watch)
    }

    /// Logged events under `prefix` in `[from, to]`, or `Err(compact_revision)` if some are gone.
    fn history(
        &self,
        prefix: &str,
        from: Revision,
        to: Revision,
    ) -> Result<std::result::Result<Vec<WatchEvent>, Revision>> {
        let txn = self.db.begin_read().map_err(StoreError::backend)?;
        let meta = txn.open_table(META).map_err(StoreError::backend)?;
        let compacted = meta.get("compact_revision").map_err(StoreError::backend)?.map_or(0, |v| v.value());
        if from < compacted {
            return Ok(Err(compacted));
        }
        let log = txn.open_table(LOG).map_err(StoreError::backend)?;
        let mut events = Vec::new();
        for entry in log.range((from, 0)..(to + 1, 0)).map_err(StoreError::backend)? {
            let (k, v) = entry.map_err(StoreError::backend)?;
            let (revision, _) = k.value();
            let (is_put, key, value, create_revision, version, lease) = v.value();
            if !key.starts_with(prefix) {
                continue;
            }
            events.push(if is_put {
                WatchEvent::Put(KeyValue {
                    key: key.to_owned(),
                    value: value.to_vec(),
                    create_revision,
                    mod_revision: revision,
                    version,
                    lease: (lease != 0).then_some(lease),
                })
            } else {
                WatchEvent::Delete { key: key.to_owned(), revision }
            });
        }
        Ok(Ok(events))
    }

    fn read_meta(&self, name: &str) -> Result<u64> {
        let txn = self.db.begin_read().map_err(StoreError::backend)?;
        let meta = txn.open_table(META).map_err(StoreError::backend)?;
        Ok(meta.get(name).map_err(StoreError::backend)?.map_or(0, |v| v.value()))
    }
}

impl Hub {
    fn publish(&mut self, revision: Revision, events: Vec<WatchEvent>) {
        self.last_published = revision;
        self.subscribers.retain(|sub| {
            let mine: Vec<WatchEvent> = events
                .iter()
                .filter(|e| e.key().is_some_and(|k| k.starts_with(&sub.prefix)))
                .cloned()
                .collect();
            if mine.is_empty() {
                return !sub.tx.is_closed();
            }
            match sub.tx.try_send(mine) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // The watcher catches up from the log once it drains its queue.
                    sub.lagged.store(true, Ordering::Release);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }
}

/// Expires leases whose deadline passed, deleting their keys. Ends when the store is dropped.
async fn expire_leases(store: Weak<Inner>) {
    let Some(lease_changed) = store.upgrade().map(|s| s.lease_changed.clone()) else { return };
    loop {
        let Some(inner) = store.upgrade() else { return };
        let next_deadline = lock(&inner.leases).values().map(|t| t.deadline).min();
        // Wake up at the next deadline, when the leases change, or now and then to notice that
        // the store was dropped (this task holds no strong reference while it waits).
        let wait = next_deadline
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1))
            .min(Instant::now() + Duration::from_secs(1));
        drop(inner);
        tokio::select! {
            _ = lease_changed.notified() => continue,
            _ = tokio::time::sleep_until(wait) => {}
        }
        let Some(inner) = store.upgrade() else { return };
        let now = Instant::now();
        let expired: Vec<LeaseId> =
            lock(&inner.leases).iter().filter(|(_, t)| t.deadline <= now).map(|(id, _)| *id).collect();
        for id in expired {
            let store = LocalStore { inner: inner.clone() };
            let result = store
                .write(move |t| match t.revoke_lease(id) {
                    Err(StoreError::LeaseNotFound(_)) => Ok(()), // revoked meanwhile
                    other => other,
                })
                .await;
            match result {
                Ok(()) => tracing::debug!(lease = id, "lease expired"),
                Err(e) => {
                    tracing::warn!(lease = id, error = %e, "cannot expire lease; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// A stored row as a [`KeyValue`].
fn row_to_kv(key: &str, row: (u64, u64, u64, i64, &[u8])) -> KeyValue {
    let (create_revision, mod_revision, version, lease, value) = row;
    KeyValue {
        key: key.to_owned(),
        value: value.to_vec(),
        create_revision,
        mod_revision,
        version,
        lease: (lease != 0).then_some(lease),
    }
}

/// The first string after every string starting with `prefix` (its last character incremented),
/// if there is one.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = char::from_u32(last as u32 + 1) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

// === impl Store for LocalStore ===

#[async_trait]
impl Store for LocalStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let txn = self.inner.db.begin_read().map_err(StoreError::backend)?;
        let kv = txn.open_table(KV).map_err(StoreError::backend)?;
        Ok(kv.get(key).map_err(StoreError::backend)?.map(|v| {
            let (create_revision, mod_revision, version, lease, value) = v.value();
            KeyValue {
                key: key.to_owned(),
                value: value.to_vec(),
                create_revision,
                mod_revision,
                version,
                lease: (lease != 0).then_some(lease),
            }
        }))
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision> {
        let key = key.to_owned();
        self.write(move |t| t.put(&key, value, LeaseChoice::Set(lease))).await
    }

    async fn create(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision> {
        let key = key.to_owned();
        self.write(move |t| {
            if t.get(&key)?.is_some() {
                return Err(StoreError::AlreadyExists { key });
            }
            t.put(&key, value, LeaseChoice::Set(lease))
        })
        .await
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision> {
        let key = key.to_owned();
        self.write(move |t| {
            let actual = t.mod_revision(&key)?;
            if actual != expected || actual == 0 {
                return Err(StoreError::Conflict { key, expected, actual });
            }
            t.put(&key, value, LeaseChoice::Keep)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<Option<Revision>> {
        let key = key.to_owned();
        self.write(move |t| t.delete(&key)).await
    }

    async fn delete_if(&self, key: &str, expected: Revision) -> Result<Revision> {
        let key = key.to_owned();
        self.write(move |t| {
            let actual = t.mod_revision(&key)?;
            if actual != expected || actual == 0 {
                return Err(StoreError::Conflict { key, expected, actual });
            }
            t.delete(&key)?.ok_or_else(|| StoreError::NotFound { key: key.clone() })
        })
        .await
    }

    async fn txn(&self, txn: Txn) -> Result<Revision> {
        check_txn_size(&txn)?;
        self.write(move |t| {
            for c in &txn.compares {
                let actual = t.mod_revision(&c.key)?;
                if actual != c.mod_revision {
                    return Err(StoreError::Conflict {
                        key: c.key.clone(),
                        expected: c.mod_revision,
                        actual,
                    });
                }
            }
            for op in txn.ops {
                match op {
                    TxnOp::Put { key, value, lease } => {
                        t.put(&key, value, LeaseChoice::Set(lease))?;
                    }
                    TxnOp::Delete { key } => {
                        t.delete(&key)?;
                    }
                }
            }
            Ok(t.revision - 1 + u64::from(!t.events.is_empty()))
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Listing> {
        let txn = self.inner.db.begin_read().map_err(StoreError::backend)?;
        let meta = txn.open_table(META).map_err(StoreError::backend)?;
        let revision = meta.get("revision").map_err(StoreError::backend)?.map_or(1, |v| v.value());
        let kv = txn.open_table(KV).map_err(StoreError::backend)?;
        let mut items = Vec::new();
        for entry in kv.range(prefix..).map_err(StoreError::backend)? {
            let (k, v) = entry.map_err(StoreError::backend)?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            let (create_revision, mod_revision, version, lease, value) = v.value();
            items.push(KeyValue {
                key: key.to_owned(),
                value: value.to_vec(),
                create_revision,
                mod_revision,
                version,
                lease: (lease != 0).then_some(lease),
            });
        }
        Ok(Listing { items, revision })
    }

    async fn list_from(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<Listing> {
        let txn = self.inner.db.begin_read().map_err(StoreError::backend)?;
        let meta = txn.open_table(META).map_err(StoreError::backend)?;
        let revision = meta.get("revision").map_err(StoreError::backend)?.map_or(1, |v| v.value());
        let kv = txn.open_table(KV).map_err(StoreError::backend)?;
        let start = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let mut items = Vec::new();
        for entry in kv.range::<&str>((start, Bound::Unbounded)).map_err(StoreError::backend)? {
            let (k, v) = entry.map_err(StoreError::backend)?;
            if !k.value().starts_with(prefix) || (limit > 0 && items.len() == limit) {
                break;
            }
            items.push(row_to_kv(k.value(), v.value()));
        }
        Ok(Listing { items, revision })
    }

    async fn list_before(&self, prefix: &str, end_before: Option<&str>, limit: usize) -> Result<Listing> {
        let txn = self.inner.db.begin_read().map_err(StoreError::backend)?;
        let meta = txn.open_table(META).map_err(StoreError::backend)?;
        let revision = meta.get("revision").map_err(StoreError::backend)?.map_or(1, |v| v.value());
        let kv = txn.open_table(KV).map_err(StoreError::backend)?;
        let prefix_end = prefix_end(prefix);
        // The upper bound: the key asked for or the end of the prefix, whichever comes first.
        let end = match (end_before, prefix_end.as_deref()) {
            (Some(before), Some(pe)) if pe <= before => Bound::Excluded(pe),
            (Some(before), _) => Bound::Excluded(before),
            (None, Some(pe)) => Bound::Excluded(pe),
            (None, None) => Bound::Unbounded,
        };
        let mut items = Vec::new();
        if end_before.is_some_and(|before| before <= prefix) {
            return Ok(Listing { items, revision });
        }
        for entry in kv.range::<&str>((Bound::Included(prefix), end)).map_err(StoreError::backend)?.rev() {
            let (k, v) = entry.map_err(StoreError::backend)?;
            if limit > 0 && items.len() == limit {
                break;
            }
            // Only without a computable prefix end can keys beyond the prefix come up here.
            if k.value().starts_with(prefix) {
                items.push(row_to_kv(k.value(), v.value()));
            }
        }
        items.reverse();
        Ok(Listing { items, revision })
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<KeyValue>>> {
        let txn = self.inner.db.begin_read().map_err(StoreError::backend)?;
        let kv = txn.open_table(KV).map_err(StoreError::backend)?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(kv.get(key.as_str()).map_err(StoreError::backend)?.map(|v| row_to_kv(key, v.value())));
        }
        Ok(out)
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<Watch> {
        let watch = self.inner.subscribe(prefix, from)?;
        Ok(Watch { inner: Box::new(watch) })
    }

    async fn revision(&self) -> Result<Revision> {
        Ok(self.inner.read_meta("revision")?.max(1))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let inner = self.inner.clone();
        let run = move || {
            let _writer = lock(&inner.writer);
            inner.compact_locked(revision)
        };
        if self.inner.durable {
            tokio::task::spawn_blocking(run)
                .await
                .map_err(|e| StoreError::Backend(format!("compaction task failed: {e}")))?
        } else {
            run()
        }
    }

    async fn grant_lease(&self, ttl_secs: i64) -> Result<LeaseId> {
        if !(1..=MAX_TTL).contains(&ttl_secs) {
            return Err(StoreError::InvalidTtl(ttl_secs));
        }
        self.write(move |t| t.grant_lease(ttl_secs)).await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        let mut leases = lock(&self.inner.leases);
        let timer = leases.get_mut(&lease).ok_or(StoreError::LeaseNotFound(lease))?;
        timer.deadline = Instant::now() + secs(timer.ttl);
        drop(leases);
        self.inner.lease_changed.notify_one();
        Ok(())
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        self.write(move |t| t.revoke_lease(lease)).await
    }
}

// === impl LocalWatch ===

struct LocalWatch {
    store: Weak<Inner>,
    prefix: String,
    backlog: VecDeque<WatchEvent>,
    rx: mpsc::Receiver<Vec<WatchEvent>>,
    lagged: Arc<AtomicBool>,
    /// The lowest revision not yet delivered.
    next: Revision,
    done: bool,
}

#[async_trait]
impl WatchSource for LocalWatch {
    async fn next(&mut self) -> Option<Result<WatchEvent, StoreError>> {
        loop {
            if let Some(ev) = self.backlog.pop_front() {
                if let Some(r) = ev.revision() {
                    self.next = r + 1;
                }
                return Some(Ok(ev));
            }
            if self.done {
                return None;
            }
            match self.rx.recv().await {
                Some(batch) => {
                    let next = self.next;
                    // Events of one revision come in one batch; skip any already replayed.
                    self.backlog.extend(batch.into_iter().filter(|e| e.revision() >= Some(next)));
                }
                None if self.lagged.load(Ordering::Acquire) => {
                    // We fell behind the live feed: resume from the log where we stopped.
                    let Some(store) = self.store.upgrade() else {
                        self.done = true;
                        return None;
                    };
                    match store.subscribe(&self.prefix, self.next) {
                        Ok(fresh) => {
                            self.backlog = fresh.backlog;
                            self.rx = fresh.rx;
                            self.lagged = fresh.lagged;
                            self.done = fresh.done;
                        }
                        Err(e) => {
                            self.done = true;
                            return Some(Err(e));
                        }
                    }
                }
                None => {
                    self.done = true;
                    return None;
                }
            }
        }
    }
}
