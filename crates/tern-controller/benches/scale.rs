//! What NB events cost one chassis as the cloud grows: a synthetic cloud
//! (`tern_controller::synthetic`: 1,000 / 3,000 / 10,000 / 30,000 ports by default) in the real
//! `NbCache`, and chassis hv-0000 run as the controller runs it, a real `Core` (its VIFs plugged,
//! a switch that takes every bundle). Each event is timed from the moment the core gets it to its
//! decision (the bundle's content, or nothing to do), `--repeat N` times (default 5), back and
//! forth; the table shows medians:
//! * `remote move, local net`: a port of a network with a VM here moves between two other
//!   chassis (a change this chassis' flows follow);
//! * `remote move, other net`: the same on a network with no VM here (an unrelated change);
//! * `VM boots here`: a new port on a local network, plugged and bound here (then deleted);
//! * `burst of 1,000`: 1,000 new ports on random networks and chassis, one event at a time (each
//!   its own computation when it concerns this chassis): the total time, and how many computed.
//!
//! The reference, in the same run: the whole-cloud recompute (every object of the cloud in the
//! view, every flow computed and diffed after any change: what a chassis did before the scope
//! and the event filter) at 1,000 ports (`--reference-ports`).
//!
//! One thread: its time is its CPU. No OVS, no store.
//!
//! `cargo bench -p tern-controller --bench scale [-- --ports 1000,10000 --repeat 3 --json]`;
//! `--per-chassis N` keeps N VMs per chassis (chassis = ports / N) instead of the default shapes
//! (1,000 ports on 100 chassis, 10,000 on 1,000, 30,000 on 1,000), to show the cost of a cloud's
//! size apart from the load of one chassis.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tern_controller::cache::NbCache;
use tern_controller::synthetic::{Cloud, Sizes};
use tern_controller::view::whole_cloud_view;
use tern_model::{Chassis, Kind, Object, Port};
use tern_pipeline::FlowSet;
use tern_store::nb::NbEvent;

mod common;

use common::core::{CoreChassis, Handled};
use common::{median, ms};

/// The goals of the scale issue.
const GOAL_RELEVANT_MS: f64 = 5.0;
const GOAL_UNRELATED_MS: f64 = 0.5;
const GOAL_BURST_MS: f64 = 1000.0;
const BURST: usize = 1000;

struct Row {
    sizes: Sizes,
    flows: usize,
    start_ms: f64,
    /// (event, median ms, median flow changes)
    events: Vec<(&'static str, f64, usize)>,
    /// A burst of creations: total ms, how many of them computed.
    burst: Option<(f64, usize)>,
    memory_mb: f64,
}

/// The NB revision counter of a benchmark.
struct Revisions(u64);

impl Revisions {
    fn put(&mut self, object: Object) -> NbEvent {
        self.0 += 1;
        NbEvent::Put { revision: self.0, object: Box::new(object) }
    }
    fn delete(&mut self, kind: Kind, id: &str) -> NbEvent {
        self.0 += 1;
        NbEvent::Delete { revision: self.0, kind, id: id.to_owned() }
    }
}

/// The process' resident memory, in MB (Linux).
fn resident_mb() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    pages * 4096.0 / 1e6
}

/// Chassis 0 of `cloud`, settled; and how long its first computation took.
fn chassis_zero(cloud: &Cloud) -> (CoreChassis, Duration) {
    let cache = NbCache::from_listing(cloud.objects.clone(), 1);
    let local = cloud.local(0);
    let tunnel_ip = match cache.one::<Chassis>(&local.chassis).map(|c| c.tunnel_ip) {
        Some(std::net::IpAddr::V4(ip)) => ip,
        _ => std::net::Ipv4Addr::new(172, 16, 0, 1),
    };
    let t = Instant::now();
    let ch = CoreChassis::new(local, tunnel_ip, cache);
    (ch, t.elapsed())
}

