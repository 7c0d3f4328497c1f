//! OFPT_ERROR: the error a switch sends back, with OVS's names for the (type, code)
//! pairs of OpenFlow 1.3-1.5 and the Nicira/ONF experimenter errors, and a decoded
//! header of the request that failed so callers can say which message it was.

use std::fmt;

use crate::header::{message_type_name, Header};
use crate::{NX_VENDOR_ID, ONF_EXPERIMENTER_ID};

/// OFPET_EXPERIMENTER: `code` is the experimenter's type and `data` starts with the
/// 4-byte experimenter id.
pub const OFPET_EXPERIMENTER: u16 = 0xffff;
pub const OFPET_HELLO_FAILED: u16 = 0;
pub const OFPET_BAD_REQUEST: u16 = 1;
pub const OFPET_BAD_ACTION: u16 = 2;
pub const OFPET_BAD_INSTRUCTION: u16 = 3;
pub const OFPET_BAD_MATCH: u16 = 4;
pub const OFPET_FLOW_MOD_FAILED: u16 = 5;
pub const OFPET_GROUP_MOD_FAILED: u16 = 6;
pub const OFPET_BUNDLE_FAILED: u16 = 17;

/// An error message as carried on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ErrorMsg {
    pub err_type: u16,
    pub code: u16,
    /// For standard errors: (the start of) the failed request. For experimenter
    /// errors: the experimenter id, then the failed request.
    pub data: Vec<u8>,
}

struct ErrorName {
    name: &'static str,
    min_version: u8,
    max_version: u8,
    experimenter: u32,
    err_type: u16,
    code: u16,
}

impl ErrorMsg {
    /// An experimenter error (OFPET_EXPERIMENTER) with its id and type.
    pub fn experimenter(experimenter: u32, exp_type: u16, request: &[u8]) -> ErrorMsg {
        let mut data = experimenter.to_be_bytes().to_vec();
        data.extend_from_slice(request);
        ErrorMsg { err_type: OFPET_EXPERIMENTER, code: exp_type, data }
    }

    /// The experimenter id of an OFPET_EXPERIMENTER error.
    pub fn experimenter_id(&self) -> Option<u32> {
        if self.err_type != OFPET_EXPERIMENTER {
            return None;
        }
        let b = self.data.get(..4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The bytes of the failed request (the data after any experimenter id).
    pub fn request_bytes(&self) -> &[u8] {
        if self.err_type == OFPET_EXPERIMENTER {
            self.data.get(4..).unwrap_or(&[])
        } else {
            &self.data
        }
    }

    /// The header of the request that failed, when the data carries one.
    pub fn failed_request(&self) -> Option<Header> {
        Header::parse(self.request_bytes())
    }

    /// OVS's name for this error under `version` (e.g. `OFPBAC_BAD_OUT_PORT`,
    /// `OFPBFC_MSG_FAILED`), if known.
    pub fn name_for(&self, version: u8) -> Option<&'static str> {
        let (exp, t, c) = match self.experimenter_id() {
            Some(exp) => (exp, OFPET_EXPERIMENTER, self.code),
            None => (0, self.err_type, self.code),
        };
        let hit = |e: &&ErrorName| e.experimenter == exp && e.err_type == t && e.code == c;
        ERROR_NAMES
            .iter()
            .filter(hit)
            .find(|e| e.min_version <= version && version <= e.max_version)
            .or_else(|| ERROR_NAMES.iter().find(hit))
            .map(|e| e.name)
    }

    /// The name under OpenFlow 1.4 numbering (standard codes agree across 1.3-1.5
    /// except for the few OpenFlow 1.3 reused for ONF extensions, which are
    /// experimenter errors and so unambiguous).
    pub fn name(&self) -> Option<&'static str> {
        self.name_for(crate::OFP14)
    }
}

