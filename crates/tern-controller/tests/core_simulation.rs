//! Many real controller cores ([`tern_controller::core::Core`]) in one process, on one NB (the
//! memory store), each with a recording switch that applies its bundles, driven by a seeded
//! schedule of Nova's live-migration steps instead of clocks and sockets. Faults:
//! * reordering and duplication: a core's NB events come in batches (one event, or several at
//!   once, as a watch hands over what it holds) picked from anywhere in its inbox, and an event
//!   may come again later;
//! * loss, as an etcd watch can lose events: never the latest state of a key, but states that a
//!   later write has already replaced. A delivery may skip an event whose key has changed again
//!   since (events coalesced, or compacted away under a slow watcher), and now and then a core's
//!   watch falls behind a compaction and the core gets a fresh listing ([`Input::Relisted`],
//!   everything else it knows kept): it misses every intermediate state at once. Any chassis may
//!   miss any key's states, the ends of a migration included;
//! * the cores' IO (migration writes, bundles, port status) carried out late and in any order
//!   between chassis;
//! * controller restarts: a fresh core on a new listing, its IO in flight lost, the switch keeping
//!   its flows.
//!
//! Checked on the flows the switches hold, not on a location function. Whenever a bundle changes
//! a switch's DISPATCH flow of a VM port, the flow delivers the port somewhere, only to chassis
//! that held its VIF (a port that never migrates: only where it is bound), and to one chassis only
//! when dual delivery is off. Once everything is delivered: no Migration record is left; every
//! chassis with a port of a network delivers every port of that network exactly where it is bound
//! (and any other DISPATCH flow a switch holds delivers there too); replaying the whole history to
//! every core makes nobody write or change a flow; and every switch holds exactly the flows the
//! pipeline computes for its chassis from the NB as it is, as a fresh controller would install
//! them (nothing stale anywhere, nothing missing).
//!
//! Sizes: 6 ports migrating 6 times each among 8 chassis, with and without dual delivery, the
//! same under heavy faults, one port migrating 20 times between 2 chassis (the ports alone on one
//! network); and the CI-size cloud, a synthetic cloud ([`tern_controller::synthetic`]: 100
//! chassis, 3,000 VM ports on 300 networks, routers, floating IPs, a security group) in which 12
//! VM ports migrate once each, with and without dual delivery.
//!
//! `TERN_SIM_SEEDS=N` runs N seeds per configuration (default 8; for the cloud 2, and 1 without
//! dual delivery), from `TERN_SIM_FIRST_SEED` (0); a failure names its seed, `TERN_SIM_TRACE=1`
//! prints Nova's steps, the cores' writes and restarts, the events they miss and their relists.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tern_controller::cache::NbCache;
use tern_controller::core::{BundleOutcome, Core, Identity, Input, Output};
use tern_controller::migration;
use tern_controller::synthetic::{self, Sizes};
use tern_model::{Chassis as ChassisObject, Kind, Migration, Network, Object, Port, Status};
use tern_openflow::{FlowMod, FlowModCommand, Match, Message, PacketIn};
use tern_pipeline::cookie::Object as CookieObject;
use tern_pipeline::{App, FlowKey, FlowSet};
use tern_store::nb::{Nb, NbEvent};
use tern_store::{Txn, MAX_TXN_OPS};

#[path = "common/sim.rs"]
mod sim;

use sim::{tunnel_ip, Plan, Rng, Schedule, Step};

#[derive(Clone, Copy, Debug)]
struct Config {
    chassis: usize,
    /// The ports that migrate.
    ports: usize,
    migrations_per_port: usize,
    /// Around the migrating ports: nothing (they are alone on one network, `p0`.. starting on
    /// `hv{p % chassis}`), or a synthetic cloud, `ports` of whose VM ports migrate.
    cloud: Option<CloudSize>,
    dual_delivery: bool,
    /// The chance that a delivery skips an event a later write has superseded; a quarter of it,
    /// on the rare background branch (when there is no restart), that a core relists (its watch
    /// fell behind a compaction).
    loss: f64,
    duplication: f64,
    reordering: f64,
    restarts: f64,
}

/// A synthetic cloud over the configuration's chassis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CloudSize {
    networks: usize,
    ports: usize,
}

