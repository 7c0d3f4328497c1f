//! `tern lab` end to end on real OVS (root, Open vSwitch, iproute2, etcd): the L2 overlay between
//! hypervisors as `tern` sets it up, driven only through the `tern` binary.
//!
//! The lab's namespace names are fixed per prefix, so the tests here share one prefix
//! (`tern-e2e`, never a person's `tern`) and run one at a time (a lock). Each has its own
//! directory, is cleaned up with `tern lab down` by a guard (also on panic), and removes a crashed
//! earlier run of itself first.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

const PREFIX: &str = "tern-e2e";

static SERIAL: Mutex<()> = Mutex::new(());

#[path = "common/lab_session.rs"]
mod lab_session;
use lab_session::{Session, PATIENCE};

fn session(test: &str) -> Session {
    lab_session::session(&SERIAL, PREFIX, test)
}

impl Session {
    fn up(&self, hypervisors: u32, nb: &str) {
        self.ok(&["up", "--hypervisors", &hypervisors.to_string(), "--nb", nb, "--prefix", PREFIX]);
    }

    fn vm_field(&self, name: &str, field: &str) -> String {
        let st = self.status();
        let vm = st["vms"].as_array().unwrap().iter().find(|v| v["name"] == name).expect("VM in status");
        vm[field].as_str().unwrap().to_owned()
    }

    /// Pings until one ping of `from` -> `to` passes (flows converge), then until 3 in a row all
    /// pass (see [`Session::converges`]).
    fn reaches(&self, from: &str, to: &str) {
        self.converges(&format!("{from} -> {to}"), &["ping", from, to]);
    }

