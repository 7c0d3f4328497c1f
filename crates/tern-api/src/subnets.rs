//! `/v2.0/subnets`: IPv4/IPv6 subnets of a network (gateway defaulting to the first address,
//! allocation pools derived from the CIDR when not given, DHCP flag, DNS servers, host routes).
//! Overlapping subnets on one network are a 409; deleting a subnet ports still use is a 409.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use ipnet::IpNet;
use serde_json::{json, Map, Value};
use tern_model::{QuotaResource, Subnet};

use crate::error::{ApiError, ApiResult};
use crate::input::{
    build_valid, envelope, if_match, normalize_bool, normalize_int, opt_str, take_project, Attrs, JsonBody,
    Op, PathParam, QueryPairs,
};
use crate::util::{
    add_project, commit_first, delete_if_match, list, list_answer, no_content, respond, show_answer, stage,
    transact, update_plain, Ctx, State,
};

/// Subnet attributes. Ignored: `ipv6_ra_mode`, `ipv6_address_mode`, `subnetpool_id`, `prefixlen`,
/// `use_default_subnet_pool`, `segment_id`, `service_types`, `dns_publish_fixed_ip`, `tags`.
const ATTRS: Attrs = Attrs {
    create: &[
        "name",
        "description",
        "network_id",
        "ip_version",
        "cidr",
        "gateway_ip",
        "allocation_pools",
        "enable_dhcp",
        "dns_nameservers",
        "host_routes",
    ],
    update: &[
        "name",
        "description",
        "gateway_ip",
        "allocation_pools",
        "enable_dhcp",
        "dns_nameservers",
        "host_routes",
    ],
    ignored: &[
        "ipv6_ra_mode",
        "ipv6_address_mode",
        "subnetpool_id",
        "prefixlen",
        "use_default_subnet_pool",
        "segment_id",
        "service_types",
        "dns_publish_fixed_ip",
        "tags",
    ],
    read_only: &["id", "revision_number", "created_at", "updated_at", "network_id", "ip_version", "cidr"],
};

pub(crate) fn routes() -> Router<Arc<Ctx>> {
    Router::new()
        .route("/v2.0/subnets", get(list_subnets).post(create))
        .route("/v2.0/subnets/{id}", get(show).put(update).delete(remove))
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v4: bool, n: u128) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(n))
    }
}

/// The usable host range of a CIDR (network and IPv4 broadcast addresses excluded where the
/// prefix leaves room for hosts).
fn host_range(cidr: &IpNet) -> (u128, u128) {
    let cidr = cidr.trunc();
    let (lo, hi) = (to_u128(cidr.network()), to_u128(cidr.broadcast()));
    match cidr {
        IpNet::V4(n) if n.prefix_len() <= 30 => (lo + 1, hi - 1),
        IpNet::V6(n) if n.prefix_len() <= 126 => (lo + 1, hi),
        _ => (lo, hi),
    }
}

/// Neutron's default gateway: the first host address.
fn default_gateway(cidr: &IpNet) -> IpAddr {
    let v4 = matches!(cidr, IpNet::V4(_));
    from_u128(v4, host_range(cidr).0)
}

/// The allocation pools to show: the stored ones, or the host range minus the gateway.
pub(crate) fn effective_pools(s: &Subnet) -> Value {
    if !s.allocation_pools.is_empty() {
        return json!(s.allocation_pools);
    }
    let v4 = matches!(s.cidr, IpNet::V4(_));
    let (lo, hi) = host_range(&s.cidr);
    let mut ranges = vec![(lo, hi)];
    if let Some(gw) = s.gateway_ip.filter(|g| s.cidr.contains(g)) {
        let g = to_u128(gw);
        ranges = ranges
            .into_iter()
            .flat_map(|(a, b)| {
                if g < a || g > b {
                    vec![(a, b)]
                } else {
                    let mut v = Vec::new();
                    if g > a {
                        v.push((a, g - 1));
                    }
                    if g < b {
                        v.push((g + 1, b));
                    }
                    v
                }
            })
            .collect();
    }
    Value::Array(
        ranges
            .into_iter()
            .map(|(a, b)| json!({"start": from_u128(v4, a).to_string(), "end": from_u128(v4, b).to_string()}))
            .collect(),
    )
}

pub(crate) fn view(s: &Subnet) -> Map<String, Value> {
    let mut v = Map::new();
    v.insert("id".into(), json!(s.id));
    v.insert("name".into(), json!(s.name));
    v.insert("description".into(), json!(s.description));
    add_project(&mut v, &s.project_id);
    v.insert("network_id".into(), json!(s.network_id));
    v.insert("ip_version".into(), json!(s.ip_version));
    v.insert("cidr".into(), json!(s.cidr.to_string()));
    v.insert("gateway_ip".into(), json!(s.gateway_ip.map(|g| g.to_string())));
    v.insert("allocation_pools".into(), effective_pools(s));
    v.insert("enable_dhcp".into(), json!(s.enable_dhcp));
    v.insert(
        "dns_nameservers".into(),
        json!(s.dns_nameservers.iter().map(|d| d.to_string()).collect::<Vec<_>>()),
    );
    v.insert("host_routes".into(), json!(s.host_routes));
    v.insert("ipv6_ra_mode".into(), Value::Null);
    v.insert("ipv6_address_mode".into(), Value::Null);
    v.insert("subnetpool_id".into(), Value::Null);
    v.insert("segment_id".into(), Value::Null);
    v.insert("service_types".into(), json!([]));
    v.insert("tags".into(), json!([]));
    v.insert("revision_number".into(), json!(s.revision_number));
    v.insert("created_at".into(), json!(s.created_at));
    v.insert("updated_at".into(), json!(s.updated_at));
    v
}

