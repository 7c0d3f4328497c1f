//! The etcd backend: [`EtcdStore`] implements [`Store`] on a real etcd 3.4+ over its v3 gRPC API.
//! It owns the translation between the two: transactions for create / compare-and-swap, paged
//! listings at one revision, watch streams (batched events, compaction → relist), leases, and
//! mapping etcd's errors onto [`StoreError`] naming the key, revision or lease concerned.

use crate::store::{
    self, check_txn_size, KeyValue, LeaseId, Listing, Result, Revision, Store, StoreError, Watch, WatchEvent,
    WatchSource,
};
use async_trait::async_trait;
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, EventType, GetOptions, GetResponse,
    KvClient, LeaseClient, PutOptions, ResponseHeader, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
    TxnResponse, WatchClient, WatchOptions, WatchResponse, WatchStream,
};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

/// How long connecting (and the first round trip) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one unary request may take before it fails with [`StoreError::Backend`].
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// HTTP/2 pings detect a dead etcd under a long-lived watch. etcd refuses pings more often than
/// every 5 s (`--grpc-keepalive-min-time`), so stay above that.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest gRPC message we accept (a big listing page or a watch response carrying a large
/// transaction). tonic's default of 4 MiB is too small for either.
const MAX_MESSAGE_BYTES: usize = 256 << 20;
/// Keys per range request when listing.
const LIST_PAGE: i64 = 1000;
/// etcd's own maximum lease TTL.
const MAX_TTL: i64 = 9_000_000_000;

// etcd's error messages (stable since 3.0).
const LEASE_NOT_FOUND: &str = "requested lease not found";
const COMPACTED: &str = "required revision has been compacted";
const FUTURE_REV: &str = "required revision is a future revision";
const TTL_TOO_LARGE: &str = "too large lease TTL";

/// A [`Store`] on an etcd cluster. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct EtcdStore {
    kv: KvClient,
    watch: WatchClient,
    lease: LeaseClient,
    endpoints: String,
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore").field("endpoints", &self.endpoints).finish()
    }
}

