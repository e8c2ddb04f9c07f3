//! `docker network`: a project's user-defined networks (create, ls,
//! inspect, rm, prune), the pre-defined `bridge` (each instance's default
//! network), and the instance networks ports are published on (listed so
//! that `docker network ls` shows what `nest.network=<name>` can name).
//!
//! A user-defined network's containers are kept on one instance of the
//! project, whose engine network resolves their names and aliases
//! (docs/docker.md). Connecting a container after it was created is not
//! offered: the networks are given at `docker run` (`--network`,
//! `--network-alias`), as docker-compose does.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::containers::{filters, filters_of, json_response, query_map, resolve};
use super::create::{is_neutral, refuse_unsupported};
use super::error::DockerError;
use super::views::{self, docker_id};
use super::{DockerContext, DockerState};
use crate::api::zun::create::check_labels;
use crate::app::{AppError, NetworkInfo, NewNetwork};

/// The id `docker network ls` shows for the pre-defined network.
const BRIDGE_ID: &str = "bridge";
/// Creation time of the networks Nest did not create: Go's zero time, as
/// dockerd writes a time it does not know (the CLI parses the field).
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";
/// The driver Nest reports for the instance networks.
const INSTANCE_DRIVER: &str = "nest";

/// `POST /networks/create`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: Option<String>,
    driver: Option<String>,
    internal: bool,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    ipam: Option<Value>,
    options: Option<BTreeMap<String, Value>>,
    labels: Option<BTreeMap<String, String>>,
    // Neutral for a bridge network: the CLI and docker-compose send them.
    check_duplicate: Option<bool>,
    attachable: Option<bool>,
    scope: Option<String>,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

/// Whether the IPAM section asks for nothing but the default allocator.
fn default_ipam(ipam: &Value) -> bool {
    match ipam {
        Value::Object(map) => map.iter().all(|(k, v)| match k.as_str() {
            "Driver" => v.is_null() || v == "" || v == "default",
            _ => is_neutral(v),
        }),
        other => is_neutral(other),
    }
}

/// `POST /networks/create`: 201 `{"Id", "Warning"}`.
pub async fn create(
    State(state): State<DockerState>,
    cx: DockerContext,
    body: Bytes,
) -> Result<Response, DockerError> {
    let body: CreateBody =
        serde_json::from_slice(&body).map_err(|e| DockerError::MalformedJson(e.to_string()))?;
    refuse_unsupported("", &body.rest)?;
    let name = body
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| DockerError::Invalid("Name is required".into()))?;
    if let Some(driver) = body
        .driver
        .as_deref()
        .filter(|d| !d.is_empty() && *d != "bridge")
    {
        return Err(DockerError::Invalid(format!(
            "network driver {driver:?} is not supported by Nest: its networks are bridge networks on one instance"
        )));
    }
    if body.internal {
        return Err(DockerError::Invalid(
            "internal networks (--internal) are not supported by Nest".into(),
        ));
    }
    if body.enable_ipv6 {
        return Err(DockerError::Invalid(
            "IPv6 networks (--ipv6) are not supported by Nest".into(),
        ));
    }
    if body.ipam.as_ref().is_some_and(|i| !default_ipam(i)) {
        return Err(DockerError::Invalid(
            "IPAM settings (--subnet, --gateway, --ip-range, --ipam-driver) are not supported by Nest: \
             the instance's engine chooses the addresses"
                .into(),
        ));
    }
    if let Some(option) = body
        .options
        .unwrap_or_default()
        .into_iter()
        .find(|(_, v)| !is_neutral(v))
    {
        return Err(DockerError::Invalid(format!(
            "network driver option {} is not supported by Nest",
            option.0
        )));
    }
    if let Some(scope) = body
        .scope
        .as_deref()
        .filter(|s| !s.is_empty() && *s != "local")
    {
        return Err(DockerError::Invalid(format!(
            "network scope {scope:?} is not supported by Nest"
        )));
    }
    let _ = (body.check_duplicate, body.attachable);
    let labels = body.labels.unwrap_or_default();
    check_labels(&labels).map_err(|e| DockerError::Invalid(e.to_string()))?;
    let network = state
        .app()
        .create_network(&cx.call, NewNetwork { name, labels })
        .await
        .map_err(network_error)?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"Id": network.id.hex(), "Warning": ""}),
    ))
}

/// `GET /networks`: filters `name` (substring), `id` (prefix), `label`,
/// `driver`, `type` (`custom`, `builtin`), `scope`, `dangling`.
pub async fn list(
    State(state): State<DockerState>,
    cx: DockerContext,
    RawQuery(raw): RawQuery,
) -> Result<Response, DockerError> {
    let filters = filters_of(
        &query_map(raw),
        &["name", "id", "label", "driver", "type", "scope", "dangling"],
        "networks",
    )?;
    let mut all = vec![bridge_view()];
    for info in state.app().list_networks(&cx.call).await? {
        all.push(view(&info));
    }
    let hosts = state.app().list_hosts(&cx.call).await?;
    let mut instance_networks: Vec<String> = hosts
        .iter()
        .flat_map(|h| h.instance.addresses.keys().cloned())
        .collect();
    instance_networks.sort();
    instance_networks.dedup();
    for name in instance_networks {
        all.push(instance_network_view(&name));
    }
    let shown: Vec<Value> = all
        .into_iter()
        .filter(|n| matches_filters(n, &filters))
        .collect();
    Ok(json_response(StatusCode::OK, &Value::Array(shown)))
}

