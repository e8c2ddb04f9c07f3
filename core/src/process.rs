//! What every Nest binary does the same way at start and stop: logging to
//! stderr filtered by `RUST_LOG`, the process-wide TLS provider, loading
//! the config (exit 64 when it is unusable), the async runtime, the
//! shutdown signal, and the exit code with the final error and its causes.
//!
//! A `main` is then a few lines:
//!
//! ```no_run
//! # fn load() -> Result<(), nest_core::config::ConfigError> { Ok(()) }
//! # async fn serve(_: ()) -> Result<(), std::io::Error> { Ok(()) }
//! fn main() -> std::process::ExitCode {
//!     let (config, runtime) = match nest_core::process::start(load) {
//!         Ok(started) => started,
//!         Err(code) => return code,
//!     };
//!     nest_core::process::finish("example", runtime.block_on(serve(config)))
//! }
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::ConfigError;

/// Exit code for an unusable configuration (EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;
/// Exit code for any other failure.
pub const EXIT_FAILURE: u8 = 1;

/// Sets up logging and the TLS provider, loads the config with `load`, and
/// builds the async runtime.
///
/// # Errors
/// The exit code to return from `main`, after logging why:
/// [`EXIT_CONFIG`] for an unusable config, [`EXIT_FAILURE`] otherwise.
pub fn start<C>(
    load: impl FnOnce() -> Result<C, ConfigError>,
) -> Result<(C, tokio::runtime::Runtime), ExitCode> {
    init_logging();
    if !install_crypto_provider() {
        tracing::error!("a TLS crypto provider was already installed");
        return Err(ExitCode::from(EXIT_FAILURE));
    }
    let config = load().map_err(|e| {
        tracing::error!(error = %error_chain(&e), "cannot start");
        ExitCode::from(EXIT_CONFIG)
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            tracing::error!(error = %e, "cannot start the async runtime");
            ExitCode::from(EXIT_FAILURE)
        })?;
    Ok((config, runtime))
}

/// What a daemon (`nest-relay`, `nest-agent`) is told on its command line:
/// one `--config PATH` flag, defaulting to `default_config`.
#[derive(Clone, Copy, Debug)]
pub struct Daemon {
    /// The binary's name, as `--help` and `--version` print it.
    pub name: &'static str,
    /// One line saying what it is, for `--help`.
    pub about: &'static str,
    /// The config file read when `--config` is not given.
    pub default_config: &'static str,
}

impl Daemon {
    /// Parses the command line (exiting as clap does on `--help`, `--version`
    /// or a bad flag), then [`start`]s with the config file it names.
    ///
    /// # Errors
    /// As [`start`].
    pub fn start<C>(
        self,
        load: impl FnOnce(&Path) -> Result<C, ConfigError>,
    ) -> Result<(C, tokio::runtime::Runtime), ExitCode> {
        let matches = clap::Command::new(self.name)
            .about(self.about)
            .version(env!("CARGO_PKG_VERSION"))
            .arg(
                clap::Arg::new("config")
                    .long("config")
                    .short('c')
                    .value_name("PATH")
                    .value_parser(clap::value_parser!(PathBuf))
                    .default_value(self.default_config)
                    .help("Path of the TOML config file"),
            )
            .get_matches();
        let path = matches
            .get_one::<PathBuf>("config")
            .cloned()
            .unwrap_or_else(|| PathBuf::from(self.default_config));
        start(|| load(&path))
    }

    /// [`start`](Self::start)s, then hands the config and the runtime to
    /// `body`, whose exit code is the process's.
    pub fn run<C>(
        self,
        load: impl FnOnce(&Path) -> Result<C, ConfigError>,
        body: impl FnOnce(C, tokio::runtime::Runtime) -> ExitCode,
    ) -> ExitCode {
        match self.start(load) {
            Ok((config, runtime)) => body(config, runtime),
            Err(code) => code,
        }
    }
}

/// The exit code for how `what` ended, logging the error with its causes.
pub fn finish<E: std::fmt::Display>(what: &str, result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints anyhow's whole chain; typed errors print theirs
            // through `error_chain` before they get here.
            tracing::error!(error = format!("{e:#}"), "{what} failed");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Sets up the one tracing subscriber: stderr, filtered by `RUST_LOG`
/// (default `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}

/// Installs aws-lc-rs as the process's TLS crypto provider, the only one
/// in the tree. Returns false if another was installed first.
pub fn install_crypto_provider() -> bool {
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .is_ok()
}

/// Completes on SIGTERM or SIGINT.
///
/// # Cancel safety
/// Safe: dropping it stops listening.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the process");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// An error and its causes on one line (`a: b: c`), for logs and for
/// messages that cross a process boundary.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_chain_names_every_cause_once() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&e), "outer: inner");
    }
}
