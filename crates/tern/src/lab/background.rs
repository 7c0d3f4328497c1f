//! `tern lab load` and `tern lab churn`: a background cloud in the lab's NB, beside the lab's own
//! networks and VMs, so that migrations can be measured on a busy NB.
//!
//! The cloud is [`tern_controller::synthetic`]'s (the benchmarks' generator): registered chassis
//! that stand for hypervisors elsewhere (NB records only: no OVS, no controller, no heartbeat),
//! tenant networks with DHCP subnets, VM ports bound to those chassis, routers on every 10th
//! network, one security group, floating IPs on 1% of the ports. It is named so that it cannot
//! meet the lab's own objects ([`naming`]): every id starts with `bg-` (the lab's chassis are
//! `hvN`, its networks and ports UUIDs), the tenant networks are in 100.0.0.0/8 (the lab's are
//! 10.K.0.0/24), its external network is on the physical network `bg-physnet1`, which no lab
//! hypervisor maps (the lab's is `physnet1`), and every unique key and VNI is allocated by the
//! store as for any other object.
//!
//! Objects are written straight to the NB, kind by kind in dependency order, many at a time:
//! on an `--nb etcd` lab to etcd itself; on an embedded lab (whose redb file belongs to the
//! control process) through a lab-only route of that process ([`ROUTE`], loopback, beside the
//! Neutron API), which writes them to its store. The sizes and seed go to `background.json` in
//! the lab directory, from which `tern lab churn` regenerates the same cloud.
//!
//! The churn moves a random background port's binding to another background chassis, R times a
//! second: a real NB change every lab controller receives and has to look at. It runs as the
//! lab's `churn` daemon (`churn.pid`, `churn.log`; `tern lab churn --stop` or `tern lab down` stop
//! it) or, with `--foreground`, in the terminal until ctrl-c or SIGTERM.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tern_controller::synthetic::{Cloud, Naming, Rng, Sizes};
use tern_lab::Lab;
use tern_model::{Kind, Object, Port};
use tern_store::nb::Nb;

use super::control::{self, ControlState, NbMode};
use super::{progress, secs};
use crate::exit::Exit;

/// The prefix of every background object's id.
pub const PREFIX: &str = "bg-";
/// The background cloud's physical network (no lab hypervisor has a bridge mapping for it).
pub const PHYSNET: &str = "bg-physnet1";
/// The first octet of the background tenant networks.
pub const TENANT_OCTET: u8 = 100;
/// The embedded control process' route that writes NB objects (lab only, loopback).
pub const ROUTE: &str = "/lab/v1/nb/objects";
/// The record of the loaded cloud, in the lab directory.
const RECORD: &str = "background.json";
/// The churn daemon's name (`churn.pid`, `churn.log`).
pub const CHURN: &str = "churn";
/// Writes in flight: in the embedded process (one redb file, beside the lab's controllers), and
/// to etcd.
const IN_FLIGHT_EMBEDDED: usize = 4;
const IN_FLIGHT_ETCD: usize = 32;
/// How often the churn prints a line.
const CHURN_REPORT: Duration = Duration::from_secs(10);
/// The largest cloud `tern lab load` accepts.
const MAX_PORTS: usize = 1_000_000;
const MAX_CHASSIS: usize = 65_535;
const MAX_NETWORKS: usize = 65_536;
/// Addresses a tenant /24 of the generator holds (.2 to .253).
const PORTS_PER_NETWORK: usize = 252;

#[derive(Args)]
pub struct LoadArgs {
    /// VM ports of the background cloud, each bound to one of its chassis.
    #[arg(long, default_value_t = 10_000)]
    ports: usize,
    /// Registered chassis: NB records only (no OVS, no controller, no heartbeat), standing for
    /// hypervisors elsewhere in the cloud.
    #[arg(long, default_value_t = 1_000)]
    chassis: usize,
    /// Tenant networks (default: one per 10 ports).
    #[arg(long)]
    networks: Option<usize>,
    /// The generator's seed (the same sizes and seed give the same cloud).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Then start the churn: R port updates a second (see `tern lab churn`).
    #[arg(long, value_name = "R")]
    churn: Option<f64>,
}

