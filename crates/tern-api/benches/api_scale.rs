//! What creating a port and querying ports cost as one network fills, through the real HTTP
//! API: the API served in-process on a loopback port (`tern_api::router`, as the tests serve it,
//! the store readied as `tern server` readies it) on the embedded redb store (a file in a
//! temporary directory) and on a real etcd on loopback; one network with a /16 subnet; 8
//! concurrent clients create `--ports` ports (default 10,000), each asking the server for an
//! address (`fixed_ips: [{"subnet_id": ...}]`) and naming its own device (`vm-<n>`), all in one
//! project (whose port quota is lifted to unlimited first), so every create also updates that
//! project's usage counter.
//!
//! Reported per backend:
//! * port create latency, p50 and p99, of the first `--window` creates (default 500) and of the
//!   last `--window` (ports 9,501-10,000 by default), and the ratio last / first (the goal: at
//!   most 1.5x: a create must not slow down as the network fills);
//! * at the full size: `GET /v2.0/ports?device_id=vm-<random>` (from the port index), the same
//!   query answered by scanning every port (the reference, same run: how listings worked before
//!   the index; a second server on the same store without the index marker), and a page
//!   `GET /v2.0/ports?limit=100&marker=<random>`, each p50 and p99 over `--queries` requests by
//!   the 8 clients (the scan: a tenth of them).
//!
//! Every answer is checked (201 with an address; every address distinct; one port per device,
//! the right one; pages of 100); a wrong one fails the run. The creates before the window start
//! (a warm-up network, one port per client) open the connections and create the default security
//! group, so the first window measures creates, not set-up.
//!
//! `cargo bench -p tern-api --bench api_scale [-- --ports 10000 --window 500 --queries 1000
//! --backends redb,etcd --json]` (`make bench-api`). Progress on stderr, a table on stdout,
//! `--json` adds one JSON line per backend.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "common/http.rs"]
mod http;

use http::{call, count, create, http_client, pick, serve, timed, Spread, CLIENTS};
use serde_json::{json, Value};
use tern_api::ApiState;
use tern_store::nb::{Nb, PORT_INDEX_MARKER, PORT_INDEX_VERSION};
use tern_store::testing::EtcdServer;
use tern_store::{LocalStore, Store};

/// The allocator `tern` runs with (see `crates/tern/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The project every object of the run belongs to.
const PROJECT: &str = "bench-project";
const GOAL_RATIO: f64 = 1.5;

struct Args {
    ports: usize,
    window: usize,
    queries: usize,
    backends: Vec<String>,
    json: bool,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        ports: 10_000,
        window: 500,
        queries: 1_000,
        backends: vec!["redb".into(), "etcd".into()],
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bench" => {}
            "--json" => a.json = true,
            "--ports" => a.ports = count("--ports", it.next())?,
            "--window" => a.window = count("--window", it.next())?,
            "--queries" => a.queries = count("--queries", it.next())?,
            "--backends" => {
                let v = it.next().ok_or("--backends needs a list, e.g. redb,etcd")?;
                a.backends = v.split(',').map(|b| b.trim().to_string()).filter(|b| !b.is_empty()).collect();
                if let Some(bad) = a.backends.iter().find(|b| !["redb", "etcd"].contains(&b.as_str())) {
                    return Err(format!("unknown backend {bad:?} (redb, etcd)"));
                }
            }
            other if !other.starts_with('-') && "api_scale".contains(other) => {}
            other if !other.starts_with('-') => std::process::exit(0),
            other => {
                return Err(format!(
                    "unknown argument {other:?} (expected --ports, --window, --queries, --backends, --json)"
                ))
            }
        }
    }
    if a.window * 2 > a.ports {
        return Err(format!("--window {} must be at most half of --ports {}", a.window, a.ports));
    }
    Ok(a)
}

/// One port created: its number, how long the create took, its id and address.
type Created = (usize, Duration, String, String);

struct Outcome {
    backend: String,
    first: Spread,
    last: Spread,
    device: Spread,
    device_scan: Spread,
    page: Spread,
    wall: Duration,
}

