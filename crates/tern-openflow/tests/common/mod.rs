//! A corpus of flows covering every match field (exact and masked), every action
//! kind and several instruction combinations, shared by the oracle tests.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tern_openflow::action::{ALG_FTP, OFPR_NO_MATCH};
use tern_openflow::flow::{
    OFPFF_CHECK_OVERLAP, OFPFF_NO_BYT_COUNTS, OFPFF_NO_PKT_COUNTS, OFPFF_RESET_COUNTS, OFPFF_SEND_FLOW_REM,
};
use tern_openflow::matches::OFPVID_PRESENT;
use tern_openflow::oxm::ct_state;
use tern_openflow::port::*;
use tern_openflow::*;

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn apply(actions: Vec<Action>) -> Vec<Instruction> {
    vec![Instruction::ApplyActions(actions)]
}

/// Prerequisites for a field, as a base match.
fn prereqs(field: Field) -> Match {
    use Field::*;
    let m = Match::new();
    match field {
        Ipv4Src | Ipv4Dst | IpProto | IpDscp | IpEcn | IpTtl | IpFrag => m.ipv4(),
        Ipv6Src | Ipv6Dst | Ipv6Label => m.ipv6(),
        ArpOp | ArpSpa | ArpTpa | ArpSha | ArpTha => m.arp(),
        TcpSrc | TcpDst | TcpFlags => m.tcp(),
        UdpSrc | UdpDst => m.udp(),
        SctpSrc | SctpDst => m.ipv4().ip_proto(132),
        Icmpv4Type | Icmpv4Code => m.icmp(),
        Icmpv6Type | Icmpv6Code => m.icmp6(),
        NdTarget | NdSll => m.icmp6().icmpv6_type(135),
        NdTll => m.icmp6().icmpv6_type(136),
        VlanPcp => m.vlan_vid_masked(OFPVID_PRESENT, OFPVID_PRESENT),
        _ => m,
    }
}

/// (value, optional mask) samples for each field.
fn samples(field: Field) -> Vec<(FieldValue, Option<FieldValue>)> {
    use Field::*;
    let fv = FieldValue;
    let e = |v: u128| (fv(v), None);
    let m = |v: u128, mask: u128| (fv(v), Some(fv(mask)));
    match field {
        InPort => vec![e(1), e(7), e(u128::from(OFPP_LOCAL))],
        Metadata => vec![
            e(0),
            e(1),
            e(0x1234_5678_9abc),
            m(0x1, 0xff),
            m(0xf000_0000_0000_0000, 0xf000_0000_0000_0000),
        ],
        TunnelId => vec![e(0x64), e(0), m(0x5, 0xff)],
        TunIpv4Src | TunIpv4Dst => vec![
            e(u128::from(u32::from(v4("172.31.0.1")))),
            m(u128::from(u32::from(v4("172.31.0.0"))), u128::from(u32::from(v4("255.255.0.0")))),
            m(u128::from(u32::from(v4("10.0.0.0"))), u128::from(u32::from(v4("255.0.255.0")))),
        ],
        Reg(_) => vec![e(5), e(0), m(0x5, 0xff), m(0, 0xff00), e(0xffff_ffff)],
        PktMark => vec![e(3), m(0x10, 0xf0)],
        CtState => vec![
            m(u128::from(ct_state::NEW | ct_state::TRK), u128::from(ct_state::NEW | ct_state::TRK)),
            m(0, u128::from(ct_state::TRK)),
            m(
                u128::from(ct_state::EST | ct_state::RPL | ct_state::TRK),
                u128::from(ct_state::EST | ct_state::REL | ct_state::RPL | ct_state::INV | ct_state::TRK),
            ),
            m(0, 0xff),
            e(u128::from(ct_state::TRK | ct_state::NEW)),
            m(0xff, 0xff),
        ],
        CtZone => vec![e(5), e(0), e(65535)],
        CtMark => vec![e(1), m(1, 3), e(0)],
        CtLabel => vec![e(1), m(1, (0xff << 120) | 1), e(u128::MAX), e(0x1234 << 64)],
        ConjId => vec![e(7), e(0)],
        EthSrc | EthDst | ArpSha | ArpTha | NdSll | NdTll => vec![
            e(0x0011_2233_4455),
            m(0x0100_0000_0000, 0x0100_0000_0000),
            m(0x0011_2233_4455, 0xffff_ff00_0000),
        ],
        EthType => vec![e(0x88cc), e(0x0800), e(0x86dd), e(0x0806), e(0x8035), e(0x8847)],
        VlanVid => vec![
            e(u128::from(OFPVID_PRESENT | 5)),
            e(0),
            m(u128::from(OFPVID_PRESENT), u128::from(OFPVID_PRESENT)),
            m(u128::from(OFPVID_PRESENT | 5), 0xfff),
        ],
        VlanPcp => vec![e(3), e(0)],
        IpProto => vec![e(47), e(6), e(17), e(1), e(132), e(58)],
        IpDscp => vec![e(10), e(0), e(63)],
        IpEcn => vec![e(1), e(3)],
        IpTtl => vec![e(5), e(0)],
        IpFrag => vec![e(0), e(1), e(3), m(1, 1), m(0, 1), m(2, 2), m(0, 2)],
        Ipv4Src | Ipv4Dst | ArpSpa | ArpTpa => vec![
            e(u128::from(u32::from(v4("10.0.0.1")))),
            m(u128::from(u32::from(v4("10.0.0.0"))), u128::from(u32::from(v4("255.255.255.0")))),
            m(u128::from(u32::from(v4("10.0.0.0"))), u128::from(u32::from(v4("255.0.255.0")))),
            e(0),
        ],
        Ipv6Src | Ipv6Dst | NdTarget => vec![
            e(u128::from(v6("2001:db8::1"))),
            e(u128::from(v6("fe80::1:0:0:1"))),
            e(u128::from(v6("::10.0.0.1"))),
            e(u128::from(v6("::ffff:10.0.0.1"))),
            m(u128::from(v6("fe80::")), u128::from(v6("ffff:ffff:ffff:ffff::"))),
            m(u128::from(v6("fe80::1")), u128::from(v6("ffff::ffff"))),
        ],
        Ipv6Label => vec![e(0x12345), m(0x10, 0xf0)],
        ArpOp => vec![e(1), e(2)],
        TcpSrc | TcpDst | UdpSrc | UdpDst | SctpSrc | SctpDst => vec![e(80), e(0), m(0x100, 0xff00)],
        TcpFlags => vec![m(0x002, 0x012), e(0x012), m(0x800, 0x800), m(0, 0xfff)],
        Icmpv4Type | Icmpv4Code | Icmpv6Type | Icmpv6Code => vec![e(8), e(0)],
    }
}

