//! `/v2.0/security-groups` and `/v2.0/security-group-rules`. Rules live inside tern's
//! `SecurityGroup` object; the rules collection is a view over every group's rules (each rule has
//! its own id), and rule writes are read-modify-writes of the owning group.
//!
//! Every new group gets Neutron's default egress rules (IPv4 and IPv6, any). Each project's
//! `default` group (also ingress from members of the group itself) is created on first need: a
//! port created without `security_groups`, or a group listing. Its id (and its rules' ids) are
//! derived from the project, so concurrent creators on any server write the same object.
//!
//! Every operation is one NB transaction. A delete guards the group's referrers before it looks
//! for ports using it, and removes the rules of other groups naming it as their remote group in
//! the same transaction; a port that starts using the group meanwhile fails the commit.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tern_model::{Direction, EtherType, Kind, Port, QuotaResource, SecurityGroup, SecurityGroupRule};
use tern_store::nb::{Nb, NbError, Tx};

use crate::error::{in_use, ApiError, ApiResult};
use crate::input::{
    build_valid, envelope, if_match, normalize_bool, normalize_int, null_as_empty, opt_str, take_project,
    Attrs, JsonBody, Op, PathParam, QueryPairs,
};
use crate::query::ListQuery;
use crate::util::{
    add_project, commit_first, derived_uuid, get as nb_get, host, list, list_answer, no_content, patched,
    respond, show_answer, stage, transact, tx_fetch, tx_fetch_if_match, tx_get, Ctx, State,
};

/// Group attributes. Ignored: `tags`.
const ATTRS: Attrs = Attrs {
    create: &["name", "description", "stateful"],
    update: &["name", "description", "stateful"],
    ignored: &["tags"],
    read_only: &["id", "security_group_rules", "revision_number", "created_at", "updated_at", "shared"],
};

/// Rule attributes. Ignored: `remote_address_group_id` (address groups are not modelled),
/// `tags`. `description` is the only attribute an update may change (as in Neutron).
const RULE_ATTRS: Attrs = Attrs {
    create: &[
        "security_group_id",
        "direction",
        "ethertype",
        "protocol",
        "port_range_min",
        "port_range_max",
        "remote_ip_prefix",
        "remote_group_id",
        "description",
    ],
    update: &["description"],
    ignored: &["remote_address_group_id", "tags"],
    read_only: &[
        "id",
        "revision_number",
        "created_at",
        "updated_at",
        "normalized_cidr",
        "belongs_to_default_sg",
        "security_group_id",
        "direction",
        "ethertype",
        "protocol",
        "port_range_min",
        "port_range_max",
        "remote_ip_prefix",
        "remote_group_id",
    ],
};

pub(crate) fn routes() -> Router<Arc<Ctx>> {
    Router::new()
        .route("/v2.0/security-groups", get(list_groups).post(create))
        .route("/v2.0/security-groups/{id}", get(show).put(update).delete(remove))
        .route("/v2.0/security-group-rules", get(list_rules).post(create_rule))
        .route("/v2.0/security-group-rules/{id}", get(show_rule).put(update_rule).delete(remove_rule))
}

/// The id of a project's default group.
pub(crate) fn default_id(project: &str) -> String {
    derived_uuid(&format!("tern-default-security-group:{project}"))
}

fn egress_rules() -> Vec<SecurityGroupRule> {
    vec![
        SecurityGroupRule::new(Direction::Egress, EtherType::IPv4),
        SecurityGroupRule::new(Direction::Egress, EtherType::IPv6),
    ]
}

/// 409: a group named `default` besides the project's own.
fn default_exists() -> ApiError {
    ApiError::conflict("SecurityGroupDefaultAlreadyExists", "Default security group already exists.")
}

/// The project's `default` group as first created.
fn default_group(project: &str) -> SecurityGroup {
    let id = default_id(project);
    let mut rules = egress_rules();
    for ethertype in [EtherType::IPv4, EtherType::IPv6] {
        let mut r = SecurityGroupRule::new(Direction::Ingress, ethertype);
        r.remote_group_id = Some(id.clone());
        rules.push(r);
    }
    for (i, r) in rules.iter_mut().enumerate() {
        r.id = derived_uuid(&format!("{id}:rule:{i}"));
        r.security_group_id = id.clone();
    }
    SecurityGroup {
        id,
        name: "default".into(),
        description: "Default security group".into(),
        project_id: project.to_string(),
        security_group_rules: rules,
        // Revision 1: replaces only an identical group another creator just wrote; a group that
        // was changed since (revision 2 or more) makes this a conflict, and the group exists.
        revision_number: 1,
        ..SecurityGroup::default()
    }
}

