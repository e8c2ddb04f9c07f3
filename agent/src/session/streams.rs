//! The agent's end of multiplexed streams: logs, interactive exec, attach
//! and image loads, each bound to the session's flow control.
//!
//! Output: the agent starts with `STREAM_WINDOW_FRAMES` credits per stream,
//! spends one per data frame and waits when it has none; the relay returns
//! credit as frames leave it. Output that arrives while a frame waits for
//! credit joins it, up to `MAX_CHUNK_BYTES` ([`super::coalesce`]), so a
//! credit carries many short lines when the reader is the slower side. Input: the relay spends credit we grant, and
//! we grant one back per frame consumed, so a slow `docker load` or a
//! process not reading stdin stalls only its own stream.
//!
//! Openings and input arrive already read off the wire
//! ([`crate::convert`]); frames leave as [`Outbound`] messages.
//!
//! Each stream runs in a `stream` span that carries the service's
//! `request_id`, the relay's `stream_id` and, when the stream is about a
//! container, the `container_id`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::Stream;
use nest_core::ErrorKind;
use nest_core::process::error_chain;
use nest_relay::version::{MAX_CHUNK_BYTES, STREAM_WINDOW_FRAMES};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, Span, field};

use super::coalesce::Coalesce;
use super::commands::OutboundSink;
use crate::convert::ConvertError;
use crate::docker::{DockerError, Engine, InteractiveSession};
use crate::log_fields::{CONTAINER_ID, REQUEST_ID, STREAM_ID};
use crate::model::{
    Chunk, Failure, Outbound, OutputKind, StreamId, StreamInput, StreamOpen, StreamOpenRequest,
    StreamOutput,
};

/// Input frames buffered per stream: the relay's window plus slack for
/// control frames (resize, close) that need no credit.
const INPUT_CAPACITY: usize = STREAM_WINDOW_FRAMES as usize + 8;
/// Streams one session may have open.
const MAX_STREAMS: usize = 256;
/// How the `stream` span names a stream whose opening the conversion refused.
const REFUSED_STREAM: &str = "refused";

/// The span the stream `request` opens runs in, a child of the current
/// (session) span.
fn stream_span(request: &StreamOpenRequest) -> Span {
    let open = request.open.as_ref().ok();
    tracing::info_span!(
        "stream",
        { REQUEST_ID } = request.request_id.as_ref().map(field::display),
        { STREAM_ID } = request.id.0,
        stream = open.map_or(REFUSED_STREAM, StreamOpen::name),
        { CONTAINER_ID } = open.and_then(StreamOpen::container).map(field::display),
    )
}

struct StreamHandle {
    input: mpsc::Sender<StreamInput>,
    output_credit: Arc<Semaphore>,
    cancel: CancellationToken,
}

type StreamMap = Arc<Mutex<HashMap<StreamId, StreamHandle>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing awaits or panics under this lock.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The streams of one session.
pub struct Streams {
    engine: Engine,
    out: OutboundSink,
    tasks: TaskTracker,
    cancel: CancellationToken,
    open: StreamMap,
}

impl Streams {
    /// Streams for a session whose messages go to `out`.
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
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Input from the relay for an open stream. Input for a stream that
    /// has already finished is dropped; input that could not be read is
    /// dropped too (a bad resize never mattered to the stream).
    pub fn input(&self, stream_id: StreamId, input: Result<StreamInput, ConvertError>) {
        let input = match input {
            Ok(input) => input,
            Err(e) => {
                tracing::debug!(
                    { STREAM_ID } = stream_id.0,
                    error = %error_chain(&e),
                    "ignoring unreadable stream input"
                );
                return;
            }
        };
        let mut open = lock(&self.open);
        let Some(handle) = open.get(&stream_id) else {
            return; // already finished
        };
        if input == StreamInput::Cancel {
            handle.cancel.cancel();
            open.remove(&stream_id);
            return;
        }
        if handle.input.try_send(input).is_err() {
            tracing::warn!(
                { STREAM_ID } = stream_id.0,
                "relay overran a stream's input window; cancelling it"
            );
            handle.cancel.cancel();
            open.remove(&stream_id);
        }
    }

