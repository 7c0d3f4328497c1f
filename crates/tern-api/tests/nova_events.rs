//! The Nova notifier against a Nova stand-in on loopback that holds every request to the
//! os-server-external-events request schema of Nova's API reference (v2.1), driven through the
//! API and through the NB as the controllers write it: each event when it is due, none lost to a
//! Nova that is down or to a notifier started again, per-event 404s dropped, 401 renewing the
//! token.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{json, Value};
use tern_api::nova::{self, NovaOptions, NovaTarget, StaticTarget};
use tern_model::{Kind, Migration, MigrationState, Port, Resource, Status};
use tern_store::nb::Nb;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use common::{start, Server};

const VM1: &str = "3f1b2a4c-5d6e-4f70-8a9b-0c1d2e3f4a5b";
const VM2: &str = "0a0b0c0d-1111-4222-8333-444455556666";
const VM_GONE: &str = "deadbeef-0000-4000-8000-000000000404";
const TOKEN: &str = "nova-service-token";
/// How long a test waits for anything it polls for.
const PATIENCE: Duration = Duration::from_secs(30);

// === the Nova stand-in ===

/// One request as the stand-in answered it.
#[derive(Clone, Debug)]
struct Request {
    status: u16,
    events: Vec<Value>,
    codes: Vec<u16>,
}

#[derive(Default)]
struct NovaState {
    /// The status of every answer (200: answer each event as Nova does).
    answer: AtomicU16,
    /// The token Nova takes.
    token: Mutex<String>,
    /// Servers Nova does not know (their events are answered 404).
    unknown: Mutex<HashSet<String>>,
    requests: Mutex<Vec<Request>>,
    violations: Mutex<Vec<String>>,
}

/// Nova's os-server-external-events on loopback; stops and starts again on the same address.
struct Nova {
    addr: SocketAddr,
    state: Arc<NovaState>,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Nova {
    async fn start() -> Nova {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let state = Arc::new(NovaState::default());
        state.answer.store(200, Ordering::SeqCst);
        *state.token.lock().unwrap() = TOKEN.into();
        let mut n = Nova { addr, state, running: None };
        n.up().await;
        n
    }

    /// The compute endpoint, as the catalog gives it.
    fn url(&self) -> String {
        format!("http://{}/v2.1", self.addr)
    }

    async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.expect("bind Nova's address again");
        let app = axum::Router::new()
            .route("/v2.1/os-server-external-events", axum::routing::post(events))
            .with_state(self.state.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        self.running = Some((tx, task));
    }

    /// Not listening any more.
    async fn down(&mut self) {
        if let Some((tx, task)) = self.running.take() {
            let _ = tx.send(());
            task.await.unwrap();
        }
    }

    fn answer(&self, status: u16) {
        self.state.answer.store(status, Ordering::SeqCst);
    }

    fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Every event Nova took (answered 200 or 207), as `name status` per port, in order.
    fn told(&self, port: &str) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r.status == 200 || r.status == 207)
            .flat_map(|r| r.events.iter().zip(&r.codes).map(|(e, c)| (e.clone(), *c)).collect::<Vec<_>>())
            .filter(|(e, _)| e["tag"] == port)
            .map(|(e, code)| {
                let name = e["name"].as_str().unwrap().trim_start_matches("network-");
                let s = format!("{name} {}", e["status"].as_str().unwrap_or("-"));
                if code == 200 {
                    s
                } else {
                    format!("{s} ({code})")
                }
            })
            .collect()
    }

    /// Every event Nova took, whatever its port.
    fn told_all(&self) -> Vec<Value> {
        let requests = self.requests();
        requests.into_iter().filter(|r| r.status == 200 || r.status == 207).flat_map(|r| r.events).collect()
    }

    fn assert_schema_held(&self) {
        let v = self.state.violations.lock().unwrap();
        assert!(v.is_empty(), "requests outside Nova's schema: {v:?}");
    }
}