/// A short description of an error name's category, from its prefix.
fn category(name: &str) -> &'static str {
    let prefix = name.split('_').next().unwrap_or("");
    match prefix {
        "OFPHFC" => "hello failed",
        "OFPBRC" | "NXBRC" => "bad request",
        "OFPBAC" | "NXBAC" => "bad action",
        "OFPBIC" => "bad instruction",
        "OFPBMC" | "NXBMC" => "bad match",
        "OFPFMFC" | "NXFMFC" => "flow mod failed",
        "OFPGMFC" => "group mod failed",
        "OFPPMFC" => "port mod failed",
        "OFPTMFC" => "table mod failed",
        "OFPQOFC" | "NXQOFC" => "queue op failed",
        "OFPSCFC" => "switch config failed",
        "OFPRRFC" => "role request failed",
        "OFPMMFC" => "meter mod failed",
        "OFPTFFC" | "NXTFFC" => "table features failed",
        "OFPBPC" => "bad property",
        "OFPACFC" => "async config failed",
        "OFPMOFC" => "flow monitor failed",
        "OFPBFC" => "bundle failed",
        "NXTTMFC" => "tlv table mod failed",
        "NXR" => "resume failed",
        _ => "error",
    }
}

impl fmt::Display for ErrorMsg {
    /// E.g. `bad action: OFPBAC_BAD_OUT_PORT (failed request: OFPT_FLOW_MOD xid=0x7)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{}: {name}", category(name))?,
            None => match self.experimenter_id() {
                Some(exp) => write!(f, "experimenter {exp:#x} error type {}", self.code)?,
                None => write!(f, "error type {} code {}", self.err_type, self.code)?,
            },
        }
        if let Some(h) = self.failed_request() {
            let req = self.request_bytes();
            let name = message_type_name(h.version, h.msg_type, req);
            write!(f, " (failed request: {name} xid={:#x}", h.xid)?;
            // A failed bundle add: say what it carried.
            let inner_at = match name.as_str() {
                "OFPT_BUNDLE_ADD_MESSAGE" => Some(16),
                "ONFT_BUNDLE_ADD_MESSAGE" => Some(24),
                _ => None,
            };
            if let Some(inner) = inner_at.and_then(|at| req.get(at..)).and_then(Header::parse) {
                let bytes = req.get(inner_at.unwrap_or(0)..).unwrap_or(&[]);
                write!(f, " carrying {}", message_type_name(inner.version, inner.msg_type, bytes))?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

#[rustfmt::skip]
static ERROR_NAMES: &[ErrorName] = &[
    ErrorName { name: "OFPBRC_BAD_TABLE_ID", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x1, code: 9 },
    ErrorName { name: "NXBAC_BAD_CONJUNCTION", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 15 },
    ErrorName { name: "NXBAC_BAD_ED_PROP", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 41 },
    ErrorName { name: "NXBAC_BAD_HEADER_TYPE", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 39 },
    ErrorName { name: "NXBAC_CT_DATAPATH_SUPPORT", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 42 },
    ErrorName { name: "NXBAC_MUST_BE_ZERO", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 11 },
    ErrorName { name: "NXBAC_UNKNOWN_ED_PROP", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 40 },
    ErrorName { name: "NXBMC_CT_DATAPATH_SUPPORT", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 43 },
    ErrorName { name: "NXBRC_BAD_REASON", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 5 },
    ErrorName { name: "NXBRC_FM_BAD_EVENT", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 9 },
    ErrorName { name: "NXBRC_MUST_BE_ZERO", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 4 },
    ErrorName { name: "NXBRC_NXM_BAD_TYPE", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 3 },
    ErrorName { name: "NXBRC_NXM_INVALID", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 2 },
    ErrorName { name: "NXBRC_UNENCODABLE_ERROR", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 10 },
    ErrorName { name: "NXFMFC_BAD_TABLE_ID", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 13 },
    ErrorName { name: "NXFMFC_HARDWARE", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 12 },
    ErrorName { name: "NXFMFC_INVALID_TLV_FIELD", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 37 },
    ErrorName { name: "NXQOFC_QUEUE_ERROR", min_version: 5, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 23 },
    ErrorName { name: "NXR_NOT_SUPPORTED", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 34 },
    ErrorName { name: "NXR_STALE", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 35 },
    ErrorName { name: "NXST_NOT_CONFIGURED", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 36 },
    ErrorName { name: "NXTFFC_DUP_TABLE", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 44 },
    ErrorName { name: "NXTTMFC_ALREADY_MAPPED", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 20 },
    ErrorName { name: "NXTTMFC_BAD_COMMAND", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 16 },
    ErrorName { name: "NXTTMFC_BAD_FIELD_IDX", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 18 },
    ErrorName { name: "NXTTMFC_BAD_OPT_LEN", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 17 },
    ErrorName { name: "NXTTMFC_DUP_ENTRY", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 21 },
    ErrorName { name: "NXTTMFC_INVALID_TLV_DEL", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 38 },
    ErrorName { name: "NXTTMFC_TABLE_FULL", min_version: 4, max_version: 7, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 19 },
    ErrorName { name: "OFPACFC_EPERM", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 2372 },
    ErrorName { name: "OFPACFC_EPERM", min_version: 5, max_version: 7, experimenter: 0, err_type: 0xf, code: 2 },
    ErrorName { name: "OFPACFC_INVALID", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 2370 },
    ErrorName { name: "OFPACFC_INVALID", min_version: 5, max_version: 7, experimenter: 0, err_type: 0xf, code: 0 },
    ErrorName { name: "OFPACFC_UNSUPPORTED", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 2371 },
    ErrorName { name: "OFPACFC_UNSUPPORTED", min_version: 5, max_version: 7, experimenter: 0, err_type: 0xf, code: 1 },
    ErrorName { name: "OFPBAC_BAD_ARGUMENT", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x2, code: 5 },
    ErrorName { name: "OFPBAC_BAD_LEN", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x2, code: 1 },
    ErrorName { name: "OFPBAC_BAD_METER", min_version: 6, max_version: 7, experimenter: 0, err_type: 0x2, code: 17 },
    ErrorName { name: "OFPBAC_BAD_OUT_GROUP", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x2, code: 9 },
    ErrorName { name: "OFPBAC_BAD_OUT_PORT", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x2, code: 4 },
    ErrorName { name: "OFPBAC_BAD_QUEUE", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x2, code: 8 },
    ErrorName { name: "OFPBAC_BAD_SET_ARGUMENT", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x2, code: 15 },
    ErrorName { name: "OFPBAC_BAD_SET_LEN", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x2, code: 14 },
    ErrorName { name: "OFPBAC_BAD_SET_MASK", min_version: 4, max_version: 5, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 4250 },
    ErrorName { name: "OFPBAC_BAD_SET_MASK", min_version: 6, max_version: 7, experimenter: 0, err_type: 0x2, code: 16 },
    ErrorName { name: "OFPBAC_BAD_SET_TYPE", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x2, code: 13 },
    ErrorName { name: "OFPBAC_BAD_TAG", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x2, code: 12 },
    ErrorName { name: "OFPBAC_BAD_TYPE", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x2, code: 0 },
    ErrorName { name: "OFPBAC_BAD_VENDOR", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x2, code: 2 },
    ErrorName { name: "OFPBAC_BAD_VENDOR_TYPE", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x2, code: 3 },
    ErrorName { name: "OFPBAC_EPERM", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x2, code: 6 },
    ErrorName { name: "OFPBAC_MATCH_INCONSISTENT", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x2, code: 10 },
    ErrorName { name: "OFPBAC_TOO_MANY", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x2, code: 7 },
    ErrorName { name: "OFPBAC_UNSUPPORTED_ORDER", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x2, code: 11 },
    ErrorName { name: "OFPBFC_BAD_FLAGS", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 2307 },
    ErrorName { name: "OFPBFC_BAD_FLAGS", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x11, code: 7 },
    ErrorName { name: "OFPBFC_BAD_ID", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 2302 },
    ErrorName { name: "OFPBFC_BAD_ID", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x11, code: 2 },
    ErrorName { name: "OFPBFC_BAD_TYPE", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 2306 },
    ErrorName { name: "OFPBFC_BAD_TYPE", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x11, code: 6 },
    ErrorName { name: "OFPBFC_BAD_VERSION", min_version: 5, max_version: 6, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 22 },
    ErrorName { name: "OFPBFC_BUNDLE_CLOSED", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 2304 },
    ErrorName { name: "OFPBFC_BUNDLE_CLOSED", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x11, code: 4 },
    ErrorName { name: "OFPBFC_BUNDLE_EXIST", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 2303 },
    ErrorName { name: "OFPBFC_BUNDLE_EXIST", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x11, code: 3 },
    ErrorName { name: "OFPBFC_BUNDLE_IN_PROGRESS", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 2315 },
    ErrorName { name: "OFPBFC_BUNDLE_IN_PROGRESS", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x11, code: 15 },
    ErrorName { name: "OFPBFC_EPERM", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 2301 },
    ErrorName { name: "OFPBFC_EPERM", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x11, code: 1 },
    ErrorName { name: "OFPBFC_MSG_BAD_LEN", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 2308 },
    ErrorName { name: "OFPBFC_MSG_BAD_LEN", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x11, code: 8 },
    ErrorName { name: "OFPBFC_MSG_BAD_XID", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 2309 },
    ErrorName { name: "OFPBFC_MSG_BAD_XID", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x11, code: 9 },
    ErrorName { name: "OFPBFC_MSG_CONFLICT", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 2311 },
    ErrorName { name: "OFPBFC_MSG_CONFLICT", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x11, code: 11 },
    ErrorName { name: "OFPBFC_MSG_FAILED", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 2313 },
    ErrorName { name: "OFPBFC_MSG_FAILED", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x11, code: 13 },
    ErrorName { name: "OFPBFC_MSG_TOO_MANY", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 2312 },
    ErrorName { name: "OFPBFC_MSG_TOO_MANY", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x11, code: 12 },
    ErrorName { name: "OFPBFC_MSG_UNSUP", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 2310 },
    ErrorName { name: "OFPBFC_MSG_UNSUP", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x11, code: 10 },
    ErrorName { name: "OFPBFC_OUT_OF_BUNDLES", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 2305 },
    ErrorName { name: "OFPBFC_OUT_OF_BUNDLES", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x11, code: 5 },
    ErrorName { name: "OFPBFC_SCHED_FUTURE", min_version: 6, max_version: 7, experimenter: 0, err_type: 0x11, code: 17 },
    ErrorName { name: "OFPBFC_SCHED_NOT_SUPPORTED", min_version: 6, max_version: 7, experimenter: 0, err_type: 0x11, code: 16 },
    ErrorName { name: "OFPBFC_SCHED_PAST", min_version: 6, max_version: 7, experimenter: 0, err_type: 0x11, code: 18 },
    ErrorName { name: "OFPBFC_TIMEOUT", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 2314 },
    ErrorName { name: "OFPBFC_TIMEOUT", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x11, code: 14 },
    ErrorName { name: "OFPBFC_UNKNOWN", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 2300 },
    ErrorName { name: "OFPBFC_UNKNOWN", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x11, code: 0 },
    ErrorName { name: "OFPBIC_BAD_EXPERIMENTER", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x3, code: 5 },
    ErrorName { name: "OFPBIC_BAD_EXP_TYPE", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x3, code: 6 },
    ErrorName { name: "OFPBIC_BAD_LEN", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x3, code: 7 },
    ErrorName { name: "OFPBIC_BAD_TABLE_ID", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x3, code: 2 },
    ErrorName { name: "OFPBIC_DUP_INST", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 2600 },
    ErrorName { name: "OFPBIC_DUP_INST", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x3, code: 9 },
    ErrorName { name: "OFPBIC_EPERM", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x3, code: 8 },
    ErrorName { name: "OFPBIC_UNKNOWN_INST", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x3, code: 0 },
    ErrorName { name: "OFPBIC_UNSUP_INST", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x3, code: 1 },
    ErrorName { name: "OFPBIC_UNSUP_METADATA", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x3, code: 3 },
    ErrorName { name: "OFPBIC_UNSUP_METADATA_MASK", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x3, code: 4 },
    ErrorName { name: "OFPBMC_BAD_DL_ADDR_MASK", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x4, code: 3 },
    ErrorName { name: "OFPBMC_BAD_FIELD", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x4, code: 6 },
    ErrorName { name: "OFPBMC_BAD_LEN", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x4, code: 1 },
    ErrorName { name: "OFPBMC_BAD_MASK", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x4, code: 8 },
    ErrorName { name: "OFPBMC_BAD_NW_ADDR_MASK", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x4, code: 4 },
    ErrorName { name: "OFPBMC_BAD_PREREQ", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x4, code: 9 },
    ErrorName { name: "OFPBMC_BAD_TAG", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x4, code: 2 },
    ErrorName { name: "OFPBMC_BAD_TYPE", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x4, code: 0 },
    ErrorName { name: "OFPBMC_BAD_VALUE", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x4, code: 7 },
    ErrorName { name: "OFPBMC_BAD_WILDCARDS", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x4, code: 5 },
    ErrorName { name: "OFPBMC_DUP_FIELD", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x4, code: 10 },
    ErrorName { name: "OFPBMC_EPERM", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x4, code: 11 },
    ErrorName { name: "OFPBPC_BAD_EXPERIMENTER", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 4445 },
    ErrorName { name: "OFPBPC_BAD_EXPERIMENTER", min_version: 5, max_version: 7, experimenter: 0, err_type: 0xe, code: 5 },
    ErrorName { name: "OFPBPC_BAD_EXP_TYPE", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 4446 },
    ErrorName { name: "OFPBPC_BAD_EXP_TYPE", min_version: 5, max_version: 7, experimenter: 0, err_type: 0xe, code: 6 },
    ErrorName { name: "OFPBPC_BAD_EXP_VALUE", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 4447 },
    ErrorName { name: "OFPBPC_BAD_EXP_VALUE", min_version: 5, max_version: 7, experimenter: 0, err_type: 0xe, code: 7 },
    ErrorName { name: "OFPBPC_BAD_LEN", min_version: 4, max_version: 4, experimenter: 0, err_type: 0xd, code: 3 },
    ErrorName { name: "OFPBPC_BAD_LEN", min_version: 5, max_version: 7, experimenter: 0, err_type: 0xe, code: 1 },
    ErrorName { name: "OFPBPC_BAD_TYPE", min_version: 4, max_version: 4, experimenter: 0, err_type: 0xd, code: 2 },
    ErrorName { name: "OFPBPC_BAD_TYPE", min_version: 5, max_version: 7, experimenter: 0, err_type: 0xe, code: 0 },
    ErrorName { name: "OFPBPC_BAD_VALUE", min_version: 4, max_version: 4, experimenter: 0, err_type: 0xd, code: 4 },
    ErrorName { name: "OFPBPC_BAD_VALUE", min_version: 5, max_version: 7, experimenter: 0, err_type: 0xe, code: 2 },
    ErrorName { name: "OFPBPC_DUP_TYPE", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 4444 },
    ErrorName { name: "OFPBPC_DUP_TYPE", min_version: 5, max_version: 7, experimenter: 0, err_type: 0xe, code: 4 },
    ErrorName { name: "OFPBPC_EPERM", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 4448 },
    ErrorName { name: "OFPBPC_EPERM", min_version: 5, max_version: 7, experimenter: 0, err_type: 0xe, code: 8 },
    ErrorName { name: "OFPBPC_TOO_MANY", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 4443 },
    ErrorName { name: "OFPBPC_TOO_MANY", min_version: 5, max_version: 7, experimenter: 0, err_type: 0xe, code: 3 },
    ErrorName { name: "OFPBRC_BAD_LEN", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x1, code: 6 },
    ErrorName { name: "OFPBRC_BAD_PACKET", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x1, code: 12 },
    ErrorName { name: "OFPBRC_BAD_PORT", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x1, code: 11 },
    ErrorName { name: "OFPBRC_BAD_STAT", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x1, code: 2 },
    ErrorName { name: "OFPBRC_BAD_SUBTYPE", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x1, code: 4 },
    ErrorName { name: "OFPBRC_BAD_TYPE", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x1, code: 1 },
    ErrorName { name: "OFPBRC_BAD_VENDOR", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x1, code: 3 },
    ErrorName { name: "OFPBRC_BAD_VERSION", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x1, code: 0 },
    ErrorName { name: "OFPBRC_BUFFER_EMPTY", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x1, code: 7 },
    ErrorName { name: "OFPBRC_BUFFER_UNKNOWN", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x1, code: 8 },
    ErrorName { name: "OFPBRC_EPERM", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x1, code: 5 },
    ErrorName { name: "OFPBRC_IS_SECONDARY", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x1, code: 10 },
    ErrorName { name: "OFPBRC_MULTIPART_BAD_SCHED", min_version: 6, max_version: 7, experimenter: 0, err_type: 0x1, code: 16 },
    ErrorName { name: "OFPBRC_MULTIPART_BUFFER_OVERFLOW", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x1, code: 13 },
    ErrorName { name: "OFPBRC_MULTIPART_REPLY_TIMEOUT", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 2641 },
    ErrorName { name: "OFPBRC_MULTIPART_REPLY_TIMEOUT", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x1, code: 15 },
    ErrorName { name: "OFPBRC_MULTIPART_REQUEST_TIMEOUT", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 2640 },
    ErrorName { name: "OFPBRC_MULTIPART_REQUEST_TIMEOUT", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x1, code: 14 },
    ErrorName { name: "OFPBRC_PIPELINE_FIELDS_ONLY", min_version: 6, max_version: 7, experimenter: 0, err_type: 0x1, code: 17 },
    ErrorName { name: "OFPBRC_UNKNOWN", min_version: 6, max_version: 7, experimenter: 0, err_type: 0x1, code: 18 },
    ErrorName { name: "OFPFMFC_BAD_COMMAND", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x5, code: 6 },
    ErrorName { name: "OFPFMFC_BAD_FLAGS", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x5, code: 7 },
    ErrorName { name: "OFPFMFC_BAD_PRIORITY", min_version: 4, max_version: 4, experimenter: ONF_EXPERIMENTER_ID, err_type: 0xffff, code: 2360 },
    ErrorName { name: "OFPFMFC_BAD_PRIORITY", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x5, code: 9 },
    ErrorName { name: "OFPFMFC_BAD_TABLE_ID", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x5, code: 2 },
    ErrorName { name: "OFPFMFC_BAD_TIMEOUT", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x5, code: 5 },
    ErrorName { name: "OFPFMFC_CANT_SYNC", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x5, code: 8 },
    ErrorName { name: "OFPFMFC_EPERM", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x5, code: 4 },
    ErrorName { name: "OFPFMFC_IS_SYNC", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x5, code: 10 },
    ErrorName { name: "OFPFMFC_OVERLAP", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x5, code: 3 },
    ErrorName { name: "OFPFMFC_TABLE_FULL", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x5, code: 1 },
    ErrorName { name: "OFPFMFC_UNKNOWN", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x5, code: 0 },
    ErrorName { name: "OFPGMFC_BAD_BUCKET", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x6, code: 12 },
    ErrorName { name: "OFPGMFC_BAD_COMMAND", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x6, code: 11 },
    ErrorName { name: "OFPGMFC_BAD_TYPE", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x6, code: 10 },
    ErrorName { name: "OFPGMFC_BAD_WATCH", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x6, code: 13 },
    ErrorName { name: "OFPGMFC_BUCKET_EXISTS", min_version: 6, max_version: 7, experimenter: 0, err_type: 0x6, code: 16 },
    ErrorName { name: "OFPGMFC_CHAINED_GROUP", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x6, code: 9 },
    ErrorName { name: "OFPGMFC_CHAINING_UNSUPPORTED", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x6, code: 5 },
    ErrorName { name: "OFPGMFC_EPERM", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x6, code: 14 },
    ErrorName { name: "OFPGMFC_GROUP_EXISTS", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x6, code: 0 },
    ErrorName { name: "OFPGMFC_INVALID_GROUP", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x6, code: 1 },
    ErrorName { name: "OFPGMFC_LOOP", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x6, code: 7 },
    ErrorName { name: "OFPGMFC_OUT_OF_BUCKETS", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x6, code: 4 },
    ErrorName { name: "OFPGMFC_OUT_OF_GROUPS", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x6, code: 3 },
    ErrorName { name: "OFPGMFC_UNKNOWN_BUCKET", min_version: 6, max_version: 7, experimenter: 0, err_type: 0x6, code: 15 },
    ErrorName { name: "OFPGMFC_UNKNOWN_GROUP", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x6, code: 8 },
    ErrorName { name: "OFPGMFC_WATCH_UNSUPPORTED", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x6, code: 6 },
    ErrorName { name: "OFPGMFC_WEIGHT_UNSUPPORTED", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x6, code: 2 },
    ErrorName { name: "OFPHFC_EPERM", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x0, code: 1 },
    ErrorName { name: "OFPHFC_INCOMPATIBLE", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x0, code: 0 },
    ErrorName { name: "OFPMMFC_BAD_BAND", min_version: 4, max_version: 7, experimenter: 0, err_type: 0xc, code: 8 },
    ErrorName { name: "OFPMMFC_BAD_BAND_VALUE", min_version: 4, max_version: 7, experimenter: 0, err_type: 0xc, code: 9 },
    ErrorName { name: "OFPMMFC_BAD_BURST", min_version: 4, max_version: 7, experimenter: 0, err_type: 0xc, code: 7 },
    ErrorName { name: "OFPMMFC_BAD_COMMAND", min_version: 4, max_version: 7, experimenter: 0, err_type: 0xc, code: 4 },
    ErrorName { name: "OFPMMFC_BAD_FLAGS", min_version: 4, max_version: 7, experimenter: 0, err_type: 0xc, code: 5 },
    ErrorName { name: "OFPMMFC_BAD_RATE", min_version: 4, max_version: 7, experimenter: 0, err_type: 0xc, code: 6 },
    ErrorName { name: "OFPMMFC_INVALID_METER", min_version: 4, max_version: 7, experimenter: 0, err_type: 0xc, code: 2 },
    ErrorName { name: "OFPMMFC_METER_EXISTS", min_version: 4, max_version: 7, experimenter: 0, err_type: 0xc, code: 1 },
    ErrorName { name: "OFPMMFC_OUT_OF_BANDS", min_version: 4, max_version: 7, experimenter: 0, err_type: 0xc, code: 11 },
    ErrorName { name: "OFPMMFC_OUT_OF_METERS", min_version: 4, max_version: 7, experimenter: 0, err_type: 0xc, code: 10 },
    ErrorName { name: "OFPMMFC_UNKNOWN", min_version: 4, max_version: 7, experimenter: 0, err_type: 0xc, code: 0 },
    ErrorName { name: "OFPMMFC_UNKNOWN_METER", min_version: 4, max_version: 7, experimenter: 0, err_type: 0xc, code: 3 },
    ErrorName { name: "OFPMOFC_BAD_COMMAND", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x10, code: 4 },
    ErrorName { name: "OFPMOFC_BAD_FLAGS", min_version: 4, max_version: 4, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 7 },
    ErrorName { name: "OFPMOFC_BAD_FLAGS", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x10, code: 5 },
    ErrorName { name: "OFPMOFC_BAD_OUT", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x10, code: 7 },
    ErrorName { name: "OFPMOFC_BAD_TABLE_ID", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x10, code: 6 },
    ErrorName { name: "OFPMOFC_INVALID_MONITOR", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x10, code: 2 },
    ErrorName { name: "OFPMOFC_MONITOR_EXISTS", min_version: 4, max_version: 4, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 6 },
    ErrorName { name: "OFPMOFC_MONITOR_EXISTS", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x10, code: 1 },
    ErrorName { name: "OFPMOFC_UNKNOWN", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x10, code: 0 },
    ErrorName { name: "OFPMOFC_UNKNOWN_MONITOR", min_version: 4, max_version: 4, experimenter: NX_VENDOR_ID, err_type: 0xffff, code: 8 },
    ErrorName { name: "OFPMOFC_UNKNOWN_MONITOR", min_version: 5, max_version: 7, experimenter: 0, err_type: 0x10, code: 3 },
    ErrorName { name: "OFPPMFC_BAD_ADVERTISE", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x7, code: 3 },
    ErrorName { name: "OFPPMFC_BAD_CONFIG", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x7, code: 2 },
    ErrorName { name: "OFPPMFC_BAD_HW_ADDR", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x7, code: 1 },
    ErrorName { name: "OFPPMFC_BAD_PORT", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x7, code: 0 },
    ErrorName { name: "OFPPMFC_EPERM", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x7, code: 4 },
    ErrorName { name: "OFPQOFC_BAD_PORT", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x9, code: 0 },
    ErrorName { name: "OFPQOFC_BAD_QUEUE", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x9, code: 1 },
    ErrorName { name: "OFPQOFC_EPERM", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x9, code: 2 },
    ErrorName { name: "OFPRRFC_BAD_ROLE", min_version: 4, max_version: 7, experimenter: 0, err_type: 0xb, code: 2 },
    ErrorName { name: "OFPRRFC_ID_IN_USE", min_version: 6, max_version: 7, experimenter: 0, err_type: 0xb, code: 4 },
    ErrorName { name: "OFPRRFC_ID_UNSUP", min_version: 6, max_version: 7, experimenter: 0, err_type: 0xb, code: 3 },
    ErrorName { name: "OFPRRFC_STALE", min_version: 4, max_version: 7, experimenter: 0, err_type: 0xb, code: 0 },
    ErrorName { name: "OFPRRFC_UNSUP", min_version: 4, max_version: 7, experimenter: 0, err_type: 0xb, code: 1 },
    ErrorName { name: "OFPSCFC_BAD_FLAGS", min_version: 4, max_version: 7, experimenter: 0, err_type: 0xa, code: 0 },
    ErrorName { name: "OFPSCFC_BAD_LEN", min_version: 4, max_version: 7, experimenter: 0, err_type: 0xa, code: 1 },
    ErrorName { name: "OFPSCFC_EPERM", min_version: 4, max_version: 7, experimenter: 0, err_type: 0xa, code: 2 },
    ErrorName { name: "OFPTFFC_BAD_CAPA", min_version: 6, max_version: 7, experimenter: 0, err_type: 0xd, code: 6 },
    ErrorName { name: "OFPTFFC_BAD_COMMAND", min_version: 6, max_version: 7, experimenter: 0, err_type: 0xd, code: 9 },
    ErrorName { name: "OFPTFFC_BAD_FEATURES", min_version: 6, max_version: 7, experimenter: 0, err_type: 0xd, code: 8 },
    ErrorName { name: "OFPTFFC_BAD_MAX_ENT", min_version: 6, max_version: 7, experimenter: 0, err_type: 0xd, code: 7 },
    ErrorName { name: "OFPTFFC_BAD_METADATA", min_version: 4, max_version: 7, experimenter: 0, err_type: 0xd, code: 1 },
    ErrorName { name: "OFPTFFC_BAD_TABLE", min_version: 4, max_version: 7, experimenter: 0, err_type: 0xd, code: 0 },
    ErrorName { name: "OFPTFFC_EPERM", min_version: 4, max_version: 7, experimenter: 0, err_type: 0xd, code: 5 },
    ErrorName { name: "OFPTFFC_TOO_MANY", min_version: 6, max_version: 7, experimenter: 0, err_type: 0xd, code: 10 },
    ErrorName { name: "OFPTMFC_BAD_CONFIG", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x8, code: 1 },
    ErrorName { name: "OFPTMFC_BAD_TABLE", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x8, code: 0 },
    ErrorName { name: "OFPTMFC_EPERM", min_version: 4, max_version: 7, experimenter: 0, err_type: 0x8, code: 2 },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let e = ErrorMsg { err_type: 2, code: 4, data: vec![] };
        assert_eq!(e.to_string(), "bad action: OFPBAC_BAD_OUT_PORT");
        let e = ErrorMsg::experimenter(ONF_EXPERIMENTER_ID, 2313, &[]);
        assert_eq!(e.to_string(), "bundle failed: OFPBFC_MSG_FAILED");
        let e = ErrorMsg { err_type: 17, code: 13, data: vec![4, 14, 0, 8, 0, 0, 0, 7] };
        assert_eq!(e.to_string(), "bundle failed: OFPBFC_MSG_FAILED (failed request: OFPT_FLOW_MOD xid=0x7)");
        let e = ErrorMsg::experimenter(NX_VENDOR_ID, 15, &[]);
        assert_eq!(e.name(), Some("NXBAC_BAD_CONJUNCTION"));
    }
}
