//! What the computed flows do, checked on their structure: flooding reaches exactly the chassis
//! hosting a network's ports, each port's location is one dispatch flow, and moving a port (by
//! binding change or live migration) rewrites exactly that flow on a bystander.

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use common::{hv2_vifs_with_a3, nb, vifs};
use tern_model::MigrationState;
use tern_openflow::{Action, Field, Flow, FlowModCommand, Instruction};
use tern_pipeline::tables::{DISPATCH, L2_LOOKUP, REG_DST_PORT};
use tern_pipeline::{compute, ChassisView, FlowSet, PortLocation};

fn actions(flow: &Flow) -> Vec<Action> {
    flow.instructions
        .iter()
        .flat_map(|i| match i {
            Instruction::ApplyActions(a) => a.clone(),
            _ => vec![],
        })
        .collect()
}

/// The tunnel destinations a flow sends copies to.
fn tunnel_targets(flow: &Flow) -> BTreeSet<Ipv4Addr> {
    actions(flow)
        .into_iter()
        .filter_map(|a| match a {
            Action::SetField { field: Field::TunIpv4Dst, value, .. } => Some(value.as_ipv4()),
            _ => None,
        })
        .collect()
}

fn ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(172, 31, 0, i)
}

fn flood_flow(flows: &FlowSet, network_key: u64) -> Flow {
    flows
        .iter()
        .find(|f| {
            f.table_id == L2_LOOKUP
                && f.priority == 1
                && f.match_.get(Field::Metadata).map(|m| m.value.as_u64()) == Some(network_key)
        })
        .cloned()
        .expect("flood flow")
}

fn dispatch_flows(flows: &FlowSet, port_key: u32) -> Vec<Flow> {
    flows
        .iter()
        .filter(|f| {
            f.table_id == DISPATCH
                && f.match_.get(Field::Reg(REG_DST_PORT)).map(|m| m.value.as_u32()) == Some(port_key)
        })
        .cloned()
        .collect()
}

#[test]
fn flood_reaches_exactly_the_chassis_hosting_the_network() {
    let nb = nb();
    for (chassis, net_a, net_b) in [
        ("hv1", vec![ip(2), ip(3)], Some(vec![ip(2)])),
        ("hv2", vec![ip(1), ip(3)], Some(vec![ip(1)])),
        ("hv3", vec![ip(1), ip(2)], None),
    ] {
        let flows = compute(&nb.view(chassis, vifs(chassis)));
        assert_eq!(tunnel_targets(&flood_flow(&flows, 1)), net_a.into_iter().collect(), "{chassis} net-a");
        match net_b {
            Some(t) => assert_eq!(tunnel_targets(&flood_flow(&flows, 2)), t.into_iter().collect()),
            // hv3 has no port of net-b: no flow of net-b at all.
            None => assert!(!flows.to_string().contains("metadata=0x2"), "{chassis} has net-b flows"),
        }
    }
}

#[test]
fn chassis_without_ports_of_a_network_gets_no_flood_copy() {
    // hv1 and hv2 host net-b; hv3 does not, so net-b's flood never targets hv3.
    let flows = compute(&nb().view("hv1", vifs("hv1")));
    assert!(!tunnel_targets(&flood_flow(&flows, 2)).contains(&ip(3)));
}

#[test]
fn every_port_has_exactly_one_dispatch_flow_naming_its_location() {
    let flows = compute(&nb().view("hv1", vifs("hv1")));
    for (key, targets) in [(12, vec![ip(2)]), (13, vec![ip(3)]), (14, vec![ip(3)]), (22, vec![ip(2)])] {
        let d = dispatch_flows(&flows, key);
        assert_eq!(d.len(), 1, "port key {key}");
        assert_eq!(tunnel_targets(&d[0]), targets.into_iter().collect());
    }
    // Local ports: delivered here, no tunnel.
    for key in [11, 21] {
        let d = dispatch_flows(&flows, key);
        assert_eq!(d.len(), 1);
        assert!(tunnel_targets(&d[0]).is_empty());
    }
    // The unbound port gets nothing anywhere.
    assert!(dispatch_flows(&flows, 19).is_empty());
    assert!(!flows.to_string().contains("fa:16:3e:00:00:19"));
}

/// The single change on bystander hv1 between two NB states must be one modify of a3's
/// dispatch flow, sending it to `targets`.
fn assert_one_dispatch_change(before: &ChassisView, after: &ChassisView, targets: &[Ipv4Addr]) {
    let mods = FlowSet::diff(&compute(before), &compute(after));
    assert_eq!(mods.len(), 1, "{mods:#?}");
    assert_eq!(mods[0].command, FlowModCommand::ModifyStrict);
    assert_eq!(mods[0].flow.table_id, DISPATCH);
    assert_eq!(mods[0].flow.match_.get(Field::Reg(REG_DST_PORT)).unwrap().value.as_u32(), 13);
    assert_eq!(tunnel_targets(&mods[0].flow), targets.iter().copied().collect());
}

