//! One agent's live session: its outbound queue, the commands waiting for
//! results and the streams routed through it.
//!
//! The session's reader task (in `agent_service.rs`) is the only writer of
//! results and stream frames; callers only register and wait.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::convert::WireErrorKind;
use crate::proto::{
    self, CommandRequest, RelayMessage, StreamOpenRequest, StreamRequest, relay_message,
    stream_request,
};
use crate::version::STREAM_WINDOW_FRAMES;
use nest_core::ErrorKind;
use nest_core::ids::InstanceId;

/// Messages queued to one agent. Callers wait when it is full, which pushes
/// back on the service instead of buffering without bound.
pub(crate) const SESSION_OUTBOUND_CAPACITY: usize = 256;
/// Commands one agent may have in flight; more wait for a slot.
const MAX_COMMANDS_IN_FLIGHT: usize = 128;
/// Streams one agent may have open at once.
pub(crate) const MAX_STREAMS_PER_SESSION: usize = 256;
/// Frames a stream's route buffers: the agent's window plus room for the
/// final end or error frame, so a well-behaved agent never overflows it.
const STREAM_ROUTE_CAPACITY: usize = STREAM_WINDOW_FRAMES as usize + 2;
/// Shortest time between two reports of one session's violations, so an
/// agent that floods them cannot flood the watch feed with them.
const VIOLATION_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// What an agent sent that names something its session was never given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Violation {
    /// A stream frame or credit for a stream id never opened.
    StreamFrame,
    /// A result for a command id never sent.
    CommandResult,
}

impl Violation {
    /// The word the watch feed carries.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StreamFrame => "stream_frame",
            Self::CommandResult => "command_result",
        }
    }
}

/// Violations not yet reported, and when they last were.
#[derive(Default)]
struct Violations {
    pending: BTreeMap<Violation, (u64, String)>,
    last_report: Option<tokio::time::Instant>,
}

/// The outcome of a command, as the agent reported it.
pub(crate) type CommandOutcome = Result<proto::CommandOutput, proto::Error>;

/// Where a stream's output goes and how much input the agent will take.
struct StreamRoute {
    to_client: mpsc::Sender<proto::StreamOutput>,
    input_credit: Arc<Semaphore>,
    done: CancellationToken,
}

/// The parts of a stream the control side keeps once it is open.
pub(crate) struct OpenedStream {
    pub id: u64,
    pub output: mpsc::Receiver<proto::StreamOutput>,
    pub input_credit: Arc<Semaphore>,
    pub done: CancellationToken,
}

/// A live agent session.
pub(crate) struct Session {
    pub id: u64,
    pub instance: InstanceId,
    pub hello: proto::Hello,
    outbound: mpsc::Sender<RelayMessage>,
    pending: Mutex<HashMap<u64, oneshot::Sender<CommandOutcome>>>,
    streams: Mutex<HashMap<u64, StreamRoute>>,
    next_id: AtomicU64,
    violations: Mutex<Violations>,
    in_flight: Semaphore,
    /// Cancelled when the session ends, for whatever reason.
    pub cancel: CancellationToken,
}

/// Why a command did not produce a result.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    #[error("the agent session of instance {0} ended")]
    Closed(InstanceId),
    #[error("instance {instance} did not answer within {timeout:?}")]
    TimedOut {
        instance: InstanceId,
        timeout: Duration,
    },
    #[error("instance {0} already has the most streams it may open")]
    TooManyStreams(InstanceId),
    #[error("{}", .0.message)]
    Agent(proto::Error),
}

impl SessionError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Closed(_) | Self::TooManyStreams(_) => ErrorKind::Unavailable,
            Self::TimedOut { .. } => ErrorKind::Timeout,
            Self::Agent(e) => ErrorKind::from_proto(e.kind),
        }
    }

    pub fn into_status(self) -> tonic::Status {
        crate::status::status(self.kind(), self.to_string())
    }
}

/// Removes a pending command's entry if its caller goes away first.
struct PendingGuard<'a> {
    session: &'a Session,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.session.pending).remove(&self.id);
    }
}

