//! What a new container is made of: [`ContainerSpec`], in Nest's terms.
//!
//! The shape is checked on the way in (a port is a port, a policy is one
//! the agent knows); the limits and reserved names the engine and the
//! agent's ownership labels impose are checked by the Docker module when
//! it builds the engine's create body.

use std::net::IpAddr;
use std::num::NonZeroU16;

use std::fmt;

use super::{ContainerUuid, NetworkId};

/// Everything `docker run` needs, in Nest's terms. The Docker module adds
/// its own ownership labels; a spec may not set labels under `nest.`.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerSpec {
    /// Nest's container uuid.
    pub uuid: ContainerUuid,
    /// Optional human name, kept in a label (the engine name is always
    /// `nest-<uuid>`).
    pub name: Option<String>,
    /// Image reference to run.
    pub image: String,
    /// Command; empty means the image's.
    pub command: Vec<String>,
    /// Entrypoint; empty means the image's.
    pub entrypoint: Vec<String>,
    /// Environment variables, in order.
    pub env: Vec<EnvVar>,
    /// Working directory; `None` means the image's.
    pub workdir: Option<String>,
    /// The caller's labels, in order; a later duplicate key wins.
    pub labels: Vec<Label>,
    /// Hostname; `None` lets the engine choose.
    pub hostname: Option<String>,
    /// Ports to publish on the instance.
    pub ports: Vec<PortBinding>,
    /// CPU limit in millicores (1000 = one vCPU); 0 means unlimited.
    pub cpu_millis: u64,
    /// Memory limit in bytes; 0 means unlimited.
    pub memory_bytes: u64,
    /// What the engine does when the container exits.
    pub restart_policy: RestartPolicy,
    /// Whether the container gets a terminal.
    pub tty: bool,
    /// Whether the container's stdin stays open for `attach`.
    pub open_stdin: bool,
    /// Whether the first attached client's end of stdin closes the
    /// container's stdin (Docker's `StdinOnce`, for `docker run -i`).
    pub stdin_once: bool,
    /// User to run as; `None` means the image's.
    pub user: Option<String>,
    /// User-defined networks the container joins, the first as its
    /// primary one; empty means the engine's default bridge. The wire
    /// conversion keeps this to [`MAX_NETWORKS`] distinct networks.
    pub networks: Vec<NetworkAttachment>,
    /// How the engine runs it beyond its process.
    pub engine: EngineOptions,
}

/// How the engine runs a container beyond its process, and its
/// healthcheck: the service's own type, checked by the same rules when read
/// off the wire.
pub use nest_core::engine_options::{EngineOptions, HealthCheck};

impl ContainerSpec {
    /// A spec that runs `image` with everything else left to the image and
    /// the engine: no ports, no limits, no restarts.
    pub fn new(uuid: ContainerUuid, image: impl Into<String>) -> Self {
        Self {
            uuid,
            name: None,
            image: image.into(),
            command: Vec::new(),
            entrypoint: Vec::new(),
            env: Vec::new(),
            workdir: None,
            labels: Vec::new(),
            hostname: None,
            ports: Vec::new(),
            cpu_millis: 0,
            memory_bytes: 0,
            restart_policy: RestartPolicy::No,
            tty: false,
            open_stdin: false,
            stdin_once: false,
            user: None,
            networks: Vec::new(),
            engine: EngineOptions::default(),
        }
    }
}

/// Most user-defined networks one container may join.
pub const MAX_NETWORKS: usize = 8;
/// Most aliases a container may have on one network: twice the 16 a tenant
/// may ask for, since the service adds its own (the container's short id).
pub const MAX_ALIASES: usize = 32;
/// Longest alias: a DNS name.
pub const MAX_ALIAS_LEN: usize = 253;

/// A container's place on one user-defined network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkAttachment {
    /// The network.
    pub network: NetworkId,
    /// Names the network's other containers resolve to this one, beside
    /// its engine name and its spec's name. At most [`MAX_ALIASES`].
    pub aliases: Vec<NetworkAlias>,
}

