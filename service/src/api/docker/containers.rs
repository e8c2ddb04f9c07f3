//! The container routes: create, list, inspect, the lifecycle actions,
//! remove, wait, logs, top, stats, rename and update. Each resolves the
//! container the way dockerd does (full id, name, unique id prefix) within
//! the caller's project, makes its call to the application layer and
//! renders Docker's answer.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::DockerError;
use super::views::{self, docker_id};
use super::{DockerContext, DockerState, create};
use crate::app::{
    AppError, ChangeEvent, ChangeKind, ConsoleOutput, ContainerAction, ContainerFilters,
    ContainerInfo, ContainerPatch, ContainerRef, DeleteOptions, ListParams, LogsParams,
    MAX_LIST_LIMIT, NetworkAttachment, Signal, SortDir, SortKey,
};
use crate::domain::{ContainerId, ContainerStatus};

/// How long `docker rm` waits for the container to be gone before it
/// answers anyway (it then shows as "removing").
const REMOVE_WAIT: Duration = Duration::from_secs(30);
/// How often a wait re-reads its container, in case the change came from
/// another replica or was missed.
const WAIT_RECHECK: Duration = Duration::from_secs(2);
/// Interval between two samples of a streamed `docker stats`.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// A query string as key → value (the last one wins).
pub(super) fn query_map(raw: Option<String>) -> BTreeMap<String, String> {
    raw.map(|q| {
        form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// Docker's boolean query values: `1`, `true`, `True`.
pub(super) fn flag(query: &BTreeMap<String, String>, key: &str) -> bool {
    query
        .get(key)
        .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "True" | "TRUE" | "yes"))
}

/// The query's filters, refusing any key but `allowed` with a message
/// saying what `what` can be filtered by.
pub(super) fn filters_of(
    query: &BTreeMap<String, String>,
    allowed: &[&str],
    what: &str,
) -> Result<BTreeMap<String, Vec<String>>, DockerError> {
    let filters = filters(query)?;
    if let Some(key) = filters.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(DockerError::Invalid(format!(
            "invalid filter '{key}': Nest filters {what} by {}",
            allowed.join(", ")
        )));
    }
    Ok(filters)
}