/// A synthetic cloud ([`synthetic::Cloud`]) on the chassis `hv0`.. (`sim::tunnel_ip`), its VM
/// ports bound where it places them, plugged there and ACTIVE, as the store holds it.
struct Cloud {
    chassis: usize,
    size: CloudSize,
    /// The store's key and value of every object but the chassis (the simulation writes those).
    values: Vec<(String, Vec<u8>)>,
    /// VM port id -> (network, unique key, chassis).
    vm_ports: BTreeMap<String, (String, u32, usize)>,
    with_floating_ip: Vec<String>,
    /// Each chassis' VIFs.
    vifs: Vec<BTreeMap<String, u32>>,
    patch_ports: BTreeMap<String, u32>,
}

/// The cloud, built once per test process: thousands of objects cost a debug build a second to
/// validate and serialize, and the NB's own checks on a write (references, address claims) many
/// more. They go straight to the store, as the NB stores them: validated, at revision number 1,
/// with the unique keys the generator gives. Nothing creates a port later, so no address claim is
/// ever looked for.
fn cloud(chassis: usize, size: CloudSize) -> &'static Cloud {
    static CLOUD: OnceLock<Cloud> = OnceLock::new();
    let cloud = CLOUD.get_or_init(|| {
        let sizes = Sizes { chassis, networks: size.networks, ports: size.ports };
        let generated = synthetic::Cloud::new(sizes, 1);
        let mut vm_ports = BTreeMap::new();
        let mut values = Vec::new();
        for object in &generated.objects {
            let mut object = object.clone();
            match &mut object {
                Object::Chassis(_) => continue,
                Object::Port(p) => {
                    if let Some(&(_, c)) = generated.placement.get(&p.id) {
                        p.binding_host_id = format!("hv{c}");
                        p.status = Status::Active;
                        vm_ports.insert(p.id.clone(), (p.network_id.clone(), p.unique_key, c));
                    }
                }
                _ => {}
            }
            object.validate().unwrap();
            object.set_revision_number(1);
            let value = serde_json::to_vec(&object.to_json_value()).unwrap();
            values.push((tern_model::key(object.kind(), object.id()), value));
        }
        let with_floating_ip = generated
            .objects
            .iter()
            .filter_map(|o| match o {
                Object::FloatingIp(f) => f.port_id.clone(),
                _ => None,
            })
            .collect();
        Cloud {
            chassis,
            size,
            values,
            vm_ports,
            with_floating_ip,
            vifs: (0..chassis).map(|c| generated.local(c).vifs).collect(),
            patch_ports: generated.local(0).patch_ports,
        }
    });
    assert!(cloud.chassis == chassis && cloud.size == size, "one cloud size per test process");
    cloud
}

struct Chassis {
    name: String,
    core: Core,
    inbox: Vec<NbEvent>,
    vifs: BTreeMap<String, u32>,
    /// The flows the switch holds: every bundle the core sent, applied.
    switch: FlowSet,
    /// Where the switch delivers each port it has a DISPATCH flow for, by port key (read from
    /// the flows as bundles change them).
    dispatch: BTreeMap<u32, BTreeSet<String>>,
    epoch: u64,
    /// What the core asked for and the shell has not carried out yet.
    pending: VecDeque<Output>,
}

/// What one run did, for its summary line.
#[derive(Default)]
struct Counts {
    steps: usize,
    lost: usize,
    relists: usize,
    restarts: usize,
    /// Bundles the cores sent (computations that changed flows).
    bundles: usize,
}

struct Sim {
    rng: Rng,
    config: Config,
    seed: u64,
    nb: Nb,
    chassis: Vec<Chassis>,
    /// Every NB event since the cores' first listing, in revision order.
    log: Vec<NbEvent>,
    /// The revision of each key's latest change in the NB.
    latest: BTreeMap<(Kind, String), u64>,
    /// VM port id -> chassis that held its VIF at some point.
    held: BTreeMap<String, BTreeSet<String>>,
    /// VM port id -> unique key, and back.
    keys: BTreeMap<String, u32>,
    ids: BTreeMap<u32, String>,
    /// VM port id -> its network.
    network_of: BTreeMap<String, String>,
    /// The ports that migrate, and the chassis each starts on.
    migrating: Vec<(String, usize)>,
    /// br-int's patch ports (physical network -> ofport), the same on every chassis.
    patch_ports: BTreeMap<String, u32>,
    counts: Counts,
    /// The simulated clock.
    now: Instant,
    /// When the run began (for its summary line).
    began: Instant,
}

