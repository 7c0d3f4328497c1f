//! The local controller of one chassis: a reconciler from (NB, OVSDB) to the flows of br-int.
//!
//! It registers its Chassis, lists the NB at revision R and watches from R + 1 (relisting when the
//! store says so), keeps br-int and its Geneve port in place through OVSDB, follows the VIFs plugged
//! there, and after every batch of events recomputes the desired flows (`tern-pipeline`, pure),
//! diffs them against what the switch holds and sends the change as one atomic bundle. On every
//! (re)connection to the switch it reads the installed flows back and converges from them, so a
//! restart of the controller does not disturb traffic.

use crate::cache::NbCache;
use crate::migration::LocalActivations;
use crate::ofconn::{OfEvent, Switch, Target};
use futures::FutureExt;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;
use tern_model::{Chassis, Kind, Object, Status};
use tern_ovsdb::vswitch::{self, BridgeConfig, TunnelConfig};
use tern_ovsdb::watcher::{OvsdbWatcher, WatchEvent as OvsdbEvent, WatcherConfig};
use tern_pipeline::{ChassisView, FlowSet};
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

/// Everything the controller has seen, from which the desired flows follow.
#[derive(Default)]
struct Seen {
    nb: NbCache,
    /// port id -> ofport, for VIFs on br-int.
    vifs: BTreeMap<String, u32>,
    tunnel_ofport: Option<u32>,
    /// Physical network -> br-int's end of the patch to its provider bridge.
    patch_ports: BTreeMap<String, u32>,
    /// Gateways resolved and floating IPs announced on external networks.
    external: crate::external::External,
    /// Migrations activated here by a packet from the VM, ahead of the store.
    activated_here: LocalActivations,
    /// Forwarding pointers of ports that left this chassis: kept [`FORWARDING_GRACE`] after the
    /// NB stops giving them (the record went), for packets still in flight from slower chassis.
    forwarding: BTreeMap<String, (String, tokio::time::Instant)>,
}

/// At most this many NB events already waiting are applied before the flows are computed again:
/// a burst is one computation, and a flood still lets the switch and packet-ins have their turn.
const MAX_BATCH: usize = 4096;

/// How long the source of a migration keeps tunneling late packets on to the destination after
/// the migration's record is gone.
pub const FORWARDING_GRACE: Duration = Duration::from_secs(5);

impl Seen {
    fn view(&mut self, chassis: &str, dual_delivery: bool, chassis_mac: [u8; 6]) -> ChassisView {
        let migrations = self.activated_here.overlay(self.nb.all());
        let local = crate::view::Local {
            chassis: chassis.to_string(),
            dual_delivery,
            chassis_mac,
            vifs: self.vifs.clone(),
            tunnel_ofport: self.tunnel_ofport,
            patch_ports: self.patch_ports.clone(),
            neighbours: self.external.neighbours.clone(),
        };
        let mut view = crate::view::chassis_view(&self.nb, &migrations, &local);
        let now = tokio::time::Instant::now();
        for (port, to) in &view.forwarding {
            self.forwarding.insert(port.clone(), (to.clone(), now + FORWARDING_GRACE));
        }
        self.forwarding.retain(|_, (_, until)| *until > now);
        for (port, (to, _)) in &self.forwarding {
            view.forwarding.entry(port.clone()).or_insert_with(|| to.clone());
        }
        view
    }

    /// When the next kept forwarding pointer expires.
    fn next_expiry(&self) -> Option<tokio::time::Instant> {
        self.forwarding.values().map(|(_, until)| *until).min()
    }

    /// The NB's migration records by port id.
    fn migrations(&self) -> BTreeMap<String, tern_model::Migration> {
        self.nb.all::<tern_model::Migration>().into_iter().map(|m| (m.port_id.clone(), m)).collect()
    }
}

/// What one reconciliation did: sent to whoever listens (tests, benchmarks, `tern status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconciled {
    /// Flow changes sent in the bundle (0: the switch already held the desired flows).
    pub changes: usize,
    /// Flows the switch holds now.
    pub flows: usize,
    /// The NB revision those flows reflect: every NB write up to it is in the switch.
    pub nb_revision: u64,
    /// The ports whose place changed with these flows (where their traffic goes from here on),
    /// for timelines: a live migration shows as each chassis' flows moving the port.
    pub moved: Vec<PortPlace>,
}

/// Where one chassis' flows send a port's traffic.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PortPlace {
    pub port: String,
    /// The chassis the port's traffic is delivered to (two during dual delivery, none when
    /// the port is gone).
    pub location: Vec<String>,
    /// This chassis tunnels late packets for the port on to this one (a migration's source).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarding_to: Option<String>,
}

