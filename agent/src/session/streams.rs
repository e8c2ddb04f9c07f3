//! The agent's end of multiplexed streams: logs, interactive exec, attach
//! and image loads, each bound to the session's flow control.
//!
//! Output: the agent starts with `STREAM_WINDOW_FRAMES` credits per stream,
//! spends one per data frame and waits when it has none; the relay returns
//! credit as frames leave it. Input: the relay spends credit we grant, and
//! we grant one back per frame consumed, so a slow `docker load` or a
//! process not reading stdin stalls only its own stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::{Stream, StreamExt};
use nest_core::ErrorKind;
use nest_relay::convert::WireErrorKind;
use nest_relay::proto::{self, agent_message, stream_input, stream_open, stream_output};
use nest_relay::version::{MAX_CHUNK_BYTES, STREAM_WINDOW_FRAMES};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use nest_core::process::error_chain;

use super::commands::ResultSink;
use crate::docker::{DockerError, Engine};

/// Input frames buffered per stream: the relay's window plus slack for
/// control frames (resize, close) that need no credit.
const INPUT_CAPACITY: usize = STREAM_WINDOW_FRAMES as usize + 8;
/// Streams one session may have open.
const MAX_STREAMS: usize = 256;

struct StreamHandle {
    input: mpsc::Sender<stream_input::Kind>,
    output_credit: Arc<Semaphore>,
    cancel: CancellationToken,
}

type StreamMap = Arc<Mutex<HashMap<u64, StreamHandle>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing awaits or panics under this lock.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The streams of one session.
pub struct Streams {
    engine: Engine,
    out: ResultSink,
    tasks: TaskTracker,
    cancel: CancellationToken,
    open: StreamMap,
}

impl Streams {
    /// Streams for a session whose messages go to `out`.
    pub fn new(
        engine: Engine,
        out: ResultSink,
        tasks: TaskTracker,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            engine,
            out,
            tasks,
            cancel,
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Handles a stream request from the relay (open or input).
    pub fn handle(&self, request: proto::StreamRequest) {
        let stream_id = request.stream_id;
        match request.kind {
            Some(proto::stream_request::Kind::Open(open)) => self.open(stream_id, open),
            Some(proto::stream_request::Kind::Input(input)) => {
                let Some(kind) = input.kind else { return };
                let mut open = lock(&self.open);
                let Some(handle) = open.get(&stream_id) else {
                    return; // already finished
                };
                if matches!(kind, stream_input::Kind::Cancel(_)) {
                    handle.cancel.cancel();
                    open.remove(&stream_id);
                    return;
                }
                if handle.input.try_send(kind).is_err() {
                    tracing::warn!(
                        stream_id,
                        "relay overran a stream's input window; cancelling it"
                    );
                    handle.cancel.cancel();
                    open.remove(&stream_id);
                }
            }
            None => {}
        }
    }

    /// Credit from the relay for more output frames.
    pub fn credit(&self, credit: &proto::StreamCredit) {
        if let Some(handle) = lock(&self.open).get(&credit.stream_id) {
            let room = (STREAM_WINDOW_FRAMES as usize * 4)
                .saturating_sub(handle.output_credit.available_permits());
            handle
                .output_credit
                .add_permits((credit.frames as usize).min(room));
        }
    }

    fn open(&self, stream_id: u64, open: proto::StreamOpenRequest) {
        let (input_tx, input_rx) = mpsc::channel(INPUT_CAPACITY);
        let output_credit = Arc::new(Semaphore::new(STREAM_WINDOW_FRAMES as usize));
        let cancel = self.cancel.child_token();
        let sender = FrameSender {
            stream_id,
            out: self.out.clone(),
            credit: output_credit.clone(),
            cancel: cancel.clone(),
        };
        {
            let mut streams = lock(&self.open);
            if streams.len() >= MAX_STREAMS || streams.contains_key(&stream_id) {
                drop(streams);
                let sender = sender;
                self.tasks.spawn(async move {
                    sender
                        .finish(Err(ErrorKind::Unavailable.error("too many open streams")))
                        .await;
                });
                return;
            }
            streams.insert(
                stream_id,
                StreamHandle {
                    input: input_tx,
                    output_credit,
                    cancel: cancel.clone(),
                },
            );
        }
        let engine = self.engine.clone();
        let streams = self.open.clone();
        let request_id = open.request_id;
        let kind = open.open.and_then(|o| o.kind);
        self.tasks.spawn(async move {
            let outcome = tokio::select! {
                () = cancel.cancelled() => None,
                outcome = run_stream(&engine, kind, &sender, input_rx) => Some(outcome),
            };
            lock(&streams).remove(&stream_id);
            match outcome {
                None => tracing::debug!(stream_id, %request_id, "stream cancelled"),
                Some(Ok(exit_code)) => sender.finish(Ok(exit_code)).await,
                Some(Err(e)) => {
                    let message = error_chain(&e);
                    tracing::info!(stream_id, %request_id, error = %message, "stream failed");
                    sender.finish(Err(e.kind().error(message))).await;
                }
            }
        });
    }
}

/// Returns input credit to the relay as stdin frames are consumed.
#[derive(Clone)]
struct InputCredit {
    stream_id: u64,
    out: ResultSink,
}

impl InputCredit {
    async fn grant(&self, frames: u32) {
        let message = proto::AgentMessage {
            kind: Some(agent_message::Kind::Credit(proto::StreamCredit {
                stream_id: self.stream_id,
                frames,
            })),
        };
        let _ = self.out.send(message).await;
    }
}

/// Sends a stream's frames, spending output credit on data.
struct FrameSender {
    stream_id: u64,
    out: ResultSink,
    credit: Arc<Semaphore>,
    cancel: CancellationToken,
}

impl FrameSender {
    async fn send(&self, kind: stream_output::Kind) -> bool {
        let message = proto::AgentMessage {
            kind: Some(agent_message::Kind::Stream(proto::StreamFrame {
                stream_id: self.stream_id,
                output: Some(proto::StreamOutput { kind: Some(kind) }),
            })),
        };
        self.out.send(message).await.is_ok()
    }

