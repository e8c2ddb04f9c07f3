//! The Zun-compatible HTTP layer, driven through the real router (and, for
//! the console websocket, a real listener on 127.0.0.1:0).
//!
//! The backend and authenticator here are in-memory fakes defined by this
//! test: this is the HTTP layer's own test (parsing, negotiation, status
//! codes, bodies, headers). The fake backend enforces project ownership the
//! way the real one must (another project's container is "not found"); the
//! real proof of isolation is the end-to-end test against the real service.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use nest_service::api::backend::{
    ActionEvent, ActionKind, ActionRecord, BackendError, BackendFuture, CallContext, ConsoleInput,
    ConsoleIo, ConsoleOutput, ConsoleSession, ConsoleTarget, ConsoleTicket, ConsoleToken,
    ContainerAction, ContainerBackend, ContainerInfo, ContainerPage, ContainerPatch, ContainerRef,
    ContainerStats, DeleteOptions, ExecId, ExecOutcome, ExecRequest, ExecResult, HostInfo,
    ListParams, LogStream, LogsParams, NewContainer, ProcessList, SortDir, SortKey, TtySize,
};
use nest_service::api::{ApiConfig, ApiMetrics, ApiState, router};
use nest_service::auth::{AuthError, Authenticate, Caller};
use nest_service::domain::{
    Container, ContainerId, ContainerStatus, Instance, InstanceId, InstanceStatus, ProjectId,
    RequestId, UserId,
};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const ALICE: &str = "token-alice";
const BOB: &str = "token-bob";
const ADMIN: &str = "token-admin";
const KEYSTONE_DOWN: &str = "token-keystone-down";
const HOST: &str = "nest.test:9517";
const KEYSTONE_URI: &str = "http://keystone.test:5000";

// === fake authenticator ===

struct FakeAuth;

fn caller(user: &str, project: &str, role: &str) -> Caller {
    Caller {
        user_id: UserId::parse(user).expect("valid user"),
        project_id: ProjectId::parse(project).expect("valid project"),
        roles: BTreeSet::from([role.to_owned()]),
    }
}

impl Authenticate for FakeAuth {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Caller, AuthError>> {
        Box::pin(async move {
            match token {
                ALICE => Ok(caller("alice", "project-a", "member")),
                BOB => Ok(caller("bob", "project-b", "member")),
                ADMIN => Ok(caller("root", "project-admin", "admin")),
                KEYSTONE_DOWN => Err(AuthError::Unavailable("connection refused".into())),
                _ => Err(AuthError::Invalid),
            }
        })
    }
}

// === fake backend ===

#[derive(Default)]
struct FakeState {
    containers: Vec<Container>,
    actions: Vec<ActionRecord>,
    tokens: HashMap<String, (ContainerId, ConsoleTarget)>,
    fail_next: Option<BackendError>,
    clock: u32,
}

#[derive(Default)]
struct FakeBackend {
    state: Mutex<FakeState>,
}

impl FakeBackend {
    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().expect("fake backend lock")
    }

    fn fail_next(&self, error: BackendError) {
        self.lock().fail_next = Some(error);
    }

    fn container_count(&self) -> usize {
        self.lock().containers.len()
    }

    fn snapshot(&self, id: &str) -> Option<Container> {
        self.lock()
            .containers
            .iter()
            .find(|c| c.id.to_string() == id)
            .cloned()
    }
}

fn info(c: &Container) -> ContainerInfo {
    let addresses = match &c.instance_id {
        Some(_) => BTreeMap::from([("private".to_owned(), "10.0.0.5".to_owned())]),
        None => BTreeMap::new(),
    };
    ContainerInfo {
        container: c.clone(),
        addresses,
        default_network: Some("private".into()),
    }
}

impl FakeState {
    fn take_failure(&mut self) -> Result<(), BackendError> {
        self.fail_next.take().map_or(Ok(()), Err)
    }

    fn now(&mut self) -> String {
        self.clock += 1;
        format!(
            "2025-06-28T03:{:02}:{:02}Z",
            self.clock / 60,
            self.clock % 60
        )
    }

    /// Ownership as the real backend enforces it: a member sees only its
    /// project; an admin resolves single containers in every project.
    fn resolve(&self, caller: &Caller, r: &ContainerRef) -> Result<usize, BackendError> {
        let visible = |c: &Container| caller.is_admin() || c.project_id == caller.project_id;
        let matches: Vec<usize> = self
            .containers
            .iter()
            .enumerate()
            .filter(|(_, c)| visible(c))
            .filter(|(_, c)| match r {
                ContainerRef::Id(id) => c.id == *id,
                ContainerRef::Name(name) => c.name == *name,
            })
            .map(|(i, _)| i)
            .collect();
        match (matches.as_slice(), r) {
            ([i], _) => Ok(*i),
            ([], _) => Err(BackendError::ContainerNotFound(r.clone())),
            (_, ContainerRef::Name(name)) => Err(BackendError::AmbiguousName(name.clone())),
            (_, ContainerRef::Id(_)) => Err(BackendError::ContainerNotFound(r.clone())),
        }
    }

    fn record(&mut self, cx: &CallContext, action: ActionKind, id: ContainerId) {
        let now = self.now();
        self.actions.push(ActionRecord {
            action,
            container_id: id,
            request_id: cx.request_id.clone(),
            user_id: cx.caller.user_id.clone(),
            project_id: cx.caller.project_id.clone(),
            start_time: now.clone(),
            finish_time: Some(now.clone()),
            message: None,
            events: vec![ActionEvent {
                event: format!("compute__do_container_{}", action.as_zun()),
                start_time: now.clone(),
                finish_time: Some(now),
                result: Some("Success".into()),
                traceback: Some("secret traceback".into()),
            }],
        });
    }

    /// The caller's running container, for exec-like calls.
    fn running(
        &self,
        caller: &Caller,
        r: &ContainerRef,
        what: &'static str,
    ) -> Result<usize, BackendError> {
        let i = self.resolve(caller, r)?;
        let c = &self.containers[i];
        if c.status.is_running() {
            Ok(i)
        } else {
            Err(BackendError::InvalidState {
                id: c.id,
                status: c.status,
                action: what,
            })
        }
    }
}

fn ready<'a, T: Send + 'a>(result: Result<T, BackendError>) -> BackendFuture<'a, T> {
    Box::pin(async move { result })
}

