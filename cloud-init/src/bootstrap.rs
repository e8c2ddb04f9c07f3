//! The input: everything one new instance needs to know to start its agent.
//!
//! These types only carry values. [`crate::validate`] decides whether they are
//! acceptable, and [`crate::document`] turns them into a cloud-config.

use std::fmt;

use crate::paths::DEFAULT_AGENT_BINARY_PATH;

/// What the service knows about a new instance's agent before booting it.
///
/// Build it with a struct literal, then call [`render`](crate::render). Every
/// field is checked by [`AgentBootstrap::validate`] before anything is
/// rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentBootstrap {
    /// Nova server id of the instance; the agent's certificate will name it.
    /// 1 to 64 characters from `[A-Za-z0-9._-]`.
    pub instance_id: String,
    /// Relay endpoint the agent dials, `host:port`; an IPv6 host is written
    /// in brackets (`[2001:db8::1]:7443`).
    pub relay_addr: String,
    /// Name to expect in the relay's certificate (a DNS name or an IP
    /// address). `None` omits the key, and the agent then expects
    /// `relay.nest`, which every relay certificate Nest issues carries.
    pub relay_server_name: Option<String>,
    /// Nest's CA certificate(s), PEM: one or more `CERTIFICATE` blocks and
    /// nothing else.
    pub ca_certificate_pem: String,
    /// The single-use enrollment token for this instance: 64 lowercase hex
    /// characters. Never printed by `Debug`.
    pub enrollment_token: EnrollmentToken,
    /// Path of the Docker Engine API Unix socket in the instance, when it is
    /// not the agent's default. `None` omits the key.
    pub docker_socket: Option<String>,
    /// Where the agent binary comes from.
    pub agent_source: AgentSource,
}

/// Where the instance gets the `nest-agent` binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentSource {
    /// The image already has the binary; nothing is downloaded.
    Baked {
        /// Absolute path of the binary in the image. The usual value is
        /// [`DEFAULT_AGENT_BINARY_PATH`], which is what `Default` gives.
        path: String,
    },
    /// Download the binary over HTTPS on first boot, check its sha256, and
    /// install it at [`DEFAULT_AGENT_BINARY_PATH`] mode 0755.
    Download {
        /// `https://` URL of the binary. Plain HTTP is refused, for the first
        /// request and for redirects.
        url: String,
        /// Expected sha256 of the binary, 64 hex characters (either case).
        sha256: String,
    },
}

impl Default for AgentSource {
    fn default() -> Self {
        AgentSource::Baked {
            path: DEFAULT_AGENT_BINARY_PATH.to_owned(),
        }
    }
}

impl AgentSource {
    /// The path systemd starts the agent from once the user-data has run.
    pub fn installed_path(&self) -> &str {
        match self {
            AgentSource::Baked { path } => path,
            AgentSource::Download { .. } => DEFAULT_AGENT_BINARY_PATH,
        }
    }
}

/// The one-time enrollment token: a secret whose `Debug` prints `<redacted>`.
///
/// It is single-use and short-lived (DESIGN.md, "Security model"), because
/// user-data stays readable inside the instance; still, it must never reach
/// a log.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrollmentToken(String);

impl EnrollmentToken {
    /// Wraps a token; [`AgentBootstrap::validate`] checks its form.
    pub fn new(token: impl Into<String>) -> Self {
        EnrollmentToken(token.into())
    }

    /// The token itself, for writing into the user-data. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EnrollmentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnrollmentToken(<redacted>)")
    }
}

impl From<String> for EnrollmentToken {
    fn from(token: String) -> Self {
        EnrollmentToken(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{SAMPLE_TOKEN, sample_bootstrap};

    #[test]
    fn debug_never_prints_the_token() {
        let bootstrap = sample_bootstrap();
        let printed = format!("{bootstrap:?} {:#?}", bootstrap.enrollment_token);
        assert!(!printed.contains(SAMPLE_TOKEN), "{printed}");
        assert!(printed.contains("<redacted>"));
    }

    #[test]
    fn download_installs_at_the_default_path() {
        let download = AgentSource::Download {
            url: "https://example.com/nest-agent".into(),
            sha256: "0".repeat(64),
        };
        assert_eq!(download.installed_path(), DEFAULT_AGENT_BINARY_PATH);
        assert_eq!(
            AgentSource::default().installed_path(),
            DEFAULT_AGENT_BINARY_PATH
        );
    }
}
