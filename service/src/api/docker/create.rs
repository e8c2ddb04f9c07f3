//! `POST /containers/create`'s body (§5) and its translation into Nest's
//! container spec. The CLI sends every field, mostly zero-valued; a field
//! Nest cannot honour is refused with a 400 naming it only when it holds
//! something other than its neutral value, so that `docker run` works and
//! `docker run --privileged` says why it does not.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::error::DockerError;
use super::views::NETWORK_LABEL;
use crate::api::zun::create::{
    MAX_CPU, MAX_MEMORY_MIB, MIN_CPU, MIN_MEMORY_MIB, check_argv, check_environment,
    check_host_name, check_labels, check_name, check_user, check_workdir,
};
use crate::app::NewContainer;
use nest_core::engine_options::OptionField;

use crate::domain::{
    ContainerSpec, EngineOptions, HealthCheck, PortProtocol, PublishedPort, RestartPolicyName,
};

/// Memory of a container created without `-m`, MiB (the Zun default).
const DEFAULT_MEMORY_MIB: u64 = crate::api::zun::create::DEFAULT_MEMORY_MIB;
/// vCPUs of a container created without `--cpus`: a tenth, so that
/// containers that ask for nothing pack densely, as they do on one engine.
const DEFAULT_CPU: f64 = 0.1;

/// The fields of the create body Nest reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateBody {
    hostname: Option<String>,
    user: Option<String>,
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    exposed_ports: Option<BTreeMap<String, Value>>,
    tty: bool,
    open_stdin: bool,
    stdin_once: bool,
    env: Option<Vec<String>>,
    cmd: Option<StringOrList>,
    image: Option<String>,
    working_dir: Option<String>,
    entrypoint: Option<StringOrList>,
    labels: Option<BTreeMap<String, String>>,
    volumes: Option<BTreeMap<String, Value>>,
    host_config: Option<HostConfig>,
    networking_config: Option<NetworkingConfig>,
    stop_signal: Option<String>,
    stop_timeout: Option<i64>,
    healthcheck: Option<HealthcheckBody>,
    /// Everything else: refused unless neutral.
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

/// `Healthcheck` (`docker run --health-cmd/--health-interval/...`); the
/// durations are nanoseconds.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct HealthcheckBody {
    test: Option<Vec<String>>,
    // docker-compose sends null for what the file leaves out.
    interval: Option<i64>,
    timeout: Option<i64>,
    start_period: Option<i64>,
    retries: Option<i64>,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

/// Docker accepts `Cmd` and `Entrypoint` as a string or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct HostConfig {
    port_bindings: Option<BTreeMap<String, Option<Vec<PortBinding>>>>,
    publish_all_ports: bool,
    auto_remove: bool,
    restart_policy: Option<RestartPolicy>,
    memory: i64,
    nano_cpus: i64,
    cpu_shares: i64,
    network_mode: Option<String>,
    console_size: Option<Vec<u32>>,
    init: Option<bool>,
    readonly_rootfs: bool,
    extra_hosts: Option<Vec<String>>,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PortBinding {
    host_ip: String,
    host_port: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct RestartPolicy {
    name: String,
    maximum_retry_count: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct NetworkingConfig {
    endpoints_config: Option<BTreeMap<String, Value>>,
}

/// Whether a value is what the CLI sends for "not set".
pub(super) fn is_neutral(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.iter().all(is_neutral),
        Value::Object(map) => map.values().all(is_neutral),
    }
}

/// Fields whose non-zero value the CLI sends by default, with that value.
fn is_default(field: &str, value: &Value) -> bool {
    match field {
        // `-1` is "the kernel's default".
        "MemorySwappiness" => value.as_i64() == Some(-1),
        // The CLI's own default log driver settings.
        "LogConfig" => is_neutral(value),
        _ => false,
    }
}

pub(super) fn refuse_unsupported(
    scope: &str,
    rest: &BTreeMap<String, Value>,
) -> Result<(), DockerError> {
    for (field, value) in rest {
        if is_neutral(value) || is_default(field, value) {
            continue;
        }
        let name = if scope.is_empty() {
            field.clone()
        } else {
            format!("{scope}.{field}")
        };
        return Err(DockerError::Invalid(format!(
            "{name} is not supported by Nest; leave it unset (see docs/docker.md for what Nest runs)"
        )));
    }
    Ok(())
}

fn invalid(e: impl std::fmt::Display) -> DockerError {
    DockerError::Invalid(e.to_string())
}

/// A port key of `ExposedPorts`/`PortBindings`: `22/tcp`.
fn parse_port_key(key: &str) -> Result<(u16, PortProtocol), DockerError> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let protocol = PortProtocol::parse(proto)
        .ok_or_else(|| invalid(format!("port {key}: Nest publishes tcp and udp ports only")))?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| invalid(format!("port {key}: not a port number")))?;
    Ok((port, protocol))
}

