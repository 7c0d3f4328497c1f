//! Oracle: the real `ovs-ofctl` decodes the bytes this codec writes. Every flow of a
//! large corpus is encoded as an OpenFlow 1.3 flow_mod and fed to `ovs-ofctl ofp-parse`;
//! the line OVS prints must be exactly what `Flow`'s text predicts. Also checks that
//! OVS decodes every message kind this crate can encode, without errors.
//!
//! Fails (does not skip) when `ovs-ofctl` is not installed.

mod common;

use std::process::Command;

use tern_openflow::*;

/// Runs `ovs-ofctl ofp-parse` over the concatenated messages; one chunk of output
/// text per message, in order.
fn ofp_parse(messages: &[Vec<u8>]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("msgs.bin");
    std::fs::write(&path, messages.concat()).expect("write messages");
    let out = Command::new("ovs-ofctl")
        .arg("ofp-parse")
        .arg(&path)
        .output()
        .expect("ovs-ofctl must be installed (Open vSwitch 3.1) for this oracle test");
    assert!(out.status.success(), "ovs-ofctl ofp-parse failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf8");
    // A message starts at a "NAME (OF1.x) (xid=0x..):" line with a new xid (a
    // bundled message repeats its bundle's xid) or at a decode error.
    let mut chunks: Vec<String> = Vec::new();
    let mut last_xid = String::new();
    for line in text.lines() {
        let xid = line
            .split_once(" (xid=")
            .filter(|(name, _)| !name.starts_with(' ') && name.contains(" (OF1."))
            .and_then(|(_, rest)| rest.split_once("):"))
            .map(|(x, _)| x.to_string());
        let starts = match &xid {
            Some(x) => *x != last_xid,
            None => line.starts_with("***"),
        };
        if let Some(x) = xid {
            last_xid = x;
        }
        if starts || chunks.is_empty() {
            chunks.push(line.to_string());
        } else if let Some(last) = chunks.last_mut() {
            last.push('\n');
            last.push_str(line);
        }
    }
    assert_eq!(
        chunks.len(),
        messages.len(),
        "ofp-parse printed {} messages for {} sent:\n{text}",
        chunks.len(),
        messages.len()
    );
    chunks
}

/// What `ovs-ofctl` prints for an OpenFlow 1.3 ADD flow_mod of `flow`
/// (`ofputil_flow_mod_format`): the same match and actions text as dump-flows, with
/// the header fields in flow_mod style.
fn expected_flow_mod(xid: u32, flow: &Flow) -> String {
    let mut s = format!("OFPT_FLOW_MOD (OF1.3) (xid={xid:#x}): ADD");
    if flow.table_id != 0 {
        s.push_str(&format!(" table:{}", flow.table_id));
    }
    s.push(' ');
    s.push_str(&flow.match_string());
    if !s.ends_with(' ') {
        s.push(' ');
    }
    if flow.cookie != 0 && flow.cookie != u64::MAX {
        s.push_str(&format!("cookie:{:#x} ", flow.cookie));
    }
    if flow.idle_timeout != 0 {
        s.push_str(&format!("idle:{} ", flow.idle_timeout));
    }
    if flow.hard_timeout != 0 {
        s.push_str(&format!("hard:{} ", flow.hard_timeout));
    }
    for (bit, name) in [
        (1u16, "send_flow_rem "),
        (2, "check_overlap "),
        (4, "reset_counts "),
        (8, "no_packet_counts "),
        (16, "no_byte_counts "),
    ] {
        if flow.flags & bit != 0 {
            s.push_str(name);
        }
    }
    s.push_str("actions=");
    s.push_str(&flow.actions_string());
    s
}

