//! Reading requests: the JSON body (malformed JSON is Neutron's 400, never axum's 422/415), the
//! `{"network": {...}}` envelope, attribute checks (unknown → 400 "Unrecognized attribute(s)",
//! read-only → 400, accepted-but-ignored ones dropped), `tenant_id`/`project_id`, `If-Match`,
//! and turning a JSON map into a model object with errors that name the attribute and value.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use serde_json::{Map, Value};
use tern_model::{ModelError, Resource};

use crate::error::{neutron_field, ApiError, ApiResult};

/// A request body parsed as JSON (any Content-Type; Neutron clients always send JSON).
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large()
            } else {
                ApiError::new(e.status(), "HTTPBadRequest", e.body_text())
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request("Resource body required"));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("Malformed request body: {e}")))
    }
}

/// A path parameter (or tuple of them); a bad one is a Neutron-shaped 400.
pub struct PathParam<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParam(p.0))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// The query string as ordered key/value pairs (repeated keys kept).
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map(|q| QueryPairs(q.0))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// The object inside Neutron's envelope: `{"<singular>": {...}}`.
pub(crate) fn envelope(body: Value, singular: &str) -> ApiResult<Map<String, Value>> {
    let Value::Object(mut outer) = body else {
        return Err(ApiError::bad_request(format!("Unable to find '{singular}' in request body")));
    };
    match outer.remove(singular) {
        Some(Value::Object(inner)) => Ok(inner),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid input: '{singular}' must be a JSON object, not {other}"
        ))),
        None if outer.contains_key(&format!("{singular}s")) => {
            Err(ApiError::bad_request("Bulk operations are not supported: send one object per request"))
        }
        None => Err(ApiError::bad_request(format!("Unable to find '{singular}' in request body"))),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Op {
    Create,
    Update,
}

/// Which attributes a resource takes. Everything else is refused as unrecognized.
pub(crate) struct Attrs {
    /// Settable on create.
    pub create: &'static [&'static str],
    /// Settable on update.
    pub update: &'static [&'static str],
    /// Neutron attributes tern does not model: accepted (as openstacksdk and the CLI send them) and
    /// dropped.
    pub ignored: &'static [&'static str],
    /// Known, returned, never settable.
    pub read_only: &'static [&'static str],
}

impl Attrs {
    /// Checks the attribute names of `map` for `op` and removes the ignored ones. `tenant_id` and
    /// `project_id` are handled by [`take_project`].
    pub(crate) fn check(&self, map: &mut Map<String, Value>, op: Op) -> ApiResult<()> {
        let allowed = match op {
            Op::Create => self.create,
            Op::Update => self.update,
        };
        let unknown: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| {
                !(self.create.contains(k)
                    || self.update.contains(k)
                    || self.ignored.contains(k)
                    || self.read_only.contains(k)
                    || *k == "tenant_id"
                    || *k == "project_id")
            })
            .collect();
        if !unknown.is_empty() {
            return Err(ApiError::bad_request(format!("Unrecognized attribute(s) '{}'", unknown.join(", "))));
        }
        for k in map.keys() {
            let settable = allowed.contains(&k.as_str()) || self.ignored.contains(&k.as_str());
            let project = k == "tenant_id" || k == "project_id";
            if settable || (project && op == Op::Create) {
                continue;
            }
            return Err(match op {
                Op::Create => ApiError::bad_request(format!("Attribute '{k}' not allowed in POST")),
                Op::Update => ApiError::bad_request(format!("Cannot update read-only attribute {k}")),
            });
        }
        map.retain(|k, _| !self.ignored.contains(&k.as_str()));
        // Clients send `null` for an empty name or description.
        for k in ["name", "description"] {
            if matches!(map.get(k), Some(Value::Null)) {
                map.insert(k.to_string(), Value::String(String::new()));
            }
        }
        Ok(())
    }
}

/// Removes `tenant_id` and `project_id` from `map` and returns the project (they must agree).
pub(crate) fn take_project(map: &mut Map<String, Value>) -> ApiResult<Option<String>> {
    let mut get = |k: &str| -> ApiResult<Option<String>> {
        match map.remove(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid input for {k}. Reason: '{other}' is not a string."
            ))),
        }
    };
    let tenant = get("tenant_id")?;
    let project = get("project_id")?;
    match (tenant, project) {
        (Some(t), Some(p)) if t != p => {
            Err(ApiError::bad_request(format!("'tenant_id' ({t}) and 'project_id' ({p}) do not match")))
        }
        // None given: the caller's own project (none for a caller without one: noauth).
        (t, p) => {
            Ok(p.or(t).or_else(|| Some(crate::auth::Caller::current().project_id).filter(|p| !p.is_empty())))
        }
    }
}

