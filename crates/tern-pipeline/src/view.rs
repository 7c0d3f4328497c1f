//! `ChassisView`: everything one chassis knows that the pipeline turns into flows (the NB objects
//! reduced to what flows need, plus the local VIFs and tunnel port), and [`port_location`], the one
//! place that decides which chassis a port's traffic goes to (binding + live-migration record).

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};

use tern_model::{Chassis, FloatingIp, Migration, MigrationState, Network, Port, Router, Subnet};

/// What one chassis knows, as the pipeline needs it. Maps are keyed by object id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChassisView {
    /// The chassis these flows are for (a chassis id).
    pub local_chassis: String,
    /// Every chassis that can be reached by tunnel (the local one may be here too).
    pub chassis: BTreeMap<String, ChassisInfo>,
    pub networks: BTreeMap<String, NetworkInfo>,
    pub ports: BTreeMap<String, PortInfo>,
    /// Port id -> OpenFlow port number of its VIF on this chassis' br-int.
    pub local_vifs: BTreeMap<String, u32>,
    /// The flow-based Geneve port, once OVS has given it a number.
    pub tunnel_ofport: Option<u32>,
    /// Ports migrating to this chassis and not yet activated (`dest_plugged`, destination here):
    /// their VIF's packets are also copied to the controller, whose first one activates the
    /// migration (the VM's RARP/GARP or any first packet on the destination).
    pub awaiting_activation: BTreeSet<String>,
    /// Ports that left this chassis by live migration, for a short while after their activation:
    /// port id -> the chassis they went to. Late packets for them that reach this chassis by tunnel
    /// (from a chassis that has not heard of the activation yet) are tunneled on to it: the
    /// source's forwarding pointer. Never set for a port located here.
    pub forwarding: BTreeMap<String, String>,
    /// Distributed routers, by id: every chassis routes for its own VMs (see
    /// [`ChassisView::with_routers`]).
    pub routers: BTreeMap<String, RouterInfo>,
    /// Security groups, by id (see [`ChassisView::with_security_groups`]).
    pub security_groups: BTreeMap<String, SecurityGroupInfo>,
    /// The external (flat provider) networks this chassis reaches through a bridge mapping, by
    /// network id (see [`ChassisView::with_external`]).
    pub external: BTreeMap<String, ExternalInfo>,
    /// The floating IPs associated with a port, in floating-address order (see
    /// [`ChassisView::with_floating_ips`]).
    pub floating_ips: Vec<FloatingIpInfo>,
    /// The ports by network, built at the first question that needs it (see [`Index`]).
    index: IndexCell,
}

/// The view's ports grouped by network, so that "the ports of network N" and "the networks with
/// a local port" cost the size of the answer, not a scan of every port of the cloud. Built from
/// `ports`, `networks`, `local_vifs` and `local_chassis` at the first question that needs it:
/// set those fields before asking.
#[derive(Debug, Default)]
struct Index {
    /// Network id -> its active ports (ids), in port-key order.
    active: BTreeMap<String, Vec<String>>,
    /// Network id -> its local ports (ids) and their ofports, in port-key order; only networks
    /// with a local port.
    local: BTreeMap<String, Vec<(String, u32)>>,
}

/// The lazily built [`Index`]: empty again in a clone (which may be changed before it is asked)
/// and never part of a view's equality.
#[derive(Default)]
struct IndexCell(std::sync::OnceLock<Index>);

impl Clone for IndexCell {
    fn clone(&self) -> Self {
        IndexCell::default()
    }
}

impl PartialEq for IndexCell {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for IndexCell {}

impl std::fmt::Debug for IndexCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IndexCell")
    }
}

/// An external network as one chassis reaches it: through br-int's end of the patch to the
/// provider bridge its bridge mapping names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalInfo {
    pub network_id: String,
    /// The OpenFlow port of br-int's end of the patch.
    pub patch_ofport: u32,
    /// The MAC this chassis speaks from on the external network when it resolves the gateway
    /// (see [`chassis_mac`]).
    pub chassis_mac: [u8; 6],
    /// The external subnet's gateway, and its MAC once the chassis has resolved it: floating
    /// IPs' outbound traffic goes there.
    pub gateway: Option<Ipv4Addr>,
    pub gateway_mac: Option<[u8; 6]>,
}

/// A floating IP associated with a port, with what translating it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloatingIpInfo {
    pub id: String,
    /// The public address, on `network_id` (the external network).
    pub ip: Ipv4Addr,
    /// The MAC the public address answers with: its address port's (Neutron's
    /// `network:floatingip` port), so it stays the same wherever the VM runs.
    pub mac: [u8; 6],
    pub network_id: String,
    pub port_id: String,
    /// The port's address the floating IP translates to.
    pub fixed_ip: Ipv4Addr,
    /// The MAC of the router's interface on the port's network (the source MAC of translated
    /// packets toward the VM).
    pub router_mac: [u8; 6],
}

