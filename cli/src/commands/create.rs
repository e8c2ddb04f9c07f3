//! `container-create`: builds the create body from the flags, then waits
//! (showing where the boot is) or follows the container's output.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use nest_api_types::zun::{
    CommandField, ContainerView, CreateContainerBody, Flag, IntegerOrString, NumberOrString,
    RestartPolicyBody,
};

use crate::args::CreateArgs;
use crate::client::Session;
use crate::error::CliError;
use crate::output::print_record;

/// How often the wait polls the container.
const POLL_INTERVAL: Duration = Duration::from_millis(400);

/// `KEY=VALUE` pairs.
fn pairs(items: &[String], flag: &str) -> Result<Option<BTreeMap<String, String>>, CliError> {
    if items.is_empty() {
        return Ok(None);
    }
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(CliError::Usage(format!(
                "{flag} {item:?}: expected KEY=VALUE"
            ))),
        })
        .collect::<Result<BTreeMap<_, _>, _>>()
        .map(Some)
}

/// `512`, `512M`, `512MiB`, `2G`: MiB.
pub fn parse_memory(text: &str) -> Result<u64, CliError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| CliError::Usage(format!("--memory {text:?}: expected MiB, or 512M, 2G")))?;
    let factor = match unit.to_ascii_lowercase().as_str() {
        "" | "m" | "mb" | "mi" | "mib" => 1,
        "g" | "gb" | "gi" | "gib" => 1024,
        _ => {
            return Err(CliError::Usage(format!(
                "--memory {text:?}: the unit must be M or G"
            )));
        }
    };
    Ok(number * factor)
}

/// `no`, `always`, `unless-stopped`, `on-failure[:N]`.
fn parse_restart(text: &str) -> Result<RestartPolicyBody, CliError> {
    let (name, count) = match text.split_once(':') {
        Some((name, count)) => {
            let n: i64 = count.parse().map_err(|_| {
                CliError::Usage(format!(
                    "--restart {text:?}: the retry count must be a number"
                ))
            })?;
            (name, Some(IntegerOrString::Integer(n)))
        }
        None => (text, None),
    };
    if !matches!(name, "no" | "always" | "unless-stopped" | "on-failure") {
        return Err(CliError::Usage(format!(
            "--restart {text:?}: expected no, always, unless-stopped or on-failure[:N]"
        )));
    }
    Ok(RestartPolicyBody {
        name: name.to_owned(),
        maximum_retry_count: count,
    })
}

/// The create body for the flags.
pub fn body(args: &CreateArgs) -> Result<CreateContainerBody, CliError> {
    let command = match (&args.cmd, args.command.is_empty()) {
        (Some(line), _) => Some(
            shlex::split(line)
                .filter(|argv| !argv.is_empty())
                .ok_or_else(|| {
                    CliError::Usage(format!("--cmd {line:?}: unbalanced quotes or empty"))
                })?,
        ),
        (None, false) => Some(args.command.clone()),
        (None, true) => None,
    };
    Ok(CreateContainerBody {
        image: Some(args.image.clone()),
        name: args.name.clone(),
        command: command.map(CommandField::List),
        cpu: args.cpu.map(NumberOrString::Number),
        memory: args
            .memory
            .as_deref()
            .map(parse_memory)
            .transpose()?
            .map(|m| IntegerOrString::Text(m.to_string())),
        workdir: args.workdir.clone(),
        environment: pairs(&args.env, "--env")?,
        labels: pairs(&args.labels, "--label")?,
        restart_policy: args.restart.as_deref().map(parse_restart).transpose()?,
        interactive: args.interactive.then_some(Flag(true)),
        tty: args.tty.then_some(Flag(true)),
        ports: (!args.ports.is_empty()).then(|| args.ports.clone()),
        ..CreateContainerBody::default()
    })
}

/// `container-create`.
pub async fn run(session: &Session, args: &CreateArgs) -> Result<u8, CliError> {
    let body = body(args)?;
    let created = session.create_container(&body).await?;
    let id = created.uuid.clone();
    let container = if args.wait || !args.daemon {
        wait_running(session, &id, Duration::from_secs(args.wait_timeout)).await?
    } else {
        created
    };
    if args.daemon {
        print_created(&container, args)?;
        return Ok(0);
    }
    if args.interactive && args.tty {
        return super::exec::attach(session, &id).await;
    }
    super::logs::follow(session, &id, None, false).await?;
    Ok(0)
}

fn print_created(container: &ContainerView, args: &CreateArgs) -> Result<(), CliError> {
    match args.output.format {
        // The uuid alone, so that `id=$(osc container-create ...)` works.
        None => {
            println!("{}", container.uuid);
            Ok(())
        }
        Some(_) => print_record(super::containers::record(container), &args.output),
    }
}

/// What a waiting create is doing, as told to the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No instance chosen yet.
    Scheduling,
    /// The instance is being booted.
    Booting(String),
    /// The instance is up; its agent has not connected yet.
    Enrolling(String),
    /// Placed on a ready instance: the image is fetched and it starts;
    /// with the service's reason while it retries.
    Starting(Option<String>),
}

