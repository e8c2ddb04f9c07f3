//! The container lifecycle (create, start, stop, ... remove) and the
//! one-shot queries (inspect, list, top, stats).
//!
//! Every operation first finds its container through [`Engine::find`], so it
//! can only ever act on a container this agent created, then works on the
//! engine id it found rather than the name.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, RestartContainerOptionsBuilder, StatsOptionsBuilder,
    StopContainerOptionsBuilder, TopOptionsBuilder,
};
use futures_util::StreamExt;
use nest_core::ErrorKind;
use tracing::instrument;

use super::error::{DockerError, engine_status};
use super::networks::{self, network_name};
use super::{
    DEFAULT_STOP_GRACE, DOCKER_CALL_TIMEOUT, Engine, LABEL_CONTAINER_UUID, LABEL_INSTANCE_ID,
    LABEL_MANAGED_BY, MANAGED_BY, answers, bounded, container_name, container_target, spec,
};
use crate::log_fields::{CONTAINER_ID, DOCKER_ID};
use crate::model::{
    ContainerSpec, ContainerState, ContainerUuid, CreateContainer, StatsResult, TopResult,
};

/// `ps` arguments for `top` when the request names none (the engine's default).
const DEFAULT_PS_ARGS: &str = "-ef";
/// Signal `kill` sends when the request names none.
const DEFAULT_KILL_SIGNAL: &str = "SIGKILL";
/// Longest signal name accepted (`SIGRTMIN+15` is 11).
const MAX_SIGNAL_LEN: usize = 16;
/// Longest grace a stop or restart may ask for (a day); the call blocks for
/// that long, so more is surely a mistake.
const MAX_STOP_TIMEOUT_SECS: u64 = 24 * 3600;

impl Engine {
    /// Creates a container from `req.spec`, pulling its image first when it
    /// is missing and `req.pull_missing` is set, and starts it when
    /// `req.start` is set.
    ///
    /// The container joins the spec's networks (the first as its network
    /// mode), each made first when missing; without networks it runs on
    /// the engine's default bridge.
    ///
    /// The spec is checked before the engine is called, so a refused spec
    /// creates nothing. When the start fails the container stays created
    /// (as with `docker run`) and the error is the start's.
    ///
    /// # Errors
    /// `Invalid` for a bad spec; `NotFound` ([`DockerError::ImageMissing`])
    /// when the image is missing and no pull was asked for; `Conflict` when
    /// `nest-<uuid>` already exists, or a network's engine name is taken by
    /// a network that is not Nest's; engine failures as classified.
    #[instrument(skip_all, fields({ CONTAINER_ID } = %req.spec.uuid))]
    pub async fn create(&self, req: CreateContainer) -> Result<ContainerState, DockerError> {
        let spec = req.spec;
        let body = spec::create_body(&spec, &self.instance_id)?;
        let target = container_target(&spec.uuid);
        let docker_id = match self.create_on_networks(&spec, &body).await {
            Err(DockerError::ImageMissing { .. }) if req.pull_missing => {
                tracing::info!(image = %spec.image, "image missing; pulling it");
                self.pull_image(&spec.image, None).await?;
                self.create_on_networks(&spec, &body).await?
            }
            other => other?,
        };
        tracing::info!({ DOCKER_ID } = %docker_id, "container created");
        if req.start {
            bounded(
                "start",
                &target,
                DOCKER_CALL_TIMEOUT,
                self.docker.start_container(&docker_id, None),
            )
            .await?;
        }
        let managed = self.find_by_ref(&spec.uuid, &docker_id).await?;
        Ok(managed.state())
    }

