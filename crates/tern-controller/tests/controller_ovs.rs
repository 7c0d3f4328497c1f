//! The local controller against real OVS (two hypervisors, each its own OVS in its own namespace)
//! and one NB: it sets up br-int, follows VIFs, reports port status, programs the L2 flows on both
//! chassis, and a restarted controller converges from the installed flows with an empty diff.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tern_controller::agent::{self, ControllerConfig, Reconciled};
use tern_model::{Kind, Object, Status};
use tern_ovsdb::testing::OvsSandbox;
use tern_store::nb::Nb;
use tern_store::LocalStore;
use tokio::sync::{mpsc, oneshot};

const PATIENCE: Duration = Duration::from_secs(60);

/// One scenario at a time: each starts several OVS instances and controllers, and a 2-core machine
/// running them all at once turns waits into timeouts.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Hv {
    sbx: OvsSandbox,
    config: ControllerConfig,
}

fn hypervisor(name: &str, ip: &str) -> Hv {
    let sbx = OvsSandbox::start_isolated().expect("start OVS");
    let ovsdb = sbx.db_sock();
    let openflow = ControllerConfig::default_openflow(&ovsdb, "br-int").unwrap();
    let config = ControllerConfig {
        datapath_type: "netdev".into(),
        ..ControllerConfig::new(name, ip.parse().unwrap(), ovsdb, openflow)
    };
    Hv { sbx, config }
}

struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    reports: mpsc::UnboundedReceiver<Reconciled>,
}

fn start(hv: &Hv, nb: &Nb) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let (tx, reports) = mpsc::unbounded_channel();
    let task = tokio::spawn(agent::run(hv.config.clone(), nb.clone(), Some(tx), async {
        let _ = stopped.await;
    }));
    Running { stop, task, reports }
}

fn flows(hv: &Hv) -> String {
    let target = hv.config.openflow.clone();
    hv.sbx.ofctl(&["-O", "OpenFlow13", "dump-flows", &target, "--no-stats"]).unwrap_or_default()
}

