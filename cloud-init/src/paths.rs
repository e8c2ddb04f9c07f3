//! Where the agent's files live inside the instance.
//!
//! These are the only paths the rendered user-data writes to or runs, so the
//! `local` instance driver, the agent's own defaults and the docs can name
//! them from one place. None of them comes from the caller except the agent
//! binary's path ([`AgentSource::Baked`](crate::AgentSource::Baked)) and the
//! Docker socket, which are validated before use.

/// The agent's TOML configuration file, mode 0644.
pub const AGENT_CONFIG_PATH: &str = "/etc/nest/agent.toml";

/// The Nest CA certificate(s) the agent trusts for the relay, mode 0644.
pub const CA_CERTIFICATE_PATH: &str = "/etc/nest/ca.pem";

/// The one-time enrollment token, one line, mode 0600 owned `root:root`.
///
/// A file rather than a key in [`AGENT_CONFIG_PATH`] so that the
/// world-readable configuration holds no secret, and so the agent can delete
/// the token once it has enrolled.
pub const ENROLLMENT_TOKEN_PATH: &str = "/etc/nest/enrollment-token";

/// The agent's state directory (its private key and certificate), created
/// mode 0700 owned `root:root` before the agent first starts.
pub const STATE_DIR: &str = "/var/lib/nest-agent";

/// Where the agent binary is installed by a download, and where a baked image
/// is expected to have it unless told otherwise.
pub const DEFAULT_AGENT_BINARY_PATH: &str = "/usr/local/bin/nest-agent";

/// The systemd unit's name, as `systemctl` takes it.
pub const SYSTEMD_UNIT_NAME: &str = "nest-agent.service";

/// The systemd unit file, mode 0644.
pub const SYSTEMD_UNIT_PATH: &str = "/etc/systemd/system/nest-agent.service";

/// The fixed script that checks a downloaded agent's sha256 and installs it,
/// mode 0755. Written only when the agent is downloaded.
pub const INSTALL_SCRIPT_PATH: &str = "/usr/local/lib/nest/install-agent";

/// Where a downloaded agent binary waits for its checksum to be verified.
///
/// Inside [`STATE_DIR`] (mode 0700) rather than `/tmp`, so that no other user
/// can swap the file between the download and the check.
pub const DOWNLOAD_PATH: &str = "/var/lib/nest-agent/nest-agent.download";

/// The `owner` of every file the user-data writes.
pub const FILE_OWNER: &str = "root:root";
