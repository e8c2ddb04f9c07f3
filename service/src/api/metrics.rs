//! Request metrics and `GET /metrics` (Prometheus text format).
//!
//! The recorder is owned by the API state rather than installed globally,
//! so that two services can run in one test process; `main` may still
//! install its own global recorder for other modules.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

use super::ApiState;

/// Counter of answered requests, by method, route and status.
pub const REQUESTS_TOTAL: &str = "nest_api_requests_total";
/// Histogram (summary) of request durations, seconds, by method and route.
pub const REQUEST_DURATION: &str = "nest_api_request_duration_seconds";

/// The API's metrics registry.
#[derive(Clone)]
pub struct ApiMetrics {
    recorder: Arc<PrometheusRecorder>,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiMetrics {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            recorder: Arc::new(PrometheusBuilder::new().build_recorder()),
        }
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        self.recorder.handle().render()
    }

    fn record(&self, method: String, route: String, status: u16, seconds: f64) {
        metrics::with_local_recorder(&*self.recorder, || {
            metrics::counter!(REQUESTS_TOTAL,
                "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
            .increment(1);
            metrics::histogram!(REQUEST_DURATION, "method" => method, "route" => route)
                .record(seconds);
        });
    }
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
    state.metrics().record(
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
