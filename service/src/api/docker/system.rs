//! `_ping`, `version`, `info`, `events` and `system/df`, the network and
//! volume lookups `docker inspect` falls back to, and the clear refusals
//! for what Nest does not offer (`build`, `commit`, swarm, plugins,
//! volumes, `cp`, ...).

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::containers::{all_containers, filters, image_names, query_map};
use super::error::DockerError;
use super::views::{docker_id, state_word};
use super::{API_VERSION, DockerContext, DockerState, ENGINE_VERSION, MIN_API_VERSION};
use crate::app::{ChangeEvent, ChangeKind, ContainerRef};
use crate::domain::{ContainerId, ContainerStatus};

fn json_ok(value: &Value) -> Response {
    let mut response = (StatusCode::OK, value.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `HEAD|GET /_ping`: `OK`, with the headers every answer carries.
pub async fn ping() -> Response {
    let mut response = (StatusCode::OK, "OK").into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert("builder-version", HeaderValue::from_static("1"));
    headers.insert("swarm", HeaderValue::from_static("inactive"));
    response
}

/// `GET /version`.
pub async fn version(_cx: DockerContext) -> Response {
    json_ok(&json!({
        "Platform": {"Name": "Nest"},
        "Components": [{
            "Name": "Engine",
            "Version": ENGINE_VERSION,
            "Details": {"ApiVersion": API_VERSION.to_string(), "MinAPIVersion": MIN_API_VERSION.to_string(), "Os": "linux", "Arch": std::env::consts::ARCH},
        }],
        "Version": ENGINE_VERSION,
        "ApiVersion": API_VERSION.to_string(),
        "MinAPIVersion": MIN_API_VERSION.to_string(),
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": std::env::consts::ARCH,
        "KernelVersion": "",
        "Experimental": false,
        "BuildTime": "",
    }))
}

/// `GET /info`: the project's containers and instances.
pub async fn info(
    State(state): State<DockerState>,
    cx: DockerContext,
) -> Result<Response, DockerError> {
    let containers = all_containers(&state, &cx).await?;
    let count = |s: ContainerStatus| {
        containers
            .iter()
            .filter(|c| c.container.status == s)
            .count()
    };
    let hosts = state.app().list_hosts(&cx.call).await?;
    let cpus: f64 = hosts.iter().map(|h| h.instance.vcpus).sum();
    let memory: u64 = hosts.iter().map(|h| h.instance.memory_mib).sum();
    let images = state.app().list_images(&cx.call).await?.len();
    let project = cx.call.caller.project_id.as_str();
    Ok(json_ok(&json!({
        "ID": format!("nest-{project}"),
        "Name": format!("nest ({project})"),
        "ServerVersion": ENGINE_VERSION,
        "OperatingSystem": "Nest",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "KernelVersion": "",
        "NCPU": cpus.ceil() as u64,
        "MemTotal": memory.saturating_mul(1024 * 1024),
        "Containers": containers.len(),
        "ContainersRunning": count(ContainerStatus::Running),
        "ContainersPaused": count(ContainerStatus::Paused),
        "ContainersStopped": containers.len() - count(ContainerStatus::Running) - count(ContainerStatus::Paused),
        "Images": images,
        "Driver": "nest",
        "DriverStatus": [
            ["Project", project],
            ["User", cx.call.caller.user_id.as_str()],
            ["Instances", hosts.len().to_string()],
        ],
        "SecurityOptions": [],
        "Swarm": {"LocalNodeState": "inactive"},
        "Warnings": [],
    })))
}

/// `GET /events?filters=&since=&until=`: the project's container events as
/// they happen (create, start, die, pause, unpause, rename, destroy), as
/// NDJSON. Nest keeps no event history: `since` in the past shows only
/// what happens from now on; `until` ends the stream.
pub async fn events(
    State(state): State<DockerState>,
    cx: DockerContext,
    RawQuery(raw): RawQuery,
) -> Result<Response, DockerError> {
    let query = query_map(raw);
    let filters = filters(&query)?;
    for key in filters.keys() {
        if !matches!(
            key.as_str(),
            "type" | "container" | "event" | "label" | "image"
        ) {
            return Err(DockerError::Invalid(format!(
                "invalid filter '{key}': Nest filters events by type, container, event, label and image"
            )));
        }
    }
    if let Some(types) = filters.get("type")
        && !types.iter().any(|t| t == "container")
    {
        // Only container events exist here: the stream stays empty.
        return Ok(stream_response(Body::from_stream(
            futures_util::stream::pending::<Result<Bytes, Infallible>>(),
        )));
    }
    let until = query
        .get("until")
        .and_then(|u| u.split('.').next().and_then(|s| s.parse::<i64>().ok()));
    let changes = state.app().project_changes(&cx.call);
    let mut known = BTreeMap::new();
    let names = image_names(&state, &cx).await;
    for info in all_containers(&state, &cx).await? {
        let image = names
            .get(&info.container.spec.image)
            .cloned()
            .unwrap_or_else(|| info.container.spec.image.clone());
        known.insert(
            info.container.id,
            (
                image,
                info.container.spec.labels.clone(),
                info.container.status,
            ),
        );
    }
    let deadline = until.map(|u| {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        tokio::time::Instant::now()
            + std::time::Duration::from_secs(u64::try_from(u - now).unwrap_or(0))
    });
    let pump = EventPump {
        state,
        cx,
        changes,
        known,
        filters,
        deadline,
    };
    // The stream ends (and its subscription with it) when the client goes.
    let body = futures_util::stream::unfold(pump, |mut pump| async move {
        let line = pump.next_line().await?;
        Some((Ok::<_, Infallible>(line), pump))
    });
    Ok(stream_response(Body::from_stream(body)))
}

/// One `docker events` client's stream.
struct EventPump {
    state: DockerState,
    cx: DockerContext,
    changes: crate::app::ProjectChanges,
    /// Image, labels and last status of each container, for the events of
    /// deleted ones and to tell `unpause` from `start`.
    known: BTreeMap<ContainerId, (String, BTreeMap<String, String>, ContainerStatus)>,
    filters: BTreeMap<String, Vec<String>>,
    deadline: Option<tokio::time::Instant>,
}

impl EventPump {
    /// The next event line; `None` at `until` or when the feed closes.
    async fn next_line(&mut self) -> Option<Bytes> {
        loop {
            let event = tokio::select! {
                () = async {
                    match self.deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => return None,
                event = self.changes.next() => event,
            };
            let change = match event {
                ChangeEvent::Change(change) => change,
                ChangeEvent::Missed(n) => {
                    tracing::debug!(missed = n, "docker events fell behind");
                    continue;
                }
                ChangeEvent::Closed => return None,
            };
            let id = change.container;
            if !self.known.contains_key(&id)
                && let Ok(info) = self
                    .state
                    .app()
                    .show_container(&self.cx.call, &ContainerRef::Id(id), false)
                    .await
            {
                let names = image_names(&self.state, &self.cx).await;
                let image = names
                    .get(&info.container.spec.image)
                    .cloned()
                    .unwrap_or_else(|| info.container.spec.image.clone());
                self.known.insert(
                    id,
                    (
                        image,
                        info.container.spec.labels.clone(),
                        ContainerStatus::Creating,
                    ),
                );
            }
            let Some((image, labels, previous)) = self.known.get(&id).cloned() else {
                continue;
            };
            let mut attributes = labels.clone();
            attributes.insert("image".into(), image.clone());
            attributes.insert("name".into(), change.name.clone());
            let action = match &change.kind {
                ChangeKind::Created => "create",
                ChangeKind::Renamed => "rename",
                ChangeKind::Deleted => "destroy",
                ChangeKind::Status { status, reason } => {
                    let action = match (previous, *status) {
                        // A new reason or a repeated report: no transition.
                        (before, now) if before == now => "",
                        (ContainerStatus::Paused, ContainerStatus::Running) => "unpause",
                        (_, ContainerStatus::Running) => "start",
                        (_, ContainerStatus::Paused) => "pause",
                        (_, ContainerStatus::Restarting) => "restart",
                        // Started and exited before its first report.
                        (
                            ContainerStatus::Creating | ContainerStatus::Created,
                            ContainerStatus::Stopped,
                        ) => {
                            attributes.insert(
                                "exitCode".into(),
                                super::views::exit_code(*status, reason.as_deref()).to_string(),
                            );
                            "start+die"
                        }
                        (
                            ContainerStatus::Running
                            | ContainerStatus::Paused
                            | ContainerStatus::Restarting,
                            ContainerStatus::Stopped | ContainerStatus::Error,
                        ) => {
                            attributes.insert(
                                "exitCode".into(),
                                super::views::exit_code(*status, reason.as_deref()).to_string(),
                            );
                            "die"
                        }
                        _ => "",
                    };
                    if let Some(entry) = self.known.get_mut(&id) {
                        entry.2 = *status;
                    }
                    action
                }
            };
            if change.kind == ChangeKind::Deleted {
                self.known.remove(&id);
            }
            let mut lines = String::new();
            for action in action.split('+').filter(|a| !a.is_empty()) {
                if !matches_filters(&self.filters, &id, &change.name, action, &image, &labels) {
                    continue;
                }
                let mut attributes = attributes.clone();
                if action != "die" {
                    attributes.remove("exitCode");
                }
                let now = time::OffsetDateTime::now_utc();
                let line = json!({
                    "status": action,
                    "id": docker_id(id),
                    "from": image,
                    "Type": "container",
                    "Action": action,
                    "Actor": {"ID": docker_id(id), "Attributes": attributes},
                    "scope": "local",
                    "time": now.unix_timestamp(),
                    "timeNano": i64::try_from(now.unix_timestamp_nanos()).unwrap_or(i64::MAX),
                });
                lines.push_str(&line.to_string());
                lines.push('\n');
            }
            if !lines.is_empty() {
                return Some(Bytes::from(lines));
            }
        }
    }
}

fn matches_filters(
    filters: &BTreeMap<String, Vec<String>>,
    id: &ContainerId,
    name: &str,
    action: &str,
    image: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let docker = docker_id(*id);
    filters.iter().all(|(key, values)| match key.as_str() {
        "type" => values.iter().any(|v| v == "container"),
        "container" => values
            .iter()
            .any(|v| v == name || (!v.is_empty() && docker.starts_with(&v.to_ascii_lowercase()))),
        "event" => values.iter().any(|v| v == action),
        "image" => values.iter().any(|v| v == image),
        "label" => values.iter().all(|l| match l.split_once('=') {
            Some((k, v)) => labels.get(k).map(String::as_str) == Some(v),
            None => labels.contains_key(l),
        }),
        _ => false,
    })
}

fn stream_response(body: Body) -> Response {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `GET /system/df`: the project's stored images and containers.
pub async fn disk_usage(
    State(state): State<DockerState>,
    cx: DockerContext,
) -> Result<Response, DockerError> {
    let images = state.app().list_images(&cx.call).await?;
    let containers = all_containers(&state, &cx).await?;
    let total: u64 = images.iter().map(|i| i.size_bytes).sum();
    Ok(json_ok(&json!({
        "LayersSize": total,
        "Images": images.iter().map(|i| json!({
            "Id": format!("sha256:{}", i.sha256),
            "RepoTags": super::images::docker_tags(i),
            "Size": i.size_bytes,
            "SharedSize": 0,
            "Containers": containers.iter().filter(|c| c.container.spec.image == i.id).count(),
            "Created": 0,
        })).collect::<Vec<_>>(),
        "Containers": containers.iter().map(|c| json!({
            "Id": docker_id(c.container.id),
            "Names": [format!("/{}", c.container.name)],
            "Image": c.container.spec.image,
            "State": state_word(c.container.status),
            "SizeRw": 0,
            "SizeRootFs": 0,
        })).collect::<Vec<_>>(),
        "Volumes": [],
        "BuildCache": [],
    })))
}

/// `GET /volumes`: Nest offers no volumes.
pub async fn volumes(_cx: DockerContext) -> Response {
    json_ok(&json!({"Volumes": [], "Warnings": []}))
}

/// `GET /volumes/{name}`.
pub async fn volume(_cx: DockerContext, Path(name): Path<String>) -> DockerError {
    DockerError::NotFound(format!("get {name}: no such volume"))
}

macro_rules! unsupported {
    ($($(#[$doc:meta])* $name:ident => $what:literal;)*) => {$(
        $(#[$doc])*
        pub async fn $name(_cx: DockerContext) -> DockerError {
            DockerError::Unsupported($what)
        }
    )*};
}

unsupported! {
    /// `docker build` (and BuildKit's `/session`).
    unsupported_build => "docker build: build the image elsewhere, then docker load or push it to a registry";
    /// `docker commit`.
    unsupported_commit => "docker commit";
    /// Swarm mode (`swarm`, `service`, `node`).
    unsupported_swarm => "swarm mode";
    /// Plugins.
    unsupported_plugins => "docker plugins";
    /// `docker cp`.
    unsupported_archive => "docker cp";
    /// `docker export`.
    unsupported_export => "docker export";
    /// `docker diff`.
    unsupported_changes => "docker diff";
    /// `docker volume create`, `rm` and `prune`.
    unsupported_volumes => "volumes: containers keep their data in their own filesystem";
}
