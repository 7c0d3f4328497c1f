//! `tern lab migrate` end to end on real OVS (root, Open vSwitch, iproute2): a VM live-migrated
//! between hypervisors with each trigger while the two-way UDP probe runs, driven only through
//! the `tern` binary.
//!
//! Like `lab_l2.rs`: one prefix of its own (`tern-e2m`, so it never meets the l2 tests' namespaces
//! nor a person's `tern`), one test at a time (a lock), its own directory, `tern lab down` by a
//! guard (also on panic), and a crashed earlier run removed first. The blackout figures are
//! printed, never asserted: speed goals belong to the lab report, not to tests.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

const PREFIX: &str = "tern-e2m";
const PATIENCE: Duration = Duration::from_secs(60);

static SERIAL: Mutex<()> = Mutex::new(());

#[path = "common/lab_session.rs"]
mod lab_session;
use lab_session::Session;

fn session(test: &str) -> Session {
    lab_session::session(&SERIAL, PREFIX, test)
}

impl Session {
    /// `vm add`, retried while the new chassis are not yet reported alive.
    fn vm(&self, name: &str, hv: u32, network: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let out = self.tern(&["vm", "add", name, "--hv", &hv.to_string(), "--network", network]);
            if out.status.success() {
                return;
            }
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("not alive") && Instant::now() < deadline, "vm add {name} failed: {err}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).unwrap()
    }

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

    /// `tern lab migrate VM --to hvN --trigger T --json`; returns the parsed report.
    fn migrate(&self, vm: &str, to: u32, trigger: &str) -> Value {
        let started = Instant::now();
        let out = self.ok(&["migrate", vm, "--to", &format!("hv{to}"), "--trigger", trigger, "--json"]);
        let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        eprintln!(
            "migrate {vm} -> hv{to} ({trigger}, {:.1} s): blackout_ms {} max_gap_ms {} sent {} lost {} duplicates {}",
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
fn migrate_with_each_trigger_keeps_the_vm_reachable() {
    let s = session("migrate");
    s.ok(&["up", "--hypervisors", "3", "--nb", "embedded", "--prefix", PREFIX]);
    s.vm("a", 1, "red");
    s.vm("c", 3, "red");
    s.reaches("a", "c");
    s.reaches("c", "a");

    for (to, from, trigger) in [(2, 1, "rarp"), (1, 2, "unplug"), (2, 1, "api")] {
        let r = s.migrate("a", to, trigger);
        assert_eq!(r["vm"], "a");
        assert_eq!(r["from"], format!("hv{from}"));
        assert_eq!(r["to"], format!("hv{to}"));
        assert_eq!(r["trigger"], trigger);
        assert!(r["dual_delivery"].is_boolean(), "{r}");
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
        // The lab's records follow the VM, and it still reaches its peer both ways.
        assert_eq!(s.hv_of("a"), u64::from(to));
        s.reaches("a", "c");
        s.reaches("c", "a");
    }

    // Nothing half-migrated is left: the VM can be removed as usual.
    s.ok(&["vm", "rm", "a"]);
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
