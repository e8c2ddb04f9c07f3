//! The plain types the application layer is called with and answers: who
//! calls ([`CallContext`]), which container ([`ContainerRef`]), what to
//! create, list, run or read, and what comes back. Every front end (the
//! Zun API, the Docker API) builds these from its own protocol; nothing
//! here knows HTTP or any wire spelling.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;

use super::AppError;
use crate::auth::Caller;
use crate::domain::{
    Container, ContainerId, ContainerSpec, ContainerStatus, Instance, InstanceId, ProjectId, UserId,
};
// Domain types that calls carry, so a front end finds all it needs here.
pub use crate::domain::{
    ActionEvent, ActionKind, ActionRecord, ContainerPatch, MAX_LIST_LIMIT, Network,
    NetworkAttachment, NetworkId, RequestId, SortDir, SortKey, TtySize,
};

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
    /// The user-defined networks it joined, in its spec's order (one
    /// removed meanwhile is left out).
    pub networks: Vec<Network>,
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
        nest_core::engine_options::normalize_signal(s)
            .map(Self)
            .map_err(|e| e.to_string())
    }

    /// The normalised signal (`SIGTERM` or `15`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What an exec's process is given beside its argv (the Docker API's
/// `docker exec -e/-w/-u`); the default is what the container has. The
/// front end has checked them (`nest_core::process_input`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// Extra environment variables.
    pub environment: BTreeMap<String, String>,
    /// Working directory; `None` is the container's.
    pub workdir: Option<String>,
    /// User to run as; `None` is the container's.
    pub user: Option<String>,
}

/// A command to run in a container (`POST …/execute`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRequest {
    /// The argv, already split.
    pub command: Vec<String>,
    /// Environment, working directory and user.
    pub options: ExecOptions,
    /// Run it now and wait for its output; `false` only creates the exec.
    pub run: bool,
    /// Keep stdin open and allocate a terminal.
    pub interactive: bool,
}

/// An exec opened as a stream (the Docker API's exec start).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecStream {
    /// The argv.
    pub command: Vec<String>,
    /// Environment, working directory and user.
    pub options: ExecOptions,
    /// Allocate a terminal.
    pub tty: bool,
    /// Pass the client's stdin.
    pub stdin: bool,
    /// The terminal's initial size; `None` is 80x24 with a tty.
    pub size: Option<TtySize>,
}

/// What an attach streams (the Docker API's attach).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttachStream {
    /// Pass the client's stdin (only to a container created
    /// `interactive`).
    pub stdin: bool,
    /// Stream stdout.
    pub stdout: bool,
    /// Stream stderr.
    pub stderr: bool,
    /// Replay the output so far first.
    pub logs: bool,
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
pub type LogStream = BoxStream<'static, Result<Bytes, AppError>>;

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
    /// Why Nest cannot reach the cloud for the instance's project (the
    /// last sweep could not list it), if it cannot.
    pub unreachable: Option<String>,
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
    }
}
