//! Bundles: a group of messages the switch applies atomically and in order. Native
//! in OpenFlow 1.4+ (OFPT_BUNDLE_CONTROL / OFPT_BUNDLE_ADD_MESSAGE); on OpenFlow 1.3 OVS
//! accepts the same bodies as ONF experimenter messages 2300/2301. Both decode into the
//! same types; `encode` picks the form from the version.

use crate::codec::{Reader, Writer};
use crate::error::DecodeError;
use crate::message::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BundleCtrlType {
    OpenRequest,
    OpenReply,
    CloseRequest,
    CloseReply,
    CommitRequest,
    CommitReply,
    DiscardRequest,
    DiscardReply,
}

impl BundleCtrlType {
    fn to_wire(self) -> u16 {
        match self {
            BundleCtrlType::OpenRequest => 0,
            BundleCtrlType::OpenReply => 1,
            BundleCtrlType::CloseRequest => 2,
            BundleCtrlType::CloseReply => 3,
            BundleCtrlType::CommitRequest => 4,
            BundleCtrlType::CommitReply => 5,
            BundleCtrlType::DiscardRequest => 6,
            BundleCtrlType::DiscardReply => 7,
        }
    }

    fn from_wire(v: u16) -> Result<BundleCtrlType, DecodeError> {
        Ok(match v {
            0 => BundleCtrlType::OpenRequest,
            1 => BundleCtrlType::OpenReply,
            2 => BundleCtrlType::CloseRequest,
            3 => BundleCtrlType::CloseReply,
            4 => BundleCtrlType::CommitRequest,
            5 => BundleCtrlType::CommitReply,
            6 => BundleCtrlType::DiscardRequest,
            7 => BundleCtrlType::DiscardReply,
            _ => return Err(DecodeError::BadValue { what: "bundle control type", value: u64::from(v) }),
        })
    }
}

/// OFPBF_* flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BundleFlags {
    pub atomic: bool,
    pub ordered: bool,
}

impl BundleFlags {
    pub const ATOMIC_ORDERED: BundleFlags = BundleFlags { atomic: true, ordered: true };

    fn to_wire(self) -> u16 {
        u16::from(self.atomic) | (u16::from(self.ordered) << 1)
    }

    fn from_wire(v: u16) -> BundleFlags {
        BundleFlags { atomic: v & 1 != 0, ordered: v & 2 != 0 }
    }
}

/// Opens, closes, commits or discards a bundle (or the switch's reply to that).
/// Properties are neither sent nor kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BundleControl {
    pub bundle_id: u32,
    pub ctrl_type: BundleCtrlType,
    pub flags: BundleFlags,
}

impl BundleControl {
    pub fn new(bundle_id: u32, ctrl_type: BundleCtrlType, flags: BundleFlags) -> BundleControl {
        BundleControl { bundle_id, ctrl_type, flags }
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.u32(self.bundle_id);
        w.u16(self.ctrl_type.to_wire());
        w.u16(self.flags.to_wire());
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<BundleControl, DecodeError> {
        let bundle_id = r.u32()?;
        let ctrl_type = BundleCtrlType::from_wire(r.u16()?)?;
        let flags = BundleFlags::from_wire(r.u16()?);
        Ok(BundleControl { bundle_id, ctrl_type, flags })
    }
}

/// Adds one message to an open bundle. On the wire the inner message carries the
/// same version and xid as the outer one: `encode` gives it the outer xid, and a
/// failure of the inner message is reported with that xid.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BundleAdd {
    pub bundle_id: u32,
    pub flags: BundleFlags,
    pub message: Box<Message>,
}

impl BundleAdd {
    pub fn new(bundle_id: u32, flags: BundleFlags, message: Message) -> BundleAdd {
        BundleAdd { bundle_id, flags, message: Box::new(message) }
    }

    pub(crate) fn write(&self, w: &mut Writer, version: u8, xid: u32) {
        w.u32(self.bundle_id);
        w.u16(0);
        w.u16(self.flags.to_wire());
        crate::message::write_message(w, version, xid, &self.message);
    }

    pub(crate) fn read(r: &mut Reader<'_>, depth: usize) -> Result<BundleAdd, DecodeError> {
        let bundle_id = r.u32()?;
        r.skip(2)?;
        let flags = BundleFlags::from_wire(r.u16()?);
        let inner = r.rest();
        let len = match crate::header::message_len(inner)? {
            Some(len) if len <= inner.len() => len,
            needed => {
                return Err(DecodeError::Truncated {
                    what: "bundled message",
                    needed: needed.unwrap_or(8),
                    available: inner.len(),
                })
            }
        };
        // Anything after the inner message is padding and properties, ignored.
        let (_, message) = crate::message::decode_at(inner.get(..len).unwrap_or(&[]), depth + 1)?;
        Ok(BundleAdd { bundle_id, flags, message: Box::new(message) })
    }
}
