//! The service's test doubles at its true seams, and the real service
//! assembled over them, for this crate's tests and (behind the `testing`
//! feature) for its integration tests.
//!
//! # Layout
//! - [`FakeAgents`]: an in-memory [`AgentLink`] that behaves like a
//!   well-behaved agent in every instance, records every call, and fails
//!   on request;
//! - [`FakeDriver`]: an in-memory [`InstanceDriver`] whose instances boot
//!   at once and whose agents connect on [`FakeAgents`];
//! - [`TestService`]: the real store (SQLite in a scratch directory),
//!   scheduler, reconciler and [`App`], wired as `server::run` wires
//!   them, over the two fakes; dropping it stops everything it started.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use nest_core::ErrorKind;
use nest_pki::{MemoryTokenStore, TokenStore};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agents::{
    AgentAction, AgentError, AgentEvent, AgentFuture, AgentLink, AgentStream, ContainerEvent,
    CreateRequest, EngineAction, EngineState, EventFeed, ExecCommand, ExecOutput, OutputStream,
    ProcessTable, ResourceUsage, Resources, StreamEvent, StreamInput, StreamOpen,
};
use crate::app::App;
use crate::db::{DbError, Store};
use crate::domain::{ContainerId, ContainerSpec, ContainerStatus, InstanceId, RequestId, TtySize};
use crate::driver::{BootRequest, BootedInstance, DriverError, InstanceDriver, Listing};
use crate::images::ProjectImages;
use crate::scheduler::SchedulerSettings;

/// Events queued per watch feed, as many as the relay queues for the
/// service ([`crate::agents::EVENT_QUEUE`]); a full feed holds the agent
/// call that announces an event until the service catches up.
pub const FEED_QUEUE: usize = crate::agents::EVENT_QUEUE;
/// The network every [`FakeDriver`] instance is on.
pub const FAKE_NETWORK: &str = "private";
/// Title row of every [`FakeAgents`] process table, as `docker top` prints
/// it.
pub const TOP_TITLES: [&str; 8] = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"];
/// The canned resource usage of every [`FakeAgents`] container; its
/// memory limit is the container's own.
pub const FAKE_USAGE: ResourceUsage = ResourceUsage {
    cpu_percent: 1.5,
    memory_usage_bytes: 16 * 1024 * 1024,
    memory_limit_bytes: 0,
    network_rx_bytes: 1024,
    network_tx_bytes: 512,
    block_read_bytes: 4096,
    block_write_bytes: 8192,
    pids: 1,
};
/// Smallest memory limit the fake engine accepts, MiB (dockerd refuses
/// less than 6 MB).
pub const MIN_MEMORY_MIB: u64 = 6;
/// How long [`TestService::stop`] waits for its tasks.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`TestService::events_applied`] waits for the reconciler.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often [`TestService::events_applied`] looks at the queues.
const APPLY_POLL: Duration = Duration::from_millis(2);
/// The instance the no-op events of [`TestService::events_applied`] are
/// about; no driver ever boots it.
const PROBE_INSTANCE: &str = "nest-test-event-probe";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing awaits or panics under these locks.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn refused(kind: ErrorKind, message: impl Into<String>) -> AgentError {
    AgentError::Refused {
        kind,
        message: message.into(),
    }
}

fn no_such_container(container: ContainerId) -> AgentError {
    refused(
        ErrorKind::NotFound,
        format!("No such container: {container}"),
    )
}

fn not_running(container: ContainerId) -> AgentError {
    refused(
        ErrorKind::Conflict,
        format!("container {container} is not running"),
    )
}

// === impl FakeAgents ===

/// One call the service made to [`FakeAgents`], in the order made.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentCall {
    /// The request the call was made under.
    pub request_id: RequestId,
    /// The instance whose agent was called; `None` for [`AgentCommand::Watch`].
    pub instance: Option<InstanceId>,
    /// What was asked.
    pub command: AgentCommand,
}

/// What a recorded [`AgentCall`] asked.
// A test-only record of calls: its size does not matter, and unboxed
// variants keep the tests' matches plain.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum AgentCommand {
    /// [`AgentLink::create`].
    Create(CreateRequest),
    /// [`AgentLink::act`].
    Act {
        /// The container.
        container: ContainerId,
        /// The action.
        action: AgentAction,
    },
    /// [`AgentLink::inspect`].
    Inspect {
        /// The container.
        container: ContainerId,
    },
    /// [`AgentLink::list`].
    List,
    /// [`AgentLink::update_resources`].
    UpdateResources {
        /// The container.
        container: ContainerId,
        /// The new limits.
        resources: Resources,
    },
    /// [`AgentLink::top`].
    Top {
        /// The container.
        container: ContainerId,
        /// The `ps` arguments.
        ps_args: Option<String>,
    },
    /// [`AgentLink::stats`].
    Stats {
        /// The container.
        container: ContainerId,
    },
    /// [`AgentLink::exec`].
    Exec {
        /// The container.
        container: ContainerId,
        /// The command.
        command: ExecCommand,
    },
    /// [`AgentLink::open_stream`].
    OpenStream(StreamOpen),
    /// [`AgentLink::watch`].
    Watch,
}

impl AgentCommand {
    /// The container the call was about, if any.
    pub fn container(&self) -> Option<ContainerId> {
        match self {
            Self::Create(request) => Some(request.container),
            Self::Act { container, .. }
            | Self::Inspect { container }
            | Self::UpdateResources { container, .. }
            | Self::Top { container, .. }
            | Self::Stats { container }
            | Self::Exec { container, .. } => Some(*container),
            Self::OpenStream(open) => open.container(),
            Self::List | Self::Watch => None,
        }
    }
}

