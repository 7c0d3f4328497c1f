//! The apps: each owns a part of the pipeline and writes all of its flows from the view, wholesale
//! (no incremental state), into a shared `FlowSet`. This module holds what they share: cookies,
//! priorities and the two ways a packet leaves the pipeline (to a local port, into a tunnel).
//!
//! The paths (tables from [`crate::tables`]):
//! * from a local VIF: CLASSIFY (reg6, metadata) -> PORT_SECURITY -> EGRESS_ACL -> SERVICES ->
//!   L2_LOOKUP: known MAC -> reg7 -> DISPATCH -> {local: INGRESS_ACL -> OUTPUT, remote: tunnel};
//!   otherwise flood: every local port of the network (via INGRESS_ACL -> OUTPUT; OVS drops the
//!   copy to the packet's own in_port) plus one tunnel copy per other chassis hosting the network;
//! * from the tunnel: CLASSIFY (tun_id -> metadata) -> INGRESS_LOOKUP: local MAC -> reg7, else
//!   flood to the local ports -> INGRESS_ACL -> OUTPUT. Never back into a tunnel: no loops;
//! * from the external network (the patch to a provider bridge): CLASSIFY -> L3_DNAT: a floating
//!   IP -> its port (reg7) -> DISPATCH; floating IPs' replies leave from L3_ROUTING by the patch.
//!
//! Only networks with a local port ([`crate::ChassisView::local_networks`]) get flows here.

pub mod arp_responder;
pub mod classifier;
pub mod dhcp;
pub mod dispatch;
pub mod floating_ips;
pub mod ingress_lookup;
pub mod l2_lookup;
pub mod l3;
pub mod output;
pub mod packet_in;
pub mod passthrough;
pub mod port_security;
pub mod security_groups;

use std::net::Ipv4Addr;

use tern_openflow::{Action, Field, Flow, Instruction, Match};

use crate::cookie::{App, Object};
use crate::tables::{INGRESS_ACL, REG_DST_PORT};

/// Table-miss flows.
pub const PRIORITY_DEFAULT: u16 = 0;
/// Flooding: broadcast, multicast and unknown unicast of a network.
pub const PRIORITY_FLOOD: u16 = 1;
/// Per-port and per-network flows.
pub const PRIORITY_PORT: u16 = 100;

/// A flow owned by `app` for `object`; no actions means drop.
pub(crate) fn flow(
    app: App,
    object: Object,
    table: u8,
    priority: u16,
    m: Match,
    actions: Vec<Action>,
) -> Flow {
    let instructions = if actions.is_empty() { Vec::new() } else { vec![Instruction::ApplyActions(actions)] };
    let mut f = Flow::new(table, priority, m, instructions);
    f.cookie = app.cookie(object);
    f
}

/// Hand the packet to local port `port_key`: through ingress security to its VIF. A port's own
/// traffic coming back to it dies at the output (OVS never outputs to the packet's in_port).
pub(crate) fn to_local_port(port_key: u32, out: &mut Vec<Action>) {
    out.push(Action::set_field(Field::Reg(REG_DST_PORT), port_key));
    out.push(Action::resubmit(INGRESS_ACL));
}

/// Send a copy of the packet over the network's Geneve VNI to each chassis in `remotes` (tunnel
/// IPs, in the given order), through the one flow-based tunnel port.
pub(crate) fn to_chassis(vni: u32, remotes: &[Ipv4Addr], tunnel_ofport: u32, out: &mut Vec<Action>) {
    if remotes.is_empty() {
        return;
    }
    out.push(Action::set_field(Field::TunnelId, u64::from(vni)));
    for ip in remotes {
        out.push(Action::set_field(Field::TunIpv4Dst, *ip));
        out.push(Action::output(tunnel_ofport));
    }
}
