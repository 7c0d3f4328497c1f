//! The API's metrics, in the process' Prometheus registry: the latency of every request by method,
//! route (the matched path template, `/v2.0/ports/{id}`; `unmatched` for none) and status.

use std::sync::LazyLock;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{register_histogram_vec, HistogramVec};

static REQUESTS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "tern_api_request_seconds",
        "Neutron API requests: time from receipt to response, by method, route and status.",
        &["method", "route", "status"],
        vec![0.0005, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]
    )
    .expect("metric registered once")
});

/// Middleware: times each request.
pub async fn record(req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let start = std::time::Instant::now();
    let response = next.run(req).await;
    REQUESTS
        .with_label_values(&[&method, &route, response.status().as_str()])
        .observe(start.elapsed().as_secs_f64());
    response
}
