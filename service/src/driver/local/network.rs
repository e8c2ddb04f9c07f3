//! The `local` driver's networking, through iproute2's `ip`: the host
//! bridge with the gateway address, and per instance a network namespace
//! joined to the bridge by a veth pair.
//!
//! Host-only by design: the host reaches every instance and every instance
//! reaches the host (the relay) at the gateway address; no NAT and no
//! forwarding are set up on the host. Inside a namespace, the instance's
//! dockerd enables forwarding and NAT for its own containers, as it would
//! in a VM.
//!
//! `ip -n NS ...` is fine for configuring a namespace: it remounts `/sys`
//! only for the `ip` process itself. Long-running processes enter with
//! `nsenter` instead (see the parent module).

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use crate::driver::{DriverError, Reason};

/// Longest wait for one `ip` (or other short host) command.
pub(super) const COMMAND_TIMEOUT: Duration = Duration::from_secs(15);
/// Where `ip netns add` binds namespaces.
pub(super) const NETNS_DIR: &str = "/var/run/netns";

/// The names an instance's network pieces have on the host.
#[derive(Clone, Debug)]
pub(super) struct NetNames {
    /// The network namespace (`nest-<hash>`, 13 characters).
    pub(super) netns: String,
    /// The veth end on the bridge (`nv<hash>`).
    pub(super) host_veth: String,
    /// The other end before it moves into the namespace and becomes `eth0`.
    pub(super) peer_veth: String,
}

impl NetNames {
    /// The namespace's file under [`NETNS_DIR`].
    pub(super) fn netns_path(&self) -> std::path::PathBuf {
        Path::new(NETNS_DIR).join(&self.netns)
    }
}

/// Why a host command failed.
#[derive(Debug, thiserror::Error)]
#[error("exited with {status}: {stderr}")]
pub(super) struct CommandFailed {
    status: std::process::ExitStatus,
    stderr: String,
}

/// Runs a short host command with [`COMMAND_TIMEOUT`]; `Ok` only when it
/// succeeds.
pub(super) async fn run<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Result<Output, DriverError> {
    let shown = std::iter::once(program.to_owned())
        .chain(
            args.iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned()),
        )
        .collect::<Vec<_>>()
        .join(" ");
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(COMMAND_TIMEOUT, output).await {
        Err(elapsed) => Err(DriverError::Unavailable {
            what: format!("`{shown}`"),
            source: Box::new(elapsed),
        }),
        Ok(Err(e)) => Err(DriverError::internal(format!("running `{shown}`"), e)),
        Ok(Ok(output)) if output.status.success() => Ok(output),
        Ok(Ok(output)) => Err(DriverError::internal(
            format!("`{shown}`"),
            CommandFailed {
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            },
        )),
    }
}

async fn link_exists(name: &str) -> Result<bool, DriverError> {
    let status = tokio::process::Command::new("ip")
        .args(["link", "show", "dev", name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(COMMAND_TIMEOUT, status).await {
        Ok(Ok(status)) => Ok(status.success()),
        Ok(Err(e)) => Err(DriverError::internal("running `ip link show`", e)),
        Err(elapsed) => Err(DriverError::Unavailable {
            what: "`ip link show`".into(),
            source: Box::new(elapsed),
        }),
    }
}

/// Creates the bridge unless it exists, gives it the gateway address and
/// brings it up. Callers serialize calls (two boots racing to create it).
pub(super) async fn ensure_bridge(
    bridge: &str,
    gateway: Ipv4Addr,
    prefix: u8,
) -> Result<(), DriverError> {
    if !link_exists(bridge).await? {
        if let Err(e) = run("ip", &["link", "add", bridge, "type", "bridge"]).await {
            // Another process may have created it meanwhile.
            if !link_exists(bridge).await? {
                return Err(e);
            }
        }
        tracing::info!(bridge, "created the local driver's bridge");
    }
    let cidr = format!("{gateway}/{prefix}");
    run("ip", &["addr", "replace", &cidr, "dev", bridge]).await?;
    run("ip", &["link", "set", bridge, "up"]).await?;
    Ok(())
}

/// Creates the namespace and its veth pair: `eth0` inside with `address`,
/// `lo` up, default route via `gateway`; the host end on `bridge`.
pub(super) async fn create_namespace(
    names: &NetNames,
    bridge: &str,
    address: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
) -> Result<(), DriverError> {
    if tokio::fs::try_exists(names.netns_path())
        .await
        .unwrap_or(false)
    {
        return Err(DriverError::internal(
            format!("creating network namespace {}", names.netns),
            Reason(format!(
                "{} already exists: a leftover of an instance whose id hashes the same; \
                 delete that instance first",
                names.netns_path().display()
            )),
        ));
    }
    let ns = names.netns.as_str();
    let cidr = format!("{address}/{prefix}");
    let gateway = gateway.to_string();
    run("ip", &["netns", "add", ns]).await?;
    run(
        "ip",
        &[
            "link",
            "add",
            &names.host_veth,
            "type",
            "veth",
            "peer",
            "name",
            &names.peer_veth,
        ],
    )
    .await?;
    run("ip", &["link", "set", &names.peer_veth, "netns", ns]).await?;
    run(
        "ip",
        &["link", "set", &names.host_veth, "master", bridge, "up"],
    )
    .await?;
    run(
        "ip",
        &["-n", ns, "link", "set", &names.peer_veth, "name", "eth0"],
    )
    .await?;
    run("ip", &["-n", ns, "addr", "add", &cidr, "dev", "eth0"]).await?;
    run("ip", &["-n", ns, "link", "set", "eth0", "up"]).await?;
    run("ip", &["-n", ns, "link", "set", "lo", "up"]).await?;
    run(
        "ip",
        &["-n", ns, "route", "add", "default", "via", &gateway],
    )
    .await?;
    Ok(())
}

/// Adds `extra` addresses (`/32`) to the namespace's `eth0`: addresses a
/// cloud maps to the instance beside its own (a floating IP), answered in
/// the namespace itself.
pub(super) async fn add_addresses(names: &NetNames, extra: &[Ipv4Addr]) -> Result<(), DriverError> {
    for addr in extra {
        let cidr = format!("{addr}/32");
        run(
            "ip",
            &["-n", &names.netns, "addr", "add", &cidr, "dev", "eth0"],
        )
        .await?;
    }
    Ok(())
}

/// Removes the veth pair and the namespace; whatever is already gone is
/// fine. Processes still inside keep the namespace alive (unnamed) until
/// they exit, so callers stop them first.
pub(super) async fn delete_namespace(names: &NetNames) -> Result<(), DriverError> {
    if link_exists(&names.host_veth).await? {
        run("ip", &["link", "del", &names.host_veth]).await?;
    }
    if tokio::fs::try_exists(names.netns_path())
        .await
        .unwrap_or(true)
    {
        run("ip", &["netns", "del", &names.netns]).await?;
    }
    Ok(())
}
