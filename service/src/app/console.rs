//! Console I/O between a front end and a running process (an attach or an
//! interactive exec), as typed frames both ways: stdin data, terminal
//! resizes and the end of stdin in; stdout, stderr or terminal output, the
//! exit code and the agent's error out.
//!
//! The front end owns its connection (a Zun websocket, later a Docker
//! hijacked attach) and pumps it into and out of [`ConsoleIo`]'s bounded
//! channels; the application runs the [`ConsoleSession`] against the
//! agent's stream. Nothing here knows HTTP, websockets or the wire protocol.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use nest_core::ErrorKind;
use tokio::sync::mpsc;

use crate::app::AppError;
pub use crate::domain::TtySize;

/// The two ends a console session talks through. The front end owns the
/// connection and pumps it into and out of these bounded channels.
#[derive(Debug)]
pub struct ConsoleIo {
    /// What the client sends; closed when it goes away.
    pub input: mpsc::Receiver<ConsoleInput>,
    /// What the process sends, for the client; the session ends when it is
    /// closed.
    pub output: mpsc::Sender<ConsoleOutput>,
}

/// Something the client sent to the process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsoleInput {
    /// Raw bytes for the process's stdin.
    Stdin(Bytes),
    /// A new terminal size.
    Resize(TtySize),
    /// The end of stdin: the process reads EOF; its output keeps flowing.
    CloseStdin,
}

/// Something the process (or its agent) sent to the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsoleOutput {
    /// Bytes the process wrote to stdout.
    Stdout(Bytes),
    /// Bytes the process wrote to stderr.
    Stderr(Bytes),
    /// Terminal output (with a tty, stdout and stderr are one stream).
    Tty(Bytes),
    /// The process exited with this code; the session ends after it.
    Exit(i64),
    /// The session failed on the agent's side (or on the way to it); it
    /// ends after this.
    Error {
        /// What kind of failure it is.
        kind: ErrorKind,
        /// What the agent or relay said.
        message: String,
    },
}

impl ConsoleOutput {
    /// The bytes the process wrote, whichever stream they came from;
    /// `None` for the exit code and errors.
    pub fn data(&self) -> Option<&Bytes> {
        match self {
            Self::Stdout(data) | Self::Stderr(data) | Self::Tty(data) => Some(data),
            Self::Exit(_) | Self::Error { .. } => None,
        }
    }
}

/// A console session the application runs once the front end's connection
/// is open.
pub trait ConsoleSession: Send {
    /// Pipes `io` to the process until either side ends. Before it returns
    /// it sends [`ConsoleOutput::Exit`] when the process reported an exit
    /// code, or [`ConsoleOutput::Error`] when the session failed (and then
    /// also returns the failure).
    ///
    /// # Errors
    /// [`AppError::Unavailable`] when the agent's stream failed.
    ///
    /// # Cancel safety
    /// The front end drops the future when the client disconnects; dropping
    /// it must end the session and release its resources.
    fn run(self: Box<Self>, io: ConsoleIo) -> BoxFuture<'static, Result<(), AppError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_output_frames_carry_data() {
        let data = Bytes::from_static(b"hi");
        for frame in [
            ConsoleOutput::Stdout(data.clone()),
            ConsoleOutput::Stderr(data.clone()),
            ConsoleOutput::Tty(data.clone()),
        ] {
            assert_eq!(frame.data(), Some(&data));
        }
        assert_eq!(ConsoleOutput::Exit(0).data(), None);
        let error = ConsoleOutput::Error {
            kind: ErrorKind::Unavailable,
            message: "gone".into(),
        };
        assert_eq!(error.data(), None);
    }
}
