//! Talking to a running container: exec, logs, attach and consoles, top
//! and stats. Interactive sessions are relay streams; no Docker socket is
//! ever exposed.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use nest_relay::client::RelayStream;
use nest_relay::proto::{self, command, command_output, stream_open, stream_output};
use tokio::sync::mpsc;

use super::{App, lock, placed_on, relay_error};
use crate::api::backend::{
    BackendError, CallContext, ConsoleInput, ConsoleIo, ConsoleSession, ConsoleTarget,
    ConsoleTicket, ConsoleToken, ContainerRef, ContainerStats, ExecId, ExecOutcome, ExecRequest,
    ExecResult, LogStream, LogsParams, ProcessList, TtySize,
};
use crate::auth::policy::Action;
use crate::domain::{Container, ContainerId};

/// Most log bytes returned by a non-following logs call.
const MAX_LOG_BYTES: usize = 16 * 1024 * 1024;
/// How long a captured exec may run.
const EXEC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);
/// Resize requests queued per console.
const RESIZE_QUEUE: usize = 4;
/// Log chunks queued towards an HTTP client.
const LOG_QUEUE: usize = 16;

fn not_running(container: &Container, action: &'static str) -> BackendError {
    BackendError::InvalidState {
        id: container.id,
        status: container.status,
        action,
    }
}

