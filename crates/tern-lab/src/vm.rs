//! Lab VMs: a network namespace `<prefix>-vm-NAME` whose `eth0` is a veth plugged into a
//! hypervisor's br-int the way Nova/os-vif plugs a VIF; adding, removing, pinging from one, and
//! the three network steps of a live migration (pre-plug, switchover, source unplug).

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::cmd::{self, output, LabError, Result};
use crate::hv::{Hypervisor, BR_INT};
use crate::Lab;

/// One attachment of a VM to a hypervisor: the veth whose inside end `iface` is in the VM
/// namespace and whose outside end `tap` is on that hypervisor's br-int.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plug {
    pub hv: u32,
    pub tap: String,
    pub iface: String,
}

/// A VM of the lab, as recorded in `lab.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vm {
    pub(crate) name: String,
    pub(crate) netns: String,
    pub(crate) mac: String,
    pub(crate) ip_cidr: String,
    pub(crate) iface_id: String,
    /// Where the VM runs: its up interface and the br-int port behind it.
    pub(crate) plug: Plug,
    /// A pre-plugged destination (migration step 1), inside end down.
    #[serde(default)]
    pub(crate) preplugged: Option<Plug>,
    /// The old source after a switchover, until it is unplugged (migration step 3).
    #[serde(default)]
    pub(crate) source: Option<Plug>,
}

impl Vm {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `<prefix>-vm-NAME`.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The index of the hypervisor the VM runs on.
    pub fn hv(&self) -> u32 {
        self.plug.hv
    }

    pub fn mac(&self) -> &str {
        &self.mac
    }

    /// As given, e.g. `10.1.0.5/24`.
    pub fn ip_cidr(&self) -> &str {
        &self.ip_cidr
    }

    pub fn ip(&self) -> Ipv4Addr {
        parse_cidr(&self.ip_cidr).map(|(ip, _)| ip).unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    /// The Neutron port id (`external_ids:iface-id`).
    pub fn iface_id(&self) -> &str {
        &self.iface_id
    }

    /// The br-int port (outside veth end) on the current hypervisor.
    pub fn tap(&self) -> &str {
        &self.plug.tap
    }

    /// The VM's up interface inside its namespace (`eth0`, or `eth1` after a migration).
    pub fn iface(&self) -> &str {
        &self.plug.iface
    }

    pub fn plug(&self) -> &Plug {
        &self.plug
    }

    pub fn preplugged(&self) -> Option<&Plug> {
        self.preplugged.as_ref()
    }

    pub fn source(&self) -> Option<&Plug> {
        self.source.as_ref()
    }

    fn plugs(&self) -> impl Iterator<Item = &Plug> {
        std::iter::once(&self.plug).chain(self.preplugged.iter()).chain(self.source.iter())
    }
}

/// What `ping` saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PingResult {
    pub transmitted: u32,
    pub received: u32,
    /// ping's stdout, for reports.
    pub output: String,
}

impl PingResult {
    /// Every probe answered.
    pub fn all_ok(&self) -> bool {
        self.transmitted > 0 && self.received == self.transmitted
    }
}

/// The br-int port name for a Neutron port id, as Nova names it: `tap` + the id's first 11
/// characters (`tapXXXXXXXX-XX`), 14 characters at most.
pub fn tap_name(iface_id: &str) -> String {
    let clean: String =
        iface_id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').take(11).collect();
    format!("tap{clean}")
}

fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, len) = s.split_once('/')?;
    let len: u8 = len.parse().ok()?;
    (len <= 32).then_some(())?;
    Some((ip.parse().ok()?, len))
}

fn valid_mac(mac: &str) -> bool {
    let parts: Vec<&str> = mac.split(':').collect();
    parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

fn ip(netns: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["-n", netns]);
    c
}

impl Lab {
    fn vm_index(&self, name: &str) -> Result<usize> {
        self.state
            .vms
            .iter()
            .position(|v| v.name == name)
            .ok_or_else(|| LabError::Invalid(format!("no VM named {name} in this lab")))
    }

