//! The command line: global `--os-*` options (each also read from its
//! `OS_*` variable, the flag winning) and one subcommand per operation.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// osc: Nest's command line, for containers in your own Nova instances.
#[derive(Debug, Parser)]
#[command(name = "osc", version, about, long_about = None, after_help = AFTER_HELP)]
pub struct Cli {
    /// Where and as whom.
    #[command(flatten)]
    pub auth: AuthArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

const AFTER_HELP: &str = "Credentials come from the usual OpenStack environment (source an openrc), \
from OS_CLOUD and clouds.yaml, or from OS_TOKEN with OS_ENDPOINT (NEST_TOKEN and NEST_URL, \
as in /var/lib/nest/nestrc, work too). See docs/osc.md.";

/// The `--os-*` options.
#[derive(Debug, Default, Args)]
pub struct AuthArgs {
    /// A cloud of clouds.yaml.
    #[arg(long = "os-cloud", env = "OS_CLOUD", global = true)]
    pub cloud: Option<String>,
    /// Keystone's URL (v3).
    #[arg(long = "os-auth-url", env = "OS_AUTH_URL", global = true)]
    pub auth_url: Option<String>,
    /// User name.
    #[arg(long = "os-username", env = "OS_USERNAME", global = true)]
    pub username: Option<String>,
    /// User id.
    #[arg(long = "os-user-id", env = "OS_USER_ID", global = true)]
    pub user_id: Option<String>,
    /// Password.
    #[arg(
        long = "os-password",
        env = "OS_PASSWORD",
        global = true,
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// Project name.
    #[arg(long = "os-project-name", env = "OS_PROJECT_NAME", global = true)]
    pub project_name: Option<String>,
    /// Project id.
    #[arg(long = "os-project-id", env = "OS_PROJECT_ID", global = true)]
    pub project_id: Option<String>,
    /// The user's domain name.
    #[arg(
        long = "os-user-domain-name",
        env = "OS_USER_DOMAIN_NAME",
        global = true
    )]
    pub user_domain_name: Option<String>,
    /// The user's domain id.
    #[arg(long = "os-user-domain-id", env = "OS_USER_DOMAIN_ID", global = true)]
    pub user_domain_id: Option<String>,
    /// The project's domain name.
    #[arg(
        long = "os-project-domain-name",
        env = "OS_PROJECT_DOMAIN_NAME",
        global = true
    )]
    pub project_domain_name: Option<String>,
    /// The project's domain id.
    #[arg(
        long = "os-project-domain-id",
        env = "OS_PROJECT_DOMAIN_ID",
        global = true
    )]
    pub project_domain_id: Option<String>,
    /// Application credential id.
    #[arg(
        long = "os-application-credential-id",
        env = "OS_APPLICATION_CREDENTIAL_ID",
        global = true
    )]
    pub application_credential_id: Option<String>,
    /// Application credential name (with the user).
    #[arg(
        long = "os-application-credential-name",
        env = "OS_APPLICATION_CREDENTIAL_NAME",
        global = true
    )]
    pub application_credential_name: Option<String>,
    /// Application credential secret.
    #[arg(
        long = "os-application-credential-secret",
        env = "OS_APPLICATION_CREDENTIAL_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub application_credential_secret: Option<String>,
    /// A token (with --os-endpoint it is used as is; with --os-auth-url it
    /// is exchanged for a project-scoped one). NEST_TOKEN too.
    #[arg(
        long = "os-token",
        env = "OS_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Nest's URL, instead of the catalog's. NEST_URL too.
    #[arg(long = "os-endpoint", env = "OS_ENDPOINT", global = true)]
    pub endpoint: Option<String>,
    /// Region in the catalog.
    #[arg(long = "os-region-name", env = "OS_REGION_NAME", global = true)]
    pub region: Option<String>,
    /// Interface in the catalog: public (default), internal or admin.
    #[arg(long = "os-interface", env = "OS_INTERFACE", global = true)]
    pub interface: Option<String>,
    /// A PEM file of the CA that signs Keystone's and Nest's certificates.
    #[arg(long = "os-cacert", env = "OS_CACERT", global = true)]
    pub cacert: Option<PathBuf>,
    /// Do not verify TLS certificates (tests only).
    #[arg(long = "insecure", env = "OS_INSECURE", global = true)]
    pub insecure: bool,
}

/// How to print results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table (lists' default).
    Table,
    /// `key: value` lines (a single object's default).
    Text,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
    /// Bare values, space-separated, one row a line.
    Value,
}

/// `-f` and `-c`, on the commands that print objects.
#[derive(Clone, Debug, Default, Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short = 'f', long = "format", value_enum)]
    pub format: Option<Format>,
    /// Only this column (repeat for more).
    #[arg(short = 'c', long = "column", value_name = "COLUMN")]
    pub columns: Vec<String>,
}

