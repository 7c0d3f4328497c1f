//! What the two migration simulations share: the seeded generator that drives their schedules,
//! Nova's plans and what the API writes for them, the chassis' tunnel addresses, the seeds to
//! run, and reading where a chassis' flows deliver a port (its DISPATCH flow).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use tern_controller::migration;
use tern_model::{Kind, Migration, MigrationState, Object, Port};
use tern_openflow::{Action, Field, Flow, Instruction};
use tern_pipeline::App;
use tern_store::nb::{Nb, NbEvent};

/// SplitMix64: small, fast and good enough to drive a schedule from a seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// Chassis `hv{i}`'s tunnel address.
pub fn tunnel_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(172, 31, 0, i as u8 + 1)
}

/// The seeds to run: `TERN_SIM_SEEDS` of them (else `default`) from `TERN_SIM_FIRST_SEED` (0).
pub fn seeds(default: u64) -> std::ops::Range<u64> {
    let var = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    let first = var("TERN_SIM_FIRST_SEED").unwrap_or(0);
    first..first + var("TERN_SIM_SEEDS").unwrap_or(default)
}

/// Where the DISPATCH flow of the port with key `key` among `flows` (those of chassis `me`, one
/// of `chassis` chassis `hv0`..) delivers: `me` for a local delivery, other chassis by their
/// tunnel address. `None` when there is no such flow.
pub fn dispatch_targets<'a>(
    flows: impl IntoIterator<Item = &'a Flow>,
    key: u32,
    me: &str,
    chassis: usize,
) -> Option<BTreeSet<String>> {
    let flow = flows.into_iter().find(|f| dispatch_port(f) == Some(key))?;
    Some(delivers(flow, me, chassis))
}

/// The key of the port whose DISPATCH flow `flow` is, if it is one.
pub fn dispatch_port(flow: &Flow) -> Option<u32> {
    if flow.table_id != tern_pipeline::tables::DISPATCH {
        return None;
    }
    match App::from_cookie(flow.cookie) {
        Some((App::Dispatch, tern_pipeline::cookie::Object::Port(key))) => Some(key),
        _ => None,
    }
}

/// Where a DISPATCH flow of chassis `me` (one of `chassis` chassis `hv0`..) delivers: `me` for a
/// local delivery (`resubmit(,INGRESS_ACL)`), other chassis by their tunnel address
/// (`set_field:IP->tun_dst`).
pub fn delivers(flow: &Flow, me: &str, chassis: usize) -> BTreeSet<String> {
    let mut at = BTreeSet::new();
    for instruction in &flow.instructions {
        let (Instruction::ApplyActions(actions) | Instruction::WriteActions(actions)) = instruction else {
            continue;
        };
        for action in actions {
            match action {
                Action::SetField { field: Field::TunIpv4Dst, value, .. } => {
                    let ip = Ipv4Addr::from(value.as_u32());
                    at.extend((0..chassis).find(|k| tunnel_ip(*k) == ip).map(|k| format!("hv{k}")));
                }
                Action::Resubmit { in_port: None, table: Some(tern_pipeline::tables::INGRESS_ACL) } => {
                    at.insert(me.to_string());
                }
                _ => {}
            }
        }
    }
    at
}

/// What Nova does to migrate a port, and how it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Rarp,
    Unplug,
    Api,
    Abort,
}

/// One of Nova's steps.
#[derive(Clone, Copy, Debug)]
pub enum Step {
    /// The inactive destination binding (through the API): announces the migration.
    Announce {
        dual: bool,
    },
    PlugDest,
    /// The VM resumes on the destination; with RARP it announces itself (QEMU sends several).
    Switch {
        rarp: bool,
    },
    Rarp,
    UnplugSource,
    UnplugDest,
    BindingUpdate,
    /// Nova's rollback: the destination binding is deleted, the announcement withdrawn.
    Withdraw,
}

/// One migration of `port` from chassis `source` to `dest`: the steps left, last first.
pub struct Plan {
    pub port: String,
    pub source: usize,
    pub dest: usize,
    pub trigger: Trigger,
    pub steps: Vec<Step>,
}

/// A random migration of `port` away from chassis `source`, among `chassis` chassis.
pub fn plan(rng: &mut Rng, port: &str, source: usize, chassis: usize) -> Plan {
    let mut dest = rng.below(chassis - 1);
    if dest >= source {
        dest += 1;
    }
    let trigger = [Trigger::Rarp, Trigger::Unplug, Trigger::Api, Trigger::Abort][rng.below(4)];
    if std::env::var_os("TERN_SIM_TRACE").is_some() {
        eprintln!("plan {port}: hv{source} -> hv{dest} {trigger:?}");
    }
    let mut steps = Vec::new();
    if rng.chance(0.5) {
        steps.push(Step::Announce { dual: rng.chance(0.7) });
    }
    steps.push(Step::PlugDest);
    steps.extend(match trigger {
        Trigger::Rarp => {
            vec![Step::Switch { rarp: true }, Step::Rarp, Step::UnplugSource, Step::Rarp, Step::BindingUpdate]
        }
        Trigger::Unplug => vec![Step::Switch { rarp: false }, Step::UnplugSource, Step::BindingUpdate],
        Trigger::Api => vec![Step::Switch { rarp: false }, Step::BindingUpdate, Step::UnplugSource],
        Trigger::Abort => vec![Step::UnplugDest, Step::Withdraw],
    });
    steps.reverse();
    Plan { port: port.to_owned(), source, dest, trigger, steps }
}

// === what the API does for Nova, on the NB; each returns the events to deliver ===

