//! [`Object`]: any northbound object, when its kind is known only at run time.

use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::chassis::Chassis;
use crate::error::{ModelError, ValidationError};
use crate::floatingip::FloatingIp;
use crate::kind::Kind;
use crate::migration::Migration;
use crate::network::Network;
use crate::port::Port;
use crate::port_binding::PortBinding;
use crate::resource::Resource;
use crate::router::Router;
use crate::security_group::SecurityGroup;
use crate::subnet::Subnet;

/// One object of any kind. Its JSON form is the inner object's (no tag: the kind travels beside it,
/// e.g. in the store key).
#[derive(Debug, Clone, PartialEq)]
// Ports are the largest kind and the most common one; boxing them would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Object {
    Network(Network),
    Subnet(Subnet),
    Port(Port),
    Router(Router),
    FloatingIp(FloatingIp),
    SecurityGroup(SecurityGroup),
    Chassis(Chassis),
    Migration(Migration),
    PortBinding(PortBinding),
}

/// Runs `$body` with `$v` bound to the inner value, whatever the variant.
macro_rules! dispatch {
    ($obj:expr, $v:ident => $body:expr) => {
        match $obj {
            Object::Network($v) => $body,
            Object::Subnet($v) => $body,
            Object::Port($v) => $body,
            Object::Router($v) => $body,
            Object::FloatingIp($v) => $body,
            Object::SecurityGroup($v) => $body,
            Object::Chassis($v) => $body,
            Object::Migration($v) => $body,
            Object::PortBinding($v) => $body,
        }
    };
}

fn parse<T: Resource>(json: &str) -> Result<Object, ModelError> {
    T::from_json(json).map(T::into_object)
}

fn parse_slice<T: Resource>(json: &[u8]) -> Result<Object, ModelError> {
    T::from_json_slice(json).map(T::into_object)
}

fn parse_value<T: Resource>(json: Value) -> Result<Object, ModelError> {
    T::from_json_value(json).map(T::into_object)
}

/// Calls `$f::<T>($arg)` for the Rust type `T` of `$kind`.
macro_rules! by_kind {
    ($kind:expr, $f:ident($arg:expr)) => {
        match $kind {
            Kind::Network => $f::<Network>($arg),
            Kind::Subnet => $f::<Subnet>($arg),
            Kind::Port => $f::<Port>($arg),
            Kind::Router => $f::<Router>($arg),
            Kind::FloatingIp => $f::<FloatingIp>($arg),
            Kind::SecurityGroup => $f::<SecurityGroup>($arg),
            Kind::Chassis => $f::<Chassis>($arg),
            Kind::Migration => $f::<Migration>($arg),
            Kind::PortBinding => $f::<PortBinding>($arg),
        }
    };
}

impl Object {
    /// Parses (does not validate) the JSON form of an object of `kind`. Malformed JSON, unknown or
    /// missing fields and wrong types give [`ModelError::Json`], whose message names the field or
    /// value and the line and column.
    pub fn from_json(kind: Kind, json: &str) -> Result<Object, ModelError> {
        by_kind!(kind, parse(json))
    }

    /// [`from_json`](Object::from_json) for bytes (as the store holds them).
    pub fn from_json_slice(kind: Kind, json: &[u8]) -> Result<Object, ModelError> {
        by_kind!(kind, parse_slice(json))
    }

    /// [`from_json`](Object::from_json) for an already-parsed JSON value (no line/column then).
    pub fn from_json_value(kind: Kind, json: Value) -> Result<Object, ModelError> {
        by_kind!(kind, parse_value(json))
    }

    /// Parses and validates.
    pub fn from_json_validated(kind: Kind, json: &str) -> Result<Object, ModelError> {
        let obj = Object::from_json(kind, json)?;
        obj.validate()?;
        Ok(obj)
    }

    /// The JSON form as a value (every field present).
    pub fn to_json_value(&self) -> Value {
        // Cannot fail: every map in these types has string keys.
        dispatch!(self, v => serde_json::to_value(v).unwrap_or(Value::Null))
    }

    /// The JSON form as compact text.
    pub fn to_json(&self) -> String {
        dispatch!(self, v => serde_json::to_string(v).unwrap_or_default())
    }

    /// The JSON form as compact bytes.
    pub fn to_json_vec(&self) -> Vec<u8> {
        dispatch!(self, v => serde_json::to_vec(v).unwrap_or_default())
    }

    pub fn kind(&self) -> Kind {
        match self {
            Object::Network(_) => Kind::Network,
            Object::Subnet(_) => Kind::Subnet,
            Object::Port(_) => Kind::Port,
            Object::Router(_) => Kind::Router,
            Object::FloatingIp(_) => Kind::FloatingIp,
            Object::SecurityGroup(_) => Kind::SecurityGroup,
            Object::Chassis(_) => Kind::Chassis,
            Object::Migration(_) => Kind::Migration,
            Object::PortBinding(_) => Kind::PortBinding,
        }
    }

    pub fn id(&self) -> &str {
        dispatch!(self, v => v.id())
    }

    pub fn set_id(&mut self, id: String) {
        dispatch!(self, v => v.set_id(id))
    }

