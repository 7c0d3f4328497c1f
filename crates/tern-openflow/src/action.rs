//! Actions: the OpenFlow 1.3+ standard ones tern uses and the Nicira extensions
//! (resubmit, move/load, ct/nat, conjunction, controller2, note), with their wire
//! forms and their text exactly as `ovs-ofctl` prints them. Anything else decodes to
//! `Action::Unknown` and re-encodes byte for byte.

use std::fmt::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::codec::{round8, Reader, Writer};
use crate::error::DecodeError;
use crate::oxm::{self, Field, FieldValue, OxmEntry};
use crate::port::{self, OFPP_CONTROLLER, OFPP_IN_PORT};
use crate::text::{self, DottedHex, Hex};
use crate::NX_VENDOR_ID;

const OFPAT_OUTPUT: u16 = 0;
const OFPAT_PUSH_VLAN: u16 = 17;
const OFPAT_POP_VLAN: u16 = 18;
const OFPAT_GROUP: u16 = 22;
const OFPAT_DEC_NW_TTL: u16 = 24;
const OFPAT_SET_FIELD: u16 = 25;
const OFPAT_EXPERIMENTER: u16 = 0xffff;

const NXAST_RESUBMIT: u16 = 1;
const NXAST_REG_MOVE: u16 = 6;
const NXAST_REG_LOAD: u16 = 7;
const NXAST_NOTE: u16 = 8;
const NXAST_RESUBMIT_TABLE: u16 = 14;
const NXAST_CONTROLLER: u16 = 20;
const NXAST_REG_LOAD2: u16 = 33;
const NXAST_CONJUNCTION: u16 = 34;
const NXAST_CT: u16 = 35;
const NXAST_NAT: u16 = 36;
const NXAST_CONTROLLER2: u16 = 37;
const NXAST_CT_CLEAR: u16 = 43;

const NXAC2PT_MAX_LEN: u16 = 0;
const NXAC2PT_CONTROLLER_ID: u16 = 1;
const NXAC2PT_REASON: u16 = 2;
const NXAC2PT_USERDATA: u16 = 3;
const NXAC2PT_PAUSE: u16 = 4;

const NX_CT_F_COMMIT: u16 = 1;
const NX_CT_F_FORCE: u16 = 2;
const NX_NAT_F_SRC: u16 = 1;
const NX_NAT_F_DST: u16 = 2;
const NX_NAT_F_PERSISTENT: u16 = 4;
const NX_NAT_F_PROTO_HASH: u16 = 8;
const NX_NAT_F_PROTO_RANDOM: u16 = 16;
const NX_NAT_RANGE_IPV4_MIN: u16 = 1;
const NX_NAT_RANGE_IPV4_MAX: u16 = 2;
const NX_NAT_RANGE_IPV6_MIN: u16 = 4;
const NX_NAT_RANGE_IPV6_MAX: u16 = 8;
const NX_NAT_RANGE_PROTO_MIN: u16 = 16;
const NX_NAT_RANGE_PROTO_MAX: u16 = 32;

/// "Send the whole packet" for output/controller actions.
pub const OFPCML_NO_BUFFER: u16 = 0xffff;
/// Packet-in reasons (as the controller action and packet-ins carry them).
pub const OFPR_NO_MATCH: u8 = 0;
pub const OFPR_ACTION: u8 = 1;
pub const OFPR_INVALID_TTL: u8 = 2;
/// Well-known ports for ct(alg=...).
pub const ALG_FTP: u16 = 21;
pub const ALG_TFTP: u16 = 69;

/// How deep actions may nest (ct inside write_actions inside ...) before decoding
/// refuses; bounds recursion on hostile input.
const MAX_NESTING: usize = 4;

// === impl FieldSlice ===

/// Bits `offset .. offset + n_bits` of a field (`NXM_NX_REG6[0..15]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldSlice {
    pub field: Field,
    pub offset: u16,
    pub n_bits: u16,
}

impl FieldSlice {
    /// The whole field (`FIELD[]`).
    pub fn whole(field: Field) -> FieldSlice {
        FieldSlice { field, offset: 0, n_bits: field.n_bits() }
    }

    /// Bits `first..=last` (the `FIELD[first..last]` syntax).
    pub fn bits(field: Field, first: u16, last: u16) -> FieldSlice {
        FieldSlice { field, offset: first, n_bits: last.saturating_sub(first).saturating_add(1) }
    }

    fn ofs_nbits(&self) -> u16 {
        (self.offset << 6) | (self.n_bits.saturating_sub(1) & 0x3f)
    }

    fn from_ofs_nbits(field: Field, v: u16) -> FieldSlice {
        FieldSlice { field, offset: v >> 6, n_bits: (v & 0x3f) + 1 }
    }
}

impl fmt::Display for FieldSlice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.field.nxm_name())?;
        if self.offset == 0 && self.n_bits == self.field.n_bits() {
            f.write_str("[]")
        } else if self.n_bits == 1 {
            write!(f, "[{}]", self.offset)
        } else {
            let last = u32::from(self.offset) + u32::from(self.n_bits) - 1;
            write!(f, "[{}..{}]", self.offset, last)
        }
    }
}

