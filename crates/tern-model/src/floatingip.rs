//! FloatingIp: a public IPv4 address on an external network, DNATed to a port's fixed address.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::kind::Kind;
use crate::resource::impl_resource;
use crate::validate::{opt_ref_id, own_id, ref_id, text};

/// A floating IP's status (Neutron's: no BUILD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FloatingIpStatus {
    Active,
    #[default]
    Down,
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloatingIp {
    #[serde(default)]
    pub id: String,
    /// Absent on input: allocate one from the floating network.
    #[serde(default, deserialize_with = "crate::de::opt_ip")]
    pub floating_ip_address: Option<IpAddr>,
    pub floating_network_id: String,
    /// The associated port; `None` = not associated.
    #[serde(default)]
    pub port_id: Option<String>,
    /// Which of the port's addresses; only with `port_id`.
    #[serde(default, deserialize_with = "crate::de::opt_ip")]
    pub fixed_ip_address: Option<IpAddr>,
    /// The router doing the NAT (derived from the port's subnet by the API layer).
    #[serde(default)]
    pub router_id: Option<String>,
    #[serde(default)]
    pub status: FloatingIpStatus,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub project_id: String,
    /// 0 = not yet allocated.
    #[serde(default)]
    pub unique_key: u32,
    #[serde(default)]
    pub revision_number: u64,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

impl FloatingIp {
    /// An unassociated floating IP on `floating_network_id`.
    pub fn new(floating_network_id: impl Into<String>) -> Self {
        FloatingIp {
            id: String::new(),
            floating_ip_address: None,
            floating_network_id: floating_network_id.into(),
            port_id: None,
            fixed_ip_address: None,
            router_id: None,
            status: FloatingIpStatus::Down,
            description: String::new(),
            project_id: String::new(),
            unique_key: 0,
            revision_number: 0,
            created_at: None,
            updated_at: None,
        }
    }
}

fn validate(f: &FloatingIp) -> Result<(), ValidationError> {
    let k = Kind::FloatingIp;
    own_id(k, &f.id)?;
    text(k, "description", &f.description)?;
    text(k, "project_id", &f.project_id)?;
    ref_id(k, "floating_network_id", &f.floating_network_id)?;
    opt_ref_id(k, "port_id", &f.port_id)?;
    opt_ref_id(k, "router_id", &f.router_id)?;
    for (field, ip) in
        [("floating_ip_address", &f.floating_ip_address), ("fixed_ip_address", &f.fixed_ip_address)]
    {
        if let Some(ip @ IpAddr::V6(_)) = ip {
            return Err(ValidationError::new(k, field, ip, "floating IPs are IPv4 only"));
        }
    }
    if let (Some(ip), None) = (&f.fixed_ip_address, &f.port_id) {
        return Err(ValidationError::new(k, "fixed_ip_address", ip, "a fixed IP address needs a port_id"));
    }
    Ok(())
}

impl_resource!(FloatingIp, FloatingIp, unique_key, validate);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    const MIN: &str = r#"{"floating_network_id":"ext"}"#;
    const FULL: &str = r#"{
        "id": "fip-1", "floating_ip_address": "172.24.4.20", "floating_network_id": "ext",
        "port_id": "port-1", "fixed_ip_address": "10.0.0.5", "router_id": "r-1",
        "status": "ACTIVE", "description": "d", "project_id": "p1", "unique_key": 1,
        "revision_number": 2, "created_at": "2024-01-01T00:00:00Z", "updated_at": null
    }"#;

    #[test]
    fn minimal_parses() {
        let f: FloatingIp = valid(MIN);
        assert_eq!(f, FloatingIp::new("ext"));
        assert_eq!(f.status, FloatingIpStatus::Down);
    }

    #[test]
    fn full_round_trips() {
        round_trip::<FloatingIp>(FULL);
    }

    #[test]
    fn unknown_field_rejected() {
        rejects_unknown_field::<FloatingIp>(MIN);
        let e =
            FloatingIp::from_json(r#"{"floating_network_id":"e","bogus_field":1}"#).unwrap_err().to_string();
        assert!(e.starts_with("invalid floatingip JSON"), "{e}");
    }

    #[test]
    fn rules() {
        unparsable::<FloatingIp>("{}", "{}", "floating_network_id");
        invalid::<FloatingIp>(MIN, r#"{"floating_network_id": ""}"#, "floating_network_id", "");
        invalid::<FloatingIp>(MIN, r#"{"port_id": ""}"#, "port_id", "");
        invalid::<FloatingIp>(MIN, r#"{"router_id": "a/b"}"#, "router_id", "a/b");
        invalid::<FloatingIp>(MIN, r#"{"fixed_ip_address": "10.0.0.5"}"#, "fixed_ip_address", "10.0.0.5");
        invalid::<FloatingIp>(
            MIN,
            r#"{"floating_ip_address": "2001:db8::1"}"#,
            "floating_ip_address",
            "2001:db8::1",
        );
        invalid::<FloatingIp>(
            MIN,
            r#"{"port_id": "p", "fixed_ip_address": "fd00::5"}"#,
            "fixed_ip_address",
            "fd00::5",
        );
        invalid::<FloatingIp>(MIN, r#"{"description": "x\u0000"}"#, "description", "x\\0");
        unparsable::<FloatingIp>(MIN, r#"{"status": "BUILD"}"#, "BUILD");
        unparsable::<FloatingIp>(MIN, r#"{"floating_ip_address": "1.2.3"}"#, "\"1.2.3\"");
    }
}
