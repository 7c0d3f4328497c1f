//! Address arithmetic and picking a free address from a subnet.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::subnet::Subnet;
use crate::validate::{reserved_reason, same_family};

/// The address as an integer (IPv4 in the low 32 bits).
pub(crate) fn ip_to_u128(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(*a)),
        IpAddr::V6(a) => u128::from(*a),
    }
}

fn u128_to_ip(v4: bool, n: u128) -> Option<IpAddr> {
    if v4 {
        u32::try_from(n).ok().map(|n| IpAddr::V4(Ipv4Addr::from(n)))
    } else {
        Some(IpAddr::V6(Ipv6Addr::from(n)))
    }
}

/// The first free address of `subnet`: from its allocation pools in order, or, without pools, from the
/// whole cidr. Never returns the network address, the IPv4 broadcast address, the gateway, or an
/// address in `used`. `None` when the subnet is full.
///
/// Runs in time proportional to `used.len()` plus the number of pools, whatever the subnet size.
pub fn allocate_ip(subnet: &Subnet, used: &HashSet<IpAddr>) -> Option<IpAddr> {
    let cidr = subnet.cidr.trunc();
    let v4 = matches!(cidr, IpNet::V4(_));
    let (lo, hi) = (ip_to_u128(&cidr.network()), ip_to_u128(&cidr.broadcast()));
    let ranges: Vec<(u128, u128)> = if subnet.allocation_pools.is_empty() {
        vec![(lo, hi)]
    } else {
        subnet
            .allocation_pools
            .iter()
            .filter(|p| same_family(&cidr, &p.start) && same_family(&cidr, &p.end))
            .map(|p| (ip_to_u128(&p.start).max(lo), ip_to_u128(&p.end).min(hi)))
            .collect()
    };
    for (start, end) in ranges {
        let mut n = start;
        while n <= end {
            let ip = u128_to_ip(v4, n)?;
            let taken =
                used.contains(&ip) || subnet.gateway_ip == Some(ip) || reserved_reason(&cidr, &ip).is_some();
            if !taken {
                return Some(ip);
            }
            // Every address skipped is in `used`, the gateway, or reserved (at most two): bounded.
            n = n.checked_add(1)?;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subnet::AllocationPool;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn subnet(cidr: &str) -> Subnet {
        Subnet::new("n", cidr.parse().unwrap())
    }

    #[test]
    fn whole_cidr() {
        let mut s = subnet("10.0.0.0/24");
        s.gateway_ip = Some(ip("10.0.0.1"));
        let mut used = HashSet::new();
        assert_eq!(allocate_ip(&s, &used), Some(ip("10.0.0.2")));
        used.insert(ip("10.0.0.2"));
        assert_eq!(allocate_ip(&s, &used), Some(ip("10.0.0.3")));
        for i in 2..=254 {
            used.insert(ip(&format!("10.0.0.{i}")));
        }
        assert_eq!(allocate_ip(&s, &used), None);
    }

    #[test]
    fn pools_in_order() {
        let mut s = subnet("10.0.0.0/24");
        s.allocation_pools = vec![
            AllocationPool { start: ip("10.0.0.100"), end: ip("10.0.0.100") },
            AllocationPool { start: ip("10.0.0.50"), end: ip("10.0.0.60") },
        ];
        let mut used = HashSet::new();
        assert_eq!(allocate_ip(&s, &used), Some(ip("10.0.0.100")));
        used.insert(ip("10.0.0.100"));
        assert_eq!(allocate_ip(&s, &used), Some(ip("10.0.0.50")));
    }

    #[test]
    fn tiny_and_v6() {
        assert_eq!(allocate_ip(&subnet("10.0.0.0/32"), &HashSet::new()), Some(ip("10.0.0.0")));
        assert_eq!(allocate_ip(&subnet("10.0.0.4/30"), &HashSet::new()), Some(ip("10.0.0.5")));
        let mut s = subnet("fd00::/64");
        s.gateway_ip = Some(ip("fd00::1"));
        assert_eq!(allocate_ip(&s, &HashSet::new()), Some(ip("fd00::2")));
        let s = subnet("::/0");
        assert_eq!(allocate_ip(&s, &HashSet::new()), Some(ip("::1")));
    }

    #[test]
    fn huge_pool_outside_cidr_is_clamped() {
        let mut s = subnet("10.0.0.0/24");
        s.allocation_pools = vec![AllocationPool { start: ip("0.0.0.0"), end: ip("255.255.255.255") }];
        assert_eq!(allocate_ip(&s, &HashSet::new()), Some(ip("10.0.0.1")));
        s.allocation_pools[0].end = ip("fd00::1");
        assert_eq!(allocate_ip(&s, &HashSet::new()), None);
    }
}
