//! `tern lab migrate`: one live migration driven the way Nova drives it — an inactive destination
//! binding, the destination plug, the switchover, the source unplug and the binding activation, in
//! the order the trigger asks for — measured with real packets: a two-way sequence-numbered UDP
//! stream (`tern_lab::stream`) between the VM and a peer on another hypervisor of its network.
//!
//! [`migrate_once`] is one such migration and its [`MigrationReport`]; `--repeat N` runs N of them
//! back and forth and sums them up ([`Summary`]); `tern lab demo` runs its own.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use clap::{Args, ValueEnum};
use serde::Serialize;
use serde_json::{json, Value};
use tern_lab::stream::{self, DirectionStats, StreamLog, Window};
use tern_lab::{Lab, SwitchOptions, Vm};
use tern_model::{Kind, Migration, Object};
use tern_store::nb::{Nb, NbEvent};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::{mpsc, oneshot};

use super::control::ControlState;
use super::{api, ping_vms, progress, same_subnet};
use crate::exit::Exit;

/// The UDP port both processes of the L2 probe listen on (each in its own namespace); the L3
/// probe uses the next one and the floating-IP probe the one after.
const PROBE_PORT: u16 = 47474;
/// The floating-IP probe's peer: the lab's external host.
const EXTERNAL_PEER: &str = "external";
/// How long probes may take to flow at all before the migration starts (ARP, flows, process start).
const WARM_UP: Duration = Duration::from_secs(60);
/// Steady probing before the switchover, so the destination is pre-programmed as Nova's wait for
/// `network-vif-plugged` would ensure.
const SETTLE: Duration = Duration::from_millis(1000);
/// Probing after the last step.
const TAIL: Duration = Duration::from_millis(1500);
/// Probes sent this close to the stop may still be in flight: they are not judged.
const IN_FLIGHT: Duration = Duration::from_millis(200);

#[derive(Args)]
pub struct MigrateArgs {
    /// The VM to migrate.
    vm: String,
    /// The destination hypervisor (hvN or N).
    #[arg(long)]
    to: String,
    /// What tells the network the VM now runs on the destination first.
    #[arg(long, value_enum, default_value_t = Trigger::Rarp)]
    trigger: Trigger,
    /// The probe interval in each direction, in ms (1 = 1 kHz; fractions allowed).
    #[arg(long, default_value_t = 1.0)]
    probe_interval_ms: f64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Ask the controllers not to deliver the VM's traffic to both ends during this migration
    /// (destination binding profile `{"tern:dual_delivery": false}`): it moves only at activation.
    #[arg(long)]
    no_dual_delivery: bool,
    /// Migrate N times, back and forth between the VM's hypervisor and --to, each with its own
    /// probes; N > 1 also prints a summary (median, p99 and max blackout per direction).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Start the migration (destination binding and plug), then roll it back as Nova does when a
    /// migration fails before the switchover (destination unplugged, its binding deleted); checks
    /// that the record goes and the VM still reaches its peer.
    #[arg(long, conflicts_with_all = ["repeat", "trigger"])]
    abort: bool,
    /// Which probes to run, among those the VM has: `l2` (always), `l3` (through its router,
    /// with a VM of another network) and `fip` (through its floating IP, with the external host).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "l2,l3,fip")]
    probes: Vec<ProbeKind>,
}

/// A kind of migration probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProbeKind {
    L2,
    L3,
    Fip,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The VM announces itself (GARP) as it resumes; source unplug +200 ms, API +500 ms.
    Rarp,
    /// No announcement; the source VIF is unplugged at the switchover, API +500 ms.
    Unplug,
    /// No announcement; the destination binding is activated at the switchover, unplug +500 ms.
    Api,
}

impl Trigger {
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Rarp => "rarp",
            Trigger::Unplug => "unplug",
            Trigger::Api => "api",
        }
    }
}

// === The Neutron calls Nova makes ===

/// The three binding calls of Nova's live migration (the lab's `Api` keeps its request helper
/// private).
struct Nova {
    base: String,
    http: reqwest::Client,
}

impl Nova {
    fn open(dir: &Path) -> anyhow::Result<Nova> {
        let control = ControlState::read(dir)?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        Ok(Nova { base: control.api.trim_end_matches('/').to_owned(), http })
    }

    /// One request; returns the status and Neutron's message for non-2xx answers.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, String)> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let msg = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["NeutronError"]["message"].as_str().map(str::to_owned))
            .unwrap_or(text);
        Ok((status, msg))
    }

    /// `POST /v2.0/ports/{id}/bindings`: the inactive destination binding, whose profile says
    /// `{"tern:dual_delivery": false}` when the controllers are not to deliver to both ends. One
    /// left by an earlier attempt is replaced, so that its profile is this migration's.
    async fn create_binding(&self, port: &str, host: &str, dual_delivery: bool) -> anyhow::Result<()> {
        let mut binding = json!({"host": host});
        if !dual_delivery {
            binding["profile"] = json!({ Migration::PROFILE_DUAL_DELIVERY: false });
        }
        let path = format!("/v2.0/ports/{port}/bindings");
        let body = json!({ "binding": binding });
        match self.call(reqwest::Method::POST, &path, Some(body.clone())).await? {
            (201 | 200, _) => return Ok(()),
            (409, m) if m.contains("already exists") => {
                progress(format!("binding of {port} on {host} exists already: replacing it"));
            }
            (s, m) => bail!("POST {path} (host {host}): HTTP {s}: {m}"),
        }
        self.delete_binding(port, host).await?;
        match self.call(reqwest::Method::POST, &path, Some(body)).await? {
            (201 | 200, _) => Ok(()),
            (s, m) => bail!("POST {path} (host {host}): HTTP {s}: {m}"),
        }
    }

    /// `PUT /v2.0/ports/{id}/bindings/{host}/activate`.
    async fn activate(&self, port: &str, host: &str) -> anyhow::Result<()> {
        let path = format!("/v2.0/ports/{port}/bindings/{host}/activate");
        match self.call(reqwest::Method::PUT, &path, None).await? {
            (200, _) => Ok(()),
            (409, m) if m.contains("already active") => Ok(()),
            (s, m) => bail!("PUT {path}: HTTP {s}: {m}"),
        }
    }

    /// `DELETE /v2.0/ports/{id}/bindings/{host}`: Nova's clean-up of the source binding.
    async fn delete_binding(&self, port: &str, host: &str) -> anyhow::Result<()> {
        let path = format!("/v2.0/ports/{port}/bindings/{host}");
        match self.call(reqwest::Method::DELETE, &path, None).await? {
            (204 | 200 | 404, _) => Ok(()),
            (s, m) => bail!("DELETE {path}: HTTP {s}: {m}"),
        }
    }
}

