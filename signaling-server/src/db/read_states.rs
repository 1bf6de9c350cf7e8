//! How far each user has read each channel, and what waits for them.

use hearth_protocol::model::ReadState;
use hearth_protocol::{ChannelId, MessageId, UserId};

use super::Db;

/// Unread counts stop here: a badge says "999+", not an exact number.
pub const UNREAD_CAP: i64 = 1000;

impl Db {
    pub async fn read_marker(&self, user: UserId, channel: ChannelId) -> sqlx::Result<Option<MessageId>> {
        let id: Option<i64> =
            sqlx::query_scalar("SELECT last_read_id FROM read_states WHERE user_id = $1 AND channel_id = $2")
                .bind(user.0)
                .bind(channel.0)
                .fetch_optional(&self.pool)
                .await?;
        Ok(id.map(MessageId))
    }

    /// Moves the marker forward (never back).
    pub async fn mark_read(&self, user: UserId, channel: ChannelId, message: MessageId) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO read_states (user_id, channel_id, last_read_id) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, channel_id) DO UPDATE SET last_read_id = excluded.last_read_id \
             WHERE read_states.last_read_id < excluded.last_read_id",
        )
        .bind(user.0)
        .bind(channel.0)
        .bind(message.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The read state of one channel. A user who never read a channel has read everything
    /// that came before they joined (their id and message ids share one clock).
    pub async fn read_state(
        &self,
        user: UserId,
        channel: ChannelId,
        is_dm: bool,
        last_message: Option<MessageId>,
    ) -> sqlx::Result<ReadState> {
        let marker = self.read_marker(user, channel).await?;
        let since = marker.map(|m| m.0).unwrap_or(user.0);
        let (unread, mentions) = if last_message.is_none_or(|m| m.0 <= since) {
            (0, 0)
        } else {
            let unread: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT 1 FROM messages WHERE channel_id = $1 AND id > $2 \
                 AND author_id <> $3 AND deleted = 0 LIMIT $4) AS waiting",
            )
            .bind(channel.0)
            .bind(since)
            .bind(user.0)
            .bind(UNREAD_CAP)
            .fetch_one(&self.pool)
            .await?;
            let mentions: i64 = if is_dm {
                unread
            } else {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM mentions m JOIN messages g ON g.id = m.message_id \
                     WHERE m.user_id = $1 AND m.channel_id = $2 AND m.message_id > $3 AND g.deleted = 0 \
                     LIMIT $4) AS waiting",
                )
                .bind(user.0)
                .bind(channel.0)
                .bind(since)
                .bind(UNREAD_CAP)
                .fetch_one(&self.pool)
                .await?
            };
            (unread, mentions)
        };
        Ok(ReadState {
            channel_id: channel,
            last_read: marker,
            unread_count: unread as u32,
            mention_count: mentions as u32,
        })
    }
}
