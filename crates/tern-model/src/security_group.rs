//! SecurityGroup and its rules (held inside the group).

use std::collections::HashSet;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::common::default_true;
use crate::error::ValidationError;
use crate::kind::Kind;
use crate::limits::MAX_SECURITY_GROUP_RULES;
use crate::resource::impl_resource;
use crate::validate::{at_most, common_text, net_family, network_cidr, own_id, text, validate_id};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum EtherType {
    #[default]
    IPv4,
    IPv6,
}

/// The protocol names a rule accepts (Neutron's list), with their IANA numbers.
pub const PROTOCOLS: &[(&str, u8)] = &[
    ("ah", 51),
    ("dccp", 33),
    ("egp", 8),
    ("esp", 50),
    ("gre", 47),
    ("hopopt", 0),
    ("icmp", 1),
    ("icmpv6", 58),
    ("igmp", 2),
    ("ipip", 4),
    ("ipv6-encap", 41),
    ("ipv6-frag", 44),
    ("ipv6-icmp", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("ipv6-route", 43),
    ("ospf", 89),
    ("pgm", 113),
    ("rsvp", 46),
    ("sctp", 132),
    ("tcp", 6),
    ("udp", 17),
    ("udplite", 136),
    ("vrrp", 112),
];

/// IP protocol numbers whose rules take port ranges (tcp, udp, sctp, dccp, udplite).
const PORT_PROTOCOLS: [u8; 5] = [6, 17, 132, 33, 136];
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// The IANA number of a rule's protocol string: a name from [`PROTOCOLS`] (lowercase) or a decimal
/// number 0..=255 without sign or leading zeros.
pub fn protocol_number(protocol: &str) -> Option<u8> {
    if let Some((_, n)) = PROTOCOLS.iter().find(|(name, _)| *name == protocol) {
        return Some(*n);
    }
    let n: u8 = protocol.parse().ok()?;
    (n.to_string() == protocol).then_some(n)
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroupRule {
    #[serde(default)]
    pub id: String,
    /// The owning group; empty or equal to the group's id.
    #[serde(default)]
    pub security_group_id: String,
    pub direction: Direction,
    #[serde(default)]
    pub ethertype: EtherType,
    /// `None`: any protocol.
    #[serde(default)]
    pub protocol: Option<String>,
    /// tcp/udp/sctp/dccp/udplite: first port; icmp/icmpv6: ICMP type.
    #[serde(default)]
    pub port_range_min: Option<u16>,
    /// tcp/udp/sctp/dccp/udplite: last port; icmp/icmpv6: ICMP code.
    #[serde(default)]
    pub port_range_max: Option<u16>,
    #[serde(default, deserialize_with = "crate::de::opt_net")]
    pub remote_ip_prefix: Option<IpNet>,
    #[serde(default)]
    pub remote_group_id: Option<String>,
    #[serde(default)]
    pub description: String,
}

impl SecurityGroupRule {
    /// A rule matching every protocol from anywhere, in `direction`.
    pub fn new(direction: Direction, ethertype: EtherType) -> Self {
        SecurityGroupRule {
            id: String::new(),
            security_group_id: String::new(),
            direction,
            ethertype,
            protocol: None,
            port_range_min: None,
            port_range_max: None,
            remote_ip_prefix: None,
            remote_group_id: None,
            description: String::new(),
        }
    }

    /// The IANA protocol number, `None` for "any" (or an invalid protocol).
    pub fn protocol_number(&self) -> Option<u8> {
        self.protocol.as_deref().and_then(protocol_number)
    }

    /// Checks the rule on its own; field names are the rule's own (`port_range_min`, ...).
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.check("")
    }

    fn check(&self, prefix: &str) -> Result<(), ValidationError> {
        let k = Kind::SecurityGroup;
        let f = |name: &str| format!("{prefix}{name}");
        if !self.id.is_empty() {
            validate_id(k, &f("id"), &self.id)?;
        }
        if !self.security_group_id.is_empty() {
            validate_id(k, &f("security_group_id"), &self.security_group_id)?;
        }
        text(k, &f("description"), &self.description)?;

        let proto = match &self.protocol {
            None => None,
            Some(p) => Some(protocol_number(p).ok_or_else(|| {
                ValidationError::new(
                    k,
                    f("protocol"),
                    p,
                    format!(
                        "unknown protocol; use a number 0-255 or one of: {}",
                        PROTOCOLS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                    ),
                )
            })?),
        };
        if proto == Some(ICMPV6) && self.ethertype == EtherType::IPv4 {
            return Err(ValidationError::new(
                k,
                f("protocol"),
                self.protocol.as_deref().unwrap_or_default(),
                "ICMPv6 conflicts with ethertype IPv4",
            ));
        }

        let (min, max) = (self.port_range_min, self.port_range_max);
        if let (None, Some(max)) = (min, max) {
            return Err(ValidationError::new(
                k,
                f("port_range_max"),
                max,
                "port_range_max needs port_range_min",
            ));
        }
        match proto {
            Some(p) if PORT_PROTOCOLS.contains(&p) => {
                for (name, v) in [("port_range_min", min), ("port_range_max", max)] {
                    if v == Some(0) {
                        return Err(ValidationError::new(k, f(name), 0, "port must be between 1 and 65535"));
                    }
                }
                if let (Some(lo), Some(hi)) = (min, max) {
                    if lo > hi {
                        return Err(ValidationError::new(
                            k,
                            f("port_range_min"),
                            lo,
                            format!("greater than port_range_max {hi}"),
                        ));
                    }
                }
            }
            Some(ICMP | ICMPV6) => {
                for (name, what, v) in
                    [("port_range_min", "ICMP type", min), ("port_range_max", "ICMP code", max)]
                {
                    if let Some(v) = v.filter(|v| *v > 255) {
                        return Err(ValidationError::new(
                            k,
                            f(name),
                            v,
                            format!("{what} must be between 0 and 255"),
                        ));
                    }
                }
            }
            _ => {
                if let Some(v) = min {
                    return Err(ValidationError::new(
                        k,
                        f("port_range_min"),
                        v,
                        match &self.protocol {
                            None => "a port range needs a protocol".to_string(),
                            Some(p) => format!(
                                "protocol {p} takes no port range (only tcp, udp, sctp, dccp, \
                                 udplite, and ICMP type/code for icmp, icmpv6)"
                            ),
                        },
                    ));
                }
            }
        }

        if let Some(prefix_net) = &self.remote_ip_prefix {
            network_cidr(k, &f("remote_ip_prefix"), prefix_net)?;
            let fam = net_family(prefix_net);
            let want = match self.ethertype {
                EtherType::IPv4 => "IPv4",
                EtherType::IPv6 => "IPv6",
            };
            if fam != want {
                return Err(ValidationError::new(
                    k,
                    f("remote_ip_prefix"),
                    prefix_net,
                    format!("{fam} prefix conflicts with ethertype {want}"),
                ));
            }
        }
        if let Some(g) = &self.remote_group_id {
            validate_id(k, &f("remote_group_id"), g)?;
            if self.remote_ip_prefix.is_some() {
                return Err(ValidationError::new(
                    k,
                    f("remote_group_id"),
                    g,
                    "remote_group_id and remote_ip_prefix are mutually exclusive",
                ));
            }
        }
        Ok(())
    }

    /// The rule without its identity (id, group, description): two rules with equal matches are
    /// duplicates.
    fn match_part(&self) -> SecurityGroupRule {
        SecurityGroupRule {
            id: String::new(),
            security_group_id: String::new(),
            description: String::new(),
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroup {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub project_id: String,
    #[serde(default = "default_true")]
    pub stateful: bool,
    #[serde(default)]
    pub security_group_rules: Vec<SecurityGroupRule>,
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

impl Default for SecurityGroup {
    fn default() -> Self {
        SecurityGroup {
            id: String::new(),
            name: String::new(),
            description: String::new(),
            project_id: String::new(),
            stateful: true,
            security_group_rules: Vec::new(),
            unique_key: 0,
            revision_number: 0,
            created_at: None,
            updated_at: None,
        }
    }
}

fn validate(g: &SecurityGroup) -> Result<(), ValidationError> {
    let k = Kind::SecurityGroup;
    own_id(k, &g.id)?;
    common_text(k, &g.name, &g.description, &g.project_id)?;
    at_most(
        k,
        "security_group_rules",
        g.security_group_rules.len(),
        MAX_SECURITY_GROUP_RULES,
        format!("A security group has at most {MAX_SECURITY_GROUP_RULES} rules"),
    )?;
    let mut ids = HashSet::new();
    let mut matches = HashSet::new();
    for (i, rule) in g.security_group_rules.iter().enumerate() {
        let prefix = format!("security_group_rules[{i}].");
        rule.check(&prefix)?;
        if !g.id.is_empty() && !rule.security_group_id.is_empty() && rule.security_group_id != g.id {
            return Err(ValidationError::new(
                k,
                format!("{prefix}security_group_id"),
                &rule.security_group_id,
                format!("rule belongs to group {:?}", g.id),
            ));
        }
        if !rule.id.is_empty() && !ids.insert(&rule.id) {
            return Err(ValidationError::new(k, format!("{prefix}id"), &rule.id, "duplicate rule id"));
        }
        if !matches.insert(rule.match_part()) {
            return Err(ValidationError::new(
                k,
                format!("security_group_rules[{i}]"),
                &rule.id,
                "duplicate rule (same direction, ethertype, protocol, ports and remote)",
            ));
        }
    }
    Ok(())
}

impl_resource!(SecurityGroup, SecurityGroup, unique_key, validate);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    const MIN: &str = r#"{"name":"default"}"#;
    const FULL: &str = r#"{
        "id": "sg-1", "name": "web", "description": "d", "project_id": "p1", "stateful": false,
        "security_group_rules": [
            {"id": "r1", "security_group_id": "sg-1", "direction": "ingress", "ethertype": "IPv4",
             "protocol": "tcp", "port_range_min": 80, "port_range_max": 443,
             "remote_ip_prefix": "0.0.0.0/0", "remote_group_id": null, "description": "web"},
            {"id": "r2", "security_group_id": "sg-1", "direction": "egress", "ethertype": "IPv6",
             "protocol": null, "port_range_min": null, "port_range_max": null,
             "remote_ip_prefix": null, "remote_group_id": "sg-1", "description": ""},
            {"id": "r3", "security_group_id": "", "direction": "ingress", "ethertype": "IPv6",
             "protocol": "ipv6-icmp", "port_range_min": 128, "port_range_max": 0,
             "remote_ip_prefix": "fd00::/8", "remote_group_id": null, "description": ""}
        ],
        "unique_key": 4, "revision_number": 1, "created_at": null, "updated_at": null
    }"#;

    /// A group holding one rule: `{"direction": "ingress"}` merged with `rule`.
    fn group(rule: &str) -> String {
        format!(r#"{{"id": "sg", "security_group_rules": [{}]}}"#, with(r#"{"direction": "ingress"}"#, rule))
    }

    fn bad_rule(rule: &str, field: &str, value: &str) {
        invalid::<SecurityGroup>(&group(rule), "{}", &format!("security_group_rules[0].{field}"), value);
    }

    fn good_rule(rule: &str) {
        valid::<SecurityGroup>(&group(rule));
    }

    #[test]
    fn minimal_parses() {
        let g: SecurityGroup = valid(MIN);
        assert!(g.stateful && g.security_group_rules.is_empty());
        let r: SecurityGroupRule = serde_json::from_str(r#"{"direction":"egress"}"#).unwrap();
        assert_eq!(r, SecurityGroupRule::new(Direction::Egress, EtherType::IPv4));
        r.validate().unwrap();
    }

    #[test]
    fn full_round_trips() {
        round_trip::<SecurityGroup>(FULL);
    }

    #[test]
    fn unknown_field_rejected() {
        rejects_unknown_field::<SecurityGroup>(MIN);
        let e =
            SecurityGroup::from_json(&group(r#"{"remote_address_group_id": "x"}"#)).unwrap_err().to_string();
        assert!(e.contains("remote_address_group_id"), "{e}");
        unparsable::<SecurityGroup>(r#"{"security_group_rules": [{}]}"#, "{}", "direction");
        unparsable::<SecurityGroup>(&group(r#"{"direction": "sideways"}"#), "{}", "sideways");
        unparsable::<SecurityGroup>(&group(r#"{"ethertype": "ipv4"}"#), "{}", "ipv4");
        unparsable::<SecurityGroup>(&group(r#"{"port_range_min": 70000}"#), "{}", "70000");
        unparsable::<SecurityGroup>(&group(r#"{"remote_ip_prefix": "x"}"#), "{}", "\"x\"");
    }

    #[test]
    fn protocols() {
        assert_eq!(protocol_number("tcp"), Some(6));
        assert_eq!(protocol_number("58"), Some(58));
        assert_eq!(protocol_number("0"), Some(0));
        for bad in ["256", "-1", "+6", "06", "TCP", "", "tcp "] {
            assert_eq!(protocol_number(bad), None, "{bad}");
        }
        good_rule(r#"{"protocol": "132", "port_range_min": 1, "port_range_max": 65535}"#);
        good_rule(r#"{"protocol": "icmp", "port_range_min": 8}"#);
        good_rule(r#"{"protocol": "icmp", "port_range_min": 0, "port_range_max": 0}"#);
        good_rule(r#"{"protocol": "tcp", "port_range_min": 22}"#);
        good_rule(r#"{"protocol": "gre"}"#);
        good_rule(r#"{"ethertype": "IPv6", "protocol": "icmp"}"#);
    }

    #[test]
    fn rule_rules() {
        bad_rule(r#"{"protocol": "foo"}"#, "protocol", "foo");
        bad_rule(r#"{"protocol": "300"}"#, "protocol", "300");
        bad_rule(r#"{"protocol": "icmpv6"}"#, "protocol", "icmpv6");
        bad_rule(
            r#"{"protocol": "tcp", "port_range_min": 100, "port_range_max": 99}"#,
            "port_range_min",
            "100",
        );
        bad_rule(r#"{"protocol": "udp", "port_range_min": 0}"#, "port_range_min", "0");
        bad_rule(r#"{"protocol": "tcp", "port_range_max": 80}"#, "port_range_max", "80");
        bad_rule(r#"{"protocol": "icmp", "port_range_min": 256}"#, "port_range_min", "256");
        bad_rule(
            r#"{"protocol": "icmp", "port_range_min": 3, "port_range_max": 256}"#,
            "port_range_max",
            "256",
        );
        bad_rule(r#"{"protocol": "icmp", "port_range_max": 1}"#, "port_range_max", "1");
        bad_rule(r#"{"protocol": "gre", "port_range_min": 1}"#, "port_range_min", "1");
        bad_rule(r#"{"port_range_min": 22}"#, "port_range_min", "22");
        bad_rule(r#"{"remote_ip_prefix": "10.0.0.1/8"}"#, "remote_ip_prefix", "10.0.0.1/8");
        bad_rule(r#"{"remote_ip_prefix": "fd00::/8"}"#, "remote_ip_prefix", "fd00::/8");
        bad_rule(r#"{"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": "sg"}"#, "remote_group_id", "sg");
        bad_rule(r#"{"remote_group_id": ""}"#, "remote_group_id", "");
        bad_rule(r#"{"security_group_id": "other"}"#, "security_group_id", "other");
        bad_rule(r#"{"id": "a/b"}"#, "id", "a/b");
        let standalone: SecurityGroupRule =
            serde_json::from_str(r#"{"direction":"ingress","protocol":"tcp","port_range_min":0}"#).unwrap();
        assert_eq!(standalone.validate().unwrap_err().field, "port_range_min");
    }

    #[test]
    fn rule_limit() {
        let rules = |n: usize| {
            let v: Vec<String> = (0..n)
                .map(|i| {
                    format!(r#"{{"direction": "ingress", "protocol": "tcp", "port_range_min": {}}}"#, i + 1)
                })
                .collect();
            format!(r#"{{"security_group_rules": [{}]}}"#, v.join(","))
        };
        valid::<SecurityGroup>(&rules(MAX_SECURITY_GROUP_RULES));
        invalid::<SecurityGroup>(
            &rules(MAX_SECURITY_GROUP_RULES + 1),
            "{}",
            "security_group_rules",
            "1001 entries",
        );
        bad_rule(r#"{"description": "\u0000"}"#, "description", "\\0");
    }

    #[test]
    fn duplicate_rules() {
        let two = r#"{"security_group_rules": [
            {"id": "a", "direction": "ingress", "protocol": "tcp", "port_range_min": 22},
            {"id": "b", "direction": "ingress", "protocol": "tcp", "port_range_min": 22}]}"#;
        invalid::<SecurityGroup>(two, "{}", "security_group_rules[1]", "b");
        let same_id = r#"{"security_group_rules": [
            {"id": "a", "direction": "ingress"}, {"id": "a", "direction": "egress"}]}"#;
        invalid::<SecurityGroup>(same_id, "{}", "security_group_rules[1].id", "a");
    }
}
