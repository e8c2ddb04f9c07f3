//! Instances shown as Zun hosts (`GET /v1/hosts`, `…/{host}`, zun-api.md
//! §2.5), plus Nest's `status`, `driver` and `addresses`. A host read from
//! OpenStack Zun, which has none of Nest's fields, reads them as empty.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Link;

/// An instance shown as a Zun host, plus Nest's `status`, `driver` and
/// `addresses`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostView {
    /// The instance id.
    pub uuid: String,
    /// Links.
    pub links: Vec<Link>,
    /// The instance id.
    pub hostname: String,
    /// Memory for containers, MiB.
    pub mem_total: u64,
    /// Memory reserved by containers, MiB.
    pub mem_used: u64,
    /// vCPUs for containers.
    pub cpus: f64,
    /// vCPUs reserved by containers.
    pub cpu_used: f64,
    /// Not tracked (0).
    pub disk_total: u64,
    /// Not tracked (0).
    pub disk_used: u64,
    /// Always false.
    pub disk_quota_supported: bool,
    /// Containers placed on it.
    pub total_containers: u32,
    /// Unknown (null).
    pub architecture: Option<String>,
    /// `linux`.
    pub os_type: String,
    /// Unknown (null).
    pub os: Option<String>,
    /// Unknown (null).
    pub kernel_version: Option<String>,
    /// Empty.
    pub labels: BTreeMap<String, String>,
    /// `["runc"]`.
    pub runtimes: Vec<String>,
    /// Always false (from 1.29).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_cpu_pinning: Option<bool>,
    /// Nest: `Booting`, `Ready`, `Unreachable`, `Retiring`, `Error`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub status: String,
    /// Nest: the driver that booted it.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub driver: String,
    /// Nest: addresses by network name.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub addresses: BTreeMap<String, String>,
    /// Nest: why the instance is in its status, or why Nest cannot reach
    /// the cloud for its project (then its status is the last one known);
    /// `null` when there is nothing to say.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub status_reason: Option<String>,
}

/// `GET /v1/hosts`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostCollection {
    /// The page.
    pub hosts: Vec<HostView>,
    /// URL of the next page.
    pub next: Option<String>,
}
