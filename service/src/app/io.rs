//! Talking to a running container: exec, logs, attach and consoles, top
//! and stats. Interactive sessions are agent streams; no Docker socket is
//! ever exposed.

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::mpsc;

use super::console::{ConsoleInput, ConsoleIo, ConsoleOutput, ConsoleSession};
use super::{App, agent_error, lock, placed_on};
use crate::agents::{
    AgentError, AgentStream, ExecCommand, LogOptions, OutputStream, StreamEvent, StreamInput,
    StreamOpen,
};
use crate::app::{
    AppError, AttachStream, CallContext, ConsoleTarget, ConsoleTicket, ConsoleToken, ContainerRef,
    ContainerStats, ExecId, ExecOutcome, ExecRequest, ExecResult, ExecStream, LogStream,
    LogsParams, ProcessList, TtySize,
};
use crate::auth::policy::Action;
use crate::domain::{Container, ContainerId};

/// Most log bytes returned by a non-following logs call.
const MAX_LOG_BYTES: usize = 16 * 1024 * 1024;
/// Terminal size an interactive exec starts with, until the client resizes.
const EXEC_INITIAL_SIZE: TtySize = TtySize {
    width: 80,
    height: 24,
};
/// Resize requests queued per console.
const RESIZE_QUEUE: usize = 4;
/// Log chunks queued towards an HTTP client.
const LOG_QUEUE: usize = 16;

fn not_running(container: &Container, action: &'static str) -> AppError {
    AppError::InvalidState {
        id: container.id,
        status: container.status,
        action,
    }
}

