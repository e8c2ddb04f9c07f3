//! Checks a [`ContainerSpec`] against what the engine and Nest's
//! ownership labels allow, and turns it into the engine's create body.
//!
//! The spec's shape (uuid, ports, restart policy) was checked when it was
//! read off the wire; what is checked here are the engine's and the
//! agent's own rules: image references, paths, environment names, label
//! keys, resource limits. Everything is pure: no engine calls, so a
//! refused spec provably changes nothing. Engine-side limits the agent
//! cannot know (more CPUs than the instance has, a host port already
//! taken) are left to the engine, whose 400/409 answers are classified in
//! `error.rs`.

use std::collections::HashMap;
use std::num::NonZeroU16;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, NetworkingConfig,
    PortBinding as EnginePortBinding, PortMap, RestartPolicy as EngineRestartPolicy,
    RestartPolicyNameEnum,
};
use nest_core::ids::InstanceId;

use super::error::DockerError;
use super::networks::network_name;
use super::{
    LABEL_CONTAINER_NAME, LABEL_CONTAINER_UUID, LABEL_INSTANCE_ID, LABEL_MANAGED_BY, MANAGED_BY,
    RESERVED_LABEL_PREFIX,
};
use crate::model::{
    ContainerSpec, EnvVar, MAX_ALIASES, MAX_NETWORKS, NetworkAlias, NetworkAttachment, PortBinding,
    Protocol, RestartPolicy,
};

/// Smallest CPU limit in millicores; the engine refuses less than 0.01 CPU.
pub const MIN_CPU_MILLIS: u64 = 10;
/// Largest CPU limit in millicores (1024 vCPUs); more is surely a mistake.
pub const MAX_CPU_MILLIS: u64 = 1024 * 1000;
/// Smallest memory limit in bytes; the engine refuses less than 6 MiB.
pub const MIN_MEMORY_BYTES: u64 = 6 * 1024 * 1024;
/// Largest memory limit in bytes (1 PiB); more is surely a mistake.
pub const MAX_MEMORY_BYTES: u64 = 1 << 50;

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

/// Turns [`EnvVar`]s into the engine's `NAME=value` strings.
pub(crate) fn env_strings(field: &str, env: &[EnvVar]) -> Result<Vec<String>, DockerError> {
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

/// Checks a working directory: the image's (`None`) or absolute, as the
/// engine requires.
pub(crate) fn check_workdir(field: &str, workdir: Option<&str>) -> Result<(), DockerError> {
    if workdir.is_some_and(|w| !w.starts_with('/')) {
        return Err(DockerError::invalid(field, "must be an absolute path"));
    }
    Ok(())
}

/// The engine's port key, `<port>/<protocol>`.
pub(crate) fn port_key(port: NonZeroU16, protocol: Protocol) -> String {
    let name = match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    };
    format!("{port}/{name}")
}

/// Checks `spec` and builds the create body with Nest's ownership labels.
pub(crate) fn create_body(
    spec: &ContainerSpec,
    instance_id: &InstanceId,
) -> Result<ContainerCreateBody, DockerError> {
    check_image("spec.image", &spec.image)?;
    check_workdir("spec.workdir", spec.workdir.as_deref())?;
    let env = env_strings("spec.env", &spec.env)?;
    let labels = labels(spec, instance_id)?;
    let (exposed_ports, port_bindings) = ports(&spec.ports);
    let nano_cpus = nano_cpus(spec.cpu_millis)?;
    let memory = memory(spec.memory_bytes)?;
    check_networks(&spec.networks)?;
    // The engine (API 1.41) takes one endpoint at create; the others are
    // connected before the container starts.
    let primary = spec.networks.first();

    let non_empty_list = |v: &[String]| (!v.is_empty()).then(|| v.to_vec());
    Ok(ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: non_empty_list(&spec.command),
        entrypoint: non_empty_list(&spec.entrypoint),
        env: (!env.is_empty()).then_some(env),
        working_dir: spec.workdir.clone(),
        hostname: spec.hostname.clone(),
        user: spec.user.clone(),
        tty: Some(spec.tty),
        // `attach` with stdin needs the container's stdin open and attached;
        // StdinOnce stays false unless asked (`docker run -i`), so that one
        // client leaving does not close stdin for the next one.
        open_stdin: Some(spec.open_stdin),
        attach_stdin: Some(spec.open_stdin),
        stdin_once: Some(spec.stdin_once),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        labels: Some(labels),
        exposed_ports: (!exposed_ports.is_empty()).then_some(exposed_ports),
        stop_signal: spec.engine.stop_signal.clone(),
        stop_timeout: spec.engine.stop_timeout.map(i64::from),
        healthcheck: spec.engine.healthcheck.as_ref().map(|h| {
            let nanos = |n: u64| Some(i64::try_from(n).unwrap_or(i64::MAX));
            HealthConfig {
                test: (!h.test.is_empty()).then(|| h.test.clone()),
                interval: nanos(h.interval_ns),
                timeout: nanos(h.timeout_ns),
                start_period: nanos(h.start_period_ns),
                retries: Some(i64::from(h.retries)),
                ..Default::default()
            }
        }),
        host_config: Some(HostConfig {
            port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
            nano_cpus,
            memory,
            restart_policy: Some(restart_policy(spec.restart_policy)),
            network_mode: primary.map(|n| network_name(&n.network)),
            init: spec.engine.init.then_some(true),
            readonly_rootfs: spec.engine.read_only.then_some(true),
            extra_hosts: (!spec.engine.extra_hosts.is_empty()).then(|| {
                spec.engine
                    .extra_hosts
                    .iter()
                    .map(|(host, address)| format!("{host}:{address}"))
                    .collect()
            }),
            ..Default::default()
        }),
        networking_config: primary.map(|n| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network_name(&n.network),
                endpoint(spec, n),
            )])),
        }),
        ..Default::default()
    })
}