/// Every field with every sample value, each as its own flow.
pub fn match_flows() -> Vec<Flow> {
    let mut flows = Vec::new();
    for &field in tern_openflow::oxm::ALL_FIELDS {
        for (value, mask) in samples(field) {
            let m = prereqs(field).with(field, value, mask);
            flows.push(Flow::new(1, 100, m, apply(vec![Action::output(1)])));
        }
    }
    // Protocol shorthands and combinations.
    let combos = vec![
        Match::new().tcp().tcp_dst(443).ipv4_src(v4("10.0.0.1")),
        Match::new().udp6().udp_dst(53),
        Match::new().icmp6().icmpv6_type(135).icmpv6_code(0),
        Match::new().ipv6().ip_proto(47),
        Match::new().ipv4().ip_proto(58),
        Match::new().ipv6().ip_proto(1),
        Match::new().ipv4().ip_proto(132),
        Match::new().ipv6().ip_proto(132),
        Match::new().arp().arp_op(1).arp_spa(v4("10.0.0.5")).arp_tha([0, 0, 0, 0, 0, 2]),
        Match::new().eth_type(0x8035),
        Match::new()
            .in_port(3)
            .eth_src([0xfa, 0x16, 0x3e, 0, 0, 1])
            .eth_dst([0xff; 6])
            .vlan_vid(OFPVID_PRESENT | 100)
            .vlan_pcp(5)
            .ipv4()
            .ip_dscp(46)
            .ip_ecn(2)
            .ip_ttl(64),
        Match::new()
            .reg(0, 1)
            .reg(15, 2)
            .reg_masked(7, 0x10, 0xf0)
            .metadata_masked(0x100, 0xff00)
            .tun_id(100)
            .tun_ipv4_dst(v4("172.31.0.2"))
            .ct_state_flags(ct_state::EST | ct_state::TRK, ct_state::NEW)
            .ct_zone(9)
            .ct_mark(1)
            .pkt_mark(7)
            .conj_id(3),
        Match::new().tcp6().tcp_src(1000).tcp_dst(2000).with(Field::TcpFlags, 2u16, Some(FieldValue(0x17))),
    ];
    for (i, m) in combos.into_iter().enumerate() {
        flows.push(Flow::new(2, 200 + i as u16, m, apply(vec![Action::output(2)])));
    }
    flows
}