    /// Creates the engine container of `spec` from `body` and joins it to
    /// the spec's networks, making those that are missing; its engine id.
    ///
    /// Every network is looked up first, so that one that is not Nest's
    /// refuses the whole create before anything changes. A failure after
    /// that undoes what was done: the container is removed, and so is any
    /// network made for it.
    async fn create_on_networks(
        &self,
        spec: &ContainerSpec,
        body: &ContainerCreateBody,
    ) -> Result<String, DockerError> {
        let Some((primary, others)) = spec.networks.split_first() else {
            return self.create_container(spec, body).await;
        };
        let _serialized = self.networks.lock().await;
        let mut exists = Vec::with_capacity(spec.networks.len());
        for attachment in &spec.networks {
            exists.push(self.look_up_network(&attachment.network).await?);
        }
        let names: Vec<String> = spec
            .networks
            .iter()
            .map(|n| network_name(&n.network))
            .collect();
        // Each network is made just before its first use, so that no
        // network of Nest's stays empty longer than a call.
        if !exists[0] {
            self.make_network(&primary.network).await?;
        }
        let docker_id = match self.create_container(spec, body).await {
            Ok(id) => id,
            Err(err) => {
                self.release_networks_locked(&names[..1]).await;
                return Err(err);
            }
        };
        for (attachment, exists) in others.iter().zip(&exists[1..]) {
            let joined = async {
                if !exists {
                    self.make_network(&attachment.network).await?;
                }
                self.connect_network(
                    &docker_id,
                    &attachment.network,
                    spec::endpoint(spec, attachment),
                )
                .await
            }
            .await;
            if let Err(err) = joined {
                self.discard(spec, &docker_id).await;
                self.release_networks_locked(&names).await;
                return Err(err);
            }
        }
        Ok(docker_id)
    }

    /// The engine's create of `nest-<uuid>`; its engine id. A 404 is the
    /// image's ([`DockerError::ImageMissing`]) unless the image is there,
    /// when it can only be a network that went away.
    async fn create_container(
        &self,
        spec: &ContainerSpec,
        body: &ContainerCreateBody,
    ) -> Result<String, DockerError> {
        let name = container_name(&spec.uuid);
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = bounded(
            "create",
            &container_target(&spec.uuid),
            DOCKER_CALL_TIMEOUT,
            self.docker.create_container(Some(options), body.clone()),
        )
        .await;
        match created {
            Ok(created) => Ok(created.id),
            Err(DockerError::Engine { source, .. }) if engine_status(&source) == Some(404) => {
                let image_there = !spec.networks.is_empty()
                    && bounded(
                        "inspect",
                        &format!("image {}", spec.image),
                        DOCKER_CALL_TIMEOUT,
                        self.docker.inspect_image(&spec.image),
                    )
                    .await
                    .is_ok();
                if image_there {
                    Err(DockerError::Engine {
                        operation: "create",
                        target: container_target(&spec.uuid),
                        source,
                    })
                } else {
                    Err(DockerError::ImageMissing {
                        image: spec.image.clone(),
                        source,
                    })
                }
            }
            Err(err) => Err(err),
        }
    }

    /// Removes a container this call just created and could not finish;
    /// a failure is only logged, since the error that led here is the one
    /// to report.
    async fn discard(&self, spec: &ContainerSpec, docker_id: &str) {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        if let Err(err) = bounded(
            "remove",
            &container_target(&spec.uuid),
            DOCKER_CALL_TIMEOUT,
            self.docker.remove_container(docker_id, Some(options)),
        )
        .await
        {
            tracing::warn!(
                error = %nest_core::process::error_chain(&err),
                "could not remove a half-created container"
            );
        }
    }

    /// Starts a container; starting a running one is not an error.
    ///
    /// # Errors
    /// `NotFound` for a container this agent does not own; engine failures
    /// as classified (a port already taken is `Internal` in 20.10).
    #[instrument(skip_all, fields({ CONTAINER_ID } = %uuid))]
    pub async fn start(&self, uuid: &ContainerUuid) -> Result<ContainerState, DockerError> {
        let managed = self.find(uuid).await?;
        bounded(
            "start",
            &managed.target(),
            DOCKER_CALL_TIMEOUT,
            self.docker.start_container(&managed.id, None),
        )
        .await?;
        self.state_of(&managed).await
    }