impl Phase {
    fn describe(&self, elapsed: Duration) -> String {
        let secs = elapsed.as_secs();
        let short = |id: &str| id.chars().take(8).collect::<String>();
        match self {
            Self::Scheduling => format!("waiting for an instance ({secs} s)"),
            Self::Booting(id) => format!("booting instance {}… ({secs} s)", short(id)),
            Self::Enrolling(id) => format!("enrolling agent on {}… ({secs} s)", short(id)),
            Self::Starting(None) => format!("starting container ({secs} s)"),
            Self::Starting(Some(reason)) => format!("starting container ({secs} s): {reason}"),
        }
    }
}

/// The phase of a container still `Creating`.
async fn phase(session: &Session, container: &ContainerView) -> Phase {
    let Some(host) = &container.host else {
        return Phase::Scheduling;
    };
    // Once the instance is up, a reason that still says it is awaited is
    // stale (the scheduler clears it on its next pass).
    let starting = || {
        Phase::Starting(
            container
                .status_reason
                .clone()
                .filter(|r| !r.starts_with("waiting for an instance")),
        )
    };
    match session.show_host(host).await {
        Ok(h) if h.status == "Booting" && h.addresses.is_empty() => Phase::Booting(host.clone()),
        Ok(h) if h.status == "Booting" => Phase::Enrolling(host.clone()),
        Ok(_) => starting(),
        // Hosts may be hidden by policy: say what we know.
        Err(_) => starting(),
    }
}

/// The progress line: a spinner on a terminal, a line per phase change
/// otherwise (logs, CI).
struct Progress {
    bar: Option<ProgressBar>,
    last: Option<Phase>,
    started: Instant,
}

impl Progress {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            bar,
            last: None,
            started: Instant::now(),
        }
    }

    fn show(&mut self, phase: Phase) {
        let message = phase.describe(self.started.elapsed());
        match &self.bar {
            Some(bar) => bar.set_message(message),
            None if self.last.as_ref() != Some(&phase) => eprintln!("{message}"),
            None => {}
        }
        self.last = Some(phase);
    }

    fn finish(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.finish_with_message(message.to_owned()),
            None => eprintln!("{message}"),
        }
    }
}

/// Polls until the container runs (or stopped: it ran and exited), with
/// a progress line; fails on `Error` with its reason.
pub async fn wait_running(
    session: &Session,
    id: &str,
    timeout: Duration,
) -> Result<ContainerView, CliError> {
    let mut progress = Progress::new();
    loop {
        let container = session.show_container(id).await?;
        match container.status.as_str() {
            "Running" | "Stopped" | "Paused" => {
                progress.finish(&format!(
                    "container {} is {} ({} s)",
                    container.name,
                    container.status.to_lowercase(),
                    progress.started.elapsed().as_secs()
                ));
                return Ok(container);
            }
            "Error" => {
                progress.finish(&format!(
                    "failed ({} s)",
                    progress.started.elapsed().as_secs()
                ));
                return Err(CliError::ContainerFailed {
                    id: container.uuid,
                    reason: container
                        .status_reason
                        .unwrap_or_else(|| "no reason given".into()),
                });
            }
            "Creating" => progress.show(phase(session, &container).await),
            _ => progress.show(Phase::Starting(None)),
        }
        if progress.started.elapsed() > timeout {
            progress.finish("gave up");
            return Err(CliError::WaitTimedOut {
                id: container.uuid,
                status: container.status,
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::args::{Cli, Command};

    fn create_args(argv: &[&str]) -> CreateArgs {
        let mut full = vec!["osc", "container-create"];
        full.extend_from_slice(argv);
        match Cli::try_parse_from(full).map(|c| c.command) {
            Ok(Command::ContainerCreate(args)) => *args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_proposal_command_makes_the_body() {
        let args = create_args(&[
            "--port",
            "pub:222:22",
            "--daemon",
            "--image",
            "3f2a",
            "--cmd",
            "/usr/sbin/sshd -D",
        ]);
        let body = body(&args).expect("valid");
        let json = serde_json::to_value(&body).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"image": "3f2a", "command": ["/usr/sbin/sshd", "-D"], "ports": ["pub:222:22"]})
        );
        assert!(args.daemon);
    }

    #[test]
    fn flags_are_checked_before_sending() {
        let args = create_args(&[
            "--image",
            "x",
            "-e",
            "A=1",
            "--memory",
            "1G",
            "--restart",
            "on-failure:3",
        ]);
        let body = body(&args).expect("valid");
        assert_eq!(body.memory, Some(IntegerOrString::Text("1024".into())));
        assert_eq!(body.environment.map(|e| e["A"].clone()), Some("1".into()));
        for bad in [
            vec!["--image", "x", "-e", "novalue"],
            vec!["--image", "x", "--memory", "12T"],
            vec!["--image", "x", "--restart", "sometimes"],
            vec!["--image", "x", "--cmd", "sh -c 'unbalanced"],
        ] {
            assert!(body_of(&bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Phase::Booting("3f2a1b2c-0000".into()).describe(Duration::from_secs(12)),
            "booting instance 3f2a1b2c… (12 s)"
        );
    }

    fn body_of(argv: &[&str]) -> Result<CreateContainerBody, CliError> {
        body(&create_args(argv))
    }
}