/// The MAC a chassis uses on external networks for its own ARP: locally administered, unicast,
/// unique per tunnel IP (`0a:74:` then the address).
pub fn chassis_mac(tunnel_ip: Ipv4Addr) -> [u8; 6] {
    let o = tunnel_ip.octets();
    [0x0a, 0x74, o[0], o[1], o[2], o[3]]
}

/// A router as the pipeline needs it: its interfaces on known networks, its extra routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterInfo {
    pub id: String,
    pub interfaces: Vec<RouterInterfaceInfo>,
    /// Extra routes: (destination, next hop).
    pub routes: Vec<(Ipv4Net, Ipv4Addr)>,
}

/// One router interface: the router's MAC and address on a network's IPv4 subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterInterfaceInfo {
    pub network_id: String,
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    pub subnet: Ipv4Net,
}

/// The forwarding pointers of chassis `local` that the NB records give: every activated
/// migration whose source is `local` (until its record goes; the controller keeps the pointer a
/// little longer, see `tern-controller`).
pub fn forwarding(local: &str, migrations: &[Migration]) -> BTreeMap<String, String> {
    migrations
        .iter()
        .filter(|m| m.state == MigrationState::Activated && m.source == local && m.destination != local)
        .map(|m| (m.port_id.clone(), m.destination.clone()))
        .collect()
}

/// The ports whose migration awaits activation by a packet on chassis `local`: records in
/// `dest_plugged` whose destination is `local`.
pub fn awaiting_activation(local: &str, migrations: &[Migration]) -> BTreeSet<String> {
    migrations
        .iter()
        .filter(|m| m.state == MigrationState::DestPlugged && m.destination == local)
        .map(|m| m.port_id.clone())
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChassisInfo {
    pub tunnel_ip: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    pub id: String,
    /// The network's unique key: the value of `metadata` inside the pipeline.
    pub key: u32,
    /// The Geneve VNI (`tun_id`) of the network on the wire.
    pub vni: u32,
    /// A flat provider network's physical network (see [`ChassisView::with_external`]).
    pub physical_network: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    pub id: String,
    pub network_id: String,
    /// The port's unique key: the value of reg6 (source) / reg7 (destination).
    pub key: u32,
    pub mac: [u8; 6],
    pub ips: Vec<IpAddr>,
    pub admin_up: bool,
    pub location: PortLocation,
    /// Port security (Neutron's `port_security_enabled`): the port may send only from its MAC and
    /// IPs and the allowed address pairs.
    pub port_security: bool,
    /// The allowed address pairs: (MAC, or the port's own when `None`; address range).
    pub allowed_pairs: Vec<(Option<[u8; 6]>, ipnet::IpNet)>,
    /// The port has an IPv4 address on a subnet with DHCP enabled (see [`ChassisView::with_dhcp`]).
    pub dhcp: bool,
    /// The port's security groups (ids).
    pub security_groups: Vec<String>,
}

/// A security group as the pipeline needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroupInfo {
    pub id: String,
    pub rules: Vec<tern_model::SecurityGroupRule>,
    /// Neutron's `stateful`: false filters each packet on its own, without conntrack.
    pub stateful: bool,
}

/// The allowed address pairs of `port` that parse (an IP is a /32 or /128).
fn allowed_pairs(port: &Port) -> Vec<(Option<[u8; 6]>, ipnet::IpNet)> {
    port.allowed_address_pairs
        .iter()
        .filter_map(|p| {
            let net = p
                .ip_address
                .parse::<ipnet::IpNet>()
                .ok()
                .or_else(|| p.ip_address.parse::<IpAddr>().ok().map(ipnet::IpNet::from))?;
            let mac = match &p.mac_address {
                Some(m) => Some(tern_model::parse_mac(m)?),
                None => None,
            };
            Some((mac, net))
        })
        .collect()
}

/// The set of chassis (ids) a port's traffic must be delivered to: empty when the port is
/// unbound, one chassis normally, two during a live migration's dual delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PortLocation(BTreeSet<String>);

// === impl PortLocation ===

impl PortLocation {
    /// Bound nowhere: no traffic is delivered to the port.
    pub fn nowhere() -> PortLocation {
        PortLocation::default()
    }

    /// On one chassis; an empty id means nowhere (an unbound port's `binding:host_id`).
    pub fn on(chassis: impl Into<String>) -> PortLocation {
        let chassis = chassis.into();
        PortLocation(if chassis.is_empty() { BTreeSet::new() } else { BTreeSet::from([chassis]) })
    }

    /// Dual delivery to both ends of a live migration.
    pub fn dual(source: impl Into<String>, destination: impl Into<String>) -> PortLocation {
        PortLocation::on(source).union(&PortLocation::on(destination))
    }

