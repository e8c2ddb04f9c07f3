//! User-defined networks on the engine: one engine network per Nest network
//! id, named `nest-<id>` and labelled as Nest's, made when a container first
//! needs it and removed with its last container. The engine's resolver on
//! such a network answers its containers' names and aliases.
//!
//! Ownership works as for containers: a network is only joined or removed
//! when it carries Nest's labels for its id. A `nest-…` network someone made
//! by hand on the instance is refused by name, never joined, never removed.
//!
//! Making networks, creating containers on them and removing them is
//! serialized per engine (`Engine::networks`): the engine removes a network
//! that only created, not yet started, containers are on without a word, so
//! the removal of a network's last container must not cross the creation of
//! its next one.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    ContainerInspectResponse, EndpointSettings, NetworkConnectRequest, NetworkCreateRequest,
};
use bollard::query_parameters::{ListContainersOptionsBuilder, ListNetworksOptionsBuilder};
use nest_core::ErrorKind;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::{DockerError, engine_status};
use super::{
    DOCKER_CALL_TIMEOUT, Engine, LABEL_INSTANCE_ID, LABEL_MANAGED_BY, MANAGED_BY, bounded,
};
use crate::model::NetworkId;

/// Prefix of every engine network name the agent makes.
pub const NETWORK_NAME_PREFIX: &str = "nest-";
/// Label holding the Nest network id an engine network stands for.
pub const LABEL_NETWORK_ID: &str = "nest.network.id";
/// Driver of the engine networks: a bridge on the instance, whose published
/// ports bind the instance's addresses as on the default bridge.
const NETWORK_DRIVER: &str = "bridge";
/// How old an empty network must be before the startup sweep removes it: a
/// younger one may be about to get its first container from another agent
/// on the same engine.
pub const NETWORK_SWEEP_GRACE: Duration = Duration::from_secs(60);

/// The engine name of the network with `id`.
pub fn network_name(id: &NetworkId) -> String {
    format!("{NETWORK_NAME_PREFIX}{id}")
}

/// The Nest network id an engine network name stands for, if it has the
/// shape of one.
fn network_id_of(name: &str) -> Option<NetworkId> {
    name.strip_prefix(NETWORK_NAME_PREFIX)
        .and_then(|id| NetworkId::parse(id).ok())
}

/// Whether an engine network with these labels is Nest's network `id`.
fn is_ours(labels: Option<&HashMap<String, String>>, id: &NetworkId) -> bool {
    let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
    label(LABEL_MANAGED_BY) == Some(MANAGED_BY) && label(LABEL_NETWORK_ID) == Some(id.as_str())
}

fn network_target(name: &str) -> String {
    format!("network {name}")
}

