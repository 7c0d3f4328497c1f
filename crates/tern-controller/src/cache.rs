//! The controller's local copy of the NB: every object by kind and id, plus the indexes the
//! controller asks questions by — ports by network, by chassis and by device, subnets by network,
//! provider networks by physical network, floating IPs by port, objects by unique key — kept in
//! step with every put and delete, and the NB revision the copy reflects.
//!
//! An event older than what the cache already holds for its key (a duplicate, or one overtaken
//! by a later change) is ignored: the copy only ever moves forward, key by key, whatever order
//! events come in.

use std::collections::{BTreeMap, BTreeSet};

use foldhash::HashMap;
use tern_model::{FloatingIp, Kind, Network, Object, Resource};
use tern_store::nb::NbEvent;

/// The NB as one controller has seen it.
#[derive(Clone, Default, Debug)]
pub struct NbCache {
    /// By kind, then id; hashed (a computation asks for a few hundred objects by id, and a
    /// lookup in a tree of 30,000 ids is a chain of cold string comparisons). Whatever is
    /// listed from it comes sorted by id.
    objects: BTreeMap<Kind, HashMap<String, Object>>,
    ports_by_network: BTreeMap<String, BTreeSet<String>>,
    ports_by_chassis: BTreeMap<String, BTreeSet<String>>,
    subnets_by_network: BTreeMap<String, BTreeSet<String>>,
    networks_by_physnet: BTreeMap<String, BTreeSet<String>>,
    ports_by_device: BTreeMap<String, BTreeSet<String>>,
    floating_ips_by_port: BTreeMap<String, BTreeSet<String>>,
    by_unique_key: BTreeMap<(Kind, u32), String>,
    /// The NB revision of the last change applied (or of the listing it was built from).
    revision: u64,
    /// The revision of the listing: every object in it is at most this old.
    listed_at: u64,
    /// The revision of the last change applied per key (deletes included).
    changed_at: HashMap<(Kind, String), u64>,
}

impl NbCache {
    /// A cache holding a listing taken at `revision`.
    pub fn from_listing(objects: impl IntoIterator<Item = Object>, revision: u64) -> NbCache {
        let mut cache = NbCache { revision, listed_at: revision, ..NbCache::default() };
        for o in objects {
            cache.insert(o);
        }
        cache
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Applies one NB event; says whether it changed the copy (false for a duplicate or an event
    /// older than what the copy holds for its key). Relist events are the caller's business
    /// (build a new cache).
    pub fn apply(&mut self, event: NbEvent) -> bool {
        self.apply_with(event, true)
    }

    /// Applies this controller's own write, known before the watch delivers it (it will be
    /// ignored then): like [`NbCache::apply`], but [`NbCache::revision`] stays where it is, as the
    /// writes before this one may not all be here yet.
    pub fn apply_ahead(&mut self, event: NbEvent) -> bool {
        self.apply_with(event, false)
    }

    fn apply_with(&mut self, event: NbEvent, in_order: bool) -> bool {
        let (kind, id, revision) = match &event {
            NbEvent::Put { object, revision } => (object.kind(), object.id().to_owned(), *revision),
            NbEvent::Delete { kind, id, revision } => (*kind, id.clone(), *revision),
            NbEvent::Relist { .. } => return false,
        };
        let key = (kind, id);
        let last = self.changed_at.get(&key).copied().unwrap_or(self.listed_at);
        if revision <= last {
            return false;
        }
        if in_order {
            self.revision = self.revision.max(revision);
        }
        match event {
            NbEvent::Put { object, .. } => self.insert(*object),
            NbEvent::Delete { .. } => self.remove(key.0, &key.1),
            NbEvent::Relist { .. } => {}
        }
        self.changed_at.insert(key, revision);
        true
    }

    /// The NB revision up to which this copy of object `id` is known current: its last change
    /// applied, or the listing.
    pub fn seen_at(&self, kind: Kind, id: &str) -> u64 {
        self.changed_at.get(&(kind, id.to_owned())).copied().unwrap_or(self.listed_at)
    }

    pub fn get(&self, kind: Kind, id: &str) -> Option<&Object> {
        self.objects.get(&kind)?.get(id)
    }

    /// Every object of one kind, borrowed (no copy), by id.
    pub fn iter(&self, kind: Kind) -> impl Iterator<Item = &Object> {
        let mut objects: Vec<(&String, &Object)> = self.objects.get(&kind).into_iter().flatten().collect();
        objects.sort_unstable_by(|a, b| a.0.cmp(b.0));
        objects.into_iter().map(|(_, o)| o)
    }

    /// Every object of one kind, as its own type, by id.
    pub fn all<T: Resource>(&self) -> Vec<T> {
        self.iter(T::KIND).cloned().filter_map(T::from_object).collect()
    }

    /// Ids of the ports on a network.
    pub fn ports_on_network(&self, network: &str) -> impl Iterator<Item = &str> {
        self.ports_by_network.get(network).into_iter().flatten().map(String::as_str)
    }

    /// Ids of the ports whose `device_id` is `device` (a router's interfaces, a floating IP's
    /// address port).
    pub fn ports_of_device(&self, device: &str) -> impl Iterator<Item = &str> {
        self.ports_by_device.get(device).into_iter().flatten().map(String::as_str)
    }

    /// Ids of the floating IPs associated with a port.
    pub fn floating_ips_of_port(&self, port: &str) -> impl Iterator<Item = &str> {
        self.floating_ips_by_port.get(port).into_iter().flatten().map(String::as_str)
    }

    /// Ids of the flat provider networks on a physical network.
    pub fn networks_on_physnet(&self, physnet: &str) -> impl Iterator<Item = &str> {
        self.networks_by_physnet.get(physnet).into_iter().flatten().map(String::as_str)
    }

    /// Ids of the subnets of a network.
    pub fn subnets_on_network(&self, network: &str) -> impl Iterator<Item = &str> {
        self.subnets_by_network.get(network).into_iter().flatten().map(String::as_str)
    }

    /// Object `id` of kind `T`, as its own type (a copy).
    pub fn one<T: Resource>(&self, id: &str) -> Option<T> {
        self.get(T::KIND, id).cloned().and_then(T::from_object)
    }

    /// The objects of kind `T` with these ids (those that exist), as their own type.
    pub fn some<'a, T: Resource>(&self, ids: impl IntoIterator<Item = &'a str>) -> Vec<T> {
        ids.into_iter().filter_map(|id| self.one(id)).collect()
    }

    /// Object `id` of kind `T`, borrowed.
    pub fn one_ref<T: Resource>(&self, id: &str) -> Option<&T> {
        self.get(T::KIND, id).and_then(T::from_object_ref)
    }

    /// [`NbCache::some`], borrowed.
    pub fn some_refs<'a, T: Resource>(&self, ids: impl IntoIterator<Item = &'a str>) -> Vec<&T> {
        ids.into_iter().filter_map(|id| self.one_ref(id)).collect()
    }

