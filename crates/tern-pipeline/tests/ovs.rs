//! OVS accepts every fixture flow table unchanged: each is installed in one bundle into a
//! throwaway Open vSwitch (`tern_ovsdb::testing::OvsSandbox`), and `dump-flows` must print exactly
//! the `FlowSet`'s lines. Catches flows OVS refuses or rewrites. Needs Open vSwitch and root (a
//! private network namespace); fails, not skips, without them.

mod common;

use tern_model::MigrationState;
use tern_openflow::{FlowMod, FlowModCommand};
use tern_ovsdb::testing::OvsSandbox;
use tern_pipeline::FlowSet;

fn sorted_lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
    v.sort();
    v
}

#[test]
fn ovs_installs_every_fixture_table_unchanged() {
    let sbx = OvsSandbox::start_isolated().expect("starting Open vSwitch");
    let target = sbx.add_flow_test_bridge().expect("test bridge");
    let file = sbx.dir().join("flows.txt");
    let file = file.to_str().expect("utf-8 path");
    for (name, view) in common::fixture_views() {
        let flows = tern_pipeline::compute(&view);
        std::fs::write(file, flows.to_string()).expect("writing flows");
        sbx.ofctl(&["-O", "OpenFlow13", "del-flows", &target]).expect("del-flows");
        sbx.ofctl(&["-O", "OpenFlow13", "--bundle", "add-flows", &target, file])
            .unwrap_or_else(|e| panic!("{name}: OVS refused the flows: {e}"));
        let dumped =
            sbx.ofctl(&["-O", "OpenFlow13", "dump-flows", "--no-stats", &target]).expect("dump-flows");
        assert_eq!(sorted_lines(&dumped), sorted_lines(&flows.to_string()), "{name}");
        if name == "hv1" {
            check_hv1_traces(&sbx);
        }
        if name == "routed_hv3_one_network" {
            check_routed_traces(&sbx);
        }
        if name == "floating_ip_hv3" {
            check_floating_ip_traces(&sbx);
        }
        if name == "stateless_group_hv1" {
            check_stateless_traces(&sbx);
        }
    }
}

