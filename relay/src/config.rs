//! `RelayConfig`: the settings of a stand-alone `nest-relay`, read from one
//! TOML file. The embedded relay inside nest-service builds the same struct.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::duration::HumanDuration;

/// Default listen address: all interfaces, so agents in instances reach it.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:7443";
/// Default interval between heartbeats on an agent session.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
/// Default time a command may take when the caller names none.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time given to open sessions and streams to finish on shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Settings for `nest-relay`.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// Address to listen on for agents and the service, `host:port`.
    /// Default: `DEFAULT_LISTEN` (`0.0.0.0:7443`). Port 0 picks a free port.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// PEM file of Nest's CA certificate, which every peer's certificate
    /// must chain to. Required.
    pub ca_certificate: PathBuf,
    /// PEM file of this relay's certificate (role relay, issued by the CA).
    /// Required.
    pub certificate: PathBuf,
    /// PEM file of this relay's private key. Required; keep it mode 0600.
    pub private_key: PathBuf,
    /// Interval between heartbeats; a session silent for three intervals is
    /// closed. Default: 10s.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_interval: HumanDuration,
    /// Time a command may take when the service names none. Default: 60s.
    #[serde(default = "default_command_timeout")]
    pub command_timeout: HumanDuration,
    /// Time given to sessions and streams to finish on SIGTERM. Default: 10s.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: HumanDuration,
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN
        .parse()
        .expect("DEFAULT_LISTEN is a valid socket address")
}
fn default_heartbeat() -> HumanDuration {
    HumanDuration(DEFAULT_HEARTBEAT_INTERVAL)
}
fn default_command_timeout() -> HumanDuration {
    HumanDuration(DEFAULT_COMMAND_TIMEOUT)
}
fn default_shutdown_grace() -> HumanDuration {
    HumanDuration(DEFAULT_SHUTDOWN_GRACE)
}

/// Why a config file (of any Nest binary) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this struct.
    #[error("invalid config file {path}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// What the parser found.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// Values parsed but cannot work together; every problem is listed.
    #[error("invalid configuration: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// Reads a TOML config file into `T` (every Nest binary's config goes
/// through here, so errors name the file the same way everywhere).
///
/// # Errors
/// [`ConfigError::Read`] or [`ConfigError::Parse`], naming the file.
pub fn load_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

impl RelayConfig {
    /// Reads and validates a config file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, or every invalid key at once.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let config: Self = load_toml(path)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but cannot work, reporting all of them.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] listing each problem with its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.heartbeat_interval.get() < Duration::from_millis(100) {
            problems.push("heartbeat_interval: must be at least 100ms".to_owned());
        }
        if self.heartbeat_interval.get() > Duration::from_secs(300) {
            problems.push("heartbeat_interval: must be at most 5m".to_owned());
        }
        if self.command_timeout.get().is_zero() {
            problems.push("command_timeout: must be more than 0s".to_owned());
        }
        for (key, path) in [
            ("ca_certificate", &self.ca_certificate),
            ("certificate", &self.certificate),
            ("private_key", &self.private_key),
        ] {
            if path.as_os_str().is_empty() {
                problems.push(format!("{key}: must name a file"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_parses() {
        let text = include_str!("../../docs/examples/relay.toml");
        let config: RelayConfig = toml::from_str(text).expect("docs/examples/relay.toml parses");
        config.validate().expect("and is valid");
        assert_eq!(config.heartbeat_interval.get(), Duration::from_secs(10));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let unknown = "ca_certificate='a'\ncertificate='b'\nprivate_key='c'\nlisten_port=1\n";
        assert!(toml::from_str::<RelayConfig>(unknown).is_err());
        let bad = "ca_certificate=''\ncertificate='b'\nprivate_key='c'\nheartbeat_interval='1ms'\ncommand_timeout='0s'\n";
        let config: RelayConfig = toml::from_str(bad).expect("parses");
        let err = config.validate().expect_err("invalid").to_string();
        assert!(err.contains("heartbeat_interval"), "{err}");
        assert!(err.contains("command_timeout"), "{err}");
        assert!(err.contains("ca_certificate"), "{err}");
    }
}
