//! How resources look on the wire: Zun's container, action and host views
//! (zun-api.md §2.2, §2.5) plus Nest's documented extensions. The only
//! place Zun's response field names are spelled.
//!
//! Nest fields in the container view (python-zunclient prints unknown keys
//! as they are, and its list columns are unaffected):
//! - `host`: the id of the instance the container is placed on, shown to
//!   its owner (the instance is the tenant's own Nova server);
//! - `addresses`: the instance's addresses, keyed by network *name*;
//! - `ports`: Zun's list of container ports (ints);
//! - `published_ports`: where the published ports are reachable,
//!   `"10.0.0.5:8080"` (`"…/udp"` for UDP), once placed;
//! - `port_bindings`: the requested bindings in Nest's spelling,
//!   `"pub:222:22/tcp"`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use super::create::format_port;
use super::extract::BaseUrl;
use crate::api::backend::{
    ActionEvent, ActionRecord, ContainerInfo, ContainerStats, ExecOutcome, ExecResult, HostInfo,
    ProcessList,
};
use crate::domain::{ContainerId, PortProtocol, RestartPolicyName};

/// A link in a resource view.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Link {
    /// Absolute URL.
    pub href: String,
    /// `self` or `bookmark`.
    pub rel: String,
}

/// Zun's `[self, bookmark]` pair: `http://H/v1/<coll>/<id>` and
/// `http://H/<coll>/<id>`.
pub fn resource_links(base: &BaseUrl, collection: &str, id: &str) -> Vec<Link> {
    vec![
        Link {
            href: format!("{}/v1/{collection}/{id}", base.as_str()),
            rel: "self".into(),
        },
        Link {
            href: format!("{}/{collection}/{id}", base.as_str()),
            rel: "bookmark".into(),
        },
    ]
}

/// One address of the container's instance.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AddressView {
    /// The IP address.
    pub addr: String,
    /// 4 or 6.
    pub version: u8,
    /// Neutron port id (none in Nest).
    pub port: Option<String>,
    /// Neutron subnet id (none in Nest).
    pub subnet_id: Option<String>,
    /// Always false.
    pub preserve_on_delete: bool,
}

/// Restart policy, values as strings (as Zun returns them).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RestartPolicyView {
    /// Policy name.
    #[serde(rename = "Name")]
    pub name: String,
    /// Retry count, as a string.
    #[serde(rename = "MaximumRetryCount")]
    pub maximum_retry_count: String,
}

/// A container (Zun's view at 1.40, plus Nest's fields; module docs).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ContainerView {
    /// The container's uuid.
    pub uuid: String,
    /// Self and bookmark links.
    pub links: Vec<Link>,
    /// Name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Command (argv).
    pub command: Vec<String>,
    /// Entrypoint.
    pub entrypoint: Vec<String>,
    /// `Creating`, `Created`, `Running`, `Stopped`, `Paused`, ...
    pub status: String,
    /// Why it has that status.
    pub status_reason: Option<String>,
    /// Docker's status line (not reported by Nest yet).
    pub status_detail: Option<String>,
    /// Zun's transient task state (Nest has none).
    pub task_state: Option<String>,
    /// vCPUs.
    pub cpu: f64,
    /// Memory, MiB, as a string (Zun's quirk).
    pub memory: String,
    /// Disk, GiB (not limited by Nest).
    pub disk: Option<u64>,
    /// Environment.
    pub environment: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Working directory.
    pub workdir: Option<String>,
    /// Hostname.
    pub hostname: Option<String>,
    /// Container ports that are published (Zun: exposed ports).
    pub ports: Vec<u16>,
    /// Instance addresses by network name.
    pub addresses: BTreeMap<String, Vec<AddressView>>,
    /// Restart policy.
    pub restart_policy: RestartPolicyView,
    /// Stdin kept open.
    pub interactive: bool,
    /// Terminal allocated.
    pub tty: bool,
    /// Removed on exit.
    pub auto_remove: bool,
    /// Always false (not supported).
    pub auto_heal: bool,
    /// Always `docker`.
    pub image_driver: String,
    /// Always empty (no Neutron).
    pub security_groups: Vec<String>,
    /// Always null.
    pub healthcheck: Option<String>,
    /// Always `shared`.
    pub cpu_policy: String,
    /// Always null.
    pub registry_id: Option<String>,
    /// Creating user.
    pub user_id: String,
    /// Owner project.
    pub project_id: String,
    /// When accepted, `YYYY-MM-DD HH:MM:SS+00:00`.
    pub created_at: String,
    /// Last change, same format.
    pub updated_at: String,
    /// The instance id it is placed on.
    pub host: Option<String>,
    /// Always `ifnotpresent`.
    pub image_pull_policy: String,
    /// Always false.
    pub privileged: bool,
    /// Always `runc`.
    pub runtime: String,
    /// Nest: reachable `address:host_port` of each published port.
    pub published_ports: Vec<String>,
    /// Nest: the requested bindings, `[network:]host:container/proto`.
    pub port_bindings: Vec<String>,
}

