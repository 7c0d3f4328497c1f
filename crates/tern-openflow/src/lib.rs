//! tern-openflow owns the OpenFlow wire format tern speaks to Open vSwitch: a sans-IO
//! codec (no sockets, no clock) for OpenFlow 1.3-1.5 messages plus the Nicira and ONF
//! extensions tern's pipeline needs, and `Flow`'s text form, identical to `ovs-ofctl`'s.
//!
//! Framing: `message_len` tells how long the message at the front of a buffer is;
//! `decode` turns exactly one message into `(Header, Message)`, never panicking on
//! hostile bytes; `encode` writes one message with a version and xid.

#![forbid(unsafe_code)]

pub mod action;
pub mod bundle;
pub mod codec;
pub mod error;
pub mod flow;
pub mod group;
pub mod header;
pub mod instruction;
pub mod matches;
pub mod message;
pub mod multipart;
pub mod ofp_error;
pub mod oxm;
pub mod packet;
pub mod port;
mod text;

/// OpenFlow 1.3 wire version.
pub const OFP13: u8 = 0x04;
/// OpenFlow 1.4 wire version.
pub const OFP14: u8 = 0x05;
/// OpenFlow 1.5 wire version.
pub const OFP15: u8 = 0x06;

/// Nicira's experimenter (vendor) id.
pub const NX_VENDOR_ID: u32 = 0x0000_2320;
/// The Open Networking Foundation's experimenter id (bundles on OpenFlow 1.3).
pub const ONF_EXPERIMENTER_ID: u32 = 0x4f4e_4600;

pub use action::{Action, ActionList, Ct, CtZone, FieldSlice, Nat, NatKind};
pub use bundle::{BundleAdd, BundleControl, BundleCtrlType, BundleFlags};
pub use error::DecodeError;
pub use flow::{Flow, FlowMod, FlowModCommand, FlowStats, FlowStatsRequest};
pub use group::{Bucket, GroupMod, GroupModCommand, GroupType};
pub use header::{message_len, Header};
pub use instruction::{Instruction, InstructionList};
pub use matches::Match;
pub use message::{decode, encode, AsyncConfig, Message, Role, SwitchConfig, SwitchFeatures};
pub use multipart::{Desc, MultipartReply, MultipartReplyBody, MultipartRequest};
pub use ofp_error::ErrorMsg;
pub use oxm::{Field, FieldValue, MatchField};
pub use packet::{NxPacketIn2, PacketIn, PacketOut};
pub use port::{Port, PortStatus};
