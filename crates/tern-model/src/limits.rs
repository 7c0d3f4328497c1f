//! Every limit on a single object, in one table, each beside the Neutron option (or database
//! column) it mirrors. The object validations (and so the API and `tern db put` alike) refuse what
//! breaks them; per-project counts are quotas ([`crate::quota`]), not limits.
//!
//! | limit | value | Neutron |
//! | --- | --- | --- |
//! | [`MAX_ID_LEN`] | 255 characters | `id` columns (`String(36)`; tern takes longer ids) |
//! | [`MAX_TEXT_LEN`] | 255 characters | `name`, `description`, `device_id`, `device_owner`, `project_id`: `String(255)` columns |
//! | [`MAX_ALLOWED_ADDRESS_PAIRS`] | 10 per port | `[DEFAULT] max_allowed_address_pair` |
//! | [`MAX_BINDING_PROFILE_LEN`] | 4095 bytes of JSON | `ml2_port_bindings.profile`: `String(4095)` |
//! | [`MAX_DNS_NAMESERVERS`] | 5 per subnet | `[DEFAULT] max_dns_nameservers` |
//! | [`MAX_SUBNET_HOST_ROUTES`] | 20 per subnet | `[DEFAULT] max_subnet_host_routes` |
//! | [`MAX_ROUTER_ROUTES`] | 30 per router | `[DEFAULT] max_routes` (now the quota `router_route`) |
//! | [`MAX_SECURITY_GROUP_RULES`] | 1000 per group | none: tern's own (a group and its rules are one stored object) |
//! | [`MIN_MTU`]..=[`MAX_MTU`] | 68..=9000 | IPv4's minimum; a jumbo frame |
//! | [`max_network_mtu`] | 1442 for geneve, 1500 for flat (underlay 1500) | `global_physnet_mtu` - IPv4 header (`[ml2] overlay_ip_version` 4) - `[ml2_type_geneve] max_header_size` |
//! | [`MAX_REQUEST_BODY`] | 114688 bytes | `[oslo_middleware] max_request_body_size` |
//!
//! Strings never hold NUL characters (every free-text attribute; ids refuse every control
//! character).

/// Longest id accepted, in characters.
pub const MAX_ID_LEN: usize = 255;
/// Longest `name` / `description` / other free text accepted, in characters (Neutron's
/// `String(255)` columns).
pub const MAX_TEXT_LEN: usize = 255;
/// Allowed address pairs per port (Neutron's `max_allowed_address_pair`, default 10).
pub const MAX_ALLOWED_ADDRESS_PAIRS: usize = 10;
/// Longest `binding:profile`, as compact JSON, in bytes (Neutron's `ml2_port_bindings.profile`
/// column is `String(4095)`).
pub const MAX_BINDING_PROFILE_LEN: usize = 4095;
/// DNS name servers per subnet (Neutron's `max_dns_nameservers`, default 5).
pub const MAX_DNS_NAMESERVERS: usize = 5;
/// Host routes per subnet (Neutron's `max_subnet_host_routes`, default 20).
pub const MAX_SUBNET_HOST_ROUTES: usize = 20;
/// Extra routes per router (Neutron's deprecated `max_routes`, default 30, which its
/// `router_route` quota replaced with the same value).
pub const MAX_ROUTER_ROUTES: usize = 30;
/// Rules per security group. Neutron has no such limit (only the per-project quota
/// `security_group_rule`, 100 by default); tern stores a group with its rules as one object, so
/// a group without a project (no quota) must not grow without bound either.
pub const MAX_SECURITY_GROUP_RULES: usize = 1000;

/// The MTU a network gets when nothing else decides it (the maximum for geneve on a 1500-byte
/// underlay: see [`max_network_mtu`]).
pub const DEFAULT_MTU: u32 = 1442;
/// Smallest network MTU (IPv4's minimum).
pub const MIN_MTU: u32 = 68;
/// Largest network MTU, whatever the underlay.
pub const MAX_MTU: u32 = 9000;
/// The underlay's MTU when not configured (Neutron's `global_physnet_mtu`, default 1500;
/// `tern server --underlay-mtu`).
pub const DEFAULT_UNDERLAY_MTU: u32 = 1500;
/// The outer IP header of a tunnelled packet: tern tunnels over IPv4 (Neutron's
/// `[ml2] overlay_ip_version` 4, `IP_HEADER_LENGTH[4]`).
pub const OVERLAY_IP_HEADER_LEN: u32 = 20;
/// The Geneve encapsulation past the outer IP header: UDP (8), Geneve (8), inner Ethernet (14)
/// and room for one 8-byte option. Neutron's `[ml2_type_geneve] max_header_size` as ML2/OVN sets
/// it (38; Neutron's own default, 30, leaves no room for an option). tern sends no option today;
/// the 8 bytes keep its default MTU, 1442, what it always was.
pub const GENEVE_MAX_HEADER_SIZE: u32 = 38;
/// The largest request body the API reads, in bytes (oslo.middleware's
/// `max_request_body_size`, default 114688); a larger one is a 413.
pub const MAX_REQUEST_BODY: usize = 114_688;

/// The largest MTU a network may have on an underlay of `underlay_mtu` bytes (as Neutron's ML2
/// computes it): a geneve network loses the outer IPv4 header and the Geneve header, a flat
/// network is the underlay's own. Never above [`MAX_MTU`]; 0 when the underlay leaves no room.
pub fn max_network_mtu(underlay_mtu: u32, flat: bool) -> u32 {
    let mtu = if flat {
        underlay_mtu
    } else {
        underlay_mtu.saturating_sub(OVERLAY_IP_HEADER_LEN + GENEVE_MAX_HEADER_SIZE)
    };
    mtu.min(MAX_MTU)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_mtu() {
        assert_eq!(max_network_mtu(DEFAULT_UNDERLAY_MTU, false), DEFAULT_MTU);
        assert_eq!(max_network_mtu(1500, false), 1442);
        assert_eq!(max_network_mtu(1500, true), 1500);
        assert_eq!(max_network_mtu(9000, false), 8942);
        assert_eq!(max_network_mtu(9216, true), MAX_MTU);
        assert_eq!(max_network_mtu(10, false), 0);
    }
}
