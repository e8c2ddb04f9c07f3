//! The reconciler: converges the database (desired state) and what agents
//! and the driver report (actual state), after any crash or partition.
//!
//! - An agent connecting marks its instance Ready and sends its inventory:
//!   recorded containers get their real status; containers the agent has
//!   but the database does not are orphans and are removed; recorded
//!   containers missing from it are marked Error with a reason once the
//!   agent confirms it has no such container (an inventory is as old as
//!   its hello, and a container created since is not lost).
//! - Container events update statuses as they happen.
//! - An agent is its tenant's, so what it says is believed only about the
//!   containers recorded on its own instance: an event or inventory entry
//!   naming any other recorded container is dropped, counted in
//!   [`crate::metrics::AGENT_SCOPE_VIOLATIONS_TOTAL`] and logged as a
//!   security event naming the instance (as are the relay's own reports of
//!   frames and results an agent had no right to send).
//! - Sessions are told apart by id: when a newer session of an instance
//!   replaced an older one, the older one's end changes nothing.
//! - Periodically ([`sweep`]), instances the driver has but the database
//!   does not are deleted, and recorded instances the driver lost fail
//!   their containers, project by project: a project the driver could not
//!   list is left as it is, and shown as unreachable.

pub mod sweep;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use nest_core::ErrorKind;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::agents::{
    AgentAction, AgentEvent, AgentLink, ContainerEvent, EngineAction, EngineState,
};
use crate::db::{DbError, Store};
use crate::domain::ActionKind;
use crate::domain::{ContainerId, ContainerStatus, InstanceId, InstanceStatus, RequestId};
use crate::driver::InstanceDriver;
use crate::metrics::{Metrics, Violation};
use crate::scheduler::Scheduler;

/// How often the database is compared with what the driver has.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// The reconciler's parts.
pub struct Reconciler {
    /// The database.
    pub store: Store,
    /// Commands to agents.
    pub agents: Arc<dyn AgentLink>,
    /// What really exists.
    pub driver: Arc<dyn InstanceDriver>,
    /// Woken when an instance becomes ready.
    pub scheduler: Arc<Scheduler>,
    /// Where dropped agent messages are counted.
    pub metrics: Metrics,
}

/// The live session of each instance, as the watch feed announced them.
type Sessions = HashMap<InstanceId, u64>;

