//! The commands the service sends (one request, one result) and what they
//! answer.

use std::time::Duration;

use nest_core::ids::RequestId;
use nest_core::secret::Secret;

use super::report::{ContainerState, ExecCaptured, ImagePulled, Pong, StatsResult, TopResult};
use super::{CommandId, ContainerSpec, ContainerUuid, EnvVar};
use crate::convert::ConvertError;

/// One command as the relay delivered it.
///
/// The envelope (ids, timeout) can always be read; the command itself may
/// not be, and is then answered with the reason under the same id.
#[derive(Debug)]
pub struct CommandRequest {
    /// The id its result must carry.
    pub id: CommandId,
    /// The API request that caused it, for tracing; `None` when the
    /// service sent none (or not in the `req-<uuid>` shape).
    pub request_id: Option<RequestId>,
    /// How long the caller waits for the result.
    pub timeout: Duration,
    /// The command, or why the wire message is not one.
    pub command: Result<Command, ConvertError>,
}

/// What the service asks the agent to do.
#[derive(Debug)]
pub enum Command {
    /// Check that the engine answers.
    Ping,
    /// Pull an image from its registry.
    PullImage(PullImage),
    /// Create (and maybe start) a container; boxed, since a spec is far
    /// larger than any other command.
    Create(Box<CreateContainer>),
    /// Start a container.
    Start(ContainerUuid),
    /// Stop a container.
    Stop(StopContainer),
    /// Send a signal to a container's main process.
    Kill(KillContainer),
    /// Stop, then start, a container.
    Restart(StopContainer),
    /// Freeze a container's processes.
    Pause(ContainerUuid),
    /// Thaw a paused container.
    Unpause(ContainerUuid),
    /// Remove a container.
    Remove(RemoveContainer),
    /// Read a container's state.
    Inspect(ContainerUuid),
    /// Read the state of every container of this agent.
    List,
    /// List a container's processes.
    Top(Top),
    /// Take one resource sample of a container.
    Stats(ContainerUuid),
    /// Run a command in a container and capture its output.
    Exec(ExecCapture),
    /// Change a container's CPU and memory limits.
    Update(UpdateResources),
}

impl Command {
    /// The command's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::PullImage(_) => "pull_image",
            Self::Create(_) => "create",
            Self::Start(_) => "start",
            Self::Stop(_) => "stop",
            Self::Kill(_) => "kill",
            Self::Restart(_) => "restart",
            Self::Pause(_) => "pause",
            Self::Unpause(_) => "unpause",
            Self::Remove(_) => "remove",
            Self::Inspect(_) => "inspect",
            Self::List => "list",
            Self::Top(_) => "top",
            Self::Stats(_) => "stats",
            Self::Exec(_) => "exec",
            Self::Update(_) => "update",
        }
    }

    /// The container the command is about, if it names one.
    pub fn container(&self) -> Option<&ContainerUuid> {
        match self {
            Self::Ping | Self::PullImage(_) | Self::List => None,
            Self::Create(c) => Some(&c.spec.uuid),
            Self::Start(uuid)
            | Self::Pause(uuid)
            | Self::Unpause(uuid)
            | Self::Inspect(uuid)
            | Self::Stats(uuid) => Some(uuid),
            Self::Stop(s) | Self::Restart(s) => Some(&s.uuid),
            Self::Kill(k) => Some(&k.uuid),
            Self::Remove(r) => Some(&r.uuid),
            Self::Top(t) => Some(&t.uuid),
            Self::Exec(e) => Some(&e.uuid),
            Self::Update(u) => Some(&u.uuid),
        }
    }

    /// The container the command changes, for the commands that must be
    /// applied in arrival order; reads return `None`.
    pub fn changes(&self) -> Option<&ContainerUuid> {
        match self {
            Self::Create(_)
            | Self::Start(_)
            | Self::Stop(_)
            | Self::Kill(_)
            | Self::Restart(_)
            | Self::Pause(_)
            | Self::Unpause(_)
            | Self::Remove(_)
            | Self::Update(_) => self.container(),
            Self::Ping
            | Self::PullImage(_)
            | Self::Inspect(_)
            | Self::List
            | Self::Top(_)
            | Self::Stats(_)
            | Self::Exec(_) => None,
        }
    }
}

/// Pull an image from its registry.
#[derive(Debug)]
pub struct PullImage {
    /// The image reference.
    pub reference: String,
    /// Registry credentials as the engine's `X-Registry-Auth` JSON; never
    /// logged. `None` pulls anonymously.
    pub registry_auth: Option<Secret<String>>,
}

/// Create a container from a spec.
#[derive(Debug)]
pub struct CreateContainer {
    /// What to create.
    pub spec: ContainerSpec,
    /// Start the container once created (`docker run`).
    pub start: bool,
    /// Pull the image first when the engine does not have it.
    pub pull_missing: bool,
}

/// Stop (or restart) a container.
#[derive(Debug)]
pub struct StopContainer {
    /// The container.
    pub uuid: ContainerUuid,
    /// Grace before SIGKILL, in whole seconds; `None` uses the engine's
    /// default.
    pub timeout: Option<Duration>,
}

/// Send a signal to a container's main process.
#[derive(Debug)]
pub struct KillContainer {
    /// The container.
    pub uuid: ContainerUuid,
    /// Signal name (`SIGTERM`, `KILL`, ...) or number; `None` means SIGKILL.
    pub signal: Option<String>,
}

/// Remove a container.
#[derive(Debug)]
pub struct RemoveContainer {
    /// The container.
    pub uuid: ContainerUuid,
    /// Remove it even while it runs.
    pub force: bool,
}

/// List a container's processes.
#[derive(Debug)]
pub struct Top {
    /// The container.
    pub uuid: ContainerUuid,
    /// Arguments for the host's `ps`; `None` means `-ef`.
    pub ps_args: Option<String>,
}

/// Run a command in a container and capture its output.
#[derive(Debug)]
pub struct ExecCapture {
    /// The container.
    pub uuid: ContainerUuid,
    /// The command and its arguments; must not be empty.
    pub command: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<EnvVar>,
    /// Working directory; `None` means the container's.
    pub workdir: Option<String>,
    /// User to run as; `None` means the container's.
    pub user: Option<String>,
}

/// Change a running container's CPU and memory limits (`docker update`).
#[derive(Debug)]
pub struct UpdateResources {
    /// The container.
    pub uuid: ContainerUuid,
    /// New CPU limit in millicores; 0 leaves it as it is.
    pub cpu_millis: u64,
    /// New memory limit in bytes; 0 leaves it as it is.
    pub memory_bytes: u64,
}

/// What a command answers.
#[derive(Debug)]
pub enum CommandOutput {
    /// The answer to [`Command::Ping`].
    Pong(Pong),
    /// The answer to [`Command::PullImage`].
    ImagePulled(ImagePulled),
    /// A container's state after a lifecycle command or an inspect.
    Container(ContainerState),
    /// Done, with nothing to report ([`Command::Remove`]).
    Done,
    /// The answer to [`Command::List`].
    List(Vec<ContainerState>),
    /// The answer to [`Command::Top`].
    Top(TopResult),
    /// The answer to [`Command::Stats`].
    Stats(StatsResult),
    /// The answer to [`Command::Exec`].
    Exec(ExecCaptured),
}
