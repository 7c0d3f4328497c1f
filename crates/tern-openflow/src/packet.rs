//! Packets crossing the controller channel: OFPT_PACKET_IN, Nicira's NXT_PACKET_IN2
//! (and NXT_RESUME, which carries the same properties back), and OFPT_PACKET_OUT.

use crate::action::{put_prop, read_actions, read_prop, write_actions, Action};
use crate::codec::{Reader, Writer};
use crate::error::DecodeError;
use crate::flow::OFP_NO_BUFFER;
use crate::matches::Match;
use crate::oxm::Field;

// === impl PacketIn ===

/// OFPT_PACKET_IN (OpenFlow 1.3+ layout).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PacketIn {
    pub buffer_id: u32,
    pub total_len: u16,
    /// OFPR_* (no_match 0, action 1, invalid_ttl 2, ...).
    pub reason: u8,
    pub table_id: u8,
    pub cookie: u64,
    /// Pipeline fields: in_port, metadata, registers, tunnel fields...
    pub match_: Match,
    pub data: Vec<u8>,
}

impl PacketIn {
    pub(crate) fn write(&self, w: &mut Writer) {
        w.u32(self.buffer_id);
        w.u16(self.total_len);
        w.u8(self.reason);
        w.u8(self.table_id);
        w.u64(self.cookie);
        self.match_.write(w);
        w.zeros(2);
        w.bytes(&self.data);
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<PacketIn, DecodeError> {
        let buffer_id = r.u32()?;
        let total_len = r.u16()?;
        let reason = r.u8()?;
        let table_id = r.u8()?;
        let cookie = r.u64()?;
        let match_ = Match::read(r)?;
        r.skip(2)?;
        Ok(PacketIn { buffer_id, total_len, reason, table_id, cookie, match_, data: r.rest().to_vec() })
    }
}

// === impl NxPacketIn2 ===

const NXPINT_PACKET: u16 = 0;
const NXPINT_FULL_LEN: u16 = 1;
const NXPINT_BUFFER_ID: u16 = 2;
const NXPINT_TABLE_ID: u16 = 3;
const NXPINT_COOKIE: u16 = 4;
const NXPINT_REASON: u16 = 5;
const NXPINT_METADATA: u16 = 6;
const NXPINT_USERDATA: u16 = 7;
const NXPINT_CONTINUATION: u16 = 8;

/// NXT_PACKET_IN2: a packet-in as OVS sends it once the controller asked for the
/// packet-in2 format (and always for `controller(userdata=..)` / `pause`).
/// NXT_RESUME uses the same properties to hand a paused packet back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NxPacketIn2 {
    /// The packet (possibly truncated to the controller action's max_len).
    pub data: Vec<u8>,
    /// The packet's full length when `data` was truncated.
    pub full_len: Option<u32>,
    /// OFP_NO_BUFFER when not buffered (always, with OVS).
    pub buffer_id: u32,
    pub table_id: u8,
    /// u64::MAX when absent.
    pub cookie: u64,
    pub reason: u8,
    /// Pipeline fields at the time of the packet-in (in_port, metadata, regs, ...).
    pub metadata: Match,
    /// The controller action's userdata (empty if none).
    pub userdata: Vec<u8>,
    /// Opaque switch state for NXT_RESUME (present when the action had `pause`).
    pub continuation: Option<Vec<u8>>,
}

impl NxPacketIn2 {
    /// The packet's in_port, if the metadata carries it.
    pub fn in_port(&self) -> Option<u32> {
        self.metadata.get(Field::InPort).map(|e| e.value.as_u32())
    }

