//! `/v1/containers` and `/v1/containers/{c}`: create, list, show, update,
//! delete (zun-api.md §2, §2.3). Each handler parses, makes one backend
//! call and renders.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::create::{
    CreateContainerBody, UpdateContainerBody, check_name, parse_create, parse_update,
};
use super::extract::{Flag, Lenient, Params, QueryParams, RequestContext, ZunJson, ZunPath};
use super::views::{
    ContainerCollection, ContainerView, NetworkListView, container_view, network_list_view,
};
use crate::api::ApiState;
use crate::api::zun::error::ApiError;
use crate::app::{
    ContainerFilters, ContainerPatch, ContainerRef, DeleteOptions, ListParams, MAX_LIST_LIMIT,
    SortDir, SortKey,
};
use crate::domain::{ContainerId, ContainerStatus, InstanceId, ProjectId, UserId};

/// Query of `POST /v1/containers`: only `run` (Zun's `query_param_create`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateQuery {
    #[serde(default)]
    run: Option<Flag>,
}

/// Create a container (202; `?run=true` starts it once created).
#[utoipa::path(
    post, path = "/v1/containers", tag = "containers",
    params(("run" = Option<bool>, Query, description = "start it once created")),
    request_body = CreateContainerBody,
    responses(
        (status = 202, description = "accepted; status Creating", body = ContainerView),
        (status = 400, description = "invalid body"),
        (status = 415, description = "body is not application/json"),
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    cx: RequestContext,
    token: Option<axum::Extension<super::middleware::UserToken>>,
    QueryParams(query): QueryParams<CreateQuery>,
    ZunJson(body): ZunJson<CreateContainerBody>,
) -> Result<Response, ApiError> {
    let request = parse_create(body, cx.version)?;
    let run = query.run.is_some_and(|Flag(on)| on);
    // While the user's token is at hand: what the driver acts with later.
    if let Some(axum::Extension(token)) = &token {
        state.app().ensure_delegation(&cx.call, &token.0).await?;
    }
    let created = state.app().create_container(&cx.call, request, run).await?;
    let view = container_view(&created, &cx.base_url);
    let location = format!("{}/v1/containers/{}", cx.base_url.as_str(), view.uuid);
    let mut response = (StatusCode::ACCEPTED, Json(view)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// Query of `GET /v1/containers`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    limit: Option<Lenient<i64>>,
    #[serde(default)]
    marker: Option<String>,
    #[serde(default)]
    sort_key: Option<String>,
    #[serde(default)]
    sort_dir: Option<String>,
    #[serde(default)]
    all_projects: Option<Flag>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    memory: Option<Lenient<u64>>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    task_state: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    auto_remove: Option<Flag>,
    /// Accepted and ignored, as Zun does.
    #[serde(default)]
    #[allow(dead_code)]
    expand: Option<String>,
    /// Accepted and ignored, as Zun does.
    #[serde(default)]
    #[allow(dead_code)]
    resource_url: Option<String>,
}

fn invalid(name: &str, reason: impl Into<String>) -> ApiError {
    ApiError::InvalidParameter {
        name: name.to_owned(),
        reason: reason.into(),
    }
}

fn parse_list(q: ListQuery) -> Result<ListParams, ApiError> {
    let limit = match q.limit {
        None => MAX_LIST_LIMIT,
        Some(Lenient(n)) if n <= 0 => return Err(invalid("limit", "must be a positive integer")),
        Some(Lenient(n)) => u32::try_from(n)
            .unwrap_or(MAX_LIST_LIMIT)
            .min(MAX_LIST_LIMIT),
    };
    let marker = q
        .marker
        .as_deref()
        .map(|m| ContainerId::parse(m).map_err(|e| invalid("marker", e.to_string())))
        .transpose()?;
    let sort_key = match q.sort_key.as_deref() {
        None => SortKey::Id,
        Some(k) => SortKey::parse(k).ok_or_else(|| {
            let keys: Vec<&str> = SortKey::ALL.iter().map(|k| k.as_str()).collect();
            invalid(
                "sort_key",
                format!("{k:?} is not one of {}", keys.join(", ")),
            )
        })?,
    };
    let sort_dir = match q.sort_dir.as_deref() {
        None => SortDir::Asc,
        // Zun accepts any case here.
        Some(d) => SortDir::parse(&d.to_ascii_lowercase())
            .ok_or_else(|| invalid("sort_dir", format!("{d:?} is not asc or desc")))?,
    };
    let status = q
        .status
        .as_deref()
        .map(|s| {
            ContainerStatus::ALL
                .into_iter()
                .find(|st| st.as_zun().eq_ignore_ascii_case(s))
                .ok_or_else(|| invalid("status", format!("{s:?} is not a container status")))
        })
        .transpose()?;
    let filters = ContainerFilters {
        name: q.name,
        image: q.image,
        project_id: q
            .project_id
            .as_deref()
            .map(|p| ProjectId::parse(p).map_err(|e| invalid("project_id", e.to_string())))
            .transpose()?,
        user_id: q
            .user_id
            .as_deref()
            .map(|u| UserId::parse(u).map_err(|e| invalid("user_id", e.to_string())))
            .transpose()?,
        memory_mib: q.memory.map(|Lenient(m)| m),
        host: q
            .host
            .as_deref()
            .map(|h| InstanceId::parse(h).map_err(|e| invalid("host", e.to_string())))
            .transpose()?,
        task_state: q.task_state,
        status,
        auto_remove: q.auto_remove.map(|Flag(b)| b),
    };
    Ok(ListParams {
        all_projects: q.all_projects.is_some_and(|Flag(b)| b),
        limit,
        marker,
        sort_key,
        sort_dir,
        filters,
    })
}

/// The `next` link: the same query with the last uuid as marker.
fn next_link(base: &str, params: &ListParams, last: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("limit", &params.limit.to_string());
    query.append_pair("sort_key", params.sort_key.as_str());
    query.append_pair("sort_dir", params.sort_dir.as_str());
    if params.all_projects {
        query.append_pair("all_projects", "True");
    }
    let f = &params.filters;
    let filters = [
        ("name", f.name.clone()),
        ("image", f.image.clone()),
        ("project_id", f.project_id.as_ref().map(ToString::to_string)),
        ("user_id", f.user_id.as_ref().map(ToString::to_string)),
        ("memory", f.memory_mib.map(|m| m.to_string())),
        ("host", f.host.as_ref().map(|h| h.as_str().to_owned())),
        ("task_state", f.task_state.clone()),
        ("status", f.status.map(|s| s.as_zun().to_owned())),
        ("auto_remove", f.auto_remove.map(|b| b.to_string())),
    ];
    for (key, value) in filters {
        if let Some(value) = value {
            query.append_pair(key, &value);
        }
    }
    query.append_pair("marker", last);
    format!("{base}/v1/containers?{}", query.finish())
}

/// List containers.
#[utoipa::path(
    get, path = "/v1/containers", tag = "containers",
    params(
        ("limit" = Option<u32>, Query, description = "page size, 1-1000"),
        ("marker" = Option<String>, Query, description = "uuid of the previous page's last container"),
        ("sort_key" = Option<String>, Query), ("sort_dir" = Option<String>, Query),
        ("all_projects" = Option<bool>, Query, description = "admin only"),
        ("name" = Option<String>, Query), ("image" = Option<String>, Query),
        ("project_id" = Option<String>, Query), ("user_id" = Option<String>, Query),
        ("memory" = Option<String>, Query), ("host" = Option<String>, Query),
        ("task_state" = Option<String>, Query), ("status" = Option<String>, Query),
        ("auto_remove" = Option<bool>, Query),
    ),
    responses((status = 200, body = ContainerCollection), (status = 400, description = "bad parameter"))
)]
pub async fn list(
    State(state): State<ApiState>,
    cx: RequestContext,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<ContainerCollection>, ApiError> {
    let params = parse_list(query)?;
    let page = state
        .app()
        .list_containers(&cx.call, params.clone())
        .await?;
    let containers: Vec<ContainerView> = page
        .containers
        .iter()
        .map(|c| container_view(c, &cx.base_url))
        .collect();
    let full = u32::try_from(containers.len()).is_ok_and(|n| n == params.limit);
    let next = match containers.last() {
        Some(last) if page.has_more && full => {
            Some(next_link(cx.base_url.as_str(), &params, &last.uuid))
        }
        _ => None,
    };
    Ok(Json(ContainerCollection { containers, next }))
}

/// Query of show.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowQuery {
    #[serde(default)]
    all_projects: Option<Flag>,
}

