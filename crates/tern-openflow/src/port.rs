//! OpenFlow port numbers (reserved ports and how OVS names them) and the port
//! description carried by port-status messages and the port-desc multipart reply.

use std::fmt;

use crate::codec::{Reader, Writer};
use crate::error::DecodeError;

/// Highest number of a physical port (OpenFlow 1.1+ 32-bit numbering).
pub const OFPP_MAX: u32 = 0xffff_ff00;
pub const OFPP_UNSET: u32 = 0xffff_fff7;
pub const OFPP_IN_PORT: u32 = 0xffff_fff8;
pub const OFPP_TABLE: u32 = 0xffff_fff9;
pub const OFPP_NORMAL: u32 = 0xffff_fffa;
pub const OFPP_FLOOD: u32 = 0xffff_fffb;
pub const OFPP_ALL: u32 = 0xffff_fffc;
pub const OFPP_CONTROLLER: u32 = 0xffff_fffd;
pub const OFPP_LOCAL: u32 = 0xffff_fffe;
/// "Any port" (wildcard in requests); OVS prints it as `ANY`.
pub const OFPP_ANY: u32 = 0xffff_ffff;

/// Port-status reasons.
pub const OFPPR_ADD: u8 = 0;
pub const OFPPR_DELETE: u8 = 1;
pub const OFPPR_MODIFY: u8 = 2;

/// `config` bits.
pub const OFPPC_PORT_DOWN: u32 = 1;
pub const OFPPC_NO_RECV: u32 = 1 << 2;
pub const OFPPC_NO_FWD: u32 = 1 << 5;
pub const OFPPC_NO_PACKET_IN: u32 = 1 << 6;
/// `state` bits.
pub const OFPPS_LINK_DOWN: u32 = 1;
pub const OFPPS_BLOCKED: u32 = 1 << 1;
pub const OFPPS_LIVE: u32 = 1 << 2;

/// A 16-bit (OpenFlow 1.0 / NXM) port number in 32-bit numbering.
pub fn port_from_u16(p: u16) -> u32 {
    if p >= 0xff00 {
        u32::from(p) + 0xffff_0000
    } else {
        u32::from(p)
    }
}

/// A 32-bit port number in 16-bit numbering (as Nicira actions carry it).
/// Numbers between 0xff00 and 0xffffff00 have no 16-bit form and are truncated.
pub fn port_to_u16(p: u32) -> u16 {
    if p >= OFPP_MAX {
        (p - 0xffff_0000) as u16
    } else {
        p as u16
    }
}

/// The name OVS gives a reserved port, if any.
pub fn reserved_port_name(p: u32) -> Option<&'static str> {
    Some(match p {
        OFPP_UNSET => "UNSET",
        OFPP_IN_PORT => "IN_PORT",
        OFPP_TABLE => "TABLE",
        OFPP_NORMAL => "NORMAL",
        OFPP_FLOOD => "FLOOD",
        OFPP_ALL => "ALL",
        OFPP_CONTROLLER => "CONTROLLER",
        OFPP_LOCAL => "LOCAL",
        OFPP_ANY => "ANY",
        _ => return None,
    })
}

/// A port as `ovs-ofctl` prints it: a reserved name or the (16-bit) number.
pub(crate) fn format_port(out: &mut dyn fmt::Write, p: u32) -> fmt::Result {
    match reserved_port_name(p) {
        Some(name) => out.write_str(name),
        None if p >= OFPP_MAX => write!(out, "{}", port_to_u16(p)),
        None => write!(out, "{p}"),
    }
}

/// Display adapter for a port number in `ovs-ofctl` style.
pub struct PortName(pub u32);

impl fmt::Display for PortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        format_port(f, self.0)
    }
}

// === impl Port ===

/// A switch port as described in port-status and port-desc messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Port {
    pub port_no: u32,
    pub hw_addr: [u8; 6],
    pub name: String,
    /// OFPPC_* bits.
    pub config: u32,
    /// OFPPS_* bits.
    pub state: u32,
    pub curr: u32,
    pub advertised: u32,
    pub supported: u32,
    pub peer: u32,
    pub curr_speed: u32,
    pub max_speed: u32,
}

const OFPPDPT_ETHERNET: u16 = 0;

