//! The `AgentRelay` gRPC service: enrollment and agent sessions.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status, Streaming};

use super::auth;
use super::hub::{Hub, SigningSubject};
use super::session::{SESSION_OUTBOUND_CAPACITY, Session, Violation};
use crate::convert::WireErrorKind;
use crate::identity::Role;
use crate::proto::agent_relay_server::AgentRelay;
use crate::proto::{self, agent_message, relay_message};
use crate::version::{self, MAX_CHUNK_BYTES, PROTOCOL_VERSION, RELEASE};

/// How long a new session may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest enrollment token accepted (real ones are 64 characters).
const MAX_TOKEN_LEN: usize = 256;
/// Largest CSR accepted, in bytes.
const MAX_CSR_BYTES: usize = 16 * 1024;
/// Heartbeats a peer may miss before its session is considered dead.
const MISSED_HEARTBEATS: u32 = 3;

/// The agent-facing half of the relay.
pub(crate) struct AgentService {
    pub hub: Arc<Hub>,
    pub tasks: TaskTracker,
    pub shutdown: CancellationToken,
    pub heartbeat_interval: Duration,
}

type RelayStream = Pin<Box<dyn Stream<Item = Result<proto::RelayMessage, Status>> + Send>>;

fn check_csr(csr_pem: &str) -> Result<(), Status> {
    if csr_pem.is_empty() || csr_pem.len() > MAX_CSR_BYTES {
        return Err(Status::invalid_argument(format!(
            "csr_pem must be a PEM certificate request of at most {MAX_CSR_BYTES} bytes"
        )));
    }
    Ok(())
}

/// What [`check_features`] dropped, for the log.
#[derive(Debug, PartialEq, Eq)]
struct DroppedFeatures {
    count: usize,
    /// The first one dropped, shortened and escaped (it is the agent's).
    first: String,
}

/// The features a hello listed that the relay passes on: well-formed
/// names (`version::is_feature_name`), each once, at most
/// `MAX_FEATURES`; what else it listed is dropped, never refused, since
/// a feature only changes what is asked of this agent's own instance.
fn check_features(listed: Vec<String>) -> (Vec<String>, Option<DroppedFeatures>) {
    let mut kept: Vec<String> = Vec::new();
    let mut dropped: Option<DroppedFeatures> = None;
    for name in listed {
        let keep = kept.len() < version::MAX_FEATURES
            && version::is_feature_name(&name)
            && !kept.contains(&name);
        if keep {
            kept.push(name);
            continue;
        }
        match &mut dropped {
            Some(d) => d.count += 1,
            None => {
                let first: String = name.chars().take(version::MAX_FEATURE_LEN).collect();
                dropped = Some(DroppedFeatures {
                    count: 1,
                    first: first.escape_debug().to_string(),
                });
            }
        }
    }
    (kept, dropped)
}

#[tonic::async_trait]
impl AgentRelay for AgentService {
    async fn enroll(
        &self,
        request: Request<proto::EnrollRequest>,
    ) -> Result<Response<proto::EnrollResponse>, Status> {
        let remote = request.remote_addr();
        let request = request.into_inner();
        if !version::is_supported(request.protocol_version) {
            return Err(Status::failed_precondition(format!(
                "agent speaks protocol version {}; this relay speaks {}..={}",
                request.protocol_version,
                version::MIN_PROTOCOL_VERSION,
                PROTOCOL_VERSION
            )));
        }
        if request.token.is_empty() || request.token.len() > MAX_TOKEN_LEN {
            return Err(Status::unauthenticated(
                "a valid enrollment token is required",
            ));
        }
        check_csr(&request.csr_pem)?;
        let signed = self
            .hub
            .sign(
                SigningSubject::Enroll {
                    token: request.token,
                },
                request.csr_pem,
            )
            .await
            .map_err(|e| {
                tracing::info!(?remote, error = %e, "enrollment refused");
                e.into_status()
            })?;
        tracing::info!(instance_id = %signed.instance_id, ?remote, "agent enrolled");
        Ok(Response::new(proto::EnrollResponse {
            certificate_pem: signed.certificate_pem,
            ca_certificate_pem: signed.ca_certificate_pem,
            instance_id: signed.instance_id,
        }))
    }

    type ConnectStream = RelayStream;