// === The probe processes ===

/// One `tern lab probe-stream` process inside a VM namespace.
struct ProbeProc {
    vm: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    flowing_in: bool,
    flowing_out: bool,
}

impl ProbeProc {
    /// A probe inside VM `vm`, listening on `port` and probing `target:port`.
    fn spawn(
        lab: &Lab,
        vm: &str,
        target: std::net::Ipv4Addr,
        port: u16,
        interval_us: u64,
    ) -> anyhow::Result<ProbeProc> {
        let exe = std::env::current_exe().context("locating the tern binary")?;
        let c = lab.vm_command(vm, &exe.display().to_string())?;
        Self::spawn_with(c, vm, target, port, interval_us)
    }

    /// A probe on the external host (the lab's external namespace).
    fn spawn_external(
        lab: &Lab,
        target: std::net::Ipv4Addr,
        port: u16,
        interval_us: u64,
    ) -> anyhow::Result<ProbeProc> {
        let exe = std::env::current_exe().context("locating the tern binary")?;
        let c = lab.external_command(&exe.display().to_string())?;
        Self::spawn_with(c, EXTERNAL_PEER, target, port, interval_us)
    }

    /// Runs `tern lab probe-stream` with command `c` (a namespace's `ip netns exec ... tern`);
    /// `vm` names where it runs, for errors.
    fn spawn_with(
        mut c: tokio::process::Command,
        vm: &str,
        target: std::net::Ipv4Addr,
        port: u16,
        interval_us: u64,
    ) -> anyhow::Result<ProbeProc> {
        c.args([
            "lab",
            "probe-stream",
            &port.to_string(),
            &format!("{target}:{port}"),
            &interval_us.to_string(),
            "300",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        let mut child = c.spawn().with_context(|| format!("starting the probe in VM {vm}"))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut r = BufReader::new(stdout).lines();
            while let Ok(Some(l)) = r.next_line().await {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Ok(ProbeProc { vm: vm.to_owned(), child, stdin, lines, flowing_in: false, flowing_out: false })
    }

    /// Takes the events printed so far; errors if the process ended.
    fn poll(&mut self) -> anyhow::Result<()> {
        while let Ok(l) = self.lines.try_recv() {
            match serde_json::from_str::<Value>(&l).ok().and_then(|v| v["event"].as_str().map(str::to_owned))
            {
                Some(e) if e == "first_rx" => self.flowing_in = true,
                Some(e) if e == "first_echo" => self.flowing_out = true,
                _ => {}
            }
        }
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!("the probe in VM {} exited early ({status})", self.vm);
        }
        Ok(())
    }

    /// Stops the process and returns its log.
    async fn finish(mut self) -> anyhow::Result<StreamLog> {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"stop\n").await;
        }
        let done = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(l) = self.lines.recv().await {
                if l.contains("\"done\"") {
                    return Some(l);
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), e.read_to_string(&mut err)).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        let line = done.ok_or_else(|| anyhow!("the probe in VM {} gave no log: {}", self.vm, err.trim()))?;
        serde_json::from_str(&line).with_context(|| format!("reading the probe log of VM {}", self.vm))
    }
}

/// One probe kind: a process at the peer's end (`to_vm` sends toward the VM) and one in the VM.
struct Probe {
    /// `l2`, `l3` or `fip`.
    kind: &'static str,
    /// The peer VM's name, or [`EXTERNAL_PEER`].
    peer: String,
    to_vm: ProbeProc,
    from_vm: ProbeProc,
}

// === The controller's Migration record (NB watch) ===

/// A Migration record as the watch delivered it, and when.
struct Seen {
    at_us: u64,
    record: Option<Migration>,
}

/// Watches the NB for the port's Migration record until told to stop. Only reachable in labs
/// whose NB is a shared store (etcd); the embedded lab's redb file belongs to its control process.
async fn watch_migration(
    dir: &Path,
    port: String,
) -> Result<(oneshot::Sender<()>, tokio::task::JoinHandle<Vec<Seen>>), String> {
    let control = ControlState::read(dir).map_err(|e| format!("{e:#}"))?;
    if !control.nb.starts_with("etcd://") {
        return Err(format!(
            "the NB ({}) is held by the embedded control process; its Migration record is not readable from here (an --nb etcd lab shows it)",
            control.nb
        ));
    }
    let store = tern_store::open(&control.nb).await.map_err(|e| format!("opening {}: {e}", control.nb))?;
    let mut watch = Nb::new(store).watch(0).await.map_err(|e| format!("watching {}: {e}", control.nb))?;
    let (stop_tx, mut stop_rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                ev = watch.next() => match ev {
                    Some(Ok(NbEvent::Put { object, .. })) => {
                        if let Object::Migration(m) = *object {
                            if m.port_id == port {
                                seen.push(Seen { at_us: stream::now_us(), record: Some(m) });
                            }
                        }
                    }
                    Some(Ok(NbEvent::Delete { kind: Kind::Migration, id, .. })) if id == port => {
                        seen.push(Seen { at_us: stream::now_us(), record: None });
                    }
                    Some(_) => {}
                    None => break,
                },
            }
        }
        seen
    });
    Ok((stop_tx, task))
}

// === The migration ===

/// Lab-side times of each step, µs since the epoch.
#[derive(Default)]
struct Steps {
    binding_created: u64,
    preplugged: u64,
    probes_flowing: u64,
    switch_started: u64,
    t0: u64,
    unplug: (u64, u64),
    activate: (u64, u64),
    probes_stopped: u64,
}

fn rel(us: u64, t0: u64) -> f64 {
    ((us as i64 - t0 as i64) as f64 / 10.0).round() / 100.0
}