impl ContainerBackend for FakeBackend {
    fn create<'a>(
        &'a self,
        cx: &'a CallContext,
        request: NewContainer,
        run: bool,
    ) -> BackendFuture<'a, ContainerInfo> {
        let mut s = self.lock();
        let result = s.take_failure().map(|()| {
            let now = s.now();
            let n = s.containers.len();
            let c = Container {
                id: ContainerId::generate(),
                name: request.name.unwrap_or_else(|| format!("container-{n}")),
                project_id: cx.caller.project_id.clone(),
                user_id: cx.caller.user_id.clone(),
                spec: request.spec,
                status: ContainerStatus::Creating,
                status_reason: None,
                desired_running: run,
                instance_id: Some(
                    InstanceId::parse(&format!("inst-{}", cx.caller.project_id)).expect("valid id"),
                ),
                docker_id: None,
                created_at: now.clone(),
                updated_at: now,
            };
            s.containers.push(c.clone());
            s.record(cx, ActionKind::Create, c.id);
            info(&c)
        });
        ready(result)
    }

    fn list<'a>(&'a self, cx: &'a CallContext, p: ListParams) -> BackendFuture<'a, ContainerPage> {
        let s = &mut *self.lock();
        let result = s.take_failure().and_then(|()| {
            if p.all_projects && !cx.caller.is_admin() {
                return Err(BackendError::PolicyNotAuthorized(
                    "container:get_all_all_projects".into(),
                ));
            }
            let mut rows: Vec<&Container> = s
                .containers
                .iter()
                .filter(|c| p.all_projects || c.project_id == cx.caller.project_id)
                .filter(|c| p.filters.name.as_ref().is_none_or(|n| &c.name == n))
                .filter(|c| p.filters.status.is_none_or(|st| c.status == st))
                .collect();
            if p.sort_key == SortKey::Name {
                rows.sort_by(|a, b| a.name.cmp(&b.name));
            }
            if p.sort_dir == SortDir::Desc {
                rows.reverse();
            }
            let start = match p.marker {
                None => 0,
                Some(m) => {
                    rows.iter()
                        .position(|c| c.id == m)
                        .ok_or(BackendError::MarkerNotFound(m))?
                        + 1
                }
            };
            let rest = &rows[start.min(rows.len())..];
            let limit = usize::try_from(p.limit).expect("small limit");
            Ok(ContainerPage {
                containers: rest.iter().take(limit).map(|c| info(c)).collect(),
                has_more: rest.len() > limit,
            })
        });
        ready(result)
    }

    fn get<'a>(
        &'a self,
        cx: &'a CallContext,
        r: &'a ContainerRef,
        _all: bool,
    ) -> BackendFuture<'a, ContainerInfo> {
        let mut s = self.lock();
        let result = s
            .take_failure()
            .and_then(|()| s.resolve(&cx.caller, r))
            .map(|i| info(&s.containers[i]));
        ready(result)
    }

    fn delete<'a>(
        &'a self,
        cx: &'a CallContext,
        r: &'a ContainerRef,
        o: DeleteOptions,
    ) -> BackendFuture<'a, ()> {
        let mut s = self.lock();
        let result = s
            .take_failure()
            .and_then(|()| s.resolve(&cx.caller, r))
            .and_then(|i| {
                let c = &s.containers[i];
                if !c.status.can_delete(o.force, o.stop) {
                    return Err(BackendError::InvalidState {
                        id: c.id,
                        status: c.status,
                        action: "delete",
                    });
                }
                s.containers.remove(i);
                Ok(())
            });
        ready(result)
    }

    fn update<'a>(
        &'a self,
        cx: &'a CallContext,
        r: &'a ContainerRef,
        patch: ContainerPatch,
    ) -> BackendFuture<'a, ContainerInfo> {
        let mut s = self.lock();
        let result = s
            .take_failure()
            .and_then(|()| s.resolve(&cx.caller, r))
            .map(|i| {
                let c = &mut s.containers[i];
                if let Some(name) = patch.name {
                    c.name = name;
                }
                if let Some(cpu) = patch.cpu {
                    c.spec.cpu = cpu;
                }
                if let Some(memory) = patch.memory_mib {
                    c.spec.memory_mib = memory;
                }
                info(c)
            });
        ready(result)
    }

    fn action<'a>(
        &'a self,
        cx: &'a CallContext,
        r: &'a ContainerRef,
        action: ContainerAction,
    ) -> BackendFuture<'a, ()> {
        let mut s = self.lock();
        let result = s
            .take_failure()
            .and_then(|()| s.resolve(&cx.caller, r))
            .and_then(|i| {
                let c = &mut s.containers[i];
                let (allowed, next, kind, name) = match action {
                    ContainerAction::Start => (
                        c.status.can_start() || c.status == ContainerStatus::Creating,
                        ContainerStatus::Running,
                        ActionKind::Start,
                        "start",
                    ),
                    ContainerAction::Stop { .. } => (
                        c.status.can_stop(),
                        ContainerStatus::Stopped,
                        ActionKind::Stop,
                        "stop",
                    ),
                    ContainerAction::Reboot { .. } => (
                        c.status.can_reboot(),
                        ContainerStatus::Running,
                        ActionKind::Reboot,
                        "reboot",
                    ),
                    ContainerAction::Pause => (
                        c.status.can_pause(),
                        ContainerStatus::Paused,
                        ActionKind::Pause,
                        "pause",
                    ),
                    ContainerAction::Unpause => (
                        c.status.can_unpause(),
                        ContainerStatus::Running,
                        ActionKind::Unpause,
                        "unpause",
                    ),
                    ContainerAction::Kill { .. } => (
                        c.status.can_kill(),
                        ContainerStatus::Stopped,
                        ActionKind::Kill,
                        "kill",
                    ),
                };
                if !allowed {
                    return Err(BackendError::InvalidState {
                        id: c.id,
                        status: c.status,
                        action: name,
                    });
                }
                c.status = next;
                let id = c.id;
                s.record(cx, kind, id);
                Ok(())
            });
        ready(result)
    }

    fn execute<'a>(
        &'a self,
        cx: &'a CallContext,
        r: &'a ContainerRef,
        request: ExecRequest,
    ) -> BackendFuture<'a, ExecOutcome> {
        let mut s = self.lock();
        let result = s
            .take_failure()
            .and_then(|()| s.running(&cx.caller, r, "execute"))
            .map(|i| {
                let container_id = s.containers[i].id;
                let result = if request.run {
                    ExecResult::Finished {
                        output: format!("{}\n", request.command.join(" ")),
                        exit_code: 0,
                    }
                } else {
                    let exec_id = ExecId::parse(&"ab".repeat(32)).expect("valid exec id");
                    let token = request.interactive.then(ConsoleToken::generate);
                    if let Some(t) = &token {
                        s.tokens.insert(
                            t.as_str().to_owned(),
                            (container_id, ConsoleTarget::Exec(exec_id.clone())),
                        );
                    }
                    ExecResult::Created { exec_id, token }
                };
                ExecOutcome {
                    container_id,
                    result,
                }
            });
        ready(result)
    }

    fn execute_resize<'a>(
        &'a self,
        cx: &'a CallContext,
        r: &'a ContainerRef,
        _e: &'a ExecId,
        _s: TtySize,
    ) -> BackendFuture<'a, ()> {
        let mut s = self.lock();
        let result = s
            .take_failure()
            .and_then(|()| s.running(&cx.caller, r, "resize"))
            .map(|_| ());
        ready(result)
    }

    fn logs<'a>(
        &'a self,
        cx: &'a CallContext,
        r: &'a ContainerRef,
        p: LogsParams,
    ) -> BackendFuture<'a, String> {
        let mut s = self.lock();
        let result = s
            .take_failure()
            .and_then(|()| s.resolve(&cx.caller, r))
            .map(|_| format!("hello\nworld tail={:?} since={:?}\n", p.tail, p.since));
        ready(result)
    }

    fn follow_logs<'a>(
        &'a self,
        cx: &'a CallContext,
        r: &'a ContainerRef,
        _p: LogsParams,
    ) -> BackendFuture<'a, LogStream> {
        let mut s = self.lock();
        let result = s
            .take_failure()
            .and_then(|()| s.resolve(&cx.caller, r))
            .map(|_| {
                let chunks = vec![
                    Ok(Bytes::from_static(b"line 1\n")),
                    Ok(Bytes::from_static(b"line 2\n")),
                ];
                futures_util::stream::iter(chunks).boxed()
            });
        ready(result)
    }

    fn attach<'a>(
        &'a self,
        cx: &'a CallContext,
        r: &'a ContainerRef,
    ) -> BackendFuture<'a, ConsoleTicket> {
        let mut s = self.lock();
        let result = s
            .take_failure()
            .and_then(|()| s.running(&cx.caller, r, "attach"))
            .and_then(|i| {
                let c = &s.containers[i];
                if !c.spec.interactive {
                    return Err(BackendError::NotInteractive(c.id));
                }
                let ticket = ConsoleTicket {
                    container_id: c.id,
                    token: ConsoleToken::generate(),
                };
                s.tokens.insert(
                    ticket.token.as_str().to_owned(),
                    (ticket.container_id, ConsoleTarget::Attach),
                );
                Ok(ticket)
            });
        ready(result)
    }

    fn resize<'a>(
        &'a self,
        cx: &'a CallContext,
        r: &'a ContainerRef,
        _size: TtySize,
    ) -> BackendFuture<'a, ()> {
        let mut s = self.lock();
        let result = s
            .take_failure()
            .and_then(|()| s.running(&cx.caller, r, "resize"))
            .map(|_| ());
        ready(result)
    }

    fn top<'a>(
        &'a self,
        cx: &'a CallContext,
        r: &'a ContainerRef,
        ps_args: Option<String>,
    ) -> BackendFuture<'a, ProcessList> {
        let mut s = self.lock();
        let result = s
            .take_failure()
            .and_then(|()| s.running(&cx.caller, r, "top"))
            .map(|_| ProcessList {
                titles: vec!["PID".into(), "CMD".into()],
                processes: vec![vec!["1".into(), ps_args.unwrap_or_else(|| "sleep".into())]],
            });
        ready(result)
    }

    fn stats<'a>(
        &'a self,
        cx: &'a CallContext,
        r: &'a ContainerRef,
    ) -> BackendFuture<'a, ContainerStats> {
        let mut s = self.lock();
        let result = s
            .take_failure()
            .and_then(|()| s.running(&cx.caller, r, "stats"))
            .map(|i| ContainerStats {
                name: s.containers[i].name.clone(),
                cpu_percent: 1.5,
                memory_usage_mib: 10.0,
                memory_limit_mib: 100.0,
                memory_percent: 10.0,
                block_read_bytes: 1,
                block_write_bytes: 2,
                net_rx_bytes: 3,
                net_tx_bytes: 4,
            });
        ready(result)
    }

    fn actions<'a>(
        &'a self,
        cx: &'a CallContext,
        r: &'a ContainerRef,
    ) -> BackendFuture<'a, Vec<ActionRecord>> {
        let mut s = self.lock();
        let result = s
            .take_failure()
            .and_then(|()| s.resolve(&cx.caller, r))
            .map(|i| {
                let id = s.containers[i].id;
                s.actions
                    .iter()
                    .filter(|a| a.container_id == id)
                    .cloned()
                    .collect()
            });
        ready(result)
    }

    fn find_action<'a>(
        &'a self,
        cx: &'a CallContext,
        r: &'a ContainerRef,
        request_id: &'a RequestId,
    ) -> BackendFuture<'a, ActionRecord> {
        let mut s = self.lock();
        let result = s
            .take_failure()
            .and_then(|()| s.resolve(&cx.caller, r))
            .and_then(|i| {
                let id = s.containers[i].id;
                s.actions
                    .iter()
                    .find(|a| a.container_id == id && &a.request_id == request_id)
                    .cloned()
                    .ok_or_else(|| BackendError::ActionNotFound(request_id.clone()))
            });
        ready(result)
    }

    fn hosts<'a>(&'a self, cx: &'a CallContext) -> BackendFuture<'a, Vec<HostInfo>> {
        let mut s = self.lock();
        let result = s.take_failure().map(|()| {
            let project = cx.caller.project_id.clone();
            let id = InstanceId::parse(&format!("inst-{project}")).expect("valid id");
            let placed: Vec<&Container> = s
                .containers
                .iter()
                .filter(|c| c.instance_id.as_ref() == Some(&id))
                .collect();
            vec![HostInfo {
                instance: Instance {
                    id,
                    project_id: project,
                    driver: "local".into(),
                    status: InstanceStatus::Ready,
                    status_reason: None,
                    vcpus: 4.0,
                    memory_mib: 4096,
                    addresses: BTreeMap::from([("private".to_owned(), "10.0.0.5".to_owned())]),
                    created_at: "2025-06-28T03:00:00Z".into(),
                    empty_since: None,
                },
                total_containers: u32::try_from(placed.len()).expect("few containers"),
                cpu_used: placed.iter().map(|c| c.spec.cpu).sum(),
                memory_used_mib: placed.iter().map(|c| c.spec.memory_mib).sum(),
            }]
        });
        ready(result)
    }

    fn open_console<'a>(
        &'a self,
        container: ContainerId,
        token: &'a ConsoleToken,
        target: ConsoleTarget,
    ) -> BackendFuture<'a, Box<dyn ConsoleSession>> {
        let mut s = self.lock();
        // Single use: the token is burned whether or not it matches.
        let result = match s.tokens.remove(token.as_str()) {
            Some((c, t)) if c == container && t == target => {
                Ok(Box::new(EchoSession) as Box<dyn ConsoleSession>)
            }
            _ => Err(BackendError::ConsoleTokenRejected),
        };
        ready(result)
    }
}

