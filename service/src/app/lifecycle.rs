//! Create, list, show, update and delete containers, and the state actions.

use std::collections::BTreeMap;
use std::time::Duration;

use nest_core::ErrorKind;

use super::{App, agent_error, db_error, policy_error};
use crate::agents::{AgentAction, AgentError, Resources};
use crate::app::{
    self as api, AppError, CallContext, ContainerAction, ContainerInfo, ContainerPage,
    ContainerRef, DeleteOptions, ListParams, NewContainer,
};
use crate::auth::policy::{self, Action};
use crate::db::{self, ListQuery, NewAction};
use crate::domain::{Container, ContainerId, ContainerStatus, Instance, InstanceId};

/// Status reason of a container just accepted.
const WAITING_FOR_PLACEMENT: &str = "waiting for placement";
/// The scheduler hint that names an instance (Zun's `host`, `hints.host`).
const HOST_HINT: &str = "host";
/// Grace period of the stop before a `stop=true` delete removes a running
/// container.
const DELETE_STOP_GRACE: Duration = Duration::from_secs(10);

/// Greek letters, as Zun names containers that were given no name.
const NAME_WORDS: [&str; 8] = [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa",
];

/// A name for a container created without one. Names are unique per
/// project (so they can be used in URLs), hence the uuid's first digits.
fn generated_name(id: ContainerId) -> String {
    let bytes = id.as_uuid().into_bytes();
    let word = NAME_WORDS[usize::from(bytes[0]) % NAME_WORDS.len()];
    let simple = id.as_uuid().simple().to_string();
    format!("{word}-{}-container", &simple[..8])
}

impl App {
    async fn info(
        &self,
        container: Container,
        instances: &mut BTreeMap<InstanceId, Option<Instance>>,
    ) -> Result<ContainerInfo, AppError> {
        let instance = match &container.instance_id {
            None => None,
            Some(id) => match instances.get(id) {
                Some(found) => found.clone(),
                None => {
                    let found = match self.store().get_instance(id).await {
                        Ok(i) => Some(i),
                        Err(e) if e.kind() == ErrorKind::NotFound => None,
                        Err(e) => return Err(db_error("reading an instance")(e)),
                    };
                    instances.insert(id.clone(), found.clone());
                    found
                }
            },
        };
        let (addresses, default_network) = match instance {
            Some(i) => {
                let default = i.addresses.keys().next().cloned();
                (i.addresses, default)
            }
            None => (BTreeMap::new(), None),
        };
        let mut networks = Vec::new();
        for attachment in &container.spec.networks {
            if let Some(network) = self
                .store()
                .get_network(attachment.network)
                .await
                .map_err(db_error("reading a network"))?
            {
                networks.push(network);
            }
        }
        Ok(ContainerInfo {
            container,
            addresses,
            default_network,
            networks,
        })
    }

    async fn record(&self, cx: &CallContext, container: ContainerId, action: api::ActionKind) {
        let new = NewAction {
            request_id: cx.request_id.clone(),
            container,
            action: action.as_zun().to_owned(),
            project_id: cx.caller.project_id.clone(),
            user_id: cx.caller.user_id.clone(),
        };
        if let Err(e) = self.store().record_action(&new).await {
            tracing::warn!(container_id = %container, error = %crate::error_chain(&e), "could not record an action");
        }
    }

    async fn finish(&self, cx: &CallContext, container: ContainerId, message: Option<&str>) {
        if let Err(e) = self
            .store()
            .finish_action(container, &cx.request_id, message)
            .await
        {
            tracing::warn!(container_id = %container, error = %crate::error_chain(&e), "could not finish an action");
        }
    }

