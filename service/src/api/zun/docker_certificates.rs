//! `/v1/nest/docker/certificates`, a Nest extension: the client
//! certificates of the Docker endpoint (issue #8), whose bodies are
//! [`nest_api_types::zun::docker`]'s. The caller sends a CSR and gets a
//! short-lived certificate bound to its user and project, with the CA
//! certificate and the `DOCKER_HOST` to use it with.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use nest_api_types::zun::docker::{
    CreateDockerCertificateBody, DockerCertificateCollection, DockerCertificateView,
};
use nest_core::duration::HumanDuration;

use super::containers::NoParams;
use super::extract::{QueryParams, RequestContext, ZunJson, ZunPath};
use crate::api::ApiState;
use crate::api::zun::error::ApiError;
use crate::app::{AppError, DockerCertificates};
use crate::db::DockerCertificate;

fn certificates(state: &ApiState) -> Result<&DockerCertificates, ApiError> {
    state
        .docker_certificates()
        .ok_or(ApiError::App(AppError::NotEnabled("the Docker endpoint")))
}

fn view(
    certs: &DockerCertificates,
    record: DockerCertificate,
    certificate: Option<String>,
) -> DockerCertificateView {
    let with_pems = certificate.is_some();
    DockerCertificateView {
        serial: record.serial,
        certificate,
        ca_certificate: with_pems.then(|| certs.ca_pem().to_owned()),
        docker_host: certs.docker_host().to_owned(),
        user_id: record.user_id.as_str().to_owned(),
        project_id: record.project_id.as_str().to_owned(),
        created_at: record.created_at,
        expires_at: record.expires_at,
        revoked: record.revoked_at.is_some(),
    }
}

/// Signs a CSR as a client certificate of the Docker endpoint for the
/// caller's user and project.
#[utoipa::path(post, path = "/v1/nest/docker/certificates", tag = "docker",
    request_body = CreateDockerCertificateBody,
    responses((status = 201, body = DockerCertificateView),
        (status = 400, description = "bad CSR or lifetime"),
        (status = 404, description = "the Docker endpoint is not enabled")))]
pub async fn create(
    State(state): State<ApiState>,
    cx: RequestContext,
    QueryParams(NoParams {}): QueryParams<NoParams>,
    ZunJson(body): ZunJson<CreateDockerCertificateBody>,
) -> Result<(StatusCode, Json<DockerCertificateView>), ApiError> {
    let certs = certificates(&state)?;
    let lifetime = body
        .lifetime
        .as_deref()
        .map(|l| {
            HumanDuration::parse(l).map_err(|e| ApiError::InvalidParameter {
                name: "lifetime".into(),
                reason: e.to_string(),
            })
        })
        .transpose()?
        .map(HumanDuration::get);
    let issued = certs.issue(&cx.call, body.csr, lifetime).await?;
    Ok((
        StatusCode::CREATED,
        Json(view(certs, issued.record, Some(issued.certificate_pem))),
    ))
}

/// Lists the caller's certificates (an admin's call: the project's).
#[utoipa::path(get, path = "/v1/nest/docker/certificates", tag = "docker",
    responses((status = 200, body = DockerCertificateCollection)))]
pub async fn list(
    State(state): State<ApiState>,
    cx: RequestContext,
    QueryParams(NoParams {}): QueryParams<NoParams>,
) -> Result<Json<DockerCertificateCollection>, ApiError> {
    let certs = certificates(&state)?;
    let records = certs.list(&cx.call).await?;
    Ok(Json(DockerCertificateCollection {
        certificates: records.into_iter().map(|r| view(certs, r, None)).collect(),
    }))
}

/// Revokes a certificate at once.
#[utoipa::path(delete, path = "/v1/nest/docker/certificates/{serial}", tag = "docker",
    params(("serial" = String, Path, description = "the certificate's serial, hex")),
    responses((status = 204), (status = 404, description = "no such certificate")))]
pub async fn revoke(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath(serial): ZunPath<String>,
    QueryParams(NoParams {}): QueryParams<NoParams>,
) -> Result<StatusCode, ApiError> {
    certificates(&state)?.revoke(&cx.call, &serial).await?;
    Ok(StatusCode::NO_CONTENT)
}
