//! Containers: storing and reading them, listing with Zun's pagination
//! (zun-api.md §2.3), conditional status changes, and binding to an
//! instance together with the host ports the container publishes there.

use sqlx::any::AnyRow;
use time::OffsetDateTime;

use super::changes::{ChangeKind, ContainerChange};
use super::codec::{
    self, Arg, Sql, container_columns, container_from_row, get, get_container_id, get_project_id,
    get_protocol, to_i64,
};
use super::error::classify;
use super::{DbError, Store, UniqueKey, utc_now};
use crate::domain::{
    Container, ContainerId, ContainerStatus, Health, InstanceId, PortProtocol, ProjectId,
    PublishedPort, UserId,
};

pub use crate::domain::{ContainerPatch, MAX_LIST_LIMIT, SortDir, SortKey};

/// The column a sort key orders by; `seq` (creation order) for
/// [`SortKey::Id`]. Fixed names: nothing from a request reaches the SQL.
fn column(key: SortKey) -> &'static str {
    match key {
        SortKey::Id => "seq",
        SortKey::Uuid => "uuid",
        SortKey::Name => "name",
        SortKey::Image => "image",
        SortKey::Status => "status",
        SortKey::CreatedAt => "created_at",
        SortKey::UpdatedAt => "updated_at",
    }
}

/// The SQL order keyword and the keyset comparison for a direction.
fn order(dir: SortDir) -> (&'static str, &'static str) {
    match dir {
        SortDir::Asc => ("ASC", ">"),
        SortDir::Desc => ("DESC", "<"),
    }
}

/// Exact-match filters of a container list; `None` matches anything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerFilters {
    /// Only containers with this name.
    pub name: Option<String>,
    /// Only containers of this image reference.
    pub image: Option<String>,
    /// Only containers in this status.
    pub status: Option<ContainerStatus>,
    /// Only containers created by this user.
    pub user_id: Option<UserId>,
}

/// One page of a container list.
#[derive(Clone, Debug, PartialEq)]
pub struct ListQuery {
    /// Whose containers; `None` lists every project's (admins with
    /// `all_projects`).
    pub project: Option<ProjectId>,
    /// Most items on the page; capped at [`MAX_LIST_LIMIT`].
    pub limit: u32,
    /// The last container of the previous page; the page starts after it.
    pub marker: Option<ContainerId>,
    /// Primary sort column; creation order breaks ties, in the same
    /// direction, as Zun's secondary key `id` does.
    pub sort_key: SortKey,
    /// Sort direction.
    pub sort_dir: SortDir,
    /// Exact-match filters.
    pub filters: ContainerFilters,
}

impl ListQuery {
    /// The first page of a project's containers (or every project's), with
    /// Zun's defaults: [`MAX_LIST_LIMIT`] items in creation order.
    pub fn new(project: Option<ProjectId>) -> Self {
        Self {
            project,
            limit: MAX_LIST_LIMIT,
            marker: None,
            sort_key: SortKey::default(),
            sort_dir: SortDir::default(),
            filters: ContainerFilters::default(),
        }
    }
}

/// A page of results.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// The items, in the requested order.
    pub items: Vec<T>,
    /// Whether more items follow this page (Zun then answers a `next` link).
    pub has_more: bool,
}

/// A host port booked on an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortBooking {
    /// The port's protocol.
    pub protocol: PortProtocol,
    /// The port on the instance.
    pub host_port: u16,
    /// The container that publishes it.
    pub container: ContainerId,
}