/// A console that echoes input and reports resizes.
struct EchoSession;

impl ConsoleSession for EchoSession {
    fn run(self: Box<Self>, mut io: ConsoleIo) -> BoxFuture<'static, Result<(), BackendError>> {
        Box::pin(async move {
            while let Some(input) = io.input.recv().await {
                let out = match input {
                    ConsoleInput::Stdin(b) => b,
                    ConsoleInput::Resize(TtySize { width, height }) => {
                        Bytes::from(format!("resized {width}x{height}"))
                    }
                    ConsoleInput::CloseStdin => continue,
                };
                if io.output.send(ConsoleOutput::Tty(out)).await.is_err() {
                    break;
                }
            }
            Ok(())
        })
    }
}

// === harness ===

struct Harness {
    app: Router,
    backend: Arc<FakeBackend>,
}

fn harness() -> Harness {
    let backend = Arc::new(FakeBackend::default());
    let config = ApiConfig {
        public_url: None,
        keystone_uri: Some(KEYSTONE_URI.into()),
        agent_binary: None,
    };
    let state = ApiState::new(
        backend.clone(),
        Arc::new(FakeAuth),
        config,
        ApiMetrics::new(),
    );
    Harness {
        app: router(state),
        backend,
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a Zun error body and returns its single error.
    fn zun_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {:?}", self.body);
        assert_eq!(self.header("content-type"), Some("application/json"));
        let body = self.json();
        let shared: nest_api_types::zun::ErrorBody =
            serde_json::from_value(body.clone()).expect("the body is an ErrorBody");
        assert_eq!(serde_json::to_value(&shared).ok(), Some(body.clone()));
        let errors = body["errors"].as_array().expect("errors array");
        assert_eq!(errors.len(), 1);
        let e = errors[0].clone();
        assert_eq!(e["code"], code, "{e}");
        assert_eq!(e["status"], status);
        assert_eq!(
            e["request_id"].as_str(),
            self.header("x-openstack-request-id")
        );
        assert!(e["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(e["detail"].as_str().is_some_and(|t| !t.is_empty()));
        assert_eq!(e["links"], json!([]));
        e
    }
}

struct Call {
    builder: axum::http::request::Builder,
    body: Body,
}

fn call(method: &str, uri: &str) -> Call {
    Call {
        builder: Request::builder()
            .method(method)
            .uri(uri)
            .header("host", HOST),
        body: Body::empty(),
    }
}

impl Call {
    fn token(mut self, token: &str) -> Self {
        self.builder = self.builder.header("x-auth-token", token);
        self
    }
    fn version(mut self, version: &str) -> Self {
        self.builder = self.builder.header("openstack-api-version", version);
        self
    }
    fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }
    fn json(mut self, body: &Value) -> Self {
        self.builder = self.builder.header("content-type", "application/json");
        self.body = Body::from(body.to_string());
        self
    }
    fn raw(mut self, content_type: &str, body: &str) -> Self {
        self.builder = self.builder.header("content-type", content_type);
        self.body = Body::from(body.to_owned());
        self
    }
    async fn send(self, app: &Router) -> Reply {
        let request = self.builder.body(self.body).expect("valid request");
        let response = app
            .clone()
            .oneshot(request)
            .await
            .expect("router is infallible");
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("body reads");
        let reply = Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        };
        let request_id = reply.header("x-openstack-request-id").unwrap_or_default();
        assert!(
            RequestId::from_client(request_id).is_some(),
            "request id on every response: {:?}",
            reply.headers
        );
        reply
    }
}