async fn record(nb: &Nb, port: &str) -> Option<Migration> {
    match nb.get(Kind::Migration, port).await.unwrap()?.object {
        Object::Migration(m) => Some(m),
        _ => None,
    }
}

async fn port(nb: &Nb, id: &str) -> Port {
    match nb.get(Kind::Port, id).await.unwrap().unwrap().object {
        Object::Port(p) => p,
        _ => unreachable!(),
    }
}

/// Writes `m` if the stored record is still `prev`.
async fn put_record(nb: &Nb, m: Migration, prev: Option<&Migration>) -> Option<NbEvent> {
    let seen = prev.map(migration::Seen::of);
    let guard = move |stored: Option<&Object>| migration::Seen::matches(seen, stored);
    let stored = nb.put_if(Object::Migration(m), &guard).await.ok()?;
    Some(NbEvent::Put { revision: stored.mod_revision, object: Box::new(stored.object) })
}

/// The inactive destination binding on `dest`: an `announced` record, unless a migration there
/// is already open.
pub async fn announce(nb: &Nb, port_id: &str, dest: &str, dual: bool) -> Option<NbEvent> {
    let port = port(nb, port_id).await;
    let prev = record(nb, port_id).await;
    if prev.as_ref().is_some_and(|m| !m.state.is_final() && m.destination == dest) {
        return None;
    }
    let mut m = Migration::new(&port.id, 0, &port.binding_host_id, dest);
    m.state = MigrationState::Announced;
    m.dual_delivery = dual;
    m.revision_number = prev.as_ref().map_or(0, |p| p.revision_number);
    put_record(nb, m, prev.as_ref()).await
}

/// The binding moves to `dest`: the port first, then the record completed (if still open).
pub async fn bind(nb: &Nb, port_id: &str, dest: &str) -> Vec<NbEvent> {
    let mut p = port(nb, port_id).await;
    p.binding_host_id = dest.to_owned();
    let stored = nb.put(Object::Port(p)).await.unwrap();
    let mut out = vec![NbEvent::Put { revision: stored.mod_revision, object: Box::new(stored.object) }];
    if let Some(m) = record(nb, port_id).await {
        if let Some(done) = m.on_binding_moved(dest, 1) {
            out.extend(put_record(nb, done, Some(&m)).await);
        }
    }
    out
}

/// Nova's rollback: the open migration toward `dest` is deleted, if it is still before
/// activation.
pub async fn withdraw(nb: &Nb, port_id: &str, dest: &str) -> Option<NbEvent> {
    let m = record(nb, port_id).await?;
    if m.destination != dest || !m.state.is_before_activation() {
        return None;
    }
    let seen = Some(migration::Seen::of(&m));
    let guard = move |stored: Option<&Object>| migration::Seen::matches(seen, stored);
    let revision = nb.delete_if(Kind::Migration, &m.port_id, &guard).await.ok()?;
    Some(NbEvent::Delete { kind: Kind::Migration, id: m.port_id, revision })
}

/// The migrations of every port, one after the other per port and interleaved across ports:
/// `p0`.. start on chassis `hv{p % chassis}` and are migrated `per_port` times each.
pub struct Schedule {
    chassis: usize,
    ports: Vec<String>,
    left: BTreeMap<String, usize>,
    plans: BTreeMap<String, Plan>,
    /// Where each port is bound once its plans so far are done.
    pub hosts: BTreeMap<String, usize>,
    /// How many migrations ended each way.
    pub triggers: BTreeMap<String, usize>,
}

impl Schedule {
    pub fn new(ports: usize, chassis: usize, per_port: usize) -> Schedule {
        Schedule::of((0..ports).map(|p| (format!("p{p}"), p % chassis)).collect(), chassis, per_port)
    }

    /// The migrations of these ports (id, the chassis it starts on), `per_port` each.
    pub fn of(ports: Vec<(String, usize)>, chassis: usize, per_port: usize) -> Schedule {
        Schedule {
            chassis,
            hosts: ports.iter().cloned().collect(),
            left: ports.iter().map(|(p, _)| (p.clone(), per_port)).collect(),
            ports: ports.into_iter().map(|(p, _)| p).collect(),
            plans: BTreeMap::new(),
            triggers: BTreeMap::new(),
        }
    }

    /// The chassis at either end of a migration under way.
    pub fn busy_chassis(&self) -> Vec<usize> {
        self.plans.values().flat_map(|p| [p.source, p.dest]).collect()
    }

    /// Plans the next migration of every port without one; false when all are done.
    pub fn refill(&mut self, rng: &mut Rng) -> bool {
        for p in &self.ports {
            if !self.plans.contains_key(p) && self.left[p] > 0 {
                *self.left.get_mut(p).unwrap() -= 1;
                let plan = plan(rng, p, self.hosts[p], self.chassis);
                *self.triggers.entry(format!("{:?}", plan.trigger)).or_default() += 1;
                self.plans.insert(p.clone(), plan);
            }
        }
        !self.plans.is_empty()
    }

    /// A random port's plan and its next step (hand the plan back with [`Schedule::put_back`]).
    pub fn take(&mut self, rng: &mut Rng) -> (Plan, Option<Step>) {
        let busy: Vec<String> = self.plans.keys().cloned().collect();
        let mut plan = self.plans.remove(&busy[rng.below(busy.len())]).unwrap();
        let step = plan.steps.pop();
        (plan, step)
    }

    /// A plan after its step: kept if it has more, else its port is where the plan left it.
    pub fn put_back(&mut self, plan: Plan) {
        if !plan.steps.is_empty() {
            self.plans.insert(plan.port.clone(), plan);
        } else if plan.trigger != Trigger::Abort {
            self.hosts.insert(plan.port, plan.dest);
        }
    }
}