    /// Stops a container, waiting `timeout` (whole seconds, or the engine's
    /// default) before SIGKILL; stopping a stopped one is not an error.
    ///
    /// # Errors
    /// `NotFound` for a container this agent does not own; `Invalid` for a
    /// timeout over a day; engine failures as classified.
    #[instrument(skip_all, fields({ CONTAINER_ID } = %uuid))]
    pub async fn stop(
        &self,
        uuid: &ContainerUuid,
        timeout: Option<Duration>,
    ) -> Result<ContainerState, DockerError> {
        let managed = self.find(uuid).await?;
        let (t, limit) = stop_limits(timeout)?;
        let mut options = StopContainerOptionsBuilder::default();
        if let Some(t) = t {
            options = options.t(t);
        }
        // bollard's client timeout covers the wait for the answer, which
        // only comes once the container is down.
        let docker = self.docker.clone().with_timeout(limit);
        bounded(
            "stop",
            &managed.target(),
            limit,
            docker.stop_container(&managed.id, Some(options.build())),
        )
        .await?;
        self.state_of(&managed).await
    }

    /// Restarts a container (stop with `timeout`, then start).
    ///
    /// # Errors
    /// As [`Engine::stop`].
    #[instrument(skip_all, fields({ CONTAINER_ID } = %uuid))]
    pub async fn restart(
        &self,
        uuid: &ContainerUuid,
        timeout: Option<Duration>,
    ) -> Result<ContainerState, DockerError> {
        let managed = self.find(uuid).await?;
        let (t, limit) = stop_limits(timeout)?;
        let mut options = RestartContainerOptionsBuilder::default();
        if let Some(t) = t {
            options = options.t(t);
        }
        let docker = self.docker.clone().with_timeout(limit);
        bounded(
            "restart",
            &managed.target(),
            limit,
            docker.restart_container(&managed.id, Some(options.build())),
        )
        .await?;
        self.state_of(&managed).await
    }

    /// Sends `signal` (a name such as `SIGTERM`, or a number; `None` means
    /// SIGKILL) to a container's main process.
    ///
    /// # Errors
    /// `NotFound` for a container this agent does not own; `Invalid` for a
    /// malformed or unknown signal; `Conflict` when it is not running.
    #[instrument(skip_all, fields({ CONTAINER_ID } = %uuid, signal = signal.unwrap_or(DEFAULT_KILL_SIGNAL)))]
    pub async fn kill(
        &self,
        uuid: &ContainerUuid,
        signal: Option<&str>,
    ) -> Result<ContainerState, DockerError> {
        let signal = signal.unwrap_or(DEFAULT_KILL_SIGNAL);
        if signal.len() > MAX_SIGNAL_LEN
            || !signal
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-')
        {
            return Err(DockerError::invalid(
                "signal",
                "must be a signal name or number",
            ));
        }
        let managed = self.find(uuid).await?;
        let options = KillContainerOptionsBuilder::default()
            .signal(signal)
            .build();
        bounded(
            "kill",
            &managed.target(),
            DOCKER_CALL_TIMEOUT,
            self.docker.kill_container(&managed.id, Some(options)),
        )
        .await?;
        self.state_of(&managed).await
    }

    /// Freezes every process of a container.
    ///
    /// # Errors
    /// `NotFound` for a container this agent does not own; `Conflict` when
    /// it is not running or already paused.
    #[instrument(skip_all, fields({ CONTAINER_ID } = %uuid))]
    pub async fn pause(&self, uuid: &ContainerUuid) -> Result<ContainerState, DockerError> {
        let managed = self.find(uuid).await?;
        bounded(
            "pause",
            &managed.target(),
            DOCKER_CALL_TIMEOUT,
            self.docker.pause_container(&managed.id),
        )
        .await?;
        self.state_of(&managed).await
    }

