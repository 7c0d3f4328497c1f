//! Neutron's default policy (the "new defaults": admin, member and reader roles on
//! project-scoped tokens), as one table of rules named as Neutron names them, and where it is
//! enforced:
//! * [`enforce`] (before a handler runs): the caller's role allows the action at all (a reader
//!   cannot write, only an administrator reaches the admin-only APIs), a create names no other
//!   project, and every attribute the body sets is one the caller may set (`shared`,
//!   `router:external`, `provider:*`, `binding:*`, ...);
//! * on each object a handler names ([`check_visible`], from `util::fetch`): another project's
//!   object is a 404, as in Neutron, unless it is shared (shared and external networks); writing
//!   an object the caller can see but does not own is a 403;
//! * on answers ([`Viewer`]): listings hold only what the caller may see,
//!   without the attributes only administrators see (`provider:*`, `binding:host_id`, ...).
//!
//! Rules that depend on the owner of a port's network (a network's owner may set a port's MAC or
//! fixed IPs on it) are checked by the port handlers with [`may_as_network_owner`].

use axum::http::Method;
use serde_json::{Map, Value};
use tern_model::Object;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// Who a rule lets through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Who {
    /// Any authenticated caller.
    Anyone,
    /// `admin_only`.
    Admin,
    /// `admin_or_project_reader`: the reader role (or more) on the object's project.
    ProjectReader,
    /// `admin_or_project_member`: the member role (or more) on the object's project.
    ProjectMember,
    /// `admin_or_network_owner`: a member of the project owning the port's network.
    NetworkOwner,
}

