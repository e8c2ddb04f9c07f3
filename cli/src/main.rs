//! `osc`: parses the command line and runs it (see the library).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// How long exit waits for a stdin read still blocked in its thread.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(100);

fn main() -> ExitCode {
    let cli = nest_cli::args::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("osc: cannot start: {e}");
            return ExitCode::from(nest_cli::error::exit::FAILED);
        }
    };
    let code = runtime.block_on(nest_cli::run(cli));
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    code
}
