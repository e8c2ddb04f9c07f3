//! Turns the engine's answers into the agent's reports.
//!
//! Pure functions over bollard models. Engine answers are external input:
//! every number is converted with a checked conversion and a missing or
//! malformed field becomes an empty value, never a panic.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::num::NonZeroU16;

use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, ContainerStatsResponse,
    ContainerTopResponse, HealthStatusEnum, PortMap,
};
use nest_core::engine_options::Health;

use crate::model::{
    ContainerState, ContainerUuid, EngineStatus, PortBinding, Protocol, StatsResult, TopResult,
};

/// How the engine spells "never" in `StartedAt`/`FinishedAt`.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The state of the inspected container `uuid`, whose ownership labels the
/// caller has checked.
pub(crate) fn container_state(
    uuid: &ContainerUuid,
    inspect: &ContainerInspectResponse,
) -> ContainerState {
    let config = inspect.config.as_ref();
    let state = inspect.state.as_ref();
    let labels: BTreeMap<String, String> = config
        .and_then(|c| c.labels.as_ref())
        .into_iter()
        .flatten()
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let time = |t: Option<&String>| {
        t.filter(|t| !t.is_empty() && t.as_str() != ZERO_TIME)
            .cloned()
    };
    ContainerState {
        uuid: uuid.clone(),
        docker_id: inspect.id.clone().unwrap_or_default(),
        name: inspect
            .name
            .as_deref()
            .map(|n| n.trim_start_matches('/').to_owned())
            .unwrap_or_default(),
        image: config.and_then(|c| c.image.clone()).unwrap_or_default(),
        status: state.and_then(|s| s.status).and_then(engine_status),
        running: state.and_then(|s| s.running).unwrap_or(false),
        exit_code: state.and_then(|s| s.exit_code).unwrap_or(0),
        started_at: time(state.and_then(|s| s.started_at.as_ref())),
        finished_at: time(state.and_then(|s| s.finished_at.as_ref())),
        oom_killed: state.and_then(|s| s.oom_killed).unwrap_or(false),
        restart_count: inspect
            .restart_count
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0),
        ports: inspect
            .network_settings
            .as_ref()
            .and_then(|n| n.ports.as_ref())
            .map(bound_ports)
            .unwrap_or_default(),
        labels,
        error: state
            .and_then(|s| s.error.clone())
            .filter(|e| !e.is_empty()),
        pid: state
            .and_then(|s| s.pid)
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p != 0),
        health: state
            .and_then(|s| s.health.as_ref())
            .and_then(|h| h.status)
            .and_then(|status| match status {
                HealthStatusEnum::STARTING => Some(Health::Starting),
                HealthStatusEnum::HEALTHY => Some(Health::Healthy),
                HealthStatusEnum::UNHEALTHY => Some(Health::Unhealthy),
                HealthStatusEnum::EMPTY | HealthStatusEnum::NONE => None,
            }),
    }
}

/// The engine's state word; `None` for the empty one.
fn engine_status(status: ContainerStateStatusEnum) -> Option<EngineStatus> {
    Some(match status {
        ContainerStateStatusEnum::EMPTY => return None,
        ContainerStateStatusEnum::CREATED => EngineStatus::Created,
        ContainerStateStatusEnum::RUNNING => EngineStatus::Running,
        ContainerStateStatusEnum::PAUSED => EngineStatus::Paused,
        ContainerStateStatusEnum::RESTARTING => EngineStatus::Restarting,
        ContainerStateStatusEnum::REMOVING => EngineStatus::Removing,
        ContainerStateStatusEnum::STOPPING => EngineStatus::Stopping,
        ContainerStateStatusEnum::EXITED => EngineStatus::Exited,
        ContainerStateStatusEnum::DEAD => EngineStatus::Dead,
    })
}

