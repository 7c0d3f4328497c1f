//! The local controller of one chassis: the IO shell around [`crate::core::Core`], the reconciler
//! from (NB, OVSDB) to the flows of br-int.
//!
//! It registers its Chassis, keeps its heartbeat, lists the NB at revision R and watches from R + 1
//! (relisting when the store says so), keeps br-int and its Geneve port in place through OVSDB,
//! follows the VIFs plugged there and the switch's connection, and hands all of it to the core.
//! What the core decides — migration writes, bundles, packet-outs, port status — it carries out
//! in tasks beside its loop, whose results go back to the core. On every (re)connection to the
//! switch it reads the installed flows back and the core converges from them, so a restart of the
//! controller does not disturb traffic.

use crate::cache::NbCache;
use crate::ofconn::{OfEvent, Switch, Target};
use futures::FutureExt;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;
use tern_model::{Chassis, Kind, Object};
use tern_ovsdb::vswitch::{self, BridgeConfig, TunnelConfig};
use tern_ovsdb::watcher::{OvsdbWatcher, WatchEvent as OvsdbEvent, WatcherConfig};
use tern_pipeline::FlowSet;
use tern_store::liveness::Heartbeater;
use tern_store::nb::{Nb, NbEvent, NbWatch};
use tokio::sync::mpsc;

/// What a controller needs to know about its chassis.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// The chassis name (its hostname, as Nova's `binding:host_id` names it).
    pub chassis: String,
    pub tunnel_ip: Ipv4Addr,
    /// OVSDB target, e.g. `unix:/run/openvswitch/db.sock`.
    pub ovsdb: String,
    /// The bridge's OpenFlow target, e.g. `unix:/run/openvswitch/br-int.mgmt`.
    pub openflow: String,
    pub bridge: String,
    /// `system` on real hypervisors, `netdev` (userspace) in the lab.
    pub datapath_type: String,
    /// How often the heartbeat is refreshed.
    pub report_interval: Duration,
    /// After this long without a heartbeat the chassis counts as down (the heartbeat lease's TTL).
    pub down_time: Duration,
    /// Deliver a migrating port's traffic to both ends until activation (off: the spec's original
    /// design, traffic moves only at activation).
    pub dual_delivery: bool,
    /// Fault injection for tests: ignore every Migration record, as a chassis whose NB watch
    /// missed them all would (it must converge from the port bindings alone).
    pub blind_to_migrations: bool,
    /// Bridge mappings: physical network -> the provider bridge (made by the operator, e.g.
    /// `physnet1` -> `br-ex`) that reaches it. The controller patches each to br-int; flat
    /// networks on a mapped physical network (external networks: floating IPs) are reached
    /// through it.
    pub bridge_mappings: BTreeMap<String, String>,
}

/// Parses bridge mappings as operators write them: `physnet1:br-ex[,physnet2:br-ex2]`.
pub fn parse_bridge_mappings(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        match item.split_once(':') {
            Some((physnet, bridge)) if ok(physnet) && ok(bridge) => {
                if out.insert(physnet.to_string(), bridge.to_string()).is_some() {
                    return Err(format!(
                        "bridge mapping {item:?}: physical network {physnet} is mapped twice"
                    ));
                }
            }
            _ => {
                return Err(format!(
                    "bridge mapping {item:?} is not PHYSNET:BRIDGE (letters, digits, '-', '_', '.')"
                ))
            }
        }
    }
    Ok(out)
}

/// br-int's end of the patch to the provider bridge of `physnet`.
pub fn patch_port_on_br_int(physnet: &str) -> String {
    format!("patch-br-int-to-{physnet}")
}

/// The provider bridge's end of the patch to br-int for `physnet`.
pub fn patch_port_on_provider(physnet: &str) -> String {
    format!("patch-{physnet}-to-br-int")
}

