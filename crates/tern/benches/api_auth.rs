//! What Keystone authentication costs the API once tokens are cached: a real Keystone
//! (`tests/common/keystone.rs`: `scripts/keystone.py` from `target/python-venv`, `make pyenv`) and
//! the API served in-process on loopback (`tern_api::router`, the store readied as `tern server`
//! readies it) in two modes, each run on a fresh redb NB in one temporary directory: with
//! `Auth::None` (the reference, no token) and with `Auth::Keystone` (a `Validator` holding the
//! service credentials of user `tern` in project `service`, as `tern server --auth keystone` does),
//! whose clients send a member token of project `alpha` (its validation cached by one request
//! before anything is measured).
//!
//! `--rounds` runs of each mode (default 2, in the order noauth, keystone, keystone, noauth, ...:
//! neither always runs first), their latencies pooled. Each run: one network with a /16 subnet in
//! project `alpha` (port quota lifted), one warm-up port per client, then 8 concurrent clients
//! create `--ports` ports (default 2,000; each asks for an address on the subnet and names its
//! device `vm-<n>`), then `GET /v2.0/ports?device_id=vm-<n>` and `GET /v2.0/ports?limit=50`,
//! `--queries` of each (default 2,000). Every answer is checked.
//!
//! Reported: p50 / p99 per operation for both modes and the difference; separately the cached
//! validation itself (`Validator::validate` of the cached member token, `--validations` calls
//! (default 200,000) timed in batches of 1,000, by 1 task and by 8 concurrent tasks; the median
//! batch's ns per call) and its share of each operation's p50 under Keystone (the goal: under 5%);
//! and what an uncached validation costs (`--uncached` fresh tokens, default 5, each validated
//! once: Keystone's round trip), i.e. what every request would pay without the cache.
//!
//! `cargo bench -p tern --bench api_auth [-- --ports 2000 --queries 2000 --rounds 2
//! --validations 200000 --uncached 5 --json]` (`make bench-auth`). Progress on stderr, tables on
//! stdout, `--json` adds one JSON line.

#[path = "../../tern-api/benches/common/http.rs"]
mod http;
#[path = "../tests/common/keystone.rs"]
mod keystone;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{call, count, create, http_client, ms, pick, serve, timed, Spread, CLIENTS};
use keystone::{password, Keystone, KeystoneOptions};
use serde_json::json;
use tern_api::auth::keystone::{Credentials, Validator, ValidatorConfig};
use tern_api::{ApiState, Auth};
use tern_store::nb::Nb;
use tern_store::LocalStore;

/// The allocator `tern` runs with (see `crates/tern/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The cached validation must cost under this share of an operation's p50.
const GOAL_SHARE: f64 = 0.05;
const BATCH: usize = 1_000;
const LIST_LIMIT: usize = 50;

struct Args {
    ports: usize,
    queries: usize,
    validations: usize,
    uncached: usize,
    rounds: usize,
    json: bool,
}

fn args() -> Result<Args, String> {
    let mut a =
        Args { ports: 2_000, queries: 2_000, validations: 200_000, uncached: 5, rounds: 2, json: false };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bench" => {}
            "--json" => a.json = true,
            "--ports" => a.ports = count("--ports", it.next())?,
            "--queries" => a.queries = count("--queries", it.next())?,
            "--validations" => a.validations = count("--validations", it.next())?,
            "--uncached" => a.uncached = count("--uncached", it.next())?,
            "--rounds" => a.rounds = count("--rounds", it.next())?,
            other if !other.starts_with('-') && "api_auth".contains(other) => {}
            other if !other.starts_with('-') => std::process::exit(0),
            other => {
                return Err(format!(
                "unknown argument {other:?} (expected --ports, --queries, --validations, --uncached, --rounds, --json)"
            ))
            }
        }
    }
    Ok(a)
}

/// One run's latencies.
#[derive(Default)]
struct Samples {
    create: Vec<Duration>,
    device: Vec<Duration>,
    page: Vec<Duration>,
    wall: Duration,
}

impl Samples {
    fn add(&mut self, other: Samples) {
        self.create.extend(other.create);
        self.device.extend(other.device);
        self.page.extend(other.page);
        self.wall += other.wall;
    }

    fn outcome(self) -> Outcome {
        Outcome {
            create: Spread::of(self.create),
            device: Spread::of(self.device),
            page: Spread::of(self.page),
            wall: self.wall,
        }
    }
}

/// All rounds of one mode.
struct Outcome {
    create: Spread,
    device: Spread,
    page: Spread,
    wall: Duration,
}

