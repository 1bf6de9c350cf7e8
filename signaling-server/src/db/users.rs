//! Accounts.

use hearth_protocol::UserId;
use hearth_protocol::model::{Role, User};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, now_ms};

/// An account as stored, secrets included; never sent to clients as is.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub user: User,
    pub password_hash: String,
    pub removed: bool,
}

const COLUMNS: &str = "id, username, display_name, avatar, role, password_hash, removed_at";

fn record(row: &AnyRow) -> sqlx::Result<UserRecord> {
    Ok(UserRecord {
        user: User {
            id: UserId(row.try_get("id")?),
            username: row.try_get("username")?,
            display_name: row.try_get("display_name")?,
            avatar: row.try_get("avatar")?,
            role: {
                let role: String = row.try_get("role")?;
                Role::parse(&role)
                    .ok_or_else(|| sqlx::Error::Decode(format!("unknown role {role:?}").into()))?
            },
        },
        password_hash: row.try_get("password_hash")?,
        removed: row.try_get::<Option<i64>, _>("removed_at")?.is_some(),
    })
}

/// Usernames are unique without regard to case.
pub fn username_key(username: &str) -> String {
    username.to_lowercase()
}

impl Db {
    pub async fn count_users(&self) -> sqlx::Result<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await
    }

    /// Inserts an account; `Ok(false)` when the username is taken.
    pub async fn insert_user<'c, E>(&self, exec: E, user: &User, password_hash: &str) -> sqlx::Result<bool>
    where
        E: sqlx::Executor<'c, Database = sqlx::Any>,
    {
        let done = sqlx::query(
            "INSERT INTO users (id, username, username_key, display_name, password_hash, avatar, \
             role, created_at) VALUES ($1, $2, $3, $4, $5, NULL, $6, $7) \
             ON CONFLICT (username_key) DO NOTHING",
        )
        .bind(user.id.0)
        .bind(user.username.clone())
        .bind(username_key(&user.username))
        .bind(user.display_name.clone())
        .bind(password_hash.to_string())
        .bind(user.role.as_str())
        .bind(now_ms())
        .execute(exec)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn user_by_username(&self, username: &str) -> sqlx::Result<Option<UserRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE username_key = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(username_key(username))
            .fetch_optional(&self.pool)
            .await?
            .map(|r| record(&r))
            .transpose()
    }

    pub async fn user_by_id(&self, id: UserId) -> sqlx::Result<Option<UserRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| record(&r))
            .transpose()
    }

    /// Every account that was not removed, in order of joining.
    pub async fn active_users(&self) -> sqlx::Result<Vec<User>> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE removed_at IS NULL ORDER BY id");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| record(r).map(|u| u.user))
            .collect()
    }

    pub async fn set_display_name(&self, id: UserId, name: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE users SET display_name = $1 WHERE id = $2")
            .bind(name.to_string())
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_avatar(&self, id: UserId, avatar: Option<&str>) -> sqlx::Result<()> {
        sqlx::query("UPDATE users SET avatar = $1 WHERE id = $2")
            .bind(avatar.map(str::to_string))
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_password_hash(&self, id: UserId, hash: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash.to_string())
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Sets a member's role (inside the transaction of the change).
pub async fn set_role(conn: &mut sqlx::AnyConnection, id: UserId, role: Role) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
        .bind(role.as_str())
        .bind(id.0)
        .execute(conn)
        .await?;
    Ok(())
}

/// How many current members are owners (inside a transaction, so the last owner is never
/// demoted or removed by two changes at once).
pub async fn owner_count(conn: &mut sqlx::AnyConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'owner' AND removed_at IS NULL")
        .fetch_one(conn)
        .await
}

/// Removes a member from the group (kick or ban): the row stays so their messages keep an
/// author; they leave every private group channel. False when they were already removed.
pub async fn remove(conn: &mut sqlx::AnyConnection, id: UserId) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE users SET removed_at = $1 WHERE id = $2 AND removed_at IS NULL")
        .bind(now_ms())
        .bind(id.0)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "DELETE FROM channel_members WHERE user_id = $1 AND channel_id IN \
         (SELECT id FROM channels WHERE private = 1)",
    )
    .bind(id.0)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Brings a removed member back (they registered again with a new invite): a member again,
/// under `display_name`.
pub async fn restore(conn: &mut sqlx::AnyConnection, id: UserId, display_name: &str) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE users SET removed_at = NULL, role = 'member', display_name = $1 \
         WHERE id = $2 AND removed_at IS NOT NULL",
    )
    .bind(display_name.to_string())
    .bind(id.0)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
