//! The one place the controller turns what it has seen — its copy of the NB, the VIFs and patch
//! ports OVSDB reports, the gateways it resolved — into the pipeline's input, a [`ChassisView`].
//! Pure: the agent, the benchmarks and the simulation all build their views here.
//!
//! **Selective topology.** A chassis' view holds only the part of the cloud its flows can be
//! about ([`Scope`]): the networks of its own ports (bound here, plugged here, or migrating to
//! or from here), the networks its routers reach from those, and the external networks it has a
//! bridge mapping for; their ports, subnets, routers and floating IPs. Packets of any other
//! network never enter or leave this chassis, so no flow here depends on them. Building the view
//! costs the size of that scope (plus the chassis list), not the size of the cloud.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use tern_model::{
    Chassis, FloatingIp, Kind, Migration, Network, Object, Port, Router, SecurityGroup, Subnet,
};
use tern_pipeline::ChassisView;

use crate::cache::NbCache;

/// What the chassis itself knows, beside the NB.
#[derive(Clone, Debug, Default)]
pub struct Local {
    /// The chassis name.
    pub chassis: String,
    /// Deliver a migrating port's traffic to both ends until activation.
    pub dual_delivery: bool,
    /// The MAC the chassis speaks from on external networks.
    pub chassis_mac: [u8; 6],
    /// Port id -> ofport, for VIFs on br-int.
    pub vifs: BTreeMap<String, u32>,
    pub tunnel_ofport: Option<u32>,
    /// Physical network -> br-int's end of the patch to its provider bridge.
    pub patch_ports: BTreeMap<String, u32>,
    /// What the chassis resolved on external networks: IP -> MAC.
    pub neighbours: BTreeMap<Ipv4Addr, [u8; 6]>,
}

/// The view chassis `local.chassis` computes its flows from. `migrations` are the NB's records
/// as this chassis sees them (its own activations overlaid); the pipeline gets those that move
/// traffic (see [`crate::migration::for_pipeline`]), the destination watches for activation
/// packets whatever the dual-delivery setting.
pub fn chassis_view(nb: &NbCache, migrations: &[Migration], local: &Local) -> ChassisView {
    scoped_view(nb, migrations, local).0
}

/// [`chassis_view`], and the scope it was built on: an NB change the scope does not
/// [touch](Scope::touches) leaves the view as it is.
pub fn scoped_view(nb: &NbCache, migrations: &[Migration], local: &Local) -> (ChassisView, Scope) {
    let scope = Scope::of(nb, migrations, local);
    let networks: Vec<&Network> = nb.some_refs(scope.networks.iter().map(String::as_str));
    let ports: Vec<&Port> = nb.some_refs(scope.ports.iter().map(String::as_str));
    let subnets: Vec<&Subnet> = nb.some_refs(scope.networks.iter().flat_map(|n| nb.subnets_on_network(n)));
    let fips: Vec<&FloatingIp> = nb.some_refs(scope.floating_ips.iter().map(String::as_str));
    let routers: Vec<&Router> = nb.some_refs(scope.routers.iter().map(String::as_str));
    let groups: Vec<&SecurityGroup> = nb.some_refs(scope.security_groups.iter().map(String::as_str));
    let mut view = ChassisView::from_nb(
        &local.chassis,
        &networks,
        &ports,
        &scope.chassis_records(nb),
        &crate::migration::for_pipeline(migrations.to_vec(), local.dual_delivery),
        local.vifs.clone(),
        local.tunnel_ofport,
    )
    .with_routers(&routers, &subnets, &ports)
    .with_dhcp(&subnets, &ports)
    .with_security_groups(&groups)
    .with_external(&local.patch_ports, &subnets, local.chassis_mac, &local.neighbours)
    .with_floating_ips(&fips, &ports);
    // Without dual delivery the pipeline does not see dest_plugged records, but the destination
    // still watches for the VM's first packet.
    view.awaiting_activation = tern_pipeline::view::awaiting_activation(&local.chassis, migrations);
    (view, scope)
}

/// Whether two versions of a port differ only in their status (and the bookkeeping that comes
/// with any write: revision number, update time).
fn only_status_differs(a: &Port, b: &Port) -> bool {
    a.status != b.status && {
        let mut a = a.clone();
        (a.status, a.revision_number, a.updated_at) = (b.status, b.revision_number, b.updated_at.clone());
        a == *b
    }
}