impl App {
    /// Runs a command in a running container; without `run` (interactive
    /// exec) it only creates the exec and hands back a console token.
    pub async fn execute(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
        request: ExecRequest,
    ) -> Result<ExecOutcome, AppError> {
        let container = self.resolve(cx, reference, Action::ContainerExec).await?;
        if !container.status.is_running() {
            return Err(not_running(&container, "execute"));
        }
        if request.command.is_empty() {
            return Err(AppError::InvalidRequest {
                what: "command",
                reason: "must not be empty".into(),
            });
        }
        if !request.run {
            let exec_id = ExecId::parse(&format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ))
            .expect("two simple uuids are 64 lowercase hex digits");
            let token = request.interactive.then(|| {
                self.issue_console(
                    cx,
                    container.id,
                    ConsoleTarget::Exec(exec_id.clone()),
                    request.command.clone(),
                )
            });
            return Ok(ExecOutcome {
                container_id: container.id,
                result: ExecResult::Created { exec_id, token },
            });
        }
        let (agents, instance) = self.on_agent(&container, "execute")?;
        let command = ExecCommand {
            command: request.command,
            environment: request.options.environment,
            workdir: request.options.workdir,
            user: request.options.user,
        };
        let captured = agents
            .exec(&cx.request_id, &instance, container.id, command)
            .await
            .map_err(|e| agent_error(&container, &e))?;
        // Zun returns stdout and stderr together, as docker exec shows them.
        let mut text = String::from_utf8_lossy(&captured.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&captured.stderr));
        Ok(ExecOutcome {
            container_id: container.id,
            result: ExecResult::Finished {
                output: text,
                exit_code: captured.exit_code,
            },
        })
    }

    /// Resizes the terminal of an exec instance.
    pub async fn resize_exec(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
        exec_id: &ExecId,
        size: TtySize,
    ) -> Result<(), AppError> {
        let container = self.resolve(cx, reference, Action::ContainerExec).await?;
        self.send_resize(&format!("{}/{}", container.id, exec_id), size)
            .ok_or_else(|| AppError::ExecNotFound(exec_id.clone()))
    }

    /// Resizes the container's terminal (used with attach).
    pub async fn resize(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
        size: TtySize,
    ) -> Result<(), AppError> {
        let container = self.resolve(cx, reference, Action::ContainerAttach).await?;
        if !container.status.is_running() {
            return Err(not_running(&container, "resize"));
        }
        // Without a live attach there is nothing to resize; Zun accepts it.
        let _ = self.send_resize(&format!("{}/attach", container.id), size);
        Ok(())
    }

    fn send_resize(&self, key: &str, size: TtySize) -> Option<()> {
        let resizers = lock(&self.inner.resizers);
        let tx = resizers.get(key)?;
        // A full queue means resizes are piling up; the latest wins soon.
        let _ = tx.try_send(size);
        Some(())
    }

    async fn open_logs(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
        params: &LogsParams,
        follow: bool,
    ) -> Result<Box<dyn AgentStream>, AppError> {
        let container = self.resolve(cx, reference, Action::ContainerLogs).await?;
        if !container.status.can_read_logs() {
            return Err(not_running(&container, "logs"));
        }
        let (agents, instance) = self.on_agent(&container, "logs")?;
        let open = StreamOpen::Logs {
            container: container.id,
            options: LogOptions {
                stdout: params.stdout,
                stderr: params.stderr,
                tail: params.tail,
                since: params.since,
                timestamps: params.timestamps,
                follow,
            },
        };
        agents
            .open_stream(&cx.request_id, &instance, open)
            .await
            .map_err(|e| agent_error(&container, &e))
    }

    /// The container's logs so far, as one string.
    pub async fn logs(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
        params: LogsParams,
    ) -> Result<String, AppError> {
        let mut stream = self.open_logs(cx, reference, &params, false).await?;
        let mut text = Vec::new();
        while let Some(frame) = stream.next().await {
            match frame.map_err(|e| stream_error(&e))? {
                StreamEvent::Output { data, .. } => {
                    let room = MAX_LOG_BYTES.saturating_sub(text.len());
                    text.extend_from_slice(&data[..data.len().min(room)]);
                }
                StreamEvent::Failed { message, .. } => {
                    return Err(AppError::Unavailable {
                        what: format!("logs ({message})"),
                        source: None,
                    });
                }
                StreamEvent::End { .. } => break,
                StreamEvent::Started => {}
            }
        }
        Ok(String::from_utf8_lossy(&text).into_owned())
    }

    /// The container's logs, then new lines as they come (`follow=true`).
    /// The stream ends when the container stops or the client goes away
    /// (the HTTP layer drops it).
    pub async fn follow_logs(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
        params: LogsParams,
    ) -> Result<LogStream, AppError> {
        // The same pump as the typed frames, with the streams merged.
        let frames = self.log_frames(cx, reference, params, true).await?;
        Ok(frames
            .filter_map(|item| async move {
                match item {
                    Ok(output) => output.data().cloned().map(Ok),
                    Err(e) => Some(Err(e)),
                }
            })
            .boxed())
    }

    /// The container's logs as typed frames (stdout, stderr or terminal
    /// output, as the engine separated them), following new output with
    /// `follow` until the container stops or the receiver is dropped. The
    /// Docker API needs the streams apart to frame them.
    pub async fn log_frames(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
        params: LogsParams,
        follow: bool,
    ) -> Result<BoxStream<'static, Result<ConsoleOutput, AppError>>, AppError> {
        let mut stream = self.open_logs(cx, reference, &params, follow).await?;
        let (tx, rx) = mpsc::channel::<Result<ConsoleOutput, AppError>>(LOG_QUEUE);
        // The pump ends when the stream ends or the HTTP client goes away.
        self.inner.scheduler.tasks().spawn(async move {
            loop {
                let frame = tokio::select! {
                    () = tx.closed() => return,
                    frame = stream.next() => frame,
                };
                let item = match frame {
                    None | Some(Ok(StreamEvent::End { .. })) => return,
                    Some(Ok(StreamEvent::Output { stream, data })) => Ok(match stream {
                        OutputStream::Stdout => ConsoleOutput::Stdout(data),
                        OutputStream::Stderr => ConsoleOutput::Stderr(data),
                        OutputStream::Tty => ConsoleOutput::Tty(data),
                    }),
                    Some(Ok(StreamEvent::Started)) => continue,
                    Some(Ok(StreamEvent::Failed { message, .. })) => Err(AppError::Unavailable {
                        what: format!("logs ({message})"),
                        source: None,
                    }),
                    Some(Err(e)) => Err(stream_error(&e)),
                };
                let last = item.is_err();
                if tx.send(item).await.is_err() || last {
                    return;
                }
            }
        });
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx).boxed())
    }

    /// Issues a single-use console token for attaching to an interactive
    /// container ([`AppError::NotInteractive`] otherwise).
    pub async fn attach(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
    ) -> Result<ConsoleTicket, AppError> {
        let container = self.resolve(cx, reference, Action::ContainerAttach).await?;
        if !container.status.is_running() {
            return Err(not_running(&container, "attach"));
        }
        if !container.spec.interactive {
            return Err(AppError::NotInteractive(container.id));
        }
        let token = self.issue_console(cx, container.id, ConsoleTarget::Attach, Vec::new());
        Ok(ConsoleTicket {
            container_id: container.id,
            token,
        })
    }

    /// Redeems a console token issued by [`attach`](Self::attach) or an
    /// interactive [`execute`](Self::execute). The token is the only
    /// credential of the websocket request: the backend checks that it is
    /// unexpired, unused and bound to `container` (and `target`), and burns
    /// it. The HTTP layer then upgrades the connection and runs the session.
    pub async fn open_console(
        &self,
        container_id: ContainerId,
        token: &ConsoleToken,
        target: ConsoleTarget,
    ) -> Result<Box<dyn ConsoleSession>, AppError> {
        let pending = self.redeem_console(container_id, token, &target)?;
        let container = self
            .store()
            .get_container(container_id)
            .await
            .map_err(|_| AppError::ConsoleTokenRejected)?;
        let instance = placed_on(&container, "attach")?;
        let (open, key) = match &target {
            ConsoleTarget::Attach => (
                StreamOpen::Attach {
                    container: container.id,
                    stdin: true,
                    stdout: true,
                    stderr: true,
                    logs: false,
                },
                format!("{container_id}/attach"),
            ),
            ConsoleTarget::Exec(exec_id) => (
                StreamOpen::Exec {
                    container: container.id,
                    command: pending.command,
                    tty: true,
                    stdin: true,
                    size: Some(EXEC_INITIAL_SIZE),
                    environment: Default::default(),
                    workdir: None,
                    user: None,
                },
                format!("{container_id}/{exec_id}"),
            ),
        };
        // The websocket carries no request id of its own: the session is
        // traced under the call that issued its token.
        let stream = self
            .inner
            .agents
            .open_stream(&pending.request_id, &instance, open)
            .await
            .map_err(|e| agent_error(&container, &e))?;
        let (resize_tx, resize_rx) = mpsc::channel(RESIZE_QUEUE);
        lock(&self.inner.resizers).insert(key.clone(), resize_tx);
        Ok(Box::new(Console {
            app: self.clone(),
            key,
            stream,
            resizes: resize_rx,
        }))
    }

    /// Opens a console on a new exec in a running container, with the
    /// stream options a front end asks for (the Docker API's exec start:
    /// tty or not, stdin or not). The caller is authorised here, unlike a
    /// console token's websocket; [`App::resize_exec`] reaches it by
    /// `exec_id`.
    ///
    /// # Errors
    /// [`AppError::ContainerNotFound`], [`AppError::InvalidState`] when it
    /// is not running, [`AppError::Unavailable`] when its agent is away.
    pub async fn open_exec(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
        exec_id: &ExecId,
        request: ExecStream,
    ) -> Result<Box<dyn ConsoleSession>, AppError> {
        let container = self.resolve(cx, reference, Action::ContainerExec).await?;
        if !container.status.is_running() {
            return Err(not_running(&container, "execute"));
        }
        if request.command.is_empty() {
            return Err(AppError::InvalidRequest {
                what: "command",
                reason: "must not be empty".into(),
            });
        }
        let instance = placed_on(&container, "execute")?;
        let open = StreamOpen::Exec {
            container: container.id,
            command: request.command,
            tty: request.tty,
            stdin: request.stdin,
            size: request.size.or(request.tty.then_some(EXEC_INITIAL_SIZE)),
            environment: request.options.environment,
            workdir: request.options.workdir,
            user: request.options.user,
        };
        let stream = self
            .inner
            .agents
            .open_stream(&cx.request_id, &instance, open)
            .await
            .map_err(|e| agent_error(&container, &e))?;
        Ok(self.console(format!("{}/{exec_id}", container.id), stream))
    }

    /// Opens a console on a container's main process: its output (and,
    /// with `stdin` for a container created with `interactive`, its
    /// input). A container that is created but not started yet can be
    /// attached to; output flows once it starts (Docker's `run` attaches
    /// before it starts).
    ///
    /// # Errors
    /// [`AppError::ContainerNotFound`], [`AppError::InvalidState`] when it
    /// is neither created nor running, [`AppError::Unavailable`] when its
    /// agent is away.
    pub async fn open_attach(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
        request: AttachStream,
    ) -> Result<Box<dyn ConsoleSession>, AppError> {
        let container = self.resolve(cx, reference, Action::ContainerAttach).await?;
        if !matches!(
            container.status,
            crate::domain::ContainerStatus::Running
                | crate::domain::ContainerStatus::Created
                | crate::domain::ContainerStatus::Paused
        ) {
            return Err(not_running(&container, "attach"));
        }
        let instance = placed_on(&container, "attach")?;
        let open = StreamOpen::Attach {
            container: container.id,
            stdin: request.stdin && container.spec.interactive,
            stdout: request.stdout,
            stderr: request.stderr,
            logs: request.logs,
        };
        let stream = self
            .inner
            .agents
            .open_stream(&cx.request_id, &instance, open)
            .await
            .map_err(|e| agent_error(&container, &e))?;
        Ok(self.console(format!("{}/attach", container.id), stream))
    }

    /// A console over an agent stream, reachable by resizes under `key`.
    fn console(&self, key: String, stream: Box<dyn AgentStream>) -> Box<dyn ConsoleSession> {
        let (resize_tx, resize_rx) = mpsc::channel(RESIZE_QUEUE);
        lock(&self.inner.resizers).insert(key.clone(), resize_tx);
        Box::new(Console {
            app: self.clone(),
            key,
            stream,
            resizes: resize_rx,
        })
    }

    /// The container's processes (`docker top`).
    pub async fn top(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
        ps_args: Option<String>,
    ) -> Result<ProcessList, AppError> {
        let container = self.resolve(cx, reference, Action::ContainerGet).await?;
        if !container.status.is_running() {
            return Err(not_running(&container, "top"));
        }
        let (agents, instance) = self.on_agent(&container, "top")?;
        let top = agents
            .top(&cx.request_id, &instance, container.id, ps_args)
            .await
            .map_err(|e| agent_error(&container, &e))?;
        Ok(ProcessList {
            titles: top.titles,
            processes: top.processes,
        })
    }

    /// A one-shot resource usage sample.
    pub async fn stats(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
    ) -> Result<ContainerStats, AppError> {
        let container = self.resolve(cx, reference, Action::ContainerStats).await?;
        if !container.status.is_running() {
            return Err(not_running(&container, "stats"));
        }
        let (agents, instance) = self.on_agent(&container, "stats")?;
        let s = agents
            .stats(&cx.request_id, &instance, container.id)
            .await
            .map_err(|e| agent_error(&container, &e))?;
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let memory_percent = if s.memory_limit_bytes > 0 {
            100.0 * s.memory_usage_bytes as f64 / s.memory_limit_bytes as f64
        } else {
            0.0
        };
        Ok(ContainerStats {
            name: container.name,
            cpu_percent: s.cpu_percent,
            memory_usage_mib: mib(s.memory_usage_bytes),
            memory_limit_mib: mib(s.memory_limit_bytes),
            memory_percent,
            block_read_bytes: s.block_read_bytes,
            block_write_bytes: s.block_write_bytes,
            net_rx_bytes: s.network_rx_bytes,
            net_tx_bytes: s.network_tx_bytes,
        })
    }
}