/// What the body asks for, as Nest's create; `name` is the `?name=`
/// query. The image is resolved by the caller.
///
/// # Errors
/// [`DockerError::Invalid`] naming the field that cannot be honoured.
pub fn parse(body: CreateBody, name: Option<String>) -> Result<Parsed, DockerError> {
    refuse_unsupported("", &body.rest)?;
    if body.volumes.as_ref().is_some_and(|v| !v.is_empty()) {
        return Err(invalid(
            "Volumes (docker run -v) are not supported by Nest: containers keep their data in their own filesystem",
        ));
    }
    let host = body.host_config.unwrap_or_default();
    refuse_unsupported("HostConfig", &host.rest)?;
    let image = body
        .image
        .filter(|i| !i.is_empty())
        .ok_or_else(|| invalid("Image is required"))?;
    if let Some(name) = &name {
        check_name("name", name).map_err(invalid)?;
    }
    let command = body.cmd.map(StringOrList::into_vec).unwrap_or_default();
    let entrypoint = body
        .entrypoint
        .map(StringOrList::into_vec)
        .unwrap_or_default();
    check_argv("Cmd", &command).map_err(invalid)?;
    check_argv("Entrypoint", &entrypoint).map_err(invalid)?;
    let mut environment = BTreeMap::new();
    for entry in body.env.unwrap_or_default() {
        let (key, value) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
        environment.insert(key.to_owned(), value.to_owned());
    }
    check_environment(&environment).map_err(invalid)?;
    let mut labels = body.labels.unwrap_or_default();
    // The network whose address ports are published on (§6).
    let network = labels.remove(NETWORK_LABEL);
    if let Some(network) = &network {
        check_host_name("Labels.nest.network", network).map_err(invalid)?;
    }
    check_labels(&labels).map_err(invalid)?;
    if let Some(workdir) = body.working_dir.as_ref().filter(|w| !w.is_empty()) {
        check_workdir(workdir).map_err(invalid)?;
    }
    let hostname = body.hostname.filter(|h| !h.is_empty());
    if let Some(hostname) = &hostname {
        check_host_name("Hostname", hostname).map_err(invalid)?;
    }
    let user = body.user.filter(|u| !u.is_empty());
    if let Some(user) = &user {
        check_user("User", user).map_err(invalid)?;
    }
    let networks = requested_networks(
        host.network_mode.as_deref(),
        body.networking_config
            .and_then(|n| n.endpoints_config)
            .unwrap_or_default(),
    )?;
    if host.publish_all_ports {
        return Err(invalid(
            "PublishAllPorts (-P) is not supported by Nest: publish each port with -p HOST:CONTAINER",
        ));
    }
    let mut ports = Vec::new();
    for (key, bindings) in host.port_bindings.unwrap_or_default() {
        let (container_port, protocol) = parse_port_key(&key)?;
        for binding in bindings.unwrap_or_default() {
            if !matches!(binding.host_ip.as_str(), "" | "0.0.0.0" | "::") {
                return Err(DockerError::Invalid(format!(
                    "port {key}: a host address ({}) cannot be chosen; Nest publishes on the \
                     instance's address on the network named by the label {NETWORK_LABEL}",
                    binding.host_ip
                )));
            }
            let host_port = binding.host_port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                invalid(format!(
                    "port {key}: Nest needs the host port (-p HOST:{container_port}); it does not pick one"
                ))
            })?;
            ports.push(PublishedPort {
                network: network.clone(),
                host_port,
                container_port,
                protocol,
            });
        }
    }
    for key in body.exposed_ports.unwrap_or_default().keys() {
        parse_port_key(key)?;
    }
    let memory_mib = match host.memory {
        0 => DEFAULT_MEMORY_MIB,
        bytes if bytes < 0 => return Err(invalid("Memory must not be negative")),
        bytes => {
            let mib = u64::try_from(bytes)
                .unwrap_or(u64::MAX)
                .div_ceil(1024 * 1024);
            if !(MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&mib) {
                return Err(DockerError::Invalid(format!(
                    "Memory: {mib} MiB is outside what Nest runs ({MIN_MEMORY_MIB} to {MAX_MEMORY_MIB} MiB)"
                )));
            }
            mib
        }
    };
    if host.cpu_shares < 0 {
        return Err(invalid("CpuShares must not be negative"));
    }
    let cpu = match host.nano_cpus {
        0 => DEFAULT_CPU,
        n if n < 0 => return Err(invalid("NanoCpus must not be negative")),
        n => {
            // One decimal, as Zun's cpu.
            let cpu = (n as f64 / 1e9 * 10.0).round() / 10.0;
            if !(MIN_CPU..=MAX_CPU).contains(&cpu) {
                return Err(DockerError::Invalid(format!(
                    "NanoCpus: {cpu} CPUs is outside what Nest runs ({MIN_CPU} to {MAX_CPU})"
                )));
            }
            cpu
        }
    };
    let restart = host.restart_policy.unwrap_or_default();
    let retries = u32::try_from(restart.maximum_retry_count)
        .map_err(|_| invalid("RestartPolicy.MaximumRetryCount must be 0 or more"))?;
    let policy = match restart.name.as_str() {
        "" | "no" => RestartPolicyName::No,
        "always" => RestartPolicyName::Always,
        "on-failure" => RestartPolicyName::OnFailure,
        "unless-stopped" => RestartPolicyName::UnlessStopped,
        other => {
            return Err(DockerError::Invalid(format!(
                "invalid restart policy {other:?}"
            )));
        }
    };
    if host.auto_remove && policy != RestartPolicyName::No {
        return Err(invalid(
            "conflicting options: cannot specify both --restart and --rm",
        ));
    }
    let engine = engine_options(
        body.stop_signal,
        body.stop_timeout,
        host.init.unwrap_or(false),
        host.readonly_rootfs,
        host.extra_hosts.unwrap_or_default(),
        body.healthcheck.map(healthcheck).transpose()?.flatten(),
    )?;
    // The initial terminal size is set on attach; the rest of the attach
    // flags describe the client's own session.
    let _ = (
        body.attach_stdin,
        body.attach_stdout,
        body.attach_stderr,
        host.console_size,
    );
    Ok(Parsed {
        new: NewContainer {
            name,
            spec: ContainerSpec {
                image: image.clone(),
                command,
                entrypoint,
                environment,
                labels,
                workdir: body.working_dir.filter(|w| !w.is_empty()),
                hostname,
                user,
                cpu,
                memory_mib,
                restart_policy: (policy, retries),
                interactive: body.open_stdin,
                stdin_once: body.open_stdin && body.stdin_once,
                tty: body.tty,
                auto_remove: host.auto_remove,
                ports,
                hints: BTreeMap::new(),
                networks: Vec::new(),
                engine,
            },
        },
        image,
        networks,
    })
}

