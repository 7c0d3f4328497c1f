//! Neutron's error shape, `{"NeutronError": {"type", "message", "detail"}}`, and the mapping from
//! NB errors to Neutron's status codes and type names (400 bad input, 401, 404, 409 conflicts,
//! 412 stale `If-Match`). Bad input never becomes a 500.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tern_model::{Kind, ModelError, ValidationError};
use tern_store::nb::NbError;

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// An error response. `retry` marks a lost race with a concurrent writer (the whole
/// read-modify-write may be repeated, see [`crate::util::retry`]).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: String,
    pub message: String,
    pub(crate) retry: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError { status, kind: kind.into(), message: message.into(), retry: false }
    }

    /// 400 for a request Neutron's API layer refuses (body shape, attributes, types).
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "HTTPBadRequest", message)
    }

    /// 400 for a value the plugin refuses.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            format!("Invalid input for operation: {}", message.into()),
        )
    }

    pub fn conflict(kind: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, kind, message)
    }

    pub fn not_found(kind: Kind, id: &str) -> Self {
        let (ty, message) = match kind {
            Kind::Network => ("NetworkNotFound", format!("Network {id} could not be found.")),
            Kind::Subnet => ("SubnetNotFound", format!("Subnet {id} could not be found.")),
            Kind::Port => ("PortNotFound", format!("Port {id} could not be found.")),
            Kind::Router => ("RouterNotFound", format!("Router {id} could not be found.")),
            Kind::FloatingIp => ("FloatingIPNotFound", format!("Floating IP {id} could not be found")),
            Kind::SecurityGroup => ("SecurityGroupNotFound", format!("Security group {id} does not exist")),
            Kind::Chassis => ("AgentNotFound", format!("Agent {id} could not be found.")),
            Kind::PortBinding => {
                let (port, host) = id.split_once('@').unwrap_or((id, ""));
                (
                    "PortBindingNotFound",
                    format!("Binding for port {port} for host {host} could not be found."),
                )
            }
            Kind::Migration => ("NotFound", format!("Migration {id} could not be found.")),
        };
        ApiError::new(StatusCode::NOT_FOUND, ty, message)
    }

    /// The generic 404 of an unknown URL.
    pub fn no_such_resource() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "HTTPNotFound", "The resource could not be found.")
    }

    /// 413: the request body is larger than the API reads.
    pub fn too_large() -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "HTTPRequestEntityTooLarge",
            format!(
                "Request is too large: the body exceeds {} bytes (max_request_body_size).",
                tern_model::limits::MAX_REQUEST_BODY
            ),
        )
    }

    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "HTTPUnauthorized",
            "Authentication required: a valid X-Auth-Token header is missing.",
        )
    }

    /// 503: the identity service cannot tell whether the token is valid (keystonemiddleware
    /// answers the same; the request is not let through).
    pub fn auth_unavailable() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The identity service is unavailable: the token cannot be validated now; retry later.",
        )
    }

    /// 403: the policy does not allow the caller this action.
    pub fn forbidden(action: &str) -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "PolicyNotAuthorized",
            format!("({action}) is disallowed by policy"),
        )
    }

    /// 412: `If-Match: revision_number=N` did not match the stored revision.
    pub fn revision_mismatch(expected: u64, actual: u64) -> Self {
        ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "RevisionNumberConstraintFailed",
            format!("Constrained to {expected}, but current revision is {actual}"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "HTTPInternalServerError", message)
    }

    pub(crate) fn retryable(mut self) -> Self {
        self.retry = true;
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.kind, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), kind = %self.kind, "{}", self.message);
        }
        let body = json!({"NeutronError": {"type": self.kind, "message": self.message, "detail": ""}});
        (self.status, Json(body)).into_response()
    }
}

/// Neutron's wording of a validation failure; names the attribute and the value.
pub(crate) fn validation(e: &ValidationError) -> ApiError {
    let field = neutron_field(&e.field);
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "InvalidInput",
        format!("Invalid input for {field}. Reason: '{}' {}.", e.value, e.reason.trim_end_matches('.')),
    )
}

