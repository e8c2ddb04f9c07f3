//! What can go wrong in the database, and the one place ([`classify`]) that
//! turns sqlx's errors into Nest's: unique violations become
//! [`DbError::Conflict`] naming the constraint, everything else keeps its
//! cause and is classified by [`DbError::kind`].

use std::fmt;

use nest_core::ErrorKind;
use sqlx::error::{DatabaseError, ErrorKind as SqlErrorKind};

use super::Backend;
use crate::domain::{ContainerId, InstanceId, PortProtocol};

/// A failure of a database operation.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database URL names an engine Nest does not support.
    #[error("unsupported database URL scheme {scheme:?}; use sqlite: or postgres:")]
    UnsupportedUrl {
        /// The scheme found (at most 32 characters of it).
        scheme: String,
    },
    /// The database could not be opened or reached at start.
    #[error("cannot open the {backend:?} database")]
    Open {
        /// Which engine.
        backend: Backend,
        /// What sqlx reported.
        #[source]
        source: sqlx::Error,
    },
    /// The schema could not be brought up to date.
    #[error("cannot migrate the {backend:?} database")]
    Migrate {
        /// Which engine.
        backend: Backend,
        /// What the migrator reported.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// No container has this id.
    #[error("container {0} not found")]
    ContainerNotFound(ContainerId),
    /// No instance has this id.
    #[error("instance {0} not found")]
    InstanceNotFound(InstanceId),
    /// A list's `marker` names no container the caller may see (Zun answers
    /// 404, zun-api.md §2.3).
    #[error("marker {0} not found")]
    MarkerNotFound(ContainerId),
    /// No action was recorded for this container and request.
    #[error("no action of request {request_id} on container {container}")]
    ActionNotFound {
        /// The container.
        container: ContainerId,
        /// The request id the action was recorded under.
        request_id: String,
    },
    /// A unique constraint refused the write: a name, id or port is taken.
    #[error("{what} is already taken")]
    Conflict {
        /// Which constraint.
        what: UniqueKey,
        /// The database's refusal.
        #[source]
        source: sqlx::Error,
    },
    /// Another container already booked this host port on the instance.
    #[error("host port {host_port}/{} is already booked on instance {instance}", protocol.as_str())]
    PortTaken {
        /// The instance.
        instance: InstanceId,
        /// The port's protocol.
        protocol: PortProtocol,
        /// The port on the instance.
        host_port: u16,
        /// The database's refusal.
        #[source]
        source: sqlx::Error,
    },
    /// The container is already bound to an instance.
    #[error("container {id} is already bound to instance {instance}")]
    AlreadyBound {
        /// The container.
        id: ContainerId,
        /// The instance it is bound to.
        instance: InstanceId,
    },
    /// The instance belongs to another project than the container, so the
    /// container may not be placed on it.
    #[error("instance {instance} belongs to another project than container {id}")]
    ForeignInstance {
        /// The container.
        id: ContainerId,
        /// The instance.
        instance: InstanceId,
    },
    /// The instance still has containers bound to it.
    #[error("instance {0} still has containers")]
    InstanceInUse(InstanceId),
    /// A stored value could not be read back (a bug, or a hand-edited row).
    #[error("stored column {column} holds an unreadable value")]
    Decode {
        /// `table.column`.
        column: &'static str,
        /// Why it cannot be read.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A value could not be stored (out of the column's range, or JSON
    /// encoding failed).
    #[error("value for column {column} cannot be stored")]
    Encode {
        /// `table.column`.
        column: &'static str,
        /// Why it cannot be stored.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A query failed for another reason (connection lost, pool exhausted,
    /// a constraint other than uniqueness, a bug).
    #[error("database query failed")]
    Query(#[source] sqlx::Error),
}

impl DbError {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::ContainerNotFound(_)
            | Self::InstanceNotFound(_)
            | Self::MarkerNotFound(_)
            | Self::ActionNotFound { .. } => ErrorKind::NotFound,
            Self::Conflict { .. }
            | Self::PortTaken { .. }
            | Self::AlreadyBound { .. }
            | Self::ForeignInstance { .. }
            | Self::InstanceInUse(_) => ErrorKind::Conflict,
            Self::Open { source, .. } | Self::Query(source) => sqlx_kind(source),
            Self::Migrate { source, .. } => match source {
                sqlx::migrate::MigrateError::Execute(e) => sqlx_kind(e),
                _ => ErrorKind::Internal,
            },
            Self::UnsupportedUrl { .. } | Self::Decode { .. } | Self::Encode { .. } => {
                ErrorKind::Internal
            }
        }
    }
}

/// Which unique constraint refused a write. The names are the constraint
/// names in both migrations; SQLite reports columns instead, so each key
/// also knows those.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UniqueKey {
    /// `containers.uuid`.
    ContainerId,
    /// `containers (project_id, name)`: names are unique per project.
    ContainerName,
    /// `instances.id`.
    InstanceId,
    /// `port_bookings (instance_id, protocol, host_port)`.
    HostPort,
    /// `container_actions (container_uuid, request_id)`.
    ActionRequest,
    /// `networks (project_id, name)`: network names are unique per project.
    NetworkName,
    /// A constraint this module does not know: a migration added one
    /// without teaching [`UniqueKey`] about it.
    Unrecognised,
}

