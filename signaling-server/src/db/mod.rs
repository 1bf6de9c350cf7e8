//! Storage: the only module that knows SQL. One pool over SQLite (WAL, synchronous=FULL) or
//! PostgreSQL through sqlx's `Any` driver; the queries are written once with `$N` parameters
//! and BIGINT columns so they run unchanged on both. Each backend has its own migrations under
//! `migrations/<backend>/`. Queries live in one file per domain.

pub mod attachments;
pub mod audit;
pub mod channels;
pub mod cluster;
pub mod invites;
pub mod messages;
pub mod moderation;
pub mod read_states;
pub mod search;
pub mod settings;
pub mod tokens;
pub mod users;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyConnection, AnyPool, Executor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A cheap-to-clone handle on the database.
#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// The URL it was opened with (`pg_dump` needs it for backups).
    pub url: Arc<str>,
}

/// What to do before applying migrations to a database that already holds a group.
#[derive(Debug, Clone)]
pub enum BeforeMigrating {
    /// Nothing (tests, benches, a fresh database).
    Nothing,
    /// Take a full backup under `DATA_DIR/backups/` first (the server and the admin tools).
    Backup { dirs: crate::backup::Dirs },
}

/// The database was last used by a newer `hearth-server`: its schema has migrations this one
/// does not know, so this one must not touch it.
#[derive(Debug, thiserror::Error)]
#[error(
    "the database was last used by a newer hearth-server (its schema is at version {found}; this \
     hearth-server {ours} knows versions up to {known}). Starting would risk the group's data, so \
     it stops here. Run the newer hearth-server again, or restore the backup taken before the \
     upgrade (see `hearth-server restore --help`; automatic ones are in DATA_DIR/backups/)",
    ours = env!("CARGO_PKG_VERSION")
)]
pub struct NewerDatabase {
    pub found: i64,
    pub known: i64,
}

/// Migrations per backend, applied in order, each once.
pub(crate) const SQLITE_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../migrations/sqlite/0002_admin.sql")),
    (3, include_str!("../../migrations/sqlite/0003_search.sql")),
    (4, include_str!("../../migrations/sqlite/0004_attachments.sql")),
];
pub(crate) const POSTGRES_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (2, include_str!("../../migrations/postgres/0002_admin.sql")),
    (3, include_str!("../../migrations/postgres/0003_search.sql")),
    (4, include_str!("../../migrations/postgres/0004_cluster.sql")),
    (5, include_str!("../../migrations/postgres/0005_attachments.sql")),
];

