//! Routers (interfaces, gateway, routes) and floating IPs (allocation, association).

mod common;

use common::*;
use serde_json::{json, Value};

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

#[tokio::test]
async fn router_crud_and_interfaces_by_subnet() {
    let s = start().await;
    let n = s.network("n").await;
    let sub = s.subnet(&n, "10.0.0.0/24").await;
    let r = s
        .create(
            "routers",
            "router",
            json!({"name": "r1", "project_id": "p", "distributed": true, "ha": false}),
        )
        .await;
    assert_eq!(r["external_gateway_info"], Value::Null);
    assert_eq!(r["status"], "ACTIVE");
    assert_eq!(r["routes"], json!([]));
    let rid = id(&r);

    let (st, v) =
        s.put(&format!("/v2.0/routers/{rid}/add_router_interface"), json!({"subnet_id": id(&sub)})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["id"], rid);
    assert_eq!(v["subnet_id"], id(&sub));
    assert_eq!(v["subnet_ids"], json!([id(&sub)]));
    assert_eq!(v["network_id"], id(&n));
    assert_eq!(v["tenant_id"], "p");
    assert_eq!(v["project_id"], "p");
    let port_id = v["port_id"].as_str().unwrap().to_string();
    let (_, p) = s.get(&format!("/v2.0/ports/{port_id}")).await;
    assert_eq!(p["port"]["device_owner"], "network:router_interface");
    assert_eq!(p["port"]["device_id"], rid);
    assert_eq!(p["port"]["fixed_ips"], json!([{"subnet_id": id(&sub), "ip_address": "10.0.0.1"}]));
    let (_, v) = s.get(&format!("/v2.0/ports?device_id={rid}&device_owner=network:router_interface")).await;
    assert_eq!(ids(&v, "ports"), vec![port_id.clone()]);

    // A second interface on the same subnet: 400; the port can't be deleted directly: 409.
    let got =
        s.put(&format!("/v2.0/routers/{rid}/add_router_interface"), json!({"subnet_id": id(&sub)})).await;
    assert_error(&got, 400, &["already has a port"]);
    let got = s.delete(&format!("/v2.0/ports/{port_id}")).await;
    assert_eq!((got.0, err_type(&got.1)), (409, "ServicePortInUse"));
    // Nor the router, nor the subnet.
    let got = s.delete(&format!("/v2.0/routers/{rid}")).await;
    assert_eq!((got.0, err_type(&got.1)), (409, "RouterInUse"));
    let got = s.delete(&format!("/v2.0/subnets/{}", id(&sub))).await;
    assert_eq!((got.0, err_type(&got.1)), (409, "SubnetInUse"));

    // Routes through the attached subnet.
    let route = json!({"router": {"routes": [{"destination": "192.168.0.0/16", "nexthop": "10.0.0.254"}]}});
    let (st, v) = s.put(&format!("/v2.0/routers/{rid}"), route).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["router"]["routes"][0]["nexthop"], "10.0.0.254");
    let bad = json!({"router": {"routes": [{"destination": "192.168.0.0/16", "nexthop": "10.9.0.254"}]}});
    assert_error(&s.put(&format!("/v2.0/routers/{rid}"), bad).await, 400, &["nexthop", "10.9.0.254"]);
    let got =
        s.put(&format!("/v2.0/routers/{rid}/remove_router_interface"), json!({"subnet_id": id(&sub)})).await;
    assert_eq!((got.0, err_type(&got.1)), (409, "RouterInterfaceInUseByRoute"));
    s.put(&format!("/v2.0/routers/{rid}"), json!({"router": {"routes": []}})).await;

    let (st, v) =
        s.put(&format!("/v2.0/routers/{rid}/remove_router_interface"), json!({"subnet_id": id(&sub)})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["port_id"], port_id);
    assert_eq!(err_type(&s.get(&format!("/v2.0/ports/{port_id}")).await.1), "PortNotFound");
    let got =
        s.put(&format!("/v2.0/routers/{rid}/remove_router_interface"), json!({"subnet_id": id(&sub)})).await;
    assert_eq!((got.0, err_type(&got.1)), (404, "RouterInterfaceNotFoundForSubnet"));

    let (st, v) = s.put(&format!("/v2.0/routers/{rid}"), json!({"router": {"name": "r2"}})).await;
    assert_eq!((st, v["router"]["name"].as_str()), (200, Some("r2")));
    assert_eq!(s.delete(&format!("/v2.0/routers/{rid}")).await.0, 204);
    assert_eq!(err_type(&s.get(&format!("/v2.0/routers/{rid}")).await.1), "RouterNotFound");
}

