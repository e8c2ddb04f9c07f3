//! Retiring instances: an instance that stayed empty longer than the idle
//! timeout is deleted through the driver, except for the warm pool each
//! project keeps. Calls no agent; no API call asks for this, so each
//! retirement logs a request id of its own.

use std::collections::BTreeMap;

use super::{PassError, Scheduler};
use crate::domain::{InstanceStatus, ProjectId, RequestId};

impl Scheduler {
    /// Deletes instances that stayed empty longer than the idle timeout,
    /// keeping `warm_pool` empty ones per project.
    pub(super) async fn retire_idle(&self) -> Result<(), PassError> {
        let now = time::OffsetDateTime::now_utc();
        let mut kept: BTreeMap<ProjectId, usize> = BTreeMap::new();
        for instance in self.store.list_instances(None).await? {
            if instance.status != InstanceStatus::Ready {
                continue;
            }
            let usage = self.store.instance_usage(&instance.id).await?;
            if usage.containers > 0 {
                if instance.empty_since.is_some() {
                    self.store.set_empty_since(&instance.id, None).await?;
                }
                continue;
            }
            let Some(since) = &instance.empty_since else {
                self.store
                    .set_empty_since(&instance.id, Some(&crate::db::utc_now()))
                    .await?;
                continue;
            };
            let kept_here = kept.entry(instance.project_id.clone()).or_default();
            if *kept_here < self.settings.warm_pool {
                *kept_here += 1;
                continue;
            }
            let since =
                time::OffsetDateTime::parse(since, &time::format_description::well_known::Rfc3339)
                    .unwrap_or(now);
            if now - since < self.settings.idle_timeout {
                continue;
            }
            if !self
                .store
                .update_instance_status(
                    &instance.id,
                    InstanceStatus::Ready,
                    InstanceStatus::Retiring,
                    Some("idle"),
                )
                .await?
            {
                continue;
            }
            // No API call asked for this: it gets its own request id.
            let request_id = RequestId::generate();
            tracing::info!(%request_id, instance_id = %instance.id, "retiring an idle instance");
            match self.driver.delete(&instance.id).await {
                Ok(()) => self.store.delete_instance(&instance.id).await?,
                Err(e) => {
                    tracing::warn!(%request_id, instance_id = %instance.id, error = %crate::error_chain(&e), "could not delete an idle instance; will retry");
                }
            }
        }
        Ok(())
    }
}