    /// Sends one chunk of output (splitting it to the frame limit), waiting
    /// for credit. Returns false when the stream or session is gone.
    async fn chunk(&self, chunk: proto::Chunk) -> bool {
        for piece in chunk.data.chunks(MAX_CHUNK_BYTES) {
            let permit = tokio::select! {
                () = self.cancel.cancelled() => return false,
                permit = self.credit.acquire() => permit,
            };
            match permit {
                Ok(permit) => permit.forget(),
                Err(_) => return false,
            }
            let frame = stream_output::Kind::Chunk(proto::Chunk {
                kind: chunk.kind,
                data: piece.to_vec(),
            });
            if !self.send(frame).await {
                return false;
            }
        }
        true
    }

    async fn started(&self) -> bool {
        self.send(stream_output::Kind::Started(proto::Empty {}))
            .await
    }

    fn input_credit(&self) -> InputCredit {
        InputCredit {
            stream_id: self.stream_id,
            out: self.out.clone(),
        }
    }

    async fn finish(&self, outcome: Result<Option<i64>, proto::Error>) {
        let kind = match outcome {
            Ok(exit_code) => stream_output::Kind::End(proto::End { exit_code }),
            Err(error) => stream_output::Kind::Error(error),
        };
        self.send(kind).await;
    }
}

/// Forwards an engine output stream; returns false if the reader went away.
async fn forward_output(
    sender: &FrameSender,
    mut output: impl Stream<Item = Result<proto::Chunk, DockerError>> + Unpin,
) -> Result<bool, DockerError> {
    while let Some(chunk) = output.next().await {
        if !sender.chunk(chunk?).await {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn run_stream(
    engine: &Engine,
    kind: Option<stream_open::Kind>,
    sender: &FrameSender,
    input: mpsc::Receiver<stream_input::Kind>,
) -> Result<Option<i64>, DockerError> {
    let Some(kind) = kind else {
        return Err(DockerError::invalid(
            "open",
            "the stream open names nothing to stream",
        ));
    };
    match kind {
        stream_open::Kind::Logs(request) => {
            let output = engine.logs(request).await?;
            sender.started().await;
            forward_output(sender, Box::pin(output)).await?;
            Ok(None)
        }
        stream_open::Kind::Exec(request) => {
            let session = engine.exec_interactive(request).await?;
            interactive(sender, session, input).await
        }
        stream_open::Kind::Attach(request) => {
            let session = engine.attach(request).await?;
            interactive(sender, session, input).await
        }
        stream_open::Kind::LoadImage(_) => {
            sender.started().await;
            let archive = input_bytes(sender.input_credit(), input);
            let text = engine.load_image(archive).await?;
            sender
                .chunk(proto::Chunk {
                    kind: proto::OutputKind::Stdout as i32,
                    data: text.into_bytes(),
                })
                .await;
            Ok(Some(0))
        }
    }
}

/// The stdin frames of a stream as a byte stream, ending at close_stdin,
/// granting the relay one credit back per frame taken.
fn input_bytes(
    credit: InputCredit,
    input: mpsc::Receiver<stream_input::Kind>,
) -> impl Stream<Item = Vec<u8>> + Send + 'static {
    futures_util::stream::unfold((input, credit), |(mut input, credit)| async move {
        loop {
            match input.recv().await? {
                stream_input::Kind::Stdin(data) => {
                    credit.grant(1).await;
                    return Some((data, (input, credit)));
                }
                stream_input::Kind::CloseStdin(_) | stream_input::Kind::Cancel(_) => {
                    return None;
                }
                stream_input::Kind::Resize(_) => {}
            }
        }
    })
}

async fn interactive(
    sender: &FrameSender,
    session: crate::docker::InteractiveSession,
    mut input: mpsc::Receiver<stream_input::Kind>,
) -> Result<Option<i64>, DockerError> {
    let crate::docker::InteractiveSession {
        output,
        input: mut stdin,
        control,
    } = session;
    sender.started().await;
    let credit = sender.input_credit();
    let pump_input = async {
        while let Some(kind) = input.recv().await {
            match kind {
                stream_input::Kind::Stdin(data) => {
                    let written = stdin.write_all(&data).await.and(stdin.flush().await);
                    credit.grant(1).await;
                    if written.is_err() {
                        break; // the process closed its stdin; keep reading output
                    }
                }
                stream_input::Kind::Resize(size) => {
                    if let Err(e) = control.resize(size.width, size.height).await {
                        // Docker's CLI treats resize failures as non-fatal too.
                        tracing::debug!(error = %e, "resize failed");
                    }
                }
                stream_input::Kind::CloseStdin(_) => {
                    let _ = stdin.shutdown().await;
                }
                stream_input::Kind::Cancel(_) => break,
            }
        }
        // Input is done; wait for the output to end.
        std::future::pending::<()>().await;
    };
    let delivered = tokio::select! {
        delivered = forward_output(sender, output) => delivered?,
        () = pump_input => unreachable_pending(),
    };
    if !delivered {
        return Ok(None);
    }
    control.exit_code().await
}

/// `pump_input` never completes; this keeps the `select!` arms typed.
fn unreachable_pending() -> bool {
    false
}
