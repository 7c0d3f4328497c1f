//! Ports: addresses, MACs, validation, conflicts, security groups, binding attributes.

mod common;

use common::*;
use serde_json::{json, Value};

async fn net_with_subnet(s: &Server, cidr: &str) -> (Value, Value) {
    let n = s.network("n").await;
    let sub = s.subnet(&n, cidr).await;
    (n, sub)
}

#[tokio::test]
async fn port_crud_with_allocated_address_and_mac() {
    let s = start().await;
    let (n, sub) = net_with_subnet(&s, "10.0.0.0/24").await;
    let p = s.port(&n, json!({"name": "p1", "device_owner": "compute:nova", "device_id": "vm-1"})).await;
    let id = p["id"].as_str().unwrap();
    assert_eq!(p["fixed_ips"], json!([{"subnet_id": sub["id"], "ip_address": "10.0.0.2"}]));
    assert!(p["mac_address"].as_str().unwrap().starts_with("fa:16:3e:"));
    assert_eq!(p["status"], "DOWN");
    assert_eq!(p["binding:vif_type"], "unbound");
    assert_eq!(p["binding:vnic_type"], "normal");
    assert_eq!(p["binding:host_id"], "");
    assert_eq!(p["port_security_enabled"], true);
    assert_eq!(p["revision_number"], 1);
    let p2 = s.port(&n, json!({})).await;
    assert_eq!(p2["fixed_ips"][0]["ip_address"], "10.0.0.3");

    let (st, v) = s
        .put(
            &format!("/v2.0/ports/{id}"),
            json!({"port": {"name": "renamed", "binding:host_id": "compute-1"}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["port"]["name"], "renamed");
    assert_eq!(v["port"]["binding:host_id"], "compute-1");
    assert_eq!(v["port"]["binding:vif_type"], "ovs");
    assert_eq!(v["port"]["binding:vif_details"]["bridge_name"], "br-int");
    assert_eq!(v["port"]["revision_number"], 2);
    assert_eq!(v["port"]["fixed_ips"], p["fixed_ips"]);

    let (st, v) = s.put(&format!("/v2.0/ports/{id}"), json!({"port": {"binding:host_id": ""}})).await;
    assert_eq!(st, 200);
    assert_eq!(v["port"]["binding:vif_type"], "unbound");

    assert_eq!(s.delete(&format!("/v2.0/ports/{id}")).await.0, 204);
    let got = s.get(&format!("/v2.0/ports/{id}")).await;
    assert_error(&got, 404, &[id]);
    assert_eq!(err_type(&got.1), "PortNotFound");
}

#[tokio::test]
async fn fixed_ips_requested_and_updated() {
    let s = start().await;
    let (n, sub) = net_with_subnet(&s, "10.0.0.0/24").await;
    let sid = sub["id"].as_str().unwrap();
    let p = s.port(&n, json!({"fixed_ips": [{"ip_address": "10.0.0.50"}]})).await;
    assert_eq!(p["fixed_ips"], json!([{"subnet_id": sid, "ip_address": "10.0.0.50"}]));
    let q = s.port(&n, json!({"fixed_ips": [{"subnet_id": sid}]})).await;
    assert_eq!(q["fixed_ips"][0]["ip_address"], "10.0.0.2");
    let none = s.port(&n, json!({"fixed_ips": []})).await;
    assert_eq!(none["fixed_ips"], json!([]));

    // Update: keep the address on the subnet, add one.
    let path = format!("/v2.0/ports/{}", p["id"].as_str().unwrap());
    let (st, v) =
        s.put(&path, json!({"port": {"fixed_ips": [{"subnet_id": sid}, {"ip_address": "10.0.0.60"}]}})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["port"]["fixed_ips"],
        json!([{"subnet_id": sid, "ip_address": "10.0.0.50"}, {"subnet_id": sid, "ip_address": "10.0.0.60"}])
    );
    // The released address is free again.
    let (st, v) = s.put(&path, json!({"port": {"fixed_ips": [{"ip_address": "10.0.0.60"}]}})).await;
    assert_eq!(st, 200, "{v}");
    s.port(&n, json!({"fixed_ips": [{"ip_address": "10.0.0.50"}]})).await;

    // Filters on fixed_ips.
    let (_, v) = s.get("/v2.0/ports?fixed_ips=ip_address%3D10.0.0.60").await;
    assert_eq!(ids(&v, "ports"), vec![p["id"].as_str().unwrap().to_string()]);
    let (_, v) = s
        .get(&format!("/v2.0/ports?fixed_ips=subnet_id%3D{sid}&network_id={}", n["id"].as_str().unwrap()))
        .await;
    assert_eq!(ids(&v, "ports").len(), 3);
    let (_, v) = s.get("/v2.0/ports?fixed_ips=ip_address%3D10.0.0.99").await;
    assert!(ids(&v, "ports").is_empty());
}

#[tokio::test]
async fn ip_and_mac_in_use_are_409() {
    let s = start().await;
    let (n, _) = net_with_subnet(&s, "10.0.0.0/24").await;
    let p = s
        .port(&n, json!({"fixed_ips": [{"ip_address": "10.0.0.7"}], "mac_address": "fa:16:3e:00:00:07"}))
        .await;
    let got = s
        .post(
            "/v2.0/ports",
            json!({"port": {"network_id": n["id"], "fixed_ips": [{"ip_address": "10.0.0.7"}]}}),
        )
        .await;
    assert_error(&got, 409, &["10.0.0.7"]);
    assert_eq!(err_type(&got.1), "IpAddressInUse");
    let got = s
        .post("/v2.0/ports", json!({"port": {"network_id": n["id"], "mac_address": "FA:16:3E:00:00:07"}}))
        .await;
    assert_eq!(err_type(&got.1), "MacAddressInUse", "{}", got.1);
    assert_eq!(got.0, 409);
    // Same address on another network is fine.
    let (n2, _) = net_with_subnet(&s, "10.0.0.0/24").await;
    s.port(&n2, json!({"fixed_ips": [{"ip_address": "10.0.0.7"}], "mac_address": "fa:16:3e:00:00:07"})).await;
    // Updating another port onto the address: 409, nothing changes.
    let other = s.port(&n, json!({})).await;
    let path = format!("/v2.0/ports/{}", other["id"].as_str().unwrap());
    let got = s.put(&path, json!({"port": {"fixed_ips": [{"ip_address": "10.0.0.7"}]}})).await;
    assert_eq!(err_type(&got.1), "IpAddressInUse");
    assert_eq!(s.get(&path).await.1["port"]["revision_number"], 1);
    let _ = p;
}

#[tokio::test]
async fn port_validation() {
    let s = start().await;
    let (n, sub) = net_with_subnet(&s, "10.0.0.0/24").await;
    let post = |attrs: Value| {
        let s = &s;
        let mut body = json!({"network_id": n["id"]});
        for (k, v) in attrs.as_object().unwrap() {
            body[k] = v.clone();
        }
        async move { s.post("/v2.0/ports", json!({"port": body})).await }
    };
    assert_error(&post(json!({"mac_address": "nope"})).await, 400, &["mac_address", "nope"]);
    assert_error(
        &post(json!({"mac_address": "01:00:5e:00:00:01"})).await,
        400,
        &["mac_address", "01:00:5e:00:00:01"],
    );
    assert_error(&post(json!({"fixed_ips": [{"ip_address": "10.9.0.5"}]})).await, 400, &["10.9.0.5"]);
    assert_error(
        &post(json!({"fixed_ips": [{"subnet_id": sub["id"], "ip_address": "10.0.0.255"}]})).await,
        400,
        &["fixed_ips[0].ip_address", "10.0.0.255"],
    );
    assert_error(
        &post(json!({"fixed_ips": [{"ip_address": "banana"}]})).await,
        400,
        &["fixed_ips", "banana"],
    );
    assert_error(
        &post(json!({"fixed_ips": [{"subnet_id": sub["id"], "ip": "10.0.0.5"}]})).await,
        400,
        &["fixed_ips", "ip"],
    );
    assert_error(&post(json!({"binding:vnic_type": "weird"})).await, 400, &["binding:vnic_type", "weird"]);
    assert_error(
        &post(json!({"allowed_address_pairs": [{"ip_address": "nope"}]})).await,
        400,
        &["allowed_address_pairs[0].ip_address", "nope"],
    );
    assert_error(
        &post(json!({"port_security_enabled": false, "security_groups": ["x"]})).await,
        400,
        &["security_groups"],
    );
    assert_error(&post(json!({"binding:vif_type": "ovs"})).await, 400, &["binding:vif_type"]);
    assert_error(&post(json!({"bogus": 1})).await, 400, &["Unrecognized", "bogus"]);
    let got = post(json!({"security_groups": ["no-such-group"]})).await;
    assert_error(&got, 404, &["no-such-group"]);
    assert_eq!(err_type(&got.1), "SecurityGroupNotFound");
    let got = s.post("/v2.0/ports", json!({"port": {"network_id": "nope"}})).await;
    assert_eq!((got.0, err_type(&got.1)), (404, "NetworkNotFound"));
    assert_error(&s.post("/v2.0/ports", json!({"port": {"name": "x"}})).await, 400, &["network_id"]);
    let got = post(json!({"fixed_ips": [{"subnet_id": "nope"}]})).await;
    assert!(got.0 == 400 || got.0 == 404, "{got:?}");
    // Nothing was written by any of them.
    let (_, v) = s.get("/v2.0/ports").await;
    assert!(ids(&v, "ports").is_empty(), "{v}");
    // Accepted-and-ignored attributes.
    let p = s.port(&n, json!({"dns_name": "vm", "qos_policy_id": null, "extra_dhcp_opts": [], "tags": [], "binding:profile": null})).await;
    assert_eq!(p["binding:profile"], json!({}));
}

#[tokio::test]
async fn exhausted_subnet_is_409() {
    let s = start().await;
    let (n, _) = net_with_subnet(&s, "10.0.0.0/30").await;
    s.port(&n, json!({})).await; // 10.0.0.2 (.1 is the gateway)
    let got = s.post("/v2.0/ports", json!({"port": {"network_id": n["id"]}})).await;
    assert_eq!(got.0, 409, "{}", got.1);
    assert_eq!(err_type(&got.1), "IpAddressGenerationFailure");
}

#[tokio::test]
async fn default_security_group_and_port_security() {
    let s = start().await;
    let (n, _) = net_with_subnet(&s, "10.0.0.0/24").await;
    let p = s.port(&n, json!({"project_id": "proj"})).await;
    let sgs = p["security_groups"].as_array().unwrap();
    assert_eq!(sgs.len(), 1);
    let (st, v) = s.get(&format!("/v2.0/security-groups/{}", sgs[0].as_str().unwrap())).await;
    assert_eq!(st, 200);
    assert_eq!(v["security_group"]["name"], "default");
    assert_eq!(v["security_group"]["project_id"], "proj");
    // The same project's next port gets the same group.
    let p2 = s.port(&n, json!({"tenant_id": "proj"})).await;
    assert_eq!(p2["security_groups"], p["security_groups"]);

    let insecure = s.port(&n, json!({"port_security_enabled": false})).await;
    assert_eq!(insecure["security_groups"], json!([]));
    let explicit = s.port(&n, json!({"security_groups": []})).await;
    assert_eq!(explicit["security_groups"], json!([]));
    // A network without port security gives its ports none by default.
    let n2 = s.create("networks", "network", json!({"port_security_enabled": false})).await;
    let p3 = s.port(&n2, json!({})).await;
    assert_eq!(p3["port_security_enabled"], false);
    assert_eq!(p3["security_groups"], json!([]));

    // Disabling port security needs the groups removed in the same update.
    let path = format!("/v2.0/ports/{}", p["id"].as_str().unwrap());
    assert_error(
        &s.put(&path, json!({"port": {"port_security_enabled": false}})).await,
        400,
        &["security_groups"],
    );
    let (st, v) =
        s.put(&path, json!({"port": {"port_security_enabled": false, "security_groups": []}})).await;
    assert_eq!(st, 200, "{v}");
    // A group in use cannot be deleted.
    let got = s.delete(&format!("/v2.0/security-groups/{}", sgs[0].as_str().unwrap())).await;
    assert_eq!((got.0, err_type(&got.1)), (409, "SecurityGroupInUse"));
}

#[tokio::test]
async fn port_filters_and_if_match() {
    let s = start().await;
    let (n, _) = net_with_subnet(&s, "10.0.0.0/24").await;
    let a = s.port(&n, json!({"device_id": "vm-a", "device_owner": "compute:nova"})).await;
    s.port(&n, json!({"device_id": "vm-b", "admin_state_up": false})).await;
    let (_, v) = s.get("/v2.0/ports?device_id=vm-a").await;
    assert_eq!(ids(&v, "ports"), vec![a["id"].as_str().unwrap().to_string()]);
    let (_, v) = s.get("/v2.0/ports?admin_state_up=false&fields=device_id").await;
    assert_eq!(v["ports"], json!([{"device_id": "vm-b"}]));
    let (_, v) = s.get("/v2.0/ports?device_owner=&fields=device_id").await;
    assert_eq!(v["ports"], json!([{"device_id": "vm-b"}]));
    let path = format!("/v2.0/ports/{}", a["id"].as_str().unwrap());
    let body = json!({"port": {"name": "x"}}).to_string();
    let got = s.raw(reqwest::Method::PUT, &path, Some(&body), &[("If-Match", "revision_number=9")]).await;
    assert_eq!((got.0, err_type(&got.1)), (412, "RevisionNumberConstraintFailed"));
}
