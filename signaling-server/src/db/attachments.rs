//! Attachments: blobs (files stored once by content), the attachment rows that reference them
//! (one per finished upload, bound to a message when it is sent) and uploads in progress.
//! A blob is referenced while an attachment row names it; [`Db::unreferenced_blobs`] finds
//! those that no row names any more, and the store (`crate::attachments`) deletes them with
//! their files.

use std::collections::BTreeMap;

use hearth_protocol::model::{Attachment, AttachmentKind, Message};
use hearth_protocol::{AttachmentId, ChannelId, MessageId, UploadId, UserId};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Backend, Db, now_ms};

/// Serializes changes to which blobs exist across server processes sharing one files directory
/// (any constant: this one spells "hearth-b").
const STORE_LOCK: i64 = 0x6865_6172_7468_2d62;

/// Held while the attachment store adds or frees blobs. On PostgreSQL an advisory lock taken
/// in a transaction kept open on one connection, so server processes sharing a files directory
/// take turns; on SQLite (one process) nothing beyond the store's own mutex. Ended with
/// [`StoreLock::release`]; dropped, the transaction rolls back and the lock goes with it.
pub struct StoreLock(Option<sqlx::Transaction<'static, sqlx::Any>>);

impl StoreLock {
    pub async fn release(self) {
        if let Some(tx) = self.0
            && let Err(e) = tx.commit().await
        {
            tracing::warn!(error = %e, "releasing the attachment store's lock");
        }
    }
}

/// What the server learned about a blob's bytes when it stored them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub hash: String,
    pub size: u64,
    pub content_type: String,
    pub kind: AttachmentKind,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub thumbnail: bool,
}

/// An upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub id: UploadId,
    pub user_id: UserId,
    pub name: String,
    pub size: u64,
}

/// Where an attachment belongs, for the download's membership check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub attachment: Attachment,
    pub hash: String,
    pub uploader_id: UserId,
    /// `None` until a message carries it.
    pub channel_id: Option<ChannelId>,
}

fn kind_str(kind: AttachmentKind) -> &'static str {
    match kind {
        AttachmentKind::Image => "image",
        AttachmentKind::File => "file",
    }
}

const ATTACHMENT_COLUMNS: &str = "a.id, a.name, a.blob, a.uploader_id, a.message_id, a.channel_id, \
     b.size, b.content_type, b.kind, b.width, b.height, b.thumbnail";

fn attachment(row: &AnyRow) -> sqlx::Result<Attachment> {
    let dimension = |name: &str| -> sqlx::Result<Option<u32>> {
        Ok(row.try_get::<Option<i64>, _>(name)?.and_then(|v| u32::try_from(v).ok()))
    };
    let kind: String = row.try_get("kind")?;
    Ok(Attachment {
        id: AttachmentId(row.try_get("id")?),
        name: row.try_get("name")?,
        size: u64::try_from(row.try_get::<i64, _>("size")?).unwrap_or(0),
        content_type: row.try_get("content_type")?,
        kind: if kind == "image" { AttachmentKind::Image } else { AttachmentKind::File },
        width: dimension("width")?,
        height: dimension("height")?,
        thumbnail: row.try_get::<i64, _>("thumbnail")? != 0,
    })
}

/// The attachments of these messages, each message's in the order they were attached.
pub(super) async fn of_messages(
    conn: &mut AnyConnection,
    ids: &[i64],
) -> sqlx::Result<BTreeMap<i64, Vec<Attachment>>> {
    let mut out: BTreeMap<i64, Vec<Attachment>> = BTreeMap::new();
    for chunk in ids.chunks(500) {
        let list: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments a JOIN blobs b ON b.hash = a.blob \
             WHERE a.message_id IN ({}) ORDER BY a.message_id, a.position",
            list.join(",")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let message: i64 = row.try_get("message_id")?;
            out.entry(message).or_default().push(attachment(&row)?);
        }
    }
    Ok(out)
}

/// Fills in the attachments of loaded messages.
pub(super) async fn fill(conn: &mut AnyConnection, messages: &mut [Message]) -> sqlx::Result<()> {
    let ids: Vec<i64> = messages.iter().map(|m| m.id.0).collect();
    if ids.is_empty() {
        return Ok(());
    }
    let mut found = of_messages(conn, &ids).await?;
    for m in messages.iter_mut() {
        if let Some(list) = found.remove(&m.id.0) {
            m.attachments = list;
        }
    }
    Ok(())
}

