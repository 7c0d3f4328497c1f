//! `/v2.0/agents` (read-only): one Neutron agent per registered chassis (a tern controller).
//! Liveness is not modelled yet: the `Chassis` object has no liveness field, so `alive` is
//! always true and `heartbeat_timestamp` is the registration time; the liveness issue fills both.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tern_model::Chassis;

use crate::error::ApiResult;
use crate::input::{PathParam, QueryPairs};
use crate::query::ListQuery;
use crate::util::{fetch, host, list, respond, Ctx, State};

pub(crate) fn routes() -> Router<Arc<Ctx>> {
    Router::new().route("/v2.0/agents", get(list_agents)).route("/v2.0/agents/{id}", get(show))
}

/// Neutron's timestamp form ("2024-01-01 00:00:00").
fn neutron_time(rfc3339: Option<&str>) -> Value {
    match rfc3339 {
        Some(t) => json!(t.trim_end_matches('Z').replacen('T', " ", 1)),
        None => Value::Null,
    }
}

pub(crate) fn view(c: &Chassis) -> Map<String, Value> {
    let registered = neutron_time(c.registered_at.as_deref());
    let v = json!({
        "id": c.id,
        "agent_type": "tern controller",
        "binary": "tern-controller",
        "host": c.hostname(),
        // TODO(liveness): from the chassis' liveness once the model has it.
        "alive": true,
        "admin_state_up": true,
        "heartbeat_timestamp": registered,
        "created_at": registered,
        "started_at": registered,
        "topic": "N/A",
        "availability_zone": null,
        "description": "",
        "resources_synced": null,
        "configurations": {
            "tunnel_ip": c.tunnel_ip.to_string(),
            "tunnel_types": c.tunnel_types,
            "external_ip": c.external_ip.map(|i| i.to_string()),
            "integration_bridge": c.bridge,
            "version": c.version,
            "unique_key": c.unique_key,
        },
    });
    v.as_object().cloned().unwrap_or_default()
}

async fn list_agents(
    axum::extract::State(ctx): State,
    headers: HeaderMap,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Json<Value>> {
    let q = ListQuery::parse(q)?;
    let items = list::<Chassis>(&ctx.nb).await?.iter().map(view).collect();
    let known = view(&Chassis::new("x", std::net::Ipv4Addr::LOCALHOST.into()));
    Ok(Json(q.respond(items, &known, "agents", "/v2.0/agents", &host(&headers))?))
}

async fn show(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    let q = ListQuery::parse(q)?;
    let c: Chassis = fetch(&ctx.nb, &id).await?;
    Ok(respond(StatusCode::OK, "agent", q.project(view(&c))))
}