#[tokio::test]
async fn interfaces_by_port_and_bad_requests() {
    let s = start().await;
    let n = s.network("n").await;
    let sub = s.subnet(&n, "10.0.0.0/24").await;
    let r = s.create("routers", "router", json!({})).await;
    let rid = id(&r);
    let p = s.port(&n, json!({"fixed_ips": [{"ip_address": "10.0.0.254"}]})).await;
    let (st, v) =
        s.put(&format!("/v2.0/routers/{rid}/add_router_interface"), json!({"port_id": id(&p)})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["port_id"], id(&p));
    assert_eq!(v["subnet_id"], id(&sub));
    let (_, pv) = s.get(&format!("/v2.0/ports/{}", id(&p))).await;
    assert_eq!(pv["port"]["device_owner"], "network:router_interface");
    assert_eq!(pv["port"]["device_id"], rid);

    let path = format!("/v2.0/routers/{rid}/add_router_interface");
    assert_error(&s.put(&path, json!({})).await, 400, &["subnet_id or port_id"]);
    assert_error(&s.put(&path, json!({"subnet_id": "a", "port_id": "b"})).await, 400, &["both"]);
    assert_error(&s.put(&path, json!({"subnet_id": "a", "extra": 1})).await, 400, &["extra"]);
    assert_eq!(err_type(&s.put(&path, json!({"subnet_id": "nope"})).await.1), "SubnetNotFound");
    assert_eq!(
        err_type(&s.put("/v2.0/routers/nope/add_router_interface", json!({"subnet_id": id(&sub)})).await.1),
        "RouterNotFound"
    );
    let used = s.port(&n, json!({"device_id": "vm"})).await;
    let got = s.put(&path, json!({"port_id": id(&used)})).await;
    assert_eq!((got.0, err_type(&got.1)), (409, "PortInUse"));
    let nogw = s.network("n2").await;
    let nogw_sub = s
        .create(
            "subnets",
            "subnet",
            json!({"network_id": id(&nogw), "cidr": "10.5.0.0/24", "gateway_ip": null}),
        )
        .await;
    assert_error(&s.put(&path, json!({"subnet_id": id(&nogw_sub)})).await, 400, &["gateway"]);

    let (st, v) =
        s.put(&format!("/v2.0/routers/{rid}/remove_router_interface"), json!({"port_id": id(&p)})).await;
    assert_eq!(st, 200, "{v}");
    let got =
        s.put(&format!("/v2.0/routers/{rid}/remove_router_interface"), json!({"port_id": id(&p)})).await;
    assert_eq!((got.0, err_type(&got.1)), (404, "RouterInterfaceNotFound"));
}

/// An external network with a subnet, a tenant network with a VM port, a router between them.
async fn topology(s: &Server) -> (Value, Value, Value, Value) {
    let ext = s.external_network("public").await;
    s.subnet(&ext, "172.24.4.0/24").await;
    let n = s.network("private").await;
    let sub = s.subnet(&n, "10.0.0.0/24").await;
    let r = s.create("routers", "router", json!({"external_gateway_info": {"network_id": id(&ext)}})).await;
    s.put(&format!("/v2.0/routers/{}/add_router_interface", id(&r)), json!({"subnet_id": id(&sub)})).await;
    let vm = s.port(&n, json!({"device_owner": "compute:nova"})).await;
    (ext, r, vm, sub)
}

