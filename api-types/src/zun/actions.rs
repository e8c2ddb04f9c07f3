//! Recorded container actions (`GET /v1/containers/{c}/container_actions`
//! and `…/{request_id}`, zun-api.md §2): what was asked, by whom, when it
//! finished, and its steps. Times are Zun's action format,
//! `YYYY-MM-DDTHH:MM:SS.ffffff`.

use serde::{Deserialize, Serialize};

/// A recorded container action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionView {
    /// `create`, `start`, `exec_cmd`, ...
    pub action: String,
    /// The container.
    pub container_uuid: String,
    /// The triggering request's `x-openstack-request-id`.
    pub request_id: String,
    /// By whom.
    pub user_id: String,
    /// Project.
    pub project_id: String,
    /// Start, `YYYY-MM-DDTHH:MM:SS.ffffff`.
    pub start_time: String,
    /// Finish, same format; null while in progress.
    pub finish_time: Option<String>,
    /// Failure message; null on success.
    pub message: Option<String>,
    /// Steps (only on `GET …/container_actions/{request_id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventView>>,
}

/// One step of an action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventView {
    /// Step name.
    pub event: String,
    /// Start.
    pub start_time: String,
    /// Finish.
    pub finish_time: Option<String>,
    /// `Success` or `Error`.
    pub result: Option<String>,
    /// Failure detail (admins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
}

/// `GET …/container_actions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionCollection {
    /// The actions.
    #[serde(rename = "containerActions")]
    pub container_actions: Vec<ActionView>,
}