fn zunclient_body(name: &str) -> Value {
    json!({
        "image": "cirros:latest", "name": name, "command": ["sleep", "10000"],
        "cpu": 0.1, "memory": "100", "environment": {"A": "1"}, "labels": {},
        "hints": {}, "nets": [], "mounts": [], "auto_remove": false,
        "image_driver": "docker", "restart_policy": {"Name": "no"}, "workdir": "/",
        "interactive": false,
    })
}

async fn create(h: &Harness, token: &str, body: &Value) -> Value {
    let reply = call("POST", "/v1/containers")
        .token(token)
        .version("container 1.40")
        .json(body)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    reply.json()
}

async fn start(h: &Harness, token: &str, uuid: &str) {
    let reply = call("POST", &format!("/v1/containers/{uuid}/start"))
        .token(token)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
}

// === tests ===

#[tokio::test]
async fn version_documents_are_public_and_shaped_like_zuns() {
    let h = harness();
    let root = call("GET", "/").send(&h.app).await;
    assert_eq!(root.status, StatusCode::OK);
    assert_eq!(
        root.header("openstack-api-version"),
        None,
        "no microversion headers on /"
    );
    let body = root.json();
    assert_eq!(body["name"], "OpenStack Zun API");
    let v = &body["versions"][0];
    assert_eq!(v["id"], "v1");
    assert_eq!(v["status"], "CURRENT");
    assert_eq!(
        (v["min_version"].as_str(), v["max_version"].as_str()),
        (Some("1.1"), Some("1.40"))
    );
    assert_eq!(
        v["links"],
        json!([{"href": "http://nest.test:9517/v1/", "rel": "self"}])
    );
    assert_eq!(body["default_version"], *v);

    let v1 = call("GET", "/v1/").send(&h.app).await;
    assert_eq!(v1.status, StatusCode::OK);
    assert_eq!(v1.header("openstack-api-version"), Some("container 1.1"));
    let body = v1.json();
    assert_eq!(body["id"], "v1");
    assert_eq!(
        body["media_types"][0]["type"],
        "application/vnd.openstack.zun.v1+json"
    );
    assert_eq!(
        body["containers"],
        json!([{"href": "http://nest.test:9517/v1/containers/", "rel": "self"},
               {"href": "http://nest.test:9517/containers/", "rel": "bookmark"}])
    );
    assert_eq!(body["links"][1]["rel"], "describedby");
}

#[tokio::test]
async fn missing_or_invalid_token_gets_keystones_401_without_microversion_headers() {
    let h = harness();
    for request in [
        call("GET", "/v1/containers"),
        call("GET", "/v1/containers").token("wrong"),
        call("GET", "/v1/nope"),
    ] {
        let reply = request.send(&h.app).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Keystone uri=\"http://keystone.test:5000\"")
        );
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.header("openstack-api-version"), None);
        assert_eq!(
            reply.json(),
            json!({"error": {"code": 401, "title": "Unauthorized",
                             "message": "The request you have made requires authentication."}})
        );
    }
    let reply = call("GET", "/v1/containers")
        .token(KEYSTONE_DOWN)
        .send(&h.app)
        .await;
    let e = reply.zun_error(503, "container.service-unavailable");
    assert!(
        !e["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("connection refused"),
        "cause stays in the log"
    );
}

#[tokio::test]
async fn request_id_is_echoed_and_on_errors() {
    let h = harness();
    let mine = "req-11111111-2222-3333-4444-555555555555";
    let reply = call("GET", "/v1/containers")
        .token(ALICE)
        .header("x-openstack-request-id", mine)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("x-openstack-request-id"), Some(mine));
    let reply = call("GET", "/v1/containers")
        .token(ALICE)
        .header("x-openstack-request-id", "req-not-a-uuid")
        .send(&h.app)
        .await;
    assert_ne!(
        reply.header("x-openstack-request-id"),
        Some("req-not-a-uuid"),
        "ill-shaped ids are replaced"
    );
    // 404 of an unknown route and 405 of a wrong method, both in Zun's format.
    let reply = call("GET", "/v1/nothing/here")
        .token(ALICE)
        .send(&h.app)
        .await;
    reply.zun_error(404, "container.not-found");
    let reply = call("PUT", "/v1/containers")
        .token(ALICE)
        .send(&h.app)
        .await;
    reply.zun_error(405, "container.method-not-allowed");
}

