//! The `RelayControl` gRPC service: what nest-service calls to drive agents.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status, Streaming};

use super::auth;
use super::hub::Hub;
use super::session::{OpenedStream, Session};
use crate::identity::Role;
use crate::proto::relay_control_server::RelayControl;
use crate::proto::{self, relay_message, stream_client_message, stream_input, stream_request};
use crate::version::STREAM_WINDOW_FRAMES;
use nest_core::ids::InstanceId;

/// Longest command timeout a caller may ask for.
const MAX_COMMAND_TIMEOUT: Duration = Duration::from_secs(3600);
/// How long a new stream may take to send its `open` message.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames queued towards the service per stream; tonic's own HTTP/2 window
/// does the rest of the pushing back.
const CLIENT_STREAM_CAPACITY: usize = 4;
/// Events queued per watcher beyond the shared broadcast buffer.
const WATCH_OUT_CAPACITY: usize = 64;

/// The service-facing half of the relay.
pub(crate) struct ControlService {
    pub hub: Arc<Hub>,
    pub tasks: TaskTracker,
    pub shutdown: CancellationToken,
    pub command_timeout: Duration,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn parse_instance(id: &str) -> Result<InstanceId, Status> {
    InstanceId::parse(id).map_err(|e| Status::invalid_argument(format!("instance_id: {e}")))
}

impl ControlService {
    fn live_session(&self, instance: &InstanceId) -> Result<Arc<Session>, Status> {
        self.hub.session(instance).ok_or_else(|| {
            Status::unavailable(format!("instance {instance} has no live agent session"))
        })
    }
}

#[tonic::async_trait]
impl RelayControl for ControlService {
    async fn execute(
        &self,
        request: Request<proto::ExecuteRequest>,
    ) -> Result<Response<proto::ExecuteResponse>, Status> {
        auth::require(&request, Role::Service)?;
        let request = request.into_inner();
        let instance = parse_instance(&request.instance_id)?;
        let command = match request.command {
            Some(command) if command.kind.is_some() => command,
            _ => return Err(Status::invalid_argument("command is required")),
        };
        let timeout = match request.timeout_ms {
            0 => self.command_timeout,
            ms => Duration::from_millis(u64::from(ms)).min(MAX_COMMAND_TIMEOUT),
        };
        let session = self.live_session(&instance)?;
        let output = session
            .execute(request.request_id, command, timeout)
            .await
            .map_err(|e| e.into_status())?;
        Ok(Response::new(proto::ExecuteResponse {
            output: Some(output),
        }))
    }

    type OpenStreamStream = BoxStream<proto::StreamServerMessage>;