#[test]
fn every_flow_mod_prints_exactly_as_display_predicts() {
    // An empty write_actions is printed by ofp-print but not kept by the switch,
    // and Display follows the switch; those flows are covered by ovs_dump_flows.rs.
    let flows: Vec<Flow> = common::all_flows()
        .into_iter()
        .filter(|f| !f.instructions.contains(&Instruction::WriteActions(vec![])))
        .collect();
    assert!(flows.len() > 250, "corpus too small: {}", flows.len());
    let messages: Vec<Vec<u8>> = flows
        .iter()
        .enumerate()
        .map(|(i, f)| encode(OFP13, i as u32 + 1, &Message::FlowMod(FlowMod::add(f.clone()))))
        .collect();
    let printed = ofp_parse(&messages);
    let mut failures = Vec::new();
    for (i, (flow, got)) in flows.iter().zip(&printed).enumerate() {
        let want = expected_flow_mod(i as u32 + 1, flow);
        if got != &want {
            failures.push(format!("flow #{i} {flow:?}\n  ovs:  {got}\n  ours: {want}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} flows differ:\n{}",
        failures.len(),
        flows.len(),
        failures.join("\n")
    );
}

#[test]
fn ovs_decodes_every_message_kind() {
    use tern_openflow::bundle::*;
    use tern_openflow::group::*;
    use tern_openflow::message::*;
    use tern_openflow::multipart::*;

    let flow = Flow::new(
        3,
        10,
        Match::new().ipv4().reg(6, 5),
        vec![Instruction::ApplyActions(vec![Action::output(2)])],
    );
    let msgs: Vec<(Message, &str)> = vec![
        (Message::Hello { versions: vec![OFP13, OFP14] }, "OFPT_HELLO"),
        (Message::EchoRequest(vec![1, 2, 3]), "OFPT_ECHO_REQUEST"),
        (Message::EchoReply(vec![]), "OFPT_ECHO_REPLY"),
        (Message::FeaturesRequest, "OFPT_FEATURES_REQUEST"),
        (Message::GetConfigRequest, "OFPT_GET_CONFIG_REQUEST"),
        (Message::SetConfig(SwitchConfig { flags: 0, miss_send_len: 0xffff }), "OFPT_SET_CONFIG"),
        (Message::BarrierRequest, "OFPT_BARRIER_REQUEST"),
        (Message::BarrierReply, "OFPT_BARRIER_REPLY"),
        (Message::RoleRequest(Role { role: OFPCR_ROLE_MASTER, generation_id: 7 }), "OFPT_ROLE_REQUEST"),
        (
            Message::SetAsync(AsyncConfig {
                packet_in_mask: [0x3, 0],
                port_status_mask: [0x7, 0x7],
                flow_removed_mask: [0, 0],
            }),
            "OFPT_SET_ASYNC",
        ),
        (Message::FlowMod(FlowMod::add(flow.clone())), "OFPT_FLOW_MOD"),
        (Message::FlowMod(FlowMod::delete_strict(3, 10, Match::new().ipv4().reg(6, 5))), "OFPT_FLOW_MOD"),
        (Message::FlowMod(FlowMod::delete_by_cookie(0x10, 0xff)), "OFPT_FLOW_MOD"),
        (
            Message::GroupMod(GroupMod {
                command: GroupModCommand::Add,
                group_type: GroupType::Select,
                group_id: 5,
                buckets: vec![
                    Bucket { weight: 10, ..Bucket::new(vec![Action::output(1)]) },
                    Bucket { weight: 20, watch_port: 2, ..Bucket::new(vec![Action::output(2)]) },
                ],
            }),
            "OFPT_GROUP_MOD",
        ),
        (
            Message::PacketOut(PacketOut::new(vec![0xff; 60], vec![Action::output(1), Action::resubmit(0)])),
            "OFPT_PACKET_OUT",
        ),
        (Message::MultipartRequest(MultipartRequest::flow(FlowStatsRequest::all())), "OFPST_FLOW request"),
        (Message::MultipartRequest(MultipartRequest::port_desc()), "OFPST_PORT_DESC request"),
        (Message::MultipartRequest(MultipartRequest::desc()), "OFPST_DESC request"),
        (
            Message::BundleControl(BundleControl::new(
                1,
                BundleCtrlType::OpenRequest,
                BundleFlags::ATOMIC_ORDERED,
            )),
            "BUNDLE_CONTROL",
        ),
        (
            Message::BundleAdd(BundleAdd::new(
                1,
                BundleFlags::ATOMIC_ORDERED,
                Message::FlowMod(FlowMod::add(flow.clone())),
            )),
            "BUNDLE_ADD_MESSAGE",
        ),
        (
            Message::BundleControl(BundleControl::new(
                1,
                BundleCtrlType::CommitRequest,
                BundleFlags::ATOMIC_ORDERED,
            )),
            "BUNDLE_CONTROL",
        ),
        (Message::NxSetPacketInFormat(NXPIF_NXT_PACKET_IN2), "NXT_SET_PACKET_IN_FORMAT"),
        (Message::NxSetControllerId(7), "NXT_SET_CONTROLLER_ID"),
    ];
    for version in [OFP13, OFP14] {
        let encoded: Vec<Vec<u8>> = msgs
            .iter()
            .enumerate()
            .filter(|(_, (m, _))| version == OFP13 || !matches!(m, Message::SetAsync(_)))
            .map(|(i, (m, _))| encode(version, i as u32 + 1, m))
            .collect();
        let expected: Vec<&str> = msgs
            .iter()
            .filter(|(m, _)| version == OFP13 || !matches!(m, Message::SetAsync(_)))
            .map(|(_, name)| *name)
            .collect();
        let printed = ofp_parse(&encoded);
        for (got, want) in printed.iter().zip(expected) {
            assert!(
                got.contains(want) && !got.contains("decode error") && !got.contains("***"),
                "version {version}: expected {want}, ovs printed:\n{got}"
            );
        }
    }
}