    async fn connect(
        &self,
        request: Request<Streaming<proto::AgentMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let identity = auth::require(&request, Role::Agent)?;
        let instance = identity
            .instance_id()
            .ok_or_else(|| Status::unauthenticated("agent certificate names no instance"))?;
        let mut inbound = request.into_inner();

        let hello = match tokio::time::timeout(HELLO_TIMEOUT, inbound.message()).await {
            Ok(Ok(Some(proto::AgentMessage {
                kind: Some(agent_message::Kind::Hello(hello)),
            }))) => hello,
            Ok(Err(status)) => return Err(status),
            Err(_) => return Err(Status::deadline_exceeded("no hello within 10s")),
            Ok(Ok(_)) => {
                return Err(Status::invalid_argument(
                    "the first message of a session must be hello",
                ));
            }
        };
        if !version::is_supported(hello.protocol_version) {
            return Err(Status::failed_precondition(format!(
                "agent speaks protocol version {}; this relay speaks {}..={}",
                hello.protocol_version,
                version::MIN_PROTOCOL_VERSION,
                PROTOCOL_VERSION
            )));
        }

        let mut hello = hello;
        let (features, dropped) = check_features(std::mem::take(&mut hello.features));
        if let Some(dropped) = dropped {
            tracing::warn!(
                instance_id = %instance,
                dropped = dropped.count,
                first = %dropped.first,
                "the agent's hello listed malformed or too many features; dropped them"
            );
        }
        hello.features = features;

        let (tx, rx) = mpsc::channel(SESSION_OUTBOUND_CAPACITY);
        let session = Arc::new(Session::new(
            self.hub.new_session_id(),
            instance.clone(),
            hello,
            tx,
        ));
        session
            .send(relay_message::Kind::HelloAck(proto::HelloAck {
                protocol_version: PROTOCOL_VERSION,
                relay_version: RELEASE.to_owned(),
                instance_id: instance.to_string(),
                heartbeat_interval_ms: u32::try_from(self.heartbeat_interval.as_millis())
                    .unwrap_or(u32::MAX),
            }))
            .await
            .map_err(|e| e.into_status())?;
        self.hub.register(session.clone());
        tracing::info!(
            instance_id = %instance,
            session_id = session.id,
            agent_version = %session.hello.agent_version,
            features = ?session.hello.features,
            containers = session.hello.inventory.len(),
            "agent session started"
        );

        self.tasks.spawn(run_session(
            self.hub.clone(),
            self.tasks.clone(),
            session.clone(),
            inbound,
            self.heartbeat_interval,
            self.shutdown.clone(),
        ));

        let ended = session.cancel.clone().cancelled_owned();
        let outbound = ReceiverStream::new(rx).map(Ok).take_until(ended);
        Ok(Response::new(Box::pin(outbound)))
    }
}