    /// Changes a container's CPU and memory limits (0 leaves one as it
    /// is). Swap is set equal to memory, so the new limit is a hard one.
    ///
    /// # Errors
    /// `Invalid` for limits out of range (nothing changes); `NotFound` for
    /// a container this agent does not own.
    #[instrument(skip_all, fields({ CONTAINER_ID } = %uuid))]
    pub async fn update_resources(
        &self,
        uuid: &ContainerUuid,
        cpu_millis: u64,
        memory_bytes: u64,
    ) -> Result<ContainerState, DockerError> {
        let nano_cpus = super::spec::nano_cpus(cpu_millis)?;
        let memory = super::spec::memory(memory_bytes)?;
        let managed = self.find(uuid).await?;
        let body = bollard::models::ContainerUpdateBody {
            nano_cpus,
            memory,
            memory_swap: memory,
            ..Default::default()
        };
        bounded(
            "update",
            &managed.target(),
            DOCKER_CALL_TIMEOUT,
            self.docker.update_container(&managed.id, body),
        )
        .await?;
        self.state_of(&managed).await
    }

    /// Thaws a paused container.
    ///
    /// # Errors
    /// `NotFound` for a container this agent does not own; `Conflict` when
    /// it is not paused.
    #[instrument(skip_all, fields({ CONTAINER_ID } = %uuid))]
    pub async fn unpause(&self, uuid: &ContainerUuid) -> Result<ContainerState, DockerError> {
        let managed = self.find(uuid).await?;
        bounded(
            "unpause",
            &managed.target(),
            DOCKER_CALL_TIMEOUT,
            self.docker.unpause_container(&managed.id),
        )
        .await?;
        self.state_of(&managed).await
    }

    /// The current state of a container.
    ///
    /// # Errors
    /// `NotFound` for a container this agent does not own.
    #[instrument(skip_all, fields({ CONTAINER_ID } = %uuid))]
    pub async fn inspect(&self, uuid: &ContainerUuid) -> Result<ContainerState, DockerError> {
        let managed = self.find(uuid).await?;
        Ok(managed.state())
    }

    /// Removes a container and its anonymous volumes, then each of its
    /// networks that no container is on any more. Idempotent: a container
    /// that is already gone (or was never this agent's) is fine.
    ///
    /// # Errors
    /// `Conflict` when it runs and `force` is not set; engine failures as
    /// classified.
    #[instrument(skip_all, fields({ CONTAINER_ID } = %uuid, force))]
    pub async fn remove(&self, uuid: &ContainerUuid, force: bool) -> Result<(), DockerError> {
        let managed = match self.find(uuid).await {
            Ok(managed) => managed,
            Err(DockerError::ContainerNotFound { .. }) => return Ok(()),
            Err(err) => return Err(err),
        };
        let options = RemoveContainerOptionsBuilder::default()
            .force(force)
            .v(true)
            .build();
        match bounded(
            "remove",
            &managed.target(),
            DOCKER_CALL_TIMEOUT,
            self.docker.remove_container(&managed.id, Some(options)),
        )
        .await
        {
            Err(err) if err.kind() != ErrorKind::NotFound => return Err(err),
            _ => {}
        }
        self.release_networks(&networks::networks_of(&managed.inspect))
            .await;
        Ok(())
    }

