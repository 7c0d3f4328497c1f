//! `tern lab demo`: 3 hypervisors, 2 networks, 6 VMs (one of each network on every hypervisor),
//! every ordered pair pinged: same network must pass, different networks must be blocked. Then the
//! services (`services`): a router joining the networks, DHCP, port security, security groups
//! and floating IPs reached from the external host. Then one VM is live-migrated around the
//! hypervisors with each trigger, with and without dual delivery, probed over L2, through the
//! router and through its floating IP (`tern lab migrate`'s probes measure each blackout:
//! reported, never judged), after which connectivity, routing, the floating IP and the security
//! groups are checked again. Prints tables, optionally writes the JSON report, and always tears
//! the lab down.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use clap::Args;
use serde::Serialize;
use serde_json::{json, Value};
use tern_lab::Lab;

use super::migrate::{self, Plan, Trigger};
use super::{progress, secs, services, NbMode};
use crate::exit::Exit;

#[derive(Args)]
pub struct DemoArgs {
    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Where the NB lives (see `tern lab up`).
    #[arg(long, value_enum, default_value_t = NbMode::Embedded)]
    nb: NbMode,
    /// Namespace name prefix (tests use their own).
    #[arg(long, hide = true, default_value = tern_lab::DEFAULT_PREFIX)]
    prefix: String,
}

const HYPERVISORS: usize = 3;
/// (VM, network, hypervisor): each network has a VM on every hypervisor, and every hypervisor
/// holds VMs of both networks (isolation is checked on one chassis and across chassis).
const VMS: [(&str, &str, u32); 6] = [
    ("red1", "red", 1),
    ("red2", "red", 2),
    ("red3", "red", 3),
    ("blue1", "blue", 2),
    ("blue2", "blue", 3),
    ("blue3", "blue", 1),
];
/// How long flows may take to converge after the last VM was plugged.
const CONVERGENCE: Duration = Duration::from_secs(120);
/// How long same-network pairs may take to answer again after the migrations.
const RECONVERGENCE: Duration = Duration::from_secs(30);
const PINGS: u32 = 3;
/// The migrated VM (its peers of network red are on the other hypervisors).
const MIGRATED_VM: &str = "red1";
/// (destination, trigger, dual delivery): red1 goes round hv1 -> hv2 -> hv3 -> hv1 twice, each
/// trigger with and without dual delivery.
const MIGRATIONS: [(u32, Trigger, bool); 6] = [
    (2, Trigger::Rarp, true),
    (3, Trigger::Rarp, false),
    (1, Trigger::Unplug, true),
    (2, Trigger::Unplug, false),
    (3, Trigger::Api, true),
    (1, Trigger::Api, false),
];
/// The VMs given floating IPs: the migrated one, and one of the other network elsewhere.
const FIP_VMS: [&str; 2] = [MIGRATED_VM, "blue2"];
/// The probe interval of the demo's migrations, in ms.
const PROBE_INTERVAL_MS: f64 = 1.0;

#[derive(Serialize, Clone)]
struct VmRow {
    name: String,
    network: String,
    hv: u32,
    ip: String,
    mac: String,
}

