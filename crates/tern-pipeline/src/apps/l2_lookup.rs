//! Table L2_LOOKUP, for packets from local VIFs: a known destination MAC of the network names the
//! destination port (reg7) and goes to dispatch; anything else (broadcast, multicast, unknown
//! unicast) is flooded to the network's other local ports and to each chassis hosting its ports.

use std::net::Ipv4Addr;

use tern_openflow::{Action, Field, Match};

use crate::cookie::{App, Object};
use crate::flowset::FlowSet;
use crate::tables::{DISPATCH, L2_LOOKUP, REG_DST_PORT};
use crate::view::ChassisView;

use super::{flow, to_chassis, to_local_port, PRIORITY_DEFAULT, PRIORITY_FLOOD, PRIORITY_PORT};

pub fn flows(view: &ChassisView, out: &mut FlowSet) {
    out.insert(flow(App::L2Lookup, Object::None, L2_LOOKUP, PRIORITY_DEFAULT, Match::new(), vec![]));
    for net in view.local_networks() {
        let metadata = u64::from(net.key);
        for port in view.ports_of(&net.id) {
            out.insert(flow(
                App::L2Lookup,
                Object::Port(port.key),
                L2_LOOKUP,
                PRIORITY_PORT,
                Match::new().metadata(metadata).eth_dst(port.mac),
                vec![Action::set_field(Field::Reg(REG_DST_PORT), port.key), Action::resubmit(DISPATCH)],
            ));
        }
        // Only traffic from local VIFs reaches this table, so copying to other chassis here cannot
        // loop: they deliver tunnel traffic to their local ports only.
        let mut actions = Vec::new();
        for (port, _) in view.local_ports(&net.id) {
            to_local_port(port.key, &mut actions);
        }
        if let Some(tun) = view.tunnel_ofport {
            let remotes: Vec<Ipv4Addr> = view.remote_chassis(&net.id).into_values().collect();
            to_chassis(net.vni, &remotes, tun, &mut actions);
        }
        out.insert(flow(
            App::L2Lookup,
            Object::Network(net.key),
            L2_LOOKUP,
            PRIORITY_FLOOD,
            Match::new().metadata(metadata),
            actions,
        ));
    }
}
