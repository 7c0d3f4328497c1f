//! Lines observed verbatim from `ovs-ofctl -O OpenFlow13 dump-flows --no-stats`
//! (Open vSwitch 3.1, flows added with `ovs-ofctl add-flow`), minus the leading space,
//! rebuilt as `Flow`s: their Display must reproduce them exactly. These document the
//! format rules: `cookie=` only when non-zero, `table=` only when non-zero, timeouts
//! only when set, flags as bare words, `priority=` only when not 32768 and always
//! first in the match, protocol shorthands (`ip`, `tcp6`, `arp`...) after the ct_*
//! fields, `load:` for NXAST_REG_LOAD versus `set_field:` for OFPAT_SET_FIELD, `drop`
//! for no actions.

use std::net::Ipv4Addr;

use tern_openflow::action::OFPR_NO_MATCH;
use tern_openflow::matches::OFPVID_PRESENT;
use tern_openflow::oxm::ct_state::*;
use tern_openflow::port::*;
use tern_openflow::*;

fn apply(a: Vec<Action>) -> Vec<Instruction> {
    vec![Instruction::ApplyActions(a)]
}

fn reg(n: u8) -> Field {
    Field::Reg(n)
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn observed_dump_flows_lines() {
    let ct = |commit: bool, zone: CtZone, table: Option<u8>, actions: Vec<Action>| {
        Action::Ct(Ct { commit, force: false, zone, recirc_table: table, alg: 0, actions })
    };
    let mut header = Flow::new(5, 32768, Match::new().in_port(3), vec![]);
    header.cookie = 0x10;
    header.idle_timeout = 10;
    header.hard_timeout = 20;
    header.flags = 0x1f;

    let cases: Vec<(Flow, &str)> = vec![
        (
            Flow::new(
                0,
                32768,
                Match::new()
                    .ct_state_flags(NEW | TRK, 0)
                    .tcp()
                    .reg_masked(0, 5, 0xff)
                    .tun_id(0x64)
                    .metadata(1)
                    .vlan_vid(OFPVID_PRESENT | 5)
                    .tcp_dst(80),
                apply(vec![
                    Action::load(FieldSlice::whole(reg(7)), 5),
                    Action::move_(FieldSlice::whole(Field::EthSrc), FieldSlice::whole(Field::EthDst)),
                    Action::load(FieldSlice::bits(reg(7), 0, 7), 3),
                ]),
            ),
            "ct_state=+new+trk,tcp,reg0=0x5/0xff,tun_id=0x64,metadata=0x1,dl_vlan=5,tp_dst=80 \
             actions=load:0x5->NXM_NX_REG7[],move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],load:0x3->NXM_NX_REG7[0..7]",
        ),
        (
            Flow::new(0, 100, Match::new().ipv4().ipv4_src(ip("10.0.0.1")), apply(vec![Action::output(1)])),
            "priority=100,ip,nw_src=10.0.0.1 actions=output:1",
        ),
        (
            Flow::new(0, 0, Match::new(), apply(vec![Action::resubmit(20)])),
            "priority=0 actions=resubmit(,20)",
        ),
        (
            header,
            "cookie=0x10, table=5, idle_timeout=10, hard_timeout=20, send_flow_rem check_overlap \
             reset_counts no_packet_counts no_byte_counts in_port=3 actions=drop",
        ),
        (
            Flow::new(
                1,
                10,
                Match::new().ipv4().reg(0, 0).reg_masked(1, 0, 0xff).metadata(0),
                apply(vec![
                    Action::set_field(reg(7), 5u32),
                    Action::load(FieldSlice::bits(reg(6), 0, 7), 5),
                    Action::set_field(Field::EthDst, [0, 0x11, 0x22, 0x33, 0x44, 0x55]),
                    Action::set_field(Field::Ipv4Dst, ip("10.0.0.1")),
                    Action::set_field(Field::TunnelId, 0x64u64),
                    Action::set_field(Field::TunIpv4Dst, ip("172.31.0.2")),
                    Action::output(OFPP_LOCAL),
                ]),
            ),
            "table=1, priority=10,ip,reg0=0,reg1=0/0xff,metadata=0 actions=set_field:0x5->reg7,\
             load:0x5->NXM_NX_REG6[0..7],set_field:00:11:22:33:44:55->eth_dst,set_field:10.0.0.1->ip_dst,\
             set_field:0x64->tun_id,set_field:172.31.0.2->tun_dst,LOCAL",
        ),
        (
            Flow::new(
                2,
                10,
                Match::new().ipv4(),
                vec![
                    Instruction::GotoTable(5),
                    Instruction::WriteMetadata { value: 1, mask: 0xff },
                    Instruction::ClearActions,
                    Instruction::WriteActions(vec![Action::output(3)]),
                    Instruction::ApplyActions(vec![Action::output(4)]),
                ],
            ),
            "table=2, priority=10,ip actions=output:4,clear_actions,write_actions(output:3),\
             write_metadata:0x1/0xff,goto_table:5",
        ),
        (
            Flow::new(
                3,
                11,
                Match::new(),
                apply(vec![
                    Action::Conjunction {
                        id: 1,
                        clause: 2,
                        n_clauses: 3,
                    },
                    Action::Note(vec![1, 2, 3]),
                ]),
            ),
            "table=3, priority=11 actions=conjunction(1,2/3),note:01.02.03.00.00.00",
        ),
        (
            Flow::new(
                3,
                14,
                Match::new(),
                apply(vec![Action::Controller {
                    max_len: 100,
                    controller_id: 3,
                    reason: OFPR_NO_MATCH,
                    userdata: vec![1],
                    pause: false,
                }]),
            ),
            "table=3, priority=14 actions=controller(reason=no_match,max_len=100,id=3,userdata=01)",
        ),
        (
            Flow::new(3, 12, Match::new().vlan_vid(OFPVID_PRESENT | 5), apply(vec![Action::PopVlan])),
            "table=3, priority=12,dl_vlan=5 actions=pop_vlan",
        ),
        (
            Flow::new(
                3,
                10,
                Match::new().ipv4(),
                apply(vec![
                    Action::controller_userdata(vec![1, 2], true),
                    Action::controller(65535),
                    Action::controller(128),
                    Action::output(OFPP_IN_PORT),
                    Action::output(OFPP_FLOOD),
                    Action::output(OFPP_ALL),
                    Action::output(OFPP_NORMAL),
                    Action::Group(5),
                    Action::PushVlan(0x8100),
                    Action::DecTtl,
                    Action::Note(vec![1, 2, 3, 4, 5, 6]),
                    Action::CtClear,
                ]),
            ),
            "table=3, priority=10,ip actions=controller(userdata=01.02,pause),CONTROLLER:65535,\
             CONTROLLER:128,IN_PORT,FLOOD,ALL,NORMAL,group:5,push_vlan:0x8100,dec_ttl,\
             note:01.02.03.04.05.06,ct_clear",
        ),
        (
            Flow::new(
                4,
                10,
                Match::new().ipv4(),
                apply(vec![ct(
                    true,
                    CtZone::FromField(FieldSlice::bits(reg(6), 0, 15)),
                    None,
                    vec![Action::Nat(Nat::src("10.0.0.1".parse().unwrap()))],
                )]),
            ),
            "table=4, priority=10,ip actions=ct(commit,zone=NXM_NX_REG6[0..15],nat(src=10.0.0.1))",
        ),
        (
            Flow::new(4, 11, Match::new().ipv4(), apply(vec![ct(false, CtZone::Immediate(5), Some(20), vec![])])),
            "table=4, priority=11,ip actions=ct(table=20,zone=5)",
        ),
        (
            Flow::new(
                4,
                12,
                Match::new().ipv4(),
                apply(vec![ct(
                    true,
                    CtZone::Immediate(0),
                    None,
                    vec![
                        Action::set_field(Field::CtMark, 1u32),
                        Action::load(FieldSlice::bits(Field::CtLabel, 0, 63), 2),
                    ],
                )]),
            ),
            "table=4, priority=12,ip actions=ct(commit,exec(set_field:0x1->ct_mark,load:0x2->NXM_NX_CT_LABEL[0..63]))",
        ),
        (
            Flow::new(
                4,
                13,
                Match::new().ipv4(),
                apply(vec![ct(false, CtZone::Immediate(0), None, vec![Action::Nat(Nat::default())])]),
            ),
            "table=4, priority=13,ip actions=ct(nat)",
        ),
        (
            Flow::new(
                4,
                14,
                Match::new().tcp(),
                apply(vec![ct(
                    true,
                    CtZone::Immediate(0),
                    None,
                    vec![Action::Nat(Nat {
                        kind: Some(NatKind::Dst),
                        ip_min: Some("10.0.0.1".parse().unwrap()),
                        ip_max: Some("10.0.0.5".parse().unwrap()),
                        port_min: Some(80),
                        port_max: Some(90),
                        random: true,
                        ..Nat::default()
                    })],
                )]),
            ),
            "table=4, priority=14,tcp actions=ct(commit,nat(dst=10.0.0.1-10.0.0.5:80-90,random))",
        ),
        (
            Flow::new(
                4,
                15,
                Match::new().tcp(),
                apply(vec![Action::Ct(Ct {
                    commit: true,
                    force: true,
                    alg: 21,
                    ..Ct::new(CtZone::Immediate(0))
                })]),
            ),
            "table=4, priority=15,tcp actions=ct(commit,force,alg=ftp)",
        ),
        (
            Flow::new(
                5,
                14,
                Match::new().vlan_vid_masked(OFPVID_PRESENT, OFPVID_PRESENT),
                apply(vec![
                    Action::Resubmit {
                        in_port: Some(3),
                        table: None,
                    },
                    Action::resubmit(7),
                    Action::Resubmit {
                        in_port: Some(3),
                        table: Some(7),
                    },
                    Action::resubmit(1),
                ]),
            ),
            "table=5, priority=14,vlan_tci=0x1000/0x1000 actions=resubmit:3,resubmit(,7),resubmit(3,7),resubmit(,1)",
        ),
        (
            Flow::new(5, 12, Match::new().vlan_vid(0), vec![]),
            "table=5, priority=12,vlan_tci=0x0000/0x1fff actions=drop",
        ),
        (
            Flow::new(5, 10, Match::new().vlan_vid(OFPVID_PRESENT | 5).vlan_pcp(3), vec![]),
            "table=5, priority=10,dl_vlan=5,dl_vlan_pcp=3 actions=drop",
        ),
        (
            Flow::new(0, 17, Match::new().ct_state_masked(0, 0xff), vec![]),
            "priority=17,ct_state=0 actions=drop",
        ),
        (
            Flow::new(0, 18, Match::new().ct_state_masked(0xff, 0xff), vec![]),
            "priority=18,ct_state=new|est|rel|rpl|inv|trk|snat|dnat actions=drop",
        ),
        (
            Flow::new(0, 9, Match::new().eth_type(0x88cc), vec![]),
            "priority=9,dl_type=0x88cc actions=drop",
        ),
        (
            Flow::new(0, 14, Match::new().ipv4().ip_proto(132).exact(Field::SctpSrc, 5u16), vec![]),
            "priority=14,sctp,tp_src=5 actions=drop",
        ),
        (
            Flow::new(0, 13, Match::new().tun_id_masked(5, 0xff).arp(), vec![]),
            "priority=13,arp,tun_id=0x5/0xff actions=drop",
        ),
        (
            Flow::new(0, 11, Match::new().ipv6().ip_proto(17), vec![]),
            "priority=11,udp6 actions=drop",
        ),
        (
            Flow::new(
                0,
                8,
                Match::new().ct_label_masked(1, (0xff << 120) | 1).ipv4().ip_dscp(10),
                vec![],
            ),
            "priority=8,ct_label=0x1/0xff000000000000000000000000000001,ip,nw_tos=40 actions=drop",
        ),
        (
            Flow::new(0, 7, Match::new().ct_state_flags(EST | RPL | TRK, REL | INV).udp6(), vec![]),
            "priority=7,ct_state=+est-rel+rpl-inv+trk,udp6 actions=drop",
        ),
        (
            Flow::new(
                0,
                5,
                Match::new()
                    .tun_ipv4_src(ip("172.31.0.1"))
                    .masked(Field::TunIpv4Dst, ip("172.31.0.0"), ip("255.255.0.0"))
                    .ct_zone(5)
                    .ct_mark_masked(1, 3)
                    .ct_label(1)
                    .conj_id(7)
                    .pkt_mark(3),
                vec![],
            ),
            "priority=5,pkt_mark=0x3,conj_id=7,ct_zone=5,ct_mark=0x1/0x3,ct_label=0x1,\
             tun_src=172.31.0.1,tun_dst=172.31.0.0/16 actions=drop",
        ),
        (
            Flow::new(
                0,
                3,
                Match::new()
                    .icmp()
                    .icmpv4_type(8)
                    .icmpv4_code(0)
                    .ip_dscp(4)
                    .ip_ecn(1)
                    .ip_ttl(5)
                    .ipv4_src_masked(ip("10.0.0.0"), ip("255.0.255.0")),
                vec![],
            ),
            "priority=3,icmp,nw_src=10.0.0.0/255.0.255.0,nw_tos=16,nw_ecn=1,nw_ttl=5,icmp_type=8,icmp_code=0 actions=drop",
        ),
        (
            Flow::new(
                0,
                2,
                Match::new()
                    .tcp6()
                    .ipv6_src_masked("fe80::".parse().unwrap(), "ffff:ffff:ffff:ffff::".parse().unwrap())
                    .ipv6_dst("2001:db8::1".parse().unwrap())
                    .masked(Field::TcpSrc, 0x100u16, 0xff00u16)
                    .tcp_dst(443)
                    .masked(Field::TcpFlags, 0x002u16, 0x012u16),
                vec![],
            ),
            "priority=2,tcp6,ipv6_src=fe80::/64,ipv6_dst=2001:db8::1,tp_src=0x100/0xff00,tp_dst=443,\
             tcp_flags=+syn-ack actions=drop",
        ),
        (
            Flow::new(
                0,
                1,
                Match::new()
                    .in_port(OFPP_LOCAL)
                    .eth_src([0, 0x11, 0x22, 0x33, 0x44, 0x55])
                    .eth_dst_masked([1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0])
                    .arp()
                    .arp_op(1)
                    .masked(Field::ArpSpa, ip("10.0.0.0"), ip("255.255.255.0"))
                    .arp_tpa(ip("10.0.0.1"))
                    .arp_sha([0, 0, 0, 0, 0, 1])
                    .masked(Field::ArpTha, [0, 0, 0, 0, 0, 2], [0xff, 0xff, 0xff, 0, 0, 0]),
                vec![],
            ),
            "priority=1,arp,in_port=LOCAL,dl_src=00:11:22:33:44:55,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,\
             arp_spa=10.0.0.0/24,arp_tpa=10.0.0.1,arp_op=1,arp_sha=00:00:00:00:00:01,\
             arp_tha=00:00:00:00:00:00/ff:ff:ff:00:00:00 actions=drop",
        ),
    ];
    for (flow, line) in cases {
        assert_eq!(flow.to_string(), line);
    }
}
