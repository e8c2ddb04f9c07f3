//! Byte streams out of containers: logs, attach, and the
//! [`InteractiveSession`] that attach and interactive exec hand back.
//!
//! The streams are pull-based adapters over bollard's: nothing is spawned,
//! nothing buffers beyond one engine frame, and dropping a stream closes its
//! engine connection. Output is cut into [`Chunk`]s of at most
//! [`MAX_CHUNK_BYTES`], tagged stdout/stderr, or console for a terminal.

use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::container::LogOutput;
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, LogsOptionsBuilder, ResizeContainerTTYOptionsBuilder,
    ResizeExecOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::{Stream, StreamExt, stream};
use tokio::io::AsyncWrite;
use tracing::instrument;

use super::error::DockerError;
use super::{DOCKER_CALL_TIMEOUT, EXIT_STATUS_TIMEOUT, Engine, MAX_CHUNK_BYTES, bounded};
use crate::log_fields::CONTAINER_ID;
use crate::model::{AttachStream, Chunk, ContainerUuid, LogsRequest, OutputKind, TerminalSize};

/// A stream of output chunks from the engine; it ends when the engine
/// closes the output, and an `Err` item is the last one.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<Chunk, DockerError>> + Send>>;

/// How often an exec's status is re-read while waiting for its exit code.
const EXEC_STATUS_POLL: Duration = Duration::from_millis(50);

/// A two-way stream into a container: an interactive exec, or an attach.
pub struct InteractiveSession {
    /// What the process writes. Ends when the process (exec) or the
    /// container (attach) closes its output.
    pub output: ChunkStream,
    /// The process's stdin. Shutting it down ends stdin for an exec; for an
    /// attach, the container's stdin stays open for the next client
    /// (containers are created with `StdinOnce=false`).
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
    /// Resizes the terminal and reads the exit code; cloneable so that the
    /// input and output halves can live in different tasks.
    pub control: SessionControl,
}

impl std::fmt::Debug for InteractiveSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InteractiveSession")
            .field("control", &self.control)
            .finish_non_exhaustive()
    }
}

impl InteractiveSession {
    /// Resizes the session's terminal; see [`SessionControl::resize`].
    ///
    /// # Errors
    /// As [`SessionControl::resize`].
    pub async fn resize(&self, size: TerminalSize) -> Result<(), DockerError> {
        self.control.resize(size).await
    }

    /// The exit code once the output has ended; see
    /// [`SessionControl::exit_code`].
    ///
    /// # Errors
    /// As [`SessionControl::exit_code`].
    pub async fn exit_code(&self) -> Result<Option<i64>, DockerError> {
        self.control.exit_code().await
    }
}

/// The control side of an [`InteractiveSession`].
#[derive(Clone)]
pub struct SessionControl {
    engine: Engine,
    target: Target,
}

/// What a session is connected to.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    /// An exec instance, by its engine id.
    Exec {
        uuid: ContainerUuid,
        exec_id: String,
    },
    /// A container's main process, by the container's engine id.
    Container { uuid: ContainerUuid, id: String },
}