    /// Every container of this agent (this instance id), running or not.
    ///
    /// # Errors
    /// Engine failures as classified. A container removed while the list is
    /// read is left out, not an error.
    #[instrument(skip_all)]
    pub async fn list(&self) -> Result<Vec<ContainerState>, DockerError> {
        let filters = HashMap::from([(
            "label",
            vec![
                format!("{LABEL_INSTANCE_ID}={}", self.instance_id),
                format!("{LABEL_MANAGED_BY}={MANAGED_BY}"),
            ],
        )]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let summaries = bounded(
            "list",
            "engine",
            DOCKER_CALL_TIMEOUT,
            self.docker.list_containers(Some(options)),
        )
        .await?;
        let mut states = Vec::with_capacity(summaries.len());
        for summary in summaries {
            let (Some(id), Some(uuid)) = (
                summary.id.as_deref(),
                summary
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_CONTAINER_UUID)),
            ) else {
                continue;
            };
            // A uuid this agent would refuse is one it cannot have created.
            let Ok(uuid) = ContainerUuid::parse(uuid) else {
                continue;
            };
            // The summary is only a hint; the full inspect re-checks the name
            // and labels, and gives the same state the other calls report.
            match self.find_by_ref(&uuid, id).await {
                Ok(managed) => states.push(managed.state()),
                Err(DockerError::ContainerNotFound { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        states.sort_by(|a, b| a.uuid.cmp(&b.uuid));
        Ok(states)
    }

    /// The processes of a running container, as the host's `ps` shows them
    /// with `ps_args` (`None` means `-ef`).
    ///
    /// # Errors
    /// `NotFound` for a container this agent does not own; `Conflict` when
    /// it is not running.
    #[instrument(skip_all, fields({ CONTAINER_ID } = %uuid))]
    pub async fn top(
        &self,
        uuid: &ContainerUuid,
        ps_args: Option<&str>,
    ) -> Result<TopResult, DockerError> {
        let managed = self.find(uuid).await?;
        let ps_args = ps_args.unwrap_or(DEFAULT_PS_ARGS);
        let options = TopOptionsBuilder::default().ps_args(ps_args).build();
        let top = bounded(
            "top",
            &managed.target(),
            DOCKER_CALL_TIMEOUT,
            self.docker.top_processes(&managed.id, Some(options)),
        )
        .await?;
        Ok(answers::top_result(top))
    }

    /// One resource sample of a container. The engine takes two readings
    /// about a second apart, so the CPU percentage covers that second.
    ///
    /// # Errors
    /// `NotFound` for a container this agent does not own; engine failures
    /// as classified.
    #[instrument(skip_all, fields({ CONTAINER_ID } = %uuid))]
    pub async fn stats(&self, uuid: &ContainerUuid) -> Result<StatsResult, DockerError> {
        let managed = self.find(uuid).await?;
        // Not one-shot: a one-shot sample has no previous reading to compute
        // the CPU percentage from.
        let options = StatsOptionsBuilder::default()
            .stream(false)
            .one_shot(false)
            .build();
        let mut samples = self.docker.stats(&managed.id, Some(options));
        let sample = bounded("stats", &managed.target(), DOCKER_CALL_TIMEOUT, async {
            samples.next().await.transpose()
        })
        .await?
        .ok_or_else(|| DockerError::Malformed {
            operation: "stats",
            target: managed.target(),
            missing: "a sample",
        })?;
        Ok(answers::stats_result(&sample))
    }
}

/// The engine's `t` for a stop or restart, and how long the call may take:
/// the grace before SIGKILL plus an ordinary call's limit.
fn stop_limits(timeout: Option<Duration>) -> Result<(Option<i32>, Duration), DockerError> {
    let Some(seconds) = timeout.map(|t| t.as_secs()) else {
        return Ok((None, DOCKER_CALL_TIMEOUT.saturating_add(DEFAULT_STOP_GRACE)));
    };
    if seconds > MAX_STOP_TIMEOUT_SECS {
        return Err(DockerError::invalid(
            "timeout_seconds",
            format!("{seconds} is more than {MAX_STOP_TIMEOUT_SECS}"),
        ));
    }
    // Bounded just above, so the conversion cannot saturate.
    let t = i32::try_from(seconds).unwrap_or(i32::MAX);
    let grace = Duration::from_secs(seconds);
    Ok((Some(t), DOCKER_CALL_TIMEOUT.saturating_add(grace)))
}
