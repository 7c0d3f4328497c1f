//! The controller of one chassis without IO (the quinn-proto shape). A [`Core`] owns everything
//! the controller has seen — its copy of the NB, the VIFs, local activations, forwarding grace,
//! external-network state, DHCP limits — and the desired and installed flows. The shell
//! ([`crate::agent`]) feeds it with [`Core::handle`] (NB events, OVSDB snapshots, packet-ins, the
//! results of the writes and bundles it carried out) and carries out what [`Core::poll_output`]
//! returns (migration writes, bundles tagged with the NB revision they reflect, packet-outs, port
//! status, reports); [`Core::poll_timeout`] says when to call [`Core::on_timeout`]. Nothing here
//! waits: while a computation's writes or bundle are out, inputs keep being applied, and the next
//! computation starts when that one is done.
//!
//! One computation, after anything changed: the migration agent's steps are written (our own
//! writes count at once), then the flows are computed and sent as one bundle, then — once the
//! switch holds them — gratuitous ARPs for floating IPs that came here, the activations decided
//! on a packet, and the status of the ports bound here.

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tern_model::{Kind, Migration, Object, Port, Status};
use tern_openflow::{FlowMod, Message, PacketOut};
use tern_pipeline::apps::packet_in::{classify, PacketIn};
use tern_pipeline::{ChassisView, FlowSet};
use tern_store::nb::NbEvent;

use crate::cache::NbCache;
use crate::migration::{LocalActivations, Step};

/// How long the source of a migration keeps tunneling late packets on to the destination after
/// the migration's record is gone.
pub const FORWARDING_GRACE: Duration = Duration::from_secs(5);

/// A port status write not seen in the NB after this long is sent again.
const STATUS_RETRY: Duration = Duration::from_secs(5);

/// After the switch refused a bundle, the next try waits this long.
const REFUSED_RETRY: Duration = Duration::from_millis(200);

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

/// What the chassis is, as the core needs it.
#[derive(Clone, Debug)]
pub struct Identity {
    pub chassis: String,
    pub tunnel_ip: Ipv4Addr,
    /// Deliver a migrating port's traffic to both ends until activation.
    pub dual_delivery: bool,
}

/// What the shell tells the core.
#[derive(Debug)]
pub enum Input {
    /// NB events, in the watch's order (a batch). Relists are [`Input::Relisted`].
    Nb(Vec<NbEvent>),
    /// A fresh listing of the NB (after a compaction or a broken watch).
    Relisted(NbCache),
    /// A copy of the NB kept by someone else, with the changes that made it from the last one
    /// (several cores in one process share one copy: the simulation of a thousand chassis).
    /// The core looks at the changes as it would at [`Input::Nb`]'s events.
    SharedNb {
        nb: Arc<NbCache>,
        changes: Arc<[NbChange]>,
    },
    /// What OVSDB shows now: the VIFs on br-int (port id -> ofport), the tunnel port's and the
    /// patch ports' ofports; `synced` once OVSDB's first full snapshot has arrived.
    Ovsdb {
        vifs: BTreeMap<String, u32>,
        tunnel_ofport: Option<u32>,
        patch_ports: BTreeMap<String, u32>,
        synced: bool,
    },
    /// The switch is connected (connection `epoch`) and holds these flows.
    SwitchConnected {
        epoch: u64,
        flows: FlowSet,
    },
    SwitchDisconnected,
    /// A message the switch sent on its own.
    Switch(Box<Message>),
    /// The last [`Output::Write`] is done: what was written, as the watch will report it.
    Written(Vec<NbEvent>),
    /// The last [`Output::Bundle`]'s fate.
    BundleDone {
        epoch: u64,
        outcome: BundleOutcome,
    },
    /// After a refused bundle: what the switch holds, if it could be read.
    SwitchRead(Option<FlowSet>),
    /// Once a second: gateways are probed when due.
    Tick,
}

/// One object's change, for [`Input::SharedNb`]: what the NB held before and holds after
/// (`None`: absent).
#[derive(Clone, Debug)]
pub struct NbChange {
    pub before: Option<Object>,
    pub after: Option<Object>,
}

/// What became of a bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BundleOutcome {
    Installed,
    /// The switch refused it (nothing was applied) or the connection failed under it.
    Refused(String),
    /// There was no switch connection to send it on.
    NoSwitch,
}