impl ControllerConfig {
    /// Chassis `chassis` with `tern controller`'s defaults for the rest: bridge br-int, the kernel
    /// datapath, heartbeats every 1 s with 3 s to down, dual delivery on, no bridge mappings.
    pub fn new(
        chassis: impl Into<String>,
        tunnel_ip: Ipv4Addr,
        ovsdb: impl Into<String>,
        openflow: impl Into<String>,
    ) -> ControllerConfig {
        ControllerConfig {
            chassis: chassis.into(),
            tunnel_ip,
            ovsdb: ovsdb.into(),
            openflow: openflow.into(),
            bridge: "br-int".into(),
            datapath_type: "system".into(),
            report_interval: tern_store::liveness::DEFAULT_REPORT_INTERVAL,
            down_time: tern_store::liveness::DEFAULT_DOWN_TIME,
            dual_delivery: true,
            blind_to_migrations: false,
            bridge_mappings: BTreeMap::new(),
        }
    }

    /// The OpenFlow management socket beside an OVSDB unix socket (`<dir>/<bridge>.mgmt`).
    pub fn default_openflow(ovsdb: &str, bridge: &str) -> Option<String> {
        let path = std::path::Path::new(ovsdb.strip_prefix("unix:")?);
        Some(format!("unix:{}", path.parent()?.join(format!("{bridge}.mgmt")).display()))
    }
}

/// The name of the single flow-based Geneve port tern puts on br-int.
pub const TUNNEL_PORT: &str = "tern-geneve";

/// At most this many NB events already waiting are applied before the flows are computed again:
/// a burst is one computation, and a flood still lets the switch and packet-ins have their turn.
const MAX_BATCH: usize = 4096;

pub use crate::core::{PortPlace, Reconciled, FORWARDING_GRACE};

/// What the shell's background tasks hand back.
enum Done {
    Written(Vec<NbEvent>),
    Bundle {
        epoch: u64,
        outcome: crate::core::BundleOutcome,
    },
    SwitchRead(Option<FlowSet>),
    /// The switch connection `epoch` holds these flows (read at connection).
    Dumped {
        epoch: u64,
        flows: FlowSet,
    },
    /// The bridge set-up ended: whether br-int and its ports are in place.
    Bridge(bool),
    /// A fresh listing of the NB, and the watch from just after it.
    Relisted(Box<(NbCache, NbWatch)>),
}

