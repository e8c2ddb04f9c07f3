//! The container JSON the docker CLI reads: the `ps` summary and the
//! `inspect` document (§5). Docker's field names live here and nowhere
//! else. `Config`, `HostConfig` and `NetworkSettings` are always objects
//! (the CLI dereferences them, §1 #8).
//!
//! A container's Docker id begins with its Nest uuid without hyphens (32
//! hex digits), so `docker ps` and `GET /v1/containers` name it
//! recognisably; 32 more derived from the uuid make it as long as dockerd's
//! (64), which tools that check an id's form expect.
//! Published ports show the instance's address on the port's network,
//! never 0.0.0.0 (issue #8 item 4).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::app::ContainerInfo;
use crate::domain::{
    ContainerId, ContainerStatus, Health, NetworkAttachment, PublishedPort, RestartPolicyName,
};

/// The label that names the network a container's ports are published on
/// (the docker CLI refuses a network name in `-p`, §6).
pub const NETWORK_LABEL: &str = "nest.network";

/// A container's Docker id: its uuid's 32 hex digits, then the first 16
/// bytes of the uuid's SHA-256 in hex.
pub fn docker_id(id: ContainerId) -> String {
    use std::fmt::Write as _;
    let uuid = id.as_uuid();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, uuid.as_bytes());
    let mut text = uuid.simple().to_string();
    for byte in &digest.as_ref()[..16] {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// The container a full Docker id names (either form: the 64 digits
/// [`docker_id`] gives, or the uuid's 32); `None` for anything else.
pub fn parse_docker_id(text: &str) -> Option<ContainerId> {
    if !(text.len() == 32 || text.len() == 64) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let uuid = uuid::Uuid::try_parse(text.get(..32)?).ok()?;
    let id = ContainerId::parse(&uuid.hyphenated().to_string()).ok()?;
    (text.len() == 32 || docker_id(id) == text.to_ascii_lowercase()).then_some(id)
}

/// Docker's state word for a status.
pub fn state_word(status: ContainerStatus) -> &'static str {
    match status {
        ContainerStatus::Creating | ContainerStatus::Created => "created",
        ContainerStatus::Running => "running",
        ContainerStatus::Paused => "paused",
        ContainerStatus::Restarting => "restarting",
        ContainerStatus::Stopped => "exited",
        ContainerStatus::Deleting => "removing",
        ContainerStatus::Error | ContainerStatus::Unknown => "dead",
    }
}

/// The exit code Nest recorded in a stopped container's status reason
/// (see [`ContainerStatus::exit_code`]).
pub fn exit_code(status: ContainerStatus, reason: Option<&str>) -> i64 {
    status.exit_code(reason)
}

fn unix(rfc3339: &str) -> i64 {
    OffsetDateTime::parse(rfc3339, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .unwrap_or(0)
}

/// "2 minutes", as Docker's `HumanDuration` spells an age.
fn human_age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0 => "Less than a second".to_owned(),
        1 => "1 second".to_owned(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".to_owned(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".to_owned(),
        7200..=172_799 => format!("{} hours", s / 3600),
        172_800..=1_209_599 => format!("{} days", s / 86_400),
        1_209_600..=5_183_999 => format!("{} weeks", s / 604_800),
        5_184_000..=63_071_999 => format!("{} months", s / 2_592_000),
        _ => format!("{} years", s / 31_536_000),
    }
}

/// `State.Health` of a container with a healthcheck (`null` without one,
/// as dockerd leaves it out): the agent's last verdict, `starting` before
/// the first. The engine's probe log stays on the instance.
fn health_view(info: &ContainerInfo) -> Value {
    let c = &info.container;
    if c.spec
        .engine
        .healthcheck
        .as_ref()
        .is_none_or(|h| h.test.first().is_some_and(|t| t == "NONE"))
    {
        return Value::Null;
    }
    let health = c.health.unwrap_or(Health::Starting);
    json!({
        "Status": health.as_str(),
        "FailingStreak": 0,
        "Log": [],
    })
}