/// What the core asks the shell to do.
#[derive(Debug)]
pub enum Output {
    /// Write these migration steps to the NB, then hand back [`Input::Written`].
    Write(Vec<Step>),
    /// Send these flow changes as one atomic bundle on connection `epoch`, then hand back
    /// [`Input::BundleDone`]. The flows reflect every NB write up to `nb_revision`.
    Bundle { epoch: u64, mods: Vec<FlowMod>, nb_revision: u64 },
    /// Read the switch's flows, then hand back [`Input::SwitchRead`].
    ReadSwitch,
    /// Send these packets (`what` names them in the log).
    PacketOuts { packets: Vec<PacketOut>, what: &'static str },
    /// Write these ports (their status changed); a write that loses a race is redone later.
    PortStatus(Vec<Port>),
    /// A computation is done (for tests, benchmarks and the lab's timelines).
    Reconciled(Reconciled),
}

/// Where the current computation is.
enum Phase {
    Idle,
    /// The migration steps that go before the flows are being written.
    WritingSteps {
        after_flows: Vec<Step>,
    },
    /// The bundle is out.
    Installing {
        desired: FlowSet,
        view: Box<ChassisView>,
        places: BTreeMap<String, PortPlace>,
        after_flows: Vec<Step>,
        changes: usize,
        sent: Instant,
        /// The NB revision the flows reflect.
        nb_revision: u64,
    },
    /// The bundle was refused; the switch is being read.
    Rereading {
        after_flows: Vec<Step>,
    },
    /// The writes that go after the flows (activations decided on a packet) are out.
    WritingAfter,
}

/// The controller of one chassis, without IO.
pub struct Core {
    me: Identity,
    /// Its copy of the NB: its own (changed in place), or shared with other cores in one
    /// process ([`Input::SharedNb`]; changed only by copying, should the core ever write).
    nb: Arc<NbCache>,
    vifs: BTreeMap<String, u32>,
    tunnel_ofport: Option<u32>,
    patch_ports: BTreeMap<String, u32>,
    external: crate::external::External,
    activated_here: LocalActivations,
    /// Forwarding pointers of ports that left this chassis, kept [`FORWARDING_GRACE`] after the
    /// NB stops giving them (the record went), for packets still in flight from slower chassis.
    forwarding: BTreeMap<String, (String, Instant)>,
    dhcp_limit: crate::dhcp::RateLimit,
    /// What the switch holds (as far as the core knows), once known.
    installed: Option<FlowSet>,
    switch_epoch: u64,
    ovsdb_synced: bool,
    /// The VIFs at the previous look, to tell an unplug from a VIF never seen.
    vifs_before: BTreeMap<String, u32>,
    first_look: bool,
    /// The port places of the last flows reported.
    reported_places: BTreeMap<String, PortPlace>,
    /// Port status written, by port id: (status, the port's revision it was written over, when).
    /// The same write is not sent again for [`STATUS_RETRY`] (it may be on its way).
    status_sent: BTreeMap<String, (Status, u64, Instant)>,
    dirty: bool,
    /// The scope of the last view computed: an NB change it does not touch leaves the flows as
    /// they are, and starts no computation (`None`: every change counts).
    scope: Option<crate::view::Scope>,
    /// Flow computations so far.
    computations: u64,
    /// No computation before this (a refused bundle's pause).
    not_before: Option<Instant>,
    phase: Phase,
    started: Option<Instant>,
    out: VecDeque<Output>,
    metrics: crate::metrics::Metrics,
}

impl Core {
    /// A core on a listing of the NB (its own, or one shared with other cores).
    pub fn new(me: Identity, nb: impl Into<Arc<NbCache>>) -> Core {
        let nb = nb.into();
        let metrics = crate::metrics::Metrics::new(&me.chassis);
        Core {
            me,
            nb,
            vifs: BTreeMap::new(),
            tunnel_ofport: None,
            patch_ports: BTreeMap::new(),
            external: Default::default(),
            activated_here: Default::default(),
            forwarding: BTreeMap::new(),
            dhcp_limit: Default::default(),
            installed: None,
            switch_epoch: 0,
            ovsdb_synced: false,
            vifs_before: BTreeMap::new(),
            first_look: true,
            reported_places: BTreeMap::new(),
            status_sent: BTreeMap::new(),
            dirty: true,
            scope: None,
            computations: 0,
            not_before: None,
            phase: Phase::Idle,
            started: None,
            out: VecDeque::new(),
            metrics,
        }
    }