    fn ready_hv(&self, index: u32) -> Result<Hypervisor> {
        match self.hypervisor(index) {
            Some(hv) if hv.ready => Ok(hv.clone()),
            Some(_) => Err(LabError::Invalid(format!("hypervisor hv{index} was not fully created"))),
            None => Err(LabError::Invalid(format!("no hypervisor hv{index} in this lab"))),
        }
    }

    fn check_tap_free(&self, hv: u32, tap: &str) -> Result<()> {
        let clash = self
            .state
            .vms
            .iter()
            .flat_map(|v| v.plugs().map(move |p| (v, p)))
            .find(|(_, p)| p.hv == hv && p.tap == tap);
        match clash {
            Some((v, _)) => {
                Err(LabError::Invalid(format!("port {tap} on hv{hv} is already used by VM {}", v.name)))
            }
            None => Ok(()),
        }
    }

    /// Creates VM `name` on hypervisor `hv`: namespace `<prefix>-vm-NAME`, `eth0` with `mac` and
    /// `ip_cidr` (e.g. `10.1.0.5/24`), tx checksum offload off, plugged into the hypervisor's
    /// br-int as port [`tap_name`]`(iface_id)` with the external_ids os-vif sets (`iface-id`,
    /// `attached-mac`, `iface-status=active`, `vm-uuid=NAME`). On failure, what was made is removed.
    pub async fn add_vm(
        &mut self,
        name: &str,
        hv: u32,
        mac: &str,
        ip_cidr: &str,
        iface_id: &str,
    ) -> Result<Vm> {
        if !valid_name(name) {
            return Err(LabError::Invalid(format!(
                "bad VM name {name:?} (letters, digits, - _ . ; up to 40)"
            )));
        }
        if self.state.vms.iter().any(|v| v.name == name) {
            return Err(LabError::Invalid(format!("VM {name} already exists")));
        }
        if !valid_mac(mac) {
            return Err(LabError::Invalid(format!("bad MAC {mac:?} (want xx:xx:xx:xx:xx:xx)")));
        }
        if parse_cidr(ip_cidr).is_none() {
            return Err(LabError::Invalid(format!(
                "bad address {ip_cidr:?} (want IPv4/len, e.g. 10.1.0.5/24)"
            )));
        }
        if iface_id.is_empty() || self.state.vms.iter().any(|v| v.iface_id == iface_id) {
            return Err(LabError::Invalid(format!("iface id {iface_id:?} is empty or already used")));
        }
        let host = self.ready_hv(hv)?;
        let tap = tap_name(iface_id);
        self.check_tap_free(hv, &tap)?;
        let netns = format!("{}-vm-{name}", self.state.prefix);
        output(Command::new("ip").args(["netns", "add", &netns])).await?;
        let plug = Plug { hv, tap, iface: "eth0".into() };
        self.state.vms.push(Vm {
            name: name.into(),
            netns,
            mac: mac.to_ascii_lowercase(),
            ip_cidr: ip_cidr.into(),
            iface_id: iface_id.into(),
            plug: plug.clone(),
            preplugged: None,
            source: None,
        });
        self.save()?;
        let vm = self.state.vms.last().cloned().expect("just pushed");
        let res = async {
            output(ip(&vm.netns).args(["link", "set", "lo", "up"])).await?;
            make_veth(&vm, &host, &plug).await?;
            let stdin = format!(
                "link set {i} address {mac}\naddr add {cidr} dev {i}\nlink set {i} up\n",
                i = plug.iface,
                mac = vm.mac,
                cidr = vm.ip_cidr
            );
            cmd::output_with_stdin(ip(&vm.netns).args(["-batch", "-"]), Some(stdin.as_bytes())).await?;
            plug_port(&vm, &host, &plug).await
        }
        .await;
        if let Err(e) = res {
            if let Err(cleanup) = self.remove_vm(name).await {
                tracing::warn!(vm = name, error = %cleanup, "cleaning up a half-created VM failed");
            }
            return Err(e);
        }
        Ok(vm)
    }