async fn run(backend: &str, store: Arc<dyn Store>, a: &Args) -> Result<Outcome, String> {
    let start = Instant::now();
    let nb = Nb::new(store.clone());
    tern_api::prepare_store(&nb).await.map_err(|e| format!("{e:#}"))?;
    let served = serve(ApiState::new(nb)).await?;
    let base = served.base.clone();
    let client = http_client(None)?;

    // Every object belongs to one project, as in a cloud (so every create also counts against
    // the project's port quota, lifted for the 10,000 ports as an operator would).
    let quota = client
        .put(format!("{base}/v2.0/quotas/{PROJECT}"))
        .json(&json!({"quota": {"port": -1}}))
        .send()
        .await
        .map_err(|e| format!("PUT quota: {e}"))?;
    if !quota.status().is_success() {
        return Err(format!("PUT quota answered {}", quota.status()));
    }

    // Warm-up: connections, the default security group, a network of its own.
    let warm = create(
        &client,
        &format!("{base}/v2.0/networks"),
        json!({"network": {"name": "warm-up", "project_id": PROJECT}}),
        "network",
    )
    .await?;
    let subnet = json!({"subnet": {"network_id": warm["id"], "cidr": "10.250.0.0/24", "ip_version": 4}});
    create(&client, &format!("{base}/v2.0/subnets"), subnet, "subnet").await?;
    let warm_id = warm["id"].clone();
    let url = format!("{base}/v2.0/ports");
    timed(format!("api_scale: {backend}: warm-up"), &client, CLIENTS, move |c, _| {
        let (url, net) = (url.clone(), warm_id.clone());
        async move {
            create(&c, &url, json!({"port": {"network_id": net, "project_id": PROJECT}}), "port")
                .await
                .map(|_| ())
        }
    })
    .await?;

    // The network that fills.
    let net = create(
        &client,
        &format!("{base}/v2.0/networks"),
        json!({"network": {"name": "bench", "project_id": PROJECT}}),
        "network",
    )
    .await?;
    let subnet = json!({"subnet": {"network_id": net["id"], "cidr": "10.128.0.0/16", "ip_version": 4, "name": "bench"}});
    let sub = create(&client, &format!("{base}/v2.0/subnets"), subnet, "subnet").await?;
    let total = a.ports;
    let created: Arc<Mutex<Vec<Created>>> = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let done = Arc::new(AtomicUsize::new(0));
    let progress = {
        let (done, backend) = (done.clone(), backend.to_string());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!("api_scale: {backend}: {} / {total} ports", done.load(Ordering::Relaxed));
            }
        })
    };
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (client, next, created, done) = (client.clone(), next.clone(), created.clone(), done.clone());
        let (url, net, sub) = (format!("{base}/v2.0/ports"), net["id"].clone(), sub["id"].clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return Ok::<(), String>(());
                }
                let body = json!({"port": {"network_id": net, "project_id": PROJECT, "device_id": format!("vm-{n}"), "fixed_ips": [{"subnet_id": sub}]}});
                let t0 = Instant::now();
                let port = create(&client, &url, body, "port").await?;
                let took = t0.elapsed();
                let address = port["fixed_ips"][0]["ip_address"]
                    .as_str()
                    .ok_or_else(|| format!("port {n} has no address: {port}"))?
                    .to_string();
                let id = port["id"].as_str().unwrap_or_default().to_string();
                created.lock().unwrap_or_else(|e| e.into_inner()).push((n, took, id, address));
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| format!("client task: {e}"))??;
    }
    progress.abort();
    let mut created = std::mem::take(&mut *created.lock().unwrap_or_else(|e| e.into_inner()));
    created.sort_by_key(|c| c.0);
    let distinct: HashSet<&str> = created.iter().map(|c| c.3.as_str()).collect();
    if distinct.len() != total {
        return Err(format!("{} distinct addresses for {total} ports", distinct.len()));
    }
    let first = Spread::of(created[..a.window].iter().map(|c| c.1).collect());
    let last = Spread::of(created[total - a.window..].iter().map(|c| c.1).collect());
    eprintln!(
        "api_scale: {backend}: {total} ports created in {:.1} s; querying",
        start.elapsed().as_secs_f64()
    );

    // Queries at the full size.
    let ids: Arc<Vec<String>> = Arc::new(created.iter().map(|c| c.2.clone()).collect());
    let mut sorted: Vec<String> = ids.to_vec();
    sorted.sort();
    let sorted = Arc::new(sorted);
    let device_query = |base: String, ids: Arc<Vec<String>>, salt: usize| {
        move |c: reqwest::Client, i: usize| {
            let (base, ids) = (base.clone(), ids.clone());
            async move {
                let n = pick(i + salt, ids.len());
                let url = format!("{base}/v2.0/ports?device_id=vm-{n}");
                match call(&c, reqwest::Method::GET, &url, None).await? {
                    (200, v)
                        if v["ports"]
                            .as_array()
                            .is_some_and(|p| p.len() == 1 && p[0]["id"] == ids[n].as_str()) =>
                    {
                        Ok(())
                    }
                    (s, v) => Err(format!("GET {url}: {s}: not exactly port {}: {v}", ids[n])),
                }
            }
        }
    };
    let device = Spread::of(
        timed(
            format!("api_scale: {backend}: ?device_id=X"),
            &client,
            a.queries,
            device_query(base.clone(), ids.clone(), 0),
        )
        .await?,
    );
    let page_base = base.clone();
    let page = Spread::of(
        timed(format!("api_scale: {backend}: pages"), &client, a.queries, move |c, i| {
            let (base, sorted) = (page_base.clone(), sorted.clone());
            async move {
                let m = pick(i + 7, sorted.len() - 100);
                let url = format!("{base}/v2.0/ports?limit=100&marker={}", sorted[m]);
                // 100 ports in id order after the marker (the warm-up ports are among them too).
                let after = |p: &Vec<Value>| {
                    let ids: Vec<&str> = p.iter().filter_map(|p| p["id"].as_str()).collect();
                    ids.len() == 100 && ids[0] > sorted[m].as_str() && ids.windows(2).all(|w| w[0] < w[1])
                };
                match call(&c, reqwest::Method::GET, &url, None).await? {
                    (200, v) if v["ports"].as_array().is_some_and(after) => Ok(()),
                    (s, v) => Err(format!(
                        "GET {url}: {s}: not the 100 ports after the marker: {:.200}",
                        v.to_string()
                    )),
                }
            }
        })
        .await?,
    );
    // The reference: the same device query on a server that scans (no index marker).
    store.delete(PORT_INDEX_MARKER).await.map_err(|e| e.to_string())?;
    let scanning = serve(ApiState::new(Nb::new(store.clone()))).await?;
    let scans = (a.queries / 10).max(20);
    let device_scan = Spread::of(
        timed(
            format!("api_scale: {backend}: scans"),
            &client,
            scans,
            device_query(scanning.base.clone(), ids.clone(), 1),
        )
        .await?,
    );
    store
        .put(PORT_INDEX_MARKER, PORT_INDEX_VERSION.as_bytes().to_vec(), None)
        .await
        .map_err(|e| e.to_string())?;
    drop(scanning);
    drop(served);
    Ok(Outcome {
        backend: backend.to_string(),
        first,
        last,
        device,
        device_scan,
        page,
        wall: start.elapsed(),
    })
}

