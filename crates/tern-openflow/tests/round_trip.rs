//! encode -> decode gives back the same message, for every Message variant and every
//! action and instruction kind, on OpenFlow 1.3, 1.4 and 1.5; and decode never panics,
//! neither on arbitrary bytes nor on mutated valid messages.

mod common;

use proptest::prelude::*;
use tern_openflow::bundle::*;
use tern_openflow::group::*;
use tern_openflow::message::*;
use tern_openflow::multipart::*;
use tern_openflow::*;

fn sample_flow() -> Flow {
    let mut f = Flow::new(
        3,
        100,
        Match::new().tcp().tcp_dst(22).reg(6, 5).in_port(1),
        vec![
            Instruction::ApplyActions(vec![Action::set_field(Field::Reg(0), 1u32), Action::resubmit(4)]),
            Instruction::GotoTable(9),
        ],
    );
    f.cookie = 0xabc;
    f.flags = 1;
    f
}

fn port() -> Port {
    Port {
        port_no: 7,
        hw_addr: [0xfa, 0x16, 0x3e, 1, 2, 3],
        name: "tap-1234".into(),
        config: 0,
        state: 4,
        curr: 0x802,
        advertised: 0,
        supported: 0,
        peer: 0,
        curr_speed: 10_000_000,
        max_speed: 0,
    }
}

/// One message of every kind (those whose layout does not depend on the version).
fn messages(version: u8) -> Vec<Message> {
    let pin2 = NxPacketIn2 {
        data: vec![0xff; 42],
        full_len: Some(100),
        buffer_id: 0xffff_ffff,
        table_id: 20,
        cookie: 0x1234,
        reason: 1,
        metadata: Match::new().in_port(3).reg(6, 9).metadata(1).tun_id(0x64),
        userdata: vec![1, 2],
        continuation: Some(vec![0x80, 0, 0, 8, 1, 2, 3, 4]),
    };
    let mut v = vec![
        Message::Hello { versions: vec![OFP13, OFP14, OFP15] },
        Message::Error(ErrorMsg { err_type: 2, code: 4, data: encode(version, 9, &Message::BarrierRequest) }),
        Message::Error(ErrorMsg::experimenter(ONF_EXPERIMENTER_ID, 2313, &[4, 14, 0, 8, 0, 0, 0, 1])),
        Message::EchoRequest(vec![1, 2, 3]),
        Message::EchoReply(vec![]),
        Message::FeaturesRequest,
        Message::FeaturesReply(SwitchFeatures {
            datapath_id: 0x0000_1234_5678_9abc,
            n_buffers: 0,
            n_tables: 254,
            auxiliary_id: 0,
            capabilities: 0x4f,
        }),
        Message::GetConfigRequest,
        Message::GetConfigReply(SwitchConfig { flags: 0, miss_send_len: 128 }),
        Message::SetConfig(SwitchConfig { flags: 1, miss_send_len: 0xffff }),
        Message::PacketIn(PacketIn {
            buffer_id: 0xffff_ffff,
            total_len: 60,
            reason: 1,
            table_id: 3,
            cookie: 7,
            match_: Match::new().in_port(2).reg(1, 1),
            data: vec![0xab; 60],
        }),
        Message::PortStatus(PortStatus { reason: 0, port: port() }),
        Message::PacketOut(PacketOut {
            buffer_id: 0xffff_ffff,
            in_port: 4,
            actions: vec![Action::output(1), Action::resubmit(0)],
            data: vec![1; 64],
        }),
        Message::FlowMod(FlowMod::add(sample_flow())),
        Message::FlowMod(FlowMod::delete_strict(3, 100, Match::new().reg(6, 5))),
        Message::FlowMod(FlowMod::delete_by_cookie(0x10, 0xff)),
        Message::FlowMod(FlowMod::modify_strict(sample_flow())),
        Message::BarrierRequest,
        Message::BarrierReply,
        Message::RoleRequest(Role { role: OFPCR_ROLE_MASTER, generation_id: 3 }),
        Message::RoleReply(Role { role: OFPCR_ROLE_SLAVE, generation_id: 4 }),
        Message::SetAsync(AsyncConfig {
            packet_in_mask: [3, 1],
            port_status_mask: [7, 7],
            flow_removed_mask: [0, 15],
        }),
        Message::MultipartRequest(MultipartRequest::flow(FlowStatsRequest::all())),
        Message::MultipartRequest(MultipartRequest::Flow(FlowStatsRequest {
            table_id: 4,
            out_port: 3,
            out_group: 9,
            cookie: 0x10,
            cookie_mask: 0xff,
            match_: Match::new().ipv4(),
        })),
        Message::MultipartRequest(MultipartRequest::port_desc()),
        Message::MultipartRequest(MultipartRequest::desc()),
        Message::MultipartRequest(MultipartRequest::Other { mp_type: 7, flags: 1, body: vec![] }),
        Message::MultipartReply(MultipartReply {
            flags: 0,
            body: MultipartReplyBody::PortDesc(vec![port(), Port { port_no: 0xffff_fffe, ..port() }]),
        }),
        Message::MultipartReply(MultipartReply {
            flags: 0,
            body: MultipartReplyBody::Desc(Desc {
                mfr_desc: "Nicira, Inc.".into(),
                hw_desc: "Open vSwitch".into(),
                sw_desc: "3.1.0".into(),
                serial_num: "None".into(),
                dp_desc: "br-int".into(),
            }),
        }),
        Message::MultipartReply(MultipartReply {
            flags: 1,
            body: MultipartReplyBody::Other { mp_type: 6, body: vec![0; 16] },
        }),
        Message::BundleControl(BundleControl::new(
            7,
            BundleCtrlType::OpenRequest,
            BundleFlags::ATOMIC_ORDERED,
        )),
        Message::BundleControl(BundleControl::new(7, BundleCtrlType::CommitReply, BundleFlags::default())),
        Message::BundleAdd(BundleAdd::new(
            7,
            BundleFlags::ATOMIC_ORDERED,
            Message::FlowMod(FlowMod::add(sample_flow())),
        )),
        Message::NxPacketIn2(pin2.clone()),
        Message::NxPacketIn2(NxPacketIn2 {
            full_len: None,
            cookie: u64::MAX,
            userdata: vec![],
            continuation: None,
            metadata: Match::new(),
            ..pin2.clone()
        }),
        Message::NxResume(NxPacketIn2 { userdata: vec![], ..pin2 }),
        Message::NxSetPacketInFormat(NXPIF_NXT_PACKET_IN2),
        Message::NxSetControllerId(3),
        Message::Unknown { msg_type: 29, body: vec![0, 0, 0, 1, 0, 0, 0, 2] },
        Message::Unknown { msg_type: 4, body: vec![0, 0, 0, 9, 0, 0, 0, 1] },
    ];
    for kind in BundleCtrlTypeAll::ALL {
        v.push(Message::BundleControl(BundleControl::new(
            1,
            kind,
            BundleFlags { atomic: true, ordered: false },
        )));
    }
    if version < OFP15 {
        v.push(Message::GroupMod(GroupMod {
            command: GroupModCommand::Add,
            group_type: GroupType::Select,
            group_id: 5,
            buckets: vec![
                Bucket { weight: 10, ..Bucket::new(vec![Action::output(1)]) },
                Bucket {
                    weight: 20,
                    watch_port: 2,
                    watch_group: 3,
                    actions: vec![Action::output(2), Action::DecTtl],
                },
            ],
        }));
        v.push(Message::MultipartReply(MultipartReply {
            flags: 1,
            body: MultipartReplyBody::Flow(vec![
                FlowStats {
                    flow: sample_flow(),
                    duration_sec: 5,
                    duration_nsec: 6,
                    packet_count: 7,
                    byte_count: 8,
                },
                FlowStats {
                    flow: Flow::new(0, 0, Match::new(), vec![]),
                    duration_sec: 0,
                    duration_nsec: 0,
                    packet_count: 0,
                    byte_count: 0,
                },
            ]),
        }));
    }
    v
}

