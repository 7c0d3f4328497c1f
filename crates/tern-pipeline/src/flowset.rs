//! `FlowSet`: a set of flows keyed the way OVS identifies a flow (table, priority, match) — the
//! desired flows the apps compute and the flows installed in the switch — and `diff`, the flow
//! mods that turn the installed set into the desired one.
//!
//! The set is hashed (building a set and diffing two cost a hash per flow, not a chain of match
//! comparisons): a table of flows, each stored once with the hash of its key (so the key's match
//! is not kept twice, and a diff looks a flow up in the other set without hashing it again);
//! whatever comes out of it — iteration, display, the diff's flow mods — comes in [`FlowKey`]
//! order, so its results do not depend on hashing.

use std::cmp::{Ordering, Reverse};
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};

use hashbrown::hash_table::Entry;
use hashbrown::HashTable;

use tern_openflow::{Flow, FlowMod, Match};

/// A flow's identity in an OpenFlow table: at most one flow per key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub table_id: u8,
    pub priority: u16,
    pub match_: Match,
}

impl FlowKey {
    pub fn of(flow: &Flow) -> FlowKey {
        FlowKey { table_id: flow.table_id, priority: flow.priority, match_: flow.match_.clone() }
    }
}

/// The hash of a flow's key (table, priority, match), the same in every set: a diff looks a
/// flow up in another set by the hash stored beside it.
fn key_hash(table_id: u8, priority: u16, match_: &Match) -> u64 {
    let mut h = foldhash::fast::FixedState::with_seed(0x7465_726e).build_hasher();
    (table_id, priority).hash(&mut h);
    match_.hash(&mut h);
    h.finish()
}

/// Whether `flow` has the key (table, priority, match).
fn has_key(flow: &Flow, table_id: u8, priority: u16, match_: &Match) -> bool {
    flow.table_id == table_id && flow.priority == priority && flow.match_ == *match_
}

/// A flow of a set and the hash of its key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    hash: u64,
    flow: Flow,
}

impl Stored {
    fn key_cmp(&self, other: &Stored) -> Ordering {
        let (a, b) = (&self.flow, &other.flow);
        (a.table_id, Reverse(a.priority), a.match_.fields(), a.match_.unknown()).cmp(&(
            b.table_id,
            Reverse(b.priority),
            b.match_.fields(),
            b.match_.unknown(),
        ))
    }
}

/// Table ascending, then priority descending (the order a packet meets the flows), then the
/// match's fields in canonical order: a stable order that reads like a sorted `dump-flows`.
impl Ord for FlowKey {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.table_id, Reverse(self.priority), self.match_.fields(), self.match_.unknown()).cmp(&(
            other.table_id,
            Reverse(other.priority),
            other.match_.fields(),
            other.match_.unknown(),
        ))
    }
}

impl PartialOrd for FlowKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Two apps (or one app twice) asked for different flows with the same key: a bug in the
/// pipeline. The first flow is kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("conflicting flows for one key: kept `{kept}`, dropped `{rejected}`")]
pub struct FlowConflict {
    pub kept: Flow,
    pub rejected: Flow,
}

/// A set of flows, at most one per [`FlowKey`], held in the normalized form OVS reports back
/// ([`Flow::normalized`]), so a desired set and a set read from the switch compare directly.
#[derive(Debug, Clone, Default)]
pub struct FlowSet {
    flows: HashTable<Stored>,
    conflicts: Vec<FlowConflict>,
}

// === impl FlowSet ===

impl FlowSet {
    pub fn new() -> FlowSet {
        FlowSet::default()
    }

