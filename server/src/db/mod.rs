//! The database: one sqlx pool over SQLite (embedded default) or PostgreSQL, migrations, write transactions.
//!
//! Queries are written once in portable SQL (`$1` placeholders, `RETURNING`); the only dialect
//! differences — schema DDL and how a write transaction runs (its own on PostgreSQL, a savepoint in
//! a group commit on SQLite) — live in this module and in `migrations/<backend>/`.

mod connections;
mod group_commit;

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use app::error::ApiError;
use sqlx::any::{AnyArguments, AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AnyPool, Executor, Transaction};

pub use connections::Conn;
use connections::Connections;
use group_commit::{GroupCommit, GroupWriter};

/// One SQL statement with its values, owning them.
pub(crate) type Statement = Query<'static, Any, AnyArguments<'static>>;

// Migrations applied by a newer release are no obstacle: migrations only add, so a binary rolled
// back runs on its successor's schema (see `Schema::newer`).
static SQLITE_MIGRATIONS: Migrator = Migrator { ignore_missing: true, ..sqlx::migrate!("../migrations/sqlite") };
static POSTGRES_MIGRATIONS: Migrator = Migrator { ignore_missing: true, ..sqlx::migrate!("../migrations/postgres") };

/// Which database engine a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub fn of_url(url: &str) -> Result<Self, String> {
        if url.starts_with("sqlite:") {
            Ok(Dialect::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Dialect::Postgres)
        } else {
            Err(format!("DATABASE_URL must start with sqlite: or postgres:// (got {url:?})"))
        }
    }

    /// The engine behind a connection of the `Any` driver.
    pub fn of_connection(conn: &AnyConnection) -> Self {
        if conn.backend_name() == "PostgreSQL" { Dialect::Postgres } else { Dialect::Sqlite }
    }
}

/// This binary's migrations against the database's schema.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    /// Known to this binary, not applied yet.
    pub pending: Vec<i64>,
    /// Applied by a newer release: this binary runs as a rollback on that release's schema.
    pub newer: Vec<i64>,
}

/// The connection pool and the dialect behind it.
#[derive(Debug, Clone)]
pub struct Db {
    connections: Connections,
    dialect: Dialect,
    /// SQLite allows one writer at a time: its writers queue here, in order, and share durable
    /// commits instead of sleeping on the busy timeout of concurrent `BEGIN IMMEDIATE`s.
    group: Option<GroupCommit>,
}

/// A write transaction: its own on PostgreSQL; on SQLite a savepoint in this process's group
/// transaction, holding the writer slot until it ends. Either way `commit` returns once the change
/// is durable, and dropping it uncommitted undoes the change alone. Service code does not commit
/// it directly: `Store::begin_write` wraps it in an [`crate::audit::AuditedTx`], whose commit
/// requires the audit entry of the change.
pub enum WriteTx {
    Own(Transaction<'static, Any>),
    Grouped(GroupWriter),
}

impl WriteTx {
    /// Runs the write's last statements, in order, to be followed by [`WriteTx::commit`]. On
    /// SQLite they go in one round trip, which also releases this writer's savepoint and opens the
    /// next writer's, which then joins without one; there, once they have run, the change commits
    /// with its group even if dropped.
    pub(crate) async fn execute_last<'q>(
        &mut self,
        statements: Vec<Query<'q, Any, AnyArguments<'q>>>,
    ) -> Result<(), sqlx::Error> {
        match self {
            WriteTx::Own(tx) => {
                for statement in statements {
                    statement.execute(&mut **tx).await?;
                }
                Ok(())
            }
            WriteTx::Grouped(writer) => writer.execute_last(statements).await,
        }
    }

    pub(crate) async fn commit(self) -> Result<(), ApiError> {
        match self {
            WriteTx::Own(tx) => tx.commit().await,
            WriteTx::Grouped(writer) => writer.commit().await,
        }
        .map_err(ApiError::from)
    }
}

