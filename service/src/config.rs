//! `ServiceConfig`: nest-service's settings, from one TOML file.
//!
//! Every field has a default that suits the embedded, one-machine setup
//! (SQLite in the state directory, the `local` driver, an embedded relay),
//! except auth, which must be chosen explicitly: dev auth is never on
//! unless the file says so.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nest_core::config::{Problems, Validate};
use nest_core::duration::HumanDuration;

use crate::auth::keystone::KeystoneConfig;
use crate::driver::DriverConfig;

/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/nest";
/// Default API address: Zun's port, loopback only.
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:9517";
/// Default tries of a create that fails in a way a retry can help.
pub const DEFAULT_CREATE_ATTEMPTS: u32 = 5;
/// Default wait after a create's first failed try.
pub const DEFAULT_CREATE_RETRY_DELAY: Duration = Duration::from_secs(5);
/// Default embedded relay address.
pub const DEFAULT_RELAY_LISTEN: &str = "0.0.0.0:7443";
/// Default time an empty instance is kept before it is deleted.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Default longest wait for a booted instance's agent to connect.
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(300);
/// Default concurrent boots per project.
pub const DEFAULT_MAX_BOOTS_PER_PROJECT: usize = 2;
/// Default vCPUs reserved by a container that names none (Zun's default).
pub const DEFAULT_CONTAINER_CPU: f64 = 1.0;
/// Default memory reserved by a container that names none, MiB (Zun's).
pub const DEFAULT_CONTAINER_MEMORY_MIB: u64 = 512;
/// Default time in-flight work gets on shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Settings for `nest-service`.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Where the database, the CA and instance state live. Default:
    /// `/var/lib/nest`.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// The HTTP API.
    #[serde(default)]
    pub api: ApiConfig,
    /// The database.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// How callers are authenticated. Required.
    pub auth: AuthConfig,
    /// The relay the agents connect to.
    #[serde(default)]
    pub relay: RelaySection,
    /// Placement and instance lifecycle.
    #[serde(default)]
    pub scheduler: SchedulerConfig,
    /// How new instances get `nest-agent`.
    #[serde(default)]
    pub agent: AgentSection,
    /// The Docker Engine API endpoint (off unless enabled).
    #[serde(default)]
    pub docker: DockerSection,
    /// The instance driver: `kind = "local"` (default) or `"nova"`, with
    /// that driver's settings beside it.
    #[serde(default)]
    pub driver: DriverConfig,
    /// Time in-flight work gets on SIGTERM. Default: 10s.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: HumanDuration,
}

/// The HTTP API.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on. Default: `127.0.0.1:9517` (Zun's port).
    #[serde(default = "default_api_listen")]
    pub listen: SocketAddr,
    /// The URL clients reach the API at, for links and websocket URLs.
    /// Default: `http://` and the request's `Host` header, as Zun does.
    #[serde(default)]
    pub public_url: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: default_api_listen(),
            public_url: None,
        }
    }
}

/// Default address of the Docker endpoint: Docker's TLS port.
pub const DEFAULT_DOCKER_LISTEN: &str = "127.0.0.1:2376";
/// Default (and longest) lifetime of a Docker client certificate.
pub const DEFAULT_DOCKER_CERTIFICATE_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Longest `certificate_lifetime` an operator may configure: the
/// certificates are meant to be short-lived.
pub const MAX_DOCKER_CERTIFICATE_LIFETIME: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The Docker Engine API endpoint (issue #8): the unchanged docker CLI
/// reaches it over TLS with a client certificate from
/// `/v1/nest/docker/certificates` or a Keystone token header.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerSection {
    /// Serve the endpoint. Default: `false`.
    #[serde(default)]
    pub enabled: bool,
    /// Address to listen on (TLS only). Default: `127.0.0.1:2376`.
    #[serde(default = "default_docker_listen")]
    pub listen: SocketAddr,
    /// Host name or IP address clients put in `DOCKER_HOST`; the server
    /// certificate names it. Default: the listen address's IP
    /// (`127.0.0.1` when it listens on every address).
    #[serde(default)]
    pub public_host: Option<String>,
    /// Lifetime of an issued client certificate, and the most a request
    /// may ask for. Default: `12h`; at most `30d`.
    #[serde(default = "default_docker_certificate_lifetime")]
    pub certificate_lifetime: HumanDuration,
}

