//! Security groups and rules, the default group per project.

mod common;

use common::*;
use serde_json::{json, Value};

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

#[tokio::test]
async fn default_group_has_neutrons_rules() {
    let s = start().await;
    let (st, v) = s.get("/v2.0/security-groups?project_id=p1").await;
    assert_eq!(st, 200, "{v}");
    let groups = v["security_groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{v}");
    let g = &groups[0];
    assert_eq!(g["name"], "default");
    assert_eq!(g["project_id"], "p1");
    let rules = g["security_group_rules"].as_array().unwrap();
    assert_eq!(rules.len(), 4);
    let mut shapes: Vec<(String, String, Value)> = rules
        .iter()
        .map(|r| {
            (
                r["direction"].as_str().unwrap().into(),
                r["ethertype"].as_str().unwrap().into(),
                r["remote_group_id"].clone(),
            )
        })
        .collect();
    shapes.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    assert_eq!(
        shapes,
        vec![
            ("egress".into(), "IPv4".into(), Value::Null),
            ("egress".into(), "IPv6".into(), Value::Null),
            ("ingress".into(), "IPv4".into(), g["id"].clone()),
            ("ingress".into(), "IPv6".into(), g["id"].clone()),
        ]
    );
    for r in rules {
        assert_eq!(r["security_group_id"], g["id"]);
        assert_eq!(r["protocol"], Value::Null);
        assert!(!r["id"].as_str().unwrap().is_empty());
    }
    // Listing again creates nothing new; a second `default` in the project is refused.
    let (_, v) = s.get("/v2.0/security-groups?project_id=p1").await;
    assert_eq!(v["security_groups"].as_array().unwrap().len(), 1);
    let got = s
        .post("/v2.0/security-groups", json!({"security_group": {"name": "default", "project_id": "p1"}}))
        .await;
    assert_eq!((got.0, err_type(&got.1)), (409, "SecurityGroupDefaultAlreadyExists"));
    // The default group's rules are listed in the rules collection too.
    let (_, v) = s.get(&format!("/v2.0/security-group-rules?security_group_id={}", id(g))).await;
    assert_eq!(v["security_group_rules"].as_array().unwrap().len(), 4);
    // A renamed default group would not be found again.
    let got =
        s.put(&format!("/v2.0/security-groups/{}", id(g)), json!({"security_group": {"name": "x"}})).await;
    assert_eq!(got.0, 409);
}