    pub fn union(&self, other: &PortLocation) -> PortLocation {
        PortLocation(self.0.union(&other.0).cloned().collect())
    }

    pub fn contains(&self, chassis: &str) -> bool {
        self.0.contains(chassis)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The chassis ids, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl<S: Into<String>> FromIterator<S> for PortLocation {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        PortLocation(iter.into_iter().map(Into::into).filter(|c: &String| !c.is_empty()).collect())
    }
}

/// Where port `port`'s traffic goes: a function of its binding and its migration record only, so
/// every chassis that has seen the same NB state computes the same answer whatever order the
/// events came in. `migration` is ignored unless it is for this port and agrees with the binding:
/// * none, completed or aborted: the binding (`binding:host_id`; empty = nowhere);
/// * `announced` or `dest_plugged` while the binding names the source: {source, destination}
///   (dual delivery);
/// * `activated`, or any open migration once the binding names the destination (the API binding
///   change activates on its own): {destination};
/// * an open migration whose source and destination both differ from the binding is stale: the
///   binding wins.
pub fn port_location(port: &Port, migration: Option<&Migration>) -> PortLocation {
    location_of(&port.id, &port.binding_host_id, migration)
}

/// [`port_location`] for a port known by id, with its binding already resolved to a chassis id.
fn location_of(port_id: &str, host: &str, migration: Option<&Migration>) -> PortLocation {
    let bound = PortLocation::on(host);
    let Some(m) = migration.filter(|m| m.port_id == port_id) else {
        return bound;
    };
    let on_source = host == m.source;
    let on_destination = host == m.destination;
    match m.state {
        MigrationState::Completed | MigrationState::Aborted => bound,
        _ if on_destination => PortLocation::on(m.destination.as_str()),
        MigrationState::Announced | MigrationState::DestPlugged if on_source => {
            PortLocation::dual(m.source.as_str(), m.destination.as_str())
        }
        MigrationState::Activated if on_source => PortLocation::on(m.destination.as_str()),
        MigrationState::Announced | MigrationState::DestPlugged | MigrationState::Activated => bound,
    }
}

// === impl ChassisView ===

impl ChassisView {
    /// The view of chassis `local` from NB objects. Objects flows cannot be written for are left
    /// out: networks without a unique key or VNI, ports without a key, a valid MAC or a known
    /// network, chassis whose tunnel IP is not IPv4. A `binding:host_id` naming a chassis by its
    /// hostname is mapped to the chassis id.
    /// Takes the objects owned or borrowed (`&[Port]` or `&[&Port]`), as every builder here.
    pub fn from_nb(
        local: &str,
        networks: &[impl Borrow<Network>],
        ports: &[impl Borrow<Port>],
        chassis: &[impl Borrow<Chassis>],
        migrations: &[Migration],
        local_vifs: BTreeMap<String, u32>,
        tunnel_ofport: Option<u32>,
    ) -> ChassisView {
        let chassis: Vec<&Chassis> = chassis.iter().map(Borrow::borrow).collect();
        let networks: BTreeMap<String, NetworkInfo> = networks
            .iter()
            .map(Borrow::borrow)
            .filter_map(|n: &Network| {
                let vni = n.vni()?;
                let info = NetworkInfo {
                    id: n.id.clone(),
                    key: n.unique_key,
                    vni,
                    physical_network: n.physical_network.clone(),
                };
                (n.unique_key != 0).then(|| (n.id.clone(), info))
            })
            .collect();
        let hostnames: BTreeMap<&str, &str> =
            chassis.iter().filter(|c| c.hostname() != c.id).map(|c| (c.hostname(), c.id.as_str())).collect();
        let ids: BTreeSet<&str> = chassis.iter().map(|c| c.id.as_str()).collect();
        let resolve = |name: &str| -> String {
            if name.is_empty() || ids.contains(name) {
                return name.to_string();
            }
            hostnames.get(name).map_or(name, |id| id).to_string()
        };
        let awaiting_activation = awaiting_activation(local, migrations);
        let forwarding = forwarding(local, migrations);
        let migrations: BTreeMap<&str, &Migration> =
            migrations.iter().map(|m| (m.port_id.as_str(), m)).collect();
        let ports = ports
            .iter()
            .map(Borrow::<Port>::borrow)
            .filter(|p| p.unique_key != 0 && networks.contains_key(&p.network_id))
            .filter_map(|p| {
                let mac = tern_model::parse_mac(&p.mac_address)?;
                let host = resolve(&p.binding_host_id);
                let location = location_of(&p.id, &host, migrations.get(p.id.as_str()).copied());
                Some((
                    p.id.clone(),
                    PortInfo {
                        id: p.id.clone(),
                        network_id: p.network_id.clone(),
                        key: p.unique_key,
                        mac,
                        ips: p.fixed_ips.iter().filter_map(|ip| ip.ip_address).collect(),
                        admin_up: p.admin_state_up,
                        location,
                        port_security: p.port_security_enabled,
                        allowed_pairs: allowed_pairs(p),
                        dhcp: false,
                        security_groups: p.security_groups.clone(),
                    },
                ))
            })
            .collect();
        let chassis = chassis
            .iter()
            .filter_map(|c| match c.tunnel_ip {
                IpAddr::V4(tunnel_ip) => Some((c.id.clone(), ChassisInfo { tunnel_ip })),
                IpAddr::V6(_) => None,
            })
            .collect();
        ChassisView {
            local_chassis: local.to_string(),
            chassis,
            networks,
            ports,
            local_vifs,
            tunnel_ofport,
            awaiting_activation,
            forwarding,
            routers: BTreeMap::new(),
            security_groups: BTreeMap::new(),
            external: BTreeMap::new(),
            floating_ips: Vec::new(),
            index: IndexCell::default(),
        }
    }