/// `StopSignal`, `StopTimeout`, `HostConfig.Init`, `ReadonlyRootfs`,
/// `ExtraHosts` (`host:address`, or `host=address` as newer clients write
/// it) and the healthcheck, by the rules the agent applies too.
fn engine_options(
    stop_signal: Option<String>,
    stop_timeout: Option<i64>,
    init: bool,
    read_only: bool,
    extra_hosts: Vec<String>,
    healthcheck: Option<HealthCheck>,
) -> Result<EngineOptions, DockerError> {
    let stop_timeout = stop_timeout
        .map(|t| u32::try_from(t).map_err(|_| invalid("StopTimeout: must be 0 or more seconds")))
        .transpose()?;
    let extra_hosts = extra_hosts
        .iter()
        .map(|entry| {
            entry
                .find([':', '='])
                .map(|i| (entry[..i].to_owned(), entry[i + 1..].to_owned()))
                .ok_or_else(|| {
                    DockerError::Invalid(format!("ExtraHosts: {entry:?} is not HOST:ADDRESS"))
                })
        })
        .collect::<Result<_, _>>()?;
    EngineOptions {
        stop_signal: stop_signal.filter(|s| !s.is_empty()),
        stop_timeout,
        init,
        read_only,
        extra_hosts,
        healthcheck,
    }
    .checked()
    .map_err(|(field, e)| {
        let field = match field {
            OptionField::StopSignal => "StopSignal",
            OptionField::StopTimeout => "StopTimeout",
            OptionField::ExtraHosts(_) => "ExtraHosts",
            OptionField::Healthcheck => "Healthcheck",
        };
        DockerError::Invalid(format!("{field}: {e}"))
    })
}

