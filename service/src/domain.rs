//! Nest's nouns, as the service records them: containers, instances, the
//! identifiers that name them, and the status machines with their rules.
//!
//! Wire spellings (Zun's JSON, proto) are mapped at the edges; the only Zun
//! strings here are in `ContainerStatus::as_zun`/`parse_zun`, which the
//! database also uses.

use std::collections::BTreeMap;
use std::fmt;

pub use nest_core::ids::{InstanceId, RequestId};

/// Why an identifier or value from outside is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct InvalidValue {
    /// Which value.
    pub what: &'static str,
    /// Why it is refused.
    pub reason: String,
}

fn check_token_chars(what: &'static str, s: &str, max: usize) -> Result<(), InvalidValue> {
    let err = |reason: String| InvalidValue { what, reason };
    if s.is_empty() {
        return Err(err("must not be empty".into()));
    }
    if s.len() > max {
        return Err(err(format!("must be at most {max} characters")));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(err(format!("must not contain {c:?}")));
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Checks and wraps the id.
            ///
            /// # Errors
            /// [`InvalidValue`] when it is empty, too long or holds a
            /// character outside `[A-Za-z0-9._-]`.
            pub fn parse(s: &str) -> Result<Self, InvalidValue> {
                check_token_chars($what, s, $max)?;
                Ok(Self(s.to_owned()))
            }

            /// The id as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A Keystone project id (or, in dev auth, a configured project name).
    ProjectId,
    "project_id",
    64
);
string_id!(
    /// A Keystone user id.
    UserId,
    "user_id",
    64
);

/// A container's uuid: the name by which every piece of Nest knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId(uuid::Uuid);

impl ContainerId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    /// Parses the canonical hyphenated form.
    ///
    /// # Errors
    /// [`InvalidValue`] when `s` is not a hyphenated uuid.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if s.len() != 36 {
            return Err(InvalidValue {
                what: "uuid",
                reason: "must be a hyphenated uuid".into(),
            });
        }
        uuid::Uuid::parse_str(s)
            .map(Self)
            .map_err(|e| InvalidValue {
                what: "uuid",
                reason: e.to_string(),
            })
    }

    /// The uuid.
    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// A user-defined network's id (Docker's `network create`): the engine
/// network on the instance is named after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkId(uuid::Uuid);

impl NetworkId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    /// Parses the 32 lowercase hex digits [`Self::hex`] writes.
    ///
    /// # Errors
    /// [`InvalidValue`] for anything else.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let invalid = || InvalidValue {
            what: "network id",
            reason: "must be 32 lowercase hex digits".into(),
        };
        if s.len() != 32 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid());
        }
        uuid::Uuid::try_parse(s).map(Self).map_err(|_| invalid())
    }

    /// The id as Docker clients and the agent see it: 32 hex digits.
    pub fn hex(&self) -> String {
        self.0.simple().to_string()
    }
}

impl fmt::Display for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.simple().fmt(f)
    }
}

/// A project's user-defined network. Its containers are kept on one
/// instance, whose engine network of the same id resolves their names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    /// Its id.
    pub id: NetworkId,
    /// Unique in the project.
    pub name: String,
    /// The project it belongs to.
    pub project_id: ProjectId,
    /// Who created it.
    pub user_id: UserId,
    /// Labels, as given.
    pub labels: BTreeMap<String, String>,
    /// RFC 3339.
    pub created_at: String,
}

/// A container's place on a user-defined network.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NetworkAttachment {
    /// The network.
    pub network: NetworkId,
    /// Names the network's other containers resolve to this one, beside
    /// its own name.
    pub aliases: Vec<String>,
}

