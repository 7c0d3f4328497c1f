//! Field-level rules shared by several kinds: ids, lengths, CIDRs, reserved addresses.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::ValidationError;
use crate::kind::Kind;

use crate::limits::{MAX_ID_LEN, MAX_TEXT_LEN};

/// Checks an id: non-empty, at most [`MAX_ID_LEN`] characters, no `/` (it is a key segment) and no
/// control characters.
pub fn validate_id(kind: Kind, field: &str, id: &str) -> Result<(), ValidationError> {
    let err = |reason: &str| Err(ValidationError::new(kind, field, id, reason));
    if id.is_empty() {
        return err("must not be empty");
    }
    if id.chars().count() > MAX_ID_LEN {
        return err("longer than 255 characters");
    }
    if id.contains('/') {
        return err("must not contain '/'");
    }
    if id.chars().any(char::is_control) {
        return err("must not contain control characters");
    }
    Ok(())
}

/// An object's own id: empty means "the store generates one", otherwise it must be a valid id.
pub(crate) fn own_id(kind: Kind, id: &str) -> Result<(), ValidationError> {
    if id.is_empty() {
        Ok(())
    } else {
        validate_id(kind, "id", id)
    }
}

/// A reference that must be set.
pub(crate) fn ref_id(kind: Kind, field: &str, id: &str) -> Result<(), ValidationError> {
    validate_id(kind, field, id)
}

/// An optional reference: absent (null) is fine, present must be a valid id.
pub(crate) fn opt_ref_id(kind: Kind, field: &str, id: &Option<String>) -> Result<(), ValidationError> {
    match id {
        Some(id) => validate_id(kind, field, id),
        None => Ok(()),
    }
}

/// A list of references: each valid, no duplicates.
pub(crate) fn ref_ids(kind: Kind, field: &str, ids: &[String]) -> Result<(), ValidationError> {
    let mut seen = HashSet::new();
    for (i, id) in ids.iter().enumerate() {
        let f = format!("{field}[{i}]");
        validate_id(kind, &f, id)?;
        if !seen.insert(id.as_str()) {
            return Err(ValidationError::new(kind, f, id, "duplicate entry"));
        }
    }
    Ok(())
}

/// Free text no longer than [`MAX_TEXT_LEN`] characters, without NUL characters.
pub(crate) fn text(kind: Kind, field: &str, s: &str) -> Result<(), ValidationError> {
    if s.chars().count() > MAX_TEXT_LEN {
        return Err(ValidationError::new(kind, field, s, format!("longer than {MAX_TEXT_LEN} characters")));
    }
    if s.contains('\0') {
        return Err(ValidationError::new(kind, field, s.escape_debug(), "must not contain NUL characters"));
    }
    Ok(())
}

/// A list of at most `max` entries; `what` is Neutron's reason ("The number of host routes
/// exceeds the limit 20", ...). The value shown is the count.
pub(crate) fn at_most(
    kind: Kind,
    field: &str,
    len: usize,
    max: usize,
    what: String,
) -> Result<(), ValidationError> {
    if len > max {
        return Err(ValidationError::new(kind, field, format!("{len} entries"), what));
    }
    Ok(())
}

/// The common `name`, `description`, `project_id` trio.
pub(crate) fn common_text(
    kind: Kind,
    name: &str,
    description: &str,
    project_id: &str,
) -> Result<(), ValidationError> {
    text(kind, "name", name)?;
    text(kind, "description", description)?;
    text(kind, "project_id", project_id)
}

/// A CIDR must name a network: host bits zero.
pub(crate) fn network_cidr(kind: Kind, field: &str, net: &IpNet) -> Result<(), ValidationError> {
    let trunc = net.trunc();
    if trunc != *net {
        return Err(ValidationError::new(
            kind,
            field,
            net,
            format!("not a network address: host bits are set (did you mean {trunc}?)"),
        ));
    }
    Ok(())
}

/// Parses `s` as a CIDR (`10.0.0.0/24`) or a plain address (taken as a host route, `/32` or `/128`).
pub(crate) fn parse_ip_or_cidr(s: &str) -> Option<IpNet> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Some(net);
    }
    s.parse::<IpAddr>().ok().map(IpNet::from)
}

pub(crate) fn family(ip: &IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IPv4",
        IpAddr::V6(_) => "IPv6",
    }
}

pub(crate) fn net_family(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "IPv4",
        IpNet::V6(_) => "IPv6",
    }
}

pub(crate) fn same_family(net: &IpNet, ip: &IpAddr) -> bool {
    net_family(net) == family(ip)
}

/// Why `ip` may not be given to a host on `net`, if it may not: the network address itself, or (IPv4
/// with a prefix of /30 or shorter) the broadcast address. `ip` is assumed to be inside `net`.
pub(crate) fn reserved_reason(net: &IpNet, ip: &IpAddr) -> Option<&'static str> {
    let host_addressing = match net {
        IpNet::V4(n) => n.prefix_len() <= 30,
        IpNet::V6(n) => n.prefix_len() <= 126,
    };
    if !host_addressing {
        return None;
    }
    if *ip == net.network() {
        return Some("is the subnet's network address");
    }
    if matches!(net, IpNet::V4(_)) && *ip == net.broadcast() {
        return Some("is the subnet's broadcast address");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        validate_id(Kind::Port, "id", "a").unwrap();
        validate_id(Kind::Port, "id", &"x".repeat(255)).unwrap();
        for (bad, why) in
            [("", "empty"), ("a/b", "'/'"), ("a\nb", "control"), (&"x".repeat(256) as &str, "255")]
        {
            let e = validate_id(Kind::Port, "network_id", bad).unwrap_err();
            assert_eq!(e.field, "network_id");
            assert_eq!(e.value, bad);
            assert!(e.reason.contains(why), "{e}");
        }
    }

    #[test]
    fn display_format() {
        let e = ValidationError::new(Kind::Port, "mac_address", "01:00:5e:00:00:01", "multicast MAC address");
        assert_eq!(
            e.to_string(),
            r#"invalid port field "mac_address" = "01:00:5e:00:00:01": multicast MAC address"#
        );
    }

    #[test]
    fn reserved() {
        let net: IpNet = "10.0.0.0/24".parse().unwrap();
        assert!(reserved_reason(&net, &"10.0.0.0".parse().unwrap()).is_some());
        assert!(reserved_reason(&net, &"10.0.0.255".parse().unwrap()).is_some());
        assert!(reserved_reason(&net, &"10.0.0.1".parse().unwrap()).is_none());
        let p2p: IpNet = "10.0.0.0/31".parse().unwrap();
        assert!(reserved_reason(&p2p, &"10.0.0.0".parse().unwrap()).is_none());
        let v6: IpNet = "fd00::/64".parse().unwrap();
        assert!(reserved_reason(&v6, &"fd00::".parse().unwrap()).is_some());
        assert!(reserved_reason(&v6, &"fd00::ffff:ffff:ffff:ffff".parse().unwrap()).is_none());
    }
}