// === impl Ct ===

/// Where ct() takes its zone from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtZone {
    Immediate(u16),
    FromField(FieldSlice),
}

/// NXAST_CT: send the packet through conntrack.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ct {
    pub commit: bool,
    pub force: bool,
    pub zone: CtZone,
    /// Table to recirculate to (`table=`), or none.
    pub recirc_table: Option<u8>,
    /// Application-layer gateway port (ALG_FTP, ALG_TFTP) or 0.
    pub alg: u16,
    /// Nested actions: a leading `Nat`, then `SetField`/`Load` of ct_mark/ct_label.
    pub actions: Vec<Action>,
}

impl Ct {
    /// `ct(zone=zone)` without commit or recirculation.
    pub fn new(zone: CtZone) -> Ct {
        Ct { commit: false, force: false, zone, recirc_table: None, alg: 0, actions: Vec::new() }
    }
}

/// Which address NAT rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatKind {
    Src,
    Dst,
}

/// NXAST_NAT (only valid inside ct()). With `kind: None` it is the bare `nat`,
/// which applies the NAT already recorded for the connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Nat {
    pub kind: Option<NatKind>,
    pub ip_min: Option<IpAddr>,
    pub ip_max: Option<IpAddr>,
    pub port_min: Option<u16>,
    pub port_max: Option<u16>,
    pub persistent: bool,
    pub hash: bool,
    pub random: bool,
}

impl Nat {
    /// `nat(src=ip)`.
    pub fn src(ip: IpAddr) -> Nat {
        Nat { kind: Some(NatKind::Src), ip_min: Some(ip), ..Nat::default() }
    }

    /// `nat(dst=ip)`.
    pub fn dst(ip: IpAddr) -> Nat {
        Nat { kind: Some(NatKind::Dst), ip_min: Some(ip), ..Nat::default() }
    }
}

// === impl Action ===

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// OFPAT_OUTPUT. Output to OFPP_CONTROLLER decodes as `Controller`.
    Output {
        port: u32,
        max_len: u16,
    },
    /// OFPAT_SET_FIELD; a masked set is sent as NXAST_REG_LOAD2 before OpenFlow 1.5.
    SetField {
        field: Field,
        value: FieldValue,
        mask: Option<FieldValue>,
    },
    /// OFPAT_PUSH_VLAN with the given TPID (0x8100).
    PushVlan(u16),
    PopVlan,
    Group(u32),
    /// OFPAT_DEC_NW_TTL.
    DecTtl,
    /// NXAST_RESUBMIT(_TABLE); `None` means the packet's own in_port / this table.
    Resubmit {
        in_port: Option<u32>,
        table: Option<u8>,
    },
    /// NXAST_REG_MOVE (`src.n_bits` bits are copied).
    Move {
        src: FieldSlice,
        dst: FieldSlice,
    },
    /// NXAST_REG_LOAD.
    Load {
        dst: FieldSlice,
        value: u64,
    },
    Ct(Ct),
    CtClear,
    /// NXAST_NAT; only meaningful as the first action inside `Ct`.
    Nat(Nat),
    /// NXAST_CONJUNCTION; `clause` is 1-based as in `conjunction(id,clause/n_clauses)`.
    Conjunction {
        id: u32,
        clause: u8,
        n_clauses: u8,
    },
    /// Send to the controller: plain output:CONTROLLER when only max_len is set,
    /// NXAST_CONTROLLER for an id/reason, NXAST_CONTROLLER2 for userdata/pause.
    Controller {
        max_len: u16,
        controller_id: u16,
        reason: u8,
        userdata: Vec<u8>,
        pause: bool,
    },
    /// NXAST_NOTE. On the wire the note is zero-padded (to 6 + 8k bytes); decoding
    /// keeps that padding, and the text shows it either way, as OVS does.
    Note(Vec<u8>),
    /// An action this crate does not interpret: its type and everything after the
    /// 4-byte type/length header (for an experimenter action, the vendor id first).
    Unknown {
        action_type: u16,
        body: Vec<u8>,
    },
}

impl Action {
    pub fn output(port: u32) -> Action {
        Action::Output { port, max_len: 0 }
    }

    /// `set_field:value->field`.
    pub fn set_field(field: Field, value: impl Into<FieldValue>) -> Action {
        Action::SetField { field, value: value.into(), mask: None }
    }

    /// `resubmit(,table)`.
    pub fn resubmit(table: u8) -> Action {
        Action::Resubmit { in_port: None, table: Some(table) }
    }

    /// `load:value->dst`.
    pub fn load(dst: FieldSlice, value: u64) -> Action {
        Action::Load { dst, value }
    }

    /// `move:src->dst`.
    pub fn move_(src: FieldSlice, dst: FieldSlice) -> Action {
        Action::Move { src, dst }
    }