/// Checks what the wire conversion checks of the networks as a list (the
/// model's fields are open): how many, each once, how many aliases.
fn check_networks(networks: &[NetworkAttachment]) -> Result<(), DockerError> {
    if networks.len() > MAX_NETWORKS {
        return Err(DockerError::invalid(
            "spec.networks",
            format!(
                "names {} networks; at most {MAX_NETWORKS} are allowed",
                networks.len()
            ),
        ));
    }
    for (i, attachment) in networks.iter().enumerate() {
        if let Some(first) = networks[..i]
            .iter()
            .position(|n| n.network == attachment.network)
        {
            return Err(DockerError::invalid(
                format!("spec.networks[{i}].network_id"),
                format!("repeats spec.networks[{first}]; a container joins a network once"),
            ));
        }
        if attachment.aliases.len() > MAX_ALIASES {
            return Err(DockerError::invalid(
                format!("spec.networks[{i}].aliases"),
                format!(
                    "holds {} aliases; at most {MAX_ALIASES} are allowed",
                    attachment.aliases.len()
                ),
            ));
        }
    }
    Ok(())
}

/// The container's endpoint on one network: its aliases there, and its
/// spec's name, so that the network resolves the name the tenant gave it
/// as the engine does for a named container (the engine name `nest-<uuid>`
/// resolves by itself). A name that is not a valid alias is left out.
pub(crate) fn endpoint(spec: &ContainerSpec, attachment: &NetworkAttachment) -> EndpointSettings {
    let mut aliases: Vec<String> = attachment
        .aliases
        .iter()
        .map(|a| a.as_str().to_owned())
        .collect();
    if let Some(name) = spec
        .name
        .as_deref()
        .and_then(|n| NetworkAlias::parse(n).ok())
        && !aliases.iter().any(|a| a == name.as_str())
    {
        aliases.push(name.as_str().to_owned());
    }
    EndpointSettings {
        aliases: (!aliases.is_empty()).then_some(aliases),
        ..Default::default()
    }
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
    labels.insert(LABEL_CONTAINER_UUID.to_owned(), spec.uuid.to_string());
    labels.insert(LABEL_INSTANCE_ID.to_owned(), instance_id.to_string());
    labels.insert(LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned());
    // The engine name is always `nest-<uuid>`, so the human name is kept
    // where `docker ps --format` can still show it.
    if let Some(name) = &spec.name {
        labels.insert(LABEL_CONTAINER_NAME.to_owned(), name.clone());
    }
    Ok(labels)
}

