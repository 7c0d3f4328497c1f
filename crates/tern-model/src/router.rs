//! Router: a distributed L3 router with its interfaces (one per attached subnet), static routes and
//! optional external gateway (SNAT).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::common::{check_fixed_ip_list, check_routes, default_true, FixedIp, Route, Status};
use crate::error::ValidationError;
use crate::kind::Kind;
use crate::limits::MAX_ROUTER_ROUTES;
use crate::resource::impl_resource;
use crate::validate::{at_most, common_text, own_id, ref_id};

/// Neutron's `external_gateway_info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalGatewayInfo {
    pub network_id: String,
    #[serde(default = "default_true")]
    pub enable_snat: bool,
    #[serde(default)]
    pub external_fixed_ips: Vec<FixedIp>,
}

/// An attached subnet and the port (owned by the router) that holds the subnet's gateway address.
/// tern keeps the router's interfaces on the router (Neutron derives them from ports).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterInterface {
    pub subnet_id: String,
    pub port_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Router {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub project_id: String,
    #[serde(default = "default_true")]
    pub admin_state_up: bool,
    #[serde(default = "Status::active")]
    pub status: Status,
    #[serde(default)]
    pub external_gateway_info: Option<ExternalGatewayInfo>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub interfaces: Vec<RouterInterface>,
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

impl Default for Router {
    fn default() -> Self {
        Router {
            id: String::new(),
            name: String::new(),
            description: String::new(),
            project_id: String::new(),
            admin_state_up: true,
            status: Status::Active,
            external_gateway_info: None,
            routes: Vec::new(),
            interfaces: Vec::new(),
            unique_key: 0,
            revision_number: 0,
            created_at: None,
            updated_at: None,
        }
    }
}

fn validate(r: &Router) -> Result<(), ValidationError> {
    let k = Kind::Router;
    own_id(k, &r.id)?;
    common_text(k, &r.name, &r.description, &r.project_id)?;
    if let Some(gw) = &r.external_gateway_info {
        ref_id(k, "external_gateway_info.network_id", &gw.network_id)?;
        check_fixed_ip_list(k, "external_gateway_info.external_fixed_ips", &gw.external_fixed_ips)?;
    }
    at_most(
        k,
        "routes",
        r.routes.len(),
        MAX_ROUTER_ROUTES,
        format!("The number of routes exceeds the maximum {MAX_ROUTER_ROUTES}"),
    )?;
    check_routes(k, "routes", &r.routes)?;
    let mut subnets = HashSet::new();
    let mut ports = HashSet::new();
    for (i, itf) in r.interfaces.iter().enumerate() {
        let f = format!("interfaces[{i}]");
        ref_id(k, &format!("{f}.subnet_id"), &itf.subnet_id)?;
        ref_id(k, &format!("{f}.port_id"), &itf.port_id)?;
        if !subnets.insert(&itf.subnet_id) {
            return Err(ValidationError::new(
                k,
                format!("{f}.subnet_id"),
                &itf.subnet_id,
                "router already has an interface on this subnet",
            ));
        }
        if !ports.insert(&itf.port_id) {
            return Err(ValidationError::new(
                k,
                format!("{f}.port_id"),
                &itf.port_id,
                "port already used by another interface",
            ));
        }
    }
    Ok(())
}

impl_resource!(Router, Router, unique_key, validate);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    const MIN: &str = r#"{"name":"r1"}"#;
    const FULL: &str = r#"{
        "id": "r-1", "name": "r1", "description": "d", "project_id": "p1",
        "admin_state_up": true, "status": "BUILD",
        "external_gateway_info": {"network_id": "ext", "enable_snat": false,
            "external_fixed_ips": [{"subnet_id": "ext-sub", "ip_address": "172.24.4.10"}]},
        "routes": [{"destination": "10.10.0.0/16", "nexthop": "10.0.0.254"}],
        "interfaces": [{"subnet_id": "s1", "port_id": "rp1"}, {"subnet_id": "s2", "port_id": "rp2"}],
        "unique_key": 3, "revision_number": 9, "created_at": null, "updated_at": null
    }"#;

    #[test]
    fn minimal_parses() {
        let r: Router = valid(MIN);
        assert_eq!(r, Router { name: "r1".into(), ..Router::default() });
        let r: Router = valid(r#"{"external_gateway_info": {"network_id": "ext"}}"#);
        assert!(r.external_gateway_info.unwrap().enable_snat);
    }

    #[test]
    fn full_round_trips() {
        round_trip::<Router>(FULL);
    }

    #[test]
    fn unknown_field_rejected() {
        rejects_unknown_field::<Router>(MIN);
        unparsable::<Router>(MIN, r#"{"external_gateway_info": {"network_id": "e", "qos": 1}}"#, "`qos`");
    }

    #[test]
    fn route_limit() {
        let routes = |n: usize| {
            let v: Vec<String> = (0..n)
                .map(|i| format!(r#"{{"destination": "10.{i}.0.0/16", "nexthop": "192.168.0.1"}}"#))
                .collect();
            format!(r#"{{"routes": [{}]}}"#, v.join(","))
        };
        valid::<Router>(&with(MIN, &routes(30)));
        invalid::<Router>(MIN, &routes(31), "routes", "31 entries");
        invalid::<Router>(MIN, r#"{"description": "\u0000"}"#, "description", "\\0");
    }

    #[test]
    fn rules() {
        invalid::<Router>(
            MIN,
            r#"{"external_gateway_info": {"network_id": ""}}"#,
            "external_gateway_info.network_id",
            "",
        );
        invalid::<Router>(
            MIN,
            r#"{"external_gateway_info": {"network_id": "e", "external_fixed_ips": [{}]}}"#,
            "external_gateway_info.external_fixed_ips[0]",
            "",
        );
        invalid::<Router>(
            MIN,
            r#"{"routes": [{"destination": "10.10.0.1/16", "nexthop": "10.0.0.1"}]}"#,
            "routes[0].destination",
            "10.10.0.1/16",
        );
        invalid::<Router>(
            MIN,
            r#"{"interfaces": [{"subnet_id": "", "port_id": "p"}]}"#,
            "interfaces[0].subnet_id",
            "",
        );
        invalid::<Router>(
            MIN,
            r#"{"interfaces": [{"subnet_id": "s", "port_id": "p1"}, {"subnet_id": "s", "port_id": "p2"}]}"#,
            "interfaces[1].subnet_id",
            "s",
        );
        invalid::<Router>(
            MIN,
            r#"{"interfaces": [{"subnet_id": "s1", "port_id": "p"}, {"subnet_id": "s2", "port_id": "p"}]}"#,
            "interfaces[1].port_id",
            "p",
        );
    }
}
