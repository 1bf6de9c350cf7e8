//! The audit log: administrative actions, written in the transaction of the change they
//! record, read newest first by admins.

use hearth_protocol::model::{AuditAction, AuditChange, AuditEntry};
use hearth_protocol::{AuditEntryId, ChannelId, UserId};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::Db;

fn action_name(action: AuditAction) -> String {
    // The wire name (snake case) is also the stored one.
    serde_json::to_value(action).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

fn entry(row: &AnyRow) -> sqlx::Result<AuditEntry> {
    let action: String = row.try_get("action")?;
    let changes: String = row.try_get("changes")?;
    let decode = |what: &str| sqlx::Error::Decode(format!("audit_log: bad {what}").into());
    Ok(AuditEntry {
        id: AuditEntryId(row.try_get("id")?),
        actor_id: UserId(row.try_get("actor_id")?),
        action: serde_json::from_value(serde_json::Value::String(action)).map_err(|_| decode("action"))?,
        target_user_id: row.try_get::<Option<i64>, _>("target_user_id")?.map(UserId),
        target_channel_id: row.try_get::<Option<i64>, _>("target_channel_id")?.map(ChannelId),
        target_invite: row.try_get("target_invite")?,
        changes: serde_json::from_str::<Vec<AuditChange>>(&changes).map_err(|_| decode("changes"))?,
        reason: row.try_get("reason")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Records an entry; call it inside the transaction of the change.
pub async fn insert(conn: &mut AnyConnection, e: &AuditEntry) -> sqlx::Result<()> {
    let changes = serde_json::to_string(&e.changes).map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
    sqlx::query(
        "INSERT INTO audit_log (id, actor_id, action, target_user_id, target_channel_id, target_invite, \
         changes, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(e.id.0)
    .bind(e.actor_id.0)
    .bind(action_name(e.action))
    .bind(e.target_user_id.map(|u| u.0))
    .bind(e.target_channel_id.map(|c| c.0))
    .bind(e.target_invite.clone())
    .bind(changes)
    .bind(e.reason.clone())
    .bind(e.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

impl Db {
    /// A page of the log, newest first, older than `before` when given.
    pub async fn audit_log(&self, before: Option<AuditEntryId>, limit: u32) -> sqlx::Result<Vec<AuditEntry>> {
        sqlx::query(
            "SELECT id, actor_id, action, target_user_id, target_channel_id, target_invite, changes, \
             reason, created_at FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before.map(|b| b.0).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(entry)
        .collect()
    }
}