/// Builds a `T` from `base` with `changes` applied. On a type error, finds the attribute at fault
/// (by applying the changes to `base` one at a time) so the message names it and its value.
pub(crate) fn build<T: Resource>(base: &Map<String, Value>, changes: &Map<String, Value>) -> ApiResult<T> {
    let mut merged = base.clone();
    for (k, v) in changes {
        merged.insert(k.clone(), v.clone());
    }
    match T::from_json_value(Value::Object(merged)) {
        Ok(t) => Ok(t),
        Err(ModelError::Json { message, .. }) => {
            if let Some(field) = message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
                return Err(ApiError::bad_request(format!(
                    "Failed to parse request. Required attribute '{}' not specified",
                    neutron_field(field)
                )));
            }
            for (k, v) in changes {
                let mut one = base.clone();
                one.insert(k.clone(), v.clone());
                if let Err(ModelError::Json { message, .. }) = T::from_json_value(Value::Object(one)) {
                    // Another attribute's absence is not this one's fault.
                    if message.starts_with("missing field") {
                        continue;
                    }
                    return Err(ApiError::bad_request(format!(
                        "Invalid input for {}. Reason: {message} (value {v}).",
                        neutron_field(k)
                    )));
                }
            }
            Err(ApiError::bad_request(format!("Invalid input: {message}")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Like [`build`], then validates the object on its own (400 naming field and value).
pub(crate) fn build_valid<T: Resource>(
    base: &Map<String, Value>,
    changes: &Map<String, Value>,
) -> ApiResult<T> {
    let t: T = build(base, changes)?;
    t.validate().map_err(|e| crate::error::validation(&e))?;
    Ok(t)
}

/// `If-Match: revision_number=N` (Neutron's optimistic concurrency on PUT and DELETE).
pub(crate) fn if_match(headers: &HeaderMap) -> ApiResult<Option<u64>> {
    let Some(v) = headers.get("if-match") else { return Ok(None) };
    let text = v.to_str().map_err(|_| ApiError::bad_request("If-Match header is not text"))?;
    let mut found = None;
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part == "*" {
            continue;
        }
        let n = part
            .strip_prefix("revision_number=")
            .and_then(|n| n.trim_matches('"').parse::<u64>().ok())
            .ok_or_else(|| {
            ApiError::bad_request(format!("Invalid If-Match header {part:?}: expected revision_number=N"))
        })?;
        found = Some(n);
    }
    Ok(found)
}

/// 412 when an `If-Match` revision does not equal the stored one.
pub(crate) fn check_if_match(expected: Option<u64>, actual: u64) -> ApiResult<()> {
    match expected {
        Some(n) if n != actual => Err(ApiError::revision_mismatch(n, actual)),
        _ => Ok(()),
    }
}

/// A boolean attribute; Neutron also takes "true"/"false" strings.
pub(crate) fn normalize_bool(map: &mut Map<String, Value>, key: &str) -> ApiResult<()> {
    if let Some(v) = map.get_mut(key) {
        if let Value::String(s) = v {
            match s.to_ascii_lowercase().as_str() {
                "true" | "1" => *v = Value::Bool(true),
                "false" | "0" => *v = Value::Bool(false),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "Invalid input for {key}. Reason: '{s}' cannot be converted to boolean."
                    )))
                }
            }
        }
    }
    Ok(())
}

/// An integer attribute; Neutron also takes numeric strings.
pub(crate) fn normalize_int(map: &mut Map<String, Value>, key: &str) -> ApiResult<()> {
    if let Some(v) = map.get_mut(key) {
        if let Value::String(s) = v {
            let n: i64 = s.trim().parse().map_err(|_| {
                ApiError::bad_request(format!("Invalid input for {key}. Reason: '{s}' is not an integer."))
            })?;
            *v = Value::from(n);
        }
    }
    Ok(())
}

/// A string attribute where Neutron takes `null` as "".
pub(crate) fn null_as_empty(map: &mut Map<String, Value>, key: &str) {
    if matches!(map.get(key), Some(Value::Null)) {
        map.insert(key.to_string(), Value::String(String::new()));
    }
}

/// A string field of `map` (for attributes read before building the object).
pub(crate) fn opt_str(map: &Map<String, Value>, key: &str) -> ApiResult<Option<String>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => {
            Err(ApiError::bad_request(format!("Invalid input for {key}. Reason: '{other}' is not a string.")))
        }
    }
}
