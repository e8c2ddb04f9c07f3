//! Instance drivers: how the service gets, and gets rid of, the instances
//! that containers run in, behind one trait so that the scheduler and the
//! reconciler never know which kind of instance they hold.
//!
//! A driver boots an instance with the user-data that `nest_cloud_init`
//! rendered, deletes it, and lists what really exists. It does not decide
//! *when* to boot or delete (the scheduler does), it never talks to agents
//! (the relay does), and it keeps no desired state (the database does): the
//! reconciler compares [`InstanceDriver::list`] with the database to find
//! orphans. A listing answers per project: one project the cloud will not
//! list for (its trust revoked) leaves the others judged.
//!
//! # Layout
//! - this file: [`InstanceDriver`], [`BootRequest`], [`BootedInstance`],
//!   [`Listing`], [`DriverError`] and its [`DriverErrorKind`], and
//!   [`DriverConfig`], the
//!   `[driver]` section that picks one;
//! - [`local`]: the embedded driver for one machine (DESIGN.md, "Instance
//!   drivers"): a network namespace with its own dockerd and agent;
//! - [`nova`]: servers in the tenant's own Nova project, and the driver's
//!   settings.

pub mod local;
pub mod nova;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use futures_util::future::BoxFuture;
use nest_core::ErrorKind;

use crate::domain::{InstanceId, ProjectId};

pub use local::{GuestAddresses, LocalDriver, LocalDriverConfig};
pub use nest_openstack::TenantAuthority;
pub use nova::{AuthorityLookup, NovaDriver, NovaDriverConfig, NovaNetwork};

/// The `[driver]` section: which driver boots instances, with that driver's
/// settings beside `kind`. Without a section, or without `kind`, the
/// driver is `local`. Unknown keys are refused, by name, when the file is
/// loaded.
#[derive(Clone, Debug)]
pub enum DriverConfig {
    /// `kind = "local"`: the embedded driver for one machine. The default.
    Local(LocalDriverConfig),
    /// `kind = "nova"`: servers in the tenant's own project. Boxed: it is
    /// far larger than the other variant.
    Nova(Box<NovaDriverConfig>),
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self::Local(LocalDriverConfig::default())
    }
}

impl DriverConfig {
    /// The driver's name as `kind` spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Local(_) => "local",
            Self::Nova(_) => "nova",
        }
    }
}

/// The tagged form serde derives; [`DriverConfig`]'s own `Deserialize`
/// only supplies the default `kind`, which serde's internally tagged enums
/// cannot.
#[derive(serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum TaggedDriverConfig {
    Local(LocalDriverConfig),
    Nova(Box<NovaDriverConfig>),
}

impl<'de> serde::Deserialize<'de> for DriverConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut section = toml::Table::deserialize(d)?;
        section
            .entry("kind")
            .or_insert_with(|| toml::Value::String("local".to_owned()));
        // The message names the offending key (`unknown field `bridgee``);
        // the file's parser adds where the section is.
        let tagged: TaggedDriverConfig = toml::Value::Table(section)
            .try_into()
            .map_err(|e: toml::de::Error| D::Error::custom(e.message()))?;
        Ok(match tagged {
            TaggedDriverConfig::Local(local) => Self::Local(local),
            TaggedDriverConfig::Nova(nova) => Self::Nova(nova),
        })
    }
}

/// The cause carried by a [`DriverError`]: any error, kept whole for the log.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What the scheduler asks a driver to boot.
#[derive(Clone)]
pub struct BootRequest {
    /// The id the service chose for the instance. The `local` driver uses
    /// it; a driver whose cloud assigns ids (Nova) returns the real one in
    /// [`BootedInstance::id`].
    pub instance_id: InstanceId,
    /// The project that owns the instance; the cloud enforces its quotas.
    pub project_id: ProjectId,
    /// The cloud-config user-data from `nest_cloud_init::render`. Holds the
    /// one-time enrollment token, so it is never logged.
    pub user_data: String,
    /// Flavor hint (name or id); `None` for the configured default. Ignored
    /// by the `local` driver.
    pub flavor: Option<String>,
    /// Image hint (name or id); `None` for the configured default. Ignored
    /// by the `local` driver.
    pub image: Option<String>,
    /// Network hint (name or id); `None` for the configured default. Ignored
    /// by the `local` driver.
    pub network: Option<String>,
    /// The tenant's authority for drivers that act in the tenant's own
    /// project (a trust or an application credential for `nova`), so that
    /// the cloud enforces the tenant's quotas. [`TenantAuthority::None`]
    /// for the `local` driver, which needs none. Its `Debug` never shows a
    /// secret.
    pub authority: TenantAuthority,
}

