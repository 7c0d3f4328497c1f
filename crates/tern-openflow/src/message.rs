//! `Message`: every OpenFlow message tern sends or receives, with `decode` and
//! `encode` dispatching on (version, type). Messages this crate does not model decode
//! to `Message::Unknown` and re-encode unchanged.

use crate::bundle::{BundleAdd, BundleControl};
use crate::codec::{Reader, Writer};
use crate::error::DecodeError;
use crate::flow::FlowMod;
use crate::group::GroupMod;
use crate::header::*;
use crate::multipart::{MultipartReply, MultipartRequest};
use crate::ofp_error::ErrorMsg;
use crate::packet::{NxPacketIn2, PacketIn, PacketOut};
use crate::port::PortStatus;
use crate::{NX_VENDOR_ID, OFP13, OFP14, OFP15, ONF_EXPERIMENTER_ID};

const OFPHET_VERSIONBITMAP: u16 = 1;
/// Bundles may not nest; a bundled message is decoded one level deep.
const MAX_DEPTH: usize = 1;

/// OFPT_FEATURES_REPLY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SwitchFeatures {
    pub datapath_id: u64,
    pub n_buffers: u32,
    pub n_tables: u8,
    pub auxiliary_id: u8,
    pub capabilities: u32,
}

/// OFPT_GET_CONFIG_REPLY / OFPT_SET_CONFIG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SwitchConfig {
    /// OFPC_FRAG_* bits.
    pub flags: u16,
    pub miss_send_len: u16,
}

/// Controller roles.
pub const OFPCR_ROLE_NOCHANGE: u32 = 0;
pub const OFPCR_ROLE_EQUAL: u32 = 1;
pub const OFPCR_ROLE_MASTER: u32 = 2;
pub const OFPCR_ROLE_SLAVE: u32 = 3;

/// OFPT_ROLE_REQUEST / OFPT_ROLE_REPLY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Role {
    /// OFPCR_ROLE_*.
    pub role: u32,
    pub generation_id: u64,
}

/// OFPT_SET_ASYNC: which asynchronous messages this connection receives. Index 0
/// applies in the master/equal role, index 1 in the slave role; each mask has bit
/// `1 << reason` set for the reasons wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AsyncConfig {
    pub packet_in_mask: [u32; 2],
    pub port_status_mask: [u32; 2],
    pub flow_removed_mask: [u32; 2],
}

/// NXT_SET_PACKET_IN_FORMAT values.
pub const NXPIF_STANDARD: u32 = 0;
pub const NXPIF_NXT_PACKET_IN: u32 = 1;
pub const NXPIF_NXT_PACKET_IN2: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// OFPT_HELLO with a version bitmap. A hello without one decodes as the
    /// header's version alone; an empty list encodes a hello without a bitmap.
    Hello {
        versions: Vec<u8>,
    },
    Error(ErrorMsg),
    EchoRequest(Vec<u8>),
    EchoReply(Vec<u8>),
    FeaturesRequest,
    FeaturesReply(SwitchFeatures),
    GetConfigRequest,
    GetConfigReply(SwitchConfig),
    SetConfig(SwitchConfig),
    PacketIn(PacketIn),
    PortStatus(PortStatus),
    PacketOut(PacketOut),
    FlowMod(FlowMod),
    GroupMod(GroupMod),
    BarrierRequest,
    BarrierReply,
    RoleRequest(Role),
    RoleReply(Role),
    SetAsync(AsyncConfig),
    MultipartRequest(MultipartRequest),
    MultipartReply(MultipartReply),
    BundleControl(BundleControl),
    BundleAdd(BundleAdd),
    NxPacketIn2(NxPacketIn2),
    /// NXT_RESUME: continue a packet paused by `controller(pause)`.
    NxResume(NxPacketIn2),
    /// NXT_SET_PACKET_IN_FORMAT (NXPIF_*).
    NxSetPacketInFormat(u32),
    NxSetControllerId(u16),
    /// Anything else, with everything after the 8-byte header.
    Unknown {
        msg_type: u8,
        body: Vec<u8>,
    },
}

/// Decodes exactly one complete message (`buf` must be exactly its length).
pub fn decode(buf: &[u8]) -> Result<(Header, Message), DecodeError> {
    decode_at(buf, 0)
}

/// Encodes one message with the given version and xid (length filled in).
pub fn encode(version: u8, xid: u32, msg: &Message) -> Vec<u8> {
    let mut w = Writer::new();
    write_message(&mut w, version, xid, msg);
    w.into_vec()
}

fn supported(version: u8) -> bool {
    (OFP13..=OFP15).contains(&version)
}