impl App {
    pub(super) async fn execute_in(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
        request: ExecRequest,
    ) -> Result<ExecOutcome, BackendError> {
        let container = self.resolve(cx, reference, Action::ContainerExec).await?;
        if !container.status.is_running() {
            return Err(not_running(&container, "execute"));
        }
        if request.command.is_empty() {
            return Err(BackendError::InvalidRequest {
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
        let output = self
            .on_agent(
                cx,
                &container,
                "execute",
                command::Kind::Exec(proto::ExecCapture {
                    uuid: container.id.to_string(),
                    command: request.command,
                    ..Default::default()
                }),
                EXEC_TIMEOUT,
            )
            .await?;
        let command_output::Kind::Exec(captured) = output else {
            return Err(unexpected());
        };
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

    pub(super) async fn resize_exec(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
        exec_id: &ExecId,
        size: TtySize,
    ) -> Result<(), BackendError> {
        let container = self.resolve(cx, reference, Action::ContainerExec).await?;
        self.send_resize(&format!("{}/{}", container.id, exec_id), size)
            .ok_or_else(|| BackendError::ExecNotFound(exec_id.clone()))
    }

    pub(super) async fn resize_attach(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
        size: TtySize,
    ) -> Result<(), BackendError> {
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
    ) -> Result<RelayStream, BackendError> {
        let container = self.resolve(cx, reference, Action::ContainerLogs).await?;
        if !container.status.can_read_logs() {
            return Err(not_running(&container, "logs"));
        }
        let instance = placed_on(&container, "logs")?;
        self.inner
            .relay
            .open_stream(
                &instance,
                cx.request_id.as_str(),
                stream_open::Kind::Logs(proto::LogsStream {
                    uuid: container.id.to_string(),
                    stdout: params.stdout,
                    stderr: params.stderr,
                    tail: params.tail,
                    since: params.since.unwrap_or(0),
                    timestamps: params.timestamps,
                    follow,
                }),
            )
            .await
            .map_err(|e| relay_error(&container, &e))
    }

    pub(super) async fn read_logs(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
        params: LogsParams,
    ) -> Result<String, BackendError> {
        let mut stream = self.open_logs(cx, reference, &params, false).await?;
        let mut text = Vec::new();
        while let Some(frame) = stream.next().await {
            match frame.map_err(|e| stream_error(&e))? {
                stream_output::Kind::Chunk(chunk) => {
                    let room = MAX_LOG_BYTES.saturating_sub(text.len());
                    text.extend_from_slice(&chunk.data[..chunk.data.len().min(room)]);
                }
                stream_output::Kind::Error(e) => {
                    return Err(BackendError::Unavailable {
                        what: format!("logs ({})", e.message),
                        source: None,
                    });
                }
                stream_output::Kind::End(_) => break,
                stream_output::Kind::Started(_) => {}
            }
        }
        Ok(String::from_utf8_lossy(&text).into_owned())
    }

    pub(super) async fn stream_logs(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
        params: LogsParams,
    ) -> Result<LogStream, BackendError> {
        let mut stream = self.open_logs(cx, reference, &params, true).await?;
        let (tx, rx) = mpsc::channel::<Result<Bytes, BackendError>>(LOG_QUEUE);
        // The pump ends when the stream ends or the HTTP client goes away.
        self.inner.scheduler.tasks().spawn(async move {
            loop {
                let frame = tokio::select! {
                    () = tx.closed() => return,
                    frame = stream.next() => frame,
                };
                let item = match frame {
                    None | Some(Ok(stream_output::Kind::End(_))) => return,
                    Some(Ok(stream_output::Kind::Chunk(chunk))) => Ok(Bytes::from(chunk.data)),
                    Some(Ok(stream_output::Kind::Started(_))) => continue,
                    Some(Ok(stream_output::Kind::Error(e))) => Err(BackendError::Unavailable {
                        what: format!("logs ({})", e.message),
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

    pub(super) async fn attach_ticket(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
    ) -> Result<ConsoleTicket, BackendError> {
        let container = self.resolve(cx, reference, Action::ContainerAttach).await?;
        if !container.status.is_running() {
            return Err(not_running(&container, "attach"));
        }
        if !container.spec.interactive {
            return Err(BackendError::NotInteractive(container.id));
        }
        let token = self.issue_console(container.id, ConsoleTarget::Attach, Vec::new());
        Ok(ConsoleTicket {
            container_id: container.id,
            token,
        })
    }

    pub(super) async fn console(
        &self,
        container_id: ContainerId,
        token: &ConsoleToken,
        target: ConsoleTarget,
    ) -> Result<Box<dyn ConsoleSession>, BackendError> {
        let pending = self.redeem_console(container_id, token, &target)?;
        let container = self
            .store()
            .get_container(container_id)
            .await
            .map_err(|_| BackendError::ConsoleTokenRejected)?;
        let instance = placed_on(&container, "attach")?;
        let uuid = container.id.to_string();
        let (open, key) = match &target {
            ConsoleTarget::Attach => (
                stream_open::Kind::Attach(proto::AttachStream {
                    uuid,
                    stdin: true,
                    stdout: true,
                    stderr: true,
                    logs: false,
                }),
                format!("{container_id}/attach"),
            ),
            ConsoleTarget::Exec(exec_id) => (
                stream_open::Kind::Exec(proto::ExecStream {
                    uuid,
                    command: pending.command,
                    tty: true,
                    stdin: true,
                    width: 80,
                    height: 24,
                    ..Default::default()
                }),
                format!("{container_id}/{exec_id}"),
            ),
        };
        let stream = self
            .inner
            .relay
            .open_stream(&instance, "req-console", open)
            .await
            .map_err(|e| relay_error(&container, &e))?;
        let (resize_tx, resize_rx) = mpsc::channel(RESIZE_QUEUE);
        lock(&self.inner.resizers).insert(key.clone(), resize_tx);
        Ok(Box::new(Console {
            app: self.clone(),
            key,
            stream,
            resizes: resize_rx,
        }))
    }

    pub(super) async fn top_of(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
        ps_args: Option<String>,
    ) -> Result<ProcessList, BackendError> {
        let container = self.resolve(cx, reference, Action::ContainerGet).await?;
        if !container.status.is_running() {
            return Err(not_running(&container, "top"));
        }
        let output = self
            .on_agent(
                cx,
                &container,
                "top",
                command::Kind::Top(proto::Top {
                    uuid: container.id.to_string(),
                    ps_args: ps_args.unwrap_or_default(),
                }),
                super::ACTION_TIMEOUT,
            )
            .await?;
        let command_output::Kind::Top(top) = output else {
            return Err(unexpected());
        };
        Ok(ProcessList {
            titles: top.titles,
            processes: top.processes.into_iter().map(|r| r.cells).collect(),
        })
    }

    pub(super) async fn stats_of(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
    ) -> Result<ContainerStats, BackendError> {
        let container = self.resolve(cx, reference, Action::ContainerStats).await?;
        if !container.status.is_running() {
            return Err(not_running(&container, "stats"));
        }
        let output = self
            .on_agent(
                cx,
                &container,
                "stats",
                command::Kind::Stats(proto::Stats {
                    uuid: container.id.to_string(),
                }),
                super::ACTION_TIMEOUT,
            )
            .await?;
        let command_output::Kind::Stats(s) = output else {
            return Err(unexpected());
        };
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

fn unexpected() -> BackendError {
    BackendError::Internal {
        context: "reading an agent's answer",
        source: Box::new(std::io::Error::other(
            "the agent answered with another kind of result",
        )),
    }
}

fn stream_error(e: &nest_relay::client::RelayError) -> BackendError {
    BackendError::Unavailable {
        what: "the container's instance".into(),
        source: Some(Box::new(e.clone())),
    }
}

/// A live console: websocket ⇄ relay stream.
struct Console {
    app: App,
    key: String,
    stream: RelayStream,
    resizes: mpsc::Receiver<TtySize>,
}

impl ConsoleSession for Console {
    fn run(self: Box<Self>, io: ConsoleIo) -> BoxFuture<'static, Result<(), BackendError>> {
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
                    frame = stream.next() => match frame {
                        None | Some(Ok(stream_output::Kind::End(_))) => break Ok(()),
                        Some(Ok(stream_output::Kind::Chunk(chunk))) => {
                            if output.send(Bytes::from(chunk.data)).await.is_err() {
                                break Ok(());
                            }
                        }
                        Some(Ok(stream_output::Kind::Started(_))) => {}
                        Some(Ok(stream_output::Kind::Error(e))) => break Err(BackendError::Unavailable {
                            what: format!("the console ({})", e.message),
                            source: None,
                        }),
                        Some(Err(e)) => break Err(stream_error(&e)),
                    },
                    message = input.recv() => match message {
                        None => break Ok(()),
                        Some(ConsoleInput::Data(data)) => {
                            if stream.send_stdin(&data).await.is_err() {
                                break Ok(());
                            }
                        }
                        Some(ConsoleInput::Resize(size)) => {
                            let _ = stream.resize(u32::from(size.width), u32::from(size.height)).await;
                        }
                    },
                    Some(size) = resizes.recv() => {
                        let _ = stream.resize(u32::from(size.width), u32::from(size.height)).await;
                    }
                }
            };
            lock(&app.inner.resizers).remove(&key);
            result
        }
        .boxed()
    }
}
