//! Port: a VIF (or router/DHCP interface) on a network, with its MAC, fixed IPs, binding and port
//! security.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::common::{check_fixed_ip_list, default_true, FixedIp, Status, VnicType};
use crate::error::ValidationError;
use crate::kind::Kind;
use crate::limits::{MAX_ALLOWED_ADDRESS_PAIRS, MAX_BINDING_PROFILE_LEN};
use crate::mac::validate_mac;
use crate::resource::impl_resource;
use crate::validate::{at_most, common_text, network_cidr, own_id, parse_ip_or_cidr, ref_id, ref_ids, text};

/// Neutron's `binding:vif_type` of a port that is not bound.
pub const VIF_TYPE_UNBOUND: &str = "unbound";

fn default_vif_type() -> String {
    VIF_TYPE_UNBOUND.to_string()
}

/// An extra address (or range) the port may send from, optionally with its own MAC.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedAddressPair {
    /// An IP address or a CIDR.
    pub ip_address: String,
    /// Absent: the port's own MAC.
    #[serde(default)]
    pub mac_address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub project_id: String,
    pub network_id: String,
    /// `aa:bb:cc:dd:ee:ff`; empty means "generate one" (see [`crate::generate_mac`]).
    #[serde(default)]
    pub mac_address: String,
    #[serde(default)]
    pub fixed_ips: Vec<FixedIp>,
    #[serde(default = "default_true")]
    pub admin_state_up: bool,
    #[serde(default = "Status::down")]
    pub status: Status,
    #[serde(default)]
    pub device_id: String,
    #[serde(default)]
    pub device_owner: String,
    #[serde(rename = "binding:host_id", default, deserialize_with = "crate::de::string_or_null")]
    pub binding_host_id: String,
    #[serde(rename = "binding:vif_type", default = "default_vif_type")]
    pub binding_vif_type: String,
    #[serde(rename = "binding:vnic_type", default)]
    pub binding_vnic_type: VnicType,
    #[serde(rename = "binding:profile", default, deserialize_with = "crate::de::object_or_null")]
    pub binding_profile: Map<String, Value>,
    #[serde(rename = "binding:vif_details", default, deserialize_with = "crate::de::object_or_null")]
    pub binding_vif_details: Map<String, Value>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default)]
    pub allowed_address_pairs: Vec<AllowedAddressPair>,
    #[serde(default = "default_true")]
    pub port_security_enabled: bool,
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

impl Port {
    /// A port on `network_id` with defaults everywhere else.
    pub fn new(network_id: impl Into<String>) -> Self {
        Port {
            id: String::new(),
            name: String::new(),
            description: String::new(),
            project_id: String::new(),
            network_id: network_id.into(),
            mac_address: String::new(),
            fixed_ips: Vec::new(),
            admin_state_up: true,
            status: Status::Down,
            device_id: String::new(),
            device_owner: String::new(),
            binding_host_id: String::new(),
            binding_vif_type: default_vif_type(),
            binding_vnic_type: VnicType::Normal,
            binding_profile: Map::new(),
            binding_vif_details: Map::new(),
            security_groups: Vec::new(),
            allowed_address_pairs: Vec::new(),
            port_security_enabled: true,
            unique_key: 0,
            revision_number: 0,
            created_at: None,
            updated_at: None,
        }
    }
}

