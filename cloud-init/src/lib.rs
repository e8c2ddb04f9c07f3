//! Renders the cloud-config user-data that installs, configures and starts
//! `nest-agent` on a new instance, and reads it back for the `local` driver.
//!
//! When the scheduler boots a Nova instance for a project (DESIGN.md, "The
//! life of a container", step 2), it passes the output of [`render`] as the
//! server's `user_data`. On first boot cloud-init then:
//!
//! 1. writes these files (`write_files`, cloud-init's `init` stage), all
//!    owned `root:root`:
//!
//!    | path | mode | content |
//!    |---|---|---|
//!    | [`CA_CERTIFICATE_PATH`] `/etc/nest/ca.pem` | 0644 | Nest's CA certificate(s), PEM |
//!    | [`ENROLLMENT_TOKEN_PATH`] `/etc/nest/enrollment-token` | 0600 | the one-time token, one line |
//!    | [`AGENT_CONFIG_PATH`] `/etc/nest/agent.toml` | 0644 | the agent's TOML configuration |
//!    | [`SYSTEMD_UNIT_PATH`] `/etc/systemd/system/nest-agent.service` | 0644 | the systemd unit |
//!    | [`INSTALL_SCRIPT_PATH`] `/usr/local/lib/nest/install-agent` | 0755 | only for [`AgentSource::Download`]: a fixed script that checks the sha256 and installs |
//!
//! 2. runs these commands (`runcmd`, the `final` stage, after the network
//!    is up), each an argv list, never a shell string:
//!
//!    ```text
//!    install -d -m 0700 -o root -g root /var/lib/nest-agent
//!    curl -fsSL --proto =https --proto-redir =https --retry 5 --retry-connrefused \
//!         -o /var/lib/nest-agent/nest-agent.download <url>              (Download only)
//!    /usr/local/lib/nest/install-agent <sha256> /var/lib/nest-agent/nest-agent.download \
//!         /usr/local/bin/nest-agent                                      (Download only)
//!    systemctl daemon-reload
//!    systemctl enable --now nest-agent.service
//!    ```
//!
//! The agent configuration has exactly the keys `relay_addr`,
//! `relay_server_name` (omitted when `None`), `instance_id`,
//! `ca_certificate`, `enrollment_token_file`, `state_dir` and
//! `docker_socket` (omitted when `None`); the three paths are the constants
//! in [`paths`].
//!
//! # Safe by construction
//!
//! Nothing is templated. The document is a serde value ([`CloudConfig`])
//! serialized as JSON behind the `#cloud-config` line, and the agent
//! configuration is serialized with the `toml` crate, so a value can never
//! close its string and open a key, a file or a command. JSON is YAML, and
//! cloud-init reads it with PyYAML's `safe_load` to exactly the same value:
//! the few characters PyYAML would misread raw are written as `\u` escapes
//! (see `encode`), and strings such as `no` or `0755` stay quoted strings.
//! The integration test `tests/schema.rs` checks the output with the real
//! `cloud-init schema` and compares `yaml.safe_load` with `json.loads`.
//!
//! Validation ([`AgentBootstrap::validate`]) comes first anyway and reports
//! every problem at once, because some values leave JSON inside the
//! instance: the agent path lands in a systemd `ExecStart=` line, the URL and
//! checksum become program arguments, and a malformed relay address or token
//! would only fail minutes later inside a VM nobody watches.
//!
//! # What the user-data does not protect
//!
//! User-data stays readable inside the instance (from the metadata service
//! and `/var/lib/cloud`), so the enrollment token it holds is single-use and
//! short-lived (DESIGN.md, "Security model"). cloud-init sets a file's mode
//! just after writing it, so the token file is briefly 0644 on first boot,
//! before any tenant login exists.
//!
//! cloud-init runs `runcmd` as one script without `set -e`: a failed download
//! is reported by curl and by the install script in the cloud-init log,
//! nothing is installed, and the unit's `ConditionFileIsExecutable=` then
//! skips the start instead of restarting a missing binary. The instance
//! never enrolls, which the scheduler already handles as a failed boot.
//!
//! # Size
//!
//! Nova limits `user_data` to [`NOVA_USER_DATA_MAX_BYTES`] (65535) bytes of
//! its *base64* form, so [`render`] refuses output longer than
//! [`MAX_USER_DATA_BYTES`] (49149) bytes, the most whose base64 fits.
//! Typical output is about 3 KiB.
//!
//! # The `local` driver
//!
//! The `local` instance driver has no cloud-init: it calls [`parse`] on the
//! same user-data, writes the `write_files` entries itself (with
//! [`WriteFile::mode`]) and starts the agent. [`parse`] accepts only what
//! [`render`] produces.
//!
//! # Layout
//!
//! - `bootstrap`: the input, [`AgentBootstrap`] and [`AgentSource`], and the
//!   redacted [`EnrollmentToken`].
//! - `validate`: every rule on the input; [`ValidationError`] lists each
//!   broken one as a [`Problem`].
//! - `document`: the cloud-config serde types ([`CloudConfig`],
//!   [`WriteFile`], [`FileMode`], [`Command`]) and how a checked bootstrap
//!   becomes one, including the fixed install script.
//! - `agent_config`: the agent's TOML file.
//! - `systemd`: the unit text.
//! - `encode`: JSON with YAML-safe escapes, the header, Nova's size limit,
//!   [`UserData`] and [`parse`].
//! - [`paths`]: every path inside the instance.
//! - `error`: [`RenderError`] and [`ParseError`].
//! - `testing` (in tests, and with the `testing` feature): sample inputs.

