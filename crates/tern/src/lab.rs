//! `tern lab`: a test bed of real OVS hypervisors on this machine (`tern-lab`) with tern's control
//! plane on top, driven the way an operator and Nova drive a cloud: networks and ports through the
//! Neutron API, VIFs plugged the way os-vif plugs them.
//!
//! Everything lives in one lab directory (`--dir`): `lab.json` (the namespaces, see `tern-lab`),
//! `control.json` (NB DSN and API address), `background.json` (a background cloud `tern lab load`
//! put in the NB, see `background`), and for every process tern starts a pidfile, a log and its
//! command line (`NAME.pid`, `NAME.log`, `NAME.cmd.json`; the churn daemon is `churn`). Processes
//! are stopped by those pidfiles, and only when `/proc/PID/environ` carries this lab's
//! `TERN_LAB_DIR`.

mod api;
mod background;
mod control;
mod demo;
mod migrate;
mod services;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use clap::{Args, Subcommand};
use tern_lab::{Lab, PingResult, Vm};

use crate::exit::Exit;
pub use control::NbMode;

#[derive(Args)]
pub struct LabArgs {
    /// The lab directory (default: $TMPDIR/tern-lab; `demo`: $TMPDIR/tern-lab-demo).
    #[arg(long, global = true)]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(Subcommand)]
enum LabCommand {
    /// Create the hypervisors (namespaces with their own OVS) and start the control plane.
    Up(UpArgs),
    /// Stop the control plane (by its pidfiles) and remove everything the lab created. Safe twice.
    Down,
    /// Hypervisors, daemons, VMs and registered chassis.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Add or remove VMs (ports created through the Neutron API).
    #[command(subcommand)]
    Vm(VmCommand),
    /// Add hypervisors to a running lab.
    #[command(subcommand)]
    Hv(HvCommand),
    /// Add a router joining networks (through the Neutron API).
    #[command(subcommand)]
    Router(RouterCommand),
    /// Floating IPs: public addresses on the external network (the `<prefix>-ext` namespace).
    #[command(subcommand)]
    Fip(FipCommand),
    /// Ping VM B's IP from VM A.
    ///
    /// Across networks the VMs get a host route and a static neighbour entry for each other, so
    /// the frames really reach the wire and only the network's isolation stops them.
    Ping {
        a: String,
        b: String,
        #[arg(long, default_value_t = 3)]
        count: u32,
        /// Across networks, go through the VMs' default routes (a router) instead of straight
        /// over L2.
        #[arg(long)]
        routed: bool,
    },
    /// Run a command inside VM NAME (its network namespace), e.g. `tern lab exec a -- ip addr`;
    /// exits with the command's status. `{iface}` in an argument becomes the VM's interface.
    Exec {
        name: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Manage one hypervisor's controller process (`--nb etcd` labs).
    #[command(subcommand)]
    Controller(ControllerCommand),
    /// Run the end-to-end scenario (3 hypervisors, 2 networks, 6 VMs, every pair pinged, one VM
    /// live-migrated with each trigger with and without dual delivery), report, and tear down.
    Demo(demo::DemoArgs),
    /// Live-migrate VM to hypervisor N the way Nova does, measuring the network's blackout with a
    /// two-way 1 kHz UDP probe between the VM and a peer VM on another hypervisor.
    Migrate(migrate::MigrateArgs),
    /// Load a background cloud into the lab's NB beside the lab's own objects: registered chassis
    /// with no OVS, controller or heartbeat (hypervisors elsewhere), and ports on networks of
    /// their own bound to them (the benchmarks' synthetic cloud; every id starts with `bg-`).
    ///
    /// Written straight to the NB (etcd, or the embedded process' store), with progress. One per
    /// lab. `--churn R` then starts `tern lab churn --rate R`.
    /// E.g. `tern lab load --ports 10000 --chassis 1000 --churn 20`.
    Load(background::LoadArgs),
    /// Keep updating the background cloud: R times a second, move a random background port's
    /// binding to another background chassis (a change every lab controller receives).
    ///
    /// Runs as the lab's `churn` daemon (`churn.pid`, `churn.log`, a line every 10 s) until
    /// `tern lab churn --stop` or `tern lab down`; `--foreground` runs it here until ctrl-c or
    /// SIGTERM.
    Churn(background::ChurnArgs),
    /// The embedded control plane: store, Neutron API and one controller per hypervisor.
    #[command(hide = true)]
    Serve,
    /// The migration probe run inside VM namespaces (`tern_lab::stream`):
    /// LISTEN_PORT TARGET:PORT [INTERVAL_US] [MAX_SECS].
    #[command(hide = true)]
    ProbeStream {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Args)]
struct UpArgs {
    /// How many hypervisors.
    #[arg(long, default_value_t = 3)]
    hypervisors: usize,
    /// Where the NB lives: one embedded process (redb), or a local etcd with separate `tern server`
    /// and `tern controller` processes.
    #[arg(long, value_enum, default_value_t = NbMode::Embedded)]
    nb: NbMode,
    /// Namespace name prefix (tests use their own).
    #[arg(long, hide = true, default_value = tern_lab::DEFAULT_PREFIX)]
    prefix: String,
    /// Fault injection for tests: hypervisor hvN's controller ignores every Migration record, as
    /// if its NB watch missed them (repeatable).
    #[arg(long = "blind-to-migrations", hide = true, value_name = "hvN")]
    blind: Vec<String>,
}

#[derive(Subcommand)]
enum VmCommand {
    /// Create VM NAME on hypervisor N with a port on network NET (created when absent).
    Add {
        name: String,
        /// The hypervisor's number (hvN).
        #[arg(long)]
        hv: u32,
        #[arg(long)]
        network: String,
        /// A fixed IP on the network's subnet (default: allocated by the API).
        #[arg(long)]
        ip: Option<Ipv4Addr>,
    },
    /// Unplug VM NAME, delete its namespace and its port.
    Rm { name: String },
}

#[derive(Subcommand)]
enum RouterCommand {
    /// Create router NAME (if absent) with an interface on each --network (created if absent).
    Add {
        name: String,
        #[arg(long = "network", required = true)]
        networks: Vec<String>,
    },
}

#[derive(Subcommand)]
enum FipCommand {
    /// Give VM NAME a floating IP on the external network "public" (created when absent); its
    /// network's router gets its gateway there, and the VM the security group "lab-public"
    /// (ICMP and UDP from anywhere). Prints the address.
    Add { name: String },
    /// Ping VM NAME's floating IP from the external host, and the external host from the VM
    /// (through its floating IP).
    Ping {
        name: String,
        #[arg(long, default_value_t = 3)]
        count: u32,
    },
}

#[derive(Subcommand)]
enum HvCommand {
    /// Add one hypervisor (hvN+1) and its controller.
    Add,
}

#[derive(Subcommand)]
enum ControllerCommand {
    /// Stop (if alive) and start again one hypervisor's `tern controller` with its recorded
    /// command line.
    Restart {
        /// hvN or N.
        hv: String,
    },
    /// Kill one hypervisor's controller with SIGKILL (no clean-up: a crash).
    Kill {
        /// hvN or N.
        hv: String,
    },
    /// Start one hypervisor's controller again (after `kill`) with its recorded command line.
    Start {
        /// hvN or N.
        hv: String,
    },
}

fn default_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(name)
}

pub async fn run(args: LabArgs) -> Result<(), Exit> {
    let dir = args.dir.clone().unwrap_or_else(|| default_dir("tern-lab"));
    match args.command {
        LabCommand::Up(up) => {
            let blind = up.blind.iter().map(|h| parse_hv(h)).collect::<Result<Vec<_>, _>>()?;
            let faults = control::Faults { blind_to_migrations: blind };
            let lab = bring_up_with(&dir, up.hypervisors, up.nb, &up.prefix, &faults).await?;
            println!("lab up in {} (hypervisors: {}, nb {})", lab.dir().display(), up.hypervisors, up.nb);
            Ok(())
        }
        LabCommand::Down => tear_down(&dir).await.map_err(Exit::failure),
        LabCommand::Status { json } => status(&dir, json).await,
        LabCommand::Vm(VmCommand::Add { name, hv, network, ip }) => {
            let mut lab = open(&dir)?;
            let vm = vm_add(&mut lab, &name, hv, &network, ip).await?;
            println!("{} on hv{}: {} {} port {}", vm.name(), vm.hv(), vm.mac(), vm.ip_cidr(), vm.iface_id());
            Ok(())
        }
        LabCommand::Vm(VmCommand::Rm { name }) => {
            let mut lab = open(&dir)?;
            vm_rm(&mut lab, &name).await
        }
        LabCommand::Router(RouterCommand::Add { name, networks }) => {
            let lab = open(&dir)?;
            let api = api::Api::open(lab.dir()).map_err(Exit::failure)?;
            let id = api.ensure_router(&name, &networks).await.map_err(Exit::failure)?;
            println!("router {name} ({id}) joins {}", networks.join(" "));
            Ok(())
        }
        LabCommand::Fip(FipCommand::Add { name }) => {
            let lab = open(&dir)?;
            let ip = services::add_floating_ip(&lab, &name).await?;
            println!("{name}: floating IP {ip}");
            Ok(())
        }
        LabCommand::Fip(FipCommand::Ping { name, count }) => {
            let lab = open(&dir)?;
            let (inbound, outbound) = services::ping_floating_ip(&lab, &name, count).await?;
            print!("{}{}", inbound.output, outbound.output);
            if inbound.all_ok() && outbound.all_ok() {
                Ok(())
            } else {
                Err(Exit::failure(anyhow!(
                    "{name}: external host -> floating IP {}/{} replies, {name} -> external host {}/{}",
                    inbound.received,
                    inbound.transmitted,
                    outbound.received,
                    outbound.transmitted
                )))
            }
        }
        LabCommand::Hv(HvCommand::Add) => {
            let mut lab = open(&dir)?;
            hv_add(&mut lab).await.map_err(Exit::failure)
        }
        LabCommand::Ping { a, b, count, routed } => {
            let lab = open(&dir)?;
            let r = if routed {
                let to = lab.vm(&b).ok_or_else(|| Exit::bad_input(anyhow!("no VM named {b}")))?.ip();
                lab.vm(&a).ok_or_else(|| Exit::bad_input(anyhow!("no VM named {a}")))?;
                lab.ping(&a, to, count, Duration::from_secs(1)).await.map_err(Exit::failure)?
            } else {
                ping_vms(&lab, &a, &b, count, Duration::from_secs(1)).await?
            };
            print!("{}", r.output);
            if r.all_ok() {
                Ok(())
            } else {
                Err(Exit::failure(anyhow!("{a} -> {b}: {}/{} replies", r.received, r.transmitted)))
            }
        }
        LabCommand::Exec { name, command } => {
            let lab = open(&dir)?;
            let vm =
                lab.vm(&name).ok_or_else(|| Exit::bad_input(anyhow!("no VM named {name} in this lab")))?;
            let args: Vec<String> = command.iter().map(|a| a.replace("{iface}", vm.iface())).collect();
            let mut c = lab.vm_command(&name, &args[0]).map_err(|e| Exit::failure(anyhow!(e)))?;
            let status = c
                .args(&args[1..])
                .status()
                .await
                .map_err(|e| Exit::failure(anyhow!("running {:?} in VM {name}: {e}", args[0])))?;
            match status.code() {
                Some(0) => Ok(()),
                code => Err(Exit::failure(anyhow!("{:?} in VM {name} exited with {code:?}", args.join(" ")))),
            }
        }
        LabCommand::Controller(ControllerCommand::Restart { hv }) => {
            let lab = open(&dir)?;
            let index = parse_hv(&hv)?;
            let pid = control::restart_controller(&lab, index).await?;
            println!("hv{index}: controller restarted (pid {pid})");
            Ok(())
        }
        LabCommand::Controller(ControllerCommand::Kill { hv }) => {
            let lab = open(&dir)?;
            let index = parse_hv(&hv)?;
            let pid = control::kill_controller(&lab, index).await?;
            println!("hv{index}: controller killed (pid {pid})");
            Ok(())
        }
        LabCommand::Controller(ControllerCommand::Start { hv }) => {
            let lab = open(&dir)?;
            let index = parse_hv(&hv)?;
            let pid = control::start_controller_again(&lab, index).await?;
            println!("hv{index}: controller started (pid {pid})");
            Ok(())
        }
        LabCommand::Demo(d) => {
            let dir = args.dir.unwrap_or_else(|| default_dir("tern-lab-demo"));
            demo::run(&dir, d).await
        }
        LabCommand::Migrate(m) => {
            let mut lab = open(&dir)?;
            migrate::run(&mut lab, m).await
        }
        LabCommand::Load(l) => {
            let lab = open(&dir)?;
            background::load(&lab, l).await
        }
        LabCommand::Churn(c) => {
            let lab = open(&dir)?;
            background::churn(&lab, c).await
        }
        LabCommand::Serve => control::serve(&dir).await.map_err(Exit::failure),
        LabCommand::ProbeStream { args } => tokio::task::spawn_blocking(move || tern_lab::stream::cli(&args))
            .await
            .map_err(|e| Exit::failure(anyhow!("the probe panicked: {e}")))?
            .map_err(|e| Exit::bad_input(anyhow!(e))),
    }
}

fn open(dir: &Path) -> Result<Lab, Exit> {
    if !dir.join(tern_lab::STATE_FILE).exists() {
        return Err(Exit::bad_input(anyhow!("no lab in {} (run `tern lab up`)", dir.display())));
    }
    Lab::open(dir).map_err(Exit::failure)
}

fn parse_hv(s: &str) -> Result<u32, Exit> {
    s.strip_prefix("hv")
        .unwrap_or(s)
        .parse()
        .map_err(|_| Exit::bad_input(anyhow!("{s:?} is not a hypervisor (hvN or N)")))
}

/// Prints a progress line on stderr.
fn progress(msg: impl std::fmt::Display) {
    eprintln!("tern lab: {msg}");
}

/// `tern lab up`: the namespaces, then the control plane, then waits until every chassis is
/// registered. A failure after the lab was created takes it down again.
pub(crate) async fn bring_up(dir: &Path, hypervisors: usize, nb: NbMode, prefix: &str) -> Result<Lab, Exit> {
    bring_up_with(dir, hypervisors, nb, prefix, &control::Faults::default()).await
}

/// [`bring_up`] with faults injected into the control plane (tests).
async fn bring_up_with(
    dir: &Path,
    hypervisors: usize,
    nb: NbMode,
    prefix: &str,
    faults: &control::Faults,
) -> Result<Lab, Exit> {
    if hypervisors == 0 {
        return Err(Exit::bad_input(anyhow!("a lab needs at least one hypervisor")));
    }
    if dir.join(tern_lab::STATE_FILE).exists() {
        return Err(Exit::bad_input(anyhow!(
            "a lab already exists in {} (`tern lab down --dir {}` first)",
            dir.display(),
            dir.display()
        )));
    }
    let started = Instant::now();
    progress(format!("creating {hypervisors} hypervisors in {}", dir.display()));
    let lab = Lab::create_with_prefix(dir, prefix, hypervisors)
        .await
        .map_err(|e| Exit::failure(anyhow!(e).context("creating the lab")))?;
    progress(format!("hypervisors ready ({:.1} s); starting the control plane (nb {nb})", secs(started)));
    let res = async {
        faults.write(lab.dir())?;
        control::start(&lab, nb).await?;
        control::wait_ready(&lab, Duration::from_secs(90)).await
    }
    .await;
    if let Err(e) = res {
        progress("the control plane did not come up; taking the lab down");
        if let Err(down) = tear_down(lab.dir()).await {
            progress(format!("taking the lab down failed too: {down:#}"));
        }
        return Err(Exit::failure(e));
    }
    progress(format!("lab up in {:.1} s", secs(started)));
    Ok(lab)
}

/// `tern lab down`: the control plane by its pidfiles, then everything `tern-lab` recorded.
pub(crate) async fn tear_down(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        progress(format!("no lab in {}: nothing to do", dir.display()));
        return Ok(());
    }
    for (name, pid) in control::stop_all(dir).await {
        progress(format!("stopped {name} (pid {pid})"));
    }
    Lab::down(dir).await.with_context(|| format!("removing the lab in {}", dir.display()))?;
    progress(format!("lab in {} removed", dir.display()));
    Ok(())
}