impl Default for DockerSection {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: default_docker_listen(),
            public_host: None,
            certificate_lifetime: default_docker_certificate_lifetime(),
        }
    }
}

impl DockerSection {
    /// The host clients dial: `public_host`, else the listen IP (loopback
    /// for an unspecified one).
    pub fn host(&self, listen: SocketAddr) -> String {
        match &self.public_host {
            Some(host) => host.clone(),
            None if listen.ip().is_unspecified() => "127.0.0.1".to_owned(),
            None => listen.ip().to_string(),
        }
    }
}

fn default_docker_listen() -> SocketAddr {
    DEFAULT_DOCKER_LISTEN
        .parse()
        .expect("DEFAULT_DOCKER_LISTEN is a valid address")
}

fn default_docker_certificate_lifetime() -> HumanDuration {
    HumanDuration(DEFAULT_DOCKER_CERTIFICATE_LIFETIME)
}

/// The database.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://...` or `postgres://...`. Default: SQLite at
    /// `<state_dir>/nest.db`. A password may instead come from the
    /// environment variable `NEST_DATABASE_URL`, which overrides this.
    #[serde(default)]
    pub url: Option<String>,
}

/// How callers are authenticated.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum AuthConfig {
    /// Keystone v3 tokens (production): the service user's Keystone
    /// session (`auth_url`, `username`, `password`, ...) and `cache_ttl`.
    /// Boxed: it is far larger than the other variant.
    Keystone(Box<KeystoneConfig>),
    /// Static tokens from this file. For development only: loudly logged.
    Dev {
        /// The accepted tokens.
        tokens: Vec<DevToken>,
    },
}

/// One static dev token.
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevToken {
    /// The token value (at least 16 characters).
    pub token: String,
    /// User id the token stands for.
    pub user_id: String,
    /// Project id the token is scoped to.
    pub project_id: String,
    /// Role names.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl std::fmt::Debug for DevToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevToken")
            .field("token", &"<redacted>")
            .field("user_id", &self.user_id)
            .field("project_id", &self.project_id)
            .field("roles", &self.roles)
            .finish()
    }
}

/// How new instances get the agent.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// `baked`: the instance image has the binary (default). `download`:
    /// cloud-init fetches it from this service's `/v1/nest/agent` over
    /// HTTPS (so `api.public_url` must be `https://`) and checks its
    /// SHA-256 before installing it.
    #[serde(default)]
    pub source: AgentSourceKind,
    /// The binary to serve for `download`. Default: `nest-agent` next to
    /// the service's own executable.
    #[serde(default)]
    pub binary: Option<std::path::PathBuf>,
}

/// Where instances get the agent binary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentSourceKind {
    /// Already in the image.
    #[default]
    Baked,
    /// Downloaded from this service on first boot.
    Download,
}

/// The relay agents connect to.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySection {
    /// Address the embedded relay listens on. Default: `0.0.0.0:7443`.
    #[serde(default = "default_relay_listen")]
    pub listen: SocketAddr,
    /// Address agents dial, written into user-data; port 0 means the
    /// embedded relay's own port. Default: for the `local` driver, its
    /// bridge gateway and the relay's port. Set it for `nova`: an address
    /// of this host that the servers' networks reach.
    #[serde(default)]
    pub advertise: Option<SocketAddr>,
    /// A stand-alone `nest-relay` to use instead of the embedded one,
    /// `host:port`. Its certificate comes from `nest-service
    /// issue-relay-certificate`. Default: none (the relay is embedded).
    #[serde(default)]
    pub external: Option<SocketAddr>,
    /// Heartbeat interval on agent sessions. Default: 10s.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_interval: HumanDuration,
    /// What unauthenticated peers may hold on the embedded relay
    /// (`[relay.limits]`, the same keys as `nest-relay`'s `[limits]`).
    /// Default: every limit's default.
    #[serde(default)]
    pub limits: nest_relay::config::ConnectionLimits,
}

impl Default for RelaySection {
    fn default() -> Self {
        Self {
            listen: default_relay_listen(),
            advertise: None,
            external: None,
            heartbeat_interval: default_heartbeat(),
            limits: nest_relay::config::ConnectionLimits::default(),
        }
    }
}

