//! Security groups, stateful on conntrack (or stateless): tables EGRESS_ACL/EGRESS_ACL_CT for
//! what a local VIF sends, INGRESS_ACL/INGRESS_ACL_CT for what is delivered to one. Neutron's
//! semantics: a port with port security on accepts only what its groups' rules allow (no group:
//! nothing), replies to allowed traffic always pass in stateful groups, and a port with port
//! security off is not filtered.
//!
//! * ACL table: a filtered port's IPv4/IPv6 goes through conntrack in the port's own zone (its
//!   key) and on to the CT table; DHCP requests and IPv6 neighbour discovery always pass;
//!   anything else (ARP) passes. A port whose groups are all stateless (`stateful=false`) goes
//!   to the CT table untracked;
//! * CT table: established and related pass, invalid is dropped; a new connection passes (and is
//!   committed) if a rule of one of the port's groups matches it, else it is dropped. An
//!   untracked packet (a stateless port's) passes if a rule matches it, replies included: a
//!   stateless group must allow them with rules of its own.
//!
//! Rules are conjunctive matches, so the flow count grows as ports + rule matches, not as their
//! product: clause 1 is "the port belongs to the group" (one flow per port, carrying every rule
//! of its groups), clause 2 is "the packet matches the rule" (one flow per protocol/port-range
//! block/remote address, shared by every rule with that match), and one flow per rule commits.
//! A `remote_group_id` expands to the addresses of the group's ports, wherever they are.

use std::collections::BTreeSet;

use ipnet::IpNet;
use tern_model::{Direction, EtherType, SecurityGroupRule};
use tern_openflow::oxm::ct_state::{EST, INV, NEW, REL, TRK};
use tern_openflow::{Action, Ct, CtZone, Field, FieldSlice, Match};

use crate::cookie::{App, Object};
use crate::flowset::FlowSet;
use crate::tables::{
    EGRESS_ACL, EGRESS_ACL_CT, INGRESS_ACL, INGRESS_ACL_CT, OUTPUT, REG_DST_PORT, REG_SRC_PORT, SERVICES,
};
use crate::view::{ChassisView, PortInfo};

use super::{flow, PRIORITY_DEFAULT, PRIORITY_PORT};

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
/// Established/related/invalid, above the rules.
const PRIORITY_STATE: u16 = PRIORITY_PORT + 100;
/// Always allowed (DHCP, neighbour discovery), above the ACL's conntrack flows.
const PRIORITY_ALWAYS: u16 = PRIORITY_PORT + 10;

/// One direction of the filter.
struct Side {
    direction: Direction,
    acl: u8,
    ct: u8,
    next: u8,
    /// The register holding the local port's key.
    reg: u8,
}

const EGRESS: Side = Side {
    direction: Direction::Egress,
    acl: EGRESS_ACL,
    ct: EGRESS_ACL_CT,
    next: SERVICES,
    reg: REG_SRC_PORT,
};
const INGRESS: Side = Side {
    direction: Direction::Ingress,
    acl: INGRESS_ACL,
    ct: INGRESS_ACL_CT,
    next: OUTPUT,
    reg: REG_DST_PORT,
};

pub fn flows(view: &ChassisView, out: &mut FlowSet) {
    let filtered: Vec<&PortInfo> = view
        .local_networks()
        .flat_map(|n| view.local_ports(&n.id))
        .map(|(p, _)| p)
        .filter(|p| p.port_security)
        .collect();
    // Decided once per computation: the ports filtered without conntrack (by key).
    let stateless: BTreeSet<u32> = filtered.iter().filter(|p| view.stateless(p)).map(|p| p.key).collect();
    for side in [EGRESS, INGRESS] {
        side_flows(view, &side, &filtered, &stateless, out);
    }
}

