//! The live-migration agent of one chassis: the writes a controller makes to the Migration record
//! of a port, decided from state alone (the record, the port's binding, the VIFs here now and just
//! before), so lost, duplicated or reordered events only delay a step, never misplace a port.
//!
//! Each step but the first is judged on the state, not on a transition, so a step missed while
//! the record was on its way (or the controller down) is taken at the next look:
//!
//! * destination: a VIF for port P appears here while P is bound elsewhere -> `dest_plugged`
//!   (every chassis then delivers P's traffic to both ends: see `tern_pipeline::port_location`);
//!   an `announced` record (the API wrote it when Nova created the inactive destination binding)
//!   becomes `dest_plugged` the same way. P's binding names this chassis while a record is open
//!   -> `completed` (the API usually did it already); a `dest_plugged` record while the VIF is
//!   not here (it went before activation) -> `aborted`. A completed or aborted record is then deleted by the destination, or by the
//!   chassis the port is bound to.
//! * source: P is bound here, its record awaits activation and its VIF is not here (any more)
//!   -> `activated` (by source unplug).
//!
//! * destination, by packet: while P's record awaits activation toward here, P's VIF copies its
//!   packets to the controller (`tern_pipeline::apps::classifier`); the first one (the VM's
//!   RARP/GARP, or any packet) activates here at once ([`LocalActivations`]: this chassis computes
//!   its flows as if the record said `activated`) and the `activated` record is written after.
//!
//! Activation by the API needs no write here: a binding on the destination already points every
//! chassis at it.
//!
//! Epochs: a new record is written with epoch 0 and the NB assigns one above every earlier epoch.

use std::collections::BTreeMap;
use std::time::SystemTime;
use tern_model::{ActivationSource, Kind, Migration, MigrationState, Object, Port};
use tern_store::nb::NbEvent;

/// One write the migration agent wants, with the record it was decided from: it is made only if
/// the stored record is still that one (same epoch and revision number; or still none), so a
/// step about an old migration never touches a newer one.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Put { record: Migration, seen: Option<Seen> },
    Delete { port_id: String, seen: Seen },
}

/// Which record a step was decided from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub epoch: u64,
    pub revision_number: u64,
}

impl Seen {
    pub fn of(m: &Migration) -> Seen {
        Seen { epoch: m.epoch, revision_number: m.revision_number }
    }

    /// Whether `stored` is the record `seen` names (both absent counts).
    pub fn matches(seen: Option<Seen>, stored: Option<&Object>) -> bool {
        match (seen, stored) {
            (None, None) => true,
            (Some(s), Some(Object::Migration(m))) => Seen::of(m) == s,
            _ => false,
        }
    }
}

