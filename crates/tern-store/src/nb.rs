//! Typed NB objects on top of any [`Store`]: validation (the object alone, then its references to
//! other objects), store-generated ids, store-allocated unique keys, Neutron's `revision_number`
//! with optimistic concurrency, timestamps, and a watch that speaks in objects.
//!
//! Every write is one store transaction that also guards what it was decided from, so a refused
//! write changes nothing and two writes that contradict each other cannot both commit:
//!
//! * the object's key is compared with the revision it was read at;
//! * values unique within a network (a port's IPs and MAC) and a fixed IP's floating IP are
//!   claimed under `/tern/index/`, compared and written with the object;
//! * an object that starts referring to another (a port to its network, subnets and security
//!   groups, a subnet to its network, a router to its interfaces' subnets and ports and its
//!   gateway network, a floating IP to its network, port and router, a binding or migration to its
//!   port, a rule to its remote group) compares the target's key (it still exists, unchanged) and
//!   bumps the target's *referrers key* `/tern/index/ref/<kind>/<id>`. A delete compares that key
//!   as it was before it looked for referrers, so "delete X" and "start referring to X" cannot
//!   both win;
//! * a subnet create compares and bumps its network's subnet-set key `/tern/index/subnets/<net>`
//!   before it looks for overlaps, so two overlapping subnets cannot both be created;
//! * every write that changes what a project uses (an object of a project created, deleted,
//!   cascaded away, moved to another project, a group's rules added or removed) compares and
//!   rewrites the project's usage counters `/tern/index/usage/<resource>/<project>`, so they
//!   always equal the objects. A transaction that asked for quotas ([`Tx::enforce_quota`])
//!   fails with [`NbError::OverQuota`] when a counter would pass the project's limit (under
//!   `/tern/quota/<project>`), and since the counter is compared, two creates at the edge cannot
//!   both commit. A counter that does not exist yet (a store from before counters) is counted
//!   once from the objects, guarded by its absence.
//!
//! Written with the objects too, but guarding nothing: a port's index entries (by network, by
//! device: `index`, what `GET /v2.0/ports?network_id=|device_id=` and pages read) and the
//! allocation cursor of a subnet an address was picked from (`ipam`: creating a port reads a
//! few claim keys, never the network's list of claims).
//!
//! [`Tx`] runs a whole operation (several reads, several objects written or deleted) as one such
//! transaction; [`Nb::put`] and [`Nb::delete`] are transactions of one write.

use crate::{Revision, Store, StoreError, Txn, TxnOp, Watch, WatchEvent};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tern_model::quota::{self, QuotaLimits, QuotaResource};
use tern_model::{Kind, ModelError, Object};

mod index;
mod ipam;

pub use index::{
    escape_segment, is_port_index_key, parse_port_index_key, port_index_keys, port_index_prefix,
    unescape_segment, IndexBuild, PortField, PortPage, PortSource, PORT_INDEX_MARKER, PORT_INDEX_PREFIX,
    PORT_INDEX_VERSION,
};
pub use ipam::{cursor_key, cursor_subnet, is_cursor_key, CURSOR_PREFIX};

/// Where unique values (a port's IPs and MAC within its network, a fixed IP's floating IP) are
/// claimed, and where the guard keys live; outside every kind's prefix, so NB watches do not see
/// them.
pub const INDEX_PREFIX: &str = "/tern/index/";
/// Referrers keys: `<prefix><kind>/<id>`, bumped whenever an object starts referring to that one.
const REF_PREFIX: &str = "/tern/index/ref/";
/// Subnet-set keys: `<prefix><network id>`, bumped by every subnet created on the network.
const SUBNETS_PREFIX: &str = "/tern/index/subnets/";
/// VNI claims: `<prefix><vni>` holds the id of the network whose traffic carries that VNI on the
/// wire (its `segmentation_id`, or its unique key), so two networks can never share one.
const VNI_PREFIX: &str = "/tern/index/vni/";
/// Floating IP claims: `<prefix><port id>/<fixed ip>` holds the floating IP's id.
const FLOATINGIP_PREFIX: &str = "/tern/index/floatingip/";
/// Usage counters: `<prefix><resource>/<project>` holds how many of the resource the project's
/// objects hold, as decimal text (the resource first: a project id may contain `/`).
pub const USAGE_PREFIX: &str = "/tern/index/usage/";
/// A project's own quota limits: `<prefix><project>` holds its [`QuotaLimits`] as JSON (no key:
/// Neutron's defaults).
pub const QUOTA_PREFIX: &str = "/tern/quota/";
/// Where per-kind unique-key counters live (outside every kind's prefix).
const UNIQUE_KEY_PREFIX: &str = "/tern/meta/unique_key/";
/// Unique keys are 24-bit: they become Geneve VNIs (networks) and register values.
const MAX_UNIQUE_KEY: u32 = 0x00ff_ffff;
/// How many times one transaction is prepared again after losing a race on a key the NB itself
/// chose to guard (a claim, a referenced object, a referrers key).
const PREPARE_ATTEMPTS: u32 = 64;

/// Why an NB operation failed. [`NbError::is_bad_input`] separates the caller's mistakes from
/// failures of the system.
#[derive(Debug, thiserror::Error)]
pub enum NbError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{kind} {id:?} not found")]
    NotFound { kind: Kind, id: String },
    #[error("{kind} {id:?}: {field} refers to {target} {target_id:?}, which does not exist")]
    MissingReference { kind: Kind, id: String, field: String, target: Kind, target_id: String },
    #[error("{kind} {id:?}: revision conflict: the request expects revision_number {expected}, the stored object has {actual}")]
    Conflict { kind: Kind, id: String, expected: u64, actual: u64 },
    #[error("{kind} {id:?}: {field} {value:?} is already used by {kind} {other:?}")]
    Duplicate { kind: Kind, id: String, field: String, value: String, other: String },
    #[error(
        "{kind} {id:?}: {field} is allocated by the store and cannot change (stored {stored}, given {given})"
    )]
    Immutable { kind: Kind, id: String, field: String, stored: String, given: String },
    #[error("{kind} {id:?} is in use by {by_kind} {by_id:?}")]
    InUse { kind: Kind, id: String, by_kind: Kind, by_id: String },
    #[error("no free {what} left")]
    Exhausted { what: String },
    /// Neutron's `OverQuota`: the transaction would take `project` past its limit of each of
    /// `resources`.
    #[error("Quota exceeded for resources: [{}].", resources.iter().map(|r| format!("'{r}'")).collect::<Vec<_>>().join(", "))]
    OverQuota { project: String, resources: Vec<QuotaResource> },
    /// A quota limit set below what the project already uses (without `force`).
    #[error("Quota limit {limit} for {resource} must be greater than or equal to already used {used}")]
    QuotaBelowUsage { project: String, resource: QuotaResource, limit: i64, used: u64 },
    #[error("stored object at {key:?} is unreadable: {message}")]
    Corrupt { key: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl NbError {
    /// True when the request itself was wrong (exit status 2 at the CLI, 4xx at the API).
    pub fn is_bad_input(&self) -> bool {
        match self {
            NbError::Model(_)
            | NbError::NotFound { .. }
            | NbError::MissingReference { .. }
            | NbError::Conflict { .. }
            | NbError::Duplicate { .. }
            | NbError::Immutable { .. }
            | NbError::InUse { .. }
            | NbError::OverQuota { .. }
            | NbError::QuotaBelowUsage { .. } => true,
            NbError::Store(e) => matches!(
                e,
                StoreError::InvalidDsn { .. }
                    | StoreError::Compacted { .. }
                    | StoreError::FutureRevision { .. }
                    | StoreError::InvalidTtl(_)
            ),
            NbError::Exhausted { .. } | NbError::Corrupt { .. } => false,
        }
    }
}

pub type NbResult<T> = std::result::Result<T, NbError>;

/// An object as stored, with the store revision of its last write.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    pub object: Object,
    pub mod_revision: Revision,
}

/// A condition on the stored object (`None`: absent) for [`Nb::put_if`] and [`Nb::delete_if`].
pub type Guard = dyn Fn(Option<&Object>) -> bool + Send + Sync;

/// What happened to an object, as an NB watch reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum NbEvent {
    Put {
        revision: Revision,
        object: Box<Object>,
    },
    Delete {
        revision: Revision,
        kind: Kind,
        id: String,
    },
    /// History before `compact_revision` is gone: list again (see [`WatchEvent::Relist`]).
    Relist {
        compact_revision: Revision,
    },
}

