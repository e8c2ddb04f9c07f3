//! The scheduler: binds each accepted container to an instance of its own
//! project, boots instances when none has room, creates containers on
//! their instance once its agent is connected, and retires instances that
//! stayed empty.
//!
//! One task runs the scheduler, so placements are decided one at a time and
//! capacity is never booked twice; host ports are additionally booked under
//! a unique constraint in the database. Every pass re-reads the database,
//! so nothing depends on in-memory state surviving a crash: after a
//! restart the first pass picks up where the last process stopped.
//!
//! Layout: `placement.rs` (the pure decision), this file (the passes).

pub mod placement;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nest_core::ErrorKind;
use nest_pki::TokenStore;
use nest_relay::client::RelayClient;
use nest_relay::proto::{self, command, command_output};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::convert;
use crate::db::{DbError, Store};
use crate::domain::{
    Container, ContainerId, ContainerStatus, Instance, InstanceId, InstanceStatus, ProjectId,
};
use crate::driver::{BootRequest, InstanceDriver, TenantAuthority};
use crate::images::ProjectImages;
use placement::{Candidate, Demand, Placement};

/// How often the scheduler looks at the database even when nobody woke it.
const PASS_INTERVAL: Duration = Duration::from_secs(2);
/// How long creating a container may take on its agent (an image pull
/// included).
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(600);
/// Status reason of a container waiting for an instance.
pub const WAITING_FOR_INSTANCE: &str = "waiting for an instance to boot";

/// What the scheduler needs to know to boot instances and place containers.
#[derive(Clone, Debug)]
pub struct SchedulerSettings {
    /// Concurrent boots per project.
    pub max_boots_per_project: usize,
    /// Longest wait for a booted instance's agent.
    pub boot_timeout: Duration,
    /// An empty instance is deleted after this long.
    pub idle_timeout: Duration,
    /// Empty instances kept per project anyway.
    pub warm_pool: usize,
    /// vCPUs of a newly booted instance.
    pub instance_vcpus: f64,
    /// Memory of a newly booted instance, MiB.
    pub instance_memory_mib: u64,
    /// Flavor, image and network of booted instances (driver-specific).
    pub flavor: Option<String>,
    /// Image of booted instances.
    pub image: Option<String>,
    /// Network of booted instances.
    pub network: Option<String>,
    /// Address agents dial, written into user-data.
    pub relay_advertise: SocketAddr,
    /// Nest's CA certificate, written into user-data.
    pub ca_pem: String,
    /// Where new instances get the agent binary.
    pub agent_source: nest_cloud_init::AgentSource,
}

