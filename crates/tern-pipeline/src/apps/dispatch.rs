//! Table DISPATCH: where destination port reg7 is. The one kind of flow that encodes a port's
//! location: one flow per port, delivering to every chassis in its location (locally through
//! ingress, remotely by tunnel over its network's VNI), so a migration rewrites exactly this flow
//! on a bystander, for bridged and routed traffic alike. Ports of the networks this chassis'
//! routers reach get one too.

use tern_openflow::{Action, Match};

use crate::cookie::{App, Object};
use crate::flowset::FlowSet;
use crate::tables::{DISPATCH, INGRESS_ACL, REG_DST_PORT};
use crate::view::ChassisView;

use super::{flow, to_chassis, PRIORITY_DEFAULT, PRIORITY_PORT};

pub fn flows(view: &ChassisView, out: &mut FlowSet) {
    out.insert(flow(App::Dispatch, Object::None, DISPATCH, PRIORITY_DEFAULT, Match::new(), vec![]));
    for net in view.dispatch_networks() {
        for port in view.ports_of(&net.id) {
            let mut actions = Vec::new();
            if port.location.contains(&view.local_chassis) {
                actions.push(Action::resubmit(INGRESS_ACL));
            }
            if let Some(tun) = view.tunnel_ofport {
                let remotes: Vec<_> = port
                    .location
                    .iter()
                    .filter(|c| *c != view.local_chassis)
                    .filter_map(|c| Some(view.chassis.get(c)?.tunnel_ip))
                    .collect();
                to_chassis(net.vni, &remotes, tun, &mut actions);
            }
            // A port located only on unreachable chassis keeps its flow, as an explicit drop.
            out.insert(flow(
                App::Dispatch,
                Object::Port(port.key),
                DISPATCH,
                PRIORITY_PORT,
                Match::new().reg(REG_DST_PORT, port.key),
                actions,
            ));
        }
    }
}
