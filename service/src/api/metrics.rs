//! Request metrics and `GET /metrics` (Prometheus text format), over the
//! service's registry ([`crate::metrics::Metrics`]).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;

/// Counter of answered requests, by method, route and status.
pub const REQUESTS_TOTAL: &str = "nest_api_requests_total";
/// Histogram (summary) of request durations, seconds, by method and route.
pub const REQUEST_DURATION: &str = "nest_api_request_duration_seconds";

/// The API's metrics registry: the service's, which also counts what the
/// reconciler sees.
pub type ApiMetrics = crate::metrics::Metrics;

fn record(registry: &ApiMetrics, method: String, route: String, status: u16, seconds: f64) {
    registry.with(|| {
        metrics::counter!(REQUESTS_TOTAL,
            "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
        .increment(1);
        metrics::histogram!(REQUEST_DURATION, "method" => method, "route" => route).record(seconds);
    });
}

/// Counts each routed request under its route template (`unmatched` for
/// the fallback), so that ids never become label values.
pub async fn track(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    record(
        state.metrics(),
        method,
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Prometheus scrape endpoint (no auth).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<ApiState>) -> Response {
    let mut response = state.metrics().render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Liveness: the HTTP layer answers (no auth).
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive")))]
pub async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok"}))
}
