//! The service's one typed link to agents: [`AgentLink`], the seam every
//! call to an agent goes through (create, act, inspect, list, update, top,
//! stats, exec, streams, and the watch feed of agent sessions and container
//! events), spoken in the service's own vocabulary.
//!
//! Layout:
//! - this file: the trait, its vocabulary, [`AgentError`], and [`follow`],
//!   the loop that keeps the watch feed open;
//! - `relay.rs`: [`RelayAgents`], the implementation that drives agents
//!   through a relay, with the timeout of every call;
//! - `convert.rs`: the service's only mapping between its types and the
//!   wire protocol's generated ones.
//!
//! Nothing outside this module names a protocol type: the application
//! layer, the scheduler and the reconciler see only what is defined here.
//! Tests fake the trait; they never need a relay.

mod convert;
mod relay;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use nest_core::ErrorKind;
use nest_core::backoff::Backoff;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use relay::{ACTION_TIMEOUT, CREATE_TIMEOUT, EXEC_TIMEOUT, QUERY_TIMEOUT, RelayAgents};

use crate::domain::{
    ContainerId, ContainerSpec, ContainerStatus, Health, InstanceId, RequestId, TtySize,
};

/// Agent events queued for the service's consumer; when it falls behind,
/// the relay's watch ends with a resync request and is reopened.
pub const EVENT_QUEUE: usize = 1024;
/// Largest stdin payload one stream frame carries; longer input is split.
pub const STDIN_CHUNK_BYTES: usize = nest_relay::version::MAX_CHUNK_BYTES;
/// First wait before the watch feed is reopened.
const WATCH_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// Longest wait before the watch feed is reopened.
const WATCH_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What every agent call returns.
pub type AgentFuture<'a, T> = BoxFuture<'a, Result<T, AgentError>>;

/// Agent sessions and container events as they happen; the feed ends when
/// the relay drops it, and [`follow`] reopens it.
pub type EventFeed = BoxStream<'static, Result<AgentEvent, AgentError>>;

/// The service's calls to the agents in its instances.
///
/// Every call names the request that caused it (the API call's id, or a
/// fresh one for background work), which travels to the agent and into its
/// logs, and the instance whose agent carries it out. The trait is object
/// safe: the service holds an `Arc<dyn AgentLink>`.
pub trait AgentLink: Send + Sync {
    /// Creates a container from `request.spec` (pulling its image first if
    /// asked and missing) and starts it if asked.
    ///
    /// # Errors
    /// [`AgentError`]: `Conflict` when the agent already has a container of
    /// that id, `Unavailable` when the instance's agent is not connected,
    /// `Timeout`, or the engine's own failure.
    fn create<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
        request: CreateRequest,
    ) -> AgentFuture<'a, EngineState>;

    /// Starts, stops, restarts, pauses, unpauses, kills or removes a
    /// container; the engine's state afterwards when the agent reports one
    /// (every action but remove).
    ///
    /// # Errors
    /// [`AgentError`]: `NotFound` when the agent has no such container,
    /// `Conflict` when the engine refuses it in its state, `Unavailable`,
    /// `Timeout`.
    fn act<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
        container: ContainerId,
        action: AgentAction,
    ) -> AgentFuture<'a, Option<EngineState>>;

    /// The engine's state of one container.
    ///
    /// # Errors
    /// [`AgentError`]: `NotFound`, `Unavailable`, `Timeout`.
    fn inspect<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
        container: ContainerId,
    ) -> AgentFuture<'a, EngineState>;

    /// Every container the agent manages (its inventory).
    ///
    /// # Errors
    /// [`AgentError`]: `Unavailable`, `Timeout`.
    fn list<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
    ) -> AgentFuture<'a, Vec<EngineState>>;

    /// Applies new CPU and memory limits to a container.
    ///
    /// # Errors
    /// [`AgentError`]: `NotFound`, `Invalid` when the engine refuses the
    /// limits, `Unavailable`, `Timeout`.
    fn update_resources<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
        container: ContainerId,
        resources: Resources,
    ) -> AgentFuture<'a, EngineState>;

    /// The processes of a running container (`docker top`).
    ///
    /// # Errors
    /// [`AgentError`]: `NotFound`, `Conflict` when it is not running,
    /// `Unavailable`, `Timeout`.
    fn top<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
        container: ContainerId,
        ps_args: Option<String>,
    ) -> AgentFuture<'a, ProcessTable>;

    /// A one-shot resource usage sample of a container.
    ///
    /// # Errors
    /// [`AgentError`]: `NotFound`, `Unavailable`, `Timeout`.
    fn stats<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
        container: ContainerId,
    ) -> AgentFuture<'a, ResourceUsage>;

    /// Runs a command in a running container and captures its output.
    ///
    /// # Errors
    /// [`AgentError`]: `NotFound`, `Conflict` when it is not running,
    /// `Unavailable`, `Timeout` when the command runs too long.
    fn exec<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
        container: ContainerId,
        command: ExecCommand,
    ) -> AgentFuture<'a, ExecOutput>;

    /// Opens a stream to the agent: logs, an interactive exec, an attach,
    /// or an image load.
    ///
    /// # Errors
    /// [`AgentError`] when the relay refuses the stream (`Unavailable` when
    /// the instance's agent is not connected). Failures after the stream
    /// opened arrive on the stream.
    fn open_stream<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
        open: StreamOpen,
    ) -> AgentFuture<'a, Box<dyn AgentStream>>;

    /// Opens the feed of agent sessions and container events; it starts
    /// with every live session.
    ///
    /// # Errors
    /// [`AgentError`] when the relay cannot be reached or refuses the feed.
    fn watch<'a>(&'a self, request_id: &'a RequestId) -> AgentFuture<'a, EventFeed>;
}

