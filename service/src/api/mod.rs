//! Nest's front ends over HTTP. Each front end parses requests in its
//! protocol, calls the application layer and renders the answer in its
//! protocol; none decides anything about containers itself.
//!
//! # Layout
//! - [`zun`]: the REST API compatible with OpenStack Zun's v1 container API
//!   (`/work/shared/reference/zun-api.md`), so that python-zunclient and
//!   `openstack appcontainer` work unchanged, plus documented extensions;
//! - [`docker`]: the Docker Engine API front end (issue #8), a second
//!   caller of the same application layer, on its own TLS listener;
//! - `metrics`: `/healthz`, `/metrics` and the request metrics layer;
//! - this file: [`ApiState`], what the handlers share, and [`router`].
//!
//! Request path, outermost first: request id and error rendering → path
//! normalisation → authentication (401 without microversion headers, as
//! keystonemiddleware answers before Zun) → microversion → routing →
//! metrics → handler.

pub mod docker;
pub(crate) mod metrics;
pub mod zun;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::ServiceBuilder;

pub use metrics::ApiMetrics;
pub use zun::error::ApiError;

use crate::app::App;
use crate::auth::Authenticate;

/// Settings of the HTTP layer.
#[derive(Clone, Debug, Default)]
pub struct ApiConfig {
    /// `scheme://host[:port]` clients reach the service at, used in links,
    /// `Location` and console URLs. Default: `http://` plus the request's
    /// `Host` header, as Zun does.
    pub public_url: Option<String>,
    /// Keystone's public URL, named in the `WWW-Authenticate` header of a
    /// 401. Default: empty.
    pub keystone_uri: Option<String>,
    /// The `nest-agent` binary served to new instances at
    /// `/v1/nest/agent`, with its SHA-256 (hex). Default: not served.
    pub agent_binary: Option<(std::path::PathBuf, String)>,
}

/// What the handlers share: the application, the authenticator, settings and
/// metrics. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<StateInner>,
}

struct StateInner {
    app: App,
    authenticator: Arc<dyn Authenticate>,
    config: ApiConfig,
    metrics: ApiMetrics,
    docker: Option<crate::app::DockerCertificates>,
}

impl ApiState {
    /// Assembles the state.
    pub fn new(
        app: App,
        authenticator: Arc<dyn Authenticate>,
        config: ApiConfig,
        metrics: ApiMetrics,
    ) -> Self {
        Self {
            inner: Arc::new(StateInner {
                app,
                authenticator,
                config,
                metrics,
                docker: None,
            }),
        }
    }

    /// Enables the Docker endpoint's certificates (issued through the Zun
    /// API, checked by the Docker front end). Call before the state is
    /// cloned.
    #[must_use]
    pub fn with_docker_certificates(
        mut self,
        certificates: crate::app::DockerCertificates,
    ) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.docker = Some(certificates),
            None => tracing::error!(
                "the Docker certificates were set after the API state was shared; the endpoint stays off"
            ),
        }
        self
    }

    /// The Docker endpoint's certificates, when it is enabled.
    pub fn docker_certificates(&self) -> Option<&crate::app::DockerCertificates> {
        self.inner.docker.as_ref()
    }

    /// The application layer every handler calls.
    pub fn app(&self) -> &App {
        &self.inner.app
    }

    /// The authenticator.
    pub fn authenticator(&self) -> &dyn Authenticate {
        self.inner.authenticator.as_ref()
    }

    /// The settings.
    pub fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &ApiMetrics {
        &self.inner.metrics
    }
}

/// A path no route has: Zun's routes that Nest leaves out say so and what
/// to do instead; anything else is a plain 404.
async fn route_not_found(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    match zun::unsupported::refusal(&method, uri.path()) {
        Some((what, instead)) => ApiError::NotSupported { what, instead },
        None => ApiError::RouteNotFound,
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// The whole HTTP API as one router, ready for `axum::serve`.
pub fn router(state: ApiState) -> Router {
    let (routes, openapi) = zun::routes();
    let openapi_json: Arc<str> = openapi
        .to_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        .into();
    let inner = routes
        .route(
            "/openapi.json",
            get(move || {
                let body = Arc::clone(&openapi_json);
                async move { json_text(&body) }
            }),
        )
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), metrics::track))
        .with_state(state.clone());
    let stack = ServiceBuilder::new()
        .layer(from_fn_with_state(
            state.clone(),
            zun::error::finish_response,
        ))
        .map_request(zun::middleware::normalize_path)
        .layer(from_fn_with_state(state, zun::middleware::authenticate))
        .layer(from_fn(zun::microversion::negotiate))
        .service(inner);
    Router::new().fallback_service(stack)
}

fn json_text(body: &str) -> Response {
    let mut response = body.to_owned().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