/// Placement and instance lifecycle.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConfig {
    /// An instance empty for this long is deleted. Default: 10m.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// Empty instances kept per project regardless of idleness. Default: 0.
    #[serde(default)]
    pub warm_pool: usize,
    /// Concurrent boots per project. Default: 2.
    #[serde(default = "default_max_boots")]
    pub max_boots_per_project: usize,
    /// Longest wait for a booted instance's agent. Default: 5m.
    #[serde(default = "default_boot_timeout")]
    pub boot_timeout: HumanDuration,
    /// Flavor sent with every boot, overriding the driver's own
    /// (`driver.flavor` for `nova`); the `local` driver ignores it.
    /// Default: none.
    #[serde(default)]
    pub flavor: Option<String>,
    /// Image sent with every boot, overriding the driver's own
    /// (`driver.image` for `nova`); the `local` driver ignores it.
    /// Default: none.
    #[serde(default)]
    pub image: Option<String>,
    /// Network sent with every boot (driver-specific); the `local` driver
    /// ignores it. Default: none.
    #[serde(default)]
    pub network: Option<String>,
    /// Tries a create gets when its image cannot be pulled or its agent
    /// does not answer, before the container ends in `Error` with the
    /// engine's reason. Default: 5.
    #[serde(default = "default_create_attempts")]
    pub create_attempts: u32,
    /// Wait after a create's first failed try; it doubles after each
    /// further one, up to 1m. Default: 5s.
    #[serde(default = "default_create_retry_delay")]
    pub create_retry_delay: HumanDuration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            idle_timeout: default_idle_timeout(),
            warm_pool: 0,
            max_boots_per_project: DEFAULT_MAX_BOOTS_PER_PROJECT,
            boot_timeout: default_boot_timeout(),
            flavor: None,
            image: None,
            network: None,
            create_attempts: DEFAULT_CREATE_ATTEMPTS,
            create_retry_delay: default_create_retry_delay(),
        }
    }
}

fn default_create_attempts() -> u32 {
    DEFAULT_CREATE_ATTEMPTS
}
fn default_create_retry_delay() -> HumanDuration {
    HumanDuration(DEFAULT_CREATE_RETRY_DELAY)
}

fn default_state_dir() -> PathBuf {
    PathBuf::from(DEFAULT_STATE_DIR)
}
fn default_api_listen() -> SocketAddr {
    DEFAULT_API_LISTEN
        .parse()
        .expect("DEFAULT_API_LISTEN is a valid address")
}
fn default_relay_listen() -> SocketAddr {
    DEFAULT_RELAY_LISTEN
        .parse()
        .expect("DEFAULT_RELAY_LISTEN is a valid address")
}
fn default_heartbeat() -> HumanDuration {
    HumanDuration(nest_relay::config::DEFAULT_HEARTBEAT_INTERVAL)
}
fn default_idle_timeout() -> HumanDuration {
    HumanDuration(DEFAULT_IDLE_TIMEOUT)
}
fn default_boot_timeout() -> HumanDuration {
    HumanDuration(DEFAULT_BOOT_TIMEOUT)
}
fn default_max_boots() -> usize {
    DEFAULT_MAX_BOOTS_PER_PROJECT
}
fn default_shutdown_grace() -> HumanDuration {
    HumanDuration(DEFAULT_SHUTDOWN_GRACE)
}

pub use nest_core::config::ConfigError;

impl ServiceConfig {
    /// Reads and validates a config file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, or every invalid key at once.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        nest_core::config::load_valid(path)
    }

    /// The database URL: the environment override, the file's, or SQLite
    /// in the state directory.
    pub fn database_url(&self, env_override: Option<String>) -> String {
        env_override
            .or_else(|| self.database.url.clone())
            .unwrap_or_else(|| {
                format!(
                    "sqlite://{}?mode=rwc",
                    self.state_dir.join("nest.db").display()
                )
            })
    }
}