/// The handler: the request is checked against Nova's schema, then answered as Nova does.
async fn events(
    State(s): State<Arc<NovaState>>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    let mut problems = Vec::new();
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
        problems.push(format!("content-type {:?}", headers.get("content-type")));
    }
    let parsed: Result<Value, _> = serde_json::from_str(&body);
    let value = match parsed {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("not JSON: {e}"));
            Value::Null
        }
    };
    problems.extend(schema_problems(&value));
    let events: Vec<Value> = value["events"].as_array().cloned().unwrap_or_default();
    let record = |status: u16, codes: Vec<u16>| {
        s.requests.lock().unwrap().push(Request { status, events: events.clone(), codes });
    };
    if !problems.is_empty() {
        s.violations.lock().unwrap().push(format!("{problems:?} in {body}"));
        record(400, vec![]);
        return (StatusCode::BAD_REQUEST, "schema").into_response();
    }
    let token = headers.get("x-auth-token").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if token != *s.token.lock().unwrap() {
        record(401, vec![]);
        return (StatusCode::UNAUTHORIZED, "bad token").into_response();
    }
    let answer = s.answer.load(Ordering::SeqCst);
    if answer != 200 {
        record(answer, vec![]);
        return StatusCode::from_u16(answer).unwrap().into_response();
    }
    let unknown = s.unknown.lock().unwrap().clone();
    let mut out = Vec::new();
    let mut codes = Vec::new();
    for e in &events {
        let mut e = e.clone();
        let code = if unknown.contains(e["server_uuid"].as_str().unwrap_or_default()) { 404 } else { 200 };
        e["code"] = json!(code);
        e["status"] = json!(if code == 200 { "completed" } else { "failed" });
        codes.push(code);
        out.push(e);
    }
    let status = if codes.iter().all(|c| *c == 200) { 200 } else { 207 };
    record(status, codes);
    (StatusCode::from_u16(status).unwrap(), axum::Json(json!({ "events": out }))).into_response()
}

/// What Nova's request schema (`server_external_events.create`, v2.1) finds wrong with `body`.
fn schema_problems(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(top) = body.as_object() else { return vec!["body is not an object".into()] };
    if top.keys().any(|k| k != "events") {
        out.push(format!("extra top-level keys: {:?}", top.keys().collect::<Vec<_>>()));
    }
    let Some(events) = top.get("events").and_then(Value::as_array) else {
        out.push("events is missing or not an array".into());
        return out;
    };
    if events.is_empty() {
        out.push("events is empty (minItems 1)".into());
    }
    for (i, e) in events.iter().enumerate() {
        let Some(e) = e.as_object() else {
            out.push(format!("events[{i}] is not an object"));
            continue;
        };
        for k in e.keys() {
            if !["name", "server_uuid", "status", "tag"].contains(&k.as_str()) {
                out.push(format!("events[{i}] has extra key {k}"));
            }
        }
        let names =
            ["network-changed", "network-vif-plugged", "network-vif-unplugged", "network-vif-deleted"];
        match e.get("name").and_then(Value::as_str) {
            Some(n) if names.contains(&n) => {}
            other => out.push(format!("events[{i}].name {other:?}")),
        }
        match e.get("server_uuid").and_then(Value::as_str) {
            Some(u) if is_uuid(u) => {}
            other => out.push(format!("events[{i}].server_uuid {other:?} is not a UUID")),
        }
        if let Some(s) = e.get("status") {
            if !["failed", "completed", "in-progress"].contains(&s.as_str().unwrap_or_default()) {
                out.push(format!("events[{i}].status {s}"));
            }
        }
        if let Some(t) = e.get("tag") {
            if t.as_str().is_none_or(|t| t.chars().count() > 255) {
                out.push(format!("events[{i}].tag {t}"));
            }
        }
    }
    out
}