/// The operations.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and start a container.
    ContainerCreate(Box<CreateArgs>),
    /// List your project's containers.
    ContainerList {
        /// Every project's (admins).
        #[arg(long)]
        all_projects: bool,
        /// Output.
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show a container, one `key: value` line per field.
    ContainerShow {
        /// Its uuid or name.
        container: String,
        /// Output.
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Delete containers.
    ContainerDelete {
        /// Their uuids or names.
        #[arg(required = true)]
        containers: Vec<String>,
        /// Kill a running container first.
        #[arg(long)]
        force: bool,
        /// Stop a running container first.
        #[arg(long)]
        stop: bool,
    },
    /// Start a stopped container.
    ContainerStart(Targets),
    /// Stop a container (SIGTERM, then SIGKILL after the timeout).
    ContainerStop(TimedTargets),
    /// Send a container's main process a signal.
    ContainerKill {
        /// Its uuid or name.
        container: String,
        /// Signal name or number (default SIGKILL, the engine's).
        #[arg(short, long)]
        signal: Option<String>,
    },
    /// Restart a container.
    ContainerRestart(TimedTargets),
    /// Pause a container.
    ContainerPause(Targets),
    /// Unpause a container.
    ContainerUnpause(Targets),
    /// Print a container's logs.
    ContainerLogs {
        /// Its uuid or name.
        container: String,
        /// Keep printing new output until the container stops (or ^C).
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(long, value_name = "N")]
        tail: Option<u32>,
        /// Prefix lines with their time.
        #[arg(long)]
        timestamps: bool,
    },
    /// Run a command in a running container.
    ContainerExec {
        /// Its uuid or name.
        container: String,
        /// Keep stdin open.
        #[arg(short, long)]
        interactive: bool,
        /// Allocate a terminal (with -i: a real terminal, raw mode, resizes).
        #[arg(short, long)]
        tty: bool,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Attach this terminal to an interactive container's console.
    ContainerAttach {
        /// Its uuid or name.
        container: String,
    },
    /// Upload an image (a `docker save` archive or a root filesystem tar).
    ImageCreate {
        /// The tar file, or `-` for stdin.
        file: PathBuf,
        /// A name shown in lists.
        #[arg(long)]
        name: Option<String>,
        /// Output.
        #[command(flatten)]
        output: OutputArgs,
    },
    /// List your project's stored images.
    ImageList {
        /// Output.
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Delete stored images.
    ImageDelete {
        /// Their uuids.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// List your project's instances and the containers each holds.
    InstanceList {
        /// Output.
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show the limits (Nova's) that bound your project, with their use.
    QuotaShow {
        /// The project (default: the one you are scoped to).
        #[arg(long)]
        project: Option<String>,
        /// Output.
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Get a client certificate for Nest's Docker endpoint and print the
    /// DOCKER_* variables to export: `eval "$(osc docker-env)"`.
    DockerEnv {
        /// Where to keep key.pem, cert.pem and ca.pem (default
        /// ~/.config/osc/docker/<project>).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// How long the certificate lasts, e.g. `12h` (default: the
        /// service's maximum).
        #[arg(long)]
        lifetime: Option<String>,
        /// Print `unset` lines instead, to go back to the local engine.
        #[arg(short, long)]
        unset: bool,
    },
    /// Print a shell completion script: `source <(osc completion bash)`.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// One or more containers.
#[derive(Debug, Args)]
pub struct Targets {
    /// Their uuids or names.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// One or more containers and a grace period.
#[derive(Debug, Args)]
pub struct TimedTargets {
    /// Their uuids or names.
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Seconds to wait for a clean stop before killing.
    #[arg(long)]
    pub timeout: Option<u32>,
}

/// `container-create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The image: a stored image's uuid (`osc image-list`) or a registry
    /// reference.
    #[arg(long)]
    pub image: String,
    /// The command line, split as a shell would (`--cmd "/usr/sbin/sshd -D"`).
    #[arg(long)]
    pub cmd: Option<String>,
    /// Publish a port: `[NET:]HOST:CONTAINER[/tcp|udp]`, where NET is a
    /// network name (`pub`) or an address. Repeatable.
    #[arg(short, long = "port", value_name = "SPEC")]
    pub ports: Vec<String>,
    /// Return once it is accepted (print its uuid) instead of following
    /// its output.
    #[arg(short, long)]
    pub daemon: bool,
    /// Wait until it runs, showing progress, before returning.
    #[arg(long)]
    pub wait: bool,
    /// Seconds --wait waits.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub wait_timeout: u64,
    /// An environment variable, `KEY=VALUE`. Repeatable.
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// A name (generated when absent).
    #[arg(long)]
    pub name: Option<String>,
    /// vCPUs reserved (0.1 to 16; default 1).
    #[arg(long)]
    pub cpu: Option<f64>,
    /// Memory reserved: MiB, or with a unit (`512M`, `1G`).
    #[arg(long)]
    pub memory: Option<String>,
    /// Working directory.
    #[arg(long)]
    pub workdir: Option<String>,
    /// A label, `KEY=VALUE`. Repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Restart policy: `no`, `always`, `unless-stopped` or `on-failure[:N]`.
    #[arg(long)]
    pub restart: Option<String>,
    /// Keep stdin open.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// The command, after `--`, instead of --cmd.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        conflicts_with = "cmd"
    )]
    pub command: Vec<String>,
    /// Output.
    #[command(flatten)]
    pub output: OutputArgs,
}
