//! Every error the Docker front end answers, and the only place they
//! become responses: `{"message": "..."}` with `Content-Type:
//! application/json` exactly (the docker CLI compares the header string;
//! with a charset it prints the raw JSON, docker-api.md §1 #11). The kind
//! of an application error picks the status, as for the Zun API; 5xx
//! bodies say "internal error" and the request id, the cause goes to the
//! log only.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use nest_core::ErrorKind;

use crate::api::zun::error::status_of;
use crate::app::{AppError, CertificateAuthError, ContainerRef};
use crate::auth::AuthError;
use crate::ca::CertificateRefusal;

/// Why a Docker API request failed.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The body is not the JSON the route takes.
    #[error("invalid JSON: {0}")]
    MalformedJson(String),
    /// A query or body value cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// A feature of the Docker API that Nest does not offer.
    #[error("{0} is not supported by Nest")]
    Unsupported(&'static str),
    /// The path names no route.
    #[error("page not found")]
    RouteNotFound,
    /// The API version in the path is outside what Nest speaks.
    #[error("{0}")]
    Version(String),
    /// The named container is not visible to the caller.
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    /// The named exec instance is unknown.
    #[error("No such exec instance: {0}")]
    NoSuchExec(String),
    /// Another object the path names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The named image is neither stored by Nest nor pulled.
    #[error("No such image: {0}")]
    NoSuchImage(String),
    /// The container name is taken in the project.
    #[error(
        "Conflict. The container name \"/{0}\" is already in use by another container. \
         You have to remove (or rename) that container to be able to reuse that name."
    )]
    NameInUse(String),
    /// The container is in the wrong state for the request.
    #[error("{0}")]
    Conflict(String),
    /// dockerd's 403: the request is understood but refused (a network
    /// that containers are still on).
    #[error("{0}")]
    Forbidden(String),
    /// No credential, or a token that is not accepted.
    #[error("{}", auth_message(.0))]
    Auth(#[source] AuthError),
    /// A client certificate that is not accepted, or whose records could
    /// not be read.
    #[error("{}", certificate_message(.0))]
    Certificate(#[source] CertificateAuthError),
    /// The application layer refused or failed.
    #[error(transparent)]
    App(AppError),
}

fn auth_message(e: &AuthError) -> &'static str {
    match e {
        AuthError::Missing => {
            "authentication required: present a client certificate issued by Nest \
             (DOCKER_TLS_VERIFY, DOCKER_CERT_PATH) or a Keystone token in X-Auth-Token"
        }
        AuthError::Invalid => {
            "authentication failed: the token in X-Auth-Token is invalid, expired or revoked; \
             get a new one with `openstack token issue`"
        }
        AuthError::Unscoped => {
            "authentication failed: the token in X-Auth-Token is not scoped to a project"
        }
        AuthError::Unavailable(_) => "the identity service is unavailable",
    }
}

/// The refusal and what to do about it (the CLI prints the message as
/// it is).
fn certificate_message(e: &CertificateAuthError) -> String {
    match e {
        CertificateAuthError::Refused(refusal @ CertificateRefusal::NotYetValid(_)) => format!(
            "authentication failed: {refusal}; check this machine's clock, or get a new one \
             with `osc docker-env`"
        ),
        CertificateAuthError::Refused(refusal @ CertificateRefusal::Revoked(_)) => {
            format!("authentication failed: {refusal}; get a new one with `osc docker-env`")
        }
        CertificateAuthError::Refused(refusal @ CertificateRefusal::Expired(_)) => {
            format!("authentication failed: {refusal}; get a new one with `osc docker-env`")
        }
        CertificateAuthError::Refused(refusal) => {
            format!("authentication failed: {refusal}; get one with `osc docker-env`")
        }
        CertificateAuthError::Unavailable(_) => "the certificate records are unavailable".into(),
    }
}