/// A container as a [`FakeAgents`] engine holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeContainer {
    /// The instance it is on.
    pub instance: InstanceId,
    /// Its name on the engine.
    pub name: String,
    /// What it was created from.
    pub spec: ContainerSpec,
    /// Its engine state, as `inspect` answers it.
    pub state: EngineState,
    /// Its current CPU and memory limits.
    pub resources: Resources,
}

/// An image archive a [`FakeAgents`] engine loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedImage {
    /// The instance whose engine loaded it.
    pub instance: InstanceId,
    /// The request the load stream was opened under.
    pub request_id: RequestId,
    /// The archive's size, bytes.
    pub bytes: usize,
}

/// A terminal resize a [`FakeAgents`] stream received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedResize {
    /// The container of the stream.
    pub container: Option<ContainerId>,
    /// The new size.
    pub size: TtySize,
}

/// An agent session of one instance.
struct Session {
    id: u64,
    online: bool,
}

#[derive(Default)]
struct AgentsState {
    sessions: BTreeMap<InstanceId, Session>,
    containers: BTreeMap<ContainerId, FakeContainer>,
    logs: BTreeMap<ContainerId, String>,
    calls: Vec<AgentCall>,
    failures: VecDeque<AgentError>,
    feeds: Vec<mpsc::Sender<Result<AgentEvent, AgentError>>>,
    last_session: u64,
    resizes: Vec<RecordedResize>,
    loads: Vec<LoadedImage>,
    /// What an instance's agent says it is, when not this build's agent.
    releases: BTreeMap<InstanceId, FakeRelease>,
    /// What agents connecting for the first time say, when not this
    /// build's agent.
    default_release: Option<FakeRelease>,
}

/// An agent's release and features, as its hello says.
#[derive(Clone, Debug)]
struct FakeRelease {
    version: String,
    features: Vec<String>,
}

