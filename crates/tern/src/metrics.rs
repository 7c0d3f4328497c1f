//! `--metrics-listen ADDR` of `server`, `controller` and `allinone`: every metric of the process
//! in Prometheus' text format at `GET /metrics` (see `tern_controller::metrics` and tern-api's
//! request metrics). Metrics hold no secrets and no tenant data, so any address may be given.

use std::net::SocketAddr;

use anyhow::Context;
use axum::http::header;
use axum::routing::get;

/// Binds `addr` now (a taken or bad address is an error at start-up) and serves `/metrics` there
/// in the background for as long as the process runs.
pub async fn spawn(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--metrics-listen: cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        get(|| async {
            (
                [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                tern_controller::metrics::render(),
            )
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    });
    tracing::info!("metrics at http://{bound}/metrics");
    Ok(bound)
}
