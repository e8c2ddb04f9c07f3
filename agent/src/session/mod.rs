//! One session with the relay: hello with the inventory, then commands,
//! streams, events, heartbeats and certificate renewal until it breaks.
//!
//! - this file: dialling, the hello exchange, heartbeats and renewal; it
//!   is the edge where messages cross [`crate::convert`];
//! - [`commands`]: carrying out commands, ordered per container;
//! - [`streams`]: logs, exec, attach and image loads with flow control;
//! - [`coalesce`]: joining ready output into fewer frames for them.

pub mod coalesce;
pub mod commands;
pub mod streams;

use std::time::{Duration, SystemTime};

use nest_core::ErrorKind;
use nest_core::process::error_chain;
use nest_relay::client::dial;
use nest_relay::proto::agent_relay_client::AgentRelayClient;
use nest_relay::version::{self, AGENT_FEATURES, PROTOCOL_VERSION, RELEASE};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::AgentConfig;
use crate::convert;
use crate::credentials::{self, Credentials};
use crate::docker::Engine;
use crate::log_fields::INSTANCE_ID;
use crate::model::{ContainerEvent, Hello, Inbound, Outbound, RenewOutcome};

use self::commands::Dispatcher;
use self::streams::Streams;

/// Messages queued towards the relay; producers wait when it is full.
const OUTBOUND_CAPACITY: usize = 256;
/// How long the relay may take to answer hello.
const HELLO_ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Shortest heartbeat interval accepted from the relay.
const MIN_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);
/// Largest message either side may send, in bytes.
const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;
/// Heartbeats the relay may miss before the session is considered dead.
const MISSED_HEARTBEATS: u32 = 3;
/// Retry delay after a failed renewal attempt.
const RENEW_RETRY: Duration = Duration::from_secs(60);
/// A session that lasted this long counts as healthy: reconnect at once.
pub const HEALTHY_SESSION: Duration = Duration::from_secs(10);
/// How often the session checks that the local engine answers.
const ENGINE_CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// How long one such check waits for the engine.
const ENGINE_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// The action word of the events that report a container's state after
/// the engine came back (its own events were missed meanwhile).
const RESYNC_ACTION: &str = "resync";

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The relay could not be reached or refused the session.
    #[error("cannot open a session with the relay")]
    Connect(#[source] nest_relay::client::RelayError),
    /// The relay speaks an incompatible protocol or broke it.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The engine could not list containers for the hello.
    #[error("cannot read the inventory from the engine")]
    Inventory(#[source] crate::docker::DockerError),
    /// The transport failed mid-session.
    #[error("session transport failed")]
    Transport(#[source] tonic::Status),
    /// Nothing was heard from the relay for too long.
    #[error("no message from the relay for {0:?}")]
    Silent(Duration),
}

impl SessionError {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Connect(e) => e.kind(),
            Self::Protocol(_) => ErrorKind::Invalid,
            Self::Inventory(e) => e.kind(),
            Self::Transport(_) | Self::Silent(_) => ErrorKind::Unavailable,
        }
    }
}

/// How a session ended without error.
pub enum SessionEnd {
    /// The agent is shutting down.
    Shutdown,
    /// The relay closed the session (it restarts, or a newer session won).
    Closed,
}

/// What a session needs from the agent.
pub struct SessionContext<'a> {
    /// The agent's settings.
    pub config: &'a AgentConfig,
    /// Nest's CA certificate, PEM.
    pub ca_pem: &'a str,
    /// The local engine.
    pub engine: &'a Engine,
    /// Events waiting to be sent.
    pub events: &'a mut mpsc::Receiver<ContainerEvent>,
    /// Tracks every task the session starts.
    pub tasks: &'a TaskTracker,
    /// Cancelled when the agent shuts down.
    pub shutdown: &'a CancellationToken,
}

fn heartbeat(seq: u64) -> Outbound {
    Outbound::Heartbeat {
        seq,
        sent_at: SystemTime::now(),
    }
}

fn until(at: OffsetDateTime) -> Duration {
    let left = at - OffsetDateTime::now_utc();
    Duration::try_from(left).unwrap_or(Duration::ZERO)
}

