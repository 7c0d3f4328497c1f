//! Discovery documents: `GET /` (Neutron's version list, so clients pointed at the bare
//! endpoint find v2.0), `GET /v2.0/` (the resource list) and `/v2.0/extensions` (only the
//! extensions tern implements).

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::input::PathParam;
use crate::util::{host, respond, Ctx, State};

pub(crate) fn routes() -> Router<Arc<Ctx>> {
    Router::new()
        .route("/", get(versions))
        .route("/v2.0", get(resources))
        .route("/v2.0/", get(resources))
        .route("/v2.0/extensions", get(list_extensions))
        .route("/v2.0/extensions/{alias}", get(show_extension))
}

/// (alias, name, description) of every extension tern implements.
pub(crate) const EXTENSIONS: &[(&str, &str, &str)] = &[
    ("agent", "agent", "The agent management extension (read-only: one agent per tern chassis)."),
    ("allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs"),
    ("binding", "Port Binding", "Expose port bindings of a virtual port to external application"),
    ("binding-extended", "Port Bindings Extended", "Expose port bindings of a virtual port to external application"),
    ("external-net", "Neutron external network", "Adds external network attribute to network resource."),
    ("ext-gw-mode", "Neutron L3 Configurable external gateway mode", "Extension of the router abstraction for specifying whether SNAT should occur on the external gateway"),
    ("extraroute", "Neutron Extra Route", "Extra routes configuration for L3 router"),
    ("filter-validation", "Filter parameters validation", "Provides validation on filter parameters."),
    ("net-mtu", "Network MTU", "Provides MTU attribute for a network resource."),
    ("pagination", "Pagination support", "Extension that indicates that pagination is enabled."),
    ("port-security", "Port Security", "Provides port security"),
    ("project-id", "project_id field enabled", "Extension that indicates that project_id field is enabled."),
    ("provider", "Provider Network", "Expose mapping of virtual networks to physical networks (geneve only)"),
    ("quota_details", "Quota details management support", "Expose functions for quotas usage statistics per project"),
    ("quotas", "Quota management support", "Expose functions for quotas management per project"),
    ("revision-if-match", "If-Match constraints based on revision_number", "Extension indicating that If-Match based on revision_number is supported."),
    ("router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks via a NAT gateway."),
    ("security-group", "security-group", "The security groups extension."),
    ("sorting", "Sorting support", "Extension that indicates that sorting is enabled."),
    ("standard-attr-description", "standard-attr-description", "Extension to add descriptions to standard attributes"),
    ("standard-attr-revisions", "Resource revision numbers", "This extension will display the revision number of neutron resources."),
    ("standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes."),
    ("stateful-security-group", "Stateful security group", "Indicates if the security group is stateful or not"),
];

/// The collections under `/v2.0/` as (member name, collection name in the URL).
const RESOURCES: &[(&str, &str)] = &[
    ("network", "networks"),
    ("subnet", "subnets"),
    ("port", "ports"),
    ("router", "routers"),
    ("floatingip", "floatingips"),
    ("security_group", "security-groups"),
    ("security_group_rule", "security-group-rules"),
    ("agent", "agents"),
    ("quota", "quotas"),
    ("extension", "extensions"),
];

async fn versions(headers: HeaderMap) -> Json<Value> {
    let href = format!("{}/v2.0/", host(&headers));
    Json(json!({"versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"href": href, "rel": "self"}]}]}))
}

async fn resources(headers: HeaderMap) -> Json<Value> {
    let h = host(&headers);
    let list: Vec<Value> = RESOURCES
        .iter()
        .map(|(name, collection)| {
            json!({"name": name, "collection": collection,
                   "links": [{"href": format!("{h}/v2.0/{collection}"), "rel": "self"}]})
        })
        .collect();
    Json(json!({"resources": list}))
}

fn extension_view((alias, name, description): &(&str, &str, &str)) -> serde_json::Map<String, Value> {
    let v = json!({"alias": alias, "name": name, "description": description, "links": [],
                   "updated": "2013-01-20T00:00:00-00:00"});
    v.as_object().cloned().unwrap_or_default()
}

async fn list_extensions(axum::extract::State(_): State) -> Json<Value> {
    Json(json!({"extensions": EXTENSIONS.iter().map(extension_view).collect::<Vec<_>>()}))
}

async fn show_extension(PathParam(alias): PathParam<String>) -> ApiResult<Response> {
    let ext = EXTENSIONS.iter().find(|(a, _, _)| *a == alias).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "HTTPNotFound",
            format!("Extension with alias {alias} does not exist"),
        )
    })?;
    Ok(respond(StatusCode::OK, "extension", extension_view(ext)))
}
