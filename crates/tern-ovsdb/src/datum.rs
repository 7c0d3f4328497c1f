//! The OVSDB data model (RFC 7047 section 5.1) in serde_json terms: atoms, `["set", [...]]`,
//! `["map", [[k, v], ...]]`, `["uuid", "..."]`, `["named-uuid", "..."]`. Builders produce the wire
//! form; readers accept every form the server may send (a one-element set may be a bare atom)
//! and never panic: malformed input reads as empty / `None`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use uuid::Uuid;

/// A row: column name -> datum in wire form.
pub type Row = Map<String, Value>;

/// One OVSDB atom.
#[derive(Debug, Clone, PartialEq)]
pub enum Atom {
    Integer(i64),
    Real(f64),
    Boolean(bool),
    String(String),
    Uuid(Uuid),
    NamedUuid(String),
}

impl Atom {
    /// The wire form.
    pub fn to_json(&self) -> Value {
        match self {
            Atom::Integer(i) => json!(i),
            Atom::Real(r) => json!(r),
            Atom::Boolean(b) => json!(b),
            Atom::String(s) => json!(s),
            Atom::Uuid(u) => uuid(u),
            Atom::NamedUuid(n) => named_uuid(n),
        }
    }

    /// Reads one atom; `None` for sets, maps and anything malformed.
    pub fn from_json(v: &Value) -> Option<Atom> {
        match v {
            Value::Bool(b) => Some(Atom::Boolean(*b)),
            Value::String(s) => Some(Atom::String(s.clone())),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Some(Atom::Integer(i)),
                None => n.as_f64().map(Atom::Real),
            },
            Value::Array(a) => match (a.first().and_then(Value::as_str), a.get(1), a.len()) {
                (Some("uuid"), Some(Value::String(s)), 2) => Uuid::parse_str(s).ok().map(Atom::Uuid),
                (Some("named-uuid"), Some(Value::String(s)), 2) => Some(Atom::NamedUuid(s.clone())),
                _ => None,
            },
            _ => None,
        }
    }
}

impl From<&str> for Atom {
    fn from(s: &str) -> Self {
        Atom::String(s.to_string())
    }
}
impl From<String> for Atom {
    fn from(s: String) -> Self {
        Atom::String(s)
    }
}
impl From<i64> for Atom {
    fn from(i: i64) -> Self {
        Atom::Integer(i)
    }
}
impl From<bool> for Atom {
    fn from(b: bool) -> Self {
        Atom::Boolean(b)
    }
}
impl From<Uuid> for Atom {
    fn from(u: Uuid) -> Self {
        Atom::Uuid(u)
    }
}

/// `["uuid", "<uuid>"]`.
pub fn uuid(u: &Uuid) -> Value {
    json!(["uuid", u.to_string()])
}

/// `["named-uuid", "<name>"]`: refers to a row inserted earlier in the same transaction.
pub fn named_uuid(name: &str) -> Value {
    json!(["named-uuid", name])
}

/// `["set", [...]]` of already encoded atoms.
pub fn set<I: IntoIterator<Item = Value>>(atoms: I) -> Value {
    json!(["set", atoms.into_iter().collect::<Vec<_>>()])
}

/// The empty set `["set", []]` (also how an optional column says "no value").
pub fn empty_set() -> Value {
    json!(["set", []])
}

/// A set of strings.
pub fn str_set<I, S>(items: I) -> Value
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    set(items.into_iter().map(|s| Value::String(s.into())))
}

/// `["map", [[k, v], ...]]` of already encoded atoms.
pub fn map<I: IntoIterator<Item = (Value, Value)>>(pairs: I) -> Value {
    json!(["map", pairs.into_iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>()])
}

/// A string -> string map (`external_ids`, `options`, `other_config`).
pub fn str_map<I, K, V>(pairs: I) -> Value
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    map(pairs.into_iter().map(|(k, v)| (Value::String(k.into()), Value::String(v.into()))))
}

/// Builds a [`Row`] from `(column, datum)` pairs.
pub fn row<I, K>(columns: I) -> Row
where
    I: IntoIterator<Item = (K, Value)>,
    K: Into<String>,
{
    columns.into_iter().map(|(k, v)| (k.into(), v)).collect()
}

/// The elements of a set datum: `["set", [...]]` gives its elements, a bare atom gives itself,
/// anything else (a map, malformed input) gives nothing.
pub fn set_elems(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => match a.first().and_then(Value::as_str) {
            Some("set") => match a.get(1) {
                Some(Value::Array(items)) if a.len() == 2 => items.iter().collect(),
                _ => Vec::new(),
            },
            Some("uuid") | Some("named-uuid") if a.len() == 2 => vec![v],
            _ => Vec::new(),
        },
        Value::Null | Value::Object(_) => Vec::new(),
        _ => vec![v],
    }
}

