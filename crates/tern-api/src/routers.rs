//! `/v2.0/routers`: distributed routers, their interfaces (`add_router_interface` /
//! `remove_router_interface`), static routes and external gateway (a gateway port on the
//! external network holds the router's external address).
//!
//! Every operation is one NB transaction, so the router and its ports never disagree:
//! * add interface by subnet: the interface port (device_id = router) and the router listing it;
//! * add interface by port: the port claimed (device_owner/device_id) and the router;
//! * remove interface: the router without it and the port deleted (refused while a floating IP
//!   goes through it: the router's referrers are guarded before the floating IPs are looked at);
//! * gateway set or changed: the new gateway port, the router, the old gateway port deleted;
//! * router delete: the router and its gateway port.
//!
//! Interface ports a router does not list (left by releases that wrote these in several steps)
//! are still found by device_id: removing the interface or deleting the router cleans them up.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put as put_route};
use axum::{Json, Router as AxumRouter};
use ipnet::IpNet;
use serde_json::{json, Map, Value};
use tern_model::{
    ExternalGatewayInfo, FixedIp, FloatingIp, Kind, Network, Port, Router, RouterInterface, Subnet,
};

use crate::error::{in_use, ApiError, ApiResult};
use crate::input::{
    build_valid, envelope, if_match, normalize_bool, take_project, Attrs, JsonBody, Op, PathParam, QueryPairs,
};
use crate::ports::{owned_ports, stage_service_port, OWNER_ROUTER_GATEWAY, OWNER_ROUTER_INTERFACE};
use crate::util::{
    add_project, committed, fetch, list, list_answer, no_content, patched, respond, show_answer, stage,
    stage_delete, transact, tx_fetch, tx_fetch_if_match, Ctx, State,
};
use tern_store::nb::Tx;

/// Router attributes. Ignored: `distributed` and `ha` (tern routers are always distributed),
/// `availability_zone_hints`, `flavor_id`, `enable_ndp_proxy`, `tags`.
const ATTRS: Attrs = Attrs {
    create: &["name", "description", "admin_state_up", "external_gateway_info", "routes"],
    update: &["name", "description", "admin_state_up", "external_gateway_info", "routes"],
    ignored: &["distributed", "ha", "availability_zone_hints", "flavor_id", "enable_ndp_proxy", "tags"],
    read_only: &["id", "status", "revision_number", "created_at", "updated_at", "availability_zones"],
};

pub(crate) fn routes() -> AxumRouter<Arc<Ctx>> {
    AxumRouter::new()
        .route("/v2.0/routers", get(list_routers).post(create))
        .route("/v2.0/routers/{id}", get(show).put(update).delete(remove))
        .route("/v2.0/routers/{id}/add_router_interface", put_route(add_interface))
        .route("/v2.0/routers/{id}/remove_router_interface", put_route(remove_interface))
}

pub(crate) fn view(r: &Router) -> Map<String, Value> {
    let mut v = Map::new();
    v.insert("id".into(), json!(r.id));
    v.insert("name".into(), json!(r.name));
    v.insert("description".into(), json!(r.description));
    add_project(&mut v, &r.project_id);
    v.insert("admin_state_up".into(), json!(r.admin_state_up));
    v.insert("status".into(), json!(r.status));
    let gw = r.external_gateway_info.as_ref().map(|g| {
        json!({
            "network_id": g.network_id,
            "enable_snat": g.enable_snat,
            "external_fixed_ips": g.external_fixed_ips.iter()
                .map(|f| json!({"subnet_id": f.subnet_id, "ip_address": f.ip_address.map(|i| i.to_string())}))
                .collect::<Vec<_>>(),
        })
    });
    v.insert("external_gateway_info".into(), json!(gw));
    v.insert("routes".into(), json!(r.routes));
    v.insert("availability_zone_hints".into(), json!([]));
    v.insert("availability_zones".into(), json!([]));
    v.insert("flavor_id".into(), Value::Null);
    v.insert("tags".into(), json!([]));
    v.insert("revision_number".into(), json!(r.revision_number));
    v.insert("created_at".into(), json!(r.created_at));
    v.insert("updated_at".into(), json!(r.updated_at));
    v
}