fn matches_filters(network: &Value, filters: &BTreeMap<String, Vec<String>>) -> bool {
    let text = |key: &str| network[key].as_str().unwrap_or_default().to_owned();
    let builtin = network["Driver"] != "bridge" || network["Id"] == BRIDGE_ID;
    filters.iter().all(|(key, wanted)| {
        wanted.iter().any(|w| match key.as_str() {
            "name" => text("Name").contains(w.as_str()),
            "id" => text("Id").starts_with(w.as_str()),
            "driver" => text("Driver") == *w,
            "scope" => text("Scope") == *w,
            "type" => (w == "builtin") == builtin && matches!(w.as_str(), "builtin" | "custom"),
            "dangling" => {
                let empty = network["Containers"]
                    .as_object()
                    .is_none_or(serde_json::Map::is_empty);
                (w == "true" || w == "1") == (empty && !builtin)
            }
            "label" => {
                let labels = &network["Labels"];
                match w.split_once('=') {
                    Some((k, v)) => labels[k].as_str() == Some(v),
                    None => labels.get(w.as_str()).is_some(),
                }
            }
            _ => false,
        })
    })
}

/// `GET /networks/{id}`: by id, name or unique id prefix.
pub async fn inspect(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(id): Path<String>,
) -> Result<Response, DockerError> {
    if matches!(id.as_str(), "bridge" | "default") {
        return Ok(json_response(StatusCode::OK, &bridge_view()));
    }
    match state.app().network(&cx.call, &id).await {
        Ok(info) => Ok(json_response(StatusCode::OK, &view(&info))),
        Err(AppError::NetworkNotFound(_)) => {
            let hosts = state.app().list_hosts(&cx.call).await?;
            if hosts.iter().any(|h| h.instance.addresses.contains_key(&id)) {
                return Ok(json_response(StatusCode::OK, &instance_network_view(&id)));
            }
            Err(DockerError::NotFound(format!("network {id} not found")))
        }
        Err(e) => Err(network_error(e)),
    }
}

