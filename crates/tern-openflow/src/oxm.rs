//! Match fields: which fields tern knows, their OXM/NXM headers, widths and names,
//! and reading/writing single OXM TLVs. The match as a whole lives in `matches.rs`.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::codec::{be_uint, Reader, Writer};
use crate::error::DecodeError;
use crate::text::{self, Hex};
use crate::ONF_EXPERIMENTER_ID;

pub const OXM_CLASS_NXM0: u16 = 0x0000;
pub const OXM_CLASS_NXM1: u16 = 0x0001;
pub const OXM_CLASS_OPENFLOW_BASIC: u16 = 0x8000;
pub const OXM_CLASS_EXPERIMENTER: u16 = 0xffff;

/// `ct_state` bits, as OVS names them (`+new`, `+est`, ...).
pub mod ct_state {
    pub const NEW: u32 = 0x01;
    pub const EST: u32 = 0x02;
    pub const REL: u32 = 0x04;
    pub const RPL: u32 = 0x08;
    pub const INV: u32 = 0x10;
    pub const TRK: u32 = 0x20;
    pub const SNAT: u32 = 0x40;
    pub const DNAT: u32 = 0x80;

    pub(crate) fn name(bit: u32) -> Option<&'static str> {
        Some(match bit {
            NEW => "new",
            EST => "est",
            REL => "rel",
            RPL => "rpl",
            INV => "inv",
            TRK => "trk",
            SNAT => "snat",
            DNAT => "dnat",
            _ => return None,
        })
    }
}

pub(crate) fn tcp_flag_name(bit: u32) -> Option<&'static str> {
    Some(match bit {
        0x001 => "fin",
        0x002 => "syn",
        0x004 => "rst",
        0x008 => "psh",
        0x010 => "ack",
        0x020 => "urg",
        0x040 => "ece",
        0x080 => "cwr",
        0x100 => "ns",
        0x200 => "[200]",
        0x400 => "[400]",
        0x800 => "[800]",
        _ => return None,
    })
}

// === impl FieldValue ===

/// A field value or mask, right-aligned in 128 bits (the widest field, `ct_label`
/// or an IPv6 address, fills it). Build one with `From` (integers, `Ipv4Addr`,
/// `Ipv6Addr`, `[u8; 6]` for an Ethernet address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FieldValue(pub u128);

impl FieldValue {
    pub fn as_u128(self) -> u128 {
        self.0
    }
    pub fn as_u64(self) -> u64 {
        self.0 as u64
    }
    pub fn as_u32(self) -> u32 {
        self.0 as u32
    }
    pub fn as_ipv4(self) -> Ipv4Addr {
        Ipv4Addr::from(self.0 as u32)
    }
    pub fn as_ipv6(self) -> Ipv6Addr {
        Ipv6Addr::from(self.0)
    }
    pub fn as_mac(self) -> [u8; 6] {
        let b = (self.0 as u64).to_be_bytes();
        [b[2], b[3], b[4], b[5], b[6], b[7]]
    }
}

macro_rules! value_from_uint {
    ($($t:ty),*) => {$(
        impl From<$t> for FieldValue {
            fn from(v: $t) -> FieldValue { FieldValue(u128::from(v)) }
        }
    )*};
}
value_from_uint!(u8, u16, u32, u64, u128);

impl From<Ipv4Addr> for FieldValue {
    fn from(v: Ipv4Addr) -> FieldValue {
        FieldValue(u128::from(u32::from(v)))
    }
}

impl From<Ipv6Addr> for FieldValue {
    fn from(v: Ipv6Addr) -> FieldValue {
        FieldValue(u128::from(v))
    }
}

impl From<[u8; 6]> for FieldValue {
    fn from(v: [u8; 6]) -> FieldValue {
        FieldValue(be_uint(&v))
    }
}

// === impl Field ===

