//! `POST /v1/containers/{c}/{start,stop,reboot,pause,unpause,kill}`: 202
//! with a JSON `null` body, as Zun answers (zun-api.md §1). Which states
//! allow each action is the backend's (and the status machine's) call.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::containers::NoParams;
use super::extract::{Lenient, Params, RequestContext, ZunPath};
use crate::api::ApiState;
use crate::api::zun::error::ApiError;
use crate::app::{ContainerAction, ContainerRef, Signal};

/// What an accepted action answers.
type Accepted = (StatusCode, Json<()>);

async fn act(
    state: &ApiState,
    cx: &RequestContext,
    ident: &str,
    action: ContainerAction,
) -> Result<Accepted, ApiError> {
    let container = ContainerRef::parse(ident);
    state
        .app()
        .act_on_container(&cx.call, &container, action)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(())))
}

/// Query of stop and reboot.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutQuery {
    #[serde(default)]
    timeout: Option<Lenient<u32>>,
}

impl TimeoutQuery {
    fn timeout(&self) -> Option<Duration> {
        self.timeout
            .map(|Lenient(secs)| Duration::from_secs(u64::from(secs)))
    }
}

/// Start a container.
#[utoipa::path(post, path = "/v1/containers/{container}/start", tag = "actions",
    params(("container" = String, Path)), responses((status = 202, description = "starting")))]
pub async fn start(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath(ident): ZunPath<String>,
    Params(NoParams {}): Params<NoParams>,
) -> Result<Accepted, ApiError> {
    act(&state, &cx, &ident, ContainerAction::Start).await
}

/// Stop a container.
#[utoipa::path(post, path = "/v1/containers/{container}/stop", tag = "actions",
    params(("container" = String, Path), ("timeout" = Option<u32>, Query, description = "seconds before SIGKILL")),
    responses((status = 202, description = "stopping")))]
pub async fn stop(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath(ident): ZunPath<String>,
    Params(query): Params<TimeoutQuery>,
) -> Result<Accepted, ApiError> {
    let action = ContainerAction::Stop {
        timeout: query.timeout(),
    };
    act(&state, &cx, &ident, action).await
}

/// Restart a container.
#[utoipa::path(post, path = "/v1/containers/{container}/reboot", tag = "actions",
    params(("container" = String, Path), ("timeout" = Option<u32>, Query)),
    responses((status = 202, description = "rebooting")))]
pub async fn reboot(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath(ident): ZunPath<String>,
    Params(query): Params<TimeoutQuery>,
) -> Result<Accepted, ApiError> {
    let action = ContainerAction::Reboot {
        timeout: query.timeout(),
    };
    act(&state, &cx, &ident, action).await
}

/// Pause a container.
#[utoipa::path(post, path = "/v1/containers/{container}/pause", tag = "actions",
    params(("container" = String, Path)), responses((status = 202, description = "pausing")))]
pub async fn pause(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath(ident): ZunPath<String>,
    Params(NoParams {}): Params<NoParams>,
) -> Result<Accepted, ApiError> {
    act(&state, &cx, &ident, ContainerAction::Pause).await
}

/// Unpause a container.
#[utoipa::path(post, path = "/v1/containers/{container}/unpause", tag = "actions",
    params(("container" = String, Path)), responses((status = 202, description = "unpausing")))]
pub async fn unpause(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath(ident): ZunPath<String>,
    Params(NoParams {}): Params<NoParams>,
) -> Result<Accepted, ApiError> {
    act(&state, &cx, &ident, ContainerAction::Unpause).await
}

/// Query of kill.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillQuery {
    #[serde(default)]
    signal: Option<Lenient<String>>,
}

/// Send a signal to a container (`signal=None`, what zunclient sends
/// without `-s`, means the default).
#[utoipa::path(post, path = "/v1/containers/{container}/kill", tag = "actions",
    params(("container" = String, Path), ("signal" = Option<String>, Query, description = "name or number")),
    responses((status = 202, description = "signalled")))]
pub async fn kill(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath(ident): ZunPath<String>,
    Params(query): Params<KillQuery>,
) -> Result<Accepted, ApiError> {
    let signal = match query.signal {
        None => None,
        Some(Lenient(s)) if s == "None" || s.is_empty() => None,
        Some(Lenient(s)) => {
            Some(
                Signal::parse(&s).map_err(|reason| ApiError::InvalidParameter {
                    name: "signal".into(),
                    reason,
                })?,
            )
        }
    };
    act(&state, &cx, &ident, ContainerAction::Kill { signal }).await
}