/// The place of every port in a view.
fn places(view: &ChassisView) -> BTreeMap<String, PortPlace> {
    view.ports
        .values()
        .map(|p| {
            let place = PortPlace {
                port: p.id.clone(),
                location: p.location.iter().map(str::to_owned).collect(),
                forwarding_to: view.forwarding.get(&p.id).cloned(),
            };
            (p.id.clone(), place)
        })
        .collect()
}

/// The places in `now` that differ from `before` (a port gone has an empty location).
fn moved(before: &BTreeMap<String, PortPlace>, now: &BTreeMap<String, PortPlace>) -> Vec<PortPlace> {
    let mut out: Vec<PortPlace> =
        now.iter().filter(|(id, p)| before.get(*id) != Some(p)).map(|(_, p)| p.clone()).collect();
    out.extend(before.keys().filter(|id| !now.contains_key(*id)).map(|id| PortPlace {
        port: id.clone(),
        location: Vec::new(),
        forwarding_to: None,
    }));
    out
}

/// Runs the controller until `shutdown` resolves. Each reconciliation is reported on `reports`.
pub async fn run(
    config: ControllerConfig,
    nb: Nb,
    reports: Option<mpsc::UnboundedSender<Reconciled>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
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
    let (cache, mut nb_watch) = retrying("list the NB", || relist(&nb, config.blind_to_migrations)).await;
    let mut seen = Seen { nb: cache, ..Seen::default() };
    let mut installed: Option<FlowSet> = None;
    let mut dirty = true;
    // Port status is only judged once OVSDB has told us which VIFs exist.
    let mut ovsdb_synced = false;
    // The VIFs at the previous look, to tell an unplug from a VIF never seen.
    let mut vifs_before: BTreeMap<String, u32> = BTreeMap::new();
    let mut first_look = true;
    let mut dhcp_limit = crate::dhcp::RateLimit::default();
    // The port places of the last flows reported.
    let mut reported_places: BTreeMap<String, PortPlace> = BTreeMap::new();
    // Whether br-int and its tunnel port are known to be in place; retried until they are.
    let mut bridge_ready = false;
    let metrics = crate::metrics::Metrics::new(&config.chassis);
    let mut retry = tokio::time::interval(Duration::from_secs(1));
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    tracing::info!(chassis = %config.chassis, ovsdb = %config.ovsdb, openflow = %config.openflow, "controller started");

    loop {
        if dirty {
            dirty = false;
            if ovsdb_synced && first_look {
                // The VIFs found at start are not news: a VIF the old source still holds after the
                // binding moved must not look like a migration back.
                first_look = false;
                vifs_before = seen.vifs.clone();
            }
            let records = seen.migrations();
            // The migration steps can only be about ports plugged here (now or at the last look)
            // or with a record: those are the ones looked at, not every port of the cloud.
            let concerned: std::collections::BTreeSet<&str> = seen
                .vifs
                .keys()
                .chain(vifs_before.keys())
                .chain(records.keys())
                .map(String::as_str)
                .collect();
            let look = crate::migration::Look {
                me: &config.chassis,
                ports: &seen.nb.some(concerned),
                port_seen_at: &|id| seen.nb.seen_at(Kind::Port, id),
                records: &records,
                vifs_now: &seen.vifs,
                vifs_before: &vifs_before,
                dual_delivery: config.dual_delivery,
            };
            metrics.migrations(records.values());
            let (steps, after_flows) = look.run(&mut seen.activated_here);
            if ovsdb_synced {
                // Our own migration writes count at once (a source that activates on its unplug
                // forwards from now on), not a watch round trip later.
                for written in crate::migration::apply(&nb, steps).await {
                    seen.nb.apply_ahead(written);
                }
                vifs_before = seen.vifs.clone();
            }
            // Flows wait for OVSDB too: without the VIFs the desired flows would be missing the
            // local ports, and a restarted controller would tear them down before putting them back.
            if let Some(inst) = installed.as_ref().filter(|_| ovsdb_synced) {
                let started = std::time::Instant::now();
                let view = seen.view(
                    &config.chassis,
                    config.dual_delivery,
                    tern_pipeline::view::chassis_mac(config.tunnel_ip),
                );
                let desired = tern_pipeline::compute(&view);
                let now_places = places(&view);
                for c in desired.conflicts() {
                    tracing::warn!(kept = %c.kept, rejected = %c.rejected, "two flows for one match; kept the first");
                }
                let mods = FlowSet::diff(inst, &desired);
                let mut report = |changes| {
                    metrics.reconciled(started.elapsed());
                    metrics.installed(desired.len(), seen.nb.revision(), seen.nb.revision());
                    if let Some(r) = &reports {
                        let _ = r.send(Reconciled {
                            changes,
                            flows: desired.len(),
                            nb_revision: seen.nb.revision(),
                            moved: moved(&reported_places, &now_places),
                        });
                    }
                    reported_places = now_places.clone();
                };
                let mut flows_in_place = mods.is_empty();
                if mods.is_empty() {
                    report(0);
                } else {
                    let n = mods.len();
                    match switch.connection().await {
                        Ok(conn) => match timed(conn.install_bundle(mods)).await {
                            (Ok(()), took) => {
                                metrics.bundle(n, took);
                                tracing::debug!(changes = n, flows = desired.len(), "flows installed");
                                report(n);
                                installed = Some(desired);
                                flows_in_place = true;
                            }
                            (Err(e), _) => {
                                // Read back what the switch holds and try again from there.
                                tracing::warn!(error = %e, "flow bundle refused; re-reading the switch");
                                installed = None;
                                if let Ok(flows) = conn.dump_flows(None).await {
                                    installed = Some(flows.into_iter().map(|s| s.flow).collect());
                                }
                                tokio::time::sleep(Duration::from_millis(200)).await;
                                dirty = true;
                            }
                        },
                        Err(e) => tracing::warn!(error = %e, "no switch connection"),
                    }
                }
                if flows_in_place {
                    // Floating IPs that came here are announced once their flows answer for them.
                    let garps = seen.external.flows_installed(&view);
                    send_packets(&switch, garps, "gratuitous ARP").await;
                }
            }
            // Activations by a packet from the VM: our own flows first (above), then the store.
            for written in crate::migration::apply(&nb, after_flows).await {
                seen.nb.apply_ahead(written);
            }
            // Port status last: it is for people, the datapath does not wait on it.
            if ovsdb_synced {
                sync_port_status(&config, &nb, &seen).await;
            }
        }
        let expiry = seen.next_expiry();
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep_until(expiry.unwrap_or_else(tokio::time::Instant::now)), if expiry.is_some() => {
                dirty = true;
            }
            _ = retry.tick() => {
                if !bridge_ready {
                    bridge_ready = ensure_bridge_logged(&config, &ovsdb).await;
                }
                let probes = seen.external.probes_due(std::time::Instant::now());
                send_packets(&switch, probes, "gateway ARP probe").await;
            }
            event = nb_watch.next() => {
                // One computation for a batch: every event the watch already holds is applied
                // first (up to MAX_BATCH), so a burst of writes costs one recomputation, not one
                // per write.
                let mut event = event;
                let mut applied = 0;
                for _ in 0..MAX_BATCH {
                    match event {
                        Some(Ok(NbEvent::Relist { compact_revision })) => {
                            tracing::warn!(compact_revision, "NB history compacted past our position; relisting");
                            (seen.nb, nb_watch) = retrying("relist the NB", || relist(&nb, config.blind_to_migrations)).await;
                            dirty = true;
                            break;
                        }
                        Some(Ok(NbEvent::Put { object, .. })) if config.blind_to_migrations && object.kind() == Kind::Migration => {}
                        Some(Ok(NbEvent::Delete { kind: Kind::Migration, .. })) if config.blind_to_migrations => {}
                        Some(Ok(ev)) => {
                            dirty |= seen.nb.apply(ev);
                            applied += 1;
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "NB watch failed; relisting");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            (seen.nb, nb_watch) = retrying("relist the NB", || relist(&nb, config.blind_to_migrations)).await;
                            dirty = true;
                            break;
                        }
                        None => {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            (seen.nb, nb_watch) = retrying("relist the NB", || relist(&nb, config.blind_to_migrations)).await;
                            dirty = true;
                            break;
                        }
                    }
                    match nb_watch.next().now_or_never() {
                        Some(next) => event = next,
                        None => break,
                    }
                }
                metrics.batch(applied);
                metrics.received(seen.nb.revision());
            }
            event = ovsdb_events.recv() => {
                let Some(event) = event else { anyhow::bail!("the OVSDB watcher stopped") };
                if let OvsdbEvent::Connected { .. } = event {
                    bridge_ready = false;
                }
                if let OvsdbEvent::Synced { .. } = event {
                    bridge_ready = ensure_bridge_logged(&config, &ovsdb).await;
                }
                if let OvsdbEvent::Synced { .. } = event {
                    ovsdb_synced = true;
                    dirty = true;
                }
                let (vifs, tunnel) = read_vifs(&config, &ovsdb);
                let patch_ports = read_patch_ports(&config, &ovsdb);
                if vifs != seen.vifs || tunnel != seen.tunnel_ofport || patch_ports != seen.patch_ports {
                    seen.vifs = vifs;
                    seen.tunnel_ofport = tunnel;
                    seen.patch_ports = patch_ports;
                    dirty = true;
                }
            }
            event = of_events.recv() => match event {
                Some(OfEvent::Connected { .. }) => {
                    // Converge from what the switch holds: no clearing, no gap.
                    if let Ok(conn) = switch.connection().await {
                        match conn.dump_flows(None).await {
                            Ok(flows) => {
                                installed = Some(flows.into_iter().map(|s| s.flow).collect());
                                dirty = true;
                            }
                            Err(e) => tracing::warn!(error = %e, "cannot read the installed flows"),
                        }
                    }
                }
                Some(OfEvent::Disconnected { reason }) => {
                    tracing::warn!(%reason, "switch connection lost");
                    installed = None;
                }
                Some(OfEvent::Message(msg)) => {
                    use tern_pipeline::apps::packet_in::{classify, PacketIn};
                    let Some(packet) = classify(&msg) else { continue };
                    metrics.packet_in(packet.kind());
                    match packet {
                        PacketIn::Dhcp { port_key, frame } => {
                            serve_dhcp(&seen, &switch, &mut dhcp_limit, port_key, frame).await;
                        }
                        PacketIn::GatewayArp { frame, .. } => {
                            if seen.external.learn(frame) {
                                tracing::info!(neighbours = ?seen.external.neighbours, "external gateway resolved");
                                dirty = true;
                            }
                        }
                        PacketIn::Activation { port_key } => {
                            let (at, records) = (crate::migration::now_ns(), seen.migrations());
                            let port: Vec<tern_model::Port> = seen.nb.some(seen.nb.by_unique_key(Kind::Port, port_key));
                            if seen.activated_here.on_packet(&config.chassis, port_key, &port, &records, at) {
                                tracing::info!(port_key, "migration activated here by a packet from the VM");
                                dirty = true;
                            }
                        }
                        PacketIn::Other => {}
                    }
                }
                None => anyhow::bail!("the OpenFlow connection task stopped"),
            },
        }
    }
}

