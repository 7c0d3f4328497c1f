//! OFPT_MULTIPART_REQUEST / _REPLY: switch description, flow stats and port
//! descriptions decoded; every other kind kept as raw bytes.

use crate::codec::{Reader, Writer};
use crate::error::DecodeError;
use crate::flow::{FlowStats, FlowStatsRequest};
use crate::port::Port;

pub const OFPMP_DESC: u16 = 0;
pub const OFPMP_FLOW: u16 = 1;
pub const OFPMP_PORT_DESC: u16 = 13;
/// Set in a request or reply that continues in another message.
pub const OFPMPF_MORE: u16 = 1;

/// A multipart request. Only `Other` can carry flags (OFPMPF_MORE); the typed
/// requests always fit one message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MultipartRequest {
    Desc,
    Flow(FlowStatsRequest),
    PortDesc,
    Other { mp_type: u16, flags: u16, body: Vec<u8> },
}

impl MultipartRequest {
    pub fn flow(req: FlowStatsRequest) -> MultipartRequest {
        MultipartRequest::Flow(req)
    }

    pub fn port_desc() -> MultipartRequest {
        MultipartRequest::PortDesc
    }

    pub fn desc() -> MultipartRequest {
        MultipartRequest::Desc
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        let (mp_type, flags) = match self {
            MultipartRequest::Desc => (OFPMP_DESC, 0),
            MultipartRequest::Flow(_) => (OFPMP_FLOW, 0),
            MultipartRequest::PortDesc => (OFPMP_PORT_DESC, 0),
            MultipartRequest::Other { mp_type, flags, .. } => (*mp_type, *flags),
        };
        w.u16(mp_type);
        w.u16(flags);
        w.zeros(4);
        match self {
            MultipartRequest::Desc | MultipartRequest::PortDesc => {}
            MultipartRequest::Flow(req) => req.write(w),
            MultipartRequest::Other { body, .. } => w.bytes(body),
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<MultipartRequest, DecodeError> {
        let mp_type = r.u16()?;
        let flags = r.u16()?;
        r.skip(4)?;
        Ok(match (mp_type, flags) {
            (OFPMP_DESC, 0) => MultipartRequest::Desc,
            (OFPMP_FLOW, 0) => MultipartRequest::Flow(FlowStatsRequest::read(r)?),
            (OFPMP_PORT_DESC, 0) => MultipartRequest::PortDesc,
            _ => MultipartRequest::Other { mp_type, flags, body: r.rest().to_vec() },
        })
    }
}

/// OFPMP_DESC reply: what the switch says it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Desc {
    pub mfr_desc: String,
    pub hw_desc: String,
    pub sw_desc: String,
    pub serial_num: String,
    pub dp_desc: String,
}

fn read_str(r: &mut Reader<'_>, n: usize) -> Result<String, DecodeError> {
    let b = r.take(n)?;
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    Ok(String::from_utf8_lossy(b.get(..end).unwrap_or(&[])).into_owned())
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MultipartReply {
    /// OFPMPF_MORE if more replies follow.
    pub flags: u16,
    pub body: MultipartReplyBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MultipartReplyBody {
    Desc(Desc),
    Flow(Vec<FlowStats>),
    PortDesc(Vec<Port>),
    Other { mp_type: u16, body: Vec<u8> },
}

impl MultipartReply {
    /// Whether another reply to the same request follows.
    pub fn more(&self) -> bool {
        self.flags & OFPMPF_MORE != 0
    }

    pub(crate) fn write(&self, w: &mut Writer, version: u8) {
        let mp_type = match &self.body {
            MultipartReplyBody::Desc(_) => OFPMP_DESC,
            MultipartReplyBody::Flow(_) => OFPMP_FLOW,
            MultipartReplyBody::PortDesc(_) => OFPMP_PORT_DESC,
            MultipartReplyBody::Other { mp_type, .. } => *mp_type,
        };
        w.u16(mp_type);
        w.u16(self.flags);
        w.zeros(4);
        match &self.body {
            MultipartReplyBody::Desc(d) => {
                w.fixed_str(&d.mfr_desc, 256);
                w.fixed_str(&d.hw_desc, 256);
                w.fixed_str(&d.sw_desc, 256);
                w.fixed_str(&d.serial_num, 32);
                w.fixed_str(&d.dp_desc, 256);
            }
            MultipartReplyBody::Flow(stats) => {
                for s in stats {
                    s.write(w, version);
                }
            }
            MultipartReplyBody::PortDesc(ports) => {
                for p in ports {
                    p.write(w, version);
                }
            }
            MultipartReplyBody::Other { body, .. } => w.bytes(body),
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>, version: u8) -> Result<MultipartReply, DecodeError> {
        let mp_type = r.u16()?;
        let flags = r.u16()?;
        r.skip(4)?;
        let body = match mp_type {
            OFPMP_DESC => MultipartReplyBody::Desc(Desc {
                mfr_desc: read_str(r, 256)?,
                hw_desc: read_str(r, 256)?,
                sw_desc: read_str(r, 256)?,
                serial_num: read_str(r, 32)?,
                dp_desc: read_str(r, 256)?,
            }),
            // OpenFlow 1.5 flow stats carry OXS statistics; kept raw.
            OFPMP_FLOW if version < crate::OFP15 => {
                let mut stats = Vec::new();
                while !r.is_empty() {
                    stats.push(FlowStats::read(r, version)?);
                }
                MultipartReplyBody::Flow(stats)
            }
            OFPMP_PORT_DESC => {
                let mut ports = Vec::new();
                while !r.is_empty() {
                    ports.push(Port::read(r, version)?);
                }
                MultipartReplyBody::PortDesc(ports)
            }
            _ => MultipartReplyBody::Other { mp_type, body: r.rest().to_vec() },
        };
        Ok(MultipartReply { flags, body })
    }
}