async fn list_routers(
    axum::extract::State(ctx): State,
    headers: HeaderMap,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Json<Value>> {
    list_answer(&ctx.nb, q, &headers, ("routers", "/v2.0/routers"), view, view(&Router::default())).await
}

async fn show(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    show_answer(&ctx.nb, &id, q, "router", view).await
}

fn bad_router(msg: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", format!("Bad router request: {msg}."))
}

/// The requested gateway: `None` = no change, `Some(None)` = remove it.
fn parse_gateway(m: &mut Map<String, Value>) -> ApiResult<Option<Option<ExternalGatewayInfo>>> {
    let Some(v) = m.remove("external_gateway_info") else { return Ok(None) };
    if v.is_null() || v.as_object().is_some_and(|o| o.is_empty()) {
        return Ok(Some(None));
    }
    let mut v = v;
    if let Some(o) = v.as_object_mut() {
        normalize_bool(o, "enable_snat")?;
        if matches!(o.get("external_fixed_ips"), Some(Value::Null)) {
            o.remove("external_fixed_ips");
        }
    }
    let gw: ExternalGatewayInfo = serde_json::from_value(v.clone()).map_err(|e| {
        ApiError::bad_request(format!("Invalid input for external_gateway_info. Reason: {e} (value {v})."))
    })?;
    Ok(Some(Some(gw)))
}

/// What a gateway change needs: the gateway to store and whether a new gateway port is needed.
struct GatewayPlan {
    info: Option<ExternalGatewayInfo>,
    /// Create this port's fixed IPs on `info.network_id` (empty: allocate one IPv4 address).
    new_port: Option<Vec<FixedIp>>,
}

/// Checks a requested gateway (an external network) and decides whether the current gateway
/// port can stay (same network, no new addresses asked for).
async fn plan_gateway(
    tx: &Tx,
    requested: Option<ExternalGatewayInfo>,
    current: Option<&ExternalGatewayInfo>,
) -> ApiResult<GatewayPlan> {
    let Some(mut gw) = requested else { return Ok(GatewayPlan { info: None, new_port: None }) };
    let net: Network = tx_fetch(tx, &gw.network_id).await?;
    if !net.router_external {
        return Err(bad_router(format!("Network {} is not an external network", gw.network_id)));
    }
    if let Some(cur) = current {
        let same_ips = gw.external_fixed_ips.is_empty() || gw.external_fixed_ips == cur.external_fixed_ips;
        if cur.network_id == gw.network_id && same_ips {
            gw.external_fixed_ips = cur.external_fixed_ips.clone();
            return Ok(GatewayPlan { info: Some(gw), new_port: None });
        }
    }
    let ips = std::mem::take(&mut gw.external_fixed_ips);
    Ok(GatewayPlan { info: Some(gw), new_port: Some(ips) })
}

/// Static routes must go through a subnet the router is attached to.
async fn check_routes(ctx: &Ctx, r: &Router) -> ApiResult<()> {
    if r.routes.is_empty() {
        return Ok(());
    }
    let mut cidrs: Vec<IpNet> = Vec::new();
    for itf in &r.interfaces {
        if let Some(s) = crate::util::get::<Subnet>(&ctx.nb, &itf.subnet_id).await? {
            cidrs.push(s.cidr);
        }
    }
    for route in &r.routes {
        if !cidrs.iter().any(|c| c.contains(&route.nexthop)) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidRoutes",
                format!(
                    "Invalid format for routes: {{'destination': '{}', 'nexthop': '{}'}}, the nexthop is not connected with router",
                    route.destination, route.nexthop
                ),
            ));
        }
    }
    Ok(())
}