#[derive(Serialize, Clone)]
struct Pair {
    from: String,
    to: String,
    same_network: bool,
    transmitted: u32,
    received: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Pair {
    fn passed(&self) -> bool {
        self.error.is_none() && self.transmitted > 0 && self.received == self.transmitted
    }

    fn blocked(&self) -> bool {
        self.error.is_none() && self.transmitted > 0 && self.received == 0
    }
}

#[derive(Serialize)]
struct Connectivity {
    pairs_tested: usize,
    pairs_ok: usize,
    failures: Vec<Pair>,
}

#[derive(Serialize)]
struct Isolation {
    pairs_tested: usize,
    pairs_blocked: usize,
    leaks: Vec<Pair>,
}

#[derive(Serialize)]
struct Report {
    hypervisors: usize,
    nb: NbMode,
    networks: usize,
    vms: Vec<VmRow>,
    connectivity: Connectivity,
    isolation: Isolation,
    /// From the last VM plugged to every same-network pair answering.
    converged_after_s: f64,
    /// `tern lab migrate`'s report of each migration, with `ok` (carried out, and the VM reached
    /// its peer after it) and `error` when it was not.
    migrations: Vec<Value>,
    /// Same-network pairs after the migrations.
    after_migrations: Connectivity,
    /// Router r1 joins red and blue: pairs across networks and hypervisors, through it.
    routing: services::Routing,
    /// The migrated VM's routed pairs after the migrations.
    routing_after_migrations: services::Routing,
    dhcp: services::Dhcp,
    port_security: services::PortSecurity,
    security_groups: services::SecurityGroups,
    /// The same checks with the migrated VM as the target, after its migrations.
    security_groups_after_migrations: services::SecurityGroups,
    /// Floating IPs of red1 and blue2: the external host reaches each, each reaches it.
    floating_ips: services::FloatingIps,
    /// The migrated VM's floating IP after its migrations.
    floating_ips_after_migrations: services::FloatingIps,
    passed: bool,
    #[serde(skip)]
    pairs: Vec<Pair>,
}

pub async fn run(dir: &Path, args: DemoArgs) -> Result<(), Exit> {
    let started = Instant::now();
    let lab = super::bring_up(dir, HYPERVISORS, args.nb, &args.prefix).await?;
    let dir = lab.dir().to_path_buf();
    let outcome = tokio::select! {
        r = scenario(lab, args.nb) => r,
        _ = tokio::signal::ctrl_c() => Err(Exit::failure(anyhow!("interrupted"))),
    };
    progress("tearing the lab down");
    let down = super::tear_down(&dir).await;
    let report = outcome?;
    print_report(&report);
    println!("total {:.1} s (lab up, VMs, convergence, pings, teardown)", secs(started));
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&report).map_err(|e| Exit::failure(anyhow!(e)))?;
        std::fs::write(path, json).map_err(|e| Exit::failure(anyhow!("writing {}: {e}", path.display())))?;
    }
    down.map_err(Exit::failure)?;
    if report.passed {
        println!("PASS");
        Ok(())
    } else {
        Err(Exit::failure(anyhow!(
            "demo failed: {} of {} same-network pairs failed, {} of {} cross-network pairs leaked, {} of {} migrations succeeded, {} of {} same-network pairs failed after them",
            report.connectivity.failures.len(),
            report.connectivity.pairs_tested,
            report.isolation.leaks.len(),
            report.isolation.pairs_tested,
            report.migrations.iter().filter(|m| m["ok"] == true).count(),
            MIGRATIONS.len(),
            report.after_migrations.failures.len(),
            report.after_migrations.pairs_tested
        )))
    }
}