pub(crate) fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

/// `tern lab vm add`: network (and subnet) when absent, then a port bound to hvN as Nova creates
/// it, then the VM plugged with that port's MAC, IP and id. The port is deleted again if plugging
/// fails.
pub(crate) async fn vm_add(
    lab: &mut Lab,
    name: &str,
    hv: u32,
    network: &str,
    ip: Option<Ipv4Addr>,
) -> Result<Vm, Exit> {
    if lab.vm(name).is_some() {
        return Err(Exit::bad_input(anyhow!("VM {name} already exists")));
    }
    match lab.hypervisor(hv) {
        Some(h) if h.is_ready() => {}
        _ => return Err(Exit::bad_input(anyhow!("no (ready) hypervisor hv{hv} in this lab"))),
    }
    let api = api::Api::open(lab.dir()).map_err(Exit::failure)?;
    let net = api.ensure_network(network).await.map_err(Exit::failure)?;
    let port = api.create_port(&net, name, &format!("hv{hv}"), ip).await?;
    let cidr = format!("{}/{}", port.ip, net.prefix_len);
    match lab.add_vm(name, hv, &port.mac, &cidr, &port.id).await {
        Ok(vm) => {
            // The default route a DHCP lease would give.
            if let Some(gw) = net.gateway {
                let gw = gw.to_string();
                let args = ["route", "replace", "default", "via", gw.as_str(), "dev", vm.iface()];
                if let Err(e) = lab.exec_in_vm(name, "ip", &args).await {
                    progress(format!("VM {name}: no default route via {gw}: {e}"));
                }
            }
            Ok(vm)
        }
        Err(e) => {
            if let Err(del) = api.delete_port(&port.id).await {
                progress(format!("deleting port {} after the failed plug failed too: {del:#}", port.id));
            }
            Err(Exit::failure(anyhow!(e).context(format!("plugging VM {name}"))))
        }
    }
}

