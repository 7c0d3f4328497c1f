//! A deterministic simulation of live migration across many chassis, with faults: the real
//! migration agent ([`tern_controller::migration::Look`]), the real NB cache
//! ([`tern_controller::cache::NbCache`]), the real location function
//! ([`tern_pipeline::port_location`]) and a real NB (the memory store, CAS and all), driven by a
//! seeded random schedule instead of clocks and sockets.
//!
//! Every chassis has its own copy of the NB, fed from its own inbox of NB events. The schedule
//! interleaves Nova's steps (announce through the API, plug on the destination, switchover with
//! or without the VM's RARP, source unplug, binding update; or an abort) for several ports at
//! once with event deliveries, the chassis' looks and controller restarts, and injects faults:
//! * reordering: an inbox delivers any of its events, not the oldest;
//! * duplication: a delivered event may be delivered again later;
//! * loss: a bystander (neither end of the migration) may never see some states of a Migration
//!   record (the activation, say), so it must converge from the binding alone;
//! * restarts: a chassis relists the NB and forgets what it saw before (VIFs, local activations).
//!
//! Checked: while running, a bound port is always located somewhere and only on chassis that
//! held its VIF, and never on two chassis when dual delivery is off; once everything is delivered
//! (no more faults), every chassis locates every port exactly where it is bound, no Migration
//! record is left, epochs of a port's migrations only grew, and replaying the whole history to
//! every chassis changes nothing and makes nobody write. Locations are also checked on the flows
//! each chassis would install ([`tern_controller::view::chassis_view`] and
//! [`tern_pipeline::compute`]): every chassis with a local port on the network has one DISPATCH
//! flow per port, delivering exactly where the location says (sampled while running, always at
//! the end).
//!
//! `TERN_SIM_SEEDS=N` runs N seeds per configuration (default 12); a failure names its seed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tern_controller::cache::NbCache;
use tern_controller::migration::{self, LocalActivations, Look};
use tern_model::{Chassis as ChassisObject, Kind, Migration, MigrationState, Network, Object, Port};
use tern_pipeline::PortLocation;
use tern_store::nb::{Nb, NbEvent};

#[path = "common/sim.rs"]
mod sim;

use sim::{tunnel_ip, Plan, Rng, Schedule, Step};

#[derive(Clone, Copy, Debug)]
struct Config {
    chassis: usize,
    ports: usize,
    migrations_per_port: usize,
    /// The chassis' own setting.
    dual_delivery: bool,
    loss: f64,
    duplication: f64,
    reordering: f64,
    restarts: f64,
}

struct Chassis {
    name: String,
    cache: NbCache,
    inbox: Vec<NbEvent>,
    vifs: BTreeMap<String, u32>,
    vifs_before: BTreeMap<String, u32>,
    local: LocalActivations,
}

struct Sim {
    rng: Rng,
    config: Config,
    seed: u64,
    nb: Nb,
    chassis: Vec<Chassis>,
    /// Every NB event, in revision order.
    log: Vec<NbEvent>,
    /// Port id -> chassis that held its VIF at some point.
    held: BTreeMap<String, BTreeSet<String>>,
    /// Port id -> the epochs of its records, in the order written.
    epochs: BTreeMap<String, Vec<u64>>,
    activations: BTreeMap<String, usize>,
}