fn side_flows(
    view: &ChassisView,
    side: &Side,
    ports: &[&PortInfo],
    stateless: &BTreeSet<u32>,
    out: &mut FlowSet,
) {
    let sg =
        |table, object, priority, m, actions| flow(App::SecurityGroups, object, table, priority, m, actions);
    let next = || vec![Action::resubmit(side.next)];
    out.insert(sg(side.acl, Object::None, PRIORITY_DEFAULT, Match::new(), next()));
    out.insert(sg(side.ct, Object::None, PRIORITY_DEFAULT, Match::new(), vec![]));
    let zone = CtZone::FromField(FieldSlice::bits(Field::Reg(side.reg), 0, 15));
    let tracked = |set: u32, clear: u32| Match::new().ct_state_flags(set | TRK, clear);
    out.insert(sg(side.ct, Object::None, PRIORITY_STATE, tracked(EST, NEW | REL | INV), next()));
    out.insert(sg(side.ct, Object::None, PRIORITY_STATE, tracked(REL, NEW | EST | INV), next()));
    out.insert(sg(side.ct, Object::None, PRIORITY_STATE, tracked(INV, 0), vec![]));
    for port in ports {
        let object = Object::Port(port.key);
        let mine = Match::new().reg(side.reg, port.key);
        let mut into_ct = Ct::new(zone);
        into_ct.recirc_table = Some(side.ct);
        let judge = if stateless.contains(&port.key) {
            Action::resubmit(side.ct)
        } else {
            Action::Ct(into_ct.clone())
        };
        for eth in [ETH_IPV4, ETH_IPV6] {
            out.insert(sg(side.acl, object, PRIORITY_PORT, mine.clone().eth_type(eth), vec![judge.clone()]));
        }
        // Neighbour discovery (router/neighbour solicitation and advertisement) always passes.
        for t in 133..=136u8 {
            let nd = mine.clone().eth_type(ETH_IPV6).ip_proto(IPPROTO_ICMPV6).icmpv6_type(t);
            out.insert(sg(side.acl, object, PRIORITY_ALWAYS, nd, next()));
        }
        if side.direction == Direction::Egress && port.dhcp {
            let dhcp = mine.clone().eth_type(ETH_IPV4).ip_proto(IPPROTO_UDP).udp_src(68).udp_dst(67);
            out.insert(sg(side.acl, object, PRIORITY_ALWAYS, dhcp, next()));
        }
    }
    // The rules, as conjunctions: (port in group) x (packet matches rule); for tracked packets
    // of a new connection (stateful ports: committed) or untracked ones (stateless ports).
    let new = || Match::new().ct_state_flags(NEW | TRK, EST | REL | INV);
    let untracked = || Match::new().ct_state_flags(0, TRK);
    let mut conj_id = u32::from(side.direction == Direction::Ingress) << 31;
    // Each match once, with every conjunction it takes part in, in first-seen order; found by
    // hash, as a remote-group rule brings one match per member address.
    let mut clauses: Vec<(Match, Vec<Action>)> = Vec::new();
    let mut clause_of: foldhash::HashMap<Match, usize> = foldhash::HashMap::default();
    let mut add = |m: Match, a: Action| match clause_of.get(&m) {
        Some(i) => clauses[*i].1.push(a),
        None => {
            clause_of.insert(m.clone(), clauses.len());
            clauses.push((m, vec![a]));
        }
    };
    let mut commits = Vec::new();
    for group in view.security_groups.values() {
        let members: Vec<&&PortInfo> =
            ports.iter().filter(|p| p.security_groups.contains(&group.id)).collect();
        for stateful in [true, false] {
            let members: Vec<&&PortInfo> =
                members.iter().copied().filter(|p| stateless.contains(&p.key) != stateful).collect();
            if members.is_empty() {
                continue;
            }
            let state = || if stateful { new() } else { untracked() };
            for rule in group.rules.iter().filter(|r| r.direction == side.direction) {
                let eth = if rule.ethertype == EtherType::IPv6 { ETH_IPV6 } else { ETH_IPV4 };
                let matches = rule_matches(view, rule, side.direction, state().eth_type(eth));
                if matches.is_empty() {
                    continue;
                }
                conj_id += 1;
                for p in &members {
                    let m = state().reg(side.reg, p.key).eth_type(eth);
                    add(m, Action::Conjunction { id: conj_id, clause: 1, n_clauses: 2 });
                }
                for m in matches {
                    add(m, Action::Conjunction { id: conj_id, clause: 2, n_clauses: 2 });
                }
                let mut actions = vec![Action::resubmit(side.next)];
                if stateful {
                    let mut commit = Ct::new(zone);
                    commit.commit = true;
                    actions.insert(0, Action::Ct(commit));
                }
                commits.push(sg(
                    side.ct,
                    Object::None,
                    PRIORITY_PORT,
                    state().eth_type(eth).conj_id(conj_id),
                    actions,
                ));
            }
        }
    }
    for (m, actions) in clauses {
        out.insert(sg(side.ct, Object::None, PRIORITY_PORT, m, actions));
    }
    for c in commits {
        out.insert(c);
    }
}