impl FakeRelease {
    fn new(version: &str, features: &[&str]) -> Self {
        Self {
            version: version.to_owned(),
            features: features.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    /// This build's agent.
    fn current() -> Self {
        Self::new(
            nest_relay::version::RELEASE,
            nest_relay::version::AGENT_FEATURES,
        )
    }
}

/// The agents of every instance, in memory: each behaves as a
/// well-behaved agent over a dockerd would.
///
/// - `create` makes a container (docker id: 64 hex digits), `Running`
///   when asked to start it, else `Created`; `act` moves its state as
///   dockerd does and refuses with `Conflict` where dockerd refuses (pause
///   or kill a container that is not running, unpause one that is not
///   paused, start a paused one, remove a running one without force);
///   starting a running container and stopping a stopped one change
///   nothing, as dockerd's 304 answers.
/// - `top` answers [`TOP_TITLES`] and one row running the container's
///   entrypoint and command; `stats` answers [`FAKE_USAGE`].
/// - `exec` captures: stdout is the command joined by spaces plus `"\n"`,
///   stderr is empty and the exit code 0.
/// - Streams: logs are the container's canned lines ([`Self::set_logs`])
///   and then the end (following or not); exec and attach echo stdin back
///   (as `Tty` output when the container or exec has a terminal, else
///   `Stdout`) and end with exit code 0 once stdin is closed (an exec
///   without stdin prints its command and ends at once); an image load
///   takes stdin and ends once it is closed.
/// - Every container change is announced on the watch feeds as the
///   engine's event, and sessions as [`AgentEvent::Connected`] and
///   [`AgentEvent::Disconnected`]; a new feed starts with every live
///   session, as the relay's does. Agents say they are this build's
///   (release and features) unless [`Self::connect_as`] or
///   [`Self::set_default_release`] make them older.
///
/// An agent that is not connected (never booted, deleted, or
/// [`Self::set_offline`]) answers every call `Unavailable`, as the relay
/// does. Every call is recorded with its request id ([`Self::calls`]);
/// [`Self::fail_next`] makes calls refuse.
#[derive(Default)]
pub struct FakeAgents {
    state: Arc<Mutex<AgentsState>>,
}

impl FakeAgents {
    /// Agents of no instance yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connects the agent of `instance` (again), with the containers its
    /// engine still has, and announces the session on the watch feeds.
    /// Returns the session's id.
    pub async fn connect(&self, instance: &InstanceId) -> u64 {
        let (session, event) = {
            let mut state = lock(&self.state);
            state.last_session += 1;
            let id = state.last_session;
            // An agent keeps the release it first connected with.
            let release = state
                .default_release
                .clone()
                .unwrap_or_else(FakeRelease::current);
            state.releases.entry(instance.clone()).or_insert(release);
            state
                .sessions
                .insert(instance.clone(), Session { id, online: true });
            (id, state.connected(instance, id))
        };
        self.announce(vec![event]).await;
        session
    }

    /// Connects the agent of `instance` (again) as an agent of release
    /// `version` that lists `features` (an older agent: none), as
    /// [`Self::connect`] does; it stays that release on later connects.
    pub async fn connect_as(&self, instance: &InstanceId, version: &str, features: &[&str]) -> u64 {
        lock(&self.state)
            .releases
            .insert(instance.clone(), FakeRelease::new(version, features));
        self.connect(instance).await
    }

    /// Makes every agent that connects from now on, on an instance whose
    /// release was not set, say it is of release `version` and lists
    /// `features`.
    pub fn set_default_release(&self, version: &str, features: &[&str]) {
        lock(&self.state).default_release = Some(FakeRelease::new(version, features));
    }

    /// Takes the agent of `instance` offline (its session ends and is
    /// announced as [`AgentEvent::Disconnected`]; every call to it fails
    /// `Unavailable`), or brings it back (a new session, announced with
    /// its inventory). Its containers stay on its engine either way.
    pub async fn set_offline(&self, instance: &InstanceId, offline: bool) {
        if offline {
            let event = {
                let mut state = lock(&self.state);
                match state.sessions.get_mut(instance) {
                    Some(session) if session.online => {
                        session.online = false;
                        Some(AgentEvent::Disconnected {
                            instance: instance.clone(),
                            session: session.id,
                            reason: "the agent went offline".into(),
                        })
                    }
                    _ => None,
                }
            };
            self.announce(event.into_iter().collect()).await;
        } else {
            self.connect(instance).await;
        }
    }

    /// The agent of a deleted instance: its session ends (announced) and
    /// its engine's containers are gone.
    async fn forget(&self, instance: &InstanceId) {
        let event = {
            let mut state = lock(&self.state);
            state.containers.retain(|_, c| &c.instance != instance);
            state
                .sessions
                .remove(instance)
                .filter(|s| s.online)
                .map(|s| AgentEvent::Disconnected {
                    instance: instance.clone(),
                    session: s.id,
                    reason: "the instance was deleted".into(),
                })
        };
        self.announce(event.into_iter().collect()).await;
    }

    /// Makes the next call (any but `watch`, whichever instance it goes
    /// to) refuse with [`AgentError::Refused`] of `kind`; calls queue up
    /// one failure each.
    pub fn fail_next(&self, kind: ErrorKind, message: impl Into<String>) {
        lock(&self.state).failures.push_back(refused(kind, message));
    }

    /// Sets the canned log text of `container` (before or after it
    /// exists); logs streams send it line by line.
    pub fn set_logs(&self, container: ContainerId, text: impl Into<String>) {
        lock(&self.state).logs.insert(container, text.into());
    }

    /// Every call made so far, in order.
    pub fn calls(&self) -> Vec<AgentCall> {
        lock(&self.state).calls.clone()
    }

    /// The calls made so far about `container`, in order.
    pub fn calls_for(&self, container: ContainerId) -> Vec<AgentCall> {
        lock(&self.state)
            .calls
            .iter()
            .filter(|c| c.command.container() == Some(container))
            .cloned()
            .collect()
    }

    /// A container as its engine holds it now; `None` when no engine has
    /// it.
    pub fn container(&self, container: ContainerId) -> Option<FakeContainer> {
        lock(&self.state).containers.get(&container).cloned()
    }

    /// Makes the engine lose `container` without a word, as a wiped disk
    /// or a hand-run `docker rm` the agent never saw would.
    pub fn lose(&self, container: ContainerId) {
        lock(&self.state).containers.remove(&container);
    }

    /// Every terminal resize the streams received, in order.
    pub fn resizes(&self) -> Vec<RecordedResize> {
        lock(&self.state).resizes.clone()
    }

    /// Every image archive the engines loaded, in order.
    pub fn loaded_images(&self) -> Vec<LoadedImage> {
        lock(&self.state).loads.clone()
    }

    /// Whether the service has taken every event announced so far off
    /// its watch feeds.
    fn feeds_drained(&self) -> bool {
        lock(&self.state)
            .feeds
            .iter()
            .filter(|feed| !feed.is_closed())
            .all(|feed| feed.capacity() == feed.max_capacity())
    }

    /// Whether the agent of `instance` is connected.
    pub fn is_online(&self, instance: &InstanceId) -> bool {
        lock(&self.state).is_online(instance)
    }

    /// Records a call, then refuses it if a failure is queued or the
    /// instance's agent is not connected, else answers it with `answer`.
    fn call<T>(
        &self,
        request_id: &RequestId,
        instance: Option<&InstanceId>,
        command: AgentCommand,
        answer: impl FnOnce(&mut AgentsState) -> Result<(T, Vec<AgentEvent>), AgentError>,
    ) -> Result<(T, Vec<AgentEvent>), AgentError> {
        let mut state = lock(&self.state);
        let is_watch = command == AgentCommand::Watch;
        state.calls.push(AgentCall {
            request_id: request_id.clone(),
            instance: instance.cloned(),
            command,
        });
        if !is_watch && let Some(failure) = state.failures.pop_front() {
            return Err(failure);
        }
        if let Some(instance) = instance
            && !state.is_online(instance)
        {
            return Err(refused(
                ErrorKind::Unavailable,
                format!("the agent of instance {instance} is not connected"),
            ));
        }
        answer(&mut state)
    }

    /// Sends `events` to every open watch feed, in order, as the relay
    /// would pass them on from agents (tests use it to play an agent that
    /// says what it should not).
    pub async fn announce(&self, events: Vec<AgentEvent>) {
        if events.is_empty() {
            return;
        }
        let feeds = {
            let mut state = lock(&self.state);
            state.feeds.retain(|feed| !feed.is_closed());
            state.feeds.clone()
        };
        for event in events {
            for feed in &feeds {
                // A feed whose reader is gone has nobody to tell.
                let _ = feed.send(Ok(event.clone())).await;
            }
        }
    }

    /// Answers a call and announces what it changed.
    async fn finish<T>(
        &self,
        outcome: Result<(T, Vec<AgentEvent>), AgentError>,
    ) -> Result<T, AgentError> {
        let (value, events) = outcome?;
        self.announce(events).await;
        Ok(value)
    }
}

impl AgentsState {
    fn is_online(&self, instance: &InstanceId) -> bool {
        self.sessions.get(instance).is_some_and(|s| s.online)
    }

    fn connected(&self, instance: &InstanceId, session: u64) -> AgentEvent {
        let release = self
            .releases
            .get(instance)
            .cloned()
            .unwrap_or_else(FakeRelease::current);
        AgentEvent::Connected {
            instance: instance.clone(),
            session,
            inventory: self.inventory(instance),
            agent_version: release.version,
            features: release.features,
        }
    }

    fn inventory(&self, instance: &InstanceId) -> Vec<EngineState> {
        self.containers
            .values()
            .filter(|c| &c.instance == instance)
            .map(|c| c.state.clone())
            .collect()
    }

    fn on(
        &mut self,
        instance: &InstanceId,
        container: ContainerId,
    ) -> Result<&mut FakeContainer, AgentError> {
        self.containers
            .get_mut(&container)
            .filter(|c| &c.instance == instance)
            .ok_or_else(|| no_such_container(container))
    }

    fn create(
        &mut self,
        instance: &InstanceId,
        request: CreateRequest,
    ) -> Result<(EngineState, Vec<AgentEvent>), AgentError> {
        if self.on(instance, request.container).is_ok() {
            return Err(refused(
                ErrorKind::Conflict,
                format!("the agent already has container {}", request.container),
            ));
        }
        let state = EngineState {
            container: request.container,
            docker_id: docker_id(),
            status: if request.start {
                ContainerStatus::Running
            } else {
                ContainerStatus::Created
            },
            status_reason: None,
            exit_code: 0,
            health: None,
        };
        let resources = Resources {
            cpu: request.spec.cpu,
            memory_mib: request.spec.memory_mib,
        };
        self.containers.insert(
            request.container,
            FakeContainer {
                instance: instance.clone(),
                name: request.name,
                spec: request.spec,
                state: state.clone(),
                resources,
            },
        );
        let word = if request.start { "start" } else { "create" };
        let event = engine_event(instance, &state, EngineAction::Other(word.into()));
        Ok((state, vec![event]))
    }

    fn act(
        &mut self,
        instance: &InstanceId,
        container: ContainerId,
        action: AgentAction,
    ) -> Result<(Option<EngineState>, Vec<AgentEvent>), AgentError> {
        use ContainerStatus::{Paused, Restarting, Running};
        let held = self.on(instance, container)?;
        let status = held.state.status;
        let is_up = matches!(status, Running | Paused | Restarting);
        // (the engine's event word, the new status, the exit code)
        let change = match action {
            AgentAction::Start => match status {
                Running => None,
                Paused => {
                    return Err(refused(
                        ErrorKind::Conflict,
                        "cannot start a paused container, try unpause instead",
                    ));
                }
                _ => Some(("start", Running, 0)),
            },
            AgentAction::Stop { .. } => is_up.then_some(("stop", ContainerStatus::Stopped, 0)),
            AgentAction::Restart { .. } => Some(("restart", Running, 0)),
            AgentAction::Pause => match status {
                Running => Some(("pause", Paused, held.state.exit_code)),
                Paused => {
                    return Err(refused(
                        ErrorKind::Conflict,
                        format!("container {container} is already paused"),
                    ));
                }
                _ => return Err(not_running(container)),
            },
            AgentAction::Unpause => match status {
                Paused => Some(("unpause", Running, held.state.exit_code)),
                _ => {
                    return Err(refused(
                        ErrorKind::Conflict,
                        format!("container {container} is not paused"),
                    ));
                }
            },
            AgentAction::Kill { signal } => {
                if !is_up {
                    return Err(not_running(container));
                }
                // A signal the process survives changes nothing.
                exit_code_of(signal.as_deref()).map(|code| ("kill", ContainerStatus::Stopped, code))
            }
            AgentAction::Remove { force } => {
                if is_up && !force {
                    return Err(refused(
                        ErrorKind::Conflict,
                        format!(
                            "cannot remove container {container}: container is running: stop the container before removing or force remove"
                        ),
                    ));
                }
                self.containers.remove(&container);
                let event = AgentEvent::Container {
                    instance: instance.clone(),
                    event: ContainerEvent {
                        container,
                        action: EngineAction::Destroy,
                        state: None,
                    },
                };
                return Ok((None, vec![event]));
            }
        };
        let mut events = Vec::new();
        if let Some((word, new_status, exit_code)) = change {
            held.state.status = new_status;
            held.state.exit_code = exit_code;
            held.state.status_reason = (new_status == ContainerStatus::Stopped)
                .then(|| format!("exited with code {exit_code}"));
            events.push(engine_event(
                instance,
                &held.state,
                EngineAction::Other(word.into()),
            ));
        }
        Ok((Some(held.state.clone()), events))
    }

    fn open(
        &mut self,
        instance: &InstanceId,
        request_id: &RequestId,
        open: &StreamOpen,
    ) -> Result<FakeStream, AgentError> {
        let mut stream = FakeStream {
            state: Arc::default(),
            instance: instance.clone(),
            request_id: request_id.clone(),
            container: open.container(),
            mode: StreamMode::Done,
            pending: VecDeque::new(),
            stdin_closed: false,
            ended: false,
        };
        match open {
            StreamOpen::LoadImage => stream.mode = StreamMode::Load { bytes: 0 },
            StreamOpen::Logs { container, options } => {
                let held = match self.on(instance, *container) {
                    Ok(held) => held.clone(),
                    Err(e) => return Ok(stream.failed(&e)),
                };
                if options.stdout {
                    let text = self.logs.get(container).cloned().unwrap_or_default();
                    let lines: Vec<&str> = text.split_inclusive('\n').collect();
                    let skip = options
                        .tail
                        .and_then(|tail| usize::try_from(tail).ok())
                        .map_or(0, |tail| lines.len().saturating_sub(tail));
                    for line in &lines[skip..] {
                        stream.output(held.spec.tty, Bytes::copy_from_slice(line.as_bytes()));
                    }
                }
                stream.end(None);
            }
            StreamOpen::Exec {
                container,
                command,
                tty,
                stdin,
                ..
            } => {
                let running =
                    self.on(instance, *container)
                        .and_then(|held| match held.state.status {
                            ContainerStatus::Running => Ok(()),
                            _ => Err(not_running(*container)),
                        });
                if let Err(e) = running {
                    return Ok(stream.failed(&e));
                }
                stream.pending.push_back(StreamEvent::Started);
                if *stdin {
                    stream.mode = StreamMode::Echo { tty: *tty };
                } else {
                    stream.output(*tty, Bytes::from(format!("{}\n", command.join(" "))));
                    stream.end(Some(0));
                }
            }
            StreamOpen::Attach {
                container, logs, ..
            } => {
                let held = match self.on(instance, *container) {
                    Ok(held) if held.state.status == ContainerStatus::Running => held.clone(),
                    Ok(_) => return Ok(stream.failed(&not_running(*container))),
                    Err(e) => return Ok(stream.failed(&e)),
                };
                stream.pending.push_back(StreamEvent::Started);
                if *logs {
                    let text = self.logs.get(container).cloned().unwrap_or_default();
                    if !text.is_empty() {
                        stream.output(held.spec.tty, Bytes::from(text));
                    }
                }
                stream.mode = StreamMode::Echo { tty: held.spec.tty };
            }
        }
        Ok(stream)
    }
}

/// A fresh docker id: 64 lowercase hex digits.
fn docker_id() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The exit code of a process killed by `signal` (`None` is SIGKILL);
/// `None` for a signal it survives (anything but KILL, TERM and INT).
fn exit_code_of(signal: Option<&str>) -> Option<i64> {
    let name = signal.unwrap_or("KILL").to_ascii_uppercase();
    match name.trim_start_matches("SIG") {
        "KILL" | "9" => Some(137),
        "TERM" | "15" => Some(143),
        "INT" | "2" => Some(130),
        _ => None,
    }
}

fn engine_event(instance: &InstanceId, state: &EngineState, action: EngineAction) -> AgentEvent {
    AgentEvent::Container {
        instance: instance.clone(),
        event: ContainerEvent {
            container: state.container,
            action,
            state: Some(state.clone()),
        },
    }
}

impl AgentLink for FakeAgents {
    fn create<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
        request: CreateRequest,
    ) -> AgentFuture<'a, EngineState> {
        async move {
            let outcome = self.call(
                request_id,
                Some(instance),
                AgentCommand::Create(request.clone()),
                |state| state.create(instance, request),
            );
            self.finish(outcome).await
        }
        .boxed()
    }

