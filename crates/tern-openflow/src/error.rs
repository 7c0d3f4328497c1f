//! Why a byte string is not a valid OpenFlow message. Every decoder returns these
//! instead of panicking; each variant names the region and carries the offending value.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("{what}: truncated, needed {needed} bytes but {available} are left")]
    Truncated { what: &'static str, needed: usize, available: usize },
    #[error("{what}: bad length {length}")]
    BadLength { what: &'static str, length: usize },
    #[error("{what}: {bytes} trailing bytes")]
    Trailing { what: &'static str, bytes: usize },
    #[error("{what}: bad value {value:#x}")]
    BadValue { what: &'static str, value: u64 },
    #[error("OpenFlow header length {0} is shorter than the 8-byte header")]
    HeaderTooShort(u16),
    #[error("message length {length} in header, but {available} bytes given")]
    LengthMismatch { length: usize, available: usize },
    #[error("{what}: nested too deeply")]
    TooDeep { what: &'static str },
}
