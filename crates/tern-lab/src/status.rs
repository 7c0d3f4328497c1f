//! `tern lab status`: what a lab recorded and what of it exists right now (namespaces, live
//! daemons by pidfile), as JSON-serializable structs with a human-readable `Display`.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::Serialize;

use crate::cmd::netns_exists;
use crate::hv::DaemonPids;
use crate::Lab;

/// The whole lab.
#[derive(Debug, Clone, Serialize)]
pub struct LabStatus {
    pub dir: PathBuf,
    pub prefix: String,
    /// The underlay namespace, if recorded.
    pub underlay: Option<String>,
    pub underlay_exists: bool,
    /// The external network's namespace, if recorded (labs made before it existed have none).
    pub external: Option<String>,
    pub external_exists: bool,
    pub hypervisors: Vec<HvStatus>,
    pub vms: Vec<VmStatus>,
}

/// One hypervisor.
#[derive(Debug, Clone, Serialize)]
pub struct HvStatus {
    pub name: String,
    pub netns: String,
    pub netns_exists: bool,
    pub ready: bool,
    pub tunnel_ip: Ipv4Addr,
    pub db_sock: String,
    pub mgmt_sock: String,
    /// Pids of the daemons that are alive (None: dead or never started).
    pub live: DaemonPids,
}

/// One VM.
#[derive(Debug, Clone, Serialize)]
pub struct VmStatus {
    pub name: String,
    pub netns: String,
    pub netns_exists: bool,
    pub hv: u32,
    pub mac: String,
    pub ip_cidr: String,
    pub iface_id: String,
    pub tap: String,
    pub preplugged_on: Option<u32>,
    pub source_on: Option<u32>,
}

impl LabStatus {
    /// Every recorded namespace exists and every daemon is alive.
    pub fn healthy(&self) -> bool {
        self.underlay_exists
            && (self.external.is_none() || self.external_exists)
            && self.hypervisors.iter().all(|h| {
                h.netns_exists && h.ready && h.live.ovsdb_server.is_some() && h.live.ovs_vswitchd.is_some()
            })
            && self.vms.iter().all(|v| v.netns_exists)
    }
}

impl Lab {
    /// What exists now of what this lab recorded (reads /run/netns and /proc; runs nothing).
    pub fn status(&self) -> LabStatus {
        LabStatus {
            dir: self.dir().to_path_buf(),
            prefix: self.state.prefix.clone(),
            underlay: self.state.underlay.clone(),
            underlay_exists: self.state.underlay.as_deref().is_some_and(netns_exists),
            external: self.state.external.clone(),
            external_exists: self.state.external.as_deref().is_some_and(netns_exists),
            hypervisors: self
                .state
                .hypervisors
                .iter()
                .map(|h| HvStatus {
                    name: h.name().into(),
                    netns: h.netns().into(),
                    netns_exists: netns_exists(h.netns()),
                    ready: h.is_ready(),
                    tunnel_ip: h.tunnel_ip(),
                    db_sock: h.db_sock(),
                    mgmt_sock: h.mgmt_sock(),
                    live: h.live_pids(),
                })
                .collect(),
            vms: self
                .state
                .vms
                .iter()
                .map(|v| VmStatus {
                    name: v.name().into(),
                    netns: v.netns().into(),
                    netns_exists: netns_exists(v.netns()),
                    hv: v.hv(),
                    mac: v.mac().into(),
                    ip_cidr: v.ip_cidr().into(),
                    iface_id: v.iface_id().into(),
                    tap: v.tap().into(),
                    preplugged_on: v.preplugged().map(|p| p.hv),
                    source_on: v.source().map(|p| p.hv),
                })
                .collect(),
        }
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "ok"
    } else {
        "MISSING"
    }
}

fn pid(p: Option<u32>) -> String {
    p.map_or_else(|| "DOWN".into(), |p| format!("pid {p}"))
}

impl fmt::Display for LabStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "lab {} (prefix {})", self.dir.display(), self.prefix)?;
        match &self.underlay {
            Some(ns) => writeln!(f, "  underlay  {ns}: {}", yes(self.underlay_exists))?,
            None => writeln!(f, "  underlay  not created")?,
        }
        if let Some(ns) = &self.external {
            writeln!(
                f,
                "  external  {ns}: {}, host {} on {}",
                yes(self.external_exists),
                crate::EXTERNAL_GATEWAY,
                crate::EXTERNAL_CIDR
            )?;
        }
        for h in &self.hypervisors {
            writeln!(
                f,
                "  {:<9} {}: netns {}, {}, tunnel {}, ovsdb-server {}, ovs-vswitchd {}, of {}",
                h.name,
                h.netns,
                yes(h.netns_exists),
                if h.ready { "ready" } else { "HALF-CREATED" },
                h.tunnel_ip,
                pid(h.live.ovsdb_server),
                pid(h.live.ovs_vswitchd),
                h.mgmt_sock
            )?;
        }
        for v in &self.vms {
            write!(
                f,
                "  vm {:<6} {}: netns {}, hv{}, {} {}, port {} ({})",
                v.name,
                v.netns,
                yes(v.netns_exists),
                v.hv,
                v.mac,
                v.ip_cidr,
                v.iface_id,
                v.tap
            )?;
            if let Some(d) = v.preplugged_on {
                write!(f, ", pre-plugged on hv{d}")?;
            }
            if let Some(s) = v.source_on {
                write!(f, ", source still on hv{s}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
