//! Limits and per-project quotas, as Neutron has them (issue 14):
//!
//! * every limit on one object (allowed address pairs, DNS servers, host routes, extra routes,
//!   binding profile size, rules per group, name and description lengths, NUL characters, the
//!   network MTU the underlay allows, the request body size) is a 400 (413 for the body) naming
//!   the attribute and the limit, and writes nothing;
//! * `/v2.0/quotas` (list, show, default, details, update, delete) and each quota: at the limit a
//!   create is a 409 `OverQuota` that writes nothing, and a delete (cascades included) frees room;
//! * at the edge of a quota, concurrent creates never pass it, on the memory and the redb store;
//! * usage counters missing from an older store are counted on first use, and `tern db check`
//!   (`invariants::check`) reports a counter that disagrees with the objects and repairs it.

mod common;

use common::*;
use serde_json::{json, Value};
use tern_model::Kind;
use tern_store::nb::{self, Nb, NbError};

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
}

/// How many objects a collection lists.
async fn count(s: &Server, collection: &str) -> usize {
    let (st, v) = s.get(&format!("/v2.0/{collection}")).await;
    assert_eq!(st, 200, "{v}");
    v[collection.replace('-', "_")].as_array().map_or(0, Vec::len)
}

/// `/v2.0/quotas/{project}/details`: used and limit of one resource.
async fn usage(s: &Server, project: &str, resource: &str) -> (i64, i64) {
    let (st, v) = s.get(&format!("/v2.0/quotas/{project}/details")).await;
    assert_eq!(st, 200, "{v}");
    let d = &v["quota"][resource];
    assert_eq!(d["reserved"], 0, "{v}");
    (d["used"].as_i64().unwrap(), d["limit"].as_i64().unwrap())
}

async fn set_quota(s: &Server, project: &str, quota: Value) {
    let (st, v) = s.put(&format!("/v2.0/quotas/{project}"), json!({ "quota": quota })).await;
    assert_eq!(st, 200, "{v}");
}

fn assert_over_quota(got: &(u16, Value), resource: &str) {
    assert_error(got, 409, &[&format!("Quota exceeded for resources: ['{resource}'].")]);
    assert_eq!(err_type(&got.1), "OverQuota", "{}", got.1);
}

/// The store's invariants hold (usage counters included).
async fn consistent(nb: &Nb) {
    let report = tern_api::invariants::check(nb).await.unwrap();
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
}

#[tokio::test]
async fn port_limits() {
    let s = start().await;
    let n = s.network("n").await;
    s.subnet(&n, "10.0.0.0/24").await;
    let pairs =
        |k: usize| -> Value { (0..k).map(|i| json!({"ip_address": format!("10.0.1.{i}")})).collect() };

    // Allowed address pairs: 10, not 11.
    let body = json!({"port": {"network_id": id(&n), "allowed_address_pairs": pairs(11)}});
    let got = s.post("/v2.0/ports", body).await;
    assert_error(
        &got,
        400,
        &["allowed_address_pairs", "Exceeded maximum amount of allowed address pairs 10"],
    );
    assert_eq!(count(&s, "ports").await, 0);
    let p = s.port(&n, json!({"allowed_address_pairs": pairs(10)})).await;
    let path = format!("/v2.0/ports/{}", id(&p));
    let got = s.put(&path, json!({"port": {"allowed_address_pairs": pairs(11)}})).await;
    assert_error(&got, 400, &["allowed_address_pairs", "10"]);
    let (_, now) = s.get(&path).await;
    assert_eq!(now["port"]["revision_number"], p["revision_number"], "nothing written");

    // binding:profile: at most 4095 bytes of JSON ({"k":"..."} is 8 bytes and the value).
    let profile = |k: usize| json!({"k": "x".repeat(k)});
    let got = s.put(&path, json!({"port": {"binding:profile": profile(4096 - 8)}})).await;
    assert_error(&got, 400, &["binding:profile", "4095 bytes"]);
    let (st, v) = s.put(&path, json!({"port": {"binding:profile": profile(4095 - 8)}})).await;
    assert_eq!(st, 200, "{v}");

    // Text: 255 characters, no NUL.
    for field in ["name", "description", "device_id", "device_owner"] {
        let got =
            s.post("/v2.0/ports", json!({"port": {"network_id": id(&n), field: "x".repeat(256)}})).await;
        assert_error(&got, 400, &[field, "255"]);
        let got = s.post("/v2.0/ports", json!({"port": {"network_id": id(&n), field: "a\u{0}b"}})).await;
        assert_error(&got, 400, &[field, "NUL"]);
    }
    assert_eq!(count(&s, "ports").await, 1);

    // The NB refuses the same (`tern db put`).
    let mut port: tern_model::Port = serde_json::from_value(json!({"network_id": id(&n)})).unwrap();
    port.allowed_address_pairs =
        serde_json::from_value(pairs(11)).expect("pairs parse as the model's allowed address pairs");
    let e = s.nb.put(tern_model::Object::Port(port)).await.unwrap_err();
    assert!(e.to_string().contains("allowed_address_pairs"), "{e}");
    consistent(&s.nb).await;
}

