//! The byte streams the service opens (logs, interactive exec, attach,
//! image load): how they are opened, what comes in and what goes out.

use std::num::NonZeroU16;
use std::time::SystemTime;

use nest_core::ids::RequestId;

use super::report::Failure;
use super::{ContainerUuid, EnvVar, StreamId};
use crate::convert::ConvertError;

/// A stream the relay asks the agent to open.
#[derive(Debug)]
pub struct StreamOpenRequest {
    /// The id every frame of the stream carries.
    pub id: StreamId,
    /// The API request that opened it, for tracing.
    pub request_id: Option<RequestId>,
    /// What to stream, or why the wire message does not say.
    pub open: Result<StreamOpen, ConvertError>,
}

/// What a stream carries.
#[derive(Debug)]
pub enum StreamOpen {
    /// A container's logs.
    Logs(LogsRequest),
    /// An interactive exec.
    Exec(ExecStream),
    /// An attach to a container's main process.
    Attach(AttachStream),
    /// An image archive arriving as stdin (`docker load`).
    LoadImage,
}

impl StreamOpen {
    /// The stream's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Logs(_) => "logs",
            Self::Exec(_) => "exec",
            Self::Attach(_) => "attach",
            Self::LoadImage => "load_image",
        }
    }

    /// The container the stream is about, if any.
    pub fn container(&self) -> Option<&ContainerUuid> {
        match self {
            Self::Logs(l) => Some(&l.uuid),
            Self::Exec(e) => Some(&e.uuid),
            Self::Attach(a) => Some(&a.uuid),
            Self::LoadImage => None,
        }
    }
}

/// Which of a container's logs to stream.
#[derive(Clone, Debug)]
pub struct LogsRequest {
    /// The container.
    pub uuid: ContainerUuid,
    /// Include stdout; with neither stdout nor stderr, both are sent.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
    /// Lines from the end; `None` means all.
    pub tail: Option<u64>,
    /// Only output since then; `None` means from the start.
    pub since: Option<SystemTime>,
    /// Prefix each line with the engine's timestamp.
    pub timestamps: bool,
    /// Keep streaming new output as it comes.
    pub follow: bool,
}

/// An interactive exec.
#[derive(Clone, Debug)]
pub struct ExecStream {
    /// The container.
    pub uuid: ContainerUuid,
    /// The command and its arguments; must not be empty.
    pub command: Vec<String>,
    /// Run it on a terminal.
    pub tty: bool,
    /// Connect its stdin.
    pub stdin: bool,
    /// Extra environment variables.
    pub env: Vec<EnvVar>,
    /// Working directory; `None` means the container's.
    pub workdir: Option<String>,
    /// User to run as; `None` means the container's.
    pub user: Option<String>,
    /// Initial terminal size; `None` leaves the engine's default (always
    /// `None` without a terminal).
    pub size: Option<TerminalSize>,
}

/// An attach to a container's main process.
#[derive(Clone, Debug)]
pub struct AttachStream {
    /// The container.
    pub uuid: ContainerUuid,
    /// Connect its stdin.
    pub stdin: bool,
    /// Include stdout; with neither stdout nor stderr, both are sent.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
    /// Replay the container's existing output first.
    pub logs: bool,
}

/// A terminal size, in characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TerminalSize {
    /// Columns.
    pub width: NonZeroU16,
    /// Rows.
    pub height: NonZeroU16,
}

/// What the opener of a stream sends after opening it.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamInput {
    /// Bytes for the process's stdin (or the image archive).
    Stdin(Vec<u8>),
    /// The terminal changed size.
    Resize(TerminalSize),
    /// End of stdin: the process sees EOF.
    CloseStdin,
    /// The opener is gone: stop and release the stream.
    Cancel,
}

/// Which output of a process a chunk is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// Raw terminal output: a terminal does not separate the two.
    Console,
}

/// A piece of a process's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Which output it is.
    pub kind: OutputKind,
    /// The bytes.
    pub data: Vec<u8>,
}

/// What the agent sends on a stream.
#[derive(Debug, PartialEq)]
pub enum StreamOutput {
    /// The stream is established (exec created, attach hijacked, ...).
    Started,
    /// Output.
    Chunk(Chunk),
    /// The stream ended normally; the exit code is set for exec and attach.
    End {
        /// The process's exit code, when known.
        exit_code: Option<i64>,
    },
    /// The stream ended with a failure.
    Failed(Failure),
}