#[tokio::test]
async fn microversions_negotiate_and_echo() {
    let h = harness();
    let get = |v: Option<&'static str>| {
        let c = call("GET", "/v1/containers").token(ALICE);
        match v {
            Some(v) => c.version(v),
            None => c,
        }
    };
    let reply = get(None).send(&h.app).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("openstack-api-version"), Some("container 1.1"));
    assert_eq!(
        reply.header("openstack-api-minimum-version"),
        Some("container 1.1")
    );
    assert_eq!(
        reply.header("openstack-api-maximum-version"),
        Some("container 1.40")
    );
    assert_eq!(reply.header("vary"), Some("OpenStack-API-Version"));
    let reply = get(Some("container 1.12")).send(&h.app).await;
    assert_eq!(
        reply.header("openstack-api-version"),
        Some("container 1.12")
    );
    let reply = get(Some("container latest")).send(&h.app).await;
    assert_eq!(
        reply.header("openstack-api-version"),
        Some("container 1.40")
    );

    let reply = get(Some("container 1.41")).send(&h.app).await;
    let e = reply.zun_error(406, "container.not-acceptable");
    assert!(
        e["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("[container 1.1, container 1.40]")
    );
    assert_eq!(
        reply.header("openstack-api-version"),
        Some("container 1.41")
    );
    assert_eq!(
        reply.header("openstack-api-maximum-version"),
        Some("container 1.40")
    );
    for bad in ["compute 2.1", "container 2.0", "container one"] {
        let reply = get(Some(bad)).send(&h.app).await;
        reply.zun_error(406, "container.not-acceptable");
        assert_eq!(
            reply.header("openstack-api-minimum-version"),
            Some("container 1.1")
        );
    }
    // A route that appeared in 1.4 is refused below it; errors keep the headers.
    let reply = call("GET", "/v1/hosts")
        .token(ALICE)
        .version("container 1.3")
        .send(&h.app)
        .await;
    reply.zun_error(406, "container.not-acceptable");
    assert_eq!(reply.header("openstack-api-version"), Some("container 1.3"));
}

#[tokio::test]
async fn create_show_and_list_paginate_with_next() {
    let h = harness();
    let mut body = zunclient_body("web-1");
    body["ports"] = json!(["pub:222:22", "8080:80/udp"]);
    let reply = call("POST", "/v1/containers?run=true")
        .token(ALICE)
        .version("container 1.40")
        .json(&body)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let c = reply.json();
    let uuid = c["uuid"].as_str().expect("uuid").to_owned();
    assert_eq!(
        reply.header("location"),
        Some(format!("http://nest.test:9517/v1/containers/{uuid}").as_str())
    );
    assert_eq!(c["status"], "Creating");
    assert_eq!(c["memory"], "100");
    assert_eq!(c["cpu"], 0.1);
    assert_eq!(c["command"], json!(["sleep", "10000"]));
    assert_eq!(
        c["restart_policy"],
        json!({"Name": "no", "MaximumRetryCount": "0"})
    );
    assert_eq!(c["project_id"], "project-a");
    assert_eq!(c["host"], "inst-project-a");
    assert_eq!(c["ports"], json!([22, 80]));
    assert_eq!(c["published_ports"], json!(["10.0.0.5:8080/udp"]));
    assert_eq!(c["port_bindings"], json!(["pub:222:22/tcp", "8080:80/udp"]));
    assert_eq!(c["addresses"]["private"][0]["addr"], "10.0.0.5");
    assert_eq!(c["addresses"]["private"][0]["version"], 4);
    assert_eq!(c["created_at"], "2025-06-28 03:00:01+00:00");
    assert_eq!(
        c["links"],
        json!([{"href": format!("http://nest.test:9517/v1/containers/{uuid}"), "rel": "self"},
               {"href": format!("http://nest.test:9517/containers/{uuid}"), "rel": "bookmark"}])
    );
    // What osc will read: the shared type holds the whole body, no more.
    let view: nest_api_types::zun::ContainerView =
        serde_json::from_value(c.clone()).expect("the body is a ContainerView");
    assert_eq!(view.uuid, uuid);
    assert_eq!(serde_json::to_value(&view).ok(), Some(c.clone()));

    for ident in [uuid.as_str(), "web-1"] {
        let reply = call("GET", &format!("/v1/containers/{ident}?all_projects=False"))
            .token(ALICE)
            .send(&h.app)
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json()["uuid"], uuid.as_str());
    }
    create(&h, ALICE, &zunclient_body("web-2")).await;
    create(&h, ALICE, &zunclient_body("web-3")).await;
    create(&h, BOB, &zunclient_body("other")).await;

    let reply = call("GET", "/v1/containers?limit=2")
        .token(ALICE)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let page = reply.json();
    let names: Vec<&str> = page["containers"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["web-1", "web-2"]);
    let next = page["next"].as_str().expect("a full page has next");
    let second_uuid = page["containers"][1]["uuid"].as_str().expect("uuid");
    assert!(
        next.starts_with("http://nest.test:9517/v1/containers?limit=2&sort_key=id&sort_dir=asc"),
        "{next}"
    );
    assert!(next.ends_with(&format!("marker={second_uuid}")), "{next}");
    let path = next.trim_start_matches("http://nest.test:9517");
    let reply = call("GET", path).token(ALICE).send(&h.app).await;
    let page = reply.json();
    assert_eq!(page["containers"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["containers"][0]["name"], "web-3");
    assert_eq!(page["next"], Value::Null);

    // Filters, sorting, and zunclient's spelling of paths.
    let reply = call("GET", "/containers/?name=web-2&sort_key=name&sort_dir=desc")
        .token(ALICE)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["containers"][0]["name"], "web-2");
    let reply = call("GET", "/v1/containers?all_projects=1")
        .token(ALICE)
        .send(&h.app)
        .await;
    reply.zun_error(403, "container.policy-not-authorized");
    let reply = call("GET", "/v1/containers?all_projects=1")
        .token(ADMIN)
        .send(&h.app)
        .await;
    assert_eq!(reply.json()["containers"].as_array().map(Vec::len), Some(4));
}

#[tokio::test]
async fn bad_list_parameters_are_refused() {
    let h = harness();
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("sort_dir=up", "sort_dir"),
        ("sort_key=secret", "sort_key"),
        ("marker=nope", "marker"),
    ] {
        let reply = call("GET", &format!("/v1/containers?{query}"))
            .token(ALICE)
            .send(&h.app)
            .await;
        let e = reply.zun_error(400, "container.invalid-parameter-value");
        assert!(
            e["title"].as_str().unwrap_or_default().contains(param),
            "{e}"
        );
    }
    let reply = call("GET", "/v1/containers?bogus=1&also=2")
        .token(ALICE)
        .send(&h.app)
        .await;
    let e = reply.zun_error(400, "container.invalid-parameter-value");
    assert_eq!(e["title"], "unknown parameters: also, bogus");
    let marker = ContainerId::generate();
    let reply = call("GET", &format!("/v1/containers?marker={marker}"))
        .token(ALICE)
        .send(&h.app)
        .await;
    reply.zun_error(404, "container.container-not-found");
}

#[tokio::test]
async fn unknown_field_is_rejected_in_zun_format_and_nothing_is_created() {
    let h = harness();
    let mut body = zunclient_body("x1");
    body["foo"] = json!(1);
    let reply = call("POST", "/v1/containers")
        .token(ALICE)
        .version("container 1.40")
        .json(&body)
        .send(&h.app)
        .await;
    let e = reply.zun_error(400, "container.schema-validation-error");
    assert_eq!(
        e["title"],
        "additional properties are not allowed ('foo' was unexpected)"
    );
    assert_eq!(h.backend.container_count(), 0);

    let reply = call("POST", "/v1/containers?start=1")
        .token(ALICE)
        .json(&zunclient_body("x2"))
        .send(&h.app)
        .await;
    reply.zun_error(400, "container.invalid-parameter-value");
    assert_eq!(h.backend.container_count(), 0);
}

