//! The one place where the service's domain types meet the wire protocol's
//! (`nest_relay::proto`): container specs going to agents, container
//! states coming back.

use nest_relay::proto;

use crate::domain::{ContainerId, ContainerSpec, ContainerStatus, PortProtocol, RestartPolicyName};

/// The agent's spec for a container.
pub fn to_agent_spec(id: ContainerId, name: &str, spec: &ContainerSpec) -> proto::ContainerSpec {
    let (policy, retries) = spec.restart_policy;
    let restart_policy = match policy {
        RestartPolicyName::No => proto::RestartPolicy::No,
        RestartPolicyName::Always => proto::RestartPolicy::Always,
        RestartPolicyName::OnFailure => proto::RestartPolicy::OnFailure,
        RestartPolicyName::UnlessStopped => proto::RestartPolicy::UnlessStopped,
    };
    proto::ContainerSpec {
        uuid: id.to_string(),
        name: name.to_owned(),
        image: spec.image.clone(),
        command: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: spec
            .environment
            .iter()
            .map(|(name, value)| proto::EnvVar {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        workdir: spec.workdir.clone().unwrap_or_default(),
        labels: spec
            .labels
            .iter()
            .map(|(key, value)| proto::Label {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        hostname: spec.hostname.clone().unwrap_or_default(),
        ports: spec
            .ports
            .iter()
            .map(|p| proto::PortBinding {
                host_ip: String::new(),
                host_port: u32::from(p.host_port),
                container_port: u32::from(p.container_port),
                protocol: match p.protocol {
                    PortProtocol::Tcp => proto::Protocol::Tcp,
                    PortProtocol::Udp => proto::Protocol::Udp,
                } as i32,
            })
            .collect(),
        cpu_millis: cpu_millis(spec.cpu),
        memory_bytes: memory_bytes(spec.memory_mib),
        restart_policy: restart_policy as i32,
        restart_max_retries: retries,
        tty: spec.tty,
        open_stdin: spec.interactive,
        user: String::new(),
    }
}

/// Zun's `cpu` (vCPUs, e.g. 0.5) as the agent's millicores.
pub fn cpu_millis(cpu: f64) -> u64 {
    // Validated to 0.1..=16 at the API, so the cast cannot truncate.
    (cpu * 1000.0).round().max(0.0) as u64
}

/// MiB as bytes.
pub fn memory_bytes(memory_mib: u64) -> u64 {
    memory_mib.saturating_mul(1024 * 1024)
}

/// The status Nest records for what the engine reports.
pub fn status_of(state: &proto::ContainerState) -> ContainerStatus {
    match state.status.as_str() {
        "running" => ContainerStatus::Running,
        "paused" => ContainerStatus::Paused,
        "restarting" => ContainerStatus::Restarting,
        "created" => ContainerStatus::Created,
        "exited" | "dead" | "removing" => ContainerStatus::Stopped,
        _ => ContainerStatus::Unknown,
    }
}

/// A human reason for a stopped container, from its exit.
pub fn exit_reason(state: &proto::ContainerState) -> Option<String> {
    if state.oom_killed {
        return Some(format!(
            "killed: out of memory (exit code {})",
            state.exit_code
        ));
    }
    if !state.error.is_empty() {
        return Some(state.error.clone());
    }
    matches!(status_of(state), ContainerStatus::Stopped)
        .then(|| format!("exited with code {}", state.exit_code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PublishedPort;

    #[test]
    fn spec_maps_units_and_ports() {
        let spec = ContainerSpec {
            image: "nginx".into(),
            cpu: 0.5,
            memory_mib: 256,
            ports: vec![PublishedPort {
                network: Some("pub".into()),
                host_port: 222,
                container_port: 22,
                protocol: PortProtocol::Tcp,
            }],
            restart_policy: (RestartPolicyName::OnFailure, 3),
            ..Default::default()
        };
        let id = ContainerId::generate();
        let wire = to_agent_spec(id, "web", &spec);
        assert_eq!(wire.uuid, id.to_string());
        assert_eq!(wire.cpu_millis, 500);
        assert_eq!(wire.memory_bytes, 256 * 1024 * 1024);
        assert_eq!(wire.ports[0].host_port, 222);
        assert_eq!(wire.ports[0].container_port, 22);
        assert_eq!(wire.restart_policy, proto::RestartPolicy::OnFailure as i32);
        assert_eq!(wire.restart_max_retries, 3);
    }

    #[test]
    fn engine_states_map_to_statuses() {
        let state = |s: &str| proto::ContainerState {
            status: s.into(),
            ..Default::default()
        };
        assert_eq!(status_of(&state("running")), ContainerStatus::Running);
        assert_eq!(status_of(&state("exited")), ContainerStatus::Stopped);
        assert_eq!(status_of(&state("created")), ContainerStatus::Created);
        assert_eq!(status_of(&state("weird")), ContainerStatus::Unknown);
        let oom = proto::ContainerState {
            status: "exited".into(),
            oom_killed: true,
            exit_code: 137,
            ..Default::default()
        };
        assert!(exit_reason(&oom).is_some_and(|r| r.contains("out of memory")));
    }
}
