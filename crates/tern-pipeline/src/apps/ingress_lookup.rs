//! Table INGRESS_LOOKUP, for packets from tunnels: a destination MAC of a local port names it
//! (reg7) and goes to ingress security; anything else is flooded to the network's local ports
//! only, never back into a tunnel.
//!
//! The one exception is the forwarding pointer of a live migration's source
//! ([`ChassisView::forwarded_ports`]): a late unicast packet for a port that just left this
//! chassis goes back out of the tunnel port it came in by, to the port's new chassis. It is sent
//! on once only: the new chassis has the port locally, and packets from tunnels are never
//! forwarded anywhere but to a local port there.

use tern_openflow::port::OFPP_IN_PORT;
use tern_openflow::{Action, Field, Match};

use crate::cookie::{App, Object};
use crate::flowset::FlowSet;
use crate::tables::INGRESS_LOOKUP;
use crate::view::ChassisView;

use super::{flow, to_local_port, PRIORITY_DEFAULT, PRIORITY_FLOOD, PRIORITY_PORT};

pub fn flows(view: &ChassisView, out: &mut FlowSet) {
    out.insert(flow(
        App::IngressLookup,
        Object::None,
        INGRESS_LOOKUP,
        PRIORITY_DEFAULT,
        Match::new(),
        vec![],
    ));
    for net in view.ingress_networks() {
        let metadata = u64::from(net.key);
        let mut flood = Vec::new();
        for (port, _) in view.local_ports(&net.id) {
            let mut actions = Vec::new();
            to_local_port(port.key, &mut actions);
            out.insert(flow(
                App::IngressLookup,
                Object::Port(port.key),
                INGRESS_LOOKUP,
                PRIORITY_PORT,
                Match::new().metadata(metadata).eth_dst(port.mac),
                actions,
            ));
            to_local_port(port.key, &mut flood);
        }
        for (port, tunnel_ip) in view.forwarded_ports().into_iter().filter(|(p, _)| p.network_id == net.id) {
            out.insert(flow(
                App::IngressLookup,
                Object::Port(port.key),
                INGRESS_LOOKUP,
                PRIORITY_PORT,
                Match::new().metadata(metadata).eth_dst(port.mac),
                vec![
                    Action::set_field(Field::TunnelId, u64::from(net.vni)),
                    Action::set_field(Field::TunIpv4Dst, tunnel_ip),
                    Action::output(OFPP_IN_PORT),
                ],
            ));
        }
        out.insert(flow(
            App::IngressLookup,
            Object::Network(net.key),
            INGRESS_LOOKUP,
            PRIORITY_FLOOD,
            Match::new().metadata(metadata),
            flood,
        ));
    }
}
