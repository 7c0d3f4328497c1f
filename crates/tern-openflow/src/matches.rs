//! `Match`: an order-independent set of field constraints, its OpenFlow 1.2+ wire form
//! (`ofp_match` of type OXM) and its text exactly as OVS's `match_format` prints it.

use std::fmt::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::codec::{pad8_len, Reader, Writer};
use crate::error::DecodeError;
use crate::oxm::{self, ct_state, Field, FieldValue, MatchField, OxmEntry, RawOxm};
use crate::port;
use crate::text::{self, Hex};

/// Flows with this priority print without `priority=`.
pub const OFP_DEFAULT_PRIORITY: u16 = 0x8000;

const OFPMT_OXM: u16 = 1;

pub const ETH_TYPE_IP: u16 = 0x0800;
pub const ETH_TYPE_ARP: u16 = 0x0806;
pub const ETH_TYPE_RARP: u16 = 0x8035;
pub const ETH_TYPE_IPV6: u16 = 0x86dd;
pub const ETH_TYPE_MPLS: u16 = 0x8847;
pub const ETH_TYPE_MPLS_MCAST: u16 = 0x8848;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_SCTP: u8 = 132;
/// OFPVID_PRESENT: set in `vlan_vid` for a packet with an 802.1Q tag.
pub const OFPVID_PRESENT: u16 = 0x1000;

/// A set of (field, value, optional mask). Values are stored already masked
/// (`value & mask`), an all-ones mask is stored as an exact match and an all-zeros
/// mask removes the field, as OVS does; entries are kept in canonical field order, so
/// two matches built in different orders compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Match {
    fields: Vec<MatchField>,
    unknown: Vec<RawOxm>,
}

/// The mask that means "exact" for a field: all ones over its width, except that an
/// OXM `vlan_vid` is exact over its 13 meaningful bits.
fn exact_mask(field: Field) -> u128 {
    match field {
        Field::VlanVid => 0x1fff,
        f => f.full_mask(),
    }
}

impl Match {
    /// The empty match (matches every packet).
    pub fn new() -> Match {
        Match::default()
    }

    /// Adds or replaces the constraint on `field`.
    pub fn with(mut self, field: Field, value: impl Into<FieldValue>, mask: Option<FieldValue>) -> Match {
        self.set(field, value.into(), mask);
        self
    }

    pub fn exact(self, field: Field, value: impl Into<FieldValue>) -> Match {
        self.with(field, value, None)
    }

    pub fn masked(self, field: Field, value: impl Into<FieldValue>, mask: impl Into<FieldValue>) -> Match {
        let mask = mask.into();
        self.with(field, value, Some(mask))
    }

    /// Adds or replaces the constraint on `field`, normalising it as OVS does.
    pub fn set(&mut self, field: Field, value: FieldValue, mask: Option<FieldValue>) {
        // OVS keeps ct_state in 8 bits and reports it back as value/0xff even when
        // it was sent exact; store it the way it comes back.
        let mask = match field {
            Field::CtState => Some(FieldValue(mask.map_or(0xff, |m| m.0 & 0xff))),
            _ => mask,
        };
        let full = exact_mask(field);
        let (value, mask) = match mask {
            None => (value.0 & full, None),
            Some(m) => {
                let m = m.0 & field.full_mask();
                if m == 0 {
                    self.remove(field);
                    return;
                }
                if m & full == full {
                    (value.0 & full, None)
                } else {
                    (value.0 & m, Some(FieldValue(m)))
                }
            }
        };
        let entry = MatchField { field, value: FieldValue(value), mask };
        match self.fields.binary_search_by(|e| e.field.cmp(&field)) {
            Ok(i) => self.fields[i] = entry,
            Err(i) => self.fields.insert(i, entry),
        }
    }

    pub fn remove(&mut self, field: Field) {
        self.fields.retain(|e| e.field != field);
    }

    pub fn get(&self, field: Field) -> Option<&MatchField> {
        self.fields.binary_search_by(|e| e.field.cmp(&field)).ok().and_then(|i| self.fields.get(i))
    }

    /// The constraints, in canonical order.
    pub fn fields(&self) -> &[MatchField] {
        &self.fields
    }

    /// OXM entries read from the wire that this crate does not interpret.
    pub fn unknown(&self) -> &[RawOxm] {
        &self.unknown
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.unknown.is_empty()
    }

