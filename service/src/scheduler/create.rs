//! Creating containers on their agents once their instance is ready: the
//! stored image (if the container runs one) is loaded first through
//! `images.rs`, the create runs under the request id of the API call that
//! asked for the container, and a create whose answer was lost (the agent
//! already has the container) is adopted. At most one create per container
//! is in flight.

use std::collections::BTreeMap;
use std::sync::Arc;

use nest_core::ErrorKind;

use super::{PassError, Scheduler, lock};
use crate::agents::{AgentError, AgentLink, CreateRequest, EngineState};
use crate::db::{DbError, Store};
use crate::domain::ActionKind;
use crate::domain::{
    Container, ContainerId, ContainerStatus, InstanceId, InstanceStatus, RequestId,
};
use crate::images::ProjectImages;

impl Scheduler {
    /// Creates containers whose instance is ready and that are not created
    /// there yet.
    pub(super) async fn create_on_ready(self: &Arc<Self>) -> Result<(), PassError> {
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
                    this.agents.as_ref(),
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
}

/// The id of the API call that asked for a container, so that creating it
/// on its agent is traced under that call; a fresh one (logged) when none
/// was recorded.
///
/// # Errors
/// [`DbError`] when the recorded actions cannot be read.
async fn create_request_id(store: &Store, container: ContainerId) -> Result<RequestId, DbError> {
    let recorded = store
        .action_request_id(container, ActionKind::Create.as_zun())
        .await?;
    Ok(recorded.unwrap_or_else(|| {
        let request_id = RequestId::generate();
        tracing::info!(container_id = %container, %request_id, "no create request recorded; creating under a fresh request id");
        request_id
    }))
}

/// Creates one container on its instance and records the outcome.
#[tracing::instrument(skip_all, fields(container_id = %container.id, instance_id = %instance, request_id = tracing::field::Empty))]
async fn create_container(
    store: &Store,
    agents: &dyn AgentLink,
    images: &ProjectImages,
    container: &Container,
    instance: &InstanceId,
) {
    let request_id = match create_request_id(store, container.id).await {
        Ok(request_id) => request_id,
        Err(e) => {
            tracing::warn!(container_id = %container.id, error = %crate::error_chain(&e), "could not read the create request; will retry");
            return;
        }
    };
    tracing::Span::current().record("request_id", tracing::field::display(&request_id));
    let mut spec = container.spec.clone();
    if let Ok(nest_images::ImageRef::Stored(image)) = nest_images::ImageRef::parse(&spec.image) {
        match images
            .load_into(agents, &container.project_id, image, instance, &request_id)
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
    let request = CreateRequest {
        container: container.id,
        name: container.name.clone(),
        spec,
        start: container.desired_running,
        pull_missing: true,
    };
    let mut outcome = agents.create(&request_id, instance, request).await;
    if matches!(&outcome, Err(e) if e.kind() == ErrorKind::Conflict) {
        // Created by an earlier attempt whose answer was lost: adopt it.
        outcome = agents.inspect(&request_id, instance, container.id).await;
    }
    let result = match outcome {
        Ok(state) => {
            tracing::info!(container_id = %container.id, instance_id = %instance, status = %state.status, "container created");
            store_created(store, &state).await
        }
        Err(e @ AgentError::UnexpectedAnswer { .. }) => {
            tracing::warn!(container_id = %container.id, error = %e, "unexpected create result");
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
                    Some(&e.to_string()),
                )
                .await
                .map(|_| ())
        }
    };
    if let Err(e) = result {
        tracing::warn!(container_id = %container.id, error = %crate::error_chain(&e), "could not record a create");
    }
}

async fn store_created(store: &Store, state: &EngineState) -> Result<(), DbError> {
    store
        .set_docker_id(state.container, Some(&state.docker_id))
        .await?;
    store
        .update_status(
            state.container,
            ContainerStatus::Creating,
            state.status,
            state.status_reason.as_deref(),
        )
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::NewAction;
    use crate::domain::{ProjectId, UserId};
    use crate::testing::{AgentCommand, FakeAgents};

    fn container() -> Container {
        let now = crate::db::utc_now();
        Container {
            id: ContainerId::generate(),
            name: "web".into(),
            project_id: ProjectId::parse("p1").expect("a valid project id"),
            user_id: UserId::parse("alice").expect("a valid user id"),
            spec: crate::domain::ContainerSpec {
                image: "busybox".into(),
                cpu: 0.5,
                memory_mib: 64,
                ..Default::default()
            },
            status: ContainerStatus::Creating,
            status_reason: None,
            desired_running: true,
            instance_id: None,
            docker_id: None,
            created_at: now.clone(),
            updated_at: now,
        }
    }

    #[tokio::test]
    async fn the_agent_creates_under_the_request_id_of_the_api_call() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}/nest.db?mode=rwc", dir.path().display());
        let store = Store::connect(&url).await.expect("SQLite opens");
        let images = ProjectImages::new(dir.path().join("images"));
        let link = FakeAgents::new();
        let instance = InstanceId::parse("i-1").expect("a valid instance id");
        link.connect(&instance).await;

        let asked = container();
        store.insert_container(&asked).await.expect("insert");
        let api_call = RequestId::generate();
        store
            .record_action(&NewAction {
                request_id: api_call.clone(),
                container: asked.id,
                action: ActionKind::Create.as_zun().to_owned(),
                project_id: asked.project_id.clone(),
                user_id: asked.user_id.clone(),
            })
            .await
            .expect("record the create");
        create_container(&store, &link, &images, &asked, &instance).await;

        // Without a recorded create, the work still gets a request id.
        let unrecorded = Container {
            id: ContainerId::generate(),
            name: "db".into(),
            ..container()
        };
        store.insert_container(&unrecorded).await.expect("insert");
        create_container(&store, &link, &images, &unrecorded, &instance).await;

        let creates: Vec<(ContainerId, RequestId)> = link
            .calls()
            .into_iter()
            .filter_map(|call| match call.command {
                AgentCommand::Create(request) => Some((request.container, call.request_id)),
                _ => None,
            })
            .collect();
        assert_eq!(creates.len(), 2);
        assert_eq!(creates[0], (asked.id, api_call.clone()));
        assert_eq!(creates[1].0, unrecorded.id);
        assert_ne!(creates[1].1, api_call);
        let created = store.get_container(asked.id).await.expect("read back");
        let engine = link.container(asked.id).expect("the agent has it");
        assert_eq!(
            (created.status, created.docker_id.as_deref()),
            (
                ContainerStatus::Running,
                Some(engine.state.docker_id.as_str())
            )
        );
        store.close().await;
    }
}
