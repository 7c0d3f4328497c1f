//! `kill -9` of `tern server` at random moments while clients run the operations that write
//! several objects (floating IP create, associate and delete; router interface add and remove;
//! port create and delete with their claims and floating IPs) on the embedded store: after every
//! kill, `tern db check` on the store finds nothing, and at the end the whole cloud can be taken
//! apart through the API (no orphan floating IP port holding an address, no interface its router
//! does not list, the external network deletable).

#[path = "common/server.rs"]
mod server;

use serde_json::{json, Value};
use server::Server;
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tern_controller::synthetic::Rng;

/// Kill -9 rounds (each one server process).
const ROUNDS: u64 = 12;
/// Concurrent API clients per round.
const CLIENTS: u64 = 4;
/// Internal networks, one /24 subnet each, each attachable to the router.
const NETWORKS: usize = 3;
/// Generous bound on one request (the server answers in milliseconds).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The cloud the clients work on.
struct Cloud {
    external: String,
    router: String,
    networks: Vec<String>,
    subnets: Vec<String>,
}

/// Ids the clients created (some may be gone since: requests on them answer 404, which is fine).
#[derive(Default)]
struct Known {
    ports: Vec<String>,
    floating_ips: Vec<String>,
    /// Successful answers by operation, so the test shows it did what it claims.
    succeeded: BTreeMap<&'static str, usize>,
}

/// One HTTP request; `None` when the server is gone (the kill). A 5xx fails the test.
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let mut request = http.request(method.clone(), &url).timeout(REQUEST_TIMEOUT);
    if let Some(body) = &body {
        request = request.json(body);
    }
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    let text = response.text().await.ok()?;
    assert!(status < 500, "{method} {url} {body:?} answered {status}: {text}");
    Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// A request that must succeed (set-up and take-down, with no kill around).
async fn must(http: &reqwest::Client, method: reqwest::Method, url: String, body: Option<Value>) -> Value {
    let (status, v) = call(http, method.clone(), url.clone(), body).await.expect("the server answers");
    assert!((200..300).contains(&status), "{method} {url} answered {status}: {v}");
    v
}

fn id_of(v: &Value, member: &str) -> String {
    v[member]["id"].as_str().unwrap_or_else(|| panic!("no {member}.id in {v}")).to_owned()
}

async fn set_up(http: &reqwest::Client, api: &str) -> Cloud {
    use reqwest::Method;
    let net = |body: Value| {
        must(http, Method::POST, format!("{api}/v2.0/networks"), Some(json!({ "network": body })))
    };
    let external = id_of(&net(json!({"name": "public", "router:external": true})).await, "network");
    must(
        http,
        Method::POST,
        format!("{api}/v2.0/subnets"),
        Some(json!({"subnet": {"network_id": external, "cidr": "198.51.100.0/24", "ip_version": 4}})),
    )
    .await;
    let mut networks = Vec::new();
    let mut subnets = Vec::new();
    for i in 0..NETWORKS {
        let n = id_of(&net(json!({ "name": format!("private-{i}") })).await, "network");
        let body = json!({"subnet": {"network_id": n, "cidr": format!("10.9.{i}.0/24"), "ip_version": 4}});
        let s = must(http, Method::POST, format!("{api}/v2.0/subnets"), Some(body)).await;
        networks.push(n);
        subnets.push(id_of(&s, "subnet"));
    }
    let body = json!({"router": {"name": "r", "external_gateway_info": {"network_id": external}}});
    let router = id_of(&must(http, Method::POST, format!("{api}/v2.0/routers"), Some(body)).await, "router");
    Cloud { external, router, networks, subnets }
}

/// One client: random operations until the server is gone.
async fn client(api: String, cloud: Arc<Cloud>, known: Arc<Mutex<Known>>, done: Arc<AtomicUsize>, seed: u64) {
    use reqwest::Method;
    let http = reqwest::Client::new();
    let mut rng = Rng::new(seed);
    loop {
        let k = rng.below(NETWORKS);
        let pick = |list: &[String], r: usize| list.get(r % list.len().max(1)).cloned();
        let (port, fip) = {
            let known = known.lock().unwrap();
            (pick(&known.ports, rng.below(1 << 16)), pick(&known.floating_ips, rng.below(1 << 16)))
        };
        let router = format!("{api}/v2.0/routers/{}", cloud.router);
        let (op, answer) = match rng.below(8) {
            0 | 1 => {
                let (op, verb) =
                    if rng.below(2) == 0 { ("add interface", "add") } else { ("remove interface", "remove") };
                let body = json!({ "subnet_id": cloud.subnets[k] });
                (op, call(&http, Method::PUT, format!("{router}/{verb}_router_interface"), Some(body)).await)
            }
            2 | 3 => {
                let body = json!({"port": {"network_id": cloud.networks[k], "device_owner": "compute:nova"}});
                let answer = call(&http, Method::POST, format!("{api}/v2.0/ports"), Some(body)).await;
                if let Some((201, v)) = &answer {
                    known.lock().unwrap().ports.push(id_of(v, "port"));
                }
                ("create port", answer)
            }
            4 => (
                "delete port",
                match port {
                    Some(p) => call(&http, Method::DELETE, format!("{api}/v2.0/ports/{p}"), None).await,
                    None => Some((404, Value::Null)),
                },
            ),
            5 => {
                let op = if port.is_some() { "create associated floating IP" } else { "create floating IP" };
                let body = json!({"floatingip": {"floating_network_id": cloud.external, "port_id": port}});
                let answer = call(&http, Method::POST, format!("{api}/v2.0/floatingips"), Some(body)).await;
                if let Some((201, v)) = &answer {
                    known.lock().unwrap().floating_ips.push(id_of(v, "floatingip"));
                }
                (op, answer)
            }
            6 => (
                "associate floating IP",
                match fip {
                    Some(f) => {
                        let target = if rng.below(3) == 0 { None } else { port };
                        let body = json!({"floatingip": {"port_id": target}});
                        call(&http, Method::PUT, format!("{api}/v2.0/floatingips/{f}"), Some(body)).await
                    }
                    None => Some((404, Value::Null)),
                },
            ),
            _ => (
                "delete floating IP",
                match fip {
                    Some(f) => call(&http, Method::DELETE, format!("{api}/v2.0/floatingips/{f}"), None).await,
                    None => Some((404, Value::Null)),
                },
            ),
        };
        let Some((status, _)) = answer else {
            return; // killed
        };
        if (200..300).contains(&status) {
            *known.lock().unwrap().succeeded.entry(op).or_default() += 1;
        }
        done.fetch_add(1, Ordering::SeqCst);
    }
}