    fn act<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
        container: ContainerId,
        action: AgentAction,
    ) -> AgentFuture<'a, Option<EngineState>> {
        async move {
            let command = AgentCommand::Act {
                container,
                action: action.clone(),
            };
            let outcome = self.call(request_id, Some(instance), command, |state| {
                state.act(instance, container, action)
            });
            self.finish(outcome).await
        }
        .boxed()
    }

    fn inspect<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
        container: ContainerId,
    ) -> AgentFuture<'a, EngineState> {
        async move {
            let command = AgentCommand::Inspect { container };
            let outcome = self.call(request_id, Some(instance), command, |state| {
                Ok((state.on(instance, container)?.state.clone(), Vec::new()))
            });
            self.finish(outcome).await
        }
        .boxed()
    }

    fn list<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
    ) -> AgentFuture<'a, Vec<EngineState>> {
        async move {
            let outcome = self.call(request_id, Some(instance), AgentCommand::List, |state| {
                Ok((state.inventory(instance), Vec::new()))
            });
            self.finish(outcome).await
        }
        .boxed()
    }

    fn update_resources<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
        container: ContainerId,
        resources: Resources,
    ) -> AgentFuture<'a, EngineState> {
        async move {
            let command = AgentCommand::UpdateResources {
                container,
                resources,
            };
            let outcome = self.call(request_id, Some(instance), command, |state| {
                let held = state.on(instance, container)?;
                if resources.memory_mib < MIN_MEMORY_MIB {
                    return Err(refused(
                        ErrorKind::Invalid,
                        "Minimum memory limit allowed is 6MB",
                    ));
                }
                if resources.cpu <= 0.0 {
                    return Err(refused(
                        ErrorKind::Invalid,
                        "Range of CPUs is from 0.01 to the number of CPUs available",
                    ));
                }
                held.resources = resources;
                Ok((held.state.clone(), Vec::new()))
            });
            self.finish(outcome).await
        }
        .boxed()
    }

    fn top<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
        container: ContainerId,
        ps_args: Option<String>,
    ) -> AgentFuture<'a, ProcessTable> {
        async move {
            let command = AgentCommand::Top { container, ps_args };
            let outcome = self.call(request_id, Some(instance), command, |state| {
                let held = state.on(instance, container)?;
                if held.state.status != ContainerStatus::Running {
                    return Err(not_running(container));
                }
                Ok((process_table(&held.spec), Vec::new()))
            });
            self.finish(outcome).await
        }
        .boxed()
    }

    fn stats<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
        container: ContainerId,
    ) -> AgentFuture<'a, ResourceUsage> {
        async move {
            let command = AgentCommand::Stats { container };
            let outcome = self.call(request_id, Some(instance), command, |state| {
                let held = state.on(instance, container)?;
                let usage = ResourceUsage {
                    memory_limit_bytes: held.resources.memory_mib * 1024 * 1024,
                    ..FAKE_USAGE
                };
                Ok((usage, Vec::new()))
            });
            self.finish(outcome).await
        }
        .boxed()
    }

    fn exec<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
        container: ContainerId,
        command: ExecCommand,
    ) -> AgentFuture<'a, ExecOutput> {
        async move {
            let argv = command.command.join(" ");
            let recorded = AgentCommand::Exec { container, command };
            let outcome = self.call(request_id, Some(instance), recorded, |state| {
                let held = state.on(instance, container)?;
                if held.state.status != ContainerStatus::Running {
                    return Err(not_running(container));
                }
                let output = ExecOutput {
                    stdout: Bytes::from(format!("{argv}\n")),
                    stderr: Bytes::new(),
                    exit_code: 0,
                    truncated: false,
                };
                Ok((output, Vec::new()))
            });
            self.finish(outcome).await
        }
        .boxed()
    }

    fn open_stream<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
        open: StreamOpen,
    ) -> AgentFuture<'a, Box<dyn AgentStream>> {
        async move {
            let command = AgentCommand::OpenStream(open.clone());
            let outcome = self.call(request_id, Some(instance), command, |state| {
                Ok((state.open(instance, request_id, &open)?, Vec::new()))
            });
            let mut stream = self.finish(outcome).await?;
            stream.state = self.state.clone();
            Ok(Box::new(stream) as Box<dyn AgentStream>)
        }
        .boxed()
    }

    fn watch<'a>(&'a self, request_id: &'a RequestId) -> AgentFuture<'a, EventFeed> {
        async move {
            let outcome = self.call(request_id, None, AgentCommand::Watch, |state| {
                let (tx, rx) = mpsc::channel(FEED_QUEUE);
                // The feed starts with every live session; a new feed
                // holds fewer sessions than it has room for.
                for (instance, session) in &state.sessions {
                    if session.online
                        && tx
                            .try_send(Ok(state.connected(instance, session.id)))
                            .is_err()
                    {
                        tracing::warn!(instance_id = %instance, "watch feed full; session not replayed");
                    }
                }
                state.feeds.push(tx);
                Ok((rx, Vec::new()))
            });
            let rx = self.finish(outcome).await?;
            let feed: EventFeed = tokio_stream::wrappers::ReceiverStream::new(rx).boxed();
            Ok(feed)
        }
        .boxed()
    }
}

