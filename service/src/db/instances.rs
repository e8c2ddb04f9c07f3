//! Instances Nest booted: storing them, conditional status changes, and
//! the capacity queries the scheduler places containers by.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;

use super::codec::{self, Arg, Sql, get, get_u64, instance_columns, instance_from_row, to_i64};
use super::containers::found;
use super::error::classify;
use super::{DbError, Store};
use crate::domain::{Instance, InstanceId, InstanceStatus, ProjectId};

/// What the containers bound to an instance reserve.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Usage {
    /// vCPUs reserved (sum of the containers' `cpu`).
    pub cpu_used: f64,
    /// Memory reserved, MiB.
    pub memory_used_mib: u64,
    /// How many containers are bound, in any status.
    pub containers: u64,
}

/// An instance with what its containers use: a placement candidate.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceUsage {
    /// The instance.
    pub instance: Instance,
    /// What its containers reserve.
    pub used: Usage,
}

impl InstanceUsage {
    /// Memory still free for containers, MiB.
    pub fn free_memory_mib(&self) -> u64 {
        self.instance
            .memory_mib
            .saturating_sub(self.used.memory_used_mib)
    }

    /// vCPUs still free for containers (never negative).
    pub fn free_cpu(&self) -> f64 {
        (self.instance.vcpus - self.used.cpu_used).max(0.0)
    }
}

/// The instance columns plus their usage, from `instances` left-joined
/// with per-instance sums over `containers`.
macro_rules! usage_select {
    () => {
        concat!(
            "SELECT ",
            instance_columns!(),
            ", COALESCE(u.cpu_used, 0.0) AS cpu_used, \
             COALESCE(u.memory_used, 0) AS memory_used, \
             COALESCE(u.containers, 0) AS containers \
             FROM instances LEFT JOIN (\
               SELECT instance_id, SUM(cpu) AS cpu_used, \
               CAST(SUM(memory_mib) AS BIGINT) AS memory_used, COUNT(*) AS containers \
               FROM containers WHERE instance_id IS NOT NULL GROUP BY instance_id\
             ) u ON u.instance_id = instances.id"
        )
    };
}

fn usage_from_row(row: &AnyRow) -> Result<InstanceUsage, DbError> {
    Ok(InstanceUsage {
        instance: instance_from_row(row)?,
        used: Usage {
            cpu_used: get(row, "cpu_used")?,
            memory_used_mib: get_u64(row, "memory_used")?,
            containers: get_u64(row, "containers")?,
        },
    })
}

impl Store {
    /// Stores a new instance.
    ///
    /// # Errors
    /// [`DbError::Conflict`] with [`super::UniqueKey::InstanceId`] when the
    /// id is taken; [`DbError::Query`] when the database fails.
    pub async fn insert_instance(&self, i: &Instance) -> Result<(), DbError> {
        sqlx::query(concat!(
            "INSERT INTO instances (",
            instance_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(i.id.as_str().to_owned())
        .bind(i.project_id.as_str().to_owned())
        .bind(i.driver.clone())
        .bind(i.status.as_str())
        .bind(i.status_reason.clone())
        .bind(i.vcpus)
        .bind(to_i64("memory_mib", i.memory_mib)?)
        .bind(codec::addresses_json(&i.addresses)?)
        .bind(i.created_at.clone())
        .bind(i.empty_since.clone())
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// Reads an instance.
    ///
    /// # Errors
    /// [`DbError::InstanceNotFound`], or [`DbError::Query`] /
    /// [`DbError::Decode`] when the database fails.
    pub async fn get_instance(&self, id: &InstanceId) -> Result<Instance, DbError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            instance_columns!(),
            " FROM instances WHERE id = $1"
        ))
        .bind(id.as_str().to_owned())
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        match row {
            Some(row) => instance_from_row(&row),
            None => Err(DbError::InstanceNotFound(id.clone())),
        }
    }

