//! The seam between the HTTP layer and the rest of the service.
//!
//! The API parses a request into the plain types below, calls one
//! [`ContainerBackend`] method, and renders what comes back. The backend
//! (the database, scheduler and relay behind it) owns every decision about
//! state: it resolves a name or uuid, enforces ownership and policy
//! (owner-or-admin, `all_projects` admin-only, read-only roles), checks the
//! status machine and records container actions. Nothing here knows HTTP or
//! Zun's JSON spelling, except [`ActionKind::as_zun`], which the database
//! stores too.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use nest_core::ErrorKind;

use crate::auth::Caller;
use crate::domain::{
    Container, ContainerId, ContainerSpec, ContainerStatus, Instance, InstanceId, ProjectId,
    RequestId, UserId,
};
// The console frames live with the application; the front ends use them.
pub use crate::app::console::{ConsoleInput, ConsoleIo, ConsoleOutput, ConsoleSession};
pub use crate::domain::{ContainerPatch, MAX_LIST_LIMIT, SortDir, SortKey, TtySize};

/// What every backend method returns.
pub type BackendFuture<'a, T> = BoxFuture<'a, Result<T, BackendError>>;

/// A boxed error kept as the cause of another.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The container service as the HTTP layer sees it.
///
/// Every method is called with the authenticated caller and the request id
/// (container actions are recorded under it). Objects of another project
/// answer [`BackendError::ContainerNotFound`], never `Forbidden`, unless the
/// caller is an admin. The trait is object safe: the router holds an
/// `Arc<dyn ContainerBackend>`.
pub trait ContainerBackend: Send + Sync {
    /// Records a new container in `Creating` and schedules it; with `run`
    /// it is started once created (`POST /v1/containers?run=true`).
    fn create<'a>(
        &'a self,
        cx: &'a CallContext,
        request: NewContainer,
        run: bool,
    ) -> BackendFuture<'a, ContainerInfo>;

    /// One page of the caller's containers (all projects' for an admin with
    /// `all_projects`).
    fn list<'a>(
        &'a self,
        cx: &'a CallContext,
        params: ListParams,
    ) -> BackendFuture<'a, ContainerPage>;

    /// One container, by uuid or by name (a name held by several
    /// containers is [`BackendError::AmbiguousName`]).
    fn get<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
        all_projects: bool,
    ) -> BackendFuture<'a, ContainerInfo>;

    /// Deletes a container (asynchronously: it goes to `Deleting`).
    fn delete<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
        options: DeleteOptions,
    ) -> BackendFuture<'a, ()>;

    /// Renames or resizes a container.
    fn update<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
        patch: ContainerPatch,
    ) -> BackendFuture<'a, ContainerInfo>;

    /// Starts, stops, reboots, pauses, unpauses or kills a container; the
    /// status machine decides whether it may (`Conflict` otherwise).
    fn action<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
        action: ContainerAction,
    ) -> BackendFuture<'a, ()>;

    /// Runs a command in a running container; without `run` (interactive
    /// exec) it only creates the exec and hands back a console token.
    fn execute<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
        request: ExecRequest,
    ) -> BackendFuture<'a, ExecOutcome>;

    /// Resizes the terminal of an exec instance.
    fn execute_resize<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
        exec_id: &'a ExecId,
        size: TtySize,
    ) -> BackendFuture<'a, ()>;

    /// The container's logs so far, as one string.
    fn logs<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
        params: LogsParams,
    ) -> BackendFuture<'a, String>;

    /// The container's logs, then new lines as they come (`follow=true`).
    /// The stream ends when the container stops or the client goes away
    /// (the HTTP layer drops it).
    fn follow_logs<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
        params: LogsParams,
    ) -> BackendFuture<'a, LogStream>;

    /// Issues a single-use console token for attaching to an interactive
    /// container ([`BackendError::NotInteractive`] otherwise).
    fn attach<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
    ) -> BackendFuture<'a, ConsoleTicket>;

    /// Resizes the container's terminal (used with attach).
    fn resize<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
        size: TtySize,
    ) -> BackendFuture<'a, ()>;

    /// The container's processes (`docker top`).
    fn top<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
        ps_args: Option<String>,
    ) -> BackendFuture<'a, ProcessList>;

    /// A one-shot resource usage sample.
    fn stats<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
    ) -> BackendFuture<'a, ContainerStats>;

    /// The actions recorded on a container, oldest first.
    fn actions<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
    ) -> BackendFuture<'a, Vec<ActionRecord>>;

    /// One recorded action, by the request id that triggered it, with its
    /// events.
    fn find_action<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
        request_id: &'a RequestId,
    ) -> BackendFuture<'a, ActionRecord>;

    /// The instances of the caller's project (every project's for an
    /// admin), as Zun's hosts.
    fn hosts<'a>(&'a self, cx: &'a CallContext) -> BackendFuture<'a, Vec<HostInfo>>;

    /// Stores an uploaded image (`docker save` tarball or root filesystem
    /// tarball) for the caller's project. A Nest extension.
    fn upload_image<'a>(
        &'a self,
        cx: &'a CallContext,
        name: Option<String>,
        body: ImageUpload,
    ) -> BackendFuture<'a, StoredImage> {
        let _ = (cx, name, body);
        Box::pin(async { Err(images_unsupported()) })
    }

    /// The images stored for the caller's project. A Nest extension.
    fn list_images<'a>(&'a self, cx: &'a CallContext) -> BackendFuture<'a, Vec<StoredImage>> {
        let _ = cx;
        Box::pin(async { Err(images_unsupported()) })
    }

    /// Deletes a stored image of the caller's project. A Nest extension.
    fn delete_image<'a>(&'a self, cx: &'a CallContext, id: &'a str) -> BackendFuture<'a, ()> {
        let _ = (cx, id);
        Box::pin(async { Err(images_unsupported()) })
    }

    /// Redeems a console token issued by [`attach`](Self::attach) or an
    /// interactive [`execute`](Self::execute). The token is the only
    /// credential of the websocket request: the backend checks that it is
    /// unexpired, unused and bound to `container` (and `target`), and burns
    /// it. The HTTP layer then upgrades the connection and runs the session.
    fn open_console<'a>(
        &'a self,
        container: ContainerId,
        token: &'a ConsoleToken,
        target: ConsoleTarget,
    ) -> BackendFuture<'a, Box<dyn ConsoleSession>>;
}

