//! The table layout of br-int: every table's number and name, in pipeline order, and the register
//! convention. Flows, tests, `tern flows dump --names` and the docs all take the numbers from here.

/// Register holding the source port's unique key (set by the classifier for VIF traffic; 0 for
/// traffic from a tunnel).
pub const REG_SRC_PORT: u8 = 6;
/// Register holding the destination port's unique key (set by the lookups).
pub const REG_DST_PORT: u8 = 7;
// `metadata` holds the network's unique key (the router's while routing).

/// One pipeline table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Table {
    pub id: u8,
    pub name: &'static str,
    pub purpose: &'static str,
}

pub const CLASSIFY: u8 = 0;
pub const PORT_SECURITY: u8 = 5;
pub const EGRESS_ACL: u8 = 10;
pub const EGRESS_ACL_CT: u8 = 11;
pub const SERVICES: u8 = 20;
pub const L2_LOOKUP: u8 = 30;
pub const L3_ROUTING: u8 = 40;
pub const L3_DNAT: u8 = 45;
pub const DISPATCH: u8 = 50;
pub const INGRESS_LOOKUP: u8 = 60;
pub const INGRESS_ACL: u8 = 65;
pub const INGRESS_ACL_CT: u8 = 66;
pub const OUTPUT: u8 = 70;

/// Every table, in pipeline order.
pub const ALL: [Table; 13] = [
    Table {
        id: CLASSIFY,
        name: "classify",
        purpose: "VIF, tunnel or external patch in_port -> source port (reg6), network (metadata)",
    },
    Table { id: PORT_SECURITY, name: "port_security", purpose: "source MAC/IP must belong to the port" },
    Table { id: EGRESS_ACL, name: "egress_acl", purpose: "egress security groups: into conntrack" },
    Table {
        id: EGRESS_ACL_CT,
        name: "egress_acl_ct",
        purpose: "egress security groups: established passes, new must match a rule",
    },
    Table { id: SERVICES, name: "services", purpose: "ARP responder, DHCP" },
    Table {
        id: L2_LOOKUP,
        name: "l2_lookup",
        purpose: "(network, dst MAC) -> destination port (reg7); router MAC -> L3; flood",
    },
    Table {
        id: L3_ROUTING,
        name: "l3_routing",
        purpose: "distributed routing: dec_ttl, MAC rewrite; floating IPs' SNAT out to the external network",
    },
    Table {
        id: L3_DNAT,
        name: "l3_dnat",
        purpose: "from the external network: ARP for floating IPs, DNAT to the fixed address",
    },
    Table {
        id: DISPATCH,
        name: "dispatch",
        purpose: "local destination -> ingress; remote -> tunnel to its location",
    },
    Table {
        id: INGRESS_LOOKUP,
        name: "ingress_lookup",
        purpose: "from tunnels: (network, dst MAC) -> destination port",
    },
    Table { id: INGRESS_ACL, name: "ingress_acl", purpose: "ingress security groups: into conntrack" },
    Table {
        id: INGRESS_ACL_CT,
        name: "ingress_acl_ct",
        purpose: "ingress security groups: established passes, new must match a rule",
    },
    Table { id: OUTPUT, name: "output", purpose: "destination port -> VIF ofport" },
];

/// The name of table `id`, if it is one of the pipeline's.
pub fn name(id: u8) -> Option<&'static str> {
    ALL.iter().find(|t| t.id == id).map(|t| t.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_in_pipeline_order_and_unique() {
        assert!(ALL.windows(2).all(|w| w[0].id < w[1].id));
        let mut names: Vec<_> = ALL.iter().map(|t| t.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert_eq!(name(L2_LOOKUP), Some("l2_lookup"));
        assert_eq!(name(7), None);
    }
}