/// The canonical 8-4-4-4-12 form.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[test]
fn the_schema_check_is_strict() {
    let ok = json!({"events": [{"name": "network-vif-plugged", "server_uuid": VM1, "tag": "p", "status": "completed"}]});
    assert!(schema_problems(&ok).is_empty());
    for bad in [
        json!({"events": []}),
        json!({"events": [{"name": "network-vif-plugged"}]}),
        json!({"events": [{"name": "vif-plugged", "server_uuid": VM1}]}),
        json!({"events": [{"name": "network-changed", "server_uuid": "vm-a"}]}),
        json!({"events": [{"name": "network-changed", "server_uuid": VM1, "status": "ok"}]}),
        json!({"events": [{"name": "network-changed", "server_uuid": VM1, "code": 200}]}),
        json!({"events": [{"name": "network-changed", "server_uuid": VM1, "tag": "x".repeat(256)}]}),
        json!({"events": [], "extra": 1}),
    ] {
        assert!(!schema_problems(&bad).is_empty(), "{bad}");
    }
}

// === the notifier ===

fn fast() -> NovaOptions {
    NovaOptions {
        batch_interval: Duration::from_millis(20),
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        request_timeout: Duration::from_secs(2),
        leader_ttl: Duration::from_secs(1),
        ..NovaOptions::default()
    }
}

struct Notifier {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

fn notifier(nb: &Nb, target: Arc<dyn NovaTarget>, options: NovaOptions) -> Notifier {
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(nova::run(nb.clone(), target, options, async move {
        let _ = rx.await;
    }));
    Notifier { stop: Some(tx), task }
}

fn static_target(n: &Nova) -> Arc<dyn NovaTarget> {
    Arc::new(StaticTarget { url: n.url(), token: Some(TOKEN.into()) })
}

impl Notifier {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(PATIENCE, self.task).await.expect("the notifier stops").unwrap().unwrap();
    }

