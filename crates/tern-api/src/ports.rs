//! `/v2.0/ports`: ports with generated MACs, fixed IPs (resolved to their subnets, allocated when
//! only a subnet or nothing is given), port security, the project's default security group, and
//! the port-binding attributes (`binding:host_id` moves the active binding, see `bindings`).
//! Liveness (see `agents`): binding a port to a registered chassis that is not alive is refused,
//! and a port bound to one reads `status: DOWN` (decided at read time; the stored status stays).
//! Also the service ports other resources own (router interfaces and gateways, floating IPs).
//!
//! Every operation is one NB transaction: a create writes the port with the project's default
//! security group when that is created on first need; an update moves the active binding with
//! the port (see `bindings`); a delete disassociates the floating IPs pointing at the port and
//! deletes the port with its bindings and migration record.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tern_model::{FixedIp, FloatingIp, FloatingIpStatus, Kind, Network, Object, Port, Status, Subnet};
use tern_store::nb::Tx;

use crate::agents::{check_bindable, Liveness};
use crate::bindings::{self, bound_vif};
use tern_model::Resource as _;

use crate::error::{ApiError, ApiResult};
use crate::input::{
    build_valid, envelope, if_match, normalize_bool, null_as_empty, opt_str, take_project, Attrs, JsonBody,
    Op, PathParam, QueryPairs,
};
use crate::query::ListQuery;
use crate::util::{
    add_project, committed, fetch, host, list, no_content, patched, respond, stage, transact, tx_fetch,
    tx_fetch_if_match, Ctx, State,
};

pub(crate) const OWNER_ROUTER_INTERFACE: &str = "network:router_interface";
pub(crate) const OWNER_ROUTER_GATEWAY: &str = "network:router_gateway";
pub(crate) const OWNER_FLOATINGIP: &str = "network:floatingip";

/// Port attributes. Ignored: `dns_name`, `dns_domain`, `qos_policy_id`, `tags`,
/// `propagate_uplink_status`, `numa_affinity_policy`, `extra_dhcp_opts`, `hints`,
/// `mac_learning_enabled`, `port_trusted_vif`, `hardware_offload_type`, `binding:vif_type` and
/// `binding:vif_details` are derived (read-only).
const ATTRS: Attrs = Attrs {
    create: &[
        "name",
        "description",
        "network_id",
        "mac_address",
        "fixed_ips",
        "admin_state_up",
        "device_id",
        "device_owner",
        "binding:host_id",
        "binding:profile",
        "binding:vnic_type",
        "security_groups",
        "allowed_address_pairs",
        "port_security_enabled",
    ],
    update: &[
        "name",
        "description",
        "mac_address",
        "fixed_ips",
        "admin_state_up",
        "device_id",
        "device_owner",
        "binding:host_id",
        "binding:profile",
        "binding:vnic_type",
        "security_groups",
        "allowed_address_pairs",
        "port_security_enabled",
    ],
    ignored: &[
        "dns_name",
        "dns_domain",
        "qos_policy_id",
        "tags",
        "propagate_uplink_status",
        "numa_affinity_policy",
        "extra_dhcp_opts",
        "hints",
        "mac_learning_enabled",
        "port_trusted_vif",
        "hardware_offload_type",
    ],
    read_only: &[
        "id",
        "status",
        "network_id",
        "binding:vif_type",
        "binding:vif_details",
        "revision_number",
        "created_at",
        "updated_at",
        "dns_assignment",
        "ip_allocation",
        "resource_request",
        "qos_network_policy_id",
    ],
};

pub(crate) fn routes() -> Router<Arc<Ctx>> {
    Router::new()
        .route("/v2.0/ports", get(list_ports).post(create))
        .route("/v2.0/ports/{id}", get(show).put(update).delete(remove))
}