#[tokio::test]
async fn group_and_rule_crud() {
    let s = start().await;
    let g = s
        .create(
            "security-groups",
            "security_group",
            json!({"name": "web", "description": "d", "tenant_id": "p"}),
        )
        .await;
    assert_eq!(g["name"], "web");
    assert_eq!(g["stateful"], true);
    let rules = g["security_group_rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "new groups get the egress rules");
    assert!(rules.iter().all(|r| r["direction"] == "egress"));
    let gid = id(&g);

    let rule = s
        .create(
            "security-group-rules",
            "security_group_rule",
            json!({"security_group_id": gid, "direction": "ingress", "protocol": "tcp", "port_range_min": 80,
                   "port_range_max": "443", "remote_ip_prefix": "0.0.0.0/0", "ethertype": "IPv4"}),
        )
        .await;
    assert_eq!(rule["protocol"], "tcp");
    assert_eq!(rule["port_range_max"], 443);
    assert_eq!(rule["security_group_id"], gid);
    assert_eq!(rule["project_id"], "p");
    let rid = id(&rule);
    let (st, v) = s.get(&format!("/v2.0/security-group-rules/{rid}")).await;
    assert_eq!((st, &v["security_group_rule"]), (200, &rule));
    let (_, v) = s.get(&format!("/v2.0/security-groups/{gid}")).await;
    assert_eq!(v["security_group"]["security_group_rules"].as_array().unwrap().len(), 3);
    assert_eq!(v["security_group"]["revision_number"], 2);
    let icmp = s
        .create(
            "security-group-rules",
            "security_group_rule",
            json!({"security_group_id": gid, "direction": "ingress", "protocol": 1}),
        )
        .await;
    assert_eq!(icmp["protocol"], "1");
    let (_, v) = s.get("/v2.0/security-group-rules?direction=ingress&protocol=tcp").await;
    assert_eq!(ids(&v, "security_group_rules"), vec![rid.to_string()]);

    // Duplicate rule: 409.
    let dup = json!({"security_group_rule": {"security_group_id": gid, "direction": "ingress", "protocol": "tcp",
                      "port_range_min": 80, "port_range_max": 443, "remote_ip_prefix": "0.0.0.0/0"}});
    let got = s.post("/v2.0/security-group-rules", dup).await;
    assert_error(&got, 409, &[rid]);
    assert_eq!(err_type(&got.1), "SecurityGroupRuleExists");

    let (st, v) = s
        .put(
            &format!("/v2.0/security-group-rules/{rid}"),
            json!({"security_group_rule": {"description": "web"}}),
        )
        .await;
    assert_eq!((st, v["security_group_rule"]["description"].as_str()), (200, Some("web")));
    assert_error(
        &s.put(
            &format!("/v2.0/security-group-rules/{rid}"),
            json!({"security_group_rule": {"protocol": "udp"}}),
        )
        .await,
        400,
        &["protocol"],
    );

    let (st, v) = s
        .put(
            &format!("/v2.0/security-groups/{gid}"),
            json!({"security_group": {"name": "web2", "stateful": false}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["security_group"]["name"], "web2");
    assert_eq!(v["security_group"]["stateful"], false);

    assert_eq!(s.delete(&format!("/v2.0/security-group-rules/{rid}")).await.0, 204);
    let got = s.get(&format!("/v2.0/security-group-rules/{rid}")).await;
    assert_eq!((got.0, err_type(&got.1)), (404, "SecurityGroupRuleNotFound"));
    assert_eq!(s.delete(&format!("/v2.0/security-groups/{gid}")).await.0, 204);
    let got = s.get(&format!("/v2.0/security-groups/{gid}")).await;
    assert_eq!((got.0, err_type(&got.1)), (404, "SecurityGroupNotFound"));
}

#[tokio::test]
async fn rule_validation() {
    let s = start().await;
    let g = s.create("security-groups", "security_group", json!({"name": "g"})).await;
    let gid = id(&g).to_string();
    let post = |attrs: Value| {
        let s = &s;
        let mut body = json!({"security_group_id": gid, "direction": "ingress"});
        for (k, v) in attrs.as_object().unwrap() {
            body[k] = v.clone();
        }
        async move { s.post("/v2.0/security-group-rules", json!({"security_group_rule": body})).await }
    };
    assert_error(&post(json!({"direction": "sideways"})).await, 400, &["direction", "sideways"]);
    assert_error(&post(json!({"protocol": "bogus"})).await, 400, &["protocol", "bogus"]);
    // Neutron's own types and words (clients such as Tempest match them).
    let got = post(json!({"protocol": "tcp", "port_range_min": 90, "port_range_max": 80})).await;
    assert_error(&got, 400, &["port_range_min must be <= port_range_max"]);
    assert_eq!(err_type(&got.1), "SecurityGroupInvalidPortRange");
    let got = post(json!({"protocol": "tcp", "port_range_min": 22})).await;
    assert_eq!(err_type(&got.1), "SecurityGroupInvalidPortRange", "a range needs both ends: {got:?}");
    let got = post(json!({"protocol": "udp", "port_range_min": -16, "port_range_max": 80})).await;
    assert_error(&got, 400, &["Invalid value for port -16"]);
    assert_eq!(err_type(&got.1), "SecurityGroupInvalidPortValue");
    let got = post(json!({"protocol": "tcp", "port_range_min": 0, "port_range_max": 80})).await;
    assert_error(&got, 400, &["Invalid value for port 0"]);
    let got = post(json!({"protocol": "icmp", "port_range_min": 256})).await;
    assert_error(&got, 400, &["Invalid value for ICMP type (port_range_min) 256. It must be 0 to 255."]);
    assert_eq!(err_type(&got.1), "SecurityGroupInvalidIcmpValue");
    let got = post(json!({"protocol": "icmp", "port_range_max": 3})).await;
    assert_error(
        &got,
        400,
        &["ICMP code (port-range-max) 3 is provided but ICMP type (port-range-min) is missing."],
    );
    assert_eq!(err_type(&got.1), "SecurityGroupMissingIcmpType");
    let got = post(json!({"ethertype": "IPv6", "remote_ip_prefix": "10.100.0.0/16"})).await;
    assert_error(&got, 400, &["Conflicting value ethertype IPv6 for CIDR 10.100.0.0/16"]);
    assert_eq!(err_type(&got.1), "SecurityGroupRuleParameterConflict");
    assert_error(&post(json!({"port_range_min": 22})).await, 400, &["port_range_min", "22"]);
    assert_error(
        &post(json!({"remote_ip_prefix": "fd00::/8"})).await,
        400,
        &["Conflicting value ethertype IPv4 for CIDR fd00::/8"],
    );
    assert_error(&post(json!({"remote_ip_prefix": "nope"})).await, 400, &["remote_ip_prefix", "nope"]);
    assert_error(
        &post(json!({"port_range_min": "x", "protocol": "tcp"})).await,
        400,
        &["port_range_min", "x"],
    );
    assert_error(&post(json!({"ethertype": "IPv5"})).await, 400, &["ethertype", "IPv5"]);
    assert_error(&post(json!({"colour": 1})).await, 400, &["colour"]);
    let got = post(json!({"remote_group_id": "nope"})).await;
    assert_eq!((got.0, err_type(&got.1)), (404, "SecurityGroupNotFound"));
    let got = s
        .post(
            "/v2.0/security-group-rules",
            json!({"security_group_rule": {"security_group_id": "nope", "direction": "ingress"}}),
        )
        .await;
    assert_eq!((got.0, err_type(&got.1)), (404, "SecurityGroupNotFound"));
    assert_error(
        &s.post("/v2.0/security-group-rules", json!({"security_group_rule": {"direction": "ingress"}})).await,
        400,
        &["security_group_id"],
    );
    let (_, v) = s.get(&format!("/v2.0/security-groups/{gid}")).await;
    assert_eq!(v["security_group"]["revision_number"], 1, "nothing was written");
}

#[tokio::test]
async fn deleting_a_group_removes_rules_naming_it() {
    let s = start().await;
    let a = s.create("security-groups", "security_group", json!({"name": "a"})).await;
    let b = s.create("security-groups", "security_group", json!({"name": "b"})).await;
    s.create(
        "security-group-rules",
        "security_group_rule",
        json!({"security_group_id": id(&a), "direction": "ingress", "remote_group_id": id(&b)}),
    )
    .await;
    assert_eq!(s.delete(&format!("/v2.0/security-groups/{}", id(&b))).await.0, 204);
    let (_, v) = s.get(&format!("/v2.0/security-groups/{}", id(&a))).await;
    let rules = v["security_group"]["security_group_rules"].as_array().unwrap();
    assert!(rules.iter().all(|r| r["remote_group_id"].is_null()), "{v}");
}

#[tokio::test]
async fn a_port_takes_stateful_or_stateless_groups_never_both() {
    let s = start().await;
    let full = s.create("security-groups", "security_group", json!({"name": "full"})).await;
    let plain =
        s.create("security-groups", "security_group", json!({"name": "plain", "stateful": false})).await;
    let plain2 =
        s.create("security-groups", "security_group", json!({"name": "plain2", "stateful": false})).await;
    let net = s.network("n").await;
    s.subnet(&net, "10.0.0.0/24").await;
    let mixed = json!([id(&full), id(&plain)]);
    let got =
        s.post("/v2.0/ports", json!({"port": {"network_id": net["id"], "security_groups": mixed}})).await;
    assert_error(&got, 409, &["stateful and stateless"]);
    let p = s.port(&net, json!({"security_groups": [id(&plain), id(&plain2)]})).await;
    let got = s
        .put(
            &format!("/v2.0/ports/{}", id(&p)),
            json!({"port": {"security_groups": [id(&plain), id(&full)]}}),
        )
        .await;
    assert_error(&got, 409, &["stateful and stateless", id(&p)]);
    let (st, v) =
        s.put(&format!("/v2.0/ports/{}", id(&p)), json!({"port": {"security_groups": [id(&full)]}})).await;
    assert_eq!(st, 200, "{v}");
    // A group in use keeps its kind; an unused one may change.
    let got = s
        .put(&format!("/v2.0/security-groups/{}", id(&full)), json!({"security_group": {"stateful": false}}))
        .await;
    assert_error(&got, 409, &["stateful", id(&full)]);
    let (st, v) = s
        .put(&format!("/v2.0/security-groups/{}", id(&plain)), json!({"security_group": {"stateful": true}}))
        .await;
    assert_eq!(st, 200, "{v}");
}