#[tokio::test]
async fn malformed_bodies_and_media_types_are_refused() {
    let h = harness();
    let reply = call("POST", "/v1/containers")
        .token(ALICE)
        .raw("application/json", "{\"image\": ")
        .send(&h.app)
        .await;
    let e = reply.zun_error(400, "container.invalid-parameter-value");
    assert!(
        e["detail"].as_str().unwrap_or_default().contains("EOF"),
        "{e}"
    );
    let reply = call("POST", "/v1/containers")
        .token(ALICE)
        .raw("text/plain", "{}")
        .send(&h.app)
        .await;
    reply.zun_error(415, "container.unsupported-media-type");
    let reply = call("POST", "/v1/containers")
        .token(ALICE)
        .raw("application/json", "[1]")
        .send(&h.app)
        .await;
    reply.zun_error(400, "container.schema-validation-error");
    let reply = call("POST", "/v1/containers")
        .token(ALICE)
        .json(&json!({"name": "abc"}))
        .send(&h.app)
        .await;
    let e = reply.zun_error(400, "container.schema-validation-error");
    assert!(
        e["title"]
            .as_str()
            .unwrap_or_default()
            .contains("'image' is a required property")
    );
    let reply = call("POST", "/v1/containers")
        .token(ALICE)
        .version("container 1.40")
        .json(&json!({"image": "busybox", "cpu": "lots"}))
        .send(&h.app)
        .await;
    let e = reply.zun_error(400, "container.schema-validation-error");
    assert!(e["title"].as_str().unwrap_or_default().contains("'cpu'"));
    let reply = call("POST", "/v1/containers")
        .token(ALICE)
        .version("container 1.40")
        .json(&json!({"image": "busybox", "environment": {"A": 1}}))
        .send(&h.app)
        .await;
    let e = reply.zun_error(400, "container.schema-validation-error");
    assert!(
        e["title"]
            .as_str()
            .unwrap_or_default()
            .contains("environment"),
        "{e}"
    );
    let reply = call("POST", "/v1/containers")
        .token(ALICE)
        .version("container 1.39")
        .json(&json!({"image": "busybox", "entrypoint": ["sh"]}))
        .send(&h.app)
        .await;
    let e = reply.zun_error(400, "container.invalid-param-in-version");
    assert!(e["title"].as_str().unwrap_or_default().contains("1.40"));
    let reply = call("POST", "/v1/containers")
        .token(ALICE)
        .version("container 1.40")
        .json(&json!({"image": "busybox", "mounts": [{"source": "a", "destination": "/b"}]}))
        .send(&h.app)
        .await;
    reply.zun_error(400, "container.unsupported-parameter");
    let reply = call("POST", "/v1/containers")
        .token(ALICE)
        .version("container 1.40")
        .json(&json!({"image": "busybox", "privileged": false}))
        .send(&h.app)
        .await;
    reply.zun_error(403, "container.policy-not-authorized");
    assert_eq!(h.backend.container_count(), 0);
}

#[tokio::test]
async fn each_backend_error_kind_renders_in_zun_format() {
    let h = harness();
    let id = ContainerId::generate();
    let cases: Vec<(BackendError, u16, &str)> = vec![
        (
            BackendError::InvalidRequest {
                what: "hint",
                reason: "no such flavor".into(),
            },
            400,
            "container.invalid-parameter-value",
        ),
        (
            BackendError::OverQuota("containers".into()),
            403,
            "container.over-quota",
        ),
        (
            BackendError::ContainerNotFound(ContainerRef::Id(id)),
            404,
            "container.container-not-found",
        ),
        (
            BackendError::InvalidState {
                id,
                status: ContainerStatus::Running,
                action: "delete",
            },
            409,
            "container.invalid-state-exception",
        ),
        (
            BackendError::Unavailable {
                what: "the relay".into(),
                source: Some("refused".into()),
            },
            503,
            "container.service-unavailable",
        ),
        (
            BackendError::Timeout {
                what: "agent command".into(),
            },
            504,
            "container.timeout",
        ),
        (
            BackendError::Internal {
                context: "saving",
                source: "disk on fire".into(),
            },
            500,
            "container.internal-error",
        ),
    ];
    for (error, status, code) in cases {
        let message = error.to_string();
        h.backend.fail_next(error);
        let reply = call("GET", "/v1/containers")
            .token(ALICE)
            .version("container 1.40")
            .send(&h.app)
            .await;
        let e = reply.zun_error(status, code);
        assert_eq!(
            reply.header("openstack-api-version"),
            Some("container 1.40"),
            "microversion headers on errors"
        );
        let detail = e["detail"].as_str().unwrap_or_default();
        if status == 500 {
            assert_eq!(e["title"], "internal server error");
            assert!(
                !detail.contains("disk on fire") && !detail.contains("saving"),
                "{detail}"
            );
            assert!(detail.contains(reply.header("x-openstack-request-id").unwrap_or("?")));
        } else {
            assert_eq!(e["title"], message.as_str());
            assert!(
                !detail.contains("refused"),
                "5xx causes stay in the log: {detail}"
            );
        }
    }
}