#[tokio::test]
async fn subnet_router_and_group_limits() {
    let s = start().await;
    let n = s.network("n").await;
    let servers = |k: usize| -> Value { (0..k).map(|i| json!(format!("10.9.9.{i}"))).collect() };
    let routes = |k: usize, via: &str| -> Value {
        (0..k).map(|i| json!({"destination": format!("192.168.{i}.0/24"), "nexthop": via})).collect()
    };
    let subnet = |extra: Value| {
        let mut b = json!({"network_id": id(&n), "cidr": "10.0.0.0/24", "ip_version": 4});
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({ "subnet": b })
    };
    let got = s.post("/v2.0/subnets", subnet(json!({"dns_nameservers": servers(6)}))).await;
    assert_error(&got, 400, &["dns_nameservers", "The number of DNS nameservers exceeds the limit 5"]);
    let got = s.post("/v2.0/subnets", subnet(json!({"host_routes": routes(21, "10.0.0.9")}))).await;
    assert_error(&got, 400, &["host_routes", "The number of host routes exceeds the limit 20"]);
    assert_eq!(count(&s, "subnets").await, 0);
    let (st, sub) = s
        .post(
            "/v2.0/subnets",
            subnet(json!({"dns_nameservers": servers(5), "host_routes": routes(20, "10.0.0.9")})),
        )
        .await;
    assert_eq!(st, 201, "{sub}");
    let got = s
        .put(
            &format!("/v2.0/subnets/{}", id(&sub["subnet"])),
            json!({"subnet": {"dns_nameservers": servers(6)}}),
        )
        .await;
    assert_error(&got, 400, &["dns_nameservers", "5"]);

    // Extra routes: 30 per router.
    let got =
        s.post("/v2.0/routers", json!({"router": {"name": "r", "routes": routes(31, "10.0.0.9")}})).await;
    assert_error(&got, 400, &["routes", "The number of routes exceeds the maximum 30"]);
    assert_eq!(count(&s, "routers").await, 0);

    // Names and descriptions of every kind: 255 characters, no NUL.
    let long = "x".repeat(256);
    let groups = count(&s, "security-groups").await;
    for (collection, key, field, body) in [
        ("networks", "network", "name", json!({"name": long})),
        ("networks", "network", "description", json!({"description": "a\u{0}"})),
        ("subnets", "subnet", "name", json!({"network_id": id(&n), "cidr": "10.1.0.0/24", "name": long})),
        ("routers", "router", "description", json!({"description": long})),
        ("routers", "router", "name", json!({"name": "\u{0}"})),
        ("security-groups", "security_group", "name", json!({"name": long})),
        ("security-groups", "security_group", "description", json!({"name": "g", "description": "\u{0}"})),
    ] {
        let got = s.post(&format!("/v2.0/{collection}"), json!({ key: body })).await;
        let (status, v) = &got;
        assert_eq!(*status, 400, "{collection} {body}: {v}");
        assert!(err_message(v).contains(&format!("Invalid input for {field}.")), "{v}");
    }
    assert_eq!(count(&s, "networks").await, 1);
    // (Listing groups creates the default group of the project listed, "" here.)
    assert_eq!(count(&s, "security-groups").await, groups, "nothing written");
    let g = s.create("security-groups", "security_group", json!({"name": "g"})).await;
    let got = s
        .post(
            "/v2.0/security-group-rules",
            json!({"security_group_rule": {"security_group_id": id(&g), "direction": "ingress", "description": long}}),
        )
        .await;
    assert_error(&got, 400, &["description", "255"]);

    // Rules per group (1000): through the NB, which every write goes through.
    let mut group: tern_model::SecurityGroup = serde_json::from_value(json!({"name": "big"})).unwrap();
    for i in 0..1001u32 {
        let rule = json!({"direction": "ingress", "protocol": "tcp", "port_range_min": 1 + i % 60000, "port_range_max": 1 + i % 60000,
                          "remote_ip_prefix": format!("10.{}.{}.0/24", i / 256, i % 256)});
        group.security_group_rules.push(serde_json::from_value(rule).unwrap());
    }
    let e = s.nb.put(tern_model::Object::SecurityGroup(group.clone())).await.unwrap_err();
    assert!(e.to_string().contains("security_group_rules") && e.to_string().contains("1000"), "{e}");
    group.security_group_rules.pop();
    s.nb.put(tern_model::Object::SecurityGroup(group)).await.unwrap();
    consistent(&s.nb).await;
}

