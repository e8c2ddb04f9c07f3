//! Containers on the wire: Zun's container view (zun-api.md §2.2) and
//! list, and the create and update bodies (§2.1, schema
//! `container_create_v140`, and `container_update`).
//!
//! Nest fields in the container view (python-zunclient prints unknown keys
//! as they are, and its list columns are unaffected):
//! - `host`: the id of the instance the container is placed on, shown to
//!   its owner (the instance is the tenant's own Nova server);
//! - `addresses`: the instance's addresses, keyed by network *name*;
//! - `ports`: Zun's list of container ports (ints);
//! - `published_ports`: where the published ports are reachable,
//!   `"10.0.0.5:8080"` (`"…/udp"` for UDP), once placed;
//! - `port_bindings`: the requested bindings in Nest's spelling,
//!   `"pub:222:22/tcp"`.
//!
//! A [`ContainerView`] is read leniently, so that a client understands
//! Zun's own answers too: the fields Zun shows only to admins (`host`,
//! `image_pull_policy`, `privileged`, `runtime`) and Nest's own fields may
//! be absent, and the fields Zun leaves unset (`command`, `addresses`,
//! `restart_policy`, ...) may be `null`; both read as the empty value.
//! `healthcheck` is kept as the JSON Zun returns (Nest's is always null).
//!
//! Nest extension of the create body: `"ports": ["pub:222:22",
//! "8080:80/udp"]` publishes container ports on the instance,
//! `[network:]host_port:container_port[/tcp|udp]` (DESIGN.md, "The life of
//! a container" step 6). Zun's `exposed_ports` (`{"80/tcp": {}}`, ≥1.24)
//! maps to the same thing with the same port on both sides.
//!
//! The bodies refuse unknown fields when read, as Zun's schema does, and
//! leave out every field that is `None` when written, so that a client
//! sends only what it sets. The service then refuses, with a 400 that says
//! so, the Zun features Nest cannot honour (Neutron networks and security
//! groups, Cinder mounts, ...) unless they carry their neutral value
//! (`null`, `[]`, `false`), which python-zunclient always sends; that check
//! is the service's, not this module's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Link;
use super::values::{Flag, IntegerOrString, NumberOrString, non_null, null_as_default};

/// `GET /v1/containers/{c}/network_list` (≥1.13, the 1.18 shape): the
/// container's networks, which are its instance's. Nest has no Neutron
/// ports or subnets of its own, so those ids are null.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NetworkListView {
    /// One entry per network.
    pub networks: Vec<NetworkEntryView>,
}

/// One network of a container.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NetworkEntryView {
    /// The network (its name, as `addresses` keys it).
    pub net_id: String,
    /// Neutron port id (none in Nest).
    pub port_id: Option<String>,
    /// The addresses on that network.
    pub fixed_ips: Vec<FixedIpView>,
}

/// One address in a [`NetworkEntryView`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FixedIpView {
    /// The IP address.
    pub ip_address: String,
    /// 4 or 6.
    pub version: u8,
    /// Neutron subnet id (none in Nest).
    pub subnet_id: Option<String>,
}

/// One address of the container's instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AddressView {
    /// The IP address.
    pub addr: String,
    /// 4 or 6.
    pub version: u8,
    /// Neutron port id (none in Nest).
    pub port: Option<String>,
    /// Neutron subnet id (none in Nest).
    pub subnet_id: Option<String>,
    /// Always false.
    pub preserve_on_delete: bool,
}

/// Restart policy, values as strings (as Zun returns them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RestartPolicyView {
    /// Policy name.
    #[serde(rename = "Name")]
    pub name: String,
    /// Retry count, as a string.
    #[serde(rename = "MaximumRetryCount")]
    pub maximum_retry_count: String,
}