/// Runs the controller until `shutdown` resolves: the IO shell around [`crate::core::Core`]. It
/// feeds the core what comes from the NB, OVSDB and the switch, and carries out what the core
/// decides; whatever waits (NB writes, bundles, flow dumps, the bridge set-up) runs as a task
/// beside the loop and hands its result back, so the loop never waits on it. Each
/// reconciliation is reported on `reports`.
pub async fn run(
    config: ControllerConfig,
    nb: Nb,
    reports: Option<mpsc::UnboundedSender<Reconciled>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    use crate::core::{BundleOutcome, Core, Identity, Input, Output};
    use std::time::Instant;
    // Alive first, then registered: a registered chassis is never seen as dead while starting.
    // The store may be unreachable for a while: a controller waits for it, it does not exit.
    let _heartbeat = retrying("start the heartbeat", || {
        Heartbeater::start(
            nb.store().clone(),
            config.chassis.clone(),
            config.report_interval,
            config.down_time,
        )
    })
    .await;
    retrying("register the chassis", || register(&config, &nb)).await;
    let (ovsdb, mut ovsdb_events) = OvsdbWatcher::spawn(WatcherConfig::new(&config.ovsdb));
    let (of_tx, mut of_events) = mpsc::unbounded_channel();
    let target: Target = config.openflow.parse()?;
    let switch = Switch::spawn(target, of_tx);
    let (cache, nb_watch) = retrying("list the NB", || relist(&nb, config.blind_to_migrations)).await;
    // None while a relist runs (a task: the loop goes on serving the switch and OVSDB meanwhile).
    let mut nb_watch = Some(nb_watch);
    let me = Identity {
        chassis: config.chassis.clone(),
        tunnel_ip: config.tunnel_ip,
        dual_delivery: config.dual_delivery,
    };
    let mut core = Core::new(me, cache);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let ovsdb = std::sync::Arc::new(ovsdb);
    let config = std::sync::Arc::new(config);
    // Whether br-int and its tunnel port are known to be in place, and a set-up is running.
    let (mut bridge_ready, mut bridge_busy) = (false, false);
    let mut ovsdb_synced = false;
    // The switch connection the flows are installed on (bumped at every connection change).
    let mut epoch = 0u64;
    let mut retry = tokio::time::interval(Duration::from_secs(1));
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    tracing::info!(chassis = %config.chassis, ovsdb = %config.ovsdb, openflow = %config.openflow, "controller started");

    let setup_bridge = |busy: &mut bool| {
        if !*busy {
            *busy = true;
            let (config, ovsdb, done) = (config.clone(), ovsdb.clone(), done_tx.clone());
            tokio::spawn(async move {
                let _ = done.send(Done::Bridge(ensure_bridge_logged(&config, &ovsdb).await));
            });
        }
    };

    loop {
        // Carry out what the core decided.
        while let Some(output) = core.poll_output() {
            match output {
                Output::Write(steps) => {
                    let (nb, done) = (nb.clone(), done_tx.clone());
                    tokio::spawn(async move {
                        let _ = done.send(Done::Written(crate::migration::apply(&nb, steps).await));
                    });
                }
                Output::Bundle { epoch: for_epoch, mods, .. } => match switch.now() {
                    Some(conn) => {
                        let done = done_tx.clone();
                        tokio::spawn(async move {
                            let outcome = match conn.install_bundle(mods).await {
                                Ok(()) => BundleOutcome::Installed,
                                Err(e) => BundleOutcome::Refused(e.to_string()),
                            };
                            let _ = done.send(Done::Bundle { epoch: for_epoch, outcome });
                        });
                    }
                    None => core.handle(
                        Input::BundleDone { epoch: for_epoch, outcome: BundleOutcome::NoSwitch },
                        Instant::now(),
                    ),
                },
                Output::ReadSwitch => {
                    let (switch, done) = (switch.clone(), done_tx.clone());
                    tokio::spawn(async move {
                        let flows = match switch.connection().await {
                            Ok(conn) => conn
                                .dump_flows(None)
                                .await
                                .ok()
                                .map(|f| f.into_iter().map(|s| s.flow).collect()),
                            Err(_) => None,
                        };
                        let _ = done.send(Done::SwitchRead(flows));
                    });
                }
                Output::PacketOuts { packets, what } => send_packets(&switch, packets, what),
                Output::PortStatus(ports) => {
                    let nb = nb.clone();
                    tokio::spawn(async move {
                        for port in ports {
                            let (id, status) = (port.id.clone(), port.status);
                            match nb.put(Object::Port(port)).await {
                                Ok(_) => tracing::info!(port = %id, ?status, "port status"),
                                Err(e) => {
                                    tracing::debug!(port = %id, error = %e, "port status not written (will retry)")
                                }
                            }
                        }
                    });
                }
                Output::Reconciled(r) => {
                    if let Some(reports) = &reports {
                        let _ = reports.send(r);
                    }
                }
            }
        }
        let timeout = core.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep_until(timeout.unwrap_or_else(tokio::time::Instant::now)), if timeout.is_some() => {
                core.on_timeout(Instant::now());
            }
            _ = retry.tick() => {
                if !bridge_ready {
                    setup_bridge(&mut bridge_busy);
                }
                core.handle(Input::Tick, Instant::now());
            }
            event = async { nb_watch.as_mut().expect("guarded").next().await }, if nb_watch.is_some() => {
                // One computation for a batch: every event the watch already holds is applied
                // first (up to MAX_BATCH), so a burst of writes costs one recomputation, not one
                // per write.
                let watch = nb_watch.as_mut().expect("guarded");
                let mut event = event;
                let mut batch = Vec::new();
                // Why the watch must be replaced by a relist (and how long to wait first).
                let mut relist_after = None;
                for _ in 0..MAX_BATCH {
                    match event {
                        Some(Ok(NbEvent::Relist { compact_revision })) => {
                            tracing::warn!(compact_revision, "NB history compacted past our position; relisting");
                            relist_after = Some(Duration::ZERO);
                            break;
                        }
                        Some(Ok(NbEvent::Put { object, .. })) if config.blind_to_migrations && object.kind() == Kind::Migration => {}
                        Some(Ok(NbEvent::Delete { kind: Kind::Migration, .. })) if config.blind_to_migrations => {}
                        Some(Ok(ev)) => batch.push(ev),
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "NB watch failed; relisting");
                            relist_after = Some(Duration::from_millis(200));
                            break;
                        }
                        None => {
                            tracing::warn!("NB watch ended; relisting");
                            relist_after = Some(Duration::from_millis(200));
                            break;
                        }
                    }
                    match watch.next().now_or_never() {
                        Some(next) => event = next,
                        None => break,
                    }
                }
                core.handle(Input::Nb(batch), Instant::now());
                if let Some(pause) = relist_after {
                    nb_watch = None;
                    let (nb, done, blind) = (nb.clone(), done_tx.clone(), config.blind_to_migrations);
                    tokio::spawn(async move {
                        tokio::time::sleep(pause).await;
                        let listed = retrying("relist the NB", || relist(&nb, blind)).await;
                        let _ = done.send(Done::Relisted(Box::new(listed)));
                    });
                }
            }
            event = ovsdb_events.recv() => {
                let Some(event) = event else { anyhow::bail!("the OVSDB watcher stopped") };
                if let OvsdbEvent::Connected { .. } = event {
                    bridge_ready = false;
                }
                if let OvsdbEvent::Synced { .. } = event {
                    ovsdb_synced = true;
                    bridge_ready = false;
                    setup_bridge(&mut bridge_busy);
                }
                let (vifs, tunnel_ofport) = read_vifs(&config, &ovsdb);
                let patch_ports = read_patch_ports(&config, &ovsdb);
                core.handle(Input::Ovsdb { vifs, tunnel_ofport, patch_ports, synced: ovsdb_synced }, Instant::now());
            }
            event = of_events.recv() => match event {
                Some(OfEvent::Connected { .. }) => {
                    // Converge from what the switch holds: no clearing, no gap.
                    epoch += 1;
                    let (switch, done, for_epoch) = (switch.clone(), done_tx.clone(), epoch);
                    tokio::spawn(async move {
                        let Ok(conn) = switch.connection().await else { return };
                        match conn.dump_flows(None).await {
                            Ok(flows) => {
                                let flows = flows.into_iter().map(|s| s.flow).collect();
                                let _ = done.send(Done::Dumped { epoch: for_epoch, flows });
                            }
                            Err(e) => tracing::warn!(error = %e, "cannot read the installed flows"),
                        }
                    });
                }
                Some(OfEvent::Disconnected { reason }) => {
                    tracing::warn!(%reason, "switch connection lost");
                    epoch += 1;
                    core.handle(Input::SwitchDisconnected, Instant::now());
                }
                Some(OfEvent::Message(msg)) => core.handle(Input::Switch(msg), Instant::now()),
                None => anyhow::bail!("the OpenFlow connection task stopped"),
            },
            done = done_rx.recv() => {
                let now = Instant::now();
                match done.expect("the loop holds a sender") {
                    Done::Written(events) => core.handle(Input::Written(events), now),
                    Done::Bundle { epoch, outcome } => core.handle(Input::BundleDone { epoch, outcome }, now),
                    Done::SwitchRead(flows) => core.handle(Input::SwitchRead(flows), now),
                    Done::Dumped { epoch: of, flows } if of == epoch => {
                        core.handle(Input::SwitchConnected { epoch: of, flows }, now);
                    }
                    Done::Dumped { .. } => {}
                    Done::Bridge(ok) => {
                        bridge_busy = false;
                        bridge_ready = ok;
                    }
                    Done::Relisted(listed) => {
                        let (cache, watch) = *listed;
                        core.handle(Input::Relisted(cache), now);
                        nb_watch = Some(watch);
                    }
                }
            }
        }
    }
}