impl Store {
    /// Stores a new container.
    ///
    /// Its ports are booked only by [`Store::bind_container`]; insert
    /// containers unbound.
    ///
    /// # Errors
    /// [`DbError::Conflict`] with [`UniqueKey::ContainerName`] when the
    /// project already has a container of that name (or
    /// [`UniqueKey::ContainerId`] for a reused uuid); nothing is stored then.
    /// [`DbError::Query`] when the database fails.
    pub async fn insert_container(&self, c: &Container) -> Result<(), DbError> {
        let spec = codec::spec_json(&c.spec)?;
        let memory = to_i64("memory_mib", c.spec.memory_mib)?;
        sqlx::query(concat!(
            "INSERT INTO containers (",
            container_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        ))
        .bind(c.id.to_string())
        .bind(c.name.clone())
        .bind(c.project_id.as_str().to_owned())
        .bind(c.user_id.as_str().to_owned())
        .bind(c.spec.image.clone())
        .bind(c.spec.cpu)
        .bind(memory)
        .bind(spec)
        .bind(c.status.as_zun())
        .bind(c.status_reason.clone())
        .bind(i64::from(c.desired_running))
        .bind(c.instance_id.as_ref().map(|i| i.as_str().to_owned()))
        .bind(c.docker_id.clone())
        .bind(c.created_at.clone())
        .bind(c.updated_at.clone())
        .bind(c.health.map(|h| h.as_str().to_owned()))
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        self.changes.send(ContainerChange {
            container: c.id,
            project_id: c.project_id.clone(),
            name: c.name.clone(),
            kind: ChangeKind::Created {
                image: c.spec.image.clone(),
                labels: c.spec.labels.clone(),
            },
            at: OffsetDateTime::now_utc(),
        });
        Ok(())
    }