/// The peer: a VM of the same network on another hypervisor, preferring one on neither end of
/// the migration.
async fn find_peer(lab: &Lab, vm: &Vm, dest: u32) -> Result<Vm, Exit> {
    let networks = match api::Api::open(lab.dir()) {
        Ok(a) => a.port_networks().await.ok(),
        Err(_) => None,
    };
    let network = networks.as_ref().and_then(|n| n.get(vm.iface_id()).cloned());
    let same_net = |o: &Vm| match (&networks, &network) {
        (Some(n), Some(net)) => n.get(o.iface_id()) == Some(net),
        _ => same_subnet(vm, o),
    };
    let mut peers: Vec<&Vm> = lab
        .vms()
        .iter()
        .filter(|o| o.name() != vm.name() && o.hv() != vm.hv() && same_net(o))
        .filter(|o| o.preplugged().is_none())
        .collect();
    peers.sort_by_key(|o| (o.hv() == dest, o.name().to_owned()));
    match peers.first() {
        Some(p) => Ok((*p).clone()),
        None => Err(Exit::bad_input(anyhow!(
            "VM {} has no peer to probe: add a VM on {} on another hypervisor than hv{}",
            vm.name(),
            network.as_deref().map_or_else(|| "its subnet".to_owned(), |n| format!("network {n}")),
            vm.hv()
        ))),
    }
}

/// The routed peer: a VM of another network behind a router the VM's network is on, on neither
/// end of the migration if possible (never on the destination); none when there is no such VM.
async fn find_routed_peer(lab: &Lab, vm: &Vm, dest: u32) -> Option<Vm> {
    let api = api::Api::open(lab.dir()).ok()?;
    let networks = api.port_networks().await.ok()?;
    let routers = api.routers_by_network().await.ok()?;
    let mine = networks.get(vm.iface_id())?;
    let my_routers = routers.get(mine)?;
    let mut peers: Vec<&Vm> = lab
        .vms()
        .iter()
        .filter(|o| o.name() != vm.name() && o.hv() != dest && o.preplugged().is_none())
        .filter(|o| {
            networks.get(o.iface_id()).is_some_and(|n| {
                n != mine && routers.get(n).is_some_and(|rs| rs.iter().any(|r| my_routers.contains(r)))
            })
        })
        .collect();
    peers.sort_by_key(|o| (o.hv() == vm.hv(), o.name().to_owned()));
    peers.first().map(|p| (*p).clone())
}

/// `tern lab migrate`: one migration, or `--repeat N` back and forth between the VM's hypervisor
/// and `--to` with a summary.
pub async fn run(lab: &mut Lab, args: MigrateArgs) -> Result<(), Exit> {
    let dest = super::parse_hv(&args.to)?;
    if args.abort {
        return abort(lab, &args.vm, dest, !args.no_dual_delivery).await;
    }
    let Some(vm) = lab.vm(&args.vm) else {
        return Err(Exit::bad_input(anyhow!("no VM named {} in this lab", args.vm)));
    };
    let origin = vm.hv();
    let n = args.repeat;
    let mut reports: Vec<MigrationReport> = Vec::new();
    let mut failure = None;
    for i in 0..n {
        let plan = Plan {
            vm: args.vm.clone(),
            dest: if i % 2 == 0 { dest } else { origin },
            trigger: args.trigger,
            dual_delivery: !args.no_dual_delivery,
            probe_interval_ms: args.probe_interval_ms,
            probes: args.probes.clone(),
        };
        match migrate_once(lab, &plan).await {
            Ok(r) => {
                if n > 1 {
                    progress(format!(
                        "migration {}/{n}: blackout to_vm {} ms from_vm {} ms",
                        i + 1,
                        fmt_ms(r.l2.blackout_ms.to_vm),
                        fmt_ms(r.l2.blackout_ms.from_vm)
                    ));
                }
                if !r.ping_ok {
                    let after =
                        if n > 1 { format!("migration {}/{n}", i + 1) } else { "the migration".into() };
                    failure = Some(Exit::failure(anyhow!(
                        "{} and {} do not reach each other after {after}",
                        r.vm,
                        r.l2.peer
                    )));
                }
                reports.push(r);
            }
            Err(e) => {
                if n > 1 && i > 0 {
                    progress(format!("migration {}/{n} failed: {:#}", i + 1, e.error));
                }
                failure = Some(e);
            }
        }
        if failure.is_some() {
            break;
        }
    }
    if n == 1 {
        if let Some(r) = reports.first() {
            if args.json {
                println!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
            } else {
                print!("{}", r.text);
            }
        }
    } else if !reports.is_empty() {
        let summary = Summary::of(&reports);
        if args.json {
            let out = json!({"migrations": reports, "summary": summary});
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        } else {
            print!("{}", summary_text(&reports, &summary));
        }
    }
    failure.map_or(Ok(()), Err)
}

