//! Every error the Zun API can answer, and the only place they become
//! responses. The kind of an application error ([`AppError::kind`]) picks
//! the status here, once for this protocol; the Docker front end will map
//! the same kinds to its own body in its own module.
//!
//! A handler or extractor returns [`ApiError`]; its `IntoResponse` only
//! sets the status and parks the error in the response's extensions. The
//! outermost middleware ([`finish_response`]) knows the request id and the
//! configuration, and renders the body there: Zun's
//! `{"errors":[{request_id, code, status, title, detail, links}]}`
//! (zun-api.md §4), or Keystone's `{"error":{code, title, message}}` with
//! `WWW-Authenticate` for 401, which keystonemiddleware produces in Zun
//! (§5). 5xx bodies carry a generic sentence and the request id; the cause
//! goes to the log only.

use std::error::Error as _;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use nest_api_types::zun::{ErrorBody, ErrorEntry};
use nest_core::ErrorKind;
use serde_json::json;

use super::microversion::{ApiVersion, VersionError};
use crate::api::ApiState;
use crate::app::AppError;
use crate::auth::AuthError;
use crate::domain::RequestId;

/// Why a request failed, as the API answers it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON.
    #[error("the request body is not valid JSON")]
    MalformedJson(#[source] serde_json::Error),
    /// The body does not match the schema.
    #[error("invalid input for field '{field}': {reason}")]
    Schema {
        /// The field (a dotted path), or `<body>` for the whole body.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The body has fields the schema does not know.
    #[error("additional properties are not allowed ({})", quoted(.0))]
    UnexpectedFields(Vec<String>),
    /// The query string (or body) has parameters the route does not know.
    #[error("unknown parameters: {}", .0.join(", "))]
    UnknownParameters(Vec<String>),
    /// A query or path parameter has a bad value.
    #[error("invalid value for parameter '{name}': {reason}")]
    InvalidParameter {
        /// The parameter.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A field was used below the microversion that introduced it.
    #[error(
        "invalid param {param} because current request version is {requested}; \
         {param} is only supported from version {minimum}"
    )]
    ParamInVersion {
        /// The field.
        param: &'static str,
        /// The request's microversion.
        requested: ApiVersion,
        /// The first microversion that has it.
        minimum: ApiVersion,
    },
    /// A Zun field Nest cannot honour was given a non-neutral value.
    #[error("{field} is not supported by Nest: {reason}")]
    UnsupportedField {
        /// The field.
        field: &'static str,
        /// What Nest does instead.
        reason: &'static str,
    },
    /// Zun's policy denies `privileged` to everyone by default (§5).
    #[error("policy doesn't allow container:create:privileged to be performed")]
    PrivilegedDenied,
    /// The body's media type is not JSON.
    #[error("the request body must be application/json, not {0}")]
    UnsupportedMediaType(String),
    /// The `OpenStack-API-Version` header cannot be honoured.
    #[error(transparent)]
    Version(VersionError),
    /// The route does not exist at the request's microversion.
    #[error(
        "the requested API is not supported for version {requested}; it needs {minimum} or later"
    )]
    RouteNotInVersion {
        /// The request's microversion.
        requested: ApiVersion,
        /// The first microversion that has the route.
        minimum: ApiVersion,
    },
    /// The route was removed after an earlier microversion.
    #[error(
        "the requested API is not supported for version {requested}; it was removed after {maximum}"
    )]
    RouteRemovedInVersion {
        /// The request's microversion.
        requested: ApiVersion,
        /// The last microversion that has the route.
        maximum: ApiVersion,
    },
    /// The websocket request came from a page of another origin.
    #[error("origin {0} is not allowed")]
    OriginNotAllowed(String),
    /// A websocket route was requested without an upgrade.
    #[error("this endpoint only accepts websocket upgrades")]
    WebSocketRequired,
    /// One of Zun's routes that Nest deliberately leaves out.
    #[error("{what} is not supported by Nest: {instead}")]
    NotSupported {
        /// The operation.
        what: &'static str,
        /// What to do instead.
        instead: &'static str,
    },
    /// No route has this path.
    #[error("the resource could not be found")]
    RouteNotFound,
    /// The route exists, not with this method.
    #[error("the method is not allowed for this resource")]
    MethodNotAllowed,
    /// The token was missing or refused, or Keystone could not be asked.
    #[error("authentication failed")]
    Auth(#[source] AuthError),
    /// The application layer refused or failed.
    #[error(transparent)]
    App(#[from] AppError),
    /// The router is wired wrongly (a middleware is missing).
    #[error("request context {0} is missing")]
    MissingContext(&'static str),
}

fn quoted(names: &[String]) -> String {
    let list: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    let verb = if names.len() == 1 { "was" } else { "were" };
    format!("{} {verb} unexpected", list.join(", "))
}

impl ApiError {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::MalformedJson(_)
            | Self::Schema { .. }
            | Self::UnexpectedFields(_)
            | Self::UnknownParameters(_)
            | Self::InvalidParameter { .. }
            | Self::ParamInVersion { .. }
            | Self::UnsupportedField { .. }
            | Self::NotSupported { .. }
            | Self::UnsupportedMediaType(_)
            | Self::Version(_)
            | Self::RouteNotInVersion { .. }
            | Self::RouteRemovedInVersion { .. }
            | Self::WebSocketRequired
            | Self::MethodNotAllowed => ErrorKind::Invalid,
            Self::PrivilegedDenied | Self::OriginNotAllowed(_) => ErrorKind::Forbidden,
            Self::RouteNotFound => ErrorKind::NotFound,
            Self::Auth(e) => e.kind(),
            Self::App(e) => e.kind(),
            Self::MissingContext(_) => ErrorKind::Internal,
        }
    }

    /// The HTTP status: chosen by the kind, except for the protocol-level
    /// refusals that have their own.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Version(_)
            | Self::RouteNotInVersion { .. }
            | Self::RouteRemovedInVersion { .. } => StatusCode::NOT_ACCEPTABLE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            _ => status_of(self.kind()),
        }
    }

    /// The kebab-case suffix of Zun's `code` (`container.<suffix>`).
    pub fn zun_code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) | Self::InvalidParameter { .. } | Self::UnknownParameters(_) => {
                "invalid-parameter-value"
            }
            Self::Schema { .. } | Self::UnexpectedFields(_) => "schema-validation-error",
            Self::ParamInVersion { .. } => "invalid-param-in-version",
            Self::UnsupportedField { .. } => "unsupported-parameter",
            Self::NotSupported { .. } => "not-supported",
            Self::PrivilegedDenied => "policy-not-authorized",
            Self::UnsupportedMediaType(_) => "unsupported-media-type",
            Self::Version(_)
            | Self::RouteNotInVersion { .. }
            | Self::RouteRemovedInVersion { .. } => "not-acceptable",
            Self::OriginNotAllowed(_) => "origin-not-allowed",
            Self::WebSocketRequired => "websocket-required",
            Self::RouteNotFound => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::Auth(_) => "service-unavailable",
            Self::MissingContext(_) => "internal-error",
            Self::App(e) => match e {
                AppError::ContainerNotFound(_) | AppError::MarkerNotFound(_) => {
                    "container-not-found"
                }
                AppError::ExecNotFound(_) => "exec-not-found",
                AppError::ActionNotFound(_) => "resource-not-found",
                AppError::HostNotFound(_) => "compute-host-not-found",
                AppError::CertificateNotFound(_)
                | AppError::NetworkNotFound(_)
                | AppError::NotEnabled(_) => "resource-not-found",
                AppError::NetworkNameInUse(_) | AppError::NetworkInUse { .. } => "conflict",
                AppError::AmbiguousName(_) => "conflict",
                AppError::NameInUse(_) => "container-already-exists",
                AppError::InvalidState { .. } => "invalid-state-exception",
                AppError::NotInteractive(_) => "no-interactive-flag",
                AppError::InvalidRequest { .. } => "invalid-parameter-value",
                AppError::ImageNotFound(_) | AppError::StoredImageNotFound(_) => "image-not-found",
                AppError::PolicyNotAuthorized(_) => "policy-not-authorized",
                AppError::OverQuota(_) => "over-quota",
                AppError::ConsoleTokenRejected => "console-token-rejected",
                AppError::Unavailable { .. } => "service-unavailable",
                AppError::Timeout { .. } => "timeout",
                AppError::Internal { .. } => "internal-error",
            },
        }
    }

    /// The error and its causes, `: `-separated.
    fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut source = self.source();
        while let Some(cause) = source {
            let _ = write!(out, ": {cause}");
            source = cause.source();
        }
        out
    }

    /// Renders Zun's body (or Keystone's, for 401) for this error.
    pub fn render(&self, request_id: &RequestId, keystone_uri: &str) -> Response {
        let status = self.status();
        if status == StatusCode::UNAUTHORIZED {
            return render_keystone_401(keystone_uri);
        }
        let (title, detail) = if status.is_server_error() {
            tracing::error!(
                request_id = %request_id,
                status = status.as_u16(),
                error = %self.chain(),
                "request failed"
            );
            let title = match self.kind() {
                ErrorKind::Internal => "internal server error".to_owned(),
                _ => self.to_string(),
            };
            let detail =
                format!("{title}; quote request id {request_id} when reporting this problem");
            (title, detail)
        } else {
            (self.to_string(), self.chain())
        };
        let body = ErrorBody {
            errors: vec![ErrorEntry {
                request_id: request_id.as_str().to_owned(),
                code: format!("container.{}", self.zun_code()),
                status: status.as_u16(),
                title,
                detail,
                links: Vec::new(),
            }],
        };
        (status, axum::Json(body)).into_response()
    }
}