/// Stages `r` with the planned gateway: the new gateway port, the router, and the deletion of
/// the gateway ports it no longer uses.
async fn stage_with_gateway(ctx: &Ctx, tx: &Tx, mut r: Router, plan: GatewayPlan) -> ApiResult<()> {
    let mut new_port = None;
    if let (Some(info), Some(ips)) = (&plan.info, plan.new_port) {
        let port =
            stage_service_port(ctx, tx, &info.network_id, OWNER_ROUTER_GATEWAY, &r.id, &r.project_id, ips)
                .await?;
        new_port = Some(port);
    }
    r.external_gateway_info = plan.info;
    if let (Some(gw), Some(port)) = (r.external_gateway_info.as_mut(), &new_port) {
        gw.external_fixed_ips = port.fixed_ips.clone();
    }
    let keep = new_port.as_ref().map(|p| p.id.clone());
    if r.external_gateway_info.is_none() || keep.is_some() {
        for p in owned_ports(ctx, OWNER_ROUTER_GATEWAY, &r.id).await? {
            if Some(&p.id) != keep.as_ref() {
                stage_delete::<Port>(tx, &p.id).await?;
            }
        }
    }
    stage(tx, r);
    Ok(())
}

async fn create(axum::extract::State(ctx): State, JsonBody(body): JsonBody) -> ApiResult<Response> {
    let mut m = envelope(body, "router")?;
    ATTRS.check(&mut m, Op::Create)?;
    // Neutron's convert_none_to_empty_list: `"routes": null` clears the routes.
    if m.get("routes") == Some(&Value::Null) {
        m.insert("routes".into(), json!([]));
    }
    let project = take_project(&mut m)?;
    normalize_bool(&mut m, "admin_state_up")?;
    let gateway = parse_gateway(&mut m)?.flatten();
    if let Some(p) = project {
        m.insert("project_id".into(), Value::String(p));
    }
    let mut r: Router = build_valid(&Map::new(), &m)?;
    r.id = tern_model::generate_id();
    check_routes(&ctx, &r).await?;
    let (ctx, r) = (&ctx, &r);
    let r = transact(&ctx.nb, |tx| {
        let gateway = gateway.clone();
        async move {
            tx.enforce_quota(tern_model::QuotaResource::Router);
            let plan = plan_gateway(&tx, gateway, None).await?;
            stage_with_gateway(ctx, &tx, r.clone(), plan).await?;
            committed::<Router>(&tx.commit().await?, &r.id)
        }
    })
    .await?;
    Ok(respond(StatusCode::CREATED, "router", view(&r)))
}

async fn update(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let expected = if_match(&headers)?;
    let mut m = envelope(body, "router")?;
    ATTRS.check(&mut m, Op::Update)?;
    // Neutron's convert_none_to_empty_list: `"routes": null` clears the routes.
    if m.get("routes") == Some(&Value::Null) {
        m.insert("routes".into(), json!([]));
    }
    normalize_bool(&mut m, "admin_state_up")?;
    let gateway = parse_gateway(&mut m)?;
    let (ctx, m, id) = (&ctx, &m, &id);
    let r = transact(&ctx.nb, |tx| {
        let gateway = gateway.clone();
        async move {
            let cur: Router = tx_fetch_if_match(&tx, id, expected).await?;
            let r: Router = patched(&cur, m)?;
            check_routes(ctx, &r).await?;
            match gateway {
                None => {
                    stage(&tx, r);
                }
                Some(gw) => {
                    let plan = plan_gateway(&tx, gw, cur.external_gateway_info.as_ref()).await?;
                    stage_with_gateway(ctx, &tx, r, plan).await?;
                }
            }
            committed::<Router>(&tx.commit().await?, id)
        }
    })
    .await?;
    Ok(respond(StatusCode::OK, "router", view(&r)))
}

async fn remove(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let expected = if_match(&headers)?;
    let (ctx, id) = (&ctx, &id);
    transact(&ctx.nb, |tx| async move {
        let cur: Router = tx_fetch_if_match(&tx, id, expected).await?;
        if !cur.interfaces.is_empty() || !owned_ports(ctx, OWNER_ROUTER_INTERFACE, id).await?.is_empty() {
            return Err(in_use(Kind::Router, id));
        }
        tx.delete(Kind::Router, id);
        for p in owned_ports(ctx, OWNER_ROUTER_GATEWAY, id).await? {
            stage_delete::<Port>(&tx, &p.id).await?;
        }
        tx.commit().await?;
        Ok(())
    })
    .await?;
    Ok(no_content())
}

