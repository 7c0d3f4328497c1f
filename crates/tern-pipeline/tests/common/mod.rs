//! The NB fixture the pipeline tests share, and a tiny snapshot helper (insta-like: compare with
//! `tests/snapshots/NAME.txt`; `TERN_UPDATE_SNAPSHOTS=1` rewrites the file instead).
//!
//! Three chassis hv1..hv3 (tunnel IPs 172.31.0.1..3, tunnel ofport 3 everywhere), two networks:
//! * net-a (key 1, VNI 100): a1 on hv1, a2 on hv2, a3 and a4 on hv3, a9 unbound (nowhere);
//! * net-b (key 2, VNI 200): b1 on hv1, b2 on hv2 — nothing on hv3.
//!
//! Port keys are 11..14, 19, 21, 22 and each MAC ends in its key's digits (a1: fa:16:3e:00:00:11),
//! each IP too (a1: 10.0.1.11, b1: 10.0.2.21). a2 has allowed address pairs (10.0.1.100 with
//! fa:16:3e:00:01:00, 192.168.7.0/24 with its own MAC); b2 has port security off. `routed` adds
//! router r1, `floating` an external network and a floating IP on a3.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use tern_model::{Chassis, Migration, MigrationState, Network, Port};
use tern_pipeline::ChassisView;

pub const TUNNEL_OFPORT: u32 = 3;

pub struct Nb {
    pub networks: Vec<Network>,
    pub ports: Vec<Port>,
    pub chassis: Vec<Chassis>,
    pub migrations: Vec<Migration>,
    pub routers: Vec<tern_model::Router>,
    pub subnets: Vec<tern_model::Subnet>,
    pub security_groups: Vec<tern_model::SecurityGroup>,
    pub floating_ips: Vec<tern_model::FloatingIp>,
    /// Physical network -> br-int's patch port (the same on every chassis).
    pub patch_ports: BTreeMap<String, u32>,
    /// What the chassis resolved on external networks: IP -> MAC.
    pub neighbours: BTreeMap<std::net::Ipv4Addr, [u8; 6]>,
}

/// br-int's end of the patch to br-ex (physnet1) in the floating-IP fixture.
pub const PATCH_OFPORT: u32 = 5;

/// Neutron's default group (all egress; ingress from the group's members), and "web" (TCP 80-81
/// and ICMP echo from anywhere).
fn security_groups() -> Vec<tern_model::SecurityGroup> {
    let group = |id: &str, rules: serde_json::Value| -> tern_model::SecurityGroup {
        serde_json::from_value(serde_json::json!({"id": id, "name": id, "security_group_rules": rules}))
            .unwrap()
    };
    vec![
        group(
            "default",
            serde_json::json!([
                {"direction": "egress", "ethertype": "IPv4"},
                {"direction": "egress", "ethertype": "IPv6"},
                {"direction": "ingress", "ethertype": "IPv4", "remote_group_id": "default"},
                {"direction": "ingress", "ethertype": "IPv6", "remote_group_id": "default"},
            ]),
        ),
        group(
            "web",
            serde_json::json!([
                {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 80, "port_range_max": 81, "remote_ip_prefix": "0.0.0.0/0"},
                {"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp", "port_range_min": 8},
            ]),
        ),
    ]
}

fn network(id: &str, key: u32, vni: u32) -> Network {
    Network { id: id.into(), unique_key: key, segmentation_id: Some(vni), ..Network::default() }
}

fn port(id: &str, network: &str, key: u32, host: &str) -> Port {
    let mut p = Port::new(network);
    p.id = id.into();
    p.unique_key = key;
    p.mac_address = format!("fa:16:3e:00:00:{key}");
    p.binding_host_id = host.into();
    p.security_groups =
        if id == "a1" { vec!["default".into(), "web".into()] } else { vec!["default".into()] };
    let subnet = if network == "net-a" { 1 } else { 2 };
    p.fixed_ips = vec![tern_model::FixedIp {
        subnet_id: format!("sub-{subnet}"),
        ip_address: Some(format!("10.0.{subnet}.{key}").parse().unwrap()),
    }];
    p
}

pub fn nb() -> Nb {
    Nb {
        networks: vec![network("net-a", 1, 100), network("net-b", 2, 200)],
        ports: vec![
            port("a1", "net-a", 11, "hv1"),
            {
                // A VIP shared with another VM, and a range behind its own MAC.
                let mut a2 = port("a2", "net-a", 12, "hv2");
                a2.allowed_address_pairs = vec![
                    tern_model::AllowedAddressPair {
                        ip_address: "10.0.1.100".into(),
                        mac_address: Some("fa:16:3e:00:01:00".into()),
                    },
                    tern_model::AllowedAddressPair { ip_address: "192.168.7.0/24".into(), mac_address: None },
                ];
                a2
            },
            port("a3", "net-a", 13, "hv3"),
            port("a4", "net-a", 14, "hv3"),
            port("a9", "net-a", 19, ""),
            port("b1", "net-b", 21, "hv1"),
            {
                // Port security off: b2 may send anything.
                let mut b2 = port("b2", "net-b", 22, "hv2");
                b2.port_security_enabled = false;
                b2
            },
        ],
        chassis: (1..=3)
            .map(|i| Chassis::new(format!("hv{i}"), format!("172.31.0.{i}").parse().unwrap()))
            .collect(),
        migrations: vec![],
        routers: vec![],
        subnets: vec![],
        security_groups: security_groups(),
        floating_ips: vec![],
        patch_ports: BTreeMap::new(),
        neighbours: BTreeMap::new(),
    }
}

