//! `RelayConfig`: the settings of a stand-alone `nest-relay`, read from one
//! TOML file. The embedded relay inside nest-service builds the same struct.
//! Loading and problem reporting are `nest_core::config`'s, as for every
//! binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use nest_core::config::{Problems, Validate};
use nest_core::duration::HumanDuration;

/// Default listen address: all interfaces, so agents in instances reach it.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:7443";
/// Default interval between heartbeats on an agent session.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
/// Default time a command may take when the caller names none.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time given to open sessions and streams to finish on shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Default time a new connection has to finish its TLS handshake, send
/// the HTTP/2 preface and start its first request.
pub const DEFAULT_FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a connection may stay open with no request in flight.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default number of connections one source address may hold.
pub const DEFAULT_MAX_CONNECTIONS_PER_SOURCE: usize = 256;
/// Default number of connections the relay holds in all.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// What a peer may hold on the relay before it has proved anything: the
/// relay listens where every instance, and so every tenant, can reach it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionLimits {
    /// Time from accepting a connection to its first request (TLS
    /// handshake, HTTP/2 preface and request headers); a connection that
    /// has not started one by then is closed. Default: 10s.
    #[serde(default = "default_first_request_timeout")]
    pub first_request_timeout: HumanDuration,
    /// Time a connection may stay open with no request in flight (an agent
    /// session or a watch is one long request, so it never idles); then it
    /// is closed. Default: 5m.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// Connections one source address may hold at once; more are closed
    /// as soon as they are accepted. Raise it when many instances reach
    /// the relay through one NAT address. Default: 256.
    #[serde(default = "default_max_connections_per_source")]
    pub max_connections_per_source: usize,
    /// Connections the relay holds in all; more are closed as soon as they
    /// are accepted. Keep it well below the process's open-file limit, so
    /// that whatever else the process serves (the service's API) always
    /// has descriptors left. Default: 4096.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            first_request_timeout: default_first_request_timeout(),
            idle_timeout: default_idle_timeout(),
            max_connections_per_source: DEFAULT_MAX_CONNECTIONS_PER_SOURCE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl ConnectionLimits {
    /// Adds the problems of these limits to `problems`, under `prefix`
    /// (`limits.` or `relay.limits.`).
    pub fn check(&self, prefix: &str, problems: &mut Problems) {
        let first = self.first_request_timeout.get();
        problems.require(
            first >= Duration::from_millis(100) && first <= Duration::from_secs(600),
            &format!("{prefix}first_request_timeout"),
            "must be between 100ms and 10m",
        );
        problems.require(
            self.idle_timeout.get() >= Duration::from_secs(1),
            &format!("{prefix}idle_timeout"),
            "must be at least 1s",
        );
        problems.require(
            self.max_connections_per_source >= 1,
            &format!("{prefix}max_connections_per_source"),
            "must be at least 1",
        );
        problems.require(
            self.max_connections >= self.max_connections_per_source,
            &format!("{prefix}max_connections"),
            "must be at least max_connections_per_source",
        );
    }
}

fn default_first_request_timeout() -> HumanDuration {
    HumanDuration(DEFAULT_FIRST_REQUEST_TIMEOUT)
}
fn default_idle_timeout() -> HumanDuration {
    HumanDuration(DEFAULT_IDLE_TIMEOUT)
}
fn default_max_connections_per_source() -> usize {
    DEFAULT_MAX_CONNECTIONS_PER_SOURCE
}
fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}

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
    /// What unauthenticated peers may hold (`[limits]`). Default: every
    /// limit's default.
    #[serde(default)]
    pub limits: ConnectionLimits,
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

impl Validate for RelayConfig {
    fn check(&self, problems: &mut Problems) {
        let heartbeat = self.heartbeat_interval.get();
        problems.require(
            heartbeat >= Duration::from_millis(100),
            "heartbeat_interval",
            "must be at least 100ms",
        );
        problems.require(
            heartbeat <= Duration::from_secs(300),
            "heartbeat_interval",
            "must be at most 5m",
        );
        problems.require(
            !self.command_timeout.get().is_zero(),
            "command_timeout",
            "must be more than 0s",
        );
        self.limits.check("limits.", problems);
        problems.require_files([
            ("ca_certificate", self.ca_certificate.as_path()),
            ("certificate", self.certificate.as_path()),
            ("private_key", self.private_key.as_path()),
        ]);
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