    /// Adds `flow`. Inserting an identical flow again is a no-op; a different flow with the key of
    /// one already present is refused (the first stays, so the result does not depend on which
    /// app's flow came second only by accident of order) and recorded in [`FlowSet::conflicts`].
    pub fn insert(&mut self, flow: Flow) {
        let flow = flow.into_normalized();
        let hash = key_hash(flow.table_id, flow.priority, &flow.match_);
        let same =
            |s: &Stored| s.hash == hash && has_key(&s.flow, flow.table_id, flow.priority, &flow.match_);
        match self.flows.entry(hash, same, |s| s.hash) {
            Entry::Vacant(e) => {
                e.insert(Stored { hash, flow });
            }
            Entry::Occupied(e) => {
                if e.get().flow != flow {
                    self.conflicts.push(FlowConflict { kept: e.get().flow.clone(), rejected: flow });
                }
            }
        }
    }

    /// The stored flow with this key and key hash.
    fn find(&self, hash: u64, table_id: u8, priority: u16, match_: &Match) -> Option<&Stored> {
        self.flows.find(hash, |s| s.hash == hash && has_key(&s.flow, table_id, priority, match_))
    }

    /// The flow with this key, if any.
    pub fn get(&self, key: &FlowKey) -> Option<&Flow> {
        let hash = key_hash(key.table_id, key.priority, &key.match_);
        self.find(hash, key.table_id, key.priority, &key.match_).map(|s| &s.flow)
    }

    /// Removes and returns the flow with this key.
    pub fn remove(&mut self, key: &FlowKey) -> Option<Flow> {
        let hash = key_hash(key.table_id, key.priority, &key.match_);
        let same = |s: &Stored| s.hash == hash && has_key(&s.flow, key.table_id, key.priority, &key.match_);
        self.flows.find_entry(hash, same).ok().map(|e| e.remove().0.flow)
    }

    /// Every insert that was refused because of a conflicting key; empty for a correct pipeline.
    pub fn conflicts(&self) -> &[FlowConflict] {
        &self.conflicts
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// The flows in [`FlowKey`] order.
    pub fn iter(&self) -> impl Iterator<Item = &Flow> {
        let mut flows: Vec<&Stored> = self.flows.iter().collect();
        flows.sort_unstable_by(|a, b| a.key_cmp(b));
        flows.into_iter().map(|s| &s.flow)
    }

    /// The flow mods that turn `installed` into `desired`, meant to be sent as one atomic bundle:
    /// * a desired flow with no installed counterpart: `add`;
    /// * same key, only the instructions differ: `modify_strict` (counters survive);
    /// * same key, cookie, timeouts or flags differ: `add`, which replaces the whole flow (an
    ///   OpenFlow 1.3 modify never changes the cookie);
    /// * an installed flow not desired: `delete_strict`.
    ///
    /// Inside an atomic bundle the order is invisible to packets. It still matters wherever the
    /// change set is applied without atomicity (a switch without bundles, a change set split in
    /// several bundles): adds and modifies come first, from the last table back to the first, so
    /// every stage a packet can reach exists before traffic is steered into it; deletes come
    /// last, first table first, so traffic stops entering a path before its later stages go. At
    /// no point is a still-wanted path missing.
    pub fn diff(installed: &FlowSet, desired: &FlowSet) -> Vec<FlowMod> {
        fn lookup<'a>(set: &'a FlowSet, s: &Stored) -> Option<&'a Flow> {
            set.find(s.hash, s.flow.table_id, s.flow.priority, &s.flow.match_).map(|s| &s.flow)
        }
        let mut upserts: Vec<(&Stored, FlowMod)> = desired
            .flows
            .iter()
            .filter_map(|s| {
                let want = &s.flow;
                // Found by key: the key's fields are equal, the rest decides.
                let Some(have) = lookup(installed, s) else { return Some((s, FlowMod::add(want.clone()))) };
                let same_header = (have.cookie, have.idle_timeout, have.hard_timeout, have.flags)
                    == (want.cookie, want.idle_timeout, want.hard_timeout, want.flags);
                match (same_header, have.instructions == want.instructions) {
                    (true, true) => None,
                    (true, false) => Some((s, FlowMod::modify_strict(want.clone()))),
                    (false, _) => Some((s, FlowMod::add(want.clone()))),
                }
            })
            .collect();
        // Tables last to first; within a table, key order. Only the changes are sorted.
        upserts.sort_unstable_by(|a, b| {
            b.0.flow.table_id.cmp(&a.0.flow.table_id).then_with(|| a.0.key_cmp(b.0))
        });
        let mut deletes: Vec<&Stored> =
            installed.flows.iter().filter(|s| lookup(desired, s).is_none()).collect();
        deletes.sort_unstable_by(|a, b| a.key_cmp(b));
        let deletes = deletes
            .into_iter()
            .map(|s| FlowMod::delete_strict(s.flow.table_id, s.flow.priority, s.flow.match_.clone()));
        let mut upserts: Vec<FlowMod> = upserts.into_iter().map(|(_, m)| m).collect();
        upserts.extend(deletes);
        upserts
    }
}