/// `Healthcheck`'s fields; `None` when it sets nothing (the image's). The
/// rules are [`engine_options`]'s.
fn healthcheck(body: HealthcheckBody) -> Result<Option<HealthCheck>, DockerError> {
    refuse_unsupported("Healthcheck", &body.rest)?;
    let nanos = |field: &str, n: Option<i64>| {
        let n = n.unwrap_or(0);
        u64::try_from(n)
            .map_err(|_| DockerError::Invalid(format!("Healthcheck.{field} must not be negative")))
    };
    let check = HealthCheck {
        test: body.test.unwrap_or_default(),
        interval_ns: nanos("Interval", body.interval)?,
        timeout_ns: nanos("Timeout", body.timeout)?,
        start_period_ns: nanos("StartPeriod", body.start_period)?,
        retries: u32::try_from(body.retries.unwrap_or(0))
            .map_err(|_| invalid("Healthcheck.Retries must be 0 or more"))?,
    };
    Ok((check != HealthCheck::default()).then_some(check))
}

/// What a create body asks for: the container, the image reference to
/// resolve, and the user-defined networks to resolve (by name or id).
#[derive(Debug)]
pub struct Parsed {
    /// The container, its image and networks not resolved yet.
    pub new: NewContainer,
    /// The image reference as given.
    pub image: String,
    /// The networks it joins, the primary one first.
    pub networks: Vec<RequestedNetwork>,
}

/// A network a create names, with the container's aliases on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestedNetwork {
    /// Its name or id, as given.
    pub reference: String,
    /// `--network-alias`.
    pub aliases: Vec<String>,
}

/// One entry of `NetworkingConfig.EndpointsConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct EndpointSettings {
    aliases: Option<Vec<String>>,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

/// Most aliases a container has on one network.
pub const MAX_ALIASES: usize = 16;

/// Checks a network alias: a DNS-style name, as the agent also checks.
pub fn check_alias(alias: &str) -> Result<(), DockerError> {
    let valid = (1..=253).contains(&alias.len())
        && !alias.starts_with(['.', '-'])
        && alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(DockerError::Invalid(format!(
            "invalid network alias {alias:?}: 1 to 253 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
        )))
    }
}

fn is_default_network(name: &str) -> bool {
    matches!(name, "" | "default" | "bridge")
}