/// Packets traced through hv1's tables take the paths the apps mean (tunnel routing itself fails
/// in the sandbox, which has no underlay; the trace still shows each tunnel output's `tun_dst`).
fn check_hv1_traces(sbx: &OvsSandbox) {
    let trace = |flow: &str| sbx.appctl_vswitchd(&["ofproto/trace", "br-int", flow]).expect("ofproto/trace");
    // a1's ARP broadcast (ofport 1): back to a1 is skipped by OVS; one copy to hv2 and one to hv3.
    let arp = "in_port=1,arp,dl_src=fa:16:3e:00:00:11,dl_dst=ff:ff:ff:ff:ff:ff,arp_sha=fa:16:3e:00:00:11";
    let t = trace(&format!("{arp},arp_op=1,arp_spa=10.0.1.11,arp_tpa=10.0.1.50"));
    assert!(t.contains("skipping output to input port"), "{t}");
    for hop in ["set_field:0x64->tun_id", "set_field:172.31.0.2->tun_dst", "set_field:172.31.0.3->tun_dst"] {
        assert!(t.contains(hop), "missing {hop}:\n{t}");
    }
    // a1 asks for a2's address: hv1 answers it itself, back out of a1's port, and nothing goes
    // into a tunnel.
    let t = trace(&format!("{arp},arp_op=1,arp_spa=10.0.1.11,arp_tpa=10.0.1.12"));
    assert!(t.contains("IN_PORT") && t.contains("set_field:2->arp_op") && !t.contains("tun_dst"), "{t}");
    // Port security: the same ARP claiming another address, or from another MAC, goes nowhere.
    let t = trace(&format!("{arp},arp_spa=10.0.1.12,arp_tpa=10.0.1.13"));
    assert!(t.contains("Datapath actions: drop"), "spoofed ARP passed:\n{t}");
    let t = trace("in_port=1,ip,dl_src=fa:16:3e:00:00:99,dl_dst=fa:16:3e:00:00:13,nw_src=10.0.1.11");
    assert!(t.contains("Datapath actions: drop"), "spoofed MAC passed:\n{t}");
    // IP unicast from a1 to a3 (on hv3): straight to hv3's tunnel endpoint only.
    let t = trace(
        "in_port=1,ip,dl_src=fa:16:3e:00:00:11,dl_dst=fa:16:3e:00:00:13,nw_src=10.0.1.11,nw_dst=10.0.1.13",
    );
    assert!(t.contains("set_field:172.31.0.3->tun_dst") && !t.contains("172.31.0.2->tun_dst"), "{t}");
    let t = trace(
        "in_port=1,ip,dl_src=fa:16:3e:00:00:11,dl_dst=fa:16:3e:00:00:13,nw_src=10.0.1.99,nw_dst=10.0.1.13",
    );
    assert!(t.contains("Datapath actions: drop"), "spoofed IP passed:\n{t}");
    // Broadcast of net-a arriving from hv2: delivered to a1 only, never back into the tunnel.
    let t = trace("in_port=3,tun_id=0x64,tun_src=172.31.0.2,tun_dst=172.31.0.1,dl_src=fa:16:3e:00:00:12,dl_dst=ff:ff:ff:ff:ff:ff");
    assert!(t.contains("output:1") && !t.contains("output:3") && !t.contains("output:2"), "{t}");
    // Security groups, ingress to a1 (groups default and web) from outside the default group:
    // a new connection to TCP 80 passes (web), to TCP 22 does not, and a reply to something a1
    // started (established) does.
    let from_outside = |dport: u16| {
        format!("in_port=3,tun_id=0x64,tun_src=172.31.0.2,tun_dst=172.31.0.1,tcp,dl_src=fa:16:3e:00:00:12,dl_dst=fa:16:3e:00:00:11,nw_src=192.0.2.1,nw_dst=10.0.1.11,tp_src=40000,tp_dst={dport}")
    };
    // Delivered to a1 (OpenFlow port 1) after conntrack: in the trace of the recirculation.
    let to_a1 =
        |t: &str| t.rsplit("Resuming from table").next().is_some_and(|after| after.contains("output:1"));
    let t = trace(&from_outside(80));
    assert!(t.contains("ct(commit") && to_a1(&t), "web refused:\n{t}");
    let t = trace(&from_outside(22));
    assert!(t.contains("Resuming from table 66") && !to_a1(&t), "ssh from outside passed:\n{t}");
    let t = sbx
        .appctl_vswitchd(&["ofproto/trace", "br-int", &from_outside(22), "--ct-next", "trk,est"])
        .expect("ofproto/trace");
    assert!(to_a1(&t), "established reply refused:\n{t}");
    // Unknown VNI: dropped by the classifier's default.
    let t = trace("in_port=3,tun_id=0x99,tun_src=172.31.0.2,tun_dst=172.31.0.1,dl_dst=ff:ff:ff:ff:ff:ff");
    assert!(t.contains("Datapath actions: drop") && !t.contains("resubmit"), "{t}");
}