/// Reads the agent's messages until the session ends, sending heartbeats.
async fn run_session(
    hub: Arc<Hub>,
    tasks: TaskTracker,
    session: Arc<Session>,
    mut inbound: Streaming<proto::AgentMessage>,
    heartbeat_interval: Duration,
    shutdown: CancellationToken,
) {
    let silence_limit = heartbeat_interval * MISSED_HEARTBEATS;
    let mut ticker = tokio::time::interval(heartbeat_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = tokio::time::Instant::now();
    let mut seq = 0u64;
    let reason = loop {
        tokio::select! {
            () = session.cancel.cancelled() => break "replaced by a newer session".to_owned(),
            () = shutdown.cancelled() => break "relay shutting down".to_owned(),
            _ = ticker.tick() => {
                if last_heard.elapsed() > silence_limit {
                    break format!("no message for {silence_limit:?}");
                }
                seq += 1;
                let beat = relay_message::Kind::Heartbeat(proto::Heartbeat {
                    seq,
                    sent_at_ms: unix_millis(),
                });
                // A full queue already tells the agent we are alive.
                let _ = session.outbound_try(beat);
                report_violations(&hub, &session, session.pending_violations());
            }
            message = inbound.message() => match message {
                Ok(Some(message)) => {
                    last_heard = tokio::time::Instant::now();
                    handle_message(&hub, &tasks, &session, message);
                }
                Ok(None) => break "agent closed the session".to_owned(),
                Err(status) => break format!("session transport failed: {}", status.message()),
            },
        }
    };
    tracing::info!(instance_id = %session.instance, session_id = session.id, %reason, "agent session ended");
    report_violations(&hub, &session, session.pending_violations());
    hub.unregister(&session, &reason);
}

/// Tells the watchers (the service, which counts them) what the relay
/// dropped from this session.
fn report_violations(hub: &Hub, session: &Session, reports: Vec<proto::AgentViolation>) {
    for report in reports {
        hub.publish(
            &session.instance,
            proto::watch_event::Kind::Violation(report),
        );
    }
}

fn handle_message(
    hub: &Arc<Hub>,
    tasks: &TaskTracker,
    session: &Arc<Session>,
    message: proto::AgentMessage,
) {
    let Some(kind) = message.kind else {
        return;
    };
    match kind {
        agent_message::Kind::Heartbeat(_) => {}
        agent_message::Kind::Hello(_) => {
            tracing::warn!(instance_id = %session.instance, "ignoring a second hello in one session");
        }
        agent_message::Kind::Result(result) => {
            let outcome = match result.outcome {
                Some(proto::command_result::Outcome::Output(output)) => Ok(output),
                Some(proto::command_result::Outcome::Error(error)) => Err(error),
                None => {
                    Err(nest_core::ErrorKind::Internal.error("agent sent a result with no outcome"))
                }
            };
            if !session.complete(result.command_id, outcome) {
                let detail = format!("a result for command {}, never sent", result.command_id);
                report_violations(
                    hub,
                    session,
                    session.violation(Violation::CommandResult, detail),
                );
            }
        }
        agent_message::Kind::Event(event) => {
            hub.publish(
                &session.instance,
                proto::watch_event::Kind::Container(event),
            );
        }
        agent_message::Kind::Stream(frame) => {
            let Some(output) = frame.output else {
                return;
            };
            if let Some(proto::stream_output::Kind::Chunk(chunk)) = &output.kind
                && chunk.data.len() > MAX_CHUNK_BYTES
            {
                tracing::warn!(
                    instance_id = %session.instance,
                    stream_id = frame.stream_id,
                    "agent sent an oversized chunk; resetting the stream"
                );
                session.drop_stream(frame.stream_id);
                return;
            }
            if !session.route_frame(frame.stream_id, output) {
                let detail = format!("a frame on stream {}, never opened", frame.stream_id);
                report_violations(
                    hub,
                    session,
                    session.violation(Violation::StreamFrame, detail),
                );
            }
        }
        agent_message::Kind::Credit(credit) => {
            if !session.add_input_credit(credit.stream_id, credit.frames) {
                let detail = format!("credit for stream {}, never opened", credit.stream_id);
                report_violations(
                    hub,
                    session,
                    session.violation(Violation::StreamFrame, detail),
                );
            }
        }
        agent_message::Kind::Engine(health) => {
            if health.healthy {
                tracing::info!(instance_id = %session.instance, "the agent's engine answers again");
            } else {
                tracing::warn!(instance_id = %session.instance, reason = %health.reason, "the agent's engine is not answering");
            }
            hub.publish(&session.instance, proto::watch_event::Kind::Engine(health));
        }
        agent_message::Kind::Renew(renew) => {
            // Signing takes a round trip to the service: off the reader task.
            let hub = hub.clone();
            let session = session.clone();
            tasks.spawn(renew_certificate(hub, session, renew));
        }
    }
}

async fn renew_certificate(hub: Arc<Hub>, session: Arc<Session>, renew: proto::RenewRequest) {
    let outcome = if check_csr(&renew.csr_pem).is_err() {
        proto::renew_response::Outcome::Error(
            nest_core::ErrorKind::Invalid.error("csr_pem is empty or too large"),
        )
    } else {
        match hub
            .sign(
                SigningSubject::Renew {
                    instance: session.instance.clone(),
                },
                renew.csr_pem,
            )
            .await
        {
            Ok(signed) => {
                tracing::info!(instance_id = %session.instance, "agent certificate renewed");
                proto::renew_response::Outcome::CertificatePem(signed.certificate_pem)
            }
            Err(e) => {
                tracing::warn!(instance_id = %session.instance, error = %e, "certificate renewal failed");
                let status = e.into_status();
                proto::renew_response::Outcome::Error(
                    crate::status::kind_of(status.code()).error(status.message()),
                )
            }
        }
    };
    let _ = session
        .send(relay_message::Kind::Renewed(proto::RenewResponse {
            request_id: renew.request_id,
            outcome: Some(outcome),
        }))
        .await;
}

fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn well_formed_features_pass_unchanged() {
        let listed = names(&["networks", "a-b_c", "x9"]);
        assert_eq!(check_features(listed.clone()), (listed, None));
        assert_eq!(check_features(Vec::new()), (Vec::new(), None));
    }

    #[test]
    fn malformed_duplicate_and_surplus_features_are_dropped() {
        let long = "a".repeat(version::MAX_FEATURE_LEN + 1);
        let listed = names(&[
            "Networks",
            "networks",
            "",
            "net works",
            "networks",
            "nets\n",
            &long,
            "é",
        ]);
        let (kept, dropped) = check_features(listed);
        assert_eq!(kept, names(&["networks"]));
        assert_eq!(
            dropped,
            Some(DroppedFeatures {
                count: 7,
                first: "Networks".into()
            })
        );

        let edge = "z".repeat(version::MAX_FEATURE_LEN);
        let (kept, dropped) = check_features(vec![edge.clone()]);
        assert_eq!((kept, dropped), (vec![edge], None));

        let many: Vec<String> = (0..version::MAX_FEATURES + 3)
            .map(|i| format!("f{i}"))
            .collect();
        let (kept, dropped) = check_features(many.clone());
        assert_eq!(kept, many[..version::MAX_FEATURES]);
        assert_eq!(dropped.map(|d| (d.count, d.first)), Some((3, "f32".into())));
    }

    #[test]
    fn a_dropped_features_log_form_is_short_and_escaped() {
        let (_, dropped) = check_features(vec![format!("\u{1b}[31m{}", "x".repeat(500))]);
        let first = dropped.map(|d| d.first).unwrap_or_default();
        assert!(first.starts_with("\\u{1b}[31m"), "{first}");
        assert!(!first.contains('\u{1b}'));
        assert!(first.len() < 100, "{first}");
    }
}
