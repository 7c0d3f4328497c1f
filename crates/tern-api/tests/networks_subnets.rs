//! Networks and subnets: CRUD, list semantics, validation, conflicts, revisions and If-Match.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn network_crud() {
    let s = start().await;
    let n = s
        .create(
            "networks",
            "network",
            json!({"name": "net1", "tenant_id": "p1", "mtu": 1400, "provider:network_type": "geneve"}),
        )
        .await;
    let id = n["id"].as_str().unwrap();
    assert_eq!(n["project_id"], "p1");
    assert_eq!(n["tenant_id"], "p1");
    assert_eq!(n["status"], "ACTIVE");
    assert_eq!(n["admin_state_up"], true);
    assert_eq!(n["mtu"], 1400);
    assert_eq!(n["revision_number"], 1);
    assert_eq!(n["subnets"], json!([]));
    assert_eq!(n["provider:network_type"], "geneve");
    assert!(n["provider:segmentation_id"].as_u64().unwrap() > 0);
    assert!(n["created_at"].is_string());

    let (st, v) = s.get(&format!("/v2.0/networks/{id}")).await;
    assert_eq!(st, 200);
    assert_eq!(v["network"], n);

    let (st, v) = s
        .put(
            &format!("/v2.0/networks/{id}"),
            json!({"network": {"name": "renamed", "admin_state_up": false}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["network"]["name"], "renamed");
    assert_eq!(v["network"]["admin_state_up"], false);
    assert_eq!(v["network"]["revision_number"], 2);
    assert_eq!(v["network"]["mtu"], 1400);

    let sub = s.subnet(&n, "10.0.0.0/24").await;
    let (_, v) = s.get(&format!("/v2.0/networks/{id}")).await;
    assert_eq!(v["network"]["subnets"], json!([sub["id"]]));

    let (st, v) = s.delete(&format!("/v2.0/networks/{id}")).await;
    assert_eq!((st, v), (204, serde_json::Value::Null));
    let got = s.get(&format!("/v2.0/networks/{id}")).await;
    assert_error(&got, 404, &[id]);
    assert_eq!(err_type(&got.1), "NetworkNotFound");
    // The subnets went with it.
    assert_eq!(
        err_type(&s.get(&format!("/v2.0/subnets/{}", sub["id"].as_str().unwrap())).await.1),
        "SubnetNotFound"
    );
    assert_eq!(err_type(&s.delete(&format!("/v2.0/networks/{id}")).await.1), "NetworkNotFound");
    assert_eq!(
        err_type(&s.put(&format!("/v2.0/networks/{id}"), json!({"network": {"name": "x"}})).await.1),
        "NetworkNotFound"
    );
}

#[tokio::test]
async fn network_validation() {
    let s = start().await;
    let bad = |attrs: serde_json::Value| {
        let s = &s;
        async move { s.post("/v2.0/networks", json!({"network": attrs})).await }
    };
    assert_error(&bad(json!({"mtu": 10})).await, 400, &["mtu", "10"]);
    assert_error(&bad(json!({"mtu": "big"})).await, 400, &["mtu", "big"]);
    assert_error(&bad(json!({"admin_state_up": "maybe"})).await, 400, &["admin_state_up", "maybe"]);
    assert_error(&bad(json!({"name": 5})).await, 400, &["name", "5"]);
    assert_error(&bad(json!({"provider:network_type": "vlan"})).await, 400, &["vlan"]);
    assert_error(&bad(json!({"provider:segmentation_id": 0})).await, 400, &["provider:segmentation_id", "0"]);
    assert_error(&bad(json!({"tenant_id": "a", "project_id": "b"})).await, 400, &["tenant_id", "project_id"]);
    let n = s
        .create("networks", "network", json!({"provider:segmentation_id": 777, "admin_state_up": "true"}))
        .await;
    assert_eq!(n["provider:segmentation_id"], 777);
    assert_eq!(n["admin_state_up"], true);
    let got = bad(json!({"provider:segmentation_id": 777})).await;
    assert_error(&got, 409, &["777"]);
}

#[tokio::test]
async fn flat_provider_networks() {
    let s = start().await;
    let n = s
        .create(
            "networks",
            "network",
            json!({"name": "public", "router:external": true, "provider:network_type": "flat",
                   "provider:physical_network": "physnet1"}),
        )
        .await;
    assert_eq!(n["provider:network_type"], "flat");
    assert_eq!(n["provider:physical_network"], "physnet1");
    assert_eq!(n["provider:segmentation_id"], serde_json::Value::Null);
    let id = n["id"].as_str().unwrap();
    let (status, got) = s.get(&format!("/v2.0/networks/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got["network"]["provider:physical_network"], "physnet1");
    let bad = |attrs: serde_json::Value| {
        let s = &s;
        async move { s.post("/v2.0/networks", json!({"network": attrs})).await }
    };
    assert_error(&bad(json!({"provider:network_type": "flat"})).await, 400, &["provider:physical_network"]);
    assert_error(&bad(json!({"provider:physical_network": "physnet1"})).await, 400, &["flat"]);
    assert_error(
        &bad(json!({"provider:network_type": "geneve", "provider:physical_network": "physnet1"})).await,
        400,
        &["geneve"],
    );
    assert_error(
        &bad(json!({"provider:network_type": "flat", "provider:physical_network": "a b"})).await,
        400,
        &["provider:physical_network", "a b"],
    );
    assert_error(
        &bad(json!({"provider:network_type": "flat", "provider:physical_network": "p",
                    "provider:segmentation_id": 9}))
        .await,
        400,
        &["provider:segmentation_id", "9"],
    );
    assert_error(&bad(json!({"provider:physical_network": 5})).await, 400, &["provider:physical_network"]);
    s.network("overlay").await;
    let (_, listed) = s.get("/v2.0/networks?provider:network_type=flat").await;
    assert_eq!(listed["networks"].as_array().unwrap().len(), 1, "{listed}");
}

#[tokio::test]
async fn list_filters_fields_paging_sorting() {
    let s = start().await;
    let mut made = Vec::new();
    for i in 0..5 {
        let n = s
            .create(
                "networks",
                "network",
                json!({"name": format!("n{}", i % 2), "shared": i == 3, "project_id": format!("p{i}")}),
            )
            .await;
        made.push(n["id"].as_str().unwrap().to_string());
    }
    made.sort();
    let (_, v) = s.get("/v2.0/networks").await;
    assert_eq!(ids(&v, "networks"), made);
    let (_, v) = s.get("/v2.0/networks?name=n1").await;
    assert_eq!(ids(&v, "networks").len(), 2);
    let (_, v) = s.get("/v2.0/networks?name=n1&shared=true").await;
    assert_eq!(ids(&v, "networks").len(), 1);
    let (_, v) = s.get("/v2.0/networks?shared=False&name=n1").await;
    assert_eq!(ids(&v, "networks").len(), 1);
    let (_, v) = s.get(&format!("/v2.0/networks?id={}&id={}", made[0], made[4])).await;
    assert_eq!(ids(&v, "networks"), vec![made[0].clone(), made[4].clone()]);
    let (_, v) = s.get("/v2.0/networks?tenant_id=p2").await;
    assert_eq!(v["networks"][0]["project_id"], "p2");
    assert_error(&s.get("/v2.0/networks?colour=red").await, 400, &["colour"]);

    let (_, v) = s.get("/v2.0/networks?fields=id&fields=name").await;
    for n in v["networks"].as_array().unwrap() {
        let keys: Vec<&String> = n.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["id", "name"]);
    }
    let (_, v) = s.get(&format!("/v2.0/networks/{}?fields=mtu", made[0])).await;
    assert_eq!(v["network"], json!({"mtu": 1442}));

    // Paging: follow the next links.
    let mut seen = Vec::new();
    let mut url = "/v2.0/networks?limit=2".to_string();
    loop {
        let (st, v) = s.get(&url).await;
        assert_eq!(st, 200, "{v}");
        let page = ids(&v, "networks");
        assert!(page.len() <= 2);
        seen.extend(page);
        match v["networks_links"].as_array().and_then(|l| l.iter().find(|l| l["rel"] == "next")) {
            Some(link) => {
                let href = link["href"].as_str().unwrap();
                url = href.strip_prefix(&s.base).expect("link on our host").to_string();
            }
            None => break,
        }
    }
    assert_eq!(seen, made);
    let (_, v) = s.get(&format!("/v2.0/networks?marker={}", made[2])).await;
    assert_eq!(ids(&v, "networks"), made[3..].to_vec());

    let (_, v) = s.get("/v2.0/networks?sort_key=project_id&sort_dir=desc").await;
    let projects: Vec<&str> =
        v["networks"].as_array().unwrap().iter().map(|n| n["project_id"].as_str().unwrap()).collect();
    assert_eq!(projects, ["p4", "p3", "p2", "p1", "p0"]);
    assert_error(&s.get("/v2.0/networks?limit=x").await, 400, &["limit"]);
}

#[tokio::test]
async fn revisions_and_if_match() {
    let s = start().await;
    let n = s.network("n").await;
    let path = format!("/v2.0/networks/{}", n["id"].as_str().unwrap());
    for expect in 2..5 {
        let (_, v) = s.put(&path, json!({"network": {"name": format!("v{expect}")}})).await;
        assert_eq!(v["network"]["revision_number"], expect);
    }
    let body = json!({"network": {"name": "guarded"}}).to_string();
    let got = s.raw(Method::PUT, &path, Some(&body), &[("If-Match", "revision_number=2")]).await;
    assert_error(&got, 412, &["2", "4"]);
    assert_eq!(err_type(&got.1), "RevisionNumberConstraintFailed");
    let got = s.raw(Method::PUT, &path, Some(&body), &[("If-Match", "revision_number=4")]).await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert_eq!(got.1["network"]["revision_number"], 5);
    assert_error(
        &s.raw(Method::PUT, &path, Some(&body), &[("If-Match", "banana")]).await,
        400,
        &["If-Match"],
    );
    let got = s.raw(Method::DELETE, &path, None, &[("If-Match", "revision_number=1")]).await;
    assert_eq!(got.0, 412);
    assert_eq!(s.get(&path).await.0, 200);
    let got = s.raw(Method::DELETE, &path, None, &[("If-Match", "revision_number=5")]).await;
    assert_eq!(got.0, 204);
}

#[tokio::test]
async fn subnet_crud_and_defaults() {
    let s = start().await;
    let n = s.network("n").await;
    let sub = s
        .create(
            "subnets",
            "subnet",
            json!({"network_id": n["id"], "cidr": "10.1.0.0/24", "name": "s1", "dns_nameservers": ["8.8.8.8"],
                   "host_routes": [{"destination": "192.168.0.0/16", "nexthop": "10.1.0.254"}],
                   "ipv6_ra_mode": null, "subnetpool_id": null}),
        )
        .await;
    assert_eq!(sub["ip_version"], 4);
    assert_eq!(sub["gateway_ip"], "10.1.0.1");
    assert_eq!(sub["enable_dhcp"], true);
    assert_eq!(sub["allocation_pools"], json!([{"start": "10.1.0.2", "end": "10.1.0.254"}]));
    assert_eq!(sub["dns_nameservers"], json!(["8.8.8.8"]));
    assert_eq!(sub["host_routes"][0]["nexthop"], "10.1.0.254");
    assert_eq!(sub["tenant_id"], "");
    let id = sub["id"].as_str().unwrap();

    let v6 = s
        .create(
            "subnets",
            "subnet",
            json!({"network_id": n["id"], "cidr": "fd00::/64", "ip_version": 6, "gateway_ip": null}),
        )
        .await;
    assert_eq!(v6["gateway_ip"], serde_json::Value::Null);
    assert_eq!(v6["allocation_pools"][0]["start"], "fd00::1");

    let (st, v) = s
        .put(&format!("/v2.0/subnets/{id}"), json!({"subnet": {"enable_dhcp": false, "allocation_pools": [{"start": "10.1.0.10", "end": "10.1.0.20"}]}}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["subnet"]["enable_dhcp"], false);
    assert_eq!(v["subnet"]["allocation_pools"], json!([{"start": "10.1.0.10", "end": "10.1.0.20"}]));
    assert_eq!(v["subnet"]["revision_number"], 2);
    assert_error(
        &s.put(&format!("/v2.0/subnets/{id}"), json!({"subnet": {"cidr": "10.9.0.0/24"}})).await,
        400,
        &["cidr"],
    );

    let (_, v) = s.get(&format!("/v2.0/subnets?network_id={}&ip_version=6", n["id"].as_str().unwrap())).await;
    assert_eq!(ids(&v, "subnets"), vec![v6["id"].as_str().unwrap().to_string()]);

    assert_eq!(s.delete(&format!("/v2.0/subnets/{id}")).await.0, 204);
    assert_eq!(err_type(&s.get(&format!("/v2.0/subnets/{id}")).await.1), "SubnetNotFound");
}

#[tokio::test]
async fn subnet_validation() {
    let s = start().await;
    let n = s.network("n").await;
    let post = |attrs: serde_json::Value| {
        let s = &s;
        async move { s.post("/v2.0/subnets", json!({"subnet": attrs})).await }
    };
    let net = n["id"].clone();
    assert_error(&post(json!({"network_id": net, "cidr": "10.0.0/24"})).await, 400, &["cidr", "10.0.0/24"]);
    assert_error(
        &post(json!({"network_id": net, "cidr": "10.0.0.1/24"})).await,
        400,
        &["cidr", "10.0.0.1/24"],
    );
    assert_error(
        &post(json!({"network_id": net, "cidr": "10.0.0.0/24", "ip_version": 6})).await,
        400,
        &["ip_version", "6"],
    );
    assert_error(
        &post(json!({"network_id": net, "cidr": "10.0.0.0/24", "gateway_ip": "10.9.9.9"})).await,
        400,
        &["gateway_ip", "10.9.9.9"],
    );
    assert_error(
        &post(json!({"network_id": net, "cidr": "10.0.0.0/24", "allocation_pools": [{"start": "10.0.0.50", "end": "10.0.0.10"}]})).await,
        400,
        &["allocation_pools[0]"],
    );
    assert_error(
        &post(json!({"network_id": net, "cidr": "10.0.0.0/24", "dns_nameservers": ["x"]})).await,
        400,
        &["dns_nameservers", "x"],
    );
    assert_error(&post(json!({"cidr": "10.0.0.0/24"})).await, 400, &["network_id"]);
    assert_error(&post(json!({"network_id": net})).await, 400, &["cidr"]);
    let got = post(json!({"network_id": "nope", "cidr": "10.0.0.0/24"})).await;
    assert_error(&got, 404, &["nope"]);
    assert_eq!(err_type(&got.1), "NetworkNotFound");

    // Overlapping subnets on one network: 400 InvalidInput, as Neutron; on another network: fine.
    s.subnet(&n, "10.0.0.0/16").await;
    let got = post(json!({"network_id": net, "cidr": "10.0.5.0/24"})).await;
    assert_error(&got, 400, &["10.0.5.0/24", "overlaps with another subnet"]);
    assert_eq!(err_type(&got.1), "InvalidInput");
    let other = s.network("other").await;
    s.subnet(&other, "10.0.5.0/24").await;
}

#[tokio::test]
async fn in_use_conflicts() {
    let s = start().await;
    let n = s.network("n").await;
    let sub = s.subnet(&n, "10.0.0.0/24").await;
    let p = s.port(&n, json!({})).await;
    let got = s.delete(&format!("/v2.0/networks/{}", n["id"].as_str().unwrap())).await;
    assert_error(&got, 409, &[n["id"].as_str().unwrap()]);
    assert_eq!(err_type(&got.1), "NetworkInUse");
    let got = s.delete(&format!("/v2.0/subnets/{}", sub["id"].as_str().unwrap())).await;
    assert_error(&got, 409, &[sub["id"].as_str().unwrap()]);
    assert_eq!(err_type(&got.1), "SubnetInUse");
    // Nothing was deleted.
    assert_eq!(s.get(&format!("/v2.0/subnets/{}", sub["id"].as_str().unwrap())).await.0, 200);
    assert_eq!(s.delete(&format!("/v2.0/ports/{}", p["id"].as_str().unwrap())).await.0, 204);
    assert_eq!(s.delete(&format!("/v2.0/networks/{}", n["id"].as_str().unwrap())).await.0, 204);
}
