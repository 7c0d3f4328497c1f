//! Migration: the record of one live migration of a port between chassis, with every phase's time.

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::kind::Kind;
use crate::resource::impl_resource;
use crate::validate::validate_id;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationState {
    /// Nova created the inactive destination binding (through the API); the destination is known
    /// before its VIF is plugged, so dual delivery can start even earlier.
    Announced,
    /// The destination's VIF is plugged; traffic goes to both chassis.
    #[default]
    DestPlugged,
    /// The VM runs on the destination; traffic goes there only.
    Activated,
    /// The binding names the destination; the record is about to be deleted.
    Completed,
    /// The destination VIF went away before activation; rolled back.
    Aborted,
}

impl MigrationState {
    /// Every state, in the order a migration goes through them.
    pub const ALL: [MigrationState; 5] = [
        MigrationState::Announced,
        MigrationState::DestPlugged,
        MigrationState::Activated,
        MigrationState::Completed,
        MigrationState::Aborted,
    ];

    /// The state's name, as in the JSON form (`dest_plugged`).
    pub fn as_str(&self) -> &'static str {
        match self {
            MigrationState::Announced => "announced",
            MigrationState::DestPlugged => "dest_plugged",
            MigrationState::Activated => "activated",
            MigrationState::Completed => "completed",
            MigrationState::Aborted => "aborted",
        }
    }

    /// Completed or aborted.
    pub fn is_final(&self) -> bool {
        matches!(self, MigrationState::Completed | MigrationState::Aborted)
    }

    /// Announced or dest_plugged: the destination is known, the VM still runs on the source.
    pub fn is_before_activation(&self) -> bool {
        matches!(self, MigrationState::Announced | MigrationState::DestPlugged)
    }
}

fn yes() -> bool {
    true
}

/// What told tern the VM now runs on the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivationSource {
    /// A RARP/GARP (or any packet) from the VIF on the destination.
    Rarp,
    /// The source VIF was unplugged.
    SourceUnplug,
    /// The port's binding was changed through the API.
    BindingUpdate,
    /// An explicit API call.
    Api,
}