#[derive(Args)]
pub struct ChurnArgs {
    /// Port updates a second (each moves a random background port to another background chassis).
    #[arg(long, value_name = "R", default_value_t = 20.0)]
    rate: f64,
    /// Run in this terminal until ctrl-c or SIGTERM, instead of as the lab's `churn` daemon.
    #[arg(long)]
    foreground: bool,
    /// Stop the churn daemon (and print its last line).
    #[arg(long, conflicts_with = "foreground")]
    stop: bool,
}

/// `background.json`: what was loaded, enough to generate the same cloud again.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Background {
    pub prefix: String,
    pub physnet: String,
    pub tenant_octet: u8,
    pub chassis: usize,
    pub networks: usize,
    pub ports: usize,
    pub seed: u64,
    /// NB objects written.
    pub objects: usize,
    pub load_seconds: f64,
}

impl Background {
    pub fn read(dir: &Path) -> anyhow::Result<Option<Background>> {
        match std::fs::read(dir.join(RECORD)) {
            Ok(bytes) => {
                Ok(Some(serde_json::from_slice(&bytes).with_context(|| format!("reading {RECORD}"))?))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow!(e).context(format!("reading {RECORD}"))),
        }
    }

    fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::write(dir.join(RECORD), serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {RECORD}"))
    }

    fn sizes(&self) -> Sizes {
        Sizes { chassis: self.chassis, networks: self.networks, ports: self.ports }
    }

    fn naming(&self) -> Naming {
        Naming { prefix: self.prefix.clone(), physnet: self.physnet.clone(), tenant_octet: self.tenant_octet }
    }

    fn cloud(&self) -> Cloud {
        Cloud::with_naming(self.sizes(), self.seed, self.naming())
    }
}

/// How the background cloud's objects are named (see the module's doc).
pub fn naming() -> Naming {
    Naming { prefix: PREFIX.into(), physnet: PHYSNET.into(), tenant_octet: TENANT_OCTET }
}

/// Whether a chassis name is one of the background cloud's.
pub fn is_background(name: &str) -> bool {
    name.starts_with(PREFIX)
}

// === Writing to the lab's NB ===

/// Where the lab's NB is written from this process.
enum Writer {
    /// An etcd lab: the store itself.
    Direct(Nb),
    /// An embedded lab: its control process' [`ROUTE`].
    Embedded { url: String, http: reqwest::Client },
}

impl Writer {
    async fn open(dir: &Path) -> Result<Writer, Exit> {
        let control = ControlState::read(dir).map_err(|e| {
            Exit::bad_input(anyhow!("{e:#}: the lab has no control plane (did `tern lab up` finish?)"))
        })?;
        match control.mode {
            NbMode::Etcd => {
                let store = tern_store::open(&control.nb)
                    .await
                    .map_err(|e| Exit::failure(anyhow!("opening the lab's NB {}: {e}", control.nb)))?;
                Ok(Writer::Direct(Nb::new(store)))
            }
            NbMode::Embedded => {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .map_err(Exit::failure)?;
                Ok(Writer::Embedded { url: format!("{}{ROUTE}", control.api.trim_end_matches('/')), http })
            }
        }
    }

    /// Objects per [`Writer::put_all`] while loading (one request to the embedded process).
    fn batch(&self) -> usize {
        match self {
            Writer::Direct(_) => 1000,
            Writer::Embedded { .. } => 200,
        }
    }

    /// Writes `objects`, which must not depend on each other (any order, several at a time).
    async fn put_all(&self, objects: Vec<Object>) -> anyhow::Result<()> {
        match self {
            Writer::Direct(nb) => put_all(nb, objects, IN_FLIGHT_ETCD).await.map_err(|(_, e)| anyhow!(e)),
            Writer::Embedded { url, http } => {
                let body = json!({
                    "in_flight": IN_FLIGHT_EMBEDDED,
                    "objects": objects
                        .iter()
                        .map(|o| json!({"kind": o.kind().name(), "object": o.to_json_value()}))
                        .collect::<Vec<_>>(),
                });
                let resp = http.post(url.as_str()).json(&body).send().await.with_context(|| {
                    format!("POST {url} (is the lab's control process running? `tern lab status`)")
                })?;
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                if !status.is_success() {
                    let msg = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v["error"].as_str().map(str::to_owned))
                        .unwrap_or(text);
                    bail!("POST {url}: HTTP {}: {msg}", status.as_u16());
                }
                Ok(())
            }
        }
    }
}