/// An uploaded image's body.
pub type ImageUpload = std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>;

/// An image Nest stores for a project (a Nest extension to Zun's API).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredImage {
    /// Its uuid: what `image` names in a create to run it.
    pub id: String,
    /// The name given at upload.
    pub name: Option<String>,
    /// Size of the stored archive, bytes.
    pub size_bytes: u64,
    /// SHA-256 of the stored archive, hex.
    pub sha256: String,
    /// When it was stored, RFC 3339.
    pub created_at: String,
    /// Tags the engine knows it by once loaded.
    pub repo_tags: Vec<String>,
}

fn images_unsupported() -> BackendError {
    BackendError::Unavailable {
        what: "the image store".into(),
        source: None,
    }
}

/// Who asks, and under which request id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallContext {
    /// The authenticated caller.
    pub caller: Caller,
    /// The request's id; container actions are recorded under it.
    pub request_id: RequestId,
}

/// A container named in a URL: Zun accepts its uuid or its name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ContainerRef {
    /// A hyphenated uuid.
    Id(ContainerId),
    /// Anything else is looked up as a name within the caller's project.
    Name(String),
}

impl ContainerRef {
    /// Reads a path segment: a uuid if it looks like one, else a name.
    pub fn parse(segment: &str) -> Self {
        match ContainerId::parse(segment) {
            Ok(id) => Self::Id(id),
            Err(_) => Self::Name(segment.to_owned()),
        }
    }
}

impl fmt::Display for ContainerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => id.fmt(f),
            Self::Name(name) => f.write_str(name),
        }
    }
}

/// A container to create.
#[derive(Clone, Debug, PartialEq)]
pub struct NewContainer {
    /// Its name; `None` lets the backend generate one.
    pub name: Option<String>,
    /// What it should be.
    pub spec: ContainerSpec,
}

/// A container with what its view needs from its instance.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerInfo {
    /// The record.
    pub container: Container,
    /// Addresses of its instance by network name; empty until placed.
    pub addresses: BTreeMap<String, String>,
    /// The network a port without a `network:` prefix is published on.
    pub default_network: Option<String>,
}

/// One page of a container list.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerPage {
    /// The containers, in the requested order.
    pub containers: Vec<ContainerInfo>,
    /// Whether more follow the last one.
    pub has_more: bool,
}

/// How to list containers (`GET /v1/containers`).
#[derive(Clone, Debug, PartialEq)]
pub struct ListParams {
    /// List every project's containers (admin only).
    pub all_projects: bool,
    /// Page size, 1 to [`MAX_LIST_LIMIT`].
    pub limit: u32,
    /// Uuid of the last container of the previous page.
    pub marker: Option<ContainerId>,
    /// Sort key; ties are broken by creation order.
    pub sort_key: SortKey,
    /// Sort direction.
    pub sort_dir: SortDir,
    /// Exact-match filters.
    pub filters: ContainerFilters,
}

