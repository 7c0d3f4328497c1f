//! Table PORT_SECURITY: a VM sends only from its own MAC and IPs (Neutron's port security). For
//! each local port whose `port_security_enabled` is on, the packets that pass are:
//! * IPv4 from (its MAC, one of its fixed IPs or an allowed address pair's range), and ARP whose
//!   sender is that MAC and address (GARPs included);
//! * IPv6 from its MAC with one of its addresses, a link-local address, or the unspecified
//!   address (duplicate address detection);
//! * DHCP discovery from 0.0.0.0 (the VM has no address yet), and RARP from its MAC (QEMU's
//!   announcement after a live migration);
//!
//! and anything else from that port is dropped. A port with port security off passes everything.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use tern_openflow::{Action, Match};

use crate::cookie::{App, Object};
use crate::flowset::FlowSet;
use crate::tables::{EGRESS_ACL, PORT_SECURITY, REG_SRC_PORT};
use crate::view::{ChassisView, PortInfo};

use super::{flow, PRIORITY_DEFAULT, PRIORITY_PORT};

/// Below the per-address flows: the rest of a secured port's traffic, dropped.
const PRIORITY_PORT_DROP: u16 = PRIORITY_PORT - 10;

const ETH_IPV4: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
const ETH_RARP: u16 = 0x8035;
const ETH_IPV6: u16 = 0x86dd;
const IPPROTO_UDP: u8 = 17;

pub fn flows(view: &ChassisView, out: &mut FlowSet) {
    out.insert(flow(App::PortSecurity, Object::None, PORT_SECURITY, PRIORITY_DEFAULT, Match::new(), vec![]));
    for net in view.local_networks() {
        for (port, _) in view.local_ports(&net.id) {
            port_flows(port, out);
        }
    }
}

fn port_flows(port: &PortInfo, out: &mut FlowSet) {
    let object = Object::Port(port.key);
    let from = Match::new().reg(REG_SRC_PORT, port.key);
    let pass = || vec![Action::resubmit(EGRESS_ACL)];
    let mut allow =
        |m: Match| out.insert(flow(App::PortSecurity, object, PORT_SECURITY, PRIORITY_PORT, m, pass()));
    if !port.port_security {
        allow(from);
        return;
    }
    let own: Vec<([u8; 6], IpNet)> = port.ips.iter().map(|ip| (port.mac, IpNet::from(*ip))).collect();
    let pairs = port.allowed_pairs.iter().map(|(mac, net)| (mac.unwrap_or(port.mac), *net));
    for (mac, net) in own.into_iter().chain(pairs) {
        let m = from.clone().eth_src(mac);
        match net {
            IpNet::V4(n) => {
                let ip = |m: Match| match n.prefix_len() {
                    32 => m.ipv4_src(n.addr()),
                    _ => m.ipv4_src_masked(n.network(), n.netmask()),
                };
                let arp = |m: Match| match n.prefix_len() {
                    32 => m.arp_spa(n.addr()),
                    _ => m.arp_spa_masked(n.network(), n.netmask()),
                };
                allow(ip(m.clone().eth_type(ETH_IPV4)));
                allow(arp(m.eth_type(ETH_ARP).arp_sha(mac)));
            }
            IpNet::V6(n) => allow(match n.prefix_len() {
                128 => m.eth_type(ETH_IPV6).ipv6_src(n.addr()),
                _ => m.eth_type(ETH_IPV6).ipv6_src_masked(n.network(), n.netmask()),
            }),
        }
    }
    let mac = from.clone().eth_src(port.mac);
    allow(
        mac.clone()
            .eth_type(ETH_IPV4)
            .ipv4_src(Ipv4Addr::UNSPECIFIED)
            .ip_proto(IPPROTO_UDP)
            .udp_src(68)
            .udp_dst(67),
    );
    let link_local: Ipv6Addr = "fe80::".parse().expect("an IPv6 address");
    let mask: Ipv6Addr = "ffc0::".parse().expect("an IPv6 mask");
    allow(mac.clone().eth_type(ETH_IPV6).ipv6_src_masked(link_local, mask));
    allow(mac.clone().eth_type(ETH_IPV6).ipv6_src(Ipv6Addr::UNSPECIFIED));
    allow(mac.eth_type(ETH_RARP));
    out.insert(flow(App::PortSecurity, object, PORT_SECURITY, PRIORITY_PORT_DROP, from, vec![]));
}
