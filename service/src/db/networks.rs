//! User-defined networks: a project's named networks, and the containers
//! that joined each (found from their specs, where the attachment lives).

use sqlx::any::AnyRow;

use super::codec::{
    container_columns, container_from_row, decode_error, get, get_project_id, get_user_id,
};
use super::error::classify;
use super::{DbError, Store};
use crate::domain::{Container, Network, NetworkId, ProjectId};

macro_rules! columns {
    () => {
        "uuid, project_id, user_id, name, labels, created_at"
    };
}

fn from_row(row: &AnyRow) -> Result<Network, DbError> {
    let id: String = get(row, "uuid")?;
    let labels: String = get(row, "labels")?;
    Ok(Network {
        id: NetworkId::parse(&id).map_err(|e| decode_error("uuid", e))?,
        name: get(row, "name")?,
        project_id: get_project_id(row, "project_id")?,
        user_id: get_user_id(row, "user_id")?,
        labels: serde_json::from_str(&labels).map_err(|e| decode_error("labels", e))?,
        created_at: get(row, "created_at")?,
    })
}

/// Whether a network could be removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkRemoval {
    /// It is gone.
    Removed,
    /// No such network in the project.
    NotFound,
    /// Containers are still on it.
    InUse,
}

impl Store {
    /// Records a new network.
    ///
    /// # Errors
    /// [`DbError::Conflict`] ([`super::UniqueKey::NetworkName`]) when the
    /// project has a network of that name; [`DbError::Query`] when the
    /// database fails.
    pub async fn insert_network(&self, n: &Network) -> Result<(), DbError> {
        let labels = serde_json::to_string(&n.labels)
            .map_err(|e| super::codec::encode_error("labels", e))?;
        sqlx::query(concat!(
            "INSERT INTO networks (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(n.id.hex())
        .bind(n.project_id.as_str().to_owned())
        .bind(n.user_id.as_str().to_owned())
        .bind(n.name.clone())
        .bind(labels)
        .bind(n.created_at.clone())
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// A project's networks, oldest first.
    ///
    /// # Errors
    /// [`DbError::Query`] / [`DbError::Decode`] when the database fails.
    pub async fn list_networks(&self, project: &ProjectId) -> Result<Vec<Network>, DbError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM networks WHERE project_id = $1 ORDER BY created_at, uuid"
        ))
        .bind(project.as_str().to_owned())
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter().map(from_row).collect()
    }

    /// The network with this id, in any project.
    ///
    /// # Errors
    /// [`DbError::Query`] / [`DbError::Decode`] when the database fails.
    pub async fn get_network(&self, id: NetworkId) -> Result<Option<Network>, DbError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM networks WHERE uuid = $1"
        ))
        .bind(id.hex())
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.as_ref().map(from_row).transpose()
    }

    /// The project's containers that joined `network`, in creation order.
    ///
    /// # Errors
    /// [`DbError::Query`] / [`DbError::Decode`] when the database fails.
    pub async fn containers_on_network(
        &self,
        project: &ProjectId,
        network: NetworkId,
    ) -> Result<Vec<Container>, DbError> {
        // The id is hex, so it has no LIKE wildcards; the match is
        // confirmed on the decoded spec.
        let rows = sqlx::query(concat!(
            "SELECT ",
            container_columns!(),
            " FROM containers WHERE project_id = $1 AND spec LIKE $2 ORDER BY seq"
        ))
        .bind(project.as_str().to_owned())
        .bind(format!("%{}%", network.hex()))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        let containers: Vec<Container> = rows
            .iter()
            .map(container_from_row)
            .collect::<Result<_, _>>()?;
        Ok(containers
            .into_iter()
            .filter(|c| c.spec.networks.iter().any(|n| n.network == network))
            .collect())
    }

    /// Removes a project's network unless a container is on it.
    ///
    /// # Errors
    /// [`DbError::Query`] when the database fails.
    pub async fn remove_network(
        &self,
        project: &ProjectId,
        network: NetworkId,
    ) -> Result<NetworkRemoval, DbError> {
        if !self
            .containers_on_network(project, network)
            .await?
            .is_empty()
        {
            return Ok(NetworkRemoval::InUse);
        }
        // The statement checks again, so that a container recorded since
        // keeps its network.
        let done = sqlx::query(
            "DELETE FROM networks WHERE uuid = $1 AND project_id = $2 \
             AND NOT EXISTS (SELECT 1 FROM containers WHERE project_id = $2 AND spec LIKE $3)",
        )
        .bind(network.hex())
        .bind(project.as_str().to_owned())
        .bind(format!("%{}%", network.hex()))
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        if done.rows_affected() > 0 {
            return Ok(NetworkRemoval::Removed);
        }
        Ok(match self.get_network(network).await? {
            Some(n) if &n.project_id == project => NetworkRemoval::InUse,
            _ => NetworkRemoval::NotFound,
        })
    }
}
