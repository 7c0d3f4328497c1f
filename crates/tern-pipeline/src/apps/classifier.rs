//! Table CLASSIFY: where a packet comes from. A local VIF's packet gets its port (reg6) and network
//! (metadata) and enters the egress pipeline; a tunnel packet gets its network from the VNI and
//! goes straight to ingress lookup (it never re-enters L2 lookup, so it is never flooded again).

use tern_openflow::{Action, Field, Match};

use crate::cookie::{App, Object};
use crate::flowset::FlowSet;
use crate::tables::{CLASSIFY, INGRESS_LOOKUP, PORT_SECURITY, REG_SRC_PORT};
use crate::view::ChassisView;

use super::{flow, PRIORITY_DEFAULT, PRIORITY_PORT};

pub fn flows(view: &ChassisView, out: &mut FlowSet) {
    out.insert(flow(App::Classifier, Object::None, CLASSIFY, PRIORITY_DEFAULT, Match::new(), vec![]));
    for net in view.local_networks() {
        for (port, ofport) in view.local_ports(&net.id) {
            out.insert(flow(
                App::Classifier,
                Object::Port(port.key),
                CLASSIFY,
                PRIORITY_PORT,
                Match::new().in_port(ofport),
                vec![
                    Action::set_field(Field::Reg(REG_SRC_PORT), port.key),
                    Action::set_field(Field::Metadata, u64::from(net.key)),
                    Action::resubmit(PORT_SECURITY),
                ],
            ));
        }
        if let Some(tun) = view.tunnel_ofport {
            out.insert(flow(
                App::Classifier,
                Object::Network(net.key),
                CLASSIFY,
                PRIORITY_PORT,
                Match::new().in_port(tun).tun_id(u64::from(net.vni)),
                vec![
                    Action::set_field(Field::Metadata, u64::from(net.key)),
                    Action::resubmit(INGRESS_LOOKUP),
                ],
            ));
        }
    }
}