pub(crate) fn decode_at(buf: &[u8], depth: usize) -> Result<(Header, Message), DecodeError> {
    let header = Header::parse(buf).ok_or(DecodeError::Truncated {
        what: "header",
        needed: HEADER_LEN,
        available: buf.len(),
    })?;
    let length = usize::from(header.length);
    if length < HEADER_LEN {
        return Err(DecodeError::HeaderTooShort(header.length));
    }
    if length != buf.len() {
        return Err(DecodeError::LengthMismatch { length, available: buf.len() });
    }
    let body = buf.get(HEADER_LEN..).unwrap_or(&[]);
    let mut r = Reader::new(body, "message body");
    let v = header.version;
    let unknown = || Message::Unknown { msg_type: header.msg_type, body: body.to_vec() };
    let msg = match header.msg_type {
        OFPT_HELLO => Message::Hello { versions: read_hello(&mut r, v)? },
        OFPT_ERROR => {
            Message::Error(ErrorMsg { err_type: r.u16()?, code: r.u16()?, data: r.rest().to_vec() })
        }
        OFPT_ECHO_REQUEST => Message::EchoRequest(body.to_vec()),
        OFPT_ECHO_REPLY => Message::EchoReply(body.to_vec()),
        _ if !supported(v) => unknown(),
        OFPT_FEATURES_REQUEST => Message::FeaturesRequest,
        OFPT_FEATURES_REPLY => {
            let datapath_id = r.u64()?;
            let n_buffers = r.u32()?;
            let n_tables = r.u8()?;
            let auxiliary_id = r.u8()?;
            r.skip(2)?;
            let capabilities = r.u32()?;
            Message::FeaturesReply(SwitchFeatures {
                datapath_id,
                n_buffers,
                n_tables,
                auxiliary_id,
                capabilities,
            })
        }
        OFPT_GET_CONFIG_REQUEST => Message::GetConfigRequest,
        OFPT_GET_CONFIG_REPLY => Message::GetConfigReply(read_config(&mut r)?),
        OFPT_SET_CONFIG => Message::SetConfig(read_config(&mut r)?),
        OFPT_PACKET_IN => Message::PacketIn(PacketIn::read(&mut r)?),
        OFPT_PORT_STATUS => Message::PortStatus(PortStatus::read(&mut r, v)?),
        OFPT_PACKET_OUT => Message::PacketOut(PacketOut::read(&mut r, v)?),
        OFPT_FLOW_MOD => Message::FlowMod(FlowMod::read(&mut r, v)?),
        OFPT_GROUP_MOD if v < OFP15 => Message::GroupMod(GroupMod::read(&mut r, v)?),
        OFPT_BARRIER_REQUEST => Message::BarrierRequest,
        OFPT_BARRIER_REPLY => Message::BarrierReply,
        OFPT_ROLE_REQUEST => Message::RoleRequest(read_role(&mut r)?),
        OFPT_ROLE_REPLY => Message::RoleReply(read_role(&mut r)?),
        OFPT_SET_ASYNC => Message::SetAsync(read_async(&mut r, v)?),
        OFPT_MULTIPART_REQUEST => Message::MultipartRequest(MultipartRequest::read(&mut r)?),
        OFPT_MULTIPART_REPLY => Message::MultipartReply(MultipartReply::read(&mut r, v)?),
        OFPT_BUNDLE_CONTROL if v >= OFP14 => Message::BundleControl(BundleControl::read(&mut r)?),
        OFPT_BUNDLE_ADD_MESSAGE if v >= OFP14 => {
            if depth >= MAX_DEPTH {
                return Err(DecodeError::TooDeep { what: "bundle add" });
            }
            Message::BundleAdd(BundleAdd::read(&mut r, depth)?)
        }
        OFPT_EXPERIMENTER => {
            let experimenter = r.u32()?;
            let exp_type = r.u32()?;
            match (experimenter, exp_type) {
                (NX_VENDOR_ID, NXT_PACKET_IN2) => Message::NxPacketIn2(NxPacketIn2::read(&mut r)?),
                (NX_VENDOR_ID, NXT_RESUME) => Message::NxResume(NxPacketIn2::read(&mut r)?),
                (NX_VENDOR_ID, NXT_SET_PACKET_IN_FORMAT) => Message::NxSetPacketInFormat(r.u32()?),
                (NX_VENDOR_ID, NXT_SET_CONTROLLER_ID) => {
                    r.skip(6)?;
                    Message::NxSetControllerId(r.u16()?)
                }
                (ONF_EXPERIMENTER_ID, ONFT_BUNDLE_CONTROL) => {
                    Message::BundleControl(BundleControl::read(&mut r)?)
                }
                (ONF_EXPERIMENTER_ID, ONFT_BUNDLE_ADD_MESSAGE) => {
                    if depth >= MAX_DEPTH {
                        return Err(DecodeError::TooDeep { what: "bundle add" });
                    }
                    Message::BundleAdd(BundleAdd::read(&mut r, depth)?)
                }
                _ => unknown(),
            }
        }
        _ => unknown(),
    };
    Ok((header, msg))
}

