//! The agent's messages onto the wire. Nothing here can fail: every value
//! of the agent's types has a wire form.

use std::time::UNIX_EPOCH;

use nest_relay::convert::WireErrorKind;
use nest_relay::proto::{self, agent_message, command_output, stream_output, top_result};
use nest_relay::version::{PROTOCOL_VERSION, RELEASE};

use crate::model::{
    Chunk, CommandOutput, ContainerEvent, ContainerState, Failure, Hello, Outbound, OutputKind,
    PortBinding, Protocol, StreamOutput,
};

/// The wire form of a message to the relay.
pub fn agent_message(message: Outbound) -> proto::AgentMessage {
    let kind = match message {
        Outbound::Hello(hello) => agent_message::Kind::Hello(self::hello(hello)),
        Outbound::Heartbeat { seq, sent_at } => {
            let sent_at_ms = sent_at
                .duration_since(UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .unwrap_or(0);
            agent_message::Kind::Heartbeat(proto::Heartbeat { seq, sent_at_ms })
        }
        Outbound::Result { command, outcome } => {
            agent_message::Kind::Result(proto::CommandResult {
                command_id: command.0,
                outcome: Some(match outcome {
                    Ok(output) => proto::command_result::Outcome::Output(proto::CommandOutput {
                        kind: Some(command_output(output)),
                    }),
                    Err(failure) => proto::command_result::Outcome::Error(error(failure)),
                }),
            })
        }
        Outbound::Event(event) => agent_message::Kind::Event(container_event(event)),
        Outbound::Stream { stream, output } => agent_message::Kind::Stream(proto::StreamFrame {
            stream_id: stream.0,
            output: Some(proto::StreamOutput {
                kind: Some(stream_output(output)),
            }),
        }),
        Outbound::Credit { stream, frames } => agent_message::Kind::Credit(proto::StreamCredit {
            stream_id: stream.0,
            frames,
        }),
        Outbound::Renew {
            renewal_id,
            csr_pem,
        } => agent_message::Kind::Renew(proto::RenewRequest {
            request_id: renewal_id,
            csr_pem,
        }),
        Outbound::EngineHealth { healthy, reason } => {
            agent_message::Kind::Engine(proto::EngineHealth { healthy, reason })
        }
    };
    proto::AgentMessage { kind: Some(kind) }
}

/// The enrollment request for `token` (from user-data) and `csr_pem`.
pub fn enroll_request(token: String, csr_pem: String) -> proto::EnrollRequest {
    proto::EnrollRequest {
        token,
        csr_pem,
        protocol_version: PROTOCOL_VERSION,
        agent_version: RELEASE.to_owned(),
    }
}

fn hello(hello: Hello) -> proto::Hello {
    proto::Hello {
        protocol_version: hello.protocol_version,
        agent_version: hello.agent_version,
        inventory: hello.inventory.into_iter().map(container_state).collect(),
        docker_version: hello.docker_version,
        docker_api_version: hello.docker_api_version,
        features: hello.features,
    }
}

fn error(failure: Failure) -> proto::Error {
    failure.kind.error(failure.message)
}

fn command_output(output: CommandOutput) -> command_output::Kind {
    match output {
        CommandOutput::Pong(pong) => command_output::Kind::Pong(proto::Pong {
            agent_version: pong.agent_version,
            docker_version: pong.docker_version,
            docker_api_version: pong.docker_api_version,
        }),
        CommandOutput::ImagePulled(pulled) => {
            command_output::Kind::ImagePulled(proto::ImagePulled {
                image_id: pulled.image_id,
            })
        }
        CommandOutput::Container(state) => command_output::Kind::Container(container_state(state)),
        CommandOutput::Done => command_output::Kind::Done(proto::Empty {}),
        CommandOutput::List(states) => command_output::Kind::List(proto::ContainerList {
            containers: states.into_iter().map(container_state).collect(),
        }),
        CommandOutput::Top(top) => command_output::Kind::Top(proto::TopResult {
            titles: top.titles,
            processes: top
                .processes
                .into_iter()
                .map(|cells| top_result::Row { cells })
                .collect(),
        }),
        CommandOutput::Stats(stats) => command_output::Kind::Stats(proto::StatsResult {
            cpu_percent: stats.cpu_percent,
            memory_usage_bytes: stats.memory_usage_bytes,
            memory_limit_bytes: stats.memory_limit_bytes,
            network_rx_bytes: stats.network_rx_bytes,
            network_tx_bytes: stats.network_tx_bytes,
            block_read_bytes: stats.block_read_bytes,
            block_write_bytes: stats.block_write_bytes,
            pids: stats.pids,
        }),
        CommandOutput::Exec(captured) => command_output::Kind::Exec(proto::ExecCaptured {
            stdout: captured.stdout,
            stderr: captured.stderr,
            exit_code: captured.exit_code,
            truncated: captured.truncated,
        }),
    }
}

fn container_state(state: ContainerState) -> proto::ContainerState {
    proto::ContainerState {
        uuid: state.uuid.as_str().to_owned(),
        docker_id: state.docker_id,
        name: state.name,
        image: state.image,
        status: state
            .status
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        running: state.running,
        exit_code: state.exit_code,
        started_at: state.started_at.unwrap_or_default(),
        finished_at: state.finished_at.unwrap_or_default(),
        oom_killed: state.oom_killed,
        restart_count: state.restart_count,
        ports: state.ports.iter().map(port_binding).collect(),
        // A BTreeMap iterates in key order, the order the wire has always had.
        labels: state
            .labels
            .into_iter()
            .map(|(key, value)| proto::Label { key, value })
            .collect(),
        error: state.error.unwrap_or_default(),
        health: state
            .health
            .map(|h| h.as_str().to_owned())
            .unwrap_or_default(),
        pid: state.pid.unwrap_or(0),
    }
}

fn port_binding(port: &PortBinding) -> proto::PortBinding {
    let protocol = match port.protocol {
        Protocol::Tcp => proto::Protocol::Tcp,
        Protocol::Udp => proto::Protocol::Udp,
    };
    proto::PortBinding {
        host_ip: port.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        host_port: u32::from(port.host_port),
        container_port: u32::from(port.container_port.get()),
        protocol: protocol as i32,
    }
}

fn container_event(event: ContainerEvent) -> proto::ContainerEvent {
    proto::ContainerEvent {
        uuid: event.uuid.as_str().to_owned(),
        docker_id: event.docker_id,
        action: event.action,
        exit_code: event.exit_code,
        time_nanos: event.time_nanos,
        state: event.state.map(container_state),
    }
}

fn stream_output(output: StreamOutput) -> stream_output::Kind {
    match output {
        StreamOutput::Started => stream_output::Kind::Started(proto::Empty {}),
        StreamOutput::Chunk(chunk) => stream_output::Kind::Chunk(self::chunk(chunk)),
        StreamOutput::End { exit_code } => stream_output::Kind::End(proto::End { exit_code }),
        StreamOutput::Failed(failure) => stream_output::Kind::Error(error(failure)),
    }
}

fn chunk(chunk: Chunk) -> proto::Chunk {
    let kind = match chunk.kind {
        OutputKind::Stdout => proto::OutputKind::Stdout,
        OutputKind::Stderr => proto::OutputKind::Stderr,
        OutputKind::Console => proto::OutputKind::Console,
    };
    proto::Chunk {
        kind: kind as i32,
        data: chunk.data,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::num::NonZeroU16;
    use std::time::{Duration, SystemTime};

    use nest_core::ErrorKind;

    use super::*;
    use crate::model::{CommandId, ContainerUuid, EngineStatus, StreamId};

    fn state() -> ContainerState {
        ContainerState {
            uuid: ContainerUuid::parse("c1").expect("valid uuid"),
            docker_id: "abc".to_owned(),
            name: "nest-c1".to_owned(),
            image: "busybox:1".to_owned(),
            status: Some(EngineStatus::Running),
            running: true,
            exit_code: 0,
            started_at: Some("2026-01-01T00:00:00Z".to_owned()),
            finished_at: None,
            oom_killed: false,
            restart_count: 2,
            ports: vec![PortBinding {
                host_ip: None,
                host_port: 32768,
                container_port: NonZeroU16::new(80).expect("non-zero"),
                protocol: Protocol::Tcp,
            }],
            labels: BTreeMap::from([
                ("z".to_owned(), "last".to_owned()),
                ("a".to_owned(), "first".to_owned()),
            ]),
            error: None,
            pid: None,
            health: Some(nest_core::engine_options::Health::Healthy),
        }
    }

    #[test]
    fn state_goes_out_in_the_engine_words_with_empty_for_unset() {
        let wire = container_state(state());
        assert_eq!(wire.uuid, "c1");
        assert_eq!(wire.status, "running");
        assert_eq!(wire.started_at, "2026-01-01T00:00:00Z");
        assert_eq!(wire.finished_at, "");
        assert_eq!((wire.pid, wire.error.as_str()), (0, ""));
        assert_eq!(wire.health, "healthy");
        let keys: Vec<&str> = wire.labels.iter().map(|l| l.key.as_str()).collect();
        assert_eq!(keys, ["a", "z"]);
        assert_eq!(wire.ports.len(), 1);
        assert_eq!(
            (
                wire.ports[0].host_ip.as_str(),
                wire.ports[0].host_port,
                wire.ports[0].container_port
            ),
            ("", 32768, 80)
        );
        assert_eq!(wire.ports[0].protocol, proto::Protocol::Tcp as i32);
        let mut unset = state();
        unset.status = None;
        assert_eq!(container_state(unset).status, "");
    }

    #[test]
    fn results_carry_the_command_id_and_the_error_kind() {
        let message = agent_message(Outbound::Result {
            command: CommandId(9),
            outcome: Err(Failure::new(ErrorKind::NotFound, "container c1 not found")),
        });
        let Some(agent_message::Kind::Result(result)) = message.kind else {
            panic!("expected a result");
        };
        assert_eq!(result.command_id, 9);
        let Some(proto::command_result::Outcome::Error(error)) = result.outcome else {
            panic!("expected an error");
        };
        assert_eq!(error.kind, proto::ErrorKind::NotFound as i32);
        assert_eq!(error.message, "container c1 not found");

        let message = agent_message(Outbound::Result {
            command: CommandId(10),
            outcome: Ok(CommandOutput::Done),
        });
        let Some(agent_message::Kind::Result(result)) = message.kind else {
            panic!("expected a result");
        };
        assert!(matches!(
            result.outcome,
            Some(proto::command_result::Outcome::Output(
                proto::CommandOutput {
                    kind: Some(command_output::Kind::Done(_))
                }
            ))
        ));
    }

    #[test]
    fn stream_frames_and_heartbeats_keep_their_fields() {
        let message = agent_message(Outbound::Stream {
            stream: StreamId(5),
            output: StreamOutput::Chunk(Chunk {
                kind: OutputKind::Console,
                data: b"hi".to_vec(),
            }),
        });
        let Some(agent_message::Kind::Stream(frame)) = message.kind else {
            panic!("expected a stream frame");
        };
        assert_eq!(frame.stream_id, 5);
        let Some(proto::StreamOutput {
            kind: Some(stream_output::Kind::Chunk(chunk)),
        }) = frame.output
        else {
            panic!("expected a chunk");
        };
        assert_eq!(chunk.kind, proto::OutputKind::Console as i32);
        assert_eq!(chunk.data, b"hi");

        let message = agent_message(Outbound::Heartbeat {
            seq: 3,
            sent_at: SystemTime::UNIX_EPOCH + Duration::from_millis(1234),
        });
        let Some(agent_message::Kind::Heartbeat(beat)) = message.kind else {
            panic!("expected a heartbeat");
        };
        assert_eq!((beat.seq, beat.sent_at_ms), (3, 1234));
    }
}