/// The view as it was before selective topology: every object of the cloud (no migrations).
/// The reference the scope is tested and benchmarked against; no chassis computes it.
pub fn whole_cloud_view(nb: &NbCache, local: &Local) -> ChassisView {
    let ports: Vec<Port> = nb.all();
    let subnets: Vec<Subnet> = nb.all();
    ChassisView::from_nb(
        &local.chassis,
        &nb.all::<Network>(),
        &ports,
        &nb.all::<Chassis>(),
        &[],
        local.vifs.clone(),
        local.tunnel_ofport,
    )
    .with_routers(&nb.all::<Router>(), &subnets, &ports)
    .with_dhcp(&subnets, &ports)
    .with_security_groups(&nb.all::<SecurityGroup>())
    .with_external(&local.patch_ports, &subnets, local.chassis_mac, &local.neighbours)
    .with_floating_ips(&nb.all::<FloatingIp>(), &ports)
}

/// The part of the cloud a chassis' flows can be about (see the module's doc), by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// The networks of this chassis' ports, those its routers reach, and the external networks
    /// it has a bridge mapping for.
    pub networks: BTreeSet<String>,
    /// The routers with an interface on a network of this chassis' ports.
    pub routers: BTreeSet<String>,
    /// The ports of those networks, the address ports of their floating IPs, and this chassis'
    /// own ports (a VIF plugged here names its port before the NB may have it).
    pub ports: BTreeSet<String>,
    /// The floating IPs of those ports.
    pub floating_ips: BTreeSet<String>,
    /// The security groups of those ports and the groups their rules name as remote groups.
    pub security_groups: BTreeSet<String>,
    /// The chassis (ids or hostnames, as bindings name them) the scope's ports are bound to or
    /// migrate between, and this one: those whose tunnel addresses the flows may need.
    pub chassis: BTreeSet<String>,
    /// The names this chassis goes by in bindings and records: its id and its hostname.
    pub me: BTreeSet<String>,
    /// The physical networks this chassis has bridge mappings for.
    pub physnets: BTreeSet<String>,
}

impl Scope {
    pub fn of(nb: &NbCache, migrations: &[Migration], local: &Local) -> Scope {
        let port_of = |id: &str| match nb.get(Kind::Port, id)? {
            Object::Port(p) => Some(p),
            _ => None,
        };
        let mut scope = Scope {
            me: BTreeSet::from([local.chassis.clone()]),
            physnets: local.patch_ports.keys().cloned().collect(),
            ..Scope::default()
        };
        if let Some(c) = nb.one::<Chassis>(&local.chassis) {
            scope.me.insert(c.hostname().to_owned());
        }
        // This chassis' ports: bound here (by chassis id or by its hostname), plugged here, or
        // at either end of a migration.
        let mut mine: BTreeSet<&str> = scope.me.iter().flat_map(|me| nb.ports_on_chassis(me)).collect();
        mine.extend(local.vifs.keys().map(String::as_str));
        mine.extend(
            migrations
                .iter()
                .filter(|m| scope.me.contains(&m.source) || scope.me.contains(&m.destination))
                .map(|m| m.port_id.as_str()),
        );
        scope.ports.extend(mine.iter().map(|id| (*id).to_owned()));
        let own: BTreeSet<String> =
            mine.into_iter().filter_map(|id| Some(port_of(id)?.network_id.clone())).collect();
        scope.networks.extend(own.iter().cloned());
        // Routers with an interface on one of those networks (found by their interface ports,
        // whose device_id names the router), and every network they join.
        for port in own.iter().flat_map(|n| nb.ports_on_network(n)).filter_map(port_of) {
            let Some(Object::Router(router)) = nb.get(Kind::Router, &port.device_id) else { continue };
            if scope.routers.contains(&router.id) || !router.interfaces.iter().any(|i| i.port_id == port.id) {
                continue;
            }
            scope.routers.insert(router.id.clone());
            let joined = router.interfaces.iter().filter_map(|i| port_of(&i.port_id));
            scope.networks.extend(joined.map(|p| p.network_id.clone()));
        }
        // The external networks this chassis reaches through a bridge mapping.
        for physnet in &scope.physnets {
            scope.networks.extend(nb.networks_on_physnet(physnet).map(str::to_owned));
        }
        // Their ports; the floating IPs of those, and the floating IPs' address ports (on the
        // external networks).
        for n in &scope.networks {
            scope.ports.extend(nb.ports_on_network(n).map(str::to_owned));
        }
        for p in &scope.ports {
            scope.floating_ips.extend(nb.floating_ips_of_port(p).map(str::to_owned));
        }
        for f in &scope.floating_ips {
            let address = nb.ports_of_device(f).filter_map(port_of);
            let address = address.filter(|p| p.device_owner == "network:floatingip");
            scope.ports.extend(address.map(|p| p.id.clone()).collect::<Vec<_>>());
        }
        // The chassis the scope's ports are bound to or migrate between, and this one; the
        // ports' security groups and the groups those name as remote groups.
        scope.chassis.insert(local.chassis.clone());
        for p in scope.ports.iter().filter_map(|id| port_of(id)) {
            if !p.binding_host_id.is_empty() {
                scope.chassis.insert(p.binding_host_id.clone());
            }
            scope.security_groups.extend(p.security_groups.iter().cloned());
        }
        let remote_groups: Vec<String> = nb
            .some_refs::<SecurityGroup>(scope.security_groups.iter().map(String::as_str))
            .into_iter()
            .flat_map(|g| g.security_group_rules.iter().filter_map(|r| r.remote_group_id.clone()))
            .collect();
        scope.security_groups.extend(remote_groups);
        for m in migrations.iter().filter(|m| scope.ports.contains(&m.port_id)) {
            scope.chassis.extend([m.source.clone(), m.destination.clone()]);
        }
        scope
    }

