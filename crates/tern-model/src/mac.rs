//! MAC addresses: checking the `aa:bb:cc:dd:ee:ff` text form and generating Neutron-style
//! `fa:16:3e:xx:xx:xx` addresses.

use crate::error::ValidationError;
use crate::kind::Kind;

/// The prefix Neutron (and tern) uses for generated MACs (locally administered, unicast).
pub const MAC_PREFIX: [u8; 3] = [0xfa, 0x16, 0x3e];

/// Parses exactly six colon-separated pairs of hex digits (either case).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut out {
        let p = parts.next()?;
        if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(p, 16).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(out)
}

/// Lowercase `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// Checks that `mac` is a well-formed, unicast, non-zero MAC and returns its bytes.
pub fn validate_mac(kind: Kind, field: &str, mac: &str) -> Result<[u8; 6], ValidationError> {
    let err = |reason: &str| ValidationError::new(kind, field, mac, reason);
    let bytes = parse_mac(mac).ok_or_else(|| {
        err("not a MAC address (expected six hex pairs separated by ':', e.g. fa:16:3e:00:00:01)")
    })?;
    if bytes == [0; 6] {
        return Err(err("all-zero MAC address"));
    }
    if bytes[0] & 1 == 1 {
        return Err(err(if bytes == [0xff; 6] { "broadcast MAC address" } else { "multicast MAC address" }));
    }
    Ok(bytes)
}

/// A deterministic `fa:16:3e:xx:xx:xx` MAC derived from `seed` (a mixing hash of it, so nearby seeds
/// give unrelated MACs). Callers must still check for collisions within a network.
pub fn generate_mac(seed: u64) -> String {
    // splitmix64 finaliser
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let b = z.to_be_bytes();
    format_mac([MAC_PREFIX[0], MAC_PREFIX[1], MAC_PREFIX[2], b[5], b[6], b[7]])
}

/// A random `fa:16:3e:xx:xx:xx` MAC.
pub fn random_mac() -> String {
    let r = uuid::Uuid::new_v4();
    let b = r.as_bytes();
    format_mac([MAC_PREFIX[0], MAC_PREFIX[1], MAC_PREFIX[2], b[0], b[1], b[2]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format() {
        assert_eq!(parse_mac("FA:16:3e:00:0a:ff"), Some([0xfa, 0x16, 0x3e, 0, 0x0a, 0xff]));
        for bad in [
            "",
            "fa:16:3e:00:0a",
            "fa:16:3e:00:0a:ff:00",
            "fa-16-3e-00-0a-ff",
            "fa:16:3e:00:0a:f",
            "fa:16:3e:00:0a:fff",
            "fa:16:3e:00:0a:+f",
            "fa:16:3e:00:0a:gg",
            "fa:16:3e:00:0a:ff:",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
        assert_eq!(format_mac([0xfa, 0x16, 0x3e, 1, 2, 3]), "fa:16:3e:01:02:03");
    }

    #[test]
    fn validation() {
        validate_mac(Kind::Port, "mac_address", "fa:16:3e:00:00:01").unwrap();
        let e = validate_mac(Kind::Port, "mac_address", "01:00:5e:00:00:01").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"invalid port field "mac_address" = "01:00:5e:00:00:01": multicast MAC address"#
        );
        let e = validate_mac(Kind::Port, "mac_address", "00:00:00:00:00:00").unwrap_err();
        assert!(e.reason.contains("all-zero"));
        let e = validate_mac(Kind::Port, "mac_address", "ff:ff:ff:ff:ff:ff").unwrap_err();
        assert!(e.reason.contains("broadcast"));
        let e = validate_mac(Kind::Port, "mac_address", "nope").unwrap_err();
        assert!(e.reason.contains("not a MAC"));
    }

    #[test]
    fn generated_macs_are_valid() {
        let mut seen = std::collections::HashSet::new();
        for seed in 0..1000 {
            let m = generate_mac(seed);
            assert!(m.starts_with("fa:16:3e:"));
            validate_mac(Kind::Port, "mac_address", &m).unwrap();
            seen.insert(m);
        }
        assert!(seen.len() > 990);
        assert_eq!(generate_mac(7), generate_mac(7));
        let r = random_mac();
        validate_mac(Kind::Port, "mac_address", &r).unwrap();
        assert!(r.starts_with("fa:16:3e:"));
    }
}