/// One migration to run.
/// `tern lab migrate --abort`: the first steps of a migration, then Nova's rollback.
async fn abort(lab: &mut Lab, vm_name: &str, dest: u32, dual_delivery: bool) -> Result<(), Exit> {
    let Some(vm) = lab.vm(vm_name).cloned() else {
        return Err(Exit::bad_input(anyhow!("no VM named {vm_name} in this lab")));
    };
    if vm.preplugged().is_some() || vm.source().is_some() {
        return Err(Exit::bad_input(anyhow!("VM {vm_name} is in the middle of another migration")));
    }
    let Some(dest_host) =
        lab.hypervisor(dest).filter(|h| h.is_ready() && dest != vm.hv()).map(|h| h.name().to_owned())
    else {
        return Err(Exit::bad_input(anyhow!("hv{dest} is no (ready) hypervisor other than the VM's")));
    };
    let peer = find_peer(lab, &vm, dest).await?;
    let nova = Nova::open(lab.dir()).map_err(Exit::failure)?;
    let api = super::api::Api::open(lab.dir()).map_err(Exit::failure)?;
    let port = vm.iface_id().to_owned();
    let record = |state: Option<&'static str>| {
        let (api, port) = (&api, &port);
        async move {
            let all = api.migrations().await?;
            let found = all.iter().find(|m| m["port_id"] == port.as_str());
            Ok(match (state, found) {
                (None, None) => Some(()),
                (Some(s), Some(m)) if m["state"] == s => Some(()),
                _ => None,
            })
        }
    };
    progress(format!("starting to migrate {vm_name} hv{} -> hv{dest}, then rolling back", vm.hv()));
    nova.create_binding(&port, &dest_host, dual_delivery).await.map_err(Exit::failure)?;
    lab.preplug_vm(vm_name, dest).await.map_err(|e| Exit::failure(anyhow!(e)))?;
    super::poll("the destination to report the plug (dest_plugged)", WARM_UP, || {
        record(Some("dest_plugged"))
    })
    .await
    .map_err(Exit::failure)?;
    progress("destination plugged; rolling back (unplug the destination, delete its binding)");
    lab.cancel_preplug(vm_name).await.map_err(|e| Exit::failure(anyhow!(e)))?;
    nova.delete_binding(&port, &dest_host).await.map_err(Exit::failure)?;
    super::poll("the migration record to go", WARM_UP, || record(None)).await.map_err(Exit::failure)?;
    for (a, b) in [(vm_name, peer.name()), (peer.name(), vm_name)] {
        let r = ping_vms(lab, a, b, 3, Duration::from_secs(1)).await?;
        if !r.all_ok() {
            return Err(Exit::failure(anyhow!(
                "{a} -> {b} after the rollback: {}/{}",
                r.received,
                r.transmitted
            )));
        }
    }
    println!(
        "{vm_name}: migration to hv{dest} rolled back; still on hv{}, reaches {} both ways",
        vm.hv(),
        peer.name()
    );
    Ok(())
}

pub struct Plan {
    pub vm: String,
    /// The destination hypervisor's number.
    pub dest: u32,
    pub trigger: Trigger,
    /// False: the destination binding's profile turns dual delivery off for this migration.
    pub dual_delivery: bool,
    pub probe_interval_ms: f64,
    /// The probes beyond L2 to run when the VM has them (`l3`, `fip`).
    pub probes: Vec<ProbeKind>,
}

