//! Zun's container actions: one record per request that acted on a
//! container (create, start, stop, delete …), started when the request is
//! accepted and finished when its work ends, listed by
//! `GET /v1/containers/{id}/container_actions`.

use sqlx::any::AnyRow;

use super::codec::{decode_error, get, get_container_id, get_project_id, get_user_id};
use super::containers::found;
use super::error::classify;
use super::{DbError, Store, utc_now};
use crate::domain::{ContainerId, ProjectId, RequestId, UserId};

/// An action about to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAction {
    /// The request that asked for it.
    pub request_id: RequestId,
    /// The container acted on.
    pub container: ContainerId,
    /// Zun's action name (`create`, `start`, `stop`, `delete`, …).
    pub action: String,
    /// The caller's project.
    pub project_id: ProjectId,
    /// The caller.
    pub user_id: UserId,
}

/// A recorded action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerAction {
    /// The request that asked for it.
    pub request_id: RequestId,
    /// The container acted on.
    pub container: ContainerId,
    /// Zun's action name.
    pub action: String,
    /// The caller's project.
    pub project_id: ProjectId,
    /// The caller.
    pub user_id: UserId,
    /// When it started, RFC 3339.
    pub start_time: String,
    /// When it finished, RFC 3339; `None` while it runs.
    pub finish_time: Option<String>,
    /// What went wrong, if it failed.
    pub message: Option<String>,
}

fn action_from_row(row: &AnyRow) -> Result<ContainerAction, DbError> {
    let request_id: String = get(row, "request_id")?;
    Ok(ContainerAction {
        request_id: RequestId::from_client(&request_id)
            .ok_or_else(|| decode_error("request_id", super::codec::UnexpectedValue(request_id)))?,
        container: get_container_id(row, "container_uuid")?,
        action: get(row, "action")?,
        project_id: get_project_id(row, "project_id")?,
        user_id: get_user_id(row, "user_id")?,
        start_time: get(row, "start_time")?,
        finish_time: get(row, "finish_time")?,
        message: get(row, "message")?,
    })
}

impl Store {
    /// Records that an action starts now.
    ///
    /// # Errors
    /// [`DbError::Conflict`] with [`super::UniqueKey::ActionRequest`] when
    /// this request already recorded an action on the container;
    /// [`DbError::Query`] when the database fails (also when the container
    /// does not exist: the foreign key refuses the row).
    pub async fn record_action(&self, action: &NewAction) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO container_actions \
             (request_id, container_uuid, action, project_id, user_id, start_time) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(action.request_id.as_str().to_owned())
        .bind(action.container.to_string())
        .bind(action.action.clone())
        .bind(action.project_id.as_str().to_owned())
        .bind(action.user_id.as_str().to_owned())
        .bind(utc_now())
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// Records that a request's action on a container finished now, with a
    /// message when it failed.
    ///
    /// # Errors
    /// [`DbError::ActionNotFound`] when no such action was recorded;
    /// [`DbError::Query`] when the database fails.
    pub async fn finish_action(
        &self,
        container: ContainerId,
        request_id: &RequestId,
        message: Option<&str>,
    ) -> Result<(), DbError> {
        let done = sqlx::query(
            "UPDATE container_actions SET finish_time = $1, message = $2 \
             WHERE container_uuid = $3 AND request_id = $4",
        )
        .bind(utc_now())
        .bind(message.map(str::to_owned))
        .bind(container.to_string())
        .bind(request_id.as_str().to_owned())
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        found(
            done.rows_affected(),
            DbError::ActionNotFound {
                container,
                request_id: request_id.as_str().to_owned(),
            },
        )
    }

    /// The request that last recorded `action` (Zun's spelling, as
    /// [`NewAction::action`]) on a container: how background work that an
    /// API call asked for (creating the container on its agent, finishing a
    /// delete) carries that call's request id on. `None` when no such
    /// action was recorded.
    ///
    /// # Errors
    /// [`DbError::Query`] / [`DbError::Decode`] when the database fails.
    pub async fn action_request_id(
        &self,
        container: ContainerId,
        action: &str,
    ) -> Result<Option<RequestId>, DbError> {
        let row = sqlx::query(
            "SELECT request_id FROM container_actions \
             WHERE container_uuid = $1 AND action = $2 ORDER BY id DESC LIMIT 1",
        )
        .bind(container.to_string())
        .bind(action.to_owned())
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.map(|row| {
            let request_id: String = get(&row, "request_id")?;
            RequestId::from_client(&request_id).ok_or_else(|| {
                decode_error("request_id", super::codec::UnexpectedValue(request_id))
            })
        })
        .transpose()
    }

    /// A container's actions, newest first (as Zun lists them).
    ///
    /// # Errors
    /// [`DbError::Query`] / [`DbError::Decode`] when the database fails.
    pub async fn list_actions(
        &self,
        container: ContainerId,
    ) -> Result<Vec<ContainerAction>, DbError> {
        let rows = sqlx::query(
            "SELECT request_id, container_uuid, action, project_id, user_id, start_time, \
             finish_time, message FROM container_actions WHERE container_uuid = $1 \
             ORDER BY id DESC",
        )
        .bind(container.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter().map(action_from_row).collect()
    }
}
