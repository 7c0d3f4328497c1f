//! One lab hypervisor: a network namespace with its own ovsdb-server and ovs-vswitchd (userspace
//! datapath) whose state lives in `DIR/hvN`. Owns bringing one up (daemons, underlay veth, br-phy
//! with the tunnel IP, br-int with the flow-based Geneve port) and the `ovs-*` helpers.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::cmd::{self, output, LabError, Result};

/// The Open_vSwitch schema installed by the openvswitch packages.
pub const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
/// The integration bridge VMs plug into.
pub const BR_INT: &str = "br-int";
/// The bridge holding the underlay veth; its internal interface carries the tunnel IP.
pub const BR_PHY: &str = "br-phy";
/// The one flow-based Geneve port on br-int (`remote_ip=flow`, `key=flow`, `local_ip` = the tunnel
/// IP): the same name and options the controller ensures, so the two never make a second port.
pub const TUNNEL_PORT: &str = "tern-geneve";
/// The provider bridge toward the external network (the controllers' bridge mapping
/// `physnet1:br-ex`); standalone, it switches like a learning bridge.
pub const BR_EX: &str = "br-ex";
/// The external veth's name inside each hypervisor namespace (on br-ex).
pub const EXTERNAL_IFACE: &str = "ext0";
/// The underlay veth's name inside each hypervisor namespace.
pub const UNDERLAY_IFACE: &str = "phy0";
/// The underlay subnet: hypervisor N has tunnel IP 172.31.0.N/24.
pub const UNDERLAY_PREFIX_LEN: u8 = 24;
/// MTU of the underlay links, large enough for Geneve-encapsulated 1500-byte VM frames.
pub const UNDERLAY_MTU: u32 = 9000;

/// The pids the daemons' pidfiles hold (whether or not those processes are still alive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DaemonPids {
    pub ovsdb_server: Option<u32>,
    pub ovs_vswitchd: Option<u32>,
}

/// A hypervisor of the lab, as recorded in `lab.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hypervisor {
    pub(crate) index: u32,
    pub(crate) name: String,
    pub(crate) netns: String,
    pub(crate) tunnel_ip: Ipv4Addr,
    pub(crate) run_dir: PathBuf,
    /// Set once every step of bringing it up succeeded.
    pub(crate) ready: bool,
}

impl Hypervisor {
    pub(crate) fn new(index: u32, prefix: &str, lab_dir: &Path) -> Self {
        let name = format!("hv{index}");
        Hypervisor {
            index,
            netns: format!("{prefix}-{name}"),
            tunnel_ip: Ipv4Addr::new(172, 31, 0, index as u8),
            run_dir: lab_dir.join(&name),
            name,
            ready: false,
        }
    }

    /// `hvN` (also its OVS `external_ids:system-id`; a natural chassis name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// N, from 1.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The network namespace: `<prefix>-hvN`.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The tunnel (underlay) IP, 172.31.0.N, on br-phy's internal interface.
    pub fn tunnel_ip(&self) -> Ipv4Addr {
        self.tunnel_ip
    }

    /// `DIR/hvN`: conf.db, sockets, pidfiles, logs.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// True once the hypervisor was fully brought up.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// The OVSDB target: `unix:DIR/hvN/db.sock`.
    pub fn db_sock(&self) -> String {
        format!("unix:{}", self.run_dir.join("db.sock").display())
    }

    /// br-int's OpenFlow management socket target: `unix:DIR/hvN/br-int.mgmt`.
    pub fn mgmt_sock(&self) -> String {
        format!("unix:{}", self.mgmt_path(BR_INT).display())
    }

    /// The management socket path of any bridge: `DIR/hvN/<bridge>.mgmt`.
    pub fn mgmt_path(&self, bridge: &str) -> PathBuf {
        self.run_dir.join(format!("{bridge}.mgmt"))
    }

    pub(crate) fn ovsdb_pidfile(&self) -> PathBuf {
        self.run_dir.join("ovsdb.pid")
    }

    pub(crate) fn vswitchd_pidfile(&self) -> PathBuf {
        self.run_dir.join("vsd.pid")
    }

    /// The pids in the pidfiles.
    pub fn pids(&self) -> DaemonPids {
        DaemonPids {
            ovsdb_server: cmd::read_pidfile(&self.ovsdb_pidfile()),
            ovs_vswitchd: cmd::read_pidfile(&self.vswitchd_pidfile()),
        }
    }

