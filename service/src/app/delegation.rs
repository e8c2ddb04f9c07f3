//! Obtaining, while a user's token is at hand, the authority the driver
//! needs to act in the user's project later (a Keystone trust for the
//! `nova` driver), and recording it, so that boots and deletes long after
//! the token expired still act as the tenant and never with admin powers.

use nest_core::Secret;

use super::{App, AppError, CallContext};
use crate::driver::{Delegation, DriverErrorKind};

impl App {
    /// Makes sure the caller's project has delegated what the driver needs,
    /// creating the delegation with `token` (the caller's own) when none is
    /// recorded. A no-op for drivers that need none.
    ///
    /// # Errors
    /// [`AppError::InvalidRequest`] when the cloud refuses the delegation
    /// (e.g. a token that may not create trusts), with its reason;
    /// [`AppError::Unavailable`] when it cannot be asked or recorded.
    pub async fn ensure_delegation(
        &self,
        cx: &CallContext,
        token: &Secret<String>,
    ) -> Result<(), AppError> {
        if cx.caller.is_read_only() {
            // The create itself is refused; nothing to delegate.
            return Ok(());
        }
        let project = &cx.caller.project_id;
        let store = &self.inner.store;
        let recorded = store
            .authority(project)
            .await
            .map_err(|e| AppError::Unavailable {
                what: "the database".into(),
                source: Some(Box::new(e)),
            })?;
        if recorded.is_some() {
            return Ok(());
        }
        let delegation = Delegation {
            user_id: cx.caller.user_id.to_string(),
            project_id: project.to_string(),
            roles: cx.caller.roles.iter().cloned().collect(),
            token: token.clone(),
        };
        let authority = self
            .inner
            .scheduler
            .driver()
            .delegate(&delegation)
            .await
            .map_err(|e| match e.kind() {
                DriverErrorKind::Unavailable | DriverErrorKind::Internal => AppError::Unavailable {
                    what: "Keystone".into(),
                    source: Some(Box::new(e)),
                },
                DriverErrorKind::Invalid | DriverErrorKind::OverQuota => AppError::InvalidRequest {
                    what: "delegation",
                    reason: format!(
                        "Nest cannot act in project {project} for you: {}",
                        crate::error_chain(&e)
                    ),
                },
            })?;
        let Some(authority) = authority else {
            return Ok(());
        };
        store
            .save_authority(project, &cx.caller.user_id, &authority)
            .await
            .map_err(|e| AppError::Unavailable {
                what: "the database".into(),
                source: Some(Box::new(e)),
            })?;
        tracing::info!(project_id = %project, user_id = %cx.caller.user_id, "the project delegated to Nest");
        Ok(())
    }
}
