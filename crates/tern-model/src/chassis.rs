//! Chassis: a compute node running a tern controller, and how to reach it by tunnel.

use std::collections::HashSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::kind::Kind;
use crate::resource::impl_resource;
use crate::validate::{text, validate_id};

/// Tunnel encapsulations a chassis may announce.
pub const TUNNEL_TYPES: [&str; 2] = ["geneve", "vxlan"];

fn default_tunnel_types() -> Vec<String> {
    vec!["geneve".to_string()]
}

fn default_bridge() -> String {
    "br-int".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chassis {
    /// The chassis name (normally its hostname, as Nova's `binding:host_id` names it). Required: a
    /// chassis id is never generated.
    pub id: String,
    /// The host's name if it differs from `id`; empty = same as `id`.
    #[serde(default)]
    pub hostname: String,
    /// Where other chassis send tunnelled traffic for this one.
    #[serde(deserialize_with = "crate::de::ip")]
    pub tunnel_ip: IpAddr,
    #[serde(default = "default_tunnel_types")]
    pub tunnel_types: Vec<String>,
    #[serde(default, deserialize_with = "crate::de::opt_ip")]
    pub external_ip: Option<IpAddr>,
    /// The integration bridge.
    #[serde(default = "default_bridge")]
    pub bridge: String,
    /// The controller's version.
    #[serde(default)]
    pub version: String,
    /// 0 = not yet allocated.
    #[serde(default)]
    pub unique_key: u32,
    #[serde(default)]
    pub revision_number: u64,
    #[serde(default)]
    pub registered_at: Option<String>,
}

impl Chassis {
    /// A chassis named `id` reachable at `tunnel_ip`, defaults elsewhere.
    pub fn new(id: impl Into<String>, tunnel_ip: IpAddr) -> Self {
        Chassis {
            id: id.into(),
            hostname: String::new(),
            tunnel_ip,
            tunnel_types: default_tunnel_types(),
            external_ip: None,
            bridge: default_bridge(),
            version: String::new(),
            unique_key: 0,
            revision_number: 0,
            registered_at: None,
        }
    }

    /// `hostname`, or `id` when it is empty.
    pub fn hostname(&self) -> &str {
        if self.hostname.is_empty() {
            &self.id
        } else {
            &self.hostname
        }
    }
}

fn usable_unicast(field: &str, ip: &IpAddr) -> Result<(), ValidationError> {
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(ValidationError::new(Kind::Chassis, field, ip, "must be a unicast address"));
    }
    if let IpAddr::V4(v4) = ip {
        if v4.is_broadcast() {
            return Err(ValidationError::new(Kind::Chassis, field, ip, "must be a unicast address"));
        }
    }
    Ok(())
}

fn validate(c: &Chassis) -> Result<(), ValidationError> {
    let k = Kind::Chassis;
    validate_id(k, "id", &c.id)?;
    text(k, "hostname", &c.hostname)?;
    usable_unicast("tunnel_ip", &c.tunnel_ip)?;
    if let Some(ip) = &c.external_ip {
        usable_unicast("external_ip", ip)?;
    }
    if c.tunnel_types.is_empty() {
        return Err(ValidationError::new(k, "tunnel_types", "[]", "at least one tunnel type is needed"));
    }
    let mut seen = HashSet::new();
    for (i, t) in c.tunnel_types.iter().enumerate() {
        if !TUNNEL_TYPES.contains(&t.as_str()) {
            return Err(ValidationError::new(
                k,
                format!("tunnel_types[{i}]"),
                t,
                "unknown tunnel type; valid: geneve, vxlan",
            ));
        }
        if !seen.insert(t) {
            return Err(ValidationError::new(k, format!("tunnel_types[{i}]"), t, "duplicate entry"));
        }
    }
    if c.bridge.is_empty()
        || c.bridge.chars().count() > 255
        || c.bridge.contains('/')
        || c.bridge.chars().any(|ch| ch.is_control() || ch.is_whitespace())
    {
        return Err(ValidationError::new(
            k,
            "bridge",
            &c.bridge,
            "not a bridge name (non-empty, no '/', spaces or control characters)",
        ));
    }
    text(k, "version", &c.version)
}

impl_resource!(Chassis, Chassis, unique_key, validate);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Resource;
    use crate::testutil::*;

    const MIN: &str = r#"{"id":"compute-1","tunnel_ip":"192.0.2.11"}"#;
    const FULL: &str = r#"{
        "id": "compute-1", "hostname": "compute-1.example.org", "tunnel_ip": "2001:db8::11",
        "tunnel_types": ["vxlan", "geneve"], "external_ip": "198.51.100.7", "bridge": "br-tern",
        "version": "0.1.0", "unique_key": 2, "revision_number": 8,
        "registered_at": "2024-01-01T00:00:00Z"
    }"#;

    #[test]
    fn minimal_parses() {
        let c: Chassis = valid(MIN);
        assert_eq!(c, Chassis::new("compute-1", "192.0.2.11".parse().unwrap()));
        assert_eq!(c.tunnel_types, ["geneve"]);
        assert_eq!(c.bridge, "br-int");
        assert_eq!(c.hostname(), "compute-1");
        assert_eq!(c.unique_key(), Some(0));
    }

    #[test]
    fn full_round_trips() {
        round_trip::<Chassis>(FULL);
    }

    #[test]
    fn unknown_field_rejected() {
        rejects_unknown_field::<Chassis>(MIN);
    }

    #[test]
    fn rules() {
        unparsable::<Chassis>(r#"{"tunnel_ip":"192.0.2.1"}"#, "{}", "`id`");
        unparsable::<Chassis>(r#"{"id":"c"}"#, "{}", "tunnel_ip");
        unparsable::<Chassis>(MIN, r#"{"tunnel_ip": "compute-1"}"#, "\"compute-1\"");
        invalid::<Chassis>(MIN, r#"{"id": ""}"#, "id", "");
        invalid::<Chassis>(MIN, r#"{"hostname": "h\u0000"}"#, "hostname", "h\\0");
        invalid::<Chassis>(MIN, r#"{"version": "\u0000"}"#, "version", "\\0");
        invalid::<Chassis>(MIN, r#"{"tunnel_ip": "0.0.0.0"}"#, "tunnel_ip", "0.0.0.0");
        invalid::<Chassis>(MIN, r#"{"tunnel_ip": "224.0.0.1"}"#, "tunnel_ip", "224.0.0.1");
        invalid::<Chassis>(MIN, r#"{"external_ip": "::"}"#, "external_ip", "::");
        invalid::<Chassis>(MIN, r#"{"tunnel_types": []}"#, "tunnel_types", "[]");
        invalid::<Chassis>(MIN, r#"{"tunnel_types": ["gre"]}"#, "tunnel_types[0]", "gre");
        invalid::<Chassis>(MIN, r#"{"tunnel_types": ["geneve", "geneve"]}"#, "tunnel_types[1]", "geneve");
        invalid::<Chassis>(MIN, r#"{"bridge": ""}"#, "bridge", "");
        invalid::<Chassis>(MIN, r#"{"bridge": "br int"}"#, "bridge", "br int");
    }
}
