//! The 8-byte OpenFlow header, message framing (`message_len`), message type numbers
//! and their names.

use crate::error::DecodeError;
use crate::{NX_VENDOR_ID, ONF_EXPERIMENTER_ID};

pub const OFPT_HELLO: u8 = 0;
pub const OFPT_ERROR: u8 = 1;
pub const OFPT_ECHO_REQUEST: u8 = 2;
pub const OFPT_ECHO_REPLY: u8 = 3;
pub const OFPT_EXPERIMENTER: u8 = 4;
pub const OFPT_FEATURES_REQUEST: u8 = 5;
pub const OFPT_FEATURES_REPLY: u8 = 6;
pub const OFPT_GET_CONFIG_REQUEST: u8 = 7;
pub const OFPT_GET_CONFIG_REPLY: u8 = 8;
pub const OFPT_SET_CONFIG: u8 = 9;
pub const OFPT_PACKET_IN: u8 = 10;
pub const OFPT_FLOW_REMOVED: u8 = 11;
pub const OFPT_PORT_STATUS: u8 = 12;
pub const OFPT_PACKET_OUT: u8 = 13;
pub const OFPT_FLOW_MOD: u8 = 14;
pub const OFPT_GROUP_MOD: u8 = 15;
pub const OFPT_PORT_MOD: u8 = 16;
pub const OFPT_TABLE_MOD: u8 = 17;
pub const OFPT_MULTIPART_REQUEST: u8 = 18;
pub const OFPT_MULTIPART_REPLY: u8 = 19;
pub const OFPT_BARRIER_REQUEST: u8 = 20;
pub const OFPT_BARRIER_REPLY: u8 = 21;
pub const OFPT_ROLE_REQUEST: u8 = 24;
pub const OFPT_ROLE_REPLY: u8 = 25;
pub const OFPT_GET_ASYNC_REQUEST: u8 = 26;
pub const OFPT_GET_ASYNC_REPLY: u8 = 27;
pub const OFPT_SET_ASYNC: u8 = 28;
pub const OFPT_METER_MOD: u8 = 29;
pub const OFPT_BUNDLE_CONTROL: u8 = 33;
pub const OFPT_BUNDLE_ADD_MESSAGE: u8 = 34;

/// Nicira message subtypes (inside OFPT_EXPERIMENTER with NX_VENDOR_ID).
pub const NXT_SET_PACKET_IN_FORMAT: u32 = 16;
pub const NXT_SET_CONTROLLER_ID: u32 = 20;
pub const NXT_RESUME: u32 = 28;
pub const NXT_PACKET_IN2: u32 = 30;
/// ONF bundle extension for OpenFlow 1.3 (inside OFPT_EXPERIMENTER with the ONF id).
pub const ONFT_BUNDLE_CONTROL: u32 = 2300;
pub const ONFT_BUNDLE_ADD_MESSAGE: u32 = 2301;

pub const HEADER_LEN: usize = 8;

/// The fixed OpenFlow header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    pub version: u8,
    pub msg_type: u8,
    pub length: u16,
    pub xid: u32,
}

impl Header {
    /// The header at the start of `buf`, if at least 8 bytes are there.
    pub fn parse(buf: &[u8]) -> Option<Header> {
        let b = buf.get(..HEADER_LEN)?;
        Some(Header {
            version: b[0],
            msg_type: b[1],
            length: u16::from_be_bytes([b[2], b[3]]),
            xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        })
    }
}

/// How many bytes the message starting at `buf[0]` occupies, once at least 8 bytes
/// are there (`None` if fewer); `Err` if the length field is below 8.
pub fn message_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    match Header::parse(buf) {
        None => Ok(None),
        Some(h) if usize::from(h.length) < HEADER_LEN => Err(DecodeError::HeaderTooShort(h.length)),
        Some(h) => Ok(Some(usize::from(h.length))),
    }
}