/// `filters={"name":{"web":true}}` (or the older `{"name":["web"]}`).
pub(super) fn filters(
    query: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Vec<String>>, DockerError> {
    let Some(raw) = query.get("filters").filter(|f| !f.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let value: Value = serde_json::from_str(raw)
        .map_err(|e| DockerError::Invalid(format!("invalid filters: {e}")))?;
    let Value::Object(map) = value else {
        return Err(DockerError::Invalid(
            "invalid filters: not an object".into(),
        ));
    };
    let mut out = BTreeMap::new();
    for (key, values) in map {
        let list = match values {
            Value::Object(set) => set.into_iter().map(|(k, _)| k).collect(),
            Value::Array(items) => items
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Value::String(s) => vec![s],
            _ => return Err(DockerError::Invalid(format!("invalid filter '{key}'"))),
        };
        out.insert(key, list);
    }
    Ok(out)
}

/// Every container of the caller's project, newest first.
pub(super) async fn all_containers(
    state: &DockerState,
    cx: &DockerContext,
) -> Result<Vec<ContainerInfo>, DockerError> {
    let page = state
        .app()
        .list_containers(
            &cx.call,
            ListParams {
                all_projects: false,
                limit: MAX_LIST_LIMIT,
                marker: None,
                sort_key: SortKey::Id,
                sort_dir: SortDir::Desc,
                filters: ContainerFilters::default(),
            },
        )
        .await?;
    Ok(page.containers)
}

/// Finds the container a path names, as dockerd does: full id (its Docker
/// id, or Nest's uuid with or without hyphens), name (with or without the
/// leading `/`), or a unique id prefix.
pub(super) async fn resolve(
    state: &DockerState,
    cx: &DockerContext,
    segment: &str,
) -> Result<ContainerInfo, DockerError> {
    let name = segment.strip_prefix('/').unwrap_or(segment);
    let no_such = || DockerError::NoSuchContainer(segment.to_owned());
    if name.is_empty() || name.len() > 255 {
        return Err(no_such());
    }
    let direct = ContainerId::parse(name)
        .ok()
        .or_else(|| views::parse_docker_id(name));
    let reference = direct.map_or_else(|| ContainerRef::Name(name.to_owned()), ContainerRef::Id);
    match state
        .app()
        .show_container(&cx.call, &reference, false)
        .await
    {
        Ok(info) => return Ok(info),
        Err(AppError::ContainerNotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    if direct.is_some() || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(no_such());
    }
    let prefix = name.to_ascii_lowercase();
    let mut matches: Vec<ContainerInfo> = all_containers(state, cx)
        .await?
        .into_iter()
        .filter(|c| docker_id(c.container.id).starts_with(&prefix))
        .collect();
    match matches.len() {
        0 => Err(no_such()),
        1 => Ok(matches.remove(0)),
        _ => Err(DockerError::Invalid(format!(
            "multiple containers found with provided prefix: {segment}"
        ))),
    }
}

/// Image names to show for a project's stored images (their first tag).
pub(super) async fn image_names(
    state: &DockerState,
    cx: &DockerContext,
) -> BTreeMap<String, String> {
    match state.app().list_images(&cx.call).await {
        Ok(images) => images
            .into_iter()
            .map(|i| {
                let name = super::images::docker_tags(&i)
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| i.id.clone());
                (i.id, name)
            })
            .collect(),
        Err(_) => BTreeMap::new(),
    }
}

fn image_of(names: &BTreeMap<String, String>, info: &ContainerInfo) -> String {
    let image = &info.container.spec.image;
    names.get(image).cloned().unwrap_or_else(|| image.clone())
}

pub(super) fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut response = (status, value.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `GET /containers/json`: `all`, `limit`, `filters` (status, label, name,
/// id).
pub async fn list(
    State(state): State<DockerState>,
    cx: DockerContext,
    RawQuery(raw): RawQuery,
) -> Result<Response, DockerError> {
    let query = query_map(raw);
    let filters = filters_of(
        &query,
        &["status", "label", "name", "id", "network"],
        "containers",
    )?;
    let all = flag(&query, "all");
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| *l > 0);
    let names = image_names(&state, &cx).await;
    let now = now_unix();
    let mut rows = Vec::new();
    for info in all_containers(&state, &cx).await? {
        let c = &info.container;
        let word = views::state_word(c.status);
        let wanted_status = filters.get("status");
        if !all && wanted_status.is_none() && word != "running" && word != "paused" {
            continue;
        }
        if let Some(statuses) = wanted_status
            && !statuses.iter().any(|s| s == word)
        {
            continue;
        }
        if let Some(names) = filters.get("name")
            && !names
                .iter()
                .any(|n| c.name.contains(n.trim_start_matches('/')))
        {
            continue;
        }
        if let Some(ids) = filters.get("id")
            && !ids
                .iter()
                .any(|i| docker_id(c.id).starts_with(&i.to_ascii_lowercase()))
        {
            continue;
        }
        if let Some(wanted) = filters.get("network")
            && !info.networks.iter().any(|n| {
                wanted
                    .iter()
                    .any(|w| *w == n.name || n.id.hex().starts_with(&w.to_ascii_lowercase()))
            })
        {
            continue;
        }
        if let Some(labels) = filters.get("label") {
            let shown = views::summary(&info, "", now);
            let have = shown["Labels"].as_object().cloned().unwrap_or_default();
            let ok = labels.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => have.get(k).and_then(Value::as_str) == Some(v),
                None => have.contains_key(l),
            });
            if !ok {
                continue;
            }
        }
        rows.push(views::summary(&info, &image_of(&names, &info), now));
        if limit.is_some_and(|l| rows.len() as i64 >= l) {
            break;
        }
    }
    Ok(json_response(StatusCode::OK, &Value::Array(rows)))
}

/// Whether an image reference names one of the project's stored images
/// (by uuid or tag); returns what the spec should run.
pub(super) async fn resolve_image(
    state: &DockerState,
    cx: &DockerContext,
    image: &str,
) -> Result<Option<String>, DockerError> {
    let wanted = super::images::normalize(image);
    for stored in state.app().list_images(&cx.call).await? {
        if stored.id == image
            || stored.id.starts_with(image.trim_start_matches("sha256:")) && image.len() >= 12
            || stored
                .repo_tags
                .iter()
                .any(|t| super::images::normalize(t) == wanted)
            || stored.name.as_deref().map(super::images::normalize) == Some(wanted.clone())
        {
            return Ok(Some(stored.id));
        }
    }
    if state.was_pulled(&cx.call.caller.project_id, &wanted) {
        return Ok(Some(image.to_owned()));
    }
    Ok(None)
}

/// `POST /containers/create?name=`: 201 `{"Id","Warnings"}`; 404 only for
/// a missing image, so that `docker run` pulls (§1 #10).
pub async fn create(
    State(state): State<DockerState>,
    cx: DockerContext,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, DockerError> {
    let query = query_map(raw);
    for key in query.keys() {
        if !matches!(key.as_str(), "name" | "platform") {
            return Err(DockerError::Invalid(format!("unknown parameter {key}")));
        }
    }
    if let Some(platform) = query.get("platform").filter(|p| !p.is_empty())
        && !platform.starts_with("linux")
    {
        return Err(DockerError::Invalid(format!(
            "platform {platform} is not supported by Nest: it runs linux containers"
        )));
    }
    let body: create::CreateBody =
        serde_json::from_slice(&body).map_err(|e| DockerError::MalformedJson(e.to_string()))?;
    let name = query.get("name").filter(|n| !n.is_empty()).cloned();
    let create::Parsed {
        mut new,
        image,
        networks,
    } = create::parse(body, name)?;
    for requested in networks {
        let network = match state.app().network(&cx.call, &requested.reference).await {
            Ok(info) => info.network,
            // Not a 404: the CLI takes any 404 on create for a missing
            // image and pulls (§1 #10).
            Err(AppError::NetworkNotFound(name)) => {
                return Err(DockerError::Invalid(format!(
                    "network {name} not found: create it with docker network create {name} \
                     (the instance's own networks, where ports are published, are chosen with \
                     the label {}=<name>)",
                    views::NETWORK_LABEL
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if new.spec.networks.iter().any(|n| n.network == network.id) {
            continue;
        }
        new.spec.networks.push(NetworkAttachment {
            network: network.id,
            aliases: requested.aliases,
        });
    }
    let Some(spec_image) = resolve_image(&state, &cx, &image).await? else {
        return Err(DockerError::NoSuchImage(image));
    };
    new.spec.image = spec_image;
    let info = state.app().create_container(&cx.call, new, false).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"Id": docker_id(info.container.id), "Warnings": []}),
    ))
}

/// `GET /containers/{id}/json`.
pub async fn inspect(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(id): Path<String>,
) -> Result<Response, DockerError> {
    let info = resolve(&state, &cx, &id).await?;
    let names = image_names(&state, &cx).await;
    Ok(json_response(
        StatusCode::OK,
        &views::inspect(&info, &image_of(&names, &info)),
    ))
}

async fn act(
    state: &DockerState,
    cx: &DockerContext,
    id: &str,
    action: ContainerAction,
    already: impl Fn(ContainerStatus) -> bool,
) -> Result<StatusCode, DockerError> {
    let info = resolve(state, cx, id).await?;
    // dockerd answers 304 when there is nothing to do (§1 #13).
    if already(info.container.status) {
        return Ok(StatusCode::NOT_MODIFIED);
    }
    state
        .app()
        .act_on_container(&cx.call, &ContainerRef::Id(info.container.id), action)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn grace(query: &BTreeMap<String, String>) -> Result<Option<Duration>, DockerError> {
    match query.get("t").or_else(|| query.get("timeout")) {
        None => Ok(None),
        Some(t) => t
            .parse::<i64>()
            .map_err(|_| DockerError::Invalid(format!("invalid timeout {t:?}")))
            .map(|t| Some(Duration::from_secs(u64::try_from(t.max(0)).unwrap_or(0)))),
    }
}

/// `POST /containers/{id}/start`: 204, or 304 when it already runs; a
/// container whose instance is still booting starts once created.
pub async fn start(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(id): Path<String>,
) -> Result<StatusCode, DockerError> {
    let info = resolve(&state, &cx, &id).await?;
    if matches!(
        info.container.status,
        ContainerStatus::Running | ContainerStatus::Paused | ContainerStatus::Restarting
    ) {
        return Ok(StatusCode::NOT_MODIFIED);
    }
    state
        .app()
        .start_container(&cx.call, &ContainerRef::Id(info.container.id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /containers/{id}/stop?t=`.
pub async fn stop(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, DockerError> {
    let timeout = grace(&query_map(raw))?;
    act(&state, &cx, &id, ContainerAction::Stop { timeout }, |s| {
        !matches!(s, ContainerStatus::Running | ContainerStatus::Paused)
    })
    .await
}

/// `POST /containers/{id}/restart?t=`.
pub async fn restart(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, DockerError> {
    let timeout = grace(&query_map(raw))?;
    act(
        &state,
        &cx,
        &id,
        ContainerAction::Reboot { timeout },
        |_| false,
    )
    .await
}

/// `POST /containers/{id}/kill?signal=`.
pub async fn kill(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, DockerError> {
    let query = query_map(raw);
    let signal = query
        .get("signal")
        .filter(|s| !s.is_empty())
        .map(|s| Signal::parse(s).map_err(|e| DockerError::Invalid(format!("Invalid signal: {e}"))))
        .transpose()?;
    let info = resolve(&state, &cx, &id).await?;
    if info.container.status != ContainerStatus::Running {
        return Err(DockerError::Conflict(format!(
            "Cannot kill container: {id}: Container {} is not running",
            docker_id(info.container.id)
        )));
    }
    act(&state, &cx, &id, ContainerAction::Kill { signal }, |_| {
        false
    })
    .await
}

/// `POST /containers/{id}/pause`.
pub async fn pause(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(id): Path<String>,
) -> Result<StatusCode, DockerError> {
    act(&state, &cx, &id, ContainerAction::Pause, |_| false).await
}

/// `POST /containers/{id}/unpause`.
pub async fn unpause(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(id): Path<String>,
) -> Result<StatusCode, DockerError> {
    act(&state, &cx, &id, ContainerAction::Unpause, |_| false).await
}

/// `DELETE /containers/{id}?force=&v=`: 204 once the container is gone (or
/// after [`REMOVE_WAIT`]); 409 for a running one without `force`. `force`
/// kills it first, as `docker rm -f` does.
pub async fn remove(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, DockerError> {
    let query = query_map(raw);
    if flag(&query, "link") {
        return Err(DockerError::Unsupported(
            "removing links (docker rm --link)",
        ));
    }
    let force = flag(&query, "force");
    let info = resolve(&state, &cx, &id).await?;
    let container = info.container.id;
    let status = info.container.status;
    if !force && matches!(status, ContainerStatus::Running | ContainerStatus::Paused) {
        return Err(DockerError::Conflict(format!(
            "cannot remove container \"/{}\": container is {}: stop the container before removing or force remove",
            info.container.name,
            views::state_word(status)
        )));
    }
    let mut changes = state.app().project_changes(&cx.call);
    let reference = ContainerRef::Id(container);
    if force && status == ContainerStatus::Paused {
        let _ = state
            .app()
            .act_on_container(&cx.call, &reference, ContainerAction::Unpause)
            .await;
    }
    if force && matches!(status, ContainerStatus::Running | ContainerStatus::Paused) {
        // A kill that loses a race with the container's own exit is fine.
        let _ = state
            .app()
            .act_on_container(&cx.call, &reference, ContainerAction::Kill { signal: None })
            .await;
    }
    let options = DeleteOptions {
        force: false,
        stop: force,
        all_projects: false,
    };
    match state
        .app()
        .delete_container(&cx.call, &reference, options)
        .await
    {
        Ok(()) => {}
        // Already on its way out.
        Err(AppError::InvalidState {
            status: ContainerStatus::Deleting,
            ..
        }) => {}
        Err(e) => return Err(e.into()),
    }
    let gone = async {
        loop {
            match changes.next().await {
                ChangeEvent::Change(c)
                    if c.container == container && c.kind == ChangeKind::Deleted =>
                {
                    return;
                }
                ChangeEvent::Change(_) => {}
                ChangeEvent::Missed(_) | ChangeEvent::Closed => {
                    if resolve(&state, &cx, &id).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(WAIT_RECHECK).await;
                }
            }
        }
    };
    let _ = tokio::time::timeout(REMOVE_WAIT, gone).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /containers/prune?filters=`: removes the project's containers
/// that are not running (created, exited, dead), as dockerd does, and
/// names them. Filters: `label` (`k` or `k=v`), `label!`, and `until` (a
/// unix time, an RFC 3339 time, or a duration such as `24h` before now):
/// only containers created before it go.
pub async fn prune(
    State(state): State<DockerState>,
    cx: DockerContext,
    RawQuery(raw): RawQuery,
) -> Result<Response, DockerError> {
    let filters = filters_of(
        &query_map(raw),
        &["label", "label!", "until"],
        "the containers it prunes",
    )?;
    let until = match filters.get("until").map(Vec::as_slice) {
        None | Some([]) => None,
        Some([one]) => Some(
            prune_until(one, OffsetDateTime::now_utc())
                .ok_or_else(|| DockerError::Invalid(format!("invalid until filter: {one}")))?,
        ),
        Some(_) => {
            return Err(DockerError::Invalid(
                "invalid filter 'until': give it once".into(),
            ));
        }
    };
    let has = |labels: &BTreeMap<String, String>, wanted: &str| match wanted.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(wanted),
    };
    let mut deleted = Vec::new();
    for info in all_containers(&state, &cx).await? {
        let container = &info.container;
        if !matches!(
            container.status,
            ContainerStatus::Created | ContainerStatus::Stopped | ContainerStatus::Error
        ) {
            continue;
        }
        let labels = &container.spec.labels;
        if filters
            .get("label")
            .is_some_and(|w| !w.iter().all(|l| has(labels, l)))
            || filters
                .get("label!")
                .is_some_and(|w| w.iter().any(|l| has(labels, l)))
        {
            continue;
        }
        if let Some(until) = until {
            let created = OffsetDateTime::parse(&container.created_at, &Rfc3339).ok();
            if created.is_none_or(|c| c >= until) {
                continue;
            }
        }
        let options = DeleteOptions {
            force: false,
            stop: false,
            all_projects: false,
        };
        match state
            .app()
            .delete_container(&cx.call, &ContainerRef::Id(container.id), options)
            .await
        {
            Ok(()) => deleted.push(docker_id(container.id)),
            // Started or removed since the list was read: not pruned.
            Err(AppError::InvalidState { .. } | AppError::ContainerNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"ContainersDeleted": deleted, "SpaceReclaimed": 0}),
    ))
}

/// The time an `until` filter names, as dockerd reads it: unix seconds
/// (with an optional fraction), an RFC 3339 time, or a duration before
/// `now` in Go's spelling (`90s`, `10m`, `1h30m`).
fn prune_until(text: &str, now: OffsetDateTime) -> Option<OffsetDateTime> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(at);
    }
    let (secs, nanos) = text.split_once('.').unwrap_or((text, ""));
    if !secs.is_empty()
        && secs.bytes().all(|b| b.is_ascii_digit())
        && nanos.bytes().all(|b| b.is_ascii_digit())
        && nanos.len() <= 9
    {
        let secs: i64 = secs.parse().ok()?;
        let nanos: i64 = if nanos.is_empty() {
            0
        } else {
            format!("{nanos:0<9}").parse().ok()?
        };
        return OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(secs) * 1_000_000_000 + i128::from(nanos),
        )
        .ok();
    }
    let mut total = 0u64;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        let n: u64 = digits.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        digits.clear();
    }
    if !digits.is_empty() || text.is_empty() {
        return None;
    }
    now.checked_sub(time::Duration::seconds(i64::try_from(total).ok()?))
}

/// What a wait is waiting for (`condition=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

fn is_up(status: ContainerStatus) -> bool {
    matches!(
        status,
        ContainerStatus::Creating
            | ContainerStatus::Created
            | ContainerStatus::Running
            | ContainerStatus::Paused
            | ContainerStatus::Restarting
    )
}

/// `POST /containers/{id}/wait?condition=`: the headers go at once (the
/// CLI starts the container only once they arrive, §1 #3), the body
/// `{"StatusCode","Error"}` when the condition is met.
pub async fn wait(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, DockerError> {
    let query = query_map(raw);
    let condition = match query.get("condition").map(String::as_str) {
        None | Some("" | "not-running") => WaitCondition::NotRunning,
        Some("next-exit") => WaitCondition::NextExit,
        Some("removed") => WaitCondition::Removed,
        Some(other) => {
            return Err(DockerError::Invalid(format!(
                "invalid condition: {other:?}"
            )));
        }
    };
    // Subscribed before reading, so that no change falls in between.
    let mut changes = state.app().project_changes(&cx.call);
    let info = resolve(&state, &cx, &id).await?;
    let container = info.container.id;
    let mut last_code = views::exit_code(
        info.container.status,
        info.container.status_reason.as_deref(),
    );
    let initially_up = is_up(info.container.status);
    let state2 = state.clone();
    let finished = async move {
        if condition == WaitCondition::NotRunning && !initially_up {
            return last_code;
        }
        loop {
            let event = tokio::time::timeout(WAIT_RECHECK, changes.next()).await;
            match event {
                Ok(ChangeEvent::Change(c)) if c.container == container => match c.kind {
                    ChangeKind::Deleted => return last_code,
                    ChangeKind::Status { status, reason }
                        if !is_up(status) && status != ContainerStatus::Deleting =>
                    {
                        last_code = views::exit_code(status, reason.as_deref());
                        if condition != WaitCondition::Removed {
                            return last_code;
                        }
                    }
                    _ => {}
                },
                Ok(ChangeEvent::Change(_)) => {}
                Ok(ChangeEvent::Closed) => return last_code,
                // Missed changes or a quiet interval: re-read.
                Ok(ChangeEvent::Missed(_)) | Err(_) => {
                    match state2
                        .app()
                        .show_container(&cx.call, &ContainerRef::Id(container), false)
                        .await
                    {
                        Ok(now) => {
                            let status = now.container.status;
                            if !is_up(status) && status != ContainerStatus::Deleting {
                                last_code = views::exit_code(
                                    status,
                                    now.container.status_reason.as_deref(),
                                );
                                if condition == WaitCondition::NotRunning {
                                    return last_code;
                                }
                            }
                        }
                        Err(AppError::ContainerNotFound(_)) => return last_code,
                        Err(_) => {}
                    }
                }
            }
        }
    };
    let body = futures_util::stream::once(async move {
        let code = finished.await;
        Ok::<_, Infallible>(Bytes::from(
            json!({"StatusCode": code, "Error": null}).to_string() + "\n",
        ))
    });
    let mut response = Response::new(Body::from_stream(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// An 8-byte-header frame of a multiplexed stream (§4): 1 stdout, 2
/// stderr.
pub(super) fn frame(stream: u8, data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(8 + data.len());
    out.push(stream);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(data);
    Bytes::from(out)
}

/// Bytes of one console frame as the client reads them: raw with a tty,
/// multiplexed without (§1 #5).
pub(super) fn encode_output(output: &ConsoleOutput, tty: bool) -> Option<Bytes> {
    match output {
        ConsoleOutput::Tty(data) => Some(data.clone()),
        ConsoleOutput::Stdout(data) if tty => Some(data.clone()),
        ConsoleOutput::Stderr(data) if tty => Some(data.clone()),
        ConsoleOutput::Stdout(data) => Some(frame(1, data)),
        ConsoleOutput::Stderr(data) => Some(frame(2, data)),
        ConsoleOutput::Exit(_) | ConsoleOutput::Error { .. } => None,
    }
}

/// `GET /containers/{id}/logs?stdout&stderr&follow&tail&since&timestamps`.
pub async fn logs(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, DockerError> {
    let query = query_map(raw);
    let info = resolve(&state, &cx, &id).await?;
    let tail = match query.get("tail").map(String::as_str) {
        None | Some("" | "all") => None,
        Some(n) => Some(
            n.parse::<i64>()
                .map_err(|_| DockerError::Invalid(format!("invalid tail {n:?}")))
                .map(|n| u64::try_from(n).unwrap_or(0))?,
        ),
    };
    let since = match query.get("since").map(String::as_str) {
        None | Some("" | "0") => None,
        Some(s) => Some(
            s.split('.')
                .next()
                .and_then(|secs| secs.parse::<i64>().ok())
                .ok_or_else(|| DockerError::Invalid(format!("invalid since {s:?}")))?,
        ),
    };
    if query
        .get("until")
        .is_some_and(|u| !u.is_empty() && u != "0")
    {
        return Err(DockerError::Unsupported("docker logs --until"));
    }
    let (stdout, stderr) = (flag(&query, "stdout"), flag(&query, "stderr"));
    if !stdout && !stderr {
        return Err(DockerError::Invalid(
            "Bad parameters: you must choose at least one stream".into(),
        ));
    }
    let params = LogsParams {
        stdout,
        stderr,
        timestamps: flag(&query, "timestamps"),
        tail,
        since,
    };
    let tty = info.container.spec.tty;
    let frames = state
        .app()
        .log_frames(
            &cx.call,
            &ContainerRef::Id(info.container.id),
            params,
            flag(&query, "follow"),
        )
        .await?;
    let body = frames.filter_map(move |item| async move {
        match item {
            Ok(output) => encode_output(&output, tty).map(Ok::<_, Infallible>),
            Err(e) => {
                tracing::debug!(error = %e, "log stream ended with an error");
                None
            }
        }
    });
    let mut response = Response::new(Body::from_stream(body));
    let media = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    Ok(response)
}

/// `GET /containers/{id}/top?ps_args=`.
pub async fn top(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, DockerError> {
    let query = query_map(raw);
    let info = resolve(&state, &cx, &id).await?;
    let ps_args = query.get("ps_args").filter(|a| !a.is_empty()).cloned();
    if let Some(args) = &ps_args
        && (args.len() > 64
            || !args
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ',' | ' ')))
    {
        return Err(DockerError::Invalid(format!("invalid ps_args {args:?}")));
    }
    let top = state
        .app()
        .top(&cx.call, &ContainerRef::Id(info.container.id), ps_args)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"Titles": top.titles, "Processes": top.processes}),
    ))
}

fn stats_json(info: &ContainerInfo, s: &crate::app::ContainerStats) -> Value {
    let mib = |m: f64| (m * 1024.0 * 1024.0).round() as u64;
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    // The CLI computes CPU % from deltas against the previous sample
    // (§5); Nest has the percentage, so one second of a one-CPU system
    // carries it.
    let system = 1_000_000_000u64;
    let total = ((s.cpu_percent / 100.0) * system as f64).round().max(0.0) as u64;
    json!({
        "id": docker_id(info.container.id),
        "name": format!("/{}", info.container.name),
        "read": now,
        "preread": "0001-01-01T00:00:00Z",
        "cpu_stats": {
            "cpu_usage": {"total_usage": total},
            "system_cpu_usage": system,
            "online_cpus": 1,
        },
        "precpu_stats": {
            "cpu_usage": {"total_usage": 0},
            "system_cpu_usage": 0,
            "online_cpus": 1,
        },
        "memory_stats": {
            "usage": mib(s.memory_usage_mib),
            "limit": mib(s.memory_limit_mib),
            "stats": {"inactive_file": 0},
        },
        "networks": {"eth0": {"rx_bytes": s.net_rx_bytes, "tx_bytes": s.net_tx_bytes}},
        "blkio_stats": {"io_service_bytes_recursive": [
            {"major": 0, "minor": 0, "op": "read", "value": s.block_read_bytes},
            {"major": 0, "minor": 0, "op": "write", "value": s.block_write_bytes},
        ]},
        "pids_stats": {},
    })
}

/// `GET /containers/{id}/stats?stream=`: one sample, or one a second until
/// the client goes away.
pub async fn stats(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, DockerError> {
    let query = query_map(raw);
    let stream = !query
        .get("stream")
        .is_some_and(|s| matches!(s.as_str(), "0" | "false" | "False"));
    let info = resolve(&state, &cx, &id).await?;
    let reference = ContainerRef::Id(info.container.id);
    let first = state.app().stats(&cx.call, &reference).await?;
    if !stream {
        return Ok(json_response(StatusCode::OK, &stats_json(&info, &first)));
    }
    let first_line = Bytes::from(stats_json(&info, &first).to_string() + "\n");
    let rest = futures_util::stream::unfold((state, cx, info), |(state, cx, info)| async move {
        tokio::time::sleep(STATS_INTERVAL).await;
        let sample = state
            .app()
            .stats(&cx.call, &ContainerRef::Id(info.container.id))
            .await
            .ok()?;
        let line = Bytes::from(stats_json(&info, &sample).to_string() + "\n");
        Some((Ok::<_, Infallible>(line), (state, cx, info)))
    });
    let body =
        futures_util::stream::once(async move { Ok::<_, Infallible>(first_line) }).chain(rest);
    let mut response = Response::new(Body::from_stream(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// `POST /containers/{id}/rename?name=`.
pub async fn rename(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, DockerError> {
    let query = query_map(raw);
    let name = query
        .get("name")
        .map(|n| n.trim_start_matches('/').to_owned())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| DockerError::Invalid("name is required".into()))?;
    crate::api::zun::create::check_name("name", &name)
        .map_err(|e| DockerError::Invalid(e.to_string()))?;
    let info = resolve(&state, &cx, &id).await?;
    let patch = ContainerPatch {
        name: Some(name),
        ..Default::default()
    };
    state
        .app()
        .update_container(&cx.call, &ContainerRef::Id(info.container.id), patch)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body of `POST /containers/{id}/update`: Nest changes CPU and memory.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct UpdateBody {
    memory: i64,
    nano_cpus: i64,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

/// `POST /containers/{id}/update` (`docker update -m`, `--cpus`).
pub async fn update(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, DockerError> {
    let body: UpdateBody =
        serde_json::from_slice(&body).map_err(|e| DockerError::MalformedJson(e.to_string()))?;
    if let Some((field, _)) = body.rest.iter().find(|(k, v)| {
        !(v.is_null()
            || v.as_i64() == Some(0)
            || v.as_str() == Some("")
            || k.as_str() == "RestartPolicy"
                && v.get("Name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .is_empty()
            || v.as_array().is_some_and(Vec::is_empty)
            || (k.as_str() == "MemorySwap" && v.as_i64() == Some(-1)))
    }) {
        return Err(DockerError::Invalid(format!(
            "{field} is not supported by Nest: docker update changes --memory and --cpus"
        )));
    }
    let memory_mib = match body.memory {
        0 => None,
        b if b < 0 => return Err(DockerError::Invalid("Memory must not be negative".into())),
        b => {
            let mib = u64::try_from(b).unwrap_or(u64::MAX).div_ceil(1024 * 1024);
            let range =
                crate::api::zun::create::MIN_MEMORY_MIB..=crate::api::zun::create::MAX_MEMORY_MIB;
            if !range.contains(&mib) {
                return Err(DockerError::Invalid(format!(
                    "Memory: {mib} MiB is outside what Nest runs ({} to {} MiB)",
                    range.start(),
                    range.end()
                )));
            }
            Some(mib)
        }
    };
    let cpu = match body.nano_cpus {
        0 => None,
        n if n < 0 => return Err(DockerError::Invalid("NanoCpus must not be negative".into())),
        n => {
            let cpu = (n as f64 / 1e9 * 10.0).round() / 10.0;
            let (min, max) = (
                crate::api::zun::create::MIN_CPU,
                crate::api::zun::create::MAX_CPU,
            );
            if !(min..=max).contains(&cpu) {
                return Err(DockerError::Invalid(format!(
                    "NanoCpus: {cpu} CPUs is outside what Nest runs ({min} to {max})"
                )));
            }
            Some(cpu)
        }
    };
    let info = resolve(&state, &cx, &id).await?;
    let patch = ContainerPatch {
        name: None,
        cpu,
        memory_mib,
    };
    state
        .app()
        .update_container(&cx.call, &ContainerRef::Id(info.container.id), patch)
        .await?;
    Ok(json_response(StatusCode::OK, &json!({"Warnings": []})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_until_reads_times_and_durations_as_dockerd_does() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a time");
        let at = |secs: i64| OffsetDateTime::from_unix_timestamp(secs).expect("a time");
        assert_eq!(prune_until("1700000000", now), Some(at(1_700_000_000)));
        assert_eq!(
            prune_until("1700000000.5", now),
            Some(at(1_700_000_000) + time::Duration::milliseconds(500))
        );
        assert_eq!(
            prune_until("2027-01-15T10:00:00Z", now),
            OffsetDateTime::parse("2027-01-15T10:00:00Z", &Rfc3339).ok()
        );
        assert_eq!(prune_until("24h", now), Some(at(1_800_000_000 - 86_400)));
        assert_eq!(prune_until("1h30m", now), Some(at(1_800_000_000 - 5_400)));
        assert_eq!(prune_until("90s", now), Some(at(1_800_000_000 - 90)));
        // Plain digits are a unix time.
        assert_eq!(prune_until("10", now), Some(at(10)));
        for bad in [
            "",
            "h",
            "10ms",
            "-1h",
            "1d",
            "1.5h",
            "1700000000.1234567891",
            "yesterday",
        ] {
            assert_eq!(prune_until(bad, now), None, "{bad:?}");
        }
    }
}
