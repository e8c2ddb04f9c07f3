//! Carrying out one command from the relay on the engine, and keeping the
//! commands for one container in order.
//!
//! Commands that change a container (create, start, stop, kill, restart,
//! pause, unpause, remove, update) go through that container's queue, one at a
//! time, in arrival order: a `stop` sent after a `start` never overtakes it.
//! Reads (inspect, list, top, stats, exec, ping, pull) run at once.

use std::collections::HashMap;
use std::time::Duration;

use nest_core::ErrorKind;
use nest_core::process::error_chain;
use nest_relay::convert::WireErrorKind;
use nest_relay::proto::{self, command, command_output};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::docker::{DockerError, Engine};

/// Commands queued for one container; more than this is a caller bug.
const CONTAINER_QUEUE_CAPACITY: usize = 64;
/// Largest captured exec output returned in one result.
pub const EXEC_CAPTURE_LIMIT: usize = 1024 * 1024;
/// A per-container worker with nothing to do for this long exits.
const WORKER_IDLE: Duration = Duration::from_secs(60);

/// Where a command's result goes.
pub type ResultSink = mpsc::Sender<proto::AgentMessage>;

/// The container a command changes, if it is one that must be ordered.
fn ordered_key(kind: &command::Kind) -> Option<&str> {
    match kind {
        command::Kind::Create(c) => c.spec.as_ref().map(|s| s.uuid.as_str()),
        command::Kind::Start(r) | command::Kind::Pause(r) | command::Kind::Unpause(r) => {
            Some(&r.uuid)
        }
        command::Kind::Stop(s) | command::Kind::Restart(s) => Some(&s.uuid),
        command::Kind::Kill(k) => Some(&k.uuid),
        command::Kind::Remove(r) => Some(&r.uuid),
        command::Kind::Update(u) => Some(&u.uuid),
        _ => None,
    }
}

/// Runs one command against the engine.
///
/// # Errors
/// The engine's error, classified.
pub async fn run(
    engine: &Engine,
    kind: command::Kind,
) -> Result<command_output::Kind, DockerError> {
    use command_output::Kind as Out;
    Ok(match kind {
        command::Kind::Ping(_) => Out::Pong(engine.ping().await?),
        command::Kind::PullImage(p) => {
            Out::ImagePulled(engine.pull_image(&p.reference, &p.registry_auth).await?)
        }
        command::Kind::Create(c) => Out::Container(engine.create(c).await?),
        command::Kind::Start(r) => Out::Container(engine.start(&r.uuid).await?),
        command::Kind::Stop(s) => Out::Container(engine.stop(&s.uuid, s.timeout_seconds).await?),
        command::Kind::Kill(k) => Out::Container(engine.kill(&k.uuid, &k.signal).await?),
        command::Kind::Restart(s) => {
            Out::Container(engine.restart(&s.uuid, s.timeout_seconds).await?)
        }
        command::Kind::Pause(r) => Out::Container(engine.pause(&r.uuid).await?),
        command::Kind::Unpause(r) => Out::Container(engine.unpause(&r.uuid).await?),
        command::Kind::Remove(r) => {
            engine.remove(&r.uuid, r.force).await?;
            Out::Done(proto::Empty {})
        }
        command::Kind::Inspect(r) => Out::Container(engine.inspect(&r.uuid).await?),
        command::Kind::List(_) => Out::List(proto::ContainerList {
            containers: engine.list().await?,
        }),
        command::Kind::Top(t) => Out::Top(engine.top(&t.uuid, &t.ps_args).await?),
        command::Kind::Stats(s) => Out::Stats(engine.stats(&s.uuid).await?),
        command::Kind::Exec(e) => Out::Exec(engine.exec_capture(e, EXEC_CAPTURE_LIMIT).await?),
        command::Kind::Update(u) => Out::Container(
            engine
                .update_resources(&u.uuid, u.cpu_millis, u.memory_bytes)
                .await?,
        ),
    })
}

