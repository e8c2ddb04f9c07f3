//! Docker's `--rm` (a container's `auto_remove`), done by the service: the
//! docker CLI sets `HostConfig.AutoRemove`, waits with
//! `condition=removed` and never sends a delete itself (§1 #12 of
//! docker-api.md). Once such a container has stopped, it is deleted as
//! its owner would delete it.

use tokio_util::sync::CancellationToken;

use super::{App, CallContext, ChangeKind, DeleteOptions};
use crate::auth::Caller;
use crate::domain::{ContainerStatus, RequestId};

impl App {
    /// Deletes `auto_remove` containers when they stop, until `cancel`.
    /// Changes missed while lagging are caught by re-reading the stopped
    /// containers.
    pub async fn run_auto_remove(self, cancel: CancellationToken) {
        let mut feed = self.store().subscribe_changes();
        loop {
            let change = tokio::select! {
                () = cancel.cancelled() => return,
                change = feed.recv() => change,
            };
            match change {
                Ok(change) => {
                    if matches!(
                        change.kind,
                        ChangeKind::Status {
                            status: ContainerStatus::Stopped,
                            ..
                        }
                    ) {
                        self.remove_if_auto(change.container).await;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    match self
                        .store()
                        .containers_in_status(ContainerStatus::Stopped)
                        .await
                    {
                        Ok(stopped) => {
                            for c in stopped.into_iter().filter(|c| c.spec.auto_remove) {
                                self.remove_if_auto(c.id).await;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %crate::error_chain(&e), "could not list stopped containers for --rm");
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    async fn remove_if_auto(&self, id: crate::domain::ContainerId) {
        let Ok(container) = self.store().get_container(id).await else {
            return;
        };
        if !container.spec.auto_remove || container.status != ContainerStatus::Stopped {
            return;
        }
        // The owner asked for this when creating it.
        let cx = CallContext {
            caller: Caller {
                user_id: container.user_id.clone(),
                project_id: container.project_id.clone(),
                roles: ["member".to_owned()].into(),
            },
            request_id: RequestId::generate(),
        };
        let options = DeleteOptions {
            force: false,
            stop: false,
            all_projects: false,
        };
        match self
            .delete_container(&cx, &super::ContainerRef::Id(id), options)
            .await
        {
            Ok(()) => tracing::info!(container_id = %id, "removing a stopped --rm container"),
            Err(e) => tracing::debug!(container_id = %id, error = %e, "--rm removal skipped"),
        }
    }
}