fn read_hello(r: &mut Reader<'_>, version: u8) -> Result<Vec<u8>, DecodeError> {
    let mut versions = Vec::new();
    let mut saw_bitmap = false;
    while r.left() >= 4 {
        let etype = r.u16()?;
        let len = usize::from(r.u16()?);
        if len < 4 {
            return Err(DecodeError::BadLength { what: "hello element", length: len });
        }
        let mut e = r.sub(len - 4, "hello element")?;
        if etype == OFPHET_VERSIONBITMAP {
            saw_bitmap = true;
            let mut word_index: u32 = 0;
            while e.left() >= 4 {
                let word = e.u32()?;
                for bit in 0..32u32 {
                    if word & (1 << bit) != 0 {
                        if let Ok(v) = u8::try_from(word_index * 32 + bit) {
                            versions.push(v);
                        }
                    }
                }
                word_index = word_index.saturating_add(1);
            }
        }
        r.skip(crate::codec::pad8_len(len).min(r.left()))?;
    }
    if !saw_bitmap {
        versions.push(version);
    }
    Ok(versions)
}

fn read_config(r: &mut Reader<'_>) -> Result<SwitchConfig, DecodeError> {
    Ok(SwitchConfig { flags: r.u16()?, miss_send_len: r.u16()? })
}

fn read_role(r: &mut Reader<'_>) -> Result<Role, DecodeError> {
    let role = r.u32()?;
    r.skip(4)?;
    Ok(Role { role, generation_id: r.u64()? })
}

/// OpenFlow 1.4+ async-config property types: (slave, master) pairs in this order.
const ASYNC_PROPS: usize = 3;

fn read_async(r: &mut Reader<'_>, version: u8) -> Result<AsyncConfig, DecodeError> {
    let mut c = AsyncConfig::default();
    if version <= OFP13 {
        // OpenFlow 1.3: [master/equal, slave] for each kind.
        c.packet_in_mask = [r.u32()?, r.u32()?];
        c.port_status_mask = [r.u32()?, r.u32()?];
        c.flow_removed_mask = [r.u32()?, r.u32()?];
        return Ok(c);
    }
    while !r.is_empty() {
        let ptype = r.u16()?;
        let len = usize::from(r.u16()?);
        if len < 4 {
            return Err(DecodeError::BadLength { what: "async property", length: len });
        }
        let mut p = r.sub(len - 4, "async property")?;
        let t = usize::from(ptype);
        if t < 2 * ASYNC_PROPS {
            let mask = p.u32()?;
            // Even types are the slave role (index 1), odd the master role (index 0).
            let role = if t % 2 == 0 { 1 } else { 0 };
            match t / 2 {
                0 => c.packet_in_mask[role] = mask,
                1 => c.port_status_mask[role] = mask,
                _ => c.flow_removed_mask[role] = mask,
            }
        }
        r.skip(crate::codec::pad8_len(len).min(r.left()))?;
    }
    Ok(c)
}

fn nx_start(w: &mut Writer, subtype: u32) {
    w.u32(NX_VENDOR_ID);
    w.u32(subtype);
}