impl Sim {
    async fn new(seed: u64, config: Config) -> Sim {
        let nb = Nb::new(Arc::new(tern_store::LocalStore::memory().unwrap()));
        let mut sim = Sim {
            rng: Rng(seed),
            config,
            seed,
            nb,
            chassis: Vec::new(),
            log: Vec::new(),
            latest: BTreeMap::new(),
            held: BTreeMap::new(),
            keys: BTreeMap::new(),
            ids: BTreeMap::new(),
            network_of: BTreeMap::new(),
            migrating: Vec::new(),
            patch_ports: BTreeMap::new(),
            counts: Counts::default(),
            now: Instant::now(),
            began: Instant::now(),
        };
        for i in 0..config.chassis {
            sim.setup(Object::Chassis(ChassisObject::new(format!("hv{i}"), IpAddr::V4(tunnel_ip(i))))).await;
        }
        let mut vifs: Vec<BTreeMap<String, u32>> = vec![BTreeMap::new(); config.chassis];
        match config.cloud {
            None => {
                sim.setup(Object::Network(Network { id: "net".into(), ..Network::default() })).await;
                for p in 0..config.ports {
                    let host = p % config.chassis;
                    let mut port = Port::new("net");
                    port.id = format!("p{p}");
                    port.binding_host_id = format!("hv{host}");
                    let stored = sim.setup(Object::Port(port)).await;
                    sim.vm_port(&format!("p{p}"), "net", stored.unique_key().unwrap(), host);
                    vifs[host].insert(format!("p{p}"), p as u32 + 10);
                    sim.migrating.push((format!("p{p}"), host));
                }
            }
            Some(size) => sim.setup_cloud(size, &mut vifs).await,
        }
        let (all, revision) = sim.nb.dump().await.unwrap();
        for (i, vifs) in vifs.into_iter().enumerate() {
            let cache = NbCache::from_listing(all.values().flatten().cloned(), revision);
            let core = Core::new(sim.identity(i), cache);
            sim.chassis.push(Chassis {
                name: format!("hv{i}"),
                core,
                inbox: Vec::new(),
                vifs,
                switch: FlowSet::new(),
                dispatch: BTreeMap::new(),
                epoch: 1,
                pending: VecDeque::new(),
            });
            sim.start(i);
        }
        sim
    }

    /// The synthetic cloud in the NB, its VM ports plugged where they are bound, and the VM
    /// ports that migrate, chosen at random: a quarter of them among those with a floating IP.
    async fn setup_cloud(&mut self, size: CloudSize, vifs: &mut [BTreeMap<String, u32>]) {
        let cloud = cloud(self.config.chassis, size);
        for (id, (network, key, host)) in &cloud.vm_ports {
            self.vm_port(id, network, *key, *host);
        }
        for chunk in cloud.values.chunks(MAX_TXN_OPS) {
            let txn = chunk.iter().fold(Txn::new(), |txn, (key, value)| txn.put(key.clone(), value.clone()));
            self.nb.store().txn(txn).await.unwrap();
        }
        vifs.clone_from_slice(&cloud.vifs);
        self.patch_ports = cloud.patch_ports.clone();
        let ids: Vec<&String> = cloud.vm_ports.keys().collect();
        let mut chosen: Vec<&String> = Vec::new();
        while chosen.len() < self.config.ports {
            let id = if chosen.len() < self.config.ports / 4 {
                &cloud.with_floating_ip[self.rng.below(cloud.with_floating_ip.len())]
            } else {
                ids[self.rng.below(ids.len())]
            };
            if !chosen.contains(&id) {
                chosen.push(id);
            }
        }
        self.migrating = chosen.into_iter().map(|id| (id.clone(), cloud.vm_ports[id].2)).collect();
    }

    /// Writes an object before the cores list the NB (no core hears of it as an event).
    async fn setup(&mut self, object: Object) -> Object {
        self.nb.put(object).await.unwrap().object
    }

    fn vm_port(&mut self, id: &str, network: &str, key: u32, host: usize) {
        self.keys.insert(id.to_owned(), key);
        self.ids.insert(key, id.to_owned());
        self.network_of.insert(id.to_owned(), network.to_owned());
        self.held.entry(id.to_owned()).or_default().insert(format!("hv{host}"));
    }

