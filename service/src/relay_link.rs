//! The service's long-lived links to its relay, each redialling with
//! backoff: the signer that answers agents' enrollments and renewals, the
//! agent link every command and stream goes through, and the watch feed of
//! agent sessions and container events that follows it. The CA the signer
//! uses lives in [`crate::ca`]; the commands in [`crate::agents`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use nest_core::backoff::Backoff;
use nest_relay::client::{ClientTls, RelayClient};
use nest_relay::signing::SigningAuthority;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agents::{AgentEvent, AgentLink, RelayAgents};

/// First wait before the signer link is redialled.
const SIGNING_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// Longest wait before the signer link is redialled.
const SIGNING_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A signer link that lived this long was healthy: the backoff starts over.
const SIGNING_HEALTHY_AFTER: Duration = Duration::from_secs(10);

/// Why the relay link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RelayLinkError {
    /// The relay's address could not be dialled (bad address).
    #[error("relay client")]
    Client(#[source] nest_relay::client::RelayError),
}

impl RelayLinkError {
    /// The classification of this error.
    pub fn kind(&self) -> nest_core::ErrorKind {
        match self {
            Self::Client(e) => e.kind(),
        }
    }
}

/// The service's links to one relay.
pub struct RelayLink {
    /// Commands and streams to agents.
    pub agents: Arc<dyn AgentLink>,
}

impl RelayLink {
    /// Dials the relay at `addr` lazily with the service's `tls`, and
    /// starts the signer and watch loops on `tasks`; agent events go to
    /// `events`.
    ///
    /// # Errors
    /// [`RelayLinkError::Client`] for an unusable address or TLS material.
    pub fn start(
        addr: SocketAddr,
        tls: &ClientTls,
        signer: Arc<dyn SigningAuthority>,
        events: mpsc::Sender<AgentEvent>,
        tasks: &TaskTracker,
        cancel: CancellationToken,
    ) -> Result<Self, RelayLinkError> {
        let channel = nest_relay::client::dial_lazy(&addr.to_string(), tls)
            .map_err(RelayLinkError::Client)?;
        let client = RelayClient::from_channel(channel);
        tasks.spawn(serve_signing(client.clone(), signer, cancel.clone()));
        let agents: Arc<dyn AgentLink> = Arc::new(RelayAgents::new(client));
        tasks.spawn(crate::agents::follow(agents.clone(), events, cancel));
        Ok(Self { agents })
    }
}

async fn serve_signing(
    client: RelayClient,
    signer: Arc<dyn SigningAuthority>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(SIGNING_BACKOFF_INITIAL, SIGNING_BACKOFF_MAX);
    while !cancel.is_cancelled() {
        let started = tokio::time::Instant::now();
        if let Err(e) = client.serve_signing(signer.clone(), cancel.clone()).await {
            tracing::warn!(error = %e, "certificate signer link to the relay broke");
        }
        if started.elapsed() > SIGNING_HEALTHY_AFTER {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}