// By hand, because `user_data` holds the enrollment token.
impl fmt::Debug for BootRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootRequest")
            .field("instance_id", &self.instance_id)
            .field("project_id", &self.project_id)
            .field(
                "user_data",
                &format_args!("<{} bytes>", self.user_data.len()),
            )
            .field("flavor", &self.flavor)
            .field("image", &self.image)
            .field("network", &self.network)
            .field("authority", &self.authority)
            .finish()
    }
}

/// An instance a driver has booted.
#[derive(Clone, Debug, PartialEq)]
pub struct BootedInstance {
    /// The instance's real id: the requested one, or the one the cloud
    /// assigned (Nova's server id).
    pub id: InstanceId,
    /// The instance's address on each network, by network name; a published
    /// port is reachable at `addresses[network]:host_port`.
    pub addresses: BTreeMap<String, IpAddr>,
    /// Virtual CPUs the instance offers to containers.
    pub vcpus: f64,
    /// Memory the instance offers to containers, in MiB.
    pub memory_mib: u64,
}

/// Boots, deletes and lists instances. Dyn-compatible: the service holds an
/// `Arc<dyn InstanceDriver>` chosen by configuration.
///
/// # Example
///
/// ```no_run
/// use std::sync::Arc;
///
/// use nest_service::domain::{InstanceId, ProjectId};
/// use nest_service::driver::{
///     BootRequest, InstanceDriver, LocalDriver, LocalDriverConfig, TenantAuthority,
/// };
///
/// # async fn example(user_data: String) -> Result<(), Box<dyn std::error::Error>> {
/// let local = LocalDriver::new(LocalDriverConfig::new("/var/lib/nest/local"))?;
/// // The relay must listen where instances can reach it: the bridge's
/// // gateway address (or 0.0.0.0); `user_data` names it as the relay.
/// let _relay_host = local.gateway_address();
/// let driver: Arc<dyn InstanceDriver> = Arc::new(local);
///
/// let booted = driver
///     .boot(BootRequest {
///         instance_id: InstanceId::parse("6f9a1c2e-4b7d-4e0f-9a3b-2c1d0e9f8a7b")?,
///         project_id: ProjectId::parse("demo")?,
///         user_data,
///         flavor: None,
///         image: None,
///         network: None,
///         authority: TenantAuthority::None,
///     })
///     .await?;
/// println!("{} is at {:?}", booted.id, booted.addresses);
/// assert!(driver.list().await?.instances.contains(&booted.id));
/// driver.delete(&booted.id).await?;
/// driver.delete(&booted.id).await?; // already gone: still Ok
/// # Ok(())
/// # }
/// ```
pub trait InstanceDriver: Send + Sync {
    /// The driver's name as configuration spells it (`local`, `nova`).
    fn name(&self) -> &'static str;

    /// Boots an instance that runs the user-data's agent.
    ///
    /// Returns once the instance exists and has its addresses; the agent
    /// enrolls afterwards, on its own. A failed boot leaves nothing behind.
    ///
    /// # Errors
    /// [`DriverError`]; [`DriverErrorKind::OverQuota`] when the cloud (or
    /// the local subnet) has no room for another instance.
    fn boot(&self, req: BootRequest) -> BoxFuture<'_, Result<BootedInstance, DriverError>>;

    /// Deletes an instance and everything running in it. Idempotent: an
    /// instance that does not exist (any more) is `Ok`.
    ///
    /// # Errors
    /// [`DriverError`] when the instance could not be removed; calling
    /// again retries.
    fn delete<'a>(&'a self, id: &'a InstanceId) -> BoxFuture<'a, Result<(), DriverError>>;

    /// The instances that really exist, booted by this driver (or by an
    /// earlier run of the service with the same configuration), in every
    /// project whose listing answered; the projects whose listing failed
    /// are in [`Listing::unlisted`], with why.
    ///
    /// # Errors
    /// [`DriverError`] when nothing at all can be listed (the disk, or the
    /// database of delegations, cannot be read).
    fn list(&self) -> BoxFuture<'_, Result<Listing, DriverError>>;