    /// Credit from the relay for `frames` more output frames on a stream.
    pub fn credit(&self, stream_id: StreamId, frames: u32) {
        if let Some(handle) = lock(&self.open).get(&stream_id) {
            let room = (STREAM_WINDOW_FRAMES as usize * 4)
                .saturating_sub(handle.output_credit.available_permits());
            handle
                .output_credit
                .add_permits((frames as usize).min(room));
        }
    }

    /// Opens the stream `request` asks for, in its own span (see the module
    /// docs); its frames are sent as they come.
    pub fn open(&self, request: StreamOpenRequest) {
        let span = stream_span(&request);
        let stream_id = request.id;
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
                self.tasks.spawn(
                    async move {
                        tracing::info!("stream refused: too many open streams");
                        sender
                            .finish(Err(Failure::new(
                                ErrorKind::Unavailable,
                                "too many open streams",
                            )))
                            .await;
                    }
                    .instrument(span),
                );
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
        let open = request.open;
        let task = async move {
            let outcome = match open {
                Err(refused) => Some(Err(Failure::new(refused.kind(), error_chain(&refused)))),
                Ok(open) => tokio::select! {
                    () = cancel.cancelled() => None,
                    outcome = run_stream(&engine, open, &sender, input_rx) => {
                        Some(outcome.map_err(|e| Failure::new(e.kind(), error_chain(&e))))
                    }
                },
            };
            lock(&streams).remove(&stream_id);
            match outcome {
                None => tracing::debug!("stream cancelled"),
                Some(Ok(exit_code)) => {
                    tracing::debug!(?exit_code, "stream done");
                    sender.finish(Ok(exit_code)).await;
                }
                Some(Err(failure)) => {
                    tracing::info!(error = %failure.message, "stream failed");
                    sender.finish(Err(failure)).await;
                }
            }
        };
        self.tasks.spawn(task.instrument(span));
    }
}

/// Returns input credit to the relay as stdin frames are consumed.
#[derive(Clone)]
struct InputCredit {
    stream_id: StreamId,
    out: OutboundSink,
}

impl InputCredit {
    async fn grant(&self, frames: u32) {
        let message = Outbound::Credit {
            stream: self.stream_id,
            frames,
        };
        let _ = self.out.send(message).await;
    }
}

/// Sends a stream's frames, spending output credit on data.
struct FrameSender {
    stream_id: StreamId,
    out: OutboundSink,
    credit: Arc<Semaphore>,
    cancel: CancellationToken,
}

impl FrameSender {
    async fn send(&self, output: StreamOutput) -> bool {
        let message = Outbound::Stream {
            stream: self.stream_id,
            output,
        };
        self.out.send(message).await.is_ok()
    }

    /// Sends one chunk of output (splitting it to the frame limit), waiting
    /// for credit. Returns false when the stream or session is gone.
    async fn chunk(&self, chunk: Chunk) -> bool {
        if chunk.data.len() <= MAX_CHUNK_BYTES {
            return self.frame(chunk).await;
        }
        for piece in chunk.data.chunks(MAX_CHUNK_BYTES) {
            let piece = Chunk {
                kind: chunk.kind,
                data: piece.to_vec(),
            };
            if !self.frame(piece).await {
                return false;
            }
        }
        true
    }

    /// Sends one data frame of at most `MAX_CHUNK_BYTES` once it has credit.
    async fn frame(&self, chunk: Chunk) -> bool {
        self.credit().await && self.send(StreamOutput::Chunk(chunk)).await
    }

    /// Waits for and spends the credit of one data frame; false when the
    /// stream or session is gone.
    ///
    /// # Cancel safety
    /// Safe: no credit is spent unless it returns.
    async fn credit(&self) -> bool {
        let permit = tokio::select! {
            () = self.cancel.cancelled() => return false,
            permit = self.credit.acquire() => permit,
        };
        match permit {
            Ok(permit) => {
                permit.forget();
                true
            }
            Err(_) => false,
        }
    }

    async fn started(&self) -> bool {
        self.send(StreamOutput::Started).await
    }

    fn input_credit(&self) -> InputCredit {
        InputCredit {
            stream_id: self.stream_id,
            out: self.out.clone(),
        }
    }

