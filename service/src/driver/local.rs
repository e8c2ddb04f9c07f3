//! The `local` instance driver: the embedded default for one machine,
//! development and CI (DESIGN.md, "Instance drivers"). Needs root.
//!
//! Each "instance" is a network namespace with its own address on a host
//! bridge, its own dockerd and a `nest-agent` started after applying the
//! user-data's `write_files`. Enrollment, relay and mTLS are the same as on
//! Nova: only the booting differs.
//!
//! # What an instance is made of
//!
//! For an instance `ID` whose id hashes to `H` (8 hex digits, see
//! [`LocalDriver::namespace`]):
//!
//! - `<state_dir>/instances/ID/`: `root/` (the `write_files`, at their
//!   in-guest paths below it), `address`, `daemon.json`, `docker/` (the
//!   engine's data root), `docker.pid`, our own `dockerd.pid` and
//!   `agent.pid` (pid and start time), `dockerd.log`, `agent.log`;
//! - `<state_dir>/leases/A.B.C.D`: the address lease, holding `ID`;
//! - `<run_dir>/H/`: the engine's exec root and `docker.sock` (kept short:
//!   Unix socket paths are limited to 107 bytes);
//! - network namespace `nest-H` with `eth0` (the instance's address,
//!   default route via the gateway) and `lo`; host veth `nvH` on the
//!   bridge, which holds the gateway address (`.1`);
//! - cgroups `/nest-H` in every hierarchy: the engine's `--cgroup-parent`,
//!   so that every container of the instance can be found and killed.
//!
//! Everything is named from the id or recorded on disk, so after a service
//! restart [`InstanceDriver::list`] and [`InstanceDriver::delete`] work from
//! what is there. Instances outlive the service (they run in their own
//! process groups), as Nova servers would.
//!
//! # Booting
//!
//! The engine runs as `nsenter --net=/var/run/netns/nest-H dockerd ...`,
//! never under `ip netns exec`, which remounts `/sys` and makes dockerd
//! fail with "Devices cgroup isn't mounted". Each namespace has its own
//! `docker0`, so the default 172.17.0.0/16 is fine in all of them, and a
//! port published inside is reachable from the host at the instance's
//! address. The engine is given an empty `daemon.json` so that the host's
//! `/etc/docker/daemon.json` never applies to it.
//!
//! The agent runs as `nsenter --net=... unshare --mount --propagation
//! private sh -c SCRIPT ...`: in a private mount namespace the script
//! bind-mounts the instance's `root/etc/nest`, its agent state directory and
//! its engine's socket over `/etc/nest`, `/var/lib/nest-agent` and the
//! agent's `docker_socket` (by default `/var/run/docker.sock`), then `exec`s
//! the agent with `--config /etc/nest/agent.toml`. Paths are positional
//! arguments, never interpolated into the script. The host's own files are
//! never covered outside that namespace; where a mount point is missing on
//! the host, an empty directory (or empty file, for the socket) is created.
//!
//! `runcmd` is not run (no systemctl, no download): the driver plays
//! systemd's part and starts its configured [`LocalDriverConfig::agent_binary`].
//!
//! # Supervision
//!
//! A real guest's systemd restarts its agent (`Restart=always`) and its
//! engine; [`LocalDriver::supervise`] plays that part: every
//! [`SUPERVISE_INTERVAL`] it looks at each instance's recorded engine and
//! agent, and starts again whichever is dead (the engine first: the agent
//! needs it), once it has been dead for
//! [`LocalDriverConfig::restart_delay`]. Instances being booted or deleted
//! are left alone. Each engine runs with `live-restore`, so its containers
//! keep running while it is down and are picked up again when it is back.
//! An agent whose engine was started again is restarted too: it sees the
//! engine's socket through a bind mount of the old socket file.
//!
//! # The relay
//!
//! Instances reach the host only on the bridge, so the relay address in
//! user-data must be [`LocalDriver::gateway_address`] with the relay's
//! port, and the relay must listen on `0.0.0.0` or on that address (which
//! exists once [`LocalDriver::ensure_bridge`] ran).
//!
//! # Deleting
//!
//! The agent gets SIGTERM (SIGKILL after [`AGENT_STOP_GRACE`]); the
//! instance's containers are killed through their cgroups (a deleted
//! instance is powered off, not shut down); the engine gets SIGTERM
//! (SIGKILL after [`DOCKERD_STOP_GRACE`]); whatever still runs in the
//! namespace (containerd, shims, proxies) is killed; then the cgroups, left
//! mounts, veth, namespace, lease and directories are removed.

mod guest;
mod network;
mod processes;
mod subnet;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;

use self::guest::GuestPlan;
use self::network::NetNames;
use self::processes::PidRecord;
use self::subnet::Subnet;
use crate::domain::InstanceId;
use crate::driver::{BootRequest, BootedInstance, DriverError, InstanceDriver, Listing, Reason};