    /// `CONTROLLER:max_len`.
    pub fn controller(max_len: u16) -> Action {
        Action::Controller {
            max_len,
            controller_id: 0,
            reason: OFPR_ACTION,
            userdata: Vec::new(),
            pause: false,
        }
    }

    /// `controller(userdata=..[,pause])`.
    pub fn controller_userdata(userdata: Vec<u8>, pause: bool) -> Action {
        Action::Controller {
            max_len: OFPCML_NO_BUFFER,
            controller_id: 0,
            reason: OFPR_ACTION,
            userdata,
            pause,
        }
    }

    /// The action as it decodes after a trip through the wire: output to
    /// OFPP_CONTROLLER becomes `Controller`, a note carries its zero padding, and
    /// nested ct() actions are normalized too.
    pub fn normalized(&self) -> Action {
        let mut a = self.clone();
        a.normalize();
        a
    }

    /// [`Action::normalized`] in place (allocates only for a note that needs padding).
    pub fn normalize(&mut self) {
        match self {
            Action::Output { port: OFPP_CONTROLLER, max_len } => *self = Action::controller(*max_len),
            Action::Note(bytes) => {
                let len = bytes.len();
                bytes.resize(round8(10 + len).max(16) - 10, 0);
            }
            Action::Ct(ct) => ct.actions.iter_mut().for_each(Action::normalize),
            _ => {}
        }
    }

    // --- wire ---

