//! `/v2.0/agents` (read-only): one Neutron agent per registered chassis (a tern controller), and
//! the chassis liveness the rest of the API decides from.
//!
//! A chassis is alive exactly while its heartbeat key exists (`tern_store::liveness`: the
//! controller keeps it alive under a lease; it disappears `down_time` after the last heartbeat).
//! `alive` and `heartbeat_timestamp` come from that key; a chassis without one shows its
//! registration time as `heartbeat_timestamp`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tern_model::Chassis;
use tern_store::liveness::{self, Heartbeat};
use tern_store::nb::{Nb, NbError};

use crate::error::{ApiError, ApiResult};
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

pub(crate) fn view(c: &Chassis, heartbeat: Option<&Heartbeat>) -> Map<String, Value> {
    let registered = neutron_time(c.registered_at.as_deref());
    let last_beat = match heartbeat {
        Some(h) => neutron_time(Some(&h.heartbeat_at)),
        None => registered.clone(),
    };
    let v = json!({
        "id": c.id,
        "agent_type": "tern controller",
        "binary": "tern-controller",
        "host": c.hostname(),
        "alive": heartbeat.is_some(),
        "admin_state_up": true,
        "heartbeat_timestamp": last_beat,
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
            "report_interval_ms": heartbeat.map(|h| h.report_interval_ms),
            "down_time_ms": heartbeat.map(|h| h.down_time_ms),
        },
    });
    v.as_object().cloned().unwrap_or_default()
}

/// The registered chassis and the heartbeats alive now, read once per request.
pub(crate) struct Liveness {
    chassis: Vec<Chassis>,
    alive: BTreeMap<String, Heartbeat>,
}

impl Liveness {
    pub(crate) async fn read(nb: &Nb) -> ApiResult<Liveness> {
        let chassis = list::<Chassis>(nb).await?;
        let alive = liveness::alive(&**nb.store()).await.map_err(|e| ApiError::from(NbError::from(e)))?;
        Ok(Liveness { chassis, alive })
    }

    /// The registered chassis a binding host names: by id, else by hostname (as the pipeline
    /// resolves `binding:host_id`).
    pub(crate) fn chassis_of(&self, host: &str) -> Option<&Chassis> {
        if host.is_empty() {
            return None;
        }
        self.chassis
            .iter()
            .find(|c| c.id == host)
            .or_else(|| self.chassis.iter().find(|c| c.hostname() == host))
    }

    /// The registered chassis `host` names when it has no heartbeat. A host that names no
    /// registered chassis is not "dead": nothing is known about it.
    pub(crate) fn dead_chassis(&self, host: &str) -> Option<&Chassis> {
        self.chassis_of(host).filter(|c| !self.alive.contains_key(&c.id))
    }
}

/// Refuses to bind `port` (its id, empty for a port being created) to `host` when `host` names a registered chassis that is not
/// alive (409 naming it). Hosts that name no registered chassis are allowed, as before liveness:
/// Nova may bind before the controller of a new compute node has registered, and the pipeline
/// places the port as soon as that chassis appears.
pub(crate) async fn check_bindable(nb: &Nb, port: &str, host: &str) -> ApiResult<()> {
    if host.is_empty() {
        return Ok(());
    }
    if let Some(c) = Liveness::read(nb).await?.dead_chassis(host) {
        let what = if port.is_empty() { "the new port".to_string() } else { format!("port {port}") };
        return Err(ApiError::conflict(
            "PortBindingError",
            format!("chassis \"{}\" is not alive (no heartbeat for it); refusing to bind {what} there", c.id),
        ));
    }
    Ok(())
}

async fn list_agents(
    axum::extract::State(ctx): State,
    headers: HeaderMap,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Json<Value>> {
    let q = ListQuery::parse(q)?;
    let live = Liveness::read(&ctx.nb).await?;
    let items = live.chassis.iter().map(|c| view(c, live.alive.get(&c.id))).collect();
    let known = view(&Chassis::new("x", std::net::Ipv4Addr::LOCALHOST.into()), None);
    Ok(Json(q.respond(items, &known, "agents", "/v2.0/agents", &host(&headers))?))
}

async fn show(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    let q = ListQuery::parse(q)?;
    let c: Chassis = fetch(&ctx.nb, &id).await?;
    let heartbeat = ctx
        .nb
        .store()
        .get(&liveness::heartbeat_key(&c.id))
        .await
        .map_err(|e| ApiError::from(NbError::from(e)))?
        .and_then(|kv| serde_json::from_slice::<Heartbeat>(&kv.value).ok());
    Ok(respond(StatusCode::OK, "agent", q.project(view(&c, heartbeat.as_ref()))))
}