/// Default host bridge.
pub const DEFAULT_BRIDGE: &str = "nest0";
/// Default host-only subnet; the gateway is `.1`, instances get `.2`–`.254`.
pub const DEFAULT_SUBNET: &str = "10.247.0.0/24";
/// Default engine binary, looked up in `PATH`.
pub const DEFAULT_DOCKERD_BINARY: &str = "dockerd";
/// Default virtual CPUs an instance offers.
pub const DEFAULT_VCPUS: f64 = 2.0;
/// Default memory an instance offers, in MiB.
pub const DEFAULT_MEMORY_MIB: u64 = 2048;
/// Default name of the network in [`BootedInstance::addresses`].
pub const DEFAULT_NETWORK_NAME: &str = "local";
/// Default directory for the engines' exec roots and sockets.
pub const DEFAULT_RUN_DIR: &str = "/run/nest-local";
/// The agent binary's file name, looked for next to the service's own
/// executable by default.
pub const AGENT_BINARY_NAME: &str = "nest-agent";

/// Longest wait for a new engine to answer on its socket (its first start
/// also starts its containerd).
pub const DOCKERD_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the agent may take to stop after SIGTERM.
pub const AGENT_STOP_GRACE: Duration = Duration::from_secs(10);
/// How long an engine may take to stop after SIGTERM (its containers are
/// already dead by then).
pub const DOCKERD_STOP_GRACE: Duration = Duration::from_secs(20);
/// Default time a dead engine or agent stays dead before it is started
/// again.
pub const DEFAULT_RESTART_DELAY: Duration = Duration::from_secs(1);
/// How often [`LocalDriver::supervise`] looks for a dead engine or agent.
pub const SUPERVISE_INTERVAL: Duration = Duration::from_secs(1);
/// Each engine's `daemon.json`: containers outlive a dead engine, as on a
/// guest configured for it, and the host's own daemon.json never applies.
const DAEMON_JSON: &str = "{\"live-restore\": true}\n";
/// Where the agent's bind mounts are recorded, to start it again as it
/// was started at boot.
const AGENT_BINDS_FILE: &str = "agent.binds";
/// Longest wait for one `GET /_ping` to an engine.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a starting engine is pinged.
const READY_POLL: Duration = Duration::from_millis(100);
/// The engine's storage driver: vfs works on any backing filesystem
/// (including overlayfs and inside containers), at the price of disk space.
const DOCKERD_STORAGE_DRIVER: &str = "--storage-driver=vfs";
/// The agent's log filter (`RUST_LOG`), fixed so that the service's own
/// filter never silences the agent.
const AGENT_LOG_FILTER: &str = "info";
/// Mounts each (source, target) pair, then runs the agent (`$1 --config
/// $2`). Every value is a positional argument: nothing is interpolated.
const AGENT_LAUNCH_SCRIPT: &str = r#"set -eu
while [ "$#" -gt 2 ]; do
    mount --bind -- "$1" "$2"
    shift 2
done
exec "$1" --config "$2"
"#;
/// How much of a log a boot error quotes.
const LOG_TAIL_BYTES: u64 = 2048;

const ADDRESS_FILE: &str = "address";
const AGENT_PID_FILE: &str = "agent.pid";
const AGENT_LOG_FILE: &str = "agent.log";
const DOCKERD_PID_FILE: &str = "dockerd.pid";
const DOCKERD_LOG_FILE: &str = "dockerd.log";

/// Addresses a guest gets from outside the driver (a cloud's fixed and
/// floating addresses), instead of a lease from the driver's subnet; see
/// [`LocalDriver::boot_guest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestAddresses {
    /// The guest's own address: a host address of the driver's subnet,
    /// leased to it exactly.
    pub address: Ipv4Addr,
    /// Further addresses the guest answers on (`/32` on its `eth0`); the
    /// host reaches them through routes on the bridge that the caller
    /// sets up.
    pub extra: Vec<Ipv4Addr>,
}

/// Settings of the `local` driver.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalDriverConfig {
    /// Where instances live (`<state_dir>/instances/<id>/`) and addresses
    /// are leased (`<state_dir>/leases/`). Absolute. Default in the
    /// service's config: `<service state_dir>/local`, filled in by the
    /// service (left empty until then, which [`LocalDriver::new`] refuses).
    #[serde(default)]
    pub state_dir: PathBuf,
    /// Where engines keep their exec roots and sockets
    /// (`<run_dir>/<hash>/`); short, because Unix socket paths are limited.
    /// Absolute. Default: [`DEFAULT_RUN_DIR`].
    #[serde(default = "defaults::run_dir")]
    pub run_dir: PathBuf,
    /// Host bridge the instances are attached to; created when missing. At
    /// most 15 characters. Default: [`DEFAULT_BRIDGE`].
    #[serde(default = "defaults::bridge")]
    pub bridge: String,
    /// Host-only IPv4 subnet, `a.b.c.d/len` (len 8–30): the bridge gets the
    /// first address, instances the others. One driver per bridge and
    /// subnet. Default: [`DEFAULT_SUBNET`].
    #[serde(default = "defaults::subnet")]
    pub subnet: String,
    /// The `nest-agent` binary to start in each instance. Default:
    /// `nest-agent` next to the current executable.
    #[serde(default = "default_agent_binary")]
    pub agent_binary: PathBuf,
    /// The engine binary. Default: [`DEFAULT_DOCKERD_BINARY`] from `PATH`.
    #[serde(default = "defaults::dockerd_binary")]
    pub dockerd_binary: PathBuf,
    /// Virtual CPUs each instance offers to containers. Default:
    /// [`DEFAULT_VCPUS`].
    #[serde(default = "defaults::vcpus")]
    pub vcpus: f64,
    /// Memory each instance offers to containers, in MiB. Default:
    /// [`DEFAULT_MEMORY_MIB`].
    #[serde(default = "defaults::memory_mib")]
    pub memory_mib: u64,
    /// Name of the network in [`BootedInstance::addresses`] (the `pub` of
    /// `pub:222:22`). Default: [`DEFAULT_NETWORK_NAME`].
    #[serde(default = "defaults::network_name")]
    pub network_name: String,
    /// How long an instance's engine or agent stays dead before it is
    /// started again (systemd's `RestartSec`). Default:
    /// [`DEFAULT_RESTART_DELAY`].
    #[serde(default = "defaults::restart_delay")]
    pub restart_delay: nest_core::duration::HumanDuration,
}

