//! The etcd backend: [`EtcdStore`] implements [`Store`] on a real etcd 3.4+ over its v3 gRPC API.
//! It owns the translation between the two: transactions for create / compare-and-swap, paged
//! listings at one revision, watch streams (batched events, compaction → relist), leases, and
//! mapping etcd's errors onto [`StoreError`] naming the key, revision or lease concerned.
//!
//! Requests go through a pool of single-member clients (`etcd/pool.rs`), which sends a request
//! again to another member when one fails; this file decides what that means for each request:
//! * reads (get, list pages, revision) and unguarded writes (put, delete: same value, same end
//!   state) are simply sent again;
//! * a guarded write (create, update, delete_if, txn with compares) is sent again as it is: its
//!   guard lets at most one of its attempts apply. If an earlier attempt failed without a reply
//!   and a later one finds the guard broken, the key history tells whether the lost attempt is
//!   what broke it (`EtcdStore::applied_at`, "was it ours") — then that is the write's result;
//! * a watch whose member fails resumes on another member from the revision after the last event
//!   it handed out, so no event is lost or repeated; a compaction still ends it with a relist;
//! * a lease is lost only when etcd says so (not found, TTL <= 0), never on a transport error.

mod pool;
mod tls;

use crate::store::{
    self, check_txn_size, KeyValue, LeaseId, Listing, Result, Revision, Store, StoreError, Watch, WatchEvent,
    WatchSource,
};
use crate::{EtcdTls, EtcdUser};
use async_trait::async_trait;
use etcd_client::TlsOptions;
use etcd_client::{
    CompactionOptions, Compare, CompareOp, EventType, GetOptions, GetResponse, PutOptions, ResponseHeader,
    SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchOptions, WatchResponse, WatchStream,
};
use pool::{Credentials, Done, Failed, Pool};
use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Keys per range request when listing.
const LIST_PAGE: i64 = 1000;
/// etcd's own maximum lease TTL.
const MAX_TTL: i64 = 9_000_000_000;
/// A watch whose stream keeps breaking resumes at most this often.
const MIN_RESUME_INTERVAL: Duration = Duration::from_secs(1);

// etcd's error messages (stable since 3.0).
const LEASE_NOT_FOUND: &str = "requested lease not found";
const COMPACTED: &str = "required revision has been compacted";
const FUTURE_REV: &str = "required revision is a future revision";
const TTL_TOO_LARGE: &str = "too large lease TTL";

/// A [`Store`] on an etcd cluster. Cheap to clone; clones share the connections.
#[derive(Clone)]
pub struct EtcdStore {
    pool: Arc<Pool>,
    endpoints: String,
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore").field("endpoints", &self.endpoints).finish()
    }
}

impl EtcdStore {
    /// Connects to the etcd cluster whose members are at `endpoints` ("http://127.0.0.1:2379" or
    /// "127.0.0.1:2379" each) and checks that at least one of them answers, within about 5 s.
    pub async fn connect(endpoints: &[String]) -> Result<EtcdStore> {
        Self::connect_with(endpoints, None, None).await
    }

    /// Connects as [`EtcdStore::connect`] does, over TLS if `tls` is given (as
    /// [`EtcdStore::connect_tls`]), as the etcd user `user` if one is given (for a cluster with
    /// etcd's authentication enabled; its password file, if it has one, is read now). A user etcd
    /// refuses (wrong password, unknown user) fails the connection with an error naming it; so
    /// does a cluster that requires a user when none is given. Tokens are renewed when they
    /// expire (see `etcd/pool.rs`).
    pub async fn open(
        endpoints: &[String],
        tls: Option<&EtcdTls>,
        user: Option<&EtcdUser>,
    ) -> Result<EtcdStore> {
        let credentials = match user {
            Some(user) => Some(Credentials { user: user.name.clone(), password: user.password()? }),
            None => None,
        };
        match tls {
            Some(tls) => Self::connect_tls_as(endpoints, tls, credentials.as_ref()).await,
            None => Self::connect_with(endpoints, None, credentials.as_ref()).await,
        }
    }

    /// Connects as [`EtcdStore::connect`] does, over TLS: each endpoint ("HOST:PORT" or
    /// "https://HOST:PORT", the host as the members' certificates name it) must present a
    /// certificate signed by `tls.ca`, and tern presents `tls.identity` when etcd asks for a
    /// client certificate (`--client-cert-auth`). The files are read now: one that cannot be read
    /// or holds no PEM of the right kind is an error naming it. A refused connection is diagnosed (see `etcd/tls.rs`): the error then says what TLS
    /// objected to (no client certificate, one signed by another CA, an unknown server CA...).
    pub async fn connect_tls(endpoints: &[String], tls: &EtcdTls) -> Result<EtcdStore> {
        Self::connect_tls_as(endpoints, tls, None).await
    }