/// A copy of VM port `like` with a new id, key, MAC and address (`n` tells them apart).
fn new_port(like: &Port, n: usize) -> Port {
    let mut port = like.clone();
    port.id = format!("vm-new-{n:06}");
    port.unique_key = 0x00f0_0000 + n as u32;
    port.mac_address = format!("fa:16:3e:f0:{:02x}:{:02x}", (n >> 8) & 0xff, n & 0xff);
    if let Some(ip) = port.fixed_ips.first_mut() {
        ip.ip_address = ip.ip_address.map(|a| match a {
            std::net::IpAddr::V4(v4) => {
                let o = v4.octets();
                std::net::IpAddr::V4(std::net::Ipv4Addr::new(o[0], o[1], o[2], 200 + (n % 50) as u8))
            }
            other => other,
        });
    }
    port
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
    let (mut ch, start) = chassis_zero(&cloud);
    let memory_mb = resident_mb();
    eprintln!("scale: {ports} ports: first computation {:.1} ms, {} flows", ms(start), ch.flows);
    let mut revisions = Revisions(1);

    let local_nets: BTreeSet<usize> =
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
        let homes = [port.binding_host_id.clone(), cloud.chassis_name(sizes.chassis - 1)];
        let (mut times, mut changes) = (Vec::new(), Vec::new());
        for i in 0..repeat {
            port.binding_host_id = homes[(i + 1) % 2].clone();
            let h = ch.handle(vec![revisions.put(Object::Port(port.clone()))]);
            times.push(ms(h.took));
            changes.push(h.changes);
        }
        eprintln!("scale: {ports} ports: {name}: median {:.3} ms", median(times.clone()));
        events.push((name, median(times), median(changes)));
    }
    // A VM boots here (plugged, then bound), then goes away, on a network with a VM here.
    if let Some(n) = local_nets.iter().next() {
        let like = cloud.placement.iter().find(|(_, (pn, c))| pn == n && *c == 0).unwrap().0;
        let mut port = new_port(cloud.port(like).unwrap(), 0);
        port.binding_host_id = ch.local.chassis.clone();
        let (mut times, mut changes) = (Vec::new(), Vec::new());
        for _ in 0..repeat {
            let mut vifs = ch.local.vifs.clone();
            vifs.insert(port.id.clone(), 9_999);
            ch.set_vifs(vifs);
            let h = ch.handle(vec![revisions.put(Object::Port(port.clone()))]);
            times.push(ms(h.took));
            changes.push(h.changes);
            let mut vifs = ch.local.vifs.clone();
            vifs.remove(&port.id);
            ch.set_vifs(vifs);
            ch.handle(vec![revisions.delete(Kind::Port, &port.id)]);
        }
        eprintln!("scale: {ports} ports: VM boots here: median {:.3} ms", median(times.clone()));
        events.push(("VM boots here", median(times), median(changes)));
    }
    // The flows the chassis holds before the burst adds to them.
    let flows = ch.flows;
    // A burst of creations anywhere in the cloud, one event at a time.
    let vm_ports: Vec<&String> = cloud.placement.keys().collect();
    let mut total = Duration::ZERO;
    let mut computed = 0;
    for i in 0..BURST {
        let like = cloud.port(vm_ports[(i * 7919) % vm_ports.len()]).unwrap();
        let mut port = new_port(like, i + 1);
        port.binding_host_id = cloud.chassis_name((i * 104_729) % sizes.chassis);
        let h: Handled = ch.handle(vec![revisions.put(Object::Port(port))]);
        total += h.took;
        computed += usize::from(h.computed);
    }
    eprintln!("scale: {ports} ports: burst of {BURST} creations: {:.1} ms, {computed} computed", ms(total));
    Row { sizes, flows, start_ms: ms(start), events, burst: Some((ms(total), computed)), memory_mb }
}

/// The whole-cloud recompute after one change: the view of every object, every flow, the diff.
fn reference(ports: usize, repeat: usize) -> (f64, usize) {
    let sizes = Sizes::for_ports(ports);
    let cloud = Cloud::new(sizes, 0x7e57);
    let mut cache = NbCache::from_listing(cloud.objects.clone(), 1);
    let local = cloud.local(0);
    let mut installed = tern_pipeline::compute(&whole_cloud_view(&cache, &local));
    let flows = installed.len();
    let (id, _) = cloud.placement.iter().find(|(_, (_, c))| *c != 0).unwrap();
    let mut port = cloud.port(id).unwrap().clone();
    let homes = [port.binding_host_id.clone(), cloud.chassis_name(sizes.chassis - 1)];
    let mut revisions = Revisions(1);
    let mut times = Vec::new();
    for i in 0..repeat {
        port.binding_host_id = homes[(i + 1) % 2].clone();
        let t = Instant::now();
        cache.apply(revisions.put(Object::Port(port.clone())));
        let desired = tern_pipeline::compute(&whole_cloud_view(&cache, &local));
        let _ = FlowSet::diff(&installed, &desired);
        times.push(ms(t.elapsed()));
        installed = desired;
    }
    eprintln!(
        "scale: reference, whole-cloud recompute at {ports} ports: median {:.1} ms",
        median(times.clone())
    );
    (median(times), flows)
}

