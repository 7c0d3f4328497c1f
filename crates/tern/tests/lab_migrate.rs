//! `tern lab migrate` end to end on real OVS (root, Open vSwitch, iproute2): a VM live-migrated
//! between hypervisors with each trigger, with and without dual delivery, while the two-way UDP
//! probe runs; a migration rolled back; a chassis blind to the migration records converging from
//! the binding alone; a controller killed in the middle of a migration converging after restart.
//! Driven only through the `tern` binary.
//!
//! Like `lab_l2.rs`: one prefix of its own (`tern-e2m`, so it never meets the l2 tests' namespaces
//! nor a person's `tern`), one test at a time (a lock), its own directory, `tern lab down` by a
//! guard (also on panic), and a crashed earlier run removed first. The blackout figures are
//! printed, never asserted: speed goals belong to the lab report, not to tests.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

const PREFIX: &str = "tern-e2m";

static SERIAL: Mutex<()> = Mutex::new(());

#[path = "common/lab_session.rs"]
mod lab_session;
use lab_session::{Session, PATIENCE};

fn session(test: &str) -> Session {
    lab_session::session(&SERIAL, PREFIX, test)
}

impl Session {
    fn hv_of(&self, vm: &str) -> u64 {
        let st = self.status();
        let v = st["vms"].as_array().unwrap().iter().find(|v| v["name"] == vm).expect("VM in status");
        v["hv"].as_u64().unwrap_or_else(|| panic!("no hv for {vm}: {v}"))
    }

    /// Pings until one ping of `from` -> `to` passes (flows converge), then 3 must all pass.
    fn reaches(&self, from: &str, to: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self.tern(&["ping", from, to, "--count", "1"]).status.success() {
            assert!(Instant::now() < deadline, "{from} never reached {to}");
        }
        self.ok(&["ping", from, to, "--count", "3"]);
    }

    /// The live migrations the API shows in flight.
    fn migrations(&self) -> Vec<Value> {
        self.status()["migrations"].as_array().cloned().unwrap_or_else(|| panic!("no migrations list"))
    }