    fn identity(&self, i: usize) -> Identity {
        Identity {
            chassis: format!("hv{i}"),
            tunnel_ip: tunnel_ip(i),
            dual_delivery: self.config.dual_delivery,
        }
    }

    fn fail(&self, what: String) -> ! {
        panic!("seed {} {:?}: {what}", self.seed, self.config)
    }

    fn trace(&self, what: impl FnOnce() -> String) {
        if std::env::var_os("TERN_SIM_TRACE").is_some() {
            eprintln!("{}", what());
        }
    }

    // === the shell of each core ===

    fn feed(&mut self, i: usize, input: Input) {
        self.now += Duration::from_millis(1);
        let c = &mut self.chassis[i];
        c.core.handle(input, self.now);
        while let Some(out) = c.core.poll_output() {
            self.counts.bundles += usize::from(matches!(&out, Output::Bundle { .. }));
            c.pending.push_back(out);
        }
    }

    fn ovsdb(&mut self, i: usize) {
        let vifs = self.chassis[i].vifs.clone();
        let patch_ports = self.patch_ports.clone();
        self.feed(i, Input::Ovsdb { vifs, tunnel_ofport: Some(1), patch_ports, synced: true });
    }

    /// What a controller's start-up tells its core: OVSDB, then the switch and its flows.
    fn start(&mut self, i: usize) {
        self.ovsdb(i);
        let (epoch, flows) = (self.chassis[i].epoch, self.chassis[i].switch.clone());
        self.feed(i, Input::SwitchConnected { epoch, flows });
    }

    /// A controller restart: a fresh core on a new listing; its IO in flight is lost, the switch
    /// keeps its flows.
    async fn restart(&mut self, i: usize) {
        self.trace(|| format!("hv{i} restarts"));
        self.counts.restarts += 1;
        let (all, revision) = self.nb.dump().await.unwrap();
        let core = Core::new(self.identity(i), NbCache::from_listing(all.into_values().flatten(), revision));
        let c = &mut self.chassis[i];
        c.core = core;
        c.inbox.clear();
        c.pending.clear();
        c.epoch += 1;
        self.start(i);
    }

    /// The watch of core `i` fell behind a compaction: the shell lists the NB again and watches
    /// from there. Everything published so far is in the listing, so the inbox goes.
    async fn relist(&mut self, i: usize) {
        self.counts.relists += 1;
        let (all, revision) = self.nb.dump().await.unwrap();
        self.trace(|| format!("hv{i} relists at {revision}, missing {} events", self.chassis[i].inbox.len()));
        self.chassis[i].inbox.clear();
        self.feed(i, Input::Relisted(NbCache::from_listing(all.into_values().flatten(), revision)));
    }

    fn publish(&mut self, event: NbEvent) {
        if let Some((key, revision)) = key_of(&event) {
            self.latest.insert(key, revision);
        }
        for c in &mut self.chassis {
            c.inbox.push(event.clone());
        }
        self.log.push(event);
    }

    /// Whether the NB already holds a later state of the event's key: the only kind of event a
    /// watch can lose (the later state, or a later one still, comes all the same).
    fn superseded(&self, event: &NbEvent) -> bool {
        key_of(event).is_some_and(|(key, revision)| self.latest.get(&key).is_some_and(|l| *l > revision))
    }

    /// Hands core `i` events from its inbox: with faults, a batch of one or several picked from
    /// anywhere (perhaps to come again later, perhaps skipped when superseded); without, all of
    /// them in order.
    fn deliver(&mut self, i: usize, faults: bool) {
        let len = self.chassis[i].inbox.len();
        if len == 0 {
            return;
        }
        if !faults {
            let batch = std::mem::take(&mut self.chassis[i].inbox);
            self.feed(i, Input::Nb(batch));
            return;
        }
        let n = if self.rng.chance(0.5) { 1 } else { 1 + self.rng.below(len) };
        let mut batch = Vec::new();
        for _ in 0..n {
            let left = self.chassis[i].inbox.len();
            if left == 0 {
                break;
            }
            let at = if self.rng.chance(self.config.reordering) { self.rng.below(left) } else { 0 };
            let event = self.chassis[i].inbox.remove(at);
            if self.rng.chance(self.config.duplication) {
                self.chassis[i].inbox.push(event.clone());
            }
            if self.rng.chance(self.config.loss) && self.superseded(&event) {
                self.counts.lost += 1;
                self.trace(|| format!("hv{i} misses {}", describe(&event)));
                continue;
            }
            batch.push(event);
        }
        if !batch.is_empty() {
            self.feed(i, Input::Nb(batch));
        }
    }