/// `docker top` of a container: one process running its entrypoint and
/// command (its image's name when it has neither).
fn process_table(spec: &ContainerSpec) -> ProcessTable {
    let argv: Vec<&str> = spec
        .entrypoint
        .iter()
        .chain(&spec.command)
        .map(String::as_str)
        .collect();
    let cmd = if argv.is_empty() {
        spec.image.clone()
    } else {
        argv.join(" ")
    };
    let row = ["root", "1", "0", "0", "00:00", "?", "00:00:00"]
        .into_iter()
        .map(str::to_owned)
        .chain([cmd])
        .collect();
    ProcessTable {
        titles: TOP_TITLES.into_iter().map(str::to_owned).collect(),
        processes: vec![row],
    }
}

// === impl FakeStream ===

/// What a stream does with its input.
enum StreamMode {
    /// Echoes stdin back as output, as `cat` would.
    Echo { tty: bool },
    /// Takes an image archive as stdin.
    Load { bytes: usize },
    /// Takes no input (logs, a failed or finished stream).
    Done,
}

/// One stream to a [`FakeAgents`] agent. What it sends is queued when it
/// is produced (output is never held back by a full window); once the
/// queue is empty a live stream waits for input.
struct FakeStream {
    state: Arc<Mutex<AgentsState>>,
    instance: InstanceId,
    request_id: RequestId,
    container: Option<ContainerId>,
    mode: StreamMode,
    pending: VecDeque<StreamEvent>,
    stdin_closed: bool,
    ended: bool,
}

