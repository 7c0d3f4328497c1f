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

/// The ranges addresses are allocated from, as integers, in order: the allocation pools (clamped
/// to the cidr), or the whole cidr without pools.
fn allocation_ranges(subnet: &Subnet) -> (IpNet, Vec<(u128, u128)>) {
    let cidr = subnet.cidr.trunc();
    let (lo, hi) = (ip_to_u128(&cidr.network()), ip_to_u128(&cidr.broadcast()));
    let ranges = if subnet.allocation_pools.is_empty() {
        vec![(lo, hi)]
    } else {
        subnet
            .allocation_pools
            .iter()
            .filter(|p| same_family(&cidr, &p.start) && same_family(&cidr, &p.end))
            .map(|p| (ip_to_u128(&p.start).max(lo), ip_to_u128(&p.end).min(hi)))
            .filter(|(a, b)| a <= b)
            .collect()
    };
    (cidr, ranges)
}

/// Every address of `subnet` that may be allocated (in its pools, or its cidr without pools;
/// never the network address, the IPv4 broadcast address or the gateway), each once, in the order
/// [`allocate_ip`] tries them, but starting at `start` and wrapping around: from `start` to the end
/// of the last pool, then from the first pool up to just before `start`. A `start` outside every
/// pool starts at the beginning. Lazy: taking the first few of a /64 costs the same as of a /29.
pub fn allocation_candidates(subnet: &Subnet, start: Option<IpAddr>) -> impl Iterator<Item = IpAddr> + '_ {
    let (cidr, ranges) = allocation_ranges(subnet);
    let v4 = matches!(cidr, IpNet::V4(_));
    let at = start.filter(|ip| same_family(&cidr, ip)).map(|ip| ip_to_u128(&ip));
    let found = at.and_then(|n| ranges.iter().position(|(a, b)| *a <= n && n <= *b).map(|i| (i, n)));
    let segments: Vec<(u128, u128)> = match found {
        Some((i, n)) => {
            let (a, b) = ranges[i];
            let mut s = vec![(n, b)];
            s.extend(ranges[i + 1..].iter().copied());
            s.extend(ranges[..i].iter().copied());
            if n > a {
                s.push((a, n - 1));
            }
            s
        }
        None => ranges,
    };
    segments
        .into_iter()
        .flat_map(|(a, b)| a..=b)
        .filter_map(move |n| u128_to_ip(v4, n))
        .filter(move |ip| subnet.gateway_ip != Some(*ip) && reserved_reason(&cidr, ip).is_none())
}

/// The address after `ip` (`None` past the last one of its family).
pub fn next_ip(ip: IpAddr) -> Option<IpAddr> {
    let n = ip_to_u128(&ip).checked_add(1)?;
    u128_to_ip(ip.is_ipv4(), n)
}

/// The first free address of `subnet`: from its allocation pools in order, or, without pools, from the
/// whole cidr. Never returns the network address, the IPv4 broadcast address, the gateway, or an
/// address in `used`. `None` when the subnet is full.
///
/// Runs in time proportional to `used.len()` plus the number of pools, whatever the subnet size.
pub fn allocate_ip(subnet: &Subnet, used: &HashSet<IpAddr>) -> Option<IpAddr> {
    let (cidr, ranges) = allocation_ranges(subnet);
    let v4 = matches!(cidr, IpNet::V4(_));
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
    fn candidates_start_anywhere_and_wrap_once() {
        let mut s = subnet("10.0.0.0/29");
        s.gateway_ip = Some(ip("10.0.0.1"));
        let all = |s: &Subnet, start: Option<&str>| -> Vec<String> {
            allocation_candidates(s, start.map(ip)).map(|a| a.to_string()).collect()
        };
        let expect = |v: &[&str]| -> Vec<String> { v.iter().map(|a| format!("10.0.0.{a}")).collect() };
        assert_eq!(all(&s, None), expect(&["2", "3", "4", "5", "6"]));
        assert_eq!(all(&s, Some("10.0.0.4")), expect(&["4", "5", "6", "2", "3"]));
        // Outside every pool (the broadcast address, another family): from the beginning.
        assert_eq!(all(&s, Some("10.0.0.7")), expect(&["2", "3", "4", "5", "6"]));
        assert_eq!(all(&s, Some("fd00::4")), expect(&["2", "3", "4", "5", "6"]));
        // Pools in their order, wrapping across them.
        s.allocation_pools = vec![
            AllocationPool { start: ip("10.0.0.5"), end: ip("10.0.0.6") },
            AllocationPool { start: ip("10.0.0.2"), end: ip("10.0.0.3") },
        ];
        assert_eq!(all(&s, None), expect(&["5", "6", "2", "3"]));
        assert_eq!(all(&s, Some("10.0.0.6")), expect(&["6", "2", "3", "5"]));
        assert_eq!(all(&s, Some("10.0.0.3")), expect(&["3", "5", "6", "2"]));
        // Lazy on a huge subnet; the same order as allocate_ip.
        let mut v6 = subnet("fd00::/64");
        v6.gateway_ip = Some(ip("fd00::1"));
        let first: Vec<IpAddr> = allocation_candidates(&v6, None).take(2).collect();
        assert_eq!(first, [ip("fd00::2"), ip("fd00::3")]);
        assert_eq!(allocate_ip(&v6, &HashSet::new()), Some(first[0]));
        assert_eq!(next_ip(ip("10.0.0.255")), Some(ip("10.0.1.0")));
        assert_eq!(next_ip(ip("255.255.255.255")), None);
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
