//! Attach and exec as the docker CLI speaks them: hijacked connections
//! (`101 Upgrade: tcp`, §4), raw bytes with a tty and 8-byte-header frames
//! without (the container's or exec's Tty flag decides, §1 #5), stdin
//! from the client never framed, a half-close from the client ending only
//! stdin (§1 #6), and the connection closed once the process ended and its
//! output is flushed, with an exec's exit code readable before that (§1
//! #7). Both run as the application's typed console sessions.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::containers::{encode_output, flag, query_map, resolve};
use super::error::DockerError;
use super::views::docker_id;
use super::{DockerContext, DockerState, lock};
use crate::api::zun::create::{check_environment, check_user, check_workdir};
use crate::app::{
    AttachStream, ChangeEvent, ConsoleInput, ConsoleIo, ConsoleOutput, ConsoleSession,
    ContainerRef, ExecId, ExecOptions, ExecRequest, ExecResult, ExecStream, TtySize,
};
use crate::domain::{ContainerId, ContainerStatus, ProjectId};

/// Client input chunks queued towards the process.
const INPUT_QUEUE: usize = 16;
/// Output chunks queued towards the client.
const OUTPUT_QUEUE: usize = 16;
/// Largest read from the client at once.
const READ_CHUNK: usize = 32 * 1024;
/// Exec instances remembered for `GET /exec/{id}/json`; the oldest
/// finished ones go first.
const MAX_EXECS: usize = 4096;
/// Longest an attach waits for a container still being created (its
/// instance booting) before it gives up.
const ATTACH_CREATE_WAIT: Duration = Duration::from_secs(600);

/// One exec instance, from `POST /containers/{id}/exec` on.
#[derive(Clone, Debug)]
struct ExecEntry {
    project: ProjectId,
    container: ContainerId,
    command: Vec<String>,
    options: ExecOptions,
    tty: bool,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    running: bool,
    started: bool,
    exit_code: Option<i64>,
}

/// The exec instances the Docker front end created.
#[derive(Default)]
pub struct ExecTable(Mutex<BTreeMap<String, ExecEntry>>);

impl ExecTable {
    fn insert(&self, id: &ExecId, entry: ExecEntry) {
        let mut table = lock(&self.0);
        if table.len() >= MAX_EXECS {
            let finished: Vec<String> = table
                .iter()
                .filter(|(_, e)| !e.running)
                .map(|(k, _)| k.clone())
                .take(table.len() + 1 - MAX_EXECS)
                .collect();
            for key in finished {
                table.remove(&key);
            }
        }
        table.insert(id.as_str().to_owned(), entry);
    }

    fn get(&self, id: &str, project: &ProjectId) -> Option<ExecEntry> {
        lock(&self.0)
            .get(id)
            .filter(|e| &e.project == project)
            .cloned()
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut ExecEntry)) {
        if let Some(entry) = lock(&self.0).get_mut(id) {
            f(entry);
        }
    }
}

/// Where the stream's bytes go: an upgraded connection, or (for a client
/// that asked for no upgrade) a response body.
enum Sink {
    Upgrade(hyper::upgrade::OnUpgrade),
    Body(mpsc::Sender<Result<Bytes, std::io::Error>>),
}

fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"))
}

fn media_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// The 101 of a hijack, exactly as the CLI checks it (§1 #4).
fn upgraded_response(tty: bool) -> Response {
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media_type(tty)),
    );
    response
}

/// What a session pump needs besides the session.
struct PumpOptions {
    tty: bool,
    /// Pass the client's bytes to the process.
    stdin: bool,
    /// Close the process's stdin when the client's ends (StdinOnce).
    close_stdin: bool,
    /// Record the exit code here (exec).
    exec: Option<(DockerState, String)>,
}

