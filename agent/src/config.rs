//! `AgentConfig`: the agent's settings, written by cloud-init on first boot
//! (or by the `local` driver) as one TOML file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nest_core::backoff::{DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX};
use nest_core::duration::HumanDuration;
use nest_core::ids::InstanceId;

/// Default directory for the agent's key and certificate.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/nest-agent";
/// Default Docker engine socket.
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// Settings for `nest-agent`.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Relay endpoint, `host:port`. Required.
    pub relay_addr: String,
    /// Name the relay's certificate must carry. Default: `relay.nest`, which
    /// every relay certificate Nest issues has, whatever address is dialled.
    #[serde(default)]
    pub relay_server_name: Option<String>,
    /// Nova server id of this instance; the issued certificate names it.
    /// Required.
    pub instance_id: InstanceId,
    /// PEM file of Nest's CA certificate. Required.
    pub ca_certificate: PathBuf,
    /// File holding the single-use enrollment token; read only when the
    /// agent has no certificate yet, and deleted after enrolling. Required.
    pub enrollment_token_file: PathBuf,
    /// Directory for the agent's private key and certificate (created with
    /// mode 0700). Default: `/var/lib/nest-agent`.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Docker engine socket. Default: `/var/run/docker.sock`.
    #[serde(default = "default_docker_socket")]
    pub docker_socket: PathBuf,
    /// First delay before reconnecting. Default: 250ms.
    #[serde(default = "default_reconnect_initial")]
    pub reconnect_initial: HumanDuration,
    /// Longest delay between reconnect attempts. Default: 2m.
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max: HumanDuration,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from(DEFAULT_STATE_DIR)
}
fn default_docker_socket() -> PathBuf {
    PathBuf::from(DEFAULT_DOCKER_SOCKET)
}
fn default_reconnect_initial() -> HumanDuration {
    HumanDuration(DEFAULT_BACKOFF_INITIAL)
}
fn default_reconnect_max() -> HumanDuration {
    HumanDuration(DEFAULT_BACKOFF_MAX)
}

pub use nest_core::config::ConfigError;
use nest_core::config::{Problems, Validate, parse_toml};

impl AgentConfig {
    /// Parses and validates config text.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] or [`ConfigError::Invalid`].
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Self = parse_toml(Path::new(""), text)?;
        config.validate()?;
        Ok(config)
    }
}

impl Validate for AgentConfig {
    fn check(&self, problems: &mut Problems) {
        let addr_ok = matches!(
            self.relay_addr.rsplit_once(':'),
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        );
        problems.require(
            addr_ok,
            "relay_addr",
            format_args!("{:?} is not host:port", self.relay_addr),
        );
        for (key, path) in [
            ("ca_certificate", &self.ca_certificate),
            ("enrollment_token_file", &self.enrollment_token_file),
            ("state_dir", &self.state_dir),
            ("docker_socket", &self.docker_socket),
        ] {
            problems.require(
                path.is_absolute(),
                key,
                format_args!("{} must be an absolute path", path.display()),
            );
        }
        problems.require(
            self.reconnect_initial.get() >= Duration::from_millis(10),
            "reconnect_initial",
            "must be at least 10ms",
        );
        problems.require(
            self.reconnect_max.get() >= self.reconnect_initial.get(),
            "reconnect_max",
            "must not be less than reconnect_initial",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_parses() {
        let config = AgentConfig::parse(include_str!("../../docs/examples/agent.toml"))
            .expect("docs/examples/agent.toml parses and is valid");
        assert_eq!(config.docker_socket, PathBuf::from(DEFAULT_DOCKER_SOCKET));
        assert_eq!(config.reconnect_max.get(), Duration::from_secs(120));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"
relay_addr = "no-port"
instance_id = "i-1"
ca_certificate = "ca.pem"
enrollment_token_file = "/etc/nest/enrollment-token"
reconnect_initial = "1ms"
"#;
        let err = AgentConfig::parse(text).expect_err("invalid").to_string();
        for key in ["relay_addr", "ca_certificate", "reconnect_initial"] {
            assert!(err.contains(key), "{key} missing from {err}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_instance_ids_are_refused() {
        let base = "relay_addr='h:1'\nca_certificate='/a'\nenrollment_token_file='/b'\n";
        assert!(AgentConfig::parse(&format!("{base}instance_id='i-1'\nextra=1\n")).is_err());
        assert!(AgentConfig::parse(&format!("{base}instance_id='../etc'\n")).is_err());
        assert!(AgentConfig::parse(&format!("{base}instance_id='i-1'\n")).is_ok());
    }
}
