//! The settings of the `nova` instance driver (DESIGN.md, "Instance
//! drivers"): `[driver]` with `kind = "nova"`, typed and checked when the
//! config is loaded. What they name (flavor, image, networks, zone, key
//! pair) is checked against the cloud at each boot, with the tenant's own
//! view of it. The Keystone session is `nest_openstack`'s, as everywhere
//! the service talks to OpenStack.

use std::collections::BTreeSet;
use std::time::Duration;

use nest_core::config::{Problems, Validate};
use nest_core::duration::HumanDuration;
use nest_openstack::{Interface, SessionConfig};

/// Default longest wait for a new server to become `ACTIVE`.
pub const DEFAULT_NOVA_BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// Longest network alias: it is written in port specs (`pub:222:22`) and
/// keys the instance's addresses.
pub const MAX_NETWORK_ALIAS_LEN: usize = 64;
/// Default tag of every server Nest boots.
pub const DEFAULT_SERVER_TAG: &str = "nest";
/// Longest server tag: with `-<instance uuid>` it must fit Nova's 60.
pub const MAX_SERVER_TAG_LEN: usize = 20;

/// Settings of the `nova` driver.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NovaDriverConfig {
    /// The service user's Keystone session (`[driver.auth]`): the trustee
    /// of the tenants' trusts, and who looks up flavors, images and
    /// networks. Same keys as every Keystone section. Required.
    pub auth: SessionConfig,
    /// Region of the compute, network and image endpoints in the catalog.
    /// Default: none (the first endpoint listed, whatever its region).
    #[serde(default)]
    pub region: Option<String>,
    /// Catalog interface of those endpoints. Default: `public`.
    #[serde(default)]
    pub interface: Interface,
    /// Flavor (name or id) of booted servers, unless a boot request names
    /// one (`scheduler.flavor`). Required.
    pub flavor: String,
    /// Image (name or id) of booted servers, unless a boot request names
    /// one (`scheduler.image`); with `agent.source = "baked"` it must hold
    /// `nest-agent`. Required.
    pub image: String,
    /// Neutron networks of every server, each under the alias that port
    /// specs and addresses use. A network is attached (a port, in NIC
    /// order; its fixed address is the alias's address), unless it is
    /// external (`router:external`): then the alias's address is a floating
    /// IP from it, associated with the port on the first attached network.
    /// At least one.
    pub networks: Vec<NovaNetwork>,
    /// Availability zone of booted servers. Default: Nova's choice.
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// Nova key pair injected into booted servers, for operators' SSH
    /// access. Default: none.
    #[serde(default)]
    pub key_name: Option<String>,
    /// Longest wait for a new server to become `ACTIVE`; it must be shorter
    /// than `scheduler.boot_timeout`, which also covers the agent's
    /// enrollment. Default: 3m.
    #[serde(default = "default_boot_timeout")]
    pub boot_timeout: HumanDuration,
    /// Tag of every server this service boots (each also gets
    /// `<tag>-<instance id>`); servers with it in a project the service
    /// acts for are the service's, and deleted when no record knows them.
    /// Give each Nest deployment sharing a cloud its own. 1 to 20
    /// characters of `[A-Za-z0-9_-]`. Default: [`DEFAULT_SERVER_TAG`].
    #[serde(default = "default_server_tag")]
    pub server_tag: String,
}

fn default_server_tag() -> String {
    DEFAULT_SERVER_TAG.to_owned()
}

/// One network servers are attached to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NovaNetwork {
    /// The alias containers name it by: `pub` in `ports: ["pub:222:22"]`,
    /// and the key of the instance's address on it. 1 to 64 characters of
    /// `[A-Za-z0-9._-]`. Required.
    pub name: String,
    /// The Neutron network, by name or id. Required.
    pub network: String,
}

fn default_boot_timeout() -> HumanDuration {
    HumanDuration(DEFAULT_NOVA_BOOT_TIMEOUT)
}