/// Flows exercising every action and instruction kind.
pub fn action_flows() -> Vec<Flow> {
    use tern_openflow::CtZone;
    use Field::*;
    let r = |n: u8| FieldSlice::whole(Reg(n));
    let ipm = Match::new().ipv4();
    let vlan = Match::new().vlan_vid(OFPVID_PRESENT | 5);
    let ct = |commit: bool, zone: CtZone, table: Option<u8>, actions: Vec<Action>| {
        Action::Ct(Ct { commit, force: false, zone, recirc_table: table, alg: 0, actions })
    };
    let mut cases: Vec<(Match, Vec<Action>)> = vec![
        (ipm.clone(), vec![Action::output(1)]),
        (ipm.clone(), vec![Action::output(OFPP_LOCAL), Action::output(OFPP_IN_PORT)]),
        (
            ipm.clone(),
            vec![Action::output(OFPP_FLOOD), Action::output(OFPP_ALL), Action::output(OFPP_NORMAL)],
        ),
        (ipm.clone(), vec![Action::output(OFPP_TABLE)]),
        (ipm.clone(), vec![Action::Output { port: OFPP_CONTROLLER, max_len: 128 }]),
        (ipm.clone(), vec![Action::controller(65535)]),
        (ipm.clone(), vec![Action::controller(100)]),
        (ipm.clone(), vec![Action::controller_userdata(vec![1, 2], true)]),
        (ipm.clone(), vec![Action::controller_userdata(vec![0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 4], false)]),
        (
            ipm.clone(),
            vec![Action::Controller {
                max_len: 100,
                controller_id: 3,
                reason: OFPR_NO_MATCH,
                userdata: vec![],
                pause: false,
            }],
        ),
        (
            ipm.clone(),
            vec![Action::Controller {
                max_len: 65535,
                controller_id: 0,
                reason: 2,
                userdata: vec![7],
                pause: true,
            }],
        ),
        (ipm.clone(), vec![Action::set_field(Reg(7), 5u32), Action::set_field(Reg(0), 0u32)]),
        (
            ipm.clone(),
            vec![Action::SetField { field: Reg(6), value: FieldValue(5), mask: Some(FieldValue(0xff)) }],
        ),
        (ipm.clone(), vec![Action::set_field(EthDst, [0, 0x11, 0x22, 0x33, 0x44, 0x55])]),
        (ipm.clone(), vec![Action::set_field(EthSrc, [0xfa, 0x16, 0x3e, 0, 0, 1])]),
        (
            ipm.clone(),
            vec![Action::set_field(Ipv4Dst, v4("10.0.0.1")), Action::set_field(Ipv4Src, v4("10.0.0.2"))],
        ),
        (
            ipm.clone(),
            vec![Action::set_field(TunnelId, 0x64u64), Action::set_field(TunIpv4Dst, v4("172.31.0.2"))],
        ),
        (ipm.clone(), vec![Action::set_field(Metadata, 0x1234u64)]),
        (ipm.clone(), vec![Action::set_field(PktMark, 9u32)]),
        (ipm.clone(), vec![Action::set_field(IpDscp, 10u8)]),
        (Match::new().tcp(), vec![Action::set_field(TcpDst, 8080u16)]),
        (Match::new().udp(), vec![Action::set_field(UdpSrc, 53u16)]),
        (Match::new().ipv6(), vec![Action::set_field(Ipv6Dst, v6("2001:db8::5"))]),
        (
            Match::new().arp(),
            vec![Action::set_field(ArpSpa, v4("10.0.0.7")), Action::set_field(ArpSha, [2, 0, 0, 0, 0, 9])],
        ),
        (vlan.clone(), vec![Action::set_field(VlanVid, OFPVID_PRESENT | 10)]),
        (vlan.clone(), vec![Action::PopVlan]),
        (ipm.clone(), vec![Action::PushVlan(0x8100), Action::set_field(VlanVid, OFPVID_PRESENT | 10)]),
        (ipm.clone(), vec![Action::PushVlan(0x88a8)]),
        (ipm.clone(), vec![Action::Group(5)]),
        (ipm.clone(), vec![Action::DecTtl]),
        (ipm.clone(), vec![Action::resubmit(20), Action::resubmit(0)]),
        (
            ipm.clone(),
            vec![
                Action::Resubmit { in_port: Some(3), table: None },
                Action::Resubmit { in_port: Some(3), table: Some(7) },
                Action::Resubmit { in_port: Some(OFPP_LOCAL), table: Some(1) },
            ],
        ),
        (
            ipm.clone(),
            vec![
                Action::move_(FieldSlice::whole(EthSrc), FieldSlice::whole(EthDst)),
                Action::move_(FieldSlice::bits(Metadata, 0, 31), r(0)),
                Action::move_(FieldSlice::bits(TunnelId, 0, 23), FieldSlice::bits(Reg(1), 8, 31)),
                Action::move_(FieldSlice::whole(Ipv4Src), r(2)),
                Action::move_(FieldSlice::whole(InPort), r(4)),
                Action::move_(FieldSlice::whole(CtMark), FieldSlice::whole(PktMark)),
                Action::move_(FieldSlice::whole(CtZone), FieldSlice::bits(Reg(5), 0, 15)),
                Action::move_(FieldSlice::whole(CtState), r(7)),
                Action::move_(FieldSlice::whole(VlanVid), FieldSlice::bits(Reg(8), 0, 11)),
                Action::move_(FieldSlice::bits(CtLabel, 0, 31), r(10)),
                Action::move_(FieldSlice::whole(IpDscp), FieldSlice::bits(Reg(11), 0, 5)),
                Action::move_(FieldSlice::whole(EthType), FieldSlice::bits(Reg(13), 0, 15)),
                Action::move_(FieldSlice::whole(ConjId), r(14)),
                Action::move_(FieldSlice::bits(Reg(0), 5, 5), FieldSlice::bits(Reg(15), 7, 7)),
                Action::move_(FieldSlice::whole(TunIpv4Src), r(3)),
            ],
        ),
        (
            ipm.clone(),
            vec![
                Action::load(r(7), 5),
                Action::load(FieldSlice::bits(Reg(7), 0, 7), 3),
                Action::load(FieldSlice::bits(Reg(6), 16, 31), 0),
                Action::load(FieldSlice::whole(Metadata), 0x1_0000_0000),
                Action::load(FieldSlice::whole(EthDst), 0x0011_2233_4455),
                Action::load(FieldSlice::whole(TunnelId), 100),
                Action::load(FieldSlice::bits(Reg(3), 31, 31), 1),
                Action::load(FieldSlice::whole(Ipv4Dst), 0x0a00_0001),
            ],
        ),
        (ipm.clone(), vec![Action::CtClear]),
        (
            ipm.clone(),
            vec![ct(
                true,
                CtZone::FromField(FieldSlice::bits(Reg(6), 0, 15)),
                None,
                vec![Action::Nat(Nat::src(ip("10.0.0.1")))],
            )],
        ),
        (ipm.clone(), vec![ct(false, CtZone::Immediate(5), Some(20), vec![])]),
        (ipm.clone(), vec![ct(false, CtZone::Immediate(0), Some(0), vec![])]),
        (
            ipm.clone(),
            vec![ct(
                true,
                CtZone::Immediate(7),
                None,
                vec![Action::set_field(CtMark, 1u32), Action::load(FieldSlice::bits(CtLabel, 0, 63), 2)],
            )],
        ),
        (
            ipm.clone(),
            vec![ct(
                true,
                CtZone::Immediate(7),
                None,
                vec![
                    Action::SetField { field: CtMark, value: FieldValue(1), mask: Some(FieldValue(3)) },
                    Action::set_field(CtLabel, 5u128),
                ],
            )],
        ),
        (ipm.clone(), vec![ct(false, CtZone::Immediate(0), Some(30), vec![Action::Nat(Nat::default())])]),
        (
            Match::new().tcp(),
            vec![ct(
                true,
                CtZone::Immediate(0),
                None,
                vec![Action::Nat(Nat {
                    kind: Some(NatKind::Dst),
                    ip_min: Some(ip("10.0.0.1")),
                    ip_max: Some(ip("10.0.0.5")),
                    port_min: Some(80),
                    port_max: Some(90),
                    random: true,
                    ..Nat::default()
                })],
            )],
        ),
        (
            Match::new().tcp(),
            vec![ct(
                true,
                CtZone::Immediate(0),
                None,
                vec![Action::Nat(Nat {
                    kind: Some(NatKind::Src),
                    ip_min: Some(ip("10.0.0.1")),
                    port_min: Some(1000),
                    persistent: true,
                    hash: true,
                    ..Nat::default()
                })],
            )],
        ),
        (
            Match::new().tcp6(),
            vec![ct(
                true,
                CtZone::Immediate(1),
                None,
                vec![Action::Nat(Nat {
                    kind: Some(NatKind::Src),
                    ip_min: Some(ip("fe80::1")),
                    ip_max: Some(ip("fe80::5")),
                    port_min: Some(100),
                    ..Nat::default()
                })],
            )],
        ),
        (
            Match::new().ipv6(),
            vec![ct(
                true,
                CtZone::Immediate(1),
                None,
                vec![Action::Nat(Nat {
                    kind: Some(NatKind::Dst),
                    ip_min: Some(ip("2001:db8::1")),
                    ..Nat::default()
                })],
            )],
        ),
        (
            Match::new().tcp(),
            vec![Action::Ct(Ct {
                commit: true,
                force: true,
                zone: CtZone::Immediate(3),
                recirc_table: None,
                alg: ALG_FTP,
                actions: vec![],
            })],
        ),
        (
            Match::new().udp(),
            vec![Action::Ct(Ct {
                commit: true,
                force: false,
                zone: CtZone::Immediate(3),
                recirc_table: Some(4),
                alg: 69,
                actions: vec![],
            })],
        ),
        (Match::new(), vec![Action::Conjunction { id: 1, clause: 2, n_clauses: 3 }]),
        (
            Match::new(),
            vec![
                Action::Conjunction { id: 0x1234_5678, clause: 1, n_clauses: 2 },
                Action::Conjunction { id: 9, clause: 2, n_clauses: 2 },
            ],
        ),
        (ipm.clone(), vec![Action::Note(vec![1, 2, 3, 4, 5, 6])]),
        (ipm.clone(), vec![Action::Note(vec![0xab; 20])]),
        (ipm.clone(), vec![Action::Note(vec![1, 2, 3])]),
        (ipm.clone(), vec![]),
    ];
    let mut flows: Vec<Flow> =
        cases.drain(..).enumerate().map(|(i, (m, a))| Flow::new(3, 300 + i as u16, m, apply(a))).collect();

    // Instruction combinations.
    let combos: Vec<Vec<Instruction>> = vec![
        vec![Instruction::GotoTable(5)],
        vec![Instruction::ApplyActions(vec![]), Instruction::GotoTable(5)],
        vec![
            Instruction::ApplyActions(vec![Action::output(4)]),
            Instruction::ClearActions,
            Instruction::WriteActions(vec![Action::output(3)]),
            Instruction::WriteMetadata { value: 1, mask: 0xff },
            Instruction::GotoTable(5),
        ],
        vec![
            Instruction::GotoTable(9),
            Instruction::WriteMetadata { value: 0x10, mask: u64::MAX },
            Instruction::ApplyActions(vec![Action::set_field(Field::Reg(1), 2u32)]),
        ],
        vec![Instruction::WriteActions(vec![Action::output(3), Action::Group(1)])],
        vec![Instruction::WriteActions(vec![])],
        vec![Instruction::ClearActions],
        vec![Instruction::WriteMetadata { value: 0, mask: 1 }],
        vec![],
    ];
    for (i, ins) in combos.into_iter().enumerate() {
        flows.push(Flow::new(4, 400 + i as u16, Match::new().ipv4(), ins));
    }

    // Flow header fields.
    let mut f = Flow::new(5, 32768, Match::new().in_port(3), apply(vec![]));
    f.cookie = 0x10;
    f.idle_timeout = 10;
    f.hard_timeout = 20;
    f.flags = OFPFF_SEND_FLOW_REM
        | OFPFF_CHECK_OVERLAP
        | OFPFF_RESET_COUNTS
        | OFPFF_NO_PKT_COUNTS
        | OFPFF_NO_BYT_COUNTS;
    flows.push(f);
    let mut f = Flow::new(0, 0, Match::new(), apply(vec![Action::resubmit(20)]));
    f.cookie = u64::MAX - 1;
    flows.push(f);
    let mut f = Flow::new(0, 32768, Match::new(), apply(vec![]));
    f.flags = OFPFF_SEND_FLOW_REM;
    flows.push(f);
    flows.push(Flow::new(253, 65535, Match::new().reg(0, 1), apply(vec![Action::output(1)])));
    flows
}

pub fn all_flows() -> Vec<Flow> {
    let mut v = match_flows();
    v.extend(action_flows());
    v
}