/// `docker ps`'s STATUS column, computed server-side (§5).
fn status_text(info: &ContainerInfo, now: i64) -> String {
    let c = &info.container;
    let since = now - unix(&c.updated_at);
    match c.status {
        ContainerStatus::Creating | ContainerStatus::Created => "Created".to_owned(),
        ContainerStatus::Running => match c.health {
            // As dockerd words it.
            Some(Health::Starting) => format!("Up {} (health: starting)", human_age(since)),
            Some(health) => format!("Up {} ({})", human_age(since), health.as_str()),
            None => format!("Up {}", human_age(since)),
        },
        ContainerStatus::Paused => format!("Up {} (Paused)", human_age(since)),
        ContainerStatus::Restarting => "Restarting".to_owned(),
        ContainerStatus::Stopped => format!(
            "Exited ({}) {} ago",
            exit_code(c.status, c.status_reason.as_deref()),
            human_age(since)
        ),
        ContainerStatus::Deleting => "Removal In Progress".to_owned(),
        ContainerStatus::Error | ContainerStatus::Unknown => "Dead".to_owned(),
    }
}

/// The address a port is published on: the instance's address on the
/// port's network (or the instance's default network); `None` until the
/// container is placed.
pub fn port_address<'a>(info: &'a ContainerInfo, port: &PublishedPort) -> Option<&'a str> {
    let network = port.network.as_ref().or(info.default_network.as_ref())?;
    info.addresses.get(network).map(String::as_str)
}

fn port_key(port: &PublishedPort) -> String {
    format!("{}/{}", port.container_port, port.protocol.as_str())
}

/// `NetworkSettings.Ports`: `{"22/tcp": [{"HostIp", "HostPort"}]}`.
fn port_map(info: &ContainerInfo) -> Value {
    let mut map = serde_json::Map::new();
    for port in &info.container.spec.ports {
        let binding = json!({
            "HostIp": port_address(info, port).unwrap_or_default(),
            "HostPort": port.host_port.to_string(),
        });
        if let Some(Value::Array(bindings)) = map.get_mut(&port_key(port)) {
            bindings.push(binding);
        } else {
            map.insert(port_key(port), json!([binding]));
        }
    }
    Value::Object(map)
}

/// `HostConfig.PortBindings`, as the tenant asked (no address).
fn port_bindings(info: &ContainerInfo) -> Value {
    let mut map = serde_json::Map::new();
    for port in &info.container.spec.ports {
        map.insert(
            port_key(port),
            json!([{"HostIp": "", "HostPort": port.host_port.to_string()}]),
        );
    }
    Value::Object(map)
}

/// A container's short id, which the engine also answers for on its
/// user-defined networks (docker-compose checks for it).
pub fn short_id(id: ContainerId) -> String {
    docker_id(id)[..12].to_owned()
}

/// The aliases a container answers to on one of its networks, as
/// `NetworkSettings.Networks.*.Aliases` lists them.
pub fn network_aliases(info: &ContainerInfo, attachment: &NetworkAttachment) -> Vec<String> {
    let mut aliases = attachment.aliases.clone();
    let short = short_id(info.container.id);
    if !aliases.contains(&short) {
        aliases.push(short);
    }
    aliases
}

/// `HostConfig.NetworkMode`: the primary user-defined network's name, or
/// `default`.
pub fn network_mode(info: &ContainerInfo) -> String {
    info.container
        .spec
        .networks
        .first()
        .and_then(|a| info.networks.iter().find(|n| n.id == a.network))
        .map_or_else(|| "default".to_owned(), |n| n.name.clone())
}

/// `NetworkSettings.Networks`: the user-defined networks the container
/// joined, then its instance's networks with their addresses (where its
/// published ports answer).
fn networks(info: &ContainerInfo) -> Value {
    let mut map = serde_json::Map::new();
    for attachment in &info.container.spec.networks {
        let Some(network) = info.networks.iter().find(|n| n.id == attachment.network) else {
            continue;
        };
        map.insert(
            network.name.clone(),
            json!({
                "NetworkID": network.id.hex(),
                "EndpointID": "",
                "Aliases": network_aliases(info, attachment),
                "DNSNames": network_aliases(info, attachment),
                "IPAddress": "",
                "IPPrefixLen": 0,
                "Gateway": "",
                "MacAddress": "",
                "Links": Value::Null,
                "IPAMConfig": Value::Null,
            }),
        );
    }
    for (network, address) in &info.addresses {
        if map.contains_key(network) {
            continue;
        }
        map.insert(
            network.clone(),
            json!({
                "NetworkID": network,
                "IPAddress": address,
                "Aliases": Value::Null,
            }),
        );
    }
    Value::Object(map)
}

