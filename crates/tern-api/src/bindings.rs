//! `/v2.0/ports/{id}/bindings` (Neutron's binding-extended, which Nova uses for live migration).
//!
//! The port's `binding:host_id` is the truth about the active binding: the list always shows it
//! as ACTIVE (even without a `PortBinding` object) and every other binding as INACTIVE.
//! `PortBinding` objects carry the bindings' attributes and a stored status kept in step.
//!
//! Moving the active binding from host A to host B writes, in one NB transaction: A's binding
//! object → INACTIVE (created for activation, so A stays listed and deletable); the port:
//! `binding:host_id` = B, with B's vnic type and profile; B's binding object → ACTIVE; and the
//! port's migration record toward B → `completed`. Nothing ever shows two ACTIVE binding objects.
//!
//! Creating or activating a binding on a registered chassis that is not alive is refused (409
//! naming it, see `agents::check_bindable`); hosts that name no registered chassis are allowed.
//!
//! An INACTIVE binding created while the port is bound elsewhere is Nova's announcement of a live
//! migration: it also writes the port's Migration record in state `announced` (source: the bound
//! host, destination: the new binding's host), so every chassis can deliver to both ends before
//! the VM's VIF is even plugged on the destination. Its profile may say
//! `{"tern:dual_delivery": false}` to move traffic only at activation. Deleting that binding
//! before the migration was activated (Nova's rollback) removes the record; moving the active
//! binding to the destination (activation, or `binding:host_id` through a port update) marks it
//! `completed`, and the destination's controller deletes it.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, put as put_route};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tern_model::{port_binding_id, BindingStatus, Kind, Migration, MigrationState, Port, PortBinding};
use tern_store::nb::{Nb, Tx};

use crate::error::{ApiError, ApiResult};
use crate::input::{envelope, opt_str, Attrs, JsonBody, Op, PathParam, QueryPairs};
use crate::query::ListQuery;
use crate::util::{
    committed, fetch, host, list, no_content, respond, stage, transact, tx_fetch, tx_get, Ctx, State,
};

const ATTRS: Attrs = Attrs {
    create: &["host", "vnic_type", "profile"],
    update: &[],
    ignored: &[],
    read_only: &["vif_type", "vif_details", "status", "project_id", "tenant_id"],
};

pub(crate) fn routes() -> Router<Arc<Ctx>> {
    Router::new()
        .route("/v2.0/ports/{id}/bindings", get(list_bindings).post(create))
        .route("/v2.0/ports/{id}/bindings/{host}", get(show).delete(remove))
        .route("/v2.0/ports/{id}/bindings/{host}/activate", put_route(activate))
}

/// The VIF a tern chassis plugs: an OVS port on the integration bridge.
pub(crate) fn bound_vif() -> (String, Map<String, Value>) {
    let details = json!({
        "port_filter": true,
        "ovs_hybrid_plug": false,
        "connectivity": "l2",
        "bridge_name": "br-int",
        "datapath_type": "system",
    });
    ("ovs".to_string(), details.as_object().cloned().unwrap_or_default())
}

fn view(b: &PortBinding, active: bool) -> Map<String, Value> {
    let status = if active { "ACTIVE" } else { "INACTIVE" };
    let v = json!({
        "host": b.host,
        "vif_type": b.vif_type,
        "vif_details": b.vif_details,
        "profile": b.profile,
        "vnic_type": b.vnic_type,
        "status": status,
    });
    v.as_object().cloned().unwrap_or_default()
}

/// The port's own (active) binding as a binding object.
fn from_port(p: &Port, status: BindingStatus) -> PortBinding {
    let mut b = PortBinding::new(&p.id, &p.binding_host_id);
    b.status = status;
    b.vnic_type = p.binding_vnic_type;
    b.profile = p.binding_profile.clone();
    let (t, d) = bound_vif();
    b.vif_type = t;
    b.vif_details = d;
    b
}

/// Every binding of the port, the active one (the port's host) first.
async fn bindings_of(nb: &Nb, port: &Port) -> ApiResult<Vec<(PortBinding, bool)>> {
    let objects: Vec<PortBinding> =
        list::<PortBinding>(nb).await?.into_iter().filter(|b| b.port_id == port.id).collect();
    let mut out = Vec::new();
    if !port.binding_host_id.is_empty() {
        out.push((from_port(port, BindingStatus::Active), true));
    }
    for b in objects.into_iter().filter(|b| b.host != port.binding_host_id) {
        out.push((b, false));
    }
    Ok(out)
}

