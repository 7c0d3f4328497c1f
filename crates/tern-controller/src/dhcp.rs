//! The DHCP responder of a chassis: its VIFs' DHCP requests reach the controller (the pipeline's
//! `dhcp` app sends them up instead of flooding them) and are answered from the NB alone — the
//! port's fixed IPv4 address and its subnet's mask, gateway, DNS servers and host routes, the
//! network's MTU — with no DHCP server or agent anywhere. Pure: a request frame in, a reply
//! frame out ([`reply`]); [`RateLimit`] keeps one VM from keeping the controller busy.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use dhcproto::v4::{self, DhcpOption, MessageType, Opcode};
use dhcproto::{Decodable, Encodable};
use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use ipnet::{IpNet, Ipv4Net};
use tern_model::{Network, Port, Subnet};

/// How long a lease lasts. The address never changes while the port exists, so leases are long.
pub const LEASE: Duration = Duration::from_secs(24 * 3600);
/// The MAC the replies come from: the subnet's (virtual) DHCP server.
pub const SERVER_MAC: [u8; 6] = [0xfa, 0x16, 0x3e, 0xff, 0xff, 0xfe];

/// Why a frame got no reply.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoReply {
    #[error("not a DHCP request (UDP 68 -> 67 over IPv4): {0}")]
    NotDhcp(String),
    #[error("malformed DHCP message: {0}")]
    Malformed(String),
    #[error("DHCP {0:?} needs no answer")]
    Ignored(Option<MessageType>),
    #[error("the port has no IPv4 address on a subnet with DHCP enabled")]
    NoAddress,
}

/// What a port's lease is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub subnet: Ipv4Net,
    /// The server identifier and the replies' source address: the gateway, or the subnet's
    /// first address.
    pub server: Ipv4Addr,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub routes: Vec<(Ipv4Net, Ipv4Addr)>,
    pub mtu: u16,
}

impl Lease {
    /// The lease of `port` from its first IPv4 address on one of `subnets` with DHCP enabled.
    pub fn of(port: &Port, subnets: &[Subnet], network: Option<&Network>) -> Option<Lease> {
        port.fixed_ips.iter().find_map(|f| {
            let Some(IpAddr::V4(address)) = f.ip_address else { return None };
            let s = subnets.iter().find(|s| s.id == f.subnet_id && s.enable_dhcp)?;
            let IpNet::V4(subnet) = s.cidr else { return None };
            let router = match s.gateway_ip {
                Some(IpAddr::V4(g)) => Some(g),
                _ => None,
            };
            let first = subnet.hosts().next().unwrap_or(subnet.network());
            Some(Lease {
                address,
                subnet,
                server: router.unwrap_or(first),
                router,
                dns: s
                    .dns_nameservers
                    .iter()
                    .filter_map(|d| match d {
                        IpAddr::V4(v4) => Some(*v4),
                        IpAddr::V6(_) => None,
                    })
                    .collect(),
                routes: s
                    .host_routes
                    .iter()
                    .filter_map(|r| match (r.destination, r.nexthop) {
                        (IpNet::V4(d), IpAddr::V4(n)) => Some((d, n)),
                        _ => None,
                    })
                    .collect(),
                mtu: network.map_or(tern_model::DEFAULT_MTU, |n| n.mtu).min(u32::from(u16::MAX)) as u16,
            })
        })
    }
}