impl DockerError {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::MalformedJson(_) | Self::Invalid(_) | Self::Version(_) => ErrorKind::Invalid,
            // The docker CLI shows the message; 501 says "not here" best.
            Self::Unsupported(_) => ErrorKind::Invalid,
            Self::RouteNotFound
            | Self::NotFound(_)
            | Self::NoSuchContainer(_)
            | Self::NoSuchExec(_)
            | Self::NoSuchImage(_) => ErrorKind::NotFound,
            Self::NameInUse(_) | Self::Conflict(_) => ErrorKind::Conflict,
            Self::Forbidden(_) => ErrorKind::Forbidden,
            Self::Auth(e) => e.kind(),
            Self::Certificate(e) => e.kind(),
            Self::App(e) => e.kind(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
            _ => status_of(self.kind()),
        }
    }

    /// The application's error in Docker's words where the CLI expects
    /// them ("No such container", the name clash text).
    pub fn from_app(e: AppError) -> Self {
        match e {
            AppError::ContainerNotFound(reference) => Self::NoSuchContainer(match reference {
                ContainerRef::Id(id) => super::views::docker_id(id),
                ContainerRef::Name(name) => name,
            }),
            AppError::NameInUse(name) => Self::NameInUse(name),
            AppError::ImageNotFound(image) | AppError::StoredImageNotFound(image) => {
                Self::NoSuchImage(image)
            }
            AppError::ExecNotFound(id) => Self::NoSuchExec(id.to_string()),
            AppError::InvalidState { .. } | AppError::AmbiguousName(_) => {
                Self::Conflict(e.to_string())
            }
            other => Self::App(other),
        }
    }
}

impl From<AppError> for DockerError {
    fn from(e: AppError) -> Self {
        Self::from_app(e)
    }
}

impl IntoResponse for DockerError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status.is_server_error() && !matches!(self, Self::Unsupported(_)) {
            tracing::error!(error = %crate::error_chain(&self), "Docker API request failed");
            match self.kind() {
                ErrorKind::Unavailable | ErrorKind::Timeout => self.to_string(),
                _ => "internal error; the service's log has the details".to_owned(),
            }
        } else {
            self.to_string()
        };
        error_response(status, &message)
    }
}

/// A Docker error body with the exact content type the CLI checks.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> (StatusCode, String, String) {
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap_or_default();
        (
            status,
            content_type,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    #[tokio::test]
    async fn each_kind_renders_dockers_body_with_the_exact_content_type() {
        let cases = [
            (DockerError::Invalid("bad".into()), 400, "bad"),
            (
                DockerError::Auth(AuthError::Missing),
                401,
                "authentication required: present a client certificate issued by Nest \
                 (DOCKER_TLS_VERIFY, DOCKER_CERT_PATH) or a Keystone token in X-Auth-Token",
            ),
            (
                DockerError::Certificate(
                    CertificateRefusal::Expired("2026-01-01T00:00:00Z".into()).into(),
                ),
                401,
                "authentication failed: the client certificate expired at 2026-01-01T00:00:00Z; \
                 get a new one with `osc docker-env`",
            ),
            (
                DockerError::Certificate(CertificateRefusal::UnknownIssuer.into()),
                401,
                "authentication failed: the client certificate was not issued by Nest's \
                 certificate authority; get one with `osc docker-env`",
            ),
            (
                DockerError::Auth(AuthError::Invalid),
                401,
                "authentication failed: the token in X-Auth-Token is invalid, expired or \
                 revoked; get a new one with `openstack token issue`",
            ),
            (
                DockerError::from_app(AppError::PolicyNotAuthorized("x".into())),
                403,
                "policy doesn't allow x to be performed",
            ),
            (
                DockerError::NoSuchContainer("web".into()),
                404,
                "No such container: web",
            ),
            (
                DockerError::from_app(AppError::NameInUse("web".into())),
                409,
                "Conflict. The container name \"/web\" is already in use by another container. \
                 You have to remove (or rename) that container to be able to reuse that name.",
            ),
            (
                DockerError::Unsupported("docker build"),
                501,
                "docker build is not supported by Nest",
            ),
            (
                DockerError::from_app(AppError::Internal {
                    context: "testing",
                    source: "secret cause".into(),
                }),
                500,
                "internal error; the service's log has the details",
            ),
        ];
        for (error, status, message) in cases {
            let (got_status, content_type, body) = body_of(error.into_response()).await;
            assert_eq!(got_status.as_u16(), status, "{body}");
            assert_eq!(content_type, "application/json");
            let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            assert_eq!(value["message"], message, "{body}");
        }
    }
}
