//! The projects whose instances the driver could not list at the last
//! sweep, and why: written only by the reconciler's sweep (and cleared when
//! a refused delegation is replaced), read by the hosts API and by the
//! delegation check of each authenticated call.

use super::codec::{decode_error, get, get_project_id};
use super::error::classify;
use super::{DbError, Store, utc_now};
use crate::domain::{ProjectId, UnreachableCause, UnreachableProject};

fn from_row(row: &sqlx::any::AnyRow) -> Result<UnreachableProject, DbError> {
    let cause: String = get(row, "cause")?;
    Ok(UnreachableProject {
        project_id: get_project_id(row, "project_id")?,
        cause: UnreachableCause::parse(&cause)
            .ok_or_else(|| decode_error("cause", format!("unknown cause {cause:?}")))?,
        reason: get(row, "reason")?,
        since: get(row, "since")?,
    })
}

impl Store {
    /// Records that `project`'s instances could not be listed, for `cause`
    /// with `reason`, and returns what was recorded before (`None`: the
    /// project was reachable), so that the caller reports only changes.
    /// `since` stays the first failure's time while the cause stays the
    /// same.
    ///
    /// # Errors
    /// [`DbError::Query`] / [`DbError::Decode`] when the database fails.
    pub async fn mark_unreachable(
        &self,
        project: &ProjectId,
        cause: UnreachableCause,
        reason: &str,
    ) -> Result<Option<UnreachableProject>, DbError> {
        let before = self.unreachable_project(project).await?;
        // One writer (the sweep): the read above cannot be raced but by a
        // replaced delegation's clear, which at worst is marked again here
        // and cleared by the next sweep.
        let since = match &before {
            Some(b) if b.cause == cause => b.since.clone(),
            _ => utc_now(),
        };
        sqlx::query(
            "INSERT INTO unreachable_projects (project_id, cause, reason, since) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (project_id) DO UPDATE SET cause = excluded.cause, \
             reason = excluded.reason, since = excluded.since",
        )
        .bind(project.as_str().to_owned())
        .bind(cause.as_str())
        .bind(reason.to_owned())
        .bind(since)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(before)
    }

    /// Forgets that `project` was unreachable; returns whether it was.
    ///
    /// # Errors
    /// [`DbError::Query`] when the database fails.
    pub async fn clear_unreachable(&self, project: &ProjectId) -> Result<bool, DbError> {
        let done = sqlx::query("DELETE FROM unreachable_projects WHERE project_id = $1")
            .bind(project.as_str().to_owned())
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() > 0)
    }

    /// Whether (and why) `project`'s instances could not be listed.
    ///
    /// # Errors
    /// [`DbError::Query`] / [`DbError::Decode`] when the database fails.
    pub async fn unreachable_project(
        &self,
        project: &ProjectId,
    ) -> Result<Option<UnreachableProject>, DbError> {
        let row = sqlx::query(
            "SELECT project_id, cause, reason, since FROM unreachable_projects \
             WHERE project_id = $1",
        )
        .bind(project.as_str().to_owned())
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every project whose instances could not be listed, by project.
    ///
    /// # Errors
    /// [`DbError::Query`] / [`DbError::Decode`] when the database fails.
    pub async fn unreachable_projects(&self) -> Result<Vec<UnreachableProject>, DbError> {
        let rows = sqlx::query(
            "SELECT project_id, cause, reason, since FROM unreachable_projects \
             ORDER BY project_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter().map(from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_mark_reports_what_was_there_and_keeps_its_first_time() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}/nest.db?mode=rwc", dir.path().display());
        let store = Store::connect(&url).await.expect("SQLite opens");
        let p1 = ProjectId::parse("p1").expect("valid");
        assert_eq!(store.unreachable_project(&p1).await.expect("reads"), None);
        let refused = UnreachableCause::DelegationRefused;
        let first = store
            .mark_unreachable(&p1, refused, "trust gone")
            .await
            .expect("marked");
        assert_eq!(first, None);
        let again = store
            .mark_unreachable(&p1, refused, "trust gone (request req-2)")
            .await
            .expect("marked")
            .expect("was marked");
        assert_eq!(again.reason, "trust gone");
        let now = store
            .unreachable_project(&p1)
            .await
            .expect("reads")
            .expect("marked");
        assert_eq!(now.reason, "trust gone (request req-2)");
        assert_eq!(now.since, again.since, "the same outage since the first");
        store
            .mark_unreachable(&p1, UnreachableCause::CloudUnavailable, "nova down")
            .await
            .expect("marked");
        assert_eq!(
            store.unreachable_projects().await.expect("reads")[0].cause,
            UnreachableCause::CloudUnavailable
        );
        assert!(store.clear_unreachable(&p1).await.expect("cleared"));
        assert!(!store.clear_unreachable(&p1).await.expect("cleared"));
        assert_eq!(store.unreachable_projects().await.expect("reads"), []);
        store.close().await;
    }
}
