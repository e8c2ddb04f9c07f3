//! The `nova` instance driver (DESIGN.md, "Instance drivers"): each
//! instance is a Nova server in the tenant's own project, so that Nova
//! enforces the tenant's quotas and there is no second quota system.
//!
//! The driver acts for the tenant with the authority the project delegated
//! (a Keystone trust whose trustee is the service user, or an application
//! credential), never with admin powers: a boot carries it in
//! [`BootRequest::authority`]; deletes, listings and enrollment checks look
//! it up through [`AuthorityLookup`] (the database's record of it).
//!
//! # What a server carries
//! - name `<server_tag>-<instance id>`; tags `<server_tag>` and
//!   `<server_tag>-<instance id>` (how the driver finds its servers again,
//!   even after a create whose answer was lost);
//! - metadata `nest_instance_id = <instance id>` (what enrollment checks and
//!   what a hypervisor-side tool reads);
//! - the cloud-config user data, base64, at most 65,535 bytes.
//!
//! # Booting
//! Flavor, image and networks come from the boot request's hints or the
//! configuration, and are looked up with the tenant's session (a private
//! network or image of the tenant's counts); one that names nothing is
//! refused clearly. The driver then waits for `ACTIVE` with backoff, up to
//! `boot_timeout`. A quota refusal (403 at create, or a server that goes
//! `ERROR` with fault 413 after Nova's recheck) is [`DriverError::OverQuota`]
//! with Nova's message; any failure after the create deletes the server and
//! releases its floating IPs, so nothing leaks.
//!
//! # Addresses
//! An attached network's alias gets the server's fixed address on it; an
//! external network's alias gets a floating IP from it, associated with the
//! port on the first attached network and described `<tag>-<instance id>`
//! so that a delete finds it even after the port is gone.
//!
//! This module is the only one in the service that talks to Nova and
//! Neutron; it never assumes anything about what runs inside a server.

pub mod config;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use futures_util::future::BoxFuture;
use nest_core::backoff::Backoff;
use nest_core::{ErrorKind, RequestId};
use nest_openstack::compute::{
    MAX_USER_DATA_BYTES, Server, ServerCreate, ServerNetworks, ServerQuery,
};
use nest_openstack::network::NetworkInfo;
use nest_openstack::{
    Compute, Image, Network, OpenStackError, Session, SessionOptions, TenantAuthority, TrustRequest,
};

pub use self::config::{NovaDriverConfig, NovaNetwork};
use super::{
    BootRequest, BootedInstance, BoxError, Delegation, DriverError, InstanceDriver, Listing, Reason,
};
use super::{Limit, ProjectLimits};
use crate::domain::{InstanceId, ProjectId};

/// The metadata key holding Nest's instance id.
pub const INSTANCE_METADATA_KEY: &str = "nest_instance_id";
/// The network hint that boots a server with no network at all.
pub const NO_NETWORK: &str = "none";
/// First wait between two looks at a booting server.
const POLL_INITIAL: Duration = Duration::from_millis(500);
/// Longest wait between two looks at a booting server.
const POLL_MAX: Duration = Duration::from_secs(5);
/// The Glance `container_format` of a `docker save` archive.
pub const DOCKER_CONTAINER_FORMAT: &str = "docker";
/// Longest download of a Glance image.
const IMAGE_DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(1800);
/// Creates tried when Nova's answer is lost (and no server came of it).
const CREATE_ATTEMPTS: u32 = 3;
/// How long to look for the server of a create whose answer was lost
/// before sending it again. A busy nova-api can take tens of seconds to
/// answer a create it goes on to honour, and its server shows in a listing
/// only once the API has committed it: re-sending too early boots a second
/// server for the same instance.
const LOST_CREATE_GRACE: Duration = Duration::from_secs(45);
/// Per-call timeout of a create: longer than the session's, since a lost
/// answer costs a grace period and risks a duplicate.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the driver learns which project an instance belongs to and what
/// authority that project delegated: the service's database.
pub trait AuthorityLookup: Send + Sync {
    /// The project that owns instance `id`, if it is recorded.
    fn project_of<'a>(
        &'a self,
        id: &'a InstanceId,
    ) -> BoxFuture<'a, Result<Option<ProjectId>, BoxError>>;

    /// The authority `project` delegated, if any.
    fn authority<'a>(
        &'a self,
        project: &'a ProjectId,
    ) -> BoxFuture<'a, Result<Option<TenantAuthority>, BoxError>>;

    /// Every project's authority.
    fn authorities(&self) -> BoxFuture<'_, Result<Vec<(ProjectId, TenantAuthority)>, BoxError>>;
}

