//! `nest-agent`: the in-instance agent. Parses flags, sets up logging and the
//! TLS provider, and runs [`nest_agent::run`] until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use nest_agent::config::AgentConfig;
use tokio_util::sync::CancellationToken;

/// Exit code for an unusable configuration (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(version, about = "Nest's in-instance agent")]
struct Args {
    /// Path of the TOML config file.
    #[arg(long, short, default_value = "/etc/nest/agent.toml")]
    config: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    nest_relay::process::init_logging();
    if !nest_relay::process::install_crypto_provider() {
        tracing::error!("a TLS crypto provider was already installed");
        return ExitCode::FAILURE;
    }
    let config = match AgentConfig::load(&args.config) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(error = %nest_agent::commands::error_chain(&e), "cannot start");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    tracing::info!(
        instance_id = %config.instance_id,
        relay = %config.relay_addr,
        state_dir = %config.state_dir.display(),
        "nest-agent starting"
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    let result = runtime.block_on(async {
        let signal = shutdown.clone();
        tokio::spawn(async move {
            nest_relay::process::shutdown_signal().await;
            tracing::info!("shutting down; containers keep running");
            signal.cancel();
        });
        nest_agent::run(config, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %nest_agent::commands::error_chain(&e), "agent stopped");
            ExitCode::FAILURE
        }
    }
}