    /// The index of ports by network (built now if it is not yet).
    fn index(&self) -> &Index {
        self.index.0.get_or_init(|| {
            let mut index = Index::default();
            let mut active: Vec<&PortInfo> = self.active_ports().collect();
            active.sort_by_key(|p| p.key);
            for p in active {
                index.active.entry(p.network_id.clone()).or_default().push(p.id.clone());
                if let Some(ofport) = self.local_ofport(p) {
                    index.local.entry(p.network_id.clone()).or_default().push((p.id.clone(), ofport));
                }
            }
            index
        })
    }

    /// Adds the external networks this chassis reaches: every flat network of the view whose
    /// physical network has a patch port here (`patch_ports`: physical network -> br-int's
    /// ofport), with its IPv4 subnet's gateway and that gateway's MAC if `neighbours` (IP ->
    /// MAC, as the chassis resolved them) has it.
    pub fn with_external(
        mut self,
        patch_ports: &BTreeMap<String, u32>,
        subnets: &[impl Borrow<Subnet>],
        chassis_mac: [u8; 6],
        neighbours: &BTreeMap<Ipv4Addr, [u8; 6]>,
    ) -> ChassisView {
        for net in self.networks.values() {
            let Some(ofport) = net.physical_network.as_ref().and_then(|p| patch_ports.get(p)) else {
                continue;
            };
            let gateway =
                subnets.iter().map(Borrow::borrow).filter(|s: &&Subnet| s.network_id == net.id).find_map(
                    |s| match s.gateway_ip {
                        Some(IpAddr::V4(gw)) => Some(gw),
                        _ => None,
                    },
                );
            let info = ExternalInfo {
                network_id: net.id.clone(),
                patch_ofport: *ofport,
                chassis_mac,
                gateway,
                gateway_mac: gateway.and_then(|gw| neighbours.get(&gw).copied()),
            };
            self.external.insert(net.id.clone(), info);
        }
        self
    }

    /// Adds the floating IPs that can be translated: associated with a port of the view, IPv4
    /// both ways, with an address port (its MAC) and a router interface on the port's network
    /// (the floating IP's router, else any router there). Call after [`ChassisView::with_routers`].
    pub fn with_floating_ips(
        mut self,
        fips: &[impl Borrow<FloatingIp>],
        ports: &[impl Borrow<Port>],
    ) -> ChassisView {
        let address_ports: BTreeMap<&str, &Port> = ports
            .iter()
            .map(Borrow::borrow)
            .filter(|p: &&Port| p.device_owner == "network:floatingip")
            .map(|p| (p.device_id.as_str(), p))
            .collect();
        for f in fips.iter().map(Borrow::<FloatingIp>::borrow) {
            let (Some(port_id), Some(IpAddr::V4(fixed_ip)), Some(IpAddr::V4(ip))) =
                (&f.port_id, f.fixed_ip_address, f.floating_ip_address)
            else {
                continue;
            };
            let Some(port) = self.ports.get(port_id) else { continue };
            let Some(mac) =
                address_ports.get(f.id.as_str()).and_then(|p| tern_model::parse_mac(&p.mac_address))
            else {
                continue;
            };
            let on_network =
                |r: &RouterInfo| r.interfaces.iter().find(|i| i.network_id == port.network_id).map(|i| i.mac);
            let router_mac = match &f.router_id {
                Some(r) => self.routers.get(r).and_then(on_network),
                None => self.routers.values().find_map(on_network),
            };
            let Some(router_mac) = router_mac else { continue };
            if !self.networks.contains_key(&f.floating_network_id) {
                continue;
            }
            self.floating_ips.push(FloatingIpInfo {
                id: f.id.clone(),
                ip,
                mac,
                network_id: f.floating_network_id.clone(),
                port_id: port_id.clone(),
                fixed_ip,
                router_mac,
            });
        }
        self.floating_ips.sort_by_key(|f| f.ip);
        self
    }