/// `tern db check` on the store: exit 0 and no violation printed.
fn assert_checks_clean(dsn: &str, round: u64) {
    let out = Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["db", "--nb", dsn, "check"])
        .env_remove("TERN_NB")
        .output()
        .expect("run tern db check");
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "after kill -9 round {round}, tern db check ({}) found:\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_multi_object_operations_leaves_nothing_to_repair() {
    use reqwest::Method;
    let dir = tempfile::tempdir().expect("temporary directory");
    let dsn = format!("redb:{}", dir.path().join("nb.redb").display());
    let http = reqwest::Client::new();
    let known = Arc::new(Mutex::new(Known::default()));
    let mut rng = Rng::new(0x7e57);
    let mut cloud = None;
    let mut total = 0;
    for round in 0..ROUNDS {
        let logs = dir.path().join(format!("round-{round}"));
        std::fs::create_dir_all(&logs).unwrap();
        let server = Server::start(&dsn, None, &logs);
        let api = server.endpoint.clone();
        if cloud.is_none() {
            cloud = Some(Arc::new(set_up(&http, &api).await));
        }
        let cloud = cloud.clone().unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                tokio::spawn(client(api.clone(), cloud.clone(), known.clone(), done.clone(), round * 100 + c))
            })
            .collect();
        // Kill after a random number of answered requests, with the other clients' in flight.
        let kill_after = 10 + rng.below(120);
        // (A client that failed ends early: its panic is reported below.)
        while done.load(Ordering::SeqCst) < kill_after && !clients.iter().all(|c| c.is_finished()) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut server = server;
        server.child.kill().expect("kill -9 tern server");
        server.child.wait().expect("reap tern server");
        for c in clients {
            c.await.expect("a client failed");
        }
        total += done.load(Ordering::SeqCst);
        assert_checks_clean(&dsn, round);
    }
    let succeeded = std::mem::take(&mut known.lock().unwrap().succeeded);
    eprintln!("{ROUNDS} kill -9 rounds, {total} requests answered; succeeded: {succeeded:?}");
    for op in [
        "add interface",
        "remove interface",
        "create associated floating IP",
        "delete floating IP",
        "delete port",
    ] {
        assert!(
            succeeded.get(op).copied().unwrap_or(0) >= 3,
            "too few successful {op:?} to mean anything: {succeeded:?}"
        );
    }

    // Everything can be taken apart through the API.
    let cloud = cloud.unwrap();
    let logs = dir.path().join("final");
    std::fs::create_dir_all(&logs).unwrap();
    let server = Server::start(&dsn, None, &logs);
    let api = &server.endpoint;
    let fips = must(&http, Method::GET, format!("{api}/v2.0/floatingips"), None).await;
    for f in fips["floatingips"].as_array().unwrap() {
        let id = f["id"].as_str().unwrap();
        must(&http, Method::DELETE, format!("{api}/v2.0/floatingips/{id}"), None).await;
    }
    let router = must(&http, Method::GET, format!("{api}/v2.0/routers/{}", cloud.router), None).await;
    let interfaces =
        must(&http, Method::GET, format!("{api}/v2.0/ports?device_id={}", cloud.router), None).await;
    for p in interfaces["ports"].as_array().unwrap() {
        if p["device_owner"] == "network:router_interface" {
            let body = json!({ "port_id": p["id"] });
            let url = format!("{api}/v2.0/routers/{}/remove_router_interface", cloud.router);
            must(&http, Method::PUT, url, Some(body)).await;
        }
    }
    assert!(router["router"]["external_gateway_info"].is_object(), "the gateway stayed: {router}");
    must(&http, Method::DELETE, format!("{api}/v2.0/routers/{}", cloud.router), None).await;
    let ports = must(&http, Method::GET, format!("{api}/v2.0/ports"), None).await;
    for p in ports["ports"].as_array().unwrap() {
        if p["device_owner"] == "compute:nova" {
            let id = p["id"].as_str().unwrap();
            must(&http, Method::DELETE, format!("{api}/v2.0/ports/{id}"), None).await;
        }
    }
    for n in cloud.networks.iter().chain([&cloud.external]) {
        must(&http, Method::DELETE, format!("{api}/v2.0/networks/{n}"), None).await;
    }
    let left = must(&http, Method::GET, format!("{api}/v2.0/ports"), None).await;
    assert_eq!(left["ports"], json!([]), "no port is left behind");
    drop(server);
    assert_checks_clean(&dsn, ROUNDS);
}