pub(crate) fn view(p: &Port) -> Map<String, Value> {
    let mut v = Map::new();
    v.insert("id".into(), json!(p.id));
    v.insert("name".into(), json!(p.name));
    v.insert("description".into(), json!(p.description));
    add_project(&mut v, &p.project_id);
    v.insert("network_id".into(), json!(p.network_id));
    v.insert("mac_address".into(), json!(p.mac_address));
    v.insert(
        "fixed_ips".into(),
        Value::Array(
            p.fixed_ips
                .iter()
                .map(|f| json!({"subnet_id": f.subnet_id, "ip_address": f.ip_address.map(|i| i.to_string())}))
                .collect(),
        ),
    );
    v.insert("admin_state_up".into(), json!(p.admin_state_up));
    v.insert("status".into(), json!(p.status));
    v.insert("device_id".into(), json!(p.device_id));
    v.insert("device_owner".into(), json!(p.device_owner));
    v.insert("binding:host_id".into(), json!(p.binding_host_id));
    v.insert("binding:profile".into(), Value::Object(p.binding_profile.clone()));
    let (vif_type, vif_details) =
        if !p.binding_host_id.is_empty() && p.binding_vif_type == tern_model::VIF_TYPE_UNBOUND {
            bound_vif()
        } else {
            (p.binding_vif_type.clone(), p.binding_vif_details.clone())
        };
    v.insert("binding:vif_type".into(), json!(vif_type));
    v.insert("binding:vif_details".into(), Value::Object(vif_details));
    v.insert("binding:vnic_type".into(), json!(p.binding_vnic_type));
    v.insert("security_groups".into(), json!(p.security_groups));
    v.insert(
        "allowed_address_pairs".into(),
        Value::Array(
            p.allowed_address_pairs
                .iter()
                .map(|a| json!({"ip_address": a.ip_address, "mac_address": a.mac_address.as_deref().unwrap_or(&p.mac_address)}))
                .collect(),
        ),
    );
    v.insert("port_security_enabled".into(), json!(p.port_security_enabled));
    v.insert("dns_name".into(), json!(""));
    v.insert("extra_dhcp_opts".into(), json!([]));
    v.insert("qos_policy_id".into(), Value::Null);
    v.insert("propagate_uplink_status".into(), json!(false));
    v.insert("ip_allocation".into(), json!("immediate"));
    v.insert("tags".into(), json!([]));
    v.insert("revision_number".into(), json!(p.revision_number));
    v.insert("created_at".into(), json!(p.created_at));
    v.insert("updated_at".into(), json!(p.updated_at));
    v
}

/// `view` with the status liveness gives it: DOWN on a registered chassis that is not alive.
pub(crate) fn live_view(p: &Port, live: &Liveness) -> Map<String, Value> {
    let mut v = view(p);
    if live.dead_chassis(&p.binding_host_id).is_some() {
        v.insert("status".into(), json!(Status::Down));
    }
    v
}

/// `live_view` of one port (reads liveness only for a bound port).
async fn live_view_of(ctx: &Ctx, p: &Port) -> ApiResult<Map<String, Value>> {
    if p.binding_host_id.is_empty() {
        return Ok(view(p));
    }
    Ok(live_view(p, &Liveness::read(&ctx.nb).await?))
}

