//! Refresh tokens, stored hashed, grouped by login ("family").

use hearth_protocol::UserId;
use sqlx::Row;

use super::{Db, now_ms};

/// What a presented refresh token turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum RefreshLookup {
    /// Unknown, expired, or its family was revoked.
    Invalid,
    /// Already spent: someone replayed it. The caller revokes the family.
    Reused { family: String, user_id: UserId },
    /// Valid; now marked spent.
    Fresh { family: String, user_id: UserId },
}

impl Db {
    pub async fn insert_refresh_token(
        &self,
        token_hash: &str,
        family: &str,
        user_id: UserId,
        expires_at: i64,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family, user_id, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash.to_string())
        .bind(family.to_string())
        .bind(user_id.0)
        .bind(expires_at)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Looks a token up and spends it, atomically: of two concurrent uses only one is Fresh.
    pub async fn spend_refresh_token(&self, token_hash: &str) -> sqlx::Result<RefreshLookup> {
        let now = now_ms();
        let Some(row) = sqlx::query(
            "SELECT family, user_id, expires_at, used_at, revoked_at FROM refresh_tokens \
             WHERE token_hash = $1",
        )
        .bind(token_hash.to_string())
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(RefreshLookup::Invalid);
        };
        let family: String = row.try_get("family")?;
        let user_id = UserId(row.try_get("user_id")?);
        if row.try_get::<Option<i64>, _>("revoked_at")?.is_some()
            || row.try_get::<i64, _>("expires_at")? <= now
        {
            return Ok(RefreshLookup::Invalid);
        }
        if row.try_get::<Option<i64>, _>("used_at")?.is_some() {
            return Ok(RefreshLookup::Reused { family, user_id });
        }
        let done =
            sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL")
                .bind(now)
                .bind(token_hash.to_string())
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 1 {
            Ok(RefreshLookup::Fresh { family, user_id })
        } else {
            Ok(RefreshLookup::Reused { family, user_id })
        }
    }

    pub async fn revoke_family(&self, family: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE family = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(family.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Revokes every login of a user except `keep`; returns the families revoked.
    pub async fn revoke_user_families(
        &self,
        user_id: UserId,
        keep: Option<&str>,
    ) -> sqlx::Result<Vec<String>> {
        let families: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT family FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user_id.0)
        .fetch_all(&self.pool)
        .await?;
        let mut revoked = Vec::new();
        for family in families {
            if Some(family.as_str()) == keep {
                continue;
            }
            self.revoke_family(&family).await?;
            revoked.push(family);
        }
        Ok(revoked)
    }

    /// Families revoked since `since_ms`: access tokens issued to them may still be unexpired.
    pub async fn recently_revoked_families(&self, since_ms: i64) -> sqlx::Result<Vec<String>> {
        sqlx::query_scalar("SELECT DISTINCT family FROM refresh_tokens WHERE revoked_at >= $1")
            .bind(since_ms)
            .fetch_all(&self.pool)
            .await
    }
}