/// One open stream to an agent.
pub trait AgentStream: Send {
    /// Sends stdin data (split into frames of at most
    /// [`STDIN_CHUNK_BYTES`]), a terminal size, or the end of stdin. Waits
    /// while the agent's window is full.
    ///
    /// # Errors
    /// [`AgentError`] of kind `Unavailable` when the stream has ended,
    /// `Invalid` when stdin was already closed.
    fn send(&mut self, input: StreamInput) -> AgentFuture<'_, ()>;

    /// The next thing the agent sent; `None` after the stream's end.
    ///
    /// # Cancel safety
    /// Safe: no frame is lost when the future is dropped, so it may be
    /// polled in `select!` next to other work.
    fn next(&mut self) -> BoxFuture<'_, Option<Result<StreamEvent, AgentError>>>;
}

/// Why a call to an agent failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AgentError {
    /// The relay, or the agent behind it, refused or failed the call; the
    /// message is theirs, unchanged (it becomes a container's status
    /// reason).
    #[error("{message}")]
    Refused {
        /// What kind of failure it is.
        kind: ErrorKind,
        /// What the relay or agent said.
        message: String,
    },
    /// The agent answered with another kind of result than the command's.
    #[error("the agent answered {command} with another kind of result")]
    UnexpectedAnswer {
        /// The command that was sent.
        command: &'static str,
    },
}

impl AgentError {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Refused { kind, .. } => *kind,
            Self::UnexpectedAnswer { .. } => ErrorKind::Internal,
        }
    }
}

/// A container to create on an agent.
#[derive(Clone, Debug, PartialEq)]
pub struct CreateRequest {
    /// Nest's id: the only name the agent knows the container by.
    pub container: ContainerId,
    /// Its human name, used as the engine's container name.
    pub name: String,
    /// What it should be (its image already resolved to what the engine
    /// runs).
    pub spec: ContainerSpec,
    /// Start it once created (`docker run`).
    pub start: bool,
    /// Pull the image first when the engine does not have it.
    pub pull_missing: bool,
}

/// A state action on a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentAction {
    /// Start it.
    Start,
    /// Stop it, killing it after `timeout` (the engine's default if `None`).
    Stop {
        /// Grace period before SIGKILL, whole seconds.
        timeout: Option<Duration>,
    },
    /// Restart it.
    Restart {
        /// Grace period before SIGKILL, whole seconds.
        timeout: Option<Duration>,
    },
    /// Pause it.
    Pause,
    /// Unpause it.
    Unpause,
    /// Send it a signal.
    Kill {
        /// Signal name or number as the engine takes it; `None` is SIGKILL.
        signal: Option<String>,
    },
    /// Remove it.
    Remove {
        /// Remove it even while it runs.
        force: bool,
    },
}

