//! The unauthenticated version documents `GET /` and `GET /v1`
//! (zun-api.md §1), which python-zunclient reads to negotiate `latest`:
//! it takes the `CURRENT` entry's `min_version`/`max_version`.

use serde::{Deserialize, Serialize};

/// A link in a version document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DocLink {
    /// URL.
    pub href: String,
    /// `self`, `bookmark` or `describedby`.
    pub rel: String,
    /// Media type of a `describedby` link.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

/// One API version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionEntry {
    /// `v1`.
    pub id: String,
    /// Self link.
    pub links: Vec<DocLink>,
    /// `CURRENT`.
    pub status: String,
    /// Newest microversion.
    pub max_version: String,
    /// Oldest microversion.
    pub min_version: String,
}

/// `GET /`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RootDocument {
    /// `OpenStack Zun API`: clients look for Zun.
    pub name: String,
    /// A fixed sentence.
    pub description: String,
    /// The versions.
    pub versions: Vec<VersionEntry>,
    /// The same as `versions[0]`.
    pub default_version: VersionEntry,
}

/// A media type of v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MediaType {
    /// `application/json`.
    pub base: String,
    /// `application/vnd.openstack.zun.v1+json`.
    #[serde(rename = "type")]
    pub media_type: String,
}

/// `GET /v1`: Zun's v1 document, with a `[self, bookmark]` pair for each
/// collection Zun lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct V1Document {
    /// `v1`.
    pub id: String,
    /// Self and describedby.
    pub links: Vec<DocLink>,
    /// Media types.
    pub media_types: Vec<MediaType>,
    /// Links.
    pub services: Vec<DocLink>,
    /// Links.
    pub containers: Vec<DocLink>,
    /// Links.
    pub images: Vec<DocLink>,
    /// Links.
    pub networks: Vec<DocLink>,
    /// Links.
    pub hosts: Vec<DocLink>,
    /// Links.
    pub capsules: Vec<DocLink>,
    /// Links.
    pub availability_zones: Vec<DocLink>,
    /// Links.
    pub quotas: Vec<DocLink>,
    /// Links.
    pub quota_classes: Vec<DocLink>,
    /// Links.
    pub registries: Vec<DocLink>,
}
