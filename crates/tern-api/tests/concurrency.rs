//! Concurrent clients: allocations never collide, read-modify-writes never lose an update.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_port_creation_gets_distinct_addresses() {
    let s = Arc::new(start().await);
    let n = s.network("n").await;
    s.subnet(&n, "10.0.0.0/24").await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (s, net) = (s.clone(), n["id"].clone());
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..10 {
                let (st, v) = s.post("/v2.0/ports", json!({"port": {"network_id": net}})).await;
                assert_eq!(st, 201, "{v}");
                got.push((
                    v["port"]["fixed_ips"][0]["ip_address"].as_str().unwrap().to_string(),
                    v["port"]["mac_address"].as_str().unwrap().to_string(),
                ));
            }
            got
        }));
    }
    let mut ips = HashSet::new();
    let mut macs = HashSet::new();
    for t in tasks {
        for (ip, mac) in t.await.unwrap() {
            assert!(ips.insert(ip.clone()), "{ip} handed out twice");
            assert!(macs.insert(mac));
        }
    }
    assert_eq!(ips.len(), 80);
    // All ports share the one default security group.
    let (_, v) = s.get("/v2.0/security-groups?name=default").await;
    assert_eq!(v["security_groups"].as_array().unwrap().len(), 1, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_rule_creation_loses_nothing() {
    let s = Arc::new(start().await);
    let g = s.create("security-groups", "security_group", json!({"name": "g"})).await;
    let mut tasks = Vec::new();
    for i in 0..16u16 {
        let (s, gid) = (s.clone(), g["id"].clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"security_group_rule": {"security_group_id": gid, "direction": "ingress", "protocol": "tcp",
                                                       "port_range_min": 1000 + i, "port_range_max": 1000 + i}});
            let (st, v) = s.post("/v2.0/security-group-rules", body).await;
            assert_eq!(st, 201, "{v}");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (_, v) = s.get(&format!("/v2.0/security-groups/{}", g["id"].as_str().unwrap())).await;
    assert_eq!(v["security_group"]["security_group_rules"].as_array().unwrap().len(), 2 + 16);
}