/// Creates the project's `default` group if it does not exist; returns its id.
pub(crate) async fn ensure_default(nb: &Nb, project: &str) -> ApiResult<String> {
    let id = default_id(project);
    if nb_get::<SecurityGroup>(nb, &id).await?.is_some() {
        return Ok(id);
    }
    match nb.put(tern_model::Object::SecurityGroup(default_group(project))).await {
        Ok(_) | Err(NbError::Conflict { .. }) => Ok(id),
        Err(e) => Err(e.into()),
    }
}

/// [`ensure_default`] within `tx`: stages the group if it does not exist (a concurrent creator
/// makes the commit fail, and the operation runs again and finds it).
pub(crate) async fn ensure_default_in(tx: &Tx, project: &str) -> ApiResult<String> {
    let id = default_id(project);
    if tx_get::<SecurityGroup>(tx, &id).await?.is_none() {
        let mut g = default_group(project);
        g.revision_number = 0;
        stage(tx, g);
    }
    Ok(id)
}

fn rule_view(g: &SecurityGroup, r: &SecurityGroupRule) -> Map<String, Value> {
    let mut v = Map::new();
    v.insert("id".into(), json!(r.id));
    v.insert("security_group_id".into(), json!(g.id));
    v.insert("direction".into(), json!(r.direction));
    v.insert("ethertype".into(), json!(r.ethertype));
    v.insert("protocol".into(), json!(r.protocol));
    v.insert("port_range_min".into(), json!(r.port_range_min));
    v.insert("port_range_max".into(), json!(r.port_range_max));
    v.insert("remote_ip_prefix".into(), json!(r.remote_ip_prefix.map(|p| p.to_string())));
    v.insert("remote_group_id".into(), json!(r.remote_group_id));
    v.insert("remote_address_group_id".into(), Value::Null);
    v.insert("description".into(), json!(r.description));
    add_project(&mut v, &g.project_id);
    v.insert("revision_number".into(), json!(g.revision_number));
    v.insert("created_at".into(), json!(g.created_at));
    v.insert("updated_at".into(), json!(g.updated_at));
    v
}

pub(crate) fn view(g: &SecurityGroup) -> Map<String, Value> {
    let mut v = Map::new();
    v.insert("id".into(), json!(g.id));
    v.insert("name".into(), json!(g.name));
    v.insert("description".into(), json!(g.description));
    add_project(&mut v, &g.project_id);
    v.insert("stateful".into(), json!(g.stateful));
    v.insert("shared".into(), json!(false));
    v.insert(
        "security_group_rules".into(),
        Value::Array(g.security_group_rules.iter().map(|r| Value::Object(rule_view(g, r))).collect()),
    );
    v.insert("tags".into(), json!([]));
    v.insert("revision_number".into(), json!(g.revision_number));
    v.insert("created_at".into(), json!(g.created_at));
    v.insert("updated_at".into(), json!(g.updated_at));
    v
}

/// The project a listing is about (its `project_id`/`tenant_id` filter), the caller's without one.
fn listed_project(pairs: &[(String, String)]) -> Option<String> {
    let projects: Vec<&String> =
        pairs.iter().filter(|(k, _)| k == "project_id" || k == "tenant_id").map(|(_, v)| v).collect();
    match projects.as_slice() {
        [] => Some(crate::auth::Caller::current().project_id),
        [one] => Some((*one).clone()),
        _ => None,
    }
}