struct BundleCtrlTypeAll;
impl BundleCtrlTypeAll {
    const ALL: [BundleCtrlType; 8] = [
        BundleCtrlType::OpenRequest,
        BundleCtrlType::OpenReply,
        BundleCtrlType::CloseRequest,
        BundleCtrlType::CloseReply,
        BundleCtrlType::CommitRequest,
        BundleCtrlType::CommitReply,
        BundleCtrlType::DiscardRequest,
        BundleCtrlType::DiscardReply,
    ];
}

#[test]
fn every_message_round_trips() {
    for version in [OFP13, OFP14, OFP15] {
        for (i, msg) in messages(version).into_iter().enumerate() {
            let xid = 0x100 + i as u32;
            let bytes = encode(version, xid, &msg);
            assert_eq!(message_len(&bytes), Ok(Some(bytes.len())));
            let (h, back) = decode(&bytes).unwrap_or_else(|e| panic!("v{version} {msg:?}: {e}"));
            assert_eq!(h.version, version);
            assert_eq!(h.xid, xid);
            assert_eq!(usize::from(h.length), bytes.len());
            assert_eq!(back, msg, "version {version}");
        }
    }
}

#[test]
fn bundles_use_onf_experimenter_on_13_and_native_on_14() {
    let ctl = Message::BundleControl(BundleControl::new(
        1,
        BundleCtrlType::OpenRequest,
        BundleFlags::ATOMIC_ORDERED,
    ));
    let b13 = encode(OFP13, 1, &ctl);
    assert_eq!(b13[1], 4, "OFPT_EXPERIMENTER");
    assert_eq!(&b13[8..16], &[0x4f, 0x4e, 0x46, 0, 0, 0, 0x08, 0xfc]);
    let b14 = encode(OFP14, 1, &ctl);
    assert_eq!(b14[1], 33, "OFPT_BUNDLE_CONTROL");
    let add = Message::BundleAdd(BundleAdd::new(1, BundleFlags::ATOMIC_ORDERED, Message::BarrierRequest));
    let a14 = encode(OFP14, 0x77, &add);
    assert_eq!(a14[1], 34);
    // The inner message carries the outer version and xid.
    assert_eq!(&a14[16..24], &[5, 20, 0, 8, 0, 0, 0, 0x77]);
}

