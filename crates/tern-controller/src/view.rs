//! The one place the controller turns what it has seen — its copy of the NB, the VIFs and patch
//! ports OVSDB reports, the gateways it resolved — into the pipeline's input, a [`ChassisView`].
//! Pure: the agent, the benchmarks and the simulation all build their views here.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use tern_model::{Migration, Port, Subnet};
use tern_pipeline::ChassisView;

use crate::cache::NbCache;

/// What the chassis itself knows, beside the NB.
#[derive(Clone, Debug, Default)]
pub struct Local {
    /// The chassis name.
    pub chassis: String,
    /// Deliver a migrating port's traffic to both ends until activation.
    pub dual_delivery: bool,
    /// The MAC the chassis speaks from on external networks.
    pub chassis_mac: [u8; 6],
    /// Port id -> ofport, for VIFs on br-int.
    pub vifs: BTreeMap<String, u32>,
    pub tunnel_ofport: Option<u32>,
    /// Physical network -> br-int's end of the patch to its provider bridge.
    pub patch_ports: BTreeMap<String, u32>,
    /// What the chassis resolved on external networks: IP -> MAC.
    pub neighbours: BTreeMap<Ipv4Addr, [u8; 6]>,
}

/// The view chassis `local.chassis` computes its flows from. `migrations` are the NB's records
/// as this chassis sees them (its own activations overlaid); the pipeline gets those that move
/// traffic (see [`crate::migration::for_pipeline`]), the destination watches for activation
/// packets whatever the dual-delivery setting.
pub fn chassis_view(nb: &NbCache, migrations: &[Migration], local: &Local) -> ChassisView {
    // Each kind copied out of the cache once (ports and subnets serve several stages).
    let ports: Vec<Port> = nb.all();
    let subnets: Vec<Subnet> = nb.all();
    let mut view = ChassisView::from_nb(
        &local.chassis,
        &nb.all(),
        &ports,
        &nb.all(),
        &crate::migration::for_pipeline(migrations.to_vec(), local.dual_delivery),
        local.vifs.clone(),
        local.tunnel_ofport,
    )
    .with_routers(&nb.all(), &subnets, &ports)
    .with_dhcp(&subnets, &ports)
    .with_security_groups(&nb.all())
    .with_external(&local.patch_ports, &subnets, local.chassis_mac, &local.neighbours)
    .with_floating_ips(&nb.all(), &ports);
    // Without dual delivery the pipeline does not see dest_plugged records, but the destination
    // still watches for the VM's first packet.
    view.awaiting_activation = tern_pipeline::view::awaiting_activation(&local.chassis, migrations);
    view
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{Cloud, Sizes};

    /// The view answers "ports of a network" and "local ports" from an index; on a synthetic
    /// cloud it must give exactly what a scan of every port gives, on every chassis.
    #[test]
    fn indexed_questions_agree_with_a_scan() {
        let sizes = Sizes { chassis: 7, networks: 23, ports: 400 };
        let cloud = Cloud::new(sizes, 99);
        let cache = NbCache::from_listing(cloud.objects.clone(), 1);
        for c in 0..sizes.chassis {
            let view = chassis_view(&cache, &[], &cloud.local(c));
            let mut local_networks = Vec::new();
            for net in view.networks.values() {
                let mut scan: Vec<_> = view.active_ports().filter(|p| p.network_id == net.id).collect();
                scan.sort_by_key(|p| p.key);
                assert_eq!(view.ports_of(&net.id), scan, "ports of {} on chassis {c}", net.id);
                let local: Vec<_> = scan.iter().filter_map(|p| Some((*p, view.local_ofport(p)?))).collect();
                assert_eq!(view.local_ports(&net.id), local, "local ports of {} on chassis {c}", net.id);
                if !local.is_empty() {
                    local_networks.push(net);
                }
            }
            assert!(!local_networks.is_empty());
            assert_eq!(view.local_networks().collect::<Vec<_>>(), local_networks);
            // A clone is asked afresh: what changed in it is seen.
            let mut unplugged = view.clone();
            unplugged.local_vifs.clear();
            assert_eq!(unplugged.local_networks().count(), 0);
        }
    }
}