    /// Unplugs VM `name` from every br-int it is on (`del-port`) and deletes its namespace.
    pub async fn remove_vm(&mut self, name: &str) -> Result<()> {
        let i = self.vm_index(name)?;
        let vm = self.state.vms[i].clone();
        for p in vm.plugs() {
            if let Some(hv) = self.hypervisor(p.hv) {
                if hv.live_pids().ovsdb_server.is_some() {
                    hv.vsctl(&["--if-exists", "del-port", BR_INT, &p.tap]).await?;
                }
            }
        }
        if cmd::netns_exists(&vm.netns) {
            output(Command::new("ip").args(["netns", "del", &vm.netns])).await?;
        }
        self.state.vms.remove(i);
        self.save()
    }

    /// The VM named `name`.
    pub fn vm(&self, name: &str) -> Option<&Vm> {
        self.state.vms.iter().find(|v| v.name == name)
    }

    /// All VMs.
    pub fn vms(&self) -> &[Vm] {
        &self.state.vms
    }

    /// `ip netns exec <vm netns> PROGRAM`, for the caller to add arguments and run or spawn
    /// (e.g. a long-running probe; set `kill_on_drop`).
    pub fn vm_command(&self, name: &str, program: &str) -> Result<Command> {
        let i = self.vm_index(name)?;
        Ok(cmd::in_netns(Some(&self.state.vms[i].netns), program))
    }

    /// Runs `PROGRAM ARGS` inside VM `name`'s namespace; returns its stdout.
    pub async fn exec_in_vm(&self, name: &str, program: &str, args: &[&str]) -> Result<String> {
        output(self.vm_command(name, program)?.args(args)).await
    }

    /// Pings `to_ip` from inside VM `from_vm`: `ping -c COUNT -i 0.2 -W <timeout> IP`, `timeout`
    /// being how long to wait for each reply (rounded up to whole seconds). Packet loss is not an
    /// error; see [`PingResult::all_ok`].
    pub async fn ping(
        &self,
        from_vm: &str,
        to_ip: Ipv4Addr,
        count: u32,
        timeout: Duration,
    ) -> Result<PingResult> {
        let ns = self.state.vms[self.vm_index(from_vm)?].netns.clone();
        self.ping_in(&ns, to_ip, count, timeout).await
    }

    /// [`Lab::ping`] from the external namespace (the host on the external network).
    pub async fn ping_from_external(
        &self,
        to_ip: Ipv4Addr,
        count: u32,
        timeout: Duration,
    ) -> Result<PingResult> {
        let ns = self.external_netns_checked()?;
        self.ping_in(&ns, to_ip, count, timeout).await
    }

    async fn ping_in(
        &self,
        netns: &str,
        to_ip: Ipv4Addr,
        count: u32,
        timeout: Duration,
    ) -> Result<PingResult> {
        let wait = timeout.as_secs_f64().ceil().max(1.0) as u64;
        let mut c = cmd::in_netns(Some(netns), "ping");
        c.args([
            "-n",
            "-c",
            &count.max(1).to_string(),
            "-i",
            "0.2",
            "-W",
            &wait.to_string(),
            &to_ip.to_string(),
        ]);
        let bound = Duration::from_secs(wait + 10) + Duration::from_millis(200) * count;
        let (status, stdout, stderr) = cmd::raw_output(&mut c, None, bound).await?;
        let stdout = String::from_utf8_lossy(&stdout).into_owned();
        match parse_ping(&stdout) {
            Some((transmitted, received)) => Ok(PingResult { transmitted, received, output: stdout }),
            None => Err(LabError::Command {
                command: cmd::describe(&c),
                status: status.map_or_else(|| format!("no exit within {bound:?}"), |s| s.to_string()),
                stderr: format!("{}{}", String::from_utf8_lossy(&stderr).trim(), stdout),
            }),
        }
    }

