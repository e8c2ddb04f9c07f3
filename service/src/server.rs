//! Assembling and running the whole service: database, CA, embedded relay,
//! driver, scheduler, reconciler and the HTTP API, with one shutdown path.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use nest_pki::{MemoryTokenStore, TokenStore};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agents::{AgentEvent, AgentLink};
use crate::api::{ApiConfig, ApiState};
use crate::app::{App, EventRecorder, HistoryLimits};
use crate::auth::Authenticate;
use crate::ca::ServicePki;
use crate::config::{AuthConfig, ServiceConfig};
use crate::db::Store;
use crate::driver::{DriverConfig, InstanceDriver, LocalDriver, NovaDriver};
use crate::images::ProjectImages;
use crate::metrics::Metrics;
use crate::reconcile::Reconciler;
use crate::relay_link::RelayLink;
use crate::scheduler::{Scheduler, SchedulerSettings};

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The database could not be opened or migrated.
    #[error("opening the database")]
    Database(#[source] crate::db::DbError),
    /// The driver settings are unusable.
    #[error("instance driver settings")]
    Driver(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The auth settings are unusable.
    #[error("auth settings")]
    Auth(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The CA could not be loaded or a certificate issued.
    #[error("certificate authority")]
    Ca(#[from] crate::ca::CaError),
    /// The relay link could not be set up.
    #[error("relay")]
    Relay(#[from] crate::relay_link::RelayLinkError),
    /// A listener's address could not be read.
    #[error("reading a listener's address")]
    Listener(#[source] std::io::Error),
    /// The HTTP server failed.
    #[error("HTTP server")]
    Http(#[source] std::io::Error),
}

/// The listeners the service serves on (bound by the caller, so tests can
/// bind port 0 and `main` can report the addresses).
pub struct Listeners {
    /// The HTTP API.
    pub api: TcpListener,
    /// The embedded relay; `None` when a stand-alone relay is configured.
    pub relay: Option<TcpListener>,
    /// The Docker endpoint; `None` when it is not enabled.
    pub docker: Option<TcpListener>,
}

/// Deletes every instance the configured driver has (processes, networks,
/// state), for `nest-service delete-instances` after the service stopped.
///
/// # Errors
/// [`ServeError::Driver`] when the driver settings are unusable or an
/// instance cannot be deleted.
pub async fn delete_instances(config: &ServiceConfig) -> Result<usize, ServeError> {
    // The nova driver acts with the authorities the database records.
    let database_url = config.database_url(std::env::var("NEST_DATABASE_URL").ok());
    let store = Store::connect(&database_url)
        .await
        .map_err(ServeError::Database)?;
    let setup = driver(config, &store).await?;
    let listing = setup
        .driver
        .list()
        .await
        .map_err(|e| ServeError::Driver(Box::new(e)))?;
    for id in &listing.instances {
        setup
            .driver
            .delete(id)
            .await
            .map_err(|e| ServeError::Driver(Box::new(e)))?;
        tracing::info!(instance_id = %id, "instance deleted");
    }
    // Every project that could be listed is done; the first that could
    // not is the error (each is logged).
    let mut unlisted = listing.unlisted.into_iter();
    if let Some((project, e)) = unlisted.next() {
        for (other, e) in unlisted {
            tracing::warn!(project_id = %other, error = %crate::error_chain(&e), "cannot list this project's instances; none of them was deleted");
        }
        tracing::warn!(project_id = %project, "cannot list this project's instances; none of them was deleted");
        return Err(ServeError::Driver(Box::new(e)));
    }
    Ok(listing.instances.len())
}

/// Where instances get the agent: baked into the image, or downloaded from
/// this service (then the binary and its SHA-256 are also returned, for the
/// API to serve).
async fn agent_source(
    config: &ServiceConfig,
) -> Result<
    (
        nest_cloud_init::AgentSource,
        Option<(std::path::PathBuf, String)>,
    ),
    ServeError,
> {
    use crate::config::AgentSourceKind;
    match config.agent.source {
        AgentSourceKind::Baked => Ok((nest_cloud_init::AgentSource::default(), None)),
        AgentSourceKind::Download => {
            let binary = config
                .agent
                .binary
                .clone()
                .unwrap_or_else(crate::driver::local::default_agent_binary);
            let path = binary.clone();
            let sha256 = tokio::task::spawn_blocking(move || sha256_file(&path))
                .await
                .map_err(|e| ServeError::Driver(Box::new(e)))?
                .map_err(|e| {
                    ServeError::Driver(
                        format!("reading the agent binary {}: {e}", binary.display()).into(),
                    )
                })?;
            let base = config.api.public_url.clone().unwrap_or_default();
            let source = nest_cloud_init::AgentSource::Download {
                url: format!("{}/v1/nest/agent", base.trim_end_matches('/')),
                sha256: sha256.clone(),
            };
            Ok((source, Some((binary, sha256))))
        }
    }
}

/// SHA-256 of a file, hex.
fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        context.update(&buffer[..n]);
    }
    Ok(context
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Issues a certificate for a stand-alone `nest-relay` from the service's
/// CA (created if missing) and writes `ca.pem`, `relay.pem` and
/// `relay-key.pem` (mode 0600) into `out`.
///
/// # Errors
/// [`ServeError::Ca`] when the CA is unusable; [`ServeError::Listener`]
/// when the files cannot be written.
pub fn issue_relay_certificate(
    config: &ServiceConfig,
    name: &str,
    ips: Vec<IpAddr>,
    dns_names: Vec<String>,
    out: &std::path::Path,
) -> Result<(), ServeError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let issued = crate::ca::issue_relay(&config.state_dir, name, ips, dns_names)?;
    std::fs::create_dir_all(out).map_err(ServeError::Listener)?;
    let write = |file: &str, contents: &str, mode: u32| -> Result<(), ServeError> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(out.join(file))
            .map_err(ServeError::Listener)?;
        f.write_all(contents.as_bytes())
            .map_err(ServeError::Listener)
    };
    write("ca.pem", &issued.0, 0o644)?;
    write("relay.pem", &issued.1.certificate_pem, 0o644)?;
    write("relay-key.pem", issued.1.private_key_pem.expose(), 0o600)?;
    Ok(())
}

/// The configured driver, with what the service needs to know of it.
struct DriverSetup {
    driver: Arc<dyn InstanceDriver>,
    /// Where its instances reach the host (the relay is advertised there).
    gateway: Option<Ipv4Addr>,
    /// vCPUs of an instance it boots.
    vcpus: f64,
    /// Memory of an instance it boots, MiB.
    memory_mib: u64,
    /// The `local` driver, whose instances the service also supervises
    /// (restarting a dead engine or agent, as the guest's systemd would).
    supervised: Option<Arc<LocalDriver>>,
}

/// Builds the driver named in the config (`local` by default). The `nova`
/// driver reads the projects' delegated authorities from `store`, and the
/// size of the instances it boots from the configured flavor.
async fn driver(config: &ServiceConfig, store: &Store) -> Result<DriverSetup, ServeError> {
    match &config.driver {
        DriverConfig::Local(local) => {
            let mut local = local.clone();
            if local.state_dir.as_os_str().is_empty() {
                local.state_dir = config.state_dir.join("local");
            }
            let (vcpus, memory_mib) = (local.vcpus, local.memory_mib);
            let driver = LocalDriver::new(local).map_err(|e| ServeError::Driver(Box::new(e)))?;
            let driver = Arc::new(driver);
            Ok(DriverSetup {
                gateway: Some(driver.gateway_address()),
                driver: driver.clone(),
                vcpus,
                memory_mib,
                supervised: Some(driver),
            })
        }
        DriverConfig::Nova(nova) => {
            let driver = NovaDriver::new(nova.as_ref().clone(), Arc::new(store.clone()))
                .await
                .map_err(|e| ServeError::Driver(Box::new(e)))?;
            let flavor = driver
                .default_flavor()
                .await
                .map_err(|e| ServeError::Driver(Box::new(e)))?;
            tracing::info!(flavor = %flavor.name, vcpus = flavor.vcpus, ram_mib = flavor.ram, "nova driver ready");
            Ok(DriverSetup {
                gateway: None,
                driver: Arc::new(driver),
                vcpus: f64::from(flavor.vcpus),
                memory_mib: flavor.ram,
                supervised: None,
            })
        }
    }
}

async fn authenticator(config: &ServiceConfig) -> Result<Arc<dyn Authenticate>, ServeError> {
    match &config.auth {
        AuthConfig::Dev { tokens } => {
            let tokens: Vec<crate::auth::dev::StaticToken> = tokens
                .iter()
                .map(|t| crate::auth::dev::StaticToken {
                    token: nest_core::Secret::new(t.token.clone()),
                    user_id: t.user_id.clone(),
                    project_id: t.project_id.clone(),
                    roles: t.roles.clone(),
                })
                .collect();
            let auth = crate::auth::dev::StaticTokens::new(&tokens)
                .map_err(|e| ServeError::Auth(Box::new(e)))?;
            Ok(Arc::new(auth))
        }
        AuthConfig::Keystone(keystone) => {
            let auth = crate::auth::keystone::KeystoneAuth::new(keystone)
                .await
                .map_err(|e| ServeError::Auth(Box::new(e)))?;
            Ok(Arc::new(auth))
        }
    }
}

/// What the service's core (scheduler, reconciler and [`App`]) runs on:
/// everything outside it, already built.
pub struct CoreParts {
    /// The database.
    pub store: Store,
    /// The instance driver.
    pub driver: Arc<dyn InstanceDriver>,
    /// The link to the agents.
    pub agents: Arc<dyn AgentLink>,
    /// The agents' events, as [`crate::agents::follow`] passes them on.
    pub events: mpsc::Receiver<AgentEvent>,
    /// The projects' stored images.
    pub images: Arc<ProjectImages>,
    /// Where enrollment tokens of booting instances are kept.
    pub tokens: Arc<dyn TokenStore>,
    /// How instances are booted and containers placed.
    pub settings: SchedulerSettings,
    /// The registry `/metrics` renders.
    pub metrics: Metrics,
}

/// Starts the scheduler and the reconciler on `tasks` (both stop when
/// `cancel` fires) and returns the container service over them. `run`
/// and the test assembly (`testing::TestService`) both start the core
/// here, so tests run the same wiring as the service.
pub fn start_core(parts: CoreParts, tasks: &TaskTracker, cancel: &CancellationToken) -> App {
    let CoreParts {
        store,
        driver,
        agents,
        events,
        images,
        tokens,
        settings,
        metrics,
    } = parts;
    // Subscribed before anything writes containers, so the event history
    // misses nothing this process does.
    let recorder = EventRecorder::new(store.clone(), HistoryLimits::default());
    let history = recorder.history();
    let scheduler = Scheduler::new(
        store.clone(),
        driver.clone(),
        agents.clone(),
        images.clone(),
        tokens,
        settings,
        tasks.clone(),
    );
    tasks.spawn(scheduler.clone().run(cancel.clone()));
    let reconciler = Reconciler {
        store: store.clone(),
        agents: agents.clone(),
        driver,
        scheduler: scheduler.clone(),
        metrics,
    };
    tasks.spawn(reconciler.run(events, cancel.clone()));
    let app = App::new(store, agents, scheduler, images, history);
    tasks.spawn(recorder.run(cancel.clone()));
    tasks.spawn(app.clone().run_auto_remove(cancel.clone()));
    app
}

/// Runs the service until `shutdown` completes.
///
/// # Errors
/// [`ServeError`] when a part cannot start or the HTTP server fails.
pub async fn run(
    config: ServiceConfig,
    listeners: Listeners,
    database_url: String,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();

    let store = Store::connect(&database_url)
        .await
        .map_err(ServeError::Database)?;
    let DriverSetup {
        driver,
        gateway,
        vcpus,
        memory_mib,
        supervised,
    } = driver(&config, &store).await?;
    if let Some(local) = supervised {
        let cancel = cancel.clone();
        tasks.spawn(async move { local.supervise(cancel).await });
    }
    let authenticator = authenticator(&config).await?;

    // The relay the service drives agents through: embedded, or external.
    let relay_dial = match (&listeners.relay, config.relay.external) {
        (_, Some(external)) => external,
        (Some(listener), None) => {
            let local = listener.local_addr().map_err(ServeError::Listener)?;
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), local.port())
        }
        (None, None) => {
            return Err(ServeError::Driver(
                "no relay: bind the embedded relay or set relay.external".into(),
            ));
        }
    };
    let advertise = match config.relay.advertise {
        // Port 0: the relay's own port, at the given address (the relay
        // listens on port 0 in tests, and instances dial a host address).
        Some(advertise) if advertise.port() == 0 => {
            SocketAddr::new(advertise.ip(), relay_dial.port())
        }
        Some(advertise) => advertise,
        // The local driver's instances reach the host at the bridge gateway.
        None => SocketAddr::new(
            IpAddr::V4(gateway.unwrap_or(Ipv4Addr::LOCALHOST)),
            relay_dial.port(),
        ),
    };
    let pki = ServicePki::bootstrap(
        &config.state_dir,
        vec![advertise.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST)],
    )?;
    let tokens: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::new());

    if let Some(listener) = listeners.relay {
        let relay_settings = nest_relay::server::RelaySettings {
            tls: pki.relay_tls.clone(),
            heartbeat_interval: config.relay.heartbeat_interval.get(),
            command_timeout: nest_relay::config::DEFAULT_COMMAND_TIMEOUT,
            shutdown_grace: config.shutdown_grace.get(),
            limits: config.relay.limits.clone(),
        };
        let relay_cancel = cancel.clone();
        tasks.spawn(async move {
            if let Err(e) =
                nest_relay::server::run(relay_settings, listener, relay_cancel.cancelled_owned())
                    .await
            {
                tracing::error!(error = %crate::error_chain(&e), "embedded relay failed");
            }
        });
    }
    let (events_tx, events_rx) = tokio::sync::mpsc::channel(crate::agents::EVENT_QUEUE);
    let link = RelayLink::start(
        relay_dial,
        &pki.service_tls,
        Arc::new(crate::enrollment::VerifiedEnrollment::new(
            pki.signer(tokens.clone()),
            driver.clone(),
            tokio::runtime::Handle::current(),
        )),
        events_tx,
        &tasks,
        cancel.clone(),
    )?;

    let (agent_source, agent_binary) = agent_source(&config).await?;
    let images_root = config.state_dir.join("images");
    crate::state_dir::warn_if_shared(&images_root, crate::state_dir::PRIVATE_DIR_MODE).await;
    let images = Arc::new(ProjectImages::new(images_root).with_cloud(driver.clone()));
    let settings = SchedulerSettings {
        max_boots_per_project: config.scheduler.max_boots_per_project,
        create_attempts: config.scheduler.create_attempts,
        create_retry_delay: config.scheduler.create_retry_delay.get(),
        boot_timeout: config.scheduler.boot_timeout.get(),
        idle_timeout: config.scheduler.idle_timeout.get(),
        warm_pool: config.scheduler.warm_pool,
        instance_vcpus: vcpus,
        instance_memory_mib: memory_mib,
        flavor: config.scheduler.flavor.clone(),
        image: config.scheduler.image.clone(),
        network: config.scheduler.network.clone(),
        relay_advertise: advertise,
        ca_pem: pki.ca.certificate_pem().to_owned(),
        agent_source,
    };
    let metrics = Metrics::new();
    let app = start_core(
        CoreParts {
            store: store.clone(),
            driver,
            agents: link.agents.clone(),
            events: events_rx,
            images,
            tokens,
            settings,
            metrics: metrics.clone(),
        },
        &tasks,
        &cancel,
    );
    let mut state = ApiState::new(
        app,
        authenticator,
        ApiConfig {
            // Without a configured URL, links follow the request's Host
            // header, as Zun does (and stay right when the port was 0).
            public_url: config.api.public_url.clone(),
            keystone_uri: None,
            agent_binary,
        },
        metrics,
    );
    let docker = match listeners.docker {
        Some(listener) => {
            let addr = listener.local_addr().map_err(ServeError::Listener)?;
            let host = config.docker.host(addr);
            let tls = crate::ca::docker_server_tls(&pki.ca, &host)?;
            // The bound port, so that port 0 (tests) is named right.
            let docker_host = if host.contains(':') {
                format!("tcp://[{host}]:{}", addr.port())
            } else {
                format!("tcp://{host}:{}", addr.port())
            };
            let certificates = crate::app::DockerCertificates::new(
                store.clone(),
                pki.ca.clone(),
                config.docker.certificate_lifetime.get(),
                docker_host.clone(),
            );
            state = state.with_docker_certificates(certificates.clone());
            Some((listener, tls, certificates, docker_host))
        }
        None => None,
    };
    if let Some((listener, tls, certificates, docker_host)) = docker {
        let docker_state =
            crate::api::docker::DockerState::new(state.clone(), certificates, tasks.clone());
        tracing::info!(docker = %docker_host, "Docker endpoint serving");
        tasks.spawn(crate::api::docker::listener::serve(
            listener,
            Arc::new(tls.config),
            tls.judge,
            crate::api::docker::router(docker_state),
            cancel.clone(),
            tasks.clone(),
        ));
    }
    let api_addr = listeners.api.local_addr().map_err(ServeError::Listener)?;
    tracing::info!(api = %api_addr, relay = %relay_dial, advertise = %advertise, "nest-service serving");
    let serve = axum::serve(listeners.api, crate::api::router(state))
        .with_graceful_shutdown(cancel.clone().cancelled_owned())
        .into_future();
    tokio::pin!(serve);
    let served = tokio::select! {
        served = &mut serve => served,
        () = shutdown => {
            tracing::info!("shutting down");
            cancel.cancel();
            match tokio::time::timeout(config.shutdown_grace.get(), &mut serve).await {
                Ok(served) => served,
                Err(_) => Ok(()),
            }
        }
    };
    cancel.cancel();
    tasks.close();
    if tokio::time::timeout(config.shutdown_grace.get(), tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?config.shutdown_grace.get(), "background tasks still running at exit");
    }
    store.close().await;
    served.map_err(ServeError::Http)
}
