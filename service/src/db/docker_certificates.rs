//! The Docker endpoint's client certificates: which user and project each
//! serial stands for, until when, and whether it was revoked.

use std::collections::BTreeSet;

use sqlx::any::AnyRow;

use super::codec::{decode_error, get, get_project_id, get_user_id};
use super::error::classify;
use super::{DbError, Store};
use crate::domain::{ProjectId, UserId};

/// A client certificate as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerCertificate {
    /// Serial number, lowercase hex.
    pub serial: String,
    /// The user it acts for.
    pub user_id: UserId,
    /// The project it acts in.
    pub project_id: ProjectId,
    /// The issuing token's roles, lowercase.
    pub roles: BTreeSet<String>,
    /// When it was issued, RFC 3339.
    pub created_at: String,
    /// When it stops being accepted, RFC 3339 (same format as
    /// [`super::utc_now`], so text order is time order).
    pub expires_at: String,
    /// When it was revoked, RFC 3339.
    pub revoked_at: Option<String>,
}

macro_rules! columns {
    () => {
        "serial, user_id, project_id, roles, created_at, expires_at, revoked_at"
    };
}

fn from_row(row: &AnyRow) -> Result<DockerCertificate, DbError> {
    let roles: String = get(row, "roles")?;
    Ok(DockerCertificate {
        serial: get(row, "serial")?,
        user_id: get_user_id(row, "user_id")?,
        project_id: get_project_id(row, "project_id")?,
        roles: serde_json::from_str(&roles).map_err(|e| decode_error("roles", e))?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
        revoked_at: get(row, "revoked_at")?,
    })
}

impl Store {
    /// Records an issued certificate.
    ///
    /// # Errors
    /// [`DbError::Conflict`] for a repeated serial; [`DbError::Query`]
    /// when the database fails.
    pub async fn insert_docker_certificate(&self, c: &DockerCertificate) -> Result<(), DbError> {
        let roles =
            serde_json::to_string(&c.roles).map_err(|e| super::codec::encode_error("roles", e))?;
        sqlx::query(concat!(
            "INSERT INTO docker_certificates (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(c.serial.clone())
        .bind(c.user_id.as_str().to_owned())
        .bind(c.project_id.as_str().to_owned())
        .bind(roles)
        .bind(c.created_at.clone())
        .bind(c.expires_at.clone())
        .bind(c.revoked_at.clone())
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// The certificate with this serial, if one was issued.
    ///
    /// # Errors
    /// [`DbError::Query`] / [`DbError::Decode`] when the database fails.
    pub async fn get_docker_certificate(
        &self,
        serial: &str,
    ) -> Result<Option<DockerCertificate>, DbError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM docker_certificates WHERE serial = $1"
        ))
        .bind(serial.to_owned())
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.as_ref().map(from_row).transpose()
    }

    /// A project's certificates (only `user`'s when given), newest first.
    ///
    /// # Errors
    /// [`DbError::Query`] / [`DbError::Decode`] when the database fails.
    pub async fn list_docker_certificates(
        &self,
        project: &ProjectId,
        user: Option<&UserId>,
    ) -> Result<Vec<DockerCertificate>, DbError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM docker_certificates WHERE project_id = $1 \
             AND ($2 = '' OR user_id = $2) ORDER BY created_at DESC, serial"
        ))
        .bind(project.as_str().to_owned())
        .bind(user.map(|u| u.as_str().to_owned()).unwrap_or_default())
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter().map(from_row).collect()
    }

    /// Marks a certificate revoked at `now` (a second revocation keeps the
    /// first time). Returns whether the serial exists.
    ///
    /// # Errors
    /// [`DbError::Query`] when the database fails.
    pub async fn revoke_docker_certificate(
        &self,
        serial: &str,
        now: &str,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE docker_certificates SET revoked_at = COALESCE(revoked_at, $1) WHERE serial = $2",
        )
        .bind(now.to_owned())
        .bind(serial.to_owned())
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(done.rows_affected() > 0)
    }
}