/// The rules, by Neutron's names (neutron/conf/policies/*.py). An action without a rule is
/// [`Who::Admin`]; an attribute without a rule may be set by whoever may do the action.
pub(crate) const RULES: &[(&str, Who)] = &[
    ("get_network", Who::ProjectReader),
    ("create_network", Who::ProjectMember),
    ("create_network:shared", Who::Admin),
    ("create_network:router:external", Who::Admin),
    ("create_network:is_default", Who::Admin),
    ("create_network:provider:network_type", Who::Admin),
    ("create_network:provider:physical_network", Who::Admin),
    ("create_network:provider:segmentation_id", Who::Admin),
    ("create_network:segments", Who::Admin),
    ("get_network:provider:network_type", Who::Admin),
    ("get_network:provider:physical_network", Who::Admin),
    ("get_network:provider:segmentation_id", Who::Admin),
    ("update_network", Who::ProjectMember),
    ("update_network:shared", Who::Admin),
    ("update_network:router:external", Who::Admin),
    ("update_network:is_default", Who::Admin),
    ("update_network:provider:network_type", Who::Admin),
    ("update_network:provider:physical_network", Who::Admin),
    ("update_network:provider:segmentation_id", Who::Admin),
    ("delete_network", Who::ProjectMember),
    ("get_subnet", Who::ProjectReader),
    ("create_subnet", Who::ProjectMember),
    ("create_subnet:segment_id", Who::Admin),
    ("update_subnet", Who::ProjectMember),
    ("update_subnet:segment_id", Who::Admin),
    ("delete_subnet", Who::ProjectMember),
    ("get_port", Who::ProjectReader),
    ("get_port:binding:vif_type", Who::Admin),
    ("get_port:binding:vif_details", Who::Admin),
    ("get_port:binding:host_id", Who::Admin),
    ("get_port:binding:profile", Who::Admin),
    ("create_port", Who::ProjectMember),
    ("create_port:device_owner", Who::NetworkOwner),
    ("create_port:mac_address", Who::NetworkOwner),
    ("create_port:fixed_ips:ip_address", Who::NetworkOwner),
    ("create_port:port_security_enabled", Who::NetworkOwner),
    ("create_port:allowed_address_pairs", Who::NetworkOwner),
    ("create_port:binding:host_id", Who::Admin),
    ("create_port:binding:profile", Who::Admin),
    ("create_port:binding:vnic_type", Who::ProjectMember),
    ("update_port", Who::ProjectMember),
    ("update_port:device_owner", Who::NetworkOwner),
    ("update_port:mac_address", Who::Admin),
    ("update_port:fixed_ips:ip_address", Who::NetworkOwner),
    ("update_port:port_security_enabled", Who::NetworkOwner),
    ("update_port:allowed_address_pairs", Who::NetworkOwner),
    ("update_port:binding:host_id", Who::Admin),
    ("update_port:binding:profile", Who::Admin),
    ("update_port:binding:vnic_type", Who::ProjectMember),
    ("delete_port", Who::ProjectMember),
    ("get_router", Who::ProjectReader),
    ("create_router", Who::ProjectMember),
    ("create_router:external_gateway_info:enable_snat", Who::Admin),
    ("create_router:external_gateway_info:external_fixed_ips", Who::Admin),
    ("create_router:distributed", Who::Admin),
    ("create_router:ha", Who::Admin),
    ("update_router", Who::ProjectMember),
    ("update_router:external_gateway_info:enable_snat", Who::Admin),
    ("update_router:external_gateway_info:external_fixed_ips", Who::Admin),
    ("update_router:distributed", Who::Admin),
    ("update_router:ha", Who::Admin),
    ("delete_router", Who::ProjectMember),
    ("add_router_interface", Who::ProjectMember),
    ("remove_router_interface", Who::ProjectMember),
    ("get_floatingip", Who::ProjectReader),
    ("create_floatingip", Who::ProjectMember),
    ("create_floatingip:floating_ip_address", Who::Admin),
    ("update_floatingip", Who::ProjectMember),
    ("delete_floatingip", Who::ProjectMember),
    ("get_security_group", Who::ProjectReader),
    ("create_security_group", Who::ProjectMember),
    ("update_security_group", Who::ProjectMember),
    ("delete_security_group", Who::ProjectMember),
    ("get_security_group_rule", Who::ProjectReader),
    ("create_security_group_rule", Who::ProjectMember),
    ("update_security_group_rule", Who::ProjectMember),
    ("delete_security_group_rule", Who::ProjectMember),
    ("get_quota", Who::ProjectReader),
    ("update_quota", Who::Admin),
    ("delete_quota", Who::Admin),
    ("get_agent", Who::Admin),
    ("get_port_binding", Who::Admin),
    ("create_port_binding", Who::Admin),
    ("activate", Who::Admin),
    ("delete_port_binding", Who::Admin),
    ("get_migration", Who::Admin),
    ("get_extension", Who::Anyone),
    ("get_version", Who::Anyone),
];

/// The rule named `name` ([`Who::Admin`] for an action without one).
pub(crate) fn rule(name: &str) -> Option<Who> {
    RULES.iter().find(|(n, _)| *n == name).map(|(_, w)| *w)
}

/// What a request does, as the policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Action {
    /// Neutron's action name: `create_port`, `get_network`, `add_router_interface`, ...
    pub name: String,
    /// The resource's singular (`port`), whose attribute rules apply to the body.
    pub resource: Option<&'static str>,
    /// The object the path names (`/v2.0/ports/{id}`), if any.
    pub target: Option<String>,
    /// The request writes (POST, PUT, DELETE).
    pub writes: bool,
}

const COLLECTIONS: &[(&str, &str)] = &[
    ("networks", "network"),
    ("subnets", "subnet"),
    ("ports", "port"),
    ("routers", "router"),
    ("floatingips", "floatingip"),
    ("security-groups", "security_group"),
    ("security-group-rules", "security_group_rule"),
    ("quotas", "quota"),
    ("agents", "agent"),
    ("migrations", "migration"),
    ("extensions", "extension"),
];

