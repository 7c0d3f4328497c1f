//! A live migration in the lab (real OVS, root) with Nova told about the VM's port: the
//! destination's VIF plug reaches Nova as `network-vif-plugged` before the switchover (and so
//! before the binding update), which is what Nova's live migration waits for before it starts.
//!
//! The lab runs with `--nb etcd`, so this test reaches the lab's NB and runs the notifier
//! (`tern_api::nova::run`) on it itself, toward a Nova stand-in on loopback; the lab's own
//! processes are unchanged. Like the other lab tests: its own prefix (`tern-e2n`), one lab at a
//! time, `tern lab down` by a guard.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use tern_api::nova::{self, NovaOptions, StaticTarget};
use tern_model::Object;
use tern_store::nb::{Nb, NbEvent};

const PREFIX: &str = "tern-e2n";

static SERIAL: Mutex<()> = Mutex::new(());

#[path = "common/lab_session.rs"]
mod lab_session;
use lab_session::PATIENCE;

/// The VM's server UUID (the lab names its VMs; Nova's ids are UUIDs).
const SERVER: &str = "6c0f2a4e-8b1d-4c3e-9f5a-7d2b1e0c9a8f";

/// Every event the stand-in took, with when it arrived (ms since the Unix epoch).
type Log = Arc<Mutex<Vec<(f64, Value)>>>;

fn now_ms() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64() * 1000.0
}

/// Nova's os-server-external-events on loopback: takes every event (200 each), logs it.
async fn nova_stand_in(log: Log) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/v2.1/os-server-external-events",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let log = log.clone();
            async move {
                let at = now_ms();
                let mut out = Vec::new();
                for e in body["events"].as_array().cloned().unwrap_or_default() {
                    let keys: Vec<&String> = e.as_object().map(|o| o.keys().collect()).unwrap_or_default();
                    assert!(
                        keys.iter().all(|k| ["name", "server_uuid", "tag", "status"].contains(&k.as_str())),
                        "{e}"
                    );
                    log.lock().unwrap().push((at, e.clone()));
                    let mut answered = e;
                    answered["code"] = json!(200);
                    out.push(answered);
                }
                axum::Json(json!({ "events": out }))
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/v2.1")
}

/// The events for `port` from the `from`-th on: (arrival ms, name).
fn events_of(log: &Log, port: &str, from: usize) -> Vec<(f64, String)> {
    let log = log.lock().unwrap();
    log[from.min(log.len())..]
        .iter()
        .filter(|(_, e)| e["tag"] == port)
        .map(|(at, e)| (*at, format!("{} {}", e["name"].as_str().unwrap(), e["status"].as_str().unwrap())))
        .collect()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_destination_plug_reaches_nova_before_the_switchover() {
    let s = lab_session::session(&SERIAL, PREFIX, "nova");
    s.ok(&["up", "--hypervisors", "2", "--nb", "etcd", "--prefix", PREFIX]);
    s.vm("a", 1, "red");
    s.vm("c", 2, "red");
    let st = s.status();
    let vm = st["vms"].as_array().unwrap().iter().find(|v| v["name"] == "a").unwrap().clone();
    let port = vm["iface_id"].as_str().unwrap().to_owned();
    let dsn = st["control"]["nb"].as_str().unwrap().to_owned();
    let api = st["control"]["api"].as_str().unwrap().to_owned();
    assert!(dsn.starts_with("etcd://"), "{dsn}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let log = Log::default();
    let url = rt.block_on(nova_stand_in(log.clone()));
    let nb = rt.block_on(async { Nb::new(tern_store::open(&dsn).await.expect("the lab's NB")) });
    // When the NB showed each state of the port's migration record (ms since the epoch).
    let seen: Arc<Mutex<Vec<(f64, String)>>> = Arc::default();
    let mut watch = rt.block_on(nb.watch(0)).unwrap();
    let (seen2, port2) = (seen.clone(), port.clone());
    rt.spawn(async move {
        while let Some(Ok(NbEvent::Put { object, .. })) = watch.next().await {
            if let Object::Migration(m) = *object {
                if m.port_id == port2 {
                    seen2.lock().unwrap().push((now_ms(), m.state.as_str().to_owned()));
                }
            }
        }
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let notifier = rt.spawn(nova::run(
        nb,
        Arc::new(StaticTarget { url, token: None }),
        NovaOptions::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    // The port becomes a server's (Nova's UUID): Nova hears it is plugged (it is ACTIVE).
    rt.block_on(async {
        let r = reqwest::Client::new()
            .put(format!("{api}/v2.0/ports/{port}"))
            .json(&json!({"port": {"device_id": SERVER}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
    });
    wait_for("the port's first vif-plugged", || {
        events_of(&log, &port, 0).iter().any(|(_, e)| e == "network-vif-plugged completed")
    });
    let before = log.lock().unwrap().len();
    // Past the notifier's pacing after that request, so the figure below is the notifier's
    // latency (an event within `batch_interval` of the previous request waits for it).
    let last = log.lock().unwrap().last().map_or(0.0, |(at, _)| *at);
    let pacing = NovaOptions::default().batch_interval.as_secs_f64() * 1000.0;
    wait_for("the batch interval after the last request", || now_ms() > last + pacing);

    let out = s.ok(&["migrate", "a", "--to", "hv2", "--trigger", "api", "--json"]);
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let t = &report["timeline"];
    let t0 = t["t0_ms"].as_f64().unwrap();
    let at = |v: &Value| v.as_f64().map(|ms| t0 + ms);
    let switch = at(&t["switch_started_ms"]).unwrap();
    let activate = at(&t["binding_activate_ms"][0]).unwrap();
    let preplugged = at(&t["preplugged_ms"]).unwrap();
    let dest_plugged = at(&t["controller"]["dest_plugged_ms"]);
    let events = events_of(&log, &port, before);
    let record_seen: Vec<(String, String)> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(at, state)| (format!("+{:.0} ms", at - preplugged), state.clone()))
        .collect();
    eprintln!("migration record seen in the NB: {record_seen:?}");
    let (told_at, first) = events.first().cloned().unwrap_or_else(|| panic!("Nova heard nothing: {report}"));
    assert_eq!(first, "network-vif-plugged completed", "{events:?}");
    eprintln!(
        "pre-plug +{:.0} ms -> dest_plugged record {} -> Nova told at +{:.0} ms; switchover at +{:.0} ms, \
         binding activation at +{:.0} ms (ms after the pre-plug); then {:?}",
        0.0,
        dest_plugged.map_or("-".into(), |d| format!("+{:.0} ms", d - preplugged)),
        told_at - preplugged,
        switch - preplugged,
        activate - preplugged,
        events.iter().skip(1).map(|(a, e)| (format!("+{:.0} ms", a - preplugged), e)).collect::<Vec<_>>()
    );
    assert!(told_at < switch, "Nova was told at {told_at} ms, after the switchover at {switch} ms");
    assert!(told_at < activate, "Nova was told after the binding update");
    if let Some(d) = dest_plugged {
        // The lab's clocks are one machine's: the record comes first.
        assert!(told_at + 1.0 >= d, "told before the destination was plugged? {told_at} < {d}");
    }
    // The VM lives on where it went.
    assert_eq!(report["to"], "hv2");

    let _ = stop.send(());
    rt.block_on(async { tokio::time::timeout(PATIENCE, notifier).await.unwrap().unwrap().unwrap() });
    s.ok(&["down"]);
}