async fn scenario(mut lab: Lab, nb: NbMode) -> Result<Report, Exit> {
    for (name, network, hv) in VMS {
        let vm = super::vm_add(&mut lab, name, hv, network, None).await?;
        progress(format!("VM {name} on hv{hv}, network {network}: {} {}", vm.mac(), vm.ip_cidr()));
    }
    let rows: Vec<VmRow> = VMS
        .iter()
        .filter_map(|(name, network, hv)| {
            let vm = lab.vm(name)?;
            Some(VmRow {
                name: (*name).into(),
                network: (*network).into(),
                hv: *hv,
                ip: vm.ip().to_string(),
                mac: vm.mac().into(),
            })
        })
        .collect();
    let mut pairs = Vec::new();
    for a in &rows {
        for b in &rows {
            if a.name != b.name {
                pairs.push((a.name.clone(), b.name.clone(), a.network == b.network));
            }
        }
    }

    // Convergence: every same-network pair answers one ping (retried) before anything is judged.
    let converging = Instant::now();
    progress("waiting for the flows to converge (same-network pings)");
    let same_pairs: Vec<(String, String, bool)> = pairs.iter().filter(|p| p.2).cloned().collect();
    let converged = converge(&lab, &same_pairs, CONVERGENCE).await;
    let converged_after_s = secs(converging);
    if converged {
        progress(format!("converged after {converged_after_s:.2} s"));
    } else {
        progress(format!("some pairs never answered within {CONVERGENCE:?}; measuring anyway"));
    }

    // The measurement: every ordered pair, PINGS pings each, all at once.
    let pairs = ping_pairs(&lab, &pairs).await;
    let same: Vec<&Pair> = pairs.iter().filter(|p| p.same_network).collect();
    let cross: Vec<&Pair> = pairs.iter().filter(|p| !p.same_network).collect();
    let connectivity = judge_same(&same);
    let isolation = Isolation {
        pairs_tested: cross.len(),
        pairs_blocked: cross.iter().filter(|p| p.blocked()).count(),
        leaks: cross.iter().filter(|p| !p.blocked()).map(|p| (*p).clone()).collect(),
    };

    // The services: a router, DHCP, port security, security groups.
    progress("router r1 joins red and blue; routed pings across hypervisors");
    if let Err(e) = services::add_router(&lab, "r1", &["red", "blue"]).await {
        progress(format!("router r1 could not be set up: {e:#}"));
    }
    let cross_hv: Vec<(String, String)> = [("red1", "blue1"), ("red2", "blue2"), ("red3", "blue3")]
        .iter()
        .flat_map(|(a, b)| [((*a).to_owned(), (*b).to_owned()), ((*b).to_owned(), (*a).to_owned())])
        .collect();
    let routing = services::routing(&lab, &cross_hv).await;
    progress("DHCP: every VM asks for its address");
    let names: Vec<&str> = VMS.iter().map(|(n, _, _)| *n).collect();
    let dhcp = services::dhcp(&lab, &names).await;
    progress("port security: spoofed address and MAC from red2");
    let port_security = services::port_security(&lab, "red2", "red3").await;
    progress("security groups on blue2, reached from red2 through the router");
    let security_groups = services::security_groups(&lab, "red2", "blue2").await.unwrap_or_else(|e| {
        progress(format!("security groups could not be set up: {e:#}"));
        services::SecurityGroups { tested: 1, ..Default::default() }
    });

    progress(format!("floating IPs for {} from the external network", FIP_VMS.join(" and ")));
    for vm in FIP_VMS {
        if let Err(e) = services::add_floating_ip(&lab, vm).await {
            progress(format!("{vm}: no floating IP: {:#}", e.error));
        }
    }
    let floating_ips = services::floating_ips(&lab, &FIP_VMS).await;

    // Live migrations of one VM around the hypervisors: every trigger, with and without dual
    // delivery (probed over L2, through the router and through its floating IP). Their blackouts are reported, not judged; a migration that could not be carried
    // out, or after which the VM does not reach its peer, fails the demo.
    let mut migrations = Vec::new();
    for (i, (dest, trigger, dual_delivery)) in MIGRATIONS.into_iter().enumerate() {
        let from = lab.vm(MIGRATED_VM).map(|v| format!("hv{}", v.hv())).unwrap_or_default();
        progress(format!(
            "migration {}/{}: {MIGRATED_VM} {from} -> hv{dest}, trigger {}, dual delivery {}",
            i + 1,
            MIGRATIONS.len(),
            trigger.name(),
            if dual_delivery { "on" } else { "off" }
        ));
        let plan = Plan {
            vm: MIGRATED_VM.into(),
            dest,
            trigger,
            dual_delivery,
            probe_interval_ms: PROBE_INTERVAL_MS,
            probes: vec![migrate::ProbeKind::L3, migrate::ProbeKind::Fip],
        };
        let entry = match migrate::migrate_once(&mut lab, &plan).await {
            Ok(r) => {
                let ok = r.ping_ok;
                let mut v = serde_json::to_value(&r).unwrap_or_default();
                v["ok"] = json!(ok);
                if !ok {
                    v["error"] =
                        json!(format!("{} and {} do not reach each other after it", r.vm, r.l2.peer));
                }
                v
            }
            Err(e) => {
                progress(format!("migration {}/{} failed: {:#}", i + 1, MIGRATIONS.len(), e.error));
                json!({
                    "vm": MIGRATED_VM,
                    "from": from,
                    "to": format!("hv{dest}"),
                    "trigger": trigger,
                    "dual_delivery": dual_delivery,
                    "probe_interval_ms": PROBE_INTERVAL_MS,
                    "ok": false,
                    "error": format!("{:#}", e.error),
                })
            }
        };
        let ok = entry["ok"] == true;
        migrations.push(entry);
        if !ok {
            // The VM may be left half-migrated: the next migrations would only fail too.
            progress("skipping the remaining migrations");
            break;
        }
    }

    // Connectivity after the migrations: every same-network pair again.
    progress("checking same-network connectivity after the migrations");
    if !converge(&lab, &same_pairs, RECONVERGENCE).await {
        progress(format!("some pairs did not answer within {RECONVERGENCE:?}; measuring anyway"));
    }
    let after = ping_pairs(&lab, &same_pairs).await;
    let after_migrations = judge_same(&after.iter().collect::<Vec<_>>());
    let migrated_pairs: Vec<(String, String)> = ["blue1", "blue2", "blue3"]
        .iter()
        .flat_map(|b| [(MIGRATED_VM.to_owned(), (*b).to_owned()), ((*b).to_owned(), MIGRATED_VM.to_owned())])
        .collect();
    let routing_after_migrations = services::routing(&lab, &migrated_pairs).await;
    progress(format!("the floating IP of {MIGRATED_VM} after its migrations"));
    let floating_ips_after_migrations = services::floating_ips(&lab, &[MIGRATED_VM]).await;
    progress(format!("security groups on {MIGRATED_VM} after its migrations, reached from blue1"));
    let security_groups_after_migrations =
        services::security_groups(&lab, "blue1", MIGRATED_VM).await.unwrap_or_else(|e| {
            progress(format!("security groups could not be set up: {e:#}"));
            services::SecurityGroups { tested: 1, ..Default::default() }
        });

    let migrations_ok = migrations.len() == MIGRATIONS.len() && migrations.iter().all(|m| m["ok"] == true);
    let passed = connectivity.failures.is_empty()
        && isolation.leaks.is_empty()
        && !pairs.is_empty()
        && migrations_ok
        && after_migrations.failures.is_empty()
        && after_migrations.pairs_tested > 0
        && routing.pairs_ok == routing.pairs_tested
        && routing_after_migrations.pairs_ok == routing_after_migrations.pairs_tested
        && dhcp.leased == dhcp.vms
        && port_security.spoof_attempts > 0
        && port_security.spoof_dropped == port_security.spoof_attempts
        && security_groups.tested > 0
        && security_groups.as_expected == security_groups.tested
        && security_groups_after_migrations.tested > 0
        && security_groups_after_migrations.as_expected == security_groups_after_migrations.tested
        && floating_ips.tested > 0
        && floating_ips.ok == floating_ips.tested
        && floating_ips_after_migrations.tested > 0
        && floating_ips_after_migrations.ok == floating_ips_after_migrations.tested;
    Ok(Report {
        hypervisors: lab.hypervisors().len(),
        nb,
        networks: 2,
        vms: rows,
        connectivity,
        isolation,
        converged_after_s,
        migrations,
        after_migrations,
        routing,
        routing_after_migrations,
        dhcp,
        port_security,
        security_groups,
        security_groups_after_migrations,
        floating_ips,
        floating_ips_after_migrations,
        passed,
        pairs,
    })
}