    /// Reads a container, whichever project owns it (callers check).
    ///
    /// # Errors
    /// [`DbError::ContainerNotFound`], or [`DbError::Query`] /
    /// [`DbError::Decode`] when the database fails.
    pub async fn get_container(&self, id: ContainerId) -> Result<Container, DbError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            container_columns!(),
            " FROM containers WHERE uuid = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        match row {
            Some(row) => container_from_row(&row),
            None => Err(DbError::ContainerNotFound(id)),
        }
    }

    /// The containers named `name` in `project` (in every project for
    /// `None`): at most one per project, since names are unique there, but
    /// callers get all there are.
    ///
    /// # Errors
    /// [`DbError::Query`] / [`DbError::Decode`] when the database fails.
    pub async fn find_by_name(
        &self,
        project: Option<&ProjectId>,
        name: &str,
    ) -> Result<Vec<Container>, DbError> {
        let rows = match project {
            Some(project) => {
                sqlx::query(concat!(
                    "SELECT ",
                    container_columns!(),
                    " FROM containers WHERE project_id = $1 AND name = $2 ORDER BY seq"
                ))
                .bind(project.as_str().to_owned())
                .bind(name.to_owned())
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(concat!(
                    "SELECT ",
                    container_columns!(),
                    " FROM containers WHERE name = $1 ORDER BY seq"
                ))
                .bind(name.to_owned())
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(classify)?;
        rows.iter().map(container_from_row).collect()
    }

    /// One page of containers, filtered, sorted and paginated as Zun does
    /// (zun-api.md §2.3). With `query.project` set, other projects' rows
    /// never appear, not even as a marker.
    ///
    /// # Errors
    /// [`DbError::MarkerNotFound`] when the marker names no container in
    /// scope; [`DbError::Query`] / [`DbError::Decode`] when the database
    /// fails.
    pub async fn list_containers(&self, query: &ListQuery) -> Result<Page<Container>, DbError> {
        let column = column(query.sort_key);
        let (order, after) = order(query.sort_dir);
        let limit = query.limit.min(MAX_LIST_LIMIT);

        let mut sql = Sql::default();
        sql.push(concat!(
            "SELECT ",
            container_columns!(),
            " FROM containers WHERE 1 = 1"
        ));
        if let Some(project) = &query.project {
            sql.push(" AND project_id = ")
                .bind(Arg::Text(project.as_str().to_owned()));
        }
        let f = &query.filters;
        if let Some(name) = &f.name {
            sql.push(" AND name = ").bind(Arg::Text(name.clone()));
        }
        if let Some(image) = &f.image {
            sql.push(" AND image = ").bind(Arg::Text(image.clone()));
        }
        if let Some(status) = f.status {
            sql.push(" AND status = ")
                .bind(Arg::Text(status.as_zun().to_owned()));
        }
        if let Some(user) = &f.user_id {
            sql.push(" AND user_id = ")
                .bind(Arg::Text(user.as_str().to_owned()));
        }
        if let Some(marker) = query.marker {
            let (value, seq) = self
                .marker_position(marker, query.project.as_ref(), query.sort_key)
                .await?;
            // Keyset pagination: rows strictly after the marker in
            // (column, seq) order.
            match value {
                None => {
                    sql.push(" AND seq ")
                        .push(after)
                        .push(" ")
                        .bind(Arg::Int(seq));
                }
                Some(value) => {
                    sql.push(" AND (")
                        .push(column)
                        .push(" ")
                        .push(after)
                        .push(" ")
                        .bind(Arg::Text(value.clone()))
                        .push(" OR (")
                        .push(column)
                        .push(" = ")
                        .bind(Arg::Text(value))
                        .push(" AND seq ")
                        .push(after)
                        .push(" ")
                        .bind(Arg::Int(seq))
                        .push("))");
                }
            }
        }
        sql.push(" ORDER BY ").push(column).push(" ").push(order);
        if query.sort_key != SortKey::Id {
            sql.push(", seq ").push(order);
        }
        // One row more than asked tells whether another page follows.
        sql.push(" LIMIT ").bind(Arg::Int(i64::from(limit) + 1));

        let rows = sql.query().fetch_all(&self.pool).await.map_err(classify)?;
        let mut items = rows
            .iter()
            .map(container_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let has_more = items.len() > limit as usize;
        items.truncate(limit as usize);
        Ok(Page { items, has_more })
    }

    /// Where the marker sits: its sort column's value (`None` when sorting
    /// by `seq` alone) and its `seq`.
    async fn marker_position(
        &self,
        marker: ContainerId,
        project: Option<&ProjectId>,
        key: SortKey,
    ) -> Result<(Option<String>, i64), DbError> {
        let mut sql = Sql::default();
        sql.push("SELECT seq");
        if key != SortKey::Id {
            sql.push(", ").push(column(key)).push(" AS sort_value");
        }
        sql.push(" FROM containers WHERE uuid = ")
            .bind(Arg::Text(marker.to_string()));
        if let Some(project) = project {
            sql.push(" AND project_id = ")
                .bind(Arg::Text(project.as_str().to_owned()));
        }
        let row = sql
            .query()
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?
            .ok_or(DbError::MarkerNotFound(marker))?;
        let seq: i64 = get(&row, "seq")?;
        let value = if key == SortKey::Id {
            None
        } else {
            Some(get(&row, "sort_value")?)
        };
        Ok((value, seq))
    }

    /// Changes a container's status from `expected` to `new`, only if it is
    /// still `expected`: of two concurrent changes from the same status,
    /// exactly one wins. Returns whether this one did.
    ///
    /// # Errors
    /// [`DbError::ContainerNotFound`], or [`DbError::Query`] when the
    /// database fails.
    pub async fn update_status(
        &self,
        id: ContainerId,
        expected: ContainerStatus,
        new: ContainerStatus,
        reason: Option<&str>,
    ) -> Result<bool, DbError> {
        let row = sqlx::query(
            "UPDATE containers SET status = $1, status_reason = $2, updated_at = $3 \
             WHERE uuid = $4 AND status = $5 RETURNING project_id, name",
        )
        .bind(new.as_zun())
        .bind(reason.map(str::to_owned))
        .bind(utc_now())
        .bind(id.to_string())
        .bind(expected.as_zun())
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        if let Some(row) = row {
            self.announce_status(id, &row, new, reason)?;
            return Ok(true);
        }
        self.ensure_container(id).await?;
        Ok(false)
    }

    /// Records a container's healthcheck verdict as its agent reported it.
    /// Not a change the feed announces: no status moved.
    ///
    /// # Errors
    /// [`DbError::ContainerNotFound`], or [`DbError::Query`] when the
    /// database fails.
    pub async fn set_health(&self, id: ContainerId, health: Option<Health>) -> Result<(), DbError> {
        let done = sqlx::query("UPDATE containers SET health = $1 WHERE uuid = $2")
            .bind(health.map(|h| h.as_str().to_owned()))
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        if done.rows_affected() == 0 {
            return Err(DbError::ContainerNotFound(id));
        }
        Ok(())
    }

    /// Sets a container's status whatever it was: for reconcilers that
    /// record what an agent reports.
    ///
    /// # Errors
    /// [`DbError::ContainerNotFound`], or [`DbError::Query`] when the
    /// database fails.
    pub async fn set_status_any(
        &self,
        id: ContainerId,
        new: ContainerStatus,
        reason: Option<&str>,
    ) -> Result<(), DbError> {
        let row = sqlx::query(
            "UPDATE containers SET status = $1, status_reason = $2, updated_at = $3 \
             WHERE uuid = $4 RETURNING project_id, name",
        )
        .bind(new.as_zun())
        .bind(reason.map(str::to_owned))
        .bind(utc_now())
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?
        .ok_or(DbError::ContainerNotFound(id))?;
        self.announce_status(id, &row, new, reason)
    }

    /// Announces a status change on the change feed, from the row an
    /// `UPDATE … RETURNING project_id, name` gave back.
    fn announce_status(
        &self,
        id: ContainerId,
        row: &AnyRow,
        status: ContainerStatus,
        reason: Option<&str>,
    ) -> Result<(), DbError> {
        self.changes.send(ContainerChange {
            container: id,
            project_id: get_project_id(row, "project_id")?,
            name: get(row, "name")?,
            kind: ChangeKind::Status {
                status,
                reason: reason.map(str::to_owned),
            },
            at: OffsetDateTime::now_utc(),
        });
        Ok(())
    }

    /// Records whether the user wants the container running (create with
    /// `run`, start, stop).
    ///
    /// # Errors
    /// [`DbError::ContainerNotFound`], or [`DbError::Query`] when the
    /// database fails.
    pub async fn set_desired_running(&self, id: ContainerId, running: bool) -> Result<(), DbError> {
        let done = sqlx::query(
            "UPDATE containers SET desired_running = $1, updated_at = $2 WHERE uuid = $3",
        )
        .bind(i64::from(running))
        .bind(utc_now())
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        found(done.rows_affected(), DbError::ContainerNotFound(id))
    }

    /// Applies a PATCH (name, cpu, memory) in one statement and returns the
    /// container as it now is. Whether the status allows it is the caller's
    /// check ([`ContainerStatus::can_update`]).
    ///
    /// # Errors
    /// [`DbError::ContainerNotFound`]; [`DbError::Conflict`] with
    /// [`UniqueKey::ContainerName`] when the new name is taken in the
    /// project (nothing changes then); [`DbError::Query`] when the database
    /// fails.
    pub async fn update_container(
        &self,
        id: ContainerId,
        patch: &ContainerPatch,
    ) -> Result<Container, DbError> {
        let memory = patch
            .memory_mib
            .map(|m| to_i64("memory_mib", m))
            .transpose()?;
        let row = sqlx::query(concat!(
            "UPDATE containers SET name = COALESCE($1, name), cpu = COALESCE($2, cpu), \
             memory_mib = COALESCE($3, memory_mib), updated_at = $4 WHERE uuid = $5 RETURNING ",
            container_columns!()
        ))
        .bind(patch.name.clone())
        .bind(patch.cpu)
        .bind(memory)
        .bind(utc_now())
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        let container = match row {
            Some(row) => container_from_row(&row)?,
            None => return Err(DbError::ContainerNotFound(id)),
        };
        if patch.name.is_some() {
            self.changes.send(ContainerChange {
                container: id,
                project_id: container.project_id.clone(),
                name: container.name.clone(),
                kind: ChangeKind::Renamed,
                at: OffsetDateTime::now_utc(),
            });
        }
        Ok(container)
    }

    /// Places a container on an instance: in one transaction, checks that
    /// the container is unbound and the instance is its project's, books
    /// every host port in `ports` on the instance and records the
    /// instance. Either all of it happens or none.
    ///
    /// # Errors
    /// [`DbError::ContainerNotFound`], [`DbError::InstanceNotFound`];
    /// [`DbError::AlreadyBound`] when the container is on an instance;
    /// [`DbError::ForeignInstance`] when the instance is another project's;
    /// [`DbError::PortTaken`] when another container booked one of the host
    /// ports on that instance (also when `ports` repeats one);
    /// [`DbError::Query`] when the database fails.
    pub async fn bind_container(
        &self,
        id: ContainerId,
        instance: &InstanceId,
        ports: &[PublishedPort],
    ) -> Result<(), DbError> {
        let uuid = id.to_string();
        let now = utc_now();
        let mut tx = self.pool.begin().await.map_err(classify)?;
        // Writing first takes SQLite's write lock at once, and locks the
        // row on PostgreSQL, so what is read next cannot change before the
        // commit.
        let touched = sqlx::query("UPDATE containers SET updated_at = $1 WHERE uuid = $2")
            .bind(now.clone())
            .bind(uuid.clone())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        found(touched.rows_affected(), DbError::ContainerNotFound(id))?;
        let row = sqlx::query(
            "SELECT c.instance_id AS bound_to, c.project_id AS owner, \
             (SELECT i.project_id FROM instances i WHERE i.id = $2) AS instance_owner \
             FROM containers c WHERE c.uuid = $1",
        )
        .bind(uuid.clone())
        .bind(instance.as_str().to_owned())
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
        if let Some(bound_to) = codec::get_instance_id(&row, "bound_to")? {
            return Err(DbError::AlreadyBound {
                id,
                instance: bound_to,
            });
        }
        let owner: String = get(&row, "owner")?;
        let instance_owner: Option<String> = get(&row, "instance_owner")?;
        match instance_owner {
            None => return Err(DbError::InstanceNotFound(instance.clone())),
            Some(o) if o != owner => {
                return Err(DbError::ForeignInstance {
                    id,
                    instance: instance.clone(),
                });
            }
            Some(_) => {}
        }
        for port in ports {
            sqlx::query(
                "INSERT INTO port_bookings (instance_id, protocol, host_port, container_uuid) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(instance.as_str().to_owned())
            .bind(port.protocol.as_str())
            .bind(i64::from(port.host_port))
            .bind(uuid.clone())
            .execute(&mut *tx)
            .await
            .map_err(|e| match classify(e) {
                DbError::Conflict {
                    what: UniqueKey::HostPort,
                    source,
                } => DbError::PortTaken {
                    instance: instance.clone(),
                    protocol: port.protocol,
                    host_port: port.host_port,
                    source,
                },
                other => other,
            })?;
        }
        sqlx::query("UPDATE containers SET instance_id = $1 WHERE uuid = $2")
            .bind(instance.as_str().to_owned())
            .bind(uuid)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    /// Takes a container off its instance: frees its host ports and clears
    /// its instance, in one transaction (for rescheduling after a failed
    /// boot). Unbinding an unbound container changes nothing.
    ///
    /// # Errors
    /// [`DbError::ContainerNotFound`], or [`DbError::Query`] when the
    /// database fails.
    pub async fn unbind_container(&self, id: ContainerId) -> Result<(), DbError> {
        let uuid = id.to_string();
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let done = sqlx::query(
            "UPDATE containers SET instance_id = NULL, updated_at = $1 WHERE uuid = $2",
        )
        .bind(utc_now())
        .bind(uuid.clone())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        found(done.rows_affected(), DbError::ContainerNotFound(id))?;
        sqlx::query("DELETE FROM port_bookings WHERE container_uuid = $1")
            .bind(uuid)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    /// The host ports booked on an instance, by port.
    ///
    /// # Errors
    /// [`DbError::Query`] / [`DbError::Decode`] when the database fails.
    pub async fn booked_ports(&self, instance: &InstanceId) -> Result<Vec<PortBooking>, DbError> {
        let rows = sqlx::query(
            "SELECT protocol, host_port, container_uuid FROM port_bookings \
             WHERE instance_id = $1 ORDER BY host_port, protocol",
        )
        .bind(instance.as_str().to_owned())
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(|row: &AnyRow| {
                Ok(PortBooking {
                    protocol: get_protocol(row, "protocol")?,
                    host_port: codec::get_port(row, "host_port")?,
                    container: get_container_id(row, "container_uuid")?,
                })
            })
            .collect()
    }

    /// Records (or, with `None`, forgets) the engine's id of a container.
    ///
    /// # Errors
    /// [`DbError::ContainerNotFound`], or [`DbError::Query`] when the
    /// database fails.
    pub async fn set_docker_id(
        &self,
        id: ContainerId,
        docker_id: Option<&str>,
    ) -> Result<(), DbError> {
        let done =
            sqlx::query("UPDATE containers SET docker_id = $1, updated_at = $2 WHERE uuid = $3")
                .bind(docker_id.map(str::to_owned))
                .bind(utc_now())
                .bind(id.to_string())
                .execute(&self.pool)
                .await
                .map_err(classify)?;
        found(done.rows_affected(), DbError::ContainerNotFound(id))
    }

    /// Deletes a container with its port bookings and actions, in one
    /// transaction.
    ///
    /// # Errors
    /// [`DbError::ContainerNotFound`], or [`DbError::Query`] when the
    /// database fails.
    pub async fn delete_container(&self, id: ContainerId) -> Result<(), DbError> {
        let uuid = id.to_string();
        let mut tx = self.pool.begin().await.map_err(classify)?;
        // The foreign keys cascade too; deleting explicitly keeps this
        // independent of SQLite's per-connection `foreign_keys` setting.
        for statement in [
            "DELETE FROM port_bookings WHERE container_uuid = $1",
            "DELETE FROM container_actions WHERE container_uuid = $1",
        ] {
            sqlx::query(statement)
                .bind(uuid.clone())
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        let row = sqlx::query("DELETE FROM containers WHERE uuid = $1 RETURNING project_id, name")
            .bind(uuid)
            .fetch_optional(&mut *tx)
            .await
            .map_err(classify)?
            .ok_or(DbError::ContainerNotFound(id))?;
        let change = ContainerChange {
            container: id,
            project_id: get_project_id(&row, "project_id")?,
            name: get(&row, "name")?,
            kind: ChangeKind::Deleted,
            at: OffsetDateTime::now_utc(),
        };
        tx.commit().await.map_err(classify)?;
        self.changes.send(change);
        Ok(())
    }

    /// The containers bound to an instance, in creation order.
    ///
    /// # Errors
    /// [`DbError::Query`] / [`DbError::Decode`] when the database fails.
    pub async fn containers_on_instance(
        &self,
        instance: &InstanceId,
    ) -> Result<Vec<Container>, DbError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            container_columns!(),
            " FROM containers WHERE instance_id = $1 ORDER BY seq"
        ))
        .bind(instance.as_str().to_owned())
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter().map(container_from_row).collect()
    }

    /// Every project's containers in a status, in creation order (for
    /// reconcilers and the scheduler's queue).
    ///
    /// # Errors
    /// [`DbError::Query`] / [`DbError::Decode`] when the database fails.
    pub async fn containers_in_status(
        &self,
        status: ContainerStatus,
    ) -> Result<Vec<Container>, DbError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            container_columns!(),
            " FROM containers WHERE status = $1 ORDER BY seq"
        ))
        .bind(status.as_zun())
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter().map(container_from_row).collect()
    }

    /// [`DbError::ContainerNotFound`] unless the container exists.
    async fn ensure_container(&self, id: ContainerId) -> Result<(), DbError> {
        let row = sqlx::query("SELECT 1 AS one FROM containers WHERE uuid = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        row.map(|_| ()).ok_or(DbError::ContainerNotFound(id))
    }
}

/// `Ok` when a statement touched a row, else `missing`.
pub(super) fn found(rows_affected: u64, missing: DbError) -> Result<(), DbError> {
    if rows_affected > 0 {
        Ok(())
    } else {
        Err(missing)
    }
}
