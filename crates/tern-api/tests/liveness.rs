//! Chassis liveness through the API: agents' `alive` follows the heartbeat key, binding a port to a
//! registered chassis that is not alive is refused (409 naming it), ports on such a chassis read
//! DOWN. Heartbeats are simulated by writing the heartbeat key under a lease (or with `Heartbeater`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tern_model::{Chassis, Kind, Object, Status};
use tern_store::liveness::{heartbeat_key, Heartbeat, Heartbeater};
use tern_store::nb::Nb;
use tern_store::LeaseId;

const BEAT_AT: &str = "2030-05-06T07:08:09Z";

async fn register(nb: &Nb, name: &str, ip: &str) {
    let mut c = Chassis::new(name, ip.parse().unwrap());
    c.registered_at = Some("2024-01-01T00:00:00Z".into());
    nb.put(Object::Chassis(c)).await.unwrap();
}

/// Writes `chassis`' heartbeat under a fresh lease (long enough not to expire during the test);
/// revoking the lease kills the chassis at once.
async fn beat(nb: &Nb, chassis: &str) -> LeaseId {
    let store = nb.store();
    let lease = store.grant_lease(600).await.unwrap();
    let hb = Heartbeat {
        chassis: chassis.into(),
        heartbeat_at: BEAT_AT.into(),
        heartbeat_at_ms: 1_904_540_889_000,
        report_interval_ms: 1000,
        down_time_ms: 3000,
    };
    store.put(&heartbeat_key(chassis), serde_json::to_vec(&hb).unwrap(), Some(lease)).await.unwrap();
    lease
}

async fn kill(nb: &Nb, lease: LeaseId) {
    nb.store().revoke_lease(lease).await.unwrap();
}

/// Polls (bounded) until agent `id`'s `alive` is `want`.
async fn wait_alive(s: &Server, id: &str, want: bool) -> Value {
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let (st, v) = s.get(&format!("/v2.0/agents/{id}")).await;
            assert_eq!(st, 200, "{v}");
            if v["agent"]["alive"] == want {
                return v["agent"].clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("agent {id} never became alive={want}"))
}

fn agent_ids(v: &Value) -> Vec<String> {
    ids(v, "agents")
}

fn is_neutron_time(t: &str) -> bool {
    // "YYYY-MM-DD HH:MM:SS"
    let b = t.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
}