impl Db {
    /// Connects (creating the SQLite file if needed) and applies pending migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        Self::open(url, BeforeMigrating::Nothing).await
    }

    /// Connects and applies pending migrations, with `before` done first when there are any
    /// and the database already holds a group.
    pub async fn open(url: &str, before: BeforeMigrating) -> anyhow::Result<Db> {
        let db = Self::connect_only(url).await?;
        db.migrate(before).await?;
        // Messages stored before the search index existed (or by an older build) get indexed.
        db.backfill_search().await?;
        Ok(db)
    }

    /// Connects without looking at the schema (restore, backup of another version's data).
    pub async fn connect_only(url: &str) -> anyhow::Result<Db> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
        let pool = match backend {
            Backend::Sqlite => {
                let url = if url.contains('?') { url.to_string() } else { format!("{url}?mode=rwc") };
                AnyPoolOptions::new()
                    // SQLite serialises writers anyway; a few connections serve concurrent reads.
                    .max_connections(4)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            // WAL lets readers run beside the writer; synchronous=FULL makes a
                            // commit durable before we acknowledge it; the busy timeout turns
                            // writer contention into waiting rather than errors.
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = FULL").await?;
                            conn.execute("PRAGMA busy_timeout = 10000").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await
                    .context("opening SQLite database")?
            }
            Backend::Postgres => AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .context("connecting to PostgreSQL")?,
        };
        Ok(Db { pool, backend, url: url.into() })
    }

    /// The migrations this build knows for this backend, in order.
    fn known_migrations(&self) -> &'static [(i64, &'static str)] {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        }
    }

    /// The newest schema version this build knows.
    pub fn known_schema_version(&self) -> i64 {
        self.known_migrations().last().map_or(0, |m| m.0)
    }

    /// The versions applied so far (none on a fresh database).
    pub async fn applied_migrations(&self) -> anyhow::Result<Vec<i64>> {
        let mut conn = self.pool.acquire().await?;
        applied(&mut conn, self.backend).await
    }

    /// Applies what is pending, all of it in one transaction under an exclusive lock (SQLite
    /// `BEGIN IMMEDIATE`, a PostgreSQL advisory lock), so that the schema is either wholly at the
    /// old version or wholly at the new one, and two processes starting at once cannot both
    /// migrate. Refuses a database newer than this build ([`NewerDatabase`]).
    async fn migrate(&self, before: BeforeMigrating) -> anyhow::Result<()> {
        let known = self.known_migrations();
        let latest = self.known_schema_version();
        let done = self.applied_migrations().await?;
        if let Some(&found) = done.iter().max()
            && found > latest
        {
            return Err(NewerDatabase { found, known: latest }.into());
        }
        if known.iter().all(|(v, _)| done.contains(v)) {
            return Ok(());
        }
        if let (false, BeforeMigrating::Backup { dirs }) = (done.is_empty(), &before) {
            let from = done.iter().max().copied().unwrap_or(0);
            let dir = crate::backup::before_migration(self, dirs, from, latest)
                .await
                .context("taking a backup before upgrading the database (nothing was changed)")?;
            tracing::info!(backup = %dir.display(), from, to = latest, "backup taken before upgrading the database");
        }
        let mut conn = self.pool.acquire().await?;
        let begin = match self.backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        conn.execute(begin).await.context("locking the database for migrations")?;
        let result = apply_pending(&mut conn, self.backend, known).await;
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        if let Err(e) = conn.execute(end).await {
            // The connection's state is unknown: do not hand it back to the pool.
            drop(conn.detach());
            return Err(anyhow::Error::new(e).context(format!("{end} of the migrations")));
        }
        result
    }

    /// The largest id stored anywhere, so new ids start above it.
    pub async fn max_id(&self) -> sqlx::Result<i64> {
        let mut max = 0;
        for sql in [
            "SELECT MAX(id) FROM users",
            "SELECT MAX(id) FROM channels",
            "SELECT MAX(id) FROM messages",
            "SELECT MAX(id) FROM audit_log",
        ] {
            let id: Option<i64> = sqlx::query_scalar(sql).fetch_one(&self.pool).await?;
            max = max.max(id.unwrap_or(0));
        }
        Ok(max)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn get_meta(&self, key: &str) -> sqlx::Result<Option<String>> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key.to_string())
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn set_meta(&self, key: &str, value: &str) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key.to_string())
        .bind(value.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_meta(&self, key: &str) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM meta WHERE key = $1").bind(key.to_string()).execute(&self.pool).await?;
        Ok(())
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// 0/1 flags, stored as BIGINT on both backends.
pub fn flag(b: bool) -> i64 {
    b as i64
}

const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations \
     (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)";

async fn applied(conn: &mut AnyConnection, backend: Backend) -> anyhow::Result<Vec<i64>> {
    let exists: i64 = match backend {
        Backend::Sqlite => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
            )
            .fetch_one(&mut *conn)
            .await?
        }
        Backend::Postgres => {
            sqlx::query_scalar("SELECT COUNT(*) FROM pg_tables WHERE tablename = 'schema_migrations'")
                .fetch_one(&mut *conn)
                .await?
        }
    };
    if exists == 0 {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
        .fetch_all(&mut *conn)
        .await
        .context("reading schema_migrations")
}

/// Inside the migration transaction: takes the lock, looks again at what is applied (another
/// process may have migrated meanwhile), applies the rest in order.
async fn apply_pending(
    conn: &mut AnyConnection,
    backend: Backend,
    known: &[(i64, &'static str)],
) -> anyhow::Result<()> {
    if backend == Backend::Postgres {
        // Held until the transaction ends; the number is arbitrary but fixed ("hearth").
        sqlx::query("SELECT pg_advisory_xact_lock(4846617274)").execute(&mut *conn).await?;
    }
    conn.execute(CREATE_MIGRATIONS_TABLE).await.context("creating schema_migrations")?;
    let done = applied(conn, backend).await?;
    for &(version, sql) in known {
        if done.contains(&version) {
            continue;
        }
        tracing::info!(version, "applying database migration");
        sqlx::raw_sql(sql).execute(&mut *conn).await.with_context(|| format!("migration {version}"))?;
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(version)
            .bind(now_ms())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The SQLite file a `sqlite:` URL names (`sqlite://PATH`, `sqlite:PATH`, options stripped).
pub fn sqlite_path(url: &str) -> Option<&Path> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| Path::new(path))
}
