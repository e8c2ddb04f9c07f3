//! nest-agent: runs in each instance, holds one session to a relay and
//! carries out the service's commands on the local Docker engine.
//!
//! The agent only ever touches containers it created (labelled with Nest's
//! container uuid and its instance id), and restarting it never restarts a
//! container: on every (re)connect it reports what the engine has, as is.
//!
//! # Layout
//! - [`config`]: the TOML settings cloud-init writes;
//! - [`model`]: the agent's own terms for what it is asked to do and what
//!   it reports (specs, commands, streams, container state and events);
//! - [`convert`]: the only mapping between the wire protocol and [`model`],
//!   checking what comes from the wire;
//! - [`credentials`]: the local key pair, enrollment and the certificate;
//! - [`session`]: one session with the relay (hello, heartbeats, renewal),
//!   with [`session::commands`] carrying out commands, ordered per
//!   container, and [`session::streams`] serving logs, exec, attach and
//!   image loads with flow control;
//! - [`events`]: the engine's container events, buffered between sessions;
//! - [`docker`]: the only module that talks to dockerd;
//! - [`log_fields`]: the names of the fields in the agent's spans and log
//!   lines (`request_id`, `container_id`, ...), spelled once.
//!
//! Every command and stream runs in a span carrying the service's
//! `request_id` and, when known, the `container_id`, inside the session's
//! span carrying the `instance_id`.
#![warn(missing_docs)]

pub mod config;
pub mod convert;
pub mod credentials;
pub mod docker;
pub mod events;
pub mod log_fields;
pub mod model;
pub mod session;

use std::time::Duration;

use nest_core::backoff::Backoff;
use nest_core::process::error_chain;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::AgentConfig;
use crate::credentials::{Credentials, CredentialsError};
use crate::docker::{DockerError, Engine};
use crate::log_fields::INSTANCE_ID;
use crate::session::{SessionContext, SessionEnd};

/// Time given to in-flight commands and streams when the agent stops.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The CA certificate could not be read.
    #[error("cannot read the CA certificate {path}")]
    ReadCa {
        /// The configured CA file.
        path: std::path::PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// Key or certificate handling failed for good.
    #[error("agent credentials")]
    Credentials(#[from] CredentialsError),
    /// The engine could not be reached.
    #[error("docker engine")]
    Docker(#[from] DockerError),
}

/// Runs the agent until `shutdown` is cancelled.
///
/// # Errors
/// [`AgentError`] when the agent cannot go on: unreadable CA, a refused
/// enrollment, or an expired certificate without a token to enroll again.
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> Result<(), AgentError> {
    let ca_pem = tokio::fs::read_to_string(&config.ca_certificate)
        .await
        .map_err(|source| AgentError::ReadCa {
            path: config.ca_certificate.clone(),
            source,
        })?;
    let mut backoff = Backoff::new(config.reconnect_initial.get(), config.reconnect_max.get());

    let Some(engine) = connect_engine(&config, &shutdown, &mut backoff).await? else {
        return Ok(());
    };
    // A crash between a container's removal and its network's leaves an
    // empty network behind; nothing else would ever remove it.
    match engine
        .remove_unused_networks(docker::NETWORK_SWEEP_GRACE)
        .await
    {
        Ok(0) => {}
        Ok(removed) => tracing::info!(removed, "removed networks no container was on"),
        Err(e) => tracing::warn!(error = %error_chain(&e), "could not look for unused networks"),
    }
    let Some(mut credentials) = credentials(&config, &ca_pem, &shutdown, &mut backoff).await?
    else {
        return Ok(());
    };
    backoff.reset();

    let tasks = TaskTracker::new();
    let (events_tx, mut events_rx) = mpsc::channel(events::EVENT_BUFFER);
    let dropped = events::DroppedEvents::default();
    let events_span = tracing::info_span!("events", { INSTANCE_ID } = %config.instance_id);
    tasks.spawn(
        events::watch(engine.clone(), events_tx, dropped.clone(), shutdown.clone())
            .instrument(events_span),
    );

    loop {
        let started = tokio::time::Instant::now();
        let ctx = SessionContext {
            config: &config,
            ca_pem: &ca_pem,
            engine: &engine,
            events: &mut events_rx,
            tasks: &tasks,
            shutdown: &shutdown,
        };
        let ended = session::run(ctx, &mut credentials).await;
        match ended {
            Ok(SessionEnd::Shutdown) => break,
            Ok(SessionEnd::Closed) => tracing::info!("the relay closed the session"),
            Err(e) => tracing::warn!(error = %error_chain(&e), "session failed"),
        }
        if started.elapsed() >= session::HEALTHY_SESSION {
            backoff.reset();
        }
        if !credentials.is_valid_now() {
            tracing::error!(not_after = %credentials.not_after, "the agent certificate has expired");
            let Some(renewed) =
                self::credentials(&config, &ca_pem, &shutdown, &mut backoff).await?
            else {
                break;
            };
            credentials = renewed;
        }
        let delay = backoff.next_delay();
        tracing::info!(?delay, "reconnecting");
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(delay) => {}
        }
    }

    tasks.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?SHUTDOWN_GRACE, "agent tasks still running at exit");
    }
    if dropped.count() > 0 {
        tracing::info!(
            dropped = dropped.count(),
            "container events dropped while disconnected"
        );
    }
    Ok(())
}

/// Connects to the engine, waiting for it to come up (the agent may start
/// before dockerd on boot). `None` means shutdown came first.
async fn connect_engine(
    config: &AgentConfig,
    shutdown: &CancellationToken,
    backoff: &mut Backoff,
) -> Result<Option<Engine>, AgentError> {
    loop {
        match Engine::connect(&config.docker_socket, config.instance_id.clone()).await {
            Ok(engine) => {
                tracing::info!(
                    docker_version = engine.docker_version(),
                    api_version = engine.api_version(),
                    "connected to the docker engine"
                );
                return Ok(Some(engine));
            }
            Err(e) if e.kind().is_retryable() => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %error_chain(&e), ?delay, "docker engine not reachable yet");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(None),
                    () = tokio::time::sleep(delay) => {}
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The agent's credentials: the stored certificate if still valid, else a
/// fresh enrollment. `None` means shutdown came first.
async fn credentials(
    config: &AgentConfig,
    ca_pem: &str,
    shutdown: &CancellationToken,
    backoff: &mut Backoff,
) -> Result<Option<Credentials>, AgentError> {
    let (key_pem, stored) = credentials::load(&config.state_dir).await?;
    if let Some(stored) = stored.filter(Credentials::is_valid_now) {
        return Ok(Some(stored));
    }
    loop {
        match credentials::enroll(config, ca_pem, key_pem.clone()).await {
            Ok(credentials) => return Ok(Some(credentials)),
            Err(e) if e.is_retryable() => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %error_chain(&e), ?delay, "enrollment failed; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(None),
                    () = tokio::time::sleep(delay) => {}
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}