/// Exposed ports and their bindings, keyed `<port>/<protocol>`.
fn ports(ports: &[PortBinding]) -> (Vec<String>, PortMap) {
    let mut exposed = Vec::new();
    let mut bindings = PortMap::new();
    for port in ports {
        let key = port_key(port.container_port, port.protocol);
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        let binding = EnginePortBinding {
            // An empty host IP binds every address.
            host_ip: Some(port.host_ip.map(|ip| ip.to_string()).unwrap_or_default()),
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
    (exposed, bindings)
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

/// The engine's restart policy; only on-failure carries a retry count.
fn restart_policy(policy: RestartPolicy) -> EngineRestartPolicy {
    let (name, maximum_retry_count) = match policy {
        RestartPolicy::No => (RestartPolicyNameEnum::NO, None),
        RestartPolicy::Always => (RestartPolicyNameEnum::ALWAYS, None),
        RestartPolicy::OnFailure { max_retries } => (
            RestartPolicyNameEnum::ON_FAILURE,
            Some(i64::from(max_retries)),
        ),
        RestartPolicy::UnlessStopped => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
    };
    EngineRestartPolicy {
        name: Some(name),
        maximum_retry_count,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::docker::container_name;
    use crate::model::{ContainerUuid, Label};
    use nest_core::ErrorKind;

    fn instance() -> InstanceId {
        InstanceId::parse("i-1").expect("valid instance id")
    }

    fn uuid() -> ContainerUuid {
        ContainerUuid::parse("c1").expect("valid uuid")
    }

    fn spec() -> ContainerSpec {
        ContainerSpec::new(uuid(), "busybox:1")
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
        assert_eq!(container_name(&uuid()), "nest-c1");
    }

    #[test]
    fn reserved_label_prefix_is_refused() {
        let mut s = spec();
        s.labels.push(Label {
            key: "nest.container.uuid".to_owned(),
            value: "other".to_owned(),
        });
        assert!(refused(&s).contains("spec.labels[0].key"));
    }

    #[test]
    fn bad_image_workdir_env_and_limits_are_refused() {
        let mut s = spec();
        s.image = String::new();
        assert!(refused(&s).contains("spec.image"));
        let mut s = spec();
        s.workdir = Some("relative".to_owned());
        assert!(refused(&s).contains("spec.workdir"));
        let mut s = spec();
        s.env.push(EnvVar {
            name: "A=B".to_owned(),
            value: String::new(),
        });
        assert!(refused(&s).contains("spec.env[0].name"));
        let mut s = spec();
        s.cpu_millis = 1;
        assert!(refused(&s).contains("cpu_millis"));
        let mut s = spec();
        s.memory_bytes = 1024;
        assert!(refused(&s).contains("memory_bytes"));
    }

    #[test]
    fn resources_ports_and_restart_are_mapped() {
        let mut s = spec();
        s.cpu_millis = 1500;
        s.memory_bytes = 64 * 1024 * 1024;
        s.restart_policy = RestartPolicy::OnFailure { max_retries: 5 };
        s.ports.push(PortBinding {
            host_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            host_port: 0,
            container_port: NonZeroU16::new(53).expect("non-zero"),
            protocol: Protocol::Udp,
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

    fn attachment(id: &str, aliases: &[&str]) -> NetworkAttachment {
        NetworkAttachment {
            network: crate::model::NetworkId::parse(id).expect("valid id"),
            aliases: aliases
                .iter()
                .map(|a| NetworkAlias::parse(a).expect("valid alias"))
                .collect(),
        }
    }

    const NET_A: &str = "0123456789abcdef0123456789abcdef";
    const NET_B: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn no_networks_means_the_default_bridge() {
        let body = create_body(&spec(), &instance()).expect("valid spec");
        assert_eq!(body.networking_config, None);
        let host = body.host_config.expect("host config is always set");
        assert_eq!(host.network_mode, None);
    }

    #[test]
    fn the_first_network_is_the_mode_and_carries_aliases_and_the_name() {
        let mut s = spec();
        s.name = Some("web".to_owned());
        s.networks = vec![attachment(NET_A, &["www", "web"]), attachment(NET_B, &[])];
        let body = create_body(&s, &instance()).expect("valid spec");
        let primary = format!("nest-{NET_A}");
        let host = body.host_config.expect("host config is always set");
        assert_eq!(host.network_mode.as_deref(), Some(primary.as_str()));
        let endpoints = body
            .networking_config
            .and_then(|n| n.endpoints_config)
            .expect("one endpoint");
        assert_eq!(endpoints.len(), 1, "{endpoints:?}");
        assert_eq!(
            endpoints[&primary].aliases.as_deref(),
            Some(&["www".to_owned(), "web".to_owned()][..])
        );
        // The name becomes an alias where the spec has none.
        let second = endpoint(&s, &s.networks[1]);
        assert_eq!(second.aliases, Some(vec!["web".to_owned()]));
        // A name the resolver could not answer is left out.
        s.name = Some("-x".to_owned());
        assert_eq!(endpoint(&s, &s.networks[1]).aliases, None);
    }

    #[test]
    fn too_many_or_repeated_networks_are_refused() {
        let mut s = spec();
        s.networks = (0..=MAX_NETWORKS)
            .map(|i| attachment(&format!("{i:032x}"), &[]))
            .collect();
        assert!(refused(&s).contains("spec.networks:"), "{}", refused(&s));
        s.networks = vec![
            attachment(NET_A, &[]),
            attachment(NET_B, &[]),
            attachment(NET_B, &[]),
        ];
        assert_eq!(
            refused(&s),
            "invalid spec.networks[2].network_id: repeats spec.networks[1]; a container joins a network once"
        );
        let aliases: Vec<String> = (0..=MAX_ALIASES).map(|i| format!("a{i}")).collect();
        let aliases: Vec<&str> = aliases.iter().map(String::as_str).collect();
        s.networks = vec![attachment(NET_A, &aliases)];
        assert!(refused(&s).contains("spec.networks[0].aliases"));
    }

    #[test]
    fn unset_strings_stay_unset_and_policies_without_retries_carry_none() {
        let body = create_body(&spec(), &instance()).expect("valid spec");
        assert_eq!(
            (body.working_dir, body.hostname, body.user, body.cmd),
            (None, None, None, None)
        );
        let host = body.host_config.expect("host config is always set");
        let restart = host.restart_policy.expect("restart policy is always set");
        assert_eq!(restart.name, Some(RestartPolicyNameEnum::NO));
        assert_eq!(restart.maximum_retry_count, None);
    }
}