    /// Records a new container in `Creating` and schedules it; with `run`
    /// it is started once created (`POST /v1/containers?run=true`).
    pub async fn create_container(
        &self,
        cx: &CallContext,
        request: NewContainer,
        run: bool,
    ) -> Result<ContainerInfo, AppError> {
        policy::authorize(&cx.caller, Action::ContainerCreate, None).map_err(policy_error)?;
        if request.spec.hints.contains_key(HOST_HINT) {
            // Choosing the instance is an operator's tool (Zun's policy);
            // a tenant's container goes where the scheduler puts it.
            policy::authorize(
                &cx.caller,
                Action::ContainerCreateRequestedDestination,
                None,
            )
            .map_err(policy_error)?;
        }
        if let Err(e) = nest_images::ImageRef::parse(&request.spec.image) {
            return Err(AppError::InvalidRequest {
                what: "image",
                reason: e.to_string(),
            });
        }
        self.check_attachments(cx, &request.spec).await?;
        let id = ContainerId::generate();
        let name = request.name.unwrap_or_else(|| generated_name(id));
        let now = db::utc_now();
        let container = Container {
            id,
            name: name.clone(),
            project_id: cx.caller.project_id.clone(),
            user_id: cx.caller.user_id.clone(),
            spec: request.spec,
            status: ContainerStatus::Creating,
            status_reason: Some(WAITING_FOR_PLACEMENT.to_owned()),
            desired_running: run,
            instance_id: None,
            docker_id: None,
            created_at: now.clone(),
            updated_at: now,
            health: None,
        };
        match self.store().insert_container(&container).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Conflict => return Err(AppError::NameInUse(name)),
            Err(e) => return Err(db_error("storing a container")(e)),
        }
        self.record(cx, id, api::ActionKind::Create).await;
        tracing::info!(container_id = %id, project_id = %container.project_id, "container accepted");
        self.inner.scheduler.wake();
        self.info(container, &mut BTreeMap::new()).await
    }

    /// One page of the caller's containers (all projects' for an admin with
    /// `all_projects`).
    pub async fn list_containers(
        &self,
        cx: &CallContext,
        params: ListParams,
    ) -> Result<ContainerPage, AppError> {
        let action = if params.all_projects {
            Action::ContainerListAllProjects
        } else {
            Action::ContainerList
        };
        policy::authorize(&cx.caller, action, None).map_err(policy_error)?;
        let f = params.filters;
        let unsupported = [
            ("project_id", f.project_id.is_some()),
            ("memory", f.memory_mib.is_some()),
            ("host", f.host.is_some()),
            ("task_state", f.task_state.is_some()),
            ("auto_remove", f.auto_remove.is_some()),
        ];
        if let Some((what, _)) = unsupported.iter().find(|(_, set)| *set) {
            return Err(AppError::InvalidRequest {
                what: "filters",
                reason: format!("filtering by {what} is not supported"),
            });
        }
        let mut query =
            ListQuery::new((!params.all_projects).then(|| cx.caller.project_id.clone()));
        query.limit = params.limit;
        query.marker = params.marker;
        query.sort_key = params.sort_key;
        query.sort_dir = params.sort_dir;
        query.filters = db::ContainerFilters {
            name: f.name,
            image: f.image,
            status: f.status,
            user_id: f.user_id,
        };
        let page = match self.store().list_containers(&query).await {
            Ok(page) => page,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(AppError::MarkerNotFound(
                    params.marker.unwrap_or_else(ContainerId::generate),
                ));
            }
            Err(e) => return Err(db_error("listing containers")(e)),
        };
        let mut instances = BTreeMap::new();
        let mut containers = Vec::with_capacity(page.items.len());
        for container in page.items {
            containers.push(self.info(container, &mut instances).await?);
        }
        Ok(ContainerPage {
            containers,
            has_more: page.has_more,
        })
    }

    /// One container, by uuid or by name (a name held by several
    /// containers is [`AppError::AmbiguousName`]).
    pub async fn show_container(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
        all_projects: bool,
    ) -> Result<ContainerInfo, AppError> {
        let container = self
            .resolve_in(cx, reference, Action::ContainerGet, all_projects)
            .await?;
        self.info(container, &mut BTreeMap::new()).await
    }

    /// Renames or resizes a container.
    pub async fn update_container(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
        patch: api::ContainerPatch,
    ) -> Result<ContainerInfo, AppError> {
        let container = self.resolve(cx, reference, Action::ContainerUpdate).await?;
        if !container.status.can_update() {
            return Err(AppError::InvalidState {
                id: container.id,
                status: container.status,
                action: "update",
            });
        }
        self.resize_on_instance(cx, &container, patch.cpu, patch.memory_mib)
            .await?;
        self.record(cx, container.id, api::ActionKind::Update).await;
        let name = patch.name.clone();
        let updated = self
            .store()
            .update_container(container.id, &patch)
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::Conflict => AppError::NameInUse(name.unwrap_or_default()),
                _ => db_error("updating a container")(e),
            })?;
        self.finish(cx, container.id, None).await;
        self.info(updated, &mut BTreeMap::new()).await
    }

    /// Applies new CPU and memory reservations to a placed container: they
    /// must fit its instance, and a created container gets the new limits
    /// from its engine before the record changes.
    async fn resize_on_instance(
        &self,
        cx: &CallContext,
        container: &Container,
        cpu: Option<f64>,
        memory_mib: Option<u64>,
    ) -> Result<(), AppError> {
        let new_cpu = cpu.unwrap_or(container.spec.cpu);
        let new_memory = memory_mib.unwrap_or(container.spec.memory_mib);
        let unchanged = (new_cpu - container.spec.cpu).abs() < f64::EPSILON
            && new_memory == container.spec.memory_mib;
        let Some(instance_id) = &container.instance_id else {
            return Ok(());
        };
        if unchanged {
            return Ok(());
        }
        let instance = self
            .store()
            .get_instance(instance_id)
            .await
            .map_err(db_error("reading an instance"))?;
        let used = self
            .store()
            .instance_usage(instance_id)
            .await
            .map_err(db_error("reading instance usage"))?;
        let cpu_after = used.cpu_used - container.spec.cpu + new_cpu;
        let memory_after = used.memory_used_mib - container.spec.memory_mib + new_memory;
        if cpu_after > instance.vcpus + 1e-9 || memory_after > instance.memory_mib {
            return Err(AppError::InvalidRequest {
                what: "cpu/memory",
                reason: format!(
                    "the container's instance offers {} vCPU and {} MiB; with this change its containers would need {cpu_after} vCPU and {memory_after} MiB",
                    instance.vcpus, instance.memory_mib
                ),
            });
        }
        if container.docker_id.is_some() {
            let (agents, instance) = self.on_agent(container, "update")?;
            let resources = Resources {
                cpu: new_cpu,
                memory_mib: new_memory,
            };
            agents
                .update_resources(&cx.request_id, &instance, container.id, resources)
                .await
                .map_err(|e| agent_error(container, &e))?;
        }
        Ok(())
    }

    /// Deletes a container (asynchronously: it goes to `Deleting`).
    pub async fn delete_container(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
        options: DeleteOptions,
    ) -> Result<(), AppError> {
        let action = if options.force {
            Action::ContainerDeleteForce
        } else {
            Action::ContainerDelete
        };
        let container = self
            .resolve_in(cx, reference, action, options.all_projects)
            .await?;
        if !container.status.can_delete(options.force, options.stop) {
            return Err(AppError::InvalidState {
                id: container.id,
                status: container.status,
                action: "delete",
            });
        }
        let won = self
            .store()
            .update_status(
                container.id,
                container.status,
                ContainerStatus::Deleting,
                None,
            )
            .await
            .map_err(db_error("marking a container for deletion"))?;
        if !won {
            return Err(AppError::InvalidState {
                id: container.id,
                status: container.status,
                action: "delete",
            });
        }
        self.record(cx, container.id, api::ActionKind::Delete).await;
        let app = self.clone();
        let cx = cx.clone();
        // Zun answers delete at once and finishes it in the background.
        self.inner.scheduler.tasks().spawn(async move {
            app.finish_delete(&cx, &container, options).await;
        });
        Ok(())
    }

    async fn finish_delete(&self, cx: &CallContext, container: &Container, options: DeleteOptions) {
        let removed = match (&container.instance_id, &container.docker_id) {
            (Some(instance), Some(_)) => self.remove_on(cx, instance, container, options).await,
            _ => Ok(()),
        };
        let message = match removed {
            Ok(()) => {
                if let Err(e) = self.store().delete_container(container.id).await {
                    tracing::warn!(container_id = %container.id, error = %crate::error_chain(&e), "could not delete a container record");
                }
                tracing::info!(container_id = %container.id, "container deleted");
                None
            }
            // The reconciler removes it when the agent is back.
            Err(e) => {
                tracing::info!(container_id = %container.id, error = %e, "delete deferred until the agent is back");
                Some(e.to_string())
            }
        };
        self.finish(cx, container.id, message.as_deref()).await;
    }

    async fn remove_on(
        &self,
        cx: &CallContext,
        instance: &InstanceId,
        container: &Container,
        options: DeleteOptions,
    ) -> Result<(), AgentError> {
        let agents = self.inner.agents.as_ref();
        if options.stop && container.status == ContainerStatus::Running {
            let stop = AgentAction::Stop {
                timeout: Some(DELETE_STOP_GRACE),
            };
            if let Err(e) = agents
                .act(&cx.request_id, instance, container.id, stop)
                .await
                && e.kind() != ErrorKind::NotFound
            {
                return Err(e);
            }
        }
        let remove = AgentAction::Remove {
            force: options.force || options.stop,
        };
        match agents
            .act(&cx.request_id, instance, container.id, remove)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Starts, stops, reboots, pauses, unpauses or kills a container; the
    /// status machine decides whether it may (`Conflict` otherwise).
    pub async fn act_on_container(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
        action: ContainerAction,
    ) -> Result<(), AppError> {
        let container = self.resolve(cx, reference, Action::ContainerAction).await?;
        let status = container.status;
        let (name, allowed, agent_action, record) = match &action {
            ContainerAction::Start => (
                "start",
                status.can_start(),
                AgentAction::Start,
                api::ActionKind::Start,
            ),
            ContainerAction::Stop { timeout } => (
                "stop",
                status.can_stop(),
                AgentAction::Stop { timeout: *timeout },
                api::ActionKind::Stop,
            ),
            ContainerAction::Reboot { timeout } => (
                "reboot",
                status.can_reboot(),
                AgentAction::Restart { timeout: *timeout },
                api::ActionKind::Reboot,
            ),
            ContainerAction::Pause => (
                "pause",
                status.can_pause(),
                AgentAction::Pause,
                api::ActionKind::Pause,
            ),
            ContainerAction::Unpause => (
                "unpause",
                status.can_unpause(),
                AgentAction::Unpause,
                api::ActionKind::Unpause,
            ),
            ContainerAction::Kill { signal } => (
                "kill",
                status.can_kill(),
                AgentAction::Kill {
                    signal: signal.as_ref().map(|s| s.as_str().to_owned()),
                },
                api::ActionKind::Kill,
            ),
        };
        if !allowed {
            return Err(AppError::InvalidState {
                id: container.id,
                status,
                action: name,
            });
        }
        self.record(cx, container.id, record).await;
        let result = match self.on_agent(&container, name) {
            Ok((agents, instance)) => agents
                .act(&cx.request_id, &instance, container.id, agent_action)
                .await
                .map_err(|e| agent_error(&container, &e)),
            Err(e) => Err(e),
        };
        match result {
            Ok(Some(state)) => {
                let new = state.status;
                let desired = matches!(new, ContainerStatus::Running | ContainerStatus::Paused);
                self.store()
                    .set_status_any(container.id, new, state.status_reason.as_deref())
                    .await
                    .map_err(db_error("recording a status"))?;
                self.store()
                    .set_desired_running(container.id, desired)
                    .await
                    .map_err(db_error("recording a status"))?;
                self.finish(cx, container.id, None).await;
                Ok(())
            }
            Ok(None) => {
                self.finish(cx, container.id, None).await;
                Ok(())
            }
            Err(e) => {
                self.finish(cx, container.id, Some(&e.to_string())).await;
                Err(e)
            }
        }
    }
}