/// The packet matches of one rule added to `base` (clause 2 of its conjunction): protocol x
/// destination-port blocks x remote addresses. Empty when the rule can match nothing (a remote
/// group without addresses of the rule's family).
fn rule_matches(
    view: &ChassisView,
    rule: &SecurityGroupRule,
    direction: Direction,
    base: Match,
) -> Vec<Match> {
    let v6 = rule.ethertype == EtherType::IPv6;
    // The remote end: the source of ingress traffic, the destination of egress traffic.
    let remotes: Option<Vec<IpNet>> = match (&rule.remote_ip_prefix, &rule.remote_group_id) {
        (Some(net), _) => Some(vec![*net]),
        (None, Some(group)) => Some(
            view.active_ports()
                .filter(|p| p.security_groups.contains(group))
                .flat_map(|p| p.ips.iter().copied())
                .filter(|ip| ip.is_ipv6() == v6)
                .map(IpNet::from)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        ),
        (None, None) => None,
    };
    if remotes.as_ref().is_some_and(Vec::is_empty) {
        return Vec::new();
    }
    let mut base = vec![base];
    if let Some(proto) = rule.protocol_number() {
        let proto = if v6 && proto == 1 { IPPROTO_ICMPV6 } else { proto };
        let with_proto = base[0].clone().ip_proto(proto);
        base = match proto {
            6 | 17 | 132 => match (rule.port_range_min, rule.port_range_max) {
                (None, None) => vec![with_proto],
                (min, max) => {
                    let (lo, hi) = (min.unwrap_or(0), max.or(min).unwrap_or(u16::MAX));
                    port_blocks(lo, hi)
                        .into_iter()
                        .map(|(v, mask)| with_proto.clone().tp_dst_masked(proto, v, mask))
                        .collect()
                }
            },
            1 | 58 => {
                // For ICMP, Neutron's port_range_min/max are the type and code.
                let mut m = with_proto;
                if let Some(t) = rule.port_range_min {
                    m = if proto == 1 { m.icmpv4_type(t as u8) } else { m.icmpv6_type(t as u8) };
                }
                if let Some(c) = rule.port_range_max {
                    m = if proto == 1 { m.icmpv4_code(c as u8) } else { m.icmpv6_code(c as u8) };
                }
                vec![m]
            }
            _ => vec![with_proto],
        };
    }
    let Some(remotes) = remotes else { return base };
    let mut out = Vec::new();
    for m in &base {
        for net in &remotes {
            out.push(remote(m.clone(), net, direction));
        }
    }
    out
}

/// `m` restricted to the remote end `net`.
fn remote(m: Match, net: &IpNet, direction: Direction) -> Match {
    let ingress = direction == Direction::Ingress;
    match net {
        IpNet::V4(n) if n.prefix_len() == 0 => m,
        IpNet::V6(n) if n.prefix_len() == 0 => m,
        IpNet::V4(n) => match (ingress, n.prefix_len()) {
            (true, 32) => m.ipv4_src(n.addr()),
            (true, _) => m.ipv4_src_masked(n.network(), n.netmask()),
            (false, 32) => m.ipv4_dst(n.addr()),
            (false, _) => m.ipv4_dst_masked(n.network(), n.netmask()),
        },
        IpNet::V6(n) => match (ingress, n.prefix_len()) {
            (true, 128) => m.ipv6_src(n.addr()),
            (true, _) => m.ipv6_src_masked(n.network(), n.netmask()),
            (false, 128) => m.ipv6_dst(n.addr()),
            (false, _) => m.ipv6_dst_masked(n.network(), n.netmask()),
        },
    }
}

/// The range lo..=hi as (value, mask) blocks, fewest first-fit.
fn port_blocks(lo: u16, hi: u16) -> Vec<(u16, u16)> {
    let (mut lo, hi) = (u32::from(lo), u32::from(hi));
    let mut out = Vec::new();
    while lo <= hi {
        // The largest aligned block starting at lo that stays within hi.
        let mut size = if lo == 0 { 1 << 16 } else { 1u32 << lo.trailing_zeros() };
        while lo + size - 1 > hi {
            size >>= 1;
        }
        out.push((lo as u16, (0xffff_u32 & !(size - 1)) as u16));
        lo += size;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covered(blocks: &[(u16, u16)]) -> Vec<u16> {
        (0..=u16::MAX).filter(|p| blocks.iter().any(|(v, m)| p & m == *v)).collect()
    }

    #[test]
    fn port_ranges_become_exact_masked_blocks() {
        assert_eq!(port_blocks(22, 22), [(22, 0xffff)]);
        assert_eq!(port_blocks(0, u16::MAX), [(0, 0)]);
        for (lo, hi) in [(1, 1023), (80, 90), (1000, 1999), (32768, 65535), (5, 6)] {
            let b = port_blocks(lo, hi);
            assert_eq!(covered(&b), (lo..=hi).collect::<Vec<_>>(), "{lo}-{hi}");
            assert!(b.len() <= 32, "{lo}-{hi}: {} blocks", b.len());
        }
    }
}
