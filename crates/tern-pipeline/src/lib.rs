//! tern's OpenFlow pipeline: pure functions (no IO, no clock) from a chassis' view of the NB
//! ([`ChassisView`]) to the flows of its br-int ([`FlowSet`]), the diff that installs them, the
//! table layout ([`tables`]) and the flow cookies ([`cookie`]).

#![forbid(unsafe_code)]

pub mod apps;
pub mod cookie;
pub mod flowset;
pub mod tables;
pub mod view;

pub use cookie::App;
pub use flowset::{FlowConflict, FlowKey, FlowSet};
pub use view::{
    port_location, ChassisInfo, ChassisView, ExternalInfo, FloatingIpInfo, NetworkInfo, PortInfo,
    PortLocation,
};

/// Every flow chassis `view.local_chassis` should have: every app, run on the whole view.
pub fn compute(view: &ChassisView) -> FlowSet {
    let mut out = FlowSet::new();
    apps::classifier::flows(view, &mut out);
    apps::passthrough::flows(view, &mut out);
    apps::port_security::flows(view, &mut out);
    apps::arp_responder::flows(view, &mut out);
    apps::l3::flows(view, &mut out);
    apps::floating_ips::flows(view, &mut out);
    apps::dhcp::flows(view, &mut out);
    apps::security_groups::flows(view, &mut out);
    apps::l2_lookup::flows(view, &mut out);
    apps::dispatch::flows(view, &mut out);
    apps::ingress_lookup::flows(view, &mut out);
    apps::output::flows(view, &mut out);
    out
}