    pub(crate) fn write(&self, w: &mut Writer, version: u8) {
        let start = w.len();
        match self {
            Action::Output { port, max_len } => {
                w.u16(OFPAT_OUTPUT);
                w.u16(16);
                w.u32(*port);
                w.u16(*max_len);
                w.zeros(6);
            }
            Action::SetField { field, value, mask } => {
                if mask.is_none() || version >= crate::OFP15 {
                    w.u16(OFPAT_SET_FIELD);
                    let len = w.len16(2);
                    oxm::write_oxm(w, *field, *value, *mask);
                    w.pad8(start);
                    w.patch16(len);
                } else {
                    let len = nx_header(w, NXAST_REG_LOAD2);
                    oxm::write_oxm(w, *field, *value, *mask);
                    w.pad8(start);
                    w.patch16(len);
                }
            }
            Action::PushVlan(tpid) => {
                w.u16(OFPAT_PUSH_VLAN);
                w.u16(8);
                w.u16(*tpid);
                w.zeros(2);
            }
            Action::PopVlan => {
                w.u16(OFPAT_POP_VLAN);
                w.u16(8);
                w.zeros(4);
            }
            Action::Group(id) => {
                w.u16(OFPAT_GROUP);
                w.u16(8);
                w.u32(*id);
            }
            Action::DecTtl => {
                w.u16(OFPAT_DEC_NW_TTL);
                w.u16(8);
                w.zeros(4);
            }
            Action::Resubmit { in_port, table } => {
                let subtype = if table.is_some() { NXAST_RESUBMIT_TABLE } else { NXAST_RESUBMIT };
                let len = nx_header(w, subtype);
                w.u16(port::port_to_u16(in_port.unwrap_or(OFPP_IN_PORT)));
                w.u8(table.unwrap_or(0xff));
                w.zeros(3);
                w.patch16(len);
            }
            Action::Move { src, dst } => {
                let len = nx_header(w, NXAST_REG_MOVE);
                w.u16(src.n_bits);
                w.u16(src.offset);
                w.u16(dst.offset);
                w.u32(src.field.header());
                w.u32(dst.field.header());
                w.pad8(start);
                w.patch16(len);
            }
            Action::Load { dst, value } => {
                let len = nx_header(w, NXAST_REG_LOAD);
                w.u16(dst.ofs_nbits());
                w.u32(dst.field.header());
                w.u64(*value);
                w.patch16(len);
            }
            Action::Ct(ct) => {
                let len = nx_header(w, NXAST_CT);
                let mut flags = 0;
                if ct.commit {
                    flags |= NX_CT_F_COMMIT;
                }
                if ct.force {
                    flags |= NX_CT_F_FORCE;
                }
                w.u16(flags);
                match ct.zone {
                    CtZone::Immediate(z) => {
                        w.u32(0);
                        w.u16(z);
                    }
                    CtZone::FromField(s) => {
                        w.u32(s.field.header());
                        w.u16(s.ofs_nbits());
                    }
                }
                w.u8(ct.recirc_table.unwrap_or(0xff));
                w.zeros(3);
                w.u16(ct.alg);
                write_actions(w, &ct.actions, version);
                w.pad8(start);
                w.patch16(len);
            }
            Action::CtClear => {
                let len = nx_header(w, NXAST_CT_CLEAR);
                w.zeros(6);
                w.patch16(len);
            }
            Action::Nat(nat) => {
                let len = nx_header(w, NXAST_NAT);
                w.zeros(2);
                let mut flags = match nat.kind {
                    Some(NatKind::Src) => NX_NAT_F_SRC,
                    Some(NatKind::Dst) => NX_NAT_F_DST,
                    None => 0,
                };
                if nat.persistent {
                    flags |= NX_NAT_F_PERSISTENT;
                }
                if nat.hash {
                    flags |= NX_NAT_F_PROTO_HASH;
                }
                if nat.random {
                    flags |= NX_NAT_F_PROTO_RANDOM;
                }
                w.u16(flags);
                let present_at = w.len();
                w.u16(0);
                let mut present = 0;
                for (ip, bit) in [(nat.ip_min, NX_NAT_RANGE_IPV4_MIN), (nat.ip_max, NX_NAT_RANGE_IPV4_MAX)] {
                    if let Some(IpAddr::V4(a)) = ip {
                        w.u32(u32::from(a));
                        present |= bit;
                    }
                }
                for (ip, bit) in [(nat.ip_min, NX_NAT_RANGE_IPV6_MIN), (nat.ip_max, NX_NAT_RANGE_IPV6_MAX)] {
                    if let Some(IpAddr::V6(a)) = ip {
                        w.u128(u128::from(a));
                        present |= bit;
                    }
                }
                if let Some(p) = nat.port_min {
                    w.u16(p);
                    present |= NX_NAT_RANGE_PROTO_MIN;
                }
                if let Some(p) = nat.port_max {
                    w.u16(p);
                    present |= NX_NAT_RANGE_PROTO_MAX;
                }
                w.set16(present_at, present);
                w.pad8(start);
                w.patch16(len);
            }
            Action::Conjunction { id, clause, n_clauses } => {
                let len = nx_header(w, NXAST_CONJUNCTION);
                w.u8(clause.wrapping_sub(1));
                w.u8(*n_clauses);
                w.u32(*id);
                w.patch16(len);
            }
            Action::Controller { max_len, controller_id, reason, userdata, pause } => {
                if !userdata.is_empty() || *pause {
                    let len = nx_header(w, NXAST_CONTROLLER2);
                    w.zeros(6);
                    if *max_len != OFPCML_NO_BUFFER {
                        put_prop(w, NXAC2PT_MAX_LEN, &max_len.to_be_bytes());
                    }
                    if *controller_id != 0 {
                        put_prop(w, NXAC2PT_CONTROLLER_ID, &controller_id.to_be_bytes());
                    }
                    if *reason != OFPR_ACTION {
                        put_prop(w, NXAC2PT_REASON, &[*reason]);
                    }
                    if !userdata.is_empty() {
                        put_prop(w, NXAC2PT_USERDATA, userdata);
                    }
                    if *pause {
                        put_prop(w, NXAC2PT_PAUSE, &[]);
                    }
                    w.pad8(start);
                    w.patch16(len);
                } else if *controller_id != 0 || *reason != OFPR_ACTION {
                    let len = nx_header(w, NXAST_CONTROLLER);
                    w.u16(*max_len);
                    w.u16(*controller_id);
                    w.u8(*reason);
                    w.u8(0);
                    w.patch16(len);
                } else {
                    Action::Output { port: OFPP_CONTROLLER, max_len: *max_len }.write(w, version);
                }
            }
            Action::Note(bytes) => {
                let len = nx_header(w, NXAST_NOTE);
                w.bytes(bytes);
                let total = round8(10 + bytes.len()).max(16);
                w.zeros(total - (10 + bytes.len()));
                w.patch16(len);
            }
            Action::Unknown { action_type, body } => {
                w.u16(*action_type);
                let len = w.len16(2);
                w.bytes(body);
                w.patch16(len);
            }
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>, version: u8, depth: usize) -> Result<Action, DecodeError> {
        let action_type = r.u16()?;
        let len = usize::from(r.u16()?);
        if len < 8 || len & 7 != 0 {
            return Err(DecodeError::BadLength { what: "action", length: len });
        }
        let body = r.take(len - 4)?;
        let mut b = Reader::new(body, "action");
        let unknown = || Action::Unknown { action_type, body: body.to_vec() };
        let action = match action_type {
            OFPAT_OUTPUT => {
                let port = b.u32()?;
                let max_len = b.u16()?;
                if port == OFPP_CONTROLLER {
                    Action::controller(max_len)
                } else {
                    Action::Output { port, max_len }
                }
            }
            OFPAT_SET_FIELD => match oxm::read_oxm(&mut b)? {
                OxmEntry::Known(m) => Action::SetField { field: m.field, value: m.value, mask: m.mask },
                OxmEntry::Unknown(_) => unknown(),
            },
            OFPAT_PUSH_VLAN => Action::PushVlan(b.u16()?),
            OFPAT_POP_VLAN => Action::PopVlan,
            OFPAT_GROUP => Action::Group(b.u32()?),
            OFPAT_DEC_NW_TTL => Action::DecTtl,
            OFPAT_EXPERIMENTER => {
                let vendor = b.u32()?;
                if vendor != NX_VENDOR_ID {
                    return Ok(unknown());
                }
                let subtype = b.u16()?;
                match read_nx(subtype, &mut b, version, depth)? {
                    Some(a) => a,
                    None => unknown(),
                }
            }
            _ => unknown(),
        };
        Ok(action)
    }
}

/// Writes an experimenter action header for a Nicira subtype; returns the length mark.
fn nx_header(w: &mut Writer, subtype: u16) -> crate::codec::LenMark {
    w.u16(OFPAT_EXPERIMENTER);
    let len = w.len16(2);
    w.u32(NX_VENDOR_ID);
    w.u16(subtype);
    len
}

/// An OpenFlow property (type, length, value, padding to 8).
pub(crate) fn put_prop(w: &mut Writer, ptype: u16, value: &[u8]) {
    let start = w.len();
    w.u16(ptype);
    let len = w.len16(2);
    w.bytes(value);
    w.patch16(len);
    w.pad8(start);
}

/// Reads one property: (type, value without padding).
pub(crate) fn read_prop<'a>(r: &mut Reader<'a>) -> Result<(u16, &'a [u8]), DecodeError> {
    let ptype = r.u16()?;
    let len = usize::from(r.u16()?);
    if len < 4 {
        return Err(DecodeError::BadLength { what: "property", length: len });
    }
    let value = r.take(len - 4)?;
    r.skip(crate::codec::pad8_len(len).min(r.left()))?;
    Ok((ptype, value))
}