async fn list_bindings(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Json<Value>> {
    let q = ListQuery::parse(q)?;
    let port: Port = fetch(&ctx.nb, &id).await?;
    let items = bindings_of(&ctx.nb, &port).await?.iter().map(|(b, a)| view(b, *a)).collect();
    let known = view(&PortBinding::new("p", "h"), false);
    let path = format!("/v2.0/ports/{id}/bindings");
    Ok(Json(q.respond(items, &known, "bindings", &path, &host(&headers))?))
}

async fn show(
    axum::extract::State(ctx): State,
    PathParam((id, host_name)): PathParam<(String, String)>,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    let q = ListQuery::parse(q)?;
    let port: Port = fetch(&ctx.nb, &id).await?;
    let found = bindings_of(&ctx.nb, &port).await?.into_iter().find(|(b, _)| b.host == host_name);
    let (b, active) =
        found.ok_or_else(|| ApiError::not_found(Kind::PortBinding, &port_binding_id(&id, &host_name)))?;
    Ok(respond(StatusCode::OK, "binding", q.project(view(&b, active))))
}

/// A new binding is ACTIVE (and binds the port: port first, then the object) when the port has
/// no host yet, INACTIVE otherwise (Nova's destination binding during live migration).
async fn create(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut m = envelope(body, "binding")?;
    ATTRS.check(&mut m, Op::Create)?;
    let Some(host_name) = opt_str(&m, "host")?.filter(|h| !h.is_empty()) else {
        return Err(ApiError::bad_request(
            "Failed to parse request. Required attribute 'host' not specified",
        ));
    };
    let mut changes = m.clone();
    changes.insert("port_id".into(), json!(id));
    changes.insert("host".into(), json!(host_name));
    let (t, d) = bound_vif();
    changes.insert("vif_type".into(), json!(t));
    changes.insert("vif_details".into(), Value::Object(d));
    changes.insert("id".into(), json!(port_binding_id(&id, &host_name)));
    let (ctx, changes, id, host_name) = (&ctx, &changes, &id, &host_name);
    let (binding, active) = transact(&ctx.nb, |tx| async move {
        let port: Port = tx_fetch(&tx, id).await?;
        let mut b: PortBinding = crate::input::build_valid(&Map::new(), changes)?;
        let exists = port.binding_host_id == *host_name || tx_get::<PortBinding>(&tx, &b.id).await?.is_some();
        if exists {
            return Err(ApiError::conflict(
                "PortBindingAlreadyExists",
                format!("Binding for port {id} on host {host_name} already exists."),
            ));
        }
        crate::agents::check_bindable(&ctx.nb, id, host_name).await?;
        let active = port.binding_host_id.is_empty();
        if active {
            let mut p = port.clone();
            p.binding_host_id = host_name.clone();
            p.binding_vnic_type = b.vnic_type;
            p.binding_profile = b.profile.clone();
            crate::ports::set_vif(&mut p);
            stage(&tx, p);
            b.status = BindingStatus::Active;
        } else {
            b.status = BindingStatus::Inactive;
            announce(&tx, &port, &b).await?;
        }
        let bid = stage(&tx, b);
        let done = tx.commit().await?;
        Ok((committed::<PortBinding>(&done, &bid)?, active))
    })
    .await?;
    Ok(respond(StatusCode::CREATED, "binding", view(&binding, active)))
}

/// Stages the `announced` Migration record of the inactive binding `b` of `port` (see the module
/// documentation), unless a migration toward its host is already open.
async fn announce(tx: &Tx, port: &Port, b: &PortBinding) -> ApiResult<()> {
    let prev: Option<Migration> = tx_get(tx, &port.id).await?;
    if port.binding_host_id.is_empty() || port.binding_host_id == b.host {
        return Ok(());
    }
    if prev.as_ref().is_some_and(|m| !m.state.is_final() && m.destination == b.host) {
        return Ok(());
    }
    let mut m = Migration::new(&port.id, 0, &port.binding_host_id, &b.host);
    m.state = MigrationState::Announced;
    m.dual_delivery = b.profile.get(Migration::PROFILE_DUAL_DELIVERY) != Some(&Value::Bool(false));
    m.timestamps.started_at_ns = Some(crate::util::now_ns());
    m.revision_number = prev.as_ref().map_or(0, |p| p.revision_number);
    stage(tx, m);
    Ok(())
}

/// Stages the completion of the open migration of `port` toward the host its binding now names
/// (see [`Migration::on_binding_moved`]).
async fn complete(tx: &Tx, port: &Port) -> ApiResult<()> {
    let Some(m) = tx_get::<Migration>(tx, &port.id).await? else { return Ok(()) };
    if let Some(done) = m.on_binding_moved(&port.binding_host_id, crate::util::now_ns()) {
        stage(tx, done);
    }
    Ok(())
}

/// Stages the removal of the migration record of `port_id` toward `host` if it was not activated
/// yet: the destination binding it came with is being deleted (Nova's rollback).
async fn withdraw(tx: &Tx, port_id: &str, host: &str) -> ApiResult<()> {
    let Some(m) = tx_get::<Migration>(tx, port_id).await? else { return Ok(()) };
    if m.destination == host && m.state.is_before_activation() {
        tx.delete(Kind::Migration, port_id);
    }
    Ok(())
}

/// Stages the move of the port's active binding from `cur`'s host to `new`'s host and `new`
/// itself (see the module documentation). `keep_old` creates an INACTIVE object for the old host
/// when it has none (activation keeps the source binding, as Neutron does).
pub(crate) async fn move_active(tx: &Tx, cur: &Port, new: Port, keep_old: bool) -> ApiResult<()> {
    let old_host = cur.binding_host_id.as_str();
    if !old_host.is_empty() && old_host != new.binding_host_id {
        let old_id = port_binding_id(&cur.id, old_host);
        match tx_get::<PortBinding>(tx, &old_id).await? {
            Some(mut b) if b.status == BindingStatus::Active => {
                b.status = BindingStatus::Inactive;
                stage(tx, b);
            }
            Some(_) => {}
            None if keep_old => {
                let mut b = from_port(cur, BindingStatus::Inactive);
                b.revision_number = 0;
                stage(tx, b);
            }
            None => {}
        }
    }
    complete(tx, &new).await?;
    if !new.binding_host_id.is_empty() {
        let new_id = port_binding_id(&new.id, &new.binding_host_id);
        if let Some(mut b) = tx_get::<PortBinding>(tx, &new_id).await? {
            if b.status != BindingStatus::Active {
                b.status = BindingStatus::Active;
                stage(tx, b);
            }
        }
    }
    stage(tx, new);
    Ok(())
}

/// Makes the binding on `host` the active one (see the module documentation for the order).
async fn activate(
    axum::extract::State(ctx): State,
    PathParam((id, host_name)): PathParam<(String, String)>,
) -> ApiResult<Response> {
    let (ctx, id, host_name) = (&ctx, &id, &host_name);
    let b = transact(&ctx.nb, |tx| async move {
        let port: Port = tx_fetch(&tx, id).await?;
        let bid = port_binding_id(id, host_name);
        let object = tx_get::<PortBinding>(&tx, &bid).await?;
        if port.binding_host_id == *host_name {
            return match object {
                // An earlier activation that left this object INACTIVE: finish it.
                Some(mut b) if b.status != BindingStatus::Active => {
                    b.status = BindingStatus::Active;
                    stage(&tx, b);
                    committed(&tx.commit().await?, &bid)
                }
                _ => Err(ApiError::conflict(
                    "PortBindingAlreadyActive",
                    format!("Binding for port {id} on host {host_name} is already active."),
                )),
            };
        }
        let Some(b) = object else {
            return Err(ApiError::not_found(Kind::PortBinding, &bid));
        };
        crate::agents::check_bindable(&ctx.nb, id, host_name).await?;
        let mut p = port.clone();
        p.binding_host_id = host_name.clone();
        p.binding_vnic_type = b.vnic_type;
        p.binding_profile = b.profile.clone();
        crate::ports::set_vif(&mut p);
        move_active(&tx, &port, p, true).await?;
        committed(&tx.commit().await?, &bid)
    })
    .await?;
    Ok(respond(StatusCode::OK, "binding", view(&b, true)))
}

/// Deletes an inactive binding. The active one is the port's own binding: it is refused here
/// (unbind the port by clearing `binding:host_id`, or activate another binding first).
async fn remove(
    axum::extract::State(ctx): State,
    PathParam((id, host_name)): PathParam<(String, String)>,
) -> ApiResult<Response> {
    let (ctx, id, host_name) = (&ctx, &id, &host_name);
    transact(&ctx.nb, |tx| async move {
        let port: Port = tx_fetch(&tx, id).await?;
        if port.binding_host_id == *host_name {
            return Err(ApiError::conflict(
                "PortBindingError",
                format!(
                    "Binding for port {id} on host {host_name} is the active binding and cannot be deleted; activate another binding first."
                ),
            ));
        }
        let bid = port_binding_id(id, host_name);
        tx_get::<PortBinding>(&tx, &bid).await?.ok_or_else(|| ApiError::not_found(Kind::PortBinding, &bid))?;
        withdraw(&tx, id, host_name).await?;
        tx.delete(Kind::PortBinding, &bid);
        tx.commit().await?;
        Ok(())
    })
    .await?;
    Ok(no_content())
}
