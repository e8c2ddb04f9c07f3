//! The container service behind the API: [`App`] implements the API's
//! `ContainerBackend` over the database, the scheduler and the agent link.
//!
//! Layout:
//! - this file: `App`, resolving a container reference with ownership and
//!   policy, and error mapping;
//! - `lifecycle.rs`: create, list, show, update, delete and the state
//!   actions (start, stop, reboot, pause, unpause, kill);
//! - `io.rs`: exec, logs, attach and consoles, top, stats;
//! - `console.rs`: the typed frames of console I/O, both ways;
//! - `records.rs`: container actions and hosts.

pub mod console;
mod io;
mod lifecycle;
mod records;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use nest_core::ErrorKind;

use crate::agents::{AgentError, AgentLink};
use crate::api::backend::{
    BackendError, BackendFuture, CallContext, ConsoleTarget, ConsoleToken, ContainerBackend,
    ContainerRef, ExecId, TtySize,
};
use crate::auth::policy::{self, Action, PolicyError};
use crate::db::{DbError, Store};
use crate::domain::{Container, ContainerId, InstanceId, RequestId};
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
    consoles: Mutex<BTreeMap<String, PendingConsole>>,
    resizers: Mutex<BTreeMap<String, tokio::sync::mpsc::Sender<TtySize>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing awaits or panics under these locks.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl App {
    /// The service over its parts.
    pub fn new(
        store: Store,
        agents: Arc<dyn AgentLink>,
        scheduler: Arc<Scheduler>,
        images: Arc<crate::images::ProjectImages>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                images,
                agents,
                scheduler,
                consoles: Mutex::new(BTreeMap::new()),
                resizers: Mutex::new(BTreeMap::new()),
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
    ) -> Result<Container, BackendError> {
        let not_found = || BackendError::ContainerNotFound(reference.clone());
        let container = match reference {
            ContainerRef::Id(id) => match self.store().get_container(*id).await {
                Ok(c) => c,
                Err(e) if e.kind() == ErrorKind::NotFound => return Err(not_found()),
                Err(e) => return Err(internal("reading a container", e)),
            },
            ContainerRef::Name(name) => {
                let mut found = self
                    .store()
                    .find_by_name(&cx.caller.project_id, name)
                    .await
                    .map_err(|e| internal("finding a container by name", e))?;
                match found.len() {
                    0 => return Err(not_found()),
                    1 => found.remove(0),
                    _ => return Err(BackendError::AmbiguousName(name.clone())),
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
    ) -> Result<(&dyn AgentLink, InstanceId), BackendError> {
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
    ) -> Result<PendingConsole, BackendError> {
        let pending = lock(&self.inner.consoles)
            .remove(token.as_str())
            .ok_or(BackendError::ConsoleTokenRejected)?;
        if pending.container != container
            || &pending.target != target
            || pending.expires <= tokio::time::Instant::now()
        {
            return Err(BackendError::ConsoleTokenRejected);
        }
        Ok(pending)
    }
}

/// A policy refusal as the API reports it: Zun's "policy doesn't allow
/// <rule> to be performed", naming the rule once.
fn policy_error(e: PolicyError) -> BackendError {
    match e {
        PolicyError::Forbidden { action } => BackendError::PolicyNotAuthorized(action.to_string()),
        PolicyError::NotFound => BackendError::PolicyNotAuthorized("this".to_owned()),
    }
}

/// The instance a container is placed on, or why an action cannot run.
fn placed_on(container: &Container, action: &'static str) -> Result<InstanceId, BackendError> {
    match (&container.instance_id, &container.docker_id) {
        (Some(instance), Some(_)) => Ok(instance.clone()),
        _ => Err(BackendError::InvalidState {
            id: container.id,
            status: container.status,
            action,
        }),
    }
}

/// An unexpected failure; the cause goes to the log, not to the client.
fn internal(
    context: &'static str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> BackendError {
    BackendError::Internal {
        context,
        source: Box::new(e),
    }
}

/// An agent's (or the relay's) error, as the API reports it.
fn agent_error(container: &Container, e: &AgentError) -> BackendError {
    match e.kind() {
        ErrorKind::NotFound => BackendError::Unavailable {
            what: format!(
                "container {} on its instance (it may have been removed outside Nest)",
                container.id
            ),
            source: Some(Box::new(e.clone())),
        },
        ErrorKind::Unavailable => BackendError::Unavailable {
            what: format!(
                "the instance of container {} (its agent is not connected)",
                container.id
            ),
            source: Some(Box::new(e.clone())),
        },
        ErrorKind::Timeout => BackendError::Timeout {
            what: format!("the instance of container {}", container.id),
        },
        ErrorKind::Conflict => BackendError::InvalidState {
            id: container.id,
            status: container.status,
            action: "change",
        },
        ErrorKind::Invalid => BackendError::InvalidRequest {
            what: "request",
            reason: e.to_string(),
        },
        _ => internal("talking to the container's agent", e.clone()),
    }
}

/// A database error that is not the caller's doing.
fn db_error(context: &'static str) -> impl FnOnce(DbError) -> BackendError {
    move |e| match e.kind() {
        ErrorKind::Unavailable | ErrorKind::Timeout => BackendError::Unavailable {
            what: "the database".into(),
            source: Some(Box::new(e)),
        },
        _ => internal(context, e),
    }
}

impl ContainerBackend for App {
    fn create<'a>(
        &'a self,
        cx: &'a CallContext,
        request: crate::api::backend::NewContainer,
        run: bool,
    ) -> BackendFuture<'a, crate::api::backend::ContainerInfo> {
        self.create_container(cx, request, run).boxed()
    }

    fn list<'a>(
        &'a self,
        cx: &'a CallContext,
        params: crate::api::backend::ListParams,
    ) -> BackendFuture<'a, crate::api::backend::ContainerPage> {
        self.list_containers(cx, params).boxed()
    }

    fn get<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
        all_projects: bool,
    ) -> BackendFuture<'a, crate::api::backend::ContainerInfo> {
        self.show_container(cx, container, all_projects).boxed()
    }

    fn delete<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
        options: crate::api::backend::DeleteOptions,
    ) -> BackendFuture<'a, ()> {
        self.delete_container(cx, container, options).boxed()
    }

    fn update<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
        patch: crate::api::backend::ContainerPatch,
    ) -> BackendFuture<'a, crate::api::backend::ContainerInfo> {
        self.update_container(cx, container, patch).boxed()
    }

    fn action<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
        action: crate::api::backend::ContainerAction,
    ) -> BackendFuture<'a, ()> {
        self.container_action(cx, container, action).boxed()
    }

    fn execute<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
        request: crate::api::backend::ExecRequest,
    ) -> BackendFuture<'a, crate::api::backend::ExecOutcome> {
        self.execute_in(cx, container, request).boxed()
    }

    fn execute_resize<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
        exec_id: &'a ExecId,
        size: TtySize,
    ) -> BackendFuture<'a, ()> {
        self.resize_exec(cx, container, exec_id, size).boxed()
    }

    fn logs<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
        params: crate::api::backend::LogsParams,
    ) -> BackendFuture<'a, String> {
        self.read_logs(cx, container, params).boxed()
    }

    fn follow_logs<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
        params: crate::api::backend::LogsParams,
    ) -> BackendFuture<'a, crate::api::backend::LogStream> {
        self.stream_logs(cx, container, params).boxed()
    }

    fn attach<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
    ) -> BackendFuture<'a, crate::api::backend::ConsoleTicket> {
        self.attach_ticket(cx, container).boxed()
    }

    fn resize<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
        size: TtySize,
    ) -> BackendFuture<'a, ()> {
        self.resize_attach(cx, container, size).boxed()
    }

    fn top<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
        ps_args: Option<String>,
    ) -> BackendFuture<'a, crate::api::backend::ProcessList> {
        self.top_of(cx, container, ps_args).boxed()
    }

    fn stats<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
    ) -> BackendFuture<'a, crate::api::backend::ContainerStats> {
        self.stats_of(cx, container).boxed()
    }

    fn actions<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
    ) -> BackendFuture<'a, Vec<crate::api::backend::ActionRecord>> {
        self.list_actions(cx, container).boxed()
    }

    fn find_action<'a>(
        &'a self,
        cx: &'a CallContext,
        container: &'a ContainerRef,
        request_id: &'a crate::domain::RequestId,
    ) -> BackendFuture<'a, crate::api::backend::ActionRecord> {
        self.one_action(cx, container, request_id).boxed()
    }

    fn hosts<'a>(
        &'a self,
        cx: &'a CallContext,
    ) -> BackendFuture<'a, Vec<crate::api::backend::HostInfo>> {
        self.list_hosts(cx).boxed()
    }

    fn upload_image<'a>(
        &'a self,
        cx: &'a CallContext,
        name: Option<String>,
        body: crate::api::backend::ImageUpload,
    ) -> BackendFuture<'a, crate::api::backend::StoredImage> {
        self.store_image(cx, name, body).boxed()
    }

    fn list_images<'a>(
        &'a self,
        cx: &'a CallContext,
    ) -> BackendFuture<'a, Vec<crate::api::backend::StoredImage>> {
        self.project_images(cx).boxed()
    }

    fn delete_image<'a>(&'a self, cx: &'a CallContext, id: &'a str) -> BackendFuture<'a, ()> {
        self.remove_image(cx, id).boxed()
    }

    fn open_console<'a>(
        &'a self,
        container: ContainerId,
        token: &'a ConsoleToken,
        target: ConsoleTarget,
    ) -> BackendFuture<'a, Box<dyn crate::api::backend::ConsoleSession>> {
        self.console(container, token, target).boxed()
    }
}