/// Show a container, by uuid or name.
#[utoipa::path(
    get, path = "/v1/containers/{container}", tag = "containers",
    params(("container" = String, Path, description = "uuid or name"),
           ("all_projects" = Option<bool>, Query)),
    responses((status = 200, body = ContainerView), (status = 404, description = "no such container"),
              (status = 409, description = "name is ambiguous"))
)]
pub async fn show(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath(ident): ZunPath<String>,
    QueryParams(query): QueryParams<ShowQuery>,
) -> Result<Json<ContainerView>, ApiError> {
    let container = ContainerRef::parse(&ident);
    let all_projects = query.all_projects.is_some_and(|Flag(b)| b);
    let info = state
        .app()
        .show_container(&cx.call, &container, all_projects)
        .await?;
    Ok(Json(container_view(&info, &cx.base_url)))
}

/// A container's networks (≥1.13): those of its instance.
#[utoipa::path(
    get, path = "/v1/containers/{container}/network_list", tag = "containers",
    params(("container" = String, Path, description = "uuid or name"),
           ("all_projects" = Option<bool>, Query)),
    responses((status = 200, body = NetworkListView), (status = 404, description = "no such container"))
)]
pub async fn network_list(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath(ident): ZunPath<String>,
    QueryParams(query): QueryParams<ShowQuery>,
) -> Result<Json<NetworkListView>, ApiError> {
    cx.version.require(13)?;
    let container = ContainerRef::parse(&ident);
    let all_projects = query.all_projects.is_some_and(|Flag(b)| b);
    let info = state
        .app()
        .show_container(&cx.call, &container, all_projects)
        .await?;
    Ok(Json(network_list_view(&container_view(
        &info,
        &cx.base_url,
    ))))
}