fn read_name(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(bytes.get(..end).unwrap_or(&[])).into_owned()
}

impl Port {
    pub(crate) fn read(r: &mut Reader<'_>, version: u8) -> Result<Port, DecodeError> {
        if version <= crate::OFP13 {
            let port_no = r.u32()?;
            r.skip(4)?;
            let hw_addr = r.array()?;
            r.skip(2)?;
            let name = read_name(r.take(16)?);
            Ok(Port {
                port_no,
                hw_addr,
                name,
                config: r.u32()?,
                state: r.u32()?,
                curr: r.u32()?,
                advertised: r.u32()?,
                supported: r.u32()?,
                peer: r.u32()?,
                curr_speed: r.u32()?,
                max_speed: r.u32()?,
            })
        } else {
            let port_no = r.u32()?;
            let length = usize::from(r.u16()?);
            if length < 40 {
                return Err(DecodeError::BadLength { what: "port", length });
            }
            let mut body = r.sub(length - 6, "port")?;
            body.skip(2)?;
            let hw_addr = body.array()?;
            body.skip(2)?;
            let name = read_name(body.take(16)?);
            let mut port =
                Port { port_no, hw_addr, name, config: body.u32()?, state: body.u32()?, ..Port::default() };
            while !body.is_empty() {
                let ptype = body.u16()?;
                let plen = usize::from(body.u16()?);
                if plen < 4 {
                    return Err(DecodeError::BadLength { what: "port property", length: plen });
                }
                let mut prop = body.sub(plen - 4, "port property")?;
                if ptype == OFPPDPT_ETHERNET {
                    prop.skip(4)?;
                    port.curr = prop.u32()?;
                    port.advertised = prop.u32()?;
                    port.supported = prop.u32()?;
                    port.peer = prop.u32()?;
                    port.curr_speed = prop.u32()?;
                    port.max_speed = prop.u32()?;
                }
                // Properties are padded to 8 bytes.
                let pad = crate::codec::pad8_len(plen).min(body.left());
                body.skip(pad)?;
            }
            Ok(port)
        }
    }

    pub(crate) fn write(&self, w: &mut Writer, version: u8) {
        w.u32(self.port_no);
        if version <= crate::OFP13 {
            w.zeros(4);
            w.bytes(&self.hw_addr);
            w.zeros(2);
            w.fixed_str(&self.name, 16);
            for v in [
                self.config,
                self.state,
                self.curr,
                self.advertised,
                self.supported,
                self.peer,
                self.curr_speed,
                self.max_speed,
            ] {
                w.u32(v);
            }
        } else {
            w.u16(72);
            w.zeros(2);
            w.bytes(&self.hw_addr);
            w.zeros(2);
            w.fixed_str(&self.name, 16);
            w.u32(self.config);
            w.u32(self.state);
            w.u16(OFPPDPT_ETHERNET);
            w.u16(32);
            w.zeros(4);
            for v in [self.curr, self.advertised, self.supported, self.peer, self.curr_speed, self.max_speed]
            {
                w.u32(v);
            }
        }
    }
}

/// OFPT_PORT_STATUS: a port was added, deleted or changed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortStatus {
    /// OFPPR_ADD, OFPPR_DELETE or OFPPR_MODIFY.
    pub reason: u8,
    pub port: Port,
}

impl PortStatus {
    pub(crate) fn read(r: &mut Reader<'_>, version: u8) -> Result<PortStatus, DecodeError> {
        let reason = r.u8()?;
        r.skip(7)?;
        let port = Port::read(r, version)?;
        Ok(PortStatus { reason, port })
    }

    pub(crate) fn write(&self, w: &mut Writer, version: u8) {
        w.u8(self.reason);
        w.zeros(7);
        self.port.write(w, version);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_numbers() {
        assert_eq!(port_from_u16(0xfffe), OFPP_LOCAL);
        assert_eq!(port_to_u16(OFPP_IN_PORT), 0xfff8);
        assert_eq!(port_from_u16(5), 5);
        assert_eq!(PortName(OFPP_LOCAL).to_string(), "LOCAL");
        assert_eq!(PortName(7).to_string(), "7");
        assert_eq!(PortName(0xffff_ff00).to_string(), "65280");
    }
}