fn slice_field(header: u32) -> Option<Field> {
    Field::from_header(header)
}

/// Reads a field header in a move action (4 bytes, or 8 for experimenter OXMs).
fn read_move_header(b: &mut Reader<'_>) -> Result<Option<Field>, DecodeError> {
    let h = b.u32()?;
    if h >> 16 == 0xffff {
        b.skip(4)?;
        return Ok(None);
    }
    Ok(slice_field(h))
}

/// Decodes the body of a Nicira action after its subtype; `None` for subtypes or
/// fields this crate does not know.
fn read_nx(
    subtype: u16,
    b: &mut Reader<'_>,
    version: u8,
    depth: usize,
) -> Result<Option<Action>, DecodeError> {
    let a = match subtype {
        NXAST_RESUBMIT | NXAST_RESUBMIT_TABLE => {
            let p = b.u16()?;
            let t = b.u8()?;
            let in_port = match port::port_from_u16(p) {
                OFPP_IN_PORT => None,
                p => Some(p),
            };
            let table = if subtype == NXAST_RESUBMIT || t == 0xff { None } else { Some(t) };
            Action::Resubmit { in_port, table }
        }
        NXAST_REG_MOVE => {
            let n_bits = b.u16()?;
            let src_ofs = b.u16()?;
            let dst_ofs = b.u16()?;
            let (Some(src), Some(dst)) = (read_move_header(b)?, read_move_header(b)?) else {
                return Ok(None);
            };
            Action::Move {
                src: FieldSlice { field: src, offset: src_ofs, n_bits },
                dst: FieldSlice { field: dst, offset: dst_ofs, n_bits },
            }
        }
        NXAST_REG_LOAD => {
            let ofs_nbits = b.u16()?;
            let Some(field) = slice_field(b.u32()?) else {
                return Ok(None);
            };
            Action::Load { dst: FieldSlice::from_ofs_nbits(field, ofs_nbits), value: b.u64()? }
        }
        NXAST_REG_LOAD2 => match oxm::read_oxm(b)? {
            OxmEntry::Known(m) => Action::SetField { field: m.field, value: m.value, mask: m.mask },
            OxmEntry::Unknown(_) => return Ok(None),
        },
        NXAST_NOTE => Action::Note(b.rest().to_vec()),
        NXAST_CT_CLEAR => Action::CtClear,
        NXAST_CONJUNCTION => {
            let clause = b.u8()?.wrapping_add(1);
            let n_clauses = b.u8()?;
            let id = b.u32()?;
            Action::Conjunction { id, clause, n_clauses }
        }
        NXAST_CONTROLLER => {
            let max_len = b.u16()?;
            let controller_id = b.u16()?;
            let reason = b.u8()?;
            Action::Controller { max_len, controller_id, reason, userdata: Vec::new(), pause: false }
        }
        NXAST_CONTROLLER2 => {
            b.skip(6)?;
            let mut max_len = OFPCML_NO_BUFFER;
            let mut controller_id = 0;
            let mut reason = OFPR_ACTION;
            let mut userdata = Vec::new();
            let mut pause = false;
            while !b.is_empty() {
                let (ptype, value) = read_prop(b)?;
                let mut v = Reader::new(value, "controller2 property");
                match ptype {
                    NXAC2PT_MAX_LEN => max_len = v.u16()?,
                    NXAC2PT_CONTROLLER_ID => controller_id = v.u16()?,
                    NXAC2PT_REASON => reason = v.u8()?,
                    NXAC2PT_USERDATA => userdata = value.to_vec(),
                    NXAC2PT_PAUSE => pause = true,
                    _ => {}
                }
            }
            Action::Controller { max_len, controller_id, reason, userdata, pause }
        }
        NXAST_CT => {
            if depth >= MAX_NESTING {
                return Err(DecodeError::TooDeep { what: "ct actions" });
            }
            let flags = b.u16()?;
            let zone_src = b.u32()?;
            let zone_v = b.u16()?;
            let recirc = b.u8()?;
            b.skip(3)?;
            let alg = b.u16()?;
            let zone = if zone_src == 0 {
                CtZone::Immediate(zone_v)
            } else {
                match slice_field(zone_src) {
                    Some(f) => CtZone::FromField(FieldSlice::from_ofs_nbits(f, zone_v)),
                    None => return Ok(None),
                }
            };
            let actions = read_actions(b, version, depth + 1)?;
            Action::Ct(Ct {
                commit: flags & NX_CT_F_COMMIT != 0,
                force: flags & NX_CT_F_FORCE != 0,
                zone,
                recirc_table: if recirc == 0xff { None } else { Some(recirc) },
                alg,
                actions,
            })
        }
        NXAST_NAT => {
            b.skip(2)?;
            let flags = b.u16()?;
            let present = b.u16()?;
            let kind = match (flags & NX_NAT_F_SRC != 0, flags & NX_NAT_F_DST != 0) {
                (true, false) => Some(NatKind::Src),
                (false, true) => Some(NatKind::Dst),
                (false, false) => None,
                (true, true) => {
                    return Err(DecodeError::BadValue { what: "nat flags", value: u64::from(flags) })
                }
            };
            let mut nat = Nat {
                kind,
                persistent: flags & NX_NAT_F_PERSISTENT != 0,
                hash: flags & NX_NAT_F_PROTO_HASH != 0,
                random: flags & NX_NAT_F_PROTO_RANDOM != 0,
                ..Nat::default()
            };
            if present & (NX_NAT_RANGE_IPV4_MIN | NX_NAT_RANGE_IPV4_MAX) != 0
                && present & (NX_NAT_RANGE_IPV6_MIN | NX_NAT_RANGE_IPV6_MAX) != 0
            {
                return Err(DecodeError::BadValue { what: "nat range", value: u64::from(present) });
            }
            if present & NX_NAT_RANGE_IPV4_MIN != 0 {
                nat.ip_min = Some(IpAddr::V4(Ipv4Addr::from(b.u32()?)));
            }
            if present & NX_NAT_RANGE_IPV4_MAX != 0 {
                nat.ip_max = Some(IpAddr::V4(Ipv4Addr::from(b.u32()?)));
            }
            if present & NX_NAT_RANGE_IPV6_MIN != 0 {
                nat.ip_min = Some(IpAddr::V6(Ipv6Addr::from(b.u128()?)));
            }
            if present & NX_NAT_RANGE_IPV6_MAX != 0 {
                nat.ip_max = Some(IpAddr::V6(Ipv6Addr::from(b.u128()?)));
            }
            if present & NX_NAT_RANGE_PROTO_MIN != 0 {
                nat.port_min = Some(b.u16()?);
            }
            if present & NX_NAT_RANGE_PROTO_MAX != 0 {
                nat.port_max = Some(b.u16()?);
            }
            Action::Nat(nat)
        }
        _ => return Ok(None),
    };
    Ok(Some(a))
}