/// Nanoseconds since the Unix epoch: the records' timestamps.
pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// The steps chassis `me` takes, given the ports, the migration records, the VIFs plugged here
/// now and at the previous look (port ids). `dual_delivery` is this chassis' setting, written into
/// the records it opens; `port_seen_at(id)` the NB revision up to which this chassis' copy of port
/// `id` is known current (a revision at which it had that binding).
pub fn steps(
    me: &str,
    ports: &[Port],
    migrations: &BTreeMap<String, Migration>,
    vifs: (&BTreeMap<String, u32>, &BTreeMap<String, u32>),
    dual_delivery: bool,
    port_seen_at: &dyn Fn(&str) -> u64,
) -> Vec<Step> {
    let (vifs_now, vifs_before) = vifs;
    use MigrationState::*;
    let mut out = Vec::new();
    for port in ports {
        let record = migrations.get(&port.id);
        let here_now = vifs_now.contains_key(&port.id);
        let here_before = vifs_before.contains_key(&port.id);
        let unplugged = here_before && !here_now;
        let bound = port.binding_host_id.as_str();
        let mut put =
            |m: &Migration, seen: Option<Seen>, state: MigrationState, f: &dyn Fn(&mut Migration, u64)| {
                let mut next = m.clone();
                next.state = state;
                f(&mut next, now_ns());
                out.push(Step::Put { record: next, seen });
            };
        // An open record is stale when, at a revision after it was opened (its epoch), the
        // port was bound to neither of its ends: the port moved on before the migration was
        // seen to complete. No chassis follows it (see `tern_pipeline::port_location`), and its
        // ends or the chassis the port is bound to delete it. (A binding older than the record
        // proves nothing: the record may be about the move away from it.)
        // A record that says which revision of the port its opener saw is stale as soon as the
        // port changed after it (a record written late, on a view the port had already left,
        // gets an epoch above the port's revision, which then proves nothing).
        let stale = record.is_some_and(|m| {
            let changed_since = match m.port_revision {
                0 => port_seen_at(&port.id) >= m.epoch,
                seen_by_opener => port_seen_at(&port.id) > seen_by_opener,
            };
            !m.state.is_final() && bound != m.source && bound != m.destination && changed_since
        });
        match record {
            Some(m) if stale && (bound == me || m.source == me || m.destination == me) => {
                out.push(Step::Delete { port_id: port.id.clone(), seen: Seen::of(m) });
            }
            // Only a VIF that appears opens a migration: a VIF left behind on the old source after
            // the binding moved (the API came before the unplug) is no migration back.
            None | Some(Migration { state: Completed | Aborted, .. }) | Some(_)
                if (record.is_none_or(|m| m.state.is_final()) || stale)
                    && here_now
                    && !here_before
                    && !bound.is_empty()
                    && bound != me =>
            {
                let mut m = Migration::new(&port.id, 0, bound, me);
                m.dual_delivery = dual_delivery;
                m.port_revision = port_seen_at(&port.id);
                if let Some(old) = record {
                    m.revision_number = old.revision_number;
                }
                put(&m, record.map(Seen::of), DestPlugged, &|m, t| {
                    m.timestamps.started_at_ns = Some(t);
                    m.timestamps.dest_plugged_at_ns = Some(t);
                });
            }
            None => {}
            Some(_) if stale => {}
            // The destination finishes what it opened, whichever way it ended.
            Some(m) if m.state.is_final() && (m.destination == me || bound == me) => {
                out.push(Step::Delete { port_id: port.id.clone(), seen: Seen::of(m) });
            }
            Some(m) if m.state.is_final() => {}
            Some(m) if m.destination != me && m.source != me => {}
            // Not known stale, but not about the binding this chassis sees either: wait. Except a
            // destination whose VIF is gone before activation: its plug was undone (its own record
            // may have landed after the port moved on, with an epoch above the binding's, so
            // nobody could prove it stale), and it aborts what it opened.
            Some(m)
                if bound != m.source
                    && bound != m.destination
                    && !(m.destination == me && m.state == DestPlugged && !here_now) => {}
            Some(m) if m.destination == me => {
                if let Some(done) = m.on_binding_moved(bound, now_ns()) {
                    out.push(Step::Put { record: done, seen: Some(Seen::of(m)) });
                } else if (m.state == DestPlugged && !here_now) || (m.state == Announced && unplugged) {
                    put(m, Some(Seen::of(m)), Aborted, &|m, t| m.timestamps.aborted_at_ns = Some(t));
                } else if m.state == Announced && here_now {
                    put(m, Some(Seen::of(m)), DestPlugged, &|m, t| {
                        m.timestamps.dest_plugged_at_ns = Some(t);
                    });
                }
            }
            // The source: its VIF going away means the VM stopped here.
            Some(m) if m.state.is_before_activation() && !here_now && bound == me => {
                put(m, Some(Seen::of(m)), Activated, &|m, t| {
                    m.activated_by = Some(ActivationSource::SourceUnplug);
                    m.timestamps.activated_at_ns = Some(t);
                });
            }
            Some(_) => {}
        }
    }
    out
}

/// Migrations this chassis activated on a packet from the VM before the store has the `activated`
/// record: port id -> (epoch, activation time in ns).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalActivations(BTreeMap<String, (u64, u64)>);