#[tokio::test]
async fn network_mtu_and_body_size() {
    let s = start().await;
    // No MTU asked for: the maximum geneve leaves on a 1500-byte underlay; flat: the underlay's.
    let n = s.network("n").await;
    assert_eq!(n["mtu"], 1442);
    let body = json!({"network": {"name": "big", "mtu": 1443}});
    let got = s.post("/v2.0/networks", body).await;
    assert_error(&got, 400, &["mtu", "Requested MTU is too big, maximum is 1442"]);
    let ext = s
        .create(
            "networks",
            "network",
            json!({"provider:network_type": "flat", "provider:physical_network": "physnet1", "router:external": true}),
        )
        .await;
    assert_eq!(ext["mtu"], 1500);
    let flat = json!({"network": {"provider:network_type": "flat", "provider:physical_network": "physnet2", "mtu": 1501}});
    assert_error(&s.post("/v2.0/networks", flat).await, 400, &["mtu", "maximum is 1500"]);
    let path = format!("/v2.0/networks/{}", id(&n));
    assert_error(&s.put(&path, json!({"network": {"mtu": 9000}})).await, 400, &["mtu", "1442"]);
    let (st, v) = s.put(&path, json!({"network": {"mtu": 1400}})).await;
    assert_eq!((st, v["network"]["mtu"].clone()), (200, json!(1400)), "{v}");
    assert_eq!(count(&s, "networks").await, 2);

    // A larger underlay (`tern server --underlay-mtu 9000`) allows more.
    assert_eq!(network_on_underlay(9000).await["network"]["mtu"], 8942);

    // A body over 112 KiB is a 413 and writes nothing.
    let huge = json!({"network": {"name": "n", "description": "x".repeat(120 * 1024)}});
    let got = s.post("/v2.0/networks", huge).await;
    assert_error(&got, 413, &["114688"]);
    assert_eq!(err_type(&got.1), "HTTPRequestEntityTooLarge");
    assert_eq!(count(&s, "networks").await, 2);
}