/// Puts `objects` with up to `in_flight` writes at a time; the first failure ends it (true when
/// the objects themselves were wrong).
pub async fn put_all(nb: &Nb, objects: Vec<Object>, in_flight: usize) -> Result<(), (bool, String)> {
    let mut tasks = tokio::task::JoinSet::new();
    let mut objects = objects.into_iter();
    let mut failure = None;
    loop {
        while failure.is_none() && tasks.len() < in_flight.max(1) {
            let Some(o) = objects.next() else { break };
            let nb = nb.clone();
            tasks.spawn(async move {
                let what = format!("{} {}", o.kind().name(), o.id());
                nb.put(o).await.map(|_| ()).map_err(|e| (e.is_bad_input(), format!("{what}: {e}")))
            });
        }
        match tasks.join_next().await {
            Some(Ok(Ok(()))) => {}
            Some(Ok(Err(e))) => {
                failure.get_or_insert(e);
            }
            Some(Err(e)) => {
                failure.get_or_insert((false, format!("a write panicked: {e}")));
            }
            None => break,
        }
    }
    failure.map_or(Ok(()), Err)
}

/// The embedded control process' [`ROUTE`]: `{"objects": [{"kind": K, "object": {...}}, ...],
/// "in_flight": N}` puts the objects (independent of each other) with up to N writes at a time.
pub fn routes(nb: Nb) -> axum::Router {
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::Json;

    async fn put(State(nb): State<Arc<Nb>>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
        let bad = |msg: String| (StatusCode::BAD_REQUEST, Json(json!({ "error": msg })));
        let Some(items) = body["objects"].as_array() else {
            return bad("no \"objects\" list".into());
        };
        let mut objects = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let Some(kind) = item["kind"].as_str().and_then(Kind::from_name) else {
                return bad(format!("objects[{i}]: no known \"kind\""));
            };
            match Object::from_json_value(kind, item["object"].clone()) {
                Ok(o) => objects.push(o),
                Err(e) => return bad(format!("objects[{i}]: {e}")),
            }
        }
        let n = objects.len();
        let in_flight = body["in_flight"].as_u64().unwrap_or(1).clamp(1, 64) as usize;
        match put_all(&nb, objects, in_flight).await {
            Ok(()) => (StatusCode::OK, Json(json!({ "written": n }))),
            Err((true, msg)) => bad(msg),
            Err((false, msg)) => (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "error": msg }))),
        }
    }

    axum::Router::new()
        .route(ROUTE, axum::routing::post(put))
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
        .with_state(Arc::new(nb))
}

// === tern lab load ===

/// Checks `tern lab load`'s sizes; returns the number of networks.
fn check_sizes(args: &LoadArgs) -> anyhow::Result<usize> {
    let networks = args.networks.unwrap_or((args.ports / 10).max(1));
    if args.chassis == 0 {
        bail!("--chassis 0: the background cloud needs at least one chassis");
    }
    if args.ports == 0 {
        bail!("--ports 0: the background cloud needs at least one port");
    }
    if args.chassis > args.ports {
        bail!(
            "--chassis {} is more than --ports {}: every chassis should hold a port",
            args.chassis,
            args.ports
        );
    }
    if networks == 0 {
        bail!("--networks 0: the background cloud needs at least one network");
    }
    if args.ports > MAX_PORTS || args.chassis > MAX_CHASSIS || networks > MAX_NETWORKS {
        bail!("at most {MAX_PORTS} ports, {MAX_CHASSIS} chassis and {MAX_NETWORKS} networks");
    }
    if let Some(r) = args.churn {
        check_rate(r)?;
    }
    Ok(networks)
}

fn check_rate(rate: f64) -> anyhow::Result<()> {
    if !(rate > 0.0 && rate <= 10_000.0) {
        bail!("a churn rate is a number of updates a second above 0 and at most 10000 (got {rate})");
    }
    Ok(())
}

