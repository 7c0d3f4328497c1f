//! Floating IPs: 1:1 NAT between a public address on an external (flat provider) network and a
//! port's fixed address, done on the chassis the VM runs on, so it follows a live migration like
//! everything else. The translation is stateless (`set_field` both ways, checksums fixed by the
//! switch): nothing is left behind in conntrack when the VM moves.
//!
//! * CLASSIFY: a packet from br-int's end of the patch to the provider bridge belongs to the
//!   external network (metadata) and goes to L3_DNAT;
//! * L3_DNAT, from the external network:
//!   - ARP requests for a floating IP are answered (with the address port's MAC) by the chassis
//!     whose VIF of the port is live; that chassis' controller also sends a gratuitous ARP when the
//!     port comes here, so the external network learns the new place at once;
//!   - IPv4 to a floating IP: the destination becomes the fixed address, TTL decremented, MACs
//!     rewritten (router interface -> port), then DISPATCH delivers it wherever the port is, so a
//!     late packet that reaches the migration's source is tunneled on like a bridged one;
//!   - the gateway's ARP replies to this chassis' MAC go to the controller, which resolves the
//!     external gateway (see [`gateway_userdata`]);
//!   - anything else is dropped;
//! * L3_ROUTING, on the chassis the VM runs on: IPv4 from a fixed address with a floating IP to
//!   anywhere the router has no route for gets the floating IP as its source, the floating IP's
//!   MAC and the external gateway's, and leaves through the patch (below every internal route).

use std::net::Ipv4Addr;

use tern_openflow::{Action, Field, Match};

use crate::cookie::{App, Object};
use crate::flowset::FlowSet;
use crate::tables::{CLASSIFY, DISPATCH, L3_DNAT, L3_ROUTING, REG_DST_PORT};
use crate::view::{ChassisView, FloatingIpInfo};

use super::{flow, PRIORITY_DEFAULT, PRIORITY_PORT};

const ETH_IPV4: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;
/// Floating IPs' outbound translation: below extra routes (100 + prefix length) and host routes.
const PRIORITY_SNAT: u16 = 50;

/// The userdata of the packet-in carrying an ARP reply from external network `key`'s gateway:
/// `G` then the network key, big-endian.
pub fn gateway_userdata(key: u32) -> Vec<u8> {
    let mut v = vec![b'G'];
    v.extend_from_slice(&key.to_be_bytes());
    v
}

