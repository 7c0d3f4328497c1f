//! `/v2.0/floatingips`: public IPv4 addresses on external networks. Each floating IP holds its
//! address through a port on the floating network (device_owner `network:floatingip`), so the
//! NB's per-network address uniqueness covers floating IPs too. Associating with a port fills
//! `fixed_ip_address` (the port's first IPv4 by default) and `router_id` (a router with an
//! interface on that address's subnet and its gateway on the floating network).
//!
//! Every operation is one NB transaction: create writes the address port and the floating IP,
//! delete removes both. One fixed IP has at most one floating IP: the NB claims the (port, fixed
//! IP) pair for the floating IP in the same transaction. An association reads the port and the
//! router through the transaction and bumps the router's referrers key, so removing the router
//! interface it goes through cannot commit beside it.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tern_model::{FixedIp, FloatingIp, FloatingIpStatus, Kind, Network, Port, Router as TernRouter, Subnet};

use tern_model::Resource as _;

use crate::error::{ApiError, ApiResult};
use crate::input::{
    check_if_match, envelope, if_match, opt_str, take_project, Attrs, JsonBody, Op, PathParam, QueryPairs,
};
use crate::ports::{owned_ports, stage_service_port, OWNER_FLOATINGIP};
use crate::util::{
    add_project, committed, list, list_answer, no_content, respond, show_answer, stage, stage_delete,
    transact, tx_fetch, Ctx, State,
};
use tern_store::nb::Tx;

/// Floating IP attributes. Ignored: `dns_domain`, `dns_name`, `qos_policy_id`, `tags`.
const ATTRS: Attrs = Attrs {
    create: &[
        "floating_network_id",
        "floating_ip_address",
        "subnet_id",
        "port_id",
        "fixed_ip_address",
        "description",
    ],
    update: &["port_id", "fixed_ip_address", "description"],
    ignored: &["dns_domain", "dns_name", "qos_policy_id", "tags"],
    read_only: &[
        "id",
        "status",
        "router_id",
        "revision_number",
        "created_at",
        "updated_at",
        "port_details",
        "port_forwardings",
    ],
};

pub(crate) fn routes() -> Router<Arc<Ctx>> {
    Router::new()
        .route("/v2.0/floatingips", get(list_fips).post(create))
        .route("/v2.0/floatingips/{id}", get(show).put(update).delete(remove))
}

pub(crate) fn view(f: &FloatingIp) -> Map<String, Value> {
    let mut v = Map::new();
    v.insert("id".into(), json!(f.id));
    v.insert("floating_ip_address".into(), json!(f.floating_ip_address.map(|i| i.to_string())));
    v.insert("floating_network_id".into(), json!(f.floating_network_id));
    v.insert("router_id".into(), json!(f.router_id));
    v.insert("port_id".into(), json!(f.port_id));
    v.insert("fixed_ip_address".into(), json!(f.fixed_ip_address.map(|i| i.to_string())));
    v.insert("status".into(), json!(f.status));
    v.insert("description".into(), json!(f.description));
    add_project(&mut v, &f.project_id);
    v.insert("dns_domain".into(), json!(""));
    v.insert("dns_name".into(), json!(""));
    v.insert("qos_policy_id".into(), Value::Null);
    v.insert("tags".into(), json!([]));
    v.insert("revision_number".into(), json!(f.revision_number));
    v.insert("created_at".into(), json!(f.created_at));
    v.insert("updated_at".into(), json!(f.updated_at));
    v
}

async fn list_fips(
    axum::extract::State(ctx): State,
    headers: HeaderMap,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Json<Value>> {
    list_answer(&ctx.nb, q, &headers, ("floatingips", "/v2.0/floatingips"), view, view(&FloatingIp::new("")))
        .await
}

async fn show(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    show_answer(&ctx.nb, &id, q, "floatingip", view).await
}

fn bad_fip(msg: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", format!("Bad floatingip request: {msg}."))
}

fn parse_ip(m: &Map<String, Value>, key: &str) -> ApiResult<Option<IpAddr>> {
    match opt_str(m, key)? {
        None => Ok(None),
        Some(s) => s.parse::<IpAddr>().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "Invalid input for {key}. Reason: '{s}' is not a valid IP address."
            ))
        }),
    }
}

