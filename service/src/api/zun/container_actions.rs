//! `GET /v1/containers/{c}/container_actions[/{request_id}]`: the actions
//! recorded on a container, keyed by the `x-openstack-request-id` of the
//! request that triggered each (tempest waits on these).

use axum::Json;
use axum::extract::State;

use super::containers::NoParams;
use super::extract::{QueryParams, RequestContext, ZunPath};
use super::views::{ActionCollection, ActionView, action_view};
use crate::api::ApiState;
use crate::api::zun::error::ApiError;
use crate::app::ContainerRef;
use crate::domain::RequestId;

/// The actions recorded on a container.
#[utoipa::path(get, path = "/v1/containers/{container}/container_actions", tag = "actions",
    params(("container" = String, Path)), responses((status = 200, body = ActionCollection)))]
pub async fn list(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath(ident): ZunPath<String>,
    QueryParams(NoParams {}): QueryParams<NoParams>,
) -> Result<Json<ActionCollection>, ApiError> {
    let container = ContainerRef::parse(&ident);
    let actions = state.app().list_actions(&cx.call, &container).await?;
    let is_admin = cx.call.caller.is_admin();
    Ok(Json(ActionCollection {
        container_actions: actions
            .iter()
            .map(|a| action_view(a, false, is_admin))
            .collect(),
    }))
}

/// One recorded action with its events.
#[utoipa::path(get, path = "/v1/containers/{container}/container_actions/{request_id}", tag = "actions",
    params(("container" = String, Path), ("request_id" = String, Path, description = "req-<uuid>")),
    responses((status = 200, body = ActionView), (status = 404, description = "no such action")))]
pub async fn show(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath((ident, request_id)): ZunPath<(String, String)>,
    QueryParams(NoParams {}): QueryParams<NoParams>,
) -> Result<Json<ActionView>, ApiError> {
    let request_id =
        RequestId::from_client(&request_id).ok_or_else(|| ApiError::InvalidParameter {
            name: "request_id".into(),
            reason: format!("{request_id:?} is not req-<uuid>"),
        })?;
    let container = ContainerRef::parse(&ident);
    let action = state
        .app()
        .find_action(&cx.call, &container, &request_id)
        .await?;
    Ok(Json(action_view(&action, true, cx.call.caller.is_admin())))
}
