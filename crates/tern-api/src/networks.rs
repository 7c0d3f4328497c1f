//! `/v2.0/networks`: Neutron networks over tern's `Network` (provider attributes show the Geneve
//! VNI, or `flat` and the physical network of a provider network; `subnets` is derived from the subnets on read). Deleting a network deletes its subnets
//! first, then the network, and is refused (409 NetworkInUse) while it has ports.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tern_model::{FloatingIp, Network, Port, QuotaResource, Subnet};

use crate::ports::{owned_ports, OWNER_FLOATINGIP};

use crate::error::{ApiError, ApiResult};
use crate::input::{
    build_valid, envelope, if_match, normalize_bool, normalize_int, take_project, Attrs, JsonBody, Op,
    PathParam, QueryPairs,
};
use crate::query::ListQuery;
use crate::util::{
    add_project, commit_first, fetch, host, list, no_content, patched, respond, stage, stage_delete,
    transact, tx_fetch_if_match, Ctx, State,
};

/// Network attributes. Ignored: `availability_zone_hints`, `dns_domain`, `qos_policy_id`,
/// `is_default`, `tags` (tags have their own API in Neutron).
const ATTRS: Attrs = Attrs {
    create: &[
        "name",
        "description",
        "admin_state_up",
        "shared",
        "router:external",
        "mtu",
        "port_security_enabled",
        "provider:network_type",
        "provider:physical_network",
        "provider:segmentation_id",
    ],
    update: &[
        "name",
        "description",
        "admin_state_up",
        "shared",
        "router:external",
        "mtu",
        "port_security_enabled",
    ],
    ignored: &["availability_zone_hints", "dns_domain", "qos_policy_id", "is_default", "tags"],
    read_only: &[
        "id",
        "status",
        "subnets",
        "revision_number",
        "created_at",
        "updated_at",
        "availability_zones",
        "l2_adjacency",
        "ipv4_address_scope",
        "ipv6_address_scope",
        "provider:network_type",
        "provider:physical_network",
        "provider:segmentation_id",
    ],
};

pub(crate) fn routes() -> Router<Arc<Ctx>> {
    Router::new()
        .route("/v2.0/networks", get(list_networks).post(create))
        .route("/v2.0/networks/{id}", get(show).put(update).delete(remove))
}

/// Neutron's view of a network.
pub(crate) fn view(n: &Network, subnets: Vec<String>) -> Map<String, Value> {
    let mut v = Map::new();
    v.insert("id".into(), json!(n.id));
    v.insert("name".into(), json!(n.name));
    v.insert("description".into(), json!(n.description));
    add_project(&mut v, &n.project_id);
    v.insert("admin_state_up".into(), json!(n.admin_state_up));
    v.insert("status".into(), json!(n.status));
    v.insert("shared".into(), json!(n.shared));
    v.insert("router:external".into(), json!(n.router_external));
    v.insert("mtu".into(), json!(n.mtu));
    v.insert("port_security_enabled".into(), json!(n.port_security_enabled));
    v.insert("subnets".into(), json!(subnets));
    if let Some(physnet) = &n.physical_network {
        v.insert("provider:network_type".into(), json!("flat"));
        v.insert("provider:physical_network".into(), json!(physnet));
        v.insert("provider:segmentation_id".into(), Value::Null);
    } else {
        v.insert("provider:network_type".into(), json!("geneve"));
        v.insert("provider:physical_network".into(), Value::Null);
        v.insert("provider:segmentation_id".into(), json!(n.vni()));
    }
    v.insert("availability_zone_hints".into(), json!([]));
    v.insert("availability_zones".into(), json!([]));
    v.insert("ipv4_address_scope".into(), Value::Null);
    v.insert("ipv6_address_scope".into(), Value::Null);
    v.insert("l2_adjacency".into(), json!(true));
    v.insert("is_default".into(), json!(false));
    v.insert("dns_domain".into(), json!(""));
    v.insert("qos_policy_id".into(), Value::Null);
    v.insert("tags".into(), json!([]));
    v.insert("revision_number".into(), json!(n.revision_number));
    v.insert("created_at".into(), json!(n.created_at));
    v.insert("updated_at".into(), json!(n.updated_at));
    v
}

/// Ids of each network's subnets.
fn subnets_by_network(subnets: &[Subnet]) -> BTreeMap<&str, Vec<String>> {
    let mut m: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for s in subnets {
        m.entry(s.network_id.as_str()).or_default().push(s.id.clone());
    }
    m
}

async fn subnet_ids(ctx: &Ctx, network: &str) -> ApiResult<Vec<String>> {
    Ok(list::<Subnet>(&ctx.nb).await?.into_iter().filter(|s| s.network_id == network).map(|s| s.id).collect())
}

