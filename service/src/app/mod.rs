//! The application layer: [`App`], the one concrete container service that
//! every front end calls (the Zun API today, the Docker API next), over the
//! database, the scheduler and the agent link. It knows no HTTP, no wire
//! format and no proto: front ends build its plain [`types`] from their own
//! protocol, and render [`AppError`] by its kind. It owns every decision
//! about state: it resolves a name or uuid, enforces ownership and policy
//! (owner-or-admin, `all_projects` admin-only, read-only roles; another
//! project's container is "not found"), checks the status machine and
//! records container actions.
//!
//! # Layout
//! - this file: `App`, resolving a container reference with ownership and
//!   policy, and error mapping;
//! - `types.rs`: what the layer is called with and answers;
//! - `error.rs`: [`AppError`] and its kinds;
//! - `lifecycle.rs`: create, list, show, update, delete and the state
//!   actions (start, stop, reboot, pause, unpause, kill);
//! - `io.rs`: exec, logs, attach and consoles, top, stats;
//! - `console.rs`: the typed frames of console I/O, both ways;
//! - `networks.rs`: user-defined networks and the networks a container
//!   joins;
//! - `records.rs`: container actions and hosts;
//! - `certificates.rs`: the Docker endpoint's client certificates;
//! - `changes.rs`: a project's container changes as they happen (what
//!   `docker wait` follows);
//! - `events.rs`: container events with history (what `docker events`
//!   follows): the recorder, the per-project rings and the status→action
//!   translation;
//! - `auto_remove.rs`: deleting `auto_remove` containers once they stop.

mod auto_remove;
pub mod certificates;
pub mod changes;
pub mod console;
mod delegation;
mod error;
pub mod events;
mod io;
mod lifecycle;
pub mod networks;
mod quotas;
mod records;
pub mod types;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nest_core::ErrorKind;

pub use certificates::{CertificateAuthError, DockerCertificates, IssuedDockerCertificate};
pub use changes::{ChangeEvent, ChangeKind, ContainerChange, ProjectChanges};
pub use console::{ConsoleInput, ConsoleIo, ConsoleOutput, ConsoleSession};
pub use error::{AppError, BoxError};
pub use events::{
    ContainerEvent, EventAction, EventHistory, EventRecorder, EventSubscription, HistoryLimits,
};
pub use networks::{NetworkInfo, NewNetwork};
pub use quotas::QuotaInfo;
pub use types::*;

use crate::agents::{AgentError, AgentLink};
use crate::auth::policy::{self, Action, PolicyError};
use crate::db::{DbError, Store};
use crate::domain::{Container, ContainerId, InstanceId};
use crate::scheduler::Scheduler;

/// How long a console token stays redeemable.
const CONSOLE_TOKEN_TTL: Duration = Duration::from_secs(60);

/// What a console token opens.
#[derive(Clone, Debug)]
struct PendingConsole {
    container: ContainerId,
    target: ConsoleTarget,
    command: Vec<String>,
    /// The call that issued the token: the session is traced under it.
    request_id: RequestId,
    expires: tokio::time::Instant,
}