    /// The NB as this chassis has seen it.
    pub fn nb(&self) -> &NbCache {
        &self.nb
    }

    /// How many times the core computed its flows: an input that leaves this where it was was
    /// handled without looking at the flows (for tests and benchmarks).
    pub fn computations(&self) -> u64 {
        self.computations
    }

    /// Takes one input, at `now`.
    pub fn handle(&mut self, input: Input, now: Instant) {
        match input {
            Input::Nb(events) => {
                let n = events.len();
                let mut touching = 0;
                for ev in events {
                    let touches = self.touches(&ev);
                    if Arc::make_mut(&mut self.nb).apply(ev) && touches {
                        touching += 1;
                        self.dirty = true;
                    }
                }
                self.nb_applied(n, touching);
            }
            Input::SharedNb { nb, changes } => {
                let touching = match &self.scope {
                    Some(scope) => {
                        changes.iter().filter(|c| scope.touches(c.before.as_ref(), c.after.as_ref())).count()
                    }
                    None => changes.len(),
                };
                self.nb = nb;
                self.dirty |= touching > 0;
                self.nb_applied(changes.len(), touching);
            }
            Input::Relisted(cache) => {
                self.nb = Arc::new(cache);
                self.scope = None;
                self.dirty = true;
            }
            Input::Ovsdb { vifs, tunnel_ofport, patch_ports, synced } => {
                if synced && !self.ovsdb_synced {
                    self.ovsdb_synced = true;
                    self.dirty = true;
                }
                if vifs != self.vifs || tunnel_ofport != self.tunnel_ofport || patch_ports != self.patch_ports
                {
                    (self.vifs, self.tunnel_ofport, self.patch_ports) = (vifs, tunnel_ofport, patch_ports);
                    self.dirty = true;
                }
            }
            Input::SwitchConnected { epoch, flows } => {
                // Converge from what the switch holds: no clearing, no gap.
                self.switch_epoch = epoch;
                self.installed = Some(flows);
                self.dirty = true;
            }
            Input::SwitchDisconnected => {
                self.switch_epoch += 1;
                self.installed = None;
            }
            Input::Switch(msg) => self.packet_in(&msg, now),
            Input::Written(events) => self.written(events, now),
            Input::BundleDone { epoch, outcome } => self.bundle_done(epoch, outcome, now),
            Input::SwitchRead(flows) => {
                if matches!(self.phase, Phase::Rereading { .. }) {
                    let Phase::Rereading { after_flows } = std::mem::replace(&mut self.phase, Phase::Idle)
                    else {
                        unreachable!()
                    };
                    self.installed = flows;
                    self.not_before = Some(now + REFUSED_RETRY);
                    self.dirty = true;
                    self.after_flows(after_flows, now);
                }
            }
            Input::Tick => {
                let probes = self.external.probes_due(now);
                self.packets(probes, "gateway ARP probe");
            }
        }
        self.step(now);
    }

    /// Called at [`Core::poll_timeout`].
    pub fn on_timeout(&mut self, now: Instant) {
        if self.forwarding.values().any(|(_, until)| *until <= now) {
            self.dirty = true;
        }
        if self.not_before.is_some_and(|t| t <= now) {
            self.not_before = None;
        }
        self.step(now);
    }

    /// When to call [`Core::on_timeout`]: a kept forwarding pointer expires, or a paused
    /// computation may start.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.dirty {
            // A computation is due anyway: it starts when the running one ends, or at the pause.
            return self.not_before;
        }
        self.forwarding.values().map(|(_, until)| *until).min()
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    // === one computation ===