/// Subnets of a network, oldest first (the order fixed IPs are allocated in).
pub(crate) async fn of_network(ctx: &Ctx, network: &str) -> ApiResult<Vec<Subnet>> {
    let mut v: Vec<Subnet> =
        list::<Subnet>(&ctx.nb).await?.into_iter().filter(|s| s.network_id == network).collect();
    v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
    Ok(v)
}

async fn list_subnets(
    axum::extract::State(ctx): State,
    headers: HeaderMap,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Json<Value>> {
    let known = view(&Subnet::new("", "0.0.0.0/0".parse().unwrap_or(IpNet::V4(Default::default()))));
    list_answer(&ctx.nb, q, &headers, ("subnets", "/v2.0/subnets"), view, known).await
}

async fn show(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    show_answer(&ctx.nb, &id, q, "subnet", view).await
}

fn normalize(m: &mut Map<String, Value>) -> ApiResult<()> {
    normalize_bool(m, "enable_dhcp")?;
    normalize_int(m, "ip_version")?;
    for k in ["dns_nameservers", "host_routes", "allocation_pools"] {
        if matches!(m.get(k), Some(Value::Null)) {
            m.insert(k.into(), json!([]));
        }
    }
    Ok(())
}

async fn create(axum::extract::State(ctx): State, JsonBody(body): JsonBody) -> ApiResult<Response> {
    let mut m = envelope(body, "subnet")?;
    ATTRS.check(&mut m, Op::Create)?;
    let project = take_project(&mut m)?;
    normalize(&mut m)?;
    for required in ["network_id", "cidr"] {
        if opt_str(&m, required)?.is_none() {
            return Err(ApiError::bad_request(format!(
                "Failed to parse request. Required attribute '{required}' not specified"
            )));
        }
    }
    let cidr_text = opt_str(&m, "cidr")?.unwrap_or_default();
    let Ok(cidr) = cidr_text.parse::<IpNet>() else {
        return Err(ApiError::bad_request(format!(
            "Invalid input for cidr. Reason: '{cidr_text}' is not a valid IP subnet."
        )));
    };
    let cidr = Some(cidr);
    if !m.contains_key("ip_version") {
        if let Some(c) = &cidr {
            m.insert("ip_version".into(), json!(if matches!(c, IpNet::V4(_)) { 4 } else { 6 }));
        }
    }
    if !m.contains_key("gateway_ip") {
        if let Some(c) = &cidr {
            m.insert("gateway_ip".into(), json!(default_gateway(c).to_string()));
        }
    }
    if let Some(p) = project {
        m.insert("project_id".into(), Value::String(p));
    }
    let s: Subnet = build_valid(&Map::new(), &m)?;
    // The NB refuses a missing network (404), an overlap with another subnet of the network
    // (400, as Neutron) and one subnet too many for the project's quota (409) in the same write.
    let s = &s;
    let s = transact(&ctx.nb, |tx| async move {
        tx.enforce_quota(QuotaResource::Subnet);
        stage(&tx, s.clone());
        commit_first::<Subnet>(tx).await
    })
    .await?;
    Ok(respond(StatusCode::CREATED, "subnet", view(&s)))
}

pub(crate) fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    let (a, b) = (a.trunc(), b.trunc());
    a.contains(&b.network()) || b.contains(&a.network())
}

async fn update(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let expected = if_match(&headers)?;
    let mut m = envelope(body, "subnet")?;
    ATTRS.check(&mut m, Op::Update)?;
    normalize(&mut m)?;
    let s: Subnet = update_plain(&ctx.nb, &id, expected, &m).await?;
    Ok(respond(StatusCode::OK, "subnet", view(&s)))
}

/// Refused (409 SubnetInUse) while a port has an address on the subnet (router interfaces
/// included): the NB checks that in the delete itself.
async fn remove(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let expected = if_match(&headers)?;
    delete_if_match::<Subnet>(&ctx.nb, &id, expected).await?;
    Ok(no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_and_gateways() {
        let mut s = Subnet::new("n", "10.0.0.0/24".parse().unwrap());
        s.gateway_ip = Some(default_gateway(&s.cidr));
        assert_eq!(s.gateway_ip.unwrap().to_string(), "10.0.0.1");
        assert_eq!(effective_pools(&s), json!([{"start": "10.0.0.2", "end": "10.0.0.254"}]));
        s.gateway_ip = Some("10.0.0.100".parse().unwrap());
        assert_eq!(
            effective_pools(&s),
            json!([{"start": "10.0.0.1", "end": "10.0.0.99"}, {"start": "10.0.0.101", "end": "10.0.0.254"}])
        );
        let mut s = Subnet::new("n", "fd00::/64".parse().unwrap());
        s.gateway_ip = Some(default_gateway(&s.cidr));
        assert_eq!(s.gateway_ip.unwrap().to_string(), "fd00::1");
        assert_eq!(effective_pools(&s), json!([{"start": "fd00::2", "end": "fd00::ffff:ffff:ffff:ffff"}]));
        assert!(overlaps(&"10.0.0.0/16".parse().unwrap(), &"10.0.5.0/24".parse().unwrap()));
        assert!(!overlaps(&"10.0.0.0/24".parse().unwrap(), &"10.0.1.0/24".parse().unwrap()));
    }
}