/// Sends packets the controller made (`what` names them in the log) on the switch connection
/// there is now; without one they are dropped (DHCP clients and probes ask again).
fn send_packets(switch: &Switch, packets: Vec<tern_openflow::PacketOut>, what: &str) {
    let Some(conn) = switch.now() else {
        tracing::warn!("{what} not sent: no switch connection");
        return;
    };
    for p in packets {
        if let Err(e) = conn.packet_out(p) {
            tracing::warn!(error = %e, "{what} not sent");
        }
    }
}

/// Runs `f` until it succeeds, logging each failure, with a backoff from 100 ms to 5 s.
async fn retrying<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let mut backoff = Duration::from_millis(100);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "cannot {what} yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Puts this chassis' record in the NB.
async fn register(config: &ControllerConfig, nb: &Nb) -> anyhow::Result<()> {
    let mut chassis = Chassis::new(&config.chassis, config.tunnel_ip.into());
    chassis.hostname = config.chassis.clone();
    chassis.registered_at = Some(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string());
    if let Some(old) = nb.get(Kind::Chassis, &config.chassis).await? {
        if let Object::Chassis(c) = old.object {
            chassis.unique_key = c.unique_key;
        }
    }
    nb.put(Object::Chassis(chassis)).await?;
    Ok(())
}