impl std::fmt::Debug for SessionControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionControl")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl SessionControl {
    pub(crate) fn new(engine: Engine, target: Target) -> Self {
        Self { engine, target }
    }

    fn describe(&self) -> String {
        match &self.target {
            Target::Exec { uuid, exec_id } => format!("exec {exec_id} in container {uuid}"),
            Target::Container { uuid, .. } => format!("container {uuid}"),
        }
    }

    /// Resizes the session's terminal to `size`.
    ///
    /// # Errors
    /// `Conflict` or `NotFound` from the engine once the process is gone.
    pub async fn resize(&self, size: TerminalSize) -> Result<(), DockerError> {
        let (w, h) = terminal_size(size);
        let docker = &self.engine.docker;
        match &self.target {
            Target::Exec { exec_id, .. } => {
                let options = ResizeExecOptionsBuilder::default().w(w).h(h).build();
                bounded(
                    "resize",
                    &self.describe(),
                    DOCKER_CALL_TIMEOUT,
                    docker.resize_exec(exec_id, options),
                )
                .await
            }
            Target::Container { id, .. } => {
                let options = ResizeContainerTTYOptionsBuilder::default()
                    .w(w)
                    .h(h)
                    .build();
                bounded(
                    "resize",
                    &self.describe(),
                    DOCKER_CALL_TIMEOUT,
                    docker.resize_container_tty(id, options),
                )
                .await
            }
        }
    }

    /// The exit code of the session's process, meant to be read once the
    /// output has ended. `None` when the process still runs after
    /// [`EXIT_STATUS_TIMEOUT`] (an attach whose container keeps running).
    ///
    /// # Errors
    /// Engine failures as classified; `NotFound` when the exec or container
    /// is already gone.
    pub async fn exit_code(&self) -> Result<Option<i64>, DockerError> {
        match &self.target {
            Target::Exec { exec_id, .. } => self.exec_exit_code(exec_id).await,
            Target::Container { id, .. } => self.container_exit_code(id).await,
        }
    }

    /// The engine marks an exec finished slightly after its output closes,
    /// and has no wait call for execs, so its status is polled briefly.
    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, DockerError> {
        let deadline = tokio::time::Instant::now() + EXIT_STATUS_TIMEOUT;
        let mut poll = tokio::time::interval(EXEC_STATUS_POLL);
        loop {
            poll.tick().await;
            let status = bounded(
                "inspect",
                &self.describe(),
                DOCKER_CALL_TIMEOUT,
                self.engine.docker.inspect_exec(exec_id),
            )
            .await?;
            if status.running != Some(true) {
                return Ok(status.exit_code);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    async fn container_exit_code(&self, id: &str) -> Result<Option<i64>, DockerError> {
        let options = WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        let mut wait = self.engine.docker.wait_container(id, Some(options));
        match tokio::time::timeout(EXIT_STATUS_TIMEOUT, wait.next()).await {
            Err(_elapsed) => Ok(None),
            Ok(None) => Err(DockerError::Malformed {
                operation: "wait",
                target: self.describe(),
                missing: "an exit status",
            }),
            Ok(Some(Ok(exited))) => Ok(Some(exited.status_code)),
            // bollard reports a non-zero exit status as an error.
            Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. }))) => {
                Ok(Some(code))
            }
            Ok(Some(Err(source))) => Err(DockerError::Engine {
                operation: "wait",
                target: self.describe(),
                source,
            }),
        }
    }
}

impl Engine {
    /// A container's logs: `tail` lines (all when absent) since `since`
    /// (the start when absent), with timestamps if asked, and new output as
    /// it comes when `follow` is set. Asking for neither stdout nor stderr
    /// means both, as `docker logs` does.
    ///
    /// # Errors
    /// `NotFound` for a container this agent does not own; `Invalid` for a
    /// `since` outside the engine's range. Failures while streaming arrive
    /// as the stream's last item.
    #[instrument(skip_all, fields({ CONTAINER_ID } = %req.uuid, follow = req.follow))]
    pub async fn logs(&self, req: LogsRequest) -> Result<ChunkStream, DockerError> {
        let since = since_seconds(req.since)?;
        let managed = self.find(&req.uuid).await?;
        let both = !req.stdout && !req.stderr;
        let mut options = LogsOptionsBuilder::default()
            .stdout(req.stdout || both)
            .stderr(req.stderr || both)
            .since(since)
            .timestamps(req.timestamps)
            .follow(req.follow);
        if let Some(tail) = req.tail {
            options = options.tail(&tail.to_string());
        }
        let output = self.docker.logs(&managed.id, Some(options.build()));
        Ok(chunk_stream(
            output,
            managed.tty(),
            "logs",
            managed.target(),
        ))
    }