impl AgentAction {
    /// The action's name in logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop { .. } => "stop",
            Self::Restart { .. } => "restart",
            Self::Pause => "pause",
            Self::Unpause => "unpause",
            Self::Kill { .. } => "kill",
            Self::Remove { .. } => "remove",
        }
    }
}

/// A container as its engine sees it, in Nest's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineState {
    /// Nest's id of the container.
    pub container: ContainerId,
    /// The engine's id.
    pub docker_id: String,
    /// The status Nest records for the engine's state.
    pub status: ContainerStatus,
    /// Why it is in that status (how it exited, the engine's error), when
    /// there is something to say.
    pub status_reason: Option<String>,
    /// Its last exit code (0 when it never exited).
    pub exit_code: i64,
    /// Its healthcheck's verdict; `None` without one (or an unknown word).
    pub health: Option<Health>,
}

/// New CPU and memory limits of a container.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Resources {
    /// vCPUs (Zun's `cpu`, e.g. 0.5).
    pub cpu: f64,
    /// Memory, MiB.
    pub memory_mib: u64,
}

/// `docker top` output.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ProcessTable {
    /// Column titles.
    pub titles: Vec<String>,
    /// One row of cells per process.
    pub processes: Vec<Vec<String>>,
}

/// A resource usage sample, as the engine reports it.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct ResourceUsage {
    /// CPU use, percent of the instance.
    pub cpu_percent: f64,
    /// Memory in use, bytes.
    pub memory_usage_bytes: u64,
    /// Memory limit, bytes.
    pub memory_limit_bytes: u64,
    /// Bytes received on all networks.
    pub network_rx_bytes: u64,
    /// Bytes sent on all networks.
    pub network_tx_bytes: u64,
    /// Bytes read from block devices.
    pub block_read_bytes: u64,
    /// Bytes written to block devices.
    pub block_write_bytes: u64,
    /// Processes in the container.
    pub pids: u64,
}

/// A command to run and capture.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ExecCommand {
    /// The argv.
    pub command: Vec<String>,
    /// Extra environment variables.
    pub environment: BTreeMap<String, String>,
    /// Working directory; `None` is the container's.
    pub workdir: Option<String>,
    /// User to run as; `None` is the container's.
    pub user: Option<String>,
}

/// What a captured command printed and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    /// Its stdout.
    pub stdout: Bytes,
    /// Its stderr.
    pub stderr: Bytes,
    /// Its exit code.
    pub exit_code: i64,
    /// Whether output beyond the agent's capture limit was dropped.
    pub truncated: bool,
}

/// What a stream carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamOpen {
    /// A container's logs.
    Logs {
        /// The container.
        container: ContainerId,
        /// Which logs.
        options: LogOptions,
    },
    /// An interactive command in a running container.
    Exec {
        /// The container.
        container: ContainerId,
        /// The argv.
        command: Vec<String>,
        /// Allocate a terminal.
        tty: bool,
        /// Keep stdin open.
        stdin: bool,
        /// The terminal's initial size; `None` is the engine's default.
        size: Option<TtySize>,
        /// Extra environment variables.
        environment: BTreeMap<String, String>,
        /// Working directory; `None` is the container's.
        workdir: Option<String>,
        /// User to run as; `None` is the container's.
        user: Option<String>,
    },
    /// The main process of a running container.
    Attach {
        /// The container.
        container: ContainerId,
        /// Send stdin.
        stdin: bool,
        /// Receive stdout.
        stdout: bool,
        /// Receive stderr.
        stderr: bool,
        /// Replay the container's existing output first.
        logs: bool,
    },
    /// `docker load`: an image archive is sent as stdin, then stdin is
    /// closed; the stream ends once the engine loaded it.
    LoadImage,
}

impl StreamOpen {
    /// The container the stream is about, if any.
    pub fn container(&self) -> Option<ContainerId> {
        match self {
            Self::Logs { container, .. }
            | Self::Exec { container, .. }
            | Self::Attach { container, .. } => Some(*container),
            Self::LoadImage => None,
        }
    }
}

/// Which logs to read.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LogOptions {
    /// Include stdout.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
    /// Only the last this many lines; `None` is all.
    pub tail: Option<u64>,
    /// Only lines since this Unix time, seconds; `None` is from the start.
    pub since: Option<i64>,
    /// Prefix each line with its timestamp.
    pub timestamps: bool,
    /// Keep following new lines until the container stops.
    pub follow: bool,
}