/// When each phase happened, in nanoseconds since the Unix epoch (each chassis' own clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationTimestamps {
    #[serde(default)]
    pub started_at_ns: Option<u64>,
    #[serde(default)]
    pub dest_plugged_at_ns: Option<u64>,
    #[serde(default)]
    pub activated_at_ns: Option<u64>,
    #[serde(default)]
    pub completed_at_ns: Option<u64>,
    #[serde(default)]
    pub aborted_at_ns: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Migration {
    /// Empty on input: the port id. Otherwise it must equal the port id (one open migration per
    /// port).
    #[serde(default)]
    pub id: String,
    pub port_id: String,
    /// Increases with every migration of the port; stale writers are told apart by it. 0 on
    /// input: the NB assigns one above every earlier epoch.
    #[serde(default)]
    pub epoch: u64,
    /// Chassis id the port leaves.
    pub source: String,
    /// Chassis id the port goes to.
    pub destination: String,
    #[serde(default)]
    pub state: MigrationState,
    #[serde(default)]
    pub activated_by: Option<ActivationSource>,
    #[serde(default)]
    pub timestamps: MigrationTimestamps,
    /// Deliver the port's traffic to both ends until activation (false: the spec's original
    /// design, traffic moves at activation). Decided once, for every chassis, when the record is
    /// opened; a chassis configured without dual delivery never delivers to both.
    #[serde(default = "yes")]
    pub dual_delivery: bool,
    /// The port's NB revision as its opener saw it (0: not recorded). A port changed since then
    /// and bound to neither end proves the record stale, even when the record's write landed
    /// after that change (its epoch then tells nothing).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub port_revision: u64,
    #[serde(default)]
    pub revision_number: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Migration {
    /// A new `dest_plugged` migration of `port_id`, with its derived id.
    pub fn new(
        port_id: impl Into<String>,
        epoch: u64,
        source: impl Into<String>,
        destination: impl Into<String>,
    ) -> Self {
        let port_id = port_id.into();
        Migration {
            id: port_id.clone(),
            port_id,
            epoch,
            source: source.into(),
            destination: destination.into(),
            state: MigrationState::DestPlugged,
            activated_by: None,
            timestamps: MigrationTimestamps::default(),
            dual_delivery: true,
            port_revision: 0,
            revision_number: 0,
        }
    }
}

impl Migration {
    /// The record after the port's binding moved to `host` (the API's binding update, Nova's
    /// last step): an open migration toward `host` is completed, with the time; `None` when the
    /// record is unaffected. The API writes it at once, so a migration completes even when its
    /// destination's controller never looked in between.
    pub fn on_binding_moved(&self, host: &str, now_ns: u64) -> Option<Migration> {
        if self.state.is_final() || self.destination != host {
            return None;
        }
        let mut m = self.clone();
        m.state = MigrationState::Completed;
        m.timestamps.completed_at_ns = Some(now_ns);
        if m.activated_by.is_none() {
            m.activated_by = Some(ActivationSource::BindingUpdate);
            m.timestamps.activated_at_ns = Some(now_ns);
        }
        Some(m)
    }

    /// The `binding:profile` key with which the creator of the destination binding (Nova, the
    /// lab) turns dual delivery off for one migration: `{"tern:dual_delivery": false}`.
    pub const PROFILE_DUAL_DELIVERY: &'static str = "tern:dual_delivery";
}

fn derived_id(m: &Migration) -> String {
    m.port_id.clone()
}

fn validate(m: &Migration) -> Result<(), ValidationError> {
    let k = Kind::Migration;
    validate_id(k, "port_id", &m.port_id)?;
    if !m.id.is_empty() && m.id != m.port_id {
        return Err(ValidationError::new(k, "id", &m.id, format!("must equal port_id {:?}", m.port_id)));
    }
    validate_id(k, "source", &m.source)?;
    validate_id(k, "destination", &m.destination)?;
    if m.source == m.destination {
        return Err(ValidationError::new(
            k,
            "destination",
            &m.destination,
            "source and destination are the same chassis",
        ));
    }
    match (m.state, m.activated_by) {
        (state, Some(by)) if state.is_before_activation() => Err(ValidationError::new(
            k,
            "activated_by",
            serde_json::to_value(by).map(|v| v.as_str().unwrap_or_default().to_string()).unwrap_or_default(),
            "set while the migration is not activated yet (state announced or dest_plugged)",
        )),
        (MigrationState::Activated, None) => Err(ValidationError::new(
            k,
            "activated_by",
            "",
            "an activated migration must say what activated it",
        )),
        _ => Ok(()),
    }
}

impl_resource!(Migration, Migration, validate, default_id = derived_id);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Resource;
    use crate::testutil::*;

    #[test]
    fn state_names_are_the_json_names() {
        for s in MigrationState::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    const MIN: &str = r#"{"port_id":"p1","source":"c1","destination":"c2"}"#;
    const FULL: &str = r#"{
        "id": "p1", "port_id": "p1", "epoch": 3, "source": "c1", "destination": "c2",
        "state": "activated", "activated_by": "source_unplug",
        "timestamps": {"started_at_ns": 1700000000000000000, "dest_plugged_at_ns": 1700000000100000000,
                       "activated_at_ns": 1700000000200000000, "completed_at_ns": null,
                       "aborted_at_ns": null},
        "dual_delivery": false, "revision_number": 6
    }"#;

    #[test]
    fn minimal_parses() {
        let m: Migration = valid(MIN);
        assert_eq!(m.state, MigrationState::DestPlugged);
        assert_eq!(m.default_id().as_deref(), Some("p1"));
        let mut m2 = m.clone();
        m2.set_id(m.default_id().unwrap());
        assert_eq!(m2, Migration::new("p1", 0, "c1", "c2"));
        assert!(!m.state.is_final() && MigrationState::Aborted.is_final());
    }

    #[test]
    fn full_round_trips() {
        round_trip::<Migration>(FULL);
    }

    #[test]
    fn unknown_field_rejected() {
        rejects_unknown_field::<Migration>(MIN);
        unparsable::<Migration>(MIN, r#"{"timestamps": {"started_at": 1}}"#, "started_at");
    }

    #[test]
    fn rules() {
        unparsable::<Migration>(r#"{"port_id":"p1","source":"c1"}"#, "{}", "destination");
        unparsable::<Migration>(MIN, r#"{"state": "DEST_PLUGGED"}"#, "DEST_PLUGGED");
        unparsable::<Migration>(MIN, r#"{"activated_by": "magic"}"#, "magic");
        invalid::<Migration>(MIN, r#"{"destination": "c1"}"#, "destination", "c1");
        invalid::<Migration>(MIN, r#"{"source": ""}"#, "source", "");
        invalid::<Migration>(MIN, r#"{"destination": ""}"#, "destination", "");
        invalid::<Migration>(MIN, r#"{"port_id": ""}"#, "port_id", "");
        invalid::<Migration>(MIN, r#"{"id": "p2"}"#, "id", "p2");
        invalid::<Migration>(MIN, r#"{"activated_by": "rarp"}"#, "activated_by", "rarp");
        invalid::<Migration>(MIN, r#"{"state": "announced", "activated_by": "api"}"#, "activated_by", "api");
        assert!(valid::<Migration>(MIN).dual_delivery, "dual delivery unless the record says otherwise");
        invalid::<Migration>(MIN, r#"{"state": "activated"}"#, "activated_by", "");
        valid::<Migration>(&with(MIN, r#"{"state": "aborted"}"#));
        valid::<Migration>(&with(MIN, r#"{"state": "completed", "activated_by": "api"}"#));
    }
}