fn stream_error(e: &AgentError) -> AppError {
    AppError::Unavailable {
        what: "the container's instance".into(),
        source: Some(Box::new(e.clone())),
    }
}

/// A live console: the front end's frames ⇄ the agent's stream.
struct Console {
    app: App,
    key: String,
    stream: Box<dyn AgentStream>,
    resizes: mpsc::Receiver<TtySize>,
}

/// What the client is sent for one thing the agent sent, and whether the
/// session ends with it (`Some(result)`).
fn console_frame(
    frame: Option<Result<StreamEvent, AgentError>>,
) -> (Option<ConsoleOutput>, Option<Result<(), AppError>>) {
    match frame {
        None => (None, Some(Ok(()))),
        Some(Ok(StreamEvent::Started)) => (None, None),
        Some(Ok(StreamEvent::Output { stream, data })) => {
            let output = match stream {
                OutputStream::Stdout => ConsoleOutput::Stdout(data),
                OutputStream::Stderr => ConsoleOutput::Stderr(data),
                OutputStream::Tty => ConsoleOutput::Tty(data),
            };
            (Some(output), None)
        }
        Some(Ok(StreamEvent::End { exit_code })) => {
            (exit_code.map(ConsoleOutput::Exit), Some(Ok(())))
        }
        Some(Ok(StreamEvent::Failed { kind, message })) => {
            let failed = AppError::Unavailable {
                what: format!("the console ({message})"),
                source: None,
            };
            (
                Some(ConsoleOutput::Error { kind, message }),
                Some(Err(failed)),
            )
        }
        Some(Err(e)) => {
            let output = ConsoleOutput::Error {
                kind: e.kind(),
                message: e.to_string(),
            };
            (Some(output), Some(Err(stream_error(&e))))
        }
    }
}