/// The VIFs plugged on `chassis`: port id -> ofport.
pub fn vifs(chassis: &str) -> BTreeMap<String, u32> {
    let v: &[(&str, u32)] = match chassis {
        "hv1" => &[("a1", 1), ("b1", 2)],
        "hv2" => &[("a2", 1), ("b2", 2)],
        "hv3" => &[("a3", 1), ("a4", 2)],
        _ => &[],
    };
    v.iter().map(|(p, o)| (p.to_string(), *o)).collect()
}

impl Nb {
    pub fn view(&self, chassis: &str, vifs: BTreeMap<String, u32>) -> ChassisView {
        ChassisView::from_nb(
            chassis,
            &self.networks,
            &self.ports,
            &self.chassis,
            &self.migrations,
            vifs,
            Some(TUNNEL_OFPORT),
        )
        .with_routers(&self.routers, &self.subnets, &self.ports)
        .with_dhcp(&self.subnets, &self.ports)
        .with_security_groups(&self.security_groups)
        .with_external(
            &self.patch_ports,
            &self.subnets,
            tern_pipeline::view::chassis_mac(self.tunnel_ip(chassis)),
            &self.neighbours,
        )
        .with_floating_ips(&self.floating_ips, &self.ports)
    }

    fn tunnel_ip(&self, chassis: &str) -> std::net::Ipv4Addr {
        match self.chassis.iter().find(|c| c.id == chassis).map(|c| c.tunnel_ip) {
            Some(std::net::IpAddr::V4(ip)) => ip,
            _ => std::net::Ipv4Addr::UNSPECIFIED,
        }
    }

    /// [`Nb::routed`] plus the flat external network "public" (key 9, physnet1, 172.24.4.0/24,
    /// gateway 172.24.4.1 resolved to 02:00:00:00:00:01) as r1's gateway, reached through
    /// br-int's patch port 5 on every chassis, and floating IP 172.24.4.13 (MAC
    /// fa:16:3e:00:09:13) on a3.
    pub fn floating(self) -> Nb {
        let mut nb = self.routed();
        nb.networks.push(Network {
            id: "public".into(),
            unique_key: 9,
            physical_network: Some("physnet1".into()),
            router_external: true,
            ..Network::default()
        });
        let mut s: tern_model::Subnet = serde_json::from_value(serde_json::json!({
            "id": "sub-ext", "network_id": "public", "ip_version": 4, "cidr": "172.24.4.0/24"
        }))
        .unwrap();
        s.gateway_ip = Some("172.24.4.1".parse().unwrap());
        nb.subnets.push(s);
        let mut address = port("fip-1-address", "public", 0, "");
        address.mac_address = "fa:16:3e:00:09:13".into();
        address.device_owner = "network:floatingip".into();
        address.device_id = "fip-1".into();
        address.fixed_ips = vec![tern_model::FixedIp {
            subnet_id: "sub-ext".into(),
            ip_address: Some("172.24.4.13".parse().unwrap()),
        }];
        nb.ports.push(address);
        let mut fip = tern_model::FloatingIp::new("public");
        fip.id = "fip-1".into();
        fip.floating_ip_address = Some("172.24.4.13".parse().unwrap());
        fip.port_id = Some("a3".into());
        fip.fixed_ip_address = Some("10.0.1.13".parse().unwrap());
        fip.router_id = Some("r1".into());
        nb.floating_ips.push(fip);
        nb.patch_ports.insert("physnet1".into(), PATCH_OFPORT);
        nb.neighbours.insert("172.24.4.1".parse().unwrap(), [2, 0, 0, 0, 0, 1]);
        nb
    }