/// Locks a mutex that nothing holds across `.await` and no code panics
/// under, so poisoning means a bug elsewhere has already been reported.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Session {
    pub fn new(
        id: u64,
        instance: InstanceId,
        hello: proto::Hello,
        outbound: mpsc::Sender<RelayMessage>,
    ) -> Self {
        Self {
            id,
            instance,
            hello,
            outbound,
            pending: Mutex::new(HashMap::new()),
            streams: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            violations: Mutex::new(Violations::default()),
            in_flight: Semaphore::new(MAX_COMMANDS_IN_FLIGHT),
            cancel: CancellationToken::new(),
        }
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// How the watch feed announces this session.
    pub fn connected(&self) -> proto::AgentConnected {
        proto::AgentConnected {
            protocol_version: self.hello.protocol_version,
            agent_version: self.hello.agent_version.clone(),
            inventory: self.hello.inventory.clone(),
            docker_version: self.hello.docker_version.clone(),
            session_id: self.id,
            features: self.hello.features.clone(),
        }
    }

    /// Whether this session ever handed out `id` (to a command or a
    /// stream); ids start at 1 and only grow.
    fn issued(&self, id: u64) -> bool {
        id != 0 && id < self.next_id.load(Ordering::Relaxed)
    }

    /// Records a message the agent had no right to send. It is logged as a
    /// security event here; the returned reports (at most one per
    /// [`VIOLATION_REPORT_INTERVAL`]) are for the watch feed.
    pub fn violation(&self, kind: Violation, detail: String) -> Vec<proto::AgentViolation> {
        tracing::warn!(
            security_event = "agent_scope_violation",
            instance_id = %self.instance,
            session_id = self.id,
            kind = kind.as_str(),
            %detail,
            "security: dropped an agent message outside its session's scope"
        );
        let mut violations = lock(&self.violations);
        let entry = violations.pending.entry(kind).or_insert((0, detail));
        entry.0 += 1;
        let due = violations
            .last_report
            .is_none_or(|at| at.elapsed() >= VIOLATION_REPORT_INTERVAL);
        if due {
            Self::take_reports(self.id, &mut violations)
        } else {
            Vec::new()
        }
    }

    /// Violations not reported yet (on a timer, and when the session ends).
    pub fn pending_violations(&self) -> Vec<proto::AgentViolation> {
        let mut violations = lock(&self.violations);
        if violations.pending.is_empty() {
            return Vec::new();
        }
        Self::take_reports(self.id, &mut violations)
    }

    fn take_reports(session: u64, violations: &mut Violations) -> Vec<proto::AgentViolation> {
        violations.last_report = Some(tokio::time::Instant::now());
        std::mem::take(&mut violations.pending)
            .into_iter()
            .map(|(kind, (count, detail))| proto::AgentViolation {
                session_id: session,
                kind: kind.as_str().to_owned(),
                count,
                detail,
            })
            .collect()
    }

    /// Queues a message to the agent, waiting while the queue is full.
    pub async fn send(&self, kind: relay_message::Kind) -> Result<(), SessionError> {
        let message = RelayMessage { kind: Some(kind) };
        tokio::select! {
            sent = self.outbound.send(message) => {
                sent.map_err(|_| SessionError::Closed(self.instance.clone()))
            }
            () = self.cancel.cancelled() => Err(SessionError::Closed(self.instance.clone())),
        }
    }

    /// Queues a message unless the queue is full; says whether it was queued.
    pub fn outbound_try(&self, kind: relay_message::Kind) -> bool {
        self.outbound
            .try_send(RelayMessage { kind: Some(kind) })
            .is_ok()
    }

    /// Sends a command and waits for its result, at most `timeout`.
    ///
    /// # Cancel safety
    /// Safe: dropping the future forgets the command; a late result is dropped.
    pub async fn execute(
        &self,
        request_id: String,
        command: proto::Command,
        timeout: Duration,
    ) -> Result<proto::CommandOutput, SessionError> {
        let timed_out = || SessionError::TimedOut {
            instance: self.instance.clone(),
            timeout,
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let _slot = tokio::time::timeout_at(deadline, self.in_flight.acquire())
            .await
            .map_err(|_| timed_out())?
            .map_err(|_| SessionError::Closed(self.instance.clone()))?;
        let id = self.next_id();
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        let _guard = PendingGuard { session: self, id };
        let request = CommandRequest {
            command_id: id,
            request_id,
            timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
            command: Some(command),
        };
        tokio::time::timeout_at(deadline, self.send(relay_message::Kind::Command(request)))
            .await
            .map_err(|_| timed_out())??;
        match tokio::time::timeout_at(deadline, rx).await {
            Err(_) => Err(timed_out()),
            Ok(Err(_)) => Err(SessionError::Closed(self.instance.clone())),
            Ok(Ok(Ok(output))) => Ok(output),
            Ok(Ok(Err(error))) => Err(SessionError::Agent(error)),
        }
    }

    /// Hands a command result from the agent to whoever waits for it.
    /// Returns `false` when the session never sent that command: the
    /// result is dropped and the caller reports a violation.
    pub fn complete(&self, command_id: u64, outcome: CommandOutcome) -> bool {
        if let Some(tx) = lock(&self.pending).remove(&command_id) {
            // The caller may have given up; its result is then moot.
            let _ = tx.send(outcome);
        } else if self.issued(command_id) {
            tracing::debug!(command_id, "result for a command nobody waits for");
        } else {
            return false;
        }
        true
    }

    /// Registers a stream and asks the agent to open it.
    pub async fn open_stream(
        &self,
        request_id: String,
        open: proto::StreamOpen,
    ) -> Result<OpenedStream, SessionError> {
        let id = self.next_id();
        let (tx, rx) = mpsc::channel(STREAM_ROUTE_CAPACITY);
        let input_credit = Arc::new(Semaphore::new(STREAM_WINDOW_FRAMES as usize));
        let done = self.cancel.child_token();
        {
            let mut streams = lock(&self.streams);
            if streams.len() >= MAX_STREAMS_PER_SESSION {
                return Err(SessionError::TooManyStreams(self.instance.clone()));
            }
            streams.insert(
                id,
                StreamRoute {
                    to_client: tx,
                    input_credit: input_credit.clone(),
                    done: done.clone(),
                },
            );
        }
        let request = StreamRequest {
            stream_id: id,
            kind: Some(stream_request::Kind::Open(StreamOpenRequest {
                request_id,
                open: Some(open),
            })),
        };
        if let Err(e) = self.send(relay_message::Kind::Stream(request)).await {
            self.drop_stream(id);
            return Err(e);
        }
        Ok(OpenedStream {
            id,
            output: rx,
            input_credit,
            done,
        })
    }

    /// Routes one frame from the agent to its stream's reader.
    ///
    /// Never waits: the agent may only send within its credit, so a full
    /// route means the agent broke the protocol and the stream is reset.
    /// Returns `false` for a stream this session never opened: the frame
    /// is dropped and the caller reports a violation.
    pub fn route_frame(&self, stream_id: u64, output: proto::StreamOutput) -> bool {
        if !self.issued(stream_id) {
            return false;
        }
        let is_last = matches!(
            output.kind,
            Some(proto::stream_output::Kind::End(_) | proto::stream_output::Kind::Error(_))
        );
        let mut streams = lock(&self.streams);
        let Some(route) = streams.get(&stream_id) else {
            return true; // the reader left; late frames are dropped
        };
        match route.to_client.try_send(output) {
            Ok(()) if !is_last => {}
            Ok(()) => {
                if let Some(route) = streams.remove(&stream_id) {
                    route.done.cancel();
                }
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(
                    instance_id = %self.instance,
                    stream_id,
                    "agent overran a stream's flow-control window; resetting the stream"
                );
                if let Some(route) = streams.remove(&stream_id) {
                    route.done.cancel();
                }
                drop(streams);
                self.cancel_stream_later(stream_id);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                if let Some(route) = streams.remove(&stream_id) {
                    route.done.cancel();
                }
                drop(streams);
                self.cancel_stream_later(stream_id);
            }
        }
        true
    }

    /// Tells the agent to stop a stream without waiting for queue space: the
    /// reader task must never block, and a stream the agent keeps sending on
    /// is dropped here anyway.
    fn cancel_stream_later(&self, stream_id: u64) {
        let message = RelayMessage {
            kind: Some(relay_message::Kind::Stream(StreamRequest {
                stream_id,
                kind: Some(stream_request::Kind::Input(proto::StreamInput {
                    kind: Some(proto::stream_input::Kind::Cancel(proto::Empty {})),
                })),
            })),
        };
        if self.outbound.try_send(message).is_err() {
            tracing::debug!(
                stream_id,
                "could not queue a stream cancel; the agent is busy"
            );
        }
    }

    /// Credit from the agent for more input frames on a stream; `false`
    /// for a stream this session never opened.
    pub fn add_input_credit(&self, stream_id: u64, frames: u32) -> bool {
        if !self.issued(stream_id) {
            return false;
        }
        if let Some(route) = lock(&self.streams).get(&stream_id) {
            // A confused agent must not grant itself unbounded buffering.
            let room = (STREAM_WINDOW_FRAMES as usize * 4)
                .saturating_sub(route.input_credit.available_permits());
            route.input_credit.add_permits((frames as usize).min(room));
        }
        true
    }

    /// Forgets a stream whose reader is gone.
    pub fn drop_stream(&self, stream_id: u64) {
        if let Some(route) = lock(&self.streams).remove(&stream_id) {
            route.done.cancel();
        }
    }

    /// Ends the session: everyone waiting on it learns it is gone.
    pub fn close(&self) {
        self.cancel.cancel();
        lock(&self.pending).clear();
        for (_, route) in lock(&self.streams).drain() {
            route.done.cancel();
        }
    }
}