/// The host ports actually bound, from `NetworkSettings.Ports`; empty while
/// the container is not running. Entries Nest cannot express (sctp,
/// unparsable numbers or addresses) are left out.
fn bound_ports(ports: &PortMap) -> Vec<PortBinding> {
    let mut out = Vec::new();
    for (key, bindings) in ports {
        let Some((port, protocol)) = key.split_once('/') else {
            continue;
        };
        let protocol = match protocol {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            _ => continue,
        };
        let Some(container_port) = port.parse::<u16>().ok().and_then(NonZeroU16::new) else {
            continue;
        };
        for binding in bindings.iter().flatten() {
            let Some(Ok(host_port)) = binding.host_port.as_deref().map(str::parse::<u16>) else {
                continue;
            };
            let host_ip = match binding.host_ip.as_deref() {
                None | Some("") => None,
                Some(ip) => match ip.parse::<IpAddr>() {
                    Ok(ip) => Some(ip),
                    Err(_) => continue,
                },
            };
            out.push(PortBinding {
                host_ip,
                host_port,
                container_port,
                protocol,
            });
        }
    }
    // The order the wire has always had: by container port, protocol,
    // host address as text, then host port.
    out.sort_by_cached_key(|p| {
        (
            p.container_port,
            p.protocol,
            p.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            p.host_port,
        )
    });
    out
}

/// The process table `docker top` reports.
pub(crate) fn top_result(top: ContainerTopResponse) -> TopResult {
    TopResult {
        titles: top.titles.unwrap_or_default(),
        processes: top.processes.unwrap_or_default(),
    }
}

/// One stats sample, reduced the way `docker stats` reduces it.
pub(crate) fn stats_result(stats: &ContainerStatsResponse) -> StatsResult {
    let memory = stats.memory_stats.as_ref();
    let usage = memory.and_then(|m| m.usage).unwrap_or(0);
    // Page cache is reclaimable, so `docker stats` leaves it out: cgroup v1
    // reports it as total_inactive_file, v2 as inactive_file.
    let cache = memory
        .and_then(|m| m.stats.as_ref())
        .and_then(|s| {
            s.get("total_inactive_file")
                .or_else(|| s.get("inactive_file"))
        })
        .copied()
        .unwrap_or(0);
    let (rx, tx) = stats
        .networks
        .iter()
        .flatten()
        .fold((0u64, 0u64), |(rx, tx), (_, n)| {
            (
                rx.saturating_add(n.rx_bytes.unwrap_or(0)),
                tx.saturating_add(n.tx_bytes.unwrap_or(0)),
            )
        });
    let (read, write) = stats
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.as_ref())
        .into_iter()
        .flatten()
        .fold((0u64, 0u64), |(read, write), entry| {
            let value = entry.value.unwrap_or(0);
            match entry.op.as_deref() {
                Some(op) if op.eq_ignore_ascii_case("read") => (read.saturating_add(value), write),
                Some(op) if op.eq_ignore_ascii_case("write") => (read, write.saturating_add(value)),
                _ => (read, write),
            }
        });
    StatsResult {
        cpu_percent: cpu_percent(stats),
        memory_usage_bytes: usage.saturating_sub(cache),
        memory_limit_bytes: memory.and_then(|m| m.limit).unwrap_or(0),
        network_rx_bytes: rx,
        network_tx_bytes: tx,
        block_read_bytes: read,
        block_write_bytes: write,
        pids: stats
            .pids_stats
            .as_ref()
            .and_then(|p| p.current)
            .unwrap_or(0),
    }
}