    pub fn len(&self) -> usize {
        self.fields.len() + self.unknown.len()
    }

    // --- builders, one per common field ---

    pub fn in_port(self, port: u32) -> Match {
        self.exact(Field::InPort, port)
    }
    pub fn eth_src(self, mac: [u8; 6]) -> Match {
        self.exact(Field::EthSrc, mac)
    }
    pub fn eth_src_masked(self, mac: [u8; 6], mask: [u8; 6]) -> Match {
        self.masked(Field::EthSrc, mac, mask)
    }
    pub fn eth_dst(self, mac: [u8; 6]) -> Match {
        self.exact(Field::EthDst, mac)
    }
    pub fn eth_dst_masked(self, mac: [u8; 6], mask: [u8; 6]) -> Match {
        self.masked(Field::EthDst, mac, mask)
    }
    pub fn eth_type(self, eth_type: u16) -> Match {
        self.exact(Field::EthType, eth_type)
    }
    /// OXM semantics: pass `OFPVID_PRESENT | vid` to match a tag, 0 for untagged.
    pub fn vlan_vid(self, vid: u16) -> Match {
        self.exact(Field::VlanVid, vid)
    }
    pub fn vlan_vid_masked(self, vid: u16, mask: u16) -> Match {
        self.masked(Field::VlanVid, vid, mask)
    }
    pub fn vlan_pcp(self, pcp: u8) -> Match {
        self.exact(Field::VlanPcp, pcp)
    }
    pub fn ip_proto(self, proto: u8) -> Match {
        self.exact(Field::IpProto, proto)
    }
    /// The 6-bit DSCP value.
    pub fn ip_dscp(self, dscp: u8) -> Match {
        self.exact(Field::IpDscp, dscp)
    }
    pub fn ip_ecn(self, ecn: u8) -> Match {
        self.exact(Field::IpEcn, ecn)
    }
    pub fn ip_ttl(self, ttl: u8) -> Match {
        self.exact(Field::IpTtl, ttl)
    }
    pub fn ipv4_src(self, ip: Ipv4Addr) -> Match {
        self.exact(Field::Ipv4Src, ip)
    }
    pub fn ipv4_src_masked(self, ip: Ipv4Addr, mask: Ipv4Addr) -> Match {
        self.masked(Field::Ipv4Src, ip, mask)
    }
    pub fn ipv4_dst(self, ip: Ipv4Addr) -> Match {
        self.exact(Field::Ipv4Dst, ip)
    }
    pub fn ipv4_dst_masked(self, ip: Ipv4Addr, mask: Ipv4Addr) -> Match {
        self.masked(Field::Ipv4Dst, ip, mask)
    }
    pub fn ipv6_src(self, ip: Ipv6Addr) -> Match {
        self.exact(Field::Ipv6Src, ip)
    }
    pub fn ipv6_src_masked(self, ip: Ipv6Addr, mask: Ipv6Addr) -> Match {
        self.masked(Field::Ipv6Src, ip, mask)
    }
    pub fn ipv6_dst(self, ip: Ipv6Addr) -> Match {
        self.exact(Field::Ipv6Dst, ip)
    }
    pub fn ipv6_dst_masked(self, ip: Ipv6Addr, mask: Ipv6Addr) -> Match {
        self.masked(Field::Ipv6Dst, ip, mask)
    }
    pub fn tcp_src(self, port: u16) -> Match {
        self.exact(Field::TcpSrc, port)
    }
    pub fn tcp_dst(self, port: u16) -> Match {
        self.exact(Field::TcpDst, port)
    }
    pub fn udp_src(self, port: u16) -> Match {
        self.exact(Field::UdpSrc, port)
    }
    /// The destination port of TCP (6), UDP (17) or SCTP (132) under a mask.
    pub fn tp_dst_masked(self, ip_proto: u8, port: u16, mask: u16) -> Match {
        let field = match ip_proto {
            6 => Field::TcpDst,
            132 => Field::SctpDst,
            _ => Field::UdpDst,
        };
        if mask == 0xffff {
            self.exact(field, port)
        } else {
            self.masked(field, port, mask)
        }
    }
    pub fn udp_dst(self, port: u16) -> Match {
        self.exact(Field::UdpDst, port)
    }
    pub fn icmpv4_type(self, t: u8) -> Match {
        self.exact(Field::Icmpv4Type, t)
    }
    pub fn icmpv4_code(self, c: u8) -> Match {
        self.exact(Field::Icmpv4Code, c)
    }
    pub fn icmpv6_type(self, t: u8) -> Match {
        self.exact(Field::Icmpv6Type, t)
    }
    pub fn icmpv6_code(self, c: u8) -> Match {
        self.exact(Field::Icmpv6Code, c)
    }
    pub fn arp_op(self, op: u16) -> Match {
        self.exact(Field::ArpOp, op)
    }
    pub fn arp_spa(self, ip: Ipv4Addr) -> Match {
        self.exact(Field::ArpSpa, ip)
    }
    pub fn arp_spa_masked(self, ip: Ipv4Addr, mask: Ipv4Addr) -> Match {
        self.masked(Field::ArpSpa, ip, mask)
    }
    pub fn arp_tpa(self, ip: Ipv4Addr) -> Match {
        self.exact(Field::ArpTpa, ip)
    }
    pub fn arp_sha(self, mac: [u8; 6]) -> Match {
        self.exact(Field::ArpSha, mac)
    }
    pub fn arp_tha(self, mac: [u8; 6]) -> Match {
        self.exact(Field::ArpTha, mac)
    }
    pub fn metadata(self, v: u64) -> Match {
        self.exact(Field::Metadata, v)
    }
    pub fn metadata_masked(self, v: u64, mask: u64) -> Match {
        self.masked(Field::Metadata, v, mask)
    }
    pub fn tun_id(self, v: u64) -> Match {
        self.exact(Field::TunnelId, v)
    }
    pub fn tun_id_masked(self, v: u64, mask: u64) -> Match {
        self.masked(Field::TunnelId, v, mask)
    }
    pub fn tun_ipv4_src(self, ip: Ipv4Addr) -> Match {
        self.exact(Field::TunIpv4Src, ip)
    }
    pub fn tun_ipv4_dst(self, ip: Ipv4Addr) -> Match {
        self.exact(Field::TunIpv4Dst, ip)
    }
    pub fn reg(self, n: u8, v: u32) -> Match {
        self.exact(Field::Reg(n), v)
    }
    pub fn reg_masked(self, n: u8, v: u32, mask: u32) -> Match {
        self.masked(Field::Reg(n), v, mask)
    }
    pub fn pkt_mark(self, v: u32) -> Match {
        self.exact(Field::PktMark, v)
    }
    /// `ct_state` in OVS's `+flag-flag` sense: bits in `set` must be on, bits in
    /// `clear` off (see `oxm::ct_state`).
    pub fn ct_state_flags(self, set: u32, clear: u32) -> Match {
        self.masked(Field::CtState, set, set | clear)
    }
    pub fn ct_state_masked(self, v: u32, mask: u32) -> Match {
        self.masked(Field::CtState, v, mask)
    }
    pub fn ct_zone(self, zone: u16) -> Match {
        self.exact(Field::CtZone, zone)
    }
    pub fn ct_mark(self, v: u32) -> Match {
        self.exact(Field::CtMark, v)
    }
    pub fn ct_mark_masked(self, v: u32, mask: u32) -> Match {
        self.masked(Field::CtMark, v, mask)
    }
    pub fn ct_label(self, v: u128) -> Match {
        self.exact(Field::CtLabel, v)
    }
    pub fn ct_label_masked(self, v: u128, mask: u128) -> Match {
        self.masked(Field::CtLabel, v, mask)
    }
    pub fn conj_id(self, id: u32) -> Match {
        self.exact(Field::ConjId, id)
    }
    /// `ip` (IPv4).
    pub fn ipv4(self) -> Match {
        self.eth_type(ETH_TYPE_IP)
    }
    pub fn ipv6(self) -> Match {
        self.eth_type(ETH_TYPE_IPV6)
    }
    pub fn arp(self) -> Match {
        self.eth_type(ETH_TYPE_ARP)
    }
    pub fn tcp(self) -> Match {
        self.ipv4().ip_proto(IPPROTO_TCP)
    }
    pub fn udp(self) -> Match {
        self.ipv4().ip_proto(IPPROTO_UDP)
    }
    pub fn icmp(self) -> Match {
        self.ipv4().ip_proto(IPPROTO_ICMP)
    }
    pub fn tcp6(self) -> Match {
        self.ipv6().ip_proto(IPPROTO_TCP)
    }
    pub fn udp6(self) -> Match {
        self.ipv6().ip_proto(IPPROTO_UDP)
    }
    pub fn icmp6(self) -> Match {
        self.ipv6().ip_proto(IPPROTO_ICMPV6)
    }