/// Routed packets traced through hv3's tables (router r1 joins net-a and net-b; hv3 has only
/// net-a ports): a3 reaches b2 (net-b, on hv2) in one hop over net-b's VNI, with the TTL
/// decremented and the MACs rewritten; the gateway's ARP is answered locally.
fn check_routed_traces(sbx: &OvsSandbox) {
    let trace = |flow: &str| sbx.appctl_vswitchd(&["ofproto/trace", "br-int", flow]).expect("ofproto/trace");
    let t = trace(
        "in_port=1,ip,dl_src=fa:16:3e:00:00:13,dl_dst=fa:16:3e:00:01:01,nw_src=10.0.1.13,nw_dst=10.0.2.22,nw_ttl=64",
    );
    for hop in [
        "dec_ttl",
        "set_field:fa:16:3e:00:02:01->eth_src",
        "set_field:fa:16:3e:00:00:22->eth_dst",
        "set_field:0xc8->tun_id",
        "set_field:172.31.0.2->tun_dst",
    ] {
        assert!(t.contains(hop), "missing {hop}:\n{t}");
    }
    // An address no port has: past the security groups (a new connection, committed), dropped
    // by the router's table default.
    let t = trace(
        "in_port=1,ip,dl_src=fa:16:3e:00:00:13,dl_dst=fa:16:3e:00:01:01,nw_src=10.0.1.13,nw_dst=10.0.2.99,nw_ttl=64",
    );
    let last = t.lines().rev().find(|l| l.starts_with("Datapath actions:")).unwrap_or_default();
    assert!(t.contains("40. priority 0") && last == "Datapath actions: ct(commit,zone=13)", "{t}");
    // The gateway's ARP.
    let t = trace("in_port=1,arp,dl_src=fa:16:3e:00:00:13,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_sha=fa:16:3e:00:00:13,arp_spa=10.0.1.13,arp_tpa=10.0.1.1");
    assert!(t.contains("IN_PORT") && t.contains("set_field:fa:16:3e:00:01:01->arp_sha"), "{t}");
}

/// Floating IP 172.24.4.13 of a3, traced through hv3's tables (the external network arrives on
/// patch port 5): an ARP request for it is answered with its MAC; a packet to it is translated to
/// a3's address and, once past a3's security groups (an established reply here), delivered to
/// a3; a3's packet to an outside address leaves by the patch with the floating IP as source,
/// toward the resolved gateway's MAC.
fn check_floating_ip_traces(sbx: &OvsSandbox) {
    let trace = |flow: &str| sbx.appctl_vswitchd(&["ofproto/trace", "br-int", flow]).expect("ofproto/trace");
    let t = trace("in_port=5,arp,dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_sha=02:00:00:00:00:01,arp_spa=172.24.4.1,arp_tpa=172.24.4.13");
    assert!(t.contains("IN_PORT") && t.contains("set_field:fa:16:3e:00:09:13->arp_sha"), "{t}");
    let t = trace("in_port=5,arp,dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=172.24.4.1,arp_tpa=172.24.4.77");
    assert!(t.contains("Datapath actions: drop"), "an unknown address answered:\n{t}");
    let inbound = "in_port=5,icmp,dl_src=02:00:00:00:00:01,dl_dst=fa:16:3e:00:09:13,nw_src=172.24.4.1,nw_dst=172.24.4.13,nw_ttl=64,icmp_type=0";
    let t = sbx
        .appctl_vswitchd(&["ofproto/trace", "br-int", inbound, "--ct-next", "trk,est"])
        .expect("ofproto/trace");
    for hop in [
        "set_field:10.0.1.13->ip_dst",
        "set_field:fa:16:3e:00:01:01->eth_src",
        "set_field:fa:16:3e:00:00:13->eth_dst",
    ] {
        assert!(t.contains(hop), "missing {hop}:\n{t}");
    }
    let delivered = t.rsplit("Resuming from table").next().is_some_and(|after| after.contains("output:1"));
    assert!(delivered, "not delivered to a3:\n{t}");
    let t = trace(
        "in_port=1,icmp,dl_src=fa:16:3e:00:00:13,dl_dst=fa:16:3e:00:01:01,nw_src=10.0.1.13,nw_dst=198.51.100.7,nw_ttl=64,icmp_type=8",
    );
    let after = t.rsplit("Resuming from table").next().unwrap_or_default();
    for hop in ["set_field:172.24.4.13->ip_src", "set_field:02:00:00:00:00:01->eth_dst", "output:5"] {
        assert!(after.contains(hop), "missing {hop}:\n{t}");
    }
}