/// `tern lab vm rm`: unplug and delete the namespace, then delete the port.
async fn vm_rm(lab: &mut Lab, name: &str) -> Result<(), Exit> {
    let Some(vm) = lab.vm(name).cloned() else {
        return Err(Exit::bad_input(anyhow!("no VM named {name} in this lab")));
    };
    lab.remove_vm(name)
        .await
        .map_err(|e| Exit::failure(anyhow!(e).context(format!("removing VM {name}"))))?;
    let api = api::Api::open(lab.dir()).map_err(Exit::failure)?;
    api.delete_port(vm.iface_id()).await.map_err(Exit::failure)?;
    println!("{name} removed (port {})", vm.iface_id());
    Ok(())
}

/// `tern lab hv add`: the hypervisor, its controller, and waits for its chassis.
async fn hv_add(lab: &mut Lab) -> anyhow::Result<()> {
    let started = Instant::now();
    let hv = lab.add_hypervisor().await.context("adding a hypervisor")?;
    progress(format!("{} created ({:.1} s)", hv.name(), secs(started)));
    control::start_controller(lab, &hv).await?;
    control::wait_ready(lab, Duration::from_secs(60)).await?;
    println!("{} added (tunnel IP {})", hv.name(), hv.tunnel_ip());
    Ok(())
}

