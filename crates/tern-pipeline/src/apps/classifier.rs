//! Table CLASSIFY: where a packet comes from. A local VIF's packet gets its port (reg6) and network
//! (metadata) and enters the egress pipeline; a tunnel packet gets its network from the VNI and
//! goes straight to ingress lookup (it never re-enters L2 lookup, so it is never flooded again).
//!
//! A VIF whose port awaits activation of its live migration here
//! ([`ChassisView::awaiting_activation`]) also copies each packet to the controller, tagged with
//! the port's key ([`activation_userdata`]): the first one (the VM's RARP/GARP, or any packet)
//! activates the migration. The packet still takes its normal path, so none is lost; once the
//! migration is activated the copy stops with the flow's next computation.

use tern_openflow::{Action, Field, Match};

use crate::cookie::{App, Object};
use crate::flowset::FlowSet;
use crate::tables::{CLASSIFY, INGRESS_LOOKUP, PORT_SECURITY, REG_SRC_PORT};
use crate::view::ChassisView;

use super::{flow, PRIORITY_DEFAULT, PRIORITY_PORT};

/// The userdata of the controller action that reports a packet from port `key`'s VIF while its
/// migration awaits activation: the key, 4 bytes big-endian.
pub fn activation_userdata(key: u32) -> Vec<u8> {
    key.to_be_bytes().to_vec()
}

/// The port key in a packet-in's userdata written by [`activation_userdata`].
pub fn parse_activation_userdata(userdata: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(userdata.try_into().ok()?))
}

pub fn flows(view: &ChassisView, out: &mut FlowSet) {
    out.insert(flow(App::Classifier, Object::None, CLASSIFY, PRIORITY_DEFAULT, Match::new(), vec![]));
    for net in view.local_networks() {
        for (port, ofport) in view.local_ports(&net.id) {
            let mut actions = Vec::new();
            if view.awaiting_activation.contains(&port.id) {
                actions.push(Action::controller_userdata(activation_userdata(port.key), false));
            }
            actions.extend([
                Action::set_field(Field::Reg(REG_SRC_PORT), port.key),
                Action::set_field(Field::Metadata, u64::from(net.key)),
                Action::resubmit(PORT_SECURITY),
            ]);
            out.insert(flow(
                App::Classifier,
                Object::Port(port.key),
                CLASSIFY,
                PRIORITY_PORT,
                Match::new().in_port(ofport),
                actions,
            ));
        }
    }
    if let Some(tun) = view.tunnel_ofport {
        for net in view.ingress_networks() {
            out.insert(flow(
                App::Classifier,
                Object::Network(net.key),
                CLASSIFY,
                PRIORITY_PORT,
                Match::new().in_port(tun).tun_id(u64::from(net.vni)),
                vec![
                    Action::set_field(Field::Metadata, u64::from(net.key)),
                    Action::resubmit(INGRESS_LOOKUP),
                ],
            ));
        }
    }
    // Without dual delivery a port awaiting activation is not local yet: its packets only go to
    // the controller (they had nowhere to go before either).
    for id in &view.awaiting_activation {
        let Some(port) = view.active_port(id) else { continue };
        let Some(&ofport) = view.local_vifs.get(id) else { continue };
        if view.local_ofport(port).is_none() {
            out.insert(flow(
                App::Classifier,
                Object::Port(port.key),
                CLASSIFY,
                PRIORITY_PORT,
                Match::new().in_port(ofport),
                vec![Action::controller_userdata(activation_userdata(port.key), false)],
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_userdata_round_trips() {
        assert_eq!(parse_activation_userdata(&activation_userdata(0x0102_0304)), Some(0x0102_0304));
        assert_eq!(parse_activation_userdata(&[1, 2, 3]), None);
    }
}
