//! Binding accepted containers to instances: each container still
//! unplaced is bound to an instance of its own project that has room (the
//! decision is `placement.rs`'s), or an instance is booted for it, or it
//! fails as too big for any instance. Calls no agent.

use nest_core::ErrorKind;

use super::placement::{self, Candidate, Demand, Placement};
use super::{PassError, Scheduler, WAITING_FOR_INSTANCE};
use crate::domain::{Container, ContainerStatus, InstanceStatus, ProjectId};

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
        let candidates = self.candidates(&container.project_id).await?;
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
                self.store
                    .update_status(
                        container.id,
                        ContainerStatus::Creating,
                        ContainerStatus::Error,
                        Some(&reason),
                    )
                    .await?;
            }
        }
        Ok(())
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
