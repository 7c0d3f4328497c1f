//! Discovery documents, authentication, error shapes of bad requests.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn version_and_resource_documents() {
    let s = start().await;
    let (st, v) = s.get("/").await;
    assert_eq!(st, 200);
    assert_eq!(v["versions"][0]["id"], "v2.0");
    assert_eq!(v["versions"][0]["status"], "CURRENT");
    assert_eq!(
        v["versions"][0]["links"][0],
        json!({"href": format!("http://{}/v2.0/", s.addr), "rel": "self"})
    );
    for path in ["/v2.0/", "/v2.0"] {
        let (st, v) = s.get(path).await;
        assert_eq!(st, 200);
        let names: Vec<&str> =
            v["resources"].as_array().unwrap().iter().map(|r| r["collection"].as_str().unwrap()).collect();
        for c in [
            "networks",
            "subnets",
            "ports",
            "routers",
            "floatingips",
            "security-groups",
            "security-group-rules",
            "agents",
        ] {
            assert!(names.contains(&c), "{c} missing from {names:?}");
        }
        assert_eq!(v["resources"][0]["links"][0]["href"], format!("http://{}/v2.0/networks", s.addr));
    }
}

#[tokio::test]
async fn extensions() {
    let s = start().await;
    let (st, v) = s.get("/v2.0/extensions").await;
    assert_eq!(st, 200);
    let aliases: Vec<&str> =
        v["extensions"].as_array().unwrap().iter().map(|e| e["alias"].as_str().unwrap()).collect();
    for a in [
        "binding",
        "binding-extended",
        "router",
        "external-net",
        "security-group",
        "port-security",
        "allowed-address-pairs",
        "standard-attr-revisions",
        "project-id",
        "agent",
    ] {
        assert!(aliases.contains(&a), "{a} missing");
    }
    assert!(!aliases.contains(&"extra_dhcp_opt"));
    let (st, v) = s.get("/v2.0/extensions/binding-extended").await;
    assert_eq!(st, 200);
    assert_eq!(v["extension"]["alias"], "binding-extended");
    assert_error(&s.get("/v2.0/extensions/dvr").await, 404, &["dvr"]);
}

#[tokio::test]
async fn token_required_except_version_document() {
    let s = start_with(memory_nb(), Some("sesame")).await;
    // The helper sends the right token.
    assert_eq!(s.get("/v2.0/networks").await.0, 200);
    let client = reqwest::Client::new();
    let r = client.get(format!("{}/", s.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    for (path, token) in [("/v2.0/networks", None), ("/v2.0/networks", Some("wrong")), ("/v2.0/", None)] {
        let mut req = client.get(format!("{}{path}", s.base));
        if let Some(t) = token {
            req = req.header("X-Auth-Token", t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(err_type(&v), "HTTPUnauthorized");
    }
    let r = client.post(format!("{}/v2.0/networks", s.base)).body(r#"{"network":{}}"#).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(s.nb.list(tern_model::Kind::Network).await.unwrap().0.is_empty());
}

#[tokio::test]
async fn malformed_bodies_are_400_in_neutron_shape() {
    let s = start().await;
    for body in ["{", "not json", "[1,2", "{\"network\": {\"name\": }"] {
        let got = s.raw(Method::POST, "/v2.0/networks", Some(body), &[]).await;
        assert_error(&got, 400, &["Malformed request body"]);
        assert_eq!(err_type(&got.1), "HTTPBadRequest");
    }
    // Wrong or missing content type: still JSON, still Neutron's errors.
    let got = s.raw(Method::POST, "/v2.0/networks", Some("{"), &[("Content-Type", "text/plain")]).await;
    assert_error(&got, 400, &["Malformed"]);
    assert_error(&s.raw(Method::POST, "/v2.0/networks", Some(""), &[]).await, 400, &["body"]);
    assert_error(&s.post("/v2.0/networks", json!({"net": {}})).await, 400, &["network"]);
    assert_error(&s.post("/v2.0/networks", json!([1])).await, 400, &["network"]);
    assert_error(&s.post("/v2.0/networks", json!({"network": "x"})).await, 400, &["network"]);
    assert_error(&s.post("/v2.0/networks", json!({"networks": [{}]})).await, 400, &["Bulk"]);
    assert_error(&s.put("/v2.0/networks/x", json!({"network": 5})).await, 400, &[]);
}

#[tokio::test]
async fn unknown_attributes_and_read_only_ones() {
    let s = start().await;
    let got = s.post("/v2.0/networks", json!({"network": {"name": "n", "colour": "red", "size": 1}})).await;
    assert_error(&got, 400, &["Unrecognized attribute(s)", "colour", "size"]);
    assert_error(
        &s.post("/v2.0/networks", json!({"network": {"status": "DOWN"}})).await,
        400,
        &["status", "POST"],
    );
    assert_error(&s.post("/v2.0/networks", json!({"network": {"id": "mine"}})).await, 400, &["id"]);
    let n = s.network("n").await;
    let got = s
        .put(
            &format!("/v2.0/networks/{}", n["id"].as_str().unwrap()),
            json!({"network": {"project_id": "p2"}}),
        )
        .await;
    assert_error(&got, 400, &["project_id"]);
    // Accepted and ignored Neutron attributes.
    let got = s
        .post(
            "/v2.0/networks",
            json!({"network": {"name": "n2", "availability_zone_hints": ["nova"], "dns_domain": "x.", "qos_policy_id": null,
                               "is_default": false, "tags": ["a"], "description": "d"}}),
        )
        .await;
    assert_eq!(got.0, 201, "{}", got.1);
    assert_eq!(got.1["network"]["description"], "d");
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let s = start().await;
    let got = s.get("/v2.0/flavors").await;
    assert_error(&got, 404, &[]);
    assert_eq!(err_type(&got.1), "HTTPNotFound");
    let got = s.call(Method::PATCH, "/v2.0/networks", None).await;
    assert_eq!(got.0, 405);
    assert_eq!(err_type(&got.1), "HTTPMethodNotAllowed");
    assert_eq!(s.call(Method::DELETE, "/v2.0/networks", None).await.0, 405);
    assert_eq!(s.call(Method::POST, "/v2.0/agents", Some(json!({}))).await.0, 405);
}

#[tokio::test]
async fn serve_refuses_a_public_address_without_token() {
    let config = tern_api::ApiConfig::new("0.0.0.0:0".parse().unwrap(), memory_nb());
    let e = tern_api::serve_with_shutdown(config, async {}).await.unwrap_err().to_string();
    assert!(e.contains("token"), "{e}");
    // With a token (and an immediate shutdown) it starts and stops cleanly.
    let config = tern_api::ApiConfig::new("127.0.0.1:0".parse().unwrap(), memory_nb());
    tern_api::serve_with_shutdown(config, async {}).await.unwrap();
}
