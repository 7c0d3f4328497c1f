//! Helpers for the per-kind tests.

use serde_json::Value;

use crate::error::ModelError;
pub(crate) use crate::resource::Resource;

/// Parses `json` as `T`, panicking with the error.
pub(crate) fn parse<T: Resource>(json: &str) -> T {
    match T::from_json(json) {
        Ok(v) => v,
        Err(e) => panic!("{json}: {e}"),
    }
}

/// Parses and validates.
pub(crate) fn valid<T: Resource>(json: &str) -> T {
    let v = parse::<T>(json);
    if let Err(e) = v.validate() {
        panic!("{json}: {e}");
    }
    v
}

/// `full` parses, validates, serializes to the same JSON value (every field present) and parses back
/// equal.
pub(crate) fn round_trip<T: Resource + PartialEq + std::fmt::Debug>(full: &str) {
    let v = valid::<T>(full);
    let out = serde_json::to_value(&v).unwrap();
    let input: Value = serde_json::from_str(full).unwrap();
    assert_eq!(out, input, "serialized form differs from the full input");
    let back = parse::<T>(&out.to_string());
    assert_eq!(back, v);
}

/// `base` with `extra` merged in (top-level keys of `extra` replace or add).
pub(crate) fn with(base: &str, extra: &str) -> String {
    let mut b: Value = serde_json::from_str(base).unwrap();
    let e: Value = serde_json::from_str(extra).unwrap();
    if let (Value::Object(b), Value::Object(e)) = (&mut b, e) {
        b.extend(e);
    }
    b.to_string()
}

/// Adding an unknown field to `base` is refused with a message naming it and the kind.
pub(crate) fn rejects_unknown_field<T: Resource>(base: &str) {
    let json = with(base, r#"{"bogus_field": 1}"#);
    let err = T::from_json(&json).map(|_| ()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ModelError::Json { kind, .. } if kind == T::KIND), "{msg}");
    assert!(msg.contains("bogus_field"), "{msg}");
    assert!(msg.contains(T::KIND.name()), "{msg}");
}

/// `base` merged with `extra` parses but fails validation on `field` with `value`.
pub(crate) fn invalid<T: Resource>(base: &str, extra: &str, field: &str, value: &str) {
    let json = with(base, extra);
    let v = parse::<T>(&json);
    let err = match v.validate() {
        Ok(()) => panic!("{json}: expected an error on {field}"),
        Err(e) => e,
    };
    assert_eq!(err.kind, T::KIND, "{err}");
    assert_eq!(err.field, field, "{err}");
    assert_eq!(err.value, value, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(field) && msg.contains(T::KIND.name()), "{msg}");
}

/// `base` merged with `extra` does not parse, and the message contains `needle`.
pub(crate) fn unparsable<T: Resource>(base: &str, extra: &str, needle: &str) {
    let json = with(base, extra);
    match T::from_json(&json) {
        Ok(_) => panic!("{json}: expected a parse error"),
        Err(e) => assert!(e.to_string().contains(needle), "{e}"),
    }
}
