//! Error types: one for a rule an object breaks, one for everything that can go wrong turning text
//! into an object.

use crate::kind::Kind;

/// An object (or a field inside it) breaks a validation rule.
///
/// `field` is a path into the object such as `mac_address` or `fixed_ips[1].ip_address`; `value` is
/// the offending value as text (empty when the field is missing or empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} field {field:?} = {value:?}: {reason}")]
pub struct ValidationError {
    pub kind: Kind,
    pub field: String,
    pub value: String,
    pub reason: String,
}

impl ValidationError {
    pub fn new(
        kind: Kind,
        field: impl Into<String>,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Self {
        ValidationError { kind, field: field.into(), value: value.to_string(), reason: reason.into() }
    }
}

/// Everything that can go wrong between text and a valid object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// A kind name that is not one of [`Kind::ALL`]; the message lists the valid ones.
    #[error("unknown kind {0:?}; valid kinds: {list}", list = Kind::names_list())]
    UnknownKind(String),
    /// The JSON could not be read as an object of `kind`: malformed JSON, unknown or missing field,
    /// wrong type. `message` is serde's, which names the field or value and the line/column.
    #[error("invalid {kind} JSON: {message}")]
    Json { kind: Kind, message: String },
    /// The JSON was read but the object breaks a rule.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}
