//! Zun's container create and update bodies (zun-api.md §2.1, schema
//! `container_create_v140`, and `container_update`), checked and mapped
//! into a [`NewContainer`] or a [`ContainerPatch`]. The body types are
//! [`nest_api_types::zun`]'s, and refuse unknown fields when read.
//!
//! [`parse_create`] checks what the schema and Zun's controller check
//! (lengths, patterns, ranges, microversion gates) and refuses, with a 400
//! that says so, the Zun features Nest cannot honour (Neutron networks and
//! security groups, Cinder mounts, ...) unless they carry their neutral
//! value (`null`, `[]`, `false`), which python-zunclient always sends.
//!
//! Nest extension: `"ports": ["pub:222:22", "8080:80/udp"]` publishes
//! container ports on the instance, `[network:]host_port:container_port
//! [/tcp|udp]` (DESIGN.md, "The life of a container" step 6). Zun's
//! `exposed_ports` (`{"80/tcp": {}}`, ≥1.24) maps to the same thing with the
//! same port on both sides.

use std::collections::{BTreeMap, HashSet};

use nest_core::process_input::{self, ProcessInputError};
use serde_json::Value;

use super::extract::Flag;
use super::microversion::ApiVersion;
use crate::api::zun::error::ApiError;
use crate::app::{ContainerPatch, NewContainer};
use crate::domain::{ContainerSpec, EngineOptions, PortProtocol, PublishedPort, RestartPolicyName};

// Re-exported so that a handler names one module for a body and its
// parser.
pub use nest_api_types::zun::{
    CommandField, CreateContainerBody, IntegerOrString, NumberOrString, RestartPolicyBody,
    UpdateContainerBody,
};

/// vCPUs reserved when the request names none (Zun's `default_cpu`).
pub const DEFAULT_CPU: f64 = 1.0;
/// Memory reserved when the request names none, MiB (`default_memory`).
pub const DEFAULT_MEMORY_MIB: u64 = 512;
/// Fewest vCPUs a container may reserve (`minimum_cpus`).
pub const MIN_CPU: f64 = 0.1;
/// Most vCPUs a container may reserve (`maximum_cpus`).
pub const MAX_CPU: f64 = 16.0;
/// Least memory a container may reserve, MiB (`minimum_memory`).
pub const MIN_MEMORY_MIB: u64 = 4;
/// Most memory a container may reserve, MiB (`maximum_memory`).
pub const MAX_MEMORY_MIB: u64 = 8192;

