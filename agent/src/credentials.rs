//! The agent's key pair and certificate on disk, and enrollment.
//!
//! The private key is generated here, on the instance, and never leaves it:
//! only CSRs do. Files live in the state directory (mode 0700): the key in
//! `agent-key.pem` (0600), the certificate in `agent-cert.pem`. Both are
//! replaced atomically (write to a temporary file, fsync, rename).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nest_core::ErrorKind;
use nest_core::ids::InstanceId;
use nest_relay::client::{ClientTls, dial};
use nest_relay::identity::CLOCK_SKEW_ALLOWANCE;
use nest_relay::identity::{PeerIdentity, peer_identity};
use nest_relay::proto::agent_relay_client::AgentRelayClient;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;

use crate::config::AgentConfig;
use crate::convert;
use crate::log_fields::INSTANCE_ID;

/// File name of the agent's private key in the state directory.
pub const KEY_FILE: &str = "agent-key.pem";
/// File name of the agent's certificate in the state directory.
pub const CERT_FILE: &str = "agent-cert.pem";
/// Longest an enrollment call may take.
const ENROLL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the agent's credentials could not be read, made or renewed.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// A state file could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// Key generation or CSR creation failed.
    #[error("cannot create the agent's key or certificate request")]
    Crypto(#[source] rcgen::Error),
    /// A stored or received certificate does not parse.
    #[error("certificate in {0} is unreadable")]
    BadCertificate(String),
    /// The enrollment token file is missing or empty.
    #[error("no enrollment token at {path}; the instance must be re-enrolled with a new token")]
    NoToken {
        /// Where the token was expected.
        path: PathBuf,
        /// The I/O failure, if any.
        #[source]
        source: Option<std::io::Error>,
    },
    /// The relay or the service refused or failed the enrollment.
    #[error("enrollment failed")]
    Enroll(#[source] nest_relay::client::RelayError),
    /// The certificate received names a different identity.
    #[error("the relay issued a certificate for {got}, not for instance {expected}")]
    WrongIdentity {
        /// The instance this agent is.
        expected: InstanceId,
        /// What the certificate names.
        got: String,
    },
    /// A blocking task panicked or was cancelled.
    #[error("background task failed")]
    Join(#[from] tokio::task::JoinError),
}

impl CredentialsError {
    /// Whether retrying later can help (the relay or service was away).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Enroll(e) => e.kind().is_retryable(),
            _ => false,
        }
    }

    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Enroll(e) => e.kind(),
            Self::NoToken { .. } | Self::WrongIdentity { .. } => ErrorKind::Unauthenticated,
            _ => ErrorKind::Internal,
        }
    }
}

/// The agent's key and, once enrolled, its certificate.
#[derive(Clone)]
pub struct Credentials {
    key_pem: String,
    /// The current certificate, PEM.
    pub cert_pem: String,
    /// When the current certificate stops being valid.
    pub not_after: OffsetDateTime,
    /// When the current certificate started (without the skew backdating).
    pub issued_at: OffsetDateTime,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// TLS material for dialling the relay with this identity.
    pub fn client_tls(&self, config: &AgentConfig, ca_pem: &str) -> ClientTls {
        ClientTls {
            ca_pem: ca_pem.to_owned(),
            identity: Some((self.cert_pem.clone(), self.key_pem.clone())),
            server_name: config.relay_server_name.clone(),
        }
    }

    /// The agent's private key, PEM. Never leaves the instance.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Whether the certificate is still valid now.
    pub fn is_valid_now(&self) -> bool {
        OffsetDateTime::now_utc() < self.not_after
    }

    /// When to renew: two thirds into the certificate's lifetime.
    pub fn renew_at(&self) -> OffsetDateTime {
        let lifetime = self.not_after - self.issued_at;
        self.issued_at + lifetime * 2 / 3
    }

    /// A CSR for this agent's key, naming the instance (the CA overrides the
    /// names anyway; they only help a human reading the request).
    ///
    /// # Errors
    /// [`CredentialsError::Crypto`] when the CSR cannot be built.
    pub fn csr_pem(&self, instance: &InstanceId) -> Result<String, CredentialsError> {
        make_csr(&self.key_pem, instance)
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CredentialsError + '_ {
    move |source| CredentialsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `contents` to `path` atomically with `mode`.
fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), CredentialsError> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    file.write_all(contents).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

fn make_csr(key_pem: &str, instance: &InstanceId) -> Result<String, CredentialsError> {
    let key = rcgen::KeyPair::from_pem(key_pem).map_err(CredentialsError::Crypto)?;
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(CredentialsError::Crypto)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, instance.as_str());
    params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(CredentialsError::Crypto)
}

/// Reads the validity window of a PEM certificate.
fn validity(
    cert_pem: &str,
) -> Result<(OffsetDateTime, OffsetDateTime, CertificateDer<'static>), CredentialsError> {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| CredentialsError::BadCertificate(e.to_string()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| CredentialsError::BadCertificate(e.to_string()))?;
    let not_before = cert.validity().not_before.to_datetime();
    let not_after = cert.validity().not_after.to_datetime();
    Ok((not_before, not_after, der))
}