impl Sim {
    async fn new(seed: u64, config: Config) -> Sim {
        let store = tern_store::LocalStore::memory().unwrap();
        let nb = Nb::new(Arc::new(store));
        let mut sim = Sim {
            rng: Rng(seed),
            config,
            seed,
            nb,
            chassis: Vec::new(),
            log: Vec::new(),
            held: BTreeMap::new(),
            epochs: BTreeMap::new(),
            activations: BTreeMap::new(),
        };
        for i in 0..config.chassis {
            sim.chassis.push(Chassis {
                name: format!("hv{i}"),
                cache: NbCache::default(),
                inbox: Vec::new(),
                vifs: BTreeMap::new(),
                vifs_before: BTreeMap::new(),
                local: LocalActivations::default(),
            });
        }
        for i in 0..config.chassis {
            let tunnel_ip = std::net::IpAddr::V4(tunnel_ip(i));
            sim.write_object(Object::Chassis(ChassisObject::new(format!("hv{i}"), tunnel_ip))).await.unwrap();
        }
        let net = Network { id: "net".into(), ..Network::default() };
        sim.write_object(Object::Network(net)).await.unwrap();
        for p in 0..config.ports {
            let host = p % config.chassis;
            let mut port = Port::new("net");
            port.id = format!("p{p}");
            port.binding_host_id = format!("hv{host}");
            sim.write_object(Object::Port(port)).await.unwrap();
            sim.chassis[host].vifs.insert(format!("p{p}"), p as u32 + 1);
            sim.held.entry(format!("p{p}")).or_default().insert(format!("hv{host}"));
        }
        sim
    }

    fn fail(&self, what: String) -> ! {
        panic!("seed {} {:?}: {what}", self.seed, self.config)
    }

    // === The NB ===

    async fn write_object(&mut self, object: Object) -> Result<(), tern_store::nb::NbError> {
        let stored = self.nb.put(object).await?;
        let event = NbEvent::Put { revision: stored.mod_revision, object: Box::new(stored.object) };
        self.observe(&event);
        self.publish(event);
        Ok(())
    }

    /// Keeps the figures the checks and the summary need.
    fn observe(&mut self, event: &NbEvent) {
        if let NbEvent::Put { object, .. } = event {
            if let Object::Migration(m) = &**object {
                self.epochs.entry(m.port_id.clone()).or_default().push(m.epoch);
                if m.state == MigrationState::Activated {
                    let by = format!("{:?}", m.activated_by.expect("activated by something"));
                    *self.activations.entry(by).or_default() += 1;
                }
            }
        }
    }

    fn publish(&mut self, event: NbEvent) {
        for c in &mut self.chassis {
            c.inbox.push(event.clone());
        }
        self.log.push(event);
    }

    async fn port(&self, id: &str) -> Port {
        match self.nb.get(Kind::Port, id).await.unwrap().unwrap().object {
            Object::Port(p) => p,
            _ => unreachable!(),
        }
    }

    // === The chassis ===