    /// Live migration step 1: a second veth whose inside end (`eth1`, or `eth0` when the VM is on
    /// `eth1`) is in the VM namespace, left down, and whose outside end goes onto `dest_hv`'s
    /// br-int with the same iface-id.
    pub async fn preplug_vm(&mut self, name: &str, dest_hv: u32) -> Result<()> {
        let i = self.vm_index(name)?;
        let vm = self.state.vms[i].clone();
        if vm.preplugged.is_some() || vm.source.is_some() {
            return Err(LabError::Invalid(format!(
                "VM {name} is already migrating (unplug_source finishes one)"
            )));
        }
        if dest_hv == vm.plug.hv {
            return Err(LabError::Invalid(format!("VM {name} already runs on hv{dest_hv}")));
        }
        let host = self.ready_hv(dest_hv)?;
        self.check_tap_free(dest_hv, &vm.plug.tap)?;
        let iface = if vm.plug.iface == "eth0" { "eth1" } else { "eth0" };
        let plug = Plug { hv: dest_hv, tap: vm.plug.tap.clone(), iface: iface.into() };
        make_veth(&vm, &host, &plug).await?;
        self.state.vms[i].preplugged = Some(plug.clone());
        self.save()?;
        plug_port(&vm, &host, &plug).await
    }

    /// Live migration step 2, the switchover: the old inside interface goes down, the VM's MAC and
    /// IP move to the pre-plugged one, which comes up; the kernel then announces the VM with a
    /// gratuitous ARP (`arp_notify` is on for every VM interface). One `ip -batch`, so the gap is
    /// a few milliseconds. Downtime is measured from this call's return.
    pub async fn switch_vm(&mut self, name: &str) -> Result<()> {
        self.switch_vm_with(name, SwitchOptions { announce: true, keep_neighbours: false }).await.map(|_| ())
    }

    /// [`Lab::switch_vm`] with a choice of what the resumed VM does. Without `announce` it sends
    /// nothing on its own at resume: `arp_notify` and IPv6 (DAD, router and MLD solicitations) are
    /// turned off on the new interface before the switchover, so only the VM's own traffic can
    /// reveal it. `keep_neighbours` copies the old interface's ARP entries onto the new one in the
    /// same batch, as a real guest keeps its ARP cache across a migration (it never sees a link
    /// change); without it the VM must ARP for its peers again after resuming. Returns when the
    /// VM paused and resumed (the `ip -batch` ran between the two).
    pub async fn switch_vm_with(&mut self, name: &str, opts: SwitchOptions) -> Result<Switched> {
        let i = self.vm_index(name)?;
        let vm = self.state.vms[i].clone();
        let Some(new) = vm.preplugged.clone() else {
            return Err(LabError::Invalid(format!("VM {name} has no pre-plugged destination")));
        };
        let old = vm.plug.clone();
        if !opts.announce {
            // IPv6 may be absent from the kernel: then there is nothing to silence.
            let sysctl = format!(
                "echo 0 > /proc/sys/net/ipv4/conf/{n}/arp_notify && f=/proc/sys/net/ipv6/conf/{n}/disable_ipv6 && {{ [ ! -e $f ] || echo 1 > $f; }}",
                n = new.iface
            );
            output(cmd::in_netns(Some(&vm.netns), "sh").args(["-c", &sysctl])).await?;
        }
        let neighbours = if opts.keep_neighbours {
            let json = output(ip(&vm.netns).args(["-j", "-4", "neigh", "show", "dev", &old.iface])).await?;
            neighbour_lines(&json, &new.iface)
        } else {
            String::new()
        };
        // The routes through a gateway go with the interface, as a guest keeps its routing table.
        let json = output(ip(&vm.netns).args(["-j", "-4", "route", "show", "dev", &old.iface])).await?;
        let routes = route_lines(&json, &new.iface);
        let stdin = format!(
            "link set {o} down\naddr flush dev {o}\nlink set {n} address {mac}\naddr add {cidr} dev {n}\nlink set {n} up\n{neighbours}{routes}",
            o = old.iface,
            n = new.iface,
            mac = vm.mac,
            cidr = vm.ip_cidr
        );
        let paused_at = SystemTime::now();
        cmd::output_with_stdin(ip(&vm.netns).args(["-batch", "-"]), Some(stdin.as_bytes())).await?;
        let resumed_at = SystemTime::now();
        let v = &mut self.state.vms[i];
        v.plug = new;
        v.preplugged = None;
        v.source = Some(old);
        self.save()?;
        Ok(Switched { paused_at, resumed_at })
    }

