//! The live-migration agent of one chassis: the writes a controller makes to the Migration record
//! of a port, decided from state alone (the record, the port's binding, the VIFs here now and just
//! before), so lost, duplicated or reordered events only delay a step, never misplace a port.
//!
//! * destination: a VIF for port P appears here while P is bound elsewhere -> `dest_plugged`
//!   (every chassis then delivers P's traffic to both ends: see `tern_pipeline::port_location`);
//!   P's binding names this chassis while a record is open -> the migration is complete, the record
//!   goes; the VIF disappears before activation -> aborted, the record goes.
//! * source: P's VIF disappears here while the record is `dest_plugged` -> `activated`
//!   (by source unplug).
//!
//! Activation by the API needs no write here: a binding on the destination already points every
//! chassis at it.

use std::collections::BTreeMap;
use std::time::SystemTime;
use tern_model::{ActivationSource, Migration, MigrationState, Object, Port};

/// One write the migration agent wants.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Put(Migration),
    Delete { port_id: String },
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// The steps chassis `me` takes, given the ports, the open migration records, the VIFs plugged here
/// now and at the previous look (port ids).
pub fn steps(
    me: &str,
    ports: &[Port],
    migrations: &BTreeMap<String, Migration>,
    vifs_now: &BTreeMap<String, u32>,
    vifs_before: &BTreeMap<String, u32>,
) -> Vec<Step> {
    let mut out = Vec::new();
    for port in ports {
        let open = migrations.get(&port.id).filter(|m| !m.state.is_final());
        let here_now = vifs_now.contains_key(&port.id);
        let here_before = vifs_before.contains_key(&port.id);
        let bound = port.binding_host_id.as_str();
        match open {
            None => {
                // Only a VIF that appears opens a migration: a VIF left behind on the old source after
                // the binding moved (the API came before the unplug) is no migration back.
                if here_now && !here_before && !bound.is_empty() && bound != me {
                    let epoch = migrations.get(&port.id).map_or(1, |m| m.epoch + 1);
                    let mut m = Migration::new(&port.id, epoch, bound, me);
                    m.state = MigrationState::DestPlugged;
                    let t = now_ns();
                    m.timestamps.started_at_ns = Some(t);
                    m.timestamps.dest_plugged_at_ns = Some(t);
                    if let Some(old) = migrations.get(&port.id) {
                        m.revision_number = old.revision_number;
                    }
                    out.push(Step::Put(m));
                }
            }
            Some(m) if m.destination == me => {
                // Completed (the binding names us), or aborted (our VIF went before activation).
                let aborted = m.state == MigrationState::DestPlugged && here_before && !here_now;
                if bound == me || aborted {
                    out.push(Step::Delete { port_id: port.id.clone() });
                }
            }
            Some(m) if m.source == me => {
                if m.state == MigrationState::DestPlugged && here_before && !here_now {
                    let mut a = m.clone();
                    a.state = MigrationState::Activated;
                    a.activated_by = Some(ActivationSource::SourceUnplug);
                    a.timestamps.activated_at_ns = Some(now_ns());
                    out.push(Step::Put(a));
                }
            }
            Some(_) => {}
        }
    }
    out
}

/// The open records as the pipeline should see them: all of them with dual delivery; without it
/// (the spec's original design) only activated ones, so a port stays where it is bound until then.
pub fn for_pipeline(migrations: Vec<Migration>, dual_delivery: bool) -> Vec<Migration> {
    migrations.into_iter().filter(|m| dual_delivery || m.state != MigrationState::DestPlugged).collect()
}

/// Applies the steps to the NB. A step that loses a race is simply redone on the next look.
pub async fn apply(nb: &tern_store::nb::Nb, steps: Vec<Step>) {
    for step in steps {
        let result = match &step {
            Step::Put(m) => nb.put(Object::Migration(m.clone())).await.map(|_| ()),
            Step::Delete { port_id } => nb.delete(tern_model::Kind::Migration, port_id).await.map(|_| ()),
        };
        match result {
            Ok(()) => tracing::info!(?step, "migration"),
            Err(e) => tracing::debug!(?step, error = %e, "migration step not written (will retry)"),
        }
    }
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

    #[test]
    fn destination_plug_opens_a_migration() {
        let s = steps("hv2", &[port("p", "hv1")], &BTreeMap::new(), &vifs(&["p"]), &vifs(&[]));
        let [Step::Put(m)] = s.as_slice() else { panic!("{s:?}") };
        assert_eq!(
            (m.source.as_str(), m.destination.as_str(), m.state),
            ("hv1", "hv2", MigrationState::DestPlugged)
        );
        // The old source keeping its VIF after the binding moved does not migrate it back.
        assert!(steps("hv1", &[port("p", "hv2")], &BTreeMap::new(), &vifs(&["p"]), &vifs(&["p"])).is_empty());
        // Seen again (duplicate event): nothing more to write.
        let open = record(MigrationState::DestPlugged);
        assert!(steps("hv2", &[port("p", "hv1")], &open, &vifs(&["p"]), &vifs(&["p"])).is_empty());
        // A port bound here, or unbound, with its VIF here is no migration.
        assert!(steps("hv2", &[port("p", "hv2")], &BTreeMap::new(), &vifs(&["p"]), &vifs(&[])).is_empty());
        assert!(steps("hv2", &[port("p", "")], &BTreeMap::new(), &vifs(&["p"]), &vifs(&[])).is_empty());
    }

    #[test]
    fn source_unplug_activates_and_binding_completes() {
        let open = record(MigrationState::DestPlugged);
        let s = steps("hv1", &[port("p", "hv1")], &open, &vifs(&[]), &vifs(&["p"]));
        let [Step::Put(m)] = s.as_slice() else { panic!("{s:?}") };
        assert_eq!(
            (m.state, m.activated_by),
            (MigrationState::Activated, Some(ActivationSource::SourceUnplug))
        );
        // Bystanders and the destination do nothing on the source's unplug.
        assert!(steps("hv3", &[port("p", "hv1")], &open, &vifs(&[]), &vifs(&[])).is_empty());
        // The API moves the binding: the destination closes the record, whatever its state.
        for state in [MigrationState::DestPlugged, MigrationState::Activated] {
            let s = steps("hv2", &[port("p", "hv2")], &record(state), &vifs(&["p"]), &vifs(&["p"]));
            assert_eq!(s, [Step::Delete { port_id: "p".into() }]);
        }
    }

    #[test]
    fn destination_unplug_before_activation_aborts() {
        let open = record(MigrationState::DestPlugged);
        let s = steps("hv2", &[port("p", "hv1")], &open, &vifs(&[]), &vifs(&["p"]));
        assert_eq!(s, [Step::Delete { port_id: "p".into() }]);
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

    #[test]
    fn without_dual_delivery_only_activated_records_move_traffic() {
        let all = vec![
            record(MigrationState::DestPlugged)["p"].clone(),
            record(MigrationState::Activated)["p"].clone(),
        ];
        assert_eq!(for_pipeline(all.clone(), true).len(), 2);
        assert_eq!(for_pipeline(all, false).len(), 1);
    }
}
