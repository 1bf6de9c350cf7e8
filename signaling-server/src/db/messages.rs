//! Messages, mentions and reactions.

use std::collections::BTreeMap;

use hearth_protocol::model::{Message, Reaction};
use hearth_protocol::{AttachmentId, ChannelId, MessageId, UserId};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Backend, Db, now_ms};

/// A message on its way into the database; id and time are given by the writer at commit.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub channel_id: ChannelId,
    pub author_id: UserId,
    pub nonce: String,
    pub content: String,
    pub reply_to: Option<MessageId>,
    pub mentions: Vec<UserId>,
    /// Finished uploads of the author to bind to the message, in order.
    pub attachments: Vec<AttachmentId>,
}

/// What became of a [`NewMessage`].
#[derive(Debug, Clone)]
pub enum Stored {
    Created(Message),
    /// The author already sent this nonce: here is the message made then.
    Duplicate(Message),
    /// `reply_to` names no message of this channel; nothing was stored.
    BadReply,
    /// An attachment is not a finished upload of the author, or another message has it;
    /// nothing was stored.
    BadAttachment,
}

/// Groups reaction rows (ordered by message, then time) onto their messages.
fn put_reactions(rows: &[AnyRow], messages: &mut [Message]) -> sqlx::Result<()> {
    let mut by_message: BTreeMap<i64, Vec<Reaction>> = BTreeMap::new();
    for row in rows {
        let id: i64 = row.try_get("message_id")?;
        let emoji: String = row.try_get("emoji")?;
        let user = UserId(row.try_get("user_id")?);
        let list = by_message.entry(id).or_default();
        match list.iter_mut().find(|r| r.emoji == emoji) {
            Some(r) => r.users.push(user),
            None => list.push(Reaction { emoji, users: vec![user] }),
        }
    }
    for m in messages.iter_mut() {
        if let Some(r) = by_message.remove(&m.id.0) {
            m.reactions = r;
        }
    }
    Ok(())
}

/// Rows per multi-row INSERT (8 parameters each, well under both backends' limits).
pub const INSERT_CHUNK: usize = 64;

pub(super) const COLUMNS: &str =
    "id, channel_id, author_id, content, reply_to, mentions, created_at, edited_at";

fn encode_mentions(mentions: &[UserId]) -> String {
    mentions.iter().map(|m| m.0.to_string()).collect::<Vec<_>>().join(" ")
}

pub(super) fn message(row: &AnyRow) -> sqlx::Result<Message> {
    let mentions: String = row.try_get("mentions")?;
    Ok(Message {
        id: MessageId(row.try_get("id")?),
        channel_id: ChannelId(row.try_get("channel_id")?),
        author_id: UserId(row.try_get("author_id")?),
        content: row.try_get("content")?,
        created_at: row.try_get("created_at")?,
        edited_at: row.try_get("edited_at")?,
        reply_to: row.try_get::<Option<i64>, _>("reply_to")?.map(MessageId),
        mentions: mentions.split_whitespace().filter_map(|s| s.parse().ok()).map(UserId).collect(),
        reactions: Vec::new(),
        attachments: Vec::new(),
    })
}

impl Db {
    /// Stores a batch in one transaction (the group commit): one fsync for all of them.
    /// `next_id` hands out ids in commit order. Rows go in as multi-row INSERTs of up to
    /// [`INSERT_CHUNK`], because each statement is a round trip to the database.
    pub async fn store_messages(
        &self,
        batch: &[NewMessage],
        next_id: impl FnMut() -> i64,
    ) -> sqlx::Result<Vec<Stored>> {
        self.store_messages_announced(batch, next_id, None).await
    }

