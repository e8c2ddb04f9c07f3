//! `nest-test-hypervisor`: makes the lab's Nova servers real for CI.
//!
//! The lab's nova-compute runs the FakeDriver: servers go `ACTIVE` but
//! nothing boots. This process plays the hypervisor for the servers Nest
//! boots: it watches Nova (as admin, every project) for `ACTIVE` servers
//! carrying its tag (the driver's `server_tag`, on every server Nest
//! boots), and for each starts a guest the way the `local` driver does (the same code:
//! [`LocalDriver::boot_guest`]): a network namespace holding the server's
//! Neutron fixed address and its floating addresses, its own dockerd, the
//! server's user data read back from Nova and applied, the agent started.
//! A guest is torn down when its server is deleted.
//!
//! Addressing: the host end is a bridge of its own holding the first
//! address of the private subnet; the floating range is routed to the same
//! bridge, and each guest answers its floating addresses itself. Both
//! ranges are documentation prefixes that exist only in namespaces this
//! process made, so no packet to them leaves the machine.
//!
//! Prints `NEST_HYPERVISOR_READY` once the bridge is up, and on SIGTERM or
//! SIGINT deletes every guest, the route and the bridge.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use clap::Parser;
use nest_core::{InstanceId, RequestId, Secret};
use nest_openstack::compute::{Server, ServerQuery};
use nest_openstack::{Compute, Interface, Session, SessionConfig, SessionOptions};
use nest_service::domain::ProjectId;
use nest_service::driver::{
    BootRequest, GuestAddresses, InstanceDriver, LocalDriver, LocalDriverConfig, TenantAuthority,
};
use tokio::task::JoinSet;

/// The metadata key the nova driver writes.
const INSTANCE_METADATA_KEY: &str = "nest_instance_id";

#[derive(Debug, Parser)]
#[command(about = "Runs Nest's Nova servers of the lab as namespace guests")]
struct Args {
    /// Where guests live.
    #[arg(long)]
    state_dir: PathBuf,
    /// Where guests' engines keep their sockets (short).
    #[arg(long, default_value = "/run/nest-hv")]
    run_dir: PathBuf,
    /// The bridge of this process.
    #[arg(long, default_value = "nesthv0")]
    bridge: String,
    /// The private network's subnet; the bridge gets its first address.
    #[arg(long, default_value = "198.51.100.0/24")]
    subnet: String,
    /// The floating range, routed to the bridge.
    #[arg(long, default_value = "203.0.113.0/24")]
    floating: String,
    /// The agent binary guests run.
    #[arg(long)]
    agent_binary: PathBuf,
    /// The tag of the servers to run (the driver's `server_tag`).
    #[arg(long, default_value = "nest")]
    tag: String,
    /// How often Nova is asked, milliseconds.
    #[arg(long, default_value_t = 700)]
    poll_ms: u64,
    /// Keystone (admin).
    #[arg(long, default_value = "http://127.0.0.1:5000/v3")]
    auth_url: String,
    /// Admin user.
    #[arg(long, default_value = "admin")]
    username: String,
    /// Admin password.
    #[arg(long, default_value = "adminpass")]
    password: String,
    /// Admin project.
    #[arg(long, default_value = "admin")]
    project: String,
}

/// The guests running, by server id.
#[derive(Default)]
struct Guests {
    /// Booted, with the floating addresses they answer.
    running: HashMap<String, BTreeSet<Ipv4Addr>>,
    /// Being booted.
    starting: HashSet<String>,
}

fn lock(m: &Mutex<Guests>) -> std::sync::MutexGuard<'_, Guests> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn ipv4s<'a>(server: &'a Server, kind: &'a str) -> impl Iterator<Item = Ipv4Addr> + 'a {
    server
        .addresses
        .values()
        .flatten()
        .filter(move |a| a.kind.as_deref() == Some(kind))
        .filter_map(|a| a.addr.parse().ok())
}

async fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .context("running ip")?;
    anyhow::ensure!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = Args::parse();

    let config = SessionConfig::password(
        &args.auth_url,
        &args.username,
        Secret::new(args.password.clone()),
        &args.project,
    );
    let session = Session::new(&config, SessionOptions::default())
        .await
        .context("the admin session")?;
    let compute = Compute::connect(&session, Interface::Public, None)
        .await
        .context("nova's endpoint")?;

    let mut local = LocalDriverConfig::new(&args.state_dir);
    local.run_dir = args.run_dir.clone();
    local.bridge = args.bridge.clone();
    local.subnet = args.subnet.clone();
    local.agent_binary = args.agent_binary.clone();
    local.network_name = "private".into();
    let driver = Arc::new(LocalDriver::new(local).context("the guest driver")?);
    driver.ensure_bridge().await.context("the bridge")?;
    ip(&["route", "replace", &args.floating, "dev", &args.bridge]).await?;
    println!("NEST_HYPERVISOR_READY");

    let guests = Arc::new(Mutex::new(Guests::default()));
    let mut boots = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(args.poll_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = tick.tick() => {}
        }
        while boots.try_join_next().is_some() {}
        let query = ServerQuery {
            tags: vec![args.tag.clone()],
            all_tenants: true,
        };
        let servers = match compute.servers(&query, &RequestId::generate()).await {
            Ok(servers) => servers,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list servers");
                continue;
            }
        };
        let live: HashSet<String> = servers
            .iter()
            .filter(|s| s.status != "DELETED")
            .map(|s| s.id.clone())
            .collect();
        for server in servers.iter().filter(|s| s.is_active()) {
            sync_server(&driver, &guests, &mut boots, server).await;
        }
        let gone: Vec<String> = lock(&guests)
            .running
            .keys()
            .filter(|id| !live.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            lock(&guests).running.remove(&id);
            if let Ok(instance) = InstanceId::parse(&id) {
                tracing::info!(server_id = %id, "server deleted; tearing its guest down");
                if let Err(e) = driver.delete(&instance).await {
                    tracing::warn!(server_id = %id, error = %e, "teardown failed");
                }
            }
        }
    }

    tracing::info!("stopping: deleting every guest");
    boots.shutdown().await;
    for id in driver.list().await.map(|l| l.instances).unwrap_or_default() {
        if let Err(e) = driver.delete(&id).await {
            tracing::warn!(server_id = %id, error = %e, "teardown failed");
        }
    }
    let _ = ip(&["route", "del", &args.floating, "dev", &args.bridge]).await;
    let _ = ip(&["link", "del", &args.bridge]).await;
    // Its guests are gone, and so is what they kept there.
    if let Err(e) = std::fs::remove_dir_all(&args.run_dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(run_dir = %args.run_dir.display(), error = %e, "cannot remove the run directory");
    }
    Ok(())
}

/// Starts the guest of an `ACTIVE` server, or gives a running one the
/// floating addresses associated since.
async fn sync_server(
    driver: &Arc<LocalDriver>,
    guests: &Arc<Mutex<Guests>>,
    boots: &mut JoinSet<()>,
    server: &Server,
) {
    // Nest's metadata is not required: the enrollment check, not the
    // hypervisor, decides what a server without it gets.
    if !server.metadata.contains_key(INSTANCE_METADATA_KEY) {
        tracing::debug!(server_id = %server.id, "a server without Nest's metadata");
    }
    let floating: BTreeSet<Ipv4Addr> = ipv4s(server, "floating").collect();
    let known = lock(guests).running.get(&server.id).cloned();
    if let Some(known) = known {
        let Ok(instance) = InstanceId::parse(&server.id) else {
            return;
        };
        let namespace = driver.namespace(&instance);
        for addr in floating.difference(&known) {
            let cidr = format!("{addr}/32");
            match ip(&["-n", &namespace, "addr", "add", &cidr, "dev", "eth0"]).await {
                Ok(()) => tracing::info!(server_id = %server.id, %addr, "floating address added"),
                Err(e) => {
                    tracing::warn!(server_id = %server.id, error = %e, "cannot add a floating address")
                }
            }
        }
        lock(guests).running.insert(server.id.clone(), floating);
        return;
    }
    if !lock(guests).starting.insert(server.id.clone()) {
        return;
    }
    let Some(fixed) = ipv4s(server, "fixed").next() else {
        tracing::warn!(server_id = %server.id, "an ACTIVE server without a fixed address; not run");
        return;
    };
    let user_data = server
        .user_data
        .as_deref()
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let (Some(user_data), Ok(instance), Ok(project)) = (
        user_data,
        InstanceId::parse(&server.id),
        ProjectId::parse(&server.tenant_id),
    ) else {
        tracing::warn!(server_id = %server.id, "no readable user data; not run");
        return;
    };
    let driver = driver.clone();
    let guests = guests.clone();
    let server_id = server.id.clone();
    boots.spawn(async move {
        tracing::info!(server_id = %server_id, %fixed, ?floating, "starting a guest");
        let request = BootRequest {
            instance_id: instance,
            project_id: project,
            user_data,
            flavor: None,
            image: None,
            network: None,
            authority: TenantAuthority::None,
        };
        let addresses = GuestAddresses {
            address: fixed,
            extra: floating.iter().copied().collect(),
        };
        match driver.boot_guest(request, addresses).await {
            Ok(_) => {
                tracing::info!(server_id = %server_id, "guest running");
                let mut g = lock(&guests);
                g.starting.remove(&server_id);
                g.running.insert(server_id, floating);
            }
            Err(e) => {
                tracing::warn!(server_id = %server_id, error = %nest_service::error_chain(&e), "guest failed to start");
                // Retried on a later poll, unless the server is gone.
                lock(&guests).starting.remove(&server_id);
            }
        }
    });
}