fn main() {
    let args = common::args_or_exit(
        "scale",
        &[1_000, 3_000, 10_000, 30_000],
        5,
        &["--per-chassis", "--reference-ports"],
    );
    let flag = |name: &str| match args.extra.get(name).map(|v| common::count(name, v)) {
        Some(Err(e)) => {
            eprintln!("scale: {e}");
            std::process::exit(2)
        }
        Some(Ok(n)) => Some(n),
        None => None,
    };
    let per_chassis = flag("--per-chassis");
    let reference_ports = flag("--reference-ports").unwrap_or(1_000);
    let (reference_ms, reference_flows) = reference(reference_ports, args.repeat);
    let rows: Vec<Row> = args.ports.iter().map(|p| measure(*p, args.repeat, per_chassis)).collect();
    println!();
    println!(
        "One chassis (hv-0000), a real controller core; median of {} per event, from the event to the core's decision.",
        args.repeat
    );
    println!(
        "{:>7} {:>8} {:>7} {:>6} {:>9} {:>22} {:>22} {:>20} {:>22} {:>7}",
        "chassis",
        "networks",
        "ports",
        "flows",
        "start ms",
        "remote move, local net",
        "remote move, other net",
        "VM boots here",
        "burst of 1,000 (comp.)",
        "RSS MB"
    );
    for r in &rows {
        let cell = |name: &str| {
            r.events
                .iter()
                .find(|(n, _, _)| *n == name)
                .map_or("-".to_string(), |(_, t, c)| format!("{t:.3} ms ({c} ch)"))
        };
        let burst = r.burst.map_or("-".into(), |(t, n)| format!("{t:.1} ms ({n})"));
        println!(
            "{:>7} {:>8} {:>7} {:>6} {:>9.1} {:>22} {:>22} {:>20} {:>22} {:>7.0}",
            r.sizes.chassis,
            r.sizes.networks,
            r.sizes.ports,
            r.flows,
            r.start_ms,
            cell("remote move, local net"),
            cell("remote move, other net"),
            cell("VM boots here"),
            burst,
            r.memory_mb
        );
    }
    println!(
        "Reference, same run: the whole-cloud recompute at {reference_ports} ports ({reference_flows} flows): {reference_ms:.1} ms per event."
    );
    let worst = |name: &str| {
        rows.iter()
            .filter_map(|r| r.events.iter().find(|(n, _, _)| *n == name))
            .map(|e| e.1)
            .fold(0.0, f64::max)
    };
    let (relevant, unrelated) = (worst("remote move, local net"), worst("remote move, other net"));
    let burst = rows.iter().filter_map(|r| r.burst).map(|b| b.0).fold(0.0, f64::max);
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "Goals: relevant change <= {GOAL_RELEVANT_MS} ms: worst {relevant:.3} ms, {}; unrelated change <= {GOAL_UNRELATED_MS} ms: worst {unrelated:.3} ms, {}; burst of {BURST} < {GOAL_BURST_MS} ms: worst {burst:.1} ms, {}.",
        verdict(relevant <= GOAL_RELEVANT_MS),
        verdict(unrelated <= GOAL_UNRELATED_MS),
        verdict(burst < GOAL_BURST_MS)
    );
    if args.json {
        let json: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "chassis": r.sizes.chassis, "networks": r.sizes.networks, "ports": r.sizes.ports,
                    "flows": r.flows, "start_ms": r.start_ms, "rss_mb": r.memory_mb,
                    "burst": r.burst.map(|(t, n)| serde_json::json!({"creations": BURST, "total_ms": t, "computed": n})),
                    "events": r.events.iter().map(|(n, t, c)| serde_json::json!({"event": n, "median_ms": t, "median_changes": c})).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "repeat": args.repeat,
                "reference": {"ports": reference_ports, "flows": reference_flows, "median_ms": reference_ms},
                "rows": json
            })
        );
    }
}
