//! Small formatters that reproduce how Open vSwitch prints numbers and addresses
//! (C's `%#x`, `ds_put_hex`, glibc's `inet_ntop`, CIDR-or-dotted netmasks), so that
//! tern's flow text is byte-for-byte what `ovs-ofctl` shows.

use std::fmt::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};

/// C's `%#x`: `0` for zero, `0x..` otherwise. (OVS's `ds_put_hex` prints the same.)
pub struct Hex(pub u128);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            f.write_char('0')
        } else {
            write!(f, "{:#x}", self.0)
        }
    }
}

/// An Ethernet address from the low 48 bits.
pub struct Eth(pub u128);

impl fmt::Display for Eth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = (self.0 as u64).to_be_bytes();
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[2], b[3], b[4], b[5], b[6], b[7])
    }
}

/// `eth[/mask]`, the mask shown unless it is all ones.
pub fn eth_masked(out: &mut dyn Write, value: u128, mask: Option<u128>) -> fmt::Result {
    write!(out, "{}", Eth(value))?;
    match mask {
        Some(m) if m & 0xffff_ffff_ffff != 0xffff_ffff_ffff => write!(out, "/{}", Eth(m)),
        _ => Ok(()),
    }
}

/// Number of leading one bits if `mask` is a CIDR mask of `bits` width.
fn cidr_len(mask: u128, bits: u32) -> Option<u32> {
    let full = if bits == 128 { u128::MAX } else { (1u128 << bits) - 1 };
    let m = mask & full;
    let inv = !m & full;
    // CIDR when the inverse is of the form 0..01..1
    if inv & inv.wrapping_add(1) == 0 {
        Some(bits - inv.count_ones())
    } else {
        None
    }
}

/// `a.b.c.d[/N or /a.b.c.d]` as OVS's `ip_format_masked`.
pub fn ipv4_masked(out: &mut dyn Write, value: u128, mask: Option<u128>) -> fmt::Result {
    write!(out, "{}", Ipv4Addr::from(value as u32))?;
    match mask {
        Some(m) if m as u32 != u32::MAX => match cidr_len(m, 32) {
            Some(n) => write!(out, "/{n}"),
            None => write!(out, "/{}", Ipv4Addr::from(m as u32)),
        },
        _ => Ok(()),
    }
}

/// `addr[/N or /addr]` as OVS's `ipv6_format_masked`.
pub fn ipv6_masked(out: &mut dyn Write, value: u128, mask: Option<u128>) -> fmt::Result {
    write!(out, "{}", Ipv6Text(value))?;
    match mask {
        Some(m) if m != u128::MAX => match cidr_len(m, 128) {
            Some(n) => write!(out, "/{n}"),
            None => write!(out, "/{}", Ipv6Text(m)),
        },
        _ => Ok(()),
    }
}

/// An IPv6 address exactly as glibc's `inet_ntop` writes it (which differs from
/// Rust's `Ipv6Addr` Display for IPv4-compatible addresses such as `::10.0.0.1`).
pub struct Ipv6Text(pub u128);

impl fmt::Display for Ipv6Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = Ipv6Addr::from(self.0);
        let words = addr.segments();
        // Longest run (first on ties) of at least two zero words.
        let (mut best_base, mut best_len) = (usize::MAX, 0usize);
        let mut i = 0;
        while i < 8 {
            if words[i] == 0 {
                let start = i;
                while i < 8 && words[i] == 0 {
                    i += 1;
                }
                let len = i - start;
                if len > best_len {
                    best_base = start;
                    best_len = len;
                }
            } else {
                i += 1;
            }
        }
        if best_len < 2 {
            best_base = usize::MAX;
            best_len = 0;
        }
        for (i, word) in words.iter().enumerate() {
            if best_base != usize::MAX && i >= best_base && i < best_base + best_len {
                if i == best_base {
                    f.write_char(':')?;
                }
                continue;
            }
            if i != 0 {
                f.write_char(':')?;
            }
            if i == 6 && best_base == 0 && (best_len == 6 || (best_len == 5 && words[5] == 0xffff)) {
                let o = addr.octets();
                return write!(f, "{}.{}.{}.{}", o[12], o[13], o[14], o[15]);
            }
            write!(f, "{word:x}")?;
        }
        if best_base != usize::MAX && best_base + best_len == 8 {
            f.write_char(':')?;
        }
        Ok(())
    }
}

/// `01.02.03` as OVS's `format_hex_arg` (used by `note:` and `userdata=`).
pub struct DottedHex<'a>(pub &'a [u8]);

impl fmt::Display for DottedHex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_char('.')?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Flag names the way OVS's `format_flags` (exact) and `format_flags_masked` print them.
pub fn flags_masked(
    out: &mut dyn Write,
    names: &dyn Fn(u32) -> Option<&'static str>,
    value: u32,
    mask: u32,
    max_mask: u32,
) -> fmt::Result {
    if mask == max_mask {
        if value == 0 {
            return out.write_char('0');
        }
        let mut bad = 0u32;
        let mut first = true;
        let mut rest = value;
        while rest != 0 {
            let bit = rest & rest.wrapping_neg();
            match names(bit) {
                Some(n) => {
                    if !first {
                        out.write_char('|')?;
                    }
                    out.write_str(n)?;
                    first = false;
                }
                None => bad |= bit,
            }
            rest &= !bit;
        }
        if bad != 0 {
            if !first {
                out.write_char('|')?;
            }
            write!(out, "{bad:#x}")?;
        }
        return Ok(());
    }
    if mask == 0 {
        return out.write_str("0/0");
    }
    let mut rest = mask;
    while rest != 0 {
        let bit = rest & rest.wrapping_neg();
        let sign = if value & bit != 0 { '+' } else { '-' };
        write!(out, "{sign}{}", names(bit).unwrap_or("[Unknown]"))?;
        rest &= !bit;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> String {
        Ipv6Text(u128::from(s.parse::<Ipv6Addr>().unwrap())).to_string()
    }

    #[test]
    fn ipv6_matches_glibc() {
        assert_eq!(v6("::2"), "::2");
        assert_eq!(v6("::1"), "::1");
        assert_eq!(v6("::1:2"), "::0.1.0.2");
        assert_eq!(v6("::ffff:1.2.3.4"), "::ffff:1.2.3.4");
        assert_eq!(v6("::ffff:0:1.2.3.4"), "::ffff:0:102:304");
        assert_eq!(v6("1::"), "1::");
        assert_eq!(v6("1:0:0:2::3"), "1:0:0:2::3");
        assert_eq!(v6("fe80::1:0:0:1"), "fe80::1:0:0:1");
        assert_eq!(v6("::"), "::");
        assert_eq!(v6("1:2:3:4:5:6:7:8"), "1:2:3:4:5:6:7:8");
        assert_eq!(v6("1:0:2:3:4:5:6:7"), "1:0:2:3:4:5:6:7");
    }

    #[test]
    fn masks() {
        let mut s = String::new();
        ipv4_masked(&mut s, 0x0a00_0000, Some(0xffff_ff00)).unwrap();
        s.push(' ');
        ipv4_masked(&mut s, 0x0a00_0000, Some(0xff00_ff00)).unwrap();
        s.push(' ');
        ipv6_masked(&mut s, 0xfe80 << 112, Some(u128::MAX << 64)).unwrap();
        assert_eq!(s, "10.0.0.0/24 10.0.0.0/255.0.255.0 fe80::/64");
        assert_eq!(Hex(0).to_string(), "0");
        assert_eq!(Hex(255).to_string(), "0xff");
    }
}