    /// Carries out the oldest thing core `i` asked for: `None` when there is nothing, else
    /// whether it was work (a write, a bundle, a read), not a report or a packet.
    async fn carry_out(&mut self, i: usize) -> Option<bool> {
        let out = self.chassis[i].pending.pop_front()?;
        let work = !matches!(out, Output::Reconciled(_) | Output::PacketOuts { .. });
        match out {
            Output::Write(steps) => {
                let trace = format!("{:?}", steps);
                let events = migration::apply(&self.nb, steps).await;
                self.trace(|| format!("hv{i} writes {trace} -> {} written", events.len()));
                for e in &events {
                    self.publish(e.clone());
                }
                self.feed(i, Input::Written(events));
            }
            Output::Bundle { epoch, mods, .. } => {
                let outcome = if epoch == self.chassis[i].epoch {
                    self.install(i, mods);
                    BundleOutcome::Installed
                } else {
                    BundleOutcome::Refused("an old connection".into())
                };
                self.feed(i, Input::BundleDone { epoch, outcome });
            }
            Output::ReadSwitch => {
                let flows = self.chassis[i].switch.clone();
                self.feed(i, Input::SwitchRead(Some(flows)));
            }
            Output::PortStatus(ports) => {
                for p in ports {
                    if let Ok(stored) = self.nb.put(Object::Port(p)).await {
                        self.publish(NbEvent::Put {
                            revision: stored.mod_revision,
                            object: Box::new(stored.object),
                        });
                    }
                }
            }
            Output::PacketOuts { .. } | Output::Reconciled(_) => {}
        }
        Some(work)
    }

    // === what the switches hold ===

    /// Chassis `i`'s switch applies a bundle; where it delivers the ports whose DISPATCH flows
    /// changed is read again, and checked.
    fn install(&mut self, i: usize, mods: Vec<FlowMod>) {
        let n = self.chassis.len();
        let c = &mut self.chassis[i];
        // Port key -> its DISPATCH flow now (`None`: gone).
        let mut touched: BTreeMap<u32, Option<FlowKey>> = BTreeMap::new();
        for m in mods {
            let key = FlowKey::of(&m.flow);
            if let Some(port) = c.switch.remove(&key).as_ref().and_then(sim::dispatch_port) {
                touched.entry(port).or_insert(None);
            }
            if !matches!(m.command, FlowModCommand::Delete | FlowModCommand::DeleteStrict) {
                if let Some(port) = sim::dispatch_port(&m.flow) {
                    touched.insert(port, Some(key));
                }
                c.switch.insert(m.flow);
            }
        }
        for (port, key) in &touched {
            match key.as_ref().and_then(|k| c.switch.get(k)) {
                Some(flow) => c.dispatch.insert(*port, sim::delivers(flow, &c.name, n)),
                None => c.dispatch.remove(port),
            };
        }
        for port in touched.into_keys() {
            self.check_running(i, port);
        }
    }

    /// While running: chassis `i`'s switch delivers the VM port with key `key` (if it has a flow
    /// for it) somewhere, only to chassis that held its VIF, and to one only without dual
    /// delivery.
    fn check_running(&self, i: usize, key: u32) {
        let c = &self.chassis[i];
        let (Some(id), Some(at)) = (self.ids.get(&key), c.dispatch.get(&key)) else { return };
        let name = &c.name;
        if at.is_empty() {
            self.fail(format!("{name}'s switch delivers {id} nowhere"));
        }
        if let Some(stray) = at.iter().find(|c| !self.held[id].contains(*c)) {
            self.fail(format!("{name}'s switch delivers {id} to {stray}, which never held its VIF"));
        }
        if at.len() > 1 && !self.config.dual_delivery {
            self.fail(format!("{name}'s switch delivers {id} to {at:?} with dual delivery off"));
        }
    }

    // === Nova ===