/// Sends packets the controller made (`what` names them in the log).
async fn send_packets(switch: &Switch, packets: Vec<tern_openflow::PacketOut>, what: &str) {
    if packets.is_empty() {
        return;
    }
    match switch.connection().await {
        Ok(conn) => {
            for p in packets {
                if let Err(e) = conn.packet_out(p) {
                    tracing::warn!(error = %e, "{what} not sent");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "{what} not sent: no switch connection"),
    }
}

/// Answers a DHCP request from the VIF of the port with key `key` (see `crate::dhcp`), within
/// the port's rate.
async fn serve_dhcp(
    seen: &Seen,
    switch: &Switch,
    limit: &mut crate::dhcp::RateLimit,
    key: u32,
    frame: &[u8],
) {
    let Some(id) = seen.nb.by_unique_key(Kind::Port, key) else { return };
    let (Some(Object::Port(port)), Some(&ofport)) = (seen.nb.get(Kind::Port, id), seen.vifs.get(id)) else {
        return;
    };
    if !limit.allow(key, std::time::Instant::now()) {
        tracing::debug!(port = %id, "DHCP request over the port's rate; dropped");
        return;
    }
    let network = match seen.nb.get(Kind::Network, &port.network_id) {
        Some(Object::Network(n)) => Some(n),
        _ => None,
    };
    let subnets: Vec<tern_model::Subnet> = seen.nb.some(seen.nb.subnets_on_network(&port.network_id));
    let Some(lease) = crate::dhcp::Lease::of(port, &subnets, network) else { return };
    match crate::dhcp::reply(frame, &lease) {
        Ok(reply) => {
            let out = tern_openflow::PacketOut::new(reply, vec![tern_openflow::Action::output(ofport)]);
            match switch.connection().await.and_then(|conn| conn.packet_out(out)) {
                Ok(()) => tracing::info!(port = %id, address = %lease.address, "DHCP answered"),
                Err(e) => tracing::warn!(port = %id, error = %e, "DHCP reply not sent"),
            }
        }
        Err(e) => tracing::debug!(port = %id, error = %e, "no DHCP reply"),
    }
}

/// Awaits `f` and says how long it took.
async fn timed<T>(f: impl std::future::Future<Output = T>) -> (T, Duration) {
    let start = std::time::Instant::now();
    let out = f.await;
    (out, start.elapsed())
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

/// Marks the ports bound here ACTIVE when their VIF is plugged here and DOWN when it is not. Runs
/// after every batch of events; a write that loses a race is redone when the NB event arrives.
async fn sync_port_status(config: &ControllerConfig, nb: &Nb, seen: &Seen) {
    for id in seen.nb.ports_on_chassis(&config.chassis) {
        let Some(Object::Port(port)) = seen.nb.get(Kind::Port, id) else { continue };
        let want = if seen.vifs.contains_key(id) { Status::Active } else { Status::Down };
        if port.status != want {
            let mut updated = port.clone();
            updated.status = want;
            match nb.put(Object::Port(updated)).await {
                Ok(_) => tracing::info!(port = %id, status = ?want, "port status"),
                Err(e) => tracing::debug!(port = %id, error = %e, "port status not written (will retry)"),
            }
        }
    }
}
