//! The crate's error type. Every variant carries what failed: the target (socket path), the
//! JSON-RPC method, the transaction op index and the server's error and details.

use std::time::Duration;

use serde_json::Value;

use crate::framing::FramingError;

/// Anything that can go wrong talking to an OVSDB server.
#[derive(Debug, thiserror::Error)]
pub enum OvsdbError {
    /// The connection target is neither `unix:PATH` nor `tcp:HOST:PORT`.
    #[error("bad OVSDB target {target:?}: expected unix:PATH or tcp:HOST:PORT")]
    BadTarget { target: String },

    /// Connecting to the target failed.
    #[error("cannot connect to OVSDB at {target}: {source}")]
    Connect {
        target: String,
        #[source]
        source: std::io::Error,
    },

    /// Reading or writing the socket failed.
    #[error("OVSDB connection {target}: {source}")]
    Io {
        target: String,
        #[source]
        source: std::io::Error,
    },

    /// The connection is closed (or closed while the request was outstanding).
    #[error("OVSDB connection {target} closed{}", if .method.is_empty() { String::new() } else { format!(" while waiting for {}", .method) })]
    Disconnected { target: String, method: String },

    /// The byte stream could not be split into JSON values.
    #[error("OVSDB connection {target}: {source}")]
    Framing {
        target: String,
        #[source]
        source: FramingError,
    },

    /// The server sent something that is not valid JSON-RPC / OVSDB.
    #[error("OVSDB protocol error ({context}): {detail}")]
    Protocol { context: String, detail: String },

    /// The server answered a request with a JSON-RPC error.
    #[error("OVSDB {method} failed: {error}")]
    Rpc { method: String, error: Value },

    /// An operation of a transaction failed (index `index`; `index == ops.len()` means the commit
    /// itself failed, e.g. a referential integrity or constraint violation).
    #[error("OVSDB transact on {db}: op {index} ({op}) failed: {error}{}", if .details.is_empty() { String::new() } else { format!(": {}", .details) })]
    OpFailed { db: String, index: usize, op: String, error: String, details: String },

    /// Something did not happen in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },

    /// The database holds something that contradicts the request (e.g. a port name used on
    /// another bridge).
    #[error("conflict: {what}")]
    Conflict { what: String },

    /// OVS could not set up an interface (its `error` column).
    #[error("interface {name} failed: {error}")]
    InterfaceFailed { name: String, error: String },

    /// A row the operation needs does not exist.
    #[error("not found: {what}")]
    NotFound { what: String },
}

impl OvsdbError {
    pub(crate) fn protocol(context: impl Into<String>, detail: impl Into<String>) -> Self {
        OvsdbError::Protocol { context: context.into(), detail: detail.into() }
    }

    /// The OVSDB error string of a failed operation (`"constraint violation"`, `"timed out"`, ...).
    pub fn op_error(&self) -> Option<&str> {
        match self {
            OvsdbError::OpFailed { error, .. } => Some(error),
            _ => None,
        }
    }

    /// True when the error means the connection is gone (a reconnect may help).
    pub fn is_disconnect(&self) -> bool {
        matches!(
            self,
            OvsdbError::Disconnected { .. }
                | OvsdbError::Io { .. }
                | OvsdbError::Connect { .. }
                | OvsdbError::Framing { .. }
        )
    }
}
