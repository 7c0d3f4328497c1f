//! State survives a server restart on the same redb file.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tern_store::nb::Nb;

/// Opens the redb file, retrying while the previous server's handle is still being released.
async fn open(path: &std::path::Path) -> Nb {
    let dsn = format!("redb:{}", path.display());
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match tern_store::open(&dsn).await {
                Ok(store) => return Nb::new(store),
                Err(_) => tokio::task::yield_now().await,
            }
        }
    })
    .await
    .expect("the redb file is released after the server stops")
}

#[tokio::test]
async fn state_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nb.redb");
    let s = start_with(open(&path).await, None).await;
    let n = s.network("persistent").await;
    let sub = s.subnet(&n, "10.0.0.0/24").await;
    let p = s.port(&n, json!({"name": "p"})).await;
    let r = s.create("routers", "router", json!({"name": "r"})).await;
    s.put(
        &format!("/v2.0/routers/{}/add_router_interface", r["id"].as_str().unwrap()),
        json!({"subnet_id": sub["id"]}),
    )
    .await;
    let (_, before_ports) = s.get("/v2.0/ports").await;
    let (_, before_sgs) = s.get("/v2.0/security-groups").await;
    s.stop().await;

    let s = start_with(open(&path).await, None).await;
    let (st, v) = s.get(&format!("/v2.0/networks/{}", n["id"].as_str().unwrap())).await;
    assert_eq!(st, 200);
    assert_eq!(v["network"]["subnets"], json!([sub["id"]]));
    assert_eq!(s.get("/v2.0/ports").await.1, before_ports);
    assert_eq!(s.get("/v2.0/security-groups").await.1, before_sgs);
    let (_, v) = s.get(&format!("/v2.0/ports/{}", p["id"].as_str().unwrap())).await;
    assert_eq!(v["port"], p);
    // Allocation continues where it stopped (.1 is the router interface, .2 the port).
    let q = s.port(&n, json!({})).await;
    assert_eq!(q["fixed_ips"][0]["ip_address"], "10.0.0.3");
    s.stop().await;
}
