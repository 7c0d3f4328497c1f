//! Distributed routing: every chassis routes its own VMs' traffic, so routed packets take one
//! tunnel hop like bridged ones and follow a migrating VM the same way (through DISPATCH).
//!
//! * L2_LOOKUP: a frame to a router interface's MAC on a local network goes to L3_ROUTING;
//! * L3_ROUTING, for every router with an interface on a local network: a packet from that
//!   network to the address of a port on another of the router's networks has its TTL
//!   decremented, its MACs rewritten (the router's on the destination network -> the port's) and
//!   its network (metadata) and destination port (reg7) set, then goes to DISPATCH; extra routes
//!   do the same toward their next hop (longest prefix first). Anything else is dropped;
//! * the router's addresses are answered by the ARP responder (`arp_responder`).

use std::net::IpAddr;

use tern_openflow::{Action, Field, Match};

use crate::cookie::{App, Object};
use crate::flowset::FlowSet;
use crate::tables::{DISPATCH, L2_LOOKUP, L3_ROUTING, REG_DST_PORT};
use crate::view::{ChassisView, PortInfo, RouterInterfaceInfo};

use super::{flow, PRIORITY_DEFAULT, PRIORITY_PORT};

const ETH_IPV4: u16 = 0x0800;
/// Host routes to ports, above every extra route.
const PRIORITY_HOST: u16 = 200;
/// Extra routes: 100 + prefix length, so longer prefixes win.
const PRIORITY_ROUTE_BASE: u16 = 100;

pub fn flows(view: &ChassisView, out: &mut FlowSet) {
    out.insert(flow(App::L3Routing, Object::None, L3_ROUTING, PRIORITY_DEFAULT, Match::new(), vec![]));
    let local: Vec<&str> = view.local_networks().map(|n| n.id.as_str()).collect();
    for router in view.local_routers() {
        for from in router.interfaces.iter().filter(|i| local.contains(&i.network_id.as_str())) {
            let Some(from_net) = view.networks.get(&from.network_id) else { continue };
            let metadata = u64::from(from_net.key);
            out.insert(flow(
                App::L3Routing,
                Object::Network(from_net.key),
                L2_LOOKUP,
                PRIORITY_PORT,
                Match::new().metadata(metadata).eth_dst(from.mac),
                vec![Action::resubmit(L3_ROUTING)],
            ));
            let routed = Match::new().metadata(metadata).eth_type(ETH_IPV4);
            for to in router.interfaces.iter().filter(|i| i.network_id != from.network_id) {
                for (port, ip) in ports_in(view, to) {
                    out.insert(flow(
                        App::L3Routing,
                        Object::Port(port.key),
                        L3_ROUTING,
                        PRIORITY_HOST,
                        routed.clone().ipv4_dst(ip),
                        route_to(view, to, port),
                    ));
                }
            }
            for (dest, nexthop) in &router.routes {
                let hop = router.interfaces.iter().find_map(|to| {
                    ports_in(view, to).into_iter().find(|(_, ip)| ip == nexthop).map(|(p, _)| (to, p))
                });
                let Some((to, port)) = hop else { continue };
                out.insert(flow(
                    App::L3Routing,
                    Object::Port(port.key),
                    L3_ROUTING,
                    PRIORITY_ROUTE_BASE + u16::from(dest.prefix_len()),
                    routed.clone().ipv4_dst_masked(dest.network(), dest.netmask()),
                    route_to(view, to, port),
                ));
            }
        }
    }
}

/// The active ports on interface `i`'s network with an address in its subnet.
fn ports_in<'v>(view: &'v ChassisView, i: &RouterInterfaceInfo) -> Vec<(&'v PortInfo, std::net::Ipv4Addr)> {
    view.ports_of(&i.network_id)
        .into_iter()
        .flat_map(|p| {
            p.ips.iter().filter_map(move |ip| match ip {
                IpAddr::V4(v4) if i.subnet.contains(v4) && *v4 != i.ip => Some((p, *v4)),
                _ => None,
            })
        })
        .collect()
}

/// The hop onto interface `to`'s network, toward `port`.
fn route_to(view: &ChassisView, to: &RouterInterfaceInfo, port: &PortInfo) -> Vec<Action> {
    let to_key = view.networks.get(&to.network_id).map_or(0, |n| n.key);
    vec![
        Action::DecTtl,
        Action::set_field(Field::EthSrc, to.mac),
        Action::set_field(Field::EthDst, port.mac),
        Action::set_field(Field::Metadata, u64::from(to_key)),
        Action::set_field(Field::Reg(REG_DST_PORT), port.key),
        Action::resubmit(DISPATCH),
    ]
}
