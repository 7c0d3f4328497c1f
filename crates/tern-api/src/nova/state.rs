//! The notifier's memory, without IO: fed NB listings and watch events in revision order, it
//! queues what Nova must hear (each port's changes against what Nova was told, so a status
//! flap seen in the watch is told as the two events it is) and knows which notified records to
//! write: what Nova knows of each port, and the events it has not answered yet (the outbox, so
//! events that wait for Nova wait in the NB).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use tern_model::{FloatingIp, Kind, Migration, Object, Port};
use tern_store::nb::NbEvent;
use tern_store::Revision;

use super::core::{self, Event, EventName, Facts, FloatingFact, Observed};

/// At most this many events wait for Nova about one port (a port flapping through a long Nova
/// outage); the oldest go first.
pub const MAX_PENDING_PER_PORT: usize = 32;

/// A port's notified record (`/tern/nova/notified/<port>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifiedRecord {
    /// What Nova knows of the port once `pending` is delivered (`None`: the port is gone, or no
    /// server's; the record stays until its last events are delivered).
    pub facts: Option<Facts>,
    /// Events Nova has not answered yet, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<Event>,
    /// The NB revision the record reflects: the port's changes up to it are in `facts` and
    /// `pending`.
    pub revision: Revision,
}

/// A port the notifier knows of.
#[derive(Clone, Debug, Default)]
struct Entry {
    /// What Nova knows once the queue is delivered (`None`: nothing to follow).
    facts: Option<Facts>,
    /// The stored record and its mod revision.
    stored: Option<(NotifiedRecord, Revision)>,
}

/// One record write of a flush: the record (`None`: delete it) and its mod revision as last
/// seen (0: absent), to compare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordWrite {
    pub port_id: String,
    pub record: Option<NotifiedRecord>,
    pub mod_revision: Revision,
}

#[derive(Default)]
pub struct State {
    ports: HashMap<String, Entry>,
    /// Ports whose record may differ from what the notifier knows.
    dirty: BTreeSet<String>,
    /// Associated floating IPs: id -> (port, fact).
    fips: HashMap<String, (String, FloatingFact)>,
    /// Port -> ids of its floating IPs.
    fips_of: HashMap<String, BTreeSet<String>>,
    /// Port -> epoch of its migration whose destination is plugged.
    migrations: HashMap<String, u64>,
    pending: VecDeque<Event>,
    /// Every NB change up to this revision is told, queued or in a record.
    processed: Revision,
    /// Floating IP and migration changes up to this revision are in the maps (from a listing).
    listed: Revision,
}

impl State {
    /// The state the stored records describe (their undelivered events queued again, in record
    /// order), with every change up to `cursor` in them.
    pub fn from_records(
        records: impl IntoIterator<Item = (String, NotifiedRecord, Revision)>,
        cursor: Revision,
    ) -> State {
        let mut s = State { processed: cursor, ..State::default() };
        for (port_id, record, mod_revision) in records {
            s.pending.extend(record.pending.iter().cloned());
            let entry = Entry { facts: record.facts.clone(), stored: Some((record, mod_revision)) };
            s.ports.insert(port_id, entry);
        }
        s
    }

    /// A stored record that cannot be read: deleted at the next write (its port, if still a
    /// server's, is then seen for the first time).
    pub fn drop_record(&mut self, port_id: &str, mod_revision: Revision) {
        let unreadable = NotifiedRecord { facts: None, pending: Vec::new(), revision: 0 };
        self.ports
            .insert(port_id.to_owned(), Entry { facts: None, stored: Some((unreadable, mod_revision)) });
        self.dirty.insert(port_id.to_owned());
    }

    /// Takes in a listing of the NB at `revision`: floating IPs and migrations always (each
    /// followed port compared with them); the ports too when `ports` (each compared with what
    /// Nova was told, followed ports missing from it deleted). Without `ports` the ports' own
    /// changes are to come from the watch, from the records' revision on.
    pub fn apply_listing(&mut self, objects: &BTreeMap<Kind, Vec<Object>>, revision: Revision, ports: bool) {
        let of = |kind| objects.get(&kind).into_iter().flatten();
        self.fips.clear();
        self.fips_of.clear();
        for o in of(Kind::FloatingIp) {
            if let Object::FloatingIp(f) = o {
                self.set_fip(f);
            }
        }
        self.migrations.clear();
        for o in of(Kind::Migration) {
            if let Object::Migration(m) = o {
                self.set_migration(m);
            }
        }
        self.listed = revision;
        if ports {
            let mut present = BTreeSet::new();
            for o in of(Kind::Port) {
                if let Object::Port(p) = o {
                    present.insert(p.id.as_str());
                    self.observe_port(p);
                }
            }
            let mut gone: Vec<String> = self
                .ports
                .iter()
                .filter(|(id, e)| e.facts.is_some() && !present.contains(id.as_str()))
                .map(|(id, _)| id.clone())
                .collect();
            gone.sort();
            for id in gone {
                self.observe(&id, Observed::Deleted);
            }
            self.processed = self.processed.max(revision);
        } else {
            let mut ids: Vec<String> = self.ports.keys().cloned().collect();
            ids.sort();
            for id in ids {
                self.refresh(&id);
            }
        }
    }

