//! A synthetic cloud for benchmarks and scale tests: C chassis, N tenant networks (a /24 each,
//! DHCP on), P VM ports on random networks bound to random chassis, a router on every 10th
//! network joining it to the next one (and to the external network), every port in one security
//! group of 5 rules (one of them a remote-group rule), and floating IPs on 1% of the ports (on
//! routed networks). Deterministic: the same sizes and seed give the same cloud.
//!
//! [`Naming`] lets a cloud live beside other objects in one NB (`tern lab load` puts one beside a
//! lab's own networks and VMs): a prefix on every id, its own physical network for the external
//! network, its own first octet for the tenant networks. The default is the benchmarks' cloud.
//!
//! Everything is NB objects as the API writes them, so a benchmark feeds them to the real
//! [`crate::cache::NbCache`] and [`crate::view::chassis_view`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use tern_model::{
    Chassis, Direction, EtherType, FixedIp, FloatingIp, Kind, Network, Object, Port, Router, RouterInterface,
    SecurityGroup, SecurityGroupRule, Subnet,
};

use crate::view::Local;

/// The sizes of a synthetic cloud.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    pub chassis: usize,
    pub networks: usize,
    pub ports: usize,
}

impl Sizes {
    /// The shapes the scale issue measures: 1,000 ports on 100 chassis and 100 networks,
    /// 10,000 on 1,000 and 1,000, 30,000 on 1,000 chassis and 3,000 networks.
    pub fn for_ports(ports: usize) -> Sizes {
        let chassis = (ports / 10).clamp(1, 1000);
        let networks = (ports / 10).max(1);
        Sizes { chassis, networks, ports }
    }
}

/// The physical network of the external network, and br-int's patch port to it.
pub const PHYSNET: &str = "physnet1";
pub const PATCH_OFPORT: u32 = 2;
pub const TUNNEL_OFPORT: u32 = 1;
/// The external network's gateway and its MAC (as a chassis would have resolved them).
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(172, 24, 0, 1);
pub const GATEWAY_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];

/// How a cloud names its objects and numbers its tenant networks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Naming {
    /// Prepended to every id the cloud gives: chassis, networks, subnets, ports, routers,
    /// floating IPs, the security group.
    pub prefix: String,
    /// The external network's physical network (a chassis' bridge mapping brings that network
    /// into its scope).
    pub physnet: String,
    /// The first octet of the tenant networks: network `i` is `OCTET.(i / 256).(i % 256).0/24`.
    pub tenant_octet: u8,
}

impl Default for Naming {
    /// The benchmarks' cloud: no prefix, [`PHYSNET`], tenant networks in 10.0.0.0/8.
    fn default() -> Naming {
        Naming { prefix: String::new(), physnet: PHYSNET.into(), tenant_octet: 10 }
    }
}

impl Naming {
    fn id(&self, id: impl std::fmt::Display) -> String {
        format!("{}{id}", self.prefix)
    }
}

/// A synthetic cloud: its NB objects, and where its VM ports are.
pub struct Cloud {
    pub sizes: Sizes,
    pub naming: Naming,
    pub objects: Vec<Object>,
    /// VM port id -> (network index, chassis index).
    pub placement: BTreeMap<String, (usize, usize)>,
}

/// The order a cloud's objects are written to a store in: each kind after the kinds it refers to.
pub const WRITE_ORDER: [Kind; 7] = [
    Kind::Chassis,
    Kind::SecurityGroup,
    Kind::Network,
    Kind::Subnet,
    Kind::Port,
    Kind::Router,
    Kind::FloatingIp,
];

/// A small, deterministic generator (xorshift64*); good enough to scatter ports, and to pick what
/// changes in the benchmarks, tests and the lab's churn.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// A number below `n` (0 for `n` = 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }
}

pub fn chassis_name(i: usize) -> String {
    format!("hv-{i:04}")
}

pub fn network_id(i: usize) -> String {
    format!("net-{i:05}")
}

fn subnet_id(i: usize) -> String {
    format!("sub-{i:05}")
}

