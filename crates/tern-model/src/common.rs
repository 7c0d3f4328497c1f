//! Small types several kinds share: statuses, routes, fixed IPs, VNIC types.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::kind::Kind;
use crate::validate::{family, net_family, network_cidr, same_family, validate_id};

pub(crate) fn default_true() -> bool {
    true
}

/// Neutron's resource status for networks, ports and routers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Active,
    Down,
    Build,
    Error,
}

impl Status {
    pub(crate) fn active() -> Status {
        Status::Active
    }
    pub(crate) fn down() -> Status {
        Status::Down
    }
}

/// A static route: a subnet's `host_routes` entry or a router's `routes` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    #[serde(deserialize_with = "crate::de::net")]
    pub destination: IpNet,
    #[serde(deserialize_with = "crate::de::ip")]
    pub nexthop: IpAddr,
}

/// Checks a list of routes: destinations are network addresses, next hops of the same family, no
/// duplicates.
pub(crate) fn check_routes(kind: Kind, field: &str, routes: &[Route]) -> Result<(), ValidationError> {
    let mut seen = HashSet::new();
    for (i, r) in routes.iter().enumerate() {
        network_cidr(kind, &format!("{field}[{i}].destination"), &r.destination)?;
        if !same_family(&r.destination, &r.nexthop) {
            return Err(ValidationError::new(
                kind,
                format!("{field}[{i}].nexthop"),
                r.nexthop,
                format!(
                    "{} next hop for {} destination {}",
                    family(&r.nexthop),
                    net_family(&r.destination),
                    r.destination
                ),
            ));
        }
        if !seen.insert(r) {
            return Err(ValidationError::new(
                kind,
                format!("{field}[{i}]"),
                format!("{} via {}", r.destination, r.nexthop),
                "duplicate route",
            ));
        }
    }
    Ok(())
}

/// One of a port's (or a router gateway's) addresses. Either part may be absent on input: no
/// `ip_address` means "allocate one from the subnet", no `subnet_id` means "find the subnet holding
/// this address" (the API layer resolves both before storing).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedIp {
    #[serde(default)]
    pub subnet_id: String,
    #[serde(default, deserialize_with = "crate::de::opt_ip")]
    pub ip_address: Option<IpAddr>,
}

/// Checks a fixed-IP list on its own: each entry names a subnet or an address, no address twice.
pub(crate) fn check_fixed_ip_list(kind: Kind, field: &str, ips: &[FixedIp]) -> Result<(), ValidationError> {
    let mut seen = HashSet::new();
    for (i, f) in ips.iter().enumerate() {
        if f.subnet_id.is_empty() {
            if f.ip_address.is_none() {
                return Err(ValidationError::new(
                    kind,
                    format!("{field}[{i}]"),
                    "",
                    "needs a subnet_id or an ip_address",
                ));
            }
        } else {
            validate_id(kind, &format!("{field}[{i}].subnet_id"), &f.subnet_id)?;
        }
        if let Some(ip) = f.ip_address {
            if !seen.insert(ip) {
                return Err(ValidationError::new(
                    kind,
                    format!("{field}[{i}].ip_address"),
                    ip,
                    "duplicate IP address",
                ));
            }
        }
    }
    Ok(())
}

/// Neutron's `binding:vnic_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VnicType {
    #[default]
    Normal,
    Direct,
    Macvtap,
    Baremetal,
    DirectPhysical,
    VirtioForwarder,
    SmartNic,
    RemoteManaged,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vnic_type_names() {
        for (v, s) in [
            (VnicType::Normal, "normal"),
            (VnicType::DirectPhysical, "direct-physical"),
            (VnicType::VirtioForwarder, "virtio-forwarder"),
            (VnicType::SmartNic, "smart-nic"),
            (VnicType::RemoteManaged, "remote-managed"),
            (VnicType::Baremetal, "baremetal"),
        ] {
            assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{s}\""));
        }
    }

    #[test]
    fn routes() {
        let ok = |d: &str, n: &str| Route { destination: d.parse().unwrap(), nexthop: n.parse().unwrap() };
        check_routes(Kind::Router, "routes", &[ok("0.0.0.0/0", "10.0.0.1")]).unwrap();
        let e = check_routes(Kind::Router, "routes", &[ok("10.1.0.1/16", "10.0.0.1")]).unwrap_err();
        assert_eq!(e.field, "routes[0].destination");
        assert!(e.reason.contains("10.1.0.0/16"), "{e}");
        let e = check_routes(Kind::Router, "routes", &[ok("::/0", "10.0.0.1")]).unwrap_err();
        assert_eq!(e.field, "routes[0].nexthop");
        let r = ok("10.1.0.0/16", "10.0.0.1");
        let e = check_routes(Kind::Subnet, "host_routes", &[r.clone(), r]).unwrap_err();
        assert_eq!(e.field, "host_routes[1]");
        let e =
            serde_json::from_str::<Route>(r#"{"destination":"10.0.0/8","nexthop":"1.1.1.1"}"#).unwrap_err();
        assert!(e.to_string().contains("\"10.0.0/8\""), "{e}");
    }
}