/// Lifecycle of a container as Nest records it. Transition rules live
/// here, not in handlers (Zun's state machine, zun-api.md §2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContainerStatus {
    /// Accepted; waiting for an instance or being created on it.
    Creating,
    /// Created on its instance, never started.
    Created,
    /// Running.
    Running,
    /// Exited or stopped.
    Stopped,
    /// Paused.
    Paused,
    /// Being restarted.
    Restarting,
    /// Being deleted.
    Deleting,
    /// Failed; `status_reason` says why.
    Error,
    /// Its instance cannot be reached; the last known state is unknown.
    Unknown,
}

impl ContainerStatus {
    /// Every status, for tests and exhaustive mappings.
    pub const ALL: [Self; 9] = [
        Self::Creating,
        Self::Created,
        Self::Running,
        Self::Stopped,
        Self::Paused,
        Self::Restarting,
        Self::Deleting,
        Self::Error,
        Self::Unknown,
    ];

    /// Zun's spelling: the only place these strings exist.
    pub fn as_zun(self) -> &'static str {
        match self {
            Self::Creating => "Creating",
            Self::Created => "Created",
            Self::Running => "Running",
            Self::Stopped => "Stopped",
            Self::Paused => "Paused",
            Self::Restarting => "Restarting",
            Self::Deleting => "Deleting",
            Self::Error => "Error",
            Self::Unknown => "Unknown",
        }
    }

    /// Reads Zun's spelling back.
    pub fn parse_zun(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_zun() == s)
    }

    /// Whether `start` is allowed.
    pub fn can_start(self) -> bool {
        matches!(self, Self::Created | Self::Stopped | Self::Error)
    }
    /// Whether `stop` is allowed.
    pub fn can_stop(self) -> bool {
        matches!(self, Self::Running)
    }
    /// Whether `kill` is allowed.
    pub fn can_kill(self) -> bool {
        matches!(self, Self::Running)
    }
    /// Whether `pause` is allowed.
    pub fn can_pause(self) -> bool {
        matches!(self, Self::Running)
    }
    /// Whether `unpause` is allowed.
    pub fn can_unpause(self) -> bool {
        matches!(self, Self::Paused)
    }
    /// Whether `reboot` is allowed.
    pub fn can_reboot(self) -> bool {
        matches!(
            self,
            Self::Created | Self::Running | Self::Stopped | Self::Error
        )
    }
    /// The exit code recorded in a stopped container's status reason
    /// (`exited with code N`, `killed: out of memory (exit code N)`,
    /// written by the agent link's conversion); 0 when there is none, and
    /// 128 for a container that failed without one.
    pub fn exit_code(self, reason: Option<&str>) -> i64 {
        let parsed = reason.and_then(|r| {
            let tail = r
                .rsplit_once("exit code ")
                .or_else(|| r.rsplit_once("exited with code "))?
                .1;
            tail.trim_end_matches(')').trim().parse::<i64>().ok()
        });
        match (self, parsed) {
            (_, Some(code)) => code,
            (Self::Error, None) => 128,
            _ => 0,
        }
    }
    /// Whether exec, attach, resize, top and stats are allowed.
    pub fn is_running(self) -> bool {
        matches!(self, Self::Running)
    }
    /// Whether logs can be read.
    pub fn can_read_logs(self) -> bool {
        matches!(
            self,
            Self::Created
                | Self::Error
                | Self::Paused
                | Self::Running
                | Self::Stopped
                | Self::Unknown
        )
    }
    /// Whether PATCH (name, cpu, memory) is allowed.
    pub fn can_update(self) -> bool {
        matches!(
            self,
            Self::Created | Self::Running | Self::Stopped | Self::Paused
        )
    }
    /// Whether delete is allowed, given `force` and `stop` (Zun's rules).
    pub fn can_delete(self, force: bool, stop: bool) -> bool {
        if force {
            return true;
        }
        if stop {
            return matches!(
                self,
                Self::Running | Self::Created | Self::Error | Self::Stopped | Self::Creating
            );
        }
        matches!(self, Self::Created | Self::Error | Self::Stopped)
    }
}

impl fmt::Display for ContainerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_zun())
    }
}