impl LocalActivations {
    /// A packet from the VIF of the port with key `port_key` reached the controller: records
    /// the activation if that port's migration awaits activation toward `me` (and was not already
    /// activated here); says whether it did.
    pub fn on_packet(
        &mut self,
        me: &str,
        port_key: u32,
        ports: &[Port],
        migrations: &BTreeMap<String, Migration>,
        at_ns: u64,
    ) -> bool {
        let Some(port) = ports.iter().find(|p| p.unique_key == port_key && p.unique_key != 0) else {
            return false;
        };
        let Some(m) = migrations.get(&port.id) else { return false };
        if !m.state.is_before_activation() || m.destination != me || self.0.contains_key(&port.id) {
            return false;
        }
        self.0.insert(port.id.clone(), (m.epoch, at_ns));
        true
    }

    /// Forgets the activations the store no longer needs: the record was activated (our write
    /// landed, or another step won), went, or belongs to another migration.
    pub fn prune(&mut self, me: &str, migrations: &BTreeMap<String, Migration>) {
        self.0.retain(|port, (epoch, _)| {
            migrations
                .get(port)
                .is_some_and(|m| m.state.is_before_activation() && m.destination == me && m.epoch == *epoch)
        });
    }

    /// `m` as this chassis sees it: `activated` (by RARP) if activated here first.
    fn apply(&self, m: &Migration) -> Option<Migration> {
        let &(epoch, at) = self.0.get(&m.port_id)?;
        if !m.state.is_before_activation() || m.epoch != epoch {
            return None;
        }
        let mut a = m.clone();
        a.state = MigrationState::Activated;
        a.activated_by = Some(ActivationSource::Rarp);
        a.timestamps.activated_at_ns = Some(at);
        Some(a)
    }

    /// The records with the local activations applied.
    pub fn overlay(&self, migrations: Vec<Migration>) -> Vec<Migration> {
        migrations.into_iter().map(|m| self.apply(&m).unwrap_or(m)).collect()
    }

    /// The writes that tell everyone: each locally activated record, `activated` by RARP.
    pub fn steps(&self, migrations: &BTreeMap<String, Migration>) -> Vec<Step> {
        migrations
            .values()
            .filter_map(|m| Some(Step::Put { record: self.apply(m)?, seen: Some(Seen::of(m)) }))
            .collect()
    }
}

/// The records as the pipeline should see them: all of them when both this chassis and the
/// record want dual delivery; otherwise (the spec's original design) none awaiting activation, so
/// a port stays where it is bound until it is activated.
pub fn for_pipeline(migrations: Vec<Migration>, dual_delivery: bool) -> Vec<Migration> {
    migrations
        .into_iter()
        .filter(|m| !m.state.is_before_activation() || (dual_delivery && m.dual_delivery))
        .collect()
}

/// One look of a chassis' migration agent, as its controller takes one after every batch of
/// events: what it knows now.
pub struct Look<'a> {
    pub me: &'a str,
    pub ports: &'a [Port],
    /// The NB revision up to which this chassis' copy of a port is known current.
    pub port_seen_at: &'a (dyn Fn(&str) -> u64 + Sync),
    /// The NB's records, by port id.
    pub records: &'a BTreeMap<String, Migration>,
    pub vifs_now: &'a BTreeMap<String, u32>,
    pub vifs_before: &'a BTreeMap<String, u32>,
    /// This chassis' setting.
    pub dual_delivery: bool,
}

impl Look<'_> {
    /// Forgets the local activations the store has overtaken, and returns the writes to make
    /// now ([`steps`], with the local activations applied to the records) and those to make once
    /// the flows are installed (the local activations, see [`LocalActivations::steps`]).
    pub fn run(&self, local: &mut LocalActivations) -> (Vec<Step>, Vec<Step>) {
        local.prune(self.me, self.records);
        let seen: BTreeMap<String, Migration> = local
            .overlay(self.records.values().cloned().collect())
            .into_iter()
            .map(|m| (m.port_id.clone(), m))
            .collect();
        let now = steps(
            self.me,
            self.ports,
            &seen,
            (self.vifs_now, self.vifs_before),
            self.dual_delivery,
            self.port_seen_at,
        );
        (now, local.steps(self.records))
    }
}

