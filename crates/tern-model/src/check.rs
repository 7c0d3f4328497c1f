//! Checks that need more than one object (still pure: the caller fetches the objects).

use crate::error::ValidationError;
use crate::kind::Kind;
use crate::network::Network;
use crate::port::Port;
use crate::subnet::Subnet;
use crate::validate::{family, net_family, reserved_reason, same_family};

/// Each of the port's fixed IPs names a subnet among `subnets` that is on the port's network, and its
/// address (when given) lies inside that subnet's cidr and is neither the network nor the (IPv4)
/// broadcast address. The gateway address is allowed (router interfaces hold it).
pub fn check_fixed_ips(port: &Port, subnets: &[Subnet]) -> Result<(), ValidationError> {
    let k = Kind::Port;
    for (i, fip) in port.fixed_ips.iter().enumerate() {
        let f = format!("fixed_ips[{i}]");
        if fip.subnet_id.is_empty() {
            return Err(ValidationError::new(
                k,
                format!("{f}.subnet_id"),
                "",
                "subnet not resolved (no subnet_id)",
            ));
        }
        let Some(subnet) = subnets.iter().find(|s| s.id == fip.subnet_id) else {
            return Err(ValidationError::new(k, format!("{f}.subnet_id"), &fip.subnet_id, "no such subnet"));
        };
        if subnet.network_id != port.network_id {
            return Err(ValidationError::new(
                k,
                format!("{f}.subnet_id"),
                &fip.subnet_id,
                format!(
                    "subnet is on network {:?}, not the port's network {:?}",
                    subnet.network_id, port.network_id
                ),
            ));
        }
        if let Some(ip) = &fip.ip_address {
            let field = format!("{f}.ip_address");
            let cidr = &subnet.cidr;
            if !same_family(cidr, ip) {
                return Err(ValidationError::new(
                    k,
                    field,
                    ip,
                    format!("{} address in {} subnet {cidr}", family(ip), net_family(cidr)),
                ));
            }
            if !cidr.contains(ip) {
                return Err(ValidationError::new(
                    k,
                    field,
                    ip,
                    format!("not inside subnet {:?} ({cidr})", subnet.id),
                ));
            }
            if let Some(why) = reserved_reason(&cidr.trunc(), ip) {
                return Err(ValidationError::new(k, field, ip, why));
            }
        }
    }
    Ok(())
}

/// The subnet belongs to `network`.
pub fn check_subnet_network(subnet: &Subnet, network: &Network) -> Result<(), ValidationError> {
    if subnet.network_id != network.id {
        return Err(ValidationError::new(
            Kind::Subnet,
            "network_id",
            &subnet.network_id,
            format!("subnet is not on network {:?}", network.id),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::FixedIp;

    fn subnet(id: &str, net: &str, cidr: &str) -> Subnet {
        let mut s = Subnet::new(net, cidr.parse().unwrap());
        s.id = id.into();
        s
    }

    fn port(ips: &[(&str, Option<&str>)]) -> Port {
        let mut p = Port::new("net-1");
        p.fixed_ips = ips
            .iter()
            .map(|(s, ip)| FixedIp { subnet_id: s.to_string(), ip_address: ip.map(|ip| ip.parse().unwrap()) })
            .collect();
        p
    }

    fn fails(p: &Port, subnets: &[Subnet], field: &str, value: &str) {
        let e = check_fixed_ips(p, subnets).unwrap_err();
        assert_eq!((e.field.as_str(), e.value.as_str()), (field, value), "{e}");
    }

    #[test]
    fn fixed_ips() {
        let subnets = [
            subnet("s4", "net-1", "10.0.0.0/24"),
            subnet("s6", "net-1", "fd00::/64"),
            subnet("other", "net-2", "10.1.0.0/24"),
        ];
        check_fixed_ips(&port(&[("s4", Some("10.0.0.1")), ("s6", None)]), &subnets).unwrap();
        check_fixed_ips(&port(&[]), &[]).unwrap();
        fails(&port(&[("nope", None)]), &subnets, "fixed_ips[0].subnet_id", "nope");
        fails(&port(&[("", Some("10.0.0.5"))]), &subnets, "fixed_ips[0].subnet_id", "");
        fails(&port(&[("s4", None), ("other", None)]), &subnets, "fixed_ips[1].subnet_id", "other");
        fails(&port(&[("s4", Some("10.0.1.5"))]), &subnets, "fixed_ips[0].ip_address", "10.0.1.5");
        fails(&port(&[("s4", Some("10.0.0.0"))]), &subnets, "fixed_ips[0].ip_address", "10.0.0.0");
        fails(&port(&[("s4", Some("10.0.0.255"))]), &subnets, "fixed_ips[0].ip_address", "10.0.0.255");
        fails(&port(&[("s6", Some("10.0.0.5"))]), &subnets, "fixed_ips[0].ip_address", "10.0.0.5");
        fails(&port(&[("s6", Some("fd00::"))]), &subnets, "fixed_ips[0].ip_address", "fd00::");
    }

    #[test]
    fn subnet_network() {
        let n = Network { id: "net-1".into(), ..Network::default() };
        check_subnet_network(&subnet("s", "net-1", "10.0.0.0/24"), &n).unwrap();
        let e = check_subnet_network(&subnet("s", "net-2", "10.0.0.0/24"), &n).unwrap_err();
        assert_eq!((e.kind, e.field.as_str(), e.value.as_str()), (Kind::Subnet, "network_id", "net-2"));
    }
}