    /// Takes in one watch event (not a relist: the caller lists again).
    pub fn apply(&mut self, event: &NbEvent) {
        let revision = match event {
            NbEvent::Put { revision, object } => {
                match object.as_ref() {
                    Object::Port(p) if !self.told_up_to(&p.id, *revision) => self.observe_port(p),
                    Object::FloatingIp(f) if *revision > self.listed => {
                        let before = self.unset_fip(&f.id);
                        self.set_fip(f);
                        let after = f.port_id.clone();
                        for port in before.into_iter().chain(after) {
                            self.refresh(&port);
                        }
                    }
                    Object::Migration(m) if *revision > self.listed => {
                        self.set_migration(m);
                        self.refresh(&m.port_id);
                    }
                    _ => {}
                }
                *revision
            }
            NbEvent::Delete { revision, kind, id } => {
                match kind {
                    Kind::Port if !self.told_up_to(id, *revision) => self.observe(id, Observed::Deleted),
                    Kind::FloatingIp if *revision > self.listed => {
                        if let Some(port) = self.unset_fip(id) {
                            self.refresh(&port);
                        }
                    }
                    Kind::Migration if *revision > self.listed => {
                        // The told epoch stays: nothing to tell.
                        self.migrations.remove(id);
                    }
                    _ => {}
                }
                *revision
            }
            NbEvent::Relist { .. } => return,
        };
        self.processed = self.processed.max(revision);
    }

    /// Whether the port's record already reflects its change at `revision` (a replay after the
    /// record was written, but before the cursor was).
    fn told_up_to(&self, port_id: &str, revision: Revision) -> bool {
        self.ports.get(port_id).and_then(|e| e.stored.as_ref()).is_some_and(|(r, _)| r.revision >= revision)
    }

    fn set_fip(&mut self, f: &FloatingIp) {
        if let Some(port) = &f.port_id {
            self.fips.insert(f.id.clone(), (port.clone(), FloatingFact::of(f)));
            self.fips_of.entry(port.clone()).or_default().insert(f.id.clone());
        }
    }

    /// Forgets floating IP `id`; returns the port it was associated with.
    fn unset_fip(&mut self, id: &str) -> Option<String> {
        let (port, _) = self.fips.remove(id)?;
        if let Some(ids) = self.fips_of.get_mut(&port) {
            ids.remove(id);
            if ids.is_empty() {
                self.fips_of.remove(&port);
            }
        }
        Some(port)
    }

    fn set_migration(&mut self, m: &Migration) {
        match core::plugged_epoch(m) {
            0 => self.migrations.remove(&m.port_id),
            epoch => self.migrations.insert(m.port_id.clone(), epoch),
        };
    }

    fn floating_of(&self, port_id: &str) -> Vec<FloatingFact> {
        let ids = self.fips_of.get(port_id).into_iter().flatten();
        ids.filter_map(|id| self.fips.get(id)).map(|(_, f)| f.clone()).collect()
    }

    fn observe_port(&mut self, port: &Port) {
        let epoch = self.migrations.get(&port.id).copied().unwrap_or(0);
        let now = core::observe(port, self.floating_of(&port.id), epoch);
        self.observe(&port.id, now);
    }

    /// A followed port whose floating IPs or migration may have changed.
    fn refresh(&mut self, port_id: &str) {
        let Some(facts) = self.ports.get(port_id).and_then(|e| e.facts.as_ref()) else { return };
        let mut now = facts.clone();
        now.floating_ips = self.floating_of(port_id);
        now.floating_ips.sort();
        now.migration_epoch = self.migrations.get(port_id).copied().unwrap_or(0);
        self.observe(port_id, Observed::Compute(now));
    }