#[tokio::test]
async fn router_gateway() {
    let s = start().await;
    let (ext, r, _, _) = topology(&s).await;
    let gw = &r["external_gateway_info"];
    assert_eq!(gw["network_id"], id(&ext));
    assert_eq!(gw["enable_snat"], true);
    assert_eq!(gw["external_fixed_ips"][0]["ip_address"], "172.24.4.2");
    let (_, v) =
        s.get(&format!("/v2.0/ports?device_owner=network:router_gateway&device_id={}", id(&r))).await;
    assert_eq!(ids(&v, "ports").len(), 1);
    // Changing only SNAT keeps the port and address.
    let path = format!("/v2.0/routers/{}", id(&r));
    let (st, v) = s
        .put(
            &path,
            json!({"router": {"external_gateway_info": {"network_id": id(&ext), "enable_snat": false}}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["router"]["external_gateway_info"]["enable_snat"], false);
    assert_eq!(v["router"]["external_gateway_info"]["external_fixed_ips"][0]["ip_address"], "172.24.4.2");
    // Removing the gateway removes its port.
    let (st, v) = s.put(&path, json!({"router": {"external_gateway_info": null}})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["router"]["external_gateway_info"], Value::Null);
    let (_, v) = s.get("/v2.0/ports?device_owner=network:router_gateway").await;
    assert!(ids(&v, "ports").is_empty());
    // A non-external network cannot be a gateway.
    let plain = s.network("plain").await;
    let got = s
        .post("/v2.0/routers", json!({"router": {"external_gateway_info": {"network_id": id(&plain)}}}))
        .await;
    assert_error(&got, 400, &["not an external network"]);
    let (_, v) = s.get("/v2.0/routers").await;
    assert_eq!(ids(&v, "routers").len(), 1);
}

#[tokio::test]
async fn floating_ip_lifecycle() {
    let s = start().await;
    let (ext, r, vm, _) = topology(&s).await;
    let f = s
        .create("floatingips", "floatingip", json!({"floating_network_id": id(&ext), "description": "web"}))
        .await;
    assert_eq!(f["floating_ip_address"], "172.24.4.3");
    assert_eq!(f["status"], "DOWN");
    assert_eq!(f["port_id"], Value::Null);
    assert_eq!(f["router_id"], Value::Null);
    let path = format!("/v2.0/floatingips/{}", id(&f));

    let (st, v) = s.put(&path, json!({"floatingip": {"port_id": id(&vm)}})).await;
    assert_eq!(st, 200, "{v}");
    let fv = &v["floatingip"];
    assert_eq!(fv["port_id"], id(&vm));
    assert_eq!(fv["fixed_ip_address"], vm["fixed_ips"][0]["ip_address"]);
    assert_eq!(fv["router_id"], id(&r));
    assert_eq!(fv["status"], "ACTIVE");
    assert_eq!(fv["revision_number"], 2);
    let (_, v) = s.get(&format!("/v2.0/floatingips?port_id={}", id(&vm))).await;
    assert_eq!(ids(&v, "floatingips"), vec![id(&f).to_string()]);

    // The router interface it needs cannot go.
    let sub_id = vm["fixed_ips"][0]["subnet_id"].as_str().unwrap();
    let got = s
        .put(&format!("/v2.0/routers/{}/remove_router_interface", id(&r)), json!({"subnet_id": sub_id}))
        .await;
    assert_eq!((got.0, err_type(&got.1)), (409, "RouterInterfaceInUseByFloatingIP"));
    // A second floating IP on the same fixed IP: 409.
    let got = s
        .post(
            "/v2.0/floatingips",
            json!({"floatingip": {"floating_network_id": id(&ext), "port_id": id(&vm)}}),
        )
        .await;
    assert_eq!((got.0, err_type(&got.1)), (409, "FloatingIPPortAlreadyAssociated"));

    let (st, v) = s.put(&path, json!({"floatingip": {"port_id": null}})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["floatingip"]["port_id"], Value::Null);
    assert_eq!(v["floatingip"]["fixed_ip_address"], Value::Null);
    assert_eq!(v["floatingip"]["router_id"], Value::Null);
    assert_eq!(v["floatingip"]["status"], "DOWN");

    // Create already associated, with a chosen address.
    let g = s
        .create("floatingips", "floatingip", json!({"floating_network_id": id(&ext), "floating_ip_address": "172.24.4.100", "port_id": id(&vm)}))
        .await;
    assert_eq!(g["floating_ip_address"], "172.24.4.100");
    assert_eq!(g["router_id"], id(&r));
    let got = s
        .post(
            "/v2.0/floatingips",
            json!({"floatingip": {"floating_network_id": id(&ext), "floating_ip_address": "172.24.4.100"}}),
        )
        .await;
    assert_eq!((got.0, err_type(&got.1)), (409, "IpAddressInUse"));

    // Deleting the VM port disassociates.
    assert_eq!(s.delete(&format!("/v2.0/ports/{}", id(&vm))).await.0, 204);
    let (_, v) = s.get(&format!("/v2.0/floatingips/{}", id(&g))).await;
    assert_eq!(v["floatingip"]["port_id"], Value::Null);

    assert_eq!(s.delete(&path).await.0, 204);
    assert_eq!(err_type(&s.get(&path).await.1), "FloatingIPNotFound");
    let (_, v) = s.get(&format!("/v2.0/ports?device_id={}", id(&f))).await;
    assert!(ids(&v, "ports").is_empty(), "the address port goes with the floating IP");
}

#[tokio::test]
async fn floating_ip_errors() {
    let s = start().await;
    let (ext, _, vm, _) = topology(&s).await;
    let plain = s.network("plain").await;
    let post = |attrs: Value| {
        let s = &s;
        async move { s.post("/v2.0/floatingips", json!({"floatingip": attrs})).await }
    };
    assert_error(
        &post(json!({"floating_network_id": id(&plain)})).await,
        400,
        &["not a valid external network"],
    );
    assert_eq!(err_type(&post(json!({"floating_network_id": "nope"})).await.1), "NetworkNotFound");
    assert_error(&post(json!({})).await, 400, &["floating_network_id"]);
    assert_error(
        &post(json!({"floating_network_id": id(&ext), "floating_ip_address": "x"})).await,
        400,
        &["floating_ip_address", "x"],
    );
    assert_error(
        &post(json!({"floating_network_id": id(&ext), "floating_ip_address": "10.9.9.9"})).await,
        400,
        &["10.9.9.9"],
    );
    let got = post(json!({"floating_network_id": id(&ext), "port_id": "nope"})).await;
    assert_eq!((got.0, err_type(&got.1)), (404, "PortNotFound"));
    assert_error(
        &post(json!({"floating_network_id": id(&ext), "port_id": id(&vm), "fixed_ip_address": "10.0.0.200"}))
            .await,
        400,
        &["10.0.0.200"],
    );
    // A port on a network no router connects to the floating network: 404.
    let lonely_net = s.network("lonely").await;
    s.subnet(&lonely_net, "10.7.0.0/24").await;
    let lonely = s.port(&lonely_net, json!({})).await;
    let got = post(json!({"floating_network_id": id(&ext), "port_id": id(&lonely)})).await;
    assert_eq!((got.0, err_type(&got.1)), (404, "ExternalGatewayForFloatingIPNotFound"));
    // None of these left a floating IP or an address port behind.
    let (_, v) = s.get("/v2.0/floatingips").await;
    assert!(ids(&v, "floatingips").is_empty());
    let (_, v) = s.get("/v2.0/ports?device_owner=network:floatingip").await;
    assert!(ids(&v, "ports").is_empty());
}