/// `{"subnet_id": ...}` or `{"port_id": ...}`.
enum Target {
    Subnet(String),
    Port(String),
}

fn parse_target(body: Value) -> ApiResult<Target> {
    let Value::Object(m) = body else {
        return Err(bad_router("the body must be a JSON object with subnet_id or port_id"));
    };
    if let Some(k) = m.keys().find(|k| *k != "subnet_id" && *k != "port_id") {
        return Err(ApiError::bad_request(format!("Unrecognized attribute(s) '{k}'")));
    }
    let field = |k: &str| -> ApiResult<Option<String>> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid input for {k}. Reason: '{other}' is not a valid id."
            ))),
        }
    };
    match (field("subnet_id")?, field("port_id")?) {
        (Some(_), Some(_)) => Err(bad_router("Cannot specify both subnet-id and port-id")),
        (Some(s), None) => Ok(Target::Subnet(s)),
        (None, Some(p)) => Ok(Target::Port(p)),
        (None, None) => Err(bad_router("Either subnet_id or port_id must be specified")),
    }
}

fn interface_body(r: &Router, subnet: &Subnet, port_id: &str) -> Response {
    let body = json!({
        "id": r.id,
        "subnet_id": subnet.id,
        "subnet_ids": [subnet.id],
        "port_id": port_id,
        "tenant_id": r.project_id,
        "project_id": r.project_id,
        "network_id": subnet.network_id,
    });
    (StatusCode::OK, Json(body)).into_response()
}

/// The router may not get a second interface on a subnet, nor one overlapping another.
async fn check_new_interface(ctx: &Ctx, r: &Router, subnet: &Subnet) -> ApiResult<()> {
    for itf in &r.interfaces {
        if itf.subnet_id == subnet.id {
            return Err(bad_router(format!("Router {} already has a port on subnet {}", r.id, subnet.id)));
        }
        if let Some(other) = crate::util::get::<Subnet>(&ctx.nb, &itf.subnet_id).await? {
            if crate::subnets::overlaps(&other.cidr, &subnet.cidr) {
                return Err(bad_router(format!(
                    "Cidr {} of subnet {} overlaps with cidr {} of subnet {}",
                    subnet.cidr, subnet.id, other.cidr, other.id
                )));
            }
        }
    }
    Ok(())
}

async fn add_interface(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let target = parse_target(body)?;
    let (ctx, id, target) = (&ctx, &id, &target);
    transact(&ctx.nb, |tx| async move {
        let mut r: Router = tx_fetch(&tx, id).await?;
        let (subnet, port_id) = match target {
            Target::Subnet(sid) => {
                let subnet: Subnet = tx_fetch(&tx, sid).await?;
                check_new_interface(ctx, &r, &subnet).await?;
                let Some(gw) = subnet.gateway_ip else {
                    return Err(bad_router("Subnet for router interface must have a gateway IP"));
                };
                let ips = vec![FixedIp { subnet_id: subnet.id.clone(), ip_address: Some(gw) }];
                let port = stage_service_port(
                    ctx,
                    &tx,
                    &subnet.network_id,
                    OWNER_ROUTER_INTERFACE,
                    id,
                    &r.project_id,
                    ips,
                )
                .await?;
                (subnet, port.id)
            }
            Target::Port(pid) => {
                let port: Port = tx_fetch(&tx, pid).await?;
                if !port.device_id.is_empty() || !port.device_owner.is_empty() {
                    return Err(ApiError::conflict(
                        "PortInUse",
                        format!(
                            "Unable to complete operation on port {pid} for network {}. Port already has an attached device {}.",
                            port.network_id, port.device_id
                        ),
                    ));
                }
                let Some(first) = port.fixed_ips.first() else {
                    return Err(bad_router("Router port must have at least one fixed IP"));
                };
                if port.fixed_ips.len() > 1 {
                    return Err(bad_router("Cannot have multiple IPv4 subnets on router port"));
                }
                let subnet: Subnet = tx_fetch(&tx, &first.subnet_id).await?;
                check_new_interface(ctx, &r, &subnet).await?;
                let mut claimed = port.clone();
                claimed.device_owner = OWNER_ROUTER_INTERFACE.to_string();
                claimed.device_id = id.clone();
                claimed.security_groups.clear();
                claimed.allowed_address_pairs.clear();
                claimed.port_security_enabled = false;
                stage(&tx, claimed);
                (subnet, port.id)
            }
        };
        r.interfaces.push(RouterInterface { subnet_id: subnet.id.clone(), port_id: port_id.clone() });
        stage(&tx, r);
        let r: Router = committed(&tx.commit().await?, id)?;
        Ok(interface_body(&r, &subnet, &port_id))
    })
    .await
}

