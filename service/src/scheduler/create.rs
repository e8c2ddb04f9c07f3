//! Creating containers on their agents once their instance is ready: the
//! stored image (if the container runs one) is loaded first through
//! `images.rs`, the create runs under the request id of the API call that
//! asked for the container, and a create whose answer was lost (the agent
//! already has the container) is adopted. At most one create per container
//! is in flight.
//!
//! A create that fails in a way a retry can help (the registry is
//! unreachable, the agent did not answer) is tried again after a growing
//! wait, at most `create_attempts` times; meanwhile its status reason says
//! what it waits for, and after the last try it ends in `Error` with the
//! engine's reason. Other failures end in `Error` at once.
//!
//! A container with user-defined networks waits until its instance's
//! agent has said what it supports, and ends in `Error` if that is not
//! networks (an agent older than them would ignore them).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nest_core::ErrorKind;
use nest_core::backoff::Backoff;
use tokio::time::Instant;

use super::agents::FeatureSupport;
use super::{CREATE_RETRY_MAX, PassError, Scheduler, lock};
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
        let live: HashSet<ContainerId> = waiting.iter().map(|c| c.id).collect();
        self.create_tries.retain(&live);
        let mut ready: BTreeMap<InstanceId, bool> = BTreeMap::new();
        for container in waiting {
            let Some(instance) = container.instance_id.clone() else {
                continue;
            };
            let is_ready = match ready.get(&instance) {
                Some(r) => *r,
                None => {
                    let r = match self.store.get_instance(&instance).await {
                        Ok(i) => {
                            i.status == InstanceStatus::Ready && !self.is_boot_in_flight(&i.id)
                        }
                        Err(e) if e.kind() == ErrorKind::NotFound => false,
                        Err(e) => return Err(e.into()),
                    };
                    ready.insert(instance.clone(), r);
                    r
                }
            };
            if !is_ready {
                continue;
            }
            if !lock(&self.creating).contains(&container.id) {
                match self.feature_support(&instance, &container.spec) {
                    FeatureSupport::Yes => {}
                    FeatureSupport::Unknown => continue,
                    FeatureSupport::No(reason) => {
                        tracing::info!(container_id = %container.id, instance_id = %instance, %reason, "container cannot be created");
                        self.store
                            .update_status(
                                container.id,
                                ContainerStatus::Creating,
                                ContainerStatus::Error,
                                Some(&reason),
                            )
                            .await?;
                        continue;
                    }
                }
            }
            if !self.create_tries.due(container.id) || !lock(&self.creating).insert(container.id) {
                continue;
            }
            let this = Arc::clone(self);
            self.tasks.spawn(async move {
                create_container(
                    &this.store,
                    this.agents.as_ref(),
                    &this.images,
                    &this.create_tries,
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

/// The failed tries of creates still being retried.
pub(super) struct CreateTries {
    max: u32,
    first_delay: Duration,
    tries: Mutex<HashMap<ContainerId, Tries>>,
}

struct Tries {
    failed: u32,
    backoff: Backoff,
    not_before: Instant,
}

/// What to do after a try failed in a way a retry can help.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Try again after `after`; `failed` of `of` tries have failed.
    Retry {
        failed: u32,
        of: u32,
        after: Duration,
    },
    /// Every try failed.
    GiveUp { tries: u32 },
}

impl CreateTries {
    pub(super) fn new(max: u32, first_delay: Duration) -> Self {
        Self {
            max: max.max(1),
            first_delay,
            tries: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the container's next try may start now.
    fn due(&self, id: ContainerId) -> bool {
        lock(&self.tries)
            .get(&id)
            .is_none_or(|t| Instant::now() >= t.not_before)
    }

    /// Counts a failed try and says what comes next.
    fn failed(&self, id: ContainerId) -> Next {
        let mut tries = lock(&self.tries);
        let entry = tries.entry(id).or_insert_with(|| Tries {
            failed: 0,
            backoff: Backoff::new(self.first_delay, CREATE_RETRY_MAX),
            not_before: Instant::now(),
        });
        entry.failed += 1;
        if entry.failed >= self.max {
            let tries_made = entry.failed;
            tries.remove(&id);
            return Next::GiveUp { tries: tries_made };
        }
        let after = entry.backoff.next_delay();
        entry.not_before = Instant::now() + after;
        Next::Retry {
            failed: entry.failed,
            of: self.max,
            after,
        }
    }

    /// Forgets a container whose create ended.
    fn forget(&self, id: ContainerId) {
        lock(&self.tries).remove(&id);
    }

    /// Forgets every container no longer waiting to be created.
    fn retain(&self, waiting: &HashSet<ContainerId>) {
        lock(&self.tries).retain(|id, _| waiting.contains(id));
    }
}

/// Records a failed try of `container`'s create: its status reason says
/// what it waits for, or, after the last try, it ends in `Error`.
async fn retry_or_fail(store: &Store, tries: &CreateTries, container: ContainerId, error: &str) {
    let (status, reason) = match tries.failed(container) {
        Next::Retry { failed, of, after } => {
            tracing::info!(container_id = %container, failed, of, ?after, %error, "create failed; will retry");
            (
                ContainerStatus::Creating,
                format!(
                    "retrying in {}s ({failed} of {of} tries failed): {error}",
                    after.as_secs().max(1)
                ),
            )
        }
        Next::GiveUp { tries } => {
            tracing::info!(container_id = %container, tries, %error, "create failed; giving up");
            (
                ContainerStatus::Error,
                format!("{error} (gave up after {tries} tries)"),
            )
        }
    };
    if let Err(e) = store
        .update_status(container, ContainerStatus::Creating, status, Some(&reason))
        .await
    {
        tracing::warn!(container_id = %container, error = %crate::error_chain(&e), "could not record a failed create");
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
    tries: &CreateTries,
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
                let error = format!("loading its image: {}", crate::error_chain(&e));
                retry_or_fail(store, tries, container.id, &error).await;
                return;
            }
            Err(e) => {
                let reason = crate::error_chain(&e);
                tracing::info!(container_id = %container.id, %reason, "image load failed");
                tries.forget(container.id);
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
            tries.forget(container.id);
            store_created(store, &state).await
        }
        Err(e @ AgentError::UnexpectedAnswer { .. }) => {
            tracing::warn!(container_id = %container.id, error = %e, "unexpected create result");
            Ok(())
        }
        // The registry or the agent is away or slow: tried again later.
        Err(e) if e.kind().is_retryable() => {
            retry_or_fail(store, tries, container.id, &e.to_string()).await;
            Ok(())
        }
        Err(e) => {
            tracing::info!(container_id = %container.id, error = %e, "create failed");
            tries.forget(container.id);
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
    if state.health.is_some() {
        store.set_health(state.container, state.health).await?;
    }
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
            health: None,
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
        let tries = CreateTries::new(3, Duration::from_secs(1));
        create_container(&store, &link, &images, &tries, &asked, &instance).await;

        // Without a recorded create, the work still gets a request id.
        let unrecorded = Container {
            id: ContainerId::generate(),
            name: "db".into(),
            ..container()
        };
        store.insert_container(&unrecorded).await.expect("insert");
        create_container(&store, &link, &images, &tries, &unrecorded, &instance).await;

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

    #[tokio::test(start_paused = true)]
    async fn failed_tries_wait_longer_and_are_bounded() {
        let tries = CreateTries::new(3, Duration::from_secs(2));
        let id = ContainerId::generate();
        assert!(tries.due(id));
        let Next::Retry { failed, of, after } = tries.failed(id) else {
            panic!("the first failure is retried");
        };
        assert_eq!((failed, of), (1, 3));
        assert!(!tries.due(id), "not before {after:?}");
        tokio::time::advance(after).await;
        assert!(tries.due(id));
        assert!(matches!(tries.failed(id), Next::Retry { failed: 2, .. }));
        assert_eq!(tries.failed(id), Next::GiveUp { tries: 3 });
        assert!(tries.due(id), "a given-up container is forgotten");
    }

    #[tokio::test]
    async fn an_unreachable_registry_ends_in_error_after_the_last_try() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}/nest.db?mode=rwc", dir.path().display());
        let store = Store::connect(&url).await.expect("SQLite opens");
        let images = ProjectImages::new(dir.path().join("images"));
        let link = FakeAgents::new();
        let instance = InstanceId::parse("i-1").expect("a valid instance id");
        link.connect(&instance).await;
        let asked = container();
        store.insert_container(&asked).await.expect("insert");
        let tries = CreateTries::new(2, Duration::ZERO);
        let pull = "pulling image r.example/x:1 failed: connection refused";

        link.fail_next(ErrorKind::Unavailable, pull);
        create_container(&store, &link, &images, &tries, &asked, &instance).await;
        let waiting = store.get_container(asked.id).await.expect("read back");
        assert_eq!(waiting.status, ContainerStatus::Creating);
        let reason = waiting.status_reason.expect("a reason while retrying");
        assert!(
            reason.contains("1 of 2 tries failed") && reason.contains(pull),
            "{reason}"
        );

        link.fail_next(ErrorKind::Unavailable, pull);
        create_container(&store, &link, &images, &tries, &asked, &instance).await;
        let failed = store.get_container(asked.id).await.expect("read back");
        assert_eq!(failed.status, ContainerStatus::Error);
        assert_eq!(
            failed.status_reason.as_deref(),
            Some(format!("{pull} (gave up after 2 tries)").as_str())
        );
        store.close().await;
    }
}
