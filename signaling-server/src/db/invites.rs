//! Invites: codes an admin hands out so that people can register.

use hearth_protocol::UserId;
use hearth_protocol::api::Invite;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Db, now_ms};

fn invite(row: &AnyRow) -> sqlx::Result<Invite> {
    Ok(Invite {
        code: row.try_get("code")?,
        max_uses: row.try_get::<Option<i64>, _>("max_uses")?.map(|n| n as u32),
        uses: row.try_get::<i64, _>("uses")? as u32,
        expires_at: row.try_get("expires_at")?,
        created_by: UserId(row.try_get("created_by")?),
        created_at: row.try_get("created_at")?,
    })
}

impl Db {
    /// Invites that can still be used.
    pub async fn usable_invites(&self) -> sqlx::Result<Vec<Invite>> {
        sqlx::query(
            "SELECT code, created_by, max_uses, uses, expires_at, created_at FROM invites \
             WHERE revoked = 0 AND (expires_at IS NULL OR expires_at > $1) \
             AND (max_uses IS NULL OR uses < max_uses) ORDER BY created_at",
        )
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(invite)
        .collect()
    }

    /// The invite if it can still be used.
    pub async fn usable_invite(&self, code: &str) -> sqlx::Result<Option<Invite>> {
        sqlx::query(
            "SELECT code, created_by, max_uses, uses, expires_at, created_at FROM invites \
             WHERE code = $1 AND revoked = 0 AND (expires_at IS NULL OR expires_at > $2) \
             AND (max_uses IS NULL OR uses < max_uses)",
        )
        .bind(code.to_string())
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?
        .map(|r| invite(&r))
        .transpose()
    }

    /// Uses up one use of an invite inside the registration transaction; false when the
    /// invite is unknown, revoked, expired or used up.
    pub async fn consume_invite<'c, E>(exec: E, code: &str) -> sqlx::Result<bool>
    where
        E: sqlx::Executor<'c, Database = sqlx::Any>,
    {
        let done = sqlx::query(
            "UPDATE invites SET uses = uses + 1 WHERE code = $1 AND revoked = 0 \
             AND (expires_at IS NULL OR expires_at > $2) AND (max_uses IS NULL OR uses < max_uses)",
        )
        .bind(code.to_string())
        .bind(now_ms())
        .execute(exec)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

pub async fn insert(conn: &mut AnyConnection, invite: &Invite) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO invites (code, created_by, max_uses, uses, expires_at, revoked, created_at) \
         VALUES ($1, $2, $3, 0, $4, 0, $5)",
    )
    .bind(invite.code.clone())
    .bind(invite.created_by.0)
    .bind(invite.max_uses.map(i64::from))
    .bind(invite.expires_at)
    .bind(invite.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Revokes an invite; false when there is no such (unrevoked) invite.
pub async fn revoke(conn: &mut AnyConnection, code: &str) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE invites SET revoked = 1 WHERE code = $1 AND revoked = 0")
        .bind(code.to_string())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}
