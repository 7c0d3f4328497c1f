//! From a port write in the NB to its flows installed on every chassis: three hypervisors (each a
//! real OVS in its own namespace with its own tern controller) on one NB; 100 ports written one at
//! a time, bound round-robin; for each, the time until every controller reports a reconciliation
//! at or past the write's revision (its bundle acknowledged by OVS). Prints p50/p99/max.
//!
//! `cargo bench -p tern-controller --bench port_flows` (as root). `TERN_BENCH_PORTS` changes the
//! count, `TERN_BENCH_NB=etcd` runs on a real etcd instead of the embedded store, and
//! `TERN_BENCH_JSON=1` adds a JSON line.

use std::time::{Duration, Instant};
use tern_controller::agent::{self, Reconciled};
use tern_model::Kind;
use tern_ovsdb::testing::OvsSandbox;
use tern_store::nb::Nb;
use tokio::sync::mpsc;

mod common;

const CHASSIS: usize = 3;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Waits until every controller has reported a reconciliation at or past `revision`.
async fn settle(reports: &mut [mpsc::UnboundedReceiver<Reconciled>], revision: u64) {
    let mut pending: Vec<usize> = (0..reports.len()).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !pending.is_empty() {
        let mut still = Vec::new();
        for i in pending {
            let mut done = false;
            while let Ok(r) = reports[i].try_recv() {
                done |= r.nb_revision >= revision;
            }
            if !done {
                still.push(i);
            }
        }
        pending = still;
        if !pending.is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "chassis did not converge");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
}

fn main() {
    if std::env::args().skip(1).any(|a| !a.starts_with('-') && !"port_flows".contains(a.as_str())) {
        return;
    }
    let ports: usize = std::env::var("TERN_BENCH_PORTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let backend = std::env::var("TERN_BENCH_NB").unwrap_or_else(|_| "redb".into());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let bench_store = common::store(&backend, dir.path()).await;
        let store = bench_store.store.clone();
        let nb = Nb::new(store);
        let mut sandboxes = Vec::new();
        let mut reports = Vec::new();
        for i in 1..=CHASSIS {
            let sbx = OvsSandbox::start_isolated().expect("start OVS (as root)");
            let config = common::sandbox_chassis(&format!("hv{i}"), &format!("172.31.0.{i}"), sbx.db_sock());
            let (tx, rx) = mpsc::unbounded_channel::<Reconciled>();
            tokio::spawn(agent::run(config, nb.clone(), Some(tx), std::future::pending()));
            sandboxes.push(sbx);
            reports.push(rx);
        }
        // One network with a plugged port on every chassis, so each has the network locally.
        let net = nb.put_json(Kind::Network, r#"{"name":"bench"}"#).await.unwrap().object.id().to_owned();
        let sub = nb
            .put_json(Kind::Subnet, &format!(r#"{{"network_id":"{net}","ip_version":4,"cidr":"10.9.0.0/16"}}"#))
            .await
            .unwrap()
            .object
            .id()
            .to_owned();
        let port_json = |hv: usize| {
            format!(r#"{{"network_id":"{net}","fixed_ips":[{{"subnet_id":"{sub}"}}],"binding:host_id":"hv{hv}"}}"#)
        };
        for (i, sbx) in sandboxes.iter().enumerate() {
            let p = nb.put_json(Kind::Port, &port_json(i + 1)).await.unwrap().object.id().to_owned();
            let deadline = Instant::now() + Duration::from_secs(60);
            while sbx.vsctl(&["br-exists", "br-int"]).is_err() {
                assert!(Instant::now() < deadline, "no br-int");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let iface = format!("seed{i}");
            sbx.vsctl(&["add-port", "br-int", &iface, "--", "set", "interface", &iface, "type=internal", &format!("external_ids:iface-id={p}")])
                .unwrap();
        }
        let seed_rev = nb.store().revision().await.unwrap();
        settle(&mut reports, seed_rev).await;

        eprintln!("writing {ports} ports, one at a time, on {CHASSIS} chassis ({backend} NB)");
        let mut times = Vec::with_capacity(ports);
        for i in 0..ports {
            let start = Instant::now();
            let stored = nb.put_json(Kind::Port, &port_json(i % CHASSIS + 1)).await.unwrap();
            settle(&mut reports, stored.mod_revision).await;
            times.push(start.elapsed());
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!("| NB | ports | p50 | p99 | max |");
        println!("| --- | ---: | ---: | ---: | ---: |");
        println!(
            "| {backend} | {ports} | {:.1} ms | {:.1} ms | {:.1} ms |",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            ms(*times.last().unwrap())
        );
        if std::env::var("TERN_BENCH_JSON").is_ok_and(|v| v == "1") {
            println!(
                "{{\"nb\":\"{backend}\",\"ports\":{ports},\"chassis\":{CHASSIS},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3}}}",
                ms(percentile(&times, 0.5)),
                ms(percentile(&times, 0.99)),
                ms(*times.last().unwrap())
            );
        }
        drop(sandboxes);
    });
}