    /// Withdraws `authority`, which the project delegated earlier and a new
    /// delegation replaced, with the user's own token (the `nova` driver
    /// deletes the old trust). Best effort: a delegation already gone is
    /// `Ok`. The default (no delegation) has nothing to withdraw.
    ///
    /// # Errors
    /// [`DriverError`] when the cloud refuses or cannot be asked.
    fn withdraw<'a>(
        &'a self,
        authority: &'a TenantAuthority,
        delegation: &'a Delegation,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        let _ = (authority, delegation);
        Box::pin(async { Ok(()) })
    }

    /// Obtains, with a user's own token, the authority the driver needs to
    /// act in the user's project later on (the `nova` driver: a Keystone
    /// trust to the service user). `None`: the driver needs none (the
    /// default, and the `local` driver).
    ///
    /// # Errors
    /// [`DriverError`] when the cloud refuses the delegation.
    fn delegate<'a>(
        &'a self,
        delegation: &'a Delegation,
    ) -> BoxFuture<'a, Result<Option<TenantAuthority>, DriverError>> {
        let _ = delegation;
        Box::pin(async { Ok(None) })
    }

    /// Writes the data of the cloud's image `image` (a Glance image of
    /// `container_format = docker`: a `docker save` tarball), as `project`
    /// may see it, into `sink`, which is closed at the end. `Ok(false)`:
    /// the cloud has no such image for the project (the default: a driver
    /// without an image service, like `local`).
    ///
    /// # Errors
    /// [`DriverError::Invalid`] for an image that is not a docker archive
    /// or not active; [`DriverError::Unavailable`] when the download fails.
    fn fetch_image<'a>(
        &'a self,
        project: &'a ProjectId,
        image: &'a str,
        sink: tokio::io::DuplexStream,
    ) -> BoxFuture<'a, Result<bool, DriverError>> {
        let _ = (project, image, sink);
        Box::pin(async { Ok(false) })
    }

    /// The cloud's limits and usage for `project` (Nova's, for `nova`);
    /// `None`: the driver enforces none (the default, and `local`).
    ///
    /// # Errors
    /// [`DriverError`] when the cloud cannot be asked.
    fn limits<'a>(
        &'a self,
        project: &'a ProjectId,
    ) -> BoxFuture<'a, Result<Option<ProjectLimits>, DriverError>> {
        let _ = project;
        Box::pin(async { Ok(None) })
    }

    /// Confirms with the cloud that instance `id` is one this driver booted
    /// and that it is up, before its agent's certificate is signed. The
    /// default (the `local` driver, whose instances are this machine's own
    /// namespaces) has nothing to ask.
    ///
    /// # Errors
    /// [`DriverError::Invalid`] saying which check failed.
    fn verify_enrollment<'a>(
        &'a self,
        id: &'a InstanceId,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        let _ = id;
        Box::pin(async { Ok(()) })
    }
}

/// What [`InstanceDriver::list`] found.
#[derive(Debug, Default)]
pub struct Listing {
    /// The instances that exist, in every project whose listing answered
    /// (all of them, for a driver that lists everything at once).
    pub instances: Vec<InstanceId>,
    /// The projects whose instances could not be listed, with why: their
    /// recorded instances are neither confirmed nor denied.
    pub unlisted: BTreeMap<ProjectId, DriverError>,
}

impl Listing {
    /// A listing in which every project answered.
    pub fn complete(instances: Vec<InstanceId>) -> Self {
        Self {
            instances,
            unlisted: BTreeMap::new(),
        }
    }
}

/// One resource's limit (`-1`: unlimited) and use, as the cloud counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// The limit.
    pub limit: i64,
    /// In use.
    pub in_use: i64,
}

/// A project's limits in the cloud that bound its instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProjectLimits {
    /// Instances (servers).
    pub instances: Limit,
    /// Virtual CPUs.
    pub cores: Limit,
    /// Memory, MiB.
    pub ram: Limit,
}

/// A user's request, with the user's own token, to let the service act in
/// the user's project.
pub struct Delegation {
    /// The user's Keystone id.
    pub user_id: String,
    /// The project the token is scoped to.
    pub project_id: String,
    /// The user's roles on it (the trust delegates these).
    pub roles: Vec<String>,
    /// The user's token. Never logged.
    pub token: nest_core::Secret<String>,
}

/// The classification of a [`DriverError`], which decides how the scheduler
/// reacts and what the API answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DriverErrorKind {
    /// The project (or the local subnet) has no room for another instance.
    OverQuota,
    /// The cloud or a host tool is down or too slow; a retry may help.
    Unavailable,
    /// The request cannot be carried out as asked; a retry cannot help.
    Invalid,
    /// The cloud refused the authority the project delegated (its trust
    /// revoked or deleted, its trustor disabled or deleted); a retry cannot
    /// help until one of the project's users delegates again.
    DelegationRefused,
    /// An unexpected failure; details go to the log only.
    Internal,
}