    async fn connect_tls_as(
        endpoints: &[String],
        tls: &EtcdTls,
        credentials: Option<&Credentials>,
    ) -> Result<EtcdStore> {
        let files = tls::TlsFiles::read(tls)?;
        match Self::connect_with(endpoints, Some(&files.options()), credentials).await {
            Err(StoreError::Backend(why)) => {
                let checks = endpoints.iter().map(|endpoint| tls::diagnose(endpoint, &files));
                let results = futures::future::join_all(checks).await;
                let findings: Vec<String> = endpoints
                    .iter()
                    .zip(results)
                    .filter_map(|(endpoint, finding)| Some(format!("{endpoint}: {}", finding?)))
                    .collect();
                if findings.is_empty() {
                    Err(StoreError::Backend(why))
                } else {
                    Err(StoreError::Backend(format!("{why}; TLS check: {}", findings.join(", "))))
                }
            }
            other => other,
        }
    }

    async fn connect_with(
        endpoints: &[String],
        tls: Option<&TlsOptions>,
        credentials: Option<&Credentials>,
    ) -> Result<EtcdStore> {
        if endpoints.is_empty() {
            return Err(StoreError::Backend("cannot connect to etcd: no endpoints given".into()));
        }
        let joined = endpoints.join(",");
        match Pool::connect(endpoints, tls, credentials).await {
            Ok(pool) => Ok(EtcdStore { pool, endpoints: joined }),
            Err(why) => Err(StoreError::Backend(format!("cannot connect to etcd at {joined}: {why}"))),
        }
    }

    /// The endpoints this store talks to, comma-separated.
    pub fn endpoints(&self) -> &str {
        &self.endpoints
    }

    fn error(&self, what: &str, failed: Failed) -> StoreError {
        match failed {
            Failed::Refused { error, .. } => StoreError::Backend(format!(
                "etcd {what} (at {}): {}",
                self.endpoints,
                self.pool.explain(&error)
            )),
            Failed::Unreachable(why) => StoreError::Backend(format!("etcd {what}: {why}")),
        }
    }

    /// Maps the failure of a write that may carry `lease`.
    fn write_error(&self, what: &str, lease: Option<LeaseId>, failed: Failed) -> StoreError {
        match (&failed, lease) {
            (Failed::Refused { error, .. }, Some(id)) if has_message(error, LEASE_NOT_FOUND) => {
                StoreError::LeaseNotFound(id)
            }
            _ => self.error(what, failed),
        }
    }

    /// One range request, sent to another member if one fails.
    async fn range(&self, key: &[u8], options: GetOptions) -> Result<GetResponse, Failed> {
        let done = self
            .pool
            .run(|member| {
                let (mut kv, key, options) = (member.kv.clone(), key.to_vec(), options.clone());
                async move { kv.get(key, Some(options)).await }
            })
            .await?;
        Ok(done.value)
    }

    /// One transaction, sent again (to another member if one fails) until one answers.
    async fn send_txn(&self, txn: Txn) -> Result<Done<TxnResponse>, Failed> {
        self.pool
            .run(|member| {
                let (mut kv, txn) = (member.kv.clone(), txn.clone());
                async move { kv.txn(txn).await }
            })
            .await
    }

    /// The key's mod revision (0 if absent), for conflict errors.
    async fn mod_revision_of(&self, key: &str) -> Result<Revision> {
        Ok(self.get(key).await?.map_or(0, |kv| kv.mod_revision))
    }