/// Runs one session to its end, in a `session` span naming the instance;
/// the spans of its commands and streams are children of it.
/// `credentials` is updated when the certificate is renewed during the
/// session.
///
/// # Errors
/// [`SessionError`] saying why the session could not start or broke.
#[tracing::instrument(name = "session", skip_all, fields({ INSTANCE_ID } = %ctx.config.instance_id))]
pub async fn run(
    ctx: SessionContext<'_>,
    credentials: &mut Credentials,
) -> Result<SessionEnd, SessionError> {
    let tls = credentials.client_tls(ctx.config, ctx.ca_pem);
    let channel = dial(&ctx.config.relay_addr, &tls)
        .await
        .map_err(SessionError::Connect)?;
    let mut client = AgentRelayClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);

    let inventory = ctx.engine.list().await.map_err(SessionError::Inventory)?;
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_CAPACITY);
    let hello = Outbound::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        agent_version: RELEASE.to_owned(),
        inventory,
        docker_version: ctx.engine.docker_version().to_owned(),
        docker_api_version: ctx.engine.api_version().to_owned(),
        features: AGENT_FEATURES.iter().map(|f| (*f).to_owned()).collect(),
    });
    out_tx
        .send(hello)
        .await
        .map_err(|_| SessionError::Protocol("outbound queue closed".to_owned()))?;
    let mut inbound = client
        .connect(ReceiverStream::new(out_rx).map(convert::agent_message))
        .await
        .map_err(|s| SessionError::Connect(s.into()))?
        .into_inner();

    let first = match tokio::time::timeout(HELLO_ACK_TIMEOUT, inbound.message()).await {
        Ok(Ok(first)) => first.and_then(convert::relay_message),
        Ok(Err(status)) => return Err(SessionError::Connect(status.into())),
        Err(_) => return Err(SessionError::Silent(HELLO_ACK_TIMEOUT)),
    };
    let ack = match first {
        Some(Inbound::HelloAck(ack)) => ack,
        _ => {
            return Err(SessionError::Protocol(
                "expected hello_ack first".to_owned(),
            ));
        }
    };
    if !version::is_supported(ack.protocol_version) {
        return Err(SessionError::Protocol(format!(
            "relay speaks protocol version {}; this agent speaks {}..={}",
            ack.protocol_version,
            version::MIN_PROTOCOL_VERSION,
            PROTOCOL_VERSION
        )));
    }
    let heartbeat_interval = ack.heartbeat_interval.max(MIN_HEARTBEAT_INTERVAL);
    tracing::info!(
        relay_version = %ack.relay_version,
        { INSTANCE_ID } = %ack.instance_id,
        "connected to the relay"
    );

    let session_cancel = ctx.shutdown.child_token();
    let _stop_tasks = session_cancel.clone().drop_guard();
    let mut dispatcher = Dispatcher::new(
        ctx.engine.clone(),
        out_tx.clone(),
        ctx.tasks.clone(),
        session_cancel.clone(),
    );
    let streams = Streams::new(
        ctx.engine.clone(),
        out_tx.clone(),
        ctx.tasks.clone(),
        session_cancel.clone(),
    );

    let silence_limit = heartbeat_interval * MISSED_HEARTBEATS;
    let mut ticker = tokio::time::interval(heartbeat_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = tokio::time::Instant::now();
    let mut seq = 0u64;
    let mut renew_sleep = Box::pin(tokio::time::sleep(until(credentials.renew_at())));
    // The hello listed the engine's containers, so it answered then.
    let mut engine = EngineWatch::new(ctx.engine.clone());
    let mut engine_tick = tokio::time::interval(ENGINE_CHECK_INTERVAL);
    engine_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut renewal_pending: Option<u64> = None;
    let mut renew_seq = 0u64;

    loop {
        tokio::select! {
            () = ctx.shutdown.cancelled() => return Ok(SessionEnd::Shutdown),
            _ = ticker.tick() => {
                if last_heard.elapsed() > silence_limit {
                    return Err(SessionError::Silent(silence_limit));
                }
                seq += 1;
                // A full queue already shows we are alive.
                let _ = out_tx.try_send(heartbeat(seq));
            }
            Some(event) = ctx.events.recv() => {
                if out_tx.send(Outbound::Event(event)).await.is_err() {
                    return Ok(SessionEnd::Closed);
                }
            }
            _ = engine_tick.tick() => {
                for message in engine.check().await {
                    if out_tx.send(message).await.is_err() {
                        return Ok(SessionEnd::Closed);
                    }
                }
            }
            () = &mut renew_sleep, if renewal_pending.is_none() => {
                renew_seq += 1;
                match credentials.csr_pem(&ctx.config.instance_id) {
                    Ok(csr_pem) => {
                        let message = Outbound::Renew { renewal_id: renew_seq, csr_pem };
                        if out_tx.send(message).await.is_err() {
                            return Ok(SessionEnd::Closed);
                        }
                        renewal_pending = Some(renew_seq);
                        tracing::info!(not_after = %credentials.not_after, "renewing the agent certificate");
                    }
                    Err(e) => {
                        tracing::warn!(error = %error_chain(&e), "cannot build a renewal request");
                        renew_sleep.as_mut().reset(tokio::time::Instant::now() + RENEW_RETRY);
                    }
                }
            }
            message = inbound.message() => {
                let message = match message {
                    Ok(Some(message)) => message,
                    Ok(None) => return Ok(SessionEnd::Closed),
                    Err(status) => return Err(SessionError::Transport(status)),
                };
                last_heard = tokio::time::Instant::now();
                let Some(message) = convert::relay_message(message) else {
                    continue;
                };
                match message {
                    Inbound::Command(request) => dispatcher.dispatch(request),
                    Inbound::StreamOpen(request) => streams.open(request),
                    Inbound::StreamInput { stream, input } => streams.input(stream, input),
                    Inbound::Credit { stream, frames } => streams.credit(stream, frames),
                    Inbound::Renewed { renewal_id, outcome } => {
                        if renewal_pending != Some(renewal_id) {
                            continue;
                        }
                        renewal_pending = None;
                        let next = match outcome {
                            RenewOutcome::Certificate(pem) => {
                                match credentials::store_certificate(
                                    &ctx.config.state_dir,
                                    &ctx.config.instance_id,
                                    credentials.key_pem().to_owned(),
                                    pem,
                                ).await {
                                    Ok(renewed) => {
                                        *credentials = renewed;
                                        tracing::info!(not_after = %credentials.not_after, "agent certificate renewed");
                                        tokio::time::Instant::now() + until(credentials.renew_at())
                                    }
                                    Err(e) => {
                                        tracing::warn!(error = %error_chain(&e), "renewed certificate unusable");
                                        tokio::time::Instant::now() + RENEW_RETRY
                                    }
                                }
                            }
                            RenewOutcome::Refused(failure) => {
                                tracing::warn!(error = %failure.message, "certificate renewal refused");
                                tokio::time::Instant::now() + RENEW_RETRY
                            }
                            RenewOutcome::Empty => tokio::time::Instant::now() + RENEW_RETRY,
                        };
                        renew_sleep.as_mut().reset(next);
                    }
                    Inbound::Heartbeat => {}
                    Inbound::HelloAck(_) => {
                        tracing::debug!("ignoring a second hello_ack");
                    }
                }
            }
        }
    }
}

