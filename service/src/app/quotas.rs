//! A project's quotas, without a second quota system: the cloud's limits
//! and usage (Nova's instances, cores and RAM, through the driver) beside
//! Nest's own counts of the project's containers.

use super::{App, AppError, CallContext};
use crate::db::Usage;
use crate::domain::ProjectId;
use crate::driver::{DriverErrorKind, ProjectLimits};

/// What `GET /v1/quotas/{project}` shows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuotaInfo {
    /// The cloud's limits; `None` when the driver enforces none.
    pub limits: Option<ProjectLimits>,
    /// What the project's containers reserve.
    pub usage: Usage,
}

impl App {
    /// `project`'s quotas. Its own members and admins may read them;
    /// anyone else is told no such project is visible.
    ///
    /// # Errors
    /// [`AppError::PolicyNotAuthorized`] for another project's quotas;
    /// [`AppError::Unavailable`] when the cloud or the database cannot be
    /// read; [`AppError::InvalidRequest`] when the project delegated
    /// nothing to read the cloud's limits with.
    pub async fn quotas(&self, cx: &CallContext, project: &str) -> Result<QuotaInfo, AppError> {
        if project != cx.caller.project_id.as_str() && !cx.caller.is_admin() {
            return Err(AppError::PolicyNotAuthorized("quota:get".into()));
        }
        let project = ProjectId::parse(project).map_err(|e| AppError::InvalidRequest {
            what: "project_id",
            reason: e.reason,
        })?;
        let usage = self
            .inner
            .store
            .project_usage(&project)
            .await
            .map_err(|e| AppError::Unavailable {
                what: "the database".into(),
                source: Some(Box::new(e)),
            })?;
        let limits = self
            .inner
            .scheduler
            .driver()
            .limits(&project)
            .await
            .map_err(|e| match e.kind() {
                DriverErrorKind::Invalid => AppError::InvalidRequest {
                    what: "project",
                    reason: crate::error_chain(&e),
                },
                _ => AppError::Unavailable {
                    what: "Nova".into(),
                    source: Some(Box::new(e)),
                },
            })?;
        Ok(QuotaInfo { limits, usage })
    }
}