/// A container (Zun's view at 1.40, plus Nest's fields; module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContainerView {
    /// The container's uuid.
    pub uuid: String,
    /// Self and bookmark links.
    pub links: Vec<Link>,
    /// Name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Command (argv).
    #[serde(default, deserialize_with = "null_as_default")]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub command: Vec<String>,
    /// Entrypoint.
    #[serde(default, deserialize_with = "null_as_default")]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub entrypoint: Vec<String>,
    /// `Creating`, `Created`, `Running`, `Stopped`, `Paused`, ...
    pub status: String,
    /// Why it has that status.
    pub status_reason: Option<String>,
    /// Docker's status line (not reported by Nest yet).
    pub status_detail: Option<String>,
    /// Zun's transient task state (Nest has none).
    pub task_state: Option<String>,
    /// vCPUs.
    pub cpu: f64,
    /// Memory, MiB, as a string (Zun's quirk).
    pub memory: String,
    /// Disk, GiB (not limited by Nest).
    pub disk: Option<u64>,
    /// Environment.
    #[serde(default, deserialize_with = "null_as_default")]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub environment: BTreeMap<String, String>,
    /// Labels.
    #[serde(default, deserialize_with = "null_as_default")]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub labels: BTreeMap<String, String>,
    /// Working directory.
    pub workdir: Option<String>,
    /// Hostname.
    pub hostname: Option<String>,
    /// Container ports that are published (Zun: exposed ports).
    #[serde(default, deserialize_with = "null_as_default")]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub ports: Vec<u16>,
    /// Instance addresses by network name.
    #[serde(default, deserialize_with = "null_as_default")]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub addresses: BTreeMap<String, Vec<AddressView>>,
    /// Restart policy.
    #[serde(default, deserialize_with = "null_as_default")]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub restart_policy: RestartPolicyView,
    /// Stdin kept open.
    #[serde(default, deserialize_with = "null_as_default")]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub interactive: bool,
    /// Terminal allocated.
    #[serde(default, deserialize_with = "null_as_default")]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub tty: bool,
    /// Removed on exit.
    #[serde(default, deserialize_with = "null_as_default")]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub auto_remove: bool,
    /// Always false (not supported).
    #[serde(default, deserialize_with = "null_as_default")]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub auto_heal: bool,
    /// Always `docker`.
    #[serde(default, deserialize_with = "null_as_default")]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub image_driver: String,
    /// Always empty (no Neutron).
    #[serde(default, deserialize_with = "null_as_default")]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub security_groups: Vec<String>,
    /// Always null.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub healthcheck: Option<Value>,
    /// Always `shared`.
    #[serde(default, deserialize_with = "null_as_default")]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub cpu_policy: String,
    /// Always null.
    pub registry_id: Option<String>,
    /// Creating user.
    pub user_id: String,
    /// Owner project.
    pub project_id: String,
    /// When accepted, `YYYY-MM-DD HH:MM:SS+00:00`.
    pub created_at: String,
    /// Last change, same format.
    pub updated_at: String,
    /// The instance id it is placed on.
    pub host: Option<String>,
    /// Always `ifnotpresent`.
    #[serde(default, deserialize_with = "null_as_default")]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub image_pull_policy: String,
    /// Always false.
    #[serde(default, deserialize_with = "null_as_default")]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub privileged: bool,
    /// Always `runc`.
    #[serde(default, deserialize_with = "null_as_default")]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub runtime: String,
    /// Nest: reachable `address:host_port` of each published port.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub published_ports: Vec<String>,
    /// Nest: the requested bindings, `[network:]host:container/proto`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub port_bindings: Vec<String>,
}

/// `GET /v1/containers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContainerCollection {
    /// The page.
    pub containers: Vec<ContainerView>,
    /// URL of the next page, when this one is full and more follow.
    pub next: Option<String>,
}

/// `command`: a list from 1.20, a shell-split string before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum CommandField {
    /// The argv (≥ 1.20).
    List(Vec<String>),
    /// A command line, split shell-style (≤ 1.19).
    Line(String),
}

/// Docker restart policy as Zun spells it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RestartPolicyBody {
    /// `no`, `always`, `on-failure` or `unless-stopped`.
    #[serde(rename = "Name")]
    pub name: String,
    /// Retries for `on-failure`; must be 0 for the others.
    #[serde(
        rename = "MaximumRetryCount",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub maximum_retry_count: Option<IntegerOrString>,
}

/// `POST /v1/containers` body. Every Zun 1.40 field is accepted by the
/// schema; see the module docs for those Nest refuses.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateContainerBody {
    /// Image reference (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Name, `^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Command: a list (≥ 1.20) or a string (≤ 1.19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    pub command: Option<CommandField>,
    /// Entrypoint (≥ 1.40).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// vCPUs, 0.1 to 16; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub cpu: Option<NumberOrString>,
    /// Memory, MiB, 4 to 8192 (string or integer); default 512.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub memory: Option<IntegerOrString>,
    /// Disk, GiB: not supported by Nest (must be null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub disk: Option<IntegerOrString>,
    /// `shared` (Nest does not pin CPUs; `dedicated` is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_policy: Option<String>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Environment; every value a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<BTreeMap<String, String>>,
    /// Labels; every value a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Restart policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicyBody>,
    /// Keep stdin open (and, below 1.36, allocate a terminal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<bool>))]
    pub interactive: Option<Flag>,
    /// Allocate a terminal (≥ 1.36).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<bool>))]
    pub tty: Option<Flag>,
    /// Remove on exit (≥ 1.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_remove: Option<bool>,
    /// Zun's auto-heal: not supported (must be false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<bool>))]
    pub auto_heal: Option<Flag>,
    /// `docker` or `glance`; Nest tells them apart by the reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_driver: Option<String>,
    /// Only `ifnotpresent` (what Nest does) is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// Neutron security groups: not supported (must be empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_groups: Option<Vec<String>>,
    /// Neutron networks (≥ 1.2): not supported (must be empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Object>>))]
    pub nets: Option<Vec<Value>>,
    /// Cinder volumes and file injection (≥ 1.11): not supported (must be
    /// empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Object>>))]
    pub mounts: Option<Vec<Value>>,
    /// Scheduler hints (string, number or boolean values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub hints: Option<BTreeMap<String, Value>>,
    /// Availability zone; passed to the scheduler as the hint
    /// `availability_zone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// Container runtime (≥ 1.5): only `runc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Hostname (≥ 1.9); null is refused as in Zun.
    #[serde(
        default,
        deserialize_with = "non_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub hostname: Option<String>,
    /// Privileged (≥ 1.21): denied to everyone, as Zun's default policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<bool>))]
    pub privileged: Option<Flag>,
    /// Health check (≥ 1.22): not supported (must be null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub healthcheck: Option<Value>,
    /// `{"<port>[/tcp|udp]": {}}` (≥ 1.24): published on the same port of
    /// the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    /// Private registry (≥ 1.31): not supported (must be null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Requested instance id (≥ 1.39); passed to the scheduler as the hint
    /// `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Nest extension: published ports, `[network:]host:container[/proto]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<String>>,
}