#[test]
fn every_corpus_flow_round_trips_as_flow_mod_and_flow_stats() {
    for flow in common::all_flows() {
        for version in [OFP13, OFP14, OFP15] {
            let fm = Message::FlowMod(FlowMod::add(flow.clone()));
            let (_, back) = decode(&encode(version, 1, &fm)).unwrap();
            let Message::FlowMod(back) = back else { panic!() };
            assert_eq!(back.flow, flow.normalized_wire(), "{flow}");
        }
        let reply = Message::MultipartReply(MultipartReply {
            flags: 0,
            body: MultipartReplyBody::Flow(vec![FlowStats {
                flow: flow.clone(),
                duration_sec: 1,
                duration_nsec: 2,
                packet_count: 3,
                byte_count: 4,
            }]),
        });
        let (_, back) = decode(&encode(OFP13, 1, &reply)).unwrap();
        let Message::MultipartReply(MultipartReply { body: MultipartReplyBody::Flow(stats), .. }) = back
        else {
            panic!()
        };
        assert_eq!(stats[0].flow, flow.normalized_wire());
    }
}

/// What a flow looks like after encode/decode (not the switch's normalization):
/// only output-to-controller and note padding change.
trait WireNormal {
    fn normalized_wire(&self) -> Flow;
}

impl WireNormal for Flow {
    fn normalized_wire(&self) -> Flow {
        let instructions = self
            .instructions
            .iter()
            .map(|i| match i {
                Instruction::ApplyActions(a) => {
                    Instruction::ApplyActions(a.iter().map(Action::normalized).collect())
                }
                Instruction::WriteActions(a) => {
                    Instruction::WriteActions(a.iter().map(Action::normalized).collect())
                }
                other => other.clone(),
            })
            .collect();
        Flow { instructions, ..self.clone() }
    }
}

fn all_encodings() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for version in [OFP13, OFP14, OFP15] {
        for m in messages(version) {
            out.push(encode(version, 1, &m));
        }
    }
    for f in common::all_flows().into_iter().step_by(7) {
        out.push(encode(OFP13, 2, &Message::FlowMod(FlowMod::add(f))));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = message_len(&bytes);
        let _ = decode(&bytes);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bodies(
        version in 1u8..8,
        msg_type in 0u8..40,
        exp in prop_oneof![Just(0x2320u32), Just(0x4f4e4600u32), any::<u32>()],
        sub in prop_oneof![Just(16u32), Just(20), Just(28), Just(30), Just(2300), Just(2301), any::<u32>()],
        body in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut bytes = vec![version, msg_type, 0, 0, 0, 0, 0, 1];
        if msg_type == 4 {
            bytes.extend_from_slice(&exp.to_be_bytes());
            bytes.extend_from_slice(&sub.to_be_bytes());
        }
        bytes.extend_from_slice(&body);
        let len = bytes.len() as u16;
        bytes[2..4].copy_from_slice(&len.to_be_bytes());
        let _ = decode(&bytes);
    }

    #[test]
    fn decode_never_panics_on_mutated_messages(
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
        fix_len in any::<bool>(),
    ) {
        let all = all_encodings();
        let mut bytes = pick.get(&all).clone();
        for (at, v) in &edits {
            let i = at.index(bytes.len());
            bytes[i] = *v;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        if fix_len && bytes.len() >= 4 {
            let len = bytes.len() as u16;
            bytes[2..4].copy_from_slice(&len.to_be_bytes());
        }
        if let Ok((_, msg)) = decode(&bytes) {
            // Whatever decodes must encode again without trouble.
            let _ = encode(OFP13, 1, &msg);
            let _ = format!("{msg:?}");
            if let Message::FlowMod(fm) = &msg {
                let _ = fm.flow.to_string();
            }
            if let Message::Error(e) = &msg {
                let _ = e.to_string();
            }
        }
    }
}