fn schema(field: &str, reason: impl Into<String>) -> ApiError {
    ApiError::Schema {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

fn gate(
    param: &'static str,
    present: bool,
    version: ApiVersion,
    minor: u16,
) -> Result<(), ApiError> {
    if present && !version.at_least(minor) {
        return Err(ApiError::ParamInVersion {
            param,
            requested: version,
            minimum: ApiVersion::new(minor),
        });
    }
    Ok(())
}

/// Checks a create body at `version` and maps it to what the backend takes.
///
/// # Errors
/// [`ApiError`] 400s for schema, range and microversion violations and for
/// unsupported features; 403 for `privileged`.
pub fn parse_create(
    body: CreateContainerBody,
    version: ApiVersion,
) -> Result<NewContainer, ApiError> {
    let present_list = |v: &Option<Vec<Value>>| v.as_ref().is_some_and(|l| !l.is_empty());
    gate("nets", present_list(&body.nets), version, 2)?;
    gate("auto_remove", body.auto_remove.is_some(), version, 3)?;
    gate("runtime", body.runtime.is_some(), version, 5)?;
    gate("hostname", body.hostname.is_some(), version, 9)?;
    gate("mounts", present_list(&body.mounts), version, 11)?;
    gate("privileged", body.privileged.is_some(), version, 21)?;
    gate("healthcheck", body.healthcheck.is_some(), version, 22)?;
    gate("exposed_ports", body.exposed_ports.is_some(), version, 24)?;
    gate("registry", body.registry.is_some(), version, 31)?;
    gate("host", body.host.is_some(), version, 39)?;
    gate("entrypoint", body.entrypoint.is_some(), version, 40)?;

    let image = body
        .image
        .ok_or_else(|| schema("image", "'image' is a required property"))?;
    check_image(&image)?;
    if let Some(name) = &body.name {
        check_name("name", name)?;
    }
    let command = match body.command {
        None => Vec::new(),
        Some(CommandField::List(argv)) if version.at_least(20) => argv,
        Some(CommandField::Line(line)) if !version.at_least(20) => split_command("command", &line)?,
        Some(CommandField::List(_)) => {
            return Err(schema(
                "command",
                format!("must be a string at version {version}"),
            ));
        }
        Some(CommandField::Line(_)) => {
            return Err(schema(
                "command",
                format!("must be a list at version {version}"),
            ));
        }
    };
    let cpu = body.cpu.as_ref().map(|c| parse_cpu("cpu", c)).transpose()?;
    let memory_mib = body
        .memory
        .as_ref()
        .map(|m| parse_memory("memory", m))
        .transpose()?;

    if body.disk.is_some() {
        return Err(unsupported("disk", "containers use their instance's disk"));
    }
    match body.cpu_policy.as_deref() {
        None | Some("shared") => {}
        Some("dedicated") => {
            return Err(unsupported(
                "cpu_policy",
                "Nest does not pin CPUs; use shared",
            ));
        }
        Some(other) => {
            return Err(schema(
                "cpu_policy",
                format!("{other:?} is not one of 'dedicated', 'shared'"),
            ));
        }
    }
    if body.auto_heal.is_some_and(|Flag(on)| on) {
        return Err(unsupported(
            "auto_heal",
            "the reconciler restores containers instead",
        ));
    }
    match body.image_driver.as_deref() {
        None | Some("None" | "docker" | "glance") => {}
        Some(other) => {
            return Err(schema(
                "image_driver",
                format!("{other:?} is not one of 'docker', 'glance'"),
            ));
        }
    }
    match body
        .image_pull_policy
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("ifnotpresent") => {}
        Some("always" | "never") => {
            return Err(unsupported(
                "image_pull_policy",
                "images are pulled when missing (ifnotpresent)",
            ));
        }
        Some(_) => {
            return Err(schema(
                "image_pull_policy",
                "must be one of never, always, ifnotpresent",
            ));
        }
    }
    if body.security_groups.is_some() && body.exposed_ports.is_some() {
        return Err(schema(
            "security_groups",
            "security_groups and exposed_ports cannot be given together",
        ));
    }
    if body.security_groups.as_ref().is_some_and(|l| !l.is_empty()) {
        return Err(unsupported(
            "security_groups",
            "Nest has no Neutron security groups",
        ));
    }
    if present_list(&body.nets) {
        return Err(unsupported(
            "nets",
            "networks come from the instance; use hints",
        ));
    }
    if present_list(&body.mounts) {
        return Err(unsupported(
            "mounts",
            "volumes and file injection are not available",
        ));
    }
    if let Some(runtime) = &body.runtime
        && runtime != "runc"
    {
        return Err(unsupported("runtime", "only runc is available"));
    }
    if body.privileged.is_some() {
        return Err(ApiError::PrivilegedDenied);
    }
    if body.healthcheck.as_ref().is_some_and(|h| !h.is_null()) {
        return Err(unsupported(
            "healthcheck",
            "health checks are not available",
        ));
    }
    if body.registry.is_some() {
        return Err(unsupported(
            "registry",
            "private registries are not available",
        ));
    }
    if let Some(hostname) = &body.hostname {
        check_hostname(hostname)?;
    }
    if let Some(workdir) = &body.workdir
        && workdir.len() > 255
    {
        return Err(schema("workdir", "is longer than 255 characters"));
    }

    let restart_policy = body
        .restart_policy
        .as_ref()
        .map(parse_restart_policy)
        .transpose()?
        .unwrap_or_default();
    let interactive = body.interactive.is_some_and(|Flag(on)| on);
    let tty = if version.at_least(36) {
        body.tty.is_some_and(|Flag(on)| on)
    } else {
        interactive
    };

    let mut hints = BTreeMap::new();
    for (key, value) in body.hints.unwrap_or_default() {
        if !KNOWN_HINTS.contains(&key.as_str()) {
            return Err(schema(
                &format!("hints.{key}"),
                format!(
                    "is not a hint Nest knows (known: {})",
                    KNOWN_HINTS.join(", ")
                ),
            ));
        }
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(schema(
                    &format!("hints.{key}"),
                    "must be a string, number or boolean",
                ));
            }
        };
        hints.insert(key, text);
    }
    if let Some(zone) = body.availability_zone {
        if zone.is_empty() || zone.len() > 255 {
            return Err(schema("availability_zone", "must be 1 to 255 characters"));
        }
        hints.insert("availability_zone".into(), zone);
    }
    if let Some(host) = body.host {
        check_host_name("host", &host)?;
        hints.insert("host".into(), host);
    }

    let mut ports = Vec::new();
    for (i, spec) in body.ports.unwrap_or_default().iter().enumerate() {
        ports.push(parse_port(spec).map_err(|reason| schema(&format!("ports[{i}]"), reason))?);
    }
    for key in body.exposed_ports.unwrap_or_default().keys() {
        let port = parse_exposed_port(key).map_err(|reason| schema("exposed_ports", reason))?;
        ports.push(port);
    }
    let mut seen = HashSet::new();
    for port in &ports {
        if !seen.insert((port.host_port, port.protocol)) {
            return Err(schema(
                "ports",
                format!(
                    "host port {}/{} is published twice",
                    port.host_port,
                    port.protocol.as_str()
                ),
            ));
        }
    }

    let entrypoint = body.entrypoint.unwrap_or_default();
    let environment = body.environment.unwrap_or_default();
    let labels = body.labels.unwrap_or_default();
    check_argv("command", &command)?;
    check_argv("entrypoint", &entrypoint)?;
    check_environment(&environment)?;
    check_labels(&labels)?;
    if hints.len() > MAX_ENTRIES {
        return Err(schema(
            "hints",
            format!("at most {MAX_ENTRIES} are allowed"),
        ));
    }
    if let Some(workdir) = &body.workdir {
        check_workdir(workdir)?;
    }

    Ok(NewContainer {
        name: body.name,
        spec: ContainerSpec {
            image,
            command,
            entrypoint,
            environment,
            labels,
            workdir: body.workdir,
            hostname: body.hostname,
            user: None,
            cpu: cpu.unwrap_or(DEFAULT_CPU),
            memory_mib: memory_mib.unwrap_or(DEFAULT_MEMORY_MIB),
            restart_policy,
            interactive,
            stdin_once: false,
            tty,
            auto_remove: body.auto_remove.unwrap_or(false),
            ports,
            hints,
            networks: Vec::new(),
            engine: EngineOptions::default(),
        },
    })
}

