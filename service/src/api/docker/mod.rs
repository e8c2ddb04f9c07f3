//! The Docker Engine API front end (issue #8): the unchanged docker CLI,
//! docker-py and docker-compose run a project's containers through Nest.
//! It is a second caller of the same application layer as the Zun API:
//! same policy, same scheduler, same containers (a `docker run` container
//! is listed by `GET /v1/containers`, and the other way round). What the
//! CLI needs from a server, and its sharp edges, are measured in
//! `/work/shared/reference/docker-api.md`; comments cite it as §N.
//!
//! # Layout
//! - this file: [`DockerState`], the router and the request path
//!   (version prefix, authentication, the headers every answer carries);
//! - `listener`: the TLS listener, serving HTTP/1.1 with upgrades and
//!   passing each connection's client certificate, as judged against
//!   Nest's CA (`ca::ClientCertificateJudge`), to the requests;
//! - `error`: [`error::DockerError`] and its one renderer;
//! - `system`: `_ping`, `version`, `info`, `events`, `system/df` and the
//!   answers for what Nest does not offer;
//! - `create`: the create body and its translation into Nest's spec;
//! - `containers`: list, inspect, lifecycle, remove, wait, logs, top,
//!   stats, rename, update;
//! - `views`: the container JSON the CLI reads (`ps`, `inspect`);
//! - `streams`: attach and exec as hijacked connections;
//! - `images`: images and pulls (the project's stored images), `load`;
//! - `networks`: user-defined networks (`docker network`, compose's
//!   project network).
//!
//! Request path, outermost first: Docker headers → version prefix →
//! authentication (client certificate, else `X-Auth-Token`) → routing →
//! handler.

mod containers;
mod create;
pub mod error;
mod images;
pub mod listener;
mod networks;
mod streams;
mod system;
mod views;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Uri};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, head, post};

use self::error::DockerError;
use crate::api::ApiState;
use crate::app::{App, CallContext, DockerCertificates};
use crate::auth::{AuthError, Caller};
use crate::ca::ClientCertificate;
use crate::domain::{ProjectId, RequestId};

/// The API version Nest advertises: ≥ 1.40 for CLI 29, ≥ 1.30 for the
/// modern wait (§2); 1.45 is what dockerd 26 speaks.
pub const API_VERSION: ApiVersion = ApiVersion {
    major: 1,
    minor: 45,
};
/// The oldest API version accepted in a path (§2 recommends 1.24).
pub const MIN_API_VERSION: ApiVersion = ApiVersion {
    major: 1,
    minor: 24,
};
/// The engine version Nest reports (`docker version`'s Server line).
pub const ENGINE_VERSION: &str = concat!("nest-", env!("CARGO_PKG_VERSION"));
/// The header the docker config's `HttpHeaders` carries the token in.
pub const AUTH_TOKEN_HEADER: &str = "x-auth-token";

/// A Docker API version, `1.45`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    major: u16,
    minor: u16,
}

