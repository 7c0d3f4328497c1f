//! `tern server` on a real 3-member etcd cluster loses the etcd leader (SIGKILL) while two clients
//! create networks and ports through the Neutron API: no request fails, before, during or after
//! the election, and the server goes on answering with the leader gone. The server is given the
//! leader as its first endpoint, so what dies is the member it uses.

#[path = "common/server.rs"]
mod server;

use serde_json::{json, Value};
use server::Server;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tern_store::testing::EtcdCluster;

/// Generous bound on anything the test waits for.
const PATIENCE: Duration = Duration::from_secs(60);
/// Successful requests wanted before the kill, and after the new leader is elected.
const BEFORE: usize = 30;
const AFTER: usize = 60;

#[derive(Default)]
struct Tally {
    succeeded: usize,
    failures: Vec<String>,
}

/// Creates a network and a port on it, again and again, until told to stop.
async fn client(api: String, tally: Arc<Mutex<Tally>>, stop: Arc<AtomicBool>) {
    let http = reqwest::Client::builder().timeout(PATIENCE).build().unwrap();
    while !stop.load(Ordering::SeqCst) {
        let step = |what: &'static str, url: String, body: Value| {
            let http = http.clone();
            async move {
                let answer = http.post(&url).json(&body).send().await;
                match answer {
                    Ok(r) if r.status().is_success() => Ok(r.json::<Value>().await.unwrap_or(Value::Null)),
                    Ok(r) => Err(format!("{what}: {} {}", r.status(), r.text().await.unwrap_or_default())),
                    Err(e) => Err(format!("{what}: {e}")),
                }
            }
        };
        let network =
            step("network create", format!("{api}/v2.0/networks"), json!({"network": {"name": "n"}})).await;
        let result = match network {
            Ok(n) => {
                let body = json!({"port": {"network_id": n["network"]["id"]}});
                step("port create", format!("{api}/v2.0/ports"), body).await.map(|_| ())
            }
            Err(e) => Err(e),
        };
        let mut tally = tally.lock().unwrap();
        match result {
            Ok(()) => tally.succeeded += 1,
            Err(e) => tally.failures.push(e),
        }
    }
}

async fn wait_for_successes(tally: &Mutex<Tally>, n: usize, what: &str) {
    let deadline = Instant::now() + PATIENCE;
    while tally.lock().unwrap().succeeded < n {
        assert!(Instant::now() < deadline, "{what}: fewer than {n} requests succeeded within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_etcd_leader_fails_no_api_request() {
    let mut cluster =
        tokio::task::spawn_blocking(|| EtcdCluster::start(3)).await.unwrap().expect("start etcd");
    let (leader, leader_id) = cluster.agreed_leader(&[0, 1, 2], None, PATIENCE).await.unwrap();
    let mut endpoints = vec![cluster.endpoint(leader)];
    endpoints.extend((0..3).filter(|&i| i != leader).map(|i| cluster.endpoint(i)));
    let dsn = format!("etcd://{}", endpoints.join(","));
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dsn, None, dir.path());

    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> =
        (0..2).map(|_| tokio::spawn(client(server.endpoint.clone(), tally.clone(), stop.clone()))).collect();
    wait_for_successes(&tally, BEFORE, "before the kill").await;

    cluster.kill(leader);
    let killed_at = Instant::now();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let (new_leader, _) = cluster.agreed_leader(&survivors, Some(leader_id), PATIENCE).await.unwrap();
    let elected_after = killed_at.elapsed();
    let at_election = tally.lock().unwrap().succeeded;
    wait_for_successes(&tally, at_election + AFTER, "after the election").await;

    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let tally = tally.lock().unwrap();
    eprintln!(
        "etcd leader {} killed; {} elected after {elected_after:?}; {} network+port pairs created, {} failed",
        cluster.name(leader),
        cluster.name(new_leader),
        tally.succeeded,
        tally.failures.len()
    );
    assert!(
        tally.failures.is_empty(),
        "{} request(s) failed, the first: {:?}\n--- tern server output ---\n{}",
        tally.failures.len(),
        tally.failures.first(),
        server.log_text()
    );
}
