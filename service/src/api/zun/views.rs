//! How resources look on the wire: the functions that build Zun's
//! container, exec, top, stats, action and host views (zun-api.md §2.2,
//! §2.5) from the application's types. The views themselves, and every
//! field name, are [`nest_api_types::zun`]'s (Nest's fields in the
//! container view are listed in [`nest_api_types::zun::containers`]);
//! their values are chosen here, including the neutral ones of the Zun
//! fields Nest does not have.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::create::format_port;
use super::extract::BaseUrl;
use crate::app::{
    ActionEvent, ActionRecord, ContainerInfo, ContainerStats, ExecOutcome, ExecResult, HostInfo,
    ProcessList,
};
use crate::domain::{ContainerId, PortProtocol, RestartPolicyName};

// Re-exported so that a handler names one module for a view and its
// builder.
pub use nest_api_types::zun::{
    ActionCollection, ActionView, AddressView, ContainerCollection, ContainerView, EventView,
    ExecView, FixedIpView, HostCollection, HostView, Link, NetworkEntryView, NetworkListView,
    RestartPolicyView, StatsView, TopView,
};

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

/// A container's networks, as `network_list` answers them: one entry per
/// network of its `addresses`.
pub fn network_list_view(view: &ContainerView) -> NetworkListView {
    let networks = view
        .addresses
        .iter()
        .map(|(network, addrs)| NetworkEntryView {
            net_id: network.clone(),
            port_id: None,
            fixed_ips: addrs
                .iter()
                .map(|a| FixedIpView {
                    ip_address: a.addr.clone(),
                    version: a.version,
                    subnet_id: None,
                })
                .collect(),
        })
        .collect();
    NetworkListView { networks }
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

/// Renders `top`.
pub fn top_view(list: ProcessList) -> TopView {
    TopView {
        titles: list.titles,
        processes: list.processes,
    }
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
        status_reason: match (&h.instance.status_reason, &h.unreachable) {
            (Some(own), Some(cloud)) => Some(format!("{own}; {cloud}")),
            (own, cloud) => own.clone().or_else(|| cloud.clone()),
        },
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