#[tokio::test]
async fn another_projects_container_is_not_found_on_every_route() {
    let h = harness();
    let c = create(
        &h,
        ALICE,
        &json!({"image": "busybox", "name": "secret", "interactive": true}),
    )
    .await;
    let uuid = c["uuid"].as_str().expect("uuid").to_owned();
    start(&h, ALICE, &uuid).await;
    let before = h.backend.snapshot(&uuid);
    let request_id = "req-00000000-0000-0000-0000-000000000000";
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", String::new(), None),
        ("PATCH", String::new(), Some(json!({"cpu": 2}))),
        ("DELETE", "?force=True".into(), None),
        ("POST", "/start".into(), None),
        ("POST", "/stop?timeout=10".into(), None),
        ("POST", "/reboot?timeout=10".into(), None),
        ("POST", "/pause".into(), None),
        ("POST", "/unpause".into(), None),
        ("POST", "/kill?signal=None".into(), None),
        ("POST", "/execute?command=%22ls%22".into(), None),
        (
            "POST",
            format!("/execute_resize?exec_id={}&w=80&h=24", "a".repeat(64)),
            None,
        ),
        (
            "GET",
            "/logs?stdout=True&stderr=True&timestamps=False&tail=all".into(),
            None,
        ),
        ("GET", "/logs?follow=true".into(), None),
        ("GET", "/attach".into(), None),
        ("POST", "/resize?w=80&h=24".into(), None),
        ("GET", "/top?ps_args=None".into(), None),
        ("GET", "/stats".into(), None),
        ("GET", "/container_actions".into(), None),
        ("GET", format!("/container_actions/{request_id}"), None),
    ];
    for ident in [uuid.as_str(), "secret"] {
        for (method, suffix, body) in &routes {
            let mut request = call(method, &format!("/v1/containers/{ident}{suffix}"))
                .token(BOB)
                .version("container 1.40");
            if let Some(body) = body {
                request = request.json(body);
            }
            let reply = request.send(&h.app).await;
            assert_eq!(
                reply.status,
                StatusCode::NOT_FOUND,
                "{method} {suffix}: {:?}",
                reply.body
            );
            reply.zun_error(404, "container.container-not-found");
        }
    }
    assert_eq!(h.backend.snapshot(&uuid), before, "nothing changed");
    // The owner still sees it; an admin resolves it across projects.
    let reply = call("GET", &format!("/v1/containers/{uuid}"))
        .token(ALICE)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = call("GET", &format!("/v1/containers/{uuid}"))
        .token(ADMIN)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn lifecycle_actions_answer_202_null_and_are_recorded() {
    let h = harness();
    let c = create(&h, ALICE, &zunclient_body("life")).await;
    let uuid = c["uuid"].as_str().expect("uuid").to_owned();
    let mut request_ids = Vec::new();
    for (path, status) in [
        ("start", "Running"),
        ("pause", "Paused"),
        ("unpause", "Running"),
        ("kill?signal=None", "Stopped"),
        ("start", "Running"),
        ("stop?timeout=10", "Stopped"),
    ] {
        // Action POSTs as zunclient sends them: JSON content type, no body.
        let reply = call("POST", &format!("/v1/containers/{uuid}/{path}"))
            .token(ALICE)
            .header("content-type", "application/json")
            .send(&h.app)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::ACCEPTED,
            "{path}: {:?}",
            reply.body
        );
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(&reply.body[..], b"null");
        request_ids.push(
            reply
                .header("x-openstack-request-id")
                .unwrap_or_default()
                .to_owned(),
        );
        let shown = call("GET", &format!("/v1/containers/{uuid}"))
            .token(ALICE)
            .send(&h.app)
            .await
            .json();
        assert_eq!(shown["status"], status);
    }
    // Wrong state is a 409, and the status is unchanged.
    let reply = call("POST", &format!("/v1/containers/{uuid}/pause"))
        .token(ALICE)
        .send(&h.app)
        .await;
    let e = reply.zun_error(409, "container.invalid-state-exception");
    assert!(
        e["title"]
            .as_str()
            .unwrap_or_default()
            .contains("in Stopped state")
    );
    let reply = call(
        "POST",
        &format!("/v1/containers/{uuid}/kill?signal=NOTASIG!"),
    )
    .token(ALICE)
    .send(&h.app)
    .await;
    reply.zun_error(400, "container.invalid-parameter-value");

    let reply = call("GET", &format!("/v1/containers/{uuid}/container_actions"))
        .token(ALICE)
        .send(&h.app)
        .await;
    let actions = reply.json();
    let list = actions["containerActions"].as_array().expect("list");
    assert_eq!(list.len(), 7);
    assert_eq!(list[0]["action"], "create");
    assert_eq!(list[1]["action"], "start");
    assert_eq!(list[1]["request_id"], request_ids[0].as_str());
    assert_eq!(
        list[1]["start_time"].as_str().map(str::len),
        Some(26),
        "YYYY-MM-DDTHH:MM:SS.ffffff"
    );
    assert!(list[1].get("events").is_none());
    let reply = call(
        "GET",
        &format!("/v1/containers/{uuid}/container_actions/{}", request_ids[0]),
    )
    .token(ALICE)
    .send(&h.app)
    .await;
    let one = reply.json();
    assert_eq!(one["action"], "start");
    assert_eq!(one["events"][0]["result"], "Success");
    assert!(
        one["events"][0].get("traceback").is_none(),
        "tracebacks are for admins"
    );
    let reply = call(
        "GET",
        &format!("/v1/containers/{uuid}/container_actions/{}", request_ids[0]),
    )
    .token(ADMIN)
    .send(&h.app)
    .await;
    assert_eq!(reply.json()["events"][0]["traceback"], "secret traceback");
    let missing = "req-99999999-0000-0000-0000-000000000000";
    let reply = call(
        "GET",
        &format!("/v1/containers/{uuid}/container_actions/{missing}"),
    )
    .token(ALICE)
    .send(&h.app)
    .await;
    reply.zun_error(404, "container.resource-not-found");

    // PATCH, then delete (octet-stream, as zunclient sends it) and 404 after.
    let reply = call("PATCH", &format!("/v1/containers/{uuid}"))
        .token(ALICE)
        .version("container 1.40")
        .json(&json!({"cpu": 0.2, "memory": "200", "name": "renamed"}))
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let patched = reply.json();
    assert_eq!(
        (
            patched["cpu"].clone(),
            patched["memory"].clone(),
            patched["name"].clone()
        ),
        (json!(0.2), json!("200"), json!("renamed"))
    );
    let reply = call("PATCH", &format!("/v1/containers/{uuid}"))
        .token(ALICE)
        .version("container 1.13")
        .json(&json!({"name": "again"}))
        .send(&h.app)
        .await;
    reply.zun_error(400, "container.invalid-param-in-version");
    let reply = call("PATCH", &format!("/v1/containers/{uuid}"))
        .token(ALICE)
        .json(&json!({"image": "other"}))
        .send(&h.app)
        .await;
    reply.zun_error(400, "container.schema-validation-error");
    let reply = call(
        "DELETE",
        &format!("/v1/containers/{uuid}?force=False&stop=False&all_projects=False"),
    )
    .token(ALICE)
    .version("container 1.40")
    .header("content-type", "application/octet-stream")
    .send(&h.app)
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(reply.body.is_empty());
    let reply = call("GET", &format!("/v1/containers/{uuid}"))
        .token(ALICE)
        .send(&h.app)
        .await;
    reply.zun_error(404, "container.container-not-found");
    let reply = call("DELETE", &format!("/v1/containers/{uuid}?stop=True"))
        .token(ALICE)
        .version("container 1.11")
        .send(&h.app)
        .await;
    reply.zun_error(400, "container.invalid-param-in-version");
}

#[tokio::test]
async fn ambiguous_names_conflict() {
    let h = harness();
    create(&h, ALICE, &zunclient_body("twin")).await;
    create(&h, ALICE, &zunclient_body("twin")).await;
    let reply = call("GET", "/v1/containers/twin")
        .token(ALICE)
        .send(&h.app)
        .await;
    reply.zun_error(409, "container.conflict");
}

