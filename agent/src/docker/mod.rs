//! The only module of nest-agent that talks to dockerd.
//!
//! [`Engine`] carries out the agent's commands and streams on the local
//! Docker engine through bollard, and speaks only the agent's own types
//! ([`crate::model`]) and [`DockerError`] to its callers: no bollard type
//! leaves this module, and no wire type enters it.
//!
//! Ownership is the rule everything here follows: the agent only ever
//! touches containers it created. Each one is named `nest-<uuid>` in the
//! engine and carries the labels below; every operation looks its container
//! up by name *and* checks the labels, and a container that fails the check
//! is reported as not found. `list` and `events` only see containers labelled
//! with this agent's instance id, so several agents can share one engine.
//! The engine networks of user-defined networks follow the same rule: only
//! a network carrying Nest's labels for its id is ever joined or removed.
//!
//! This module does not decide anything: no retries, no state machine, no
//! reporting. Its callers do that with the results.
//!
//! Layout:
//! - `error.rs`: [`DockerError`] and the classification of engine failures.
//! - `spec.rs`: checks a `ContainerSpec` and builds the engine's create body.
//! - `answers.rs`: engine answers into the agent's reports (state, stats, top).
//! - `containers.rs`: the container lifecycle and one-shot queries.
//! - `images.rs`: pull and load.
//! - `networks.rs`: the engine networks of user-defined networks.
//! - `exec.rs`: captured and interactive exec.
//! - `streams.rs`: logs, attach, and [`InteractiveSession`].
//! - `events.rs`: the engine's event feed, narrowed to this agent.

mod answers;
mod containers;
mod error;
mod events;
mod exec;
mod images;
mod networks;
mod spec;
mod streams;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bollard::models::ContainerInspectResponse;
use bollard::{API_DEFAULT_VERSION, Docker};
use nest_core::ErrorKind;
use nest_core::ids::InstanceId;

use crate::log_fields::INSTANCE_ID;
use crate::model::{ContainerState, ContainerUuid, Pong};

pub use error::DockerError;
pub use networks::{LABEL_NETWORK_ID, NETWORK_NAME_PREFIX, NETWORK_SWEEP_GRACE, network_name};
pub use spec::{MAX_CPU_MILLIS, MAX_MEMORY_BYTES, MIN_CPU_MILLIS, MIN_MEMORY_BYTES};
pub use streams::{ChunkStream, InteractiveSession, SessionControl};

/// Label holding Nest's container uuid.
pub const LABEL_CONTAINER_UUID: &str = "nest.container.uuid";
/// Label holding the id of the instance whose agent created the container.
pub const LABEL_INSTANCE_ID: &str = "nest.instance.id";
/// Label marking a container as created by nest-agent; its value is [`MANAGED_BY`].
pub const LABEL_MANAGED_BY: &str = "nest.managed-by";
/// Label holding the spec's optional human name, since the engine name is
/// always `nest-<uuid>`.
pub const LABEL_CONTAINER_NAME: &str = "nest.container.name";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY: &str = "nest-agent";
/// Label keys under this prefix belong to Nest; a spec may not set them.
pub const RESERVED_LABEL_PREFIX: &str = "nest.";
/// Prefix of every engine container name the agent creates.
pub const CONTAINER_NAME_PREFIX: &str = "nest-";

/// Largest `Chunk` the streams produce, in bytes; larger engine frames are
/// split so that one frame never dominates the multiplexed agent session.
pub const MAX_CHUNK_BYTES: usize = 32 * 1024;

/// Limit on one ordinary engine call (inspect, create, start, pause, ...).
pub const DOCKER_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Limit on pulling one image; registries can be slow and images large.
pub const PULL_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Limit on loading one image archive, which includes receiving it.
pub const LOAD_IMAGE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Limit on a captured (non-interactive) exec, from creation to exit code.
pub const EXEC_CAPTURE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// How long to wait for an exit status once a session's output has ended.
pub const EXIT_STATUS_TIMEOUT: Duration = Duration::from_secs(10);
/// Grace the engine gives a container before SIGKILL when a stop or restart
/// names none (dockerd's default); the call's limit adds it.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