/// The engine names of the Nest networks an inspected container is on.
pub(super) fn networks_of(inspect: &ContainerInspectResponse) -> Vec<String> {
    let mut names: Vec<String> = inspect
        .network_settings
        .as_ref()
        .and_then(|s| s.networks.as_ref())
        .into_iter()
        .flat_map(|n| n.keys().cloned())
        .chain(
            inspect
                .host_config
                .as_ref()
                .and_then(|h| h.network_mode.clone()),
        )
        .filter(|name| network_id_of(name).is_some())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Whether the engine's `Created` stamp is older than `age`; an unreadable
/// one counts as young, so that nothing is removed on a guess.
fn older_than(created: Option<&str>, age: Duration) -> bool {
    created
        .and_then(|c| OffsetDateTime::parse(c, &Rfc3339).ok())
        .is_some_and(|c| OffsetDateTime::now_utc() - c > age)
}

impl Engine {
    /// Whether the engine network of `id` exists; `Conflict` when the name
    /// is taken by a network that is not Nest's, or by several.
    pub(super) async fn look_up_network(&self, id: &NetworkId) -> Result<bool, DockerError> {
        let name = network_name(id);
        let found = bounded(
            "inspect",
            &network_target(&name),
            DOCKER_CALL_TIMEOUT,
            self.docker.inspect_network(&name, None),
        )
        .await;
        match found {
            Ok(network) if is_ours(network.labels.as_ref(), id) => Ok(true),
            Ok(_) => Err(DockerError::ForeignNetwork { name }),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(false),
            // The engine's only 400 for an inspect by name: two networks
            // of that name (20.10 lets a create make a second one).
            Err(DockerError::Engine { source, .. }) if engine_status(&source) == Some(400) => {
                Err(DockerError::AmbiguousNetwork { name })
            }
            Err(err) => Err(err),
        }
    }

    /// Makes the engine network of `id`, which [`Engine::look_up_network`]
    /// found missing.
    pub(super) async fn make_network(&self, id: &NetworkId) -> Result<(), DockerError> {
        let name = network_name(id);
        let request = NetworkCreateRequest {
            name: name.clone(),
            driver: Some(NETWORK_DRIVER.to_owned()),
            labels: Some(HashMap::from([
                (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
                (LABEL_NETWORK_ID.to_owned(), id.to_string()),
                // Which agent made it, for whoever reads the engine; the
                // network is not that agent's alone.
                (LABEL_INSTANCE_ID.to_owned(), self.instance_id.to_string()),
            ])),
            ..Default::default()
        };
        let made = bounded(
            "create",
            &network_target(&name),
            DOCKER_CALL_TIMEOUT,
            self.docker.create_network(request),
        )
        .await;
        match made {
            Ok(_) => {
                tracing::info!(network = %name, "network created");
                Ok(())
            }
            // An engine that refuses duplicate names (API 1.44 and later)
            // answers 409 when another agent made it meanwhile: fine if it is
            // Nest's.
            Err(err) if err.kind() == ErrorKind::Conflict => {
                if self.look_up_network(id).await? {
                    Ok(())
                } else {
                    Err(err)
                }
            }
            Err(err) => Err(err),
        }
    }

    /// Joins the engine container `docker_id`, not yet started, to the
    /// network of `id` with `endpoint`.
    pub(super) async fn connect_network(
        &self,
        docker_id: &str,
        id: &NetworkId,
        endpoint: EndpointSettings,
    ) -> Result<(), DockerError> {
        let name = network_name(id);
        bounded(
            "connect",
            &network_target(&name),
            DOCKER_CALL_TIMEOUT,
            self.docker.connect_network(
                &name,
                NetworkConnectRequest {
                    container: docker_id.to_owned(),
                    endpoint_config: Some(endpoint),
                },
            ),
        )
        .await
    }

    /// Removes the engine network `name` when it is Nest's and no
    /// container, running or not, is on it; `true` when it went. The caller
    /// holds the network lock.
    async fn remove_network_if_unused(&self, name: &str) -> Result<bool, DockerError> {
        let Some(id) = network_id_of(name) else {
            return Ok(false);
        };
        let target = network_target(name);
        let network = match bounded(
            "inspect",
            &target,
            DOCKER_CALL_TIMEOUT,
            self.docker.inspect_network(name, None),
        )
        .await
        {
            Ok(network) => network,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(false),
            Err(err) => return Err(err),
        };
        if !is_ours(network.labels.as_ref(), &id) {
            return Ok(false);
        }
        // The network's own list only shows running containers; a created
        // or stopped one on it still needs it to start again.
        let filters = HashMap::from([("network", vec![name.to_owned()])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let users = bounded(
            "list",
            &target,
            DOCKER_CALL_TIMEOUT,
            self.docker.list_containers(Some(options)),
        )
        .await?;
        if !users.is_empty() {
            return Ok(false);
        }
        let reference = network.id.as_deref().unwrap_or(name);
        match bounded(
            "remove",
            &target,
            DOCKER_CALL_TIMEOUT,
            self.docker.remove_network(reference),
        )
        .await
        {
            Ok(()) => {
                tracing::info!(network = %name, "network removed with its last container");
                Ok(true)
            }
            // Gone already, or a container joined it from outside Nest
            // (20.10 answers 403 for active endpoints).
            Err(DockerError::Engine { source, .. })
                if matches!(engine_status(&source), Some(403 | 404 | 409)) =>
            {
                Ok(false)
            }
            Err(err) => Err(err),
        }
    }

    /// Removes those of `names` (engine network names) that no container
    /// is on any more, with the network lock held by the caller. Failures
    /// are logged, not returned: what they leave, the startup sweep removes.
    pub(super) async fn release_networks_locked(&self, names: &[String]) {
        for name in names {
            if let Err(err) = self.remove_network_if_unused(name).await {
                tracing::warn!(
                    network = %name,
                    error = %nest_core::process::error_chain(&err),
                    "could not remove an unused network"
                );
            }
        }
    }

    /// As [`Engine::release_networks_locked`], taking the network lock.
    pub(super) async fn release_networks(&self, names: &[String]) {
        if names.is_empty() {
            return;
        }
        let _serialized = self.networks.lock().await;
        self.release_networks_locked(names).await;
    }

    /// Removes every Nest network that no container is on and that is older
    /// than `grace`: what a crash between a container's removal and its
    /// network's leaves behind. Returns how many went. The agent runs it
    /// once at startup with [`NETWORK_SWEEP_GRACE`].
    ///
    /// # Errors
    /// Engine failures as classified; a network that cannot be removed is
    /// skipped, not an error.
    pub async fn remove_unused_networks(&self, grace: Duration) -> Result<usize, DockerError> {
        let filters = HashMap::from([(
            "label",
            vec![
                format!("{LABEL_MANAGED_BY}={MANAGED_BY}"),
                LABEL_NETWORK_ID.to_owned(),
            ],
        )]);
        let options = ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        let networks = bounded(
            "list",
            "networks",
            DOCKER_CALL_TIMEOUT,
            self.docker.list_networks(Some(options)),
        )
        .await?;
        let _serialized = self.networks.lock().await;
        let mut removed = 0;
        for network in networks {
            let Some(name) = network.name.as_deref() else {
                continue;
            };
            let ours = network_id_of(name).is_some_and(|id| is_ours(network.labels.as_ref(), &id));
            if !ours || !older_than(network.created.as_deref(), grace) {
                continue;
            }
            match self.remove_network_if_unused(name).await {
                Ok(true) => removed += 1,
                Ok(false) => {}
                Err(err) => tracing::warn!(
                    network = %name,
                    error = %nest_core::process::error_chain(&err),
                    "could not remove an unused network"
                ),
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::{EndpointSettings, HostConfig, NetworkSettings};

    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn id() -> NetworkId {
        NetworkId::parse(ID).expect("valid id")
    }

    #[test]
    fn names_carry_the_id_and_only_nest_shaped_names_are_read_back() {
        assert_eq!(network_name(&id()), format!("nest-{ID}"));
        assert_eq!(network_id_of(&network_name(&id())), Some(id()));
        assert_eq!(network_id_of("bridge"), None);
        assert_eq!(network_id_of("nest-web"), None);
        assert_eq!(network_id_of(&format!("nest-{}", ID.to_uppercase())), None);
    }

    #[test]
    fn a_network_is_ours_only_with_both_labels_for_its_id() {
        let labels = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let both = labels(&[(LABEL_MANAGED_BY, MANAGED_BY), (LABEL_NETWORK_ID, ID)]);
        assert!(is_ours(Some(&both), &id()));
        assert!(!is_ours(None, &id()));
        assert!(!is_ours(
            Some(&labels(&[(LABEL_MANAGED_BY, MANAGED_BY)])),
            &id()
        ));
        assert!(!is_ours(Some(&labels(&[(LABEL_NETWORK_ID, ID)])), &id()));
        let other = NetworkId::parse("fedcba9876543210fedcba9876543210").expect("valid id");
        assert!(!is_ours(Some(&both), &other));
    }

    #[test]
    fn only_nest_networks_of_a_container_are_listed() {
        let inspect = ContainerInspectResponse {
            network_settings: Some(NetworkSettings {
                networks: Some(HashMap::from([
                    (format!("nest-{ID}"), EndpointSettings::default()),
                    ("bridge".to_owned(), EndpointSettings::default()),
                    ("nest-handmade".to_owned(), EndpointSettings::default()),
                ])),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                network_mode: Some(format!("nest-{ID}")),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(networks_of(&inspect), [format!("nest-{ID}")]);
        assert!(networks_of(&ContainerInspectResponse::default()).is_empty());
    }

    #[test]
    fn only_a_readable_old_enough_stamp_is_old() {
        let hour_ago = (OffsetDateTime::now_utc() - Duration::from_secs(3600))
            .format(&Rfc3339)
            .expect("formats");
        assert!(older_than(Some(&hour_ago), Duration::from_secs(60)));
        assert!(!older_than(Some(&hour_ago), Duration::from_secs(7200)));
        assert!(older_than(
            Some("2020-01-02T03:04:05.123456789Z"),
            Duration::from_secs(60)
        ));
        assert!(!older_than(Some("yesterday"), Duration::ZERO));
        assert!(!older_than(None, Duration::ZERO));
    }
}