mod defaults {
    use std::path::PathBuf;

    pub(super) fn restart_delay() -> nest_core::duration::HumanDuration {
        nest_core::duration::HumanDuration(super::DEFAULT_RESTART_DELAY)
    }

    pub(super) fn run_dir() -> PathBuf {
        PathBuf::from(super::DEFAULT_RUN_DIR)
    }
    pub(super) fn bridge() -> String {
        super::DEFAULT_BRIDGE.to_owned()
    }
    pub(super) fn subnet() -> String {
        super::DEFAULT_SUBNET.to_owned()
    }
    pub(super) fn dockerd_binary() -> PathBuf {
        PathBuf::from(super::DEFAULT_DOCKERD_BINARY)
    }
    pub(super) fn vcpus() -> f64 {
        super::DEFAULT_VCPUS
    }
    pub(super) fn memory_mib() -> u64 {
        super::DEFAULT_MEMORY_MIB
    }
    pub(super) fn network_name() -> String {
        super::DEFAULT_NETWORK_NAME.to_owned()
    }
}

/// `nest-agent` next to the current executable, or `nest-agent` (from
/// `PATH`) when the executable's path is unknown.
pub fn default_agent_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(AGENT_BINARY_NAME)))
        .unwrap_or_else(|| PathBuf::from(AGENT_BINARY_NAME))
}

impl Default for LocalDriverConfig {
    /// Every default, and no `state_dir` yet.
    fn default() -> Self {
        Self::new(PathBuf::new())
    }
}

impl LocalDriverConfig {
    /// Every default, with instances under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            run_dir: defaults::run_dir(),
            bridge: defaults::bridge(),
            subnet: defaults::subnet(),
            agent_binary: default_agent_binary(),
            dockerd_binary: defaults::dockerd_binary(),
            vcpus: DEFAULT_VCPUS,
            memory_mib: DEFAULT_MEMORY_MIB,
            network_name: defaults::network_name(),
            restart_delay: defaults::restart_delay(),
        }
    }

    /// Checks every field, reporting all problems at once.
    fn validate(&self) -> Result<Subnet, DriverError> {
        let mut problems = Vec::new();
        for (key, path) in [("state_dir", &self.state_dir), ("run_dir", &self.run_dir)] {
            if !path.is_absolute() {
                problems.push(format!("{key}: {} is not absolute", path.display()));
            }
        }
        let bridge_ok = (1..=15).contains(&self.bridge.len())
            && self
                .bridge
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !bridge_ok {
            problems.push(format!(
                "bridge: {:?} is not 1-15 characters of [A-Za-z0-9._-]",
                self.bridge
            ));
        }
        let subnet = Subnet::parse(&self.subnet)
            .map_err(|reason| problems.push(format!("subnet: {reason}")))
            .ok();
        for (key, path) in [
            ("agent_binary", &self.agent_binary),
            ("dockerd_binary", &self.dockerd_binary),
        ] {
            if path.as_os_str().is_empty() {
                problems.push(format!("{key}: must not be empty"));
            }
        }
        if !(self.vcpus.is_finite() && self.vcpus > 0.0) {
            problems.push(format!("vcpus: {} is not a positive number", self.vcpus));
        }
        if self.memory_mib == 0 {
            problems.push("memory_mib: must be positive".to_owned());
        }
        if self.network_name.is_empty() {
            problems.push("network_name: must not be empty".to_owned());
        }
        match subnet {
            Some(subnet) if problems.is_empty() => Ok(subnet),
            _ => Err(DriverError::invalid(
                "local driver configuration",
                problems.join("; "),
            )),
        }
    }
}

/// The `local` driver. See the module documentation.
pub struct LocalDriver {
    config: LocalDriverConfig,
    subnet: Subnet,
    /// Serializes creating the bridge: two boots must not race on it.
    bridge_lock: tokio::sync::Mutex<()>,
    /// One task per started engine or agent, reaping it when it exits.
    /// Dropping the driver aborts the tasks, not the processes: instances
    /// outlive the service.
    children: std::sync::Mutex<JoinSet<()>>,
    /// Instances being booted or deleted: supervision leaves them alone.
    busy: std::sync::Mutex<std::collections::HashSet<InstanceId>>,
    /// Held while supervision restarts something, so that a delete that
    /// begins meanwhile waits for it to finish.
    reviving: tokio::sync::Mutex<()>,
    /// Since when supervision has seen each dead engine or agent.
    dead_since: std::sync::Mutex<BTreeMap<(InstanceId, &'static str), tokio::time::Instant>>,
}

impl std::fmt::Debug for LocalDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalDriver")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Everything an instance is named on the host, derived from its id.
struct Names {
    dir: PathBuf,
    run: PathBuf,
    net: NetNames,
    cgroup: String,
}

/// FNV-1a (32 bits) of the id, as 8 hex digits: short enough for interface
/// names (at most 15 characters), stable across restarts.
fn id_hash(id: &InstanceId) -> String {
    let hash = id.as_str().bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("{hash:08x}")
}

fn io_error(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> DriverError {
    move |e| DriverError::internal(action, e)
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    action: &str,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, DriverError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(io_error(action)),
        Err(join) => Err(DriverError::internal(action, join)),
    }
}

/// The whole cause chain of an error, for one log line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn netns_arg(names: &Names) -> OsString {
    let mut arg = OsString::from("--net=");
    arg.push(names.net.netns_path());
    arg
}