#![warn(missing_docs)]

mod agent_config;
mod bootstrap;
mod document;
mod encode;
mod error;
pub mod paths;
mod systemd;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod validate;

pub use bootstrap::{AgentBootstrap, AgentSource, EnrollmentToken};
pub use document::{CloudConfig, Command, FileMode, WriteFile};
pub use encode::{
    CLOUD_CONFIG_HEADER, MAX_USER_DATA_BYTES, NOVA_USER_DATA_MAX_BYTES, UserData, base64_len, parse,
};
pub use error::{ParseError, RenderError};
pub use paths::{
    AGENT_CONFIG_PATH, CA_CERTIFICATE_PATH, DEFAULT_AGENT_BINARY_PATH, DOWNLOAD_PATH,
    ENROLLMENT_TOKEN_PATH, FILE_OWNER, INSTALL_SCRIPT_PATH, STATE_DIR, SYSTEMD_UNIT_NAME,
    SYSTEMD_UNIT_PATH,
};
pub use validate::{
    ENROLLMENT_TOKEN_LEN, MAX_INSTANCE_ID_LEN, MAX_PATH_LEN, MAX_URL_LEN, Problem, ValidationError,
};

/// Renders the user-data that installs, configures and starts the agent.
///
/// Validates `bootstrap` first (see [`AgentBootstrap::validate`]), then
/// serializes the document. Pure and cheap: no I/O.
///
/// # Errors
///
/// - [`RenderError::Invalid`] listing every field that breaks its rule;
/// - [`RenderError::TooLarge`] when the output would exceed Nova's limit
///   (in practice only with a very large CA bundle).
///
/// # Example
///
/// ```
/// use nest_cloud_init::{AgentBootstrap, AgentSource, EnrollmentToken, render};
///
/// let bootstrap = AgentBootstrap {
///     instance_id: "6f9a1c2e-4b7d-4e0f-9a3b-2c1d0e9f8a7b".into(),
///     relay_addr: "relay.nest.example:7443".into(),
///     relay_server_name: None,
///     ca_certificate_pem: "-----BEGIN CERTIFICATE-----\nMIIBkTCB\n-----END CERTIFICATE-----\n".into(),
///     enrollment_token: EnrollmentToken::new("ab".repeat(32)),
///     docker_socket: None,
///     agent_source: AgentSource::Download {
///         url: "https://downloads.nest.example/nest-agent".into(),
///         sha256: "0".repeat(64),
///     },
/// };
/// let user_data = render(&bootstrap)?;
/// assert!(user_data.as_str().starts_with("#cloud-config\n"));
/// // Base64-encode `user_data.as_bytes()` into Nova's `server.user_data`.
/// assert!(user_data.base64_len() <= nest_cloud_init::NOVA_USER_DATA_MAX_BYTES);
/// # Ok::<(), nest_cloud_init::RenderError>(())
/// ```
pub fn render(bootstrap: &AgentBootstrap) -> Result<UserData, RenderError> {
    let checked = bootstrap.check()?;
    let document = document::build(&checked)?;
    encode::encode(&document)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::INSTALL_SCRIPT;
    use crate::testing::{
        SAMPLE_CA_PEM, SAMPLE_TOKEN, sample_bootstrap, sample_download_bootstrap,
    };

    fn render_and_parse(bootstrap: &AgentBootstrap) -> CloudConfig {
        let rendered = render(bootstrap);
        let Ok(user_data) = rendered else {
            panic!("render failed: {rendered:?}");
        };
        let parsed = parse(user_data.as_str());
        let Ok(document) = parsed else {
            panic!("parse failed: {parsed:?}\n{}", user_data.as_str());
        };
        document
    }

    fn argvs(document: &CloudConfig) -> Vec<Vec<&str>> {
        document
            .runcmd
            .iter()
            .map(|c| c.argv().iter().map(String::as_str).collect())
            .collect()
    }

    fn file<'a>(document: &'a CloudConfig, path: &str) -> &'a WriteFile {
        let found = document.write_files.iter().find(|f| f.path == path);
        found.unwrap_or_else(|| panic!("no write_files entry for {path}"))
    }

    #[test]
    fn baked_agent_gets_files_and_is_started() {
        let document = render_and_parse(&sample_bootstrap());
        let summary: Vec<(&str, u32, &str)> = document
            .write_files
            .iter()
            .map(|f| (f.path.as_str(), f.mode(), f.owner.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (CA_CERTIFICATE_PATH, 0o644, "root:root"),
                (ENROLLMENT_TOKEN_PATH, 0o600, "root:root"),
                (AGENT_CONFIG_PATH, 0o644, "root:root"),
                (SYSTEMD_UNIT_PATH, 0o644, "root:root"),
            ]
        );
        assert_eq!(file(&document, CA_CERTIFICATE_PATH).content, SAMPLE_CA_PEM);
        assert_eq!(
            file(&document, ENROLLMENT_TOKEN_PATH).content,
            format!("{SAMPLE_TOKEN}\n")
        );
        assert!(
            file(&document, SYSTEMD_UNIT_PATH)
                .content
                .contains("\nExecStart=/usr/local/bin/nest-agent --config /etc/nest/agent.toml\n")
        );
        assert_eq!(
            argvs(&document),
            [
                vec![
                    "install", "-d", "-m", "0700", "-o", "root", "-g", "root", STATE_DIR
                ],
                vec!["systemctl", "daemon-reload"],
                vec!["systemctl", "enable", "--now", "nest-agent.service"],
            ]
        );
    }

    #[test]
    fn agent_config_has_exactly_the_documented_keys() {
        let document = render_and_parse(&sample_bootstrap());
        let config: toml::Table = toml::from_str(&file(&document, AGENT_CONFIG_PATH).content)
            .unwrap_or_else(|e| panic!("agent.toml must parse: {e}"));
        let expected: toml::Table = toml::from_str(
            r#"
            relay_addr = "relay.nest.example:7443"
            relay_server_name = "relay.nest.internal"
            instance_id = "6f9a1c2e-4b7d-4e0f-9a3b-2c1d0e9f8a7b"
            ca_certificate = "/etc/nest/ca.pem"
            enrollment_token_file = "/etc/nest/enrollment-token"
            state_dir = "/var/lib/nest-agent"
            docker_socket = "/run/docker.sock"
            "#,
        )
        .unwrap_or_default();
        assert_eq!(config, expected);
    }

    #[test]
    fn download_fetches_over_https_checks_and_installs() {
        let document = render_and_parse(&sample_download_bootstrap());
        let url = "https://downloads.nest.example/agent/v0.1.0/nest-agent";
        let sha256 = "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789";
        assert_eq!(
            argvs(&document),
            [
                vec![
                    "install", "-d", "-m", "0700", "-o", "root", "-g", "root", STATE_DIR
                ],
                vec![
                    "curl",
                    "-fsSL",
                    "--proto",
                    "=https",
                    "--proto-redir",
                    "=https",
                    "--retry",
                    "5",
                    "--retry-connrefused",
                    "-o",
                    DOWNLOAD_PATH,
                    url,
                ],
                vec![
                    INSTALL_SCRIPT_PATH,
                    sha256,
                    DOWNLOAD_PATH,
                    DEFAULT_AGENT_BINARY_PATH
                ],
                vec!["systemctl", "daemon-reload"],
                vec!["systemctl", "enable", "--now", "nest-agent.service"],
            ]
        );
        let script = file(&document, INSTALL_SCRIPT_PATH);
        assert_eq!(
            (script.content.as_str(), script.mode()),
            (INSTALL_SCRIPT, 0o755)
        );
        assert!(DOWNLOAD_PATH.starts_with(&format!("{STATE_DIR}/")));
    }

    #[test]
    fn invalid_bootstrap_renders_nothing() {
        let mut bootstrap = sample_bootstrap();
        bootstrap.instance_id = "bad id".into();
        bootstrap.enrollment_token = EnrollmentToken::new("\"\n- path: /etc/shadow");
        match render(&bootstrap) {
            Err(RenderError::Invalid(e)) => {
                assert_eq!(
                    e.problems(),
                    [Problem::InstanceId, Problem::EnrollmentToken]
                );
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn oversized_ca_bundle_is_refused() {
        let mut bootstrap = sample_bootstrap();
        bootstrap.ca_certificate_pem =
            SAMPLE_CA_PEM.repeat(MAX_USER_DATA_BYTES / SAMPLE_CA_PEM.len() + 1);
        match render(&bootstrap) {
            Err(RenderError::TooLarge { bytes, encoded }) => {
                assert!(bytes > MAX_USER_DATA_BYTES && encoded > NOVA_USER_DATA_MAX_BYTES);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn yaml_lookalike_values_stay_strings() {
        for id in ["no", "yes", "0755", "1e3", "null", "true", ".inf"] {
            let mut bootstrap = sample_bootstrap();
            bootstrap.instance_id = id.into();
            let document = render_and_parse(&bootstrap);
            let config: toml::Table =
                toml::from_str(&file(&document, AGENT_CONFIG_PATH).content).unwrap_or_default();
            assert_eq!(config.get("instance_id").and_then(|v| v.as_str()), Some(id));
        }
    }
}