impl ApiVersion {
    /// Reads `1.45`.
    pub fn parse(s: &str) -> Option<Self> {
        let (major, minor) = s.split_once('.')?;
        Some(Self {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// What the Docker handlers share. Cheap to clone.
#[derive(Clone)]
pub struct DockerState {
    inner: Arc<Inner>,
}

struct Inner {
    api: ApiState,
    certificates: DockerCertificates,
    /// Registry references each project pulled: the instances pull them
    /// when a container needs them, so `docker run` after `docker pull`
    /// finds them (kept in memory: a restart forgets them, a second pull
    /// brings them back).
    pulled: Mutex<BTreeMap<ProjectId, BTreeSet<String>>>,
    execs: streams::ExecTable,
    /// The hijacked streams' pumps and detached execs.
    tasks: tokio_util::task::TaskTracker,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing awaits or panics under these locks.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl DockerState {
    /// The Docker front end over the same state as the Zun API; streams
    /// run on `tasks`.
    pub fn new(
        api: ApiState,
        certificates: DockerCertificates,
        tasks: tokio_util::task::TaskTracker,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                api,
                certificates,
                pulled: Mutex::new(BTreeMap::new()),
                execs: streams::ExecTable::default(),
                tasks,
            }),
        }
    }

    fn app(&self) -> &App {
        self.inner.api.app()
    }

    fn remember_pull(&self, project: &ProjectId, reference: String) {
        lock(&self.inner.pulled)
            .entry(project.clone())
            .or_default()
            .insert(reference);
    }

    fn was_pulled(&self, project: &ProjectId, reference: &str) -> bool {
        lock(&self.inner.pulled)
            .get(project)
            .is_some_and(|refs| refs.contains(reference))
    }
}

/// Caller and request id of an authenticated Docker request.
#[derive(Clone, Debug)]
pub struct DockerContext {
    /// As the application layer takes them.
    pub call: CallContext,
}

impl<S: Send + Sync> FromRequestParts<S> for DockerContext {
    type Rejection = DockerError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, DockerError> {
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(DockerError::Auth(AuthError::Missing))?;
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(RequestId::generate);
        Ok(Self {
            call: CallContext { caller, request_id },
        })
    }
}

/// The Docker API as one router, for [`listener::serve`].
pub fn router(state: DockerState) -> Router {
    let routes = Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/events", get(system::events))
        .route("/system/df", get(system::disk_usage))
        .route("/containers/json", get(containers::list))
        .route("/containers/create", post(containers::create))
        .route("/containers/prune", post(containers::prune))
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}", delete(containers::remove))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/restart", post(containers::restart))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/pause", post(containers::pause))
        .route("/containers/{id}/unpause", post(containers::unpause))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}/logs", get(containers::logs))
        .route("/containers/{id}/top", get(containers::top))
        .route("/containers/{id}/stats", get(containers::stats))
        .route("/containers/{id}/rename", post(containers::rename))
        .route("/containers/{id}/update", post(containers::update))
        .route("/containers/{id}/resize", post(streams::resize))
        .route("/containers/{id}/attach", post(streams::attach))
        .route("/containers/{id}/exec", post(streams::create_exec))
        .route("/exec/{id}/start", post(streams::start_exec))
        .route("/exec/{id}/resize", post(streams::resize_exec))
        .route("/exec/{id}/json", get(streams::inspect_exec))
        .route("/images/json", get(images::list))
        .route("/images/create", post(images::pull))
        .route("/images/load", post(images::load))
        .route(
            "/images/{*name}",
            get(images::inspect).delete(images::remove),
        )
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/prune", post(networks::prune))
        .route(
            "/networks/{id}",
            get(networks::inspect).delete(networks::remove),
        )
        .route("/networks/{id}/connect", post(networks::connect))
        .route("/networks/{id}/disconnect", post(networks::disconnect))
        .route("/volumes", get(system::volumes))
        .route("/volumes/create", post(system::unsupported_volumes))
        .route("/volumes/prune", post(system::unsupported_volumes))
        .route(
            "/volumes/{name}",
            get(system::volume).delete(system::unsupported_volumes),
        )
        .route("/build", any(system::unsupported_build))
        .route("/commit", any(system::unsupported_commit))
        .route("/swarm", any(system::unsupported_swarm))
        .route("/swarm/{*rest}", any(system::unsupported_swarm))
        .route("/services", any(system::unsupported_swarm))
        .route("/nodes", any(system::unsupported_swarm))
        .route("/plugins", any(system::unsupported_plugins))
        .route("/plugins/{*rest}", any(system::unsupported_plugins))
        .route("/containers/{id}/archive", any(system::unsupported_archive))
        .route("/containers/{id}/export", any(system::unsupported_export))
        .route("/containers/{id}/changes", any(system::unsupported_changes))
        .route(
            "/session",
            head(system::unsupported_build).post(system::unsupported_build),
        )
        .fallback(route_not_found)
        // A known path with another method: dockerd's JSON, not a bare 405.
        .method_not_allowed_fallback(route_not_found)
        .with_state(state.clone());
    Router::new()
        .fallback_service(routes)
        .layer(from_fn_with_state(state, authenticate))
        .layer(from_fn(strip_version))
        .layer(from_fn(docker_headers))
}