/// The reply to the DHCP request in Ethernet frame `frame` from a port whose lease is `lease`:
/// DISCOVER -> OFFER, REQUEST -> ACK (NAK when it asks for another address), INFORM -> ACK
/// without an address. Sent to the client's MAC, from [`SERVER_MAC`] and the lease's server.
pub fn reply(frame: &[u8], lease: &Lease) -> Result<Vec<u8>, NoReply> {
    let packet = SlicedPacket::from_ethernet(frame).map_err(|e| NoReply::NotDhcp(e.to_string()))?;
    let Some(TransportSlice::Udp(udp)) = &packet.transport else {
        return Err(NoReply::NotDhcp("no UDP".into()));
    };
    if udp.source_port() != 68 || udp.destination_port() != 67 {
        return Err(NoReply::NotDhcp(format!("UDP {} -> {}", udp.source_port(), udp.destination_port())));
    }
    let request = v4::Message::from_bytes(udp.payload()).map_err(|e| NoReply::Malformed(e.to_string()))?;
    if request.opcode() != Opcode::BootRequest {
        return Err(NoReply::Malformed("not a BOOTREQUEST".into()));
    }
    let kind = request.opts().msg_type();
    let asked = match request.opts().get(v4::OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
        _ => Some(request.ciaddr()).filter(|ip| !ip.is_unspecified()),
    };
    let answer = match kind {
        Some(MessageType::Discover) => MessageType::Offer,
        Some(MessageType::Request) if asked.is_none_or(|ip| ip == lease.address) => MessageType::Ack,
        Some(MessageType::Request) => MessageType::Nak,
        Some(MessageType::Inform) => MessageType::Ack,
        other => return Err(NoReply::Ignored(other)),
    };
    let mut m = v4::Message::default();
    m.set_opcode(Opcode::BootReply)
        .set_xid(request.xid())
        .set_flags(request.flags())
        .set_giaddr(request.giaddr())
        .set_chaddr(request.chaddr())
        .set_siaddr(lease.server);
    if kind != Some(MessageType::Inform) && answer != MessageType::Nak {
        m.set_yiaddr(lease.address);
    }
    if kind == Some(MessageType::Inform) {
        m.set_ciaddr(request.ciaddr());
    }
    let opts = m.opts_mut();
    opts.insert(DhcpOption::MessageType(answer));
    opts.insert(DhcpOption::ServerIdentifier(lease.server));
    if answer != MessageType::Nak {
        if kind != Some(MessageType::Inform) {
            let secs = LEASE.as_secs() as u32;
            opts.insert(DhcpOption::AddressLeaseTime(secs));
            opts.insert(DhcpOption::Renewal(secs / 2));
            opts.insert(DhcpOption::Rebinding(secs / 8 * 7));
        }
        opts.insert(DhcpOption::SubnetMask(lease.subnet.netmask()));
        opts.insert(DhcpOption::BroadcastAddr(lease.subnet.broadcast()));
        if let Some(r) = lease.router {
            opts.insert(DhcpOption::Router(vec![r]));
        }
        if !lease.dns.is_empty() {
            opts.insert(DhcpOption::DomainNameServer(lease.dns.clone()));
        }
        opts.insert(DhcpOption::InterfaceMtu(lease.mtu));
        if !lease.routes.is_empty() {
            // RFC 3442: a client that takes classless routes ignores the Router option, so the
            // default route goes in the list too.
            let mut routes = lease.routes.clone();
            if let Some(r) = lease.router {
                routes.push((Ipv4Net::default(), r));
            }
            opts.insert(DhcpOption::ClasslessStaticRoute(routes));
        }
    }
    let payload = m.to_vec().map_err(|e| NoReply::Malformed(e.to_string()))?;
    let client: [u8; 6] =
        request.chaddr().get(..6).and_then(|c| c.try_into().ok()).ok_or(NoReply::NoAddress)?;
    let to = if request.flags().broadcast() || answer == MessageType::Nak {
        Ipv4Addr::BROADCAST
    } else if kind == Some(MessageType::Inform) {
        request.ciaddr()
    } else {
        lease.address
    };
    let builder =
        PacketBuilder::ethernet2(SERVER_MAC, client).ipv4(lease.server.octets(), to.octets(), 64).udp(67, 68);
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut out, &payload).map_err(|e| NoReply::Malformed(e.to_string()))?;
    Ok(out)
}

/// A token bucket per port: at most `burst` replies at once, then one per `every`.
#[derive(Debug)]
pub struct RateLimit {
    burst: u32,
    every: Duration,
    buckets: BTreeMap<u32, (u32, Instant)>,
}

impl Default for RateLimit {
    /// 10 at once, then 5 per second: plenty for a VM that boots or renews, little for a storm.
    fn default() -> Self {
        RateLimit { burst: 10, every: Duration::from_millis(200), buckets: BTreeMap::new() }
    }
}

impl RateLimit {
    /// Whether port `key` may have one more reply at `now`.
    pub fn allow(&mut self, key: u32, now: Instant) -> bool {
        let (tokens, since) = self.buckets.entry(key).or_insert((self.burst, now));
        let earned = (now.saturating_duration_since(*since).as_nanos() / self.every.as_nanos().max(1)) as u32;
        if earned > 0 {
            *tokens = (*tokens + earned).min(self.burst);
            *since = now;
        }
        if *tokens == 0 {
            return false;
        }
        *tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 0x11];

    fn lease() -> Lease {
        Lease {
            address: "10.0.1.11".parse().unwrap(),
            subnet: "10.0.1.0/24".parse().unwrap(),
            server: "10.0.1.1".parse().unwrap(),
            router: Some("10.0.1.1".parse().unwrap()),
            dns: vec!["10.0.0.53".parse().unwrap()],
            routes: vec![],
            mtu: 1442,
        }
    }

