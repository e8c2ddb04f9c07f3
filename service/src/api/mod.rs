//! Nest's REST API, compatible with OpenStack Zun's v1 container API
//! (`/work/shared/reference/zun-api.md`) so that python-zunclient and
//! `openstack appcontainer` work unchanged, plus documented extensions.
//!
//! This module parses requests, calls the [`ContainerBackend`] and renders
//! the answer; it decides nothing about containers itself.
//!
//! # Layout
//! - [`backend`]: the trait the service implements, and its plain types;
//! - [`error`]: [`ApiError`], its statuses and Zun/Keystone renderers, and
//!   the outermost middleware (request id, error rendering);
//! - [`microversion`]: `OpenStack-API-Version` negotiation and headers;
//! - `middleware`: path normalisation and Keystone token validation;
//! - `extract`: Nest's body, query and path extractors;
//! - `create`: the create and update bodies and their validation;
//! - [`views`]: Zun's container, action and host views;
//! - `containers`, `lifecycle`, `exec`, `inspect`, `container_actions`,
//!   `hosts`: the route handlers, one file per group;
//! - `ws`: the console websockets behind `attach` and interactive exec;
//! - `versions`, `metrics`: `/`, `/v1`, `/healthz`, `/metrics`.
//!
//! Request path, outermost first: request id and error rendering → path
//! normalisation → authentication (401 without microversion headers, as
//! keystonemiddleware answers before Zun) → microversion → routing →
//! metrics → handler.

mod agent;
pub mod backend;
mod container_actions;
mod containers;
pub mod create;
pub mod error;
mod exec;
mod extract;
mod hosts;
mod images;
mod inspect;
mod lifecycle;
mod metrics;
pub mod microversion;
mod middleware;
mod versions;
pub mod views;
mod ws;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::ServiceBuilder;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use backend::ContainerBackend;
pub use error::ApiError;
pub use metrics::ApiMetrics;

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

/// What the handlers share: the backend, the authenticator, settings and
/// metrics. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<StateInner>,
}

struct StateInner {
    backend: Arc<dyn ContainerBackend>,
    authenticator: Arc<dyn Authenticate>,
    config: ApiConfig,
    metrics: ApiMetrics,
}

impl ApiState {
    /// Assembles the state.
    pub fn new(
        backend: Arc<dyn ContainerBackend>,
        authenticator: Arc<dyn Authenticate>,
        config: ApiConfig,
        metrics: ApiMetrics,
    ) -> Self {
        Self {
            inner: Arc::new(StateInner {
                backend,
                authenticator,
                config,
                metrics,
            }),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &dyn ContainerBackend {
        self.inner.backend.as_ref()
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

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Nest container API",
        description = "OpenStack Zun v1 compatible container API (microversions 1.1-1.40, \
            header `OpenStack-API-Version: container 1.N`). Authenticate with a Keystone token \
            in `X-Auth-Token`; errors are `{\"errors\":[{request_id, code, status, title, detail}]}`. \
            Nest extensions: create body `ports` (`[network:]host:container[/proto]`), container \
            view `published_ports`/`port_bindings`, `logs?follow=true`, console websockets."
    ),
    tags(
        (name = "containers"), (name = "actions"), (name = "exec"), (name = "inspect"),
        (name = "hosts"), (name = "images"), (name = "versions"), (name = "operations"),
    )
)]
struct ApiDoc;

/// The routes and their OpenAPI description, generated from the handlers.
fn routes() -> (Router<ApiState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(versions::root))
        .routes(routes!(versions::v1))
        .routes(routes!(metrics::healthz))
        .routes(routes!(metrics::metrics))
        .routes(routes!(containers::create, containers::list))
        .routes(routes!(
            containers::show,
            containers::update,
            containers::delete
        ))
        .routes(routes!(lifecycle::start))
        .routes(routes!(lifecycle::stop))
        .routes(routes!(lifecycle::reboot))
        .routes(routes!(lifecycle::pause))
        .routes(routes!(lifecycle::unpause))
        .routes(routes!(lifecycle::kill))
        .routes(routes!(exec::execute))
        .routes(routes!(exec::execute_resize))
        .routes(routes!(exec::attach))
        .routes(routes!(exec::resize))
        .routes(routes!(inspect::logs))
        .routes(routes!(inspect::top))
        .routes(routes!(inspect::stats))
        .routes(routes!(container_actions::list))
        .routes(routes!(container_actions::show))
        .routes(routes!(hosts::list))
        .routes(routes!(hosts::show))
        .routes(routes!(agent::binary))
        .routes(routes!(agent::sha256))
        .routes(routes!(images::upload, images::list))
        .routes(routes!(images::delete))
        .routes(routes!(ws::attach))
        .routes(routes!(ws::exec))
        .split_for_parts()
}

/// The OpenAPI document of this API, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().1
}

async fn route_not_found() -> ApiError {
    ApiError::RouteNotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// The whole HTTP API as one router, ready for `axum::serve`.
pub fn router(state: ApiState) -> Router {
    let (routes, openapi) = routes();
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
        .layer(from_fn_with_state(state.clone(), error::finish_response))
        .map_request(middleware::normalize_path)
        .layer(from_fn_with_state(state, middleware::authenticate))
        .layer(from_fn(microversion::negotiate))
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
