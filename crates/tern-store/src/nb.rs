//! Typed NB objects on top of any [`Store`]: validation (the object alone, then its references to
//! other objects), store-generated ids, store-allocated unique keys, Neutron's `revision_number`
//! with optimistic concurrency, timestamps, and a watch that speaks in objects.
//!
//! Every write of an object is one compare-and-swap on its key: a refused write changes nothing.

use crate::{Revision, Store, StoreError, Txn, Watch, WatchEvent};
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use tern_model::{Kind, ModelError, Object};

/// Where unique values (a port's IPs and MAC within its network) are claimed; outside every kind's
/// prefix, so NB watches do not see them.
const INDEX_PREFIX: &str = "/tern/index/";
/// Where per-kind unique-key counters live (outside every kind's prefix).
const UNIQUE_KEY_PREFIX: &str = "/tern/meta/unique_key/";
/// Unique keys are 24-bit: they become Geneve VNIs (networks) and register values.
const MAX_UNIQUE_KEY: u32 = 0x00ff_ffff;

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
            | NbError::InUse { .. } => true,
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

/// The NB over a store.
#[derive(Clone)]
pub struct Nb {
    store: Arc<dyn Store>,
}

impl Nb {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Nb { store }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
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
        // Concurrent writers may claim the same automatically chosen IP address; the loser of the
        // race chooses again.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.put_once(object.clone(), attempts, guard).await {
                Err(PutFailure::Raced) if attempts < 64 => continue,
                Err(PutFailure::Raced) => {
                    return Err(NbError::Exhausted { what: "attempts at a conflict-free write".into() })
                }
                Err(PutFailure::Error(e)) => return Err(e),
                Ok(stored) => return Ok(stored),
            }
        }
    }

    async fn put_once(
        &self,
        mut object: Object,
        attempt: u32,
        guard: Option<&Guard>,
    ) -> Result<Stored, PutFailure> {
        let auto_filled = self.fill_defaults(&mut object, attempt).await?;
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
        self.check_references(&object).await?;
        let created_at = previous.as_ref().and_then(|o| timestamp(o, "created_at"));
        let mut object = set_timestamps(object, created_at.as_deref().unwrap_or(&now), &now)?;
        if object.unique_key() == Some(0) {
            let key = self.allocate_unique_key(kind).await?;
            object.set_unique_key(key);
        }
        let object = with_derived_fields(object);
        let value = serde_json::to_vec(&object.to_json_value())
            .map_err(|e| NbError::Corrupt { key: key.clone(), message: e.to_string() })?;

        // One transaction: the object (if still as read) and its claims on unique values.
        let mut txn =
            Txn::new().compare(&key, existing.as_ref().map_or(0, |kv| kv.mod_revision)).put(&key, value);
        let new_claims = claims(&object);
        let old_claims = previous.as_ref().map(claims).unwrap_or_default();
        for claim in new_claims.iter().filter(|c| !old_claims.contains(c)) {
            match self.store.get(&claim.key).await? {
                Some(kv) if kv.value != id.as_bytes() => {
                    if auto_filled.contains(&claim.value) {
                        return Err(PutFailure::Raced);
                    }
                    return Err(NbError::Duplicate {
                        kind,
                        id,
                        field: claim.field.into(),
                        value: claim.value.clone(),
                        other: String::from_utf8_lossy(&kv.value).into_owned(),
                    }
                    .into());
                }
                Some(kv) => txn = txn.compare(&claim.key, kv.mod_revision),
                None => txn = txn.compare(&claim.key, 0).put(&claim.key, id.as_bytes().to_vec()),
            }
        }
        for claim in old_claims.iter().filter(|c| !new_claims.contains(c)) {
            txn = txn.delete(&claim.key);
        }
        match self.store.txn(txn).await {
            Ok(mod_revision) => Ok(Stored { object, mod_revision }),
            // Someone else wrote the object between our read and our write.
            Err(StoreError::Conflict { key: k, .. }) if k == key => Err(NbError::Conflict {
                kind,
                id,
                expected: object.revision_number().saturating_sub(1),
                actual: 0,
            }
            .into()),
            // Someone claimed one of our values meanwhile: read again and decide.
            Err(StoreError::Conflict { .. }) => Err(PutFailure::Raced),
            Err(e) => Err(NbError::from(e).into()),
        }
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
    /// objects still need it (a network with ports, a subnet or security group ports use). A
    /// network goes with its subnets, a port with its claims, in one transaction.
    pub async fn delete(&self, kind: Kind, id: &str) -> NbResult<Revision> {
        self.delete_checked(kind, id, None).await
    }

    /// [`Nb::delete`] only if `guard` accepts the stored object, checked atomically with the
    /// delete ([`NbError::Conflict`] otherwise): the delete half of a read-modify-write.
    pub async fn delete_if(&self, kind: Kind, id: &str, guard: &Guard) -> NbResult<Revision> {
        self.delete_checked(kind, id, Some(guard)).await
    }

    async fn delete_checked(&self, kind: Kind, id: &str, guard: Option<&Guard>) -> NbResult<Revision> {
        let key = tern_model::key(kind, id);
        let Some(kv) = self.store.get(&key).await? else {
            return Err(NbError::NotFound { kind, id: id.to_owned() });
        };
        let object = decode(&kv.key, &kv.value)?;
        if guard.is_some_and(|g| !g(Some(&object))) {
            let actual = object.revision_number();
            return Err(NbError::Conflict { kind, id: id.to_owned(), expected: actual, actual });
        }
        let in_use = |by_kind, by_id: String| NbError::InUse { kind, id: id.to_owned(), by_kind, by_id };
        let mut txn = Txn::new().compare(&key, kv.mod_revision).delete(&key);
        match &object {
            Object::Port(_) => {
                for claim in claims(&object) {
                    match self.store.get(&claim.key).await? {
                        Some(c) if c.value == id.as_bytes() => {
                            txn = txn.compare(&claim.key, c.mod_revision).delete(&claim.key)
                        }
                        _ => {}
                    }
                }
            }
            Object::Network(_) => {
                let users = self.store.list(&network_index(id)).await?;
                if let Some(claim) = users.items.first() {
                    return Err(in_use(Kind::Port, String::from_utf8_lossy(&claim.value).into_owned()));
                }
                for s in self.list(Kind::Subnet).await?.0 {
                    if matches!(&s.object, Object::Subnet(sub) if sub.network_id == id) {
                        txn = txn
                            .compare(tern_model::key(Kind::Subnet, s.object.id()), s.mod_revision)
                            .delete(tern_model::key(Kind::Subnet, s.object.id()));
                    }
                }
            }
            Object::Subnet(subnet) => {
                let used = self.store.list(&format!("{}ip/", network_index(&subnet.network_id))).await?;
                for claim in &used.items {
                    let ip = claim.key.rsplit('/').next().and_then(|ip| ip.parse::<IpAddr>().ok());
                    if ip.is_some_and(|ip| subnet.cidr.contains(&ip)) {
                        return Err(in_use(Kind::Port, String::from_utf8_lossy(&claim.value).into_owned()));
                    }
                }
            }
            Object::SecurityGroup(_) => {
                for p in self.list(Kind::Port).await?.0 {
                    if matches!(&p.object, Object::Port(port) if port.security_groups.iter().any(|g| g == id))
                    {
                        return Err(in_use(Kind::Port, p.object.id().to_owned()));
                    }
                }
            }
            _ => {}
        }
        self.store.txn(txn).await.map_err(|e| match e {
            StoreError::Conflict { .. } => {
                NbError::Conflict { kind, id: id.to_owned(), expected: 0, actual: 0 }
            }
            e => e.into(),
        })
    }

    /// NB events with revision >= `from` (0: from now on), across every kind.
    pub async fn watch(&self, from: Revision) -> NbResult<NbWatch> {
        Ok(NbWatch { inner: self.store.watch(tern_model::ROOT_PREFIX, from).await? })
    }

    // --- helpers of put ---

    /// Fills what Neutron fills when a client leaves it out (port MACs and fixed IP addresses).
    /// Returns the values it chose (as claim values), which a race may make it choose again.
    /// The first attempt takes the lowest free address; after losing a race, a random one of the
    /// lowest free ones, so that many concurrent writers spread out instead of colliding again.
    async fn fill_defaults(&self, object: &mut Object, attempt: u32) -> NbResult<Vec<String>> {
        // A new migration's epoch: above the store's current revision, hence above the epoch of
        // every earlier record of the port (each at most the revision it was written at), even
        // of records already deleted that the writer never saw.
        if let Object::Migration(m) = object {
            if m.epoch == 0 {
                let key = tern_model::key(Kind::Migration, &m.port_id);
                m.epoch = self.store.list(&key).await?.revision + 1;
            }
            return Ok(Vec::new());
        }
        let Object::Port(port) = object else { return Ok(Vec::new()) };
        let mut chosen = Vec::new();
        if port.mac_address.is_empty() {
            port.mac_address = tern_model::random_mac();
            chosen.push(port.mac_address.clone());
        }
        if port.fixed_ips.iter().all(|ip| ip.ip_address.is_some()) {
            return Ok(chosen);
        }
        let claimed = self.store.list(&format!("{}ip/", network_index(&port.network_id))).await?;
        let mut used: HashSet<IpAddr> = claimed
            .items
            .iter()
            .filter(|c| c.value != port.id.as_bytes())
            .filter_map(|c| c.key.rsplit('/').next().and_then(|ip| ip.parse().ok()))
            .collect();
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
            let mut candidates = Vec::new();
            let mut taken = used.clone();
            while candidates.len() < if attempt > 1 { 32 } else { 1 } {
                let Some(ip) = tern_model::allocate_ip(&subnet, &taken) else { break };
                taken.insert(ip);
                candidates.push(ip);
            }
            let pick = (uuid::Uuid::new_v4().as_u128() % candidates.len().max(1) as u128) as usize;
            let ip = *candidates
                .get(pick)
                .ok_or_else(|| NbError::Exhausted { what: format!("IP address in subnet {}", subnet.id) })?;
            used.insert(ip);
            fixed.ip_address = Some(ip);
            chosen.push(ip.to_string());
        }
        Ok(chosen)
    }

    /// Checks that the objects `object` refers to exist (and fit, for subnets and fixed IPs).
    async fn check_references(&self, object: &Object) -> NbResult<()> {
        let kind = object.kind();
        let id = object.id();
        let must_exist = |field: &str, target: Kind, target_id: &str| {
            let field = field.to_owned();
            let target_id = target_id.to_owned();
            async move {
                match self.get(target, &target_id).await? {
                    Some(s) => Ok(s.object),
                    None => {
                        Err(NbError::MissingReference { kind, id: id.to_owned(), field, target, target_id })
                    }
                }
            }
        };
        match object {
            Object::Subnet(subnet) => {
                for other in self.list(Kind::Subnet).await?.0 {
                    if let Object::Subnet(o) = &other.object {
                        let overlaps = o.cidr.contains(&subnet.cidr.network())
                            || subnet.cidr.contains(&o.cidr.network());
                        if o.id != subnet.id && o.network_id == subnet.network_id && overlaps {
                            return Err(NbError::Duplicate {
                                kind,
                                id: id.to_owned(),
                                field: "cidr".into(),
                                value: subnet.cidr.to_string(),
                                other: o.id.clone(),
                            });
                        }
                    }
                }
                if let Object::Network(network) =
                    must_exist("network_id", Kind::Network, &subnet.network_id).await?
                {
                    tern_model::check_subnet_network(subnet, &network).map_err(ModelError::from)?;
                }
            }
            Object::Port(port) => {
                must_exist("network_id", Kind::Network, &port.network_id).await?;
                let mut subnets = Vec::new();
                for (i, fixed) in port.fixed_ips.iter().enumerate() {
                    if let Object::Subnet(s) =
                        must_exist(&format!("fixed_ips[{i}].subnet_id"), Kind::Subnet, &fixed.subnet_id)
                            .await?
                    {
                        subnets.push(s);
                    }
                }
                tern_model::check_fixed_ips(port, &subnets).map_err(ModelError::from)?;
                for (i, sg) in port.security_groups.iter().enumerate() {
                    must_exist(&format!("security_groups[{i}]"), Kind::SecurityGroup, sg).await?;
                }
            }
            Object::Router(router) => {
                for (i, itf) in router.interfaces.iter().enumerate() {
                    must_exist(&format!("interfaces[{i}].subnet_id"), Kind::Subnet, &itf.subnet_id).await?;
                }
                if let Some(gw) = &router.external_gateway_info {
                    must_exist("external_gateway_info.network_id", Kind::Network, &gw.network_id).await?;
                }
            }
            Object::FloatingIp(fip) => {
                must_exist("floating_network_id", Kind::Network, &fip.floating_network_id).await?;
                if let Some(port) = &fip.port_id {
                    must_exist("port_id", Kind::Port, port).await?;
                }
                if let Some(router) = &fip.router_id {
                    must_exist("router_id", Kind::Router, router).await?;
                }
            }
            Object::PortBinding(b) => {
                must_exist("port_id", Kind::Port, &b.port_id).await?;
            }
            Object::Migration(m) => {
                must_exist("port_id", Kind::Port, &m.port_id).await?;
            }
            Object::Network(network) => {
                if let Some(vni) = network.segmentation_id {
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
                        });
                    }
                }
            }
            Object::SecurityGroup(_) | Object::Chassis(_) => {}
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

/// Why one attempt at a put failed: for good, or because a concurrent writer won a race.
enum PutFailure {
    Error(NbError),
    Raced,
}

impl<E: Into<NbError>> From<E> for PutFailure {
    fn from(e: E) -> Self {
        PutFailure::Error(e.into())
    }
}

/// Where the values unique within a network are claimed: `<prefix>ip/<ip>` and `<prefix>mac/<mac>`,
/// each holding the id of the port that owns it.
fn network_index(network_id: &str) -> String {
    format!("{INDEX_PREFIX}network/{network_id}/")
}

/// A value an object owns exclusively (e.g. a fixed IP within its network).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Claim {
    key: String,
    field: &'static str,
    value: String,
}

/// The unique values an object claims: a port's fixed IPs and MAC, within its network.
fn claims(object: &Object) -> Vec<Claim> {
    let Object::Port(port) = object else { return Vec::new() };
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