    /// Attaches to a container's main process: its output (replaying the
    /// existing output first when `logs` is set) and, with `stdin`, its
    /// stdin. Asking for neither stdout nor stderr means both.
    ///
    /// # Errors
    /// `NotFound` for a container this agent does not own; engine failures
    /// as classified.
    #[instrument(skip_all, fields({ CONTAINER_ID } = %req.uuid))]
    pub async fn attach(&self, req: AttachStream) -> Result<InteractiveSession, DockerError> {
        let managed = self.find(&req.uuid).await?;
        let both = !req.stdout && !req.stderr;
        let options = AttachContainerOptionsBuilder::default()
            .stream(true)
            .logs(req.logs)
            .stdin(req.stdin)
            .stdout(req.stdout || both)
            .stderr(req.stderr || both)
            .build();
        let attached = bounded(
            "attach",
            &managed.target(),
            DOCKER_CALL_TIMEOUT,
            self.docker.attach_container(&managed.id, Some(options)),
        )
        .await?;
        Ok(InteractiveSession {
            output: chunk_stream(attached.output, managed.tty(), "attach", managed.target()),
            input: attached.input,
            control: SessionControl::new(
                self.clone(),
                Target::Container {
                    uuid: managed.uuid.clone(),
                    id: managed.id.clone(),
                },
            ),
        })
    }
}

/// A terminal size as the engine's integers.
fn terminal_size(size: TerminalSize) -> (i32, i32) {
    (i32::from(size.width.get()), i32::from(size.height.get()))
}

/// `since` as the engine's Unix seconds, which it reads as a 32-bit
/// number; 0 means from the start.
fn since_seconds(since: Option<SystemTime>) -> Result<i32, DockerError> {
    let Some(since) = since else {
        return Ok(0);
    };
    let seconds = match since.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::from(after.as_secs()),
        Err(before) => -i128::from(before.duration().as_secs()),
    };
    i32::try_from(seconds)
        .ok()
        .filter(|s| *s >= 0)
        .ok_or_else(|| DockerError::invalid("since", format!("{seconds} is outside 0..=2^31-1")))
}

/// Adapts bollard's output frames into chunks.
pub(crate) fn chunk_stream(
    output: impl Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send + 'static,
    tty: bool,
    operation: &'static str,
    target: String,
) -> ChunkStream {
    Box::pin(output.flat_map(move |frame| {
        let items: Vec<Result<Chunk, DockerError>> = match frame {
            Ok(frame) => chunks(frame, tty).map(Ok).collect(),
            Err(source) => vec![Err(DockerError::Engine {
                operation,
                target: target.clone(),
                source,
            })],
        };
        stream::iter(items)
    }))
}

/// One engine frame as chunks of at most [`MAX_CHUNK_BYTES`].
///
/// With a terminal the engine does not separate the streams, so everything
/// is console output whatever bollard guessed; stdin echoes never occur on
/// output and are dropped.
pub(crate) fn chunks(frame: LogOutput, tty: bool) -> impl Iterator<Item = Chunk> {
    let kind = match (&frame, tty) {
        (_, true) => Some(OutputKind::Console),
        (LogOutput::StdOut { .. } | LogOutput::Console { .. }, false) => Some(OutputKind::Stdout),
        (LogOutput::StdErr { .. }, false) => Some(OutputKind::Stderr),
        (LogOutput::StdIn { .. }, false) => None,
    };
    let bytes = frame.into_bytes();
    kind.into_iter().flat_map(move |kind| {
        bytes
            .chunks(MAX_CHUNK_BYTES)
            .map(|piece| Chunk {
                kind,
                data: piece.to_vec(),
            })
            .collect::<Vec<_>>()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_frames_are_split() {
        let frame = LogOutput::StdErr {
            message: vec![b'x'; MAX_CHUNK_BYTES * 2 + 1].into(),
        };
        let out: Vec<Chunk> = chunks(frame, false).collect();
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|c| c.kind == OutputKind::Stderr));
        assert_eq!(out[2].data.len(), 1);
    }

    #[test]
    fn since_must_fit_the_engine() {
        assert_eq!(since_seconds(None).expect("from the start"), 0);
        let minute = UNIX_EPOCH + Duration::from_secs(60);
        assert_eq!(since_seconds(Some(minute)).expect("fits"), 60);
        let far = UNIX_EPOCH + Duration::from_secs(1 << 31);
        let err = since_seconds(Some(far)).expect_err("too far");
        assert_eq!(
            err.to_string(),
            "invalid since: 2147483648 is outside 0..=2^31-1"
        );
    }

    #[test]
    fn tty_output_is_console() {
        let frame = LogOutput::StdOut {
            message: "hi\n".into(),
        };
        let out: Vec<Chunk> = chunks(frame, true).collect();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, OutputKind::Console);
        assert_eq!(out[0].data, b"hi\n");
    }
}
