//! The databases a test runs on: SQLite always, a fresh PostgreSQL database when
//! `HEARTH_TEST_PG_URL` names an admin URL. Shared by the server's tests and the client
//! engine's (`crates/client/tests/common` includes this file).

/// The database a test server runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// The URL of a fresh database made for this test.
    Postgres(String),
}

/// Makes a fresh PostgreSQL database for one test from `HEARTH_TEST_PG_URL` (an admin URL).
/// Without it: fails under CI (where scripts/test.sh always provides it), skips otherwise.
pub async fn postgres() -> Option<Backend> {
    let Ok(admin) = std::env::var("HEARTH_TEST_PG_URL") else {
        if std::env::var_os("CI").is_some() {
            panic!("HEARTH_TEST_PG_URL is not set; scripts/test.sh starts PostgreSQL and sets it");
        }
        eprintln!("HEARTH_TEST_PG_URL not set: skipping the PostgreSQL run of this test");
        return None;
    };
    sqlx::any::install_default_drivers();
    let name = format!("hearth_test_{:016x}", rand::random::<u64>());
    let pool = sqlx::AnyPool::connect(&admin).await.expect("connecting to the test PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("creating a test database");
    pool.close().await;
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).expect("admin URL has a database");
    Some(Backend::Postgres(format!("{base}/{name}")))
}

/// Runs an async test body once per backend: SQLite always, PostgreSQL when available.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(backend) = $crate::common::postgres().await {
                        super::$name(backend).await
                    }
                }
            )*
        }
    };
}
