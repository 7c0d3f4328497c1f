//! OpenFlow against a real Open vSwitch (userspace datapath, its own run directory and network
//! namespace): `tern flows dump` reads exactly what `ovs-ofctl dump-flows` shows, and flows
//! installed by tern's atomic bundles are exactly what OVS then holds.

use std::process::Command;
use tern_ovsdb::testing::OvsSandbox;

/// A sandbox with br-int as tern's lab sets it up (see `add_flow_test_bridge`) and group 1 (the
/// corpus floods through it).
fn bridge() -> OvsSandbox {
    let sbx = OvsSandbox::start_isolated().expect("start OVS");
    let target = sbx.add_flow_test_bridge().unwrap();
    sbx.ofctl(&[
        "-O",
        "OpenFlow13",
        "add-group",
        &target,
        "group_id=1,type=all,bucket=output:1,bucket=output:2",
    ])
    .unwrap();
    sbx
}

fn mgmt(sbx: &OvsSandbox) -> String {
    format!("unix:{}", sbx.mgmt_sock("br-int").display())
}

/// `ovs-ofctl -O OpenFlow13 dump-flows --no-stats`, one flow per line, sorted.
fn ofctl_dump(sbx: &OvsSandbox, filter: Option<&str>) -> Vec<String> {
    let m = mgmt(sbx);
    let mut args = vec!["-O", "OpenFlow13", "dump-flows", m.as_str(), "--no-stats"];
    args.extend(filter);
    sorted_lines(&sbx.ofctl(&args).unwrap())
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> =
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| l.trim().to_owned()).collect();
    lines.sort();
    lines
}

fn tern_flows(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tern")).arg("flows").args(args).output().unwrap();
    assert!(out.status.success(), "tern flows {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/flows.txt");

#[test]
fn tern_flows_dump_equals_ovs_ofctl_dump_flows() {
    let sbx = bridge();
    sbx.ofctl(&["-O", "OpenFlow13", "--bundle", "add-flows", &mgmt(&sbx), CORPUS]).unwrap();
    let expected = ofctl_dump(&sbx, None);
    let corpus_len = std::fs::read_to_string(CORPUS).unwrap().lines().filter(|l| !l.is_empty()).count();
    assert_eq!(expected.len(), corpus_len, "OVS took every flow of the corpus");

    let ours = sorted_lines(&tern_flows(&["dump", "--of", &mgmt(&sbx)]));
    assert_eq!(ours, expected, "tern flows dump differs from ovs-ofctl dump-flows");

    // One table only.
    let ours = sorted_lines(&tern_flows(&["dump", "--of", &mgmt(&sbx), "--table", "11"]));
    assert_eq!(ours, ofctl_dump(&sbx, Some("table=11")));
    assert!(!ours.is_empty());

    // --names heads each pipeline table with its name; the flow lines stay the same.
    let named = tern_flows(&["dump", "--of", &mgmt(&sbx), "--names"]);
    assert!(named.contains("# table 30: l2_lookup"), "{named}");
    let flows_only: Vec<String> =
        sorted_lines(&named.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n"));
    assert_eq!(flows_only, expected);
}

#[test]
fn tern_flows_dump_reports_an_unreachable_bridge() {
    let out = Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["flows", "dump", "--of", "unix:/nonexistent/br-int.mgmt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/br-int.mgmt"));
    let out =
        Command::new(env!("CARGO_BIN_EXE_tern")).args(["flows", "dump", "--of", "br-int"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a malformed target is bad input");
}