fn main() {
    let a = args().unwrap_or_else(|e| {
        eprintln!("api_scale: {e}");
        std::process::exit(2)
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let mut outcomes = Vec::new();
    let mut failed = false;
    for backend in &a.backends {
        let dir =
            tempfile::Builder::new().prefix("tern-bench-api-").tempdir().expect("a temporary directory");
        let result = runtime.block_on(async {
            let (store, etcd): (Arc<dyn Store>, Option<EtcdServer>) = match backend.as_str() {
                "redb" => (
                    Arc::new(LocalStore::open_redb(dir.path().join("nb.redb")).map_err(|e| e.to_string())?),
                    None,
                ),
                _ => {
                    let etcd = tokio::task::spawn_blocking(EtcdServer::start)
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| format!("cannot start etcd: {e}"))?;
                    let store = tern_store::etcd::EtcdStore::connect(&[etcd.endpoint()])
                        .await
                        .map_err(|e| e.to_string())?;
                    (Arc::new(store), Some(etcd))
                }
            };
            eprintln!("api_scale: {backend}: {CLIENTS} clients, {} ports on one /16 network", a.ports);
            let outcome = run(backend, store, &a).await;
            drop(etcd);
            outcome
        });
        match result {
            Ok(o) => outcomes.push(o),
            Err(e) => {
                eprintln!("api_scale: {backend}: FAILED: {e}");
                failed = true;
            }
        }
    }
    let (w, n) = (a.window, a.ports);
    println!();
    println!(
        "### Ports over HTTP as one network fills ({CLIENTS} concurrent clients, one /16 subnet, {n} ports)"
    );
    println!();
    println!(
        "| backend | create p50 / p99 (ms), ports 1-{w} | create p50 / p99 (ms), ports {}-{n} | ratio p50 / p99 | `?device_id=X` p50 / p99 (ms) | same by scanning (reference) | `?limit=100&marker=M` p50 / p99 (ms) | run (s) |",
        n - w + 1
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for o in &outcomes {
        println!(
            "| {} | {} | {} | {:.2}x / {:.2}x | {} | {} | {} | {:.0} |",
            o.backend,
            o.first.cell(),
            o.last.cell(),
            o.last.p50 / o.first.p50,
            o.last.p99 / o.first.p99,
            o.device.cell(),
            o.device_scan.cell(),
            o.page.cell(),
            o.wall.as_secs_f64()
        );
    }
    println!();
    for o in &outcomes {
        let ratio = o.last.p50 / o.first.p50;
        let verdict = if ratio <= GOAL_RATIO { "met" } else { "NOT met" };
        println!(
            "Goal on {}: creates {}-{n} within {GOAL_RATIO}x of the first {w} (p50): {ratio:.2}x, {verdict}.",
            o.backend,
            n - w + 1
        );
    }
    if a.json {
        for o in &outcomes {
            println!(
                "{}",
                json!({
                    "bench": "api_scale", "backend": o.backend, "ports": n, "clients": CLIENTS, "window": w,
                    "create_first": o.first.json(), "create_last": o.last.json(),
                    "ratio_p50": o.last.p50 / o.first.p50, "ratio_p99": o.last.p99 / o.first.p99,
                    "get_by_device": o.device.json(), "get_by_device_scanning": o.device_scan.json(),
                    "get_page_of_100": o.page.json(), "seconds": o.wall.as_secs_f64(),
                })
            );
        }
    }
    if failed {
        std::process::exit(1);
    }
}