    // --- wire form ---

    /// Reads an `ofp_match` (type OXM) including its trailing padding.
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Match, DecodeError> {
        let mtype = r.u16()?;
        let length = usize::from(r.u16()?);
        if mtype != OFPMT_OXM {
            return Err(DecodeError::BadValue { what: "match type", value: u64::from(mtype) });
        }
        if length < 4 {
            return Err(DecodeError::BadLength { what: "match", length });
        }
        let mut body = r.sub(length - 4, "match")?;
        let m = Match::read_oxms(&mut body)?;
        r.skip(pad8_len(length).min(r.left()))?;
        Ok(m)
    }

    /// Reads a bare sequence of OXM TLVs (no `ofp_match` header) to the end.
    pub(crate) fn read_oxms(r: &mut Reader<'_>) -> Result<Match, DecodeError> {
        let mut m = Match::new();
        while !r.is_empty() {
            match oxm::read_oxm(r)? {
                OxmEntry::Known(mf) => m.set(mf.field, mf.value, mf.mask),
                OxmEntry::Unknown(raw) => {
                    if let Err(i) = m.unknown.binary_search(&raw) {
                        m.unknown.insert(i, raw);
                    }
                }
            }
        }
        Ok(m)
    }

    /// Writes an `ofp_match` of type OXM, padded to 8 bytes.
    pub(crate) fn write(&self, w: &mut Writer) {
        let start = w.len();
        w.u16(OFPMT_OXM);
        let len = w.len16(2);
        self.write_oxms(w);
        w.patch16(len);
        w.pad8(start);
    }

