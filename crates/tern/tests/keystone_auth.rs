//! `tern server --auth keystone` against a real Keystone (from target/python-venv, `make pyenv`):
//! tokens are validated and cached, a revoked token is refused within `token_cache_time`, an
//! expired one at once, a Keystone that is down answers 503; Neutron's default policy holds
//! between two projects and for admin, member and reader (isolation is a 404, a forbidden
//! attribute or action a 403, admin-only attributes hidden from the others).

#[path = "common/keystone.rs"]
mod keystone;
#[path = "common/server.rs"]
mod server;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use keystone::{password, Keystone, KeystoneOptions};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use server::Server;

/// The server's `--config`, for tern's service user `tern` (seeded by the harness).
fn config(keystone: &Keystone, cache_time: u64) -> String {
    format!(
        "[keystone_authtoken]\nauth_url = {}\nauth_type = password\nusername = tern\npassword = {}\n\
         project_name = service\nuser_domain_name = Default\nproject_domain_name = Default\n\
         token_cache_time = {cache_time}\nmemcached_servers = ignored:11211\n",
        keystone.url.trim_end_matches("/v3"),
        password("tern"),
    )
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("X-Auth-Token", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Polls until `path` answers `want` with `token` (generous timeout, never a fixed sleep).
    async fn until(&self, token: &str, path: &str, want: StatusCode, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let (got, body) = self.call(Some(token), Method::GET, path, None).await;
            if got == want {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "{path} still answers {got} ({body}) after {within:?}, want {want}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn start_tern(keystone: &Keystone, dir: &std::path::Path, cache_time: u64) -> (Server, Api) {
    let conf = dir.join("tern.conf");
    std::fs::write(&conf, config(keystone, cache_time)).expect("write tern.conf");
    let dsn = format!("redb:{}", dir.join("nb.redb").display());
    let server = Server::start_with(&dsn, &["--auth", "keystone", "--config", conf.to_str().unwrap()], dir);
    let api = Api { base: server.endpoint.clone(), http: reqwest::Client::new() };
    (server, api)
}

#[tokio::test]
async fn projects_roles_and_neutron_policy() -> anyhow::Result<()> {
    let ks = Keystone::start(KeystoneOptions::default())?;
    let dir = tempfile::tempdir()?;
    let (server, api) = start_tern(&ks, dir.path(), 300);
    let tok = |user: &'static str, project: &'static str| {
        let ks = &ks;
        async move { ks.token(user, &password(user), project).await.with_context(|| format!("token of {user}")) }
    };
    let admin = ks.admin_token().await?;
    let alpha = tok("alpha-member", "alpha").await?;
    let alpha_reader = tok("alpha-reader", "alpha").await?;
    let beta = tok("beta-member", "beta").await?;
    let (alpha_id, beta_id) = (ks.project_id("alpha"), ks.project_id("beta"));

    // No token, or one Keystone does not know: 401. Version discovery stays open.
    assert_eq!(api.call(None, Method::GET, "/v2.0/networks", None).await.0, 401);
    assert_eq!(api.call(Some("not-a-token"), Method::GET, "/v2.0/networks", None).await.0, 401);
    assert_eq!(api.call(None, Method::GET, "/", None).await.0, 200);

    // A member creates in its own project; the project comes from the token.
    let (s, net) = api
        .call(Some(&alpha), Method::POST, "/v2.0/networks", Some(json!({"network": {"name": "a-net"}})))
        .await;
    assert_eq!(s, 201, "{net}");
    assert_eq!(net["network"]["project_id"], json!(alpha_id));
    // Admin-only attributes are hidden from it (they are the admin's to see).
    assert!(net["network"].get("provider:segmentation_id").is_none(), "{net}");
    let a_net = net["network"]["id"].as_str().unwrap().to_string();
    let (s, sub) = api
        .call(
            Some(&alpha),
            Method::POST,
            "/v2.0/subnets",
            Some(json!({"subnet": {"network_id": a_net, "cidr": "10.1.0.0/24", "ip_version": 4}})),
        )
        .await;
    assert_eq!(s, 201, "{sub}");
    let (s, port) = api
        .call(
            Some(&alpha),
            Method::POST,
            "/v2.0/ports",
            Some(json!({"port": {"network_id": a_net, "device_owner": "compute:nova"}})),
        )
        .await;
    assert_eq!(s, 201, "{port}");
    assert!(port["port"].get("binding:host_id").is_none(), "{port}");
    let a_port = port["port"]["id"].as_str().unwrap().to_string();
    let (_, shown) = api.call(Some(&admin), Method::GET, &format!("/v2.0/networks/{a_net}"), None).await;
    assert!(shown["network"].get("provider:segmentation_id").is_some(), "the admin sees it: {shown}");

    // Another project neither sees nor touches it: 404, as Neutron.
    let (_, list) = api.call(Some(&beta), Method::GET, "/v2.0/networks", None).await;
    assert!(list["networks"].as_array().unwrap().iter().all(|n| n["id"] != json!(a_net)), "{list}");
    for (m, path, body) in [
        (Method::GET, format!("/v2.0/networks/{a_net}"), None),
        (Method::PUT, format!("/v2.0/networks/{a_net}"), Some(json!({"network": {"name": "mine"}}))),
        (Method::DELETE, format!("/v2.0/networks/{a_net}"), None),
        (Method::GET, format!("/v2.0/ports/{a_port}"), None),
        (Method::DELETE, format!("/v2.0/ports/{a_port}"), None),
    ] {
        let (s, b) = api.call(Some(&beta), m.clone(), &path, body).await;
        assert_eq!(s, 404, "beta {m} {path}: {b}");
    }
    let (s, b) = api
        .call(Some(&beta), Method::POST, "/v2.0/ports", Some(json!({"port": {"network_id": a_net}})))
        .await;
    assert_eq!(s, 404, "a port on another project's network: {b}");
    let (_, ports) = api.call(Some(&beta), Method::GET, "/v2.0/ports", None).await;
    assert_eq!(ports["ports"], json!([]), "{ports}");
    // Nor names another project in a body.
    let (s, b) = api
        .call(Some(&beta), Method::POST, "/v2.0/networks", Some(json!({"network": {"project_id": alpha_id}})))
        .await;
    assert_eq!(s, 403, "{b}");

    // A reader reads and does not write.
    let (s, list) = api.call(Some(&alpha_reader), Method::GET, "/v2.0/networks", None).await;
    assert_eq!(s, 200);
    assert!(list["networks"].as_array().unwrap().iter().any(|n| n["id"] == json!(a_net)), "{list}");
    let (s, b) =
        api.call(Some(&alpha_reader), Method::DELETE, &format!("/v2.0/networks/{a_net}"), None).await;
    assert_eq!(s, 403, "{b}");
    let (s, _) =
        api.call(Some(&alpha_reader), Method::POST, "/v2.0/networks", Some(json!({"network": {}}))).await;
    assert_eq!(s, 403);

    // Attributes only an administrator sets.
    for body in [
        json!({"network": {"shared": true}}),
        json!({"network": {"router:external": true}}),
        json!({"network": {"provider:network_type": "geneve", "provider:segmentation_id": 4000}}),
    ] {
        let (s, b) = api.call(Some(&alpha), Method::POST, "/v2.0/networks", Some(body.clone())).await;
        assert_eq!(s, 403, "{body}: {b}");
    }
    let (s, b) = api
        .call(
            Some(&alpha),
            Method::PUT,
            &format!("/v2.0/ports/{a_port}"),
            Some(json!({"port": {"binding:host_id": "hv1"}})),
        )
        .await;
    assert_eq!(s, 403, "{b}");
    let (s, agents) = api.call(Some(&alpha), Method::GET, "/v2.0/agents", None).await;
    assert_eq!((s.as_u16(), &agents), (200, &json!({"agents": []})), "agents are the admin's to see");
    assert_eq!(api.call(Some(&admin), Method::GET, "/v2.0/agents", None).await.0, 200);
    let (s, b) = api
        .call(
            Some(&alpha),
            Method::PUT,
            &format!("/v2.0/quotas/{alpha_id}"),
            Some(json!({"quota": {"network": 5}})),
        )
        .await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(api.call(Some(&alpha), Method::GET, &format!("/v2.0/quotas/{alpha_id}"), None).await.0, 200);
    assert_eq!(api.call(Some(&alpha), Method::GET, &format!("/v2.0/quotas/{beta_id}"), None).await.0, 403);

    // A shared network: every project sees it and puts ports on it; only its owner (or an admin)
    // changes it or sets a port's MAC on it.
    let (s, shared) = api
        .call(
            Some(&admin),
            Method::POST,
            "/v2.0/networks",
            Some(json!({"network": {"name": "shared", "shared": true}})),
        )
        .await;
    assert_eq!(s, 201, "{shared}");
    let shared_id = shared["network"]["id"].as_str().unwrap().to_string();
    let (s, sub) = api
        .call(
            Some(&admin),
            Method::POST,
            "/v2.0/subnets",
            Some(json!({"subnet": {"network_id": shared_id, "cidr": "10.9.0.0/24", "ip_version": 4}})),
        )
        .await;
    assert_eq!(s, 201, "{sub}");
    let sub_id = sub["subnet"]["id"].as_str().unwrap().to_string();
    assert_eq!(api.call(Some(&beta), Method::GET, &format!("/v2.0/networks/{shared_id}"), None).await.0, 200);
    assert_eq!(api.call(Some(&beta), Method::GET, &format!("/v2.0/subnets/{sub_id}"), None).await.0, 200);
    let (s, b) = api
        .call(
            Some(&beta),
            Method::PUT,
            &format!("/v2.0/networks/{shared_id}"),
            Some(json!({"network": {"name": "x"}})),
        )
        .await;
    assert_eq!(s, 403, "{b}");
    let (s, b) = api
        .call(Some(&beta), Method::POST, "/v2.0/ports", Some(json!({"port": {"network_id": shared_id}})))
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["port"]["project_id"], json!(beta_id));
    let (s, b) = api
        .call(
            Some(&beta),
            Method::POST,
            "/v2.0/ports",
            Some(json!({"port": {"network_id": shared_id, "mac_address": "fa:16:3e:00:00:42"}})),
        )
        .await;
    assert_eq!(s, 403, "create_port:mac_address on another's network: {b}");
    let (s, b) = api
        .call(
            Some(&beta),
            Method::POST,
            "/v2.0/ports",
            Some(json!({"port": {"network_id": shared_id, "fixed_ips": [{"ip_address": "10.9.0.50"}]}})),
        )
        .await;
    assert_eq!(s, 403, "create_port:fixed_ips:ip_address on another's network: {b}");
    // The admin sees everything.
    let (_, all) = api.call(Some(&admin), Method::GET, "/v2.0/ports", None).await;
    assert_eq!(all["ports"].as_array().unwrap().len(), 2, "{all}");

    drop(server);
    Ok(())
}

#[tokio::test]
async fn revoked_expired_and_keystone_down() -> anyhow::Result<()> {
    // Tokens live 20 s; tern trusts a validation 3 s.
    let ks = Keystone::start(KeystoneOptions { token_expiration: 20, ..KeystoneOptions::default() })?;
    let dir = tempfile::tempdir()?;
    let (_server, api) = start_tern(&ks, dir.path(), 3);
    let secret = password("alpha-member");
    let user = || ks.token("alpha-member", &secret, "alpha");

    // Revoked: refused within the cache's lifetime.
    let revoked = user().await?;
    assert_eq!(api.call(Some(&revoked), Method::GET, "/v2.0/networks", None).await.0, 200);
    ks.revoke(&ks.admin_token().await?, &revoked).await?;
    let took = api.until(&revoked, "/v2.0/networks", StatusCode::UNAUTHORIZED, Duration::from_secs(30)).await;
    println!("a revoked token was refused {took:?} after its revocation (token_cache_time 3 s)");

    // Expired: refused once its time is up, whatever the cache.
    let expiring = user().await?;
    assert_eq!(api.call(Some(&expiring), Method::GET, "/v2.0/networks", None).await.0, 200);
    let took =
        api.until(&expiring, "/v2.0/networks", StatusCode::UNAUTHORIZED, Duration::from_secs(60)).await;
    println!("a token was refused {took:?} after its first use (it lives 20 s)");

    // Keystone down: a token tern has not validated is not let through; 503, not 401 or 200.
    let fresh = user().await?;
    ks.stop()?;
    let (s, b) = api.call(Some(&fresh), Method::GET, "/v2.0/networks", None).await;
    assert_eq!(s, 503, "{b}");
    assert!(b.to_string().contains("identity service"), "{b}");
    Ok(())
}

/// What the test's Nova received: each request's token and events.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>;

/// A Nova stand-in on loopback: `POST /v2.1/os-server-external-events` answers 200 with each
/// event's code (as Nova does) and keeps the request.
async fn fake_nova() -> (String, Received) {
    use axum::routing::post;
    let got: Received = Default::default();
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/v2.1/os-server-external-events",
        post(move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
            let keep = keep.clone();
            async move {
                let token =
                    headers.get("x-auth-token").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                let mut events = body["events"].as_array().cloned().unwrap_or_default();
                for e in &mut events {
                    e["code"] = json!(200);
                }
                keep.lock().unwrap().push((token, body));
                axum::Json(json!({ "events": events }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/v2.1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

#[tokio::test]
async fn nova_found_in_the_catalog_gets_events_with_a_valid_token() -> anyhow::Result<()> {
    let (nova_url, received) = fake_nova().await;
    let ks = Keystone::start(KeystoneOptions { compute_url: Some(nova_url), ..KeystoneOptions::default() })?;
    let dir = tempfile::tempdir()?;
    let nova_section = format!(
        "\n[nova]\nauth_url = {}\nauth_type = password\nusername = nova\npassword = {}\nproject_name = service\n\
         user_domain_name = Default\nproject_domain_name = Default\nregion_name = RegionOne\nsend_events_interval = 0.2\n",
        ks.url,
        password("nova"),
    );
    let conf = dir.path().join("tern.conf");
    std::fs::write(&conf, config(&ks, 300) + &nova_section)?;
    let dsn = format!("redb:{}", dir.path().join("nb.redb").display());
    let server =
        Server::start_with(&dsn, &["--auth", "keystone", "--config", conf.to_str().unwrap()], dir.path());
    let api = Api { base: server.endpoint.clone(), http: reqwest::Client::new() };
    let alpha = ks.token("alpha-member", &password("alpha-member"), "alpha").await?;
    let (_, net) = api.call(Some(&alpha), Method::POST, "/v2.0/networks", Some(json!({"network": {}}))).await;
    let net = net["network"]["id"].as_str().unwrap().to_string();
    let (s, b) = api
        .call(
            Some(&alpha),
            Method::POST,
            "/v2.0/subnets",
            Some(json!({"subnet": {"network_id": net, "cidr": "10.2.0.0/24", "ip_version": 4}})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let server_uuid = "0b4a2c51-6f33-4f0e-9a43-6a1f2b8d9e01";
    let (s, port) = api
        .call(Some(&alpha), Method::POST, "/v2.0/ports", Some(json!({"port": {"network_id": net, "device_owner": "compute:nova", "device_id": server_uuid}})))
        .await;
    assert_eq!(s, 201, "{port}");
    let port = port["port"]["id"].as_str().unwrap().to_string();
    // The port goes away: Nova hears network-vif-deleted for it.
    assert_eq!(api.call(Some(&alpha), Method::DELETE, &format!("/v2.0/ports/{port}"), None).await.0, 204);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (token, body) = loop {
        let found = received
            .lock()
            .unwrap()
            .iter()
            .find(|(_, b)| {
                b["events"].as_array().is_some_and(|es| es.iter().any(|e| e["name"] == "network-vif-deleted"))
            })
            .cloned();
        if let Some(f) = found {
            break f;
        }
        assert!(
            Instant::now() < deadline,
            "no network-vif-deleted within 60 s; got {:?}\n{}",
            received.lock().unwrap(),
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let event =
        body["events"].as_array().unwrap().iter().find(|e| e["name"] == "network-vif-deleted").unwrap();
    assert_eq!(event["tag"], json!(port));
    assert_eq!(event["server_uuid"], json!(server_uuid));
    // The token is the nova user's, from Keystone: it validates.
    let valid = ks.validate(&ks.admin_token().await?, &token).await?.expect("Nova got a valid token");
    assert_eq!(valid["token"]["user"]["name"], json!("nova"));
    Ok(())
}
