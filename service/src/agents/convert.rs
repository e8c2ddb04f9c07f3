//! The service's only mapping between its own types and the wire
//! protocol's generated ones (`nest_relay::proto`): the commands sent to
//! agents and their answers, stream frames both ways, and the watch feed of
//! agent sessions and container events.
//!
//! Everything here is a pure function; nothing talks to the network, and no
//! protocol type leaves this module except towards `relay.rs`, which hands
//! them to the relay client unopened.

use std::time::Duration;

use bytes::Bytes;
use nest_relay::convert::WireErrorKind;
use nest_relay::proto::{self, command, command_output, stream_open, stream_output, watch_event};

use super::{
    AgentAction, AgentError, AgentEvent, ContainerEvent, CreateRequest, EngineAction, EngineState,
    ExecCommand, ExecOutput, OutputStream, ProcessTable, ResourceUsage, Resources, StreamEvent,
    StreamOpen,
};
use crate::domain::{
    ContainerId, ContainerSpec, ContainerStatus, Health, InstanceId, PortProtocol,
    RestartPolicyName,
};
use nest_core::ErrorKind;

/// The agent's spec for a container.
fn to_agent_spec(id: ContainerId, name: &str, spec: &ContainerSpec) -> proto::ContainerSpec {
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
        env: env_vars(&spec.environment),
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
        stdin_once: spec.stdin_once,
        networks: spec
            .networks
            .iter()
            .map(|n| {
                // The engine also answers for the container's short id,
                // as the Docker endpoint shows it (its first 12 digits).
                let mut aliases = n.aliases.clone();
                let short = id.as_uuid().simple().to_string()[..12].to_owned();
                if !aliases.contains(&short) {
                    aliases.push(short);
                }
                proto::NetworkAttachment {
                    network_id: n.network.hex(),
                    aliases,
                }
            })
            .collect(),
        user: spec.user.clone().unwrap_or_default(),
        stop_signal: spec.engine.stop_signal.clone().unwrap_or_default(),
        stop_timeout_seconds: spec.engine.stop_timeout,
        healthcheck: spec
            .engine
            .healthcheck
            .as_ref()
            .map(|h| proto::HealthCheck {
                test: h.test.clone(),
                interval_ns: h.interval_ns,
                timeout_ns: h.timeout_ns,
                start_period_ns: h.start_period_ns,
                retries: h.retries,
            }),
        init: spec.engine.init,
        read_only: spec.engine.read_only,
        extra_hosts: spec
            .engine
            .extra_hosts
            .iter()
            .map(|(host, address)| proto::ExtraHost {
                host: host.clone(),
                address: address.clone(),
            })
            .collect(),
    }
}

fn env_vars(environment: &std::collections::BTreeMap<String, String>) -> Vec<proto::EnvVar> {
    environment
        .iter()
        .map(|(name, value)| proto::EnvVar {
            name: name.clone(),
            value: value.clone(),
        })
        .collect()
}

/// Zun's `cpu` (vCPUs, e.g. 0.5) as the agent's millicores.
fn cpu_millis(cpu: f64) -> u64 {
    // Validated to 0.1..=16 at the API, so the cast cannot truncate.
    (cpu * 1000.0).round().max(0.0) as u64
}

/// MiB as bytes.
fn memory_bytes(memory_mib: u64) -> u64 {
    memory_mib.saturating_mul(1024 * 1024)
}

/// A grace period as the wire's whole seconds.
fn seconds(timeout: Duration) -> u32 {
    u32::try_from(timeout.as_secs()).unwrap_or(u32::MAX)
}