    fn observe(&mut self, port_id: &str, now: Observed) {
        let told = self.ports.get(port_id).and_then(|e| e.facts.as_ref());
        let (events, known) = core::changes(port_id, told, &now);
        if told == known.as_ref() && events.is_empty() {
            return;
        }
        for e in events {
            self.queue(e);
        }
        self.ports.entry(port_id.to_owned()).or_default().facts = known;
        self.dirty.insert(port_id.to_owned());
    }

    /// Queues an event; a `network-changed` already waiting for the same port says it all, and
    /// a port flapping while Nova is away keeps only its latest [`MAX_PENDING_PER_PORT`] events.
    fn queue(&mut self, e: Event) {
        if e.name == EventName::Changed && self.pending.iter().any(|p| *p == e) {
            return;
        }
        let mut same_port = self.pending.iter().enumerate().filter(|(_, p)| p.tag == e.tag);
        if let Some((oldest, _)) = same_port.next() {
            if same_port.count() + 1 >= MAX_PENDING_PER_PORT {
                let dropped = self.pending.remove(oldest);
                tracing::warn!(event = ?dropped, "too many events wait for Nova about one port; dropping the oldest");
            }
        }
        self.pending.push_back(e);
    }

    /// The events to deliver, oldest first.
    pub fn pending(&self) -> &VecDeque<Event> {
        &self.pending
    }

    /// The first `n` pending events reached Nova (or Nova answered them for good).
    pub fn delivered(&mut self, n: usize) {
        for e in self.pending.drain(..n.min(self.pending.len())) {
            self.dirty.insert(e.tag);
        }
    }

    pub fn processed(&self) -> Revision {
        self.processed
    }