/// `tern lab load`.
pub async fn load(lab: &Lab, args: LoadArgs) -> Result<(), Exit> {
    let dir = lab.dir();
    let networks = check_sizes(&args).map_err(Exit::bad_input)?;
    if let Some(bg) = Background::read(dir).map_err(Exit::failure)? {
        return Err(Exit::bad_input(anyhow!(
            "this lab holds a background cloud already ({} ports on {} chassis); one per lab (`tern lab down` and up again for another)",
            bg.ports,
            bg.chassis
        )));
    }
    let writer = Writer::open(dir).await?;
    let started = Instant::now();
    let sizes = Sizes { chassis: args.chassis, networks, ports: args.ports };
    let cloud = Cloud::with_naming(sizes, args.seed, naming());
    // The generator gives a network's ports .2 to .253 and wraps around after that.
    let mut per_network: BTreeMap<usize, usize> = BTreeMap::new();
    for (n, _) in cloud.placement.values() {
        *per_network.entry(*n).or_default() += 1;
    }
    if let Some((_, most)) =
        per_network.iter().max_by_key(|(_, c)| **c).filter(|(_, c)| **c > PORTS_PER_NETWORK)
    {
        return Err(Exit::bad_input(anyhow!(
            "{} ports on {networks} networks put {most} on one network, which holds {PORTS_PER_NETWORK}: give more --networks",
            args.ports
        )));
    }
    let total = cloud.objects.len();
    let mut by_kind: BTreeMap<Kind, Vec<Object>> = BTreeMap::new();
    for o in cloud.objects {
        by_kind.entry(o.kind()).or_default().push(store_keys(o));
    }
    progress(format!(
        "loading a background cloud into the lab's NB: {} ports on {} chassis, {networks} networks ({total} objects, prefix {PREFIX})",
        args.ports, args.chassis
    ));
    let mut done = 0usize;
    let mut last_report = Instant::now();
    for kind in tern_controller::synthetic::WRITE_ORDER {
        let objects = by_kind.remove(&kind).unwrap_or_default();
        let of_kind = objects.len();
        let mut written = 0;
        let mut rest = objects.into_iter().peekable();
        while rest.peek().is_some() {
            let batch: Vec<Object> = rest.by_ref().take(writer.batch()).collect();
            let n = batch.len();
            writer
                .put_all(batch)
                .await
                .map_err(|e| Exit::failure(e.context(format!("loading {}", kind.plural()))))?;
            written += n;
            done += n;
            if last_report.elapsed() >= Duration::from_secs(2) || written == of_kind {
                last_report = Instant::now();
                progress(format!(
                    "loaded {done}/{total} objects ({} {written}/{of_kind}; {:.1} s)",
                    kind.plural(),
                    secs(started)
                ));
            }
        }
    }
    if let Some((kind, left)) = by_kind.into_iter().next() {
        return Err(Exit::failure(anyhow!(
            "{} {} were not loaded (no place in the load order)",
            left.len(),
            kind.plural()
        )));
    }
    let record = Background {
        prefix: PREFIX.into(),
        physnet: PHYSNET.into(),
        tenant_octet: TENANT_OCTET,
        chassis: args.chassis,
        networks,
        ports: args.ports,
        seed: args.seed,
        objects: total,
        load_seconds: secs(started),
    };
    record.write(dir).map_err(Exit::failure)?;
    println!(
        "background cloud loaded: {} ports on {} chassis, {networks} networks, {total} NB objects in {:.1} s",
        args.ports, args.chassis, record.load_seconds
    );
    if let Some(rate) = args.churn {
        let pid = start_churn(lab, rate).await?;
        println!(
            "churn: {rate} port updates a second (pid {pid}, log {})",
            control::logfile(dir, CHURN).display()
        );
    }
    Ok(())
}

/// The object with its unique key (and a network's VNI) left for the store to allocate, so that
/// it cannot meet the keys of the lab's own objects.
fn store_keys(mut o: Object) -> Object {
    if o.unique_key().is_some() {
        o.set_unique_key(0);
    }
    if let Object::Network(n) = &mut o {
        n.segmentation_id = None;
    }
    o
}

// === tern lab churn ===

/// `tern lab churn`: start (daemon), `--foreground`, or `--stop`.
pub async fn churn(lab: &Lab, args: ChurnArgs) -> Result<(), Exit> {
    let dir = lab.dir();
    if args.stop {
        return match control::stop_recorded(dir, CHURN).await {
            Some(pid) => {
                // Its closing summary, not whatever it logged after it while shutting down (a
                // store client may warn about a connection closed under it).
                let tail = control::log_tail(dir, CHURN);
                let summary = tail.lines().rev().find(|l| l.starts_with("churn: stopped:"));
                let summary = summary.or_else(|| tail.lines().last()).unwrap_or("no log");
                println!("churn stopped (pid {pid}): {summary}");
                Ok(())
            }
            None => Err(Exit::bad_input(anyhow!("no churn runs in this lab"))),
        };
    }
    if args.foreground {
        return churn_foreground(dir, args.rate).await;
    }
    let pid = start_churn(lab, args.rate).await?;
    println!(
        "churn: {} port updates a second (pid {pid}, log {})",
        args.rate,
        control::logfile(dir, CHURN).display()
    );
    Ok(())
}

