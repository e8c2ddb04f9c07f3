//! Binding accepted containers to instances: each container still
//! unplaced is bound to an instance of its own project that has room (the
//! decision is `placement.rs`'s), or an instance is booted for it, or it
//! fails as too big for any instance. Calls no agent.
//!
//! A container on user-defined networks goes where the networks' other
//! containers already are: a network lives on one instance, whose engine
//! network resolves its containers' names. Placements are decided one at
//! a time, so the first container of a network fixes its instance for
//! the next. Such a container never goes to an instance whose agent is
//! known not to support user-defined networks (`agents.rs`); when its
//! networks live on one, it fails saying so.

use std::collections::BTreeMap;

use nest_core::ErrorKind;

use super::agents::FeatureSupport;
use super::placement::{self, Candidate, Demand, Placement};
use super::{PassError, Scheduler, WAITING_FOR_INSTANCE};
use crate::domain::{Container, ContainerStatus, InstanceId, InstanceStatus, ProjectId};

/// Where a container's networks make it go.
#[derive(Debug, PartialEq)]
enum NetworkHome {
    /// Anywhere: none of its networks has a container placed yet.
    Anywhere,
    /// On this instance, where its networks' containers run; the name of
    /// one of those networks, for reasons.
    On(InstanceId, String),
    /// Its networks' containers run on different instances.
    Split(String),
}

impl Scheduler {
    /// Binds every unplaced container, booting instances as needed.
    pub(super) async fn place_pending(&self) -> Result<(), PassError> {
        let pending: Vec<Container> = self
            .store
            .containers_in_status(ContainerStatus::Creating)
            .await?
            .into_iter()
            .filter(|c| c.instance_id.is_none())
            .collect();
        for container in pending {
            self.place_one(&container).await?;
        }
        Ok(())
    }

    async fn candidates(&self, project: &ProjectId) -> Result<Vec<Candidate>, PassError> {
        let mut candidates = Vec::new();
        for usage in self.store.placement_candidates(project).await? {
            let ports_used = self
                .store
                .booked_ports(&usage.instance.id)
                .await?
                .into_iter()
                .map(|b| (b.protocol, b.host_port))
                .collect();
            candidates.push(Candidate {
                id: usage.instance.id.clone(),
                status: usage.instance.status,
                vcpus: usage.instance.vcpus,
                memory_mib: usage.instance.memory_mib,
                cpu_used: usage.used.cpu_used,
                memory_used_mib: usage.used.memory_used_mib,
                ports_used,
            });
        }
        Ok(candidates)
    }

