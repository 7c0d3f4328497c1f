//! The NB's invariants, checked on a snapshot of the whole store (`tern db check`, and the tests
//! that run random concurrent operations against one store), and the repair of what breaks them
//! unambiguously (`tern db check --repair`).
//!
//! What must hold:
//! * every reference resolves: port → network, subnets, security groups; subnet → network;
//!   router → interface subnets and ports, gateway network; floating IP → network, port, router;
//!   rule → remote group; binding and migration → port;
//! * every claim under `/tern/index/` has its owner (the object it names claims exactly that
//!   key), every object's claims are held by it, and every guard key belongs to an object;
//! * every router interface port is listed by its router and every interface a router lists is
//!   a port of that router; every gateway port belongs to a router with a gateway there;
//! * every `network:floatingip` port belongs to the floating IP that holds its address, and every
//!   floating IP has one;
//! * no two subnets of a network overlap; no fixed IP has two floating IPs;
//! * every usage counter (`/tern/index/usage/<resource>/<project>`) equals what the project's
//!   objects hold (a missing counter is fine: the NB counts it on first use);
//! * every object passes its own validation (an object stored before a limit existed may not);
//! * the port index (`/tern/index/by/port/<field>/<value>/<port>`) holds exactly one entry per
//!   port and indexed field (its network, its device), and nothing else; every allocation cursor
//!   (`/tern/index/ipam/<subnet>`) belongs to a subnet.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde::Serialize;
use tern_model::{FloatingIp, Kind, Object, Port, Resource, Router, SecurityGroup, Subnet};
use tern_store::nb::{self, Nb, NbError, NbResult};
use tern_store::{KeyValue, StoreError, Txn};

use crate::ports::{OWNER_FLOATINGIP, OWNER_ROUTER_GATEWAY, OWNER_ROUTER_INTERFACE};

/// One way the NB contradicts itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The rule broken, a stable name (`dangling-reference`, `orphan-claim`, ...).
    pub rule: &'static str,
    /// What it is about: `<kind>/<id>` of an object, or a store key.
    pub subject: String,
    pub message: String,
    /// What `--repair` does about it; `None` when no repair is unambiguous.
    pub repair: Option<Repair>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.rule, self.subject, self.message)?;
        if let Some(r) = &self.repair {
            write!(f, " (repair: {r})")?;
        }
        Ok(())
    }
}

/// An unambiguous fix of one violation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Repair {
    /// Delete the object (a service port nothing owns; a binding or migration of a gone port).
    DeleteObject { kind: Kind, id: String },
    /// Drop a router's interfaces naming this port.
    DropRouterInterface { router: String, port: String },
    /// Drop a security group a port names.
    DropPortSecurityGroup { port: String, group: String },
    /// Drop the rules of a group naming a gone remote group.
    DropRemoteGroupRules { group: String, remote: String },
    /// Disassociate a floating IP from its gone port or router.
    DisassociateFloatingIp { floatingip: String },
    /// Delete an index key nothing owns (if it is still at the revision the check saw).
    DeleteIndexKey { key: String, mod_revision: u64 },
    /// Write a claim its owner lacks (the value is free).
    WriteClaim { key: String, owner: String },
    /// Write a port index entry its port lacks (if the port still wants it).
    WriteIndexEntry { key: String, port: String },
    /// Set a usage counter to what the objects hold (if it is still at the revision the check
    /// saw).
    SetUsage { key: String, value: u64, mod_revision: u64 },
}

impl std::fmt::Display for Repair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Repair::DeleteObject { kind, id } => write!(f, "delete {kind} {id}"),
            Repair::DropRouterInterface { router, port } => {
                write!(f, "drop the interface of router {router} on port {port}")
            }
            Repair::DropPortSecurityGroup { port, group } => {
                write!(f, "drop security group {group} from port {port}")
            }
            Repair::DropRemoteGroupRules { group, remote } => {
                write!(f, "drop the rules of security group {group} naming remote group {remote}")
            }
            Repair::DisassociateFloatingIp { floatingip } => {
                write!(f, "disassociate floating IP {floatingip}")
            }
            Repair::DeleteIndexKey { key, .. } => write!(f, "delete index key {key}"),
            Repair::WriteClaim { key, owner } => write!(f, "write claim {key} = {owner}"),
            Repair::WriteIndexEntry { key, port } => write!(f, "write index entry {key} of port {port}"),
            Repair::SetUsage { key, value, .. } => write!(f, "set usage counter {key} to {value}"),
        }
    }
}

