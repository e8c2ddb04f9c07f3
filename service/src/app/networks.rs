//! User-defined networks (the Docker endpoint's `network create`, and the
//! project network docker-compose makes): creating, finding, listing and
//! removing a project's networks, and checking the networks a new
//! container joins.
//!
//! A network is a name in the project; its containers are all placed on
//! one instance (the scheduler keeps them together), where the agent's
//! engine network of the same id gives them DNS by name. So a network
//! costs nothing until a container joins it, and needs no agent call to
//! create or remove.

use std::collections::BTreeMap;

use super::{App, AppError, CallContext, db_error, policy_error};
use crate::auth::policy::{self, Action};
use crate::db::{self, NetworkRemoval};
use crate::domain::{Container, Network, NetworkId};

/// Networks one project may have.
pub const MAX_NETWORKS_PER_PROJECT: usize = 128;
/// Networks one container may join.
pub const MAX_NETWORKS_PER_CONTAINER: usize = 8;
/// Longest network name.
pub const MAX_NETWORK_NAME: usize = 128;
/// Names that stand for the engine's own networks and cannot be created.
pub const RESERVED_NETWORK_NAMES: [&str; 4] = ["bridge", "default", "host", "none"];

/// A network to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewNetwork {
    /// Its name, unique in the project.
    pub name: String,
    /// Labels, kept as given (docker-compose finds its networks by them).
    pub labels: BTreeMap<String, String>,
}

/// A network with the containers on it.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkInfo {
    /// The record.
    pub network: Network,
    /// Its containers, in creation order.
    pub containers: Vec<Container>,
}

/// Why a network name is refused, or `None`: Docker's rule (a letter or
/// digit, then letters, digits, `_`, `.` and `-`).
pub fn network_name_error(name: &str) -> Option<String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Some(format!(
            "invalid network name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        ));
    }
    if name.len() > MAX_NETWORK_NAME {
        return Some(format!(
            "network name is longer than {MAX_NETWORK_NAME} characters"
        ));
    }
    None
}

impl App {
    /// Creates a network in the caller's project.
    ///
    /// # Errors
    /// [`AppError::InvalidRequest`] for a bad or reserved name or too many
    /// networks; [`AppError::NetworkNameInUse`] when the name is taken.
    pub async fn create_network(
        &self,
        cx: &CallContext,
        new: NewNetwork,
    ) -> Result<Network, AppError> {
        policy::authorize(&cx.caller, Action::NetworkCreate, None).map_err(policy_error)?;
        if let Some(reason) = network_name_error(&new.name) {
            return Err(AppError::InvalidRequest {
                what: "network name",
                reason,
            });
        }
        if RESERVED_NETWORK_NAMES.contains(&new.name.as_str()) {
            return Err(AppError::InvalidRequest {
                what: "network name",
                reason: format!(
                    "{} is a pre-defined network and cannot be created",
                    new.name
                ),
            });
        }
        let existing = self
            .store()
            .list_networks(&cx.caller.project_id)
            .await
            .map_err(db_error("listing networks"))?;
        if existing.iter().any(|n| n.name == new.name) {
            return Err(AppError::NetworkNameInUse(new.name));
        }
        if existing.len() >= MAX_NETWORKS_PER_PROJECT {
            return Err(AppError::InvalidRequest {
                what: "network",
                reason: format!(
                    "the project has {MAX_NETWORKS_PER_PROJECT} networks, the most it may have; remove one first"
                ),
            });
        }
        let network = Network {
            id: NetworkId::generate(),
            name: new.name,
            project_id: cx.caller.project_id.clone(),
            user_id: cx.caller.user_id.clone(),
            labels: new.labels,
            created_at: db::utc_now(),
        };
        match self.store().insert_network(&network).await {
            Ok(()) => {}
            Err(e) if e.kind() == nest_core::ErrorKind::Conflict => {
                return Err(AppError::NetworkNameInUse(network.name));
            }
            Err(e) => return Err(db_error("recording a network")(e)),
        }
        tracing::info!(network_id = %network.id, name = %network.name, project_id = %network.project_id, "network created");
        Ok(network)
    }

    /// The caller's project's networks, with their containers.
    ///
    /// # Errors
    /// [`AppError::Unavailable`] when the database is.
    pub async fn list_networks(&self, cx: &CallContext) -> Result<Vec<NetworkInfo>, AppError> {
        policy::authorize(&cx.caller, Action::NetworkGet, None).map_err(policy_error)?;
        let networks = self
            .store()
            .list_networks(&cx.caller.project_id)
            .await
            .map_err(db_error("listing networks"))?;
        let mut infos = Vec::with_capacity(networks.len());
        for network in networks {
            infos.push(self.network_info(network).await?);
        }
        Ok(infos)
    }

    /// The caller's network named by `reference`: its full id, its name,
    /// or a unique prefix of its id, in that order (as Docker resolves).
    ///
    /// # Errors
    /// [`AppError::NetworkNotFound`]; [`AppError::AmbiguousName`] for a
    /// prefix of several ids.
    pub async fn network(
        &self,
        cx: &CallContext,
        reference: &str,
    ) -> Result<NetworkInfo, AppError> {
        policy::authorize(&cx.caller, Action::NetworkGet, None).map_err(policy_error)?;
        let network = self.find_network(cx, reference).await?;
        self.network_info(network).await
    }