impl DriverErrorKind {
    /// The crate-wide kind (`OverQuota` answers HTTP 403, as Zun answers
    /// quota refusals).
    pub fn error_kind(self) -> ErrorKind {
        match self {
            Self::OverQuota => ErrorKind::OverQuota,
            Self::Unavailable => ErrorKind::Unavailable,
            Self::Invalid => ErrorKind::Invalid,
            Self::DelegationRefused => ErrorKind::Unavailable,
            Self::Internal => ErrorKind::Internal,
        }
    }

    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Unavailable)
    }
}

/// Why a driver could not boot, delete or list.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The cloud refused for lack of quota, or the local subnet is full.
    #[error("over quota: {reason}")]
    OverQuota {
        /// What ran out, as the cloud (or the driver) says it.
        reason: String,
    },
    /// Part of the request is unusable.
    #[error("invalid {what}")]
    Invalid {
        /// Which part (`user-data`, `instance id`, ...).
        what: &'static str,
        /// Why it is refused.
        #[source]
        source: BoxError,
    },
    /// A dependency did not answer (in time).
    #[error("{what} is unavailable")]
    Unavailable {
        /// The dependency (`dockerd of instance X`, `Nova`, ...).
        what: String,
        /// What failed.
        #[source]
        source: BoxError,
    },
    /// The cloud refused the authority `project` delegated to Nest.
    #[error(
        "the cloud refused the authority project {project} delegated to Nest; one of the \
         project's users renews it by running any container command"
    )]
    DelegationRefused {
        /// The project.
        project: ProjectId,
        /// The cloud's refusal.
        #[source]
        source: BoxError,
    },
    /// An unexpected failure on the host or in the cloud.
    #[error("{action} failed")]
    Internal {
        /// What the driver was doing.
        action: String,
        /// What failed.
        #[source]
        source: BoxError,
    },
}

impl DriverError {
    /// The classification of this error.
    pub fn kind(&self) -> DriverErrorKind {
        match self {
            Self::OverQuota { .. } => DriverErrorKind::OverQuota,
            Self::Unavailable { .. } => DriverErrorKind::Unavailable,
            Self::Invalid { .. } => DriverErrorKind::Invalid,
            Self::DelegationRefused { .. } => DriverErrorKind::DelegationRefused,
            Self::Internal { .. } => DriverErrorKind::Internal,
        }
    }

    /// An [`DriverError::Invalid`] whose cause is a plain explanation.
    pub fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            what,
            source: Box::new(Reason(reason.into())),
        }
    }

    /// An [`DriverError::Internal`] for `action`, caused by `source`.
    pub fn internal(action: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Internal {
            action: action.into(),
            source: source.into(),
        }
    }
}

/// A leaf cause that is only an explanation.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Reason(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_request_debug_hides_user_data() {
        let req = BootRequest {
            instance_id: InstanceId::parse("i-1").unwrap_or_else(|e| panic!("{e}")),
            project_id: ProjectId::parse("p").unwrap_or_else(|e| panic!("{e}")),
            user_data: "#cloud-config\nsecret-token".into(),
            flavor: None,
            image: None,
            network: None,
            authority: TenantAuthority::ApplicationCredential {
                id: "ac-1".into(),
                secret: nest_core::Secret::new("app-cred-secret".into()),
            },
        };
        let shown = format!("{req:?}");
        assert!(!shown.contains("secret-token"), "{shown}");
        assert!(shown.contains("<26 bytes>"), "{shown}");
        assert!(!shown.contains("app-cred-secret"), "{shown}");
        assert!(shown.contains("ac-1"), "{shown}");
    }

    #[test]
    fn kinds_map_to_the_shared_classification() {
        let over = DriverError::OverQuota {
            reason: "cores".into(),
        };
        assert_eq!(over.kind(), DriverErrorKind::OverQuota);
        assert_eq!(over.kind().error_kind(), ErrorKind::OverQuota);
        let invalid = DriverError::invalid("user-data", "not cloud-config");
        assert_eq!(invalid.kind().error_kind(), ErrorKind::Invalid);
        assert!(!invalid.kind().is_retryable());
        let unavailable = DriverError::Unavailable {
            what: "Nova".into(),
            source: Box::new(Reason("timed out".into())),
        };
        assert!(unavailable.kind().is_retryable());
    }

    #[test]
    fn the_trait_is_dyn_compatible() {
        fn holds(_: Option<std::sync::Arc<dyn InstanceDriver>>) {}
        holds(None);
    }
}