    /// Whether some record may differ from what the notifier knows.
    pub fn needs_write(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// The record writes that bring the store up to what the notifier knows: each port's facts
    /// and undelivered events, reflecting [`State::processed`].
    pub fn writes(&self) -> Vec<RecordWrite> {
        let mut pending_of: HashMap<&str, Vec<Event>> = HashMap::new();
        for e in &self.pending {
            if self.dirty.contains(&e.tag) {
                pending_of.entry(e.tag.as_str()).or_default().push(e.clone());
            }
        }
        let mut out = Vec::new();
        for port_id in &self.dirty {
            let entry = self.ports.get(port_id).cloned().unwrap_or_default();
            let pending = pending_of.remove(port_id.as_str()).unwrap_or_default();
            let want = (entry.facts.is_some() || !pending.is_empty()).then(|| NotifiedRecord {
                facts: entry.facts.clone(),
                pending,
                revision: self.processed,
            });
            let stored = entry.stored.as_ref();
            let same = match (&want, stored) {
                (None, None) => true,
                (Some(w), Some((s, _))) => w.facts == s.facts && w.pending == s.pending,
                _ => false,
            };
            if !same {
                let mod_revision = stored.map_or(0, |(_, m)| *m);
                out.push(RecordWrite { port_id: port_id.clone(), record: want, mod_revision });
            }
        }
        out
    }

    /// `writes` were committed at store revision `mod_revision`; ports with nothing left to
    /// write are clean.
    pub fn written(&mut self, writes: &[RecordWrite], mod_revision: Revision) {
        for w in writes {
            if let Some(entry) = self.ports.get_mut(&w.port_id) {
                entry.stored = w.record.clone().map(|r| (r, mod_revision));
            }
        }
        self.settle();
    }

    /// Forgets dirty ports whose records match what the notifier knows.
    pub fn settle(&mut self) {
        let left: BTreeSet<String> = self.writes().into_iter().map(|w| w.port_id).collect();
        let clean: Vec<String> = self.dirty.iter().filter(|id| !left.contains(*id)).cloned().collect();
        for id in clean {
            self.dirty.remove(&id);
            if self.ports.get(&id).is_some_and(|e| e.facts.is_none() && e.stored.is_none()) {
                self.ports.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_model::{FixedIp, MigrationState, Status};

    const VM: &str = "3f1b2a4c-5d6e-4f70-8a9b-0c1d2e3f4a5b";

    fn port(id: &str, status: Status) -> Port {
        let mut p = Port::new("net");
        p.id = id.into();
        p.device_owner = "compute:nova".into();
        p.device_id = VM.into();
        p.status = status;
        p.fixed_ips = vec![FixedIp { subnet_id: "s".into(), ip_address: Some("10.0.0.5".parse().unwrap()) }];
        p
    }

    fn put(revision: Revision, o: impl Into<Object>) -> NbEvent {
        NbEvent::Put { revision, object: Box::new(o.into()) }
    }

    fn names(s: &State) -> Vec<String> {
        s.pending().iter().map(|e| format!("{}:{}", e.name.as_str(), e.tag)).collect()
    }

    /// Delivers everything and writes the records, as a flush does.
    fn flush(s: &mut State, at: Revision) -> Vec<RecordWrite> {
        let n = s.pending().len();
        s.delivered(n);
        let w = s.writes();
        s.written(&w, at);
        w
    }

    #[test]
    fn a_flap_seen_in_the_watch_is_told_as_two_events() {
        let mut s = State::default();
        s.apply(&put(1, port("p1", Status::Down)));
        assert!(names(&s).is_empty());
        assert!(s.needs_write(), "a first sight is written (the baseline of later changes)");
        s.apply(&put(2, port("p1", Status::Active)));
        s.apply(&put(3, port("p1", Status::Down)));
        s.apply(&put(4, port("p1", Status::Active)));
        assert_eq!(
            names(&s),
            ["network-vif-plugged:p1", "network-vif-unplugged:p1", "network-vif-plugged:p1"]
        );
        assert_eq!(s.processed(), 4);
        let w = flush(&mut s, 10);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].record.as_ref().unwrap().revision, 4);
        assert!(!s.needs_write());
    }

    #[test]
    fn network_changed_waits_once() {
        let mut s = State::default();
        s.apply(&put(1, port("p1", Status::Active)));
        let mut p = port("p1", Status::Active);
        for (rev, ip) in [(2, "10.0.0.6"), (3, "10.0.0.7"), (4, "10.0.0.8")] {
            p.fixed_ips[0].ip_address = Some(ip.parse().unwrap());
            s.apply(&put(rev, p.clone()));
        }
        assert_eq!(names(&s), ["network-vif-plugged:p1", "network-changed:p1"]);
    }

    #[test]
    fn floating_ips_follow_their_ports() {
        let mut s = State::default();
        s.apply(&put(1, port("p1", Status::Active)));
        s.apply(&put(2, port("p2", Status::Active)));
        flush(&mut s, 3);
        let mut f = FloatingIp::new("ext");
        f.id = "f1".into();
        f.floating_ip_address = Some("172.24.4.9".parse().unwrap());
        s.apply(&put(4, f.clone()));
        assert!(names(&s).is_empty(), "not associated: nobody's news");
        f.port_id = Some("p1".into());
        f.fixed_ip_address = Some("10.0.0.5".parse().unwrap());
        s.apply(&put(5, f.clone()));
        assert_eq!(names(&s), ["network-changed:p1"]);
        flush(&mut s, 6);
        // Moved to p2 at once: both servers hear of it (Neutron does the same).
        f.port_id = Some("p2".into());
        s.apply(&put(7, f.clone()));
        assert_eq!(names(&s), ["network-changed:p1", "network-changed:p2"]);
        flush(&mut s, 8);
        s.apply(&NbEvent::Delete { revision: 9, kind: Kind::FloatingIp, id: "f1".into() });
        assert_eq!(names(&s), ["network-changed:p2"]);
    }

    #[test]
    fn migrations_and_deletes() {
        let mut s = State::default();
        s.apply(&put(1, port("p1", Status::Active)));
        flush(&mut s, 2);
        let mut m = Migration::new("p1", 3, "hv1", "hv2");
        m.state = MigrationState::Announced;
        s.apply(&put(3, m.clone()));
        assert!(names(&s).is_empty());
        m.state = MigrationState::DestPlugged;
        s.apply(&put(4, m.clone()));
        assert_eq!(names(&s), ["network-vif-plugged:p1"]);
        m.state = MigrationState::Activated;
        m.activated_by = Some(tern_model::ActivationSource::Rarp);
        s.apply(&put(5, m.clone()));
        s.apply(&NbEvent::Delete { revision: 6, kind: Kind::Migration, id: "p1".into() });
        assert_eq!(names(&s), ["network-vif-plugged:p1"], "one per migration");
        flush(&mut s, 7);
        s.apply(&NbEvent::Delete { revision: 8, kind: Kind::Port, id: "p1".into() });
        assert_eq!(names(&s), ["network-vif-deleted:p1"]);
        let w = flush(&mut s, 9);
        assert_eq!(w, [RecordWrite { port_id: "p1".into(), record: None, mod_revision: 7 }]);
        assert!(!s.needs_write());
    }

    #[test]
    fn a_replay_skips_what_records_already_tell() {
        // p1's record was written at revision 5 (after its flap), the cursor stayed at 2: the
        // replay from 3 must not tell the flap backwards.
        let facts = match core::observe(&port("p1", Status::Active), vec![], 0) {
            Observed::Compute(f) => f,
            _ => unreachable!(),
        };
        let rec = NotifiedRecord { facts: Some(facts), pending: vec![], revision: 5 };
        let mut s = State::from_records([("p1".to_string(), rec, 6)], 2);
        s.apply_listing(&BTreeMap::new(), 9, false);
        s.apply(&put(3, port("p1", Status::Down)));
        s.apply(&put(5, port("p1", Status::Active)));
        assert!(names(&s).is_empty());
        s.apply(&put(7, port("p1", Status::Down)));
        assert_eq!(names(&s), ["network-vif-unplugged:p1"]);
    }

    #[test]
    fn a_listing_tells_what_changed_meanwhile() {
        let mut s = State::default();
        s.apply(&put(1, port("p1", Status::Active)));
        s.apply(&put(2, port("p2", Status::Down)));
        flush(&mut s, 3);
        let mut objects = BTreeMap::new();
        let mut p2 = port("p2", Status::Active);
        p2.fixed_ips.clear();
        objects.insert(Kind::Port, vec![Object::Port(p2)]);
        s.apply_listing(&objects, 20, true);
        assert_eq!(names(&s), ["network-changed:p2", "network-vif-plugged:p2", "network-vif-deleted:p1"]);
        assert_eq!(s.processed(), 20);
    }

    #[test]
    fn detached_and_reattached_before_a_flush_keeps_the_record() {
        let mut s = State::default();
        s.apply(&put(1, port("p1", Status::Active)));
        flush(&mut s, 2);
        let mut p = port("p1", Status::Active);
        p.device_id.clear();
        s.apply(&put(3, p));
        assert_eq!(s.writes()[0].record, None);
        s.apply(&put(4, port("p1", Status::Active)));
        let w = s.writes();
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].mod_revision, 2, "the record is replaced, compared at its revision");
    }