/// The result of a check: the violations, at one store revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub revision: u64,
    pub violations: Vec<Violation>,
}

/// Checks every invariant on one snapshot of the store (objects and index at one revision).
pub async fn check(nb: &Nb) -> NbResult<Report> {
    let listing = nb.store().list("/tern/").await?;
    let mut objects = Vec::new();
    let mut index = Vec::new();
    for kv in listing.items {
        if let Some((kind, _)) = tern_model::parse_key(&kv.key) {
            let text = String::from_utf8_lossy(&kv.value);
            let object = Object::from_json(kind, &text)
                .map_err(|e| NbError::Corrupt { key: kv.key.clone(), message: e.to_string() })?;
            objects.push(object);
        } else if kv.key.starts_with(nb::INDEX_PREFIX) {
            index.push(kv);
        }
    }
    Ok(Report { revision: listing.revision, violations: check_snapshot(&objects, &index) })
}

fn subject(kind: Kind, id: &str) -> String {
    format!("{}/{id}", kind.name())
}

/// Every violation in a snapshot: the NB objects and the index keys (under `/tern/index/`).
pub fn check_snapshot(objects: &[Object], index: &[KeyValue]) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut v = |rule, subject: String, message: String, repair| {
        out.push(Violation { rule, subject, message, repair });
    };
    let by_key: HashMap<(Kind, &str), &Object> = objects.iter().map(|o| ((o.kind(), o.id()), o)).collect();
    let exists = |kind: Kind, id: &str| by_key.contains_key(&(kind, id));
    let of = |kind: Kind| objects.iter().filter(move |o| o.kind() == kind);
    let ports: Vec<&Port> = of(Kind::Port).filter_map(|o| Port::from_object_ref(o)).collect();
    let routers: Vec<&Router> = of(Kind::Router).filter_map(|o| Router::from_object_ref(o)).collect();
    let fips: Vec<&FloatingIp> =
        of(Kind::FloatingIp).filter_map(|o| FloatingIp::from_object_ref(o)).collect();
    let subnets: Vec<&Subnet> = of(Kind::Subnet).filter_map(|o| Subnet::from_object_ref(o)).collect();

    // Every object is valid on its own.
    for o in objects {
        if let Err(e) = o.validate() {
            v("invalid-object", subject(o.kind(), o.id()), e.to_string(), None);
        }
    }

    // Every reference resolves.
    for o in objects {
        let (kind, id) = (o.kind(), o.id());
        for r in nb::references(o) {
            if exists(r.kind, &r.id) {
                continue;
            }
            let repair = match (o, r.kind) {
                (Object::Port(_), Kind::SecurityGroup) => {
                    Some(Repair::DropPortSecurityGroup { port: id.to_owned(), group: r.id.clone() })
                }
                (Object::SecurityGroup(_), Kind::SecurityGroup) => {
                    Some(Repair::DropRemoteGroupRules { group: id.to_owned(), remote: r.id.clone() })
                }
                (Object::FloatingIp(_), Kind::Port | Kind::Router) => {
                    Some(Repair::DisassociateFloatingIp { floatingip: id.to_owned() })
                }
                (Object::Router(_), Kind::Port) => {
                    Some(Repair::DropRouterInterface { router: id.to_owned(), port: r.id.clone() })
                }
                (Object::PortBinding(_) | Object::Migration(_), Kind::Port) => {
                    Some(Repair::DeleteObject { kind, id: id.to_owned() })
                }
                _ => None,
            };
            v(
                "dangling-reference",
                subject(kind, id),
                format!("{} refers to {} {}, which does not exist", r.field, r.kind, r.id),
                repair,
            );
        }
    }

    // Claims and guard keys.
    let mut wanted: BTreeMap<String, Vec<(Kind, &str)>> = BTreeMap::new();
    for o in objects {
        for c in nb::claims(o) {
            wanted.entry(c.key).or_default().push((o.kind(), o.id()));
        }
    }
    let held: HashMap<&str, &KeyValue> = index.iter().map(|kv| (kv.key.as_str(), kv)).collect();
    // The port index entries every port must have: key -> port id.
    let entries: BTreeMap<String, &str> =
        ports.iter().flat_map(|p| nb::port_index_keys(p).into_iter().map(|k| (k, p.id.as_str()))).collect();
    for kv in index {
        let key = kv.key.as_str();
        let holder = String::from_utf8_lossy(&kv.value);
        if let Some((resource, project)) = nb::parse_usage_key(key) {
            let counted = tern_model::quota::count(objects, project, resource);
            let stored = holder.parse::<u64>().ok();
            if stored != Some(counted) {
                v(
                    "usage-mismatch",
                    key.to_owned(),
                    format!("counts {holder:?}; project {project:?} has {counted} {resource}"),
                    Some(Repair::SetUsage {
                        key: key.to_owned(),
                        value: counted,
                        mod_revision: kv.mod_revision,
                    }),
                );
            }
        } else if nb::is_claim_key(key) {
            let owners = wanted.get(key).map(Vec::as_slice).unwrap_or_default();
            if !owners.iter().any(|(_, id)| *id == holder) {
                v(
                    "orphan-claim",
                    key.to_owned(),
                    format!("claimed by {holder:?}, which does not claim it"),
                    Some(Repair::DeleteIndexKey { key: key.to_owned(), mod_revision: kv.mod_revision }),
                );
            }
        } else if let Some((kind, id)) = nb::guarded_object(key) {
            if !exists(kind, &id) {
                v(
                    "orphan-guard-key",
                    key.to_owned(),
                    format!("guards {kind} {id}, which does not exist"),
                    Some(Repair::DeleteIndexKey { key: key.to_owned(), mod_revision: kv.mod_revision }),
                );
            }
        } else if nb::is_port_index_key(key) {
            if !entries.contains_key(key) {
                let why = match nb::parse_port_index_key(key) {
                    None => "is not a well-formed port index entry".to_string(),
                    Some((field, value, id)) => match ports.iter().find(|p| p.id == id) {
                        None => format!("names port {id}, which does not exist"),
                        Some(p) => {
                            format!("says port {id} has {} {value:?}; it has {:?}", field.name(), field.of(p))
                        }
                    },
                };
                v(
                    "stale-index-entry",
                    key.to_owned(),
                    why,
                    Some(Repair::DeleteIndexKey { key: key.to_owned(), mod_revision: kv.mod_revision }),
                );
            }
        } else if nb::is_cursor_key(key) {
            if !nb::cursor_subnet(key).is_some_and(|id| exists(Kind::Subnet, id)) {
                v(
                    "orphan-ipam-cursor",
                    key.to_owned(),
                    "the allocation cursor of a subnet that does not exist".into(),
                    Some(Repair::DeleteIndexKey { key: key.to_owned(), mod_revision: kv.mod_revision }),
                );
            }
        } else {
            v("unknown-index-key", key.to_owned(), "not a claim nor a guard key".into(), None);
        }
    }
    for (key, id) in &entries {
        if !held.contains_key(key.as_str()) {
            v(
                "missing-index-entry",
                subject(Kind::Port, id),
                format!("its index entry {key} is not written"),
                Some(Repair::WriteIndexEntry { key: key.clone(), port: id.to_string() }),
            );
        }
    }
    for (key, owners) in &wanted {
        if owners.len() > 1 {
            let names: Vec<String> = owners.iter().map(|(k, id)| subject(*k, id)).collect();
            v("duplicate-claim", key.clone(), format!("claimed by each of {}", names.join(", ")), None);
        }
        let Some(&(kind, id)) = owners.first() else { continue };
        match held.get(key.as_str()) {
            None => v(
                "missing-claim",
                subject(kind, id),
                format!("its claim {key} is not written"),
                (owners.len() == 1).then(|| Repair::WriteClaim { key: key.clone(), owner: id.to_owned() }),
            ),
            Some(kv) if owners.len() == 1 && kv.value != id.as_bytes() => v(
                "missing-claim",
                subject(kind, id),
                format!("its claim {key} is held by {:?}", String::from_utf8_lossy(&kv.value)),
                None,
            ),
            Some(_) => {}
        }
    }

    // Router interfaces and their ports.
    for r in &routers {
        for itf in &r.interfaces {
            let Some(p) = ports.iter().find(|p| p.id == itf.port_id) else { continue };
            if p.device_owner != OWNER_ROUTER_INTERFACE || p.device_id != r.id {
                v(
                    "interface-port-mismatch",
                    subject(Kind::Router, &r.id),
                    format!(
                        "its interface on subnet {} names port {}, owned by {:?} {:?}",
                        itf.subnet_id, p.id, p.device_owner, p.device_id
                    ),
                    None,
                );
            }
        }
    }
    for p in &ports {
        let router = routers.iter().find(|r| r.id == p.device_id);
        let owner = p.device_owner.as_str();
        if owner == OWNER_ROUTER_INTERFACE
            && !router.is_some_and(|r| r.interfaces.iter().any(|i| i.port_id == p.id))
        {
            v(
                "unlisted-interface-port",
                subject(Kind::Port, &p.id),
                format!("a router interface port of router {:?}, which does not list it", p.device_id),
                Some(Repair::DeleteObject { kind: Kind::Port, id: p.id.clone() }),
            );
        }
        let has_gateway = router
            .is_some_and(|r| r.external_gateway_info.as_ref().is_some_and(|g| g.network_id == p.network_id));
        if owner == OWNER_ROUTER_GATEWAY && !has_gateway {
            v(
                "orphan-gateway-port",
                subject(Kind::Port, &p.id),
                format!("a gateway port of router {:?}, which has no gateway on its network", p.device_id),
                Some(Repair::DeleteObject { kind: Kind::Port, id: p.id.clone() }),
            );
        }
        let fip = fips.iter().find(|f| f.id == p.device_id);
        let address = p.fixed_ips.first().and_then(|f| f.ip_address);
        if owner == OWNER_FLOATINGIP
            && !fip.is_some_and(|f| f.floating_ip_address.is_some() && f.floating_ip_address == address)
        {
            v(
                "orphan-floatingip-port",
                subject(Kind::Port, &p.id),
                format!(
                    "holds address {} for floating IP {:?}, which {}",
                    address.map_or("none".to_string(), |a| a.to_string()),
                    p.device_id,
                    if fip.is_some() { "has another address" } else { "does not exist" }
                ),
                Some(Repair::DeleteObject { kind: Kind::Port, id: p.id.clone() }),
            );
        }
    }
    for r in &routers {
        if let Some(gw) = &r.external_gateway_info {
            let port = ports.iter().any(|p| {
                p.device_owner == OWNER_ROUTER_GATEWAY && p.device_id == r.id && p.network_id == gw.network_id
            });
            if !port {
                v(
                    "gateway-without-port",
                    subject(Kind::Router, &r.id),
                    format!("its gateway on network {} has no gateway port", gw.network_id),
                    None,
                );
            }
        }
    }

    // Floating IPs: an address port each, one per fixed IP.
    let mut per_fixed: BTreeMap<(&str, IpAddr), Vec<&str>> = BTreeMap::new();
    for f in &fips {
        let port = ports.iter().any(|p| {
            p.device_owner == OWNER_FLOATINGIP
                && p.device_id == f.id
                && p.fixed_ips.first().and_then(|i| i.ip_address) == f.floating_ip_address
        });
        if !port {
            v(
                "floatingip-without-port",
                subject(Kind::FloatingIp, &f.id),
                format!("no {OWNER_FLOATINGIP} port holds its address {:?}", f.floating_ip_address),
                None,
            );
        }
        if let (Some(port), Some(ip)) = (&f.port_id, f.fixed_ip_address) {
            per_fixed.entry((port.as_str(), ip)).or_default().push(&f.id);
        }
    }
    for ((port, ip), ids) in per_fixed {
        if ids.len() > 1 {
            v(
                "shared-fixed-ip",
                subject(Kind::Port, port),
                format!("fixed IP {ip} has {} floating IPs: {}", ids.len(), ids.join(", ")),
                None,
            );
        }
    }

    // No overlapping subnets on a network.
    for (i, a) in subnets.iter().enumerate() {
        for b in &subnets[i + 1..] {
            let overlap = a.cidr.contains(&b.cidr.network()) || b.cidr.contains(&a.cidr.network());
            if a.network_id == b.network_id && overlap {
                v(
                    "overlapping-subnets",
                    subject(Kind::Network, &a.network_id),
                    format!("subnets {} ({}) and {} ({}) overlap", a.id, a.cidr, b.id, b.cidr),
                    None,
                );
            }
        }
    }
    out
}

