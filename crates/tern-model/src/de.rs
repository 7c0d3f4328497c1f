//! Deserializers for address fields whose error messages quote the bad value (serde's own say only
//! "invalid IP address syntax"), and for JSON-object fields where Neutron clients may send `null`.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

fn parse_ip<E: serde::de::Error>(s: &str) -> Result<IpAddr, E> {
    s.parse().map_err(|_| E::custom(format!("invalid IP address {s:?}")))
}

fn parse_net<E: serde::de::Error>(s: &str) -> Result<IpNet, E> {
    s.parse().map_err(|_| {
        E::custom(format!("invalid CIDR {s:?} (expected address/prefix-length, e.g. \"10.0.0.0/24\")"))
    })
}

pub(crate) fn ip<'de, D: Deserializer<'de>>(d: D) -> Result<IpAddr, D::Error> {
    parse_ip(&String::deserialize(d)?)
}

pub(crate) fn opt_ip<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
    Option::<String>::deserialize(d)?.map(|s| parse_ip(&s)).transpose()
}

pub(crate) fn vec_ip<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpAddr>, D::Error> {
    Vec::<String>::deserialize(d)?.iter().map(|s| parse_ip(s)).collect()
}

pub(crate) fn net<'de, D: Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
    parse_net(&String::deserialize(d)?)
}

pub(crate) fn opt_net<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpNet>, D::Error> {
    Option::<String>::deserialize(d)?.map(|s| parse_net(&s)).transpose()
}

/// A JSON object; `null` reads as `{}` (Neutron accepts `"binding:profile": null`).
pub(crate) fn object_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(D::Error::custom(format!("invalid type: expected a JSON object, found {other}"))),
    }
}

/// A string that must be a JSON string, where `null` reads as `""`.
pub(crate) fn string_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}