/// `DELETE /networks/{id}`: 204; 403 while containers are on it, as
/// dockerd answers.
pub async fn remove(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(id): Path<String>,
) -> Result<StatusCode, DockerError> {
    state
        .app()
        .remove_network(&cx.call, &id)
        .await
        .map_err(network_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /networks/prune`: removes the networks no container is on.
pub async fn prune(
    State(state): State<DockerState>,
    cx: DockerContext,
    RawQuery(raw): RawQuery,
) -> Result<Response, DockerError> {
    let filters = filters(&query_map(raw))?;
    if let Some(key) = filters.keys().next() {
        return Err(DockerError::Invalid(format!(
            "invalid filter '{key}': Nest prunes every unused network"
        )));
    }
    let removed = state.app().prune_networks(&cx.call).await?;
    let names: Vec<String> = removed.into_iter().map(|n| n.name).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"NetworksDeleted": names}),
    ))
}

/// `POST /networks/{id}/connect` and `/disconnect` bodies.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectBody {
    container: String,
    endpoint_config: Option<Value>,
    force: bool,
}

/// `POST /networks/{id}/connect`: a container is on its networks from its
/// creation, so connecting one that already is succeeds and anything
/// else is refused with what to do instead.
pub async fn connect(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, DockerError> {
    let body: ConnectBody =
        serde_json::from_slice(&body).map_err(|e| DockerError::MalformedJson(e.to_string()))?;
    let network = state
        .app()
        .network(&cx.call, &id)
        .await
        .map_err(network_error)?;
    let container = resolve(&state, &cx, &body.container).await?;
    let attached = container
        .container
        .spec
        .networks
        .iter()
        .find(|a| a.network == network.network.id);
    let wanted_aliases: Vec<String> = body
        .endpoint_config
        .as_ref()
        .and_then(|c| c.get("Aliases"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if let Some(attachment) = attached {
        let known = views::network_aliases(&container, attachment);
        if wanted_aliases.iter().all(|a| known.contains(a)) {
            return Ok(StatusCode::OK);
        }
    }
    Err(DockerError::Invalid(format!(
        "connecting container {} to network {} after it was created is not supported by Nest: \
         give the networks and aliases when creating it (docker run --network {} --network-alias ...)",
        container.container.name, network.network.name, network.network.name
    )))
}

/// `POST /networks/{id}/disconnect`: refused, as connecting is.
pub async fn disconnect(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, DockerError> {
    let body: ConnectBody =
        serde_json::from_slice(&body).map_err(|e| DockerError::MalformedJson(e.to_string()))?;
    let _ = body.force;
    let network = state
        .app()
        .network(&cx.call, &id)
        .await
        .map_err(network_error)?;
    let container = resolve(&state, &cx, &body.container).await?;
    Err(DockerError::Invalid(format!(
        "disconnecting container {} from network {} is not supported by Nest: a container keeps \
         the networks it was created with; remove it and create it again",
        container.container.name, network.network.name
    )))
}

/// The application's network errors in dockerd's statuses.
fn network_error(e: AppError) -> DockerError {
    match e {
        AppError::NetworkNotFound(name) => {
            DockerError::NotFound(format!("network {name} not found"))
        }
        AppError::NetworkInUse { .. } => {
            DockerError::Forbidden(format!("error while removing network: {e}"))
        }
        AppError::NetworkNameInUse(_) => DockerError::Conflict(e.to_string()),
        other => other.into(),
    }
}

/// The network document `docker network inspect` and `ls` read.
fn network_json(
    name: &str,
    id: &str,
    created: &str,
    driver: &str,
    containers: serde_json::Map<String, Value>,
    labels: Value,
) -> Value {
    json!({
        "Name": name,
        "Id": id,
        "Created": created,
        "Scope": "local",
        "Driver": driver,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": []},
        "Internal": false,
        // Only user-defined networks take containers at `docker run`.
        "Attachable": driver == "bridge" && id != BRIDGE_ID,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": {},
        "Labels": labels,
    })
}

fn view(info: &NetworkInfo) -> Value {
    let network = &info.network;
    let mut containers = serde_json::Map::new();
    for c in &info.containers {
        containers.insert(
            docker_id(c.id),
            json!({
                "Name": c.name,
                "EndpointID": "",
                "MacAddress": "",
                "IPv4Address": "",
                "IPv6Address": "",
            }),
        );
    }
    network_json(
        &network.name,
        &network.id.hex(),
        &network.created_at,
        "bridge",
        containers,
        json!(network.labels),
    )
}

fn bridge_view() -> Value {
    network_json(
        "bridge",
        BRIDGE_ID,
        GO_ZERO_TIME,
        "bridge",
        serde_json::Map::new(),
        json!({"nest.description": "each instance's default network"}),
    )
}

fn instance_network_view(name: &str) -> Value {
    network_json(
        name,
        name,
        GO_ZERO_TIME,
        INSTANCE_DRIVER,
        serde_json::Map::new(),
        json!({"nest.description": format!(
            "the instances' network {name}: publish ports on it with the label {}={name}",
            views::NETWORK_LABEL
        )}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in pairs {
            out.entry((*k).to_owned())
                .or_default()
                .push((*v).to_owned());
        }
        out
    }

    #[test]
    fn list_filters_match_as_dockerd_does() {
        let mut containers = serde_json::Map::new();
        containers.insert("c1".into(), json!({"Name": "web"}));
        let used = network_json(
            "shop_default",
            "0123456789abcdef0123456789abcdef",
            GO_ZERO_TIME,
            "bridge",
            containers,
            json!({"com.docker.compose.project": "shop"}),
        );
        let unused = network_json(
            "spare",
            "fedcba9876543210fedcba9876543210",
            GO_ZERO_TIME,
            "bridge",
            serde_json::Map::new(),
            json!({}),
        );
        let bridge = bridge_view();
        let all = [&used, &unused, &bridge];
        let names = |f: &[(&str, &str)]| -> Vec<String> {
            let f = filters(f);
            all.iter()
                .filter(|n| matches_filters(n, &f))
                .map(|n| n["Name"].as_str().unwrap_or_default().to_owned())
                .collect()
        };
        assert_eq!(names(&[("name", "shop")]), ["shop_default"]);
        assert_eq!(names(&[("id", "0123")]), ["shop_default"]);
        assert_eq!(
            names(&[("label", "com.docker.compose.project=shop")]),
            ["shop_default"]
        );
        assert_eq!(
            names(&[("label", "com.docker.compose.project")]),
            ["shop_default"]
        );
        assert_eq!(names(&[("type", "custom")]), ["shop_default", "spare"]);
        assert_eq!(names(&[("type", "builtin")]), ["bridge"]);
        assert_eq!(names(&[("dangling", "true")]), ["spare"]);
        assert_eq!(
            names(&[("name", "shop"), ("name", "spare")]),
            ["shop_default", "spare"]
        );
        assert!(names(&[("driver", "overlay")]).is_empty());
    }

    #[test]
    fn only_the_default_allocator_passes() {
        assert!(default_ipam(
            &json!({"Driver": "default", "Options": {}, "Config": []})
        ));
        assert!(default_ipam(&Value::Null));
        assert!(!default_ipam(
            &json!({"Driver": "default", "Config": [{"Subnet": "10.9.0.0/24"}]})
        ));
        assert!(!default_ipam(&json!({"Driver": "other"})));
    }
}