    /// Whether an NB change — the object before and after it (`None`: absent) — can change a
    /// view built on this scope. One that does not leaves the chassis' flows as they are (and
    /// costs it nothing but the cache update): a port, subnet or floating IP of a network out of
    /// scope, a router joining none of the scope's networks, a group no port here uses, a
    /// chassis no port here is bound to, a migration between two other chassis.
    /// A port's status alone is for people: no flow and no migration step depends on it (the
    /// chassis that wrote it already knows).
    pub fn touches(&self, before: Option<&Object>, after: Option<&Object>) -> bool {
        if let (Some(Object::Port(a)), Some(Object::Port(b))) = (before, after) {
            if only_status_differs(a, b) {
                return false;
            }
        }
        before.into_iter().chain(after).any(|o| self.touches_object(o))
    }

    fn touches_object(&self, object: &Object) -> bool {
        let me = |name: &str| !name.is_empty() && self.me.contains(name);
        match object {
            Object::Port(p) => {
                self.ports.contains(&p.id)
                    || self.networks.contains(&p.network_id)
                    || me(&p.binding_host_id)
                    || self.routers.contains(&p.device_id)
                    || self.floating_ips.contains(&p.device_id)
            }
            Object::Network(n) => {
                self.networks.contains(&n.id)
                    || n.physical_network.as_ref().is_some_and(|p| self.physnets.contains(p))
            }
            Object::Subnet(s) => self.networks.contains(&s.network_id),
            Object::Router(r) => {
                self.routers.contains(&r.id) || r.interfaces.iter().any(|i| self.ports.contains(&i.port_id))
            }
            Object::FloatingIp(f) => {
                self.floating_ips.contains(&f.id)
                    || f.port_id.as_ref().is_some_and(|p| self.ports.contains(p))
            }
            Object::SecurityGroup(g) => self.security_groups.contains(&g.id),
            Object::Chassis(c) => {
                me(&c.id) || self.chassis.contains(&c.id) || self.chassis.contains(c.hostname())
            }
            Object::Migration(m) => self.ports.contains(&m.port_id) || me(&m.source) || me(&m.destination),
            Object::PortBinding(_) => false,
        }
    }