/// The match fields tern's pipeline uses (plus their close relatives).
///
/// The declaration order is the canonical order inside a `Match` and on the wire: it
/// puts every prerequisite before the fields that need it (eth_type before ip_proto
/// before tcp_dst), which OVS checks in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// OXM_OF_IN_PORT: a 32-bit OpenFlow 1.1+ port number.
    InPort,
    Metadata,
    TunnelId,
    TunIpv4Src,
    TunIpv4Dst,
    /// NXM_NX_REG0..15.
    Reg(u8),
    PktMark,
    CtState,
    CtZone,
    CtMark,
    CtLabel,
    ConjId,
    EthSrc,
    EthDst,
    EthType,
    /// OXM semantics: `0x1000 | vid` (OFPVID_PRESENT) for a tagged packet, 0 for none.
    VlanVid,
    VlanPcp,
    IpProto,
    /// The 6-bit DSCP value (OXM_OF_IP_DSCP); OVS prints it shifted, as `nw_tos`.
    IpDscp,
    IpEcn,
    IpTtl,
    /// NXM_NX_IP_FRAG: bit 0 "is a fragment", bit 1 "is a later fragment".
    IpFrag,
    Ipv4Src,
    Ipv4Dst,
    Ipv6Src,
    Ipv6Dst,
    Ipv6Label,
    ArpOp,
    ArpSpa,
    ArpTpa,
    ArpSha,
    ArpTha,
    TcpSrc,
    TcpDst,
    TcpFlags,
    UdpSrc,
    UdpDst,
    SctpSrc,
    SctpDst,
    Icmpv4Type,
    Icmpv4Code,
    Icmpv6Type,
    Icmpv6Code,
    NdTarget,
    NdSll,
    NdTll,
}

/// How a field's value is written in `ovs-ofctl` syntax (`set_field:` and friends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueKind {
    Port,
    Decimal,
    Hex,
    Ipv4,
    Ipv6,
    Eth,
    CtState,
    TcpFlags,
    Frag,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldInfo {
    pub class: u16,
    pub code: u8,
    /// Bytes on the wire.
    pub width: u8,
    /// Bits OVS considers the field to have (what `FIELD[]` covers).
    pub n_bits: u16,
    /// OVS's meta-flow name (`set_field:...->NAME`).
    pub name: &'static str,
    /// The name OVS prints in subfield syntax (`NAME[0..15]`).
    pub nxm_name: &'static str,
    pub kind: ValueKind,
}

const REG_NAMES: [&str; 16] = [
    "reg0", "reg1", "reg2", "reg3", "reg4", "reg5", "reg6", "reg7", "reg8", "reg9", "reg10", "reg11",
    "reg12", "reg13", "reg14", "reg15",
];
const REG_NXM_NAMES: [&str; 16] = [
    "NXM_NX_REG0",
    "NXM_NX_REG1",
    "NXM_NX_REG2",
    "NXM_NX_REG3",
    "NXM_NX_REG4",
    "NXM_NX_REG5",
    "NXM_NX_REG6",
    "NXM_NX_REG7",
    "NXM_NX_REG8",
    "NXM_NX_REG9",
    "NXM_NX_REG10",
    "NXM_NX_REG11",
    "NXM_NX_REG12",
    "NXM_NX_REG13",
    "NXM_NX_REG14",
    "NXM_NX_REG15",
];