/// One live migration with its probes (see the module documentation). Errors when it could not
/// be carried out; a VM that does not reach its peer afterwards is a report with `ping_ok` false.
pub async fn migrate_once(lab: &mut Lab, plan: &Plan) -> Result<MigrationReport, Exit> {
    let dest = plan.dest;
    let Some(vm) = lab.vm(&plan.vm).cloned() else {
        return Err(Exit::bad_input(anyhow!("no VM named {} in this lab", plan.vm)));
    };
    if !(0.05..=1000.0).contains(&plan.probe_interval_ms) {
        return Err(Exit::bad_input(anyhow!("--probe-interval-ms must be between 0.05 and 1000")));
    }
    if vm.preplugged().is_some() || vm.source().is_some() {
        return Err(Exit::bad_input(anyhow!("VM {} is in the middle of another migration", vm.name())));
    }
    let src = vm.hv();
    if src == dest {
        return Err(Exit::bad_input(anyhow!("VM {} already runs on hv{dest}", vm.name())));
    }
    let (src_host, dest_host) = match (lab.hypervisor(src), lab.hypervisor(dest)) {
        (Some(s), Some(d)) if d.is_ready() => (s.name().to_owned(), d.name().to_owned()),
        _ => return Err(Exit::bad_input(anyhow!("no (ready) hypervisor hv{dest} in this lab"))),
    };
    let peer = find_peer(lab, &vm, dest).await?;
    let nova = Nova::open(lab.dir()).map_err(Exit::failure)?;
    let dual_delivery = plan.dual_delivery;
    let interval_us = (plan.probe_interval_ms * 1000.0).round() as u64;
    progress(format!(
        "migrating {} hv{src} -> hv{dest} (trigger {}, dual delivery {}), probing with {} on hv{} every {} ms",
        vm.name(),
        plan.trigger.name(),
        if dual_delivery { "on" } else { "off" },
        peer.name(),
        peer.hv(),
        plan.probe_interval_ms
    ));

    let watch = watch_migration(lab.dir(), vm.iface_id().to_owned()).await;
    let mut steps = Steps::default();

    // 1-2: Nova's inactive destination binding, then the plug on the destination.
    nova.create_binding(vm.iface_id(), &dest_host, dual_delivery).await.map_err(Exit::failure)?;
    steps.binding_created = stream::now_us();
    lab.preplug_vm(vm.name(), dest)
        .await
        .map_err(|e| Exit::failure(anyhow!(e).context(format!("pre-plugging {} on hv{dest}", vm.name()))))?;
    steps.preplugged = stream::now_us();

    // 3: the probes, warmed up; a failure here rolls the migration back. L2 always; L3 with a
    // VM of another network behind the same router; the floating IP's from the external host.
    let routed_peer =
        if plan.probes.contains(&ProbeKind::L3) { find_routed_peer(lab, &vm, dest).await } else { None };
    let fip = match api::Api::open(lab.dir()) {
        Ok(a) if plan.probes.contains(&ProbeKind::Fip) => {
            a.floating_ip_of(vm.iface_id()).await.ok().flatten()
        }
        _ => None,
    };
    if let Some(r) = &routed_peer {
        super::services::drop_shortcuts(lab, vm.name(), r.name()).await;
    }
    let started = async {
        let mut probes = vec![Probe {
            kind: "l2",
            peer: peer.name().to_owned(),
            to_vm: ProbeProc::spawn(lab, peer.name(), vm.ip(), PROBE_PORT, interval_us)?,
            from_vm: ProbeProc::spawn(lab, vm.name(), peer.ip(), PROBE_PORT, interval_us)?,
        }];
        if let Some(r) = &routed_peer {
            let port = PROBE_PORT + 1;
            probes.push(Probe {
                kind: "l3",
                peer: r.name().to_owned(),
                to_vm: ProbeProc::spawn(lab, r.name(), vm.ip(), port, interval_us)?,
                from_vm: ProbeProc::spawn(lab, vm.name(), r.ip(), port, interval_us)?,
            });
        }
        if let Some(fip) = fip {
            let port = PROBE_PORT + 2;
            probes.push(Probe {
                kind: "fip",
                peer: EXTERNAL_PEER.to_owned(),
                to_vm: ProbeProc::spawn_external(lab, fip, port, interval_us)?,
                from_vm: ProbeProc::spawn(lab, vm.name(), tern_lab::EXTERNAL_GATEWAY, port, interval_us)?,
            });
        }
        super::poll("probes to flow both ways", WARM_UP, || {
            let mut r = Ok(());
            let mut ok = true;
            for p in &mut probes {
                r = r.and_then(|_| p.to_vm.poll()).and_then(|_| p.from_vm.poll());
                ok &= p.to_vm.flowing_in
                    && p.to_vm.flowing_out
                    && p.from_vm.flowing_in
                    && p.from_vm.flowing_out;
            }
            std::future::ready(r.map(|_| ok.then_some(())))
        })
        .await?;
        Ok::<_, anyhow::Error>(probes)
    }
    .await;
    let probes = match started {
        Ok(p) => p,
        Err(e) => {
            progress("the probes never flowed; undoing the pre-plug and the destination binding");
            if let Err(u) = lab.cancel_preplug(vm.name()).await {
                progress(format!("undoing the pre-plug failed: {u}"));
            }
            if let Err(u) = nova.delete_binding(vm.iface_id(), &dest_host).await {
                progress(format!("deleting the destination binding failed: {u:#}"));
            }
            return Err(Exit::failure(e));
        }
    };
    steps.probes_flowing = stream::now_us();
    let measure_from = steps.probes_flowing + 200_000;
    tokio::time::sleep(SETTLE).await;

    // 4: the switchover, then the other steps in the trigger's order.
    let res = switchover(lab, &nova, &vm, &dest_host, plan.trigger, &mut steps).await;
    if res.is_ok() {
        tokio::time::sleep(TAIL).await;
    }
    steps.probes_stopped = stream::now_us();
    let mut logs = Vec::new();
    for p in probes {
        let (to_vm, from_vm) = tokio::join!(p.to_vm.finish(), p.from_vm.finish());
        logs.push((p.kind, p.peer, to_vm, from_vm));
    }
    res.map_err(Exit::failure)?;
    // Nova's clean-up after the migration.
    if let Err(e) = nova.delete_binding(vm.iface_id(), &src_host).await {
        progress(format!("deleting the source binding failed: {e:#}"));
    }

    // 5: the figures.
    let w = Window {
        from_us: measure_from,
        to_us: steps.probes_stopped - IN_FLIGHT.as_micros() as u64,
        switch_start_us: steps.switch_started,
        t0_us: steps.t0,
        gap_to_us: steps.unplug.1.max(steps.activate.1) + 200_000,
    };
    let mut figures = BTreeMap::new();
    for (kind, peer, to_vm_log, from_vm_log) in logs {
        let (to_vm_log, from_vm_log) =
            (to_vm_log.map_err(Exit::failure)?, from_vm_log.map_err(Exit::failure)?);
        // peer -> VM: sent by the peer's process, received by the VM's; and the other way.
        let down = stream::analyze(&to_vm_log.sent, &from_vm_log.received, w);
        let up = stream::analyze(&from_vm_log.sent, &to_vm_log.received, w);
        figures.insert(
            kind.to_owned(),
            ProbeReport::of(peer, down, up, (to_vm_log.send_errors, from_vm_log.send_errors)),
        );
    }
    let controller = match watch {
        Ok((stop, task)) => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let _ = stop.send(());
            Ok(task.await.unwrap_or_default())
        }
        Err(why) => Err(why),
    };

    // 6: connectivity after the migration.
    let mut ping = Vec::new();
    for (a, b) in [(vm.name(), peer.name()), (peer.name(), vm.name())] {
        let mut r = ping_vms(lab, a, b, 3, Duration::from_secs(1)).await?;
        if !r.all_ok() {
            tokio::time::sleep(Duration::from_secs(2)).await;
            r = ping_vms(lab, a, b, 3, Duration::from_secs(1)).await?;
        }
        ping.push((format!("{a}->{b}"), r.received, r.transmitted));
    }

    let chassis =
        flow_timeline(lab.dir(), vm.iface_id(), steps.binding_created.saturating_sub(1000), steps.t0);
    let report = Report {
        chassis: &chassis,
        vm: &vm,
        peer: &peer,
        src,
        dest,
        trigger: plan.trigger,
        dual_delivery,
        interval_ms: plan.probe_interval_ms,
        probes: &figures,
        steps: &steps,
        controller: &controller,
        ping: &ping,
    };
    Ok(report.report())
}

/// Step 4: the switchover at T0, then source unplug and binding activation in the trigger's
/// order and at its offsets.
async fn switchover(
    lab: &mut Lab,
    nova: &Nova,
    vm: &Vm,
    dest_host: &str,
    trigger: Trigger,
    steps: &mut Steps,
) -> anyhow::Result<()> {
    let announce = trigger == Trigger::Rarp;
    let opts = SwitchOptions { announce, keep_neighbours: true };
    let switched = lab.switch_vm_with(vm.name(), opts).await?;
    let us = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
    };
    steps.switch_started = us(switched.paused_at);
    steps.t0 = us(switched.resumed_at);
    let base = tokio::time::Instant::now();
    let (unplug_ms, activate_ms) = match trigger {
        Trigger::Rarp => (200, 500),
        Trigger::Unplug => (0, 500),
        Trigger::Api => (500, 0),
    };
    let mut order = [(unplug_ms, true), (activate_ms, false)];
    order.sort();
    for (ms, is_unplug) in order {
        tokio::time::sleep_until(base + Duration::from_millis(ms)).await;
        if is_unplug {
            let start = stream::now_us();
            lab.unplug_source(vm.name()).await.context("unplugging the source")?;
            steps.unplug = (start, stream::now_us());
        } else {
            let start = stream::now_us();
            nova.activate(vm.iface_id(), dest_host).await?;
            steps.activate = (start, stream::now_us());
        }
    }
    Ok(())
}

// === The report ===