impl EtcdStore {
    /// Connects to etcd at `endpoints` ("http://127.0.0.1:2379" or "127.0.0.1:2379") and checks
    /// that it answers, within about 5 s.
    pub async fn connect(endpoints: &[String]) -> Result<EtcdStore> {
        if endpoints.is_empty() {
            return Err(StoreError::Backend("cannot connect to etcd: no endpoints given".into()));
        }
        let joined = endpoints.join(",");
        let unreachable =
            |why: String| StoreError::Backend(format!("cannot connect to etcd at {joined}: {why}"));
        let options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT);
        let client =
            match tokio::time::timeout(CONNECT_TIMEOUT, Client::connect(endpoints, Some(options))).await {
                Ok(Ok(client)) => client,
                Ok(Err(e)) => return Err(unreachable(e.to_string())),
                Err(_) => return Err(unreachable(format!("no answer within {CONNECT_TIMEOUT:?}"))),
            };
        let store = EtcdStore {
            kv: client.kv_client().max_decoding_message_size(MAX_MESSAGE_BYTES),
            watch: client.watch_client().max_decoding_message_size(MAX_MESSAGE_BYTES),
            lease: client.lease_client(),
            endpoints: joined.clone(),
        };
        // The channel connects lazily: make one round trip now so a wrong address fails here.
        let mut kv = store.kv.clone();
        match tokio::time::timeout(CONNECT_TIMEOUT, kv.get(PROBE_KEY, Some(count_only()))).await {
            Ok(Ok(_)) => Ok(store),
            Ok(Err(e)) => Err(unreachable(e.to_string())),
            Err(_) => Err(unreachable(format!("no answer within {CONNECT_TIMEOUT:?}"))),
        }
    }

    /// The endpoints this store talks to, comma-separated.
    pub fn endpoints(&self) -> &str {
        &self.endpoints
    }

    fn backend(&self, what: String, e: etcd_client::Error) -> StoreError {
        StoreError::Backend(format!("etcd {what} (at {}): {e}", self.endpoints))
    }

    /// Maps an error of a write that may carry `lease`.
    fn write_error(&self, what: String, lease: Option<LeaseId>, e: etcd_client::Error) -> StoreError {
        match lease {
            Some(id) if has_message(&e, LEASE_NOT_FOUND) => StoreError::LeaseNotFound(id),
            _ => self.backend(what, e),
        }
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
            let mut kv = self.kv.clone();
            let options = count_only().with_revision(to_i64(mid)?);
            match call(kv.get(PROBE_KEY, Some(options))).await {
                Ok(_) => hi = mid,
                Err(e) if has_message(&e, COMPACTED) => lo = mid + 1,
                Err(e) => return Err(self.backend(format!("range at revision {mid}"), e)),
            }
        }
        Ok(lo)
    }

    /// One page of a listing: keys in `[from, end)` at `revision` (0: current).
    async fn list_page(&self, prefix: &str, from: &[u8], end: &[u8], revision: i64) -> Result<GetResponse> {
        let options = GetOptions::new()
            .with_range(end.to_vec())
            .with_sort(SortTarget::Key, SortOrder::Ascend)
            .with_limit(LIST_PAGE)
            .with_revision(revision);
        let mut kv = self.kv.clone();
        call(kv.get(from.to_vec(), Some(options))).await.map_err(|e| {
            if has_message(&e, COMPACTED) {
                // Only pages after the first ask for a fixed revision; the caller restarts.
                StoreError::Compacted { requested: u64::try_from(revision).unwrap_or(0), compact_revision: 0 }
            } else {
                self.backend(format!("list of prefix {prefix:?}"), e)
            }
        })
    }

    async fn list_once(&self, prefix: &str) -> Result<Listing> {
        let end = prefix_end(prefix.as_bytes());
        let mut from = prefix.as_bytes().to_vec();
        if from.is_empty() {
            from = vec![0];
        }
        let mut items = Vec::new();
        let mut revision = 0i64;
        loop {
            let resp = self.list_page(prefix, &from, &end, revision).await?;
            if revision == 0 {
                revision = to_i64(header_revision(resp.header())?)?;
            }
            for kv in resp.kvs() {
                items.push(convert_kv(kv)?);
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        Ok(Listing { items, revision: u64::try_from(revision).unwrap_or(0) })
    }
}

/// A key no one uses, for cheap requests whose point is the response header.
const PROBE_KEY: &[u8] = b"\0";

fn count_only() -> GetOptions {
    GetOptions::new().with_count_only()
}

/// Runs one request with [`REQUEST_TIMEOUT`].
async fn call<T>(fut: impl Future<Output = Result<T, etcd_client::Error>>) -> Result<T, etcd_client::Error> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(result) => result,
        Err(_) => Err(etcd_client::Error::IoError(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {REQUEST_TIMEOUT:?}"),
        ))),
    }
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
        let mut kv = self.kv.clone();
        let resp =
            call(kv.get(key, None)).await.map_err(|e| self.backend(format!("get of key {key:?}"), e))?;
        resp.kvs().first().map(convert_kv).transpose()
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision> {
        let mut options = PutOptions::new();
        if let Some(id) = lease {
            options = options.with_lease(id);
        }
        let mut kv = self.kv.clone();
        let resp = call(kv.put(key, value, Some(options)))
            .await
            .map_err(|e| self.write_error(format!("put of key {key:?}"), lease, e))?;
        header_revision(resp.header())
    }

    async fn create(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision> {
        let mut options = PutOptions::new();
        if let Some(id) = lease {
            options = options.with_lease(id);
        }
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, Some(options))]);
        let mut kv = self.kv.clone();
        let resp = call(kv.txn(txn))
            .await
            .map_err(|e| self.write_error(format!("create of key {key:?}"), lease, e))?;
        if !resp.succeeded() {
            return Err(StoreError::AlreadyExists { key: key.to_owned() });
        }
        header_revision(resp.header())
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
            .and_then([TxnOp::put(key, value, Some(PutOptions::new().with_ignore_lease()))])
            .or_else([TxnOp::get(key, None)]);
        let mut kv = self.kv.clone();
        let resp = call(kv.txn(txn)).await.map_err(|e| self.backend(format!("update of key {key:?}"), e))?;
        if !resp.succeeded() {
            return Err(conflict(actual_from_else(&resp)?));
        }
        header_revision(resp.header())
    }

    async fn delete(&self, key: &str) -> Result<Option<Revision>> {
        let mut kv = self.kv.clone();
        let resp = call(kv.delete(key, None))
            .await
            .map_err(|e| self.backend(format!("delete of key {key:?}"), e))?;
        if resp.deleted() > 0 {
            header_revision(resp.header()).map(Some)
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
        let mut kv = self.kv.clone();
        let resp = call(kv.txn(txn))
            .await
            .map_err(|e| self.backend(format!("conditional delete of key {key:?}"), e))?;
        if !resp.succeeded() {
            return Err(conflict(actual_from_else(&resp)?));
        }
        header_revision(resp.header())
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
        let mut kv = self.kv.clone();
        let resp = call(kv.txn(txn))
            .await
            .map_err(|e| self.write_error("transaction".to_owned(), leases.first().copied(), e))?;
        if resp.succeeded() {
            return header_revision(resp.header());
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
        // Pages after the first read at the first page's revision; if a compaction removes that
        // revision mid-listing, start over (a few times).
        let mut attempts = 0;
        loop {
            match self.list_once(prefix).await {
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

    async fn watch(&self, prefix: &str, from: Revision) -> Result<Watch> {
        if from > 0 {
            let current = self.revision().await?;
            if from > current.saturating_add(1) {
                return Err(StoreError::FutureRevision { requested: from, current });
            }
        }
        let options = WatchOptions::new().with_prefix().with_start_revision(to_i64(from)?);
        let mut client = self.watch.clone();
        let stream = call(client.watch(prefix, Some(options)))
            .await
            .map_err(|e| self.backend(format!("watch of prefix {prefix:?}"), e))?;
        let mut source =
            EtcdWatch { prefix: prefix.to_owned(), stream: Some(stream), pending: VecDeque::new() };
        // Wait for etcd to confirm the watcher, so a "from now" watch sees every write made
        // after this returns.
        let first = tokio::time::timeout(REQUEST_TIMEOUT, source.receive()).await;
        match first {
            Ok(Some(Ok(Some(resp)))) => source.absorb(resp),
            Ok(Some(Err(e))) => return Err(self.backend(format!("watch of prefix {prefix:?}"), e)),
            Ok(None | Some(Ok(None))) => {
                return Err(StoreError::Backend(format!(
                    "etcd watch of prefix {prefix:?} (at {}): stream closed before the watch \
                     was created",
                    self.endpoints
                )))
            }
            Err(_) => {
                return Err(StoreError::Backend(format!(
                    "etcd watch of prefix {prefix:?} (at {}): not created within \
                     {REQUEST_TIMEOUT:?}",
                    self.endpoints
                )))
            }
        }
        Ok(Watch { inner: Box::new(source) })
    }

    async fn revision(&self) -> Result<Revision> {
        let mut kv = self.kv.clone();
        let resp = call(kv.get(PROBE_KEY, Some(count_only())))
            .await
            .map_err(|e| self.backend("revision query".into(), e))?;
        header_revision(resp.header())
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let mut kv = self.kv.clone();
        let options = CompactionOptions::new();
        match call(kv.compact(to_i64(revision)?, Some(options))).await {
            Ok(_) => Ok(()),
            Err(e) if has_message(&e, COMPACTED) => Err(StoreError::Compacted {
                requested: revision,
                compact_revision: self.compacted_revision(revision).await?,
            }),
            Err(e) if has_message(&e, FUTURE_REV) => {
                Err(StoreError::FutureRevision { requested: revision, current: self.revision().await? })
            }
            Err(e) => Err(self.backend(format!("compaction at revision {revision}"), e)),
        }
    }

    async fn grant_lease(&self, ttl_secs: i64) -> Result<LeaseId> {
        if !(1..=MAX_TTL).contains(&ttl_secs) {
            return Err(StoreError::InvalidTtl(ttl_secs));
        }
        let mut lease = self.lease.clone();
        let resp = call(lease.grant(ttl_secs, None)).await.map_err(|e| {
            if has_message(&e, TTL_TOO_LARGE) {
                StoreError::InvalidTtl(ttl_secs)
            } else {
                self.backend(format!("lease grant (TTL {ttl_secs}s)"), e)
            }
        })?;
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
        let mut client = self.lease.clone();
        match call(client.keep_alive(lease)).await {
            Ok(_) => Ok(()),
            Err(etcd_client::Error::LeaseKeepAliveError(_)) => Err(StoreError::LeaseNotFound(lease)),
            Err(e) if has_message(&e, LEASE_NOT_FOUND) => Err(StoreError::LeaseNotFound(lease)),
            Err(e) => Err(self.backend(format!("keep-alive of lease {lease}"), e)),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        let mut client = self.lease.clone();
        match call(client.revoke(lease)).await {
            Ok(_) => Ok(()),
            Err(e) if has_message(&e, LEASE_NOT_FOUND) => Err(StoreError::LeaseNotFound(lease)),
            Err(e) => Err(self.backend(format!("revocation of lease {lease}"), e)),
        }
    }
}

/// One watch: an etcd watch stream and the events of its last response not yet handed out.
struct EtcdWatch {
    prefix: String,
    /// `None` once the watch has ended; dropping the stream cancels the watch in etcd.
    stream: Option<WatchStream>,
    pending: VecDeque<Result<WatchEvent>>,
}

impl EtcdWatch {
    /// The next response; `None` once the watch has ended.
    async fn receive(&mut self) -> Option<Result<Option<WatchResponse>, etcd_client::Error>> {
        let stream = self.stream.as_mut()?;
        Some(stream.message().await)
    }

    fn end_with(&mut self, last: Result<WatchEvent>) {
        self.pending.push_back(last);
        self.stream = None;
    }

    /// Queues the events of one response, then a relist or an error if it ends the watch.
    fn absorb(&mut self, resp: WatchResponse) {
        for event in resp.events() {
            match convert_event(event) {
                Ok(event) => self.pending.push_back(Ok(event)),
                Err(e) => {
                    let e = StoreError::Backend(format!("watch of prefix {:?}: {e}", self.prefix));
                    return self.end_with(Err(e));
                }
            }
        }
        if resp.compact_revision() > 0 {
            // etcd cancels the watcher: the history it needs is gone.
            let compact_revision = u64::try_from(resp.compact_revision()).unwrap_or(0);
            self.end_with(Ok(WatchEvent::Relist { compact_revision }));
        } else if resp.canceled() {
            let e = StoreError::Backend(format!(
                "etcd canceled the watch of prefix {:?}: {}",
                self.prefix,
                if resp.cancel_reason().is_empty() { "no reason given" } else { resp.cancel_reason() }
            ));
            self.end_with(Err(e));
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
            match self.receive().await? {
                Ok(Some(resp)) => self.absorb(resp),
                Ok(None) => {
                    let e = StoreError::Backend(format!(
                        "etcd closed the watch stream of prefix {:?}",
                        self.prefix
                    ));
                    self.end_with(Err(e));
                }
                Err(e) => {
                    let e =
                        StoreError::Backend(format!("etcd watch of prefix {:?} failed: {e}", self.prefix));
                    self.end_with(Err(e));
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
