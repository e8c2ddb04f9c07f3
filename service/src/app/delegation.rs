//! Obtaining, while a user's token is at hand, the authority the driver
//! needs to act in the user's project later (a Keystone trust for the
//! `nova` driver), and recording it, so that boots and deletes long after
//! the token expired still act as the tenant and never with admin powers.
//!
//! A recorded delegation the cloud has since refused (the sweep found the
//! trust revoked or its trustor gone: `UnreachableCause::DelegationRefused`)
//! is replaced at the next authenticated call of one of the project's
//! users, whatever the call, and the old one is withdrawn, so that no trust
//! is left behind.

use nest_core::Secret;

use super::{App, AppError, CallContext};
use crate::auth::Caller;
use crate::domain::UnreachableCause;
use crate::driver::{Delegation, DriverErrorKind, TenantAuthority};

impl App {
    /// Makes sure the caller's project has delegated what the driver needs,
    /// creating the delegation with `token` (the caller's own) when none is
    /// recorded, or when the recorded one was refused. A no-op for drivers
    /// that need none.
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
        self.delegate_for(&cx.caller, token).await
    }

    /// Replaces the caller's project's delegation if the cloud refused it;
    /// for every authenticated call, before it is handled. Never fails the
    /// call: a replacement that fails is logged, and the next call tries
    /// again.
    pub async fn renew_refused_delegation(&self, caller: &Caller, token: &Secret<String>) {
        let refused = match self
            .inner
            .store
            .unreachable_project(&caller.project_id)
            .await
        {
            Ok(marked) => marked.is_some_and(|m| m.cause == UnreachableCause::DelegationRefused),
            Err(e) => {
                tracing::warn!(error = %crate::error_chain(&e), "cannot read whether the project's delegation was refused");
                return;
            }
        };
        if !refused {
            return;
        }
        if let Err(e) = self.delegate_for(caller, token).await {
            tracing::warn!(project_id = %caller.project_id, error = %crate::error_chain(&e), "could not replace the project's refused delegation; the next call tries again");
        }
    }

    async fn delegate_for(&self, caller: &Caller, token: &Secret<String>) -> Result<(), AppError> {
        if caller.is_read_only() {
            // A reader may not create; nothing to delegate with.
            return Ok(());
        }
        let project = &caller.project_id;
        let store = &self.inner.store;
        let db = |e: crate::db::DbError| AppError::Unavailable {
            what: "the database".into(),
            source: Some(Box::new(e)),
        };
        let refused = || async {
            Ok::<_, AppError>(
                store
                    .unreachable_project(project)
                    .await
                    .map_err(db)?
                    .is_some_and(|m| m.cause == UnreachableCause::DelegationRefused),
            )
        };
        if store.authority(project).await.map_err(db)?.is_some() && !refused().await? {
            return Ok(());
        }
        // One delegation at a time: two calls of the project's users at
        // once would each create a trust, and one would be left behind.
        let _one = self.inner.delegations.lock().await;
        let recorded = store.authority(project).await.map_err(db)?;
        if recorded.is_some() && !refused().await? {
            return Ok(());
        }
        let delegation = Delegation {
            user_id: caller.user_id.to_string(),
            project_id: project.to_string(),
            roles: caller.roles.iter().cloned().collect(),
            token: token.clone(),
        };
        let driver = self.inner.scheduler.driver();
        let authority = driver
            .delegate(&delegation)
            .await
            .map_err(|e| match e.kind() {
                DriverErrorKind::Unavailable
                | DriverErrorKind::Internal
                | DriverErrorKind::DelegationRefused => AppError::Unavailable {
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
            .save_authority(project, &caller.user_id, &authority)
            .await
            .map_err(db)?;
        // The new delegation is untried: the next sweep judges it.
        store.clear_unreachable(project).await.map_err(db)?;
        match recorded {
            None => {
                tracing::info!(project_id = %project, user_id = %caller.user_id, "the project delegated to Nest");
            }
            Some(old) => {
                tracing::info!(project_id = %project, user_id = %caller.user_id, replaced = ?old, "the project's refused delegation was replaced");
                withdraw(driver.as_ref(), &old, &delegation).await;
            }
        }
        Ok(())
    }
}

/// Withdraws a replaced delegation; one that cannot be (another user's
/// trust, already gone with its trustor) is only logged.
async fn withdraw(
    driver: &dyn crate::driver::InstanceDriver,
    old: &TenantAuthority,
    delegation: &Delegation,
) {
    if let Err(e) = driver.withdraw(old, delegation).await {
        tracing::info!(replaced = ?old, error = %crate::error_chain(&e), "could not withdraw the replaced delegation");
    }
}