/// The association of floating IP `fip_id` (on `floating_network`) with `port_id`: the fixed
/// address and the router doing the NAT. Checks everything Neutron checks, writes nothing; the
/// port and the router are read through `tx` and the router's referrers are bumped.
async fn plan_association(
    ctx: &Ctx,
    tx: &Tx,
    fip_id: &str,
    floating_network: &str,
    port_id: &str,
    fixed: Option<IpAddr>,
) -> ApiResult<(IpAddr, String)> {
    let port: Port = tx_fetch(tx, port_id).await?;
    let entry = match fixed {
        Some(ip) => port
            .fixed_ips
            .iter()
            .find(|f| f.ip_address == Some(ip))
            .ok_or_else(|| bad_fip(format!("Port {port_id} does not have fixed ip {ip}")))?,
        None => port
            .fixed_ips
            .iter()
            .find(|f| f.ip_address.is_some_and(|i| i.is_ipv4()))
            .ok_or_else(|| bad_fip(format!("Port {port_id} does not have any IPv4 address")))?,
    };
    let Some(ip @ IpAddr::V4(_)) = entry.ip_address else {
        return Err(bad_fip(format!("Cannot add floating IP to port {port_id}: fixed IP must be IPv4")));
    };
    if port.network_id == floating_network {
        return Err(bad_fip(format!("Port {port_id} is on the floating network {floating_network}")));
    }
    let routers = list::<TernRouter>(&ctx.nb).await?;
    let router = routers.iter().find(|r| {
        r.external_gateway_info.as_ref().is_some_and(|g| g.network_id == floating_network)
            && r.interfaces.iter().any(|i| i.subnet_id == entry.subnet_id)
    });
    let Some(router) = router else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ExternalGatewayForFloatingIPNotFound",
            format!(
                "External network {floating_network} is not reachable from subnet {}. Therefore, cannot associate Port {port_id} with a Floating IP.",
                entry.subnet_id
            ),
        ));
    };
    let taken = list::<FloatingIp>(&ctx.nb)
        .await?
        .into_iter()
        .find(|f| f.id != fip_id && f.port_id.as_deref() == Some(port_id) && f.fixed_ip_address == Some(ip));
    if let Some(other) = taken {
        return Err(already_associated(fip_id, port_id, &ip.to_string(), &other.id));
    }
    // The router as it is now: a change to it (an interface removed) fails the commit.
    let router: TernRouter = tx_fetch(tx, &router.id).await?;
    tx.bump_referrers(Kind::Router, &router.id);
    Ok((ip, router.id))
}

/// 409: the fixed IP already has a floating IP (also what the NB's claim says when two
/// associations race).
pub(crate) fn already_associated(fip_id: &str, port_id: &str, ip: &str, other: &str) -> ApiError {
    ApiError::conflict(
        "FloatingIPPortAlreadyAssociated",
        format!(
            "Cannot associate floating IP {fip_id} with port {port_id} using fixed IP {ip}, as that fixed IP already has a floating IP ({other})."
        ),
    )
}

fn associate(f: &mut FloatingIp, port: Option<(String, IpAddr, String)>) {
    match port {
        Some((port_id, ip, router)) => {
            f.port_id = Some(port_id);
            f.fixed_ip_address = Some(ip);
            f.router_id = Some(router);
            f.status = FloatingIpStatus::Active;
        }
        None => {
            f.port_id = None;
            f.fixed_ip_address = None;
            f.router_id = None;
            f.status = FloatingIpStatus::Down;
        }
    }
}