/// Runs a command within its timeout and builds the result message.
async fn answer(engine: &Engine, request: proto::CommandRequest) -> proto::AgentMessage {
    let outcome = match request.command.and_then(|c| c.kind) {
        None => Err(ErrorKind::Invalid.error("command is empty")),
        Some(kind) => {
            let timeout = Duration::from_millis(u64::from(request.timeout_ms.max(1)));
            match tokio::time::timeout(timeout, run(engine, kind)).await {
                Ok(Ok(output)) => Ok(output),
                Ok(Err(e)) => {
                    let message = error_chain(&e);
                    tracing::info!(command_id = request.command_id, request_id = %request.request_id, error = %message, "command failed");
                    Err(e.kind().error(message))
                }
                Err(_) => Err(ErrorKind::Timeout
                    .error(format!("the command did not finish within {timeout:?}"))),
            }
        }
    };
    let outcome = match outcome {
        Ok(output) => {
            proto::command_result::Outcome::Output(proto::CommandOutput { kind: Some(output) })
        }
        Err(error) => proto::command_result::Outcome::Error(error),
    };
    proto::AgentMessage {
        kind: Some(proto::agent_message::Kind::Result(proto::CommandResult {
            command_id: request.command_id,
            outcome: Some(outcome),
        })),
    }
}

/// Dispatches a session's commands: ordered per container, concurrent
/// otherwise. Lives as long as one session.
pub struct Dispatcher {
    engine: Engine,
    results: ResultSink,
    tasks: TaskTracker,
    cancel: CancellationToken,
    queues: HashMap<String, mpsc::Sender<proto::CommandRequest>>,
}

impl Dispatcher {
    /// A dispatcher whose tasks are tracked by `tasks` and stop with `cancel`.
    pub fn new(
        engine: Engine,
        results: ResultSink,
        tasks: TaskTracker,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            engine,
            results,
            tasks,
            cancel,
            queues: HashMap::new(),
        }
    }

    /// Starts carrying out `request`; its result is sent when it is done.
    pub fn dispatch(&mut self, request: proto::CommandRequest) {
        let key = request
            .command
            .as_ref()
            .and_then(|c| c.kind.as_ref())
            .and_then(ordered_key)
            .map(str::to_owned);
        let Some(key) = key else {
            let engine = self.engine.clone();
            let results = self.results.clone();
            // In-flight commands finish even if the session ends: a create
            // half done is worse than one whose result is lost, and the next
            // session's inventory reports the outcome anyway.
            self.tasks.spawn(async move {
                let message = answer(&engine, request).await;
                let _ = results.send(message).await;
            });
            return;
        };
        let mut request = request;
        loop {
            if !self.queues.contains_key(&key) {
                let worker = self.spawn_worker();
                self.queues.insert(key.clone(), worker);
            }
            let Some(queue) = self.queues.get(&key) else {
                return;
            };
            match queue.try_send(request) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Closed(back)) => {
                    // The worker went idle and exited; start a new one.
                    self.queues.remove(&key);
                    request = back;
                }
                Err(mpsc::error::TrySendError::Full(back)) => {
                    let message = proto::AgentMessage {
                        kind: Some(proto::agent_message::Kind::Result(proto::CommandResult {
                            command_id: back.command_id,
                            outcome: Some(proto::command_result::Outcome::Error(
                                ErrorKind::Unavailable.error(format!(
                                    "container {key} already has {CONTAINER_QUEUE_CAPACITY} commands queued"
                                )),
                            )),
                        })),
                    };
                    if self.results.try_send(message).is_err() {
                        tracing::warn!(container = %key, "could not report a refused command");
                    }
                    return;
                }
            }
        }
    }

    fn spawn_worker(&self) -> mpsc::Sender<proto::CommandRequest> {
        let (tx, mut rx) = mpsc::channel::<proto::CommandRequest>(CONTAINER_QUEUE_CAPACITY);
        let engine = self.engine.clone();
        let results = self.results.clone();
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            loop {
                let request = tokio::select! {
                    () = cancel.cancelled() => return,
                    request = tokio::time::timeout(WORKER_IDLE, rx.recv()) => match request {
                        Ok(Some(request)) => request,
                        Ok(None) | Err(_) => return,
                    },
                };
                let message = answer(&engine, request).await;
                // Keep draining the queue even if the session is gone.
                let _ = results.send(message).await;
            }
        });
        tx
    }
}