#[tokio::test]
async fn exec_logs_top_and_stats_answer_zuns_shapes() {
    let h = harness();
    let c = create(&h, ALICE, &zunclient_body("busy")).await;
    let uuid = c["uuid"].as_str().expect("uuid").to_owned();
    let reply = call(
        "POST",
        &format!("/v1/containers/{uuid}/execute?command=%22ls%22"),
    )
    .token(ALICE)
    .send(&h.app)
    .await;
    reply.zun_error(409, "container.invalid-state-exception");
    start(&h, ALICE, &uuid).await;

    // zunclient: the command in the query, each word double-quoted.
    let reply = call(
        "POST",
        &format!("/v1/containers/{uuid}/execute?command=%22echo%22%20%22a%20b%22"),
    )
    .token(ALICE)
    .send(&h.app)
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({"output": "echo a b\n", "exit_code": 0, "exec_id": null, "proxy_url": null})
    );
    // tempest: the command in a JSON body.
    let reply = call("POST", &format!("/v1/containers/{uuid}/execute"))
        .token(ALICE)
        .json(&json!({"command": "echo hello"}))
        .send(&h.app)
        .await;
    assert_eq!(reply.json()["output"], "echo hello\n");
    let reply = call(
        "POST",
        &format!("/v1/containers/{uuid}/execute?command=%22sh%22&interactive=True&run=False"),
    )
    .token(ALICE)
    .send(&h.app)
    .await;
    let exec = reply.json();
    let exec_id = exec["exec_id"].as_str().expect("exec id");
    let url = exec["proxy_url"].as_str().expect("proxy url");
    assert!(
        url.starts_with(&format!(
            "ws://nest.test:9517/v1/containers/{uuid}/exec/ws?token="
        )),
        "{url}"
    );
    assert!(url.ends_with(&format!("&exec_id={exec_id}")));
    let reply = call(
        "POST",
        &format!("/v1/containers/{uuid}/execute_resize?exec_id={exec_id}&w=80&h=24"),
    )
    .token(ALICE)
    .send(&h.app)
    .await;
    assert_eq!(
        (reply.status, &reply.body[..]),
        (StatusCode::OK, &b"null"[..])
    );
    let reply = call(
        "POST",
        &format!("/v1/containers/{uuid}/execute_resize?exec_id=XYZ&w=80&h=24"),
    )
    .token(ALICE)
    .send(&h.app)
    .await;
    reply.zun_error(400, "container.invalid-parameter-value");
    let reply = call(
        "POST",
        &format!("/v1/containers/{uuid}/execute?command=%22unbalanced"),
    )
    .token(ALICE)
    .send(&h.app)
    .await;
    reply.zun_error(400, "container.invalid-parameter-value");

    let reply = call("GET", &format!("/v1/containers/{uuid}/logs?stdout=True&stderr=True&timestamps=False&tail=5&since=1700000000")).token(ALICE).send(&h.app).await;
    assert_eq!(
        reply.json(),
        json!("hello\nworld tail=Some(5) since=Some(1700000000)\n")
    );
    let reply = call("GET", &format!("/v1/containers/{uuid}/logs?follow=true"))
        .token(ALICE)
        .send(&h.app)
        .await;
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(&reply.body[..], b"line 1\nline 2\n");
    let reply = call("GET", &format!("/v1/containers/{uuid}/logs?tail=many"))
        .token(ALICE)
        .send(&h.app)
        .await;
    reply.zun_error(400, "container.invalid-parameter-value");

    let reply = call("GET", &format!("/v1/containers/{uuid}/top?ps_args=None"))
        .token(ALICE)
        .send(&h.app)
        .await;
    assert_eq!(
        reply.json(),
        json!({"Titles": ["PID", "CMD"], "Processes": [["1", "sleep"]]})
    );
    let reply = call("GET", &format!("/v1/containers/{uuid}/stats"))
        .token(ALICE)
        .send(&h.app)
        .await;
    let stats = reply.json();
    assert_eq!(stats["CONTAINER"], "busy");
    assert_eq!(stats["BLOCK I/O(B)"], "1/2");
    assert_eq!(stats["NET I/O(B)"], "3/4");
    assert_eq!(stats["MEM %"], 10.0);

    // Attach needs an interactive container.
    let reply = call("GET", &format!("/v1/containers/{uuid}/attach"))
        .token(ALICE)
        .send(&h.app)
        .await;
    reply.zun_error(400, "container.no-interactive-flag");
}

#[tokio::test]
async fn hosts_show_the_projects_instances_from_1_4() {
    let h = harness();
    create(&h, ALICE, &zunclient_body("h1")).await;
    let reply = call("GET", "/v1/hosts/")
        .token(ALICE)
        .version("container 1.40")
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    let host = &body["hosts"][0];
    assert_eq!(host["uuid"], "inst-project-a");
    assert_eq!(host["total_containers"], 1);
    assert_eq!(host["mem_used"], 100);
    assert_eq!(host["enable_cpu_pinning"], false);
    assert_eq!(host["status"], "Ready");
    assert_eq!(body["next"], Value::Null);
    let reply = call("GET", "/v1/hosts/inst-project-a")
        .token(ALICE)
        .version("container 1.28")
        .send(&h.app)
        .await;
    assert!(reply.json().get("enable_cpu_pinning").is_none());
    let reply = call("GET", "/v1/hosts/inst-project-b")
        .token(ALICE)
        .version("container 1.40")
        .send(&h.app)
        .await;
    reply.zun_error(404, "container.compute-host-not-found");
}

#[tokio::test]
async fn openapi_and_metrics_are_served_without_auth() {
    let h = harness();
    call("GET", "/v1/containers")
        .token(ALICE)
        .send(&h.app)
        .await;
    let reply = call("GET", "/openapi.json").send(&h.app).await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.json();
    assert!(doc["paths"]["/v1/containers"]["post"].is_object());
    assert!(doc["paths"]["/v1/containers/{container}/execute"]["post"].is_object());
    assert!(doc["components"]["schemas"]["ContainerView"].is_object());
    let reply = call("GET", "/metrics").send(&h.app).await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&reply.body);
    assert!(text.contains("nest_api_requests_total"), "{text}");
    assert!(text.contains("route=\"/v1/containers\""), "{text}");
    let reply = call("GET", "/healthz").send(&h.app).await;
    assert_eq!(reply.json(), json!({"status": "ok"}));
}

// === console websocket over a real listener ===

/// A server on 127.0.0.1:0, stopped when dropped.
struct Server {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(app: Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

#[tokio::test]
async fn attach_websocket_negotiates_binary_and_its_token_is_single_use() {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let h = harness();
    let server = Server::start(h.app.clone()).await;
    let c = create(&h, ALICE, &json!({"image": "busybox", "interactive": true})).await;
    let uuid = c["uuid"].as_str().expect("uuid").to_owned();
    start(&h, ALICE, &uuid).await;
    let reply = call("GET", &format!("/v1/containers/{uuid}/attach"))
        .token(ALICE)
        .send(&h.app)
        .await;
    let url = reply.json().as_str().expect("a JSON string").to_owned();
    assert!(
        url.starts_with("ws://nest.test:9517/v1/containers/"),
        "{url}"
    );
    let url = url.replace("nest.test:9517", &server.addr.to_string());

    let connect = |url: String, origin: Option<&'static str>| async move {
        let mut request = url.into_client_request().expect("ws request");
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "binary, base64".parse().expect("header"),
        );
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().expect("header"));
        }
        tokio_tungstenite::connect_async(request).await
    };
    // A page of another origin is refused before the token is spent.
    let refused = connect(url.clone(), Some("http://evil.test")).await;
    assert!(refused.is_err());

    let (mut ws, response) = connect(url.clone(), None).await.expect("websocket opens");
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("binary")
    );
    ws.send(Message::Binary(Bytes::from_static(b"ls\n")))
        .await
        .expect("send");
    let echoed = ws.next().await.expect("a frame").expect("no error");
    assert_eq!(echoed.into_data(), Bytes::from_static(b"ls\n"));
    ws.send(Message::Text(r#"{"resize": {"w": 100, "h": 30}}"#.into()))
        .await
        .expect("send");
    let resized = ws.next().await.expect("a frame").expect("no error");
    assert_eq!(resized.into_data(), Bytes::from_static(b"resized 100x30"));
    ws.close(None).await.expect("close");

    let again = connect(url, None).await;
    match again {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::FORBIDDEN);
        }
        other => panic!("a used token must be refused, got {other:?}"),
    }
    let bad = format!(
        "ws://{}/v1/containers/{uuid}/attach/ws?token={}",
        server.addr,
        "x".repeat(40)
    );
    assert!(connect(bad, None).await.is_err());
}
