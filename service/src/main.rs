//! `nest-service`: Nest's API server with its embedded relay, scheduler and
//! instance driver. Parses flags, sets up logging and the TLS provider,
//! binds the listeners and runs [`nest_service::server::run`].
//!
//! Prints `NEST_DOCKER_LISTENING=<addr>` (when the Docker endpoint is
//! enabled), `NEST_API_LISTENING=<addr>` and `NEST_RELAY_LISTENING=<addr>`
//! on stdout once the listeners are bound; logs go to stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use nest_core::process;
use nest_service::config::ServiceConfig;
use nest_service::server::{self, Listeners};

#[derive(Parser)]
#[command(version, about = "Nest's container service")]
struct Args {
    /// Path of the TOML config file.
    #[arg(long, short, default_value = "/etc/nest/service.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Serve the API, the relay and the scheduler (the default).
    Serve,
    /// Delete every instance the configured driver has booted, then exit.
    /// Instances outlive the service by design; run this after stopping it
    /// to tear a machine down.
    DeleteInstances,
    /// Issue a certificate for a stand-alone nest-relay from this service's
    /// CA: writes ca.pem, relay.pem and relay-key.pem into --out.
    IssueRelayCertificate {
        /// Directory to write the files into.
        #[arg(long)]
        out: PathBuf,
        /// The relay's name (in its certificate).
        #[arg(long, default_value = "relay")]
        name: String,
        /// IP addresses the relay is reached at (repeatable).
        #[arg(long)]
        ip: Vec<std::net::IpAddr>,
        /// DNS names the relay is reached at (repeatable).
        #[arg(long)]
        dns: Vec<String>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (config, runtime) = match process::start(|| ServiceConfig::load(&args.config)) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let result = match args.command.unwrap_or(Command::Serve) {
        Command::Serve => runtime.block_on(serve(config)),
        Command::IssueRelayCertificate { out, name, ip, dns } => {
            server::issue_relay_certificate(&config, &name, ip, dns, &out)
                .map(|()| tracing::info!(out = %out.display(), "relay certificate written"))
                .context("issuing a relay certificate")
        }
        Command::DeleteInstances => runtime
            .block_on(server::delete_instances(&config))
            .map(|n| tracing::info!(deleted = n, "instances deleted"))
            .context("deleting instances"),
    };
    process::finish("nest-service", result)
}

async fn serve(config: ServiceConfig) -> anyhow::Result<()> {
    nest_service::state_dir::prepare(&config.state_dir)
        .await
        .with_context(|| format!("creating {}", config.state_dir.display()))?;
    let api = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .with_context(|| format!("binding the API to {}", config.api.listen))?;
    let docker = if config.docker.enabled {
        let docker = tokio::net::TcpListener::bind(config.docker.listen)
            .await
            .with_context(|| format!("binding the Docker endpoint to {}", config.docker.listen))?;
        println!("NEST_DOCKER_LISTENING={}", docker.local_addr()?);
        Some(docker)
    } else {
        None
    };
    // After the Docker line: the test harness reads stdout until this one.
    println!("NEST_API_LISTENING={}", api.local_addr()?);
    let relay = match config.relay.external {
        Some(external) => {
            tracing::info!(relay = %external, "using a stand-alone relay");
            None
        }
        None => {
            let relay = tokio::net::TcpListener::bind(config.relay.listen)
                .await
                .with_context(|| format!("binding the relay to {}", config.relay.listen))?;
            println!("NEST_RELAY_LISTENING={}", relay.local_addr()?);
            Some(relay)
        }
    };
    let database_url = config.database_url(std::env::var("NEST_DATABASE_URL").ok());
    server::run(
        config,
        Listeners { api, relay, docker },
        database_url,
        process::shutdown_signal(),
    )
    .await?;
    tracing::info!("nest-service stopped");
    Ok(())
}
