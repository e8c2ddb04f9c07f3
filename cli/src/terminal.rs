//! The local terminal for exec and attach: raw mode for as long as a
//! session lasts (restored on drop, whatever happens) and the window size.

use std::io::IsTerminal;

use rustix::termios::{self, OptionalActions, Termios};

use crate::error::CliError;

/// Whether stdin is a terminal.
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// Stdout's window size as (columns, rows), when it is a terminal.
pub fn window_size() -> Option<(u16, u16)> {
    let size = termios::tcgetwinsize(std::io::stdout()).ok()?;
    (size.ws_col > 0 && size.ws_row > 0).then_some((size.ws_col, size.ws_row))
}

/// Raw mode on stdin until dropped.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Puts stdin's terminal in raw mode: every key goes to the remote
    /// process, ^C included.
    pub fn enable() -> Result<Self, CliError> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin).map_err(|e| CliError::Terminal(e.into()))?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(&stdin, OptionalActions::Now, &raw)
            .map_err(|e| CliError::Terminal(e.into()))?;
        Ok(Self { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &self.saved);
    }
}