fn vm_net(vm: &Vm) -> Option<(u32, u8)> {
    let (_, len) = vm.ip_cidr().split_once('/')?;
    let len: u8 = len.parse().ok()?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len.min(32))) };
    Some((u32::from(vm.ip()) & mask, len))
}

/// True if both VMs' addresses are on one subnet (so they ARP for each other directly).
pub(crate) fn same_subnet(a: &Vm, b: &Vm) -> bool {
    vm_net(a).is_some() && vm_net(a) == vm_net(b)
}

/// For VMs on different subnets: a host route and a permanent neighbour entry on both sides, so
/// pings between them leave the VM as frames addressed to the other's MAC and only the network's
/// isolation can stop them.
async fn l2_path(lab: &Lab, a: &Vm, b: &Vm) -> anyhow::Result<()> {
    for (from, to) in [(a, b), (b, a)] {
        let ip = format!("{}/32", to.ip());
        lab.exec_in_vm(from.name(), "ip", &["route", "replace", &ip, "dev", from.iface()]).await?;
        let ip = to.ip().to_string();
        lab.exec_in_vm(
            from.name(),
            "ip",
            &["neigh", "replace", &ip, "lladdr", to.mac(), "dev", from.iface(), "nud", "permanent"],
        )
        .await?;
    }
    Ok(())
}