impl AuthorityLookup for crate::db::Store {
    fn project_of<'a>(
        &'a self,
        id: &'a InstanceId,
    ) -> BoxFuture<'a, Result<Option<ProjectId>, BoxError>> {
        Box::pin(async move {
            match self.get_instance(id).await {
                Ok(instance) => Ok(Some(instance.project_id)),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn authority<'a>(
        &'a self,
        project: &'a ProjectId,
    ) -> BoxFuture<'a, Result<Option<TenantAuthority>, BoxError>> {
        Box::pin(async move { Ok(crate::db::Store::authority(self, project).await?) })
    }

    fn authorities(&self) -> BoxFuture<'_, Result<Vec<(ProjectId, TenantAuthority)>, BoxError>> {
        Box::pin(async move { Ok(crate::db::Store::authorities(self).await?) })
    }
}

/// The `nova` driver. See the module documentation.
pub struct NovaDriver {
    config: NovaDriverConfig,
    /// The service user's session: the trustee of the tenants' trusts.
    service: Session,
    lookup: Arc<dyn AuthorityLookup>,
    /// One session per delegated authority, so that tokens are reused.
    tenants: Mutex<HashMap<String, Arc<Session>>>,
    /// Owners of servers seen by `list`, for deleting servers no record
    /// knows any more.
    owners: Mutex<HashMap<InstanceId, ProjectId>>,
}

impl std::fmt::Debug for NovaDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NovaDriver")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing awaits or panics under these locks.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a refusal or failure of OpenStack means for the driver's caller;
/// a quota refusal keeps the cloud's own message as its reason.
fn from_openstack(what: &'static str, e: OpenStackError) -> DriverError {
    match e.kind() {
        ErrorKind::OverQuota => DriverError::OverQuota {
            reason: match &e {
                OpenStackError::Refused { message, .. } => message.clone(),
                other => other.to_string(),
            },
        },
        ErrorKind::Invalid
        | ErrorKind::NotFound
        | ErrorKind::Forbidden
        | ErrorKind::Conflict
        | ErrorKind::Unauthenticated => DriverError::Invalid {
            what,
            source: Box::new(e),
        },
        ErrorKind::Unavailable | ErrorKind::Timeout => DriverError::Unavailable {
            what: "OpenStack".to_owned(),
            source: Box::new(e),
        },
        ErrorKind::Internal => DriverError::internal(what, e),
    }
}

/// What a failure of a session acting for `project` means: a refused
/// login is the cloud refusing the project's delegation (Keystone answers
/// 404 for a deleted trust, 403 for a disabled trustor, 401 once the
/// trustor or the project is gone); anything else as [`from_openstack`].
fn from_tenant(project: &ProjectId, what: &'static str, e: OpenStackError) -> DriverError {
    match e {
        OpenStackError::CredentialsRejected { .. } => DriverError::DelegationRefused {
            project: project.clone(),
            source: Box::new(e),
        },
        e => from_openstack(what, e),
    }
}

fn lookup_failed(source: BoxError) -> DriverError {
    DriverError::internal("reading the tenant's authority", source)
}

/// The key of `authority`'s session in [`NovaDriver`]'s cache.
fn session_key(authority: &TenantAuthority) -> String {
    match authority {
        TenantAuthority::None => String::new(),
        TenantAuthority::Trust { trust_id } => format!("trust {trust_id}"),
        TenantAuthority::ApplicationCredential { id, .. } => format!("credential {id}"),
    }
}

/// The networks of one boot, resolved in the tenant's view.
struct Plan {
    /// Attached networks: (alias, network).
    attached: Vec<(String, NetworkInfo)>,
    /// External networks floating IPs come from: (alias, network).
    floating: Vec<(String, NetworkInfo)>,
}

