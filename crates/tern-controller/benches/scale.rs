//! What one NB event costs one chassis, as the cloud grows: a synthetic cloud
//! (`tern_controller::synthetic`: 1,000 / 10,000 / 30,000 ports by default) in the real
//! `NbCache`; chassis hv-0000 computes its view (`tern_controller::view::chassis_view`), its
//! flows (`tern_pipeline::compute`) and the bundle (`FlowSet::diff`) after each event:
//! * `remote move, local net`: a port of a network with a port here moves between two other chassis;
//! * `remote move, other net`: the same on a network with no port here;
//! * `VM boots here`: a new port on a local network, bound and plugged here (then deleted).
//!
//! Each event is timed from the cache update to the diff, `--repeat N` times (default 5), back and
//! forth; the table shows medians. Pure CPU: no OVS, no store.
//!
//! `cargo bench -p tern-controller --bench scale [-- --ports 1000,10000 --repeat 3 --json]`;
//! `--per-chassis N` keeps N VMs per chassis (chassis = ports / N) instead of the default shapes
//! (1,000 ports on 100 chassis, 10,000 on 1,000, 30,000 on 1,000), to show the cost of a cloud's
//! size apart from the load of one chassis.

use std::time::{Duration, Instant};

use tern_controller::cache::NbCache;
use tern_controller::synthetic::{chassis_name, network_id, Cloud, Sizes};
use tern_controller::view::{chassis_view, Local};
use tern_model::{Kind, Object, Port};
use tern_pipeline::FlowSet;
use tern_store::nb::NbEvent;

mod common;

use common::{median, ms};

/// One chassis' controller state, as the agent keeps it.
struct Chassis {
    cache: NbCache,
    local: Local,
    installed: FlowSet,
    revision: u64,
}

impl Chassis {
    /// Applies `event`, recomputes and diffs: the time a controller spends before its bundle.
    /// Also says how that time splits: (cache + view, flows, diff).
    fn handle(&mut self, event: NbEvent) -> (Duration, usize, [Duration; 3]) {
        let t = Instant::now();
        self.cache.apply(event);
        let view = chassis_view(&self.cache, &self.cache.all(), &self.local);
        let t_view = t.elapsed();
        let desired = tern_pipeline::compute(&view);
        let t_flows = t.elapsed();
        let changes = FlowSet::diff(&self.installed, &desired).len();
        let elapsed = t.elapsed();
        self.installed = desired;
        (elapsed, changes, [t_view, t_flows - t_view, elapsed - t_flows])
    }

    fn next_revision(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }

    fn put(&mut self, port: Port) -> NbEvent {
        NbEvent::Put { revision: self.next_revision(), object: Box::new(Object::Port(port)) }
    }
}

