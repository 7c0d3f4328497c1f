//! Per-project quotas, as Neutron has them: the resources counted, Neutron's default limits
//! (`[QUOTAS] quota_<resource>` in `neutron/conf/quota.py`), a project's own limits, and what each
//! object counts for. An object counts against the project in its `project_id`; objects without
//! a project (tern's service objects, `tern db put` without one) count against none.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::kind::Kind;
use crate::object::Object;

/// A limit of -1: no limit.
pub const UNLIMITED: i64 = -1;
/// The largest limit (Neutron's `DB_INTEGER_MAX_VALUE`).
pub const MAX_LIMIT: i64 = i32::MAX as i64;

/// A resource a quota counts, by Neutron's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum QuotaResource {
    #[serde(rename = "network")]
    Network,
    #[serde(rename = "subnet")]
    Subnet,
    #[serde(rename = "port")]
    Port,
    #[serde(rename = "router")]
    Router,
    #[serde(rename = "floatingip")]
    FloatingIp,
    #[serde(rename = "security_group")]
    SecurityGroup,
    #[serde(rename = "security_group_rule")]
    SecurityGroupRule,
}

impl QuotaResource {
    pub const ALL: [QuotaResource; 7] = [
        QuotaResource::Network,
        QuotaResource::Subnet,
        QuotaResource::Port,
        QuotaResource::Router,
        QuotaResource::FloatingIp,
        QuotaResource::SecurityGroup,
        QuotaResource::SecurityGroupRule,
    ];

    /// Neutron's name (`floatingip`, `security_group_rule`, ...).
    pub fn name(self) -> &'static str {
        match self {
            QuotaResource::Network => "network",
            QuotaResource::Subnet => "subnet",
            QuotaResource::Port => "port",
            QuotaResource::Router => "router",
            QuotaResource::FloatingIp => "floatingip",
            QuotaResource::SecurityGroup => "security_group",
            QuotaResource::SecurityGroupRule => "security_group_rule",
        }
    }

    pub fn from_name(name: &str) -> Option<QuotaResource> {
        QuotaResource::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Neutron's default limit.
    pub fn default_limit(self) -> i64 {
        match self {
            QuotaResource::Network => 100,           // quota_network
            QuotaResource::Subnet => 100,            // quota_subnet
            QuotaResource::Port => 500,              // quota_port
            QuotaResource::Router => 10,             // quota_router
            QuotaResource::FloatingIp => 50,         // quota_floatingip
            QuotaResource::SecurityGroup => 10,      // quota_security_group
            QuotaResource::SecurityGroupRule => 100, // quota_security_group_rule
        }
    }

    /// The kind whose objects hold this resource (rules live inside their security group).
    pub fn kind(self) -> Kind {
        match self {
            QuotaResource::Network => Kind::Network,
            QuotaResource::Subnet => Kind::Subnet,
            QuotaResource::Port => Kind::Port,
            QuotaResource::Router => Kind::Router,
            QuotaResource::FloatingIp => Kind::FloatingIp,
            QuotaResource::SecurityGroup | QuotaResource::SecurityGroupRule => Kind::SecurityGroup,
        }
    }
}

impl std::fmt::Display for QuotaResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A project's limits that differ from the defaults (its JSON form: `{"port": 20, ...}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuotaLimits(pub BTreeMap<QuotaResource, i64>);

impl QuotaLimits {
    /// The project's limit of `r` (-1: none).
    pub fn limit(&self, r: QuotaResource) -> i64 {
        self.0.get(&r).copied().unwrap_or_else(|| r.default_limit())
    }

    /// Every resource's limit.
    pub fn effective(&self) -> BTreeMap<QuotaResource, i64> {
        QuotaResource::ALL.into_iter().map(|r| (r, self.limit(r))).collect()
    }

    /// Whether `used` + `more` stays within the limit of `r`.
    pub fn allows(&self, r: QuotaResource, used: u64, more: u64) -> bool {
        let limit = self.limit(r);
        limit < 0 || used.saturating_add(more) <= limit as u64
    }
}

/// The `device_owner`s of ports that count for no quota: the address holders of floating IPs
/// and router gateways, which Neutron creates without a project.
pub const UNCOUNTED_PORT_OWNERS: [&str; 2] = ["network:floatingip", "network:router_gateway"];

/// Whether `limit` is a valid limit (-1 through [`MAX_LIMIT`]).
pub fn valid_limit(limit: i64) -> bool {
    (UNLIMITED..=MAX_LIMIT).contains(&limit)
}

