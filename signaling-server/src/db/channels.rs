//! Channels: group text and voice channels, DMs and group DMs with their members.

use hearth_protocol::model::{Channel, ChannelKind};
use hearth_protocol::{ChannelId, MessageId, UserId};
use sqlx::{AnyConnection, Row};

use super::{Db, now_ms};

impl Db {
    /// Every channel that was not deleted, private ones with their members and each with its
    /// newest message.
    pub async fn live_channels(&self) -> sqlx::Result<Vec<Channel>> {
        let rows = sqlx::query(
            "SELECT id, kind, name, topic, position, private FROM channels WHERE deleted_at IS NULL \
             ORDER BY position, id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut channels = Vec::with_capacity(rows.len());
        for row in rows {
            let kind: String = row.try_get("kind")?;
            let Some(kind) = ChannelKind::parse(&kind) else {
                tracing::warn!(kind, "skipping channel of unknown kind");
                continue;
            };
            let id = ChannelId(row.try_get("id")?);
            let private = row.try_get::<i64, _>("private")? != 0 || kind.is_direct();
            let members = if private { self.channel_members(id).await? } else { Vec::new() };
            let last: Option<i64> =
                sqlx::query_scalar("SELECT MAX(id) FROM messages WHERE channel_id = $1 AND deleted = 0")
                    .bind(id.0)
                    .fetch_one(&self.pool)
                    .await?;
            channels.push(Channel {
                id,
                kind,
                name: row.try_get("name")?,
                topic: row.try_get("topic")?,
                position: row.try_get::<i64, _>("position")? as i32,
                private: private && !kind.is_direct(),
                members,
                last_message_id: last.map(MessageId),
            });
        }
        Ok(channels)
    }

    pub async fn channel_members(&self, id: ChannelId) -> sqlx::Result<Vec<UserId>> {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT user_id FROM channel_members WHERE channel_id = $1 ORDER BY user_id")
                .bind(id.0)
                .fetch_all(&self.pool)
                .await?;
        Ok(ids.into_iter().map(UserId).collect())
    }

    /// Creates a channel and its member list in one transaction (DMs; group channels are
    /// created with [`insert`] in the transaction of their audit entry).
    pub async fn insert_channel(&self, channel: &Channel) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        insert(&mut tx, channel).await?;
        tx.commit().await
    }
}

/// Creates a channel, and the member list of a private one.
pub async fn insert(conn: &mut AnyConnection, channel: &Channel) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO channels (id, kind, name, topic, position, private, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(channel.id.0)
    .bind(channel.kind.as_str())
    .bind(channel.name.clone())
    .bind(channel.topic.clone())
    .bind(i64::from(channel.position))
    .bind(super::flag(channel.private))
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    set_members(conn, channel.id, &channel.members).await
}

/// Stores a channel's name, topic, position and privacy.
pub async fn update(conn: &mut AnyConnection, channel: &Channel) -> sqlx::Result<()> {
    sqlx::query("UPDATE channels SET name = $1, topic = $2, position = $3, private = $4 WHERE id = $5")
        .bind(channel.name.clone())
        .bind(channel.topic.clone())
        .bind(i64::from(channel.position))
        .bind(super::flag(channel.private))
        .bind(channel.id.0)
        .execute(conn)
        .await?;
    Ok(())
}

/// Replaces a channel's member list.
pub async fn set_members(conn: &mut AnyConnection, id: ChannelId, members: &[UserId]) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM channel_members WHERE channel_id = $1").bind(id.0).execute(&mut *conn).await?;
    for member in members {
        sqlx::query("INSERT INTO channel_members (channel_id, user_id) VALUES ($1, $2)")
            .bind(id.0)
            .bind(member.0)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub async fn set_position(conn: &mut AnyConnection, id: ChannelId, position: i32) -> sqlx::Result<()> {
    sqlx::query("UPDATE channels SET position = $1 WHERE id = $2")
        .bind(i64::from(position))
        .bind(id.0)
        .execute(conn)
        .await?;
    Ok(())
}

/// Channels are deleted softly: their rows stay, but nobody can reach them.
pub async fn delete(conn: &mut AnyConnection, id: ChannelId) -> sqlx::Result<()> {
    sqlx::query("UPDATE channels SET deleted_at = $1 WHERE id = $2")
        .bind(now_ms())
        .bind(id.0)
        .execute(conn)
        .await?;
    Ok(())
}