/// Writes a list of actions.
pub(crate) fn write_actions(w: &mut Writer, actions: &[Action], version: u8) {
    for a in actions {
        a.write(w, version);
    }
}

/// Reads actions until the reader is exhausted.
pub(crate) fn read_actions(
    r: &mut Reader<'_>,
    version: u8,
    depth: usize,
) -> Result<Vec<Action>, DecodeError> {
    if depth > MAX_NESTING {
        return Err(DecodeError::TooDeep { what: "actions" });
    }
    let mut out = Vec::new();
    while !r.is_empty() {
        out.push(Action::read(r, version, depth)?);
    }
    Ok(out)
}

// === text ===

fn packet_in_reason_name(reason: u8) -> Option<&'static str> {
    Some(match reason {
        0 => "no_match",
        1 => "action",
        2 => "invalid_ttl",
        3 => "action_set",
        4 => "group",
        5 => "packet_out",
        6 => "explicit_miss",
        7 => "implicit_miss",
        _ => return None,
    })
}

fn format_nat(out: &mut dyn Write, nat: &Nat) -> fmt::Result {
    out.write_str("nat")?;
    let Some(kind) = nat.kind else {
        return Ok(());
    };
    out.write_str(match kind {
        NatKind::Src => "(src",
        NatKind::Dst => "(dst",
    })?;
    if let Some(min) = nat.ip_min {
        out.write_char('=')?;
        match min {
            IpAddr::V4(a) => {
                write!(out, "{a}")?;
                if let Some(IpAddr::V4(max)) = nat.ip_max {
                    if u32::from(max) != 0 && max != a {
                        write!(out, "-{max}")?;
                    }
                }
            }
            IpAddr::V6(a) => {
                let bracket = nat.port_min.is_some_and(|p| p != 0);
                let put = |out: &mut dyn Write, x: Ipv6Addr| -> fmt::Result {
                    if bracket {
                        write!(out, "[{}]", text::Ipv6Text(u128::from(x)))
                    } else {
                        write!(out, "{}", text::Ipv6Text(u128::from(x)))
                    }
                };
                put(out, a)?;
                if let Some(IpAddr::V6(max)) = nat.ip_max {
                    if u128::from(max) != 0 && max != a {
                        out.write_char('-')?;
                        put(out, max)?;
                    }
                }
            }
        }
        if let Some(pmin) = nat.port_min.filter(|p| *p != 0) {
            write!(out, ":{pmin}")?;
            if let Some(pmax) = nat.port_max {
                if pmax != 0 && pmax != pmin {
                    write!(out, "-{pmax}")?;
                }
            }
        }
        if nat.persistent {
            out.write_str(",persistent")?;
        }
        if nat.hash {
            out.write_str(",hash")?;
        }
        if nat.random {
            out.write_str(",random")?;
        }
    }
    out.write_char(')')
}