    /// A project's instances (`None`: every project's), oldest first.
    ///
    /// # Errors
    /// [`DbError::Query`] / [`DbError::Decode`] when the database fails.
    pub async fn list_instances(
        &self,
        project: Option<&ProjectId>,
    ) -> Result<Vec<Instance>, DbError> {
        let rows = match project {
            Some(project) => {
                sqlx::query(concat!(
                    "SELECT ",
                    instance_columns!(),
                    " FROM instances WHERE project_id = $1 ORDER BY created_at, id"
                ))
                .bind(project.as_str().to_owned())
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(concat!(
                    "SELECT ",
                    instance_columns!(),
                    " FROM instances ORDER BY created_at, id"
                ))
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(classify)?;
        rows.iter().map(instance_from_row).collect()
    }

    /// Changes an instance's status from `expected` to `new`, only if it is
    /// still `expected`. Returns whether this change won.
    ///
    /// # Errors
    /// [`DbError::InstanceNotFound`], or [`DbError::Query`] when the
    /// database fails.
    pub async fn update_instance_status(
        &self,
        id: &InstanceId,
        expected: InstanceStatus,
        new: InstanceStatus,
        reason: Option<&str>,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE instances SET status = $1, status_reason = $2 WHERE id = $3 AND status = $4",
        )
        .bind(new.as_str())
        .bind(reason.map(str::to_owned))
        .bind(id.as_str().to_owned())
        .bind(expected.as_str())
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        if done.rows_affected() > 0 {
            return Ok(true);
        }
        self.get_instance(id).await?;
        Ok(false)
    }

    /// Records an instance's addresses by network name.
    ///
    /// # Errors
    /// [`DbError::InstanceNotFound`], or [`DbError::Query`] when the
    /// database fails.
    pub async fn set_instance_addresses(
        &self,
        id: &InstanceId,
        addresses: &BTreeMap<String, String>,
    ) -> Result<(), DbError> {
        let done = sqlx::query("UPDATE instances SET addresses = $1 WHERE id = $2")
            .bind(codec::addresses_json(addresses)?)
            .bind(id.as_str().to_owned())
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        found(done.rows_affected(), DbError::InstanceNotFound(id.clone()))
    }

    /// Records since when an instance has been empty (RFC 3339, see
    /// [`super::utc_now`]), or `None` once it holds a container again.
    ///
    /// # Errors
    /// [`DbError::InstanceNotFound`], or [`DbError::Query`] when the
    /// database fails.
    pub async fn set_empty_since(
        &self,
        id: &InstanceId,
        since: Option<&str>,
    ) -> Result<(), DbError> {
        let done = sqlx::query("UPDATE instances SET empty_since = $1 WHERE id = $2")
            .bind(since.map(str::to_owned))
            .bind(id.as_str().to_owned())
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        found(done.rows_affected(), DbError::InstanceNotFound(id.clone()))
    }

    /// Deletes an instance that no container is bound to.
    ///
    /// # Errors
    /// [`DbError::InstanceNotFound`]; [`DbError::InstanceInUse`] while a
    /// container is bound to it (nothing changes then); [`DbError::Query`]
    /// when the database fails.
    pub async fn delete_instance(&self, id: &InstanceId) -> Result<(), DbError> {
        let done = sqlx::query(
            "DELETE FROM instances WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM containers WHERE instance_id = $1)",
        )
        .bind(id.as_str().to_owned())
        .execute(&self.pool)
        .await
        .map_err(|e| {
            // A container bound between the check and the delete trips the
            // foreign key instead.
            let in_use = e
                .as_database_error()
                .is_some_and(|db| db.kind() == sqlx::error::ErrorKind::ForeignKeyViolation);
            if in_use {
                DbError::InstanceInUse(id.clone())
            } else {
                classify(e)
            }
        })?;
        if done.rows_affected() > 0 {
            return Ok(());
        }
        self.get_instance(id).await?;
        Err(DbError::InstanceInUse(id.clone()))
    }

    /// What the containers bound to an instance reserve.
    ///
    /// # Errors
    /// [`DbError::InstanceNotFound`], or [`DbError::Query`] /
    /// [`DbError::Decode`] when the database fails.
    pub async fn instance_usage(&self, id: &InstanceId) -> Result<Usage, DbError> {
        let row = sqlx::query(concat!(usage_select!(), " WHERE instances.id = $1"))
            .bind(id.as_str().to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        match row {
            Some(row) => Ok(usage_from_row(&row)?.used),
            None => Err(DbError::InstanceNotFound(id.clone())),
        }
    }

    /// The project's instances that accept containers (Booting or Ready,
    /// [`InstanceStatus::accepts_containers`]), each with what its
    /// containers reserve, oldest first: the scheduler picks the best fit.
    ///
    /// # Errors
    /// [`DbError::Query`] / [`DbError::Decode`] when the database fails.
    pub async fn placement_candidates(
        &self,
        project: &ProjectId,
    ) -> Result<Vec<InstanceUsage>, DbError> {
        let mut sql = Sql::default();
        sql.push(concat!(usage_select!(), " WHERE instances.project_id = "))
            .bind(Arg::Text(project.as_str().to_owned()))
            .push(" AND instances.status IN (");
        // The statuses come from the domain's rule, not from a copy of it.
        let accepting = InstanceStatus::ALL
            .into_iter()
            .filter(|s| s.accepts_containers());
        for (n, status) in accepting.enumerate() {
            if n > 0 {
                sql.push(", ");
            }
            sql.bind(Arg::Text(status.as_str().to_owned()));
        }
        sql.push(") ORDER BY instances.created_at, instances.id");
        let rows = sql.query().fetch_all(&self.pool).await.map_err(classify)?;
        rows.iter().map(usage_from_row).collect()
    }
}
