//! What Nest recorded: container actions, and instances as Zun's hosts.

use std::collections::BTreeMap;

use nest_images::ImageStore;

use super::App;
use crate::app::{self as api, AppError, CallContext, ContainerRef, HostInfo};
use crate::auth::policy::{self, Action};

impl App {
    /// The agents of every project's instances, as Zun's service list
    /// (admins only, `zun-service:get_all`).
    ///
    /// # Errors
    /// [`AppError::PolicyNotAuthorized`] for anyone but an admin.
    pub async fn list_services(&self, cx: &CallContext) -> Result<Vec<HostInfo>, AppError> {
        policy::authorize(&cx.caller, Action::ServiceList, None).map_err(super::policy_error)?;
        self.list_hosts(cx).await
    }

    /// The actions recorded on a container, oldest first.
    pub async fn list_actions(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
    ) -> Result<Vec<api::ActionRecord>, AppError> {
        let container = self
            .resolve(cx, reference, Action::ContainerActionList)
            .await?;
        let actions = self
            .store()
            .list_actions(container.id)
            .await
            .map_err(super::db_error("listing actions"))?;
        Ok(actions.into_iter().filter_map(action_record).collect())
    }

    /// One recorded action, by the request id that triggered it, with its
    /// events.
    pub async fn find_action(
        &self,
        cx: &CallContext,
        reference: &ContainerRef,
        request_id: &crate::domain::RequestId,
    ) -> Result<api::ActionRecord, AppError> {
        self.list_actions(cx, reference)
            .await?
            .into_iter()
            .find(|a| &a.request_id == request_id)
            .ok_or_else(|| AppError::ActionNotFound(request_id.clone()))
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
    /// The instances of the caller's project (every project's for an
    /// admin), as Zun's hosts.
    pub async fn list_hosts(&self, cx: &CallContext) -> Result<Vec<HostInfo>, AppError> {
        // Tenants see their own project's instances; admins see all.
        policy::authorize(&cx.caller, Action::ContainerList, None).map_err(super::policy_error)?;
        let project = (!cx.caller.is_admin()).then(|| cx.caller.project_id.clone());
        let instances = self
            .store()
            .list_instances(project.as_ref())
            .await
            .map_err(super::db_error("listing instances"))?;
        let unreachable: BTreeMap<_, _> = self
            .store()
            .unreachable_projects()
            .await
            .map_err(super::db_error("listing unreachable projects"))?
            .into_iter()
            .map(|u| (u.project_id, u.reason))
            .collect();
        let mut hosts = Vec::with_capacity(instances.len());
        for instance in instances {
            let used = self
                .store()
                .instance_usage(&instance.id)
                .await
                .map_err(super::db_error("reading instance usage"))?;
            hosts.push(HostInfo {
                total_containers: u32::try_from(used.containers).unwrap_or(u32::MAX),
                cpu_used: used.cpu_used,
                memory_used_mib: used.memory_used_mib,
                unreachable: unreachable.get(&instance.project_id).cloned(),
                instance,
            });
        }
        Ok(hosts)
    }
}

fn stored(record: nest_images::ImageRecord) -> api::StoredImage {
    api::StoredImage {
        id: record.id.to_string(),
        name: record.name,
        size_bytes: record.size_bytes,
        sha256: record.sha256,
        created_at: record
            .created_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        repo_tags: record.repo_tags,
    }
}

fn image_error(e: crate::images::ImageError) -> AppError {
    use nest_core::ErrorKind;
    match e.kind() {
        ErrorKind::Invalid => AppError::InvalidRequest {
            what: "image",
            reason: crate::error_chain(&e),
        },
        _ => AppError::Internal {
            context: "using the image store",
            source: Box::new(e),
        },
    }
}

impl App {
    /// Stores an uploaded image (`docker save` tarball or root filesystem
    /// tarball) for the caller's project. A Nest extension.
    pub async fn upload_image(
        &self,
        cx: &CallContext,
        name: Option<String>,
        body: api::ImageUpload,
    ) -> Result<api::StoredImage, AppError> {
        policy::authorize(&cx.caller, Action::ContainerCreate, None)
            .map_err(super::policy_error)?;
        let store = self
            .inner
            .images
            .store(&cx.caller.project_id)
            .await
            .map_err(image_error)?;
        let record = store
            .put(name, body)
            .await
            .map_err(|e| image_error(e.into()))?;
        tracing::info!(image_id = %record.id, project_id = %cx.caller.project_id, size = record.size_bytes, "image stored");
        Ok(stored(record))
    }

    /// The images stored for the caller's project. A Nest extension.
    pub async fn list_images(&self, cx: &CallContext) -> Result<Vec<api::StoredImage>, AppError> {
        policy::authorize(&cx.caller, Action::ContainerList, None).map_err(super::policy_error)?;
        let store = self
            .inner
            .images
            .store(&cx.caller.project_id)
            .await
            .map_err(image_error)?;
        let records = store.list().await.map_err(|e| image_error(e.into()))?;
        Ok(records.into_iter().map(stored).collect())
    }

    /// Deletes a stored image of the caller's project. A Nest extension.
    pub async fn delete_image(&self, cx: &CallContext, id: &str) -> Result<(), AppError> {
        policy::authorize(&cx.caller, Action::ContainerDelete, None)
            .map_err(super::policy_error)?;
        let not_found = || AppError::StoredImageNotFound(id.to_owned());
        let image: nest_images::ImageId = id.parse().map_err(|_| not_found())?;
        let store = self
            .inner
            .images
            .store(&cx.caller.project_id)
            .await
            .map_err(image_error)?;
        match store.delete(image).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == nest_images::ErrorKind::NotFound => Err(not_found()),
            Err(e) => Err(image_error(e.into())),
        }
    }
}