/// Every field tern knows (registers expanded), in canonical order.
pub const ALL_FIELDS: &[Field] = &[
    Field::InPort,
    Field::Metadata,
    Field::TunnelId,
    Field::TunIpv4Src,
    Field::TunIpv4Dst,
    Field::Reg(0),
    Field::Reg(1),
    Field::Reg(2),
    Field::Reg(3),
    Field::Reg(4),
    Field::Reg(5),
    Field::Reg(6),
    Field::Reg(7),
    Field::Reg(8),
    Field::Reg(9),
    Field::Reg(10),
    Field::Reg(11),
    Field::Reg(12),
    Field::Reg(13),
    Field::Reg(14),
    Field::Reg(15),
    Field::PktMark,
    Field::CtState,
    Field::CtZone,
    Field::CtMark,
    Field::CtLabel,
    Field::ConjId,
    Field::EthSrc,
    Field::EthDst,
    Field::EthType,
    Field::VlanVid,
    Field::VlanPcp,
    Field::IpProto,
    Field::IpDscp,
    Field::IpEcn,
    Field::IpTtl,
    Field::IpFrag,
    Field::Ipv4Src,
    Field::Ipv4Dst,
    Field::Ipv6Src,
    Field::Ipv6Dst,
    Field::Ipv6Label,
    Field::ArpOp,
    Field::ArpSpa,
    Field::ArpTpa,
    Field::ArpSha,
    Field::ArpTha,
    Field::TcpSrc,
    Field::TcpDst,
    Field::TcpFlags,
    Field::UdpSrc,
    Field::UdpDst,
    Field::SctpSrc,
    Field::SctpDst,
    Field::Icmpv4Type,
    Field::Icmpv4Code,
    Field::Icmpv6Type,
    Field::Icmpv6Code,
    Field::NdTarget,
    Field::NdSll,
    Field::NdTll,
];

/// A second header some fields may arrive under, with a value translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alias {
    /// The same semantics under another header (NXM vs OXM).
    Same,
    /// NXM_OF_IN_PORT: a 16-bit OpenFlow 1.0 port.
    Port16,
    /// NXM_OF_IP_TOS: the DSCP bits in place (`tos & 0xfc`).
    Tos,
}

impl Field {
    /// NXM_NX_REG`n`.
    pub fn reg(n: u8) -> Field {
        Field::Reg(n)
    }

