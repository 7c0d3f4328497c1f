//! PortBinding: one of a port's bindings to a host (Neutron's extended multiple port bindings: the
//! active one, and during live migration an inactive one on the destination).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::common::VnicType;
use crate::error::ValidationError;
use crate::kind::Kind;
use crate::port::VIF_TYPE_UNBOUND;
use crate::resource::impl_resource;
use crate::validate::{text, validate_id};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BindingStatus {
    Active,
    #[default]
    Inactive,
}

fn default_vif_type() -> String {
    VIF_TYPE_UNBOUND.to_string()
}

/// The id of the binding of `port_id` to `host`: `<port_id>@<host>` (ids may not contain `/`).
pub fn port_binding_id(port_id: &str, host: &str) -> String {
    format!("{port_id}@{host}")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortBinding {
    /// Empty on input: derived, see [`port_binding_id`]. Otherwise it must equal the derived id, so
    /// that a port has at most one binding per host.
    #[serde(default)]
    pub id: String,
    pub port_id: String,
    /// The chassis id.
    pub host: String,
    #[serde(default)]
    pub status: BindingStatus,
    #[serde(default = "default_vif_type")]
    pub vif_type: String,
    #[serde(default)]
    pub vnic_type: VnicType,
    #[serde(default, deserialize_with = "crate::de::object_or_null")]
    pub profile: Map<String, Value>,
    #[serde(default, deserialize_with = "crate::de::object_or_null")]
    pub vif_details: Map<String, Value>,
    #[serde(default)]
    pub revision_number: u64,
}

impl PortBinding {
    /// An inactive binding of `port_id` to `host`, with its derived id.
    pub fn new(port_id: impl Into<String>, host: impl Into<String>) -> Self {
        let (port_id, host) = (port_id.into(), host.into());
        PortBinding {
            id: port_binding_id(&port_id, &host),
            port_id,
            host,
            status: BindingStatus::Inactive,
            vif_type: default_vif_type(),
            vnic_type: VnicType::Normal,
            profile: Map::new(),
            vif_details: Map::new(),
            revision_number: 0,
        }
    }
}

fn derived_id(b: &PortBinding) -> String {
    port_binding_id(&b.port_id, &b.host)
}

fn validate(b: &PortBinding) -> Result<(), ValidationError> {
    let k = Kind::PortBinding;
    validate_id(k, "port_id", &b.port_id)?;
    validate_id(k, "host", &b.host)?;
    if b.host.contains('@') {
        return Err(ValidationError::new(k, "host", &b.host, "must not contain '@'"));
    }
    let derived = derived_id(b);
    validate_id(k, "id", &derived)?;
    if !b.id.is_empty() && b.id != derived {
        return Err(ValidationError::new(k, "id", &b.id, format!("must be <port_id>@<host> = {derived:?}")));
    }
    text(k, "vif_type", &b.vif_type)?;
    crate::port::binding_profile(k, "profile", &b.profile)
}

impl_resource!(PortBinding, PortBinding, validate, default_id = derived_id);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Resource;
    use crate::testutil::*;

    const MIN: &str = r#"{"port_id":"p1","host":"compute-2"}"#;
    const FULL: &str = r#"{
        "id": "p1@compute-2", "port_id": "p1", "host": "compute-2", "status": "ACTIVE",
        "vif_type": "ovs", "vnic_type": "normal", "profile": {"os_vif_delegation": true},
        "vif_details": {"port_filter": true, "bridge_name": "br-int"}, "revision_number": 5
    }"#;

    #[test]
    fn minimal_parses() {
        let b: PortBinding = valid(MIN);
        assert_eq!(b.status, BindingStatus::Inactive);
        assert_eq!(b.default_id().as_deref(), Some("p1@compute-2"));
        let mut b2 = b.clone();
        b2.set_id(b.default_id().unwrap());
        assert_eq!(b2, PortBinding::new("p1", "compute-2"));
        b2.validate().unwrap();
        assert_eq!(b2.unique_key(), None);
    }

    #[test]
    fn full_round_trips() {
        round_trip::<PortBinding>(FULL);
    }

    #[test]
    fn unknown_field_rejected() {
        rejects_unknown_field::<PortBinding>(MIN);
    }

    #[test]
    fn rules() {
        unparsable::<PortBinding>(r#"{"port_id":"p"}"#, "{}", "host");
        invalid::<PortBinding>(MIN, r#"{"port_id": ""}"#, "port_id", "");
        invalid::<PortBinding>(MIN, r#"{"host": "a/b"}"#, "host", "a/b");
        invalid::<PortBinding>(MIN, r#"{"host": "a@b"}"#, "host", "a@b");
        invalid::<PortBinding>(MIN, r#"{"id": "p1@compute-3"}"#, "id", "p1@compute-3");
        let long = "h".repeat(255);
        invalid::<PortBinding>(MIN, &format!(r#"{{"host": "{long}"}}"#), "id", &format!("p1@{long}"));
        let big = format!(r#"{{"profile": {{"k": "{}"}}}}"#, "x".repeat(4096));
        invalid::<PortBinding>(MIN, &big, "profile", "4104 bytes of JSON");
        invalid::<PortBinding>(MIN, r#"{"vif_type": "o\u0000vs"}"#, "vif_type", "o\\0vs");
    }
}