/// Whether the engine at `socket` answers `GET /_ping` with 200.
async fn ping(socket: &Path) -> bool {
    let attempt = async {
        let mut stream = tokio::net::UnixStream::connect(socket).await.ok()?;
        stream
            .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            .await
            .ok()?;
        let mut answer = Vec::new();
        stream.take(1024).read_to_end(&mut answer).await.ok()?;
        Some(answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(PING_TIMEOUT, attempt).await,
        Ok(Some(true))
    )
}

/// The last [`LOG_TAIL_BYTES`] of a log, for an error message.
async fn log_tail(path: &Path) -> String {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let text = std::fs::read(&path).unwrap_or_default();
        let start = text
            .len()
            .saturating_sub(usize::try_from(LOG_TAIL_BYTES).unwrap_or(usize::MAX));
        String::from_utf8_lossy(text.get(start..).unwrap_or_default())
            .trim()
            .to_owned()
    })
    .await
    .unwrap_or_default()
}

impl LocalDriver {
    /// A driver with `config`; touches nothing on the host until the first
    /// boot.
    ///
    /// # Errors
    /// [`DriverError::Invalid`] listing every unusable setting.
    pub fn new(config: LocalDriverConfig) -> Result<Self, DriverError> {
        let subnet = config.validate()?;
        Ok(Self {
            config,
            subnet,
            bridge_lock: tokio::sync::Mutex::new(()),
            children: std::sync::Mutex::new(JoinSet::new()),
            busy: std::sync::Mutex::new(std::collections::HashSet::new()),
            reviving: tokio::sync::Mutex::new(()),
            dead_since: std::sync::Mutex::new(BTreeMap::new()),
        })
    }

    /// Whether the dead `what` of `id` has been dead for the restart delay
    /// (and so is to be started now); `alive` clears the record.
    fn due_for_restart(&self, id: &InstanceId, what: &'static str, alive: bool) -> bool {
        let mut dead = self
            .dead_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (id.clone(), what);
        if alive {
            dead.remove(&key);
            return false;
        }
        let since = *dead.entry(key).or_insert_with(tokio::time::Instant::now);
        since.elapsed() >= self.config.restart_delay.get()
    }

