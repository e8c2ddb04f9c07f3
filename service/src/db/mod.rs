//! The service's database: the source of truth for desired state
//! (DESIGN.md), on SQLite (the embedded default) or PostgreSQL.
//!
//! This is the only module that speaks SQL or sees sqlx types; callers get
//! domain types and [`DbError`]. One code path serves both backends through
//! sqlx's Any driver: every statement is written once in the SQL both
//! understand (`$n` placeholders, `RETURNING`, TEXT uuids and RFC 3339
//! timestamps, BIGINT/INTEGER numbers), and only the DDL differs, in
//! `migrations/sqlite/` and `migrations/postgres/`, which are embedded in
//! the binary and run by [`Store::connect`].
//!
//! Rules every query here keeps:
//! - status changes are conditional (`… WHERE status = $expected`), so two
//!   concurrent requests cannot both win;
//! - uniqueness (names per project, host ports per instance) is enforced by
//!   the database's constraints, and violations become
//!   [`DbError::Conflict`] through the one helper `error::classify`;
//! - nothing from a request is ever interpolated into SQL: sort columns come
//!   from [`SortKey`], values are bound;
//! - on SQLite, the first statement of a multi-statement transaction
//!   writes, so the transaction takes the write lock at once and waits on
//!   the busy timeout instead of failing to upgrade a read lock.

mod actions;
mod authorities;
mod changes;
mod codec;
mod containers;
mod docker_certificates;
mod error;
mod instances;
mod networks;
mod unreachable;

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};

pub use actions::{ContainerAction, NewAction};
pub use changes::{CHANGE_FEED_CAPACITY, ChangeKind, ContainerChange};
pub use containers::{
    ContainerFilters, ContainerPatch, ListQuery, MAX_LIST_LIMIT, Page, PortBooking, SortDir,
    SortKey,
};
pub use docker_certificates::DockerCertificate;
pub use error::{DbError, UniqueKey};
pub use instances::{InstanceUsage, Usage};
pub use networks::NetworkRemoval;

/// Longest wait for a pooled connection before a query gives up with
/// [`DbError::Query`] (kind `Unavailable`): long enough to ride out a burst,
/// short enough that an API request fails instead of hanging.
pub const DB_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an SQLite connection waits for another writer's lock before
/// failing with `SQLITE_BUSY`. SQLite has one writer at a time, so
/// concurrent writes queue here.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections kept to SQLite: one file, one writer at a time, so a few
/// connections are enough for concurrent readers (WAL) plus a queued writer.
pub const SQLITE_MAX_CONNECTIONS: u32 = 8;

/// Connections kept to PostgreSQL, well under its default
/// `max_connections` (100) so that several services can share a server.
pub const POSTGRES_MAX_CONNECTIONS: u32 = 16;

/// Migrations for SQLite, embedded at build time.
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// Migrations for PostgreSQL, embedded at build time.
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Which database engine a [`Store`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file (WAL mode, foreign keys on).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// The backend a database URL names, from its scheme.
    ///
    /// # Errors
    /// [`DbError::UnsupportedUrl`] for any scheme but `sqlite:`,
    /// `postgres:` and `postgresql:`.
    pub fn from_url(url: &str) -> Result<Self, DbError> {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        match scheme {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            _ => Err(DbError::UnsupportedUrl {
                scheme: scheme.chars().take(32).collect(),
            }),
        }
    }

    fn migrator(self) -> &'static Migrator {
        match self {
            Self::Sqlite => &SQLITE_MIGRATOR,
            Self::Postgres => &POSTGRES_MIGRATOR,
        }
    }
}

/// A handle on the database: a connection pool, cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    changes: changes::ChangeFeed,
}

