//! `tern lab load` and `tern lab churn` end to end on real OVS (root, Open vSwitch, iproute2, and
//! etcd for the etcd lab): a small background cloud loaded into a running lab's NB beside its VMs,
//! churned while the VMs still reach each other and a VM still migrates; bad input refused; the
//! churn daemon stopped by `--stop` and by `tern lab down`. Driven only through the `tern` binary.
//!
//! Like the other lab tests: a prefix of its own (`tern-e2b`), one test at a time (a lock), its
//! own directory, `tern lab down` by a guard. Nothing waits a fixed time: every wait polls with a
//! generous deadline.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

const PREFIX: &str = "tern-e2b";

static SERIAL: Mutex<()> = Mutex::new(());

#[path = "common/lab_session.rs"]
mod lab_session;
use lab_session::{Session, PATIENCE};

fn session(test: &str) -> Session {
    lab_session::session(&SERIAL, PREFIX, test)
}

impl Session {
    /// Pings until one ping of `from` -> `to` passes (flows converge), then 3 must all pass.
    fn reaches(&self, from: &str, to: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self.tern(&["ping", from, to, "--count", "1"]).status.success() {
            assert!(Instant::now() < deadline, "{from} never reached {to}");
        }
        self.ok(&["ping", from, to, "--count", "3"]);
    }

    /// `tern lab ARGS` must fail with status 2 (bad input) and say `why`.
    fn refused(&self, args: &[&str], why: &str) {
        let out = self.tern(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "tern lab {args:?}: {out:?}");
        assert!(err.contains(why), "tern lab {args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }

    fn churn_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("churn.log")).unwrap_or_default()
    }

    /// Updates the churn reports it has written so far (its 10 s lines), once one shows some.
    fn churn_written(&self) -> u64 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let n = self
                .churn_log()
                .lines()
                .filter_map(|l| l.strip_prefix("churn: ")?.split_once(" updates, ")?.0.parse::<u64>().ok())
                .max()
                .unwrap_or(0);
            if n > 0 {
                return n;
            }
            assert!(Instant::now() < deadline, "the churn reported no update:\n{}", self.churn_log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn churn_pid(&self) -> Option<u32> {
        let st = self.status();
        st["daemons"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == "churn" && d["alive"] == true)
            .and_then(|d| d["pid"].as_u64())
            .map(|p| p as u32)
    }

    /// A migration of `vm` to hvN that must succeed, VM reachable after.
    fn migrates(&self, vm: &str, to: u32, trigger: &str) -> Value {
        let to = format!("hv{to}");
        let out = self.ok(&["migrate", vm, "--to", &to, "--trigger", trigger, "--probes", "l2", "--json"]);
        let r: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        eprintln!("migrate {vm} -> {to} ({trigger}) under churn: blackout_ms {}", r["blackout_ms"]);
        assert_eq!(r["ping_ok"], true, "{r}");
        r
    }
}

/// The scenario on a lab up with `nb`: VMs a (hv1) and c (hv3); the background cloud loaded with
/// churn; pings and one migration while it churns.
fn loads_and_churns(s: &Session, nb: &str, ports: &str, chassis: usize) {
    s.ok(&["up", "--hypervisors", "3", "--nb", nb, "--prefix", PREFIX]);
    s.vm("a", 1, "red");
    s.vm("c", 3, "red");
    s.reaches("a", "c");

    // Bad input says what is wrong and changes nothing.
    s.refused(&["load", "--chassis", "0"], "at least one chassis");
    s.refused(&["load", "--ports", "5", "--chassis", "6"], "more than --ports");
    s.refused(&["load", "--ports", "3000", "--chassis", "3", "--networks", "1"], "give more --networks");
    s.refused(&["churn", "--rate", "20"], "no background cloud");
    s.refused(&["churn", "--stop"], "no churn runs");
    assert!(s.status()["background"].is_null());

    let chassis_arg = chassis.to_string();
    let out = s.ok(&["load", "--ports", ports, "--chassis", &chassis_arg, "--churn", "50"]);
    assert!(out.contains(&format!("background cloud loaded: {ports} ports on {chassis} chassis")), "{out}");
    let st = s.status();
    assert_eq!(st["background"]["ports"].as_u64().unwrap().to_string(), ports, "{st}");
    let registered: Vec<&str> = st["chassis"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(registered.iter().filter(|c| c.starts_with("bg-")).count(), chassis, "{registered:?}");
    for hv in ["hv1", "hv2", "hv3"] {
        assert!(registered.contains(&hv), "{registered:?}");
    }
    let pid = s.churn_pid().expect("the churn daemon runs");
    s.refused(&["load", "--ports", ports, "--chassis", &chassis_arg], "holds a background cloud already");
    s.refused(&["churn", "--rate", "5"], "a churn runs already");

    // While it churns: the VMs reach each other, one migrates and still does.
    s.reaches("a", "c");
    s.reaches("c", "a");
    s.migrates("a", 2, "rarp");
    s.reaches("a", "c");
    s.reaches("c", "a");
    assert!(s.churn_written() > 0);
    assert_eq!(s.churn_pid(), Some(pid), "the churn still runs:\n{}", s.churn_log());

    // `--stop` stops it and says what it did; without errors.
    let stopped = s.ok(&["churn", "--stop"]);
    assert!(stopped.contains(&format!("churn stopped (pid {pid})")), "{stopped}");
    assert!(stopped.contains(" 0 errors"), "{stopped}\n{}", s.churn_log());
    assert_eq!(s.churn_pid(), None);

    // Started again, `tern lab down` stops it.
    s.ok(&["churn", "--rate", "20"]);
    let pid = s.churn_pid().expect("the churn runs again");
    s.ok(&["down"]);
    assert!(!running(pid), "the churn outlived the lab");
}

/// In /proc and not a zombie (the daemon's parent, init here, may reap it late).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

#[test]
fn a_background_cloud_loads_and_churns_while_the_lab_migrates_embedded() {
    let s = session("embedded");
    loads_and_churns(&s, "embedded", "300", 30);
}

#[test]
fn a_background_cloud_loads_and_churns_while_the_lab_migrates_on_etcd() {
    let s = session("etcd");
    loads_and_churns(&s, "etcd", "300", 30);
}
