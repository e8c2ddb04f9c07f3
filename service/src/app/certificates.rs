//! The Docker endpoint's client certificates (issue #8): issuing one for
//! the caller from a CSR, listing and revoking them, and turning a
//! presented certificate's serial back into the caller it was issued to.
//!
//! A certificate is bound to the user, the project and the roles of the
//! token that asked for it, and lasts at most the configured lifetime.
//! The private key never reaches Nest: the client sends a CSR.

use std::sync::Arc;
use std::time::Duration;

use nest_pki::{CertificateAuthority, Validity};

use super::{AppError, CallContext, db_error, internal};
use crate::auth::Caller;
use crate::ca::{CertificateRefusal, VerifiedSerial};
use crate::db::{DbError, DockerCertificate, Store, format_utc, utc_now};

/// Longest serial accepted in a path (RFC 5280 allows 20 bytes).
const MAX_SERIAL_HEX: usize = 40;

/// A certificate just issued, with what the docker CLI needs beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedDockerCertificate {
    /// Its record.
    pub record: DockerCertificate,
    /// The certificate, PEM.
    pub certificate_pem: String,
}

/// Issues and checks the Docker endpoint's client certificates.
#[derive(Clone)]
pub struct DockerCertificates {
    store: Store,
    ca: Arc<CertificateAuthority>,
    max_lifetime: Duration,
    docker_host: String,
}

impl DockerCertificates {
    /// The issuer over the database and Nest's CA; certificates last at
    /// most `max_lifetime` and name `docker_host` (`tcp://HOST:PORT`).
    pub fn new(
        store: Store,
        ca: Arc<CertificateAuthority>,
        max_lifetime: Duration,
        docker_host: String,
    ) -> Self {
        Self {
            store,
            ca,
            max_lifetime,
            docker_host,
        }
    }

    /// The CA certificate clients verify the endpoint with, PEM.
    pub fn ca_pem(&self) -> &str {
        self.ca.certificate_pem()
    }

    /// The endpoint as `DOCKER_HOST` spells it.
    pub fn docker_host(&self) -> &str {
        &self.docker_host
    }

    /// Signs `csr_pem` for the caller, valid for `lifetime` (default and
    /// most: the configured lifetime).
    ///
    /// # Errors
    /// [`AppError::PolicyNotAuthorized`] for a read-only caller;
    /// [`AppError::InvalidRequest`] for a bad CSR or lifetime.
    pub async fn issue(
        &self,
        cx: &CallContext,
        csr_pem: String,
        lifetime: Option<Duration>,
    ) -> Result<IssuedDockerCertificate, AppError> {
        if cx.caller.is_read_only() {
            return Err(AppError::PolicyNotAuthorized(
                "nest:docker_certificate:create".into(),
            ));
        }
        let lifetime = lifetime.unwrap_or(self.max_lifetime);
        if lifetime < Duration::from_secs(60) || lifetime > self.max_lifetime {
            return Err(AppError::InvalidRequest {
                what: "lifetime",
                reason: format!(
                    "must be between 1m and {}",
                    nest_core::duration::HumanDuration(self.max_lifetime)
                ),
            });
        }
        let validity = Validity::starting_now(lifetime);
        let ca = self.ca.clone();
        let user = cx.caller.user_id.as_str().to_owned();
        // Signing is CPU work: off the async threads.
        let signed =
            tokio::task::spawn_blocking(move || ca.sign_user_csr(&csr_pem, &user, validity))
                .await
                .map_err(|e| internal("signing a certificate", e))?
                .map_err(|e| match e.kind() {
                    nest_core::ErrorKind::Invalid => AppError::InvalidRequest {
                        what: "csr",
                        reason: crate::error_chain(&e),
                    },
                    _ => internal("signing a certificate", e),
                })?;
        let record = DockerCertificate {
            serial: signed.serial_hex,
            user_id: cx.caller.user_id.clone(),
            project_id: cx.caller.project_id.clone(),
            roles: cx.caller.roles.clone(),
            created_at: utc_now(),
            expires_at: format_utc(validity.not_after()),
            revoked_at: None,
        };
        self.store
            .insert_docker_certificate(&record)
            .await
            .map_err(db_error("recording a certificate"))?;
        tracing::info!(serial = %record.serial, project_id = %record.project_id, user_id = %record.user_id, "Docker client certificate issued");
        Ok(IssuedDockerCertificate {
            record,
            certificate_pem: signed.certificate_pem,
        })
    }