    /// The revision etcd's history starts at (the last compaction), found by probing which
    /// revisions a range request still accepts: compaction at `c` keeps revisions >= `c`.
    /// `at_least` must not be above it (etcd said so by refusing to compact at `at_least`).
    async fn compacted_revision(&self, at_least: Revision) -> Result<Revision> {
        // Revision 0 would mean "current" to a range request; compaction keeps at least 1.
        let mut lo = at_least.max(1);
        let mut hi = self.revision().await?.max(lo);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.range(PROBE_KEY, count_only().with_revision(to_i64(mid)?)).await {
                Ok(_) => hi = mid,
                Err(Failed::Refused { error, .. }) if has_message(&error, COMPACTED) => lo = mid + 1,
                Err(failed) => return Err(self.error(&format!("range at revision {mid}"), failed)),
            }
        }
        Ok(lo)
    }

    /// One page of a listing: at most `page` keys in `[from, end)` at `revision` (0: current),
    /// the first ones (or the last ones, in descending order, when `descend`).
    async fn list_page(
        &self,
        prefix: &str,
        (from, end): (&[u8], &[u8]),
        revision: i64,
        page: i64,
        descend: bool,
    ) -> Result<GetResponse> {
        let order = if descend { SortOrder::Descend } else { SortOrder::Ascend };
        let options = GetOptions::new()
            .with_range(end.to_vec())
            .with_sort(SortTarget::Key, order)
            .with_limit(page)
            .with_revision(revision);
        self.range(from, options).await.map_err(|failed| match failed {
            Failed::Refused { error, .. } if has_message(&error, COMPACTED) => {
                // Only pages after the first ask for a fixed revision; the caller restarts.
                StoreError::Compacted { requested: u64::try_from(revision).unwrap_or(0), compact_revision: 0 }
            }
            failed => self.error(&format!("list of prefix {prefix:?}"), failed),
        })
    }

    /// Keys in `[from, end)` at one revision, in pages: all of them (`limit` 0), or the first
    /// `limit` (the last `limit` when `descend`), returned in key order.
    async fn list_once(
        &self,
        prefix: &str,
        (mut from, mut end): (Vec<u8>, Vec<u8>),
        limit: usize,
        descend: bool,
    ) -> Result<Listing> {
        if from.is_empty() {
            from = vec![0];
        }
        let mut items = Vec::new();
        let mut revision = 0i64;
        loop {
            let want = if limit == 0 { LIST_PAGE } else { LIST_PAGE.min((limit - items.len()) as i64) };
            let resp = self.list_page(prefix, (&from, &end), revision, want, descend).await?;
            if revision == 0 {
                revision = to_i64(header_revision(resp.header())?)?;
            }
            for kv in resp.kvs() {
                items.push(convert_kv(kv)?);
            }
            let full = limit > 0 && items.len() >= limit;
            match resp.kvs().last() {
                Some(last) if resp.more() && !full => {
                    if descend {
                        end = last.key().to_vec();
                    } else {
                        from = last.key().to_vec();
                        from.push(0);
                    }
                }
                _ => break,
            }
        }
        if descend {
            items.reverse();
        }
        Ok(Listing { items, revision: u64::try_from(revision).unwrap_or(0) })
    }

    /// [`EtcdStore::list_once`], started over (a few times) when a compaction removes the
    /// revision of its first page while it reads the others.
    async fn list_range(
        &self,
        prefix: &str,
        range: (Vec<u8>, Vec<u8>),
        limit: usize,
        descend: bool,
    ) -> Result<Listing> {
        let mut attempts = 0;
        loop {
            match self.list_once(prefix, range.clone(), limit, descend).await {
                Err(StoreError::Compacted { .. }) if attempts < 3 => attempts += 1,
                Err(StoreError::Compacted { requested, .. }) => {
                    return Err(StoreError::Backend(format!(
                        "etcd list of prefix {prefix:?}: revision {requested} kept being compacted \
                         while listing"
                    )))
                }
                other => return other,
            }
        }
    }
}

// === "Was it ours": the outcome of a guarded write whose reply was lost ===
//
// A guarded write applies at some revision R exactly when every compare held at R - 1; then each
// of its puts is at R (same value, same lease) and each of its deletes left its key absent at R.
// Reading the keys back at R - 1 and R (etcd keeps the history until compaction) recognises it.
// Another client making the very same writes under the very same compares at R is
// indistinguishable, and equivalent. When the history no longer tells (compacted), the answer is
// "not ours": the caller then sees the conflict, the safe side (it re-reads and decides again).