async fn list_groups(
    axum::extract::State(ctx): State,
    headers: HeaderMap,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Json<Value>> {
    if let Some(project) = listed_project(&pairs) {
        ensure_default(&ctx.nb, &project).await?;
    }
    let known = view(&SecurityGroup::default());
    list_answer(&ctx.nb, pairs, &headers, ("security_groups", "/v2.0/security-groups"), view, known).await
}

async fn show(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    show_answer(&ctx.nb, &id, q, "security_group", view).await
}

/// A group named `default` is the project's default group (one per project: 409 if it exists).
async fn create(axum::extract::State(ctx): State, JsonBody(body): JsonBody) -> ApiResult<Response> {
    let mut m = envelope(body, "security_group")?;
    ATTRS.check(&mut m, Op::Create)?;
    let project = take_project(&mut m)?.unwrap_or_default();
    normalize_bool(&mut m, "stateful")?;
    null_as_empty(&mut m, "description");
    m.insert("project_id".into(), json!(project));
    let mut g: SecurityGroup = build_valid(&Map::new(), &m)?;
    // Neutron's `name_not_default`: the project's `default` group is made by tern (on its first
    // listing or port), never by a POST.
    if g.name.eq_ignore_ascii_case("default") {
        return Err(default_exists());
    }
    g.id = tern_model::generate_id();
    g.security_group_rules = egress_rules();
    for r in &mut g.security_group_rules {
        r.id = tern_model::generate_id();
        r.security_group_id = g.id.clone();
    }
    // Its default rules count for the project's rule quota, unchecked (as Neutron's).
    let g = &g;
    let g = transact(&ctx.nb, |tx| async move {
        tx.enforce_quota(QuotaResource::SecurityGroup);
        stage(&tx, g.clone());
        commit_first::<SecurityGroup>(tx).await
    })
    .await?;
    Ok(respond(StatusCode::CREATED, "security_group", view(&g)))
}

async fn update(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let expected = if_match(&headers)?;
    let mut m = envelope(body, "security_group")?;
    ATTRS.check(&mut m, Op::Update)?;
    if m.get("name").and_then(Value::as_str).is_some_and(|n| n.eq_ignore_ascii_case("default")) {
        return Err(default_exists());
    }
    normalize_bool(&mut m, "stateful")?;
    null_as_empty(&mut m, "description");
    let (ctx, m, id) = (&ctx, &m, &id);
    let g = transact(&ctx.nb, |tx| async move {
        let cur: SecurityGroup = tx_fetch_if_match(&tx, id, expected).await?;
        let g: SecurityGroup = patched(&cur, m)?;
        if cur.id == default_id(&cur.project_id) && g.name != "default" {
            return Err(ApiError::conflict(
                "SecurityGroupCannotUpdateDefault",
                "Updating default security group not allowed.",
            ));
        }
        // A port's groups are all stateful or all stateless: the kind of a group in use stays
        // (ports that start using it meanwhile fail the commit).
        if g.stateful != cur.stateful {
            tx.guard_referrers(Kind::SecurityGroup, id).await?;
        }
        if g.stateful != cur.stateful && list::<Port>(&ctx.nb).await?.iter().any(|p| p.security_groups.contains(id)) {
            return Err(ApiError::conflict(
                "SecurityGroupInUse",
                format!("Security Group {id} in use: its ports would mix stateful and stateless groups; stateful cannot change."),
            ));
        }
        stage(&tx, g);
        commit_first::<SecurityGroup>(tx).await
    })
    .await?;
    Ok(respond(StatusCode::OK, "security_group", view(&g)))
}

/// Refused while a port uses the group. Rules of other groups that name this group as their
/// remote are removed with it (Neutron cascades them), in the same transaction.
async fn remove(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let expected = if_match(&headers)?;
    let (ctx, id) = (&ctx, &id);
    transact(&ctx.nb, |tx| async move {
        let _cur: SecurityGroup = tx_fetch_if_match(&tx, id, expected).await?;
        tx.guard_referrers(Kind::SecurityGroup, id).await?;
        if list::<Port>(&ctx.nb).await?.iter().any(|p| p.security_groups.contains(id)) {
            return Err(in_use(Kind::SecurityGroup, id));
        }
        let names_it = |g: &SecurityGroup| {
            g.id != *id
                && g.security_group_rules.iter().any(|r| r.remote_group_id.as_deref() == Some(id.as_str()))
        };
        for listed in list::<SecurityGroup>(&ctx.nb).await?.into_iter().filter(names_it) {
            // Read through the transaction: the group as changed here is the group as it is.
            let Some(mut g) = tx_get::<SecurityGroup>(&tx, &listed.id).await? else { continue };
            g.security_group_rules.retain(|r| r.remote_group_id.as_deref() != Some(id.as_str()));
            stage(&tx, g);
        }
        tx.delete(Kind::SecurityGroup, id);
        tx.commit().await?;
        Ok(())
    })
    .await?;
    Ok(no_content())
}

// --- rules ---

/// Every rule with its group, optionally only the one with `id`.
async fn all_rules(nb: &Nb) -> ApiResult<Vec<(SecurityGroup, SecurityGroupRule)>> {
    let mut out = Vec::new();
    for g in list::<SecurityGroup>(nb).await? {
        for r in &g.security_group_rules {
            out.push((g.clone(), r.clone()));
        }
    }
    Ok(out)
}

/// The rule `id` and its group; Neutron's 404 also when the caller may not see the group.
async fn find_rule(nb: &Nb, id: &str) -> ApiResult<(SecurityGroup, SecurityGroupRule)> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "SecurityGroupRuleNotFound",
            format!("Security group rule {id} does not exist"),
        )
    };
    let (g, r) = all_rules(nb).await?.into_iter().find(|(_, r)| r.id == id).ok_or_else(not_found)?;
    crate::policy::check_visible(&tern_model::Object::SecurityGroup(g.clone()), false)
        .map_err(|_| not_found())?;
    Ok((g, r))
}

