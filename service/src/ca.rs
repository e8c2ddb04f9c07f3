//! Nest's certificate authority on the service side: loading (or creating)
//! the CA under `<state_dir>/pki/`, issuing the embedded relay's and the
//! service's own certificates at every start, issuing stand-alone relays'
//! certificates, and the signer that answers agents' enrollments and
//! renewals, and the Docker endpoint's server TLS.
//!
//! The relay's and the service's certificates are issued afresh at every
//! start (they are cheap, and this way a changed relay address is always in
//! the certificate). This module produces TLS material only; it never dials
//! or serves anything.

mod docker_client;

pub use docker_client::{
    CertificateRefusal, ClientCertificate, ClientCertificateJudge, ProvenKeyVerifier,
    VerifiedSerial,
};

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nest_pki::{
    CertificateAuthority, DEFAULT_AGENT_CERT_LIFETIME, DEFAULT_SERVER_CERT_LIFETIME, IssueRequest,
    Signer, TokenStore, Validity,
};
use nest_relay::client::ClientTls;
use nest_relay::identity::PeerIdentity;

/// Why the CA or a certificate derived from it could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The CA could not be loaded or created.
    #[error("certificate authority in {dir}")]
    Ca {
        /// The PKI directory.
        dir: PathBuf,
        /// What failed.
        #[source]
        source: nest_pki::PkiError,
    },
    /// A certificate could not be issued.
    #[error("issuing the {what} certificate")]
    Issue {
        /// Which certificate.
        what: &'static str,
        /// What failed.
        #[source]
        source: nest_pki::PkiError,
    },
    /// The relay's TLS configuration could not be built.
    #[error("relay TLS configuration")]
    Tls(#[source] nest_relay::tls::TlsError),
    /// A relay name is not a valid identity name.
    #[error("invalid relay name {0:?}")]
    Name(String, #[source] nest_relay::identity::IdentityError),
    /// The Docker endpoint's TLS configuration could not be built.
    #[error("Docker endpoint TLS configuration")]
    DockerTls(#[source] rustls::Error),
    /// The Docker endpoint's client certificate verifier could not be built.
    #[error("Docker endpoint client certificate verifier")]
    DockerVerifier(#[source] rustls::server::VerifierBuilderError),
    /// A PEM the CA just produced could not be read back.
    #[error("reading back a PEM for the Docker endpoint")]
    DockerPem(#[source] rustls_pki_types::pem::Error),
}

impl CaError {
    /// The classification of this error: a bad relay name is the caller's
    /// mistake, anything else is the state directory's.
    pub fn kind(&self) -> nest_core::ErrorKind {
        match self {
            Self::Name(..) => nest_core::ErrorKind::Invalid,
            Self::Ca { .. }
            | Self::Issue { .. }
            | Self::Tls(_)
            | Self::DockerTls(_)
            | Self::DockerVerifier(_)
            | Self::DockerPem(_) => nest_core::ErrorKind::Internal,
        }
    }
}

/// Nest's CA and the credentials the service derives from it.
pub struct ServicePki {
    /// The CA (its key signs agent certificates).
    pub ca: Arc<CertificateAuthority>,
    /// How the service dials relays.
    pub service_tls: ClientTls,
    /// The embedded relay's TLS configuration.
    pub relay_tls: rustls::ServerConfig,
}

impl ServicePki {
    /// Loads (or creates) the CA under `<state_dir>/pki` and issues the
    /// relay's certificate for `relay_ips` plus `relay.nest`, and the
    /// service's own certificate.
    ///
    /// # Errors
    /// [`CaError`] when the CA directory is unusable or issuing fails.
    pub fn bootstrap(state_dir: &Path, relay_ips: Vec<IpAddr>) -> Result<Self, CaError> {
        let dir = state_dir.join("pki");
        let ca = CertificateAuthority::load_or_create(&dir)
            .map_err(|source| CaError::Ca { dir, source })?;
        let issue = |what, identity, ip_addresses| {
            ca.issue(&IssueRequest {
                identity,
                dns_names: vec![],
                ip_addresses,
                validity: Validity::starting_now(DEFAULT_SERVER_CERT_LIFETIME),
            })
            .map_err(|source| CaError::Issue { what, source })
        };
        let relay_identity =
            PeerIdentity::relay("embedded").expect("a constant, valid identity name");
        let service_identity =
            PeerIdentity::service("nest-service").expect("a constant, valid identity name");
        let relay = issue("relay", relay_identity, relay_ips)?;
        let service = issue("service", service_identity, vec![])?;
        let relay_tls = nest_relay::tls::server_config(
            ca.certificate_pem(),
            &relay.certificate_pem,
            relay.private_key_pem.expose(),
        )
        .map_err(CaError::Tls)?;
        let service_tls = ClientTls {
            ca_pem: ca.certificate_pem().to_owned(),
            identity: Some((
                service.certificate_pem,
                service.private_key_pem.expose().clone(),
            )),
            server_name: None,
        };
        Ok(Self {
            ca: Arc::new(ca),
            service_tls,
            relay_tls,
        })
    }

    /// The signer the relay forwards enrollments and renewals to.
    pub fn signer(&self, tokens: Arc<dyn TokenStore>) -> Arc<Signer> {
        Arc::new(Signer::new(
            self.ca.clone(),
            tokens,
            DEFAULT_AGENT_CERT_LIFETIME,
        ))
    }
}

/// Issues a stand-alone relay's certificate from the CA in
/// `<state_dir>/pki` (created if missing); returns the CA certificate and
/// the relay's certificate and key.
///
/// # Errors
/// [`CaError`] when the CA is unusable, the name is invalid or issuing
/// fails.
pub fn issue_relay(
    state_dir: &Path,
    name: &str,
    ip_addresses: Vec<IpAddr>,
    dns_names: Vec<String>,
) -> Result<(String, nest_pki::IssuedCertificate), CaError> {
    let dir = state_dir.join("pki");
    let ca =
        CertificateAuthority::load_or_create(&dir).map_err(|source| CaError::Ca { dir, source })?;
    let identity = PeerIdentity::relay(name).map_err(|e| CaError::Name(name.to_owned(), e))?;
    let issued = ca
        .issue(&IssueRequest {
            identity,
            dns_names,
            ip_addresses,
            validity: Validity::starting_now(DEFAULT_SERVER_CERT_LIFETIME),
        })
        .map_err(|source| CaError::Issue {
            what: "relay",
            source,
        })?;
    Ok((ca.certificate_pem().to_owned(), issued))
}

/// The Docker endpoint's TLS and its judge of client certificates.
pub struct DockerTls {
    /// The server configuration: any client certificate whose key the
    /// client proves, or none, passes the handshake.
    pub config: rustls::ServerConfig,
    /// Decides, per connection, whether its certificate is Nest's.
    pub judge: ClientCertificateJudge,
}

/// The Docker endpoint's TLS: its server certificate for `public_host`,
/// signed by Nest's CA (the `ca.pem` clients get with their certificate).
/// A client may present any certificate, or none (and authenticate with a
/// token); the chain is judged after the handshake by
/// [`DockerTls::judge`], so that a refusal is said in Docker's error body.
///
/// # Errors
/// [`CaError`] when issuing fails or rustls refuses the configuration.
pub fn docker_server_tls(
    ca: &CertificateAuthority,
    public_host: &str,
) -> Result<DockerTls, CaError> {
    use rustls_pki_types::pem::PemObject;
    let (ip_addresses, dns_names) = match public_host.parse::<IpAddr>() {
        Ok(ip) => (vec![ip], vec![]),
        Err(_) => (vec![], vec![public_host.to_owned()]),
    };
    let identity =
        PeerIdentity::service("docker-endpoint").expect("a constant, valid identity name");
    let issued = ca
        .issue(&IssueRequest {
            identity,
            dns_names,
            ip_addresses,
            validity: Validity::starting_now(DEFAULT_SERVER_CERT_LIFETIME),
        })
        .map_err(|source| CaError::Issue {
            what: "Docker endpoint",
            source,
        })?;
    let chain = vec![
        rustls_pki_types::CertificateDer::from_pem_slice(issued.certificate_pem.as_bytes())
            .map_err(CaError::DockerPem)?,
    ];
    let key =
        rustls_pki_types::PrivateKeyDer::from_pem_slice(issued.private_key_pem.expose().as_bytes())
            .map_err(CaError::DockerPem)?;
    let (verifier, judge) = docker_client_verifiers(ca)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(CaError::DockerTls)?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(chain, key)
        .map_err(CaError::DockerTls)?;
    // Hijacked attach and exec are HTTP/1.1 upgrades.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(DockerTls { config, judge })
}

/// The handshake's verifier and the judge, both over one WebPki verifier
/// trusting only Nest's CA.
fn docker_client_verifiers(
    ca: &CertificateAuthority,
) -> Result<(ProvenKeyVerifier, ClientCertificateJudge), CaError> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let ca_der = rustls_pki_types::CertificateDer::from_pem_slice(ca.certificate_pem().as_bytes())
        .map_err(CaError::DockerPem)?;
    roots.add(ca_der).map_err(CaError::DockerTls)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let webpki =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .allow_unauthenticated()
            .build()
            .map_err(CaError::DockerVerifier)?;
    Ok((
        ProvenKeyVerifier::new(webpki.clone()),
        ClientCertificateJudge::new(webpki),
    ))
}