    /// Aborts a migration before its switchover: removes the pre-plugged destination port from
    /// its br-int and the second veth from the VM (the VM keeps running where it is).
    pub async fn cancel_preplug(&mut self, name: &str) -> Result<()> {
        let i = self.vm_index(name)?;
        let vm = self.state.vms[i].clone();
        let Some(pre) = vm.preplugged.clone() else {
            return Err(LabError::Invalid(format!("VM {name} has no pre-plugged destination")));
        };
        if let Some(hv) = self.hypervisor(pre.hv) {
            hv.vsctl(&["--if-exists", "del-port", BR_INT, &pre.tap]).await?;
        }
        output(ip(&vm.netns).args(["link", "del", &pre.iface])).await?;
        self.state.vms[i].preplugged = None;
        self.save()
    }

    /// Live migration step 3: deletes the old port from the source br-int and the old veth.
    pub async fn unplug_source(&mut self, name: &str) -> Result<()> {
        let i = self.vm_index(name)?;
        let vm = self.state.vms[i].clone();
        let Some(old) = vm.source.clone() else {
            return Err(LabError::Invalid(format!("VM {name} has no source to unplug")));
        };
        if let Some(hv) = self.hypervisor(old.hv) {
            hv.vsctl(&["--if-exists", "del-port", BR_INT, &old.tap]).await?;
        }
        output(ip(&vm.netns).args(["link", "del", &old.iface])).await?;
        self.state.vms[i].source = None;
        self.save()
    }
}

/// The veth of `plug`: inside end in the VM namespace (down, tx offload off, arp_notify on),
/// outside end in the hypervisor namespace, up.
async fn make_veth(vm: &Vm, host: &Hypervisor, plug: &Plug) -> Result<()> {
    output(ip(&vm.netns).args([
        "link",
        "add",
        &plug.iface,
        "type",
        "veth",
        "peer",
        "name",
        &plug.tap,
        "netns",
        host.netns(),
    ]))
    .await?;
    // LAB.md: without this the kernel hands OVS UDP/TCP with unfinished checksums.
    output(cmd::in_netns(Some(&vm.netns), "ethtool").args(["-K", &plug.iface, "tx", "off"])).await?;
    let sysctl = format!("echo 1 > /proc/sys/net/ipv4/conf/{}/arp_notify", plug.iface);
    output(cmd::in_netns(Some(&vm.netns), "sh").args(["-c", &sysctl])).await?;
    output(ip(host.netns()).args(["link", "set", &plug.tap, "up"])).await?;
    Ok(())
}

/// `add-port br-int TAP` with os-vif's external_ids, then waits for its ofport.
async fn plug_port(vm: &Vm, host: &Hypervisor, plug: &Plug) -> Result<()> {
    host.vsctl(&[
        "--may-exist",
        "add-port",
        BR_INT,
        &plug.tap,
        "--",
        "set",
        "Interface",
        &plug.tap,
        &format!("external_ids:iface-id={}", vm.iface_id),
        &format!("external_ids:attached-mac={}", vm.mac),
        "external_ids:iface-status=active",
        &format!("external_ids:vm-uuid={}", vm.name),
    ])
    .await?;
    host.ofport(&plug.tap).await?;
    Ok(())
}

/// What a resumed VM does at [`Lab::switch_vm_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchOptions {
    /// Announce itself with a gratuitous ARP as the interface comes up (as QEMU's RARP does).
    pub announce: bool,
    /// Keep its ARP cache (copy the entries to the new interface).
    pub keep_neighbours: bool,
}

/// When a switchover paused and resumed the VM (wall clock, shared by every lab namespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switched {
    pub paused_at: SystemTime,
    pub resumed_at: SystemTime,
}