/// What a repair did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Repaired {
    pub repair: Repair,
    /// `None` when done; the reason otherwise.
    pub error: Option<String>,
}

impl std::fmt::Display for Repaired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error {
            None => write!(f, "repaired: {}", self.repair),
            Some(e) => write!(f, "not repaired: {}: {e}", self.repair),
        }
    }
}

/// Applies the repairs of `violations` (each once), references first, then objects, then index
/// keys; each through the NB's own checks, so a repair never breaks another invariant.
pub async fn repair(nb: &Nb, violations: &[Violation]) -> Vec<Repaired> {
    let mut repairs: Vec<Repair> = Vec::new();
    for r in violations.iter().filter_map(|v| v.repair.clone()) {
        if !repairs.contains(&r) {
            repairs.push(r);
        }
    }
    let order = |r: &Repair| match r {
        Repair::DropRouterInterface { .. }
        | Repair::DropPortSecurityGroup { .. }
        | Repair::DropRemoteGroupRules { .. }
        | Repair::DisassociateFloatingIp { .. } => 0,
        Repair::DeleteObject { .. } => 1,
        Repair::DeleteIndexKey { .. }
        | Repair::WriteClaim { .. }
        | Repair::SetUsage { .. }
        | Repair::WriteIndexEntry { .. } => 2,
    };
    repairs.sort_by_key(order);
    let mut out = Vec::new();
    for r in repairs {
        let error = apply(nb, &r).await.err().map(|e| e.to_string());
        out.push(Repaired { repair: r, error });
    }
    out
}

