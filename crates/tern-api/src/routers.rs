//! `/v2.0/routers`: distributed routers, their interfaces (`add_router_interface` /
//! `remove_router_interface`), static routes and external gateway (a gateway port on the
//! external network holds the router's external address).
//!
//! Write orders (each leaves a consistent state if it stops midway):
//! * add interface by subnet: create the interface port (device_id = router), then add the
//!   interface to the router; if the router write fails the port is deleted again. A crash in
//!   between leaves an interface port the router does not list: removing the interface (or
//!   deleting the router) finds and deletes it, since those scan ports by device_id too.
//! * add interface by port: claim the port (device_owner/device_id), then the router.
//! * remove interface: drop it from the router, then delete the port.
//! * gateway set or changed: create the new gateway port, write the router, delete the old
//!   gateway port. Router delete: delete the router, then its gateway port.

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
use crate::ports::{
    create_service_port, delete_service_port, owned_ports, OWNER_ROUTER_GATEWAY, OWNER_ROUTER_INTERFACE,
};
use crate::util::{
    add_project, fetch, fetch_if_match, list, list_answer, no_content, patched, put, respond, retry,
    show_answer, Ctx, State,
};

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
    ctx: &Ctx,
    requested: Option<ExternalGatewayInfo>,
    current: Option<&ExternalGatewayInfo>,
) -> ApiResult<GatewayPlan> {
    let Some(mut gw) = requested else { return Ok(GatewayPlan { info: None, new_port: None }) };
    let net: Network = fetch(&ctx.nb, &gw.network_id).await?;
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

/// Writes `r` with the planned gateway: new gateway port first, then the router, then the old
/// gateway ports go. On a failed router write the new port is deleted again.
async fn write_with_gateway(ctx: &Ctx, mut r: Router, plan: GatewayPlan) -> ApiResult<Router> {
    let mut new_port = None;
    if let (Some(info), Some(ips)) = (&plan.info, plan.new_port) {
        let port =
            create_service_port(ctx, &info.network_id, OWNER_ROUTER_GATEWAY, &r.id, &r.project_id, ips)
                .await?;
        new_port = Some(port);
    }
    r.external_gateway_info = plan.info;
    if let (Some(gw), Some(port)) = (r.external_gateway_info.as_mut(), &new_port) {
        gw.external_fixed_ips = port.fixed_ips.clone();
    }
    let stored = match put(&ctx.nb, r).await {
        Ok(r) => r,
        Err(e) => {
            if let Some(p) = &new_port {
                delete_service_port(ctx, &p.id).await?;
            }
            return Err(e);
        }
    };
    let keep = new_port.as_ref().map(|p| p.id.clone());
    if stored.external_gateway_info.is_none() || keep.is_some() {
        for p in owned_ports(ctx, OWNER_ROUTER_GATEWAY, &stored.id).await? {
            if Some(&p.id) != keep.as_ref() {
                delete_service_port(ctx, &p.id).await?;
            }
        }
    }
    Ok(stored)
}

async fn create(axum::extract::State(ctx): State, JsonBody(body): JsonBody) -> ApiResult<Response> {
    let mut m = envelope(body, "router")?;
    ATTRS.check(&mut m, Op::Create)?;
    let project = take_project(&mut m)?;
    normalize_bool(&mut m, "admin_state_up")?;
    let gateway = parse_gateway(&mut m)?.flatten();
    if let Some(p) = project {
        m.insert("project_id".into(), Value::String(p));
    }
    let mut r: Router = build_valid(&Map::new(), &m)?;
    r.id = tern_model::generate_id();
    check_routes(&ctx, &r).await?;
    let plan = plan_gateway(&ctx, gateway, None).await?;
    let r = write_with_gateway(&ctx, r, plan).await?;
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
    normalize_bool(&mut m, "admin_state_up")?;
    let gateway = parse_gateway(&mut m)?;
    let (ctx, m, id) = (&ctx, &m, &id);
    let r = retry(|| {
        let gateway = gateway.clone();
        async move {
            let cur: Router = fetch_if_match(&ctx.nb, id, expected).await?;
            let r: Router = patched(&cur, m)?;
            check_routes(ctx, &r).await?;
            match gateway {
                None => put(&ctx.nb, r).await,
                Some(gw) => {
                    let plan = plan_gateway(ctx, gw, cur.external_gateway_info.as_ref()).await?;
                    write_with_gateway(ctx, r, plan).await
                }
            }
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
    retry(|| async move {
        let cur: Router = fetch_if_match(&ctx.nb, id, expected).await?;
        if !cur.interfaces.is_empty() || !owned_ports(ctx, OWNER_ROUTER_INTERFACE, id).await?.is_empty() {
            return Err(in_use(Kind::Router, id));
        }
        ctx.nb.delete(Kind::Router, id).await?;
        for p in owned_ports(ctx, OWNER_ROUTER_GATEWAY, id).await? {
            delete_service_port(ctx, &p.id).await?;
        }
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
    retry(|| async move {
        let mut r: Router = fetch(&ctx.nb, id).await?;
        match target {
            Target::Subnet(sid) => {
                let subnet: Subnet = fetch(&ctx.nb, sid).await?;
                check_new_interface(ctx, &r, &subnet).await?;
                let Some(gw) = subnet.gateway_ip else {
                    return Err(bad_router("Subnet for router interface must have a gateway IP"));
                };
                let ips = vec![FixedIp { subnet_id: subnet.id.clone(), ip_address: Some(gw) }];
                let port =
                    create_service_port(ctx, &subnet.network_id, OWNER_ROUTER_INTERFACE, id, &r.project_id, ips).await?;
                r.interfaces.push(RouterInterface { subnet_id: subnet.id.clone(), port_id: port.id.clone() });
                match put(&ctx.nb, r).await {
                    Ok(r) => Ok(interface_body(&r, &subnet, &port.id)),
                    Err(e) => {
                        delete_service_port(ctx, &port.id).await?;
                        Err(e)
                    }
                }
            }
            Target::Port(pid) => {
                let port: Port = fetch(&ctx.nb, pid).await?;
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
                let subnet: Subnet = fetch(&ctx.nb, &first.subnet_id).await?;
                check_new_interface(ctx, &r, &subnet).await?;
                let mut claimed = port.clone();
                claimed.device_owner = OWNER_ROUTER_INTERFACE.to_string();
                claimed.device_id = id.clone();
                claimed.security_groups.clear();
                claimed.allowed_address_pairs.clear();
                claimed.port_security_enabled = false;
                let claimed = put(&ctx.nb, claimed).await?;
                r.interfaces.push(RouterInterface { subnet_id: subnet.id.clone(), port_id: port.id.clone() });
                match put(&ctx.nb, r).await {
                    Ok(r) => Ok(interface_body(&r, &subnet, &port.id)),
                    Err(e) => {
                        // Give the port back as it was (with the revision it now has).
                        let mut back = port.clone();
                        back.revision_number = claimed.revision_number;
                        put(&ctx.nb, back).await?;
                        Err(e)
                    }
                }
            }
        }
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
    retry(|| async move {
        let mut r: Router = fetch(&ctx.nb, id).await?;
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
        let subnet: Subnet = fetch(&ctx.nb, &subnet_id).await?;
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
        let r = if r.interfaces.len() != before { put(&ctx.nb, r).await? } else { r };
        delete_service_port(ctx, &port_id).await?;
        Ok(interface_body(&r, &subnet, &port_id))
    })
    .await
}
