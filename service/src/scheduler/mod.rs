//! The scheduler: binds each accepted container to an instance of its own
//! project, boots instances when none has room, creates containers on
//! their instance once its agent is connected, and retires instances that
//! stayed empty.
//!
//! One task runs the scheduler, so placements are decided one at a time and
//! capacity is never booked twice; host ports are additionally booked under
//! a unique constraint in the database. Every pass re-reads the database,
//! so nothing depends on in-memory state surviving a crash: after a
//! restart the first pass picks up where the last process stopped.
//!
//! Layout, one file per job:
//! - this file: the scheduler's parts and the pass loop;
//! - `placement.rs`: the pure placement decision;
//! - `bind.rs`: binding accepted containers to instances (booting one when
//!   none has room);
//! - `boot.rs`: booting instances, giving up on boots that never finish;
//! - `create.rs`: creating containers on their agents (loading stored
//!   images first, adopting creates whose answer was lost);
//! - `retire.rs`: deleting instances that stayed empty;
//! - `agents.rs`: what each connected agent supports (user-defined
//!   networks or not).

mod agents;
mod bind;
mod boot;
mod create;
pub mod placement;
mod retire;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nest_pki::TokenStore;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agents::AgentLink;
use crate::db::{DbError, Store};
use crate::domain::{ContainerId, InstanceId};
use crate::driver::InstanceDriver;
use crate::images::ProjectImages;

/// How often the scheduler looks at the database even when nobody woke it.
const PASS_INTERVAL: Duration = Duration::from_secs(2);
/// Status reason of a container waiting for an instance.
pub const WAITING_FOR_INSTANCE: &str = "waiting for an instance to boot";

/// What the scheduler needs to know to boot instances and place containers.
#[derive(Clone, Debug)]
pub struct SchedulerSettings {
    /// Concurrent boots per project.
    pub max_boots_per_project: usize,
    /// Longest wait for a booted instance's agent.
    pub boot_timeout: Duration,
    /// An empty instance is deleted after this long.
    pub idle_timeout: Duration,
    /// Empty instances kept per project anyway.
    pub warm_pool: usize,
    /// vCPUs of a newly booted instance.
    pub instance_vcpus: f64,
    /// Memory of a newly booted instance, MiB.
    pub instance_memory_mib: u64,
    /// Flavor, image and network of booted instances (driver-specific).
    pub flavor: Option<String>,
    /// Image of booted instances.
    pub image: Option<String>,
    /// Network of booted instances.
    pub network: Option<String>,
    /// Address agents dial, written into user-data.
    pub relay_advertise: SocketAddr,
    /// Nest's CA certificate, written into user-data.
    pub ca_pem: String,
    /// Where new instances get the agent binary.
    pub agent_source: nest_cloud_init::AgentSource,
    /// Tries a create gets (its image pull included) before the container
    /// ends in `Error` with the last failure as its reason.
    pub create_attempts: u32,
    /// Wait after the first failed try of a create; it doubles (jittered)
    /// after each further one, up to [`CREATE_RETRY_MAX`].
    pub create_retry_delay: Duration,
}

/// Longest wait between two tries of one create.
pub const CREATE_RETRY_MAX: Duration = Duration::from_secs(60);

/// The scheduler's shared parts.
pub struct Scheduler {
    store: Store,
    driver: Arc<dyn InstanceDriver>,
    agents: Arc<dyn AgentLink>,
    images: Arc<ProjectImages>,
    tokens: Arc<dyn TokenStore>,
    settings: SchedulerSettings,
    wake: Notify,
    creating: Mutex<HashSet<ContainerId>>,
    create_tries: create::CreateTries,
    /// Instances whose driver boot has not returned yet: their agent may
    /// already be connected, but their addresses are not recorded, so no
    /// container is created on them (its published ports would name no
    /// address).
    boots_in_flight: Arc<Mutex<HashSet<InstanceId>>>,
    /// What the agent of each instance said in its last hello.
    agents_seen: agents::AgentsSeen,
    tasks: TaskTracker,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing awaits or panics under this lock.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why one step of a pass failed; logged, and retried on the next pass.
#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error("database")]
    Db(#[from] DbError),
    #[error("rendering user-data")]
    UserData(#[from] nest_cloud_init::RenderError),
    #[error("issuing an enrollment token")]
    Token(#[from] nest_pki::TokenError),
}

impl Scheduler {
    /// A scheduler whose background work is tracked by `tasks`.
    pub fn new(
        store: Store,
        driver: Arc<dyn InstanceDriver>,
        agents: Arc<dyn AgentLink>,
        images: Arc<ProjectImages>,
        tokens: Arc<dyn TokenStore>,
        settings: SchedulerSettings,
        tasks: TaskTracker,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            driver,
            agents,
            images,
            tokens,
            wake: Notify::new(),
            creating: Mutex::new(HashSet::new()),
            create_tries: create::CreateTries::new(
                settings.create_attempts,
                settings.create_retry_delay,
            ),
            settings,
            boots_in_flight: Arc::new(Mutex::new(HashSet::new())),
            agents_seen: agents::AgentsSeen::default(),
            tasks,
        })
    }

    /// Asks for a pass soon (a container was accepted, an agent came).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The tracker of the scheduler's (and the service's) background work.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// The driver instances are booted with.
    pub fn driver(&self) -> &Arc<dyn InstanceDriver> {
        &self.driver
    }

    /// Runs passes until `cancel`.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        if let Err(e) = self.recover().await {
            tracing::error!(error = %crate::error_chain(&e), "scheduler recovery failed");
        }
        let mut tick = tokio::time::interval(PASS_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = self.wake.notified() => {}
                _ = tick.tick() => {}
            }
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %crate::error_chain(&e), "scheduler pass failed; retrying");
            }
        }
    }

    async fn pass(self: &Arc<Self>) -> Result<(), PassError> {
        self.place_pending().await?;
        self.create_on_ready().await?;
        self.expire_boots().await?;
        self.retire_idle().await?;
        Ok(())
    }
}
