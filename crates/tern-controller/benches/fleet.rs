//! A thousand chassis in one process: every chassis of a synthetic cloud (1,000 chassis and
//! 30,000 ports by default) run as a real controller `Core`, on one NB copy they share (one copy
//! per chassis would not fit in memory; each core still looks at every change as it would at its
//! own watch's events). Then `--writes N` NB writes (default 1,000), each a VM moving to another
//! chassis (its VIF moved first, as Nova plugs before it binds) or a new VM booting somewhere,
//! delivered to every chassis. Per write:
//! * **latency**: from the write to the last chassis' decision (its bundle's content, or nothing
//!   to do), with every chassis on its own machine: the slowest chassis' time;
//! * **CPU**: the time of every chassis added up, plus one NB-copy update per chassis (what each
//!   chassis spends keeping its own copy in a real cloud, measured on the shared copy);
//! * how many chassis computed flows.
//!
//! The goal: p99 latency <= 100 ms at 1,000 chassis.
//!
//! `cargo bench -p tern-controller --bench fleet [-- --chassis 1000 --ports 30000 --writes 1000
//! --json]`. One thread; no OVS, no store. `FLEET_DEBUG=1` names every chassis that took over
//! 20 ms for a write.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tern_controller::cache::NbCache;
use tern_controller::core::NbChange;
use tern_controller::synthetic::{Cloud, Sizes};
use tern_model::{Chassis, Object, Port};
use tern_store::nb::NbEvent;

mod common;

use common::core::CoreChassis;
use common::{ms, percentile};

const GOAL_P99_MS: f64 = 100.0;

