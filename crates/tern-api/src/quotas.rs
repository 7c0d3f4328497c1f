//! `/v2.0/quotas`: Neutron's per-project quotas (the `quotas` and `quota_details` extensions).
//! A project's limits are Neutron's defaults (`tern_model::quota`) unless it has its own, which
//! the NB keeps under `/tern/quota/<project>`; its usage is the NB's usage counters, which every
//! write keeps equal to the objects. Creates check the quota of what they create in the same
//! transaction as the write (see `tern_store::nb::Tx::enforce_quota`), so "used" never passes
//! "limit" by a race; there are no reservations ("reserved" is always 0).
//!
//! Without Keystone every caller is an administrator: any project's quotas may be read and set.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tern_model::quota::{self, QuotaLimits, QuotaResource};

use crate::error::{ApiError, ApiResult};
use crate::input::{envelope, normalize_bool, JsonBody, PathParam};
use crate::util::{add_project, no_content, respond, Ctx, State};

pub(crate) fn routes() -> Router<Arc<Ctx>> {
    Router::new()
        .route("/v2.0/quotas", get(list_quotas).post(not_implemented))
        .route("/v2.0/quotas/{project_id}", get(show).put(update).delete(remove))
        .route("/v2.0/quotas/{project_id}/default", get(show_default))
        .route("/v2.0/quotas/{project_id}/details", get(show_details))
}

/// Every resource's limit, by Neutron's names.
fn limits_view(limits: &QuotaLimits) -> Map<String, Value> {
    limits.effective().into_iter().map(|(r, limit)| (r.name().to_string(), json!(limit))).collect()
}

/// A project id from the URL: what an object's `project_id` may be.
fn project(id: String) -> ApiResult<String> {
    let bad =
        id.is_empty() || id.chars().count() > tern_model::MAX_TEXT_LEN || id.chars().any(char::is_control);
    if bad {
        return Err(ApiError::bad_request(format!(
            "Invalid input for project_id. Reason: '{}' is not a valid project id.",
            id.escape_debug()
        )));
    }
    Ok(id)
}

/// `GET /v2.0/quotas`: the projects with limits of their own, each with all its limits.
async fn list_quotas(axum::extract::State(ctx): State) -> ApiResult<Json<Value>> {
    let mut out = Vec::new();
    let caller = crate::auth::Caller::current();
    for (project, limits) in ctx.nb.all_quota_limits().await? {
        if limits.0.is_empty() || !(caller.is_admin() || project == caller.project_id) {
            continue;
        }
        let mut v = limits_view(&limits);
        add_project(&mut v, &project);
        out.push(Value::Object(v));
    }
    Ok(Json(json!({"quotas": out})))
}

async fn not_implemented() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "HTTPNotImplemented",
        "POST requests are not supported on this resource.",
    )
}

/// `GET /v2.0/quotas/{project_id}`: the project's limits (its own, else the defaults).
async fn show(axum::extract::State(ctx): State, PathParam(id): PathParam<String>) -> ApiResult<Response> {
    let limits = ctx.nb.quota_limits(&project(id)?).await?;
    Ok(respond(StatusCode::OK, "quota", limits_view(&limits)))
}

/// `GET /v2.0/quotas/{project_id}/default`: Neutron's defaults.
async fn show_default(PathParam(id): PathParam<String>) -> ApiResult<Response> {
    project(id)?;
    Ok(respond(StatusCode::OK, "quota", limits_view(&QuotaLimits::default())))
}

/// `GET /v2.0/quotas/{project_id}/details`: limit, used and reserved of every resource.
async fn show_details(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
) -> ApiResult<Response> {
    let id = project(id)?;
    let limits = ctx.nb.quota_limits(&id).await?;
    let used = ctx.nb.quota_usage(&id).await?;
    let v = QuotaResource::ALL
        .into_iter()
        .map(|r| {
            let detail =
                json!({"limit": limits.limit(r), "used": used.get(&r).copied().unwrap_or(0), "reserved": 0});
            (r.name().to_string(), detail)
        })
        .collect();
    Ok(respond(StatusCode::OK, "quota", v))
}

/// One limit of a PUT: an integer (or a numeric string), -1 through 2^31 - 1.
fn limit_value(name: &str, v: &Value) -> ApiResult<i64> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        ApiError::bad_request(format!("Invalid input for {name}. Reason: '{v}' is not an integer."))
    })?;
    if n < quota::UNLIMITED {
        return Err(ApiError::bad_request(format!(
            "Invalid input for {name}. Reason: '{n}' is too small - must be at least '{}'.",
            quota::UNLIMITED
        )));
    }
    if n > quota::MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "Invalid input for {name}. Reason: '{n}' is too large - must be no larger than '{}'.",
            quota::MAX_LIMIT
        )));
    }
    Ok(n)
}

/// `PUT /v2.0/quotas/{project_id}` with `{"quota": {"port": 20, ...}}` (-1: unlimited): sets
/// those limits, keeps the others. A limit below what the project uses is refused (400) unless
/// `"force": true`, as Neutron does since 2025.1 (`check_limit` is accepted and ignored).
async fn update(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let id = project(id)?;
    let mut m = envelope(body, "quota")?;
    normalize_bool(&mut m, "force")?;
    normalize_bool(&mut m, "check_limit")?;
    let force = match m.remove("force") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid input for force. Reason: '{other}' cannot be converted to boolean."
            )))
        }
    };
    m.remove("check_limit");
    let unknown: Vec<&str> =
        m.keys().map(String::as_str).filter(|k| QuotaResource::from_name(k).is_none()).collect();
    if !unknown.is_empty() {
        return Err(ApiError::bad_request(format!("Unrecognized attribute(s) '{}'", unknown.join(", "))));
    }
    let mut changes = BTreeMap::new();
    for (k, v) in &m {
        if let Some(r) = QuotaResource::from_name(k) {
            changes.insert(r, limit_value(k, v)?);
        }
    }
    let limits = if changes.is_empty() {
        ctx.nb.quota_limits(&id).await?
    } else {
        ctx.nb.set_quota_limits(&id, &changes, force).await?
    };
    Ok(respond(StatusCode::OK, "quota", limits_view(&limits)))
}

/// `DELETE /v2.0/quotas/{project_id}`: back to the defaults (404 if it has no limits of its own,
/// as Neutron).
async fn remove(axum::extract::State(ctx): State, PathParam(id): PathParam<String>) -> ApiResult<Response> {
    let id = project(id)?;
    if !ctx.nb.delete_quota_limits(&id).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "TenantQuotaNotFound",
            format!("Quota for tenant {id} could not be found."),
        ));
    }
    Ok(no_content())
}
