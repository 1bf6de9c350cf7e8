//! Queries only the operator's tools need (`hearth-server admin`, `backup`, the migration
//! guard): roles set by the operator, owners counted, the schema version.

use hearth_protocol::UserId;
use hearth_protocol::model::Role;

use super::Db;

impl Db {
    pub async fn set_role(&self, id: UserId, role: Role) -> sqlx::Result<bool> {
        let done = sqlx::query("UPDATE users SET role = $1 WHERE id = $2 AND removed_at IS NULL")
            .bind(role.as_str())
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Owners that were not removed.
    pub async fn count_owners(&self) -> sqlx::Result<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'owner' AND removed_at IS NULL")
            .fetch_one(&self.pool)
            .await
    }
}
