//! `_ping`, `version`, `info`, `events` and `system/df`, the network and
//! volume lookups `docker inspect` falls back to, and the clear refusals
//! for what Nest does not offer (`build`, `commit`, swarm, plugins,
//! volumes, `cp`, ...).

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::containers::{all_containers, filters_of, image_names, query_map};
use super::error::DockerError;
use super::views::{docker_id, state_word};
use super::{API_VERSION, DockerContext, DockerState, ENGINE_VERSION, MIN_API_VERSION};
use crate::app::{ContainerEvent, EventSubscription};
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

/// `GET /events?filters=&since=&until=`: the project's container events
/// (create, start, die, pause, unpause, restart, rename, destroy) as NDJSON.
/// With `since` (or `until` alone, as dockerd does) the kept history
/// replays first (`app::events`: this process's writes, bounded per
/// project); an `until` in the past ends the stream after the replay, one
/// in the future ends it then.
pub async fn events(
    State(state): State<DockerState>,
    cx: DockerContext,
    RawQuery(raw): RawQuery,
) -> Result<Response, DockerError> {
    let query = query_map(raw);
    let filters = filters_of(
        &query,
        &["type", "container", "event", "label", "image"],
        "events",
    )?;
    let since = timestamp(&query, "since")?;
    let until = timestamp(&query, "until")?;
    if let (Some(since), Some(until)) = (since, until)
        && until < since
    {
        return Err(DockerError::Invalid(format!(
            "`since` time ({}) cannot be after `until` time ({})",
            since.unix_timestamp(),
            until.unix_timestamp()
        )));
    }
    let replay_from = since.or(until.map(|_| time::OffsetDateTime::UNIX_EPOCH));
    let names = image_names(&state, &cx).await;
    let events = state.app().container_events(&cx.call, replay_from);
    let now = time::OffsetDateTime::now_utc();
    let deadline = until.map(|u| {
        let ahead = std::time::Duration::try_from(u - now).unwrap_or_default();
        tokio::time::Instant::now() + ahead
    });
    let pump = EventPump {
        state,
        cx,
        events,
        names,
        looked_up: BTreeSet::new(),
        filters,
        until,
        deadline,
        live: until.is_none_or(|u| u > now),
    };
    // The stream ends (and its subscription with it) when the client goes.
    let body = futures_util::stream::unfold(pump, |mut pump| async move {
        let line = pump.next_line().await?;
        Some((Ok::<_, Infallible>(line), pump))
    });
    Ok(stream_response(Body::from_stream(body)))
}

/// A `since`/`until` query value: unix seconds with optional
/// `.nanoseconds`, as the docker CLI and docker-py send it, or RFC 3339.
fn timestamp(
    query: &BTreeMap<String, String>,
    key: &str,
) -> Result<Option<time::OffsetDateTime>, DockerError> {
    let Some(value) = query.get(key).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    parse_timestamp(value).map(Some).ok_or_else(|| {
        DockerError::Invalid(format!(
            "invalid value for '{key}': {value:?} is neither unix seconds (with optional .nanoseconds) nor an RFC 3339 time"
        ))
    })
}

fn parse_timestamp(value: &str) -> Option<time::OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(value, &Rfc3339) {
        return Some(t);
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (seconds, fraction) = match value.split_once('.') {
        Some((s, f)) if digits(f) && f.len() <= 9 => (s, f),
        Some(_) => return None,
        None => (value, ""),
    };
    if !digits(seconds) {
        return None;
    }
    let seconds: i64 = seconds.parse().ok()?;
    // A decimal fraction of a second: the CLI writes nine digits.
    let nanos: i64 = format!("{fraction:0<9}").parse().ok()?;
    let t = time::OffsetDateTime::from_unix_timestamp(seconds).ok()?;
    Some(t + time::Duration::nanoseconds(nanos))
}

/// One `docker events` client's stream.
struct EventPump {
    state: DockerState,
    cx: DockerContext,
    events: EventSubscription,
    /// Stored images' ids to the names `docker images` shows.
    names: BTreeMap<String, String>,
    /// Images already looked for in `names` after a miss.
    looked_up: BTreeSet<String>,
    filters: BTreeMap<String, Vec<String>>,
    until: Option<time::OffsetDateTime>,
    deadline: Option<tokio::time::Instant>,
    /// Whether live events follow the replay (no `until`, or one ahead).
    live: bool,
}

impl EventPump {
    /// The next event line; `None` at `until` or when the history closes.
    async fn next_line(&mut self) -> Option<Bytes> {
        loop {
            let event = if self.live {
                tokio::select! {
                    () = async {
                        match self.deadline {
                            Some(d) => tokio::time::sleep_until(d).await,
                            None => std::future::pending().await,
                        }
                    } => return None,
                    event = self.events.next() => event?,
                }
            } else {
                self.events.next_ready()?
            };
            if self.until.is_some_and(|u| event.at > u) {
                return None;
            }
            let image = self.image_name(&event.image).await;
            if !matches_filters(
                &self.filters,
                &event.container,
                &event.name,
                event.action.as_str(),
                &image,
                &event.labels,
            ) {
                continue;
            }
            let mut line = event_json(&event, &image).to_string();
            line.push('\n');
            return Some(Bytes::from(line));
        }
    }

    /// The name `docker images` shows for `image`, reading the project's
    /// images again once for an image not seen before.
    async fn image_name(&mut self, image: &str) -> String {
        if !self.names.contains_key(image) && self.looked_up.insert(image.to_owned()) {
            self.names = image_names(&self.state, &self.cx).await;
        }
        self.names
            .get(image)
            .cloned()
            .unwrap_or_else(|| image.to_owned())
    }
}

/// Docker's event message (API 1.45 `EventMessage`, with the older
/// `status`/`id`/`from` fields the CLI's default format still reads).
fn event_json(event: &ContainerEvent, image: &str) -> Value {
    let id = docker_id(event.container);
    let mut attributes = event.labels.clone();
    attributes.insert("image".into(), image.to_owned());
    attributes.insert("name".into(), event.name.clone());
    if let Some(code) = event.exit_code {
        attributes.insert("exitCode".into(), code.to_string());
    }
    if let Some(old) = &event.old_name {
        attributes.insert("oldName".into(), old.clone());
    }
    let action = event.action.as_str();
    json!({
        "status": action,
        "id": id,
        "from": image,
        "Type": "container",
        "Action": action,
        "Actor": {"ID": id, "Attributes": attributes},
        "scope": "local",
        "time": event.at.unix_timestamp(),
        "timeNano": i64::try_from(event.at.unix_timestamp_nanos()).unwrap_or(i64::MAX),
    })
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
    unsupported_volumes => "managing volumes (containers keep their data in their own filesystem)";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_as_the_cli_and_rfc_3339_write_them() {
        let at = |s: &str| parse_timestamp(s).map(|t| t.unix_timestamp_nanos());
        assert_eq!(at("1700000000"), Some(1_700_000_000_000_000_000));
        assert_eq!(at("1700000000.000000042"), Some(1_700_000_000_000_000_042));
        assert_eq!(at("1700000000.5"), Some(1_700_000_000_500_000_000));
        assert_eq!(
            at("2023-11-14T22:13:20.25Z"),
            Some(1_700_000_000_250_000_000)
        );
        for bad in [
            "",
            "yesterday",
            "-5",
            "1.2.3",
            "1.",
            ".5",
            "1.1234567890",
            "10m",
            "1e9",
        ] {
            assert_eq!(at(bad), None, "{bad:?}");
        }
    }
}