    async fn place_one(&self, container: &Container) -> Result<(), PassError> {
        let demand = Demand {
            cpu: container.spec.cpu,
            memory_mib: container.spec.memory_mib,
            ports: container
                .spec
                .ports
                .iter()
                .map(|p| (p.protocol, p.host_port))
                .collect(),
        };
        let mut candidates = self.candidates(&container.project_id).await?;
        candidates.retain(|c| {
            !matches!(
                self.feature_support(&c.id, &container.spec),
                FeatureSupport::No(_)
            )
        });
        match self.network_home(container).await? {
            NetworkHome::Anywhere => {}
            NetworkHome::Split(reason) => return self.fail(container, &reason).await,
            NetworkHome::On(home, network) => {
                if let FeatureSupport::No(reason) = self.feature_support(&home, &container.spec) {
                    return self.fail(container, &reason).await;
                }
                candidates.retain(|c| c.id == home);
                let Some(candidate) = candidates.first() else {
                    // Its status keeps containers off it for now
                    // (unreachable, engine down): wait for it.
                    let reason = format!(
                        "waiting for instance {home}, where the containers of network {network} run, to accept containers"
                    );
                    return self.set_reason(container, Some(&reason)).await;
                };
                if !candidate.fits(&demand) {
                    let reason = format!(
                        "network {network}'s containers run on instance {home}, which has no room for this one \
                         ({} vCPU and {} MiB, or a host port, taken): a network's containers share one instance",
                        container.spec.cpu, container.spec.memory_mib
                    );
                    return self.fail(container, &reason).await;
                }
            }
        }
        let decision = placement::place(
            &demand,
            &candidates,
            self.settings.instance_vcpus,
            self.settings.instance_memory_mib,
        );
        match decision {
            Placement::Existing(instance) => {
                match self
                    .store
                    .bind_container(container.id, &instance, &container.spec.ports)
                    .await
                {
                    Ok(()) => {
                        self.store.set_empty_since(&instance, None).await?;
                        tracing::info!(container_id = %container.id, instance_id = %instance, "container placed");
                        self.set_reason(container, None).await?;
                    }
                    // Lost a race for a port: the next pass sees the booking.
                    Err(e) if e.kind() == ErrorKind::Conflict => {
                        tracing::debug!(container_id = %container.id, error = %e, "placement conflict; retrying");
                        self.wake();
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Placement::Boot => {
                let booting = candidates
                    .iter()
                    .filter(|c| c.status == InstanceStatus::Booting)
                    .count();
                if booting >= self.settings.max_boots_per_project {
                    self.set_reason(container, Some(WAITING_FOR_INSTANCE))
                        .await?;
                    return Ok(());
                }
                let instance = self.record_instance(&container.project_id).await?;
                self.store
                    .bind_container(container.id, &instance, &container.spec.ports)
                    .await?;
                self.set_reason(container, Some(WAITING_FOR_INSTANCE))
                    .await?;
                self.start_boot(&instance, &container.project_id, &container.spec.hints)
                    .await;
            }
            Placement::TooBig => {
                let reason = format!(
                    "the container needs {} vCPU and {} MiB; an instance offers {} vCPU and {} MiB",
                    container.spec.cpu,
                    container.spec.memory_mib,
                    self.settings.instance_vcpus,
                    self.settings.instance_memory_mib
                );
                self.fail(container, &reason).await?;
            }
        }
        Ok(())
    }

    /// Ends an unplaceable container in `Error` with `reason`.
    async fn fail(&self, container: &Container, reason: &str) -> Result<(), PassError> {
        tracing::info!(container_id = %container.id, %reason, "container cannot be placed");
        self.store
            .update_status(
                container.id,
                ContainerStatus::Creating,
                ContainerStatus::Error,
                Some(reason),
            )
            .await?;
        Ok(())
    }

    /// The instance the container's networks already live on, if any.
    /// Containers on instances that are going away (retiring, failed,
    /// deleted) do not hold a network there.
    async fn network_home(&self, container: &Container) -> Result<NetworkHome, PassError> {
        let mut homes: BTreeMap<InstanceId, String> = BTreeMap::new();
        for attachment in &container.spec.networks {
            let name = match self.store.get_network(attachment.network).await? {
                Some(n) => n.name,
                None => attachment.network.hex(),
            };
            let others = self
                .store
                .containers_on_network(&container.project_id, attachment.network)
                .await?;
            for other in others.into_iter().filter(|c| c.id != container.id) {
                let Some(instance) = other.instance_id else {
                    continue;
                };
                if homes.contains_key(&instance) {
                    continue;
                }
                let alive = match self.store.get_instance(&instance).await {
                    Ok(i) => !matches!(i.status, InstanceStatus::Retiring | InstanceStatus::Error),
                    Err(e) if e.kind() == ErrorKind::NotFound => false,
                    Err(e) => return Err(e.into()),
                };
                if alive {
                    homes.insert(instance, name.clone());
                }
            }
        }
        let mut homes = homes.into_iter();
        Ok(match (homes.next(), homes.next()) {
            (None, _) => NetworkHome::Anywhere,
            (Some((instance, network)), None) => NetworkHome::On(instance, network),
            (Some((a, na)), Some((b, nb))) => NetworkHome::Split(format!(
                "its networks' containers run on different instances (network {na} on {a}, \
                 network {nb} on {b}); a container may join networks whose containers share one instance"
            )),
        })
    }

    async fn set_reason(
        &self,
        container: &Container,
        reason: Option<&str>,
    ) -> Result<(), PassError> {
        if container.status_reason.as_deref() != reason {
            self.store
                .update_status(
                    container.id,
                    ContainerStatus::Creating,
                    ContainerStatus::Creating,
                    reason,
                )
                .await?;
        }
        Ok(())
    }
}
