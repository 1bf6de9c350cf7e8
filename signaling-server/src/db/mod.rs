//! Storage: the only module that knows SQL. One pool over SQLite (WAL, synchronous=FULL) or
//! PostgreSQL through sqlx's `Any` driver; the queries are written once with `$N` parameters
//! and BIGINT columns so they run unchanged on both. Each backend has its own migrations under
//! `migrations/<backend>/`. Queries live in one file per domain.

pub mod audit;
pub mod channels;
pub mod invites;
pub mod messages;
pub mod moderation;
pub mod read_states;
pub mod search;
pub mod settings;
pub mod tokens;
pub mod users;

use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

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
}

/// Migrations per backend, applied in order, each once.
const SQLITE_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../migrations/sqlite/0002_admin.sql")),
    (3, include_str!("../../migrations/sqlite/0003_search.sql")),
];
const POSTGRES_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (2, include_str!("../../migrations/postgres/0002_admin.sql")),
    (3, include_str!("../../migrations/postgres/0003_search.sql")),
];

impl Db {
    /// Connects (creating the SQLite file if needed) and applies pending migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
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
        let db = Db { pool, backend };
        db.migrate().await?;
        db.backfill_search().await?;
        Ok(db)
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        self.pool
            .execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations \
                 (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
            )
            .await
            .context("creating schema_migrations")?;
        let migrations = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        for &(version, sql) in migrations {
            let mut tx = self.pool.begin().await?;
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some() {
                continue;
            }
            tracing::info!(version, "applying database migration");
            sqlx::raw_sql(sql).execute(&mut *tx).await.with_context(|| format!("migration {version}"))?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
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
