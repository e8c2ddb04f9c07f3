//! nest-cli: `osc`, the tenant's command line for Nest, written for people
//! who live in OpenStack: it authenticates from the usual `OS_*`
//! environment (or clouds.yaml), finds Nest in the Keystone catalog as
//! service type `container`, and speaks the Zun-compatible REST API with
//! the types of `nest-api-types`.
//!
//! # Layout
//! - [`args`]: the command line (clap);
//! - [`config`]: flags, variables and clouds.yaml merged into one set of
//!   settings, and the auth method they call for;
//! - [`auth`]: Keystone v3 and the catalog;
//! - [`client`]: the REST API, one method per request;
//! - [`output`]: tables, `key: value` lines, JSON, YAML, values, `-c`;
//! - [`console`] and [`terminal`]: the websocket console of exec and
//!   attach, raw mode and resizes;
//! - [`commands`]: one module per group of subcommands;
//! - [`error`]: every failure, its message, hint and exit code.

pub mod args;
pub mod auth;
pub mod client;
pub mod commands;
pub mod config;
pub mod console;
pub mod error;
pub mod output;
pub mod terminal;

use std::process::ExitCode;

use clap::CommandFactory;

use args::{Cli, Command};
use config::{CloudSettings, ProcessEnv};
use error::CliError;

/// Runs a parsed command line; answers the process's exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match execute(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => e.report(),
    }
}

async fn execute(cli: Cli) -> Result<u8, CliError> {
    match cli.command {
        Command::Completion { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "osc", &mut std::io::stdout());
            return Ok(0);
        }
        Command::DockerEnv { unset: true, .. } => return Ok(commands::docker_env::unset()),
        _ => {}
    }
    let settings = CloudSettings::resolve(&cli.auth, &ProcessEnv)?;
    let session = auth::open_session(&settings).await?;
    commands::dispatch(&session, cli.command).await
}