    /// Adds the security groups.
    pub fn with_security_groups(mut self, groups: &[impl Borrow<tern_model::SecurityGroup>]) -> ChassisView {
        self.security_groups = groups
            .iter()
            .map(Borrow::borrow)
            .map(|g: &tern_model::SecurityGroup| {
                let info = SecurityGroupInfo {
                    id: g.id.clone(),
                    rules: g.security_group_rules.clone(),
                    stateful: g.stateful,
                };
                (g.id.clone(), info)
            })
            .collect();
        self
    }

    /// Adds the routers: each interface whose port has a MAC and an IPv4 address inside its
    /// subnet, on a network of the view, and the extra routes (IPv4 only).
    pub fn with_routers(
        mut self,
        routers: &[impl Borrow<Router>],
        subnets: &[impl Borrow<Subnet>],
        ports: &[impl Borrow<Port>],
    ) -> ChassisView {
        let ports: BTreeMap<&str, &Port> =
            ports.iter().map(Borrow::borrow).map(|p: &Port| (p.id.as_str(), p)).collect();
        let subnets: BTreeMap<&str, &Subnet> =
            subnets.iter().map(Borrow::borrow).map(|s: &Subnet| (s.id.as_str(), s)).collect();
        for r in routers.iter().map(Borrow::<Router>::borrow).filter(|r| r.admin_state_up) {
            let interfaces: Vec<RouterInterfaceInfo> = r
                .interfaces
                .iter()
                .filter_map(|i| {
                    let port = ports.get(i.port_id.as_str())?;
                    let IpNet::V4(subnet) = subnets.get(i.subnet_id.as_str())?.cidr else { return None };
                    let ip = port.fixed_ips.iter().find_map(|f| match f.ip_address {
                        Some(IpAddr::V4(ip)) if subnet.contains(&ip) => Some(ip),
                        _ => None,
                    })?;
                    let mac = tern_model::parse_mac(&port.mac_address)?;
                    self.networks.contains_key(&port.network_id).then(|| RouterInterfaceInfo {
                        network_id: port.network_id.clone(),
                        mac,
                        ip,
                        subnet,
                    })
                })
                .collect();
            let routes = r
                .routes
                .iter()
                .filter_map(|route| match (route.destination, route.nexthop) {
                    (IpNet::V4(d), IpAddr::V4(n)) => Some((d, n)),
                    _ => None,
                })
                .collect();
            self.routers.insert(r.id.clone(), RouterInfo { id: r.id.clone(), interfaces, routes });
        }
        self
    }

    /// Marks the ports with an IPv4 address on one of `subnets` with DHCP enabled: the chassis
    /// answers their DHCP requests.
    pub fn with_dhcp(mut self, subnets: &[impl Borrow<Subnet>], ports: &[impl Borrow<Port>]) -> ChassisView {
        let enabled: BTreeSet<&str> = subnets
            .iter()
            .map(Borrow::borrow)
            .filter(|s: &&Subnet| s.enable_dhcp && s.cidr.addr().is_ipv4())
            .map(|s| s.id.as_str())
            .collect();
        for p in ports.iter().map(Borrow::<Port>::borrow) {
            let on = p.fixed_ips.iter().any(|f| {
                enabled.contains(f.subnet_id.as_str()) && matches!(f.ip_address, Some(IpAddr::V4(_)))
            });
            if let Some(info) = self.ports.get_mut(&p.id) {
                info.dhcp = on;
            }
        }
        self
    }

    /// Whether `port` is filtered without conntrack: it has security groups and every one the
    /// view knows is stateless (Neutron refuses a port with both kinds; were one to have both,
    /// it is filtered statefully).
    pub fn stateless(&self, port: &PortInfo) -> bool {
        let mut groups = port.security_groups.iter().filter_map(|g| self.security_groups.get(g)).peekable();
        groups.peek().is_some() && groups.all(|g| !g.stateful)
    }

    /// The routers with an interface on a network that has a local port: those this chassis
    /// routes for.
    pub fn local_routers(&self) -> Vec<&RouterInfo> {
        let local: BTreeSet<&str> = self.local_networks().map(|n| n.id.as_str()).collect();
        self.routers
            .values()
            .filter(|r| r.interfaces.iter().any(|i| local.contains(i.network_id.as_str())))
            .collect()
    }

    /// The networks whose ports this chassis may send to: those with a local port, and those
    /// its local routers reach.
    pub fn dispatch_networks(&self) -> Vec<&NetworkInfo> {
        let mut ids: BTreeSet<&str> = self.local_networks().map(|n| n.id.as_str()).collect();
        for r in self.local_routers() {
            ids.extend(r.interfaces.iter().map(|i| i.network_id.as_str()));
        }
        // A floating IP translated here may be for a port that just left (a forwarding pointer).
        ids.extend(self.forwarded_ports().into_iter().map(|(p, _)| p.network_id.as_str()));
        ids.into_iter().filter_map(|id| self.networks.get(id)).collect()
    }

