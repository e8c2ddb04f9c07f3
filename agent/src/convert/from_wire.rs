//! Relay messages into the agent's types, checking everything on the way.

use std::num::NonZeroU16;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nest_core::ErrorKind;
use nest_core::engine_options::OptionField;
use nest_core::ids::RequestId;
use nest_core::process_input;
use nest_core::secret::Secret;
use nest_relay::convert::WireErrorKind;
use nest_relay::proto::{
    self, command, relay_message, renew_response, stream_input, stream_open, stream_request,
};

use super::ConvertError;
use crate::model::{
    AttachStream, Command, CommandId, CommandRequest, ContainerSpec, ContainerUuid,
    CreateContainer, EngineOptions, EnvVar, ExecCapture, ExecStream, Failure, HealthCheck,
    HelloAck, Inbound, KillContainer, Label, LogsRequest, MAX_ALIASES, MAX_NETWORKS, NetworkAlias,
    NetworkAttachment, NetworkId, PortBinding, Protocol, PullImage, RemoveContainer, RenewOutcome,
    RestartPolicy, StopContainer, StreamId, StreamInput, StreamOpen, StreamOpenRequest,
    TerminalSize, Top, UpdateResources,
};

/// A message from the relay in the agent's terms; `None` when it carries
/// nothing to act on (no kind, or stream input without content), which a
/// newer relay may send and this agent ignores.
pub fn relay_message(message: proto::RelayMessage) -> Option<Inbound> {
    Some(match message.kind? {
        relay_message::Kind::HelloAck(ack) => Inbound::HelloAck(HelloAck {
            protocol_version: ack.protocol_version,
            relay_version: ack.relay_version,
            instance_id: ack.instance_id,
            heartbeat_interval: Duration::from_millis(u64::from(ack.heartbeat_interval_ms)),
        }),
        relay_message::Kind::Heartbeat(_) => Inbound::Heartbeat,
        relay_message::Kind::Command(request) => Inbound::Command(command_request(request)),
        relay_message::Kind::Stream(request) => return stream_request(request),
        relay_message::Kind::Credit(credit) => Inbound::Credit {
            stream: StreamId(credit.stream_id),
            frames: credit.frames,
        },
        relay_message::Kind::Renewed(renewed) => Inbound::Renewed {
            renewal_id: renewed.request_id,
            outcome: match renewed.outcome {
                Some(renew_response::Outcome::CertificatePem(pem)) => {
                    RenewOutcome::Certificate(pem)
                }
                Some(renew_response::Outcome::Error(error)) => {
                    RenewOutcome::Refused(failure(error))
                }
                None => RenewOutcome::Empty,
            },
        },
    })
}

/// The certificate an enrollment answered with, PEM.
pub fn enrolled_certificate(response: proto::EnrollResponse) -> String {
    response.certificate_pem
}

fn failure(error: proto::Error) -> Failure {
    Failure::new(ErrorKind::from_proto(error.kind), error.message)
}

/// The service's request id, when it has the `req-<uuid>` shape; an empty
/// or foreign id is not worth a refusal, it only cannot be traced.
fn request_id(raw: &str) -> Option<RequestId> {
    RequestId::from_client(raw)
}

fn command_request(request: proto::CommandRequest) -> CommandRequest {
    CommandRequest {
        id: CommandId(request.command_id),
        request_id: request_id(&request.request_id),
        timeout: Duration::from_millis(u64::from(request.timeout_ms)),
        command: request
            .command
            .and_then(|c| c.kind)
            .ok_or(ConvertError::EmptyCommand)
            .and_then(command),
    }
}

fn stream_request(request: proto::StreamRequest) -> Option<Inbound> {
    let stream = StreamId(request.stream_id);
    Some(match request.kind? {
        stream_request::Kind::Open(open) => Inbound::StreamOpen(StreamOpenRequest {
            id: stream,
            request_id: request_id(&open.request_id),
            open: open
                .open
                .and_then(|o| o.kind)
                .ok_or_else(|| {
                    ConvertError::invalid("open", "the stream open names nothing to stream")
                })
                .and_then(stream_open),
        }),
        stream_request::Kind::Input(input) => Inbound::StreamInput {
            stream,
            input: stream_input(input.kind?),
        },
    })
}

fn uuid(field: &str, uuid: &str) -> Result<ContainerUuid, ConvertError> {
    ContainerUuid::parse(uuid).map_err(|source| ConvertError::Uuid {
        field: field.to_owned(),
        source,
    })
}

