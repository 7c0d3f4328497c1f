//! Placeholder stages and table defaults: the tables whose apps come with later issues (security
//! groups) or that only some packets need (local services) pass every packet on to the next stage, so the table numbers, and the
//! jumps into them, are already the final ones.

use crate::cookie::{App, Object};
use crate::flowset::FlowSet;
use crate::tables::{EGRESS_ACL, INGRESS_ACL, L2_LOOKUP, OUTPUT, SERVICES};
use crate::view::ChassisView;
use tern_openflow::{Action, Match};

use super::{flow, PRIORITY_DEFAULT};

pub fn flows(_view: &ChassisView, out: &mut FlowSet) {
    for (table, next) in [(EGRESS_ACL, SERVICES), (SERVICES, L2_LOOKUP), (INGRESS_ACL, OUTPUT)] {
        out.insert(flow(
            App::Passthrough,
            Object::None,
            table,
            PRIORITY_DEFAULT,
            Match::new(),
            vec![Action::resubmit(next)],
        ));
    }
}
