//! What a packet sent to the controller is, told from the flow that sent it: the apps that send
//! packets up (the classifier's activation copy, DHCP, the external gateway's ARP replies) each
//! mark theirs with userdata (a packet-in2) or, when the switch sends a plain packet-in (it drops
//! the userdata unless the connection asked for the packet-in2 format), with the table and the
//! cookie of the flow.

use tern_openflow::Message;

use crate::cookie::{App, Object};
use crate::tables::{CLASSIFY, L3_DNAT, SERVICES};

use super::{classifier, dhcp, floating_ips};

/// A packet-in, by the app that sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketIn<'a> {
    /// A DHCP request from the VIF of the port with this key (the `dhcp` app).
    Dhcp { port_key: u32, frame: &'a [u8] },
    /// An ARP reply from an external network's gateway to this chassis (the `floating_ips` app).
    GatewayArp { network_key: u32, frame: &'a [u8] },
    /// A packet from the VIF of a port awaiting activation of its migration here (the
    /// classifier's copy).
    Activation { port_key: u32 },
    /// A packet-in no app of the pipeline sent.
    Other,
}

impl PacketIn<'_> {
    /// Every [`PacketIn::kind`].
    pub const KINDS: [&'static str; 4] = ["dhcp", "gateway_arp", "activation", "other"];

    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            PacketIn::Dhcp { .. } => "dhcp",
            PacketIn::GatewayArp { .. } => "gateway_arp",
            PacketIn::Activation { .. } => "activation",
            PacketIn::Other => "other",
        }
    }
}

/// The packet-in `msg` is, or `None` when `msg` is no packet-in.
pub fn classify(msg: &Message) -> Option<PacketIn<'_>> {
    match msg {
        Message::NxPacketIn2(pin) => {
            let (u, frame) = (&pin.userdata, pin.data.as_slice());
            Some(if let Some(port_key) = dhcp::parse_dhcp_userdata(u) {
                PacketIn::Dhcp { port_key, frame }
            } else if let Some(network_key) = floating_ips::parse_gateway_userdata(u) {
                PacketIn::GatewayArp { network_key, frame }
            } else if let Some(port_key) = classifier::parse_activation_userdata(u) {
                PacketIn::Activation { port_key }
            } else {
                PacketIn::Other
            })
        }
        Message::PacketIn(pin) => {
            let frame = pin.data.as_slice();
            Some(match (pin.table_id, App::from_cookie(pin.cookie)) {
                (SERVICES, Some((App::Dhcp, Object::Port(port_key)))) => PacketIn::Dhcp { port_key, frame },
                (L3_DNAT, Some((App::FloatingIps, Object::Network(network_key)))) => {
                    PacketIn::GatewayArp { network_key, frame }
                }
                (CLASSIFY, Some((App::Classifier, Object::Port(port_key)))) => {
                    PacketIn::Activation { port_key }
                }
                _ => PacketIn::Other,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_openflow::{Match, NxPacketIn2, PacketIn as OfPacketIn};

    fn pin2(userdata: Vec<u8>) -> Message {
        Message::NxPacketIn2(NxPacketIn2 {
            data: vec![1, 2, 3],
            full_len: None,
            buffer_id: u32::MAX,
            table_id: 0,
            cookie: 0,
            reason: 1,
            metadata: Match::new(),
            userdata,
            continuation: None,
        })
    }

    fn pin(table_id: u8, cookie: u64) -> Message {
        Message::PacketIn(OfPacketIn {
            buffer_id: u32::MAX,
            total_len: 3,
            reason: 1,
            table_id,
            cookie,
            match_: Match::new(),
            data: vec![1, 2, 3],
        })
    }

    #[test]
    fn each_app_s_packet_ins_are_told_apart_by_userdata_or_by_table_and_cookie() {
        let frame: &[u8] = &[1, 2, 3];
        let cases = [
            (pin2(dhcp::dhcp_userdata(7)), PacketIn::Dhcp { port_key: 7, frame }),
            (pin2(floating_ips::gateway_userdata(9)), PacketIn::GatewayArp { network_key: 9, frame }),
            (pin2(classifier::activation_userdata(5)), PacketIn::Activation { port_key: 5 }),
            (pin2(vec![0xff]), PacketIn::Other),
            (pin(SERVICES, App::Dhcp.cookie(Object::Port(7))), PacketIn::Dhcp { port_key: 7, frame }),
            (
                pin(L3_DNAT, App::FloatingIps.cookie(Object::Network(9))),
                PacketIn::GatewayArp { network_key: 9, frame },
            ),
            (pin(CLASSIFY, App::Classifier.cookie(Object::Port(5))), PacketIn::Activation { port_key: 5 }),
            // The right cookie from another table is not the app's packet-in.
            (pin(SERVICES, App::Classifier.cookie(Object::Port(5))), PacketIn::Other),
        ];
        for (msg, want) in cases {
            assert_eq!(classify(&msg), Some(want), "{msg:?}");
        }
        assert_eq!(classify(&Message::Hello { versions: vec![] }), None);
    }
}
