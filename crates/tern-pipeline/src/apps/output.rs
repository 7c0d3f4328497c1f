//! Table OUTPUT: the last stage, destination port reg7 -> its VIF on this chassis.

use tern_openflow::{Action, Match};

use crate::cookie::{App, Object};
use crate::flowset::FlowSet;
use crate::tables::{OUTPUT, REG_DST_PORT};
use crate::view::ChassisView;

use super::{flow, PRIORITY_DEFAULT, PRIORITY_PORT};

pub fn flows(view: &ChassisView, out: &mut FlowSet) {
    out.insert(flow(App::Output, Object::None, OUTPUT, PRIORITY_DEFAULT, Match::new(), vec![]));
    for net in view.local_networks() {
        for (port, ofport) in view.local_ports(&net.id) {
            out.insert(flow(
                App::Output,
                Object::Port(port.key),
                OUTPUT,
                PRIORITY_PORT,
                Match::new().reg(REG_DST_PORT, port.key),
                vec![Action::output(ofport)],
            ));
        }
    }
}