async fn list_networks(
    axum::extract::State(ctx): State,
    headers: HeaderMap,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Json<Value>> {
    let q = ListQuery::parse(q)?;
    let networks = list::<Network>(&ctx.nb).await?;
    let subnets = list::<Subnet>(&ctx.nb).await?;
    let by_net = subnets_by_network(&subnets);
    let items =
        networks.iter().map(|n| view(n, by_net.get(n.id.as_str()).cloned().unwrap_or_default())).collect();
    let known = view(&Network::default(), vec![]);
    Ok(Json(q.respond(items, &known, "networks", "/v2.0/networks", &host(&headers))?))
}

async fn show(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    let q = ListQuery::parse(q)?;
    let n: Network = fetch(&ctx.nb, &id).await?;
    let subnets = subnet_ids(&ctx, &id).await?;
    Ok(respond(StatusCode::OK, "network", q.project(view(&n, subnets))))
}

/// Normalizes the attribute values of a create or update body into the model's fields.
fn normalize(m: &mut Map<String, Value>) -> ApiResult<()> {
    for b in ["admin_state_up", "shared", "router:external", "port_security_enabled"] {
        normalize_bool(m, b)?;
    }
    normalize_int(m, "mtu")?;
    normalize_int(m, "provider:segmentation_id")?;
    let physnet = match m.remove("provider:physical_network") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p),
        Some(other) => {
            return Err(ApiError::invalid_input(format!(
                "provider:physical_network {other} must be a string"
            )))
        }
    };
    match (m.remove("provider:network_type"), physnet) {
        (None | Some(Value::Null), None) => {}
        (Some(Value::String(t)), None) if t == "geneve" => {}
        (Some(Value::String(t)), Some(p)) if t == "flat" => {
            m.insert("physical_network".into(), Value::String(p));
        }
        (Some(Value::String(t)), None) if t == "flat" => {
            return Err(ApiError::invalid_input(
                "provider:network_type flat needs provider:physical_network (a bridge mapping's name)",
            ))
        }
        (None | Some(Value::Null), Some(p)) => {
            return Err(ApiError::invalid_input(format!(
                "provider:physical_network {p:?} needs provider:network_type flat"
            )))
        }
        (Some(Value::String(t)), Some(_)) if t == "geneve" => {
            return Err(ApiError::invalid_input(
                "provider:physical_network is only for provider:network_type flat, not geneve",
            ))
        }
        (Some(other), _) => {
            return Err(ApiError::invalid_input(format!(
                "provider:network_type {other} is not supported: tern networks are geneve overlays or flat provider networks"
            )))
        }
    }
    if let Some(vni) = m.remove("provider:segmentation_id") {
        if !vni.is_null() {
            m.insert("segmentation_id".into(), vni);
        }
    }
    Ok(())
}

async fn create(axum::extract::State(ctx): State, JsonBody(body): JsonBody) -> ApiResult<Response> {
    let mut m = envelope(body, "network")?;
    ATTRS.check(&mut m, Op::Create)?;
    let project = take_project(&mut m)?;
    normalize(&mut m)?;
    if let Some(p) = project {
        m.insert("project_id".into(), Value::String(p));
    }
    // No MTU asked for: the largest the underlay leaves (Neutron's default).
    if matches!(m.get("mtu"), None | Some(Value::Null)) {
        let flat = m.contains_key("physical_network");
        m.insert("mtu".into(), json!(tern_model::max_network_mtu(ctx.underlay_mtu, flat)));
    }
    let n: Network = build_valid(&Map::new(), &m)?;
    check_mtu(&ctx, &n)?;
    let n = &n;
    let n = transact(&ctx.nb, |tx| async move {
        tx.enforce_quota(QuotaResource::Network);
        stage(&tx, n.clone());
        commit_first::<Network>(tx).await
    })
    .await?;
    Ok(respond(StatusCode::CREATED, "network", view(&n, vec![])))
}

async fn update(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let expected = if_match(&headers)?;
    let mut m = envelope(body, "network")?;
    ATTRS.check(&mut m, Op::Update)?;
    normalize(&mut m)?;
    let (ctx_ref, m, id_ref) = (&ctx, &m, &id);
    let n: Network = transact(&ctx.nb, |tx| async move {
        let cur: Network = tx_fetch_if_match(&tx, id_ref, expected).await?;
        let n: Network = patched(&cur, m)?;
        // A network stored with a larger MTU (before the underlay shrank) keeps it.
        if n.mtu != cur.mtu {
            check_mtu(ctx_ref, &n)?;
        }
        stage(&tx, n);
        commit_first(tx).await
    })
    .await?;
    let subnets = subnet_ids(&ctx, &id).await?;
    Ok(respond(StatusCode::OK, "network", view(&n, subnets)))
}

/// Neutron's "Requested MTU is too big" for an MTU the underlay cannot carry.
fn check_mtu(ctx: &Ctx, n: &Network) -> ApiResult<()> {
    tern_model::check_network_mtu(n, ctx.underlay_mtu).map_err(|e| crate::error::validation(&e))
}

/// The NB deletes the network with its subnets in one transaction, and refuses (409 NetworkInUse)
/// while the network has ports.
async fn remove(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let expected = if_match(&headers)?;
    let (ctx, id) = (&ctx, &id);
    // An external network goes with its floating IPs that no port uses (as Neutron's
    // delete_disassociated_floatingips), in the same transaction; an associated one keeps it.
    transact(&ctx.nb, |tx| async move {
        let n: Network = tx_fetch_if_match(&tx, id, expected).await?;
        if n.router_external {
            let unused = list::<FloatingIp>(&ctx.nb).await?;
            for f in unused.iter().filter(|f| f.floating_network_id == *id && f.port_id.is_none()) {
                stage_delete::<FloatingIp>(&tx, &f.id).await?;
                for p in owned_ports(ctx, OWNER_FLOATINGIP, &f.id).await? {
                    stage_delete::<Port>(&tx, &p.id).await?;
                }
            }
        }
        tx.delete(tern_model::Kind::Network, id);
        tx.commit().await?;
        Ok(())
    })
    .await?;
    Ok(no_content())
}