    async fn finish(&self, outcome: Result<Option<i64>, Failure>) {
        let output = match outcome {
            Ok(exit_code) => StreamOutput::End { exit_code },
            Err(failure) => StreamOutput::Failed(failure),
        };
        self.send(output).await;
    }
}

/// Forwards an engine output stream; returns false if the reader went away.
///
/// Output that arrives while a frame waits for credit joins it, and so does
/// output already there when the credit comes ([`Coalesce`]), up to
/// `MAX_CHUNK_BYTES`: a credit then carries many short lines when the
/// reader is slower than the writer, and a slow writer's lines still go
/// out one by one, at once.
async fn forward_output(
    sender: &FrameSender,
    output: impl Stream<Item = Result<Chunk, DockerError>> + Unpin,
) -> Result<bool, DockerError> {
    let mut frames = Coalesce::new(output, MAX_CHUNK_BYTES);
    while let Some(first) = frames.first().await {
        let mut frame = first?;
        if frame.data.len() > MAX_CHUNK_BYTES {
            // Engine chunks are cut to the limit already; never overrun it.
            if !sender.chunk(frame).await {
                return Ok(false);
            }
            continue;
        }
        // One wait for credit per frame, however many lines join meanwhile.
        let credit = sender.credit();
        tokio::pin!(credit);
        let has_credit = loop {
            if !frames.can_join(&frame) {
                break (&mut credit).await;
            }
            tokio::select! {
                biased;
                credit = &mut credit => break credit,
                () = frames.join_next(&mut frame) => {}
            }
        };
        if !has_credit {
            return Ok(false);
        }
        frames.join_ready(&mut frame);
        if !sender.send(StreamOutput::Chunk(frame)).await {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn run_stream(
    engine: &Engine,
    open: StreamOpen,
    sender: &FrameSender,
    input: mpsc::Receiver<StreamInput>,
) -> Result<Option<i64>, DockerError> {
    match open {
        StreamOpen::Logs(request) => {
            let output = engine.logs(request).await?;
            sender.started().await;
            forward_output(sender, Box::pin(output)).await?;
            Ok(None)
        }
        StreamOpen::Exec(request) => {
            let session = engine.exec_interactive(request).await?;
            interactive(sender, session, input).await
        }
        StreamOpen::Attach(request) => {
            let session = engine.attach(request).await?;
            interactive(sender, session, input).await
        }
        StreamOpen::LoadImage => {
            sender.started().await;
            let archive = input_bytes(sender.input_credit(), input);
            let text = engine.load_image(archive).await?;
            sender
                .chunk(Chunk {
                    kind: OutputKind::Stdout,
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
    input: mpsc::Receiver<StreamInput>,
) -> impl Stream<Item = Vec<u8>> + Send + 'static {
    futures_util::stream::unfold((input, credit), |(mut input, credit)| async move {
        loop {
            match input.recv().await? {
                StreamInput::Stdin(data) => {
                    credit.grant(1).await;
                    return Some((data, (input, credit)));
                }
                StreamInput::CloseStdin | StreamInput::Cancel => {
                    return None;
                }
                StreamInput::Resize(_) => {}
            }
        }
    })
}

async fn interactive(
    sender: &FrameSender,
    session: InteractiveSession,
    mut input: mpsc::Receiver<StreamInput>,
) -> Result<Option<i64>, DockerError> {
    let InteractiveSession {
        output,
        input: mut stdin,
        control,
    } = session;
    sender.started().await;
    let credit = sender.input_credit();
    let pump_input = async {
        while let Some(next) = input.recv().await {
            match next {
                StreamInput::Stdin(data) => {
                    let written = stdin.write_all(&data).await.and(stdin.flush().await);
                    credit.grant(1).await;
                    if written.is_err() {
                        break; // the process closed its stdin; keep reading output
                    }
                }
                StreamInput::Resize(size) => {
                    if let Err(e) = control.resize(size).await {
                        // Docker's CLI treats resize failures as non-fatal too.
                        tracing::debug!(error = %e, "resize failed");
                    }
                }
                StreamInput::CloseStdin => {
                    let _ = stdin.shutdown().await;
                }
                StreamInput::Cancel => break,
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
