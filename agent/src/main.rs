//! `nest-agent`: the in-instance agent. Parses flags, sets up logging and the
//! TLS provider, and runs [`nest_agent::run`] until SIGTERM or SIGINT.

use std::process::ExitCode;

use nest_agent::config::AgentConfig;
use nest_agent::log_fields::INSTANCE_ID;
use nest_core::config::load_valid;
use nest_core::process;
use tokio_util::sync::CancellationToken;

/// The agent's command line: `--config`, and `--help`/`--version`.
const DAEMON: process::Daemon = process::Daemon {
    name: "nest-agent",
    about: "Nest's in-instance agent",
    default_config: "/etc/nest/agent.toml",
};

fn main() -> ExitCode {
    DAEMON.run(load_valid::<AgentConfig>, run)
}

/// Runs the agent until SIGTERM or SIGINT; its containers keep running.
fn run(config: AgentConfig, runtime: tokio::runtime::Runtime) -> ExitCode {
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