/// b1 (hv1, ofport 2) in the stateless group "plain": ICMP from anywhere reaches it and its own
/// traffic leaves, neither through conntrack; TCP to it is dropped, even as a "reply" (nothing
/// tracks connections for it).
fn check_stateless_traces(sbx: &OvsSandbox) {
    let trace = |flow: &str| sbx.appctl_vswitchd(&["ofproto/trace", "br-int", flow]).expect("ofproto/trace");
    let to_b1 = |l4: &str| {
        let (proto, rest) = l4.split_once(',').unwrap_or((l4, ""));
        format!("in_port=3,tun_id=0xc8,tun_src=172.31.0.2,tun_dst=172.31.0.1,{proto},dl_src=fa:16:3e:00:00:22,dl_dst=fa:16:3e:00:00:21,nw_src=192.0.2.1,nw_dst=10.0.2.21,{rest}")
    };
    let t = trace(&to_b1("icmp,icmp_type=8"));
    assert!(t.contains("output:2") && !t.contains("drop"), "ICMP refused:\n{t}");
    assert!(!t.contains("ct("), "stateless traffic went through conntrack:\n{t}");
    let t = trace(&to_b1("tcp,tp_src=22,tp_dst=40000"));
    assert!(t.contains("Datapath actions: drop") && !t.contains("ct("), "{t}");
    let t = trace("in_port=2,tcp,dl_src=fa:16:3e:00:00:21,dl_dst=fa:16:3e:00:00:22,nw_src=10.0.2.21,nw_dst=10.0.2.22,tp_src=40000,tp_dst=22");
    assert!(t.contains("set_field:172.31.0.2->tun_dst") && !t.contains("ct("), "{t}");
}

/// A flow mod as an `ovs-ofctl add-flows` line.
fn ofctl_line(m: &FlowMod) -> String {
    let f = &m.flow;
    match m.command {
        FlowModCommand::Add => format!("add {f}"),
        FlowModCommand::ModifyStrict => format!("modify_strict {f}"),
        FlowModCommand::DeleteStrict => format!("delete_strict table={}, {}", f.table_id, f.match_string()),
        c => panic!("diff produced {c:?}"),
    }
}

/// The diff, sent as one bundle to a switch holding the old flows, leaves exactly the new ones
/// (cookies included), through every phase of a3's migration on each chassis.
#[test]
fn ovs_applies_diffs_exactly() {
    let sbx = OvsSandbox::start_isolated().expect("starting Open vSwitch");
    let target = sbx.add_flow_test_bridge().expect("test bridge");
    let file = sbx.dir().join("mods.txt");
    let file = file.to_str().expect("utf-8 path");
    for (chassis, dest_vifs) in
        [("hv1", common::vifs("hv1")), ("hv2", common::hv2_vifs_with_a3()), ("hv3", common::vifs("hv3"))]
    {
        let mut rebound = common::nb();
        rebound.port_mut("a3").binding_host_id = "hv2".into();
        let mut hv3_vifs = common::vifs("hv3");
        if chassis == "hv3" {
            hv3_vifs.remove("a3"); // unplugged on the source at the end
        }
        let phases = [
            common::nb().view(chassis, common::vifs(chassis)),
            common::nb().migrating_a3(MigrationState::DestPlugged).view(chassis, dest_vifs.clone()),
            common::nb().migrating_a3(MigrationState::Activated).view(chassis, dest_vifs.clone()),
            rebound.view(chassis, if chassis == "hv3" { hv3_vifs } else { dest_vifs.clone() }),
        ];
        sbx.ofctl(&["-O", "OpenFlow13", "del-flows", &target]).expect("del-flows");
        let mut installed = FlowSet::new();
        for (i, view) in phases.iter().enumerate() {
            let desired = tern_pipeline::compute(view);
            let mods = FlowSet::diff(&installed, &desired);
            let text: String = mods.iter().map(|m| ofctl_line(m) + "\n").collect();
            std::fs::write(file, &text).expect("writing mods");
            sbx.ofctl(&["-O", "OpenFlow13", "--bundle", "add-flows", &target, file])
                .unwrap_or_else(|e| panic!("{chassis} phase {i}: OVS refused\n{text}: {e}"));
            let dumped =
                sbx.ofctl(&["-O", "OpenFlow13", "dump-flows", "--no-stats", &target]).expect("dump-flows");
            assert_eq!(sorted_lines(&dumped), sorted_lines(&desired.to_string()), "{chassis} phase {i}");
            installed = desired;
        }
    }
}