    /// The scope's chassis records: by id, or by hostname for a binding that names one (found by
    /// a scan of the chassis, only then).
    fn chassis_records(&self, nb: &NbCache) -> Vec<Chassis> {
        let mut out: BTreeMap<String, Chassis> = BTreeMap::new();
        let mut by_hostname = Vec::new();
        for name in &self.chassis {
            match nb.one::<Chassis>(name) {
                Some(c) => {
                    out.insert(c.id.clone(), c);
                }
                None => by_hostname.push(name.as_str()),
            }
        }
        if !by_hostname.is_empty() {
            for o in nb.iter(Kind::Chassis) {
                if let Object::Chassis(c) = o {
                    if by_hostname.contains(&c.hostname()) {
                        out.insert(c.id.clone(), c.clone());
                    }
                }
            }
        }
        out.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{Cloud, Sizes};

    /// The view answers "ports of a network" and "local ports" from an index; on a synthetic
    /// cloud it must give exactly what a scan of every port gives, on every chassis.
    #[test]
    fn indexed_questions_agree_with_a_scan() {
        let sizes = Sizes { chassis: 7, networks: 23, ports: 400 };
        let cloud = Cloud::new(sizes, 99);
        let cache = NbCache::from_listing(cloud.objects.clone(), 1);
        for c in 0..sizes.chassis {
            let view = chassis_view(&cache, &[], &cloud.local(c));
            let mut local_networks = Vec::new();
            for net in view.networks.values() {
                let mut scan: Vec<_> = view.active_ports().filter(|p| p.network_id == net.id).collect();
                scan.sort_by_key(|p| p.key);
                assert_eq!(view.ports_of(&net.id), scan, "ports of {} on chassis {c}", net.id);
                let local: Vec<_> = scan.iter().filter_map(|p| Some((*p, view.local_ofport(p)?))).collect();
                assert_eq!(view.local_ports(&net.id), local, "local ports of {} on chassis {c}", net.id);
                if !local.is_empty() {
                    local_networks.push(net);
                }
            }
            assert!(!local_networks.is_empty());
            assert_eq!(view.local_networks().collect::<Vec<_>>(), local_networks);
            // A clone is asked afresh: what changed in it is seen.
            let mut unplugged = view.clone();
            unplugged.local_vifs.clear();
            assert_eq!(unplugged.local_networks().count(), 0);
        }
    }

    /// Selective topology changes no flow but one kind: remote-group addresses of ports on
    /// networks that cannot reach this chassis. Every other flow of the whole-cloud view is
    /// there, identical, on every chassis of a synthetic cloud with routers and floating IPs.
    #[test]
    fn the_scope_leaves_out_only_addresses_that_cannot_reach_the_chassis() {
        let sizes = Sizes { chassis: 6, networks: 30, ports: 300 };
        let cloud = Cloud::new(sizes, 7);
        let cache = NbCache::from_listing(cloud.objects.clone(), 1);
        let mut left_out = 0;
        for c in 0..sizes.chassis {
            let local = cloud.local(c);
            let scoped = tern_pipeline::compute(&chassis_view(&cache, &[], &local));
            let whole = tern_pipeline::compute(&whole_cloud_view(&cache, &local));
            let scope = Scope::of(&cache, &[], &local);
            assert!(scope.networks.len() < sizes.networks, "chassis {c} sees the whole cloud");
            let outside: Vec<String> = cache
                .all::<Port>()
                .iter()
                .filter(|p| !scope.networks.contains(&p.network_id))
                .flat_map(|p| p.fixed_ips.iter().filter_map(|f| f.ip_address))
                .map(|ip| ip.to_string())
                .collect();
            for f in scoped.iter() {
                assert_eq!(whole.get(&tern_pipeline::FlowKey::of(f)), Some(f), "chassis {c}: {f}");
            }
            for f in whole.iter().filter(|f| scoped.get(&tern_pipeline::FlowKey::of(f)).is_none()) {
                let text = f.to_string();
                let about_outside = outside.iter().any(|ip| {
                    ["nw_src", "nw_dst"]
                        .iter()
                        .any(|f| [',', ' '].iter().any(|end| text.contains(&format!("{f}={ip}{end}"))))
                });
                assert!(
                    matches!(
                        tern_pipeline::App::from_cookie(f.cookie),
                        Some((tern_pipeline::App::SecurityGroups, _))
                    ) && about_outside,
                    "chassis {c} lost a flow that is not a remote-group address from outside its scope: {f}"
                );
                left_out += 1;
            }
        }
        assert!(left_out > 0, "the cloud has remote-group members outside every scope");
    }

    /// The ends of a migration see the port's network even with no other port there.
    #[test]
    fn a_migration_brings_its_network_into_the_scope_of_both_ends() {
        let sizes = Sizes { chassis: 40, networks: 200, ports: 200 };
        let cloud = Cloud::new(sizes, 3);
        let cache = NbCache::from_listing(cloud.objects.clone(), 1);
        let (port, (net, from)) = cloud.placement.iter().next().unwrap();
        let to = (from + 1) % sizes.chassis;
        let others = (0..sizes.chassis).filter(|c| {
            *c != *from && *c != to && !cloud.placement.values().any(|(n, on)| n == net && on == c)
        });
        let bystander = others.into_iter().next().expect("a chassis with no port on the network");
        let m = Migration::new(
            port.clone(),
            1,
            crate::synthetic::chassis_name(*from),
            crate::synthetic::chassis_name(to),
        );
        let network = crate::synthetic::network_id(*net);
        for (c, sees) in [(*from, true), (to, true), (bystander, false)] {
            let scope = Scope::of(&cache, std::slice::from_ref(&m), &cloud.local(c));
            assert_eq!(scope.networks.contains(&network), sees, "chassis {c}");
        }
    }

    /// An NB change the scope does not touch leaves the chassis' flows exactly as they were, and
    /// most changes in a cloud touch few chassis. Random changes of every kind on a synthetic
    /// cloud with routers and floating IPs; after each, every chassis' flows are recomputed and,
    /// where its scope said "untouched", compared with the flows before.
    #[test]
    fn a_change_the_scope_does_not_touch_leaves_the_flows_as_they_are() {
        use tern_model::{FixedIp, RouterInterface, SecurityGroupRule};
        use tern_store::nb::NbEvent;
        let sizes = Sizes { chassis: 20, networks: 80, ports: 160 };
        let cloud = Cloud::new(sizes, 11);
        let mut cache = NbCache::from_listing(cloud.objects.clone(), 1);
        let locals: Vec<Local> = (0..sizes.chassis).map(|c| cloud.local(c)).collect();
        let flows = |cache: &NbCache, local: &Local| {
            let migrations = cache.all::<Migration>();
            (
                tern_pipeline::compute(&chassis_view(cache, &migrations, local)),
                Scope::of(cache, &migrations, local),
            )
        };
        let mut rng = crate::synthetic::Rng::new(0x9e37_79b9_7f4a_7c15);
        let mut below = |n: usize| rng.below(n);
        let (mut untouched, mut touched) = (0, 0);
        let mut next_key = 10_000u32;
        for revision in 2..160u64 {
            let ports: Vec<Port> = cache.all();
            let vm = ports.iter().filter(|p| p.device_owner == "compute:nova").nth(below(150)).cloned();
            let Some(mut port) = vm else { continue };
            let chassis = crate::synthetic::chassis_name(below(sizes.chassis));
            let network = below(sizes.networks);
            let change: Option<Object> = match below(11) {
                0 => {
                    port.binding_host_id = chassis;
                    Some(Object::Port(port))
                }
                1 => {
                    // A new VM on a random network and chassis.
                    next_key += 1;
                    let mut p = Port::new(crate::synthetic::network_id(network));
                    p.id = format!("new-{revision}");
                    p.unique_key = next_key;
                    p.binding_host_id = chassis;
                    p.mac_address = "fa:16:3e:00:99:01".parse().unwrap();
                    p.security_groups = vec!["sg-default".into()];
                    let subnet = cache.subnets_on_network(&p.network_id).next().unwrap().to_owned();
                    let ip = format!("10.{}.{}.250", network / 250, network % 250).parse().ok();
                    p.fixed_ips = vec![FixedIp { subnet_id: subnet, ip_address: ip }];
                    Some(Object::Port(p))
                }
                2 => {
                    cache.apply(NbEvent::Delete { kind: Kind::Port, id: port.id.clone(), revision });
                    None
                }
                3 => {
                    port.security_groups = vec!["sg-other".into()];
                    Some(Object::Port(port))
                }
                4 => {
                    let mut g: SecurityGroup = cache.one("sg-default").unwrap();
                    let mut rule =
                        SecurityGroupRule::new(tern_model::Direction::Ingress, tern_model::EtherType::IPv4);
                    rule.id = format!("rule-new-{revision}");
                    rule.protocol = Some("udp".into());
                    g.security_group_rules.push(rule);
                    Some(Object::SecurityGroup(g))
                }
                5 => {
                    let mut c: Chassis = cache.one(&chassis).unwrap();
                    c.tunnel_ip = format!("172.31.0.{}", revision % 250).parse().unwrap();
                    Some(Object::Chassis(c))
                }
                6 => {
                    let id = cache.subnets_on_network(&crate::synthetic::network_id(network)).next().unwrap();
                    let mut subnet: Subnet = cache.one(id).unwrap();
                    subnet.enable_dhcp = !subnet.enable_dhcp;
                    Some(Object::Subnet(subnet))
                }
                7 => {
                    // A router gains an interface on a random network: its port, then itself.
                    let routers: Vec<Router> = cache.all();
                    let mut router = routers[below(routers.len())].clone();
                    let net = crate::synthetic::network_id(network);
                    let subnet = cache.subnets_on_network(&net).next().unwrap().to_owned();
                    next_key += 1;
                    let mut iface = Port::new(net);
                    iface.id = format!("rif-new-{revision}");
                    iface.unique_key = next_key;
                    iface.mac_address = "fa:16:3e:00:99:02".parse().unwrap();
                    iface.device_owner = "network:router_interface".into();
                    iface.device_id = router.id.clone();
                    let ip = format!("10.{}.{}.254", network / 250, network % 250).parse().ok();
                    iface.fixed_ips = vec![FixedIp { subnet_id: subnet.clone(), ip_address: ip }];
                    let before = flows_of(&cache, &locals, &flows);
                    let event = NbEvent::Put { revision, object: Box::new(Object::Port(iface.clone())) };
                    check(&mut cache, &locals, &flows, before, event, &mut untouched, &mut touched);
                    router.interfaces.push(RouterInterface { subnet_id: subnet, port_id: iface.id });
                    Some(Object::Router(router))
                }
                10 => {
                    // A status write, as the chassis the port is bound to makes it.
                    port.status = match port.status {
                        tern_model::Status::Active => tern_model::Status::Down,
                        _ => tern_model::Status::Active,
                    };
                    port.revision_number += 1;
                    Some(Object::Port(port))
                }
                8 => {
                    let to = crate::synthetic::chassis_name(below(sizes.chassis));
                    Some(Object::Migration(Migration::new(
                        port.id.clone(),
                        revision,
                        port.binding_host_id.clone(),
                        to,
                    )))
                }
                _ => {
                    let mut fip = tern_model::FloatingIp::new("public");
                    fip.id = format!("fip-new-{revision}");
                    fip.floating_ip_address = format!("172.24.200.{}", revision % 250).parse().ok();
                    fip.fixed_ip_address = port.fixed_ips[0].ip_address;
                    fip.port_id = Some(port.id.clone());
                    Some(Object::FloatingIp(fip))
                }
            };
            let Some(object) = change else { continue };
            let before = flows_of(&cache, &locals, &flows);
            let event = NbEvent::Put { revision: revision * 2 + 1000, object: Box::new(object) };
            check(&mut cache, &locals, &flows, before, event, &mut untouched, &mut touched);
        }
        assert!(
            untouched > touched,
            "most changes touch few chassis: {untouched} untouched, {touched} touched"
        );

        type Flows<'a> = &'a dyn Fn(&NbCache, &Local) -> (tern_pipeline::FlowSet, Scope);
        fn flows_of(cache: &NbCache, locals: &[Local], flows: Flows) -> Vec<(tern_pipeline::FlowSet, Scope)> {
            locals.iter().map(|l| flows(cache, l)).collect()
        }
        fn check(
            cache: &mut NbCache,
            locals: &[Local],
            flows: Flows,
            before: Vec<(tern_pipeline::FlowSet, Scope)>,
            event: NbEvent,
            untouched: &mut usize,
            touched: &mut usize,
        ) {
            let (old, new) = match &event {
                NbEvent::Put { object, .. } => {
                    (cache.get(object.kind(), object.id()).cloned(), Some((**object).clone()))
                }
                _ => unreachable!(),
            };
            cache.apply(event);
            for (local, (flows_before, scope)) in locals.iter().zip(before) {
                if scope.touches(old.as_ref(), new.as_ref()) {
                    *touched += 1;
                    continue;
                }
                *untouched += 1;
                let (flows_after, _) = flows(cache, local);
                assert_eq!(
                    tern_pipeline::FlowSet::diff(&flows_before, &flows_after),
                    vec![],
                    "{}: {old:?} -> {new:?} is out of scope but changes flows",
                    local.chassis
                );
            }
        }
    }
}
