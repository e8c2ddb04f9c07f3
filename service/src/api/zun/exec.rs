//! Exec and attach: `execute`, `execute_resize`, `attach`, `resize`.
//!
//! Interactive sessions do not go through a separate proxy as in Zun: the
//! URL handed out (`proxy_url` of an interactive exec, the JSON string of
//! `attach`) points at this service's own websocket routes (see
//! [`super::ws`]), carrying a random single-use token the backend issued.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::containers::NoParams;
use super::create::split_command;
use super::extract::{BaseUrl, Flag, Lenient, Params, QueryParams, RequestContext, ZunPath};
use super::views::{ExecView, exec_view};
use crate::api::ApiState;
use crate::api::zun::error::ApiError;
use crate::app::{
    ConsoleToken, ContainerRef, ExecId, ExecOptions, ExecRequest, ExecResult, TtySize,
};
use crate::domain::ContainerId;

/// The websocket URL of an attach.
pub fn attach_url(base: &BaseUrl, container: &ContainerId, token: &ConsoleToken) -> String {
    format!(
        "{}/v1/containers/{container}/attach/ws?token={}",
        base.to_websocket(),
        token.as_str()
    )
}

/// The websocket URL of an interactive exec.
pub fn exec_url(
    base: &BaseUrl,
    container: &ContainerId,
    exec_id: &ExecId,
    token: &ConsoleToken,
) -> String {
    format!(
        "{}/v1/containers/{container}/exec/ws?token={}&exec_id={exec_id}",
        base.to_websocket(),
        token.as_str()
    )
}

/// Parameters of execute (query or body).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecuteQuery {
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    run: Option<Flag>,
    #[serde(default)]
    interactive: Option<Flag>,
}

/// Run a command in a container. The command line is split shell-style
/// (zunclient sends `"a" "b"`).
#[utoipa::path(post, path = "/v1/containers/{container}/execute", tag = "exec",
    params(("container" = String, Path), ("command" = String, Query),
           ("run" = Option<bool>, Query, description = "default true"),
           ("interactive" = Option<bool>, Query)),
    responses((status = 200, body = ExecView)))]
pub async fn execute(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath(ident): ZunPath<String>,
    Params(query): Params<ExecuteQuery>,
) -> Result<Json<ExecView>, ApiError> {
    let line = query.command.ok_or_else(|| ApiError::InvalidParameter {
        name: "command".into(),
        reason: "is required".into(),
    })?;
    let request = ExecRequest {
        command: split_command("command", &line)?,
        // Zun's exec has no environment, working directory or user.
        options: ExecOptions::default(),
        run: query.run.is_none_or(|Flag(b)| b),
        interactive: query.interactive.is_some_and(|Flag(b)| b),
    };
    let container = ContainerRef::parse(&ident);
    let outcome = state.app().execute(&cx.call, &container, request).await?;
    let view = exec_view(&outcome, |id| match &outcome.result {
        ExecResult::Created {
            exec_id,
            token: Some(token),
        } => exec_url(&cx.base_url, id, exec_id, token),
        _ => String::new(),
    });
    Ok(Json(view))
}

/// Terminal size parameters (`w` columns, `h` rows).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizeQuery {
    #[serde(default)]
    h: Option<Lenient<u16>>,
    #[serde(default)]
    w: Option<Lenient<u16>>,
}

impl SizeQuery {
    fn size(&self) -> Result<TtySize, ApiError> {
        let dim = |name: &str, v: Option<Lenient<u16>>| match v {
            Some(Lenient(n)) if n > 0 => Ok(n),
            _ => Err(ApiError::InvalidParameter {
                name: name.to_owned(),
                reason: "must be a positive integer".into(),
            }),
        };
        Ok(TtySize {
            width: dim("w", self.w)?,
            height: dim("h", self.h)?,
        })
    }
}

/// Parameters of execute_resize.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecResizeQuery {
    #[serde(default)]
    exec_id: Option<String>,
    #[serde(default)]
    h: Option<Lenient<u16>>,
    #[serde(default)]
    w: Option<Lenient<u16>>,
}

/// Resize an exec's terminal.
#[utoipa::path(post, path = "/v1/containers/{container}/execute_resize", tag = "exec",
    params(("container" = String, Path), ("exec_id" = String, Query), ("w" = u16, Query), ("h" = u16, Query)),
    responses((status = 200, description = "resized; body null")))]
pub async fn execute_resize(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath(ident): ZunPath<String>,
    Params(query): Params<ExecResizeQuery>,
) -> Result<Json<()>, ApiError> {
    let exec_id = query
        .exec_id
        .as_deref()
        .ok_or_else(|| "is required".to_owned())
        .and_then(ExecId::parse)
        .map_err(|reason| ApiError::InvalidParameter {
            name: "exec_id".into(),
            reason,
        })?;
    let size = SizeQuery {
        h: query.h,
        w: query.w,
    }
    .size()?;
    let container = ContainerRef::parse(&ident);
    state
        .app()
        .resize_exec(&cx.call, &container, &exec_id, size)
        .await?;
    Ok(Json(()))
}

/// Get the websocket URL to attach to an interactive container (a JSON
/// string).
#[utoipa::path(get, path = "/v1/containers/{container}/attach", tag = "exec",
    params(("container" = String, Path)),
    responses((status = 200, body = String, description = "ws:// or wss:// URL"),
              (status = 400, description = "not interactive")))]
pub async fn attach(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath(ident): ZunPath<String>,
    QueryParams(NoParams {}): QueryParams<NoParams>,
) -> Result<Json<String>, ApiError> {
    let container = ContainerRef::parse(&ident);
    let ticket = state.app().attach(&cx.call, &container).await?;
    Ok(Json(attach_url(
        &cx.base_url,
        &ticket.container_id,
        &ticket.token,
    )))
}

/// Resize the terminal of an attached container.
#[utoipa::path(post, path = "/v1/containers/{container}/resize", tag = "exec",
    params(("container" = String, Path), ("w" = u16, Query), ("h" = u16, Query)),
    responses((status = 200, description = "resized; body null")))]
pub async fn resize(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath(ident): ZunPath<String>,
    Params(query): Params<SizeQuery>,
) -> Result<Json<()>, ApiError> {
    let size = query.size()?;
    let container = ContainerRef::parse(&ident);
    state.app().resize(&cx.call, &container, size).await?;
    Ok(Json(()))
}