struct Row {
    sizes: Sizes,
    flows: usize,
    full_ms: f64,
    /// (event, median ms, median flow changes)
    events: Vec<(&'static str, f64, usize)>,
}

fn measure(ports: usize, repeat: usize, per_chassis: Option<usize>) -> Row {
    let mut sizes = Sizes::for_ports(ports);
    if let Some(n) = per_chassis {
        sizes.chassis = (ports / n).max(2);
    }
    eprintln!(
        "scale: {} chassis, {} networks, {} ports: building",
        sizes.chassis, sizes.networks, sizes.ports
    );
    let cloud = Cloud::new(sizes, 0x7e57);
    let local = cloud.local(0);
    let cache = NbCache::from_listing(cloud.objects.clone(), 1);
    let t = Instant::now();
    let view = chassis_view(&cache, &cache.all(), &local);
    let installed = tern_pipeline::compute(&view);
    let full = t.elapsed();
    let flows = installed.len();
    eprintln!("scale: {ports} ports: full computation {:.1} ms, {flows} flows", ms(full));
    let mut ch = Chassis { cache, local, installed, revision: 1 };

    // The networks with a port here, and a port elsewhere on one of them and on one without.
    let here = chassis_name(0);
    let local_nets: std::collections::BTreeSet<usize> =
        cloud.placement.values().filter(|(_, c)| *c == 0).map(|(n, _)| *n).collect();
    let remote_on = |local_net: bool| {
        cloud
            .placement
            .iter()
            .find(|(_, (n, c))| *c != 0 && local_nets.contains(n) == local_net)
            .map(|(id, _)| cloud.port(id).unwrap().clone())
    };
    let mut events = Vec::new();
    for (name, port) in
        [("remote move, local net", remote_on(true)), ("remote move, other net", remote_on(false))]
    {
        let Some(mut port) = port else {
            eprintln!("scale: {ports} ports: no port for {name:?}; skipped");
            continue;
        };
        let homes = [
            port.binding_host_id.clone(),
            chassis_name(if sizes.chassis > 2 { sizes.chassis - 1 } else { 1 }),
        ];
        let (mut times, mut changes, mut phases) =
            (Vec::new(), Vec::new(), [Vec::new(), Vec::new(), Vec::new()]);
        for i in 0..repeat {
            port.binding_host_id = homes[(i + 1) % 2].clone();
            let ev = ch.put(port.clone());
            let (d, n, split) = ch.handle(ev);
            times.push(ms(d));
            changes.push(n);
            for (k, p) in split.iter().enumerate() {
                phases[k].push(ms(*p));
            }
        }
        let [v, f, d] = phases.map(median);
        eprintln!(
            "scale: {ports} ports: {name}: median {:.2} ms (view {v:.2}, flows {f:.2}, diff {d:.2})",
            median(times.clone())
        );
        events.push((name, median(times), median(changes)));
    }
    // A VM boots here (then goes away), on a network that already has a port here.
    if let Some(n) = local_nets.iter().next() {
        let mut port = cloud
            .port(&cloud.placement.iter().find(|(_, (pn, c))| pn == n && *c == 0).unwrap().0.clone())
            .unwrap()
            .clone();
        port.id = "vm-booted-here".into();
        port.unique_key = 0xff_fff0;
        port.mac_address = "fa:16:3e:ff:ff:f0".into();
        if let Some(ip) = port.fixed_ips.first_mut() {
            ip.ip_address = ip.ip_address.map(|a| match a {
                std::net::IpAddr::V4(v4) => {
                    std::net::IpAddr::V4(std::net::Ipv4Addr::from(u32::from(v4) ^ 0x80))
                }
                other => other,
            });
        }
        port.binding_host_id = here.clone();
        let (mut times, mut changes) = (Vec::new(), Vec::new());
        for _ in 0..repeat {
            ch.local.vifs.insert(port.id.clone(), 9_999);
            let ev = ch.put(port.clone());
            let (d, c, _) = ch.handle(ev);
            times.push(ms(d));
            changes.push(c);
            ch.local.vifs.remove(&port.id);
            let revision = ch.next_revision();
            ch.handle(NbEvent::Delete { revision, kind: Kind::Port, id: port.id.clone() });
        }
        eprintln!(
            "scale: {ports} ports: VM boots here on {}: median {:.2} ms",
            network_id(*n),
            median(times.clone())
        );
        events.push(("VM boots here", median(times), median(changes)));
    }
    Row { sizes, flows, full_ms: ms(full), events }
}

fn main() {
    let args = common::args_or_exit("scale", &[1_000, 10_000, 30_000], 5, &["--per-chassis"]);
    let per_chassis = match args.extra.get("--per-chassis").map(|v| common::count("--per-chassis", v)) {
        Some(Err(e)) => {
            eprintln!("scale: {e}");
            std::process::exit(2)
        }
        Some(Ok(n)) => Some(n),
        None => None,
    };
    let rows: Vec<Row> = args.ports.iter().map(|p| measure(*p, args.repeat, per_chassis)).collect();
    println!();
    println!(
        "One chassis (hv-0000), median of {} per event; times from the cache update to the diff.",
        args.repeat
    );
    println!(
        "{:>8} {:>8} {:>8} {:>8} {:>12} {:>24} {:>24} {:>24}",
        "chassis",
        "networks",
        "ports",
        "flows",
        "full ms",
        "remote move, local net",
        "remote move, other net",
        "VM boots here"
    );
    for r in &rows {
        let cell = |name: &str| {
            r.events
                .iter()
                .find(|(n, _, _)| *n == name)
                .map_or("-".to_string(), |(_, t, c)| format!("{t:.2} ms ({c} ch)"))
        };
        println!(
            "{:>8} {:>8} {:>8} {:>8} {:>12.1} {:>24} {:>24} {:>24}",
            r.sizes.chassis,
            r.sizes.networks,
            r.sizes.ports,
            r.flows,
            r.full_ms,
            cell("remote move, local net"),
            cell("remote move, other net"),
            cell("VM boots here")
        );
    }
    if args.json {
        let json: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "chassis": r.sizes.chassis, "networks": r.sizes.networks, "ports": r.sizes.ports,
                    "flows": r.flows, "full_ms": r.full_ms,
                    "events": r.events.iter().map(|(n, t, c)| serde_json::json!({"event": n, "median_ms": t, "median_changes": c})).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "repeat": args.repeat, "rows": json }));
    }
}