    async fn act(&mut self, plan: &Plan, step: Step) {
        self.trace(|| format!("nova: {} hv{} -> hv{} {step:?}", plan.port, plan.source, plan.dest));
        let (src, dst) = (plan.source, plan.dest);
        let dest_name = self.chassis[dst].name.clone();
        match step {
            Step::Announce { dual } => {
                self.held.entry(plan.port.clone()).or_default().insert(dest_name.clone());
                if let Some(event) = sim::announce(&self.nb, &plan.port, &dest_name, dual).await {
                    self.publish(event);
                }
            }
            Step::PlugDest => {
                // OVS numbers each VIF of a chassis apart.
                let ofport = 1_000 + self.keys[&plan.port];
                self.chassis[dst].vifs.insert(plan.port.clone(), ofport);
                self.held.entry(plan.port.clone()).or_default().insert(dest_name);
                self.ovsdb(dst);
            }
            Step::Switch { rarp: false } => {}
            Step::Switch { rarp: true } | Step::Rarp => {
                // The VM's first packet on the destination: the classifier's copy to the
                // controller (as a plain packet-in: the table and cookie say what it is).
                if self.chassis[dst].vifs.contains_key(&plan.port) {
                    let key = self.keys[&plan.port];
                    let pin = PacketIn {
                        buffer_id: u32::MAX,
                        total_len: 0,
                        reason: 1,
                        table_id: tern_pipeline::tables::CLASSIFY,
                        cookie: App::Classifier.cookie(CookieObject::Port(key)),
                        match_: Match::new(),
                        data: Vec::new(),
                    };
                    self.feed(dst, Input::Switch(Box::new(Message::PacketIn(pin))));
                }
            }
            Step::UnplugSource => {
                self.chassis[src].vifs.remove(&plan.port);
                self.ovsdb(src);
            }
            Step::UnplugDest => {
                self.chassis[dst].vifs.remove(&plan.port);
                self.ovsdb(dst);
            }
            Step::BindingUpdate => {
                for event in sim::bind(&self.nb, &plan.port, &dest_name).await {
                    self.publish(event);
                }
            }
            Step::Withdraw => {
                if let Some(event) = sim::withdraw(&self.nb, &plan.port, &dest_name).await {
                    self.publish(event);
                }
            }
        }
    }

    /// One random background operation somewhere (half the time at either end of a migration
    /// under way, `busy`): a delivery, some IO carried out, a restart or a relist.
    async fn background(&mut self, busy: &[usize]) {
        let i = if !busy.is_empty() && self.rng.chance(0.5) {
            busy[self.rng.below(busy.len())]
        } else {
            self.rng.below(self.chassis.len())
        };
        match self.rng.below(10) {
            0..=4 => self.deliver(i, true),
            5..=8 => {
                self.carry_out(i).await;
            }
            _ => {
                if self.rng.chance(self.config.restarts) {
                    self.restart(i).await;
                } else if self.rng.chance(self.config.loss / 4.0) {
                    self.relist(i).await;
                }
            }
        }
    }

    /// No more faults: deliver everything and carry out everything until all is quiet.
    async fn heal(&mut self) {
        for round in 0.. {
            if round > 200 {
                let asking: Vec<String> =
                    self.chassis.iter().map(|c| format!("{}: {:?}", c.name, c.pending)).collect();
                self.fail(format!("the cores never stop asking:\n{}", asking.join("\n")));
            }
            let mut busy = false;
            for i in 0..self.chassis.len() {
                if !self.chassis[i].inbox.is_empty() {
                    self.deliver(i, false);
                    busy = true;
                }
                while let Some(work) = self.carry_out(i).await {
                    busy |= work;
                }
            }
            // A paused computation (after a refused bundle) starts at its time; a forwarding
            // pointer expires.
            for i in 0..self.chassis.len() {
                if let Some(at) = self.chassis[i].core.poll_timeout() {
                    self.now = self.now.max(at);
                    let now = self.now;
                    self.chassis[i].core.on_timeout(now);
                    while let Some(out) = self.chassis[i].core.poll_output() {
                        self.chassis[i].pending.push_back(out);
                        busy = true;
                    }
                }
            }
            if !busy {
                return;
            }
        }
    }