    /// The store key of this object.
    pub fn key(&self) -> String {
        crate::key::key(self.kind(), self.id())
    }

    pub fn revision_number(&self) -> u64 {
        dispatch!(self, v => v.revision_number())
    }

    pub fn set_revision_number(&mut self, revision: u64) {
        dispatch!(self, v => v.set_revision_number(revision))
    }

    pub fn unique_key(&self) -> Option<u32> {
        dispatch!(self, v => v.unique_key())
    }

    pub fn set_unique_key(&mut self, key: u32) {
        dispatch!(self, v => v.set_unique_key(key))
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        dispatch!(self, v => v.validate())
    }

    pub fn default_id(&self) -> Option<String> {
        dispatch!(self, v => v.default_id())
    }

    /// The inner value if it is a `T`.
    pub fn into_inner<T: Resource>(self) -> Option<T> {
        T::from_object(self)
    }
}

impl Serialize for Object {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        dispatch!(self, v => v.serialize(serializer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The minimal JSON of each kind.
    fn minimal(kind: Kind) -> &'static str {
        match kind {
            Kind::Network => r#"{"name":"n1"}"#,
            Kind::Subnet => r#"{"network_id":"n","ip_version":4,"cidr":"10.0.0.0/24"}"#,
            Kind::Port => r#"{"network_id":"n"}"#,
            Kind::Router => r#"{}"#,
            Kind::FloatingIp => r#"{"floating_network_id":"ext"}"#,
            Kind::SecurityGroup => r#"{}"#,
            Kind::Chassis => r#"{"id":"c1","tunnel_ip":"192.0.2.1"}"#,
            Kind::Migration => r#"{"port_id":"p","source":"c1","destination":"c2"}"#,
            Kind::PortBinding => r#"{"port_id":"p","host":"c1"}"#,
        }
    }

    #[test]
    fn every_kind_dispatches() {
        for kind in Kind::ALL {
            let mut obj = Object::from_json_validated(kind, minimal(kind)).unwrap();
            assert_eq!(obj.kind(), kind);
            assert_eq!(obj.unique_key().is_some(), kind.has_unique_key());
            obj.set_unique_key(42);
            assert_eq!(obj.unique_key(), kind.has_unique_key().then_some(42));
            obj.set_revision_number(7);
            assert_eq!(obj.revision_number(), 7);
            match kind {
                Kind::PortBinding => assert_eq!(obj.default_id().as_deref(), Some("p@c1")),
                Kind::Migration => assert_eq!(obj.default_id().as_deref(), Some("p")),
                _ => assert_eq!(obj.default_id(), None),
            }
            if obj.id().is_empty() {
                let id = obj.default_id().unwrap_or_else(crate::generate_id);
                obj.set_id(id);
            }
            obj.validate().unwrap();
            assert_eq!(crate::parse_key(&obj.key()), Some((kind, obj.id())));
            let again = Object::from_json(kind, &obj.to_json()).unwrap();
            assert_eq!(again, obj);
            let again = Object::from_json_slice(kind, &obj.to_json_vec()).unwrap();
            assert_eq!(again, obj);
            let again = Object::from_json_value(kind, obj.to_json_value()).unwrap();
            assert_eq!(again, obj);
            assert_eq!(serde_json::to_value(&obj).unwrap(), obj.to_json_value());
        }
    }

    #[test]
    fn into_inner() {
        let obj = Object::from_json(Kind::Port, r#"{"network_id":"n"}"#).unwrap();
        assert!(obj.clone().into_inner::<Network>().is_none());
        assert_eq!(obj.into_inner::<Port>().unwrap().network_id, "n");
        assert_eq!(Object::from(Network::default()).kind(), Kind::Network);
    }

    #[test]
    fn json_errors_name_the_problem() {
        let e = Object::from_json(Kind::Network, r#"{"name":"n1","colour":"red"}"#).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, ModelError::Json { kind: Kind::Network, .. }));
        assert!(msg.contains("network") && msg.contains("colour") && msg.contains("line 1"), "{msg}");

        let e = Object::from_json(Kind::Network, "{\n\"mtu\": \"big\"}").unwrap_err().to_string();
        assert!(e.contains("invalid type") && e.contains("line 2"), "{e}");

        let e = Object::from_json(Kind::Port, "{").unwrap_err().to_string();
        assert!(e.contains("EOF"), "{e}");

        let e = Object::from_json(Kind::Port, "{}").unwrap_err().to_string();
        assert!(e.contains("missing field `network_id`"), "{e}");

        for not_object in ["[]", "[\"id\"]", " 5", "null", "\"x\"", ""] {
            let e = Object::from_json(Kind::Network, not_object).unwrap_err().to_string();
            assert!(e.starts_with("invalid network JSON"), "{e}");
        }
        let e = Object::from_json(Kind::Network, "\n [1]").unwrap_err().to_string();
        assert!(e.contains("invalid type") && e.contains("line 2"), "{e}");
        let e = Object::from_json_value(Kind::Router, Value::from(3)).unwrap_err().to_string();
        assert!(e.contains("expected a JSON object"), "{e}");

        let e =
            Object::from_json_validated(Kind::Port, r#"{"network_id":"n","mac_address":"x"}"#).unwrap_err();
        assert!(matches!(e, ModelError::Invalid(ref v) if v.field == "mac_address"), "{e}");
    }

    /// Field names of every kind, nested ones included, so generated objects hit real fields.
    const FIELDS: &[&str] = &[
        "id",
        "name",
        "description",
        "project_id",
        "admin_state_up",
        "status",
        "shared",
        "router:external",
        "mtu",
        "segmentation_id",
        "unique_key",
        "port_security_enabled",
        "subnets",
        "revision_number",
        "created_at",
        "updated_at",
        "network_id",
        "ip_version",
        "cidr",
        "gateway_ip",
        "allocation_pools",
        "start",
        "end",
        "enable_dhcp",
        "dns_nameservers",
        "host_routes",
        "destination",
        "nexthop",
        "mac_address",
        "fixed_ips",
        "subnet_id",
        "ip_address",
        "device_id",
        "device_owner",
        "binding:host_id",
        "binding:vif_type",
        "binding:vnic_type",
        "binding:profile",
        "binding:vif_details",
        "security_groups",
        "allowed_address_pairs",
        "external_gateway_info",
        "enable_snat",
        "external_fixed_ips",
        "routes",
        "interfaces",
        "port_id",
        "floating_ip_address",
        "floating_network_id",
        "fixed_ip_address",
        "router_id",
        "stateful",
        "security_group_rules",
        "security_group_id",
        "direction",
        "ethertype",
        "protocol",
        "port_range_min",
        "port_range_max",
        "remote_ip_prefix",
        "remote_group_id",
        "hostname",
        "tunnel_ip",
        "tunnel_types",
        "external_ip",
        "bridge",
        "version",
        "registered_at",
        "host",
        "vif_type",
        "vnic_type",
        "profile",
        "vif_details",
        "epoch",
        "source",
        "state",
        "activated_by",
        "timestamps",
        "started_at_ns",
        "activated_at_ns",
    ];

    fn json_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (0u64..300).prop_map(Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            prop_oneof![
                Just("10.0.0.0/24"),
                Just("10.0.0.1"),
                Just("10.0.0.255"),
                Just("0.0.0.0/0"),
                Just("fd00::/64"),
                Just("fd00::1"),
                Just("::"),
                Just("255.255.255.255"),
                Just("fa:16:3e:00:00:01"),
                Just("01:00:5e:00:00:01"),
                Just("tcp"),
                Just("icmp"),
                Just("ipv6-icmp"),
                Just("IPv4"),
                Just("IPv6"),
                Just("ingress"),
                Just("egress"),
                Just("ACTIVE"),
                Just("DOWN"),
                Just("INACTIVE"),
                Just("normal"),
                Just("geneve"),
                Just("dest_plugged"),
                Just("activated"),
                Just("rarp"),
                Just(""),
                Just("a/b"),
                Just("n"),
                Just("c1"),
                Just("c2"),
                Just("p"),
            ]
            .prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        json_leaf().prop_recursive(3, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((prop::sample::select(FIELDS), inner), 0..8)
                    .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
            ]
        })
    }

    /// A minimal valid object of some kind with a few fields replaced by generated values.
    fn mutated_object() -> impl Strategy<Value = (Kind, String)> {
        (
            prop::sample::select(Kind::ALL.to_vec()),
            prop::collection::vec((prop::sample::select(FIELDS), json_value()), 0..4),
        )
            .prop_map(|(kind, changes)| {
                let mut v: Value = serde_json::from_str(minimal(kind)).unwrap_or(Value::Null);
                if let Value::Object(m) = &mut v {
                    for (k, val) in changes {
                        m.insert(k.to_string(), val);
                    }
                }
                (kind, v.to_string())
            })
    }

    /// Exercises everything that takes an object, on whatever parsed.
    fn exercise(kind: Kind, json: &str) {
        if let Ok(obj) = Object::from_json(kind, json) {
            let _ = obj.validate();
            let _ = obj.default_id();
            let _ = obj.to_json_value();
            if let Object::Subnet(s) = &obj {
                let _ = crate::allocate_ip(s, &std::collections::HashSet::new());
                let port = crate::Port::new(s.network_id.clone());
                let _ = crate::check_fixed_ips(&port, std::slice::from_ref(s));
            }
            if let Object::Port(p) = &obj {
                let s = crate::Subnet::new(p.network_id.clone(), "10.0.0.0/24".parse().unwrap());
                let _ = crate::check_fixed_ips(p, &[s]);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn never_panics_on_arbitrary_strings(s in ".{0,64}") {
            for kind in Kind::ALL {
                exercise(kind, &s);
            }
        }

        #[test]
        fn never_panics_on_json_ish_input(v in json_value()) {
            let s = v.to_string();
            for kind in Kind::ALL {
                exercise(kind, &s);
            }
        }

        #[test]
        fn never_panics_on_mutated_objects((kind, json) in mutated_object()) {
            exercise(kind, &json);
        }
    }
}