/// The Neutron attribute name of a model field path.
pub(crate) fn neutron_field(field: &str) -> String {
    if let Some(rest) = field.strip_prefix("segmentation_id") {
        return format!("provider:segmentation_id{rest}");
    }
    if field == "physical_network" {
        return "provider:physical_network".to_string();
    }
    field.to_string()
}

impl From<ModelError> for ApiError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::Invalid(v) => validation(&v),
            ModelError::Json { kind, message } => {
                ApiError::bad_request(format!("Invalid input for {kind}: {message}"))
            }
            ModelError::UnknownKind(k) => ApiError::bad_request(format!("unknown resource {k}")),
        }
    }
}

impl From<NbError> for ApiError {
    fn from(e: NbError) -> Self {
        match e {
            NbError::Model(m) => m.into(),
            NbError::NotFound { kind, id } => ApiError::not_found(kind, &id),
            NbError::MissingReference { target, target_id, .. } => ApiError::not_found(target, &target_id),
            NbError::Conflict { kind, id, .. } => ApiError::conflict(
                "Conflict",
                format!("{kind} {id} was changed by another request at the same time; try again"),
            )
            .retryable(),
            NbError::Duplicate { kind, id, field, value, other } => {
                duplicate(kind, &id, &field, &value, &other)
            }
            NbError::Immutable { field, stored, given, .. } => {
                ApiError::invalid_input(format!("{field} cannot change (stored {stored}, given {given})"))
            }
            NbError::Exhausted { what } if what.starts_with("IP address") => ApiError::conflict(
                "IpAddressGenerationFailure",
                format!("No more IP addresses available: no free {what}."),
            ),
            NbError::Exhausted { what } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                format!("no free {what} left"),
            ),
            NbError::InUse { kind, id, .. } => in_use(kind, &id),
            e @ NbError::OverQuota { .. } => ApiError::conflict("OverQuota", e.to_string()),
            e @ NbError::QuotaBelowUsage { .. } => ApiError::bad_request(e.to_string()),
            e @ (NbError::Corrupt { .. } | NbError::Store(_)) => {
                if e.is_bad_input() {
                    ApiError::bad_request(e.to_string())
                } else {
                    ApiError::internal(e.to_string())
                }
            }
        }
    }
}

/// 409 for an object (or the objects using it) that blocks a delete.
pub(crate) fn in_use(kind: Kind, id: &str) -> ApiError {
    match kind {
        Kind::Network => ApiError::conflict(
            "NetworkInUse",
            format!(
                "Unable to complete operation on network {id}. There are one or more ports still in use on the network."
            ),
        ),
        Kind::Subnet => ApiError::conflict(
            "SubnetInUse",
            format!("Unable to complete operation on subnet {id}: One or more ports have an IP allocation from this subnet."),
        ),
        Kind::SecurityGroup => ApiError::conflict(
            "SecurityGroupInUse",
            format!("Security Group {id} in use."),
        ),
        Kind::Router => ApiError::conflict("RouterInUse", format!("Router {id} still has ports")),
        other => ApiError::conflict("Conflict", format!("{other} {id} is in use")),
    }
}

/// 409 for a value another object already holds (the NB enforces uniqueness atomically and re-picks
/// the values it chooses itself when a race takes them, so a duplicate is always the client's).
pub(crate) fn duplicate(kind: Kind, id: &str, field: &str, value: &str, other: &str) -> ApiError {
    match field {
        f if f.starts_with("fixed_ips") => ApiError::conflict(
            "IpAddressInUse",
            format!("Unable to complete operation: the IP address {value} is in use on the network (by port {other})."),
        ),
        "mac_address" => ApiError::conflict(
            "MacAddressInUse",
            format!("Unable to complete operation: the mac address {value} is in use on the network (by port {other})."),
        ),
        // A 400 as in Neutron: clients (Tempest's helpers) try another CIDR on exactly this.
        "cidr" => ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            format!(
                "Invalid input for operation: Requested subnet with cidr: {value} overlaps with another subnet ({other})."
            ),
        ),
        "segmentation_id" => ApiError::conflict(
            "TunnelIdInUse",
            format!("Unable to create the network. The tunnel ID {value} is in use (by network {other})."),
        ),
        _ => ApiError::conflict("Conflict", format!("{kind} {id}: {field} {value} is already used by {other}")),
    }
}