/// A readable name for a message type (`OFPT_FLOW_MOD`, `NXT_PACKET_IN2`,
/// `ONFT_BUNDLE_ADD_MESSAGE`), looking into experimenter messages when `bytes`
/// (the message itself) is long enough.
pub fn message_type_name(_version: u8, msg_type: u8, bytes: &[u8]) -> String {
    let name = match msg_type {
        OFPT_HELLO => "OFPT_HELLO",
        OFPT_ERROR => "OFPT_ERROR",
        OFPT_ECHO_REQUEST => "OFPT_ECHO_REQUEST",
        OFPT_ECHO_REPLY => "OFPT_ECHO_REPLY",
        OFPT_EXPERIMENTER => {
            let word =
                |at: usize| bytes.get(at..at + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            return match (word(8), word(12)) {
                (Some(NX_VENDOR_ID), Some(sub)) => match sub {
                    NXT_SET_PACKET_IN_FORMAT => "NXT_SET_PACKET_IN_FORMAT".into(),
                    NXT_SET_CONTROLLER_ID => "NXT_SET_CONTROLLER_ID".into(),
                    NXT_RESUME => "NXT_RESUME".into(),
                    NXT_PACKET_IN2 => "NXT_PACKET_IN2".into(),
                    n => format!("NXT_{n}"),
                },
                (Some(ONF_EXPERIMENTER_ID), Some(ONFT_BUNDLE_CONTROL)) => "ONFT_BUNDLE_CONTROL".into(),
                (Some(ONF_EXPERIMENTER_ID), Some(ONFT_BUNDLE_ADD_MESSAGE)) => {
                    "ONFT_BUNDLE_ADD_MESSAGE".into()
                }
                (Some(exp), Some(sub)) => format!("OFPT_EXPERIMENTER({exp:#x},{sub})"),
                _ => "OFPT_EXPERIMENTER".into(),
            };
        }
        OFPT_FEATURES_REQUEST => "OFPT_FEATURES_REQUEST",
        OFPT_FEATURES_REPLY => "OFPT_FEATURES_REPLY",
        OFPT_GET_CONFIG_REQUEST => "OFPT_GET_CONFIG_REQUEST",
        OFPT_GET_CONFIG_REPLY => "OFPT_GET_CONFIG_REPLY",
        OFPT_SET_CONFIG => "OFPT_SET_CONFIG",
        OFPT_PACKET_IN => "OFPT_PACKET_IN",
        OFPT_FLOW_REMOVED => "OFPT_FLOW_REMOVED",
        OFPT_PORT_STATUS => "OFPT_PORT_STATUS",
        OFPT_PACKET_OUT => "OFPT_PACKET_OUT",
        OFPT_FLOW_MOD => "OFPT_FLOW_MOD",
        OFPT_GROUP_MOD => "OFPT_GROUP_MOD",
        OFPT_PORT_MOD => "OFPT_PORT_MOD",
        OFPT_TABLE_MOD => "OFPT_TABLE_MOD",
        OFPT_MULTIPART_REQUEST => "OFPT_MULTIPART_REQUEST",
        OFPT_MULTIPART_REPLY => "OFPT_MULTIPART_REPLY",
        OFPT_BARRIER_REQUEST => "OFPT_BARRIER_REQUEST",
        OFPT_BARRIER_REPLY => "OFPT_BARRIER_REPLY",
        OFPT_ROLE_REQUEST => "OFPT_ROLE_REQUEST",
        OFPT_ROLE_REPLY => "OFPT_ROLE_REPLY",
        OFPT_GET_ASYNC_REQUEST => "OFPT_GET_ASYNC_REQUEST",
        OFPT_GET_ASYNC_REPLY => "OFPT_GET_ASYNC_REPLY",
        OFPT_SET_ASYNC => "OFPT_SET_ASYNC",
        OFPT_METER_MOD => "OFPT_METER_MOD",
        OFPT_BUNDLE_CONTROL => "OFPT_BUNDLE_CONTROL",
        OFPT_BUNDLE_ADD_MESSAGE => "OFPT_BUNDLE_ADD_MESSAGE",
        n => return format!("OFPT_{n}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing() {
        assert_eq!(message_len(&[4, 0, 0]), Ok(None));
        assert_eq!(message_len(&[4, 0, 0, 16, 0, 0, 0, 1]), Ok(Some(16)));
        assert_eq!(message_len(&[4, 0, 0, 7, 0, 0, 0, 1]), Err(DecodeError::HeaderTooShort(7)));
    }
}