/// Pings VM `b` from VM `a` (see [`LabCommand::Ping`]).
pub(crate) async fn ping_vms(
    lab: &Lab,
    a: &str,
    b: &str,
    count: u32,
    timeout: Duration,
) -> Result<PingResult, Exit> {
    let va = lab.vm(a).ok_or_else(|| Exit::bad_input(anyhow!("no VM named {a}")))?;
    let vb = lab.vm(b).ok_or_else(|| Exit::bad_input(anyhow!("no VM named {b}")))?;
    if !same_subnet(va, vb) {
        l2_path(lab, va, vb).await.map_err(Exit::failure)?;
    }
    lab.ping(a, vb.ip(), count, timeout).await.map_err(Exit::failure)
}

/// `tern lab status`.
async fn status(dir: &Path, json: bool) -> Result<(), Exit> {
    let lab = open(dir)?;
    let st = lab.status();
    let daemons = control::daemons(lab.dir());
    let control = control::ControlState::read(lab.dir()).ok();
    let (chassis, ports, migrations) = match api::Api::open(lab.dir()) {
        Ok(api) => (api.chassis().await.ok(), api.port_networks().await.ok(), api.migrations().await.ok()),
        Err(_) => (None, None, None),
    };
    let vm_network = |v: &Vm| ports.as_ref().and_then(|p| p.get(v.iface_id()).cloned());
    let background = background::Background::read(lab.dir()).ok().flatten();
    if json {
        let vms: Vec<serde_json::Value> = st
            .vms
            .iter()
            .zip(lab.vms())
            .map(|(s, v)| {
                let mut j = serde_json::to_value(s).unwrap_or_default();
                j["network"] = serde_json::json!(vm_network(v));
                j
            })
            .collect();
        let out = serde_json::json!({
            "dir": st.dir,
            "prefix": st.prefix,
            "healthy": st.healthy(),
            "underlay": st.underlay,
            "external": st.external,
            "hypervisors": st.hypervisors,
            "vms": vms,
            "control": control,
            "daemons": daemons,
            "chassis": chassis,
            "background": background,
            "migrations": migrations,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(());
    }
    print!("{st}");
    match &control {
        Some(c) => println!("  control   nb {} ({}), API {}", c.nb, c.mode, c.api),
        None => println!("  control   not started"),
    }
    for d in &daemons {
        let state = d.pid.map_or_else(|| "no pid".into(), |p| format!("pid {p}"));
        println!("  daemon    {:<16} {state} {}", d.name, if d.alive { "alive" } else { "DOWN" });
    }
    match &chassis {
        Some(c) => {
            // The background cloud's chassis are counted, not listed.
            let (bg, own): (Vec<&String>, Vec<&String>) =
                c.iter().partition(|n| background::is_background(n));
            let own: Vec<&str> = own.iter().map(|s| s.as_str()).collect();
            let more =
                if bg.is_empty() { String::new() } else { format!(" (+{} background chassis)", bg.len()) };
            println!(
                "  chassis   registered: {}{more}",
                if own.is_empty() { "none".into() } else { own.join(" ") }
            )
        }
        None => println!("  chassis   unknown (API unreachable)"),
    }
    if let Some(b) = &background {
        println!(
            "  background {} ports on {} chassis, {} networks ({} NB objects, prefix {}, loaded in {:.1} s)",
            b.ports, b.chassis, b.networks, b.objects, b.prefix, b.load_seconds
        );
    }
    for v in lab.vms() {
        if let Some(n) = vm_network(v) {
            println!("  vm {:<6} network {n}", v.name());
        }
    }
    for m in migrations.iter().flatten() {
        println!(
            "  migration port {} {} -> {}: {}",
            m["port_id"].as_str().unwrap_or("?"),
            m["source"].as_str().unwrap_or("?"),
            m["destination"].as_str().unwrap_or("?"),
            m["state"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

/// Polls `check` every 100 ms until it yields a value or `timeout` passes.
pub(crate) async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            match last_err {
                Some(e) => bail!("timed out after {timeout:?} waiting for {what}: {e:#}"),
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