/// Renders a container.
pub fn container_view(info: &ContainerInfo, base: &BaseUrl) -> ContainerView {
    let c = &info.container;
    let spec = &c.spec;
    let (policy, count) = spec.restart_policy;
    let policy_name = match policy {
        RestartPolicyName::No => "no",
        RestartPolicyName::Always => "always",
        RestartPolicyName::OnFailure => "on-failure",
        RestartPolicyName::UnlessStopped => "unless-stopped",
    };
    let addresses = info
        .addresses
        .iter()
        .map(|(network, addr)| {
            let version = match addr.parse::<IpAddr>() {
                Ok(IpAddr::V6(_)) => 6,
                _ => 4,
            };
            let view = AddressView {
                addr: addr.clone(),
                version,
                port: None,
                subnet_id: None,
                preserve_on_delete: false,
            };
            (network.clone(), vec![view])
        })
        .collect();
    let published_ports = spec
        .ports
        .iter()
        .filter_map(|p| {
            let network = p.network.as_ref().or(info.default_network.as_ref())?;
            let addr = info.addresses.get(network)?;
            let host = match addr.parse::<IpAddr>() {
                Ok(IpAddr::V6(_)) => format!("[{addr}]"),
                _ => addr.clone(),
            };
            let suffix = match p.protocol {
                PortProtocol::Tcp => "",
                PortProtocol::Udp => "/udp",
            };
            Some(format!("{host}:{}{suffix}", p.host_port))
        })
        .collect();
    let mut ports: Vec<u16> = spec.ports.iter().map(|p| p.container_port).collect();
    ports.dedup();
    ContainerView {
        uuid: c.id.to_string(),
        links: resource_links(base, "containers", &c.id.to_string()),
        name: c.name.clone(),
        image: spec.image.clone(),
        command: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        status: c.status.as_zun().to_owned(),
        status_reason: c.status_reason.clone(),
        status_detail: None,
        task_state: None,
        cpu: spec.cpu,
        memory: spec.memory_mib.to_string(),
        disk: None,
        environment: spec.environment.clone(),
        labels: spec.labels.clone(),
        workdir: spec.workdir.clone(),
        hostname: spec.hostname.clone(),
        ports,
        addresses,
        restart_policy: RestartPolicyView {
            name: policy_name.into(),
            maximum_retry_count: count.to_string(),
        },
        interactive: spec.interactive,
        tty: spec.tty,
        auto_remove: spec.auto_remove,
        auto_heal: false,
        image_driver: "docker".into(),
        security_groups: Vec::new(),
        healthcheck: None,
        cpu_policy: "shared".into(),
        registry_id: None,
        user_id: c.user_id.to_string(),
        project_id: c.project_id.to_string(),
        created_at: zun_datetime(&c.created_at),
        updated_at: zun_datetime(&c.updated_at),
        host: c.instance_id.as_ref().map(|i| i.as_str().to_owned()),
        image_pull_policy: "ifnotpresent".into(),
        privileged: false,
        runtime: "runc".into(),
        published_ports,
        port_bindings: spec.ports.iter().map(format_port).collect(),
    }
}

/// `GET /v1/containers`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ContainerCollection {
    /// The page.
    pub containers: Vec<ContainerView>,
    /// URL of the next page, when this one is full and more follow.
    pub next: Option<String>,
}

/// Python's `str(datetime)` of a UTC time, as Zun renders container times:
/// `2025-06-28 03:25:27+00:00` (microseconds only when non-zero). Input is
/// RFC 3339; anything else is passed through.
pub fn zun_datetime(rfc3339: &str) -> String {
    match split_rfc3339(rfc3339) {
        Some((date, time, 0)) => format!("{date} {time}+00:00"),
        Some((date, time, micros)) => format!("{date} {time}.{micros:06}+00:00"),
        None => rfc3339.to_owned(),
    }
}