impl EtcdStore {
    /// The revision `intent` was applied at, if the history shows it was. `keeps_lease`: its puts
    /// keep the key's lease (update), so the lease is not compared.
    async fn applied_at(&self, intent: &store::Txn, keeps_lease: bool) -> Result<Option<Revision>> {
        let mut candidates = Vec::new();
        for c in &intent.compares {
            if !intent.ops.iter().any(|op| op_key(op) == c.key) {
                continue;
            }
            let candidate = if c.mod_revision == 0 {
                // If it applied, it created the key: the key's current life began with it.
                self.get(&c.key).await?.map(|kv| kv.create_revision)
            } else {
                // If it applied, it is the first write to the key after the compared revision.
                self.first_write_after(&c.key, c.mod_revision).await?
            };
            candidates.extend(candidate);
        }
        if candidates.is_empty() {
            // It writes no compared key: if it applied, its first put may still be there.
            if let Some(store::TxnOp::Put { key, .. }) =
                intent.ops.iter().find(|op| matches!(op, store::TxnOp::Put { .. }))
            {
                candidates.extend(self.get(key).await?.map(|kv| kv.mod_revision));
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        for revision in candidates {
            if self.shows_applied(intent, keeps_lease, revision).await? {
                return Ok(Some(revision));
            }
        }
        Ok(None)
    }

    /// Whether the history shows `intent` applied at `revision` (see above).
    async fn shows_applied(
        &self,
        intent: &store::Txn,
        keeps_lease: bool,
        revision: Revision,
    ) -> Result<bool> {
        for c in &intent.compares {
            match self.state_at(&c.key, revision.saturating_sub(1)).await? {
                Some(before) if before.as_ref().map_or(0, |kv| kv.mod_revision) == c.mod_revision => {}
                _ => return Ok(false),
            }
        }
        for op in &intent.ops {
            let Some(after) = self.state_at(op_key(op), revision).await? else {
                return Ok(false);
            };
            let holds = match (op, after) {
                (store::TxnOp::Put { value, lease, .. }, Some(kv)) => {
                    kv.mod_revision == revision && kv.value == *value && (keeps_lease || kv.lease == *lease)
                }
                (store::TxnOp::Delete { .. }, None) => true,
                _ => false,
            };
            if !holds {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The revision of the first write to `key` after `after` (its mod revision then), if any:
    /// the first revision at which the key no longer has that mod revision, found by bisection
    /// over the key's history up to now. `None` also when the history no longer tells.
    async fn first_write_after(&self, key: &str, after: Revision) -> Result<Option<Revision>> {
        let now = self.revision().await?;
        let changed = |kv: &Option<KeyValue>| kv.as_ref().map_or(0, |kv| kv.mod_revision) != after;
        match self.state_at(key, now).await? {
            Some(state) if changed(&state) && now > after => {}
            _ => return Ok(None),
        }
        let (mut lo, mut hi) = (after + 1, now);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.state_at(key, mid).await? {
                Some(state) if changed(&state) => hi = mid,
                Some(_) => lo = mid + 1,
                None => return Ok(None),
            }
        }
        Ok(Some(lo))
    }

    /// The key as it was at `revision`: `Some(None)` if absent then, `None` if that part of the
    /// history was compacted.
    async fn state_at(&self, key: &str, revision: Revision) -> Result<Option<Option<KeyValue>>> {
        if revision == 0 {
            return Ok(Some(None));
        }
        let options = GetOptions::new().with_revision(to_i64(revision)?);
        match self.range(key.as_bytes(), options).await {
            Ok(resp) => Ok(Some(resp.kvs().first().map(convert_kv).transpose()?)),
            Err(Failed::Refused { error, .. }) if has_message(&error, COMPACTED) => Ok(None),
            Err(failed) => Err(self.error(&format!("get of key {key:?} at revision {revision}"), failed)),
        }
    }
}

fn op_key(op: &store::TxnOp) -> &str {
    match op {
        store::TxnOp::Put { key, .. } | store::TxnOp::Delete { key } => key,
    }
}

/// A key no one uses, for cheap requests whose point is the response header.
const PROBE_KEY: &[u8] = b"\0";

fn count_only() -> GetOptions {
    GetOptions::new().with_count_only()
}

fn has_message(e: &etcd_client::Error, needle: &str) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(status) => status.message().contains(needle),
        _ => false,
    }
}

fn to_i64(revision: Revision) -> Result<i64> {
    i64::try_from(revision)
        .map_err(|_| StoreError::Backend(format!("revision {revision} is out of etcd's range")))
}

fn to_revision(value: i64, what: &str) -> Result<Revision> {
    u64::try_from(value).map_err(|_| StoreError::Backend(format!("etcd returned a negative {what}: {value}")))
}

fn header_revision(header: Option<&ResponseHeader>) -> Result<Revision> {
    let header =
        header.ok_or_else(|| StoreError::Backend("etcd returned a response without header".into()))?;
    to_revision(header.revision(), "header revision")
}

/// The first key after every key starting with `prefix` (etcd's range end for a prefix);
/// `[0]` ("no end") for the empty prefix or one of only 0xff bytes.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn convert_kv(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    let key = kv.key_str().map_err(|_| {
        StoreError::Backend(format!("etcd returned a non-UTF-8 key {:?}", String::from_utf8_lossy(kv.key())))
    })?;
    let field = |value: i64, what: &str| {
        to_revision(value, what).map_err(|e| StoreError::Backend(format!("key {key:?}: {e}")))
    };
    Ok(KeyValue {
        key: key.to_owned(),
        value: kv.value().to_vec(),
        create_revision: field(kv.create_revision(), "create revision")?,
        mod_revision: field(kv.mod_revision(), "mod revision")?,
        version: field(kv.version(), "version")?,
        lease: (kv.lease() != 0).then_some(kv.lease()),
    })
}

/// The txn's responses; etcd-client panics on a malformed one, which we turn into an error.
fn op_responses(resp: &TxnResponse) -> Result<Vec<TxnOpResponse>> {
    catch_unwind(AssertUnwindSafe(|| resp.op_responses()))
        .map_err(|_| StoreError::Backend("etcd returned a malformed transaction response".into()))
}

