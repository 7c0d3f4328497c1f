//! tern-api owns `tern server`: a Neutron v2.0-compatible REST API (axum) over the NB store, so
//! Nova, openstacksdk, the `openstack` CLI and Terraform can drive tern. Each resource family is
//! one module; Neutron semantics that span several NB objects (router interfaces, gateways,
//! default security groups, floating IP allocation, port bindings) live here, on top of `Nb`.
//!
//! Every operation is one NB transaction ([`tern_store::nb::Tx`]): what it read is guarded and
//! everything it writes (several objects for router interfaces, gateways, floating IPs, port and
//! security group deletes, binding moves) commits at once or not at all; a commit that lost a
//! race runs the whole operation again, a bounded number of times, then answers 409.
//! [`invariants`] checks a whole store against the NB's invariants (`tern db check`).

mod agents;
pub mod auth;
mod bindings;
pub mod config;
mod error;
mod floatingips;
mod input;
pub mod invariants;
mod meta;
mod metrics;
mod migrations;
mod networks;
pub mod nova;
mod policy;
mod port_lists;
mod ports;
mod query;
mod quotas;
mod routers;
mod security_groups;
mod subnets;
pub mod tls;
mod util;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tern_store::nb::Nb;

pub use error::ApiError;

/// How `tern server` runs.
#[derive(Clone)]
pub struct ApiConfig {
    /// Where to listen (Neutron's port is 9696).
    pub listen: SocketAddr,
    pub nb: Nb,
    /// How requests are authenticated; anything but [`Auth::None`] is required to listen on a
    /// non-loopback address.
    pub auth: Auth,
    /// Serve HTTPS with this certificate and key (PEM files) instead of plain HTTP.
    pub tls: Option<TlsFiles>,
    /// The MTU of the network the tunnels cross (Neutron's `global_physnet_mtu`): networks are
    /// refused an MTU above what it leaves them, and get that maximum when they ask for none.
    pub underlay_mtu: u32,
}

/// What the API serves from.
#[derive(Clone)]
pub struct ApiState {
    pub nb: Nb,
    pub auth: Auth,
    /// See [`ApiConfig::underlay_mtu`] ([`DEFAULT_UNDERLAY_MTU`] unless configured).
    pub underlay_mtu: u32,
}

impl ApiConfig {
    /// Plain HTTP on `listen`, no authentication, the default underlay MTU.
    pub fn new(listen: SocketAddr, nb: Nb) -> ApiConfig {
        ApiConfig { listen, nb, auth: Auth::None, tls: None, underlay_mtu: DEFAULT_UNDERLAY_MTU }
    }
}

impl ApiState {
    /// No authentication, the default underlay MTU.
    pub fn new(nb: Nb) -> ApiState {
        ApiState { nb, auth: Auth::None, underlay_mtu: DEFAULT_UNDERLAY_MTU }
    }
}

/// A certificate chain and its private key, PEM files.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

pub use auth::{Auth, Caller};
pub use tern_model::limits::DEFAULT_UNDERLAY_MTU;
/// The smallest underlay MTU `tern server` accepts (IPv4's smallest datagram every host takes).
pub const MIN_UNDERLAY_MTU: u32 = 576;

/// The whole API as an axum router (tests serve it in-process).
pub fn router(state: ApiState) -> axum::Router {
    let ctx = Arc::new(util::Ctx { nb: state.nb, underlay_mtu: state.underlay_mtu });
    let auth = Arc::new(state.auth);
    axum::Router::new()
        .merge(meta::routes())
        .merge(networks::routes())
        .merge(subnets::routes())
        .merge(ports::routes())
        .merge(bindings::routes())
        .merge(routers::routes())
        .merge(floatingips::routes())
        .merge(security_groups::routes())
        .merge(agents::routes())
        .merge(migrations::routes())
        .merge(quotas::routes())
        .fallback(|| async { ApiError::no_such_resource() })
        .with_state(ctx)
        .layer(axum::extract::DefaultBodyLimit::max(tern_model::limits::MAX_REQUEST_BODY))
        .layer(axum::middleware::from_fn(neutron_shaped))
        .layer(axum::middleware::from_fn_with_state(auth, auth::authenticate))
        .layer(axum::middleware::from_fn(metrics::record))
}

/// Refuses to expose an unauthenticated API beyond this host.
fn check_exposure(listen: SocketAddr, auth: &Auth) -> anyhow::Result<()> {
    if matches!(auth, Auth::Token(t) if t.is_empty()) {
        anyhow::bail!("the API token must not be empty");
    }
    if !listen.ip().is_loopback() && !auth.authenticates() {
        anyhow::bail!(
            "refusing to listen on {listen} without authentication: a non-loopback address needs \
             --auth keystone (or --token), or listen on 127.0.0.1"
        );
    }
    Ok(())
}

/// Serves until `shutdown` completes, then finishes the requests in flight and returns.
pub async fn serve_with_shutdown(
    config: ApiConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    check_exposure(config.listen, &config.auth)?;
    let tls = config.tls.as_ref().map(tls::server_config).transpose()?;
    if config.underlay_mtu < MIN_UNDERLAY_MTU {
        anyhow::bail!("the underlay MTU {} is below {MIN_UNDERLAY_MTU}", config.underlay_mtu);
    }
    prepare_store(&config.nb).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!("listening on {}://{addr}", if tls.is_some() { "https" } else { "http" });
    let app = router(ApiState { nb: config.nb, auth: config.auth, underlay_mtu: config.underlay_mtu });
    match tls {
        Some(tls) => tls::serve(listener, tls, app, shutdown).await,
        None => axum::serve(listener, app).with_graceful_shutdown(shutdown).await,
    }
    .context("API server failed")?;
    Ok(())
}

/// Readies a store for the API: builds the port index if the store predates it (see
/// `tern_store::nb::PortField`; until then listings scan every port). Whoever serves
/// [`router`] runs it first; [`serve_with_shutdown`] does.
pub async fn prepare_store(nb: &Nb) -> anyhow::Result<()> {
    let build = nb.ensure_port_index().await.context("cannot build the port index")?;
    if build.built {
        tracing::info!(
            ports = build.ports,
            written = build.written,
            deleted = build.deleted,
            "built the port index"
        );
    }
    Ok(())
}

/// Gives axum's own empty 405 responses Neutron's error body.
async fn neutron_shaped(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let resp = next.run(req).await;
    if resp.status() != StatusCode::METHOD_NOT_ALLOWED {
        return resp;
    }
    let allow = resp.headers().get(axum::http::header::ALLOW).cloned();
    let mut out = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "HTTPMethodNotAllowed",
        format!("The method {method} is not allowed for this resource."),
    )
    .into_response();
    if let Some(allow) = allow {
        out.headers_mut().insert(axum::http::header::ALLOW, allow);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure() {
        let lo: SocketAddr = "127.0.0.1:9696".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:9696".parse().unwrap();
        let token = |t: &str| Auth::Token(t.to_string());
        check_exposure(lo, &Auth::None).unwrap();
        check_exposure("[::1]:9696".parse().unwrap(), &Auth::None).unwrap();
        check_exposure(any, &token("t")).unwrap();
        let e = check_exposure(any, &Auth::None).unwrap_err().to_string();
        assert!(e.contains("--auth keystone"), "{e}");
        assert!(check_exposure(lo, &token("")).is_err());
    }
}