/// One run: `auth` on a fresh store at `path`; the clients send `token`; `admin` (a token of an
/// administrator, if the API authenticates) lifts the port quota of `project`.
async fn run(
    label: &str,
    path: std::path::PathBuf,
    auth: Auth,
    token: Option<&str>,
    admin: Option<&str>,
    project: &str,
    a: &Args,
) -> Result<Samples, String> {
    let start = Instant::now();
    let store = LocalStore::open_redb(path).map_err(|e| format!("redb: {e}"))?;
    let nb = Nb::new(Arc::new(store));
    tern_api::prepare_store(&nb).await.map_err(|e| format!("{e:#}"))?;
    let served = serve(ApiState { auth, ..ApiState::new(nb) }).await?;
    let base = served.base.clone();
    let client = http_client(token)?;

    // The token's validation cached (a no-op without authentication).
    match call(&client, reqwest::Method::GET, &format!("{base}/v2.0/ports"), None).await? {
        (200, _) => {}
        (s, v) => return Err(format!("warm-up GET /v2.0/ports: {s}: {v}")),
    }
    let quota = http_client(admin)?
        .put(format!("{base}/v2.0/quotas/{project}"))
        .json(&json!({"quota": {"port": -1}}))
        .send()
        .await
        .map_err(|e| format!("PUT quota: {e}"))?;
    if !quota.status().is_success() {
        return Err(format!("PUT quota answered {}", quota.status()));
    }
    let net = create(
        &client,
        &format!("{base}/v2.0/networks"),
        json!({"network": {"name": "bench", "project_id": project}}),
        "network",
    )
    .await?;
    let subnet = json!({"subnet": {"network_id": net["id"], "cidr": "10.128.0.0/16", "ip_version": 4,
        "name": "bench", "project_id": project}});
    let sub = create(&client, &format!("{base}/v2.0/subnets"), subnet, "subnet").await?;
    let port_body = {
        let (net, sub, project) = (net["id"].clone(), sub["id"].clone(), project.to_string());
        move |device: String| {
            json!({"port": {"network_id": net, "project_id": project, "device_id": device,
                "fixed_ips": [{"subnet_id": sub}]}})
        }
    };
    // Warm-up: the connections, the project's default security group.
    let (url, body) = (format!("{base}/v2.0/ports"), port_body.clone());
    timed(format!("{label}: warm-up"), &client, CLIENTS, move |c, i| {
        let (url, body) = (url.clone(), body(format!("warm-{i}")));
        async move { create(&c, &url, body, "port").await.map(|_| ()) }
    })
    .await?;

    eprintln!("api_auth: {label}: {CLIENTS} clients create {} ports", a.ports);
    let (url, body) = (format!("{base}/v2.0/ports"), port_body.clone());
    let creates = timed(format!("{label}: creates"), &client, a.ports, move |c, i| {
        let (url, body) = (url.clone(), body(format!("vm-{i}")));
        async move {
            let port = create(&c, &url, body, "port").await?;
            match port["fixed_ips"][0]["ip_address"].as_str() {
                Some(_) => Ok(()),
                None => Err(format!("port vm-{i} has no address: {port}")),
            }
        }
    })
    .await?;

    eprintln!("api_auth: {label}: {} `?device_id=X` and {} `?limit={LIST_LIMIT}`", a.queries, a.queries);
    let (device_base, ports) = (base.clone(), a.ports);
    let device = timed(format!("{label}: ?device_id=X"), &client, a.queries, move |c, i| {
        let url = format!("{device_base}/v2.0/ports?device_id=vm-{}", pick(i, ports));
        async move {
            match call(&c, reqwest::Method::GET, &url, None).await? {
                (200, v) if v["ports"].as_array().is_some_and(|p| p.len() == 1) => Ok(()),
                (s, v) => Err(format!("GET {url}: {s}: not exactly one port: {v:.200}")),
            }
        }
    })
    .await?;
    let page_url = format!("{base}/v2.0/ports?limit={LIST_LIMIT}");
    let page = timed(format!("{label}: ?limit={LIST_LIMIT}"), &client, a.queries, move |c, _| {
        let url = page_url.clone();
        async move {
            match call(&c, reqwest::Method::GET, &url, None).await? {
                (200, v) if v["ports"].as_array().is_some_and(|p| p.len() == LIST_LIMIT) => Ok(()),
                (s, v) => Err(format!("GET {url}: {s}: not {LIST_LIMIT} ports: {:.200}", v.to_string())),
            }
        }
    })
    .await?;
    drop(served);
    let o = Samples { create: creates, device, page, wall: start.elapsed() };
    eprintln!("api_auth: {label}: done in {:.1} s", o.wall.as_secs_f64());
    Ok(o)
}

