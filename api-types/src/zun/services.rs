//! `GET /v1/services` (zun-api.md §2.5, admins only): Zun lists its
//! zun-compute services, one per compute host. Nest's counterpart is the
//! agent in each instance, so it lists those: binary `nest-agent`, host
//! the instance id, `up` while the agent is connected and its engine
//! answers.

use serde::{Deserialize, Serialize};

/// One service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceView {
    /// A position in this list (Zun's integer id).
    pub id: u64,
    /// The instance the agent runs in.
    pub host: String,
    /// `nest-agent`.
    pub binary: String,
    /// `up` or `down`.
    pub state: String,
    /// Always false: agents are not disabled, instances are retired.
    pub disabled: bool,
    /// Why it is not up (the instance's status reason), when it is not.
    pub disabled_reason: Option<String>,
    /// Always false.
    pub forced_down: bool,
    /// Not tracked: null.
    pub availability_zone: Option<String>,
    /// Not tracked: null.
    pub last_seen_up: Option<String>,
    /// Not tracked: 0.
    pub report_count: u64,
    /// When the instance was booted.
    pub created_at: Option<String>,
    /// Not tracked: null.
    pub updated_at: Option<String>,
}

/// `GET /v1/services` (not paginated, as in Zun).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceCollection {
    /// The services.
    pub services: Vec<ServiceView>,
}
