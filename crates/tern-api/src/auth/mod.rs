//! Who is calling: the authentication layer turns each request's `X-Auth-Token` into a
//! [`Caller`] (project, user, roles, system scope) and serves the request inside that caller's
//! scope ([`Caller::current`]), as oslo.context does for Neutron. How a token becomes a caller
//! is the [`Auth`] mode: no authentication (loopback only, every caller is an administrator), one
//! static token (the lab's), or Keystone ([`keystone`]). What a caller may do is [`crate::policy`].

pub mod keystone;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// How `tern server` authenticates requests.
#[derive(Clone, Default)]
pub enum Auth {
    /// Every caller is an administrator of everything (loopback only: `--auth noauth`).
    #[default]
    None,
    /// Every request must carry `X-Auth-Token: <this>`; its holder is an administrator.
    Token(String),
    /// Keystone validates each token; the caller is who the token says.
    Keystone(Arc<keystone::Validator>),
}

impl Auth {
    /// Whether the API may listen beyond loopback with this mode.
    pub fn authenticates(&self) -> bool {
        !matches!(self, Auth::None)
    }
}

/// The identity a request runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The token's project (empty for a system- or domain-scoped token).
    pub project_id: String,
    pub user_id: String,
    /// Role names, lower case.
    pub roles: Vec<String>,
    /// A system-scoped token (`system: all`).
    pub system: bool,
}

impl Caller {
    /// The caller of `--auth noauth` and of the static token: an administrator.
    pub fn admin() -> Caller {
        Caller {
            project_id: String::new(),
            user_id: String::new(),
            roles: vec!["admin".into(), "member".into(), "reader".into()],
            system: true,
        }
    }

    /// The caller of the request being served. Outside a request (NB maintenance, tests of
    /// internals) nobody is calling on a user's behalf: an administrator.
    pub fn current() -> Caller {
        crate::policy::current().map_or_else(Caller::admin, |c| c.caller)
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Neutron's `context_is_admin`: the admin role (on any scope).
    pub fn is_admin(&self) -> bool {
        self.has_role("admin")
    }
}

/// The layer: finds the caller of each request (`GET /` stays open for version discovery),
/// refuses it (401) when its token is missing or invalid and answers 503 when Keystone cannot
/// tell; then checks the policy's rules that need no object ([`crate::policy::enforce`]) and
/// serves the request as that caller.
pub(crate) async fn authenticate(
    axum::extract::State(auth): axum::extract::State<Arc<Auth>>,
    req: Request,
    next: Next,
) -> Response {
    let public = req.method() == Method::GET && req.uri().path() == "/";
    let token = req.headers().get("x-auth-token").map(|v| v.as_bytes().to_vec());
    let caller = match (&*auth, public) {
        (Auth::None, _) | (_, true) => Caller::admin(),
        (Auth::Token(t), false) => match token {
            Some(got) if got == t.as_bytes() => Caller::admin(),
            _ => return ApiError::unauthorized().into_response(),
        },
        (Auth::Keystone(v), false) => {
            let Some(token) = token.and_then(|t| String::from_utf8(t).ok()) else {
                return ApiError::unauthorized().into_response();
            };
            match v.validate(&token).await {
                Ok(Some(c)) => c,
                Ok(None) => return ApiError::unauthorized().into_response(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot validate a token: Keystone is unavailable");
                    return ApiError::auth_unavailable().into_response();
                }
            }
        }
    };
    let action = crate::policy::action(req.method(), req.uri().path());
    let req = if action.writes && action.resource.is_some() && !caller.is_admin() {
        // The body's attributes: read it whole (the body limit applies), check, hand it on.
        let (parts, body) = req.into_parts();
        let bytes = match axum::body::to_bytes(body, tern_model::limits::MAX_REQUEST_BODY).await {
            Ok(b) => b,
            Err(_) => return ApiError::too_large().into_response(),
        };
        let json: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
        if let Err(e) = crate::policy::enforce(&caller, &action, json.as_ref()) {
            return e.into_response();
        }
        Request::from_parts(parts, axum::body::Body::from(bytes))
    } else {
        if let Err(e) = crate::policy::enforce(&caller, &action, None) {
            return e.into_response();
        }
        req
    };
    crate::policy::scope(crate::policy::Current { caller, action }, next.run(req)).await
}
