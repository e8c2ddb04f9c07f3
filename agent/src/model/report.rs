//! What the agent reports: the engine's view of a container, its events,
//! the results of the one-shot queries, and why something failed.

use std::collections::BTreeMap;

use nest_core::ErrorKind;

use super::{ContainerUuid, PortBinding};

/// The engine's state word for a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineStatus {
    /// Created, never started.
    Created,
    /// Running (possibly paused: see [`EngineStatus::Paused`]).
    Running,
    /// Frozen by a pause.
    Paused,
    /// Being restarted by its restart policy.
    Restarting,
    /// Being removed.
    Removing,
    /// Being stopped.
    Stopping,
    /// Exited.
    Exited,
    /// Failed to be removed, or otherwise unusable.
    Dead,
}

impl EngineStatus {
    /// The engine's spelling (`running`, `exited`, ...): the only place
    /// these strings exist in the agent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Restarting => "restarting",
            Self::Removing => "removing",
            Self::Stopping => "stopping",
            Self::Exited => "exited",
            Self::Dead => "dead",
        }
    }
}

/// The engine's view of one container the agent manages.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerState {
    /// Nest's container uuid.
    pub uuid: ContainerUuid,
    /// The engine's container id.
    pub docker_id: String,
    /// The engine's container name (`nest-<uuid>`).
    pub name: String,
    /// The image the container runs, as its config names it.
    pub image: String,
    /// The engine's state word; `None` when the engine gave none.
    pub status: Option<EngineStatus>,
    /// Whether the main process runs.
    pub running: bool,
    /// Exit code of the last run.
    pub exit_code: i64,
    /// When it last started, RFC 3339 as the engine reports it; `None`
    /// when never started.
    pub started_at: Option<String>,
    /// When it last finished, as `started_at`; `None` when never finished.
    pub finished_at: Option<String>,
    /// Whether the last run was killed for lack of memory.
    pub oom_killed: bool,
    /// Restarts by the restart policy.
    pub restart_count: u64,
    /// The host ports actually bound; empty while not running.
    pub ports: Vec<PortBinding>,
    /// Every label of the container, Nest's own included.
    pub labels: BTreeMap<String, String>,
    /// The engine's error string, when it has one.
    pub error: Option<String>,
    /// The main process's id on the instance, while it runs.
    pub pid: Option<u32>,
    /// Its healthcheck's verdict; `None` without a healthcheck.
    pub health: Option<nest_core::engine_options::Health>,
}

/// A lifecycle event of one container, as the engine reported it.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerEvent {
    /// Nest's container uuid.
    pub uuid: ContainerUuid,
    /// The engine's container id.
    pub docker_id: String,
    /// The engine's action word: `create`, `start`, `die`, `oom`, ...,
    /// `health_status: healthy`.
    pub action: String,
    /// Exit code for `die`, when the engine reports one.
    pub exit_code: Option<i64>,
    /// Unix time of the event in nanoseconds, from the engine.
    pub time_nanos: i64,
    /// The container's state read right after the event; `None` for
    /// `destroy` or when it could not be read.
    pub state: Option<ContainerState>,
}

/// The engine answers, and which versions are in play.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pong {
    /// This agent's release.
    pub agent_version: String,
    /// The engine's version (`20.10.24+dfsg1`).
    pub docker_version: String,
    /// The negotiated API version (`1.41`).
    pub docker_api_version: String,
}

/// An image is on the instance now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImagePulled {
    /// The engine's image id.
    pub image_id: String,
}

/// The process table `docker top` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopResult {
    /// Column titles (`UID`, `PID`, ...).
    pub titles: Vec<String>,
    /// One row of cells per process.
    pub processes: Vec<Vec<String>>,
}

/// One resource sample, reduced the way `docker stats` reduces it.
#[derive(Clone, Debug, PartialEq)]
pub struct StatsResult {
    /// CPU use in percent of one CPU (up to `100 × online CPUs`).
    pub cpu_percent: f64,
    /// Memory in use without the page cache, in bytes.
    pub memory_usage_bytes: u64,
    /// Memory limit, in bytes.
    pub memory_limit_bytes: u64,
    /// Bytes received on every network.
    pub network_rx_bytes: u64,
    /// Bytes sent on every network.
    pub network_tx_bytes: u64,
    /// Bytes read from block devices.
    pub block_read_bytes: u64,
    /// Bytes written to block devices.
    pub block_write_bytes: u64,
    /// Processes and threads in the container.
    pub pids: u64,
}

/// The captured output of a finished exec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecCaptured {
    /// What it wrote to stdout, up to the capture limit.
    pub stdout: Vec<u8>,
    /// What it wrote to stderr, up to the capture limit.
    pub stderr: Vec<u8>,
    /// Its exit code.
    pub exit_code: i64,
    /// Whether output beyond the capture limit was dropped.
    pub truncated: bool,
}

/// Why a command or stream failed, as the service is told: the kind it
/// acts on and a message with the whole cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The classification.
    pub kind: ErrorKind,
    /// The error and its causes, joined.
    pub message: String,
}

impl Failure {
    /// A failure of `kind` described by `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}
