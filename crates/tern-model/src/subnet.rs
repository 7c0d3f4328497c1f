//! Subnet: an IPv4 or IPv6 range on a network, with its gateway, allocation pools, DNS servers and
//! host routes.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::common::{check_routes, default_true, Route};
use crate::error::ValidationError;
use crate::ipam::ip_to_u128;
use crate::kind::Kind;
use crate::limits::{MAX_DNS_NAMESERVERS, MAX_SUBNET_HOST_ROUTES};
use crate::resource::impl_resource;
use crate::validate::{
    at_most, common_text, family, net_family, network_cidr, own_id, ref_id, reserved_reason, same_family,
};

/// An inclusive range of addresses the subnet hands out.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocationPool {
    #[serde(deserialize_with = "crate::de::ip")]
    pub start: IpAddr,
    #[serde(deserialize_with = "crate::de::ip")]
    pub end: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub project_id: String,
    pub network_id: String,
    /// 4 or 6; must match `cidr`.
    pub ip_version: u8,
    #[serde(deserialize_with = "crate::de::net")]
    pub cidr: IpNet,
    /// Absent: no gateway (the API layer picks the default gateway before storing, if it wants one).
    #[serde(default, deserialize_with = "crate::de::opt_ip")]
    pub gateway_ip: Option<IpAddr>,
    /// Empty: the whole cidr minus network, broadcast and gateway addresses.
    #[serde(default)]
    pub allocation_pools: Vec<AllocationPool>,
    #[serde(default = "default_true")]
    pub enable_dhcp: bool,
    #[serde(default, deserialize_with = "crate::de::vec_ip")]
    pub dns_nameservers: Vec<IpAddr>,
    #[serde(default)]
    pub host_routes: Vec<Route>,
    #[serde(default)]
    pub revision_number: u64,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

impl Subnet {
    /// A subnet with the given network and cidr (ip_version taken from the cidr), defaults elsewhere.
    pub fn new(network_id: impl Into<String>, cidr: IpNet) -> Self {
        Subnet {
            id: String::new(),
            name: String::new(),
            description: String::new(),
            project_id: String::new(),
            network_id: network_id.into(),
            ip_version: match cidr {
                IpNet::V4(_) => 4,
                IpNet::V6(_) => 6,
            },
            cidr,
            gateway_ip: None,
            allocation_pools: Vec::new(),
            enable_dhcp: true,
            dns_nameservers: Vec::new(),
            host_routes: Vec::new(),
            revision_number: 0,
            created_at: None,
            updated_at: None,
        }
    }
}

fn validate(s: &Subnet) -> Result<(), ValidationError> {
    let k = Kind::Subnet;
    own_id(k, &s.id)?;
    common_text(k, &s.name, &s.description, &s.project_id)?;
    ref_id(k, "network_id", &s.network_id)?;
    let cidr_version = match s.cidr {
        IpNet::V4(_) => 4,
        IpNet::V6(_) => 6,
    };
    if s.ip_version != 4 && s.ip_version != 6 {
        return Err(ValidationError::new(k, "ip_version", s.ip_version, "must be 4 or 6"));
    }
    if s.ip_version != cidr_version {
        return Err(ValidationError::new(
            k,
            "ip_version",
            s.ip_version,
            format!("does not match cidr {} (IPv{cidr_version})", s.cidr),
        ));
    }
    network_cidr(k, "cidr", &s.cidr)?;

    if let Some(gw) = &s.gateway_ip {
        address_in_subnet(s, "gateway_ip", gw)?;
    }

    let mut ranges: Vec<(u128, u128, usize)> = Vec::new();
    for (i, pool) in s.allocation_pools.iter().enumerate() {
        let f = format!("allocation_pools[{i}]");
        address_in_subnet(s, &format!("{f}.start"), &pool.start)?;
        address_in_subnet(s, &format!("{f}.end"), &pool.end)?;
        let (a, b) = (ip_to_u128(&pool.start), ip_to_u128(&pool.end));
        if a > b {
            return Err(ValidationError::new(
                k,
                f,
                format!("{}-{}", pool.start, pool.end),
                "start is after end",
            ));
        }
        if let Some(gw) = &s.gateway_ip {
            let g = ip_to_u128(gw);
            if same_family(&s.cidr, gw) && a <= g && g <= b {
                return Err(ValidationError::new(
                    k,
                    f,
                    format!("{}-{}", pool.start, pool.end),
                    format!("contains the gateway {gw}"),
                ));
            }
        }
        ranges.push((a, b, i));
    }
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        let (prev, cur) = (&w[0], &w[1]);
        if cur.0 <= prev.1 {
            let p = &s.allocation_pools[cur.2];
            return Err(ValidationError::new(
                k,
                format!("allocation_pools[{}]", cur.2),
                format!("{}-{}", p.start, p.end),
                format!("overlaps allocation_pools[{}]", prev.2),
            ));
        }
    }

    at_most(
        k,
        "dns_nameservers",
        s.dns_nameservers.len(),
        MAX_DNS_NAMESERVERS,
        format!("The number of DNS nameservers exceeds the limit {MAX_DNS_NAMESERVERS}"),
    )?;
    at_most(
        k,
        "host_routes",
        s.host_routes.len(),
        MAX_SUBNET_HOST_ROUTES,
        format!("The number of host routes exceeds the limit {MAX_SUBNET_HOST_ROUTES}"),
    )?;
    let mut seen = HashSet::new();
    for (i, ns) in s.dns_nameservers.iter().enumerate() {
        if !seen.insert(ns) {
            return Err(ValidationError::new(k, format!("dns_nameservers[{i}]"), ns, "duplicate DNS server"));
        }
    }
    check_routes(k, "host_routes", &s.host_routes)
}