    /// Writes the bare OXM TLVs.
    pub(crate) fn write_oxms(&self, w: &mut Writer) {
        for e in &self.fields {
            oxm::write_oxm(w, e.field, e.value, e.mask);
        }
        for raw in &self.unknown {
            w.bytes(&raw.0);
        }
    }

    // --- text ---

    fn value(&self, field: Field) -> u128 {
        self.get(field).map_or(0, |e| e.value.0)
    }

    /// (value, mask) with the mask made explicit; mask 0 when absent.
    fn vm(&self, field: Field) -> (u128, u128) {
        match self.get(field) {
            None => (0, 0),
            Some(e) => (e.value.0, e.mask.map_or(field.full_mask(), |m| m.0)),
        }
    }

    /// Appends the match as OVS's `match_format` does, `priority=` included unless
    /// it is the default, without a trailing comma.
    pub(crate) fn format(&self, out: &mut String, priority: u16) -> fmt::Result {
        let start = out.len();
        if priority != OFP_DEFAULT_PRIORITY {
            write!(out, "priority={priority},")?;
        }
        let s = out;
        uint32_masked(s, "pkt_mark", self.vm(Field::PktMark))?;
        if self.get(Field::ConjId).is_some() {
            write!(s, "conj_id={},", self.value(Field::ConjId) as u32)?;
        }
        let (v, m) = self.vm(Field::CtState);
        let (v, m) = ((v & 0xff) as u32, (m & 0xff) as u32);
        if m != 0 {
            s.push_str("ct_state=");
            if m == 0xff {
                text::flags_masked(s, &ct_state::name, v, m, m)?;
            } else {
                text::flags_masked(s, &ct_state::name, v, m, 0xff)?;
            }
            s.push(',');
        }
        let (v, m) = self.vm(Field::CtZone);
        if m != 0 {
            if m == 0xffff {
                write!(s, "ct_zone={v},")?;
            } else {
                write!(s, "ct_zone={v:#x}/{m:#x},")?;
            }
        }
        uint32_masked(s, "ct_mark", self.vm(Field::CtMark))?;
        let (v, m) = self.vm(Field::CtLabel);
        if m != 0 {
            write!(s, "ct_label={}", Hex(v))?;
            if m != u128::MAX {
                write!(s, "/{}", Hex(m))?;
            }
            s.push(',');
        }

        let (dl_type, dl_mask) = self.vm(Field::EthType);
        let dl_type = dl_type as u16;
        let (nw_proto, proto_mask) = self.vm(Field::IpProto);
        let nw_proto = nw_proto as u8;
        let mut skip_type = false;
        let mut skip_proto = false;
        if dl_mask != 0 {
            skip_type = true;
            let (name4, name6) = match nw_proto {
                IPPROTO_ICMP => ("icmp", "ipv6"),
                IPPROTO_TCP => ("tcp", "tcp6"),
                IPPROTO_UDP => ("udp", "udp6"),
                IPPROTO_SCTP => ("sctp", "sctp6"),
                IPPROTO_ICMPV6 => ("ip", "icmp6"),
                _ => ("ip", "ipv6"),
            };
            match dl_type {
                ETH_TYPE_IP => {
                    if proto_mask != 0 {
                        skip_proto = name4 != "ip";
                        write!(s, "{name4},")?;
                    } else {
                        s.push_str("ip,");
                    }
                }
                ETH_TYPE_IPV6 => {
                    if proto_mask != 0 {
                        skip_proto = name6 != "ipv6";
                        write!(s, "{name6},")?;
                    } else {
                        s.push_str("ipv6,");
                    }
                }
                ETH_TYPE_ARP => s.push_str("arp,"),
                ETH_TYPE_RARP => s.push_str("rarp,"),
                ETH_TYPE_MPLS => s.push_str("mpls,"),
                ETH_TYPE_MPLS_MCAST => s.push_str("mplsm,"),
                _ => skip_type = false,
            }
        }
        for n in 0..16u8 {
            uint32_masked(s, Field::Reg(n).name(), self.vm(Field::Reg(n)))?;
        }
        be64_masked(s, "tun_id", self.vm(Field::TunnelId))?;
        ip_netmask(s, "tun_src", self.vm(Field::TunIpv4Src))?;
        ip_netmask(s, "tun_dst", self.vm(Field::TunIpv4Dst))?;
        be64_masked(s, "metadata", self.vm(Field::Metadata))?;
        if self.get(Field::InPort).is_some() {
            s.push_str("in_port=");
            port::format_port(s, self.value(Field::InPort) as u32)?;
            s.push(',');
        }
        self.format_vlan(s)?;
        eth_masked(s, "dl_src", self.vm(Field::EthSrc))?;
        eth_masked(s, "dl_dst", self.vm(Field::EthDst))?;
        if !skip_type && dl_mask != 0 {
            write!(s, "dl_type={dl_type:#06x},")?;
        }
        let is_arp = dl_type == ETH_TYPE_ARP || dl_type == ETH_TYPE_RARP;
        if dl_type == ETH_TYPE_IPV6 {
            ipv6_netmask(s, "ipv6_src", self.vm(Field::Ipv6Src))?;
            ipv6_netmask(s, "ipv6_dst", self.vm(Field::Ipv6Dst))?;
            let (v, m) = self.vm(Field::Ipv6Label);
            if m != 0 {
                if m as u32 == u32::MAX {
                    write!(s, "ipv6_label={v:#07x},")?;
                } else {
                    write!(s, "ipv6_label={v:#07x}/{m:#07x},")?;
                }
            }
        } else if is_arp {
            ip_netmask(s, "arp_spa", self.vm(Field::ArpSpa))?;
            ip_netmask(s, "arp_tpa", self.vm(Field::ArpTpa))?;
        } else {
            ip_netmask(s, "nw_src", self.vm(Field::Ipv4Src))?;
            ip_netmask(s, "nw_dst", self.vm(Field::Ipv4Dst))?;
        }
        if is_arp {
            if let Some(e) = self.get(Field::ArpOp) {
                write!(s, "arp_op={},", e.value.0 as u8)?;
            }
        } else if !skip_proto && proto_mask != 0 {
            write!(s, "nw_proto={nw_proto},")?;
        }
        if is_arp {
            eth_masked(s, "arp_sha", self.vm(Field::ArpSha))?;
            eth_masked(s, "arp_tha", self.vm(Field::ArpTha))?;
        }
        if let Some(e) = self.get(Field::IpDscp) {
            write!(s, "nw_tos={},", (e.value.0 as u8 & 0x3f) << 2)?;
        }
        if let Some(e) = self.get(Field::IpEcn) {
            write!(s, "nw_ecn={},", e.value.0 as u8 & 3)?;
        }
        if let Some(e) = self.get(Field::IpTtl) {
            write!(s, "nw_ttl={},", e.value.0 as u8)?;
        }
        let (v, m) = self.vm(Field::IpFrag);
        let (v, m) = (v as u8 & 3, m as u8 & 3);
        match m {
            3 => {
                let name = match v {
                    0 => "no",
                    1 => "first",
                    3 => "later",
                    _ => "<error>",
                };
                write!(s, "nw_frag={name},")?;
            }
            1 => write!(s, "nw_frag={},", if v & 1 != 0 { "yes" } else { "no" })?,
            2 => write!(s, "nw_frag={},", if v & 2 != 0 { "later" } else { "not_later" })?,
            _ => {}
        }
        // OVS keeps ICMP type/code in the 16-bit transport port slots.
        let icmp = |f: Field| match self.get(f) {
            Some(e) => (e.value.0, e.mask.map_or(0xffff, |m| m.0)),
            None => (0, 0),
        };
        if dl_type == ETH_TYPE_IP && nw_proto == IPPROTO_ICMP {
            be16_masked(s, "icmp_type", icmp(Field::Icmpv4Type))?;
            be16_masked(s, "icmp_code", icmp(Field::Icmpv4Code))?;
        } else if dl_type == ETH_TYPE_IPV6 && nw_proto == IPPROTO_ICMPV6 {
            be16_masked(s, "icmp_type", icmp(Field::Icmpv6Type))?;
            be16_masked(s, "icmp_code", icmp(Field::Icmpv6Code))?;
            ipv6_netmask(s, "nd_target", self.vm(Field::NdTarget))?;
            eth_masked(s, "nd_sll", self.vm(Field::NdSll))?;
            eth_masked(s, "nd_tll", self.vm(Field::NdTll))?;
        } else {
            let src = [Field::TcpSrc, Field::UdpSrc, Field::SctpSrc];
            let dst = [Field::TcpDst, Field::UdpDst, Field::SctpDst];
            let pick =
                |fs: [Field; 3]| fs.iter().find(|f| self.get(**f).is_some()).map_or((0, 0), |f| self.vm(*f));
            be16_masked(s, "tp_src", pick(src))?;
            be16_masked(s, "tp_dst", pick(dst))?;
        }
        if (dl_type == ETH_TYPE_IP || dl_type == ETH_TYPE_IPV6) && nw_proto == IPPROTO_TCP {
            let (v, m) = self.vm(Field::TcpFlags);
            if m != 0 {
                s.push_str("tcp_flags=");
                text::flags_masked(s, &oxm::tcp_flag_name, v as u32, (m & 0xfff) as u32, 0xfff)?;
                s.push(',');
            }
        }
        for raw in &self.unknown {
            s.push_str("unknown_oxm=0x");
            for b in &raw.0 {
                write!(s, "{b:02x}")?;
            }
            s.push(',');
        }
        if s.len() > start && s.ends_with(',') {
            s.pop();
        }
        Ok(())
    }