/// Empty strings mean "not set" on the wire.
fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn command(kind: command::Kind) -> Result<Command, ConvertError> {
    Ok(match kind {
        command::Kind::Ping(_) => Command::Ping,
        command::Kind::PullImage(p) => Command::PullImage(PullImage {
            reference: p.reference,
            registry_auth: non_empty(p.registry_auth).map(Secret::new),
        }),
        command::Kind::Create(c) => Command::Create(Box::new(CreateContainer {
            spec: container_spec(
                c.spec
                    .ok_or_else(|| ConvertError::invalid("spec", "is missing"))?,
            )?,
            start: c.start,
            pull_missing: c.pull_missing,
        })),
        command::Kind::Start(r) => Command::Start(uuid("uuid", &r.uuid)?),
        command::Kind::Stop(s) => Command::Stop(stop(s)?),
        command::Kind::Kill(k) => Command::Kill(KillContainer {
            uuid: uuid("uuid", &k.uuid)?,
            signal: non_empty(k.signal),
        }),
        command::Kind::Restart(s) => Command::Restart(stop(s)?),
        command::Kind::Pause(r) => Command::Pause(uuid("uuid", &r.uuid)?),
        command::Kind::Unpause(r) => Command::Unpause(uuid("uuid", &r.uuid)?),
        command::Kind::Remove(r) => Command::Remove(RemoveContainer {
            uuid: uuid("uuid", &r.uuid)?,
            force: r.force,
        }),
        command::Kind::Inspect(r) => Command::Inspect(uuid("uuid", &r.uuid)?),
        command::Kind::List(_) => Command::List,
        command::Kind::Top(t) => Command::Top(Top {
            uuid: uuid("uuid", &t.uuid)?,
            ps_args: non_empty(t.ps_args),
        }),
        command::Kind::Stats(s) => Command::Stats(uuid("uuid", &s.uuid)?),
        command::Kind::Exec(e) => {
            let ExecOptions { env, workdir, user } = exec_options(e.env, e.workdir, e.user)?;
            Command::Exec(ExecCapture {
                uuid: uuid("uuid", &e.uuid)?,
                command: e.command,
                env,
                workdir,
                user,
            })
        }
        command::Kind::Update(u) => Command::Update(UpdateResources {
            uuid: uuid("uuid", &u.uuid)?,
            cpu_millis: u.cpu_millis,
            memory_bytes: u.memory_bytes,
        }),
    })
}

fn stop(s: proto::StopContainer) -> Result<StopContainer, ConvertError> {
    Ok(StopContainer {
        uuid: uuid("uuid", &s.uuid)?,
        timeout: s
            .timeout_seconds
            .map(|seconds| Duration::from_secs(u64::from(seconds))),
    })
}

/// An exec's environment, working directory and user (`docker exec
/// -e/-w/-u`), checked by the rules the service's doors apply to them
/// (`nest_core::process_input`): they become engine arguments. Empty is
/// the container's own.
fn exec_options(
    vars: Vec<proto::EnvVar>,
    workdir: String,
    user: String,
) -> Result<ExecOptions, ConvertError> {
    process_input::check_env_count(vars.len())
        .map_err(|e| ConvertError::invalid("env", e.to_string()))?;
    for (i, var) in vars.iter().enumerate() {
        process_input::check_env_var(&var.name, &var.value)
            .map_err(|e| ConvertError::invalid(format!("env[{i}]"), e.to_string()))?;
    }
    let workdir = non_empty(workdir);
    if let Some(workdir) = &workdir {
        process_input::check_workdir(workdir)
            .map_err(|e| ConvertError::invalid("workdir", e.to_string()))?;
    }
    let user = non_empty(user);
    if let Some(user) = &user {
        process_input::check_user(user)
            .map_err(|e| ConvertError::invalid("user", e.to_string()))?;
    }
    Ok(ExecOptions {
        env: env(vars),
        workdir,
        user,
    })
}

/// What [`exec_options`] read.
struct ExecOptions {
    env: Vec<EnvVar>,
    workdir: Option<String>,
    user: Option<String>,
}

fn env(env: Vec<proto::EnvVar>) -> Vec<EnvVar> {
    env.into_iter()
        .map(|var| EnvVar {
            name: var.name,
            value: var.value,
        })
        .collect()
}

fn container_spec(spec: proto::ContainerSpec) -> Result<ContainerSpec, ConvertError> {
    let uuid = uuid("spec.uuid", &spec.uuid)?;
    let ports = spec
        .ports
        .into_iter()
        .enumerate()
        .map(|(i, port)| port_binding(i, port))
        .collect::<Result<_, _>>()?;
    let restart_policy = restart_policy(spec.restart_policy, spec.restart_max_retries)?;
    let networks = networks(spec.networks)?;
    let engine = engine_options(
        spec.stop_signal,
        spec.stop_timeout_seconds,
        spec.init,
        spec.read_only,
        spec.extra_hosts,
        spec.healthcheck,
    )?;
    Ok(ContainerSpec {
        uuid,
        name: non_empty(spec.name),
        image: spec.image,
        command: spec.command,
        entrypoint: spec.entrypoint,
        env: env(spec.env),
        workdir: non_empty(spec.workdir),
        labels: spec
            .labels
            .into_iter()
            .map(|label| Label {
                key: label.key,
                value: label.value,
            })
            .collect(),
        hostname: non_empty(spec.hostname),
        ports,
        cpu_millis: spec.cpu_millis,
        memory_bytes: spec.memory_bytes,
        restart_policy,
        tty: spec.tty,
        open_stdin: spec.open_stdin,
        stdin_once: spec.open_stdin && spec.stdin_once,
        user: non_empty(spec.user),
        networks,
        engine,
    })
}