/// `PATCH /v1/containers/{c}` body (Zun's `container_update`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateContainerBody {
    /// New name (≥ 1.14).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New vCPU reservation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub cpu: Option<NumberOrString>,
    /// New memory reservation, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub memory: Option<IntegerOrString>,
    /// Zun's auto-heal: not supported (must be false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<bool>))]
    pub auto_heal: Option<Flag>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn nest_view() -> ContainerView {
        ContainerView {
            uuid: "2a278cd8-5d89-462e-8453-0ced64564714".into(),
            links: vec![Link {
                href: "http://h/v1/containers/2a278cd8-5d89-462e-8453-0ced64564714".into(),
                rel: "self".into(),
            }],
            name: "web".into(),
            image: "busybox".into(),
            command: vec!["sleep".into(), "60".into()],
            entrypoint: Vec::new(),
            status: "Running".into(),
            status_reason: None,
            status_detail: None,
            task_state: None,
            cpu: 0.5,
            memory: "128".into(),
            disk: None,
            environment: BTreeMap::from([("A".into(), "1".into())]),
            labels: BTreeMap::new(),
            workdir: None,
            hostname: Some("web".into()),
            ports: vec![22],
            addresses: BTreeMap::from([(
                "pub".into(),
                vec![AddressView {
                    addr: "10.0.0.5".into(),
                    version: 4,
                    port: None,
                    subnet_id: None,
                    preserve_on_delete: false,
                }],
            )]),
            restart_policy: RestartPolicyView {
                name: "on-failure".into(),
                maximum_retry_count: "2".into(),
            },
            interactive: false,
            tty: false,
            auto_remove: false,
            auto_heal: false,
            image_driver: "docker".into(),
            security_groups: Vec::new(),
            healthcheck: None,
            cpu_policy: "shared".into(),
            registry_id: None,
            user_id: "u1".into(),
            project_id: "p1".into(),
            created_at: "2025-06-28 03:25:27+00:00".into(),
            updated_at: "2025-06-28 03:25:29+00:00".into(),
            host: Some("inst-1".into()),
            image_pull_policy: "ifnotpresent".into(),
            privileged: false,
            runtime: "runc".into(),
            published_ports: vec!["10.0.0.5:222".into()],
            port_bindings: vec!["pub:222:22/tcp".into()],
        }
    }

    #[test]
    fn container_view_round_trips_with_its_nulls() {
        let view = nest_view();
        let json = serde_json::to_value(&view).expect("serializes");
        assert_eq!(json["memory"], json!("128"));
        assert_eq!(
            json["restart_policy"],
            json!({"Name": "on-failure", "MaximumRetryCount": "2"})
        );
        assert_eq!(json["status_reason"], Value::Null);
        assert_eq!(json["healthcheck"], Value::Null);
        let back: ContainerView = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, view);
    }

    /// A non-admin's view from OpenStack Zun at 1.40, as zun-api.md §2.2
    /// describes it: no admin-only fields, no Nest fields, addresses keyed
    /// by Neutron network id, and `null` where Zun left a field unset.
    #[test]
    fn zun_container_view_deserializes() {
        let zun = json!({
            "uuid": "6f1c0b2e-4d7a-4c55-9e0b-3a8d2f71c9e4",
            "links": [
                {"href": "http://zun.example/v1/containers/6f1c0b2e-4d7a-4c55-9e0b-3a8d2f71c9e4", "rel": "self"},
                {"href": "http://zun.example/containers/6f1c0b2e-4d7a-4c55-9e0b-3a8d2f71c9e4", "rel": "bookmark"}
            ],
            "name": "hello",
            "image": "debian",
            "command": ["/bin/sh", "-c", "echo hello"],
            "entrypoint": null,
            "status": "Stopped",
            "status_reason": null,
            "status_detail": "Exited(0) 2 mins ago ",
            "task_state": null,
            "cpu": 2.0,
            "memory": "512",
            "disk": 10,
            "environment": {"GREETING": "hi"},
            "labels": {"tier": "web"},
            "workdir": "/srv",
            "hostname": "hello-1",
            "ports": [80],
            "addresses": {
                "9d2e7a41-0c3b-4f6e-8a15-d4b7e2c90a13": [{
                    "addr": "172.24.4.17", "version": 4,
                    "port": "e3a1c5d7-82b4-4f09-9c6e-1b5d7f3a2e80",
                    "subnet_id": "51c8e0f2-7a3d-4b6e-a9c1-0e4f6b8d2a57",
                    "preserve_on_delete": false
                }]
            },
            "restart_policy": {"Name": "no", "MaximumRetryCount": "0"},
            "interactive": false,
            "tty": false,
            "auto_remove": false,
            "auto_heal": false,
            "image_driver": "docker",
            "security_groups": null,
            "healthcheck": {"test": "true", "interval": 10, "retries": 3, "timeout": 2},
            "cpu_policy": "shared",
            "registry_id": null,
            "user_id": "8a4f1e2c9b7d4e03a6f5c1d8e2b9a7f0",
            "project_id": "3e9b7c1a5d2f4e8b9c0a6d1f7e3b5c2a",
            "created_at": "2025-06-28 03:25:27+00:00",
            "updated_at": "2025-06-28 03:33:01+00:00"
        });
        let view: ContainerView = serde_json::from_value(zun).expect("Zun's view deserializes");
        assert_eq!(view.status, "Stopped");
        assert_eq!(view.command, ["/bin/sh", "-c", "echo hello"]);
        assert!(view.entrypoint.is_empty());
        assert!(view.security_groups.is_empty());
        assert_eq!(view.disk, Some(10));
        let addresses = &view.addresses["9d2e7a41-0c3b-4f6e-8a15-d4b7e2c90a13"];
        assert_eq!(
            addresses[0].port.as_deref(),
            Some("e3a1c5d7-82b4-4f09-9c6e-1b5d7f3a2e80")
        );
        assert_eq!(view.restart_policy.name, "no");
        assert!(view.healthcheck.is_some());
        assert_eq!((view.host, view.runtime.as_str()), (None, ""));
        assert!(view.published_ports.is_empty() && view.port_bindings.is_empty());
    }

    #[test]
    fn create_body_round_trips_and_sends_only_what_is_set() {
        let body = CreateContainerBody {
            image: Some("busybox".into()),
            command: Some(CommandField::List(vec!["sleep".into(), "60".into()])),
            cpu: Some(NumberOrString::Number(0.5)),
            memory: Some(IntegerOrString::Text("128".into())),
            restart_policy: Some(RestartPolicyBody {
                name: "on-failure".into(),
                maximum_retry_count: Some(IntegerOrString::Integer(2)),
            }),
            interactive: Some(Flag(true)),
            hints: Some(BTreeMap::from([("network".into(), json!("pub"))])),
            ports: Some(vec!["pub:222:22".into()]),
            ..CreateContainerBody::default()
        };
        let json = serde_json::to_value(&body).expect("serializes");
        assert_eq!(
            json,
            json!({
                "image": "busybox", "command": ["sleep", "60"], "cpu": 0.5, "memory": "128",
                "restart_policy": {"Name": "on-failure", "MaximumRetryCount": 2},
                "interactive": true, "hints": {"network": "pub"}, "ports": ["pub:222:22"],
            })
        );
        let back: CreateContainerBody = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, body);
        let empty = serde_json::to_value(UpdateContainerBody::default()).expect("serializes");
        assert_eq!(empty, json!({}));
    }

    #[test]
    fn create_body_refuses_unknown_fields_and_null_hostname() {
        let unknown =
            serde_json::from_value::<CreateContainerBody>(json!({"image": "a", "foo": 1}));
        assert!(unknown.is_err());
        let null_host =
            serde_json::from_value::<CreateContainerBody>(json!({"image": "a", "hostname": null}));
        assert!(null_host.is_err());
        let policy = serde_json::from_value::<RestartPolicyBody>(json!({"Name": "no", "x": 1}));
        assert!(policy.is_err());
        let legacy: CreateContainerBody =
            serde_json::from_value(json!({"image": "a", "command": "ls -l", "tty": "yes"}))
                .expect("zunclient's legacy spellings");
        assert_eq!(legacy.command, Some(CommandField::Line("ls -l".into())));
        assert_eq!(legacy.tty, Some(Flag(true)));
    }
}