/// How often a start that waits for a create re-reads the container, in
/// case its change came from another replica.
const START_RECHECK: Duration = Duration::from_secs(2);

impl App {
    /// Starts a container, also one still being created: Docker's
    /// create-then-start (`docker run`) sends start before the instance
    /// is up, and expects start to return once the container runs. A
    /// container in `Creating` is marked to start when created, and the
    /// call waits for it.
    ///
    /// # Errors
    /// As [`App::act_on_container`]; [`AppError::ContainerNotFound`] when
    /// it is deleted meanwhile, [`AppError::InvalidState`] when its create
    /// fails.
    pub async fn start_container(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
    ) -> Result<(), AppError> {
        let container = self.resolve(cx, reference, Action::ContainerAction).await?;
        if container.status != ContainerStatus::Creating {
            return self
                .act_on_container(cx, &ContainerRef::Id(container.id), ContainerAction::Start)
                .await;
        }
        let mut changes = self.project_changes(cx);
        self.store()
            .set_desired_running(container.id, true)
            .await
            .map_err(db_error("recording a start"))?;
        loop {
            let now = match self.store().get_container(container.id).await {
                Ok(c) => c,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Err(AppError::ContainerNotFound(reference.clone()));
                }
                Err(e) => return Err(db_error("reading a container")(e)),
            };
            match now.status {
                ContainerStatus::Creating => {}
                ContainerStatus::Running | ContainerStatus::Restarting => return Ok(()),
                // Created before the scheduler saw the start: start it now.
                ContainerStatus::Created | ContainerStatus::Stopped => {
                    return self
                        .act_on_container(cx, &ContainerRef::Id(now.id), ContainerAction::Start)
                        .await;
                }
                status => {
                    return Err(AppError::InvalidState {
                        id: now.id,
                        status,
                        action: "start",
                    });
                }
            }
            let deadline = tokio::time::sleep(START_RECHECK);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    () = &mut deadline => break,
                    event = changes.next() => match event {
                        crate::app::ChangeEvent::Change(c) if c.container != container.id => {}
                        crate::app::ChangeEvent::Closed => {
                            (&mut deadline).await;
                            break;
                        }
                        _ => break,
                    },
                }
            }
        }
    }
}