/// Starts the churn daemon and waits until it has written once.
async fn start_churn(lab: &Lab, rate: f64) -> Result<u32, Exit> {
    let dir = lab.dir();
    check_rate(rate).map_err(Exit::bad_input)?;
    background_of(dir)?;
    if let Some(pid) = control::live_pid(dir, CHURN) {
        return Err(Exit::bad_input(anyhow!(
            "a churn runs already (pid {pid}; `tern lab churn --stop` first)"
        )));
    }
    let argv = vec![
        control::tern_exe().map_err(Exit::failure)?,
        "lab".into(),
        "churn".into(),
        "--foreground".into(),
        "--rate".into(),
        rate.to_string(),
        "--dir".into(),
        dir.display().to_string(),
    ];
    let log_len = std::fs::metadata(control::logfile(dir, CHURN)).map_or(0, |m| m.len());
    let pid = control::spawn_recorded(dir, CHURN, &argv).map_err(Exit::failure)?;
    super::poll("the churn's first update", Duration::from_secs(30), || async move {
        let text = std::fs::read(control::logfile(dir, CHURN)).unwrap_or_default();
        let text = String::from_utf8_lossy(text.get(log_len as usize..).unwrap_or_default()).into_owned();
        if text.contains("churn: first update written") {
            return Ok(Some(()));
        }
        if control::live_pid(dir, CHURN) != Some(pid) {
            bail!("the churn (pid {pid}) exited:\n{text}");
        }
        Ok(None)
    })
    .await
    .map_err(Exit::failure)?;
    Ok(pid)
}

fn background_of(dir: &Path) -> Result<Background, Exit> {
    Background::read(dir)
        .map_err(Exit::failure)?
        .ok_or_else(|| Exit::bad_input(anyhow!("this lab holds no background cloud (`tern lab load` first)")))
}

/// The churn in this process, until ctrl-c or SIGTERM. Each update is written on its own task
/// (up to [`CHURN_IN_FLIGHT`] at a time), so that a slow write does not lower the rate; a tick
/// that finds them all busy is skipped and counted.
async fn churn_foreground(dir: &Path, rate: f64) -> Result<(), Exit> {
    check_rate(rate).map_err(Exit::bad_input)?;
    let bg = background_of(dir)?;
    if bg.chassis < 2 {
        return Err(Exit::bad_input(anyhow!(
            "the churn moves ports between background chassis: the background cloud has only {}",
            bg.chassis
        )));
    }
    let cloud = bg.cloud();
    let chassis: Vec<String> = (0..bg.chassis).map(|c| cloud.chassis_name(c)).collect();
    // Every VM port as loaded (keys left to the store, which keeps the stored ones), and the
    // chassis it was last moved to.
    let mut ports: Vec<(Port, usize)> = cloud
        .objects
        .iter()
        .filter_map(|o| match o {
            Object::Port(p) => cloud.placement.get(&p.id).map(|(_, c)| (p.clone(), *c)),
            _ => None,
        })
        .collect();
    for (p, _) in &mut ports {
        p.unique_key = 0;
        p.revision_number = 0;
    }
    let writer = Arc::new(Writer::open(dir).await?);
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    let mut rng = Rng::new(seed);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut report = tokio::time::interval_at(tokio::time::Instant::now() + CHURN_REPORT, CHURN_REPORT);
    let stop = crate::signals::terminated();
    tokio::pin!(stop);
    println!(
        "churn: {rate} updates a second over {} background ports on {} chassis (pid {})",
        ports.len(),
        chassis.len(),
        std::process::id()
    );
    let started = Instant::now();
    let mut writes: tokio::task::JoinSet<(usize, Duration, anyhow::Result<String>)> =
        tokio::task::JoinSet::new();
    // The ports with a write out: not picked again until it is done (two writes of one port at
    // once would race, and the loser would fail on the revision).
    let mut busy = std::collections::HashSet::new();
    let mut t = ChurnTally::default();
    let mut window = ChurnTally::default();
    let mut window_start = Instant::now();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(done) = writes.join_next(), if !writes.is_empty() => {
                let (i, took, res) =
                    done.unwrap_or_else(|e| (usize::MAX, Duration::ZERO, Err(anyhow!("the write panicked: {e}"))));
                busy.remove(&i);
                for tally in [&mut t, &mut window] {
                    tally.slowest = tally.slowest.max(took);
                    match &res {
                        Ok(_) => tally.written += 1,
                        Err(e) => {
                            tally.errors += 1;
                            tally.last_error = Some(format!("{e:#}"));
                        }
                    }
                }
                if let (1, Ok(what)) = (t.written, &res) {
                    println!("churn: first update written ({what})");
                }
            }
            _ = report.tick() => {
                let over = window_start.elapsed().as_secs_f64();
                println!("churn: {} in {:.0} s; last {over:.0} s: {}", t.totals(), secs(started), window.line(over));
                (window, window_start) = (ChurnTally::default(), Instant::now());
            }
            _ = tick.tick() => {
                if writes.len() >= CHURN_IN_FLIGHT || busy.len() >= ports.len() {
                    t.skipped += 1;
                    window.skipped += 1;
                    continue;
                }
                let mut i = rng.below(ports.len());
                while busy.contains(&i) {
                    i = rng.below(ports.len());
                }
                busy.insert(i);
                let (port, on) = &mut ports[i];
                let to = (*on + 1 + rng.below(chassis.len() - 1)) % chassis.len();
                *on = to;
                port.binding_host_id = chassis[to].clone();
                let moved = Object::Port(port.clone());
                let what = format!("{} -> {}", port.id, chassis[to]);
                let writer = writer.clone();
                writes.spawn(async move {
                    let begun = Instant::now();
                    let res = writer.put_all(vec![moved]).await.map(|()| what);
                    (i, begun.elapsed(), res)
                });
            }
        }
    }
    let elapsed = secs(started);
    println!("churn: stopped: {} in {elapsed:.0} s: {}", t.totals(), t.line(elapsed));
    Ok(())
}