    pub(crate) fn info(self) -> FieldInfo {
        use Field::*;
        use ValueKind as K;
        let (class, code, width, n_bits, name, nxm_name, kind) = match self {
            InPort => (0x8000, 0, 4, 32, "in_port", "OXM_OF_IN_PORT", K::Port),
            Metadata => (0x8000, 2, 8, 64, "metadata", "OXM_OF_METADATA", K::Hex),
            TunnelId => (0x8000, 38, 8, 64, "tun_id", "NXM_NX_TUN_ID", K::Hex),
            TunIpv4Src => (1, 31, 4, 32, "tun_src", "NXM_NX_TUN_IPV4_SRC", K::Ipv4),
            TunIpv4Dst => (1, 32, 4, 32, "tun_dst", "NXM_NX_TUN_IPV4_DST", K::Ipv4),
            Reg(n) => {
                let i = usize::from(n);
                (
                    1,
                    n,
                    4,
                    32,
                    REG_NAMES.get(i).copied().unwrap_or("reg?"),
                    REG_NXM_NAMES.get(i).copied().unwrap_or("NXM_NX_REG?"),
                    K::Hex,
                )
            }
            PktMark => (1, 33, 4, 32, "pkt_mark", "NXM_NX_PKT_MARK", K::Hex),
            CtState => (1, 105, 4, 32, "ct_state", "NXM_NX_CT_STATE", K::CtState),
            CtZone => (1, 106, 2, 16, "ct_zone", "NXM_NX_CT_ZONE", K::Hex),
            CtMark => (1, 107, 4, 32, "ct_mark", "NXM_NX_CT_MARK", K::Hex),
            CtLabel => (1, 108, 16, 128, "ct_label", "NXM_NX_CT_LABEL", K::Hex),
            ConjId => (1, 37, 4, 32, "conj_id", "NXM_NX_CONJ_ID", K::Decimal),
            EthSrc => (0x8000, 4, 6, 48, "eth_src", "NXM_OF_ETH_SRC", K::Eth),
            EthDst => (0x8000, 3, 6, 48, "eth_dst", "NXM_OF_ETH_DST", K::Eth),
            EthType => (0x8000, 5, 2, 16, "eth_type", "NXM_OF_ETH_TYPE", K::Hex),
            VlanVid => (0x8000, 6, 2, 12, "vlan_vid", "OXM_OF_VLAN_VID", K::Decimal),
            VlanPcp => (0x8000, 7, 1, 3, "vlan_pcp", "OXM_OF_VLAN_PCP", K::Decimal),
            IpProto => (0x8000, 10, 1, 8, "nw_proto", "NXM_OF_IP_PROTO", K::Decimal),
            IpDscp => (0x8000, 8, 1, 6, "ip_dscp", "OXM_OF_IP_DSCP", K::Decimal),
            IpEcn => (0x8000, 9, 1, 2, "nw_ecn", "NXM_NX_IP_ECN", K::Decimal),
            IpTtl => (1, 29, 1, 8, "nw_ttl", "NXM_NX_IP_TTL", K::Decimal),
            IpFrag => (1, 26, 1, 2, "ip_frag", "NXM_NX_IP_FRAG", K::Frag),
            Ipv4Src => (0x8000, 11, 4, 32, "ip_src", "NXM_OF_IP_SRC", K::Ipv4),
            Ipv4Dst => (0x8000, 12, 4, 32, "ip_dst", "NXM_OF_IP_DST", K::Ipv4),
            Ipv6Src => (0x8000, 26, 16, 128, "ipv6_src", "NXM_NX_IPV6_SRC", K::Ipv6),
            Ipv6Dst => (0x8000, 27, 16, 128, "ipv6_dst", "NXM_NX_IPV6_DST", K::Ipv6),
            Ipv6Label => (0x8000, 28, 4, 20, "ipv6_label", "NXM_NX_IPV6_LABEL", K::Hex),
            ArpOp => (0x8000, 21, 2, 16, "arp_op", "NXM_OF_ARP_OP", K::Decimal),
            ArpSpa => (0x8000, 22, 4, 32, "arp_spa", "NXM_OF_ARP_SPA", K::Ipv4),
            ArpTpa => (0x8000, 23, 4, 32, "arp_tpa", "NXM_OF_ARP_TPA", K::Ipv4),
            ArpSha => (0x8000, 24, 6, 48, "arp_sha", "NXM_NX_ARP_SHA", K::Eth),
            ArpTha => (0x8000, 25, 6, 48, "arp_tha", "NXM_NX_ARP_THA", K::Eth),
            TcpSrc => (0x8000, 13, 2, 16, "tcp_src", "NXM_OF_TCP_SRC", K::Decimal),
            TcpDst => (0x8000, 14, 2, 16, "tcp_dst", "NXM_OF_TCP_DST", K::Decimal),
            TcpFlags => (1, 34, 2, 12, "tcp_flags", "NXM_NX_TCP_FLAGS", K::TcpFlags),
            UdpSrc => (0x8000, 15, 2, 16, "udp_src", "NXM_OF_UDP_SRC", K::Decimal),
            UdpDst => (0x8000, 16, 2, 16, "udp_dst", "NXM_OF_UDP_DST", K::Decimal),
            SctpSrc => (0x8000, 17, 2, 16, "sctp_src", "OXM_OF_SCTP_SRC", K::Decimal),
            SctpDst => (0x8000, 18, 2, 16, "sctp_dst", "OXM_OF_SCTP_DST", K::Decimal),
            Icmpv4Type => (0x8000, 19, 1, 8, "icmp_type", "NXM_OF_ICMP_TYPE", K::Decimal),
            Icmpv4Code => (0x8000, 20, 1, 8, "icmp_code", "NXM_OF_ICMP_CODE", K::Decimal),
            Icmpv6Type => (0x8000, 29, 1, 8, "icmpv6_type", "NXM_NX_ICMPV6_TYPE", K::Decimal),
            Icmpv6Code => (0x8000, 30, 1, 8, "icmpv6_code", "NXM_NX_ICMPV6_CODE", K::Decimal),
            NdTarget => (0x8000, 31, 16, 128, "nd_target", "NXM_NX_ND_TARGET", K::Ipv6),
            NdSll => (0x8000, 32, 6, 48, "nd_sll", "NXM_NX_ND_SLL", K::Eth),
            NdTll => (0x8000, 33, 6, 48, "nd_tll", "NXM_NX_ND_TLL", K::Eth),
        };
        FieldInfo { class, code, width, n_bits, name, nxm_name, kind }
    }