    /// Register `n` from the metadata (0 when absent).
    pub fn reg(&self, n: u8) -> u32 {
        self.metadata.get(Field::Reg(n)).map_or(0, |e| e.value.as_u32())
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        put_prop(w, NXPINT_PACKET, &self.data);
        if let Some(len) = self.full_len {
            put_prop(w, NXPINT_FULL_LEN, &len.to_be_bytes());
        }
        if self.buffer_id != OFP_NO_BUFFER {
            put_prop(w, NXPINT_BUFFER_ID, &self.buffer_id.to_be_bytes());
        }
        put_prop(w, NXPINT_TABLE_ID, &[self.table_id]);
        if self.cookie != u64::MAX {
            let mut v = vec![0u8; 4];
            v.extend_from_slice(&self.cookie.to_be_bytes());
            put_prop(w, NXPINT_COOKIE, &v);
        }
        put_prop(w, NXPINT_REASON, &[self.reason]);
        let mut m = Writer::new();
        self.metadata.write_oxms(&mut m);
        put_prop(w, NXPINT_METADATA, m.as_slice());
        if !self.userdata.is_empty() {
            put_prop(w, NXPINT_USERDATA, &self.userdata);
        }
        if let Some(c) = &self.continuation {
            let mut v = vec![0u8; 4];
            v.extend_from_slice(c);
            put_prop(w, NXPINT_CONTINUATION, &v);
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<NxPacketIn2, DecodeError> {
        let mut p = NxPacketIn2 {
            data: Vec::new(),
            full_len: None,
            buffer_id: OFP_NO_BUFFER,
            table_id: 0,
            cookie: u64::MAX,
            reason: 0,
            metadata: Match::new(),
            userdata: Vec::new(),
            continuation: None,
        };
        while !r.is_empty() {
            let (ptype, value) = read_prop(r)?;
            let mut v = Reader::new(value, "packet-in2 property");
            match ptype {
                NXPINT_PACKET => p.data = value.to_vec(),
                NXPINT_FULL_LEN => p.full_len = Some(v.u32()?),
                NXPINT_BUFFER_ID => p.buffer_id = v.u32()?,
                NXPINT_TABLE_ID => p.table_id = v.u8()?,
                NXPINT_COOKIE => {
                    v.skip(4)?;
                    p.cookie = v.u64()?;
                }
                NXPINT_REASON => p.reason = v.u8()?,
                NXPINT_METADATA => p.metadata = Match::read_oxms(&mut v)?,
                NXPINT_USERDATA => p.userdata = value.to_vec(),
                NXPINT_CONTINUATION => {
                    v.skip(4)?;
                    p.continuation = Some(v.rest().to_vec());
                }
                _ => {}
            }
        }
        Ok(p)
    }
}

// === impl PacketOut ===

/// OFPT_PACKET_OUT.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PacketOut {
    pub buffer_id: u32,
    /// The packet's ingress port (OFPP_CONTROLLER when it has none).
    pub in_port: u32,
    pub actions: Vec<Action>,
    pub data: Vec<u8>,
}

impl PacketOut {
    /// Sends `data` through `actions`, as if it came from the controller.
    pub fn new(data: Vec<u8>, actions: Vec<Action>) -> PacketOut {
        PacketOut { buffer_id: OFP_NO_BUFFER, in_port: crate::port::OFPP_CONTROLLER, actions, data }
    }

    pub(crate) fn write(&self, w: &mut Writer, version: u8) {
        w.u32(self.buffer_id);
        let actions_len_at;
        if version >= crate::OFP15 {
            actions_len_at = w.len();
            w.u16(0);
            w.zeros(2);
            Match::new().in_port(self.in_port).write(w);
        } else {
            w.u32(self.in_port);
            actions_len_at = w.len();
            w.u16(0);
            w.zeros(6);
        }
        let start = w.len();
        write_actions(w, &self.actions, version);
        let len = u16::try_from(w.len() - start).unwrap_or(u16::MAX);
        w.set16(actions_len_at, len);
        w.bytes(&self.data);
    }

    pub(crate) fn read(r: &mut Reader<'_>, version: u8) -> Result<PacketOut, DecodeError> {
        let buffer_id = r.u32()?;
        let (in_port, actions_len) = if version >= crate::OFP15 {
            let actions_len = r.u16()?;
            r.skip(2)?;
            let m = Match::read(r)?;
            let in_port = m.get(Field::InPort).map_or(crate::port::OFPP_CONTROLLER, |e| e.value.as_u32());
            (in_port, actions_len)
        } else {
            let in_port = r.u32()?;
            let actions_len = r.u16()?;
            r.skip(6)?;
            (in_port, actions_len)
        };
        let mut a = r.sub(usize::from(actions_len), "packet_out actions")?;
        let actions = read_actions(&mut a, version, 0)?;
        Ok(PacketOut { buffer_id, in_port, actions, data: r.rest().to_vec() })
    }
}