impl FakeStream {
    fn output(&mut self, tty: bool, data: Bytes) {
        let stream = if tty {
            OutputStream::Tty
        } else {
            OutputStream::Stdout
        };
        self.pending.push_back(StreamEvent::Output { stream, data });
    }

    fn end(&mut self, exit_code: Option<i64>) {
        self.pending.push_back(StreamEvent::End { exit_code });
        self.mode = StreamMode::Done;
        self.ended = true;
    }

    fn failed(mut self, e: &AgentError) -> Self {
        self.pending.push_back(StreamEvent::Failed {
            kind: e.kind(),
            message: e.to_string(),
        });
        self.ended = true;
        self
    }
}

impl AgentStream for FakeStream {
    fn send(&mut self, input: StreamInput) -> AgentFuture<'_, ()> {
        async move {
            if self.ended {
                return Err(refused(ErrorKind::Unavailable, "the stream has ended"));
            }
            match input {
                StreamInput::Resize(size) => {
                    lock(&self.state).resizes.push(RecordedResize {
                        container: self.container,
                        size,
                    });
                }
                StreamInput::Stdin(_) | StreamInput::CloseStdin if self.stdin_closed => {
                    return Err(refused(ErrorKind::Invalid, "stdin is already closed"));
                }
                StreamInput::Stdin(data) => match &mut self.mode {
                    StreamMode::Echo { tty } => {
                        let tty = *tty;
                        self.output(tty, data);
                    }
                    StreamMode::Load { bytes } => *bytes += data.len(),
                    StreamMode::Done => {}
                },
                StreamInput::CloseStdin => {
                    self.stdin_closed = true;
                    match self.mode {
                        StreamMode::Echo { .. } => self.end(Some(0)),
                        StreamMode::Load { bytes } => {
                            lock(&self.state).loads.push(LoadedImage {
                                instance: self.instance.clone(),
                                request_id: self.request_id.clone(),
                                bytes,
                            });
                            self.end(None);
                        }
                        StreamMode::Done => {}
                    }
                }
            }
            Ok(())
        }
        .boxed()
    }

    fn next(&mut self) -> BoxFuture<'_, Option<Result<StreamEvent, AgentError>>> {
        async move {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.ended {
                return None;
            }
            // Nothing is taken before this point, so dropping the future
            // here loses nothing.
            std::future::pending().await
        }
        .boxed()
    }
}