pub fn port_id(i: usize) -> String {
    format!("vm-{i:06}")
}

fn mac(prefix: u8, i: usize) -> String {
    format!("fa:16:{prefix:02x}:{:02x}:{:02x}:{:02x}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff)
}

fn tunnel_ip(i: usize) -> Ipv4Addr {
    let n = i + 1;
    Ipv4Addr::new(172, 16, (n >> 8) as u8, (n & 0xff) as u8)
}

/// The /24 of tenant network `i`: OCTET.X.Y.0/24.
fn network_base(octet: u8, i: usize) -> [u8; 3] {
    [octet, (i >> 8) as u8, (i & 0xff) as u8]
}

/// Whether tenant network `i` has a router interface (every 10th network and the one after it).
pub fn routed(i: usize) -> bool {
    i % 10 <= 1
}

impl Cloud {
    pub fn new(sizes: Sizes, seed: u64) -> Cloud {
        Cloud::with_naming(sizes, seed, Naming::default())
    }

    /// [`Cloud::new`] named by `naming` (the same cloud otherwise: same placement, same keys).
    pub fn with_naming(sizes: Sizes, seed: u64, naming: Naming) -> Cloud {
        let n_ = &naming;
        let mut rng = Rng::new(seed);
        let mut objects = Vec::new();
        let mut placement = BTreeMap::new();
        let mut port_key = 0u32;
        let mut next_port_key = || {
            port_key += 1;
            port_key
        };
        for c in 0..sizes.chassis {
            objects.push(Object::Chassis(Chassis::new(n_.id(chassis_name(c)), IpAddr::V4(tunnel_ip(c)))));
        }
        let group = security_group(n_);
        // Tenant networks, each with a DHCP-enabled /24 whose gateway is .1.
        for n in 0..sizes.networks {
            let key = n as u32 + 1;
            objects.push(Object::Network(Network {
                id: n_.id(network_id(n)),
                unique_key: key,
                segmentation_id: Some(key + 1000),
                ..Network::default()
            }));
            let [a, b, c] = network_base(n_.tenant_octet, n);
            let mut s = Subnet::new(n_.id(network_id(n)), format!("{a}.{b}.{c}.0/24").parse().unwrap());
            s.id = n_.id(subnet_id(n));
            s.gateway_ip = Some(IpAddr::V4(Ipv4Addr::new(a, b, c, 1)));
            s.enable_dhcp = true;
            objects.push(Object::Subnet(s));
        }
        // The external network: flat on physnet1, 172.24.0.0/16.
        let public = n_.id("public");
        let sub_public = n_.id("sub-public");
        objects.push(Object::Network(Network {
            id: public.clone(),
            unique_key: sizes.networks as u32 + 1,
            physical_network: Some(n_.physnet.clone()),
            router_external: true,
            ..Network::default()
        }));
        let mut ext = Subnet::new(public.clone(), "172.24.0.0/16".parse().unwrap());
        ext.id = sub_public.clone();
        ext.gateway_ip = Some(IpAddr::V4(GATEWAY));
        ext.enable_dhcp = false;
        objects.push(Object::Subnet(ext));
        // VM ports: a random network, a random chassis, the next free address of the /24.
        let mut hosts_used = vec![1u32; sizes.networks];
        let mut vm_ports = Vec::new();
        for p in 0..sizes.ports {
            let n = rng.below(sizes.networks);
            let c = rng.below(sizes.chassis);
            hosts_used[n] = if hosts_used[n] >= 253 { 2 } else { hosts_used[n] + 1 };
            let [a, b, cc] = network_base(n_.tenant_octet, n);
            let mut port = Port::new(n_.id(network_id(n)));
            port.id = n_.id(port_id(p));
            port.unique_key = next_port_key();
            port.mac_address = mac(0x3e, p);
            port.binding_host_id = n_.id(chassis_name(c));
            port.device_owner = "compute:nova".into();
            port.security_groups = vec![group.id.clone()];
            port.fixed_ips = vec![FixedIp {
                subnet_id: n_.id(subnet_id(n)),
                ip_address: Some(IpAddr::V4(Ipv4Addr::new(a, b, cc, hosts_used[n] as u8))),
            }];
            placement.insert(port.id.clone(), (n, c));
            vm_ports.push(port);
        }
        // Routers: one per 10 networks, on networks 10k and 10k + 1, with a gateway on public.
        for r in (0..sizes.networks).step_by(10) {
            let mut router = Router { id: n_.id(format_args!("router-{r:05}")), ..Router::default() };
            router.external_gateway_info = serde_json::from_value(serde_json::json!({
                "network_id": public.clone()
            }))
            .ok();
            for n in [r, r + 1].into_iter().filter(|n| *n < sizes.networks) {
                let [a, b, c] = network_base(n_.tenant_octet, n);
                let mut iface = Port::new(n_.id(network_id(n)));
                iface.id = n_.id(format_args!("rif-{n:05}"));
                iface.unique_key = next_port_key();
                iface.mac_address = mac(0x4e, n);
                iface.device_owner = "network:router_interface".into();
                iface.device_id = router.id.clone();
                iface.fixed_ips = vec![FixedIp {
                    subnet_id: n_.id(subnet_id(n)),
                    ip_address: Some(IpAddr::V4(Ipv4Addr::new(a, b, c, 1))),
                }];
                router
                    .interfaces
                    .push(RouterInterface { subnet_id: n_.id(subnet_id(n)), port_id: iface.id.clone() });
                objects.push(Object::Port(iface));
            }
            objects.push(Object::Router(router));
        }
        // Floating IPs on 1% of the VM ports, chosen among those on routed networks.
        let wanted = sizes.ports / 100;
        for (fips, port) in vm_ports.iter().filter(|p| routed(placement[&p.id].0)).take(wanted).enumerate() {
            let (n, _) = placement[&port.id];
            let address = Ipv4Addr::new(172, 24, 1 + (fips / 250) as u8, 2 + (fips % 250) as u8);
            let mut fip = FloatingIp::new(public.clone());
            fip.id = n_.id(format_args!("fip-{fips:05}"));
            fip.floating_ip_address = Some(IpAddr::V4(address));
            fip.port_id = Some(port.id.clone());
            fip.fixed_ip_address = port.fixed_ips[0].ip_address;
            fip.router_id = Some(n_.id(format_args!("router-{:05}", n - n % 10)));
            let mut address_port = Port::new(public.clone());
            address_port.id = n_.id(format_args!("fip-port-{fips:05}"));
            address_port.unique_key = next_port_key();
            address_port.mac_address = mac(0x5e, fips);
            address_port.device_owner = "network:floatingip".into();
            address_port.device_id = fip.id.clone();
            address_port.fixed_ips =
                vec![FixedIp { subnet_id: sub_public.clone(), ip_address: Some(IpAddr::V4(address)) }];
            objects.push(Object::Port(address_port));
            objects.push(Object::FloatingIp(fip));
        }
        objects.extend(vm_ports.into_iter().map(Object::Port));
        objects.push(Object::SecurityGroup(group));
        Cloud { sizes, naming, objects, placement }
    }

    /// The name of chassis `c` (`hv-NNNN` with the prefix).
    pub fn chassis_name(&self, c: usize) -> String {
        self.naming.id(chassis_name(c))
    }

    /// The id of tenant network `n` (`net-NNNNN` with the prefix).
    pub fn network_id(&self, n: usize) -> String {
        self.naming.id(network_id(n))
    }

    /// The id of VM port `p` (`vm-NNNNNN` with the prefix).
    pub fn port_id(&self, p: usize) -> String {
        self.naming.id(port_id(p))
    }

    /// What chassis `c` knows beside the NB: its VIFs (every VM port bound there, plugged),
    /// its tunnel and patch ports, the external gateway resolved.
    pub fn local(&self, c: usize) -> Local {
        let vifs = self
            .placement
            .iter()
            .filter(|(_, (_, on))| *on == c)
            .enumerate()
            .map(|(i, (id, _))| (id.clone(), 10 + i as u32))
            .collect();
        Local {
            chassis: self.chassis_name(c),
            dual_delivery: true,
            chassis_mac: tern_pipeline::view::chassis_mac(tunnel_ip(c)),
            vifs,
            tunnel_ofport: Some(TUNNEL_OFPORT),
            patch_ports: BTreeMap::from([(self.naming.physnet.clone(), PATCH_OFPORT)]),
            neighbours: BTreeMap::from([(GATEWAY, GATEWAY_MAC)]),
        }
    }

    /// The VM port `id` as the cloud holds it.
    pub fn port(&self, id: &str) -> Option<&Port> {
        self.objects.iter().find_map(|o| match o {
            Object::Port(p) if p.id == id => Some(p),
            _ => None,
        })
    }
}

/// Neutron's default group, much as a cloud has it: all egress, ingress from the group's own
/// members (the remote-group rule), SSH and ICMP from anywhere.
fn security_group(naming: &Naming) -> SecurityGroup {
    let id = naming.id("sg-default");
    let rule = |direction, ethertype, f: &dyn Fn(&mut SecurityGroupRule)| {
        let mut r = SecurityGroupRule::new(direction, ethertype);
        r.security_group_id = id.clone();
        f(&mut r);
        r
    };
    let rules = vec![
        rule(Direction::Egress, EtherType::IPv4, &|_| {}),
        rule(Direction::Egress, EtherType::IPv6, &|_| {}),
        rule(Direction::Ingress, EtherType::IPv4, &|r| r.remote_group_id = Some(id.clone())),
        rule(Direction::Ingress, EtherType::IPv4, &|r| {
            r.protocol = Some("tcp".into());
            r.port_range_min = Some(22);
            r.port_range_max = Some(22);
            r.remote_ip_prefix = Some("0.0.0.0/0".parse().unwrap());
        }),
        rule(Direction::Ingress, EtherType::IPv4, &|r| r.protocol = Some("icmp".into())),
    ];
    let mut rules = rules;
    for (i, r) in rules.iter_mut().enumerate() {
        r.id = naming.id(format_args!("rule-{i}"));
    }
    SecurityGroup {
        id: id.clone(),
        name: naming.id("default"),
        security_group_rules: rules,
        ..SecurityGroup::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_cloud_is_the_same_cloud_under_its_prefix() {
        let sizes = Sizes { chassis: 5, networks: 12, ports: 60 };
        let plain = Cloud::new(sizes, 3);
        let naming = Naming { prefix: "bg-".into(), physnet: "bg-physnet1".into(), tenant_octet: 100 };
        let named = Cloud::with_naming(sizes, 3, naming.clone());
        assert_eq!(plain.objects.len(), named.objects.len());
        assert_eq!(plain.chassis_name(2), chassis_name(2));
        assert_eq!(named.chassis_name(2), format!("bg-{}", chassis_name(2)));
        assert_eq!(
            plain.placement.values().collect::<Vec<_>>(),
            named.placement.values().collect::<Vec<_>>()
        );
        for o in &named.objects {
            assert!(o.id().starts_with("bg-"), "{o:?}");
            let json = o.to_json_value().to_string();
            for (field, value) in [("network_id", "net-"), ("subnet_id", "sub-"), ("binding:host_id", "hv-")]
            {
                assert!(!json.contains(&format!("\"{field}\":\"{value}")), "{field} unprefixed in {json}");
            }
            match o {
                Object::Subnet(s) if s.network_id != "bg-public" => {
                    assert_eq!(s.cidr.network().to_string().split('.').next(), Some("100"))
                }
                Object::Network(n) if n.physical_network.is_some() => {
                    assert_eq!(n.physical_network.as_deref(), Some("bg-physnet1"))
                }
                _ => {}
            }
        }
        let local = named.local(1);
        assert_eq!(local.chassis, "bg-hv-0001");
        assert!(local.patch_ports.contains_key("bg-physnet1"));
    }
}