    async fn check_converged(&self, hosts: &BTreeMap<String, usize>) {
        let (records, _) = self.nb.list(Kind::Migration).await.unwrap();
        if let Some(r) = records.first() {
            let copies: Vec<String> = self
                .chassis
                .iter()
                .filter(|c| c.core.nb().get(Kind::Migration, r.object.id()).is_some())
                .map(|c| {
                    format!(
                        "{}: records {:?}, vifs {:?}, timeout {:?}",
                        c.name,
                        c.core
                            .nb()
                            .all::<Migration>()
                            .iter()
                            .map(|m| (m.state, m.revision_number, m.epoch))
                            .collect::<Vec<_>>(),
                        c.vifs
                            .keys()
                            .filter(|v| self.migrating.iter().any(|(p, _)| p == *v))
                            .collect::<Vec<_>>(),
                        c.core.poll_timeout().map(|t| t.saturating_duration_since(self.now)),
                    )
                })
                .collect();
            self.fail(format!("a Migration record is left: {:?}\n{}", r.object, copies.join("\n")));
        }
        let (ports, _) = self.nb.list(Kind::Port).await.unwrap();
        let bound: BTreeMap<String, String> = ports
            .into_iter()
            .filter_map(|s| match s.object {
                Object::Port(p) if self.keys.contains_key(&p.id) => Some((p.id, p.binding_host_id)),
                _ => None,
            })
            .collect();
        for (id, host) in hosts {
            if bound[id] != format!("hv{host}") {
                self.fail(format!("{id} is bound to {}, not hv{host}", bound[id]));
            }
        }
        // Each VM port's key, chassis and network, once.
        let ports: Vec<(&str, u32, &str, &str)> = bound
            .iter()
            .map(|(id, host)| (id.as_str(), self.keys[id], host.as_str(), self.network_of[id].as_str()))
            .collect();
        for c in &self.chassis {
            let local: BTreeSet<&str> =
                c.vifs.keys().filter_map(|v| self.network_of.get(v)).map(String::as_str).collect();
            for (id, key, host, network) in &ports {
                match c.dispatch.get(key) {
                    Some(at) if at.len() == 1 && at.contains(*host) => {}
                    None if !local.contains(network) => {}
                    got => self
                        .fail(format!("{}'s switch delivers {id} to {got:?}, it is bound to {host}", c.name)),
                }
            }
        }
    }

    /// Every core gets the whole history again, in a random order: nobody writes, no flow
    /// changes.
    async fn check_replay(&mut self) {
        for i in 0..self.chassis.len() {
            let mut history = self.log.clone();
            while !history.is_empty() {
                let e = history.swap_remove(self.rng.below(history.len()));
                self.feed(i, Input::Nb(vec![e]));
            }
            let changes = self.chassis[i].pending.iter().any(|o| match o {
                Output::Write(_) => true,
                Output::Bundle { mods, .. } => !mods.is_empty(),
                _ => false,
            });
            if changes {
                self.fail(format!(
                    "hv{i} writes or changes flows after a replay: {:?}",
                    self.chassis[i].pending
                ));
            }
            while self.carry_out(i).await.is_some() {}
        }
    }

    /// Every switch holds exactly the flows the pipeline computes for its chassis from the NB as
    /// it is now ([`tern_controller::view::chassis_view`], [`tern_pipeline::compute`]), as a
    /// fresh controller would install: nothing stale is left anywhere (a chassis that should have
    /// recomputed and did not), nothing is missing.
    async fn check_switches(&self) {
        let (all, revision) = self.nb.dump().await.unwrap();
        let nb = NbCache::from_listing(all.into_values().flatten(), revision);
        let migrations = nb.all::<Migration>();
        for (i, c) in self.chassis.iter().enumerate() {
            let local = tern_controller::view::Local {
                chassis: c.name.clone(),
                dual_delivery: self.config.dual_delivery,
                chassis_mac: tern_pipeline::view::chassis_mac(tunnel_ip(i)),
                vifs: c.vifs.clone(),
                tunnel_ofport: Some(1),
                patch_ports: self.patch_ports.clone(),
                neighbours: BTreeMap::new(),
            };
            let want = tern_pipeline::compute(&tern_controller::view::chassis_view(&nb, &migrations, &local));
            let mods = FlowSet::diff(&c.switch, &want);
            if !mods.is_empty() {
                let some: Vec<String> =
                    mods.iter().take(5).map(|m| format!("{:?} {}", m.command, m.flow)).collect();
                self.fail(format!(
                    "{}'s switch is {} flow changes away from what its chassis wants, such as:\n{}",
                    c.name,
                    mods.len(),
                    some.join("\n")
                ));
            }
        }
    }

