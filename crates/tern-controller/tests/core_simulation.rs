//! Many real controller cores ([`tern_controller::core::Core`]) in one process, on one NB (the
//! memory store), each with a recording switch that applies its bundles, driven by a seeded
//! schedule of Nova's live-migration steps instead of clocks and sockets. Faults: NB events
//! delivered out of order and twice, the cores' IO (writes, bundles, port status) carried out
//! late and in any order between chassis, and controller restarts (a fresh core on a new listing,
//! the switch keeping its flows).
//!
//! Checked on the flows the switches hold, not on a location function: while running, a chassis
//! with a port of the network delivers each bound port somewhere, only to chassis that held its
//! VIF, and to one chassis only when dual delivery is off; once everything is delivered, every
//! such chassis delivers every port exactly where it is bound, no Migration record is left, and
//! replaying the whole history to every core makes nobody write.
//!
//! `TERN_SIM_SEEDS=N` runs N seeds per configuration (default 8), from `TERN_SIM_FIRST_SEED` (0);
//! a failure names its seed, `TERN_SIM_TRACE=1` prints Nova's steps and the cores' writes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tern_controller::cache::NbCache;
use tern_controller::core::{BundleOutcome, Core, Identity, Input, Output};
use tern_controller::migration;
use tern_model::{Chassis as ChassisObject, Kind, Migration, Network, Object, Port};
use tern_openflow::{FlowModCommand, Match, Message, PacketIn};
use tern_pipeline::cookie::Object as CookieObject;
use tern_pipeline::{App, FlowKey, FlowSet};
use tern_store::nb::{Nb, NbEvent};

#[path = "common/sim.rs"]
mod sim;

use sim::{tunnel_ip, Plan, Rng, Schedule, Step};

#[derive(Clone, Copy, Debug)]
struct Config {
    chassis: usize,
    ports: usize,
    migrations_per_port: usize,
    dual_delivery: bool,
    duplication: f64,
    reordering: f64,
    restarts: f64,
}

struct Chassis {
    name: String,
    core: Core,
    inbox: Vec<NbEvent>,
    vifs: BTreeMap<String, u32>,
    /// The flows the switch holds: every bundle the core sent, applied.
    switch: FlowSet,
    epoch: u64,
    /// What the core asked for and the shell has not carried out yet.
    pending: VecDeque<Output>,
}