impl UniqueKey {
    const KNOWN: [Self; 6] = [
        Self::ContainerId,
        Self::ContainerName,
        Self::InstanceId,
        Self::HostPort,
        Self::ActionRequest,
        Self::NetworkName,
    ];

    /// The constraint's name in the migrations (what PostgreSQL reports).
    fn constraint(self) -> &'static str {
        match self {
            Self::ContainerId => "containers_uuid_key",
            Self::ContainerName => "containers_project_name_key",
            Self::InstanceId => "instances_pkey",
            Self::HostPort => "port_bookings_port_key",
            Self::ActionRequest => "container_actions_request_key",
            Self::NetworkName => "networks_project_name_key",
            Self::Unrecognised => "",
        }
    }

    /// The columns as SQLite names them in "UNIQUE constraint failed: …".
    fn sqlite_columns(self) -> &'static str {
        match self {
            Self::ContainerId => "containers.uuid",
            Self::ContainerName => "containers.project_id, containers.name",
            Self::InstanceId => "instances.id",
            Self::HostPort => {
                "port_bookings.instance_id, port_bookings.protocol, port_bookings.host_port"
            }
            Self::ActionRequest => "container_actions.container_uuid, container_actions.request_id",
            Self::NetworkName => "networks.project_id, networks.name",
            Self::Unrecognised => "",
        }
    }

    fn identify(err: &dyn DatabaseError) -> Self {
        let sqlite_columns = err
            .message()
            .strip_prefix("UNIQUE constraint failed: ")
            .map(str::trim);
        Self::KNOWN
            .into_iter()
            .find(|key| {
                err.constraint() == Some(key.constraint())
                    || sqlite_columns == Some(key.sqlite_columns())
            })
            .unwrap_or(Self::Unrecognised)
    }
}

impl fmt::Display for UniqueKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ContainerId => "the container uuid",
            Self::ContainerName => "the container name in this project",
            Self::InstanceId => "the instance id",
            Self::HostPort => "the host port on this instance",
            Self::ActionRequest => "the action of this request",
            Self::NetworkName => "the network name in this project",
            Self::Unrecognised => "a unique value",
        })
    }
}

/// Turns an sqlx error into a [`DbError`]: the one place where unique
/// violations become [`DbError::Conflict`]; every other error is kept as
/// [`DbError::Query`] with its cause.
pub(crate) fn classify(err: sqlx::Error) -> DbError {
    let unique = err
        .as_database_error()
        .filter(|db| db.kind() == SqlErrorKind::UniqueViolation)
        .map(UniqueKey::identify);
    match unique {
        Some(what) => DbError::Conflict { what, source: err },
        None => DbError::Query(err),
    }
}

/// Whether a retry may help: pool exhaustion, lost connections, lock
/// contention and serialization failures are `Unavailable`; the rest is
/// `Internal` (a refused constraint that is not uniqueness is a bug here).
fn sqlx_kind(err: &sqlx::Error) -> ErrorKind {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => ErrorKind::Unavailable,
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // PostgreSQL: serialization failure, deadlock, too many
            // connections, cannot connect now, admin shutdown.
            Some("40001" | "40P01" | "53300" | "57P03" | "57P01")
            // SQLite: SQLITE_BUSY, SQLITE_LOCKED (and their extended codes).
            | Some("5" | "6" | "261" | "262" | "517" | "773") => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        },
        _ => ErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_timeouts_are_unavailable_and_the_rest_internal() {
        assert_eq!(
            DbError::Query(sqlx::Error::PoolTimedOut).kind(),
            ErrorKind::Unavailable
        );
        assert_eq!(
            DbError::Query(sqlx::Error::RowNotFound).kind(),
            ErrorKind::Internal
        );
        assert_eq!(
            classify(sqlx::Error::PoolClosed).kind(),
            ErrorKind::Unavailable
        );
    }

    #[test]
    fn every_known_key_has_a_distinct_name_and_columns() {
        for (i, a) in UniqueKey::KNOWN.iter().enumerate() {
            for b in &UniqueKey::KNOWN[i + 1..] {
                assert_ne!(a.constraint(), b.constraint());
                assert_ne!(a.sqlite_columns(), b.sqlite_columns());
            }
        }
    }
}