/// Lifecycle of an instance Nest booted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InstanceStatus {
    /// Asked of the driver; the agent has not connected yet.
    Booting,
    /// Its agent is connected: containers may be placed on it.
    Ready,
    /// Its agent is disconnected; placement skips it.
    Unreachable,
    /// Its agent is connected but reports that its container engine does
    /// not answer; placement skips it until the engine is back.
    Degraded,
    /// Being deleted (idle, or its boot failed).
    Retiring,
    /// The boot failed; kept to report why, then retired.
    Error,
}

impl InstanceStatus {
    /// Every status.
    pub const ALL: [Self; 6] = [
        Self::Booting,
        Self::Ready,
        Self::Unreachable,
        Self::Degraded,
        Self::Retiring,
        Self::Error,
    ];

    /// Stored and reported spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Booting => "Booting",
            Self::Ready => "Ready",
            Self::Unreachable => "Unreachable",
            Self::Degraded => "Degraded",
            Self::Retiring => "Retiring",
            Self::Error => "Error",
        }
    }

    /// Reads the stored spelling back.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether new containers may be placed on (or wait for) it.
    pub fn accepts_containers(self) -> bool {
        matches!(self, Self::Booting | Self::Ready)
    }
}

/// Why the driver could not list a project's instances at a sweep; the
/// reconciler then judges none of them (see `reconcile::sweep`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnreachableCause {
    /// The cloud refused the authority the project delegated (a revoked or
    /// deleted trust, a trustor disabled or deleted): the next call of one
    /// of the project's users replaces it.
    DelegationRefused,
    /// The cloud did not answer for the project, or failed; nothing for
    /// the project's users to do.
    CloudUnavailable,
}

impl UnreachableCause {
    /// Every cause.
    pub const ALL: [Self; 2] = [Self::DelegationRefused, Self::CloudUnavailable];

    /// Stored spelling, and the `cause` label of the listing metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DelegationRefused => "delegation_refused",
            Self::CloudUnavailable => "cloud_unavailable",
        }
    }

    /// Reads the stored spelling back.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A project whose instances the last sweep could not list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnreachableProject {
    /// The project.
    pub project_id: ProjectId,
    /// Why, in a word.
    pub cause: UnreachableCause,
    /// Why, for operators and the project's users: what shows beside each
    /// of the project's instances.
    pub reason: String,
    /// Since when (RFC 3339, UTC): the first sweep that failed.
    pub since: String,
}

/// Transport protocol of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortProtocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl PortProtocol {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }

    /// Reads the stored spelling back.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Tcp, Self::Udp].into_iter().find(|p| p.as_str() == s)
    }
}

/// A published port: `[network:]host_port:container_port[/proto]`, as in
/// the mission's `pub:222:22`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PublishedPort {
    /// Network whose address the port is published on; `None` means the
    /// instance's default network.
    pub network: Option<String>,
    /// Port on the instance.
    pub host_port: u16,
    /// Port inside the container.
    pub container_port: u16,
    /// TCP or UDP.
    pub protocol: PortProtocol,
}

/// Docker restart policy names, as Zun spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RestartPolicyName {
    /// Never restart.
    #[default]
    No,
    /// Always restart.
    Always,
    /// Restart when the exit code is not 0, up to a count.
    OnFailure,
    /// Restart unless stopped by a user.
    UnlessStopped,
}

