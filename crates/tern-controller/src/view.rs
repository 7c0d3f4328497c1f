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
    let scope = Scope::of(nb, migrations, local);
    let networks: Vec<Network> = nb.some(scope.networks.iter().map(String::as_str));
    let mut ports: Vec<Port> = nb.some(scope.networks.iter().flat_map(|n| nb.ports_on_network(n)));
    let subnets: Vec<Subnet> = nb.some(scope.networks.iter().flat_map(|n| nb.subnets_on_network(n)));
    // Floating IPs of the scope's ports, and their address ports (on the external networks).
    let in_scope: BTreeSet<String> = ports.iter().map(|p| p.id.clone()).collect();
    let fips: Vec<FloatingIp> = nb.some(in_scope.iter().flat_map(|p| nb.floating_ips_of_port(p)));
    let address_ports: Vec<Port> = nb
        .some::<Port>(fips.iter().flat_map(|f| nb.ports_of_device(&f.id)))
        .into_iter()
        .filter(|p| p.device_owner == "network:floatingip")
        .collect();
    ports.extend(address_ports.into_iter().filter(|p| !in_scope.contains(&p.id)));
    let routers: Vec<Router> = nb.some(scope.routers.iter().map(String::as_str));
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
    .with_security_groups(&nb.all::<SecurityGroup>())
    .with_external(&local.patch_ports, &subnets, local.chassis_mac, &local.neighbours)
    .with_floating_ips(&fips, &ports);
    // Without dual delivery the pipeline does not see dest_plugged records, but the destination
    // still watches for the VM's first packet.
    view.awaiting_activation = tern_pipeline::view::awaiting_activation(&local.chassis, migrations);
    view
}

/// The part of the cloud a chassis' flows can be about (see the module's doc).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// Network ids: the networks of this chassis' ports, those its routers reach, and the
    /// external networks it has a bridge mapping for.
    pub networks: BTreeSet<String>,
    /// Router ids: the routers with an interface on a network of this chassis' ports.
    pub routers: BTreeSet<String>,
    /// The chassis (ids or hostnames, as bindings name them) the scope's ports are bound to or
    /// migrate between, and this one: those whose tunnel addresses the flows may need.
    pub chassis: BTreeSet<String>,
}

impl Scope {
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

impl Scope {
    pub fn of(nb: &NbCache, migrations: &[Migration], local: &Local) -> Scope {
        // This chassis' ports: bound here (by chassis id or by its hostname), plugged here, or
        // at either end of a migration.
        let mut mine: BTreeSet<&str> = nb.ports_on_chassis(&local.chassis).collect();
        if let Some(c) = nb.one::<Chassis>(&local.chassis).filter(|c| c.hostname() != c.id) {
            mine.extend(nb.ports_on_chassis(c.hostname()));
        }
        mine.extend(local.vifs.keys().map(String::as_str));
        mine.extend(
            migrations
                .iter()
                .filter(|m| m.source == local.chassis || m.destination == local.chassis)
                .map(|m| m.port_id.as_str()),
        );
        let own: BTreeSet<String> = mine
            .into_iter()
            .filter_map(|id| match nb.get(Kind::Port, id)? {
                Object::Port(p) => Some(p.network_id.clone()),
                _ => None,
            })
            .collect();
        let mut scope = Scope { networks: own.clone(), ..Scope::default() };
        // Routers with an interface on one of those networks (found by their interface ports,
        // whose device_id names the router), and every network they join.
        let port_of = |id: &str| match nb.get(Kind::Port, id)? {
            Object::Port(p) => Some(p),
            _ => None,
        };
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
        for physnet in local.patch_ports.keys() {
            scope.networks.extend(nb.networks_on_physnet(physnet).map(str::to_owned));
        }
        // The chassis the scope's ports are bound to or migrate between, and this one.
        scope.chassis.insert(local.chassis.clone());
        for n in &scope.networks {
            for p in nb.ports_on_network(n).filter_map(port_of) {
                if !p.binding_host_id.is_empty() {
                    scope.chassis.insert(p.binding_host_id.clone());
                }
            }
        }
        for m in migrations {
            scope.chassis.extend([m.source.clone(), m.destination.clone()]);
        }
        scope
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

    /// The view as it was before selective topology: every object of the cloud.
    fn whole_cloud_view(nb: &NbCache, local: &Local) -> ChassisView {
        let ports: Vec<Port> = nb.all();
        let subnets: Vec<Subnet> = nb.all();
        ChassisView::from_nb(
            &local.chassis,
            &nb.all(),
            &ports,
            &nb.all(),
            &[],
            local.vifs.clone(),
            local.tunnel_ofport,
        )
        .with_routers(&nb.all(), &subnets, &ports)
        .with_dhcp(&subnets, &ports)
        .with_security_groups(&nb.all())
        .with_external(&local.patch_ports, &subnets, local.chassis_mac, &local.neighbours)
        .with_floating_ips(&nb.all(), &ports)
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
}