impl Deref for WriteTx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match self {
            WriteTx::Own(tx) => tx,
            WriteTx::Grouped(writer) => writer,
        }
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            WriteTx::Own(tx) => tx,
            WriteTx::Grouped(writer) => writer,
        }
    }
}

impl Db {
    /// Connects, creating the SQLite file (and its folder) when needed.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, sqlx::Error> {
        install_default_drivers();
        let dialect = Dialect::of_url(url).map_err(|e| sqlx::Error::Configuration(e.into()))?;
        let url = match dialect {
            Dialect::Sqlite => prepare_sqlite_url(url)?,
            Dialect::Postgres => url.to_string(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            // A SQLite connection is a file handle in this process: it cannot go stale the way a
            // socket can, so the round trip of a ping on every checkout is skipped.
            .test_before_acquire(dialect == Dialect::Postgres)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // Temporary storage in memory: a group transaction's savepoints keep the
                        // pages they change in a sub-journal, which would otherwise spill to a
                        // temporary file created and deleted for nearly every group (it is only
                        // for rolling a savepoint back; durability is the WAL's).
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY; \
                             PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        let connections = Connections::new(pool, dialect == Dialect::Sqlite);
        let group = (dialect == Dialect::Sqlite).then(|| GroupCommit::new(connections.clone()));
        Ok(Self { connections, dialect, group })
    }

    fn migrator(&self) -> &'static Migrator {
        match self.dialect {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies this binary's migrations the database lacks (on PostgreSQL under an advisory lock,
    /// so concurrent runs apply each once).
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        self.migrator().run(self.pool()).await
    }

    /// This binary's migrations against those the database has applied.
    pub async fn schema(&self) -> Result<Schema, sqlx::Error> {
        let applied: Vec<i64> =
            match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(self.pool()).await
            {
                Ok(applied) => applied,
                // No bookkeeping table yet: nothing is applied.
                Err(sqlx::Error::Database(e))
                    if e.code().as_deref() == Some("42P01") || e.message().contains("no such table") =>
                {
                    Vec::new()
                }
                Err(e) => return Err(e),
            };
        let known: Vec<i64> = self.migrator().iter().map(|m| m.version).collect();
        Ok(Schema {
            pending: known.iter().copied().filter(|v| !applied.contains(v)).collect(),
            newer: applied.iter().copied().filter(|v| !known.contains(v)).collect(),
        })
    }

    /// Waits, polling every `every`, until the database holds every migration of this binary
    /// (applied by `modelgate migrate`, e.g. a Kubernetes Job), logging what it waits for once.
    pub async fn wait_for_migrations(&self, every: Duration) -> Result<Schema, sqlx::Error> {
        let mut told = false;
        loop {
            let schema = self.schema().await?;
            if schema.pending.is_empty() {
                return Ok(schema);
            }
            if !told {
                tracing::info!(pending = ?schema.pending, "waiting for `modelgate migrate` to apply migrations");
                told = true;
            }
            tokio::time::sleep(every).await;
        }
    }

    /// The pool itself, for one-off statements at startup and in tests; requests check
    /// connections out with [`Db::read`] and [`Db::begin_write`].
    pub fn pool(&self) -> &AnyPool {
        self.connections.pool()
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Starts a transaction that will write. On SQLite it joins the group transaction, which
    /// takes the write lock up front (`BEGIN IMMEDIATE`), so another process's writers wait on the
    /// busy timeout instead of failing when a read lock cannot be upgraded.
    pub(crate) async fn begin_write(&self) -> Result<WriteTx, ApiError> {
        match &self.group {
            Some(group) => group.join().await.map(WriteTx::Grouped),
            None => self.pool().begin().await.map(WriteTx::Own),
        }
        .map_err(ApiError::from)
    }

    /// A connection for reads.
    pub(crate) async fn read(&self) -> Result<Conn, ApiError> {
        self.connections.take().await.map_err(ApiError::from)
    }

    pub async fn close(&self) {
        self.connections.close().await;
    }
}

/// Makes sure the folder of a SQLite file exists and that the file is created on first use.
fn prepare_sqlite_url(url: &str) -> Result<String, sqlx::Error> {
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
    if let Some(dir) = opts.get_filename().parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            sqlx::Error::Configuration(format!("cannot create {}: {e}", Path::new(dir).display()).into())
        })?;
    }
    Ok(if url.contains('?') { url.to_string() } else { format!("{url}?mode=rwc") })
}