/// What a container should be: everything the tenant asked for.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ContainerSpec {
    /// Image reference (registry reference or stored image uuid).
    pub image: String,
    /// Command; empty means the image's.
    pub command: Vec<String>,
    /// Entrypoint; empty means the image's.
    pub entrypoint: Vec<String>,
    /// Environment variables.
    pub environment: BTreeMap<String, String>,
    /// Labels set on the engine's container.
    pub labels: BTreeMap<String, String>,
    /// Working directory; empty means the image's.
    pub workdir: Option<String>,
    /// Hostname inside the container.
    pub hostname: Option<String>,
    /// User (`name`, `uid` or `uid:gid`) the process runs as; `None` is
    /// the image's (Docker's `User`; Zun has no such field).
    pub user: Option<String>,
    /// vCPUs reserved (Zun's `cpu`, e.g. 0.5).
    pub cpu: f64,
    /// Memory reserved and limited, MiB.
    pub memory_mib: u64,
    /// Restart policy and, for on-failure, its retry count.
    pub restart_policy: (RestartPolicyName, u32),
    /// Keep stdin open (`-i`).
    pub interactive: bool,
    /// Close stdin when the first attached client's stdin ends (Docker's
    /// `StdinOnce`, which `docker run -i` sets); Zun never sets it.
    pub stdin_once: bool,
    /// Allocate a terminal (`-t`).
    pub tty: bool,
    /// Remove the container once it exits.
    pub auto_remove: bool,
    /// Ports published on the instance.
    pub ports: Vec<PublishedPort>,
    /// Scheduler hints (flavor, image, network of a booted instance).
    pub hints: BTreeMap<String, String>,
    /// User-defined networks it joins, the first as its primary one; empty
    /// means its instance's default bridge.
    pub networks: Vec<NetworkAttachment>,
    /// How the engine runs it beyond its process (Docker's options; Zun
    /// has none of them).
    pub engine: EngineOptions,
}

/// How the engine runs a container beyond its process (`docker run
/// --stop-signal/--stop-timeout/--init/--read-only/--add-host/--health-*`),
/// checked by `nest_core::engine_options` at the door and again by the
/// agent, which holds the same type; and the health the agent reports.
pub use nest_core::engine_options::{EngineOptions, Health, HealthCheck};

/// A container as recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct Container {
    /// Its uuid.
    pub id: ContainerId,
    /// Human name (unique per project).
    pub name: String,
    /// Owner project.
    pub project_id: ProjectId,
    /// User who created it.
    pub user_id: UserId,
    /// What was asked for.
    pub spec: ContainerSpec,
    /// Last known status.
    pub status: ContainerStatus,
    /// Why it is in that status, when there is something to say.
    pub status_reason: Option<String>,
    /// Whether the user asked it to run (create with run=true, or start).
    pub desired_running: bool,
    /// The instance it is bound to, once placed.
    pub instance_id: Option<InstanceId>,
    /// The engine's id, once created there.
    pub docker_id: Option<String>,
    /// When it was accepted, RFC 3339.
    pub created_at: String,
    /// Last change, RFC 3339.
    pub updated_at: String,
    /// Its healthcheck's last verdict as the agent reported it; `None`
    /// without a healthcheck or before the first report.
    pub health: Option<Health>,
}

/// An instance Nest booted for a project.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    /// The driver's id (Nova server id, or the local driver's).
    pub id: InstanceId,
    /// Owner project.
    pub project_id: ProjectId,
    /// Which driver booted it (`local`, `nova`).
    pub driver: String,
    /// Lifecycle status.
    pub status: InstanceStatus,
    /// Why it is in that status.
    pub status_reason: Option<String>,
    /// vCPUs it has for containers.
    pub vcpus: f64,
    /// Memory it has for containers, MiB.
    pub memory_mib: u64,
    /// Addresses by network name.
    pub addresses: BTreeMap<String, String>,
    /// When it was booted, RFC 3339.
    pub created_at: String,
    /// Since when it has held no container, RFC 3339; `None` when in use.
    pub empty_since: Option<String>,
}

/// A terminal size, in character cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TtySize {
    /// Columns.
    pub width: u16,
    /// Rows.
    pub height: u16,
}

/// The most containers one list returns (Zun's `[api] max_limit`).
pub const MAX_LIST_LIMIT: u32 = 1000;

