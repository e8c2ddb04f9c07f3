//! Booting instances: recording a new instance, rendering its user-data
//! with a fresh enrollment token and asking the driver to boot it in the
//! background; giving up on boots whose agent never connected (or that a
//! restart interrupted) and failing or re-placing their containers. Calls
//! no agent: an instance becomes ready when its agent connects (the
//! reconciler's job).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{PassError, Scheduler, lock};
use crate::db::{DbError, Store};
use crate::domain::{ContainerStatus, Instance, InstanceId, InstanceStatus, ProjectId};
use crate::driver::{BootRequest, InstanceDriver, TenantAuthority};

/// The scheduler hints that choose a booted instance's flavor, image and
/// network (Zun's `hints`; the `local` driver ignores them).
pub const FLAVOR_HINT: &str = "flavor";
/// See [`FLAVOR_HINT`].
pub const IMAGE_HINT: &str = "image";
/// See [`FLAVOR_HINT`]; `none` boots with no network.
pub const NETWORK_HINT: &str = "network";

fn hint(hints: &BTreeMap<String, String>, key: &str) -> Option<String> {
    hints.get(key).filter(|v| !v.is_empty()).cloned()
}

/// How much longer than the boot timeout an enrollment token stays valid,
/// so that an agent that connects at the last moment can still enroll.
const TOKEN_GRACE: Duration = Duration::from_secs(60);

impl Scheduler {
    /// After a restart: boots that were in flight cannot finish (their
    /// enrollment tokens lived in the old process), so those instances are
    /// deleted and their containers placed again.
    pub(super) async fn recover(&self) -> Result<(), PassError> {
        for instance in self.store.list_instances(None).await? {
            if instance.status != InstanceStatus::Booting {
                continue;
            }
            tracing::info!(instance_id = %instance.id, "restarting a boot interrupted by a restart");
            self.abandon_instance(&instance, None).await?;
        }
        Ok(())
    }

    /// Records a new instance in `Booting`; [`Self::start_boot`] asks the
    /// driver for it once its first container is bound.
    pub(super) async fn record_instance(
        &self,
        project: &ProjectId,
    ) -> Result<InstanceId, PassError> {
        let id = InstanceId::parse(&uuid::Uuid::new_v4().to_string())
            .expect("a uuid is a valid instance id");
        let instance = Instance {
            id: id.clone(),
            project_id: project.clone(),
            driver: self.driver.name().to_owned(),
            status: InstanceStatus::Booting,
            status_reason: None,
            vcpus: self.settings.instance_vcpus,
            memory_mib: self.settings.instance_memory_mib,
            addresses: BTreeMap::new(),
            created_at: crate::db::utc_now(),
            empty_since: None,
        };
        self.store.insert_instance(&instance).await?;
        Ok(id)
    }