/// One value per direction: `to_vm` (peer -> VM) and `from_vm` (VM -> peer).
#[derive(Clone, Debug, Serialize)]
pub struct Both<T> {
    pub to_vm: T,
    pub from_vm: T,
}

/// The report of one migration (`tern lab migrate --json`, an element of `--repeat`'s and the
/// demo's `migrations`).
#[derive(Clone, Debug, Serialize)]
pub struct MigrationReport {
    pub vm: String,
    /// hvN.
    pub from: String,
    /// hvN.
    pub to: String,
    pub trigger: Trigger,
    /// Whether the destination binding asked for dual delivery (`--no-dual-delivery`: false).
    pub dual_delivery: bool,
    pub probe_interval_ms: f64,
    /// The L2 probe's figures (with the peer VM on the same network), at the top level.
    #[serde(flatten)]
    pub l2: ProbeReport,
    /// Every probe kind's figures, keyed `l2` (the same as at the top), `l3` (with a VM of another
    /// network through the router, when there is one) and `fip` (with the external host, through
    /// the VM's floating IP, when it has one).
    pub probes: BTreeMap<String, ProbeReport>,
    /// Lab steps and the controller's Migration record, ms from T0.
    pub timeline: Value,
    /// "a->b": "received/transmitted" after the migration.
    pub ping: BTreeMap<String, String>,
    /// The VM and its peer reached each other both ways after the migration.
    pub ping_ok: bool,
    /// The text form (`tern lab migrate` without `--json`).
    #[serde(skip)]
    pub text: String,
}

/// The probe kinds in their natural order (l2, l3, fip), then any other.
pub fn in_kind_order<T>(probes: &BTreeMap<String, T>) -> Vec<(&String, &T)> {
    let rank = |k: &str| ["l2", "l3", "fip"].iter().position(|x| *x == k).unwrap_or(3);
    let mut v: Vec<(&String, &T)> = probes.iter().collect();
    v.sort_by_key(|(k, _)| rank(k));
    v
}

/// One probe kind's figures: the fields of the L2 probe's at the top of [`MigrationReport`].
#[derive(Clone, Debug, Serialize)]
pub struct ProbeReport {
    /// The VM's counterpart: a VM name, or `external` (the lab's external host).
    pub peer: String,
    /// Both directions together.
    pub sent: u64,
    pub lost: u64,
    pub duplicates: u64,
    /// From T0 to the first probe that crossed after the switchover; null if none did.
    pub blackout_ms: Both<Option<f64>>,
    pub max_gap_ms: Both<Option<f64>>,
    pub directions: Both<DirectionStats>,
    pub send_errors: Both<u64>,
}

impl ProbeReport {
    /// From the two directions (`down`: peer -> VM, `up`: VM -> peer) and each side's send errors.
    fn of(peer: String, down: DirectionStats, up: DirectionStats, send_errors: (u64, u64)) -> ProbeReport {
        ProbeReport {
            peer,
            sent: down.sent + up.sent,
            lost: down.lost + up.lost,
            duplicates: down.duplicates + up.duplicates,
            blackout_ms: Both { to_vm: down.blackout_ms, from_vm: up.blackout_ms },
            max_gap_ms: Both { to_vm: down.max_gap_ms, from_vm: up.max_gap_ms },
            send_errors: Both { to_vm: send_errors.0, from_vm: send_errors.1 },
            directions: Both { to_vm: down, from_vm: up },
        }
    }
}

/// Each chassis' flow changes for the port during the migration (`tern_controller::flowlog`):
/// chassis -> [{at_ms (from T0), location, forwarding_to}], in time order.
fn flow_timeline(dir: &Path, port: &str, since_us: u64, t0_us: u64) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let Ok(text) = std::fs::read_to_string(dir.join(super::control::FLOW_LOG)) else { return out };
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        let t = v["t_us"].as_u64().unwrap_or(0);
        if v["port"] != port || t < since_us {
            continue;
        }
        let chassis = v["chassis"].as_str().unwrap_or("?").to_owned();
        out.entry(chassis).or_default().push(json!({
            "at_ms": rel(t, t0_us),
            "location": v["location"],
            "forwarding_to": v["forwarding_to"],
        }));
    }
    out
}

struct Report<'a> {
    /// Each chassis' flow changes for the port ([`flow_timeline`]).
    chassis: &'a BTreeMap<String, Vec<Value>>,
    vm: &'a Vm,
    peer: &'a Vm,
    src: u32,
    dest: u32,
    trigger: Trigger,
    dual_delivery: bool,
    interval_ms: f64,
    /// Each probe kind's figures (`l2` always).
    probes: &'a BTreeMap<String, ProbeReport>,
    steps: &'a Steps,
    controller: &'a Result<Vec<Seen>, String>,
    ping: &'a [(String, u32, u32)],
}

fn ns_rel(ns: Option<u64>, t0_us: u64) -> Option<f64> {
    ns.map(|n| rel(n / 1000, t0_us))
}