async fn create(axum::extract::State(ctx): State, JsonBody(body): JsonBody) -> ApiResult<Response> {
    let mut m = envelope(body, "floatingip")?;
    ATTRS.check(&mut m, Op::Create)?;
    let project = take_project(&mut m)?.unwrap_or_default();
    let Some(net_id) = opt_str(&m, "floating_network_id")? else {
        return Err(ApiError::bad_request(
            "Failed to parse request. Required attribute 'floating_network_id' not specified",
        ));
    };
    let address = parse_ip(&m, "floating_ip_address")?;
    let fixed = parse_ip(&m, "fixed_ip_address")?;
    let subnet_id = opt_str(&m, "subnet_id")?;
    let port_id = opt_str(&m, "port_id")?;
    let description = opt_str(&m, "description")?.unwrap_or_default();
    if fixed.is_some() && port_id.is_none() {
        return Err(bad_fip("fixed_ip_address needs a port_id"));
    }
    let ips = match (address, subnet_id.clone()) {
        (None, None) => vec![],
        (ip, sid) => vec![FixedIp { subnet_id: sid.unwrap_or_default(), ip_address: ip }],
    };
    let fip_id = tern_model::generate_id();
    let (ctx, net_id, fip_id) = (&ctx, &net_id, &fip_id);
    let f = transact(&ctx.nb, |tx| {
        let (ips, subnet_id, port_id, project, description) =
            (ips.clone(), subnet_id.clone(), port_id.clone(), project.clone(), description.clone());
        async move {
            tx.enforce_quota(tern_model::QuotaResource::FloatingIp);
            let net: Network = tx_fetch(&tx, net_id).await?;
            if !net.router_external {
                return Err(bad_fip(format!("Network {net_id} is not a valid external network")));
            }
            if let Some(sid) = &subnet_id {
                let s: Subnet = tx_fetch(&tx, sid).await?;
                if s.network_id != *net_id || s.ip_version != 4 {
                    return Err(bad_fip(format!("Subnet {sid} is not an IPv4 subnet of network {net_id}")));
                }
            }
            if let Some(a @ IpAddr::V6(_)) = address {
                return Err(bad_fip(format!("floating_ip_address {a} is not an IPv4 address")));
            }
            let mut f = FloatingIp::new(net_id.clone());
            f.id = fip_id.clone();
            f.project_id = project;
            f.description = description;
            if let Some(pid) = &port_id {
                let (ip, router) = plan_association(ctx, &tx, &f.id, net_id, pid, fixed).await?;
                associate(&mut f, Some((pid.clone(), ip, router)));
            }
            f.validate().map_err(|e| crate::error::validation(&e))?;
            let port =
                stage_service_port(ctx, &tx, net_id, OWNER_FLOATINGIP, &f.id, &f.project_id, ips).await?;
            f.floating_ip_address = port.fixed_ips.first().and_then(|i| i.ip_address);
            let port_hint = f.port_id.clone();
            stage(&tx, f);
            committed::<FloatingIp>(&tx.commit().await.map_err(|e| fip_error(e, port_hint))?, fip_id)
        }
    })
    .await?;
    Ok(respond(StatusCode::CREATED, "floatingip", view(&f)))
}

/// The NB's refusal of a second floating IP on one fixed IP, in Neutron's words.
fn fip_error(e: tern_store::nb::NbError, port: Option<String>) -> ApiError {
    match e {
        tern_store::nb::NbError::Duplicate { kind: Kind::FloatingIp, id, field, value, other }
            if field == "fixed_ip_address" =>
        {
            already_associated(&id, port.as_deref().unwrap_or_default(), &value, &other)
        }
        e => e.into(),
    }
}

async fn update(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let expected = if_match(&headers)?;
    let mut m = envelope(body, "floatingip")?;
    ATTRS.check(&mut m, Op::Update)?;
    let fixed = parse_ip(&m, "fixed_ip_address")?;
    let port_change = m.contains_key("port_id").then(|| opt_str(&m, "port_id")).transpose()?;
    let description = opt_str(&m, "description")?;
    let (ctx, id) = (&ctx, &id);
    let f = transact(&ctx.nb, |tx| {
        let (port_change, description) = (port_change.clone(), description.clone());
        async move {
            let mut f: FloatingIp = tx_fetch(&tx, id).await?;
            check_if_match(expected, f.revision_number)?;
            let port = match (port_change, fixed) {
                (Some(None), _) => Some(None),
                (Some(Some(pid)), _) => Some(Some(pid)),
                (None, Some(_)) => match &f.port_id {
                    Some(p) => Some(Some(p.clone())),
                    None => return Err(bad_fip("fixed_ip_address needs a port_id")),
                },
                (None, None) => None,
            };
            match port {
                Some(None) => associate(&mut f, None),
                Some(Some(pid)) => {
                    let (ip, router) =
                        plan_association(ctx, &tx, &f.id, &f.floating_network_id, &pid, fixed).await?;
                    associate(&mut f, Some((pid, ip, router)));
                }
                None => {}
            }
            if let Some(d) = description {
                f.description = d;
            }
            f.validate().map_err(|e| crate::error::validation(&e))?;
            let port_hint = f.port_id.clone();
            stage(&tx, f);
            committed::<FloatingIp>(&tx.commit().await.map_err(|e| fip_error(e, port_hint))?, id)
        }
    })
    .await?;
    Ok(respond(StatusCode::OK, "floatingip", view(&f)))
}

async fn remove(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let expected = if_match(&headers)?;
    let (ctx, id) = (&ctx, &id);
    transact(&ctx.nb, |tx| async move {
        let f: FloatingIp = tx_fetch(&tx, id).await?;
        check_if_match(expected, f.revision_number)?;
        tx.delete(Kind::FloatingIp, id);
        for p in owned_ports(ctx, OWNER_FLOATINGIP, id).await? {
            stage_delete::<Port>(&tx, &p.id).await?;
        }
        tx.commit().await?;
        Ok(())
    })
    .await?;
    Ok(no_content())
}
