//! The chassis on external networks (pure: the agent sends what this decides):
//! * announcing: a gratuitous ARP for every floating IP whose VM runs here, whenever one arrives
//!   or its place changes (a live migration's activation), so the external network's switches and
//!   neighbours learn the new place at once instead of after a timeout;
//! * resolving each external gateway's MAC, where floating IPs' outbound traffic goes: an ARP
//!   probe from this chassis' own MAC (sender 0.0.0.0, so no neighbour learns anything from it)
//!   every second until answered, then every [`REFRESH`]; the reply comes back to the controller
//!   (`tern_pipeline::apps::floating_ips::gateway_userdata`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use tern_openflow::{Action, PacketOut};
use tern_pipeline::apps::floating_ips::{announced, arp_probe, arp_reply_sender, gratuitous_arp};
use tern_pipeline::ChassisView;

/// How often a resolved gateway is asked again (a gateway replaced by another MAC is noticed
/// within this).
pub const REFRESH: Duration = Duration::from_secs(30);
/// How often an unresolved gateway is asked.
pub const RETRY: Duration = Duration::from_secs(1);

/// A gateway to resolve: through which patch, from which MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Gateway {
    ip: Ipv4Addr,
    patch_ofport: u32,
    chassis_mac: [u8; 6],
}

/// What this chassis announced and resolved on external networks.
#[derive(Debug, Default)]
pub struct External {
    /// IP -> MAC resolved on external networks (the gateways).
    pub neighbours: BTreeMap<Ipv4Addr, [u8; 6]>,
    /// Floating IP id -> what its last announcement said (address, MAC, the port's location).
    announced: BTreeMap<String, (Ipv4Addr, [u8; 6], Vec<String>)>,
    /// The gateways of the last view's external networks.
    gateways: Vec<Gateway>,
    /// When each gateway was last asked.
    asked: BTreeMap<Ipv4Addr, Instant>,
}

impl External {
    /// Takes the view whose flows the switch now holds: returns the gratuitous ARPs to send (the
    /// floating IPs that came here or whose port's location changed), and notes the gateways to
    /// resolve.
    pub fn flows_installed(&mut self, view: &ChassisView) -> Vec<PacketOut> {
        self.gateways = view
            .external
            .values()
            .filter_map(|e| {
                Some(Gateway { ip: e.gateway?, patch_ofport: e.patch_ofport, chassis_mac: e.chassis_mac })
            })
            .collect();
        let mut now = BTreeMap::new();
        let mut out = Vec::new();
        for (fip, patch) in announced(view) {
            let location =
                view.ports.get(&fip.port_id).map(|p| p.location.iter().map(str::to_owned).collect());
            let said = (fip.ip, fip.mac, location.unwrap_or_default());
            if self.announced.get(&fip.id) != Some(&said) {
                out.push(PacketOut::new(gratuitous_arp(fip.mac, fip.ip), vec![Action::output(patch)]));
            }
            now.insert(fip.id.clone(), said);
        }
        self.announced = now;
        out
    }

    /// The ARP probes due at `now`.
    pub fn probes_due(&mut self, now: Instant) -> Vec<PacketOut> {
        let mut out = Vec::new();
        for g in &self.gateways {
            let every = if self.neighbours.contains_key(&g.ip) { REFRESH } else { RETRY };
            if self.asked.get(&g.ip).is_some_and(|at| now.duration_since(*at) < every) {
                continue;
            }
            self.asked.insert(g.ip, now);
            out.push(PacketOut::new(arp_probe(g.chassis_mac, g.ip), vec![Action::output(g.patch_ofport)]));
        }
        out
    }