/// The engine options, by the rules the service's Docker door applies
/// (`nest_core::engine_options`): they become engine arguments.
fn engine_options(
    stop_signal: String,
    stop_timeout: Option<u32>,
    init: bool,
    read_only: bool,
    extra_hosts: Vec<proto::ExtraHost>,
    healthcheck: Option<proto::HealthCheck>,
) -> Result<EngineOptions, ConvertError> {
    EngineOptions {
        stop_signal: non_empty(stop_signal),
        stop_timeout,
        init,
        read_only,
        extra_hosts: extra_hosts
            .into_iter()
            .map(|h| (h.host, h.address))
            .collect(),
        healthcheck: healthcheck.map(|h| HealthCheck {
            test: h.test,
            interval_ns: h.interval_ns,
            timeout_ns: h.timeout_ns,
            start_period_ns: h.start_period_ns,
            retries: h.retries,
        }),
    }
    .checked()
    .map_err(|(field, e)| {
        let field = match field {
            OptionField::StopSignal => "spec.stop_signal".to_owned(),
            OptionField::StopTimeout => "spec.stop_timeout_seconds".to_owned(),
            OptionField::ExtraHosts(None) => "spec.extra_hosts".to_owned(),
            OptionField::ExtraHosts(Some(i)) => format!("spec.extra_hosts[{i}]"),
            OptionField::Healthcheck => "spec.healthcheck".to_owned(),
        };
        ConvertError::invalid(field, e.to_string())
    })
}

