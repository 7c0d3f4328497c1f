//! From an NB write to the flows in OVS, in a big cloud: the synthetic cloud
//! (`tern_controller::synthetic`; 1,000 and 10,000 ports by default) loaded into a real NB store
//! (etcd by default, or the embedded redb), and one real `tern controller` agent for its chassis
//! hv-0000 on a real OVS (a sandbox, userspace datapath) with that chassis' VMs plugged. Then,
//! `--repeat N` times each (default 10), the time from the write to the controller's report that
//! its flows for that revision are in the switch (bundle acknowledged):
//! * `remote move, local net`: a port of a network with a VM here moves between two other chassis
//!   (the flows change: flooding and DISPATCH);
//! * `remote move, other net`: the same on a network with no VM here (nothing changes here: the
//!   time is what the controller spends noticing that).
//!
//! `cargo bench -p tern-controller --bench cloud_move [-- --ports 1000,10000 --nb etcd|redb
//! --repeat 10 --json]` (as root: it starts OVS and etcd).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tern_controller::agent::{self, ControllerConfig, Reconciled};
use tern_controller::synthetic::{chassis_name, Cloud, Sizes};
use tern_model::{Kind, Object};
use tern_ovsdb::testing::OvsSandbox;
use tern_store::nb::Nb;
use tern_store::Store;
use tokio::sync::mpsc;

struct Args {
    ports: Vec<usize>,
    nb: String,
    repeat: usize,
    json: bool,
}

fn args() -> Result<Args, String> {
    let mut a = Args { ports: vec![1_000, 10_000], nb: "etcd".into(), repeat: 10, json: false };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bench" => {}
            "--json" => a.json = true,
            "--nb" => {
                a.nb = it.next().ok_or("--nb needs etcd or redb")?;
                if a.nb != "etcd" && a.nb != "redb" {
                    return Err(format!("--nb {:?}: expected etcd or redb", a.nb));
                }
            }
            "--ports" => {
                let v = it.next().ok_or("--ports needs a list, e.g. 1000,10000")?;
                a.ports = v
                    .split(',')
                    .map(|s| s.trim().parse::<usize>().map_err(|e| format!("--ports {v:?}: {e}")))
                    .collect::<Result<_, _>>()?;
                if a.ports.iter().any(|p| *p < 100) {
                    return Err("--ports: sizes must be at least 100".into());
                }
            }
            "--repeat" => {
                let v = it.next().ok_or("--repeat needs a number")?;
                a.repeat = v.parse().map_err(|e| format!("--repeat {v:?}: {e}"))?;
                if a.repeat == 0 {
                    return Err("--repeat must be at least 1".into());
                }
            }
            other if !other.starts_with('-') && "cloud_move".contains(other) => {}
            other if !other.starts_with('-') => std::process::exit(0),
            other => {
                return Err(format!("unknown argument {other:?} (expected --ports, --nb, --repeat, --json)"))
            }
        }
    }
    Ok(a)
}

/// Waits for the controller's report of a reconciliation at or past `revision`; returns when it
/// came and how many flow changes it sent.
async fn settled(reports: &mut mpsc::UnboundedReceiver<Reconciled>, revision: u64) -> (Instant, usize) {
    let deadline = Duration::from_secs(600);
    loop {
        match tokio::time::timeout(deadline, reports.recv()).await {
            Ok(Some(r)) if r.nb_revision >= revision => return (Instant::now(), r.changes),
            Ok(Some(_)) => {}
            Ok(None) => panic!("the controller stopped"),
            Err(_) => panic!("no reconciliation at revision {revision} within {deadline:?}"),
        }
    }
}

/// Writes the cloud: kind by kind (references first), 64 writes in flight.
async fn load(nb: &Nb, cloud: &Cloud) {
    let order = [
        Kind::Chassis,
        Kind::SecurityGroup,
        Kind::Network,
        Kind::Subnet,
        Kind::Port,
        Kind::Router,
        Kind::FloatingIp,
    ];
    let t = Instant::now();
    for kind in order {
        let objects: Vec<Object> = cloud.objects.iter().filter(|o| o.kind() == kind).cloned().collect();
        let n = objects.len();
        futures::stream::iter(objects)
            .map(|o| {
                let nb = nb.clone();
                async move {
                    let id = o.id().to_owned();
                    nb.put(o).await.unwrap_or_else(|e| panic!("loading {} {id}: {e}", kind.name()));
                }
            })
            .buffer_unordered(64)
            .collect::<Vec<()>>()
            .await;
        eprintln!("cloud_move: loaded {n} {} ({:.1} s so far)", kind.name(), t.elapsed().as_secs_f64());
    }
}