/// Checks a PATCH body at `version`.
///
/// # Errors
/// [`ApiError`] 400s as for create.
pub fn parse_update(
    body: UpdateContainerBody,
    version: ApiVersion,
) -> Result<ContainerPatch, ApiError> {
    gate("name", body.name.is_some(), version, 14)?;
    if let Some(name) = &body.name {
        check_name("name", name)?;
    }
    if body.auto_heal.is_some_and(|Flag(on)| on) {
        return Err(unsupported(
            "auto_heal",
            "the reconciler restores containers instead",
        ));
    }
    Ok(ContainerPatch {
        name: body.name,
        cpu: body.cpu.as_ref().map(|c| parse_cpu("cpu", c)).transpose()?,
        memory_mib: body
            .memory
            .as_ref()
            .map(|m| parse_memory("memory", m))
            .transpose()?,
    })
}

fn unsupported(field: &'static str, reason: &'static str) -> ApiError {
    ApiError::UnsupportedField { field, reason }
}

pub(crate) fn check_image(image: &str) -> Result<(), ApiError> {
    if !(2..=255).contains(&image.len()) {
        return Err(schema("image", "must be 2 to 255 characters"));
    }
    // Zun's pattern `[a-zA-Z0-9][a-zA-Z0-9_.-]` is unanchored: somewhere an
    // alphanumeric is followed by a name character.
    let bytes = image.as_bytes();
    let found = bytes.windows(2).any(|w| {
        w[0].is_ascii_alphanumeric()
            && (w[1].is_ascii_alphanumeric() || matches!(w[1], b'_' | b'.' | b'-'))
    });
    if !found {
        return Err(schema("image", "does not look like an image reference"));
    }
    if image.chars().any(char::is_whitespace) {
        return Err(schema("image", "must not contain whitespace"));
    }
    Ok(())
}