fn validate(p: &Port) -> Result<(), ValidationError> {
    let k = Kind::Port;
    own_id(k, &p.id)?;
    common_text(k, &p.name, &p.description, &p.project_id)?;
    ref_id(k, "network_id", &p.network_id)?;
    if !p.mac_address.is_empty() {
        validate_mac(k, "mac_address", &p.mac_address)?;
    }
    check_fixed_ip_list(k, "fixed_ips", &p.fixed_ips)?;
    text(k, "device_id", &p.device_id)?;
    text(k, "device_owner", &p.device_owner)?;
    text(k, "binding:host_id", &p.binding_host_id)?;
    text(k, "binding:vif_type", &p.binding_vif_type)?;
    binding_profile(k, "binding:profile", &p.binding_profile)?;
    ref_ids(k, "security_groups", &p.security_groups)?;
    at_most(
        k,
        "allowed_address_pairs",
        p.allowed_address_pairs.len(),
        MAX_ALLOWED_ADDRESS_PAIRS,
        format!("Exceeded maximum amount of allowed address pairs {MAX_ALLOWED_ADDRESS_PAIRS}"),
    )?;

    let mut seen = HashSet::new();
    for (i, pair) in p.allowed_address_pairs.iter().enumerate() {
        let f = format!("allowed_address_pairs[{i}]");
        let net = parse_ip_or_cidr(&pair.ip_address).ok_or_else(|| {
            ValidationError::new(k, format!("{f}.ip_address"), &pair.ip_address, "not an IP address or CIDR")
        })?;
        network_cidr(k, &format!("{f}.ip_address"), &net)?;
        if let Some(mac) = &pair.mac_address {
            validate_mac(k, &format!("{f}.mac_address"), mac)?;
        }
        let mac = pair.mac_address.as_deref().unwrap_or(&p.mac_address);
        if !seen.insert((net, mac.to_ascii_lowercase())) {
            return Err(ValidationError::new(k, f, &pair.ip_address, "duplicate allowed address pair"));
        }
    }

    if !p.port_security_enabled {
        if let Some(sg) = p.security_groups.first() {
            return Err(ValidationError::new(
                k,
                "security_groups",
                sg,
                "port security is disabled: a port without port security cannot have security groups",
            ));
        }
        if let Some(pair) = p.allowed_address_pairs.first() {
            return Err(ValidationError::new(
                k,
                "allowed_address_pairs",
                &pair.ip_address,
                "port security is disabled: allowed address pairs require port security",
            ));
        }
    }
    Ok(())
}

impl_resource!(Port, Port, unique_key, validate);