/// The pairs of a map datum `["map", [[k, v], ...]]`; anything else gives nothing.
pub fn map_pairs(v: &Value) -> Vec<(&Value, &Value)> {
    let mut out = Vec::new();
    if let Value::Array(a) = v {
        if a.len() == 2 && a[0].as_str() == Some("map") {
            if let Value::Array(pairs) = &a[1] {
                for p in pairs {
                    if let Value::Array(kv) = p {
                        if kv.len() == 2 {
                            out.push((&kv[0], &kv[1]));
                        }
                    }
                }
            }
        }
    }
    out
}

/// A string -> string map datum (non-string entries are skipped).
pub fn read_str_map(v: &Value) -> BTreeMap<String, String> {
    map_pairs(v)
        .into_iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
        .collect()
}

/// A uuid atom `["uuid", "..."]`.
pub fn read_uuid(v: &Value) -> Option<Uuid> {
    match Atom::from_json(v)? {
        Atom::Uuid(u) => Some(u),
        _ => None,
    }
}

/// A set of uuids (a bare uuid atom counts as a one-element set).
pub fn read_uuid_set(v: &Value) -> Vec<Uuid> {
    set_elems(v).into_iter().filter_map(read_uuid).collect()
}

/// A set of strings.
pub fn read_str_set(v: &Value) -> Vec<String> {
    set_elems(v).into_iter().filter_map(|a| a.as_str().map(str::to_string)).collect()
}

/// An optional string (a set of at most one string).
pub fn read_opt_str(v: &Value) -> Option<String> {
    set_elems(v).into_iter().find_map(|a| a.as_str().map(str::to_string))
}

/// An optional integer (a set of at most one integer).
pub fn read_opt_int(v: &Value) -> Option<i64> {
    set_elems(v).into_iter().find_map(Value::as_i64)
}

/// Column `name` of a row, or the empty set when the row lacks it.
pub fn column<'a>(row: &'a Row, name: &str) -> &'a Value {
    static EMPTY: Value = Value::Null;
    row.get(name).unwrap_or(&EMPTY)
}

/// The row's `_uuid` column.
pub fn row_uuid(row: &Row) -> Option<Uuid> {
    row.get("_uuid").and_then(read_uuid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoms_round_trip() {
        let u = Uuid::new_v4();
        for a in [
            Atom::Integer(-3),
            Atom::Real(1.5),
            Atom::Boolean(true),
            Atom::String("x".into()),
            Atom::Uuid(u),
            Atom::NamedUuid("row1".into()),
        ] {
            assert_eq!(Atom::from_json(&a.to_json()), Some(a));
        }
        assert_eq!(Atom::from_json(&json!(["uuid", "not-a-uuid"])), None);
        assert_eq!(Atom::from_json(&json!(["set", []])), None);
        assert_eq!(Atom::from_json(&json!(null)), None);
    }

    #[test]
    fn sets_accept_bare_atoms() {
        assert_eq!(read_str_set(&json!("a")), vec!["a"]);
        assert_eq!(read_str_set(&json!(["set", ["a", "b"]])), vec!["a", "b"]);
        assert_eq!(read_str_set(&json!(["set", []])), Vec::<String>::new());
        assert_eq!(read_opt_int(&json!(5)), Some(5));
        assert_eq!(read_opt_int(&json!(["set", []])), None);
        assert_eq!(read_opt_str(&json!(["set", ["up"]])), Some("up".into()));
        let u = Uuid::new_v4();
        assert_eq!(read_uuid_set(&uuid(&u)), vec![u]);
        assert_eq!(read_uuid_set(&set([uuid(&u), uuid(&u)])), vec![u, u]);
        // Malformed input reads as empty, never panics.
        for bad in [json!(["set"]), json!(["set", 1]), json!({}), json!(null), json!(["map", []])] {
            assert!(read_str_set(&bad).is_empty(), "{bad}");
        }
    }

    #[test]
    fn maps() {
        let m = str_map([("iface-id", "P1"), ("attached-mac", "fa:16:3e:00:00:01")]);
        assert_eq!(m, json!(["map", [["iface-id", "P1"], ["attached-mac", "fa:16:3e:00:00:01"]]]));
        let r = read_str_map(&m);
        assert_eq!(r.get("iface-id").map(String::as_str), Some("P1"));
        assert!(read_str_map(&json!(["map", [["k"], 3, ["a", 1]]])).is_empty());
        assert!(read_str_map(&json!("x")).is_empty());
    }

    #[test]
    fn rows() {
        let u = Uuid::new_v4();
        let r = row([("_uuid", uuid(&u)), ("name", json!("br-int"))]);
        assert_eq!(row_uuid(&r), Some(u));
        assert_eq!(column(&r, "name"), &json!("br-int"));
        assert_eq!(column(&r, "missing"), &Value::Null);
    }
}