/// Watches whether the local engine answers, and says so when it changes:
/// the service then marks the instance and its containers, instead of
/// taking the engine's failures for a missing agent.
struct EngineWatch {
    engine: Engine,
    healthy: bool,
}

impl EngineWatch {
    fn new(engine: Engine) -> Self {
        Self {
            engine,
            healthy: true,
        }
    }

    /// Pings the engine; the messages that report a change. When the
    /// engine answers again, every container's state follows (as `resync`
    /// events), since events were missed while it was away.
    async fn check(&mut self) -> Vec<Outbound> {
        let pinged = tokio::time::timeout(ENGINE_CHECK_TIMEOUT, self.engine.ping()).await;
        let failure = match pinged {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(error_chain(&e)),
            Err(_) => Some(format!(
                "the engine did not answer a ping within {ENGINE_CHECK_TIMEOUT:?}"
            )),
        };
        match (self.healthy, failure) {
            (true, Some(reason)) => {
                tracing::warn!(%reason, "the container engine is not answering");
                self.healthy = false;
                vec![Outbound::EngineHealth {
                    healthy: false,
                    reason,
                }]
            }
            (false, None) => {
                // Its containers are reported before it is called healthy,
                // so their states are current when the service believes it.
                let states = match self.engine.list().await {
                    Ok(states) => states,
                    Err(e) => {
                        tracing::info!(error = %error_chain(&e), "the engine answers pings but not a list yet");
                        return Vec::new();
                    }
                };
                tracing::info!(
                    containers = states.len(),
                    "the container engine answers again"
                );
                self.healthy = true;
                let mut messages: Vec<Outbound> = states
                    .into_iter()
                    .map(|state| {
                        Outbound::Event(ContainerEvent {
                            uuid: state.uuid.clone(),
                            docker_id: state.docker_id.clone(),
                            action: RESYNC_ACTION.to_owned(),
                            exit_code: None,
                            time_nanos: 0,
                            state: Some(state),
                        })
                    })
                    .collect();
                messages.push(Outbound::EngineHealth {
                    healthy: true,
                    reason: String::new(),
                });
                messages
            }
            _ => Vec::new(),
        }
    }
}