    async fn open_stream(
        &self,
        request: Request<Streaming<proto::StreamClientMessage>>,
    ) -> Result<Response<Self::OpenStreamStream>, Status> {
        auth::require(&request, Role::Service)?;
        let mut inbound = request.into_inner();
        let target = match tokio::time::timeout(OPEN_TIMEOUT, inbound.message()).await {
            Ok(Ok(Some(proto::StreamClientMessage {
                kind: Some(stream_client_message::Kind::Open(target)),
            }))) => target,
            Ok(Err(status)) => return Err(status),
            Err(_) => return Err(Status::deadline_exceeded("no open message within 10s")),
            Ok(Ok(_)) => {
                return Err(Status::invalid_argument(
                    "the first message of a stream must be open",
                ));
            }
        };
        let instance = parse_instance(&target.instance_id)?;
        let open = match target.open {
            Some(open) if open.kind.is_some() => open,
            _ => return Err(Status::invalid_argument("open must say what to stream")),
        };
        let session = self.live_session(&instance)?;
        let opened = session
            .open_stream(target.request_id, open)
            .await
            .map_err(|e| e.into_status())?;
        let (tx, rx) = mpsc::channel(CLIENT_STREAM_CAPACITY);
        let stream_id = opened.id;
        let done = opened.done.clone();
        let input_credit = opened.input_credit.clone();
        self.tasks.spawn(pump_to_client(
            session.clone(),
            opened,
            tx,
            self.shutdown.clone(),
        ));
        self.tasks.spawn(pump_to_agent(
            session,
            stream_id,
            inbound,
            input_credit,
            done,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type WatchStream = BoxStream<proto::WatchEvent>;

    async fn watch(
        &self,
        request: Request<proto::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        auth::require(&request, Role::Service)?;
        // Subscribe before taking the snapshot so nothing falls in between;
        // a session may then appear twice, which watchers must tolerate.
        let mut feed = self.hub.subscribe();
        let snapshot = self.hub.sessions();
        let (tx, rx) = mpsc::channel(WATCH_OUT_CAPACITY);
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            for session in snapshot {
                let event = proto::WatchEvent {
                    instance_id: session.instance.to_string(),
                    kind: Some(proto::watch_event::Kind::Connected(session.connected())),
                };
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
            loop {
                let next = tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tx.closed() => return,
                    next = feed.recv() => next,
                };
                let item = match next {
                    Ok(event) => Ok(event),
                    Err(broadcast::error::RecvError::Lagged(missed)) => Err(Status::data_loss(
                        format!("watcher fell {missed} events behind; watch again to resync"),
                    )),
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let lagged = item.is_err();
                if tx.send(item).await.is_err() || lagged {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type ServeSigningStream = BoxStream<proto::SigningRequest>;

    async fn serve_signing(
        &self,
        request: Request<Streaming<proto::SigningReply>>,
    ) -> Result<Response<Self::ServeSigningStream>, Status> {
        let identity = auth::require(&request, Role::Service)?;
        let mut replies = request.into_inner();
        let (tx, rx) = mpsc::channel(Hub::signer_queue_capacity());
        let signer_id = self.hub.add_signer(tx);
        tracing::info!(service = %identity.name, signer_id, "certificate signer attached");
        let hub = self.hub.clone();
        let shutdown = self.shutdown.clone();
        let ended = shutdown.clone().cancelled_owned();
        self.tasks.spawn(async move {
            loop {
                let reply = tokio::select! {
                    () = shutdown.cancelled() => break,
                    reply = replies.message() => reply,
                };
                match reply {
                    Ok(Some(reply)) => hub.signing_reply(reply),
                    Ok(None) | Err(_) => break,
                }
            }
            hub.remove_signer(signer_id);
            tracing::info!(signer_id, "certificate signer detached");
        });
        let requests = ReceiverStream::new(rx).map(Ok).take_until(ended);
        Ok(Response::new(Box::pin(requests)))
    }
}

/// Forwards a stream's frames from the agent to the service, returning
/// credit to the agent as frames leave, so the relay never holds more than
/// one window per stream.
async fn pump_to_client(
    session: Arc<Session>,
    mut opened: OpenedStream,
    tx: mpsc::Sender<Result<proto::StreamServerMessage, Status>>,
    shutdown: CancellationToken,
) {
    let stream_id = opened.id;
    let credit_batch = (STREAM_WINDOW_FRAMES / 2).max(1);
    let mut owed = 0u32;
    loop {
        let frame = tokio::select! {
            () = shutdown.cancelled() => None,
            () = tx.closed() => {
                // The service went away while the stream was idle.
                cancel_on_agent(&session, stream_id).await;
                session.drop_stream(stream_id);
                return;
            }
            frame = opened.output.recv() => frame,
        };
        let Some(output) = frame else {
            // The route went away without an end frame.
            let _ = tx
                .send(Err(Status::unavailable(
                    "the stream ended early: the agent session closed or broke flow control",
                )))
                .await;
            session.drop_stream(stream_id);
            return;
        };
        let is_chunk = matches!(output.kind, Some(proto::stream_output::Kind::Chunk(_)));
        let is_last = matches!(
            output.kind,
            Some(proto::stream_output::Kind::End(_) | proto::stream_output::Kind::Error(_))
        );
        let sent = tokio::select! {
            sent = tx.send(Ok(proto::StreamServerMessage { output: Some(output) })) => sent.is_ok(),
            () = shutdown.cancelled() => false,
        };
        if !sent {
            // The service went away: tell the agent to stop producing.
            cancel_on_agent(&session, stream_id).await;
            session.drop_stream(stream_id);
            return;
        }
        if is_last {
            return;
        }
        if is_chunk {
            owed += 1;
            if owed >= credit_batch {
                let credit = relay_message::Kind::Credit(proto::StreamCredit {
                    stream_id,
                    frames: owed,
                });
                if session.send(credit).await.is_err() {
                    return;
                }
                owed = 0;
            }
        }
    }
}

/// Forwards the service's input (stdin, resize, close) to the agent,
/// spending one credit per stdin frame.
async fn pump_to_agent(
    session: Arc<Session>,
    stream_id: u64,
    mut inbound: Streaming<proto::StreamClientMessage>,
    input_credit: Arc<tokio::sync::Semaphore>,
    done: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            () = done.cancelled() => return,
            message = inbound.message() => message,
        };
        let input = match message {
            Ok(Some(proto::StreamClientMessage {
                kind: Some(stream_client_message::Kind::Input(input)),
            })) => input,
            Ok(Some(_)) => {
                tracing::debug!(stream_id, "ignoring a second open on one stream");
                continue;
            }
            // The service finished sending; output keeps flowing.
            Ok(None) => return,
            Err(_) => {
                cancel_on_agent(&session, stream_id).await;
                session.drop_stream(stream_id);
                return;
            }
        };
        if let Some(stream_input::Kind::Stdin(data)) = &input.kind {
            if data.len() > crate::version::MAX_CHUNK_BYTES {
                tracing::warn!(
                    stream_id,
                    "service sent an oversized stdin frame; cancelling"
                );
                cancel_on_agent(&session, stream_id).await;
                session.drop_stream(stream_id);
                return;
            }
            let permit = tokio::select! {
                () = done.cancelled() => return,
                permit = input_credit.acquire() => permit,
            };
            match permit {
                Ok(permit) => permit.forget(),
                Err(_) => return,
            }
        }
        let request = relay_message::Kind::Stream(proto::StreamRequest {
            stream_id,
            kind: Some(stream_request::Kind::Input(input)),
        });
        if session.send(request).await.is_err() {
            return;
        }
    }
}

async fn cancel_on_agent(session: &Session, stream_id: u64) {
    let cancel = relay_message::Kind::Stream(proto::StreamRequest {
        stream_id,
        kind: Some(stream_request::Kind::Input(proto::StreamInput {
            kind: Some(stream_input::Kind::Cancel(proto::Empty {})),
        })),
    });
    let _ = session.send(cancel).await;
}