/// The scheduler's shared parts.
pub struct Scheduler {
    store: Store,
    driver: Arc<dyn InstanceDriver>,
    relay: RelayClient,
    images: Arc<ProjectImages>,
    tokens: Arc<dyn TokenStore>,
    settings: SchedulerSettings,
    wake: Notify,
    creating: Mutex<HashSet<ContainerId>>,
    tasks: TaskTracker,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing awaits or panics under this lock.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why one step of a pass failed; logged, and retried on the next pass.
#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error("database")]
    Db(#[from] DbError),
    #[error("rendering user-data")]
    UserData(#[from] nest_cloud_init::RenderError),
    #[error("issuing an enrollment token")]
    Token(#[from] nest_pki::TokenError),
}

impl Scheduler {
    /// A scheduler whose background work is tracked by `tasks`.
    pub fn new(
        store: Store,
        driver: Arc<dyn InstanceDriver>,
        relay: RelayClient,
        images: Arc<ProjectImages>,
        tokens: Arc<dyn TokenStore>,
        settings: SchedulerSettings,
        tasks: TaskTracker,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            driver,
            relay,
            images,
            tokens,
            settings,
            wake: Notify::new(),
            creating: Mutex::new(HashSet::new()),
            tasks,
        })
    }

    /// Asks for a pass soon (a container was accepted, an agent came).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The tracker of the scheduler's (and the service's) background work.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// The driver instances are booted with.
    pub fn driver(&self) -> &Arc<dyn InstanceDriver> {
        &self.driver
    }

    /// Runs passes until `cancel`.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        if let Err(e) = self.recover().await {
            tracing::error!(error = %crate::error_chain(&e), "scheduler recovery failed");
        }
        let mut tick = tokio::time::interval(PASS_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = self.wake.notified() => {}
                _ = tick.tick() => {}
            }
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %crate::error_chain(&e), "scheduler pass failed; retrying");
            }
        }
    }

    /// After a restart: boots that were in flight cannot finish (their
    /// enrollment tokens lived in the old process), so those instances are
    /// deleted and their containers placed again.
    async fn recover(&self) -> Result<(), PassError> {
        for instance in self.store.list_instances(None).await? {
            if instance.status != InstanceStatus::Booting {
                continue;
            }
            tracing::info!(instance_id = %instance.id, "restarting a boot interrupted by a restart");
            self.abandon_instance(&instance, None).await?;
        }
        Ok(())
    }

    async fn pass(self: &Arc<Self>) -> Result<(), PassError> {
        self.place_pending().await?;
        self.create_on_ready().await?;
        self.expire_boots().await?;
        self.retire_idle().await?;
        Ok(())
    }

    /// Binds every unplaced container, booting instances as needed.
    async fn place_pending(&self) -> Result<(), PassError> {
        let pending: Vec<Container> = self
            .store
            .containers_in_status(ContainerStatus::Creating)
            .await?
            .into_iter()
            .filter(|c| c.instance_id.is_none())
            .collect();
        for container in pending {
            self.place_one(&container).await?;
        }
        Ok(())
    }

    async fn candidates(&self, project: &ProjectId) -> Result<Vec<Candidate>, PassError> {
        let mut candidates = Vec::new();
        for usage in self.store.placement_candidates(project).await? {
            let ports_used = self
                .store
                .booked_ports(&usage.instance.id)
                .await?
                .into_iter()
                .map(|b| (b.protocol, b.host_port))
                .collect();
            candidates.push(Candidate {
                id: usage.instance.id.clone(),
                status: usage.instance.status,
                vcpus: usage.instance.vcpus,
                memory_mib: usage.instance.memory_mib,
                cpu_used: usage.used.cpu_used,
                memory_used_mib: usage.used.memory_used_mib,
                ports_used,
            });
        }
        Ok(candidates)
    }

    async fn place_one(&self, container: &Container) -> Result<(), PassError> {
        let demand = Demand {
            cpu: container.spec.cpu,
            memory_mib: container.spec.memory_mib,
            ports: container
                .spec
                .ports
                .iter()
                .map(|p| (p.protocol, p.host_port))
                .collect(),
        };
        let candidates = self.candidates(&container.project_id).await?;
        let decision = placement::place(
            &demand,
            &candidates,
            self.settings.instance_vcpus,
            self.settings.instance_memory_mib,
        );
        match decision {
            Placement::Existing(instance) => {
                match self
                    .store
                    .bind_container(container.id, &instance, &container.spec.ports)
                    .await
                {
                    Ok(()) => {
                        self.store.set_empty_since(&instance, None).await?;
                        tracing::info!(container_id = %container.id, instance_id = %instance, "container placed");
                        self.set_reason(container, None).await?;
                    }
                    // Lost a race for a port: the next pass sees the booking.
                    Err(e) if e.kind() == ErrorKind::Conflict => {
                        tracing::debug!(container_id = %container.id, error = %e, "placement conflict; retrying");
                        self.wake();
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Placement::Boot => {
                let booting = candidates
                    .iter()
                    .filter(|c| c.status == InstanceStatus::Booting)
                    .count();
                if booting >= self.settings.max_boots_per_project {
                    self.set_reason(container, Some(WAITING_FOR_INSTANCE))
                        .await?;
                    return Ok(());
                }
                let instance = self.boot_instance(&container.project_id).await?;
                self.store
                    .bind_container(container.id, &instance, &container.spec.ports)
                    .await?;
                self.set_reason(container, Some(WAITING_FOR_INSTANCE))
                    .await?;
            }
            Placement::TooBig => {
                let reason = format!(
                    "the container needs {} vCPU and {} MiB; an instance offers {} vCPU and {} MiB",
                    container.spec.cpu,
                    container.spec.memory_mib,
                    self.settings.instance_vcpus,
                    self.settings.instance_memory_mib
                );
                self.store
                    .update_status(
                        container.id,
                        ContainerStatus::Creating,
                        ContainerStatus::Error,
                        Some(&reason),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn set_reason(
        &self,
        container: &Container,
        reason: Option<&str>,
    ) -> Result<(), PassError> {
        if container.status_reason.as_deref() != reason {
            self.store
                .update_status(
                    container.id,
                    ContainerStatus::Creating,
                    ContainerStatus::Creating,
                    reason,
                )
                .await?;
        }
        Ok(())
    }

    /// Records a new instance and starts booting it in the background.
    async fn boot_instance(&self, project: &ProjectId) -> Result<InstanceId, PassError> {
        let id = InstanceId::parse(&uuid::Uuid::new_v4().to_string())
            .expect("a uuid is a valid instance id");
        let instance = Instance {
            id: id.clone(),
            project_id: project.clone(),
            driver: self.driver.name().to_owned(),
            status: InstanceStatus::Booting,
            status_reason: None,
            vcpus: self.settings.instance_vcpus,
            memory_mib: self.settings.instance_memory_mib,
            addresses: BTreeMap::new(),
            created_at: crate::db::utc_now(),
            empty_since: None,
        };
        self.store.insert_instance(&instance).await?;
        let token = self
            .tokens
            .issue(&id, self.settings.boot_timeout + Duration::from_secs(60))?;
        let user_data = nest_cloud_init::render(&nest_cloud_init::AgentBootstrap {
            instance_id: id.to_string(),
            relay_addr: self.settings.relay_advertise.to_string(),
            relay_server_name: None,
            ca_certificate_pem: self.settings.ca_pem.clone(),
            enrollment_token: nest_cloud_init::EnrollmentToken::new(token.as_str()),
            docker_socket: None,
            agent_source: self.settings.agent_source.clone(),
        })?;
        let request = BootRequest {
            instance_id: id.clone(),
            project_id: project.clone(),
            user_data: user_data.into_string(),
            flavor: self.settings.flavor.clone(),
            image: self.settings.image.clone(),
            network: self.settings.network.clone(),
            // The local driver, the only one built, needs none.
            authority: TenantAuthority::None,
        };
        tracing::info!(instance_id = %id, project_id = %project, driver = self.driver.name(), "booting an instance");
        let driver = self.driver.clone();
        let store = self.store.clone();
        let booting = id.clone();
        self.tasks.spawn(async move {
            let id = booting;
            match driver.boot(request).await {
                Ok(booted) => {
                    let addresses = booted
                        .addresses
                        .iter()
                        .map(|(net, ip)| (net.clone(), ip.to_string()))
                        .collect();
                    if let Err(e) = store.set_instance_addresses(&booted.id, &addresses).await {
                        tracing::warn!(instance_id = %booted.id, error = %crate::error_chain(&e), "could not record addresses");
                    }
                }
                Err(e) => {
                    let reason = format!("booting failed: {}", crate::error_chain(&e));
                    tracing::warn!(instance_id = %id, %reason, "instance boot failed");
                    fail_instance(&store, &driver, &id, &reason).await;
                }
            }
        });
        Ok(id)
    }

    /// Creates containers whose instance is ready and that are not created
    /// there yet.
    async fn create_on_ready(self: &Arc<Self>) -> Result<(), PassError> {
        let waiting: Vec<Container> = self
            .store
            .containers_in_status(ContainerStatus::Creating)
            .await?
            .into_iter()
            .filter(|c| c.instance_id.is_some())
            .collect();
        let mut ready: BTreeMap<InstanceId, bool> = BTreeMap::new();
        for container in waiting {
            let Some(instance) = container.instance_id.clone() else {
                continue;
            };
            let is_ready = match ready.get(&instance) {
                Some(r) => *r,
                None => {
                    let r = match self.store.get_instance(&instance).await {
                        Ok(i) => i.status == InstanceStatus::Ready,
                        Err(e) if e.kind() == ErrorKind::NotFound => false,
                        Err(e) => return Err(e.into()),
                    };
                    ready.insert(instance.clone(), r);
                    r
                }
            };
            if !is_ready || !lock(&self.creating).insert(container.id) {
                continue;
            }
            let this = Arc::clone(self);
            self.tasks.spawn(async move {
                create_container(
                    &this.store,
                    &this.relay,
                    &this.images,
                    &container,
                    &instance,
                )
                .await;
                lock(&this.creating).remove(&container.id);
                this.wake();
            });
        }
        Ok(())
    }

    /// Booting instances whose agent never came are given up.
    async fn expire_boots(&self) -> Result<(), PassError> {
        let now = time::OffsetDateTime::now_utc();
        for instance in self.store.list_instances(None).await? {
            if instance.status != InstanceStatus::Booting {
                continue;
            }
            let started = time::OffsetDateTime::parse(
                &instance.created_at,
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap_or(now);
            if now - started > self.settings.boot_timeout {
                let reason = format!(
                    "its agent did not connect within {:?}",
                    self.settings.boot_timeout
                );
                tracing::warn!(instance_id = %instance.id, %reason, "giving up on an instance");
                self.abandon_instance(&instance, Some(&reason)).await?;
            }
        }
        Ok(())
    }

    /// Deletes an instance that will never become ready. With a reason its
    /// containers fail with it; without one they are placed again.
    async fn abandon_instance(
        &self,
        instance: &Instance,
        reason: Option<&str>,
    ) -> Result<(), PassError> {
        for container in self.store.containers_on_instance(&instance.id).await? {
            match reason {
                Some(reason) => {
                    self.store
                        .set_status_any(
                            container.id,
                            ContainerStatus::Error,
                            Some(&format!("instance {}: {reason}", instance.id)),
                        )
                        .await?;
                }
                None => self.store.unbind_container(container.id).await?,
            }
        }
        if let Err(e) = self.driver.delete(&instance.id).await {
            tracing::warn!(instance_id = %instance.id, error = %crate::error_chain(&e), "could not delete an abandoned instance; the reconciler will retry");
            return Ok(());
        }
        if reason.is_some() {
            // Keep containers in Error pointing nowhere rather than at a
            // deleted instance.
            for container in self.store.containers_on_instance(&instance.id).await? {
                self.store.unbind_container(container.id).await?;
            }
        }
        self.store.delete_instance(&instance.id).await?;
        Ok(())
    }

    /// Deletes instances that stayed empty longer than the idle timeout,
    /// keeping `warm_pool` empty ones per project.
    async fn retire_idle(&self) -> Result<(), PassError> {
        let now = time::OffsetDateTime::now_utc();
        let mut kept: BTreeMap<ProjectId, usize> = BTreeMap::new();
        for instance in self.store.list_instances(None).await? {
            if instance.status != InstanceStatus::Ready {
                continue;
            }
            let usage = self.store.instance_usage(&instance.id).await?;
            if usage.containers > 0 {
                if instance.empty_since.is_some() {
                    self.store.set_empty_since(&instance.id, None).await?;
                }
                continue;
            }
            let Some(since) = &instance.empty_since else {
                self.store
                    .set_empty_since(&instance.id, Some(&crate::db::utc_now()))
                    .await?;
                continue;
            };
            let kept_here = kept.entry(instance.project_id.clone()).or_default();
            if *kept_here < self.settings.warm_pool {
                *kept_here += 1;
                continue;
            }
            let since =
                time::OffsetDateTime::parse(since, &time::format_description::well_known::Rfc3339)
                    .unwrap_or(now);
            if now - since < self.settings.idle_timeout {
                continue;
            }
            if !self
                .store
                .update_instance_status(
                    &instance.id,
                    InstanceStatus::Ready,
                    InstanceStatus::Retiring,
                    Some("idle"),
                )
                .await?
            {
                continue;
            }
            tracing::info!(instance_id = %instance.id, "retiring an idle instance");
            match self.driver.delete(&instance.id).await {
                Ok(()) => self.store.delete_instance(&instance.id).await?,
                Err(e) => {
                    tracing::warn!(instance_id = %instance.id, error = %crate::error_chain(&e), "could not delete an idle instance; will retry");
                }
            }
        }
        Ok(())
    }
}

async fn fail_instance(
    store: &Store,
    driver: &Arc<dyn InstanceDriver>,
    id: &InstanceId,
    reason: &str,
) {
    let result: Result<(), DbError> = async {
        store
            .update_instance_status(
                id,
                InstanceStatus::Booting,
                InstanceStatus::Error,
                Some(reason),
            )
            .await?;
        for container in store.containers_on_instance(id).await? {
            store
                .set_status_any(
                    container.id,
                    ContainerStatus::Error,
                    Some(&format!("instance {id}: {reason}")),
                )
                .await?;
            store.unbind_container(container.id).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(instance_id = %id, error = %crate::error_chain(&e), "could not record a failed boot");
    }
    if let Err(e) = driver.delete(id).await {
        tracing::warn!(instance_id = %id, error = %crate::error_chain(&e), "could not clean up a failed boot");
    }
    if let Err(e) = store.delete_instance(id).await {
        tracing::debug!(instance_id = %id, error = %e, "failed instance record not deleted");
    }
}

/// Creates one container on its instance and records the outcome.
async fn create_container(
    store: &Store,
    relay: &RelayClient,
    images: &ProjectImages,
    container: &Container,
    instance: &InstanceId,
) {
    let request_id = format!("req-{}", uuid::Uuid::new_v4());
    let mut spec = container.spec.clone();
    if let Ok(nest_images::ImageRef::Stored(image)) = nest_images::ImageRef::parse(&spec.image) {
        match images
            .load_into(relay, &container.project_id, image, instance, &request_id)
            .await
        {
            Ok(reference) => spec.image = reference,
            Err(e) if e.kind().is_retryable() => {
                tracing::info!(container_id = %container.id, error = %crate::error_chain(&e), "image load not finished; will retry");
                return;
            }
            Err(e) => {
                let reason = crate::error_chain(&e);
                tracing::info!(container_id = %container.id, %reason, "image load failed");
                if let Err(e) = store
                    .update_status(
                        container.id,
                        ContainerStatus::Creating,
                        ContainerStatus::Error,
                        Some(&reason),
                    )
                    .await
                {
                    tracing::warn!(container_id = %container.id, error = %crate::error_chain(&e), "could not record a failed create");
                }
                return;
            }
        }
    }
    let create = command::Kind::Create(proto::CreateContainer {
        spec: Some(convert::to_agent_spec(container.id, &container.name, &spec)),
        start: container.desired_running,
        pull_missing: true,
    });
    let mut outcome = relay
        .execute(instance, &request_id, create, CREATE_TIMEOUT)
        .await;
    if matches!(&outcome, Err(e) if e.kind() == ErrorKind::Conflict) {
        // Created by an earlier attempt whose answer was lost: adopt it.
        outcome = relay
            .execute(
                instance,
                &request_id,
                command::Kind::Inspect(proto::ContainerRef {
                    uuid: container.id.to_string(),
                }),
                CREATE_TIMEOUT,
            )
            .await;
    }
    let result = match outcome {
        Ok(command_output::Kind::Container(state)) => {
            let status = convert::status_of(&state);
            tracing::info!(container_id = %container.id, instance_id = %instance, status = %status, "container created");
            store_created(store, container.id, &state, status).await
        }
        Ok(other) => {
            tracing::warn!(container_id = %container.id, ?other, "unexpected create result");
            Ok(())
        }
        // The agent is away or slow: the next pass tries again.
        Err(e) if e.kind().is_retryable() => {
            tracing::info!(container_id = %container.id, error = %e, "create not answered; will retry");
            Ok(())
        }
        Err(e) => {
            tracing::info!(container_id = %container.id, error = %e, "create failed");
            store
                .update_status(
                    container.id,
                    ContainerStatus::Creating,
                    ContainerStatus::Error,
                    Some(&e.message),
                )
                .await
                .map(|_| ())
        }
    };
    if let Err(e) = result {
        tracing::warn!(container_id = %container.id, error = %crate::error_chain(&e), "could not record a create");
    }
}

async fn store_created(
    store: &Store,
    id: ContainerId,
    state: &proto::ContainerState,
    status: ContainerStatus,
) -> Result<(), DbError> {
    store.set_docker_id(id, Some(&state.docker_id)).await?;
    store
        .update_status(
            id,
            ContainerStatus::Creating,
            status,
            convert::exit_reason(state).as_deref(),
        )
        .await
        .map(|_| ())
}
