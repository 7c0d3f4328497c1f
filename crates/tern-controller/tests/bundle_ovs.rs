//! tern's OpenFlow connection against a real Open vSwitch (userspace datapath, its own run
//! directory and network namespace): atomic bundles install exactly what OVS then holds, a bundle
//! with one bad flow changes nothing and names that flow, and a connection comes up once the
//! bridge does.

mod common;

use common::flowset;
use std::time::Duration;
use tern_controller::ofconn::{OfConn, OfEvent, Switch, Target};
use tern_openflow::{Action, FlowMod, Instruction};
use tern_ovsdb::testing::OvsSandbox;

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.iter_mut().for_each(|l| *l = l.trim().to_owned());
    lines.retain(|l| !l.is_empty());
    lines.sort();
    lines
}

fn ovs_flows(sbx: &OvsSandbox, target: &str) -> Vec<String> {
    let text = sbx.ofctl(&["-O", "OpenFlow13", "dump-flows", target, "--no-stats"]).unwrap();
    sorted(text.lines().map(str::to_owned).collect())
}

async fn connect(target: &str) -> OfConn {
    let (events, _rx) = tokio::sync::mpsc::unbounded_channel();
    OfConn::connect(&target.parse().unwrap(), events).await.expect("connect to br-int")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_installs_exactly_the_flows_ovs_then_holds() {
    let sbx = OvsSandbox::start_isolated().unwrap();
    let target = sbx.add_flow_test_bridge().unwrap();
    let conn = connect(&target).await;
    let flows = flowset::flows(2_000);
    conn.install_bundle(flows.iter().cloned().map(FlowMod::add).collect()).await.expect("bundle");

    let expected = sorted(flows.iter().map(|f| f.to_string()).collect());
    assert_eq!(ovs_flows(&sbx, &target), expected, "OVS holds exactly the bundle's flows, in tern's text");
    // Reading them back over OpenFlow gives the same flows.
    let read_back = conn.dump_flows(None).await.unwrap();
    assert_eq!(sorted(read_back.iter().map(|s| s.flow.to_string()).collect()), expected);
    let table_50 = conn.dump_flows(Some(50)).await.unwrap();
    assert_eq!(table_50.len(), 400);
    assert!(table_50.iter().all(|s| s.flow.table_id == 50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_with_one_invalid_flow_changes_nothing_and_names_it() {
    let sbx = OvsSandbox::start_isolated().unwrap();
    let target = sbx.add_flow_test_bridge().unwrap();
    let conn = connect(&target).await;
    conn.install_bundle(flowset::flows(100).into_iter().map(FlowMod::add).collect()).await.unwrap();
    let before = ovs_flows(&sbx, &target);

    // 150 more flows and a delete, with one flow that outputs to a group that does not exist.
    let mut mods: Vec<FlowMod> = flowset::flows(250).into_iter().skip(100).map(FlowMod::add).collect();
    let mut bad = flowset::flows(251).pop().unwrap();
    bad.instructions = vec![Instruction::ApplyActions(vec![Action::Group(99)])];
    let bad_text = bad.to_string();
    mods.insert(42, FlowMod::add(bad));
    mods.push(FlowMod::delete(30, tern_openflow::Match::new()));
    let err = conn.install_bundle(mods).await.expect_err("the bundle must be refused");

    assert_eq!(err.refused.len(), 1, "{err}");
    let (index, text, _) = &err.refused[0];
    assert_eq!((*index, text.as_str()), (42, bad_text.as_str()));
    let message = err.to_string();
    assert!(message.contains("#42") && message.contains("group:99"), "{message}");
    assert_eq!(ovs_flows(&sbx, &target), before, "a refused bundle changes nothing");

    // The connection is still usable, and the next good bundle applies.
    conn.install_bundle(vec![FlowMod::delete(30, tern_openflow::Match::new())]).await.unwrap();
    assert!(ovs_flows(&sbx, &target).iter().all(|f| !f.contains("table=30,")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switch_connects_once_the_bridge_exists_and_reconnects() {
    let sbx = OvsSandbox::start_isolated().unwrap();
    let mgmt = format!("unix:{}", sbx.mgmt_sock("br-int").display());
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let switch = Switch::spawn(mgmt.parse::<Target>().unwrap(), events_tx);
    // No bridge yet: the switch keeps retrying. Create it; the connection must come up.
    sbx.add_flow_test_bridge().unwrap();
    let conn =
        tokio::time::timeout(Duration::from_secs(60), switch.connection()).await.expect("connected").unwrap();
    assert!(conn.version() >= tern_openflow::OFP13);
    conn.barrier().await.unwrap();
    // Deleting the bridge drops the connection; re-adding it brings a new one.
    sbx.vsctl(&["del-br", "br-int"]).unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(60), events.recv()).await.expect("event") {
            Some(OfEvent::Disconnected { .. }) => break,
            Some(_) => {}
            None => panic!("events ended"),
        }
    }
    sbx.add_flow_test_bridge().unwrap();
    let conn2 = tokio::time::timeout(Duration::from_secs(60), switch.connection())
        .await
        .expect("reconnected")
        .unwrap();
    conn2.barrier().await.unwrap();
    assert!(conn.is_closed());
}