    /// Starts a computation if something changed and none is running.
    fn step(&mut self, now: Instant) {
        if !self.dirty || !matches!(self.phase, Phase::Idle) || self.not_before.is_some_and(|t| t > now) {
            return;
        }
        self.dirty = false;
        self.not_before = None;
        self.started = Some(now);
        if self.ovsdb_synced && self.first_look {
            // The VIFs found at start are not news: a VIF the old source still holds after the
            // binding moved must not look like a migration back.
            self.first_look = false;
            self.vifs_before = self.vifs.clone();
        }
        let records = self.migrations();
        // The steps can only be about ports plugged here (now or at the last look) or with a
        // record: those are the ones looked at, not every port of the cloud.
        let concerned: std::collections::BTreeSet<&str> = self
            .vifs
            .keys()
            .chain(self.vifs_before.keys())
            .chain(records.keys())
            .map(String::as_str)
            .collect();
        let ports: Vec<Port> = self.nb.some(concerned);
        let nb = &self.nb;
        let look = crate::migration::Look {
            me: &self.me.chassis,
            ports: &ports,
            port_seen_at: &|id| nb.seen_at(Kind::Port, id),
            records: &records,
            vifs_now: &self.vifs,
            vifs_before: &self.vifs_before,
            dual_delivery: self.me.dual_delivery,
        };
        self.metrics.migrations(records.values());
        let (steps, after_flows) = look.run(&mut self.activated_here);
        if self.ovsdb_synced {
            if !steps.is_empty() {
                self.phase = Phase::WritingSteps { after_flows };
                self.out.push_back(Output::Write(steps));
                return;
            }
            self.vifs_before = self.vifs.clone();
        }
        self.flows(after_flows, now);
    }

