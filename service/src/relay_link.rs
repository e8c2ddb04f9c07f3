//! The service's side of the relay: the CA bootstrap, the embedded relay,
//! and the long-lived links to it (the signer that answers enrollments and
//! the watch feed of agent sessions and container events).
//!
//! The CA lives in `<state_dir>/pki/`; the relay's and the service's own
//! certificates are issued afresh at every start (they are cheap, and this
//! way a changed relay address is always in the certificate).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nest_core::backoff::Backoff;
use nest_pki::{
    CertificateAuthority, DEFAULT_AGENT_CERT_LIFETIME, DEFAULT_SERVER_CERT_LIFETIME, IssueRequest,
    Signer, TokenStore, Validity,
};
use nest_relay::client::{ClientTls, RelayClient};
use nest_relay::identity::PeerIdentity;
use nest_relay::proto;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Watch events queued for the service's consumer; when it falls behind,
/// the relay's watch ends with a resync request and is reopened.
pub const WATCH_QUEUE: usize = 1024;

/// Why the PKI or the relay link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RelayLinkError {
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
    /// The relay's address could not be dialled (bad address).
    #[error("relay client")]
    Client(#[source] nest_relay::client::RelayError),
    /// A relay name is not a valid identity name.
    #[error("invalid relay name {0:?}")]
    Name(String, #[source] nest_relay::identity::IdentityError),
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
    /// [`RelayLinkError`] when the CA directory is unusable or issuing fails.
    pub fn bootstrap(state_dir: &Path, relay_ips: Vec<IpAddr>) -> Result<Self, RelayLinkError> {
        let dir = state_dir.join("pki");
        let ca = CertificateAuthority::load_or_create(&dir)
            .map_err(|source| RelayLinkError::Ca { dir, source })?;
        let issue = |what, identity, ip_addresses| {
            ca.issue(&IssueRequest {
                identity,
                dns_names: vec![],
                ip_addresses,
                validity: Validity::starting_now(DEFAULT_SERVER_CERT_LIFETIME),
            })
            .map_err(|source| RelayLinkError::Issue { what, source })
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
        .map_err(RelayLinkError::Tls)?;
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
/// [`RelayLinkError`] when the CA is unusable, the name is invalid or
/// issuing fails.
pub fn issue_relay(
    state_dir: &Path,
    name: &str,
    ip_addresses: Vec<IpAddr>,
    dns_names: Vec<String>,
) -> Result<(String, nest_pki::IssuedCertificate), RelayLinkError> {
    let dir = state_dir.join("pki");
    let ca = CertificateAuthority::load_or_create(&dir)
        .map_err(|source| RelayLinkError::Ca { dir, source })?;
    let identity =
        PeerIdentity::relay(name).map_err(|e| RelayLinkError::Name(name.to_owned(), e))?;
    let issued = ca
        .issue(&IssueRequest {
            identity,
            dns_names,
            ip_addresses,
            validity: Validity::starting_now(DEFAULT_SERVER_CERT_LIFETIME),
        })
        .map_err(|source| RelayLinkError::Issue {
            what: "relay",
            source,
        })?;
    Ok((ca.certificate_pem().to_owned(), issued))
}

/// The service's links to one relay: a control client, the signer loop and
/// the watch loop, each redialling with backoff.
pub struct RelayLink {
    /// Commands and streams to agents.
    pub client: RelayClient,
}

impl RelayLink {
    /// Dials the relay at `addr` lazily and starts the signer and watch
    /// loops on `tasks`; watch events go to `events`.
    ///
    /// # Errors
    /// [`RelayLinkError::Client`] for an unusable address or TLS material.
    pub fn start(
        addr: SocketAddr,
        pki: &ServicePki,
        signer: Arc<Signer>,
        events: mpsc::Sender<proto::WatchEvent>,
        tasks: &TaskTracker,
        cancel: CancellationToken,
    ) -> Result<Self, RelayLinkError> {
        let channel = nest_relay::client::dial_lazy(&addr.to_string(), &pki.service_tls)
            .map_err(RelayLinkError::Client)?;
        let client = RelayClient::from_channel(channel);
        tasks.spawn(serve_signing(client.clone(), signer, cancel.clone()));
        tasks.spawn(watch(client.clone(), events, cancel));
        Ok(Self { client })
    }
}

async fn pause(backoff: &mut Backoff, cancel: &CancellationToken) -> bool {
    tokio::select! {
        () = cancel.cancelled() => false,
        () = tokio::time::sleep(backoff.next_delay()) => true,
    }
}

fn relay_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
}

async fn serve_signing(client: RelayClient, signer: Arc<Signer>, cancel: CancellationToken) {
    let mut backoff = relay_backoff();
    while !cancel.is_cancelled() {
        let started = tokio::time::Instant::now();
        if let Err(e) = client.serve_signing(signer.clone(), cancel.clone()).await {
            tracing::warn!(error = %e, "certificate signer link to the relay broke");
        }
        if started.elapsed() > Duration::from_secs(10) {
            backoff.reset();
        }
        if !pause(&mut backoff, &cancel).await {
            return;
        }
    }
}

async fn watch(
    client: RelayClient,
    events: mpsc::Sender<proto::WatchEvent>,
    cancel: CancellationToken,
) {
    let mut backoff = relay_backoff();
    while !cancel.is_cancelled() {
        match client.watch().await {
            Ok(mut feed) => {
                backoff.reset();
                loop {
                    let next = tokio::select! {
                        () = cancel.cancelled() => return,
                        next = feed.message() => next,
                    };
                    match next {
                        Ok(Some(event)) => {
                            if events.send(event).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(status) => {
                            tracing::warn!(error = %status.message(), "relay watch ended; watching again");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "relay watch not available yet"),
        }
        if !pause(&mut backoff, &cancel).await {
            return;
        }
    }
}
