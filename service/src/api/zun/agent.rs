//! `GET /v1/nest/agent` and `/v1/nest/agent.sha256`: the `nest-agent`
//! binary that cloud-init downloads on a new instance (when the operator
//! chose `agent.source = "download"`) and checks against the SHA-256 in
//! its user-data. Public: the binary holds no secret, and a booting
//! instance has no token yet.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::api::ApiState;
use crate::api::zun::error::ApiError;
use crate::app::AppError;

/// Where the binary is served.
pub const AGENT_PATH: &str = "/v1/nest/agent";
/// Where its SHA-256 is served.
pub const AGENT_SHA256_PATH: &str = "/v1/nest/agent.sha256";

/// Not served unless configured: a 404 (nothing is wrong with the
/// service), not a 5xx.
fn not_served() -> ApiError {
    ApiError::App(AppError::NotEnabled(
        "the agent download (agent.source = \"download\")",
    ))
}

/// The agent binary.
#[utoipa::path(get, path = "/v1/nest/agent", tag = "operations",
    responses((status = 200, description = "the nest-agent binary", content_type = "application/octet-stream"),
              (status = 404, description = "not served: agent.source is not \"download\"")))]
pub async fn binary(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let (path, _) = state
        .config()
        .agent_binary
        .as_ref()
        .ok_or_else(not_served)?;
    let file = tokio::fs::File::open(path).await.map_err(|e| {
        ApiError::App(AppError::Unavailable {
            what: "the agent binary".into(),
            source: Some(Box::new(e)),
        })
    })?;
    let mut response = Body::from_stream(tokio_util::io::ReaderStream::new(file)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(response)
}

/// The agent binary's SHA-256, hex, as a line of text.
#[utoipa::path(get, path = "/v1/nest/agent.sha256", tag = "operations",
    responses((status = 200, body = String, content_type = "text/plain"),
              (status = 404, description = "not served: agent.source is not \"download\"")))]
pub async fn sha256(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let (_, sha) = state
        .config()
        .agent_binary
        .as_ref()
        .ok_or_else(not_served)?;
    Ok(format!("{sha}\n").into_response())
}