    /// Delivers one event from chassis `i`'s inbox, with the configured faults.
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
        if faults && self.is_bystander_event(i, &event) && self.rng.chance(self.config.loss) {
            return;
        }
        self.chassis[i].cache.apply(event);
    }

    /// A new state of a Migration record chassis `i` is neither end of: what a bystander may
    /// miss. (A record's deletion is never missed: every watch delivers it eventually, and no
    /// later event of the record could stand in for it.)
    fn is_bystander_event(&self, i: usize, event: &NbEvent) -> bool {
        let me = &self.chassis[i].name;
        matches!(event, NbEvent::Put { object, .. }
            if matches!(&**object, Object::Migration(m) if &m.source != me && &m.destination != me))
    }

    fn records_of(&self, i: usize) -> BTreeMap<String, Migration> {
        self.chassis[i].cache.all::<Migration>().into_iter().map(|m| (m.port_id.clone(), m)).collect()
    }

    /// Chassis `i` looks, as its controller does after a batch of events, and writes its steps.
    /// Returns how many writes it attempted.
    async fn look(&mut self, i: usize) -> usize {
        let c = &mut self.chassis[i];
        let cache = &c.cache;
        let look = Look {
            me: &c.name,
            ports: &c.cache.all(),
            port_seen_at: &|id| cache.seen_at(Kind::Port, id),
            records: &c.cache.all::<Migration>().into_iter().map(|m| (m.port_id.clone(), m)).collect(),
            vifs_now: &c.vifs,
            vifs_before: &c.vifs_before,
            dual_delivery: self.config.dual_delivery,
        };
        let (now, after_flows) = look.run(&mut c.local);
        c.vifs_before = c.vifs.clone();
        let n = now.len() + after_flows.len();
        // Unlike the controller, the simulation applies the local activations before any flows:
        // flows are not simulated, only where each chassis would send the port's traffic.
        for event in migration::apply(&self.nb, now.into_iter().chain(after_flows).collect()).await {
            self.observe(&event);
            self.publish(event);
        }
        n
    }

    /// A controller restart: a fresh listing, and everything seen before forgotten.
    async fn restart(&mut self, i: usize) {
        let (all, revision) = self.nb.dump().await.unwrap();
        let c = &mut self.chassis[i];
        c.cache = NbCache::from_listing(all.into_values().flatten(), revision);
        c.inbox.clear();
        // As the controller does: the VIFs found at start are not news.
        c.vifs_before = c.vifs.clone();
        c.local = LocalActivations::default();
    }

    /// Where chassis `i` sends port `id`'s traffic, as its flows would.
    fn location(&self, i: usize, id: &str) -> Option<PortLocation> {
        let c = &self.chassis[i];
        let Some(Object::Port(port)) = c.cache.get(Kind::Port, id) else { return None };
        let records = c.local.overlay(c.cache.all::<Migration>());
        let records = migration::for_pipeline(records, self.config.dual_delivery);
        Some(tern_pipeline::port_location(port, records.iter().find(|m| m.port_id == id)))
    }

    /// Where chassis `i`'s flows send port `id`'s traffic: the chassis its DISPATCH flow delivers
    /// to (itself for a local delivery, others by tunnel address). `None` when it has no such flow,
    /// which is right only if no port of the network is local there.
    fn flow_locations(&self, i: usize) -> BTreeMap<String, PortLocation> {
        let c = &self.chassis[i];
        let records = c.local.overlay(c.cache.all::<Migration>());
        let local = tern_controller::view::Local {
            chassis: c.name.clone(),
            dual_delivery: self.config.dual_delivery,
            vifs: c.vifs.clone(),
            tunnel_ofport: Some(1),
            ..Default::default()
        };
        let view = tern_controller::view::chassis_view(&c.cache, &records, &local);
        let flows = tern_pipeline::compute(&view);
        let mut out = BTreeMap::new();
        for port in view.ports.values() {
            let Some(at) = sim::dispatch_targets(flows.iter(), port.key, &c.name, self.chassis.len()) else {
                if view.local_networks().any(|n| n.id == port.network_id)
                    && view.active_port(&port.id).is_some()
                {
                    self.fail(format!(
                        "{} has a local port on {} but no DISPATCH flow for {}",
                        c.name, port.network_id, port.id
                    ));
                }
                continue;
            };
            out.insert(port.id.clone(), at.into_iter().collect());
        }
        out
    }

    /// The flows of chassis `i` deliver each port where its location says (to the chassis it
    /// knows: one whose record has not reached it yet has no tunnel address there).
    fn check_flows(&self, i: usize) {
        let c = &self.chassis[i];
        for (id, from_flows) in self.flow_locations(i) {
            let want = self.location(i, &id).map(|l| {
                l.iter()
                    .filter(|name| *name == c.name || c.cache.get(Kind::Chassis, name).is_some())
                    .collect()
            });
            if want.as_ref() != Some(&from_flows) {
                self.fail(format!(
                    "{}'s flows deliver {id} to {from_flows:?}, its location is {want:?}",
                    self.chassis[i].name
                ));
            }
        }
    }

    fn check_running(&mut self) {
        // The flows of one chassis, now and then (a whole computation each).
        if self.rng.chance(0.1) {
            let i = self.rng.below(self.chassis.len());
            self.check_flows(i);
        }
        for i in 0..self.chassis.len() {
            for (id, held) in &self.held {
                let Some(loc) = self.location(i, id) else { continue };
                let name = &self.chassis[i].name;
                if loc.is_empty() {
                    self.fail(format!("{name} locates {id} nowhere"));
                }
                if let Some(stray) = loc.iter().find(|c| !held.contains(*c)) {
                    self.fail(format!("{name} locates {id} on {stray}, which never held its VIF"));
                }
                if loc.len() > 1 && !self.config.dual_delivery {
                    self.fail(format!("{name} delivers {id} to {loc:?} with dual delivery off"));
                }
            }
        }
    }

    /// One random background operation: a delivery, a look or a restart somewhere.
    async fn background(&mut self) {
        let i = self.rng.below(self.chassis.len());
        match self.rng.below(10) {
            0..=5 => self.deliver(i, true),
            6..=8 => {
                self.look(i).await;
            }
            _ => {
                if self.rng.chance(self.config.restarts) {
                    self.restart(i).await;
                }
            }
        }
    }

    // === Nova ===

    async fn act(&mut self, plan: &Plan, step: Step) {
        let (src, dst) = (plan.source, plan.dest);
        let dest_name = self.chassis[dst].name.clone();
        let events: Vec<NbEvent> = match step {
            Step::Announce { dual } => {
                self.held.entry(plan.port.clone()).or_default().insert(dest_name.clone());
                sim::announce(&self.nb, &plan.port, &dest_name, dual).await.into_iter().collect()
            }
            Step::PlugDest => {
                self.chassis[dst].vifs.insert(plan.port.clone(), 100 + dst as u32);
                self.held.entry(plan.port.clone()).or_default().insert(dest_name);
                vec![]
            }
            Step::Switch { rarp: true } | Step::Rarp => {
                self.rarp(plan).await;
                vec![]
            }
            Step::Switch { rarp: false } => vec![],
            Step::UnplugSource => {
                self.chassis[src].vifs.remove(&plan.port);
                vec![]
            }
            Step::UnplugDest => {
                self.chassis[dst].vifs.remove(&plan.port);
                vec![]
            }
            Step::BindingUpdate => sim::bind(&self.nb, &plan.port, &dest_name).await,
            Step::Withdraw => sim::withdraw(&self.nb, &plan.port, &dest_name).await.into_iter().collect(),
        };
        for event in events {
            self.observe(&event);
            self.publish(event);
        }
    }

    /// A packet from the VM on the destination reaches its controller, which activates there if
    /// its copy of the NB has the migration awaiting it (otherwise its flows would not have copied
    /// the packet to it).
    async fn rarp(&mut self, plan: &Plan) {
        let dst = plan.dest;
        let records = self.records_of(dst);
        let c = &mut self.chassis[dst];
        let Some(Object::Port(port)) = c.cache.get(Kind::Port, &plan.port).cloned() else { return };
        if !c.vifs.contains_key(&plan.port) {
            return;
        }
        let mut keyed = port.clone();
        keyed.unique_key = 1;
        c.local.on_packet(&c.name, 1, &[keyed], &records, 1);
    }

    /// Runs every port's migrations with background operations in between, then heals.
    async fn run(mut self) {
        let mut schedule =
            Schedule::new(self.config.ports, self.config.chassis, self.config.migrations_per_port);
        while schedule.refill(&mut self.rng) {
            for _ in 0..self.rng.below(12) {
                self.background().await;
            }
            let (plan, step) = schedule.take(&mut self.rng);
            if let Some(step) = step {
                self.act(&plan, step).await;
            }
            self.check_running();
            schedule.put_back(plan);
        }
        let (hosts, triggers) = (schedule.hosts, schedule.triggers);
        self.heal().await;
        self.check_converged(&hosts).await;
        self.check_replay().await;
        self.check_converged(&hosts).await;
        eprintln!(
            "seed {:>3}: {} events, triggers {triggers:?}, activations {:?}",
            self.seed,
            self.log.len(),
            self.activations
        );
    }

    /// No more faults: deliver everything and let every chassis look until nobody writes.
    async fn heal(&mut self) {
        for round in 0.. {
            if round > 100 {
                self.fail("the chassis never stop writing".into());
            }
            let mut writes = 0;
            for i in 0..self.chassis.len() {
                while !self.chassis[i].inbox.is_empty() {
                    self.deliver(i, false);
                }
            }
            for i in 0..self.chassis.len() {
                writes += self.look(i).await;
            }
            if writes == 0 && self.chassis.iter().all(|c| c.inbox.is_empty()) {
                return;
            }
        }
    }

    async fn check_converged(&self, hosts: &BTreeMap<String, usize>) {
        let (records, _) = self.nb.list(Kind::Migration).await.unwrap();
        if let Some(r) = records.first() {
            let id = r.object.id();
            let history: Vec<String> = self
                .log
                .iter()
                .filter_map(|e| match e {
                    NbEvent::Put { object, revision } if object.id() == id => match &**object {
                        Object::Migration(m) => Some(format!(
                            "{revision}: {:?} {}->{} epoch {} rev {}",
                            m.state, m.source, m.destination, m.epoch, m.revision_number
                        )),
                        Object::Port(p) => Some(format!("{revision}: bound to {}", p.binding_host_id)),
                        _ => None,
                    },
                    NbEvent::Delete { id: d, revision, .. } if d == id => {
                        Some(format!("{revision}: deleted"))
                    }
                    _ => None,
                })
                .collect();
            self.fail(format!("a Migration record is left: {:?}\n{}", r.object, history.join("\n")));
        }
        for (id, host) in hosts {
            let want = PortLocation::on(self.chassis[*host].name.clone());
            if self.port(id).await.binding_host_id != self.chassis[*host].name {
                self.fail(format!("{id} is not bound to hv{host}"));
            }
            for i in 0..self.chassis.len() {
                let got = self.location(i, id);
                if got.as_ref() != Some(&want) {
                    self.fail(format!("{} locates {id} at {got:?}, not {want:?}", self.chassis[i].name));
                }
            }
        }
        for i in 0..self.chassis.len() {
            self.check_flows(i);
        }
        for (id, epochs) in &self.epochs {
            // Records of one migration keep their epoch; a new migration's epoch is higher.
            if epochs.windows(2).any(|w| w[1] < w[0]) {
                self.fail(format!("epochs of {id} went back: {epochs:?}"));
            }
        }
    }

    /// Every chassis gets the whole history again, in a random order: nobody writes, and (checked
    /// after) every port is still located where it is bound. Only events a bystander lost may
    /// still change its copy; any other old event must be refused.
    async fn check_replay(&mut self) {
        let (all, revision) = self.nb.dump().await.unwrap();
        let complete = NbCache::from_listing(all.into_values().flatten(), revision);
        for i in 0..self.chassis.len() {
            let mut history = self.log.clone();
            while !history.is_empty() {
                let e = history.remove(self.rng.below(history.len()));
                let migration_event = matches!(&e, NbEvent::Put { object, .. } if object.kind() == Kind::Migration)
                    || matches!(&e, NbEvent::Delete { kind: Kind::Migration, .. });
                if self.chassis[i].cache.apply(e.clone()) && !migration_event {
                    self.fail(format!("{} applied an old event again: {e:?}", self.chassis[i].name));
                }
            }
            if self.chassis[i].cache.all::<Migration>() != complete.all::<Migration>() {
                self.fail(format!("{} does not end with the NB's records", self.chassis[i].name));
            }
            if self.look(i).await != 0 {
                self.fail(format!("{} wrote after a replay", self.chassis[i].name));
            }
        }
    }
}

async fn run_all(config: Config) {
    for seed in sim::seeds(12) {
        Sim::new(seed, config).await.run().await;
    }
}

const MANY: Config = Config {
    chassis: 12,
    ports: 8,
    migrations_per_port: 10,
    dual_delivery: true,
    loss: 0.3,
    duplication: 0.2,
    reordering: 0.5,
    restarts: 0.1,
};

#[tokio::test]
async fn many_chassis_with_dual_delivery_under_faults() {
    run_all(MANY).await;
}

#[tokio::test]
async fn many_chassis_without_dual_delivery_under_faults() {
    run_all(Config { dual_delivery: false, ..MANY }).await;
}

#[tokio::test]
async fn one_port_back_and_forth_between_two_chassis() {
    run_all(Config { chassis: 2, ports: 1, migrations_per_port: 40, ..MANY }).await;
}

#[tokio::test]
async fn heavy_loss_and_restarts() {
    run_all(Config { loss: 0.9, restarts: 0.5, duplication: 0.5, reordering: 0.9, ..MANY }).await;
}
