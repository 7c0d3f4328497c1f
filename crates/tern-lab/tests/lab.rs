//! Real-OVS lab tests (root, Open vSwitch, iproute2, ethtool). Each test owns a distinct name
//! prefix (`tern-t1`..) and directory (`$TMPDIR/tern-lab-test-tN`), so they run in parallel with
//! each other and with a `tern lab` (prefix `tern`); a crashed earlier run of the same test is
//! cleaned up through its lab.json at the start. Two `cargo test` runs of this file at once clash.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tern_lab::hv::{BR_INT, TUNNEL_PORT};
use tern_lab::probe::ProbeResult;
use tern_lab::{Hypervisor, Lab};

const UDP_HELPER: &str = env!("CARGO_BIN_EXE_tern-lab-udp");
const VNI: &str = "0x64";

/// Takes the lab down when the test ends, also on panic.
struct Guard(PathBuf);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(e) = Lab::down_blocking(&self.0) {
            eprintln!("lab down {}: {e}", self.0.display());
        }
    }
}

async fn fresh_lab(test: &str, hypervisors: usize) -> (Lab, Guard) {
    let dir = std::env::temp_dir().join(format!("tern-lab-test-{test}"));
    Lab::down(&dir).await.expect("removing a previous run's lab");
    let guard = Guard(dir.clone());
    let lab = Lab::create_with_prefix(&dir, &format!("tern-{test}"), hypervisors).await.expect("lab up");
    (lab, guard)
}

fn mac(n: u8) -> String {
    format!("02:00:00:00:01:{n:02x}")
}

fn port_id(n: u8) -> String {
    format!("{n:08x}-0000-4000-8000-0000000000{n:02x}")
}

/// Hand-written flows for one VM on `hv`: its traffic goes to every chassis in `remotes` over
/// the Geneve port (VNI 0x64), and whatever arrives with VNI 0x64 goes to it.
async fn vm_flows(hv: &Hypervisor, tap: &str, remotes: &[Ipv4Addr]) {
    let vif = hv.ofport(tap).await.unwrap();
    let tun = hv.ofport(TUNNEL_PORT).await.unwrap();
    let mut out = format!("set_field:{VNI}->tun_id");
    for r in remotes {
        out.push_str(&format!(",set_field:{r}->tun_dst,output:{tun}"));
    }
    let flows = format!(
        "table=0,priority=100,in_port={vif},actions={out}\n\
         table=0,priority=100,in_port={tun},tun_id={VNI},actions=output:{vif}\n"
    );
    hv.ofctl_stdin(&["-O", "OpenFlow13", "add-flows", &hv.mgmt_sock(), "-"], Some(&flows)).await.unwrap();
}

async fn wait_ping(lab: &Lab, from: &str, to: Ipv4Addr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = lab.ping(from, to, 1, Duration::from_secs(1)).await.unwrap();
        if r.all_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "{from} never reached {to}: {}", r.output);
    }
}

async fn udp_probe(lab: &Lab, from: &str, to: Ipv4Addr, count: u32) -> ProbeResult {
    let target = format!("{to}:7777");
    let out =
        lab.exec_in_vm(from, UDP_HELPER, &["probe", &target, &count.to_string(), "10", "500"]).await.unwrap();
    serde_json::from_str(out.trim()).unwrap()
}