/// A binding profile of at most [`MAX_BINDING_PROFILE_LEN`] bytes as compact JSON.
pub(crate) fn binding_profile(
    k: Kind,
    field: &str,
    profile: &Map<String, Value>,
) -> Result<(), ValidationError> {
    let len = serde_json::to_vec(profile).map_or(usize::MAX, |v| v.len());
    if len > MAX_BINDING_PROFILE_LEN {
        return Err(ValidationError::new(
            k,
            field,
            format!("{len} bytes of JSON"),
            format!("longer than {MAX_BINDING_PROFILE_LEN} bytes of JSON"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    const MIN: &str = r#"{"network_id":"net-1"}"#;
    const FULL: &str = r#"{
        "id": "port-1", "name": "p1", "description": "d", "project_id": "p1",
        "network_id": "net-1", "mac_address": "fa:16:3e:00:00:01",
        "fixed_ips": [{"subnet_id": "sub-1", "ip_address": "10.0.0.5"},
                      {"subnet_id": "sub-2", "ip_address": null}],
        "admin_state_up": false, "status": "ACTIVE", "device_id": "vm-1",
        "device_owner": "compute:nova", "binding:host_id": "compute-1", "binding:vif_type": "ovs",
        "binding:vnic_type": "direct-physical", "binding:profile": {"migrating_to": "compute-2"},
        "binding:vif_details": {"port_filter": true}, "security_groups": ["sg-1"],
        "allowed_address_pairs": [{"ip_address": "10.0.0.100", "mac_address": null},
                                  {"ip_address": "10.1.0.0/16", "mac_address": "fa:16:3e:00:00:02"}],
        "port_security_enabled": true, "unique_key": 12, "revision_number": 4,
        "created_at": null, "updated_at": "2024-01-02T00:00:00Z"
    }"#;

    #[test]
    fn minimal_parses() {
        let p: Port = valid(MIN);
        assert_eq!(p, Port::new("net-1"));
        assert_eq!(p.status, Status::Down);
        assert_eq!(p.binding_vnic_type, VnicType::Normal);
        assert_eq!(p.binding_vif_type, "unbound");
        assert!(p.binding_profile.is_empty());
    }

    #[test]
    fn full_round_trips() {
        round_trip::<Port>(FULL);
    }

    #[test]
    fn unknown_field_rejected() {
        rejects_unknown_field::<Port>(MIN);
        unparsable::<Port>(MIN, r#"{"fixed_ips": [{"subnet_id": "s", "ip": "10.0.0.1"}]}"#, "`ip`");
    }

    #[test]
    fn null_binding_fields_read_as_empty() {
        let p: Port = valid(&with(
            MIN,
            r#"{"binding:profile": null, "binding:vif_details": null, "binding:host_id": null}"#,
        ));
        assert!(p.binding_profile.is_empty() && p.binding_host_id.is_empty());
        unparsable::<Port>(MIN, r#"{"binding:profile": [1]}"#, "JSON object");
        unparsable::<Port>(MIN, r#"{"binding:vnic_type": "weird"}"#, "weird");
    }

    #[test]
    fn rules() {
        invalid::<Port>(MIN, r#"{"network_id": ""}"#, "network_id", "");
        for bad in ["01:00:5e:00:00:01", "00:00:00:00:00:00", "fa:16:3e:00:00", "zz:16:3e:00:00:01"] {
            invalid::<Port>(MIN, &format!(r#"{{"mac_address": "{bad}"}}"#), "mac_address", bad);
        }
        valid::<Port>(&with(MIN, r#"{"mac_address": "FA:16:3E:00:00:01"}"#));
        invalid::<Port>(MIN, r#"{"fixed_ips": [{}]}"#, "fixed_ips[0]", "");
        invalid::<Port>(MIN, r#"{"fixed_ips": [{"subnet_id": "a/b"}]}"#, "fixed_ips[0].subnet_id", "a/b");
        invalid::<Port>(
            MIN,
            r#"{"fixed_ips": [{"ip_address": "10.0.0.1"}, {"subnet_id": "s", "ip_address": "10.0.0.1"}]}"#,
            "fixed_ips[1].ip_address",
            "10.0.0.1",
        );
        invalid::<Port>(MIN, r#"{"security_groups": ["sg", "sg"]}"#, "security_groups[1]", "sg");
        invalid::<Port>(
            MIN,
            r#"{"allowed_address_pairs": [{"ip_address": "nope"}]}"#,
            "allowed_address_pairs[0].ip_address",
            "nope",
        );
        invalid::<Port>(
            MIN,
            r#"{"allowed_address_pairs": [{"ip_address": "10.0.0.1/24"}]}"#,
            "allowed_address_pairs[0].ip_address",
            "10.0.0.1/24",
        );
        invalid::<Port>(
            MIN,
            r#"{"allowed_address_pairs": [{"ip_address": "10.0.0.1", "mac_address": "ff:ff:ff:ff:ff:ff"}]}"#,
            "allowed_address_pairs[0].mac_address",
            "ff:ff:ff:ff:ff:ff",
        );
        invalid::<Port>(
            MIN,
            r#"{"allowed_address_pairs": [{"ip_address": "10.0.0.1"}, {"ip_address": "10.0.0.1/32"}]}"#,
            "allowed_address_pairs[1]",
            "10.0.0.1/32",
        );
        invalid::<Port>(
            MIN,
            r#"{"port_security_enabled": false, "security_groups": ["sg-1"]}"#,
            "security_groups",
            "sg-1",
        );
        invalid::<Port>(
            MIN,
            r#"{"port_security_enabled": false, "allowed_address_pairs": [{"ip_address": "10.0.0.9"}]}"#,
            "allowed_address_pairs",
            "10.0.0.9",
        );
        valid::<Port>(&with(MIN, r#"{"port_security_enabled": false}"#));
        let long = "d".repeat(256);
        invalid::<Port>(MIN, &format!(r#"{{"device_id": "{long}"}}"#), "device_id", &long);
        for field in ["name", "description", "device_id", "device_owner", "binding:host_id"] {
            invalid::<Port>(MIN, &format!(r#"{{"{field}": "x\u0000"}}"#), field, "x\\0");
        }
    }

    #[test]
    fn limits() {
        let pairs = |n: usize| {
            let v: Vec<String> = (0..n).map(|i| format!(r#"{{"ip_address": "10.0.1.{i}"}}"#)).collect();
            format!(r#"{{"allowed_address_pairs": [{}]}}"#, v.join(","))
        };
        valid::<Port>(&with(MIN, &pairs(10)));
        let e = Port::from_json(&with(MIN, &pairs(11))).unwrap().validate().unwrap_err();
        assert_eq!((e.field.as_str(), e.value.as_str()), ("allowed_address_pairs", "11 entries"));
        assert_eq!(e.reason, "Exceeded maximum amount of allowed address pairs 10");

        // Compact JSON {"k":"..."} is 8 bytes plus the value.
        let profile = |n: usize| format!(r#"{{"binding:profile": {{"k": "{}"}}}}"#, "x".repeat(n));
        valid::<Port>(&with(MIN, &profile(4095 - 8)));
        invalid::<Port>(MIN, &profile(4096 - 8), "binding:profile", "4096 bytes of JSON");
    }
}
