//! The demo's checks of the pipeline's services, on a lab whose VMs are up: distributed routing
//! across networks and hypervisors, floating IPs (in from the external host and out to it), DHCP,
//! port security (spoofed packets) and security groups (one that blocks, one that allows, and
//! statefulness). Each returns its counts for the report;
//! none asserts anything, the demo judges.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use tern_lab::Lab;

use super::api::Api;
use super::progress;
use crate::exit::Exit;
use anyhow::anyhow;

/// How long a routed pair may take to answer once the router exists.
const ROUTING_PATIENCE: Duration = Duration::from_secs(30);

#[derive(Serialize, Clone, Debug, Default)]
pub struct Routing {
    pub pairs_tested: usize,
    pub pairs_ok: usize,
    pub failures: Vec<String>,
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct FloatingIps {
    /// Each VM with a floating IP counts twice: the external host reaching it, and it reaching
    /// the external host.
    pub tested: usize,
    pub ok: usize,
    pub failures: Vec<String>,
}

/// The security group `tern lab fip add` puts a VM in: ICMP and UDP from anywhere.
const PUBLIC_GROUP: &str = "lab-public";

/// Gives VM `name` a floating IP (see `tern lab fip add`); returns the address.
pub async fn add_floating_ip(lab: &Lab, name: &str) -> Result<std::net::Ipv4Addr, Exit> {
    let vm = lab.vm(name).ok_or_else(|| Exit::bad_input(anyhow!("no VM named {name} in this lab")))?;
    let port = vm.iface_id().to_owned();
    let api = Api::open(lab.dir()).map_err(Exit::failure)?;
    let ip = api.add_floating_ip(&port).await.map_err(Exit::bad_input)?;
    let groups = api.security_groups_named(PUBLIC_GROUP).await.map_err(Exit::failure)?;
    let group = match groups.first() {
        Some(id) => id.clone(),
        None => {
            let rules = [
                json!({"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp", "remote_ip_prefix": "0.0.0.0/0"}),
                json!({"direction": "ingress", "ethertype": "IPv4", "protocol": "udp", "remote_ip_prefix": "0.0.0.0/0"}),
            ];
            api.create_security_group(PUBLIC_GROUP, &rules).await.map_err(Exit::failure)?
        }
    };
    let mut mine = api.port_security_groups(&port).await.map_err(Exit::failure)?;
    if !mine.contains(&group) {
        mine.push(group);
        api.set_port_security_groups(&port, &mine).await.map_err(Exit::failure)?;
    }
    progress(format!("{name}: floating IP {ip} (security group {PUBLIC_GROUP})"));
    Ok(ip)
}

/// Pings VM `name`'s floating IP from the external host, then the external host from the VM.
pub async fn ping_floating_ip(
    lab: &Lab,
    name: &str,
    count: u32,
) -> Result<(tern_lab::PingResult, tern_lab::PingResult), Exit> {
    let vm = lab.vm(name).ok_or_else(|| Exit::bad_input(anyhow!("no VM named {name} in this lab")))?;
    let api = Api::open(lab.dir()).map_err(Exit::failure)?;
    let fip = api.floating_ip_of(vm.iface_id()).await.map_err(Exit::failure)?.ok_or_else(|| {
        Exit::bad_input(anyhow!("VM {name} has no floating IP (`tern lab fip add {name}`)"))
    })?;
    let wait = Duration::from_secs(1);
    let inbound = lab.ping_from_external(fip, count, wait).await.map_err(Exit::failure)?;
    let outbound = lab.ping(name, tern_lab::EXTERNAL_GATEWAY, count, wait).await.map_err(Exit::failure)?;
    Ok((inbound, outbound))
}

/// Each VM's floating IP, both ways, each retried until it answers (flows converging, the
/// gateway being resolved) or the patience runs out.
pub async fn floating_ips(lab: &Lab, vms: &[&str]) -> FloatingIps {
    let mut r = FloatingIps { tested: 2 * vms.len(), ..FloatingIps::default() };
    let deadline = Instant::now() + ROUTING_PATIENCE;
    for vm in vms {
        let mut last = None;
        while Instant::now() < deadline {
            match ping_floating_ip(lab, vm, 1).await {
                Ok((i, o)) if i.all_ok() && o.all_ok() => {
                    last = ping_floating_ip(lab, vm, 2).await.ok();
                    break;
                }
                other => last = other.ok(),
            }
        }
        match last {
            Some((i, o)) => {
                for (ok, what) in
                    [(i.all_ok(), "external host -> floating IP"), (o.all_ok(), "-> external host")]
                {
                    if ok {
                        r.ok += 1;
                    } else {
                        r.failures.push(format!("{vm}: {what}"));
                    }
                }
            }
            None => r.failures.push(format!("{vm}: no answer either way")),
        }
    }
    r
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct Dhcp {
    pub vms: usize,
    pub leased: usize,
    pub failures: Vec<String>,
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct PortSecurity {
    pub spoof_attempts: usize,
    pub spoof_dropped: usize,
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct SecurityGroups {
    pub tested: usize,
    pub as_expected: usize,
    pub cases: Vec<String>,
}

/// One ping from `from` to `to`'s address through the VMs' routes.
async fn routed_ping(lab: &Lab, from: &str, to: &str, count: u32) -> bool {
    let Some(ip) = lab.vm(to).map(|v| v.ip()) else { return false };
    lab.ping(from, ip, count, Duration::from_secs(1)).await.is_ok_and(|r| r.all_ok())
}

/// Removes the L2 shortcut the isolation check gives VMs of different networks (a host route
/// and a static neighbour entry for each other), both ways, so their traffic takes the router.
pub(crate) async fn drop_shortcuts(lab: &Lab, a: &str, b: &str) {
    for (from, to) in [(a, b), (b, a)] {
        let (Some(f), Some(t)) = (lab.vm(from), lab.vm(to)) else { continue };
        let ip = t.ip().to_string();
        let _ = lab.exec_in_vm(from, "ip", &["route", "del", &format!("{ip}/32"), "dev", f.iface()]).await;
        let _ = lab.exec_in_vm(from, "ip", &["neigh", "del", &ip, "dev", f.iface()]).await;
    }
}

/// Creates router `name` joining `networks`.
pub async fn add_router(lab: &Lab, name: &str, networks: &[&str]) -> anyhow::Result<()> {
    let api = Api::open(lab.dir())?;
    let nets: Vec<String> = networks.iter().map(|n| (*n).to_owned()).collect();
    api.ensure_router(name, &nets).await.map(|_| ())
}

/// Every ordered pair of `pairs` pinged through the router, each retried until it answers (the
/// router's flows converging) or the patience runs out.
pub async fn routing(lab: &Lab, pairs: &[(String, String)]) -> Routing {
    let mut r = Routing { pairs_tested: pairs.len(), ..Routing::default() };
    let deadline = Instant::now() + ROUTING_PATIENCE;
    for (a, b) in pairs {
        drop_shortcuts(lab, a, b).await;
        let mut ok = false;
        while !ok && Instant::now() < deadline {
            ok = routed_ping(lab, a, b, 1).await;
        }
        if ok && routed_ping(lab, a, b, 2).await {
            r.pairs_ok += 1;
        } else {
            r.failures.push(format!("{a}->{b}"));
        }
    }
    r
}

/// Each VM asks for its address by DHCP (udhcpc, configuring nothing) and must get its port's.
pub async fn dhcp(lab: &Lab, vms: &[&str]) -> Dhcp {
    let mut d = Dhcp { vms: vms.len(), ..Dhcp::default() };
    for vm in vms {
        let Some(v) = lab.vm(vm) else { continue };
        let want = format!("lease of {} obtained", v.ip());
        let args = ["-i", v.iface(), "-n", "-q", "-f", "-s", "/bin/true", "-t", "5", "-T", "1"];
        let out = match lab.vm_command(vm, "udhcpc") {
            Ok(mut c) => c.args(args).output().await.ok(),
            Err(_) => None,
        };
        let text = out
            .map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
            .unwrap_or_default();
        if text.contains(&want) {
            d.leased += 1;
        } else {
            d.failures.push(format!("{vm}: {}", text.trim()));
        }
    }
    d
}

/// From VM `vm`: a ping to `peer` from an address of its subnet that is not its own, and one
/// from a MAC that is not its own; both must be dropped (the genuine ping must pass after).
pub async fn port_security(lab: &Lab, vm: &str, peer: &str) -> PortSecurity {
    let mut p = PortSecurity::default();
    let (Some(v), Some(to)) = (lab.vm(vm).cloned(), lab.vm(peer).map(|v| v.ip().to_string())) else {
        return p;
    };
    let octets = v.ip().octets();
    let spoofed =
        format!("{}.{}.{}.{}", octets[0], octets[1], octets[2], if octets[3] == 199 { 198 } else { 199 });
    let exec = |args: Vec<String>| async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        lab.exec_in_vm(vm, refs[0], &refs[1..]).await
    };
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let iface = v.iface().to_owned();
    let ping_from = |src: Option<&str>| {
        let mut a = s(&["ping", "-c", "2", "-i", "0.2", "-W", "1"]);
        if let Some(src) = src {
            a.extend(s(&["-I", src]));
        }
        a.push(to.clone());
        a
    };
    // A foreign address.
    if exec(s(&["ip", "addr", "add", &format!("{spoofed}/32"), "dev", &iface])).await.is_ok() {
        p.spoof_attempts += 1;
        if exec(ping_from(Some(&spoofed))).await.is_err() {
            p.spoof_dropped += 1;
        }
        let _ = exec(s(&["ip", "addr", "del", &format!("{spoofed}/32"), "dev", &iface])).await;
    }
    // A foreign MAC.
    if exec(s(&["ip", "link", "set", &iface, "address", "fa:16:3e:99:99:99"])).await.is_ok() {
        p.spoof_attempts += 1;
        if exec(ping_from(None)).await.is_err() {
            p.spoof_dropped += 1;
        }
        let _ = exec(s(&["ip", "link", "set", &iface, "address", v.mac()])).await;
    }
    p
}

/// Security groups on VM `target` (reached through the router from `client`, which gets
/// "icmp-in" besides its own groups for the time of the check, so that it answers `target`):
/// * only "egress-only" (all egress, no ingress): `client` -> `target` is blocked, while
///   `target` -> `client` passes, replies included (stateful);
/// * plus "icmp-in" (ICMP from anywhere): `client` -> `target` passes.
///
/// Both VMs' groups are put back as they were afterwards.
pub async fn security_groups(lab: &Lab, client: &str, target: &str) -> anyhow::Result<SecurityGroups> {
    let api = Api::open(lab.dir())?;
    let port =
        lab.vm(target).map(|v| v.iface_id().to_owned()).ok_or_else(|| anyhow::anyhow!("no VM {target}"))?;
    let client_port =
        lab.vm(client).map(|v| v.iface_id().to_owned()).ok_or_else(|| anyhow::anyhow!("no VM {client}"))?;
    let before = api.port_security_groups(&port).await?;
    let client_before = api.port_security_groups(&client_port).await?;
    let egress = api
        .create_security_group(
            "egress-only",
            &[
                json!({"direction": "egress", "ethertype": "IPv4"}),
                json!({"direction": "egress", "ethertype": "IPv6"}),
            ],
        )
        .await?;
    let icmp = api
        .create_security_group(
            "icmp-in",
            &[json!({"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp"})],
        )
        .await?;
    drop_shortcuts(lab, client, target).await;
    let mut with_icmp = client_before.clone();
    with_icmp.push(icmp.clone());
    api.set_port_security_groups(&client_port, &with_icmp).await?;
    let mut g = SecurityGroups::default();
    let mut case = |what: String, good: bool| {
        g.tested += 1;
        g.as_expected += usize::from(good);
        g.cases.push(format!("{what}: {}", if good { "as expected" } else { "NOT as expected" }));
    };
    // Give the flows a moment to follow each change: a change is judged on the last of several
    // tries (a blocked pair must stay blocked, an allowed one must pass once).
    let settle = Duration::from_secs(10);
    api.set_port_security_groups(&port, std::slice::from_ref(&egress)).await?;
    progress(format!("{target}: security group egress-only"));
    let blocked = eventually_not(|| routed_ping(lab, client, target, 1), settle).await;
    case(format!("{client} -> {target} blocked by egress-only"), blocked);
    let out = eventually(|| routed_ping(lab, target, client, 2), settle).await;
    case(format!("{target} -> {client} and its replies pass (stateful)"), out);
    api.set_port_security_groups(&port, &[egress.clone(), icmp.clone()]).await?;
    progress(format!("{target}: security groups egress-only + icmp-in"));
    let allowed = eventually(|| routed_ping(lab, client, target, 2), settle).await;
    case(format!("{client} -> {target} allowed by icmp-in"), allowed);
    api.set_port_security_groups(&port, &before).await?;
    api.set_port_security_groups(&client_port, &client_before).await?;
    Ok(g)
}

/// Whether `check` succeeds within `patience`.
async fn eventually<F: std::future::Future<Output = bool>>(
    mut check: impl FnMut() -> F,
    patience: Duration,
) -> bool {
    let deadline = Instant::now() + patience;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
    }
}

/// Whether `check` fails, after the flows had `patience` to settle (the last try decides; an
/// early success is the old flows still passing).
async fn eventually_not<F: std::future::Future<Output = bool>>(
    mut check: impl FnMut() -> F,
    patience: Duration,
) -> bool {
    let deadline = Instant::now() + patience;
    loop {
        let ok = check().await;
        if !ok || Instant::now() >= deadline {
            return !ok;
        }
    }
}
