//! Bans (who may not come back) and blocks (between two members).

use hearth_protocol::UserId;
use hearth_protocol::model::Ban;
use sqlx::{AnyConnection, Row};

use super::{Db, now_ms};

/// Records a ban; false when the member was already banned.
pub async fn ban(
    conn: &mut AnyConnection,
    user: UserId,
    reason: Option<&str>,
    by: UserId,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO bans (user_id, reason, banned_by, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(user.0)
    .bind(reason.map(str::to_string))
    .bind(by.0)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Lifts a ban; false when there was none.
pub async fn unban(conn: &mut AnyConnection, user: UserId) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM bans WHERE user_id = $1").bind(user.0).execute(conn).await?;
    Ok(done.rows_affected() == 1)
}

impl Db {
    pub async fn is_banned(&self, user: UserId) -> sqlx::Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bans WHERE user_id = $1")
            .bind(user.0)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    /// Every ban with the banned account, newest first.
    pub async fn bans(&self) -> sqlx::Result<Vec<Ban>> {
        let rows =
            sqlx::query("SELECT user_id, reason, banned_by, created_at FROM bans ORDER BY created_at DESC")
                .fetch_all(&self.pool)
                .await?;
        let mut bans = Vec::with_capacity(rows.len());
        for row in rows {
            let id = UserId(row.try_get("user_id")?);
            // A ban always names an account (accounts are never deleted); skip one that does not.
            let Some(record) = self.user_by_id(id).await? else { continue };
            bans.push(Ban {
                user: record.user,
                reason: row.try_get("reason")?,
                banned_by: UserId(row.try_get("banned_by")?),
                created_at: row.try_get("created_at")?,
            });
        }
        Ok(bans)
    }

    /// Every block, as (blocker, blocked).
    pub async fn blocks(&self) -> sqlx::Result<Vec<(UserId, UserId)>> {
        let rows = sqlx::query("SELECT user_id, blocked_id FROM blocks").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((UserId(r.try_get("user_id")?), UserId(r.try_get("blocked_id")?)))).collect()
    }

    /// Blocks or unblocks; true when something changed.
    pub async fn set_block(&self, blocker: UserId, blocked: UserId, on: bool) -> sqlx::Result<bool> {
        let done = if on {
            sqlx::query(
                "INSERT INTO blocks (user_id, blocked_id, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (user_id, blocked_id) DO NOTHING",
            )
            .bind(blocker.0)
            .bind(blocked.0)
            .bind(now_ms())
            .execute(&self.pool)
            .await?
        } else {
            sqlx::query("DELETE FROM blocks WHERE user_id = $1 AND blocked_id = $2")
                .bind(blocker.0)
                .bind(blocked.0)
                .execute(&self.pool)
                .await?
        };
        Ok(done.rows_affected() == 1)
    }
}