/// The networks a container joins: at most [`MAX_NETWORKS`], each once,
/// each with at most [`MAX_ALIASES`] aliases that are plain names (they
/// become engine arguments).
fn networks(
    networks: Vec<proto::NetworkAttachment>,
) -> Result<Vec<NetworkAttachment>, ConvertError> {
    if networks.len() > MAX_NETWORKS {
        return Err(ConvertError::invalid(
            "spec.networks",
            format!(
                "names {} networks; at most {MAX_NETWORKS} are allowed",
                networks.len()
            ),
        ));
    }
    let mut read: Vec<NetworkAttachment> = Vec::with_capacity(networks.len());
    for (i, attachment) in networks.into_iter().enumerate() {
        let field = |name: &str| format!("spec.networks[{i}].{name}");
        let network = NetworkId::parse(&attachment.network_id)
            .map_err(|err| ConvertError::invalid(field("network_id"), err.to_string()))?;
        if let Some(first) = read.iter().position(|n| n.network == network) {
            return Err(ConvertError::invalid(
                field("network_id"),
                format!("repeats spec.networks[{first}]; a container joins a network once"),
            ));
        }
        if attachment.aliases.len() > MAX_ALIASES {
            return Err(ConvertError::invalid(
                field("aliases"),
                format!(
                    "holds {} aliases; at most {MAX_ALIASES} are allowed",
                    attachment.aliases.len()
                ),
            ));
        }
        let aliases = attachment
            .aliases
            .iter()
            .enumerate()
            .map(|(j, alias)| {
                NetworkAlias::parse(alias).map_err(|err| {
                    ConvertError::invalid(
                        format!("spec.networks[{i}].aliases[{j}]"),
                        err.to_string(),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        read.push(NetworkAttachment { network, aliases });
    }
    Ok(read)
}

fn port_binding(i: usize, port: proto::PortBinding) -> Result<PortBinding, ConvertError> {
    let field = |name: &str| format!("spec.ports[{i}].{name}");
    let container_port = u16::try_from(port.container_port)
        .ok()
        .and_then(NonZeroU16::new)
        .ok_or_else(|| {
            ConvertError::invalid(
                field("container_port"),
                format!("{} is outside 1..=65535", port.container_port),
            )
        })?;
    let host_port = u16::try_from(port.host_port).ok().ok_or_else(|| {
        ConvertError::invalid(
            field("host_port"),
            format!("{} is outside 0..=65535", port.host_port),
        )
    })?;
    let host_ip = match non_empty(port.host_ip) {
        None => None,
        Some(ip) => Some(ip.parse().map_err(|source| ConvertError::Address {
            field: field("host_ip"),
            value: ip.clone(),
            source,
        })?),
    };
    let protocol = match proto::Protocol::try_from(port.protocol) {
        Ok(proto::Protocol::Tcp) => Protocol::Tcp,
        Ok(proto::Protocol::Udp) => Protocol::Udp,
        Err(unknown) => {
            return Err(ConvertError::invalid(
                field("protocol"),
                format!("unknown protocol {}", unknown.0),
            ));
        }
    };
    Ok(PortBinding {
        host_ip,
        host_port,
        container_port,
        protocol,
    })
}

/// The restart policy; retries only make sense with on-failure, and the
/// engine refuses them otherwise.
fn restart_policy(policy: i32, max_retries: u32) -> Result<RestartPolicy, ConvertError> {
    let policy = proto::RestartPolicy::try_from(policy).map_err(|unknown| {
        ConvertError::invalid(
            "spec.restart_policy",
            format!("unknown policy {}", unknown.0),
        )
    })?;
    if max_retries != 0 && policy != proto::RestartPolicy::OnFailure {
        return Err(ConvertError::invalid(
            "spec.restart_max_retries",
            "is only allowed with RESTART_POLICY_ON_FAILURE",
        ));
    }
    Ok(match policy {
        proto::RestartPolicy::No => RestartPolicy::No,
        proto::RestartPolicy::Always => RestartPolicy::Always,
        proto::RestartPolicy::OnFailure => RestartPolicy::OnFailure { max_retries },
        proto::RestartPolicy::UnlessStopped => RestartPolicy::UnlessStopped,
    })
}

fn stream_open(kind: stream_open::Kind) -> Result<StreamOpen, ConvertError> {
    Ok(match kind {
        stream_open::Kind::Logs(l) => {
            let since = since(l.since)?;
            StreamOpen::Logs(LogsRequest {
                uuid: uuid("uuid", &l.uuid)?,
                stdout: l.stdout,
                stderr: l.stderr,
                tail: l.tail,
                since,
                timestamps: l.timestamps,
                follow: l.follow,
            })
        }
        stream_open::Kind::Exec(e) => {
            // A size only matters on a terminal, and 0 × 0 leaves the
            // engine's default.
            let size = if e.tty && (e.width, e.height) != (0, 0) {
                Some(terminal_size(e.width, e.height)?)
            } else {
                None
            };
            let ExecOptions { env, workdir, user } = exec_options(e.env, e.workdir, e.user)?;
            StreamOpen::Exec(ExecStream {
                uuid: uuid("uuid", &e.uuid)?,
                command: e.command,
                tty: e.tty,
                stdin: e.stdin,
                env,
                workdir,
                user,
                size,
            })
        }
        stream_open::Kind::Attach(a) => StreamOpen::Attach(AttachStream {
            uuid: uuid("uuid", &a.uuid)?,
            stdin: a.stdin,
            stdout: a.stdout,
            stderr: a.stderr,
            logs: a.logs,
        }),
        stream_open::Kind::LoadImage(_) => StreamOpen::LoadImage,
    })
}

/// Unix seconds, 0 for "from the start". How far ahead the engine can
/// look is the Docker module's to check.
fn since(seconds: i64) -> Result<Option<SystemTime>, ConvertError> {
    if seconds == 0 {
        return Ok(None);
    }
    u64::try_from(seconds)
        .ok()
        .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)))
        .map(Some)
        .ok_or_else(|| ConvertError::invalid("since", format!("{seconds} is outside 0..=2^31-1")))
}

fn terminal_size(width: u32, height: u32) -> Result<TerminalSize, ConvertError> {
    let dimension = |field: &str, value: u32| {
        u16::try_from(value)
            .ok()
            .and_then(NonZeroU16::new)
            .ok_or_else(|| ConvertError::invalid(field, format!("{value} is outside 1..=65535")))
    };
    Ok(TerminalSize {
        width: dimension("width", width)?,
        height: dimension("height", height)?,
    })
}

fn stream_input(kind: stream_input::Kind) -> Result<StreamInput, ConvertError> {
    Ok(match kind {
        stream_input::Kind::Stdin(data) => StreamInput::Stdin(data),
        stream_input::Kind::Resize(size) => {
            StreamInput::Resize(terminal_size(size.width, size.height)?)
        }
        stream_input::Kind::CloseStdin(_) => StreamInput::CloseStdin,
        stream_input::Kind::Cancel(_) => StreamInput::Cancel,
    })
}

#[cfg(test)]
mod tests {
    use nest_core::process::error_chain;

    use super::*;

    fn command_message(kind: Option<command::Kind>) -> proto::RelayMessage {
        proto::RelayMessage {
            kind: Some(relay_message::Kind::Command(proto::CommandRequest {
                command_id: 7,
                request_id: "req-0f3c1c3e-2b7a-4d7e-9a52-0d1f3c2b1a00".to_owned(),
                timeout_ms: 1500,
                command: Some(proto::Command { kind }),
            })),
        }
    }

    fn read_command(kind: Option<command::Kind>) -> CommandRequest {
        match relay_message(command_message(kind)) {
            Some(Inbound::Command(request)) => request,
            other => panic!("expected a command, got {other:?}"),
        }
    }

    /// The message the service would see for a refused command.
    fn refusal(kind: command::Kind) -> String {
        match read_command(Some(kind)).command {
            Err(err) => {
                assert_eq!(err.kind(), ErrorKind::Invalid);
                error_chain(&err)
            }
            Ok(command) => panic!("expected a refusal, got {command:?}"),
        }
    }

    fn wire_spec() -> proto::ContainerSpec {
        proto::ContainerSpec {
            uuid: "c1".to_owned(),
            image: "busybox:1".to_owned(),
            ..Default::default()
        }
    }

    fn create(spec: proto::ContainerSpec) -> command::Kind {
        command::Kind::Create(proto::CreateContainer {
            spec: Some(spec),
            start: true,
            pull_missing: false,
        })
    }

    #[test]
    fn the_envelope_is_read_even_when_the_command_is_not() {
        let request = read_command(None);
        assert_eq!(request.id, CommandId(7));
        assert_eq!(
            request.request_id.as_ref().map(RequestId::as_str),
            Some("req-0f3c1c3e-2b7a-4d7e-9a52-0d1f3c2b1a00")
        );
        assert_eq!(request.timeout, Duration::from_millis(1500));
        let err = request.command.expect_err("no command");
        assert_eq!(err.to_string(), "command is empty");
        assert_eq!(err.kind(), ErrorKind::Invalid);
    }

    #[test]
    fn a_request_id_of_another_shape_is_dropped_not_refused() {
        let mut message = command_message(Some(command::Kind::Ping(proto::Ping {})));
        if let Some(relay_message::Kind::Command(request)) = &mut message.kind {
            request.request_id = "not-a-request-id".to_owned();
        }
        let Some(Inbound::Command(request)) = relay_message(message) else {
            panic!("expected a command");
        };
        assert!(request.request_id.is_none());
        assert!(matches!(request.command, Ok(Command::Ping)));
    }

    #[test]
    fn a_full_spec_keeps_every_field() {
        let spec = proto::ContainerSpec {
            uuid: "c1".to_owned(),
            name: "web".to_owned(),
            image: "busybox:1".to_owned(),
            command: vec!["sleep".to_owned(), "1".to_owned()],
            entrypoint: vec!["/bin/sh".to_owned()],
            env: vec![proto::EnvVar {
                name: "A".to_owned(),
                value: "b".to_owned(),
            }],
            workdir: "/srv".to_owned(),
            labels: vec![proto::Label {
                key: "team".to_owned(),
                value: "blue".to_owned(),
            }],
            hostname: "h".to_owned(),
            ports: vec![proto::PortBinding {
                host_ip: "127.0.0.1".to_owned(),
                host_port: 0,
                container_port: 53,
                protocol: proto::Protocol::Udp as i32,
            }],
            cpu_millis: 1500,
            memory_bytes: 1 << 26,
            restart_policy: proto::RestartPolicy::OnFailure as i32,
            restart_max_retries: 5,
            tty: true,
            open_stdin: true,
            user: "nobody".to_owned(),
            stdin_once: true,
            networks: vec![proto::NetworkAttachment {
                network_id: NET_A.to_owned(),
                aliases: vec!["db".to_owned(), "db.internal".to_owned()],
            }],
            stop_signal: "int".to_owned(),
            stop_timeout_seconds: Some(3),
            init: true,
            read_only: true,
            extra_hosts: vec![proto::ExtraHost {
                host: "gw".to_owned(),
                address: "host-gateway".to_owned(),
            }],
            healthcheck: Some(proto::HealthCheck {
                test: vec!["CMD-SHELL".to_owned(), "test -f /ready".to_owned()],
                interval_ns: 1_000_000_000,
                timeout_ns: 0,
                start_period_ns: 0,
                retries: 3,
            }),
        };
        let Ok(Command::Create(create)) = read_command(Some(create(spec))).command else {
            panic!("expected a create");
        };
        assert!(create.start && !create.pull_missing);
        let spec = create.spec;
        assert_eq!(spec.uuid.as_str(), "c1");
        assert_eq!(spec.name.as_deref(), Some("web"));
        assert_eq!(spec.command, ["sleep", "1"]);
        assert_eq!(spec.entrypoint, ["/bin/sh"]);
        assert_eq!(spec.env[0].name, "A");
        assert_eq!(spec.workdir.as_deref(), Some("/srv"));
        assert_eq!(spec.labels[0].key, "team");
        assert_eq!(spec.hostname.as_deref(), Some("h"));
        assert_eq!(
            spec.ports,
            [PortBinding {
                host_ip: Some([127, 0, 0, 1].into()),
                host_port: 0,
                container_port: NonZeroU16::new(53).expect("non-zero"),
                protocol: Protocol::Udp,
            }]
        );
        assert_eq!((spec.cpu_millis, spec.memory_bytes), (1500, 1 << 26));
        assert_eq!(
            spec.restart_policy,
            RestartPolicy::OnFailure { max_retries: 5 }
        );
        assert!(spec.tty && spec.open_stdin && spec.stdin_once);
        assert_eq!(spec.user.as_deref(), Some("nobody"));
        assert_eq!(spec.networks.len(), 1);
        assert_eq!(spec.networks[0].network.as_str(), NET_A);
        let aliases: Vec<&str> = spec.networks[0]
            .aliases
            .iter()
            .map(NetworkAlias::as_str)
            .collect();
        assert_eq!(aliases, ["db", "db.internal"]);
        assert_eq!(
            spec.engine,
            EngineOptions {
                stop_signal: Some("SIGINT".to_owned()),
                stop_timeout: Some(3),
                init: true,
                read_only: true,
                extra_hosts: vec![("gw".to_owned(), "host-gateway".to_owned())],
                healthcheck: Some(HealthCheck {
                    test: vec!["CMD-SHELL".to_owned(), "test -f /ready".to_owned()],
                    interval_ns: 1_000_000_000,
                    timeout_ns: 0,
                    start_period_ns: 0,
                    retries: 3,
                }),
            }
        );
    }

    #[test]
    fn engine_options_are_checked_as_the_service_checks_them() {
        let read = |spec: proto::ContainerSpec| read_command(Some(create(spec))).command;
        let bad = [
            proto::ContainerSpec {
                stop_signal: "TERM;reboot".to_owned(),
                ..wire_spec()
            },
            proto::ContainerSpec {
                stop_timeout_seconds: Some(nest_core::engine_options::MAX_STOP_TIMEOUT_SECONDS + 1),
                ..wire_spec()
            },
            proto::ContainerSpec {
                healthcheck: Some(proto::HealthCheck {
                    test: vec!["SHELL".to_owned(), "x".to_owned()],
                    ..Default::default()
                }),
                ..wire_spec()
            },
            proto::ContainerSpec {
                extra_hosts: vec![proto::ExtraHost {
                    host: "db".to_owned(),
                    address: "10.0.0.1 --privileged".to_owned(),
                }],
                ..wire_spec()
            },
            proto::ContainerSpec {
                extra_hosts: (0..=nest_core::engine_options::MAX_EXTRA_HOSTS)
                    .map(|i| proto::ExtraHost {
                        host: format!("h{i}"),
                        address: "10.0.0.1".to_owned(),
                    })
                    .collect(),
                ..wire_spec()
            },
        ];
        for spec in bad {
            assert!(
                matches!(read(spec.clone()), Err(ref e) if e.kind() == ErrorKind::Invalid),
                "{spec:?}"
            );
        }
        let Ok(Command::Create(create)) = read(wire_spec()) else {
            panic!("expected a create");
        };
        assert_eq!(create.spec.engine, EngineOptions::default());
    }

    const NET_A: &str = "0123456789abcdef0123456789abcdef";
    const NET_B: &str = "fedcba9876543210fedcba9876543210";

    fn attachment(id: &str, aliases: &[&str]) -> proto::NetworkAttachment {
        proto::NetworkAttachment {
            network_id: id.to_owned(),
            aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    #[test]
    fn networks_keep_their_order_and_may_be_none() {
        let read = |networks| {
            let spec = proto::ContainerSpec {
                networks,
                ..wire_spec()
            };
            let Ok(Command::Create(create)) = read_command(Some(create(spec))).command else {
                panic!("expected a create");
            };
            create.spec.networks
        };
        assert!(read(vec![]).is_empty());
        let two = read(vec![attachment(NET_B, &[]), attachment(NET_A, &["web"])]);
        let ids: Vec<&str> = two.iter().map(|n| n.network.as_str()).collect();
        assert_eq!(ids, [NET_B, NET_A]);
        assert!(two[0].aliases.is_empty());
        assert_eq!(two[1].aliases[0].as_str(), "web");
        let most: Vec<_> = (0..MAX_NETWORKS)
            .map(|i| attachment(&format!("{i:032x}"), &[]))
            .collect();
        assert_eq!(read(most).len(), MAX_NETWORKS);
    }

    #[test]
    fn malformed_networks_are_refused_naming_the_field() {
        let with = |networks: Vec<proto::NetworkAttachment>| {
            refusal(create(proto::ContainerSpec {
                networks,
                ..wire_spec()
            }))
        };
        assert_eq!(
            with(vec![attachment(&NET_A.to_uppercase(), &[])]),
            "invalid spec.networks[0].network_id: must be exactly 32 lowercase hex digits"
        );
        assert_eq!(
            with(vec![attachment(NET_A, &[]), attachment("", &[])]),
            "invalid spec.networks[1].network_id: must be exactly 32 lowercase hex digits"
        );
        assert_eq!(
            with(vec![attachment(&format!("{NET_A}/x"), &[])]),
            "invalid spec.networks[0].network_id: must be exactly 32 lowercase hex digits"
        );
        assert_eq!(
            with(vec![
                attachment(NET_A, &[]),
                attachment(NET_B, &[]),
                attachment(NET_A, &["x"])
            ]),
            "invalid spec.networks[2].network_id: repeats spec.networks[0]; a container joins a network once"
        );
        let too_many: Vec<_> = (0..=MAX_NETWORKS)
            .map(|i| attachment(&format!("{i:032x}"), &[]))
            .collect();
        assert_eq!(
            with(too_many),
            "invalid spec.networks: names 9 networks; at most 8 are allowed"
        );
        let many_aliases: Vec<String> = (0..=MAX_ALIASES).map(|i| format!("a{i}")).collect();
        let many_aliases: Vec<&str> = many_aliases.iter().map(String::as_str).collect();
        assert_eq!(
            with(vec![attachment(NET_A, &many_aliases)]),
            "invalid spec.networks[0].aliases: holds 33 aliases; at most 32 are allowed"
        );
        assert_eq!(
            with(vec![attachment(NET_A, &["web", ""])]),
            "invalid spec.networks[0].aliases[1]: must not be empty"
        );
        assert_eq!(
            with(vec![attachment(NET_A, &["--privileged"])]),
            "invalid spec.networks[0].aliases[0]: must not start with '-'"
        );
        assert_eq!(
            with(vec![attachment(NET_A, &[".hidden"])]),
            "invalid spec.networks[0].aliases[0]: must not start with '.'"
        );
        assert_eq!(
            with(vec![attachment(NET_B, &[]), attachment(NET_A, &["a b"])]),
            "invalid spec.networks[1].aliases[0]: holds ' '; only ASCII letters, digits, '-', '_' and '.' are allowed"
        );
        assert_eq!(
            with(vec![attachment(NET_A, &["x/../y"])]),
            "invalid spec.networks[0].aliases[0]: holds '/'; only ASCII letters, digits, '-', '_' and '.' are allowed"
        );
        assert_eq!(
            with(vec![attachment(NET_A, &[&"a".repeat(254)])]),
            "invalid spec.networks[0].aliases[0]: is 254 characters long; at most 253 are allowed"
        );
    }

    #[test]
    fn empty_strings_mean_not_set() {
        let Ok(Command::Create(create)) = read_command(Some(create(wire_spec()))).command else {
            panic!("expected a create");
        };
        let spec = create.spec;
        assert_eq!(
            (spec.name, spec.workdir, spec.hostname, spec.user),
            (None, None, None, None)
        );
        assert_eq!(spec.restart_policy, RestartPolicy::No);
        let Ok(Command::Kill(kill)) =
            read_command(Some(command::Kind::Kill(proto::KillContainer {
                uuid: "c1".to_owned(),
                signal: String::new(),
            })))
            .command
        else {
            panic!("expected a kill");
        };
        assert_eq!(kill.signal, None);
        let Ok(Command::PullImage(pull)) =
            read_command(Some(command::Kind::PullImage(proto::PullImage {
                reference: "busybox".to_owned(),
                registry_auth: String::new(),
            })))
            .command
        else {
            panic!("expected a pull");
        };
        assert!(pull.registry_auth.is_none());
    }

    #[test]
    fn malformed_specs_are_refused_naming_the_field() {
        let with = |edit: fn(&mut proto::ContainerSpec)| {
            let mut spec = wire_spec();
            edit(&mut spec);
            refusal(create(spec))
        };
        assert_eq!(
            refusal(command::Kind::Create(proto::CreateContainer::default())),
            "invalid spec: is missing"
        );
        assert_eq!(
            with(|s| s.uuid = "../x".to_owned()),
            "invalid spec.uuid: holds '/'; only ASCII letters, digits, '-', '_' and '.' are allowed"
        );
        assert_eq!(
            with(|s| s.ports.push(proto::PortBinding::default())),
            "invalid spec.ports[0].container_port: 0 is outside 1..=65535"
        );
        assert_eq!(
            with(|s| s.ports.push(proto::PortBinding {
                container_port: 80,
                host_port: 70_000,
                ..Default::default()
            })),
            "invalid spec.ports[0].host_port: 70000 is outside 0..=65535"
        );
        assert!(
            with(|s| s.ports.push(proto::PortBinding {
                container_port: 80,
                host_ip: "local".to_owned(),
                ..Default::default()
            }))
            .starts_with("invalid spec.ports[0].host_ip: \"local\" is not an IP address")
        );
        assert_eq!(
            with(|s| s.ports.push(proto::PortBinding {
                container_port: 80,
                protocol: 7,
                ..Default::default()
            })),
            "invalid spec.ports[0].protocol: unknown protocol 7"
        );
        assert_eq!(
            with(|s| s.restart_policy = 9),
            "invalid spec.restart_policy: unknown policy 9"
        );
        assert_eq!(
            with(|s| s.restart_max_retries = 3),
            "invalid spec.restart_max_retries: is only allowed with RESTART_POLICY_ON_FAILURE"
        );
    }

    #[test]
    fn every_container_command_checks_its_uuid() {
        let bad = || String::new();
        let refused = [
            command::Kind::Start(proto::ContainerRef { uuid: bad() }),
            command::Kind::Stop(proto::StopContainer {
                uuid: bad(),
                timeout_seconds: None,
            }),
            command::Kind::Kill(proto::KillContainer {
                uuid: bad(),
                signal: String::new(),
            }),
            command::Kind::Pause(proto::ContainerRef { uuid: bad() }),
            command::Kind::Remove(proto::RemoveContainer {
                uuid: bad(),
                force: true,
            }),
            command::Kind::Top(proto::Top {
                uuid: bad(),
                ps_args: String::new(),
            }),
            command::Kind::Exec(proto::ExecCapture::default()),
            command::Kind::Update(proto::UpdateResources::default()),
        ];
        for kind in refused {
            assert_eq!(refusal(kind), "invalid uuid: must not be empty");
        }
    }

    fn open(kind: Option<stream_open::Kind>) -> StreamOpenRequest {
        let message = proto::RelayMessage {
            kind: Some(relay_message::Kind::Stream(proto::StreamRequest {
                stream_id: 3,
                kind: Some(stream_request::Kind::Open(proto::StreamOpenRequest {
                    request_id: "req-0f3c1c3e-2b7a-4d7e-9a52-0d1f3c2b1a00".to_owned(),
                    open: Some(proto::StreamOpen { kind }),
                })),
            })),
        };
        match relay_message(message) {
            Some(Inbound::StreamOpen(open)) => open,
            other => panic!("expected a stream open, got {other:?}"),
        }
    }

    #[test]
    fn stream_opens_are_read_and_checked() {
        let refused = open(None);
        assert_eq!(refused.id, StreamId(3));
        assert!(refused.request_id.is_some());
        let err = refused.open.expect_err("nothing to stream");
        assert_eq!(
            err.to_string(),
            "invalid open: the stream open names nothing to stream"
        );

        let logs = |since| {
            open(Some(stream_open::Kind::Logs(proto::LogsStream {
                uuid: "c1".to_owned(),
                since,
                ..Default::default()
            })))
            .open
        };
        let Ok(StreamOpen::Logs(read)) = logs(0) else {
            panic!("expected logs");
        };
        assert_eq!(read.since, None);
        let Ok(StreamOpen::Logs(read)) = logs(60) else {
            panic!("expected logs");
        };
        assert_eq!(read.since, Some(UNIX_EPOCH + Duration::from_secs(60)));
        let err = logs(-1).expect_err("before the epoch");
        assert_eq!(err.to_string(), "invalid since: -1 is outside 0..=2^31-1");

        let exec = |tty, width, height| {
            open(Some(stream_open::Kind::Exec(proto::ExecStream {
                uuid: "c1".to_owned(),
                command: vec!["sh".to_owned()],
                tty,
                width,
                height,
                ..Default::default()
            })))
            .open
        };
        let Ok(StreamOpen::Exec(read)) = exec(true, 80, 24) else {
            panic!("expected an exec");
        };
        assert_eq!(
            read.size.map(|s| (s.width.get(), s.height.get())),
            Some((80, 24))
        );
        let Ok(StreamOpen::Exec(read)) = exec(false, 0, 70_000) else {
            panic!("a size without a terminal is ignored");
        };
        assert_eq!(read.size, None);
        let err = exec(true, 0, 24).expect_err("zero width");
        assert_eq!(err.to_string(), "invalid width: 0 is outside 1..=65535");
        assert!(matches!(
            open(Some(stream_open::Kind::LoadImage(
                proto::LoadImageStream {}
            )))
            .open,
            Ok(StreamOpen::LoadImage)
        ));
    }

    fn var(name: &str, value: &str) -> proto::EnvVar {
        proto::EnvVar {
            name: name.to_owned(),
            value: value.to_owned(),
        }
    }

    #[test]
    fn an_execs_environment_workdir_and_user_are_checked_at_the_door() {
        let stream = |env: Vec<proto::EnvVar>, workdir: &str, user: &str| {
            open(Some(stream_open::Kind::Exec(proto::ExecStream {
                uuid: "c1".to_owned(),
                command: vec!["id".to_owned()],
                env,
                workdir: workdir.to_owned(),
                user: user.to_owned(),
                ..Default::default()
            })))
            .open
        };
        let Ok(StreamOpen::Exec(read)) = stream(vec![var("A", "B")], "/tmp", "65534:65534") else {
            panic!("a good exec is read");
        };
        assert_eq!(
            (read.env, read.workdir.as_deref(), read.user.as_deref()),
            (
                vec![EnvVar {
                    name: "A".into(),
                    value: "B".into()
                }],
                Some("/tmp"),
                Some("65534:65534")
            )
        );
        let Ok(StreamOpen::Exec(read)) = stream(vec![], "", "") else {
            panic!("empty is the container's own");
        };
        assert_eq!((read.workdir, read.user), (None, None));

        let long_user = "u".repeat(256);
        let too_many: Vec<_> = (0..257).map(|i| var(&format!("V{i}"), "x")).collect();
        for (env, workdir, user, message) in [
            (
                vec![],
                "relative",
                "",
                "invalid workdir: must be an absolute path",
            ),
            (
                vec![],
                "/srv/../etc",
                "",
                "invalid workdir: must be a normalised path, without NUL, '.' or '..'",
            ),
            (
                vec![var("A", "x\0y")],
                "",
                "",
                "invalid env[0]: must not contain NUL",
            ),
            (
                vec![var("A", "1"), var("B=C", "1")],
                "",
                "",
                "invalid env[1]: \"B=C\" is not a variable name: it must be non-empty, \
                 without '=' or NUL",
            ),
            (
                too_many,
                "",
                "",
                "invalid env: at most 256 variables are allowed",
            ),
            (
                vec![],
                "",
                "root; rm -rf /",
                "invalid user: must be a name or uid[:gid] of at most 255 bytes, without \
                 spaces or control characters",
            ),
            (
                vec![],
                "",
                long_user.as_str(),
                "invalid user: must be a name or uid[:gid] of at most 255 bytes, without \
                 spaces or control characters",
            ),
        ] {
            let err = stream(env.clone(), workdir, user).expect_err("refused");
            assert_eq!(err.to_string(), message);
            // The captured exec is read by the same rules.
            let err = refusal(command::Kind::Exec(proto::ExecCapture {
                uuid: "c1".to_owned(),
                command: vec!["id".to_owned()],
                env,
                workdir: workdir.to_owned(),
                user: user.to_owned(),
            }));
            assert_eq!(err, message);
        }
    }

    #[test]
    fn stream_input_is_read_and_empty_messages_are_ignored() {
        let input = |kind| {
            relay_message(proto::RelayMessage {
                kind: Some(relay_message::Kind::Stream(proto::StreamRequest {
                    stream_id: 3,
                    kind: Some(stream_request::Kind::Input(proto::StreamInput { kind })),
                })),
            })
        };
        let Some(Inbound::StreamInput { stream, input: ok }) =
            input(Some(stream_input::Kind::Stdin(b"hi".to_vec())))
        else {
            panic!("expected input");
        };
        assert_eq!(stream, StreamId(3));
        assert_eq!(ok.expect("stdin"), StreamInput::Stdin(b"hi".to_vec()));
        let Some(Inbound::StreamInput { input: bad, .. }) =
            input(Some(stream_input::Kind::Resize(proto::Resize {
                width: 80,
                height: 0,
            })))
        else {
            panic!("expected input");
        };
        assert_eq!(
            bad.expect_err("zero height").to_string(),
            "invalid height: 0 is outside 1..=65535"
        );
        assert!(input(None).is_none());
        assert!(relay_message(proto::RelayMessage { kind: None }).is_none());
    }

    #[test]
    fn renewal_answers_keep_their_id_and_outcome() {
        let renewed = |outcome| {
            relay_message(proto::RelayMessage {
                kind: Some(relay_message::Kind::Renewed(proto::RenewResponse {
                    request_id: 4,
                    outcome,
                })),
            })
        };
        let Some(Inbound::Renewed {
            renewal_id,
            outcome: RenewOutcome::Refused(failure),
        }) = renewed(Some(renew_response::Outcome::Error(
            ErrorKind::Forbidden.error("no"),
        )))
        else {
            panic!("expected a refusal");
        };
        assert_eq!(renewal_id, 4);
        assert_eq!(failure, Failure::new(ErrorKind::Forbidden, "no"));
        assert!(matches!(
            renewed(None),
            Some(Inbound::Renewed {
                outcome: RenewOutcome::Empty,
                ..
            })
        ));
    }
}