/// Zun's action and host time format: `2018-03-04T19:48:49.000000`.
pub fn zun_action_time(rfc3339: &str) -> String {
    match split_rfc3339(rfc3339) {
        Some((date, time, micros)) => format!("{date}T{time}.{micros:06}"),
        None => rfc3339.to_owned(),
    }
}

/// `(date, hh:mm:ss, microseconds)` of a UTC RFC 3339 time.
fn split_rfc3339(s: &str) -> Option<(&str, &str, u32)> {
    let rest = s.strip_suffix('Z').or_else(|| s.strip_suffix("+00:00"))?;
    let (date, time) = rest.split_once(['T', ' '])?;
    let (time, fraction) = match time.split_once('.') {
        Some((t, f)) => (t, f),
        None => (time, ""),
    };
    if date.len() != 10 || time.len() != 8 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = fraction.chars().chain("000000".chars()).take(6).collect();
    Some((date, time, digits.parse().ok()?))
}

/// `POST …/execute`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ExecView {
    /// Combined output, when run.
    pub output: Option<String>,
    /// Exit code, when run.
    pub exit_code: Option<i64>,
    /// Exec id, when only created.
    pub exec_id: Option<String>,
    /// Websocket URL of an interactive exec.
    pub proxy_url: Option<String>,
}

/// Renders an exec result; `console_url` builds an interactive exec's URL.
pub fn exec_view(
    outcome: &ExecOutcome,
    console_url: impl FnOnce(&ContainerId) -> String,
) -> ExecView {
    match &outcome.result {
        ExecResult::Finished { output, exit_code } => ExecView {
            output: Some(output.clone()),
            exit_code: Some(*exit_code),
            exec_id: None,
            proxy_url: None,
        },
        ExecResult::Created { exec_id, token } => ExecView {
            output: None,
            exit_code: None,
            exec_id: Some(exec_id.to_string()),
            proxy_url: token.as_ref().map(|_| console_url(&outcome.container_id)),
        },
    }
}

/// `GET …/top`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TopView {
    /// Column titles.
    #[serde(rename = "Titles")]
    pub titles: Vec<String>,
    /// Rows.
    #[serde(rename = "Processes")]
    pub processes: Vec<Vec<String>>,
}

/// Renders `top`.
pub fn top_view(list: ProcessList) -> TopView {
    TopView {
        titles: list.titles,
        processes: list.processes,
    }
}

/// `GET …/stats`, with Zun's (docker-CLI-like) keys.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct StatsView {
    /// Container name.
    #[serde(rename = "CONTAINER")]
    pub container: String,
    /// CPU percent.
    #[serde(rename = "CPU %")]
    pub cpu_percent: f64,
    /// Memory in use, MiB.
    #[serde(rename = "MEM USAGE(MiB)")]
    pub mem_usage: f64,
    /// Memory limit, MiB.
    #[serde(rename = "MEM LIMIT(MiB)")]
    pub mem_limit: f64,
    /// Memory percent.
    #[serde(rename = "MEM %")]
    pub mem_percent: f64,
    /// `read/written` bytes.
    #[serde(rename = "BLOCK I/O(B)")]
    pub block_io: String,
    /// `received/sent` bytes.
    #[serde(rename = "NET I/O(B)")]
    pub net_io: String,
}

/// Renders stats.
pub fn stats_view(s: &ContainerStats) -> StatsView {
    StatsView {
        container: s.name.clone(),
        cpu_percent: s.cpu_percent,
        mem_usage: s.memory_usage_mib,
        mem_limit: s.memory_limit_mib,
        mem_percent: s.memory_percent,
        block_io: format!("{}/{}", s.block_read_bytes, s.block_write_bytes),
        net_io: format!("{}/{}", s.net_rx_bytes, s.net_tx_bytes),
    }
}

/// A recorded container action.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ActionView {
    /// `create`, `start`, `exec_cmd`, ...
    pub action: String,
    /// The container.
    pub container_uuid: String,
    /// The triggering request's `x-openstack-request-id`.
    pub request_id: String,
    /// By whom.
    pub user_id: String,
    /// Project.
    pub project_id: String,
    /// Start, `YYYY-MM-DDTHH:MM:SS.ffffff`.
    pub start_time: String,
    /// Finish, same format; null while in progress.
    pub finish_time: Option<String>,
    /// Failure message; null on success.
    pub message: Option<String>,
    /// Steps (only on `GET …/container_actions/{request_id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventView>>,
}

