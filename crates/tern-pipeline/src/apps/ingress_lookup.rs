//! Table INGRESS_LOOKUP, for packets from tunnels: a destination MAC of a local port names it
//! (reg7) and goes to ingress security; anything else is flooded to the network's local ports
//! only, never back into a tunnel.

use tern_openflow::Match;

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
    for net in view.local_networks() {
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