impl Validate for NovaDriverConfig {
    /// Keys are relative to `[driver]`.
    fn check(&self, problems: &mut Problems) {
        problems.nested("auth", &self.auth);
        for (key, value) in [
            ("region", self.region.as_deref()),
            ("availability_zone", self.availability_zone.as_deref()),
            ("key_name", self.key_name.as_deref()),
            ("flavor", Some(self.flavor.as_str())),
            ("image", Some(self.image.as_str())),
        ] {
            problems.require(value != Some(""), key, "must not be empty");
        }
        problems.require(
            !self.networks.is_empty(),
            "networks",
            "at least one network is needed",
        );
        let mut seen = BTreeSet::new();
        for (i, n) in self.networks.iter().enumerate() {
            let alias_ok = (1..=MAX_NETWORK_ALIAS_LEN).contains(&n.name.len())
                && n.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            problems.require(
                alias_ok,
                &format!("networks[{i}].name"),
                "must be 1 to 64 characters of [A-Za-z0-9._-]",
            );
            problems.require(
                seen.insert(n.name.as_str()),
                &format!("networks[{i}].name"),
                format!("{:?} names two networks", n.name),
            );
            problems.require(
                !n.network.is_empty(),
                &format!("networks[{i}].network"),
                "must not be empty",
            );
        }
        problems.require(
            (1..=MAX_SERVER_TAG_LEN).contains(&self.server_tag.len())
                && self
                    .server_tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')),
            "server_tag",
            "must be 1 to 20 characters of [A-Za-z0-9_-]",
        );
        problems.require(
            !self.boot_timeout.get().is_zero(),
            "boot_timeout",
            "must be greater than zero",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
flavor = "m1.small"
image = "nest-agent-debian"
region = "RegionOne"
[auth]
auth_url = "http://127.0.0.1:5000/v3"
username = "nest"
password = "nest-service-password"
project_name = "service"
[[networks]]
name = "pub"
network = "public"
[[networks]]
name = "private"
network = "6f9a1c2e-4b7d-4e0f-9a3b-2c1d0e9f8a7b"
"#;

    #[test]
    fn a_nova_config_parses_with_defaults() {
        let config: NovaDriverConfig = toml::from_str(EXAMPLE).expect("parses");
        config.validate().expect("and is valid");
        assert_eq!(config.interface, Interface::Public);
        assert_eq!(config.boot_timeout.get(), DEFAULT_NOVA_BOOT_TIMEOUT);
        assert_eq!(config.availability_zone, None);
        assert_eq!(
            config.networks[0],
            NovaNetwork {
                name: "pub".into(),
                network: "public".into()
            }
        );
        assert!(!format!("{config:?}").contains("nest-service-password"));
    }

    #[test]
    fn every_problem_is_named_with_its_key() {
        let text = r#"
flavor = ""
image = "i"
boot_timeout = "0s"
networks = [
    { name = "pub", network = "public" },
    { name = "pub", network = "" },
    { name = "a:b", network = "n" },
]
[auth]
auth_url = "http://k/v3"
"#;
        let config: NovaDriverConfig = toml::from_str(text).expect("parses");
        let err = config.validate().expect_err("invalid").to_string();
        for expected in [
            "auth.username: required",
            "auth.project_name: required",
            "flavor: must not be empty",
            "networks[1].name: \"pub\" names two networks",
            "networks[1].network: must not be empty",
            "networks[2].name: must be 1 to 64",
            "boot_timeout: must be greater than zero",
        ] {
            assert!(err.contains(expected), "{expected:?} missing from {err}");
        }
        let err = toml::from_str::<NovaDriverConfig>(&format!("{EXAMPLE}\nsecurity_groups = []"))
            .expect_err("an unknown key in [[networks]]")
            .to_string();
        assert!(err.contains("security_groups"), "{err}");
    }
}
