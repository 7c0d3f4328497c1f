//! The flow tables computed for the fixture of `common`, from each chassis and during a live
//! migration's dual delivery, in `ovs-ofctl dump-flows` text (tests/snapshots/*.txt).

mod common;

#[test]
fn flow_tables() {
    for (name, view) in common::fixture_views() {
        let flows = tern_pipeline::compute(&view);
        assert!(flows.conflicts().is_empty(), "{name}: {:?}", flows.conflicts());
        common::assert_snapshot(name, &flows.to_string());
    }
}