fn format_ct(out: &mut dyn Write, ct: &Ct) -> fmt::Result {
    let mut parts: Vec<String> = Vec::new();
    if ct.commit {
        parts.push("commit".into());
    }
    if ct.force {
        parts.push("force".into());
    }
    if let Some(t) = ct.recirc_table {
        parts.push(format!("table={t}"));
    }
    match ct.zone {
        CtZone::FromField(s) => parts.push(format!("zone={s}")),
        CtZone::Immediate(0) => {}
        CtZone::Immediate(z) => parts.push(format!("zone={z}")),
    }
    let mut rest: &[Action] = &ct.actions;
    if let Some((Action::Nat(nat), tail)) = rest.split_first() {
        let mut s = String::new();
        format_nat(&mut s, nat)?;
        parts.push(s);
        rest = tail;
    }
    if !rest.is_empty() {
        parts.push(format!("exec({})", ActionList(rest)));
    }
    match ct.alg {
        0 => {}
        ALG_FTP => parts.push("alg=ftp".into()),
        ALG_TFTP => parts.push("alg=tftp".into()),
        n => parts.push(format!("alg={n}")),
    }
    write!(out, "ct({})", parts.join(","))
}

impl fmt::Display for Action {
    /// The action as `ovs-ofctl` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Output { port, max_len } => {
                if *port == OFPP_CONTROLLER {
                    write!(f, "CONTROLLER:{max_len}")
                } else if *port < 0xff00 {
                    write!(f, "output:{port}")
                } else {
                    port::format_port(f, *port)
                }
            }
            Action::SetField { field, value, mask } => {
                f.write_str("set_field:")?;
                oxm::format_value(f, *field, *value, *mask)?;
                write!(f, "->{}", field.name())
            }
            Action::PushVlan(tpid) => write!(f, "push_vlan:{}", Hex(u128::from(*tpid))),
            Action::PopVlan => f.write_str("pop_vlan"),
            Action::Group(id) => write!(f, "group:{id}"),
            Action::DecTtl => f.write_str("dec_ttl"),
            Action::Resubmit { in_port, table } => match (in_port, table) {
                (Some(p), None) => write!(f, "resubmit:{}", port::PortName(*p)),
                _ => {
                    f.write_str("resubmit(")?;
                    if let Some(p) = in_port {
                        port::format_port(f, *p)?;
                    }
                    f.write_char(',')?;
                    if let Some(t) = table {
                        write!(f, "{t}")?;
                    }
                    f.write_char(')')
                }
            },
            Action::Move { src, dst } => {
                let dst = FieldSlice { n_bits: src.n_bits, ..*dst };
                write!(f, "move:{src}->{dst}")
            }
            Action::Load { dst, value } => write!(f, "load:{}->{dst}", Hex(u128::from(*value))),
            Action::Ct(ct) => format_ct(f, ct),
            Action::CtClear => f.write_str("ct_clear"),
            Action::Nat(nat) => format_nat(f, nat),
            Action::Conjunction { id, clause, n_clauses } => {
                write!(f, "conjunction({id},{clause}/{n_clauses})")
            }
            Action::Controller { max_len, controller_id, reason, userdata, pause } => {
                if *reason == OFPR_ACTION && *controller_id == 0 && userdata.is_empty() && !pause {
                    return write!(f, "CONTROLLER:{max_len}");
                }
                let mut parts: Vec<String> = Vec::new();
                if *reason != OFPR_ACTION {
                    parts.push(match packet_in_reason_name(*reason) {
                        Some(n) => format!("reason={n}"),
                        None => format!("reason={reason}"),
                    });
                }
                if *max_len != OFPCML_NO_BUFFER {
                    parts.push(format!("max_len={max_len}"));
                }
                if *controller_id != 0 {
                    parts.push(format!("id={controller_id}"));
                }
                if !userdata.is_empty() {
                    parts.push(format!("userdata={}", DottedHex(userdata)));
                }
                if *pause {
                    parts.push("pause".into());
                }
                write!(f, "controller({})", parts.join(","))
            }
            Action::Note(bytes) => {
                let mut padded = bytes.clone();
                let total = round8(10 + bytes.len()).max(16);
                padded.resize(total - 10, 0);
                write!(f, "note:{}", DottedHex(&padded))
            }
            Action::Unknown { action_type, body } => {
                write!(f, "unknown_action(type={action_type:#x},body={})", DottedHex(body))
            }
        }
    }
}

