//! Against real daemons: each test runs its own ovsdb-server + ovs-vswitchd (OvsSandbox, in a
//! private network namespace so parallel tests do not clash on tap device names). These tests
//! fail, never skip, when Open vSwitch is missing.

use std::time::Duration;

use serde_json::json;
use tern_ovsdb::datum::{self, named_uuid, read_str_map, row};
use tern_ovsdb::testing::OvsSandbox;
use tern_ovsdb::{
    ensure_bridge, ensure_tunnel_port, vif_events, wait_for_ofport, BridgeConfig, Client, Condition,
    MonitorTable, Mutation, Op, OvsdbError, OvsdbWatcher, Replica, RowChange, TunnelConfig, VifEvent,
    WaitUntil, WatchEvent, WatcherConfig,
};
use tokio::sync::mpsc::UnboundedReceiver;

const WAIT: Duration = Duration::from_secs(60);

fn sandbox() -> OvsSandbox {
    OvsSandbox::start_isolated().unwrap_or_else(|e| panic!("cannot start the OVS sandbox: {e}"))
}

async fn connect(sb: &OvsSandbox) -> Client {
    Client::connect(&sb.db_sock()).await.unwrap_or_else(|e| panic!("connect: {e}"))
}

/// The next item matching `pred`, failing the test after `WAIT`.
async fn next_matching<T: std::fmt::Debug>(
    rx: &mut UnboundedReceiver<T>,
    what: &str,
    mut pred: impl FnMut(&T) -> bool,
) -> T {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(WAIT, async {
        while let Some(item) = rx.recv().await {
            if pred(&item) {
                return Some(item);
            }
            seen.push(format!("{item:?}"));
        }
        None
    })
    .await;
    match found {
        Ok(Some(item)) => item,
        Ok(None) => panic!("stream ended waiting for {what}; saw {seen:#?}"),
        Err(_) => panic!("timed out waiting for {what}; saw {seen:#?}"),
    }
}