/// Pings each pair once, retried until it answers or `patience` passes, all pairs at once; true
/// if every pair answered.
async fn converge(lab: &Lab, pairs: &[(String, String, bool)], patience: Duration) -> bool {
    let mut set = tokio::task::JoinSet::new();
    for (a, b, _) in pairs {
        let (lab, a, b) = (lab.clone(), a.clone(), b.clone());
        set.spawn(async move {
            let deadline = Instant::now() + patience;
            loop {
                let ok =
                    super::ping_vms(&lab, &a, &b, 1, Duration::from_secs(1)).await.is_ok_and(|r| r.all_ok());
                if ok || Instant::now() > deadline {
                    return ok;
                }
            }
        });
    }
    set.join_all().await.into_iter().all(|ok| ok)
}

/// Every (from, to, same network) pair, PINGS pings each, all at once; in the pairs' order.
async fn ping_pairs(lab: &Lab, pairs: &[(String, String, bool)]) -> Vec<Pair> {
    let mut set = tokio::task::JoinSet::new();
    for (i, (a, b, same)) in pairs.iter().enumerate() {
        let (lab, a, b, same) = (lab.clone(), a.clone(), b.clone(), *same);
        set.spawn(async move {
            let r = super::ping_vms(&lab, &a, &b, PINGS, Duration::from_secs(1)).await;
            let pair = match r {
                Ok(r) => Pair {
                    from: a,
                    to: b,
                    same_network: same,
                    transmitted: r.transmitted,
                    received: r.received,
                    error: None,
                },
                Err(e) => Pair {
                    from: a,
                    to: b,
                    same_network: same,
                    transmitted: 0,
                    received: 0,
                    error: Some(format!("{:#}", e.error)),
                },
            };
            (i, pair)
        });
    }
    let mut measured = set.join_all().await;
    measured.sort_by_key(|(i, _)| *i);
    measured.into_iter().map(|(_, p)| p).collect()
}