/// `ip` is of the subnet's family, inside its cidr, and neither its network nor broadcast address.
fn address_in_subnet(s: &Subnet, field: &str, ip: &IpAddr) -> Result<(), ValidationError> {
    let err = |reason: String| Err(ValidationError::new(Kind::Subnet, field, ip, reason));
    if !same_family(&s.cidr, ip) {
        return err(format!("{} address in {} subnet {}", family(ip), net_family(&s.cidr), s.cidr));
    }
    if !s.cidr.contains(ip) {
        return err(format!("not inside cidr {}", s.cidr));
    }
    if let Some(why) = reserved_reason(&s.cidr, ip) {
        return err(why.to_string());
    }
    Ok(())
}

impl_resource!(Subnet, Subnet, validate);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    const MIN: &str = r#"{"network_id":"net-1","ip_version":4,"cidr":"10.0.0.0/24"}"#;
    const FULL: &str = r#"{
        "id": "sub-1", "name": "s1", "description": "d", "project_id": "p1",
        "network_id": "net-1", "ip_version": 4, "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1",
        "allocation_pools": [{"start": "10.0.0.10", "end": "10.0.0.99"},
                             {"start": "10.0.0.100", "end": "10.0.0.200"}],
        "enable_dhcp": false, "dns_nameservers": ["8.8.8.8", "2001:4860:4860::8888"],
        "host_routes": [{"destination": "192.168.0.0/16", "nexthop": "10.0.0.254"}],
        "revision_number": 2, "created_at": "2024-01-01T00:00:00Z", "updated_at": null
    }"#;

    #[test]
    fn minimal_parses() {
        let s: Subnet = valid(MIN);
        assert_eq!(s, Subnet::new("net-1", "10.0.0.0/24".parse().unwrap()));
        assert!(s.enable_dhcp);
        valid::<Subnet>(r#"{"network_id":"n","ip_version":6,"cidr":"fd00::/64","gateway_ip":"fd00::1"}"#);
    }

    #[test]
    fn full_round_trips() {
        round_trip::<Subnet>(FULL);
    }

    #[test]
    fn unknown_field_rejected() {
        rejects_unknown_field::<Subnet>(MIN);
    }

    #[test]
    fn required_fields() {
        for missing in ["network_id", "ip_version", "cidr"] {
            let mut v: serde_json::Value = serde_json::from_str(MIN).unwrap();
            v.as_object_mut().unwrap().remove(missing);
            let e = Subnet::from_json(&v.to_string()).unwrap_err();
            assert!(e.to_string().contains(missing), "{e}");
        }
    }

    #[test]
    fn rules() {
        invalid::<Subnet>(MIN, r#"{"network_id": ""}"#, "network_id", "");
        invalid::<Subnet>(MIN, r#"{"ip_version": 5}"#, "ip_version", "5");
        invalid::<Subnet>(MIN, r#"{"ip_version": 6}"#, "ip_version", "6");
        invalid::<Subnet>(MIN, r#"{"cidr": "10.0.0.1/24"}"#, "cidr", "10.0.0.1/24");
        let e = Subnet::from_json(&with(MIN, r#"{"cidr": "10.0.0.1/24"}"#)).unwrap().validate().unwrap_err();
        assert!(e.reason.contains("host bits") && e.reason.contains("10.0.0.0/24"), "{e}");
        unparsable::<Subnet>(MIN, r#"{"cidr": "10.0.0.0/33"}"#, "\"10.0.0.0/33\"");
        invalid::<Subnet>(MIN, r#"{"gateway_ip": "10.0.1.1"}"#, "gateway_ip", "10.0.1.1");
        invalid::<Subnet>(MIN, r#"{"gateway_ip": "10.0.0.0"}"#, "gateway_ip", "10.0.0.0");
        invalid::<Subnet>(MIN, r#"{"gateway_ip": "10.0.0.255"}"#, "gateway_ip", "10.0.0.255");
        invalid::<Subnet>(MIN, r#"{"gateway_ip": "fd00::1"}"#, "gateway_ip", "fd00::1");
        unparsable::<Subnet>(MIN, r#"{"gateway_ip": "10.0.0.x"}"#, "\"10.0.0.x\"");
        invalid::<Subnet>(
            MIN,
            r#"{"allocation_pools": [{"start": "10.0.0.20", "end": "10.0.0.10"}]}"#,
            "allocation_pools[0]",
            "10.0.0.20-10.0.0.10",
        );
        invalid::<Subnet>(
            MIN,
            r#"{"allocation_pools": [{"start": "10.0.0.2", "end": "10.0.1.10"}]}"#,
            "allocation_pools[0].end",
            "10.0.1.10",
        );
        invalid::<Subnet>(
            MIN,
            r#"{"allocation_pools": [{"start": "10.0.0.0", "end": "10.0.0.10"}]}"#,
            "allocation_pools[0].start",
            "10.0.0.0",
        );
        invalid::<Subnet>(
            MIN,
            r#"{"gateway_ip": "10.0.0.5", "allocation_pools": [{"start": "10.0.0.2", "end": "10.0.0.10"}]}"#,
            "allocation_pools[0]",
            "10.0.0.2-10.0.0.10",
        );
        invalid::<Subnet>(
            MIN,
            r#"{"allocation_pools": [{"start": "10.0.0.50", "end": "10.0.0.60"},
                                      {"start": "10.0.0.2", "end": "10.0.0.50"}]}"#,
            "allocation_pools[0]",
            "10.0.0.50-10.0.0.60",
        );
        invalid::<Subnet>(
            MIN,
            r#"{"dns_nameservers": ["1.1.1.1", "1.1.1.1"]}"#,
            "dns_nameservers[1]",
            "1.1.1.1",
        );
        invalid::<Subnet>(
            MIN,
            r#"{"host_routes": [{"destination": "192.168.1.0/16", "nexthop": "10.0.0.1"}]}"#,
            "host_routes[0].destination",
            "192.168.1.0/16",
        );
        invalid::<Subnet>(
            MIN,
            r#"{"host_routes": [{"destination": "192.168.0.0/16", "nexthop": "fd00::1"}]}"#,
            "host_routes[0].nexthop",
            "fd00::1",
        );
        unparsable::<Subnet>(
            MIN,
            r#"{"host_routes": [{"destination": "192.168.0.0/16", "nexthop": "10.0.0.1", "x": 1}]}"#,
            "`x`",
        );
        invalid::<Subnet>(MIN, r#"{"name": "\u0000"}"#, "name", "\\0");
    }

    #[test]
    fn limits() {
        let dns = |n: usize| {
            let v: Vec<String> = (0..n).map(|i| format!(r#""10.9.9.{i}""#)).collect();
            format!(r#"{{"dns_nameservers": [{}]}}"#, v.join(","))
        };
        valid::<Subnet>(&with(MIN, &dns(5)));
        invalid::<Subnet>(MIN, &dns(6), "dns_nameservers", "6 entries");
        let routes = |n: usize| {
            let v: Vec<String> = (0..n)
                .map(|i| format!(r#"{{"destination": "192.168.{i}.0/24", "nexthop": "10.0.0.9"}}"#))
                .collect();
            format!(r#"{{"host_routes": [{}]}}"#, v.join(","))
        };
        valid::<Subnet>(&with(MIN, &routes(20)));
        let e = Subnet::from_json(&with(MIN, &routes(21))).unwrap().validate().unwrap_err();
        assert_eq!((e.field.as_str(), e.value.as_str()), ("host_routes", "21 entries"));
        assert_eq!(e.reason, "The number of host routes exceeds the limit 20");
    }
}
