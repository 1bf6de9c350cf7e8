//! Channels: group text and voice channels, DMs and group DMs with their members.

use hearth_protocol::model::{Channel, ChannelKind};
use hearth_protocol::{ChannelId, MessageId, UserId};
use sqlx::Row;

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

    /// Creates a channel, and its member list for private ones, in one transaction.
    pub async fn insert_channel(&self, channel: &Channel) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
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
        .execute(&mut *tx)
        .await?;
        for member in &channel.members {
            sqlx::query("INSERT INTO channel_members (channel_id, user_id) VALUES ($1, $2)")
                .bind(channel.id.0)
                .bind(member.0)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    pub async fn update_channel(&self, id: ChannelId, name: &str, position: i32) -> sqlx::Result<()> {
        sqlx::query("UPDATE channels SET name = $1, position = $2 WHERE id = $3")
            .bind(name.to_string())
            .bind(i64::from(position))
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Channels are deleted softly: their rows stay, but nobody can reach them.
    pub async fn delete_channel(&self, id: ChannelId) -> sqlx::Result<()> {
        sqlx::query("UPDATE channels SET deleted_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