struct Sim {
    rng: Rng,
    config: Config,
    seed: u64,
    nb: Nb,
    chassis: Vec<Chassis>,
    log: Vec<NbEvent>,
    /// Port id -> chassis that held its VIF at some point.
    held: BTreeMap<String, BTreeSet<String>>,
    keys: BTreeMap<String, u32>,
    /// The simulated clock.
    now: Instant,
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
            held: BTreeMap::new(),
            keys: BTreeMap::new(),
            now: Instant::now(),
        };
        for i in 0..config.chassis {
            sim.write(Object::Chassis(ChassisObject::new(format!("hv{i}"), IpAddr::V4(tunnel_ip(i))))).await;
        }
        sim.write(Object::Network(Network { id: "net".into(), ..Network::default() })).await;
        let mut vifs: Vec<BTreeMap<String, u32>> = vec![BTreeMap::new(); config.chassis];
        for p in 0..config.ports {
            let host = p % config.chassis;
            let mut port = Port::new("net");
            port.id = format!("p{p}");
            port.binding_host_id = format!("hv{host}");
            let stored = sim.write(Object::Port(port)).await;
            sim.keys.insert(format!("p{p}"), stored.unique_key().unwrap());
            vifs[host].insert(format!("p{p}"), p as u32 + 10);
            sim.held.entry(format!("p{p}")).or_default().insert(format!("hv{host}"));
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
                epoch: 1,
                pending: VecDeque::new(),
            });
            sim.start(i);
        }
        sim
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

    // === the shell of each core ===

    fn feed(&mut self, i: usize, input: Input) {
        self.now += Duration::from_millis(1);
        let c = &mut self.chassis[i];
        c.core.handle(input, self.now);
        while let Some(out) = c.core.poll_output() {
            c.pending.push_back(out);
        }
    }

    fn ovsdb(&mut self, i: usize) {
        let vifs = self.chassis[i].vifs.clone();
        self.feed(
            i,
            Input::Ovsdb { vifs, tunnel_ofport: Some(1), patch_ports: BTreeMap::new(), synced: true },
        );
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
        let (all, revision) = self.nb.dump().await.unwrap();
        let core = Core::new(self.identity(i), NbCache::from_listing(all.into_values().flatten(), revision));
        let c = &mut self.chassis[i];
        c.core = core;
        c.inbox.clear();
        c.pending.clear();
        c.epoch += 1;
        self.start(i);
    }

    fn publish(&mut self, event: NbEvent) {
        for c in &mut self.chassis {
            c.inbox.push(event.clone());
        }
        self.log.push(event);
    }

    async fn write(&mut self, object: Object) -> Object {
        let stored = self.nb.put(object).await.unwrap();
        self.publish(NbEvent::Put { revision: stored.mod_revision, object: Box::new(stored.object.clone()) });
        stored.object
    }

    fn deliver(&mut self, i: usize, faults: bool) {
        if self.chassis[i].inbox.is_empty() {
            return;
        }
        let at = if faults && self.rng.chance(self.config.reordering) {
            self.rng.below(self.chassis[i].inbox.len())
        } else {
            0
        };
        let event = self.chassis[i].inbox.remove(at);
        if faults && self.rng.chance(self.config.duplication) {
            self.chassis[i].inbox.push(event.clone());
        }
        self.feed(i, Input::Nb(vec![event]));
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
                if std::env::var_os("TERN_SIM_TRACE").is_some() {
                    eprintln!("hv{i} writes {trace} -> {} written", events.len());
                }
                for e in &events {
                    self.publish(e.clone());
                }
                self.feed(i, Input::Written(events));
            }
            Output::Bundle { epoch, mods, .. } => {
                let c = &mut self.chassis[i];
                let outcome = if epoch == c.epoch {
                    for m in mods {
                        let key = FlowKey::of(&m.flow);
                        c.switch.remove(&key);
                        if !matches!(m.command, FlowModCommand::Delete | FlowModCommand::DeleteStrict) {
                            c.switch.insert(m.flow);
                        }
                    }
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

    /// Where chassis `i`'s switch delivers each port it has a DISPATCH flow for.
    fn delivered(&self, i: usize) -> BTreeMap<String, BTreeSet<String>> {
        let c = &self.chassis[i];
        self.keys
            .iter()
            .filter_map(|(id, key)| {
                Some((id.clone(), sim::dispatch_targets(c.switch.iter(), *key, &c.name, self.chassis.len())?))
            })
            .collect()
    }

    fn check_running(&self) {
        for i in 0..self.chassis.len() {
            for (id, at) in self.delivered(i) {
                let held = &self.held[&id];
                let name = &self.chassis[i].name;
                if let Some(stray) = at.iter().find(|c| !held.contains(*c)) {
                    self.fail(format!("{name}'s switch delivers {id} to {stray}, which never held its VIF"));
                }
                if at.len() > 1 && !self.config.dual_delivery {
                    self.fail(format!("{name}'s switch delivers {id} to {at:?} with dual delivery off"));
                }
            }
        }
    }

    // === Nova ===

    async fn act(&mut self, plan: &Plan, step: Step) {
        if std::env::var_os("TERN_SIM_TRACE").is_some() {
            eprintln!("nova: {} hv{} -> hv{} {step:?}", plan.port, plan.source, plan.dest);
        }
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
                self.chassis[dst].vifs.insert(plan.port.clone(), 100 + dst as u32);
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

    /// One random background operation somewhere: a delivery, some IO carried out, a restart.
    async fn background(&mut self) {
        let i = self.rng.below(self.chassis.len());
        match self.rng.below(10) {
            0..=4 => self.deliver(i, true),
            5..=8 => {
                self.carry_out(i).await;
            }
            _ => {
                if self.rng.chance(self.config.restarts) {
                    self.restart(i).await;
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
                while !self.chassis[i].inbox.is_empty() {
                    self.deliver(i, false);
                    busy = true;
                }
                while let Some(work) = self.carry_out(i).await {
                    busy |= work;
                }
            }
            // A paused computation (after a refused bundle) starts at its time.
            for i in 0..self.chassis.len() {
                if let Some(at) = self.chassis[i].core.poll_timeout() {
                    self.now = self.now.max(at);
                    let now = self.now;
                    self.chassis[i].core.on_timeout(now);
                    while let Some(out) = self.chassis[i].core.poll_output() {
                        self.chassis[i].pending.push_back(out);
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
                .map(|c| {
                    format!(
                        "{}: records {:?}, vifs {:?}, port {:?}, timeout {:?}",
                        c.name,
                        c.core
                            .nb()
                            .all::<Migration>()
                            .iter()
                            .map(|m| (m.state, m.revision_number, m.epoch))
                            .collect::<Vec<_>>(),
                        c.vifs,
                        c.core
                            .nb()
                            .all::<Port>()
                            .iter()
                            .map(|p| (p.id.clone(), p.binding_host_id.clone()))
                            .collect::<Vec<_>>(),
                        c.core.poll_timeout().map(|t| t.saturating_duration_since(self.now)),
                    )
                })
                .collect();
            self.fail(format!("a Migration record is left: {:?}\n{}", r.object, copies.join("\n")));
        }
        for i in 0..self.chassis.len() {
            let delivered = self.delivered(i);
            let has_local_port = !self.chassis[i].vifs.is_empty();
            for (id, host) in hosts {
                let want: BTreeSet<String> = [format!("hv{host}")].into();
                match delivered.get(id) {
                    Some(at) if *at == want => {}
                    None if !has_local_port => {}
                    got => {
                        self.fail(format!("hv{i}'s switch delivers {id} to {got:?}, it is bound to hv{host}"))
                    }
                }
            }
        }
    }

    /// Every core gets the whole history again, in a random order: nobody writes.
    async fn check_replay(&mut self) {
        for i in 0..self.chassis.len() {
            let mut history = self.log.clone();
            while !history.is_empty() {
                let e = history.remove(self.rng.below(history.len()));
                self.feed(i, Input::Nb(vec![e]));
            }
            let writes = self.chassis[i].pending.iter().filter(|o| matches!(o, Output::Write(_))).count();
            if writes != 0 {
                self.fail(format!("hv{i} writes after a replay: {:?}", self.chassis[i].pending));
            }
            while self.carry_out(i).await.is_some() {}
        }
    }

    async fn run(mut self) {
        let mut schedule =
            Schedule::new(self.config.ports, self.config.chassis, self.config.migrations_per_port);
        let mut steps = 0usize;
        while schedule.refill(&mut self.rng) {
            for _ in 0..self.rng.below(12) {
                self.background().await;
            }
            let (plan, step) = schedule.take(&mut self.rng);
            if let Some(step) = step {
                self.act(&plan, step).await;
                steps += 1;
            }
            self.check_running();
            schedule.put_back(plan);
        }
        let hosts = schedule.hosts;
        self.heal().await;
        self.check_converged(&hosts).await;
        self.check_replay().await;
        self.heal().await;
        self.check_converged(&hosts).await;
        eprintln!("seed {:>3}: {steps} Nova steps, {} NB events", self.seed, self.log.len());
    }
}

async fn run_all(config: Config) {
    for seed in sim::seeds(8) {
        Sim::new(seed, config).await.run().await;
    }
}

const MANY: Config = Config {
    chassis: 8,
    ports: 6,
    migrations_per_port: 6,
    dual_delivery: true,
    duplication: 0.2,
    reordering: 0.5,
    restarts: 0.05,
};

#[tokio::test]
async fn real_cores_with_dual_delivery_under_faults() {
    run_all(MANY).await;
}

#[tokio::test]
async fn real_cores_without_dual_delivery_under_faults() {
    run_all(Config { dual_delivery: false, ..MANY }).await;
}

#[tokio::test]
async fn real_cores_one_port_back_and_forth() {
    run_all(Config { chassis: 2, ports: 1, migrations_per_port: 20, ..MANY }).await;
}
