//! The answers of `GET /v1/containers/{c}/top` and `…/stats`, with the
//! keys Zun takes from Docker and the docker CLI (zun-api.md §2).

use serde::{Deserialize, Serialize};

/// `GET …/top`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TopView {
    /// Column titles.
    #[serde(rename = "Titles")]
    pub titles: Vec<String>,
    /// Rows.
    #[serde(rename = "Processes")]
    pub processes: Vec<Vec<String>>,
}

/// `GET …/stats`, with Zun's (docker-CLI-like) keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatsView {
    /// Container name.
    #[serde(rename = "CONTAINER")]
    pub container: String,
    /// CPU percent.
    #[serde(rename = "CPU %")]
    pub cpu_percent: f64,
    /// Memory in use, MiB.
    #[serde(rename = "MEM USAGE(MiB)")]
    pub mem_usage: f64,
    /// Memory limit, MiB.
    #[serde(rename = "MEM LIMIT(MiB)")]
    pub mem_limit: f64,
    /// Memory percent.
    #[serde(rename = "MEM %")]
    pub mem_percent: f64,
    /// `read/written` bytes.
    #[serde(rename = "BLOCK I/O(B)")]
    pub block_io: String,
    /// `received/sent` bytes.
    #[serde(rename = "NET I/O(B)")]
    pub net_io: String,
}