/// What a committed [`Tx`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct Committed {
    /// The store revision of the transaction (the current one if it wrote nothing).
    pub revision: Revision,
    /// Every object put, as stored, in the order of the [`Tx::put`] calls.
    pub objects: Vec<Stored>,
}

/// One NB operation: what it read (each object read through it is guarded), what it writes
/// (objects put and deleted, each with the same checks as [`Nb::put`] and [`Nb::delete`]), all
/// committed as one store transaction by [`Tx::commit`].
///
/// Listings ([`Tx::list`]) are not guarded: an operation that decides from the *absence* of
/// referrers guards them with [`Tx::guard_referrers`] before it lists. A commit that loses a
/// race against a write to something the operation read fails with [`NbError::Conflict`]: run
/// the whole operation again on a new `Tx` (reading afresh).
pub struct Tx {
    nb: Nb,
    attempt: u32,
    state: Mutex<TxState>,
}

#[derive(Default)]
struct TxState {
    /// Key -> mod revision the operation saw (0: absent); each becomes a compare.
    reads: BTreeMap<String, Revision>,
    writes: Vec<WriteOp>,
    /// Claim values [`Tx::fill_defaults`] chose before the commit (a race for them is a conflict
    /// of the whole operation, which may have used them).
    early: HashSet<String>,
    /// Referrers keys to bump ([`Tx::bump_referrers`]).
    bumps: std::collections::BTreeSet<String>,
    /// Resources whose quota the commit enforces ([`Tx::enforce_quota`]).
    quotas: std::collections::BTreeSet<QuotaResource>,
    /// Allocation cursors [`Tx::fill_defaults`] moved (key -> value, written at commit).
    cursors: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
// Puts are the common case; boxing them would buy nothing.
#[allow(clippy::large_enum_variant)]
enum WriteOp {
    Put(Object),
    Delete(Kind, String),
}

impl WriteOp {
    fn target(&self) -> (Kind, &str) {
        match self {
            WriteOp::Put(o) => (o.kind(), o.id()),
            WriteOp::Delete(k, id) => (*k, id),
        }
    }
}

/// What a [`Tx`] adds to its writes.
#[derive(Clone, Copy, Default)]
struct Extra<'a> {
    early: Option<&'a HashSet<String>>,
    bumps: Option<&'a std::collections::BTreeSet<String>>,
    quotas: Option<&'a std::collections::BTreeSet<QuotaResource>>,
    cursors: Option<&'a BTreeMap<String, String>>,
}

/// A write of a commit, with the caller's condition on the stored object.
struct Pending<'g> {
    op: WriteOp,
    guard: Option<&'g Guard>,
}

impl Tx {
    pub fn nb(&self) -> &Nb {
        &self.nb
    }

    fn state(&self) -> std::sync::MutexGuard<'_, TxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that the operation depends on `key` being at `revision`.
    fn record(&self, key: &str, revision: Revision) {
        self.state().reads.entry(key.to_owned()).or_insert(revision);
    }

    /// The object, if any; the commit fails if it changes (or appears) meanwhile.
    pub async fn get(&self, kind: Kind, id: &str) -> NbResult<Option<Stored>> {
        let key = tern_model::key(kind, id);
        let kv = self.nb.store.get(&key).await?;
        self.record(&key, kv.as_ref().map_or(0, |kv| kv.mod_revision));
        match kv {
            Some(kv) => {
                Ok(Some(Stored { object: decode(&kv.key, &kv.value)?, mod_revision: kv.mod_revision }))
            }
            None => Ok(None),
        }
    }

    /// Like [`Tx::get`], but a missing object is [`NbError::NotFound`].
    pub async fn fetch(&self, kind: Kind, id: &str) -> NbResult<Stored> {
        self.get(kind, id).await?.ok_or_else(|| NbError::NotFound { kind, id: id.to_owned() })
    }

    /// Every object of `kind` (not guarded: see the type's documentation).
    pub async fn list(&self, kind: Kind) -> NbResult<Vec<Stored>> {
        Ok(self.nb.list(kind).await?.0)
    }

    /// Makes the commit fail if any object starts referring to `kind`/`id` from now on. Call it
    /// before looking for the object's referrers when deciding from their absence.
    pub async fn guard_referrers(&self, kind: Kind, id: &str) -> NbResult<()> {
        let key = referrers_key(kind, id);
        let revision = self.nb.store.get(&key).await?.map_or(0, |kv| kv.mod_revision);
        self.record(&key, revision);
        Ok(())
    }

    /// Makes the commit bump the referrers key of `kind`/`id`: for an operation that starts to
    /// depend on that object in a way its reference fields do not show (a floating IP associated
    /// through a router's interface), so whoever guarded that object's referrers fails.
    pub fn bump_referrers(&self, kind: Kind, id: &str) {
        self.state().bumps.insert(referrers_key(kind, id));
    }

    /// Makes the commit fail with [`NbError::OverQuota`] if it would take a project's usage of
    /// `resource` past the project's limit (Neutron checks the quota of the resource a request
    /// creates; what the operation creates on the side, like a project's default security group,
    /// counts but is not checked). The usage counters are compared at commit, so concurrent
    /// operations never pass a limit together.
    pub fn enforce_quota(&self, resource: QuotaResource) {
        self.state().quotas.insert(resource);
    }

    /// Fills now what the commit would fill (id, MAC, fixed IP addresses, ...), for an operation
    /// that needs those values before it commits (a floating IP's address is its port's).
    pub async fn fill_defaults(&self, object: &mut Object) -> NbResult<()> {
        if object.id().is_empty() {
            object.set_id(object.default_id().unwrap_or_else(tern_model::generate_id));
        }
        // Addresses chosen early for other writes of this operation are taken (in any network).
        let taken: HashSet<IpAddr> = self.state().early.iter().filter_map(|v| v.parse().ok()).collect();
        let filled = self.nb.fill_defaults(object, self.attempt - 1, &taken).await?;
        let mut state = self.state();
        state.early.extend(filled.chosen);
        state.cursors.extend(filled.cursors);
        Ok(())
    }

    /// Creates or replaces `object` at commit, as [`Nb::put`] would. An empty id is given now.
    pub fn put(&self, mut object: Object) -> String {
        if object.id().is_empty() {
            object.set_id(object.default_id().unwrap_or_else(tern_model::generate_id));
        }
        let id = object.id().to_owned();
        self.state().writes.push(WriteOp::Put(object));
        id
    }

    /// Deletes the object at commit, as [`Nb::delete`] would (its claims and cascades included).
    pub fn delete(&self, kind: Kind, id: &str) {
        self.state().writes.push(WriteOp::Delete(kind, id.to_owned()));
    }

    /// Whether nothing is to be written.
    pub fn is_empty(&self) -> bool {
        self.state().writes.is_empty()
    }

    /// Checks and writes everything as one store transaction.
    pub async fn commit(self) -> NbResult<Committed> {
        let state = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        let writes: Vec<Pending<'_>> =
            state.writes.into_iter().map(|op| Pending { op, guard: None }).collect();
        let extra = Extra {
            early: Some(&state.early),
            bumps: Some(&state.bumps),
            quotas: Some(&state.quotas),
            cursors: Some(&state.cursors),
        };
        self.nb.commit_writes(&state.reads, &writes, extra, self.attempt).await
    }
}

/// The NB over a store.
#[derive(Clone)]
pub struct Nb {
    store: Arc<dyn Store>,
    /// Set once the port index was seen built (it stays built: see `index`).
    port_index_ready: Arc<std::sync::atomic::AtomicBool>,
}

impl Nb {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Nb { store, port_index_ready: Arc::default() }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A new operation (see [`Tx`]).
    pub fn tx(&self) -> Tx {
        self.tx_attempt(1)
    }

    /// A new operation that is the `attempt`-th try of the same request: after a lost race,
    /// addresses the NB picks are spread over the lowest free ones instead of taking the lowest.
    pub fn tx_attempt(&self, attempt: u32) -> Tx {
        Tx { nb: self.clone(), attempt: attempt.max(1), state: Mutex::default() }
    }

    /// Parses, validates and stores an object of `kind` given as JSON (create or replace).
    pub async fn put_json(&self, kind: Kind, json: &str) -> NbResult<Stored> {
        self.put(Object::from_json(kind, json)?).await
    }

    /// Creates or replaces an object. An empty `id` is generated (or derived, for kinds whose id
    /// is derived); a missing unique key is allocated; a Migration's epoch 0 becomes one above
    /// every earlier epoch; `revision_number` becomes the stored one
    /// plus one. A non-zero `revision_number` in the request must equal the stored one
    /// (Neutron's `If-Match: revision_number=N`), else [`NbError::Conflict`].
    pub async fn put(&self, object: Object) -> NbResult<Stored> {
        self.put_with(object, None).await
    }