    #[test]
    fn undelivered_events_wait_in_the_records() {
        let mut s = State::default();
        s.apply(&put(1, port("p1", Status::Down)));
        flush(&mut s, 2);
        s.apply(&put(3, port("p1", Status::Active)));
        s.apply(&put(4, port("p1", Status::Down)));
        s.apply(&NbEvent::Delete { revision: 5, kind: Kind::Port, id: "p1".into() });
        // Nova is down: the events go into the record (the port is gone, its record stays).
        let w = s.writes();
        assert_eq!(w.len(), 1);
        let rec = w[0].record.clone().expect("a record while events wait");
        assert_eq!(rec.facts, None);
        let held: Vec<&str> = rec.pending.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(held, ["network-vif-plugged", "network-vif-unplugged", "network-vif-deleted"]);
        assert_eq!(rec.revision, 5);
        s.written(&w, 6);
        assert!(!s.needs_write());
        // A new notifier from that record queues them again, and tells nothing twice.
        let mut again = State::from_records([("p1".to_string(), rec, 6)], 5);
        assert_eq!(
            names(&again),
            ["network-vif-plugged:p1", "network-vif-unplugged:p1", "network-vif-deleted:p1"]
        );
        again.apply_listing(&BTreeMap::new(), 9, true);
        assert_eq!(names(&again).len(), 3, "a gone port with no facts is not deleted twice");
        let w = flush(&mut again, 10);
        assert_eq!(w, [RecordWrite { port_id: "p1".into(), record: None, mod_revision: 6 }]);
    }

    #[test]
    fn a_port_flapping_while_nova_is_away_keeps_its_latest_events() {
        let mut s = State::default();
        s.apply(&put(1, port("p1", Status::Down)));
        s.apply(&put(2, port("p2", Status::Active)));
        for r in 0..100 {
            let status = if r % 2 == 0 { Status::Active } else { Status::Down };
            s.apply(&put(3 + r, port("p1", status)));
        }
        let p1: Vec<&Event> = s.pending().iter().filter(|e| e.tag == "p1").collect();
        assert_eq!(p1.len(), MAX_PENDING_PER_PORT);
        assert_eq!(p1.last().unwrap().name, EventName::VifUnplugged, "the latest is kept");
        assert_eq!(names(&s)[0], "network-vif-plugged:p2", "other ports keep theirs");
    }
}