/// Runs a blocking sandbox command off the async runtime.
async fn vsctl(sb: &OvsSandbox, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    tokio::task::block_in_place(|| sb.vsctl(&refs)).unwrap_or_else(|e| panic!("ovs-vsctl {args:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_basics_and_transactions() {
    let sb = sandbox();
    let c = connect(&sb).await;
    c.echo().await.unwrap();
    assert!(c.list_dbs().await.unwrap().contains(&"Open_vSwitch".to_string()));
    let schema = c.get_schema("Open_vSwitch").await.unwrap();
    assert!(schema["tables"]["Interface"]["columns"]["ofport"].is_object());
    let err = c.get_schema("NoSuchDb").await.unwrap_err();
    assert!(matches!(err, OvsdbError::Rpc { ref method, .. } if method == "get_schema"), "{err}");

    // insert with named uuids, referencing each other, rooted by a mutate.
    let ops = vec![
        Op::insert("Interface", row([("name", json!("tA")), ("type", json!("internal"))]))
            .with_uuid_name("i"),
        Op::insert("Port", row([("name", json!("tA")), ("interfaces", named_uuid("i"))])).with_uuid_name("p"),
        Op::insert(
            "Bridge",
            row([
                ("name", json!("brA")),
                ("ports", datum::set([named_uuid("p")])),
                ("datapath_type", json!("netdev")),
            ]),
        )
        .with_uuid_name("b"),
        Op::mutate("Open_vSwitch", vec![], vec![Mutation::insert("bridges", datum::set([named_uuid("b")]))]),
    ];
    let res = c.transact("Open_vSwitch", ops).await.unwrap();
    let bridge_uuid = res[2].uuid.expect("insert returns a uuid");
    assert!(res[0].uuid.is_some() && res[1].uuid.is_some());
    assert_eq!(res[3].count, Some(1));
    assert_eq!(vsctl(&sb, &["get", "bridge", "brA", "_uuid"]).await.trim(), bridge_uuid.to_string());

    // wait (satisfied), update, mutate, select.
    let res = c
        .transact(
            "Open_vSwitch",
            vec![
                Op::wait(
                    "Bridge",
                    vec![Condition::name("brA")],
                    &["name"],
                    WaitUntil::Equal,
                    vec![row([("name", json!("brA"))])],
                    Some(0),
                ),
                Op::update(
                    "Bridge",
                    vec![Condition::name("brA")],
                    row([("external_ids", datum::str_map([("k", "v")]))]),
                ),
                Op::mutate(
                    "Bridge",
                    vec![Condition::uuid(&bridge_uuid)],
                    vec![Mutation::insert("external_ids", datum::str_map([("k2", "v2")]))],
                ),
                Op::select("Bridge", vec![Condition::name("brA")], Some(&["external_ids"])),
                Op::comment("tern-ovsdb test"),
            ],
        )
        .await
        .unwrap();
    assert_eq!((res[1].count, res[2].count), (Some(1), Some(1)));
    let rows = res[3].rows.as_ref().unwrap();
    let ext = read_str_map(&rows[0]["external_ids"]);
    assert_eq!((ext["k"].as_str(), ext["k2"].as_str()), ("v", "v2"));
    assert_eq!(vsctl(&sb, &["get", "bridge", "brA", "external_ids:k2"]).await.trim(), "v2");

    // A wait that does not hold fails, naming its index.
    let err = c
        .transact(
            "Open_vSwitch",
            vec![
                Op::comment("x"),
                Op::wait(
                    "Bridge",
                    vec![Condition::name("brA")],
                    &["name"],
                    WaitUntil::Equal,
                    vec![],
                    Some(0),
                ),
            ],
        )
        .await
        .unwrap_err();
    match &err {
        OvsdbError::OpFailed { index, op, error, .. } => {
            assert_eq!((*index, op.as_str(), error.as_str()), (1, "wait", "timed out"), "{err}")
        }
        other => panic!("expected OpFailed, got {other}"),
    }

    // A duplicate name fails at commit (index past the last op), with details.
    let err = c
        .transact(
            "Open_vSwitch",
            vec![
                Op::insert("Bridge", row([("name", json!("brA"))])).with_uuid_name("dup"),
                Op::mutate(
                    "Open_vSwitch",
                    vec![],
                    vec![Mutation::insert("bridges", datum::set([named_uuid("dup")]))],
                ),
            ],
        )
        .await
        .unwrap_err();
    match &err {
        OvsdbError::OpFailed { index, op, error, details, .. } => {
            assert_eq!((*index, op.as_str(), error.as_str()), (2, "commit", "constraint violation"), "{err}");
            assert!(details.contains("brA"), "{details}");
        }
        other => panic!("expected OpFailed, got {other}"),
    }

    // delete: unroot and delete in one transaction.
    let res = c
        .transact(
            "Open_vSwitch",
            vec![
                Op::mutate(
                    "Open_vSwitch",
                    vec![],
                    vec![Mutation::delete("bridges", datum::uuid(&bridge_uuid))],
                ),
                Op::delete("Bridge", vec![Condition::uuid(&bridge_uuid)]),
                Op::select("Bridge", vec![], Some(&["name"])),
            ],
        )
        .await
        .unwrap();
    assert_eq!(res[1].count, Some(1));
    assert!(res[2].rows.as_ref().unwrap().is_empty());
    assert_eq!(vsctl(&sb, &["list-br"]).await.trim(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_sees_initial_rows_then_changes() {
    let sb = sandbox();
    vsctl(&sb, &["add-br", "brM", "--", "set", "bridge", "brM", "datapath_type=netdev"]).await;
    let c = connect(&sb).await;
    let tables = [MonitorTable::columns("Bridge", &["name", "external_ids"]), MonitorTable::all("Interface")];
    let (initial, mut updates) = c.monitor("Open_vSwitch", &tables).await.unwrap();
    let mut replica = Replica::from_initial(&initial);
    assert!(replica.by_name("Bridge", "brM").is_some());
    assert!(replica.by_name("Interface", "brM").is_some());
    let (bridge_uuid, _) = replica.by_name("Bridge", "brM").unwrap();

    vsctl(&sb, &["br-set-external-id", "brM", "color", "blue"]).await;
    let changes = loop {
        let upd = tokio::time::timeout(WAIT, updates.recv()).await.expect("an update").expect("monitor open");
        let changes = replica.apply(&upd);
        if changes.iter().any(|ch| ch.table() == "Bridge") {
            break changes;
        }
    };
    match changes.iter().find(|ch| ch.table() == "Bridge").unwrap() {
        RowChange::Modified { uuid, new, .. } => {
            assert_eq!(*uuid, bridge_uuid);
            assert_eq!(read_str_map(&new["external_ids"]).get("color").map(String::as_str), Some("blue"));
        }
        other => panic!("expected a modify, got {other:?}"),
    }

    vsctl(&sb, &["del-br", "brM"]).await;
    loop {
        let upd = tokio::time::timeout(WAIT, updates.recv()).await.expect("an update").expect("monitor open");
        let changes = replica.apply(&upd);
        if changes.iter().any(|ch| matches!(ch, RowChange::Deleted { table, .. } if table == "Bridge")) {
            break;
        }
    }
    assert!(replica.by_name("Bridge", "brM").is_none());
    assert!(replica.by_name("Interface", "brM").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_br_int_is_idempotent() {
    let sb = sandbox();
    let c = connect(&sb).await;
    let ctl = format!("punix:{}", sb.dir().join("tern.ctl").display());
    let cfg = BridgeConfig::br_int("netdev", Some(&ctl));
    let first = ensure_bridge(&c, &cfg).await.unwrap();
    assert!(first.changed);
    let dump = |sb: &OvsSandbox| {
        tokio::task::block_in_place(|| {
            sb.vsctl(&[
                "--columns=_uuid,name,ports,fail_mode,datapath_type,protocols,other_config,controller",
                "list",
                "bridge",
            ])
        })
        .unwrap()
    };
    let before = dump(&sb);
    let second = ensure_bridge(&c, &cfg).await.unwrap();
    assert_eq!(second, tern_ovsdb::Ensured { uuid: first.uuid, changed: false });
    assert_eq!(dump(&sb), before);

    let got = vsctl(&sb, &["get", "bridge", "br-int", "fail_mode", "datapath_type", "protocols"]).await;
    assert_eq!(got.lines().collect::<Vec<_>>(), ["secure", "netdev", "[OpenFlow13, OpenFlow14, OpenFlow15]"]);
    assert_eq!(
        vsctl(&sb, &["get", "bridge", "br-int", "other_config:disable-in-band"]).await.trim(),
        "\"true\""
    );
    assert_eq!(vsctl(&sb, &["get-controller", "br-int"]).await.trim(), ctl);
    assert_eq!(vsctl(&sb, &["list-ports", "br-int"]).await.trim(), "");
    assert_eq!(vsctl(&sb, &["get", "interface", "br-int", "type"]).await.trim(), "internal");
    assert!(vsctl(&sb, &["get", "open_vswitch", ".", "bridges"]).await.contains(&first.uuid.to_string()));

    // ovs-vswitchd creates the bridge: LOCAL port 65534, then the management socket.
    assert_eq!(wait_for_ofport(&c, "br-int", WAIT).await.unwrap(), 65534);
    let mgmt = sb.mgmt_sock("br-int");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !mgmt.exists() {
        assert!(tokio::time::Instant::now() < deadline, "{} never appeared", mgmt.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mgmt_arg = format!("unix:{}", mgmt.display());
    let show = tokio::task::block_in_place(|| sb.ofctl(&["-O", "OpenFlow13", "show", &mgmt_arg])).unwrap();
    assert!(show.contains("LOCAL(br-int)"), "{show}");

    // Drift is repaired in one transaction, other keys left alone.
    vsctl(
        &sb,
        &[
            "set",
            "bridge",
            "br-int",
            "fail_mode=standalone",
            "other_config:disable-in-band=false",
            "other_config:x=y",
        ],
    )
    .await;
    let third = ensure_bridge(&c, &cfg).await.unwrap();
    assert!(third.changed);
    assert_eq!(vsctl(&sb, &["get", "bridge", "br-int", "fail_mode"]).await.trim(), "secure");
    let oc = vsctl(&sb, &["get", "bridge", "br-int", "other_config"]).await;
    assert!(oc.contains("disable-in-band=\"true\"") && oc.contains("x=y"), "{oc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geneve_port_gets_an_ofport() {
    let sb = sandbox();
    let c = connect(&sb).await;
    ensure_bridge(&c, &BridgeConfig::br_int("netdev", None)).await.unwrap();
    let cfg = TunnelConfig::geneve("br-int", "tern-geneve").with_local_ip("172.31.0.1");
    let port = ensure_tunnel_port(&c, &cfg, WAIT).await.unwrap();
    assert!(port.changed);
    assert!(port.ofport > 0 && port.ofport < 65280, "{port:?}");
    let again = ensure_tunnel_port(&c, &cfg, WAIT).await.unwrap();
    assert_eq!((again.ofport, again.uuid, again.changed), (port.ofport, port.uuid, false));

    assert_eq!(vsctl(&sb, &["get", "interface", "tern-geneve", "type"]).await.trim(), "geneve");
    assert_eq!(
        vsctl(&sb, &["get", "interface", "tern-geneve", "options"]).await.trim(),
        "{key=flow, local_ip=\"172.31.0.1\", remote_ip=flow}"
    );
    assert_eq!(
        vsctl(&sb, &["get", "interface", "tern-geneve", "ofport"]).await.trim(),
        port.ofport.to_string()
    );
    assert_eq!(vsctl(&sb, &["list-ports", "br-int"]).await.trim(), "tern-geneve");

    // A tunnel on a bridge that does not exist is a clear error.
    let err = ensure_tunnel_port(&c, &TunnelConfig::geneve("br-none", "g2"), WAIT).await.unwrap_err();
    assert!(matches!(err, OvsdbError::NotFound { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_ports_join_two_bridges() {
    let sb = sandbox();
    let c = connect(&sb).await;
    ensure_bridge(&c, &BridgeConfig::br_int("netdev", None)).await.unwrap();
    let mut br_ex = BridgeConfig::br_int("netdev", None);
    br_ex.name = "br-ex".into();
    ensure_bridge(&c, &br_ex).await.unwrap();
    let int_end = TunnelConfig::patch("br-int", "tern-int-physnet1", "tern-ext-physnet1");
    let ext_end = TunnelConfig::patch("br-ex", "tern-ext-physnet1", "tern-int-physnet1");
    let a = ensure_tunnel_port(&c, &int_end, WAIT).await.unwrap();
    let b = ensure_tunnel_port(&c, &ext_end, WAIT).await.unwrap();
    assert!(a.ofport > 0 && b.ofport > 0, "{a:?} {b:?}");
    assert!(!ensure_tunnel_port(&c, &int_end, WAIT).await.unwrap().changed);
    assert_eq!(vsctl(&sb, &["get", "interface", "tern-int-physnet1", "type"]).await.trim(), "patch");
    assert_eq!(
        vsctl(&sb, &["get", "interface", "tern-int-physnet1", "options"]).await.trim(),
        "{peer=tern-ext-physnet1}"
    );
    assert_eq!(vsctl(&sb, &["list-ports", "br-ex"]).await.trim(), "tern-ext-physnet1");
}

fn is_vif(ev: &VifEvent, name: &str, with_ofport: bool) -> bool {
    matches!(ev, VifEvent::Added(v) | VifEvent::Changed { new: v, .. }
        if v.name == name && (!with_ofport || v.ofport.is_some()))
}

async fn add_vif(sb: &OvsSandbox, name: &str, iface_id: &str, mac: &str) {
    let id = format!("external_ids:iface-id={iface_id}");
    let mac = format!("external_ids:attached-mac={mac}");
    vsctl(sb, &["add-port", "br-int", name, "--", "set", "interface", name, "type=internal", &id, &mac])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vifs_are_reported_as_they_come_and_go() {
    let sb = sandbox();
    let (watcher, _events) = OvsdbWatcher::spawn(WatcherConfig::new(&sb.db_sock()));
    let c = watcher.connected(WAIT).await.unwrap();
    ensure_bridge(&c, &BridgeConfig::br_int("netdev", None)).await.unwrap();
    let mut vifs = vif_events(watcher.snapshots(), Some("br-int"));

    add_vif(&sb, "vif1", "P1", "fa:16:3e:00:00:01").await;
    let ev = next_matching(&mut vifs, "vif1 with an ofport", |e| is_vif(e, "vif1", true)).await;
    let vif = ev.vif().clone();
    assert_eq!(vif.iface_id, "P1");
    assert_eq!(vif.attached_mac.as_deref(), Some("fa:16:3e:00:00:01"));
    let ofport = vsctl(&sb, &["get", "interface", "vif1", "ofport"]).await;
    assert_eq!(vif.ofport.unwrap().to_string(), ofport.trim());
    // The pure function agrees with the stream.
    assert_eq!(tern_ovsdb::vifs(&watcher.replica())["vif1"].iface_id, "P1");
    // The bridge's own port is not a VIF.
    assert!(!tern_ovsdb::vifs(&watcher.replica()).contains_key("br-int"));

    vsctl(&sb, &["del-port", "br-int", "vif1"]).await;
    let ev =
        next_matching(&mut vifs, "vif1 removed", |e| matches!(e, VifEvent::Removed(v) if v.name == "vif1"))
            .await;
    assert_eq!(ev.vif().iface_id, "P1");
    assert!(tern_ovsdb::vifs(&watcher.replica()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_resyncs_after_ovsdb_server_restart() {
    let sb = sandbox();
    let mut config = WatcherConfig::new(&sb.db_sock());
    config.backoff_min = Duration::from_millis(50);
    config.backoff_max = Duration::from_millis(500);
    let (watcher, mut events) = OvsdbWatcher::spawn(config);
    next_matching(&mut events, "first sync", |e| matches!(e, WatchEvent::Synced { resync: false, .. })).await;
    let c = watcher.client().expect("connected after sync");
    ensure_bridge(&c, &BridgeConfig::br_int("netdev", None)).await.unwrap();
    let mut vifs = vif_events(watcher.snapshots(), Some("br-int"));
    add_vif(&sb, "vif1", "P1", "fa:16:3e:00:00:01").await;
    next_matching(&mut vifs, "vif1 with an ofport", |e| is_vif(e, "vif1", true)).await;

    let old_pid = tokio::task::block_in_place(|| sb.kill_ovsdb_server()).unwrap();
    next_matching(&mut events, "disconnect", |e| matches!(e, WatchEvent::Disconnected { .. })).await;
    assert!(!watcher.snapshot().connected);
    // The replica survives the outage: vif1 is still known.
    assert!(tern_ovsdb::vifs(&watcher.replica()).contains_key("vif1"));

    tokio::task::block_in_place(|| sb.start_ovsdb_server()).unwrap();
    assert_ne!(sb.pids().ovsdb_server, Some(old_pid));
    let ev =
        next_matching(&mut events, "resync", |e| matches!(e, WatchEvent::Synced { resync: true, .. })).await;
    // Same database file: no row vanished across the restart.
    assert!(
        matches!(&ev, WatchEvent::Synced { changes, .. } if !changes.iter().any(|c| matches!(c, RowChange::Deleted { .. }))),
        "{ev:?}"
    );

    add_vif(&sb, "vif2", "P2", "fa:16:3e:00:00:02").await;
    let ev = next_matching(&mut vifs, "vif2 with an ofport", |e| is_vif(e, "vif2", true)).await;
    assert_eq!(ev.vif().iface_id, "P2");
    next_matching(&mut events, "vif2 in the watcher's events", |e| {
        matches!(e, WatchEvent::Changed { changes } if changes.iter().any(|c|
            c.table() == "Interface" && c.new_row().is_some_and(|r| r["name"] == "vif2")))
    })
    .await;
    let now = tern_ovsdb::vifs(&watcher.replica());
    assert!(now.contains_key("vif1") && now.contains_key("vif2"), "{now:?}");
}

#[test]
fn sandbox_start_failure_names_the_command() {
    let err = OvsSandbox::start_in_netns("tern-ovsdb-no-such-netns").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("ovsdb-server") && msg.contains("no-such-netns"), "{msg}");
}
