//! Checks a [`ContainerSpec`] and turns it into the engine's create body.
//!
//! Everything here is pure: no engine calls, so a refused spec provably
//! changes nothing. Engine-side limits the agent cannot know (more CPUs than
//! the instance has, a host port already taken) are left to the engine,
//! whose 400/409 answers are classified in `error.rs`.

use std::collections::HashMap;
use std::net::IpAddr;

use bollard::models::{
    ContainerCreateBody, HostConfig, PortBinding as EnginePortBinding, PortMap, RestartPolicy,
    RestartPolicyNameEnum,
};
use nest_core::ids::InstanceId;
use nest_relay::proto::{self, ContainerSpec};

use super::error::DockerError;
use super::{
    LABEL_CONTAINER_NAME, LABEL_CONTAINER_UUID, LABEL_INSTANCE_ID, LABEL_MANAGED_BY, MANAGED_BY,
    RESERVED_LABEL_PREFIX,
};

/// Longest container uuid accepted; Nest's uuids are 36 characters.
pub const MAX_UUID_LEN: usize = 64;
/// Smallest CPU limit in millicores; the engine refuses less than 0.01 CPU.
pub const MIN_CPU_MILLIS: u64 = 10;
/// Largest CPU limit in millicores (1024 vCPUs); more is surely a mistake.
pub const MAX_CPU_MILLIS: u64 = 1024 * 1000;
/// Smallest memory limit in bytes; the engine refuses less than 6 MiB.
pub const MIN_MEMORY_BYTES: u64 = 6 * 1024 * 1024;
/// Largest memory limit in bytes (1 PiB); more is surely a mistake.
pub const MAX_MEMORY_BYTES: u64 = 1 << 50;

/// Checks a uuid that names a container.
///
/// The uuid ends up in the engine's container name and in URL paths, so it
/// is held to the engine's name alphabet; this also keeps `/` and `?` out of
/// request paths.
pub(crate) fn check_uuid(field: &str, uuid: &str) -> Result<(), DockerError> {
    if uuid.is_empty() {
        return Err(DockerError::invalid(field, "must not be empty"));
    }
    if uuid.len() > MAX_UUID_LEN {
        return Err(DockerError::invalid(
            field,
            format!(
                "is {} characters long; at most {MAX_UUID_LEN} are allowed",
                uuid.len()
            ),
        ));
    }
    if let Some(bad) = uuid
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(DockerError::invalid(
            field,
            format!("holds {bad:?}; only ASCII letters, digits, '-', '_' and '.' are allowed"),
        ));
    }
    Ok(())
}

/// Checks an image reference enough to keep it a single, printable token.
pub(crate) fn check_image(field: &str, image: &str) -> Result<(), DockerError> {
    if image.is_empty() {
        return Err(DockerError::invalid(field, "must not be empty"));
    }
    if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(DockerError::invalid(
            field,
            "must not hold whitespace or control characters",
        ));
    }
    Ok(())
}

/// Turns `EnvVar`s into the engine's `NAME=value` strings.
pub(crate) fn env_strings(field: &str, env: &[proto::EnvVar]) -> Result<Vec<String>, DockerError> {
    env.iter()
        .enumerate()
        .map(|(i, var)| {
            if var.name.is_empty() || var.name.contains(['=', '\0']) {
                return Err(DockerError::invalid(
                    format!("{field}[{i}].name"),
                    "must be non-empty and hold neither '=' nor NUL",
                ));
            }
            Ok(format!("{}={}", var.name, var.value))
        })
        .collect()
}

/// Checks a working directory: empty (the image's) or absolute, as the
/// engine requires.
pub(crate) fn check_workdir(field: &str, workdir: &str) -> Result<(), DockerError> {
    if !workdir.is_empty() && !workdir.starts_with('/') {
        return Err(DockerError::invalid(field, "must be an absolute path"));
    }
    Ok(())
}