/// What `object` counts for: its project and how many of each resource; `None` for an object
/// without a project or of a kind no quota counts.
pub fn usage(object: &Object) -> Option<(&str, Vec<(QuotaResource, u64)>)> {
    let (project, counts) = match object {
        Object::Network(n) => (&n.project_id, vec![(QuotaResource::Network, 1)]),
        Object::Subnet(s) => (&s.project_id, vec![(QuotaResource::Subnet, 1)]),
        // Neutron gives the ports of floating IPs and router gateways no project.
        Object::Port(p) if UNCOUNTED_PORT_OWNERS.contains(&p.device_owner.as_str()) => return None,
        Object::Port(p) => (&p.project_id, vec![(QuotaResource::Port, 1)]),
        Object::Router(r) => (&r.project_id, vec![(QuotaResource::Router, 1)]),
        Object::FloatingIp(f) => (&f.project_id, vec![(QuotaResource::FloatingIp, 1)]),
        Object::SecurityGroup(g) => (
            &g.project_id,
            vec![
                (QuotaResource::SecurityGroup, 1),
                (QuotaResource::SecurityGroupRule, g.security_group_rules.len() as u64),
            ],
        ),
        Object::Chassis(_) | Object::Migration(_) | Object::PortBinding(_) => return None,
    };
    (!project.is_empty()).then_some((project.as_str(), counts))
}

/// The usage of `resource` by `project` among `objects`.
pub fn count<'a>(
    objects: impl IntoIterator<Item = &'a Object>,
    project: &str,
    resource: QuotaResource,
) -> u64 {
    objects
        .into_iter()
        .filter_map(usage)
        .filter(|(p, _)| *p == project)
        .flat_map(|(_, counts)| counts)
        .filter(|(r, _)| *r == resource)
        .map(|(_, n)| n)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Direction, EtherType, Network, Port, SecurityGroup, SecurityGroupRule};

    #[test]
    fn names_and_defaults() {
        for r in QuotaResource::ALL {
            assert_eq!(QuotaResource::from_name(r.name()), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), serde_json::json!(r.name()));
        }
        assert_eq!(QuotaResource::from_name("floating_ip"), None);
        let defaults: Vec<(&str, i64)> =
            QuotaResource::ALL.iter().map(|r| (r.name(), r.default_limit())).collect();
        assert_eq!(
            defaults,
            [
                ("network", 100),
                ("subnet", 100),
                ("port", 500),
                ("router", 10),
                ("floatingip", 50),
                ("security_group", 10),
                ("security_group_rule", 100)
            ]
        );
    }

    #[test]
    fn limits() {
        let l: QuotaLimits = serde_json::from_str(r#"{"port": 2, "network": -1}"#).unwrap();
        assert_eq!(l.limit(QuotaResource::Port), 2);
        assert_eq!(l.limit(QuotaResource::Router), 10);
        assert!(l.allows(QuotaResource::Port, 1, 1));
        assert!(!l.allows(QuotaResource::Port, 2, 1));
        assert!(l.allows(QuotaResource::Network, u64::MAX, 1));
        assert_eq!(l.effective().len(), 7);
        assert_eq!(serde_json::to_string(&l).unwrap(), r#"{"network":-1,"port":2}"#);
        assert!(serde_json::from_str::<QuotaLimits>(r#"{"ports": 2}"#).is_err());
        assert!(valid_limit(-1) && valid_limit(0) && valid_limit(MAX_LIMIT));
        assert!(!valid_limit(-2) && !valid_limit(MAX_LIMIT + 1));
    }

    #[test]
    fn what_objects_count_for() {
        let mut g = SecurityGroup { project_id: "p".into(), ..SecurityGroup::default() };
        g.security_group_rules = vec![
            SecurityGroupRule::new(Direction::Egress, EtherType::IPv4),
            SecurityGroupRule::new(Direction::Egress, EtherType::IPv6),
        ];
        let mut port = Port::new("n");
        port.project_id = "p".into();
        let mut fip_port = port.clone();
        fip_port.device_owner = "network:floatingip".into();
        let mut interface = port.clone();
        interface.device_owner = "network:router_interface".into();
        assert!(usage(&Object::Port(fip_port)).is_none());
        assert!(usage(&Object::Port(interface)).is_some());
        let objects = [
            Object::SecurityGroup(g),
            Object::Port(port),
            Object::Port(Port::new("n")),
            Object::Network(Network { project_id: "q".into(), ..Network::default() }),
        ];
        assert_eq!(count(&objects, "p", QuotaResource::SecurityGroupRule), 2);
        assert_eq!(count(&objects, "p", QuotaResource::SecurityGroup), 1);
        assert_eq!(count(&objects, "p", QuotaResource::Port), 1);
        assert_eq!(count(&objects, "p", QuotaResource::Network), 0);
        assert_eq!(count(&objects, "q", QuotaResource::Network), 1);
        assert_eq!(count(&objects, "", QuotaResource::Port), 0);
        assert!(usage(&objects[2]).is_none());
    }
}