/// Runs a session over the hijacked connection (or response body) until
/// the process ends or the client goes away.
async fn pump(session: Box<dyn ConsoleSession>, sink: Sink, options: PumpOptions) {
    let (in_tx, in_rx) = mpsc::channel(INPUT_QUEUE);
    let (out_tx, mut out_rx) = mpsc::channel(OUTPUT_QUEUE);
    let run = session.run(ConsoleIo {
        input: in_rx,
        output: out_tx,
    });
    tokio::pin!(run);
    let (mut reader, mut writer): (Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>, Writer) =
        match sink {
            Sink::Upgrade(on_upgrade) => match on_upgrade.await {
                Ok(upgraded) => {
                    let (r, w) = tokio::io::split(TokioIo::new(upgraded));
                    (Some(Box::new(r)), Writer::Io(Box::new(w)))
                }
                Err(e) => {
                    tracing::debug!(error = %e, "Docker stream: the upgrade failed");
                    return;
                }
            },
            Sink::Body(tx) => (None, Writer::Body(tx)),
        };
    let mut buffer = vec![0u8; READ_CHUNK];
    let mut run_done = false;
    loop {
        tokio::select! {
            result = &mut run, if !run_done => {
                run_done = true;
                if let Err(e) = result {
                    tracing::debug!(error = %e, "Docker stream: the session failed");
                }
            }
            output = out_rx.recv() => match output {
                None => break,
                Some(output) => {
                    if let ConsoleOutput::Exit(code) = &output
                        && let Some((state, id)) = &options.exec
                    {
                        // Readable before the connection closes (§1 #7).
                        state.inner.execs.update(id, |e| {
                            e.exit_code = Some(*code);
                            e.running = false;
                        });
                    }
                    let bytes = match &output {
                        ConsoleOutput::Error { message, .. } => {
                            let text = Bytes::from(format!("Error: {message}\n"));
                            encode_output(&ConsoleOutput::Stderr(text), options.tty)
                        }
                        other => encode_output(other, options.tty),
                    };
                    if let Some(bytes) = bytes
                        && writer.write(bytes).await.is_err()
                    {
                        break;
                    }
                }
            },
            read = async {
                match reader.as_mut() {
                    Some(r) => r.read(&mut buffer).await,
                    None => std::future::pending().await,
                }
            } => match read {
                // The client half-closed (or had no stdin to send, §1 #6):
                // only stdin ends; output keeps flowing.
                Ok(0) | Err(_) => {
                    reader = None;
                    if options.stdin && options.close_stdin {
                        let _ = in_tx.send(ConsoleInput::CloseStdin).await;
                    }
                }
                Ok(n) => {
                    if options.stdin {
                        let data = Bytes::copy_from_slice(&buffer[..n]);
                        if in_tx.send(ConsoleInput::Stdin(data)).await.is_err() {
                            reader = None;
                        }
                    }
                }
            },
        }
    }
    if let Some((state, id)) = &options.exec {
        state.inner.execs.update(id, |e| e.running = false);
    }
    writer.close().await;
}

enum Writer {
    Io(Box<dyn tokio::io::AsyncWrite + Send + Unpin>),
    Body(mpsc::Sender<Result<Bytes, std::io::Error>>),
}

impl Writer {
    async fn write(&mut self, bytes: Bytes) -> Result<(), ()> {
        match self {
            Self::Io(w) => {
                w.write_all(&bytes).await.map_err(drop)?;
                w.flush().await.map_err(drop)
            }
            Self::Body(tx) => tx.send(Ok(bytes)).await.map_err(drop),
        }
    }

    async fn close(self) {
        if let Self::Io(mut w) = self {
            let _ = w.flush().await;
            let _ = w.shutdown().await;
        }
    }
}

/// Starts `session` on the request's connection: a 101 and the hijack,
/// or a streamed 200 for a client that asked for no upgrade.
fn hijack(
    state: &DockerState,
    request: &mut Request,
    session: Box<dyn ConsoleSession>,
    options: PumpOptions,
) -> Response {
    let tty = options.tty;
    if wants_upgrade(request.headers())
        && let Some(on_upgrade) = request
            .extensions_mut()
            .remove::<hyper::upgrade::OnUpgrade>()
    {
        state
            .inner
            .tasks
            .spawn(pump(session, Sink::Upgrade(on_upgrade), options));
        return upgraded_response(tty);
    }
    let (tx, rx) = mpsc::channel(OUTPUT_QUEUE);
    state.inner.tasks.spawn(pump(
        session,
        Sink::Body(tx),
        PumpOptions {
            stdin: false,
            ..options
        },
    ));
    let mut response = Response::new(Body::from_stream(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media_type(tty)),
    );
    response
}