async fn apply(nb: &Nb, r: &Repair) -> NbResult<()> {
    match r {
        Repair::DeleteObject { kind, id } => match nb.delete(*kind, id).await {
            Ok(_) | Err(NbError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        },
        Repair::DropRouterInterface { router, port } => {
            modify::<Router>(nb, router, |r| r.interfaces.retain(|i| i.port_id != *port)).await
        }
        Repair::DropPortSecurityGroup { port, group } => {
            modify::<Port>(nb, port, |p| p.security_groups.retain(|g| g != group)).await
        }
        Repair::DropRemoteGroupRules { group, remote } => {
            modify::<SecurityGroup>(nb, group, |g| {
                g.security_group_rules.retain(|r| r.remote_group_id.as_deref() != Some(remote))
            })
            .await
        }
        Repair::DisassociateFloatingIp { floatingip } => {
            modify::<FloatingIp>(nb, floatingip, |f| {
                f.port_id = None;
                f.fixed_ip_address = None;
                f.router_id = None;
                f.status = tern_model::FloatingIpStatus::Down;
            })
            .await
        }
        Repair::DeleteIndexKey { key, mod_revision } => {
            match nb.store().delete_if(key, *mod_revision).await {
                Ok(_) => Ok(()),
                // Gone already, or written since the check: not this repair's to decide.
                Err(StoreError::Conflict { actual: 0, .. }) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        Repair::SetUsage { key, value, mod_revision } => {
            let txn = Txn::new().compare(key, *mod_revision).put(key, value.to_string().into_bytes());
            match nb.store().txn(txn).await {
                Ok(_) => Ok(()),
                Err(StoreError::Conflict { .. }) => {
                    Err(NbError::Store(StoreError::Backend(format!("{key} was written meanwhile"))))
                }
                Err(e) => Err(e.into()),
            }
        }
        Repair::WriteIndexEntry { key, port } => {
            // Only while the port still wants it: guarded by the port as read now.
            let port_key = tern_model::key(Kind::Port, port);
            let Some(kv) = nb.store().get(&port_key).await? else { return Ok(()) };
            let text = String::from_utf8_lossy(&kv.value);
            let wants = match Object::from_json(Kind::Port, &text) {
                Ok(Object::Port(p)) => nb::port_index_keys(&p).contains(key),
                _ => false,
            };
            if !wants {
                return Ok(());
            }
            let txn = Txn::new().compare(&port_key, kv.mod_revision).put(key, Vec::new());
            match nb.store().txn(txn).await {
                Ok(_) => Ok(()),
                Err(StoreError::Conflict { .. }) => {
                    Err(NbError::Store(StoreError::Backend(format!("port {port} was written meanwhile"))))
                }
                Err(e) => Err(e.into()),
            }
        }
        Repair::WriteClaim { key, owner } => {
            let txn = Txn::new().compare(key, 0).put(key, owner.as_bytes().to_vec());
            match nb.store().txn(txn).await {
                Ok(_) => Ok(()),
                Err(StoreError::Conflict { .. }) => {
                    Err(NbError::Store(StoreError::Backend(format!("{key} was written meanwhile"))))
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// A read-modify-write of one object through the NB (one transaction; a concurrent change to it
/// is a conflict).
async fn modify<T: tern_model::Resource>(nb: &Nb, id: &str, change: impl FnOnce(&mut T)) -> NbResult<()> {
    let tx = nb.tx();
    let Some(stored) = tx.get(T::KIND, id).await? else { return Ok(()) };
    let Some(mut t) = T::from_object(stored.object) else { return Ok(()) };
    change(&mut t);
    tx.put(t.into_object());
    tx.commit().await?;
    Ok(())
}
