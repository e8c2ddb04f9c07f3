//! Carrying out one command from the relay on the engine, and keeping the
//! commands for one container in order.
//!
//! Commands that change a container (create, start, stop, kill, restart,
//! pause, unpause, remove, update) go through that container's queue, one at a
//! time, in arrival order: a `stop` sent after a `start` never overtakes it.
//! Reads (inspect, list, top, stats, exec, ping, pull) run at once.
//!
//! Commands arrive already read off the wire ([`crate::convert`]); one the
//! conversion refused is answered with its reason like any other failure.
//!
//! Each command runs in a `command` span that carries the service's
//! `request_id`, the relay's `command_id` and, when the command names one,
//! the `container_id`: every line logged while carrying it out, down to the
//! engine calls, can be found by the API request that caused it.

use std::collections::HashMap;
use std::time::Duration;

use nest_core::ErrorKind;
use nest_core::process::error_chain;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, Span, field};

use crate::docker::{DockerError, Engine};
use crate::log_fields::{COMMAND_ID, CONTAINER_ID, REQUEST_ID};
use crate::model::{Command, CommandOutput, CommandRequest, ContainerUuid, Failure, Outbound};

/// Commands queued for one container; more than this is a caller bug.
const CONTAINER_QUEUE_CAPACITY: usize = 64;
/// Largest captured exec output returned in one result.
pub const EXEC_CAPTURE_LIMIT: usize = 1024 * 1024;
/// A per-container worker with nothing to do for this long exits.
const WORKER_IDLE: Duration = Duration::from_secs(60);
/// Shortest time a command is given, whatever the request says.
const MIN_COMMAND_TIMEOUT: Duration = Duration::from_millis(1);

/// How the `command` span names a command the conversion refused.
const REFUSED_COMMAND: &str = "refused";

/// Where a session's messages to the relay go.
pub type OutboundSink = mpsc::Sender<Outbound>;

/// A command waiting in its container's queue, with the span it runs in.
struct Queued {
    request: CommandRequest,
    span: Span,
}

/// The span `request` runs in, a child of the current (session) span.
fn command_span(request: &CommandRequest) -> Span {
    let command = request.command.as_ref().ok();
    tracing::info_span!(
        "command",
        { REQUEST_ID } = request.request_id.as_ref().map(field::display),
        { COMMAND_ID } = request.id.0,
        command = command.map_or(REFUSED_COMMAND, Command::name),
        { CONTAINER_ID } = command.and_then(Command::container).map(field::display),
    )
}

/// Runs one command against the engine.
///
/// # Errors
/// The engine's error, classified.
pub async fn run(engine: &Engine, command: Command) -> Result<CommandOutput, DockerError> {
    use CommandOutput as Out;
    Ok(match command {
        Command::Ping => Out::Pong(engine.ping().await?),
        Command::PullImage(p) => Out::ImagePulled(
            engine
                .pull_image(&p.reference, p.registry_auth.as_ref())
                .await?,
        ),
        Command::Create(c) => Out::Container(engine.create(*c).await?),
        Command::Start(uuid) => Out::Container(engine.start(&uuid).await?),
        Command::Stop(s) => Out::Container(engine.stop(&s.uuid, s.timeout).await?),
        Command::Kill(k) => Out::Container(engine.kill(&k.uuid, k.signal.as_deref()).await?),
        Command::Restart(s) => Out::Container(engine.restart(&s.uuid, s.timeout).await?),
        Command::Pause(uuid) => Out::Container(engine.pause(&uuid).await?),
        Command::Unpause(uuid) => Out::Container(engine.unpause(&uuid).await?),
        Command::Remove(r) => {
            engine.remove(&r.uuid, r.force).await?;
            Out::Done
        }
        Command::Inspect(uuid) => Out::Container(engine.inspect(&uuid).await?),
        Command::List => Out::List(engine.list().await?),
        Command::Top(t) => Out::Top(engine.top(&t.uuid, t.ps_args.as_deref()).await?),
        Command::Stats(uuid) => Out::Stats(engine.stats(&uuid).await?),
        Command::Exec(e) => Out::Exec(engine.exec_capture(e, EXEC_CAPTURE_LIMIT).await?),
        Command::Update(u) => Out::Container(
            engine
                .update_resources(&u.uuid, u.cpu_millis, u.memory_bytes)
                .await?,
        ),
    })
}