/// `POST /containers/{id}/attach?stream&stdin&stdout&stderr&logs`. A
/// container still being created (its instance booting; `docker run`
/// attaches right after create) is waited for.
pub async fn attach(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    mut request: Request,
) -> Result<Response, DockerError> {
    let query = query_map(raw);
    if query.get("detachKeys").is_some_and(|k| !k.is_empty()) {
        // The CLI detaches by itself (its escape proxy): nothing to do here.
        tracing::debug!("detach keys are handled by the client");
    }
    let mut changes = state.app().project_changes(&cx.call);
    let mut info = resolve(&state, &cx, &id).await?;
    let container = info.container.id;
    let waited = tokio::time::timeout(ATTACH_CREATE_WAIT, async {
        while info.container.status == ContainerStatus::Creating {
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                loop {
                    match changes.next().await {
                        ChangeEvent::Change(c) if c.container != container => {}
                        _ => return,
                    }
                }
            })
            .await;
            info = resolve(&state, &cx, &id).await?;
        }
        Ok::<_, DockerError>(())
    })
    .await;
    match waited {
        Ok(result) => result?,
        Err(_) => {
            return Err(DockerError::Conflict(format!(
                "container {id} is still being created; try again once its instance is up"
            )));
        }
    }
    if !matches!(
        info.container.status,
        ContainerStatus::Running | ContainerStatus::Created | ContainerStatus::Paused
    ) {
        return Err(DockerError::Conflict(
            "You cannot attach to a stopped container, start it first".into(),
        ));
    }
    let stdin = flag(&query, "stdin") && info.container.spec.interactive;
    let request_streams = AttachStream {
        stdin,
        stdout: flag(&query, "stdout"),
        stderr: flag(&query, "stderr"),
        logs: flag(&query, "logs"),
    };
    let session = state
        .app()
        .open_attach(&cx.call, &ContainerRef::Id(container), request_streams)
        .await?;
    let options = PumpOptions {
        tty: info.container.spec.tty,
        stdin,
        // `run -i` creates with StdinOnce; Nest keeps none, and closes the
        // process's stdin when the client's ends, as StdinOnce does.
        close_stdin: true,
        exec: None,
    };
    Ok(hijack(&state, &mut request, session, options))
}

fn size_of(query: &BTreeMap<String, String>) -> Result<TtySize, DockerError> {
    let dim = |key: &str| {
        query
            .get(key)
            .and_then(|v| v.parse::<u16>().ok())
            .ok_or_else(|| DockerError::Invalid(format!("invalid {key}: must be 0 to 65535")))
    };
    Ok(TtySize {
        height: dim("h")?,
        width: dim("w")?,
    })
}

