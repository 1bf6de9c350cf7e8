//! Several server processes on one PostgreSQL: worker-id leases and heartbeats (`nodes`),
//! shared secrets, notes too large for a notification (`bus_spill`), and the notifications
//! themselves. PostgreSQL only; times are the database's clock, so the processes' clocks may
//! disagree.

use hearth_protocol::MessageId;
use hearth_protocol::model::Message;
use sqlx::{Any, Row, Transaction};

use super::Db;
use super::messages::{COLUMNS, message};
use crate::cluster::note::{Body, CHANNEL, Envelope, MAX_IDS, NodeId, Note};
use crate::ids::WORKERS;

/// The database's clock in milliseconds.
const NOW_MS: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

/// Serializes leases (any constant: this one spells "hearth-n").
const LEASE_LOCK: i64 = 0x0068_6561_7274_686e;

/// Every worker id is held by a live process, or was given up too recently to reuse.
#[derive(Debug, thiserror::Error)]
#[error(
    "every one of the {WORKERS} server process slots on this database is taken (or was given up \
     less than {reuse_after_ms} ms ago); stop a process or wait"
)]
pub struct NoFreeWorker {
    pub reuse_after_ms: i64,
}

/// A process as the others see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub id: NodeId,
    pub token: String,
    /// Milliseconds since its last heartbeat, by the database's clock.
    pub age_ms: i64,
}

impl Db {
    /// Leases a worker id for a process holding `token`: one no process holds, never one whose
    /// holder beat its heart less than `reuse_after_ms` ago (the others must have seen it die
    /// before its id, and so its notes' sender, names someone else).
    pub async fn lease_worker(&self, token: &str, reuse_after_ms: i64) -> anyhow::Result<NodeId> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(LEASE_LOCK).execute(&mut *tx).await?;
        let sql = format!("SELECT id, {NOW_MS} - heartbeat_at AS age FROM nodes");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *tx).await?;
        let mut taken = std::collections::HashMap::new();
        for row in rows {
            taken.insert(row.try_get::<i64, _>("id")?, row.try_get::<i64, _>("age")?);
        }
        // A never-used id first, else the one given up longest ago.
        let free = (0..WORKERS).find(|id| !taken.contains_key(id)).or_else(|| {
            taken
                .iter()
                .filter(|(_, age)| **age >= reuse_after_ms)
                .max_by_key(|(_, age)| **age)
                .map(|(id, _)| *id)
        });
        let Some(id) = free else {
            return Err(NoFreeWorker { reuse_after_ms }.into());
        };
        let sql = format!(
            "INSERT INTO nodes (id, token, started_at, heartbeat_at) VALUES ($1, $2, {NOW_MS}, {NOW_MS}) \
             ON CONFLICT (id) DO UPDATE SET token = $2, started_at = {NOW_MS}, heartbeat_at = {NOW_MS}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).bind(token.to_string()).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Beats `id`'s heart; false when the lease is no longer `token`'s (it was taken over after
    /// this process went silent too long).
    pub async fn heartbeat(&self, id: NodeId, token: &str) -> sqlx::Result<bool> {
        let sql = format!("UPDATE nodes SET heartbeat_at = {NOW_MS} WHERE id = $1 AND token = $2");
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(token.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every leased worker id and how long ago its holder beat its heart.
    pub async fn nodes(&self) -> sqlx::Result<Vec<NodeRow>> {
        let sql = format!("SELECT id, token, {NOW_MS} - heartbeat_at AS age FROM nodes ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(NodeRow { id: r.try_get("id")?, token: r.try_get("token")?, age_ms: r.try_get("age")? })
            })
            .collect()
    }

    /// Gives the lease up (a clean stop): the others see the process gone at once.
    pub async fn release_worker(&self, id: NodeId, token: &str) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM nodes WHERE id = $1 AND token = $2")
            .bind(id)
            .bind(token.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The secrets every process uses (`proposed` when this is the first process to ask): a
    /// token signed by one must verify on another, and TURN credentials must match.
    pub async fn shared_secrets(&self, proposed: &str) -> sqlx::Result<String> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('cluster.secrets', $1) ON CONFLICT (key) DO NOTHING",
        )
        .bind(proposed.to_string())
        .execute(&self.pool)
        .await?;
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'cluster.secrets'").fetch_one(&self.pool).await
    }

    /// Sends `note` from `from` to every process: inline, or through `bus_spill` when too large.
    /// `notes` go out in order, in one transaction (one round trip per spilled note).
    pub async fn notify(&self, from: NodeId, notes: &[Note]) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        let mut payloads = Vec::with_capacity(notes.len());
        for note in notes {
            let inline = Envelope { from, body: Body::Note(note.clone()) }.encode();
            if inline.len() <= crate::cluster::note::MAX_INLINE {
                payloads.push(inline);
                continue;
            }
            let sql = format!("INSERT INTO bus_spill (body, created_at) VALUES ($1, {NOW_MS}) RETURNING id");
            let id: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(inline).fetch_one(&mut *tx).await?;
            payloads.push(Envelope { from, body: Body::Spill(id) }.encode());
        }
        send(&mut tx, &payloads).await?;
        tx.commit().await
    }

    /// The envelope stored under `id` in `bus_spill`.
    pub async fn spilled(&self, id: i64) -> sqlx::Result<Option<String>> {
        sqlx::query_scalar("SELECT body FROM bus_spill WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Deletes spilled notes older than `age_ms` (every listener has read them by then).
    pub async fn prune_spill(&self, age_ms: i64) -> sqlx::Result<u64> {
        let sql = format!("DELETE FROM bus_spill WHERE created_at < {NOW_MS} - $1");
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(age_ms).execute(&self.pool).await?.rows_affected())
    }

    /// New messages by id, with their nonces, in the order of `ids` (missing ones left out:
    /// deleted since by retention).
    pub async fn messages_by_id(&self, ids: &[MessageId]) -> sqlx::Result<Vec<(Message, String)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let params: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
        let sql = format!("SELECT {COLUMNS}, nonce FROM messages WHERE id IN ({})", params.join(","));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id.0);
        }
        let mut found = std::collections::HashMap::new();
        for row in query.fetch_all(&self.pool).await? {
            let m = message(&row)?;
            found.insert(m.id, (m, row.try_get::<String, _>("nonce")?));
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }
}

/// Announces new messages inside the transaction that stores them.
pub(super) async fn notify_messages(
    tx: &mut Transaction<'_, Any>,
    from: NodeId,
    ids: &[MessageId],
) -> sqlx::Result<()> {
    let payloads: Vec<String> = ids
        .chunks(MAX_IDS)
        .map(|chunk| Envelope { from, body: Body::Note(Note::Messages { ids: chunk.to_vec() }) }.encode())
        .collect();
    send(tx, &payloads).await
}

/// `pg_notify` for each payload, in order, 64 to a statement.
async fn send(tx: &mut Transaction<'_, Any>, payloads: &[String]) -> sqlx::Result<()> {
    for chunk in payloads.chunks(64) {
        let calls: Vec<String> = (1..=chunk.len()).map(|n| format!("pg_notify('{CHANNEL}', ${n})")).collect();
        let sql = format!("SELECT {}", calls.join(", "));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for p in chunk {
            query = query.bind(p.clone());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}