/// Zun's container name rule: 2–255 characters, `^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`.
pub fn check_name(field: &str, name: &str) -> Result<(), ApiError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !(2..=255).contains(&name.len()) || !first_ok || !rest_ok {
        return Err(schema(
            field,
            format!("{name:?} must be 2 to 255 characters matching ^[a-zA-Z0-9][a-zA-Z0-9_.-]+$"),
        ));
    }
    Ok(())
}

pub(crate) fn check_host_name(field: &str, value: &str) -> Result<(), ApiError> {
    let ok = (1..=255).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if ok {
        Ok(())
    } else {
        Err(schema(
            field,
            format!("{value:?} must be 1 to 255 characters matching ^[a-zA-Z0-9-._]*$"),
        ))
    }
}

/// Longest container hostname: the kernel's `HOST_NAME_MAX` is 64, and
/// the engine fails a longer one only when it starts the container.
const MAX_HOSTNAME: usize = 63;

/// A container's `hostname`: an RFC 1123 name (dot-separated labels of
/// letters, digits and inner hyphens) short enough for the kernel.
fn check_hostname(value: &str) -> Result<(), ApiError> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if (1..=MAX_HOSTNAME).contains(&value.len()) && value.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(schema(
            "hostname",
            format!(
                "{value:?} must be an RFC 1123 host name of at most {MAX_HOSTNAME} characters: \
                 dot-separated labels of letters, digits and inner hyphens"
            ),
        ))
    }
}

fn parse_cpu(field: &str, value: &NumberOrString) -> Result<f64, ApiError> {
    let cpu = match value {
        NumberOrString::Number(n) => *n,
        NumberOrString::Text(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| schema(field, format!("{s:?} is not a number")))?,
    };
    if !cpu.is_finite() || !(MIN_CPU..=MAX_CPU).contains(&cpu) {
        return Err(schema(
            field,
            format!("{cpu} is outside {MIN_CPU} to {MAX_CPU}"),
        ));
    }
    Ok(cpu)
}

fn parse_count(field: &str, value: &IntegerOrString) -> Result<u64, ApiError> {
    match value {
        IntegerOrString::Integer(n) => {
            u64::try_from(*n).map_err(|_| schema(field, format!("{n} is negative")))
        }
        IntegerOrString::Text(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s
            .parse::<u64>()
            .map_err(|_| schema(field, format!("{s:?} is too large"))),
        IntegerOrString::Text(s) => Err(schema(
            field,
            format!("{s:?} is not a non-negative integer"),
        )),
    }
}

fn parse_memory(field: &str, value: &IntegerOrString) -> Result<u64, ApiError> {
    let mib = parse_count(field, value)?;
    if !(MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&mib) {
        return Err(schema(
            field,
            format!("{mib} MiB is outside {MIN_MEMORY_MIB} to {MAX_MEMORY_MIB}"),
        ));
    }
    Ok(mib)
}

fn parse_restart_policy(body: &RestartPolicyBody) -> Result<(RestartPolicyName, u32), ApiError> {
    let name = match body.name.as_str() {
        "no" => RestartPolicyName::No,
        "always" => RestartPolicyName::Always,
        "on-failure" => RestartPolicyName::OnFailure,
        "unless-stopped" => RestartPolicyName::UnlessStopped,
        other => {
            return Err(schema(
                "restart_policy.Name",
                format!("{other:?} is not one of 'no', 'always', 'on-failure', 'unless-stopped'"),
            ));
        }
    };
    let count = body
        .maximum_retry_count
        .as_ref()
        .map(|c| parse_count("restart_policy.MaximumRetryCount", c))
        .transpose()?
        .unwrap_or(0);
    let count = u32::try_from(count)
        .map_err(|_| schema("restart_policy.MaximumRetryCount", "is too large"))?;
    match name {
        RestartPolicyName::Always | RestartPolicyName::UnlessStopped if count != 0 => Err(schema(
            "restart_policy.MaximumRetryCount",
            format!(
                "maximum retry count not valid with restart policy of {}",
                body.name
            ),
        )),
        RestartPolicyName::No => Ok((name, 0)),
        _ => Ok((name, count)),
    }
}

/// Splits a command line shell-style (docker-py's `split_command`).
///
/// # Errors
/// [`ApiError::InvalidParameter`] for unbalanced quotes or an empty line.
pub fn split_command(field: &str, line: &str) -> Result<Vec<String>, ApiError> {
    let argv = shlex::split(line).ok_or_else(|| ApiError::InvalidParameter {
        name: field.to_owned(),
        reason: "has unbalanced quotes".into(),
    })?;
    if argv.is_empty() {
        return Err(ApiError::InvalidParameter {
            name: field.to_owned(),
            reason: "is empty".into(),
        });
    }
    Ok(argv)
}

/// Reads Nest's `[network:]host_port:container_port[/tcp|udp]`.
///
/// # Errors
/// Why the spec is malformed.
pub fn parse_port(spec: &str) -> Result<PublishedPort, String> {
    let (ports, protocol) = split_protocol(spec)?;
    let parts: Vec<&str> = ports.split(':').collect();
    let (network, host, container) = match parts.as_slice() {
        [host, container] => (None, *host, *container),
        [network, host, container] => (Some(*network), *host, *container),
        _ => {
            return Err(format!(
                "{spec:?} is not [network:]host_port:container_port[/tcp|udp]"
            ));
        }
    };
    if let Some(net) = network
        && (net.is_empty()
            || net.len() > 64
            || !net
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!("{net:?} is not a network name"));
    }
    Ok(PublishedPort {
        network: network.map(str::to_owned),
        host_port: parse_port_number(host)?,
        container_port: parse_port_number(container)?,
        protocol,
    })
}