/// Exact-match list filters (Zun's list of filterable fields).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ContainerFilters {
    /// Name.
    pub name: Option<String>,
    /// Image reference.
    pub image: Option<String>,
    /// Owner project (meaningful with `all_projects`).
    pub project_id: Option<ProjectId>,
    /// Creating user.
    pub user_id: Option<UserId>,
    /// Reserved memory, MiB.
    pub memory_mib: Option<u64>,
    /// The instance it runs on.
    pub host: Option<InstanceId>,
    /// Zun's transient task state; Nest records none, so any value matches
    /// nothing.
    pub task_state: Option<String>,
    /// Status.
    pub status: Option<ContainerStatus>,
    /// Whether it is removed on exit.
    pub auto_remove: Option<bool>,
}

/// How to delete a container (`DELETE /v1/containers/{c}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DeleteOptions {
    /// Delete whatever its status (admin only from microversion 1.7).
    pub force: bool,
    /// Stop it first if it runs.
    pub stop: bool,
    /// Look it up in every project (admin only).
    pub all_projects: bool,
}

/// A lifecycle action on a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerAction {
    /// Start it.
    Start,
    /// Stop it, killing it after `timeout` (the engine's default if `None`).
    Stop {
        /// Grace period before SIGKILL.
        timeout: Option<Duration>,
    },
    /// Restart it.
    Reboot {
        /// Grace period before SIGKILL.
        timeout: Option<Duration>,
    },
    /// Pause it.
    Pause,
    /// Unpause it.
    Unpause,
    /// Send it a signal (SIGKILL if `None`).
    Kill {
        /// The signal.
        signal: Option<Signal>,
    },
}

/// A signal name (`SIGTERM`) or number (`15`), checked for shape only; the
/// engine decides whether it knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signal(String);

impl Signal {
    /// Normalises `term`, `SIGTERM` or `15`.
    ///
    /// # Errors
    /// When it is neither a number from 1 to 64 nor a short name of ASCII
    /// letters, digits and `+`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Ok(n) = s.parse::<u8>() {
            return if (1..=64).contains(&n) {
                Ok(Self(n.to_string()))
            } else {
                Err(format!("signal number {n} is out of range 1-64"))
            };
        }
        let upper = s.to_ascii_uppercase();
        let name = upper.strip_prefix("SIG").unwrap_or(&upper);
        if name.is_empty()
            || name.len() > 16
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '+')
        {
            return Err(format!("{s:?} is not a signal name or number"));
        }
        Ok(Self(format!("SIG{name}")))
    }

    /// The normalised signal (`SIGTERM` or `15`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A command to run in a container (`POST …/execute`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRequest {
    /// The argv, already split.
    pub command: Vec<String>,
    /// Run it now and wait for its output; `false` only creates the exec.
    pub run: bool,
    /// Keep stdin open and allocate a terminal.
    pub interactive: bool,
}

/// What an exec gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutcome {
    /// The container it ran in (the request may have named it).
    pub container_id: ContainerId,
    /// The result.
    pub result: ExecResult,
}

/// The result of an exec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecResult {
    /// It ran to completion.
    Finished {
        /// Combined stdout and stderr.
        output: String,
        /// Its exit code.
        exit_code: i64,
    },
    /// It was created, not run (`run=false`).
    Created {
        /// The engine's exec id.
        exec_id: ExecId,
        /// With `interactive`: the token for the console websocket.
        token: Option<ConsoleToken>,
    },
}

/// A Docker exec id: 64 lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExecId(String);

impl ExecId {
    /// Checks the shape.
    ///
    /// # Errors
    /// When it is not 64 lowercase hex digits.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(s.to_owned()))
        } else {
            Err("must be 64 lowercase hexadecimal digits".into())
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExecId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A random, single-use, short-lived credential that ties a websocket URL
/// to one attach or exec. Its `Debug` hides the value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ConsoleToken(String);

impl ConsoleToken {
    /// A fresh token (122 random bits from a v4 uuid, twice).
    pub fn generate() -> Self {
        Self(format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ))
    }

    /// Checks the shape of a token from a URL.
    ///
    /// # Errors
    /// When it is not 32 to 128 ASCII letters, digits, `-` or `_`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if (32..=128).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        {
            Ok(Self(s.to_owned()))
        } else {
            Err("is not a console token".into())
        }
    }

    /// The token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ConsoleToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConsoleToken(<redacted>)")
    }
}

/// A console token for attaching to a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleTicket {
    /// The container (the request may have named it).
    pub container_id: ContainerId,
    /// The token the websocket URL carries.
    pub token: ConsoleToken,
}

