//! The service's long-lived links to its relay: the signer that answers
//! enrollments and the watch feed of agent sessions and container events,
//! each redialling with backoff. The CA they use lives in [`crate::ca`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use nest_core::backoff::Backoff;
use nest_pki::Signer;
use nest_relay::client::RelayClient;
use nest_relay::proto;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Watch events queued for the service's consumer; when it falls behind,
/// the relay's watch ends with a resync request and is reopened.
pub const WATCH_QUEUE: usize = 1024;

/// Why the relay link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RelayLinkError {
    /// The relay's address could not be dialled (bad address).
    #[error("relay client")]
    Client(#[source] nest_relay::client::RelayError),
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
        pki: &crate::ca::ServicePki,
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