/// The action of `method` on `path`.
pub(crate) fn action(method: &Method, path: &str) -> Action {
    let verb = match *method {
        Method::POST => "create",
        Method::PUT => "update",
        Method::DELETE => "delete",
        _ => "get",
    };
    let writes = verb != "get";
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let named = |name: String, resource, target: Option<&str>| Action {
        name,
        resource,
        target: target.map(str::to_string),
        writes,
    };
    match parts.as_slice() {
        [] | [""] | ["v2.0"] => named("get_version".into(), None, None),
        ["v2.0", "ports", id, "bindings", rest @ ..] => {
            let name = match (verb, rest) {
                (_, [_, "activate"]) => "activate".to_string(),
                (v, _) => format!("{v}_port_binding"),
            };
            named(name, None, Some(id))
        }
        ["v2.0", "routers", id, op @ ("add_router_interface" | "remove_router_interface")] => {
            named(op.to_string(), None, Some(id))
        }
        ["v2.0", "quotas", project, ..] => named(format!("{verb}_quota"), None, Some(project)),
        ["v2.0", collection, rest @ ..] => match COLLECTIONS.iter().find(|(c, _)| c == collection) {
            Some((_, singular)) => named(format!("{verb}_{singular}"), Some(singular), rest.first().copied()),
            None => named(format!("{verb}_{collection}"), None, None),
        },
        _ => named(format!("{verb}_unknown"), None, None),
    }
}

impl Caller {
    /// The reader role or more (member and admin imply it, as Keystone's implied roles do).
    fn reads(&self) -> bool {
        self.is_admin() || self.has_role("member") || self.has_role("reader")
    }

    fn writes(&self) -> bool {
        self.is_admin() || self.has_role("member")
    }

    /// Whether `who` lets the caller act on an object of `project` (when known).
    fn allowed(&self, who: Who, project: Option<&str>) -> bool {
        let own = project.is_none_or(|p| p == self.project_id);
        match who {
            Who::Anyone => true,
            Who::Admin => self.is_admin(),
            Who::ProjectReader => self.is_admin() || (self.reads() && own),
            Who::ProjectMember | Who::NetworkOwner => self.is_admin() || (self.writes() && own),
        }
    }
}

/// Before the handler: the role check, the project of a create, the body's attributes.
pub(crate) fn enforce(caller: &Caller, action: &Action, body: Option<&Value>) -> ApiResult<()> {
    let who = rule(&action.name).unwrap_or(Who::Admin);
    // A listing is filtered item by item, as Neutron does: an admin-only collection lists
    // nothing to a reader ([`Viewer::sees`]) rather than refusing.
    let listing = action.name.starts_with("get_") && action.target.is_none() && action.resource.is_some();
    let who = if listing && who == Who::Admin { Who::ProjectReader } else { who };
    if !caller.allowed(who, None) {
        return Err(ApiError::forbidden(&action.name));
    }
    if caller.is_admin() {
        return Ok(());
    }
    // Another project's quota (GET /v2.0/quotas lists the caller's own only).
    if action.name == "get_quota" && action.target.as_deref().is_some_and(|p| p != caller.project_id) {
        return Err(ApiError::forbidden(&action.name));
    }
    let (Some(resource), Some(Value::Object(outer))) = (action.resource, body) else {
        return Ok(());
    };
    let Some(Value::Object(attrs)) = outer.get(resource) else {
        return Ok(());
    };
    let verb = if action.name.starts_with("create_") { "create" } else { "update" };
    if verb == "create" {
        for key in ["project_id", "tenant_id"] {
            if let Some(Value::String(p)) = attrs.get(key) {
                if *p != caller.project_id {
                    return Err(ApiError::forbidden(&action.name));
                }
            }
        }
    }
    for name in set_attributes(resource, attrs) {
        let rule_name = format!("{verb}_{resource}:{name}");
        // Network-owner rules need the network: the port handlers check them.
        if let Some(who @ (Who::Admin | Who::ProjectMember)) = rule(&rule_name) {
            if !caller.allowed(who, None) {
                return Err(ApiError::forbidden(&rule_name));
            }
        }
    }
    Ok(())
}