fn labels(info: &ContainerInfo) -> BTreeMap<String, String> {
    let mut labels = info.container.spec.labels.clone();
    // The network label is kept as the ports' network; show it back.
    if let Some(network) = info
        .container
        .spec
        .ports
        .iter()
        .find_map(|p| p.network.clone())
    {
        labels.insert(NETWORK_LABEL.to_owned(), network);
    }
    labels
}

fn command_line(info: &ContainerInfo) -> String {
    let spec = &info.container.spec;
    spec.entrypoint
        .iter()
        .chain(spec.command.iter())
        .cloned()
        .collect::<Vec<_>>()
        .join(" ")
}

fn env_list(info: &ContainerInfo) -> Vec<String> {
    info.container
        .spec
        .environment
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

/// One row of `GET /containers/json`.
pub fn summary(info: &ContainerInfo, image: &str, now: i64) -> Value {
    let c = &info.container;
    let ports: Vec<Value> = c
        .spec
        .ports
        .iter()
        .map(|p| {
            let mut port = json!({
                "PrivatePort": p.container_port,
                "Type": p.protocol.as_str(),
            });
            if let Some(address) = port_address(info, p) {
                port["IP"] = json!(address);
                port["PublicPort"] = json!(p.host_port);
            }
            port
        })
        .collect();
    json!({
        "Id": docker_id(c.id),
        "Names": [format!("/{}", c.name)],
        "Image": image,
        "ImageID": c.spec.image,
        "Command": command_line(info),
        "Created": unix(&c.created_at),
        "Ports": ports,
        "Labels": labels(info),
        "State": state_word(c.status),
        "Status": status_text(info, now),
        "HostConfig": {"NetworkMode": network_mode(info)},
        "NetworkSettings": {"Networks": networks(info)},
        "Mounts": [],
    })
}

/// `GET /containers/{id}/json`.
pub fn inspect(info: &ContainerInfo, image: &str) -> Value {
    let c = &info.container;
    let spec = &c.spec;
    let status = c.status;
    let running = matches!(status, ContainerStatus::Running | ContainerStatus::Paused);
    let (started, finished) = match status {
        ContainerStatus::Running | ContainerStatus::Paused | ContainerStatus::Restarting => {
            (c.updated_at.clone(), "0001-01-01T00:00:00Z".to_owned())
        }
        ContainerStatus::Stopped | ContainerStatus::Error => {
            ("0001-01-01T00:00:00Z".to_owned(), c.updated_at.clone())
        }
        _ => (
            "0001-01-01T00:00:00Z".to_owned(),
            "0001-01-01T00:00:00Z".to_owned(),
        ),
    };
    let (policy, retries) = spec.restart_policy;
    let policy = match policy {
        RestartPolicyName::No => "no",
        RestartPolicyName::Always => "always",
        RestartPolicyName::OnFailure => "on-failure",
        RestartPolicyName::UnlessStopped => "unless-stopped",
    };
    let exposed: serde_json::Map<String, Value> = spec
        .ports
        .iter()
        .map(|p| (port_key(p), json!({})))
        .collect();
    let memory_bytes = spec.memory_mib.saturating_mul(1024 * 1024);
    // vCPUs as nano-CPUs; the spec holds at most 16 with one decimal.
    let nano_cpus = (spec.cpu * 1e9).round() as i64;
    let error = match status {
        ContainerStatus::Error | ContainerStatus::Unknown => {
            c.status_reason.clone().unwrap_or_default()
        }
        _ => String::new(),
    };
    json!({
        "Id": docker_id(c.id),
        "Created": c.created_at,
        "Path": spec.entrypoint.first().or(spec.command.first()).cloned().unwrap_or_default(),
        "Args": spec.entrypoint.iter().chain(spec.command.iter()).skip(1).cloned().collect::<Vec<_>>(),
        "State": {
            "Status": state_word(status),
            "Running": running,
            "Paused": status == ContainerStatus::Paused,
            "Restarting": status == ContainerStatus::Restarting,
            "OOMKilled": c.status_reason.as_deref().is_some_and(|r| r.contains("out of memory")),
            "Dead": matches!(status, ContainerStatus::Error | ContainerStatus::Unknown),
            "Pid": 0,
            "ExitCode": exit_code(status, c.status_reason.as_deref()),
            "Error": error,
            "StartedAt": started,
            "FinishedAt": finished,
            "Health": health_view(info),
        },
        "Image": spec.image,
        "Name": format!("/{}", c.name),
        "RestartCount": 0,
        "Driver": "nest",
        "Platform": "linux",
        "Mounts": [],
        "Config": {
            "Hostname": spec.hostname.clone().unwrap_or_else(|| docker_id(c.id)[..12].to_owned()),
            "User": spec.user.clone().unwrap_or_default(),
            "AttachStdin": false,
            "AttachStdout": false,
            "AttachStderr": false,
            "ExposedPorts": exposed,
            "Tty": spec.tty,
            "OpenStdin": spec.interactive,
            "StdinOnce": spec.stdin_once,
            "Env": env_list(info),
            "Cmd": if spec.command.is_empty() { Value::Null } else { json!(spec.command) },
            "Image": image,
            "WorkingDir": spec.workdir.clone().unwrap_or_default(),
            "Entrypoint": if spec.entrypoint.is_empty() { Value::Null } else { json!(spec.entrypoint) },
            "Labels": labels(info),
            "StopSignal": spec.engine.stop_signal.clone().map_or(Value::Null, Value::String),
            "StopTimeout": spec.engine.stop_timeout,
            "Healthcheck": spec.engine.healthcheck.as_ref().map(|h| json!({
                "Test": h.test, "Interval": h.interval_ns, "Timeout": h.timeout_ns,
                "StartPeriod": h.start_period_ns, "Retries": h.retries,
            })),
        },
        "HostConfig": {
            "Init": spec.engine.init.then_some(true),
            "ReadonlyRootfs": spec.engine.read_only,
            "ExtraHosts": spec.engine.extra_hosts.iter().map(|(h, a)| format!("{h}:{a}")).collect::<Vec<_>>(),
            "AutoRemove": spec.auto_remove,
            "PortBindings": port_bindings(info),
            "RestartPolicy": {"Name": policy, "MaximumRetryCount": retries},
            "Memory": memory_bytes,
            "NanoCpus": nano_cpus,
            "NetworkMode": network_mode(info),
            "Privileged": false,
            // docker-compose shows the logs only of containers with a log
            // driver; the agent's engine keeps them as json-file.
            "LogConfig": {"Type": "json-file", "Config": {}},
        },
        "NetworkSettings": {
            "Ports": port_map(info),
            "Networks": networks(info),
            "IPAddress": "",
        },
        "Nest": {
            "Uuid": c.id.to_string(),
            "Status": c.status.as_zun(),
            "StatusReason": c.status_reason,
            "Instance": c.instance_id.as_ref().map(ToString::to_string),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_ids_are_64_hex_digits_that_begin_with_the_uuid() {
        let id = ContainerId::generate();
        let docker = docker_id(id);
        assert_eq!(docker.len(), 64);
        assert!(
            docker
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        );
        assert!(docker.starts_with(&id.as_uuid().simple().to_string()));
        assert_eq!(docker_id(id), docker, "the same id every time");
        assert_eq!(parse_docker_id(&docker), Some(id));
        assert_eq!(parse_docker_id(&docker.to_ascii_uppercase()), Some(id));
        assert_eq!(parse_docker_id(&docker[..32]), Some(id));
        // The uuid with another tail, or a cut one, names nothing.
        let forged = format!("{}{}", &docker[..32], "0".repeat(32));
        assert_eq!(parse_docker_id(&forged), None);
        assert_eq!(parse_docker_id(&docker[..40]), None);
        assert_eq!(parse_docker_id(&"g".repeat(64)), None);
        assert_eq!(parse_docker_id(""), None);
    }

    #[test]
    fn ages_read_like_dockers() {
        assert_eq!(human_age(0), "Less than a second");
        assert_eq!(human_age(42), "42 seconds");
        assert_eq!(human_age(90), "About a minute");
        assert_eq!(human_age(600), "10 minutes");
        assert_eq!(human_age(3 * 3600), "3 hours");
    }
}