impl Store {
    /// Opens the database at `url` and brings its schema up to date.
    ///
    /// `url` is `sqlite:///path/nest.db?mode=rwc` (the file is created with
    /// `mode=rwc`) or `postgres://user:password@host/db`. SQLite connections
    /// run in WAL mode with foreign keys on and [`SQLITE_BUSY_TIMEOUT`].
    /// Running the migrations again on an up-to-date database changes
    /// nothing, so every start calls this.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), nest_service::db::DbError> {
    /// let store = nest_service::db::Store::connect("sqlite:///var/lib/nest/nest.db?mode=rwc").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`DbError::UnsupportedUrl`] for another scheme,
    /// [`DbError::Open`] when the database cannot be opened or reached, and
    /// [`DbError::Migrate`] when its schema cannot be brought up to date
    /// (for example, it was written by a newer Nest).
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        let backend = Backend::from_url(url)?;
        // Registers the compiled-in drivers once per process; later calls
        // are no-ops.
        install_default_drivers();
        let options = AnyPoolOptions::new().acquire_timeout(DB_ACQUIRE_TIMEOUT);
        let options = match backend {
            Backend::Sqlite => options
                .max_connections(SQLITE_MAX_CONNECTIONS)
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        // The Any driver only takes a URL, which cannot say
                        // these, so every new connection sets them. WAL lets
                        // readers run beside the writer; journal_mode is
                        // stored in the file, the others are per connection.
                        conn.execute(SQLITE_PRAGMAS).await?;
                        Ok(())
                    })
                }),
            Backend::Postgres => options.max_connections(POSTGRES_MAX_CONNECTIONS),
        };
        let file = (backend == Backend::Sqlite)
            .then(|| sqlite_file(url))
            .flatten();
        if let Some(path) = &file {
            create_private(path).await;
        }
        let pool = options
            .connect(url)
            .await
            .map_err(|source| DbError::Open { backend, source })?;
        if let Some(path) = &file {
            crate::state_dir::warn_if_shared(path, crate::state_dir::PRIVATE_FILE_MODE).await;
        }
        backend
            .migrator()
            .run(&pool)
            .await
            .map_err(|source| DbError::Migrate { backend, source })?;
        Ok(Self {
            pool,
            backend,
            changes: changes::ChangeFeed::new(),
        })
    }

    /// Subscribes to the container changes this process writes (see
    /// [`ContainerChange`]); a receiver that lags is told how much it
    /// missed.
    pub fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<ContainerChange> {
        self.changes.subscribe()
    }

    /// Which engine this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection; queries afterwards fail. Waits for checked
    /// out connections to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Per-connection SQLite settings. `busy_timeout` is in milliseconds and
/// must match [`SQLITE_BUSY_TIMEOUT`] (checked by a unit test).
const SQLITE_PRAGMAS: &str =
    "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;";

/// The current time as Nest stores it: RFC 3339 in UTC with microseconds
/// and a `Z`, always 27 characters, so that text order is time order.
/// Callers that fill `created_at` and similar fields use this too.
pub fn utc_now() -> String {
    format_utc(time::OffsetDateTime::now_utc())
}

pub(crate) fn format_utc(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// The file a `sqlite:` URL names (`sqlite:///var/lib/nest/nest.db?mode=rwc`),
/// or `None` for an in-memory database.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| std::path::PathBuf::from(path))
}

/// Creates a new database file `0600` before SQLite does (it would use the
/// umask, usually `0644`; its WAL and shared-memory files copy the
/// database's mode). An existing file is left as it is; any other failure
/// is SQLite's to report when it opens the file.
async fn create_private(path: &std::path::Path) {
    let created = tokio::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(crate::state_dir::PRIVATE_FILE_MODE)
        .open(path)
        .await;
    if let Err(e) = created
        && e.kind() != std::io::ErrorKind::AlreadyExists
    {
        tracing::debug!(path = %path.display(), error = %e, "could not create the database file ahead of SQLite");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_follows_the_url_scheme() {
        assert_eq!(
            Backend::from_url("sqlite:///tmp/x.db?mode=rwc").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::from_url("postgres://u:p@h/db").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("postgresql://h/db").ok(),
            Some(Backend::Postgres)
        );
        assert!(matches!(
            Backend::from_url("mysql://h/db"),
            Err(DbError::UnsupportedUrl { scheme }) if scheme == "mysql"
        ));
        assert!(Backend::from_url("nonsense").is_err());
        assert_eq!(
            sqlite_file("sqlite:///var/lib/nest/nest.db?mode=rwc"),
            Some(std::path::PathBuf::from("/var/lib/nest/nest.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://h/db"), None);
    }

    #[test]
    fn busy_timeout_pragma_matches_the_constant() {
        let pragma = format!("busy_timeout = {};", SQLITE_BUSY_TIMEOUT.as_millis());
        assert!(SQLITE_PRAGMAS.contains(&pragma), "{SQLITE_PRAGMAS}");
    }

    #[test]
    fn timestamps_have_a_fixed_width_and_sort_as_text() {
        let early = time::OffsetDateTime::UNIX_EPOCH;
        let later = early + time::Duration::new(86_400 * 365 * 40 + 1, 5_000);
        assert_eq!(format_utc(early), "1970-01-01T00:00:00.000000Z");
        assert_eq!(format_utc(later), "2009-12-22T00:00:01.000005Z");
        let now = utc_now();
        assert_eq!(now.len(), 27);
        assert!(format_utc(later) < now);
    }
}