/// The attributes `attrs` sets, as policy rules name them (`external_gateway_info:enable_snat`,
/// `fixed_ips:ip_address`); on a create, an attribute set to its default value does not count
/// (as in Neutron, a `shared: false` needs no right).
fn set_attributes(resource: &str, attrs: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in attrs {
        if v.is_null() || *v == Value::Bool(false) && matches!(k.as_str(), "shared" | "router:external") {
            continue;
        }
        match (resource, k.as_str(), v) {
            ("router", "external_gateway_info", Value::Object(g)) => {
                out.extend(g.keys().map(|sub| format!("{k}:{sub}")));
            }
            ("port", "fixed_ips", Value::Array(ips)) => {
                out.push(k.clone());
                if ips.iter().any(|ip| ip.get("ip_address").is_some()) {
                    out.push("fixed_ips:ip_address".into());
                }
            }
            ("port", "device_owner", Value::String(owner)) => {
                // Only network devices (router interfaces, DHCP) need the network's owner.
                if owner.starts_with("network:") {
                    out.push(k.clone());
                }
            }
            _ => out.push(k.clone()),
        }
    }
    out
}

/// The rules owned by the port's network's owner that a port body `attrs` needs (`verb` is
/// `create` or `update`); none for an administrator. [`check_network_owner`] checks them once
/// the handler has the network.
pub(crate) fn network_owner_rules(verb: &str, attrs: &Map<String, Value>) -> Vec<String> {
    if Caller::current().is_admin() {
        return Vec::new();
    }
    set_attributes("port", attrs)
        .into_iter()
        .map(|name| format!("{verb}_port:{name}"))
        .filter(|r| rule(r) == Some(Who::NetworkOwner))
        .collect()
}

/// A 403 naming the first of `rules` the caller may not pass on a port of a network of
/// `network_project`.
pub(crate) fn check_network_owner(rules: &[String], network_project: &str) -> ApiResult<()> {
    let caller = Caller::current();
    match rules.iter().find(|_| !caller.allowed(Who::NetworkOwner, Some(network_project))) {
        Some(r) => Err(ApiError::forbidden(r)),
        None => Ok(()),
    }
}

/// The owner of an object, and whether every project sees it (shared and external networks).
fn owner(obj: &Object) -> Option<(&str, bool)> {
    match obj {
        Object::Network(n) => Some((&n.project_id, n.shared || n.router_external)),
        Object::Subnet(s) => Some((&s.project_id, false)),
        Object::Port(p) => Some((&p.project_id, false)),
        Object::Router(r) => Some((&r.project_id, false)),
        Object::FloatingIp(f) => Some((&f.project_id, false)),
        Object::SecurityGroup(g) => Some((&g.project_id, false)),
        Object::Chassis(_) | Object::Migration(_) | Object::PortBinding(_) => None,
    }
}

/// The network whose sharing makes `obj` visible to every project (a subnet's), when the
/// caller would otherwise not see it.
pub(crate) fn parent_network(obj: &Object) -> Option<&str> {
    let caller = current()?.caller;
    match obj {
        Object::Subnet(s) if !caller.is_admin() && s.project_id != caller.project_id => Some(&s.network_id),
        _ => None,
    }
}

/// The singular of a collection (`security-groups` → `security_group`).
pub(crate) fn singular(collection: &str) -> Option<&'static str> {
    let collection = collection.replace('_', "-");
    COLLECTIONS.iter().find(|(c, _)| *c == collection).map(|(_, s)| *s)
}

/// An object a handler names: a 404 if the caller may not see it; a 403 if the request writes
/// it (it is the path's object) and the caller may see it but not change it. `shared_parent`
/// says the object belongs to a shared network (a subnet of one is visible to all).
pub(crate) fn check_visible(obj: &Object, shared_parent: bool) -> ApiResult<()> {
    let Some(req) = current() else { return Ok(()) };
    let caller = &req.caller;
    if caller.is_admin() {
        return Ok(());
    }
    let kind = obj.kind();
    let Some((project, shared)) = owner(obj) else {
        return Err(ApiError::not_found(kind, obj.id()));
    };
    let own = project == caller.project_id;
    if !own && !shared && !shared_parent {
        return Err(ApiError::not_found(kind, obj.id()));
    }
    if req.action.writes && !own && req.action.target.as_deref() == Some(obj.id()) {
        return Err(ApiError::forbidden(&req.action.name));
    }
    Ok(())
}