/// Polls `check` until it holds, failing with `what` after PATIENCE.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn port_key(nb: &Nb, id: &str) -> u32 {
    nb.fetch(Kind::Port, id).await.unwrap().object.unique_key().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_chassis_get_the_l2_flows_and_a_restart_changes_nothing() {
    let _serial = SERIAL.lock().await;
    let nb = Nb::new(Arc::new(LocalStore::memory().unwrap()));
    let hv1 = hypervisor("hv1", "172.31.0.1");
    let hv2 = hypervisor("hv2", "172.31.0.2");
    let c1 = start(&hv1, &nb);
    let c2 = start(&hv2, &nb);

    let net = nb.put_json(Kind::Network, r#"{"name":"n"}"#).await.unwrap().object.id().to_owned();
    let sub = nb
        .put_json(Kind::Subnet, &format!(r#"{{"network_id":"{net}","ip_version":4,"cidr":"10.0.0.0/24"}}"#))
        .await
        .unwrap()
        .object
        .id()
        .to_owned();
    let port = |host: &str| {
        format!(
            r#"{{"network_id":"{net}","fixed_ips":[{{"subnet_id":"{sub}"}}],"binding:host_id":"{host}"}}"#
        )
    };
    let p1 = nb.put_json(Kind::Port, &port("hv1")).await.unwrap().object.id().to_owned();
    let p2 = nb.put_json(Kind::Port, &port("hv2")).await.unwrap().object.id().to_owned();

    // The controllers create br-int; plug one VIF on each, as os-vif does.
    for (hv, p, name) in [(&hv1, &p1, "vif1"), (&hv2, &p2, "vif2")] {
        eventually("br-int", || hv.sbx.vsctl(&["br-exists", "br-int"]).is_ok()).await;
        hv.sbx
            .vsctl(&[
                "add-port",
                "br-int",
                name,
                "--",
                "set",
                "interface",
                name,
                "type=internal",
                &format!("external_ids:iface-id={p}"),
            ])
            .unwrap();
    }
    let (k1, k2) = (port_key(&nb, &p1).await, port_key(&nb, &p2).await);

    // hv2 sends traffic for p1 through the tunnel to hv1, and delivers p2 locally; and vice versa.
    eventually("hv2's dispatch flow for p1", || {
        flows(&hv2)
            .lines()
            .any(|l| l.contains(&format!("reg7={k1:#x} ")) && l.contains("172.31.0.1->tun_dst"))
    })
    .await;
    eventually("hv1's dispatch flow for p2", || {
        flows(&hv1)
            .lines()
            .any(|l| l.contains(&format!("reg7={k2:#x} ")) && l.contains("172.31.0.2->tun_dst"))
    })
    .await;
    eventually("hv1's output flow to vif1", || {
        flows(&hv1).lines().any(|l| l.contains("table=70") && l.contains(&format!("reg7={k1:#x} ")))
    })
    .await;
    // Port status follows the VIFs.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let s1 = nb.fetch(Kind::Port, &p1).await.unwrap().object;
        if matches!(&s1, Object::Port(p) if p.status == Status::Active) {
            break;
        }
        assert!(Instant::now() < deadline, "p1 never became ACTIVE");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Restart hv1's controller: it reads the flows back and has nothing to change.
    let before = flows(&hv1);
    let _ = c1.stop.send(());
    c1.task.await.unwrap().unwrap();
    let mut c1 = start(&hv1, &nb);
    let first = tokio::time::timeout(PATIENCE, c1.reports.recv()).await.expect("a reconciliation").unwrap();
    assert_eq!(first.changes, 0, "the restarted controller's diff is empty");
    assert_eq!(flows(&hv1), before);

    // Unplugging p2's VIF takes its output flow away on hv2.
    hv2.sbx.vsctl(&["del-port", "br-int", "vif2"]).unwrap();
    eventually("hv2 drops its output flow for p2", || {
        !flows(&hv2).lines().any(|l| l.contains("table=70") && l.contains(&format!("reg7={k2:#x} ")))
    })
    .await;
    drop(c2);
}

/// Polls liveness until it equals `want`; returns how long it took.
async fn until_alive_is(nb: &Nb, chassis: &str, want: bool) -> Duration {
    let start = Instant::now();
    loop {
        if tern_store::liveness::is_alive(nb.store().as_ref(), chassis).await.unwrap() == want {
            return start.elapsed();
        }
        assert!(start.elapsed() < PATIENCE, "{chassis} never became alive={want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_controller_shows_down_and_alive_again_after_restart() {
    let _serial = SERIAL.lock().await;
    let nb = Nb::new(Arc::new(LocalStore::memory().unwrap()));
    let mut hv = hypervisor("hv1", "172.31.0.1");
    hv.config.report_interval = Duration::from_millis(200);
    hv.config.down_time = Duration::from_secs(1);
    let c = start(&hv, &nb);
    until_alive_is(&nb, "hv1", true).await;
    let beat = tern_store::liveness::alive(nb.store().as_ref()).await.unwrap();
    assert_eq!(beat["hv1"].down_time_ms, 1000);
    // The controller dies (its heartbeats stop): the chassis shows down once the lease runs out.
    let _ = c.stop.send(());
    c.task.await.unwrap().unwrap();
    let down_after = until_alive_is(&nb, "hv1", false).await;
    let c = start(&hv, &nb);
    let up_after = until_alive_is(&nb, "hv1", true).await;
    eprintln!("down after {down_after:?} (down_time 1s), alive again {up_after:?} after restart");
    let _ = c.stop.send(());
}

fn plug(hv: &Hv, name: &str, port: &str) {
    hv.sbx
        .vsctl(&[
            "add-port",
            "br-int",
            name,
            "--",
            "set",
            "interface",
            name,
            "type=internal",
            &format!("external_ids:iface-id={port}"),
        ])
        .unwrap();
}

async fn migration_state(nb: &Nb, port: &str) -> Option<tern_model::MigrationState> {
    match nb.get(Kind::Migration, port).await.unwrap().map(|s| s.object) {
        Some(Object::Migration(m)) => Some(m.state),
        _ => None,
    }
}

async fn until_state(nb: &Nb, port: &str, want: Option<tern_model::MigrationState>) {
    let deadline = Instant::now() + PATIENCE;
    while migration_state(nb, port).await != want {
        assert!(Instant::now() < deadline, "migration of {port} never reached {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The tunnel destinations hv's dispatch flow for port key `key` sends to.
fn dispatch_targets(hv: &Hv, key: u32) -> Vec<String> {
    let flows = flows(hv);
    let Some(line) = flows.lines().find(|l| l.contains("table=50") && l.contains(&format!("reg7={key:#x} ")))
    else {
        return vec![];
    };
    let mut targets: Vec<String> = line
        .split("set_field:")
        .filter_map(|p| p.split_once("->tun_dst").map(|(ip, _)| ip.to_owned()))
        .collect();
    targets.sort();
    targets
}

async fn until_targets(hv: &Hv, key: u32, want: &[&str]) {
    let deadline = Instant::now() + PATIENCE;
    while dispatch_targets(hv, key) != want {
        assert!(
            Instant::now() < deadline,
            "bystander never sent port {key} to {want:?}: {:?}",
            dispatch_targets(hv, key)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_dual_delivery_activation_by_unplug_completion_and_abort() {
    let _serial = SERIAL.lock().await;
    let nb = Nb::new(Arc::new(LocalStore::memory().unwrap()));
    let hvs =
        [hypervisor("hv1", "172.31.0.1"), hypervisor("hv2", "172.31.0.2"), hypervisor("hv3", "172.31.0.3")];
    let _running: Vec<Running> = hvs.iter().map(|hv| start(hv, &nb)).collect();
    let net = nb.put_json(Kind::Network, r#"{"name":"n"}"#).await.unwrap().object.id().to_owned();
    let port = |host: &str| format!(r#"{{"network_id":"{net}","binding:host_id":"{host}"}}"#);
    let vm = nb.put_json(Kind::Port, &port("hv1")).await.unwrap().object;
    let (p, key) = (vm.id().to_owned(), vm.unique_key().unwrap());
    let peer = nb.put_json(Kind::Port, &port("hv3")).await.unwrap().object.id().to_owned();
    for (hv, running) in hvs.iter().zip(&_running) {
        eventually(&format!("br-int on {}", hv.config.chassis), || {
            assert!(!running.task.is_finished(), "the controller of {} stopped", hv.config.chassis);
            hv.sbx.vsctl(&["br-exists", "br-int"]).is_ok()
        })
        .await;
    }
    plug(&hvs[0], "vm-src", &p);
    plug(&hvs[2], "peer", &peer);
    let bystander = &hvs[2];
    until_targets(bystander, key, &["172.31.0.1"]).await;

    // Nova plugs the destination: dual delivery on the bystander.
    plug(&hvs[1], "vm-dst", &p);
    until_state(&nb, &p, Some(tern_model::MigrationState::DestPlugged)).await;
    until_targets(bystander, key, &["172.31.0.1", "172.31.0.2"]).await;
    // The VM stops on the source and its VIF goes: activated, traffic to the destination only.
    hvs[0].sbx.vsctl(&["del-port", "br-int", "vm-src"]).unwrap();
    until_state(&nb, &p, Some(tern_model::MigrationState::Activated)).await;
    until_targets(bystander, key, &["172.31.0.2"]).await;
    // Nova updates the binding: the record goes, traffic stays on the destination.
    let Object::Port(mut moved) = nb.fetch(Kind::Port, &p).await.unwrap().object else { unreachable!() };
    moved.binding_host_id = "hv2".into();
    moved.revision_number = 0;
    nb.put(Object::Port(moved)).await.unwrap();
    until_state(&nb, &p, None).await;
    until_targets(bystander, key, &["172.31.0.2"]).await;

    // A migration back that is aborted: the destination (hv1) VIF goes before activation.
    plug(&hvs[0], "vm-back", &p);
    until_state(&nb, &p, Some(tern_model::MigrationState::DestPlugged)).await;
    until_targets(bystander, key, &["172.31.0.1", "172.31.0.2"]).await;
    hvs[0].sbx.vsctl(&["del-port", "br-int", "vm-back"]).unwrap();
    until_state(&nb, &p, None).await;
    until_targets(bystander, key, &["172.31.0.2"]).await;
}

/// A RARP announcement from `mac`, as QEMU sends after a migration, in hex.
fn rarp_hex(mac: &str) -> String {
    let m: String = mac.split(':').collect();
    format!("ffffffffffff{m}8035000108000604000{n}{m}00000000{m}00000000", n = 3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_activated_by_the_vms_first_packet_on_the_destination() {
    let _serial = SERIAL.lock().await;
    let nb = Nb::new(Arc::new(LocalStore::memory().unwrap()));
    let hvs =
        [hypervisor("hv1", "172.31.0.1"), hypervisor("hv2", "172.31.0.2"), hypervisor("hv3", "172.31.0.3")];
    let running: Vec<Running> = hvs.iter().map(|hv| start(hv, &nb)).collect();
    let net = nb.put_json(Kind::Network, r#"{"name":"n"}"#).await.unwrap().object.id().to_owned();
    let port = |host: &str| format!(r#"{{"network_id":"{net}","binding:host_id":"{host}"}}"#);
    let vm = nb.put_json(Kind::Port, &port("hv1")).await.unwrap().object;
    let (p, key) = (vm.id().to_owned(), vm.unique_key().unwrap());
    let Object::Port(vm) = vm else { unreachable!() };
    let peer = nb.put_json(Kind::Port, &port("hv3")).await.unwrap().object.id().to_owned();
    for (hv, running) in hvs.iter().zip(&running) {
        eventually(&format!("br-int on {}", hv.config.chassis), || {
            assert!(!running.task.is_finished(), "the controller of {} stopped", hv.config.chassis);
            hv.sbx.vsctl(&["br-exists", "br-int"]).is_ok()
        })
        .await;
    }
    plug(&hvs[0], "vm-src", &p);
    plug(&hvs[2], "peer", &peer);
    let (dst, bystander) = (&hvs[1], &hvs[2]);
    until_targets(bystander, key, &["172.31.0.1"]).await;

    // The destination is plugged: dual delivery, and the destination watches the VIF.
    plug(dst, "vm-dst", &p);
    until_state(&nb, &p, Some(tern_model::MigrationState::DestPlugged)).await;
    until_targets(bystander, key, &["172.31.0.1", "172.31.0.2"]).await;
    let ofport = dst.sbx.vsctl(&["get", "interface", "vm-dst", "ofport"]).unwrap().trim().to_owned();
    let userdata = format!("controller(userdata=00.00.{:02x}.{:02x}", key >> 8 & 0xff, key & 0xff);
    eventually("the destination's copy-to-controller flow", || {
        flows(dst).lines().any(|l| l.contains(&format!("in_port={ofport} ")) && l.contains(&userdata))
    })
    .await;

    // The VM resumes on the destination and announces itself: one RARP from its VIF.
    let packet = format!("in_port={ofport} packet={} actions=table", rarp_hex(&vm.mac_address));
    dst.sbx.ofctl(&["-O", "OpenFlow13", "packet-out", &dst.config.openflow, &packet]).unwrap();
    until_state(&nb, &p, Some(tern_model::MigrationState::Activated)).await;
    let Some(Object::Migration(m)) = nb.get(Kind::Migration, &p).await.unwrap().map(|s| s.object) else {
        unreachable!()
    };
    assert_eq!(m.activated_by, Some(tern_model::ActivationSource::Rarp));
    assert!(m.timestamps.activated_at_ns >= m.timestamps.dest_plugged_at_ns);
    assert!(m.timestamps.activated_at_ns.is_some());
    until_targets(bystander, key, &["172.31.0.2"]).await;
    // Activated: the destination stops copying the VIF's packets to the controller.
    eventually("the copy-to-controller flow goes", || !flows(dst).contains("controller(userdata=")).await;
    // The source unplug that follows changes nothing more.
    hvs[0].sbx.vsctl(&["del-port", "br-int", "vm-src"]).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let Some(Object::Migration(after)) = nb.get(Kind::Migration, &p).await.unwrap().map(|s| s.object) else {
        unreachable!()
    };
    assert_eq!(after.activated_by, Some(tern_model::ActivationSource::Rarp));
    assert_eq!(dispatch_targets(bystander, key), ["172.31.0.2"]);
}
