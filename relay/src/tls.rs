//! rustls configurations for every Nest TLS endpoint: TLS 1.3 only, ALPN
//! `h2`, peers verified against Nest's CA and nothing else (no system
//! roots).
//!
//! The server asks for a client certificate but does not require one,
//! because an agent calls `Enroll` before it has a certificate. Any
//! certificate that *is* presented must verify (chain to the CA, within its
//! validity), or the handshake fails. Deciding who may call what is left to
//! the RPC handlers, which read the identity with
//! [`crate::identity::peer_identity`].
//!
//! Configs use the process-default crypto provider (binaries install
//! aws-lc-rs at start), falling back to aws-lc-rs without installing it, so
//! that building a config never panics.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::client::ClientConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ServerConfig, VerifierBuilderError, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The only ALPN protocol spoken: gRPC runs over HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM input is malformed.
    #[error("{what} PEM is malformed")]
    Pem {
        /// Which input: "CA certificate", "certificate" or "private key".
        what: &'static str,
        /// The parser's complaint.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A PEM input holds no certificate.
    #[error("{0} PEM holds no certificate")]
    NoCertificate(&'static str),
    /// A CA certificate could not be used as a trust anchor.
    #[error("CA certificate cannot be used as a trust anchor")]
    TrustAnchor(#[source] rustls::Error),
    /// The client certificate verifier could not be built.
    #[error("client certificate verifier could not be built")]
    ClientVerifier(#[source] VerifierBuilderError),
    /// rustls refused the configuration (for example a key that does not
    /// match its certificate).
    #[error("TLS configuration refused")]
    Config(#[source] rustls::Error),
    /// A PEM file could not be read.
    #[error("reading {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: std::io::Error,
    },
}

/// Builds the relay's (or any Nest server's) TLS configuration.
///
/// `ca_pem` holds the CA certificate(s) client certificates must chain to;
/// `cert_pem` the server's certificate (then any intermediates); `key_pem`
/// its private key.
///
/// # Errors
/// [`TlsError`] when a PEM input is malformed or empty, or rustls refuses
/// the combination (for example a key that is not the certificate's).
pub fn server_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(root_store(ca_pem)?),
        provider.clone(),
    )
    // Enroll is called before the agent has a certificate.
    .allow_unauthenticated()
    .build()
    .map_err(TlsError::ClientVerifier)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Config)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certificate_chain(cert_pem)?, private_key(key_pem)?)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(config)
}

/// Builds a client TLS configuration that trusts only Nest's CA.
///
/// `identity` is `(certificate PEM, private key PEM)` to authenticate with,
/// or `None` for an agent that has not enrolled yet. Connect with
/// [`crate::identity::RELAY_SERVER_NAME`] as the server name to reach a
/// relay.
///
/// # Errors
/// [`TlsError`] when a PEM input is malformed or empty, or rustls refuses
/// the key.
pub fn client_config(
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Config)?
        .with_root_certificates(root_store(ca_pem)?);
    let mut config = match identity {
        Some((cert_pem, key_pem)) => builder
            .with_client_auth_cert(certificate_chain(cert_pem)?, private_key(key_pem)?)
            .map_err(TlsError::Config)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(config)
}

/// Reads a PEM file (certificate or key) into a string. Blocking.
///
/// # Errors
/// [`TlsError::Io`] when the file cannot be read or is not UTF-8.
pub fn load_pem_file(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        source,
    })
}

/// The installed default provider, or aws-lc-rs when none is installed
/// (unit tests, library users that forgot), without installing it: a
/// global install is the binaries' job.
fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

fn certificates(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem { what, source })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(what));
    }
    Ok(certs)
}

fn root_store(ca_pem: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca_pem, "CA certificate")? {
        roots.add(cert).map_err(TlsError::TrustAnchor)?;
    }
    Ok(roots)
}

fn certificate_chain(cert_pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    certificates(cert_pem, "certificate")
}

fn private_key(key_pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|source| TlsError::Pem {
        what: "private key",
        source,
    })
}