#[test]
fn moving_a_port_changes_one_flow_on_a_bystander() {
    let before = nb();
    let mut moved = nb();
    moved.port_mut("a3").binding_host_id = "hv2".into();
    assert_one_dispatch_change(&before.view("hv1", vifs("hv1")), &moved.view("hv1", vifs("hv1")), &[ip(2)]);
}

#[test]
fn live_migration_changes_one_flow_per_phase_on_a_bystander() {
    let view = |nb: &common::Nb| nb.view("hv1", vifs("hv1"));
    let start = nb();
    let plugged = nb().migrating_a3(MigrationState::DestPlugged);
    let activated = nb().migrating_a3(MigrationState::Activated);
    assert_eq!(plugged.view("hv1", vifs("hv1")).ports["a3"].location, PortLocation::dual("hv2", "hv3"));
    assert_one_dispatch_change(&view(&start), &view(&plugged), &[ip(2), ip(3)]);
    assert_one_dispatch_change(&view(&plugged), &view(&activated), &[ip(2)]);

    // The API binding change alone (no migration record seen) ends in the same flows.
    let mut rebound = nb();
    rebound.port_mut("a3").binding_host_id = "hv2".into();
    assert_eq!(compute(&view(&activated)), compute(&view(&rebound)));
    let mut completed = nb().migrating_a3(MigrationState::Completed);
    completed.port_mut("a3").binding_host_id = "hv2".into();
    assert_eq!(compute(&view(&completed)), compute(&view(&rebound)));
}

#[test]
fn dual_delivery_on_the_migration_ends() {
    let dual = nb().migrating_a3(MigrationState::DestPlugged);
    // Destination: local delivery plus a copy to the source; source: the mirror image.
    for (chassis, vifs, remote) in [("hv2", hv2_vifs_with_a3(), ip(3)), ("hv3", vifs("hv3"), ip(2))] {
        let flows = compute(&dual.view(chassis, vifs));
        let d = dispatch_flows(&flows, 13);
        assert_eq!(d.len(), 1);
        assert!(matches!(actions(&d[0])[0], Action::Resubmit { table: Some(65), .. }), "{chassis}: {}", d[0]);
        assert_eq!(tunnel_targets(&d[0]), [remote].into_iter().collect());
    }
}

/// The classifier flows of in_port `ofport`.
fn classifier_flows(flows: &FlowSet, ofport: u32) -> Vec<Flow> {
    flows
        .iter()
        .filter(|f| {
            f.table_id == tern_pipeline::tables::CLASSIFY
                && f.match_.get(Field::InPort).map(|m| m.value.as_u32()) == Some(ofport)
        })
        .cloned()
        .collect()
}

fn copies_to_controller(flow: &Flow, key: u32) -> bool {
    actions(flow).iter().any(|a| {
        matches!(a, Action::Controller { userdata, .. }
            if tern_pipeline::apps::classifier::parse_activation_userdata(userdata) == Some(key))
    })
}

#[test]
fn the_destination_copies_the_vifs_packets_to_the_controller_until_activation() {
    // dest_plugged: the destination's classifier flow for a3's VIF (ofport 4) reports each packet
    // and still sends it on its normal path.
    let plugged = compute(&nb().migrating_a3(MigrationState::DestPlugged).view("hv2", hv2_vifs_with_a3()));
    let c = classifier_flows(&plugged, 4);
    assert_eq!(c.len(), 1);
    assert!(copies_to_controller(&c[0], 13), "{}", c[0]);
    assert!(actions(&c[0]).iter().any(|a| matches!(a, Action::Resubmit { .. })), "{}", c[0]);
    // Only a3's VIF, only on the destination.
    assert!(!plugged.iter().any(|f| copies_to_controller(f, 12)));
    let source = compute(&nb().migrating_a3(MigrationState::DestPlugged).view("hv3", vifs("hv3")));
    assert!(!source.iter().any(|f| actions(f).iter().any(|a| matches!(a, Action::Controller { .. }))));
    // Activated (or the local override of it): the copy stops, the normal path stays.
    let activated = compute(&nb().migrating_a3(MigrationState::Activated).view("hv2", hv2_vifs_with_a3()));
    let c = classifier_flows(&activated, 4);
    assert_eq!(c.len(), 1);
    assert!(!copies_to_controller(&c[0], 13), "{}", c[0]);
}

#[test]
fn without_dual_delivery_the_destination_vif_only_reports_to_the_controller() {
    // The pipeline does not see the dest_plugged record (see the controller's `for_pipeline`),
    // but the destination still watches for the VM's first packet.
    let mut view = nb().view("hv2", hv2_vifs_with_a3());
    view.awaiting_activation.insert("a3".into());
    let c = classifier_flows(&compute(&view), 4);
    assert_eq!(c.len(), 1);
    assert_eq!(actions(&c[0]).len(), 1);
    assert!(copies_to_controller(&c[0], 13), "{}", c[0]);
}