/// `POST /containers/{id}/resize?h=&w=`.
pub async fn resize(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, DockerError> {
    let size = size_of(&query_map(raw))?;
    let info = resolve(&state, &cx, &id).await?;
    state
        .app()
        .resize(&cx.call, &ContainerRef::Id(info.container.id), size)
        .await?;
    Ok(StatusCode::OK)
}

/// The body of `POST /containers/{id}/exec`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ExecCreateBody {
    user: String,
    privileged: bool,
    tty: bool,
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    detach_keys: String,
    /// Decided again by exec start's own `Detach`.
    detach: bool,
    /// docker-py repeats the path's container here.
    container: Option<String>,
    env: Option<Vec<String>>,
    working_dir: String,
    cmd: Option<Vec<String>>,
    console_size: Option<Vec<u16>>,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

fn new_exec_id() -> ExecId {
    let id = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    ExecId::parse(&id).unwrap_or_else(|_| new_exec_id())
}

/// `docker exec -u/-e/-w`, checked as the create body's `User`, `Env`
/// and `WorkingDir` are; empty is the container's own.
fn exec_options(
    user: String,
    env: Vec<String>,
    workdir: String,
) -> Result<ExecOptions, DockerError> {
    let invalid = |e: crate::api::zun::error::ApiError| DockerError::Invalid(e.to_string());
    let user = Some(user).filter(|u| !u.is_empty());
    if let Some(user) = &user {
        check_user("User", user).map_err(invalid)?;
    }
    let mut environment = BTreeMap::new();
    for entry in env {
        let (name, value) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
        environment.insert(name.to_owned(), value.to_owned());
    }
    check_environment(&environment).map_err(invalid)?;
    let workdir = Some(workdir).filter(|w| !w.is_empty());
    if let Some(workdir) = &workdir {
        check_workdir(workdir).map_err(invalid)?;
    }
    Ok(ExecOptions {
        environment,
        workdir,
        user,
    })
}

/// `POST /containers/{id}/exec`: 201 `{"Id"}`.
pub async fn create_exec(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, DockerError> {
    let body: ExecCreateBody =
        serde_json::from_slice(&body).map_err(|e| DockerError::MalformedJson(e.to_string()))?;
    if let Some(field) = body.rest.iter().find(|(_, v)| !v.is_null()).map(|(k, _)| k) {
        return Err(DockerError::Invalid(format!(
            "{field} is not supported by Nest's exec"
        )));
    }
    if body.privileged {
        return Err(DockerError::Invalid(
            "docker exec --privileged is not supported by Nest".into(),
        ));
    }
    let options = exec_options(body.user, body.env.unwrap_or_default(), body.working_dir)?;
    let command = body.cmd.unwrap_or_default();
    if command.is_empty() {
        return Err(DockerError::Invalid("No exec command specified".into()));
    }
    crate::api::zun::create::check_argv("Cmd", &command)
        .map_err(|e| DockerError::Invalid(e.to_string()))?;
    let _ = (
        body.detach_keys,
        body.detach,
        body.container,
        body.console_size,
    );
    let info = resolve(&state, &cx, &id).await?;
    if info.container.status != ContainerStatus::Running {
        return Err(DockerError::Conflict(format!(
            "container {} is not running",
            docker_id(info.container.id)
        )));
    }
    let exec_id = new_exec_id();
    state.inner.execs.insert(
        &exec_id,
        ExecEntry {
            project: cx.call.caller.project_id.clone(),
            container: info.container.id,
            command,
            options,
            tty: body.tty,
            stdin: body.attach_stdin,
            stdout: body.attach_stdout,
            stderr: body.attach_stderr,
            running: false,
            started: false,
            exit_code: None,
        },
    );
    let mut response = (
        StatusCode::CREATED,
        json!({"Id": exec_id.as_str()}).to_string(),
    )
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// The body of `POST /exec/{id}/start`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ExecStartBody {
    detach: bool,
    tty: Option<bool>,
    console_size: Option<Vec<u16>>,
}

fn exec_entry(
    state: &DockerState,
    cx: &DockerContext,
    id: &str,
) -> Result<(ExecId, ExecEntry), DockerError> {
    let no_such = || DockerError::NoSuchExec(id.chars().take(64).collect());
    let exec_id = ExecId::parse(id).map_err(|_| no_such())?;
    let entry = state
        .inner
        .execs
        .get(exec_id.as_str(), &cx.call.caller.project_id)
        .ok_or_else(no_such)?;
    Ok((exec_id, entry))
}

/// `POST /exec/{id}/start`: the hijacked stream; with `Detach`, runs it in
/// the background and answers at once.
pub async fn start_exec(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(id): Path<String>,
    mut request: Request,
) -> Result<Response, DockerError> {
    let (exec_id, entry) = exec_entry(&state, &cx, &id)?;
    let bytes = axum::body::to_bytes(std::mem::take(request.body_mut()), 64 * 1024)
        .await
        .map_err(|e| DockerError::Invalid(format!("reading the body: {e}")))?;
    let body: ExecStartBody = if bytes.is_empty() {
        ExecStartBody::default()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| DockerError::MalformedJson(e.to_string()))?
    };
    if entry.started {
        return Err(DockerError::Conflict(format!(
            "exec {exec_id} has already been started"
        )));
    }
    state.inner.execs.update(exec_id.as_str(), |e| {
        e.started = true;
        e.running = true;
    });
    let reference = ContainerRef::Id(entry.container);
    if body.detach {
        let app_state = state.clone();
        let call = cx.call.clone();
        let command = entry.command.clone();
        let options = entry.options.clone();
        let key = exec_id.as_str().to_owned();
        state.inner.tasks.spawn(async move {
            let request = ExecRequest {
                command,
                options,
                run: true,
                interactive: false,
            };
            let code = match app_state.app().execute(&call, &reference, request).await {
                Ok(outcome) => match outcome.result {
                    ExecResult::Finished { exit_code, .. } => Some(exit_code),
                    ExecResult::Created { .. } => None,
                },
                Err(e) => {
                    tracing::info!(error = %e, "detached docker exec failed");
                    Some(126)
                }
            };
            app_state.inner.execs.update(&key, |e| {
                e.running = false;
                e.exit_code = code;
            });
        });
        return Ok(StatusCode::OK.into_response());
    }
    let tty = body.tty.unwrap_or(entry.tty);
    let size = body
        .console_size
        .filter(|s| s.len() == 2 && s[0] > 0 && s[1] > 0)
        .map(|s| TtySize {
            height: s[0],
            width: s[1],
        });
    let session = match state
        .app()
        .open_exec(
            &cx.call,
            &reference,
            &exec_id,
            ExecStream {
                command: entry.command.clone(),
                options: entry.options.clone(),
                tty,
                stdin: entry.stdin,
                size,
            },
        )
        .await
    {
        Ok(session) => session,
        Err(e) => {
            state
                .inner
                .execs
                .update(exec_id.as_str(), |e| e.running = false);
            return Err(e.into());
        }
    };
    let _ = (entry.stdout, entry.stderr);
    let options = PumpOptions {
        tty,
        stdin: entry.stdin,
        close_stdin: true,
        exec: Some((state.clone(), exec_id.as_str().to_owned())),
    };
    Ok(hijack(&state, &mut request, session, options))
}

/// `POST /exec/{id}/resize?h=&w=`.
pub async fn resize_exec(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, DockerError> {
    let size = size_of(&query_map(raw))?;
    let (exec_id, entry) = exec_entry(&state, &cx, &id)?;
    state
        .app()
        .resize_exec(&cx.call, &ContainerRef::Id(entry.container), &exec_id, size)
        .await?;
    Ok(StatusCode::OK)
}

/// `GET /exec/{id}/json`: `ExitCode` is final before the stream closes.
pub async fn inspect_exec(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(id): Path<String>,
) -> Result<Response, DockerError> {
    let (exec_id, entry) = exec_entry(&state, &cx, &id)?;
    let (entrypoint, arguments) = entry
        .command
        .split_first()
        .map(|(first, rest)| (first.clone(), rest.to_vec()))
        .unwrap_or_default();
    let view = json!({
        "ID": exec_id.as_str(),
        "Running": entry.running,
        "ExitCode": entry.exit_code,
        "ProcessConfig": {
            "tty": entry.tty,
            "entrypoint": entrypoint,
            "arguments": arguments,
            "privileged": false,
            "user": entry.options.user.as_deref().unwrap_or_default(),
        },
        "OpenStdin": entry.stdin,
        "OpenStderr": entry.stderr,
        "OpenStdout": entry.stdout,
        "CanRemove": false,
        "ContainerID": docker_id(entry.container),
        "DetachKeys": "",
        "Pid": 0,
    });
    let mut response = (StatusCode::OK, view.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