/// What the agent is sent for one thing the client sent.
fn stream_input(input: ConsoleInput) -> StreamInput {
    match input {
        ConsoleInput::Stdin(data) => StreamInput::Stdin(data),
        ConsoleInput::Resize(size) => StreamInput::Resize(size),
        ConsoleInput::CloseStdin => StreamInput::CloseStdin,
    }
}

impl ConsoleSession for Console {
    fn run(self: Box<Self>, io: ConsoleIo) -> BoxFuture<'static, Result<(), AppError>> {
        async move {
            let Console {
                app,
                key,
                mut stream,
                mut resizes,
            } = *self;
            let ConsoleIo { mut input, output } = io;
            let result = loop {
                tokio::select! {
                    frame = stream.next() => {
                        let (to_client, end) = console_frame(frame);
                        if let Some(to_client) = to_client
                            && output.send(to_client).await.is_err()
                        {
                            break Ok(());
                        }
                        if let Some(end) = end {
                            break end;
                        }
                    }
                    message = input.recv() => match message {
                        None => break Ok(()),
                        Some(message) => {
                            let is_data = matches!(message, ConsoleInput::Stdin(_));
                            // A lost resize is harmless (the next one wins);
                            // lost stdin means the stream has ended.
                            if stream.send(stream_input(message)).await.is_err() && is_data {
                                break Ok(());
                            }
                        }
                    },
                    Some(size) = resizes.recv() => {
                        let _ = stream.send(StreamInput::Resize(size)).await;
                    }
                }
            };
            lock(&app.inner.resizers).remove(&key);
            result
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nest_core::ErrorKind;

    #[test]
    fn agent_frames_become_typed_console_frames() {
        let data = bytes::Bytes::from_static(b"hi");
        let output = |stream| {
            console_frame(Some(Ok(StreamEvent::Output {
                stream,
                data: data.clone(),
            })))
        };
        assert!(
            matches!(output(OutputStream::Stdout), (Some(ConsoleOutput::Stdout(d)), None) if d == data)
        );
        assert!(
            matches!(output(OutputStream::Stderr), (Some(ConsoleOutput::Stderr(d)), None) if d == data)
        );
        assert!(
            matches!(output(OutputStream::Tty), (Some(ConsoleOutput::Tty(d)), None) if d == data)
        );
        assert!(matches!(
            console_frame(Some(Ok(StreamEvent::End { exit_code: Some(2) }))),
            (Some(ConsoleOutput::Exit(2)), Some(Ok(())))
        ));
        assert!(matches!(
            console_frame(Some(Ok(StreamEvent::End { exit_code: None }))),
            (None, Some(Ok(())))
        ));
        assert!(matches!(console_frame(None), (None, Some(Ok(())))));
        assert!(matches!(
            console_frame(Some(Ok(StreamEvent::Failed {
                kind: ErrorKind::NotFound,
                message: "no such exec".into(),
            }))),
            (
                Some(ConsoleOutput::Error {
                    kind: ErrorKind::NotFound,
                    ..
                }),
                Some(Err(AppError::Unavailable { .. }))
            )
        ));
        let lost = AgentError::Refused {
            kind: ErrorKind::Unavailable,
            message: "the relay went away".into(),
        };
        assert!(matches!(
            console_frame(Some(Err(lost))),
            (
                Some(ConsoleOutput::Error {
                    kind: ErrorKind::Unavailable,
                    ..
                }),
                Some(Err(AppError::Unavailable { .. }))
            )
        ));
        assert_eq!(
            stream_input(ConsoleInput::CloseStdin),
            StreamInput::CloseStdin
        );
    }
}