    /// Waits until no migration is in flight any more (the records go once each completed).
    fn settled(&self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = self.migrations();
            if left.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "migrations never settled: {left:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `tern lab migrate VM --to hvN --trigger T --json`; returns the parsed report.
    fn migrate(&self, vm: &str, to: u32, trigger: &str) -> Value {
        self.migrate_with(vm, to, trigger, true)
    }

    fn migrate_with(&self, vm: &str, to: u32, trigger: &str, dual: bool) -> Value {
        let started = Instant::now();
        let to = format!("hv{to}");
        let mut args = vec!["migrate", vm, "--to", &to, "--trigger", trigger, "--json"];
        if !dual {
            args.push("--no-dual-delivery");
        }
        let out = self.ok(&args);
        let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        eprintln!(
            "migrate {vm} -> {to} ({trigger}, dual {dual}, {:.1} s): blackout_ms {} max_gap_ms {} sent {} lost {} duplicates {}",
            started.elapsed().as_secs_f64(),
            report["blackout_ms"],
            report["max_gap_ms"],
            report["sent"],
            report["lost"],
            report["duplicates"]
        );
        eprintln!("  timeline {}", report["timeline"]);
        report
    }
}

#[test]
fn migrate_with_each_trigger_with_and_without_dual_delivery_keeps_the_vm_reachable() {
    let s = session("migrate");
    s.ok(&["up", "--hypervisors", "3", "--nb", "embedded", "--prefix", PREFIX]);
    s.vm("a", 1, "red");
    s.vm("c", 3, "red");
    s.reaches("a", "c");
    s.reaches("c", "a");

    let mut at = 1;
    for dual in [true, false] {
        for trigger in ["rarp", "unplug", "api"] {
            let (from, to) = (at, 3 - at);
            let r = s.migrate_with("a", to, trigger, dual);
            assert_eq!(r["vm"], "a");
            assert_eq!(r["from"], format!("hv{from}"));
            assert_eq!(r["to"], format!("hv{to}"));
            assert_eq!(r["trigger"], trigger);
            assert_eq!(r["dual_delivery"], dual, "{r}");
            assert_eq!(r["probe_interval_ms"], 1.0);
            assert!(r["sent"].as_u64().unwrap() > 0, "{r}");
            for k in ["lost", "duplicates"] {
                assert!(r[k].is_u64(), "{k}: {r}");
            }
            for d in ["to_vm", "from_vm"] {
                assert!(r["blackout_ms"].get(d).is_some(), "{r}");
                assert!(r["directions"][d]["sent"].as_u64().unwrap() > 0, "{r}");
            }
            assert!(r["timeline"]["t0_ms"].as_u64().unwrap() > 0, "{r}");
            // Each chassis' flows moved the VM: the peer's chassis (hv3) last sent its traffic to
            // the destination only.
            let chassis = r["timeline"]["chassis"].as_object().unwrap_or_else(|| panic!("{r}"));
            let name = |n: u32| chassis.keys().find(|k| k.ends_with(&format!("hv{n}"))).cloned();
            let (peer_chassis, dest) =
                (name(3).expect("hv3 in the timeline"), name(to).expect("destination"));
            let last = chassis[&peer_chassis].as_array().and_then(|e| e.last()).cloned().unwrap();
            assert_eq!(last["location"], serde_json::json!([dest]), "{r}");
            // The lab's records follow the VM, it still reaches its peer both ways, and the
            // migration's record goes.
            assert_eq!(s.hv_of("a"), u64::from(to));
            s.reaches("a", "c");
            s.reaches("c", "a");
            s.settled();
            at = to;
        }
    }

    // Nothing half-migrated is left: the VM can be removed as usual.
    s.ok(&["vm", "rm", "a"]);
    s.ok(&["down"]);
}

#[test]
fn an_aborted_migration_rolls_back() {
    let s = session("abort");
    s.ok(&["up", "--hypervisors", "3", "--nb", "embedded", "--prefix", PREFIX]);
    s.vm("a", 1, "red");
    s.vm("c", 3, "red");
    s.reaches("a", "c");
    // `--abort` waits for dest_plugged, rolls back, waits for the record to go and pings.
    s.ok(&["migrate", "a", "--to", "hv2", "--abort"]);
    assert_eq!(s.hv_of("a"), 1);
    assert!(s.migrations().is_empty());
    s.reaches("a", "c");
    s.reaches("c", "a");
    // And the VM can still migrate there afterwards.
    s.migrate("a", 2, "unplug");
    s.reaches("c", "a");
    s.ok(&["down"]);
}

#[test]
fn a_chassis_that_misses_every_migration_record_converges_from_the_binding() {
    let s = session("blind");
    // hv3's controller ignores every Migration record: the peer's chassis learns that the VM
    // moved only from the binding update (and, until then, the source forwards to the destination).
    s.ok(&[
        "up",
        "--hypervisors",
        "3",
        "--nb",
        "embedded",
        "--prefix",
        PREFIX,
        "--blind-to-migrations",
        "hv3",
    ]);
    s.vm("a", 1, "red");
    s.vm("c", 3, "red");
    s.reaches("a", "c");
    s.reaches("c", "a");
    let mut at = 1;
    for (trigger, dual) in [("unplug", true), ("rarp", true), ("unplug", false), ("api", false)] {
        let to = 3 - at;
        s.migrate_with("a", to, trigger, dual);
        assert_eq!(s.hv_of("a"), u64::from(to));
        s.reaches("c", "a");
        s.reaches("a", "c");
        s.settled();
        at = to;
    }
    s.ok(&["down"]);
}

#[test]
fn a_controller_killed_in_the_middle_of_a_migration_converges_after_restart() {
    let s = session("kill");
    s.ok(&["up", "--hypervisors", "3", "--nb", "etcd", "--prefix", PREFIX]);
    s.vm("a", 1, "red");
    s.vm("c", 3, "red");
    s.reaches("a", "c");
    for (victim, to, trigger) in [("hv2", 2u64, "unplug"), ("hv2", 1, "rarp"), ("hv3", 2, "api")] {
        // The migration runs in the background; the victim's controller is killed as soon as the
        // migration's record shows up, and started again once the migration is over.
        let migrate = std::process::Command::new(env!("CARGO_BIN_EXE_tern"))
            .args(["lab", "migrate", "a", "--to", &format!("hv{to}"), "--trigger", trigger, "--dir"])
            .arg(&s.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + PATIENCE;
        while s.migrations().is_empty() {
            assert!(Instant::now() < deadline, "no migration record appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
        s.ok(&["controller", "kill", victim]);
        // The migration itself may or may not keep the network whole without the controller:
        // what matters is what happens once it is back.
        let out = migrate.wait_with_output().unwrap();
        eprintln!("migrate with {victim} killed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        s.ok(&["controller", "start", victim]);
        assert_eq!(s.hv_of("a"), to);
        s.reaches("a", "c");
        s.reaches("c", "a");
        s.settled();
    }
    s.ok(&["down"]);
}

#[test]
fn migrate_without_a_peer_says_so() {
    let s = session("nopeer");
    s.ok(&["up", "--hypervisors", "2", "--nb", "embedded", "--prefix", PREFIX]);
    s.vm("a", 1, "red");
    let out = s.tern(&["migrate", "a", "--to", "hv2"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no peer"), "{err}");
    // Nothing was started: the VM is where it was.
    assert_eq!(s.hv_of("a"), 1);
    s.ok(&["down"]);
}