    /// Dropped in the middle of whatever it does, as a crash would.
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Polls `cond` (never a fixed sleep) until it holds; `what` when it never does.
async fn wait_for(what: impl std::fmt::Display, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until Nova was told exactly `want` about `port` (more, or other, fails at once).
async fn told(nova: &Nova, port: &str, want: &[&str]) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = nova.told(port);
        if got == want {
            return;
        }
        let prefix = got.len() <= want.len() && want.iter().zip(&got).all(|(w, g)| w == g);
        assert!(prefix, "port {port}: Nova was told {got:?}, expected {want:?}");
        assert!(Instant::now() < deadline, "port {port}: Nova was told only {got:?} of {want:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The notified record of a port, as stored.
async fn record(nb: &Nb, port: &str) -> Option<nova::NotifiedRecord> {
    let kv = nb.store().get(&nova::notified_key(port)).await.unwrap()?;
    Some(serde_json::from_slice(&kv.value).unwrap())
}

/// Waits until the port's record says Nova knows it with `status`, nothing waiting (the events
/// before are then delivered and recorded).
async fn recorded(nb: &Nb, port: &str, status: Status) {
    let deadline = Instant::now() + PATIENCE;
    let done = |r: &nova::NotifiedRecord| {
        r.pending.is_empty() && r.facts.as_ref().is_some_and(|f| f.status == status)
    };
    while !record(nb, port).await.is_some_and(|r| done(&r)) {
        assert!(Instant::now() < deadline, "the record of {port} never said {status:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A port status write, as the controller of the port's chassis makes it.
async fn set_status(nb: &Nb, port: &str, status: Status) {
    let stored = nb.fetch(Kind::Port, port).await.unwrap();
    let mut p = Port::from_object(stored.object).unwrap();
    p.status = status;
    nb.put(p.into_object()).await.unwrap();
}

async fn private_network(s: &Server) -> (Value, Value) {
    let n = s.network("private").await;
    let sub = s.subnet(&n, "10.0.0.0/24").await;
    (n, sub)
}

async fn vm_port(s: &Server, net: &Value, server: &str) -> String {
    let p = s.port(net, json!({"device_owner": "compute:nova", "device_id": server})).await;
    p["id"].as_str().unwrap().to_owned()
}

async fn set_fixed_ip(s: &Server, port: &str, subnet: &Value, ip: &str) {
    let body = json!({"port": {"fixed_ips": [{"subnet_id": subnet["id"], "ip_address": ip}]}});
    let (st, v) = s.put(&format!("/v2.0/ports/{port}"), body).await;
    assert_eq!(st, 200, "{v}");
}

#[tokio::test]
async fn each_change_of_a_server_port_is_told_once() {
    let s = start().await;
    let nb = s.nb.clone();
    let nova = Nova::start().await;
    let n = notifier(&nb, static_target(&nova), fast());

    let ext = s.external_network("public").await;
    s.subnet(&ext, "172.24.4.0/24").await;
    let (net, sub) = private_network(&s).await;
    let r = s.create("routers", "router", json!({"external_gateway_info": {"network_id": ext["id"]}})).await;
    let (st, _) = s
        .put(
            &format!("/v2.0/routers/{}/add_router_interface", r["id"].as_str().unwrap()),
            json!({"subnet_id": sub["id"]}),
        )
        .await;
    assert_eq!(st, 200);
    // Ports that are no server's: a DHCP port, a compute port whose device is no UUID.
    let dhcp = s.port(&net, json!({"device_owner": "network:dhcp", "device_id": VM2})).await;
    let dhcp = dhcp["id"].as_str().unwrap().to_owned();
    let odd = s.port(&net, json!({"device_owner": "compute:nova", "device_id": "vm-a"})).await;
    let odd = odd["id"].as_str().unwrap().to_owned();

    let p = vm_port(&s, &net, VM1).await;
    // Created DOWN: nothing to tell. The controller sees the VIF: plugged.
    set_status(&nb, &p, Status::Active).await;
    told(&nova, &p, &["vif-plugged completed"]).await;
    set_fixed_ip(&s, &p, &sub, "10.0.0.50").await;
    told(&nova, &p, &["vif-plugged completed", "changed completed"]).await;
    let fip =
        s.create("floatingips", "floatingip", json!({"floating_network_id": ext["id"], "port_id": p})).await;
    let fip_path = format!("/v2.0/floatingips/{}", fip["id"].as_str().unwrap());
    told(&nova, &p, &["vif-plugged completed", "changed completed", "changed completed"]).await;
    // A live migration's destination VIF is plugged (the destination's controller writes the
    // record): Nova hears vif-plugged at once, with the port still ACTIVE on the source.
    let mut m = Migration::new(p.clone(), 0, "hv1", "hv2");
    m.state = MigrationState::DestPlugged;
    nb.put(m.into_object()).await.unwrap();
    let mut want =
        vec!["vif-plugged completed", "changed completed", "changed completed", "vif-plugged completed"];
    told(&nova, &p, &want).await;
    nb.delete(Kind::Migration, &p).await.unwrap();
    set_status(&nb, &p, Status::Down).await;
    want.push("vif-unplugged completed");
    told(&nova, &p, &want).await;
    set_status(&nb, &p, Status::Error).await;
    want.push("vif-plugged failed");
    told(&nova, &p, &want).await;
    let (st, v) = s.put(&fip_path, json!({"floatingip": {"port_id": null}})).await;
    assert_eq!(st, 200, "{v}");
    want.push("changed completed");
    told(&nova, &p, &want).await;

    // The other ports' changes were nobody's news.
    for other in [&dhcp, &odd] {
        set_status(&nb, other, Status::Active).await;
    }
    // A port deleted: vif-deleted, and its record goes.
    let (st, _) = s.delete(&format!("/v2.0/ports/{p}")).await;
    assert_eq!(st, 204);
    want.push("vif-deleted completed");
    told(&nova, &p, &want).await;
    let deadline = Instant::now() + PATIENCE;
    while record(&nb, &p).await.is_some() {
        assert!(Instant::now() < deadline, "the deleted port's record never went");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for other in [&dhcp, &odd] {
        assert!(nova.told(other).is_empty(), "{other}: {:?}", nova.told(other));
    }
    assert!(nova.told_all().iter().all(|e| e["server_uuid"] == VM1), "{:?}", nova.told_all());
    nova.assert_schema_held();
    // What the notifier stores is no orphan for `tern db check`.
    let p2 = vm_port(&s, &net, VM2).await;
    set_status(&nb, &p2, Status::Active).await;
    recorded(&nb, &p2, Status::Active).await;
    let report = tern_api::invariants::check(&nb).await.unwrap();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    n.stop().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nova_that_is_down_delays_events_and_loses_none() {
    let s = start().await;
    let nb = s.nb.clone();
    let mut nova = Nova::start().await;
    let n = notifier(&nb, static_target(&nova), fast());
    let (net, sub) = private_network(&s).await;
    let p = vm_port(&s, &net, VM1).await;
    set_status(&nb, &p, Status::Active).await;
    told(&nova, &p, &["vif-plugged completed"]).await;
    recorded(&nb, &p, Status::Active).await;

    // Nova is not listening: a flap and an address change.
    nova.down().await;
    set_status(&nb, &p, Status::Down).await;
    set_status(&nb, &p, Status::Active).await;
    set_fixed_ip(&s, &p, &sub, "10.0.0.77").await;
    // Then it accepts connections and drops them, then answers 503: the notifier keeps trying.
    let raw = tokio::net::TcpListener::bind(nova.addr).await.unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let dropper = tokio::spawn(async move {
        loop {
            let (conn, _) = raw.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    wait_for("connections to a Nova that drops them", || accepted.load(Ordering::SeqCst) >= 3).await;
    dropper.abort();
    let _ = dropper.await;
    nova.answer(503);
    nova.up().await;
    let busy = |nova: &Nova| nova.requests().iter().filter(|r| r.status == 503).count();
    wait_for("requests to a Nova answering 503", || busy(&nova) >= 3).await;
    assert_eq!(nova.told(&p), ["vif-plugged completed"], "nothing taken while Nova is down");
    // The waiting events are in the NB.
    let waiting: Vec<String> =
        record(&nb, &p).await.unwrap().pending.iter().map(|e| e.name.as_str().to_owned()).collect();
    assert_eq!(waiting, ["network-vif-unplugged", "network-vif-plugged", "network-changed"]);

    // Nova is back: everything, in order, in one request.
    let before = nova.requests().len();
    nova.answer(200);
    let want =
        ["vif-plugged completed", "vif-unplugged completed", "vif-plugged completed", "changed completed"];
    told(&nova, &p, &want).await;
    let delivered: Vec<Request> =
        nova.requests()[before..].iter().filter(|r| r.status == 200).cloned().collect();
    assert_eq!(delivered[0].events.len(), 3, "one request carries every pending event: {delivered:?}");
    recorded(&nb, &p, Status::Active).await;
    nova.assert_schema_held();
    n.stop().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notifier_started_again_loses_nothing_and_repeats_nothing() {
    let s = start().await;
    let nb = s.nb.clone();
    let nova = Nova::start().await;
    let a = notifier(&nb, static_target(&nova), fast());
    let (net, sub) = private_network(&s).await;
    let p1 = vm_port(&s, &net, VM1).await;
    let p2 = vm_port(&s, &net, VM2).await;
    set_status(&nb, &p1, Status::Active).await;
    set_status(&nb, &p2, Status::Active).await;
    told(&nova, &p1, &["vif-plugged completed"]).await;
    told(&nova, &p2, &["vif-plugged completed"]).await;
    recorded(&nb, &p1, Status::Active).await;
    recorded(&nb, &p2, Status::Active).await;

    // Nova fails; the notifier holds two events when it dies.
    nova.answer(503);
    set_status(&nb, &p1, Status::Down).await;
    set_fixed_ip(&s, &p2, &sub, "10.0.0.88").await;
    wait_for("a refused request carrying both events", || {
        nova.requests().iter().any(|r| r.status == 503 && r.events.len() == 2)
    })
    .await;
    a.kill().await;

    // With no notifier at all: a flap of p1, p2 deleted, a new server port p3 plugged.
    set_status(&nb, &p1, Status::Active).await;
    set_status(&nb, &p1, Status::Down).await;
    set_status(&nb, &p1, Status::Active).await;
    let (st, _) = s.delete(&format!("/v2.0/ports/{p2}")).await;
    assert_eq!(st, 204);
    let p3 = vm_port(&s, &net, VM1).await;
    set_status(&nb, &p3, Status::Active).await;

    nova.answer(200);
    let b = notifier(&nb, static_target(&nova), fast());
    let p1_want = [
        "vif-plugged completed",
        "vif-unplugged completed",
        "vif-plugged completed",
        "vif-unplugged completed",
        "vif-plugged completed",
    ];
    told(&nova, &p1, &p1_want).await;
    told(&nova, &p2, &["vif-plugged completed", "changed completed", "vif-deleted completed"]).await;
    told(&nova, &p3, &["vif-plugged completed"]).await;
    recorded(&nb, &p3, Status::Active).await;
    recorded(&nb, &p1, Status::Active).await;
    b.stop().await;

    // History compacted away while no notifier runs: the records and the NB are compared (a flap
    // inside the gap is then told as its end state).
    set_status(&nb, &p1, Status::Down).await;
    let (st, _) = s.delete(&format!("/v2.0/ports/{p3}")).await;
    assert_eq!(st, 204);
    let now = nb.store().revision().await.unwrap();
    nb.store().compact(now).await.unwrap();
    let c = notifier(&nb, static_target(&nova), fast());
    let mut p1_want = p1_want.to_vec();
    p1_want.push("vif-unplugged completed");
    told(&nova, &p1, &p1_want).await;
    told(&nova, &p3, &["vif-plugged completed", "vif-deleted completed"]).await;
    recorded(&nb, &p1, Status::Down).await;
    c.stop().await;
    // Nothing new, nothing told again by a notifier that finds everything told.
    let count = nova.told_all().len();
    let d = notifier(&nb, static_target(&nova), fast());
    set_status(&nb, &p1, Status::Active).await;
    p1_want.push("vif-plugged completed");
    told(&nova, &p1, &p1_want).await;
    assert_eq!(nova.told_all().len(), count + 1);
    d.stop().await;
    nova.assert_schema_held();
    s.stop().await;
}

#[tokio::test]
async fn an_event_for_an_unknown_server_is_dropped_not_retried() {
    let s = start().await;
    let nb = s.nb.clone();
    let nova = Nova::start().await;
    nova.state.unknown.lock().unwrap().insert(VM_GONE.into());
    let n = notifier(&nb, static_target(&nova), fast());
    let (net, sub) = private_network(&s).await;
    let known = vm_port(&s, &net, VM1).await;
    let gone = vm_port(&s, &net, VM_GONE).await;
    // Both in one NB transaction: one request, one event of it answered 404 (Nova's 207).
    let tx = nb.tx();
    for id in [&known, &gone] {
        let mut p = Port::from_object(tx.fetch(Kind::Port, id).await.unwrap().object).unwrap();
        p.status = Status::Active;
        tx.put(p.into_object());
    }
    tx.commit().await.unwrap();
    told(&nova, &gone, &["vif-plugged completed (404)"]).await;
    told(&nova, &known, &["vif-plugged completed"]).await;
    assert!(nova.requests().iter().any(|r| r.status == 207 && r.events.len() == 2), "{:?}", nova.requests());
    // Later events still flow; the dropped one is not sent again.
    set_fixed_ip(&s, &known, &sub, "10.0.0.99").await;
    told(&nova, &known, &["vif-plugged completed", "changed completed"]).await;
    recorded(&nb, &gone, Status::Active).await;
    assert_eq!(nova.told(&gone), ["vif-plugged completed (404)"]);
    nova.assert_schema_held();
    n.stop().await;
    s.stop().await;
}

/// A target whose tokens expire: each refusal makes it fetch the next one.
struct Rotating {
    tokens: Vec<&'static str>,
    next: AtomicUsize,
    url: String,
    refused: Mutex<Vec<String>>,
}

#[async_trait]
impl NovaTarget for Rotating {
    async fn endpoint(&self) -> anyhow::Result<(String, Option<String>)> {
        let i = self.next.load(Ordering::SeqCst).min(self.tokens.len() - 1);
        Ok((self.url.clone(), Some(self.tokens[i].to_owned())))
    }

    async fn refused(&self, token: &str) {
        self.refused.lock().unwrap().push(token.to_owned());
        self.next.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_refused_token_is_renewed() {
    let s = start().await;
    let nb = s.nb.clone();
    let nova = Nova::start().await;
    *nova.state.token.lock().unwrap() = "fresh".into();
    let target = Arc::new(Rotating {
        tokens: vec!["expired", "fresh"],
        next: AtomicUsize::new(0),
        url: nova.url(),
        refused: Mutex::default(),
    });
    let n = notifier(&nb, target.clone(), fast());
    let (net, _) = private_network(&s).await;
    let p = vm_port(&s, &net, VM1).await;
    set_status(&nb, &p, Status::Active).await;
    told(&nova, &p, &["vif-plugged completed"]).await;
    assert_eq!(*target.refused.lock().unwrap(), ["expired"]);
    let statuses: Vec<u16> = nova.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 200]);
    n.stop().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_notifiers_one_tells_and_the_other_takes_over() {
    let s = start().await;
    let nb = s.nb.clone();
    let nova = Nova::start().await;
    let a = notifier(&nb, static_target(&nova), fast());
    let deadline = Instant::now() + PATIENCE;
    while nb.store().get(nova::LEADER_KEY).await.unwrap().is_none() {
        assert!(Instant::now() < deadline, "the first notifier never took the lock");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let b = notifier(&nb, static_target(&nova), fast());
    let (net, sub) = private_network(&s).await;
    let p = vm_port(&s, &net, VM1).await;
    set_status(&nb, &p, Status::Active).await;
    told(&nova, &p, &["vif-plugged completed"]).await;
    set_fixed_ip(&s, &p, &sub, "10.0.0.60").await;
    told(&nova, &p, &["vif-plugged completed", "changed completed"]).await;
    recorded(&nb, &p, Status::Active).await;
    // The first lets go on stopping; the second takes over.
    let holder = nb.store().get(nova::LEADER_KEY).await.unwrap().expect("a notifier leads");
    a.stop().await;
    set_status(&nb, &p, Status::Down).await;
    told(&nova, &p, &["vif-plugged completed", "changed completed", "vif-unplugged completed"]).await;
    let now = nb.store().get(nova::LEADER_KEY).await.unwrap().expect("a notifier leads");
    assert_ne!(holder.lease, now.lease, "the second notifier holds the lock now");
    b.stop().await;
    assert!(nb.store().get(nova::LEADER_KEY).await.unwrap().is_none(), "let go on stopping");
    nova.assert_schema_held();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelivered_events_survive_a_crash_and_a_durable_store_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nb.redb");
    let nova = Nova::start().await;
    nova.answer(503);
    let open = || Nb::new(Arc::new(tern_store::LocalStore::open_redb(&path).expect("open the redb store")));
    let (p, flapped) = {
        let nb = open();
        let s = common::start_with(nb.clone(), None).await;
        let a = notifier(&nb, static_target(&nova), fast());
        let (net, _) = private_network(&s).await;
        let p = vm_port(&s, &net, VM1).await;
        let flapped = vm_port(&s, &net, VM2).await;
        set_status(&nb, &p, Status::Active).await;
        wait_for("a refused request carrying the event", || {
            nova.requests().iter().any(|r| r.status == 503 && !r.events.is_empty())
        })
        .await;
        // The process dies (nothing lets go of anything), and so does the store.
        a.kill().await;
        // While no notifier runs: a flap of another port.
        for status in [Status::Active, Status::Down, Status::Active] {
            set_status(&nb, &flapped, status).await;
        }
        s.stop().await;
        (p, flapped)
    };
    nova.answer(200);
    let nb = open();
    let b = notifier(&nb, static_target(&nova), fast());
    told(&nova, &p, &["vif-plugged completed"]).await;
    let want = ["vif-plugged completed", "vif-unplugged completed", "vif-plugged completed"];
    told(&nova, &flapped, &want).await;
    recorded(&nb, &p, Status::Active).await;
    b.stop().await;
    nova.assert_schema_held();
}
