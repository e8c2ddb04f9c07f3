//! The relay server: one TLS 1.3 listener serving `AgentRelay` to agents and
//! `RelayControl` to the service.
//!
//! Client certificates are optional at the TLS layer only because `Enroll`
//! comes before an agent has one; every other call checks the verified
//! certificate's role itself (`auth.rs`). A certificate that is expired or
//! from another CA fails the handshake.
//!
//! Layout:
//! - `auth.rs`: the caller's role, from its verified certificate;
//! - `hub.rs`: live sessions, the watch feed and certificate signers;
//! - `session.rs`: one agent session: commands in flight and stream routes;
//! - `agent_service.rs`: enrollment and the agent's `Connect` stream;
//! - `control_service.rs`: the service's commands, streams, watch, signing;
//! - `limits.rs`: what a peer may hold before it proved anything (caps per
//!   source and in all, the first-request and idle deadlines).

mod agent_service;
mod auth;
mod control_service;
mod hub;
mod limits;
mod session;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ConnectionLimits;
use crate::proto::agent_relay_server::AgentRelayServer;
use crate::proto::relay_control_server::RelayControlServer;
use limits::{Bounded, Connections};

/// Shortest time between two warnings about refused connections.
const REFUSAL_WARN_INTERVAL: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the gRPC server to pick them up.
const ACCEPTED_QUEUE: usize = 64;
/// HTTP/2 keepalive, so a vanished peer's connection is noticed even when
/// no application heartbeat would be sent.
const HTTP2_KEEPALIVE: Duration = Duration::from_secs(30);
/// Largest gRPC message accepted: comfortably above one stream chunk or a
/// full container inventory.
const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// What the relay server needs to run.
pub struct RelaySettings {
    /// TLS settings: the relay's certificate and the CA that clients chain to.
    pub tls: rustls::ServerConfig,
    /// Heartbeat interval for agent sessions.
    pub heartbeat_interval: Duration,
    /// Timeout for commands that name none.
    pub command_timeout: Duration,
    /// Time sessions and streams get to finish after shutdown begins.
    pub shutdown_grace: Duration,
    /// What peers may hold before they proved anything.
    pub limits: ConnectionLimits,
}

/// Why the relay server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The gRPC server failed.
    #[error("relay gRPC server failed")]
    Grpc(#[source] tonic::transport::Error),
}

/// Serves the relay on `listener` until `shutdown` completes.
///
/// Shutdown stops accepting, ends every session and stream (agents then
/// reconnect elsewhere or later), and waits up to the grace period for
/// tasks to finish.
///
/// # Errors
/// [`ServeError`] when the gRPC server fails.
pub async fn run(
    settings: RelaySettings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    let hub = Arc::new(hub::Hub::new());

    let mut tls = settings.tls;
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let connections = Connections::new(&settings.limits);
    let (accepted_tx, accepted_rx) = mpsc::channel(ACCEPTED_QUEUE);
    tasks.spawn(accept_loop(
        Door {
            listener,
            acceptor,
            connections: connections.clone(),
            handshake_timeout: settings.limits.first_request_timeout.get(),
        },
        accepted_tx,
        tasks.clone(),
        cancel.clone(),
    ));

    let agents = agent_service::AgentService {
        hub: hub.clone(),
        tasks: tasks.clone(),
        shutdown: cancel.clone(),
        heartbeat_interval: settings.heartbeat_interval,
    };
    let control = control_service::ControlService {
        hub: hub.clone(),
        tasks: tasks.clone(),
        shutdown: cancel.clone(),
        command_timeout: settings.command_timeout,
    };
    let server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(HTTP2_KEEPALIVE))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .tcp_nodelay(true)
        .layer(limits::TrackRequests { connections })
        .add_service(
            AgentRelayServer::new(agents)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            RelayControlServer::new(control)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .serve_with_incoming_shutdown(
            ReceiverStream::new(accepted_rx),
            cancel.clone().cancelled_owned(),
        );
    tokio::pin!(server);

    let served = tokio::select! {
        served = &mut server => served,
        () = shutdown => {
            tracing::info!("relay shutting down");
            cancel.cancel();
            for session in hub.sessions() {
                hub.unregister(&session, "relay shutting down");
            }
            match tokio::time::timeout(settings.shutdown_grace, &mut server).await {
                Ok(served) => served,
                Err(_) => {
                    tracing::warn!(grace = ?settings.shutdown_grace, "connections still open at exit");
                    Ok(())
                }
            }
        }
    };
    cancel.cancel();
    tasks.close();
    if tokio::time::timeout(settings.shutdown_grace, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?settings.shutdown_grace, "relay tasks still running at exit");
    }
    served.map_err(ServeError::Grpc)
}

/// How connections get in: the listener, TLS, and the caps they are
/// admitted against.
struct Door {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    connections: Arc<Connections>,
    handshake_timeout: Duration,
}

/// Accepts TCP connections, admits them against the caps, and completes
/// their TLS handshakes off the accept path, so one slow client cannot
/// hold up the others.
async fn accept_loop(
    door: Door,
    accepted: mpsc::Sender<Result<TlsStream<Bounded<TcpStream>>, std::io::Error>>,
    tasks: TaskTracker,
    cancel: CancellationToken,
) {
    let mut failures =
        nest_core::backoff::Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
    let mut refused = 0u64;
    let mut last_warned: Option<tokio::time::Instant> = None;
    loop {
        let accepted_conn = tokio::select! {
            () = cancel.cancelled() => return,
            conn = door.listener.accept() => conn,
        };
        let (tcp, peer) = match accepted_conn {
            Ok(conn) => {
                failures.reset();
                conn
            }
            Err(e) => {
                // Usually EMFILE: wait rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(failures.next_delay()).await;
                continue;
            }
        };
        let admission = match door.connections.admit(peer) {
            Ok(admission) => admission,
            Err(refusal) => {
                // Dropping the socket closes it at once.
                drop(tcp);
                refused += 1;
                tracing::debug!(%peer, reason = %refusal, "connection refused");
                if last_warned.is_none_or(|at| at.elapsed() >= REFUSAL_WARN_INTERVAL) {
                    tracing::warn!(%peer, reason = %refusal, refused, "refusing connections over the relay's limits");
                    last_warned = Some(tokio::time::Instant::now());
                    refused = 0;
                }
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let tcp = Bounded::new(tcp, admission);
        let acceptor = door.acceptor.clone();
        let accepted = accepted.clone();
        let cancel = cancel.clone();
        let handshake_timeout = door.handshake_timeout;
        tasks.spawn(async move {
            // The socket's own deadline bounds the handshake too; this
            // timeout only names the failure.
            let handshake = tokio::time::timeout(handshake_timeout, acceptor.accept(tcp));
            let stream = tokio::select! {
                () = cancel.cancelled() => return,
                result = handshake => result,
            };
            match stream {
                Ok(Ok(stream)) => {
                    let _ = accepted.send(Ok(stream)).await;
                }
                Ok(Err(e)) => log_refused(peer, &e),
                Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

fn log_refused(peer: SocketAddr, error: &std::io::Error) {
    tracing::info!(%peer, error = %error, "TLS handshake refused");
}