/// Maps constraint violations to client errors, so races are decided by the database.
pub trait DbResultExt<T> {
    /// A unique-constraint violation becomes `f()`; any other error is internal.
    fn on_unique_violation(self, f: impl FnOnce() -> ApiError) -> Result<T, ApiError>;
}

impl<T> DbResultExt<T> for Result<T, sqlx::Error> {
    fn on_unique_violation(self, f: impl FnOnce() -> ApiError) -> Result<T, ApiError> {
        match self {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(f()),
            other => other.map_err(ApiError::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::AnyConnection;

    use super::Db;

    /// What a connection is set to: journal mode, synchronous level, temporary storage, foreign keys.
    async fn settings(conn: &mut AnyConnection) -> (String, i64, i64, i64) {
        let mut number =
            async |pragma: &str| -> i64 { sqlx::query_scalar(pragma).fetch_one(&mut *conn).await.unwrap() };
        let (synchronous, temp_store, foreign_keys) = (
            number("PRAGMA synchronous").await,
            number("PRAGMA temp_store").await,
            number("PRAGMA foreign_keys").await,
        );
        let journal = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut *conn).await.unwrap();
        (journal, synchronous, temp_store, foreign_keys)
    }

    /// Readers and the writer alike: WAL with `synchronous=FULL` (2) as the durability baseline
    /// asks, foreign keys enforced, and temporary storage in memory (2) so a group's savepoints
    /// never spill to a temporary file.
    #[tokio::test]
    async fn every_sqlite_connection_is_durable_and_keeps_temporary_storage_in_memory() {
        let dir = std::env::temp_dir().join(format!("modelgate-db-{}", uuid::Uuid::new_v4()));
        let db = Db::connect(&format!("sqlite:{}", dir.join("db.sqlite").display()), 4).await.unwrap();
        let expected = ("wal".to_string(), 2, 2, 1);
        let (mut first, mut second) = (db.read().await.unwrap(), db.read().await.unwrap());
        assert_eq!(settings(&mut first).await, expected, "a reader");
        assert_eq!(settings(&mut second).await, expected, "another reader");
        drop((first, second));
        let mut writer = db.begin_write().await.unwrap();
        assert_eq!(settings(&mut writer).await, expected, "the writer");
        drop(writer);
        db.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A fresh database lacks every migration; once migrated it lacks none; a migration applied
    /// by a newer release is reported as such and does not stop this binary migrating again.
    #[tokio::test]
    async fn the_schema_reports_pending_and_newer_migrations() {
        let (db, dir) = scratch(2).await;
        let fresh = db.schema().await.unwrap();
        assert_eq!(fresh.pending.len(), super::SQLITE_MIGRATIONS.iter().count());
        assert!(fresh.newer.is_empty());
        db.migrate().await.unwrap();
        assert_eq!(db.schema().await.unwrap(), super::Schema::default());
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99990001, 'from a newer release', TRUE, x'00', 1)",
        )
        .execute(db.pool())
        .await
        .unwrap();
        db.migrate().await.expect("a rolled-back binary migrates on its successor's schema");
        assert_eq!(db.schema().await.unwrap(), super::Schema { pending: vec![], newer: vec![99990001] });
        db.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Migrations from 0023 on only add (tables, columns, indexes), so the release before them
    /// keeps running on their schema during a rolling update and after a rollback of the binary.
    #[test]
    fn new_migrations_only_add() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        for backend in ["sqlite", "postgres"] {
            for entry in std::fs::read_dir(root.join(backend)).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if name.as_str() < "0023" {
                    continue;
                }
                let sql = std::fs::read_to_string(&path).unwrap().to_uppercase();
                for destructive in ["DROP TABLE", "DROP COLUMN", "RENAME ", "ALTER COLUMN", "TRUNCATE"] {
                    assert!(!sql.contains(destructive), "{backend}/{name} has {destructive}: migrations only add");
                }
            }
        }
    }

