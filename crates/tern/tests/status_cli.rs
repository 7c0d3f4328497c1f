//! `tern status` and `tern chassis delete` on a redb file: the state (chassis, a heartbeat kept
//! alive by `Heartbeater`, ports, migrations) is written with the library first, the store closed
//! (a redb file has one owner), then the binary runs on the same file. The embedded store re-arms
//! leases at open, so the heartbeat written with a long TTL is still alive for the binary.

use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tern_model::{Kind, Migration, MigrationState, Object};
use tern_store::liveness::{self, Heartbeater};
use tern_store::nb::Nb;

fn tern(args: &[&str], dsn: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(args)
        .arg("--nb")
        .arg(dsn)
        .env_remove("TERN_NB")
        .output()
        .expect("run tern")
}

fn ok(args: &[&str], dsn: &str) -> String {
    let out = tern(args, dsn);
    assert!(
        out.status.success(),
        "tern {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn refused(args: &[&str], dsn: &str) -> String {
    let out = tern(args, dsn);
    assert_eq!(
        out.status.code(),
        Some(2),
        "tern {args:?}: expected exit status 2; stdout {} stderr {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr).unwrap()
}

fn status(dsn: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["status", "--json"];
    args.extend_from_slice(extra);
    let text = ok(&args, dsn);
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    v.as_array().expect("an array").clone()
}

fn names(rows: &[Value]) -> Vec<&str> {
    rows.iter().map(|r| r["name"].as_str().unwrap()).collect()
}

/// Runs `f` on the NB store at `dsn` in its own runtime, then closes the store (and the runtime,
/// with the lease task that holds the file), so the binary can open it.
fn with_nb<T>(dsn: &str, f: impl AsyncFnOnce(Nb) -> T) -> T {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt.block_on(async {
        let nb = Nb::new(tern_store::open(dsn).await.expect("open the store"));
        f(nb).await
    });
    drop(rt);
    out
}

/// hv1: alive, two ports, one migration in flight (to hv2) and one completed; hv2: registered,
/// no heartbeat.
fn seed(dsn: &str) {
    with_nb(dsn, async |nb: Nb| {
        nb.put_json(Kind::Chassis, r#"{"id":"hv1","tunnel_ip":"192.0.2.1"}"#).await.unwrap();
        nb.put_json(Kind::Chassis, r#"{"id":"hv2","tunnel_ip":"192.0.2.2"}"#).await.unwrap();
        let net = nb.put_json(Kind::Network, r#"{"name":"n"}"#).await.unwrap().object.id().to_owned();
        let mut ports = Vec::new();
        for _ in 0..2 {
            let json = format!(r#"{{"network_id":"{net}","binding:host_id":"hv1"}}"#);
            ports.push(nb.put_json(Kind::Port, &json).await.unwrap().object.id().to_owned());
        }
        nb.put(Object::Migration(Migration::new(&ports[0], 1, "hv1", "hv2"))).await.unwrap();
        let mut done = Migration::new(&ports[1], 1, "hv2", "hv1");
        done.state = MigrationState::Completed;
        nb.put(Object::Migration(done)).await.unwrap();
        // A controller's heartbeat, with a TTL that outlives the test; dropping the Heartbeater
        // stops refreshing but leaves the key under its lease.
        let store = Arc::clone(nb.store());
        let hb = Heartbeater::start(
            Arc::clone(&store),
            "hv1".into(),
            Duration::from_secs(3600),
            Duration::from_secs(600),
        )
        .await
        .unwrap();
        tokio::time::timeout(Duration::from_secs(10), async {
            while !liveness::is_alive(&*store, "hv1").await.unwrap() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the heartbeat is written");
        drop(hb);
    });
}

#[test]
fn status_and_chassis_delete() {
    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("redb:{}", dir.path().join("nb.redb").display());
    seed(&dsn);

    let rows = status(&dsn, &[]);
    assert_eq!(names(&rows), ["hv1", "hv2"]);
    let (hv1, hv2) = (&rows[0], &rows[1]);
    assert_eq!(hv1["alive"], true, "{hv1}");
    assert_eq!(hv1["tunnel_ip"], "192.0.2.1");
    assert!(hv1["last_heartbeat"].as_str().is_some_and(|t| t.ends_with('Z')), "{hv1}");
    assert!(hv1["heartbeat_age_s"].as_f64().is_some_and(|a| a >= 0.0), "{hv1}");
    assert_eq!(hv1["ports"], 2);
    assert_eq!(hv1["migrations"], 1);
    assert_eq!(hv2["alive"], false, "{hv2}");
    assert_eq!(hv2["last_heartbeat"], Value::Null);
    assert_eq!(hv2["heartbeat_age_s"], Value::Null);
    assert_eq!(hv2["ports"], 0);
    assert_eq!(hv2["migrations"], 1);
    assert_eq!(names(&status(&dsn, &["--alive"])), ["hv1"]);
    assert_eq!(names(&status(&dsn, &["--down"])), ["hv2"]);
    refused(&["status", "--alive", "--down"], &dsn);

    // The table.
    let table = ok(&["status"], &dsn);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    for h in ["NAME", "TUNNEL IP", "ALIVE", "LAST HEARTBEAT", "AGE", "PORTS", "MIGRATIONS"] {
        assert!(lines[0].contains(h), "{table}");
    }
    let hv1_cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(hv1_cells[..3], ["hv1", "192.0.2.1", "yes"], "{table}");
    assert_eq!(hv1_cells[5..], ["2", "1"], "{table}");
    let hv2_cells: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(hv2_cells, ["hv2", "192.0.2.2", "no", "-", "-", "0", "1"], "{table}");

    // Delete: a live chassis is refused without --force, an unknown one named, a dead one goes.
    let err = refused(&["chassis", "delete", "hv1"], &dsn);
    assert!(err.contains("\"hv1\"") && err.contains("alive") && err.contains("--force"), "{err}");
    let err = refused(&["chassis", "delete", "nope"], &dsn);
    assert!(err.contains("\"nope\""), "{err}");
    let out = ok(&["chassis", "delete", "hv2"], &dsn);
    assert!(out.contains("deleted chassis hv2"), "{out}");
    assert_eq!(names(&status(&dsn, &[])), ["hv1"]);
    refused(&["chassis", "delete", "hv2"], &dsn);

    // --force deletes a live chassis and its heartbeat.
    let out = ok(&["chassis", "delete", "hv1", "--force"], &dsn);
    assert!(out.contains("deleted chassis hv1 and its heartbeat"), "{out}");
    assert!(status(&dsn, &[]).is_empty());
    let alive = with_nb(&dsn, async |nb: Nb| liveness::is_alive(&**nb.store(), "hv1").await.unwrap());
    assert!(!alive, "the heartbeat key is gone");
}