fn parse_exposed_port(key: &str) -> Result<PublishedPort, String> {
    let (port, protocol) = split_protocol(key)?;
    let port = parse_port_number(port)?;
    Ok(PublishedPort {
        network: None,
        host_port: port,
        container_port: port,
        protocol,
    })
}

fn split_protocol(spec: &str) -> Result<(&str, PortProtocol), String> {
    match spec.split_once('/') {
        None => Ok((spec, PortProtocol::Tcp)),
        Some((ports, "tcp")) => Ok((ports, PortProtocol::Tcp)),
        Some((ports, "udp")) => Ok((ports, PortProtocol::Udp)),
        Some((_, other)) => Err(format!("protocol {other:?} is not tcp or udp")),
    }
}

fn parse_port_number(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("{s:?} is not a port from 1 to 65535")),
    }
}

/// Nest's spelling of a published port, as `parse_port` reads it.
pub fn format_port(port: &PublishedPort) -> String {
    let network = port
        .network
        .as_deref()
        .map(|n| format!("{n}:"))
        .unwrap_or_default();
    format!(
        "{network}{}:{}/{}",
        port.host_port,
        port.container_port,
        port.protocol.as_str()
    )
}

/// The scheduler hints Nest acts on: `host` (admins only, as Zun's policy
/// says) and `availability_zone` (Zun's field of the same name). Any other
/// key would be silently ignored, so it is refused.
const KNOWN_HINTS: [&str; 2] = ["host", "availability_zone"];

/// Most environment variables, labels or hints one container may carry.
pub const MAX_ENTRIES: usize = 256;
/// Longest key or value of an environment variable or a label, bytes.
pub const MAX_ENTRY_BYTES: usize = 4096;
/// Most arguments of a command or an entrypoint.
pub const MAX_ARGS: usize = 1024;
/// Longest argument of a command or an entrypoint, bytes.
pub const MAX_ARG_BYTES: usize = 64 * 1024;
/// Label keys under this prefix are Nest's own (the agent finds its
/// containers by them); a tenant may not set them.
pub const RESERVED_LABEL_PREFIX: &str = "nest.";

/// A command or entrypoint the engine can run: bounded, without NUL (which
/// no argv can carry).
pub(crate) fn check_argv(field: &str, argv: &[String]) -> Result<(), ApiError> {
    if argv.len() > MAX_ARGS {
        return Err(schema(
            field,
            format!("at most {MAX_ARGS} arguments are allowed"),
        ));
    }
    for (i, arg) in argv.iter().enumerate() {
        if arg.contains('\0') {
            return Err(schema(&format!("{field}[{i}]"), "must not contain NUL"));
        }
        if arg.len() > MAX_ARG_BYTES {
            return Err(schema(
                &format!("{field}[{i}]"),
                format!("is longer than {MAX_ARG_BYTES} bytes"),
            ));
        }
    }
    Ok(())
}