/// The engine name of the container with `uuid`.
pub fn container_name(uuid: &ContainerUuid) -> String {
    format!("{CONTAINER_NAME_PREFIX}{uuid}")
}

/// A connection to the local Docker engine, acting for one instance.
///
/// Cheap to clone: clones share one HTTP client.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    instance_id: InstanceId,
    versions: Arc<Versions>,
    /// Serializes making, joining and removing networks (see `networks.rs`).
    networks: Arc<tokio::sync::Mutex<()>>,
}

/// What the engine said about itself when the agent connected.
#[derive(Debug)]
struct Versions {
    docker: String,
    api: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("instance_id", &self.instance_id)
            .field("docker_version", &self.versions.docker)
            .field("api_version", &self.versions.api)
            .finish_non_exhaustive()
    }
}

/// A container this agent owns, as found by [`Engine::find`].
pub(crate) struct Managed {
    uuid: ContainerUuid,
    id: String,
    inspect: ContainerInspectResponse,
}

impl Managed {
    /// Whether the container runs with a terminal, which decides how its
    /// output streams are framed.
    fn tty(&self) -> bool {
        self.inspect
            .config
            .as_ref()
            .and_then(|c| c.tty)
            .unwrap_or(false)
    }

    fn target(&self) -> String {
        container_target(&self.uuid)
    }

    /// The container's state, as its inspect shows it.
    fn state(&self) -> ContainerState {
        answers::container_state(&self.uuid, &self.inspect)
    }
}

/// How errors name a container.
fn container_target(uuid: &ContainerUuid) -> String {
    format!("container {uuid}")
}

/// Runs one engine call under `limit`, wrapping its failure with context.
///
/// bollard's own client timeout only covers the wait for response headers,
/// so the deadline here is what bounds reading the body too.
async fn bounded<T>(
    operation: &'static str,
    target: &str,
    limit: Duration,
    call: impl Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, DockerError> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(DockerError::Engine {
            operation,
            target: target.to_owned(),
            source,
        }),
        Err(_elapsed) => Err(DockerError::Timeout {
            operation,
            target: target.to_owned(),
            after: limit,
        }),
    }
}

impl Engine {
    /// Connects to the engine at `socket` and settles the API version.
    ///
    /// bollard speaks API 1.53 by default; the engine may be older (Debian's
    /// 20.10 speaks 1.41), so the version is negotiated down to the engine's.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), nest_agent::docker::DockerError> {
    /// use nest_agent::docker::Engine;
    /// use nest_core::ids::InstanceId;
    ///
    /// let id = InstanceId::parse("6f1c1c3e-2b7a-4d7e-9a52-0d1f3c2b1a00").expect("valid id");
    /// let engine = Engine::connect("/var/run/docker.sock".as_ref(), id).await?;
    /// println!("docker {} (API {})", engine.docker_version(), engine.api_version());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`DockerError::Connect`] (kind `Unavailable`) when the socket is
    /// missing or the engine does not answer; `Invalid` when the path is not
    /// UTF-8.
    pub async fn connect(socket: &Path, instance_id: InstanceId) -> Result<Self, DockerError> {
        let path = socket
            .to_str()
            .ok_or_else(|| DockerError::invalid("docker socket", "path is not UTF-8"))?;
        let connect_error = |source| DockerError::Connect {
            socket: socket.to_owned(),
            source,
        };
        let docker =
            Docker::connect_with_unix(path, DOCKER_CALL_TIMEOUT.as_secs(), API_DEFAULT_VERSION)
                .map_err(connect_error)?;
        let docker =
            match tokio::time::timeout(DOCKER_CALL_TIMEOUT, docker.negotiate_version()).await {
                Ok(negotiated) => negotiated.map_err(connect_error)?,
                Err(_elapsed) => {
                    return Err(connect_error(bollard::errors::Error::RequestTimeoutError));
                }
            };
        let version = match tokio::time::timeout(DOCKER_CALL_TIMEOUT, docker.version()).await {
            Ok(version) => version.map_err(connect_error)?,
            Err(_elapsed) => {
                return Err(connect_error(bollard::errors::Error::RequestTimeoutError));
            }
        };
        let versions = Versions {
            docker: version.version.unwrap_or_default(),
            api: docker.client_version().to_string(),
        };
        tracing::info!(
            { INSTANCE_ID } = %instance_id,
            docker_version = %versions.docker,
            api_version = %versions.api,
            "connected to the docker engine"
        );
        Ok(Self {
            docker,
            instance_id,
            versions: Arc::new(versions),
            networks: Arc::default(),
        })
    }

