//! `nest-agent`: the in-instance agent. Parses flags, sets up logging and the
//! TLS provider, and runs [`nest_agent::run`] until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use nest_agent::config::AgentConfig;
use nest_agent::log_fields::INSTANCE_ID;
use nest_core::process;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(version, about = "Nest's in-instance agent")]
struct Args {
    /// Path of the TOML config file.
    #[arg(long, short, default_value = "/etc/nest/agent.toml")]
    config: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (config, runtime) = match process::start(|| AgentConfig::load(&args.config)) {
        Ok(started) => started,
        Err(code) => return code,
    };
    tracing::info!(
        { INSTANCE_ID } = %config.instance_id,
        relay = %config.relay_addr,
        state_dir = %config.state_dir.display(),
        "nest-agent starting"
    );
    let shutdown = CancellationToken::new();
    let result = runtime.block_on(async {
        let signal = shutdown.clone();
        let watcher = tokio::spawn(async move {
            process::shutdown_signal().await;
            tracing::info!("shutting down; containers keep running");
            signal.cancel();
        });
        let result = nest_agent::run(config, shutdown).await;
        watcher.abort();
        result.map_err(|e| process::error_chain(&e))
    });
    process::finish("the agent", result)
}