/// A list of actions as OVS prints it: comma-separated, or `drop` when empty.
pub struct ActionList<'a>(pub &'a [Action]);

impl fmt::Display for ActionList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("drop");
        }
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_char(',')?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(a: &Action, version: u8) -> Action {
        let mut w = Writer::new();
        a.write(&mut w, version);
        assert_eq!(w.len() % 8, 0, "{a:?} not padded");
        let mut r = Reader::new(w.as_slice(), "t");
        let back = Action::read(&mut r, version, 0).unwrap();
        assert!(r.is_empty());
        back
    }

    #[test]
    fn text_forms() {
        let cases: Vec<(Action, &str)> = vec![
            (Action::resubmit(20), "resubmit(,20)"),
            (Action::load(FieldSlice::whole(Field::Reg(7)), 5), "load:0x5->NXM_NX_REG7[]"),
            (Action::set_field(Field::Reg(7), 5u32), "set_field:0x5->reg7"),
            (
                Action::move_(FieldSlice::whole(Field::EthSrc), FieldSlice::whole(Field::EthDst)),
                "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]",
            ),
            (Action::output(5), "output:5"),
            (Action::output(OFPP_IN_PORT), "IN_PORT"),
            (Action::output(port::OFPP_LOCAL), "LOCAL"),
            (Action::controller(65535), "CONTROLLER:65535"),
            (Action::controller_userdata(vec![1, 2], true), "controller(userdata=01.02,pause)"),
            (Action::Conjunction { id: 1, clause: 2, n_clauses: 3 }, "conjunction(1,2/3)"),
            (Action::Note(vec![1, 2, 3]), "note:01.02.03.00.00.00"),
            (
                Action::Ct(Ct {
                    commit: true,
                    zone: CtZone::FromField(FieldSlice::bits(Field::Reg(6), 0, 15)),
                    actions: vec![Action::Nat(Nat::src("10.0.0.1".parse().unwrap()))],
                    ..Ct::new(CtZone::Immediate(0))
                }),
                "ct(commit,zone=NXM_NX_REG6[0..15],nat(src=10.0.0.1))",
            ),
        ];
        for (a, text) in cases {
            assert_eq!(a.to_string(), text);
        }
    }

    #[test]
    fn wire_round_trips() {
        let all = vec![
            Action::Output { port: 3, max_len: 0 },
            Action::SetField { field: Field::Reg(6), value: FieldValue(5), mask: Some(FieldValue(0xff)) },
            Action::set_field(Field::EthDst, [0, 1, 2, 3, 4, 5]),
            Action::PushVlan(0x8100),
            Action::PopVlan,
            Action::Group(9),
            Action::DecTtl,
            Action::Resubmit { in_port: Some(3), table: None },
            Action::Resubmit { in_port: None, table: Some(9) },
            Action::move_(FieldSlice::bits(Field::Metadata, 0, 31), FieldSlice::whole(Field::Reg(0))),
            Action::load(FieldSlice::bits(Field::Reg(7), 0, 7), 3),
            Action::CtClear,
            Action::Ct(Ct {
                commit: true,
                force: true,
                zone: CtZone::Immediate(5),
                recirc_table: Some(20),
                alg: ALG_FTP,
                actions: vec![
                    Action::Nat(Nat {
                        kind: Some(NatKind::Dst),
                        ip_min: Some("10.0.0.1".parse().unwrap()),
                        ip_max: Some("10.0.0.5".parse().unwrap()),
                        port_min: Some(80),
                        port_max: Some(90),
                        random: true,
                        ..Nat::default()
                    }),
                    Action::set_field(Field::CtMark, 1u32),
                ],
            }),
            Action::Conjunction { id: 7, clause: 1, n_clauses: 2 },
            Action::controller(128),
            Action::Controller {
                max_len: 100,
                controller_id: 3,
                reason: OFPR_NO_MATCH,
                userdata: vec![],
                pause: false,
            },
            Action::controller_userdata(vec![1, 2, 3], true),
            Action::Note(vec![1, 2, 3, 4, 5, 6]),
            Action::Unknown { action_type: 0xffff, body: vec![0, 0, 0x23, 0x20, 0, 99, 0, 0, 0, 0, 0, 0] },
        ];
        for a in &all {
            assert_eq!(&round_trip(a, crate::OFP13), a);
            assert_eq!(&round_trip(a, crate::OFP15), a);
        }
    }
}