/// What a container list can be sorted by: the columns the store keeps
/// as text, so keyset pagination compares like with like. Zun's spellings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Creation order (Zun's integer `id`): the default.
    #[default]
    Id,
    /// The uuid.
    Uuid,
    /// The name.
    Name,
    /// The image reference.
    Image,
    /// The status.
    Status,
    /// Creation time.
    CreatedAt,
    /// Last change.
    UpdatedAt,
}

impl SortKey {
    /// Every key.
    pub const ALL: [Self; 7] = [
        Self::Id,
        Self::Uuid,
        Self::Name,
        Self::Image,
        Self::Status,
        Self::CreatedAt,
        Self::UpdatedAt,
    ];

    /// Zun's `sort_key` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Uuid => "uuid",
            Self::Name => "name",
            Self::Image => "image",
            Self::Status => "status",
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "updated_at",
        }
    }

    /// Reads a `sort_key`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Sort direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SortDir {
    /// Ascending: the default.
    #[default]
    Asc,
    /// Descending.
    Desc,
}

impl SortDir {
    /// Zun's `sort_dir` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Asc => "asc",
            Self::Desc => "desc",
        }
    }

    /// Reads a `sort_dir` (`asc` or `desc`); `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "asc" => Some(Self::Asc),
            "desc" => Some(Self::Desc),
            _ => None,
        }
    }
}

/// A PATCH of a container (Zun's update: name, cpu, memory); `None` leaves
/// a field unchanged.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerPatch {
    /// New name, unique in the project.
    pub name: Option<String>,
    /// New vCPU reservation.
    pub cpu: Option<f64>,
    /// New memory reservation and limit, MiB.
    pub memory_mib: Option<u64>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_spelling() {
        for st in ContainerStatus::ALL {
            assert_eq!(ContainerStatus::parse_zun(st.as_zun()), Some(st));
        }
        for st in InstanceStatus::ALL {
            assert_eq!(InstanceStatus::parse(st.as_str()), Some(st));
        }
        assert_eq!(ContainerStatus::parse_zun("running"), None);
    }

    #[test]
    fn exit_codes_come_from_the_recorded_reason() {
        let stopped = ContainerStatus::Stopped;
        assert_eq!(stopped.exit_code(Some("exited with code 3")), 3);
        assert_eq!(
            stopped.exit_code(Some("killed: out of memory (exit code 137)")),
            137
        );
        assert_eq!(stopped.exit_code(None), 0);
        assert_eq!(ContainerStatus::Error.exit_code(Some("pull failed")), 128);
    }

    #[test]
    fn delete_rules_follow_zun() {
        assert!(!ContainerStatus::Running.can_delete(false, false));
        assert!(ContainerStatus::Running.can_delete(false, true));
        assert!(ContainerStatus::Running.can_delete(true, false));
        assert!(ContainerStatus::Stopped.can_delete(false, false));
        assert!(!ContainerStatus::Paused.can_delete(false, true));
    }

    #[test]
    fn ids_refuse_unsafe_input() {
        assert!(ProjectId::parse("a1b2c3").is_ok());
        assert!(ProjectId::parse("a/b").is_err());
        assert!(ProjectId::parse("").is_err());
        assert!(ContainerId::parse("not-a-uuid").is_err());
        let id = ContainerId::generate();
        assert_eq!(ContainerId::parse(&id.to_string()), Ok(id));
        assert!(RequestId::from_client("req-00000000-0000-0000-0000-000000000000").is_some());
        assert!(RequestId::from_client("req-x").is_none());
        assert!(RequestId::generate().as_str().starts_with("req-"));
    }

    #[test]
    fn sort_keys_and_directions_round_trip_and_refuse_the_rest() {
        for key in SortKey::ALL {
            assert_eq!(SortKey::parse(key.as_str()), Some(key));
        }
        assert_eq!(SortKey::parse("name; DROP TABLE containers"), None);
        assert_eq!(SortDir::parse("desc"), Some(SortDir::Desc));
        assert_eq!(SortDir::parse("DESC"), None);
    }
}