/// One step of an action.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    /// Step name.
    pub event: String,
    /// Start.
    pub start_time: String,
    /// Finish.
    pub finish_time: Option<String>,
    /// `Success` or `Error`.
    pub result: Option<String>,
    /// Failure detail (admins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
}

/// `GET …/container_actions`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ActionCollection {
    /// The actions.
    #[serde(rename = "containerActions")]
    pub container_actions: Vec<ActionView>,
}

/// Renders an action; events only when `with_events`, tracebacks only for
/// admins.
pub fn action_view(a: &ActionRecord, with_events: bool, is_admin: bool) -> ActionView {
    let event = |e: &ActionEvent| EventView {
        event: e.event.clone(),
        start_time: zun_action_time(&e.start_time),
        finish_time: e.finish_time.as_deref().map(zun_action_time),
        result: e.result.clone(),
        traceback: if is_admin { e.traceback.clone() } else { None },
    };
    ActionView {
        action: a.action.as_zun().to_owned(),
        container_uuid: a.container_id.to_string(),
        request_id: a.request_id.to_string(),
        user_id: a.user_id.to_string(),
        project_id: a.project_id.to_string(),
        start_time: zun_action_time(&a.start_time),
        finish_time: a.finish_time.as_deref().map(zun_action_time),
        message: a.message.clone(),
        events: with_events.then(|| a.events.iter().map(event).collect()),
    }
}

/// An instance shown as a Zun host, plus Nest's `status`, `driver` and
/// `addresses`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct HostView {
    /// The instance id.
    pub uuid: String,
    /// Links.
    pub links: Vec<Link>,
    /// The instance id.
    pub hostname: String,
    /// Memory for containers, MiB.
    pub mem_total: u64,
    /// Memory reserved by containers, MiB.
    pub mem_used: u64,
    /// vCPUs for containers.
    pub cpus: f64,
    /// vCPUs reserved by containers.
    pub cpu_used: f64,
    /// Not tracked (0).
    pub disk_total: u64,
    /// Not tracked (0).
    pub disk_used: u64,
    /// Always false.
    pub disk_quota_supported: bool,
    /// Containers placed on it.
    pub total_containers: u32,
    /// Unknown (null).
    pub architecture: Option<String>,
    /// `linux`.
    pub os_type: String,
    /// Unknown (null).
    pub os: Option<String>,
    /// Unknown (null).
    pub kernel_version: Option<String>,
    /// Empty.
    pub labels: BTreeMap<String, String>,
    /// `["runc"]`.
    pub runtimes: Vec<String>,
    /// Always false (from 1.29).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_cpu_pinning: Option<bool>,
    /// Nest: `Booting`, `Ready`, `Unreachable`, `Retiring`, `Error`.
    pub status: String,
    /// Nest: the driver that booted it.
    pub driver: String,
    /// Nest: addresses by network name.
    pub addresses: BTreeMap<String, String>,
}

/// `GET /v1/hosts`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct HostCollection {
    /// The page.
    pub hosts: Vec<HostView>,
    /// URL of the next page.
    pub next: Option<String>,
}

/// Renders a host; `with_pinning` from 1.29.
pub fn host_view(h: &HostInfo, base: &BaseUrl, with_pinning: bool) -> HostView {
    let id = h.instance.id.as_str();
    HostView {
        uuid: id.to_owned(),
        links: resource_links(base, "hosts", id),
        hostname: id.to_owned(),
        mem_total: h.instance.memory_mib,
        mem_used: h.memory_used_mib,
        cpus: h.instance.vcpus,
        cpu_used: h.cpu_used,
        disk_total: 0,
        disk_used: 0,
        disk_quota_supported: false,
        total_containers: h.total_containers,
        architecture: None,
        os_type: "linux".into(),
        os: None,
        kernel_version: None,
        labels: BTreeMap::new(),
        runtimes: vec!["runc".into()],
        enable_cpu_pinning: with_pinning.then_some(false),
        status: h.instance.status.as_str().to_owned(),
        driver: h.instance.driver.clone(),
        addresses: h.instance.addresses.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_render_like_python() {
        assert_eq!(
            zun_datetime("2025-06-28T03:25:27Z"),
            "2025-06-28 03:25:27+00:00"
        );
        assert_eq!(
            zun_datetime("2025-06-28T03:25:27.5+00:00"),
            "2025-06-28 03:25:27.500000+00:00"
        );
        assert_eq!(
            zun_action_time("2018-03-04T19:48:49Z"),
            "2018-03-04T19:48:49.000000"
        );
        assert_eq!(zun_datetime("garbage"), "garbage");
    }
}