    /// The engine's version (`20.10.24+dfsg1`), as reported at connect time.
    pub fn docker_version(&self) -> &str {
        &self.versions.docker
    }

    /// The negotiated API version (`1.41`).
    pub fn api_version(&self) -> &str {
        &self.versions.api
    }

    /// The instance this agent acts for.
    pub fn instance_id(&self) -> &InstanceId {
        &self.instance_id
    }

    /// Checks that the engine answers, and reports the versions in play.
    ///
    /// # Errors
    /// `Unavailable` when the engine does not answer, `Timeout` after
    /// [`DOCKER_CALL_TIMEOUT`].
    pub async fn ping(&self) -> Result<Pong, DockerError> {
        bounded("ping", "engine", DOCKER_CALL_TIMEOUT, self.docker.ping()).await?;
        Ok(Pong {
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            docker_version: self.versions.docker.clone(),
            docker_api_version: self.versions.api.clone(),
        })
    }

    /// Finds the container with `uuid` and checks that this agent owns it.
    async fn find(&self, uuid: &ContainerUuid) -> Result<Managed, DockerError> {
        self.find_by_ref(uuid, &container_name(uuid)).await
    }

    /// Inspects `reference` (an engine name or id) and checks that it is the
    /// container with `uuid` and that this agent owns it.
    async fn find_by_ref(
        &self,
        uuid: &ContainerUuid,
        reference: &str,
    ) -> Result<Managed, DockerError> {
        let inspected = bounded(
            "inspect",
            &container_target(uuid),
            DOCKER_CALL_TIMEOUT,
            self.docker.inspect_container(reference, None),
        )
        .await;
        let inspect = match inspected {
            Ok(inspect) => inspect,
            Err(err) if err.kind() == ErrorKind::NotFound => {
                return Err(DockerError::ContainerNotFound { uuid: uuid.clone() });
            }
            Err(err) => return Err(err),
        };
        if !self.owns(uuid, &inspect) {
            return Err(DockerError::ContainerNotFound { uuid: uuid.clone() });
        }
        let id = inspect.id.clone().ok_or_else(|| DockerError::Malformed {
            operation: "inspect",
            target: container_target(uuid),
            missing: "the container id",
        })?;
        Ok(Managed {
            uuid: uuid.clone(),
            id,
            inspect,
        })
    }

    /// Whether the inspected container is `nest-<uuid>`, created by this
    /// agent: name and all three ownership labels must match.
    fn owns(&self, uuid: &ContainerUuid, inspect: &ContainerInspectResponse) -> bool {
        let labels = inspect.config.as_ref().and_then(|c| c.labels.as_ref());
        let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
        let name = inspect.name.as_deref().map(|n| n.trim_start_matches('/'));
        label(LABEL_CONTAINER_UUID) == Some(uuid.as_str())
            && label(LABEL_INSTANCE_ID) == Some(self.instance_id.as_str())
            && label(LABEL_MANAGED_BY) == Some(MANAGED_BY)
            && name == Some(container_name(uuid).as_str())
    }

    /// The current state of a container found earlier, re-read by id so that
    /// a container renamed or replaced in between is not mistaken for it.
    async fn state_of(&self, managed: &Managed) -> Result<ContainerState, DockerError> {
        let fresh = self.find_by_ref(&managed.uuid, &managed.id).await?;
        Ok(fresh.state())
    }
}