/// The network key in userdata written by [`gateway_userdata`].
pub fn parse_gateway_userdata(userdata: &[u8]) -> Option<u32> {
    match userdata {
        [b'G', rest @ ..] => Some(u32::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

pub fn flows(view: &ChassisView, out: &mut FlowSet) {
    out.insert(flow(App::FloatingIps, Object::None, L3_DNAT, PRIORITY_DEFAULT, Match::new(), vec![]));
    for ext in view.external.values() {
        let Some(net) = view.networks.get(&ext.network_id) else { continue };
        let metadata = u64::from(net.key);
        out.insert(flow(
            App::FloatingIps,
            Object::Network(net.key),
            CLASSIFY,
            PRIORITY_PORT,
            Match::new().in_port(ext.patch_ofport),
            vec![Action::set_field(Field::Metadata, metadata), Action::resubmit(L3_DNAT)],
        ));
        out.insert(flow(
            App::FloatingIps,
            Object::Network(net.key),
            L3_DNAT,
            PRIORITY_PORT,
            Match::new().metadata(metadata).eth_type(ETH_ARP).arp_op(ARP_REPLY).eth_dst(ext.chassis_mac),
            vec![Action::controller_userdata(gateway_userdata(net.key), false)],
        ));
    }
    let forwarded: Vec<&str> = view.forwarded_ports().into_iter().map(|(p, _)| p.id.as_str()).collect();
    for fip in &view.floating_ips {
        let (Some(ext), Some(ext_net)) =
            (view.external.get(&fip.network_id), view.networks.get(&fip.network_id))
        else {
            continue;
        };
        let Some(port) = view.active_port(&fip.port_id) else { continue };
        let Some(net) = view.networks.get(&port.network_id) else { continue };
        let runs_here = view.local_ofport(port).is_some();
        if !runs_here && !forwarded.contains(&port.id.as_str()) {
            continue;
        }
        let object = Object::Port(port.key);
        let from_outside = Match::new().metadata(u64::from(ext_net.key));
        out.insert(flow(
            App::FloatingIps,
            object,
            L3_DNAT,
            PRIORITY_PORT,
            from_outside.clone().eth_type(ETH_IPV4).ipv4_dst(fip.ip),
            vec![
                Action::set_field(Field::Ipv4Dst, fip.fixed_ip),
                Action::DecTtl,
                Action::set_field(Field::EthSrc, fip.router_mac),
                Action::set_field(Field::EthDst, port.mac),
                Action::set_field(Field::Metadata, u64::from(net.key)),
                Action::set_field(Field::Reg(REG_DST_PORT), port.key),
                Action::resubmit(DISPATCH),
            ],
        ));
        if !runs_here {
            continue;
        }
        out.insert(flow(
            App::FloatingIps,
            object,
            L3_DNAT,
            PRIORITY_PORT,
            from_outside.eth_type(ETH_ARP).arp_op(ARP_REQUEST).arp_tpa(fip.ip),
            super::arp_responder::reply(fip.mac, fip.ip),
        ));
        if let Some(gateway_mac) = ext.gateway_mac {
            out.insert(flow(
                App::FloatingIps,
                object,
                L3_ROUTING,
                PRIORITY_SNAT,
                Match::new().metadata(u64::from(net.key)).eth_type(ETH_IPV4).ipv4_src(fip.fixed_ip),
                snat(fip, gateway_mac, ext.patch_ofport),
            ));
        }
    }
}

/// The outbound translation of `fip` toward the external gateway.
fn snat(fip: &FloatingIpInfo, gateway_mac: [u8; 6], patch_ofport: u32) -> Vec<Action> {
    vec![
        Action::set_field(Field::Ipv4Src, fip.ip),
        Action::DecTtl,
        Action::set_field(Field::EthSrc, fip.mac),
        Action::set_field(Field::EthDst, gateway_mac),
        Action::output(patch_ofport),
    ]
}

/// The floating IPs whose VIF is live on this chassis, with br-int's patch port toward their
/// external network: the ones this chassis announces (a gratuitous ARP when one comes here).
pub fn announced(view: &ChassisView) -> Vec<(&FloatingIpInfo, u32)> {
    view.floating_ips
        .iter()
        .filter_map(|fip| {
            let ext = view.external.get(&fip.network_id)?;
            let port = view.active_port(&fip.port_id)?;
            view.local_ofport(port)?;
            Some((fip, ext.patch_ofport))
        })
        .collect()
}

/// A gratuitous ARP announcing that `ip` is at `mac` (a broadcast request for its own address).
pub fn gratuitous_arp(mac: [u8; 6], ip: Ipv4Addr) -> Vec<u8> {
    arp_frame(ARP_REQUEST, mac, ip, [0xff; 6], [0; 6], ip)
}

/// An ARP request from `mac` (sender address 0.0.0.0, an RFC 5227 probe: nobody's cache learns
/// from it) for `target`.
pub fn arp_probe(mac: [u8; 6], target: Ipv4Addr) -> Vec<u8> {
    arp_frame(ARP_REQUEST, mac, Ipv4Addr::UNSPECIFIED, [0xff; 6], [0; 6], target)
}

/// The sender (IP, MAC) of an ARP reply frame, if `frame` is one.
pub fn arp_reply_sender(frame: &[u8]) -> Option<(Ipv4Addr, [u8; 6])> {
    let arp = frame.get(14..42)?;
    let is_arp = frame[12..14] == [0x08, 0x06] && arp[0..6] == [0, 1, 8, 0, 6, 4];
    if !is_arp || u16::from_be_bytes([arp[6], arp[7]]) != ARP_REPLY {
        return None;
    }
    let mac: [u8; 6] = arp[8..14].try_into().ok()?;
    let ip = Ipv4Addr::new(arp[14], arp[15], arp[16], arp[17]);
    Some((ip, mac))
}

fn arp_frame(op: u16, sha: [u8; 6], spa: Ipv4Addr, eth_dst: [u8; 6], tha: [u8; 6], tpa: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&eth_dst);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa.octets());
    f.extend_from_slice(&tha);
    f.extend_from_slice(&tpa.octets());
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userdata_round_trips_and_is_told_from_the_others() {
        assert_eq!(parse_gateway_userdata(&gateway_userdata(0x0102_0304)), Some(0x0102_0304));
        assert_eq!(parse_gateway_userdata(&[b'G', 1, 2]), None);
        assert_eq!(parse_gateway_userdata(&crate::apps::dhcp::dhcp_userdata(7)), None);
        assert_eq!(crate::apps::dhcp::parse_dhcp_userdata(&gateway_userdata(7)), None);
        assert_eq!(crate::apps::classifier::parse_activation_userdata(&gateway_userdata(7)), None);
    }

    #[test]
    fn arp_frames() {
        let mac = [0xfa, 0x16, 0x3e, 0, 0, 9];
        let ip = Ipv4Addr::new(172, 24, 4, 20);
        let garp = gratuitous_arp(mac, ip);
        assert_eq!(garp.len(), 42);
        assert_eq!(&garp[0..6], &[0xff; 6]);
        assert_eq!(&garp[28..32], &ip.octets(), "sender address");
        assert_eq!(&garp[38..42], &ip.octets(), "target address");
        assert_eq!(arp_reply_sender(&garp), None, "a request is not a reply");
        let mut reply = arp_probe(mac, ip);
        assert_eq!(&reply[28..32], &[0, 0, 0, 0]);
        reply[21] = 2;
        assert_eq!(arp_reply_sender(&reply), Some((Ipv4Addr::UNSPECIFIED, mac)));
        assert_eq!(arp_reply_sender(&reply[..41]), None, "truncated");
        assert_eq!(arp_reply_sender(&[]), None);
    }
}
