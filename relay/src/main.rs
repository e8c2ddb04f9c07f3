//! `nest-relay`: the stand-alone relay between nest-service and the agents.
//!
//! Reads its TOML config, listens, and prints one machine-readable line
//! `NEST_RELAY_LISTENING=<addr>` on stdout once it accepts connections (logs
//! go to stderr). SIGTERM or SIGINT shut it down cleanly.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use nest_core::config::load_valid;
use nest_core::process;
use nest_relay::config::RelayConfig;
use nest_relay::server::{self, RelaySettings};

/// The relay's command line: `--config`, and `--help`/`--version`.
const DAEMON: process::Daemon = process::Daemon {
    name: "nest-relay",
    about: "Nest's relay between nest-service and nest-agents",
    default_config: "/etc/nest/relay.toml",
};

fn main() -> ExitCode {
    DAEMON.run(load_valid::<RelayConfig>, |config, runtime| {
        process::finish("the relay", runtime.block_on(serve(config)))
    })
}

async fn serve(config: RelayConfig) -> anyhow::Result<()> {
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    };
    let tls = nest_relay::tls::server_config(
        &read(&config.ca_certificate)?,
        &read(&config.certificate)?,
        &read(&config.private_key)?,
    )
    .context("building the relay's TLS configuration")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let local = listener.local_addr().context("reading the bound address")?;
    tracing::info!(listen = %local, "relay listening");
    println!("NEST_RELAY_LISTENING={local}");
    let settings = RelaySettings {
        tls,
        heartbeat_interval: config.heartbeat_interval.get(),
        command_timeout: config.command_timeout.get(),
        shutdown_grace: config.shutdown_grace.get(),
        limits: config.limits.clone(),
    };
    server::run(settings, listener, process::shutdown_signal()).await?;
    tracing::info!("relay stopped");
    Ok(())
}