/// Where a flow sends a packet that came in by the tunnel port back out of it (output:IN_PORT).
fn back_out_of_the_tunnel(flow: &Flow) -> Option<Ipv4Addr> {
    let mut dst = None;
    for a in actions(flow) {
        if let Action::SetField { field: Field::TunIpv4Dst, value, .. } = &a {
            dst = Some(value.as_ipv4());
        }
        if a == Action::output(tern_openflow::port::OFPP_IN_PORT) {
            return dst;
        }
    }
    None
}

#[test]
fn tunnel_traffic_never_goes_back_into_a_tunnel_but_by_the_forwarding_pointer() {
    for (name, view) in common::fixture_views() {
        let flows = compute(&view);
        for f in flows.iter().filter(|f| f.table_id >= tern_pipeline::tables::INGRESS_LOOKUP) {
            if let Some(to) = back_out_of_the_tunnel(f) {
                // Only the source of an activated migration, only a3's MAC, only to hv2.
                assert!(name.ends_with("activated_hv3_source_forwards"), "{name}: {f}");
                assert_eq!(to, ip(2), "{f}");
                assert_eq!(
                    f.cookie,
                    tern_pipeline::App::IngressLookup.cookie(tern_pipeline::cookie::Object::Port(13))
                );
            } else {
                assert!(tunnel_targets(f).is_empty(), "{name}: {f}");
            }
            assert!(
                !actions(f)
                    .iter()
                    .any(|a| matches!(a, Action::Resubmit { table: Some(t), .. } if *t < f.table_id)),
                "{name}: {f} jumps backwards"
            );
        }
    }
}

#[test]
fn a_vif_of_a_port_located_elsewhere_gets_no_flows() {
    // a3's VIF plugged on hv2 before anyone wrote a migration: hv2 does not claim it.
    let flows = compute(&nb().view("hv2", hv2_vifs_with_a3()));
    assert_eq!(flows, compute(&nb().view("hv2", vifs("hv2"))));
}

#[test]
fn admin_down_port_is_treated_as_absent() {
    let mut down = nb();
    down.port_mut("a2").admin_state_up = false;
    let mut gone = nb();
    gone.ports.retain(|p| p.id != "a2");
    for chassis in ["hv1", "hv2"] {
        assert_eq!(compute(&down.view(chassis, vifs(chassis))), compute(&gone.view(chassis, vifs(chassis))));
    }
}

#[test]
fn no_tunnel_port_means_no_tunnel_flows() {
    let mut view = nb().view("hv1", vifs("hv1"));
    view.tunnel_ofport = None;
    let text = compute(&view).to_string();
    assert!(!text.contains("tun_"), "{text}");
    // Remote ports still get their (drop) dispatch flow: the location stays visible.
    assert!(text.contains("table=50, priority=100,reg7=0xc actions=drop"), "{text}");
}

#[test]
fn the_source_forwards_late_packets_only_while_the_port_is_gone_from_it() {
    let forwarded = |view: &tern_pipeline::ChassisView| {
        compute(view).iter().filter_map(back_out_of_the_tunnel).collect::<Vec<_>>()
    };
    let activated = nb().migrating_a3(MigrationState::Activated);
    assert_eq!(forwarded(&activated.view("hv3", vifs("hv3"))), [ip(2)]);
    // The source keeps accepting the network's tunnel traffic even with no port of it left.
    let mut alone = nb().migrating_a3(MigrationState::Activated);
    alone.ports.retain(|p| p.id != "a4");
    let mut only_a3 = vifs("hv3");
    only_a3.remove("a4");
    let view = alone.view("hv3", only_a3);
    assert_eq!(forwarded(&view), [ip(2)]);
    assert!(view.local_networks().next().is_none());
    assert_eq!(view.ingress_networks().len(), 1);
    // Nobody else forwards; nor does anyone before activation or once the binding moved.
    assert!(forwarded(&activated.view("hv2", hv2_vifs_with_a3())).is_empty());
    assert!(forwarded(&activated.view("hv1", vifs("hv1"))).is_empty());
    let dual = nb().migrating_a3(MigrationState::DestPlugged);
    assert!(forwarded(&dual.view("hv3", vifs("hv3"))).is_empty());
    let mut moved = nb().migrating_a3(MigrationState::Activated);
    moved.port_mut("a3").binding_host_id = "hv2".into();
    moved.migrations[0].source = "hv2".into();
    moved.migrations[0].destination = "hv3".into();
    assert!(forwarded(&moved.view("hv3", vifs("hv3"))).is_empty(), "the port is back here: no pointer");
}