async fn route_not_found() -> DockerError {
    DockerError::RouteNotFound
}

/// The headers dockerd puts on every answer (§2): the CLI negotiates from
/// `Api-Version`, also on a 401. Also settles the request id and the span.
async fn docker_headers(mut request: Request, next: Next) -> Response {
    let request_id = RequestId::generate();
    request.extensions_mut().insert(request_id.clone());
    let span = tracing::debug_span!(
        "docker",
        request_id = %request_id,
        method = %request.method(),
        path = %request.uri().path(),
        project_id = tracing::field::Empty,
    );
    let mut response = tracing::Instrument::instrument(next.run(request), span).await;
    let headers = response.headers_mut();
    let api_version = API_VERSION.to_string();
    for (name, value) in [
        ("api-version", api_version.as_str()),
        ("docker-experimental", "false"),
        ("ostype", "linux"),
        (
            "server",
            concat!("Docker/nest-", env!("CARGO_PKG_VERSION"), " (linux)"),
        ),
        ("x-openstack-request-id", request_id.as_str()),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    response
}

/// Accepts `/v1.NN/...` (any version from [`MIN_API_VERSION`] to
/// [`API_VERSION`], §2) and the unversioned path; routes see the path
/// without the prefix.
async fn strip_version(mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let Some(rest) = path.strip_prefix("/v") else {
        return next.run(request).await;
    };
    let (version, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let Some(version) = ApiVersion::parse(version) else {
        return next.run(request).await;
    };
    if version > API_VERSION {
        return DockerError::Version(format!(
            "client version {version} is too new. Maximum supported API version is {API_VERSION}"
        ))
        .into_response();
    }
    if version < MIN_API_VERSION {
        return DockerError::Version(format!(
            "client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        ))
        .into_response();
    }
    let new = match request.uri().query() {
        Some(q) => format!("/{tail}?{q}"),
        None => format!("/{tail}"),
    };
    if let Ok(uri) = new.parse::<Uri>() {
        *request.uri_mut() = uri;
    }
    next.run(request).await
}

/// Every request acts for one user in one project: the client
/// certificate's, as the listener's judge found it (a refused one is
/// refused here, naming why, whatever else the request carries; a verified
/// one is looked up by serial: not issued here, revoked and expired ones
/// are refused), else the `X-Auth-Token`'s, validated like the Zun API's.
async fn authenticate(
    State(state): State<DockerState>,
    mut request: Request,
    next: Next,
) -> Response {
    // The listener puts it on every request; without it, no certificate.
    let certificate = request
        .extensions()
        .get::<ClientCertificate>()
        .cloned()
        .unwrap_or(ClientCertificate::Absent);
    let caller = match certificate {
        ClientCertificate::Verified(serial) => state
            .inner
            .certificates
            .authenticate(&serial)
            .await
            .map_err(DockerError::Certificate),
        ClientCertificate::Refused(refusal) => Err(DockerError::Certificate(refusal.into())),
        ClientCertificate::Absent => {
            let token = request
                .headers()
                .get(AUTH_TOKEN_HEADER)
                .and_then(|v| v.to_str().ok())
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            let caller = match token {
                Some(token) => state.inner.api.authenticator().authenticate(&token).await,
                None => Err(AuthError::Missing),
            };
            caller.map_err(DockerError::Auth)
        }
    };
    match caller {
        Ok(caller) => {
            tracing::Span::current().record("project_id", caller.project_id.as_str());
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => {
            tracing::debug!(error = %e, "Docker API request refused");
            e.into_response()
        }
    }
}