/// Whether every one of `ids` is a finished upload of `author` that no message carries yet.
pub(super) async fn claimable(
    conn: &mut AnyConnection,
    author: UserId,
    ids: &[AttachmentId],
) -> sqlx::Result<bool> {
    let list: Vec<String> = (2..ids.len() + 2).map(|n| format!("${n}")).collect();
    let sql = format!(
        "SELECT COUNT(*) FROM attachments WHERE uploader_id = $1 AND message_id IS NULL AND id IN ({})",
        list.join(",")
    );
    let mut query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)).bind(author.0);
    for id in ids {
        query = query.bind(id.0);
    }
    Ok(query.fetch_one(&mut *conn).await? == ids.len() as i64)
}

/// Binds finished uploads to the message that carries them, in the given order.
pub(super) async fn bind(
    conn: &mut AnyConnection,
    message: &Message,
    ids: &[AttachmentId],
) -> sqlx::Result<()> {
    for (position, id) in ids.iter().enumerate() {
        sqlx::query(
            "UPDATE attachments SET message_id = $1, channel_id = $2, position = $3 \
             WHERE id = $4 AND uploader_id = $5 AND message_id IS NULL",
        )
        .bind(message.id.0)
        .bind(message.channel_id.0)
        .bind(position as i64)
        .bind(id.0)
        .bind(message.author_id.0)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Deletes the attachment rows of these messages; returns the blobs they named (candidates for
/// [`Db::unreferenced_blobs`]).
pub(super) async fn unbind(conn: &mut AnyConnection, messages: &[i64]) -> sqlx::Result<Vec<String>> {
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = (1..=messages.len()).map(|n| format!("${n}")).collect();
    let sql = format!("DELETE FROM attachments WHERE message_id IN ({}) RETURNING blob", list.join(","));
    let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
    for id in messages {
        query = query.bind(*id);
    }
    let mut blobs = query.fetch_all(&mut *conn).await?;
    blobs.sort();
    blobs.dedup();
    Ok(blobs)
}

impl Db {
    /// The attachment store's lock across processes (see [`StoreLock`]).
    pub async fn store_lock(&self) -> sqlx::Result<StoreLock> {
        if self.backend == Backend::Sqlite {
            return Ok(StoreLock(None));
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(STORE_LOCK).execute(&mut *tx).await?;
        Ok(StoreLock(Some(tx)))
    }

    pub async fn create_upload(&self, upload: &Upload) -> sqlx::Result<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO uploads (id, user_id, name, size, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(upload.id.0)
        .bind(upload.user_id.0)
        .bind(upload.name.clone())
        .bind(upload.size as i64)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn upload(&self, id: UploadId) -> sqlx::Result<Option<Upload>> {
        let row = sqlx::query("SELECT id, user_id, name, size FROM uploads WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(Upload {
                id: UploadId(r.try_get("id")?),
                user_id: UserId(r.try_get("user_id")?),
                name: r.try_get("name")?,
                size: u64::try_from(r.try_get::<i64, _>("size")?).unwrap_or(0),
            })
        })
        .transpose()
    }

    /// Marks an upload as alive (bytes arrived), so the sweep leaves it.
    pub async fn touch_upload(&self, id: UploadId) -> sqlx::Result<()> {
        sqlx::query("UPDATE uploads SET updated_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_upload(&self, id: UploadId) -> sqlx::Result<bool> {
        let done = sqlx::query("DELETE FROM uploads WHERE id = $1").bind(id.0).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Uploads no byte reached since `before` (Unix ms).
    pub async fn stale_uploads(&self, before: i64) -> sqlx::Result<Vec<UploadId>> {
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM uploads WHERE updated_at < $1")
            .bind(before)
            .fetch_all(&self.pool)
            .await?;
        Ok(ids.into_iter().map(UploadId).collect())
    }

    /// Bytes `user` keeps on the server: their attachments (each counted, even when the same
    /// file is stored once) and the announced size of their uploads in progress.
    pub async fn upload_usage(&self, user: UserId) -> sqlx::Result<u64> {
        let stored: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(SUM(b.size) AS BIGINT) FROM attachments a JOIN blobs b ON b.hash = a.blob \
             WHERE a.uploader_id = $1",
        )
        .bind(user.0)
        .fetch_one(&self.pool)
        .await?;
        let pending: Option<i64> =
            sqlx::query_scalar("SELECT CAST(SUM(size) AS BIGINT) FROM uploads WHERE user_id = $1")
                .bind(user.0)
                .fetch_one(&self.pool)
                .await?;
        Ok(stored.unwrap_or(0).max(0) as u64 + pending.unwrap_or(0).max(0) as u64)
    }

    pub async fn blob(&self, hash: &str) -> sqlx::Result<Option<Blob>> {
        let row = sqlx::query(
            "SELECT hash, size, content_type, kind, width, height, thumbnail FROM blobs WHERE hash = $1",
        )
        .bind(hash.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let kind: String = r.try_get("kind")?;
            Ok(Blob {
                hash: r.try_get("hash")?,
                size: u64::try_from(r.try_get::<i64, _>("size")?).unwrap_or(0),
                content_type: r.try_get("content_type")?,
                kind: if kind == "image" { AttachmentKind::Image } else { AttachmentKind::File },
                width: r.try_get::<Option<i64>, _>("width")?.and_then(|v| u32::try_from(v).ok()),
                height: r.try_get::<Option<i64>, _>("height")?.and_then(|v| u32::try_from(v).ok()),
                thumbnail: r.try_get::<i64, _>("thumbnail")? != 0,
            })
        })
        .transpose()
    }

    /// Turns a finished upload into an attachment of `blob` (stored first if new), in one
    /// transaction: the blob row, the attachment row, and the upload row gone.
    pub async fn finish_upload(
        &self,
        upload: &Upload,
        id: AttachmentId,
        blob: &Blob,
    ) -> sqlx::Result<Attachment> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO blobs (hash, size, content_type, kind, width, height, thumbnail, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (hash) DO NOTHING",
        )
        .bind(blob.hash.clone())
        .bind(blob.size as i64)
        .bind(blob.content_type.clone())
        .bind(kind_str(blob.kind))
        .bind(blob.width.map(i64::from))
        .bind(blob.height.map(i64::from))
        .bind(i64::from(blob.thumbnail))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO attachments (id, blob, uploader_id, name, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.0)
        .bind(blob.hash.clone())
        .bind(upload.user_id.0)
        .bind(upload.name.clone())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM uploads WHERE id = $1").bind(upload.id.0).execute(&mut *tx).await?;
        let sql = format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments a JOIN blobs b ON b.hash = a.blob WHERE a.id = $1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.0).fetch_one(&mut *tx).await?;
        let attachment = attachment(&row)?;
        tx.commit().await?;
        Ok(attachment)
    }

    /// One attachment with where it belongs.
    pub async fn attachment(&self, id: AttachmentId) -> sqlx::Result<Option<Stored>> {
        let sql = format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments a JOIN blobs b ON b.hash = a.blob WHERE a.id = $1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.0).fetch_optional(&self.pool).await?;
        row.map(|r| {
            let message: Option<i64> = r.try_get("message_id")?;
            Ok(Stored {
                attachment: attachment(&r)?,
                hash: r.try_get("blob")?,
                uploader_id: UserId(r.try_get("uploader_id")?),
                channel_id: message.and(r.try_get::<Option<i64>, _>("channel_id")?).map(ChannelId),
            })
        })
        .transpose()
    }

    /// Deletes finished uploads that no message took within the time allowed (before `before`,
    /// Unix ms); returns the blobs they named.
    pub async fn delete_unsent_attachments(&self, before: i64) -> sqlx::Result<Vec<String>> {
        let mut blobs: Vec<String> = sqlx::query_scalar(
            "DELETE FROM attachments WHERE message_id IS NULL AND created_at < $1 RETURNING blob",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        blobs.sort();
        blobs.dedup();
        Ok(blobs)
    }

    /// Of `candidates` (or of every blob, when `None`), deletes the rows of those no attachment
    /// names any more and returns their hashes. Called under the store's lock, which then
    /// deletes their files.
    pub async fn unreferenced_blobs(&self, candidates: Option<&[String]>) -> sqlx::Result<Vec<String>> {
        let hashes: Vec<String> = match candidates {
            Some(list) => list.to_vec(),
            None => {
                sqlx::query_scalar(
                    "SELECT hash FROM blobs WHERE NOT EXISTS (SELECT 1 FROM attachments a WHERE a.blob = blobs.hash)",
                )
                .fetch_all(&self.pool)
                .await?
            }
        };
        let mut freed = Vec::new();
        for hash in hashes {
            let done = sqlx::query(
                "DELETE FROM blobs WHERE hash = $1 AND NOT EXISTS (SELECT 1 FROM attachments a WHERE a.blob = $1)",
            )
            .bind(hash.clone())
            .execute(&self.pool)
            .await?;
            if done.rows_affected() == 1 {
                freed.push(hash);
            }
        }
        Ok(freed)
    }

    /// Whether a message id is a message with at least one attachment (for `has:file`).
    pub async fn message_has_attachments(&self, id: MessageId) -> sqlx::Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM attachments WHERE message_id = $1")
            .bind(id.0)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }
}