    fn written(&mut self, events: Vec<NbEvent>, now: Instant) {
        // Our own writes count at once (a source that activates on its unplug forwards from now
        // on), not a watch round trip later. They changed the state, so the agent looks again once
        // this computation is done (a record it completed, say, is its to delete): the watch's copy
        // of them will be old news.
        for ev in events {
            self.dirty |= Arc::make_mut(&mut self.nb).apply_ahead(ev);
        }
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::WritingSteps { after_flows } => {
                self.vifs_before = self.vifs.clone();
                self.flows(after_flows, now);
            }
            Phase::WritingAfter => self.finish(now),
            other => self.phase = other,
        }
    }

    /// Computes the flows and sends the bundle. Flows wait for OVSDB too: without the VIFs the
    /// desired flows would lack the local ports, and a restarted controller would tear them down
    /// before putting them back.
    fn flows(&mut self, after_flows: Vec<Step>, now: Instant) {
        if self.installed.is_none() || !self.ovsdb_synced {
            self.after_flows(after_flows, now);
            return;
        }
        let view = self.view(now);
        self.computations += 1;
        let desired = tern_pipeline::compute(&view);
        for c in desired.conflicts() {
            tracing::warn!(kept = %c.kept, rejected = %c.rejected, "two flows for one match; kept the first");
        }
        let places = places(&view);
        let mods = FlowSet::diff(self.installed.as_ref().expect("checked above"), &desired);
        if mods.is_empty() {
            self.report(0, &desired, places, self.nb.revision(), now);
            let garps = self.external.flows_installed(&view);
            self.packets(garps, "gratuitous ARP");
            self.after_flows(after_flows, now);
            return;
        }
        let (changes, nb_revision) = (mods.len(), self.nb.revision());
        self.out.push_back(Output::Bundle { epoch: self.switch_epoch, mods, nb_revision });
        self.phase = Phase::Installing {
            desired,
            view: Box::new(view),
            places,
            after_flows,
            changes,
            sent: now,
            nb_revision,
        };
    }

    fn bundle_done(&mut self, epoch: u64, outcome: BundleOutcome, now: Instant) {
        if !matches!(self.phase, Phase::Installing { .. }) {
            return;
        }
        let Phase::Installing { desired, view, places, after_flows, changes: n, sent, nb_revision } =
            std::mem::replace(&mut self.phase, Phase::Idle)
        else {
            unreachable!()
        };
        match outcome {
            BundleOutcome::Installed if epoch == self.switch_epoch => {
                self.metrics.bundle(n, now.saturating_duration_since(sent));
                tracing::debug!(changes = n, flows = desired.len(), "flows installed");
                self.report(n, &desired, places, nb_revision, now);
                self.installed = Some(desired);
                let garps = self.external.flows_installed(&view);
                self.packets(garps, "gratuitous ARP");
                self.after_flows(after_flows, now);
            }
            // Installed on a connection that has gone since: what the switch holds now comes
            // with the new connection.
            BundleOutcome::Installed => {
                self.dirty = true;
                self.after_flows(after_flows, now);
            }
            BundleOutcome::Refused(e) => {
                // Read back what the switch holds and try again from there.
                tracing::warn!(error = %e, "flow bundle refused; re-reading the switch");
                self.installed = None;
                self.out.push_back(Output::ReadSwitch);
                self.phase = Phase::Rereading { after_flows };
            }
            BundleOutcome::NoSwitch => {
                tracing::warn!("no switch connection; the flows wait for it");
                self.after_flows(after_flows, now);
            }
        }
    }

    /// The writes that wait for the flows: the activations decided on a packet.
    fn after_flows(&mut self, after_flows: Vec<Step>, now: Instant) {
        if after_flows.is_empty() {
            self.finish(now);
        } else {
            self.phase = Phase::WritingAfter;
            self.out.push_back(Output::Write(after_flows));
        }
    }

    /// Port status last: it is for people, the datapath does not wait on it.
    fn finish(&mut self, now: Instant) {
        self.phase = Phase::Idle;
        if !self.ovsdb_synced {
            return;
        }
        let mut changed = Vec::new();
        for id in self.nb.ports_on_chassis(&self.me.chassis) {
            let Some(Object::Port(port)) = self.nb.get(Kind::Port, id) else { continue };
            let want = if self.vifs.contains_key(id) { Status::Active } else { Status::Down };
            let sent = self.status_sent.get(id).is_some_and(|(status, revision, at)| {
                (*status, *revision) == (want, port.revision_number)
                    && now.saturating_duration_since(*at) < STATUS_RETRY
            });
            if port.status != want && !sent {
                let mut updated = port.clone();
                updated.status = want;
                self.status_sent.insert(id.to_string(), (want, port.revision_number, now));
                changed.push(updated);
            }
        }
        let bound: std::collections::BTreeSet<&str> = self.nb.ports_on_chassis(&self.me.chassis).collect();
        self.status_sent.retain(|id, _| bound.contains(id.as_str()));
        if !changed.is_empty() {
            self.out.push_back(Output::PortStatus(changed));
        }
    }

    /// The switch holds `desired`, which reflects the NB up to `nb_revision`.
    fn report(
        &mut self,
        changes: usize,
        desired: &FlowSet,
        places: BTreeMap<String, PortPlace>,
        nb_revision: u64,
        now: Instant,
    ) {
        if let Some(started) = self.started {
            self.metrics.reconciled(now.saturating_duration_since(started));
        }
        self.metrics.installed(desired.len(), nb_revision, self.nb.revision());
        self.out.push_back(Output::Reconciled(Reconciled {
            changes,
            flows: desired.len(),
            nb_revision,
            moved: moved(&self.reported_places, &places),
        }));
        self.reported_places = places;
    }

    // === what the core knows ===

    /// The chassis' view, with the forwarding pointers kept for their grace period.
    fn view(&mut self, now: Instant) -> ChassisView {
        let migrations = self.activated_here.overlay(self.nb.all());
        let local = crate::view::Local {
            chassis: self.me.chassis.clone(),
            dual_delivery: self.me.dual_delivery,
            chassis_mac: tern_pipeline::view::chassis_mac(self.me.tunnel_ip),
            vifs: self.vifs.clone(),
            tunnel_ofport: self.tunnel_ofport,
            patch_ports: self.patch_ports.clone(),
            neighbours: self.external.neighbours.clone(),
        };
        let (mut view, scope) = crate::view::scoped_view(&self.nb, &migrations, &local);
        self.scope = Some(scope);
        for (port, to) in &view.forwarding {
            self.forwarding.insert(port.clone(), (to.clone(), now + FORWARDING_GRACE));
        }
        self.forwarding.retain(|_, (_, until)| *until > now);
        for (port, (to, _)) in &self.forwarding {
            view.forwarding.entry(port.clone()).or_insert_with(|| to.clone());
        }
        view
    }

    /// After NB events were applied: `n` of them, `touching` of which could change the flows.
    fn nb_applied(&mut self, n: usize, touching: usize) {
        self.metrics.batch(n, touching);
        self.metrics.received(self.nb.revision());
        if !self.dirty && self.scope.is_some() && matches!(self.phase, Phase::Idle) {
            // Nothing here changed: the switch's flows reflect these revisions too.
            if let Some(installed) = &self.installed {
                let (flows, nb_revision) = (installed.len(), self.nb.revision());
                self.metrics.installed(flows, nb_revision, nb_revision);
                let moved = Vec::new();
                self.out.push_back(Output::Reconciled(Reconciled { changes: 0, flows, nb_revision, moved }));
            }
        }
    }

    /// Whether an NB event (not yet applied) can change the last view computed.
    fn touches(&self, event: &NbEvent) -> bool {
        let Some(scope) = &self.scope else { return true };
        match event {
            NbEvent::Put { object, .. } => {
                scope.touches(self.nb.get(object.kind(), object.id()), Some(object))
            }
            NbEvent::Delete { kind, id, .. } => scope.touches(self.nb.get(*kind, id), None),
            NbEvent::Relist { .. } => true,
        }
    }

    /// The NB's migration records by port id.
    fn migrations(&self) -> BTreeMap<String, Migration> {
        self.nb.all::<Migration>().into_iter().map(|m| (m.port_id.clone(), m)).collect()
    }

    fn packets(&mut self, packets: Vec<PacketOut>, what: &'static str) {
        if !packets.is_empty() {
            self.out.push_back(Output::PacketOuts { packets, what });
        }
    }

    // === packet-ins ===

    fn packet_in(&mut self, msg: &Message, now: Instant) {
        let Some(packet) = classify(msg) else { return };
        self.metrics.packet_in(packet.kind());
        match packet {
            PacketIn::Dhcp { port_key, frame } => {
                if let Some(reply) = self.dhcp_reply(port_key, frame, now) {
                    self.packets(vec![reply], "DHCP reply");
                }
            }
            PacketIn::GatewayArp { frame, .. } => {
                if self.external.learn(frame) {
                    tracing::info!(neighbours = ?self.external.neighbours, "external gateway resolved");
                    self.dirty = true;
                }
            }
            PacketIn::Activation { port_key } => {
                let records = self.migrations();
                let port: Vec<Port> = self.nb.some(self.nb.by_unique_key(Kind::Port, port_key));
                let at = crate::migration::now_ns();
                if self.activated_here.on_packet(&self.me.chassis, port_key, &port, &records, at) {
                    tracing::info!(port_key, "migration activated here by a packet from the VM");
                    self.dirty = true;
                }
            }
            PacketIn::Other => {}
        }
    }

    /// The answer to a DHCP request from the VIF of the port with key `key` (see
    /// `crate::dhcp`), within the port's rate.
    fn dhcp_reply(&mut self, key: u32, frame: &[u8], now: Instant) -> Option<PacketOut> {
        let id = self.nb.by_unique_key(Kind::Port, key)?;
        let (Some(Object::Port(port)), Some(&ofport)) = (self.nb.get(Kind::Port, id), self.vifs.get(id))
        else {
            return None;
        };
        if !self.dhcp_limit.allow(key, now) {
            tracing::debug!(port = %id, "DHCP request over the port's rate; dropped");
            return None;
        }
        let network = match self.nb.get(Kind::Network, &port.network_id) {
            Some(Object::Network(n)) => Some(n),
            _ => None,
        };
        let subnets: Vec<tern_model::Subnet> = self.nb.some(self.nb.subnets_on_network(&port.network_id));
        let lease = crate::dhcp::Lease::of(port, &subnets, network)?;
        match crate::dhcp::reply(frame, &lease) {
            Ok(reply) => {
                tracing::info!(port = %id, address = %lease.address, "DHCP answered");
                Some(PacketOut::new(reply, vec![tern_openflow::Action::output(ofport)]))
            }
            Err(e) => {
                tracing::debug!(port = %id, error = %e, "no DHCP reply");
                None
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{Cloud, Sizes};

    /// A core for chassis 0 of a small synthetic cloud, its VIFs plugged, OVSDB synced.
    fn core() -> (Core, Cloud) {
        let cloud = Cloud::new(Sizes { chassis: 3, networks: 2, ports: 12 }, 5);
        let local = cloud.local(0);
        let me = Identity {
            chassis: local.chassis.clone(),
            tunnel_ip: Ipv4Addr::new(172, 16, 0, 1),
            dual_delivery: true,
        };
        let mut core = Core::new(me, NbCache::from_listing(cloud.objects.clone(), 1));
        let now = Instant::now();
        core.handle(
            Input::Ovsdb {
                vifs: local.vifs.clone(),
                tunnel_ofport: Some(1),
                patch_ports: local.patch_ports.clone(),
                synced: true,
            },
            now,
        );
        (core, cloud)
    }

    fn drain(core: &mut Core) -> Vec<Output> {
        std::iter::from_fn(|| core.poll_output()).collect()
    }

    fn bundles(outputs: &[Output]) -> usize {
        outputs.iter().filter(|o| matches!(o, Output::Bundle { .. })).count()
    }

    fn move_port(core: &mut Core, cloud: &Cloud, revision: u64, to: &str) {
        let (id, _) = cloud.placement.iter().find(|(_, (_, c))| *c == 1).unwrap();
        let mut port = cloud.port(id).unwrap().clone();
        port.binding_host_id = to.into();
        core.handle(
            Input::Nb(vec![NbEvent::Put { revision, object: Box::new(Object::Port(port)) }]),
            Instant::now(),
        );
    }

    #[test]
    fn no_flows_before_the_switch_then_one_bundle_at_a_time() {
        let (mut core, cloud) = core();
        // No switch yet: nothing to install, but the port status of the VIFs plugged here.
        let out = drain(&mut core);
        assert_eq!(bundles(&out), 0);
        assert!(out.iter().any(|o| matches!(o, Output::PortStatus(p) if !p.is_empty())));
        // The switch connects holding nothing: one bundle with every flow.
        core.handle(Input::SwitchConnected { epoch: 1, flows: FlowSet::new() }, Instant::now());
        let out = drain(&mut core);
        assert_eq!(bundles(&out), 1);
        // While it is out, NB events are applied but no second bundle goes.
        move_port(&mut core, &cloud, 2, "hv-0002");
        assert_eq!(bundles(&drain(&mut core)), 0);
        // Once it is in: the report, then the next computation's bundle (the move).
        core.handle(Input::BundleDone { epoch: 1, outcome: BundleOutcome::Installed }, Instant::now());
        let out = drain(&mut core);
        let reports: Vec<&Reconciled> =
            out.iter().filter_map(|o| if let Output::Reconciled(r) = o { Some(r) } else { None }).collect();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].nb_revision, 1, "the first bundle reflects revision 1, not the move");
        assert_eq!(bundles(&out), 1);
        let Some(Output::Bundle { nb_revision, .. }) =
            out.iter().find(|o| matches!(o, Output::Bundle { .. }))
        else {
            unreachable!()
        };
        assert_eq!(*nb_revision, 2);
    }

    #[test]
    fn a_refused_bundle_is_retried_from_what_the_switch_holds_after_a_pause() {
        let (mut core, _) = core();
        core.handle(Input::SwitchConnected { epoch: 1, flows: FlowSet::new() }, Instant::now());
        assert_eq!(bundles(&drain(&mut core)), 1);
        let t = Instant::now();
        core.handle(Input::BundleDone { epoch: 1, outcome: BundleOutcome::Refused("no".into()) }, t);
        assert!(drain(&mut core).iter().any(|o| matches!(o, Output::ReadSwitch)));
        core.handle(Input::SwitchRead(Some(FlowSet::new())), t);
        assert_eq!(bundles(&drain(&mut core)), 0, "not at once");
        let at = core.poll_timeout().expect("a pause");
        assert!(at >= t + REFUSED_RETRY);
        core.on_timeout(at);
        assert_eq!(bundles(&drain(&mut core)), 1);
    }

    #[test]
    fn a_bundle_installed_on_a_connection_that_went_counts_for_nothing() {
        let (mut core, _) = core();
        core.handle(Input::SwitchConnected { epoch: 1, flows: FlowSet::new() }, Instant::now());
        assert_eq!(bundles(&drain(&mut core)), 1);
        core.handle(Input::SwitchDisconnected, Instant::now());
        core.handle(Input::BundleDone { epoch: 1, outcome: BundleOutcome::Installed }, Instant::now());
        let out = drain(&mut core);
        assert!(!out.iter().any(|o| matches!(o, Output::Reconciled(_))));
        assert_eq!(bundles(&out), 0, "no switch to send to");
        // The new connection says what it holds, and the flows go again.
        core.handle(Input::SwitchConnected { epoch: 3, flows: FlowSet::new() }, Instant::now());
        assert_eq!(bundles(&drain(&mut core)), 1);
    }
}