/// What the caller of one answer may see of a resource, looked up once per answer (a listing
/// of thousands of items asks it of each one).
pub(crate) struct Viewer {
    /// `None`: an administrator (or no request), who sees everything.
    caller: Option<Caller>,
    /// The action is admin-only: objects of no project (agents, migrations) are not shown.
    admin_only: bool,
    /// Attributes of the resource the caller may not see.
    hidden: Vec<&'static str>,
}

impl Viewer {
    pub(crate) fn of(resource: &str) -> Viewer {
        let Some(current) = current().filter(|c| !c.caller.is_admin()) else {
            return Viewer { caller: None, admin_only: false, hidden: Vec::new() };
        };
        let prefix = format!("get_{resource}:");
        let hidden = RULES
            .iter()
            .filter(|(_, who)| !current.caller.allowed(*who, None))
            .filter_map(|(name, _)| name.strip_prefix(prefix.as_str()))
            .collect();
        let admin_only = rule(&current.action.name) == Some(Who::Admin);
        Viewer { caller: Some(current.caller), admin_only, hidden }
    }

    /// Whether a listing's item (a Neutron view) is one the caller may see.
    pub(crate) fn sees(&self, view: &Map<String, Value>) -> bool {
        let Some(caller) = &self.caller else { return true };
        let flag = |k: &str| view.get(k) == Some(&Value::Bool(true));
        match view.get("project_id") {
            Some(Value::String(p)) => *p == caller.project_id || flag("shared") || flag("router:external"),
            // Objects of no project: extensions for all, agents and migrations for administrators.
            _ => !self.admin_only,
        }
    }

    /// Removes from a view the attributes the caller may not see.
    pub(crate) fn strip(&self, view: &mut Map<String, Value>) {
        for attr in &self.hidden {
            view.remove(*attr);
        }
    }
}

/// The request being served: who calls and what it does.
#[derive(Clone, Debug)]
pub(crate) struct Current {
    pub caller: Caller,
    pub action: Action,
}

tokio::task_local! {
    static CURRENT: Current;
}

/// The request being served, `None` outside one.
pub(crate) fn current() -> Option<Current> {
    CURRENT.try_with(Current::clone).ok()
}