// === impl FakeDriver ===

#[derive(Default)]
struct DriverState {
    instances: BTreeMap<InstanceId, BootedInstance>,
    boots: Vec<BootRequest>,
    failures: VecDeque<DriverError>,
    booted: u32,
}

/// Instances in memory: a boot succeeds at once (unless a failure is
/// queued with [`Self::fail_next_boot`]) with the requested id, the local
/// driver's size and the address `10.0.0.N` on [`FAKE_NETWORK`] for the
/// N-th instance booted; its agent then connects on the [`FakeAgents`]
/// given, so the reconciler sees the instance become ready. Deleting an
/// instance ends its agent's session and loses its containers.
pub struct FakeDriver {
    agents: Arc<FakeAgents>,
    state: Mutex<DriverState>,
}

impl FakeDriver {
    /// A driver whose instances' agents connect on `agents`.
    pub fn new(agents: Arc<FakeAgents>) -> Self {
        Self {
            agents,
            state: Mutex::default(),
        }
    }

    /// Makes the next boot fail with `error` (nothing is booted); boots
    /// queue up one failure each.
    pub fn fail_next_boot(&self, error: DriverError) {
        lock(&self.state).failures.push_back(error);
    }

    /// Every boot asked for so far, refused ones included, in order.
    pub fn boots(&self) -> Vec<BootRequest> {
        lock(&self.state).boots.clone()
    }

    /// The instances that exist now.
    pub fn instances(&self) -> Vec<BootedInstance> {
        lock(&self.state).instances.values().cloned().collect()
    }
}

impl InstanceDriver for FakeDriver {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn boot(&self, req: BootRequest) -> BoxFuture<'_, Result<BootedInstance, DriverError>> {
        async move {
            let booted = {
                let mut state = lock(&self.state);
                state.boots.push(req.clone());
                if let Some(failure) = state.failures.pop_front() {
                    return Err(failure);
                }
                state.booted += 1;
                let address = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + state.booted);
                let booted = BootedInstance {
                    id: req.instance_id.clone(),
                    addresses: BTreeMap::from([(FAKE_NETWORK.to_owned(), IpAddr::V4(address))]),
                    vcpus: crate::driver::local::DEFAULT_VCPUS,
                    memory_mib: crate::driver::local::DEFAULT_MEMORY_MIB,
                };
                state.instances.insert(booted.id.clone(), booted.clone());
                booted
            };
            self.agents.connect(&booted.id).await;
            Ok(booted)
        }
        .boxed()
    }

    fn delete<'a>(&'a self, id: &'a InstanceId) -> BoxFuture<'a, Result<(), DriverError>> {
        async move {
            let existed = lock(&self.state).instances.remove(id).is_some();
            if existed {
                self.agents.forget(id).await;
            }
            Ok(())
        }
        .boxed()
    }

    fn list(&self) -> BoxFuture<'_, Result<Listing, DriverError>> {
        let ids = lock(&self.state).instances.keys().cloned().collect();
        async move { Ok(Listing::complete(ids)) }.boxed()
    }
}

// === impl TestService ===