impl NovaDriver {
    /// A driver with `config`, reading authorities through `lookup`. Does
    /// not call Keystone: the first boot logs in.
    ///
    /// # Errors
    /// [`DriverError::Invalid`] when the session configuration is unusable.
    pub async fn new(
        config: NovaDriverConfig,
        lookup: Arc<dyn AuthorityLookup>,
    ) -> Result<Self, DriverError> {
        let service = Session::new(&config.auth, SessionOptions::default())
            .await
            .map_err(|e| DriverError::Invalid {
                what: "driver.auth",
                source: Box::new(e),
            })?;
        Ok(Self {
            config,
            service,
            lookup,
            tenants: Mutex::new(HashMap::new()),
            owners: Mutex::new(HashMap::new()),
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &NovaDriverConfig {
        &self.config
    }

    /// The service user's session (the trustee of the tenants' trusts).
    pub fn service_session(&self) -> &Session {
        &self.service
    }

    /// The configured flavor, as the service user sees it: what the
    /// scheduler sizes a new instance by.
    ///
    /// # Errors
    /// [`DriverError::Invalid`] when it names no flavor; why Nova could
    /// not be asked.
    pub async fn default_flavor(&self) -> Result<nest_openstack::compute::Flavor, DriverError> {
        let compute = self.compute(&self.service).await?;
        compute
            .find_flavor(&self.config.flavor, &RequestId::generate())
            .await
            .map_err(|e| from_openstack("flavor", e))?
            .ok_or_else(|| {
                DriverError::invalid(
                    "driver.flavor",
                    format!("flavor {:?} names no flavor", self.config.flavor),
                )
            })
    }

    /// The tag every server of instance `id` carries.
    pub fn instance_tag(&self, id: &InstanceId) -> String {
        format!("{}-{id}", self.config.server_tag)
    }

    /// The session acting with `authority` (shared, so its token is reused).
    ///
    /// # Errors
    /// [`DriverError::Invalid`] without an authority, or when it cannot be
    /// used with the service's credentials.
    pub fn tenant_session(&self, authority: &TenantAuthority) -> Result<Arc<Session>, DriverError> {
        let key = session_key(authority);
        if let Some(session) = lock(&self.tenants).get(&key) {
            return Ok(session.clone());
        }
        let session =
            Arc::new(
                self.service
                    .for_tenant(authority)
                    .map_err(|e| DriverError::Invalid {
                        what: "tenant authority",
                        source: Box::new(e),
                    })?,
            );
        lock(&self.tenants).insert(key, session.clone());
        Ok(session)
    }

    /// Drops the cached session of `authority` (refused: a new delegation
    /// gets a session of its own).
    fn forget_session(&self, authority: &TenantAuthority) {
        lock(&self.tenants).remove(&session_key(authority));
    }

    /// The session acting in `project`, from its recorded authority.
    async fn project_session(&self, project: &ProjectId) -> Result<Arc<Session>, DriverError> {
        let authority = self
            .lookup
            .authority(project)
            .await
            .map_err(lookup_failed)?
            .ok_or_else(|| {
                DriverError::invalid(
                    "tenant authority",
                    format!(
                        "project {project} delegated no authority to Nest (a Keystone trust is \
                         created when one of its users creates a container with a token)"
                    ),
                )
            })?;
        self.tenant_session(&authority)
    }

    async fn compute<'s>(&self, session: &'s Session) -> Result<Compute<'s>, DriverError> {
        Compute::connect(
            session,
            self.config.interface,
            self.config.region.as_deref(),
        )
        .await
        .map_err(|e| from_openstack("compute endpoint", e))
    }

    async fn network<'s>(&self, session: &'s Session) -> Result<Network<'s>, DriverError> {
        Network::connect(
            session,
            self.config.interface,
            self.config.region.as_deref(),
        )
        .await
        .map_err(|e| from_openstack("network endpoint", e))
    }

    /// The networks a boot attaches and takes floating IPs from.
    async fn plan_networks(
        &self,
        network: &Network<'_>,
        hint: Option<&str>,
        rid: &RequestId,
    ) -> Result<Plan, DriverError> {
        let wanted: Vec<NovaNetwork> = match hint {
            Some(NO_NETWORK) => Vec::new(),
            Some(hint) => match self.config.networks.iter().find(|n| n.name == hint) {
                Some(n) => vec![n.clone()],
                None => vec![NovaNetwork {
                    name: hint.to_owned(),
                    network: hint.to_owned(),
                }],
            },
            None => self.config.networks.clone(),
        };
        let mut plan = Plan {
            attached: Vec::new(),
            floating: Vec::new(),
        };
        for n in wanted {
            let found = network
                .find_network(&n.network, rid)
                .await
                .map_err(|e| from_openstack("network", e))?
                .ok_or_else(|| {
                    DriverError::invalid(
                        "network",
                        format!(
                            "network {:?} (alias {:?}) names no network this project can use",
                            n.network, n.name
                        ),
                    )
                })?;
            if found.external {
                plan.floating.push((n.name, found));
            } else {
                plan.attached.push((n.name, found));
            }
        }
        if !plan.floating.is_empty() && plan.attached.is_empty() {
            return Err(DriverError::invalid(
                "network",
                "a floating IP needs an attached (non-external) network to associate with",
            ));
        }
        Ok(plan)
    }

    #[tracing::instrument(skip_all, fields(instance_id = %req.instance_id, project_id = %req.project_id))]
    async fn boot_server(&self, req: BootRequest) -> Result<BootedInstance, DriverError> {
        let rid = RequestId::generate();
        let id = req.instance_id.clone();
        let user_data = base64::engine::general_purpose::STANDARD.encode(req.user_data.as_bytes());
        if user_data.len() > MAX_USER_DATA_BYTES {
            return Err(DriverError::invalid(
                "user-data",
                format!(
                    "it is {} bytes once base64-encoded; Nova accepts at most {MAX_USER_DATA_BYTES}",
                    user_data.len()
                ),
            ));
        }
        if req.authority == TenantAuthority::None {
            return Err(DriverError::invalid(
                "tenant authority",
                format!(
                    "project {} delegated no authority to Nest (a Keystone trust is created \
                     when one of its users creates a container with a token)",
                    req.project_id
                ),
            ));
        }
        let session = self.tenant_session(&req.authority)?;
        let compute = self.compute(&session).await?;
        let network = self.network(&session).await?;
        let image_client = Image::connect(
            &session,
            self.config.interface,
            self.config.region.as_deref(),
        )
        .await
        .map_err(|e| from_openstack("image endpoint", e))?;

        let flavor_name = req.flavor.as_deref().unwrap_or(&self.config.flavor);
        let flavor = compute
            .find_flavor(flavor_name, &rid)
            .await
            .map_err(|e| from_openstack("flavor", e))?
            .ok_or_else(|| {
                DriverError::invalid(
                    "flavor",
                    format!("flavor {flavor_name:?} names no flavor this project can use"),
                )
            })?;
        let image_name = req.image.as_deref().unwrap_or(&self.config.image);
        let image = image_client
            .find_image(image_name, &rid)
            .await
            .map_err(|e| from_openstack("image", e))?
            .ok_or_else(|| {
                DriverError::invalid(
                    "image",
                    format!("image {image_name:?} names no image this project can use"),
                )
            })?;
        let plan = self
            .plan_networks(&network, req.network.as_deref(), &rid)
            .await?;
        if let Some(zone) = &self.config.availability_zone {
            let zones = compute
                .availability_zones(&rid)
                .await
                .map_err(|e| from_openstack("availability zone", e))?;
            if !zones.contains(zone) {
                return Err(DriverError::invalid(
                    "availability zone",
                    format!("availability zone {zone:?} does not exist (Nova has {zones:?})"),
                ));
            }
        }
        if let Some(key) = &self.config.key_name
            && !compute
                .has_key_pair(key, &rid)
                .await
                .map_err(|e| from_openstack("key pair", e))?
        {
            return Err(DriverError::invalid(
                "key pair",
                format!("key pair {key:?} does not exist for the trustor"),
            ));
        }

        let tag = self.instance_tag(&id);
        let create = ServerCreate {
            name: tag.clone(),
            flavor_ref: flavor.id.clone(),
            image_ref: image.id,
            networks: if plan.attached.is_empty() {
                ServerNetworks::None
            } else {
                ServerNetworks::Networks(plan.attached.iter().map(|(_, n)| n.id.clone()).collect())
            },
            availability_zone: self.config.availability_zone.clone(),
            key_name: self.config.key_name.clone(),
            user_data: Some(user_data),
            metadata: BTreeMap::from([(INSTANCE_METADATA_KEY.to_owned(), id.to_string())]),
            tags: vec![self.config.server_tag.clone(), tag.clone()],
        };
        let started = tokio::time::Instant::now();
        let server_id = self.create_once(&compute, &create, &tag, &rid).await?;
        tracing::info!(server_id = %server_id, flavor = %flavor.name, "server requested");
        let outcome = async {
            let server = self.wait_active(&compute, &server_id, &rid).await?;
            self.remove_duplicates(&compute, &tag, &server_id, &rid).await;
            tracing::info!(server_id = %server_id, boot_s = started.elapsed().as_secs_f64(), "server active");
            self.addresses(&network, &server, &plan, &tag, &rid).await
        }
        .await;
        match outcome {
            Ok(addresses) => Ok(BootedInstance {
                id,
                addresses,
                vcpus: f64::from(flavor.vcpus),
                memory_mib: flavor.ram,
            }),
            Err(e) => {
                tracing::warn!(server_id = %server_id, error = %crate::error_chain(&e), "boot failed; deleting the server");
                if let Err(cleanup) = self.remove(&compute, &network, &tag, &rid).await {
                    tracing::warn!(error = %crate::error_chain(&cleanup), "cleanup after a failed boot failed; the reconciler retries");
                }
                Err(e)
            }
        }
    }

    /// Creates the server, or finds the one an earlier attempt created
    /// when Nova's answer was lost.
    async fn create_once(
        &self,
        compute: &Compute<'_>,
        create: &ServerCreate,
        tag: &str,
        rid: &RequestId,
    ) -> Result<String, DriverError> {
        let mut attempt = 1;
        loop {
            match compute.create_server(create, CREATE_TIMEOUT, rid).await {
                Ok(id) => return Ok(id),
                Err(e) if e.kind().is_retryable() && attempt < CREATE_ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "a server create was not answered; looking for it");
                    if let Some(id) = self.find_created(compute, tag, rid).await {
                        return Ok(id);
                    }
                    attempt += 1;
                }
                Err(e) => return Err(from_openstack("server", e)),
            }
        }
    }

    /// Looks for the server a create without an answer made, for up to
    /// [`LOST_CREATE_GRACE`].
    async fn find_created(
        &self,
        compute: &Compute<'_>,
        tag: &str,
        rid: &RequestId,
    ) -> Option<String> {
        let query = ServerQuery {
            tags: vec![tag.to_owned()],
            all_tenants: false,
        };
        let deadline = tokio::time::Instant::now() + LOST_CREATE_GRACE;
        let mut backoff = Backoff::new(POLL_INITIAL, POLL_MAX);
        loop {
            if let Ok(found) = compute.servers(&query, rid).await
                && let Some(server) = found.into_iter().next()
            {
                tracing::info!(server_id = %server.id, "the unanswered create made a server");
                return Some(server.id);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return None;
            }
            tokio::time::sleep(backoff.next_delay().min(deadline - now)).await;
        }
    }

    /// Deletes any other server tagged for this instance: should a create
    /// that seemed lost have been honoured after all, its server must not
    /// outlive the boot (it would hold quota, and two servers claiming one
    /// instance fail the enrollment check).
    async fn remove_duplicates(
        &self,
        compute: &Compute<'_>,
        tag: &str,
        keep: &str,
        rid: &RequestId,
    ) {
        let query = ServerQuery {
            tags: vec![tag.to_owned()],
            all_tenants: false,
        };
        let Ok(servers) = compute.servers(&query, rid).await else {
            return;
        };
        for server in servers.into_iter().filter(|s| s.id != keep) {
            match compute.delete_server(&server.id, rid).await {
                Ok(_) => {
                    tracing::warn!(server_id = %server.id, "deleted a duplicate server of a create that seemed lost")
                }
                Err(e) => {
                    tracing::warn!(server_id = %server.id, error = %e, "cannot delete a duplicate server; the reconciler retries")
                }
            }
        }
    }

    /// Waits for `ACTIVE`, up to `boot_timeout`.
    async fn wait_active(
        &self,
        compute: &Compute<'_>,
        server_id: &str,
        rid: &RequestId,
    ) -> Result<Server, DriverError> {
        let timeout = self.config.boot_timeout.get();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut backoff = Backoff::new(POLL_INITIAL, POLL_MAX);
        loop {
            match compute.server(server_id, rid).await {
                Ok(Some(server)) if server.is_active() => return Ok(server),
                Ok(Some(server)) if server.is_error() => {
                    return Err(match server.fault {
                        // Nova's conductor recheck: the quota ran out
                        // between the API's check and the boot.
                        Some(fault) if fault.code == 413 => DriverError::OverQuota {
                            reason: fault.message,
                        },
                        Some(fault) => DriverError::internal(
                            format!("booting server {server_id}"),
                            Reason(format!("Nova: {} (fault {})", fault.message, fault.code)),
                        ),
                        None => DriverError::internal(
                            format!("booting server {server_id}"),
                            Reason("Nova put it in ERROR without a fault".into()),
                        ),
                    });
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(DriverError::internal(
                        format!("booting server {server_id}"),
                        Reason("it was deleted while booting".into()),
                    ));
                }
                Err(e) if e.kind().is_retryable() => {
                    tracing::info!(error = %e, "cannot read a booting server; retrying");
                }
                Err(e) => return Err(from_openstack("server", e)),
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(DriverError::Unavailable {
                    what: "Nova".to_owned(),
                    source: Box::new(Reason(format!(
                        "server {server_id} was not ACTIVE within {timeout:?}"
                    ))),
                });
            }
            tokio::time::sleep(backoff.next_delay().min(deadline - now)).await;
        }
    }

    /// The instance's address under each alias; floating IPs are
    /// allocated and associated here.
    async fn addresses(
        &self,
        network: &Network<'_>,
        server: &Server,
        plan: &Plan,
        tag: &str,
        rid: &RequestId,
    ) -> Result<BTreeMap<String, IpAddr>, DriverError> {
        let mut addresses = BTreeMap::new();
        for (alias, net) in &plan.attached {
            let fixed = server.addresses_of(&net.name, "fixed").next();
            if let Some(ip) = fixed.and_then(|a| a.parse::<IpAddr>().ok()) {
                addresses.insert(alias.clone(), ip);
            }
        }
        if plan.floating.is_empty() {
            return Ok(addresses);
        }
        let Some((_, first)) = plan.attached.first() else {
            return Ok(addresses);
        };
        let ports = network
            .server_ports(&server.id, rid)
            .await
            .map_err(|e| from_openstack("port", e))?;
        let port = ports
            .iter()
            .find(|p| p.network_id == first.id)
            .ok_or_else(|| {
                DriverError::internal(
                    format!("associating a floating IP with server {}", server.id),
                    Reason(format!("it has no port on network {}", first.name)),
                )
            })?;
        for (alias, external) in &plan.floating {
            let fip = network
                .create_floating_ip(&external.id, &port.id, tag, rid)
                .await
                .map_err(|e| from_openstack("floating IP", e))?;
            let ip = fip.floating_ip_address.parse::<IpAddr>().map_err(|e| {
                DriverError::internal(
                    format!("reading floating IP {}", fip.id),
                    Reason(format!("{:?}: {e}", fip.floating_ip_address)),
                )
            })?;
            tracing::info!(%alias, address = %ip, "floating IP associated");
            addresses.insert(alias.clone(), ip);
        }
        Ok(addresses)
    }

    /// Releases the floating IPs and deletes the servers of `tag`.
    async fn remove(
        &self,
        compute: &Compute<'_>,
        network: &Network<'_>,
        tag: &str,
        rid: &RequestId,
    ) -> Result<(), DriverError> {
        let floating = network
            .floating_ips_described(tag, rid)
            .await
            .map_err(|e| from_openstack("floating IP", e))?;
        for fip in floating {
            network
                .delete_floating_ip(&fip.id, rid)
                .await
                .map_err(|e| from_openstack("floating IP", e))?;
            tracing::info!(address = %fip.floating_ip_address, "floating IP released");
        }
        let query = ServerQuery {
            tags: vec![tag.to_owned()],
            all_tenants: false,
        };
        let servers = compute
            .servers(&query, rid)
            .await
            .map_err(|e| from_openstack("server", e))?;
        for server in servers {
            compute
                .delete_server(&server.id, rid)
                .await
                .map_err(|e| from_openstack("server", e))?;
            tracing::info!(server_id = %server.id, "server deleted");
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(instance_id = %id))]
    async fn delete_server(&self, id: &InstanceId) -> Result<(), DriverError> {
        let known = lock(&self.owners).get(id).cloned();
        let project = match known {
            Some(project) => Some(project),
            None => self.lookup.project_of(id).await.map_err(lookup_failed)?,
        };
        let Some(project) = project else {
            tracing::warn!("no project is known for this instance; nothing to delete");
            return Ok(());
        };
        let session = self.project_session(&project).await?;
        let compute = self.compute(&session).await?;
        let network = self.network(&session).await?;
        let rid = RequestId::generate();
        self.remove(&compute, &network, &self.instance_tag(id), &rid)
            .await?;
        lock(&self.owners).remove(id);
        Ok(())
    }

    /// Lists each delegating project's servers on its own: a project whose
    /// delegation is refused, or whose listing fails, is reported in
    /// [`Listing::unlisted`] and leaves the others listed.
    async fn list_servers(&self) -> Result<Listing, DriverError> {
        let rid = RequestId::generate();
        let mut listing = Listing::default();
        for (project, authority) in self.lookup.authorities().await.map_err(lookup_failed)? {
            match self.list_project(&project, &authority, &rid).await {
                Ok(ids) => {
                    let mut owners = lock(&self.owners);
                    for id in &ids {
                        owners.insert(id.clone(), project.clone());
                    }
                    listing.instances.extend(ids);
                }
                Err(e) => {
                    if e.kind() == super::DriverErrorKind::DelegationRefused {
                        self.forget_session(&authority);
                    }
                    listing.unlisted.insert(project, e);
                }
            }
        }
        listing.instances.sort();
        listing.instances.dedup();
        Ok(listing)
    }

    /// The servers of `project`, listed with the authority it delegated.
    async fn list_project(
        &self,
        project: &ProjectId,
        authority: &TenantAuthority,
        rid: &RequestId,
    ) -> Result<Vec<InstanceId>, DriverError> {
        if let TenantAuthority::Trust { trust_id } = authority {
            // Asked with the service's own token, first: a token already
            // issued through a deleted trust may still be accepted by Nova
            // for minutes (keystonemiddleware's token cache), and a refused
            // service login here is the service's problem, not the
            // project's.
            let exists = self
                .service
                .trust_exists(trust_id, rid)
                .await
                .map_err(|e| from_openstack("trust", e))?;
            if !exists {
                return Err(DriverError::DelegationRefused {
                    project: project.clone(),
                    source: Box::new(Reason(format!(
                        "Keystone has no trust {trust_id} any more (it was deleted, or its \
                         trustor was)"
                    ))),
                });
            }
        }
        let session = self.tenant_session(authority)?;
        let compute = Compute::connect(
            &session,
            self.config.interface,
            self.config.region.as_deref(),
        )
        .await
        .map_err(|e| from_tenant(project, "compute endpoint", e))?;
        let query = ServerQuery {
            tags: vec![self.config.server_tag.clone()],
            all_tenants: false,
        };
        let servers = compute
            .servers(&query, rid)
            .await
            .map_err(|e| from_tenant(project, "server", e))?;
        Ok(servers
            .into_iter()
            .filter_map(|server| {
                server
                    .metadata
                    .get(INSTANCE_METADATA_KEY)
                    .and_then(|v| InstanceId::parse(v).ok())
            })
            .collect())
    }

    /// Downloads Glance image `id` with `project`'s authority into `sink`.
    async fn download_image(
        &self,
        project: &ProjectId,
        id: &str,
        mut sink: tokio::io::DuplexStream,
    ) -> Result<bool, DriverError> {
        use tokio::io::AsyncWriteExt;
        let rid = RequestId::generate();
        let session = self.project_session(project).await?;
        let glance = Image::connect(
            &session,
            self.config.interface,
            self.config.region.as_deref(),
        )
        .await
        .map_err(|e| from_openstack("image endpoint", e))?;
        let Some(info) = glance
            .image(id, &rid)
            .await
            .map_err(|e| from_openstack("image", e))?
        else {
            return Ok(false);
        };
        if info.container_format.as_deref() != Some(DOCKER_CONTAINER_FORMAT) {
            return Err(DriverError::invalid(
                "image",
                format!(
                    "Glance image {id} has container_format {:?}; a container runs only a \
                     `docker save` archive uploaded with --container-format docker",
                    info.container_format.as_deref().unwrap_or("none")
                ),
            ));
        }
        if info.status != "active" {
            return Err(DriverError::invalid(
                "image",
                format!("Glance image {id} is {}, not active", info.status),
            ));
        }
        let mut response = glance
            .download(id, IMAGE_DOWNLOAD_TIMEOUT, &rid)
            .await
            .map_err(|e| from_openstack("image", e))?;
        let failed = |source: BoxError| DriverError::Unavailable {
            what: format!("the download of Glance image {id}"),
            source,
        };
        let mut bytes = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(|e| failed(Box::new(e)))? {
            sink.write_all(&chunk)
                .await
                .map_err(|e| failed(Box::new(e)))?;
            bytes += chunk.len() as u64;
        }
        sink.shutdown().await.map_err(|e| failed(Box::new(e)))?;
        tracing::info!(image_id = %id, bytes, "Glance image downloaded");
        Ok(true)
    }

    /// Checks, before an agent's certificate is signed, that instance `id`
    /// is a server of its recorded project, `ACTIVE`, carrying Nest's id in
    /// its metadata.
    ///
    /// # Errors
    /// [`DriverError::Invalid`] saying which check failed;
    /// [`DriverError::Unavailable`] when Nova cannot be asked.
    pub async fn verify_server(&self, id: &InstanceId) -> Result<(), DriverError> {
        let refuse = |reason: String| DriverError::invalid("enrollment", reason);
        let project = self
            .lookup
            .project_of(id)
            .await
            .map_err(lookup_failed)?
            .ok_or_else(|| refuse(format!("instance {id} is not recorded")))?;
        let session = self.project_session(&project).await?;
        let compute = self.compute(&session).await?;
        let rid = RequestId::generate();
        let query = ServerQuery {
            tags: vec![self.instance_tag(id)],
            all_tenants: false,
        };
        let servers = compute
            .servers(&query, &rid)
            .await
            .map_err(|e| from_openstack("server", e))?;
        let [server] = servers.as_slice() else {
            return Err(refuse(format!(
                "{} servers of project {project} are tagged for instance {id}",
                servers.len()
            )));
        };
        if server.tenant_id != project.as_str() {
            return Err(refuse(format!(
                "server {} belongs to project {}, not {project}",
                server.id, server.tenant_id
            )));
        }
        if server
            .metadata
            .get(INSTANCE_METADATA_KEY)
            .map(String::as_str)
            != Some(id.as_str())
        {
            return Err(refuse(format!(
                "server {} does not carry {INSTANCE_METADATA_KEY} = {id}",
                server.id
            )));
        }
        if !server.is_active() {
            return Err(refuse(format!(
                "server {} is {}, not ACTIVE",
                server.id, server.status
            )));
        }
        Ok(())
    }
}