/// Runs a command within its timeout and builds the result message. Meant
/// to run in the request's [`command_span`].
async fn answer(engine: &Engine, request: CommandRequest) -> Outbound {
    let outcome = match request.command {
        Err(refused) => {
            let message = error_chain(&refused);
            tracing::info!(error = %message, "command refused");
            Err(Failure::new(refused.kind(), message))
        }
        Ok(command) => {
            let timeout = request.timeout.max(MIN_COMMAND_TIMEOUT);
            let started = tokio::time::Instant::now();
            match tokio::time::timeout(timeout, run(engine, command)).await {
                Ok(Ok(output)) => {
                    tracing::debug!(elapsed = ?started.elapsed(), "command done");
                    Ok(output)
                }
                Ok(Err(e)) => {
                    let message = error_chain(&e);
                    tracing::info!(error = %message, "command failed");
                    Err(Failure::new(e.kind(), message))
                }
                Err(_) => {
                    tracing::info!(?timeout, "command timed out");
                    Err(Failure::new(
                        ErrorKind::Timeout,
                        format!("the command did not finish within {timeout:?}"),
                    ))
                }
            }
        }
    };
    Outbound::Result {
        command: request.id,
        outcome,
    }
}

/// Dispatches a session's commands: ordered per container, concurrent
/// otherwise. Lives as long as one session.
pub struct Dispatcher {
    engine: Engine,
    out: OutboundSink,
    tasks: TaskTracker,
    cancel: CancellationToken,
    queues: HashMap<ContainerUuid, mpsc::Sender<Queued>>,
}

impl Dispatcher {
    /// A dispatcher whose tasks are tracked by `tasks` and stop with `cancel`.
    pub fn new(
        engine: Engine,
        out: OutboundSink,
        tasks: TaskTracker,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            engine,
            out,
            tasks,
            cancel,
            queues: HashMap::new(),
        }
    }

    /// Starts carrying out `request` in its own span (see the module
    /// docs); its result is sent when it is done.
    pub fn dispatch(&mut self, request: CommandRequest) {
        let span = command_span(&request);
        let key = request
            .command
            .as_ref()
            .ok()
            .and_then(Command::changes)
            .cloned();
        let Some(key) = key else {
            let engine = self.engine.clone();
            let out = self.out.clone();
            // In-flight commands finish even if the session ends: a create
            // half done is worse than one whose result is lost, and the next
            // session's inventory reports the outcome anyway.
            self.tasks.spawn(
                async move {
                    let message = answer(&engine, request).await;
                    let _ = out.send(message).await;
                }
                .instrument(span),
            );
            return;
        };
        let mut queued = Queued { request, span };
        loop {
            if !self.queues.contains_key(&key) {
                let worker = self.spawn_worker();
                self.queues.insert(key.clone(), worker);
            }
            let Some(queue) = self.queues.get(&key) else {
                return;
            };
            match queue.try_send(queued) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Closed(back)) => {
                    // The worker went idle and exited; start a new one.
                    self.queues.remove(&key);
                    queued = back;
                }
                Err(mpsc::error::TrySendError::Full(back)) => {
                    let _entered = back.span.enter();
                    tracing::info!(
                        queued = CONTAINER_QUEUE_CAPACITY,
                        "command refused: its container's queue is full"
                    );
                    let message = Outbound::Result {
                        command: back.request.id,
                        outcome: Err(Failure::new(
                            ErrorKind::Unavailable,
                            format!(
                                "container {key} already has {CONTAINER_QUEUE_CAPACITY} commands queued"
                            ),
                        )),
                    };
                    if self.out.try_send(message).is_err() {
                        tracing::warn!("could not report a refused command");
                    }
                    return;
                }
            }
        }
    }

    fn spawn_worker(&self) -> mpsc::Sender<Queued> {
        let (tx, mut rx) = mpsc::channel::<Queued>(CONTAINER_QUEUE_CAPACITY);
        let engine = self.engine.clone();
        let out = self.out.clone();
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            loop {
                let Queued { request, span } = tokio::select! {
                    () = cancel.cancelled() => return,
                    queued = tokio::time::timeout(WORKER_IDLE, rx.recv()) => match queued {
                        Ok(Some(queued)) => queued,
                        Ok(None) | Err(_) => return,
                    },
                };
                let message = answer(&engine, request).instrument(span).await;
                // Keep draining the queue even if the session is gone.
                let _ = out.send(message).await;
            }
        });
        tx
    }
}