/// The user-defined networks of `HostConfig.NetworkMode` and
/// `NetworkingConfig.EndpointsConfig`, the mode's first.
fn requested_networks(
    mode: Option<&str>,
    endpoints: BTreeMap<String, Value>,
) -> Result<Vec<RequestedNetwork>, DockerError> {
    let mode = mode.unwrap_or_default();
    if mode == "host" || mode == "none" || mode.starts_with("container:") {
        return Err(DockerError::Invalid(format!(
            "network mode {mode:?} is not supported by Nest: containers run on their instance's \
             default network or on a network made with docker network create; choose the network \
             of published ports with the label {NETWORK_LABEL}=<name>"
        )));
    }
    let mut requested: Vec<RequestedNetwork> = Vec::new();
    if !is_default_network(mode) {
        requested.push(RequestedNetwork {
            reference: mode.to_owned(),
            aliases: Vec::new(),
        });
    }
    for (name, value) in endpoints {
        let settings: EndpointSettings = serde_json::from_value(value)
            .map_err(|e| invalid(format!("NetworkingConfig.EndpointsConfig.{name}: {e}")))?;
        refuse_unsupported(
            &format!("NetworkingConfig.EndpointsConfig.{name}"),
            &settings.rest,
        )?;
        let aliases = settings.aliases.unwrap_or_default();
        if is_default_network(&name) {
            if !aliases.is_empty() {
                return Err(invalid(
                    "network-scoped aliases are only supported for user-defined networks",
                ));
            }
            continue;
        }
        if aliases.len() > MAX_ALIASES {
            return Err(DockerError::Invalid(format!(
                "network {name}: at most {MAX_ALIASES} aliases"
            )));
        }
        for alias in &aliases {
            check_alias(alias)?;
        }
        match requested.iter_mut().find(|r| r.reference == name) {
            Some(r) => r.aliases = aliases,
            None => requested.push(RequestedNetwork {
                reference: name,
                aliases,
            }),
        }
    }
    Ok(requested)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> CreateBody {
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{v}: {e}"))
    }

    #[test]
    fn the_clis_run_body_becomes_a_spec() {
        let b = body(serde_json::json!({
            "Hostname": "hn", "User": "1000", "Env": ["A=B", "EMPTY="], "Cmd": ["sh", "-c", "x"],
            "Image": "img:1", "WorkingDir": "/tmp", "Labels": {"x": "y", "nest.network": "pub"},
            "ExposedPorts": {"22/tcp": {}}, "Domainname": "", "Volumes": {},
            "HostConfig": {"PortBindings": {"22/tcp": [{"HostIp": "", "HostPort": "222"}]},
                "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
                "Memory": 67108864, "NanoCpus": 500000000, "MemorySwappiness": -1,
                "LogConfig": {"Type": "", "Config": {}}, "ConsoleSize": [0, 0], "NetworkMode": "default"},
            "NetworkingConfig": {"EndpointsConfig": {"default": {"MacAddress": ""}}}
        }));
        let parsed = parse(b, Some("n1".into())).expect("accepted");
        assert_eq!(parsed.image, "img:1");
        assert!(parsed.networks.is_empty());
        let spec = parsed.new.spec;
        assert_eq!(spec.memory_mib, 64);
        assert!((spec.cpu - 0.5).abs() < 1e-9);
        assert_eq!(spec.user.as_deref(), Some("1000"));
        assert_eq!(spec.environment["EMPTY"], "");
        assert_eq!(spec.restart_policy, (RestartPolicyName::OnFailure, 3));
        assert!(!spec.labels.contains_key("nest.network"));
        assert_eq!(
            spec.ports,
            vec![PublishedPort {
                network: Some("pub".into()),
                host_port: 222,
                container_port: 22,
                protocol: PortProtocol::Tcp
            }]
        );
    }

    #[test]
    fn engine_options_reach_the_spec_and_bad_ones_are_refused() {
        let parsed = parse(
            body(serde_json::json!({
                "Image": "i", "StopSignal": "SIGQUIT", "StopTimeout": 3,
                "HostConfig": {"Init": true, "ReadonlyRootfs": true,
                    "ExtraHosts": ["db:10.0.0.5", "gw=host-gateway", "v6:fd00::1"]},
            })),
            None,
        )
        .expect("accepted");
        assert_eq!(
            parsed.new.spec.engine,
            EngineOptions {
                stop_signal: Some("SIGQUIT".into()),
                stop_timeout: Some(3),
                init: true,
                read_only: true,
                extra_hosts: vec![
                    ("db".into(), "10.0.0.5".into()),
                    ("gw".into(), "host-gateway".into()),
                    ("v6".into(), "fd00::1".into()),
                ],
                healthcheck: None,
            }
        );
        // What the CLI sends when none is asked for.
        let plain = parse(
            body(
                serde_json::json!({"Image": "i", "HostConfig": {"Init": null, "ExtraHosts": null}}),
            ),
            None,
        )
        .expect("accepted");
        assert!(plain.new.spec.engine.is_default());
        let checked = parse(
            body(serde_json::json!({"Image": "i", "Healthcheck": {
                "Test": ["CMD-SHELL", "test -f /ok"], "Interval": 1_000_000_000i64,
                "Timeout": 0, "StartPeriod": 0, "Retries": 2}})),
            None,
        )
        .expect("accepted");
        assert_eq!(
            checked.new.spec.engine.healthcheck,
            Some(HealthCheck {
                test: vec!["CMD-SHELL".into(), "test -f /ok".into()],
                interval_ns: 1_000_000_000,
                timeout_ns: 0,
                start_period_ns: 0,
                retries: 2,
            })
        );
        let unset = parse(
            body(serde_json::json!({"Image": "i", "Healthcheck": {"Test": null, "Interval": 0, "Timeout": null, "Retries": null}})),
            None,
        )
        .expect("accepted");
        assert_eq!(unset.new.spec.engine.healthcheck, None);
        for (v, needle) in [
            (
                serde_json::json!({"Image": "i", "Healthcheck": {"Test": ["SHELL", "x"]}}),
                "Healthcheck",
            ),
            (
                serde_json::json!({"Image": "i", "Healthcheck": {"Test": ["CMD", "x"], "Interval": 5}}),
                "interval",
            ),
            (
                serde_json::json!({"Image": "i", "Healthcheck": {"Test": ["CMD", "x"], "Retries": -1}}),
                "Retries",
            ),
            (
                serde_json::json!({"Image": "i", "StopSignal": "NOPE!"}),
                "StopSignal",
            ),
            (
                serde_json::json!({"Image": "i", "StopTimeout": -1}),
                "StopTimeout",
            ),
            (
                serde_json::json!({"Image": "i", "StopTimeout": 86400}),
                "StopTimeout",
            ),
            (
                serde_json::json!({"Image": "i", "HostConfig": {"ExtraHosts": ["nocolon"]}}),
                "HOST:ADDRESS",
            ),
            (
                serde_json::json!({"Image": "i", "HostConfig": {"ExtraHosts": ["db:not-an-ip"]}}),
                "ExtraHosts",
            ),
            (
                serde_json::json!({"Image": "i", "HostConfig": {"ExtraHosts": ["b d:10.0.0.1"]}}),
                "ExtraHosts",
            ),
        ] {
            let err = parse(body(v.clone()), None).expect_err("refused");
            assert!(err.to_string().contains(needle), "{v}: {err}");
        }
    }

    #[test]
    fn what_nest_cannot_honour_is_refused_by_name() {
        let refused = |v: Value, needle: &str| {
            let err = parse(body(v.clone()), None).expect_err("refused");
            assert!(err.to_string().contains(needle), "{v}: {err}");
        };
        refused(
            serde_json::json!({"Image": "i", "HostConfig": {"Privileged": true}}),
            "HostConfig.Privileged",
        );
        refused(
            serde_json::json!({"Image": "i", "HostConfig": {"Binds": ["/:/host"]}}),
            "HostConfig.Binds",
        );
        refused(
            serde_json::json!({"Image": "i", "HostConfig": {"Memory": 1i64 << 50}}),
            "Memory",
        );
        refused(
            serde_json::json!({"Image": "i", "HostConfig": {"PortBindings": {"22/tcp": [{"HostPort": ""}]}}}),
            "host port",
        );
        refused(
            serde_json::json!({"Image": "i", "HostConfig": {"PortBindings": {"22/tcp": [{"HostIp": "1.2.3.4", "HostPort": "2"}]}}}),
            "host address",
        );
        refused(
            serde_json::json!({"Image": "i", "Volumes": {"/data": {}}}),
            "Volumes",
        );
        refused(
            serde_json::json!({"Image": "i", "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}),
            "restart policy",
        );
        refused(serde_json::json!({}), "Image is required");
        refused(
            serde_json::json!({"Image": "i", "HostConfig": {"NetworkMode": "host"}}),
            "network mode",
        );
        refused(
            serde_json::json!({"Image": "i", "HostConfig": {"NetworkMode": "n"},
                "NetworkingConfig": {"EndpointsConfig": {"n": {"Aliases": ["bad alias"]}}}}),
            "invalid network alias",
        );
        refused(
            serde_json::json!({"Image": "i", "NetworkingConfig": {"EndpointsConfig":
                {"n": {"IPAMConfig": {"IPv4Address": "10.0.0.9"}}}}}),
            "EndpointsConfig.n.IPAMConfig",
        );
        refused(
            serde_json::json!({"Image": "i", "NetworkingConfig": {"EndpointsConfig":
                {"bridge": {"Aliases": ["x"]}}}}),
            "user-defined networks",
        );
    }

    #[test]
    fn networks_come_from_the_mode_and_the_endpoints_with_their_aliases() {
        let b = body(serde_json::json!({
            "Image": "i",
            "HostConfig": {"NetworkMode": "proj_default"},
            "NetworkingConfig": {"EndpointsConfig": {
                "proj_default": {"Aliases": ["web"], "IPAMConfig": {}, "Links": null},
                "back": {"Aliases": ["db", "db.local"]}
            }}
        }));
        let parsed = parse(b, None).expect("accepted");
        assert_eq!(
            parsed.networks,
            vec![
                RequestedNetwork {
                    reference: "proj_default".into(),
                    aliases: vec!["web".into()]
                },
                RequestedNetwork {
                    reference: "back".into(),
                    aliases: vec!["db".into(), "db.local".into()]
                },
            ]
        );
        let plain = parse(
            body(serde_json::json!({"Image": "i", "HostConfig": {"NetworkMode": "bridge"}})),
            None,
        )
        .expect("accepted");
        assert!(plain.networks.is_empty());
    }
}