/// `neigh replace` batch lines putting the resolved entries of `ip -j neigh show` onto `dev`.
fn neighbour_lines(json: &str, dev: &str) -> String {
    let entries: Vec<serde_json::Value> = serde_json::from_str(json).unwrap_or_default();
    entries
        .iter()
        .filter(|e| {
            let states: Vec<&str> =
                e["state"].as_array().into_iter().flatten().filter_map(|s| s.as_str()).collect();
            !states.iter().any(|s| matches!(*s, "FAILED" | "INCOMPLETE" | "NOARP"))
        })
        .filter_map(|e| {
            let dst: Ipv4Addr = e["dst"].as_str()?.parse().ok()?;
            let mac = e["lladdr"].as_str().filter(|m| valid_mac(m))?;
            Some(format!("neigh replace {dst} lladdr {mac} dev {dev} nud reachable\n"))
        })
        .collect()
}

/// `ip -batch` lines re-adding on `dev` the routes via a gateway listed in `ip -j route` output.
fn route_lines(json: &str, dev: &str) -> String {
    let entries: Vec<serde_json::Value> = serde_json::from_str(json).unwrap_or_default();
    entries
        .iter()
        .filter_map(|e| {
            let dst = e["dst"].as_str()?;
            let via: Ipv4Addr = e["gateway"].as_str()?.parse().ok()?;
            Some(format!("route replace {dst} via {via} dev {dev}\n"))
        })
        .collect()
}

/// "N packets transmitted, M received" from ping's summary.
fn parse_ping(out: &str) -> Option<(u32, u32)> {
    let line = out.lines().find(|l| l.contains("packets transmitted"))?;
    let mut parts = line.split(',');
    let tx = parts.next()?.split_whitespace().next()?.parse().ok()?;
    let rx = parts.next()?.split_whitespace().next()?.parse().ok()?;
    Some((tx, rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_names_follow_nova() {
        assert_eq!(tap_name("3f8a2b1c-9d4e-4f00-a1b2-c3d4e5f60718"), "tap3f8a2b1c-9d");
        assert_eq!(tap_name("p1"), "tapp1");
        assert!(tap_name("a/b c").chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(tap_name(&"x".repeat(40)).len() <= 15);
    }

    #[test]
    fn parses_ping_summary() {
        let out = "PING 10.1.0.2 (10.1.0.2) 56(84) bytes of data.\n\n--- 10.1.0.2 ping statistics ---\n\
                   3 packets transmitted, 2 received, 33.3333% packet loss, time 405ms\n";
        assert_eq!(parse_ping(out), Some((3, 2)));
        let err = "5 packets transmitted, 0 received, +5 errors, 100% packet loss, time 812ms";
        assert_eq!(parse_ping(err), Some((5, 0)));
        assert_eq!(parse_ping("garbage"), None);
    }

    #[test]
    fn copies_resolved_neighbours_only() {
        let json = r#"[{"dst":"10.1.0.3","dev":"eth0","lladdr":"fa:16:3e:00:00:03","state":["REACHABLE"]},
            {"dst":"10.1.0.4","dev":"eth0","state":["FAILED"]},
            {"dst":"10.1.0.5","dev":"eth0","lladdr":"fa:16:3e:00:00:05","state":["STALE"]}]"#;
        assert_eq!(
            neighbour_lines(json, "eth1"),
            "neigh replace 10.1.0.3 lladdr fa:16:3e:00:00:03 dev eth1 nud reachable\n\
             neigh replace 10.1.0.5 lladdr fa:16:3e:00:00:05 dev eth1 nud reachable\n"
        );
        assert_eq!(neighbour_lines("", "eth1"), "");
    }

    #[test]
    fn validates_inputs() {
        assert!(valid_mac("02:00:00:00:00:0a"));
        assert!(!valid_mac("02:00:00:00:00"));
        assert_eq!(parse_cidr("10.1.0.5/24"), Some((Ipv4Addr::new(10, 1, 0, 5), 24)));
        assert_eq!(parse_cidr("10.1.0.5"), None);
        assert!(valid_name("vm-a_1"));
        assert!(!valid_name("a b"));
    }
}