/// `validate(token)` of a cached token by `tasks` concurrent tasks, `total` calls in all, timed in
/// batches: the median batch's ns per call.
async fn cached_validation(
    v: &Arc<Validator>,
    token: &str,
    tasks: usize,
    total: usize,
) -> Result<f64, String> {
    let batches = (total / tasks / BATCH).max(1);
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (v, token) = (v.clone(), token.to_string());
        handles.push(tokio::spawn(async move {
            let mut per_call = Vec::with_capacity(batches);
            for _ in 0..batches {
                let t0 = Instant::now();
                for _ in 0..BATCH {
                    match v.validate(std::hint::black_box(&token)).await {
                        Ok(Some(c)) => {
                            std::hint::black_box(c);
                        }
                        other => return Err(format!("cached validation: {other:?}")),
                    }
                }
                per_call.push(t0.elapsed().as_nanos() as f64 / BATCH as f64);
            }
            Ok::<_, String>(per_call)
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.map_err(|e| format!("validation task: {e}"))??);
    }
    all.sort_by(f64::total_cmp);
    Ok(all[all.len() / 2])
}

/// Uncached validations: `n` fresh member tokens, each validated once; their latencies (ms).
async fn uncached_validation(ks: &Keystone, v: &Validator, n: usize) -> Result<Vec<f64>, String> {
    let mut out = Vec::new();
    for i in 0..n {
        let token = ks
            .token("alpha-member", &password("alpha-member"), "alpha")
            .await
            .map_err(|e| format!("a member token: {e:#}"))?;
        let t0 = Instant::now();
        match v.validate(&token).await {
            Ok(Some(_)) => out.push(ms(t0.elapsed())),
            other => return Err(format!("uncached validation: {other:?}")),
        }
        eprintln!("api_auth: uncached validation {}/{n}: {:.0} ms", i + 1, out[i]);
    }
    Ok(out)
}

struct Report {
    reference: Outcome,
    keystone: Outcome,
    cached_1: f64,
    cached_8: f64,
    uncached: Vec<f64>,
}

async fn bench(ks: &Keystone, a: &Args) -> Result<Report, String> {
    let project = ks.project_id("alpha");
    let member = ks
        .token("alpha-member", &password("alpha-member"), "alpha")
        .await
        .map_err(|e| format!("member token: {e:#}"))?;
    let admin =
        ks.token("tern", &password("tern"), "service").await.map_err(|e| format!("admin token: {e:#}"))?;
    let service = Credentials {
        auth_url: ks.url.clone(),
        username: "tern".into(),
        password: password("tern"),
        project_name: "service".into(),
        user_domain_name: "Default".into(),
        project_domain_name: "Default".into(),
        cafile: None,
    };
    let validator = Arc::new(Validator::new(ValidatorConfig::new(service)).map_err(|e| format!("{e:#}"))?);
    validator.check().await.map_err(|e| format!("service credentials: {e:#}"))?;

    let dir = tempfile::Builder::new().prefix("tern-bench-auth-").tempdir().map_err(|e| e.to_string())?;
    let (mut reference, mut keystone) = (Samples::default(), Samples::default());
    for round in 1..=a.rounds {
        // ABBA: neither mode always runs first.
        for keystone_run in [round % 2 == 0, round % 2 == 1] {
            let path = dir.path().join(format!("round-{round}-{keystone_run}.redb"));
            if keystone_run {
                let label = format!("keystone {round}/{}", a.rounds);
                eprintln!("api_auth: {label} (member token of alpha, cached)");
                let auth = Auth::Keystone(validator.clone());
                keystone.add(run(&label, path, auth, Some(&member), Some(&admin), &project, a).await?);
            } else {
                let label = format!("noauth {round}/{}", a.rounds);
                eprintln!("api_auth: {label} (reference, no authentication)");
                reference.add(run(&label, path, Auth::None, None, None, &project, a).await?);
            }
        }
    }
    let (reference, keystone) = (reference.outcome(), keystone.outcome());

    eprintln!("api_auth: {} cached validations, by 1 task then by {CLIENTS}", a.validations);
    cached_validation(&validator, &member, 1, a.validations / 10).await?;
    let cached_1 = cached_validation(&validator, &member, 1, a.validations).await?;
    let cached_8 = cached_validation(&validator, &member, CLIENTS, a.validations).await?;
    eprintln!("api_auth: {} uncached validations (Keystone's round trip)", a.uncached);
    let uncached = uncached_validation(ks, &validator, a.uncached).await?;
    Ok(Report { reference, keystone, cached_1, cached_8, uncached })
}

fn main() {
    let a = args().unwrap_or_else(|e| {
        eprintln!("api_auth: {e}");
        std::process::exit(2)
    });
    let started = Instant::now();
    let ks = Keystone::start(KeystoneOptions::default()).unwrap_or_else(|e| {
        eprintln!("api_auth: cannot start Keystone: {e:#}");
        std::process::exit(1)
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let r = match runtime.block_on(bench(&ks, &a)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("api_auth: FAILED: {e}\nkeystone's log:\n{}", ks.log_tail());
            std::process::exit(1)
        }
    };
    drop(ks);

    let mut uncached = r.uncached.clone();
    uncached.sort_by(f64::total_cmp);
    let uncached_p50 = uncached[uncached.len() / 2];
    // The goal is judged on the worse of the two cached figures.
    let cached_ms = r.cached_1.max(r.cached_8) / 1e6;
    let ops = [
        ("port create", r.reference.create, r.keystone.create),
        ("`GET /v2.0/ports?device_id=X`", r.reference.device, r.keystone.device),
        ("`GET /v2.0/ports?limit=50`", r.reference.page, r.keystone.page),
    ];
    println!();
    println!(
        "### API with Keystone auth, cached tokens ({CLIENTS} concurrent clients, redb, one /16 subnet; per run {} ports and {} queries of each list; {} runs of each mode)",
        a.ports, a.queries, a.rounds
    );
    println!();
    println!(
        "| op | noauth p50 / p99 (ms) | keystone p50 / p99 (ms) | difference p50 | difference p99 | cached validation share of keystone p50 |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, n, k) in &ops {
        println!(
            "| {name} | {} | {} | {:+.3} ms ({:+.1}%) | {:+.3} ms ({:+.1}%) | {:.3}% |",
            n.cell(),
            k.cell(),
            k.p50 - n.p50,
            (k.p50 / n.p50 - 1.0) * 100.0,
            k.p99 - n.p99,
            (k.p99 / n.p99 - 1.0) * 100.0,
            cached_ms / k.p50 * 100.0
        );
    }
    println!();
    println!("| validation | cost |");
    println!("| --- | ---: |");
    println!(
        "| cached `Validator::validate`, 1 task (median of batches of {BATCH}) | {:.0} ns |",
        r.cached_1
    );
    println!("| cached `Validator::validate`, {CLIENTS} concurrent tasks | {:.0} ns |", r.cached_8);
    println!(
        "| uncached (a new token each time: Keystone), median of {} (min-max) | {:.0} ms ({:.0}-{:.0}) |",
        uncached.len(),
        uncached_p50,
        uncached[0],
        uncached[uncached.len() - 1]
    );
    println!("| uncached / cached | {:.1} million x |", uncached_p50 / r.cached_1.max(r.cached_8));
    println!();
    for (name, _, k) in &ops {
        let share = cached_ms / k.p50;
        let verdict = if share < GOAL_SHARE { "met" } else { "NOT met" };
        println!(
            "Goal on {name}: the cached validation under {:.0}% of p50: {:.3}%, {verdict} (an uncached one would be {:.0}x the p50).",
            GOAL_SHARE * 100.0,
            share * 100.0,
            uncached_p50 / k.p50
        );
    }
    println!("Whole run: {:.0} s.", started.elapsed().as_secs_f64());
    if a.json {
        let op_json = |n: &Spread, k: &Spread| {
            json!({"noauth": n.json(), "keystone": k.json(),
                "difference_p50_ms": k.p50 - n.p50, "difference_p99_ms": k.p99 - n.p99,
                "cached_validation_share_of_p50": cached_ms / k.p50})
        };
        println!(
            "{}",
            json!({
                "bench": "api_auth", "clients": CLIENTS, "ports": a.ports, "queries": a.queries, "rounds": a.rounds,
                "port_create": op_json(&ops[0].1, &ops[0].2),
                "get_by_device": op_json(&ops[1].1, &ops[1].2),
                "get_page_of_50": op_json(&ops[2].1, &ops[2].2),
                "cached_validation_ns": {"one_task": r.cached_1, "concurrent_tasks": r.cached_8},
                "uncached_validation_ms": r.uncached,
                "goal_share": GOAL_SHARE,
                "seconds": {"noauth": r.reference.wall.as_secs_f64(), "keystone": r.keystone.wall.as_secs_f64(),
                    "total": started.elapsed().as_secs_f64()},
            })
        );
    }
}