/// What a console websocket connects to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsoleTarget {
    /// The container's main process.
    Attach,
    /// An exec instance.
    Exec(ExecId),
}

/// How to read logs (`GET …/logs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogsParams {
    /// Include stdout.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
    /// Prefix each line with its timestamp.
    pub timestamps: bool,
    /// Only the last this many lines; `None` is all.
    pub tail: Option<u64>,
    /// Only lines since this Unix time, seconds.
    pub since: Option<i64>,
}

/// Log bytes as they come.
pub type LogStream = BoxStream<'static, Result<Bytes, BackendError>>;

/// `docker top` output.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ProcessList {
    /// Column titles.
    pub titles: Vec<String>,
    /// One row per process.
    pub processes: Vec<Vec<String>>,
}

/// A resource usage sample.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ContainerStats {
    /// The container's name.
    pub name: String,
    /// CPU use, percent of the instance.
    pub cpu_percent: f64,
    /// Memory in use, MiB.
    pub memory_usage_mib: f64,
    /// Memory limit, MiB.
    pub memory_limit_mib: f64,
    /// Memory in use, percent of the limit.
    pub memory_percent: f64,
    /// Bytes read from block devices.
    pub block_read_bytes: u64,
    /// Bytes written to block devices.
    pub block_write_bytes: u64,
    /// Bytes received on all networks.
    pub net_rx_bytes: u64,
    /// Bytes sent on all networks.
    pub net_tx_bytes: u64,
}

/// Kinds of recorded container action (Zun's `action` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActionKind {
    /// Create (and run).
    Create,
    /// Delete.
    Delete,
    /// Start.
    Start,
    /// Stop.
    Stop,
    /// Reboot.
    Reboot,
    /// Pause.
    Pause,
    /// Unpause.
    Unpause,
    /// Kill.
    Kill,
    /// Exec.
    ExecCmd,
    /// PATCH.
    Update,
    /// Attach.
    Attach,
    /// Terminal resize.
    Resize,
}

impl ActionKind {
    /// Every kind.
    pub const ALL: [Self; 12] = [
        Self::Create,
        Self::Delete,
        Self::Start,
        Self::Stop,
        Self::Reboot,
        Self::Pause,
        Self::Unpause,
        Self::Kill,
        Self::ExecCmd,
        Self::Update,
        Self::Attach,
        Self::Resize,
    ];

    /// Zun's spelling, also the stored one.
    pub fn as_zun(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Delete => "delete",
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Reboot => "reboot",
            Self::Pause => "pause",
            Self::Unpause => "unpause",
            Self::Kill => "kill",
            Self::ExecCmd => "exec_cmd",
            Self::Update => "update",
            Self::Attach => "container_attach",
            Self::Resize => "resize",
        }
    }

    /// Reads the stored spelling back.
    pub fn parse_zun(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_zun() == s)
    }
}

/// A recorded container action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionRecord {
    /// What was done.
    pub action: ActionKind,
    /// To which container.
    pub container_id: ContainerId,
    /// The request that did it.
    pub request_id: RequestId,
    /// By whom.
    pub user_id: UserId,
    /// In which project.
    pub project_id: ProjectId,
    /// When it started, RFC 3339.
    pub start_time: String,
    /// When it finished, RFC 3339; `None` while in progress.
    pub finish_time: Option<String>,
    /// Why it failed; `None` on success.
    pub message: Option<String>,
    /// Its steps.
    pub events: Vec<ActionEvent>,
}

/// One step of a recorded action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionEvent {
    /// The step's name.
    pub event: String,
    /// When it started, RFC 3339.
    pub start_time: String,
    /// When it finished, RFC 3339.
    pub finish_time: Option<String>,
    /// `Success` or `Error`.
    pub result: Option<String>,
    /// Failure detail, shown to admins only.
    pub traceback: Option<String>,
}

/// An instance with its current load, for `GET /v1/hosts`.
#[derive(Clone, Debug, PartialEq)]
pub struct HostInfo {
    /// The instance.
    pub instance: Instance,
    /// Containers placed on it.
    pub total_containers: u32,
    /// vCPUs reserved by them.
    pub cpu_used: f64,
    /// Memory reserved by them, MiB.
    pub memory_used_mib: u64,
}

