//! A store wrapper for tests that check what an operation asks of the store: the keys of each
//! write that was applied (one entry per call; a refused transaction wrote nothing), how many keys
//! were read, and which prefixes were listed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::{KeyValue, LeaseId, Listing, Result, Revision, Store, Txn, TxnOp, Watch};

/// See the module documentation. Everything is passed on to the inner store unchanged.
pub struct Observed {
    inner: Arc<dyn Store>,
    writes: Mutex<Vec<Vec<String>>>,
    listed: Mutex<Vec<String>>,
    keys_read: AtomicUsize,
}

impl Observed {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Observed> {
        Arc::new(Observed {
            inner,
            writes: Mutex::default(),
            listed: Mutex::default(),
            keys_read: AtomicUsize::new(0),
        })
    }

    /// The keys of each write applied since the last call, in order.
    pub fn take_writes(&self) -> Vec<Vec<String>> {
        std::mem::take(&mut *lock(&self.writes))
    }

    /// The prefixes listed and the number of keys read (listed or got) since the last call.
    pub fn take_reads(&self) -> (Vec<String>, usize) {
        (std::mem::take(&mut *lock(&self.listed)), self.keys_read.swap(0, Ordering::SeqCst))
    }

    fn wrote<T>(&self, keys: Vec<String>, result: Result<T>) -> Result<T> {
        if result.is_ok() && !keys.is_empty() {
            lock(&self.writes).push(keys);
        }
        result
    }

    fn listing(&self, prefix: &str, result: Result<Listing>) -> Result<Listing> {
        lock(&self.listed).push(prefix.to_owned());
        if let Ok(l) = &result {
            self.keys_read.fetch_add(l.items.len(), Ordering::SeqCst);
        }
        result
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl Store for Observed {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.keys_read.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key).await
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<KeyValue>>> {
        self.keys_read.fetch_add(keys.len(), Ordering::SeqCst);
        self.inner.get_many(keys).await
    }
    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision> {
        let result = self.inner.put(key, value, lease).await;
        self.wrote(vec![key.to_owned()], result)
    }
    async fn create(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision> {
        let result = self.inner.create(key, value, lease).await;
        self.wrote(vec![key.to_owned()], result)
    }
    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision> {
        let result = self.inner.update(key, value, expected).await;
        self.wrote(vec![key.to_owned()], result)
    }
    async fn delete(&self, key: &str) -> Result<Option<Revision>> {
        let result = self.inner.delete(key).await;
        self.wrote(vec![key.to_owned()], result)
    }
    async fn delete_if(&self, key: &str, expected: Revision) -> Result<Revision> {
        let result = self.inner.delete_if(key, expected).await;
        self.wrote(vec![key.to_owned()], result)
    }
    async fn txn(&self, txn: Txn) -> Result<Revision> {
        let keys = txn
            .ops
            .iter()
            .map(|op| match op {
                TxnOp::Put { key, .. } | TxnOp::Delete { key } => key.clone(),
            })
            .collect();
        let result = self.inner.txn(txn).await;
        self.wrote(keys, result)
    }
    async fn list(&self, prefix: &str) -> Result<Listing> {
        let result = self.inner.list(prefix).await;
        self.listing(prefix, result)
    }
    async fn list_from(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Listing> {
        let result = self.inner.list_from(prefix, after, limit).await;
        self.listing(prefix, result)
    }
    async fn list_before(&self, prefix: &str, before: Option<&str>, limit: usize) -> Result<Listing> {
        let result = self.inner.list_before(prefix, before, limit).await;
        self.listing(prefix, result)
    }
    async fn watch(&self, prefix: &str, from: Revision) -> Result<Watch> {
        self.inner.watch(prefix, from).await
    }
    async fn revision(&self) -> Result<Revision> {
        self.inner.revision().await
    }
    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }
    async fn grant_lease(&self, ttl_secs: i64) -> Result<LeaseId> {
        self.inner.grant_lease(ttl_secs).await
    }
    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        self.inner.keep_alive(lease).await
    }
    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        self.inner.revoke_lease(lease).await
    }
}
