//! The search index and the search query, per backend (see `crate::search` for what the
//! tokens are). SQLite: an FTS5 table whose rowid is the message id, ranked with bm25.
//! PostgreSQL: a tsvector per message (written as a literal of our tokens, no text search
//! configuration involved) with a GIN index, ranked with ts_rank. Every write to the index
//! happens in the transaction of the message write it follows.
//!
//! A search takes the newest [`MAX_CANDIDATES`] matches the member may read (readable
//! channels and unblocked authors, filtered here in SQL) with their relevance; the caller
//! ranks them. Taking the newest is what keeps a word found in half the messages cheap: the
//! index is read newest first and stops, instead of scoring every match.

use std::collections::BTreeMap;

use hearth_protocol::model::Message;
use hearth_protocol::{MessageId, UserId};
use sqlx::{AnyConnection, Row};

use super::{Backend, Db};
use crate::search::MAX_CANDIDATES;
use crate::search::text::{Term, index_tokens};

/// What the index needs of a message.
#[derive(Debug, Clone, Copy)]
pub struct Indexed<'a> {
    pub id: i64,
    pub channel: i64,
    pub author: i64,
    pub content: &'a str,
}

/// Rows per multi-row INSERT into the index.
const CHUNK: usize = 100;
/// Messages indexed per transaction when the index is first built from existing messages.
const BACKFILL_BATCH: i64 = 2000;

/// PostgreSQL keeps positions up to this; later ones are clamped to it.
const MAX_POSITION: usize = 16_383;

fn pg_quote(token: &str) -> String {
    format!("'{}'", token.replace('\\', "\\\\").replace('\'', "''"))
}

fn fts5_quote(token: &str) -> String {
    format!("\"{}\"", token.replace('"', "\"\""))
}

/// The tsvector literal of a message's tokens, with positions (so phrases work).
fn tsvector_literal(tokens: &[String]) -> String {
    let mut positions: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, t) in tokens.iter().enumerate() {
        positions.entry(t.as_str()).or_default().push((i + 1).min(MAX_POSITION));
    }
    let mut out = String::new();
    for (token, at) in positions {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&pg_quote(token));
        out.push(':');
        let list: Vec<String> = at.iter().map(usize::to_string).collect();
        out.push_str(&list.join(","));
    }
    out
}

/// A full-text condition: every term, and for each group at least one of its tags.
pub struct Match<'a> {
    pub terms: &'a [Term],
    /// Alternatives that must each be satisfied (e.g. `from:` authors, `in:` channels).
    pub any_of: &'a [Vec<String>],
}

impl Backend {
    /// The condition in this backend's query language: an FTS5 MATCH string or a tsquery.
    pub fn match_expression(self, m: &Match<'_>) -> String {
        let mut parts: Vec<String> = Vec::new();
        for term in m.terms {
            let tokens = term.tokens();
            parts.push(match self {
                // A quoted string of several tokens is an FTS5 phrase.
                Backend::Sqlite => fts5_quote(&tokens.join(" ")),
                Backend::Postgres => {
                    let quoted: Vec<String> = tokens.iter().map(|t| pg_quote(t)).collect();
                    format!("({})", quoted.join(" <-> "))
                }
            });
        }
        for group in m.any_of {
            let quoted: Vec<String> = group
                .iter()
                .map(|t| match self {
                    Backend::Sqlite => fts5_quote(t),
                    Backend::Postgres => pg_quote(t),
                })
                .collect();
            let or = match self {
                Backend::Sqlite => " OR ",
                Backend::Postgres => " | ",
            };
            parts.push(format!("({})", quoted.join(or)));
        }
        let and = match self {
            Backend::Sqlite => " AND ",
            Backend::Postgres => " & ",
        };
        parts.join(and)
    }
}

