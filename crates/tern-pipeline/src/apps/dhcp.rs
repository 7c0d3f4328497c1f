//! Table SERVICES, DHCP: a local VIF's DHCP request (UDP 68 -> 67) on a subnet with DHCP enabled
//! goes to the controller, which answers it from the NB (`tern_controller::dhcp`) — no DHCP
//! server, no flooding. The packet-in says which port asked: the flow's cookie names the port,
//! and so does the userdata ([`dhcp_userdata`]) when the switch sends packet-in2.

use tern_openflow::{Action, Match};

use crate::cookie::{App, Object};
use crate::flowset::FlowSet;
use crate::tables::{REG_SRC_PORT, SERVICES};
use crate::view::ChassisView;

use super::{flow, PRIORITY_PORT};

/// Above the ARP responder's flows.
const PRIORITY_DHCP: u16 = PRIORITY_PORT + 50;
const ETH_IPV4: u16 = 0x0800;
const IPPROTO_UDP: u8 = 17;

/// The userdata of a DHCP request's packet-in: `D` then the port key, big-endian.
pub fn dhcp_userdata(key: u32) -> Vec<u8> {
    let mut v = vec![b'D'];
    v.extend(key.to_be_bytes());
    v
}

/// The port key in userdata written by [`dhcp_userdata`].
pub fn parse_dhcp_userdata(userdata: &[u8]) -> Option<u32> {
    match userdata {
        [b'D', rest @ ..] => Some(u32::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

pub fn flows(view: &ChassisView, out: &mut FlowSet) {
    for net in view.local_networks() {
        for (port, _) in view.local_ports(&net.id).into_iter().filter(|(p, _)| p.dhcp) {
            let request = Match::new()
                .reg(REG_SRC_PORT, port.key)
                .eth_type(ETH_IPV4)
                .ip_proto(IPPROTO_UDP)
                .udp_src(68)
                .udp_dst(67);
            let to_controller = vec![Action::controller_userdata(dhcp_userdata(port.key), false)];
            out.insert(flow(
                App::Dhcp,
                Object::Port(port.key),
                SERVICES,
                PRIORITY_DHCP,
                request,
                to_controller,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userdata_round_trips_and_is_told_from_the_activations() {
        assert_eq!(parse_dhcp_userdata(&dhcp_userdata(0x0102_0304)), Some(0x0102_0304));
        assert_eq!(parse_dhcp_userdata(&[1, 2, 3, 4]), None);
        assert_eq!(crate::apps::classifier::parse_activation_userdata(&dhcp_userdata(7)), None);
    }
}