    /// Router r1 joining net-a (10.0.1.0/24, its interface 10.0.1.1) and net-b (10.0.2.0/24,
    /// 10.0.2.1), with an extra route 172.16.0.0/16 via a4 (10.0.1.14).
    pub fn routed(mut self) -> Nb {
        let mut r = tern_model::Router { id: "r1".into(), admin_state_up: true, ..Default::default() };
        for (net, k) in [("net-a", 1u8), ("net-b", 2)] {
            let cidr = format!("10.0.{k}.0/24");
            let mut s: tern_model::Subnet = serde_json::from_value(serde_json::json!({
                "id": format!("sub-{k}"), "network_id": net, "ip_version": 4, "cidr": cidr
            }))
            .unwrap();
            s.gateway_ip = Some(format!("10.0.{k}.1").parse().unwrap());
            self.subnets.push(s);
            let mut p = port(&format!("r1-{net}"), net, 0, "");
            p.mac_address = format!("fa:16:3e:00:0{k}:01");
            p.fixed_ips[0].ip_address = Some(format!("10.0.{k}.1").parse().unwrap());
            p.device_owner = "network:router_interface".into();
            self.ports.push(p);
            r.interfaces.push(tern_model::RouterInterface {
                subnet_id: format!("sub-{k}"),
                port_id: format!("r1-{net}"),
            });
        }
        r.routes = vec![serde_json::from_value(
            serde_json::json!({"destination": "172.16.0.0/16", "nexthop": "10.0.1.14"}),
        )
        .unwrap()];
        self.routers.push(r);
        self
    }

    /// b1 in the stateless group "plain" (all IPv4 out, ICMP in from anywhere) instead of the
    /// default group.
    pub fn stateless(mut self) -> Nb {
        let mut plain: tern_model::SecurityGroup = serde_json::from_value(serde_json::json!({
            "id": "plain", "name": "plain", "stateful": false, "security_group_rules": [
                {"direction": "egress", "ethertype": "IPv4"},
                {"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp", "remote_ip_prefix": "0.0.0.0/0"},
            ]
        }))
        .unwrap();
        plain.stateful = false;
        self.security_groups.push(plain);
        self.port_mut("b1").security_groups = vec!["plain".into()];
        self
    }

    pub fn port_mut(&mut self, id: &str) -> &mut Port {
        self.ports.iter_mut().find(|p| p.id == id).expect("fixture port")
    }

    /// a3 live-migrating hv3 -> hv2 in `state` (binding still hv3).
    pub fn migrating_a3(mut self, state: MigrationState) -> Nb {
        let mut m = Migration::new("a3", 1, "hv3", "hv2");
        m.state = state;
        if state == MigrationState::Activated {
            m.activated_by = Some(tern_model::ActivationSource::Rarp);
        }
        self.migrations.push(m);
        self
    }
}

/// hv2's VIFs once a3's destination VIF is plugged there (ofport 4).
pub fn hv2_vifs_with_a3() -> BTreeMap<String, u32> {
    let mut v = vifs("hv2");
    v.insert("a3".into(), 4);
    v
}

/// Every fixture view the snapshots cover, by snapshot name.
pub fn fixture_views() -> Vec<(&'static str, ChassisView)> {
    let plain = nb();
    let dual = nb().migrating_a3(MigrationState::DestPlugged);
    let activated = nb().migrating_a3(MigrationState::Activated);
    let routed = nb().routed();
    let floating = nb().floating();
    let stateless = nb().stateless();
    let floating_moved = nb().floating().migrating_a3(MigrationState::Activated);
    vec![
        ("hv1", plain.view("hv1", vifs("hv1"))),
        ("hv2", plain.view("hv2", vifs("hv2"))),
        ("hv3", plain.view("hv3", vifs("hv3"))),
        ("dual_delivery_hv1_bystander", dual.view("hv1", vifs("hv1"))),
        ("dual_delivery_hv2_destination", dual.view("hv2", hv2_vifs_with_a3())),
        ("dual_delivery_hv3_source", dual.view("hv3", vifs("hv3"))),
        ("activated_hv3_source_forwards", activated.view("hv3", vifs("hv3"))),
        ("routed_hv2", routed.view("hv2", vifs("hv2"))),
        ("routed_hv3_one_network", routed.view("hv3", vifs("hv3"))),
        ("floating_ip_hv3", floating.view("hv3", vifs("hv3"))),
        ("stateless_group_hv1", stateless.view("hv1", vifs("hv1"))),
        ("floating_ip_hv1_elsewhere", floating.view("hv1", vifs("hv1"))),
        ("floating_ip_activated_hv2_destination", floating_moved.view("hv2", hv2_vifs_with_a3())),
        ("floating_ip_activated_hv3_source_forwards", floating_moved.view("hv3", vifs("hv3"))),
    ]
}

pub fn assert_snapshot(name: &str, actual: &str) {
    let path: PathBuf =
        [env!("CARGO_MANIFEST_DIR"), "tests", "snapshots", &format!("{name}.txt")].iter().collect();
    if std::env::var_os("TERN_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).expect("writing snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{}: {e} (run with TERN_UPDATE_SNAPSHOTS=1 to create it)", path.display())
    });
    assert!(
        expected == actual,
        "snapshot {name} differs (TERN_UPDATE_SNAPSHOTS=1 rewrites it)\n--- expected\n{expected}--- actual\n{actual}"
    );
}