/// Writes a whole message (header included) into `w`.
pub(crate) fn write_message(w: &mut Writer, version: u8, xid: u32, msg: &Message) {
    w.u8(version);
    w.u8(msg_type(version, msg));
    let len = w.len16(2);
    w.u32(xid);
    match msg {
        Message::Hello { versions } => {
            if !versions.is_empty() {
                let max = versions.iter().copied().max().unwrap_or(0);
                let words = usize::from(max) / 32 + 1;
                let mut bitmap = vec![0u32; words];
                for v in versions {
                    bitmap[usize::from(*v) / 32] |= 1 << (v % 32);
                }
                let estart = w.len();
                w.u16(OFPHET_VERSIONBITMAP);
                w.u16((4 + 4 * words) as u16);
                for word in bitmap {
                    w.u32(word);
                }
                w.pad8(estart);
            }
        }
        Message::Error(e) => {
            w.u16(e.err_type);
            w.u16(e.code);
            w.bytes(&e.data);
        }
        Message::EchoRequest(d) | Message::EchoReply(d) => w.bytes(d),
        Message::FeaturesRequest
        | Message::GetConfigRequest
        | Message::BarrierRequest
        | Message::BarrierReply => {}
        Message::FeaturesReply(f) => {
            w.u64(f.datapath_id);
            w.u32(f.n_buffers);
            w.u8(f.n_tables);
            w.u8(f.auxiliary_id);
            w.zeros(2);
            w.u32(f.capabilities);
            w.u32(0);
        }
        Message::GetConfigReply(c) | Message::SetConfig(c) => {
            w.u16(c.flags);
            w.u16(c.miss_send_len);
        }
        Message::PacketIn(p) => p.write(w),
        Message::PortStatus(p) => p.write(w, version),
        Message::PacketOut(p) => p.write(w, version),
        Message::FlowMod(f) => f.write(w, version),
        Message::GroupMod(g) => g.write(w, version),
        Message::RoleRequest(r) | Message::RoleReply(r) => {
            w.u32(r.role);
            w.zeros(4);
            w.u64(r.generation_id);
        }
        Message::SetAsync(c) => {
            if version <= OFP13 {
                for m in [c.packet_in_mask, c.port_status_mask, c.flow_removed_mask] {
                    w.u32(m[0]);
                    w.u32(m[1]);
                }
            } else {
                for (kind, m) in
                    [c.packet_in_mask, c.port_status_mask, c.flow_removed_mask].into_iter().enumerate()
                {
                    for (role, ptype) in [(1usize, 2 * kind), (0usize, 2 * kind + 1)] {
                        w.u16(ptype as u16);
                        w.u16(8);
                        w.u32(m[role]);
                    }
                }
            }
        }
        Message::MultipartRequest(m) => m.write(w),
        Message::MultipartReply(m) => m.write(w, version),
        Message::BundleControl(b) => {
            if version < OFP14 {
                w.u32(ONF_EXPERIMENTER_ID);
                w.u32(ONFT_BUNDLE_CONTROL);
            }
            b.write(w);
        }
        Message::BundleAdd(b) => {
            if version < OFP14 {
                w.u32(ONF_EXPERIMENTER_ID);
                w.u32(ONFT_BUNDLE_ADD_MESSAGE);
            }
            b.write(w, version, xid);
        }
        Message::NxPacketIn2(p) => {
            nx_start(w, NXT_PACKET_IN2);
            p.write(w);
        }
        Message::NxResume(p) => {
            nx_start(w, NXT_RESUME);
            p.write(w);
        }
        Message::NxSetPacketInFormat(f) => {
            nx_start(w, NXT_SET_PACKET_IN_FORMAT);
            w.u32(*f);
        }
        Message::NxSetControllerId(id) => {
            nx_start(w, NXT_SET_CONTROLLER_ID);
            w.zeros(6);
            w.u16(*id);
        }
        Message::Unknown { body, .. } => w.bytes(body),
    }
    w.patch16(len);
}

fn msg_type(version: u8, msg: &Message) -> u8 {
    match msg {
        Message::Hello { .. } => OFPT_HELLO,
        Message::Error(_) => OFPT_ERROR,
        Message::EchoRequest(_) => OFPT_ECHO_REQUEST,
        Message::EchoReply(_) => OFPT_ECHO_REPLY,
        Message::FeaturesRequest => OFPT_FEATURES_REQUEST,
        Message::FeaturesReply(_) => OFPT_FEATURES_REPLY,
        Message::GetConfigRequest => OFPT_GET_CONFIG_REQUEST,
        Message::GetConfigReply(_) => OFPT_GET_CONFIG_REPLY,
        Message::SetConfig(_) => OFPT_SET_CONFIG,
        Message::PacketIn(_) => OFPT_PACKET_IN,
        Message::PortStatus(_) => OFPT_PORT_STATUS,
        Message::PacketOut(_) => OFPT_PACKET_OUT,
        Message::FlowMod(_) => OFPT_FLOW_MOD,
        Message::GroupMod(_) => OFPT_GROUP_MOD,
        Message::BarrierRequest => OFPT_BARRIER_REQUEST,
        Message::BarrierReply => OFPT_BARRIER_REPLY,
        Message::RoleRequest(_) => OFPT_ROLE_REQUEST,
        Message::RoleReply(_) => OFPT_ROLE_REPLY,
        Message::SetAsync(_) => OFPT_SET_ASYNC,
        Message::MultipartRequest(_) => OFPT_MULTIPART_REQUEST,
        Message::MultipartReply(_) => OFPT_MULTIPART_REPLY,
        Message::BundleControl(_) if version >= OFP14 => OFPT_BUNDLE_CONTROL,
        Message::BundleAdd(_) if version >= OFP14 => OFPT_BUNDLE_ADD_MESSAGE,
        Message::BundleControl(_)
        | Message::BundleAdd(_)
        | Message::NxPacketIn2(_)
        | Message::NxResume(_)
        | Message::NxSetPacketInFormat(_)
        | Message::NxSetControllerId(_) => OFPT_EXPERIMENTER,
        Message::Unknown { msg_type, .. } => *msg_type,
    }
}