    /// The forwarding pointers that lead somewhere: port id -> (port, tunnel IP of the chassis
    /// it went to), for active ports not located here whose new chassis is reachable.
    pub fn forwarded_ports(&self) -> Vec<(&PortInfo, Ipv4Addr)> {
        let mut v: Vec<_> = self
            .forwarding
            .iter()
            .filter(|(_, to)| **to != self.local_chassis)
            .filter_map(|(id, to)| {
                let port = self.active_port(id)?;
                if port.location.contains(&self.local_chassis) {
                    return None;
                }
                Some((port, self.chassis.get(to)?.tunnel_ip))
            })
            .collect();
        v.sort_by_key(|(p, _)| p.key);
        v
    }

    /// The networks whose tunnel traffic this chassis accepts: those with a local port, and
    /// those of ports it forwards.
    pub fn ingress_networks(&self) -> Vec<&NetworkInfo> {
        let forwarded: BTreeSet<&str> =
            self.forwarded_ports().into_iter().map(|(p, _)| p.network_id.as_str()).collect();
        self.networks
            .values()
            .filter(|n| forwarded.contains(n.id.as_str()) || self.index().local.contains_key(&n.id))
            .collect()
    }

    /// Ports that get flows anywhere: administratively up, on a known network, located somewhere.
    pub fn active_ports(&self) -> impl Iterator<Item = &PortInfo> {
        self.ports.values().filter(|p| self.is_active(p))
    }

    /// Port `id`, if it is one of [`ChassisView::active_ports`] (a map lookup, not a scan).
    pub fn active_port(&self, id: &str) -> Option<&PortInfo> {
        self.ports.get(id).filter(|p| self.is_active(p))
    }

    fn is_active(&self, p: &PortInfo) -> bool {
        p.admin_up && !p.location.is_empty() && self.networks.contains_key(&p.network_id)
    }

    /// The VIF ofport of `port` if the port is local: located here and plugged here. A VIF whose
    /// port is located elsewhere gets no flows until the location names this chassis.
    pub fn local_ofport(&self, port: &PortInfo) -> Option<u32> {
        if !port.admin_up || !port.location.contains(&self.local_chassis) {
            return None;
        }
        self.local_vifs.get(&port.id).copied()
    }

    /// The local ports of network `network_id` with their ofports, in port-key order.
    pub fn local_ports(&self, network_id: &str) -> Vec<(&PortInfo, u32)> {
        let ids = self.index().local.get(network_id).map_or(&[][..], Vec::as_slice);
        ids.iter().filter_map(|(id, ofport)| Some((self.ports.get(id)?, *ofport))).collect()
    }

    /// The networks that have a local port: only their traffic enters this chassis' pipeline, so
    /// only they get flows here.
    pub fn local_networks(&self) -> impl Iterator<Item = &NetworkInfo> {
        self.index().local.keys().filter_map(|id| self.networks.get(id))
    }

    /// The active ports of network `network_id`, in port-key order.
    pub fn ports_of(&self, network_id: &str) -> Vec<&PortInfo> {
        let ids = self.index().active.get(network_id).map_or(&[][..], Vec::as_slice);
        ids.iter().filter_map(|id| self.ports.get(id)).collect()
    }

