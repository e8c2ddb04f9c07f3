//! `GET /v1/services` (admins only, as in Zun): the agents of every
//! instance, Nest's counterpart of zun-compute (one per host), with
//! `state` saying whether each is connected and its engine answers. The
//! bodies are `nest_api_types::zun::services`'s. Deleting, enabling,
//! disabling or forcing down a service is refused: instances are retired
//! by the scheduler, not switched off by hand.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use nest_api_types::zun::{ServiceCollection, ServiceView};

use super::containers::NoParams;
use super::extract::{QueryParams, RequestContext};
use super::views::zun_datetime;
use crate::api::ApiState;
use crate::api::zun::error::ApiError;
use crate::app::HostInfo;
use crate::domain::InstanceStatus;

fn view(position: usize, host: &HostInfo) -> ServiceView {
    let up = host.instance.status == InstanceStatus::Ready;
    let reason = (!up).then(|| {
        host.instance
            .status_reason
            .clone()
            .unwrap_or_else(|| host.instance.status.as_str().to_owned())
    });
    ServiceView {
        id: u64::try_from(position)
            .unwrap_or(u64::MAX)
            .saturating_add(1),
        host: host.instance.id.as_str().to_owned(),
        binary: "nest-agent".into(),
        state: if up { "up" } else { "down" }.into(),
        disabled: false,
        disabled_reason: reason,
        forced_down: false,
        availability_zone: None,
        last_seen_up: None,
        report_count: 0,
        created_at: Some(zun_datetime(&host.instance.created_at)),
        updated_at: None,
    }
}

/// The instances' agents (admins only).
#[utoipa::path(get, path = "/v1/services", tag = "hosts",
    responses((status = 200, body = ServiceCollection), (status = 403, description = "not an admin")))]
pub async fn list(
    State(state): State<ApiState>,
    cx: RequestContext,
    QueryParams(NoParams {}): QueryParams<NoParams>,
) -> Result<Json<ServiceCollection>, ApiError> {
    let mut hosts = state.app().list_services(&cx.call).await?;
    hosts.sort_by(|a, b| a.instance.id.cmp(&b.instance.id));
    Ok(Json(ServiceCollection {
        services: hosts.iter().enumerate().map(|(i, h)| view(i, h)).collect(),
    }))
}

/// Refused: agents go with their instances.
#[utoipa::path(delete, path = "/v1/services", tag = "hosts",
    responses((status = 400, description = "not supported")))]
pub async fn delete(cx: RequestContext) -> Result<StatusCode, ApiError> {
    let _ = cx;
    Err(refused())
}

/// What a change to a service answers: the operation, and what to do
/// instead.
pub const CHANGE_REFUSED: super::unsupported::Refusal = (
    "changing a service",
    "Nest's services are the agents of the project's instances; the scheduler retires an \
     idle instance, and `openstack server delete` removes one",
);

fn refused() -> ApiError {
    ApiError::NotSupported {
        what: CHANGE_REFUSED.0,
        instead: CHANGE_REFUSED.1,
    }
}