    /// Asks the driver to boot a recorded instance, in the background. The
    /// containers waiting for it are bound first, so that a boot refused at
    /// once (a quota) finds them and fails them with the driver's reason.
    /// If the boot cannot even be asked for, the instance fails now.
    pub(super) async fn start_boot(
        &self,
        id: &InstanceId,
        project: &ProjectId,
        hints: &BTreeMap<String, String>,
    ) {
        // What the project delegated (the nova driver acts with it); the
        // local driver needs none.
        let authority = match self.store.authority(project).await {
            Ok(authority) => authority.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(project_id = %project, error = %crate::error_chain(&e), "cannot read the project's authority");
                TenantAuthority::None
            }
        };
        if let Err(e) = self.request_boot(id, project, authority, hints) {
            let reason = format!("booting failed: {}", crate::error_chain(&e));
            tracing::warn!(instance_id = %id, %reason, "instance boot failed");
            fail_instance(&self.store, &self.driver, id, &reason).await;
        }
    }

    fn request_boot(
        &self,
        id: &InstanceId,
        project: &ProjectId,
        authority: TenantAuthority,
        hints: &BTreeMap<String, String>,
    ) -> Result<(), PassError> {
        let token = self
            .tokens
            .issue(id, self.settings.boot_timeout + TOKEN_GRACE)?;
        let user_data = nest_cloud_init::render(&nest_cloud_init::AgentBootstrap {
            instance_id: id.to_string(),
            relay_addr: self.settings.relay_advertise.to_string(),
            relay_server_name: None,
            ca_certificate_pem: self.settings.ca_pem.clone(),
            enrollment_token: nest_cloud_init::EnrollmentToken::new(token.as_str()),
            docker_socket: None,
            agent_source: self.settings.agent_source.clone(),
        })?;
        let request = BootRequest {
            instance_id: id.clone(),
            project_id: project.clone(),
            user_data: user_data.into_string(),
            // The first container's scheduler hints choose what is booted
            // for it (the driver refuses names that exist nowhere).
            flavor: hint(hints, FLAVOR_HINT).or_else(|| self.settings.flavor.clone()),
            image: hint(hints, IMAGE_HINT).or_else(|| self.settings.image.clone()),
            network: hint(hints, NETWORK_HINT).or_else(|| self.settings.network.clone()),
            authority,
        };
        tracing::info!(instance_id = %id, project_id = %project, driver = self.driver.name(), "booting an instance");
        let driver = self.driver.clone();
        let store = self.store.clone();
        let booting = id.clone();
        let in_flight = self.boots_in_flight.clone();
        lock(&in_flight).insert(id.clone());
        self.tasks.spawn(async move {
            let id = booting;
            let outcome = driver.boot(request).await;
            match outcome {
                Ok(booted) => {
                    let addresses = booted
                        .addresses
                        .iter()
                        .map(|(net, ip)| (net.clone(), ip.to_string()))
                        .collect();
                    if let Err(e) = store.set_instance_addresses(&booted.id, &addresses).await {
                        tracing::warn!(instance_id = %booted.id, error = %crate::error_chain(&e), "could not record addresses");
                    }
                }
                Err(e) => {
                    let reason = format!("booting failed: {}", crate::error_chain(&e));
                    tracing::warn!(instance_id = %id, %reason, "instance boot failed");
                    fail_instance(&store, &driver, &id, &reason).await;
                }
            }
            lock(&in_flight).remove(&id);
        });
        Ok(())
    }

    /// Whether the driver's boot of `id` has not returned yet.
    pub(super) fn is_boot_in_flight(&self, id: &InstanceId) -> bool {
        lock(&self.boots_in_flight).contains(id)
    }

    /// Booting instances whose agent never came are given up.
    pub(super) async fn expire_boots(&self) -> Result<(), PassError> {
        let now = time::OffsetDateTime::now_utc();
        for instance in self.store.list_instances(None).await? {
            if instance.status != InstanceStatus::Booting {
                continue;
            }
            let started = time::OffsetDateTime::parse(
                &instance.created_at,
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap_or(now);
            if now - started > self.settings.boot_timeout {
                let reason = format!(
                    "its agent did not connect within {:?}",
                    self.settings.boot_timeout
                );
                tracing::warn!(instance_id = %instance.id, %reason, "giving up on an instance");
                self.abandon_instance(&instance, Some(&reason)).await?;
            }
        }
        Ok(())
    }

    /// Deletes an instance that will never become ready. With a reason its
    /// containers fail with it; without one they are placed again.
    pub(super) async fn abandon_instance(
        &self,
        instance: &Instance,
        reason: Option<&str>,
    ) -> Result<(), PassError> {
        for container in self.store.containers_on_instance(&instance.id).await? {
            match reason {
                Some(reason) => {
                    self.store
                        .set_status_any(
                            container.id,
                            ContainerStatus::Error,
                            Some(&format!("instance {}: {reason}", instance.id)),
                        )
                        .await?;
                }
                None => self.store.unbind_container(container.id).await?,
            }
        }
        if let Err(e) = self.driver.delete(&instance.id).await {
            tracing::warn!(instance_id = %instance.id, error = %crate::error_chain(&e), "could not delete an abandoned instance; the reconciler will retry");
            return Ok(());
        }
        if reason.is_some() {
            // Keep containers in Error pointing nowhere rather than at a
            // deleted instance.
            for container in self.store.containers_on_instance(&instance.id).await? {
                self.store.unbind_container(container.id).await?;
            }
        }
        self.store.delete_instance(&instance.id).await?;
        Ok(())
    }
}

async fn fail_instance(
    store: &Store,
    driver: &Arc<dyn InstanceDriver>,
    id: &InstanceId,
    reason: &str,
) {
    let result: Result<(), DbError> = async {
        store
            .update_instance_status(
                id,
                InstanceStatus::Booting,
                InstanceStatus::Error,
                Some(reason),
            )
            .await?;
        for container in store.containers_on_instance(id).await? {
            store
                .set_status_any(
                    container.id,
                    ContainerStatus::Error,
                    Some(&format!("instance {id}: {reason}")),
                )
                .await?;
            store.unbind_container(container.id).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(instance_id = %id, error = %crate::error_chain(&e), "could not record a failed boot");
    }
    if let Err(e) = driver.delete(id).await {
        tracing::warn!(instance_id = %id, error = %crate::error_chain(&e), "could not clean up a failed boot");
    }
    if let Err(e) = store.delete_instance(id).await {
        tracing::debug!(instance_id = %id, error = %e, "failed instance record not deleted");
    }
}