impl InstanceDriver for NovaDriver {
    fn name(&self) -> &'static str {
        "nova"
    }

    /// Boots a server; see the module documentation. Not cancel safe: a
    /// boot dropped midway leaves a tagged server that `list` reports and
    /// `delete` removes.
    fn boot(&self, req: BootRequest) -> BoxFuture<'_, Result<BootedInstance, DriverError>> {
        Box::pin(self.boot_server(req))
    }

    fn delete<'a>(&'a self, id: &'a InstanceId) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(self.delete_server(id))
    }

    fn list(&self) -> BoxFuture<'_, Result<Listing, DriverError>> {
        Box::pin(self.list_servers())
    }

    fn withdraw<'a>(
        &'a self,
        authority: &'a TenantAuthority,
        delegation: &'a Delegation,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            self.forget_session(authority);
            let TenantAuthority::Trust { trust_id } = authority else {
                // An application credential is the user's own to delete.
                return Ok(());
            };
            self.service
                .delete_trust(&delegation.token, trust_id, &RequestId::generate())
                .await
                .map(|_| ())
                .map_err(|e| from_openstack("trust", e))
        })
    }

    fn delegate<'a>(
        &'a self,
        delegation: &'a Delegation,
    ) -> BoxFuture<'a, Result<Option<TenantAuthority>, DriverError>> {
        Box::pin(async move {
            let rid = RequestId::generate();
            let trustee = self
                .service
                .user_id()
                .await
                .map_err(|e| from_openstack("service user", e))?;
            let trust_id = self
                .service
                .create_trust(
                    &delegation.token,
                    &TrustRequest {
                        trustor_user_id: delegation.user_id.clone(),
                        trustee_user_id: trustee,
                        project_id: delegation.project_id.clone(),
                        roles: delegation.roles.clone(),
                    },
                    &rid,
                )
                .await
                .map_err(|e| from_openstack("delegation", e))?;
            Ok(Some(TenantAuthority::Trust { trust_id }))
        })
    }

    fn fetch_image<'a>(
        &'a self,
        project: &'a ProjectId,
        image: &'a str,
        sink: tokio::io::DuplexStream,
    ) -> BoxFuture<'a, Result<bool, DriverError>> {
        Box::pin(self.download_image(project, image, sink))
    }

    fn limits<'a>(
        &'a self,
        project: &'a ProjectId,
    ) -> BoxFuture<'a, Result<Option<ProjectLimits>, DriverError>> {
        Box::pin(async move {
            let session = self.project_session(project).await?;
            let compute = self.compute(&session).await?;
            let limits = compute
                .limits(None, &RequestId::generate())
                .await
                .map_err(|e| from_openstack("limits", e))?;
            let limit = |limit, in_use| Limit { limit, in_use };
            Ok(Some(ProjectLimits {
                instances: limit(limits.max_total_instances, limits.total_instances_used),
                cores: limit(limits.max_total_cores, limits.total_cores_used),
                ram: limit(limits.max_total_ram_size, limits.total_ram_used),
            }))
        })
    }

    fn verify_enrollment<'a>(
        &'a self,
        id: &'a InstanceId,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(self.verify_server(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers nothing: no test here may reach a cloud.
    struct NoAuthorities;

    impl AuthorityLookup for NoAuthorities {
        fn project_of<'a>(
            &'a self,
            _: &'a InstanceId,
        ) -> BoxFuture<'a, Result<Option<ProjectId>, BoxError>> {
            Box::pin(async { Ok(None) })
        }
        fn authority<'a>(
            &'a self,
            _: &'a ProjectId,
        ) -> BoxFuture<'a, Result<Option<TenantAuthority>, BoxError>> {
            Box::pin(async { Ok(None) })
        }
        fn authorities(
            &self,
        ) -> BoxFuture<'_, Result<Vec<(ProjectId, TenantAuthority)>, BoxError>> {
            Box::pin(async { Ok(Vec::new()) })
        }
    }

    async fn driver() -> NovaDriver {
        let config: NovaDriverConfig = toml::from_str(
            r#"
flavor = "m1.tiny"
image = "img"
networks = [{ name = "private", network = "private" }]
[auth]
auth_url = "http://127.0.0.1:9/v3"
username = "nest"
password = "pw"
project_name = "service"
"#,
        )
        .expect("a config");
        NovaDriver::new(config, Arc::new(NoAuthorities))
            .await
            .expect("no call is made before the first boot")
    }

    fn request(user_data: String, authority: TenantAuthority) -> BootRequest {
        BootRequest {
            instance_id: InstanceId::parse("6f9a1c2e-4b7d-4e0f-9a3b-2c1d0e9f8a7b").expect("an id"),
            project_id: ProjectId::parse("p1").expect("a project"),
            user_data,
            flavor: None,
            image: None,
            network: None,
            authority,
        }
    }

    #[tokio::test]
    async fn user_data_over_novas_limit_is_refused_before_any_call() {
        let driver = driver().await;
        let trust = TenantAuthority::Trust {
            trust_id: "t".into(),
        };
        // 49,152 bytes are 65,536 once base64-encoded: one too many.
        let err = driver
            .boot(request("x".repeat(49_152), trust))
            .await
            .expect_err("too big");
        assert_eq!(err.kind(), super::super::DriverErrorKind::Invalid);
        assert!(
            crate::error_chain(&err)
                .contains("65536 bytes once base64-encoded; Nova accepts at most 65535"),
            "{}",
            crate::error_chain(&err)
        );
    }

    #[tokio::test]
    async fn a_boot_without_a_delegation_is_refused_clearly() {
        let driver = driver().await;
        let err = driver
            .boot(request("#cloud-config\n".into(), TenantAuthority::None))
            .await
            .expect_err("no authority");
        assert!(
            crate::error_chain(&err).contains("project p1 delegated no authority to Nest"),
            "{}",
            crate::error_chain(&err)
        );
        assert_eq!(
            driver.instance_tag(&request(String::new(), TenantAuthority::None).instance_id),
            "nest-6f9a1c2e-4b7d-4e0f-9a3b-2c1d0e9f8a7b"
        );
    }

    #[test]
    fn quota_refusals_keep_novas_words() {
        let e = from_openstack(
            "server",
            OpenStackError::Refused {
                service: "nova",
                operation: "boot a server",
                status: 403,
                message:
                    "Quota exceeded for instances: Requested 1, but already used 1 of 1 instances"
                        .into(),
                request: nest_openstack::RemoteRequestId(None),
            },
        );
        assert_eq!(
            e.to_string(),
            "over quota: Quota exceeded for instances: Requested 1, but already used 1 of 1 instances"
        );
        let e = from_openstack(
            "flavor",
            OpenStackError::Refused {
                service: "nova",
                operation: "show a flavor",
                status: 400,
                message: "bad".into(),
                request: nest_openstack::RemoteRequestId(None),
            },
        );
        assert_eq!(e.kind(), super::super::DriverErrorKind::Invalid);
    }
}
