//! Table SERVICES, ARP: a VM's ARP request for an address the NB knows on its network is answered
//! by the chassis it runs on, so ARP never crosses the overlay. The reply is built in place
//! (sender and target swapped, the port's MAC filled in) and sent back out of the VM's port.
//!
//! The routers' addresses on the chassis' networks (the VMs' gateways) are answered the same way.
//!
//! A port's ARP about its own address (a gratuitous ARP, a duplicate address probe) is not
//! answered: it goes on like any broadcast, so others learn from it. Requests for addresses the
//! NB does not know go on too.

use std::net::{IpAddr, Ipv4Addr};

use tern_openflow::port::OFPP_IN_PORT;
use tern_openflow::{Action, Field, FieldSlice, Match};

use crate::cookie::{App, Object};
use crate::flowset::FlowSet;
use crate::tables::{L2_LOOKUP, REG_SRC_PORT, SERVICES};
use crate::view::ChassisView;

use super::{flow, PRIORITY_PORT};

const ETH_ARP: u16 = 0x0806;
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;

pub fn flows(view: &ChassisView, out: &mut FlowSet) {
    // The routers' own addresses on local networks (the VMs' gateways).
    let local: Vec<&str> = view.local_networks().map(|n| n.id.as_str()).collect();
    for router in view.local_routers() {
        for i in router.interfaces.iter().filter(|i| local.contains(&i.network_id.as_str())) {
            let Some(net) = view.networks.get(&i.network_id) else { continue };
            let request =
                Match::new().metadata(u64::from(net.key)).eth_type(ETH_ARP).arp_op(ARP_REQUEST).arp_tpa(i.ip);
            out.insert(flow(
                App::ArpResponder,
                Object::Network(net.key),
                SERVICES,
                PRIORITY_PORT,
                request,
                reply(i.mac, i.ip),
            ));
        }
    }
    for net in view.local_networks() {
        let metadata = u64::from(net.key);
        for port in view.ports_of(&net.id) {
            for ip in port.ips.iter().filter_map(|ip| match ip {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            }) {
                let request =
                    Match::new().metadata(metadata).eth_type(ETH_ARP).arp_op(ARP_REQUEST).arp_tpa(ip);
                let reply = reply(port.mac, ip);
                let object = Object::Port(port.key);
                out.insert(flow(App::ArpResponder, object, SERVICES, PRIORITY_PORT, request.clone(), reply));
                // The port's own ARP about itself goes on as a broadcast.
                let own = request.reg(REG_SRC_PORT, port.key);
                let on = vec![Action::resubmit(L2_LOOKUP)];
                out.insert(flow(App::ArpResponder, object, SERVICES, PRIORITY_PORT + 10, own, on));
            }
        }
    }
}

/// The actions turning an ARP request into the reply "`ip` is at `mac`", sent back where it came
/// from.
pub(crate) fn reply(mac: [u8; 6], ip: Ipv4Addr) -> Vec<Action> {
    vec![
        Action::move_(FieldSlice::whole(Field::EthSrc), FieldSlice::whole(Field::EthDst)),
        Action::set_field(Field::EthSrc, mac),
        Action::set_field(Field::ArpOp, ARP_REPLY),
        Action::move_(FieldSlice::whole(Field::ArpSha), FieldSlice::whole(Field::ArpTha)),
        Action::set_field(Field::ArpSha, mac),
        Action::move_(FieldSlice::whole(Field::ArpSpa), FieldSlice::whole(Field::ArpTpa)),
        Action::set_field(Field::ArpSpa, ip),
        Action::output(OFPP_IN_PORT),
    ]
}