    /// A client's DHCP message of `kind`, as a frame from 0.0.0.0 to the broadcast address.
    fn request(kind: MessageType, requested: Option<Ipv4Addr>) -> Vec<u8> {
        let mut m = v4::Message::default();
        m.set_opcode(Opcode::BootRequest).set_xid(0x1234_5678).set_chaddr(&CLIENT);
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        if let Some(ip) = requested {
            m.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
        }
        let payload = m.to_vec().unwrap();
        let b = PacketBuilder::ethernet2(CLIENT, [0xff; 6]).ipv4([0; 4], [255; 4], 64).udp(68, 67);
        let mut out = Vec::new();
        b.write(&mut out, &payload).unwrap();
        out
    }

    fn decode(frame: &[u8]) -> (Ipv4Addr, v4::Message) {
        let p = SlicedPacket::from_ethernet(frame).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else { panic!("no IPv4") };
        let Some(TransportSlice::Udp(udp)) = &p.transport else { panic!("no UDP") };
        assert_eq!((udp.source_port(), udp.destination_port()), (67, 68));
        (ip.header().destination_addr(), v4::Message::from_bytes(udp.payload()).unwrap())
    }

    #[test]
    fn discover_gets_an_offer_and_request_an_ack_with_the_ports_address() {
        let (to, offer) = decode(&reply(&request(MessageType::Discover, None), &lease()).unwrap());
        assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
        assert_eq!((offer.xid(), offer.yiaddr(), to), (0x1234_5678, lease().address, lease().address));
        assert_eq!(&offer.chaddr()[..6], &CLIENT);
        for (code, want) in [
            (v4::OptionCode::SubnetMask, DhcpOption::SubnetMask("255.255.255.0".parse().unwrap())),
            (v4::OptionCode::Router, DhcpOption::Router(vec!["10.0.1.1".parse().unwrap()])),
            (
                v4::OptionCode::DomainNameServer,
                DhcpOption::DomainNameServer(vec!["10.0.0.53".parse().unwrap()]),
            ),
            (v4::OptionCode::InterfaceMtu, DhcpOption::InterfaceMtu(1442)),
            (v4::OptionCode::AddressLeaseTime, DhcpOption::AddressLeaseTime(86400)),
            (v4::OptionCode::ServerIdentifier, DhcpOption::ServerIdentifier("10.0.1.1".parse().unwrap())),
        ] {
            assert_eq!(offer.opts().get(code), Some(&want), "{code:?}");
        }
        let (_, ack) =
            decode(&reply(&request(MessageType::Request, Some(lease().address)), &lease()).unwrap());
        assert_eq!((ack.opts().msg_type(), ack.yiaddr()), (Some(MessageType::Ack), lease().address));
        // Asking for someone else's address is refused.
        let other = Some("10.0.1.99".parse().unwrap());
        let (to, nak) = decode(&reply(&request(MessageType::Request, other), &lease()).unwrap());
        assert_eq!((nak.opts().msg_type(), to), (Some(MessageType::Nak), Ipv4Addr::BROADCAST));
    }

    #[test]
    fn host_routes_carry_the_default_route_too() {
        let mut l = lease();
        l.routes = vec![("192.168.0.0/16".parse().unwrap(), "10.0.1.254".parse().unwrap())];
        let (_, offer) = decode(&reply(&request(MessageType::Discover, None), &l).unwrap());
        let Some(DhcpOption::ClasslessStaticRoute(routes)) =
            offer.opts().get(v4::OptionCode::ClasslessStaticRoute)
        else {
            panic!("no classless routes")
        };
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[1], (Ipv4Net::default(), "10.0.1.1".parse().unwrap()));
    }

    #[test]
    fn anything_else_gets_no_reply_and_never_a_panic() {
        assert!(matches!(reply(&request(MessageType::Release, None), &lease()), Err(NoReply::Ignored(_))));
        assert!(matches!(reply(&[0u8; 10], &lease()), Err(NoReply::NotDhcp(_))));
        let mut broken = request(MessageType::Discover, None);
        broken.truncate(60);
        assert!(reply(&broken, &lease()).is_err());
        for len in 0..broken.len() {
            let _ = reply(&request(MessageType::Discover, None)[..len], &lease());
        }
    }

    #[test]
    fn a_storm_is_cut_to_the_rate() {
        let mut r = RateLimit::default();
        let t = Instant::now();
        assert_eq!((0..20).filter(|_| r.allow(7, t)).count(), 10);
        assert!(r.allow(8, t), "other ports are not affected");
        assert!(!r.allow(7, t + Duration::from_millis(100)));
        assert!(r.allow(7, t + Duration::from_millis(250)));
    }
}
