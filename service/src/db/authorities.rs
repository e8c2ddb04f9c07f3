//! The authority each project delegated to Nest (a Keystone trust or an
//! application credential), one per project: what the `nova` driver acts
//! with in the project when no user's token is at hand.

use nest_core::Secret;
use nest_openstack::TenantAuthority;
use sqlx::Row;

use super::codec::{decode_error, get, get_project_id};
use super::error::classify;
use super::{DbError, Store, utc_now};
use crate::domain::{ProjectId, UserId};

const TRUST: &str = "trust";
const APPLICATION_CREDENTIAL: &str = "application_credential";

fn from_row(row: &sqlx::any::AnyRow) -> Result<TenantAuthority, DbError> {
    let kind: String = get(row, "kind")?;
    let id: String = get(row, "credential_id")?;
    match kind.as_str() {
        TRUST => Ok(TenantAuthority::Trust { trust_id: id }),
        APPLICATION_CREDENTIAL => {
            let secret: Option<String> = row
                .try_get("secret")
                .map_err(|e| decode_error("secret", e))?;
            let secret = secret.ok_or_else(|| {
                decode_error("secret", "an application credential without its secret")
            })?;
            Ok(TenantAuthority::ApplicationCredential {
                id,
                secret: Secret::new(secret),
            })
        }
        other => Err(decode_error(
            "kind",
            format!("unknown authority kind {other:?}"),
        )),
    }
}

impl Store {
    /// Records (or replaces) the authority `user` delegated for `project`.
    /// [`TenantAuthority::None`] removes it.
    ///
    /// # Errors
    /// [`DbError::Query`] when the database fails.
    pub async fn save_authority(
        &self,
        project: &ProjectId,
        user: &UserId,
        authority: &TenantAuthority,
    ) -> Result<(), DbError> {
        let (kind, id, secret) = match authority {
            TenantAuthority::None => return self.delete_authority(project).await,
            TenantAuthority::Trust { trust_id } => (TRUST, trust_id.clone(), None),
            TenantAuthority::ApplicationCredential { id, secret } => (
                APPLICATION_CREDENTIAL,
                id.clone(),
                Some(secret.expose().clone()),
            ),
        };
        sqlx::query(
            "INSERT INTO tenant_authorities \
             (project_id, user_id, kind, credential_id, secret, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (project_id) DO UPDATE SET user_id = excluded.user_id, \
             kind = excluded.kind, credential_id = excluded.credential_id, \
             secret = excluded.secret, created_at = excluded.created_at",
        )
        .bind(project.as_str().to_owned())
        .bind(user.as_str().to_owned())
        .bind(kind)
        .bind(id)
        .bind(secret)
        .bind(utc_now())
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// The authority recorded for `project`, if any.
    ///
    /// # Errors
    /// [`DbError::Query`] / [`DbError::Decode`] when the database fails.
    pub async fn authority(&self, project: &ProjectId) -> Result<Option<TenantAuthority>, DbError> {
        let row = sqlx::query(
            "SELECT kind, credential_id, secret FROM tenant_authorities WHERE project_id = $1",
        )
        .bind(project.as_str().to_owned())
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every recorded authority, by project.
    ///
    /// # Errors
    /// [`DbError::Query`] / [`DbError::Decode`] when the database fails.
    pub async fn authorities(&self) -> Result<Vec<(ProjectId, TenantAuthority)>, DbError> {
        let rows = sqlx::query(
            "SELECT project_id, kind, credential_id, secret FROM tenant_authorities \
             ORDER BY project_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(|row| Ok((get_project_id(row, "project_id")?, from_row(row)?)))
            .collect()
    }

    /// What a project's containers reserve, all statuses together: the
    /// counts of `GET /v1/quotas` (Nest's own, beside Nova's).
    ///
    /// # Errors
    /// [`DbError::Query`] / [`DbError::Decode`] when the database fails.
    pub async fn project_usage(&self, project: &ProjectId) -> Result<super::Usage, DbError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS containers, COALESCE(SUM(cpu), 0.0) AS cpu_used, \
             CAST(COALESCE(SUM(memory_mib), 0) AS BIGINT) AS memory_used \
             FROM containers WHERE project_id = $1",
        )
        .bind(project.as_str().to_owned())
        .fetch_one(&self.pool)
        .await
        .map_err(classify)?;
        Ok(super::Usage {
            cpu_used: get(&row, "cpu_used")?,
            memory_used_mib: super::codec::get_u64(&row, "memory_used")?,
            containers: super::codec::get_u64(&row, "containers")?,
        })
    }

    /// Forgets `project`'s authority.
    ///
    /// # Errors
    /// [`DbError::Query`] when the database fails.
    pub async fn delete_authority(&self, project: &ProjectId) -> Result<(), DbError> {
        sqlx::query("DELETE FROM tenant_authorities WHERE project_id = $1")
            .bind(project.as_str().to_owned())
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn authorities_round_trip_and_are_replaced_per_project() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}/nest.db?mode=rwc", dir.path().display());
        let store = Store::connect(&url).await.expect("SQLite opens");
        let (p1, p2) = (
            ProjectId::parse("p1").expect("valid"),
            ProjectId::parse("p2").expect("valid"),
        );
        let user = UserId::parse("u").expect("valid");
        assert_eq!(store.authority(&p1).await.expect("reads"), None);
        let trust = TenantAuthority::Trust {
            trust_id: "t-1".into(),
        };
        store
            .save_authority(&p1, &user, &trust)
            .await
            .expect("saved");
        let app = TenantAuthority::ApplicationCredential {
            id: "ac".into(),
            secret: Secret::new("s3cret".into()),
        };
        store.save_authority(&p2, &user, &app).await.expect("saved");
        assert_eq!(store.authority(&p1).await.expect("reads"), Some(trust));
        assert_eq!(
            store.authorities().await.expect("reads"),
            [
                (
                    p1.clone(),
                    TenantAuthority::Trust {
                        trust_id: "t-1".into()
                    }
                ),
                (p2.clone(), app)
            ]
        );
        let newer = TenantAuthority::Trust {
            trust_id: "t-2".into(),
        };
        store
            .save_authority(&p1, &user, &newer)
            .await
            .expect("replaced");
        assert_eq!(store.authority(&p1).await.expect("reads"), Some(newer));
        store
            .save_authority(&p1, &user, &TenantAuthority::None)
            .await
            .expect("removed");
        assert_eq!(store.authority(&p1).await.expect("reads"), None);
        store.close().await;
    }
}