/// A query that takes no parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// Rename or resize a container.
#[utoipa::path(
    patch, path = "/v1/containers/{container}", tag = "containers",
    params(("container" = String, Path, description = "uuid or name")),
    request_body = UpdateContainerBody,
    responses((status = 200, body = ContainerView))
)]
pub async fn update(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath(ident): ZunPath<String>,
    QueryParams(NoParams {}): QueryParams<NoParams>,
    ZunJson(body): ZunJson<UpdateContainerBody>,
) -> Result<Json<ContainerView>, ApiError> {
    let patch = parse_update(body, cx.version)?;
    let container = ContainerRef::parse(&ident);
    let info = state
        .app()
        .update_container(&cx.call, &container, patch)
        .await?;
    Ok(Json(container_view(&info, &cx.base_url)))
}

/// Query of the old rename.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameQuery {
    #[serde(default)]
    name: Option<String>,
}

/// The last microversion with `POST .../rename` (1.14 renames by PATCH).
const RENAME_MAX_VERSION: u16 = 13;

/// Rename a container, as Zun did before 1.14 (`zun rename` at those
/// versions); later versions rename with PATCH.
#[utoipa::path(
    post, path = "/v1/containers/{container}/rename", tag = "containers",
    params(("container" = String, Path, description = "uuid or name"),
           ("name" = String, Query, description = "the new name")),
    responses((status = 200, body = ContainerView),
              (status = 406, description = "1.14 or later: rename with PATCH"))
)]
pub async fn rename(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath(ident): ZunPath<String>,
    QueryParams(query): QueryParams<RenameQuery>,
) -> Result<Json<ContainerView>, ApiError> {
    if cx.version.at_least(RENAME_MAX_VERSION + 1) {
        return Err(ApiError::RouteRemovedInVersion {
            requested: cx.version,
            maximum: super::microversion::ApiVersion::new(RENAME_MAX_VERSION),
        });
    }
    let Some(name) = query.name else {
        return Err(ApiError::InvalidParameter {
            name: "name".into(),
            reason: "the new name is required".into(),
        });
    };
    check_name("name", &name)?;
    let patch = ContainerPatch {
        name: Some(name),
        cpu: None,
        memory_mib: None,
    };
    let container = ContainerRef::parse(&ident);
    let info = state
        .app()
        .update_container(&cx.call, &container, patch)
        .await?;
    Ok(Json(container_view(&info, &cx.base_url)))
}

/// Query of delete.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    #[serde(default)]
    force: Option<Flag>,
    #[serde(default)]
    stop: Option<Flag>,
    #[serde(default)]
    all_projects: Option<Flag>,
}

/// Delete a container (204; it is removed asynchronously).
#[utoipa::path(
    delete, path = "/v1/containers/{container}", tag = "containers",
    params(("container" = String, Path, description = "uuid or name"),
           ("force" = Option<bool>, Query), ("stop" = Option<bool>, Query, description = "1.12+"),
           ("all_projects" = Option<bool>, Query)),
    responses((status = 204, description = "deleting"), (status = 409, description = "wrong state"))
)]
pub async fn delete(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath(ident): ZunPath<String>,
    Params(query): Params<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    let stop = query.stop.is_some_and(|Flag(b)| b);
    if stop && !cx.version.at_least(12) {
        return Err(ApiError::ParamInVersion {
            param: "stop",
            requested: cx.version,
            minimum: super::microversion::ApiVersion::new(12),
        });
    }
    let options = DeleteOptions {
        force: query.force.is_some_and(|Flag(b)| b),
        stop,
        all_projects: query.all_projects.is_some_and(|Flag(b)| b),
    };
    let container = ContainerRef::parse(&ident);
    state
        .app()
        .delete_container(&cx.call, &container, options)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_query_is_validated() {
        let q = ListQuery {
            limit: Some(Lenient(5000)),
            ..ListQuery::default()
        };
        assert_eq!(parse_list(q).map(|p| p.limit).ok(), Some(MAX_LIST_LIMIT));
        let q = ListQuery {
            limit: Some(Lenient(0)),
            ..ListQuery::default()
        };
        assert!(parse_list(q).is_err());
        let q = ListQuery {
            sort_dir: Some("up".into()),
            ..ListQuery::default()
        };
        assert!(parse_list(q).is_err());
        let q = ListQuery {
            sort_key: Some("nope".into()),
            ..ListQuery::default()
        };
        assert!(parse_list(q).is_err());
        let q = ListQuery {
            status: Some("running".into()),
            ..ListQuery::default()
        };
        let p = parse_list(q).expect("valid");
        assert_eq!(p.filters.status, Some(ContainerStatus::Running));
    }
}