    /// Runs `args` with `--count 1` until it succeeds (flows converging), then with `--count 3`
    /// until all 3 pass, within the patience: a transient loss while other chassis still converge
    /// is tolerated, a path that never carries 3 of 3 is not.
    fn converges(&self, what: &str, args: &[&str]) {
        let deadline = Instant::now() + PATIENCE;
        let with = |n: &'static str| -> Vec<&str> { args.iter().copied().chain(["--count", n]).collect() };
        while !self.tern(&with("1")).status.success() {
            assert!(Instant::now() < deadline, "{what}: never answered");
        }
        loop {
            let out = self.tern(&with("3"));
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: never 3 answers of 3:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            eprintln!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
    }

    /// 3 pings from `from` to `to` (another network) all get lost.
    fn blocked(&self, from: &str, to: &str) {
        let out = self.tern(&["ping", from, to, "--count", "3"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{from} reached {to} on another network: {stdout}");
        assert!(stdout.contains("3 packets transmitted, 0 received"), "{from} -> {to}: {stdout}");
    }

    /// Flows of every hypervisor's br-int, by hypervisor name.
    fn flows(&self) -> Vec<(String, String)> {
        let st = self.status();
        st["hypervisors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                let mgmt = h["mgmt_sock"].as_str().unwrap();
                let out = Command::new("ovs-ofctl")
                    .args(["-O", "OpenFlow13", "dump-flows", mgmt, "--no-stats"])
                    .output()
                    .expect("ovs-ofctl");
                assert!(out.status.success(), "dump-flows {mgmt}: {}", String::from_utf8_lossy(&out.stderr));
                (h["name"].as_str().unwrap().to_owned(), String::from_utf8(out.stdout).unwrap())
            })
            .collect()
    }

    fn pid(&self, name: &str) -> u32 {
        std::fs::read_to_string(self.dir.join(format!("{name}.pid"))).unwrap().trim().parse().unwrap()
    }
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn gone(dir: &Path) {
    assert!(!dir.exists(), "{} still exists", dir.display());
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let ns = String::from_utf8_lossy(&ns.stdout);
    assert!(!ns.lines().any(|l| l.starts_with(&format!("{PREFIX}-"))), "namespaces left: {ns}");
}

#[test]
fn demo_passes_and_reports() {
    let s = session("demo");
    let json = std::env::temp_dir().join(format!("{PREFIX}-demo.json"));
    let _ = std::fs::remove_file(&json);
    let started = Instant::now();
    let out = s.tern(&["demo", "--json", json.to_str().unwrap(), "--prefix", PREFIX]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("tern lab demo took {:.1} s", started.elapsed().as_secs_f64());
    assert!(stdout.contains("12/12 same-network pairs"), "{stdout}");
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["hypervisors"], 3);
    assert_eq!(report["connectivity"]["pairs_tested"], 12);
    assert_eq!(report["connectivity"]["pairs_ok"], 12);
    assert_eq!(report["connectivity"]["failures"], serde_json::json!([]));
    assert_eq!(report["isolation"]["pairs_tested"], 18);
    assert_eq!(report["isolation"]["pairs_blocked"], 18);
    // One VM migrated with each trigger, with and without dual delivery, and everything still
    // reaches everything on its network afterwards.
    let migrations = report["migrations"].as_array().expect("migrations");
    assert_eq!(migrations.len(), 6, "{report}");
    for m in migrations {
        for k in [
            "vm",
            "from",
            "to",
            "trigger",
            "dual_delivery",
            "probe_interval_ms",
            "sent",
            "lost",
            "duplicates",
        ] {
            assert!(m.get(k).is_some(), "{k} missing in {m}");
        }
        assert!(m["blackout_ms"].get("to_vm").is_some() && m["timeline"].is_object(), "{m}");
        // Probed over L2, through the router and through the floating IP, each with the same
        // fields, and every probe got through after the switchover.
        for kind in ["l2", "l3", "fip"] {
            let p = &m["probes"][kind];
            for k in [
                "peer",
                "sent",
                "lost",
                "duplicates",
                "blackout_ms",
                "max_gap_ms",
                "directions",
                "send_errors",
            ] {
                assert!(p.get(k).is_some(), "probes.{kind}.{k} missing in {m}");
            }
            assert!(p["sent"].as_u64().unwrap_or(0) > 0, "probes.{kind}: {p}");
            for dir in ["to_vm", "from_vm"] {
                let d = &p["directions"][dir];
                assert!(d["received"].as_u64().unwrap_or(0) > 0, "probes.{kind}.{dir}: {p}");
            }
        }
        assert_eq!(m["probes"]["fip"]["peer"], "external", "{m}");
        assert_eq!(m["probes"]["l2"]["sent"], m["sent"], "{m}");
    }
    assert_eq!(report["after_migrations"]["pairs_ok"], report["after_migrations"]["pairs_tested"]);
    // The services: routing across networks (before and after the migrations), DHCP, port
    // security and security groups, each fully as expected.
    for (section, tested, ok) in [
        ("routing", "pairs_tested", "pairs_ok"),
        ("routing_after_migrations", "pairs_tested", "pairs_ok"),
        ("dhcp", "vms", "leased"),
        ("port_security", "spoof_attempts", "spoof_dropped"),
        ("security_groups", "tested", "as_expected"),
        ("security_groups_after_migrations", "tested", "as_expected"),
        ("floating_ips", "tested", "ok"),
        ("floating_ips_after_migrations", "tested", "ok"),
    ] {
        let s = &report[section];
        assert!(s[tested].as_u64().unwrap_or(0) > 0, "{section}: {s}");
        assert_eq!(s[tested], s[ok], "{section}: {s}");
    }
    // The demo tears down after itself.
    gone(&s.dir);
    let _ = std::fs::remove_file(&json);
}

#[test]
fn a_router_joins_networks_across_hypervisors_and_follows_a_migration() {
    let s = session("routed");
    s.up(3, "embedded");
    s.vm("a", 1, "red");
    s.vm("b", 2, "blue");
    s.vm("c", 3, "red");
    // Without a router, red and blue do not reach each other through their gateways.
    assert!(!s.tern(&["ping", "a", "b", "--routed", "--count", "2"]).status.success());
    s.ok(&["router", "add", "r1", "--network", "red", "--network", "blue"]);
    let routed = |from: &str, to: &str| {
        s.converges(&format!("{from} reaches {to} through the router"), &["ping", from, to, "--routed"]);
    };
    routed("a", "b");
    routed("b", "a");
    routed("c", "b");
    // The routed traffic follows a live migration (routes and all).
    s.ok(&["migrate", "a", "--to", "hv3", "--trigger", "rarp"]);
    routed("a", "b");
    routed("b", "a");
    s.reaches("a", "c");
    s.ok(&["down"]);
}

#[test]
fn a_floating_ip_is_reached_from_outside_and_reaches_out_and_follows_a_migration() {
    let s = session("fip");
    s.up(3, "embedded");
    s.vm("a", 1, "red");
    s.vm("b", 3, "red");
    // No router: no floating IP (the API finds no router to NAT it).
    let out = s.tern(&["fip", "add", "a"]);
    assert!(!out.status.success(), "a floating IP without a router");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("router"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.ok(&["router", "add", "r1", "--network", "red"]);
    let added = s.ok(&["fip", "add", "a"]);
    assert!(added.contains("floating IP 172.24.4."), "{added}");
    let both_ways = || s.converges("the floating IP answers both ways", &["fip", "ping", "a"]);
    both_ways();
    // The floating IP follows the VM, each trigger: the new chassis answers ARP for it, announces
    // it, translates both ways; the external host needs no new ARP (same MAC).
    for (to, trigger) in [("hv2", "rarp"), ("hv1", "unplug"), ("hv2", "api")] {
        s.ok(&["migrate", "a", "--to", to, "--trigger", trigger]);
        both_ways();
    }
    // The external network learnt where the floating IP went (hv2) from the gratuitous ARP.
    let fdb = Command::new("ip")
        .args(["netns", "exec", &format!("{PREFIX}-ext"), "bridge", "fdb", "show", "br", "br0"])
        .output()
        .unwrap();
    let fdb = String::from_utf8_lossy(&fdb.stdout);
    let macs: Vec<&str> =
        fdb.lines().filter(|l| l.contains(" dev ex2 ") && l.starts_with("fa:16:3e")).collect();
    assert!(!macs.is_empty(), "no fa:16:3e MAC behind hv2's external veth:\n{fdb}");
    s.ok(&["down"]);
}

#[test]
fn vms_get_their_address_by_dhcp_from_their_chassis() {
    let s = session("dhcp");
    s.up(2, "embedded");
    s.vm("a", 1, "red");
    s.vm("c", 2, "red");
    let ip = |vm: &str| s.vm_field(vm, "ip_cidr").split('/').next().unwrap().to_owned();
    // udhcpc asks (DISCOVER, REQUEST from 0.0.0.0) and prints the lease; its script does nothing,
    // so the VM keeps its configuration. Returns whether it got one, and what it said.
    let dhcp = |vm: &str| {
        let out = s.tern(&[
            "exec",
            vm,
            "--",
            "udhcpc",
            "-i",
            "{iface}",
            "-n",
            "-q",
            "-f",
            "-s",
            "/bin/true",
            "-t",
            "3",
            "-T",
            "1",
        ]);
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    for vm in ["a", "c"] {
        let mut lease = String::new();
        eventually(&format!("{vm} to get a DHCP lease"), || {
            let (ok, text) = dhcp(vm);
            lease = text;
            ok
        });
        assert!(lease.contains(&format!("lease of {} obtained", ip(vm))), "{vm}: {lease}");
    }
    // And after a migration, from the new chassis.
    s.ok(&["migrate", "a", "--to", "hv2", "--trigger", "unplug"]);
    let (ok, text) = dhcp("a");
    assert!(ok && text.contains(&format!("lease of {} obtained", ip("a"))), "{text}");
    s.ok(&["down"]);
}

#[test]
fn spoofed_packets_are_dropped() {
    let s = session("spoof");
    s.up(3, "embedded");
    s.vm("a", 1, "red");
    s.vm("c", 2, "red");
    s.reaches("a", "c");
    let ip = |vm: &str| s.vm_field(vm, "ip_cidr").split('/').next().unwrap().to_owned();
    let (a_ip, c_ip) = (ip("a"), ip("c"));
    let spoof = |when: &str| {
        // Another address of the subnet, not the port's: c would answer it (a answers ARP for
        // it), but nothing a sends from it leaves a's port.
        let spoofed = a_ip.rsplit_once('.').map(|(net, _)| format!("{net}.199")).unwrap();
        s.ok(&["exec", "a", "--", "ip", "addr", "add", &format!("{spoofed}/32"), "dev", "{iface}"]);
        let out =
            s.tern(&["exec", "a", "--", "ping", "-c", "3", "-i", "0.2", "-W", "1", "-I", &spoofed, &c_ip]);
        assert!(!out.status.success(), "{when}: a reached c from a spoofed address");
        s.ok(&["exec", "a", "--", "ip", "addr", "del", &format!("{spoofed}/32"), "dev", "{iface}"]);
        // Another MAC: nothing passes either, until the real one is back.
        let mac = s.vm_field("a", "mac");
        s.ok(&["exec", "a", "--", "ip", "link", "set", "{iface}", "address", "fa:16:3e:99:99:99"]);
        let out = s.tern(&["exec", "a", "--", "ping", "-c", "3", "-i", "0.2", "-W", "1", &c_ip]);
        assert!(!out.status.success(), "{when}: a reached c from a spoofed MAC");
        s.ok(&["exec", "a", "--", "ip", "link", "set", "{iface}", "address", &mac]);
        s.reaches("a", "c");
        s.reaches("c", "a");
    };
    spoof("before a migration");
    // Port security follows the VM: the same on its new hypervisor.
    s.ok(&["migrate", "a", "--to", "hv3", "--trigger", "rarp"]);
    spoof("after a migration");
    s.ok(&["down"]);
}

#[test]
fn embedded_l2_unplug_and_new_hypervisor() {
    let s = session("l2");
    s.up(3, "embedded");
    let st = s.status();
    assert_eq!(st["chassis"], serde_json::json!(["hv1", "hv2", "hv3"]), "{st}");
    // red on hv1, hv2, hv3; blue on hv1 (beside a red VM) and hv3.
    s.vm("a", 1, "red");
    s.vm("b", 2, "red");
    s.vm("c", 3, "red");
    s.vm("x", 1, "blue");
    s.vm("y", 3, "blue");
    assert_eq!(s.vm_field("a", "network"), "red");
    for (from, to) in [("a", "b"), ("b", "a"), ("b", "c"), ("c", "a"), ("x", "y"), ("y", "x")] {
        s.reaches(from, to);
    }
    for (from, to) in [("a", "x"), ("x", "a"), ("a", "y"), ("y", "b"), ("c", "y")] {
        s.blocked(from, to);
    }

    // Unplugging b takes every flow naming its MAC away, on every chassis.
    let mac = s.vm_field("b", "mac");
    let with_mac = |flows: &[(String, String)]| -> Vec<String> {
        flows.iter().filter(|(_, f)| f.contains(&mac)).map(|(h, _)| h.clone()).collect()
    };
    let before = with_mac(&s.flows());
    assert!(before.contains(&"hv2".to_owned()) && before.len() >= 2, "b's MAC {mac} on {before:?}");
    s.ok(&["vm", "rm", "b"]);
    eventually("b's flows to go from every chassis", || with_mac(&s.flows()).is_empty());
    s.reaches("a", "c");

    // A new hypervisor with a VM on red: ARP needs red's flood to reach it and back.
    s.ok(&["hv", "add"]);
    s.vm("d", 4, "red");
    for (from, to) in [("d", "a"), ("a", "d"), ("c", "d")] {
        s.reaches(from, to);
    }
    s.blocked("d", "x");

    s.ok(&["down"]);
    gone(&s.dir);
    s.ok(&["down"]);
}

#[test]
fn etcd_l2_and_controller_kill_loses_nothing() {
    let s = session("etcd");
    s.up(2, "etcd");
    let st = s.status();
    let names: Vec<&str> =
        st["daemons"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["controller-hv1", "controller-hv2", "server", "etcd"], "{st}");
    s.vm("a", 1, "red");
    s.vm("b", 2, "red");
    s.vm("x", 1, "blue");
    s.vm("y", 2, "blue");
    for (from, to) in [("a", "b"), ("b", "a"), ("x", "y"), ("y", "x")] {
        s.reaches(from, to);
    }
    for (from, to) in [("a", "y"), ("x", "b"), ("a", "x")] {
        s.blocked(from, to);
    }

    // kill -9 of hv2's controller while a ping from hv1 to hv2 runs, then a restart: no loss,
    // and the restarted controller leaves the flows as they were.
    let flows_before = s.flows();
    let b_ip = s.vm_field("b", "ip_cidr").split('/').next().unwrap().to_owned();
    let mut ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("{PREFIX}-vm-a"),
            "ping",
            "-n",
            "-i",
            "0.05",
            "-c",
            "120",
            "-W",
            "1",
            &b_ip,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(ping.stdout.take().unwrap()).lines();
    // Wait for the first reply before the kill.
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let reply = line.contains("bytes from");
        seen.push(line);
        if reply {
            break;
        }
    }
    let old = s.pid("controller-hv2");
    assert!(Command::new("kill").args(["-9", &old.to_string()]).status().unwrap().success());
    s.ok(&["controller", "restart", "hv2"]);
    let new = s.pid("controller-hv2");
    assert_ne!(old, new);
    let log = s.dir.join("controller-hv2.log");
    eventually("the restarted controller to connect to its switch", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.matches("OpenFlow connected").count() >= 2)
    });
    seen.extend(lines.map(|l| l.unwrap()));
    assert!(ping.wait().unwrap().success(), "ping failed: {}", seen.join("\n"));
    let summary = seen.iter().find(|l| l.contains("packets transmitted")).expect("ping summary");
    assert!(summary.starts_with("120 packets transmitted, 120 received"), "{summary}");
    eventually("hv2's flows to be what they were", || s.flows() == flows_before);
    s.reaches("b", "a");
}