    /// Pids of this hypervisor's daemons that are alive (and really ours).
    pub fn live_pids(&self) -> DaemonPids {
        let live = |f: PathBuf| cmd::read_pidfile(&f).filter(|p| cmd::is_daemon_of(*p, &f));
        DaemonPids { ovsdb_server: live(self.ovsdb_pidfile()), ovs_vswitchd: live(self.vswitchd_pidfile()) }
    }

    fn env(&self, c: &mut Command) {
        c.env("OVS_RUNDIR", &self.run_dir).env("OVS_LOGDIR", &self.run_dir).env("OVS_DBDIR", &self.run_dir);
    }

    /// Runs `ovs-vsctl --db=unix:DIR/hvN/db.sock --timeout=30 ARGS`; returns its stdout.
    pub async fn vsctl(&self, args: &[&str]) -> Result<String> {
        let mut c = Command::new("ovs-vsctl");
        self.env(&mut c);
        c.arg(format!("--db={}", self.db_sock())).arg("--timeout=30").args(args);
        output(&mut c).await
    }

    /// Runs `ovs-ofctl --timeout=30 ARGS` with `OVS_RUNDIR=DIR/hvN`; returns its stdout.
    /// Address br-int as [`Hypervisor::mgmt_sock`].
    pub async fn ofctl(&self, args: &[&str]) -> Result<String> {
        self.ofctl_stdin(args, None).await
    }

