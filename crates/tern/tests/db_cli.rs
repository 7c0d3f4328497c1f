//! `tern db` as an operator uses it: separate processes on one redb file, a real etcd (plain and
//! over TLS with a client certificate), kill -9 in the middle of a burst of writes, watches from a
//! revision, and bad input.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tern_store::testing::EtcdServer;

fn tern(dsn: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tern"))
        .arg("db")
        .arg("--nb")
        .arg(dsn)
        .args(args)
        .env_remove("TERN_NB")
        .output()
        .expect("run tern")
}

/// Runs a command that must succeed and returns its stdout.
fn ok(dsn: &str, args: &[&str]) -> String {
    let out = tern(dsn, args);
    assert!(
        out.status.success(),
        "tern db {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail with status 2 and returns its stderr.
fn bad(dsn: &str, args: &[&str]) -> String {
    let out = tern(dsn, args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "tern db {args:?}: expected exit status 2; stdout {} stderr {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr).unwrap()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn put_then_get_in_new_process(dsn: &str) {
    let stored = json(&ok(dsn, &["put", "network", r#"{"name":"n1"}"#]));
    let id = stored["id"].as_str().expect("generated id").to_owned();
    assert!(!id.is_empty());
    assert_eq!(stored["name"], "n1");
    assert_eq!(stored["revision_number"], 1);
    assert!(stored["unique_key"].as_u64().unwrap() > 0, "a network gets a unique key: {stored}");
    let got = json(&ok(dsn, &["get", "network", &id]));
    assert_eq!(got, stored);
    let listed = json(&ok(dsn, &["ls", "network", "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[test]
fn redb_put_then_get_in_a_new_process() {
    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("redb:{}", dir.path().join("nb.redb").display());
    put_then_get_in_new_process(&dsn);
}

#[test]
fn etcd_put_then_get_in_a_new_process() {
    let etcd = EtcdServer::start().expect("start etcd");
    put_then_get_in_new_process(&etcd.dsn());
}

#[test]
fn etcd_over_tls_put_then_get_in_a_new_process() {
    let etcd = EtcdServer::start_tls().expect("start etcd with TLS");
    put_then_get_in_new_process(&etcd.dsn());
    // Without a client certificate etcd refuses the connection, and tern says why.
    let ca_only = format!("etcds://{}?ca={}", etcd.endpoint(), etcd.tls().unwrap().ca.display());
    let out = tern(&ca_only, &["revision"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    // A file that is not there is named.
    let missing = format!("{ca_only}&cert=/nonexistent/client.pem&key=/nonexistent/client-key.pem");
    let out = tern(&missing, &["revision"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("/nonexistent/client.pem"), "{stderr}");
}

#[test]
fn acknowledged_puts_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("redb:{}", dir.path().join("nb.redb").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["db", "--nb", &dsn, "load", "network"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Feed far more than will be written before the kill, from a thread (the pipe may fill).
    let feeder = std::thread::spawn(move || {
        for i in 0..100_000 {
            if writeln!(stdin, r#"{{"name":"burst-{i}"}}"#).is_err() {
                break; // the process is gone
            }
        }
    });
    let mut acked = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while acked.len() < 200 {
        let line = lines.next().expect("tern ended early").unwrap();
        acked.push(json(&line)["id"].as_str().unwrap().to_owned());
    }
    child.kill().unwrap(); // SIGKILL, mid-burst
    child.wait().unwrap();
    // Acknowledgements printed before the kill that we have not read yet count too.
    for line in lines.map_while(Result::ok) {
        acked.push(json(&line)["id"].as_str().unwrap().to_owned());
    }
    feeder.join().unwrap();
    let dump = json(&ok(&dsn, &["dump"]));
    let stored: std::collections::HashSet<&str> =
        dump["objects"]["network"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
    for id in &acked {
        assert!(stored.contains(id.as_str()), "acknowledged network {id} lost after kill -9");
    }
    assert!(stored.len() >= acked.len());
}

fn watch_lines(dsn: &str, from: u64, count: usize) -> Vec<Value> {
    let out = ok(dsn, &["watch", "--from", &from.to_string(), "--count", &count.to_string()]);
    out.lines().map(json).collect()
}

fn watch_from_revision_and_relist(dsn: &str) {
    let a = json(&ok(dsn, &["put", "network", r#"{"name":"a"}"#]));
    let r: u64 = ok(dsn, &["revision"]).trim().parse().unwrap();
    let b = json(&ok(dsn, &["put", "network", r#"{"name":"b"}"#]));
    let a_id = a["id"].as_str().unwrap();
    ok(dsn, &["rm", "network", a_id]);
    let c = json(&ok(dsn, &["put", "network", r#"{"name":"c"}"#]));

    let events = watch_lines(dsn, r, 3);
    let summary: Vec<(String, String)> = events
        .iter()
        .map(|e| (e["action"].as_str().unwrap().to_owned(), e["id"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        summary,
        [
            ("put".to_owned(), b["id"].as_str().unwrap().to_owned()),
            ("delete".to_owned(), a_id.to_owned()),
            ("put".to_owned(), c["id"].as_str().unwrap().to_owned()),
        ]
    );
    let revisions: Vec<u64> = events.iter().map(|e| e["revision"].as_u64().unwrap()).collect();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]) && revisions[0] > r, "{revisions:?} after {r}");
    assert_eq!(events[0]["kind"], "network");
    assert_eq!(events[0]["object"]["name"], "b");
    assert_eq!(events[1]["object"], Value::Null);

    // Compact past R: watching from R must say "relist", not skip.
    let now: u64 = ok(dsn, &["revision"]).trim().parse().unwrap();
    ok(dsn, &["compact", &now.to_string()]);
    let out = tern(dsn, &["watch", "--from", &r.to_string(), "--count", "1"]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let line = json(String::from_utf8_lossy(&out.stdout).trim());
    assert_eq!(line["action"], "relist");
    assert!(String::from_utf8_lossy(&out.stderr).contains("relist"));
}

#[test]
fn redb_watch_from_revision_and_relist() {
    let dir = tempfile::tempdir().unwrap();
    watch_from_revision_and_relist(&format!("redb:{}", dir.path().join("nb.redb").display()));
}

#[test]
fn etcd_watch_from_revision_and_relist() {
    let etcd = EtcdServer::start().expect("start etcd");
    watch_from_revision_and_relist(&etcd.dsn());
}

#[test]
fn live_watch_sees_a_put_from_another_process() {
    let etcd = EtcdServer::start().expect("start etcd");
    let dsn = etcd.dsn();
    let mut watcher = Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["db", "--nb", &dsn, "watch", "--count", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The watch starts "from now"; keep writing until it reports one (no fixed sleep).
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        ok(&dsn, &["put", "network", r#"{"name":"live"}"#]);
        if let Some(status) = watcher.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "watch saw nothing");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success());
    let mut out = String::new();
    std::io::Read::read_to_string(&mut watcher.stdout.take().unwrap(), &mut out).unwrap();
    assert_eq!(json(out.trim())["object"]["name"], "live");
}

#[test]
fn bad_input_is_refused_with_a_clear_message_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("redb:{}", dir.path().join("nb.redb").display());
    let net = json(&ok(&dsn, &["put", "network", r#"{"name":"n"}"#]));
    let net_id = net["id"].as_str().unwrap();
    let before = ok(&dsn, &["dump"]);

    let err = bad(&dsn, &["put", "netwrk", "{}"]);
    assert!(err.contains("netwrk") && err.contains("network"), "{err}");
    let err = bad(&dsn, &["put", "network", r#"{"name": "#]);
    assert!(err.contains("network") && err.contains("line"), "{err}");
    let err = bad(&dsn, &["put", "network", r#"{"name":"x","colour":"blue"}"#]);
    assert!(err.contains("colour"), "{err}");
    let err = bad(&dsn, &["put", "network", r#"{"name":"x","mtu":20}"#]);
    assert!(err.contains("mtu") && err.contains("20"), "{err}");
    let err = bad(
        &dsn,
        &["put", "subnet", &format!(r#"{{"network_id":"{net_id}","cidr":"10.0.0.1/24","ip_version":4}}"#)],
    );
    assert!(err.contains("cidr") && err.contains("10.0.0.1/24"), "{err}");
    let err = bad(&dsn, &["put", "port", r#"{"network_id":"nope"}"#]);
    assert!(err.contains("network_id") && err.contains("nope"), "{err}");
    let err = bad(
        &dsn,
        &["put", "port", &format!(r#"{{"network_id":"{net_id}","mac_address":"01:00:5e:00:00:01"}}"#)],
    );
    assert!(err.contains("mac_address") && err.contains("01:00:5e:00:00:01"), "{err}");
    // Revision conflict: the stored object is at revision_number 1.
    let err =
        bad(&dsn, &["put", "network", &format!(r#"{{"id":"{net_id}","name":"m","revision_number":7}}"#)]);
    assert!(err.contains("revision") && err.contains('7'), "{err}");
    let err = bad(&dsn, &["get", "network", "no-such-id"]);
    assert!(err.contains("no-such-id"), "{err}");
    let err = bad(&dsn, &["rm", "network", "no-such-id"]);
    assert!(err.contains("no-such-id"), "{err}");
    let err = bad("mysql://x", &["dump"]);
    assert!(err.contains("mysql://x"), "{err}");

    assert_eq!(ok(&dsn, &["dump"]), before, "refused writes left the store unchanged");
    // A matching revision_number is accepted and bumps it.
    let renamed = json(&ok(
        &dsn,
        &["put", "network", &format!(r#"{{"id":"{net_id}","name":"m","revision_number":1}}"#)],
    ));
    assert_eq!((renamed["name"].as_str(), renamed["revision_number"].as_u64()), (Some("m"), Some(2)));
    assert_eq!(renamed["unique_key"], net["unique_key"]);
}

/// Writes a redb NB the way old releases' races and crashes left some: a port naming a deleted
/// security group, a router listing an interface whose port is gone (its claims left behind), and
/// a floating IP address port whose floating IP is gone. Returns (port, router, address port).
fn broken_store(path: &std::path::Path) -> (String, String, String) {
    use std::sync::Arc;
    use tern_model::Kind;
    use tern_store::nb::Nb;
    use tern_store::{LocalStore, Store};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ids = rt.block_on(async {
        let store: Arc<dyn Store> = Arc::new(LocalStore::open_redb(path).unwrap());
        let nb = Nb::new(store.clone());
        let put = |kind: Kind, json: String| {
            let nb = nb.clone();
            async move { nb.put_json(kind, &json).await.unwrap().object.id().to_owned() }
        };
        let net = put(Kind::Network, r#"{"name":"n"}"#.into()).await;
        let sub =
            put(Kind::Subnet, format!(r#"{{"network_id":"{net}","cidr":"10.0.0.0/24","ip_version":4}}"#))
                .await;
        let g = put(Kind::SecurityGroup, r#"{"name":"g"}"#.into()).await;
        let port = put(
            Kind::Port,
            format!(
                r#"{{"network_id":"{net}","security_groups":["{g}"],"fixed_ips":[{{"subnet_id":"{sub}"}}]}}"#
            ),
        )
        .await;
        let router = put(Kind::Router, r#"{"name":"r"}"#.into()).await;
        let itf = put(
            Kind::Port,
            format!(
                r#"{{"network_id":"{net}","device_owner":"network:router_interface","device_id":"{router}",
                    "fixed_ips":[{{"subnet_id":"{sub}","ip_address":"10.0.0.254"}}]}}"#
            ),
        )
        .await;
        put(
            Kind::Router,
            format!(
                r#"{{"id":"{router}","name":"r","interfaces":[{{"subnet_id":"{sub}","port_id":"{itf}"}}]}}"#
            ),
        )
        .await;
        let address = put(
            Kind::Port,
            format!(
                r#"{{"network_id":"{net}","device_owner":"network:floatingip","device_id":"gone-floatingip",
                    "fixed_ips":[{{"subnet_id":"{sub}"}}]}}"#
            ),
        )
        .await;
        // What the races and kill -9 did: deletes behind the references' backs.
        store.delete(&tern_model::key(Kind::SecurityGroup, &g)).await.unwrap();
        store.delete(&tern_model::key(Kind::Port, &itf)).await.unwrap();
        (port, router, address)
    });
    drop(rt);
    ids
}

#[test]
fn check_reports_violations_and_repair_fixes_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nb.redb");
    let dsn = format!("redb:{}", path.display());
    let (port, router, address) = broken_store(&path);

    let out = tern(&dsn, &["check"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "violations: exit status 1; stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for expected in [
        format!("dangling-reference port/{port}: security_groups[0]"),
        format!("dangling-reference router/{router}: interfaces[0].port_id"),
        format!("orphan-floatingip-port port/{address}"),
        "orphan-claim /tern/index/network/".to_string(),
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&expected)),
            "expected a line starting {expected:?} in:\n{text}"
        );
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("--repair"), "the message points at --repair");

    let out = tern(&dsn, &["check", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&String::from_utf8(out.stdout).unwrap());
    let violations = report["violations"].as_array().unwrap();
    assert_eq!(violations.len(), text.lines().count(), "one line per violation");
    assert!(report["revision"].as_u64().unwrap() > 0);
    let dangling = violations.iter().find(|v| v["subject"] == format!("port/{port}")).unwrap();
    assert_eq!(dangling["rule"], "dangling-reference");
    assert_eq!(dangling["repair"]["action"], "drop_port_security_group");

    let fixed = ok(&dsn, &["check", "--repair"]);
    for expected in [
        "repaired: drop security group".to_string(),
        format!("repaired: drop the interface of router {router}"),
        format!("repaired: delete port {address}"),
        "repaired: delete index key /tern/index/network/".to_string(),
    ] {
        assert!(fixed.lines().any(|l| l.starts_with(&expected)), "expected {expected:?} in:\n{fixed}");
    }
    assert!(!fixed.lines().any(|l| !l.starts_with("repaired: ")), "nothing left:\n{fixed}");
    assert_eq!(ok(&dsn, &["check"]), "", "a repaired store checks clean");
    let report = json(&ok(&dsn, &["check", "--json", "--repair"]));
    assert_eq!(report["violations"], serde_json::json!([]));
    assert_eq!(report["repaired"], serde_json::json!([]));
    let p = json(&ok(&dsn, &["get", "port", &port]));
    assert_eq!(p["security_groups"], serde_json::json!([]));
    let r = json(&ok(&dsn, &["get", "router", &router]));
    assert_eq!(r["interfaces"], serde_json::json!([]));
    bad(&dsn, &["get", "port", &address]);
}
