//! `GET /v1/hosts[/{host}]` (microversion 1.4+): the project's instances
//! shown as Zun hosts. Zun makes hosts admin-only; in Nest an instance is
//! the tenant's own Nova server, so its owner sees it (an admin sees all;
//! the backend decides).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::containers::NoParams;
use super::extract::{Lenient, QueryParams, RequestContext, ZunPath};
use super::views::{HostCollection, HostView, host_view};
use crate::api::ApiState;
use crate::api::zun::error::ApiError;
use crate::app::{AppError, HostInfo, MAX_LIST_LIMIT, SortDir};

/// Hosts appeared in 1.4.
const HOSTS_MIN_VERSION: u16 = 4;
/// `enable_cpu_pinning` appeared in 1.29.
const PINNING_MIN_VERSION: u16 = 29;

/// Query of the host list (zunclient's `host-list`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostListQuery {
    #[serde(default)]
    limit: Option<Lenient<i64>>,
    #[serde(default)]
    marker: Option<String>,
    #[serde(default)]
    sort_key: Option<String>,
    #[serde(default)]
    sort_dir: Option<String>,
}

fn invalid(name: &str, reason: impl Into<String>) -> ApiError {
    ApiError::InvalidParameter {
        name: name.to_owned(),
        reason: reason.into(),
    }
}

/// Sorts and pages hosts the way Zun pages every collection.
fn page(
    mut hosts: Vec<HostInfo>,
    q: &HostListQuery,
) -> Result<(Vec<HostInfo>, Option<String>), ApiError> {
    let limit = match q.limit {
        None => MAX_LIST_LIMIT,
        Some(Lenient(n)) if n <= 0 => return Err(invalid("limit", "must be a positive integer")),
        Some(Lenient(n)) => u32::try_from(n)
            .unwrap_or(MAX_LIST_LIMIT)
            .min(MAX_LIST_LIMIT),
    };
    match q.sort_key.as_deref() {
        None | Some("hostname" | "uuid" | "id") => {}
        Some(k) => {
            return Err(invalid(
                "sort_key",
                format!("{k:?} is not hostname or uuid"),
            ));
        }
    }
    let dir = match q.sort_dir.as_deref() {
        None => SortDir::Asc,
        Some(d) => SortDir::parse(d)
            .ok_or_else(|| invalid("sort_dir", format!("{d:?} is not asc or desc")))?,
    };
    hosts.sort_by(|a, b| a.instance.id.cmp(&b.instance.id));
    if dir == SortDir::Desc {
        hosts.reverse();
    }
    let start = match &q.marker {
        None => 0,
        Some(m) => {
            hosts
                .iter()
                .position(|h| h.instance.id.as_str() == m)
                .ok_or_else(|| AppError::HostNotFound(m.clone()))?
                + 1
        }
    };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let rest: Vec<HostInfo> = hosts.into_iter().skip(start).collect();
    let has_more = rest.len() > limit;
    let page: Vec<HostInfo> = rest.into_iter().take(limit).collect();
    let marker = page
        .last()
        .filter(|_| has_more)
        .map(|h| h.instance.id.as_str().to_owned());
    Ok((page, marker))
}

/// The instances visible to the caller.
#[utoipa::path(get, path = "/v1/hosts", tag = "hosts",
    params(("limit" = Option<u32>, Query), ("marker" = Option<String>, Query),
           ("sort_key" = Option<String>, Query), ("sort_dir" = Option<String>, Query)),
    responses((status = 200, body = HostCollection), (status = 406, description = "before 1.4")))]
pub async fn list(
    State(state): State<ApiState>,
    cx: RequestContext,
    QueryParams(query): QueryParams<HostListQuery>,
) -> Result<Json<HostCollection>, ApiError> {
    cx.version.require(HOSTS_MIN_VERSION)?;
    let hosts = state.app().list_hosts(&cx.call).await?;
    let (page, marker) = page(hosts, &query)?;
    let pinning = cx.version.at_least(PINNING_MIN_VERSION);
    let next = marker.map(|m| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("limit", &page.len().to_string());
        q.append_pair("marker", &m);
        format!("{}/v1/hosts?{}", cx.base_url.as_str(), q.finish())
    });
    Ok(Json(HostCollection {
        hosts: page
            .iter()
            .map(|h| host_view(h, &cx.base_url, pinning))
            .collect(),
        next,
    }))
}

/// One instance, by id.
#[utoipa::path(get, path = "/v1/hosts/{host}", tag = "hosts",
    params(("host" = String, Path, description = "instance id")),
    responses((status = 200, body = HostView), (status = 404, description = "no such host")))]
pub async fn show(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath(host): ZunPath<String>,
    QueryParams(NoParams {}): QueryParams<NoParams>,
) -> Result<Json<HostView>, ApiError> {
    cx.version.require(HOSTS_MIN_VERSION)?;
    let hosts = state.app().list_hosts(&cx.call).await?;
    let found = hosts
        .iter()
        .find(|h| h.instance.id.as_str() == host)
        .ok_or(AppError::HostNotFound(host.clone()))?;
    let pinning = cx.version.at_least(PINNING_MIN_VERSION);
    Ok(Json(host_view(found, &cx.base_url, pinning)))
}