impl Report<'_> {
    fn controller_json(&self) -> Value {
        let t0 = self.steps.t0;
        let seen = match self.controller {
            Ok(s) => s,
            Err(why) => return json!({"available": false, "why": why}),
        };
        let observed: Vec<Value> = seen
            .iter()
            .map(|s| match &s.record {
                Some(m) => json!({"at_ms": rel(s.at_us, t0), "state": m.state, "epoch": m.epoch}),
                None => json!({"at_ms": rel(s.at_us, t0), "state": "deleted"}),
            })
            .collect();
        let deleted = seen.iter().rev().find(|s| s.record.is_none()).map(|s| rel(s.at_us, t0));
        let last = seen.iter().rev().find_map(|s| s.record.as_ref());
        let Some(m) = last else {
            return json!({"available": true, "record_seen": false, "observed": observed});
        };
        let ts = &m.timestamps;
        json!({
            "available": true,
            "record_seen": true,
            "source": m.source,
            "destination": m.destination,
            "epoch": m.epoch,
            "dual_delivery": m.dual_delivery,
            "activated_by": m.activated_by,
            "started_ms": ns_rel(ts.started_at_ns, t0),
            "dest_plugged_ms": ns_rel(ts.dest_plugged_at_ns, t0),
            "activated_ms": ns_rel(ts.activated_at_ns, t0),
            "completed_ms": ns_rel(ts.completed_at_ns, t0),
            "aborted_ms": ns_rel(ts.aborted_at_ns, t0),
            "record_deleted_ms": deleted,
            "observed": observed,
        })
    }

    fn timeline(&self) -> Value {
        let s = self.steps;
        let t0 = s.t0;
        json!({
            "t0_ms": t0 / 1000,
            "binding_created_ms": rel(s.binding_created, t0),
            "preplugged_ms": rel(s.preplugged, t0),
            "probes_flowing_ms": rel(s.probes_flowing, t0),
            "switch_started_ms": rel(s.switch_started, t0),
            "switched_ms": 0.0,
            "source_unplug_ms": [rel(s.unplug.0, t0), rel(s.unplug.1, t0)],
            "binding_activate_ms": [rel(s.activate.0, t0), rel(s.activate.1, t0)],
            "probes_stopped_ms": rel(s.probes_stopped, t0),
            "controller": self.controller_json(),
            "chassis": self.chassis,
        })
    }

    fn report(&self) -> MigrationReport {
        MigrationReport {
            vm: self.vm.name().to_owned(),
            from: format!("hv{}", self.src),
            to: format!("hv{}", self.dest),
            trigger: self.trigger,
            dual_delivery: self.dual_delivery,
            probe_interval_ms: self.interval_ms,
            l2: self.probes["l2"].clone(),
            probes: self.probes.clone(),
            timeline: self.timeline(),
            ping: self.ping.iter().map(|(p, rx, tx)| (p.clone(), format!("{rx}/{tx}"))).collect(),
            ping_ok: self.ping.iter().all(|(_, rx, tx)| rx == tx && *tx > 0),
            text: self.text(),
        }
    }

    fn text(&self) -> String {
        use std::fmt::Write as _;
        let f = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |x| format!("{x:.2}"));
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{} migrated hv{} -> hv{} (trigger {}, dual delivery {}, probe every {} ms with {} on hv{})",
            self.vm.name(),
            self.src,
            self.dest,
            self.trigger.name(),
            if self.dual_delivery { "on" } else { "off" },
            self.interval_ms,
            self.peer.name(),
            self.peer.hv()
        );
        let _ = writeln!(
            o,
            "  {:<5} {:<18} {:<20} {:>6} {:>6} {:>5} {:>12} {:>11}",
            "probe", "with", "direction", "sent", "lost", "dup", "blackout ms", "max gap ms"
        );
        for (kind, p) in in_kind_order(self.probes) {
            for (name, d) in
                [("to VM (peer->vm)", &p.directions.to_vm), ("from VM (vm->peer)", &p.directions.from_vm)]
            {
                let _ = writeln!(
                    o,
                    "  {:<5} {:<18} {:<20} {:>6} {:>6} {:>5} {:>12} {:>11}",
                    kind,
                    p.peer,
                    name,
                    d.sent,
                    d.lost,
                    d.duplicates,
                    f(d.blackout_ms),
                    f(d.max_gap_ms)
                );
            }
        }
        let s = self.steps;
        let t0 = s.t0;
        let _ = writeln!(o, "  timeline (ms from T0 = {} ms since the epoch):", t0 / 1000);
        for (what, at) in [
            ("destination binding created", rel(s.binding_created, t0)),
            ("pre-plugged on the destination", rel(s.preplugged, t0)),
            ("probes flowing", rel(s.probes_flowing, t0)),
            ("switchover started", rel(s.switch_started, t0)),
            ("switched (T0)", 0.0),
            ("source unplug started", rel(s.unplug.0, t0)),
            ("source unplugged", rel(s.unplug.1, t0)),
            ("binding activation sent", rel(s.activate.0, t0)),
            ("binding activated", rel(s.activate.1, t0)),
        ] {
            let _ = writeln!(o, "    {at:>10.2}  {what}");
        }
        let c = self.controller_json();
        if c["available"] == false {
            let _ = writeln!(o, "  controller timeline: unavailable ({})", c["why"].as_str().unwrap_or(""));
        } else if c["record_seen"] == false {
            let _ = writeln!(o, "  controller timeline: no Migration record was written for the port");
        } else {
            let _ = writeln!(
                o,
                "  controller timeline: dest_plugged {} ms, activated {} ms (by {}), completed {} ms, record deleted {} ms",
                f(c["dest_plugged_ms"].as_f64()),
                f(c["activated_ms"].as_f64()),
                c["activated_by"].as_str().unwrap_or("-"),
                f(c["completed_ms"].as_f64()),
                f(c["record_deleted_ms"].as_f64())
            );
        }
        if !self.chassis.is_empty() {
            let _ = writeln!(o, "  where each chassis sends the VM's traffic (ms from T0):");
            for (chassis, events) in self.chassis {
                let steps: Vec<String> = events
                    .iter()
                    .map(|e| {
                        let to: Vec<&str> = e["location"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .collect();
                        let fwd = e["forwarding_to"]
                            .as_str()
                            .map(|f| format!(", forwards to {f}"))
                            .unwrap_or_default();
                        format!(
                            "{:.2}: {}{fwd}",
                            e["at_ms"].as_f64().unwrap_or(0.0),
                            if to.is_empty() { "nowhere".into() } else { to.join("+") }
                        )
                    })
                    .collect();
                let _ = writeln!(o, "    {chassis:<10} {}", steps.join(" | "));
            }
        }
        for (p, rx, tx) in self.ping {
            let _ = writeln!(o, "  ping {p}: {rx}/{tx}");
        }
        o
    }
}

// === --repeat: the summary ===

/// A blackout in ms, or "-" when no probe crossed after the switchover.
fn fmt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.2}"))
}

