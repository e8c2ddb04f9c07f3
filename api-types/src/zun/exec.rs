//! The answer of `POST /v1/containers/{c}/execute` (zun-api.md §2): the
//! output and exit code of a command that ran, or the id (and, when
//! interactive, the websocket URL) of one that was only created.

use serde::{Deserialize, Serialize};

/// `POST …/execute`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecView {
    /// Combined output, when run.
    pub output: Option<String>,
    /// Exit code, when run.
    pub exit_code: Option<i64>,
    /// Exec id, when only created.
    pub exec_id: Option<String>,
    /// Websocket URL of an interactive exec.
    pub proxy_url: Option<String>,
}