impl Validate for ServiceConfig {
    fn check(&self, problems: &mut Problems) {
        if !self.state_dir.is_absolute() {
            problems.push("state_dir", "must be an absolute path");
        }
        self.relay.limits.check("relay.limits.", problems);
        if let AuthConfig::Keystone(keystone) = &self.auth {
            problems.nested("auth", keystone.as_ref());
        }
        if let AuthConfig::Dev { tokens } = &self.auth {
            if tokens.is_empty() {
                problems.push("auth.tokens", "dev auth needs at least one token");
            }
            for (i, t) in tokens.iter().enumerate() {
                if t.token.len() < 16 {
                    problems.push(
                        &format!("auth.tokens[{i}].token"),
                        "must be at least 16 characters",
                    );
                }
                if crate::domain::ProjectId::parse(&t.project_id).is_err() {
                    problems.push(&format!("auth.tokens[{i}].project_id"), "invalid");
                }
                if crate::domain::UserId::parse(&t.user_id).is_err() {
                    problems.push(&format!("auth.tokens[{i}].user_id"), "invalid");
                }
            }
        }
        if let Some(url) = &self.database.url
            && !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
        {
            problems.push("database.url", "must start with sqlite: or postgres://");
        }
        if self.agent.source == AgentSourceKind::Download
            && !self
                .api
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
        {
            problems.push(
                "agent.source",
                "\"download\" needs api.public_url to be an https:// URL \
                 (cloud-init only fetches the agent over HTTPS)",
            );
        }
        if self.scheduler.create_attempts == 0 {
            problems.push("scheduler.create_attempts", "must be at least 1");
        }
        let lifetime = self.docker.certificate_lifetime.get();
        if lifetime < Duration::from_secs(60) || lifetime > MAX_DOCKER_CERTIFICATE_LIFETIME {
            problems.push("docker.certificate_lifetime", "must be between 1m and 30d");
        }
        if let Some(host) = &self.docker.public_host
            && (host.is_empty()
                || host.len() > 253
                || !host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':')))
        {
            problems.push("docker.public_host", "must be a host name or an IP address");
        }
        if self.scheduler.max_boots_per_project == 0 {
            problems.push("scheduler.max_boots_per_project", "must be at least 1");
        }
        if self.scheduler.boot_timeout.get() < Duration::from_secs(5) {
            problems.push("scheduler.boot_timeout", "must be at least 5s");
        }
        if let DriverConfig::Nova(nova) = &self.driver {
            problems.nested("driver", nova.as_ref());
            if nova.boot_timeout >= self.scheduler.boot_timeout {
                problems.push(
                    "driver.boot_timeout",
                    "must be shorter than scheduler.boot_timeout, \
                     which also covers the agent's enrollment",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_parses_and_validates() {
        let config: ServiceConfig =
            toml::from_str(include_str!("../../docs/examples/service.toml"))
                .expect("docs/examples/service.toml parses");
        config.validate().expect("and is valid");
        assert!(matches!(config.auth, AuthConfig::Keystone(_)));
        assert_eq!(
            config.scheduler.idle_timeout.get(),
            Duration::from_secs(600)
        );
    }

    #[test]
    fn the_documented_nova_example_parses_and_validates() {
        let example = include_str!("../../docs/examples/service.toml");
        let (head, tail) = example
            .split_once("\n[driver]\n")
            .expect("the example has a [driver] section");
        let nova: Vec<&str> = tail
            .lines()
            .skip_while(|l| !l.starts_with("# [driver]"))
            .map(|l| l.strip_prefix("# ").or(l.strip_prefix('#')).unwrap_or(l))
            .collect();
        assert!(!nova.is_empty(), "the example shows a nova driver");
        let config: ServiceConfig = toml::from_str(&format!("{head}\n{}\n", nova.join("\n")))
            .expect("the commented nova example parses");
        assert_eq!(config.driver.kind(), "nova");
        config.validate().expect("the nova example is valid");
    }

    #[test]
    fn every_problem_is_reported_and_dev_tokens_are_redacted() {
        let text = r#"
state_dir = "relative"
[auth]
mode = "dev"
tokens = [{ token = "short", user_id = "u", project_id = "p/x" }]
[database]
url = "mysql://x"
[scheduler]
max_boots_per_project = 0
"#;
        let config: ServiceConfig = toml::from_str(text).expect("parses");
        let err = config.validate().expect_err("invalid").to_string();
        for key in [
            "state_dir",
            "auth.tokens[0].token",
            "project_id",
            "database.url",
            "max_boots_per_project",
        ] {
            assert!(err.contains(key), "{key} missing from {err}");
        }
        assert!(
            !format!("{config:?}").contains("short"),
            "token must not be printed"
        );
    }

    #[test]
    fn keystone_settings_are_checked_at_load_and_named_under_auth() {
        let text = "[auth]\nmode = \"keystone\"\nauth_url = \"ftp://k\"\nusername = \"nest\"\n\
                    password = \"secret-pw\"\ncache_ttl = \"10m\"\n";
        let config: ServiceConfig = toml::from_str(text).expect("parses");
        let err = config.validate().expect_err("invalid").to_string();
        for key in ["auth.auth_url", "auth.project_name", "auth.cache_ttl"] {
            assert!(err.contains(key), "{key} missing from {err}");
        }
        assert!(!err.contains("secret-pw"), "{err}");
        assert!(!format!("{config:?}").contains("secret-pw"));

        let unknown = toml::from_str::<ServiceConfig>(
            "[auth]\nmode = \"keystone\"\nauth_url = \"http://k:5000\"\ninsecure = true\n",
        )
        .expect_err("an unknown key")
        .to_string();
        assert!(unknown.contains("`insecure`"), "{unknown}");
    }

    const DEV_AUTH: &str = "[auth]\nmode = \"dev\"\ntokens = [{ token = \"0123456789abcdef0\", user_id = \"u\", project_id = \"p\" }]\n";

    #[test]
    fn the_driver_is_local_without_a_section_or_a_kind() {
        let config: ServiceConfig = toml::from_str(DEV_AUTH).expect("parses");
        let DriverConfig::Local(local) = &config.driver else {
            panic!("expected the local driver, got {:?}", config.driver);
        };
        assert_eq!(
            local.state_dir,
            std::path::PathBuf::new(),
            "filled in at startup"
        );
        assert_eq!(local.bridge, crate::driver::local::DEFAULT_BRIDGE);

        let text = format!("{DEV_AUTH}[driver]\nbridge = \"nest9\"\n");
        let config: ServiceConfig = toml::from_str(&text).expect("parses");
        assert_eq!(config.driver.kind(), "local");
        let DriverConfig::Local(local) = &config.driver else {
            panic!("expected the local driver, got {:?}", config.driver);
        };
        assert_eq!(local.bridge, "nest9");
        config.validate().expect("valid");
    }

    #[test]
    fn unknown_driver_keys_and_kinds_are_refused_at_load_by_name() {
        for (driver, named) in [
            ("kind = \"local\"\nbridgee = \"nest9\"", "`bridgee`"),
            ("bridgee = \"nest9\"", "`bridgee`"),
            ("kind = \"xen\"", "`xen`"),
            ("kind = \"nova\"\nflavour = \"m1.small\"", "`flavour`"),
        ] {
            let text = format!("{DEV_AUTH}[driver]\n{driver}\n");
            let err = toml::from_str::<ServiceConfig>(&text)
                .expect_err("refused")
                .to_string();
            assert!(err.contains(named), "{named} missing from {err}");
        }
    }

    #[test]
    fn the_nova_drivers_settings_are_checked() {
        let text = format!(
            "{DEV_AUTH}[driver]\nkind = \"nova\"\nflavor = \"m1.small\"\nimage = \"\"\n\
             boot_timeout = \"10m\"\nnetworks = [{{ name = \"pub\", network = \"public\" }}]\n\
             [driver.auth]\nauth_url = \"http://127.0.0.1:5000/v3\"\nusername = \"nest\"\n\
             password = \"pw-secret\"\nproject_name = \"service\"\n"
        );
        let config: ServiceConfig = toml::from_str(&text).expect("parses");
        assert_eq!(config.driver.kind(), "nova");
        let err = config.validate().expect_err("bad settings").to_string();
        for expected in [
            "driver.image: must not be empty",
            "driver.boot_timeout: must be shorter than scheduler.boot_timeout",
        ] {
            assert!(err.contains(expected), "{expected:?} missing from {err}");
        }
        assert!(!err.contains("pw-secret"), "{err}");
        assert!(!format!("{config:?}").contains("pw-secret"));
    }

    #[test]
    fn auth_must_be_chosen_and_unknown_keys_are_refused() {
        assert!(toml::from_str::<ServiceConfig>("state_dir = \"/x\"\n").is_err());
        let download = "[auth]\nmode = \"dev\"\ntokens = [{ token = \"0123456789abcdef0\", user_id = \"u\", project_id = \"p\" }]\n[agent]\nsource = \"download\"\n";
        let config: ServiceConfig = toml::from_str(download).expect("parses");
        let err = config.validate().expect_err("http public URL").to_string();
        assert!(err.contains("agent.source"), "{err}");
        assert!(
            toml::from_str::<ServiceConfig>(
                "[auth]\nmode = \"dev\"\ntokens = []\n[api]\nport = 1\n"
            )
            .is_err()
        );
    }
}