    /// The caller's certificates (an admin's call: the project's), newest
    /// first.
    ///
    /// # Errors
    /// [`AppError::Unavailable`] when the database is down.
    pub async fn list(&self, cx: &CallContext) -> Result<Vec<DockerCertificate>, AppError> {
        let user = (!cx.caller.is_admin()).then_some(&cx.caller.user_id);
        self.store
            .list_docker_certificates(&cx.caller.project_id, user)
            .await
            .map_err(db_error("listing certificates"))
    }

    /// Revokes one of the caller's certificates (an admin: any of the
    /// project's); it is refused from the next request on.
    ///
    /// # Errors
    /// [`AppError::CertificateNotFound`] when no such certificate is
    /// visible to the caller.
    pub async fn revoke(&self, cx: &CallContext, serial: &str) -> Result<(), AppError> {
        let not_found = || AppError::CertificateNotFound(serial.chars().take(64).collect());
        let serial = serial.to_ascii_lowercase();
        if serial.is_empty()
            || serial.len() > MAX_SERIAL_HEX
            || !serial.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(not_found());
        }
        let record = self
            .store
            .get_docker_certificate(&serial)
            .await
            .map_err(db_error("reading a certificate"))?
            .ok_or_else(not_found)?;
        let visible = record.project_id == cx.caller.project_id
            && (cx.caller.is_admin() || record.user_id == cx.caller.user_id);
        if !visible {
            return Err(not_found());
        }
        self.store
            .revoke_docker_certificate(&serial, &utc_now())
            .await
            .map_err(db_error("revoking a certificate"))?;
        tracing::info!(serial = %serial, project_id = %record.project_id, "Docker client certificate revoked");
        Ok(())
    }

    /// The caller a certificate, verified against Nest's CA when its
    /// connection was made, stands for: the record of its serial, if it
    /// was issued here and is neither revoked nor (by now) expired.
    ///
    /// # Errors
    /// [`CertificateAuthError::Refused`] naming why;
    /// [`CertificateAuthError::Unavailable`] when the database is down.
    pub async fn authenticate(
        &self,
        serial: &VerifiedSerial,
    ) -> Result<Caller, CertificateAuthError> {
        let record = self
            .store
            .get_docker_certificate(serial.as_str())
            .await
            .map_err(CertificateAuthError::Unavailable)?
            .ok_or(CertificateRefusal::NotIssued)?;
        if let Some(at) = record.revoked_at {
            return Err(CertificateRefusal::Revoked(at).into());
        }
        // Connections outlive certificates: checked at every request.
        if record.expires_at <= utc_now() {
            return Err(CertificateRefusal::Expired(record.expires_at).into());
        }
        Ok(Caller {
            user_id: record.user_id,
            project_id: record.project_id,
            roles: record.roles,
        })
    }
}

/// Why a verified client certificate stands for no caller.
#[derive(Debug, thiserror::Error)]
pub enum CertificateAuthError {
    /// Not issued here, revoked or expired.
    #[error(transparent)]
    Refused(#[from] CertificateRefusal),
    /// The certificates' records could not be read.
    #[error("the certificate records could not be read")]
    Unavailable(#[source] DbError),
}

impl CertificateAuthError {
    /// The classification of this error.
    pub fn kind(&self) -> nest_core::ErrorKind {
        match self {
            Self::Refused(_) => nest_core::ErrorKind::Unauthenticated,
            Self::Unavailable(_) => nest_core::ErrorKind::Unavailable,
        }
    }
}