fn main() {
    let args = common::args_or_exit("fleet", &[30_000], 1, &["--chassis", "--writes"]);
    let flag = |name: &str, default: usize| match args.extra.get(name).map(|v| common::count(name, v)) {
        Some(Err(e)) => {
            eprintln!("fleet: {e}");
            std::process::exit(2)
        }
        Some(Ok(n)) => n,
        None => default,
    };
    let (chassis, writes) = (flag("--chassis", 1_000), flag("--writes", 1_000));
    let ports = args.ports[0];
    let sizes = Sizes { chassis, networks: (ports / 10).max(1), ports };
    eprintln!("fleet: {chassis} chassis, {} networks, {ports} ports: building", sizes.networks);
    let cloud = Cloud::new(sizes, 0x7e57);
    let mut nb = Arc::new(NbCache::from_listing(cloud.objects.clone(), 1));
    let t = Instant::now();
    let mut fleet: Vec<CoreChassis> = (0..chassis)
        .map(|c| {
            if c > 0 && c % 100 == 0 {
                eprintln!("fleet: {c} of {chassis} chassis settled ({:.0} s)", t.elapsed().as_secs_f64());
            }
            let local = cloud.local(c);
            let ip = match nb.one::<Chassis>(&local.chassis).map(|c| c.tunnel_ip) {
                Some(std::net::IpAddr::V4(ip)) => ip,
                _ => unreachable!("the synthetic cloud gives every chassis an IPv4 tunnel address"),
            };
            CoreChassis::new(local, ip, nb.clone())
        })
        .collect();
    let flows: usize = fleet.iter().map(|c| c.flows).sum();
    eprintln!(
        "fleet: {chassis} chassis settled in {:.1} s, {flows} flows in all ({} on average)",
        t.elapsed().as_secs_f64(),
        flows / chassis
    );

    let vm_ports: Vec<String> = cloud.placement.keys().cloned().collect();
    let mut rng = tern_controller::synthetic::Rng::new(0x2545_f491_4f6c_dd1d);
    let mut below = |n: usize| rng.below(n);
    let (mut latency, mut cpu, mut computed) = (Vec::new(), Vec::new(), Vec::new());
    let t_run = Instant::now();
    for (w, revision) in (0..writes).zip(2u64..) {
        if w > 0 && w % 100 == 0 {
            eprintln!(
                "fleet: {w} of {writes} writes ({:.0} s), p50 so far {:.2} ms",
                t_run.elapsed().as_secs_f64(),
                percentile(&latency, 50.0)
            );
        }
        // A VM moves (its VIF first), or a new one boots on a random network and chassis.
        let to = below(chassis);
        let port: Port = if w % 4 == 3 {
            let mut p = nb.one::<Port>(&vm_ports[below(vm_ports.len())]).expect("a VM port");
            p.id = format!("vm-fleet-{w:06}");
            p.unique_key = 0x0100_0000 + w as u32;
            p.mac_address = format!("fa:16:3e:f1:{:02x}:{:02x}", (w >> 8) & 0xff, w & 0xff);
            p
        } else {
            nb.one::<Port>(&vm_ports[below(vm_ports.len())]).expect("a VM port")
        };
        let from = fleet.iter().position(|c| c.local.vifs.contains_key(&port.id));
        if from != Some(to) {
            let mut vifs = fleet[to].local.vifs.clone();
            vifs.insert(port.id.clone(), 20_000 + w as u32);
            fleet[to].set_vifs(vifs);
        }
        let mut moved = port.clone();
        moved.binding_host_id = fleet[to].local.chassis.clone();
        let before = nb.get(tern_model::Kind::Port, &port.id).cloned();
        let after = Object::Port(moved);
        // The shared copy (copied on write: the cores still hold the old one).
        // The cores let go of the old copy as they take the new one; this holds it until they
        // all have, so that freeing it (a bench artifact) is timed for none of them.
        let previous = nb.clone();
        let copy = Arc::make_mut(&mut nb);
        let t_apply = Instant::now();
        copy.apply(NbEvent::Put { revision, object: Box::new(after.clone()) });
        let apply = t_apply.elapsed();
        let changes: Arc<[NbChange]> = Arc::from(vec![NbChange { before, after: Some(after) }]);
        let (mut slowest, mut total, mut n) = (Duration::ZERO, Duration::ZERO, 0);
        for (i, c) in fleet.iter_mut().enumerate() {
            let h = c.handle_shared(nb.clone(), changes.clone());
            if std::env::var_os("FLEET_DEBUG").is_some() && ms(h.took) > 20.0 {
                eprintln!(
                    "write {w} chassis {i}: {:.1} ms computed {} changes {} flows {}",
                    ms(h.took),
                    h.computed,
                    h.changes,
                    c.flows
                );
            }
            slowest = slowest.max(h.took + apply);
            total += h.took + apply;
            n += usize::from(h.computed);
        }
        drop(previous);
        // The VM left its old chassis (after the write, as Nova unplugs the source last).
        if let Some(from) = from.filter(|f| *f != to) {
            let mut vifs = fleet[from].local.vifs.clone();
            vifs.remove(&port.id);
            fleet[from].set_vifs(vifs);
        }
        latency.push(ms(slowest));
        cpu.push(ms(total));
        computed.push(n as f64);
    }
    let row = |name: &str, v: &[f64]| {
        println!(
            "{name:<34} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            percentile(v, 50.0),
            percentile(v, 99.0),
            percentile(v, 100.0),
            v.iter().sum::<f64>() / v.len() as f64
        );
    };
    println!();
    println!(
        "{chassis} chassis, {} networks, {ports} ports; {writes} writes (3 VM moves : 1 VM boot).",
        sizes.networks
    );
    println!("{:<34} {:>9} {:>9} {:>9} {:>9}", "per write", "p50", "p99", "max", "mean");
    row("latency to the last chassis, ms", &latency);
    row("CPU of all chassis, ms", &cpu);
    row("chassis that computed", &computed);
    let p99 = percentile(&latency, 99.0);
    println!(
        "Goal: p99 latency <= {GOAL_P99_MS} ms at 1,000 chassis: {p99:.2} ms, {}.",
        if p99 <= GOAL_P99_MS { "met" } else { "NOT met" }
    );
    if args.json {
        let stats = |v: &[f64]| {
            serde_json::json!({"p50": percentile(v, 50.0), "p99": percentile(v, 99.0), "max": percentile(v, 100.0),
                "mean": v.iter().sum::<f64>() / v.len() as f64})
        };
        println!(
            "{}",
            serde_json::json!({
                "chassis": chassis, "networks": sizes.networks, "ports": ports, "writes": writes,
                "latency_ms": stats(&latency), "cpu_ms": stats(&cpu), "computed": stats(&computed),
            })
        );
    }
}