    fn busy(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<InstanceId>> {
        // Nothing awaits or panics under this lock.
        self.busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Restarts every instance's dead engine or agent, as the guest's
    /// systemd would, until `cancel`. See the module documentation.
    pub async fn supervise(&self, cancel: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(SUPERVISE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let ids = match self.list_instances().await {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::debug!(error = %chain(&e), "cannot list instances to supervise");
                    continue;
                }
            };
            for id in ids {
                if cancel.is_cancelled() {
                    return;
                }
                self.revive(&id).await;
            }
        }
    }

    /// Starts again the engine or agent of `id` that died.
    async fn revive(&self, id: &InstanceId) {
        let _reviving = self.reviving.lock().await;
        if self.busy().contains(id) {
            return;
        }
        let names = self.names(id);
        let (dockerd_pid, agent_pid) = (
            names.dir.join(DOCKERD_PID_FILE),
            names.dir.join(AGENT_PID_FILE),
        );
        let Ok((dockerd, agent)) = blocking("reading pid files", move || {
            let alive = |path: &Path| processes::read_pid_file(path).map(|r| r.is_running());
            Ok((alive(&dockerd_pid), alive(&agent_pid)))
        })
        .await
        else {
            return;
        };
        let dockerd_due = dockerd.is_some_and(|alive| self.due_for_restart(id, "dockerd", alive));
        let mut agent_due = agent.is_some_and(|alive| self.due_for_restart(id, "agent", alive));
        if dockerd_due {
            tracing::warn!(instance_id = %id, "the instance's dockerd died; starting it again");
            match self.start_dockerd(id, &names).await {
                Ok(()) => tracing::info!(instance_id = %id, "the instance's dockerd runs again"),
                Err(e) => {
                    tracing::warn!(instance_id = %id, error = %chain(&e), "could not start dockerd again; retrying");
                    return;
                }
            }
            // The agent sees the engine's socket through a bind mount of
            // the old socket file, which the new engine replaced: it is
            // started again with the new one (on a real guest it reaches
            // the socket by path and carries on).
            if agent == Some(true) {
                let agent_pid = names.dir.join(AGENT_PID_FILE);
                let record = blocking("reading the agent's pid file", move || {
                    Ok(processes::read_pid_file(&agent_pid))
                })
                .await
                .ok()
                .flatten();
                if let Some(record) = record
                    && processes::stop(record, AGENT_STOP_GRACE).await
                {
                    agent_due = true;
                }
            }
        }
        if agent_due {
            tracing::warn!(instance_id = %id, "the instance's agent died; starting it again");
            match self.restart_agent(id, &names).await {
                Ok(()) => tracing::info!(instance_id = %id, "the instance's agent runs again"),
                Err(e) => {
                    tracing::warn!(instance_id = %id, error = %chain(&e), "could not start the agent again; retrying");
                }
            }
        }
    }

    /// Starts the agent of `id` again, with the bind mounts it was booted
    /// with.
    async fn restart_agent(&self, id: &InstanceId, names: &Names) -> Result<(), DriverError> {
        let path = names.dir.join(AGENT_BINDS_FILE);
        let text = tokio::fs::read(&path)
            .await
            .map_err(io_error(format!("reading {}", path.display())))?;
        let pairs: Vec<(PathBuf, PathBuf)> = serde_json::from_slice(&text)
            .map_err(|e| DriverError::internal(format!("reading {}", path.display()), e))?;
        let binds: Vec<guest::Bind> = pairs
            .into_iter()
            .map(|(source, target)| guest::Bind { source, target })
            .collect();
        self.launch_agent(id, names, &binds).await
    }

    /// The settings in use.
    pub fn config(&self) -> &LocalDriverConfig {
        &self.config
    }

    /// The host's address on the bridge (`10.247.0.1` by default): the
    /// only host address instances reach, so user-data names the relay as
    /// `<this>:<relay port>`, and the relay listens on `0.0.0.0` or here.
    pub fn gateway_address(&self) -> Ipv4Addr {
        self.subnet.gateway()
    }

    /// Creates the bridge with the gateway address unless it exists (boot
    /// does this too). Call it before binding the relay to the gateway.
    ///
    /// # Errors
    /// [`DriverError`] when `ip` fails or hangs.
    pub async fn ensure_bridge(&self) -> Result<(), DriverError> {
        let _serialized = self.bridge_lock.lock().await;
        network::ensure_bridge(
            &self.config.bridge,
            self.subnet.gateway(),
            self.subnet.prefix(),
        )
        .await
    }

    /// The instance's directory, `<state_dir>/instances/<id>`.
    pub fn instance_dir(&self, id: &InstanceId) -> PathBuf {
        self.instances_dir().join(id.as_str())
    }

    /// The instance's engine socket, `<run_dir>/<hash>/docker.sock`.
    pub fn docker_socket(&self, id: &InstanceId) -> PathBuf {
        self.names(id).run.join("docker.sock")
    }

    /// The instance's network namespace name, `nest-<hash>` (under
    /// `/var/run/netns/`); the hash is FNV-1a of the id, so an id always
    /// maps to the same names, even after a restart.
    pub fn namespace(&self, id: &InstanceId) -> String {
        self.names(id).net.netns
    }

    fn instances_dir(&self) -> PathBuf {
        self.config.state_dir.join("instances")
    }

    fn leases_dir(&self) -> PathBuf {
        self.config.state_dir.join("leases")
    }

    fn names(&self, id: &InstanceId) -> Names {
        let hash = id_hash(id);
        Names {
            dir: self.instance_dir(id),
            run: self.config.run_dir.join(&hash),
            net: NetNames {
                netns: format!("nest-{hash}"),
                host_veth: format!("nv{hash}"),
                peer_veth: format!("np{hash}"),
            },
            cgroup: format!("nest-{hash}"),
        }
    }

    /// Keeps a task that reaps `child` and logs its exit.
    fn track(&self, what: &'static str, id: &InstanceId, mut child: Child) {
        let id = id.clone();
        let mut children = self
            .children
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Forget the tasks of processes that already exited.
        while children.try_join_next().is_some() {}
        children.spawn(async move {
            match child.wait().await {
                Ok(status) => tracing::info!(instance_id = %id, %status, "{what} exited"),
                Err(e) => tracing::warn!(instance_id = %id, error = %e, "cannot wait for {what}"),
            }
        });
    }

    /// Starts `command` with its output appended to `log`, records it in
    /// `pid_file`, and returns it.
    async fn spawn_logged(
        &self,
        what: &'static str,
        mut command: Command,
        log: PathBuf,
        pid_file: PathBuf,
    ) -> Result<Child, DriverError> {
        let action = format!("starting {what}");
        let log_path = log.clone();
        let (stdout, stderr) = blocking(&action, move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)?;
            let copy = file.try_clone()?;
            Ok((file, copy))
        })
        .await?;
        command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            // Its own process group: a Ctrl-C aimed at the service does not
            // reach the instance.
            .process_group(0);
        let mut child = command.spawn().map_err(io_error(action.clone()))?;
        let pid = child.id();
        let record = blocking(&action, move || {
            let record = pid.and_then(PidRecord::of);
            if let Some(record) = record {
                processes::write_pid_file(&pid_file, record)?;
            }
            Ok(record)
        })
        .await?;
        if record.is_none() {
            let status = child.wait().await.map_err(io_error(action.clone()))?;
            return Err(DriverError::internal(
                action,
                Reason(format!(
                    "exited at once with {status}: {}",
                    log_tail(&log).await
                )),
            ));
        }
        Ok(child)
    }

    /// Starts a guest like [`InstanceDriver::boot`] does, but at the
    /// addresses another system assigned it (the test hypervisor gives a
    /// Nova server's guest its Neutron addresses). Deleted and listed like
    /// any other instance of this driver.
    ///
    /// # Errors
    /// [`DriverError`]; [`DriverError::Invalid`] when the address is not in
    /// the subnet or another guest holds it.
    pub async fn boot_guest(
        &self,
        req: BootRequest,
        addresses: GuestAddresses,
    ) -> Result<BootedInstance, DriverError> {
        self.boot_instance(req, Some(addresses)).await
    }

    #[tracing::instrument(skip_all, fields(instance_id = %req.instance_id, project_id = %req.project_id))]
    async fn boot_instance(
        &self,
        req: BootRequest,
        assigned: Option<GuestAddresses>,
    ) -> Result<BootedInstance, DriverError> {
        let plan = GuestPlan::parse(&req.user_data)?;
        let id = req.instance_id;
        let agent = &self.config.agent_binary;
        tokio::fs::metadata(agent)
            .await
            .map_err(io_error(format!("finding the agent {}", agent.display())))?;
        let instances = self.instances_dir();
        tokio::fs::create_dir_all(&instances)
            .await
            .map_err(io_error(format!("creating {}", instances.display())))?;
        let dir = self.instance_dir(&id);
        match tokio::fs::create_dir(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(DriverError::invalid(
                    "instance id",
                    format!("instance {id} already exists"),
                ));
            }
            Err(e) => return Err(io_error(format!("creating {}", dir.display()))(e)),
        }
        self.busy().insert(id.clone());
        let started = self.start(&id, plan, assigned).await;
        if started.is_ok() {
            // A failed boot stays busy until its teardown is done.
            self.busy().remove(&id);
        }
        match started {
            Ok(address) => {
                tracing::info!(%address, "instance booted");
                Ok(BootedInstance {
                    id,
                    addresses: BTreeMap::from([(
                        self.config.network_name.clone(),
                        IpAddr::V4(address),
                    )]),
                    vcpus: self.config.vcpus,
                    memory_mib: self.config.memory_mib,
                })
            }
            Err(e) => {
                tracing::warn!(error = %chain(&e), "boot failed; removing what was made");
                if let Err(cleanup) = self.teardown(&id).await {
                    tracing::warn!(error = %chain(&cleanup), "cleanup after a failed boot failed; delete retries");
                }
                Err(e)
            }
        }
    }

    /// Everything after the instance directory exists. Returns the address.
    async fn start(
        &self,
        id: &InstanceId,
        plan: GuestPlan,
        assigned: Option<GuestAddresses>,
    ) -> Result<Ipv4Addr, DriverError> {
        let names = self.names(id);
        let subnet = self.subnet;
        let (leases, holder) = (self.leases_dir(), id.clone());
        let extra = assigned
            .as_ref()
            .map(|a| a.extra.clone())
            .unwrap_or_default();
        let address = match assigned {
            Some(GuestAddresses { address, .. }) => {
                let leased = blocking("leasing an address", move || {
                    subnet.lease_exact(&leases, &holder, address)
                })
                .await;
                match leased {
                    Ok(true) => address,
                    Ok(false) => {
                        return Err(DriverError::invalid(
                            "address",
                            format!("{address} is held by another instance"),
                        ));
                    }
                    Err(e) => return Err(e),
                }
            }
            None => blocking("leasing an address", move || subnet.lease(&leases, &holder))
                .await?
                .ok_or_else(|| DriverError::OverQuota {
                    reason: format!(
                        "all {} addresses of the local subnet {} are in use",
                        subnet.hosts().count(),
                        self.config.subnet
                    ),
                })?,
        };

        let (dir, run) = (names.dir.clone(), names.run.clone());
        let plan = std::sync::Arc::new(plan);
        let writer = plan.clone();
        blocking("writing the user-data's files", move || {
            std::fs::write(dir.join(ADDRESS_FILE), format!("{address}\n"))?;
            // An empty daemon.json: the host's /etc/docker/daemon.json must
            // not configure this engine.
            std::fs::write(dir.join("daemon.json"), DAEMON_JSON)?;
            writer.write(&dir.join("root"))?;
            writer.ensure_mount_points()?;
            std::fs::create_dir_all(run.join("exec"))?;
            std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700))
        })
        .await?;

        self.ensure_bridge().await?;
        network::create_namespace(
            &names.net,
            &self.config.bridge,
            address,
            self.subnet.prefix(),
            self.subnet.gateway(),
        )
        .await?;
        network::add_addresses(&names.net, &extra).await?;
        self.start_dockerd(id, &names).await?;
        self.start_agent(id, &names, &plan).await?;
        Ok(address)
    }

    async fn start_dockerd(&self, id: &InstanceId, names: &Names) -> Result<(), DriverError> {
        let socket = names.run.join("docker.sock");
        let mut host = OsString::from("unix://");
        host.push(&socket);
        let mut command = Command::new("nsenter");
        command
            .arg(netns_arg(names))
            .arg("--")
            .arg(&self.config.dockerd_binary)
            .arg("--config-file")
            .arg(names.dir.join("daemon.json"))
            .arg(DOCKERD_STORAGE_DRIVER)
            .arg("--data-root")
            .arg(names.dir.join("docker"))
            .arg("--exec-root")
            .arg(names.run.join("exec"))
            .arg("--pidfile")
            .arg(names.dir.join("docker.pid"))
            .arg("-H")
            .arg(host)
            .arg("--cgroup-parent")
            .arg(format!("/{}", names.cgroup))
            // In case a system containerd is shared: keep apart from it.
            .arg("--containerd-namespace")
            .arg(&names.cgroup)
            .arg("--containerd-plugins-namespace")
            .arg(format!("{}-plugins", names.cgroup));
        let log = names.dir.join(DOCKERD_LOG_FILE);
        let mut child = self
            .spawn_logged(
                "dockerd",
                command,
                log.clone(),
                names.dir.join(DOCKERD_PID_FILE),
            )
            .await?;
        let what = || format!("dockerd of instance {id}");
        let deadline = tokio::time::Instant::now() + DOCKERD_START_TIMEOUT;
        loop {
            if ping(&socket).await {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(DriverError::Unavailable {
                    what: what(),
                    source: Box::new(Reason(format!(
                        "exited with {status} before answering: {}",
                        log_tail(&log).await
                    ))),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DriverError::Unavailable {
                    what: what(),
                    source: Box::new(Reason(format!(
                        "no answer on {} within {DOCKERD_START_TIMEOUT:?}; see {}",
                        socket.display(),
                        log.display()
                    ))),
                });
            }
            tokio::time::sleep(READY_POLL).await;
        }
        tracing::debug!(socket = %socket.display(), "dockerd answers");
        self.track("dockerd", id, child);
        Ok(())
    }

    async fn start_agent(
        &self,
        id: &InstanceId,
        names: &Names,
        plan: &GuestPlan,
    ) -> Result<(), DriverError> {
        let binds = plan.binds(&names.dir.join("root"), &names.run.join("docker.sock"));
        let pairs: Vec<(&Path, &Path)> = binds
            .iter()
            .map(|b| (b.source.as_path(), b.target.as_path()))
            .collect();
        let record = serde_json::to_vec(&pairs)
            .map_err(|e| DriverError::internal("recording the agent's bind mounts", e))?;
        let path = names.dir.join(AGENT_BINDS_FILE);
        tokio::fs::write(&path, record)
            .await
            .map_err(io_error(format!("writing {}", path.display())))?;
        self.launch_agent(id, names, &binds).await
    }

    /// Starts the agent in its mount namespace with `binds`.
    async fn launch_agent(
        &self,
        id: &InstanceId,
        names: &Names,
        binds: &[guest::Bind],
    ) -> Result<(), DriverError> {
        let mut command = Command::new("nsenter");
        command
            .arg(netns_arg(names))
            .args(["--", "unshare", "--mount", "--propagation", "private"])
            .args(["--", "sh", "-c", AGENT_LAUNCH_SCRIPT, "nest-agent-launch"]);
        for bind in binds {
            command.arg(&bind.source).arg(&bind.target);
        }
        command
            .arg(&self.config.agent_binary)
            .arg(nest_cloud_init::AGENT_CONFIG_PATH)
            .env("RUST_LOG", AGENT_LOG_FILTER)
            // The log is a file: no colour escapes in it.
            .env("NO_COLOR", "1");
        let child = self
            .spawn_logged(
                "the agent",
                command,
                names.dir.join(AGENT_LOG_FILE),
                names.dir.join(AGENT_PID_FILE),
            )
            .await?;
        self.track("the agent", id, child);
        Ok(())
    }

    /// Stops and removes everything of instance `id` that exists.
    #[tracing::instrument(skip_all, fields(instance_id = %id))]
    async fn teardown(&self, id: &InstanceId) -> Result<(), DriverError> {
        self.busy().insert(id.clone());
        // A restart already under way finishes before anything is stopped.
        drop(self.reviving.lock().await);
        let result = self.teardown_unsupervised(id).await;
        if result.is_ok() {
            self.busy().remove(id);
            self.dead_since
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .retain(|(dead, _), _| dead != id);
        }
        result
    }

    async fn teardown_unsupervised(&self, id: &InstanceId) -> Result<(), DriverError> {
        let names = self.names(id);
        let stop_failed = |what: &str| {
            DriverError::internal(
                format!("stopping {what} of instance {id}"),
                Reason("it survived SIGKILL".into()),
            )
        };

        let agent_pid = names.dir.join(AGENT_PID_FILE);
        let agent = blocking("reading the agent's pid file", move || {
            Ok(processes::read_pid_file(&agent_pid))
        })
        .await?;
        if let Some(record) = agent
            && !processes::stop(record, AGENT_STOP_GRACE).await
        {
            return Err(stop_failed("the agent"));
        }

        // The instance is powered off, not shut down: its containers die
        // first, so the engine has nothing to wait for.
        let cgroup = names.cgroup.clone();
        blocking("killing the containers", move || {
            Ok(processes::kill_cgroups(&cgroup))
        })
        .await?;

        let dockerd_pid = names.dir.join(DOCKERD_PID_FILE);
        let dockerd = blocking("reading dockerd's pid file", move || {
            Ok(processes::read_pid_file(&dockerd_pid))
        })
        .await?;
        if let Some(record) = dockerd
            && !processes::stop(record, DOCKERD_STOP_GRACE).await
        {
            return Err(stop_failed("dockerd"));
        }

        // containerd, shims and proxies the engine started.
        let left = processes::kill_netns_processes(names.net.netns_path()).await;
        if left > 0 {
            return Err(stop_failed(&format!(
                "{left} processes in {}",
                names.net.netns
            )));
        }

        let cgroup = names.cgroup.clone();
        let deadline = tokio::time::Instant::now() + processes::KILL_WAIT;
        loop {
            let name = cgroup.clone();
            let removed = blocking("removing the containers' cgroups", move || {
                processes::kill_cgroups(&name);
                processes::remove_cgroups(&name)
            })
            .await;
            match removed {
                Ok(()) => break,
                // Busy while the last processes are reaped.
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(error = %chain(&e), "cgroups still busy");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }

        let (dir, run) = (names.dir.clone(), names.run.clone());
        blocking("unmounting what the engine left", move || {
            processes::unmount_under(&[&dir, &run])
        })
        .await?;

        network::delete_namespace(&names.net).await?;

        let (leases, holder) = (self.leases_dir(), id.clone());
        blocking("releasing the address", move || {
            subnet::release(&leases, &holder)
        })
        .await?;

        let (dir, run) = (names.dir.clone(), names.run.clone());
        blocking("removing the instance's files", move || {
            // Never recurse into a mount: that would delete what it shows.
            let left = processes::mounts_under(&[&dir, &run])?;
            if let Some(mount) = left.first() {
                return Err(std::io::Error::other(format!(
                    "{} is still mounted",
                    mount.display()
                )));
            }
            for path in [&run, &dir] {
                match std::fs::remove_dir_all(path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            Ok(())
        })
        .await?;
        tracing::info!("instance deleted");
        Ok(())
    }

    async fn list_instances(&self) -> Result<Vec<InstanceId>, DriverError> {
        let dir = self.instances_dir();
        let action = || format!("listing {}", dir.display());
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(action())(e)),
        };
        let mut ids = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(io_error(action()))? {
            let is_dir = entry
                .file_type()
                .await
                .map_err(io_error(action()))?
                .is_dir();
            // Anything else there is not ours.
            let id = entry
                .file_name()
                .to_str()
                .and_then(|name| InstanceId::parse(name).ok());
            if let (true, Some(id)) = (is_dir, id) {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }
}

impl InstanceDriver for LocalDriver {
    fn name(&self) -> &'static str {
        "local"
    }

    /// Boots a namespace instance; see the module documentation. Not
    /// cancel safe: a boot dropped midway leaves an instance that `list`
    /// reports and `delete` removes.
    fn boot(&self, req: BootRequest) -> BoxFuture<'_, Result<BootedInstance, DriverError>> {
        Box::pin(self.boot_instance(req, None))
    }

    fn delete<'a>(&'a self, id: &'a InstanceId) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(self.teardown(id))
    }

    fn list(&self) -> BoxFuture<'_, Result<Listing, DriverError>> {
        Box::pin(async move { self.list_instances().await.map(Listing::complete) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = LocalDriverConfig::new("/var/lib/nest/local");
        let parsed: LocalDriverConfig =
            toml::from_str("state_dir = \"/var/lib/nest/local\"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed, config);
        assert_eq!(config.bridge, "nest0");
        assert_eq!(config.subnet, "10.247.0.0/24");
        assert_eq!(config.network_name, "local");
        assert_eq!((config.vcpus, config.memory_mib), (2.0, 2048));
        assert!(config.agent_binary.ends_with("nest-agent"));
        let driver = LocalDriver::new(config).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(driver.gateway_address(), Ipv4Addr::new(10, 247, 0, 1));
    }

    #[test]
    fn every_bad_setting_is_reported_at_once() {
        let config = LocalDriverConfig {
            run_dir: "run".into(),
            bridge: "a-bridge-name-too-long".into(),
            subnet: "10.247.0.1/24".into(),
            vcpus: f64::NAN,
            memory_mib: 0,
            network_name: String::new(),
            ..LocalDriverConfig::new("state")
        };
        let Err(err) = LocalDriver::new(config) else {
            panic!("a bad configuration was accepted");
        };
        let text = chain(&err);
        for key in [
            "state_dir",
            "run_dir",
            "bridge",
            "subnet",
            "vcpus",
            "memory_mib",
            "network_name",
        ] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
        assert_eq!(err.kind(), crate::driver::DriverErrorKind::Invalid);
    }

    #[test]
    fn names_fit_interface_limits_and_are_stable() {
        let driver =
            LocalDriver::new(LocalDriverConfig::new("/s")).unwrap_or_else(|e| panic!("{e}"));
        let id = InstanceId::parse("6f9a1c2e-4b7d-4e0f-9a3b-2c1d0e9f8a7b")
            .unwrap_or_else(|e| panic!("{e}"));
        let names = driver.names(&id);
        assert!(names.net.netns.len() <= 15 && names.net.host_veth.len() <= 15);
        assert_eq!(driver.namespace(&id), driver.namespace(&id.clone()));
        let other = InstanceId::parse("6f9a1c2e-4b7d-4e0f-9a3b-2c1d0e9f8a7c")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(driver.namespace(&id), driver.namespace(&other));
        assert!(driver.docker_socket(&id).as_os_str().len() < 108);
    }

    #[test]
    fn launch_script_takes_every_value_as_an_argument() {
        assert!(!AGENT_LAUNCH_SCRIPT.contains("${"));
        for line in AGENT_LAUNCH_SCRIPT.lines() {
            if line.contains('$') && !line.contains("$#") {
                assert!(
                    line.split('$')
                        .skip(1)
                        .all(|rest| rest.starts_with(char::is_numeric)),
                    "{line}"
                );
            }
        }
    }
}