/// A network created with no MTU by an API on an underlay of `mtu` bytes.
async fn network_on_underlay(mtu: u32) -> Value {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app =
        tern_api::router(tern_api::ApiState { underlay_mtu: mtu, ..tern_api::ApiState::new(memory_nb()) });
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/v2.0/networks"))
        .header("Content-Type", "application/json")
        .body(json!({"network": {"name": "n"}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let v = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    server.abort();
    v
}

#[tokio::test]
async fn quota_api() {
    let s = start().await;
    let (st, v) = s.get("/v2.0/quotas").await;
    assert_eq!((st, v.clone()), (200, json!({"quotas": []})), "{v}");
    let defaults = json!({"network": 100, "subnet": 100, "port": 500, "router": 10, "floatingip": 50,
                          "security_group": 10, "security_group_rule": 100});
    let (st, v) = s.get("/v2.0/quotas/p1").await;
    assert_eq!((st, &v["quota"]), (200, &defaults), "{v}");
    let (st, v) = s.get("/v2.0/quotas/p1/default").await;
    assert_eq!((st, &v["quota"]), (200, &defaults), "{v}");

    // PUT sets some limits (numeric strings and -1 too), keeps the others.
    let (st, v) = s.put("/v2.0/quotas/p1", json!({"quota": {"port": 2, "network": "3", "router": -1}})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["quota"]["port"], 2);
    assert_eq!(v["quota"]["network"], 3);
    assert_eq!(v["quota"]["router"], -1);
    assert_eq!(v["quota"]["subnet"], 100);
    let (_, v) = s.put("/v2.0/quotas/p1", json!({"quota": {"subnet": 7}})).await;
    assert_eq!((v["quota"]["port"].clone(), v["quota"]["subnet"].clone()), (json!(2), json!(7)), "{v}");
    let (_, v) = s.get("/v2.0/quotas/p1").await;
    assert_eq!(v["quota"]["network"], 3);
    let (_, v) = s.get("/v2.0/quotas/p1/default").await;
    assert_eq!(v["quota"]["network"], 100);
    let (_, v) = s.get("/v2.0/quotas").await;
    let list = v["quotas"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!((list[0]["project_id"].clone(), list[0]["tenant_id"].clone()), (json!("p1"), json!("p1")));
    assert_eq!((list[0]["port"].clone(), list[0]["floatingip"].clone()), (json!(2), json!(50)));

    // Details: limit, used, reserved.
    let n = s.create("networks", "network", json!({"name": "n", "project_id": "p1"})).await;
    s.create("networks", "network", json!({"name": "other"})).await;
    assert_eq!(usage(&s, "p1", "network").await, (1, 3));
    assert_eq!(usage(&s, "p1", "port").await, (0, 2));
    let (_, v) = s.get("/v2.0/quotas/p1/details").await;
    assert_eq!(v["quota"].as_object().unwrap().len(), 7, "{v}");

    // Bad requests.
    let bad = |q: Value| s.put("/v2.0/quotas/p1", json!({ "quota": q }));
    assert_error(&bad(json!({"ports": 1})).await, 400, &["Unrecognized attribute(s) 'ports'"]);
    assert_error(&bad(json!({"port": -2})).await, 400, &["port", "-1"]);
    assert_error(&bad(json!({"port": 2147483648u64})).await, 400, &["port", "2147483647"]);
    assert_error(&bad(json!({"port": "many"})).await, 400, &["port", "not an integer"]);
    assert_error(&bad(json!({"port": 1.5})).await, 400, &["port"]);
    assert_error(&s.put("/v2.0/quotas/p1", json!({"qota": {}})).await, 400, &["'quota'"]);
    // Below what the project uses: refused unless forced (Neutron's check since 2025.1).
    assert_error(
        &bad(json!({"network": 0})).await,
        400,
        &["Quota limit 0 for network must be greater than or equal to already used 1"],
    );
    let (st, v) = bad(json!({"network": 0, "force": true})).await;
    assert_eq!((st, v["quota"]["network"].clone()), (200, json!(0)), "{v}");
    assert_eq!(usage(&s, "p1", "network").await, (1, 0));
    let (st, v) = s.post("/v2.0/quotas", json!({"quota": {"port": 1}})).await;
    assert_eq!(st, 501, "{v}");

    // DELETE: back to the defaults; a project without limits of its own is a 404.
    let (st, _) = s.delete("/v2.0/quotas/p1").await;
    assert_eq!(st, 204);
    let (_, v) = s.get("/v2.0/quotas/p1").await;
    assert_eq!(v["quota"], defaults);
    assert_eq!(s.get("/v2.0/quotas").await.1, json!({"quotas": []}));
    assert_error(&s.delete("/v2.0/quotas/p1").await, 404, &["p1"]);
    let (_, v) = s.delete(&format!("/v2.0/networks/{}", id(&n))).await;
    assert_eq!(v, Value::Null);
    assert_eq!(usage(&s, "p1", "network").await, (0, 100));
    let (st, v) = s.get("/v2.0/extensions/quotas").await;
    assert_eq!(st, 200, "{v}");
    consistent(&s.nb).await;
}

#[tokio::test]
async fn each_quota_at_its_limit() {
    let s = start().await;
    let p = "proj";
    set_quota(
        &s,
        p,
        json!({"network": 2, "subnet": 2, "port": 2, "router": 1, "floatingip": 1, "security_group": 2,
               "security_group_rule": 7}),
    )
    .await;

    // network: 2; the third is refused and writes nothing, a delete frees room.
    let n = s.create("networks", "network", json!({"project_id": p})).await;
    let n2 = s.create("networks", "network", json!({"tenant_id": p})).await;
    let got = s.post("/v2.0/networks", json!({"network": {"project_id": p}})).await;
    assert_over_quota(&got, "network");
    assert_eq!(count(&s, "networks").await, 2);
    assert_eq!(usage(&s, p, "network").await, (2, 2));
    // Objects of no project count for no quota.
    s.create("networks", "network", json!({"name": "shared"})).await;

    // subnet: 2 (the network's delete below takes its subnets with it, and their usage).
    s.create("subnets", "subnet", json!({"network_id": id(&n2), "cidr": "10.2.0.0/24", "project_id": p}))
        .await;
    s.create("subnets", "subnet", json!({"network_id": id(&n2), "cidr": "10.3.0.0/24", "project_id": p}))
        .await;
    let got = s
        .post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": id(&n), "cidr": "10.1.0.0/24", "project_id": p}}),
        )
        .await;
    assert_over_quota(&got, "subnet");
    assert_eq!(count(&s, "subnets").await, 2);
    let (st, _) = s.delete(&format!("/v2.0/networks/{}", id(&n2))).await;
    assert_eq!(st, 204);
    assert_eq!(usage(&s, p, "subnet").await, (0, 2));
    assert_eq!(usage(&s, p, "network").await, (1, 2));
    let sub = s
        .create("subnets", "subnet", json!({"network_id": id(&n), "cidr": "10.1.0.0/24", "project_id": p}))
        .await;

    // port: 2. The first one also creates the project's default group (4 rules), counted but
    // not checked against the group quotas.
    let p1 = s.port(&n, json!({"project_id": p})).await;
    assert_eq!(usage(&s, p, "security_group").await, (1, 2));
    assert_eq!(usage(&s, p, "security_group_rule").await, (4, 7));
    s.port(&n, json!({"project_id": p})).await;
    let got = s.post("/v2.0/ports", json!({"port": {"network_id": id(&n), "project_id": p}})).await;
    assert_over_quota(&got, "port");
    assert_eq!(count(&s, "ports").await, 2);
    s.delete(&format!("/v2.0/ports/{}", id(&p1))).await;
    let p3 = s.port(&n, json!({"project_id": p})).await;
    assert_eq!(usage(&s, p, "port").await, (2, 2));

    // router: 1.
    let r = s.create("routers", "router", json!({"project_id": p})).await;
    assert_over_quota(&s.post("/v2.0/routers", json!({"router": {"project_id": p}})).await, "router");
    assert_eq!(count(&s, "routers").await, 1);
    // A router interface's port counts (as in Neutron) but is not checked: the port quota is full.
    let path = format!("/v2.0/routers/{}/add_router_interface", id(&r));
    let (st, v) = s.put(&path, json!({"subnet_id": id(&sub)})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(usage(&s, p, "port").await, (3, 2));
    s.put(&format!("/v2.0/routers/{}/remove_router_interface", id(&r)), json!({"subnet_id": id(&sub)})).await;
    assert_eq!(usage(&s, p, "port").await, (2, 2));

    // floatingip: 1; its address port counts for no project (Neutron's have none).
    let ext = s.external_network("public").await;
    s.subnet(&ext, "172.24.4.0/24").await;
    let f = s
        .create("floatingips", "floatingip", json!({"floating_network_id": id(&ext), "project_id": p}))
        .await;
    let got = s
        .post("/v2.0/floatingips", json!({"floatingip": {"floating_network_id": id(&ext), "project_id": p}}))
        .await;
    assert_over_quota(&got, "floatingip");
    assert_eq!(count(&s, "floatingips").await, 1);
    assert_eq!(usage(&s, p, "port").await, (2, 2));
    s.delete(&format!("/v2.0/floatingips/{}", id(&f))).await;
    s.create("floatingips", "floatingip", json!({"floating_network_id": id(&ext), "project_id": p})).await;

    // security_group: 2 (the default group is one); security_group_rule: 7 (the default group's
    // 4, a new group's 2 egress rules, then one more).
    let g = s.create("security-groups", "security_group", json!({"name": "web", "project_id": p})).await;
    assert_eq!(usage(&s, p, "security_group_rule").await, (6, 7));
    let got =
        s.post("/v2.0/security-groups", json!({"security_group": {"name": "db", "project_id": p}})).await;
    assert_over_quota(&got, "security_group");
    let rule = |port: u16| {
        json!({"security_group_rule": {"security_group_id": id(&g), "direction": "ingress", "protocol": "tcp",
                                       "port_range_min": port, "port_range_max": port}})
    };
    let (st, r80) = s.post("/v2.0/security-group-rules", rule(80)).await;
    assert_eq!(st, 201, "{r80}");
    assert_over_quota(&s.post("/v2.0/security-group-rules", rule(443)).await, "security_group_rule");
    let (_, v) = s.get(&format!("/v2.0/security-groups/{}", id(&g))).await;
    assert_eq!(v["security_group"]["security_group_rules"].as_array().unwrap().len(), 3, "{v}");
    let (st, _) = s.delete(&format!("/v2.0/security-group-rules/{}", id(&r80["security_group_rule"]))).await;
    assert_eq!(st, 204);
    let (st, v) = s.post("/v2.0/security-group-rules", rule(443)).await;
    assert_eq!(st, 201, "{v}");
    // A group's delete takes its rules' usage with it.
    let (st, _) = s.delete(&format!("/v2.0/security-groups/{}", id(&g))).await;
    assert_eq!(st, 204);
    assert_eq!(usage(&s, p, "security_group").await, (1, 2));
    assert_eq!(usage(&s, p, "security_group_rule").await, (4, 7));
    s.create("security-groups", "security_group", json!({"name": "db", "project_id": p})).await;

    // Unlimited, and zero.
    set_quota(&s, p, json!({"port": -1})).await;
    s.port(&n, json!({"project_id": p})).await;
    set_quota(&s, "empty", json!({"network": 0})).await;
    assert_over_quota(
        &s.post("/v2.0/networks", json!({"network": {"project_id": "empty"}})).await,
        "network",
    );

    // `tern db put` (the NB itself) counts but enforces no quota.
    let extra = tern_model::Network { project_id: "empty".into(), ..tern_model::Network::default() };
    s.nb.put(tern_model::Object::Network(extra)).await.unwrap();
    assert_eq!(usage(&s, "empty", "network").await, (1, 0));
    // p2, p3, the floating IP's address port and the last one.
    assert_eq!(count(&s, "ports").await, 4, "{p3}");
    consistent(&s.nb).await;
}

/// Many creates at once at the edge of a quota: exactly as many succeed as the quota has room
/// for, every other one is a 409 OverQuota, and the counter equals the objects.
async fn edge(store: &str) {
    const LIMIT: usize = 4;
    const AT_ONCE: usize = 8;
    const ROUNDS: usize = 8;
    let (s, _dir) = server_on(store).await;
    let p = "edge";
    let n = s.create("networks", "network", json!({"project_id": p})).await;
    s.subnet(&n, "10.0.0.0/16").await;
    set_quota(&s, p, json!({"port": LIMIT, "network": 2})).await;
    let mut fillers: Vec<String> = Vec::new();
    for round in 0..ROUNDS {
        // Room for `room` more ports (1 or 2), then `AT_ONCE` creates race for it.
        let room = 1 + round % 2;
        while fillers.len() < LIMIT - room {
            fillers.push(id(&s.port(&n, json!({"project_id": p})).await));
        }
        while fillers.len() > LIMIT - room {
            let port = fillers.pop().unwrap();
            assert_eq!(s.delete(&format!("/v2.0/ports/{port}")).await.0, 204);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..AT_ONCE {
            let (s, body) = (s.clone(), json!({"port": {"network_id": id(&n), "project_id": p}}));
            tasks.spawn(async move { s.post("/v2.0/ports", body).await });
        }
        let mut created = Vec::new();
        while let Some(got) = tasks.join_next().await {
            let got = got.unwrap();
            match got.0 {
                201 => created.push(id(&got.1["port"])),
                _ => assert_over_quota(&got, "port"),
            }
        }
        assert_eq!(created.len(), room, "{store} round {round}: exactly the room left succeeds");
        assert_eq!(usage(&s, p, "port").await, (LIMIT as i64, LIMIT as i64));
        consistent(&s.nb).await;
        for port in created {
            s.delete(&format!("/v2.0/ports/{port}")).await;
        }
        // Networks at once for the last one the quota allows.
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..AT_ONCE {
            let s = s.clone();
            tasks.spawn(async move { s.post("/v2.0/networks", json!({"network": {"project_id": p}})).await });
        }
        let mut won = Vec::new();
        while let Some(got) = tasks.join_next().await {
            let got = got.unwrap();
            match got.0 {
                201 => won.push(id(&got.1["network"])),
                _ => assert_over_quota(&got, "network"),
            }
        }
        assert_eq!(won.len(), 1, "{store} round {round}: networks");
        for network in won {
            s.delete(&format!("/v2.0/networks/{network}")).await;
        }
    }
    consistent(&s.nb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_edge_is_exact_under_concurrency_memory() {
    edge("memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_edge_is_exact_under_concurrency_redb() {
    edge("redb").await;
}

#[tokio::test]
async fn counters_of_an_older_store_and_their_check() {
    let s = start().await;
    let p = "old";
    let n = s.create("networks", "network", json!({"project_id": p})).await;
    s.subnet(&n, "10.0.0.0/24").await;
    for _ in 0..3 {
        s.port(&n, json!({"project_id": p})).await;
    }
    // A store from before usage counters: none under /tern/index/usage/.
    let store = s.nb.store().clone();
    let counters = store.list(nb::USAGE_PREFIX).await.unwrap().items;
    assert!(
        counters.iter().any(|kv| kv.key == nb::usage_key(tern_model::QuotaResource::Port, p)),
        "{counters:?}"
    );
    for kv in &counters {
        store.delete(&kv.key).await.unwrap();
    }
    consistent(&s.nb).await;
    // Details count the objects; the next create counts them once and goes on from there.
    assert_eq!(usage(&s, p, "port").await, (3, 500));
    set_quota(&s, p, json!({"port": 4})).await;
    s.port(&n, json!({"project_id": p})).await;
    let key = nb::usage_key(tern_model::QuotaResource::Port, p);
    assert_eq!(store.get(&key).await.unwrap().unwrap().value, b"4");
    assert_over_quota(
        &s.post("/v2.0/ports", json!({"port": {"network_id": id(&n), "project_id": p}})).await,
        "port",
    );

    // A counter that disagrees with the objects is reported, and repaired.
    store.put(&key, b"1".to_vec(), None).await.unwrap();
    let report = tern_api::invariants::check(&s.nb).await.unwrap();
    let bad: Vec<_> = report.violations.iter().filter(|v| v.rule == "usage-mismatch").collect();
    assert_eq!(bad.len(), 1, "{:#?}", report.violations);
    assert_eq!(bad[0].subject, key);
    let repaired = tern_api::invariants::repair(&s.nb, &report.violations).await;
    assert!(repaired.iter().all(|r| r.error.is_none()), "{repaired:?}");
    consistent(&s.nb).await;
    assert_over_quota(
        &s.post("/v2.0/ports", json!({"port": {"network_id": id(&n), "project_id": p}})).await,
        "port",
    );

    // An object stored before a limit existed is reported (and still readable).
    let mut port: tern_model::Port =
        serde_json::from_value(json!({"id": "legacy", "network_id": id(&n)})).unwrap();
    port.allowed_address_pairs = serde_json::from_value(json!((0..11)
        .map(|i| json!({"ip_address": format!("10.7.0.{i}")}))
        .collect::<Vec<_>>()))
    .unwrap();
    let value = serde_json::to_vec(&port).unwrap();
    store.put(&tern_model::key(Kind::Port, "legacy"), value, None).await.unwrap();
    let report = tern_api::invariants::check(&s.nb).await.unwrap();
    assert!(
        report.violations.iter().any(|v| v.rule == "invalid-object" && v.subject == "port/legacy"),
        "{:#?}",
        report.violations
    );
    assert!(matches!(s.nb.delete(Kind::Port, "legacy").await, Ok(_) | Err(NbError::InUse { .. })));
}