/// What the opener of a stream sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamInput {
    /// Bytes for the process's stdin.
    Stdin(Bytes),
    /// A new terminal size.
    Resize(TtySize),
    /// The end of stdin (the process sees EOF); output keeps flowing.
    CloseStdin,
}

/// Which of the process's outputs a chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// Terminal output (a tty does not separate stdout and stderr).
    Tty,
}

/// What an agent sends on a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    /// The stream is established (exec created, attach hijacked, ...).
    Started,
    /// Output of the process.
    Output {
        /// Which output.
        stream: OutputStream,
        /// The bytes.
        data: Bytes,
    },
    /// The stream ended normally.
    End {
        /// The process's exit code, for exec and attach.
        exit_code: Option<i64>,
    },
    /// The stream ended with a failure on the agent's side.
    Failed {
        /// What kind of failure it is.
        kind: ErrorKind,
        /// What the agent said.
        message: String,
    },
}

/// Something that happened to an agent or one of its containers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentEvent {
    /// An agent established a session (or replaced an older one).
    Connected {
        /// Its instance, from its verified certificate.
        instance: InstanceId,
        /// Identifies the session; a later disconnect names the one that
        /// ended.
        session: u64,
        /// Every container it manages, as its engine sees them now.
        inventory: Vec<EngineState>,
        /// Its release, as it says (for messages only).
        agent_version: String,
        /// What it supports beyond protocol version 1, as the relay
        /// validated the list (`nest_relay::version::AGENT_FEATURES`);
        /// empty for an agent older than the list.
        features: Vec<String>,
    },
    /// An agent's session ended.
    Disconnected {
        /// Its instance.
        instance: InstanceId,
        /// The session that ended.
        session: u64,
        /// Why, as the relay saw it.
        reason: String,
    },
    /// A container changed on its engine.
    Container {
        /// The instance it is on.
        instance: InstanceId,
        /// What happened.
        event: ContainerEvent,
    },
    /// An agent's container engine stopped or started answering.
    Engine {
        /// The instance whose engine it is.
        instance: InstanceId,
        /// Whether it answers now.
        healthy: bool,
        /// Why it does not, in the agent's words; empty when healthy.
        reason: String,
    },
    /// The relay dropped messages of an agent that named something its
    /// session was never given (a stream or command it was never sent).
    Violation {
        /// The instance whose agent sent them.
        instance: InstanceId,
        /// The session that sent them.
        session: u64,
        /// What was dropped.
        kind: crate::metrics::Violation,
        /// How many, since the relay's last report.
        count: u64,
        /// The first of them, in the relay's words.
        detail: String,
    },
}

/// A change of one container on its engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerEvent {
    /// Nest's id of the container.
    pub container: ContainerId,
    /// What the engine did.
    pub action: EngineAction,
    /// The container's state right after, when the agent could read it
    /// (never for [`EngineAction::Destroy`]).
    pub state: Option<EngineState>,
}

/// What the engine did to a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineAction {
    /// It was removed.
    Destroy,
    /// It ran out of memory.
    OutOfMemory,
    /// Anything else (create, start, die, stop, pause, ...), in the
    /// engine's own word.
    Other(String),
}

/// Keeps the watch feed of `link` open until `cancel`, reopening it with
/// backoff whenever it ends, and passes its events to `events` in order.
/// Returns when `cancel` fires or the receiver of `events` is gone.
pub async fn follow(
    link: Arc<dyn AgentLink>,
    events: mpsc::Sender<AgentEvent>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(WATCH_BACKOFF_INITIAL, WATCH_BACKOFF_MAX);
    while !cancel.is_cancelled() {
        // Nobody asked for the feed: each (re)opening gets its own id.
        let request_id = RequestId::generate();
        match link.watch(&request_id).await {
            Ok(mut feed) => {
                backoff.reset();
                loop {
                    let next = tokio::select! {
                        () = cancel.cancelled() => return,
                        next = feed.next() => next,
                    };
                    match next {
                        Some(Ok(event)) => {
                            if events.send(event).await.is_err() {
                                return;
                            }
                        }
                        None => break,
                        Some(Err(e)) => {
                            tracing::warn!(%request_id, error = %e, "relay watch ended; watching again");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(%request_id, error = %e, "relay watch not available yet"),
        }
        let delay = backoff.next_delay();
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}