/// The engine's port key, `<port>/<proto>`.
pub(crate) fn port_key(port: u32, protocol: proto::Protocol) -> String {
    let proto = match protocol {
        proto::Protocol::Tcp => "tcp",
        proto::Protocol::Udp => "udp",
    };
    format!("{port}/{proto}")
}

/// Checks `spec` and builds the create body with Nest's ownership labels.
pub(crate) fn create_body(
    spec: &ContainerSpec,
    instance_id: &InstanceId,
) -> Result<ContainerCreateBody, DockerError> {
    check_uuid("spec.uuid", &spec.uuid)?;
    check_image("spec.image", &spec.image)?;
    check_workdir("spec.workdir", &spec.workdir)?;
    let env = env_strings("spec.env", &spec.env)?;
    let labels = labels(spec, instance_id)?;
    let (exposed_ports, port_bindings) = ports(&spec.ports)?;
    let nano_cpus = nano_cpus(spec.cpu_millis)?;
    let memory = memory(spec.memory_bytes)?;
    let restart_policy = restart_policy(spec.restart_policy, spec.restart_max_retries)?;

    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let non_empty_list = |v: &[String]| (!v.is_empty()).then(|| v.to_vec());
    Ok(ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: non_empty_list(&spec.command),
        entrypoint: non_empty_list(&spec.entrypoint),
        env: (!env.is_empty()).then_some(env),
        working_dir: non_empty(&spec.workdir),
        hostname: non_empty(&spec.hostname),
        user: non_empty(&spec.user),
        tty: Some(spec.tty),
        // `attach` with stdin needs the container's stdin open and attached;
        // StdinOnce stays false so that one client leaving does not close
        // stdin for the next one.
        open_stdin: Some(spec.open_stdin),
        attach_stdin: Some(spec.open_stdin),
        stdin_once: Some(false),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        labels: Some(labels),
        exposed_ports: (!exposed_ports.is_empty()).then_some(exposed_ports),
        host_config: Some(HostConfig {
            port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
            nano_cpus,
            memory,
            restart_policy: Some(restart_policy),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The spec's labels plus Nest's own; the spec may not use Nest's prefix.
fn labels(
    spec: &ContainerSpec,
    instance_id: &InstanceId,
) -> Result<HashMap<String, String>, DockerError> {
    let mut labels = HashMap::with_capacity(spec.labels.len() + 4);
    for (i, label) in spec.labels.iter().enumerate() {
        if label.key.is_empty() {
            return Err(DockerError::invalid(
                format!("spec.labels[{i}].key"),
                "must not be empty",
            ));
        }
        if label.key.starts_with(RESERVED_LABEL_PREFIX) {
            return Err(DockerError::invalid(
                format!("spec.labels[{i}].key"),
                format!(
                    "{:?} is under the reserved prefix {RESERVED_LABEL_PREFIX:?}",
                    label.key
                ),
            ));
        }
        labels.insert(label.key.clone(), label.value.clone());
    }
    labels.insert(LABEL_CONTAINER_UUID.to_owned(), spec.uuid.clone());
    labels.insert(LABEL_INSTANCE_ID.to_owned(), instance_id.to_string());
    labels.insert(LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned());
    // The engine name is always `nest-<uuid>`, so the human name is kept
    // where `docker ps --format` can still show it.
    if !spec.name.is_empty() {
        labels.insert(LABEL_CONTAINER_NAME.to_owned(), spec.name.clone());
    }
    Ok(labels)
}

/// Exposed ports and their bindings, keyed `<port>/<proto>`.
fn ports(ports: &[proto::PortBinding]) -> Result<(Vec<String>, PortMap), DockerError> {
    let mut exposed = Vec::new();
    let mut bindings = PortMap::new();
    for (i, port) in ports.iter().enumerate() {
        let field = |name: &str| format!("spec.ports[{i}].{name}");
        if !(1..=65535).contains(&port.container_port) {
            return Err(DockerError::invalid(
                field("container_port"),
                format!("{} is outside 1..=65535", port.container_port),
            ));
        }
        if port.host_port > 65535 {
            return Err(DockerError::invalid(
                field("host_port"),
                format!("{} is outside 0..=65535", port.host_port),
            ));
        }
        if !port.host_ip.is_empty() && port.host_ip.parse::<IpAddr>().is_err() {
            return Err(DockerError::invalid(
                field("host_ip"),
                format!("{:?} is not an IP address", port.host_ip),
            ));
        }
        let protocol = proto::Protocol::try_from(port.protocol).map_err(|unknown| {
            DockerError::invalid(field("protocol"), format!("unknown protocol {}", unknown.0))
        })?;
        let key = port_key(port.container_port, protocol);
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        let binding = EnginePortBinding {
            host_ip: Some(port.host_ip.clone()),
            // An empty host port is how the engine is asked to choose one.
            host_port: Some(if port.host_port == 0 {
                String::new()
            } else {
                port.host_port.to_string()
            }),
        };
        bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(binding);
    }
    Ok((exposed, bindings))
}

/// `cpu_millis` as the engine's NanoCPUs; 0 means unlimited.
pub(super) fn nano_cpus(cpu_millis: u64) -> Result<Option<i64>, DockerError> {
    if cpu_millis == 0 {
        return Ok(None);
    }
    if !(MIN_CPU_MILLIS..=MAX_CPU_MILLIS).contains(&cpu_millis) {
        return Err(DockerError::invalid(
            "spec.cpu_millis",
            format!(
                "{cpu_millis} is outside {MIN_CPU_MILLIS}..={MAX_CPU_MILLIS} (or 0 for unlimited)"
            ),
        ));
    }
    // Bounded just above, so neither the product nor the conversion saturates.
    let nanos = cpu_millis.saturating_mul(1_000_000);
    Ok(Some(i64::try_from(nanos).unwrap_or(i64::MAX)))
}

/// `memory_bytes` as the engine's Memory; 0 means unlimited.
pub(super) fn memory(memory_bytes: u64) -> Result<Option<i64>, DockerError> {
    if memory_bytes == 0 {
        return Ok(None);
    }
    if !(MIN_MEMORY_BYTES..=MAX_MEMORY_BYTES).contains(&memory_bytes) {
        return Err(DockerError::invalid(
            "spec.memory_bytes",
            format!(
                "{memory_bytes} is outside {MIN_MEMORY_BYTES}..={MAX_MEMORY_BYTES} (or 0 for unlimited)"
            ),
        ));
    }
    // Bounded just above, so the conversion cannot saturate.
    Ok(Some(i64::try_from(memory_bytes).unwrap_or(i64::MAX)))
}

/// The restart policy; retries only make sense with on-failure, and the
/// engine refuses them otherwise.
fn restart_policy(policy: i32, max_retries: u32) -> Result<RestartPolicy, DockerError> {
    let policy = proto::RestartPolicy::try_from(policy).map_err(|unknown| {
        DockerError::invalid(
            "spec.restart_policy",
            format!("unknown policy {}", unknown.0),
        )
    })?;
    if max_retries != 0 && policy != proto::RestartPolicy::OnFailure {
        return Err(DockerError::invalid(
            "spec.restart_max_retries",
            "is only allowed with RESTART_POLICY_ON_FAILURE",
        ));
    }
    let name = match policy {
        proto::RestartPolicy::No => RestartPolicyNameEnum::NO,
        proto::RestartPolicy::Always => RestartPolicyNameEnum::ALWAYS,
        proto::RestartPolicy::OnFailure => RestartPolicyNameEnum::ON_FAILURE,
        proto::RestartPolicy::UnlessStopped => RestartPolicyNameEnum::UNLESS_STOPPED,
    };
    Ok(RestartPolicy {
        name: Some(name),
        maximum_retry_count: (policy == proto::RestartPolicy::OnFailure)
            .then_some(i64::from(max_retries)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::container_name;
    use nest_core::ErrorKind;

    fn instance() -> InstanceId {
        InstanceId::parse("i-1").expect("valid instance id")
    }

    fn spec() -> ContainerSpec {
        ContainerSpec {
            uuid: "c1".to_owned(),
            image: "busybox:1".to_owned(),
            ..Default::default()
        }
    }

    fn refused(spec: &ContainerSpec) -> String {
        match create_body(spec, &instance()) {
            Err(err @ DockerError::Invalid { .. }) => {
                assert_eq!(err.kind(), ErrorKind::Invalid);
                err.to_string()
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn ownership_labels_are_added() {
        let body = create_body(&spec(), &instance()).expect("valid spec");
        let labels = body.labels.expect("labels are always set");
        assert_eq!(labels[LABEL_CONTAINER_UUID], "c1");
        assert_eq!(labels[LABEL_INSTANCE_ID], "i-1");
        assert_eq!(labels[LABEL_MANAGED_BY], MANAGED_BY);
        assert_eq!(container_name("c1"), "nest-c1");
    }

    #[test]
    fn reserved_label_prefix_is_refused() {
        let mut s = spec();
        s.labels.push(proto::Label {
            key: "nest.container.uuid".to_owned(),
            value: "other".to_owned(),
        });
        assert!(refused(&s).contains("spec.labels[0].key"));
    }

    #[test]
    fn bad_uuid_image_and_ports_are_refused() {
        let mut s = spec();
        s.uuid = "../x".to_owned();
        assert!(refused(&s).contains("spec.uuid"));
        let mut s = spec();
        s.image = String::new();
        assert!(refused(&s).contains("spec.image"));
        let mut s = spec();
        s.ports.push(proto::PortBinding {
            container_port: 0,
            ..Default::default()
        });
        assert!(refused(&s).contains("container_port"));
        let mut s = spec();
        s.ports.push(proto::PortBinding {
            container_port: 80,
            host_port: 70000,
            ..Default::default()
        });
        assert!(refused(&s).contains("host_port"));
        let mut s = spec();
        s.cpu_millis = 1;
        assert!(refused(&s).contains("cpu_millis"));
        let mut s = spec();
        s.memory_bytes = 1024;
        assert!(refused(&s).contains("memory_bytes"));
        let mut s = spec();
        s.restart_max_retries = 3;
        assert!(refused(&s).contains("restart_max_retries"));
    }

    #[test]
    fn resources_ports_and_restart_are_mapped() {
        let mut s = spec();
        s.cpu_millis = 1500;
        s.memory_bytes = 64 * 1024 * 1024;
        s.restart_policy = proto::RestartPolicy::OnFailure as i32;
        s.restart_max_retries = 5;
        s.ports.push(proto::PortBinding {
            host_ip: "127.0.0.1".to_owned(),
            host_port: 0,
            container_port: 53,
            protocol: proto::Protocol::Udp as i32,
        });
        let body = create_body(&s, &instance()).expect("valid spec");
        let host = body.host_config.expect("host config is always set");
        assert_eq!(host.nano_cpus, Some(1_500_000_000));
        assert_eq!(host.memory, Some(64 * 1024 * 1024));
        let restart = host.restart_policy.expect("restart policy is always set");
        assert_eq!(restart.name, Some(RestartPolicyNameEnum::ON_FAILURE));
        assert_eq!(restart.maximum_retry_count, Some(5));
        assert_eq!(body.exposed_ports, Some(vec!["53/udp".to_owned()]));
        let bindings = host.port_bindings.expect("one binding");
        let binding = &bindings["53/udp"].as_ref().expect("bound")[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(binding.host_port.as_deref(), Some(""));
    }
}