/// Same-network pairs judged: all must reach each other.
fn judge_same(same: &[&Pair]) -> Connectivity {
    Connectivity {
        pairs_tested: same.len(),
        pairs_ok: same.iter().filter(|p| p.passed()).count(),
        failures: same.iter().filter(|p| !p.passed()).map(|p| (*p).clone()).collect(),
    }
}

fn print_report(r: &Report) {
    println!();
    println!(
        "tern lab demo: {} hypervisors, {} networks, {} VMs, NB {}",
        r.hypervisors,
        r.networks,
        r.vms.len(),
        r.nb
    );
    println!();
    println!("{:<6} {:<6} {:<4} {:<15} {:<17}", "VM", "NET", "HV", "IP", "MAC");
    for v in &r.vms {
        println!("{:<6} {:<6} hv{:<2} {:<15} {:<17}", v.name, v.network, v.hv, v.ip, v.mac);
    }
    println!();
    let where_ = |name: &str| {
        r.vms.iter().find(|v| v.name == name).map(|v| format!("{}@hv{}", v.network, v.hv)).unwrap_or_default()
    };
    println!(
        "{:<6} {:<6} {:<9} {:<9} {:<8} {:<8} {:<6}",
        "FROM", "TO", "FROM-NET", "TO-NET", "EXPECT", "REPLIES", "RESULT"
    );
    for p in &r.pairs {
        let (expect, good) = if p.same_network { ("reach", p.passed()) } else { ("blocked", p.blocked()) };
        let replies = match &p.error {
            Some(_) => "error".to_owned(),
            None => format!("{}/{}", p.received, p.transmitted),
        };
        println!(
            "{:<6} {:<6} {:<9} {:<9} {:<8} {:<8} {:<6}",
            p.from,
            p.to,
            where_(&p.from),
            where_(&p.to),
            expect,
            replies,
            if good { "ok" } else { "FAIL" }
        );
        if let Some(e) = &p.error {
            println!("       error: {e}");
        }
    }
    println!();
    println!(
        "connectivity: {}/{} same-network pairs reach each other",
        r.connectivity.pairs_ok, r.connectivity.pairs_tested
    );
    println!(
        "isolation:    {}/{} cross-network pairs blocked (frames sent to the peer's MAC via a host route)",
        r.isolation.pairs_blocked, r.isolation.pairs_tested
    );
    println!("convergence:  {:.2} s after the last VM was plugged", r.converged_after_s);
    let fails =
        |f: &[String]| if f.is_empty() { String::new() } else { format!(" (failed: {})", f.join(", ")) };
    println!(
        "routing:      {}/{} cross-network pairs on different hypervisors reach each other through router r1{}",
        r.routing.pairs_ok,
        r.routing.pairs_tested,
        fails(&r.routing.failures)
    );
    println!(
        "dhcp:         {}/{} VMs got their address by DHCP from their chassis{}",
        r.dhcp.leased,
        r.dhcp.vms,
        fails(&r.dhcp.failures)
    );
    println!(
        "port security: {}/{} spoofed pings (foreign address, foreign MAC) dropped",
        r.port_security.spoof_dropped, r.port_security.spoof_attempts
    );
    print_security_groups("security groups", &r.security_groups);
    println!(
        "floating IPs: {}/{} (the external host reaches {}'s floating IPs, and they reach it){}",
        r.floating_ips.ok,
        r.floating_ips.tested,
        FIP_VMS.join(" and "),
        fails(&r.floating_ips.failures)
    );
    println!();
    print_migrations(r);
    println!(
        "floating IP after the migrations: {}/{}{}",
        r.floating_ips_after_migrations.ok,
        r.floating_ips_after_migrations.tested,
        fails(&r.floating_ips_after_migrations.failures)
    );
    println!(
        "routing after the migrations: {}/{} of {MIGRATED_VM}'s routed pairs{}",
        r.routing_after_migrations.pairs_ok,
        r.routing_after_migrations.pairs_tested,
        fails(&r.routing_after_migrations.failures)
    );
    print_security_groups("security groups after the migrations", &r.security_groups_after_migrations);
}