/// Loads the key (generating it on first run) and the certificate, if any.
///
/// # Errors
/// [`CredentialsError`] when the state directory is unusable.
pub async fn load(state_dir: &Path) -> Result<(String, Option<Credentials>), CredentialsError> {
    let state_dir = state_dir.to_owned();
    tokio::task::spawn_blocking(move || load_blocking(&state_dir)).await?
}

fn load_blocking(state_dir: &Path) -> Result<(String, Option<Credentials>), CredentialsError> {
    std::fs::create_dir_all(state_dir).map_err(io_err(state_dir))?;
    std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io_err(state_dir))?;
    let key_path = state_dir.join(KEY_FILE);
    let key_pem = match std::fs::read_to_string(&key_path) {
        Ok(pem) => pem,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = rcgen::KeyPair::generate().map_err(CredentialsError::Crypto)?;
            let pem = key.serialize_pem();
            write_atomic(&key_path, pem.as_bytes(), 0o600)?;
            tracing::info!(path = %key_path.display(), "generated the agent's private key");
            pem
        }
        Err(e) => return Err(io_err(&key_path)(e)),
    };
    let cert_path = state_dir.join(CERT_FILE);
    let credentials = match std::fs::read_to_string(&cert_path) {
        Ok(cert_pem) => Some(credentials_from(key_pem.clone(), cert_pem)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(&cert_path)(e)),
    };
    Ok((key_pem, credentials))
}

fn credentials_from(key_pem: String, cert_pem: String) -> Result<Credentials, CredentialsError> {
    let (not_before, not_after, _) = validity(&cert_pem)?;
    let issued_at = (not_before + CLOCK_SKEW_ALLOWANCE).min(not_after);
    Ok(Credentials {
        key_pem,
        cert_pem,
        not_after,
        issued_at,
    })
}

/// Checks that `cert_pem` names `instance` as an agent and stores it.
///
/// # Errors
/// [`CredentialsError`] when it names someone else or cannot be written.
pub async fn store_certificate(
    state_dir: &Path,
    instance: &InstanceId,
    key_pem: String,
    cert_pem: String,
) -> Result<Credentials, CredentialsError> {
    let (_, _, der) = validity(&cert_pem)?;
    let identity =
        peer_identity(&der).map_err(|e| CredentialsError::BadCertificate(e.to_string()))?;
    if identity != PeerIdentity::agent(instance) {
        return Err(CredentialsError::WrongIdentity {
            expected: instance.clone(),
            got: identity.to_uri(),
        });
    }
    let path = state_dir.join(CERT_FILE);
    let credentials = credentials_from(key_pem, cert_pem)?;
    let pem = credentials.cert_pem.clone();
    tokio::task::spawn_blocking(move || write_atomic(&path, pem.as_bytes(), 0o644)).await??;
    Ok(credentials)
}

/// Enrolls: sends a CSR with the one-time token and stores the certificate.
/// The token file is deleted afterwards; it cannot be used again anyway.
///
/// # Errors
/// [`CredentialsError`]; [`CredentialsError::is_retryable`] says whether
/// trying again later can help.
pub async fn enroll(
    config: &AgentConfig,
    ca_pem: &str,
    key_pem: String,
) -> Result<Credentials, CredentialsError> {
    let token_path = &config.enrollment_token_file;
    let token =
        tokio::fs::read_to_string(token_path)
            .await
            .map_err(|e| CredentialsError::NoToken {
                path: token_path.clone(),
                source: Some(e),
            })?;
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err(CredentialsError::NoToken {
            path: token_path.clone(),
            source: None,
        });
    }
    let csr_pem = {
        let key_pem = key_pem.clone();
        let instance = config.instance_id.clone();
        tokio::task::spawn_blocking(move || make_csr(&key_pem, &instance)).await??
    };
    let tls = ClientTls {
        ca_pem: ca_pem.to_owned(),
        identity: None,
        server_name: config.relay_server_name.clone(),
    };
    let channel = dial(&config.relay_addr, &tls)
        .await
        .map_err(CredentialsError::Enroll)?;
    let mut client = AgentRelayClient::new(channel);
    let mut request = tonic::Request::new(convert::enroll_request(token, csr_pem));
    request.set_timeout(ENROLL_TIMEOUT);
    let response = client
        .enroll(request)
        .await
        .map_err(|s| CredentialsError::Enroll(s.into()))?
        .into_inner();
    let credentials = store_certificate(
        &config.state_dir,
        &config.instance_id,
        key_pem,
        convert::enrolled_certificate(response),
    )
    .await?;
    if let Err(e) = tokio::fs::remove_file(token_path).await {
        tracing::warn!(path = %token_path.display(), error = %e, "could not delete the used enrollment token");
    }
    tracing::info!({ INSTANCE_ID } = %config.instance_id, not_after = %credentials.not_after, "enrolled");
    Ok(credentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_generated_once_and_kept_private() {
        let dir = std::env::temp_dir().join(format!("nest-agent-cred-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (first, creds) = load_blocking(&dir).expect("first load");
        assert!(creds.is_none());
        let (second, _) = load_blocking(&dir).expect("second load");
        assert_eq!(first, second, "the key must be reused, not regenerated");
        let mode = std::fs::metadata(dir.join(KEY_FILE))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let csr = make_csr(&first, &InstanceId::parse("i-1").expect("id")).expect("csr");
        assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
