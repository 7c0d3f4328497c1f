//! Port bindings (binding-extended, as Nova uses them for live migration) and agents.

mod common;

use common::*;
use serde_json::{json, Value};

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

fn statuses(v: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = v["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["host"].as_str().unwrap().to_string(), b["status"].as_str().unwrap().to_string()))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn live_migration_binding_flow() {
    let s = start().await;
    let n = s.network("n").await;
    s.subnet(&n, "10.0.0.0/24").await;
    let p = s.port(&n, json!({"device_owner": "compute:nova", "binding:host_id": "src"})).await;
    let base = format!("/v2.0/ports/{}/bindings", id(&p));

    // The port's own binding is listed as the active one.
    let (st, v) = s.get(&base).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(statuses(&v), [("src".into(), "ACTIVE".into())]);
    assert_eq!(v["bindings"][0]["vif_type"], "ovs");

    // Nova creates the destination binding: inactive.
    let (st, v) = s
        .post(
            &base,
            json!({"binding": {"host": "dst", "vnic_type": "normal", "profile": {"migrating_to": "dst"}}}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["binding"]["host"], "dst");
    assert_eq!(v["binding"]["status"], "INACTIVE");
    assert_eq!(v["binding"]["profile"], json!({"migrating_to": "dst"}));
    let got = s.post(&base, json!({"binding": {"host": "dst"}})).await;
    assert_eq!((got.0, err_type(&got.1)), (409, "PortBindingAlreadyExists"));
    let (_, v) = s.get(&base).await;
    assert_eq!(statuses(&v), [("dst".into(), "INACTIVE".into()), ("src".into(), "ACTIVE".into())]);
    let (_, v) = s.get(&format!("{base}?status=INACTIVE")).await;
    assert_eq!(v["bindings"].as_array().unwrap().len(), 1);
    let (st, v) = s.get(&format!("{base}/dst")).await;
    assert_eq!((st, v["binding"]["status"].as_str()), (200, Some("INACTIVE")));

    // Activation moves the port to dst and flips both statuses.
    let (st, v) = s.put(&format!("{base}/dst/activate"), json!({})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["binding"]["host"], "dst");
    assert_eq!(v["binding"]["status"], "ACTIVE");
    let (_, port) = s.get(&format!("/v2.0/ports/{}", id(&p))).await;
    assert_eq!(port["port"]["binding:host_id"], "dst");
    assert_eq!(port["port"]["binding:profile"], json!({"migrating_to": "dst"}));
    assert_eq!(port["port"]["binding:vif_type"], "ovs");
    let (_, v) = s.get(&base).await;
    assert_eq!(statuses(&v), [("dst".into(), "ACTIVE".into()), ("src".into(), "INACTIVE".into())]);
    // The stored binding objects agree: exactly one ACTIVE.
    let (objects, _) = s.nb.list(tern_model::Kind::PortBinding).await.unwrap();
    let active: Vec<String> = objects
        .iter()
        .filter_map(|o| match &o.object {
            tern_model::Object::PortBinding(b) if b.status == tern_model::BindingStatus::Active => {
                Some(b.host.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(active, ["dst"]);
    let got = s.put(&format!("{base}/dst/activate"), json!({})).await;
    assert_eq!((got.0, err_type(&got.1)), (409, "PortBindingAlreadyActive"));

    // Nova deletes the source binding; the active one cannot be deleted.
    assert_eq!(s.delete(&format!("{base}/src")).await.0, 204);
    let (_, v) = s.get(&base).await;
    assert_eq!(statuses(&v), [("dst".into(), "ACTIVE".into())]);
    assert_eq!(s.delete(&format!("{base}/dst")).await.0, 409);
    let got = s.delete(&format!("{base}/src")).await;
    assert_eq!((got.0, err_type(&got.1)), (404, "PortBindingNotFound"));
    let got = s.put(&format!("{base}/nowhere/activate"), json!({})).await;
    assert_eq!((got.0, err_type(&got.1)), (404, "PortBindingNotFound"));
    let got = s.get("/v2.0/ports/nope/bindings").await;
    assert_eq!((got.0, err_type(&got.1)), (404, "PortNotFound"));

    // Deleting the port deletes its binding objects.
    assert_eq!(s.delete(&format!("/v2.0/ports/{}", id(&p))).await.0, 204);
    assert!(s.nb.list(tern_model::Kind::PortBinding).await.unwrap().0.is_empty());
}

#[tokio::test]
async fn first_binding_of_an_unbound_port_is_active() {
    let s = start().await;
    let n = s.network("n").await;
    let p = s.port(&n, json!({})).await;
    let base = format!("/v2.0/ports/{}/bindings", id(&p));
    let (_, v) = s.get(&base).await;
    assert_eq!(v["bindings"], json!([]));
    assert_error(&s.post(&base, json!({"binding": {}})).await, 400, &["host"]);
    assert_error(
        &s.post(&base, json!({"binding": {"host": "h", "status": "ACTIVE"}})).await,
        400,
        &["status"],
    );
    let (st, v) = s.post(&base, json!({"binding": {"host": "h1"}})).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["binding"]["status"], "ACTIVE");
    let (_, port) = s.get(&format!("/v2.0/ports/{}", id(&p))).await;
    assert_eq!(port["port"]["binding:host_id"], "h1");
    // Moving the host through the port API keeps the binding objects in step.
    s.post(&base, json!({"binding": {"host": "h2"}})).await;
    let (st, _) = s.put(&format!("/v2.0/ports/{}", id(&p)), json!({"port": {"binding:host_id": "h2"}})).await;
    assert_eq!(st, 200);
    let (_, v) = s.get(&base).await;
    assert_eq!(statuses(&v), [("h1".into(), "INACTIVE".into()), ("h2".into(), "ACTIVE".into())]);
}

#[tokio::test]
async fn agents_are_chassis() {
    let s = start().await;
    let (_, v) = s.get("/v2.0/agents").await;
    assert_eq!(v["agents"], json!([]));
    let mut c = tern_model::Chassis::new("compute-1", "192.0.2.10".parse().unwrap());
    c.version = "0.1.0".into();
    s.nb.put(tern_model::Object::Chassis(c)).await.unwrap();
    // Registered but no heartbeat yet: not alive.
    let (_, v) = s.get("/v2.0/agents").await;
    assert_eq!(v["agents"][0]["alive"], false);
    // Its controller's heartbeat makes it alive.
    let store = s.nb.store().clone();
    let lease = store.grant_lease(600).await.unwrap();
    let hb = serde_json::json!({"chassis": "compute-1", "heartbeat_at": "2026-11-24T00:00:00Z",
        "heartbeat_at_ms": 0, "report_interval_ms": 1000, "down_time_ms": 3000});
    store
        .put(&tern_store::liveness::heartbeat_key("compute-1"), hb.to_string().into_bytes(), Some(lease))
        .await
        .unwrap();
    let (st, v) = s.get("/v2.0/agents").await;
    assert_eq!(st, 200);
    let a = &v["agents"][0];
    assert_eq!(a["id"], "compute-1");
    assert_eq!(a["host"], "compute-1");
    assert_eq!(a["agent_type"], "tern controller");
    assert_eq!(a["binary"], "tern-controller");
    assert_eq!(a["alive"], true);
    assert_eq!(a["admin_state_up"], true);
    assert_eq!(a["topic"], "N/A");
    assert_eq!(a["configurations"]["tunnel_ip"], "192.0.2.10");
    let (_, v) = s.get("/v2.0/agents?host=compute-1&fields=alive").await;
    assert_eq!(v["agents"], json!([{"alive": true}]));
    let (st, v) = s.get("/v2.0/agents/compute-1").await;
    assert_eq!((st, v["agent"]["host"].as_str()), (200, Some("compute-1")));
    let got = s.get("/v2.0/agents/nope").await;
    assert_eq!((got.0, err_type(&got.1)), (404, "AgentNotFound"));
    assert_eq!(s.delete("/v2.0/agents/compute-1").await.0, 405);
}

async fn migration(s: &Server, port: &str) -> Option<tern_model::Migration> {
    let got = s.nb.get(tern_model::Kind::Migration, port).await.unwrap()?;
    match got.object {
        tern_model::Object::Migration(m) => Some(m),
        _ => None,
    }
}

#[tokio::test]
async fn a_destination_binding_announces_the_migration_and_its_deletion_withdraws_it() {
    use tern_model::MigrationState;
    let s = start().await;
    let n = s.network("n").await;
    s.subnet(&n, "10.0.0.0/24").await;
    let p = s.port(&n, json!({"device_owner": "compute:nova", "binding:host_id": "src"})).await;
    let pid = id(&p).to_string();
    let base = format!("/v2.0/ports/{pid}/bindings");
    assert!(migration(&s, &pid).await.is_none());

    let (st, v) = s.post(&base, json!({"binding": {"host": "dst"}})).await;
    assert_eq!(st, 201, "{v}");
    let m = migration(&s, &pid).await.expect("announced");
    assert_eq!(
        (m.source.as_str(), m.destination.as_str(), m.state, m.dual_delivery),
        ("src", "dst", MigrationState::Announced, true)
    );
    assert!(m.epoch > 0 && m.timestamps.started_at_ns.is_some(), "{m:?}");

    // Nova's rollback: the destination binding goes, and the announcement with it.
    assert_eq!(s.delete(&format!("{base}/dst")).await.0, 204);
    assert!(migration(&s, &pid).await.is_none());

    // Again, without dual delivery: the profile says so; the epoch moved on.
    let body = json!({"binding": {"host": "dst", "profile": {"tern:dual_delivery": false}}});
    assert_eq!(s.post(&base, body).await.0, 201);
    let again = migration(&s, &pid).await.expect("announced again");
    assert!(!again.dual_delivery);
    assert!(again.epoch > m.epoch, "{} after {}", again.epoch, m.epoch);

    // Once activated (here: by the source's controller), deleting the binding leaves the record.
    let mut activated = again.clone();
    activated.state = MigrationState::Activated;
    activated.activated_by = Some(tern_model::ActivationSource::SourceUnplug);
    s.nb.put(tern_model::Object::Migration(activated)).await.unwrap();
    assert_eq!(s.delete(&format!("{base}/dst")).await.0, 204);
    assert_eq!(migration(&s, &pid).await.map(|m| m.state), Some(MigrationState::Activated));

    // An unbound port's first binding is its active one: no migration.
    let q = s.port(&n, json!({})).await;
    let qid = id(&q).to_string();
    assert_eq!(
        s.post(&format!("/v2.0/ports/{qid}/bindings"), json!({"binding": {"host": "h"}})).await.0,
        201
    );
    assert!(migration(&s, &qid).await.is_none());
}

#[tokio::test]
async fn migrations_in_flight_are_listed() {
    let s = start().await;
    let n = s.network("n").await;
    s.subnet(&n, "10.0.0.0/24").await;
    let p = s.port(&n, json!({"binding:host_id": "src"})).await;
    let pid = id(&p).to_string();
    let (st, v) = s.get("/v2.0/migrations").await;
    assert_eq!((st, v["migrations"].clone()), (200, json!([])));
    assert_eq!(
        s.post(&format!("/v2.0/ports/{pid}/bindings"), json!({"binding": {"host": "dst"}})).await.0,
        201
    );
    let (_, v) = s.get("/v2.0/migrations").await;
    assert_eq!(v["migrations"][0]["port_id"], pid);
    assert_eq!(v["migrations"][0]["state"], "announced");
    let (st, v) = s.get(&format!("/v2.0/migrations/{pid}?fields=destination")).await;
    assert_eq!((st, v["migration"].clone()), (200, json!({"destination": "dst"})));
    let got = s.get("/v2.0/migrations/nope").await;
    assert_eq!(got.0, 404);
}