/// Writes the churn keeps in flight at most.
const CHURN_IN_FLIGHT: usize = 16;

/// What the churn did, in all or over its last report's window.
#[derive(Default)]
struct ChurnTally {
    written: u64,
    errors: u64,
    /// Ticks that found [`CHURN_IN_FLIGHT`] writes still out.
    skipped: u64,
    slowest: Duration,
    last_error: Option<String>,
}

impl ChurnTally {
    fn totals(&self) -> String {
        format!("{} updates, {} errors", self.written, self.errors)
    }

    fn line(&self, over_secs: f64) -> String {
        let mut l = format!(
            "{:.1} updates/s, slowest write {} ms, {} errors, {} ticks skipped",
            self.written as f64 / over_secs.max(1e-9),
            self.slowest.as_millis(),
            self.errors,
            self.skipped
        );
        if let Some(e) = &self.last_error {
            l.push_str(&format!(" (last error: {e})"));
        }
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(ports: usize, chassis: usize, networks: Option<usize>) -> LoadArgs {
        LoadArgs { ports, chassis, networks, seed: 1, churn: None }
    }

    #[test]
    fn sizes_are_checked() {
        assert_eq!(check_sizes(&args(10_000, 1_000, None)).unwrap(), 1_000);
        assert_eq!(check_sizes(&args(5, 1, None)).unwrap(), 1);
        for (bad, why) in [
            (args(100, 0, None), "at least one chassis"),
            (args(0, 0, None), "at least one chassis"),
            (args(10, 20, None), "more than --ports"),
            (args(10, 2, Some(0)), "at least one network"),
            (args(2_000_000, 2, None), "at most"),
        ] {
            let e = check_sizes(&bad).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
        let mut a = args(10, 2, None);
        a.churn = Some(0.0);
        assert!(check_sizes(&a).is_err());
    }

    #[test]
    fn loaded_objects_leave_keys_to_the_store_and_keep_the_prefix() {
        let cloud = Cloud::with_naming(Sizes { chassis: 3, networks: 4, ports: 30 }, 1, naming());
        for o in cloud.objects.into_iter().map(store_keys) {
            assert!(o.id().starts_with(PREFIX), "{o:?}");
            assert!(matches!(o.unique_key(), None | Some(0)), "{o:?}");
            if let Object::Network(n) = &o {
                assert_eq!(n.segmentation_id, None);
            }
        }
    }
}