impl Reconciler {
    /// Applies relay events and sweeps periodically until `cancel`.
    pub async fn run(self, mut events: mpsc::Receiver<AgentEvent>, cancel: CancellationToken) {
        let mut sessions = Sessions::new();
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                event = events.recv() => {
                    let Some(event) = event else { return };
                    if let Err(e) = self.apply(event, &mut sessions).await {
                        tracing::warn!(error = %crate::error_chain(&e), "could not apply a relay event");
                    }
                }
                _ = sweep.tick() => {
                    // No API call asked for a sweep: each gets its own
                    // request id, on every line it logs.
                    let span = tracing::info_span!("sweep", request_id = %RequestId::generate());
                    if let Err(e) = self.sweep().instrument(span).await {
                        tracing::warn!(error = %crate::error_chain(&e), "reconciler sweep failed");
                    }
                }
            }
        }
    }

    async fn apply(&self, event: AgentEvent, sessions: &mut Sessions) -> Result<(), DbError> {
        match event {
            AgentEvent::Connected {
                instance,
                session,
                inventory,
                agent_version,
                features,
            } => {
                tracing::info!(instance_id = %instance, session, %agent_version, ?features, "agent connected");
                sessions.insert(instance.clone(), session);
                // Before the instance can turn ready: the scheduler reads
                // it when it creates containers there.
                self.scheduler
                    .agent_connected(&instance, &agent_version, &features);
                self.connected(&instance, &inventory).await
            }
            AgentEvent::Disconnected {
                instance,
                session,
                reason,
            } => {
                if let Some(live) = sessions.get(&instance)
                    && *live != session
                {
                    // The newer session that replaced this one still runs.
                    tracing::debug!(instance_id = %instance, session, live, %reason, "a replaced agent session ended");
                    return Ok(());
                }
                sessions.remove(&instance);
                for from in [InstanceStatus::Ready, InstanceStatus::Degraded] {
                    self.store
                        .update_instance_status(
                            &instance,
                            from,
                            InstanceStatus::Unreachable,
                            Some("its agent disconnected"),
                        )
                        .await
                        .map(|_| ())
                        .or_else(ignore_not_found)?;
                }
                Ok(())
            }
            AgentEvent::Engine {
                instance,
                healthy,
                reason,
            } => self.engine_health(&instance, healthy, &reason).await,
            AgentEvent::Container { instance, event } => {
                self.container_event(&instance, event).await
            }
            AgentEvent::Violation {
                instance,
                session,
                kind,
                count,
                detail,
            } => {
                self.violation(&instance, kind, count, &detail, Some(session));
                Ok(())
            }
        }
    }

    /// An agent says whether its engine answers. While it does not, the
    /// instance is `Degraded` and its containers `Unknown`, each with the
    /// reason; when it answers again the agent reports every container's
    /// state first (as events), then the instance is `Ready` again.
    async fn engine_health(
        &self,
        instance: &InstanceId,
        healthy: bool,
        reason: &str,
    ) -> Result<(), DbError> {
        if healthy {
            if self
                .store
                .update_instance_status(
                    instance,
                    InstanceStatus::Degraded,
                    InstanceStatus::Ready,
                    None,
                )
                .await
                .or_else(|e| ignore_not_found(e).map(|()| false))?
            {
                tracing::info!(instance_id = %instance, "the instance's engine answers again");
                self.scheduler.wake();
            }
            return Ok(());
        }
        let why = format!("its container engine does not answer: {reason}");
        if !self
            .store
            .update_instance_status(
                instance,
                InstanceStatus::Ready,
                InstanceStatus::Degraded,
                Some(&why),
            )
            .await
            .or_else(|e| ignore_not_found(e).map(|()| false))?
        {
            return Ok(());
        }
        tracing::warn!(instance_id = %instance, %reason, "the instance's engine does not answer");
        let unknown = format!("its instance's container engine does not answer: {reason}");
        for container in self.store.containers_on_instance(instance).await? {
            let settled = !matches!(
                container.status,
                ContainerStatus::Creating | ContainerStatus::Deleting | ContainerStatus::Error
            );
            if settled && container.docker_id.is_some() {
                self.store
                    .set_status_any(container.id, ContainerStatus::Unknown, Some(&unknown))
                    .await?;
            }
        }
        Ok(())
    }

    /// Counts and logs messages of `instance`'s agent that were dropped
    /// because they named what the instance is not entitled to.
    fn violation(
        &self,
        instance: &InstanceId,
        kind: Violation,
        count: u64,
        detail: &str,
        session: Option<u64>,
    ) {
        tracing::warn!(
            security_event = "agent_scope_violation",
            instance_id = %instance,
            session_id = session,
            kind = kind.as_str(),
            count,
            %detail,
            "security: dropped agent messages outside their instance's scope"
        );
        self.metrics.agent_scope_violations(kind, count);
    }

    async fn connected(
        &self,
        instance: &InstanceId,
        inventory: &[EngineState],
    ) -> Result<(), DbError> {
        let record = match self.store.get_instance(instance).await {
            Ok(record) => record,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                tracing::warn!(instance_id = %instance, "an agent of an unknown instance connected; the sweep deletes the instance");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        // Read before the instance turns ready: a container created there
        // after that is newer than the inventory and must not look lost.
        let recorded = self.store.containers_on_instance(instance).await?;
        // A hello lists the engine's containers, so the engine answers.
        for from in [
            InstanceStatus::Booting,
            InstanceStatus::Unreachable,
            InstanceStatus::Degraded,
        ] {
            if self
                .store
                .update_instance_status(instance, from, InstanceStatus::Ready, None)
                .await?
            {
                tracing::info!(instance_id = %instance, project_id = %record.project_id, "instance ready");
            }
        }
        let reported: BTreeMap<ContainerId, &EngineState> =
            inventory.iter().map(|c| (c.container, c)).collect();
        let mut known = HashSet::new();
        for container in &recorded {
            known.insert(container.id);
            match reported.get(&container.id) {
                Some(state) => {
                    if container.status == ContainerStatus::Deleting {
                        // Finishing the delete an API call asked for.
                        let request_id = self.delete_request_id(container.id).await?;
                        self.remove_on_agent(instance, container.id, request_id);
                        continue;
                    }
                    if container.docker_id.is_none() {
                        self.store
                            .set_docker_id(container.id, Some(&state.docker_id))
                            .await?;
                    }
                    if state.health != container.health {
                        self.store.set_health(container.id, state.health).await?;
                    }
                    if state.status != container.status {
                        self.store
                            .set_status_any(
                                container.id,
                                state.status,
                                state.status_reason.as_deref(),
                            )
                            .await?;
                    }
                }
                None if container.docker_id.is_some() => {
                    if container.status == ContainerStatus::Deleting || container.spec.auto_remove {
                        self.store.delete_container(container.id).await?;
                    } else if container.status != ContainerStatus::Error {
                        self.confirm_lost(instance, container.id, container.status);
                    }
                }
                // Not created yet: the scheduler creates it now that the
                // instance is ready.
                None => {}
            }
        }
        for id in reported.keys() {
            if !known.contains(id) {
                match self.store.get_container(*id).await {
                    // Bound here since the list above was read.
                    Ok(other) if other.instance_id.as_ref() == Some(instance) => continue,
                    Ok(other) => {
                        let detail = format!(
                            "its inventory names container {id} of project {}, not on this instance",
                            other.project_id
                        );
                        self.violation(instance, Violation::Inventory, 1, &detail, None);
                        continue;
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                // No API call asked for this: it gets its own request id.
                let request_id = RequestId::generate();
                tracing::warn!(%request_id, instance_id = %instance, container_id = %id, "removing an orphan container");
                self.remove_on_agent(instance, *id, request_id);
            }
        }
        self.scheduler.wake();
        Ok(())
    }

    /// Removes a container through its agent in the background, so one
    /// slow agent never holds up the events of the others.
    fn remove_on_agent(&self, instance: &InstanceId, id: ContainerId, request_id: RequestId) {
        let agents = self.agents.clone();
        let instance = instance.clone();
        self.scheduler.tasks().spawn(async move {
            let remove = AgentAction::Remove { force: true };
            if let Err(e) = agents.act(&request_id, &instance, id, remove).await {
                tracing::warn!(%request_id, instance_id = %instance, container_id = %id, error = %e, "could not remove a container");
            }
        });
    }

    /// Fails a recorded container that its agent's inventory left out,
    /// once the agent confirms it has no such container. The inventory is
    /// as old as the hello, so a container created through a session that
    /// replaced an older one may be missing from it without being lost;
    /// the check runs in the background and changes the status only if
    /// nothing else did meanwhile.
    fn confirm_lost(&self, instance: &InstanceId, id: ContainerId, status: ContainerStatus) {
        let agents = self.agents.clone();
        let store = self.store.clone();
        let instance = instance.clone();
        self.scheduler.tasks().spawn(async move {
            let request_id = RequestId::generate();
            match agents.inspect(&request_id, &instance, id).await {
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Ok(_) => return,
                Err(e) => {
                    tracing::info!(%request_id, instance_id = %instance, container_id = %id, error = %e, "could not confirm a container missing from an inventory; the next connect checks again");
                    return;
                }
            }
            tracing::warn!(%request_id, instance_id = %instance, container_id = %id, "a recorded container disappeared from its instance");
            let lost = store
                .update_status(
                    id,
                    status,
                    ContainerStatus::Error,
                    Some("the container disappeared from its instance"),
                )
                .await;
            if let Err(e) = lost
                && e.kind() != ErrorKind::NotFound
            {
                tracing::warn!(container_id = %id, error = %crate::error_chain(&e), "could not record a lost container");
            }
        });
    }

    /// The id of the API call that deleted a container; a fresh one (logged)
    /// when none was recorded.
    async fn delete_request_id(&self, id: ContainerId) -> Result<RequestId, DbError> {
        let recorded = self
            .store
            .action_request_id(id, ActionKind::Delete.as_zun())
            .await?;
        Ok(recorded.unwrap_or_else(|| {
            let request_id = RequestId::generate();
            tracing::info!(container_id = %id, %request_id, "no delete request recorded; removing under a fresh request id");
            request_id
        }))
    }

    async fn container_event(
        &self,
        instance: &InstanceId,
        event: ContainerEvent,
    ) -> Result<(), DbError> {
        let id = event.container;
        let container = match self.store.get_container(id).await {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        // Only the agent of the container's own instance, in the
        // container's own project, speaks for it.
        let entitled = container.instance_id.as_ref() == Some(instance)
            && match self.store.get_instance(instance).await {
                Ok(record) => record.project_id == container.project_id,
                Err(e) if e.kind() == ErrorKind::NotFound => false,
                Err(e) => return Err(e),
            };
        if !entitled {
            let detail = format!(
                "a {:?} event about container {id} of project {}, not on this instance",
                event.action, container.project_id
            );
            self.violation(instance, Violation::ContainerEvent, 1, &detail, None);
            return Ok(());
        }
        if event.action == EngineAction::Destroy {
            if container.status == ContainerStatus::Deleting || container.spec.auto_remove {
                return self
                    .store
                    .delete_container(id)
                    .await
                    .or_else(ignore_not_found);
            }
            return self
                .store
                .set_status_any(
                    id,
                    ContainerStatus::Error,
                    Some("the container was removed outside Nest"),
                )
                .await;
        }
        // While Nest itself is creating or deleting it, those flows decide.
        if matches!(
            container.status,
            ContainerStatus::Creating | ContainerStatus::Deleting
        ) {
            return Ok(());
        }
        let Some(state) = event.state else {
            return Ok(());
        };
        // Before the status: a wait that sees the status move reads the
        // verdict that came with it.
        if state.health != container.health {
            self.store.set_health(id, state.health).await?;
        }
        let status = state.status;
        let mut reason = state.status_reason;
        if event.action == EngineAction::OutOfMemory {
            reason = Some("killed: out of memory".to_owned());
        }
        if status != container.status || reason != container.status_reason {
            self.store
                .set_status_any(id, status, reason.as_deref())
                .await?;
        }
        Ok(())
    }

    /// Compares the database with what the driver really has.
    async fn sweep(&self) -> Result<(), DbError> {
        sweep::sweep(&self.store, &*self.driver, &self.metrics).await
    }
}

fn ignore_not_found(e: DbError) -> Result<(), DbError> {
    if e.kind() == ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}