/// Why a backend call failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// No such container visible to the caller (including another
    /// project's).
    #[error("container {0} could not be found")]
    ContainerNotFound(ContainerRef),
    /// The list marker names no visible container.
    #[error("marker container {0} could not be found")]
    MarkerNotFound(ContainerId),
    /// No such exec instance on the container.
    #[error("exec instance {0} could not be found")]
    ExecNotFound(ExecId),
    /// No action was recorded under that request id.
    #[error("action {0} could not be found")]
    ActionNotFound(RequestId),
    /// No such instance visible to the caller.
    #[error("host {0} could not be found")]
    HostNotFound(String),
    /// A stored image (Nest extension) of the caller's project is missing.
    #[error("image {0} could not be found")]
    StoredImageNotFound(String),
    /// Several containers of the project have this name.
    #[error("multiple containers exist with name {0}; use the uuid instead")]
    AmbiguousName(String),
    /// The name is taken in the project.
    #[error("a container named {0} already exists")]
    NameInUse(String),
    /// The status machine refuses the action.
    #[error("cannot {action} container {id} in {status} state")]
    InvalidState {
        /// The container.
        id: ContainerId,
        /// Its status.
        status: ContainerStatus,
        /// What was asked (`start`, `delete`, ...).
        action: &'static str,
    },
    /// Attach needs a container created with `interactive`.
    #[error("container {0} is not interactive; create it with interactive set to attach")]
    NotInteractive(ContainerId),
    /// The request is well formed but cannot be honoured (for example an
    /// unknown host hint).
    #[error("invalid {what}: {reason}")]
    InvalidRequest {
        /// Which input.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The image reference names nothing.
    #[error("image {0} could not be found")]
    ImageNotFound(String),
    /// Policy refuses the caller this rule.
    #[error("policy doesn't allow {0} to be performed")]
    PolicyNotAuthorized(String),
    /// The project's quota would be exceeded.
    #[error("quota exceeded for resources: {0}")]
    OverQuota(String),
    /// The console token is unknown, expired, used, or for another target.
    #[error("the console token is invalid, expired or already used")]
    ConsoleTokenRejected,
    /// A dependency (the relay, an agent, Nova, the database) is down.
    #[error("{what} is unavailable")]
    Unavailable {
        /// What could not be reached.
        what: String,
        /// Why.
        #[source]
        source: Option<BoxError>,
    },
    /// An operation on an agent or dependency did not finish in time.
    #[error("{what} timed out")]
    Timeout {
        /// What did not finish.
        what: String,
    },
    /// A bug or an unexpected failure; the client sees a generic message.
    #[error("internal error while {context}")]
    Internal {
        /// What was being done.
        context: &'static str,
        /// The cause (logged, never sent).
        #[source]
        source: BoxError,
    },
}

impl BackendError {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::ContainerNotFound(_)
            | Self::MarkerNotFound(_)
            | Self::ExecNotFound(_)
            | Self::ActionNotFound(_)
            | Self::HostNotFound(_)
            | Self::StoredImageNotFound(_) => ErrorKind::NotFound,
            Self::AmbiguousName(_) | Self::NameInUse(_) | Self::InvalidState { .. } => {
                ErrorKind::Conflict
            }
            Self::NotInteractive(_) | Self::InvalidRequest { .. } | Self::ImageNotFound(_) => {
                ErrorKind::Invalid
            }
            Self::PolicyNotAuthorized(_) | Self::OverQuota(_) | Self::ConsoleTokenRejected => {
                ErrorKind::Forbidden
            }
            Self::Unavailable { .. } => ErrorKind::Unavailable,
            Self::Timeout { .. } => ErrorKind::Timeout,
            Self::Internal { .. } => ErrorKind::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_normalised() {
        assert_eq!(Signal::parse("term").map(|s| s.0), Ok("SIGTERM".into()));
        assert_eq!(Signal::parse("SIGKILL").map(|s| s.0), Ok("SIGKILL".into()));
        assert_eq!(Signal::parse("15").map(|s| s.0), Ok("15".into()));
        assert!(Signal::parse("99").is_err());
        assert!(Signal::parse("SIG").is_err());
        assert!(Signal::parse("a b").is_err());
    }

    #[test]
    fn refs_and_ids_parse() {
        let id = ContainerId::generate();
        assert_eq!(ContainerRef::parse(&id.to_string()), ContainerRef::Id(id));
        assert_eq!(ContainerRef::parse("web"), ContainerRef::Name("web".into()));
        assert!(ExecId::parse(&"a".repeat(64)).is_ok());
        assert!(ExecId::parse(&"A".repeat(64)).is_err());
        let token = ConsoleToken::generate();
        assert_eq!(ConsoleToken::parse(token.as_str()), Ok(token.clone()));
        assert!(!format!("{token:?}").contains(token.as_str()));
        for kind in ActionKind::ALL {
            assert_eq!(ActionKind::parse_zun(kind.as_zun()), Some(kind));
        }
    }
}
