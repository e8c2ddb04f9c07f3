//! The agent's TOML configuration file, as written to
//! [`AGENT_CONFIG_PATH`](crate::paths::AGENT_CONFIG_PATH).
//!
//! Serialized with the `toml` crate from a serde struct, never templated, so
//! a value cannot end its string and start a new key. The agent's own
//! `AgentConfig` must accept exactly these keys; the paths are this crate's
//! public constants so both sides can name them.

use serde::{Deserialize, Serialize};

use crate::error::RenderError;
use crate::paths::{CA_CERTIFICATE_PATH, ENROLLMENT_TOKEN_PATH, STATE_DIR};
use crate::validate::Validated;

/// Contents of `/etc/nest/agent.toml`. Field order is the order in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentConfigFile {
    pub(crate) relay_addr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) relay_server_name: Option<String>,
    pub(crate) instance_id: String,
    pub(crate) ca_certificate: String,
    pub(crate) enrollment_token_file: String,
    pub(crate) state_dir: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) docker_socket: Option<String>,
}

impl AgentConfigFile {
    pub(crate) fn new(bootstrap: &Validated<'_>) -> Self {
        AgentConfigFile {
            relay_addr: bootstrap.relay_addr.to_owned(),
            relay_server_name: bootstrap.relay_server_name.map(str::to_owned),
            instance_id: bootstrap.instance_id.to_owned(),
            ca_certificate: CA_CERTIFICATE_PATH.to_owned(),
            enrollment_token_file: ENROLLMENT_TOKEN_PATH.to_owned(),
            state_dir: STATE_DIR.to_owned(),
            docker_socket: bootstrap.docker_socket.map(str::to_owned),
        }
    }

    pub(crate) fn to_toml(&self) -> Result<String, RenderError> {
        toml::to_string(self).map_err(RenderError::AgentConfig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample_bootstrap;

    fn keys(toml_text: &str) -> Vec<String> {
        let table: toml::Table = toml::from_str(toml_text).unwrap_or_default();
        table.keys().cloned().collect()
    }

    #[test]
    fn optional_keys_are_omitted_when_none() {
        let mut bootstrap = sample_bootstrap();
        bootstrap.relay_server_name = None;
        bootstrap.docker_socket = None;
        let text = bootstrap
            .check()
            .ok()
            .and_then(|v| AgentConfigFile::new(&v).to_toml().ok())
            .unwrap_or_default();
        let mut found = keys(&text);
        found.sort();
        assert_eq!(
            found,
            [
                "ca_certificate",
                "enrollment_token_file",
                "instance_id",
                "relay_addr",
                "state_dir"
            ],
            "{text}"
        );
    }

    #[test]
    fn all_keys_round_trip() {
        let bootstrap = sample_bootstrap();
        let Ok(checked) = bootstrap.check() else {
            panic!("sample must be valid");
        };
        let file = AgentConfigFile::new(&checked);
        let text = file.to_toml().unwrap_or_default();
        let back: Result<AgentConfigFile, _> = toml::from_str(&text);
        assert_eq!(back.ok(), Some(file), "{text}");
        assert_eq!(keys(&text).len(), 7, "{text}");
    }
}