/// CPU use between the engine's two samples, in percent of one CPU (so up
/// to `100 × online CPUs`), as `docker stats` computes it.
#[allow(clippy::cast_precision_loss)] // percentages need no more than f64's 52 bits
fn cpu_percent(stats: &ContainerStatsResponse) -> f64 {
    let (Some(cur), Some(pre)) = (stats.cpu_stats.as_ref(), stats.precpu_stats.as_ref()) else {
        return 0.0;
    };
    let total = |s: &bollard::models::ContainerCpuStats| {
        s.cpu_usage
            .as_ref()
            .and_then(|u| u.total_usage)
            .unwrap_or(0)
    };
    let cpu_delta = total(cur).saturating_sub(total(pre));
    let system_delta = cur
        .system_cpu_usage
        .unwrap_or(0)
        .saturating_sub(pre.system_cpu_usage.unwrap_or(0));
    let online = cur
        .online_cpus
        .filter(|n| *n > 0)
        .map(u64::from)
        .or_else(|| {
            cur.cpu_usage
                .as_ref()
                .and_then(|u| u.percpu_usage.as_ref())
                .and_then(|p| u64::try_from(p.len()).ok())
        })
        .filter(|n| *n > 0)
        .unwrap_or(1);
    if cpu_delta == 0 || system_delta == 0 {
        return 0.0;
    }
    cpu_delta as f64 / system_delta as f64 * online as f64 * 100.0
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bollard::models::{
        ContainerConfig, ContainerCpuStats, ContainerCpuUsage, ContainerStateStatusEnum,
        NetworkSettings, PortBinding,
    };

    use super::*;
    use crate::docker::LABEL_CONTAINER_UUID;

    #[test]
    fn inspect_becomes_a_container_state() {
        let mut ports: PortMap = HashMap::new();
        ports.insert(
            "80/tcp".to_owned(),
            Some(vec![PortBinding {
                host_ip: Some("0.0.0.0".to_owned()),
                host_port: Some("32768".to_owned()),
            }]),
        );
        ports.insert("81/tcp".to_owned(), None);
        let inspect = ContainerInspectResponse {
            id: Some("abc".to_owned()),
            name: Some("/nest-c1".to_owned()),
            config: Some(ContainerConfig {
                image: Some("busybox:1".to_owned()),
                labels: Some(HashMap::from([(
                    LABEL_CONTAINER_UUID.to_owned(),
                    "c1".to_owned(),
                )])),
                ..Default::default()
            }),
            state: Some(bollard::models::ContainerState {
                status: Some(ContainerStateStatusEnum::RUNNING),
                running: Some(true),
                pid: Some(42),
                started_at: Some("2026-01-01T00:00:00Z".to_owned()),
                finished_at: Some(ZERO_TIME.to_owned()),
                ..Default::default()
            }),
            network_settings: Some(NetworkSettings {
                ports: Some(ports),
                ..Default::default()
            }),
            ..Default::default()
        };
        let uuid = ContainerUuid::parse("c1").expect("valid uuid");
        let state = container_state(&uuid, &inspect);
        assert_eq!(state.uuid, uuid);
        assert_eq!(state.name, "nest-c1");
        assert_eq!(state.status, Some(EngineStatus::Running));
        assert_eq!(state.pid, Some(42));
        assert_eq!(state.started_at.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(state.finished_at, None);
        assert_eq!(state.ports.len(), 1);
        assert_eq!(state.ports[0].host_port, 32768);
        assert_eq!(state.ports[0].container_port.get(), 80);
        assert_eq!(state.ports[0].host_ip, Some([0, 0, 0, 0].into()));
        assert_eq!(state.labels[LABEL_CONTAINER_UUID], "c1");
    }

    #[test]
    fn cpu_percent_uses_both_samples() {
        let sample = |total, system| ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage {
                total_usage: Some(total),
                ..Default::default()
            }),
            system_cpu_usage: Some(system),
            online_cpus: Some(2),
            ..Default::default()
        };
        let stats = ContainerStatsResponse {
            cpu_stats: Some(sample(300, 2_000)),
            precpu_stats: Some(sample(100, 1_000)),
            ..Default::default()
        };
        let percent = cpu_percent(&stats);
        assert!((percent - 40.0).abs() < 1e-9, "{percent}");
    }
}