    /// [`Nb::put`] only if `guard` accepts the stored object (`None`: there is none), checked
    /// atomically with the write ([`NbError::Conflict`] otherwise). For writers that decide from
    /// what they saw, like the controllers' migration agents: a guard can tell a record apart
    /// from a newer one that reuses its revision number after a delete.
    pub async fn put_if(&self, object: Object, guard: &Guard) -> NbResult<Stored> {
        self.put_with(object, Some(guard)).await
    }

    async fn put_with(&self, mut object: Object, guard: Option<&Guard>) -> NbResult<Stored> {
        if object.id().is_empty() {
            let id = object.default_id().unwrap_or_else(tern_model::generate_id);
            object.set_id(id);
        }
        let writes = [Pending { op: WriteOp::Put(object), guard }];
        let committed = self.commit_writes(&BTreeMap::new(), &writes, Extra::default(), 1).await?;
        committed
            .objects
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Backend("a put stored nothing".into()).into())
    }

    pub async fn get(&self, kind: Kind, id: &str) -> NbResult<Option<Stored>> {
        let key = tern_model::key(kind, id);
        match self.store.get(&key).await? {
            Some(kv) => {
                Ok(Some(Stored { object: decode(&kv.key, &kv.value)?, mod_revision: kv.mod_revision }))
            }
            None => Ok(None),
        }
    }

    /// Like [`Nb::get`], but a missing object is [`NbError::NotFound`].
    pub async fn fetch(&self, kind: Kind, id: &str) -> NbResult<Stored> {
        self.get(kind, id).await?.ok_or_else(|| NbError::NotFound { kind, id: id.to_owned() })
    }

    /// Every object of `kind`, sorted by id, and the store revision the listing reflects.
    pub async fn list(&self, kind: Kind) -> NbResult<(Vec<Stored>, Revision)> {
        let listing = self.store.list(&tern_model::kind_prefix(kind)).await?;
        let mut objects = Vec::with_capacity(listing.items.len());
        for kv in &listing.items {
            objects.push(Stored { object: decode(&kv.key, &kv.value)?, mod_revision: kv.mod_revision });
        }
        Ok((objects, listing.revision))
    }

    /// Every NB object of every kind, grouped by kind, at one revision.
    pub async fn dump(&self) -> NbResult<(BTreeMap<Kind, Vec<Object>>, Revision)> {
        let listing = self.store.list(tern_model::ROOT_PREFIX).await?;
        let mut all: BTreeMap<Kind, Vec<Object>> = BTreeMap::new();
        for kv in &listing.items {
            let object = decode(&kv.key, &kv.value)?;
            all.entry(object.kind()).or_default().push(object);
        }
        Ok((all, listing.revision))
    }

    /// Deletes an object; [`NbError::NotFound`] if there is none, [`NbError::InUse`] if other
    /// objects still refer to it (a network with ports, a subnet ports or routers use, a security
    /// group ports or other groups' rules use, a port floating IPs or routers use, a router
    /// floating IPs use). A network goes with its subnets, a port with its claims, bindings and
    /// migration record, in one transaction.
    pub async fn delete(&self, kind: Kind, id: &str) -> NbResult<Revision> {
        self.delete_checked(kind, id, None).await
    }

    /// [`Nb::delete`] only if `guard` accepts the stored object, checked atomically with the
    /// delete ([`NbError::Conflict`] otherwise): the delete half of a read-modify-write.
    pub async fn delete_if(&self, kind: Kind, id: &str, guard: &Guard) -> NbResult<Revision> {
        self.delete_checked(kind, id, Some(guard)).await
    }

    async fn delete_checked(&self, kind: Kind, id: &str, guard: Option<&Guard>) -> NbResult<Revision> {
        let writes = [Pending { op: WriteOp::Delete(kind, id.to_owned()), guard }];
        Ok(self.commit_writes(&BTreeMap::new(), &writes, Extra::default(), 1).await?.revision)
    }

    /// NB events with revision >= `from` (0: from now on), across every kind.
    pub async fn watch(&self, from: Revision) -> NbResult<NbWatch> {
        Ok(NbWatch { inner: self.store.watch(tern_model::ROOT_PREFIX, from).await? })
    }

    // --- the write path ---

    /// Prepares every write (checks, claims, guards) and commits them as one store transaction
    /// that also compares `reads`. A race lost on a key the NB chose to guard prepares again;
    /// one lost on a key the caller read, or on a written object itself, is [`NbError::Conflict`].
    async fn commit_writes(
        &self,
        reads: &BTreeMap<String, Revision>,
        writes: &[Pending<'_>],
        extra: Extra<'_>,
        attempt: u32,
    ) -> NbResult<Committed> {
        let no_early = HashSet::new();
        let early = extra.early.unwrap_or(&no_early);
        let mut targets = HashSet::new();
        for w in writes.iter() {
            let (kind, id) = w.op.target();
            if !targets.insert((kind, id.to_owned())) {
                return Err(StoreError::Backend(format!(
                    "{kind} {id:?} is written twice in one transaction"
                ))
                .into());
            }
        }
        if writes.is_empty() {
            return Ok(Committed { revision: self.store.revision().await?, objects: Vec::new() });
        }
        // Unique keys allocated for each write, kept across rounds (never allocated twice).
        let mut allocated: Vec<Option<u32>> = vec![None; writes.len()];
        let mut round = 0;
        // Races for an address lost so far (by the operation's earlier attempts too): addresses
        // picked after one are spread out (see `ipam`).
        let mut address_races = attempt.saturating_sub(1);
        loop {
            round += 1;
            let mut b = Builder::default();
            b.compares.extend(reads.iter().map(|(k, r)| (k.clone(), *r)));
            for key in extra.bumps.into_iter().flatten() {
                b.bump(key);
            }
            for (key, value) in extra.cursors.into_iter().flatten() {
                b.put_hint(key, value);
            }
            let mut objects = Vec::new();
            let view = BatchView::new(reads, writes);
            let mut prepared: Result<(), PutFailure> = Ok(());
            for (w, slot) in writes.iter().zip(allocated.iter_mut()) {
                let step = match &w.op {
                    WriteOp::Put(o) => self
                        .prepare_put(o, w.guard, address_races, early, &view, &mut b, slot)
                        .await
                        .map(|stored| objects.push(stored)),
                    WriteOp::Delete(kind, id) => self.prepare_delete(*kind, id, w.guard, &view, &mut b).await,
                };
                if let Err(e) = step {
                    prepared = Err(e);
                    break;
                }
            }
            if prepared.is_ok() {
                prepared = self.prepare_usage(&mut b, extra.quotas).await;
            }
            let lost = match prepared {
                Ok(()) => match self.store.txn(b.into_txn()).await {
                    Ok(revision) => {
                        for o in &mut objects {
                            o.mod_revision = revision;
                        }
                        return Ok(Committed { revision, objects });
                    }
                    Err(StoreError::Conflict { key, .. }) => Some(key),
                    Err(e) => return Err(e.into()),
                },
                // A refusal decided on what the operation read is only the answer while that is
                // still so; otherwise the operation lost a race and must decide again.
                Err(PutFailure::Error(e)) if e.is_bad_input() && !reads.is_empty() => {
                    return Err(match self.first_stale(reads).await? {
                        Some(key) => conflict_on(&key, writes),
                        None => e,
                    });
                }
                Err(PutFailure::Error(e)) => return Err(e),
                Err(PutFailure::Raced) => {
                    address_races += 1;
                    None
                }
                Err(PutFailure::Clash(key)) => Some(key),
            };
            if let Some(key) = lost {
                if is_address_claim(&key) {
                    address_races += 1;
                }
                let written = writes.iter().any(|w| {
                    let (k, id) = w.op.target();
                    tern_model::key(k, id) == key
                });
                if reads.contains_key(&key) || written {
                    return Err(conflict_on(&key, writes));
                }
            }
            if round >= PREPARE_ATTEMPTS {
                return Err(NbError::Exhausted { what: "attempts at a conflict-free write".into() });
            }
        }
    }

    /// The first key of `reads` no longer at the revision read.
    async fn first_stale(&self, reads: &BTreeMap<String, Revision>) -> NbResult<Option<String>> {
        for (key, revision) in reads {
            let now = self.store.get(key).await?.map_or(0, |kv| kv.mod_revision);
            if now != *revision {
                return Ok(Some(key.clone()));
            }
        }
        Ok(None)
    }

    /// One put of a commit: the object filled, validated, its revision number and references
    /// checked, its claims taken; adds its compares and writes to `b`.
    #[allow(clippy::too_many_arguments)]
    async fn prepare_put(
        &self,
        pending: &Object,
        guard: Option<&Guard>,
        address_races: u32,
        early: &HashSet<String>,
        view: &BatchView<'_>,
        b: &mut Builder,
        allocated: &mut Option<u32>,
    ) -> Result<Stored, PutFailure> {
        let mut object = pending.clone();
        let taken = match &object {
            Object::Port(p) => b.claimed_ips(&p.network_id),
            _ => HashSet::new(),
        };
        let filled = self.fill_defaults(&mut object, address_races, &taken).await?;
        for (key, value) in &filled.cursors {
            b.put_hint(key, value);
        }
        let auto_filled = filled.chosen;
        object.validate().map_err(ModelError::from)?;
        let kind = object.kind();
        let id = object.id().to_owned();
        let key = tern_model::key(kind, &id);
        let existing = self.store.get(&key).await?;
        let now = now_rfc3339();
        let expected = object.revision_number();
        let previous = match &existing {
            Some(kv) => Some(decode(&kv.key, &kv.value)?),
            None => None,
        };
        if guard.is_some_and(|g| !g(previous.as_ref())) {
            let actual = previous.as_ref().map_or(0, Object::revision_number);
            return Err(NbError::Conflict { kind, id, expected, actual }.into());
        }
        match &previous {
            Some(old) => {
                if expected != 0 && expected != old.revision_number() {
                    return Err(
                        NbError::Conflict { kind, id, expected, actual: old.revision_number() }.into()
                    );
                }
                if let (Some(stored), Some(given)) = (old.unique_key(), object.unique_key()) {
                    if given != 0 && given != stored {
                        return Err(NbError::Immutable {
                            kind,
                            id,
                            field: "unique_key".into(),
                            stored: stored.to_string(),
                            given: given.to_string(),
                        }
                        .into());
                    }
                    object.set_unique_key(stored);
                }
                object.set_revision_number(old.revision_number() + 1);
            }
            None => {
                if expected > 1 {
                    return Err(NbError::NotFound { kind, id }.into());
                }
                object.set_revision_number(1);
            }
        }
        self.check_references(&object, previous.as_ref(), view, b).await?;
        let created_at = previous.as_ref().and_then(|o| timestamp(o, "created_at"));
        let mut object = set_timestamps(object, created_at.as_deref().unwrap_or(&now), &now)?;
        if object.unique_key() == Some(0) {
            let unique = match *allocated {
                Some(k) => k,
                None => self.allocate_unique_key(kind).await?,
            };
            *allocated = Some(unique);
            object.set_unique_key(unique);
        }
        let object = with_derived_fields(object);
        let value = serde_json::to_vec(&object.to_json_value())
            .map_err(|e| NbError::Corrupt { key: key.clone(), message: e.to_string() })?;
        if let Some(old) = &previous {
            b.count(old, -1);
        }
        b.count(&object, 1);

        // The object (if still as read) and its claims on unique values.
        b.compare(&key, existing.as_ref().map_or(0, |kv| kv.mod_revision))?;
        b.put(&key, value)?;
        let new_claims = claims(&object);
        let old_claims = previous.as_ref().map(claims).unwrap_or_default();
        for claim in new_claims.iter().filter(|c| !old_claims.contains(c)) {
            match self.store.get(&claim.key).await? {
                Some(kv) if kv.value != id.as_bytes() => {
                    let holder = String::from_utf8_lossy(&kv.value).into_owned();
                    if view.deletes(kind, &holder) {
                        // Its holder goes in this same transaction: the value moves over.
                        b.compare(&claim.key, kv.mod_revision)?;
                        b.put(&claim.key, id.as_bytes().to_vec())?;
                    } else if auto_filled.contains(&claim.value) {
                        return Err(PutFailure::Raced);
                    } else if claim.field == "segmentation_id"
                        && allocated.is_some_and(|k| k.to_string() == claim.value)
                    {
                        // A network given the VNI explicitly took the unique key just allocated
                        // here: allocate another.
                        *allocated = None;
                        return Err(PutFailure::Raced);
                    } else if early.contains(&claim.value) {
                        // Chosen before the commit and maybe used since: the operation starts over.
                        return Err(NbError::Conflict { kind, id, expected, actual: 0 }.into());
                    } else {
                        return Err(NbError::Duplicate {
                            kind,
                            id,
                            field: claim.field.into(),
                            value: claim.value.clone(),
                            other: holder,
                        }
                        .into());
                    }
                }
                Some(kv) => b.compare(&claim.key, kv.mod_revision)?,
                None => {
                    b.compare(&claim.key, 0)?;
                    b.put(&claim.key, id.as_bytes().to_vec())?;
                }
            }
        }
        // Floating IP and VNI claims came after floating IPs and networks: an object an older
        // release wrote gets its claim at its next write (if the value is free; `tern db check`
        // reports it otherwise).
        for claim in new_claims.iter().filter(|c| {
            old_claims.contains(c) && (c.key.starts_with(FLOATINGIP_PREFIX) || c.key.starts_with(VNI_PREFIX))
        }) {
            if self.store.get(&claim.key).await?.is_none() {
                b.compare(&claim.key, 0)?;
                b.put(&claim.key, id.as_bytes().to_vec())?;
            }
        }
        for claim in old_claims.iter().filter(|c| !new_claims.contains(c)) {
            // Released only if it is ours (a store older releases left inconsistent may differ).
            if let Some(kv) = self.store.get(&claim.key).await?.filter(|kv| kv.value == id.as_bytes()) {
                b.compare(&claim.key, kv.mod_revision)?;
                b.delete(&claim.key);
            }
        }
        // Its index entries (see `index`): all it needs, written again each time (so a port of a
        // store from before the index gets them at its next write), and none it no longer needs.
        let entries = index::index_keys(&object);
        for key in &entries {
            b.put(key, Vec::new())?;
        }
        for key in previous.as_ref().map(index::index_keys).unwrap_or_default() {
            if !entries.contains(&key) {
                b.delete(&key);
            }
        }
        Ok(Stored { object, mod_revision: 0 })
    }

    /// One delete of a commit: refused while other objects (outside this commit) refer to the
    /// object; its claims, referrers key and cascaded objects go with it.
    async fn prepare_delete(
        &self,
        kind: Kind,
        id: &str,
        guard: Option<&Guard>,
        view: &BatchView<'_>,
        b: &mut Builder,
    ) -> Result<(), PutFailure> {
        let key = tern_model::key(kind, id);
        let Some(kv) = self.store.get(&key).await? else {
            return Err(NbError::NotFound { kind, id: id.to_owned() }.into());
        };
        let object = decode(&kv.key, &kv.value)?;
        if guard.is_some_and(|g| !g(Some(&object))) {
            let actual = object.revision_number();
            return Err(NbError::Conflict { kind, id: id.to_owned(), expected: actual, actual }.into());
        }
        let in_use = |by_kind, by_id: &str| -> PutFailure {
            NbError::InUse { kind, id: id.to_owned(), by_kind, by_id: by_id.to_owned() }.into()
        };
        b.compare(&key, kv.mod_revision)?;
        b.delete(&key);
        b.count(&object, -1);
        // Before looking for referrers: whoever starts referring to it from now on bumps this.
        self.drop_referrers_key(kind, id, view, b).await?;
        for claim in claims(&object) {
            if let Some(c) = self.store.get(&claim.key).await? {
                if c.value == id.as_bytes() {
                    b.compare(&claim.key, c.mod_revision)?;
                    b.delete(&claim.key);
                }
            }
        }
        for key in index::index_keys(&object) {
            b.delete(&key);
        }
        match &object {
            Object::Network(_) => {
                for claim in self.store.list(&network_index(id)).await?.items {
                    let holder = String::from_utf8_lossy(&claim.value).into_owned();
                    if !view.deletes(Kind::Port, &holder) {
                        return Err(in_use(Kind::Port, &holder));
                    }
                }
                for s in self.list(Kind::Subnet).await?.0 {
                    let Object::Subnet(sub) = &s.object else { continue };
                    if sub.network_id == id && view.get(Kind::Subnet, &sub.id).is_none() {
                        let skey = tern_model::key(Kind::Subnet, &sub.id);
                        b.compare(&skey, s.mod_revision)?;
                        b.delete(&skey);
                        b.count(&s.object, -1);
                        self.drop_referrers_key(Kind::Subnet, &sub.id, view, b).await?;
                        b.delete(&ipam::cursor_key(&sub.id));
                    }
                }
                b.delete(&subnet_set_key(id));
            }
            Object::Subnet(subnet) => {
                b.delete(&ipam::cursor_key(id));
                let used = self.store.list(&format!("{}ip/", network_index(&subnet.network_id))).await?;
                for claim in &used.items {
                    let ip = claim.key.rsplit('/').next().and_then(|ip| ip.parse::<IpAddr>().ok());
                    let holder = String::from_utf8_lossy(&claim.value).into_owned();
                    if ip.is_some_and(|ip| subnet.cidr.contains(&ip)) && !view.deletes(Kind::Port, &holder) {
                        return Err(in_use(Kind::Port, &holder));
                    }
                }
                for o in self.scan(Kind::Router, view).await? {
                    if matches!(&o, Object::Router(r) if r.interfaces.iter().any(|i| i.subnet_id == id)) {
                        return Err(in_use(Kind::Router, o.id()));
                    }
                }
            }
            Object::SecurityGroup(_) => {
                for o in self.scan(Kind::Port, view).await? {
                    if matches!(&o, Object::Port(p) if p.security_groups.iter().any(|g| g == id)) {
                        return Err(in_use(Kind::Port, o.id()));
                    }
                }
                for o in self.scan(Kind::SecurityGroup, view).await? {
                    let remote = |g: &tern_model::SecurityGroup| {
                        g.id != id
                            && g.security_group_rules.iter().any(|r| r.remote_group_id.as_deref() == Some(id))
                    };
                    if matches!(&o, Object::SecurityGroup(g) if remote(g)) {
                        return Err(in_use(Kind::SecurityGroup, o.id()));
                    }
                }
            }
            Object::Port(_) => {
                for o in self.scan(Kind::FloatingIp, view).await? {
                    if matches!(&o, Object::FloatingIp(f) if f.port_id.as_deref() == Some(id)) {
                        return Err(in_use(Kind::FloatingIp, o.id()));
                    }
                }
                for o in self.scan(Kind::Router, view).await? {
                    if matches!(&o, Object::Router(r) if r.interfaces.iter().any(|i| i.port_id == id)) {
                        return Err(in_use(Kind::Router, o.id()));
                    }
                }
                // Its bindings and migration record go with it.
                let prefix = tern_model::key(Kind::PortBinding, &format!("{id}@"));
                for kv in self.store.list(&prefix).await?.items {
                    let binding = decode(&kv.key, &kv.value)?;
                    let bound_here = matches!(&binding, Object::PortBinding(pb) if pb.port_id == id);
                    if bound_here && view.get(Kind::PortBinding, binding.id()).is_none() {
                        b.compare(&kv.key, kv.mod_revision)?;
                        b.delete(&kv.key);
                    }
                }
                let mkey = tern_model::key(Kind::Migration, id);
                if let Some(m) = self.store.get(&mkey).await? {
                    if view.get(Kind::Migration, id).is_none() {
                        b.compare(&mkey, m.mod_revision)?;
                        b.delete(&mkey);
                    }
                }
            }
            Object::Router(_) => {
                for o in self.scan(Kind::FloatingIp, view).await? {
                    if matches!(&o, Object::FloatingIp(f) if f.router_id.as_deref() == Some(id)) {
                        return Err(in_use(Kind::FloatingIp, o.id()));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Guards and deletes the referrers key of an object being deleted, at the revision the
    /// operation saw it (if it guarded it) or now.
    async fn drop_referrers_key(
        &self,
        kind: Kind,
        id: &str,
        view: &BatchView<'_>,
        b: &mut Builder,
    ) -> Result<(), PutFailure> {
        if !referable(kind) {
            return Ok(());
        }
        let key = referrers_key(kind, id);
        let revision = match view.reads.get(&key) {
            Some(r) => *r,
            None => self.store.get(&key).await?.map_or(0, |kv| kv.mod_revision),
        };
        b.compare(&key, revision)?;
        b.delete(&key);
        Ok(())
    }

    /// Every object of `kind` as it will be once this commit's writes are applied.
    async fn scan(&self, kind: Kind, view: &BatchView<'_>) -> NbResult<Vec<Object>> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for s in self.list(kind).await?.0 {
            match view.get(kind, s.object.id()) {
                Some(Some(o)) => out.push(o.clone()),
                Some(None) => {}
                None => out.push(s.object.clone()),
            }
            seen.insert(s.object.id().to_owned());
        }
        for ((k, id), o) in &view.overlay {
            if *k == kind && !seen.contains(id) {
                out.extend(o.cloned());
            }
        }
        Ok(out)
    }

    // --- usage and quotas ---

    /// Writes the usage changes of a commit's writes: each counter that changes is compared at
    /// the revision read (absent: counted from the objects) and rewritten; a counter of an
    /// enforced resource that would pass the project's limit fails the commit with
    /// [`NbError::OverQuota`].
    async fn prepare_usage(
        &self,
        b: &mut Builder,
        enforced: Option<&std::collections::BTreeSet<QuotaResource>>,
    ) -> Result<(), PutFailure> {
        let changes = std::mem::take(&mut b.usage);
        let mut limits: HashMap<String, QuotaLimits> = HashMap::new();
        let mut over: BTreeMap<String, Vec<QuotaResource>> = BTreeMap::new();
        for ((project, resource), delta) in changes {
            if delta == 0 {
                continue;
            }
            let key = usage_key(resource, &project);
            let (used, revision) = self.read_usage(resource, &project).await?;
            let now = used.saturating_add_signed(delta);
            if delta > 0 && enforced.is_some_and(|e| e.contains(&resource)) {
                if !limits.contains_key(&project) {
                    limits.insert(project.clone(), self.quota_limits(&project).await?);
                }
                let allowed = limits.get(&project).is_none_or(|l| l.allows(resource, used, delta as u64));
                if !allowed {
                    over.entry(project.clone()).or_default().push(resource);
                    continue;
                }
            }
            b.compare(&key, revision)?;
            b.put(&key, now.to_string().into_bytes())?;
        }
        if let Some((project, resources)) = over.into_iter().next() {
            return Err(NbError::OverQuota { project, resources }.into());
        }
        Ok(())
    }

    /// A project's usage of `resource` and the revision of its counter (0: there is none yet; the
    /// usage is then counted from the objects, and a commit comparing the counter's absence
    /// guards that count, since every write that changes it creates the counter).
    async fn read_usage(&self, resource: QuotaResource, project: &str) -> NbResult<(u64, Revision)> {
        let key = usage_key(resource, project);
        let kv = self.store.get(&key).await?;
        if let Some(kv) = &kv {
            if let Some(n) = std::str::from_utf8(&kv.value).ok().and_then(|t| t.parse().ok()) {
                return Ok((n, kv.mod_revision));
            }
        }
        // None yet, or unreadable (then rewritten from the count; `tern db check` reports it).
        let (objects, _) = self.list(resource.kind()).await?;
        let used = quota::count(objects.iter().map(|s| &s.object), project, resource);
        Ok((used, kv.map_or(0, |kv| kv.mod_revision)))
    }

    /// A project's own limits (empty: Neutron's defaults everywhere).
    pub async fn quota_limits(&self, project: &str) -> NbResult<QuotaLimits> {
        Ok(self.read_quota_limits(project).await?.0)
    }

    async fn read_quota_limits(&self, project: &str) -> NbResult<(QuotaLimits, Revision)> {
        let key = quota_key(project);
        match self.store.get(&key).await? {
            Some(kv) => {
                let limits = serde_json::from_slice(&kv.value)
                    .map_err(|e| NbError::Corrupt { key: key.clone(), message: e.to_string() })?;
                Ok((limits, kv.mod_revision))
            }
            None => Ok((QuotaLimits::default(), 0)),
        }
    }

    /// Every project with limits of its own, sorted by project.
    pub async fn all_quota_limits(&self) -> NbResult<Vec<(String, QuotaLimits)>> {
        let listing = self.store.list(QUOTA_PREFIX).await?;
        let mut out = Vec::with_capacity(listing.items.len());
        for kv in listing.items {
            let Some(project) = kv.key.strip_prefix(QUOTA_PREFIX) else { continue };
            let limits = serde_json::from_slice(&kv.value)
                .map_err(|e| NbError::Corrupt { key: kv.key.clone(), message: e.to_string() })?;
            out.push((project.to_owned(), limits));
        }
        Ok(out)
    }

    /// How much of each resource `project` uses.
    pub async fn quota_usage(&self, project: &str) -> NbResult<BTreeMap<QuotaResource, u64>> {
        let mut out = BTreeMap::new();
        for r in QuotaResource::ALL {
            out.insert(r, self.read_usage(r, project).await?.0);
        }
        Ok(out)
    }

    /// Sets some of `project`'s limits (the others stay as they are) and returns them all. Unless
    /// `force`, a limit below what the project uses is refused ([`NbError::QuotaBelowUsage`]),
    /// decided on usage counters the write compares.
    pub async fn set_quota_limits(
        &self,
        project: &str,
        changes: &BTreeMap<QuotaResource, i64>,
        force: bool,
    ) -> NbResult<QuotaLimits> {
        let key = quota_key(project);
        for _ in 0..PREPARE_ATTEMPTS {
            let (mut limits, revision) = self.read_quota_limits(project).await?;
            let mut txn = Txn::new().compare(&key, revision);
            for (&resource, &limit) in changes {
                if !force && limit >= 0 {
                    let (used, counter) = self.read_usage(resource, project).await?;
                    if used > limit as u64 {
                        return Err(NbError::QuotaBelowUsage {
                            project: project.to_owned(),
                            resource,
                            limit,
                            used,
                        });
                    }
                    txn = txn.compare(usage_key(resource, project), counter);
                }
                limits.0.insert(resource, limit);
            }
            let value = serde_json::to_vec(&limits).map_err(|e| StoreError::Backend(e.to_string()))?;
            match self.store.txn(txn.put(&key, value)).await {
                Ok(_) => return Ok(limits),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(NbError::Exhausted { what: "attempts at a conflict-free write".into() })
    }

    /// Deletes `project`'s own limits (back to the defaults); false if it had none.
    pub async fn delete_quota_limits(&self, project: &str) -> NbResult<bool> {
        Ok(self.store.delete(&quota_key(project)).await?.is_some())
    }

    // --- helpers of put ---

    /// Fills what Neutron fills when a client leaves it out (port MACs and fixed IP addresses).
    /// Returns the values it chose (as claim values), which a race may make it choose again, and
    /// the allocation cursors it moved (see `ipam`). `address_races`: how many races for an
    /// address this write already lost (0: the first free address from the subnet's cursor;
    /// more: one further on, at random, so concurrent writers spread out instead of colliding
    /// again). `taken`: addresses the transaction's other writes claim.
    async fn fill_defaults(
        &self,
        object: &mut Object,
        address_races: u32,
        taken: &HashSet<IpAddr>,
    ) -> NbResult<Filled> {
        // A new migration's epoch: above the store's current revision, hence above the epoch of
        // every earlier record of the port (each at most the revision it was written at), even
        // of records already deleted that the writer never saw.
        if let Object::Migration(m) = object {
            if m.epoch == 0 {
                let key = tern_model::key(Kind::Migration, &m.port_id);
                m.epoch = self.store.list(&key).await?.revision + 1;
            }
            return Ok(Filled::default());
        }
        let Object::Port(port) = object else { return Ok(Filled::default()) };
        let mut filled = Filled::default();
        if port.mac_address.is_empty() {
            port.mac_address = tern_model::random_mac();
            filled.chosen.push(port.mac_address.clone());
        }
        if port.fixed_ips.iter().all(|ip| ip.ip_address.is_some()) {
            return Ok(filled);
        }
        let mut used: HashSet<IpAddr> = taken.clone();
        used.extend(port.fixed_ips.iter().filter_map(|f| f.ip_address));
        for (i, fixed) in port.fixed_ips.iter_mut().enumerate() {
            if fixed.ip_address.is_some() {
                continue;
            }
            let Some(Object::Subnet(subnet)) =
                self.get(Kind::Subnet, &fixed.subnet_id).await?.map(|s| s.object)
            else {
                return Err(NbError::MissingReference {
                    kind: Kind::Port,
                    id: port.id.clone(),
                    field: format!("fixed_ips[{i}].subnet_id"),
                    target: Kind::Subnet,
                    target_id: fixed.subnet_id.clone(),
                });
            };
            let picked = self.pick_address(&port.id, &port.network_id, &subnet, address_races, &used).await?;
            used.insert(picked.ip);
            fixed.ip_address = Some(picked.ip);
            filled.chosen.push(picked.ip.to_string());
            filled.cursors.extend(picked.cursor);
        }
        Ok(filled)
    }

    /// Checks that the objects `object` refers to exist (and fit, for subnets and fixed IPs), and
    /// guards the references it starts to hold (see the module documentation).
    async fn check_references(
        &self,
        object: &Object,
        previous: Option<&Object>,
        view: &BatchView<'_>,
        b: &mut Builder,
    ) -> Result<(), PutFailure> {
        let kind = object.kind();
        let id = object.id();
        // A new subnet: guard its network's subnet set before looking for overlaps.
        if let (Object::Subnet(subnet), None) = (object, previous) {
            let key = subnet_set_key(&subnet.network_id);
            let revision = self.store.get(&key).await?.map_or(0, |kv| kv.mod_revision);
            b.compare(&key, revision)?;
            b.bump(&key);
        }
        let held: HashSet<(Kind, String)> =
            previous.map(references).unwrap_or_default().into_iter().map(|r| (r.kind, r.id)).collect();
        let mut targets: HashMap<(Kind, String), Object> = HashMap::new();
        for r in references(object) {
            if targets.contains_key(&(r.kind, r.id.clone())) {
                continue;
            }
            let target = match view.get(r.kind, &r.id) {
                // Written by this same transaction.
                Some(o) => o.cloned(),
                None => {
                    let key = tern_model::key(r.kind, &r.id);
                    match self.store.get(&key).await? {
                        Some(kv) => {
                            if !held.contains(&(r.kind, r.id.clone())) {
                                b.compare(&key, kv.mod_revision)?;
                                b.bump(&referrers_key(r.kind, &r.id));
                            }
                            Some(decode(&kv.key, &kv.value)?)
                        }
                        None => None,
                    }
                }
            };
            let Some(target) = target else {
                return Err(NbError::MissingReference {
                    kind,
                    id: id.to_owned(),
                    field: r.field,
                    target: r.kind,
                    target_id: r.id,
                }
                .into());
            };
            targets.insert((r.kind, r.id), target);
        }
        let target = |k: Kind, id: &str| targets.get(&(k, id.to_owned()));
        match object {
            Object::Subnet(subnet) => {
                for other in self.scan(Kind::Subnet, view).await? {
                    if let Object::Subnet(o) = &other {
                        let overlaps = o.cidr.contains(&subnet.cidr.network())
                            || subnet.cidr.contains(&o.cidr.network());
                        if o.id != subnet.id && o.network_id == subnet.network_id && overlaps {
                            return Err(NbError::Duplicate {
                                kind,
                                id: id.to_owned(),
                                field: "cidr".into(),
                                value: subnet.cidr.to_string(),
                                other: o.id.clone(),
                            }
                            .into());
                        }
                    }
                }
                if let Some(Object::Network(network)) = target(Kind::Network, &subnet.network_id) {
                    tern_model::check_subnet_network(subnet, network).map_err(ModelError::from)?;
                }
            }
            Object::Port(port) => {
                let subnets: Vec<tern_model::Subnet> = port
                    .fixed_ips
                    .iter()
                    .filter_map(|f| match target(Kind::Subnet, &f.subnet_id) {
                        Some(Object::Subnet(s)) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
                tern_model::check_fixed_ips(port, &subnets).map_err(ModelError::from)?;
            }
            Object::Network(network) => {
                // A VNI the network already had was checked when it got it (and is claimed).
                let had = match previous {
                    Some(Object::Network(old)) => old.segmentation_id,
                    _ => None,
                };
                if let Some(vni) = network.segmentation_id.filter(|&vni| had != Some(vni)) {
                    let (networks, _) = self.list(Kind::Network).await?;
                    if let Some(other) = networks.iter().find(|s| match &s.object {
                        Object::Network(n) => n.id != network.id && n.segmentation_id == Some(vni),
                        _ => false,
                    }) {
                        return Err(NbError::Duplicate {
                            kind,
                            id: id.to_owned(),
                            field: "segmentation_id".into(),
                            value: vni.to_string(),
                            other: other.object.id().to_owned(),
                        }
                        .into());
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Allocates the next unique key of `kind` (compare-and-swap on a counter; never reused).
    async fn allocate_unique_key(&self, kind: Kind) -> NbResult<u32> {
        let key = format!("{UNIQUE_KEY_PREFIX}{}", kind.name());
        loop {
            let current = self.store.get(&key).await?;
            let last: u32 = match &current {
                Some(kv) => std::str::from_utf8(&kv.value)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| NbError::Corrupt { key: key.clone(), message: "not a number".into() })?,
                None => 0,
            };
            // Skip keys a network's explicit segmentation_id may already use.
            let mut next = last + 1;
            if kind == Kind::Network {
                let (networks, _) = self.list(Kind::Network).await?;
                let taken: HashSet<u32> = networks
                    .iter()
                    .filter_map(|s| match &s.object {
                        Object::Network(n) => n.segmentation_id,
                        _ => None,
                    })
                    .collect();
                while taken.contains(&next) {
                    next += 1;
                }
            }
            if next > MAX_UNIQUE_KEY {
                return Err(NbError::Exhausted { what: format!("{} unique key", kind.name()) });
            }
            let value = next.to_string().into_bytes();
            let written = match current {
                Some(kv) => self.store.update(&key, value, kv.mod_revision).await,
                None => self.store.create(&key, value, None).await,
            };
            match written {
                Ok(_) => return Ok(next),
                Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A watch over every NB object, in revision order.
pub struct NbWatch {
    inner: Watch,
}

impl NbWatch {
    pub async fn next(&mut self) -> Option<NbResult<NbEvent>> {
        loop {
            let ev = match self.inner.next().await? {
                Ok(ev) => ev,
                Err(e) => return Some(Err(e.into())),
            };
            return Some(match ev {
                WatchEvent::Put(kv) => {
                    if tern_model::parse_key(&kv.key).is_none() {
                        continue;
                    }
                    decode(&kv.key, &kv.value)
                        .map(|object| NbEvent::Put { revision: kv.mod_revision, object: Box::new(object) })
                }
                WatchEvent::Delete { key, revision } => {
                    let Some((kind, id)) = tern_model::parse_key(&key) else { continue };
                    Ok(NbEvent::Delete { revision, kind, id: id.to_owned() })
                }
                WatchEvent::Relist { compact_revision } => Ok(NbEvent::Relist { compact_revision }),
            });
        }
    }
}

/// Why one attempt at preparing a commit failed: for good, because a concurrent writer won a race
/// the NB can retry on its own, or because two guards of the commit disagree on a key.
enum PutFailure {
    Error(NbError),
    Raced,
    Clash(String),
}

impl<E: Into<NbError>> From<E> for PutFailure {
    fn from(e: E) -> Self {
        PutFailure::Error(e.into())
    }
}

/// What the writes of one commit see of each other.
struct BatchView<'a> {
    reads: &'a BTreeMap<String, Revision>,
    /// The object each write puts (`None`: deletes), by kind and id.
    overlay: HashMap<(Kind, String), Option<&'a Object>>,
}

impl<'a> BatchView<'a> {
    fn new(reads: &'a BTreeMap<String, Revision>, writes: &'a [Pending<'_>]) -> Self {
        let overlay = writes
            .iter()
            .map(|w| match &w.op {
                WriteOp::Put(o) => ((o.kind(), o.id().to_owned()), Some(o)),
                WriteOp::Delete(k, id) => ((*k, id.clone()), None),
            })
            .collect();
        BatchView { reads, overlay }
    }

    /// `Some(object)` if this commit puts it, `Some(None)` if it deletes it, `None` if it does
    /// not write it.
    fn get(&self, kind: Kind, id: &str) -> Option<Option<&'a Object>> {
        self.overlay.get(&(kind, id.to_owned())).copied()
    }

    fn deletes(&self, kind: Kind, id: &str) -> bool {
        matches!(self.get(kind, id), Some(None))
    }
}

/// The compares and writes of one store transaction, each key at most once.
#[derive(Default)]
struct Builder {
    compares: BTreeMap<String, Revision>,
    ops: Vec<TxnOp>,
    index: HashMap<String, usize>,
    /// How the writes change each project's usage of each resource.
    usage: BTreeMap<(String, QuotaResource), i64>,
}

impl Builder {
    /// Adds what `object` counts for to the usage changes, `sign` times (1: written, -1: gone).
    fn count(&mut self, object: &Object, sign: i64) {
        if let Some((project, counts)) = quota::usage(object) {
            for (resource, n) in counts {
                *self.usage.entry((project.to_owned(), resource)).or_default() += sign * n as i64;
            }
        }
    }

    /// Requires `key` at `revision`; two different requirements on one key cannot both hold.
    fn compare(&mut self, key: &str, revision: Revision) -> Result<(), PutFailure> {
        match self.compares.get(key) {
            Some(r) if *r != revision => Err(PutFailure::Clash(key.to_owned())),
            Some(_) => Ok(()),
            None => {
                self.compares.insert(key.to_owned(), revision);
                Ok(())
            }
        }
    }

    /// Writes `key` (replacing a delete of it: a claim handed over within the transaction).
    fn put(&mut self, key: &str, value: Vec<u8>) -> Result<(), PutFailure> {
        let op = TxnOp::Put { key: key.to_owned(), value, lease: None };
        match self.index.get(key) {
            Some(&i) => match &self.ops[i] {
                TxnOp::Delete { .. } => {
                    self.ops[i] = op;
                    Ok(())
                }
                same if *same == op => Ok(()),
                _ => Err(StoreError::Backend(format!("one transaction writes {key:?} twice")).into()),
            },
            None => {
                self.index.insert(key.to_owned(), self.ops.len());
                self.ops.push(op);
                Ok(())
            }
        }
    }

    /// Writes a hint (an allocation cursor), compared with nothing: the last value given wins;
    /// a delete of the key in this transaction stays (its subnet goes).
    fn put_hint(&mut self, key: &str, value: &str) {
        let op = TxnOp::Put { key: key.to_owned(), value: value.as_bytes().to_vec(), lease: None };
        match self.index.get(key) {
            Some(&i) => {
                if matches!(self.ops[i], TxnOp::Put { .. }) {
                    self.ops[i] = op;
                }
            }
            None => {
                self.index.insert(key.to_owned(), self.ops.len());
                self.ops.push(op);
            }
        }
    }

    /// The addresses this transaction claims so far in a network.
    fn claimed_ips(&self, network_id: &str) -> HashSet<IpAddr> {
        let prefix = format!("{}ip/", network_index(network_id));
        self.ops
            .iter()
            .filter_map(|op| match op {
                TxnOp::Put { key, .. } => key.strip_prefix(&prefix)?.parse().ok(),
                TxnOp::Delete { .. } => None,
            })
            .collect()
    }

    /// Gives a guard key a new mod revision (unless this transaction writes it anyway).
    fn bump(&mut self, key: &str) {
        if !self.index.contains_key(key) {
            self.index.insert(key.to_owned(), self.ops.len());
            self.ops.push(TxnOp::Put { key: key.to_owned(), value: Vec::new(), lease: None });
        }
    }

    /// Deletes `key` (unless this transaction writes it: a put wins).
    fn delete(&mut self, key: &str) {
        if !self.index.contains_key(key) {
            self.index.insert(key.to_owned(), self.ops.len());
            self.ops.push(TxnOp::Delete { key: key.to_owned() });
        }
    }

    fn into_txn(self) -> Txn {
        Txn {
            compares: self
                .compares
                .into_iter()
                .map(|(key, mod_revision)| crate::Compare { key, mod_revision })
                .collect(),
            ops: self.ops,
        }
    }
}

/// What [`Nb::fill_defaults`] chose.
#[derive(Default)]
struct Filled {
    /// The values chosen, as claim values.
    chosen: Vec<String>,
    /// Allocation cursors moved: key -> value.
    cursors: Vec<(String, String)>,
}

/// Whether `key` claims an address in a network (a race lost on it is a race for an address).
fn is_address_claim(key: &str) -> bool {
    key.strip_prefix(INDEX_PREFIX)
        .and_then(|k| k.strip_prefix("network/"))
        .is_some_and(|k| k.split('/').nth(1) == Some("ip"))
}

/// Where the values unique within a network are claimed: `<prefix>ip/<ip>` and `<prefix>mac/<mac>`,
/// each holding the id of the port that owns it.
fn network_index(network_id: &str) -> String {
    format!("{INDEX_PREFIX}network/{network_id}/")
}

/// The referrers key of an object: bumped by every write that starts referring to it, compared
/// (and deleted) by its delete.
pub fn referrers_key(kind: Kind, id: &str) -> String {
    format!("{REF_PREFIX}{}/{id}", kind.name())
}

/// The usage counter of `project`'s `resource` (see [`USAGE_PREFIX`]).
pub fn usage_key(resource: QuotaResource, project: &str) -> String {
    format!("{USAGE_PREFIX}{}/{project}", resource.name())
}

/// The resource and project of a usage counter key.
pub fn parse_usage_key(key: &str) -> Option<(QuotaResource, &str)> {
    let (resource, project) = key.strip_prefix(USAGE_PREFIX)?.split_once('/')?;
    Some((QuotaResource::from_name(resource)?, project))
}

/// Where `project`'s own quota limits are (see [`QUOTA_PREFIX`]).
pub fn quota_key(project: &str) -> String {
    format!("{QUOTA_PREFIX}{project}")
}

/// The subnet-set key of a network: compared and bumped by every subnet created on it.
pub fn subnet_set_key(network_id: &str) -> String {
    format!("{SUBNETS_PREFIX}{network_id}")
}

/// The object a guard key (referrers or subnet-set key) or object key belongs to.
pub fn guarded_object(key: &str) -> Option<(Kind, String)> {
    if let Some((kind, id)) = tern_model::parse_key(key) {
        return Some((kind, id.to_owned()));
    }
    if let Some(rest) = key.strip_prefix(REF_PREFIX) {
        let (kind, id) = rest.split_once('/')?;
        return Some((Kind::from_name(kind)?, id.to_owned()));
    }
    key.strip_prefix(SUBNETS_PREFIX).map(|id| (Kind::Network, id.to_owned()))
}

/// The conflict of a commit that lost a race on `key`: about the object the key guards (the
/// first write's when it guards none), with the revision number the write expected.
fn conflict_on(key: &str, writes: &[Pending<'_>]) -> NbError {
    let first = writes.first().map(|w| (w.op.target().0, w.op.target().1.to_owned()));
    let (kind, id) = match guarded_object(key).or(first) {
        Some(target) => target,
        None => {
            return StoreError::Backend(format!("a transaction of no write lost a race on {key:?}")).into()
        }
    };
    let expected = writes
        .iter()
        .find_map(|w| match &w.op {
            WriteOp::Put(o) if o.kind() == kind && o.id() == id => Some(o.revision_number()),
            _ => None,
        })
        .unwrap_or(0);
    NbError::Conflict { kind, id, expected, actual: 0 }
}

/// Whether `key` is a claim (see [`claims`]) rather than a guard key.
pub fn is_claim_key(key: &str) -> bool {
    key.starts_with(&format!("{INDEX_PREFIX}network/"))
        || key.starts_with(FLOATINGIP_PREFIX)
        || key.starts_with(VNI_PREFIX)
}

/// Kinds other objects refer to (and whose deletes look for referrers).
fn referable(kind: Kind) -> bool {
    matches!(kind, Kind::Network | Kind::Subnet | Kind::Port | Kind::Router | Kind::SecurityGroup)
}

/// A value an object owns exclusively (e.g. a fixed IP within its network): the key claiming it
/// holds the owner's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub key: String,
    pub field: &'static str,
    pub value: String,
}

/// The unique values an object claims: a port's fixed IPs and MAC within its network; a floating
/// IP's fixed IP (port and address: one floating IP per fixed IP).
pub fn claims(object: &Object) -> Vec<Claim> {
    match object {
        Object::Port(port) => {
            let index = network_index(&port.network_id);
            let mut claims: Vec<Claim> = port
                .fixed_ips
                .iter()
                .filter_map(|f| f.ip_address)
                .map(|ip| Claim { key: format!("{index}ip/{ip}"), field: "fixed_ips", value: ip.to_string() })
                .collect();
            if !port.mac_address.is_empty() {
                let mac = port.mac_address.to_ascii_lowercase();
                claims.push(Claim { key: format!("{index}mac/{mac}"), field: "mac_address", value: mac });
            }
            claims
        }
        Object::Network(n) => match n.vni() {
            Some(vni) => {
                vec![Claim {
                    key: format!("{VNI_PREFIX}{vni}"),
                    field: "segmentation_id",
                    value: vni.to_string(),
                }]
            }
            None => Vec::new(),
        },
        Object::FloatingIp(f) => match (&f.port_id, f.fixed_ip_address) {
            (Some(port), Some(ip)) => vec![Claim {
                key: format!("{FLOATINGIP_PREFIX}{port}/{ip}"),
                field: "fixed_ip_address",
                value: ip.to_string(),
            }],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// One reference of an object to another: the field holding it and the object it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub field: String,
    pub kind: Kind,
    pub id: String,
}

/// Every reference `object` holds, in field order (a rule's reference to its own group is none).
pub fn references(object: &Object) -> Vec<Reference> {
    let r = |field: String, kind: Kind, id: &str| Reference { field, kind, id: id.to_owned() };
    let mut out = Vec::new();
    match object {
        Object::Subnet(s) => out.push(r("network_id".into(), Kind::Network, &s.network_id)),
        Object::Port(p) => {
            out.push(r("network_id".into(), Kind::Network, &p.network_id));
            for (i, f) in p.fixed_ips.iter().enumerate() {
                out.push(r(format!("fixed_ips[{i}].subnet_id"), Kind::Subnet, &f.subnet_id));
            }
            for (i, g) in p.security_groups.iter().enumerate() {
                out.push(r(format!("security_groups[{i}]"), Kind::SecurityGroup, g));
            }
        }
        Object::Router(rt) => {
            for (i, itf) in rt.interfaces.iter().enumerate() {
                out.push(r(format!("interfaces[{i}].subnet_id"), Kind::Subnet, &itf.subnet_id));
                out.push(r(format!("interfaces[{i}].port_id"), Kind::Port, &itf.port_id));
            }
            if let Some(gw) = &rt.external_gateway_info {
                out.push(r("external_gateway_info.network_id".into(), Kind::Network, &gw.network_id));
            }
        }
        Object::FloatingIp(f) => {
            out.push(r("floating_network_id".into(), Kind::Network, &f.floating_network_id));
            if let Some(p) = &f.port_id {
                out.push(r("port_id".into(), Kind::Port, p));
            }
            if let Some(rt) = &f.router_id {
                out.push(r("router_id".into(), Kind::Router, rt));
            }
        }
        Object::SecurityGroup(g) => {
            for (i, rule) in g.security_group_rules.iter().enumerate() {
                if let Some(remote) = rule.remote_group_id.as_deref().filter(|remote| *remote != g.id) {
                    out.push(r(
                        format!("security_group_rules[{i}].remote_group_id"),
                        Kind::SecurityGroup,
                        remote,
                    ));
                }
            }
        }
        Object::PortBinding(b) => out.push(r("port_id".into(), Kind::Port, &b.port_id)),
        Object::Migration(m) => out.push(r("port_id".into(), Kind::Port, &m.port_id)),
        Object::Network(_) | Object::Chassis(_) => {}
    }
    out
}

/// Fields that default to another one: a network's VNI is its unique key unless given.
fn with_derived_fields(object: Object) -> Object {
    match object {
        Object::Network(mut n) if n.segmentation_id.is_none() => {
            n.segmentation_id = Some(n.unique_key);
            Object::Network(n)
        }
        other => other,
    }
}

fn decode(key: &str, value: &[u8]) -> NbResult<Object> {
    let Some((kind, _)) = tern_model::parse_key(key) else {
        return Err(NbError::Corrupt { key: key.to_owned(), message: "not an NB object key".into() });
    };
    let text = std::str::from_utf8(value)
        .map_err(|e| NbError::Corrupt { key: key.to_owned(), message: e.to_string() })?;
    Object::from_json(kind, text)
        .map_err(|e| NbError::Corrupt { key: key.to_owned(), message: e.to_string() })
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn timestamp(object: &Object, field: &str) -> Option<String> {
    object.to_json_value().get(field).and_then(|v| v.as_str()).map(str::to_owned)
}

/// Sets `created_at` / `updated_at` on kinds that have them (Neutron's timestamps).
fn set_timestamps(object: Object, created_at: &str, updated_at: &str) -> NbResult<Object> {
    let kind = object.kind();
    let mut value = object.to_json_value();
    let Some(map) = value.as_object_mut() else { return Ok(object) };
    if !map.contains_key("created_at") {
        return Ok(object);
    }
    map.insert("created_at".into(), created_at.into());
    map.insert("updated_at".into(), updated_at.into());
    Ok(Object::from_json(kind, &value.to_string())?)
}