    /// VLAN constraints the way OVS prints its internal TCI (`dl_vlan=`,
    /// `dl_vlan_pcp=` or `vlan_tci=`).
    fn format_vlan(&self, s: &mut String) -> fmt::Result {
        let mut tci: u16 = 0;
        let mut tci_mask: u16 = 0;
        if let Some(e) = self.get(Field::VlanVid) {
            let m = e.mask.map_or(0x1fff, |m| m.0 as u16 & 0x1fff);
            tci_mask |= m;
            tci |= e.value.0 as u16 & m;
        }
        if let Some(e) = self.get(Field::VlanPcp) {
            tci |= ((e.value.0 as u16 & 7) << 13) | 0x1000;
            tci_mask |= 0xe000 | 0x1000;
        }
        if tci_mask == 0 {
            return Ok(());
        }
        let vid_mask = tci_mask & 0x0fff;
        let pcp_mask = tci_mask & 0xe000;
        let cfi = tci_mask & 0x1000 != 0;
        if cfi
            && tci & 0x1000 != 0
            && (vid_mask == 0 || vid_mask == 0x0fff)
            && (pcp_mask == 0 || pcp_mask == 0xe000)
            && (vid_mask != 0 || pcp_mask != 0)
        {
            if vid_mask != 0 {
                write!(s, "dl_vlan={},", tci & 0x0fff)?;
            }
            if pcp_mask != 0 {
                write!(s, "dl_vlan_pcp={},", tci >> 13)?;
            }
        } else if tci_mask == 0xffff {
            write!(s, "vlan_tci={tci:#06x},")?;
        } else {
            write!(s, "vlan_tci={tci:#06x}/{tci_mask:#06x},")?;
        }
        Ok(())
    }
}

