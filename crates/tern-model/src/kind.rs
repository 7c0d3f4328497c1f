//! The kinds of northbound objects, their names (Neutron's singular and plural) and properties.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ModelError;

/// A kind of northbound object. Its [`name`](Kind::name) is the path segment in store keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Network,
    Subnet,
    Port,
    Router,
    FloatingIp,
    SecurityGroup,
    Chassis,
    Migration,
    PortBinding,
}

impl Kind {
    /// Every kind, in a fixed order (a referenced object's kind comes before the kinds that refer to it
    /// where possible: networks before subnets before ports).
    pub const ALL: [Kind; 9] = [
        Kind::Network,
        Kind::Subnet,
        Kind::Port,
        Kind::Router,
        Kind::FloatingIp,
        Kind::SecurityGroup,
        Kind::Chassis,
        Kind::Migration,
        Kind::PortBinding,
    ];

    /// Neutron's singular name (`floatingip`, `security_group`, ...).
    pub const fn name(&self) -> &'static str {
        match self {
            Kind::Network => "network",
            Kind::Subnet => "subnet",
            Kind::Port => "port",
            Kind::Router => "router",
            Kind::FloatingIp => "floatingip",
            Kind::SecurityGroup => "security_group",
            Kind::Chassis => "chassis",
            Kind::Migration => "migration",
            Kind::PortBinding => "port_binding",
        }
    }

    /// Neutron's plural name (the collection name in URLs and list responses).
    pub const fn plural(&self) -> &'static str {
        match self {
            Kind::Network => "networks",
            Kind::Subnet => "subnets",
            Kind::Port => "ports",
            Kind::Router => "routers",
            Kind::FloatingIp => "floatingips",
            Kind::SecurityGroup => "security_groups",
            Kind::Chassis => "chassis",
            Kind::Migration => "migrations",
            Kind::PortBinding => "port_bindings",
        }
    }

    /// Whether objects of this kind carry a `unique_key` (a small integer flows use to name them).
    pub const fn has_unique_key(&self) -> bool {
        matches!(
            self,
            Kind::Network
                | Kind::Port
                | Kind::Router
                | Kind::FloatingIp
                | Kind::SecurityGroup
                | Kind::Chassis
        )
    }

    /// The kind whose singular name is `name` (exact match, no plural).
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    pub(crate) fn names_list() -> String {
        Kind::ALL.map(|k| k.name()).join(", ")
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Accepts the singular name, and the plural as a convenience (`networks` is `Kind::Network`).
impl FromStr for Kind {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s || k.plural() == s)
            .ok_or_else(|| ModelError::UnknownKind(s.to_string()))
    }
}

impl Serialize for Kind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Kind::from_name(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("unknown kind {s:?}; valid kinds: {}", Kind::names_list()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in Kind::ALL {
            assert_eq!(k.name().parse::<Kind>().unwrap(), k);
            assert_eq!(k.plural().parse::<Kind>().unwrap(), k);
            assert_eq!(Kind::from_name(k.name()), Some(k));
            assert_eq!(k.to_string(), k.name());
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(serde_json::from_str::<Kind>(&json).unwrap(), k);
        }
        assert_eq!(Kind::FloatingIp.name(), "floatingip");
        assert_eq!(Kind::Chassis.plural(), "chassis");
    }

    #[test]
    fn unknown_kind_lists_valid_ones() {
        let err = "flavor".parse::<Kind>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"flavor\""), "{msg}");
        for k in Kind::ALL {
            assert!(msg.contains(k.name()), "{msg}");
        }
        assert!(serde_json::from_str::<Kind>("\"flavor\"").is_err());
    }

    #[test]
    fn unique_key_kinds() {
        let with: Vec<_> = Kind::ALL.into_iter().filter(Kind::has_unique_key).collect();
        assert_eq!(
            with,
            [Kind::Network, Kind::Port, Kind::Router, Kind::FloatingIp, Kind::SecurityGroup, Kind::Chassis]
        );
    }
}
