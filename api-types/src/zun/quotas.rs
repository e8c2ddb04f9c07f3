//! `GET /v1/quotas/{project_id}[?usages=True]` (zun-api.md §2.5): the
//! limits that bound a project. Nest keeps no quota system of its own: a
//! project's containers live in its own Nova servers, so Nova's limits
//! (instances, cores, RAM) are the binding ones. Zun's four keys are kept
//! for Zun's clients and carry Nest's own counts; `instances`, `cores` and
//! `ram` are Nova's numbers, and `source` says where the limits come from.
//! `PUT` and `DELETE` answer that quotas are Nova's (`openstack quota set`).
//!
//! A limit of `-1` means unlimited, as in both Zun and Nova.

use serde::{Deserialize, Serialize};

/// Where a project's limits come from.
pub const SOURCE_NOVA: &str = "nova";
/// The driver enforces no limits (the embedded `local` driver).
pub const SOURCE_NONE: &str = "none";

/// `GET /v1/quotas/{project_id}`: the limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotaSetView {
    /// Containers (Zun's key): `-1`, Nest does not cap them; Nova's
    /// instance, core and RAM limits bound them.
    pub containers: i64,
    /// vCPUs for containers (Zun's key): Nova's `cores` limit.
    pub cpu: i64,
    /// MiB for containers (Zun's key): Nova's `ram` limit.
    pub memory: i64,
    /// GiB of disk (Zun's key): `-1`, not tracked.
    pub disk: i64,
    /// Nest: Nova's `maxTotalInstances`.
    #[serde(default = "unlimited")]
    pub instances: i64,
    /// Nest: Nova's `maxTotalCores`.
    #[serde(default = "unlimited")]
    pub cores: i64,
    /// Nest: Nova's `maxTotalRAMSize`, MiB.
    #[serde(default = "unlimited")]
    pub ram: i64,
    /// Nest: `nova` when the limits are the project's Nova limits, `none`
    /// when the driver enforces none.
    #[serde(default)]
    pub source: String,
}

/// One resource's limit and use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotaUsage {
    /// The limit; `-1` is unlimited.
    pub limit: i64,
    /// In use now.
    pub in_use: i64,
}

/// `GET /v1/quotas/{project_id}?usages=True`: limits with their use.
/// `containers`, `cpu` and `memory` count Nest's own containers (their
/// reservations); `instances`, `cores` and `ram` are Nova's usage, which
/// includes servers Nest did not boot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotaUsagesView {
    /// Containers.
    pub containers: QuotaUsage,
    /// vCPUs reserved by containers.
    pub cpu: QuotaUsage,
    /// MiB reserved by containers.
    pub memory: QuotaUsage,
    /// Disk (not tracked).
    pub disk: QuotaUsage,
    /// Nest: Nova's instances.
    pub instances: QuotaUsage,
    /// Nest: Nova's cores.
    pub cores: QuotaUsage,
    /// Nest: Nova's RAM, MiB.
    pub ram: QuotaUsage,
    /// Nest: `nova` or `none`, as in [`QuotaSetView::source`].
    #[serde(default)]
    pub source: String,
}

fn unlimited() -> i64 {
    -1
}
