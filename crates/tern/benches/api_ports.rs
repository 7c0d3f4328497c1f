//! Port creation over the Neutron API: `tern server` (the built binary) on the embedded store (a redb
//! file in a temporary directory) and on a real etcd; a network with a /16 subnet, then 8 concurrent
//! clients each create N ports with `POST /v2.0/ports` and `fixed_ips` on that subnet (the server
//! allocates the addresses). Prints p50 / p99 / max latency and throughput per backend as markdown,
//! then checks that the server lists exactly the ports created, with distinct IPs.
//!
//! `cargo bench -p tern --bench api_ports`. `TERN_BENCH_PORTS` = ports per client (default 250, i.e.
//! 2,000 ports); `TERN_BENCH_BACKENDS` = `redb,etcd` (default) or one of them; `TERN_BENCH_JSON=1`
//! adds one JSON line per backend. Progress goes to stderr.

use serde_json::{json, Value};
use std::collections::HashSet;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tern_store::testing::EtcdServer;

const CLIENTS: usize = 8;
const START_TIMEOUT: Duration = Duration::from_secs(60);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A running `tern server`; dropping it kills that one process (by its pid, through the handle).
struct Server {
    child: Child,
    endpoint: String,
    log: PathBuf,
}

impl Server {
    fn start(dsn: &str, dir: &Path) -> Result<Server, String> {
        let mut last = String::new();
        for attempt in 0..3 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("no free port: {e}"))?
                .port();
            let listen = format!("127.0.0.1:{port}");
            let log = dir.join(format!("tern-server-{attempt}.log"));
            let out = File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
            let err = out.try_clone().map_err(|e| format!("cannot clone the log file: {e}"))?;
            let child = Command::new(env!("CARGO_BIN_EXE_tern"))
                .args(["server", "--listen", &listen, "--nb", dsn])
                .env_remove("TERN_NB")
                .env_remove("TERN_API_TOKEN")
                .env("NO_COLOR", "1")
                .env("TERN_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .map_err(|e| format!("cannot start tern server: {e}"))?;
            let mut server = Server { child, endpoint: format!("http://{listen}"), log };
            let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok() {
                    return Ok(server);
                }
                if let Ok(Some(status)) = server.child.try_wait() {
                    last = format!("tern server exited during startup ({status}):\n{}", server.log_text());
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "tern server did not accept connections within {START_TIMEOUT:?}:\n{}",
                        server.log_text()
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !last.contains("in use") {
                break;
            }
        }
        Err(last)
    }

    fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one backend's run measured.
struct Outcome {
    created: usize,
    latencies: Vec<Duration>,
    wall: Duration,
    errors: Vec<String>,
    problems: Vec<String>,
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Result<Value, String> {
    let response = client.post(url).json(body).send().await.map_err(|e| format!("POST {url}: {e}"))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| format!("POST {url}: reading the answer: {e}"))?;
    if status.as_u16() != 201 {
        return Err(format!("POST {url}: {status}: {text}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("POST {url}: not JSON ({e}): {text}"))
}

/// Every port on the network, following `ports_links` pages if the server paginates.
async fn list_ports(client: &reqwest::Client, base: &str, network: &str) -> Result<Vec<Value>, String> {
    let mut url = format!("{base}/v2.0/ports?network_id={network}&fields=id&fields=fixed_ips");
    let mut ports = Vec::new();
    loop {
        let response = client.get(&url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| format!("GET {url}: {e}"))?;
        if !status.is_success() {
            return Err(format!("GET {url}: {status}: {body}"));
        }
        let page = body["ports"].as_array().ok_or_else(|| format!("GET {url}: no ports list: {body}"))?;
        ports.extend(page.iter().cloned());
        let next = body["ports_links"].as_array().and_then(|links| {
            links.iter().find(|l| l["rel"] == "next").and_then(|l| l["href"].as_str().map(str::to_owned))
        });
        match next {
            Some(href) if !page.is_empty() => url = href,
            _ => return Ok(ports),
        }
    }
}

async fn run(base: &str, per_client: usize) -> Result<Outcome, String> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let network =
        post(&client, &format!("{base}/v2.0/networks"), &json!({"network": {"name": "bench"}})).await?;
    let network = network["network"]["id"].as_str().ok_or("no network id")?.to_owned();
    let subnet = json!({"subnet": {
        "network_id": network, "cidr": "10.128.0.0/16", "ip_version": 4, "name": "bench"
    }});
    let subnet = post(&client, &format!("{base}/v2.0/subnets"), &subnet).await?;
    let subnet = subnet["subnet"]["id"].as_str().ok_or("no subnet id")?.to_owned();

    let total = CLIENTS * per_client;
    let done = Arc::new(AtomicUsize::new(0));
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!("  {} / {total} ports", done.load(Ordering::Relaxed));
            }
        })
    };
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, done) = (client.clone(), done.clone());
        let (url, network, subnet) = (format!("{base}/v2.0/ports"), network.clone(), subnet.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            let mut ips = Vec::with_capacity(per_client);
            let mut errors = Vec::new();
            for i in 0..per_client {
                let body = json!({"port": {
                    "network_id": network,
                    "name": format!("bench-{c}-{i}"),
                    "fixed_ips": [{"subnet_id": subnet}],
                }});
                let t0 = Instant::now();
                let result = post(&client, &url, &body).await;
                let elapsed = t0.elapsed();
                done.fetch_add(1, Ordering::Relaxed);
                match result {
                    Ok(port) => {
                        latencies.push(elapsed);
                        match port["port"]["fixed_ips"][0]["ip_address"].as_str() {
                            Some(ip) => ips.push(ip.to_owned()),
                            None => errors.push(format!("a created port has no fixed IP: {port}")),
                        }
                    }
                    Err(e) => errors.push(e),
                }
            }
            (latencies, ips, errors)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut ips = Vec::with_capacity(total);
    let mut errors = Vec::new();
    for task in tasks {
        let (l, i, e) = task.await.map_err(|e| format!("client task: {e}"))?;
        latencies.extend(l);
        ips.extend(i);
        errors.extend(e);
    }
    let wall = start.elapsed();
    progress.abort();
    let created = latencies.len();

    let mut problems = Vec::new();
    let distinct: HashSet<&String> = ips.iter().collect();
    if distinct.len() != ips.len() {
        problems.push(format!("the answers gave {} distinct IPs for {} ports", distinct.len(), ips.len()));
    }
    let listed = list_ports(&client, base, &network).await?;
    if listed.len() != created {
        problems.push(format!(
            "GET /v2.0/ports lists {} ports on the network, {created} were created",
            listed.len()
        ));
    }
    let listed_ips: Vec<&str> =
        listed.iter().filter_map(|p| p["fixed_ips"][0]["ip_address"].as_str()).collect();
    let distinct: HashSet<&str> = listed_ips.iter().copied().collect();
    if listed_ips.len() != listed.len() || distinct.len() != listed.len() {
        problems.push(format!(
            "the listed ports have {} IPs, {} distinct, for {} ports",
            listed_ips.len(),
            distinct.len(),
            listed.len()
        ));
    }
    Ok(Outcome { created, latencies, wall, errors, problems })
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds, to the microsecond.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; a filter that excludes us means "don't run".
    if std::env::args().skip(1).any(|a| !a.starts_with('-') && !"api_ports".contains(a.as_str())) {
        return ExitCode::SUCCESS;
    }
    let per_client = env_num("TERN_BENCH_PORTS", 250).max(1);
    let backends = std::env::var("TERN_BENCH_BACKENDS").unwrap_or_else(|_| "redb,etcd".to_owned());
    let json_line = std::env::var("TERN_BENCH_JSON").is_ok_and(|v| v == "1");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let mut ok = true;
    for backend in backends.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        let dir = tempfile::Builder::new().prefix("tern-bench-api-").tempdir().expect("temporary directory");
        let (etcd, dsn) = match backend {
            "redb" => (None, format!("redb:{}", dir.path().join("nb.redb").display())),
            "etcd" => match EtcdServer::start() {
                Ok(etcd) => {
                    let dsn = etcd.dsn();
                    (Some(etcd), dsn)
                }
                Err(e) => {
                    eprintln!("api_ports: cannot start etcd: {e}");
                    ok = false;
                    continue;
                }
            },
            other => {
                eprintln!("api_ports: unknown backend {other:?} in TERN_BENCH_BACKENDS (redb, etcd)");
                ok = false;
                continue;
            }
        };
        let server = match Server::start(&dsn, dir.path()) {
            Ok(server) => server,
            Err(e) => {
                eprintln!("api_ports: {backend}: {e}");
                ok = false;
                continue;
            }
        };
        eprintln!(
            "api_ports: {backend}: {CLIENTS} clients x {per_client} ports against {} ({dsn})",
            server.endpoint
        );
        let outcome = match runtime.block_on(run(&server.endpoint, per_client)) {
            Ok(outcome) => outcome,
            Err(e) => {
                eprintln!("api_ports: {backend}: {e}\n--- tern server output ---\n{}", server.log_text());
                ok = false;
                continue;
            }
        };
        let mut sorted = outcome.latencies.clone();
        sorted.sort();
        let (p50, p99) = (percentile(&sorted, 50.0), percentile(&sorted, 99.0));
        let max = sorted.last().copied().unwrap_or_default();
        let throughput = outcome.created as f64 / outcome.wall.as_secs_f64();
        println!();
        println!("### Port creation over HTTP, {backend} ({CLIENTS} concurrent clients)");
        println!();
        println!("| backend | ports | clients | p50 (ms) | p99 (ms) | max (ms) | throughput (ports/s) |");
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        println!(
            "| {backend} | {} | {CLIENTS} | {:.2} | {:.2} | {:.2} | {throughput:.0} |",
            outcome.created,
            ms(p50),
            ms(p99),
            ms(max)
        );
        println!();
        if json_line {
            let line = json!({
                "bench": "api_ports", "backend": backend, "ports": outcome.created, "clients": CLIENTS,
                "p50_ms": ms(p50), "p99_ms": ms(p99), "max_ms": ms(max),
                "ports_per_s": throughput.round(), "errors": outcome.errors.len(),
            });
            println!("{line}");
        }
        if !outcome.errors.is_empty() {
            ok = false;
            eprintln!("api_ports: {backend}: {} request(s) failed; the first:", outcome.errors.len());
            for e in outcome.errors.iter().take(5) {
                eprintln!("  {e}");
            }
        }
        for problem in &outcome.problems {
            ok = false;
            eprintln!("api_ports: {backend}: INCORRECT: {problem}");
        }
        if outcome.errors.is_empty() && outcome.problems.is_empty() {
            eprintln!("api_ports: {backend}: {} ports listed, all IPs distinct", outcome.created);
        }
        drop(server);
        drop(etcd);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