async fn remove_interface(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let target = parse_target(body)?;
    let (ctx, id, target) = (&ctx, &id, &target);
    transact(&ctx.nb, |tx| async move {
        let mut r: Router = tx_fetch(&tx, id).await?;
        // Before the floating IPs are looked at: one associated through this router meanwhile
        // fails the commit.
        tx.guard_referrers(Kind::Router, id).await?;
        let orphans = owned_ports(ctx, OWNER_ROUTER_INTERFACE, id).await?;
        // The interface as the router lists it, or an interface port a crash left unlisted.
        let (subnet_id, port_id) = match target {
            Target::Subnet(sid) => {
                if let Some(itf) = r.interfaces.iter().find(|i| i.subnet_id == *sid) {
                    (itf.subnet_id.clone(), itf.port_id.clone())
                } else if let Some(p) = orphans.iter().find(|p| p.fixed_ips.iter().any(|f| f.subnet_id == *sid)) {
                    (sid.clone(), p.id.clone())
                } else {
                    let _: Subnet = fetch(&ctx.nb, sid).await?;
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "RouterInterfaceNotFoundForSubnet",
                        format!("Router {id} has no interface on subnet {sid}"),
                    ));
                }
            }
            Target::Port(pid) => {
                if let Some(itf) = r.interfaces.iter().find(|i| i.port_id == *pid) {
                    (itf.subnet_id.clone(), itf.port_id.clone())
                } else if let Some(p) = orphans.iter().find(|p| p.id == *pid) {
                    (p.fixed_ips.first().map(|f| f.subnet_id.clone()).unwrap_or_default(), p.id.clone())
                } else {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "RouterInterfaceNotFound",
                        format!("Router {id} does not have an interface with id {pid}"),
                    ));
                }
            }
        };
        let subnet: Subnet = tx_fetch(&tx, &subnet_id).await?;
        let fips = list::<FloatingIp>(&ctx.nb).await?;
        if fips.iter().any(|f| {
            f.router_id.as_deref() == Some(id.as_str()) && f.fixed_ip_address.is_some_and(|ip| subnet.cidr.contains(&ip))
        }) {
            return Err(ApiError::conflict(
                "RouterInterfaceInUseByFloatingIP",
                format!(
                    "Router interface for subnet {subnet_id} on router {id} cannot be deleted, as it is required by one or more floating IPs."
                ),
            ));
        }
        if let Some(route) = r.routes.iter().find(|rt| subnet.cidr.contains(&rt.nexthop)) {
            return Err(ApiError::conflict(
                "RouterInterfaceInUseByRoute",
                format!(
                    "Router interface for subnet {subnet_id} on router {id} cannot be deleted, as it is required by one or more routes (nexthop {}).",
                    route.nexthop
                ),
            ));
        }
        let before = r.interfaces.len();
        r.interfaces.retain(|i| i.port_id != port_id);
        let changed = r.interfaces.len() != before;
        if changed {
            stage(&tx, r.clone());
        }
        // The port may already be gone (a router an earlier release left listing it).
        stage_delete::<Port>(&tx, &port_id).await?;
        let done = tx.commit().await?;
        let r = if changed { committed(&done, id)? } else { r };
        Ok(interface_body(&r, &subnet, &port_id))
    })
    .await
}