    /// [`Hypervisor::ofctl`] feeding `stdin` (for `add-flows TARGET -`, `replace-flows`, ...).
    pub async fn ofctl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let mut c = Command::new("ovs-ofctl");
        self.env(&mut c);
        c.arg("--timeout=30").args(args);
        cmd::output_with_stdin(&mut c, stdin.map(str::as_bytes)).await
    }

    /// Runs `ovs-appctl -t DIR/hvN/ovs-vswitchd.<pid>.ctl ARGS` (e.g. `ofproto/trace`,
    /// `dpctl/dump-conntrack`); returns its stdout.
    pub async fn appctl(&self, args: &[&str]) -> Result<String> {
        let pid = self
            .pids()
            .ovs_vswitchd
            .ok_or_else(|| LabError::Invalid(format!("{}: ovs-vswitchd has no pidfile", self.name)))?;
        let mut c = Command::new("ovs-appctl");
        self.env(&mut c);
        c.arg("--timeout=30").arg("-t").arg(self.run_dir.join(format!("ovs-vswitchd.{pid}.ctl"))).args(args);
        output(&mut c).await
    }

    /// Runs `ip netns exec <hv netns> PROGRAM ARGS`; returns its stdout.
    pub async fn exec(&self, program: &str, args: &[&str]) -> Result<String> {
        output(cmd::in_netns(Some(&self.netns), program).args(args)).await
    }

    /// The OpenFlow port number of interface `iface` on this hypervisor, waiting (up to 30 s)
    /// until ovs-vswitchd has assigned one.
    pub async fn ofport(&self, iface: &str) -> Result<u32> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.vsctl(&["--if-exists", "get", "Interface", iface, "ofport"]).await?;
            // "[]" before vswitchd has seen it, "-1" when it failed to open it.
            if let Ok(n) = out.trim().parse::<i64>() {
                if n > 0 {
                    return Ok(n as u32);
                }
            }
            if Instant::now() > deadline {
                let error = self
                    .vsctl(&["--if-exists", "get", "Interface", iface, "error"])
                    .await
                    .unwrap_or_default();
                return Err(LabError::Timeout(format!(
                    "{}: interface {iface} has no ofport (ofport {}, error {})",
                    self.name,
                    out.trim(),
                    error.trim()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn daemon(&self, program: &str) -> Command {
        let mut c = cmd::in_netns(Some(&self.netns), program);
        self.env(&mut c);
        c
    }

    /// `ovsdb-tool create`: the database file, before the namespace exists.
    pub(crate) async fn create_db(&self) -> Result<()> {
        std::fs::create_dir_all(&self.run_dir)
            .map_err(cmd::io_err(format!("creating {}", self.run_dir.display())))?;
        let db = self.run_dir.join("conf.db");
        if db.exists() {
            // Left by an earlier attempt that failed before recording the namespace.
            std::fs::remove_file(&db).map_err(cmd::io_err(format!("removing {}", db.display())))?;
        }
        output(Command::new("ovsdb-tool").arg("create").arg(&db).arg(SCHEMA)).await?;
        Ok(())
    }

    /// Starts ovsdb-server and ovs-vswitchd in the (existing) namespace.
    pub(crate) async fn start_daemons(&self) -> Result<()> {
        let d = &self.run_dir;
        let ovsdb_log = d.join("ovsdb.log");
        let mut c = self.daemon("ovsdb-server");
        c.arg(d.join("conf.db"))
            .arg(format!("--remote=punix:{}", d.join("db.sock").display()))
            .arg(format!("--pidfile={}", self.ovsdb_pidfile().display()))
            .arg("--detach")
            .arg(format!("--log-file={}", ovsdb_log.display()));
        cmd::run_daemon(&mut c, &d.join("ovsdb-server.stderr"), &ovsdb_log).await?;
        self.vsctl(&["--no-wait", "init"]).await?;
        self.vsctl(&[
            "--no-wait",
            "set",
            "Open_vSwitch",
            ".",
            &format!("external_ids:system-id={}", self.name),
            &format!("external_ids:hostname={}", self.name),
        ])
        .await?;
        let vsd_log = d.join("vsd.log");
        let mut c = self.daemon("ovs-vswitchd");
        c.arg(self.db_sock())
            .arg(format!("--pidfile={}", self.vswitchd_pidfile().display()))
            .arg("--detach")
            .arg(format!("--log-file={}", vsd_log.display()));
        cmd::run_daemon(&mut c, &d.join("ovs-vswitchd.stderr"), &vsd_log).await
    }

    /// br-phy (with the underlay veth, already moved into the namespace, and the tunnel IP) and
    /// br-int (secure, OpenFlow 1.3-1.5, no in-band) with the flow-based Geneve port.
    pub(crate) async fn setup_bridges(&self) -> Result<()> {
        let ns = Some(self.netns.as_str());
        output(cmd::in_netns(ns, "ip").args(["link", "set", UNDERLAY_IFACE, "up"])).await?;
        self.vsctl(&[
            "--may-exist",
            "add-br",
            BR_PHY,
            "--",
            "set",
            "bridge",
            BR_PHY,
            "datapath_type=netdev",
            "--",
            "--may-exist",
            "add-port",
            BR_PHY,
            UNDERLAY_IFACE,
        ])
        .await?;
        let cidr = format!("{}/{UNDERLAY_PREFIX_LEN}", self.tunnel_ip);
        output(cmd::in_netns(ns, "ip").args(["addr", "replace", &cidr, "dev", BR_PHY])).await?;
        output(cmd::in_netns(ns, "ip").args(["link", "set", BR_PHY, "up"])).await?;
        let local_ip = format!("options:local_ip={}", self.tunnel_ip);
        self.vsctl(&[
            "--may-exist",
            "add-br",
            BR_INT,
            "--",
            "set",
            "bridge",
            BR_INT,
            "datapath_type=netdev",
            "fail_mode=secure",
            "protocols=OpenFlow13,OpenFlow14,OpenFlow15",
            "other_config:disable-in-band=true",
            "--",
            "--may-exist",
            "add-port",
            BR_INT,
            TUNNEL_PORT,
            "--",
            "set",
            "interface",
            TUNNEL_PORT,
            "type=geneve",
            "options:remote_ip=flow",
            "options:key=flow",
            &local_ip,
        ])
        .await?;
        self.ofport(TUNNEL_PORT).await?;
        Ok(())
    }

    /// br-ex (userspace, standalone) with the external veth, already moved into the namespace.
    /// The controller patches it to br-int.
    pub(crate) async fn setup_external(&self) -> Result<()> {
        let ns = Some(self.netns.as_str());
        output(cmd::in_netns(ns, "ip").args(["link", "set", EXTERNAL_IFACE, "up"])).await?;
        self.vsctl(&[
            "--may-exist",
            "add-br",
            BR_EX,
            "--",
            "set",
            "bridge",
            BR_EX,
            "datapath_type=netdev",
            "--",
            "--may-exist",
            "add-port",
            BR_EX,
            EXTERNAL_IFACE,
        ])
        .await?;
        Ok(())
    }
}