    /// Removes the caller's network, unless containers are on it.
    ///
    /// # Errors
    /// [`AppError::NetworkNotFound`]; [`AppError::NetworkInUse`];
    /// [`AppError::InvalidRequest`] for a pre-defined network.
    pub async fn remove_network(
        &self,
        cx: &CallContext,
        reference: &str,
    ) -> Result<Network, AppError> {
        policy::authorize(&cx.caller, Action::NetworkDelete, None).map_err(policy_error)?;
        if RESERVED_NETWORK_NAMES.contains(&reference) {
            return Err(AppError::InvalidRequest {
                what: "network",
                reason: format!("{reference} is a pre-defined network and cannot be removed"),
            });
        }
        let network = self.find_network(cx, reference).await?;
        let removal = self
            .store()
            .remove_network(&network.project_id, network.id)
            .await
            .map_err(db_error("removing a network"))?;
        match removal {
            NetworkRemoval::Removed => {
                tracing::info!(network_id = %network.id, name = %network.name, "network removed");
                Ok(network)
            }
            NetworkRemoval::NotFound => Err(AppError::NetworkNotFound(reference.to_owned())),
            NetworkRemoval::InUse => {
                let containers = self
                    .store()
                    .containers_on_network(&network.project_id, network.id)
                    .await
                    .map_err(db_error("listing a network's containers"))?
                    .into_iter()
                    .map(|c| c.name)
                    .collect();
                Err(AppError::NetworkInUse {
                    name: network.name,
                    containers,
                })
            }
        }
    }

    /// Removes the caller's networks that no container is on; answers
    /// what was removed.
    ///
    /// # Errors
    /// [`AppError::Unavailable`] when the database is.
    pub async fn prune_networks(&self, cx: &CallContext) -> Result<Vec<Network>, AppError> {
        policy::authorize(&cx.caller, Action::NetworkDelete, None).map_err(policy_error)?;
        let networks = self
            .store()
            .list_networks(&cx.caller.project_id)
            .await
            .map_err(db_error("listing networks"))?;
        let mut removed = Vec::new();
        for network in networks {
            let removal = self
                .store()
                .remove_network(&network.project_id, network.id)
                .await
                .map_err(db_error("removing a network"))?;
            if removal == NetworkRemoval::Removed {
                removed.push(network);
            }
        }
        Ok(removed)
    }

    /// Checks that every network a new container joins is the caller's
    /// project's, at most [`MAX_NETWORKS_PER_CONTAINER`] and none twice.
    pub(super) async fn check_attachments(
        &self,
        cx: &CallContext,
        container: &crate::domain::ContainerSpec,
    ) -> Result<(), AppError> {
        let networks = &container.networks;
        if networks.len() > MAX_NETWORKS_PER_CONTAINER {
            return Err(AppError::InvalidRequest {
                what: "networks",
                reason: format!("a container joins at most {MAX_NETWORKS_PER_CONTAINER} networks"),
            });
        }
        for (i, attachment) in networks.iter().enumerate() {
            if networks[..i]
                .iter()
                .any(|n| n.network == attachment.network)
            {
                return Err(AppError::InvalidRequest {
                    what: "networks",
                    reason: format!("network {} is named twice", attachment.network),
                });
            }
            let found = self
                .store()
                .get_network(attachment.network)
                .await
                .map_err(db_error("reading a network"))?;
            if found.is_none_or(|n| n.project_id != cx.caller.project_id) {
                return Err(AppError::NetworkNotFound(attachment.network.hex()));
            }
        }
        Ok(())
    }

    async fn find_network(&self, cx: &CallContext, reference: &str) -> Result<Network, AppError> {
        let not_found = || AppError::NetworkNotFound(reference.to_owned());
        let networks = self
            .store()
            .list_networks(&cx.caller.project_id)
            .await
            .map_err(db_error("listing networks"))?;
        if let Some(n) = networks
            .iter()
            .find(|n| n.id.hex() == reference || n.name == reference)
        {
            return Ok(n.clone());
        }
        let is_prefix = !reference.is_empty()
            && reference.len() < 32
            && reference.bytes().all(|b| b.is_ascii_hexdigit());
        if !is_prefix {
            return Err(not_found());
        }
        let lower = reference.to_ascii_lowercase();
        let mut matching = networks
            .into_iter()
            .filter(|n| n.id.hex().starts_with(&lower));
        match (matching.next(), matching.next()) {
            (Some(n), None) => Ok(n),
            (Some(_), Some(_)) => Err(AppError::AmbiguousName(reference.to_owned())),
            _ => Err(not_found()),
        }
    }

    async fn network_info(&self, network: Network) -> Result<NetworkInfo, AppError> {
        let containers = self
            .store()
            .containers_on_network(&network.project_id, network.id)
            .await
            .map_err(db_error("listing a network's containers"))?;
        Ok(NetworkInfo {
            network,
            containers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_names_follow_dockers_rule() {
        for ok in ["web", "proj_default", "a.b-c", "0"] {
            assert_eq!(network_name_error(ok), None, "{ok}");
        }
        for bad in ["", "-x", "_x", "a b", "a/b", "é", "a;rm"] {
            assert!(network_name_error(bad).is_some(), "{bad:?}");
        }
        assert!(network_name_error(&"n".repeat(MAX_NETWORK_NAME + 1)).is_some());
    }
}