/// Applies the steps to the NB and returns what was written, as the NB's watch will report it. A
/// step that loses a race is simply redone on the next look.
pub async fn apply(nb: &tern_store::nb::Nb, steps: Vec<Step>) -> Vec<NbEvent> {
    let mut written = Vec::new();
    for step in steps {
        let result = match &step {
            Step::Put { record, seen } => {
                let seen = *seen;
                let guard = move |stored: Option<&Object>| Seen::matches(seen, stored);
                nb.put_if(Object::Migration(record.clone()), &guard).await.map(|stored| NbEvent::Put {
                    revision: stored.mod_revision,
                    object: Box::new(stored.object),
                })
            }
            Step::Delete { port_id, seen } => {
                let seen = Some(*seen);
                let guard = move |stored: Option<&Object>| Seen::matches(seen, stored);
                nb.delete_if(Kind::Migration, port_id, &guard).await.map(|revision| NbEvent::Delete {
                    kind: Kind::Migration,
                    id: port_id.clone(),
                    revision,
                })
            }
        };
        match result {
            Ok(event) => {
                tracing::info!(?step, "migration");
                written.push(event);
            }
            Err(e) => tracing::debug!(?step, error = %e, "migration step not written (will retry)"),
        }
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(id: &str, host: &str) -> Port {
        let mut p = Port::new("net");
        p.id = id.into();
        p.binding_host_id = host.into();
        p
    }

    fn vifs(ids: &[&str]) -> BTreeMap<String, u32> {
        ids.iter().enumerate().map(|(i, id)| (id.to_string(), i as u32 + 1)).collect()
    }

    fn record(state: MigrationState) -> BTreeMap<String, Migration> {
        let mut m = Migration::new("p", 1, "hv1", "hv2");
        m.state = state;
        if state == MigrationState::Activated {
            m.activated_by = Some(ActivationSource::SourceUnplug);
        }
        [("p".to_string(), m)].into()
    }

    fn steps(
        me: &str,
        ports: &[Port],
        migrations: &BTreeMap<String, Migration>,
        now: &BTreeMap<String, u32>,
        before: &BTreeMap<String, u32>,
    ) -> Vec<Step> {
        super::steps(me, ports, migrations, (now, before), true, &|_| u64::MAX)
    }

    fn put_state(s: &[Step]) -> Option<MigrationState> {
        match s {
            [Step::Put { record, .. }] => Some(record.state),
            _ => None,
        }
    }

    #[test]
    fn destination_plug_opens_a_migration() {
        let p = port("p", "hv1");
        let s = super::steps("hv2", &[p], &BTreeMap::new(), (&vifs(&["p"]), &vifs(&[])), false, &|_| 0);
        let [Step::Put { record: m, .. }] = s.as_slice() else { panic!("{s:?}") };
        assert_eq!(
            (m.source.as_str(), m.destination.as_str(), m.state, m.epoch, m.dual_delivery),
            ("hv1", "hv2", MigrationState::DestPlugged, 0, false)
        );
        assert!(m.timestamps.started_at_ns.is_some() && m.timestamps.dest_plugged_at_ns.is_some());
        // The old source keeping its VIF after the binding moved does not migrate it back.
        assert!(steps("hv1", &[port("p", "hv2")], &BTreeMap::new(), &vifs(&["p"]), &vifs(&["p"])).is_empty());
        // Seen again (duplicate event): nothing more to write.
        let open = record(MigrationState::DestPlugged);
        assert!(steps("hv2", &[port("p", "hv1")], &open, &vifs(&["p"]), &vifs(&["p"])).is_empty());
        // A port bound here, or unbound, with its VIF here is no migration.
        assert!(steps("hv2", &[port("p", "hv2")], &BTreeMap::new(), &vifs(&["p"]), &vifs(&[])).is_empty());
        assert!(steps("hv2", &[port("p", "")], &BTreeMap::new(), &vifs(&["p"]), &vifs(&[])).is_empty());
    }

    /// hv2 opened p's migration hv1 -> hv2 seeing the port at revision 5; the port moved on to
    /// hv3 at revision 7; the record's write landed later still, with epoch 10.
    #[test]
    fn a_record_written_after_the_port_moved_on_is_proved_stale_by_the_openers_view() {
        let mut m = Migration::new("p", 10, "hv1", "hv2");
        m.state = MigrationState::Activated;
        m.activated_by = Some(ActivationSource::SourceUnplug);
        m.port_revision = 5;
        let bound_hv3 = [port("p", "hv3")];
        let here = (&vifs(&["p"]), &vifs(&["p"]));
        let look = |m: &Migration, seen_at: u64| {
            let records = [("p".to_string(), m.clone())].into();
            super::steps("hv3", &bound_hv3, &records, here, true, &move |_| seen_at)
        };
        // The chassis the port is bound to, having seen it at revision 7, deletes it.
        assert!(matches!(look(&m, 7).as_slice(), [Step::Delete { .. }]), "{:?}", look(&m, 7));
        // A copy no newer than the opener's view proves nothing.
        assert!(look(&m, 5).is_empty());
        // Nor does the epoch alone, for a record without the opener's view.
        m.port_revision = 0;
        assert!(look(&m, 7).is_empty());
        // The destination records what it saw when it opens one.
        let s = super::steps(
            "hv2",
            &[port("p", "hv1")],
            &BTreeMap::new(),
            (&vifs(&["p"]), &vifs(&[])),
            true,
            &|_| 42,
        );
        let [Step::Put { record, .. }] = s.as_slice() else { panic!("{s:?}") };
        assert_eq!(record.port_revision, 42);
    }

    #[test]
    fn a_destination_whose_vif_went_aborts_even_when_the_binding_names_neither_end() {
        let open = record(MigrationState::DestPlugged);
        let gone = (&vifs(&[]), &vifs(&["p"]));
        let s = super::steps("hv2", &[port("p", "hv3")], &open, gone, true, &|_| 0);
        assert_eq!(put_state(&s), Some(MigrationState::Aborted));
        // The source, seeing the same, waits (it is not bound there any more).
        assert!(super::steps("hv1", &[port("p", "hv3")], &open, gone, true, &|_| 0).is_empty());
    }

    #[test]
    fn an_announced_migration_is_plugged_by_its_destination_only() {
        let announced = record(MigrationState::Announced);
        let s = steps("hv2", &[port("p", "hv1")], &announced, &vifs(&["p"]), &vifs(&[]));
        assert_eq!(put_state(&s), Some(MigrationState::DestPlugged));
        let [Step::Put { record: m, .. }] = s.as_slice() else { unreachable!() };
        assert_eq!(m.epoch, 1, "the same migration");
        // Not plugged yet, or a bystander: nothing.
        assert!(steps("hv2", &[port("p", "hv1")], &announced, &vifs(&[]), &vifs(&[])).is_empty());
        assert!(steps("hv3", &[port("p", "hv1")], &announced, &vifs(&["p"]), &vifs(&[])).is_empty());
    }

    #[test]
    fn source_unplug_activates_and_binding_completes() {
        for state in [MigrationState::Announced, MigrationState::DestPlugged] {
            let s = steps("hv1", &[port("p", "hv1")], &record(state), &vifs(&[]), &vifs(&["p"]));
            let [Step::Put { record: m, .. }] = s.as_slice() else { panic!("{s:?}") };
            assert_eq!(
                (m.state, m.activated_by),
                (MigrationState::Activated, Some(ActivationSource::SourceUnplug))
            );
        }
        // Bystanders and the destination do nothing on the source's unplug.
        let open = record(MigrationState::DestPlugged);
        assert!(steps("hv3", &[port("p", "hv1")], &open, &vifs(&[]), &vifs(&[])).is_empty());
        // The API moves the binding: the destination completes the record, whatever its state,
        // then deletes it.
        for state in [MigrationState::Announced, MigrationState::DestPlugged, MigrationState::Activated] {
            let s = steps("hv2", &[port("p", "hv2")], &record(state), &vifs(&["p"]), &vifs(&["p"]));
            let [Step::Put { record: m, .. }] = s.as_slice() else { panic!("{s:?}") };
            assert_eq!(m.state, MigrationState::Completed);
            assert!(m.timestamps.completed_at_ns.is_some() && m.activated_by.is_some(), "{m:?}");
        }
        let done = record(MigrationState::Completed);
        let s = steps("hv2", &[port("p", "hv2")], &done, &vifs(&["p"]), &vifs(&["p"]));
        assert_eq!(s, [Step::Delete { port_id: "p".into(), seen: Seen { epoch: 1, revision_number: 0 } }]);
        // Replaying a finished record anywhere else does nothing.
        for me in ["hv1", "hv3"] {
            assert!(steps(me, &[port("p", "hv2")], &done, &vifs(&[]), &vifs(&["p"])).is_empty());
        }
    }

    #[test]
    fn destination_unplug_before_activation_aborts() {
        let open = record(MigrationState::DestPlugged);
        let s = steps("hv2", &[port("p", "hv1")], &open, &vifs(&[]), &vifs(&["p"]));
        assert_eq!(put_state(&s), Some(MigrationState::Aborted));
        let aborted = record(MigrationState::Aborted);
        let s = steps("hv2", &[port("p", "hv1")], &aborted, &vifs(&[]), &vifs(&[]));
        assert_eq!(s, [Step::Delete { port_id: "p".into(), seen: Seen { epoch: 1, revision_number: 0 } }]);
        // After activation the destination keeps it (the VM runs there).
        assert!(steps(
            "hv2",
            &[port("p", "hv1")],
            &record(MigrationState::Activated),
            &vifs(&[]),
            &vifs(&["p"])
        )
        .is_empty());
    }

    fn keyed(id: &str, host: &str, key: u32) -> Port {
        let mut p = port(id, host);
        p.unique_key = key;
        p
    }

    #[test]
    fn a_packet_on_the_destination_activates_there_first_then_in_the_store() {
        let ports = [keyed("p", "hv1", 7), keyed("q", "hv1", 8)];
        let open = record(MigrationState::DestPlugged);
        let mut local = LocalActivations::default();
        // Not the destination, not a migrating port, unknown key: nothing.
        assert!(!local.on_packet("hv1", 7, &ports, &open, 5));
        assert!(!local.on_packet("hv2", 8, &ports, &open, 5));
        assert!(!local.on_packet("hv2", 9, &ports, &open, 5));
        assert!(local.on_packet("hv2", 7, &ports, &open, 5));
        // Later packets of the same VM change nothing.
        assert!(!local.on_packet("hv2", 7, &ports, &open, 6));
        // Seen here as activated at once, by RARP, at the first packet's time.
        let seen = local.overlay(open.values().cloned().collect());
        assert_eq!(
            (seen[0].state, seen[0].activated_by, seen[0].timestamps.activated_at_ns),
            (MigrationState::Activated, Some(ActivationSource::Rarp), Some(5))
        );
        // And written: the same record.
        assert_eq!(
            local.steps(&open),
            [Step::Put { record: seen[0].clone(), seen: Some(Seen::of(&open["p"])) }]
        );
        // Once the store has it (or anything but this dest_plugged record), it is forgotten.
        let mut kept = local.clone();
        kept.prune("hv2", &open);
        assert_eq!(kept, local);
        local.prune("hv2", &record(MigrationState::Activated));
        assert_eq!(local, LocalActivations::default());
        // An older migration's activation does not apply to a newer one.
        let mut local = LocalActivations::default();
        assert!(local.on_packet("hv2", 7, &ports, &open, 5));
        let mut next = open.clone();
        next.get_mut("p").unwrap().epoch = 2;
        assert!(local.steps(&next).is_empty());
        assert_eq!(local.overlay(next.values().cloned().collect())[0].state, MigrationState::DestPlugged);
        local.prune("hv2", &next);
        assert_eq!(local, LocalActivations::default());
        // An already activated record is not activated again.
        assert!(!local.on_packet("hv2", 7, &ports, &record(MigrationState::Activated), 5));
    }

    #[test]
    fn without_dual_delivery_only_activated_records_move_traffic() {
        let mut off = record(MigrationState::DestPlugged)["p"].clone();
        off.dual_delivery = false;
        let all = vec![
            record(MigrationState::Announced)["p"].clone(),
            record(MigrationState::DestPlugged)["p"].clone(),
            record(MigrationState::Activated)["p"].clone(),
            off,
        ];
        assert_eq!(for_pipeline(all.clone(), true).len(), 3, "the record can turn it off");
        assert_eq!(for_pipeline(all, false).len(), 1, "so can the chassis");
    }
}
