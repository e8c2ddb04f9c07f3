//! `/v1/nest/docker/certificates`, a Nest extension: the TLS client
//! certificates with which the unchanged docker CLI reaches Nest's Docker
//! Engine API endpoint, as `docker-machine env` sets it up. The client
//! keeps its private key: it sends a CSR, Nest's CA signs a short-lived
//! certificate bound to the caller's user and project, and the endpoint
//! refuses it once it expires or is revoked.
//!
//! - `POST` with [`CreateDockerCertificateBody`] → `201`
//!   [`DockerCertificateView`];
//! - `GET` → [`DockerCertificateCollection`], the caller's own certificates
//!   (an admin's call lists the project's);
//! - `DELETE …/{serial}` → `204`: revoked at once.

use serde::{Deserialize, Serialize};

/// `POST /v1/nest/docker/certificates`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateDockerCertificateBody {
    /// A PEM certificate signing request (`-----BEGIN CERTIFICATE
    /// REQUEST-----`). Its subject is ignored: the certificate names the
    /// caller's user and project.
    pub csr: String,
    /// How long the certificate should last, e.g. `"12h"`; at most the
    /// service's `[docker] certificate_lifetime`, which is also the
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<String>,
}

/// A signed certificate and what the docker CLI needs beside it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DockerCertificateView {
    /// The certificate's serial number, hex: name it to revoke it.
    pub serial: String,
    /// The certificate, PEM (`cert.pem` in `DOCKER_CERT_PATH`). Absent in
    /// lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// The CA that signs the endpoint's server certificate and the client
    /// certificates, PEM (`ca.pem`). Absent in lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate: Option<String>,
    /// The endpoint, as `DOCKER_HOST` spells it: `tcp://HOST:PORT`.
    pub docker_host: String,
    /// The user it acts for.
    pub user_id: String,
    /// The project it acts in.
    pub project_id: String,
    /// When it was issued, RFC 3339.
    pub created_at: String,
    /// When it stops being accepted, RFC 3339.
    pub expires_at: String,
    /// Whether it was revoked.
    #[serde(default)]
    pub revoked: bool,
}

/// `GET /v1/nest/docker/certificates`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DockerCertificateCollection {
    /// The certificates, newest first.
    pub certificates: Vec<DockerCertificateView>,
}