impl fmt::Display for Match {
    /// The match as `ovs-ofctl` prints it (no priority); empty for the empty match.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.format(&mut s, OFP_DEFAULT_PRIORITY)?;
        f.write_str(&s)
    }
}

fn uint32_masked(s: &mut String, name: &str, (v, m): (u128, u128)) -> fmt::Result {
    let (v, m) = (v as u32, m as u32);
    if m != 0 {
        write!(s, "{name}={}", Hex(u128::from(v)))?;
        if m != u32::MAX {
            write!(s, "/{}", Hex(u128::from(m)))?;
        }
        s.push(',');
    }
    Ok(())
}

fn be64_masked(s: &mut String, name: &str, (v, m): (u128, u128)) -> fmt::Result {
    let (v, m) = (v as u64, m as u64);
    if m != 0 {
        write!(s, "{name}={}", Hex(u128::from(v)))?;
        if m != u64::MAX {
            write!(s, "/{}", Hex(u128::from(m)))?;
        }
        s.push(',');
    }
    Ok(())
}

fn be16_masked(s: &mut String, name: &str, (v, m): (u128, u128)) -> fmt::Result {
    let (v, m) = (v as u16, m as u16);
    if m != 0 {
        if m == u16::MAX {
            write!(s, "{name}={v},")?;
        } else {
            write!(s, "{name}={v:#x}/{m:#x},")?;
        }
    }
    Ok(())
}