/// Runs a UDP echo inside `on` (killed when the handle drops) and probes it from `from`.
async fn udp_both(lab: &Lab, from: &str, on: &str, on_ip: Ipv4Addr) {
    let _echo = lab
        .vm_command(on, UDP_HELPER)
        .unwrap()
        .args(["echo", "0.0.0.0:7777", "30000"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while udp_probe(lab, from, on_ip, 1).await.received == 0 {
        assert!(Instant::now() < deadline, "UDP from {from} to {on} never echoed");
    }
    let r = udp_probe(lab, from, on_ip, 20).await;
    assert_eq!(r, ProbeResult { sent: 20, received: 20 }, "UDP {from} -> {on}");
}

/// Alive: in /proc and not a zombie (detached daemons are reaped by init, maybe a bit later).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

fn netns_list() -> String {
    let out = std::process::Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn has_netns(list: &str, name: &str) -> bool {
    list.lines().any(|l| l.split_whitespace().next() == Some(name))
}

#[tokio::test]
async fn two_hypervisors_ping_and_udp_with_hand_written_flows() {
    let (mut lab, _guard) = fresh_lab("t1", 2).await;
    let a = lab.add_vm("a", 1, &mac(1), "10.1.0.1/24", &port_id(1)).await.unwrap();
    let b = lab.add_vm("b", 2, &mac(2), "10.1.0.2/24", &port_id(2)).await.unwrap();
    let (hv1, hv2) = (lab.hypervisor(1).unwrap().clone(), lab.hypervisor(2).unwrap().clone());

    // The VIF looks like what os-vif plugs.
    let ids = hv1.vsctl(&["get", "Interface", a.tap(), "external_ids"]).await.unwrap();
    for want in [
        format!("iface-id=\"{}\"", port_id(1)),
        format!("attached-mac=\"{}\"", mac(1)),
        "iface-status=active".into(),
        "vm-uuid=a".into(),
    ] {
        assert!(ids.contains(&want), "{want} missing from {ids}");
    }
    assert_eq!(a.tap(), "tap00000001-00");

    vm_flows(&hv1, a.tap(), &[hv2.tunnel_ip()]).await;
    vm_flows(&hv2, b.tap(), &[hv1.tunnel_ip()]).await;

    wait_ping(&lab, "a", b.ip()).await;
    let r = lab.ping("a", b.ip(), 3, Duration::from_secs(2)).await.unwrap();
    assert!(r.all_ok(), "{r:?}");
    let r = lab.ping("b", a.ip(), 3, Duration::from_secs(2)).await.unwrap();
    assert!(r.all_ok(), "{r:?}");
    // A full-size frame crosses too (the underlay has room for the Geneve header).
    lab.exec_in_vm("a", "ping", &["-c", "1", "-W", "2", "-s", "1472", "-M", "do", "10.1.0.2"]).await.unwrap();

    // UDP needs tx checksum offload off in the VMs.
    udp_both(&lab, "a", "b", b.ip()).await;
    udp_both(&lab, "b", "a", a.ip()).await;

    // Reopening from the directory (another process) sees the same lab.
    let again = Lab::open(lab.dir()).unwrap();
    assert_eq!(again.vms().len(), 2);
    assert!(again.status().healthy(), "{}", again.status());

    lab.remove_vm("a").await.unwrap();
    assert!(!has_netns(&netns_list(), "tern-t1-vm-a"));
    let ports = hv1.vsctl(&["list-ports", BR_INT]).await.unwrap();
    assert!(!ports.contains(a.tap()), "{ports}");
}

#[tokio::test]
async fn down_removes_everything_it_created_and_is_idempotent() {
    let (mut lab, _guard) = fresh_lab("t2", 2).await;
    lab.add_vm("x", 2, &mac(9), "10.2.0.9/24", &port_id(9)).await.unwrap();
    let status = lab.status();
    assert!(status.healthy(), "{status}");
    let mut pids = Vec::new();
    for h in lab.hypervisors() {
        let live = h.live_pids();
        pids.extend([live.ovsdb_server.unwrap(), live.ovs_vswitchd.unwrap()]);
    }
    let names = ["tern-t2-underlay", "tern-t2-hv1", "tern-t2-hv2", "tern-t2-vm-x"];
    let list = netns_list();
    for n in names {
        assert!(has_netns(&list, n), "{n} missing: {list}");
    }

    // Half gone already: a VM namespace deleted by hand, one ovsdb-server crashed.
    assert!(std::process::Command::new("ip")
        .args(["netns", "del", "tern-t2-vm-x"])
        .status()
        .unwrap()
        .success());
    let crashed = pids[0].to_string();
    assert!(std::process::Command::new("kill").args(["-KILL", &crashed]).status().unwrap().success());

    Lab::down(lab.dir()).await.unwrap();
    let list = netns_list();
    for n in names {
        assert!(!has_netns(&list, n), "{n} survived: {list}");
    }
    for pid in pids {
        assert!(!alive(pid), "daemon {pid} survived");
    }
    assert!(!lab.dir().exists());
    Lab::down(lab.dir()).await.unwrap();
    assert!(Lab::open(lab.dir()).is_err());

    // A directory that is not a lab is refused, not wiped.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("keep"), "x").unwrap();
    assert!(Lab::down(other.path()).await.is_err());
    assert!(other.path().join("keep").exists());
}

/// Asks on the underlay bridge (from its own MAC) who has `ip`, and returns the MACs of every
/// ARP reply within a second: a raw-socket script run with python3 in the underlay namespace.
async fn arp_answers(lab: &Lab, ip: Ipv4Addr) -> Vec<String> {
    const WHO_HAS: &str = r#"
import select, socket, struct, sys, time
dev, target = sys.argv[1], socket.inet_aton(sys.argv[2])
mac = bytes.fromhex(open(f"/sys/class/net/{dev}/address").read().strip().replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind((dev, 0))
arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, socket.inet_aton("172.31.0.254"), bytes(6), target)
s.send(b"\xff" * 6 + mac + b"\x08\x06" + arp)
seen, end = set(), time.time() + 1.0
while (left := end - time.time()) > 0 and select.select([s], [], [], left)[0]:
    op, sha, spa = struct.unpack_from("!6xH6s4s", s.recv(2048), 14)
    if op == 2 and spa == target:
        seen.add(sha.hex(":"))
print(" ".join(sorted(seen)))
"#;
    let out = tokio::process::Command::new("ip")
        .args(["netns", "exec", &lab.underlay_netns(), "python3", "-c", WHO_HAS])
        .args([tern_lab::UNDERLAY_BRIDGE, &ip.to_string()])
        .output()
        .await
        .expect("running python3 in the underlay namespace");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect()
}

#[tokio::test]
async fn three_hypervisors_each_with_a_geneve_port_and_one_more_added() {
    let (mut lab, _guard) = fresh_lab("t3", 3).await;
    let hv4 = lab.add_hypervisor().await.unwrap();
    assert_eq!(hv4.tunnel_ip(), Ipv4Addr::new(172, 31, 0, 4));
    assert_eq!(lab.hypervisors().len(), 4);
    for h in lab.hypervisors() {
        assert!(h.is_ready());
        assert!(h.ofport(TUNNEL_PORT).await.unwrap() > 0, "{}", h.name());
        let opts = h.vsctl(&["get", "Interface", TUNNEL_PORT, "options"]).await.unwrap();
        assert!(opts.contains("remote_ip=flow") && opts.contains("key=flow"), "{opts}");
        let br = h
            .vsctl(&["get", "Bridge", BR_INT, "datapath_type", "fail_mode", "protocols", "other_config"])
            .await
            .unwrap();
        assert!(br.contains("netdev") && br.contains("secure") && br.contains("OpenFlow15"), "{br}");
        assert!(br.contains("disable-in-band=\"true\""), "{br}");
        // The management socket answers.
        h.ofctl(&["-O", "OpenFlow13", "dump-flows", &h.mgmt_sock()]).await.unwrap();
        let addr = h.exec("ip", &["-4", "addr", "show", "dev", "br-phy"]).await.unwrap();
        assert!(addr.contains(&format!("{}/24", h.tunnel_ip())), "{addr}");
        // Exactly one answer to ARP for the tunnel IP: br-phy's. A second one, from the underlay
        // veth's MAC, would let a peer's tunnel neighbour cache send Geneve packets to the kernel
        // instead of OVS (a migration benchmark lost one direction for minutes that way).
        let br_phy = h.exec("cat", &["/sys/class/net/br-phy/address"]).await.unwrap();
        assert_eq!(arp_answers(&lab, h.tunnel_ip()).await, [br_phy.trim()], "{}", h.name());
    }
    assert!(lab.status().healthy());

    // A second lab with the same prefix fails on the existing namespace, names the command, and
    // leaves the first lab alone.
    let other = tempfile::tempdir().unwrap();
    let err = Lab::create_with_prefix(&other.path().join("lab"), "tern-t3", 1).await.unwrap_err().to_string();
    assert!(err.contains("ip netns add tern-t3-underlay"), "{err}");
    assert!(!other.path().join("lab").exists());
    let status = lab.status();
    assert!(status.healthy(), "{status}");
    println!("{status}");
}

#[tokio::test]
async fn live_migration_steps_move_a_vm_between_hypervisors() {
    let (mut lab, _guard) = fresh_lab("t4", 3).await;
    let a = lab.add_vm("a", 1, &mac(1), "10.4.0.1/24", &port_id(1)).await.unwrap();
    let b = lab.add_vm("b", 2, &mac(2), "10.4.0.2/24", &port_id(2)).await.unwrap();
    let hv: Vec<Hypervisor> = lab.hypervisors().to_vec();
    // a sends to both hv2 and hv3 (where b is and will be); b's chassis send to hv1.
    vm_flows(&hv[0], a.tap(), &[hv[1].tunnel_ip(), hv[2].tunnel_ip()]).await;
    vm_flows(&hv[1], b.tap(), &[hv[0].tunnel_ip()]).await;
    wait_ping(&lab, "a", b.ip()).await;

    lab.preplug_vm("b", 3).await.unwrap();
    let pre = lab.vm("b").unwrap().preplugged().unwrap().clone();
    assert_eq!((pre.hv, pre.iface.as_str()), (3, "eth1"));
    let ids = hv[2].vsctl(&["get", "Interface", &pre.tap, "external_ids:iface-id"]).await.unwrap();
    assert_eq!(ids.trim().trim_matches('"'), port_id(2));
    vm_flows(&hv[2], &pre.tap, &[hv[0].tunnel_ip()]).await;
    // Count the VM's gratuitous ARP on the destination.
    let vif3 = hv[2].ofport(&pre.tap).await.unwrap();
    let tun3 = hv[2].ofport(TUNNEL_PORT).await.unwrap();
    let garp = format!(
        "table=0,priority=200,in_port={vif3},arp,arp_op=1,arp_spa=10.4.0.2,arp_tpa=10.4.0.2,\
         actions=set_field:{VNI}->tun_id,set_field:{}->tun_dst,output:{tun3}",
        hv[0].tunnel_ip()
    );
    hv[2].ofctl(&["-O", "OpenFlow13", "add-flow", &hv[2].mgmt_sock(), &garp]).await.unwrap();

    lab.switch_vm("b").await.unwrap();
    assert_eq!(lab.vm("b").unwrap().hv(), 3);
    assert_eq!(lab.vm("b").unwrap().iface(), "eth1");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let flows =
            hv[2].ofctl(&["-O", "OpenFlow13", "dump-flows", &hv[2].mgmt_sock(), "arp"]).await.unwrap();
        if flows.lines().any(|l| l.contains("arp_op=1") && !l.contains("n_packets=0")) {
            break;
        }
        assert!(Instant::now() < deadline, "no GARP seen on hv3: {flows}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_ping(&lab, "a", b.ip()).await;
    wait_ping(&lab, "b", a.ip()).await;

    lab.unplug_source("b").await.unwrap();
    let ports = hv[1].vsctl(&["list-ports", BR_INT]).await.unwrap();
    assert!(!ports.contains(b.tap()), "{ports}");
    let links = lab.exec_in_vm("b", "ip", &["-o", "link"]).await.unwrap();
    assert!(!links.contains("eth0"), "{links}");
    let r = lab.ping("a", b.ip(), 3, Duration::from_secs(2)).await.unwrap();
    assert!(r.all_ok(), "{r:?}");
}