async fn list_rules(
    axum::extract::State(ctx): State,
    headers: HeaderMap,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Json<Value>> {
    let q = ListQuery::parse(q)?;
    let items = all_rules(&ctx.nb).await?.iter().map(|(g, r)| rule_view(g, r)).collect();
    let known =
        rule_view(&SecurityGroup::default(), &SecurityGroupRule::new(Direction::Ingress, EtherType::IPv4));
    Ok(Json(q.respond(
        items,
        &known,
        "security_group_rules",
        "/v2.0/security-group-rules",
        &host(&headers),
    )?))
}

async fn show_rule(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    let q = ListQuery::parse(q)?;
    let (g, r) = find_rule(&ctx.nb, &id).await?;
    Ok(respond(StatusCode::OK, "security_group_rule", q.project(rule_view(&g, &r))))
}

/// Neutron's spelling of rule values: protocol as a number or name (any case, "any" = none),
/// ports as numbers or numeric strings.
fn normalize_rule(m: &mut Map<String, Value>) -> ApiResult<()> {
    match m.get("protocol").cloned() {
        Some(Value::Number(n)) => {
            m.insert("protocol".into(), json!(n.to_string()));
        }
        Some(Value::String(s)) => {
            let s = s.to_ascii_lowercase();
            m.insert("protocol".into(), if s == "any" || s.is_empty() { Value::Null } else { json!(s) });
        }
        _ => {}
    }
    normalize_int(m, "port_range_min")?;
    normalize_int(m, "port_range_max")?;
    null_as_empty(m, "description");
    Ok(())
}

/// Parses a rule, naming the attribute at fault on a type error.
fn parse_rule(m: &Map<String, Value>) -> ApiResult<SecurityGroupRule> {
    match serde_json::from_value::<SecurityGroupRule>(Value::Object(m.clone())) {
        Ok(r) => Ok(r),
        Err(e) => {
            for (k, v) in m {
                let mut one = Map::new();
                one.insert("direction".into(), json!("ingress"));
                one.insert(k.clone(), v.clone());
                if let Err(e) = serde_json::from_value::<SecurityGroupRule>(Value::Object(one)) {
                    return Err(ApiError::bad_request(format!(
                        "Invalid input for {k}. Reason: {e} (value {v})."
                    )));
                }
            }
            Err(ApiError::bad_request(format!("Invalid input for security_group_rule: {e}")))
        }
    }
}

/// Two rules match the same traffic (Neutron's duplicate check ignores ids and descriptions).
fn same_match(a: &SecurityGroupRule, b: &SecurityGroupRule) -> bool {
    let strip = |r: &SecurityGroupRule| SecurityGroupRule {
        id: String::new(),
        security_group_id: String::new(),
        description: String::new(),
        ..r.clone()
    };
    strip(a) == strip(b)
}

/// Neutron's own checks of a rule's ports and prefix, with its error types and words (clients
/// match them): port values 0-65535 (and not 0 for port protocols), both ends of a port range,
/// ICMP type and code 0-255 (no code without a type), a prefix of the rule's ethertype.
fn neutron_rule_checks(m: &Map<String, Value>) -> ApiResult<()> {
    let bad = |ty: &str, msg: String| Err(ApiError::new(StatusCode::BAD_REQUEST, ty, msg));
    let int = |k: &str| m.get(k).and_then(Value::as_i64);
    let (min, max) = (int("port_range_min"), int("port_range_max"));
    let protocol = m.get("protocol").and_then(Value::as_str).unwrap_or("");
    let icmp = matches!(protocol, "icmp" | "1" | "ipv6-icmp" | "icmpv6" | "58");
    if !icmp {
        for v in [min, max].into_iter().flatten() {
            if !(0..=65535).contains(&v) {
                return bad("SecurityGroupInvalidPortValue", format!("Invalid value for port {v}"));
            }
        }
    }
    let ported =
        matches!(protocol, "tcp" | "6" | "udp" | "17" | "dccp" | "33" | "sctp" | "132" | "udplite" | "136");
    if ported && (min.is_some() || max.is_some()) {
        if min == Some(0) || max == Some(0) {
            return bad("SecurityGroupInvalidPortValue", "Invalid value for port 0".into());
        }
        if !matches!((min, max), (Some(a), Some(b)) if a <= b) {
            return bad(
                "SecurityGroupInvalidPortRange",
                "For TCP/UDP protocols, port_range_min must be <= port_range_max".into(),
            );
        }
    }
    if icmp {
        for (v, field, attr) in [(min, "type", "port_range_min"), (max, "code", "port_range_max")] {
            if let Some(v) = v.filter(|v| !(0..=255).contains(v)) {
                return bad(
                    "SecurityGroupInvalidIcmpValue",
                    format!("Invalid value for ICMP {field} ({attr}) {v}. It must be 0 to 255."),
                );
            }
        }
        if let (None, Some(code)) = (min, max) {
            return bad(
                "SecurityGroupMissingIcmpType",
                format!("ICMP code (port-range-max) {code} is provided but ICMP type (port-range-min) is missing."),
            );
        }
    }
    if let Some(prefix) = m.get("remote_ip_prefix").and_then(Value::as_str) {
        let ethertype = m.get("ethertype").and_then(Value::as_str).unwrap_or("IPv4");
        let v6 = prefix.contains(':');
        if v6 != (ethertype == "IPv6") {
            return bad(
                "SecurityGroupRuleParameterConflict",
                format!("Conflicting value ethertype {ethertype} for CIDR {prefix}"),
            );
        }
    }
    Ok(())
}

async fn create_rule(axum::extract::State(ctx): State, JsonBody(body): JsonBody) -> ApiResult<Response> {
    let mut m = envelope(body, "security_group_rule")?;
    RULE_ATTRS.check(&mut m, Op::Create)?;
    take_project(&mut m)?;
    normalize_rule(&mut m)?;
    for required in ["security_group_id", "direction"] {
        if opt_str(&m, required)?.is_none() {
            return Err(ApiError::bad_request(format!(
                "Failed to parse request. Required attribute '{required}' not specified"
            )));
        }
    }
    neutron_rule_checks(&m)?;
    let mut rule = parse_rule(&m)?;
    rule.validate().map_err(|e| crate::error::validation(&e))?;
    rule.id = tern_model::generate_id();
    let (ctx, rule) = (&ctx, &rule);
    let (g, r) = transact(&ctx.nb, |tx| async move {
        tx.enforce_quota(QuotaResource::SecurityGroupRule);
        let mut g: SecurityGroup = tx_fetch(&tx, &rule.security_group_id).await?;
        if let Some(remote) = rule.remote_group_id.as_deref().filter(|r| *r != g.id) {
            let _: SecurityGroup = tx_fetch(&tx, remote).await?;
        }
        if let Some(existing) = g.security_group_rules.iter().find(|r| same_match(r, rule)) {
            return Err(ApiError::conflict(
                "SecurityGroupRuleExists",
                format!("Security group rule already exists. Rule id is {}.", existing.id),
            ));
        }
        g.security_group_rules.push(rule.clone());
        stage(&tx, g);
        Ok((commit_first::<SecurityGroup>(tx).await?, rule.clone()))
    })
    .await?;
    Ok(respond(StatusCode::CREATED, "security_group_rule", rule_view(&g, &r)))
}

async fn update_rule(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut m = envelope(body, "security_group_rule")?;
    RULE_ATTRS.check(&mut m, Op::Update)?;
    null_as_empty(&mut m, "description");
    let description = opt_str(&m, "description")?;
    let (ctx, id) = (&ctx, &id);
    let (g, r) = transact(&ctx.nb, |tx| {
        let description = description.clone();
        async move {
            let (g, _) = find_rule(&ctx.nb, id).await?;
            let mut g: SecurityGroup = tx_fetch(&tx, &g.id).await?;
            let Some(rule) = g.security_group_rules.iter_mut().find(|r| r.id == *id) else {
                return Err(ApiError::internal("rule vanished"));
            };
            if let Some(d) = description {
                rule.description = d;
            }
            let rule = rule.clone();
            stage(&tx, g);
            Ok((commit_first::<SecurityGroup>(tx).await?, rule))
        }
    })
    .await?;
    Ok(respond(StatusCode::OK, "security_group_rule", rule_view(&g, &r)))
}

async fn remove_rule(
    axum::extract::State(ctx): State,
    PathParam(id): PathParam<String>,
) -> ApiResult<Response> {
    let (ctx, id) = (&ctx, &id);
    transact(&ctx.nb, |tx| async move {
        let (g, _) = find_rule(&ctx.nb, id).await?;
        let mut g: SecurityGroup = tx_fetch(&tx, &g.id).await?;
        g.security_group_rules.retain(|r| r.id != *id);
        stage(&tx, g);
        commit_first::<SecurityGroup>(tx).await
    })
    .await?;
    Ok(no_content())
}