async fn list_ports(
    axum::extract::State(ctx): State,
    headers: HeaderMap,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Json<Value>> {
    let q = ListQuery::parse(q)?;
    // From the port index when the query allows (see `port_lists`); respond() does the rest.
    let items = crate::port_lists::port_views(&ctx, &q).await?;
    let known = view(&Port::new(""));
    Ok(Json(q.respond(items, &known, "ports", "/v2.0/ports", &host(&headers))?))
}

async fn show(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    let q = ListQuery::parse(q)?;
    let p: Port = fetch(&ctx.nb, &id).await?;
    Ok(respond(StatusCode::OK, "port", q.project(live_view_of(&ctx, &p).await?)))
}

/// Parses a `fixed_ips` value (`null` = none).
pub(crate) fn parse_fixed_ips(v: &Value, field: &str) -> ApiResult<Vec<FixedIp>> {
    if v.is_null() {
        return Ok(Vec::new());
    }
    serde_json::from_value(v.clone())
        .map_err(|e| ApiError::bad_request(format!("Invalid input for {field}. Reason: {e} (value {v}).")))
}

/// Gives every fixed IP its subnet: an address without a subnet gets the subnet of `network`
/// holding it; a subnet without an address keeps the address `previous` had on that subnet (an
/// update that lists `{"subnet_id": ...}` keeps the port's address), else the NB allocates one.
pub(crate) fn resolve_fixed_ips(
    network: &str,
    subnets: &[Subnet],
    ips: Vec<FixedIp>,
    previous: &[FixedIp],
) -> ApiResult<Vec<FixedIp>> {
    let mut out: Vec<FixedIp> = Vec::with_capacity(ips.len());
    for (i, mut f) in ips.into_iter().enumerate() {
        match (f.subnet_id.is_empty(), f.ip_address) {
            (true, Some(ip)) => {
                let s = subnets.iter().find(|s| s.cidr.contains(&ip)).ok_or_else(|| {
                    ApiError::invalid_input(format!(
                        "IP address {ip} (fixed_ips[{i}]) is not a valid IP for any of the subnets on network {network}."
                    ))
                })?;
                f.subnet_id = s.id.clone();
            }
            (false, None) => {
                let taken = |ip: &IpAddr| out.iter().any(|o| o.ip_address == Some(*ip));
                f.ip_address = previous
                    .iter()
                    .filter(|p| p.subnet_id == f.subnet_id)
                    .filter_map(|p| p.ip_address)
                    .find(|ip| !taken(ip));
            }
            _ => {}
        }
        out.push(f);
    }
    Ok(out)
}

/// What a port gets when it asks for no address: one from the first IPv4 subnet and one from the
/// first IPv6 subnet of its network (oldest first).
pub(crate) fn default_fixed_ips(subnets: &[Subnet]) -> Vec<FixedIp> {
    let first = |v: u8| subnets.iter().find(|s| s.ip_version == v);
    [first(4), first(6)]
        .into_iter()
        .flatten()
        .map(|s| FixedIp { subnet_id: s.id.clone(), ip_address: None })
        .collect()
}

fn normalize(m: &mut Map<String, Value>) -> ApiResult<()> {
    normalize_bool(m, "admin_state_up")?;
    normalize_bool(m, "port_security_enabled")?;
    for k in ["device_id", "device_owner", "name", "description", "mac_address"] {
        null_as_empty(m, k);
    }
    for k in ["security_groups", "allowed_address_pairs"] {
        if matches!(m.get(k), Some(Value::Null)) {
            m.insert(k.into(), json!([]));
        }
    }
    Ok(())
}

/// Sets the derived binding attributes after `binding:host_id` changed.
pub(crate) fn set_vif(p: &mut Port) {
    if p.binding_host_id.is_empty() {
        p.binding_vif_type = tern_model::VIF_TYPE_UNBOUND.to_string();
        p.binding_vif_details = Map::new();
    } else {
        let (t, d) = bound_vif();
        p.binding_vif_type = t;
        p.binding_vif_details = d;
    }
}

async fn create(axum::extract::State(ctx): State, JsonBody(body): JsonBody) -> ApiResult<Response> {
    let mut m = envelope(body, "port")?;
    let owner_rules = crate::policy::network_owner_rules("create", &m);
    ATTRS.check(&mut m, Op::Create)?;
    let project = take_project(&mut m)?.unwrap_or_default();
    normalize(&mut m)?;
    let Some(network_id) = opt_str(&m, "network_id")? else {
        return Err(ApiError::bad_request(
            "Failed to parse request. Required attribute 'network_id' not specified",
        ));
    };
    m.insert("project_id".into(), Value::String(project.clone()));
    let requested_ips = match m.remove("fixed_ips") {
        Some(v) => Some(parse_fixed_ips(&v, "fixed_ips")?),
        None => None,
    };
    let sgs_given = m.contains_key("security_groups");
    let (ctx, m, owner_rules) = (&ctx, &m, &owner_rules);
    let port = transact(&ctx.nb, |tx| {
        let (requested_ips, project, network_id) =
            (requested_ips.clone(), project.clone(), network_id.clone());
        async move {
            tx.enforce_quota(tern_model::QuotaResource::Port);
            let network: Network = tx_fetch(&tx, &network_id).await?;
            crate::policy::check_network_owner(owner_rules, &network.project_id)?;
            let mut changes = m.clone();
            if !changes.contains_key("port_security_enabled") {
                changes.insert("port_security_enabled".into(), json!(network.port_security_enabled));
            }
            let mut p: Port = build_valid(&Map::new(), &changes)?;
            let subnets = crate::subnets::of_network(ctx, &network_id).await?;
            p.fixed_ips = match requested_ips {
                Some(ips) => resolve_fixed_ips(&network_id, &subnets, ips, &[])?,
                None => default_fixed_ips(&subnets),
            };
            set_vif(&mut p);
            // Validate everything (model rules, fixed IPs against their subnets, security groups);
            // the project's default security group is written with the port when it is new.
            p.validate().map_err(|e| crate::error::validation(&e))?;
            check_fixed_ips_fit(ctx, &p, &subnets).await?;
            check_bindable(&ctx.nb, &p.id, &p.binding_host_id).await?;
            check_security_groups(&tx, &p).await?;
            let trusted = p.device_owner.starts_with("network:");
            if !sgs_given && p.port_security_enabled && !trusted {
                p.security_groups = vec![crate::security_groups::ensure_default_in(&tx, &project).await?];
            }
            let id = stage(&tx, p);
            let done = tx.commit().await?;
            committed::<Port>(&done, &id)
        }
    })
    .await?;
    Ok(respond(StatusCode::CREATED, "port", live_view_of(ctx, &port).await?))
}

/// The port's security groups exist (404 otherwise) and are all stateful or all stateless (409
/// otherwise, as Neutron); read through `tx`, so a group changed or deleted meanwhile fails it.
async fn check_security_groups(tx: &Tx, p: &Port) -> ApiResult<()> {
    let mut stateful = std::collections::BTreeSet::new();
    for sg in &p.security_groups {
        let g: tern_model::SecurityGroup = tx_fetch(tx, sg).await?;
        stateful.insert(g.stateful);
    }
    if stateful.len() > 1 {
        return Err(ApiError::conflict(
            "SecurityGroupConflict",
            format!(
                "Cannot apply both stateful and stateless security groups on the same port at the same time. Attempted to update port {} with security group(s) {}.",
                p.id,
                p.security_groups.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Fixed IPs name existing subnets (404 otherwise) of the port's network, and addresses inside
/// them (400 otherwise).
async fn check_fixed_ips_fit(ctx: &Ctx, p: &Port, subnets: &[Subnet]) -> ApiResult<()> {
    for (i, f) in p.fixed_ips.iter().enumerate() {
        if !subnets.iter().any(|s| s.id == f.subnet_id) {
            let _: Subnet = fetch(&ctx.nb, &f.subnet_id).await?;
            return Err(ApiError::invalid_input(format!(
                "fixed_ips[{i}].subnet_id {} is not a subnet of network {}",
                f.subnet_id, p.network_id
            )));
        }
    }
    tern_model::check_fixed_ips(p, subnets).map_err(|e| crate::error::validation(&e))
}

async fn update(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let expected = if_match(&headers)?;
    let mut m = envelope(body, "port")?;
    let owner_rules = crate::policy::network_owner_rules("update", &m);
    ATTRS.check(&mut m, Op::Update)?;
    normalize(&mut m)?;
    let requested_ips = match m.remove("fixed_ips") {
        Some(v) => Some(parse_fixed_ips(&v, "fixed_ips")?),
        None => None,
    };
    let (ctx, m, id, owner_rules) = (&ctx, &m, &id, &owner_rules);
    let port = transact(&ctx.nb, |tx| {
        let requested_ips = requested_ips.clone();
        async move {
            let cur: Port = tx_fetch_if_match(&tx, id, expected).await?;
            if !owner_rules.is_empty() {
                let network: Network = tx_fetch(&tx, &cur.network_id).await?;
                crate::policy::check_network_owner(owner_rules, &network.project_id)?;
            }
            let mut p: Port = patched(&cur, m)?;
            if let Some(ips) = requested_ips {
                let subnets = crate::subnets::of_network(ctx, &p.network_id).await?;
                p.fixed_ips = resolve_fixed_ips(&p.network_id, &subnets, ips, &cur.fixed_ips)?;
                check_fixed_ips_fit(ctx, &p, &subnets).await?;
            }
            if p.binding_host_id != cur.binding_host_id {
                set_vif(&mut p);
            }
            p.validate().map_err(|e| crate::error::validation(&e))?;
            if p.binding_host_id != cur.binding_host_id {
                check_bindable(&ctx.nb, &p.id, &p.binding_host_id).await?;
            }
            if p.security_groups != cur.security_groups {
                check_security_groups(&tx, &p).await?;
            }
            if p.binding_host_id != cur.binding_host_id {
                bindings::move_active(&tx, &cur, p, false).await?;
            } else {
                stage(&tx, p);
            }
            let done = tx.commit().await?;
            committed::<Port>(&done, id)
        }
    })
    .await?;
    Ok(respond(StatusCode::OK, "port", live_view_of(ctx, &port).await?))
}

/// One transaction: the floating IPs pointing at the port are disassociated and the port is
/// deleted (the NB deletes its bindings and migration record with it). Floating IPs that start
/// pointing at the port meanwhile make the commit fail (its referrers are guarded), and it runs
/// again.
async fn remove(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let expected = if_match(&headers)?;
    let (ctx, id) = (&ctx, &id);
    transact(&ctx.nb, |tx| async move {
        let cur: Port = tx_fetch_if_match(&tx, id, expected).await?;
        if [OWNER_ROUTER_INTERFACE, OWNER_ROUTER_GATEWAY, OWNER_FLOATINGIP]
            .contains(&cur.device_owner.as_str())
        {
            return Err(ApiError::conflict(
                "ServicePortInUse",
                format!(
                    "Port {id} cannot be deleted directly via the port API: has device owner {}.",
                    cur.device_owner
                ),
            ));
        }
        tx.guard_referrers(Kind::Port, id).await?;
        for mut fip in
            list::<FloatingIp>(&ctx.nb).await?.into_iter().filter(|f| f.port_id.as_deref() == Some(id))
        {
            fip.port_id = None;
            fip.fixed_ip_address = None;
            fip.router_id = None;
            fip.status = FloatingIpStatus::Down;
            stage(&tx, fip);
        }
        tx.delete(Kind::Port, id);
        tx.commit().await?;
        Ok(())
    })
    .await?;
    Ok(no_content())
}

/// Stages, in `tx`, a port another resource owns (router interface or gateway, floating IP): no
/// port security, no security groups, `fixed_ips` resolved (or one IPv4 address allocated when
/// empty). Returns it with its id, MAC and addresses already chosen (they are claimed at commit).
pub(crate) async fn stage_service_port(
    ctx: &Ctx,
    tx: &Tx,
    network_id: &str,
    owner: &str,
    device_id: &str,
    project: &str,
    fixed_ips: Vec<FixedIp>,
) -> ApiResult<Port> {
    let subnets = crate::subnets::of_network(ctx, network_id).await?;
    let mut p = Port::new(network_id);
    p.project_id = project.to_string();
    p.device_owner = owner.to_string();
    p.device_id = device_id.to_string();
    p.port_security_enabled = false;
    if owner == OWNER_ROUTER_INTERFACE {
        p.status = Status::Active;
    }
    p.fixed_ips = if fixed_ips.is_empty() {
        let v4 = subnets.iter().find(|s| s.ip_version == 4).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Bad request: network {network_id} has no IPv4 subnet to allocate an address from"
            ))
        })?;
        vec![FixedIp { subnet_id: v4.id.clone(), ip_address: None }]
    } else {
        resolve_fixed_ips(network_id, &subnets, fixed_ips, &[])?
    };
    p.validate().map_err(|e| crate::error::validation(&e))?;
    check_fixed_ips_fit(ctx, &p, &subnets).await?;
    let mut object = Object::Port(p);
    tx.fill_defaults(&mut object).await?;
    let Object::Port(p) = object else { return Err(ApiError::internal("the NB filled another kind")) };
    stage(tx, p.clone());
    Ok(p)
}

/// Ports owned by `device_id` with `owner` (found by their device, from the port index: the
/// cleanup of an interrupted multi-object operation must find them even if the owner does not
/// list them).
pub(crate) async fn owned_ports(ctx: &Ctx, owner: &str, device_id: &str) -> ApiResult<Vec<Port>> {
    let mut ports = crate::port_lists::device_ports(ctx, device_id).await?;
    ports.retain(|p| p.device_owner == owner);
    Ok(ports)
}
