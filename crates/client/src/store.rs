//! The local SQLite cache of one account (WAL): messages per channel, channels, members, read
//! states, and the outbox of messages not yet acknowledged, which survives restarts.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use hearth_protocol::gateway::{Event, Ready};
use hearth_protocol::model::{Channel, Message, Reaction, ReadState, User};
use hearth_protocol::{ApiError, AttachmentId, ChannelId, MessageId, UserId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::error::{Error, Result};

/// Migrations in order; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_cache.sql"),
    include_str!("../migrations/0002_outbox_attachments.sql"),
];

/// Whether an outbox row is still to be delivered or was refused for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    Pending,
    Failed,
}

/// A message the user wrote that the server has not acknowledged yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct OutboxEntry {
    pub nonce: String,
    pub channel_id: ChannelId,
    pub content: String,
    pub reply_to: Option<MessageId>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub state: OutboxState,
    /// Why it failed, when it did.
    pub error: Option<ApiError>,
    /// Finished uploads sent with the message, in order.
    #[serde(default)]
    pub attachments: Vec<AttachmentId>,
}

/// A cheap-clone handle on the cache (a connection pool inside).
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the cache at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL loses nothing on an application crash, only on power loss.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        let store = Store { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// A throwaway cache in memory (one connection, so every query sees the same database).
    pub async fn in_memory() -> Result<Store> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?;
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
        let store = Store { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        let done: i64 = sqlx::query("PRAGMA user_version").fetch_one(&mut *conn).await?.try_get(0)?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done.max(0) as usize) {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql)).execute(&mut *tx).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PRAGMA user_version = {}", i + 1)))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---- Messages ----

    pub async fn upsert_message(&self, m: &Message) -> Result<()> {
        sqlx::query(
            "INSERT INTO messages (id, channel_id, body) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET body = excluded.body",
        )
        .bind(m.id.0)
        .bind(m.channel_id.0)
        .bind(to_json(m)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn upsert_messages(&self, messages: &[Message]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for m in messages {
            sqlx::query(
                "INSERT INTO messages (id, channel_id, body) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body",
            )
            .bind(m.id.0)
            .bind(m.channel_id.0)
            .bind(to_json(m)?)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_message(&self, channel: ChannelId, id: MessageId) -> Result<()> {
        sqlx::query("DELETE FROM messages WHERE id = $1 AND channel_id = $2")
            .bind(id.0)
            .bind(channel.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Drops every cached message older than `before` (the server's retention deleted them).
    pub async fn purge_messages_before(&self, before: MessageId) -> Result<()> {
        sqlx::query("DELETE FROM messages WHERE id < $1").bind(before.0).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn message(&self, id: MessageId) -> Result<Option<Message>> {
        let row = sqlx::query("SELECT body FROM messages WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| from_json(&r.try_get::<String, _>(0)?)).transpose()
    }

    /// Up to `limit` cached messages of `channel` older than `before` (or the newest), newest
    /// first, as the server's history pages are.
    pub async fn history(
        &self,
        channel: ChannelId,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<Message>> {
        let rows = sqlx::query(
            "SELECT body FROM messages WHERE channel_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(channel.0)
        .bind(before.map_or(i64::MAX, |b| b.0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| from_json(&r.try_get::<String, _>(0)?)).collect()
    }

    /// Up to `limit` cached messages of `channel` newer than `after`, oldest first (a page
    /// towards the present after a jump).
    pub async fn history_after(
        &self,
        channel: ChannelId,
        after: MessageId,
        limit: u32,
    ) -> Result<Vec<Message>> {
        let rows = sqlx::query(
            "SELECT body FROM messages WHERE channel_id = $1 AND id > $2 ORDER BY id ASC LIMIT $3",
        )
        .bind(channel.0)
        .bind(after.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| from_json(&r.try_get::<String, _>(0)?)).collect()
    }

    /// The newest cached message of `channel`.
    pub async fn newest_message(&self, channel: ChannelId) -> Result<Option<MessageId>> {
        let row = sqlx::query("SELECT MAX(id) FROM messages WHERE channel_id = $1")
            .bind(channel.0)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?.map(MessageId))
    }

    async fn change_reactions(&self, message: MessageId, user: UserId, emoji: &str, add: bool) -> Result<()> {
        let Some(mut m) = self.message(message).await? else {
            return Ok(());
        };
        match m.reactions.iter_mut().find(|r| r.emoji == emoji) {
            Some(r) if add && !r.users.contains(&user) => r.users.push(user),
            Some(_) if add => {}
            Some(r) => r.users.retain(|u| *u != user),
            None if add => m.reactions.push(Reaction { emoji: emoji.to_string(), users: vec![user] }),
            None => {}
        }
        m.reactions.retain(|r| !r.users.is_empty());
        self.upsert_message(&m).await
    }

    /// The id from which every message of `channel` up to the newest is cached (`MessageId(0)`:
    /// all of it), if known.
    pub async fn synced_from(&self, channel: ChannelId) -> Result<Option<MessageId>> {
        let row = sqlx::query("SELECT oldest FROM channel_sync WHERE channel_id = $1")
            .bind(channel.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<i64, _>(0)).transpose()?.map(MessageId))
    }

    pub async fn set_synced_from(&self, channel: ChannelId, oldest: MessageId) -> Result<()> {
        sqlx::query(
            "INSERT INTO channel_sync (channel_id, oldest) VALUES ($1, $2) \
             ON CONFLICT (channel_id) DO UPDATE SET oldest = excluded.oldest",
        )
        .bind(channel.0)
        .bind(oldest.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets what is known about completeness (after missing events we could not fetch).
    pub async fn forget_synced(&self, channel: Option<ChannelId>) -> Result<()> {
        match channel {
            Some(c) => {
                sqlx::query("DELETE FROM channel_sync WHERE channel_id = $1")
                    .bind(c.0)
                    .execute(&self.pool)
                    .await?
            }
            None => sqlx::query("DELETE FROM channel_sync").execute(&self.pool).await?,
        };
        Ok(())
    }

    // ---- Channels, members, read states ----

    /// Replaces every cached channel (a `Ready` snapshot is the whole truth); messages of
    /// channels that are gone go too.
    pub async fn replace_channels(&self, channels: &[Channel]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM channels").execute(&mut *tx).await?;
        for c in channels {
            sqlx::query("INSERT INTO channels (id, body) VALUES ($1, $2)")
                .bind(c.id.0)
                .bind(to_json(c)?)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM messages WHERE channel_id NOT IN (SELECT id FROM channels)")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM channel_sync WHERE channel_id NOT IN (SELECT id FROM channels)")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn upsert_channel(&self, c: &Channel) -> Result<()> {
        sqlx::query("INSERT INTO channels (id, body) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET body = excluded.body")
            .bind(c.id.0)
            .bind(to_json(c)?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_channel(&self, id: ChannelId) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM channels WHERE id = $1").bind(id.0).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM messages WHERE channel_id = $1").bind(id.0).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM read_states WHERE channel_id = $1").bind(id.0).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM channel_sync WHERE channel_id = $1").bind(id.0).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn channels(&self) -> Result<Vec<Channel>> {
        let rows = sqlx::query("SELECT body FROM channels").fetch_all(&self.pool).await?;
        let mut channels: Vec<Channel> =
            rows.iter().map(|r| from_json(&r.try_get::<String, _>(0)?)).collect::<Result<_>>()?;
        channels.sort_by_key(|c| (c.position, c.id));
        Ok(channels)
    }

    pub async fn channel(&self, id: ChannelId) -> Result<Option<Channel>> {
        let row = sqlx::query("SELECT body FROM channels WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| from_json(&r.try_get::<String, _>(0)?)).transpose()
    }

    /// Moves a channel's `last_message_id` forward when a newer message arrives.
    async fn bump_channel(&self, id: ChannelId, message: MessageId) -> Result<()> {
        if let Some(mut c) = self.channel(id).await?
            && c.last_message_id.is_none_or(|last| last < message)
        {
            c.last_message_id = Some(message);
            self.upsert_channel(&c).await?;
        }
        Ok(())
    }

    pub async fn replace_members(&self, members: &[User]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM members").execute(&mut *tx).await?;
        for u in members {
            sqlx::query("INSERT INTO members (id, body) VALUES ($1, $2)")
                .bind(u.id.0)
                .bind(to_json(u)?)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn upsert_member(&self, u: &User) -> Result<()> {
        sqlx::query("INSERT INTO members (id, body) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET body = excluded.body")
            .bind(u.id.0)
            .bind(to_json(u)?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn remove_member(&self, id: UserId) -> Result<()> {
        sqlx::query("DELETE FROM members WHERE id = $1").bind(id.0).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn members(&self) -> Result<Vec<User>> {
        let rows = sqlx::query("SELECT body FROM members ORDER BY id").fetch_all(&self.pool).await?;
        rows.iter().map(|r| from_json(&r.try_get::<String, _>(0)?)).collect()
    }

    pub async fn upsert_read_state(&self, rs: &ReadState) -> Result<()> {
        sqlx::query(
            "INSERT INTO read_states (channel_id, body) VALUES ($1, $2) \
             ON CONFLICT (channel_id) DO UPDATE SET body = excluded.body",
        )
        .bind(rs.channel_id.0)
        .bind(to_json(rs)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn read_states(&self) -> Result<Vec<ReadState>> {
        let rows =
            sqlx::query("SELECT body FROM read_states ORDER BY channel_id").fetch_all(&self.pool).await?;
        rows.iter().map(|r| from_json(&r.try_get::<String, _>(0)?)).collect()
    }

    /// Takes in a `Ready` snapshot: channels, members and read states are replaced.
    pub async fn apply_ready(&self, ready: &Ready) -> Result<()> {
        self.replace_channels(&ready.channels).await?;
        let mut members = ready.members.clone();
        if !members.iter().any(|m| m.id == ready.user.id) {
            members.push(ready.user.clone());
        }
        self.replace_members(&members).await?;
        sqlx::query("DELETE FROM read_states").execute(&self.pool).await?;
        for rs in &ready.read_states {
            self.upsert_read_state(rs).await?;
        }
        Ok(())
    }

    /// Applies one gateway event to the cache.
    pub async fn apply_event(&self, event: &Event) -> Result<()> {
        match event {
            Event::MessageCreate { message, .. } => {
                self.upsert_message(message).await?;
                self.bump_channel(message.channel_id, message.id).await?;
            }
            Event::MessageUpdate { message } => self.upsert_message(message).await?,
            Event::MessageDelete { channel_id, message_id } => {
                self.delete_message(*channel_id, *message_id).await?
            }
            Event::ReactionAdd { message_id, user_id, emoji, .. } => {
                self.change_reactions(*message_id, *user_id, emoji, true).await?
            }
            Event::ReactionRemove { message_id, user_id, emoji, .. } => {
                self.change_reactions(*message_id, *user_id, emoji, false).await?
            }
            Event::ChannelCreate { channel } | Event::ChannelUpdate { channel } => {
                self.upsert_channel(channel).await?
            }
            Event::ChannelDelete { channel_id } => self.delete_channel(*channel_id).await?,
            Event::MemberAdd { user } | Event::MemberUpdate { user } => self.upsert_member(user).await?,
            Event::MemberRemove { user_id } => self.remove_member(*user_id).await?,
            Event::ReadStateUpdate { read_state } => self.upsert_read_state(read_state).await?,
            Event::MessagesPurged { before } => self.purge_messages_before(*before).await?,
            Event::TypingStart { .. }
            | Event::ServerUpdate { .. }
            | Event::BlockUpdate { .. }
            | Event::PresenceUpdate { .. }
            | Event::VoiceStateUpdate { .. }
            | Event::VoiceSignal { .. }
            | Event::TransferSignal { .. } => {}
        }
        Ok(())
    }

    // ---- Outbox ----

    /// Records a message to send. A nonce already present is left as it was.
    pub async fn outbox_add(&self, e: &OutboxEntry) -> Result<()> {
        sqlx::query(
            "INSERT INTO outbox (nonce, channel_id, content, reply_to, created_at, state, attachments) \
             VALUES ($1, $2, $3, $4, $5, 'pending', $6) ON CONFLICT (nonce) DO NOTHING",
        )
        .bind(&e.nonce)
        .bind(e.channel_id.0)
        .bind(&e.content)
        .bind(e.reply_to.map(|r| r.0))
        .bind(e.created_at)
        .bind(serde_json::to_string(&e.attachments).map_err(|e| Error::Corrupt(e.to_string()))?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every outbox row, oldest first.
    pub async fn outbox(&self) -> Result<Vec<OutboxEntry>> {
        self.outbox_where("1 = 1").await
    }

    /// Rows still to deliver, oldest first.
    pub async fn outbox_pending(&self) -> Result<Vec<OutboxEntry>> {
        self.outbox_where("state = 'pending'").await
    }

    async fn outbox_where(&self, filter: &'static str) -> Result<Vec<OutboxEntry>> {
        let sql = format!(
            "SELECT nonce, channel_id, content, reply_to, created_at, state, error_code, error_message, attachments \
             FROM outbox WHERE {filter} ORDER BY created_at, rowid"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let state = match r.try_get::<String, _>(5)?.as_str() {
                    "failed" => OutboxState::Failed,
                    _ => OutboxState::Pending,
                };
                let code: Option<String> = r.try_get(6)?;
                let message: Option<String> = r.try_get(7)?;
                let error = match code {
                    Some(code) => {
                        let code = serde_json::from_value(serde_json::Value::String(code))
                            .map_err(|e| Error::Corrupt(format!("outbox error code: {e}")))?;
                        Some(ApiError::new(code, message.unwrap_or_default()))
                    }
                    None => None,
                };
                Ok(OutboxEntry {
                    nonce: r.try_get(0)?,
                    channel_id: ChannelId(r.try_get(1)?),
                    content: r.try_get(2)?,
                    reply_to: r.try_get::<Option<i64>, _>(3)?.map(MessageId),
                    created_at: r.try_get(4)?,
                    state,
                    error,
                    attachments: serde_json::from_str(&r.try_get::<String, _>(8)?)
                        .map_err(|e| Error::Corrupt(format!("outbox attachments: {e}")))?,
                })
            })
            .collect()
    }

    /// The server acknowledged the message: the row goes.
    pub async fn outbox_remove(&self, nonce: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM outbox WHERE nonce = $1").bind(nonce).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    /// The server refused the message for good.
    pub async fn outbox_mark_failed(&self, nonce: &str, error: &ApiError) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET state = 'failed', error_code = $2, error_message = $3 WHERE nonce = $1",
        )
        .bind(nonce)
        .bind(crate::error::error_code_str(error.code))
        .bind(&error.message)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Puts a failed row back in line (the user pressed "retry").
    pub async fn outbox_retry(&self, nonce: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE outbox SET state = 'pending', error_code = NULL, error_message = NULL WHERE nonce = $1",
        )
        .bind(nonce)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Corrupt(e.to_string()))
}

fn from_json<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt(format!("cached row: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_protocol::ErrorCode;

    fn message(id: i64, channel: i64, content: &str) -> Message {
        Message {
            id: MessageId(id),
            channel_id: ChannelId(channel),
            author_id: UserId(1),
            content: content.into(),
            created_at: 0,
            edited_at: None,
            reply_to: None,
            mentions: vec![],
            reactions: vec![],
            attachments: Vec::new(),
        }
    }

    #[tokio::test]
    async fn messages_upsert_page_and_delete() {
        let s = Store::in_memory().await.unwrap();
        for id in 1..=5 {
            s.apply_event(&Event::MessageCreate { message: message(id, 7, "a"), nonce: None }).await.unwrap();
        }
        s.apply_event(&Event::MessageUpdate { message: message(3, 7, "edited") }).await.unwrap();
        s.apply_event(&Event::MessageCreate { message: message(3, 7, "edited"), nonce: None }).await.unwrap();
        s.apply_event(&Event::MessageDelete { channel_id: ChannelId(7), message_id: MessageId(5) })
            .await
            .unwrap();
        let page = s.history(ChannelId(7), None, 10).await.unwrap();
        assert_eq!(page.iter().map(|m| m.id.0).collect::<Vec<_>>(), [4, 3, 2, 1]);
        assert_eq!(page[1].content, "edited");
        let older = s.history(ChannelId(7), Some(MessageId(3)), 1).await.unwrap();
        assert_eq!(older[0].id, MessageId(2));
        assert_eq!(s.newest_message(ChannelId(7)).await.unwrap(), Some(MessageId(4)));
        assert_eq!(s.newest_message(ChannelId(8)).await.unwrap(), None);
    }

    #[tokio::test]
    async fn reactions_are_added_once_and_removed() {
        let s = Store::in_memory().await.unwrap();
        s.upsert_message(&message(1, 7, "a")).await.unwrap();
        let add = Event::ReactionAdd {
            channel_id: ChannelId(7),
            message_id: MessageId(1),
            user_id: UserId(2),
            emoji: "👍".into(),
        };
        s.apply_event(&add).await.unwrap();
        s.apply_event(&add).await.unwrap();
        let m = s.message(MessageId(1)).await.unwrap().unwrap();
        assert_eq!(m.reactions, vec![Reaction { emoji: "👍".into(), users: vec![UserId(2)] }]);
        s.apply_event(&Event::ReactionRemove {
            channel_id: ChannelId(7),
            message_id: MessageId(1),
            user_id: UserId(2),
            emoji: "👍".into(),
        })
        .await
        .unwrap();
        assert!(s.message(MessageId(1)).await.unwrap().unwrap().reactions.is_empty());
    }

    #[tokio::test]
    async fn outbox_rows_go_pending_failed_retried_removed() {
        let s = Store::in_memory().await.unwrap();
        let entry = OutboxEntry {
            nonce: "n1".into(),
            channel_id: ChannelId(7),
            content: "hi".into(),
            reply_to: Some(MessageId(3)),
            created_at: 10,
            state: OutboxState::Pending,
            error: None,
            attachments: vec![AttachmentId(9)],
        };
        s.outbox_add(&entry).await.unwrap();
        s.outbox_add(&entry).await.unwrap();
        assert_eq!(s.outbox_pending().await.unwrap(), vec![entry.clone()]);
        let refused = ApiError::new(ErrorCode::PayloadTooLarge, "too long");
        s.outbox_mark_failed("n1", &refused).await.unwrap();
        assert!(s.outbox_pending().await.unwrap().is_empty());
        let all = s.outbox().await.unwrap();
        assert_eq!(all[0].state, OutboxState::Failed);
        assert_eq!(all[0].error, Some(refused));
        assert!(s.outbox_retry("n1").await.unwrap());
        assert_eq!(s.outbox_pending().await.unwrap(), vec![entry]);
        assert!(s.outbox_remove("n1").await.unwrap());
        assert!(!s.outbox_remove("n1").await.unwrap());
    }
}