/// Environment variables: a name is non-empty and holds no `=` or NUL (a
/// process's environment is `NAME=value` strings); values hold no NUL
/// (the rules of `nest_core::process_input`, which the agent applies too).
pub(crate) fn check_environment(env: &BTreeMap<String, String>) -> Result<(), ApiError> {
    process_input::check_env_count(env.len()).map_err(|e| schema("environment", e.to_string()))?;
    for (name, value) in env {
        process_input::check_env_var(name, value).map_err(|e| match e {
            ProcessInputError::VariableName(_) => schema("environment", e.to_string()),
            _ => schema(&format!("environment.{name}"), e.to_string()),
        })?;
    }
    Ok(())
}

/// Labels: bounded, without NUL, and none under Nest's own prefix.
pub(crate) fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if labels.len() > MAX_ENTRIES {
        return Err(schema(
            "labels",
            format!("at most {MAX_ENTRIES} labels are allowed"),
        ));
    }
    for (key, value) in labels {
        let field = format!("labels.{key}");
        if key.is_empty() || key.contains('\0') || value.contains('\0') {
            return Err(schema(
                "labels",
                format!("{key:?}: keys must be non-empty, and keys and values without NUL"),
            ));
        }
        if key.to_ascii_lowercase().starts_with(RESERVED_LABEL_PREFIX) {
            return Err(schema(
                &field,
                format!("keys under {RESERVED_LABEL_PREFIX:?} are reserved for Nest"),
            ));
        }
        if key.len() > MAX_ENTRY_BYTES || value.len() > MAX_ENTRY_BYTES {
            return Err(schema(
                &field,
                format!("key and value are limited to {MAX_ENTRY_BYTES} bytes each"),
            ));
        }
    }
    Ok(())
}

/// A working directory: absolute and normalised (no `.` or `..` parts), as
/// the engine resolves it inside the container.
pub(crate) fn check_workdir(workdir: &str) -> Result<(), ApiError> {
    process_input::check_workdir(workdir).map_err(|e| schema("workdir", e.to_string()))
}