/// The nearest-rank `p`-th percentile (0 < p <= 100) of ascending `sorted`: the value at rank
/// ceil(p/100 * n).
fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Median, p99 and max of a direction's blackouts (null when there are none).
#[derive(Clone, Debug, Serialize)]
pub struct Spread {
    pub median: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

/// One direction over all migrations.
#[derive(Clone, Debug, Serialize)]
pub struct DirectionSummary {
    pub blackout_ms: Spread,
    pub sent: u64,
    pub lost: u64,
    pub duplicates: u64,
    /// Migrations after which no probe of this direction crossed although some were lost: not
    /// a blackout figure, so left out of `blackout_ms`.
    pub unrecovered: usize,
}

impl DirectionSummary {
    fn of<'a>(dirs: impl Iterator<Item = &'a DirectionStats>) -> DirectionSummary {
        let (mut blackouts, mut sent, mut lost, mut duplicates, mut unrecovered) = (Vec::new(), 0, 0, 0, 0);
        for d in dirs {
            sent += d.sent;
            lost += d.lost;
            duplicates += d.duplicates;
            match d.blackout_ms {
                Some(b) => blackouts.push(b),
                // A null blackout of a direction that lost nothing counts as 0.0 ms (no loss, no
                // blackout); with losses it means the direction never came back within the
                // measurement, which is counted apart instead of being given a figure.
                None if d.lost == 0 => blackouts.push(0.0),
                None => unrecovered += 1,
            }
        }
        blackouts.sort_by(f64::total_cmp);
        DirectionSummary {
            blackout_ms: Spread {
                median: nearest_rank(&blackouts, 50.0),
                p99: nearest_rank(&blackouts, 99.0),
                max: blackouts.last().copied(),
            },
            sent,
            lost,
            duplicates,
            unrecovered,
        }
    }
}

/// `--repeat`'s summary of its migrations: the L2 probe's at the top, every kind in `probes`.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub migrations: usize,
    pub to_vm: DirectionSummary,
    pub from_vm: DirectionSummary,
    /// Per probe kind (over the migrations that had it).
    pub probes: BTreeMap<String, Both<DirectionSummary>>,
}

impl Summary {
    pub fn of(reports: &[MigrationReport]) -> Summary {
        let kinds: std::collections::BTreeSet<&String> =
            reports.iter().flat_map(|r| r.probes.keys()).collect();
        let probes = kinds
            .into_iter()
            .map(|k| {
                let of_kind = || reports.iter().filter_map(|r| r.probes.get(k));
                let both = Both {
                    to_vm: DirectionSummary::of(of_kind().map(|p| &p.directions.to_vm)),
                    from_vm: DirectionSummary::of(of_kind().map(|p| &p.directions.from_vm)),
                };
                (k.clone(), both)
            })
            .collect();
        Summary {
            migrations: reports.len(),
            to_vm: DirectionSummary::of(reports.iter().map(|r| &r.l2.directions.to_vm)),
            from_vm: DirectionSummary::of(reports.iter().map(|r| &r.l2.directions.from_vm)),
            probes,
        }
    }
}

/// `--repeat`'s text: one line per migration, then the summary.
fn summary_text(reports: &[MigrationReport], s: &Summary) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    if let Some(r) = reports.first() {
        let _ = writeln!(
            o,
            "{}: {} migrations (trigger {}, dual delivery {}, probe every {} ms with {})",
            r.vm,
            reports.len(),
            r.trigger.name(),
            if r.dual_delivery { "on" } else { "off" },
            r.probe_interval_ms,
            r.l2.peer
        );
    }
    let _ = writeln!(
        o,
        "  {:>3} {:<4} {:<4} {:>6} {:>5} {:>4} {:>17} {:>17} {:>4}",
        "#", "from", "to", "sent", "lost", "dup", "blackout to_vm ms", "from_vm ms", "ping"
    );
    for (i, r) in reports.iter().enumerate() {
        let _ = writeln!(
            o,
            "  {:>3} {:<4} {:<4} {:>6} {:>5} {:>4} {:>17} {:>17} {:>4}",
            i + 1,
            r.from,
            r.to,
            r.l2.sent,
            r.l2.lost,
            r.l2.duplicates,
            fmt_ms(r.l2.blackout_ms.to_vm),
            fmt_ms(r.l2.blackout_ms.from_vm),
            if r.ping_ok { "ok" } else { "FAIL" }
        );
    }
    let _ = writeln!(
        o,
        "summary of {} migrations (blackout ms, nearest-rank; a direction that lost nothing counts 0):",
        s.migrations
    );
    let _ = writeln!(
        o,
        "  {:<5} {:<18} {:>8} {:>8} {:>8} {:>7} {:>6} {:>5} {:>11}",
        "probe", "direction", "median", "p99", "max", "sent", "lost", "dup", "unrecovered"
    );
    let rows = in_kind_order(&s.probes).into_iter().flat_map(|(k, b)| {
        [(k.as_str(), "to VM (peer->vm)", &b.to_vm), (k.as_str(), "from VM (vm->peer)", &b.from_vm)]
    });
    for (kind, name, d) in rows {
        let _ = writeln!(
            o,
            "  {:<5} {:<18} {:>8} {:>8} {:>8} {:>7} {:>6} {:>5} {:>11}",
            kind,
            name,
            fmt_ms(d.blackout_ms.median),
            fmt_ms(d.blackout_ms.p99),
            fmt_ms(d.blackout_ms.max),
            d.sent,
            d.lost,
            d.duplicates,
            d.unrecovered
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 50.0), Some(10.0));
        assert_eq!(nearest_rank(&v, 99.0), Some(20.0));
        assert_eq!(nearest_rank(&[3.0], 50.0), Some(3.0));
        assert_eq!(nearest_rank(&[1.0, 2.0, 3.0], 50.0), Some(2.0));
        assert_eq!(nearest_rank(&[], 50.0), None);
    }

    #[test]
    fn a_null_blackout_without_loss_counts_as_zero() {
        let d = |blackout_ms, lost| DirectionStats {
            sent: 100,
            received: 100 - lost,
            lost,
            duplicates: 1,
            blackout_ms,
            max_gap_ms: None,
            max_gap_at_ms: None,
        };
        let dirs = [d(Some(4.0), 3), d(None, 0), d(None, 7), d(Some(2.0), 1)];
        let s = DirectionSummary::of(dirs.iter());
        assert_eq!((s.sent, s.lost, s.duplicates, s.unrecovered), (400, 11, 4, 1));
        assert_eq!(s.blackout_ms.median, Some(2.0));
        assert_eq!(s.blackout_ms.max, Some(4.0));
    }
}