    /// Ids of the ports bound to a chassis (`binding:host_id`).
    pub fn ports_on_chassis(&self, chassis: &str) -> impl Iterator<Item = &str> {
        self.ports_by_chassis.get(chassis).into_iter().flatten().map(String::as_str)
    }

    /// The id of the object of `kind` with this unique key (what a flow's register value names).
    pub fn by_unique_key(&self, kind: Kind, key: u32) -> Option<&str> {
        self.by_unique_key.get(&(kind, key)).map(String::as_str)
    }

    fn insert(&mut self, object: Object) {
        let (kind, id) = (object.kind(), object.id().to_owned());
        self.remove(kind, &id);
        if let Some(key) = object.unique_key().filter(|k| *k != 0) {
            self.by_unique_key.insert((kind, key), id.clone());
        }
        if let Object::Port(p) = &object {
            self.ports_by_network.entry(p.network_id.clone()).or_default().insert(id.clone());
            if !p.binding_host_id.is_empty() {
                self.ports_by_chassis.entry(p.binding_host_id.clone()).or_default().insert(id.clone());
            }
            if !p.device_id.is_empty() {
                self.ports_by_device.entry(p.device_id.clone()).or_default().insert(id.clone());
            }
        }
        if let Object::FloatingIp(FloatingIp { port_id: Some(port), .. }) = &object {
            self.floating_ips_by_port.entry(port.clone()).or_default().insert(id.clone());
        }
        if let Object::Subnet(s) = &object {
            self.subnets_by_network.entry(s.network_id.clone()).or_default().insert(id.clone());
        }
        if let Object::Network(Network { physical_network: Some(physnet), .. }) = &object {
            self.networks_by_physnet.entry(physnet.clone()).or_default().insert(id.clone());
        }
        self.objects.entry(kind).or_default().insert(id, object);
    }