/// HTTP status for each kind: the one table of STYLE §2.3.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden | ErrorKind::OverQuota => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Keystone's 401, as keystonemiddleware sends it in front of Zun.
fn render_keystone_401(keystone_uri: &str) -> Response {
    let body = json!({"error": {
        "code": 401,
        "title": "Unauthorized",
        "message": "The request you have made requires authentication.",
    }});
    let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    let challenge = format!("Keystone uri=\"{keystone_uri}\"");
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// An error waiting in a response's extensions for [`finish_response`].
#[derive(Clone, Debug)]
struct PendingError(Arc<ApiError>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status().into_response();
        response
            .extensions_mut()
            .insert(PendingError(Arc::new(self)));
        response
    }
}

/// The outermost middleware: settles the request id (the client's if it
/// has the `req-<uuid>` shape, else a new one), runs the request in a span
/// that carries it, renders a parked [`ApiError`], and sets
/// `x-openstack-request-id` on every response.
pub async fn finish_response(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(RequestId::from_client)
        .unwrap_or_else(RequestId::generate);
    request.extensions_mut().insert(request_id.clone());
    let span = tracing::debug_span!(
        "http",
        request_id = %request_id,
        method = %request.method(),
        path = %request.uri().path(),
        project_id = tracing::field::Empty,
    );
    let mut response = tracing::Instrument::instrument(next.run(request), span).await;
    if let Some(PendingError(error)) = response.extensions_mut().remove::<PendingError>() {
        let keystone_uri = state.config().keystone_uri.as_deref().unwrap_or_default();
        let mut rendered = error.render(&request_id, keystone_uri);
        // Headers set by inner layers (microversion) stay; the body and
        // its content type are the renderer's.
        for (name, value) in response.headers() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                rendered.headers_mut().append(name.clone(), value.clone());
            }
        }
        response = rendered;
    }
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// The request id header, as oslo's `RequestId` middleware names it.
pub const REQUEST_ID_HEADER: &str = "x-openstack-request-id";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_status() {
        let kinds = [
            (ErrorKind::Invalid, 400),
            (ErrorKind::Unauthenticated, 401),
            (ErrorKind::Forbidden, 403),
            (ErrorKind::OverQuota, 403),
            (ErrorKind::NotFound, 404),
            (ErrorKind::Conflict, 409),
            (ErrorKind::Unavailable, 503),
            (ErrorKind::Timeout, 504),
            (ErrorKind::Internal, 500),
        ];
        for (kind, status) in kinds {
            assert_eq!(status_of(kind).as_u16(), status, "{kind:?}");
        }
    }

    #[test]
    fn unexpected_fields_are_listed_like_jsonschema() {
        let one = ApiError::UnexpectedFields(vec!["foo".into()]);
        assert_eq!(
            one.to_string(),
            "additional properties are not allowed ('foo' was unexpected)"
        );
        let two = ApiError::UnexpectedFields(vec!["a".into(), "b".into()]);
        assert!(two.to_string().ends_with("('a', 'b' were unexpected)"));
    }

    /// One application error of each kind, rendered as the Zun API answers
    /// it: status, `code`, title and detail, and no cause of a 5xx in the
    /// body (it goes to the log).
    #[tokio::test]
    async fn each_application_error_kind_renders_in_zun_format() {
        use crate::app::ContainerRef;
        use crate::domain::{ContainerId, ContainerStatus};
        let id = ContainerId::generate();
        let cases: Vec<(AppError, u16, &str)> = vec![
            (
                AppError::InvalidRequest {
                    what: "hint",
                    reason: "no such flavor".into(),
                },
                400,
                "container.invalid-parameter-value",
            ),
            (
                AppError::OverQuota("instances".into()),
                403,
                "container.over-quota",
            ),
            (
                AppError::ContainerNotFound(ContainerRef::Id(id)),
                404,
                "container.container-not-found",
            ),
            (
                AppError::InvalidState {
                    id,
                    status: ContainerStatus::Running,
                    action: "delete",
                },
                409,
                "container.invalid-state-exception",
            ),
            (
                AppError::Unavailable {
                    what: "the relay".into(),
                    source: Some("refused".into()),
                },
                503,
                "container.service-unavailable",
            ),
            (
                AppError::Timeout {
                    what: "agent command".into(),
                },
                504,
                "container.timeout",
            ),
            (
                AppError::Internal {
                    context: "saving",
                    source: "disk on fire".into(),
                },
                500,
                "container.internal-error",
            ),
        ];
        let request_id = RequestId::generate();
        for (error, status, code) in cases {
            let message = error.to_string();
            let response = ApiError::App(error).render(&request_id, "http://keystone.test");
            assert_eq!(response.status().as_u16(), status, "{message}");
            assert_eq!(
                response.headers().get(header::CONTENT_TYPE),
                Some(&HeaderValue::from_static("application/json"))
            );
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body reads");
            let body: nest_api_types::zun::ErrorBody =
                serde_json::from_slice(&body).expect("Zun's error body");
            let [e] = body.errors.as_slice() else {
                panic!("one error: {body:?}");
            };
            assert_eq!(e.code, code);
            assert_eq!(e.status, status);
            assert_eq!(e.request_id, request_id.as_str());
            if status == 500 {
                assert_eq!(e.title, "internal server error");
                assert!(!e.detail.contains("disk on fire") && !e.detail.contains("saving"));
                assert!(e.detail.contains(request_id.as_str()), "{}", e.detail);
            } else {
                assert_eq!(e.title, message);
                assert!(!e.detail.contains("refused"), "5xx causes stay in the log");
            }
        }
    }
}