fn ip_netmask(s: &mut String, name: &str, (v, m): (u128, u128)) -> fmt::Result {
    if m as u32 != 0 {
        write!(s, "{name}=")?;
        text::ipv4_masked(s, v, Some(m))?;
        s.push(',');
    }
    Ok(())
}

fn ipv6_netmask(s: &mut String, name: &str, (v, m): (u128, u128)) -> fmt::Result {
    if m != 0 {
        write!(s, "{name}=")?;
        text::ipv6_masked(s, v, Some(m))?;
        s.push(',');
    }
    Ok(())
}

fn eth_masked(s: &mut String, name: &str, (v, m): (u128, u128)) -> fmt::Result {
    if m & 0xffff_ffff_ffff != 0 {
        write!(s, "{name}=")?;
        text::eth_masked(s, v, Some(m))?;
        s.push(',');
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_ignores_insertion_order() {
        let a = Match::new().reg(6, 5).ipv4().in_port(3);
        let b = Match::new().in_port(3).eth_type(0x0800).reg(6, 5);
        assert_eq!(a, b);
    }

    #[test]
    fn normalises_masks() {
        let m = Match::new()
            .reg_masked(0, 0x1234, 0xff)
            .reg_masked(1, 7, 0xffff_ffff)
            .reg_masked(2, 7, 0)
            .vlan_vid_masked(0x1005, 0x1fff);
        assert_eq!(m.get(Field::Reg(0)).unwrap().value, FieldValue(0x34));
        assert_eq!(m.get(Field::Reg(1)).unwrap().mask, None);
        assert!(m.get(Field::Reg(2)).is_none());
        assert_eq!(m.get(Field::VlanVid).unwrap().mask, None);
    }

    #[test]
    fn formats_like_ovs() {
        let m = Match::new()
            .tcp()
            .tcp_dst(80)
            .reg_masked(0, 5, 0xff)
            .metadata(1)
            .tun_id(0x64)
            .ct_state_flags(ct_state::NEW | ct_state::TRK, 0)
            .vlan_vid(OFPVID_PRESENT | 5);
        assert_eq!(
            m.to_string(),
            "ct_state=+new+trk,tcp,reg0=0x5/0xff,tun_id=0x64,metadata=0x1,dl_vlan=5,tp_dst=80"
        );
        let mut s = String::new();
        Match::new().format(&mut s, 0).unwrap();
        assert_eq!(s, "priority=0");
    }

    #[test]
    fn wire_round_trip() {
        let m = Match::new()
            .tcp6()
            .ipv6_src_masked("fe80::".parse().unwrap(), "ffff:ffff:ffff:ffff::".parse().unwrap());
        let mut w = Writer::new();
        m.write(&mut w);
        assert_eq!(w.len() % 8, 0);
        let mut r = Reader::new(w.as_slice(), "t");
        assert_eq!(Match::read(&mut r).unwrap(), m);
        assert!(r.is_empty());
    }
}