/// Serves `f` as the request `current`.
pub(crate) async fn scope<F: std::future::Future>(current: Current, f: F) -> F::Output {
    CURRENT.scope(current, f).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn member(project: &str) -> Caller {
        Caller {
            project_id: project.into(),
            user_id: "u".into(),
            roles: vec!["member".into(), "reader".into()],
            system: false,
        }
    }

    fn reader(project: &str) -> Caller {
        Caller { roles: vec!["reader".into()], ..member(project) }
    }

    #[test]
    fn actions_are_named_as_neutron_names_them() {
        let a = action(&Method::POST, "/v2.0/ports");
        assert_eq!(
            (a.name.as_str(), a.resource, a.target, a.writes),
            ("create_port", Some("port"), None, true)
        );
        let a = action(&Method::PUT, "/v2.0/routers/r1/add_router_interface");
        assert_eq!((a.name.as_str(), a.target.as_deref()), ("add_router_interface", Some("r1")));
        assert_eq!(action(&Method::GET, "/v2.0/security-groups/g").name, "get_security_group");
        assert_eq!(action(&Method::DELETE, "/v2.0/ports/p/bindings/h").name, "delete_port_binding");
        assert_eq!(action(&Method::PUT, "/v2.0/ports/p/bindings/h/activate").name, "activate");
        assert_eq!(action(&Method::GET, "/v2.0/quotas/p1/details").name, "get_quota");
        assert_eq!(action(&Method::GET, "/").name, "get_version");
        assert_eq!(action(&Method::GET, "/v2.0/extensions").name, "get_extension");
    }

    #[test]
    fn every_rule_names_a_known_action() {
        for (name, _) in RULES {
            let action = name.split(':').next().unwrap();
            assert!(
                RULES.iter().any(|(n, _)| n == &action),
                "{name}: its action {action} has no rule of its own"
            );
        }
    }

    #[test]
    fn roles() {
        let create = action(&Method::POST, "/v2.0/networks");
        let list = action(&Method::GET, "/v2.0/networks");
        assert!(enforce(&member("a"), &create, None).is_ok());
        assert_eq!(enforce(&reader("a"), &create, None).unwrap_err().status.as_u16(), 403);
        assert!(enforce(&reader("a"), &list, None).is_ok());
        let nobody = Caller { roles: vec![], ..member("a") };
        assert_eq!(enforce(&nobody, &list, None).unwrap_err().status.as_u16(), 403);
        // Admin-only collections list nothing to others (filtered), their items are refused.
        let agents = action(&Method::GET, "/v2.0/agents");
        assert!(enforce(&member("a"), &agents, None).is_ok());
        let agent = action(&Method::GET, "/v2.0/agents/hv1");
        assert_eq!(enforce(&member("a"), &agent, None).unwrap_err().status.as_u16(), 403);
        assert!(enforce(&Caller::admin(), &agent, None).is_ok());
    }

    #[test]
    fn attributes_and_projects() {
        let create = action(&Method::POST, "/v2.0/networks");
        let body = |b: Value| json!({ "network": b });
        let e = enforce(&member("a"), &create, Some(&body(json!({"shared": true})))).unwrap_err();
        assert_eq!(e.status.as_u16(), 403);
        assert!(e.to_string().contains("create_network:shared"), "{e}");
        enforce(&member("a"), &create, Some(&body(json!({"shared": false, "name": "n"})))).unwrap();
        let e =
            enforce(&member("a"), &create, Some(&body(json!({"provider:segmentation_id": 7})))).unwrap_err();
        assert!(e.to_string().contains("provider:segmentation_id"), "{e}");
        enforce(&member("a"), &create, Some(&body(json!({"project_id": "a"})))).unwrap();
        let e = enforce(&member("a"), &create, Some(&body(json!({"tenant_id": "b"})))).unwrap_err();
        assert_eq!(e.status.as_u16(), 403);
        enforce(&Caller::admin(), &create, Some(&body(json!({"project_id": "b", "shared": true})))).unwrap();
        let router = action(&Method::PUT, "/v2.0/routers/r");
        let snat = json!({"router": {"external_gateway_info": {"network_id": "x", "enable_snat": false}}});
        let e = enforce(&member("a"), &router, Some(&snat)).unwrap_err();
        assert!(e.to_string().contains("update_router:external_gateway_info:enable_snat"), "{e}");
        let port = action(&Method::POST, "/v2.0/ports");
        let host = json!({"port": {"network_id": "n", "binding:host_id": "hv1"}});
        assert_eq!(enforce(&member("a"), &port, Some(&host)).unwrap_err().status.as_u16(), 403);
    }

    #[test]
    fn network_owner_attributes() {
        let attrs = json!({"mac_address": "fa:16:3e:00:00:01", "fixed_ips": [{"ip_address": "10.0.0.5"}]});
        let attrs = attrs.as_object().unwrap();
        assert_eq!(set_attributes("port", attrs), vec!["mac_address", "fixed_ips", "fixed_ips:ip_address"]);
        // Outside a request the caller is an administrator: no rule to check.
        assert!(network_owner_rules("create", attrs).is_empty());
        let plain = json!({"device_owner": "compute:nova", "fixed_ips": [{"subnet_id": "s"}]});
        assert_eq!(set_attributes("port", plain.as_object().unwrap()), vec!["fixed_ips"]);
    }
}