/// Lists every NB object at one revision (without Migration records when `blind`) and watches
/// from the next.
async fn relist(nb: &Nb, blind: bool) -> anyhow::Result<(NbCache, NbWatch)> {
    let (all, revision) = nb.dump().await?;
    let objects = all.into_iter().filter(|(kind, _)| !blind || *kind != Kind::Migration);
    let cache = NbCache::from_listing(objects.flat_map(|(_, o)| o), revision);
    let watch = nb.watch(revision + 1).await?;
    Ok((cache, watch))
}

/// Sets up br-int and its tunnel port; says whether that worked.
async fn ensure_bridge_logged(config: &ControllerConfig, ovsdb: &OvsdbWatcher) -> bool {
    let attempt = tokio::time::timeout(Duration::from_secs(15), ensure_bridge(config, ovsdb));
    match attempt.await.unwrap_or_else(|_| Err(anyhow::anyhow!("OVSDB did not answer within 15 s"))) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "cannot set up the bridge yet; retrying");
            false
        }
    }
}

async fn ensure_bridge(config: &ControllerConfig, ovsdb: &OvsdbWatcher) -> anyhow::Result<()> {
    let client = ovsdb.connected(Duration::from_secs(10)).await?;
    let mut bridge = BridgeConfig::br_int(&config.datapath_type, None);
    bridge.name = config.bridge.clone();
    vswitch::ensure_bridge(&client, &bridge).await?;
    let tunnel =
        TunnelConfig::geneve(&config.bridge, TUNNEL_PORT).with_local_ip(&config.tunnel_ip.to_string());
    vswitch::ensure_tunnel_port(&client, &tunnel, Duration::from_secs(30)).await?;
    for (physnet, provider) in &config.bridge_mappings {
        let (int_end, provider_end) = (patch_port_on_br_int(physnet), patch_port_on_provider(physnet));
        let on_provider = TunnelConfig::patch(provider, &provider_end, &int_end);
        vswitch::ensure_tunnel_port(&client, &on_provider, Duration::from_secs(30))
            .await
            .map_err(|e| anyhow::anyhow!("bridge mapping {physnet}:{provider}: {e}"))?;
        let on_br_int = TunnelConfig::patch(&config.bridge, &int_end, &provider_end);
        vswitch::ensure_tunnel_port(&client, &on_br_int, Duration::from_secs(30)).await?;
    }
    Ok(())
}

/// br-int's patch port (ofport) toward each mapped physical network, once OVS has numbered it.
fn read_patch_ports(config: &ControllerConfig, ovsdb: &OvsdbWatcher) -> BTreeMap<String, u32> {
    let replica = ovsdb.replica();
    config
        .bridge_mappings
        .keys()
        .filter_map(|physnet| {
            let (_, row) = replica.by_name("Interface", &patch_port_on_br_int(physnet))?;
            Some((physnet.clone(), vswitch::assigned_ofport(row)?))
        })
        .collect()
}

/// The VIFs on our bridge (port id -> ofport) and the tunnel port's ofport.
fn read_vifs(config: &ControllerConfig, ovsdb: &OvsdbWatcher) -> (BTreeMap<String, u32>, Option<u32>) {
    let replica = ovsdb.replica();
    let vifs = vswitch::vifs_on_bridge(&replica, &config.bridge);
    let ports = vifs.values().filter_map(|v| Some((v.iface_id.clone(), v.ofport?))).collect();
    let tunnel = replica
        .by_name("Interface", TUNNEL_PORT)
        .and_then(|(_, row)| tern_ovsdb::datum::read_opt_int(tern_ovsdb::datum::column(row, "ofport")))
        .and_then(|p| u32::try_from(p).ok())
        .filter(|p| *p > 0);
    (ports, tunnel)
}