    /// Bytes the value occupies on the wire.
    pub fn width(self) -> usize {
        usize::from(self.info().width)
    }

    /// Bits in the field as OVS counts them (`FIELD[]` means bits `0..n_bits`).
    pub fn n_bits(self) -> u16 {
        self.info().n_bits
    }

    /// The `ovs-ofctl` name used by `set_field:` (e.g. `reg7`, `eth_dst`, `tun_id`).
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The name used in subfield syntax (e.g. `NXM_NX_REG7`, `OXM_OF_METADATA`).
    pub fn nxm_name(self) -> &'static str {
        self.info().nxm_name
    }

    /// All ones over the field's wire width.
    pub fn full_mask(self) -> u128 {
        width_mask(self.width())
    }

    /// The 32-bit OXM/NXM header without mask (`hasmask` clear, length = width).
    pub fn header(self) -> u32 {
        let i = self.info();
        oxm_header(i.class, i.code, false, i.width)
    }

    /// The field a 4-byte NXM/OXM header names, ignoring has-mask; only exact-width
    /// primary or same-meaning headers are accepted (as in move/load actions).
    pub fn from_header(header: u32) -> Option<Field> {
        let class = (header >> 16) as u16;
        let code = ((header >> 9) & 0x7f) as u8;
        match lookup(class, code, None) {
            Some((f, Alias::Same)) => Some(f),
            _ => None,
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub(crate) fn width_mask(width: usize) -> u128 {
    if width >= 16 {
        u128::MAX
    } else {
        (1u128 << (width * 8)) - 1
    }
}

pub(crate) fn oxm_header(class: u16, code: u8, hasmask: bool, len: u8) -> u32 {
    (u32::from(class) << 16) | (u32::from(code & 0x7f) << 9) | (u32::from(hasmask) << 8) | u32::from(len)
}

/// The field under (class, code[, experimenter]), including alias headers.
pub(crate) fn lookup(class: u16, code: u8, experimenter: Option<u32>) -> Option<(Field, Alias)> {
    use Field::*;
    let same = |f: Field| Some((f, Alias::Same));
    match (class, experimenter) {
        (OXM_CLASS_OPENFLOW_BASIC, None) => match code {
            0 => same(InPort),
            2 => same(Metadata),
            3 => same(EthDst),
            4 => same(EthSrc),
            5 => same(EthType),
            6 => same(VlanVid),
            7 => same(VlanPcp),
            8 => same(IpDscp),
            9 => same(IpEcn),
            10 => same(IpProto),
            11 => same(Ipv4Src),
            12 => same(Ipv4Dst),
            13 => same(TcpSrc),
            14 => same(TcpDst),
            15 => same(UdpSrc),
            16 => same(UdpDst),
            17 => same(SctpSrc),
            18 => same(SctpDst),
            19 => same(Icmpv4Type),
            20 => same(Icmpv4Code),
            21 => same(ArpOp),
            22 => same(ArpSpa),
            23 => same(ArpTpa),
            24 => same(ArpSha),
            25 => same(ArpTha),
            26 => same(Ipv6Src),
            27 => same(Ipv6Dst),
            28 => same(Ipv6Label),
            29 => same(Icmpv6Type),
            30 => same(Icmpv6Code),
            31 => same(NdTarget),
            32 => same(NdSll),
            33 => same(NdTll),
            38 => same(TunnelId),
            _ => None,
        },
        (OXM_CLASS_NXM0, None) => match code {
            0 => Some((InPort, Alias::Port16)),
            1 => same(EthDst),
            2 => same(EthSrc),
            3 => same(EthType),
            5 => Some((IpDscp, Alias::Tos)),
            6 => same(IpProto),
            7 => same(Ipv4Src),
            8 => same(Ipv4Dst),
            9 => same(TcpSrc),
            10 => same(TcpDst),
            11 => same(UdpSrc),
            12 => same(UdpDst),
            13 => same(Icmpv4Type),
            14 => same(Icmpv4Code),
            15 => same(ArpOp),
            16 => same(ArpSpa),
            17 => same(ArpTpa),
            _ => None,
        },
        (OXM_CLASS_NXM1, None) => match code {
            0..=15 => same(Reg(code)),
            16 => same(TunnelId),
            17 => same(ArpSha),
            18 => same(ArpTha),
            19 => same(Ipv6Src),
            20 => same(Ipv6Dst),
            21 => same(Icmpv6Type),
            22 => same(Icmpv6Code),
            23 => same(NdTarget),
            24 => same(NdSll),
            25 => same(NdTll),
            26 => same(IpFrag),
            27 => same(Ipv6Label),
            28 => same(IpEcn),
            29 => same(IpTtl),
            31 => same(TunIpv4Src),
            32 => same(TunIpv4Dst),
            33 => same(PktMark),
            34 => same(TcpFlags),
            37 => same(ConjId),
            105 => same(CtState),
            106 => same(CtZone),
            107 => same(CtMark),
            108 => same(CtLabel),
            _ => None,
        },
        // ONFOXM_ET_TCP_FLAGS, which OVS uses for tcp_flags in OpenFlow 1.3 replies.
        (OXM_CLASS_EXPERIMENTER, Some(ONF_EXPERIMENTER_ID)) if code == 42 => same(TcpFlags),
        _ => None,
    }
}

// === OXM TLVs ===

/// One match entry: a field with its value and, for a partial match, a mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MatchField {
    pub field: Field,
    pub value: FieldValue,
    pub mask: Option<FieldValue>,
}

/// An OXM TLV this crate does not interpret, kept whole (header included) so that a
/// decoded match re-encodes unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RawOxm(pub Vec<u8>);

pub(crate) enum OxmEntry {
    Known(MatchField),
    Unknown(RawOxm),
}

/// Reads one OXM/NXM TLV.
pub(crate) fn read_oxm(r: &mut Reader<'_>) -> Result<OxmEntry, DecodeError> {
    let start = r.peek(4).map(<[u8]>::to_vec).unwrap_or_default();
    let header = r.u32()?;
    let class = (header >> 16) as u16;
    let code = ((header >> 9) & 0x7f) as u8;
    let hasmask = header & 0x100 != 0;
    let mut len = (header & 0xff) as usize;
    let mut raw = start;
    let experimenter = if class == OXM_CLASS_EXPERIMENTER {
        if len < 4 {
            return Err(DecodeError::BadLength { what: "experimenter OXM", length: len });
        }
        let exp = r.u32()?;
        raw.extend_from_slice(&exp.to_be_bytes());
        len -= 4;
        Some(exp)
    } else {
        None
    };
    let payload = r.take(len)?;
    raw.extend_from_slice(payload);
    let known = lookup(class, code, experimenter).and_then(|(field, alias)| {
        let (value, mask) = if hasmask {
            if len & 1 != 0 {
                return None;
            }
            let (v, m) = payload.split_at(len / 2);
            (v, Some(m))
        } else {
            (payload, None)
        };
        let (value, mask) = match alias {
            Alias::Same if value.len() == field.width() => (be_uint(value), mask.map(be_uint)),
            Alias::Port16 if value.len() == 2 && mask.is_none() => {
                (u128::from(crate::port::port_from_u16(be_uint(value) as u16)), None)
            }
            Alias::Tos if value.len() == 1 && mask.is_none() => (be_uint(value) >> 2, None),
            _ => return None,
        };
        Some(MatchField { field, value: FieldValue(value), mask: mask.map(FieldValue) })
    });
    Ok(match known {
        Some(mf) => OxmEntry::Known(mf),
        None => OxmEntry::Unknown(RawOxm(raw)),
    })
}

/// Writes one OXM/NXM TLV under the field's primary header.
pub(crate) fn write_oxm(w: &mut Writer, field: Field, value: FieldValue, mask: Option<FieldValue>) {
    let info = field.info();
    let width = usize::from(info.width);
    let len = if mask.is_some() { info.width.saturating_mul(2) } else { info.width };
    w.u32(oxm_header(info.class, info.code, mask.is_some(), len));
    w.uint(value.0, width);
    if let Some(m) = mask {
        w.uint(m.0, width);
    }
}

/// `value[/mask]` as OVS's `mf_format` writes a field value (used by `set_field:`).
pub(crate) fn format_value(
    out: &mut dyn fmt::Write,
    field: Field,
    value: FieldValue,
    mask: Option<FieldValue>,
) -> fmt::Result {
    let full = field.full_mask();
    let mask = match mask {
        Some(m) if m.0 & full == 0 => return out.write_str("ANY"),
        Some(m) if m.0 & full == full => None,
        m => m.map(|m| m.0),
    };
    let v = value.0;
    match field.info().kind {
        ValueKind::Port if mask.is_none() => crate::port::format_port(out, v as u32),
        ValueKind::Port | ValueKind::Decimal | ValueKind::Hex => {
            if field.info().kind == ValueKind::Hex {
                write!(out, "{}", Hex(v))?;
            } else {
                write!(out, "{v}")?;
            }
            match mask {
                Some(m) => write!(out, "/{}", Hex(m)),
                None => Ok(()),
            }
        }
        ValueKind::CtState => text::flags_masked(
            out,
            &ct_state::name,
            v as u32,
            mask.unwrap_or(u128::from(u32::MAX)) as u32,
            u32::from(u16::MAX),
        ),
        ValueKind::TcpFlags => text::flags_masked(
            out,
            &tcp_flag_name,
            v as u32,
            (mask.unwrap_or(0xffff) & 0x0fff) as u32,
            0x0fff,
        ),
        ValueKind::Frag => out.write_str(frag_name(v as u8, mask.unwrap_or(0xff) as u8)),
        ValueKind::Eth => text::eth_masked(out, v, mask),
        ValueKind::Ipv4 => text::ipv4_masked(out, v, mask),
        ValueKind::Ipv6 => text::ipv6_masked(out, v, mask),
    }
}

/// OVS's names for ip_frag value/mask combinations.
pub(crate) fn frag_name(value: u8, mask: u8) -> &'static str {
    let mask = mask & 3;
    let value = value & mask;
    match (value, mask) {
        (0, 0) => "any",
        (1, 1) => "yes",
        (0, 1) => "no",
        (1, 3) => "first",
        (3, 3) => "later",
        (0, 3) => "no",
        (0, 2) => "not_later",
        (2, 2) => "later",
        _ => "<error>",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_round_trips_its_header() {
        for &f in ALL_FIELDS {
            let i = f.info();
            assert_eq!(lookup(i.class, i.code, None), Some((f, Alias::Same)), "{f:?}");
            assert_eq!(Field::from_header(f.header()), Some(f));
            assert!(usize::from(i.n_bits) <= f.width() * 8);
        }
        let mut sorted = ALL_FIELDS.to_vec();
        sorted.sort();
        assert_eq!(sorted, ALL_FIELDS);
    }

    #[test]
    fn oxm_tlv_round_trip() {
        let mut w = Writer::new();
        write_oxm(&mut w, Field::Reg(3), FieldValue(5), Some(FieldValue(0xff)));
        assert_eq!(w.as_slice(), &[0, 1, 7, 8, 0, 0, 0, 5, 0, 0, 0, 0xff]);
        let mut r = Reader::new(w.as_slice(), "t");
        match read_oxm(&mut r).unwrap() {
            OxmEntry::Known(m) => {
                assert_eq!(m.field, Field::Reg(3));
                assert_eq!(m.mask, Some(FieldValue(0xff)));
            }
            OxmEntry::Unknown(_) => panic!("unknown"),
        }
    }
}
