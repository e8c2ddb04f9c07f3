//! The query strings of the REST API, as a client writes them. The
//! service reads its own, leniently (zunclient's `"None"`, `"True"`); these
//! types write the canonical spelling and leave out what is unset, so a
//! client sends only what it means. Encode them with any
//! `application/x-www-form-urlencoded` serializer (`serde_urlencoded`,
//! reqwest's `.query`).

use serde::{Deserialize, Serialize};

/// `GET /v1/containers`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListContainersQuery {
    /// Page size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The uuid after which the page starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
    /// Sort key (`created_at`, `name`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_key: Option<String>,
    /// `asc` or `desc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_dir: Option<String>,
    /// Every project's (admins only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_projects: Option<bool>,
    /// Only the containers on this instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// `DELETE /v1/containers/{c}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteContainerQuery {
    /// Delete even when running (kills it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
    /// Stop it first (≥ 1.12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<bool>,
}

/// `POST …/stop` and `…/reboot`: seconds to wait before killing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutQuery {
    /// Seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
}

/// `POST …/kill`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillQuery {
    /// Signal name or number (`SIGTERM`, `9`); the engine's default when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
}

/// `GET …/logs`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsQuery {
    /// Include stdout (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<bool>,
    /// Include stderr (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<bool>,
    /// Prefix each line with its time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamps: Option<bool>,
    /// `all` or the number of last lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<String>,
    /// Only lines since this time (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Nest: keep streaming new output (`text/plain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow: Option<bool>,
}

/// `POST …/execute`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecuteQuery {
    /// The command line, split shell-style by the service.
    pub command: String,
    /// Run it now and answer its output (default true); false only
    /// creates it (interactive sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<bool>,
    /// Keep stdin open and allocate a terminal; the answer carries the
    /// websocket URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive: Option<bool>,
}

/// `POST …/resize` (`w` columns, `h` rows).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResizeQuery {
    /// Columns.
    pub w: u16,
    /// Rows.
    pub h: u16,
}

/// `POST …/execute_resize`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecResizeQuery {
    /// The exec id from `execute`.
    pub exec_id: String,
    /// Columns.
    pub w: u16,
    /// Rows.
    pub h: u16,
}

/// `POST /v1/nest/images`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadImageQuery {
    /// A name shown in lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `GET /v1/quotas/{project_id}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaQuery {
    /// With `true` (written `True`, as Zun's clients do), the answer
    /// is a [`super::QuotaUsagesView`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "python_bool"
    )]
    pub usages: Option<bool>,
}

fn python_bool<S: serde::Serializer>(value: &Option<bool>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(true) => s.serialize_str("True"),
        Some(false) => s.serialize_str("False"),
        None => s.serialize_none(),
    }
}

/// The close frame's reason with which the console websockets end a
/// session whose process exited (Nest extension): `{"exit_code": N}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleExit {
    /// The process's exit code.
    pub exit_code: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_parameters_are_left_out() {
        let query = serde_json::to_value(LogsQuery {
            follow: Some(true),
            ..LogsQuery::default()
        })
        .expect("serializes");
        assert_eq!(query, serde_json::json!({"follow": true}));
        let usages = serde_json::to_value(QuotaQuery { usages: Some(true) }).expect("serializes");
        assert_eq!(usages, serde_json::json!({"usages": "True"}));
        let exit: ConsoleExit = serde_json::from_str(r#"{"exit_code": 3}"#).expect("parses");
        assert_eq!(exit.exit_code, 3);
    }
}