#[tokio::test]
async fn agents_alive_follows_the_heartbeat() {
    let s = start().await;
    register(&s.nb, "hv1", "192.0.2.1").await;
    register(&s.nb, "hv2", "192.0.2.2").await;
    register(&s.nb, "hv3", "192.0.2.3").await;
    let lease = beat(&s.nb, "hv1").await;

    let (st, v) = s.get("/v2.0/agents").await;
    assert_eq!(st, 200, "{v}");
    let agents = v["agents"].as_array().unwrap();
    let by_id = |id: &str| agents.iter().find(|a| a["id"] == id).unwrap().clone();
    assert_eq!(by_id("hv1")["alive"], true);
    assert_eq!(by_id("hv1")["heartbeat_timestamp"], "2030-05-06 07:08:09");
    assert_eq!(by_id("hv1")["configurations"]["down_time_ms"], 3000);
    // No heartbeat: not alive, and the registration time stands in for the last heartbeat.
    assert_eq!(by_id("hv2")["alive"], false);
    assert_eq!(by_id("hv2")["heartbeat_timestamp"], "2024-01-01 00:00:00");
    assert_eq!(by_id("hv2")["created_at"], "2024-01-01 00:00:00");

    // The generic filter works on `alive`.
    let (_, v) = s.get("/v2.0/agents?alive=true").await;
    assert_eq!(agent_ids(&v), ["hv1"]);
    let (_, v) = s.get("/v2.0/agents?alive=false").await;
    assert_eq!(agent_ids(&v), ["hv2", "hv3"]);
    let (_, v) = s.get("/v2.0/agents?alive=False&fields=id&fields=alive").await;
    assert_eq!(v["agents"], json!([{"id": "hv2", "alive": false}, {"id": "hv3", "alive": false}]));

    // Show agrees; a revoked lease (the heartbeat key goes with it) is seen at once.
    let (_, v) = s.get("/v2.0/agents/hv1").await;
    assert_eq!(v["agent"]["alive"], true);
    kill(&s.nb, lease).await;
    let (_, v) = s.get("/v2.0/agents/hv1").await;
    assert_eq!(v["agent"]["alive"], false);
    assert_eq!(v["agent"]["heartbeat_timestamp"], "2024-01-01 00:00:00");

    // A controller's Heartbeater makes its chassis alive, with a real timestamp in Neutron's form.
    let hb = Heartbeater::start(
        Arc::clone(s.nb.store()),
        "hv3".into(),
        Duration::from_millis(100),
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    let a = wait_alive(&s, "hv3", true).await;
    let t = a["heartbeat_timestamp"].as_str().unwrap();
    assert!(is_neutron_time(t), "{t}");
    assert_eq!(a["configurations"]["report_interval_ms"], 100);
    // Stopped, it is seen dead once its lease (1 s) runs out.
    hb.stop();
    wait_alive(&s, "hv3", false).await;
    let (_, v) = s.get("/v2.0/agents?alive=true").await;
    assert_eq!(agent_ids(&v), Vec::<String>::new());
}

#[tokio::test]
async fn binding_to_a_dead_chassis_is_refused() {
    let s = start().await;
    register(&s.nb, "hv1", "192.0.2.1").await;
    register(&s.nb, "hv2", "192.0.2.2").await;
    let mut hv3 = Chassis::new("hv3", "192.0.2.3".parse().unwrap());
    hv3.hostname = "compute-3.example".into();
    s.nb.put(Object::Chassis(hv3)).await.unwrap();
    beat(&s.nb, "hv1").await;
    let n = s.network("n").await;
    s.subnet(&n, "10.0.0.0/24").await;

    // Create.
    let got = s.post("/v2.0/ports", json!({"port": {"network_id": n["id"], "binding:host_id": "hv2"}})).await;
    assert_error(&got, 409, &["\"hv2\"", "not alive"]);
    assert_eq!(err_type(&got.1), "PortBindingError");
    assert!(s.nb.list(Kind::Port).await.unwrap().0.is_empty(), "nothing written");
    // A dead chassis named by its hostname is refused too (and named by its id).
    let got = s
        .post("/v2.0/ports", json!({"port": {"network_id": n["id"], "binding:host_id": "compute-3.example"}}))
        .await;
    assert_error(&got, 409, &["\"hv3\"", "not alive"]);
    let p = s.port(&n, json!({"binding:host_id": "hv1"})).await;
    let pid = p["id"].as_str().unwrap().to_string();
    // A host that is no registered chassis is allowed (Nova may bind before the agent exists).
    let unknown = s.port(&n, json!({"binding:host_id": "not-a-chassis"})).await;
    assert_eq!(unknown["binding:host_id"], "not-a-chassis");

    // Update.
    let got = s.put(&format!("/v2.0/ports/{pid}"), json!({"port": {"binding:host_id": "hv2"}})).await;
    assert_error(&got, 409, &["\"hv2\"", "not alive", &pid]);
    let (_, v) = s.get(&format!("/v2.0/ports/{pid}")).await;
    assert_eq!(v["port"]["binding:host_id"], "hv1");

    // Binding create (Nova's destination binding) and activate.
    let base = format!("/v2.0/ports/{pid}/bindings");
    let got = s.post(&base, json!({"binding": {"host": "hv2"}})).await;
    assert_error(&got, 409, &["\"hv2\"", "not alive", &pid]);
    assert!(s.nb.get(Kind::PortBinding, &format!("{pid}@hv2")).await.unwrap().is_none());
    let lease = beat(&s.nb, "hv2").await;
    let (st, v) = s.post(&base, json!({"binding": {"host": "hv2"}})).await;
    assert_eq!((st, v["binding"]["status"].as_str()), (201, Some("INACTIVE")), "{v}");
    kill(&s.nb, lease).await;
    let got = s.put(&format!("{base}/hv2/activate"), json!({})).await;
    assert_error(&got, 409, &["\"hv2\"", "not alive", &pid]);
    let (_, v) = s.get(&format!("/v2.0/ports/{pid}")).await;
    assert_eq!(v["port"]["binding:host_id"], "hv1");

    // Alive again: activation and a port update to it go through.
    let lease = beat(&s.nb, "hv2").await;
    let (st, v) = s.put(&format!("{base}/hv2/activate"), json!({})).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = s.put(&format!("/v2.0/ports/{pid}"), json!({"port": {"binding:host_id": "hv1"}})).await;
    assert_eq!((st, v["port"]["binding:host_id"].as_str()), (200, Some("hv1")), "{v}");
    let (st, _) = s.put(&format!("/v2.0/ports/{pid}"), json!({"port": {"binding:host_id": "hv2"}})).await;
    assert_eq!(st, 200);

    // Dead again: a port already there can still be updated (host unchanged) and unbound.
    kill(&s.nb, lease).await;
    let (st, v) = s.put(&format!("/v2.0/ports/{pid}"), json!({"port": {"name": "renamed"}})).await;
    assert_eq!((st, v["port"]["status"].as_str()), (200, Some("DOWN")), "{v}");
    let (st, _) = s.put(&format!("/v2.0/ports/{pid}"), json!({"port": {"binding:host_id": ""}})).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn ports_on_a_dead_chassis_read_down() {
    let s = start().await;
    register(&s.nb, "hv1", "192.0.2.1").await;
    let lease = beat(&s.nb, "hv1").await;
    let n = s.network("n").await;
    s.subnet(&n, "10.0.0.0/24").await;
    let on_hv1 = s.port(&n, json!({"binding:host_id": "hv1"})).await;
    let elsewhere = s.port(&n, json!({"binding:host_id": "not-a-chassis"})).await;
    let unbound = s.port(&n, json!({})).await;
    // The controllers would have set these ACTIVE.
    for p in [&on_hv1, &elsewhere, &unbound] {
        let stored = s.nb.fetch(Kind::Port, p["id"].as_str().unwrap()).await.unwrap();
        let Object::Port(mut port) = stored.object else { panic!("not a port") };
        port.status = Status::Active;
        s.nb.put(Object::Port(port)).await.unwrap();
    }
    let path = format!("/v2.0/ports/{}", on_hv1["id"].as_str().unwrap());
    let status_of = |v: &Value| v["port"]["status"].as_str().unwrap_or_default().to_string();
    let listed = |v: &Value| ids(v, "ports");
    let mut all = vec![
        on_hv1["id"].as_str().unwrap().to_string(),
        elsewhere["id"].as_str().unwrap().to_string(),
        unbound["id"].as_str().unwrap().to_string(),
    ];
    all.sort();

    let (_, v) = s.get(&path).await;
    assert_eq!(status_of(&v), "ACTIVE");
    let (_, v) = s.get("/v2.0/ports?status=ACTIVE").await;
    assert_eq!(listed(&v), all);

    kill(&s.nb, lease).await;
    let (_, v) = s.get(&path).await;
    assert_eq!(status_of(&v), "DOWN");
    let (_, v) = s.get(&format!("{path}?fields=status")).await;
    assert_eq!(v["port"], json!({"status": "DOWN"}));
    let (_, v) = s.get("/v2.0/ports?status=DOWN").await;
    assert_eq!(listed(&v), [on_hv1["id"].as_str().unwrap()]);
    let (_, v) = s.get("/v2.0/ports?status=ACTIVE").await;
    assert_eq!(listed(&v).len(), 2);
    assert!(!listed(&v).contains(&on_hv1["id"].as_str().unwrap().to_string()));
    let (_, v) = s.get("/v2.0/ports?status=DOWN&binding:host_id=hv1&fields=id&fields=status").await;
    assert_eq!(v["ports"], json!([{"id": on_hv1["id"], "status": "DOWN"}]));
    // The stored status is untouched: alive again, the port reads ACTIVE again.
    beat(&s.nb, "hv1").await;
    let (_, v) = s.get(&path).await;
    assert_eq!(status_of(&v), "ACTIVE");
}