    fn remove(&mut self, kind: Kind, id: &str) {
        let Some(old) = self.objects.get_mut(&kind).and_then(|m| m.remove(id)) else { return };
        if let Some(key) = old.unique_key() {
            if self.by_unique_key.get(&(kind, key)).is_some_and(|owner| owner == id) {
                self.by_unique_key.remove(&(kind, key));
            }
        }
        let unindex = |index: &mut BTreeMap<String, BTreeSet<String>>, k: &str| {
            if let Some(set) = index.get_mut(k) {
                set.remove(id);
                if set.is_empty() {
                    index.remove(k);
                }
            }
        };
        if let Object::Port(p) = &old {
            unindex(&mut self.ports_by_network, &p.network_id);
            unindex(&mut self.ports_by_chassis, &p.binding_host_id);
            unindex(&mut self.ports_by_device, &p.device_id);
        }
        if let Object::FloatingIp(FloatingIp { port_id: Some(port), .. }) = &old {
            unindex(&mut self.floating_ips_by_port, port);
        }
        if let Object::Subnet(s) = &old {
            unindex(&mut self.subnets_by_network, &s.network_id);
        }
        if let Object::Network(Network { physical_network: Some(physnet), .. }) = &old {
            unindex(&mut self.networks_by_physnet, physnet);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(id: &str, net: &str, host: &str, key: u32) -> Object {
        let mut p = tern_model::Port::new(net);
        p.id = id.into();
        p.binding_host_id = host.into();
        p.unique_key = key;
        Object::Port(p)
    }

    fn put(object: Object, revision: u64) -> NbEvent {
        NbEvent::Put { revision, object: Box::new(object) }
    }

    #[test]
    fn indexes_follow_puts_moves_and_deletes() {
        let mut c = NbCache::from_listing([port("p1", "n1", "hv1", 1), port("p2", "n1", "hv2", 2)], 10);
        assert_eq!(c.ports_on_network("n1").collect::<Vec<_>>(), ["p1", "p2"]);
        assert_eq!(c.ports_on_chassis("hv1").collect::<Vec<_>>(), ["p1"]);
        assert_eq!(c.by_unique_key(Kind::Port, 2), Some("p2"));
        // p1 migrates to hv2 and changes network.
        c.apply(put(port("p1", "n2", "hv2", 1), 11));
        assert_eq!(c.ports_on_chassis("hv1").count(), 0);
        assert_eq!(c.ports_on_chassis("hv2").collect::<Vec<_>>(), ["p1", "p2"]);
        assert_eq!(c.ports_on_network("n2").collect::<Vec<_>>(), ["p1"]);
        c.apply(NbEvent::Delete { revision: 12, kind: Kind::Port, id: "p2".into() });
        assert_eq!(c.by_unique_key(Kind::Port, 2), None);
        assert_eq!(c.ports_on_network("n1").count(), 0);
        assert_eq!(c.revision(), 12);
        assert_eq!(c.all::<tern_model::Port>().len(), 1);
        assert!(c.get(Kind::Port, "p1").is_some());
    }

    #[test]
    fn floating_ips_follow_their_port_and_ports_their_device() {
        let fip = |id: &str, port: Option<&str>| {
            let mut f = tern_model::FloatingIp::new("public");
            f.id = id.into();
            f.port_id = port.map(str::to_owned);
            Object::FloatingIp(f)
        };
        let mut address = tern_model::Port::new("public");
        address.id = "a1".into();
        address.device_id = "f1".into();
        let mut c = NbCache::from_listing([fip("f1", Some("p1")), Object::Port(address)], 10);
        assert_eq!(c.floating_ips_of_port("p1").collect::<Vec<_>>(), ["f1"]);
        assert_eq!(c.ports_of_device("f1").collect::<Vec<_>>(), ["a1"]);
        // Re-associated, then disassociated.
        c.apply(put(fip("f1", Some("p2")), 11));
        assert_eq!(c.floating_ips_of_port("p1").count(), 0);
        assert_eq!(c.floating_ips_of_port("p2").collect::<Vec<_>>(), ["f1"]);
        c.apply(put(fip("f1", None), 12));
        assert_eq!(c.floating_ips_of_port("p2").count(), 0);
        c.apply(NbEvent::Delete { revision: 13, kind: Kind::Port, id: "a1".into() });
        assert_eq!(c.ports_of_device("f1").count(), 0);
    }

    #[test]
    fn stale_and_duplicate_events_change_nothing() {
        let mut c = NbCache::from_listing([port("p1", "n1", "hv1", 1)], 10);
        // Older than the listing.
        assert!(!c.apply(put(port("p1", "n1", "hv9", 1), 9)));
        assert!(c.apply(put(port("p1", "n1", "hv2", 1), 12)));
        // A duplicate, then an older change arriving late.
        assert!(!c.apply(put(port("p1", "n1", "hv2", 1), 12)));
        assert!(!c.apply(put(port("p1", "n1", "hv3", 1), 11)));
        assert_eq!(c.ports_on_chassis("hv2").collect::<Vec<_>>(), ["p1"]);
        // A delete is remembered: the put it overtook does not bring the object back.
        assert!(c.apply(NbEvent::Delete { revision: 14, kind: Kind::Port, id: "p1".into() }));
        assert!(!c.apply(put(port("p1", "n1", "hv2", 1), 13)));
        assert!(c.get(Kind::Port, "p1").is_none());
        assert_eq!(c.revision(), 14);
        // Other keys are independent.
        assert!(c.apply(put(port("p2", "n1", "hv1", 2), 13)));
        // A write of our own, ahead of the watch: in the copy, but the revision stays.
        assert!(c.apply_ahead(put(port("p3", "n1", "hv1", 3), 20)));
        assert_eq!(c.revision(), 14);
        assert!(c.get(Kind::Port, "p3").is_some());
        assert!(!c.apply(put(port("p3", "n1", "hv1", 3), 20)), "the watch's copy of it");
    }
}