    /// The other chassis hosting active ports of network `network_id` (dual-delivery locations
    /// included), with their tunnel IPs; chassis with no known tunnel IP cannot be reached.
    pub fn remote_chassis(&self, network_id: &str) -> BTreeMap<&str, Ipv4Addr> {
        self.ports_of(network_id)
            .into_iter()
            .flat_map(|p| p.location.iter())
            .filter(|c| *c != self.local_chassis)
            .filter_map(|c| Some((c, self.chassis.get(c)?.tunnel_ip)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(host: &str) -> Port {
        let mut p = Port::new("n1");
        p.id = "p1".into();
        p.binding_host_id = host.into();
        p
    }

    fn migration(state: MigrationState) -> Migration {
        let mut m = Migration::new("p1", 1, "c1", "c2");
        m.state = state;
        m
    }

    #[test]
    fn location_from_binding() {
        assert_eq!(port_location(&port(""), None), PortLocation::nowhere());
        assert_eq!(port_location(&port("c1"), None), PortLocation::on("c1"));
    }

    #[test]
    fn location_through_a_migration() {
        use MigrationState::*;
        let dual = PortLocation::dual("c1", "c2");
        assert_eq!(dual.len(), 2);
        let cases = [
            ("c1", DestPlugged, dual.clone()),
            ("c1", Activated, PortLocation::on("c2")),
            ("c2", DestPlugged, PortLocation::on("c2")),
            ("c2", Activated, PortLocation::on("c2")),
            ("c2", Completed, PortLocation::on("c2")),
            ("c1", Announced, dual.clone()),
            ("c2", Announced, PortLocation::on("c2")),
            ("c1", Aborted, PortLocation::on("c1")),
            ("c3", DestPlugged, PortLocation::on("c3")),
            ("c3", Activated, PortLocation::on("c3")),
            ("", DestPlugged, PortLocation::nowhere()),
        ];
        for (host, state, want) in cases {
            assert_eq!(port_location(&port(host), Some(&migration(state))), want, "{host} {state:?}");
        }
        let mut other = migration(DestPlugged);
        other.port_id = "p2".into();
        assert_eq!(port_location(&port("c1"), Some(&other)), PortLocation::on("c1"));
    }

    #[test]
    fn only_the_destination_awaits_activation_and_only_while_dest_plugged() {
        use MigrationState::*;
        for (local, state, want) in [
            ("c2", DestPlugged, true),
            ("c1", DestPlugged, false),
            ("c3", DestPlugged, false),
            ("c2", Activated, false),
            ("c2", Completed, false),
        ] {
            let got = awaiting_activation(local, &[migration(state)]).contains("p1");
            assert_eq!(got, want, "{local} {state:?}");
        }
    }

    #[test]
    fn only_the_source_of_an_activated_migration_forwards() {
        use MigrationState::*;
        for (local, state, want) in [
            ("c1", Activated, Some("c2")),
            ("c1", DestPlugged, None),
            ("c1", Completed, None),
            ("c2", Activated, None),
            ("c3", Activated, None),
        ] {
            let got = forwarding(local, &[migration(state)]);
            assert_eq!(got.get("p1").map(String::as_str), want, "{local} {state:?}");
        }
    }

    #[test]
    fn external_networks_need_a_mapping_and_floating_ips_a_router_and_an_address_port() {
        let overlay = Network { id: "n1".into(), unique_key: 1, ..Network::default() };
        let public = Network {
            id: "ext".into(),
            unique_key: 2,
            physical_network: Some("physnet1".into()),
            ..Network::default()
        };
        let other = Network {
            id: "ext2".into(),
            unique_key: 3,
            physical_network: Some("physnet2".into()),
            ..Network::default()
        };
        let mut vm = port("c1");
        vm.unique_key = 5;
        vm.mac_address = "fa:16:3e:00:00:05".into();
        let mut rif = Port::new("n1");
        rif.id = "rif".into();
        rif.unique_key = 6;
        rif.mac_address = "fa:16:3e:00:00:01".into();
        rif.fixed_ips = vec![tern_model::FixedIp {
            subnet_id: "s1".into(),
            ip_address: Some("10.0.0.1".parse().unwrap()),
        }];
        let mut address = Port::new("ext");
        address.id = "fip-port".into();
        address.unique_key = 7;
        address.mac_address = "fa:16:3e:00:00:99".into();
        address.device_owner = "network:floatingip".into();
        address.device_id = "f1".into();
        let subnet = |id: &str, net: &str, cidr: &str, gw: &str| -> Subnet {
            let mut s: Subnet = serde_json::from_value(serde_json::json!({
                "id": id, "network_id": net, "ip_version": 4, "cidr": cidr
            }))
            .unwrap();
            s.gateway_ip = Some(gw.parse().unwrap());
            s
        };
        let subnets = [
            subnet("s1", "n1", "10.0.0.0/24", "10.0.0.1"),
            subnet("s2", "ext", "172.24.4.0/24", "172.24.4.1"),
        ];
        let router = Router {
            id: "r1".into(),
            admin_state_up: true,
            interfaces: vec![tern_model::RouterInterface { subnet_id: "s1".into(), port_id: "rif".into() }],
            ..Router::default()
        };
        let fip = |id: &str, port: Option<&str>| {
            let mut f = FloatingIp::new("ext");
            f.id = id.into();
            f.floating_ip_address = Some("172.24.4.20".parse().unwrap());
            f.port_id = port.map(str::to_owned);
            f.fixed_ip_address = port.map(|_| "10.0.0.5".parse().unwrap());
            f
        };
        let ports = [vm, rif, address];
        let patches = BTreeMap::from([("physnet1".to_string(), 9)]);
        let gw_mac = [2, 0, 0, 0, 0, 1];
        let neighbours = BTreeMap::from([(Ipv4Addr::new(172, 24, 4, 1), gw_mac)]);
        let view = |routers: &[Router], fips: &[FloatingIp]| {
            ChassisView::from_nb(
                "c1",
                &[overlay.clone(), public.clone(), other.clone()],
                &ports,
                &[] as &[Chassis],
                &[],
                BTreeMap::new(),
                None,
            )
            .with_routers(routers, &subnets, &ports)
            .with_external(&patches, &subnets, chassis_mac(Ipv4Addr::new(172, 31, 0, 1)), &neighbours)
            .with_floating_ips(fips, &ports)
        };
        let v = view(
            std::slice::from_ref(&router),
            &[fip("f1", Some("p1")), fip("f2", Some("p1")), fip("f3", None)],
        );
        // Only the mapped physical network is reachable; its gateway is resolved.
        assert_eq!(v.external.keys().collect::<Vec<_>>(), ["ext"]);
        assert_eq!(v.external["ext"].patch_ofport, 9);
        assert_eq!(v.external["ext"].gateway_mac, Some(gw_mac));
        assert_eq!(v.external["ext"].chassis_mac, [0x0a, 0x74, 172, 31, 0, 1]);
        // f2 has no address port, f3 no port: only f1, with its address port's MAC and the
        // router's MAC on the VM's network.
        assert_eq!(v.floating_ips.len(), 1, "{:?}", v.floating_ips);
        let f = &v.floating_ips[0];
        assert_eq!(
            (f.id.as_str(), f.mac, f.router_mac),
            ("f1", [0xfa, 0x16, 0x3e, 0, 0, 0x99], [0xfa, 0x16, 0x3e, 0, 0, 1])
        );
        // Without a router on the VM's network nothing can be translated.
        assert!(view(&[], &[fip("f1", Some("p1"))]).floating_ips.is_empty());
        assert_eq!(chassis_mac(Ipv4Addr::new(10, 1, 2, 3)), [0x0a, 0x74, 10, 1, 2, 3]);
    }

    #[test]
    fn a_port_is_filtered_statelessly_only_when_all_its_groups_are_stateless() {
        let group = |id: &str, stateful: bool| {
            let mut g: tern_model::SecurityGroup =
                serde_json::from_value(serde_json::json!({"id": id, "name": id})).unwrap();
            g.stateful = stateful;
            g
        };
        let v = ChassisView::default().with_security_groups(&[
            group("full", true),
            group("plain", false),
            group("plain2", false),
        ]);
        let mut p = port("c1");
        let with = |p: &mut Port, groups: &[&str]| {
            p.security_groups = groups.iter().map(|g| (*g).to_owned()).collect();
            let n = Network { id: "n1".into(), unique_key: 1, ..Network::default() };
            p.unique_key = 1;
            p.mac_address = "fa:16:3e:00:00:01".into();
            ChassisView::from_nb(
                "c1",
                &[n],
                std::slice::from_ref(p),
                &[] as &[Chassis],
                &[],
                BTreeMap::new(),
                None,
            )
            .ports["p1"]
                .clone()
        };
        assert!(v.stateless(&with(&mut p, &["plain", "plain2"])));
        assert!(!v.stateless(&with(&mut p, &["plain", "full"])), "mixed: stateful");
        assert!(!v.stateless(&with(&mut p, &[])), "no group: nothing passes, statefully");
        assert!(!v.stateless(&with(&mut p, &["unknown"])));
    }

    #[test]
    fn from_nb_resolves_and_filters() {
        let mut n =
            Network { id: "n1".into(), unique_key: 7, segmentation_id: Some(100), ..Network::default() };
        let no_key = Network { id: "n0".into(), ..Network::default() };
        let mut p = port("host-b");
        p.unique_key = 3;
        p.mac_address = "fa:16:3e:00:00:01".into();
        let mut bad_mac = port("c1");
        bad_mac.id = "p2".into();
        bad_mac.unique_key = 4;
        let mut c2 = Chassis::new("c2", "172.31.0.2".parse().unwrap());
        c2.hostname = "host-b".into();
        let v6 = Chassis::new("c6", "fd00::6".parse().unwrap());
        let mut m = Migration::new("p1", 1, "c2", "c3");
        m.state = MigrationState::DestPlugged;
        let view = ChassisView::from_nb(
            "c1",
            &[n.clone(), no_key],
            &[p, bad_mac],
            &[c2, v6],
            &[m],
            BTreeMap::new(),
            Some(3),
        );
        assert_eq!(view.networks.keys().collect::<Vec<_>>(), ["n1"]);
        assert_eq!(view.networks["n1"].vni, 100);
        assert_eq!(view.ports.keys().collect::<Vec<_>>(), ["p1"]);
        assert_eq!(view.ports["p1"].location, PortLocation::dual("c2", "c3"));
        assert_eq!(view.chassis.keys().collect::<Vec<_>>(), ["c2"]);
        assert!(view.awaiting_activation.is_empty(), "c3 awaits it, not c1");
        n.segmentation_id = None;
        let view =
            ChassisView::from_nb("c1", &[n], &[] as &[Port], &[] as &[Chassis], &[], BTreeMap::new(), None);
        assert_eq!(view.networks["n1"].vni, 7);
    }
}