    /// [`Db::store_messages`], and with `announce` (PostgreSQL, several processes) the new
    /// messages' ids are notified to the other processes inside the same transaction: a
    /// committed message is always announced, an uncommitted one never.
    pub async fn store_messages_announced(
        &self,
        batch: &[NewMessage],
        mut next_id: impl FnMut() -> i64,
        announce: Option<crate::cluster::note::NodeId>,
    ) -> sqlx::Result<Vec<Stored>> {
        let mut tx = self.pool.begin().await?;
        // Replies are rare: check each target on its own.
        let mut out: Vec<Option<Stored>> = Vec::with_capacity(batch.len());
        let mut claimed = std::collections::HashSet::new();
        for m in batch {
            let bad_reply = match m.reply_to {
                Some(reply_to) => {
                    let found: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM messages WHERE id = $1 AND channel_id = $2 AND deleted = 0",
                    )
                    .bind(reply_to.0)
                    .bind(m.channel_id.0)
                    .fetch_one(&mut *tx)
                    .await?;
                    found == 0
                }
                None => false,
            };
            if bad_reply {
                out.push(Some(Stored::BadReply));
                continue;
            }
            // Attachments must be the author's own finished uploads that no message has, each
            // claimed once in the batch. A resend of a stored nonce finds them taken by its own
            // first send: that is a duplicate, answered below, not a bad attachment.
            let mut bad_attachment = false;
            if !m.attachments.is_empty() {
                let repeated = m.attachments.iter().any(|a| !claimed.insert(*a));
                if repeated || !super::attachments::claimable(&mut tx, m.author_id, &m.attachments).await? {
                    let sent: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM messages WHERE author_id = $1 AND nonce = $2",
                    )
                    .bind(m.author_id.0)
                    .bind(m.nonce.clone())
                    .fetch_one(&mut *tx)
                    .await?;
                    bad_attachment = sent == 0;
                }
            }
            out.push(bad_attachment.then_some(Stored::BadAttachment));
        }
        let rows: Vec<(usize, Message)> = batch
            .iter()
            .enumerate()
            .filter(|(i, _)| out[*i].is_none())
            .map(|(i, m)| {
                let message = Message {
                    id: MessageId(next_id()),
                    channel_id: m.channel_id,
                    author_id: m.author_id,
                    content: m.content.clone(),
                    created_at: now_ms(),
                    edited_at: None,
                    reply_to: m.reply_to,
                    mentions: m.mentions.clone(),
                    reactions: Vec::new(),
                    attachments: Vec::new(),
                };
                (i, message)
            })
            .collect();
        let mut inserted = std::collections::HashSet::new();
        for chunk in rows.chunks(INSERT_CHUNK) {
            let mut sql = String::from(
                "INSERT INTO messages (id, channel_id, author_id, nonce, content, reply_to, mentions, created_at) VALUES ",
            );
            for n in 0..chunk.len() {
                if n > 0 {
                    sql.push(',');
                }
                match self.backend {
                    // SQLite looks up each numbered parameter's name by a linear scan, which
                    // makes hundreds of `$N` in one statement quadratic; `?` is positional.
                    Backend::Sqlite => sql.push_str("(?,?,?,?,?,?,?,?)"),
                    Backend::Postgres => {
                        let p = n * 8;
                        sql.push_str(&format!(
                            "(${},${},${},${},${},${},${},${})",
                            p + 1,
                            p + 2,
                            p + 3,
                            p + 4,
                            p + 5,
                            p + 6,
                            p + 7,
                            p + 8
                        ));
                    }
                }
            }
            sql.push_str(" ON CONFLICT (author_id, nonce) DO NOTHING RETURNING id");
            let mut query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
            for (i, m) in chunk {
                query = query
                    .bind(m.id.0)
                    .bind(m.channel_id.0)
                    .bind(m.author_id.0)
                    .bind(batch[*i].nonce.clone())
                    .bind(m.content.clone())
                    .bind(m.reply_to.map(|r| r.0))
                    .bind(encode_mentions(&m.mentions))
                    .bind(m.created_at);
            }
            inserted.extend(query.fetch_all(&mut *tx).await?);
        }
        for (i, m) in rows {
            if !inserted.contains(&m.id.0) {
                // The author already sent this nonce (before, or earlier in this batch).
                let sql = format!("SELECT {COLUMNS} FROM messages WHERE author_id = $1 AND nonce = $2");
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(m.author_id.0)
                    .bind(batch[i].nonce.clone())
                    .fetch_one(&mut *tx)
                    .await?;
                let mut original = [message(&row)?];
                super::attachments::fill(&mut tx, &mut original).await?;
                let [original] = original;
                out[i] = Some(Stored::Duplicate(original));
                continue;
            }
            if !batch[i].attachments.is_empty() {
                super::attachments::bind(&mut tx, &m, &batch[i].attachments).await?;
            }
            for user in &m.mentions {
                sqlx::query(
                    "INSERT INTO mentions (user_id, channel_id, message_id) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(user.0)
                .bind(m.channel_id.0)
                .bind(m.id.0)
                .execute(&mut *tx)
                .await?;
            }
            let mut created = [m];
            if !batch[i].attachments.is_empty() {
                super::attachments::fill(&mut tx, &mut created).await?;
            }
            let [m] = created;
            out[i] = Some(Stored::Created(m));
        }
        // The new messages enter the search index in the same transaction.
        let created: Vec<super::search::Indexed<'_>> = out
            .iter()
            .filter_map(|slot| match slot {
                Some(Stored::Created(m)) => Some(super::search::Indexed {
                    id: m.id.0,
                    channel: m.channel_id.0,
                    author: m.author_id.0,
                    content: &m.content,
                }),
                _ => None,
            })
            .collect();
        super::search::index(&mut tx, self.backend, &created).await?;
        if let Some(node) = announce {
            let ids: Vec<MessageId> = created.iter().map(|m| MessageId(m.id)).collect();
            super::cluster::notify_messages(&mut tx, node, &ids).await?;
        }
        tx.commit().await?;
        // Every slot was filled above: a bad reply, a duplicate or a new message.
        out.into_iter()
            .map(|slot| {
                slot.ok_or_else(|| sqlx::Error::Protocol("a message of the batch was not stored".into()))
            })
            .collect()
    }

    /// One message that was not deleted, with its reactions.
    pub async fn message(&self, channel: ChannelId, id: MessageId) -> sqlx::Result<Option<Message>> {
        let sql = format!("SELECT {COLUMNS} FROM messages WHERE id = $1 AND channel_id = $2 AND deleted = 0");
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .bind(channel.0)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let mut messages = vec![message(&row)?];
        self.attach_reactions(channel, &mut messages).await?;
        Ok(messages.pop())
    }

    /// A page of history: newest first before `before` (or the newest), or oldest first after
    /// `after`.
    pub async fn history(
        &self,
        channel: ChannelId,
        before: Option<MessageId>,
        after: Option<MessageId>,
        limit: u32,
    ) -> sqlx::Result<Vec<Message>> {
        let rows = match after {
            Some(after) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM messages WHERE channel_id = $1 AND deleted = 0 AND id > $2 \
                     AND id < $3 ORDER BY id ASC LIMIT $4"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(channel.0)
                    .bind(after.0)
                    .bind(before.map(|b| b.0).unwrap_or(i64::MAX))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM messages WHERE channel_id = $1 AND deleted = 0 AND id < $2 \
                     ORDER BY id DESC LIMIT $3"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(channel.0)
                    .bind(before.map(|b| b.0).unwrap_or(i64::MAX))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        let mut messages = rows.iter().map(message).collect::<sqlx::Result<Vec<_>>>()?;
        self.attach_reactions(channel, &mut messages).await?;
        Ok(messages)
    }

    /// The message `around` (if it still exists) with up to `limit / 2` older and
    /// `(limit - 1) / 2` newer messages around it, oldest first: what a jump to a message loads.
    pub async fn history_around(
        &self,
        channel: ChannelId,
        around: MessageId,
        limit: u32,
    ) -> sqlx::Result<Vec<Message>> {
        let mut older = match limit / 2 {
            0 => Vec::new(),
            n => self.history(channel, Some(around), None, n).await?,
        };
        older.reverse();
        let at = self.message(channel, around).await?;
        let newer = match (limit - 1) / 2 {
            0 => Vec::new(),
            n => self.history(channel, None, Some(around), n).await?,
        };
        older.extend(at);
        older.extend(newer);
        Ok(older)
    }

    pub(super) async fn attach_reactions(
        &self,
        channel: ChannelId,
        messages: &mut [Message],
    ) -> sqlx::Result<()> {
        let (Some(lo), Some(hi)) =
            (messages.iter().map(|m| m.id.0).min(), messages.iter().map(|m| m.id.0).max())
        else {
            return Ok(());
        };
        let rows = sqlx::query(
            "SELECT r.message_id, r.emoji, r.user_id FROM reactions r JOIN messages m ON m.id = r.message_id \
             WHERE m.channel_id = $1 AND r.message_id >= $2 AND r.message_id <= $3 \
             ORDER BY r.message_id, r.created_at, r.user_id",
        )
        .bind(channel.0)
        .bind(lo)
        .bind(hi)
        .fetch_all(&self.pool)
        .await?;
        put_reactions(&rows, messages)?;
        super::attachments::fill(&mut *self.pool.acquire().await?, messages).await
    }

    /// Attaches reactions to messages of any channels, by their ids (one query).
    pub(super) async fn attach_reactions_by_ids(&self, messages: &mut [Message]) -> sqlx::Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = (1..=messages.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT message_id, emoji, user_id FROM reactions WHERE message_id IN ({}) \
             ORDER BY message_id, created_at, user_id",
            list.join(",")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for m in messages.iter() {
            query = query.bind(m.id.0);
        }
        let rows = query.fetch_all(&self.pool).await?;
        put_reactions(&rows, messages)?;
        super::attachments::fill(&mut *self.pool.acquire().await?, messages).await
    }

    /// Changes a message's content and mentions, and its search entry, in one transaction.
    pub async fn edit_message(
        &self,
        message: &Message,
        content: &str,
        mentions: &[UserId],
    ) -> sqlx::Result<()> {
        let (channel, id) = (message.channel_id, message.id);
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE messages SET content = $1, mentions = $2, edited_at = $3 WHERE id = $4 AND deleted = 0",
        )
        .bind(content.to_string())
        .bind(encode_mentions(mentions))
        .bind(now_ms())
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            // Deleted (or purged) meanwhile: nothing to change, and no index entry to bring back.
            return Ok(());
        }
        sqlx::query("DELETE FROM mentions WHERE message_id = $1").bind(id.0).execute(&mut *tx).await?;
        for user in mentions {
            sqlx::query("INSERT INTO mentions (user_id, channel_id, message_id) VALUES ($1, $2, $3)")
                .bind(user.0)
                .bind(channel.0)
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
        }
        let entry =
            super::search::Indexed { id: id.0, channel: channel.0, author: message.author_id.0, content };
        super::search::reindex(&mut tx, self.backend, entry).await?;
        tx.commit().await
    }

    /// Deletes a message's content; the row stays as a tombstone so that a resend of its
    /// nonce does not bring it back. Its attachments go too: returns the blobs they named
    /// (for the store to free those no other message names).
    /// `audit`: the entry of a moderator's delete, stored in the same transaction.
    pub async fn delete_message(
        &self,
        id: MessageId,
        audit: Option<&hearth_protocol::model::AuditEntry>,
    ) -> sqlx::Result<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        if let Some(entry) = audit {
            super::audit::insert(&mut tx, entry).await?;
        }
        sqlx::query("UPDATE messages SET deleted = 1, content = '', mentions = '' WHERE id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM reactions WHERE message_id = $1").bind(id.0).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM mentions WHERE message_id = $1").bind(id.0).execute(&mut *tx).await?;
        super::search::unindex(&mut tx, self.backend, &[id.0]).await?;
        let blobs = super::attachments::unbind(&mut tx, &[id.0]).await?;
        tx.commit().await?;
        Ok(blobs)
    }

    /// Retention: deletes up to `batch` of the oldest messages with ids below `before`, with
    /// their reactions, mentions, attachments and search entries, in one short transaction (so the writer
    /// never waits long). Returns how many were deleted; 0 when none are left.
    pub async fn purge_batch(&self, before: MessageId, batch: usize) -> sqlx::Result<usize> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM messages WHERE id < $1 ORDER BY id LIMIT $2")
            .bind(before.0)
            .bind(batch as i64)
            .fetch_all(&mut *tx)
            .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let list: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
        let list = list.join(",");
        for table in ["reactions", "mentions"] {
            let sql = format!("DELETE FROM {table} WHERE message_id IN ({list})");
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in &ids {
                query = query.bind(*id);
            }
            query.execute(&mut *tx).await?;
        }
        super::search::unindex(&mut tx, self.backend, &ids).await?;
        // The blobs they named are freed by the retention pass afterwards.
        super::attachments::unbind(&mut tx, &ids).await?;
        let sql = format!("DELETE FROM messages WHERE id IN ({list})");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in &ids {
            query = query.bind(*id);
        }
        query.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(ids.len())
    }

    /// Returns false when this user already reacted with this emoji.
    pub async fn add_reaction(&self, id: MessageId, emoji: &str, user: UserId) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "INSERT INTO reactions (message_id, emoji, user_id, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id.0)
        .bind(emoji.to_string())
        .bind(user.0)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn remove_reaction(&self, id: MessageId, emoji: &str, user: UserId) -> sqlx::Result<bool> {
        let done = sqlx::query("DELETE FROM reactions WHERE message_id = $1 AND emoji = $2 AND user_id = $3")
            .bind(id.0)
            .bind(emoji.to_string())
            .bind(user.0)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn distinct_reactions(&self, id: MessageId) -> sqlx::Result<i64> {
        sqlx::query_scalar("SELECT COUNT(DISTINCT emoji) FROM reactions WHERE message_id = $1")
            .bind(id.0)
            .fetch_one(&self.pool)
            .await
    }
}