/// Adds messages to the index.
pub async fn index(conn: &mut AnyConnection, backend: Backend, rows: &[Indexed<'_>]) -> sqlx::Result<()> {
    for chunk in rows.chunks(CHUNK) {
        let mut sql = match backend {
            Backend::Sqlite => String::from("INSERT INTO message_search (rowid, body) VALUES "),
            Backend::Postgres => {
                String::from("INSERT INTO message_search (id, channel_id, author_id, tsv) VALUES ")
            }
        };
        for n in 0..chunk.len() {
            if n > 0 {
                sql.push(',');
            }
            match backend {
                Backend::Sqlite => sql.push_str("(?,?)"),
                Backend::Postgres => {
                    let p = n * 4;
                    sql.push_str(&format!("(${},${},${},CAST(${} AS tsvector))", p + 1, p + 2, p + 3, p + 4));
                }
            }
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            let tokens = index_tokens(row.content, row.channel, row.author);
            query = match backend {
                Backend::Sqlite => query.bind(row.id).bind(tokens.join(" ")),
                Backend::Postgres => {
                    query.bind(row.id).bind(row.channel).bind(row.author).bind(tsvector_literal(&tokens))
                }
            };
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Replaces a message's entry (after an edit).
pub async fn reindex(conn: &mut AnyConnection, backend: Backend, row: Indexed<'_>) -> sqlx::Result<()> {
    unindex(conn, backend, &[row.id]).await?;
    index(conn, backend, &[row]).await
}

/// Removes messages from the index.
pub async fn unindex(conn: &mut AnyConnection, backend: Backend, ids: &[i64]) -> sqlx::Result<()> {
    let sql = match backend {
        Backend::Sqlite => "DELETE FROM message_search WHERE rowid = $1",
        Backend::Postgres => "DELETE FROM message_search WHERE id = $1",
    };
    for id in ids {
        sqlx::query(sql).bind(*id).execute(&mut *conn).await?;
    }
    Ok(())
}

/// What `$1` may read and whom they blocked: rows (0, channel) for the open text channels
/// and those they are a member of, (1, author) for everyone they blocked.
const READABLE_AND_BLOCKED: &str = "SELECT CAST(0 AS BIGINT) AS what, id FROM channels \
     WHERE deleted_at IS NULL AND private = 0 AND kind = 'text' \
     UNION ALL SELECT CAST(0 AS BIGINT), c.id FROM channel_members cm JOIN channels c ON c.id = cm.channel_id \
     WHERE cm.user_id = $1 AND c.deleted_at IS NULL \
     UNION ALL SELECT CAST(1 AS BIGINT), blocked_id FROM blocks WHERE user_id = $1";

/// `ids` as the inside of an SQL `IN (…)`: numbers only, so nothing to escape.
fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

impl Db {
    /// The newest (up to [`MAX_CANDIDATES`]) messages matching `expression` (from
    /// [`Backend::match_expression`]) that `user` may read, written by no one `user` blocked,
    /// with ids in `(after, before)`: each with its relevance (higher is better).
    /// With `has_file`, only messages with attachments; an empty `expression` then lists
    /// every such message (newest first, all of equal relevance).
    ///
    /// How it stays fast (see bench/README.md, search): the readable channels and blocked
    /// authors are read first and written into the query as literal lists, and the query is
    /// not a prepared statement (`persistent(false)`), so that the planner sees the actual
    /// match expression and its selectivity: PostgreSQL then reads the newest rows backwards
    /// by id for a common word (stopping after enough matches) and the GIN index for a rare
    /// one. A generic plan, or a subquery for the channels, made it scan every match or every
    /// row instead. On SQLite the channel test is kept from using the `(channel_id, id)`
    /// index (`+m.channel_id`), which otherwise probed it once per readable channel and match.
    pub async fn search(
        &self,
        user: UserId,
        expression: &str,
        after: Option<MessageId>,
        before: Option<MessageId>,
        has_file: bool,
    ) -> sqlx::Result<Vec<(MessageId, f64)>> {
        let mut readable: Vec<i64> = Vec::new();
        let mut blocked: Vec<i64> = Vec::new();
        for row in sqlx::query(READABLE_AND_BLOCKED).bind(user.0).fetch_all(&self.pool).await? {
            let id: i64 = row.try_get("id")?;
            match row.try_get::<i64, _>("what")? {
                0 => readable.push(id),
                _ => blocked.push(id),
            }
        }
        if readable.is_empty() {
            return Ok(Vec::new());
        }
        let (table, id, channel, author) = match self.backend {
            _ if has_file && expression.is_empty() => ("messages m", "m.id", "m.channel_id", "m.author_id"),
            Backend::Sqlite => (
                "message_search JOIN messages m ON m.id = message_search.rowid",
                "message_search.rowid",
                "+m.channel_id",
                "+m.author_id",
            ),
            Backend::Postgres => ("message_search s", "s.id", "s.channel_id", "s.author_id"),
        };
        let (select, matches) = match self.backend {
            _ if has_file && expression.is_empty() => {
                ("m.id, CAST(0 AS DOUBLE PRECISION) AS score", "m.deleted = 0".to_string())
            }
            Backend::Sqlite => (
                "message_search.rowid AS id, -bm25(message_search) AS score",
                "message_search MATCH $1".to_string(),
            ),
            Backend::Postgres => (
                "s.id, CAST(ts_rank(s.tsv, CAST($1 AS tsquery)) AS DOUBLE PRECISION) AS score",
                "s.tsv @@ CAST($1 AS tsquery)".to_string(),
            ),
        };
        let mut conditions = vec![matches, format!("{channel} IN ({})", id_list(&readable))];
        if !blocked.is_empty() {
            conditions.push(format!("{author} NOT IN ({})", id_list(&blocked)));
        }
        // Bounds only when asked: an open-ended range still made PostgreSQL read the primary key.
        if let Some(after) = after {
            conditions.push(format!("{id} > {}", after.0));
        }
        if let Some(before) = before {
            conditions.push(format!("{id} < {}", before.0));
        }
        if has_file {
            conditions.push(format!("EXISTS (SELECT 1 FROM attachments a WHERE a.message_id = {id})"));
        }
        let sql = format!(
            "SELECT {select} FROM {table} WHERE {} ORDER BY {id} DESC LIMIT {MAX_CANDIDATES}",
            conditions.join(" AND ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        if !(has_file && expression.is_empty()) {
            query = query.bind(expression.to_string());
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((MessageId(r.try_get("id")?), r.try_get::<f64, _>("score")?))).collect()
    }

    /// Builds the index from existing messages, once (after the migration that created it,
    /// before the server serves anything). Resumable: progress is kept in `meta`.
    pub async fn backfill_search(&self) -> anyhow::Result<()> {
        const DONE: &str = "search.backfilled";
        const THROUGH: &str = "search.backfilled_through";
        if self.get_meta(DONE).await?.is_some() {
            return Ok(());
        }
        let mut through: i64 = self.get_meta(THROUGH).await?.and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut indexed = 0usize;
        loop {
            let rows = sqlx::query(
                "SELECT id, channel_id, author_id, content FROM messages WHERE id > $1 AND deleted = 0 \
                 ORDER BY id LIMIT $2",
            )
            .bind(through)
            .bind(BACKFILL_BATCH)
            .fetch_all(&self.pool)
            .await?;
            let Some(last) = rows.last() else { break };
            through = last.try_get("id")?;
            let contents: Vec<(i64, i64, i64, String)> = rows
                .iter()
                .map(|r| {
                    Ok((
                        r.try_get("id")?,
                        r.try_get("channel_id")?,
                        r.try_get("author_id")?,
                        r.try_get("content")?,
                    ))
                })
                .collect::<sqlx::Result<_>>()?;
            let batch: Vec<Indexed<'_>> = contents
                .iter()
                .map(|(id, channel, author, content)| Indexed {
                    id: *id,
                    channel: *channel,
                    author: *author,
                    content,
                })
                .collect();
            let mut tx = self.pool.begin().await?;
            index(&mut tx, self.backend, &batch).await?;
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(THROUGH)
            .bind(through.to_string())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            indexed += batch.len();
            if indexed % 100_000 < BACKFILL_BATCH as usize {
                tracing::info!(indexed, "building the search index");
            }
        }
        self.set_meta(DONE, "1").await?;
        if indexed > 0 {
            tracing::info!(indexed, "search index built");
        }
        Ok(())
    }

    /// Messages by id (those that still exist), with their reactions, in the order asked.
    pub async fn messages_by_ids(&self, ids: &[MessageId]) -> sqlx::Result<Vec<Message>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT {} FROM messages WHERE deleted = 0 AND id IN ({})",
            super::messages::COLUMNS,
            placeholders.join(",")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id.0);
        }
        let mut found: Vec<Message> = query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(super::messages::message)
            .collect::<sqlx::Result<_>>()?;
        self.attach_reactions_by_ids(&mut found).await?;
        let mut all: BTreeMap<i64, Message> = found.into_iter().map(|m| (m.id.0, m)).collect();
        Ok(ids.iter().filter_map(|id| all.remove(&id.0)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::text::terms;

    #[test]
    fn tsvector_literals_keep_positions_and_escape() {
        let tokens: Vec<String> = ["a", "b'c", "a"].iter().map(|s| s.to_string()).collect();
        assert_eq!(tsvector_literal(&tokens), "'a':1,3 'b''c':2");
    }

    #[test]
    fn match_expressions_per_backend() {
        let t = terms("dinner 晚餐吃");
        let groups = vec![vec!["x1".to_string(), "x2".to_string()]];
        let m = Match { terms: &t, any_of: &groups };
        assert_eq!(Backend::Sqlite.match_expression(&m), r#""dinner" AND "晚餐 餐吃" AND ("x1" OR "x2")"#);
        assert_eq!(
            Backend::Postgres.match_expression(&m),
            "('dinner') & ('晚餐' <-> '餐吃') & ('x1' | 'x2')"
        );
    }
}