/// Why a [`TestService`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum TestServiceError {
    /// Its scratch directory could not be made.
    #[error("making the scratch directory")]
    ScratchDir(#[source] std::io::Error),
    /// Its database could not be opened or migrated.
    #[error("opening the database")]
    Database(#[source] DbError),
    /// Its CA could not be made.
    #[error("making the CA")]
    Ca(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The scheduler settings of a [`TestService`]: an instance of the local
/// driver's size, one boot per project at a time, a boot that gives up
/// after 10 s and an idle instance that goes after a minute; agents are
/// told of a relay that is never dialled.
pub fn test_settings(ca_pem: String) -> SchedulerSettings {
    SchedulerSettings {
        max_boots_per_project: 1,
        boot_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        warm_pool: 0,
        instance_vcpus: crate::driver::local::DEFAULT_VCPUS,
        instance_memory_mib: crate::driver::local::DEFAULT_MEMORY_MIB,
        flavor: None,
        image: None,
        network: None,
        relay_advertise: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9),
        ca_pem,
        agent_source: nest_cloud_init::AgentSource::default(),
        create_attempts: 5,
        create_retry_delay: Duration::from_millis(50),
    }
}

/// The real service (store over SQLite in a scratch directory, scheduler,
/// reconciler, [`App`]) as `server::run` assembles it, minus HTTP and the
/// relay: agents are [`FakeAgents`] and instances [`FakeDriver`]'s.
///
/// Dropping it cancels its tasks (which then end) and removes its
/// directory; [`Self::stop`] also waits for the tasks and closes the
/// database.
pub struct TestService {
    app: App,
    store: Store,
    agents: Arc<FakeAgents>,
    driver: Arc<FakeDriver>,
    /// The reconciler's event queue, to see when it has taken every event.
    events: mpsc::Sender<AgentEvent>,
    metrics: crate::metrics::Metrics,
    cancel: CancellationToken,
    tasks: TaskTracker,
    dir: tempfile::TempDir,
}

impl TestService {
    /// Starts a service with [`test_settings`].
    ///
    /// # Errors
    /// [`TestServiceError`] when a part cannot be made.
    pub async fn start() -> Result<Self, TestServiceError> {
        Self::start_with(|_| {}).await
    }

    /// Starts a service with [`test_settings`] changed by `configure`.
    ///
    /// # Errors
    /// [`TestServiceError`] when a part cannot be made.
    pub async fn start_with(
        configure: impl FnOnce(&mut SchedulerSettings),
    ) -> Result<Self, TestServiceError> {
        let dir = tempfile::tempdir().map_err(TestServiceError::ScratchDir)?;
        let url = format!("sqlite://{}/nest.db?mode=rwc", dir.path().display());
        let store = Store::connect(&url)
            .await
            .map_err(TestServiceError::Database)?;
        let ca = tokio::task::spawn_blocking(|| {
            nest_pki::CertificateAuthority::generate("nest-test-ca")
        })
        .await
        .map_err(|e| TestServiceError::Ca(Box::new(e)))?
        .map_err(|e| TestServiceError::Ca(Box::new(e)))?;
        let mut settings = test_settings(ca.certificate_pem().to_owned());
        configure(&mut settings);

        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let agents = Arc::new(FakeAgents::new());
        let driver = Arc::new(FakeDriver::new(agents.clone()));
        let tokens: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::new());
        let images = Arc::new(ProjectImages::new(dir.path().join("images")));
        let (events_tx, events_rx) = mpsc::channel(crate::agents::EVENT_QUEUE);
        tasks.spawn(crate::agents::follow(
            agents.clone(),
            events_tx.clone(),
            cancel.clone(),
        ));
        let metrics = crate::metrics::Metrics::new();
        let app = crate::server::start_core(
            crate::server::CoreParts {
                store: store.clone(),
                driver: driver.clone(),
                agents: agents.clone(),
                events: events_rx,
                images,
                tokens,
                settings,
                metrics: metrics.clone(),
            },
            &tasks,
            &cancel,
        );
        Ok(Self {
            app,
            store,
            agents,
            driver,
            events: events_tx,
            metrics,
            cancel,
            tasks,
            dir,
        })
    }

    /// The container service.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The agents of its instances.
    pub fn agents(&self) -> &Arc<FakeAgents> {
        &self.agents
    }

    /// Its instance driver.
    pub fn driver(&self) -> &Arc<FakeDriver> {
        &self.driver
    }

    /// Its metrics registry, as `/metrics` would render it.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// Its scratch directory (the database, stored images).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Waits until the reconciler has applied every agent event announced
    /// so far (the engine events of the calls made before, and sessions).
    ///
    /// The reconciler applies events one at a time in the order announced,
    /// so three no-op events (the end of a session of an instance that
    /// does not exist) go the same way: once the feeds are drained the
    /// second is in the reconciler's queue, and once that queue is empty
    /// the first, and every event before it, has been applied.
    ///
    /// # Panics
    /// When the events are not applied within 10 s.
    pub async fn events_applied(&self) {
        let instance = InstanceId::parse(PROBE_INSTANCE).expect("a valid instance id");
        for session in 0..3 {
            let probe = AgentEvent::Disconnected {
                instance: instance.clone(),
                session,
                reason: "an event probe of the test service".into(),
            };
            self.agents.announce(vec![probe]).await;
        }
        let deadline = tokio::time::Instant::now() + APPLY_TIMEOUT;
        while !(self.agents.feeds_drained() && self.events.capacity() == self.events.max_capacity())
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the reconciler did not apply the agents' events within {APPLY_TIMEOUT:?}"
            );
            tokio::time::sleep(APPLY_POLL).await;
        }
    }

    /// Stops its tasks, waits for them to end, and closes the database.
    ///
    /// # Panics
    /// When the tasks are still running after 10 s: something it started
    /// does not stop.
    pub async fn stop(self) {
        self.cancel.cancel();
        self.tasks.close();
        let stopped = tokio::time::timeout(STOP_TIMEOUT, self.tasks.wait()).await;
        assert!(
            stopped.is_ok(),
            "the test service's tasks did not stop within {STOP_TIMEOUT:?}"
        );
        self.store.close().await;
    }
}

impl Drop for TestService {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.tasks.close();
    }
}