    async fn scratch(max_connections: u32) -> (Db, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("modelgate-db-{}", uuid::Uuid::new_v4()));
        let db = Db::connect(&format!("sqlite:{}", dir.join("db.sqlite").display()), max_connections).await.unwrap();
        (db, dir)
    }

    /// Creates the temporary table `mark` on the writer's connection.
    async fn mark_the_writers_connection(db: &Db) {
        let mut writer = db.begin_write().await.unwrap();
        sqlx::query("CREATE TEMP TABLE mark (x)").execute(&mut *writer).await.unwrap();
        writer.commit().await.unwrap();
    }

    /// Whether the connection has the temporary table `mark`, which only the connection that
    /// created it sees.
    async fn marked(conn: &mut AnyConnection) -> bool {
        let found: i64 = sqlx::query_scalar("SELECT count(*) FROM temp.sqlite_master WHERE name = 'mark'")
            .fetch_one(conn)
            .await
            .unwrap();
        found == 1
    }

    /// The writer keeps its connection between groups — so its page cache, which SQLite empties
    /// when another connection writes, and its prepared statements stay — even after readers
    /// handed connections back since, and readers get the others.
    #[tokio::test]
    async fn the_writer_keeps_its_own_connection_between_groups() {
        let (db, dir) = scratch(4).await;
        mark_the_writers_connection(&db).await;
        let mut readers = vec![db.read().await.unwrap(), db.read().await.unwrap(), db.read().await.unwrap()];
        for reader in &mut readers {
            assert!(!marked(reader).await, "a reader got the writer's connection while others were free");
        }
        drop(readers);
        let mut writer = db.begin_write().await.unwrap();
        assert!(marked(&mut writer).await, "the next group opened on another connection");
        writer.commit().await.unwrap();
        db.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A checkout waiting on the pool is served once the others are handed back: the writer's own
    /// connection counts among those kept in front of the pool, so the last one goes back to it.
    #[tokio::test]
    async fn a_checkout_waiting_on_the_pool_is_served_once_the_others_are_handed_back() {
        let (db, dir) = scratch(2).await;
        let writer = db.begin_write().await.unwrap();
        let reader = db.read().await.unwrap();
        let waiting = tokio::spawn({
            let db = db.clone();
            async move { db.read().await.map(drop) }
        });
        writer.commit().await.unwrap();
        drop(reader);
        let served = tokio::time::timeout(std::time::Duration::from_secs(2), waiting).await;
        assert!(matches!(served, Ok(Ok(Ok(())))), "the waiting checkout was not served: {served:?}");
        db.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// With every other connection in use, a reader gets the writer's while no group is open
    /// instead of waiting for the pool, and the writer takes another meanwhile.
    #[tokio::test]
    async fn a_reader_borrows_the_writers_connection_when_the_pool_has_no_other() {
        let (db, dir) = scratch(2).await;
        mark_the_writers_connection(&db).await;
        let mut first = db.read().await.unwrap();
        assert!(!marked(&mut first).await, "the first reader got the writer's connection while another was free");
        let started = std::time::Instant::now();
        let mut second = db.read().await.unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "the reader waited for the pool");
        assert!(marked(&mut second).await, "the second reader did not get the writer's connection");
        drop(first);
        let mut writer = db.begin_write().await.unwrap();
        assert!(!marked(&mut writer).await);
        writer.commit().await.unwrap();
        drop(second);
        db.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }
}
