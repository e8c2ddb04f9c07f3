//! The bodies of the Zun-compatible REST API (zun-api.md), spelled as Zun
//! spells them plus Nest's documented extensions. The only place the
//! API's JSON field names are written: the service renders and parses
//! these types, a client reads and sends them.
//!
//! # Layout
//! - [`containers`]: the container view and list, the create and update
//!   bodies;
//! - [`exec`]: the result of `execute`;
//! - [`inspect`]: `top` and `stats`;
//! - [`actions`]: recorded container actions and their events;
//! - [`hosts`]: instances shown as Zun hosts;
//! - [`images`]: Nest's stored images (`/v1/nest/images`);
//! - [`quotas`]: the limits that bound a project (Nova's);
//! - [`services`]: the agents shown as Zun services;
//! - [`queries`]: the query strings a client writes;
//! - [`docker`]: client certificates for the Docker endpoint
//!   (`/v1/nest/docker/certificates`);
//! - [`versions`]: the version documents at `/` and `/v1`;
//! - [`errors`]: Zun's error body;
//! - [`values`]: the lenient scalars Zun reads (bool-ish, number-ish);
//! - this file: [`Link`], the link of every resource view.
//!
//! The types are re-exported here, so that a client writes
//! `nest_api_types::zun::ContainerView`.

pub mod actions;
pub mod containers;
pub mod docker;
pub mod errors;
pub mod exec;
pub mod hosts;
pub mod images;
pub mod inspect;
pub mod queries;
pub mod quotas;
pub mod services;
pub mod values;
pub mod versions;

use serde::{Deserialize, Serialize};

pub use actions::{ActionCollection, ActionView, EventView};
pub use containers::{
    AddressView, CommandField, ContainerCollection, ContainerView, CreateContainerBody,
    FixedIpView, NetworkEntryView, NetworkListView, RestartPolicyBody, RestartPolicyView,
    UpdateContainerBody,
};
pub use docker::{CreateDockerCertificateBody, DockerCertificateCollection, DockerCertificateView};
pub use errors::{ErrorBody, ErrorEntry};
pub use exec::ExecView;
pub use hosts::{HostCollection, HostView};
pub use images::{ImageCollection, ImageView, ZunImageCollection, ZunImageView};
pub use inspect::{StatsView, TopView};
pub use queries::{
    ConsoleExit, DeleteContainerQuery, ExecResizeQuery, ExecuteQuery, KillQuery,
    ListContainersQuery, LogsQuery, QuotaQuery, ResizeQuery, TimeoutQuery, UploadImageQuery,
};
pub use quotas::{QuotaSetView, QuotaUsage, QuotaUsagesView};
pub use services::{ServiceCollection, ServiceView};
pub use values::{Flag, IntegerOrString, Lenient, NumberOrString};
pub use versions::{DocLink, MediaType, RootDocument, V1Document, VersionEntry};

/// A link in a resource view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Link {
    /// Absolute URL.
    pub href: String,
    /// `self` or `bookmark`.
    pub rel: String,
}