/// The container service.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    images: Arc<crate::images::ProjectImages>,
    agents: Arc<dyn AgentLink>,
    scheduler: Arc<Scheduler>,
    /// The recorded container events (`events.rs`).
    events: Arc<EventHistory>,
    consoles: Mutex<BTreeMap<String, PendingConsole>>,
    resizers: Mutex<BTreeMap<String, tokio::sync::mpsc::Sender<TtySize>>>,
    /// Held while a delegation is created, so that two calls at once do
    /// not both create one (see `delegation`).
    delegations: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing awaits or panics under these locks.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl App {
    /// The service over its parts; `events` is the history an
    /// [`EventRecorder`] subscribed before the parts started records into.
    pub fn new(
        store: Store,
        agents: Arc<dyn AgentLink>,
        scheduler: Arc<Scheduler>,
        images: Arc<crate::images::ProjectImages>,
        events: Arc<EventHistory>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                images,
                agents,
                scheduler,
                events,
                consoles: Mutex::new(BTreeMap::new()),
                resizers: Mutex::new(BTreeMap::new()),
                delegations: tokio::sync::Mutex::new(()),
            }),
        }
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Finds a container the caller may act on with `action`.
    async fn resolve(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
        action: Action,
    ) -> Result<Container, AppError> {
        self.resolve_in(cx, reference, action, false).await
    }

    /// [`Self::resolve`], and with `all_projects` (admins only, as Zun's
    /// `*_all_projects` policies say) a name is looked up in every
    /// project, not only the caller's.
    async fn resolve_in(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
        action: Action,
        all_projects: bool,
    ) -> Result<Container, AppError> {
        if all_projects {
            policy::authorize(&cx.caller, Action::ContainerListAllProjects, None)
                .map_err(policy_error)?;
        }
        let not_found = || AppError::ContainerNotFound(reference.clone());
        let container = match reference {
            ContainerRef::Id(id) => match self.store().get_container(*id).await {
                Ok(c) => c,
                Err(e) if e.kind() == ErrorKind::NotFound => return Err(not_found()),
                Err(e) => return Err(internal("reading a container", e)),
            },
            ContainerRef::Name(name) => {
                let project = (!all_projects).then_some(&cx.caller.project_id);
                let mut found = self
                    .store()
                    .find_by_name(project, name)
                    .await
                    .map_err(|e| internal("finding a container by name", e))?;
                match found.len() {
                    0 => return Err(not_found()),
                    1 => found.remove(0),
                    _ => return Err(AppError::AmbiguousName(name.clone())),
                }
            }
        };
        policy::authorize(&cx.caller, action, Some(&container.project_id)).map_err(
            |e| match e {
                PolicyError::NotFound => not_found(),
                other => policy_error(other),
            },
        )?;
        Ok(container)
    }

    /// The link to the agents, and the instance of a container whose
    /// agent carries out `action` (or why it cannot).
    fn on_agent(
        &self,
        container: &Container,
        action: &'static str,
    ) -> Result<(&dyn AgentLink, InstanceId), AppError> {
        Ok((self.inner.agents.as_ref(), placed_on(container, action)?))
    }

    fn issue_console(
        &self,
        cx: &CallContext,
        container: ContainerId,
        target: ConsoleTarget,
        command: Vec<String>,
    ) -> ConsoleToken {
        let token = ConsoleToken::generate();
        let now = tokio::time::Instant::now();
        let mut consoles = lock(&self.inner.consoles);
        consoles.retain(|_, c| c.expires > now);
        consoles.insert(
            token.as_str().to_owned(),
            PendingConsole {
                container,
                target,
                command,
                request_id: cx.request_id.clone(),
                expires: now + CONSOLE_TOKEN_TTL,
            },
        );
        token
    }

    fn redeem_console(
        &self,
        container: ContainerId,
        token: &ConsoleToken,
        target: &ConsoleTarget,
    ) -> Result<PendingConsole, AppError> {
        let pending = lock(&self.inner.consoles)
            .remove(token.as_str())
            .ok_or(AppError::ConsoleTokenRejected)?;
        if pending.container != container
            || &pending.target != target
            || pending.expires <= tokio::time::Instant::now()
        {
            return Err(AppError::ConsoleTokenRejected);
        }
        Ok(pending)
    }
}

/// A policy refusal as the API reports it: Zun's "policy doesn't allow
/// <rule> to be performed", naming the rule once.
fn policy_error(e: PolicyError) -> AppError {
    match e {
        PolicyError::Forbidden { action } => AppError::PolicyNotAuthorized(action.to_string()),
        PolicyError::NotFound => AppError::PolicyNotAuthorized("this".to_owned()),
    }
}

/// The instance a container is placed on, or why an action cannot run.
fn placed_on(container: &Container, action: &'static str) -> Result<InstanceId, AppError> {
    match (&container.instance_id, &container.docker_id) {
        (Some(instance), Some(_)) => Ok(instance.clone()),
        _ => Err(AppError::InvalidState {
            id: container.id,
            status: container.status,
            action,
        }),
    }
}

/// An unexpected failure; the cause goes to the log, not to the client.
fn internal(context: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> AppError {
    AppError::Internal {
        context,
        source: Box::new(e),
    }
}

/// An agent's (or the relay's) error, as the API reports it.
fn agent_error(container: &Container, e: &AgentError) -> AppError {
    match e.kind() {
        ErrorKind::NotFound => AppError::Unavailable {
            what: format!(
                "container {} on its instance (it may have been removed outside Nest)",
                container.id
            ),
            source: Some(Box::new(e.clone())),
        },
        // The relay's words (no live agent session) or the agent's (its
        // engine does not answer): never a guess at which.
        ErrorKind::Unavailable => AppError::Unavailable {
            what: format!("the instance of container {} ({e})", container.id),
            source: Some(Box::new(e.clone())),
        },
        ErrorKind::Timeout => AppError::Timeout {
            what: format!("the instance of container {}", container.id),
        },
        ErrorKind::Conflict => AppError::InvalidState {
            id: container.id,
            status: container.status,
            action: "change",
        },
        ErrorKind::Invalid => AppError::InvalidRequest {
            what: "request",
            reason: e.to_string(),
        },
        _ => internal("talking to the container's agent", e.clone()),
    }
}

/// A database error that is not the caller's doing.
fn db_error(context: &'static str) -> impl FnOnce(DbError) -> AppError {
    move |e| match e.kind() {
        ErrorKind::Unavailable | ErrorKind::Timeout => AppError::Unavailable {
            what: "the database".into(),
            source: Some(Box::new(e)),
        },
        _ => internal(context, e),
    }
}