    async fn run(mut self) {
        let mut schedule =
            Schedule::of(self.migrating.clone(), self.config.chassis, self.config.migrations_per_port);
        while schedule.refill(&mut self.rng) {
            let busy = schedule.busy_chassis();
            for _ in 0..self.rng.below(12) {
                self.background(&busy).await;
            }
            let (plan, step) = schedule.take(&mut self.rng);
            if let Some(step) = step {
                self.act(&plan, step).await;
                self.counts.steps += 1;
            }
            schedule.put_back(plan);
        }
        let hosts = schedule.hosts;
        self.heal().await;
        self.check_converged(&hosts).await;
        self.check_replay().await;
        self.heal().await;
        self.check_converged(&hosts).await;
        self.check_switches().await;
        let Counts { steps, lost, relists, restarts, bundles } = self.counts;
        eprintln!(
            "seed {:>3}: {steps} Nova steps, {} NB events, {lost} lost, {relists} relists, {restarts} restarts, \
             {bundles} bundles, {:.1} s",
            self.seed,
            self.log.len(),
            self.began.elapsed().as_secs_f64()
        );
    }
}

/// An event's key and revision (none for a relist).
fn key_of(event: &NbEvent) -> Option<((Kind, String), u64)> {
    match event {
        NbEvent::Put { revision, object } => Some(((object.kind(), object.id().to_owned()), *revision)),
        NbEvent::Delete { kind, id, revision } => Some(((*kind, id.clone()), *revision)),
        NbEvent::Relist { .. } => None,
    }
}

fn describe(event: &NbEvent) -> String {
    match event {
        NbEvent::Put { revision, object: o } => match &**o {
            Object::Migration(m) => {
                format!("{revision}: migration {} {:?} epoch {}", m.port_id, m.state, m.epoch)
            }
            Object::Port(p) => format!("{revision}: port {} on {} {:?}", p.id, p.binding_host_id, p.status),
            o => format!("{revision}: {:?} {}", o.kind(), o.id()),
        },
        NbEvent::Delete { kind, id, revision } => format!("{revision}: {kind:?} {id} deleted"),
        NbEvent::Relist { .. } => "relist".into(),
    }
}

async fn run_all(config: Config, seeds: u64) {
    for seed in sim::seeds(seeds) {
        Sim::new(seed, config).await.run().await;
    }
}

const MANY: Config = Config {
    chassis: 8,
    ports: 6,
    migrations_per_port: 6,
    cloud: None,
    dual_delivery: true,
    loss: 0.3,
    duplication: 0.2,
    reordering: 0.5,
    restarts: 0.05,
};

/// The CI-size run: 100 chassis, 3,000 VM ports on 300 networks (the benchmarks' shape, 10 ports a
/// network), 12 of them migrating once. A seed costs a debug build some 13 s of CPU, mostly in the
/// cores' computations (100 at the start, one or two hundred as the migrations reach the chassis
/// they concern) and in the final check of every switch (100 more).
const CLOUD: Config = Config {
    chassis: 100,
    ports: 12,
    migrations_per_port: 1,
    cloud: Some(CloudSize { networks: 300, ports: 3000 }),
    ..MANY
};

#[tokio::test]
async fn real_cores_with_dual_delivery_under_faults() {
    run_all(MANY, 8).await;
}

#[tokio::test]
async fn real_cores_without_dual_delivery_under_faults() {
    run_all(Config { dual_delivery: false, ..MANY }, 8).await;
}

#[tokio::test]
async fn real_cores_one_port_back_and_forth() {
    run_all(Config { chassis: 2, ports: 1, migrations_per_port: 20, ..MANY }, 8).await;
}

#[tokio::test]
async fn real_cores_under_heavy_loss_and_restarts() {
    run_all(Config { loss: 0.9, restarts: 0.5, duplication: 0.5, reordering: 0.9, ..MANY }, 8).await;
}

#[tokio::test]
async fn real_cores_in_a_cloud_with_dual_delivery() {
    run_all(CLOUD, 2).await;
}

#[tokio::test]
async fn real_cores_in_a_cloud_without_dual_delivery() {
    // One seed: the small configurations check dual delivery off 8 times, and the cloud's seeds
    // are what the file's time goes on.
    run_all(Config { dual_delivery: false, ..CLOUD }, 1).await;
}
