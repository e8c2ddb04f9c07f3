//! What Nest recorded: container actions, and instances as Zun's hosts.

use super::App;
use crate::api::backend::{self as api, BackendError, CallContext, ContainerRef, HostInfo};
use crate::auth::policy::{self, Action};

impl App {
    pub(super) async fn list_actions(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
    ) -> Result<Vec<api::ActionRecord>, BackendError> {
        let container = self.resolve(cx, reference, Action::ContainerActionList).await?;
        let actions = self
            .store()
            .list_actions(container.id)
            .await
            .map_err(super::db_error("listing actions"))?;
        Ok(actions.into_iter().filter_map(action_record).collect())
    }

    pub(super) async fn one_action(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
        request_id: &crate::domain::RequestId,
    ) -> Result<api::ActionRecord, BackendError> {
        self.list_actions(cx, reference)
            .await?
            .into_iter()
            .find(|a| &a.request_id == request_id)
            .ok_or_else(|| BackendError::ActionNotFound(request_id.clone()))
    }
}

fn action_record(a: crate::db::ContainerAction) -> Option<api::ActionRecord> {
    Some(api::ActionRecord {
        action: api::ActionKind::parse_zun(&a.action)?,
        container_id: a.container,
        request_id: a.request_id,
        user_id: a.user_id,
        project_id: a.project_id,
        start_time: a.start_time,
        finish_time: a.finish_time,
        message: a.message,
        events: Vec::new(),
    })
}

impl App {
    pub(super) async fn list_hosts(&self, cx: &CallContext) -> Result<Vec<HostInfo>, BackendError> {
        // Tenants see their own project's instances; admins see all.
        policy::authorize(&cx.caller, Action::ContainerList, None)
            .map_err(|e| BackendError::PolicyNotAuthorized(e.to_string()))?;
        let project = (!cx.caller.is_admin()).then(|| cx.caller.project_id.clone());
        let instances = self
            .store()
            .list_instances(project.as_ref())
            .await
            .map_err(super::db_error("listing instances"))?;
        let mut hosts = Vec::with_capacity(instances.len());
        for instance in instances {
            let used = self
                .store()
                .instance_usage(&instance.id)
                .await
                .map_err(super::db_error("reading instance usage"))?;
            hosts.push(HostInfo {
                instance,
                total_containers: u32::try_from(used.containers).unwrap_or(u32::MAX),
                cpu_used: used.cpu_used,
                memory_used_mib: used.memory_used_mib,
            });
        }
        Ok(hosts)
    }
}