/// A name the engine's resolver answers with a container's address on one
/// network: 1 to [`MAX_ALIAS_LEN`] characters of `[A-Za-z0-9_.-]`, not
/// starting with `.` or `-`, so it is a name and never an option or a path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkAlias(String);

/// Why a string is not a [`NetworkAlias`]. The messages complete
/// "invalid `field`: ...".
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NetworkAliasError {
    /// The alias is empty.
    #[error("must not be empty")]
    Empty,
    /// The alias is longer than [`MAX_ALIAS_LEN`].
    #[error("is {0} characters long; at most {MAX_ALIAS_LEN} are allowed")]
    TooLong(usize),
    /// The alias holds a character outside `[A-Za-z0-9_.-]`.
    #[error("holds {0:?}; only ASCII letters, digits, '-', '_' and '.' are allowed")]
    BadCharacter(char),
    /// The alias starts with `.` or `-`.
    #[error("must not start with {0:?}")]
    BadStart(char),
}

impl NetworkAlias {
    /// Checks and wraps an alias.
    ///
    /// # Errors
    /// [`NetworkAliasError`] saying what is wrong with it.
    pub fn parse(alias: &str) -> Result<Self, NetworkAliasError> {
        let first = alias.chars().next().ok_or(NetworkAliasError::Empty)?;
        if alias.len() > MAX_ALIAS_LEN {
            return Err(NetworkAliasError::TooLong(alias.len()));
        }
        if let Some(bad) = alias
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(NetworkAliasError::BadCharacter(bad));
        }
        if matches!(first, '.' | '-') {
            return Err(NetworkAliasError::BadStart(first));
        }
        Ok(Self(alias.to_owned()))
    }

    /// The alias as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NetworkAlias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One environment variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvVar {
    /// Its name; the Docker module refuses an empty one or one with `=`.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// One label of a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// The label key.
    pub key: String,
    /// The label value.
    pub value: String,
}

/// A published port: asked for in a spec, or bound as the engine reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortBinding {
    /// Address on the instance; `None` means all addresses.
    pub host_ip: Option<IpAddr>,
    /// Port on the instance; 0 in a spec lets the engine choose.
    pub host_port: u16,
    /// Port inside the container.
    pub container_port: NonZeroU16,
    /// Transport protocol.
    pub protocol: Protocol,
}

/// Transport protocol of a published port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP, the default.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

/// What the engine does when a container exits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Never restart.
    #[default]
    No,
    /// Always restart, also after the engine restarts.
    Always,
    /// Restart after a non-zero exit.
    OnFailure {
        /// Restarts allowed; 0 means unlimited.
        max_retries: u32,
    },
    /// Always restart, unless the container was stopped on purpose.
    UnlessStopped,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_names_and_nothing_else() {
        for good in ["web", "db.internal", "a", "My_Service-1", "1st"] {
            assert_eq!(
                NetworkAlias::parse(good).map(|a| a.to_string()),
                Ok(good.to_owned())
            );
        }
        let longest = "a".repeat(MAX_ALIAS_LEN);
        assert!(NetworkAlias::parse(&longest).is_ok());
        assert_eq!(NetworkAlias::parse(""), Err(NetworkAliasError::Empty));
        assert_eq!(
            NetworkAlias::parse(&format!("{longest}a")),
            Err(NetworkAliasError::TooLong(MAX_ALIAS_LEN + 1))
        );
        assert_eq!(
            NetworkAlias::parse("-rm"),
            Err(NetworkAliasError::BadStart('-'))
        );
        assert_eq!(
            NetworkAlias::parse(".."),
            Err(NetworkAliasError::BadStart('.'))
        );
        assert_eq!(
            NetworkAlias::parse("a/b"),
            Err(NetworkAliasError::BadCharacter('/'))
        );
        assert_eq!(
            NetworkAlias::parse("a b"),
            Err(NetworkAliasError::BadCharacter(' '))
        );
        assert_eq!(
            NetworkAlias::parse("caf\u{e9}"),
            Err(NetworkAliasError::BadCharacter('\u{e9}'))
        );
    }
}