    /// Learns from an ARP reply sent up by the pipeline; says whether a gateway's MAC changed
    /// (the flows then need recomputing).
    pub fn learn(&mut self, frame: &[u8]) -> bool {
        let Some((ip, mac)) = arp_reply_sender(frame) else { return false };
        if !self.gateways.iter().any(|g| g.ip == ip) {
            return false;
        }
        self.neighbours.insert(ip, mac) != Some(mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_pipeline::view::{ExternalInfo, FloatingIpInfo, PortInfo, PortLocation};

    fn view(location: PortLocation, vif: bool) -> ChassisView {
        let mut v = ChassisView::default();
        v.local_chassis = "hv1".into();
        v.networks.insert(
            "n".into(),
            tern_pipeline::NetworkInfo { id: "n".into(), key: 1, vni: 1, physical_network: None },
        );
        v.ports.insert(
            "p".into(),
            PortInfo {
                id: "p".into(),
                network_id: "n".into(),
                key: 5,
                mac: [2, 0, 0, 0, 0, 5],
                ips: vec![],
                admin_up: true,
                location,
                port_security: true,
                allowed_pairs: vec![],
                dhcp: false,
                security_groups: vec![],
            },
        );
        if vif {
            v.local_vifs.insert("p".into(), 7);
        }
        v.external.insert(
            "ext".into(),
            ExternalInfo {
                network_id: "ext".into(),
                patch_ofport: 9,
                chassis_mac: [0x0a, 0x74, 1, 1, 1, 1],
                gateway: Some(Ipv4Addr::new(172, 24, 4, 1)),
                gateway_mac: None,
            },
        );
        v.floating_ips.push(FloatingIpInfo {
            id: "f".into(),
            ip: Ipv4Addr::new(172, 24, 4, 20),
            mac: [0xfa, 0x16, 0x3e, 0, 0, 20],
            network_id: "ext".into(),
            port_id: "p".into(),
            fixed_ip: Ipv4Addr::new(10, 0, 0, 5),
            router_mac: [0xfa, 0x16, 0x3e, 0, 0, 1],
        });
        v
    }

    #[test]
    fn announces_when_a_floating_ip_arrives_or_moves_and_only_then() {
        let mut e = External::default();
        assert!(e.flows_installed(&view(PortLocation::on("hv2"), false)).is_empty(), "not here");
        let garps = e.flows_installed(&view(PortLocation::dual("hv1", "hv2"), true));
        assert_eq!(garps.len(), 1);
        assert_eq!(garps[0].actions, vec![Action::output(9)]);
        assert_eq!(
            garps[0].data,
            gratuitous_arp([0xfa, 0x16, 0x3e, 0, 0, 20], Ipv4Addr::new(172, 24, 4, 20))
        );
        assert!(e.flows_installed(&view(PortLocation::dual("hv1", "hv2"), true)).is_empty(), "said already");
        assert_eq!(e.flows_installed(&view(PortLocation::on("hv1"), true)).len(), 1, "activation here");
        assert!(e.flows_installed(&view(PortLocation::on("hv2"), false)).is_empty(), "gone");
        assert_eq!(e.flows_installed(&view(PortLocation::on("hv1"), true)).len(), 1, "back");
    }

    #[test]
    fn resolves_the_gateway_every_second_until_answered_then_refreshes() {
        let mut e = External::default();
        e.flows_installed(&view(PortLocation::on("hv1"), true));
        let t0 = Instant::now();
        let probes = e.probes_due(t0);
        assert_eq!(probes.len(), 1);
        assert_eq!(probes[0].data, arp_probe([0x0a, 0x74, 1, 1, 1, 1], Ipv4Addr::new(172, 24, 4, 1)));
        assert!(e.probes_due(t0 + Duration::from_millis(500)).is_empty());
        assert_eq!(e.probes_due(t0 + RETRY).len(), 1);
        // The gateway answers (a reply from 172.24.4.1), and only the gateway is learnt.
        let mut reply = gratuitous_arp([2, 0, 0, 0, 0, 1], Ipv4Addr::new(172, 24, 4, 1));
        reply[21] = 2;
        assert!(e.learn(&reply));
        assert!(!e.learn(&reply), "no change");
        assert_eq!(e.neighbours[&Ipv4Addr::new(172, 24, 4, 1)], [2, 0, 0, 0, 0, 1]);
        let mut stranger = gratuitous_arp([2, 0, 0, 0, 0, 2], Ipv4Addr::new(172, 24, 4, 99));
        stranger[21] = 2;
        assert!(!e.learn(&stranger));
        assert!(!e.learn(&[0u8; 10]));
        assert!(e.probes_due(t0 + RETRY * 2).is_empty(), "resolved: refreshed later");
        assert_eq!(e.probes_due(t0 + RETRY + REFRESH).len(), 1);
    }
}
