//! tern's physical test bed (LAB.md): real OVS hypervisors and VMs as network namespaces on one
//! Linux machine. [`Lab`] builds it, records every namespace it creates in `DIR/lab.json` as soon
//! as it exists, and [`Lab::down`] removes exactly that (daemons by their pidfiles) and nothing else.
//!
//! Names: the underlay namespace is `<prefix>-underlay`, the external network's host is
//! `<prefix>-ext`, hypervisor N is `<prefix>-hvN`, VM NAME is `<prefix>-vm-NAME`; the prefix is `tern` for `tern lab`. Labs with different prefixes (and
//! directories) coexist, which is how the tests run in parallel (`tern-t1`, `tern-t2`, ...).
//!
//! Everything but [`Lab::down_blocking`] and [`Lab::status`] is async (tokio processes): the lab
//! shares its runtime with controllers.

mod cmd;
pub mod hv;
pub mod probe;
mod status;
pub mod stream;
pub mod vm;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::process::Command;

pub use cmd::{LabError, Result};
pub use hv::{DaemonPids, Hypervisor};
pub use status::{HvStatus, LabStatus, VmStatus};
pub use vm::{tap_name, PingResult, Plug, SwitchOptions, Switched, Vm};

use cmd::{io_err, output};

/// The prefix `tern lab` uses.
pub const DEFAULT_PREFIX: &str = "tern";
/// The state file inside the lab directory.
pub const STATE_FILE: &str = "lab.json";
/// The Linux bridge joining the hypervisors inside the underlay namespace.
pub const UNDERLAY_BRIDGE: &str = "br0";
/// The Linux bridge of the external (provider) network inside the external namespace: a veth from
/// each hypervisor's br-ex joins it, and it carries the external host's address.
pub const EXTERNAL_BRIDGE: &str = "br0";
/// The external network's subnet.
pub const EXTERNAL_CIDR: &str = "172.24.4.0/24";
/// The external host's address (the external subnet's gateway).
pub const EXTERNAL_GATEWAY: std::net::Ipv4Addr = std::net::Ipv4Addr::new(172, 24, 4, 1);
/// The physical network the hypervisors' br-ex reach (their controllers' bridge mapping).
pub const PHYSNET: &str = "physnet1";

/// Longest lab directory path: OVS's unix sockets (`DIR/hvNNN/ovs-vswitchd.PID.ctl`) must fit
/// in `sun_path` (108 bytes).
const MAX_DIR_LEN: usize = 70;

/// What `lab.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LabState {
    pub(crate) version: u32,
    pub(crate) prefix: String,
    /// The underlay namespace, once created.
    pub(crate) underlay: Option<String>,
    /// The external network's namespace, once created.
    #[serde(default)]
    pub(crate) external: Option<String>,
    /// Every hypervisor whose namespace was created (ready or not).
    pub(crate) hypervisors: Vec<Hypervisor>,
    /// Every VM whose namespace was created.
    pub(crate) vms: Vec<Vm>,
}

/// A lab: its directory and what `lab.json` records. Cheap to reopen from another process with
/// [`Lab::open`]; one process at a time should change a lab.
#[derive(Debug, Clone)]
pub struct Lab {
    dir: PathBuf,
    pub(crate) state: LabState,
}

impl Lab {
    /// Creates a lab with prefix [`DEFAULT_PREFIX`] and `hypervisors` hypervisors in `dir` (which
    /// must be absent or empty). If a step fails, what was created is removed again.
    pub async fn create(dir: &Path, hypervisors: usize) -> Result<Lab> {
        Self::create_with_prefix(dir, DEFAULT_PREFIX, hypervisors).await
    }