/// A security-group check's count and its cases.
fn print_security_groups(label: &str, sg: &services::SecurityGroups) {
    println!("{label}: {}/{} cases as expected", sg.as_expected, sg.tested);
    for c in &sg.cases {
        println!("  {c}");
    }
}

/// The migrations' table and the connectivity after them.
fn print_migrations(r: &Report) {
    let ms = |v: &Value| v.as_f64().map_or_else(|| "-".to_owned(), |x| format!("{x:.2}"));
    let n = |v: &Value| v.as_u64().map_or_else(|| "-".to_owned(), |x| x.to_string());
    println!(
        "{:<6} {:<4} {:<4} {:<7} {:<5} {:<5} {:<9} {:>6} {:>5} {:>17} {:>17} {:<6}",
        "VM",
        "FROM",
        "TO",
        "TRIGGER",
        "DUAL",
        "PROBE",
        "WITH",
        "SENT",
        "LOST",
        "BLACKOUT TO-VM MS",
        "FROM-VM MS",
        "RESULT"
    );
    for m in &r.migrations {
        // One row per probe kind (l2 alone when the migration failed before measuring).
        let probes: Vec<(String, &Value)> = match m["probes"].as_object() {
            Some(p) => {
                ["l2", "l3", "fip"].iter().filter_map(|k| Some(((*k).to_owned(), p.get(*k)?))).collect()
            }
            None => vec![("l2".to_owned(), m)],
        };
        for (kind, p) in probes {
            println!(
                "{:<6} {:<4} {:<4} {:<7} {:<5} {:<5} {:<9} {:>6} {:>5} {:>17} {:>17} {:<6}",
                m["vm"].as_str().unwrap_or("-"),
                m["from"].as_str().unwrap_or("-"),
                m["to"].as_str().unwrap_or("-"),
                m["trigger"].as_str().unwrap_or("-"),
                if m["dual_delivery"] == true { "on" } else { "off" },
                kind,
                p["peer"].as_str().unwrap_or("-"),
                n(&p["sent"]),
                n(&p["lost"]),
                ms(&p["blackout_ms"]["to_vm"]),
                ms(&p["blackout_ms"]["from_vm"]),
                if m["ok"] == true { "ok" } else { "FAIL" }
            );
        }
        if let Some(e) = m["error"].as_str() {
            println!("       error: {e}");
        }
    }
    println!();
    println!(
        "migrations:   {}/{} carried out with the VM reaching its peer after each (blackouts reported, not judged)",
        r.migrations.iter().filter(|m| m["ok"] == true).count(),
        MIGRATIONS.len()
    );
    println!(
        "after them:   {}/{} same-network pairs reach each other",
        r.after_migrations.pairs_ok, r.after_migrations.pairs_tested
    );
    for p in &r.after_migrations.failures {
        let replies = p.error.clone().unwrap_or_else(|| format!("{}/{}", p.received, p.transmitted));
        println!("       {} -> {}: {replies}", p.from, p.to);
    }
}