/// Equal when they hold the same flows (conflicts are diagnostics, not content).
impl PartialEq for FlowSet {
    fn eq(&self, other: &Self) -> bool {
        self.flows.len() == other.flows.len()
            && self.flows.iter().all(|s| {
                other
                    .find(s.hash, s.flow.table_id, s.flow.priority, &s.flow.match_)
                    .is_some_and(|o| o.flow == s.flow)
            })
    }
}

impl Eq for FlowSet {}

impl FromIterator<Flow> for FlowSet {
    fn from_iter<I: IntoIterator<Item = Flow>>(iter: I) -> Self {
        let mut set = FlowSet::new();
        set.extend(iter);
        set
    }
}

impl Extend<Flow> for FlowSet {
    fn extend<I: IntoIterator<Item = Flow>>(&mut self, iter: I) {
        for flow in iter {
            self.insert(flow);
        }
    }
}

impl fmt::Display for FlowSet {
    /// One `ovs-ofctl -O OpenFlow13 dump-flows --no-stats` line per flow (without OVS's leading
    /// space), each ending in a newline, in [`FlowKey`] order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for flow in self.iter() {
            writeln!(f, "{flow}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tern_openflow::{Action, FlowModCommand, Instruction};

    /// The switch, as far as the diff's flow mods go.
    fn apply(mods: &[FlowMod], set: &FlowSet) -> FlowSet {
        let mut out = set.clone();
        for m in mods {
            let key = FlowKey::of(&m.flow);
            match m.command {
                FlowModCommand::Add => {
                    out.remove(&key);
                    out.insert(m.flow.clone());
                }
                FlowModCommand::ModifyStrict => {
                    let mut have = out.remove(&key).expect("modify_strict of a missing flow");
                    have.instructions = m.flow.instructions.clone();
                    out.insert(have);
                }
                FlowModCommand::DeleteStrict => {
                    out.remove(&key).expect("delete_strict of a missing flow");
                }
                c => panic!("diff produced {c:?}"),
            }
        }
        out
    }

    fn flow(table: u8, priority: u16, port: u32, out_port: u32, cookie: u64) -> Flow {
        let mut f = Flow::new(
            table,
            priority,
            Match::new().in_port(port),
            vec![Instruction::ApplyActions(vec![Action::output(out_port)])],
        );
        f.cookie = cookie;
        f
    }

    fn arb_flow() -> impl Strategy<Value = Flow> {
        // Small ranges so that keys collide and actions differ often.
        (0u8..3, 0u16..3, 1u32..4, 1u32..4, 0u64..2).prop_map(|(t, p, i, o, c)| flow(t, p, i, o, c))
    }

    fn arb_set() -> impl Strategy<Value = Vec<Flow>> {
        proptest::collection::vec(arb_flow(), 0..20)
    }

    proptest! {
        #[test]
        fn diff_applied_gives_desired(a in arb_set(), b in arb_set()) {
            let (a, b): (FlowSet, FlowSet) = (a.into_iter().collect(), b.into_iter().collect());
            prop_assert_eq!(apply(&FlowSet::diff(&a, &b), &a), b);
        }

        #[test]
        fn diff_with_itself_is_empty(a in arb_set()) {
            let a: FlowSet = a.into_iter().collect();
            prop_assert!(FlowSet::diff(&a, &a).is_empty());
        }

        #[test]
        fn insertion_order_does_not_matter(a in arb_set(), b in arb_set(), seed in any::<u64>()) {
            // Conflict-free inputs: the first flow per key wins, so shuffle only distinct keys.
            let dedup = |v: Vec<Flow>| -> Vec<Flow> {
                let mut m = std::collections::BTreeMap::new();
                for f in v { m.entry(FlowKey::of(&f)).or_insert(f); }
                m.into_values().collect()
            };
            let (a, b) = (dedup(a), dedup(b));
            let mut b2 = b.clone();
            let n = b2.len().max(1);
            b2.rotate_left(seed as usize % n);
            b2.reverse();
            let (sa, sb, sb2): (FlowSet, FlowSet, FlowSet) =
                (a.into_iter().collect(), b.into_iter().collect(), b2.into_iter().collect());
            prop_assert_eq!(&sb, &sb2);
            prop_assert_eq!(sb.to_string(), sb2.to_string());
            prop_assert_eq!(FlowSet::diff(&sa, &sb), FlowSet::diff(&sa, &sb2));
        }
    }

    #[test]
    fn conflicting_insert_keeps_the_first() {
        let mut s = FlowSet::new();
        s.insert(flow(0, 1, 1, 2, 0));
        s.insert(flow(0, 1, 1, 2, 0));
        assert!(s.conflicts().is_empty());
        s.insert(flow(0, 1, 1, 3, 0));
        assert_eq!(s.len(), 1);
        assert_eq!(s.conflicts().len(), 1);
        assert_eq!(s.to_string(), "priority=1,in_port=1 actions=output:2\n");
        assert_eq!(
            s.conflicts()[0].to_string(),
            "conflicting flows for one key: kept `priority=1,in_port=1 actions=output:2`, \
             dropped `priority=1,in_port=1 actions=output:3`"
        );
    }

    #[test]
    fn diff_kinds_and_order() {
        let installed: FlowSet =
            [flow(0, 1, 1, 2, 0), flow(5, 1, 1, 2, 0), flow(9, 1, 1, 2, 0), flow(0, 9, 9, 9, 0)]
                .into_iter()
                .collect();
        let desired: FlowSet =
            [flow(0, 1, 1, 3, 0), flow(5, 1, 1, 2, 1), flow(7, 1, 1, 2, 0), flow(0, 2, 1, 1, 0)]
                .into_iter()
                .collect();
        let mods: Vec<String> = FlowSet::diff(&installed, &desired)
            .iter()
            .map(|m| format!("{:?} {}", m.command, m.flow))
            .collect();
        assert_eq!(
            mods,
            [
                "Add table=7, priority=1,in_port=1 actions=output:2",
                "Add cookie=0x1, table=5, priority=1,in_port=1 actions=output:2",
                "Add priority=2,in_port=1 actions=output:1",
                "ModifyStrict priority=1,in_port=1 actions=output:3",
                "DeleteStrict priority=9,in_port=9 actions=drop",
                "DeleteStrict table=9, priority=1,in_port=1 actions=drop",
            ]
        );
    }

    #[test]
    fn display_is_in_pipeline_order() {
        let s: FlowSet = [flow(5, 1, 1, 1, 0), flow(0, 1, 2, 1, 0), flow(0, 1, 1, 1, 0), flow(0, 7, 3, 1, 0)]
            .into_iter()
            .collect();
        assert_eq!(
            s.to_string(),
            "priority=7,in_port=3 actions=output:1\n\
             priority=1,in_port=1 actions=output:1\n\
             priority=1,in_port=2 actions=output:1\n\
             table=5, priority=1,in_port=1 actions=output:1\n"
        );
    }
}