/// The status Nest records for what the engine reports.
fn status_of(state: &proto::ContainerState) -> ContainerStatus {
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
fn exit_reason(state: &proto::ContainerState) -> Option<String> {
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

/// The engine's state of the container `container`.
fn state_of(container: ContainerId, state: &proto::ContainerState) -> EngineState {
    EngineState {
        container,
        docker_id: state.docker_id.clone(),
        status: status_of(state),
        status_reason: exit_reason(state),
        exit_code: state.exit_code,
        health: Health::parse(&state.health),
    }
}

/// An inventory, skipping containers whose uuid is not Nest's (the agent
/// only manages containers it created from a Nest uuid, so there are none
/// unless someone relabelled one by hand).
fn inventory_of(states: &[proto::ContainerState]) -> Vec<EngineState> {
    states
        .iter()
        .filter_map(|state| match ContainerId::parse(&state.uuid) {
            Ok(id) => Some(state_of(id, state)),
            Err(e) => {
                tracing::warn!(uuid = %state.uuid, error = %e, "an agent reported a container with an unreadable uuid; ignored");
                None
            }
        })
        .collect()
}

pub(super) fn create(request: CreateRequest) -> command::Kind {
    command::Kind::Create(proto::CreateContainer {
        spec: Some(to_agent_spec(
            request.container,
            &request.name,
            &request.spec,
        )),
        start: request.start,
        pull_missing: request.pull_missing,
    })
}

pub(super) fn act(container: ContainerId, action: AgentAction) -> command::Kind {
    let uuid = container.to_string();
    match action {
        AgentAction::Start => command::Kind::Start(proto::ContainerRef { uuid }),
        AgentAction::Stop { timeout } => command::Kind::Stop(proto::StopContainer {
            uuid,
            timeout_seconds: timeout.map(seconds),
        }),
        AgentAction::Restart { timeout } => command::Kind::Restart(proto::StopContainer {
            uuid,
            timeout_seconds: timeout.map(seconds),
        }),
        AgentAction::Pause => command::Kind::Pause(proto::ContainerRef { uuid }),
        AgentAction::Unpause => command::Kind::Unpause(proto::ContainerRef { uuid }),
        AgentAction::Kill { signal } => command::Kind::Kill(proto::KillContainer {
            uuid,
            signal: signal.unwrap_or_default(),
        }),
        AgentAction::Remove { force } => {
            command::Kind::Remove(proto::RemoveContainer { uuid, force })
        }
    }
}

pub(super) fn inspect(container: ContainerId) -> command::Kind {
    command::Kind::Inspect(proto::ContainerRef {
        uuid: container.to_string(),
    })
}

pub(super) fn list() -> command::Kind {
    command::Kind::List(proto::ListContainers {})
}

pub(super) fn update(container: ContainerId, resources: Resources) -> command::Kind {
    command::Kind::Update(proto::UpdateResources {
        uuid: container.to_string(),
        cpu_millis: cpu_millis(resources.cpu),
        memory_bytes: memory_bytes(resources.memory_mib),
    })
}

pub(super) fn top(container: ContainerId, ps_args: Option<String>) -> command::Kind {
    command::Kind::Top(proto::Top {
        uuid: container.to_string(),
        ps_args: ps_args.unwrap_or_default(),
    })
}

pub(super) fn stats(container: ContainerId) -> command::Kind {
    command::Kind::Stats(proto::Stats {
        uuid: container.to_string(),
    })
}

pub(super) fn exec(container: ContainerId, command: ExecCommand) -> command::Kind {
    command::Kind::Exec(proto::ExecCapture {
        uuid: container.to_string(),
        command: command.command,
        env: env_vars(&command.environment),
        workdir: command.workdir.unwrap_or_default(),
        user: command.user.unwrap_or_default(),
    })
}

/// The state an answer carries, for commands that must answer with one.
pub(super) fn engine_state(
    container: ContainerId,
    output: command_output::Kind,
    command: &'static str,
) -> Result<EngineState, AgentError> {
    match output {
        command_output::Kind::Container(state) => Ok(state_of(container, &state)),
        _ => Err(AgentError::UnexpectedAnswer { command }),
    }
}

/// The state after an action, when the agent reported one.
pub(super) fn acted(container: ContainerId, output: command_output::Kind) -> Option<EngineState> {
    match output {
        command_output::Kind::Container(state) => Some(state_of(container, &state)),
        _ => None,
    }
}

pub(super) fn inventory(output: command_output::Kind) -> Result<Vec<EngineState>, AgentError> {
    match output {
        command_output::Kind::List(list) => Ok(inventory_of(&list.containers)),
        _ => Err(AgentError::UnexpectedAnswer { command: "list" }),
    }
}

pub(super) fn process_table(output: command_output::Kind) -> Result<ProcessTable, AgentError> {
    match output {
        command_output::Kind::Top(top) => Ok(ProcessTable {
            titles: top.titles,
            processes: top.processes.into_iter().map(|row| row.cells).collect(),
        }),
        _ => Err(AgentError::UnexpectedAnswer { command: "top" }),
    }
}

pub(super) fn resource_usage(output: command_output::Kind) -> Result<ResourceUsage, AgentError> {
    match output {
        command_output::Kind::Stats(s) => Ok(ResourceUsage {
            cpu_percent: s.cpu_percent,
            memory_usage_bytes: s.memory_usage_bytes,
            memory_limit_bytes: s.memory_limit_bytes,
            network_rx_bytes: s.network_rx_bytes,
            network_tx_bytes: s.network_tx_bytes,
            block_read_bytes: s.block_read_bytes,
            block_write_bytes: s.block_write_bytes,
            pids: s.pids,
        }),
        _ => Err(AgentError::UnexpectedAnswer { command: "stats" }),
    }
}

pub(super) fn exec_output(output: command_output::Kind) -> Result<ExecOutput, AgentError> {
    match output {
        command_output::Kind::Exec(captured) => Ok(ExecOutput {
            stdout: Bytes::from(captured.stdout),
            stderr: Bytes::from(captured.stderr),
            exit_code: captured.exit_code,
            truncated: captured.truncated,
        }),
        _ => Err(AgentError::UnexpectedAnswer { command: "exec" }),
    }
}

pub(super) fn stream_open(open: StreamOpen) -> stream_open::Kind {
    match open {
        StreamOpen::Logs { container, options } => stream_open::Kind::Logs(proto::LogsStream {
            uuid: container.to_string(),
            stdout: options.stdout,
            stderr: options.stderr,
            tail: options.tail,
            since: options.since.unwrap_or(0),
            timestamps: options.timestamps,
            follow: options.follow,
        }),
        StreamOpen::Exec {
            container,
            command,
            tty,
            stdin,
            size,
            environment,
            workdir,
            user,
        } => stream_open::Kind::Exec(proto::ExecStream {
            uuid: container.to_string(),
            command,
            tty,
            stdin,
            env: env_vars(&environment),
            workdir: workdir.unwrap_or_default(),
            user: user.unwrap_or_default(),
            width: size.map_or(0, |s| u32::from(s.width)),
            height: size.map_or(0, |s| u32::from(s.height)),
        }),
        StreamOpen::Attach {
            container,
            stdin,
            stdout,
            stderr,
            logs,
        } => stream_open::Kind::Attach(proto::AttachStream {
            uuid: container.to_string(),
            stdin,
            stdout,
            stderr,
            logs,
        }),
        StreamOpen::LoadImage => stream_open::Kind::LoadImage(proto::LoadImageStream {}),
    }
}

pub(super) fn stream_event(frame: stream_output::Kind) -> StreamEvent {
    match frame {
        stream_output::Kind::Started(_) => StreamEvent::Started,
        stream_output::Kind::Chunk(chunk) => StreamEvent::Output {
            stream: match proto::OutputKind::try_from(chunk.kind) {
                Ok(proto::OutputKind::Stderr) => OutputStream::Stderr,
                Ok(proto::OutputKind::Console) => OutputStream::Tty,
                // Unknown kinds from a newer agent are still output.
                Ok(proto::OutputKind::Stdout) | Err(_) => OutputStream::Stdout,
            },
            data: Bytes::from(chunk.data),
        },
        stream_output::Kind::End(end) => StreamEvent::End {
            exit_code: end.exit_code,
        },
        stream_output::Kind::Error(e) => StreamEvent::Failed {
            kind: ErrorKind::from_proto(e.kind),
            message: e.message,
        },
    }
}

/// An event of the watch feed; `None` for what names no valid instance or
/// container (such an event cannot be acted on).
pub(super) fn agent_event(event: proto::WatchEvent) -> Option<AgentEvent> {
    let Ok(instance) = InstanceId::parse(&event.instance_id) else {
        tracing::debug!(instance_id = %event.instance_id, "watch event of an unreadable instance id; ignored");
        return None;
    };
    match event.kind? {
        watch_event::Kind::Connected(hello) => Some(AgentEvent::Connected {
            instance,
            session: hello.session_id,
            inventory: inventory_of(&hello.inventory),
            agent_version: hello.agent_version,
            features: hello.features,
        }),
        watch_event::Kind::Disconnected(bye) => Some(AgentEvent::Disconnected {
            instance,
            session: bye.session_id,
            reason: bye.reason,
        }),
        watch_event::Kind::Engine(health) => Some(AgentEvent::Engine {
            instance,
            healthy: health.healthy,
            reason: health.reason,
        }),
        watch_event::Kind::Violation(violation) => Some(AgentEvent::Violation {
            instance,
            session: violation.session_id,
            kind: crate::metrics::Violation::from_relay(&violation.kind),
            count: violation.count,
            detail: violation.detail,
        }),
        watch_event::Kind::Container(event) => {
            let container = ContainerId::parse(&event.uuid).ok()?;
            let action = match event.action.as_str() {
                "destroy" => EngineAction::Destroy,
                "oom" => EngineAction::OutOfMemory,
                other => EngineAction::Other(other.to_owned()),
            };
            Some(AgentEvent::Container {
                instance,
                event: ContainerEvent {
                    container,
                    action,
                    state: event.state.as_ref().map(|s| state_of(container, s)),
                },
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PublishedPort, TtySize};

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

    #[test]
    fn actions_carry_their_arguments() {
        let id = ContainerId::generate();
        let stop = act(
            id,
            AgentAction::Stop {
                timeout: Some(Duration::from_secs(10)),
            },
        );
        assert_eq!(
            stop,
            command::Kind::Stop(proto::StopContainer {
                uuid: id.to_string(),
                timeout_seconds: Some(10),
            })
        );
        let kill = act(id, AgentAction::Kill { signal: None });
        assert_eq!(
            kill,
            command::Kind::Kill(proto::KillContainer {
                uuid: id.to_string(),
                signal: String::new(),
            })
        );
        let remove = act(id, AgentAction::Remove { force: true });
        assert_eq!(
            remove,
            command::Kind::Remove(proto::RemoveContainer {
                uuid: id.to_string(),
                force: true,
            })
        );
    }

    #[test]
    fn answers_of_another_kind_are_refused() {
        let id = ContainerId::generate();
        let done = || command_output::Kind::Done(proto::Empty {});
        assert!(matches!(
            engine_state(id, done(), "create"),
            Err(AgentError::UnexpectedAnswer { command: "create" })
        ));
        assert_eq!(acted(id, done()), None);
        assert!(process_table(done()).is_err());
        assert!(resource_usage(done()).is_err());
        assert!(exec_output(done()).is_err());
    }

    #[test]
    fn stream_frames_keep_their_stream_exit_code_and_error_kind() {
        let chunk = |kind: proto::OutputKind| {
            stream_event(stream_output::Kind::Chunk(proto::Chunk {
                kind: kind as i32,
                data: b"x".to_vec(),
            }))
        };
        let output = |stream| StreamEvent::Output {
            stream,
            data: Bytes::from_static(b"x"),
        };
        assert_eq!(
            chunk(proto::OutputKind::Stdout),
            output(OutputStream::Stdout)
        );
        assert_eq!(
            chunk(proto::OutputKind::Stderr),
            output(OutputStream::Stderr)
        );
        assert_eq!(chunk(proto::OutputKind::Console), output(OutputStream::Tty));
        assert_eq!(
            stream_event(stream_output::Kind::End(proto::End { exit_code: Some(3) })),
            StreamEvent::End { exit_code: Some(3) }
        );
        assert_eq!(
            stream_event(stream_output::Kind::Error(
                ErrorKind::NotFound.error("no such exec")
            )),
            StreamEvent::Failed {
                kind: ErrorKind::NotFound,
                message: "no such exec".into()
            }
        );
        let exec = stream_open(StreamOpen::Exec {
            container: ContainerId::generate(),
            command: vec!["sh".into()],
            tty: true,
            stdin: true,
            size: Some(TtySize {
                width: 80,
                height: 24,
            }),
            environment: [("A".to_owned(), "B".to_owned())].into(),
            workdir: Some("/tmp".into()),
            user: Some("65534".into()),
        });
        let stream_open::Kind::Exec(exec) = exec else {
            panic!("an exec: {exec:?}");
        };
        assert_eq!((exec.width, exec.height, exec.tty), (80, 24, true));
        assert_eq!(
            (exec.env, exec.workdir.as_str(), exec.user.as_str()),
            (
                vec![proto::EnvVar {
                    name: "A".into(),
                    value: "B".into()
                }],
                "/tmp",
                "65534"
            )
        );
    }

    #[test]
    fn watch_events_become_agent_events() {
        let instance = "6f1c1c3e-2b7a-4d7e-9a52-0d1f3c2b1a00";
        let id = ContainerId::generate();
        let connected = proto::WatchEvent {
            instance_id: instance.into(),
            kind: Some(watch_event::Kind::Connected(proto::AgentConnected {
                session_id: 7,
                inventory: vec![
                    proto::ContainerState {
                        uuid: id.to_string(),
                        docker_id: "d0c".into(),
                        status: "running".into(),
                        ..Default::default()
                    },
                    proto::ContainerState {
                        uuid: "not-nest".into(),
                        ..Default::default()
                    },
                ],
                agent_version: "1.2.3".into(),
                features: vec!["networks".into()],
                ..Default::default()
            })),
        };
        let Some(AgentEvent::Connected {
            session,
            inventory,
            agent_version,
            features,
            ..
        }) = agent_event(connected)
        else {
            panic!("a connected event");
        };
        assert_eq!(session, 7);
        assert_eq!(
            (agent_version.as_str(), &features[..]),
            ("1.2.3", &["networks".to_owned()][..])
        );
        assert_eq!(inventory.len(), 1);
        assert_eq!(inventory[0].container, id);
        assert_eq!(inventory[0].docker_id, "d0c");
        assert_eq!(inventory[0].status, ContainerStatus::Running);

        let destroyed = proto::WatchEvent {
            instance_id: instance.into(),
            kind: Some(watch_event::Kind::Container(proto::ContainerEvent {
                uuid: id.to_string(),
                action: "destroy".into(),
                ..Default::default()
            })),
        };
        assert!(matches!(
            agent_event(destroyed),
            Some(AgentEvent::Container {
                event: ContainerEvent {
                    action: EngineAction::Destroy,
                    state: None,
                    ..
                },
                ..
            })
        ));
        let bad_instance = proto::WatchEvent {
            instance_id: "a/b".into(),
            kind: None,
        };
        assert_eq!(agent_event(bad_instance), None);
    }
}