    /// [`Lab::create`] with another name prefix (lowercase letters, digits, `-`; up to 20).
    pub async fn create_with_prefix(dir: &Path, prefix: &str, hypervisors: usize) -> Result<Lab> {
        if prefix.is_empty()
            || prefix.len() > 20
            || !prefix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(LabError::Invalid(format!("bad lab prefix {prefix:?}")));
        }
        if dir.join(STATE_FILE).exists() {
            return Err(LabError::Invalid(format!(
                "a lab already exists in {} (take it down first)",
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let dir = dir.canonicalize().map_err(io_err(format!("resolving {}", dir.display())))?;
        let mut entries = std::fs::read_dir(&dir).map_err(io_err(format!("reading {}", dir.display())))?;
        if entries.next().is_some() {
            return Err(LabError::Invalid(format!("lab directory {} is not empty", dir.display())));
        }
        if dir.as_os_str().len() > MAX_DIR_LEN {
            return Err(LabError::Invalid(format!(
                "lab directory {} is too long for OVS's unix sockets (max {MAX_DIR_LEN} bytes)",
                dir.display()
            )));
        }
        let mut lab = Lab {
            dir: dir.clone(),
            state: LabState {
                version: 1,
                prefix: prefix.into(),
                underlay: None,
                external: None,
                hypervisors: Vec::new(),
                vms: Vec::new(),
            },
        };
        lab.save()?;
        let res = async {
            lab.create_underlay().await?;
            lab.create_external().await?;
            for _ in 0..hypervisors {
                lab.add_hypervisor().await?;
            }
            Ok::<_, LabError>(())
        }
        .await;
        match res {
            Ok(()) => Ok(lab),
            Err(e) => {
                if let Err(cleanup) = Self::down(&dir).await {
                    tracing::warn!(dir = %dir.display(), error = %cleanup, "removing a half-created lab failed");
                }
                Err(e)
            }
        }
    }

    /// Opens the lab recorded in `dir/lab.json`.
    pub fn open(dir: &Path) -> Result<Lab> {
        let dir = dir.canonicalize().map_err(io_err(format!("no lab directory {}", dir.display())))?;
        let state = read_state(&dir)?;
        Ok(Lab { dir, state })
    }

    /// The lab directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The name prefix.
    pub fn prefix(&self) -> &str {
        &self.state.prefix
    }

    /// The underlay namespace: `<prefix>-underlay`.
    pub fn underlay_netns(&self) -> String {
        format!("{}-underlay", self.state.prefix)
    }

    /// The external network's namespace: `<prefix>-ext`.
    pub fn external_netns(&self) -> String {
        format!("{}-ext", self.state.prefix)
    }

    /// The external namespace, if this lab has one.
    pub(crate) fn external_netns_checked(&self) -> Result<String> {
        self.state
            .external
            .clone()
            .ok_or_else(|| LabError::Invalid("this lab has no external network".into()))
    }

    /// Runs `PROGRAM ARGS` inside the external namespace (the host on the external network);
    /// returns its stdout.
    pub async fn exec_in_external(&self, program: &str, args: &[&str]) -> Result<String> {
        let ns = self.external_netns_checked()?;
        output(cmd::in_netns(Some(&ns), program).args(args)).await
    }

    /// `ip netns exec <external netns> PROGRAM`, for the caller to add arguments and spawn.
    pub fn external_command(&self, program: &str) -> Result<Command> {
        Ok(cmd::in_netns(Some(&self.external_netns_checked()?), program))
    }

    /// Every hypervisor recorded (see [`Hypervisor::is_ready`]).
    pub fn hypervisors(&self) -> &[Hypervisor] {
        &self.state.hypervisors
    }

    /// Hypervisor N (from 1).
    pub fn hypervisor(&self, index: u32) -> Option<&Hypervisor> {
        self.state.hypervisors.iter().find(|h| h.index == index)
    }

    pub(crate) fn save(&self) -> Result<()> {
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        let json = serde_json::to_vec_pretty(&self.state).expect("lab state serializes");
        std::fs::write(&tmp, json).map_err(io_err(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(io_err(format!("writing {}", path.display())))
    }

    async fn create_underlay(&mut self) -> Result<()> {
        let ns = self.underlay_netns();
        self.create_bridge_netns(&ns, UNDERLAY_BRIDGE, |s, ns| s.underlay = Some(ns)).await
    }

    /// Namespace `ns`, recorded (by `record`) and saved as soon as it exists, with its loopback up
    /// and a Linux bridge `bridge` (no STP, no forward delay), up.
    async fn create_bridge_netns(
        &mut self,
        ns: &str,
        bridge: &str,
        record: fn(&mut LabState, String),
    ) -> Result<()> {
        output(Command::new("ip").args(["netns", "add", ns])).await?;
        record(&mut self.state, ns.to_owned());
        self.save()?;
        output(Command::new("ip").args(["-n", ns, "link", "set", "lo", "up"])).await?;
        output(Command::new("ip").args([
            "-n",
            ns,
            "link",
            "add",
            bridge,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ]))
        .await?;
        output(Command::new("ip").args(["-n", ns, "link", "set", bridge, "up"])).await?;
        Ok(())
    }

    /// The external network: a namespace with a Linux bridge that holds the external host's
    /// address ([`EXTERNAL_GATEWAY`]); each hypervisor's br-ex joins it by a veth.
    async fn create_external(&mut self) -> Result<()> {
        let ns = self.external_netns();
        self.create_bridge_netns(&ns, EXTERNAL_BRIDGE, |s, ns| s.external = Some(ns)).await?;
        let cidr = format!("{EXTERNAL_GATEWAY}/24");
        output(Command::new("ip").args(["-n", &ns, "addr", "add", &cidr, "dev", EXTERNAL_BRIDGE])).await?;
        // Finished checksums on what the host sends: OVS's userspace datapath rewrites addresses
        // (floating IPs) and cannot finish a checksum the kernel left to the NIC (LAB.md).
        output(cmd::in_netns(Some(&ns), "ethtool").args(["-K", EXTERNAL_BRIDGE, "tx", "off"])).await?;
        Ok(())
    }

    /// Adds hypervisor N+1: namespace, ovsdb-server and ovs-vswitchd (run dir `DIR/hvN`), a veth
    /// from the underlay bridge onto br-phy (tunnel IP 172.31.0.N/24), br-int with the Geneve port.
    pub async fn add_hypervisor(&mut self) -> Result<Hypervisor> {
        let Some(underlay) = self.state.underlay.clone() else {
            return Err(LabError::Invalid("the lab has no underlay".into()));
        };
        let index = self.state.hypervisors.iter().map(|h| h.index).max().unwrap_or(0) + 1;
        if index > 254 {
            return Err(LabError::Invalid("at most 254 hypervisors".into()));
        }
        let mut hv = Hypervisor::new(index, &self.state.prefix, &self.dir);
        hv.create_db().await?;
        output(Command::new("ip").args(["netns", "add", hv.netns()])).await?;
        self.state.hypervisors.push(hv.clone());
        self.save()?;
        output(Command::new("ip").args(["-n", hv.netns(), "link", "set", "lo", "up"])).await?;
        // Only br-phy, which holds the tunnel IP, answers ARP for it. By default the kernel also
        // answers on `phy0` (any local address, any interface), with phy0's MAC, racing OVS's
        // reply through br-phy. A peer whose tunnel neighbour cache learns phy0's MAC sends its
        // Geneve packets to the kernel, which drops them (ICMP port unreachable), not to OVS:
        // one direction between two hypervisors dies until the cache learns the right MAC again.
        output(
            cmd::in_netns(Some(hv.netns()), "sh")
                .args(["-c", "echo 1 > /proc/sys/net/ipv4/conf/all/arp_ignore"]),
        )
        .await?;
        hv.start_daemons().await?;
        // The underlay veth: `ulN` on the underlay bridge, `phy0` in the hypervisor. Both ends go
        // when their namespaces are deleted.
        let ul = format!("ul{index}");
        let mtu = hv::UNDERLAY_MTU.to_string();
        output(Command::new("ip").args([
            "-n",
            &underlay,
            "link",
            "add",
            &ul,
            "mtu",
            &mtu,
            "type",
            "veth",
            "peer",
            "name",
            hv::UNDERLAY_IFACE,
            "mtu",
            &mtu,
            "netns",
            hv.netns(),
        ]))
        .await?;
        output(Command::new("ip").args([
            "-n",
            &underlay,
            "link",
            "set",
            &ul,
            "master",
            UNDERLAY_BRIDGE,
            "up",
        ]))
        .await?;
        hv.setup_bridges().await?;
        if let Some(external) = self.state.external.clone() {
            // The external veth: `exN` on the external bridge, `ext0` on the hypervisor's br-ex.
            let ex = format!("ex{index}");
            output(Command::new("ip").args([
                "-n",
                &external,
                "link",
                "add",
                &ex,
                "type",
                "veth",
                "peer",
                "name",
                hv::EXTERNAL_IFACE,
                "netns",
                hv.netns(),
            ]))
            .await?;
            output(Command::new("ip").args([
                "-n",
                &external,
                "link",
                "set",
                &ex,
                "master",
                EXTERNAL_BRIDGE,
                "up",
            ]))
            .await?;
            output(cmd::in_netns(Some(&external), "ethtool").args(["-K", &ex, "tx", "off"])).await?;
            hv.setup_external().await?;
        }
        hv.ready = true;
        let slot = self.state.hypervisors.iter_mut().find(|h| h.index == index).expect("recorded above");
        *slot = hv.clone();
        self.save()?;
        Ok(hv)
    }

    /// Removes everything the lab in `dir` created and recorded — daemons (by the pids in their
    /// pidfiles, SIGTERM then SIGKILL), VM, hypervisor and underlay namespaces — then the
    /// directory. Nothing else. Succeeds when `dir` is gone already; refuses a non-empty directory
    /// without `lab.json`.
    pub async fn down(dir: &Path) -> Result<()> {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || Self::down_blocking(&dir))
            .await
            .map_err(|e| LabError::Invalid(format!("lab down panicked: {e}")))?
    }

    /// [`Lab::down`] for synchronous callers (drop guards).
    pub fn down_blocking(dir: &Path) -> Result<()> {
        if !dir.exists() {
            return Ok(());
        }
        let state_path = dir.join(STATE_FILE);
        // Daemons first, found by their pidfiles in DIR/hv*, whatever lab.json says.
        for entry in std::fs::read_dir(dir).map_err(io_err(format!("reading {}", dir.display())))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_hv = name
                .strip_prefix("hv")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if is_hv && entry.path().is_dir() {
                for pidfile in ["vsd.pid", "ovsdb.pid"] {
                    if let Some(pid) = cmd::stop_by_pidfile(&entry.path().join(pidfile)) {
                        tracing::debug!(pid, hv = name, pidfile, "stopped");
                    }
                }
            }
        }
        if !state_path.exists() {
            let empty = std::fs::read_dir(dir).map(|mut d| d.next().is_none()).unwrap_or(false);
            if empty {
                return std::fs::remove_dir(dir).map_err(io_err(format!("removing {}", dir.display())));
            }
            return Err(LabError::Invalid(format!(
                "{} is not a lab directory (no {STATE_FILE})",
                dir.display()
            )));
        }
        let state = read_state(dir)?;
        let namespaces = state
            .vms
            .iter()
            .map(|v| v.netns.clone())
            .chain(state.hypervisors.iter().map(|h| h.netns.clone()))
            .chain(state.underlay.clone())
            .chain(state.external.clone());
        let mut failed = Vec::new();
        for ns in namespaces {
            if cmd::netns_exists(&ns) && !cmd::run_quiet("ip", &["netns", "del", &ns]) {
                failed.push(ns);
            }
        }
        if !failed.is_empty() {
            return Err(LabError::Invalid(format!(
                "could not delete namespaces {failed:?}; {STATE_FILE} kept"
            )));
        }
        // lab.json last, so a failed removal can be retried.
        for entry in std::fs::read_dir(dir).map_err(io_err(format!("reading {}", dir.display())))?.flatten() {
            let path = entry.path();
            if entry.file_name() == STATE_FILE {
                continue;
            }
            let res =
                if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            res.map_err(io_err(format!("removing {}", path.display())))?;
        }
        std::fs::remove_file(&state_path).map_err(io_err(format!("removing {}", state_path.display())))?;
        std::fs::remove_dir(dir).map_err(io_err(format!("removing {}", dir.display())))
    }
}

fn read_state(dir: &Path) -> Result<LabState> {
    let path = dir.join(STATE_FILE);
    let bytes = std::fs::read(&path).map_err(io_err(format!("reading {}", path.display())))?;
    serde_json::from_slice(&bytes).map_err(|source| LabError::State { path, source })
}