struct Row {
    sizes: Sizes,
    flows: usize,
    start_s: f64,
    events: Vec<(&'static str, f64, f64, usize)>,
}

async fn measure(ports: usize, backend: &str, repeat: usize) -> Row {
    let sizes = Sizes::for_ports(ports);
    let cloud = Cloud::new(sizes, 0x7e57);
    let dir = tempfile::tempdir().unwrap();
    let _etcd;
    let store: Arc<dyn Store> = if backend == "etcd" {
        let server = tern_store::testing::EtcdServer::start().expect("start etcd");
        let s = tern_store::etcd::EtcdStore::connect(&[server.endpoint()]).await.unwrap();
        _etcd = Some(server);
        Arc::new(s)
    } else {
        _etcd = None;
        Arc::new(tern_store::LocalStore::open_redb(dir.path().join("nb.redb")).unwrap())
    };
    let nb = Nb::new(store);
    eprintln!(
        "cloud_move: {} chassis, {} networks, {ports} ports on {backend}",
        sizes.chassis, sizes.networks
    );
    load(&nb, &cloud).await;

    let sbx = OvsSandbox::start_isolated().expect("start OVS (as root)");
    let ovsdb = sbx.db_sock();
    let local = cloud.local(0);
    let config = ControllerConfig {
        chassis: local.chassis.clone(),
        tunnel_ip: "172.16.0.1".parse().unwrap(),
        openflow: ControllerConfig::default_openflow(&ovsdb, "br-int").unwrap(),
        ovsdb,
        bridge: "br-int".into(),
        datapath_type: "netdev".into(),
        report_interval: tern_store::liveness::DEFAULT_REPORT_INTERVAL,
        down_time: tern_store::liveness::DEFAULT_DOWN_TIME,
        dual_delivery: true,
        blind_to_migrations: false,
        bridge_mappings: Default::default(),
    };
    let t_start = Instant::now();
    let (tx, mut reports) = mpsc::unbounded_channel::<Reconciled>();
    let agent = tokio::spawn(agent::run(config, nb.clone(), Some(tx), std::future::pending()));
    let deadline = Instant::now() + Duration::from_secs(120);
    while sbx.vsctl(&["br-exists", "br-int"]).is_err() {
        assert!(Instant::now() < deadline, "no br-int");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (i, port) in local.vifs.keys().enumerate() {
        let iface = format!("vm{i}");
        sbx.vsctl(&[
            "add-port",
            "br-int",
            &iface,
            "--",
            "set",
            "interface",
            &iface,
            "type=internal",
            &format!("external_ids:iface-id={port}"),
        ])
        .unwrap();
    }
    let revision = nb.store().revision().await.unwrap();
    // Settled: reports at the current revision, and no flow change for 2 s. The start-up time is
    // until the last change.
    let (mut flows, mut last_change, mut quiet_since) = (0, t_start, Instant::now());
    while quiet_since.elapsed() < Duration::from_secs(2) || flows == 0 {
        match tokio::time::timeout(Duration::from_secs(2), reports.recv()).await {
            Ok(Some(r)) if r.nb_revision >= revision => {
                flows = r.flows;
                if r.changes > 0 {
                    last_change = Instant::now();
                    quiet_since = last_change;
                }
            }
            Ok(Some(_)) => quiet_since = Instant::now(),
            Ok(None) => panic!("the controller stopped"),
            Err(_) => {}
        }
    }
    let start_s = (last_change - t_start).as_secs_f64();
    eprintln!("cloud_move: {ports} ports: hv-0000 holds {flows} flows ({:.1} s to start)", start_s);

    let local_nets: std::collections::BTreeSet<usize> =
        cloud.placement.values().filter(|(_, c)| *c == 0).map(|(n, _)| *n).collect();
    let mut events = Vec::new();
    for (name, on_local) in [("remote move, local net", true), ("remote move, other net", false)] {
        let Some((id, _)) =
            cloud.placement.iter().find(|(_, (n, c))| *c != 0 && local_nets.contains(n) == on_local)
        else {
            continue;
        };
        let homes = [cloud.port(id).unwrap().binding_host_id.clone(), chassis_name(sizes.chassis - 1)];
        let (mut times, mut changes) = (Vec::new(), Vec::new());
        for i in 0..repeat {
            let Some(Object::Port(mut port)) = nb.get(Kind::Port, id).await.unwrap().map(|s| s.object) else {
                panic!("port {id} is gone")
            };
            port.binding_host_id = homes[(i + 1) % 2].clone();
            let t = Instant::now();
            let stored = nb.put(Object::Port(port)).await.unwrap();
            let (at, n) = settled(&mut reports, stored.mod_revision).await;
            times.push((at - t).as_secs_f64() * 1e3);
            changes.push(n);
        }
        times.sort_by(f64::total_cmp);
        changes.sort();
        let (median, max) = (times[times.len() / 2], times[times.len() - 1]);
        eprintln!("cloud_move: {ports} ports: {name}: median {median:.2} ms, max {max:.2} ms");
        events.push((name, median, max, changes[changes.len() / 2]));
    }
    agent.abort();
    drop(sbx);
    Row { sizes, flows, start_s, events }
}

fn main() {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cloud_move: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let rows: Vec<Row> = args.ports.iter().map(|p| rt.block_on(measure(*p, &args.nb, args.repeat))).collect();
    println!();
    println!(
        "One real controller (hv-0000) on OVS, NB on {}; write -> flows in OVS, median / max of {}.",
        args.nb, args.repeat
    );
    println!("(start s: from the controller's start to its last flow change with every VM plugged)");
    println!(
        "{:>8} {:>8} {:>8} {:>7} {:>9} {:>30} {:>30}",
        "chassis",
        "networks",
        "ports",
        "flows",
        "start s",
        "remote move, local net",
        "remote move, other net"
    );
    for r in &rows {
        let cell = |name: &str| {
            r.events
                .iter()
                .find(|e| e.0 == name)
                .map_or("-".to_string(), |(_, med, max, ch)| format!("{med:.2} / {max:.2} ms ({ch} ch)"))
        };
        println!(
            "{:>8} {:>8} {:>8} {:>7} {:>9.1} {:>30} {:>30}",
            r.sizes.chassis,
            r.sizes.networks,
            r.sizes.ports,
            r.flows,
            r.start_s,
            cell("remote move, local net"),
            cell("remote move, other net")
        );
    }
    if args.json {
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "chassis": r.sizes.chassis, "networks": r.sizes.networks, "ports": r.sizes.ports,
                    "flows": r.flows, "start_s": r.start_s,
                    "events": r.events.iter().map(|(n, med, max, ch)| serde_json::json!({
                        "event": n, "median_ms": med, "max_ms": max, "median_changes": ch
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::json!({"nb": args.nb, "repeat": args.repeat, "rows": rows}));
    }
}