/// The mod revision (0: absent) reported by the `get` in a failed txn's else branch.
fn actual_from_else(resp: &TxnResponse) -> Result<Revision> {
    for op in op_responses(resp)? {
        if let TxnOpResponse::Get(get) = op {
            return match get.kvs().first() {
                Some(kv) => to_revision(kv.mod_revision(), "mod revision"),
                None => Ok(0),
            };
        }
    }
    Err(StoreError::Backend("etcd transaction response lacks its get".into()))
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let resp = self
            .range(key.as_bytes(), GetOptions::new())
            .await
            .map_err(|failed| self.error(&format!("get of key {key:?}"), failed))?;
        resp.kvs().first().map(convert_kv).transpose()
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision> {
        let mut options = PutOptions::new();
        if let Some(id) = lease {
            options = options.with_lease(id);
        }
        // Sent again after a lost reply: writing the same value twice ends in the same state.
        let done = self
            .pool
            .run(|member| {
                let (mut kv, value, options) = (member.kv.clone(), value.clone(), options.clone());
                async move { kv.put(key, value, Some(options)).await }
            })
            .await
            .map_err(|failed| self.write_error(&format!("put of key {key:?}"), lease, failed))?;
        header_revision(done.value.header())
    }

    async fn create(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision> {
        let mut options = PutOptions::new();
        if let Some(id) = lease {
            options = options.with_lease(id);
        }
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.clone(), Some(options))]);
        let done = self
            .send_txn(txn)
            .await
            .map_err(|failed| self.write_error(&format!("create of key {key:?}"), lease, failed))?;
        if done.value.succeeded() {
            return header_revision(done.value.header());
        }
        if done.uncertain {
            let intent = store::Txn {
                compares: vec![store::Compare { key: key.to_owned(), mod_revision: 0 }],
                ops: vec![store::TxnOp::Put { key: key.to_owned(), value, lease }],
            };
            if let Some(revision) = self.applied_at(&intent, false).await? {
                return Ok(revision);
            }
        }
        Err(StoreError::AlreadyExists { key: key.to_owned() })
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision> {
        let conflict = |actual| StoreError::Conflict { key: key.to_owned(), expected, actual };
        // mod_revision == 0 would match an absent key, which must be a conflict.
        let Ok(expected_i64) = i64::try_from(expected) else {
            return Err(conflict(self.mod_revision_of(key).await?));
        };
        if expected == 0 {
            return Err(conflict(self.mod_revision_of(key).await?));
        }
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected_i64)])
            .and_then([TxnOp::put(key, value.clone(), Some(PutOptions::new().with_ignore_lease()))])
            .or_else([TxnOp::get(key, None)]);
        let done = self
            .send_txn(txn)
            .await
            .map_err(|failed| self.error(&format!("update of key {key:?}"), failed))?;
        if done.value.succeeded() {
            return header_revision(done.value.header());
        }
        if done.uncertain {
            let intent = store::Txn::new().compare(key, expected).put(key, value);
            if let Some(revision) = self.applied_at(&intent, true).await? {
                return Ok(revision);
            }
        }
        Err(conflict(actual_from_else(&done.value)?))
    }

    async fn delete(&self, key: &str) -> Result<Option<Revision>> {
        // Sent again after a lost reply: the key ends absent either way. (If the lost attempt
        // deleted it, the one that answers finds nothing and says so.)
        let done = self
            .pool
            .run(|member| {
                let mut kv = member.kv.clone();
                async move { kv.delete(key, None).await }
            })
            .await
            .map_err(|failed| self.error(&format!("delete of key {key:?}"), failed))?;
        if done.value.deleted() > 0 {
            header_revision(done.value.header()).map(Some)
        } else {
            Ok(None)
        }
    }

    async fn delete_if(&self, key: &str, expected: Revision) -> Result<Revision> {
        let conflict = |actual| StoreError::Conflict { key: key.to_owned(), expected, actual };
        let Ok(expected_i64) = i64::try_from(expected) else {
            return Err(conflict(self.mod_revision_of(key).await?));
        };
        if expected == 0 {
            return Err(conflict(self.mod_revision_of(key).await?));
        }
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected_i64)])
            .and_then([TxnOp::delete(key, None)])
            .or_else([TxnOp::get(key, None)]);
        let done = self
            .send_txn(txn)
            .await
            .map_err(|failed| self.error(&format!("conditional delete of key {key:?}"), failed))?;
        if done.value.succeeded() {
            return header_revision(done.value.header());
        }
        if done.uncertain {
            let intent = store::Txn::new().compare(key, expected).delete(key);
            if let Some(revision) = self.applied_at(&intent, false).await? {
                return Ok(revision);
            }
        }
        Err(conflict(actual_from_else(&done.value)?))
    }

    async fn txn(&self, t: store::Txn) -> Result<Revision> {
        check_txn_size(&t)?;
        let mut compares = Vec::with_capacity(t.compares.len());
        for c in &t.compares {
            let Ok(rev) = i64::try_from(c.mod_revision) else {
                let actual = self.mod_revision_of(&c.key).await?;
                return Err(StoreError::Conflict { key: c.key.clone(), expected: c.mod_revision, actual });
            };
            compares.push(Compare::mod_revision(c.key.as_str(), CompareOp::Equal, rev));
        }
        let mut leases = Vec::new();
        let ops: Vec<TxnOp> = t
            .ops
            .iter()
            .map(|op| match op {
                store::TxnOp::Put { key, value, lease } => {
                    let mut options = PutOptions::new();
                    if let Some(id) = lease {
                        options = options.with_lease(*id);
                        leases.push(*id);
                    }
                    TxnOp::put(key.as_str(), value.clone(), Some(options))
                }
                store::TxnOp::Delete { key } => TxnOp::delete(key.as_str(), None),
            })
            .collect();
        // On failure, read every compared key back to name the first that did not hold.
        let reads: Vec<TxnOp> = t.compares.iter().map(|c| TxnOp::get(c.key.as_str(), None)).collect();
        let txn = Txn::new().when(compares).and_then(ops).or_else(reads);
        let done = self
            .send_txn(txn)
            .await
            .map_err(|failed| self.write_error("transaction", leases.first().copied(), failed))?;
        let resp = done.value;
        if resp.succeeded() {
            return header_revision(resp.header());
        }
        if done.uncertain {
            if let Some(revision) = self.applied_at(&t, false).await? {
                return Ok(revision);
            }
        }
        let responses = op_responses(&resp)?;
        for (c, op) in t.compares.iter().zip(responses) {
            let actual = match op {
                TxnOpResponse::Get(get) => match get.kvs().first() {
                    Some(kv) => to_revision(kv.mod_revision(), "mod revision")?,
                    None => 0,
                },
                _ => return Err(StoreError::Backend("etcd transaction response lacks its gets".into())),
            };
            if actual != c.mod_revision {
                return Err(StoreError::Conflict { key: c.key.clone(), expected: c.mod_revision, actual });
            }
        }
        Err(StoreError::Backend("etcd refused the transaction, yet every compare holds on read-back".into()))
    }

    async fn list(&self, prefix: &str) -> Result<Listing> {
        let range = (prefix.as_bytes().to_vec(), prefix_end(prefix.as_bytes()));
        self.list_range(prefix, range, 0, false).await
    }

    async fn list_from(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<Listing> {
        let from = match start_after {
            Some(after) if after >= prefix => {
                let mut from = after.as_bytes().to_vec();
                from.push(0);
                from
            }
            _ => prefix.as_bytes().to_vec(),
        };
        self.list_range(prefix, (from, prefix_end(prefix.as_bytes())), limit, false).await
    }

    async fn list_before(&self, prefix: &str, end_before: Option<&str>, limit: usize) -> Result<Listing> {
        let prefix_end = prefix_end(prefix.as_bytes());
        let end = match end_before {
            Some(before) if before <= prefix => {
                let revision = self.revision().await?;
                return Ok(Listing { items: Vec::new(), revision });
            }
            // [0] means "no end" to etcd: the prefix end applies unless it is that.
            Some(before) if prefix_end == [0] || before.as_bytes() < prefix_end.as_slice() => {
                before.as_bytes().to_vec()
            }
            _ => prefix_end,
        };
        self.list_range(prefix, (prefix.as_bytes().to_vec(), end), limit, true).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<KeyValue>>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(store::MAX_TXN_OPS) {
            // A transaction of reads only: one snapshot, no new revision; safe to send again.
            let txn =
                Txn::new().and_then(chunk.iter().map(|k| TxnOp::get(k.as_str(), None)).collect::<Vec<_>>());
            let done = self
                .send_txn(txn)
                .await
                .map_err(|failed| self.error(&format!("get of {} keys", chunk.len()), failed))?;
            let responses = op_responses(&done.value)?;
            if responses.len() != chunk.len() {
                return Err(StoreError::Backend("etcd answered a batch of gets with another count".into()));
            }
            for op in responses {
                match op {
                    TxnOpResponse::Get(get) => out.push(get.kvs().first().map(convert_kv).transpose()?),
                    _ => {
                        return Err(StoreError::Backend("etcd answered a get with another operation".into()))
                    }
                }
            }
        }
        Ok(out)
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<Watch> {
        if from > 0 {
            let current = self.revision().await?;
            if from > current.saturating_add(1) {
                return Err(StoreError::FutureRevision { requested: from, current });
            }
        }
        let (stream, created) = open_watch(&self.pool, prefix, to_i64(from)?)
            .await
            .map_err(|failed| self.error(&format!("watch of prefix {prefix:?}"), failed))?;
        // "From now on" is from the revision after the one etcd had when it created the watcher.
        let next_revision =
            if from == 0 { to_i64(header_revision(created.header())? + 1)? } else { to_i64(from)? };
        let mut source = EtcdWatch {
            pool: self.pool.clone(),
            prefix: prefix.to_owned(),
            stream: Some(stream),
            opened_at: Instant::now(),
            pending: VecDeque::new(),
            next_revision,
            ended: false,
        };
        source.absorb(created);
        Ok(Watch { inner: Box::new(source) })
    }

    async fn revision(&self) -> Result<Revision> {
        let resp = self
            .range(PROBE_KEY, count_only())
            .await
            .map_err(|failed| self.error("revision query", failed))?;
        header_revision(resp.header())
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let at = to_i64(revision)?;
        let result = self
            .pool
            .run(|member| {
                let mut kv = member.kv.clone();
                async move { kv.compact(at, Some(CompactionOptions::new())).await }
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(Failed::Refused { error, uncertain }) if has_message(&error, COMPACTED) => {
                let compact_revision = self.compacted_revision(revision).await?;
                if uncertain && compact_revision == revision {
                    // The attempt whose reply was lost compacted it.
                    return Ok(());
                }
                Err(StoreError::Compacted { requested: revision, compact_revision })
            }
            Err(Failed::Refused { error, .. }) if has_message(&error, FUTURE_REV) => {
                Err(StoreError::FutureRevision { requested: revision, current: self.revision().await? })
            }
            Err(failed) => Err(self.error(&format!("compaction at revision {revision}"), failed)),
        }
    }

    async fn grant_lease(&self, ttl_secs: i64) -> Result<LeaseId> {
        if !(1..=MAX_TTL).contains(&ttl_secs) {
            return Err(StoreError::InvalidTtl(ttl_secs));
        }
        // Granted again after a lost reply: a lease granted but never heard of expires unused.
        let done = self
            .pool
            .run(|member| {
                let mut lease = member.lease.clone();
                async move { lease.grant(ttl_secs, None).await }
            })
            .await
            .map_err(|failed| match failed {
                Failed::Refused { error, .. } if has_message(&error, TTL_TOO_LARGE) => {
                    StoreError::InvalidTtl(ttl_secs)
                }
                failed => self.error(&format!("lease grant (TTL {ttl_secs}s)"), failed),
            })?;
        let resp = done.value;
        if !resp.error().is_empty() {
            return Err(StoreError::Backend(format!(
                "etcd lease grant (TTL {ttl_secs}s) (at {}): {}",
                self.endpoints,
                resp.error()
            )));
        }
        Ok(resp.id())
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        // One round trip on a fresh keep-alive stream: etcd-client sends one request and reads
        // one response, which has TTL <= 0 if the lease is gone. Dropping the stream ends it.
        // Only etcd saying so loses the lease; a member failing sends the keep-alive elsewhere.
        let result = self
            .pool
            .run(|member| {
                let mut client = member.lease.clone();
                async move { client.keep_alive(lease).await.map(|_| ()) }
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(Failed::Refused { error, .. }) if is_lease_gone(&error) => {
                Err(StoreError::LeaseNotFound(lease))
            }
            Err(failed) => Err(self.error(&format!("keep-alive of lease {lease}"), failed)),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        let result = self
            .pool
            .run(|member| {
                let mut client = member.lease.clone();
                async move { client.revoke(lease).await }
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            // The attempt whose reply was lost revoked it.
            Err(Failed::Refused { error, uncertain: true }) if has_message(&error, LEASE_NOT_FOUND) => Ok(()),
            Err(Failed::Refused { error, .. }) if has_message(&error, LEASE_NOT_FOUND) => {
                Err(StoreError::LeaseNotFound(lease))
            }
            Err(failed) => Err(self.error(&format!("revocation of lease {lease}"), failed)),
        }
    }
}

/// Whether etcd said the lease is gone (expired or revoked).
fn is_lease_gone(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::LeaseKeepAliveError(_)) || has_message(e, LEASE_NOT_FOUND)
}

/// Whether a watch's cancel reason is etcd refusing its user or token.
fn is_auth_reason(reason: &str) -> bool {
    pool::is_auth_error(&etcd_client::Error::WatchError(reason.to_owned()))
}

/// Opens a watch of `prefix` from `start` (0: from now) on the first member that takes it, and
/// waits for etcd to confirm the watcher (so a "from now" watch sees every write made after this
/// returns). Returns the stream and that first response.
async fn open_watch(pool: &Pool, prefix: &str, start: i64) -> Result<(WatchStream, WatchResponse), Failed> {
    let done = pool
        .run(|member| {
            let mut client = member.watch.clone();
            let options = WatchOptions::new().with_prefix().with_start_revision(start);
            async move {
                let mut stream = client.watch(prefix, Some(options)).await?;
                match stream.message().await? {
                    // Refused for its user or token: an error, so the pool may renew the token.
                    Some(created) if created.canceled() && is_auth_reason(created.cancel_reason()) => {
                        Err(etcd_client::Error::WatchError(created.cancel_reason().to_owned()))
                    }
                    Some(created) => Ok((stream, created)),
                    None => Err(etcd_client::Error::WatchError(
                        "stream closed before the watch was created".into(),
                    )),
                }
            }
        })
        .await?;
    Ok(done.value)
}

/// One watch: an etcd watch stream on one member, the events of its last response not yet handed
/// out, and where to resume on another member if that one fails.
struct EtcdWatch {
    pool: Arc<Pool>,
    prefix: String,
    /// `None` while the watch has to be resumed; dropping the stream cancels the watch in etcd.
    stream: Option<WatchStream>,
    opened_at: Instant,
    pending: VecDeque<Result<WatchEvent>>,
    /// The first revision whose events have not been queued: where a resumed watch starts.
    next_revision: i64,
    /// Set once the last item (relist or error) is queued.
    ended: bool,
}

impl EtcdWatch {
    fn end_with(&mut self, last: Result<WatchEvent>) {
        self.pending.push_back(last);
        self.stream = None;
        self.ended = true;
    }

    /// Queues the events of one response not queued before, then a relist or an error if it ends
    /// the watch.
    fn absorb(&mut self, resp: WatchResponse) {
        // etcd sends all the events of one revision in one response, so a resumed watch starts
        // after the last revision of the last response.
        let mut last = None;
        for event in resp.events() {
            match convert_event(event) {
                Ok(event) => {
                    let revision = event.revision().and_then(|r| i64::try_from(r).ok()).unwrap_or(i64::MAX);
                    last = Some(revision);
                    if revision >= self.next_revision {
                        self.pending.push_back(Ok(event));
                    }
                }
                Err(e) => {
                    let e = StoreError::Backend(format!("watch of prefix {:?}: {e}", self.prefix));
                    return self.end_with(Err(e));
                }
            }
        }
        if let Some(last) = last {
            self.next_revision = self.next_revision.max(last.saturating_add(1));
        }
        if resp.compact_revision() > 0 {
            // etcd cancels the watcher: the history it needs is gone.
            let compact_revision = u64::try_from(resp.compact_revision()).unwrap_or(0);
            self.end_with(Ok(WatchEvent::Relist { compact_revision }));
        } else if resp.canceled() && resp.cancel_reason().contains("no leader") {
            tracing::warn!(prefix = %self.prefix, "etcd member lost its leader; resuming the watch on another");
            self.stream = None;
        } else if resp.canceled() {
            let e = StoreError::Backend(format!(
                "etcd canceled the watch of prefix {:?}: {}",
                self.prefix,
                if resp.cancel_reason().is_empty() { "no reason given" } else { resp.cancel_reason() }
            ));
            self.end_with(Err(e));
        }
    }

    /// Opens the watch again, on whichever member takes it, from the first revision not handed
    /// out yet; ends the watch with an error if no member does within the pool's budget.
    async fn resume(&mut self) {
        // A stream that breaks again at once (a flapping member) is not reopened in a busy loop.
        tokio::time::sleep_until(self.opened_at + MIN_RESUME_INTERVAL).await;
        self.opened_at = Instant::now();
        match open_watch(&self.pool, &self.prefix, self.next_revision).await {
            Ok((stream, created)) => {
                self.stream = Some(stream);
                self.absorb(created);
            }
            Err(failed) => {
                let why = match failed {
                    Failed::Refused { error, .. } => self.pool.explain(&error),
                    Failed::Unreachable(why) => why,
                };
                let e = StoreError::Backend(format!(
                    "etcd watch of prefix {:?} lost its member and could not resume from revision {}: {why}",
                    self.prefix, self.next_revision
                ));
                self.end_with(Err(e));
            }
        }
    }
}

fn convert_event(event: &etcd_client::Event) -> Result<WatchEvent> {
    // etcd-client panics on an event type it does not know; etcd has only put and delete.
    let kind = catch_unwind(AssertUnwindSafe(|| event.event_type()))
        .map_err(|_| StoreError::Backend("etcd sent an event of unknown type".into()))?;
    let kv = event.kv().ok_or_else(|| StoreError::Backend("etcd sent an event without key".into()))?;
    match kind {
        EventType::Put => convert_kv(kv).map(WatchEvent::Put),
        EventType::Delete => {
            let key = convert_kv(kv)?;
            Ok(WatchEvent::Delete { key: key.key, revision: key.mod_revision })
        }
    }
}

#[async_trait]
impl WatchSource for EtcdWatch {
    async fn next(&mut self) -> Option<Result<WatchEvent>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.ended {
                return None;
            }
            let Some(stream) = self.stream.as_mut() else {
                self.resume().await;
                continue;
            };
            match stream.message().await {
                Ok(Some(resp)) => self.absorb(resp),
                Ok(None) => {
                    tracing::warn!(prefix = %self.prefix, "etcd closed the watch stream; resuming the watch");
                    self.stream = None;
                }
                Err(e) => {
                    tracing::warn!(prefix = %self.prefix, error = %e, "etcd watch stream failed; resuming the watch");
                    self.stream = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_increments_the_last_byte_below_0xff() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b""), vec![0]);
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
