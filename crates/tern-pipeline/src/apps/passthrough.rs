//! Table defaults for the stages only some packets need (local services: the ARP responder and
//! DHCP): everything else goes on to the next stage.

use crate::cookie::{App, Object};
use crate::flowset::FlowSet;
use crate::tables::{L2_LOOKUP, SERVICES};
use crate::view::ChassisView;
use tern_openflow::{Action, Match};

use super::{flow, PRIORITY_DEFAULT};

pub fn flows(_view: &ChassisView, out: &mut FlowSet) {
    out.insert(flow(
        App::Passthrough,
        Object::None,
        SERVICES,
        PRIORITY_DEFAULT,
        Match::new(),
        vec![Action::resubmit(L2_LOOKUP)],
    ));
}
