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

use std::time::{Duration, Instant};

use futures::StreamExt;
use tern_controller::agent::{self, Reconciled};
use tern_controller::synthetic::{chassis_name, Cloud, Sizes};
use tern_model::{Kind, Object};
use tern_ovsdb::testing::OvsSandbox;
use tern_store::nb::Nb;
use tokio::sync::mpsc;

mod common;

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
    let t = Instant::now();
    for kind in tern_controller::synthetic::WRITE_ORDER {
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
    let bench_store = common::store(backend, dir.path()).await;
    let nb = Nb::new(bench_store.store.clone());
    eprintln!(
        "cloud_move: {} chassis, {} networks, {ports} ports on {backend}",
        sizes.chassis, sizes.networks
    );
    load(&nb, &cloud).await;

    let sbx = OvsSandbox::start_isolated().expect("start OVS (as root)");
    let local = cloud.local(0);
    let config = common::sandbox_chassis(&local.chassis, "172.16.0.1", sbx.db_sock());
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
    let mut args = common::args_or_exit("cloud_move", &[1_000, 10_000], 10, &["--nb"]);
    let nb = args.extra.remove("--nb").unwrap_or_else(|| "etcd".into());
    if nb != "etcd" && nb != "redb" {
        eprintln!("cloud_move: --nb {nb:?}: expected etcd or redb");
        std::process::exit(2);
    }
    if let Some(small) = args.ports.iter().find(|p| **p < 100) {
        eprintln!("cloud_move: --ports: {small} is too small (at least 100: the cloud needs chassis to move between)");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let rows: Vec<Row> = args.ports.iter().map(|p| rt.block_on(measure(*p, &nb, args.repeat))).collect();
    println!();
    println!(
        "One real controller (hv-0000) on OVS, NB on {}; write -> flows in OVS, median / max of {}.",
        nb, args.repeat
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
        println!("{}", serde_json::json!({"nb": nb, "repeat": args.repeat, "rows": rows}));
    }
}