/// A user to run as (`name`, `uid`, `uid:gid`): plain and bounded; whether
/// it exists is the engine's question.
pub(crate) fn check_user(field: &str, user: &str) -> Result<(), ApiError> {
    process_input::check_user(user).map_err(|e| schema(field, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unrunnable_environments_labels_workdirs_and_commands_are_refused() {
        let refused = |v: Value, field: &str| {
            let err = parse_create(body(v.clone()), ApiVersion::MAX).expect_err("refused");
            assert!(
                matches!(&err, ApiError::Schema { field: f, .. } if f == field),
                "{v}: {err:?}"
            );
        };
        refused(
            serde_json::json!({"image": "busybox", "environment": {"A=B": "1"}}),
            "environment",
        );
        refused(
            serde_json::json!({"image": "busybox", "environment": {"": "1"}}),
            "environment",
        );
        refused(
            serde_json::json!({"image": "busybox", "environment": {"A": "x\0y"}}),
            "environment.A",
        );
        refused(
            serde_json::json!({"image": "busybox", "labels": {"nest.uuid": "x"}}),
            "labels.nest.uuid",
        );
        refused(
            serde_json::json!({"image": "busybox", "labels": {"NEST.owner": "x"}}),
            "labels.NEST.owner",
        );
        refused(
            serde_json::json!({"image": "busybox", "workdir": "../.."}),
            "workdir",
        );
        refused(
            serde_json::json!({"image": "busybox", "workdir": "/srv/../etc"}),
            "workdir",
        );
        refused(
            serde_json::json!({"image": "busybox", "command": ["sh", "a\0b"]}),
            "command[1]",
        );
        let many: Vec<String> = (0..=MAX_ARGS).map(|i| i.to_string()).collect();
        refused(
            serde_json::json!({"image": "busybox", "command": many}),
            "command",
        );
        let labels: serde_json::Map<String, Value> = (0..=MAX_ENTRIES)
            .map(|i| (format!("k{i}"), Value::from("v")))
            .collect();
        refused(
            serde_json::json!({"image": "busybox", "labels": labels}),
            "labels",
        );
        refused(
            serde_json::json!({"image": "busybox", "hints": {"same_host": "x"}}),
            "hints.same_host",
        );
        for bad in ["-web", "web-", "a..b", "my_host", &"a".repeat(64)] {
            refused(
                serde_json::json!({"image": "busybox", "hostname": bad}),
                "hostname",
            );
        }
        assert!(check_hostname("web-1.example").is_ok());
        // What clients send every day still passes.
        let ok = body(
            serde_json::json!({"image": "busybox", "workdir": "/srv/app/",
            "environment": {"PATH": "/bin", "EMPTY": ""}, "labels": {"app": "web", "nestle": "x"},
            "command": ["sh", "-c", "echo hi"]}),
        );
        parse_create(ok, ApiVersion::MAX).expect("accepted");
    }

    fn body(v: Value) -> CreateContainerBody {
        serde_json::from_value(v).expect("test body deserializes")
    }

    #[test]
    fn zunclient_body_is_accepted_with_defaults() {
        let b = body(serde_json::json!({
            "image": "cirros:latest", "command": ["sleep", "1"], "environment": {},
            "labels": {}, "hints": {}, "nets": [], "mounts": [], "auto_remove": false,
            "memory": "100", "cpu": 0.1, "restart_policy": {"Name": "on-failure", "MaximumRetryCount": "2"},
        }));
        let c = parse_create(b, ApiVersion::MAX).expect("accepted");
        assert_eq!(c.spec.command, ["sleep", "1"]);
        assert_eq!(c.spec.memory_mib, 100);
        assert_eq!(c.spec.restart_policy, (RestartPolicyName::OnFailure, 2));
    }

    #[test]
    fn legacy_command_is_shell_split() {
        let b =
            body(serde_json::json!({"image": "busybox", "command": "\"sh\" \"-c\" \"echo a b\""}));
        let c = parse_create(b, ApiVersion::new(19)).expect("accepted");
        assert_eq!(c.spec.command, ["sh", "-c", "echo a b"]);
        assert_eq!(c.spec.cpu, DEFAULT_CPU);
        let b = body(serde_json::json!({"image": "busybox", "command": "ls"}));
        assert!(matches!(
            parse_create(b, ApiVersion::MAX),
            Err(ApiError::Schema { .. })
        ));
    }

    #[test]
    fn ports_parse_both_spellings() {
        let p = parse_port("pub:222:22").expect("valid");
        assert_eq!(
            (p.network.as_deref(), p.host_port, p.container_port),
            (Some("pub"), 222, 22)
        );
        let p = parse_port("8080:80/udp").expect("valid");
        assert_eq!((p.network.clone(), p.protocol), (None, PortProtocol::Udp));
        assert_eq!(format_port(&p), "8080:80/udp");
        assert!(parse_port("80").is_err());
        assert!(parse_port("0:80").is_err());
        assert!(parse_port("a b:1:2").is_err());
        assert!(parse_port("1:2/sctp").is_err());
    }

    #[test]
    fn gated_and_ranged_fields_are_refused() {
        let b = body(serde_json::json!({"image": "busybox", "entrypoint": ["sh"]}));
        assert!(matches!(
            parse_create(b, ApiVersion::new(39)),
            Err(ApiError::ParamInVersion {
                param: "entrypoint",
                ..
            })
        ));
        let b = body(serde_json::json!({"image": "busybox", "cpu": "32"}));
        assert!(matches!(
            parse_create(b, ApiVersion::MAX),
            Err(ApiError::Schema { .. })
        ));
        let b = body(serde_json::json!({"image": "busybox", "memory": 2}));
        assert!(matches!(
            parse_create(b, ApiVersion::MAX),
            Err(ApiError::Schema { .. })
        ));
        let b = body(
            serde_json::json!({"image": "busybox", "restart_policy": {"Name": "always", "MaximumRetryCount": 3}}),
        );
        assert!(matches!(
            parse_create(b, ApiVersion::MAX),
            Err(ApiError::Schema { .. })
        ));
        let b = body(serde_json::json!({"image": "busybox", "privileged": false}));
        assert!(matches!(
            parse_create(b, ApiVersion::MAX),
            Err(ApiError::PrivilegedDenied)
        ));
        let b = body(serde_json::json!({"image": "busybox", "ports": ["1:2", "1:3"]}));
        assert!(matches!(
            parse_create(b, ApiVersion::MAX),
            Err(ApiError::Schema { .. })
        ));
    }
}
